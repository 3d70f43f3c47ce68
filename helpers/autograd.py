"""A scalar automatic-differentiation engine (introduced in notebook 03_backpropagation).

Each ``Value`` holds one number (``data``), the gradient of the final output with respect
to it (``grad``), and how it was made: the ``Value``s it came from and the operation. Calling
``backward()`` on the final output visits the graph in reverse topological order and applies
the chain rule at every node: each node passes ``local derivative x its own grad`` back to
its inputs. This is the idea behind PyTorch's autograd, one number at a time. The design
follows Andrej Karpathy's micrograd.
"""

import math
import numbers


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
        """Fill ``grad`` of every node in this graph with ``d self / d node`` (earlier grads are reset)."""
        order = topological_order(self)
        for node in order:
            node.grad = 0.0
        self.grad = 1.0  # d self / d self
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
    "grads": {id(node): grad}}`` after ``k`` nodes have passed their gradient back. Leaves the
    graph's grads as ``root.backward()`` would.
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
