"""Writing the course's files safely and saying how they were made (used from notebook 05 on).

Two primitives that every command in ``scripts/`` and every ``save`` function share:

* :func:`atomic_write`: a file is written to a temporary name in the same folder and renamed
  over the target only when complete, so a crash or Ctrl-C never leaves half a tokenizer,
  checkpoint or results file behind (a rename within one folder is atomic);
* :func:`provenance`: the record stored with each shipped artefact (command, seed, wall
  time, machine, threads, package versions, git commit, the corpus's SHA-256), so
  ``data/README.md`` can say exactly how every file was made.

And what the long commands in ``scripts/`` share: :func:`command_parser` and
:func:`start_command` (``--out``, ``--threads``, the output folder) and, for a results file
filled run by run, :func:`partial_path` and :func:`finish_partial` (an interrupted command never
replaces a complete file with an unfinished one), and :func:`require_finished` (a training run
stopped by Ctrl-C is never stored as a finished one).
"""

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from helpers.paths import REPO_ROOT


def atomic_write(path, content: str | bytes | Callable) -> Path:
    """Write ``content`` to ``path`` atomically and return the path.

    ``content`` is text, bytes, or a function that writes to the binary file it is given (for
    example ``lambda f: torch.save(state, f)``). The folder must exist: a ``FileNotFoundError``
    names ``path`` when it does not. The new file gets the usual permissions of a new file.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {path.parent} does not exist")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())                     # on disk before the rename, even if the machine stops
        os.chmod(temporary, 0o644)                   # mkstemp makes the file private; others may read it
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_json(path, record, indent: int | None = 1) -> Path:
    """``record`` as JSON (UTF-8, a final newline), written atomically."""
    return atomic_write(path, json.dumps(record, indent=indent, ensure_ascii=False) + "\n")


@functools.lru_cache(maxsize=1)
def _git_commit() -> str:
    """The commit the command runs from ("+changes" if tracked files differ), looked up once per
    process: before the command rewrites its own tracked files in data/."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(seconds: float | None = None, seed: int | None = None, argv: list[str] | None = None) -> dict:
    """How an artefact was made: the command (``argv``, default this process's), ``seed``, wall
    time in ``seconds``, the machine, threads, Python/PyTorch/NumPy versions, git commit and the
    SHA-256 of the corpus it was made from (``data/corpus.json``)."""
    import numpy
    import torch

    from helpers import data

    argv = sys.argv if argv is None else argv
    script = Path(argv[0])
    shown = script.relative_to(REPO_ROOT) if script.is_absolute() and REPO_ROOT in script.parents else script
    record = {"command": " ".join(["python", str(shown), *argv[1:]]), "seed": seed,
              "seconds": None if seconds is None else round(seconds, 1),
              "machine": platform.machine(), "processor": platform.processor() or "unknown",
              "threads": torch.get_num_threads(), "python": platform.python_version(),
              "torch": str(torch.__version__),          # a plain str: torch.load(weights_only=True) reads it
              "numpy": numpy.__version__, "git": _git_commit()}
    try:
        record["corpus_sha256"] = data.corpus_fingerprint()["sha256"]
    except (ModuleNotFoundError, FileNotFoundError):
        record["corpus_sha256"] = "unavailable"
    return record


def partial_path(path) -> Path:
    """Where a command that fills ``path`` run by run keeps it until complete: ``name.partial.json``
    beside ``name.json``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def finish_partial(path, record) -> Path:
    """Write the complete ``record`` to ``path`` (atomically) and remove ``partial_path(path)``.

    A command saves its record to :func:`partial_path` after every run and calls this once at the
    end, so an interruption loses at most one run and never replaces a complete file."""
    write_json(path, record)
    partial_path(path).unlink(missing_ok=True)
    return Path(path)


def require_finished(history: dict, steps: int) -> None:
    """Stop the command (exit status 1, nothing more written) unless the training run whose
    ``history`` it holds was measured at its last step, ``steps``. Ctrl-C stops
    ``helpers.training.train`` and ``fit`` cleanly, with a shorter history: that run is unfinished."""
    if history["step"][-1:] != [steps]:
        raise SystemExit(f"the run stopped before step {steps} (interrupted?); nothing more is stored")


def command_parser(script, doc: str, threads: int | None = None) -> argparse.ArgumentParser:
    """The argument parser of the command in the file ``script`` (its ``__file__``), described by
    the first line of ``doc`` (its docstring), with ``--out`` (the folder for its files, default
    ``data/``) and, when ``threads`` is given, ``--threads`` (PyTorch CPU threads, default
    ``threads``). Its ``prog`` is the script's path from the repository root, as
    :func:`start_command` records it."""
    from helpers.paths import DATA_DIR

    script = Path(script).resolve()
    prog = script.relative_to(REPO_ROOT).as_posix() if REPO_ROOT in script.parents else str(script)
    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="folder for the files (default: data/)")
    if threads is not None:
        parser.add_argument("--threads", type=int, default=threads,
                            help=f"PyTorch CPU threads (default {threads})")
    return parser


def start_command(parser: argparse.ArgumentParser, argv: list[str] | None = None,
                  threads: int | None = None) -> argparse.Namespace:
    """Parse ``argv`` (default: this process's arguments) with a :func:`command_parser`, set
    PyTorch's CPU threads (to ``threads`` when the command fixes them, else to ``--threads``, if
    it has that option), make the ``--out`` folder, and return the arguments. ``args.argv`` is the
    command line, script first, for :func:`provenance`."""
    args = parser.parse_args(argv)
    args.argv = [parser.prog, *(sys.argv[1:] if argv is None else argv)]
    threads = getattr(args, "threads", None) if threads is None else threads
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    args.out.mkdir(parents=True, exist_ok=True)
    _git_commit()                      # the commit as it is now, before the command writes files
    return args
