"""Test setup shared by every test file: draw figures off-screen, keep runs reproducible."""

import matplotlib

matplotlib.use("Agg")

from hypothesis import settings  # noqa: E402

# Deadlines make property tests flaky on a busy 2-core machine; correctness is what we test.
settings.register_profile("course", deadline=None, max_examples=100)
settings.load_profile("course")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_hint_tiers():
    """Each test starts with no hint tiers seen, so a checker's first failure shows its nudge
    whatever ran before (the tiers are remembered per kernel, as for a learner)."""
    from helpers.checks import engine
    engine._HINTS_SHOWN.clear()
    yield
