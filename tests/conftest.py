"""Test setup shared by every test file: draw figures off-screen, keep runs reproducible."""

import matplotlib

matplotlib.use("Agg")

from hypothesis import settings  # noqa: E402

# Deadlines make property tests flaky on a busy 2-core machine; correctness is what we test.
settings.register_profile("course", deadline=None, max_examples=100)
settings.load_profile("course")
