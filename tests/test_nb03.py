"""Notebook 03: the Value engine against torch.autograd, its figures, explorer and checkers."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from helpers import autograd, checks, nn_numpy, plots, toy_data, widgets
from helpers import gradient_descent as gd
from helpers.autograd import Value
from checker_cases import checker_tests, forever, stub


@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 12))
def test_random_expressions_match_torch(seed, n_leaves, n_ops):
    rng = np.random.default_rng(seed)
    program = autograd.random_program(rng, n_leaves, n_ops)
    inputs = rng.normal(size=n_leaves) * 2
    ours = [Value(float(v)) for v in inputs]
    out = autograd.run_program(program, ours)
    out.backward()
    theirs = [torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in inputs]
    out_t = autograd.run_program(program, theirs)
    out_t.backward()
    assert out.data == pytest.approx(out_t.item(), rel=1e-12, abs=1e-12)
    for v, t in zip(ours, theirs):
        assert v.grad == pytest.approx(t.grad.item() if t.grad is not None else 0.0, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("op, torch_op", [
    (lambda a: a.exp(), torch.exp), (lambda a: a.log(), torch.log), (lambda a: a.tanh(), torch.tanh),
    (lambda a: a.relu(), torch.relu), (lambda a: a.sigmoid(), torch.sigmoid), (lambda a: a ** 3, lambda t: t ** 3),
    (lambda a: a ** -0.5, lambda t: t ** -0.5), (lambda a: 2 / a, lambda t: 2 / t), (lambda a: 1 - a, lambda t: 1 - t),
    (lambda a: -a * 4 + 1, lambda t: -t * 4 + 1),
])
@given(x=st.floats(0.05, 20))
def test_each_operation_matches_torch(op, torch_op, x):
    v = Value(x)
    out = op(v)
    out.backward()
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    torch_op(t).backward()
    assert out.data == pytest.approx(torch_op(torch.tensor(x, dtype=torch.float64)).item(), rel=1e-12)
    assert v.grad == pytest.approx(t.grad.item(), rel=1e-9, abs=1e-12)


def test_leaves_accumulate_across_backward_calls_as_in_pytorch():
    a, b = Value(3.0), Value(-2.0)
    c = (a * a + a) * b
    c.backward()
    c.backward()  # the same graph twice: PyTorch with retain_graph=True
    t, u = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (3.0, -2.0))
    ct = (t * t + t) * u
    ct.backward(retain_graph=True)
    ct.backward()
    assert (a.grad, b.grad) == (t.grad.item(), u.grad.item()) == (-28.0, 24.0)
    c2 = (a * a + a) * b  # a second graph from the same leaves adds once more
    c2.backward()
    assert (a.grad, b.grad) == (-42.0, 36.0)


def test_zero_grad_clears_the_parameters_and_a_leaf_root_accumulates():
    model = autograd.MLP((2, 3, 1), seed=0)
    autograd.bce_loss(model, [[1.0, -1.0]], [1]).backward()
    assert any(p.grad != 0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0 for p in model.parameters())
    leaf = Value(5.0)
    leaf.backward()
    leaf.backward()
    assert leaf.grad == 2.0


def test_sigmoid_never_overflows():
    assert Value(-1000.0).sigmoid().data == 0.0 and Value(1000.0).sigmoid().data == 1.0


@pytest.mark.parametrize("make, error, phrase", [
    (lambda: Value("a"), TypeError, "one real number"),
    (lambda: Value(True), TypeError, "one real number"),
    (lambda: Value(Value(1.0)), TypeError, "one real number"),
    (lambda: Value(-1.0).log(), ValueError, "positive"),
    (lambda: Value(1.0) / Value(0.0), ZeroDivisionError, "0"),
    (lambda: Value(2.0) ** Value(2.0), TypeError, "plain number"),
    (lambda: Value(0.0) ** -1, ValueError, "no finite derivative"),
])
def test_bad_input_gets_a_clear_message(make, error, phrase):
    with pytest.raises(error, match=phrase):
        make()


def test_topological_order_puts_inputs_first():
    o = plots.neuron_expression()
    order = autograd.topological_order(o)
    position = {id(n): i for i, n in enumerate(order)}
    assert order[-1] is o and len(order) == 10
    for node in order:
        assert all(position[id(c)] < position[id(node)] for c in node._prev)


def test_backward_steps_end_where_backward_ends():
    o1, o2 = plots.neuron_expression(), plots.neuron_expression()
    steps = autograd.backward_steps(o1)
    o2.backward()
    final = [n.grad for n in autograd.topological_order(o2)]
    assert [steps[-1]["grads"][id(n)] for n in autograd.topological_order(o1)] == final
    assert steps[0]["node"] is None and len(steps) == 6  # 5 operations pass gradients back


@pytest.mark.parametrize("step", [-3, 0, 2, 5, 99])
def test_backward_step_figure_at_any_step(step):
    fig = plots.make_backward_step(step)
    assert "Backward pass, step" in fig.axes[0].get_title()
    plt.close(fig)


def test_step_explorer_changes_with_the_slider_and_the_graph():
    explorer = widgets.Explorer(plots.make_backward_step,
                                {"step": widgets.slider(0, 0, 5),
                                 "example": widgets.choice("neuron", list(plots.BACKWARD_EXAMPLES))})
    seen = {explorer.png}
    for k in range(1, 6):
        explorer.controls["step"].value = k
        seen.add(explorer.png)
    explorer.controls["example"].value = "shared"
    seen.add(explorer.png)
    assert len(seen) == 7


@pytest.mark.parametrize("example, unknown", [("neuron", 9), ("shared", 4)])
def test_unknown_grads_are_drawn_as_question_marks(example, unknown):
    fig = plots.make_backward_step(0, example)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sum("grad ?" in t for t in texts) == unknown and sum("grad 1.0000" in t for t in texts) == 1
    plt.close(fig)


def test_each_step_shows_its_arithmetic():
    """Step 2 of the shared graph: d (+) passes -6 to a and b; step 3: c (x) adds 3 to a (-6 -> -3)."""
    def arithmetic(step):
        fig = plots.make_backward_step(step, "shared")
        text = fig.axes[1].texts[0].get_text()
        plt.close(fig)
        return text

    assert "a.grad += 1 × d.grad = 1 × -6 = -6" in arithmetic(2)
    assert "a.grad += b.data × c.grad = -3 × -1 = 3" in arithmetic(3) and "(a.grad: -6 → -3)" in arithmetic(3)


def test_the_shared_graph_is_not_a_tree_and_sums_both_paths():
    f = autograd.shared_expression()
    a, b = autograd.topological_order(f)[:2]
    assert sum(a in node._prev for node in autograd.topological_order(f)) == 2
    f.backward()
    assert (a.grad, b.grad) == (-3.0, -8.0)  # 2ab + b^2 and a^2 + 2ab at a = 2, b = -3


@given(st.integers(0, 2**32 - 1))
def test_local_derivatives_are_what_each_step_adds(seed):
    """Summed over a step, local derivative x the node's grad is what the inputs' grads grew by."""
    rng = np.random.default_rng(seed)
    out = autograd.run_program(autograd.random_program(rng, 3, 6), [Value(float(v)) for v in rng.normal(size=3)])
    steps = autograd.backward_steps(out)
    for before, after in zip(steps, steps[1:]):
        node, grown = after["node"], {}
        for child, local, words in autograd.local_derivatives(node):
            assert words
            grown[id(child)] = grown.get(id(child), 0.0) + local * after["grads"][id(node)]
        for key, added in grown.items():
            assert after["grads"][key] - before["grads"][key] == pytest.approx(added, rel=1e-9, abs=1e-12)


# --- the network of Values, the cost measurement, matrix backpropagation ---------------

def test_mlp_uses_notebook_02s_layout_and_its_loss():
    X, y = toy_data.xor(n=20, seed=1)
    model = autograd.MLP((2, 3, 1), seed=3)
    theta = np.array([p.data for p in model.parameters()])
    W1, b1, W2, b2 = theta[:6].reshape(2, 3), theta[6:9], theta[9:12].reshape(3, 1), theta[12:13]
    probs = nn_numpy.two_layer_forward(X, W1, b1, W2, b2, activation=nn_numpy.tanh)[:, 0]
    assert autograd.bce_loss(model, X, y).data == pytest.approx(gd.binary_cross_entropy(probs, y), rel=1e-9)
    assert len(theta) == nn_numpy.count_parameters([2, 3, 1])


@pytest.mark.parametrize("sizes", [(2, 3, 1), (2, 4, 3, 1)])
def test_backprop_and_numerical_gradients_match_torch(sizes):
    X, y = toy_data.xor(n=6, seed=2)
    model = autograd.MLP(sizes, seed=0)
    exact = autograd.backprop_gradient(model, X, y)
    params = [torch.tensor(p.data, dtype=torch.float64, requires_grad=True) for p in model.parameters()]
    flat, h = iter(params), torch.tensor(X, dtype=torch.float64)
    for k, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = torch.stack([torch.stack([next(flat) for _ in range(d_out)]) for _ in range(d_in)])
        b = torch.stack([next(flat) for _ in range(d_out)])
        h = h @ W + b if k == len(sizes) - 2 else torch.tanh(h @ W + b)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(h[:, 0], torch.tensor(y, dtype=torch.float64))
    loss.backward()
    assert exact == pytest.approx([p.grad.item() for p in params], rel=1e-9, abs=1e-12)
    assert autograd.numerical_gradient(model, X, y) == pytest.approx(exact, abs=1e-7)


def test_gradient_costs_reports_every_size_and_the_same_gradient():
    """The structure and the gradients only: times are measured in the notebook, never asserted in a test."""
    costs = autograd.gradient_costs(hidden_sizes=(1, 2), n_points=2, repeats=1)
    assert costs["params"] == [5, 9]
    assert all(len(costs[key]) == 2 and min(costs[key]) >= 0 for key in costs)
    assert max(costs["largest_gap"]) < 1e-6
    fig = plots.make_gradient_costs(costs)
    assert "forward pass" in fig.axes[0].get_ylabel()
    plt.close(fig)


@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 4), st.integers(1, 5))
def test_two_layer_backward_matches_torch(seed, n, d, h):
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(n, d)), (rng.random(n) > 0.5).astype(float)
    W1, b1, W2, b2 = rng.normal(size=(d, h)), rng.normal(size=h), rng.normal(size=(h, 1)), rng.normal(size=1)
    params = [torch.tensor(a, requires_grad=True) for a in (W1, b1, W2, b2)]
    logit = (torch.tanh(torch.tensor(X) @ params[0] + params[1]) @ params[2] + params[3])[:, 0]
    torch.nn.functional.binary_cross_entropy_with_logits(logit, torch.tensor(y)).backward()
    for ours, theirs in zip(autograd.two_layer_backward(X, y, W1, b1, W2, b2), params):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs.grad.numpy(), atol=1e-12, rtol=1e-9)


# --- checkers -------------------------------------------------------------

RIGHT = []
BROKEN = []


# --- the engine exercise: the notebook's own solution, and the usual ways of getting it wrong ----

def _engine_source():
    import nbformat

    from helpers.paths import NOTEBOOKS_DIR

    nb = nbformat.read(NOTEBOOKS_DIR / "03_backpropagation.ipynb", as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "code" and c.source.startswith("class Value"))


def _engine(*replacements, stripped=False):
    """The notebook's Value class, with each ``(old, new)`` text replaced (each must be there)."""
    from helpers.student import strip_solution

    source = strip_solution(_engine_source()) if stripped else _engine_source()
    for old, new in replacements:
        assert old in source, old
        source = source.replace(old, new, 1)
    namespace = {"math": math, "__name__": "learner"}
    exec(compile(source, "<learner>", "exec"), namespace)
    return namespace["Value"]


OVERWRITES = _engine(("self.grad += other.data * out.grad", "self.grad = other.data * out.grad"),
                     ("other.grad += self.data * out.grad", "other.grad = self.data * out.grad"))
RESETS_LEAVES = _engine(("            if node._prev:\n                node.grad = 0.0", "            node.grad = 0.0"))
KEEPS_INTERIOR = _engine(("            if node._prev:\n                node.grad = 0.0", "            pass"))
LEAVES_FIRST = _engine(("for node in reversed(order):", "for node in order:"))
NO_RETURN = _engine(("        return out\n        ### END SOLUTION", "        ### END SOLUTION"))
WRONG_TANH = _engine(("self.grad += (1 - out.data ** 2) * out.grad", "self.grad += (1 - self.data ** 2) * out.grad"))
WRONG_POWER = _engine(("self.grad += k * self.data ** (k - 1) * out.grad", "self.grad += k * self.data * out.grad"))
STUDENT = _engine(stripped=True)


def _train_xor(mistake=None):
    def train(steps=12, learning_rate=1.0):
        X, y = toy_data.xor(n=12, noise=0.25, seed=0)
        model = autograd.MLP((2, 3, 1), seed=0)
        losses = []
        for _ in range(steps):
            loss = autograd.bce_loss(model, X, y)
            if mistake != "never":
                model.zero_grad()
            loss.backward()
            if mistake == "late":
                model.zero_grad()
            for p in model.parameters():
                p.data -= learning_rate * p.grad
            losses.append(loss.data)
        return losses[1:] if mistake == "short" else losses
    return train


def _two_layer(mistake=None):
    def backward(X, y, W1, b1, W2, b2):
        h = np.tanh(X @ W1 + b1)
        p = nn_numpy.sigmoid(h @ W2 + b2)
        dz2 = (y.reshape(-1, 1) - p) if mistake == "y - p" else (p - y.reshape(-1, 1))
        dz2 = dz2 if mistake == "sum" else dz2 / len(X)
        dh = dz2 @ W2.T
        dz1 = dh if mistake == "no tanh" else dh * (1 - h ** 2)
        grads = [X.T @ dz1, dz1.sum(0), h.T @ dz2, dz2.sum(0)]
        if mistake == "transposed":
            grads[0] = grads[0].T
        return grads[:3] if mistake == "three" else grads
    return backward


def _two_layer_float32(*args):
    return [g.astype(np.float32) for g in autograd.two_layer_backward(*(np.asarray(a, np.float32) for a in args))]


RIGHT += [
    (checks.value_engine, Value),                    # the reference engine
    (checks.value_engine, _engine()),                # the notebook's solution
    (checks.predict_used_twice, lambda: -6),
    (checks.predict_grad_after_three_steps, lambda: 4.5),
    (checks.train_xor, _train_xor()),
    (checks.two_layer_backward, autograd.two_layer_backward),
    (checks.two_layer_backward, _two_layer()),
    (checks.two_layer_backward, _two_layer_float32),
    (checks.two_layer_backward, lambda *a: [torch.tensor(g) for g in autograd.two_layer_backward(*a)]),
    (checks.two_layer_backward, lambda *a: [g.tolist() for g in autograd.two_layer_backward(*a)]),
    (checks.two_layer_backward, lambda *a: [g.squeeze() for g in autograd.two_layer_backward(*a)]),
]

BROKEN += [
    (checks.value_engine, OVERWRITES, "added (+=) rather than set (=)"),
    (checks.value_engine, RESETS_LEAVES, "The leaves accumulate"),
    (checks.value_engine, KEEPS_INTERIOR, "The nodes in between belong to one pass"),
    (checks.value_engine, LEAVES_FIRST, "reverse topological order"),
    (checks.value_engine, NO_RETURN, "forget to return `out`"),
    (checks.value_engine, WRONG_TANH, "use the output's data"),
    (checks.value_engine, WRONG_POWER, "k a^(k-1)"),
    (checks.value_engine, STUDENT, "not implemented yet"),
    (checks.value_engine, lambda x: x, "not a number wrapped in a Value"),   # plain floats
    (checks.value_engine, forever, "did not finish"),
    (checks.predict_used_twice, lambda: -3, "the answer is -6"),
    (checks.predict_grad_after_three_steps, lambda: 0.88, "the answer is 4.48"),
    (checks.predict_grad_after_three_steps, lambda: "4.48", "the text '4.48', not a number"),
    (checks.train_xor, _train_xor("never"), "never clear the gradients"),
    (checks.train_xor, _train_xor("late"), "still give what the broken code gives"),
    (checks.train_xor, _train_xor("short"), "shape"),
    (checks.train_xor, stub, "not implemented yet"),
    (checks.two_layer_backward, _two_layer("sum"), "summed the loss"),
    (checks.two_layer_backward, _two_layer("no tanh"), "left out tanh's derivative"),
    (checks.two_layer_backward, _two_layer("y - p"), "used y - p"),
    (checks.two_layer_backward, _two_layer("transposed"), "dW1 of shape (3, 2)"),
    (checks.two_layer_backward, _two_layer("three"), "four arrays"),
    (checks.two_layer_backward, lambda *a: autograd.two_layer_backward(*a)[0], "not a list of arrays"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)
