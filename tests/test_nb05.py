"""Notebook 05: the token-colouring figure and explorer, and the BPE checkers (pairs, merge, the
encoder, the decoder to fix, the UTF-8 prediction)."""

import matplotlib.pyplot as plt
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import checks, plots, tokenizers, widgets
from helpers.paths import DATA_DIR
from checker_cases import checker_tests, forever, stub

SHIPPED = DATA_DIR / "tokenizer_bpe512.json"


@settings(max_examples=15)
@given(st.text(max_size=60), st.integers(0, 2000))
def test_token_figure_handles_any_text_and_size(text, vocab_size):
    fig = plots.make_token_colours(text, vocab_size)
    title = fig.axes[0].get_title()
    assert ("tokens" in title) if text else ("empty string" in title)
    plt.close(fig)


def test_token_figure_counts_tokens():
    fig = plots.make_token_colours("aaaa", 256)
    assert fig.axes[0].get_title().startswith("4 characters -> 4 tokens (vocabulary 256)")
    assert [t.get_text() for t in fig.axes[0].texts] == ["a"] * 4
    plt.close(fig)


def test_token_explorer_responds_to_text_and_size():
    explorer = widgets.Explorer(plots.make_token_colours,
                                {"text": widgets.text_box("To be, or not to be"),
                                 "vocab_size": widgets.slider(512, 256, 512, step=8)})
    first = explorer.png
    explorer.controls["text"].value = "Café 🎭"
    second = explorer.png
    explorer.controls["vocab_size"].value = 256
    assert len({first, second, explorer.png}) == 3




def encode_in_order(text, merges):
    ids = list(text.encode("utf-8"))
    for rank, pair in enumerate(merges):
        ids = tokenizers.merge(ids, tuple(pair), 256 + rank)
    return ids


def encode_in_reverse(text, merges):
    ids = list(text.encode("utf-8"))
    for rank in reversed(range(len(merges))):
        ids = tokenizers.merge(ids, tuple(merges[rank]), 256 + rank)
    return ids


def encode_code_points(text, merges):
    ids = [ord(ch) for ch in text]
    for rank, pair in enumerate(merges):
        ids = tokenizers.merge(ids, tuple(pair), 256 + rank)
    return ids


def encode_lowest_rank_first(text, merges):
    """minbpe's way: merge the neighbouring pair learned first, until no pair is a merge."""
    rank = {tuple(pair): r for r, pair in enumerate(merges)}
    ids = list(text.encode("utf-8"))
    while len(ids) > 1:
        pair = min(zip(ids, ids[1:]), key=lambda p: rank.get(p, float("inf")))
        if pair not in rank:
            break
        ids = tokenizers.merge(ids, pair, 256 + rank[pair])
    return ids


def encode_counting_again(text, merges):
    """Wrong: merges the pair most frequent in this text first."""
    rank = {tuple(pair): r for r, pair in enumerate(merges)}
    ids = list(text.encode("utf-8"))
    while True:
        counts = {p: c for p, c in tokenizers.pair_counts(ids).items() if p in rank}
        if not counts:
            return ids
        pair = max(counts, key=lambda p: (counts[p], -rank[p]))
        ids = tokenizers.merge(ids, pair, 256 + rank[pair])


def decode_joined(ids, vocab):
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def counts_without_overlaps(ids):
    counts, i = {}, 0
    while i + 1 < len(ids):
        counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
        i += 2 if ids[i] == ids[i + 1] else 1
    return counts


def merge_in_place(ids, pair, new_id):
    i = 0
    while i + 1 < len(ids):
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


def merge_overlapping(ids, pair, new_id):
    return [new_id if (a, b) == pair else a for a, b in zip(ids, ids[1:])] + ids[-1:]


RIGHT = [(checks.pair_counts, tokenizers.pair_counts), (checks.merge, tokenizers.merge),
         # token ids of any integer type pass: NumPy and PyTorch integers, arrays and tensors of them
         (checks.pair_counts, lambda ids: tokenizers.pair_counts([np.int64(i) for i in ids])),
         (checks.merge, lambda ids, pair, new_id: tuple(tokenizers.merge(ids, pair, new_id))),
         (checks.merge, lambda ids, pair, new_id: np.array(tokenizers.merge(ids, pair, new_id))),
         (checks.merge, lambda ids, pair, new_id: list(np.array(tokenizers.merge(ids, pair, new_id), dtype=np.int32))),
         (checks.merge, lambda ids, pair, new_id: torch.tensor(tokenizers.merge(ids, pair, new_id))),
         (checks.merge, lambda ids, pair, new_id: list(torch.tensor(tokenizers.merge(ids, pair, new_id)))),
         (checks.merge, lambda ids, pair, new_id: torch.tensor(tokenizers.merge(ids, pair, new_id)).tolist()),
         (checks.bpe_encode, encode_in_order), (checks.bpe_encode, encode_lowest_rank_first),
         (checks.bpe_encode, lambda text, merges: tokenizers.BPETokenizer(merges).encode(text)),
         (checks.bpe_encode, lambda text, merges: np.array(encode_in_order(text, merges))),
         (checks.bpe_decode, decode_joined),
         (checks.bpe_decode, lambda ids, vocab: tokenizers.BPETokenizer.load(SHIPPED).decode(ids)),
         (checks.predict_utf8_bytes, lambda: 20), (checks.predict_utf8_bytes, lambda: np.int64(20)),
         (checks.predict_utf8_bytes, lambda: 20.0)]

BROKEN = [
    (checks.pair_counts, counts_without_overlaps, "overlapping pairs"),
    (checks.pair_counts, lambda ids: {(a, b): 1 for a, b in zip(ids, ids[1:])}, "times, expected"),
    (checks.pair_counts, lambda ids: {(1, 2): 2, (2, 3): 1, (3, 1): 1}, "overlapping pairs"),   # hard-coded
    (checks.pair_counts, lambda ids: list(zip(ids, ids[1:])), "a dict"),
    (checks.pair_counts, lambda ids: {(a, b): 1 for a, b in zip(ids, ids[1:3])}, "expected"),
    (checks.pair_counts, lambda ids: ids[5], "raised IndexError"),
    (checks.pair_counts, forever, "did not finish"),
    (checks.pair_counts, stub, "not implemented yet"),
    (checks.merge, merge_in_place, "changed its input"),
    (checks.merge, merge_overlapping, "expected"),
    (checks.merge, lambda ids, pair, new: [99, 3, 99], "expected"),                           # hard-coded
    (checks.merge, lambda ids, pair, new: None, "return"),
    (checks.merge, lambda ids, pair, new: "99 3 99", "not a list of integer ids"),
    (checks.merge, lambda ids, pair, new: [str(i) for i in tokenizers.merge(ids, pair, new)],
     "not a list of integer ids: '99' is of type str"),
    (checks.merge, lambda ids, pair, new: [float(i) for i in tokenizers.merge(ids, pair, new)],
     "not a list of integer ids: 99.0 is of type float"),
    (checks.merge, lambda ids, pair, new: np.array(tokenizers.merge(ids, pair, new), dtype=float),
     "not a list of integer ids: 99.0 is of type float64"),
    (checks.merge, lambda ids, pair, new: torch.tensor(tokenizers.merge(ids, pair, new), dtype=torch.float32),
     "is of type float32"),
    (checks.merge, lambda ids, pair, new: [i == 1 for i in tokenizers.merge(ids, pair, new)], "is of type bool"),
    (checks.pair_counts, lambda ids: {(float(a), float(b)): c for (a, b), c in tokenizers.pair_counts(ids).items()},
     "not a pair of integer ids: 1.0 is of type float"),
    (checks.pair_counts, lambda ids: {(str(a), str(b)): c for (a, b), c in tokenizers.pair_counts(ids).items()},
     "not a pair of integer ids: '1' is of type str"),
    (checks.merge, stub, "not implemented yet"),
    (checks.bpe_encode, encode_in_reverse, "from the last learned"),
    (checks.bpe_encode, encode_counting_again, "most frequent in the text being encoded"),
    (checks.bpe_encode, encode_code_points, "on 'Café' (é is two bytes)"),
    (checks.bpe_encode, encode_code_points, "code points (ord)"),
    (checks.bpe_encode, lambda text, merges: list(text.encode()), "applied no merge"),
    (checks.bpe_encode, lambda text, merges: [258, 100, 258, 97, 99], "expected"),          # hard-coded
    (checks.bpe_encode, lambda text, merges: encode_in_order(text, [m for m in merges if max(m) < 256]),
     "only the merges of two bytes"),
    (checks.bpe_encode, lambda text, merges: [float(i) for i in encode_in_order(text, merges)], "is of type float"),
    (checks.bpe_encode, stub, "not implemented yet"),
    (checks.bpe_decode, lambda ids, vocab: "".join(vocab[i].decode("utf-8", errors="replace") for i in ids),
     "still gives what the broken code gives"),
    (checks.bpe_decode, lambda ids, vocab: b"".join(vocab[i] for i in ids).decode("utf-8"), "UnicodeDecodeError"),
    (checks.bpe_decode, lambda ids, vocab: b"".join(vocab[i] for i in ids), "not text"),
    (checks.bpe_decode, lambda ids, vocab: "To be, or not to be", "expected"),                 # hard-coded
    (checks.bpe_decode, stub, "not implemented yet"),
    (checks.predict_utf8_bytes, lambda: 11, "the answer is 20"),                               # characters
    (checks.predict_utf8_bytes, lambda: 19, "2 on ü and on ß"),
    (checks.predict_utf8_bytes, stub, "not implemented yet"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)


def test_the_prediction_question_is_the_one_the_notebook_asks():
    from helpers.checks.text import UTF8_QUESTION

    assert UTF8_QUESTION == "Grüße, 世界 👋" and len(UTF8_QUESTION.encode("utf-8")) == 20


def test_the_shipped_tokenizer_reaches_across_words_and_the_pre_split_one_does_not():
    """What notebook 05 says of the two tokenizers: 115 of the course tokenizer's 256 tokens hold
    more than one GPT-2 piece; a pre-split tokenizer's tokens never do."""
    bpe = tokenizers.BPETokenizer.load(SHIPPED)
    crossing = [t for t in bpe.vocab[256:] if len(tokenizers.PreSplitBPETokenizer.pieces(t.decode())) > 1]
    assert len(crossing) == 115
    split = tokenizers.PreSplitBPETokenizer.train("To be, or not to be: that is the question.\n" * 50, 300)
    assert all(len(split.pieces(split.vocab[i].decode())) == 1 for i in range(256, len(split.vocab)))
