"""Notebook 06: the bigram language model, sampling, its figures, explorer and checkers, and the
numbers its exercises state (the trigram prediction, the buggy loss, the smoothing answer)."""

import math
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from helpers import checks, data, plots, widgets
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



def sample_right(logits, temperature, top_k, rng):
    z = np.asarray(logits, dtype=float) / temperature
    if top_k is not None and top_k < len(z):
        z = np.where(z >= np.sort(z)[-top_k], z, -np.inf)
    p = np.exp(z - z.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def sample_torch(logits, temperature, top_k, rng):
    """Right, another way: torch.topk, then the inverse of the cumulative distribution."""
    z = torch.as_tensor(logits, dtype=torch.float64) / temperature
    if top_k is not None:
        values, _ = torch.topk(z, min(top_k, len(z)))
        z = torch.where(z >= values[-1], z, torch.tensor(-math.inf, dtype=torch.float64))
    p = torch.softmax(z, dim=0).numpy()
    return np.searchsorted(np.cumsum(p), rng.random() * p.sum())


def sample_with_adjust(logits, temperature, top_k, rng):
    p = lm.adjust(np.exp(np.asarray(logits) - np.max(logits)), temperature, top_k)
    return torch.tensor(rng.choice(len(p), p=p))


def bigram_loss_right(W, ids):
    return torch.nn.functional.cross_entropy(W[ids[:-1]], ids[1:])


def bigram_loss_given(W, ids):
    """The broken loss of Exercise 4, as the notebook shows it."""
    x, y = ids[:-1], ids[1:]
    log_probs = torch.log_softmax(W, dim=0)
    return -log_probs[x, y].mean()


RIGHT = [(checks.sample_next, sample_right), (checks.sample_next, sample_torch),
         (checks.sample_next, sample_with_adjust),
         (checks.bigram_loss, bigram_loss_right),
         (checks.bigram_loss, lambda W, ids: -torch.log_softmax(W, dim=-1)[ids[:-1], ids[1:]].mean().item()),
         (checks.bigram_loss,
          lambda W, ids: float(lm.cross_entropy(torch.softmax(W.double(), 1).numpy(), ids.numpy()))),
         (checks.predict_trigram_loss, lambda: "b"), (checks.predict_trigram_loss, lambda: " B ")]

BROKEN = [
    (checks.sample_next, lambda z, t, k, rng: sample_right(z, 1 / t, k, rng), "multiplied the logits by"),
    (checks.sample_next, lambda z, t, k, rng: sample_right(z, 1.0, k, rng), "ignored the temperature"),
    (checks.sample_next, lambda z, t, k, rng: sample_right(z, t, None, rng), "ignored top_k"),
    (checks.sample_next, lambda z, t, k, rng: sample_right(-np.asarray(z), t, k, rng), "least likely"),
    (checks.sample_next, lambda z, t, k, rng: int(np.argmax(z)), "drew token"),                   # greedy
    (checks.sample_next, lambda z, t, k, rng: rng.choice(len(z), size=1), "not one token id"),
    (checks.sample_next, lambda z, t, k, rng: float(sample_right(z, t, k, rng)), "integer type"),
    (checks.sample_next, lambda z, t, k, rng: len(z), "not a token id from 0"),
    (checks.sample_next, lambda z, t, k, rng: np.exp(z).argmax() if t else 0, "drew token"),       # overflow-free?
    (checks.sample_next, forever, "did not finish"),
    (checks.sample_next, stub, "not implemented yet"),
    (checks.bigram_loss, bigram_loss_given, "still gives what the broken code gives"),
    (checks.bigram_loss, lambda W, ids: -torch.log_softmax(W, 1)[ids[1:], ids[:-1]].mean(), "swapped the roles"),
    (checks.bigram_loss, lambda W, ids: -torch.log_softmax(W, 1)[ids[:-1], ids[1:]].sum(), "summed the losses"),
    (checks.bigram_loss, lambda W, ids: torch.nn.functional.cross_entropy(W[ids[:-1]], ids[1:], reduction="none"),
     "a single number"),
    (checks.bigram_loss, stub, "not implemented yet"),
    (checks.predict_trigram_loss, lambda: "a", "the answer is 'b'"),
    (checks.predict_trigram_loss, lambda: "2.05", "must be one of"),
    (checks.predict_trigram_loss, stub, "not implemented yet"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)


# --- what the notebook's exercises state -----------------------------------------------------

@pytest.fixture(scope="module")
def trigram():
    """(counts, training ids, held-out ids) of the character trigram model of Exercises 1 and 5."""
    tok, _, _ = lm.corpus_bigram()
    tr = np.array(tok.encode(data.corpus_text("train")))
    va = np.array(tok.encode(data.corpus_text("validation")))
    counts = np.zeros((tok.vocab_size,) * 3)
    np.add.at(counts, (tr[:-2], tr[1:-1], tr[2:]), 1)
    return counts, tr, va


def trigram_loss(counts, ids, alpha):
    probs = (counts + alpha) / (counts + alpha).sum(axis=2, keepdims=True)
    return float(-np.mean(np.log(probs[ids[:-2], ids[1:-1], ids[2:]])))


def test_the_trigram_prediction_is_b(trigram):
    counts, _, va = trigram
    assert 2.0 < trigram_loss(counts, va, 1.0) < 2.5     # answer "b" of Exercise 1


def test_the_smoothing_reference_answer(trigram):
    """The numbers of Exercise 5's reference answer (to the printed digit)."""
    counts, tr, va = trigram
    held_out = {alpha: trigram_loss(counts, va, alpha) for alpha in (0.01, 0.1, 0.5, 1.0, 2.0)}
    stated = {0.01: 2.078, 0.1: 2.056, 0.5: 2.047, 1.0: 2.048, 2.0: 2.056}
    assert all(abs(held_out[a] - stated[a]) < 6e-4 for a in stated), held_out
    assert min(held_out, key=held_out.get) == 0.5
    assert abs(trigram_loss(counts, tr, 0.01) - 1.952) < 6e-4 and abs(trigram_loss(counts, tr, 1.0) - 1.971) < 6e-4
    losses = [trigram_loss(counts, tr, a) for a in (2.0, 1.0, 0.5, 0.1, 0.01)]
    assert all(a > b for a, b in zip(losses, losses[1:]))     # training loss falls as alpha shrinks


def test_the_buggy_loss_starts_right_and_falls_but_trains_the_wrong_model():
    """Exercise 4's claims about the given loss: ln 78 at W = 0, falls under gradient descent, and
    the model it trains predicts the next character much worse than the right loss's model."""
    tok, _, _ = lm.corpus_bigram()
    ids = torch.tensor(tok.encode(data.corpus_text("train")[:20_000]))

    def train(loss_fn):
        W = torch.zeros(78, 78, requires_grad=True)
        optimizer = torch.optim.Adam([W], lr=0.1)
        for _ in range(100):
            loss = loss_fn(W, ids)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return W.detach(), loss.item()

    assert bigram_loss_given(torch.zeros(78, 78), ids).item() == pytest.approx(math.log(78), abs=1e-5)
    W_buggy, buggy_loss = train(bigram_loss_given)
    W_right, _ = train(bigram_loss_right)
    assert buggy_loss < math.log(78) - 0.5                                  # it falls
    assert bigram_loss_right(W_buggy, ids).item() > bigram_loss_right(W_right, ids).item() + 0.3


def test_character_groups_and_their_distances():
    assert [lm.character_group(c) for c in "aQz,"] == ["lowercase vowels", "uppercase letters",
                                                      "lowercase consonants", "other"]
    chars = list("aebcXY!")
    embedding = np.array([[0, 0], [0, 1], [3, 0], [3, 1], [10, 0], [10, 2], [50, 50]], dtype=float)
    distances = lm.group_distances(embedding, chars)
    assert distances[0, 0] == 1 and distances[1, 1] == 1 and distances[2, 2] == 2
    assert distances[0, 1] == pytest.approx((3 + np.sqrt(10) + np.sqrt(10) + 3) / 4)
    np.testing.assert_allclose(distances, distances.T)


def test_embedding_map_draws_every_character_with_a_legend():
    tok, _, _ = lm.corpus_bigram()
    embedding = np.random.default_rng(0).normal(size=(tok.vocab_size, 2))
    fig = plots.make_embedding_map(embedding, tok.chars)
    ax = fig.axes[0]
    assert len(ax.texts) == tok.vocab_size and ax.get_legend() is not None
    assert {t.get_text() for t in ax.get_legend().get_texts()} == set(lm.CHARACTER_GROUPS) | {"other"}
    plt.close(fig)
