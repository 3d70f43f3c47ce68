"""Losses, gradients and gradient descent (introduced in notebook 02_learning_from_data).

The running example is a straight line ``y = w x + b`` fitted to noisy points. Everything
here works on plain NumPy arrays so each step can be printed and checked by hand.
"""

import numpy as np


def line_data(n: int = 50, w_true: float = 2.0, b_true: float = 1.0, noise: float = 0.3, seed: int = 0):
    """Noisy points around the line ``y = w_true x + b_true``: ``x, y`` of shape ``(n,)``, x in [-1, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=n)
    y = w_true * x + b_true + noise * rng.normal(size=n)
    return x, y


def mse(y_pred, y):
    """Mean squared error: the average of ``(y_pred - y)**2``, a single number."""
    return float(np.mean((np.asarray(y_pred, dtype=float) - np.asarray(y, dtype=float)) ** 2))


def binary_cross_entropy(p, y, eps: float = 1e-12):
    """Mean of ``-[y log p + (1 - y) log(1 - p)]`` for probabilities ``p`` and labels ``y`` in {0, 1}."""
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    y = np.asarray(y, dtype=float)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def line_loss(params, x, y):
    """MSE of the line with ``params = [w, b]`` on the points ``x, y``."""
    w, b = params
    return mse(w * x + b, y)


def line_gradient(params, x, y):
    """The exact gradient of :func:`line_loss`: ``[dL/dw, dL/db]``, worked out by hand in notebook 02."""
    w, b = params
    residual = w * x + b - y
    return np.array([2 * np.mean(residual * x), 2 * np.mean(residual)])


def numerical_gradient(f, params, eps: float = 1e-6):
    """Central differences: ``(f(p + eps e_i) - f(p - eps e_i)) / (2 eps)`` for every entry ``i``.

    Costs two evaluations of ``f`` per parameter; ``params`` is not modified.
    """
    params = np.array(params, dtype=float)  # a copy: nudging it never touches the caller's array
    grad = np.zeros_like(params)
    for i in np.ndindex(params.shape):
        old = params[i]
        params[i] = old + eps
        f_plus = f(params)
        params[i] = old - eps
        f_minus = f(params)
        params[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def least_squares(x, y):
    """The best line in closed form (no iterations): ``[w, b]`` minimising the MSE."""
    A = np.column_stack([x, np.ones_like(x)])
    solution, *_ = np.linalg.lstsq(A, y, rcond=None)
    return solution


def gradient_descent(loss_fn, grad_fn, start, learning_rate: float, steps: int, blow_up: float = 1e6):
    """Repeat ``params -= learning_rate * grad_fn(params)`` for ``steps`` steps.

    Returns a dict with ``path`` (``(k+1, d)`` array of parameters visited), ``losses``
    (``(k+1,)``), ``status`` and ``message`` (one sentence saying how it went). ``status`` is
    ``"converging"``, or ``"diverged"`` when the loss becomes infinite or NaN or grows beyond
    ``blow_up`` times its starting value (the run stops there), or ends higher than it started.
    Never raises and never prints NumPy overflow warnings.
    """
    params = np.array(start, dtype=float)
    path, losses = [params.copy()], [loss_fn(params)]
    status = "converging"
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            params = params - learning_rate * grad_fn(params)
            loss = loss_fn(params)
            path.append(params.copy())
            losses.append(loss)
            if not np.isfinite(loss) or loss > blow_up * max(losses[0], 1e-12):
                status = "diverged"
                break
    if not losses[-1] <= losses[0]:  # also catches NaN
        status = "diverged"
    taken, last = len(losses) - 1, losses[-1]
    if status == "diverged":
        grown = f"{last:.3g}" if np.isfinite(last) else "infinity"
        message = (f"Diverged: the loss grew from {losses[0]:.3g} to {grown} after {taken} "
                   f"step{'s' if taken != 1 else ''}")
    else:
        message = f"Converging: the loss fell from {losses[0]:.3g} to {last:.3g} in {taken} steps"
    return {"path": np.array(path), "losses": np.array(losses), "status": status, "message": message}
