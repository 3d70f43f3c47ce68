"""Notebook 02: losses, gradients, gradient descent; its figures, explorer and checkers."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from helpers import checks, plots, widgets
from helpers import gradient_descent as gd
from checker_cases import checker_tests, forever, stub

finite = st.floats(-100, 100, allow_nan=False)


@given(arrays(np.float64, st.integers(1, 30), elements=finite), st.data())
def test_mse_matches_pytorch(a, data):
    b = data.draw(arrays(np.float64, a.shape, elements=finite))
    expected = torch.nn.functional.mse_loss(torch.from_numpy(a), torch.from_numpy(b)).item()
    assert gd.mse(a, b) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@given(arrays(np.float64, st.integers(1, 20), elements=st.floats(0.001, 0.999)), st.data())
def test_binary_cross_entropy_matches_pytorch(p, data):
    y = data.draw(arrays(np.float64, p.shape, elements=st.sampled_from([0.0, 1.0])))
    expected = torch.nn.functional.binary_cross_entropy(torch.from_numpy(p), torch.from_numpy(y)).item()
    assert gd.binary_cross_entropy(p, y) == pytest.approx(expected, rel=1e-9)


@given(st.floats(-5, 5), st.floats(-5, 5), st.integers(0, 1000))
def test_line_gradient_matches_numerical_and_autograd(w, b, seed):
    x, y = gd.line_data(n=20, seed=seed)
    exact = gd.line_gradient([w, b], x, y)
    np.testing.assert_allclose(gd.numerical_gradient(lambda p: gd.line_loss(p, x, y), [w, b]), exact, atol=1e-5)
    p = torch.tensor([w, b], dtype=torch.float64, requires_grad=True)
    ((p[0] * torch.from_numpy(x) + p[1] - torch.from_numpy(y)) ** 2).mean().backward()
    np.testing.assert_allclose(p.grad.numpy(), exact, atol=1e-10)


def test_numerical_gradient_leaves_params_alone():
    params = np.array([[1.0, 2.0], [3.0, 4.0]])
    before = params.copy()
    grad = gd.numerical_gradient(lambda p: float(np.sum(p ** 3)), params)
    np.testing.assert_array_equal(params, before)
    np.testing.assert_allclose(grad, 3 * before ** 2, rtol=1e-6)


@given(st.integers(0, 10_000))
def test_gradient_descent_reaches_least_squares(seed):
    x, y = gd.line_data(n=30, seed=seed)
    run = gd.gradient_descent(lambda p: gd.line_loss(p, x, y), lambda p: gd.line_gradient(p, x, y), [0.0, 0.0], 0.3, 3000)
    assert run["status"] == "converging"
    np.testing.assert_allclose(run["path"][-1], gd.least_squares(x, y), atol=1e-5)


def test_divergence_is_detected_and_stops_early():
    x, y = gd.line_data()
    run = gd.gradient_descent(lambda p: gd.line_loss(p, x, y), lambda p: gd.line_gradient(p, x, y), [0.0, 0.0], 50.0, 1000)
    assert run["status"] == "diverged" and len(run["losses"]) < 1000
    assert run["message"].startswith("Diverged: the loss grew from") and f"after {len(run['losses']) - 1} steps" in run["message"]


def test_non_finite_loss_is_reported_as_infinity_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = gd.gradient_descent(lambda p: float(np.exp(p[0]) if p[0] < 800 else np.inf),
                                  lambda p: np.array([-1e3]), [0.0], 1.0, 10)
        nan_run = gd.gradient_descent(lambda p: float("nan") if p[0] > 0.5 else 1.0,
                                      lambda p: np.array([-1.0]), [0.0], 1.0, 10)
    assert run["status"] == "diverged" and "infinity after 1 step" in run["message"]
    assert nan_run["status"] == "diverged" and len(nan_run["losses"]) == 2


def test_converging_run_says_so():
    x, y = gd.line_data()
    run = gd.gradient_descent(lambda p: gd.line_loss(p, x, y), lambda p: gd.line_gradient(p, x, y), [0.0, 0.0], 0.5, 20)
    assert run["status"] == "converging" and run["message"].startswith("Converging: the loss fell from")


@pytest.mark.parametrize("rate, steps", [(0.001, 1), (0.1, 20), (0.99, 100), (2.0, 100), (1e3, 100)])
def test_landscape_figure_never_raises_and_says_when_it_diverges(rate, steps):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plots.make_loss_landscape(rate, steps)
    texts = " ".join(t.get_text() for t in fig.texts) + fig.axes[1].get_title()
    assert ("DIVERGED" in texts) == (rate > 1.0)
    if rate > 1.0:
        assert "Diverged: the loss grew from" in texts and "Try a smaller learning rate" in texts
        assert "nan" not in texts.lower()
    plt.close(fig)


def test_rate_explorer_redraws():
    explorer = widgets.Explorer(plots.make_loss_landscape,
                                {"learning_rate": widgets.slider(0.1, 0.001, 2.0, log=True, step=0.05),
                                 "steps": widgets.slider(20, 1, 100)})
    first = explorer.png
    explorer.controls["learning_rate"].value = 1.5
    diverged = explorer.png
    explorer.controls["steps"].value = 5
    assert len({first, diverged, explorer.png}) == 3


def test_learning_rate_comparison_labels_divergence():
    fig = plots.make_learning_rate_comparison(rates=(0.02, 1.05))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["rate 0.02", "rate 1.05 (diverged)"]
    plt.close(fig)


# --- checkers -------------------------------------------------------------



def grad_without_restoring(f, params, eps=1e-6):
    grad = np.zeros_like(params)
    for i in range(params.size):
        params.flat[i] += eps
        up = f(params)
        params.flat[i] -= 2 * eps
        grad.flat[i] = (up - f(params)) / (2 * eps)
    return grad


def grad_1d_only(f, params, eps=1e-6):
    return np.array([(f(params + eps * e) - f(params - eps * e)) / (2 * eps) for e in np.eye(len(params))])


def grad_forward(f, params, eps=1e-6):
    grad = np.zeros_like(params)
    for i in np.ndindex(params.shape):
        up = params.copy()
        up[i] += eps
        grad[i] = (f(up) - f(params)) / eps
    return grad


def grad_fixed_step(f, params, eps=1e-6):
    return gd.numerical_gradient(f, params)  # ignores the eps it was given


def grad_restoring_in_place(f, params, eps=1e-6):
    """Nudging the caller's array is fine as long as every entry is put back exactly."""
    grad = np.zeros_like(params)
    for i in np.ndindex(params.shape):
        old = params[i]
        params[i] = old + eps
        up = f(params)
        params[i] = old - eps
        down = f(params)
        params[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def step_in_place(params, grad, lr):
    params -= lr * grad
    return params


RIGHT = [(checks.mse, gd.mse), (checks.numerical_gradient, gd.numerical_gradient),
         (checks.numerical_gradient, grad_restoring_in_place),
         (checks.gradient_descent_step, lambda p, g, lr: p - lr * g)]

BROKEN = [
    (checks.mse, lambda a, b: None, "return"),
    (checks.mse, lambda a, b: (a - b) ** 2, "a single number"),
    (checks.mse, lambda a, b: float(np.sum((a - b) ** 2)), "expected"),
    (checks.mse, lambda a, b: 4 / 3, "expected"),                               # hard-coded example
    (checks.mse, lambda a, b: float(np.sum((a - b) ** 2) / 3), "hidden arrays"),  # right only for length 3
    (checks.mse, lambda a, b: np.nan, "NaN"),
    (checks.mse, forever, "did not finish"),
    (checks.mse, stub, "not implemented yet"),
    (checks.numerical_gradient, grad_without_restoring, "changed its input"),
    (checks.numerical_gradient, grad_1d_only, "(3, 4)"),                           # fine for vectors, fails for 2-D
    (checks.numerical_gradient, lambda f, p: np.array([4.0, -6.0]), "expected"),   # hard-coded example
    (checks.numerical_gradient, lambda f, p: f(p), "shape"),
    (checks.numerical_gradient, lambda f, p: f(), "raised TypeError"),
    (checks.numerical_gradient, grad_forward, "forward difference"),     # passes every case but the eps=0.01 one
    (checks.numerical_gradient, grad_fixed_step, "ignored the eps"),
    (checks.numerical_gradient, forever, "did not finish"),
    (checks.gradient_descent_step, step_in_place, "changed its input"),
    (checks.gradient_descent_step, lambda p, g, lr: p + lr * g, "expected"),
    (checks.gradient_descent_step, lambda p, g, lr: np.array([0.95, 2.1]), "shape"),
    (checks.gradient_descent_step, lambda p, g, lr: list(p - lr * g)[0], "shape"),
    (checks.gradient_descent_step, stub, "not implemented yet"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)
