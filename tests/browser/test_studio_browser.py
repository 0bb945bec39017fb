"""Inkwell Studio in a real browser (headless Chromium via Playwright) against a real server with a tiny
random model: sign-in, streaming variants, choosing, editing with a word diff, verdicts, blind comparisons and
the leaderboard, history search and branches, export, training with a live loss curve, per-creator isolation,
and markup in fields and edits shown as text, never run. The model writes gibberish; the tests check the
page's behaviour and what the API stored, not the prose.

    .venv/bin/pytest tests/browser -q -m browser
    INKWELL_STUDIO_SCREENSHOTS=docs/images .venv/bin/pytest tests/browser -q -m browser   # + screenshots
"""

from __future__ import annotations

import datetime as dt

import pytest
from serve_helpers import start_server
from studio_helpers import ALICE, BOB, api, jsonl, open_tab, screenshot, sign_in, write_piece

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
expect = sync_api.expect

pytestmark = pytest.mark.browser

DONE = "[data-testid=variant-card][data-state=done]"
PAYLOAD = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'


def fill_write(page, product: str, *, n: int = 1, max_tokens: int = 16, template: str = "product-description"):
    page.get_by_test_id("write-template").select_option(template)
    page.get_by_test_id("field-product").fill(product)
    page.get_by_test_id("write-settings-toggle").evaluate("summary => { summary.parentElement.open = true }")
    page.get_by_test_id("setting-max_tokens").fill(str(max_tokens))
    page.get_by_test_id("write-n").select_option(str(n))


def generate(page, product: str, *, n: int = 1, max_tokens: int = 16) -> int:
    """Write a piece on the Write screen and wait until every variant is stored; the piece's id."""
    fill_write(page, product, n=n, max_tokens=max_tokens)
    page.get_by_test_id("write-generate").click()
    expect(page.locator(DONE)).to_have_count(n)
    expect(page.get_by_test_id("screen-write")).to_have_attribute("data-streaming", "false")
    return int(page.get_by_test_id("screen-write").get_attribute("data-piece-id"))


def lines(text: str) -> str:
    """A text as a <textarea> holds it (its value turns every \\r\\n and \\r into \\n)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def item_of(page, piece_id: int):
    return page.locator(f"[data-testid=history-item][data-piece-id='{piece_id}']")


# ---------------------------------------------------------------- signing in


def test_login_rejects_a_wrong_key_and_accepts_the_right_one(studio, page):
    page.goto(studio.url + "/")
    expect(page.get_by_test_id("screen-login")).to_be_visible()
    expect(page.get_by_test_id("tabs")).to_be_hidden()
    screenshot(page, "login")

    page.get_by_test_id("login-key").fill("sk-not-a-key")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("did not accept")
    expect(page.get_by_test_id("tabs")).to_be_hidden()

    page.get_by_test_id("login-key").fill(ALICE)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("screen-write")).to_be_visible()
    expect(page.get_by_test_id("screen-login")).to_be_hidden()
    expect(page.get_by_test_id("who-user")).to_contain_text(api(studio).get("/me").json()["user"])

    page.reload()  # the key is kept for this tab (sessionStorage)
    expect(page.get_by_test_id("screen-write")).to_be_visible()
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("screen-login")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_server_without_keys_skips_the_login(tiny_chat_model, tmp_path_factory, page):
    server = start_server(tiny_chat_model, tmp_path_factory.mktemp("open-studio"))
    try:
        page.goto(server.url + "/studio")
        expect(page.get_by_test_id("screen-write")).to_be_visible()
        expect(page.get_by_test_id("screen-login")).to_be_hidden()
        expect(page.get_by_test_id("who-user")).to_contain_text("no API key")
        expect(page.get_by_test_id("logout")).to_be_hidden()
    finally:
        server.stop()


# ---------------------------------------------------------------- writing


# Records the text length of every variant card still marked "streaming" on each change of the grid: text
# that grows before the end shows up as several different lengths.
OBSERVE_STREAM = """() => {
  window.__partial = [];
  const grid = document.querySelector("[data-testid=variants]");
  new MutationObserver(() => {
    for (const card of grid.querySelectorAll("[data-testid=variant-card][data-state=streaming]")) {
      window.__partial.push(card.querySelector("[data-testid=variant-text]").textContent.length);
    }
  }).observe(grid, { subtree: true, childList: true, characterData: true, attributes: true });
}"""


def test_generate_streams_variants_side_by_side(studio, page):
    sign_in(page, studio)
    fill_write(page, "trail running shoes", n=2, max_tokens=24)
    page.evaluate(OBSERVE_STREAM)
    page.get_by_test_id("write-generate").click()
    # text is on screen while its variant is still being written
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=variant-card][data-state=streaming]')]"
        ".some(card => card.textContent.includes('Variant') && card.querySelector('[data-testid=variant-text]').textContent.length > 0)"
    )
    expect(page.locator(DONE)).to_have_count(2)
    partial = page.evaluate("window.__partial")
    assert len({n for n in partial if n > 0}) >= 2, f"the text did not grow while streaming: {partial}"

    piece_id = int(page.get_by_test_id("screen-write").get_attribute("data-piece-id"))
    piece = api(studio).get(f"/pieces/{piece_id}").json()
    cards = page.get_by_test_id("variant-card")
    texts = [cards.nth(i).get_by_test_id("variant-text").text_content() for i in range(2)]
    assert texts == [v["text"] for v in piece["variants"]] and all(t.strip() for t in texts)
    left, right = (cards.nth(i).bounding_box() for i in range(2))
    assert left["y"] == right["y"] and left["x"] + left["width"] <= right["x"], "variants are not side by side"
    screenshot(page, "write")


def test_another_adds_a_variant_and_use_this_chooses_it(studio, page):
    sign_in(page, studio)
    piece_id = generate(page, "folding camp chair")
    page.get_by_test_id("write-another").click()
    expect(page.locator(DONE)).to_have_count(2)
    cards = page.get_by_test_id("variant-card")
    expect(cards.nth(0)).to_have_attribute("data-chosen", "true")  # the first variant is chosen until you pick
    expect(cards.nth(1)).to_have_attribute("data-chosen", "false")

    cards.nth(1).get_by_test_id("variant-choose").click()
    expect(cards.nth(1)).to_have_attribute("data-chosen", "true")
    expect(cards.nth(0)).to_have_attribute("data-chosen", "false")
    expect(cards.nth(1).get_by_test_id("variant-chosen-badge")).to_be_visible()
    expect(cards.nth(0).get_by_test_id("variant-chosen-badge")).to_be_hidden()

    piece = api(studio).get(f"/pieces/{piece_id}").json()
    assert len(piece["variants"]) == 2 and piece["chosen_variant"] == piece["variants"][1]["id"]
    assert page.get_by_test_id("edit-text").input_value() == lines(piece["variants"][1]["text"])


def test_edit_save_shows_the_word_diff_and_stores_a_version(studio, page):
    sign_in(page, studio)
    piece_id = generate(page, "insulated lunch box")
    original = api(studio).get(f"/pieces/{piece_id}").json()["original"]
    diff = page.get_by_test_id("edit-diff")

    # words added at the end: one insertion, nothing deleted
    page.get_by_test_id("edit-text").fill(lines(original) + " and a spare lid")
    expect(diff.locator("ins")).to_have_count(1)
    expect(diff.locator("ins")).to_have_text(" and a spare lid")
    expect(diff.locator("del")).to_have_count(0)

    edit = "Keeps soup hot until lunch, and a spare lid"
    page.get_by_test_id("edit-text").fill(edit)
    expect(diff.locator("del")).not_to_have_count(0)  # the model's words are struck through
    assert "Keeps soup hot" in " ".join(diff.locator("ins").all_text_contents())
    page.get_by_test_id("edit-save").click()
    expect(page.get_by_test_id("edit-saved")).to_contain_text("1 saved version")

    piece = api(studio).get(f"/pieces/{piece_id}").json()
    assert [v["text"] for v in piece["versions"]] == [edit]
    assert piece["text"] == edit and piece["original"] == original
    expect(diff.locator("ins").first).to_be_visible()  # the diff stays: the model's text against the saved edit


def test_rating_tags_and_accept_persist(studio, page):
    sign_in(page, studio)
    piece_id = generate(page, "wool hiking socks")
    page.get_by_test_id("edit-text").fill("Soft merino socks that stay dry on long hikes.")
    page.get_by_test_id("edit-save").click()
    expect(page.get_by_test_id("edit-saved")).to_contain_text("1 saved version")

    page.get_by_test_id("star-4").click()
    page.get_by_test_id("tag-too-long").click()
    page.get_by_test_id("tag-input").fill("needs photos")
    page.get_by_test_id("tag-add").click()
    page.get_by_test_id("edit-accept").click()
    expect(page.get_by_test_id("edit-status")).to_have_text("accepted")
    expect(page.get_by_test_id("star-4")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("tag-too-long")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("tag-needs-photos")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("edit-accept")).to_have_attribute("aria-pressed", "true")
    screenshot(page, "edit", show=page.get_by_test_id("edit-panel"))

    piece = api(studio).get(f"/pieces/{piece_id}").json()
    assert (piece["status"], piece["rating"], sorted(piece["tags"])) == ("accepted", 4, ["needs photos", "too long"])

    page.get_by_test_id("tag-too-long").click()  # a second click takes the tag off
    page.get_by_test_id("star-2").click()
    expect(page.get_by_test_id("tag-too-long")).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_test_id("star-2")).to_have_attribute("aria-pressed", "true")
    piece = api(studio).get(f"/pieces/{piece_id}").json()
    assert (piece["rating"], piece["tags"]) == (2, ["needs photos"])


def test_api_errors_show_next_to_the_field_they_name(studio, page):
    sign_in(page, studio)
    fill_write(page, "")
    page.get_by_test_id("write-generate").click()
    product = page.get_by_test_id("write-form").locator("[data-param='fields.product']")
    expect(product.locator(".field-error")).to_contain_text("product")
    expect(page.get_by_test_id("field-product")).to_have_attribute("aria-invalid", "true")

    page.get_by_test_id("field-product").fill("desk lamp")
    page.get_by_test_id("setting-temperature").fill("9")
    page.get_by_test_id("write-generate").click()
    temperature = page.get_by_test_id("write-form").locator("[data-param='settings.temperature'] .field-error")
    expect(temperature).to_contain_text("temperature")
    expect(product.locator(".field-error")).to_be_hidden()  # the old message is gone
    expect(page.get_by_test_id("variant-card")).to_have_count(0)


# ---------------------------------------------------------------- blind comparisons


def test_compare_blind_then_judge_reveals_systems_and_ranks_them(studio, page):
    sign_in(page, studio, tab="compare")
    page.get_by_test_id("compare-template").select_option("product-description")
    page.get_by_test_id("compare-field-product").fill("solar lantern")
    page.get_by_test_id("compare-settings-toggle").click()
    page.get_by_test_id("compare-setting-max_tokens").fill("12")
    page.get_by_test_id("compare-system-a").select_option("base")
    page.get_by_test_id("compare-system-b").select_option("alpha")
    page.get_by_test_id("compare-run").click()

    judging = page.get_by_test_id("compare-judging")
    expect(judging).to_be_visible()
    expect(page.get_by_test_id("compare-left-system")).to_have_text("hidden")
    expect(page.get_by_test_id("compare-right-system")).to_have_text("hidden")
    assert page.get_by_test_id("compare-left-text").text_content().strip()
    assert page.get_by_test_id("compare-right-text").text_content().strip()

    page.get_by_test_id("judge-left").click()
    expect(page.get_by_test_id("compare-left-system")).not_to_have_text("hidden")
    left = page.get_by_test_id("compare-left-system").text_content()
    right = page.get_by_test_id("compare-right-system").text_content()
    assert {left, right} == {"base", "alpha"}
    expect(page.get_by_test_id("compare-verdict")).to_contain_text(left)
    expect(page.get_by_test_id("judge-left")).to_be_disabled()

    comparison_id = int(judging.get_attribute("data-comparison-id"))
    judged = {c["id"]: c for c in api(studio).get("/comparisons").json()["data"]}[comparison_id]
    assert (judged["winner"], judged["left_system"], judged["right_system"]) == ("left", left, right)

    board = api(studio).get("/leaderboard").json()["data"]
    rows = page.get_by_test_id("leaderboard-row")
    expect(rows).to_have_count(len(board))
    for i, row in enumerate(board):
        expect(rows.nth(i)).to_have_attribute("data-system", row["system"])
        cells = rows.nth(i).locator("td").all_text_contents()
        assert cells[2:] == [str(row["wins"]), str(row["losses"]), str(row["ties"]), str(row["n"])]
    expect(page.locator(f"[data-testid=leaderboard-row][data-system='{left}'] td").nth(2)).not_to_have_text("0")
    screenshot(page, "compare")


def test_pending_comparisons_can_be_judged(studio, page):
    made = api(studio).post(
        "/comparisons",
        json={
            "template": "product-description",
            "fields": {"product": "pending desk fan"},
            "systems": ["base", "alpha"],
            "settings": {"max_tokens": 8},
        },
    )
    assert made.status_code == 200, made.text
    made = made.json()
    sign_in(page, studio, tab="compare")
    item = page.locator(f"[data-testid=pending-item][data-comparison-id='{made['id']}']")
    expect(item).to_contain_text("pending desk fan")
    item.get_by_test_id("pending-open").click()
    expect(page.get_by_test_id("compare-judging")).to_have_attribute("data-comparison-id", str(made["id"]))
    assert page.get_by_test_id("compare-left-text").text_content() == made["left"]["text"]
    assert page.get_by_test_id("compare-right-text").text_content() == made["right"]["text"]

    page.get_by_test_id("judge-tie").click()
    expect(page.get_by_test_id("compare-verdict")).to_contain_text("tie")
    expect(item).to_have_count(0)
    judged = {c["id"]: c for c in api(studio).get("/comparisons").json()["data"]}[made["id"]]
    assert judged["winner"] == "tie"


# ---------------------------------------------------------------- history


def test_history_search_finds_an_edit_and_filters_narrow_the_list(studio, page):
    alice = api(studio)
    teapot = write_piece(studio, fields={"product": "ceramic teapot"})
    alice.post(f"/pieces/{teapot['id']}/versions", json={"text": "A teapot that pours like a zebrafinch sings."})
    alice.post(f"/pieces/{teapot['id']}/feedback", json={"status": "accepted", "rating": 5})
    poem = write_piece(studio, template="poem", fields={"topic": "harbour fog"})

    sign_in(page, studio, tab="history")
    items = page.get_by_test_id("history-item")
    expect(item_of(page, poem["id"])).to_have_count(1)

    page.get_by_test_id("history-q").fill("zebrafinch")
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-piece-id", str(teapot["id"]))
    expect(items.first.get_by_test_id("history-snippet")).to_contain_text("zebrafinch")
    expect(page.get_by_test_id("history-total")).to_have_text("1 piece")

    page.get_by_test_id("history-q").fill("")
    page.get_by_test_id("history-template").select_option("poem")
    expect(item_of(page, teapot["id"])).to_have_count(0)
    expect(item_of(page, poem["id"])).to_have_count(1)
    assert set(items.locator("strong").all_text_contents()) == {"poem"}

    page.get_by_test_id("history-template").select_option("")
    page.get_by_test_id("history-status").select_option("accepted")
    page.get_by_test_id("history-min-rating").select_option("5")
    expect(item_of(page, teapot["id"])).to_have_count(1)
    expect(item_of(page, poem["id"])).to_have_count(0)

    page.get_by_test_id("history-clear").click()
    expect(item_of(page, poem["id"])).to_have_count(1)
    today = dt.date.today()
    page.get_by_test_id("history-since").fill((today + dt.timedelta(days=1)).isoformat())
    expect(page.get_by_test_id("history-total")).to_have_text("0 pieces")
    page.get_by_test_id("history-since").fill("")
    page.get_by_test_id("history-until").fill(today.isoformat())  # "until" includes that day
    expect(item_of(page, poem["id"])).to_have_count(1)
    page.get_by_test_id("history-until").fill((today - dt.timedelta(days=1)).isoformat())
    expect(page.get_by_test_id("history-total")).to_have_text("0 pieces")


def test_history_opens_a_piece_to_generate_again_and_branch(studio, page):
    alice = api(studio)
    piece = write_piece(
        studio,
        fields={"product": "walnut desk organiser", "tone": "luxury"},
        settings={"max_tokens": 12, "seed": 7, "temperature": 0.6},
    )
    for text in ("First edit of the organiser.", "Second edit of the organiser."):
        alice.post(f"/pieces/{piece['id']}/versions", json={"text": text})
    versions = alice.get(f"/pieces/{piece['id']}").json()["versions"]

    sign_in(page, studio, tab="history")
    item_of(page, piece["id"]).get_by_role("button").click()
    detail = page.get_by_test_id("history-detail")
    expect(detail).to_have_attribute("data-piece-id", str(piece["id"]))
    expect(page.get_by_test_id("history-fields")).to_contain_text("walnut desk organiser")
    expect(page.get_by_test_id("version-item")).to_have_count(3)  # the original and two edits
    expect(page.get_by_test_id("history-text")).to_have_text("Second edit of the organiser.")
    page.get_by_test_id("version-item").nth(1).click()
    expect(page.get_by_test_id("history-text")).to_have_text("First edit of the organiser.")
    expect(page.get_by_test_id("history-diff").locator("ins")).not_to_have_count(0)
    screenshot(page, "history")

    page.get_by_test_id("history-branch").click()
    expect(detail).not_to_have_attribute("data-piece-id", str(piece["id"]))
    child = alice.get(f"/pieces/{detail.get_attribute('data-piece-id')}").json()
    assert (child["parent_piece"], child["parent_version"]) == (piece["id"], versions[0]["id"])
    assert child["text"] == "First edit of the organiser."
    expect(page.get_by_test_id("history-title")).to_contain_text(f"piece {child['id']}")

    item_of(page, piece["id"]).get_by_role("button").click()
    expect(detail).to_have_attribute("data-piece-id", str(piece["id"]))
    page.get_by_test_id("history-again").click()
    expect(page.get_by_test_id("screen-write")).to_be_visible()
    expect(page.get_by_test_id("write-template")).to_have_value("product-description")
    expect(page.get_by_test_id("field-product")).to_have_value("walnut desk organiser")
    assert page.get_by_test_id("field-tone").locator("option:checked").text_content() == "luxury"
    expect(page.get_by_test_id("setting-temperature")).to_have_value("0.6")
    expect(page.get_by_test_id("setting-seed")).to_have_value("7")
    expect(page.get_by_test_id("setting-max_tokens")).to_have_value("12")
    page.get_by_test_id("write-generate").click()
    expect(page.locator(DONE)).to_have_count(1)
    again = alice.get(f"/pieces/{page.get_by_test_id('screen-write').get_attribute('data-piece-id')}").json()
    assert again["id"] != piece["id"]
    assert again["fields"]["product"] == "walnut desk organiser" and again["fields"]["tone"] == "luxury"
    assert again["settings"]["seed"] == 7 and again["settings"]["max_new_tokens"] == 12


def test_another_key_sees_none_of_the_first_creators_pieces(studio, page):
    mine = write_piece(studio, fields={"product": "private quokka notebook"})
    alice_ids = {p["id"] for p in api(studio).get("/pieces", params={"limit": 200}).json()["data"]}
    assert mine["id"] in alice_ids

    sign_in(page, studio, BOB, tab="history")
    expect(page.get_by_test_id("history-total")).to_contain_text("piece")
    shown = {int(x) for x in page.get_by_test_id("history-item").evaluate_all("els => els.map(e => e.dataset.pieceId)")}
    assert not shown & alice_ids
    page.get_by_test_id("history-q").fill("quokka")
    expect(page.get_by_test_id("history-total")).to_have_text("0 pieces")
    assert api(studio, BOB).get(f"/pieces/{mine['id']}").status_code == 404


# ---------------------------------------------------------------- the feedback loop


def test_export_downloads_jsonl_with_the_edit_as_chosen(studio, page):
    alice = api(studio)
    piece = write_piece(studio, fields={"product": "linen apron"})
    edit = "An apron of heavy linen with deep pockets, EXPORTMARK."
    alice.post(f"/pieces/{piece['id']}/versions", json={"text": edit})
    alice.post(f"/pieces/{piece['id']}/feedback", json={"status": "accepted"})

    sign_in(page, studio, tab="improve")
    expect(page.get_by_test_id("summary-sft")).not_to_have_text("–")
    with page.expect_download() as dpo_download:
        page.get_by_test_id("export-dpo").click()
    assert dpo_download.value.suggested_filename == "inkwell-feedback-dpo.jsonl"
    rows = [r for r in jsonl(dpo_download.value.path()) if r.get("piece_id") == piece["id"] and r["kind"] == "edit"]
    assert len(rows) == 1 and rows[0]["chosen"] == edit and rows[0]["rejected"] == piece["variants"][0]["text"]
    expect(page.get_by_test_id("export-note")).to_contain_text("rows")

    with page.expect_download() as sft_download:
        page.get_by_test_id("export-sft").click()
    rows = [r for r in jsonl(sft_download.value.path()) if r.get("piece_id") == piece["id"]]
    assert len(rows) == 1 and rows[0]["messages"][-1] == {"role": "assistant", "content": edit}


@pytest.mark.slow
def test_training_draws_the_loss_curve_and_reports(studio, page):
    alice = api(studio)
    for i in range(5):
        piece = write_piece(studio, fields={"product": f"trail gear item {i}"})
        alice.post(f"/pieces/{piece['id']}/versions", json={"text": f"Light, tough trail gear number {i}."})
        alice.post(f"/pieces/{piece['id']}/feedback", json={"status": "accepted"})

    sign_in(page, studio, tab="improve")
    page.get_by_test_id("train-max-steps").fill("2")
    page.get_by_test_id("train-start").click()
    card = page.get_by_test_id("job-card").first
    expect(card).to_be_visible()
    job_id = int(card.get_attribute("data-job-id"))
    page.wait_for_function(
        f"() => document.querySelector(\"[data-testid=job-card][data-job-id='{job_id}']\")?.dataset.status !== 'running'",
        timeout=240_000,
        polling=500,
    )
    job = alice.get(f"/training/{job_id}").json()
    assert job["status"] == "finished", job["error"]
    points = card.get_by_test_id("loss-line").get_attribute("points").split()
    assert len(points) >= 2 and len(points) == len(job["metrics"])
    expect(card.get_by_test_id("job-report")).to_contain_text("Perplexity")
    expect(card.get_by_test_id("job-report")).to_contain_text("Win rate")
    screenshot(page, "improve")

    card.get_by_test_id("job-round").click()
    expect(card.get_by_test_id("job-round-info")).to_contain_text("0 of")
    open_tab(page, "compare")
    expect(page.get_by_test_id("pending-item").filter(has_text=f"job-{job_id}")).not_to_have_count(0)

    open_tab(page, "improve")
    card.get_by_test_id("job-promote").click()
    expect(card).to_have_attribute("data-status", "promoted")
    expect(page.locator(f"[data-testid=write-system] option[value='fb-{job_id}']")).to_have_count(1)


# ---------------------------------------------------------------- safety and accessibility


def test_markup_in_fields_and_edits_is_shown_as_text_and_never_runs(studio, page):
    sign_in(page, studio)
    piece_id = generate(page, PAYLOAD)
    page.get_by_test_id("edit-text").fill(PAYLOAD + " edited")
    page.get_by_test_id("edit-save").click()
    expect(page.get_by_test_id("edit-saved")).to_contain_text("1 saved version")
    expect(page.get_by_test_id("edit-diff")).to_contain_text("<script>")
    page.get_by_test_id("tag-input").fill(PAYLOAD)
    page.get_by_test_id("tag-add").click()
    expect(page.get_by_test_id("tags")).to_contain_text("<img src=x")
    api(studio).post(
        "/comparisons",
        json={
            "template": "headline",
            "fields": {"text": PAYLOAD},
            "systems": ["base", "alpha"],
            "settings": {"max_tokens": 6},
        },
    )

    open_tab(page, "history")
    item_of(page, piece_id).get_by_role("button").click()
    expect(page.get_by_test_id("history-fields")).to_contain_text(PAYLOAD)
    expect(page.get_by_test_id("history-text")).to_have_text(PAYLOAD + " edited")
    expect(item_of(page, piece_id).get_by_test_id("history-snippet")).to_contain_text("<script>")
    page.get_by_test_id("history-again").click()
    expect(page.get_by_test_id("field-product")).to_have_value(PAYLOAD)
    open_tab(page, "compare")
    expect(page.get_by_test_id("pending-list")).to_contain_text("<img src=x")

    page.wait_for_timeout(300)  # an injected onerror would have fired by now
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main img, main script").count() == 0


def test_every_control_has_a_label_and_the_narrow_screen_does_not_scroll_sideways(studio, page):
    sign_in(page, studio)
    generate(page, "umbrella")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("button, input, select, textarea, summary")].filter(el => {
             const named = el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")
               || el.textContent.trim() || el.getAttribute("title");
             return !named;
           }).map(el => el.outerHTML.slice(0, 120))"""
    )
    assert unlabelled == []
    missing_ids = page.evaluate(
        """() => [...document.querySelectorAll("main input, main select, main textarea")]
             .filter(el => !el.dataset.testid).map(el => el.outerHTML.slice(0, 120))"""
    )
    assert missing_ids == []

    page.set_viewport_size({"width": 390, "height": 800})
    for tab in ("write", "compare", "history", "improve"):
        open_tab(page, tab)
        width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1], f"{tab} scrolls sideways at 390 px: {width}"
