"""Notebook 09: the schedule figure, the live plot, the generation explorer and the checkers."""

import math
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from helpers import checks, gpt, plots, tokenizers, training, widgets
from checker_cases import assert_redraws, checker_tests, forever, stub


def test_schedule_figure():
    fig = plots.make_schedule(100, 1e-3, 1e-4, 10)
    ax = fig.axes[0]
    rates = ax.lines[0].get_ydata()
    assert len(rates) == 100 and max(rates) == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-4)
    plt.close(fig)


def test_live_loss_keeps_the_history_and_draws_it(monkeypatch):
    updates = []

    class Handle:
        def update(self, fig):
            updates.append(plots.to_png(fig))

    monkeypatch.setattr("IPython.display.display", lambda *a, **k: Handle())
    live = plots.LiveLoss("test", reference={"bigram": 2.5})
    live(10, {"step": [10], "train": [3.0], "val": [3.1]})
    live(20, {"step": [10, 20], "train": [3.0, 2.5], "val": [3.1, 2.6]})
    assert len(updates) == 2 and updates[0] != updates[1]
    fig = live.figure()
    assert list(fig.axes[0].lines[1].get_ydata()) == [3.1, 2.6]
    plt.close(fig)


@pytest.fixture(scope="module")
def models():
    tok = tokenizers.CharTokenizer("DUKE ORSINO:\nIf music be the food of love, play on;\n")
    made = {}
    for i in range(2):
        torch.manual_seed(i)
        made[f"model {i}"] = gpt.GPT(gpt.GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=1,
                                                   n_embd=8)).eval()
    return made, tok


@pytest.mark.parametrize("temperature, checkpoint, prompt", [(0.1, 0, "DUKE"), (2.0, 1, ""), (0.0, 99, "€ unknown ☃"),
                                                             (1.0, -1, "x" * 500)])
def test_generation_explorer_at_extremes(models, temperature, checkpoint, prompt):
    made, tok = models
    fig = plots.make_generation_explorer(made, tok, temperature, checkpoint, prompt, length=40)
    title = fig.axes[0].get_title()
    assert "temperature" in title
    if any(c not in tok.stoi for c in prompt):
        assert "dropped" in title
    plt.close(fig)


def test_generation_explorer_redraws(models):
    made, tok = models
    explorer = widgets.Explorer(partial(plots.make_generation_explorer, made, tok, length=40),
                                {"temperature": widgets.slider(0.8, 0.1, 2.0), "checkpoint": widgets.slider(1, 0, 1),
                                 "prompt": widgets.text_box("DUKE")})
    assert_redraws(explorer, [("temperature", 1.9), ("checkpoint", 0), ("prompt", "love")])


# --- checkers -------------------------------------------------------------

def schedule(step, lr, min_lr, warmup_steps, steps):
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - 1 - warmup_steps)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)


def clip(grads, max_norm):
    total = np.sqrt(sum((g ** 2).sum() for g in grads))
    return [g * min(1.0, max_norm / (total + 1e-6)) for g in grads]


def clip_with_torch(grads, max_norm):
    params = [torch.nn.Parameter(torch.zeros(np.shape(g), dtype=torch.float64)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g, dtype=torch.float64)
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    return [p.grad for p in params]


def clip_in_place(grads, max_norm):
    total = np.sqrt(sum((g ** 2).sum() for g in grads))
    for g in grads:
        g *= min(1.0, max_norm / (total + 1e-6))
    return grads


RIGHT = [(checks.warmup_cosine, schedule),
         (checks.warmup_cosine, lambda s, lr, m, w, n: training.learning_rate(
             s, training.TrainConfig(steps=n, lr=lr, min_lr=m, warmup_steps=w))),
         (checks.clip_by_global_norm, clip), (checks.clip_by_global_norm, clip_with_torch)]

BROKEN = [
    (checks.warmup_cosine, lambda s, lr, m, w, n: lr * s / w if s < w else schedule(s, lr, m, w, n), "warm-up at 0"),
    (checks.warmup_cosine, lambda s, lr, m, w, n: schedule(s, lr, 0.0, w, n) if s >= w else schedule(s, lr, m, w, n),
     "decayed to 0"),
    (checks.warmup_cosine, lambda s, lr, m, w, n: schedule(s, lr, m, w, n) if s < w else
     m + 0.5 * (1 + math.cos(math.pi * s / (n - 1))) * (lr - m), "from step 0"),
    (checks.warmup_cosine, lambda s, lr, m, w, n: lr, "expected"),                       # constant rate
    (checks.warmup_cosine, lambda s, lr, m, w, n: schedule(s, lr, m, w, n) if n == 100 else 2e-3, "shipped"),
    (checks.warmup_cosine, forever, "did not finish"),
    (checks.warmup_cosine, stub, "not implemented yet"),
    (checks.clip_by_global_norm, lambda g, m: [x * min(1.0, m / (np.linalg.norm(x) + 1e-6)) for x in g], "on its own"),
    (checks.clip_by_global_norm, lambda g, m: [x * m / (np.sqrt(sum((y ** 2).sum() for y in g)) + 1e-6) for x in g],
     "only ever shrinks"),
    (checks.clip_by_global_norm, lambda g, m: [x * min(1.0, m / sum(np.linalg.norm(y) for y in g)) for x in g],
     "square root of the sum"),
    (checks.clip_by_global_norm, clip_in_place, "changed its input"),
    (checks.clip_by_global_norm, lambda g, m: np.concatenate([x.ravel() for x in clip(g, m)]), "not a list of arrays"),
    (checks.clip_by_global_norm, lambda g, m: clip(g, m)[:1], "arrays for"),
    (checks.clip_by_global_norm, stub, "not implemented yet"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)
