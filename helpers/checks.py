"""Exercise checkers (introduced in notebook 00_start_here).

Every exercise ends with a call such as ``checks.dot(dot)``. The checker runs the
learner's function on ordinary cases, edge cases and hidden larger cases, then
prints one line: a tick when everything is right, or what went wrong with a hint.

A checker never crashes and never hangs, whatever it is given: ``None``, a
function that raises (even ``sys.exit()``), returns the wrong shape or type,
returns NaN or an endless generator, changes its input, hard-codes the visible
example, or loops forever (it is stopped after a time limit, even inside a
``try: ... except: pass``). It returns a :class:`CheckResult` that tests can inspect.
Interrupting the kernel (Ctrl-C) still stops a checker at once.

One rule holds for every exercise:
do not change the input array in place; return a new array.
(``z * 2`` and ``np.maximum(0, z)`` make a new array; ``z *= 2`` and ``z[z < 0] = 0``
change ``z`` itself.) The checkers hand the function copies and reject an answer that
changes them.

Answers computed in float32 (PyTorch's default) pass as well as float64 ones: the
tolerances leave room for float32 rounding.

How a checker is built: a list of :class:`Case` (arguments and the expected
answer, computed by a reference implementation) handed to :func:`run_checks`.
"""

import copy
import itertools
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

TIME_LIMIT = 2.0  # seconds a learner's function may take on one case (read each time a checker runs)
TOTAL_TIME_FACTOR = 3  # all the cases of one checker together may take this many times TIME_LIMIT
RETRY_EVERY = 0.001  # seconds: once time is up, the learner's code is stopped again this often until it ends
FLOAT32_ROOM = 1e-6  # float32 rounding room, per unit of the size of the terms summed (about 8 float32 steps)


@dataclass
class CheckResult:
    """The verdict of one checker: ``passed`` and the ``message`` it printed."""

    name: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        """The checker has already printed its verdict; show nothing more."""


@dataclass
class Case:
    """One call of the learner's function: ``fn(*args)`` should equal ``expected``.

    ``label`` describes the input in words for feedback ("a batch of 3 rows").
    ``compare(got, expected)`` returns ``None`` when ``got`` is right, else a sentence.
    """

    args: tuple
    expected: Any
    label: str
    compare: Callable[[Any, Any], str | None] | None = None
    kwargs: dict = field(default_factory=dict)


def _short(value, limit: int = 120) -> str:
    """A short, readable rendering of any value for feedback."""
    try:
        if hasattr(value, "detach"):
            value = _tensor_to_numpy(value)
        if isinstance(value, np.generic):  # a NumPy number: show 99, not np.int64(99)
            value = value.item()
        if isinstance(value, np.ndarray) and value.ndim == 0:
            return f"{value.item():.6g}"
        if isinstance(value, np.ndarray):
            text = np.array2string(value, precision=4, threshold=8, edgeitems=2, suppress_small=True)
            text = " ".join(text.split())
            return f"array of shape {value.shape}: {text}"
        text = repr(value)
    except Exception:  # a learner's object whose repr itself fails
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tensor_to_numpy(tensor):
    """A PyTorch tensor as a NumPy array (bfloat16, which NumPy lacks, becomes float32)."""
    tensor = tensor.detach().cpu()
    try:
        return tensor.numpy()
    except TypeError:
        return tensor.float().numpy()


# ---------------------------------------------------------------------------
# The time limit
#
# On the main thread (Linux, macOS) the SIGALRM signal interrupts the learner's code
# when its time is up. Elsewhere (Windows, or a checker called from another thread)
# the code runs in a helper thread instead, and the checker stops waiting for it.
# ---------------------------------------------------------------------------

class _TimeLimit(BaseException):
    """Raised inside the learner's code when it runs too long (BaseException, so a bare
    ``except Exception`` in their code cannot swallow it)."""


def _outcome_of(call):
    """Run ``call()``; return ``("ok", value)`` or ``("raised", exception)``.

    Every exception is returned, even ``SystemExit`` (from ``sys.exit()``) and
    ``KeyboardInterrupt``: :func:`run_checks` reports the first and raises the second again.
    Only the time limit's own ``_TimeLimit`` passes through.
    """
    try:
        return "ok", call()
    except _TimeLimit:
        raise
    except BaseException as exc:  # the learner's code may raise anything at all
        return "raised", exc


def _learner_globals(fn):
    """The global names of the module (or notebook) the learner's function was written in,
    which tell the learner's own code from library code; ``None`` if there are none."""
    fn = getattr(fn, "__wrapped__", fn)
    return getattr(fn, "__globals__", None)


class _Alarm:
    """The signal handler that stops the learner's code on the main thread.

    When time is up, :meth:`ring` raises ``_TimeLimit`` wherever the learner's code is. A bare
    ``except:`` (or ``except BaseException``) inside a loop can catch that and carry on, so the
    alarm rings again every ``RETRY_EVERY`` seconds; from the second ring on, it also turns on
    line tracing in the learner's own functions, so that ``_TimeLimit`` is raised again at the
    first line of the ``except:`` block that caught it, from where it escapes the ``try``.
    Nothing else is interrupted by tracing, so clean-up (``with`` blocks, library code) still runs.
    (Code that catches it at two levels at once, a loop in a loop each with its own bare
    ``except:``, may still run on: those ``except:`` blocks swallow Ctrl-C too, so only
    restarting the kernel stops it.)
    """

    def __init__(self, learner_globals):
        self.learner_globals = learner_globals
        self.armed = False  # while True, a ring raises _TimeLimit
        self.rang = False  # whether time ran out

    def ring(self, signum, frame):
        """Called by the SIGALRM signal, with ``frame`` the code it interrupted."""
        if not self.armed:
            return
        if self.rang:  # the last _TimeLimit was caught and the code ran on
            self.trace_learner_code(frame)
        self.rang = True
        raise _TimeLimit()

    def is_learners(self, frame) -> bool:
        """Whether ``frame`` runs the learner's code (it shares their global names)."""
        return self.learner_globals is not None and frame.f_globals is self.learner_globals

    def trace_learner_code(self, frame):
        """Trace the learner's functions: those running now (from ``frame`` back to the checker's
        code that called them) and any they call from now on."""
        sys.settrace(self.trace_call)
        while frame is not None and frame.f_globals is not globals():
            if self.is_learners(frame):
                frame.f_trace = self.stop_at_line
            frame = frame.f_back

    def trace_call(self, frame, event, arg):
        """Called as each new function starts: trace it line by line if it is the learner's."""
        return self.stop_at_line if self.is_learners(frame) else None

    def stop_at_line(self, frame, event, arg):
        """Called before each line of the learner's traced code runs: raise again inside an
        ``except`` block that has just caught ``_TimeLimit``."""
        if self.armed and event == "line" and isinstance(sys.exc_info()[1], _TimeLimit):
            raise _TimeLimit()
        return self.stop_at_line


def _call_with_alarm(call, seconds, learner_globals):
    """``call()`` on the main thread, stopped by the alarm signal after ``seconds``."""
    alarm = _Alarm(learner_globals)
    previous_handler = signal.signal(signal.SIGALRM, alarm.ring)
    previous_trace = sys.gettrace()
    try:
        alarm.armed = True
        signal.setitimer(signal.ITIMER_REAL, seconds, RETRY_EVERY)
        outcome = _outcome_of(call)
    except _TimeLimit:
        outcome = "timeout", None
    finally:
        alarm.armed = False  # first, before any call: from here on a late ring raises nothing
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if alarm.rang:
            sys.settrace(previous_trace)
    if alarm.rang:  # even if the code caught every _TimeLimit and then returned
        return "timeout", None
    return outcome


def _call_in_thread(call, seconds):
    """``call()`` in a helper thread, waited for at most ``seconds``. A thread cannot be stopped
    from outside, so code that never ends goes on running in the background."""
    box = {}
    worker = threading.Thread(target=lambda: box.update(outcome=_outcome_of(call)), daemon=True)
    worker.start()
    worker.join(seconds)
    return box.get("outcome", ("timeout", "still running"))


def _call_with_time_limit(call, seconds, learner_globals=None):
    """Run ``call()`` for at most ``seconds``. Returns ``("ok", value)``, ``("raised", exception)``,
    ``("timeout", None)``, or ``("timeout", "still running")`` when it could not be stopped."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        return _call_with_alarm(call, seconds, learner_globals)
    return _call_in_thread(call, seconds)


class _Clock:
    """The time one checker call may take: ``per_case`` seconds for each case, ``total`` for all."""

    def __init__(self, per_case, total, learner_globals):
        self.per_case = per_case
        self.total = total
        self.deadline = time.monotonic() + total
        self.learner_globals = learner_globals

    def run(self, call):
        """``call()`` under the time limit: as :func:`_call_with_time_limit`, with the status
        ``"out of time"`` instead of ``"timeout"`` when the checker's total time ran out."""
        seconds = min(self.per_case, self.deadline - time.monotonic())
        if seconds < 0.001:
            return "out of time", None
        status, value = _call_with_time_limit(call, seconds, self.learner_globals)
        if status == "timeout" and seconds < self.per_case:
            return "out of time", value
        return status, value


# ---------------------------------------------------------------------------
# Comparing answers
# ---------------------------------------------------------------------------

def _same(a, b) -> bool:
    """Whether two inputs are unchanged copies of each other (arrays, tensors, containers)."""
    try:
        if hasattr(a, "detach") and hasattr(b, "detach"):
            return a.shape == b.shape and bool((a == b).all() | (a.isnan() & b.isnan()).all())
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
        return bool(a == b)
    except Exception:
        return True  # cannot tell: do not accuse the learner


def as_array(got):
    """Turn a learner's answer (array, tensor, list, number) into a float NumPy array, or raise TypeError."""
    if got is None:
        raise TypeError("returned None: did you forget the `return` statement?")
    if isinstance(got, (str, bytes)):
        raise TypeError(f"returned the text {got!r}, not a number: return the value itself, not a string")
    if hasattr(got, "detach"):
        got = _tensor_to_numpy(got)
    if isinstance(got, (list, tuple)):  # e.g. a pair of tensors
        got = [_tensor_to_numpy(x) if hasattr(x, "detach") else x for x in got]
    try:
        arr = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"returned {_short(got)}, which is not a number or an array of numbers") from None
    return arr


_LOW_PRECISION_DIGITS = {"float32": 7, "float16": 3, "bfloat16": 2}


def _precision_note(got) -> str:
    """For an answer held in float32 (or float16): a note that its rounding may be what failed it."""
    first = got[0] if isinstance(got, (list, tuple)) and len(got) else got
    name = str(getattr(first, "dtype", "")).replace("torch.", "")
    if name not in _LOW_PRECISION_DIGITS:
        return ""
    return (f". Your answer is {name}, which keeps only about {_LOW_PRECISION_DIGITS[name]} significant "
            "digits: if your method is right, compute in float64 (NumPy's default) instead")


def _worst_miss(arr, expected, atol, rtol, close) -> str:
    """Where ``arr`` misses ``expected`` by most, measured against the room allowed there."""
    allowed = np.broadcast_to(atol + rtol * np.abs(expected), expected.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.abs(arr - expected) / allowed
    excess = np.where(close, 0.0, np.nan_to_num(excess, nan=np.inf))
    index = np.unravel_index(int(np.argmax(excess)), expected.shape)
    off = f"off by {abs(arr[index] - expected[index]):.3g}, more than the {allowed[index]:.3g} allowed"
    if expected.size == 1:
        return f"returned {_short(arr)}, expected {_short(expected)} ({off})"
    where = ", ".join(str(int(i)) for i in index)
    return (f"returned {_short(arr)}, expected {_short(expected)}. The worst element, at index [{where}], "
            f"is {arr[index]:.6g} instead of {expected[index]:.6g} ({off})")


def compare_arrays(got, expected, atol=1e-6, rtol: float = 1e-5) -> str | None:
    """``None`` if ``got`` matches the array ``expected`` in shape and value, else what differs.

    Each element may be off by ``atol + rtol * |expected|`` (as ``np.isclose``); ``atol`` may
    also be an array, one room per element.
    """
    try:
        arr = as_array(got)
    except TypeError as exc:
        return str(exc)
    expected = np.asarray(expected, dtype=float)
    if arr.shape != expected.shape:
        return f"returned shape {arr.shape}, expected shape {expected.shape}"
    bad = ~np.isfinite(arr) & np.isfinite(expected)
    if bad.any():
        return f"returned NaN or infinity where a finite number was expected: {_short(arr)}"
    close = np.isclose(arr, expected, atol=atol, rtol=rtol, equal_nan=True)
    if close.all():
        return None
    return _worst_miss(arr, expected, atol, rtol, close) + _precision_note(got)


def compare_scalar(got, expected, atol=1e-6, rtol: float = 1e-5) -> str | None:
    """``None`` if ``got`` is a single number close to ``expected``, else what differs."""
    try:
        arr = as_array(got)
    except TypeError as exc:
        return str(exc)
    if arr.size != 1:
        return f"returned {_short(got)}, but a single number was expected"
    problem = compare_arrays(arr.reshape(()), np.asarray(expected, dtype=float).reshape(()), atol=atol, rtol=rtol)
    return problem + _precision_note(got) if problem else None


def _within(atol, rtol: float = 1e-5, compare=compare_arrays):
    """A Case's ``compare`` with its own tolerance."""
    return lambda got, expected: compare(got, expected, atol=atol, rtol=rtol)


def _float32_room(terms):
    """The absolute error to allow on values made by adding up terms whose sizes (absolute
    values) add up to ``terms``: a float32 sum may be off by a few float32 steps of that size.
    A dot product of 50 terms can end near 0 by cancellation, yet carry the rounding of its terms."""
    return 1e-6 + FLOAT32_ROOM * np.asarray(terms, dtype=float)


# ---------------------------------------------------------------------------
# Running the checks
# ---------------------------------------------------------------------------

_NOT_IMPLEMENTED = object()  # what _check_case returns for the student copy's unfinished stub
_TOO_SLOW_QUESTION = "Is there a loop that never ends, or is it doing much more work than needed?"


def run_checks(name: str, fn, cases: list[Case], hint: str, time_limit: float | None = None) -> CheckResult:
    """Run ``fn`` on every case; print and return the verdict. Never hangs, and never raises
    (but for ``KeyboardInterrupt``: interrupting the kernel stops the checker too).

    Each case may take ``time_limit`` seconds (``TIME_LIMIT`` when not given, read now, so that
    it can be changed at any time), and all the cases together ``TOTAL_TIME_FACTOR`` times that.
    """
    time_limit = TIME_LIMIT if time_limit is None else time_limit

    def verdict(passed: bool, text: str) -> CheckResult:
        text = text if text.endswith((".", "?", "!")) else text + "."
        message = f"{'✓' if passed else '✗'} {name}: {text}"
        if not passed and hint:
            message += f"\n  Hint: {hint}"
        print(message)
        return CheckResult(name, passed, message)

    if fn is None or not callable(fn):
        return verdict(False, f"expected a function, but got {_short(fn)}. Pass the function itself, "
                              f"without calling it: checks.{name}(my_function), not checks.{name}(my_function()).")
    clock = _Clock(time_limit, TOTAL_TIME_FACTOR * time_limit, _learner_globals(fn))
    for case in cases:
        problem = _check_case(fn, case, clock, len(cases))
        if problem is _NOT_IMPLEMENTED:
            return CheckResult(name, False, _print(f"… {name}: not implemented yet. Replace "
                                                   "`raise NotImplementedError()` with your code, then run this again."))
        if problem:
            return verdict(False, problem)
    return verdict(True, f"all {len(cases)} checks passed.")


def _check_case(fn, case: Case, clock: _Clock, n_cases: int):
    """What is wrong with ``fn`` on ``case``, in words; ``None`` if nothing. The call and the
    checking of its answer (which may be an endless generator) both run under the time limit."""
    args, kept = copy.deepcopy(case.args), copy.deepcopy(case.args)
    status, got = clock.run(lambda: fn(*args, **case.kwargs))
    if status in ("timeout", "out of time"):
        return _too_slow(status, got, clock, case.label, n_cases)
    if status == "raised":
        _stop_if_interrupted(got)
        return _NOT_IMPLEMENTED if isinstance(got, NotImplementedError) else _raised(got, case.label)
    status, problem = clock.run(lambda: _judge(case, args, kept, got))
    if status in ("timeout", "out of time"):
        return (f"on {case.label}, your function returned an object of type {type(got).__name__}, and reading "
                f"it did not finish in time. Is it an endless generator? Return a finished list or array."
                f"{_still_running(problem)}")
    if status == "raised":  # an answer so odd that comparing it fails
        _stop_if_interrupted(problem)
        return (f"on {case.label}, your function returned {_short(got)}, which could not be compared "
                f"({type(problem).__name__}).")
    return problem


def _judge(case: Case, args, kept, got):
    """What is wrong with the answer ``got``, in words, or with the arguments ``args`` the function
    was given (``kept`` is an untouched copy); ``None`` if nothing."""
    if not _same(args, kept):
        return (f"changed its input while working on {case.label}. The rule is: do not change the input array "
                "in place; return a new array (or list). For example z * 2 and np.maximum(0, z) make a new "
                "array, while z *= 2 and z[z < 0] = 0 change z itself.")
    compare = case.compare or compare_arrays
    problem = compare(got, case.expected)
    return f"on {case.label}, your function {problem}" if problem else None


def _stop_if_interrupted(exc):
    """Raise ``exc`` again if it is a KeyboardInterrupt: the learner pressed Ctrl-C (or interrupted
    the kernel) to stop, and stopping is what the checker must do then."""
    if isinstance(exc, KeyboardInterrupt):
        raise exc


def _raised(exc: BaseException, label: str) -> str:
    """The learner's function raised ``exc`` on the case ``label``: what to tell them."""
    if isinstance(exc, SystemExit):
        return (f"called sys.exit() (or exit(), quit()) on {label}, which would stop Python itself. "
                "Return the answer instead.")
    detail = str(exc)[:200]
    if not detail:  # e.g. GeneratorExit()
        return f"raised {type(exc).__name__} (on {label})."
    return f"raised {type(exc).__name__}: {detail} (on {label})."


def _too_slow(status: str, detail, clock: _Clock, label: str, n_cases: int) -> str:
    """The message for code stopped by the time limit on one case, or by the checker's total time."""
    if status == "timeout":
        what = f"did not finish within {clock.per_case:g} s on {label}."
    else:
        what = f"did not finish all {n_cases} checks within {clock.total:g} s in total (time ran out on {label})."
    return f"{what} {_TOO_SLOW_QUESTION}{_still_running(detail)}"


def _still_running(detail) -> str:
    """What to add when the time limit could not stop the code (it ran in a helper thread)."""
    if detail == "still running":
        return " It is still running in the background: restart the kernel to stop it."
    return ""


def _print(message: str) -> str:
    print(message)
    return message


# ---------------------------------------------------------------------------
# Notebook 00: how exercises work
# ---------------------------------------------------------------------------

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
        room = _float32_room(np.abs(w * x).sum())  # a float32 sum may end near 0 but carries its terms' rounding
        cases.append(Case((w, x), float(w @ x), f"random vectors of length {n}", _within(room, compare=compare_scalar)))
    return run_checks("dot", fn, cases, hint="multiply w and x element by element, then add everything up: "
                                             "np.sum(w * x) or w @ x.")


# ---------------------------------------------------------------------------
# Notebook 01: neurons and layers
# ---------------------------------------------------------------------------

def relu(fn) -> CheckResult:
    """Checker for notebook 01: ``fn(z)`` is ``max(0, z)`` element by element, any shape."""
    rng = np.random.default_rng(1)
    cases = [Case((np.array([-2.0, 0.0, 3.0]),), np.array([0.0, 0.0, 3.0]), "the example z = [-2, 0, 3]")]
    cases.append(Case((np.array([[-1.5, 2.0], [0.5, -0.1]]),), np.array([[0.0, 2.0], [0.5, 0.0]]), "a 2-D array"))
    big = rng.normal(size=(64, 33)) * 100
    cases.append(Case((big,), np.maximum(0.0, big), "a hidden array of shape (64, 33)"))
    return run_checks("relu", fn, cases, hint="np.maximum(0, z) keeps positives and turns negatives into 0, "
                                              "for arrays of any shape.")


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

    strict.__wrapped__ = fn  # the learner's own function, for the time limit (see _learner_globals)
    return strict


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
    return run_checks("sigmoid", checked, cases,
                      hint="1 / (1 + np.exp(-z)) works for arrays of any shape, but np.exp(-z) overflows "
                           "when z is very negative. Compute e = np.exp(-np.abs(z)), which is never above 1, "
                           "then take 1 / (1 + e) where z >= 0 and e / (1 + e) where z < 0 (np.where).")


def dense_layer(fn) -> CheckResult:
    """Checker for notebook 01: ``fn(X, W, b)`` is the layer ``X @ W + b`` for a batch of rows."""
    rng = np.random.default_rng(3)
    cases = []
    X, W, b = np.array([[1.0, 2.0]]), np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]]), np.array([0.0, 1.0, -1.0])
    cases.append(Case((X, W, b), X @ W + b, "the example: one row, 2 inputs, 3 outputs"))
    for n, d_in, d_out in [(4, 3, 2), (1, 5, 1), (100, 50, 20)]:
        X, W, b = rng.normal(size=(n, d_in)), rng.normal(size=(d_in, d_out)), rng.normal(size=d_out)
        room = _float32_room(np.abs(X) @ np.abs(W) + np.abs(b))  # each output is a sum of d_in + 1 terms
        label = f"a hidden batch X of shape ({n}, {d_in}), W of shape ({d_in}, {d_out})"
        cases.append(Case((X, W, b), X @ W + b, label, _within(room)))
    return run_checks("dense_layer", fn, cases, hint="each row of X is one example: X @ W has shape (n, d_out); "
                                                     "then add the bias b to every row.")


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


def _compare_naming_slips(slips, atol=1e-6, rtol: float = 1e-5):
    """``compare_arrays``, which also says which usual slip a wrong answer matches."""

    def compare(got, expected):
        problem = compare_arrays(got, expected, atol=atol, rtol=rtol)
        if problem is None:
            return None
        try:
            arr = as_array(got)
        except TypeError:
            return problem
        for wrong, words in slips:
            if wrong.shape == np.shape(expected) and np.allclose(wrong, expected, atol=atol, rtol=rtol):
                continue                      # this slip gives the right answer here: it explains nothing
            if arr.shape == wrong.shape and np.allclose(arr, wrong, atol=atol, rtol=rtol):
                return f"{problem}. It looks as if you {words}"
        return problem

    return compare


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
        cases.append(Case((X, W1, b1, W2, b2), expected, label, _compare_naming_slips(_two_layer_slips(X, W1, b1, W2, b2))))
    return run_checks("two_layer_forward", fn, cases,
                      hint="one layer after the other: hidden = relu(X @ W1 + b1) has shape (n, d_hidden); "
                           "then return sigmoid(hidden @ W2 + b2), shape (n, d_out).")


# ---------------------------------------------------------------------------
# Notebook 02: learning from data
# ---------------------------------------------------------------------------

def mse(fn) -> CheckResult:
    """Checker for notebook 02: ``fn(y_pred, y)`` is the mean of the squared differences, one number."""
    rng = np.random.default_rng(4)
    cases = [Case((np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0])), 4.0 / 3.0,
                  "the example y_pred = [1, 2, 3], y = [1, 2, 5]", compare_scalar),
             Case((np.array([0.5]), np.array([0.5])), 0.0, "a perfect prediction", compare_scalar)]
    for n in (7, 10_000):
        a, b = rng.normal(size=n), rng.normal(size=n)
        cases.append(Case((a, b), float(np.mean((a - b) ** 2)), f"hidden arrays of length {n}", compare_scalar))
    return run_checks("mse", fn, cases, hint="square the differences y_pred - y, then take the mean "
                                             "(divide by how many there are, not by a fixed number).")


def _bowl(p):
    return float(np.sum((p - 1.0) ** 2))


def _wavy(p):
    return float(np.sum(np.sin(p) * p) + p.ravel()[0] * p.ravel()[-1])


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
                  _compare_naming_slips(slips, atol=1e-8, rtol=1e-8), kwargs={"eps": 0.01})]
    return run_checks("numerical_gradient", fn, cases,
                      hint="for each entry i: nudge params[i] up by eps and down by eps on a copy, "
                           "take (f(up) - f(down)) / (2 * eps); return an array shaped like params.")


def gradient_descent_step(fn) -> CheckResult:
    """Checker for notebook 02: ``fn(params, grad, learning_rate)`` returns ``params - learning_rate * grad``
    as a new array (the input is left unchanged)."""
    rng = np.random.default_rng(6)
    cases = [Case((np.array([1.0, 2.0]), np.array([0.5, -1.0]), 0.1), np.array([0.95, 2.1]),
                  "the example params = [1, 2], grad = [0.5, -1], rate 0.1")]
    for shape, rate in [((4,), 0.01), ((3, 3), 2.0)]:
        p, g = rng.normal(size=shape), rng.normal(size=shape)
        cases.append(Case((p, g, rate), p - rate * g, f"hidden arrays of shape {shape} with rate {rate}"))
    return run_checks("gradient_descent_step", fn, cases,
                      hint="step *against* the gradient: params - learning_rate * grad, returned as a new array.")


# ---------------------------------------------------------------------------
# Notebook 03: backpropagation
# ---------------------------------------------------------------------------

def _pair(got, expected):
    """Compare a learner's ``(grad_a, grad_b)`` with the expected pair."""
    if isinstance(got, (int, float)) or (hasattr(got, "ndim") and getattr(got, "ndim", 1) == 0):
        return f"returned one number ({_short(got)}), but a pair (grad_a, grad_b) was expected"
    return compare_arrays(got, expected, atol=1e-6, rtol=1e-6)


def mul_backward(fn) -> CheckResult:
    """Checker for notebook 03: ``fn(a, b, grad_out)`` returns ``(grad_a, grad_b)`` for ``out = a * b``."""
    rng = np.random.default_rng(7)
    cases = [Case((2.0, -3.0, 1.0), (-3.0, 2.0), "the example a = 2, b = -3, grad_out = 1", _pair),
             Case((0.5, 4.0, 0.0), (0.0, 0.0), "grad_out = 0", _pair)]
    for _ in range(3):
        a, b, g = (float(v) for v in rng.normal(size=3) * 5)
        cases.append(Case((a, b, g), (b * g, a * g), f"hidden numbers a = {a:.3f}, b = {b:.3f}, grad_out = {g:.3f}", _pair))
    return run_checks("mul_backward", fn, cases, hint="d(a*b)/da = b and d(a*b)/db = a; multiply each by "
                                                      "grad_out (the chain rule) and return both.")


def tanh_backward(fn) -> CheckResult:
    """Checker for notebook 03: ``fn(out, grad_out)`` returns ``grad_in`` for ``out = tanh(x)``."""
    rng = np.random.default_rng(8)
    cases = [Case((0.5, 1.0), 0.75, "the example out = 0.5, grad_out = 1", compare_scalar),
             Case((0.0, 2.0), 2.0, "out = 0 (the steepest point)", compare_scalar)]
    for _ in range(3):
        out, g = float(np.tanh(rng.normal() * 2)), float(rng.normal() * 3)
        cases.append(Case((out, g), (1 - out ** 2) * g, f"hidden numbers out = {out:.3f}, grad_out = {g:.3f}",
                          compare_scalar))
    return run_checks("tanh_backward", fn, cases, hint="the derivative of tanh is 1 - tanh(x)**2, and you are "
                                                       "given out = tanh(x): (1 - out**2) * grad_out.")


# ---------------------------------------------------------------------------
# Notebook 04: training networks
# ---------------------------------------------------------------------------

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
    return run_checks("accuracy", fn, cases, hint="a logit above 0 means class 1; compare (logits > 0) with the "
                                                  "labels and take the mean of the matches as a float.")


def _batches_compare(got, expected):
    if got is None:
        return "returned None: did you forget the `return` statement?"
    if isinstance(got, (str, bytes, dict)) or not hasattr(got, "__iter__"):
        return f"returned {_short(got)}, which is not a list of batches"
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
            return f"returned batch {k} = {_short(g)}, expected {_short(e)}"
        if not _all_integers(batch):
            return (f"returned batch {k} = {_short(batch)}, which holds floats: indices must be integers "
                    "(they pick rows, X[batch]); np.arange(start, stop) gives integers")
    return None


def make_batches(fn) -> CheckResult:
    """Checker for notebook 04: ``fn(n, batch_size)`` splits indices ``0..n-1`` into consecutive batches."""
    def reference(n, k):
        return [np.arange(i, min(i + k, n)) for i in range(0, n, k)]

    cases = [Case((10, 4), reference(10, 4), "the example n = 10, batch_size = 4", _batches_compare),
             Case((6, 3), reference(6, 3), "n = 6, batch_size = 3 (no short batch)", _batches_compare),
             Case((3, 8), reference(3, 8), "a batch size larger than n", _batches_compare),
             Case((1001, 64), reference(1001, 64), "hidden n = 1001, batch_size = 64", _batches_compare)]
    return run_checks("make_batches", fn, cases, hint="start a batch every batch_size indices: "
                                                      "range(0, n, batch_size); the last batch may be shorter.")


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
    return run_checks("bce_with_logits", fn, cases,
                      hint="per example: max(z, 0) - z*y + log(1 + exp(-|z|)) never overflows; then the mean. "
                           "Taking log(sigmoid(z)) directly fails for huge logits.")


# ---------------------------------------------------------------------------
# Notebook 05: text to numbers
# ---------------------------------------------------------------------------

def _is_integer(value) -> bool:
    """Whether ``value`` is one integer: a Python or NumPy integer, or a single-number integer
    array or tensor (``list(torch.tensor([1, 2]))`` holds those); not a bool, float or string."""
    if hasattr(value, "detach"):
        value = _tensor_to_numpy(value)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _all_integers(values) -> bool:
    """Whether every number in ``values`` (a list, tuple, array or tensor) has an integer type."""
    if hasattr(values, "detach"):
        values = _tensor_to_numpy(values)
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values.dtype.kind in "iu"
    return all(_is_integer(v) for v in values)


def _kind(value) -> str:
    """The type of a number, in words: ``float``, ``str``, ``torch.float32``..."""
    return str(getattr(value, "dtype", type(value).__name__))


def _as_ids(got):
    """``(ids, None)`` for a list (tuple, 1-D array or tensor) of integer token ids, with ``ids``
    a list of Python ints; else ``(None, the problem in words)``."""
    if got is None:
        return None, "returned None: did you forget the `return` statement?"
    values = _tensor_to_numpy(got) if hasattr(got, "detach") else got
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = list(values)  # NumPy integers stay integers
    if not isinstance(values, (list, tuple)):
        return None, f"returned {_short(got)}, which is not a list of integer ids"
    for value in values:
        if not _is_integer(value):
            return None, (f"returned {_short(got)}, which is not a list of integer ids: {_short(value)} is "
                          f"of type {_kind(value)}. Token ids are whole numbers of an integer type (int)")
    return [int(v) for v in values], None


def _compare_counts(got, expected):
    if got is None:
        return "returned None: did you forget the `return` statement?"
    if not hasattr(got, "items"):
        return f"returned {_short(got)}, but a dict {{(a, b): count}} was expected"
    if not all(isinstance(k, tuple) and len(k) == 2 for k in got.keys()):
        return "returned a dict whose keys are not pairs (a, b)"
    for key in got.keys():
        for value in key:
            if not _is_integer(value):
                return (f"returned a dict with the key {_short(key)}, which is not a pair of integer ids: "
                        f"{_short(value)} is of type {_kind(value)}. Token ids are whole numbers of an integer "
                        "type (int)")
    got = {k: v for k, v in got.items() if v}
    if got != dict(expected):
        missing = [p for p in expected if p not in got]
        wrong = [p for p in got if p in expected and got[p] != expected[p]]
        extra = [p for p in got if p not in expected]
        if wrong:
            p = wrong[0]
            return f"counted {p} {_short(got[p])} times, expected {expected[p]}"
        if missing:
            return f"is missing the pair {missing[0]} (it occurs {expected[missing[0]]} times)"
        return f"counted the pair {extra[0]}, which does not occur"
    return None


def pair_counts(fn) -> CheckResult:
    """Checker for notebook 05: ``fn(ids)`` returns ``{(a, b): count}`` of adjacent pairs, overlaps included."""
    from collections import Counter

    rng = np.random.default_rng(11)
    def ref(ids):
        return dict(Counter(zip(ids, ids[1:])))
    examples = [([1, 2, 3, 1, 2], "the example [1, 2, 3, 1, 2]"), ([5, 5, 5], "overlapping pairs [5, 5, 5]"),
                ([7], "a single id"), ([], "an empty list")]
    big = [int(v) for v in rng.integers(0, 20, size=3000)]
    examples.append((big, "a hidden list of 3000 ids"))
    cases = [Case((ids,), ref(ids), label, _compare_counts) for ids, label in examples]
    return run_checks("pair_counts", fn, cases, hint="walk over zip(ids, ids[1:]) and count each pair; "
                                                     "[5, 5, 5] has the pair (5, 5) twice.")


def _compare_ids(got, expected):
    ids, problem = _as_ids(got)
    if problem:
        return problem
    if ids != list(expected):
        return f"returned {_short(ids)}, expected {_short(list(expected))}"
    return None


def merge(fn) -> CheckResult:
    """Checker for notebook 05: ``fn(ids, pair, new_id)`` replaces each occurrence of ``pair``, left to
    right and without overlaps, by ``new_id``, returning a new list."""
    from helpers import tokenizers

    rng = np.random.default_rng(12)
    examples = [([1, 2, 3, 1, 2], (1, 2), 99, "the example [1, 2, 3, 1, 2] with (1, 2) -> 99"),
                ([5, 5, 5], (5, 5), 9, "overlapping occurrences [5, 5, 5] with (5, 5) -> 9"),
                ([1, 3, 1], (1, 2), 9, "a pair that does not occur"),
                ([], (1, 2), 9, "an empty list")]
    big = [int(v) for v in rng.integers(0, 4, size=2000)]
    examples.append((big, (1, 1), 300, "a hidden list of 2000 ids"))
    cases = [Case((ids, pair, new), tokenizers.merge(ids, pair, new), label, _compare_ids)
             for ids, pair, new, label in examples]
    return run_checks("merge", fn, cases, hint="walk with an index i: if ids[i], ids[i + 1] is the pair, "
                                               "append new_id and jump by 2, else append ids[i] and step by 1.")


# ---------------------------------------------------------------------------
# Notebook 06: next-token prediction
# ---------------------------------------------------------------------------

def _softmax_reference(logits, temperature):
    z = np.asarray(logits, dtype=float) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_with_temperature(fn) -> CheckResult:
    """Checker for notebook 06: ``fn(logits, temperature)`` is ``softmax(logits / temperature)`` along
    the last axis, without overflow for large logits."""
    rng = np.random.default_rng(13)
    examples = [(np.array([1.0, 2.0, 3.0]), 1.0, "the example logits [1, 2, 3], temperature 1"),
                (np.array([1.0, 2.0, 3.0]), 0.5, "temperature 0.5 (sharper)"),
                (np.array([1.0, 2.0, 3.0]), 100.0, "temperature 100 (almost uniform)"),
                (rng.normal(size=(4, 6)) * 3, 0.7, "a hidden batch of shape (4, 6): softmax along the last axis"),
                (np.array([1000.0, 999.0, -1000.0]), 1.0, "huge logits [1000, 999, -1000]")]
    cases = [Case((z, t), _softmax_reference(z, t), label) for z, t, label in examples]
    return run_checks("softmax_with_temperature", fn, cases,
                      hint="divide the logits by the temperature, subtract the largest (along the last axis, "
                           "keepdims=True) so exp never overflows, exponentiate, divide by the sum.")


def perplexity(fn) -> CheckResult:
    """Checker for notebook 06: ``fn(loss)`` turns a mean cross-entropy in nats into a perplexity, ``e**loss``."""
    import torch

    cases = [Case((np.log(78.0),), 78.0, "the example loss ln(78) = 4.357", compare_scalar),
             Case((0.0,), 1.0, "a loss of 0 (a perfect model)", compare_scalar),
             Case((2.4724,), float(np.exp(2.4724)), "a hidden loss of 2.4724", compare_scalar),
             Case((torch.tensor(1.5),), float(np.exp(1.5)), "a loss given as a PyTorch tensor", compare_scalar)]
    return run_checks("perplexity", fn, cases, hint="perplexity = e to the power of the loss in nats: "
                                                    "math.exp(float(loss)) or np.exp(loss).")


def mean_nll(fn) -> CheckResult:
    """Checker for notebook 06: ``fn(p)`` is the mean of ``-ln p`` over the probabilities ``p`` that a model
    gave the true next tokens."""
    rng = np.random.default_rng(14)
    examples = [(np.array([0.5, 0.25]), "the example p = [0.5, 0.25]"), (np.array([1.0]), "a certain prediction p = [1]"),
                (rng.uniform(0.01, 1, size=1000), "hidden probabilities of 1000 tokens")]
    cases = [Case((p,), float(-np.mean(np.log(p))), label, compare_scalar) for p, label in examples]
    return run_checks("mean_nll", fn, cases, hint="take -np.log of each probability (natural log), then the mean.")


# ---------------------------------------------------------------------------
# Notebook 07: attention
# ---------------------------------------------------------------------------

def _attention_weights_reference(Q, K, scale=True, axis=-1):
    scores = Q @ K.T / (np.sqrt(Q.shape[-1]) if scale is True else scale)
    scores = scores - scores.max(axis=axis, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=axis, keepdims=True)


def _score_sizes(Q, K):
    """For each query (row), the largest size of the terms its scores are summed from,
    ``(|Q| @ |K|^T) / sqrt(d)``: float32 rounds each score in proportion to it, and the
    softmax passes that rounding on to the weights."""
    return (np.abs(Q) @ np.abs(K).T / np.sqrt(Q.shape[-1])).max(axis=-1, keepdims=True)


def attention_weights(fn) -> CheckResult:
    """Checker for notebook 07: ``fn(Q, K)`` is ``softmax(Q K^T / sqrt(d))`` row by row, ``(n, d), (T, d) -> (n, T)``."""
    rng = np.random.default_rng(15)
    examples = [(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
                 "the example: one query [1, 0] and keys [1, 0], [0, 1], [1, 1]"),
                (rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), "3 hidden queries and 5 keys of size 4"),
                (rng.normal(size=(16, 64)) * 3, rng.normal(size=(16, 64)) * 3, "16 queries and keys of size 64"),
                (rng.normal(size=(2, 8)) * 40, rng.normal(size=(6, 8)) * 40, "large queries and keys (scores near 1000)")]
    cases = []
    for Q, K, label in examples:
        d = Q.shape[1]
        slips = [(_attention_weights_reference(Q, K, scale=1.0), "forgot to divide the scores by sqrt(d)"),
                 (_attention_weights_reference(Q, K, scale=float(d)), "divided by d instead of sqrt(d)"),
                 (_attention_weights_reference(Q, K, axis=0), "took the softmax down the columns (axis 0): each "
                                                              "row, one query, must sum to 1 over the keys")]
        slips = [slip for i, slip in enumerate(slips) if (i < 2 and d > 1) or (i == 2 and Q.shape[0] > 1)]
        cases.append(Case((Q, K), _attention_weights_reference(Q, K), label,
                          _compare_naming_slips(slips, atol=_float32_room(_score_sizes(Q, K)))))
    return run_checks("attention_weights", fn, cases,
                      hint="scores = Q @ K.T / np.sqrt(d) has shape (n, T); subtract each row's largest score "
                           "(axis=-1, keepdims=True), exponentiate, divide by each row's sum.")


def _as_mask(got, expected):
    """``(mask, None)`` for an answer shaped like ``expected`` holding only True/False (or 1/0),
    else ``(None, the problem in words)``."""
    try:
        arr = as_array(got)
    except TypeError as exc:
        return None, str(exc)
    if arr.shape != expected.shape:
        return None, f"returned shape {arr.shape}, expected shape {expected.shape}"
    if not np.isin(arr, (0.0, 1.0)).all():
        return None, f"returned {_short(arr)}: a mask holds only True/False (or 1/0)"
    return arr.astype(bool), None


def _compare_mask(got, expected):
    arr, problem = _as_mask(got, expected)
    if problem:
        return problem
    if np.array_equal(arr, expected):
        return None
    T = expected.shape[0]
    if np.array_equal(arr, expected.T):
        return "lets every position see the future and not the past (upper triangle): use np.tril"
    if np.array_equal(arr, np.tril(np.ones((T, T), dtype=bool), -1)):
        return "hides each position from itself (the diagonal is False): a token may attend to itself"
    return f"returned {_short(arr)}, expected {_short(expected)}"


def causal_mask(fn) -> CheckResult:
    """Checker for notebook 07: ``fn(T)`` is a ``(T, T)`` boolean array, ``True`` where column ``j <= `` row ``i``."""
    cases = [Case((T,), np.tril(np.ones((T, T), dtype=bool)), label, _compare_mask)
             for T, label in [(3, "the example T = 3"), (4, "T = 4"), (1, "T = 1"), (64, "a hidden T = 64")]]
    return run_checks("causal_mask", fn, cases, hint="row i is the query's position, column j the key's: allowed "
                                                     "when j <= i. np.tril(np.ones((T, T), dtype=bool)) does it.")


def _masked_attention_reference(Q, K, V, mask):
    import torch

    out = torch.nn.functional.scaled_dot_product_attention(
        *(torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in (Q, K, V)), attn_mask=torch.from_numpy(mask))
    return out.numpy()


def masked_attention(fn) -> CheckResult:
    """Checker for notebook 07: ``fn(Q, K, V, mask)`` is ``softmax(Q K^T / sqrt(d), masked) V``, checked
    against ``torch.nn.functional.scaled_dot_product_attention``."""
    rng = np.random.default_rng(16)
    examples = []
    Q = K = np.eye(3)
    V = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    examples.append((Q, K, V, np.tril(np.ones((3, 3), dtype=bool)), "the example (Q = K = identity, causal mask)"))
    for T, d, label in [(5, 4, "a hidden causal T = 5, d = 4"), (32, 16, "a hidden causal T = 32, d = 16")]:
        examples.append((rng.normal(size=(T, d)), rng.normal(size=(T, d)), rng.normal(size=(T, 3)),
                         np.tril(np.ones((T, T), dtype=bool)), label))
    patchy = rng.random((6, 6)) < 0.5
    patchy[np.arange(6), np.arange(6)] = True
    examples.append((rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.normal(size=(6, 2)), patchy,
                     "a hidden mask that is not causal (each row allows some positions)"))
    examples.append((rng.normal(size=(4, 8)) * 30, rng.normal(size=(4, 8)) * 30, rng.normal(size=(4, 2)),
                     np.tril(np.ones((4, 4), dtype=bool)), "large scores (near 1000)"))
    cases = []
    for Q, K, V, mask, label in examples:
        scores = Q @ K.T / np.sqrt(Q.shape[1])
        unmasked = _masked_attention_reference(Q, K, V, np.ones_like(mask))
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        after = (weights / weights.sum(axis=1, keepdims=True)) * mask
        zeroed = np.where(mask, scores, 0.0)
        w0 = np.exp(zeroed - zeroed.max(axis=1, keepdims=True))
        slips = [((w0 / w0.sum(axis=1, keepdims=True)) @ V, "set the forbidden scores to 0, which still gives them "
                                                             "weight (or ignored the mask): use -inf, "
                                                             "np.where(mask, scores, -np.inf)"),
                 (unmasked, "ignored the mask"),
                 (after @ V, "applied the mask after the softmax, so the rows no longer sum to 1: mask the "
                             "scores with -inf before the softmax"),
                 (_masked_attention_reference(Q * np.sqrt(np.sqrt(Q.shape[1])), K * np.sqrt(np.sqrt(Q.shape[1])), V, mask),
                  "forgot to divide the scores by sqrt(d)")]
        room = _float32_room((_score_sizes(Q, K) + 1) * np.abs(V).max())  # weights' rounding, times the values
        cases.append(Case((Q, K, V, mask), _masked_attention_reference(Q, K, V, mask), label,
                          _compare_naming_slips([s for s in slips if Q.shape[0] > 1], atol=room)))
    return run_checks("masked_attention", fn, cases,
                      hint="scores = Q @ K.T / np.sqrt(d); scores = np.where(mask, scores, -np.inf); softmax each "
                           "row (subtract its max first); return weights @ V, shape (T, d_v).")


# ---------------------------------------------------------------------------
# Notebook 08: the transformer
# ---------------------------------------------------------------------------

def _layer_norm_reference(x, gamma, beta, eps=1e-5, ddof=0, axis=-1, eps_outside=False):
    mean = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True, ddof=ddof)
    scale = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
    with np.errstate(divide="ignore", invalid="ignore"):     # the eps = 0 slip divides 0 by 0
        return (x - mean) / scale * gamma + beta


def layer_norm(fn) -> CheckResult:
    """Checker for notebook 08: ``fn(x, gamma, beta, eps=1e-5)`` normalises each row of ``x`` (the last axis)
    to mean 0 and variance 1, then scales by ``gamma`` and shifts by ``beta``; equals ``nn.LayerNorm``."""
    rng = np.random.default_rng(17)
    examples = [(np.array([[1.0, 2.0, 3.0]]), np.ones(3), np.zeros(3), "the example x = [[1, 2, 3]], gamma 1, beta 0"),
                (rng.normal(size=(4, 8)) * 5 + 3, rng.normal(size=8), rng.normal(size=8), "a hidden (4, 8) batch"),
                (rng.normal(size=(2, 3, 16)), rng.normal(size=16), rng.normal(size=16), "a hidden (B, T, C) = (2, 3, 16) batch"),
                (np.array([[5.0, 5.0, 5.0, 5.0], [1.0, 1.0 + 1e-3, 1.0, 1.0 - 1e-3]]), np.ones(4), np.full(4, 0.5),
                 "rows with no or tiny spread (eps matters)")]
    cases = []
    for x, gamma, beta, label in examples:
        slips = [(_layer_norm_reference(x, gamma, beta, ddof=1), "used the unbiased variance (ddof=1); layer norm "
                                                                 "divides by C, np.var's default"),
                 (_layer_norm_reference(x, gamma, beta, eps_outside=True), "added eps to the standard deviation; "
                                                                           "it goes inside the square root"),
                 ((x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5), "forgot gamma and beta"),
                 (_layer_norm_reference(x, gamma, beta, eps=0.0), "left out eps")]
        slips.append((_layer_norm_reference(x, gamma, beta, axis=0),
                      "normalised down the columns (axis 0); each row, one token, is normalised on its own"))
        slips = [(np.nan_to_num(w), words) for w, words in slips if np.isfinite(w).all()]
        cases.append(Case((x, gamma, beta), _layer_norm_reference(x, gamma, beta), label,
                          _compare_naming_slips(slips, atol=1e-5, rtol=1e-4)))
    return run_checks("layer_norm", fn, cases,
                      hint="mean and variance over the last axis (axis=-1, keepdims=True; np.var divides by C); "
                           "(x - mean) / np.sqrt(var + eps) * gamma + beta.")


def _compare_number(slips):
    def compare(got, expected):
        problem = compare_scalar(got, expected, atol=0.5, rtol=0.0)
        if problem is None:
            return None
        try:
            value = float(as_array(got).reshape(-1)[0])
        except (TypeError, IndexError):
            return problem
        for wrong, words in slips:
            if wrong != expected and value == wrong:
                return f"{problem}. It looks as if you {words}"
        return problem

    return compare


def _count_slips(V, T, L, C):
    """The right count for ``(vocab_size, block_size, n_layer, n_embd)`` and the usual miscounts."""
    from helpers import gpt

    def count(bias=True):
        return gpt.count_parameters(gpt.GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=1, n_embd=C, bias=bias))

    right = count()
    return right, [(right + V * C, "counted the language-model head separately; its weights are tied to the "
                                   "token embedding, one matrix counted once"),
                   (right - T * C, "left out the position embeddings (block_size x n_embd)"),
                   (count(bias=False), "left out the biases"),
                   (right - L * 2 * 2 * C, "left out the two layer norms in each block (weight and bias, C each)"),
                   (right - 2 * C, "left out the final layer norm"),
                   (right - L * (C * C + C), "counted the attention as 3 matrices (query, key, value); there is a "
                                             "fourth, the output projection"),
                   (right - L * (6 * C * C + 3 * C), "made the MLP 1x wide instead of 4x")]


def _compare_count(V, T, L, C):
    return _compare_number(_count_slips(V, T, L, C)[1])


def gpt_parameter_count(fn) -> CheckResult:
    """Checker for notebook 08: ``fn(vocab_size, block_size, n_layer, n_embd)`` is the number of parameters of
    the course GPT (biases on, head tied to the token embedding), as ``helpers.gpt.count_parameters``."""
    from helpers import gpt

    examples = [((65, 64, 4, 128), "the example: nanoGPT's CPU sizes (65, 64, 4, 128)"),
                ((50257, 1024, 12, 768), "GPT-2 small (50257, 1024, 12, 768)"),
                ((78, 1, 1, 1), "a hidden tiny model (78, 1, 1, 1)"),
                ((512, 256, 6, 192), "a hidden model (512, 256, 6, 192)")]
    cases = [Case(args, gpt.count_parameters(gpt.GPTConfig(vocab_size=args[0], block_size=args[1], n_layer=args[2],
                                                           n_head=1, n_embd=args[3])), label, _compare_count(*args))
             for args, label in examples]
    return run_checks("gpt_parameter_count", fn, cases,
                      hint="add up: token embedding V*C (the head shares it) + positions T*C + per block "
                           "[attention 4*(C*C + C), MLP C*4C + 4C + 4C*C + C, two layer norms 2*2C] + final layer norm 2C.")


# ---------------------------------------------------------------------------
# Notebook 09: pretraining
# ---------------------------------------------------------------------------

def _schedule(step, lr, min_lr, warmup_steps, steps, warmup_from_zero=False, to_zero=False, from_start=False):
    if step < warmup_steps:
        return lr * (step if warmup_from_zero else step + 1) / warmup_steps
    done = step if from_start else step - warmup_steps
    span = (steps - 1) if from_start else (steps - 1 - warmup_steps)
    progress = min(done / max(1, span), 1.0)
    low = 0.0 if to_zero else min_lr
    return low + 0.5 * (1 + np.cos(np.pi * progress)) * (lr - low)


def warmup_cosine(fn) -> CheckResult:
    """Checker for notebook 09: ``fn(step, lr, min_lr, warmup_steps, steps)`` is the learning rate at
    ``step`` (counted from 0): ``lr * (step + 1) / warmup_steps`` during the warm-up, then a cosine
    from ``lr`` down to ``min_lr`` at the last step, ``steps - 1``; as ``helpers.training.learning_rate``."""
    settings = [(2e-3, 1e-4, 10, 100, "the example schedule (lr=2e-3, min_lr=1e-4, warmup_steps=10, steps=100)"),
                (2e-3, 1e-4, 200, 4800, "the shipped model's schedule (2e-3, 1e-4, 200, 4800)"),
                (0.5, 0.05, 1, 7, "a hidden short schedule (0.5, 0.05, 1, 7)")]
    cases = []
    for lr, min_lr, warmup, steps, label in settings:
        for step in sorted({0, warmup - 1, warmup, warmup + 1, (warmup + steps) // 2, steps - 2, steps - 1} - {-1}):
            args = (step, lr, min_lr, warmup, steps)
            slips = [(np.asarray(_schedule(*args, warmup_from_zero=True)),
                      "started the warm-up at 0: at step 0 the rate is lr * 1 / warmup_steps, so no step is wasted"),
                     (np.asarray(_schedule(*args, to_zero=True)), "decayed to 0 instead of to min_lr"),
                     (np.asarray(_schedule(*args, from_start=True)),
                      "measured the cosine's progress from step 0; it starts after the warm-up")]
            cases.append(Case(args, np.asarray(_schedule(*args)), f"{label} at step {step}",
                              _compare_naming_slips(slips, atol=1e-12, rtol=1e-6)))
    return run_checks("warmup_cosine", fn, cases,
                      hint="if step < warmup_steps: return lr * (step + 1) / warmup_steps; otherwise progress = "
                           "(step - warmup_steps) / (steps - 1 - warmup_steps), and the rate is "
                           "min_lr + 0.5 * (1 + cos(pi * progress)) * (lr - min_lr).")


def _clip_reference(grads, max_norm, per_array=False, always=False, l1=False):
    grads = [np.asarray(g, dtype=float) for g in grads]
    if per_array:
        return [g * min(1.0, max_norm / (np.sqrt((g ** 2).sum()) + 1e-6)) for g in grads]
    norm = sum(np.sqrt((g ** 2).sum()) for g in grads) if l1 else np.sqrt(sum((g ** 2).sum() for g in grads))
    scale = max_norm / (norm + 1e-6) if always else min(1.0, max_norm / (norm + 1e-6))
    return [g * scale for g in grads]


def _compare_gradient_lists(slips):
    def compare(got, expected):
        if not isinstance(got, (list, tuple)):
            return f"returned {_short(got)}, which is not a list of arrays (one per gradient array)"
        if len(got) != len(expected):
            return f"returned {len(got)} arrays for {len(expected)} gradients"
        for i, (g, e) in enumerate(zip(got, expected)):
            problem = compare_arrays(g, e, atol=1e-7, rtol=1e-5)
            if problem:
                for wrong, words in slips:
                    if all(np.shape(a) == np.shape(b) and np.allclose(as_array(a), b, atol=1e-7, rtol=1e-5)
                           for a, b in zip(got, wrong)):
                        return f"array {i}: {problem}. It looks as if you {words}"
                return f"array {i}: {problem}"
        return None

    return compare


def clip_by_global_norm(fn) -> CheckResult:
    """Checker for notebook 09: ``fn(grads, max_norm)`` scales a list of gradient arrays by
    ``min(1, max_norm / (total_norm + 1e-6))``, ``total_norm`` the norm of all of them together;
    as ``torch.nn.utils.clip_grad_norm_``."""
    rng = np.random.default_rng(18)
    examples = [([np.array([3.0, 0.0]), np.array([[0.0], [4.0]])], 1.0, "the example: [3, 0] and [[0], [4]], max_norm 1"),
                ([np.array([0.3, 0.4])], 1.0, "a gradient already shorter than max_norm (left alone)"),
                ([rng.normal(size=(8, 8)), rng.normal(size=8), rng.normal(size=(3, 8))], 2.0,
                 "hidden gradients of three layers, max_norm 2"),
                ([rng.normal(size=(64, 64)) * 10, rng.normal(size=64)], 0.5, "a hidden large gradient, max_norm 0.5")]
    cases = []
    for grads, max_norm, label in examples:
        slips = [(_clip_reference(grads, max_norm, per_array=True), "clipped each array on its own; the norm is "
                                                                    "taken over all of them together"),
                 (_clip_reference(grads, max_norm, always=True), "rescaled even when the norm was already below "
                                                                 "max_norm; clipping only ever shrinks"),
                 (_clip_reference(grads, max_norm, l1=True), "added up the arrays' norms; the global norm is the "
                                                             "square root of the sum of all squares")]
        cases.append(Case((grads, max_norm), _clip_reference(grads, max_norm), label, _compare_gradient_lists(slips)))
    return run_checks("clip_by_global_norm", fn, cases,
                      hint="total = np.sqrt(sum((g ** 2).sum() for g in grads)); scale = min(1, max_norm / "
                           "(total + 1e-6)); return [g * scale for g in grads] (new arrays, inputs unchanged).")


# ---------------------------------------------------------------------------
# Notebook 10: evaluation and data
# ---------------------------------------------------------------------------

def _power_law_reference(x, y, linear=False, semilog=False, log10_exp=False):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if linear:
        return np.polyfit(x, y, 1)[::-1]
    if semilog:
        b, log_a = np.polyfit(x, np.log(y), 1)
        return np.array([np.exp(log_a), b])
    if log10_exp:
        b, log_a = np.polyfit(np.log10(x), np.log10(y), 1)
        return np.array([np.exp(log_a), b])
    b, log_a = np.polyfit(np.log(x), np.log(y), 1)
    return np.array([np.exp(log_a), b])


def fit_power_law(fn) -> CheckResult:
    """Checker for notebook 10: ``fn(x, y)`` returns ``(a, b)`` with ``y ≈ a * x**b``, the least-squares
    line through ``(log x, log y)``; as ``helpers.experiments.fit_power_law``."""
    rng = np.random.default_rng(19)
    x_hidden = np.logspace(4, 7, 6)
    examples = [(np.array([1.0, 10.0, 100.0]), np.array([2.0, 1.0, 0.5]), "the example: y = 2 x^-0.301 exactly"),
                (np.array([1e4, 1e5, 1e6]), 3.0 * np.array([1e4, 1e5, 1e6]) ** -0.1,
                 "an exact power law y = 3 x^-0.1 over data sizes 1e4..1e6"),
                (x_hidden, 5.0 * x_hidden ** -0.07 * np.exp(rng.normal(0, 0.01, 6)),
                 "six hidden noisy points (not exactly on a line)")]
    cases = []
    for x, y, label in examples:
        slips = [(_power_law_reference(x, y, linear=True), "fitted a straight line to y against x, not on log scales"),
                 (_power_law_reference(x, y, semilog=True), "took the log of y but not of x"),
                 (_power_law_reference(x, y, log10_exp=True), "fitted on log10 scales but turned the intercept "
                                                              "back with exp; use 10**intercept (or ln throughout)"),
                 (_power_law_reference(x, y)[::-1], "returned (b, a); the order is (a, b)"),
                 (np.polyfit(np.log(x), np.log(y), 1), "returned np.polyfit's (slope, intercept) as they are; "
                                                       "return (np.exp(intercept), slope)"),
                 (np.array([np.log(_power_law_reference(x, y)[0]), _power_law_reference(x, y)[1]]),
                  "returned log a; a is the exponential of the intercept")]
        cases.append(Case((x, y), _power_law_reference(x, y), label, _compare_naming_slips(slips, atol=1e-6, rtol=1e-4)))
    return run_checks("fit_power_law", fn, cases,
                      hint="b, log_a = np.polyfit(np.log(x), np.log(y), 1) fits log y = log_a + b log x; "
                           "return (np.exp(log_a), b).")


def _normalised(document: str) -> str:
    return " ".join(document.lower().split())


def _dedup_reference(documents, exact=False, keep_last=False, drop_all=False, normalised_out=False):
    key = (lambda d: d) if exact else _normalised
    if drop_all:
        counts = {}
        for d in documents:
            counts[key(d)] = counts.get(key(d), 0) + 1
        return [d for d in documents if counts[key(d)] == 1]
    seen, out = set(), []
    for d in (reversed(documents) if keep_last else documents):
        if key(d) not in seen:
            seen.add(key(d))
            out.append(_normalised(d) if normalised_out else d)
    return out[::-1] if keep_last else out


def _compare_documents(slips):
    def compare(got, expected):
        if isinstance(got, (str, bytes)) or not isinstance(got, (list, tuple)):
            return f"returned {_short(got)}, which is not a list of documents"
        got = list(got)
        if got == expected:
            return None
        for wrong, words in slips:
            if wrong != expected and got == wrong:
                return f"returned {_short(got, 80)}, expected {_short(expected, 80)}. It looks as if you {words}"
        if sorted(map(str, got)) == sorted(expected):
            return "kept the right documents but not in their original order (a set forgets the order)"
        return f"returned {len(got)} documents, {_short(got, 80)}; expected {len(expected)}, {_short(expected, 80)}"

    return compare


def deduplicate(fn) -> CheckResult:
    """Checker for notebook 10: ``fn(documents)`` keeps the first of every group of documents that are
    equal once lower-cased with runs of whitespace made single spaces (and trimmed), in their order,
    unchanged."""
    rng = np.random.default_rng(20)
    lines = ["To be, or not to be", "Exeunt", "My lord.", "Good night, sweet prince", "I will.", "Away!"]
    hidden = [lines[i] for i in rng.integers(0, len(lines), 40)]
    hidden = [d.upper() if rng.random() < 0.2 else d.replace(" ", "  ") if rng.random() < 0.2 else d for d in hidden]
    example = ["My lord.", "my  lord.", "Exeunt", "My lord.", "Away!"]
    examples = [(example, f"the example {example}"),
                (["Exeunt", "Away!", "To be"], "documents with no duplicates (all kept)"),
                ([], "an empty list"),
                (["  Good night\n", "good night", "GOOD NIGHT ", "Away!", "away!"], "copies differing in case, "
                                                                                    "spacing and line breaks"),
                (hidden, "a hidden list of 40 documents with many copies")]
    cases = []
    for documents, label in examples:
        slips = [(_dedup_reference(documents, exact=True), "only removed exact copies; normalise (lower-case, "
                                                           "collapse whitespace) before comparing"),
                 (_dedup_reference(documents, keep_last=True), "kept the last copy; keep the first"),
                 (_dedup_reference(documents, drop_all=True), "dropped every document that has a copy; keep one "
                                                              "of each"),
                 (_dedup_reference(documents, normalised_out=True), "returned the normalised text; return the "
                                                                    "documents unchanged")]
        cases.append(Case((documents,), _dedup_reference(documents), label, _compare_documents(slips)))
    return run_checks("deduplicate", fn, cases,
                      hint="keep a set of keys seen so far; for each document, key = ' '.join(doc.lower().split()); "
                           "if the key is new, add it to the set and append the original document.")


# ---------------------------------------------------------------------------
# Notebook 11: fine-tuning
# ---------------------------------------------------------------------------

def lora_parameter_count(fn) -> CheckResult:
    """Checker for notebook 11: ``fn(n_layer, n_embd, rank, n_targets)`` is the number of trainable
    numbers LoRA adds to the course GPT: ``n_layer * n_targets * rank * 2 * n_embd``, as
    ``helpers.finetune.count_trainable`` after ``add_lora``."""
    examples = [((4, 192, 4, 2), "the example: the shipped model, rank 4 on query and value"),
                ((12, 768, 8, 4), "GPT-2 small's sizes, rank 8 on all four attention matrices"),
                ((1, 3, 1, 1), "a hidden tiny model (1 layer, width 3, rank 1, one target)"),
                ((6, 384, 16, 2), "a hidden model (6 layers, width 384, rank 16, two targets)")]
    cases = []
    for (L, C, r, n), label in examples:
        right = L * n * r * 2 * C
        slips = [(L * n * C * C, "counted the full C x C matrix; LoRA trains two thin ones, A (r x C) and B (C x r)"),
                 (L * n * r * C, "counted only one of the two matrices A and B"),
                 (n * r * 2 * C, "counted one layer; every block gets its own LoRA matrices"),
                 (L * r * 2 * C, "counted one target matrix per block; multiply by the number of targets"),
                 (L * n * (r * 2 * C + C), "added a bias; LoRA's update has none (the frozen layer keeps its own)"),
                 (L * n * r * r * 2, "multiplied rank by rank; A is rank x in and B is out x rank")]
        cases.append(Case((L, C, r, n), right, label, _compare_number(slips)))
    return run_checks("lora_parameter_count", fn, cases,
                      hint="each wrapped C x C layer gets A (rank x C) and B (C x rank): 2 * rank * C numbers; "
                           "there are n_targets of them in each of n_layer blocks.")


def _confusion_reference(labels, predictions, n_classes, transpose=False, normalise=False):
    matrix = np.zeros((n_classes, n_classes), dtype=int)
    for true, predicted in zip(labels, predictions):
        matrix[true, predicted] += 1
    matrix = matrix.T if transpose else matrix
    if normalise:
        return matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    return matrix


def _compare_confusion(labels, predictions, n_classes):
    slips = [(_confusion_reference(labels, predictions, n_classes, transpose=True),
              "put the predicted class in the rows; rows are the true class, columns the prediction"),
             (_confusion_reference(labels, predictions, n_classes, normalise=True),
              "turned counts into fractions; count the passages")]

    def compare(got, expected):
        try:
            arr = as_array(got)
        except TypeError as exc:
            return str(exc)
        if arr.shape != expected.shape:
            hint = " (a class nobody predicted still needs its column)" if arr.ndim == 2 else ""
            return f"returned shape {arr.shape}, expected {expected.shape}{hint}"
        if np.array_equal(arr, expected):
            return None
        for wrong, words in slips:
            if not np.array_equal(wrong, expected) and np.allclose(arr, wrong):
                return f"returned {_short(arr)}, expected {_short(expected)}. It looks as if you {words}"
        return f"returned {_short(arr)}, expected {_short(expected)}"

    return compare


def confusion_matrix(fn) -> CheckResult:
    """Checker for notebook 11: ``fn(labels, predictions, n_classes)`` is an ``(n_classes, n_classes)``
    array of counts, row = true class, column = predicted class."""
    rng = np.random.default_rng(21)
    hidden_labels = rng.integers(0, 4, 50).tolist()
    hidden_predictions = [t if rng.random() < 0.6 else int(rng.integers(0, 4)) for t in hidden_labels]
    examples = [(([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3), "the example"),
                (([1, 1, 1], [1, 1, 1], 3), "every passage of class 1, all right (classes 0 and 2 never appear)"),
                (([0, 1, 2], [2, 2, 2], 3), "a classifier that always says 2"),
                ((hidden_labels, hidden_predictions, 4), "50 hidden passages, 4 classes")]
    cases = [Case(args, _confusion_reference(*args), label, _compare_confusion(*args)) for args, label in examples]
    return run_checks("confusion_matrix", fn, cases,
                      hint="start from np.zeros((n_classes, n_classes), dtype=int) and add 1 at "
                           "[true, predicted] for every pair of zip(labels, predictions).")


# ---------------------------------------------------------------------------
# Notebook 12: model families
# ---------------------------------------------------------------------------

def _permutation_mask_reference(order, strict=False, transpose=False, order_as_rank=False):
    order = list(order)
    T = len(order)
    rank = np.empty(T, dtype=int)
    if order_as_rank:
        rank[:] = order
    else:
        rank[order] = np.arange(T)
    mask = rank[None, :] < rank[:, None] if strict else rank[None, :] <= rank[:, None]
    return mask.T if transpose else mask


def _compare_permutation_mask(order):
    slips = [(_permutation_mask_reference(order, transpose=True), "swapped rows and columns: row i is the "
                                                                  "position that looks, column j the one it may see"),
             (_permutation_mask_reference(order, strict=True), "hid each position from itself; here (the content "
                                                               "stream) a position may see itself"),
             (_permutation_mask_reference(order, order_as_rank=True), "used order[i] as position i's turn; order[k] "
                                                                      "is the position whose turn is k, so its turn "
                                                                      "is rank[order[k]] = k")]

    def compare(got, expected):
        arr, problem = _as_mask(got, expected)
        if problem:
            return problem
        if np.array_equal(arr, expected):
            return None
        for wrong, words in slips:
            if not np.array_equal(wrong, expected) and np.array_equal(arr, wrong):
                return f"returned {_short(arr)}, expected {_short(expected)}. It looks as if you {words}"
        return f"returned {_short(arr)}, expected {_short(expected)}"

    return compare


def permutation_mask(fn) -> CheckResult:
    """Checker for notebook 12: ``fn(order)`` is the ``(T, T)`` boolean mask with ``mask[i, j]`` True
    when position ``j`` comes no later than position ``i`` in the factorisation ``order``; as
    ``helpers.gpt.permutation_mask``."""
    rng = np.random.default_rng(22)
    examples = [([2, 0, 1], "the example order [2, 0, 1]"), ([0, 1, 2, 3], "the order 0, 1, 2, 3 (the causal mask)"),
                ([3, 2, 1, 0], "right to left"), ([0], "a single position"),
                (rng.permutation(8).tolist(), "a hidden order of 8 positions")]
    cases = [Case((order,), _permutation_mask_reference(order), label, _compare_permutation_mask(order))
             for order, label in examples]
    return run_checks("permutation_mask", fn, cases,
                      hint="first rank[order[k]] = k (when each position's turn comes); then "
                           "mask[i, j] = rank[j] <= rank[i]: rank[None, :] <= rank[:, None].")


def _pairs_reference(turns, same_speaker=False, wrap=False, swapped=False, disjoint=False):
    step = 2 if disjoint else 1
    following = turns[1:] + (turns[:1] if wrap else [])
    pairs = [(a[1], b[1]) for a, b in list(zip(turns, following))[::step] if same_speaker or a[0] != b[0]]
    return [(b, a) for a, b in pairs] if swapped else pairs


def _compare_pairs(turns):
    slips = [(_pairs_reference(turns, same_speaker=True), "kept a speaker answering themself; skip two turns "
                                                          "by the same speaker"),
             (_pairs_reference(turns, wrap=True), "paired the last speech with the first; the dialogue does not "
                                                  "wrap around"),
             (_pairs_reference(turns, swapped=True), "returned (reply, speech); the speech comes first"),
             (_pairs_reference(turns, disjoint=True), "used each speech once; a reply is also the speech the next "
                                                      "reply answers")]

    def compare(got, expected):
        if isinstance(got, (str, bytes)) or not isinstance(got, (list, tuple)):
            return f"returned {_short(got)}, which is not a list of (speech, reply) pairs"
        got = [tuple(p) if isinstance(p, (list, tuple)) else p for p in got]
        if got == expected:
            return None
        for wrong, words in slips:
            if wrong != expected and got == wrong:
                return f"returned {_short(got, 80)}, expected {_short(expected, 80)}. It looks as if you {words}"
        return f"returned {len(got)} pairs, {_short(got, 80)}; expected {len(expected)}, {_short(expected, 80)}"

    return compare


def dialogue_pairs(fn) -> CheckResult:
    """Checker for notebook 12: ``fn(turns)``, with ``turns`` a list of ``(speaker, speech)``, returns
    ``(speech, reply)`` for every two consecutive turns by different speakers, in order."""
    rng = np.random.default_rng(23)
    names = ["HAMLET", "HORATIO", "GHOST"]
    hidden = [(names[int(rng.integers(0, 3))], f"line {i}") for i in range(30)]
    examples = [([("ANNE", "Who goes there?"), ("BEN", "A friend."), ("BEN", "Long live the king!"),
                  ("CLEO", "Ben?")], "the example"),
                ([("A", "one"), ("B", "two"), ("A", "three")], "three turns, two speakers"),
                ([("A", "alone")], "a single speech (no pairs)"),
                ([], "no turns at all"),
                (hidden, "30 hidden turns")]
    cases = [Case((turns,), _pairs_reference(turns), label, _compare_pairs(turns)) for turns, label in examples]
    return run_checks("dialogue_pairs", fn, cases,
                      hint="for (a, speech), (b, reply) in zip(turns, turns[1:]): keep (speech, reply) when a != b.")
