"""The commands that make the shipped artefacts in ``data/`` (``python scripts/make_X.py``);
a package so that the tests can ``import scripts.make_sweeps``."""
