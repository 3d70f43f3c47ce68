"""Notebook 07: attention from scratch (helpers.attention), n-gram tables (helpers.language_model),
how far a model's heads look back, the figures, the explorer and the checkers."""

from functools import partial

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import attention, checks, gpt, language_model, plots, tokenizers, widgets
from helpers.paths import DATA_DIR
from checker_cases import assert_redraws, checker_tests, forever, stub


@settings(max_examples=40)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 12), st.integers(1, 16), st.booleans(), st.integers(0, 2**31))
def test_attention_equals_pytorch_for_any_shape_and_mask(B, H, T, d, causal, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, d, generator=g, dtype=torch.float64) for _ in range(3))
    if causal:
        mask = gpt.causal_mask(T)
    else:
        mask = torch.rand(T, T, generator=g) < 0.5
        mask |= torch.eye(T, dtype=torch.bool)          # every row may attend somewhere
    out, weights = attention.attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, T, dtype=torch.float64))
    assert (weights[..., ~mask] == 0).all()


def test_unscaled_weights_are_sharper_and_no_mask_means_all_positions():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(5, 64, generator=g), torch.randn(5, 64, generator=g)
    scaled, unscaled = attention.attention_weights(q, k), attention.attention_weights(q, k, scale=False)
    assert (unscaled.max(-1).values >= scaled.max(-1).values - 1e-6).all()
    assert (attention.attention_weights(q, k, gpt.causal_mask(5)).triu(1) == 0).all()
    assert (scaled[~gpt.causal_mask(5)] > 0).all()


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    tok = tokenizers.CharTokenizer("KING RICHARD:\nWhat news, cousin?")
    model = gpt.GPT(gpt.GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16))
    return model, tok


def test_head_weights_match_the_model_and_the_switches_work(small_model):
    model, tok = small_model
    ids = tok.encode("KING RICHARD:\nWh")
    weights = model.attention_maps(torch.tensor([ids]))     # (layers, 1, heads, T, T)
    for layer in (0, 1):
        for head in (0, 1):
            torch.testing.assert_close(attention.head_weights(model, ids, layer, head), weights[layer, 0, head])
    open_weights = attention.head_weights(model, ids, 1, 0, causal=False)
    assert (open_weights[~gpt.causal_mask(len(ids))] > 0).all() and torch.allclose(open_weights.sum(-1), torch.ones(len(ids)))


@pytest.mark.parametrize("layer, head, n, phrase", [(0, 0, 17, "block_size=16"), (0, 0, 0, "between 1"),
                                                    (2, 0, 4, "layer must be in 0..1"), (0, 5, 4, "head in 0..1")])
def test_head_weights_bad_input_says_what_is_wrong(small_model, layer, head, n, phrase):
    model, _ = small_model
    with pytest.raises(ValueError, match=phrase):
        attention.head_weights(model, [0] * n, layer, head)


@pytest.mark.parametrize("position, head, scale, causal", [(-5, 0, True, True), (1000, 99, True, True),
                                                           (3, 1, False, False), (0, 0, True, False)])
def test_attention_explorer_figure_at_extremes(small_model, position, head, scale, causal):
    model, tok = small_model
    fig = plots.make_attention_explorer(model, tok, "KING RICHARD:\nWhat news, cousin?", position, head,
                                        scale=scale, causal=causal)
    assert "most weight" in fig.axes[1].get_title()
    plt.close(fig)


def test_attention_explorer_redraws_for_every_control(small_model):
    model, tok = small_model
    explorer = widgets.Explorer(partial(plots.make_attention_explorer, model, tok, "KING RICHARD:\nWhat news"),
                                {"position": widgets.slider(10, 0, 15), "head": widgets.slider(0, 0, 1),
                                 "scale": widgets.toggle(True), "causal": widgets.toggle(True)})
    assert_redraws(explorer, [("position", 4), ("head", 1), ("scale", False), ("causal", False)])


# --- n-gram tables -------------------------------------------------------

def brute_force_probs(train, context, vocab_size, n, discount, kneser_ney):
    """The interpolated (or Kneser-Ney) probability of every next token after ``context``,
    counted with Python loops straight from the definitions."""
    def grams(length):
        return [tuple(train[i:i + length]) for i in range(len(train) - length + 1)]

    p = np.full(vocab_size, 1.0 / vocab_size)
    for k in range(n):
        c = tuple(context[len(context) - k:]) if k else ()
        if k == n - 1 or not kneser_ney:
            counts = {y: sum(1 for g in grams(k + 1) if g[:k] == c and g[k] == y) for y in range(vocab_size)}
        else:   # how many different tokens precede (c, y)
            counts = {y: len({g[0] for g in grams(k + 2) if g[1:k + 1] == c and g[k + 1] == y})
                      for y in range(vocab_size)}
        total = sum(counts.values())
        if total == 0:
            continue
        followers = sum(1 for y in counts if counts[y] > 0)
        p = np.array([(max(counts[y] - discount, 0) + discount * followers * p[y]) / total
                      for y in range(vocab_size)])
    return p


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=12, max_size=40), st.lists(st.integers(0, 3), min_size=3, max_size=3),
       st.integers(1, 4), st.sampled_from([0.3, 0.75, 1.0]), st.booleans())
def test_interpolated_and_kneser_ney_match_their_definition_and_sum_to_one(train, context, n, discount, kneser_ney):
    V = 4
    train = np.array(train)
    rows = np.array([context + [y] for y in range(V)])          # the same context, every next token
    probs = [(language_model.kneser_ney_probs if kneser_ney else language_model.interpolated_probs)(
        language_model.ngram_statistics(train, row, V, max_context=3), n, discount, V)[0] for row in rows]
    np.testing.assert_allclose(sum(probs), 1.0, rtol=1e-12)
    np.testing.assert_allclose(probs, brute_force_probs(list(train), context, V, n, discount, kneser_ney), rtol=1e-12)


def test_add_alpha_and_training_loss_match_direct_counts():
    rng = np.random.default_rng(0)
    train, held_out = rng.integers(0, 5, 400), rng.integers(0, 5, 100)
    stats = language_model.ngram_statistics(train, held_out, 5, max_context=2)
    counts = np.zeros((5, 5, 5))
    np.add.at(counts, (train[:-2], train[1:-1], train[2:]), 1)
    probs = (counts + 0.1) / (counts.sum(-1, keepdims=True) + 0.5)
    expected = -np.log(probs[held_out[:-2], held_out[1:-1], held_out[2:]]).mean()
    assert abs(language_model.add_alpha_loss(stats, 3, 0.1, 5) - expected) < 1e-12
    seen = counts > 0
    ml = np.where(seen, counts / np.maximum(counts.sum(-1, keepdims=True), 1), 1.0)
    train_loss = -(counts * np.log(ml)).sum() / counts.sum()
    assert abs(stats[2]["train_loss"] - train_loss) < 1e-12
    assert stats[2]["seen"] == int((counts.sum(-1) > 0).sum())


def test_ngram_keys_that_do_not_fit_and_a_bad_first_position_say_so():
    with pytest.raises(ValueError, match="do not fit"):
        language_model.context_keys(np.arange(20) % 78, 10, 78)
    with pytest.raises(ValueError, match="at least max_context"):
        language_model.ngram_statistics(np.arange(10), np.arange(10), 10, max_context=3, first=1)


def test_the_stored_ngram_results_and_figure():
    record = json.loads((DATA_DIR / "ngrams.json").read_text())
    rows = record["rows"]
    assert [r["n"] for r in rows] == list(range(2, 11))
    assert all(a["train_loss"] > b["train_loss"] for a, b in zip(rows, rows[1:]))      # memorising more
    best = min(rows, key=lambda r: r["heldout_kneser_ney"])
    assert best["heldout_kneser_ney"] < min(r["heldout_add_alpha"] for r in rows)
    assert set(record["tuning_plays"]).isdisjoint({"twelfth-night", "richard-ii", "macbeth"})   # not scored plays
    fig = plots.make_ngram_losses(rows, {"a model": 1.45})
    assert "best table: n = 8" in " ".join(t.get_text() for t in fig.axes[0].texts)
    plt.close(fig)


# --- how far heads look back ---------------------------------------------

def test_look_back_and_the_weight_on_the_latest_token():
    T = 6
    previous = torch.zeros(T, T)
    previous[0, 0] = 1
    previous[torch.arange(1, T), torch.arange(T - 1)] = 1              # every query looks 1 back
    first = torch.zeros(T, T)
    first[:, 0] = 1                                                     # every query looks at position 0
    maps = torch.stack([previous, first])[:, None, None]               # (2 layers, 1, 1 head, T, T)
    torch.testing.assert_close(attention.look_back(maps, first_query=1), torch.tensor([[1.0], [3.0]]))
    idx = torch.tensor([[7, 1, 7, 2, 3, 7]])
    assert attention.latest(idx, 7).tolist() == [[0, 0, 2, 2, 2, 5]]
    assert attention.latest(idx, 9).tolist() == [[-1] * T]
    on_latest = attention.weight_on_latest(maps, idx, 7, first_query=1)   # queries 1..5
    torch.testing.assert_close(on_latest, torch.tensor([[2 / 5], [1 / 5]]))
    with pytest.raises(ValueError, match="first_query"):
        attention.look_back(maps, first_query=T)


def test_look_back_figure_and_head_on_text():
    fig = plots.make_look_back(torch.rand(4, 4) * 30, torch.rand(4, 4), context=128)
    assert len(fig.axes) == 4                                           # two maps, two colour bars
    plt.close(fig)
    fig = plots.make_head_on_text(torch.eye(5), "ab\ncd", title="x")
    assert fig.axes[0].get_title() == "x"
    plt.close(fig)


# --- checkers -------------------------------------------------------------

def mha(x, w, n_head, scale=True, mask="before", merge=True, project=True):
    """Multi-head causal self-attention written out, with one part done wrong on request."""
    B, T, C = x.shape
    d = C // n_head
    q, k, v = ((x @ w[f"{n}.weight"].T + w[f"{n}.bias"]).view(B, T, n_head, d).transpose(1, 2)
               for n in ("query", "key", "value"))
    scores = q @ k.transpose(-2, -1) / (d ** 0.5 if scale else 1.0)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    if mask == "before":
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask == "after":
        weights = weights * allowed
    y = weights @ v
    y = y.transpose(1, 2).reshape(B, T, C) if merge else y.reshape(B, T, C)
    return y @ w["proj.weight"].T + w["proj.bias"] if project else y


def causal_broken(q, k, v, fill=0.0, scale=True, mask="before"):
    """The exercise's broken code (fill=0.0), and other slips."""
    T, d = q.shape[-2], q.shape[-1]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    scores = q @ k.transpose(-2, -1) / (d ** 0.5 if scale else 1.0)
    if mask == "before":
        scores = scores.masked_fill(~allowed, fill)
    weights = torch.softmax(scores, dim=-1)
    return (weights * allowed if mask == "after" else weights) @ v


def test_the_checkers_reference_equals_pytorch_and_the_model():
    from helpers.checks.transformer import _mha_module, _shipped_block_input

    weights, x = _shipped_block_input(0, "KING RICHARD:\nWhat news, cousin?")
    weights64 = {name: value.double() for name, value in weights.items()}
    np.testing.assert_allclose(_mha_module(weights, 4, x), mha(x.double(), weights64, 4).numpy(), atol=1e-10)
    np.testing.assert_allclose(_mha_module(weights, 4, x), multi_head_sdpa(x, weights, 4).numpy(), atol=1e-5)


def multi_head_sdpa(x, w, n_head):
    B, T, C = x.shape
    q, k, v = ((x @ w[f"{n}.weight"].T + w[f"{n}.bias"]).view(B, T, n_head, -1).transpose(1, 2)
               for n in ("query", "key", "value"))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
    return y @ w["proj.weight"].T + w["proj.bias"]


def hard_coded_mha(x, w, n_head):
    from helpers.checks.transformer import _mha_module, _shipped_block_input

    weights, line = _shipped_block_input(0, "KING RICHARD:\nWhat news, cousin?")
    return _mha_module(weights, 4, line)


RIGHT = [(checks.multi_head_attention, mha),
         (checks.multi_head_attention, multi_head_sdpa),
         (checks.multi_head_attention, lambda x, w, n: mha(x.float(), {k: v.float() for k, v in w.items()}, n)),
         (checks.causal_attention, partial(causal_broken, fill=float("-inf"))),
         (checks.causal_attention, partial(causal_broken, fill=-1e9)),                 # a large negative works too
         (checks.causal_attention, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
         (checks.predict_zero_query_weight, lambda: 0.2),
         (checks.predict_zero_query_weight, lambda: 1 / 5)]

BROKEN = [
    (checks.multi_head_attention, partial(mha, scale=False), "forgot to divide the scores by sqrt(d)"),
    (checks.multi_head_attention, lambda x, w, n: mha(x, w, n) if n == 4 else mha(x, w, 4), "8 heads"),
    (checks.multi_head_attention, partial(mha, mask="after"), "after the softmax"),
    (checks.multi_head_attention, partial(mha, mask="none"), "left out the causal mask"),
    (checks.multi_head_attention, partial(mha, merge=False), "merged the heads wrongly"),
    (checks.multi_head_attention, partial(mha, project=False), "forgot the output projection"),
    (checks.multi_head_attention, hard_coded_mha, "hidden random batch"),
    (checks.multi_head_attention, stub, "not implemented yet"),
    (checks.multi_head_attention, forever, "did not finish"),
    (checks.causal_attention, causal_broken, "still gives what the broken code gives"),
    (checks.causal_attention, partial(causal_broken, fill=float("-inf"), mask="after"), "after the softmax"),
    (checks.causal_attention, partial(causal_broken, fill=float("-inf"), scale=False), "sqrt(d)"),
    (checks.causal_attention, partial(causal_broken, mask="none"), "left out the mask"),
    (checks.causal_attention, stub, "not implemented yet"),
    (checks.predict_zero_query_weight, lambda: 0.25, "the answer is 0.2"),
    (checks.predict_zero_query_weight, lambda: 0.1, "five keys"),
    (checks.predict_zero_query_weight, lambda: None, "return"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)


def test_the_exercise_slips_of_the_build_each_have_their_own_words():
    from helpers.checks.transformer import _MHA_SLIPS

    words = [w for _, w in _MHA_SLIPS]
    assert len(set(words)) == len(words)
