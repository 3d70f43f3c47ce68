"""Behind the Curtain: the course's shared helpers.

Each module teaches one concept and names the notebook that introduces it.
Import the module you need explicitly, e.g. ``from helpers import checks``. Checkers and figures
are packages split by part: ``helpers.checks`` (the engine in ``engine.py``, ``timing.py`` and
``compare.py``, then one module of checkers per part) and ``helpers.plots`` (shared primitives in
``plots/common.py``, one module per part).
"""
