"""The student copy: solutions stubbed, outputs cleared, every notebook still runs to the end,
and every checker says "not implemented yet" instead of crashing.

The student copy differs from the solution notebook only in its exercise cells, which all sit in
the exercises section at the end (tested here). The cells before that section are the solution
notebook's, which nbval executes; so the student copy is executed from its exercises section to
the end, after the notebook's import lines: every changed cell and everything after it, in
seconds rather than minutes."""

import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor

import nbformat
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nbclient import NotebookClient

from helpers import student
from helpers.paths import NOTEBOOKS_DIR

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_strip_solution_keeps_indentation_and_surroundings():
    source = "def f(x):\n    \"\"\"doc\"\"\"\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\nprint(1)"
    assert student.strip_solution(source) == (
        "def f(x):\n    \"\"\"doc\"\"\"\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(1)")


@pytest.mark.parametrize("bad", ["### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION",
                                 "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"])
def test_unbalanced_markers_are_reported(bad):
    with pytest.raises(ValueError, match="SOLUTION"):
        student.strip_solution(bad)


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\n#"), max_size=20), max_size=6))
def test_cells_without_markers_are_unchanged(lines):
    source = "\n".join(lines)
    assert student.strip_solution(source) == source


def test_refuses_to_overwrite_the_solutions(capsys):
    assert student.main([str(NOTEBOOKS_DIR)]) == 2
    assert "Refusing" in capsys.readouterr().err


def exercises_start(nb) -> int:
    """The index of the cell with the exercises heading."""
    return next(i for i, c in enumerate(nb.cells)
                if c.cell_type == "markdown" and re.search(r"^#+ .*exercise", c.source, re.I | re.M))


def _execute(path):
    """Run the student notebook's import lines, then its exercises section to the end, in a fresh
    kernel; return it with its outputs (in a worker process)."""
    nb = nbformat.read(path, as_version=4)
    start = exercises_start(nb)
    imports = [line for c in nb.cells[:start] if c.cell_type == "code" for line in c.source.splitlines()
               if line.startswith(("import ", "from "))]
    nb.cells = [nbformat.v4.new_code_cell("\n".join(imports))] + nb.cells[start:]
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    written = student.make_student_copy(out)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    return out


@pytest.fixture(scope="module")
def executed(student_dir):
    """Every student notebook's imports and exercises executed, two at a time (one core each)."""
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {p.name: pool.submit(_execute, student_dir / p.name) for p in NOTEBOOKS}
        for future in futures.values():
            future.exception()               # wait for all of them before the pool shuts down
        return futures


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_student_notebook_runs_and_checkers_say_not_implemented(student_dir, executed, name):
    nb = nbformat.read(student_dir / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    solution_cells = [c for c in code if "raise NotImplementedError()" in c.source]
    assert solution_cells, f"{name}: no exercise was stubbed"
    assert all(not c.outputs and c.execution_count is None for c in code), "outputs must be cleared"
    assert not any("### BEGIN SOLUTION" in c.source for c in code)
    start = exercises_start(nb)
    solution = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    assert [c.source for c in nb.cells[:start]] == [c.source for c in solution.cells[:start]], (
        f"{name}: the student copy changed a cell before the exercises section")
    assert all("raise NotImplementedError()" not in c.source for c in nb.cells[:start])
    nb = executed[name].result()          # re-raises a failure to execute (e.g. a timeout) here
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"{name}: the student copy stops with {errors[0].ename}: {errors[0].evalue}"
    checker_text = ["".join(o.get("text", "") for o in c.outputs)
                    for c in nb.cells if c.cell_type == "code" and c.source.strip().startswith("checks.")
                    and c.source.strip().endswith(")")]
    unfinished = [t for t in checker_text if "not implemented yet" in t]
    assert len(unfinished) >= len(solution_cells), (
        f"{name}: every stubbed exercise's checker should say 'not implemented yet': {checker_text}")


def test_an_exercise_is_graded_under_the_name_of_what_it_defines():
    from helpers.student import _graded_name
    assert _graded_name("class MyLoRALinear:\n    def __init__(self):\n        pass\n", "x") == "MyLoRALinear"
    assert _graded_name("SIZE = 3\n\ndef encode(text):\n    pass\n", "x") == "encode"
    assert _graded_name("print('no definition')\n", "exercise_4") == "exercise_4"
