"""Tokenizers: any Unicode round-trips, the fast and naive BPE trainers agree, files are safe."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import data, tokenizers
from helpers.paths import DATA_DIR

SHIPPED = DATA_DIR / "tokenizer_bpe512.json"


@pytest.fixture(scope="module")
def small_bpe():
    return tokenizers.BPETokenizer.train(data.corpus_text("train")[:20_000], 300)


@given(st.text())
def test_bpe_round_trips_any_unicode(s):
    tok = tokenizers.BPETokenizer(tokenizers.train_merges("the theatre, thee".encode(), 8))
    assert tok.decode(tok.encode(s)) == s


@settings(max_examples=50)
@given(st.text(max_size=300))
def test_trained_bpe_round_trips_any_unicode(small_bpe, s):
    ids = small_bpe.encode(s)
    assert all(0 <= i < small_bpe.vocab_size for i in ids)
    assert small_bpe.decode(ids) == s


@pytest.mark.parametrize("s", ["", "\x00\x1f\x7f", "naïve café", "漢字かな", "🎉👩‍👩‍👧", "\ud800 lone surrogate", "a" * 1000])
def test_round_trip_examples(small_bpe, s):
    assert small_bpe.decode(small_bpe.encode(s)) == s


@settings(max_examples=200)
@given(st.lists(st.integers(0, 4), max_size=80), st.integers(0, 30))
def test_fast_and_naive_trainers_give_identical_merges(ids, num_merges):
    assert tokenizers.train_merges(ids, num_merges) == tokenizers.train_merges_naive(ids, num_merges)


@settings(max_examples=30)
@given(st.text(max_size=200), st.integers(0, 40))
def test_identical_merges_on_unicode_text(text, num_merges):
    ids = list(text.encode("utf-8", "surrogatepass"))
    assert tokenizers.train_merges(ids, num_merges) == tokenizers.train_merges_naive(ids, num_merges)


def test_identical_merges_on_a_corpus_slice():
    ids = data.corpus_text("train")[:30_000].encode()
    assert tokenizers.train_merges(ids, 40) == tokenizers.train_merges_naive(ids, 40)


def test_merge_is_left_to_right_and_non_overlapping():
    assert tokenizers.merge([1, 1, 1], (1, 1), 9) == [9, 1]
    assert tokenizers.merge([1, 1, 1, 1], (1, 1), 9) == [9, 9]
    assert tokenizers.pair_counts([1, 1, 1]) == {(1, 1): 2}


def test_encode_equals_merging_lowest_rank_first(small_bpe):
    """The usual (minbpe) description of encoding, computed the slow way, gives the same ids."""
    ranks = {pair: 256 + r for r, pair in enumerate(small_bpe.merges)}
    text = data.corpus_text("validation")[:2000]
    ids = list(text.encode())
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, float("inf")))
        if pair not in ranks:
            break
        ids = tokenizers.merge(ids, pair, ranks[pair])
    assert small_bpe.encode(text) == ids


def test_truncating_equals_training_to_the_smaller_size(small_bpe):
    text = data.corpus_text("train")[:20_000]
    assert small_bpe.truncated(280).merges == tokenizers.BPETokenizer.train(text, 280).merges
    with pytest.raises(ValueError, match="between 256 and 300"):
        small_bpe.truncated(400)


def test_more_merges_compress_more(small_bpe):
    text = data.corpus_text("validation")[:5000]
    lengths = [len(small_bpe.truncated(v).encode(text)) for v in (256, 270, 300)]
    assert lengths[0] == len(text.encode()) and lengths[0] > lengths[1] > lengths[2]


def test_tokenize_shows_pieces(small_bpe):
    assert "".join(small_bpe.tokenize("To be, or not to be")) == "To be, or not to be"
    assert small_bpe.tokenize("🎉") == ["<0xF0>", "<0x9F>", "<0x8E>", "<0x89>"]


def test_save_load_round_trip_and_atomic(tmp_path, small_bpe):
    path = tmp_path / "tok.json"
    small_bpe.save(path)
    assert tokenizers.BPETokenizer.load(path).encode("thee and thou") == small_bpe.encode("thee and thou")
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # no temporary file left behind


@pytest.mark.parametrize("content, phrase", [
    ("{not json", "damaged JSON"),
    (json.dumps({"format": "other", "merges": []}), "is not a behind-the-curtain-bpe-v1"),
    (json.dumps({"format": "behind-the-curtain-bpe-v1", "merges": [[1000, 1]]}), "invalid merges"),
    (json.dumps([1, 2]), "is not a"),
])
def test_damaged_files_get_clear_errors(tmp_path, content, phrase):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=phrase):
        tokenizers.BPETokenizer.load(path)
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        tokenizers.BPETokenizer.load(tmp_path / "missing.json")


def test_bad_ids_and_sizes_are_explained(small_bpe):
    with pytest.raises(ValueError, match="from 0 to 299"):
        small_bpe.decode([300])
    with pytest.raises(ValueError, match="at least 256"):
        tokenizers.BPETokenizer.train("abc", 100)


def test_char_tokenizer():
    tok = tokenizers.CharTokenizer("hello world")
    assert tok.decode(tok.encode("hold")) == "hold" and tok.vocab_size == 8
    with pytest.raises(ValueError, match="'z' was not in the training text"):
        tok.encode("zebra")


def test_shipped_tokenizer_loads_round_trips_and_matches_training_on_a_prefix():
    tok = tokenizers.BPETokenizer.load(SHIPPED)
    assert tok.vocab_size == 512
    sample = data.corpus_text("validation")[:3000] + " 🎉 naïve"
    assert tok.decode(tok.encode(sample)) == sample
    # Retraining on all 4 MB takes a while (data/make_tokenizer.py does it); here, check that the
    # first merge is the most frequent pair of the training text, as the trainer must choose.
    counts = tokenizers.pair_counts(data.corpus_text("train").encode())
    assert tok.merges[0] == max(counts, key=lambda pair: (counts[pair], -pair[0], -pair[1]))
