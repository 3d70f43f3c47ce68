"""Experiments on data: quality, diversity and scale (notebook 10_evaluation_and_data).

Each experiment trains the same small GPT with the same settings on a different training
text and measures it on the same held-out plays. The only thing that changes is the data
(or, in the size sweep, the model), so any difference in held-out loss is caused by it.

- :func:`add_noise`, :func:`with_duplicates`, :func:`fraction_of_plays`: make training texts.
- :func:`run`: one training run with the shared settings, returning its curve and its losses.
  ``data/make_sweeps.py`` calls it for every point stored in ``data/sweeps.json``; notebook 10
  calls it again for one small point and checks that it gets the stored number.
- :func:`fit_power_law`: the straight line through a log-log plot.
"""

import time
from dataclasses import asdict

import numpy as np
import torch

from helpers import data, gpt, tokenizers, training

# The settings every sweep run shares (a model small enough to train in under a minute).
MODEL = dict(n_layer=2, n_head=4, n_embd=64, block_size=64, dropout=0.0)   # 109,184 parameters
TRAIN = dict(steps=1200, batch_size=16, lr=3e-3, min_lr=3e-4, warmup_steps=100, weight_decay=0.1,
             beta2=0.99, grad_clip=1.0, eval_every=100, eval_batches=10, seed=1337)
MODEL_SEED = 1337
EVAL_BATCHES = 40          # final held-out measurement: 40 batches x 32 windows x 64 characters


def tokenizer() -> tokenizers.CharTokenizer:
    """The character tokenizer of the 32 training plays (78 characters), shared by every run."""
    return tokenizers.CharTokenizer(data.corpus_text("train"))


def add_noise(text: str, fraction: float, alphabet: str, seed: int = 0) -> str:
    """``text`` with about ``fraction`` of its characters replaced by random characters of
    ``alphabet``: the typos, OCR errors and junk of badly cleaned web text."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    chars = list(text)
    hits = np.flatnonzero(rng.random(len(chars)) < fraction)
    for i, pick in zip(hits, rng.integers(0, len(alphabet), size=len(hits))):
        chars[i] = alphabet[pick]
    return "".join(chars)


def with_duplicates(plays, repeated: int, copies: int) -> str:
    """All ``plays``, plus ``copies`` extra copies of the first ``repeated`` of them: the same
    pages scraped many times, as happens in web crawls."""
    extra = [p.text for p in plays[:repeated]] * copies
    return "\n".join([p.text for p in plays] + extra)


def fraction_of_plays(plays, fraction: float) -> str:
    """The first ``fraction`` of every play, joined: less data, with the same mix of plays and genres."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return "\n".join(p.text[: max(1, round(len(p.text) * fraction))] for p in plays)


def fit_power_law(x, y) -> tuple[float, float]:
    """``(a, b)`` of the line ``log y = log a + b log x`` through the points (least squares), so
    ``y ≈ a * x**b``. On a log-log plot a power law is a straight line of slope ``b``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 2 or (x <= 0).any() or (y <= 0).any():
        raise ValueError("need two equally long lists of at least 2 positive numbers")
    b, log_a = np.polyfit(np.log(x), np.log(y), 1)
    return float(np.exp(log_a)), float(b)


def run(train_text: str, eval_texts: dict[str, str], model: dict | None = None, steps: int | None = None,
        seed: int | None = None, progress: bool = False, on_eval=None) -> dict:
    """Train a fresh GPT (``MODEL`` updated by ``model``) on ``train_text`` with ``TRAIN`` settings
    (``steps`` overrides the number of steps, for a quick experiment) and measure it. ``seed``
    replaces ``MODEL_SEED`` and the batch seed (to see how much runs differ by chance alone). ``progress`` and ``on_eval`` are
    passed to :func:`helpers.training.train` (a progress bar; a live plot).

    Returns ``{"parameters", "train_characters", "history", "final": {name: loss}, "best_val", "seconds"}``:
    ``history`` is the training and held-out (``eval_texts["validation"]``) loss every ``eval_every`` steps;
    ``final`` the loss on each of ``eval_texts`` and on the training text, in nats per character,
    measured on the same ``EVAL_BATCHES`` fixed windows for every run.
    """
    tok = tokenizer()
    config = gpt.GPTConfig(vocab_size=tok.vocab_size, **{**MODEL, **(model or {})})
    settings = dict(TRAIN)
    if steps:                           # a shorter run keeps a tenth of it (at most) for the warm-up
        settings.update(steps=steps, warmup_steps=min(TRAIN["warmup_steps"], steps // 10),
                        eval_every=min(TRAIN["eval_every"], steps))
    if seed is not None:
        settings["seed"] = seed
    train_config = training.TrainConfig(**settings)
    train_ids = torch.tensor(tok.encode(train_text))
    eval_ids = {name: torch.tensor(tok.encode(text)) for name, text in eval_texts.items()}
    torch.manual_seed(MODEL_SEED if seed is None else seed)
    net = gpt.GPT(config)
    started = time.perf_counter()
    history = training.train(net, train_ids, eval_ids["validation"], train_config, progress=progress,
                             on_eval=on_eval)
    final = {name: training.estimate_loss(net, ids, batches=EVAL_BATCHES) for name, ids in eval_ids.items()}
    final["train"] = training.estimate_loss(net, train_ids, batches=EVAL_BATCHES)
    return {"model_config": asdict(config), "parameters": gpt.count_parameters(config),
            "train_characters": len(train_text), "tokens_seen": train_config.steps * train_config.batch_size
            * config.block_size, "history": history, "final": {k: round(v, 4) for k, v in final.items()},
            "best_val": round(min(history["val"]), 4), "seconds": round(time.perf_counter() - started, 1)}
