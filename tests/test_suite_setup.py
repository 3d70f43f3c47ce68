"""The suite sets up its own world (the root conftest.py): one thread everywhere, whatever the shell exported."""

import os
import subprocess
import sys


def test_this_worker_runs_torch_on_one_thread():
    import torch

    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "1"
    assert torch.get_num_threads() == 1


def test_processes_the_suite_starts_inherit_one_thread():
    """Notebook kernels, the student-copy runs and JupyterLab are started like this child."""
    code = "import torch; print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_a_command_run_with_two_threads_leaves_the_next_test_on_one(request):
    """(The next test checks the other half: the root conftest.py resets the thread count.)"""
    import torch

    torch.set_num_threads(2)


def test_the_thread_count_was_reset_after_the_previous_test():
    import torch

    assert torch.get_num_threads() == 1
