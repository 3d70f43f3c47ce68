"""The odd-numbered notebooks in a real browser (the even-numbered ones: ``test_browser.py``,
which holds the test itself). Two modules, each with its own JupyterLab, so that the two
workers of the test suite share the browser tests."""

import pytest

from test_browser import browser, check_in_jupyterlab, driven, lab  # noqa: F401 (fixtures)


@pytest.mark.parametrize("name", driven(1))
def test_notebook_runs_in_jupyterlab_and_its_explorer_responds(lab, browser, name):  # noqa: F811
    check_in_jupyterlab(lab, browser, name)


def test_a_notebook_runs_in_notebook_7_and_its_explorer_responds(lab, browser):  # noqa: F811
    """``jupyter notebook`` (Notebook 7, installed by requirements.txt) on the same server."""
    check_in_jupyterlab(lab, browser, "01_neurons_and_layers.ipynb", interface="notebook")
