"""Experiments on data: quality, diversity and scale (notebook 10_evaluation_and_data).

Each experiment trains the same small GPT with the same settings and the same initial weights
on a different training text and measures it on the same held-out plays. The only thing that
changes is the data (or, in the size sweep, the model), so a difference in held-out loss is
caused by it, or by chance (a run with another seed shows how large chance is).

- :func:`add_noise`, :func:`with_duplicates`, :func:`fraction_of_plays`: make training texts.
- :func:`run`: one training run with the shared settings, returning its curve and its losses.
  ``scripts/make_sweeps.py`` calls it for every point stored in ``data/sweeps.json``; notebook 10
  calls it again for one small point and checks that it gets the stored number.
- :func:`fit_power_law`: the straight line through a log-log plot.
- :func:`pick_passages`, :func:`with_repeats`, :func:`recited_characters`: duplicates that are
  read many times, and a probe of whether the model recites them word for word.
- :func:`bits_per_character`: a loss that compares models with different tokenizers.
"""

import math
import time
from dataclasses import asdict, replace

import numpy as np
import torch

from helpers import checkpoints, data, gpt, tokenizers, training

# The settings every sweep run shares (a model small enough to train in under a minute).
MODEL = dict(n_layer=2, n_head=4, n_embd=64, block_size=64, dropout=0.0)   # 109,184 parameters
TRAIN = training.TrainConfig(steps=1200, batch_size=16, lr=3e-3, min_lr=3e-4, warmup_steps=100, weight_decay=0.1,
                             beta2=0.99, grad_clip=1.0, eval_every=100, eval_batches=10, seed=1337)
MODEL_SEED = 1337
EVAL_BATCHES = 40          # final held-out measurement: 40 batches x 32 windows x 64 characters


def tokenizer() -> tokenizers.CharTokenizer:
    """The character tokenizer of the 32 training plays (78 characters), shared by every run."""
    return tokenizers.CharTokenizer(data.corpus_text("train"))


def add_noise(text: str, fraction: float, alphabet: str, seed: int = 0) -> str:
    """``text`` with a ``fraction`` of its characters replaced by random characters of ``alphabet``
    (a replacement can draw the character it replaces, so slightly fewer change): a crude, worst
    case model of the typos, OCR errors and junk of badly cleaned web text."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    chars = list(text)
    hits = np.flatnonzero(rng.random(len(chars)) < fraction)
    for i, pick in zip(hits, rng.integers(0, len(alphabet), size=len(hits))):
        chars[i] = alphabet[pick]
    return "".join(chars)


def with_duplicates(plays, repeated: int, copies: int) -> str:
    """All ``plays``, plus ``copies`` extra copies of the first ``repeated`` of them (in the order
    given; ``data.split_plays`` sorts by genre): the same pages scraped many times, as happens in
    web crawls."""
    extra = [p.text for p in plays[:repeated]] * copies
    return "\n".join([p.text for p in plays] + extra)


def fraction_of_plays(plays, fraction: float) -> str:
    """The opening ``fraction`` of every play (cut mid-line), joined: less data, with the same mix
    of plays and genres (but only their first scenes)."""
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
        seed: int | None = None, progress: bool = False, on_eval=None, eval_batches: int = EVAL_BATCHES,
        tok=None, checkpoint=None) -> dict:
    """Train a fresh GPT (``MODEL`` updated by ``model``) on ``train_text`` with ``TRAIN`` settings
    and measure it. ``eval_texts`` must include ``"validation"`` (the curve is measured on it) and
    may add any other named texts. ``steps`` shortens the run for a quick experiment; ``seed``
    replaces ``MODEL_SEED`` and the batch seed (to see how much runs differ by chance alone);
    ``progress`` and ``on_eval`` are passed to :func:`helpers.training.train` (a progress bar; a
    live plot). ``tok`` replaces the character tokenizer (e.g. a ``BPETokenizer``: the losses
    are then per token); ``checkpoint``, a path, keeps the trained model there (float16). Results
    depend in their last digits on the number of PyTorch threads.

    Returns a dict: ``model_config``, ``parameters``, ``train_characters``, ``train_tokens``,
    ``tokens_seen``;
    ``history``, the training and validation loss every ``eval_every`` steps on ``eval_batches``
    (10) fixed batches, and ``best_val``, its lowest validation value; ``final``, the loss on each
    of ``eval_texts`` and on the training text (``"train"``) at the end, on ``eval_batches`` (40)
    fixed batches, so more precise than (and not comparable with) the curve; ``seconds``.
    """
    if "validation" not in eval_texts or "train" in eval_texts:
        raise ValueError(f"eval_texts needs a 'validation' text and no 'train' entry (the training text is "
                         f"measured as 'train'); got {sorted(eval_texts)}")
    tok = tokenizer() if tok is None else tok
    config = gpt.GPTConfig(vocab_size=tok.vocab_size, **{**MODEL, **(model or {})})
    train_config = TRAIN
    if steps is not None:               # a shorter run keeps a tenth of it (at most) for the warm-up
        train_config = replace(train_config, steps=steps, warmup_steps=min(TRAIN.warmup_steps, steps // 10),
                               eval_every=min(TRAIN.eval_every, steps))
    if seed is not None:
        train_config = replace(train_config, seed=seed)
    train_ids = torch.tensor(tok.encode(train_text))
    eval_ids = {name: torch.tensor(tok.encode(text)) for name, text in eval_texts.items()}
    torch.manual_seed(MODEL_SEED if seed is None else seed)
    net = gpt.GPT(config)
    started = time.perf_counter()
    history = training.train(net, train_ids, eval_ids["validation"], train_config, progress=progress,
                             on_eval=on_eval)
    final = {name: training.estimate_loss(net, ids, batches=eval_batches) for name, ids in eval_ids.items()}
    final["train"] = training.estimate_loss(net, train_ids, batches=eval_batches)
    if checkpoint is not None:
        checkpoints.save_checkpoint(checkpoint, net, train_config, step=train_config.steps, history=history,
                                    tokenizer_chars="".join(tok.chars) if hasattr(tok, "chars") else None,
                                    precision="float16")
    return {"model_config": asdict(config), "parameters": gpt.count_parameters(config),
            "train_characters": len(train_text), "train_tokens": len(train_ids),
            "tokens_seen": train_config.steps * train_config.batch_size * config.block_size, "history": history, "final": {k: round(v, 4) for k, v in final.items()},
            "best_val": round(min(history["val"]), 4), "seconds": round(time.perf_counter() - started, 1)}


# ---------------------------------------------------------------- duplicates that bite; tokens vs characters

PROMPT = 64            # characters a recitation probe prompts with (the model's whole context)


def pick_passages(text: str, count: int, length: int, seed: int = 0) -> list[str]:
    """``count`` passages of ``text``, ``length`` characters each, that start at the start of a
    line and do not overlap, chosen at random (``seed``), in the order drawn."""
    starts = [i + 1 for i in range(len(text) - length - 1) if text[i] == "\n"]
    chosen: list[int] = []
    for start in np.random.default_rng(seed).permutation(starts):
        if all(abs(int(start) - other) >= length for other in chosen):
            chosen.append(int(start))
            if len(chosen) == count:
                return [text[s: s + length] for s in chosen]
    raise ValueError(f"text holds fewer than {count} separate passages of {length} characters")


def with_repeats(text: str, copies: dict[str, int], seed: int = 0) -> str:
    """``text``, then ``copies[passage]`` extra copies of each passage, one a line, shuffled
    (``seed``): passages the training text already holds, repeated as a web crawl repeats quotes,
    licences and boilerplate."""
    extra = [passage for passage, n in copies.items() for _ in range(n)]
    order = np.random.default_rng(seed).permutation(len(extra))
    return "\n".join([text] + [extra[i] for i in order])


@torch.no_grad()
def recited_characters(model, tok, passages, prompt: int = PROMPT) -> list[int]:
    """The verbatim-continuation probe. For each passage (all of one length): give the model its
    first ``prompt`` characters, let it continue greedily (always the most likely next character)
    for the rest, and count the characters it gets right before its first mistake. A model that
    has learnt a passage by heart recites it: the count is the whole rest."""
    ids = torch.tensor([tok.encode(p) for p in passages])                       # (n, length)
    if ids.shape[1] <= prompt:
        raise ValueError(f"passages must be longer than the {prompt}-character prompt")
    with training.evaluating(model):
        out = model.generate(ids[:, :prompt], ids.shape[1] - prompt, top_k=1,
                             generator=torch.Generator().manual_seed(0))
    right = (out[:, prompt:] == ids[:, prompt:]).int()                           # (n, length - prompt)
    return [int(row.cumprod(0).sum()) for row in right]


def bits_per_character(model, tok, text: str) -> float:
    """Bits per **character** of ``text`` under ``model`` with tokenizer ``tok``: the summed
    cross-entropy (nats) of every token after the first (``training.full_loss``), divided by the
    characters those tokens cover and by ln 2. Comparable across tokenizers, unlike a loss per
    token (a token of a bigger vocabulary covers more text, so it is harder to predict)."""
    ids = tok.encode(text)
    nats = training.full_loss(model, torch.tensor(ids)) * (len(ids) - 1)
    characters = len(text) - len(tok.decode(ids[:1]))
    return nats / characters / math.log(2)
