"""The Write screen's extras in headless Chromium against the tiny model (docs/studio.md, "Write"): the Style menu
and each variant's style-match badge, the facts table (shown for report and data-brief only; a file read into
the box; the checked numbers under the text, unsupported spans highlighted; a bad table's 400 next to it) and
best of N (the kept variant's check score and the checks behind it). The model writes gibberish; the tests check
the page against what the API stored."""

from __future__ import annotations

import pytest
from studio_helpers import api, screenshot, sign_in

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect
DONE = "[data-testid=variant-card][data-state=done]"
FORMAL = [
    "The administration of justice remains the foundation of every civilised institution.",
    "Prosperity, unaccompanied by prudence, is transitory; the examples are numerous.",
    "Education constitutes the cultivation of judgement; information is insufficient without it.",
    "Governments accumulate responsibilities gradually; relinquishing them requires determination.",
    "Institutions endure when their purposes are comprehensible to citizens.",
]


def write(studio, page, template: str, fields: dict[str, str], *, max_tokens: int = 12) -> dict:
    """Fill the form (the extras already set), generate one variant and wait for it: the piece as stored."""
    page.get_by_test_id("write-template").select_option(template)
    for name, value in fields.items():
        page.get_by_test_id(f"field-{name}").fill(value)
    page.get_by_test_id("write-settings-toggle").evaluate("summary => { summary.parentElement.open = true }")
    page.get_by_test_id("setting-max_tokens").fill(str(max_tokens))
    page.get_by_test_id("setting-temperature").fill("0.8")
    page.get_by_test_id("write-n").select_option("1")
    page.get_by_test_id("write-generate").click()
    expect(page.locator(DONE)).to_have_count(1)
    expect(page.get_by_test_id("screen-write")).to_have_attribute("data-streaming", "false")
    piece_id = page.get_by_test_id("screen-write").get_attribute("data-piece-id")
    return api(studio).get(f"/pieces/{piece_id}").json()


def test_style_facts_table_and_best_of(studio, page, tmp_path):
    from inkwell.compose.style import Sample, learn_profile, save_profile

    save_profile(learn_profile("essayist", samples=[Sample(t) for t in FORMAL]))  # before the page loads its menu
    sign_in(page, studio)
    card = page.get_by_test_id("variant-card").first

    # a style: picked from the menu, sent with the request, its score on the variant
    menu = page.get_by_test_id("write-style")
    expect(menu.locator("option")).to_have_count(2)
    assert menu.locator("option").nth(1).text_content() == "essayist (en, 5 samples)"
    menu.select_option("essayist")
    piece = write(studio, page, "poem", {"topic": "justice"})
    score = piece["variants"][0]["style"]["score"]
    assert piece["style"] == "essayist" and any(text in piece["prompt"] for text in FORMAL)
    expect(card.get_by_test_id("variant-style")).to_have_text(f"style {score:.2f}")
    expect(card.locator("header")).not_to_contain_text("null")  # no badge: nothing, not "null"
    menu.select_option("")

    # a facts table: only for the templates written from one; a file is read into the box
    expect(page.get_by_test_id("write-table")).to_be_hidden()
    page.get_by_test_id("write-template").select_option("report")
    expect(page.get_by_test_id("write-table")).to_be_visible()
    table = tmp_path / "cup.csv"
    table.write_text("team,goals\nReds,3\nBlues,1\n", encoding="utf-8")
    page.get_by_test_id("write-table-file").set_input_files(str(table))
    expect(page.get_by_test_id("write-table-text")).to_have_value(table.read_text(encoding="utf-8"))
    expect(page.get_by_test_id("write-table-info")).to_have_text("cup.csv · 3 lines")
    piece = write(studio, page, "report", {"title": "Cup"})
    variant = piece["variants"][0]
    check = variant["fact_check"]
    assert piece["facts"]["source"] == "cup.csv" and "Reds" in piece["fields"]["facts"]
    unsupported = check["numbers"] - check["numbers_supported"]
    expect(card.get_by_test_id("variant-facts")).to_contain_text(
        f"numbers checked: {check['numbers_supported']} supported, {unsupported} unsupported"
    )
    marked = [s["text"] for s in check["spans"] if not s["supported"]]
    expect(card.get_by_test_id("variant-unsupported")).to_have_text(marked)
    expect(card.get_by_test_id("variant-text")).to_have_text(variant["text"])
    screenshot(page, "write-facts", show=page.get_by_test_id("write-table"))

    # unsupported spans are highlighted where the API puts them: the stored piece, with its first word marked
    # (the tiny model rarely writes a number), opened again from History
    first = variant["text"].split()[0] if variant["text"].split() else ""
    if first:
        start = variant["text"].index(first)
        span = {"start": start, "end": start + len(first), "text": first, "kind": "number", "supported": False}

        def marked_piece(route):
            body = route.fetch().json()
            body["variants"][0]["fact_check"] = {**check, "numbers": 1, "numbers_supported": 0, "spans": [span]}
            route.fulfill(json=body)

        page.route(f"**/studio/api/pieces/{piece['id']}", marked_piece)
        page.get_by_test_id("tab-history").click()
        page.locator(f"[data-testid=history-item][data-piece-id='{piece['id']}']").click()
        page.get_by_test_id("history-open").click()
        expect(card.get_by_test_id("variant-unsupported")).to_have_text([first])
        expect(card.get_by_test_id("variant-facts")).to_contain_text("0 supported, 1 unsupported")
        page.unroute(f"**/studio/api/pieces/{piece['id']}")

    # a bad table: the API's 400 next to the box (the facts field, filled by "Open in editor", emptied first)
    page.get_by_test_id("tab-write").click()
    page.get_by_test_id("field-facts").fill("")
    page.get_by_test_id("write-table-clear").click()
    page.get_by_test_id("write-table-text").fill("name,city\nAda,London\n")
    page.get_by_test_id("write-generate").click()
    error = page.locator("[data-param=table] .field-error")
    expect(error).to_contain_text("pasted.csv: no numeric column to report on")
    page.get_by_test_id("write-table-clear").click()

    # best of 2: the kept variant's check score, and the checks behind it on demand
    page.get_by_test_id("write-best-of").select_option("2")
    piece = write(studio, page, "poem", {"topic": "rain"})
    best = piece["variants"][0]["best_of"]
    assert best["n"] == 2 and len(best["candidates"]) == 2
    expect(card.get_by_test_id("variant-check-score")).to_have_text(f"checks {best['score']:.2f}")
    expect(card.locator("header")).not_to_contain_text("null")
    checks = card.get_by_test_id("variant-check")
    expect(checks.first).to_be_hidden()  # folded until asked for
    card.get_by_test_id("variant-checks-toggle").click()
    applicable = {name: ok for name, ok in best["checks"].items() if ok is not None}
    expect(checks).to_have_text([f"{'✓' if ok else '✗'} {name}" for name, ok in applicable.items()])
    expect(card.get_by_test_id("variant-candidates")).to_contain_text("2 candidates tried")
    assert piece["best_of"] == 2
    screenshot(page, "write-extras")
