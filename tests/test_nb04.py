"""Notebook 04: the MLP and its training loop, evaluation modes, early stopping, weight decay, the
training explorer, and the checkers (the learner's training loop, evaluate, the dropout prediction)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import checks, mlp, nn_numpy, plots, toy_data, training, widgets
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


def test_dropout_is_only_added_when_asked_and_only_acts_in_train_mode():
    plain, dropped = mlp.MLP((2, 8, 8, 1)), mlp.MLP((2, 8, 8, 1), dropout=0.5)
    assert not any(isinstance(m, torch.nn.Dropout) for m in plain.modules())
    assert [type(m).__name__ for m in dropped.net] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout",
                                                      "Linear"]
    assert sum(p.numel() for p in dropped.parameters()) == nn_numpy.count_parameters([2, 8, 8, 1])
    x = torch.randn(50, 2)
    torch.manual_seed(0)
    assert not torch.equal(dropped(x), dropped(x))                 # train mode: random masks
    with training.evaluating(dropped):
        assert torch.equal(dropped(x), dropped(x))
    assert dropped.training


def test_evaluate_measures_in_eval_mode_without_gradients_and_restores_the_mode():
    X, y = toy_data.moons(n=30, noise=0.2, seed=0)
    torch.manual_seed(0)
    model = mlp.MLP((2, 8, 1), dropout=0.5)
    seen = []
    model.register_forward_pre_hook(lambda m, i: seen.append((m.training, torch.is_grad_enabled())))
    for mode in (True, False):
        model.train(mode)
        loss, acc = mlp.evaluate(model, X, y)
        assert model.training is mode and isinstance(loss, float) and 0 <= acc <= 1
    assert seen == [(False, False), (False, False)]
    assert mlp.evaluate(model, X, y) == mlp.evaluate(model, X, y)   # eval mode: repeatable
    p = mlp.predict_proba(model, X)
    assert model.training is False and np.array_equal(p, mlp.predict_proba(model, X))


def test_keep_best_restores_the_weights_of_the_best_validation_epoch():
    X_train, y_train, X_val, y_val = small_data()
    torch.manual_seed(0)
    model = mlp.MLP((2, 64, 64, 1))
    h = mlp.train_classifier(model, X_train, y_train, X_val, y_val, epochs=80, lr=0.03, keep_best=True)
    best = int(np.argmin(h["val_loss"])) + 1
    assert h["best_epoch"] == best < 80
    assert mlp.evaluate(model, X_val, y_val)[0] == pytest.approx(h["val_loss"][best - 1], rel=1e-6)
    assert "best_epoch" not in mlp.train_classifier(mlp.MLP((2, 4, 1)), X_train, y_train, X_val, y_val, epochs=2)


def test_drop_last_skips_the_short_batch():
    X_train, y_train, X_val, y_val = small_data()            # 60 training points
    steps = []
    for drop_last in (False, True):
        torch.manual_seed(0)
        model = mlp.MLP((2, 4, 1))
        calls = []
        model.register_forward_pre_hook(lambda m, i, calls=calls: calls.append(len(i[0])) if m.training else None)
        mlp.train_classifier(model, X_train, y_train, X_val, y_val, epochs=1, batch_size=25, drop_last=drop_last)
        steps.append(calls)
    assert steps == [[25, 25, 10], [25, 25]]


def test_adamw_decays_apart_from_the_gradient_and_adam_through_it():
    """An idle weight (gradient 0): AdamW shrinks it by lr * wd per step, Adam's L2 penalty by about lr."""
    for name, expected in [("adamw", (1 - 0.01 * 0.01) ** 10), ("adam", 1 - 10 * 0.01)]:
        model = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.ones_(model.weight)
        opt = mlp.make_optimizer(model, name, lr=0.01, weight_decay=0.01)
        for _ in range(10):
            opt.zero_grad()
            (0.0 * model.weight).sum().backward()
            opt.step()
        assert model.weight.item() == pytest.approx(expected, rel=1e-3)
    with pytest.raises(ValueError, match="'sgd', 'adam' or 'adamw'"):
        mlp.make_optimizer(model, "lion")


@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 40), st.integers(0, 5))
def test_train_val_test_split_is_a_partition(n_val, n_test, n_train, seed):
    X, y = toy_data.moons(n=n_val + n_test + n_train, seed=1)
    parts = toy_data.train_val_test_split(X, y, n_val=n_val, n_test=n_test, seed=seed)
    assert [len(p) for p in parts] == [n_train, n_train, n_val, n_val, n_test, n_test]
    rows = np.concatenate(parts[0::2])
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, X.tolist()))


@pytest.mark.parametrize("n_val, n_test", [(0, 5), (5, 0), (10, 10)])
def test_train_val_test_split_refuses_impossible_sizes(n_val, n_test):
    X, y = toy_data.moons(n=20, seed=0)
    with pytest.raises(ValueError, match="training points left over"):
        toy_data.train_val_test_split(X, y, n_val=n_val, n_test=n_test)


def test_learning_rate_sweep_and_held_out_points_are_drawn():
    fig, ax = plots.new_figure()
    plots.learning_rate_sweep(ax, {"sgd": {0.1: [0.3, 0.2], 1.0: [0.1, 0.12]}, "adam": {0.01: [0.15, 0.16]}})
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_legend().get_texts()] == ["sgd", "adam"]
    plt.close(fig)
    fig, ax = plots.new_figure()
    plots.scatter_held_out(ax, np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([0, 1]))
    edges = [tuple(c.get_edgecolors()[0]) for c in ax.collections]
    assert len(set(edges)) == 2                                 # one colour per class
    assert [c.get_label() for c in ax.collections] == ["class 0, validation", "class 1, validation"]
    plt.close(fig)


@settings(max_examples=5)
@given(st.sampled_from([2, 32, 128]), st.sampled_from([0.0, 0.6]), st.sampled_from([10, 60]))
def test_training_explorer_figure(hidden, noise, epochs):
    fig = plots.make_training_explorer(hidden, noise, epochs)
    assert "val acc" in fig.axes[1].get_title() and "best validation loss" in fig.axes[0].get_title()
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["class 0", "class 1", "class 0, validation", "class 1, validation"]
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


def loop(zero_grad=True, step=True, train_loss="mean", val_mode="evaluating", train_mode_calls="every",
         weighted=False, zero_after_step=False):
    """A training loop for the checker, right by default; each argument makes one known change."""
    def train_loop(model, loader, optimizer, loss_fn, X_val, y_val, epochs):
        train_losses, val_losses = [], []
        for epoch in range(epochs):
            if train_mode_calls == "every" or (train_mode_calls == "first" and epoch == 0):
                model.train()
            losses, sizes = [], []
            for xb, yb in loader:
                loss = loss_fn(model(xb), yb)
                if zero_grad and not zero_after_step:
                    optimizer.zero_grad()
                loss.backward()
                if step:
                    optimizer.step()
                if zero_after_step:
                    optimizer.zero_grad()
                losses.append(loss.item())
                sizes.append(len(xb))
            if weighted:        # weighted by batch size: the same here, where the batches are equal
                train_losses.append(float(np.dot(losses, sizes) / sum(sizes)))
            else:
                train_losses.append({"sum": sum(losses), "last": losses[-1]}.get(train_loss, np.mean(losses)))
            if val_mode == "evaluating":
                with training.evaluating(model), torch.no_grad():
                    val_losses.append(loss_fn(model(X_val), y_val).item())
            elif val_mode == "eval_then_train":
                model.eval()
                with torch.inference_mode():
                    val_losses.append(loss_fn(model(X_val), y_val).item())
                model.train()
            elif val_mode == "eval_stays":
                model.eval()
                with torch.no_grad():
                    val_losses.append(loss_fn(model(X_val), y_val).item())
            elif val_mode == "train_mode":
                with torch.no_grad():
                    val_losses.append(loss_fn(model(X_val), y_val).item())
            elif val_mode == "grad_on":
                with training.evaluating(model):
                    val_losses.append(loss_fn(model(X_val), y_val).item())
            elif val_mode == "mlp.evaluate":
                val_losses.append(mlp.evaluate(model, X_val, y_val)[0])
            if train_loss == "full_pass":
                with training.evaluating(model), torch.no_grad():
                    X_train, y_train = loader.dataset.tensors
                    train_losses[-1] = loss_fn(model(X_train), y_train).item()
        return train_losses, val_losses
    return train_loop


def loop_returning(value):
    def train_loop(model, loader, optimizer, loss_fn, X_val, y_val, epochs):
        loop()(model, loader, optimizer, loss_fn, X_val, y_val, epochs)
        return value
    return train_loop


def loop_changing_x_val(model, loader, optimizer, loss_fn, X_val, y_val, epochs):
    result = loop()(model, loader, optimizer, loss_fn, X_val, y_val, epochs)
    X_val += 1.0
    return result


def given_evaluate(model, X, y, loss_fn):
    """The buggy evaluation of the exercise."""
    model.eval()
    logits = model(X)
    loss = loss_fn(logits, y)
    model.train()
    return loss.item(), mlp.accuracy(logits, y)


def evaluate_half_fixed(model, X, y, loss_fn):
    model.eval()
    with torch.no_grad():
        logits = model(X)
    model.train()
    return loss_fn(logits, y).item(), mlp.accuracy(logits, y)


def evaluate_restoring_by_hand(model, X, y, loss_fn):
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        logits = model(X)
        result = loss_fn(logits, y), (logits > 0).float().eq(y).float().mean()   # tensors, no graph
    model.train(was_training)
    return result


def evaluate_in_train_mode(model, X, y, loss_fn):
    with torch.no_grad():
        logits = model(X)
    return loss_fn(logits, y).item(), mlp.accuracy(logits, y)


def evaluate_leaving_eval_mode(model, X, y, loss_fn):
    model.eval()
    with torch.no_grad():
        logits = model(X)
    return loss_fn(logits, y).item(), mlp.accuracy(logits, y)


def evaluate_that_shrinks_the_weights(model, X, y, loss_fn):
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.9)
    return mlp.evaluate(model, X, y)


RIGHT = [(checks.make_batches, lambda n, k: [list(range(i, min(i + k, n))) for i in range(0, n, k)]),
         (checks.make_batches, lambda n, k: list(torch.arange(n).split(k))),
         (checks.make_batches, batches_one_at_a_time),                      # a generator is a fine answer
         (checks.bce_with_logits, lambda z, y: torch.nn.functional.binary_cross_entropy_with_logits(z, y)),
         (checks.train_loop, loop()),
         (checks.train_loop, loop(weighted=True)),
         (checks.train_loop, loop(zero_after_step=True)),
         (checks.train_loop, loop(val_mode="eval_then_train")),             # model.eval() and inference_mode
         (checks.train_loop, loop(val_mode="mlp.evaluate")),
         (checks.evaluate, lambda model, X, y, loss_fn: mlp.evaluate(model, X, y)),
         (checks.evaluate, evaluate_restoring_by_hand),
         (checks.predict_dropout_mean, lambda: 1.0),
         (checks.predict_dropout_mean, lambda: 1)]

BROKEN = [
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
    # the training loop: each classic slip is named
    (checks.train_loop, loop(zero_grad=False), "never cleared the gradients"),
    (checks.train_loop, loop(step=False), "left the weights unchanged"),
    (checks.train_loop, loop(train_loss="sum"), "added up the batch losses without dividing"),
    (checks.train_loop, loop(train_loss="last"), "kept only the last batch's loss"),
    (checks.train_loop, loop(train_loss="full_pass"), "measured the training loss again"),
    (checks.train_loop, loop(val_mode="train_mode"), "measured the validation loss in train mode"),
    (checks.train_loop, loop(val_mode="eval_stays", train_mode_calls="first"), "trained on some batches in eval mode"),
    (checks.train_loop, loop(train_mode_calls="never"),
     "trained on some batches in eval mode, without dropout (this model arrived in eval mode)"),
    (checks.train_loop, loop(val_mode="grad_on"), "measured the validation loss with gradients on"),
    (checks.train_loop, loop_returning(([0.5, 0.4, 0.3], [0.6, 0.5, 0.4])), "returned train_losses"),
    (checks.train_loop, loop_returning([0.5, 0.4, 0.3]), "not a pair (train_losses, val_losses)"),
    (checks.train_loop, loop_returning(([0.5, 0.4], [0.6, 0.5])), "expected shape (3,): one number per epoch"),
    (checks.train_loop, loop_changing_x_val, "changed its input X_val"),
    (checks.train_loop, forever, "did not finish"),
    (checks.train_loop, stub, "not implemented yet"),
    (checks.train_loop, 3, "expected a function"),
    # evaluate: the given code, the usual half fix, and other wrong evaluations
    (checks.evaluate, given_evaluate, "measured with gradients on"),
    (checks.evaluate, evaluate_half_fixed, "left the model in train mode, but it arrived in eval mode"),
    (checks.evaluate, evaluate_leaving_eval_mode, "left the model in eval mode, but it arrived in train mode"),
    (checks.evaluate, evaluate_in_train_mode, "measured in train mode"),
    (checks.evaluate, evaluate_that_shrinks_the_weights, "changed the model's weights"),
    (checks.evaluate, lambda model, X, y, loss_fn: mlp.evaluate(model, X, y)[0], "expected a pair of numbers"),
    (checks.evaluate, lambda model, X, y, loss_fn: (0.5, 0.5), "for (loss, accuracy)"),
    (checks.evaluate, stub, "not implemented yet"),
    (checks.predict_dropout_mean, lambda: 0.5, "the answer is 1.0"),
    (checks.predict_dropout_mean, lambda: "half", "the text 'half', not a number"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)
