"""Make the student copy of the course (for teachers; mentioned in notebook 00_start_here).

The notebooks in ``notebooks/`` are the *solution* version. In the student copy the code
between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes::

    # YOUR CODE HERE
    raise NotImplementedError()

and every output is cleared; everything else is untouched. This is the nbgrader
convention, so nbgrader can also use the solution notebooks as its source directly.

Usage (from anywhere)::

    python -m helpers.student student/          # writes student/NN_name.ipynb
"""

import argparse
import re
import sys
from pathlib import Path

import nbformat

from helpers.paths import NOTEBOOKS_DIR

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]


def strip_solution(source: str) -> str:
    """Replace each ``BEGIN``/``END SOLUTION`` region of a cell's source by the stub, keeping indentation."""
    out, inside = [], False
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"nested {BEGIN!r} in:\n{source}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + stub for stub in STUB)
        elif stripped == END:
            if not inside:
                raise ValueError(f"{END!r} without {BEGIN!r} in:\n{source}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} without {END!r} in:\n{source}")
    return "\n".join(out)


def _graded_name(source: str, fallback: str) -> str:
    """The name an exercise is known by: the first function or class its cell defines at the top
    level (a class's name, not its ``__init__``), else the first function, else ``fallback``."""
    match = re.search(r"^(?:def|class) (\w+)", source, re.M) or re.search(r"^\s*def (\w+)", source, re.M)
    return match.group(1) if match else fallback


def nbgrader_metadata(nb):
    """Give notebook ``nb`` nbgrader's cell metadata, in place, and return it: every exercise
    (a cell with ``### BEGIN SOLUTION``) becomes an autograded *answer* cell and the checker
    call after it a locked *test* cell worth one point (the checkers raise under nbgrader's
    autograde, so a failed check scores 0). Every other cell loses any stale nbgrader metadata.
    ``.ci/clean_notebooks.py`` applies it, so the metadata always follows the exercises."""
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    seen = set()
    for i, cell in enumerate(code):
        if BEGIN not in cell.source:
            continue
        name = _graded_name(cell.source, f"exercise_{i}")
        while name in seen:
            name += "_"
        seen.add(name)
        cell.metadata["nbgrader"] = {"grade": False, "grade_id": name, "locked": False,
                                     "schema_version": 3, "solution": True, "task": False}
        test = cell if "checks." in cell.source.split(END)[-1] else (code[i + 1] if i + 1 < len(code) else None)
        if test is not None and test is not cell and "checks." in test.source:
            test.metadata["nbgrader"] = {"grade": True, "grade_id": f"check_{name}", "locked": True,
                                         "points": 1, "schema_version": 3, "solution": False, "task": False}
    return nb


def student_notebook(nb):
    """A copy of notebook ``nb`` with solutions stubbed out and all outputs cleared."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            if BEGIN in cell.source:
                cell.source = strip_solution(cell.source)
            cell.outputs = []
            cell.execution_count = None
    return nb


def make_student_copy(destination, source_dir=NOTEBOOKS_DIR) -> list[Path]:
    """Write the student version of every numbered notebook into ``destination``; return the paths."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(Path(source_dir).glob("[0-9][0-9]_*.ipynb")):
        nb = student_notebook(nbformat.read(path, as_version=4))
        target = destination / path.name
        nbformat.write(nb, target)
        written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write the student copy of the course notebooks.")
    parser.add_argument("destination", help="folder to write the student notebooks into")
    args = parser.parse_args(argv)
    if Path(args.destination).resolve() == NOTEBOOKS_DIR.resolve():
        print("Refusing to overwrite the solution notebooks: choose another folder.", file=sys.stderr)
        return 2
    for path in make_student_copy(args.destination):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
