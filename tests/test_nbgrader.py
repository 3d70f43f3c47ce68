"""For teachers: the real nbgrader on the course (installed by ``requirements-teachers.txt``;
skipped without it, so a learner's test command does not need it; ``.ci/run`` installs it).

* ``nbgrader generate_assignment`` makes the same student copy as ``python -m helpers.student``
  (every notebook): the zero-dependency path and nbgrader's agree cell by cell.
* ``nbgrader autograde`` gives the solution notebooks full marks and the generated student copy
  zero, without crashing (notebooks 00-06 by default: each autograde executes a whole notebook,
  twice; ``AUTOGRADE_ALL=1`` autogrades every notebook).
"""

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from helpers import student
from helpers.paths import NOTEBOOKS_DIR

pytest.importorskip("nbgrader", reason="nbgrader is the teachers' extra: pip install -r requirements-teachers.txt")

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
AUTOGRADED = NOTEBOOKS if os.environ.get("AUTOGRADE_ALL") == "1" else [p for p in NOTEBOOKS if p.name < "07"]
CONFIG = 'c = get_config()\nc.CourseDirectory.course_id = "behind_the_curtain"\n'


def nbgrader(course, *args):
    """Run one nbgrader command in the course folder ``course``; fail the test with its log."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--CourseDirectory.root=" + str(course)],
                          cwd=course, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def make_course(root, notebooks, assignment="course"):
    """A course folder with ``notebooks`` as the source of one assignment."""
    (root / "source" / assignment).mkdir(parents=True)
    (root / "nbgrader_config.py").write_text(CONFIG, encoding="utf-8")
    for path in notebooks:
        shutil.copy(path, root / "source" / assignment / path.name)
    return root


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """nbgrader's student copy of every notebook (``release/course/``)."""
    course = make_course(tmp_path_factory.mktemp("nbgrader"), NOTEBOOKS)
    nbgrader(course, "generate_assignment", "course", "--force")
    return course / "release" / "course"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nbgrader_makes_the_same_student_copy_as_ours(released, path):
    ours = student.student_notebook(nbformat.read(path, as_version=4))
    theirs = nbformat.read(released / path.name, as_version=4)
    assert [c.cell_type for c in theirs.cells] == [c.cell_type for c in ours.cells]
    for mine, nbg in zip(ours.cells, theirs.cells):
        assert nbg.source == mine.source, f"{path.name}: nbgrader's copy differs in cell {mine.get('id')}"
    graded = [c for c in theirs.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert graded and all(c.metadata["nbgrader"]["locked"] for c in graded)


def _scores(course, who):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission("course", who)
        return {nb.name: (nb.score, nb.max_score) for nb in submission.notebooks}


def _autograde(course, who, notebooks):
    target = course / "submitted" / who / "course"
    target.mkdir(parents=True)
    for path in notebooks:
        shutil.copy(path, target / path.name)
    nbgrader(course, "autograde", "course", "--create", "--force")
    return _scores(course, who)


@pytest.fixture(scope="module")
def autograded(tmp_path_factory):
    """nbgrader's autograde on the solutions and on nbgrader's own student copy, in two course
    folders graded side by side (one core each)."""
    solution = make_course(tmp_path_factory.mktemp("solution"), AUTOGRADED)
    stubs = make_course(tmp_path_factory.mktemp("stubs"), AUTOGRADED)
    for course in (solution, stubs):   # also records the assignment in each course's gradebook
        nbgrader(course, "generate_assignment", "course", "--force")
    released = sorted((stubs / "release" / "course").glob("*.ipynb"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        solved = pool.submit(_autograde, solution, "solution", AUTOGRADED)
        unsolved = pool.submit(_autograde, stubs, "student", released)
        return solved.result(), unsolved.result()


@pytest.mark.parametrize("path", AUTOGRADED, ids=lambda p: p.stem)
def test_autograde_gives_the_solutions_full_marks_and_the_stubs_zero(autograded, path):
    solved, unsolved = autograded
    score, most = solved[path.stem]
    assert most >= 1 and score == most, f"{path.name}: the solution scored {score} of {most}"
    score, most = unsolved[path.stem]
    assert score == 0 and most >= 1, f"{path.name}: the unsolved student copy scored {score} of {most}"
