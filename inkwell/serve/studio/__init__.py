"""Inkwell Studio: the creator's web app (`page/`, a single page in plain ES modules, no build step) and its
JSON API under /studio/api (`api.py` maps HTTP onto pieces.py, compare.py and loop.py over the shared layer in
service.py). docs/studio.md documents both."""
