"""Behind the Curtain: the course's shared helpers.

Each module teaches one concept and names the notebook that introduces it.
Import the module you need explicitly, e.g. ``from helpers import checks``. Figures are the
package ``helpers.plots``: shared primitives in ``plots/common.py``, one module per part.
"""
