"""The Write screen's Knowledge menu in headless Chromium: the folders on the server are offered, and a piece
written on one shows what its variant cites; with nothing relevant, the template's escalation reply (written
without the model, so the tiny test model's short context does not matter)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from studio_helpers import api, sign_in

sys.path.insert(0, str(Path(__file__).parents[1] / "knowledge"))
from kb_helpers import shop_folder  # noqa: E402

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect
DONE = "[data-testid=variant-card][data-state=done]"


def test_knowledge_menu_and_an_escalated_piece(studio, page, tmp_path):
    from inkwell.knowledge import KnowledgeBase

    KnowledgeBase.create("shop").add([shop_folder(tmp_path)])  # before the page loads its menu
    sign_in(page, studio)
    menu = page.get_by_test_id("write-knowledge")
    expect(menu.locator("option")).to_have_count(2)
    assert menu.locator("option").nth(1).text_content() == "shop (3 files)"
    page.get_by_test_id("write-template").select_option("customer-service-reply")
    page.get_by_test_id("field-message").fill("What is the capital of Peru?")
    page.get_by_test_id("field-agent").fill("Sam")
    menu.select_option("shop")
    page.get_by_test_id("write-n").select_option("1")
    page.get_by_test_id("write-generate").click()
    expect(page.locator(DONE)).to_have_count(1)
    card = page.get_by_test_id("variant-card").first
    expect(card.get_by_test_id("variant-text")).to_contain_text("passed your message on to a colleague")
    expect(card.get_by_test_id("variant-info")).to_contain_text("nothing relevant in the knowledge folder")
    expect(card.get_by_test_id("variant-citations")).to_contain_text("Cites no passage")
    piece_id = int(page.get_by_test_id("screen-write").get_attribute("data-piece-id"))
    piece = api(studio).get(f"/pieces/{piece_id}").json()
    assert piece["variants"][0]["finish_reason"] == "escalated"
    assert not page.errors
