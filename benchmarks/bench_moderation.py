"""Block and flag rates of the default moderation policy on real, benign text from Debian packages.

    python benchmarks/bench_moderation.py          # needs: apt-get install fortunes fortunes-zh debian-faq debian-faq-zh-cn

English: the `fortunes` quotations and the Debian FAQ (HTML chapters, one piece per paragraph/list item);
Chinese: fortunes-zh (song100, tang300, chinese) and the Chinese Debian FAQ. Prints one JSON line per corpus
(pieces, blocked, flagged, categories) and the blocked pieces, so a change to the matcher shows what it costs
writers. The target is 0 blocked benign pieces (a real slur quoted in a novel is the one English block).
"""

from __future__ import annotations

import glob
import json
import platform
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


def main() -> None:
    corpora = {
        "fortunes (en)": sample("fortunes"),
        "debian-faq (en)": faq("*.en.html"),
        "song100 (zh)": sample("song100"),
        "tang300 (zh)": sample("tang300"),
        "chinese (zh)": sample("chinese"),
        "debian-faq-zh-cn (zh)": faq("zh-cn/*.html"),
    }
    policy = load_policy()
    print(json.dumps({"machine": platform.processor() or platform.machine(), "policy": policy.name}))
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
