"""Notebook 07: attention from scratch (helpers.attention), its figures, explorer and checkers."""

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import attention, checks, gpt, plots, tokenizers, widgets
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


# --- checkers -------------------------------------------------------------

def weights_np(Q, K):
    s = Q @ K.T / np.sqrt(Q.shape[1])
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def attend_np(Q, K, V, mask, fill=-np.inf, scale=True, mask_after=False):
    s = Q @ K.T / (np.sqrt(Q.shape[1]) if scale else 1.0)
    if not mask_after:
        s = np.where(mask, s, fill)
    w = np.exp(s - s.max(axis=1, keepdims=True))
    w = w / w.sum(axis=1, keepdims=True)
    return (w * mask if mask_after else w) @ V


def naive_softmax_weights(Q, K):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(Q @ K.T / np.sqrt(Q.shape[1]))      # overflows for large scores
        return e / e.sum(axis=1, keepdims=True)


RIGHT = [(checks.attention_weights, weights_np),
         (checks.attention_weights, lambda Q, K: torch.softmax(torch.as_tensor(Q) @ torch.as_tensor(K).T
                                                               / Q.shape[1] ** 0.5, dim=-1)),
         (checks.causal_mask, lambda T: np.tril(np.ones((T, T), dtype=bool))),
         (checks.causal_mask, lambda T: torch.ones(T, T).tril()),              # 1/0 is accepted
         (checks.masked_attention, attend_np)]

BROKEN = [
    (checks.attention_weights, lambda Q, K: weights_np(Q * Q.shape[1] ** 0.25, K * Q.shape[1] ** 0.25), "sqrt(d)"),
    (checks.attention_weights, lambda Q, K: weights_np(Q / Q.shape[1] ** 0.25, K / Q.shape[1] ** 0.25),
     "instead of sqrt(d)"),
    (checks.attention_weights, lambda Q, K: weights_np(K, Q).T if Q.shape == K.shape else weights_np(Q, K),
     "axis 0"),
    (checks.attention_weights, lambda Q, K: weights_np(Q, K).T, "shape"),
    (checks.attention_weights, naive_softmax_weights, "large queries"),
    (checks.attention_weights, lambda Q, K: np.array([[0.401, 0.198, 0.401]]), "expected"),   # hard-coded
    (checks.attention_weights, stub, "not implemented yet"),
    (checks.causal_mask, lambda T: np.triu(np.ones((T, T), dtype=bool)), "upper triangle"),
    (checks.causal_mask, lambda T: np.tril(np.ones((T, T), dtype=bool), -1), "diagonal"),
    (checks.causal_mask, lambda T: np.tril(np.ones((3, 3), dtype=bool)), "T = 4"),             # hard-coded T
    (checks.causal_mask, lambda T: np.tril(np.full((T, T), 2.0)), "True/False"),
    (checks.causal_mask, forever, "did not finish"),
    (checks.masked_attention, lambda Q, K, V, m: attend_np(Q, K, V, np.ones_like(m)), "ignored the mask"),
    (checks.masked_attention, partial(attend_np, fill=0.0), "-inf"),
    (checks.masked_attention, partial(attend_np, mask_after=True), "after the softmax"),
    (checks.masked_attention, partial(attend_np, scale=False), "sqrt(d)"),
    (checks.masked_attention, lambda Q, K, V, m: attend_np(Q, K, V, m).T, "shape"),
    (checks.masked_attention, stub, "not implemented yet"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)
