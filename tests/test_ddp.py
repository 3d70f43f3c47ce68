"""Training on several processes: ``torchrun`` + ``DistributedDataParallel`` (gloo, on the CPU).

Run by pytest, this file launches itself with ``python -m torch.distributed.run`` (PyTorch's
``torchrun``) as the worker of a tiny training run (see ``worker``). Each step's batch is drawn
once and shared among the processes, so two processes must follow the one-process loss curve to
float round-off (the sums are taken in another order): the tolerance is ``1e-5`` nats, where two
runs on different windows differ by about ``1e-2`` here.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import checkpoints, gpt, training  # noqa: E402

TINY = gpt.GPTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=8)
CONFIG = training.TrainConfig(steps=12, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=2, eval_every=4,
                              eval_batches=2)
TOLERANCE = 1e-5          # nats; float round-off of sums taken in another order


def tiny_data(n=2000, seed=0):
    """A learnable sequence with 10% noise (as in tests/test_training.py)."""
    g = torch.Generator().manual_seed(seed)
    pattern = torch.arange(12).repeat(n // 12 + 1)[:n]
    noise = torch.randint(0, 12, (n,), generator=g)
    return torch.where(torch.rand(n, generator=g) < 0.9, pattern, noise)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return gpt.GPT(TINY)


def run(checkpoint=None, resume=False, stop_after=None, micro_batch=None, config=CONFIG):
    """``(history, model)`` of the tiny run, in whatever processes call it."""
    model, ids = tiny_model(), tiny_data()
    history = training.train(model, ids, ids, config, checkpoint_path=checkpoint, resume=resume, progress=False,
                             stop_after=stop_after, micro_batch=micro_batch)
    return history, model


def worker(argv) -> None:
    """One process of a torchrun launch: the tiny run; process 0 writes its history to ``--out``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--micro-batch", type=int)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rank, processes, _ = training.start_processes("cpu")
    try:
        history, _ = run(args.out / "run.pt", args.resume, args.stop_after, args.micro_batch)
    finally:
        training.end_processes()
    if rank == 0:
        (args.out / "history.json").write_text(json.dumps({"processes": processes, "history": history}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(script, *args, processes=2, background=False):
    """``python -m torch.distributed.run --nproc_per_node=processes script args`` on a free port,
    one thread per process; its result, or the running process when ``background``."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(script), *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    if background:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def same_curve(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and a["step"] == b["step"] and all(
        abs(x - y) < TOLERANCE for name in a if name != "step" for x, y in zip(a[name], b[name], strict=True))


def same_weights(a, b) -> bool:
    """Within 1e-4: Adam divides each gradient by its own running size, so the round-off of a tiny
    gradient moves a weight by up to about its learning rate times 1e-3 (measured: 3e-5)."""
    return all(torch.allclose(p, q, atol=1e-4, rtol=0) for p, q in zip(a.parameters(), b.parameters()))


def test_alone_a_process_is_rank_0_of_1_on_the_cpu_here(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training.start_processes() == (0, 1, torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_RANK", "1")                  # a second process on a one-GPU machine
    with pytest.raises(SystemExit, match=r"process 1 of this machine wants cuda:1, but it has 1 GPU"):
        training.start_processes("cuda")


@pytest.fixture(scope="module")
def one_process():
    """The uninterrupted one-process run: the curve every other run must follow."""
    return run()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """A two-process run of the first 8 of the 12 steps; its folder holds run.pt and history.json."""
    out = tmp_path_factory.mktemp("ddp")
    torchrun(__file__, "--out", out, "--stop-after", 8)
    return out


def test_two_processes_follow_the_one_process_loss_curve(one_process, two_processes):
    record = json.loads((two_processes / "history.json").read_text())
    history = one_process[0]
    assert record["processes"] == 2 and record["history"]["step"] == [4, 8]
    assert same_curve(record["history"], {name: values[:2] for name, values in history.items()})
    different_windows = run(config=training.TrainConfig(**{**asdict(CONFIG), "seed": 1}))[0]
    assert abs(different_windows["val"][0] - history["val"][0]) > 100 * TOLERANCE   # the tolerance is tight


def test_gradient_accumulation_keeps_the_global_batch(one_process):
    history, model = run(micro_batch=2)                    # 4 forward passes of 2 windows a step
    assert same_curve(history, one_process[0]) and same_weights(model, one_process[1])
    with pytest.raises(ValueError, match="cannot be cut into equal shares"):
        run(micro_batch=3)


def test_a_two_process_checkpoint_loads_and_resumes_in_one_process(one_process, two_processes, tmp_path):
    model, state = checkpoints.load_model(two_processes / "run.pt")
    assert state["step"] == 8 and model.config == TINY
    path = tmp_path / "copy.pt"
    path.write_bytes((two_processes / "run.pt").read_bytes())
    history, resumed = run(path, resume=True)
    assert same_curve(history, one_process[0]) and same_weights(resumed, one_process[1])


def test_a_one_process_checkpoint_resumes_in_two_processes(one_process, tmp_path):
    run(tmp_path / "run.pt", stop_after=4)
    torchrun(__file__, "--out", tmp_path, "--resume", "--micro-batch", 2)   # 2 processes x 2 passes of 2
    record = json.loads((tmp_path / "history.json").read_text())
    assert record["processes"] == 2 and same_curve(record["history"], one_process[0])
    assert same_weights(checkpoints.load_model(tmp_path / "run.pt")[0], one_process[1])


def test_an_interrupted_run_of_the_pretraining_command_leaves_a_loadable_checkpoint(tmp_path):
    """scripts/make_pretrained.py, unchanged, under torchrun: one process prints, one writes; Ctrl-C
    (SIGINT to every process) leaves the last checkpoint, which loads and resumes in one process."""
    sizes = ["--n-layer", 1, "--n-head", 2, "--n-embd", 16, "--block-size", 16, "--batch-size", 4,
             "--steps", 100_000, "--warmup-steps", 2, "--eval-every", 3, "--eval-batches", 1]
    launch = torchrun(ROOT / "scripts" / "make_pretrained.py", *sizes, "--out", tmp_path, background=True)
    work = tmp_path / ".gpt_shakespeare.work.pt"
    try:
        deadline = time.monotonic() + 150
        while not (work.exists() and checkpoints.load_checkpoint(work)["step"] >= 6):
            assert launch.poll() is None and time.monotonic() < deadline, launch.communicate()[0][-3000:]
            time.sleep(0.5)
        os.killpg(launch.pid, signal.SIGINT)
        output = launch.communicate(timeout=60)[0]
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
    assert output.count("model: ") == 1 and output.count("step      3: train") == 1, output[-3000:]
    model, state = checkpoints.load_model(work)
    assert state["step"] >= 6 and state["model_config"]["n_embd"] == 16
    config = training.TrainConfig(**state["train_config"])
    ids = torch.randint(0, model.config.vocab_size, (5000,), generator=torch.Generator().manual_seed(0))
    history = training.train(model, ids, ids, config, checkpoint_path=work, resume=True, progress=False,
                             stop_after=state["step"] + 3)
    assert history["step"][-1] == state["step"] + 3 and checkpoints.load_checkpoint(work)["step"] == state["step"] + 3


if __name__ == "__main__":
    worker(sys.argv[1:])
