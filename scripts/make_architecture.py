"""Run notebook 08's architecture experiments and store their results in data/architecture.json.

Usage (from the repository root):

    python scripts/make_architecture.py                    # both parts (about 5 minutes, 1 core)
    python scripts/make_architecture.py --part positions   # learned positions vs none (NoPE)
    python scripts/make_architecture.py --part norm        # pre- vs post-LayerNorm, 2 and 8 blocks

``--part positions`` trains notebook 10's sweep model (2 blocks, width 64; the same settings and
seed as ``data/sweeps.json``'s baseline) twice: with its learned position table, and with no
position information at all (``gpt.remove_positions``: the table zero and frozen). For each it
stores the held-out curve, the final held-out loss, and ``gpt.shuffled_context_losses``: the loss
on the next character with the context in order and with all but its last character shuffled.

``--part norm`` trains GPTs of 2 and 8 blocks (width 64) with the block of GPT-2 (pre-LN) and
of the 2017 Transformer and GPT-1 (post-LN, ``gpt.GPT(config, norm="post")``) for 400 steps at
a constant learning rate of 3e-3 without warm-up, then the deep post-LN one again with a
100-step warm-up, and at a rate of 1e-3.

Each part updates its own key of ``architecture.json`` (the other is kept), with how it was made
(``helpers.artefacts.provenance``). One thread: notebook 08 reruns the start of one run live, on
one thread as the tests do, and compares.
"""

import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from helpers import artefacts, data, gpt, tokenizers, training

# --part positions: notebook 10's sweep model and settings (helpers/experiments.py MODEL, TRAIN)
POSITIONS_MODEL = dict(n_layer=2, n_head=4, n_embd=64, block_size=64)
POSITIONS_TRAIN = training.TrainConfig(steps=1200, batch_size=16, lr=3e-3, min_lr=3e-4, warmup_steps=100,
                                       weight_decay=0.1, beta2=0.99, grad_clip=1.0, eval_every=100,
                                       eval_batches=10, seed=1337)
MODEL_SEED = 1337
FINAL_BATCHES = 40          # final held-out loss: 40 batches x 32 windows x 64 characters
ORDER_WINDOWS = 2048        # windows of the order test (gpt.shuffled_context_losses)

# --part norm: a constant rate with no warm-up, then the deep post-LN model with one
NORM_WIDTH = dict(n_head=4, n_embd=64, block_size=64)
NORM_TRAIN = training.TrainConfig(steps=400, batch_size=12, lr=3e-3, min_lr=3e-3, warmup_steps=0,
                                  weight_decay=0.1, beta2=0.99, grad_clip=1.0, eval_every=50,
                                  eval_batches=10, seed=0)
NORM_RUNS = {"2 blocks, pre-LN": (2, "pre", 0, 3e-3), "2 blocks, post-LN": (2, "post", 0, 3e-3),
             "8 blocks, pre-LN": (8, "pre", 0, 3e-3), "8 blocks, post-LN": (8, "post", 0, 3e-3),
             "8 blocks, post-LN, warm-up 100": (8, "post", 100, 3e-3),
             "8 blocks, post-LN, rate 1e-3": (8, "post", 0, 1e-3)}
LIVE_CHECK = "8 blocks, pre-LN"        # notebook 08 reruns its first 50 steps


def texts():
    tok = tokenizers.CharTokenizer(data.corpus_text("train"))
    return (tok, torch.tensor(tok.encode(data.corpus_text("train"))),
            torch.tensor(tok.encode(data.corpus_text("validation"))))


def positions_model(vocab_size: int, positions: bool) -> gpt.GPT:
    """The sweep model with its seed; ``positions=False`` removes its position information."""
    torch.manual_seed(MODEL_SEED)
    model = gpt.GPT(gpt.GPTConfig(vocab_size=vocab_size, **POSITIONS_MODEL))
    return model if positions else gpt.remove_positions(model)


def norm_model(vocab_size: int, n_layer: int, norm: str) -> gpt.GPT:
    torch.manual_seed(0)
    return gpt.GPT(gpt.GPTConfig(vocab_size=vocab_size, n_layer=n_layer, **NORM_WIDTH), norm=norm)


def norm_train_config(warmup_steps: int, lr: float) -> training.TrainConfig:
    """``NORM_TRAIN`` with a warm-up of ``warmup_steps`` to the constant rate ``lr``."""
    return replace(NORM_TRAIN, warmup_steps=warmup_steps, lr=lr, min_lr=lr)


def positions(argv) -> dict:
    tok, train_ids, val_ids = texts()
    result = {"model": POSITIONS_MODEL, "train": asdict(POSITIONS_TRAIN), "model_seed": MODEL_SEED,
              "final_batches": FINAL_BATCHES, "order_windows": ORDER_WINDOWS, "runs": {}}
    started = time.perf_counter()
    for name, keep in (("learned", True), ("none", False)):
        run_started = time.perf_counter()
        model = positions_model(tok.vocab_size, keep)
        history = training.train(model, train_ids, val_ids, POSITIONS_TRAIN, progress=False)
        in_order, shuffled = gpt.shuffled_context_losses(model, val_ids, windows=ORDER_WINDOWS)
        result["runs"][name] = {"history": history,
                                "final_val": round(training.estimate_loss(model, val_ids, batches=FINAL_BATCHES), 4),
                                "order_test": {"in order": round(in_order, 4), "shuffled": round(shuffled, 4)},
                                "seconds": round(time.perf_counter() - run_started, 1)}
        print(name, result["runs"][name]["final_val"], result["runs"][name]["order_test"], flush=True)
    result["provenance"] = artefacts.provenance(seconds=time.perf_counter() - started, seed=MODEL_SEED, argv=argv)
    return result


def norm(argv) -> dict:
    tok, train_ids, val_ids = texts()
    result = {"width": NORM_WIDTH, "train": asdict(NORM_TRAIN), "model_seed": 0, "live_check": LIVE_CHECK,
              "runs": {}}
    started = time.perf_counter()
    for name, (n_layer, kind, warmup, lr) in NORM_RUNS.items():
        run_started = time.perf_counter()
        model = norm_model(tok.vocab_size, n_layer, kind)
        try:
            history = training.train(model, train_ids, val_ids, norm_train_config(warmup, lr), progress=False)
            diverged = None
        except training.TrainingDiverged as exc:
            history, diverged = None, str(exc)
        result["runs"][name] = {"n_layer": n_layer, "norm": kind, "warmup_steps": warmup, "lr": lr, "history": history,
                                "diverged": diverged, "seconds": round(time.perf_counter() - run_started, 1)}
        print(name, history and [round(v, 3) for v in history["val"]], diverged, flush=True)
    result["provenance"] = artefacts.provenance(seconds=time.perf_counter() - started, seed=0, argv=argv)
    return result


def main(argv=None) -> int:
    parser = artefacts.command_parser(__file__, __doc__)
    parser.add_argument("--part", choices=("positions", "norm", "all"), default="all")
    args = artefacts.start_command(parser, argv, threads=1)
    path = Path(args.out) / "architecture.json"
    for part, make in (("positions", positions), ("norm", norm)):
        if args.part in (part, "all"):
            result = make(args.argv)
            record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}   # the other part kept
            record[part] = result
            artefacts.write_json(path, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
