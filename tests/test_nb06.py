"""Notebook 06: the bigram language model, sampling, its figures, explorer and checkers."""

import math
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from helpers import checks, plots, widgets
from helpers import language_model as lm
from checker_cases import assert_redraws, checker_tests, forever, stub


def test_counts_and_probabilities():
    counts = lm.bigram_counts([0, 1, 1, 0, 1], 3)
    assert counts.tolist() == [[0, 2, 0], [1, 1, 0], [0, 0, 0]]
    probs = lm.bigram_probs(counts, alpha=1.0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs[0, 1] == pytest.approx(3 / 5)


def test_cross_entropy_matches_pytorch_and_is_infinite_for_unseen_pairs():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, size=200)
    probs = lm.bigram_probs(lm.bigram_counts(ids, 5), alpha=0.5)
    expected = torch.nn.functional.nll_loss(torch.log(torch.from_numpy(probs[ids[:-1]])), torch.from_numpy(ids[1:]))
    assert lm.cross_entropy(probs, ids) == pytest.approx(expected.item(), rel=1e-9)
    raw = lm.bigram_counts([0, 1, 0, 1], 3) / np.array([[2.0], [2.0], [1.0]])
    assert math.isinf(lm.cross_entropy(raw, [0, 2]))


ONE_ULP_BELOW_1 = np.nextafter(1.0, 0.0)


def kept_by_top_k(probs, temperature, top_k):
    """The tokens top-k keeps, compared where ``adjust`` compares them: as logits ``log(p) / T``.
    (Probabilities 1 ulp apart can have the same logarithm; then both are kept, as ties.)"""
    logits = np.log(probs) / temperature
    return logits >= np.sort(logits)[-top_k]


@given(arrays(np.float64, st.integers(2, 30), elements=st.floats(0.001, 1.0)),
       st.floats(0.01, 50), st.integers(1, 40))
# found by hypothesis: 1.0 and 1.0 - 1 ulp, normalised, differ as probabilities but not as logits
@example(weights=np.array([0.5] + [1.0] * 7 + [ONE_ULP_BELOW_1]), temperature=1.0, top_k=1)
@example(weights=np.array([0.5] + [ONE_ULP_BELOW_1] * 7 + [1.0]), temperature=1.0, top_k=1)
@example(weights=np.array([0.25, ONE_ULP_BELOW_1, 1.0, 0.5]), temperature=0.01, top_k=2)
@example(weights=np.array([0.5, np.nextafter(0.5, 1.0), 0.25]), temperature=50.0, top_k=1)
def test_adjust_is_a_distribution_and_respects_top_k(weights, temperature, top_k):
    probs = weights / weights.sum()
    adjusted = lm.adjust(probs, temperature, top_k)
    assert adjusted.sum() == pytest.approx(1.0) and (adjusted >= 0).all()
    if top_k < len(probs):
        kept = adjusted > 0
        assert (kept == kept_by_top_k(probs, temperature, top_k)).all()  # ties at the cut-off are kept
        # in any space: at least k tokens, and every kept token more likely than every dropped one
        assert kept.sum() >= top_k and (kept.all() or probs[kept].min() > probs[~kept].max())
    torch_version = torch.softmax(torch.log(torch.from_numpy(probs)) / temperature, dim=0).numpy()
    if top_k >= len(probs):
        np.testing.assert_allclose(adjusted, torch_version, rtol=1e-9, atol=1e-12)


def adjust_as_it_was(probs, temperature, top_k=None):
    """``adjust`` before vanishing temperatures had a limit: the plain formula."""
    probs = np.asarray(probs, dtype=float)
    with np.errstate(divide="ignore"):
        logits = np.log(probs) / temperature
    if top_k is not None and top_k < len(probs):
        cutoff = np.sort(logits)[-top_k]
        logits = np.where(logits >= cutoff, logits, -np.inf)
    logits = logits - logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()


@given(arrays(np.float64, st.integers(1, 30), elements=st.floats(0.0, 1.0)).filter(lambda w: w.max() > 0),
       st.floats(1e-3, 1e3), st.one_of(st.none(), st.integers(1, 40)))
def test_ordinary_temperatures_give_bit_identical_results(weights, temperature, top_k):
    probs = weights / weights.sum()
    np.testing.assert_array_equal(lm.adjust(probs, temperature, top_k), adjust_as_it_was(probs, temperature, top_k))


@pytest.mark.parametrize("temperature", [1e-320, 5e-324, 1e-310, 1e-300])
@pytest.mark.parametrize("top_k", [None, 1, 2])
def test_vanishing_temperature_gives_the_greedy_limit(temperature, top_k):
    with warnings.catch_warnings():
        warnings.simplefilter("error")                        # no overflow or invalid-value warnings either
        assert lm.adjust([0.2, 0.5, 0.3], temperature, top_k).tolist() == [0.0, 1.0, 0.0]
        assert lm.adjust([0.4, 0.2, 0.4], temperature, top_k).tolist() == [0.5, 0.0, 0.5]   # ties share
        assert lm.adjust([0.0, 1.0, 0.0], temperature, top_k).tolist() == [0.0, 1.0, 0.0]


@given(arrays(np.float64, st.integers(1, 30), elements=st.floats(0.0, 1.0)).filter(lambda w: w.max() > 0),
       st.floats(5e-324, 1e-300), st.one_of(st.none(), st.integers(1, 40)))
def test_any_vanishing_temperature_is_greedy_and_never_nan(weights, temperature, top_k):
    probs = weights / weights.sum()
    adjusted = lm.adjust(probs, temperature, top_k)
    with np.errstate(divide="ignore"):
        best = np.log(probs) == np.log(probs).max()          # the most likely, compared as adjust does
    np.testing.assert_array_equal(adjusted, np.where(best, 1.0 / best.sum(), 0.0))


def test_temperature_extremes_and_bad_values():
    probs = np.array([0.5, 0.3, 0.2])
    assert lm.adjust(probs, 0.01).max() > 0.999
    assert lm.adjust(probs, 1000).max() < 0.34
    assert lm.adjust(probs, 1.0, top_k=1).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="temperature must be above 0"):
        lm.adjust(probs, 0.0)
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        lm.adjust(probs, 1.0, top_k=0)


@pytest.mark.parametrize("top_k", [2.0, 2.5, 0.5, -1, 0, float("nan"), float("inf"), True, "3", np.float64(2.0)])
def test_top_k_that_is_not_a_whole_number_of_at_least_one_is_refused(top_k):
    with pytest.raises(ValueError, match=r"top_k must be at least 1 \(or None for all tokens\) and a whole number"):
        lm.adjust([0.5, 0.3, 0.2], 1.0, top_k)


@pytest.mark.parametrize("top_k", [2, np.int64(2), np.int32(2), np.uint8(2), torch.tensor(2)])
def test_top_k_accepts_python_and_numpy_integers(top_k):
    assert lm.adjust([0.5, 0.3, 0.2], 1.0, top_k).tolist() == pytest.approx([0.625, 0.375, 0.0])
    assert lm.sample(lm.bigram_probs(np.ones((3, 3))), 0, 5, top_k=top_k) == lm.sample(
        lm.bigram_probs(np.ones((3, 3))), 0, 5, top_k=2)


def test_sampling_is_seeded():
    probs = lm.bigram_probs(lm.bigram_counts([0, 1, 2, 0, 2, 1], 3))
    assert lm.sample(probs, 0, 50, seed=3) == lm.sample(probs, 0, 50, seed=3)
    assert lm.sample(probs, 0, 50, seed=3) != lm.sample(probs, 0, 50, seed=4)


def test_bigram_table_figure():
    tok, counts, _ = lm.corpus_bigram()
    fig = plots.make_bigram_table(counts, tok.chars)
    assert "follows" in fig.axes[0].get_title()
    plt.close(fig)


@pytest.mark.parametrize("temperature, top_k, context", [(0.05, 1, "h"), (5.0, 78, "q"), (1.0, 500, ""), (1.0, -3, "€")])
def test_sampling_figure_at_extremes(temperature, top_k, context):
    fig = plots.make_sampling_explorer(temperature, top_k, context)
    assert "Next character after" in fig.axes[0].get_title()
    plt.close(fig)


def test_sampling_explorer_redraws():
    explorer = widgets.Explorer(plots.make_sampling_explorer,
                                {"temperature": widgets.slider(1.0, 0.05, 5.0, log=True, step=0.05),
                                 "top_k": widgets.slider(78, 1, 78)})
    assert_redraws(explorer, [("temperature", 0.1), ("top_k", 3)])


# --- checkers -------------------------------------------------------------



def softmax_in_place(z, t):
    z /= t
    z -= z.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


RIGHT = [(checks.softmax_with_temperature, lambda z, t: torch.softmax(torch.as_tensor(z) / t, dim=-1)),
         (checks.perplexity, lambda loss: math.exp(float(loss))),
         (checks.mean_nll, lambda p: -np.log(p).mean())]

BROKEN = [
    (checks.softmax_with_temperature, lambda z, t: np.exp(z / t) / np.exp(z / t).sum(), "last axis"),
    (checks.softmax_with_temperature, lambda z, t: np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True), "temperature 0.5"),
    (checks.softmax_with_temperature, lambda z, t: np.exp(z * t) / np.exp(z * t).sum(axis=-1, keepdims=True), "temperature 0.5"),
    (checks.softmax_with_temperature, softmax_in_place, "changed its input"),
    (checks.softmax_with_temperature, lambda z, t: np.array([0.090, 0.245, 0.665]), "expected"),   # hard-coded
    (checks.softmax_with_temperature, forever, "did not finish"),
    (checks.softmax_with_temperature, stub, "not implemented yet"),
    (checks.perplexity, lambda loss: 2 ** loss, "expected"),                  # bits, not nats
    (checks.perplexity, lambda loss: loss.exp(), "raised AttributeError"),    # works for tensors only
    (checks.perplexity, lambda loss: 78.0, "expected"),                       # hard-coded
    (checks.perplexity, lambda loss: None, "return"),
    (checks.mean_nll, lambda p: -np.log(p).sum(), "expected"),
    (checks.mean_nll, lambda p: -np.log10(p).mean(), "expected"),
    (checks.mean_nll, lambda p: np.log(p), "a single number"),
    (checks.mean_nll, stub, "not implemented yet"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)
