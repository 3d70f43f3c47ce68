"""Strip noise from notebooks while keeping the outputs nbval compares.

Removes widget state and per-cell execution timing metadata; collapses the source of cells
tagged ``verify`` (they only check the prose's claims); keeps outputs and
execution counts; gives exercise and checker cells nbgrader's metadata (helpers.student).
Usage: python .ci/clean_notebooks.py notebooks/*.ipynb
"""

import sys

import nbformat

from helpers.student import nbgrader_metadata

NOISY_CELL_KEYS = ("execution", "collapsed", "scrolled", "jupyter")


def clean(path: str) -> bool:
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("toc", None)
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    lang = nb.metadata.get("language_info", {})
    nb.metadata["language_info"] = {"name": lang.get("name", "python")}
    for cell in nb.cells:
        for key in NOISY_CELL_KEYS:
            cell.metadata.pop(key, None)
        if "verify" in cell.metadata.get("tags", []):
            cell.metadata["jupyter"] = {"source_hidden": True}  # a cell that only checks claims
    nbgrader_metadata(nb)
    after = nbformat.writes(nb)
    if after != before:
        nbformat.write(nb, path)
    return after != before


if __name__ == "__main__":
    for name in sys.argv[1:]:
        if clean(name):
            print(f"cleaned {name}")
