"""Time to execute each notebook (and the whole course), and each kernel's peak memory.

Usage:  OMP_NUM_THREADS=1 python bench/bench_notebooks.py [--runs 3] [notebooks/NN_name.ipynb ...]

Each notebook is executed top to bottom in a fresh kernel, as the tests do, ``--runs``
times; the table reports the median wall time and the kernel's peak resident memory
(VmHWM, Linux only). Outputs are not written back.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory of a process in MB (Linux), or None elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_once(path: Path) -> tuple[float, float | None]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    peak = None
    with client.setup_kernel():
        pid = client.km.provisioner.process.pid
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        peak = peak_rss_mb(pid)
    return time.perf_counter() - start, peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("notebooks", nargs="*")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    print(f"{'notebook':<34} {'median s':>9} {'min s':>7} {'peak MB':>8}   ({args.runs} runs each)")
    total = 0.0
    for path in paths:
        times, peaks = [], []
        for _ in range(args.runs):
            seconds, peak = run_once(path)
            times.append(seconds)
            peaks.append(peak or 0.0)
        median = statistics.median(times)
        total += median
        print(f"{path.name:<34} {median:>9.1f} {min(times):>7.1f} {max(peaks):>8.0f}")
        sys.stdout.flush()
    print(f"{'whole course (sum of medians)':<34} {total:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
