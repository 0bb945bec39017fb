"""Helpers for the studio's browser tests: sign in, open a screen, call the API, save screenshots
(INKWELL_STUDIO_SCREENSHOTS=DIR saves the main screens there at 1280x800)."""

from __future__ import annotations

import json
import os
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ALICE, BOB = "sk-studio-alice", "sk-studio-bob"
VIEWPORT = {"width": 1280, "height": 800}


def api(server, key: str = ALICE):
    import httpx

    return httpx.Client(base_url=server.url + "/studio/api", headers={"Authorization": f"Bearer {key}"}, timeout=120)


def write_piece(server, key: str = ALICE, **body) -> dict:
    """A piece written through the API (no streaming): the whole piece."""
    body = {
        "template": "product-description",
        "fields": {"product": "bamboo water bottle"},
        "settings": {"max_tokens": 12, "seed": 1},
        "stream": False,
        **body,
    }
    response = api(server, key).post("/pieces", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def sign_in(page, server, key: str = ALICE, tab: str | None = None) -> None:
    page.goto(server.url + "/studio")
    page.get_by_test_id("login-key").fill(key)
    page.get_by_test_id("login-submit").click()
    page.wait_for_selector("body[data-ready='true']")
    if tab:
        open_tab(page, tab)


def open_tab(page, tab: str) -> None:
    page.get_by_test_id(f"tab-{tab}").click()
    page.get_by_test_id(f"screen-{tab}").wait_for(state="visible")


def screenshot(page, name: str, show=None) -> None:
    """Save the page as `studio-NAME.png` when INKWELL_STUDIO_SCREENSHOTS names a folder (docs/images for the
    docs). `show`: a locator to scroll into view first."""
    folder = os.environ.get("INKWELL_STUDIO_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    # a calm picture: no focus ring, no passing toast, each form scrolled to its top
    page.evaluate(
        """() => {
             document.activeElement?.blur();
             document.querySelectorAll(".toast").forEach((t) => t.remove());
             document.querySelectorAll(".compose").forEach((c) => { c.scrollTop = 0; });
           }"""
    )
    if show is not None:
        show.scroll_into_view_if_needed()
    page.wait_for_timeout(300)  # let the last transition settle
    page.screenshot(path=str(Path(folder) / f"studio-{name}.png"))


def jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
