"""The test suite's own world, set up before anything else is imported (read by pytest).

``python -m pytest`` must pass on any learner's machine with nothing exported, so the suite
pins what would otherwise differ from machine to machine:

* **One thread per process.** Every test worker, and every notebook kernel, student-copy
  run and JupyterLab server the tests start (they inherit this environment), runs PyTorch
  and BLAS on one thread. Two workers with default threads on a 2-core machine ran tiny
  models many times slower (a notebook cell passed its 300 s timeout), and a thread count
  changes the order of additions, hence the last printed digits. This overrides an
  ``OMP_NUM_THREADS`` exported in the shell: the suite's numbers are measured on one thread.
  Learners in JupyterLab keep their default threads.
* **Printed numbers compared within a tolerance** (``tests/printed_numbers.py``), so the
  stored outputs also pass on CPUs that round differently (AVX2, AVX-512, ARM).
"""

import os
import sys
from pathlib import Path

import pytest

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_variable] = "1"

sys.path.insert(0, str(Path(__file__).parent / "tests"))

import printed_numbers  # noqa: E402  (tests/printed_numbers.py)

printed_numbers.install()


@pytest.fixture(autouse=True)
def _one_thread_after_each_test():
    """A test that runs a command with ``--threads 2`` (or sets threads itself) must not leave
    the rest of its worker's tests on two threads."""
    yield
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
