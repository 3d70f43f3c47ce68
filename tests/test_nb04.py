"""Notebook 04: the MLP and its training loop, the training explorer, and the checkers."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import checks, mlp, nn_numpy, plots, toy_data, widgets
from checker_cases import assert_redraws, checker_tests, forever, stub


@given(st.lists(st.integers(1, 20), min_size=2, max_size=5))
def test_mlp_parameter_count_and_shapes(sizes):
    sizes = sizes[:-1] + [1]
    model = mlp.MLP(tuple(sizes))
    assert sum(p.numel() for p in model.parameters()) == nn_numpy.count_parameters(sizes)
    assert model(torch.zeros(7, sizes[0])).shape == (7,)


def small_data():
    X, y = toy_data.moons(n=80, noise=0.2, seed=0)
    return toy_data.train_val_split(X, y, val_fraction=0.25, seed=0)


def test_training_is_deterministic_and_learns():
    data = small_data()
    histories = []
    for _ in range(2):
        torch.manual_seed(0)
        histories.append(mlp.train_classifier(mlp.MLP((2, 16, 1)), *data, epochs=40, lr=0.02))
    assert histories[0] == histories[1]
    h = histories[0]
    assert set(h) == {"train_loss", "val_loss", "train_acc", "val_acc"} and len(h["train_loss"]) == 40
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0]
    assert h["val_acc"][-1] > 0.8


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_optimizers_and_weight_decay_run(opt):
    torch.manual_seed(0)
    h = mlp.train_classifier(mlp.MLP((2, 8, 1)), *small_data(), epochs=3, optimizer=opt, weight_decay=0.01, batch_size=None)
    assert len(h["val_loss"]) == 3


def test_bad_settings_are_explained():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        mlp.train_classifier(mlp.MLP((2, 4, 1)), *small_data(), epochs=1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        mlp.train_classifier(mlp.MLP((2, 4, 1)), *small_data(), epochs=0)
    torch.manual_seed(0)
    with pytest.raises(FloatingPointError, match="smaller learning rate"):
        mlp.train_classifier(mlp.MLP((2, 64, 64, 1)), *small_data(), epochs=30, optimizer="sgd", lr=1e6)


def test_predict_proba_and_accuracy():
    torch.manual_seed(0)
    model = mlp.MLP((2, 4, 1))
    p = mlp.predict_proba(model, np.zeros((5, 2)))
    assert p.shape == (5,) and ((0 < p) & (p < 1)).all()
    assert mlp.accuracy(torch.tensor([1.0, -1.0, 2.0]), torch.tensor([1.0, 0.0, 0.0])) == pytest.approx(2 / 3)


@settings(max_examples=5)
@given(st.sampled_from([2, 32, 128]), st.sampled_from([0.0, 0.6]), st.sampled_from([10, 60]))
def test_training_explorer_figure(hidden, noise, epochs):
    fig = plots.make_training_explorer(hidden, noise, epochs)
    assert "val acc" in fig.axes[1].get_title() and "best validation loss" in fig.axes[0].get_title()
    plt.close(fig)


def test_training_explorer_redraws():
    explorer = widgets.Explorer(plots.make_training_explorer,
                                {"hidden": widgets.slider(8, 2, 128), "noise": widgets.slider(0.3, 0.0, 0.6, step=0.05),
                                 "epochs": widgets.slider(20, 10, 500, step=10)})
    assert_redraws(explorer, [("epochs", 40), ("noise", 0.0)])


# --- checkers -------------------------------------------------------------



def naive_bce(z, y):
    p = torch.sigmoid(z)
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


def batches_in_place_style(n, k):
    return [np.arange(i, i + k) for i in range(0, n, k)]   # the last batch runs past n


def batches_one_at_a_time(n, k):
    for i in range(0, n, k):
        yield np.arange(i, min(i + k, n))


RIGHT = [(checks.accuracy, lambda z, y: ((z > 0).float() == y).float().mean()),
         (checks.make_batches, lambda n, k: [list(range(i, min(i + k, n))) for i in range(0, n, k)]),
         (checks.make_batches, lambda n, k: list(torch.arange(n).split(k))),
         (checks.make_batches, batches_one_at_a_time),                      # a generator is a fine answer
         (checks.bce_with_logits, lambda z, y: torch.nn.functional.binary_cross_entropy_with_logits(z, y))]

BROKEN = [
    (checks.accuracy, lambda z, y: ((z > 0.5).float() == y).float().mean(), "expected"),   # threshold on logits
    (checks.accuracy, lambda z, y: ((z > 0).float() == y).float().sum(), "expected"),       # a count, not a fraction
    (checks.accuracy, lambda z, y: 0.75, "expected"),                                       # hard-coded example
    (checks.accuracy, lambda z, y: (z > 0).float() == y, "a single number"),
    (checks.accuracy, lambda z, y: z.numpy().mean() + None, "raised TypeError"),
    (checks.accuracy, forever, "did not finish"),
    (checks.accuracy, stub, "not implemented yet"),
    (checks.make_batches, lambda n, k: [np.arange(0, 4), np.arange(4, 8), np.arange(8, 10)], "expected"),  # hard-coded
    (checks.make_batches, batches_in_place_style, "batch 2"),
    (checks.make_batches, lambda n, k: [np.arange(i, i + k) for i in range(0, n - k + 1, k)], "batches, expected"),
    (checks.make_batches, lambda n, k: None, "return"),
    (checks.make_batches, lambda n, k: [["a"]], "not a number"),
    (checks.make_batches, lambda n, k: [np.arange(i, min(i + k, n), dtype=float) for i in range(0, n, k)],
     "which holds floats: indices must be integers"),                      # float indices cannot pick rows
    (checks.make_batches, lambda n, k: [torch.arange(i, min(i + k, n)).float() for i in range(0, n, k)],
     "which holds floats"),
    (checks.make_batches, lambda n, k: 3, "not a list of batches"),
    (checks.bce_with_logits, naive_bce, "huge logits"),                                     # right for small only
    (checks.bce_with_logits, lambda z, y: torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="sum"), "expected"),
    (checks.bce_with_logits, lambda z, y: torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none"), "a single number"),
    (checks.bce_with_logits, lambda z, y: z.mul_(0).mean(), "changed its input"),
    (checks.bce_with_logits, stub, "not implemented yet"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)
