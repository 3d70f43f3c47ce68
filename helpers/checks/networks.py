"""Checkers of part 1, networks: notebooks 00_start_here, 01_neurons_and_layers,
02_learning_from_data, 03_backpropagation and 04_training_networks."""

import itertools

import numpy as np

from helpers.checks.compare import (all_integers, as_array, compare_arrays, compare_naming_slips, compare_scalar,
                                    float32_room, short, within)
from helpers.checks.engine import Case, CheckResult, checker, run_checks


# ---------------------------------------------------------------------------
# Notebook 00: how exercises work
# ---------------------------------------------------------------------------

@checker
def dot(fn) -> CheckResult:
    """Checker for notebook 00: ``fn(w, x)`` is the weighted sum ``sum_i w[i] * x[i]`` of two 1-D arrays."""
    rng = np.random.default_rng(0)
    cases = [
        Case((np.array([1.0, 2.0]), np.array([3.0, 4.0])), 11.0, "the example w = [1, 2], x = [3, 4]", compare_scalar),
        Case((np.array([0.5]), np.array([-2.0])), -1.0, "vectors of length 1", compare_scalar),
        Case((np.zeros(3), np.array([1.0, 2.0, 3.0])), 0.0, "all-zero weights", compare_scalar),
    ]
    for n in (5, 1000):
        w, x = rng.normal(size=n), rng.normal(size=n)
        room = float32_room(np.abs(w * x).sum())  # a float32 sum may end near 0 but carries its terms' rounding
        cases.append(Case((w, x), float(w @ x), f"random vectors of length {n}", within(room, compare=compare_scalar)))
    return run_checks("dot", fn, cases, hint=[
        "a weighted sum: each input times its own weight, then one total.",
        "multiply the arrays element by element (w * x gives one product per input), then add up "
        "all the products.",
        "return float(np.sum(w * x)), or float(w @ x): one number."])


# ---------------------------------------------------------------------------
# Notebook 01: neurons and layers
# ---------------------------------------------------------------------------

@checker
def relu(fn) -> CheckResult:
    """Checker for notebook 01: ``fn(z)`` is ``max(0, z)`` element by element, any shape."""
    rng = np.random.default_rng(1)
    cases = [Case((np.array([-2.0, 0.0, 3.0]),), np.array([0.0, 0.0, 3.0]), "the example z = [-2, 0, 3]")]
    cases.append(Case((np.array([[-1.5, 2.0], [0.5, -0.1]]),), np.array([[0.0, 2.0], [0.5, 0.0]]), "a 2-D array"))
    big = rng.normal(size=(64, 33)) * 100
    cases.append(Case((big,), np.maximum(0.0, big), "a hidden array of shape (64, 33)"))
    return run_checks("relu", fn, cases, hint=[
        "ReLU keeps what is positive and replaces what is negative; NumPy can do that to a whole "
        "array at once, without a loop.",
        "np.maximum(0, z) keeps positives and turns negatives into 0, for arrays of any shape."])


def _sigmoid_reference(z):
    from helpers import nn_numpy

    return nn_numpy.sigmoid(z)


def _without_overflow(fn):
    """``fn`` run with NumPy's overflow and invalid-value warnings turned into errors.

    Used by the sigmoid checker: ``1 / (1 + np.exp(-z))`` gives the right number at z = -1000
    only after ``np.exp(1000)`` has overflowed to infinity, which a careful sigmoid avoids.
    (``np.errstate`` holds for the thread that runs ``fn``, so the thread fallback keeps it.)
    """

    def strict(*args, **kwargs):
        with np.errstate(over="raise", invalid="raise"):
            try:
                return fn(*args, **kwargs)
            except FloatingPointError as exc:
                raise FloatingPointError(f"{exc}: a float cannot hold e^1000, so np.exp gave infinity "
                                         "(NumPy's overflow warning, treated as an error here)") from None

    strict.__wrapped__ = fn  # the learner's own function, for the time limit (see timing.learner_globals)
    return strict


@checker
def sigmoid(fn) -> CheckResult:
    """Checker for notebook 01: ``fn(z)`` is ``1 / (1 + exp(-z))`` element by element, even for huge ``|z|``.

    The hidden case z = [-1000, -40, 40, 1000] must give 0 and 1, with no NaN and with NumPy's
    overflow warnings treated as errors.
    """
    rng = np.random.default_rng(2)
    z_ex = np.array([-1.0, 0.0, 1.0])
    z_2d = rng.normal(size=(5, 4)) * 3
    z_big = np.array([-1000.0, -40.0, 40.0, 1000.0])
    cases = [Case((z_ex,), _sigmoid_reference(z_ex), "the example z = [-1, 0, 1]"),
             Case((z_2d,), _sigmoid_reference(z_2d), "a hidden 2-D array of shape (5, 4)"),
             Case((z_big,), _sigmoid_reference(z_big), "very large inputs z = [-1000, -40, 40, 1000]")]
    checked = _without_overflow(fn) if callable(fn) else fn
    return run_checks("sigmoid", checked, cases, hint=[
        "the formula 1 / (1 + e^(-z)) is right, but the checker tries z = -1000: what does "
        "np.exp(1000) give?",
        "find a form that only ever exponentiates a number <= 0, and use a different but equal "
        "formula for negative z.",
        "1 / (1 + np.exp(-z)) works for arrays of any shape, but np.exp(-z) overflows when z is very "
        "negative. Compute e = np.exp(-np.abs(z)), which is never above 1, then take 1 / (1 + e) "
        "where z >= 0 and e / (1 + e) where z < 0 (np.where)."])


@checker
def dense_layer(fn) -> CheckResult:
    """Checker for notebook 01: ``fn(X, W, b)`` is the layer ``X @ W + b`` for a batch of rows."""
    rng = np.random.default_rng(3)
    cases = []
    X, W, b = np.array([[1.0, 2.0]]), np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]]), np.array([0.0, 1.0, -1.0])
    cases.append(Case((X, W, b), X @ W + b, "the example: one row, 2 inputs, 3 outputs"))
    for n, d_in, d_out in [(4, 3, 2), (1, 5, 1), (100, 50, 20)]:
        X, W, b = rng.normal(size=(n, d_in)), rng.normal(size=(d_in, d_out)), rng.normal(size=d_out)
        room = float32_room(np.abs(X) @ np.abs(W) + np.abs(b))  # each output is a sum of d_in + 1 terms
        label = f"a hidden batch X of shape ({n}, {d_in}), W of shape ({d_in}, {d_out})"
        cases.append(Case((X, W, b), X @ W + b, label, within(room)))
    return run_checks("dense_layer", fn, cases, hint=[
        "think in shapes: X is (n, d_in), W is (d_in, d_out); which product gives (n, d_out)?",
        "each row of X is one example: X @ W has shape (n, d_out); then add the bias b to every row."])


def _two_layer_slips(X, W1, b1, W2, b2):
    """The usual slips in a 2-layer forward pass: (what it computes, what went wrong)."""
    sig = _sigmoid_reference
    pre = X @ W1 + b1
    return [
        (np.maximum(0.0, pre) @ W2 + b2, "forgot the sigmoid on the output layer (the outputs must be "
                                         "probabilities between 0 and 1)"),
        (sig(pre @ W2 + b2), "skipped the ReLU on the hidden layer"),
        (sig(sig(pre) @ W2 + b2), "used sigmoid on the hidden layer; this network uses ReLU there"),
        (sig(np.maximum(0.0, X @ W1) @ W2 + b2), "left out the hidden bias b1"),
        (sig(np.maximum(0.0, pre) @ W2), "left out the output bias b2"),
    ]


@checker
def two_layer_forward(fn) -> CheckResult:
    """Checker for notebook 01: ``fn(X, W1, b1, W2, b2)`` is ``sigmoid(relu(X @ W1 + b1) @ W2 + b2)``."""
    rng = np.random.default_rng(4)
    xor_net = (np.array([[1.0, -1.0], [-1.0, -1.0]]), np.array([[1.0, -1.0], [-1.0, 1.0]]), np.array([0.0, 0.0]),
               np.array([[3.0], [3.0]]), np.array([-3.0]))
    inputs = [(xor_net, "the example: this notebook's XOR network on the points (1, -1) and (-1, -1)")]
    for n, d_in, d_hidden, d_out in [(5, 2, 3, 1), (1, 4, 6, 2), (64, 10, 32, 3)]:
        args = (rng.normal(size=(n, d_in)), rng.normal(size=(d_in, d_hidden)), rng.normal(size=d_hidden),
                rng.normal(size=(d_hidden, d_out)), rng.normal(size=d_out))
        inputs.append((args, f"a hidden batch X of shape ({n}, {d_in}), W1 of shape ({d_in}, {d_hidden}), "
                             f"W2 of shape ({d_hidden}, {d_out})"))
    cases = []
    for (X, W1, b1, W2, b2), label in inputs:
        expected = _sigmoid_reference(np.maximum(0.0, X @ W1 + b1) @ W2 + b2)
        cases.append(Case((X, W1, b1, W2, b2), expected, label, compare_naming_slips(_two_layer_slips(X, W1, b1, W2, b2))))
    return run_checks("two_layer_forward", fn, cases, hint=[
        "two layers in a row: the hidden layer's output is the second layer's input. Which activation"
        " goes where?",
        "one layer after the other: hidden = relu(X @ W1 + b1) has shape (n, d_hidden); then return "
        "sigmoid(hidden @ W2 + b2), shape (n, d_out)."])


# ---------------------------------------------------------------------------
# Notebook 02: learning from data
# ---------------------------------------------------------------------------

@checker
def mse(fn) -> CheckResult:
    """Checker for notebook 02: ``fn(y_pred, y)`` is the mean of the squared differences, one number."""
    rng = np.random.default_rng(4)
    cases = [Case((np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0])), 4.0 / 3.0,
                  "the example y_pred = [1, 2, 3], y = [1, 2, 5]", compare_scalar),
             Case((np.array([0.5]), np.array([0.5])), 0.0, "a perfect prediction", compare_scalar)]
    for n in (7, 10_000):
        a, b = rng.normal(size=n), rng.normal(size=n)
        cases.append(Case((a, b), float(np.mean((a - b) ** 2)), f"hidden arrays of length {n}", compare_scalar))
    return run_checks("mse", fn, cases, hint=[
        "mean squared error: three words, three steps (a difference, a square, a mean).",
        "square the differences y_pred - y, then take the mean (divide by how many there are, not by "
        "a fixed number)."])


def _bowl(p):
    return float(np.sum((p - 1.0) ** 2))


def _wavy(p):
    return float(np.sum(np.sin(p) * p) + p.ravel()[0] * p.ravel()[-1])


@checker
def numerical_gradient(fn) -> CheckResult:
    """Checker for notebook 02: ``fn(f, params, eps=1e-6)`` returns the central-difference gradient of
    ``f`` at ``params`` (same shape as ``params``), without changing ``params``.

    One hidden case passes ``eps=0.01`` and wants exactly the central difference with that step,
    so a forward difference, or an ``eps`` ignored, is caught and named.
    """
    rng = np.random.default_rng(5)

    def wavy_grad(p):
        g = np.sin(p) + p * np.cos(p)
        flat = g.ravel()
        flat[0] += p.ravel()[-1]
        flat[-1] += p.ravel()[0]
        return flat.reshape(p.shape)

    def differences(f, p, eps):
        """(central, forward) differences of ``f`` at ``p`` with step ``eps``, by the book."""
        central, forward = np.zeros_like(p), np.zeros_like(p)
        for i in np.ndindex(p.shape):
            up, down = p.copy(), p.copy()
            up[i] += eps
            down[i] -= eps
            central[i] = (f(up) - f(down)) / (2 * eps)
            forward[i] = (f(up) - f(p)) / eps
        return central, forward

    def close(got, expected):
        return compare_arrays(got, expected, atol=1e-4, rtol=1e-4)

    p1 = np.array([3.0, -2.0])
    p2 = rng.normal(size=5)
    p3 = rng.normal(size=(3, 4))
    p4 = rng.normal(size=(2, 3))
    central, forward = differences(_wavy, p4, 0.01)
    slips = [(forward, ("used a forward difference (f(p + eps) - f(p)) / eps; the central difference "
                        "(f(p + eps) - f(p - eps)) / (2 eps) is far more accurate")),
             (wavy_grad(p4), "ignored the eps you were given and used a step of your own")]
    cases = [Case((_bowl, p1), 2 * (p1 - 1.0), "the example f(p) = sum((p - 1)**2) at p = [3, -2]", close),
             Case((_wavy, p2), wavy_grad(p2), "a hidden wavy function of 5 parameters", close),
             Case((_wavy, p3), wavy_grad(p3), "a hidden function of a (3, 4) array of parameters", close),
             Case((_wavy, p4), central, "a hidden function of a (2, 3) array, called with eps=0.01",
                  compare_naming_slips(slips, atol=1e-8, rtol=1e-8), kwargs={"eps": 0.01})]
    return run_checks("numerical_gradient", fn, cases, hint=[
        "a derivative is a slope: change one parameter a little and see how much f changes.",
        "use a central difference, (f(p + eps) - f(p - eps)) / (2 eps), one parameter at a time, on a"
        " copy of params.",
        "for each entry i: nudge params[i] up by eps and down by eps on a copy, take (f(up) - "
        "f(down)) / (2 * eps); return an array shaped like params."])


@checker
def gradient_descent_step(fn) -> CheckResult:
    """Checker for notebook 02: ``fn(params, grad, learning_rate)`` returns ``params - learning_rate * grad``
    as a new array (the input is left unchanged)."""
    rng = np.random.default_rng(6)
    cases = [Case((np.array([1.0, 2.0]), np.array([0.5, -1.0]), 0.1), np.array([0.95, 2.1]),
                  "the example params = [1, 2], grad = [0.5, -1], rate 0.1")]
    for shape, rate in [((4,), 0.01), ((3, 3), 2.0)]:
        p, g = rng.normal(size=shape), rng.normal(size=shape)
        cases.append(Case((p, g, rate), p - rate * g, f"hidden arrays of shape {shape} with rate {rate}"))
    return run_checks("gradient_descent_step", fn, cases, hint=[
        "the gradient points uphill. Which way should the parameters move, and how far?",
        "step *against* the gradient: params - learning_rate * grad, returned as a new array."])


# ---------------------------------------------------------------------------
# Notebook 03: backpropagation
# ---------------------------------------------------------------------------

def _pair(got, expected):
    """Compare a learner's ``(grad_a, grad_b)`` with the expected pair."""
    if isinstance(got, (int, float)) or (hasattr(got, "ndim") and getattr(got, "ndim", 1) == 0):
        return f"returned one number ({short(got)}), but a pair (grad_a, grad_b) was expected"
    return compare_arrays(got, expected, atol=1e-6, rtol=1e-6)


@checker
def mul_backward(fn) -> CheckResult:
    """Checker for notebook 03: ``fn(a, b, grad_out)`` returns ``(grad_a, grad_b)`` for ``out = a * b``."""
    rng = np.random.default_rng(7)
    cases = [Case((2.0, -3.0, 1.0), (-3.0, 2.0), "the example a = 2, b = -3, grad_out = 1", _pair),
             Case((0.5, 4.0, 0.0), (0.0, 0.0), "grad_out = 0", _pair)]
    for _ in range(3):
        a, b, g = (float(v) for v in rng.normal(size=3) * 5)
        cases.append(Case((a, b, g), (b * g, a * g), f"hidden numbers a = {a:.3f}, b = {b:.3f}, grad_out = {g:.3f}", _pair))
    return run_checks("mul_backward", fn, cases, hint=[
        "what does the output a*b change by when a changes by a little? And when b does?",
        "d(a*b)/da = b and d(a*b)/db = a; multiply each by grad_out (the chain rule) and return both."])


@checker
def tanh_backward(fn) -> CheckResult:
    """Checker for notebook 03: ``fn(out, grad_out)`` returns ``grad_in`` for ``out = tanh(x)``."""
    rng = np.random.default_rng(8)
    cases = [Case((0.5, 1.0), 0.75, "the example out = 0.5, grad_out = 1", compare_scalar),
             Case((0.0, 2.0), 2.0, "out = 0 (the steepest point)", compare_scalar)]
    for _ in range(3):
        out, g = float(np.tanh(rng.normal() * 2)), float(rng.normal() * 3)
        cases.append(Case((out, g), (1 - out ** 2) * g, f"hidden numbers out = {out:.3f}, grad_out = {g:.3f}",
                          compare_scalar))
    return run_checks("tanh_backward", fn, cases, hint=[
        "you need the derivative of tanh, and you are given tanh's output, not its input: can the "
        "derivative be written with the output?",
        "the derivative of tanh is 1 - tanh(x)**2, and you are given out = tanh(x): (1 - out**2) * "
        "grad_out."])


# ---------------------------------------------------------------------------
# Notebook 04: training networks
# ---------------------------------------------------------------------------

@checker
def accuracy(fn) -> CheckResult:
    """Checker for notebook 04: ``fn(logits, labels)`` (tensors) is the fraction with ``(logits > 0) == labels``."""
    import torch

    gen = torch.Generator().manual_seed(9)
    cases = [Case((torch.tensor([2.0, -1.0, 0.5, -3.0]), torch.tensor([1.0, 0.0, 0.0, 0.0])), 0.75,
                  "the example logits [2, -1, 0.5, -3], labels [1, 0, 0, 0]", compare_scalar),
             Case((torch.tensor([-0.1]), torch.tensor([1.0])), 0.0, "one wrong example", compare_scalar)]
    for n in (10, 5000):
        logits, labels = torch.randn(n, generator=gen) * 3, (torch.rand(n, generator=gen) > 0.5).float()
        cases.append(Case((logits, labels), float(((logits > 0).float() == labels).float().mean()),
                          f"hidden tensors of {n} examples", compare_scalar))
    return run_checks("accuracy", fn, cases, hint=[
        "a logit is a score before the sigmoid: which logits mean 'class 1'?",
        "a logit above 0 means class 1; compare (logits > 0) with the labels and take the mean of the"
        " matches as a float."])


def _batches_compare(got, expected):
    if got is None:
        return "returned None: did you forget the `return` statement?"
    if isinstance(got, (str, bytes, dict)) or not hasattr(got, "__iter__"):
        return f"returned {short(got)}, which is not a list of batches"
    batches = list(itertools.islice(got, len(expected) + 1))  # an endless generator is read no further
    try:
        arrays = [as_array(batch) for batch in batches]
    except TypeError as exc:
        return str(exc)
    if len(arrays) > len(expected):
        return f"returned more than {len(expected)} batches, expected {len(expected)}"
    if len(arrays) != len(expected):
        return f"returned {len(arrays)} batches, expected {len(expected)}"
    for k, (batch, g, e) in enumerate(zip(batches, arrays, expected)):
        if g.shape != e.shape or not np.array_equal(g, e):
            return f"returned batch {k} = {short(g)}, expected {short(e)}"
        if not all_integers(batch):
            return (f"returned batch {k} = {short(batch)}, which holds floats: indices must be integers "
                    "(they pick rows, X[batch]); np.arange(start, stop) gives integers")
    return None


@checker
def make_batches(fn) -> CheckResult:
    """Checker for notebook 04: ``fn(n, batch_size)`` splits indices ``0..n-1`` into consecutive batches."""
    def reference(n, k):
        return [np.arange(i, min(i + k, n)) for i in range(0, n, k)]

    cases = [Case((10, 4), reference(10, 4), "the example n = 10, batch_size = 4", _batches_compare),
             Case((6, 3), reference(6, 3), "n = 6, batch_size = 3 (no short batch)", _batches_compare),
             Case((3, 8), reference(3, 8), "a batch size larger than n", _batches_compare),
             Case((1001, 64), reference(1001, 64), "hidden n = 1001, batch_size = 64", _batches_compare)]
    return run_checks("make_batches", fn, cases, hint=[
        "a batch is a slice of the index array; where does each slice start, and what about the end?",
        "start a batch every batch_size indices: range(0, n, batch_size); the last batch may be "
        "shorter."])


@checker
def bce_with_logits(fn) -> CheckResult:
    """Checker for notebook 04: ``fn(logits, labels)`` is the mean binary cross-entropy computed from logits,
    equal to ``torch.nn.functional.binary_cross_entropy_with_logits`` even for huge logits."""
    import torch

    F = torch.nn.functional
    gen = torch.Generator().manual_seed(10)
    examples = [(torch.tensor([0.0, 2.0, -1.0]), torch.tensor([1.0, 1.0, 0.0]), "the example logits [0, 2, -1]"),
                (torch.randn(50, generator=gen), (torch.rand(50, generator=gen) > 0.5).float(), "hidden random logits"),
                (torch.tensor([100.0, -100.0, 50.0, -80.0]), torch.tensor([0.0, 1.0, 1.0, 0.0]),
                 "huge logits [100, -100, 50, -80]")]
    cases = [Case((z, t), F.binary_cross_entropy_with_logits(z.double(), t.double()).item(), label,
                  lambda g, e: compare_scalar(g, e, atol=1e-5, rtol=1e-5)) for z, t, label in examples]
    return run_checks("bce_with_logits", fn, cases, hint=[
        "write the loss of one example with p = sigmoid(z) first; then look for the form that never "
        "takes log(0) or exp of a huge number.",
        "log(sigmoid(z)) = -log(1 + exp(-z)); rewrite both the y = 1 and y = 0 parts with |z| so exp "
        "never sees a large positive number.",
        "per example: max(z, 0) - z*y + log(1 + exp(-|z|)) never overflows; then the mean. Taking "
        "log(sigmoid(z)) directly fails for huge logits."])


# ---------------------------------------------------------------------------
