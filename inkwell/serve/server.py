"""Run the app with uvicorn: `inkwell serve` calls `run_server(config)`.

SIGTERM / Ctrl-C: uvicorn stops accepting connections and lets in-flight requests (streams included)
finish for up to `drain_timeout_s`, then cancels what is left; the scheduler then shuts down and the
process exits.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable

from inkwell.errors import InkwellError
from inkwell.serve.state import ServeConfig, ServerState


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_server(config: ServeConfig, say: Callable[[str], None] = print, open_browser: bool = False) -> None:
    import uvicorn

    from inkwell.serve.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    state = ServerState(config)
    if not state.keys.enabled and not is_loopback(config.host):
        say(
            f"warning: serving on {config.host} without an API key: anyone who can reach the port can use it "
            "(add --api-key or --api-keys-file)"
        )
    app = create_app(state)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level="info",
            lifespan="on",
            # uvicorn annotates this as int but waits with asyncio (a float of seconds works)
            timeout_graceful_shutdown=config.drain_timeout_s,  # type: ignore[arg-type]
            timeout_keep_alive=5,
        )
    )
    state.on_load_failed = lambda: setattr(server, "should_exit", True)
    address = f"http://{'127.0.0.1' if config.host in ('0.0.0.0', '::') else config.host}:{config.port}"
    say(f"loading {config.model or 'the default model'}; {address}/health turns 200 when ready")
    say(f"studio: {address}/   API: {address}/v1")
    if open_browser:
        threading.Thread(target=_open_when_ready, args=(state, address), daemon=True).start()
    server.run()
    if state.status == "failed":
        raise InkwellError(f"could not load the model: {state.load_error}", field="model")


def _open_when_ready(state: ServerState, address: str) -> None:
    """Open the studio in the user's browser once the model has loaded (loading starts with the app)."""
    import time
    import webbrowser

    while state._loading is None:
        time.sleep(0.2)
    if state.wait_ready(timeout=None):
        webbrowser.open(address + "/")
