"""Block and flag rates of the default moderation policy on real, benign text from Debian packages.

    python benchmarks/bench_moderation.py          # needs: apt-get install fortunes fortunes-zh debian-faq debian-faq-zh-cn
    python benchmarks/bench_moderation.py --generated 1000 --save zh-pieces.jsonl   # + 1,000 Gemma-3 Chinese pieces

English: the `fortunes` quotations and the Debian FAQ (HTML chapters, one piece per paragraph/list item);
Chinese: fortunes-zh (song100, tang300, chinese) and the Chinese Debian FAQ. Prints one JSON line per corpus
(pieces, blocked, flagged, categories) and the blocked pieces, so a change to the matcher shows what it costs
writers. The target is 0 blocked benign pieces (a real slur quoted in a novel is the one English block).
`--generated N` adds N Chinese pieces written by the embedded Gemma-3 (the poem template, language zh, over
topics taken from fortunes-zh's titles, seeded): what a model writes is where a matcher's false positives
show (a poem line's 「绿，绿」 was blocked as a slur before clause punctuation stopped joining characters).
"""

from __future__ import annotations

import argparse
import glob
import json
import platform
import time
from collections import Counter
from html.parser import HTMLParser

from inkwell.data.sample import sample_rows
from inkwell.errors import InkwellError
from inkwell.safety import load_policy

FAQ = "/usr/share/doc/debian/FAQ"
BLOCKS = ("p", "li", "dt", "dd", "h1", "h2", "h3", "pre", "td")


class _Paragraphs(HTMLParser):
    """The text of each block element of an HTML page (scripts and styles left out)."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._current: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")
        if tag in BLOCKS:
            self._flush()

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style")
        if tag in BLOCKS:
            self._flush()

    def handle_data(self, data):
        if not self._skip:
            self._current.append(data)

    def _flush(self):
        text = " ".join("".join(self._current).split())
        if text:
            self.parts.append(text)
        self._current = []


def faq(pattern: str) -> list[str]:
    pieces: list[str] = []
    for path in sorted(glob.glob(f"{FAQ}/{pattern}")):
        parser = _Paragraphs()
        with open(path, encoding="utf-8") as handle:
            parser.feed(handle.read())
        parser._flush()
        pieces += parser.parts
    return pieces


def sample(name: str) -> list[str]:
    try:
        return [row["text"] for row in sample_rows(name)]
    except InkwellError:
        return []


def generated_chinese(count: int, save: str | None) -> list[str]:
    """`count` Chinese pieces from the embedded Gemma-3 through the poem template (bulk engine, seeded)."""
    from inkwell.generate.builder import EngineSpec, open_engine
    from inkwell.generate.content import prepare, write_many
    from inkwell.prompts.library import get_template

    titles = [t.splitlines()[0].strip("《》 ") for t in sample("song100") + sample("tang300")]
    topics = [t for t in dict.fromkeys(titles) if 1 < len(t) <= 8] or ["秋雨", "春风", "明月", "故乡"]
    engine = open_engine(EngineSpec("gemma3-270m", workload="bulk", batch_size=16), print)
    template = get_template("poem")
    forms = ["jueju", "free", "lushi"]
    rendered, settings = [], None
    for i in range(count):
        fields = {"topic": topics[i % len(topics)], "language": "zh", "form": forms[i % len(forms)]}
        one, settings = prepare(engine, template, fields, overrides={"max_new_tokens": 64, "seed": i})
        rendered.append(one)
    started, texts = time.perf_counter(), []
    for start in range(0, count, 64):
        for outcome in write_many(engine, template, rendered[start : start + 64], settings):
            texts += [item.text for item in outcome] if isinstance(outcome, list) else []
        print(f"  generated {len(texts)}/{count} in {time.perf_counter() - started:.0f} s", flush=True)
    if save:
        with open(save, "w", encoding="utf-8") as handle:
            for text in texts:
                handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    return texts


def cpu_flags() -> str:
    """The CPU and the flags that decide its speed (inkwell.models.cpu)."""
    from inkwell.models.cpu import describe

    return describe()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generated", type=int, default=0, help="also N Chinese pieces written by Gemma-3")
    parser.add_argument("--save", help="keep the generated pieces in this JSONL file")
    args = parser.parse_args()
    corpora = {
        "fortunes (en)": sample("fortunes"),
        "debian-faq (en)": faq("*.en.html"),
        "song100 (zh)": sample("song100"),
        "tang300 (zh)": sample("tang300"),
        "chinese (zh)": sample("chinese"),
        "debian-faq-zh-cn (zh)": faq("zh-cn/*.html"),
    }
    if args.generated:
        corpora[f"gemma3-270m poems (zh, {args.generated} generated)"] = generated_chinese(args.generated, args.save)
    policy = load_policy()
    machine = {"machine": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(), "policy": policy.name}
    print(json.dumps(machine))
    for name, texts in corpora.items():
        blocked, flagged, categories = [], 0, Counter()
        for text in texts:
            result = policy.moderate(text, "output")
            categories.update(result.categories)
            if result.blocked:
                blocked.append({"categories": result.categories, "found": [f.text for f in result.findings][:3]})
            elif result.findings:
                flagged += 1
        print(
            json.dumps(
                {
                    "corpus": name,
                    "pieces": len(texts),
                    "blocked": len(blocked),
                    "flagged": flagged,
                    "categories": dict(categories),
                    "blocked_pieces": blocked,
                },
                ensure_ascii=False,
            )
        )


if __name__ == "__main__":
    main()
