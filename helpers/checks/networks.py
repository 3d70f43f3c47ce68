"""Checkers of part 1, networks: notebooks 00_start_here, 01_neurons_and_layers,
02_learning_from_data, 03_backpropagation and 04_training_networks."""

import itertools

import numpy as np

from helpers.checks.compare import (all_integers, as_array, compare_arrays, compare_naming_slips, compare_scalar,
                                    float32_room, looks_as_if, named_slip, nearly, short, within)
from helpers.checks.engine import Case, CheckResult, check_prediction, checker, run_checks


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


def _sigmoid_curve(w, b):
    """The neuron of notebook 00 as a function of its input: x -> sigmoid(w x + b)."""
    return lambda x: float(_sigmoid_reference(w * x + b))


def _crossing_compare(got, expected):
    """The x where the curve crosses the level (within 1e-6), or ``None`` when it does not."""
    if expected is None:
        if got is None:
            return None
        return (f"returned {short(got)}, but the curve never reaches that level between lo and hi: "
                "return None there (f(lo) - level and f(hi) - level have the same sign)")
    problem = compare_scalar(got, expected, atol=1e-6, rtol=0.0)
    if problem and got is not None:
        return problem + ". Bisection keeps the half whose ends lie on opposite sides of the level"
    return problem


@checker
def find_crossing(fn) -> CheckResult:
    """Checker for notebook 00: ``fn(f, level, lo, hi)`` returns the ``x`` in ``[lo, hi]`` where the
    continuous curve ``f`` crosses ``level`` (within 1e-6, found by bisection), or ``None`` when
    ``f(lo)`` and ``f(hi)`` lie on the same side of ``level``. Rising and falling curves both."""
    cases = [
        Case((_sigmoid_curve(3.0, -3.0), 0.5, -6.0, 6.0), 1.0,
             "the example: the neuron sigmoid(3x - 3) and the level 0.5 on [-6, 6]", _crossing_compare),
        Case((_sigmoid_curve(-2.0, 4.0), 0.5, -6.0, 6.0), 2.0,
             "a falling curve: sigmoid(-2x + 4), level 0.5, on [-6, 6]", _crossing_compare),
        Case((_sigmoid_curve(1.0, 0.0), 0.9, -6.0, 6.0), float(np.log(9.0)),
             "sigmoid(x) and the level 0.9 on [-6, 6]", _crossing_compare),
        Case((lambda x: x ** 3 + x, 1.0, 0.0, 1.0), 0.6823278038280193,
             "a hidden curve x**3 + x, level 1, on [0, 1]", _crossing_compare),
        Case((np.cos, 0.0, 0.0, 3.0), float(np.pi / 2), "a hidden falling curve cos(x), level 0, on [0, 3]",
             _crossing_compare),
        Case((_sigmoid_curve(1.0, 0.0), 0.5, 1.0, 5.0), None,
             "sigmoid(x) and the level 0.5 on [1, 5], which it never reaches there", _crossing_compare),
        Case((_sigmoid_curve(0.0, 0.0), 0.9, -6.0, 6.0), None,
             "a flat curve (weight 0: sigmoid(0) = 0.5 everywhere) and the level 0.9", _crossing_compare),
    ]
    return run_checks("find_crossing", fn, cases, hint=[
        "bisection: look at the middle of [lo, hi]. Is f there above or below the level? That tells "
        "you which half still holds the crossing.",
        "keep two ends whose values lie on opposite sides of the level: compare the sign of "
        "f(mid) - level with the sign of f(lo) - level, and move lo or hi to mid. A fixed number of "
        "halvings (60 is plenty) never loops forever; first return None when f(lo) - level and "
        "f(hi) - level have the same sign.",
        "below, f(lo) - level and f(hi) - level differ in sign (else return None); repeat 60 times: "
        "mid = (lo + hi) / 2; if (f(mid) - level) * (f(lo) - level) > 0: lo = mid, else: hi = mid; "
        "then return (lo + hi) / 2."])


@checker
def predict_step_position(fn) -> CheckResult:
    """Checker for notebook 00: the prediction of where the step of sigmoid(w x + b) sits for
    w = -2, b = 4, and which way it faces, before the cell that draws it."""
    return check_prediction("predict_step_position", fn, "b", choices=["a", "b", "c", "d"], why=(
        "The step sits where w x + b = 0, at x = -b / w = -4 / -2 = 2; the weight is negative, so the "
        "output falls from 1 to 0 as x grows."), hint=[
        "the output is exactly 0.5 where w x + b = 0: solve that for x.",
        "x = -b / w = 2. A positive weight makes the step rise; what does a negative one do?"])


def _noisy_points_reference(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=n)
    return x, 2 * x + 1 + 0.1 * rng.normal(size=n)


def _twice(fn):
    """``fn`` called twice with the same arguments: the two answers, to see that a seed repeats."""

    def both(*args):
        return fn(*args), fn(*args)

    both.__wrapped__ = fn  # the learner's own function, for the time limit (see timing.learner_globals)
    return both


def _as_pair(got):
    """``(x, y)`` as two float arrays, or the problem in words."""
    if got is None:
        return None, "returned None: did you forget the `return` statement?"
    if isinstance(got, (str, bytes, dict)) or not hasattr(got, "__len__") or len(got) != 2:
        return None, f"returned {short(got)}, which is not a list of arrays: return the two arrays, x and y"
    try:
        return (as_array(got[0]), as_array(got[1])), None
    except TypeError as exc:
        return None, str(exc)


def _noisy_points_compare(got, expected):
    first, problem = _as_pair(got[0])
    if problem:
        return problem
    second, _ = _as_pair(got[1])
    x, y = first
    if second is not None and not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first, second)):
        return ("returned different points on two calls with the same seed: the generator does not use "
                "the seed (np.random.default_rng() starts somewhere new each time; pass it the seed)")
    for name, got_part, want in (("x", x, expected[0]), ("y", y, expected[1])):
        if got_part.shape != want.shape:
            return f"returned {name} of shape {got_part.shape}, expected shape {want.shape}"
    if not np.allclose(x, expected[0], atol=1e-12):
        return "returned other x than np.random.default_rng(seed).uniform(-1, 1, size=n) gives"
    noise = y - 2 * x - 1
    if y.size > 1 and np.allclose(noise, noise[0]) and not np.allclose(expected[1], y):
        return (f"returned y = 2x + 1 + {noise[0]:.3g} for every point: the same noise everywhere. "
                "rng.normal(n) draws ONE number with mean n; rng.normal(size=n) draws n numbers with mean 0")
    return compare_arrays(y, expected[1], atol=1e-12, rtol=0.0)


@checker
def noisy_points(fn) -> CheckResult:
    """Checker for notebook 00 (find the bug): ``fn(n, seed)`` returns ``x`` (n points drawn
    uniformly in [-1, 1]) and ``y = 2x + 1`` plus noise of standard deviation 0.1, both from
    ``np.random.default_rng(seed)``, drawn in that order; the same seed gives the same points."""
    cases = [Case((5, 0), _noisy_points_reference(5, 0), "the example n = 5, seed = 0", _noisy_points_compare)]
    for n, seed in [(3, 1), (1000, 7)]:
        cases.append(Case((n, seed), _noisy_points_reference(n, seed), f"hidden n = {n}, seed = {seed}",
                          _noisy_points_compare))
    return run_checks("noisy_points", _twice(fn) if callable(fn) else fn, cases, hint=[
        "run the function twice with the same seed and compare; then look at the noise that is added.",
        "two bugs: the generator ignores the seed, and rng.normal(n) is one number, not n of them.",
        "rng = np.random.default_rng(seed), and the noise is 0.1 * rng.normal(size=n)."])


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
        "np.maximum compares two arrays (or an array and a number) element by element and returns a "
        "new array of the larger values.",
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


def _dense_compare(X, W, b, room=1e-6):
    """compare_arrays within ``room``, naming the slips of notebook 01's find-the-bug loop."""
    slips = [(X @ W + X.shape[1] * b, "added the bias inside the innermost loop, once per input (d_in times) "
                                      "instead of once per output"),
             (X @ W, "left out the bias")]
    return compare_naming_slips(slips, atol=room)


@checker
def dense_layer(fn) -> CheckResult:
    """Checker for notebook 01: ``fn(X, W, b)`` is the layer ``X @ W + b`` for a batch of rows."""
    rng = np.random.default_rng(3)
    cases = []
    X, W, b = np.array([[1.0, 2.0]]), np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]]), np.array([0.0, 1.0, -1.0])
    cases.append(Case((X, W, b), X @ W + b, "the example: one row, 2 inputs, 3 outputs", _dense_compare(X, W, b)))
    for n, d_in, d_out in [(4, 3, 2), (1, 5, 1), (100, 50, 20)]:
        X, W, b = rng.normal(size=(n, d_in)), rng.normal(size=(d_in, d_out)), rng.normal(size=d_out)
        room = float32_room(np.abs(X) @ np.abs(W) + np.abs(b))  # each output is a sum of d_in + 1 terms
        label = f"a hidden batch X of shape ({n}, {d_in}), W of shape ({d_in}, {d_out})"
        cases.append(Case((X, W, b), X @ W + b, label, _dense_compare(X, W, b, room)))
    return run_checks("dense_layer", fn, cases, hint=[
        "think in shapes: X is (n, d_in), W is (d_in, d_out), the answer (n, d_out). Which of W's "
        "dimensions is d_out?",
        "follow one output H[i, j] through the loops by hand: how many times is b[j] added to it?",
        "d_out is the number of columns of W (W.shape[1]); the bias belongs to the output H[i, j], so "
        "add it once, after the loop over k, not inside it.",
        "H[i, j] = sum over k of X[i, k] * W[k, j], plus b[j] once; or the whole layer at once: "
        "X @ W + b, shape (n, d_out)."])


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


def _layers_slips(X, params):
    """The usual slips in a forward pass through a list of layers: (what it computes, words)."""
    from helpers import nn_numpy

    def run(hidden, last, biases=True):
        outputs, a = [], X
        for k, (W, b) in enumerate(params):
            z = a @ W + (b if biases else 0.0)
            a = last(z) if k == len(params) - 1 else hidden(z)
            outputs.append(a)
        return outputs

    sig, relu_ = nn_numpy.sigmoid, nn_numpy.relu
    return [(run(relu_, relu_), "used ReLU on the output layer too; the output layer takes a sigmoid"),
            (run(relu_, lambda z: z), "forgot the sigmoid on the output layer"),
            (run(sig, sig), "used sigmoid on every layer; the hidden layers take ReLU"),
            (run(lambda z: z, sig), "skipped the ReLU on the hidden layers"),
            (run(relu_, sig, biases=False), "left out the biases")]


def _forward_rooms(X, params, outputs):
    """The float32 room of each layer's output: its own sum's rounding (``float32_room``) plus the
    rounding carried in from the layer before, through ``|W|`` (the activations never amplify it)."""
    rooms, carried, a = [], np.zeros_like(np.asarray(X, dtype=float)), np.abs(np.asarray(X, dtype=float))
    for (W, b), out in zip(params, outputs):
        carried = float32_room(a @ np.abs(W) + np.abs(b)) + carried @ np.abs(W)
        rooms.append(carried)
        a = np.abs(out)
    return rooms


def _forward_pass_compare(slips, rooms):
    def compare(got, expected):
        if got is None:
            return "returned None: did you forget the `return` statement?"
        if isinstance(got, (str, bytes, dict, np.ndarray)) or not isinstance(got, (list, tuple)):
            return (f"returned {short(got)}, which is not a list of arrays: return the list of every layer's "
                    f"output, {len(expected)} arrays here")
        if len(got) != len(expected):
            return (f"returned a list of {len(got)} arrays, expected {len(expected)}: one per layer (the input X "
                    f"is not one of them), the last one the network's output")
        for k, (layer, want) in enumerate(zip(got, expected)):
            problem = compare_arrays(layer, want, atol=rooms[k], rtol=1e-5)
            if problem:
                name = "output layer" if k == len(expected) - 1 else f"hidden layer {k + 1}"
                words = named_slip(list(got), expected, slips, nearly(1e-5, 1e-5))
                return looks_as_if(f"for the {name} (list item {k}) {problem}", words)
        return None

    return compare


@checker
def forward_pass(fn) -> CheckResult:
    """Checker for notebook 01 (build): ``fn(X, params)`` runs a batch ``X (n, d_0)`` through the
    layers ``params = [(W1, b1), ..., (WL, bL)]`` (ReLU on every hidden layer, sigmoid on the last)
    and returns the list of every layer's output ``[a_1, ..., a_L]``, ``a_k`` of shape ``(n, d_k)``."""
    rng = np.random.default_rng(11)
    xor = [(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.array([0.0, 0.0])), (np.array([[3.0], [3.0]]), np.array([-3.0]))]
    inputs = [(np.array([[1.0, -1.0], [-1.0, -1.0]]), xor,
               "the example: the XOR network of this notebook (sizes 2-2-1) on the points (1, -1) and (-1, -1)")]
    for n, sizes in [(4, [3, 1]), (6, [4, 8, 8, 2]), (64, [5, 16, 16, 16, 3])]:
        params = [(rng.normal(size=(a, b)), rng.normal(size=b)) for a, b in zip(sizes[:-1], sizes[1:])]
        what = "no hidden layer at all" if len(sizes) == 2 else f"{len(sizes) - 2} hidden layers"
        inputs.append((rng.normal(size=(n, sizes[0])), params,
                       f"a hidden network of sizes {'-'.join(map(str, sizes))} ({what}) on {n} points"))
    cases = []
    for X, params, label in inputs:
        from helpers import nn_numpy

        expected = nn_numpy.forward_layers(X, params)
        compare = _forward_pass_compare(_layers_slips(X, params), _forward_rooms(X, params, expected))
        cases.append(Case((X, params), expected, label, compare))
    return run_checks("forward_pass", fn, cases, hint=[
        "a loop over the layers: what goes into layer k is what came out of layer k - 1. Which layer is "
        "different from the others?",
        "start with a = X; for each (W, b): z = a @ W + b, then a = relu(z), except on the last layer "
        "where a = sigmoid(z); keep every a in a list.",
        "outputs = []; a = X; for k, (W, b) in enumerate(params): z = a @ W + b; a = nn_numpy.sigmoid(z) "
        "if k == len(params) - 1 else nn_numpy.relu(z); outputs.append(a). Return outputs."])


@checker
def predict_xor_without_relu(fn) -> CheckResult:
    """Checker for notebook 01: the prediction of the XOR network's accuracy once its ReLU is
    taken out (a: about 100%, b: about 75%, c: about 50%), before the cell that measures it."""
    return check_prediction("predict_xor_without_relu", fn, "c", choices=["a", "b", "c"], why=(
        "Without the ReLU, h1 + h2 = (x1 - x2) + (x2 - x1) = 0 for every point: the output is "
        "sigmoid(-3) everywhere, so the network says class 0 for all points and is right on half "
        "of them. Two linear layers are one linear layer, here a constant one."), hint=[
        "write out h1 + h2 when there is no ReLU: h1 = x1 - x2 and h2 = x2 - x1.",
        "h1 + h2 = 0 for every point, so the output neuron always sees 3 * 0 - 3. What does it answer?"])


# ---------------------------------------------------------------------------
# Notebook 02: learning from data
# ---------------------------------------------------------------------------

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
        problem = compare_arrays(got, expected, atol=1e-4, rtol=1e-4)
        half = "took f_minus at params itself, not at params - eps, which gives half the slope"
        if problem is None:
            return None
        return looks_as_if(problem, named_slip(got, expected, [(expected / 2, half)], nearly(1e-4, 1e-4)))

    p1 = np.array([3.0, -2.0])
    p2 = rng.normal(size=5)
    p3 = rng.normal(size=(3, 4))
    p4 = rng.normal(size=(2, 3))
    central, forward = differences(_wavy, p4, 0.01)
    slips = [(forward, ("used a forward difference (f(p + eps) - f(p)) / eps; the central difference "
                        "(f(p + eps) - f(p - eps)) / (2 eps) is far more accurate")),
             (wavy_grad(p4), "ignored the eps you were given and used a step of your own"),
             (forward / 2, ("evaluated f_minus at params itself, not at params - eps (after params[i] += eps, "
                            "one -= eps only brings it back), which gives half the slope"))]
    cases = [Case((_bowl, p1), 2 * (p1 - 1.0), "the example f(p) = sum((p - 1)**2) at p = [3, -2]", close),
             Case((_wavy, p2), wavy_grad(p2), "a hidden wavy function of 5 parameters", close),
             Case((_wavy, p3), wavy_grad(p3), "a hidden function of a (3, 4) array of parameters", close),
             Case((_wavy, p4), central, "a hidden function of a (2, 3) array, called with eps=0.01",
                  compare_naming_slips(slips, atol=1e-8, rtol=1e-8), kwargs={"eps": 0.01})]
    return run_checks("numerical_gradient", fn, cases, hint=[
        "try it on f(p) = p[0] ** 2 at p = [3.0], where the slope is 6: at which two points is f "
        "evaluated, and how far apart are they?",
        "what is params[i] when params is a matrix, and whose array is being nudged: a copy, or the "
        "caller's?",
        "for each entry i: nudge params[i] up by eps and down by eps on a copy, take (f(up) - "
        "f(down)) / (2 * eps); return an array shaped like params."])


@checker
def predict_steep_direction(fn) -> CheckResult:
    """Checker for notebook 02: the prediction of what gradient descent does on
    L(w, b) = w**2 + 10 b**2 from (1, 1) with the rate 0.15, before the cell that runs it."""
    return check_prediction("predict_steep_direction", fn, "b", choices=["a", "b", "c", "d"], why=(
        "Each direction is its own 1-D bowl: w is multiplied by 1 - 2 * 1 * 0.15 = 0.7 every step and "
        "shrinks steadily, b by 1 - 2 * 10 * 0.15 = -2, so it flips sign and doubles. The most curved "
        "direction sets the limit: here the rate must stay below 1 / 10 = 0.1."), hint=[
        "treat w and b separately: each is a bowl a * v**2 of its own, with its own a.",
        "a step multiplies w by 1 - 2 * 1 * 0.15 and b by 1 - 2 * 10 * 0.15. Which factor lies "
        "outside (-1, 1)?"])


def _fit_reference(loss_fn, start, learning_rate, steps, blow_up=1e6):
    from helpers import gradient_descent as gd

    params = np.array(start, dtype=float)
    losses = [loss_fn(params)]
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            params = params - learning_rate * gd.numerical_gradient(loss_fn, params)
            losses.append(loss_fn(params))
            if not np.isfinite(losses[-1]) or losses[-1] > blow_up * losses[0]:
                break
    return params, losses


def _fit_blow_up(expected):
    """The ``blow_up`` a case of :func:`fit_numerically` was run with (its third item)."""
    return expected[2]


def _fit_compare(got, expected):
    params, losses, _ = expected
    if got is None:
        return "returned None: did you forget the `return` statement?"
    if isinstance(got, (str, bytes, dict, np.ndarray)) or not hasattr(got, "__len__") or len(got) != 2:
        return f"returned {short(got)}, which is not a list of arrays: return the pair params, losses"
    try:
        got_params, got_losses = as_array(got[0]), as_array(got[1]).reshape(-1)
    except TypeError as exc:
        return str(exc)
    stopped = len(losses) - 1
    if got_params.shape != params.shape:
        return f"returned params of shape {got_params.shape}, expected shape {params.shape} (the shape of start)"
    if not np.isfinite(got_params).all() and got_losses.size <= len(losses):
        return f"returned NaN or infinity in params, {short(got_params)}, where finite numbers were expected"
    if got_losses.size == len(losses) - 1 and got_losses.size and np.isclose(got_losses[0], losses[1]):
        return (f"returned {got_losses.size} losses, expected {len(losses)}: the list starts with the loss at "
                "the start, before any step")
    blew_up = not np.isfinite(losses[-1]) or losses[-1] > _fit_blow_up(expected) * losses[0]
    if got_losses.size == len(losses) - 1 and blew_up:
        return (f"returned {got_losses.size} losses, expected {len(losses)}: the loss that blew up belongs in "
                "the list too, as its last entry (append it, then stop)")
    if got_losses.size > len(losses):
        return (f"returned {got_losses.size} losses, expected {len(losses)}: the run must stop at the first "
                f"loss that is not finite or above blow_up times the first one (here after step {stopped})")
    if got_losses.size < len(losses):
        return (f"returned {got_losses.size} losses, expected {len(losses)}: it stopped too early (the run "
                f"stops only when a loss is not finite or above blow_up times the first one)")
    problem = compare_arrays(got_params, params, atol=1e-6, rtol=1e-6)
    if problem:
        return "params: " + problem
    problem = compare_arrays(got_losses, np.array(losses), atol=1e-6, rtol=1e-6)
    return "losses: " + problem if problem else None


def _bowl_fit(p):
    return float(np.sum((np.asarray(p) - 1.0) ** 2))


def _blows_up_to_nan(p):
    return float(np.sum(np.asarray(p) ** 2)) if abs(float(np.ravel(p)[0])) < 5 else float("nan")


@checker
def fit_numerically(fn) -> CheckResult:
    """Checker for notebook 02 (build): ``fn(loss_fn, start, learning_rate, steps, blow_up=1e6)``
    runs gradient descent with numerical gradients from ``start`` (left unchanged) and returns
    ``(params, losses)``, ``losses`` starting with the loss at ``start``; it stops after the first
    loss that is not finite or above ``blow_up`` times the first."""
    from helpers import gradient_descent as gd

    x, y = gd.line_data(n=20, seed=3)

    def line(p):
        return gd.line_loss(p, x, y)

    def wavy(p):
        return float(np.sum(np.sin(p) * p + 0.5 * p ** 2))

    rng = np.random.default_rng(12)
    runs = [((_bowl_fit, np.array([3.0, -2.0]), 0.1, 20),
             "the example: sum((p - 1)**2) from [3, -2], rate 0.1, 20 steps"),
            ((line, np.array([-1.0, -1.0]), 0.5, 30), "a hidden line fit from (-1, -1), rate 0.5, 30 steps"),
            ((_bowl_fit, np.array([3.0, -2.0]), 1.5, 100),
             "the bowl at rate 1.5, where each step multiplies the loss by 4: it must stop once the loss passes "
             "blow_up (1e6) times the first"),
            ((_blows_up_to_nan, np.array([1.0]), 1.2, 50), "a loss that becomes NaN after a few steps at rate 1.2"),
            ((wavy, rng.normal(size=(2, 3)), 0.2, 40), "a hidden wavy loss of a (2, 3) array of parameters"),
            ((_bowl_fit, np.array([0.5]), 0.1, 0), "0 steps")]
    cases = [Case(args, (*_fit_reference(*args), 1e6), label, _fit_compare) for args, label in runs]
    return run_checks("fit_numerically", fn, cases, hint=[
        "three things each step: a gradient, a step against it, the new loss. And one more check before "
        "the next step: has the loss blown up?",
        "gd.numerical_gradient gives the gradient; the guard goes after each new loss is recorded, "
        "and compares it with the first loss (and with infinity).",
        "params = np.array(start, dtype=float); losses = [loss_fn(params)]; for _ in range(steps): params = "
        "params - learning_rate * gd.numerical_gradient(loss_fn, params); loss = loss_fn(params); "
        "losses.append(loss); if not np.isfinite(loss) or loss > blow_up * losses[0]: break. "
        "Return params, losses."])


# ---------------------------------------------------------------------------
# Notebook 03: backpropagation
# ---------------------------------------------------------------------------

def _pair(got, expected):
    """Compare a learner's ``(grad_a, grad_b)`` with the expected pair."""
    if isinstance(got, (int, float)) or (hasattr(got, "ndim") and getattr(got, "ndim", 1) == 0):
        return f"returned one number ({short(got)}), but a pair (grad_a, grad_b) was expected"
    return compare_arrays(got, expected, atol=1e-6, rtol=1e-6)


# --- notebook 03: the engine the learner builds, checked against torch.autograd ---------

class _NotAValue:
    """What the learner's class gave instead of a Value: ``expression`` returned ``got``."""

    def __init__(self, expression, got):
        self.expression, self.got = expression, got


def _value_like(obj) -> bool:
    data = getattr(obj, "data", None)
    return (hasattr(obj, "grad") and isinstance(data, (int, float, np.floating, np.integer))
            and not isinstance(data, bool))


def _engine_programs():
    """The engine's cases: ``(label, leaves, program, passes, advice)``. ``program(leaves)`` builds
    the output with ``+ * ** tanh exp`` only, so it runs on the learner's Values and on PyTorch
    tensors alike; ``passes`` says how backward is called (see ``_run_engine``)."""
    rng = np.random.default_rng(11)
    twice = "Is every gradient added (+=) rather than set (=)? A value used twice gets gradient from both uses."
    order = "Does backward() visit the nodes in reverse topological order, the output first?"
    cases = [
        ("the example out = a * b with a = 2, b = -3", [2.0, -3.0], lambda v: v[0] * v[1], "once",
         "A product swaps its inputs: d(a*b)/da = b."),
        ("out = a + b (the given __add__) with a = 2, b = -3", [2.0, -3.0], lambda v: v[0] + v[1], "once",
         "Only __add__ and backward() run here: does backward() set the output's grad to 1?"),
        ("out = tanh(x * w + b)", [0.5, -1.5, 0.2], lambda v: (v[0] * v[1] + v[2]).tanh(), "once",
         "tanh's derivative is 1 - tanh^2: use the output's data."),
        ("out = exp(a * 0.5)", [1.3], lambda v: (v[0] * 0.5).exp(), "once", "The derivative of exp is exp itself: the output's data."),
        ("out = a ** 3 + a ** -1 + a ** 0.5", [1.7], lambda v: v[0] ** 3 + v[0] ** -1 + v[0] ** 0.5, "once",
         "d(a^k)/da = k a^(k-1), for any number k, negative and fractional too."),
        ("out = 2 * a - 1 / b (numbers on either side)", [0.7, 1.9], lambda v: 2 * v[0] - 1 / v[1], "once",
         "The given __rmul__, __sub__ and __truediv__ are built on __mul__, __add__ and __pow__."),
        ("out = a * a (one Value on both sides of a product)", [-3.0], lambda v: v[0] * v[0], "once", twice),
        ("f = (a * b) * (a + b), where a and b are each used twice", [2.0, -3.0],
         lambda v: (v[0] * v[1]) * (v[0] + v[1]), "once", twice),
        ("a chain where x is used early and late: out = tanh(x * x) * x + x", [0.8],
         lambda v: (v[0] * v[0]).tanh() * v[0] + v[0], "once", twice + " " + order),
    ]
    for k in range(4):
        program = _random_engine_program(rng)
        cases.append((f"hidden random graph {k + 1} over three inputs", list(rng.normal(size=3)), program, "once",
                      twice + " " + order))
    cases += [
        ("two backward() calls on two graphs made from the same a, b (no clearing in between)", [1.5, -0.5],
         lambda v: v[0] * v[1] + v[0], "two graphs",
         "The leaves accumulate, as in PyTorch: backward() must add to their grad, never reset it."),
        ("backward() twice on the same graph (PyTorch: retain_graph=True)", [0.6, -1.2],
         lambda v: (v[0] * v[1]).tanh() * v[1], "same graph twice",
         "The leaves should hold twice one pass's gradient. The nodes in between belong to one pass: set "
         "their grad to 0 before passing gradients back, or the second pass adds the first one's again."),
        ("grads cleared (leaf.grad = 0, as zero_grad does), then backward() again", [0.9, 2.1],
         lambda v: (v[0] * v[1]).exp() * v[0], "cleared",
         "After clearing, one pass should give exactly one pass's gradients."),
    ]
    return cases


def _random_engine_program(rng):
    """A random graph over three inputs using only the operations the learner writes."""
    steps = []
    for k in range(7):
        steps.append((int(rng.integers(5)), int(rng.integers(3 + k)), int(rng.integers(3 + k))))

    def program(v):
        values = list(v)
        for op, i, j in steps:
            a, b = values[i], values[j]
            values.append([a + b, a * b, a.tanh(), (a.tanh()).exp(), (a * a + 1) ** -0.5][op])
        total = values[3]
        for extra in values[4:]:
            total = total + extra
        return total

    return program


def _run_engine(make, leaves, program, passes):
    """``[out.data, leaf grads...]`` for the graph ``program`` builds from ``make(leaf)``, after the
    backward passes named by ``passes``; or a :class:`_NotAValue` naming what broke."""
    nodes = []
    for x in leaves:
        node = make(x)
        if not _value_like(node):
            return _NotAValue(f"Value({x:g})", node)
        nodes.append(node)
    out = program(nodes)
    if not _value_like(out):
        return _NotAValue("the expression", out)
    out.backward()
    if passes == "two graphs":
        out = program(nodes)
        out.backward()
    elif passes == "same graph twice":
        out.backward()
    elif passes == "cleared":
        for node in nodes:
            node.grad = 0.0
        out.backward()
    return [out.data] + [node.grad for node in nodes]


def _engine_reference(leaves, program, passes):
    import torch

    tensors = [torch.tensor(float(x), dtype=torch.float64, requires_grad=True) for x in leaves]
    out = program(tensors)
    grads = torch.autograd.grad(out, tensors, allow_unused=True)
    grads = [0.0 if g is None else float(g) for g in grads]
    if passes in ("two graphs", "same graph twice"):
        grads = [2 * g for g in grads]
    return [out.item()] + grads


def _engine_compare(advice):
    def compare(got, expected):
        if isinstance(got, _NotAValue):
            return (f"gave {short(got.got)} for {got.expression}: that is not a number wrapped in a Value. "
                    "Expected an object whose .data is a single number (one number) and whose .grad is its "
                    "gradient; did an operation forget to return `out`?")
        problem = compare_arrays(got, expected, atol=1e-6, rtol=1e-6)
        if problem is None:
            return None
        words = advice
        if not np.any(np.asarray(got, dtype=float)[1:]) and np.any(np.asarray(expected)[1:]):
            words = ("No gradient reached the inputs: does backward() set the output's grad to 1 and then visit "
                     "the nodes in reverse topological order, the output first?")
        return (f"gave out.data and leaf grads {short(np.round(np.asarray(got, dtype=float), 6))}, torch.autograd "
                f"gives {short(np.round(np.asarray(expected), 6))}. {words}")
    return compare


@checker
def value_engine(cls) -> CheckResult:
    """Checker for notebook 03: ``cls`` is the learner's ``Value`` class (``__mul__``, ``__pow__``,
    ``exp``, ``tanh`` and ``backward`` written by them), run on small and random graphs and
    compared with ``torch.autograd``: a value used twice, two backward calls (leaves accumulate),
    grads cleared between calls."""
    if cls is None or not callable(cls):
        return run_checks("value_engine", cls, [], hint=())
    programs = _engine_programs()

    def build_and_run(k):
        _, leaves, program, passes, _ = programs[k]
        return _run_engine(cls, leaves, program, passes)

    own = getattr(cls, "__init__", None) if isinstance(cls, type) else cls
    build_and_run.__wrapped__ = own if hasattr(own, "__globals__") else cls  # the learner's code, for the time limit
    cases = [Case((k,), _engine_reference(leaves, program, passes), label, _engine_compare(advice))
             for k, (label, leaves, program, passes, advice) in enumerate(programs)]
    return run_checks("value_engine", build_and_run, cases, hint=[
        "each operation makes `out`, then gives it a `_backward` that adds (local derivative x out.grad) "
        "to the grad of each input, exactly like the given __add__. backward() sorts the graph first.",
        "__mul__: self.grad += other.data * out.grad (and the mirror for other). __pow__(k): "
        "self.grad += k * self.data ** (k - 1) * out.grad. exp: self.grad += out.data * out.grad. tanh: "
        "self.grad += (1 - out.data ** 2) * out.grad. backward(): a depth-first visit appends a node after "
        "its children, giving the topological order.",
        "backward(): order, seen = [], set(); def visit(v): if v not in seen: seen.add(v); for c in v._prev: "
        "visit(c); order.append(v). visit(self). For every node in order with a _prev, set grad = 0; then "
        "self.grad += 1; then for v in reversed(order): v._backward()."])


@checker
def predict_used_twice(fn) -> CheckResult:
    """Checker for notebook 03: the prediction of ``a.grad`` after ``c = a * a; c.backward()`` with
    ``a = Value(-3.0)``, before the cell that runs it."""
    return check_prediction("predict_used_twice", fn, -6.0, rel=0.01, why=(
        "Here a is both inputs of the product. Its __mul__ backward adds other.data * c.grad = -3 for one side "
        "and self.data * c.grad = -3 for the other: -6 in all, 2a, the derivative of a squared."), hint=[
        "the product's backward adds to self.grad and to other.grad. Here self and other are the same Value.",
        "each side contributes the other side's data (-3) times c.grad (1). Both go into a.grad."])


@checker
def predict_grad_after_three_steps(fn) -> CheckResult:
    """Checker for notebook 03: the prediction of ``w.grad`` after three gradient-descent steps on
    ``w * w`` from ``w = 1`` at rate 0.1 that never clear the gradient."""
    return check_prediction("predict_grad_after_three_steps", fn, 4.48, rel=0.1, why=(
        "Each backward() adds 2w to w.grad: 2 at w = 1 (then w = 1 - 0.1 * 2 = 0.8), 1.6 more at w = 0.8 "
        "(grad 3.6, w = 0.44), 0.88 more at w = 0.44: 4.48. Each step moved by the sum of all gradients so "
        "far, so w overshoots to -0.008; a loop that clears the gradient would step by 2w alone."), hint=[
        "backward() adds to w.grad, and the step uses the whole of w.grad. Write down w and w.grad after "
        "each of the three steps.",
        "step 1: w.grad = 2, w = 0.8. Step 2 adds 2 * 0.8 = 1.6 to w.grad before w moves again."])


def _xor_losses(steps, learning_rate, mistake=None):
    """The losses of 03's find-the-bug loop, right (``mistake=None``) or with a known mistake."""
    from helpers import autograd, toy_data

    X, y = toy_data.xor(n=12, noise=0.25, seed=0)
    model = autograd.MLP((2, 3, 1), seed=0)
    losses = []
    for _ in range(steps):
        loss = autograd.bce_loss(model, X, y)
        if mistake != "never cleared":
            model.zero_grad()
        loss.backward()
        if mistake == "cleared after backward":
            model.zero_grad()
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        losses.append(loss.data)
    return losses


@checker
def train_xor(fn) -> CheckResult:
    """Checker for notebook 03 (find the bug): ``fn(steps, learning_rate)`` trains the 2-3-1 network
    of ``Value``s on 12 XOR points by gradient descent and returns the loss of every step; the
    broken version never clears the gradients."""
    cases = []
    for steps, rate, label in [(12, 1.0, "the example: 12 steps at learning rate 1.0"),
                               (6, 0.3, "6 steps at learning rate 0.3")]:
        slips = [(_xor_losses(steps, rate, "never cleared"), "never clear the gradients: each step "
                  "moves by the sum of every gradient so far. Call model.zero_grad() before loss.backward()"),
                 (_xor_losses(steps, rate, "cleared after backward"), "still give what the broken code gives: the "
                  "loss never moves, so no step changes the weights. Which values does the update use?")]
        cases.append(Case((steps, rate), _xor_losses(steps, rate), label, compare_naming_slips(slips, atol=1e-9)))
    return run_checks("train_xor", fn, cases, hint=[
        "print p.grad for one weight just before the update, at each step: does it hold this step's "
        "gradient, more, or nothing?",
        "backward() adds to the parameters' grads (as PyTorch's does), so they must be cleared once per "
        "step, before backward() fills them, and used after it.",
        "in the loop: loss = ..., then model.zero_grad(), then loss.backward(), then the update."])


def _two_layer_grads_torch(X, y, W1, b1, W2, b2):
    import torch

    params = [torch.tensor(np.asarray(a, dtype=float), requires_grad=True) for a in (W1, b1, W2, b2)]
    X_t, y_t = torch.tensor(np.asarray(X, dtype=float)), torch.tensor(np.asarray(y, dtype=float))
    logit = (torch.tanh(X_t @ params[0] + params[1]) @ params[2] + params[3])[:, 0]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y_t)
    return [g.numpy() for g in torch.autograd.grad(loss, params)]


def _squeezed(shape) -> tuple:
    return tuple(d for d in shape if d != 1)


def _four_gradients(shapes, slips):
    """Compare ``(dW1, db1, dW2, db2)``; each may come in any shape of its parameter's size."""
    names = ("dW1", "db1", "dW2", "db2")

    def compare(got, expected):
        if hasattr(got, "detach") or isinstance(got, (str, bytes, dict, np.ndarray)) or not isinstance(got, (list, tuple)):
            return f"returned {short(got)}, which is not a list of arrays (dW1, db1, dW2, db2)"
        if len(got) != 4:
            return f"returned {len(got)} items, but four arrays (dW1, db1, dW2, db2) were expected"
        for name, g, e, shape in zip(names, got, expected, shapes):
            try:
                arr = as_array(g)
            except TypeError as exc:
                return f"{name}: {exc}"
            if _squeezed(arr.shape) != _squeezed(shape):  # (h,) for (h, 1) is fine, a transpose is not
                return f"returned {name} of shape {arr.shape}, expected shape {shape}"
            problem = compare_arrays(arr.reshape(shape), e, atol=1e-5, rtol=1e-4)
            if problem:
                got_arrays = [as_array(x).reshape(s) if _squeezed(as_array(x).shape) == _squeezed(s) else as_array(x)
                              for x, s in zip(got, shapes)]
                return looks_as_if(f"{name} {problem}", named_slip(got_arrays, list(expected), slips, nearly(1e-5, 1e-4)))
        return None

    return compare


def _two_layer_slip_grads(X, y, W1, b1, W2, b2):
    """What the usual mistakes give: the loss summed, not averaged; tanh's derivative left out; y - p."""
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float).reshape(-1, 1)
    h = np.tanh(X @ W1 + b1)
    p = 1 / (1 + np.exp(-(h @ W2 + b2)))

    def through(dz2, tanh_derivative=True):
        dh = dz2 @ W2.T
        dz1 = dh * (1 - h ** 2) if tanh_derivative else dh
        return [X.T @ dz1, dz1.sum(0), h.T @ dz2, dz2.sum(0)]

    n = len(X)
    return [(through(p - y), "summed the loss over the examples instead of taking the mean: divide p - y by n"),
            (through((p - y) / n, tanh_derivative=False), "left out tanh's derivative (1 - h**2) on the way "
                                                           "back through the hidden layer"),
            (through((y - p) / n), "used y - p: the gradient of the loss is p - y (the loss falls as p nears y)")]


@checker
def two_layer_backward(fn) -> CheckResult:
    """Checker for notebook 03: ``fn(X, y, W1, b1, W2, b2)`` returns ``(dW1, db1, dW2, db2)``, the
    gradients of the mean binary cross-entropy of ``sigmoid(tanh(X @ W1 + b1) @ W2 + b2)``,
    compared with ``torch.autograd``."""
    rng = np.random.default_rng(12)
    cases = []
    for n, d, h, label in [(4, 2, 3, "the example: 4 points, 2 inputs, 3 hidden neurons"),
                           (1, 2, 3, "a single point (n = 1)"),
                           (9, 3, 5, "hidden data: 9 points, 3 inputs, 5 hidden neurons")]:
        X, y = rng.normal(size=(n, d)), (rng.random(n) > 0.5).astype(float)
        W1, b1, W2, b2 = rng.normal(size=(d, h)), rng.normal(size=h) * 0.5, rng.normal(size=(h, 1)), rng.normal(size=1)
        args = (X, y, W1, b1, W2, b2)
        slips = _two_layer_slip_grads(*args)
        cases.append(Case(args, _two_layer_grads_torch(*args), label,
                          _four_gradients([W1.shape, b1.shape, W2.shape, b2.shape], slips)))
    return run_checks("two_layer_backward", fn, cases, hint=[
        "go backwards one layer at a time: the output's dz2 first, then through the second layer to dh, "
        "through tanh to dz1, then through the first layer.",
        "dz2 = (p - y) / n with shape (n, 1); each dense layer: dW = input.T @ dz, db = dz summed over the "
        "rows, d(input) = dz @ W.T; tanh: dz1 = dh * (1 - h**2).",
        "h = np.tanh(X @ W1 + b1); p = sigmoid(h @ W2 + b2); dz2 = (p - y.reshape(-1, 1)) / len(X); "
        "dW2 = h.T @ dz2; db2 = dz2.sum(0); dz1 = (dz2 @ W2.T) * (1 - h**2); dW1 = X.T @ dz1; db1 = dz1.sum(0)."])


# ---------------------------------------------------------------------------
# Notebook 04: training networks
# ---------------------------------------------------------------------------

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


# The training loop (build), evaluate (find-the-bug) and the dropout prediction of notebook 04.
# Both checkers run the learner's function on a small problem of their own: an MLP with dropout
# whose forward calls are recorded (train or eval mode, gradients on or off, batch size), so that
# a wrong mode is named even where the numbers alone could not say why they differ.

_LOOP_EPOCHS, _LOOP_BATCH, _LOOP_TRAIN, _LOOP_VAL = 3, 16, 48, 20


class _Run:
    """What the learner's function did on one checker problem: what it ``returned``, the weights
    ``before`` and ``after``, the forward ``calls`` (training, grad enabled, batch size), the mode
    it arrived in and ``left`` in, and whether it changed its input tensors."""

    def __init__(self, setup, returned, before, after, calls, arrived, left, changed):
        self.setup, self.returned, self.before, self.after = setup, returned, before, after
        self.calls, self.arrived, self.left, self.changed = calls, arrived, left, changed


def _probed_model(seed, train_mode, calls):
    """The checker's model, seeded: 2 -> 16 -> 1 with dropout 0.5, in ``train_mode``; each forward
    call appends ``(training, grad enabled, batch size)`` to ``calls``."""
    import torch

    from helpers import mlp

    torch.manual_seed(seed)
    model = mlp.MLP((2, 16, 1), dropout=0.5)
    model.train(train_mode)

    def record(module, inputs):
        size = len(inputs[0]) if inputs and hasattr(inputs[0], "__len__") else -1
        calls.append((module.training, torch.is_grad_enabled(), size))

    model.register_forward_pre_hook(record)
    return model


def _run_loop(fn, seed, train_mode):
    """``fn(model, loader, optimizer, loss_fn, X_val, y_val, epochs)`` on the loop problem: 48 moons
    points in shuffled batches of 16, 20 validation points, SGD at rate 0.5, 3 epochs."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from helpers import mlp, toy_data

    X, y = toy_data.moons(n=_LOOP_TRAIN + _LOOP_VAL, noise=0.2, seed=seed)
    X_train, y_train = mlp.to_tensors(X[:_LOOP_TRAIN], y[:_LOOP_TRAIN])
    X_val, y_val = mlp.to_tensors(X[_LOOP_TRAIN:], y[_LOOP_TRAIN:])
    kept = (X_val.clone(), y_val.clone())
    calls = []
    with torch.random.fork_rng():  # the learner's own random numbers are left as they were
        model = _probed_model(seed, train_mode, calls)
        loader = DataLoader(TensorDataset(X_train, y_train), batch_size=_LOOP_BATCH, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        before = [p.detach().clone() for p in model.parameters()]
        returned = fn(model, loader, optimizer, torch.nn.BCEWithLogitsLoss(), X_val, y_val, _LOOP_EPOCHS)
    after = [p.detach().clone() for p in model.parameters()]
    changed = not (torch.equal(X_val, kept[0]) and torch.equal(y_val, kept[1]))
    return _Run((seed, train_mode), returned, before, after, calls, train_mode, model.training, changed)


def _reference_loop(model, loader, optimizer, loss_fn, X_val, y_val, epochs, slip=None):
    """The training loop of notebook 04's exercise; ``slip`` makes one known mistake instead."""
    import torch

    from helpers.training import evaluating

    train_losses, val_losses = [], []
    for _ in range(epochs):
        model.train()
        batch_losses = []
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            if slip != "no_zero_grad":
                optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            batch_losses.append(loss.item())
        train_losses.append({"summed": sum(batch_losses), "last_batch": batch_losses[-1]}.get(
            slip, sum(batch_losses) / len(batch_losses)))
        with evaluating(model), torch.no_grad():
            val_losses.append(loss_fn(model(X_val), y_val).item())
            if slip == "full_pass":
                X_train, y_train = loader.dataset.tensors
                train_losses[-1] = loss_fn(model(X_train), y_train).item()
    return train_losses, val_losses


_LOOP_SLIPS = {
    "summed": "added up the batch losses without dividing: train_losses[e] is the mean of epoch e's batch "
              "losses (their sum over their number)",
    "last_batch": "kept only the last batch's loss of each epoch: average all the batch losses of the epoch",
    "full_pass": "measured the training loss again on all the training data after the epoch; here "
                 "train_losses[e] is the mean of the batch losses computed during the epoch",
}


def _as_loss_lists(got):
    """``(train, val)`` as two float arrays, or ``(None, the problem in words)``."""
    if got is None:
        return None, "returned None: did you forget the `return` statement?"
    if isinstance(got, (str, bytes, dict)) or not hasattr(got, "__len__") or len(got) != 2:
        try:
            shown = short(as_array(got))
        except TypeError as exc:
            return None, f"{exc}; expected a pair (train_losses, val_losses)"
        return None, f"returned {shown}, not a pair (train_losses, val_losses)"
    pair = []
    for name, part in zip(("train_losses", "val_losses"), got):
        try:
            arr = as_array(part)
        except TypeError as exc:
            return None, f"{exc} as {name}"
        if not np.isfinite(arr).all():
            return None, f"returned NaN or infinity in {name}: {short(arr)}"
        if arr.shape != (_LOOP_EPOCHS,):
            return None, (f"returned {name} of shape {arr.shape}, expected shape ({_LOOP_EPOCHS},): one number "
                          f"per epoch for {_LOOP_EPOCHS} epochs")
        pair.append(arr)
    return pair, None


def _weights_equal(a, b, tol=1e-4):
    return all(x.shape == y.shape and float((x - y).abs().max()) <= tol for x, y in zip(a, b))


def _mode_problem(run, train_size, val_size):
    """A wrong mode in the recorded forward calls, in words (``None`` if all is well)."""
    if any(training for training, _, size in run.calls if size == val_size):
        return ("measured the validation loss in train mode, so dropout was still switching neurons off "
                "at random: measure inside `with training.evaluating(model), torch.no_grad():`")
    if any(not training for training, _, size in run.calls if size == train_size):
        arrived = "" if run.arrived else " (this model arrived in eval mode)"
        return ("trained on some batches in eval mode, without dropout" + arrived + ": call model.train() at "
                "the start of every epoch; a model.eval() for the measurement stays until you switch back")
    if any(grad for training, grad, size in run.calls if size == val_size and not training):
        return ("measured the validation loss with gradients on: PyTorch built a graph for a backward pass "
                "that never comes. Wrap the measurement in torch.no_grad() too")
    return None


def _compare_loop(got: _Run, expected: _Run):
    if got.changed:
        return "changed its input X_val or y_val; measure on them, but leave them as they are"
    pair, problem = _as_loss_lists(got.returned)
    if problem:
        return problem
    problem = _mode_problem(got, _LOOP_BATCH, _LOOP_VAL)
    if problem:
        return problem
    if _weights_equal(got.after, got.before, tol=0.0):
        return ("left the weights unchanged: after loss.backward(), optimizer.step() must move them "
                "(and loss.backward() fills the gradients step() uses)")
    if not _weights_equal(got.after, expected.after):
        no_zero = _run_loop(lambda *a: _reference_loop(*a, slip="no_zero_grad"), *got.setup)
        if _weights_equal(got.after, no_zero.after):
            return ("trained to other weights than the reference loop: it looks as if you never cleared the "
                    "gradients. PyTorch adds each backward's gradients to .grad, so call "
                    "optimizer.zero_grad() before every loss.backward()")
        return ("trained to other weights than the reference loop (same seed, same batches): one batch, one "
                "forward pass, one zero_grad, one backward and one step, in that order")
    train, val = pair
    expected_train, expected_val = _as_loss_lists(expected.returned)[0]
    same = nearly(atol=1e-5, rtol=1e-4)
    if not same(train, expected_train):
        slips = [(np.array(_run_loop(lambda *a, s=s: _reference_loop(*a, slip=s), *got.setup).returned[0]), words)
                 for s, words in _LOOP_SLIPS.items()]
        return looks_as_if(f"returned train_losses {short(train)}, expected {short(expected_train)}",
                           named_slip(train, expected_train, slips, same))
    if not same(val, expected_val):
        return (f"returned val_losses {short(val)}, expected {short(expected_val)}: after each epoch, the loss "
                "of the model on all of X_val, y_val")
    return None


@checker
def train_loop(fn) -> CheckResult:
    """Checker for notebook 04: ``fn(model, loader, optimizer, loss_fn, X_val, y_val, epochs)`` trains and
    returns ``(train_losses, val_losses)``, one number per epoch: the mean of the epoch's batch losses,
    and the validation loss measured after it in eval mode without gradients.

    Runs ``fn`` on its own small problem (an MLP with dropout, SGD, 3 epochs of 3 batches), once on a
    model that arrives in train mode and once in eval mode, and compares the weights and both
    lists with the reference loop's. Names the slips: no ``zero_grad``, no ``step``, a loss
    summed or taken from the last batch only, train mode during the measurement, eval mode
    during training, gradients on during the measurement.
    """
    def reference(seed, train_mode):
        return _run_loop(_reference_loop, seed, train_mode)

    def learners(seed, train_mode):
        return _run_loop(fn, seed, train_mode)

    learners.__wrapped__ = fn  # the learner's own function, for the time limit (see timing.learner_globals)
    cases = [Case((0, True), reference(0, True), "a model with dropout that arrives in train mode", _compare_loop),
             Case((1, False), reference(1, False), "a hidden model with dropout that arrives in eval mode "
                                                   "(left there by an earlier measurement)", _compare_loop)]
    return run_checks("train_loop", learners if callable(fn) else fn, cases, hint=[
        "each epoch has two parts: training on every batch, then one measurement on the validation "
        "data. Which mode does each part need, and what does each batch step need?",
        "training: every batch needs its gradients cleared, computed and used, in that order; the "
        "epoch's training loss is the mean over its batches. Measuring: no dropout, and no graph.",
        "for _ in range(epochs): model.train(); losses = []; for xb, yb in loader: loss = loss_fn(model(xb), "
        "yb); optimizer.zero_grad(); loss.backward(); optimizer.step(); losses.append(loss.item()). Then "
        "train_losses.append(sum(losses) / len(losses)); with training.evaluating(model), torch.no_grad(): "
        "val_losses.append(loss_fn(model(X_val), y_val).item()). Return (train_losses, val_losses)."])


def _run_evaluate(fn, seed, train_mode):
    """``fn(model, X, y, loss_fn)`` on 40 moons points and a dropout model in ``train_mode``."""
    import torch

    from helpers import mlp, toy_data

    X, y = mlp.to_tensors(*toy_data.moons(n=40, noise=0.3, seed=seed))
    kept = (X.clone(), y.clone())
    calls = []
    with torch.random.fork_rng():
        model = _probed_model(seed, train_mode, calls)
        before = [p.detach().clone() for p in model.parameters()]
        returned = fn(model, X, y, torch.nn.BCEWithLogitsLoss())
    changed = not (torch.equal(X, kept[0]) and torch.equal(y, kept[1]))
    return _Run((seed, train_mode), returned, before, [p.detach().clone() for p in model.parameters()], calls,
                train_mode, model.training, changed)


def _reference_evaluate(model, X, y, loss_fn):
    import torch

    from helpers.training import evaluating

    with evaluating(model), torch.no_grad():
        logits = model(X)
        return loss_fn(logits, y).item(), float(((logits > 0).float() == y).float().mean())


def _compare_evaluate(got: _Run, expected: _Run):
    if got.changed:
        return "changed its input X or y; measure on them, but leave them as they are"
    if got.returned is None:
        return "returned None: did you forget the `return` statement?"
    try:
        values = as_array(list(got.returned) if isinstance(got.returned, tuple) else got.returned)
    except TypeError as exc:
        return f"{exc}; expected a pair (loss, accuracy)"
    if values.shape != (2,):
        return f"returned {short(got.returned)} (shape {values.shape}), expected a pair of numbers (loss, accuracy)"
    if not np.isfinite(values).all():
        return f"returned NaN or infinity: {short(values)}"
    if any(training for training, _, _ in got.calls):
        return ("measured in train mode, so dropout switched neurons off at random and the numbers change "
                "from call to call: measure in eval mode")
    if any(grad for _, grad, _ in got.calls):
        return ("measured with gradients on: PyTorch built a graph for a backward pass that never comes "
                "(memory and time wasted at every evaluation). Add torch.no_grad()")
    if not _weights_equal(got.after, got.before, tol=0.0):
        return "changed the model's weights: an evaluation only measures"
    if got.left != got.arrived:
        said = {True: "train", False: "eval"}
        return (f"left the model in {said[got.left]} mode, but it arrived in {said[got.arrived]} mode: put back "
                "the mode it was in, whatever that was (training.evaluating(model) does)")
    problem = compare_arrays(values, np.array(expected.returned), atol=1e-5, rtol=1e-4)
    return f"{problem} for (loss, accuracy)" if problem else None


@checker
def evaluate(fn) -> CheckResult:
    """Checker for notebook 04 (find-the-bug): ``fn(model, X, y, loss_fn)`` returns ``(loss, accuracy)``
    of ``model`` on all of ``X, y``, measured in eval mode without gradients, and leaves the model in
    the mode it arrived in. Tried on a dropout model that arrives in train mode, then in eval mode."""
    def learners(seed, train_mode):
        return _run_evaluate(fn, seed, train_mode)

    learners.__wrapped__ = fn
    cases = [Case((2, True), _run_evaluate(_reference_evaluate, 2, True),
                  "a model with dropout that arrives in train mode", _compare_evaluate),
             Case((3, False), _run_evaluate(_reference_evaluate, 3, False),
                  "a model with dropout that arrives in eval mode", _compare_evaluate)]
    return run_checks("evaluate", learners if callable(fn) else fn, cases, hint=[
        "the given code has two bugs: one about gradients, one about the mode it leaves the model in. "
        "Which mode was the model in before the call?",
        "model.train() at the end switches a model that arrived in eval mode into train mode. Put back "
        "the mode it had, and stop autograd from recording the measurement.",
        "with training.evaluating(model), torch.no_grad(): logits = model(X); return loss_fn(logits, "
        "y).item(), mlp.accuracy(logits, y)"])


@checker
def predict_dropout_mean(fn) -> CheckResult:
    """Checker for notebook 04 (predict-then-run): the mean of ``nn.Dropout(0.5)`` in train mode applied
    to a tensor of ones."""
    return check_prediction(
        "predict_dropout_mean", fn, 1.0, rel=0.05,
        why="Dropout zeroes each value with probability p = 0.5 and multiplies the survivors by "
            "1 / (1 - p) = 2, so the mean stays 1. In eval mode dropout does nothing, so the next layer "
            "sees values of the same average size in both modes.",
        hint=["in eval mode dropout does nothing. Would the next layer, trained on inputs with half the "
              "values set to 0, still work then, unless something else changes in train mode?",
              "half the values become 0; what must happen to the other half for the mean to stay put?"])


# ---------------------------------------------------------------------------
