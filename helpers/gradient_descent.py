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
    (``(k+1,)``), ``status``, ``settled`` and ``message`` (one sentence saying how it went, see
    :func:`verdict`). ``status`` is ``"diverged"`` when the loss becomes infinite or NaN or grows
    beyond ``blow_up`` times its starting value (the run stops there), ends higher than it
    started, or is rising again at the end (the slow divergence just above the critical rate);
    otherwise ``"converging"``. Never raises and never prints NumPy overflow warnings.
    """
    params = np.array(start, dtype=float)
    path, losses = [params.copy()], [loss_fn(params)]
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            params = params - learning_rate * grad_fn(params)
            loss = loss_fn(params)
            path.append(params.copy())
            losses.append(loss)
            if not np.isfinite(loss) or loss > blow_up * max(losses[0], 1e-12):
                break
    status, settled, message = verdict(losses, blow_up)
    return {"path": np.array(path), "losses": np.array(losses), "status": status, "settled": settled,
            "message": message}


RISING = 1e-9     # a last step that raises the loss by more than this fraction: rising again
SETTLED = 1e-3    # settled when the fall still to come (extrapolated) is below this fraction of the loss
SLOW = 0.01       # "slowly" when the last step lowered the loss by less than this fraction


def verdict(losses, blow_up: float = 1e6):
    """``(status, settled, message)`` for a run's losses (the first is the starting loss).

    Honest about the cases in between: "Converged ... has settled" only when the fall still to
    come, extrapolated from the last two falls shrinking geometrically, is below ``SETTLED`` of
    the loss; "Converging, slowly" when the last step lowered it by less than ``SLOW``; and
    "Diverging, slowly" when the loss is below its start but rising again at the end.
    """
    losses = [float(v) for v in losses]
    first, last, taken = losses[0], losses[-1], len(losses) - 1
    s = "s" if taken != 1 else ""
    exploded = not np.isfinite(last) or last > blow_up * max(first, 1e-12)
    if exploded or not last <= first:  # also catches NaN
        grown = f"{last:.3g}" if np.isfinite(last) else "infinity"
        return "diverged", False, f"Diverged: the loss grew from {first:.3g} to {grown} after {taken} step{s}"
    if taken >= 1 and last > losses[-2] * (1 + RISING):
        low = int(np.argmin(losses))
        return "diverged", False, (f"Diverging, slowly: the loss fell from {first:.3g} to {losses[low]:.3g} "
                                   f"at step {low}, then rose again, to {last:.3g} at step {taken}")
    if taken < 2:
        return "converging", False, f"Converging: the loss fell from {first:.3g} to {last:.3g} in {taken} step{s}"
    drop, before = losses[-2] - last, losses[-3] - losses[-2]
    ratio = drop / before if before > 0 else 0.0
    still_to_come = drop * ratio / (1 - ratio) if ratio < 1 else np.inf
    if drop <= 0 or still_to_come <= SETTLED * last:
        return "converging", True, (f"Converged: the loss fell from {first:.3g} to {last:.3g} in {taken} steps "
                                    f"and has settled")
    if drop < SLOW * last:
        return "converging", False, (f"Converging, slowly: the loss is still {last:.3g} after {taken} steps "
                                     f"(from {first:.3g}), falling {100 * drop / last:.2g}% a step")
    return "converging", False, (f"Converging: the loss fell from {first:.3g} to {last:.3g} in {taken} steps "
                                 f"and is still falling")
