"""The studio's Long-form screen in headless Chromium against a tiny random model: plan a piece, edit the
plan, write sections by choosing candidates (one edited), go back to write a section again (a branch), and
assemble; the tree the API stored matches what the page did. The model writes gibberish: the test checks the
page's behaviour and the stored tree, not the prose.

    .venv/bin/pytest tests/browser/test_longform_browser.py -q -m browser
"""

from __future__ import annotations

import pytest
from studio_helpers import api, screenshot, sign_in

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
expect = sync_api.expect
pytestmark = pytest.mark.browser
SLOW = 60_000  # ms: planning and candidates are model calls (seconds on a busy 2-core machine)


def test_plan_choose_edit_go_back_and_assemble_a_long_piece(studio, page):
    sign_in(page, studio, tab="longform")
    page.get_by_test_id("longform-kind").select_option("study-guide")
    page.get_by_test_id("longform-topic").fill("the water cycle")
    page.get_by_test_id("longform-words").fill("300")
    page.get_by_test_id("longform-count").select_option("2")
    page.get_by_test_id("longform-start").click()

    work = page.get_by_test_id("longform-work")
    expect(work).to_be_visible(timeout=SLOW)
    run_id = int(work.get_attribute("data-run-id"))
    expect(page.get_by_test_id("longform-plan-section")).to_have_count(3)

    # a plan that does not validate is refused next to the plan; a fixed one is saved
    page.get_by_test_id("longform-plan-toggle").click()
    page.get_by_test_id("longform-section-words").nth(1).fill("5")
    page.get_by_test_id("longform-save-plan").click()
    expect(page.get_by_test_id("longform-plan-error")).to_contain_text("sections[1].words")
    page.get_by_test_id("longform-section-title").nth(1).fill("Evaporation and clouds")
    page.get_by_test_id("longform-section-words").nth(1).fill("120")
    page.get_by_test_id("longform-save-plan").click()
    expect(page.get_by_test_id("longform-next")).to_contain_text("Overview")
    assert api(studio).get(f"/longform/{run_id}").json()["plan"]["sections"][1]["title"] == "Evaporation and clouds"

    # section 1: two candidates, take the second
    page.get_by_test_id("longform-more").click()
    candidates = page.get_by_test_id("longform-candidate")
    expect(candidates).to_have_count(2, timeout=SLOW)
    taken_first = int(candidates.nth(1).get_attribute("data-node-id"))
    candidates.nth(1).get_by_test_id("longform-take").click()
    expect(page.get_by_test_id("longform-chain-section")).to_have_count(1, timeout=SLOW)

    # section 2: edit a candidate and keep my version
    page.get_by_test_id("longform-more").click()
    expect(candidates).to_have_count(2, timeout=SLOW)
    candidates.nth(0).get_by_test_id("longform-edit").click()
    candidates.nth(0).get_by_test_id("longform-edit-text").fill("Water rises as vapour and gathers into clouds.")
    candidates.nth(0).get_by_test_id("longform-edit-save").click()
    chain = page.get_by_test_id("longform-chain-section")
    expect(chain).to_have_count(2)
    expect(chain.nth(1)).to_have_attribute("data-kind", "edit")
    expect(chain.nth(1)).to_contain_text("Water rises as vapour")
    screenshot(page, "longform", show=page.get_by_test_id("longform-chain"))

    # go back to write section 1 again: its candidates are offered again, and the branch is kept
    chain.nth(0).get_by_test_id("longform-back").click()
    expect(chain).to_have_count(0)
    expect(candidates).to_have_count(2, timeout=SLOW)
    candidates.nth(0).get_by_test_id("longform-take").click()
    for _ in range(2):
        page.get_by_test_id("longform-more").click()
        expect(candidates).to_have_count(2, timeout=SLOW)
        candidates.nth(0).get_by_test_id("longform-take").click()
    expect(page.get_by_test_id("longform-complete")).to_be_visible(timeout=SLOW)
    expect(chain).to_have_count(3)

    page.get_by_test_id("longform-assemble").click()
    expect(page.get_by_test_id("longform-piece")).to_contain_text("# The water cycle")
    expect(page.get_by_test_id("longform-piece")).to_contain_text("## Evaporation and clouds")
    expect(page.get_by_test_id("longform-download")).to_be_visible()

    stored = api(studio).get(f"/longform/{run_id}").json()
    assert [n["section"] for n in stored["chain"]] == [0, 1, 2]
    assert stored["chain"][0]["id"] != taken_first  # the first branch is not the draft now ...
    mine = "Water rises as vapour and gathers into clouds."
    assert mine not in [c["text"] for c in stored["chain"]]  # ... but it was kept in the tree:
    tree = api(studio).get(f"/longform/{run_id}/tree").json()["data"]
    edit = next(n for n in tree if n["text"] == mine)
    assert edit["kind"] == "edit" and edit["parent_id"] == taken_first
    assert len([n for n in tree if n["section"] == 0]) == 2 and len(tree) == 2 + 3 + 2 + 2
    runs = api(studio).get("/longform").json()["data"]
    assert run_id in [r["id"] for r in runs]
