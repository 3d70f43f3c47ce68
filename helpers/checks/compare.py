"""Comparing a learner's answer with the expected one (part of the checker engine, see ``engine.py``).

A :class:`~helpers.checks.engine.Case`'s ``compare(got, expected)`` returns ``None`` when
``got`` is right, else a sentence that starts with what the function did ("returned shape
(2, 3), expected shape (3, 2)"). Here are the comparisons the checkers share:

- :func:`compare_arrays` and :func:`compare_scalar`, within a tolerance that leaves room for
  float32 rounding (:func:`float32_room`, :func:`within` for a case's own tolerance);
- :func:`named_slip`, the one routine that says which known mistake a wrong answer is, with
  an equality rule, :func:`exactly` or :func:`nearly`; :func:`compare_naming_slips` (arrays),
  :func:`compare_number` (counts), :func:`compare_list` and :func:`compare_mask` build on it;
- readers of answers that must be integers (:func:`is_integer`) or a True/False mask
  (:func:`as_mask`), and :func:`short`, a value in a few words.
"""

import numpy as np

FLOAT32_ROOM = 1e-6  # float32 rounding room, per unit of the size of the terms summed (about 8 float32 steps)


def tensor_to_numpy(tensor):
    """A PyTorch tensor as a NumPy array (bfloat16, which NumPy lacks, becomes float32)."""
    tensor = tensor.detach().cpu()
    try:
        return tensor.numpy()
    except TypeError:
        return tensor.float().numpy()


def short(value, limit: int = 120) -> str:
    """A short, readable rendering of any value for feedback."""
    try:
        if hasattr(value, "detach"):
            value = tensor_to_numpy(value)
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


def as_array(got):
    """Turn a learner's answer (array, tensor, list, number) into a float NumPy array, or raise TypeError."""
    if got is None:
        raise TypeError("returned None: did you forget the `return` statement?")
    if isinstance(got, (str, bytes)):
        raise TypeError(f"returned the text {got!r}, not a number: return the value itself, not a string")
    if hasattr(got, "detach"):
        got = tensor_to_numpy(got)
    if isinstance(got, (list, tuple)):  # e.g. a pair of tensors
        got = [tensor_to_numpy(x) if hasattr(x, "detach") else x for x in got]
    try:
        arr = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"returned {short(got)}, which is not a number or an array of numbers") from None
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
        return f"returned {short(arr)}, expected {short(expected)} ({off})"
    where = ", ".join(str(int(i)) for i in index)
    return (f"returned {short(arr)}, expected {short(expected)}. The worst element, at index [{where}], "
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
        return f"returned NaN or infinity where a finite number was expected: {short(arr)}"
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
        return f"returned {short(got)}, but a single number was expected"
    problem = compare_arrays(arr.reshape(()), np.asarray(expected, dtype=float).reshape(()), atol=atol, rtol=rtol)
    return problem + _precision_note(got) if problem else None


def within(atol, rtol: float = 1e-5, compare=compare_arrays):
    """A Case's ``compare`` with its own tolerance."""
    return lambda got, expected: compare(got, expected, atol=atol, rtol=rtol)


def float32_room(terms):
    """The absolute error to allow on values made by adding up terms whose sizes (absolute
    values) add up to ``terms``: a float32 sum may be off by a few float32 steps of that size.
    A dot product of 50 terms can end near 0 by cancellation, yet carry the rounding of its terms."""
    return 1e-6 + FLOAT32_ROOM * np.asarray(terms, dtype=float)


# ---------------------------------------------------------------------------
# Naming the slip: which known mistake a wrong answer is
# ---------------------------------------------------------------------------

def named_slip(got, expected, slips, same) -> str | None:
    """The words of the known mistake that the wrong answer ``got`` is, or ``None``.

    ``slips`` lists ``(wrong, words)``: what a mistake computes on this case, and what it is in
    words ("forgot to divide the scores by sqrt(d)"). ``same(a, b)`` is the equality rule,
    :func:`exactly` or :func:`nearly`. The first slip that ``got`` equals is named; a slip that
    gives the right answer on this case (``same(wrong, expected)``) explains nothing and is skipped.
    """
    for wrong, words in slips:
        if not same(wrong, expected) and same(got, wrong):
            return words
    return None


def exactly(a, b) -> bool:
    """The equality rule for answers that must be exact: arrays (masks, counts) equal in shape and
    every element, anything else (lists, numbers, text) by ``==``."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return bool(a == b)


def nearly(atol=1e-8, rtol: float = 1e-5):
    """The equality rule for numbers computed in floating point: ``a`` (any answer :func:`as_array`
    reads) has the shape of ``b`` and is within ``atol + rtol * |b|`` of it, as ``np.allclose``;
    a list ``b`` (of arrays of different shapes) is compared array by array."""

    def same(a, b) -> bool:
        if isinstance(b, list):
            return isinstance(a, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        try:
            a, b = as_array(a), as_array(b)
        except TypeError:
            return False
        return a.shape == b.shape and bool(np.allclose(a, b, atol=atol, rtol=rtol))

    return same


def looks_as_if(problem: str, words: str | None) -> str:
    """``problem``, followed by the slip it looks like when one was named."""
    return f"{problem}. It looks as if you {words}" if words else problem


def returned_instead(got, expected, words=None, limit: int = 120) -> str:
    """The answer and the expected one ("returned ..., expected ..."), and the slip it looks like
    when one was named."""
    return looks_as_if(f"returned {short(got, limit)}, expected {short(expected, limit)}", words)


def compare_naming_slips(slips, atol=1e-6, rtol: float = 1e-5):
    """``compare_arrays``, which also says which usual slip a wrong answer matches."""

    def compare(got, expected):
        problem = compare_arrays(got, expected, atol=atol, rtol=rtol)
        if problem is None:
            return None
        return looks_as_if(problem, named_slip(got, expected, slips, nearly(atol, rtol)))

    return compare


def compare_number(slips):
    """A whole number (a count): right to within 0.5, and a wrong count named by the slip it is."""

    def compare(got, expected):
        problem = compare_scalar(got, expected, atol=0.5, rtol=0.0)
        if problem is None:
            return None
        try:
            value = float(as_array(got).reshape(-1)[0])
        except (TypeError, IndexError):
            return problem
        return looks_as_if(problem, named_slip(value, expected, slips, exactly))

    return compare


def compare_list(slips, what: str, noun: str, normalise=list, near_miss=None):
    """A Case's ``compare`` for a list of ``what`` (documents, pairs) that must equal the expected
    list exactly: ``got`` is first made a plain list by ``normalise``; a wrong one is told its
    slip, or else ``near_miss(got, expected)`` (a sentence or ``None``), or else its length and
    items, as ``noun`` ("returned 3 pairs, ...")."""

    def compare(got, expected):
        if isinstance(got, (str, bytes)) or not isinstance(got, (list, tuple)):
            return f"returned {short(got)}, which is not a list of {what}"
        got = normalise(got)
        if got == expected:
            return None
        words = named_slip(got, expected, slips, exactly)
        if words:
            return returned_instead(got, expected, words, limit=80)
        problem = near_miss(got, expected) if near_miss else None
        return problem or (f"returned {len(got)} {noun}, {short(got, 80)}; "
                           f"expected {len(expected)}, {short(expected, 80)}")

    return compare


# ---------------------------------------------------------------------------
# Answers that must be integers, or True/False
# ---------------------------------------------------------------------------

def is_integer(value) -> bool:
    """Whether ``value`` is one integer: a Python or NumPy integer, or a single-number integer
    array or tensor (``list(torch.tensor([1, 2]))`` holds those); not a bool, float or string."""
    if hasattr(value, "detach"):
        value = tensor_to_numpy(value)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def all_integers(values) -> bool:
    """Whether every number in ``values`` (a list, tuple, array or tensor) has an integer type."""
    if hasattr(values, "detach"):
        values = tensor_to_numpy(values)
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values.dtype.kind in "iu"
    return all(is_integer(v) for v in values)


def kind_of(value) -> str:
    """The type of a number, in words: ``float``, ``str``, ``torch.float32``..."""
    return str(getattr(value, "dtype", type(value).__name__))


def as_mask(got, expected):
    """``(mask, None)`` for an answer shaped like ``expected`` holding only True/False (or 1/0),
    else ``(None, the problem in words)``."""
    try:
        arr = as_array(got)
    except TypeError as exc:
        return None, str(exc)
    if arr.shape != expected.shape:
        return None, f"returned shape {arr.shape}, expected shape {expected.shape}"
    if not np.isin(arr, (0.0, 1.0)).all():
        return None, f"returned {short(arr)}: a mask holds only True/False (or 1/0)"
    return arr.astype(bool), None


def compare_mask(slips, say=returned_instead):
    """A Case's ``compare`` for a True/False mask, which must equal the expected one exactly; a
    wrong one is told ``say(mask, expected, words)``, ``words`` the slip it is (or ``None``)."""

    def compare(got, expected):
        arr, problem = as_mask(got, expected)
        if problem:
            return problem
        if np.array_equal(arr, expected):
            return None
        return say(arr, expected, named_slip(arr, expected, slips, exactly))

    return compare
