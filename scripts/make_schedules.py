"""Run notebook 09's learning-rate schedule experiment and store it in data/schedules.json.

Usage (from the repository root):

    python scripts/make_schedules.py                 # every run (about 12 minutes of one core)
    python scripts/make_schedules.py --only constant-2e-3-seed0 --out /tmp/try   # one run

Notebook 09's live run (its model, batches and evaluation windows) with four schedules that differ
in nothing else: a constant rate, or a linear warm-up (30 steps) followed by a cosine decay to a
tenth of the peak, each at the notebook's peak rate (2e-3) and at five times it (1e-2), for the
notebook's 300 steps and (at 2e-3) for 1,200 steps. A constant-rate run of 1,200 steps is also
the constant-rate run of any shorter budget (nothing in it depends on the budget), so its
history holds both. Every run is repeated with a second seed (model and batches) to show how
large chance is. ``cosine-300-2e-3-seed0`` is exactly the notebook's live run, which reruns it
and compares. All runs use one thread (a number's last digits depend on the thread count, and
the tests run notebooks on one). Each run records how it was made (``helpers.artefacts.provenance``).
"""

import json
import sys
import time
from dataclasses import asdict

import torch

from helpers import artefacts, data, gpt, tokenizers, training

MODEL = dict(n_layer=4, n_head=4, n_embd=128, block_size=64)       # notebook 08's model, as in 09's live run
TRAIN = dict(batch_size=12, eval_every=50, eval_batches=4)          # 09's live run
WARMUP = 30
SEEDS = (0, 1)


def plan() -> dict:
    """``{run name: (TrainConfig settings, description)}`` for every run."""
    runs = {}
    for seed in SEEDS:
        for peak, budgets in ((2e-3, (300, 1200)), (1e-2, (300,))):
            label = f"{peak:.0e}".replace("e-0", "e-")                  # 2e-3, 1e-2
            runs[f"constant-{label}-seed{seed}"] = (
                dict(steps=max(budgets), lr=peak, min_lr=peak, warmup_steps=0, seed=seed),
                f"a constant rate {peak:g} for {max(budgets)} steps")
            for steps in budgets:
                runs[f"cosine-{steps}-{label}-seed{seed}"] = (
                    dict(steps=steps, lr=peak, min_lr=peak / 10, warmup_steps=WARMUP, seed=seed),
                    f"warm-up ({WARMUP} steps) to {peak:g}, cosine decay to {peak / 10:g} at step {steps}")
    return runs


def run(vocab_size: int, train_ids, val_ids, settings: dict) -> dict:
    """One run: seeds the model with ``settings["seed"]`` (as the notebook does) and trains it; a
    run whose loss blows up is stored with the measurements it made and the loop's message."""
    torch.manual_seed(settings["seed"])
    model = gpt.GPT(gpt.GPTConfig(vocab_size=vocab_size, **MODEL))
    config = training.TrainConfig(**TRAIN, **settings)
    seen = {}
    started = time.perf_counter()
    try:
        history = training.train(model, train_ids, val_ids, config, progress=False,
                                 on_eval=lambda step, h: seen.update(json.loads(json.dumps(h))))
        diverged = None
    except training.TrainingDiverged as problem:
        history, diverged = seen or {"step": [], "train": [], "val": []}, str(problem)
    seconds = time.perf_counter() - started
    if diverged is None:
        artefacts.require_finished(history, config.steps)
    return {"train_config": asdict(config), "history": history, "diverged": diverged, "seconds": seconds}


def main(argv=None) -> int:
    parser = artefacts.command_parser(__file__, __doc__)
    parser.add_argument("--only", nargs="*", help="run only these (names as in the file); keeps the others")
    args = artefacts.start_command(parser, argv, threads=1)
    path = args.out / "schedules.json"
    # A full run writes schedules.partial.json after every run and schedules.json at the end, so an
    # interruption never replaces a complete file; --only adds runs to schedules.json itself.
    target = path if args.only else artefacts.partial_path(path)
    record = json.loads(path.read_text(encoding="utf-8")) if path.exists() and args.only else {}
    record.update({"command": "python scripts/make_schedules.py", "model": MODEL, "warmup_steps": WARMUP,
                   "seeds": list(SEEDS)})
    runs = record.setdefault("runs", {})
    everything = plan()
    unknown = set(args.only or ()) - set(everything)
    if unknown:
        parser.error(f"unknown runs {sorted(unknown)}; choose from {sorted(everything)}")
    train_text = data.corpus_text("train")
    tok = tokenizers.CharTokenizer(train_text)
    train_ids = torch.tensor(tok.encode(train_text))
    val_ids = torch.tensor(tok.encode(data.corpus_text("validation")))
    started = time.perf_counter()
    for name, (settings, description) in everything.items():
        if args.only and name not in args.only:
            continue
        print(f"{name}: {description}", flush=True)
        result = run(tok.vocab_size, train_ids, val_ids, settings)
        made = artefacts.provenance(seconds=result.pop("seconds"), argv=args.argv, seed=settings["seed"])
        runs[name] = {"description": description, **made, **result}
        h = result["history"]
        print(f"  held-out {h['val'][-1] if h['val'] else float('nan'):.4f} at step "
              f"{h['step'][-1] if h['step'] else 0}" + (f"; {result['diverged']}" if result["diverged"] else "")
              + f" ({made['seconds']:.0f} s)", flush=True)
        artefacts.write_json(target, record)
    if target != path:
        artefacts.finish_partial(path, record)
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
