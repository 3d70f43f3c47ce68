"""Shared pieces of the checker tests in tests/test_nbXX.py.

Each of those files lists ``RIGHT`` answers (which must pass) and ``BROKEN`` answers with the
phrase the checker's message must contain; the two helpers below state what that means.
"""


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
    result = checker(fn)  # never raises, never hangs
    assert result.passed is False
    assert phrase in result.message, result.message
