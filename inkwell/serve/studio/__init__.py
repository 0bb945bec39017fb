"""Inkwell Studio: the creator's web app (`page/`, a single page in plain ES modules, no build step) and its
JSON API under /studio/api (`api.py` maps HTTP onto `service.py`). docs/studio.md documents both."""
