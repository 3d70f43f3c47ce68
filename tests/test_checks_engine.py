"""The checker engine never crashes or hangs, and says what went wrong (notebook 00's `dot` as the example)."""

import time

import numpy as np
import pytest

from helpers import checks


def right(w, x):
    return float(np.sum(w * x))


def endless(w, x):
    while True:
        pass


def swallows_everything(w, x):
    try:
        while True:
            pass
    except Exception:
        return 0.0


def not_yet(w, x):
    raise NotImplementedError()


def mutates(w, x):
    w *= 2
    return float(np.sum(w * x) / 2)


def hard_coded(w, x):
    return 11.0


def small_only(w, x):
    return float(np.sum(w[:5] * x[:5]))


BROKEN = [
    (None, "expected a function"),
    (right(np.ones(2), np.ones(2)), "expected a function"),
    (lambda w, x: None, "return"),
    (lambda w, x: w * x, "a single number was expected"),
    (lambda w, x: np.nan, "NaN or infinity"),
    (lambda w, x: "11", "not a number"),
    (lambda w, x: 1 / 0, "raised ZeroDivisionError"),
    (lambda w, x: {"a": 1}, "not a number"),
    (endless, "did not finish"),
    (swallows_everything, "did not finish"),
    (not_yet, "not implemented yet"),
    (mutates, "changed its input"),
    (hard_coded, "your function returned 11"),
    (small_only, "random vectors of length 1000"),
]


def test_right_answer_passes(capsys):
    result = checks.dot(right)
    assert result.passed is True and bool(result)
    assert "✓ dot: all 5 checks passed." in capsys.readouterr().out


@pytest.mark.parametrize("fn, phrase", BROKEN)
def test_broken_answers_are_rejected_with_a_reason(fn, phrase, capsys):
    result = checks.dot(fn)
    assert result.passed is False
    assert phrase in result.message
    assert result.message in capsys.readouterr().out


def test_endless_loop_is_stopped_quickly_and_the_alarm_is_cleared():
    start = time.perf_counter()
    checks.dot(endless)
    assert time.perf_counter() - start < checks.TIME_LIMIT + 1.5
    time.sleep(0.05)  # a stray alarm would fire here and fail the test
    assert checks.dot(right).passed


def test_time_limit_works_off_the_main_thread():
    import threading

    stop = threading.Event()

    def spins_until_stopped(w, x):
        while not stop.is_set():
            pass

    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("r", checks.dot(spins_until_stopped)))
    thread.start()
    thread.join(10)
    stop.set()  # a thread cannot be killed: the checker says so, and this test stops it itself
    assert box["r"].passed is False and "did not finish" in box["r"].message
    assert "restart the kernel" in box["r"].message


def test_result_displays_nothing_more_in_notebooks():
    result = checks.dot(right)
    assert result._ipython_display_() is None


@pytest.mark.parametrize("got, expected, phrase", [
    (np.zeros((2, 3)), np.zeros((3, 2)), "shape (2, 3), expected shape (3, 2)"),
    ([1.0, np.inf], [1.0, 2.0], "NaN or infinity"),
    (object(), [1.0], "not a number"),
    ([1.0, 2.5], [1.0, 2.0], "largest difference 0.5"),
])
def test_compare_arrays_messages(got, expected, phrase):
    assert phrase in checks.compare_arrays(got, expected)


def test_compare_accepts_tensors_and_lists():
    import torch

    assert checks.compare_arrays(torch.tensor([1.0, 2.0], requires_grad=True) * 1, [1.0, 2.0]) is None
    assert checks.compare_arrays([[1, 2]], np.array([[1.0, 2.0]])) is None
    assert checks.compare_scalar(np.float32(3.0), 3.0) is None


# --- every checker in the course, against the same generic broken answers ------------------

import inspect  # noqa: E402

ALL_CHECKERS = [fn for name, fn in inspect.getmembers(checks, inspect.isfunction)
                if (fn.__doc__ or "").startswith("Checker for notebook")]


def _mutate_first_array(*args):
    for arg in args:
        if isinstance(arg, np.ndarray) and arg.size:
            arg.flat[0] += 1.0
            return arg
        if hasattr(arg, "detach") and arg.numel():
            arg.view(-1)[0] += 1.0
            return arg
    raise TypeError("no array argument")  # checkers whose inputs are plain numbers


GENERIC_BROKEN = {
    "returns None": (lambda *a: None, ["return"]),
    "raises an exception": (lambda *a: {}["missing"], ["raised KeyError"]),
    "returns NaN": (lambda *a: float("nan"), ["NaN", "a pair", "batches", "not a number", "shape", "a dict",
                                              "not a list of integer ids", "not a list of arrays",
                                              "not a list of documents", "not a list of (speech, reply) pairs"]),
    "returns infinity": (lambda *a: np.full((2, 2), np.inf), ["NaN or infinity", "shape", "batches", "one number",
                                                              "not a list of arrays"]),
    "wrong shape": (lambda *a: np.zeros((7, 7, 7)), ["shape", "batches", "a single number", "not a list of arrays"]),
    "wrong type": (lambda *a: {"answer": 1}, ["not a number", "batches", "keys are not pairs",
                                              "not a list of integer ids", "not a list of arrays",
                                              "not a list of documents", "not a list of (speech, reply) pairs"]),
    "text instead of numbers": (lambda *a: "0.5", ["not a number", "batches", "a dict", "not a list of integer ids",
                                                   "not a list of arrays", "not a list of documents", "not a list of (speech, reply) pairs"]),
    "loops forever": (lambda *a: endless(None, None), ["did not finish"]),
    "a stub": (lambda *a: not_yet(None, None), ["not implemented yet"]),
    "changes its input": (_mutate_first_array, ["changed its input", "raised TypeError"]),
}


def test_every_checker_is_found():
    names = {fn.__name__ for fn in ALL_CHECKERS}
    assert {"dot", "relu", "sigmoid", "dense_layer", "mse", "numerical_gradient", "gradient_descent_step",
            "mul_backward", "tanh_backward", "accuracy", "make_batches", "bce_with_logits"} <= names


@pytest.mark.parametrize("kind", list(GENERIC_BROKEN))
@pytest.mark.parametrize("checker", ALL_CHECKERS, ids=lambda f: f.__name__)
def test_every_checker_rejects_generic_broken_answers(checker, kind, capsys):
    broken, phrases = GENERIC_BROKEN[kind]
    result = checker(broken)  # must not raise, must not hang
    assert result.passed is False, f"{checker.__name__} accepted an answer that {kind}"
    assert any(p in result.message for p in phrases), f"{checker.__name__}, {kind}: {result.message}"
    assert result.message in capsys.readouterr().out
