"""Training a GPT on the corpus: batches (notebook 08_the_transformer; notebook 07_attention borrows
them for a few seconds of training), the full loop with schedule and checkpoints, :func:`train`
(notebook 09_pretraining; notebook 12 trains its three objectives with it), and the short loop
of fine-tuning, :func:`fit` (notebooks 11 and 12). Checkpoints are written and read by
``helpers/checkpoints.py``. The same :func:`train` runs on a GPU and, started by ``torchrun``,
on many processes (:func:`start_processes`; the README's "Scaling up").

A language model learns from **windows** of text: ``block_size`` tokens in, the same window
shifted by one token as the targets, so every position is a next-token prediction:

    text     T  o     b  e  ,
    x        T  o  ␣  b  e        (block_size = 5)
    y        o  ␣  b  e  ,        y[t] = the token after x[t]

A batch is ``batch_size`` such windows starting at random places: ``x`` and ``y`` are ``(B, T)``.
"""

import contextlib
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from helpers import gpt
from helpers.checkpoints import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from helpers.checkpoints import load_model  # noqa: F401  (notebooks load models as training.load_model)


def random_batch(ids: torch.Tensor, batch_size: int, block_size: int, generator=None):
    """``(x, y)``, each ``(batch_size, block_size)`` int64: random windows of ``ids`` and their next tokens."""
    if len(ids) <= block_size:
        raise ValueError(f"the text has {len(ids)} tokens, too few for windows of block_size={block_size} "
                         "plus one target token")
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator)
    x = torch.stack([ids[s: s + block_size] for s in starts.tolist()])
    y = torch.stack([ids[s + 1: s + block_size + 1] for s in starts.tolist()])
    return x, y


@contextlib.contextmanager
def evaluating(model):
    """``with evaluating(model):`` runs its block in eval mode (no dropout) and puts the model back
    in the mode it was in afterwards, even when the block raises or is interrupted (Ctrl-C)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def estimate_loss(model, ids: torch.Tensor, batch_size: int = 32, batches: int = 20, seed: int = 1234) -> float:
    """Mean cross-entropy (nats per token) of ``model`` on ``batches`` random batches of ``ids``.

    The windows come from a generator seeded with ``seed``: every call scores the same windows,
    so two models (or one model before and after training) are compared on the same text.
    The model is put in eval mode for the measurement and back in the mode it was in.
    """
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    with evaluating(model):
        losses = []
        for _ in range(batches):
            x, y = random_batch(ids, batch_size, model.config.block_size, generator)
            losses.append(model(x.to(device), y.to(device))[1].item())
    return sum(losses) / len(losses)


# ---------------------------------------------------------------- the training loop (notebook 09)

@dataclass
class TrainConfig:
    """How to train: every number a run needs, stored in its checkpoints."""

    steps: int = 2000           # optimizer steps
    batch_size: int = 12        # windows per step
    lr: float = 1e-3            # peak learning rate, reached after the warm-up
    min_lr: float = 1e-4        # the cosine schedule ends here
    warmup_steps: int = 100     # linear warm-up: lr/warmup_steps at step 0, lr at step warmup_steps-1
    weight_decay: float = 0.1   # AdamW's decoupled weight decay (on matrices only)
    beta2: float = 0.99         # AdamW's second-moment decay (0.99 suits small batches)
    grad_clip: float = 1.0      # clip the gradient's global norm to this (0 = no clipping)
    eval_every: int = 200       # measure held-out loss (and save a checkpoint) this often
    eval_batches: int = 20      # batches per held-out measurement
    seed: int = 0               # seeds the batches (the model's seed is the caller's)

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.eval_every < 1 or self.eval_batches < 1:
            raise ValueError("steps, batch_size, eval_every and eval_batches must be at least 1")
        if not 0 < self.min_lr <= self.lr:
            raise ValueError(f"need 0 < min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be below steps ({self.steps})")


# The shipped model, data/gpt_shakespeare.pt (chosen by the runs recorded in data/README.md): made
# by scripts/make_pretrained.py with these settings and the 78 characters of the training plays
# (1,819,392 parameters); bench/bench_gpt.py times a training step of the same size.
SHIPPED_MODEL = dict(n_layer=4, n_head=4, n_embd=192, block_size=128, dropout=0.0)
SHIPPED_TRAIN = dict(steps=4800, batch_size=16, lr=2e-3, min_lr=1e-4, warmup_steps=200, weight_decay=0.1,
                     beta2=0.99, grad_clip=1.0, eval_every=400, eval_batches=10, seed=1337)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to ``config.lr`` over ``warmup_steps``, then a cosine decay to ``min_lr`` at
    the last step. Warm-up keeps the first, wild updates small (Adam's moment estimates are still
    poor); the decay lets the model settle into a minimum at the end."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - 1 - config.warmup_steps)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))) * (config.lr - config.min_lr)


def adamw(params, **settings) -> torch.optim.AdamW:
    """``torch.optim.AdamW(params, **settings)`` in PyTorch's **fused** implementation (one kernel
    updates each tensor, instead of a dozen small operations per tensor) where this PyTorch
    offers it for these tensors (CPU since 2.4, CUDA), else the standard one. Same update."""
    try:
        return torch.optim.AdamW(params, fused=True, **settings)
    except (RuntimeError, TypeError, ValueError):        # an older PyTorch, or a device without it
        return torch.optim.AdamW(params, **settings)


def make_optimizer(model, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices (embeddings included), not on biases and layer-norm gains."""
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": matrices, "weight_decay": config.weight_decay}, {"params": others, "weight_decay": 0.0}]
    return adamw(groups, lr=config.lr, betas=(0.9, config.beta2))


class TrainingDiverged(RuntimeError):
    """The loss became NaN or exploded; the message says at which step and what to try."""


def _diverged(value: float, limit: float) -> str | None:
    """What is wrong with a loss of ``value``: ``"became NaN"``, ``"exploded to ..."`` (infinite or
    above ``limit``), or ``None`` when nothing is."""
    if math.isfinite(value) and value <= limit:
        return None
    return "became NaN" if math.isnan(value) else f"exploded to {value:.3g}"


def _update(model, optimizer, loss, grad_clip: float) -> None:
    """One step down the gradient of ``loss``: backward, then :func:`_step`. Used by :func:`fit`."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    _step(model, optimizer, grad_clip)


def _step(model, optimizer, grad_clip: float) -> None:
    """The gradient's global norm clipped to ``grad_clip`` (0 = no clipping), then the optimizer's update."""
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def train(model, train_ids, val_ids, config: TrainConfig, checkpoint_path=None, resume: bool = False,
          progress: bool = True, tokenizer_chars: str | None = None, on_eval=None, snapshots=None,
          make_batch=None, measure=None, stop_after: int | None = None, micro_batch: int | None = None) -> dict:
    """Train ``model`` on random windows of ``train_ids``; returns the history
    ``{"step": [...], "train": [...], "val": [...]}`` of the held-out measurements.

    Every ``eval_every`` steps (and at the end) it measures the training and held-out loss, calls
    ``on_eval(step, history)`` if given (notebooks draw a live plot there) and, with a
    ``checkpoint_path``, saves a checkpoint atomically. ``snapshots`` (``{step: path}``) also keeps
    small int8 copies of the model after those steps, to watch text emerge. ``resume=True``
    continues from the checkpoint, with the same batches as an uninterrupted run. Ctrl-C
    (KeyboardInterrupt) stops cleanly, keeping the last checkpoint. A loss that becomes NaN or
    explodes stops with :class:`TrainingDiverged`.

    Other objectives (notebook 12) change what a step sees and what is measured:
    ``make_batch(generator)`` returns the arguments of one call of the model, ``(x, y)`` or
    ``(x, y, mask)`` (default: :func:`random_batch` windows of ``train_ids``), drawn with the run's
    generator (seeded with ``config.seed``, kept in checkpoints); ``measure(losses)`` returns the
    numbers to record instead of the two losses, ``{name: number}``, given the training losses of
    the steps since the last measurement. ``stop_after`` ends the run (measured, and saved) after
    that many steps of the same schedule: a short run repeats the start of the full one.

    The model trains on the device it is on (batches follow it), under bfloat16 autocast on a
    GPU that has it. Started by ``torchrun`` (:func:`start_processes`), every process runs this
    same loop on the same model, wrapped in ``DistributedDataParallel``: each step's batch of
    ``config.batch_size`` windows is drawn once from the run's generator (the same in every
    process) and process ``r`` of ``N`` takes its ``r``-th share; ``micro_batch`` (windows per
    forward pass, default the whole share) splits a share into parts whose gradients add up
    (gradient accumulation). Whatever ``N`` and ``micro_batch``, a step sees the same windows
    and takes the same update (to float round-off), so a checkpoint resumes with any number of
    processes. Only process 0 saves, calls ``on_eval`` and shows progress.
    """
    rank, world = _processes()
    parts = _batch_parts(config.batch_size, micro_batch)              # this process's micro-batches
    last = config.steps if stop_after is None else min(config.steps, gpt.whole_number(stop_after, "stop_after", 1))
    if make_batch is None:
        def make_batch(generator):
            return random_batch(train_ids, config.batch_size, model.config.block_size, generator)
    if measure is None:
        def measure(losses):
            return {"train": estimate_loss(model, train_ids, batches=config.eval_batches),
                    "val": estimate_loss(model, val_ids, batches=config.eval_batches)}
        history = {"step": [], "train": [], "val": []}
    else:
        history = {"step": []}              # measure's names are added at its first measurement
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(model, config)
    start = 0
    saved_step = None                       # the step of the last checkpoint written (or resumed from)
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        history, start = _resume(checkpoint_path, model, config, optimizer, generator, list(history))
        saved_step = start
    engine = _data_parallel(model) if world > 1 else model            # what the steps call
    model.train()
    limit = 3.0 * math.log(model.config.vocab_size) + 1.0   # far worse than guessing: diverged
    bar = tqdm(range(start, last), initial=start, total=last, disable=not progress or rank > 0,
               desc="training", unit="step", leave=True)
    checkpoint_path = checkpoint_path if rank == 0 else None          # one process writes the files
    snapshots = snapshots if rank == 0 else None

    def save(step):
        if checkpoint_path is None:
            return
        kwargs = dict(train_config=config, step=step, history=history, tokenizer_chars=tokenizer_chars)
        save_checkpoint(checkpoint_path, model, optimizer=optimizer, generator=generator, **kwargs)

    done, losses = start, []
    try:
        for step in bar:
            lr = learning_rate(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            value = _forward_backward(engine, make_batch(generator), parts)
            what = _diverged(value, limit)
            if what:
                raise TrainingDiverged(
                    f"the loss {what} at step {step} (learning rate {lr:.2g}): training stopped.\n"
                    f"Try a learning rate 10 times lower (lr={config.lr / 10:.2g})"
                    + (f"; the last good checkpoint is kept in {checkpoint_path}" if checkpoint_path else "."))
            _step(model, optimizer, config.grad_clip)
            losses.append(value)
            bar.set_postfix(loss=f"{value:.3f}", lr=f"{lr:.1e}", refresh=False)
            done = step + 1
            if snapshots and done in snapshots:
                save_checkpoint(snapshots[done], model, config, done, history, tokenizer_chars=tokenizer_chars,
                                precision="int8")
            if done % config.eval_every == 0 or done == last:
                numbers = measure(losses)
                history["step"].append(done)          # all together: Ctrl-C cannot leave them ragged
                for name, number in numbers.items():
                    history.setdefault(name, []).append(number)
                losses = []
                save(done)
                saved_step = done if checkpoint_path is not None else None
                if on_eval is not None and rank == 0:
                    on_eval(done, history)
    except KeyboardInterrupt:
        kept = (f"; the last checkpoint (step {saved_step}) is in {checkpoint_path}. Run again with resume=True "
                "to continue" if saved_step else "")
        if rank == 0:
            print(f"interrupted after {done} steps{kept}.")
    finally:
        bar.close()
        model.eval()
    return history


def _resume(path, model, config: TrainConfig, optimizer, generator, names: list[str]) -> tuple[dict, int]:
    """``(history, step)`` of the checkpoint ``path``, after loading its weights into ``model`` and
    its state into ``optimizer`` and ``generator``; a :class:`CheckpointError` naming the file when
    it was made for another model or with other settings, or its history lacks the lists ``names``."""
    state = load_checkpoint(path)
    if state["model_config"] != asdict(model.config):
        raise CheckpointError(f"{path}: made for a different model ({state['model_config']}); "
                              f"cannot resume training {asdict(model.config)}")
    if state["train_config"] is not None and state["train_config"] != asdict(config):
        different = {k: (v, state["train_config"].get(k)) for k, v in asdict(config).items()
                     if state["train_config"].get(k) != v}
        raise CheckpointError(f"{path}: was trained with other settings; (yours, the file's): "
                              f"{different}. Resume with the same TrainConfig, or start a new file")
    load_weights(path, state, model)
    try:
        if state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        if state["generator"] is not None:
            generator.set_state(state["generator"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: its optimizer or random-generator state cannot be "
                              f"restored: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not all(isinstance(state["history"].get(name), list) for name in names):
        raise CheckpointError(f"{path}: its history lacks the lists {names} that training continues")
    return state["history"], state["step"]


# ---------------------------------------------------------------- one step on many processes (torchrun)

def start_processes(device: str = "auto") -> tuple[int, int, torch.device]:
    """``(rank, number of processes, device)`` for this process. Started by ``torchrun`` (which sets
    ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``) it joins the others: NCCL between CUDA GPUs, gloo
    on CPU. Started alone it is process 0 of 1. ``device="auto"``: this process's GPU
    (``cuda:LOCAL_RANK``) when CUDA is present, else the CPU. :func:`train` then runs
    data-parallel by itself."""
    world, local = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        device = torch.device("cuda", local) if device.index is None else device   # one GPU a process
        if device.index >= torch.cuda.device_count():
            raise SystemExit(f"process {local} of this machine wants {device}, but it has "
                             f"{torch.cuda.device_count()} GPU(s): start at most that many (--nproc_per_node)")
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _processes()[0], world, device


def end_processes() -> None:
    """Leave the process group (if :func:`start_processes` joined one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _processes() -> tuple[int, int]:
    """``(rank, number of processes)``: ``(0, 1)`` unless :func:`start_processes` joined a group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _data_parallel(model):
    """``model`` wrapped so that backward averages its gradients over every process."""
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _batch_parts(batch_size: int, micro_batch: int | None) -> list[tuple[int, int]]:
    """The ``(first row, end row)`` of each micro-batch of this process in a batch of ``batch_size``
    windows shared among the processes, ``micro_batch`` windows each (default: the whole share)."""
    rank, world = _processes()
    share = batch_size // world
    micro = share if micro_batch is None else gpt.whole_number(micro_batch, "micro_batch", 1)
    if share * world != batch_size or share % micro:
        raise ValueError(f"a batch of {batch_size} windows cannot be cut into equal shares for {world} "
                         f"process(es) and micro-batches of {micro} windows: make batch_size a multiple of "
                         "processes x micro_batch")
    first = rank * share
    return [(first + i, first + i + micro) for i in range(0, share, micro)]


def _rows(batch, first: int, end: int):
    """Rows ``first:end`` of each tensor of ``batch``; a ``(T, T)`` mask (no batch rows) is shared."""
    return [t if t.dtype == torch.bool and t.dim() == 2 else t[first:end] for t in batch]


def _forward_backward(engine, batch, parts) -> float:
    """Forward and backward passes over this process's ``parts`` of ``batch`` (row ranges, from
    :func:`_batch_parts`), the gradients adding up to those of the mean loss over the whole batch;
    returns that mean loss over every process (the same number in each)."""
    device = next(engine.parameters()).device
    total = torch.zeros((), device=device)
    for i, (first, end) in enumerate(parts):
        rows = batch if (first, end) == (0, len(batch[0])) else _rows(batch, first, end)
        wait = isinstance(engine, DistributedDataParallel) and i < len(parts) - 1
        with engine.no_sync() if wait else contextlib.nullcontext():   # average gradients once, at the end
            with autocast(device):
                _, loss = engine(*_to(rows, device))
            (loss / len(parts) if len(parts) > 1 else loss).backward()
        total += loss.detach().float()
    world = _processes()[1]
    if world > 1:
        dist.all_reduce(total)                           # the sum over processes
    return total.item() / (len(parts) * world)


def _to(batch, device) -> list:
    """The tensors of ``batch`` (a model's arguments) on ``device``; anything else as it is."""
    return [t.to(device) if isinstance(t, torch.Tensor) else t for t in batch]


def autocast(device: torch.device):
    """bfloat16 autocast on a CUDA GPU that supports it (matmuls in bfloat16, sums and the loss in
    float32), else nothing: the CPU keeps float32."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------- the short loop of fine-tuning (notebooks 11-12)

def fit(model, make_batch, steps: int, lr: float, grad_clip: float = 1.0, evaluate=None, eval_at=()) -> int:
    """Fine-tune ``model``: ``steps`` updates of its parameters that require gradients by AdamW at a
    constant learning rate ``lr``, without weight decay, each on ``make_batch()``: the arguments of
    one call of the model, ``(x, y)`` or ``(x, y, mask)`` (the function owns its random draws).
    The gradient's global norm is clipped to ``grad_clip`` (0 = no clipping). ``evaluate(step)``
    is called before the first step when ``0 in eval_at``, after every step in ``eval_at`` and
    after the last one. With a constant rate the first n steps of a run are a run of n steps.

    Returns how many steps were done: Ctrl-C (KeyboardInterrupt) stops cleanly after fewer. A loss
    that becomes NaN or infinite stops with :class:`TrainingDiverged`. Leaves the model in eval mode.
    """
    steps = gpt.whole_number(steps, "steps", 0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    device = next(model.parameters()).device
    model.train()
    done = 0
    try:
        if evaluate is not None and 0 in eval_at:
            evaluate(0)
        for step in range(1, steps + 1):
            _, loss = model(*_to(make_batch(), device))
            what = _diverged(loss.item(), math.inf)
            if what:
                raise TrainingDiverged(f"the loss {what} at step {step}: fine-tuning stopped. Try a learning "
                                       f"rate 10 times lower (lr={lr / 10:.2g})")
            _update(model, optimizer, loss, grad_clip)
            done = step
            if evaluate is not None and (step in eval_at or step == steps):
                evaluate(step)
    except KeyboardInterrupt:
        print(f"interrupted after {done} steps.")
    finally:
        model.eval()
    return done


def scoring_windows(n: int, block_size: int) -> list[tuple[int, int, int]]:
    """How :func:`full_loss` covers ``n`` tokens: ``(start, length, first)`` per window.

    A window feeds ``ids[start:start + length]`` and predicts ``ids[start + 1:start + length + 1]``;
    it scores its predictions from index ``first`` on. Windows overlap by half, so every token
    after the first is scored exactly once, with at least ``block_size // 2`` tokens of context
    (fewer only near the start of the text).
    """
    if n < 2:
        raise ValueError(f"need at least 2 tokens to score a prediction, got {n}")
    T = min(block_size, n - 1)
    stride = max(1, T // 2)
    windows = [(0, T, 0)]
    scored_up_to = T                                    # targets 1..T are scored
    while scored_up_to < n - 1:
        start = min(windows[-1][0] + stride, n - 1 - T)
        first = scored_up_to - start                    # skip targets an earlier window scored
        windows.append((start, T, first))
        scored_up_to = start + T
    return windows


@torch.no_grad()
def full_loss(model, ids: torch.Tensor, batch_size: int = 64) -> float:
    """Mean cross-entropy (nats per token) over **every** token of ``ids`` after the first, using
    the overlapping windows of :func:`scoring_windows`. Used for the numbers a model is reported by."""
    windows = scoring_windows(len(ids), model.config.block_size)
    with evaluating(model):
        total, count = 0.0, 0
        for i in range(0, len(windows), batch_size):
            chunk = windows[i: i + batch_size]
            x = torch.stack([ids[s: s + T] for s, T, _ in chunk])
            y = torch.stack([ids[s + 1: s + T + 1] for s, T, _ in chunk])
            logits, _ = model(x.to(next(model.parameters()).device))
            losses = torch.nn.functional.cross_entropy(logits.cpu().transpose(1, 2), y, reduction="none")  # (B, T)
            for row, (_, T, first) in zip(losses, chunk):
                total += row[first:].sum().item()
                count += T - first
    return total / count
