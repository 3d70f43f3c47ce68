"""Notebook 03: the Value engine against torch.autograd, its figures, explorer and checkers."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from helpers import autograd, checks, plots, widgets
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


def test_gradients_accumulate_and_backward_can_run_twice():
    a = Value(3.0)
    c = a * a + a
    c.backward()
    c.backward()
    assert a.grad == 7.0


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


def test_step_explorer_changes_with_the_slider():
    explorer = widgets.Explorer(plots.make_backward_step, {"step": widgets.slider(0, 0, 5)})
    seen = {explorer.png}
    for k in range(1, 6):
        explorer.controls["step"].value = k
        seen.add(explorer.png)
    assert len(seen) == 6


def test_unknown_grads_are_drawn_as_question_marks():
    fig = plots.make_backward_step(0)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sum("grad ?" in t for t in texts) == 9 and sum("grad 1.0000" in t for t in texts) == 1
    plt.close(fig)


# --- checkers -------------------------------------------------------------



RIGHT = [(checks.mul_backward, lambda a, b, g: (b * g, a * g)),
         (checks.mul_backward, lambda a, b, g: np.array([b * g, a * g])),
         (checks.mul_backward, lambda a, b, g: [torch.tensor(b * g), torch.tensor(a * g)]),
         (checks.tanh_backward, lambda o, g: (1 - o ** 2) * g)]

BROKEN = [
    (checks.mul_backward, lambda a, b, g: (a * g, b * g), "expected"),       # not swapped
    (checks.mul_backward, lambda a, b, g: (b, a), "grad_out = 0"),           # forgot grad_out
    (checks.mul_backward, lambda a, b, g: b * g, "one number"),
    (checks.mul_backward, lambda a, b, g: (-3.0, 2.0), "expected"),    # hard-coded example
    (checks.mul_backward, lambda a, b, g: None, "return"),
    (checks.mul_backward, lambda a, b, g: (math.nan, 0.0), "NaN"),
    (checks.mul_backward, forever, "did not finish"),
    (checks.mul_backward, stub, "not implemented yet"),
    (checks.tanh_backward, lambda o, g: 1 - o ** 2, "expected"),              # forgot grad_out
    (checks.tanh_backward, lambda o, g: (1 - math.tanh(o) ** 2) * g, "expected"),  # applied tanh again
    (checks.tanh_backward, lambda o, g: 0.75, "expected"),                   # hard-coded example
    (checks.tanh_backward, lambda o, g: (o, g), "a single number"),
    (checks.tanh_backward, lambda o, g: o.grad, "raised AttributeError"),
    (checks.tanh_backward, stub, "not implemented yet"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)
