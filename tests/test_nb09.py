"""Notebook 09: the schedule figures, the stored schedule experiment, the live plot, the generation explorer and
the checkers."""

import json
from dataclasses import asdict
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from helpers import checks, gpt, plots, tokenizers, training, widgets
from helpers.paths import DATA_DIR
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


@pytest.mark.parametrize("temperature, checkpoint, prompt, top_k, position",
                         [(0.1, 0, "DUKE", 0, 1), (2.0, 1, "", 3, 40), (0.0, 99, "€ unknown ☃", 1, 999),
                          (1.0, -1, "x" * 500, 78, -5)])
def test_generation_explorer_at_extremes(models, temperature, checkpoint, prompt, top_k, position):
    made, tok = models
    text, fig = plots.make_generation_explorer(made, tok, temperature, checkpoint, prompt, top_k, position, length=40)
    ax = fig.axes[0]
    assert "temperature" in ax.get_title() and "drawn with probability" in text
    heights = [bar.get_height() for bar in ax.patches]
    assert 0 < sum(heights) <= 1 + 1e-6 and heights == sorted(heights, reverse=True)
    if top_k == 1:
        assert heights[0] == pytest.approx(1.0) and "probability 1.00" in text       # greedy: one choice
    if any(c not in tok.stoi for c in prompt):
        assert "dropped" in ax.get_title()
    plt.close(fig)


def test_generation_explorer_shows_the_sample_as_text_and_the_drawn_character_in_red(models):
    made, tok = models
    text, fig = plots.make_generation_explorer(made, tok, 1.0, 1, "DUKE", 0, 5, length=20, shown=len(tok.chars))
    sample = text.split("\n\n--- ")[0]
    assert sample.startswith("DUKE") and len(sample) == 24
    drawn = sample[4 + 5 - 1]
    reds = [i for i, bar in enumerate(fig.axes[0].patches) if bar.get_facecolor()[:3] == plt.matplotlib.colors.to_rgb(
        plots.CLASS_COLORS[1])]
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(reds) == 1 and labels[reds[0]] == plots.visible_whitespace(drawn)
    plt.close(fig)


def test_generation_explorer_redraws_text_and_figure(models):
    made, tok = models
    explorer = widgets.TextExplorer(
        partial(plots.make_generation_explorer, made, tok, length=40),
        {"temperature": widgets.slider(0.8, 0.1, 2.0), "checkpoint": widgets.slider(1, 0, 1),
         "prompt": widgets.text_box("DUKE"), "top_k": widgets.slider(0, 0, 10), "position": widgets.slider(1, 1, 40)})
    assert explorer.output.outputs[0]["text"] == explorer.text + "\n"      # the sample, shown as text
    before = explorer.text
    assert_redraws(explorer, [("temperature", 1.9), ("checkpoint", 0), ("prompt", "love"), ("top_k", 2),
                              ("position", 30)])
    assert explorer.text != before and explorer.output.outputs[0]["text"] == explorer.text + "\n"


# --- the stored schedule experiment ------------------------------------------------------------

def test_the_stored_schedule_runs_are_the_planned_ones_and_finished():
    from scripts import make_schedules

    record = json.loads((DATA_DIR / "schedules.json").read_text(encoding="utf-8"))
    assert set(record["runs"]) == set(make_schedules.plan())
    for name, (settings, _) in make_schedules.plan().items():
        run = record["runs"][name]
        assert {k: run["train_config"][k] for k in settings} == settings
        assert run["diverged"] is not None or run["history"]["step"][-1] == settings["steps"]
        assert run["seed"] == settings["seed"] and run["threads"] == 1
    live = record["runs"]["cosine-300-2e-3-seed0"]["train_config"]     # notebook 09's live run
    assert live == asdict(training.TrainConfig(steps=300, batch_size=12, lr=2e-3, min_lr=2e-4, warmup_steps=30,
                                               eval_every=50, eval_batches=4))


def test_schedule_experiment_figure(tmp_path):
    record = json.loads((DATA_DIR / "schedules.json").read_text(encoding="utf-8"))
    fig = plots.make_schedule_experiment(record["runs"])
    assert len(fig.axes) >= 2 and all(ax.get_xlabel() == "step" for ax in fig.axes)
    plt.close(fig)


# --- checkers -------------------------------------------------------------

def adamw_step(params, grads, m, v, t, lr, betas, eps, weight_decay):
    beta1, beta2 = betas
    new_params, new_m, new_v = [], [], []
    for p, g, m_i, v_i in zip(params, grads, m, v):
        m_i = beta1 * m_i + (1 - beta1) * g
        v_i = beta2 * v_i + (1 - beta2) * g ** 2
        m_hat, v_hat = m_i / (1 - beta1 ** t), v_i / (1 - beta2 ** t)
        new_params.append(p * (1 - lr * weight_decay) - lr * m_hat / (np.sqrt(v_hat) + eps))
        new_m.append(m_i)
        new_v.append(v_i)
    return new_params, new_m, new_v


def adamw_with_torch(params, grads, m, v, t, lr, betas, eps, weight_decay):
    """The same step by torch.optim.AdamW, its state rebuilt from (m, v, t): float32 tensors out."""
    tensors = [torch.nn.Parameter(torch.tensor(np.asarray(p), dtype=torch.float32)) for p in params]
    optimizer = torch.optim.AdamW(tensors, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    for p, g, m_i, v_i in zip(tensors, grads, m, v):
        p.grad = torch.tensor(np.asarray(g), dtype=torch.float32)
        optimizer.state[p] = {"step": torch.tensor(float(t - 1)), "exp_avg": torch.tensor(np.asarray(m_i)).float(),
                              "exp_avg_sq": torch.tensor(np.asarray(v_i)).float()}
    optimizer.step()
    return ([p.detach() for p in tensors], [optimizer.state[p]["exp_avg"] for p in tensors],
            [optimizer.state[p]["exp_avg_sq"] for p in tensors])


def adamw_l2(params, grads, m, v, t, lr, betas, eps, weight_decay):
    grads = [g + weight_decay * p for g, p in zip(grads, params)]
    return adamw_step(params, grads, m, v, t, lr, betas, eps, 0.0)


def adamw_in_place(params, grads, m, v, t, lr, betas, eps, weight_decay):
    new, m, v = adamw_step(params, grads, m, v, t, lr, betas, eps, weight_decay)
    for p, q in zip(params, new):
        p[...] = q
    return params, m, v


def adamw_decay_without_lr(params, grads, m, v, t, lr, betas, eps, weight_decay):
    new, m, v = adamw_step(params, grads, m, v, t, lr, betas, eps, 0.0)
    return [q - weight_decay * p for q, p in zip(new, params)], m, v


def clip_broken(parameters, max_norm):          # the notebook's broken code
    total = 0.0
    for p in parameters:
        norm = p.grad.norm()
        if norm > max_norm:
            p.grad.mul_(max_norm / (norm + 1e-6))
        total += norm ** 2
    return total ** 0.5


def clip_fixed(parameters, max_norm):
    parameters = list(parameters)
    total = sum(p.grad.pow(2).sum() for p in parameters) ** 0.5
    scale = min(1.0, max_norm / (total + 1e-6))
    for p in parameters:
        p.grad.mul_(scale)
    return total


def clip_read_twice(parameters, max_norm):          # right, but reads a generator twice
    total = sum(p.grad.pow(2).sum() for p in parameters) ** 0.5
    for p in parameters:
        p.grad.mul_(min(1.0, max_norm / (total + 1e-6)))
    return total


def clip_norm_after(parameters, max_norm):
    parameters = list(parameters)
    clip_fixed(parameters, max_norm)
    return sum(p.grad.pow(2).sum() for p in parameters) ** 0.5


RIGHT = [(checks.adamw_step, adamw_step), (checks.adamw_step, adamw_with_torch),
         (checks.clip_gradients_, clip_fixed),
         (checks.clip_gradients_, lambda ps, m: torch.nn.utils.clip_grad_norm_(ps, m)),
         (checks.adam_scale, lambda: "the same"), (checks.adam_scale, lambda: " The Same ")]

BROKEN = [
    (checks.adamw_step, lambda *a: adamw_step(*a[:4], 10 ** 9, *a[5:]), "skipped the bias correction"),
    (checks.adamw_step, adamw_l2, "L2 penalty"),
    (checks.adamw_step, adamw_decay_without_lr, "weight_decay alone"),
    (checks.adamw_step, lambda p, g, m, v, t, lr, b, e, wd: adamw_step(p, g, m, v, t, lr, b, e, 0.0), "plain Adam"),
    (checks.adamw_step, adamw_in_place, "changed its input"),
    (checks.adamw_step, lambda *a: adamw_step(*a)[0], "return the three lists"),
    (checks.adamw_step, lambda *a: 5, "return the three lists"),
    (checks.adamw_step, lambda p, g, m, v, *rest: ([np.asarray(x) * 0.99 - 0.1 * np.sign(y) for x, y in zip(p, g)],
                                                   m, v), "three steps"),            # right for one step only
    (checks.adamw_step, stub, "not implemented yet"),
    (checks.adamw_step, forever, "did not finish"),
    (checks.clip_gradients_, clip_broken, "still gives what the broken code gives"),
    (checks.clip_gradients_, clip_read_twice, "can be read only once"),
    (checks.clip_gradients_, clip_norm_after, "norm after clipping"),
    (checks.clip_gradients_, lambda ps, m: sum(p.grad.norm() for p in ps), "global norm 5"),   # never clips
    (checks.clip_gradients_, stub, "not implemented yet"),
    (checks.adam_scale, lambda: "10 times smaller", "the answer is 'the same'"),
    (checks.adam_scale, lambda: "smaller", "must be one of"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)


def test_the_notebooks_broken_clipping_is_the_slip_the_checker_names():
    """The broken code the exercise shows (a Python block in its markdown) is named as such."""
    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / "09_pretraining.ipynb", as_version=4)
    text = next(c.source for c in nb.cells if c.cell_type == "markdown" and "def clip_gradients_(" in c.source)
    code = text.split("```python\n")[1].split("```")[0]
    names = {}
    exec(code, {"torch": torch}, names)
    assert "still gives what the broken code gives" in checks.clip_gradients_(names["clip_gradients_"]).message


def test_make_schedules_stores_a_finished_run_and_a_run_that_blew_up(monkeypatch):
    """A run that blows up is stored with its measurements and the loop's message, not lost."""
    from scripts import make_schedules

    monkeypatch.setattr(make_schedules, "MODEL", dict(n_layer=1, n_head=1, n_embd=8, block_size=8))
    monkeypatch.setattr(make_schedules, "TRAIN", dict(batch_size=2, eval_every=2, eval_batches=1))
    ids = torch.arange(200) % 7
    fine = make_schedules.run(7, ids, ids, dict(steps=4, lr=1e-3, min_lr=1e-3, warmup_steps=0, seed=0))
    assert fine["diverged"] is None and fine["history"]["step"] == [2, 4]
    assert fine["train_config"]["steps"] == 4 and fine["seconds"] > 0
    wild = make_schedules.run(7, ids, ids, dict(steps=40, lr=1e4, min_lr=1e4, warmup_steps=0, seed=0))
    assert "training stopped" in wild["diverged"] and wild["history"]["step"][-1:] != [40]
