"""A scalar automatic-differentiation engine (introduced in notebook 03_backpropagation).

Each ``Value`` holds one number (``data``), the gradient of the final output with respect
to it (``grad``), and how it was made: the ``Value``s it came from and the operation. Calling
``backward()`` on the final output visits the graph in reverse topological order and applies
the chain rule at every node: each node *adds* ``local derivative x its own grad`` to its
inputs' grads. This is the idea behind PyTorch's autograd, one number at a time. The design
follows Andrej Karpathy's micrograd.

As in PyTorch, the leaves of a graph (the inputs and parameters) *accumulate*: a second
``backward()`` adds to their ``grad``, so a training loop clears them first
(``MLP.zero_grad()``, PyTorch's ``optimizer.zero_grad()``). The grads of the nodes in between
belong to one pass and start from 0 each time.

Notebook 03 also uses: ``MLP``, a small network made of ``Value``s (02's XOR network),
``gradient_costs`` (the time of a numerical gradient against backpropagation as the
parameter count grows), and ``two_layer_backward`` (backpropagation through 01's NumPy
network with matrices).
"""

import gc
import math
import numbers
import time

import numpy as np


class Value:
    """One number in a computation graph, with the gradient ``d output / d self`` after ``backward()``."""

    def __init__(self, data, children=(), op: str = "", label: str = ""):
        if isinstance(data, Value) or isinstance(data, bool) or not isinstance(data, numbers.Real):
            raise TypeError(f"Value holds one real number, got {data!r} of type {type(data).__name__}")
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None  # how to pass this node's grad back to its children
        self._prev = tuple(children)
        self._op = op
        self.label = label

    def __repr__(self):
        name = f"{self.label}: " if self.label else ""
        return f"Value({name}data={self.data:.4g}, grad={self.grad:.4g})"

    # --- building the graph -----------------------------------------------
    @staticmethod
    def _lift(other):
        return other if isinstance(other, Value) else Value(other)

    def __add__(self, other):
        other = self._lift(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():  # d(a+b)/da = 1, d(a+b)/db = 1
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = self._lift(other)
        out = Value(self.data * other.data, (self, other), "×")

        def _backward():  # d(ab)/da = b, d(ab)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __pow__(self, exponent):
        if not isinstance(exponent, numbers.Real) or isinstance(exponent, bool):
            raise TypeError("Value ** k needs a plain number k (a Value exponent is not supported)")
        if self.data == 0 and exponent < 1:
            raise ValueError(f"0 ** {exponent} has no finite derivative")
        out = Value(self.data ** exponent, (self,), f"**{exponent:g}")

        def _backward():  # d(a^k)/da = k a^(k-1)
            self.grad += exponent * self.data ** (exponent - 1) * out.grad
        out._backward = _backward
        return out

    def exp(self):
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():  # d(e^a)/da = e^a
            self.grad += out.data * out.grad
        out._backward = _backward
        return out

    def log(self):
        if self.data <= 0:
            raise ValueError(f"log needs a positive number, got {self.data:g}")
        out = Value(math.log(self.data), (self,), "log")

        def _backward():  # d(ln a)/da = 1/a
            self.grad += out.grad / self.data
        out._backward = _backward
        return out

    def tanh(self):
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():  # d(tanh a)/da = 1 - tanh(a)^2
            self.grad += (1 - out.data ** 2) * out.grad
        out._backward = _backward
        return out

    def relu(self):
        out = Value(max(0.0, self.data), (self,), "ReLU")

        def _backward():  # 1 where a > 0, else 0
            self.grad += (self.data > 0) * out.grad
        out._backward = _backward
        return out

    def sigmoid(self):
        s = 1 / (1 + math.exp(-self.data)) if self.data >= 0 else math.exp(self.data) / (1 + math.exp(self.data))
        out = Value(s, (self,), "sigmoid")

        def _backward():  # d(sigma)/da = sigma (1 - sigma)
            self.grad += out.data * (1 - out.data) * out.grad
        out._backward = _backward
        return out

    # the rest is built from the operations above
    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-self._lift(other))

    def __truediv__(self, other):
        other = self._lift(other)
        if other.data == 0:
            raise ZeroDivisionError("division by a Value that is 0")
        return self * other ** -1

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def __rsub__(self, other):
        return self._lift(other) - self

    def __rtruediv__(self, other):
        return self._lift(other) / self

    # --- the backward pass ------------------------------------------------
    def backward(self):
        """Add ``d self / d leaf`` to the ``grad`` of every leaf of this graph (they accumulate, as
        in PyTorch); the nodes in between get this pass's ``d self / d node``."""
        order = topological_order(self)
        for node in order:
            if node._prev:
                node.grad = 0.0  # in-between nodes: this pass only (leaves keep what they had)
        self.grad += 1.0  # d self / d self (0 before, unless self is a leaf)
        for node in reversed(order):
            node._backward()


def topological_order(root: Value) -> list[Value]:
    """Every node of ``root``'s graph, each one after all the nodes it was computed from."""
    order, seen = [], set()

    def visit(node):
        if id(node) not in seen:
            seen.add(id(node))
            for child in node._prev:
                visit(child)
            order.append(node)

    visit(root)
    return order


def backward_steps(root: Value) -> list[dict]:
    """The backward pass one node at a time, for stepping through it (notebook 03's explorer).

    Returns a list whose entry ``k`` is ``{"node": the node processed at step k (None for step 0),
    "grads": {id(node): grad}}`` after ``k`` nodes have passed their gradient back. Starts from
    grads of 0 (a fresh graph) and leaves them as ``root.backward()`` would.
    """
    order = topological_order(root)
    for node in order:
        node.grad = 0.0
    root.grad = 1.0
    steps = [{"node": None, "grads": {id(n): n.grad for n in order}}]
    for node in reversed(order):
        if node._prev:  # leaves have nothing to pass back
            node._backward()
            steps.append({"node": node, "grads": {id(n): n.grad for n in order}})
    return steps


def neuron_expression() -> Value:
    """The running example of notebook 03: ``o = tanh(x1 w1 + x2 w2 + b)``, built from labelled Values."""
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    x1w1 = x1 * w1
    x1w1.label = "x1w1"
    x2w2 = x2 * w2
    x2w2.label = "x2w2"
    s = x1w1 + x2w2
    s.label = "sum"
    n = s + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return o


def shared_expression() -> Value:
    """Notebook 03's graph that is not a tree: ``f = (a b)(a + b)`` with ``a = 2, b = -3``, so
    ``a`` and ``b`` are each used twice and receive gradient along two paths."""
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b
    c.label = "c"
    d = a + b
    d.label = "d"
    f = c * d
    f.label = "f"
    return f


def local_derivatives(node: Value) -> list[tuple[Value, float, str]]:
    """What ``node`` passes back, input by input: ``(input, d node / d input, the rule in words)``.
    An input used twice by one operation (``a * a``) appears twice. For the step-through figure."""
    name = lambda v: v.label or f"{v.data:g}"  # noqa: E731
    op, kids = node._op, node._prev
    if op == "+":
        return [(k, 1.0, "1") for k in kids]
    if op == "×":
        a, b = kids
        return [(a, b.data, f"{name(b)}.data"), (b, a.data, f"{name(a)}.data")]
    (a,) = kids
    if op.startswith("**"):
        k = float(op[2:])
        return [(a, k * a.data ** (k - 1), f"{k:g}·{name(a)}^{k - 1:g}")]
    rules = {"exp": lambda: (node.data, f"e^{name(a)}"), "log": lambda: (1 / a.data, f"1/{name(a)}"),
             "tanh": lambda: (1 - node.data ** 2, f"1 − {name(node)}²"),
             "ReLU": lambda: (float(a.data > 0), f"[{name(a)} > 0]"),
             "sigmoid": lambda: (node.data * (1 - node.data), f"{name(node)}(1 − {name(node)})")}
    derivative, words = rules[op]()  # only this operation's rule: log's 1/a exists only where a != 0
    return [(a, derivative, words)]


# --- a network made of Values ---------------------------------------------------------

class MLP:
    """A fully connected network of ``Value``s: tanh hidden layers and one linear output, the
    logit (sigmoid of it is the probability of class 1). ``sizes=(2, 3, 1)`` is notebook 02's XOR
    network. Weights are drawn from ``N(0, 0.5^2)`` with ``seed``, or given as ``weights``, one flat
    vector in 02's layout: layer by layer, ``W`` (d_in, d_out) row by row, then ``b``."""

    def __init__(self, sizes=(2, 3, 1), seed: int = 0, weights=None):
        if weights is None:
            n = sum(d_in * d_out + d_out for d_in, d_out in zip(sizes[:-1], sizes[1:]))
            weights = np.random.default_rng(seed).normal(size=n) * 0.5
        flat = iter(float(w) for w in weights)
        self.layers = []  # (W as d_in lists of d_out Values, b as d_out Values)
        for d_in, d_out in zip(sizes[:-1], sizes[1:]):
            W = [[Value(next(flat)) for _ in range(d_out)] for _ in range(d_in)]
            self.layers.append((W, [Value(next(flat)) for _ in range(d_out)]))

    def __call__(self, x) -> Value:
        """The logit for one input ``x`` (a sequence of ``d_in`` numbers)."""
        h = [float(v) for v in x]
        for k, (W, b) in enumerate(self.layers):
            z = []
            for j in range(len(b)):
                total = b[j]
                for i, h_i in enumerate(h):
                    total = total + W[i][j] * h_i
                z.append(total)
            h = z if k == len(self.layers) - 1 else [v.tanh() for v in z]
        return h[0]

    def parameters(self) -> list[Value]:
        """Every weight and bias, in the layout of ``weights``."""
        return [w for W, b in self.layers for w in [*(v for row in W for v in row), *b]]

    def zero_grad(self) -> None:
        """Clear the gradients ``backward()`` has added to the parameters (PyTorch: ``zero_grad()``)."""
        for p in self.parameters():
            p.grad = 0.0


def bce_loss(model: MLP, X, y) -> Value:
    """The mean binary cross-entropy of ``model`` on points ``X`` (n, d) with labels ``y`` in {0, 1}."""
    total = Value(0.0)
    for x, label in zip(X, y):
        p = model(x).sigmoid()
        total = total + (-p.log() if label == 1 else -(1 - p).log())
    return total * (1 / len(y))


def backprop_gradient(model: MLP, X, y) -> list[float]:
    """d loss / d parameter for every parameter, by one backward pass."""
    loss = bce_loss(model, X, y)
    model.zero_grad()
    loss.backward()
    return [p.grad for p in model.parameters()]


def numerical_gradient(model: MLP, X, y, eps: float = 1e-6, loss=bce_loss) -> list[float]:
    """The same gradient by central differences (notebook 02): two evaluations of ``loss`` per parameter."""
    grads = []
    for p in model.parameters():
        old = p.data
        p.data = old + eps
        up = loss(model, X, y).data
        p.data = old - eps
        down = loss(model, X, y).data
        p.data = old
        grads.append((up - down) / (2 * eps))
    return grads


def gradient_costs(hidden_sizes=(1, 2, 4, 8, 16, 32), n_points: int = 4, repeats: int = 5) -> dict:
    """Time one loss evaluation (the forward pass), one gradient by backpropagation, and one by
    numerical differences, for 2-h-1 networks of ``Value``s on ``n_points`` XOR points (medians of
    ``repeats``). Returns lists by size: ``params``, ``forward_s``, ``backprop_s``,
    ``numerical_s`` and ``largest_gap`` (the largest difference between the two gradients).

    The times are this process's CPU time (other programs running do not count) spent computing:
    Python's garbage collector is paused while a graph is built, and the old graphs are cleared
    between calls, outside the time (it would otherwise strike at random moments).
    """
    from helpers import toy_data

    X, y = toy_data.xor(n=n_points, seed=0)
    spent = [0.0]

    def timed(fn, *args):
        gc.collect(0)  # the graph of the last call (dropped by now: still in generation 0), outside the time
        start = time.process_time()
        result = fn(*args)
        spent[0] += time.process_time() - start
        return result

    def median_time(fn):
        took = []
        for _ in range(repeats):
            spent[0] = 0.0
            result = fn()
            took.append(spent[0])
        return float(np.median(took)), result

    out = {key: [] for key in ("params", "forward_s", "backprop_s", "numerical_s", "largest_gap")}
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for h in hidden_sizes:
            model = MLP((2, h, 1), seed=h)
            forward, _ = median_time(lambda: timed(bce_loss, model, X, y))
            backprop, exact = median_time(lambda: timed(backprop_gradient, model, X, y))
            numerical, estimate = median_time(
                lambda: numerical_gradient(model, X, y, loss=lambda *a: timed(bce_loss, *a)))
            out["params"].append(len(model.parameters()))
            out["forward_s"].append(forward)
            out["backprop_s"].append(backprop)
            out["numerical_s"].append(numerical)
            out["largest_gap"].append(float(np.max(np.abs(np.subtract(exact, estimate)))))
    finally:
        gc.collect()
        if collecting:
            gc.enable()
    return out


# --- backpropagation with matrices ------------------------------------------------------

def dense_backward(X, W, grad_out):
    """Backward of one layer ``Y = X @ W + b``: given ``grad_out = dL/dY`` (n, d_out), return
    ``(dL/dW = X.T @ grad_out, dL/db = grad_out summed over rows, dL/dX = grad_out @ W.T)``."""
    return X.T @ grad_out, grad_out.sum(axis=0), grad_out @ W.T


def two_layer_backward(X, y, W1, b1, W2, b2):
    """Gradients of the mean binary cross-entropy of notebook 01's two-layer network with a tanh
    hidden layer, ``p = sigmoid(tanh(X @ W1 + b1) @ W2 + b2)``, for labels ``y`` (n,) in {0, 1}.
    Returns ``(dW1, db1, dW2, db2)``, each shaped like its parameter."""
    from helpers import nn_numpy

    X = np.asarray(X, dtype=float)
    h = np.tanh(X @ W1 + b1)                                  # (n, hidden)
    p = nn_numpy.sigmoid(h @ W2 + b2)                         # (n, 1)
    dz2 = (p - np.asarray(y, dtype=float).reshape(-1, 1)) / len(X)  # sigmoid + BCE: p - y
    dW2, db2, dh = dense_backward(h, W2, dz2)
    dz1 = dh * (1 - h ** 2)                                   # tanh' = 1 - tanh^2
    dW1, db1, _ = dense_backward(X, W1, dz1)
    return dW1, db1, dW2, db2


# --- random expressions, to test the engine against PyTorch ---------------------------

OPS = ("add", "mul", "sub", "div", "tanh", "relu", "exp", "square", "sigmoid")


def random_program(rng, n_leaves: int = 3, n_ops: int = 6) -> list[tuple]:
    """A random straight-line program over ``n_leaves`` inputs: ``[(op, i, j), ...]`` where ``i, j``
    index earlier results (inputs first). Runs identically on ``Value``s and on PyTorch tensors."""
    program = []
    for k in range(n_ops):
        available = n_leaves + k
        op = OPS[int(rng.integers(len(OPS)))]
        program.append((op, int(rng.integers(available)), int(rng.integers(available))))
    return program


def run_program(program, inputs):
    """Evaluate ``program`` on ``inputs`` (Values or tensors); returns the sum of all results."""
    values = list(inputs)
    for op, i, j in program:
        a, b = values[i], values[j]
        if op == "add":
            out = a + b
        elif op == "mul":
            out = a * b
        elif op == "sub":
            out = a - b
        elif op == "div":
            out = a / (b * b + 1.0)  # the denominator stays >= 1: never divides by 0
        elif op == "tanh":
            out = a.tanh()
        elif op == "relu":
            out = a.relu()
        elif op == "exp":
            out = (a.tanh()).exp()  # bounded: exp never overflows
        elif op == "square":
            out = a * a
        else:
            out = a.sigmoid()
        values.append(out)
    total = values[len(inputs)]
    for v in values[len(inputs) + 1:]:
        total = total + v
    return total
