""".venv/bin/python docs/screenshots.py [--out docs/images]

Remakes the studio screenshots in docs/studio.md (docs/images/studio-*.png) with the real embedded model,
SmolLM2-135M-Instruct, so the pictures show real text. It starts the studio in this process (a uvicorn server
in a thread, a temporary INKWELL_HOME and database, the usual model cache) and plays one creator's session in
Debian's headless Chromium at 1280x800 with Playwright:

  login    the sign-in screen
  write    a product description of a bamboo water bottle, two variants side by side (fixed seed)
  edit     the chosen variant rewritten by hand, saved, five stars, tagged "on-brand", accepted
  improve  ten more pieces written, edited and accepted through the API; an SFT job trained from the
           Improve screen (10 steps), with its loss curve and report
  compare  the job's blind round judged, the adapter promoted, then the base model against it on a new product
  history  a search for "bottle" with the first piece opened
  longform a study guide on the water cycle planned, two sections chosen from candidates (one edited), assembled

`--only longform` signs in and makes the long-form picture alone (about 2 minutes).

It takes 3.5-5 minutes on 2 CPU cores. Generation is seeded, so a second run writes the same texts.
Chromium is /usr/bin/chromium (`apt-get install chromium`, and fonts-noto-color-emoji for the emoji the model
sometimes writes); Playwright for Python is in the dev extras.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))  # the browser tests' Chromium and its launch arguments
from studio_helpers import CHROMIUM, CHROMIUM_ARGS, VIEWPORT  # noqa: E402

MODEL = "smollm2-135m-instruct"
KEY = "sk-studio-maya"  # one creator
SEED = 7
TRAIN_STEPS = 10
DONE = "[data-testid=variant-card][data-state=done]"
START = time.monotonic()

# The creator's first piece, on the Write screen, and the text she makes of it.
BOTTLE = {
    "product": "bamboo water bottle",
    "audience": "hikers",
    "features": "keeps drinks cold 24 hours, leak-proof lid",
}
BOTTLE_EDIT = (
    "Our bamboo water bottle keeps drinks cold for 24 hours, so the water you fill at the trailhead is still "
    "icy at the summit. The leak-proof lid lets it ride upside down in your pack without a drop escaping, and "
    "the bamboo sleeve is light, easy to grip and kind to the planet. One bottle that keeps up with every trail."
)

# More pieces written through the API, each edited into a human text and accepted: the training data.
# (template, fields, the creator's text, rating, tags)
PIECES = [
    (
        "product-description",
        {
            "product": "trail running shoes",
            "audience": "trail runners",
            "features": ["grippy lugged sole", "quick-drying mesh"],
        },
        "Built for muddy climbs and rocky descents, these trail running shoes grip where the path gets rough. "
        "The lugged sole bites into loose dirt and wet stone, and the quick-drying mesh sheds water from stream "
        "crossings in minutes. Light enough for race day, tough enough for every training run in between.",
        5,
        ["on-brand"],
    ),
    (
        "product-description",
        {
            "product": "glass olive oil bottle",
            "audience": "home cooks",
            "features": ["drip-free pour spout", "dark glass keeps oil fresh"],
        },
        "Pour exactly as much as you need with this glass olive oil bottle. The drip-free spout means no sticky "
        "rings on the counter, and the dark glass shields your oil from light so it tastes fresh to the last "
        "drop. Refill it from your favourite tin and keep it right by the stove.",
        4,
        ["on-brand"],
    ),
    (
        "product-description",
        {
            "product": "kids' water bottle",
            "audience": "parents of young children",
            "features": ["spill-proof straw lid", "dishwasher safe"],
        },
        "A water bottle small hands can manage on their own. The spill-proof straw lid means no puddles in the "
        "school bag, and the whole bottle goes in the dishwasher at the end of the day. Light, sturdy and easy "
        "to refill between lessons and playtime.",
        5,
        [],
    ),
    (
        "product-description",
        {
            "product": "canvas tote bag",
            "audience": "farmers' market shoppers",
            "features": ["heavy cotton canvas", "inside zip pocket"],
        },
        "Carry the whole market home in one trip. This tote is cut from heavy cotton canvas that holds squash, "
        "jars and a loaf of bread without sagging, and an inside zip pocket keeps your keys and wallet apart "
        "from the produce. Shake it out, fold it small, and it is ready for next Saturday.",
        4,
        ["too long"],
    ),
    (
        "product-description",
        {"product": "LED head torch", "audience": "campers", "features": ["300 lumens", "USB-C rechargeable"]},
        "Light the way back to camp with a head torch that fits in your pocket. Its 300-lumen beam reaches far "
        "down the trail, and a dimmer setting is easy on your tent mates' eyes. Charge it over USB-C from your "
        "power bank, so there are no spare batteries to pack.",
        5,
        ["on-brand"],
    ),
    (
        "product-description",
        {
            "product": "ceramic pour-over coffee dripper",
            "audience": "coffee lovers",
            "features": ["fits most mugs", "holds heat for an even brew"],
        },
        "Slow down your morning with a ceramic dripper that brews a clean, sweet cup. The thick ceramic holds "
        "heat for an even brew from the first pour to the last, and the wide base sits steadily on almost any "
        "mug. Add a filter, your favourite beans and four minutes of calm.",
        4,
        [],
    ),
    (
        "social-post",
        {
            "topic": "our bamboo water bottle is back in stock",
            "platform": "instagram",
            "tone": "excited",
            "call_to_action": "Shop the link in our bio",
        },
        "It's back! Our bamboo water bottle sold out in a week, and the restock has just landed. Cold drinks "
        "for 24 hours, a lid that never leaks, and a bamboo sleeve that looks good on any trail. Shop the link "
        "in our bio. #HikingGear #ReusableBottle",
        5,
        ["on-brand"],
    ),
    (
        "social-post",
        {
            "topic": "a free guided hike this Saturday at 9 am from the Pine Ridge trailhead",
            "platform": "facebook",
            "tone": "friendly",
            "call_to_action": "Reply to save your spot",
        },
        "Fancy a morning on the trail? Join our free guided hike this Saturday at 9 am from the Pine Ridge "
        "trailhead. It is an easy loop with a coffee stop at the lookout, and beginners are very welcome. "
        "Reply to save your spot! #GuidedHike #PineRidge",
        4,
        [],
    ),
    (
        "social-post",
        {
            "topic": "what we learned testing 12 water bottles on a week-long trek",
            "platform": "linkedin",
            "tone": "professional",
            "hashtags": False,
        },
        "We spent a week on the trail testing 12 water bottles, so our customers don't have to.\n\n"
        "Three lessons stood out. Lids fail before bottles do, so every lid we make is now opened 500 times "
        "in testing. Grip matters more than weight when your hands are cold. And insulation only counts if "
        "the bottle still fits a pack's side pocket.\n\nEvery one of them is going into our next design.",
        5,
        ["great"],
    ),
    (
        "social-post",
        {"topic": "autumn trail tips: layers, light and an early start", "platform": "x", "tone": "informative"},
        "Autumn trail tips: pack one more layer than you think you need, carry a head torch because the light "
        "goes early, and set off before 9 to finish in daylight. #HikingTips #AutumnHikes",
        4,
        [],
    ),
]

# The comparison written on the Compare screen: a new product, base model against the promoted adapter.
BEANIE = {
    "product": "merino wool beanie",
    "audience": "winter hikers",
    "features": "itch-free merino, fits under a hood",
}


def missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    return None


# ---------------------------------------------------------------- the server


class Studio:
    """`inkwell studio` in this process: a uvicorn server on a free port, in a thread."""

    def __init__(self, db_path: Path):
        import uvicorn

        from inkwell.serve.app import create_app
        from inkwell.serve.state import ServeConfig, ServerState

        config = ServeConfig(
            model=MODEL, engine="torch", dtype="fp32", device="cpu", api_keys=[KEY], db_path=str(db_path)
        )
        self.state = ServerState(config)
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(self.state), host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def start(self) -> Studio:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not (self.server.started and self.server.servers):
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the studio server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"
        if not self.state.wait_ready(600):  # the first run prepares the model in the cache
            raise RuntimeError(f"the model did not load: {self.state.load_error}")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def api(studio: Studio):
    import httpx

    return httpx.Client(base_url=studio.url + "/studio/api", headers={"Authorization": f"Bearer {KEY}"}, timeout=600)


def stop_running_jobs(client) -> None:
    """A training job still running when the script fails: stop its process group."""
    with contextlib.suppress(Exception):
        for job in client.get("/training").json()["data"]:
            if job["status"] == "running" and job.get("pid"):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(job["pid"], signal.SIGTERM)


# ---------------------------------------------------------------- judging


def score(text: str, brief: dict) -> int:
    """A rough editor's eye for a product description: the brief's words it uses, less a point for a text
    cut off mid-sentence."""
    words = {w for value in brief.values() for w in re.findall(r"[a-z0-9]{4,}", value.lower())}
    found = sum(w in text.lower() for w in words)
    return found - (0 if text.rstrip().endswith((".", "!", "?", '"')) else 1)


def judge_round(client, job: dict) -> int:
    """Judge the job's blind round as the creator would: the text closer to her own (the report's ROUGE-L
    against her held-back text) wins. Returns how many were judged."""
    heldout = job["report"].get("heldout") or []
    pending = [c for c in client.get("/comparisons", params={"pending": True}).json()["data"] if c.get("round")]
    for comparison in pending:
        winner = "tie"
        for item in heldout:
            if {comparison["left_text"], comparison["right_text"]} != {item["base_text"], item["new_text"]}:
                continue
            if item["base_text"] != item["new_text"] and item["rouge_new"] != item["rouge_base"]:
                better = item["new_text"] if item["rouge_new"] > item["rouge_base"] else item["base_text"]
                winner = "left" if comparison["left_text"] == better else "right"
            break
        made = client.post(f"/comparisons/{comparison['id']}/judge", json={"winner": winner})
        made.raise_for_status()
    return len(pending)


# ---------------------------------------------------------------- the session


def step(message: str) -> None:
    print(f"[{time.monotonic() - START:4.0f} s] {message}", flush=True)


def settle(page) -> None:
    """A calm picture: no focus ring, no passing toast, each form scrolled to its top."""
    page.evaluate(
        """() => {
             document.activeElement?.blur();
             document.querySelectorAll(".toast").forEach((t) => t.remove());
             document.querySelectorAll(".compose").forEach((c) => { c.scrollTop = 0; });
           }"""
    )
    page.wait_for_timeout(400)


def shoot(page, out: Path, name: str) -> None:
    settle(page)
    path = out / f"studio-{name}.png"
    page.screenshot(path=str(path))
    print(f"saved {path}", flush=True)


def open_tab(page, tab: str) -> None:
    page.get_by_test_id(f"tab-{tab}").click()
    page.get_by_test_id(f"screen-{tab}").wait_for(state="visible")
    page.evaluate("window.scrollTo(0, 0)")


def session(page, studio: Studio, client, out: Path) -> None:
    from playwright.sync_api import expect

    # ---- sign in
    step("login")
    page.goto(studio.url + "/studio")
    expect(page.get_by_test_id("screen-login")).to_be_visible()
    page.get_by_test_id("login-key").fill(KEY)
    shoot(page, out, "login")
    page.get_by_test_id("login-submit").click()
    page.wait_for_selector("body[data-ready='true']")
    expect(page.get_by_test_id("screen-write")).to_be_visible()

    # ---- write: two variants side by side
    step("write: two variants of the bamboo water bottle")
    page.get_by_test_id("write-template").select_option("product-description")
    for name, value in BOTTLE.items():
        page.get_by_test_id(f"field-{name}").fill(value)
    page.get_by_test_id("write-settings-toggle").click()
    page.get_by_test_id("setting-max_tokens").fill("120")
    page.get_by_test_id("setting-seed").fill(str(SEED))
    page.get_by_test_id("write-n").select_option("2")
    page.get_by_test_id("write-generate").click()
    expect(page.locator(DONE)).to_have_count(2, timeout=600_000)
    expect(page.get_by_test_id("screen-write")).to_have_attribute("data-streaming", "false")
    piece_id = int(page.get_by_test_id("screen-write").get_attribute("data-piece-id"))
    cards = page.get_by_test_id("variant-card")
    texts = [cards.nth(i).get_by_test_id("variant-text").text_content() for i in range(2)]
    assert all(t.strip() for t in texts), texts
    shoot(page, out, "write")

    # ---- edit: keep the better variant, rewrite it, judge it
    step("edit: the creator's version, five stars, on-brand, accepted")
    best = max(range(2), key=lambda i: score(texts[i], BOTTLE))
    if best:
        cards.nth(best).get_by_test_id("variant-choose").click()
        expect(cards.nth(best)).to_have_attribute("data-chosen", "true")
    page.get_by_test_id("edit-text").fill(BOTTLE_EDIT)
    page.get_by_test_id("edit-save").click()
    expect(page.get_by_test_id("edit-saved")).to_contain_text("1 saved version")
    page.get_by_test_id("star-5").click()
    expect(page.get_by_test_id("star-5")).to_have_attribute("aria-pressed", "true")
    page.get_by_test_id("tag-on-brand").click()
    expect(page.get_by_test_id("tag-on-brand")).to_have_attribute("aria-pressed", "true")
    page.get_by_test_id("edit-accept").click()
    expect(page.get_by_test_id("edit-status")).to_have_text("accepted")
    expect(page.get_by_test_id("edit-diff").locator("ins").first).to_be_visible()
    page.get_by_test_id("edit-panel").evaluate(
        "el => window.scrollTo(0, el.getBoundingClientRect().top + scrollY - 70)"
    )
    shoot(page, out, "edit")
    assert client.get(f"/pieces/{piece_id}").json()["text"] == BOTTLE_EDIT

    # ---- more pieces through the API, each edited and accepted
    for i, (template, fields, text, rating, tags) in enumerate(PIECES):
        step(f"api: {template} {i + 1}/{len(PIECES)}")
        made = client.post(
            "/pieces",
            json={
                "template": template,
                "fields": fields,
                "settings": {"max_tokens": 100, "seed": SEED + i},
                "stream": False,
            },
        )
        made.raise_for_status()
        pid = made.json()["id"]
        client.post(f"/pieces/{pid}/versions", json={"text": text}).raise_for_status()
        client.post(
            f"/pieces/{pid}/feedback", json={"status": "accepted", "rating": rating, "tags": tags}
        ).raise_for_status()

    # ---- improve: train from the feedback
    step(f"improve: training (sft, {TRAIN_STEPS} steps)")
    open_tab(page, "improve")
    expect(page.get_by_test_id("summary-sft")).not_to_have_text("–")
    page.get_by_test_id("train-stage").select_option("sft")
    page.get_by_test_id("train-max-steps").fill(str(TRAIN_STEPS))
    page.get_by_test_id("train-start").click()
    card = page.get_by_test_id("job-card").first
    expect(card).to_be_visible()
    job_id = int(card.get_attribute("data-job-id"))
    expect(card).not_to_have_attribute("data-status", "running", timeout=1_200_000)
    job = client.get(f"/training/{job_id}").json()
    if job["status"] != "finished":
        raise RuntimeError(f"training job {job_id} {job['status']}: {job['error']} (see {job.get('log')})")
    expect(card.get_by_test_id("job-report")).to_contain_text("Win rate")
    expect(card.get_by_test_id("loss-line")).to_be_visible()
    shoot(page, out, "improve")

    # ---- the blind round, then promote
    step("improve: blind round and promote")
    card.get_by_test_id("job-round").click()
    expect(card.get_by_test_id("job-round-info")).to_contain_text("0 of")
    judged = judge_round(client, job)
    step(f"judged {judged} round comparisons")
    card.get_by_test_id("job-promote").click()
    expect(card).to_have_attribute("data-status", "promoted")
    system = f"fb-{job_id}"

    # ---- compare: base against the new system on a new product
    step(f"compare: base vs {system}")
    open_tab(page, "compare")
    page.get_by_test_id("compare-template").select_option("product-description")
    for name, value in BEANIE.items():
        page.get_by_test_id(f"compare-field-{name}").fill(value)
    page.get_by_test_id("compare-settings-toggle").click()
    page.get_by_test_id("compare-setting-max_tokens").fill("100")
    page.get_by_test_id("compare-setting-seed").fill(str(SEED))
    page.get_by_test_id("compare-system-a").select_option("base")
    page.get_by_test_id("compare-system-b").select_option(system)
    page.get_by_test_id("compare-run").click()
    expect(page.get_by_test_id("compare-judging")).to_be_visible(timeout=600_000)
    expect(page.get_by_test_id("compare-right-text")).not_to_be_empty()
    left = page.get_by_test_id("compare-left-text").text_content()
    right = page.get_by_test_id("compare-right-text").text_content()
    diff = score(left, BEANIE) - score(right, BEANIE)
    page.get_by_test_id("judge-left" if diff > 0 else "judge-right" if diff < 0 else "judge-tie").click()
    expect(page.get_by_test_id("compare-left-system")).not_to_have_text("hidden")
    expect(page.get_by_test_id("leaderboard-row")).to_have_count(2)
    expect(page.get_by_test_id("pending-count")).to_have_text("0")
    shoot(page, out, "compare")

    # ---- history: search, open the first piece
    step("history: search for 'bottle'")
    open_tab(page, "history")
    page.get_by_test_id("history-q").fill("bottle")
    page.get_by_test_id("history-search").click()
    items = page.get_by_test_id("history-item")
    expect(page.get_by_test_id("history-total")).not_to_have_text("0 pieces")
    expect(items.first.get_by_test_id("history-snippet")).to_contain_text("bottle", ignore_case=True)
    first = items.first.get_attribute("data-piece-id")
    items.first.get_by_role("button").click()
    expect(page.get_by_test_id("history-detail")).to_have_attribute("data-piece-id", first)
    expect(page.get_by_test_id("history-text")).not_to_be_empty()
    expect(page.get_by_test_id("history-diff").locator("ins").first).to_be_visible()
    shoot(page, out, "history")


def longform(page, studio: Studio, out: Path, sign_in: bool) -> None:
    from playwright.sync_api import expect

    step("longform: plan a study guide, choose two sections, assemble")
    if sign_in:
        page.goto(studio.url + "/studio")
        page.get_by_test_id("login-key").fill(KEY)
        page.get_by_test_id("login-submit").click()
        page.wait_for_selector("body[data-ready='true']")
    open_tab(page, "longform")
    page.get_by_test_id("longform-kind").select_option("study-guide")
    page.get_by_test_id("longform-topic").fill("the water cycle")
    page.get_by_test_id("longform-words").fill("600")
    page.get_by_test_id("longform-count").select_option("2")
    page.get_by_test_id("longform-start").click()
    expect(page.get_by_test_id("longform-work")).to_be_visible(timeout=600_000)
    candidates = page.get_by_test_id("longform-candidate")
    for i in range(2):
        page.get_by_test_id("longform-more").click()
        expect(candidates).to_have_count(2, timeout=600_000)
        if i == 1:  # the creator's own words for the second section
            card = candidates.nth(0)
            card.get_by_test_id("longform-edit").click()
            text = card.get_by_test_id("longform-edit-text").input_value()
            first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
            card.get_by_test_id("longform-edit-text").fill(
                first + " Water evaporates from seas and lakes, rises as vapour and cools into clouds."
            )
            card.get_by_test_id("longform-edit-save").click()
        else:
            candidates.nth(0).get_by_test_id("longform-take").click()
        expect(page.get_by_test_id("longform-chain-section")).to_have_count(i + 1, timeout=60_000)
    page.get_by_test_id("longform-more").click()
    expect(candidates).to_have_count(2, timeout=600_000)
    page.get_by_test_id("longform-assemble").click()
    expect(page.get_by_test_id("longform-piece")).to_contain_text("# The water cycle")
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, out, "longform")


def main() -> int:
    parser = argparse.ArgumentParser(description="Remake the studio screenshots with the real embedded model.")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder for studio-*.png")
    parser.add_argument("--only", choices=["longform"], help="make this picture alone")
    args = parser.parse_args()
    reason = missing()
    if reason:
        print(f"screenshots: {reason}", file=sys.stderr)
        return 1
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="inkwell-screenshots-") as tmp:
        # The studio's runs and database go to a throwaway home; the model cache stays where it is.
        from inkwell.home import models_dir

        os.environ["INKWELL_MODEL_CACHE"] = str(models_dir())
        os.environ["INKWELL_HOME"] = str(Path(tmp) / "home")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        print(f"model cache: {os.environ['INKWELL_MODEL_CACHE']}; loading {MODEL}…", flush=True)
        studio = client = None
        try:
            studio = Studio(Path(tmp) / "studio.db").start()
            client = api(studio)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
                    context.set_default_timeout(60_000)
                    page = context.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda error: errors.append(str(error)))
                    if args.only != "longform":
                        session(page, studio, client, out)
                    longform(page, studio, out, sign_in=args.only == "longform")
                    if errors:
                        raise RuntimeError(f"errors in the page: {errors}")
                finally:
                    browser.close()
        finally:
            if client is not None:
                stop_running_jobs(client)
                client.close()
            if studio is not None:
                studio.stop()
    print(f"done in {time.monotonic() - START:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
