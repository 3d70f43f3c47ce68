"""Notebook 01: nn_numpy against PyTorch, its figures and explorer, and its checkers."""

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import re

import nbformat

from helpers import checks, nn_numpy, plots, toy_data, widgets
from helpers.paths import NOTEBOOKS_DIR
from checker_cases import checker_tests, forever, stub

NOTEBOOK = NOTEBOOKS_DIR / "01_neurons_and_layers.ipynb"

floats = st.floats(-1e6, 1e6, allow_nan=False)


@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 5)), elements=floats))
def test_activations_match_pytorch_without_warnings(z):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = [nn_numpy.sigmoid(z), nn_numpy.tanh(z), nn_numpy.relu(z)]
    t = torch.from_numpy(z)
    for mine, theirs in zip(ours, [torch.sigmoid(t), torch.tanh(t), torch.relu(t)]):
        torch.testing.assert_close(torch.from_numpy(mine), theirs, rtol=1e-12, atol=1e-12)


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_dense_matches_nn_linear(n, d_in, d_out, seed):
    rng = np.random.default_rng(seed)
    X, W, b = rng.normal(size=(n, d_in)), rng.normal(size=(d_in, d_out)), rng.normal(size=d_out)
    linear = torch.nn.Linear(d_in, d_out, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(W.T))
        linear.bias.copy_(torch.from_numpy(b))
    torch.testing.assert_close(torch.from_numpy(nn_numpy.dense(X, W, b)), linear(torch.from_numpy(X)))


def test_two_layer_forward_matches_sequential():
    rng = np.random.default_rng(0)
    X, W1, b1, W2, b2 = rng.normal(size=(7, 3)), rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=(4, 2)), rng.normal(size=2)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2), torch.nn.Sigmoid()).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(W1.T)); net[0].bias.copy_(torch.from_numpy(b1))
        net[2].weight.copy_(torch.from_numpy(W2.T)); net[2].bias.copy_(torch.from_numpy(b2))
    ours = nn_numpy.two_layer_forward(X, W1, b1, W2, b2, activation=nn_numpy.tanh)
    torch.testing.assert_close(torch.from_numpy(ours), net(torch.from_numpy(X)))


@pytest.mark.parametrize("sizes, expected", [([2, 3, 1], 13), ([784, 100, 10], 79510), ([5, 1], 6)])
def test_count_parameters_matches_pytorch(sizes, expected):
    layers = [torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    assert nn_numpy.count_parameters(sizes) == expected == sum(p.numel() for l in layers for p in l.parameters())


@pytest.mark.parametrize("params", [{}, {"w1": 0.0, "w2": 0.0, "b": 0.0}, {"w1": -3.0, "w2": 3.0, "b": -3.0}])
def test_neuron_boundary_figure_at_extremes(params):
    fig = plots.make_neuron_boundary(**params)
    assert "accuracy" in fig.axes[0].get_title()
    plt.close(fig)


def test_zero_weights_say_so():
    fig = plots.make_neuron_boundary(0.0, 0.0, 0.0)
    assert any("ignores its inputs" in t.get_text() for t in fig.axes[0].texts)
    plt.close(fig)


def test_activation_and_diagram_figures():
    fig = plots.make_activations()
    assert [ax.get_title() for ax in fig.axes] == ["sigmoid", "tanh", "ReLU"]
    fig2 = plots.make_network_diagram((2, 3, 1))
    assert "13 parameters" in fig2.axes[0].get_title()
    plt.close("all")


@given(arrays(np.float64, st.integers(1, 50), elements=st.floats(-20, 20)))
def test_tanh_is_its_formula_and_a_stretched_sigmoid(z):
    """Notebook 01 states tanh(z) = (e^z - e^-z) / (e^z + e^-z) = 2 sigmoid(2z) - 1."""
    formula = (np.exp(z) - np.exp(-z)) / (np.exp(z) + np.exp(-z))
    np.testing.assert_allclose(nn_numpy.tanh(z), formula, rtol=0, atol=1e-12)
    np.testing.assert_allclose(nn_numpy.tanh(z), 2 * nn_numpy.sigmoid(2 * z) - 1, rtol=0, atol=1e-12)


@given(st.lists(st.integers(1, 6), min_size=2, max_size=5), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_forward_layers_matches_a_torch_sequential(sizes, n, seed):
    rng = np.random.default_rng(seed)
    params = [(rng.normal(size=(a, b)), rng.normal(size=b)) for a, b in zip(sizes[:-1], sizes[1:])]
    X = rng.normal(size=(n, sizes[0]))
    layers = []
    for k, (W, b) in enumerate(params):
        linear = torch.nn.Linear(*W.shape, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.Sigmoid() if k == len(params) - 1 else torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers)
    outputs = nn_numpy.forward_layers(X, params)
    assert [a.shape for a in outputs] == [(n, d) for d in sizes[1:]]
    expected = torch.from_numpy(X)
    for k, ours in enumerate(outputs):
        expected = net[2 * k + 1](net[2 * k](expected))
        torch.testing.assert_close(torch.from_numpy(ours), expected)


def test_hidden_space_figure_separates_xor_with_one_line():
    X, y = toy_data.xor(n=200, noise=0.25, seed=0)
    W1, b1 = np.array([[1.0, -1.0], [-1.0, 1.0]]), np.zeros(2)
    W2, b2 = np.array([[3.0], [3.0]]), np.array([-3.0])
    fig = plots.make_hidden_space(X, y, W1, b1, W2, b2)
    ax = fig.axes[0]
    assert "hidden" in ax.get_xlabel() and "hidden" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class 0", "class 1"]
    drawn = np.concatenate([collection.get_offsets() for collection in ax.collections
                            if hasattr(collection, "get_offsets") and len(collection.get_offsets()) > 1])
    np.testing.assert_allclose(np.sort(drawn, axis=0), np.sort(nn_numpy.relu(X @ W1 + b1), axis=0), atol=1e-6)
    plt.close(fig)


def test_reference_answers_in_the_notebook_hold():
    """The code inside each collapsed reference answer asserts the numbers its text states."""
    blocks = [block for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "markdown"
              for details in re.findall(r"<details>.*?</details>", c.source, re.S)
              for block in re.findall(r"```python\n(.*?)```", details, re.S)]
    assert len(blocks) == 1                        # the circle's weights
    exec(blocks[0], {"np": np, "nn_numpy": nn_numpy, "toy_data": toy_data})


def test_the_broken_dense_layer_of_the_exercise_is_caught_with_both_bugs_named():
    source = next(block for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "markdown"
                  and "Exercise 3" in c.source for block in re.findall(r"```python\n(.*?)```", c.source, re.S))
    space = {"np": np}
    exec(source, space)
    broken = space["dense_layer"]
    assert "returned shape (1, 2), expected shape (1, 3)" in checks.dense_layer(broken).message
    exec(source.replace("W.shape[0]", "W.shape[1]"), space)
    assert "added the bias inside the innermost loop" in checks.dense_layer(space["dense_layer"]).message


def test_neuron_explorer_responds_to_each_slider():
    explorer = widgets.Explorer(plots.make_neuron_boundary,
                                {"w1": widgets.slider(1.0, -3.0, 3.0, step=0.1),
                                 "w2": widgets.slider(-1.0, -3.0, 3.0, step=0.1),
                                 "b": widgets.slider(0.0, -3.0, 3.0, step=0.1)})
    seen = {explorer.png}
    for name, value in [("w1", 2.0), ("w2", 1.0), ("b", -1.5)]:
        explorer.controls[name].value = value
        seen.add(explorer.png)
    assert len(seen) == 4


# --- checkers -------------------------------------------------------------



def relu_in_place(z):
    z[z < 0] = 0
    return z


def naive_sigmoid(z):
    return 1 / (1 + np.exp(-z))


def sigmoid_both_branches(z):
    """Looks stable, but np.where evaluates both branches, so np.exp(1000) still overflows."""
    return np.where(z >= 0, 1 / (1 + np.exp(-z)), np.exp(z) / (1 + np.exp(z)))


def forward_pass(X, params):
    outputs, a = [], X
    for k, (W, b) in enumerate(params):
        z = a @ W + b
        a = nn_numpy.sigmoid(z) if k == len(params) - 1 else nn_numpy.relu(z)
        outputs.append(a)
    return outputs


def forward_pass_float32_torch(X, params):
    a, outputs = torch.tensor(X, dtype=torch.float32), []
    for k, (W, b) in enumerate(params):
        z = a @ torch.tensor(W, dtype=torch.float32) + torch.tensor(b, dtype=torch.float32)
        a = torch.sigmoid(z) if k == len(params) - 1 else torch.relu(z)
        outputs.append(a)
    return tuple(outputs)


def forward_pass_in_place(X, params):
    bias = params[0][1]
    bias *= 1.5                             # changes the caller's bias
    return forward_pass(X, params)


RIGHT = [(checks.forward_pass, forward_pass), (checks.forward_pass, nn_numpy.forward_layers),
         (checks.forward_pass, forward_pass_float32_torch),
         (checks.predict_xor_without_relu, lambda: "c"), (checks.predict_xor_without_relu, lambda: "C"),
         (checks.dense_layer, lambda X, W, b: np.einsum("ni,io->no", X, W) + b),
         (checks.relu, lambda z: np.maximum(0, z)), (checks.sigmoid, nn_numpy.sigmoid),
         (checks.sigmoid, lambda z: 0.5 * np.tanh(z / 2) + 0.5),                  # another overflow-free form
         (checks.sigmoid, lambda z: 1 / (1 + np.exp(-np.clip(z, -500, 500)))),   # clipped far enough out
         (checks.dense_layer, lambda X, W, b: X @ W + b)]

BROKEN = [
    (checks.relu, lambda z: None, "return"),
    (checks.relu, lambda z: np.array([0.0, 0.0, 3.0]), "shape"),            # hard-coded example
    (checks.relu, lambda z: np.abs(z), "expected"),
    (checks.relu, relu_in_place, "changed its input"),
    (checks.relu, lambda z: z * np.nan, "NaN"),
    (checks.relu, forever, "did not finish"),
    (checks.relu, stub, "not implemented yet"),
    (checks.relu, lambda z: [max(0, v) for v in z], "raised"),            # works for 1-D lists only
    (checks.sigmoid, lambda z: 1 / (1 + np.exp(z)), "expected"),
    (checks.sigmoid, lambda z: np.tanh(z), "expected"),
    (checks.sigmoid, lambda z: 1 / (1 + np.exp(-np.clip(z, -5, 5))), "expected"),  # wrong for large |z|
    (checks.sigmoid, lambda z: float(1 / (1 + np.exp(-z[0]))), "shape"),
    (checks.sigmoid, lambda z: 1 / 0, "ZeroDivisionError"),
    (checks.sigmoid, naive_sigmoid, "overflow"),                              # right values, but e^1000
    (checks.sigmoid, sigmoid_both_branches, "overflow"),
    (checks.sigmoid, lambda z: np.exp(z) / np.exp(z).sum(), "expected"),       # softmax, not sigmoid
    (checks.sigmoid, forever, "did not finish"),
    (checks.dense_layer, lambda X, W, b: W.T @ X.T + b, "shape"),
    (checks.dense_layer, lambda X, W, b: X @ W, "expected"),                 # forgot the bias
    (checks.dense_layer, lambda X, W, b: X @ W + b[0], "expected"),
    (checks.dense_layer, lambda X, W, b: np.array([[2.0, 5.0, -1.0]]), "shape"),  # hard-coded example
    (checks.dense_layer, lambda X, W, b: "X @ W + b", "not a number"),
    (checks.dense_layer, stub, "not implemented yet"),
    (checks.forward_pass, lambda X, p: forward_pass(X, p)[-1], "not a list of arrays"),
    (checks.forward_pass, lambda X, p: [X] + forward_pass(X, p), "expected 2: one per layer"),
    (checks.forward_pass, lambda X, p: nn_numpy.forward_layers(X, p, activation=nn_numpy.sigmoid),
     "used sigmoid on every layer"),
    (checks.forward_pass, lambda X, p: [nn_numpy.relu(a) for a in nn_numpy.forward_layers(X, p)][:-1]
     + [nn_numpy.relu(nn_numpy.forward_layers(X, p)[-2] @ p[-1][0] + p[-1][1])], "used ReLU on the output layer"),
    (checks.forward_pass, lambda X, p: nn_numpy.forward_layers(X, [(W, 0 * b) for W, b in p]), "left out the biases"),
    (checks.forward_pass, lambda X, p: nn_numpy.forward_layers(X, p, activation=lambda z: z),
     "skipped the ReLU on the hidden layers"),
    (checks.forward_pass, lambda X, p: nn_numpy.forward_layers(X, p[:2]), "expected 3"),   # right for 2 layers only
    (checks.forward_pass, forward_pass_in_place, "changed its input"),
    (checks.forward_pass, stub, "not implemented yet"),
    (checks.forward_pass, forever, "did not finish"),
    (checks.predict_xor_without_relu, lambda: "b", "the answer is 'c'"),
    (checks.predict_xor_without_relu, lambda: "50%", "must be one of"),
    (checks.dense_layer, lambda X, W, b: X @ W + X.shape[1] * b, "added the bias inside the innermost loop"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)


def test_sigmoid_overflow_is_caught_in_the_thread_fallback_too():
    """Where there is no alarm signal the learner's function runs in a helper thread; the
    overflow check must hold there as well."""
    import threading

    box = {}
    worker = threading.Thread(target=lambda: box.update(result=checks.sigmoid(naive_sigmoid)))
    worker.start()
    worker.join(10)
    assert box["result"].passed is False and "overflow" in box["result"].message


def test_sigmoid_checker_leaves_numpy_error_settings_alone():
    before = np.geterr()
    checks.sigmoid(naive_sigmoid)
    checks.sigmoid(nn_numpy.sigmoid)
    assert np.geterr() == before


def test_failed_sigmoid_hints_lead_from_a_nudge_to_the_overflow_fix():
    said = [checks.sigmoid(naive_sigmoid).message for _ in range(3)]
    assert all("very large inputs" in message for message in said)
    assert "np.exp(1000)" in said[0] and "np.exp(-np.abs(z))" not in said[0]
    assert "np.exp(-np.abs(z))" in said[2]


def forward_pass_float32(X, params):
    a, outputs = np.asarray(X, dtype=np.float32), []
    for k, (W, b) in enumerate(params):
        z = a @ W.astype(np.float32) + b.astype(np.float32)
        a = 1 / (1 + np.exp(-np.clip(z, -80, 80))) if k == len(params) - 1 else np.maximum(0, z)
        outputs.append(a)
    return outputs


def test_a_float32_forward_pass_passes_on_many_draws_but_an_error_of_a_thousandth_does_not(monkeypatch, capsys):
    """Rounding carried through three hidden layers of 16 must be allowed for, and no more."""
    draw = np.random.default_rng
    for seed in range(1, 31):
        monkeypatch.setattr(np.random, "default_rng", lambda s=None, seed=seed: draw([seed, s or 0]))
        assert checks.forward_pass(forward_pass_float32).passed, seed
        off = checks.forward_pass(lambda X, p: [a * (1 + 1e-3) for a in forward_pass_float32(X, p)])
        assert not off.passed, seed
