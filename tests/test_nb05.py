"""Notebook 05: the token-colouring figure and explorer, and the BPE checkers."""

import matplotlib.pyplot as plt
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import checks, plots, tokenizers, widgets
from checker_cases import checker_tests, forever, stub


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
         (checks.merge, lambda ids, pair, new_id: torch.tensor(tokenizers.merge(ids, pair, new_id)).tolist())]

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
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)
