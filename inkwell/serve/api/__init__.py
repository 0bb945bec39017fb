"""The HTTP API, one module per endpoint family; each router only maps HTTP onto the serving layer
(`inkwell/serve/serving.py`), and `serve/app.py` includes them in this order.

    POST /v1/completions            completions.py  text completion (stream: true -> Server-Sent Events)
    POST /v1/chat/completions       chat.py         chat completion (stream: true -> Server-Sent Events)
    POST /v1/content/{template}     content.py      template fields + settings -> content (JSON `data` for
                                                    structured templates)
    GET  /v1/models                 models.py       base model and adapters (each adapter with its parent)
    GET  /v1/templates              models.py       the template library
    GET  /health                    health.py       503 while the model loads, 200 after (no key needed)
    GET  /metrics                   health.py       Prometheus text (no key needed)
"""

from __future__ import annotations

from fastapi import APIRouter

from inkwell.serve.api import chat, completions, content, health, models

ROUTERS: list[APIRouter] = [completions.router, chat.router, content.router, models.router, health.router]
