"""Tokenizers: any Unicode round-trips, the fast and naive BPE trainers agree, files are safe."""

import json
from collections import Counter

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
    # Retraining on all 4 MB takes a while (scripts/make_tokenizer.py does it); here, check that the
    # first merge is the most frequent pair of the training text, as the trainer must choose.
    counts = tokenizers.pair_counts(data.corpus_text("train").encode())
    assert tok.merges[0] == max(counts, key=lambda pair: (counts[pair], -pair[0], -pair[1]))


# --- bad ids, bytes that are not UTF-8, damaged files ----------------------------------------

@pytest.mark.parametrize("ids", [[-1], [300], [0, -300], [1.0], [2.5], ["a"], [True], [None], [[1, 2]], 5])
def test_decode_refuses_ids_outside_the_vocabulary(small_bpe, ids):
    with pytest.raises(ValueError, match="from 0 to 299"):
        small_bpe.decode(ids)


@pytest.mark.parametrize("ids", [[-1], [8], [1.0], [True], ["h"]])
def test_char_decode_refuses_ids_outside_the_vocabulary(ids):
    tok = tokenizers.CharTokenizer("hello world")
    with pytest.raises(ValueError, match=r"is not in the vocabulary: ids must be whole numbers from 0 to 7"):
        tok.decode(ids)


def test_decode_accepts_tensors_and_numpy_integers(small_bpe):
    import numpy as np
    import torch

    ids = small_bpe.encode("To be, or not to be")
    assert small_bpe.decode(torch.tensor(ids)) == small_bpe.decode(np.array(ids)) == "To be, or not to be"
    assert small_bpe.decode([np.int64(i) for i in ids]) == "To be, or not to be"


@settings(max_examples=200)
@given(st.lists(st.integers(-1000, 1000), max_size=30))
def test_decode_accepts_exactly_the_ids_of_the_vocabulary(small_bpe, ids):
    if all(0 <= i < small_bpe.vocab_size for i in ids):
        assert isinstance(small_bpe.decode(ids), str)
    else:
        with pytest.raises(ValueError, match="is not in the vocabulary"):
            small_bpe.decode(ids)


@pytest.mark.parametrize("ids, text", [([0xFF], "\ufffd"), ([ord("a"), 0xE2, 0x82], "a\ufffd"),
                                       ([0xF0, 0x9F, 0x8E, 0x89], "🎉"), ([0x89, ord("b")], "\ufffdb"),
                                       ([0xED, 0xA0, 0x80], "\ud800")])
def test_bytes_that_are_not_utf8_decode_to_the_replacement_character(small_bpe, ids, text):
    assert small_bpe.decode(ids) == text


def test_strict_decoding_says_where_the_bytes_go_wrong(small_bpe):
    with pytest.raises(ValueError, match=r"not make valid UTF-8 text: the bytes b'\\xe2\\x82' at byte 1"):
        small_bpe.decode([ord("a"), 0xE2, 0x82], errors="strict")
    assert small_bpe.decode(small_bpe.encode("naïve \ud800"), errors="strict") == "naïve \ud800"
    with pytest.raises(ValueError, match="errors must be 'replace' or 'strict'"):
        small_bpe.decode([1], errors="ignore")


@settings(max_examples=200)
@given(st.lists(st.integers(0, 299), max_size=30))
def test_any_ids_decode_and_strict_agrees_or_refuses(small_bpe, ids):
    text = small_bpe.decode(ids)
    try:
        strict = small_bpe.decode(ids, errors="strict")
    except ValueError as err:
        assert "not make valid UTF-8" in str(err) and "\ufffd" in text
    else:
        assert strict == text


@pytest.mark.parametrize("merges", [[["1", 2]], [[1.0, 2]], [[1, 2.5]], [[True, 2]], [[1, 2, 3]], [[1]], [1],
                                    ["ab"], [[None, 1]], [{"a": 1, "b": 2}], [[-1, 2]]])
def test_files_whose_merges_are_not_pairs_of_ids_are_refused(tmp_path, merges):
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"format": "behind-the-curtain-bpe-v1", "merges": merges}))
    with pytest.raises(ValueError, match=r"odd\.json holds invalid merges: merge 0"):
        tokenizers.BPETokenizer.load(path)


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"deep\.json is not a valid tokenizer file .*nested too deeply"):
        tokenizers.BPETokenizer.load(path)


def test_saving_into_a_missing_folder_names_the_target(tmp_path, small_bpe):
    target = tmp_path / "missing" / "tok.json"
    with pytest.raises(FileNotFoundError, match=r"cannot write .*missing.tok\.json: the folder"):
        small_bpe.save(target)
    assert not (tmp_path / "missing").exists()


# --- GPT-2's additions: the regex pre-split and special tokens ------------------------------

EOT = tokenizers.END_OF_TEXT


@pytest.fixture(scope="module")
def split_bpe():
    plays = data.split_plays()["train"]
    return tokenizers.PreSplitBPETokenizer.train(EOT.join(play.text[:4_000] for play in plays[:5]), 340)


def train_pieces_naively(pieces, num_merges):
    """BPE within pieces the slow way: recount every pair of every piece after each merge."""
    words, merges = [(list(piece), n) for piece, n in pieces.items()], []
    for k in range(num_merges):
        counts = Counter()
        for ids, n in words:
            for pair in zip(ids, ids[1:]):
                counts[pair] += n
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        words = [(tokenizers.merge(ids, pair, 256 + k), n) for ids, n in words]
        merges.append(pair)
    return merges


@settings(max_examples=150)
@given(st.dictionaries(st.lists(st.integers(0, 4), max_size=8).map(tuple), st.integers(1, 5), max_size=12),
       st.integers(0, 25))
def test_training_within_pieces_equals_the_naive_way(pieces, num_merges):
    pieces = Counter(pieces)
    assert tokenizers.train_merges_pieces(pieces, num_merges) == train_pieces_naively(pieces, num_merges)


def test_one_piece_of_weight_one_trains_like_the_plain_trainer():
    ids = data.corpus_text("train")[:5_000].encode()
    assert tokenizers.train_merges_pieces(Counter({ids: 1}), 40) == tokenizers.train_merges(ids, 40)


@given(st.text())
def test_pieces_join_back_to_the_text(s):
    assert "".join(tokenizers.PreSplitBPETokenizer.pieces(s)) == s


@settings(max_examples=100)
@given(st.text(max_size=200), st.booleans())
def test_pre_split_round_trips_any_unicode_and_encodes_piece_by_piece(split_bpe, s, allow):
    ids = split_bpe.encode(s, allow_special=allow)
    assert split_bpe.decode(ids) == s and all(0 <= i < split_bpe.vocab_size for i in ids)
    pieces = [split_bpe.encode(p) for p in split_bpe.pieces(s)]
    assert split_bpe.encode(s) == [i for piece in pieces for i in piece]


def test_no_learned_token_reaches_across_pieces(split_bpe):
    assert len(split_bpe.merges) == 340 - 257 and split_bpe.vocab_size == 340
    for token in split_bpe.vocab[256:]:
        text = token.decode("utf-8", errors="replace")
        assert len(split_bpe.pieces(text)) == 1, token


def test_the_end_of_text_token_is_one_id_only_when_allowed_and_never_merged(split_bpe):
    eot = split_bpe.vocab_size - 1
    assert split_bpe.encode(EOT, allow_special=True) == [eot]
    assert split_bpe.encode(f"a{EOT}{EOT}b", allow_special=True).count(eot) == 2
    assert eot not in split_bpe.encode(EOT) and split_bpe.decode(split_bpe.encode(EOT)) == EOT
    assert all(b"<|" not in token for token in split_bpe.vocab)        # training never merged across it
    assert split_bpe.decode([eot]) == EOT and split_bpe.tokenize(EOT) != [EOT]


def test_pre_split_tokenizer_saves_loads_truncates_and_is_not_read_as_the_plain_one(tmp_path, split_bpe):
    path = tmp_path / "split.json"
    split_bpe.save(path)
    again = tokenizers.PreSplitBPETokenizer.load(path)
    text = f"To be, or not to be{EOT}Exeunt."
    assert again.encode(text, allow_special=True) == split_bpe.encode(text, allow_special=True)
    with pytest.raises(ValueError, match="is not a behind-the-curtain-bpe-v1 tokenizer file"):
        tokenizers.BPETokenizer.load(path)
    small = split_bpe.truncated(300)
    assert isinstance(small, tokenizers.PreSplitBPETokenizer) and small.vocab_size == 300
    assert small.merges == split_bpe.merges[:43] and small.encode(EOT, allow_special=True) == [299]
    with pytest.raises(ValueError, match="between 257 and 340"):
        split_bpe.truncated(256)
    with pytest.raises(ValueError, match="at least 257"):
        tokenizers.PreSplitBPETokenizer.train("abc", 256)


def test_the_shipped_tokenizer_encodes_as_before():
    """The pre-split was added beside it: the shipped tokenizer's ids are unchanged (recorded
    before the pre-split was added) and truncating it still gives a plain BPETokenizer."""
    shipped = tokenizers.BPETokenizer.load(SHIPPED)
    assert shipped.encode("To be, or not to be: that is the question.") == [
        425, 98, 302, 428, 325, 288, 366, 58, 486, 280, 295, 448, 500, 390, 46]
    assert type(shipped.truncated(300)) is tokenizers.BPETokenizer
