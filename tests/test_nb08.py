"""Notebook 08: the transformer's sizes and costs, batches, the size explorer and the checkers."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import checks, gpt, plots, training, widgets
from checker_cases import assert_redraws, checker_tests, stub


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.sampled_from([1, 2, 4]), st.sampled_from([4, 8, 16]), st.integers(1, 40), st.integers(2, 300))
def test_model_size_parts_add_up_to_the_real_model(n_layer, n_head, width, block_size, vocab_size):
    n_embd = n_head * width
    size = plots.model_size(n_layer, n_head, n_embd, block_size, vocab_size)
    model = gpt.GPT(gpt.GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                                  n_embd=n_embd))
    assert size["total"] == sum(p.numel() for p in model.parameters())
    assert size["parts"]["MLP"] == sum(p.numel() for n, p in model.named_parameters() if ".mlp." in n)
    assert size["training_bytes"] == 4 * size["inference_bytes"] == 16 * size["total"]


@pytest.mark.parametrize("knobs", [dict(), dict(n_layer=48, n_head=32, n_embd=2048, block_size=4096, vocab_size=100_000),
                                   dict(n_layer=1, n_head=1, n_embd=16, block_size=8, vocab_size=2),
                                   dict(n_head=3, n_embd=128)])
def test_size_explorer_figure_at_extremes(knobs):
    fig = plots.make_size_explorer(**knobs)
    title = fig.axes[0].get_title()
    if knobs.get("n_head") == 3:
        assert "not a valid architecture" in title
        assert "not divisible" in fig.axes[0].texts[0].get_text()
    else:
        assert "parameters" in title and "FLOPs per token" in title
    plt.close(fig)


def test_size_explorer_redraws():
    explorer = widgets.Explorer(plots.make_size_explorer, {"n_layer": widgets.slider(4, 1, 48),
                                                           "n_embd": widgets.slider(128, 16, 2048, step=16)})
    assert_redraws(explorer, [("n_layer", 12), ("n_embd", 768)])


@given(st.integers(1, 8), st.integers(1, 20), st.integers(0, 2**31))
def test_random_batch_targets_are_the_inputs_shifted_by_one(batch_size, block_size, seed):
    ids = torch.arange(100) * 7 % 31
    x, y = training.random_batch(ids, batch_size, block_size, torch.Generator().manual_seed(seed))
    assert x.shape == y.shape == (batch_size, block_size) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    starts = [int(np.flatnonzero([torch.equal(ids[s:s + block_size], row) for s in range(100 - block_size)])[0])
              for row in x]
    assert all(torch.equal(ids[s + 1: s + block_size + 1], row) for s, row in zip(starts, y))


def test_random_batch_and_estimate_loss_edge_cases():
    with pytest.raises(ValueError, match="too few"):
        training.random_batch(torch.arange(5), 2, 5)
    ids = torch.randint(0, 10, (500,), generator=torch.Generator().manual_seed(0))
    model = gpt.GPT(gpt.GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8, dropout=0.1))
    model.train()
    first = training.estimate_loss(model, ids, batch_size=4, batches=3)
    assert model.training                                      # the mode is restored
    assert training.estimate_loss(model, ids, batch_size=4, batches=3) == first   # same windows, no dropout
    assert abs(first - np.log(10)) < 0.2


# --- checkers -------------------------------------------------------------

def layer_norm_np(x, gamma, beta, eps=1e-5):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * gamma + beta


def layer_norm_without_eps(x, gamma, beta, eps=1e-5):
    with np.errstate(invalid="ignore"):                       # 0 / 0 for a constant row
        return (x - x.mean(-1, keepdims=True)) / x.std(-1, keepdims=True) * gamma + beta


def count(V, T, L, C):
    return V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C


def torch_layer_norm(x, gamma, beta, eps=1e-5):
    x = torch.as_tensor(x)
    return torch.nn.functional.layer_norm(x, x.shape[-1:], torch.as_tensor(gamma), torch.as_tensor(beta), eps)


RIGHT = [(checks.layer_norm, layer_norm_np), (checks.layer_norm, torch_layer_norm),
         (checks.gpt_parameter_count, count),
         (checks.gpt_parameter_count, lambda V, T, L, C: float(count(V, T, L, C)))]

BROKEN = [
    (checks.layer_norm, lambda x, g, b, eps=1e-5: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True, ddof=1) + eps) * g + b,
     "unbiased"),
    (checks.layer_norm, lambda x, g, b, eps=1e-5: (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + eps) * g + b,
     "inside the square root"),
    (checks.layer_norm, lambda x, g, b, eps=1e-5: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps),
     "gamma and beta"),
    (checks.layer_norm, lambda x, g, b, eps=1e-5: (x - x.mean(0, keepdims=True)) / np.sqrt(x.var(0, keepdims=True) + eps) * g + b,
     "axis 0"),
    (checks.layer_norm, layer_norm_without_eps, "NaN"),
    (checks.layer_norm, lambda x, g, b, eps=1e-5: np.array([[-1.2247, 0.0, 1.2247]]), "expected"),   # hard-coded
    (checks.layer_norm, stub, "not implemented yet"),
    (checks.gpt_parameter_count, lambda V, T, L, C: count(V, T, L, C) + V * C, "tied"),
    (checks.gpt_parameter_count, lambda V, T, L, C: count(V, T, L, C) - T * C, "position embeddings"),
    (checks.gpt_parameter_count, lambda V, T, L, C: V * C + T * C + L * (12 * C * C + 2 * C) + C, "biases"),
    (checks.gpt_parameter_count, lambda V, T, L, C: count(V, T, L, C) - 4 * L * C, "two layer norms"),
    (checks.gpt_parameter_count, lambda V, T, L, C: count(V, T, L, C) - 2 * C, "final layer norm"),
    (checks.gpt_parameter_count, lambda V, T, L, C: count(V, T, L, C) - L * (C * C + C), "output projection"),
    (checks.gpt_parameter_count, lambda V, T, L, C: count(V, T, L, C) - L * (6 * C * C + 3 * C), "1x wide"),
    (checks.gpt_parameter_count, lambda V, T, L, C: 809_856, "GPT-2 small"),                         # hard-coded
    (checks.gpt_parameter_count, lambda V, T, L, C: str(count(V, T, L, C)), "text"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)
