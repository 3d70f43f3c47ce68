"""Where the course's files live (introduced in notebook 00_start_here).

Every path is found from this file's location, never from the working
directory, so notebooks, tests and scripts agree wherever they are started.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def data_path(name: str) -> Path:
    """Return the path of ``name`` inside ``data/``, with a clear error if it is missing."""
    path = DATA_DIR / name
    if not path.exists():
        raise FileNotFoundError(
            f"The course data file {name!r} is missing: expected it at {path}. "
            "It ships with the repository; see data/README.md for how to make it again."
        )
    return path
