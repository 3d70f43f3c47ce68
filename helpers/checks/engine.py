"""The checker engine: :class:`Case`, :func:`run_checks`, :class:`CheckResult` and the registry.

A checker builds a list of :class:`Case` (arguments and the expected answer, computed by a
reference implementation) and hands it to :func:`run_checks`, which calls the learner's
function on each case under the time limit (``timing.py``), compares the answers
(``compare.py``) and prints one verdict, wrapped at ``WIDTH`` characters on spaces.
Every checker is registered with :func:`checker`, so that tests can try them all.
"""

import copy
import difflib
import os
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from helpers.checks import timing
from helpers.checks.compare import as_array, compare_arrays, compare_scalar, short

WIDTH = 90  # characters: a printed verdict is wrapped on spaces at this width (JupyterLab breaks words)


@dataclass
class CheckResult:
    """The verdict of one checker: ``passed``, and the ``message`` it printed (one line for the
    verdict, one for the hint; as printed, each is wrapped to :data:`WIDTH` characters)."""

    name: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    @property
    def printed(self) -> str:
        """The message as printed: wrapped on spaces to :data:`WIDTH` characters."""
        return wrap(self.message)

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


# ---------------------------------------------------------------------------
# The registry: every checker of the course, by name
# ---------------------------------------------------------------------------

CHECKERS: dict[str, Callable[[Any], CheckResult]] = {}


def checker(fn):
    """Register ``fn`` as a checker under its name in :data:`CHECKERS` and return it unchanged.

    Tests try every registered checker on the same broken answers. Two checkers of one name in
    different modules are refused (the same one again, as when a module is reloaded, replaces it).
    """
    known = CHECKERS.get(fn.__name__)
    if known is not None and known.__module__ != fn.__module__:
        raise ValueError(f"two checkers are called {fn.__name__}: in {known.__module__} and {fn.__module__}")
    CHECKERS[fn.__name__] = fn
    return fn


# ---------------------------------------------------------------------------
# Printing a verdict
# ---------------------------------------------------------------------------

def wrap(message: str, width: int = WIDTH) -> str:
    """``message`` with each line longer than ``width`` wrapped on spaces (never inside a word),
    into as few lines as at ``width`` but of even lengths (no last line of one word). A continued
    line is indented under its text: the verdict's under the text after its mark ("✗ "), the
    hint's under the text after "Hint: "."""
    lines = []
    for line in message.split("\n"):
        if len(line) <= width:
            lines.append(line)
            continue
        body = line.lstrip(" ")
        indent = " " * (len(line) - len(body) + (len("Hint: ") if body.startswith("Hint: ") else 2))

        def fill(at: int) -> list[str]:
            return textwrap.wrap(line, at, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)

        balanced, n_lines = width, len(fill(width))
        while balanced > width // 2 and len(fill(balanced - 1)) == n_lines:
            balanced -= 1
        lines.extend(fill(balanced))
    return "\n".join(lines)


class CheckFailed(AssertionError):
    """Raised by a failed check only while nbgrader grades a notebook (its autograde or validate
    sets ``NBGRADER_EXECUTION``): an error in a test cell is how nbgrader scores it 0."""


class ClaimFailed(AssertionError):
    """Raised by :func:`verify` when a claim the notebook's prose makes does not hold on this run."""


def verify(claim: str, holds) -> None:
    """Check one claim the prose makes, quietly: nothing happens when it holds.

    Notebooks state a result in words and prove it in one line right after it, so the reading
    flow stays the explanation: ``checks.verify("the loss falls below 2.0", loss < 2.0)``.
    When the claim fails on a learner's machine, the error says which sentence is wrong.
    """
    if not bool(holds):
        raise ClaimFailed(f"The notebook says: {claim!r}, but on this run it does not hold. "
                          "Please report it (with your computer and versions) so the text can be fixed.")


def _say(name: str, passed: bool, message: str, grading: bool = False) -> CheckResult:
    """Print ``message`` (wrapped) and return it as the verdict of checker ``name``. A failed
    verdict (``grading=True``) raises :class:`CheckFailed` under nbgrader, after printing."""
    result = CheckResult(name, passed, message)
    print(result.printed)
    if grading and not passed and os.environ.get("NBGRADER_EXECUTION"):
        raise CheckFailed(result.message)
    return result


# ---------------------------------------------------------------------------
# Running the checks
# ---------------------------------------------------------------------------

_NOT_IMPLEMENTED = object()  # what _check_case returns for the student copy's unfinished stub
_TOO_SLOW_QUESTION = "Is there a loop that never ends, or is it doing much more work than needed?"


# ---------------------------------------------------------------------------
# Tiered hints: a nudge first, more when the learner fails again or asks, the answer last
# ---------------------------------------------------------------------------

_HINTS: dict[str, tuple[str, ...]] = {}   # checker name -> its hint tiers, as last given to run_checks
_HINTS_SHOWN: dict[str, int] = {}         # checker name -> how many tiers the learner has seen


def _tiers(hint) -> tuple[str, ...]:
    """A checker's hint as tiers: one string is one tier; a list or tuple goes from nudge to answer."""
    if not hint:
        return ()
    return (hint,) if isinstance(hint, str) else tuple(str(tier) for tier in hint if tier)


def _next_hint(name: str) -> str:
    """The next tier of ``name``'s hint (the last one again once all are shown), counted as seen."""
    tiers = _HINTS.get(name, ())
    if not tiers:
        return ""
    shown = _HINTS_SHOWN.get(name, 0)
    _HINTS_SHOWN[name] = min(shown + 1, len(tiers))
    tier = min(shown, len(tiers) - 1)
    more = f" (More: run the check again, or checks.hint(\"{name}\").)" if tier < len(tiers) - 1 else ""
    return tiers[tier] + more


def hint(name: str) -> CheckResult:
    """Print the next hint for checker ``name`` (notebooks call it as ``checks.hint("name")``):
    each call gives more, the last one the answer. Never raises."""
    name = getattr(name, "__name__", name)  # checks.hint(checks.relu) works too
    if not isinstance(name, str) or name not in CHECKERS:
        close = difflib.get_close_matches(str(name), CHECKERS, n=1)
        guess = f" Did you mean checks.hint(\"{close[0]}\")?" if close else ""
        return _say("hint", False, f"? hint: there is no checker called {short(name)}.{guess}")
    if name not in _HINTS:
        return _say(name, False, f"? {name}: run checks.{name}(your_function) first; if it says what is "
                                 f"wrong and you are stuck, ask again.")
    if not _HINTS[name]:
        return _say(name, False, f"? {name}: this check has no hint.")
    last = _HINTS_SHOWN.get(name, 0) >= len(_HINTS[name])
    text = _next_hint(name)
    if last:
        text += " (That is the last hint.)"
    return _say(name, False, f"  Hint: {text}")


def run_checks(name: str, fn, cases: list[Case], hint, time_limit: float | None = None,
               success: str | None = None) -> CheckResult:
    """Run ``fn`` on every case; print and return the verdict. Never hangs, and never raises
    (but for ``KeyboardInterrupt``: interrupting the kernel stops the checker too).

    ``hint`` is one string, or tiers from a nudge to the answer: the first failed run shows the
    first tier, each later failed run (or ``checks.hint(name)``) the next one. ``success`` is what
    a pass says (by default, how many checks passed).
    Each case may take ``time_limit`` seconds (``timing.TIME_LIMIT`` when not given, read now,
    so that it can be changed at any time), and all the cases together ``TOTAL_TIME_FACTOR``
    times that.
    """
    _HINTS[name] = _tiers(hint)

    def verdict(passed: bool, text: str) -> CheckResult:
        text = text if text.endswith((".", "?", "!")) else text + "."
        message = f"{'✓' if passed else '✗'} {name}: {text}"
        if not passed and _HINTS[name]:
            message += f"\n  Hint: {_next_hint(name)}"
        return _say(name, passed, message, grading=True)

    if fn is None or not callable(fn):
        return verdict(False, f"expected a function, but got {short(fn)}. Pass the function itself, "
                              f"without calling it: checks.{name}(my_function), not checks.{name}(my_function()).")
    clock = timing.Clock.for_checker(fn, time_limit)
    for case in cases:
        problem = _check_case(fn, case, clock, len(cases))
        if problem is _NOT_IMPLEMENTED:
            return _say(name, False, f"… {name}: not implemented yet. Replace `raise NotImplementedError()` "
                                     "with your code, then run this again.", grading=True)
        if problem:
            return verdict(False, problem)
    return verdict(True, success or f"all {len(cases)} checks passed.")


def check_prediction(name: str, fn, answer, why: str, choices=None, rel: float = 0.1, hint=()) -> CheckResult:
    """The checker of a *predict-then-run* question. ``fn()`` returns the learner's prediction,
    written before running the cell that shows the answer: one of ``choices`` (text, compared
    without case or surrounding spaces) or, without ``choices``, a number within ``rel`` (a
    fraction) of ``answer``. Right or wrong, the verdict says ``why`` (the explanation is the point)."""

    def compare(got, expected):
        if got is None:
            return "returned None: did you forget the `return` statement?"
        if choices is not None:
            options = {str(option).strip().lower(): option for option in choices}
            said = got.strip().lower() if isinstance(got, str) else None
            if said not in options:
                return f"returned {short(got)}, but the prediction must be one of " + ", ".join(map(repr, choices))
            return None if said == str(expected).strip().lower() else f"said {got.strip()!r}; the answer is {expected!r}. {why}"
        try:
            value = as_array(got)
        except TypeError as exc:
            return str(exc)
        if value.size != 1:
            return f"returned {short(got)}, but a single number was expected"
        if not np.isfinite(value).all():
            return f"returned {short(got)}: NaN or infinity is not a prediction"
        if compare_scalar(got, expected, atol=0.0, rtol=rel) is None:
            return None
        return f"said {short(got)}; the answer is {short(expected)}. {why}"

    return run_checks(name, fn, [Case((), answer, "the question", compare)], hint,
                      success=f"right, {short(answer)}. {why}")


def _check_case(fn, case: Case, clock: timing.Clock, n_cases: int):
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
        return (f"on {case.label}, your function returned {short(got)}, which could not be compared "
                f"({type(problem).__name__}).")
    return problem


def _same(a, b) -> bool:
    """Whether two inputs are unchanged copies of each other (arrays, tensors, containers, models,
    plain objects such as a tokenizer)."""
    try:
        if hasattr(a, "detach") and hasattr(b, "detach"):
            return a.shape == b.shape and bool((a == b).all() | (a.isnan() & b.isnan()).all())
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
        if hasattr(a, "state_dict") and hasattr(b, "state_dict"):   # a model: its weights and buffers
            return type(a) is type(b) and _same(a.state_dict(), b.state_dict())
        if type(a) is type(b) and type(a).__eq__ is object.__eq__ and hasattr(a, "__dict__"):
            return _same(vars(a), vars(b))   # an object without its own ==, e.g. a tokenizer: its fields
        return bool(a == b)
    except Exception:
        return True  # cannot tell: do not accuse the learner


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


def _too_slow(status: str, detail, clock: timing.Clock, label: str, n_cases: int) -> str:
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
