"""Training a GPT on the corpus: batches (notebook 08_the_transformer; notebook 07_attention borrows
them for a few seconds of training) and the full loop with schedule and checkpoints (notebook
09_pretraining).

A language model learns from **windows** of text: ``block_size`` tokens in, the same window
shifted by one token as the targets, so every position is a next-token prediction:

    text     T  o     b  e  ,
    x        T  o  ␣  b  e        (block_size = 5)
    y        o  ␣  b  e  ,        y[t] = the token after x[t]

A batch is ``batch_size`` such windows starting at random places: ``x`` and ``y`` are ``(B, T)``.
"""

import contextlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from helpers.artefacts import atomic_write


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
    with evaluating(model):
        losses = []
        for _ in range(batches):
            x, y = random_batch(ids, batch_size, model.config.block_size, generator)
            losses.append(model(x, y)[1].item())
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


def make_optimizer(model, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices (embeddings included), not on biases and layer-norm gains."""
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": matrices, "weight_decay": config.weight_decay}, {"params": others, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, config.beta2))


class TrainingDiverged(RuntimeError):
    """The loss became NaN or exploded; the message says at which step and what to try."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not fit; the message names the file."""


FORMAT = "behind-the-curtain/gpt-checkpoint/1"


def save_checkpoint(path, model, train_config: TrainConfig | None = None, step: int = 0, history=None,
                    optimizer=None, generator=None, tokenizer_chars: str | None = None,
                    precision: str = "float32") -> Path:
    """Write a checkpoint **atomically**: to a temporary file in the same folder, then renamed over
    ``path``. A crash or Ctrl-C while writing never leaves a half-written checkpoint behind.

    Holds only tensors, numbers, strings, lists and dicts, so it loads with
    ``torch.load(..., weights_only=True)``. ``precision`` is how the weights are stored:
    ``"float32"`` (exact), ``"float16"`` (half the size, for shipping) or ``"int8"`` (a quarter:
    each row of a matrix as whole numbers from -127 to 127 times one float scale per row, for
    snapshots whose exact values matter little). Loading turns them back into float32.
    """
    if precision not in ("float32", "float16", "int8"):
        raise ValueError(f"precision must be 'float32', 'float16' or 'int8', got {precision!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {}
    for name, value in model.state_dict().items():
        if name == "lm_head.weight":
            continue                                             # tied to the token embedding: stored once
        value = value.detach().cpu().clone()
        if precision == "int8" and value.dim() == 2:
            scale = value.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
            weights[name] = torch.round(value / scale).to(torch.int8)
            weights[name + ".scale"] = scale.half()
        elif precision != "float32" and value.is_floating_point():
            weights[name] = value.half()
        else:
            weights[name] = value
    state = {"format": FORMAT, "model_config": asdict(model.config), "model": weights, "step": step,
             "train_config": asdict(train_config) if train_config else None,
             "history": history or {"step": [], "train": [], "val": []},
             "tokenizer_chars": tokenizer_chars,
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             "generator": generator.get_state() if generator is not None else None}
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path) -> dict:
    """Read a checkpoint with ``weights_only=True``; a clear :class:`CheckpointError` when the file
    is missing, truncated, corrupted or not a course checkpoint (never a raw unpickling error)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file. Train one first (see notebook 09), "
                              "or check the path.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # zip, pickle and EOF errors all mean the same thing here
        raise CheckpointError(f"{path}: cannot be read as a checkpoint; it may be truncated or corrupted "
                              f"(an interrupted copy or download?). Delete it and train or copy it again. "
                              f"Details: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a course GPT checkpoint (expected format {FORMAT!r})")
    for key in ("model_config", "model", "step", "history"):
        if key not in state:
            raise CheckpointError(f"{path}: the checkpoint has no {key!r} entry; it is incomplete")
    _check_entries(path, state)
    return state


# What save_checkpoint writes besides the format, and the types each entry may have.
_NONE = type(None)
_ENTRIES = {"model_config": (dict,), "model": (dict,), "step": (int,), "history": (dict,),
            "train_config": (dict, _NONE), "tokenizer_chars": (str, _NONE), "optimizer": (dict, _NONE),
            "generator": (torch.Tensor, _NONE)}
_OPTIONAL = ("train_config", "tokenizer_chars", "optimizer", "generator")


def _check_entries(path, state: dict) -> None:
    """A :class:`CheckpointError` naming ``path`` when an entry is unknown or of the wrong type,
    or the model's configuration lacks a field or has an unknown one (a file edited by hand, or
    written by other code). Optional entries a file lacks are filled in as ``None``."""
    from helpers import gpt

    unknown = sorted(set(state) - set(_ENTRIES) - {"format"}, key=str)
    if unknown:
        raise CheckpointError(f"{path}: the checkpoint has unknown entries {unknown}; it was not written "
                              "by save_checkpoint")
    for key in _OPTIONAL:
        state.setdefault(key, None)
    for key, kinds in _ENTRIES.items():
        if not isinstance(state[key], kinds):
            expected = " or ".join("None" if kind is _NONE else kind.__name__ for kind in kinds)
            raise CheckpointError(f"{path}: the checkpoint's {key!r} entry is of type {type(state[key]).__name__}, "
                                  f"expected {expected}")
    try:
        gpt.whole_number(state["step"], "its step", 0, plain_int=True)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    fields = set(gpt.GPTConfig.__dataclass_fields__)
    missing = sorted(fields - set(state["model_config"]))
    unknown = sorted(set(state["model_config"]) - fields, key=str)
    if missing or unknown:
        raise CheckpointError(f"{path}: its model configuration does not fit GPTConfig: missing {missing}, "
                              f"unknown {unknown}")


def check_tensors(path, tensors, shapes: dict, what: str, fit: str) -> None:
    """A :class:`CheckpointError` naming ``path`` unless ``tensors`` (a file's ``what``: weights,
    LoRA matrices) is a dict with exactly the names of ``shapes``, each a floating-point tensor
    of that shape holding finite numbers. ``fit`` names what they must fit, for the message.
    Shared by :func:`load_model` and ``helpers.finetune.load_adapter``."""
    if not isinstance(tensors, dict):
        raise CheckpointError(f"{path}: its {what} are a {type(tensors).__name__}, not a dict of tensors")
    missing = [name for name in shapes if name not in tensors]
    unknown = sorted((name for name in tensors if name not in shapes), key=str)
    if missing or unknown:
        raise CheckpointError(f"{path}: its {what} do not fit {fit}: missing {missing}, unknown {unknown}")
    for name, shape in shapes.items():
        value = tensors[name]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            kind = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(f"{path}: {name} in its {what} is a {kind}, not a floating-point tensor")
        if tuple(value.shape) != tuple(shape):
            raise CheckpointError(f"{path}: its {what} do not fit {fit}: {name} has shape "
                                  f"{tuple(value.shape)}, expected {tuple(shape)}")
        if not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: {name} in its {what} holds NaN or infinite values; the file is "
                                  "damaged, or was saved after training diverged")


def _float32_weights(stored: dict) -> dict:
    """A state dict for ``GPT.load_state_dict`` from stored weights (any precision; head re-tied)."""
    weights = {}
    for name, value in stored.items():
        if name.endswith(".scale"):
            continue
        scale = stored.get(name + ".scale")
        weights[name] = value.float() * scale.float() if scale is not None else value.float()
    weights["lm_head.weight"] = weights.get("token_embedding.weight")
    return weights


def _check_storage(path, stored: dict) -> None:
    """A :class:`CheckpointError` naming ``path`` unless every stored weight is a tensor as
    :func:`save_checkpoint` writes them: floating point, or int8 with a float ``.scale`` per row."""
    for name, value in stored.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: its weights hold {name!r}: {type(value).__name__}, not a named tensor")
        if name == "lm_head.weight":
            raise CheckpointError(f"{path}: its weights hold lm_head.weight, which save_checkpoint never stores "
                                  "(the head is tied to token_embedding.weight)")
        scale = stored.get(name + ".scale")
        if name.endswith(".scale"):
            owner = stored.get(name[: -len(".scale")])
            if not isinstance(owner, torch.Tensor) or owner.dtype != torch.int8:
                raise CheckpointError(f"{path}: its weights hold {name} without the int8 matrix it scales")
        elif value.dtype == torch.int8:
            if not (isinstance(scale, torch.Tensor) and scale.is_floating_point() and value.dim() == 2
                    and tuple(scale.shape) == (value.shape[0], 1)):
                raise CheckpointError(f"{path}: {name} is stored as int8 without a valid {name}.scale "
                                      f"(one float per row, shape ({value.shape[0]}, 1))")
        elif not value.is_floating_point():
            raise CheckpointError(f"{path}: {name} in its weights is a {value.dtype}, not a floating-point tensor")


def _load_weights(path, state: dict, model) -> None:
    """Load the checkpoint's weights into ``model`` after checking them: the tensors the model
    needs, each of its shape and finite (:func:`check_tensors`), or a :class:`CheckpointError`."""
    _check_storage(path, state["model"])
    weights = _float32_weights(state["model"])
    shapes = {name: value.shape for name, value in model.state_dict().items() if name != "lm_head.weight"}
    check_tensors(path, {name: value for name, value in weights.items() if name != "lm_head.weight"}, shapes,
                  what="weights", fit="its configuration")
    model.load_state_dict(weights)


def load_model(path, config=None):
    """``(model, checkpoint)``: a ``helpers.gpt.GPT`` built from the checkpoint's config (or from
    ``config``, which must then match) with its weights loaded, in eval mode, float32.

    A :class:`CheckpointError` naming the file for anything that does not fit: a missing or
    unknown entry, a configuration field that is missing, unknown or of the wrong type, a
    weight that is missing, unknown, of the wrong shape or type, or holds NaN or infinity."""
    from helpers import gpt

    state = load_checkpoint(path)
    try:
        saved = gpt.GPTConfig(**state["model_config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its model configuration is not valid: {exc}") from None
    if config is not None and config != saved:
        different = {k: (v, getattr(saved, k)) for k, v in asdict(config).items() if getattr(saved, k) != v}
        raise CheckpointError(f"{path}: made for a different model; (yours, the file's): {different}")
    model = gpt.GPT(saved)
    _load_weights(path, state, model)
    model.eval()
    return model, state


def train(model, train_ids, val_ids, config: TrainConfig, checkpoint_path=None, resume: bool = False,
          progress: bool = True, tokenizer_chars: str | None = None, on_eval=None, snapshots=None) -> dict:
    """Train ``model`` on random windows of ``train_ids``; returns the history
    ``{"step": [...], "train": [...], "val": [...]}`` of the held-out measurements.

    Every ``eval_every`` steps (and at the end) it measures the training and held-out loss, calls
    ``on_eval(step, history)`` if given (notebooks draw a live plot there) and, with a
    ``checkpoint_path``, saves a checkpoint atomically. ``snapshots`` (``{step: path}``) also keeps
    small int8 copies of the model after those steps, to watch text emerge. ``resume=True`` continues from the checkpoint, with the same
    batches as an uninterrupted run. Ctrl-C (KeyboardInterrupt) stops cleanly, keeping the last
    checkpoint. A loss that becomes NaN or explodes stops with :class:`TrainingDiverged`.
    """
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(model, config)
    history, start = {"step": [], "train": [], "val": []}, 0
    saved_step = None                       # the step of the last checkpoint written (or resumed from)
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        state = load_checkpoint(checkpoint_path)
        if state["model_config"] != asdict(model.config):
            raise CheckpointError(f"{checkpoint_path}: made for a different model ({state['model_config']}); "
                                  f"cannot resume training {asdict(model.config)}")
        if state["train_config"] is not None and state["train_config"] != asdict(config):
            different = {k: (v, state["train_config"].get(k)) for k, v in asdict(config).items()
                         if state["train_config"].get(k) != v}
            raise CheckpointError(f"{checkpoint_path}: was trained with other settings; (yours, the file's): "
                                  f"{different}. Resume with the same TrainConfig, or start a new file")
        _load_weights(checkpoint_path, state, model)
        try:
            if state["optimizer"] is not None:
                optimizer.load_state_dict(state["optimizer"])
            if state["generator"] is not None:
                generator.set_state(state["generator"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{checkpoint_path}: its optimizer or random-generator state cannot be "
                                  f"restored: {type(exc).__name__}: {str(exc)[:200]}") from None
        if not all(isinstance(state["history"].get(key), list) for key in ("step", "train", "val")):
            raise CheckpointError(f"{checkpoint_path}: its history lacks the 'step', 'train' and 'val' lists "
                                  "that training continues")
        history, start = state["history"], state["step"]
        saved_step = start
    model.train()
    limit = 3.0 * math.log(model.config.vocab_size) + 1.0   # far worse than guessing: diverged
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not progress,
               desc="training", unit="step", leave=True)

    def save(step):
        if checkpoint_path is None:
            return
        kwargs = dict(train_config=config, step=step, history=history, tokenizer_chars=tokenizer_chars)
        save_checkpoint(checkpoint_path, model, optimizer=optimizer, generator=generator, **kwargs)

    done = start
    try:
        for step in bar:
            lr = learning_rate(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = random_batch(train_ids, config.batch_size, model.config.block_size, generator)
            _, loss = model(x, y)
            value = loss.item()
            if not math.isfinite(value) or value > limit:
                what = "became NaN" if math.isnan(value) else f"exploded to {value:.3g}"
                raise TrainingDiverged(
                    f"the loss {what} at step {step} (learning rate {lr:.2g}): training stopped. "
                    f"Try a learning rate 10 times lower (lr={config.lr / 10:.2g})"
                    + (f"; the last good checkpoint is kept in {checkpoint_path}" if checkpoint_path else "."))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            bar.set_postfix(loss=f"{value:.3f}", lr=f"{lr:.1e}", refresh=False)
            done = step + 1
            if snapshots and done in snapshots:
                save_checkpoint(snapshots[done], model, config, done, history, tokenizer_chars=tokenizer_chars,
                                precision="int8")
            if done % config.eval_every == 0 or done == config.steps:
                train_loss = estimate_loss(model, train_ids, batches=config.eval_batches)
                val_loss = estimate_loss(model, val_ids, batches=config.eval_batches)
                history["step"].append(done)          # all three together: Ctrl-C cannot leave them ragged
                history["train"].append(train_loss)
                history["val"].append(val_loss)
                save(done)
                saved_step = done if checkpoint_path is not None else None
                if on_eval is not None:
                    on_eval(done, history)
    except KeyboardInterrupt:
        kept = f"; the last checkpoint (step {saved_step}) is in {checkpoint_path}" if saved_step else ""
        print(f"interrupted after {done} steps{kept}. Run again with resume=True to continue.")
    finally:
        bar.close()
        model.eval()
    return history


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
            logits, _ = model(x)
            losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none")   # (B, T)
            for row, (_, T, first) in zip(losses, chunk):
                total += row[first:].sum().item()
                count += T - first
    return total / count
