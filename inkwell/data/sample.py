"""`inkwell data sample NAME`: real text from Debian packages, as JSONL rows.

  fortunes   English quotations, jokes and poems (packages `fortunes` and `fortunes-min`)
  song100    100 Song-dynasty ci poems            (package `fortunes-zh`)
  tang300    300 Tang-dynasty poems               (package `fortunes-zh`)
  chinese    Chinese sayings and quotations       (package `fortunes-zh`)
  fortune-topics        quotes labelled by topic, for `stage: classify`     (package `fortunes`; fortune_tasks.py)
  fortune-preferences   on-topic vs off-topic quote pairs, for `stage: dpo` (package `fortunes`; fortune_tasks.py)

Fortune files hold entries separated by lines containing only `%`; fortunes-zh wraps titles and authors in
ANSI colour codes, and some English files underline with backspace overstrikes: both are removed. The files
are looked up in the usual install folders (and INKWELL_FORTUNES_DIR); when they are missing, the error names
the package to install.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from inkwell.data.formats import progress_bar
from inkwell.data.fortune_files import read_fortunes
from inkwell.data.rows import JsonlSink
from inkwell.errors import InkwellError

FORTUNE_DIRS = (
    "/usr/share/games/fortunes",  # Debian, Ubuntu
    "/usr/share/fortunes",
    "/usr/share/fortune",  # Fedora, Arch
    "/usr/local/share/games/fortunes",
    "/usr/local/share/fortunes",
    "/opt/homebrew/share/fortune",  # Homebrew (macOS)
)

# English files of `fortunes-min` and `fortunes` (art and ascii-art are drawings, not prose).
ENGLISH_FORTUNES = (
    "fortunes",
    "literature",
    "riddles",
    "computers",
    "cookie",
    "debian",
    "definitions",
    "disclaimer",
    "drugs",
    "education",
    "ethnic",
    "food",
    "goedel",
    "humorists",
    "kids",
    "knghtbrd",
    "law",
    "linux",
    "linuxcookie",
    "love",
    "magic",
    "medicine",
    "men-women",
    "miscellaneous",
    "news",
    "paradoxum",
    "people",
    "perl",
    "pets",
    "platitudes",
    "politics",
    "pratchett",
    "science",
    "songs-poems",
    "sports",
    "startrek",
    "tao",
    "translate-me",
    "wisdom",
    "work",
    "zippy",
)


@dataclass(frozen=True)
class SampleSpec:
    files: tuple[str, ...]
    package: str
    language: str
    description: str
    builder: str | None = None  # a function of fortune_tasks.py that turns the files into task rows


SAMPLES: dict[str, SampleSpec] = {
    "fortunes": SampleSpec(ENGLISH_FORTUNES, "fortunes", "en", "English quotations, jokes and poems"),
    "song100": SampleSpec(("song100",), "fortunes-zh", "zh", "100 Song-dynasty ci poems"),
    "tang300": SampleSpec(("tang300",), "fortunes-zh", "zh", "300 Tang-dynasty poems"),
    "chinese": SampleSpec(("chinese",), "fortunes-zh", "zh", "Chinese sayings and quotations"),
    "fortune-topics": SampleSpec(
        ("computers", "food", "law", "love", "science"),
        "fortunes",
        "en",
        "quotes labelled by topic (classify)",
        builder="topic_rows",
    ),
    "fortune-preferences": SampleSpec(
        ("computers", "food", "law", "love", "science"),
        "fortunes",
        "en",
        "on-topic vs off-topic quote pairs (dpo)",
        builder="preference_rows",
    ),
}

_ZH_HEADER = re.compile(r"^\s*(题目|作者)\s*[:：]\s*(.*?)\s*$")
_BARE_TITLE = re.compile(r"^\s*《[^》]+》\s*$")


def fortune_dirs() -> list[Path]:
    dirs = [os.environ["INKWELL_FORTUNES_DIR"]] if os.environ.get("INKWELL_FORTUNES_DIR") else []
    return [Path(d) for d in (*dirs, *FORTUNE_DIRS)]


def find_files(name: str) -> list[Path]:
    """The installed files of a sample, or an InkwellError naming the package to install."""
    if name not in SAMPLES:
        raise InkwellError(f"unknown sample '{name}'", field="name", hint=f"choose from {', '.join(SAMPLES)}")
    spec = SAMPLES[name]
    for folder in fortune_dirs():
        found = [folder / f for f in spec.files if (folder / f).is_file()]
        if found:
            return found
    raise InkwellError(
        f"sample '{name}' needs the Debian package '{spec.package}', which is not installed "
        f"(looked in {', '.join(str(d) for d in fortune_dirs())})",
        field="name",
        hint=f"sudo apt-get install {spec.package}",
    )


def to_row(entry: str, source: str) -> dict:
    """One entry -> {"text", "source"}; Chinese poems also get "title" and "author" from their header lines."""
    row: dict = {}
    lines = entry.split("\n")
    if len(lines) > 1 and _BARE_TITLE.match(lines[0]) and _ZH_HEADER.match(lines[1]):  # tang300: 《title》 first
        row["title"] = lines.pop(0).strip()
    while lines and _ZH_HEADER.match(lines[0]):
        key, value = _ZH_HEADER.match(lines.pop(0)).groups()
        row["title" if key == "题目" else "author"] = value
    text = "\n".join(lines).strip("\n")
    return {"text": text, **row, "source": source}


def sample_rows(name: str) -> Iterator[dict]:
    spec = SAMPLES.get(name)
    if spec is not None and spec.builder:
        from inkwell.data import fortune_tasks  # loaded only when asked for

        yield from getattr(fortune_tasks, spec.builder)(find_files(name))
        return
    for path in find_files(name):
        for entry in read_fortunes(path):
            row = to_row(entry, f"{spec.package}/{path.name}")
            if row["text"].strip():
                yield row


def write_sample(name: str, out: str | Path, *, limit: int | None = None, progress: bool = True) -> int:
    files = find_files(name)
    bar = progress_bar(sum(f.stat().st_size for f in files), f"sample {name}", progress)
    count = 0
    with JsonlSink(out) as sink:
        for row in sample_rows(name):
            if limit is not None and count >= limit:
                break
            sink.write(row)
            bar.update(len((row.get("text") or row.get("chosen", "")).encode("utf-8")))
            count += 1
    bar.close()
    return count
