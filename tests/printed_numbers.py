"""How the test suite compares a notebook's stored outputs with a fresh run.

nbval compares every cell's text output (stdout, stderr, ``text/plain``, ...) with the one
stored in the notebook. Byte equality is right for text, shapes, counts and verdicts, but
not for numbers computed in floating point: another CPU (AVX2 instead of AVX-512, Apple's
ARM) or another thread count adds in another order and prints ``6.76e-05`` where this
machine printed ``6.77e-05``. So the suite compares printed text the way a scientist
compares measurements:

* **Text** (everything between numbers) must be equal, except for runs of spaces and
  tabs, which are ignored: NumPy and tables pad a column to the width of its widest number.
* **Integers** (``300``, ``48/120``, ``(4, 192)``) must be equal.
* **Decimal numbers** (a point or an exponent: ``2.365``, ``6.77e-05``, ``43.89%``) must
  agree within ``REL_TOL`` of their size, or within one unit of their last printed digit,
  whichever is larger: ``2.365`` matches ``2.370`` and ``0.39`` matches ``0.38``, while
  ``2.365`` does not match ``2.41``.

Generated text (a sample of a model) is not compared here at all: those cells assert its
properties in the notebook itself and carry the ``nbval-ignore-output`` tag.
The root ``conftest.py`` installs :func:`install` into nbval.
"""

import math
import re

REL_TOL = 0.01  # a printed decimal may differ by 1% of its size (or one unit in its last digit)

# A number: its sign, digits, a decimal point with digits (or NumPy's bare point as in
# "[0. 1.]", which is followed by a space and a number or by "]"), an exponent. "300." at the
# end of a sentence is the integer 300 and a full stop.
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d+|\d+\.(?=\s*[-+\d\]])|\.\d+|\d+)(?:[eE][-+]?\d+)?(?!\w)")
SPACES = re.compile(r"[ \t]+")


def _is_decimal(token: str) -> bool:
    return "." in token or "e" in token or "E" in token


def _last_digit_unit(token: str) -> float:
    """The value of one unit in the last printed digit: 0.01 for ``0.39``, 1e-7 for ``6.77e-05``."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (int(exponent or 0) - decimals)


def numbers_agree(stored: str, fresh: str, rel_tol: float = REL_TOL) -> bool:
    """Whether two printed numbers agree: integers exactly, decimals within the tolerance.

    A decimal printed with ``:.4g`` can lose its point (``2.0`` prints as ``2``), so an
    integer beside a decimal is compared as a decimal, with the decimal's last digit.
    """
    decimals = [token for token in (stored, fresh) if _is_decimal(token)]
    if not decimals:
        return int(stored) == int(fresh)
    a, b = float(stored), float(fresh)
    if math.isinf(a) or math.isinf(b):
        return a == b
    allowed = max([rel_tol * max(abs(a), abs(b))] + [_last_digit_unit(token) for token in decimals])
    return abs(a - b) <= allowed * (1 + 1e-9)


def _pieces(text: str) -> tuple[list[str], list[str]]:
    """Split printed text into its numbers and the text around them (spaces removed)."""
    numbers = NUMBER.findall(text)
    words = [SPACES.sub("", part) for part in NUMBER.split(text)]
    return numbers, words


def outputs_agree(stored: str, fresh: str, rel_tol: float = REL_TOL) -> bool:
    """Whether a fresh cell output matches the stored one, under the rules in this module's docstring."""
    if stored == fresh:
        return True
    stored_numbers, stored_words = _pieces(stored)
    fresh_numbers, fresh_words = _pieces(fresh)
    return (stored_words == fresh_words
            and len(stored_numbers) == len(fresh_numbers)
            and all(numbers_agree(a, b, rel_tol) for a, b in zip(stored_numbers, fresh_numbers)))


class PrintedOutput(str):
    """A cell's printed output that equals another when :func:`outputs_agree` says so.

    nbval compares outputs with ``!=``; handing it this string instead of a plain one is the
    whole change to nbval (see :func:`install`).
    """

    def __eq__(self, other):
        return isinstance(other, str) and outputs_agree(str(self), str(other))

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = str.__hash__


def install() -> None:
    """Make nbval compare printed outputs with :func:`outputs_agree` instead of ``==``.

    nbval passes every output string through ``IPyNbCell.sanitize`` (the regexes of
    ``tests/nbval_sanitize.cfg``) just before comparing; we wrap its result.
    """
    from nbval.plugin import IPyNbCell

    if getattr(IPyNbCell.sanitize, "compares_numbers", False):
        return
    plain_sanitize = IPyNbCell.sanitize

    def sanitize(self, s):
        s = plain_sanitize(self, s)
        return PrintedOutput(s) if isinstance(s, str) else s

    sanitize.compares_numbers = True
    IPyNbCell.sanitize = sanitize
