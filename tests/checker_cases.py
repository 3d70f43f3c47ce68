"""Shared pieces of the checker tests in tests/test_nbXX.py.

Each of those files lists ``RIGHT`` answers (which must pass) and ``BROKEN`` answers with the
phrase the checker's message must contain, then makes its two tests with
``test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)``.

A broken answer expected to time out ("did not finish") is checked under ``short_time_limit()``,
a fraction of a second instead of the learner's 2 s, so that these tests stay fast.
"""

from contextlib import contextmanager

import pytest

from helpers.checks import timing

SHORT_TIME_LIMIT = 0.25  # seconds per case, for answers that are meant to time out


@contextmanager
def short_time_limit(seconds: float = SHORT_TIME_LIMIT):
    """Checkers run inside this block stop a learner's function after ``seconds`` (the one
    setting, ``helpers.checks.timing.TIME_LIMIT``)."""
    saved = timing.TIME_LIMIT
    timing.TIME_LIMIT = seconds
    try:
        yield seconds
    finally:
        timing.TIME_LIMIT = saved


def forever(*args):
    """A broken answer that never returns."""
    while True:
        pass


def stub(*args):
    """The student copy's unfinished exercise."""
    raise NotImplementedError()


def assert_passes(checker, fn):
    result = checker(fn)
    assert result.passed is True, result.message


def assert_rejects(checker, fn, phrase):
    if phrase.startswith("did not finish"):
        with short_time_limit():
            result = checker(fn)
    else:
        result = checker(fn)  # never raises, never hangs
    assert result.passed is False
    assert phrase in result.message, result.message


def checker_tests(right, broken):
    """The two parametrised tests every notebook's checker list gets: right answers pass, broken
    answers are rejected with their phrase."""

    @pytest.mark.parametrize("checker, fn", right)
    def test_right_answers_pass(checker, fn):
        assert_passes(checker, fn)

    @pytest.mark.parametrize("checker, fn, phrase", broken)
    def test_broken_answers_rejected(checker, fn, phrase):
        assert_rejects(checker, fn, phrase)

    return test_right_answers_pass, test_broken_answers_rejected


def assert_redraws(explorer, changes):
    """Set each control of ``explorer`` in turn (``[(name, value), ...]``); every setting must
    change the figure, so the PNGs (the first one included) are all different."""
    seen = [explorer.png]
    for name, value in changes:
        explorer.controls[name].value = value
        seen.append(explorer.png)
    assert len(set(seen)) == len(seen), f"some settings left the figure unchanged: {[n for n, _ in changes]}"
