"""The checker engine never crashes or hangs, and says what went wrong (notebook 00's `dot` as the example).

Answers meant to time out run under a short time limit (``short_time_limit``), so that the
deliberate timeouts cost a fraction of a second each rather than the learner's 2 s.
"""

import itertools
import re
import signal
import sys
import threading
import time

import nbformat
from pathlib import Path
import numpy as np
import pytest
import torch

from checker_cases import SHORT_TIME_LIMIT
from checker_cases import short_time_limit as shortened
from helpers import checks
from helpers.checks import compare
from helpers.paths import NOTEBOOKS_DIR

# The main-thread time limit uses the alarm signal, which Windows does not have (checkers there
# fall back to a helper thread, tested separately).
needs_alarm = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no alarm signal on this system")



@pytest.fixture
def short_time_limit():
    """Checkers in this test stop a learner's function after SHORT_TIME_LIMIT seconds."""
    with shortened() as seconds:
        yield seconds


def in_another_thread(call, timeout=10):
    """``call()`` run on a thread other than the main one (where checkers fall back on a helper
    thread for their time limit); its result, or the exception it raised, raised again here."""
    box = {}

    def target():
        try:
            box["result"] = call()
        except BaseException as exc:
            box["raised"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the checker did not return"
    if "raised" in box:
        raise box["raised"]
    return box["result"]


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
    with shortened(SHORT_TIME_LIMIT if phrase == "did not finish" else checks.timing.TIME_LIMIT):
        result = checks.dot(fn)
    assert result.passed is False
    assert phrase in result.message
    assert result.printed in capsys.readouterr().out


@needs_alarm
def test_endless_loop_is_stopped_quickly_and_the_alarm_is_cleared(short_time_limit):
    handler, tracer = signal.getsignal(signal.SIGALRM), sys.gettrace()
    start = time.perf_counter()
    checks.dot(endless)
    assert time.perf_counter() - start < short_time_limit + 1.0
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == handler and sys.gettrace() is tracer
    time.sleep(0.05)  # a stray alarm would fire here and fail the test
    assert checks.dot(right).passed


def test_the_time_limit_is_read_each_time_a_checker_runs(monkeypatch):
    monkeypatch.setattr(checks.timing, "TIME_LIMIT", 0.1)
    start = time.perf_counter()
    result = checks.dot(endless)
    assert time.perf_counter() - start < 1.0
    assert "did not finish within 0.1 s" in result.message


def test_a_timeout_asks_about_endless_loops_and_about_too_much_work(short_time_limit):
    def builds_far_too_much(w, x):  # slow rather than endless, like building a whole model to count it
        time.sleep(30)
        return right(w, x)

    message = checks.dot(builds_far_too_much).message
    assert (f"did not finish within {short_time_limit:g} s on the example w = [1, 2], x = [3, 4]. "
            "Is there a loop that never ends, or is it doing much more work than needed?") in message


def test_one_checker_call_has_a_total_time_budget(short_time_limit):
    """20 cases that each take most of the per-case limit are stopped by the total budget
    (TOTAL_TIME_FACTOR times the limit), not after 20 times the limit."""
    def slow(*args):
        time.sleep(0.6 * short_time_limit)
        return 1.0

    cases = [checks.Case((), 1.0, f"case {i}") for i in range(20)]
    start = time.perf_counter()
    result = checks.run_checks("slow", slow, cases, hint="")
    budget = checks.timing.TOTAL_TIME_FACTOR * short_time_limit
    assert time.perf_counter() - start < budget + 1.0
    assert result.passed is False
    assert f"did not finish all 20 checks within {budget:g} s in total (time ran out on case " in result.message
    assert "Is there a loop that never ends, or is it doing much more work than needed?" in result.message


# --- loops that catch the time limit's exception and carry on ---------------------------

def swallows_with_a_bare_except(w, x):
    while True:
        try:
            while True:
                pass
        except:  # noqa: E722 - the learner's bare except, catching the checker's stop too
            pass


def swallows_base_exception(w, x):
    n = 0
    while True:
        try:
            while True:
                n += 1
        except BaseException:
            n = 0


def swallows_then_returns_the_right_answer(w, x):
    try:
        while True:
            pass
    except:  # noqa: E722
        return right(w, x)


def _spin(x):
    try:
        while True:
            x += 1
    except:  # noqa: E722
        return x


def swallows_in_a_helper_it_calls(w, x):
    total = 0.0
    for i in range(100):
        try:
            total += _spin(i)
        except:  # noqa: E722
            pass
    return total


def swallows_inside_a_generator(w, x):
    def numbers():
        while True:
            try:
                while True:
                    pass
            except:  # noqa: E722
                pass
            yield 1.0

    return sum(numbers())


@needs_alarm
@pytest.mark.parametrize("fn", [swallows_with_a_bare_except, swallows_base_exception,
                                swallows_then_returns_the_right_answer, swallows_in_a_helper_it_calls,
                                swallows_inside_a_generator])
def test_a_loop_that_catches_the_time_limit_is_still_stopped(fn, short_time_limit):
    handler, tracer = signal.getsignal(signal.SIGALRM), sys.gettrace()
    start = time.perf_counter()
    result = checks.dot(fn)
    assert time.perf_counter() - start < short_time_limit + 1.0
    assert result.passed is False and "did not finish within" in result.message
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == handler and sys.gettrace() is tracer
    assert checks.dot(right).passed


def loops_inside_errstate(w, x):
    with np.errstate(all="ignore"):
        while True:
            pass


def swallows_around_errstate(w, x):
    while True:
        try:
            with np.errstate(all="ignore"):
                while True:
                    pass
        except:  # noqa: E722
            pass


@pytest.mark.parametrize("fn", [loops_inside_errstate, swallows_around_errstate])
def test_stopping_a_loop_lets_with_blocks_clean_up(fn, short_time_limit):
    """`with` blocks in the learner's code still undo their settings (here NumPy's error
    handling) on the way out, even in a loop that catches the time limit's exception."""
    before = np.geterr()
    start = time.perf_counter()
    result = checks.dot(fn)
    assert time.perf_counter() - start < short_time_limit + 1.0
    assert result.passed is False and "did not finish within" in result.message
    assert np.geterr() == before


def test_time_limit_works_off_the_main_thread(short_time_limit):
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


# --- answers that never end when read -----------------------------------------------------

class EndlessArray:
    """An answer NumPy never finishes reading."""

    def __array__(self, dtype=None, copy=None):
        while True:
            pass


def batches_forever(n, batch_size):
    return (np.arange(i, i + batch_size) for i in itertools.count(0, batch_size))


def a_generator_that_never_yields(n, batch_size):
    def batches():
        while True:
            pass
        yield

    return batches()


@pytest.mark.parametrize("checker, fn, phrase", [
    (checks.dot, lambda w, x: EndlessArray(), "returned an object of type EndlessArray, and reading it did not finish"),
    (checks.make_batches, a_generator_that_never_yields, "returned an object of type generator, and reading it"),
    (checks.make_batches, batches_forever, "returned more than 3 batches, expected 3"),
    (checks.merge, lambda ids, pair, new_id: itertools.count(), "returned count(0), which is not a list of integer ids"),
])
def test_answers_that_never_end_when_read_are_rejected_quickly(checker, fn, phrase, short_time_limit):
    start = time.perf_counter()
    result = checker(fn)
    assert time.perf_counter() - start < short_time_limit + 1.0
    assert result.passed is False and phrase in result.message, result.message


def test_an_answer_that_never_ends_when_read_is_reported_off_the_main_thread_too(short_time_limit):
    stop = threading.Event()

    class ReadUntilStopped:
        def __array__(self, dtype=None, copy=None):
            while not stop.is_set():
                pass
            return np.zeros(())

    try:
        result = in_another_thread(lambda: checks.dot(lambda w, x: ReadUntilStopped()))
    finally:
        stop.set()  # a thread cannot be killed: this test stops it itself
    assert result.passed is False
    assert "returned an object of type ReadUntilStopped, and reading it did not finish in time" in result.message
    assert "still running in the background: restart the kernel" in result.message


# --- sys.exit(), other BaseExceptions, and Ctrl-C ----------------------------------------------

class LearnersStop(BaseException):
    """A learner's own exception class derived from BaseException."""


def raises(exception):
    def answer(w, x):
        raise exception

    return answer


EXITS = [
    (lambda w, x: sys.exit(), "called sys.exit() (or exit(), quit()) on the example w = [1, 2], x = [3, 4], "
                              "which would stop Python itself. Return the answer instead."),
    (lambda w, x: sys.exit("done"), "called sys.exit()"),
    (raises(SystemExit(3)), "called sys.exit()"),
    (raises(GeneratorExit()), "raised GeneratorExit (on the example w = [1, 2], x = [3, 4])."),
    (raises(LearnersStop("enough")), "raised LearnersStop: enough (on the example"),
]


@pytest.mark.parametrize("fn, phrase", EXITS)
def test_sys_exit_and_other_base_exceptions_are_reported(fn, phrase):
    result = checks.dot(fn)
    assert result.passed is False and phrase in result.message


@pytest.mark.parametrize("fn, phrase", EXITS)
def test_sys_exit_is_reported_in_the_helper_thread_too(fn, phrase):
    """Off the main thread the function runs in a helper thread, where a SystemExit used to end
    the thread silently and read as "did not finish"."""
    result = in_another_thread(lambda: checks.dot(fn))
    assert result.passed is False and phrase in result.message


@needs_alarm
def test_ctrl_c_still_stops_a_checker():
    import _thread

    def pressed_ctrl_c(w, x):
        _thread.interrupt_main()  # what interrupting the kernel does: KeyboardInterrupt on the main thread
        while True:
            pass

    with pytest.raises(KeyboardInterrupt):
        checks.dot(pressed_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        checks.dot(raises(KeyboardInterrupt()))
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert checks.dot(right).passed


def test_ctrl_c_while_the_answer_is_read_stops_the_checker_too():
    class InterruptedWhileRead:
        def __array__(self, dtype=None, copy=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        checks.dot(lambda w, x: InterruptedWhileRead())


def test_ctrl_c_stops_a_checker_off_the_main_thread():
    with pytest.raises(KeyboardInterrupt):
        in_another_thread(lambda: checks.dot(raises(KeyboardInterrupt())))


def test_result_displays_nothing_more_in_notebooks():
    result = checks.dot(right)
    assert result._ipython_display_() is None


@pytest.mark.parametrize("got, expected, phrase", [
    (np.zeros((2, 3)), np.zeros((3, 2)), "shape (2, 3), expected shape (3, 2)"),
    ([1.0, np.inf], [1.0, 2.0], "NaN or infinity"),
    (object(), [1.0], "not a number"),
    ([1.0, 2.5], [1.0, 2.0], "at index [1], is 2.5 instead of 2 (off by 0.5, more than the 2.1e-05 allowed)"),
    (3.5, 3.0, "returned 3.5, expected 3 (off by 0.5"),
])
def test_compare_arrays_messages(got, expected, phrase):
    assert phrase in checks.compare_arrays(got, expected)


def test_compare_arrays_names_the_element_that_breaks_the_tolerance_worst():
    """Element 0 is further off (5e-4) but within its room (1e-6 + 1e-5 * 100); element 1 breaks it."""
    message = checks.compare_arrays(np.array([100.0005, 2e-5]), np.array([100.0, 0.0]))
    assert "The worst element, at index [1], is 2e-05 instead of 0 (off by 2e-05, more than the 1e-06 allowed)" in message


def test_compare_arrays_says_when_float32_rounding_may_be_the_problem():
    message = checks.compare_arrays(np.array([1.0, 2.01], dtype=np.float32), [1.0, 2.0])
    assert "Your answer is float32" in message and "compute in float64" in message
    assert "float32" not in checks.compare_arrays(np.array([1.0, 2.01]), [1.0, 2.0])


def test_compare_accepts_tensors_and_lists():
    assert checks.compare_arrays(torch.tensor([1.0, 2.0], requires_grad=True) * 1, [1.0, 2.0]) is None
    assert checks.compare_arrays([[1, 2]], np.array([[1.0, 2.0]])) is None
    assert checks.compare_scalar(np.float32(3.0), 3.0) is None


def test_named_slip_names_the_first_mistake_the_answer_equals_and_skips_harmless_ones():
    expected = np.array([1.0, 2.0])
    slips = [(np.array([1.0, 2.0]), "made a slip that is right here"), (np.array([2.0, 4.0]), "doubled it"),
             (np.array([2.0, 4.0]), "doubled it again")]
    assert checks.named_slip(np.array([2.0, 4.0 + 1e-9]), expected, slips, compare.nearly()) == "doubled it"
    assert checks.named_slip(np.array([2.0, 4.0 + 1e-9]), expected, slips, compare.exactly) is None
    assert checks.named_slip(np.array([1.0, 2.0]), expected, slips, compare.exactly) is None
    assert checks.named_slip(None, expected, slips, compare.nearly()) is None    # unreadable: no slip, no error
    assert checks.named_slip([3, 1], [1, 3], [([3, 1], "reversed it")], compare.exactly) == "reversed it"
    grads = [np.ones(2), np.ones((2, 1))]
    assert compare.nearly()([np.ones(2), [[1.0], [1.0]]], grads) and not compare.nearly()(grads[:1], grads)


# --- how a verdict is printed -------------------------------------------------------------------

def test_a_passing_verdict_is_printed_on_one_line(capsys):
    checks.dot(right)
    assert capsys.readouterr().out == "✓ dot: all 5 checks passed.\n"


def test_a_long_verdict_is_wrapped_on_spaces_with_the_hint_indented(capsys):
    result = checks.dot(lambda w, x: w * x)
    printed = capsys.readouterr().out.rstrip("\n")
    assert printed == result.printed and printed != result.message
    lines = printed.split("\n")
    assert all(len(line) <= checks.engine.WIDTH for line in lines), lines
    assert printed.split() == result.message.split(), "a word was broken or lost"
    hint = next(i for i, line in enumerate(lines) if line.startswith("  Hint: "))
    assert lines[0].startswith("✗ dot: ") and all(line.startswith("  ") for line in lines[1:hint])
    assert all(line.startswith(" " * 8) and line[8] != " " for line in lines[hint + 1:])


def test_wrapping_leaves_short_lines_and_long_words_alone():
    assert checks.engine.wrap("✗ x: short.\n  Hint: short too.") == "✗ x: short.\n  Hint: short too."
    word = "a" * 120
    assert checks.engine.wrap(f"✗ x: {word} b", width=90) == f"✗ x:\n  {word}\n  b"


# --- every checker in the course, against the same generic broken answers ------------------

ALL_CHECKERS = list(checks.CHECKERS.values())  # the registry: every function marked @checker


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
    "returns NaN": (lambda *a: float("nan"), ["NaN", "must be one of", "a pair", "batches", "not a number", "shape", "a dict",
                                              "not a list of integer ids", "not a list of arrays",
                                              "not a list of documents", "not a list of (speech, reply) pairs"]),
    "returns infinity": (lambda *a: np.full((2, 2), np.inf), ["NaN or infinity", "must be one of", "shape", "batches", "one number",
                                                              "not a list of arrays"]),
    "wrong shape": (lambda *a: np.zeros((7, 7, 7)), ["shape", "must be one of", "batches", "a single number", "not a list of arrays"]),
    "wrong type": (lambda *a: {"answer": 1}, ["not a number", "must be one of", "batches", "keys are not pairs",
                                              "not a pair of lists",
                                              "not a list of integer ids", "not a list of arrays",
                                              "not a list of documents", "not a list of (speech, reply) pairs"]),
    "text instead of numbers": (lambda *a: "0.5", ["not a number", "must be one of", "returned '0.5', expected", "batches", "a dict", "not a list of integer ids",
                                                   "not a pair of lists",
                                                   "not a list of arrays", "not a list of documents", "not a list of (speech, reply) pairs"]),
    "loops forever": (lambda *a: endless(None, None), ["did not finish"]),  # under short_time_limit
    "a stub": (lambda *a: not_yet(None, None), ["not implemented yet"]),
    "changes its input": (_mutate_first_array, ["changed its input", "raised TypeError",
                                                # adding 1.0 in place to int64 token ids (gpt_forward)
                                                "can't be cast to the desired output type Long"]),
}


PARTS = {"networks": range(0, 5), "text": range(5, 7), "transformer": range(7, 9), "pretraining": range(9, 11),
         "adaptation": range(11, 13), "assistant": range(13, 14), "real_llm": range(14, 15)}


def test_every_checker_a_notebook_calls_is_registered():
    called = {name for path in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")
              for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"
              for name in re.findall(r"\bchecks\.(\w+)\(", cell.source)}
    called -= {"hint", "verify"}        # checks.hint asks for a checker's next hint; verify proves a claim
    assert "dot" in called and called <= set(checks.CHECKERS), called - set(checks.CHECKERS)


@pytest.mark.parametrize("name", list(checks.CHECKERS))
def test_every_checker_is_reached_as_checks_name_and_lives_in_its_part(name):
    fn = checks.CHECKERS[name]
    assert getattr(checks, name) is fn, f"helpers/checks/__init__.py does not import {name}"
    notebook = int(re.match(r"Checker for notebook (\d\d)", fn.__doc__).group(1))
    part = fn.__module__.rsplit(".", 1)[-1]
    assert notebook in PARTS[part], f"{name} (notebook {notebook:02d}) is in checks.{part}"


def test_two_checkers_of_one_name_are_refused():
    def dot(fn):
        """Checker for notebook 00: a second dot, written elsewhere."""

    with pytest.raises(ValueError, match="two checkers are called dot"):
        checks.checker(dot)
    assert checks.CHECKERS["dot"] is checks.dot


@pytest.mark.parametrize("kind", list(GENERIC_BROKEN))
@pytest.mark.parametrize("checker", ALL_CHECKERS, ids=lambda f: f.__name__)
def test_every_checker_rejects_generic_broken_answers(checker, kind, capsys):
    broken, phrases = GENERIC_BROKEN[kind]
    with shortened(SHORT_TIME_LIMIT if kind == "loops forever" else checks.timing.TIME_LIMIT):
        result = checker(broken)  # must not raise, must not hang
    assert result.passed is False, f"{checker.__name__} accepted an answer that {kind}"
    assert any(p in result.message for p in phrases), f"{checker.__name__}, {kind}: {result.message}"
    assert result.printed in capsys.readouterr().out


# --- float32 answers ----------------------------------------------------------------------------

def f32(a):
    return np.asarray(a, dtype=np.float32)


def t32(a):
    return torch.tensor(np.asarray(a), dtype=torch.float32)


def sigmoid32(z):
    e = np.exp(-np.abs(f32(z)))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def multi_head_attention32(x, weights, n_head):
    """Notebook 07's attention layer, computed in float32 with PyTorch's fused attention."""
    x, w = x.float(), {name: value.float() for name, value in weights.items()}
    B, T, C = x.shape
    q, k, v = ((x @ w[f"{n}.weight"].T + w[f"{n}.bias"]).view(B, T, n_head, -1).transpose(1, 2)
               for n in ("query", "key", "value"))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
    return y @ w["proj.weight"].T + w["proj.bias"]


def adamw32(params, grads, m, v, t, lr, betas, eps, weight_decay):
    (b1, b2), lr, eps, weight_decay = (np.float32(b) for b in betas), np.float32(lr), np.float32(eps), np.float32(weight_decay)
    out = ([], [], [])
    for p, g, m_i, v_i in zip(params, grads, m, v):
        p, g = f32(p), f32(g)
        m_i, v_i = b1 * f32(m_i) + (1 - b1) * g, b2 * f32(v_i) + (1 - b2) * g * g
        step = (m_i / (1 - b1 ** t)) / (np.sqrt(v_i / (1 - b2 ** t)) + eps)
        for kept, value in zip(out, (p * (1 - lr * weight_decay) - lr * step, m_i, v_i)):
            kept.append(value)
    return out


def bits_per_character32(model, tokenizer, text):
    ids = tokenizer.encode(text)
    with torch.no_grad():
        logits, _ = model(torch.tensor(ids[:-1])[None])
    nats = torch.nn.functional.cross_entropy(logits[0], torch.tensor(ids[1:]), reduction="sum")
    return nats / (len(text) - len(tokenizer.decode(ids[:1]))) / np.float32(np.log(2))   # a float32 tensor


F = torch.nn.functional

# Right answers computed in float32, with NumPy and with PyTorch (and as lists where natural).
FLOAT32_ANSWERS = {
    "dot": [lambda w, x: np.sum(f32(w) * f32(x)),
            lambda w, x: t32(w) @ t32(x),
            lambda w, x: (t32(w) @ t32(x)).item()],
    "relu": [lambda z: np.maximum(0, f32(z)),
             lambda z: torch.relu(t32(z)),
             lambda z: np.maximum(0, f32(z)).tolist()],
    "sigmoid": [sigmoid32,
                lambda z: torch.sigmoid(t32(z))],
    "dense_layer": [lambda X, W, b: f32(X) @ f32(W) + f32(b),
                    lambda X, W, b: (torch.Tensor(X) @ torch.Tensor(W) + torch.Tensor(b)).numpy(),  # from the issue
                    lambda X, W, b: (f32(X) @ f32(W) + f32(b)).tolist()],
    "bce_with_logits": [lambda z, y: F.binary_cross_entropy_with_logits(z, y),
                        lambda z, y: (torch.clamp(z, min=0) - z * y + torch.log1p(torch.exp(-z.abs()))).mean()],
    "causal_attention": [lambda q, k, v: F.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                                                        is_causal=True)],
    "multi_head_attention": [lambda x, w, n_head: multi_head_attention32(x, w, n_head)],
    "adamw_step": [adamw32],
    "clip_gradients_": [lambda parameters, max_norm: torch.nn.utils.clip_grad_norm_(parameters, max_norm)],
    "bits_per_character": [bits_per_character32],
}

# The checkers whose hidden cases sum many terms, where float32 rounding shows most: tried on many draws.
MANY_DRAWS = ["dot", "dense_layer"]


@pytest.mark.parametrize("name, k", [(name, k) for name in FLOAT32_ANSWERS for k in range(len(FLOAT32_ANSWERS[name]))])
def test_right_answers_in_float32_pass(name, k, capsys):
    result = getattr(checks, name)(FLOAT32_ANSWERS[name][k])
    assert result.passed, result.message


@pytest.mark.parametrize("name", MANY_DRAWS)
def test_right_answers_in_float32_pass_on_many_draws_of_the_hidden_cases(name, monkeypatch, capsys):
    """The hidden cases drawn from 50 other seeds: float32 answers must pass on every one (before
    the fix, a float32 dense_layer failed on about half of them)."""
    draw = np.random.default_rng
    for seed in range(1, 51):
        monkeypatch.setattr(np.random, "default_rng", lambda s=None, seed=seed: draw([seed, s or 0]))
        for answer in FLOAT32_ANSWERS[name]:
            result = getattr(checks, name)(answer)
            assert result.passed, f"seed {seed}: {result.message}"


def test_a_float32_numerical_gradient_is_told_to_use_float64():
    """A central difference with eps = 1e-6 needs float64: in float32 it is off by several percent."""
    def gradient_in_float32(f, params, eps=1e-6):
        params = f32(params)
        grad = np.zeros_like(params)
        for i in np.ndindex(params.shape):
            up, down = params.copy(), params.copy()
            up[i] += eps
            down[i] -= eps
            grad[i] = (f(up) - f(down)) / (2 * eps)
        return grad

    message = checks.numerical_gradient(gradient_in_float32).message
    assert "Your answer is float32" in message and "compute in float64" in message


# --- the rule about inputs ------------------------------------------------------------------------

def relu_in_place(z):
    z[z < 0] = 0
    return z


def causal_attention_in_place(q, k, v):
    q /= q.shape[-1] ** 0.5                              # scales the caller's queries
    scores = (q @ k.transpose(-2, -1)).masked_fill(~torch.ones(len(q), len(q), dtype=torch.bool).tril(),
                                                   float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


RULE = "do not change the input array in place; return a new array"


@pytest.mark.parametrize("checker, fn", [(checks.relu, relu_in_place),
                                         (checks.causal_attention, causal_attention_in_place)])
def test_answers_that_change_their_input_are_told_the_rule(checker, fn):
    message = checker(fn).message
    assert "changed its input" in message and RULE in message


def test_the_rule_about_inputs_is_in_the_module_docstring():
    assert RULE in checks.__doc__


def test_a_debuggers_tracing_is_left_alone(short_time_limit):
    """Under a debugger (it traces the code itself) the time limit adds no tracing of its own."""
    def debugger(frame, event, arg):
        return None

    sys.settrace(debugger)
    try:
        result = checks.dot(endless)
        assert sys.gettrace() is debugger
    finally:
        sys.settrace(None)
    assert "did not finish" in result.message


# --- tiered hints ------------------------------------------------------------

def _tiered_checker(fn):
    cases = [checks.Case((np.array([1.0, -2.0]),), np.array([1.0, 0.0]), "a small vector")]
    return checks.run_checks("tiered_demo", fn, cases,
                             hint=["nudge: which values must change?", "more: negatives become 0",
                                   "answer: np.maximum(0, z)"])


@pytest.fixture
def fresh_hints(monkeypatch):
    from helpers.checks import engine
    monkeypatch.setattr(engine, "_HINTS", {})
    monkeypatch.setattr(engine, "_HINTS_SHOWN", {})
    monkeypatch.setitem(engine.CHECKERS, "tiered_demo", _tiered_checker)


def test_each_failed_run_gives_the_next_hint_tier_and_the_last_one_stays(fresh_hints):
    wrong = lambda z: z  # noqa: E731
    said = [_tiered_checker(wrong).message for _ in range(4)]
    assert "nudge" in said[0] and "more:" not in said[0] and 'checks.hint("tiered_demo")' in said[0]
    assert "more: negatives" in said[1] and "answer" not in said[1]
    assert "answer: np.maximum" in said[2] and "checks.hint" not in said[2]
    assert said[3].splitlines()[-1] == said[2].splitlines()[-1]


def test_a_right_answer_shows_no_hint_and_uses_no_tier(fresh_hints):
    from helpers.checks import engine
    result = _tiered_checker(lambda z: np.maximum(0, z))
    assert result.passed and "Hint" not in result.message
    assert engine._HINTS_SHOWN.get("tiered_demo", 0) == 0


def test_asking_for_a_hint_gives_the_next_tier_then_says_it_was_the_last(fresh_hints, capsys):
    first = checks.hint("tiered_demo")
    assert "run checks.tiered_demo(your_function) first" in first.message
    _tiered_checker(lambda z: z)                      # nudge shown by the failed run
    assert "more: negatives" in checks.hint("tiered_demo").message
    last = checks.hint("tiered_demo").message
    assert "answer: np.maximum" in last and "That is the last hint" not in last
    assert "That is the last hint" in checks.hint("tiered_demo").message


def test_hint_for_an_unknown_name_suggests_the_closest_checker(fresh_hints):
    result = checks.hint("tiered_dem")
    assert not result.passed and 'checks.hint("tiered_demo")' in result.message
    assert "no checker called" in checks.hint(None).message
    assert "no checker called" in checks.hint(12).message


def test_a_one_sentence_hint_is_one_tier(fresh_hints):
    cases = [checks.Case((1.0,), 2.0, "one number")]
    said = [checks.run_checks("tiered_demo", lambda x: x, cases, hint="double it").message for _ in range(2)]
    assert said[0].endswith("Hint: double it") and said[1].endswith("Hint: double it")


# --- predict-then-run ----------------------------------------------------------

def test_a_prediction_is_judged_and_explained_either_way():
    why = "The mask is applied before the softmax."
    right = checks.check_prediction("demo_predict", lambda: " B", "b", why, choices=["a", "b"])
    wrong = checks.check_prediction("demo_predict", lambda: "a", "b", why, choices=["a", "b"])
    assert right.passed and why in right.message
    assert not wrong.passed and "said 'a'; the answer is 'b'" in wrong.message and why in wrong.message


def test_a_prediction_outside_the_choices_or_not_a_number_is_named():
    odd = checks.check_prediction("demo_predict", lambda: "maybe", "b", "why", choices=["a", "b"])
    assert "must be one of 'a', 'b'" in odd.message
    assert "single number" in checks.check_prediction("demo_predict", lambda: [1, 2], 3.0, "why").message
    assert "not implemented yet" in checks.check_prediction("demo_predict", _raises_not_implemented, 3.0, "why").message


def _raises_not_implemented():
    raise NotImplementedError()


@pytest.mark.parametrize("said, passed", [(3.0, True), (3.29, True), (np.float32(2.8), True), (torch.tensor(3.1), True),
                                          (3.4, False), (0, False)])
def test_a_number_prediction_passes_within_its_tolerance_in_any_type(said, passed):
    assert checks.check_prediction("demo_predict", lambda: said, 3.0, "why", rel=0.1).passed is passed


# --- under nbgrader's autograde --------------------------------------------------

def test_under_nbgrader_a_failed_check_raises_after_printing_and_a_pass_does_not(monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert checks.dot(lambda w, x: float(np.sum(w * x))).passed
    with pytest.raises(checks.engine.CheckFailed, match="dot: on the example"):
        checks.dot(lambda w, x: w * x)
    assert "✗ dot" in capsys.readouterr().out

    def stub(w, x):
        raise NotImplementedError()
    with pytest.raises(checks.engine.CheckFailed, match="not implemented yet"):
        checks.dot(stub)
    assert not checks.hint("dot").passed            # asking for a hint is not a failed check


def test_outside_nbgrader_a_failed_check_only_prints(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert not checks.dot(lambda w, x: w * x).passed


def test_verify_is_silent_when_a_claim_holds_and_names_it_when_not(capsys):
    assert checks.verify("two is more than one", 2 > 1) is None
    assert capsys.readouterr().out == ""
    with pytest.raises(checks.ClaimFailed, match="the loss falls below 2.0"):
        checks.verify("the loss falls below 2.0", 2.3 < 2.0)
    with pytest.raises(AssertionError):  # a plain assert's type, so nbval reports it as a failure
        checks.verify("an empty list is something", [])


def test_cleaner_collapses_cells_tagged_verify(tmp_path):
    import importlib.util
    import nbformat
    cleaner = Path(__file__).parents[1] / ".ci" / "clean_notebooks.py"
    spec = importlib.util.spec_from_file_location("clean_notebooks", cleaner)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("checks.verify('x', True)", metadata={"tags": ["verify"]}),
                nbformat.v4.new_code_cell("print(1)")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    module.clean(str(path))
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].metadata["jupyter"] == {"source_hidden": True}
    assert "jupyter" not in cells[1].metadata


def test_inputs_that_are_models_or_plain_objects_count_as_unchanged_copies():
    """The engine copies a case's inputs to see whether the learner changed them: a model is
    compared by its weights and a plain object (a tokenizer) by its fields, not by identity."""
    import copy
    from helpers import gpt, tokenizers
    from helpers.checks.engine import _same
    model = gpt.GPT(gpt.GPTConfig(vocab_size=10, n_layer=1, n_head=2, n_embd=8, block_size=8))
    kept, changed = copy.deepcopy(model), copy.deepcopy(model)
    assert _same(model, kept)
    with torch.no_grad():
        next(changed.parameters()).add_(1.0)
    assert not _same(model, changed)
    tok = tokenizers.CharTokenizer("to be or not")
    assert _same(copy.deepcopy(tok), copy.deepcopy(tok))
    assert not _same(tok, tokenizers.CharTokenizer("to be or not!"))
