"""Run notebook 11's fine-tuning experiments and store their results.

Usage (from the repository root):

    python scripts/make_finetune.py                    # both parts, one after the other (~90 min, 1 core)
    python scripts/make_finetune.py --part genre       # the classification grid only (~43 min)
    python scripts/make_finetune.py --part modernise   # the generative task only (~43 min; run both at once on 2 cores)
    python scripts/make_finetune.py --part forgetting  # full fine-tuning at 1e-4, and at 1e-3 with replay
    python scripts/make_finetune.py --part lora-all    # LoRA on every linear layer, its rate chosen on dev pairs
    python scripts/make_finetune.py --part probe       # the frozen body's head as a linear probe

``--part genre`` fine-tunes the shipped GPT (``data/gpt_shakespeare.pt``) to label 256-character
passages with their play's genre, by each of ``finetune.METHODS`` and with 20, 80 and 320
training passages per genre, measured on passages from the six held-out plays
(``helpers/finetune.py``: ``ClassifyConfig``, seed 0); results in ``data/finetune_genre.json``.

``--part modernise`` fine-tunes it (fully, and with LoRA) and the same network from scratch to
rewrite a Shakespearean line in modern English (``ModerniseConfig``); results in
``data/finetune_modernise.json`` and the LoRA matrices in ``data/modernise_lora.pt``.

``--part forgetting`` (``data/finetune_forgetting.json``), ``--part lora-all``
(``data/finetune_lora_all.json``) and ``--part probe`` (``data/finetune_probe.json``) answer the
questions the first two parts left open: does full fine-tuning forget less at a smaller rate or
with pretraining text mixed into its batches? does LoRA learn the task when it wraps every
linear layer, at a rate chosen on pairs from the training plays? how well does a head fitted to
convergence on the frozen body's features (a linear probe) do? They leave the first files
unchanged.

Each part writes ``<name>.partial.json`` after every run and ``<name>.json`` when complete
(removing the partial file), so an interrupted run never replaces a complete file; with the
results, how they were made (``helpers.artefacts.provenance``). One thread: the notebook reruns
one point live on one thread (as the tests do) and compares every digit.
"""

import dataclasses
import sys
import time
from pathlib import Path

import torch

from helpers import artefacts, finetune, lora

SIZES = (20, 80, 320)              # training passages per genre
LIVE_CHECK = ("full", 20)          # notebook 11 reruns the first 25 steps of this run


def genre(out: Path, argv: list[str]) -> None:
    started = time.perf_counter()
    result = {"settings": {**dataclasses.asdict(finetune.ClassifyConfig()), "sizes": SIZES,
                              "lora": dataclasses.asdict(lora.LoRAConfig())}, "live_check": LIVE_CHECK,
              "runs": {}}
    path = out / "finetune_genre.json"
    for per_genre in SIZES:
        for method in finetune.METHODS:
            name = f"{method}-{per_genre}"
            print(f"{name} ...", flush=True)
            result["runs"][name] = finetune.train_classifier(method, per_genre)
            artefacts.require_finished(result["runs"][name]["history"], finetune.ClassifyConfig().steps)
            print(f"  accuracy {result['runs'][name]['history']['accuracy']}, "
                  f"{result['runs'][name]['seconds']} s", flush=True)
            artefacts.write_json(artefacts.partial_path(path), result)
    result["provenance"] = artefacts.provenance(seconds=time.perf_counter() - started, seed=finetune.ClassifyConfig().seed,
                                                argv=argv)
    artefacts.finish_partial(path, result)


def modernise(out: Path, argv: list[str]) -> None:
    started = time.perf_counter()
    result = {"settings": {**dataclasses.asdict(finetune.ModerniseConfig()), "lora": dataclasses.asdict(lora.LoRAConfig())},
              "runs": {}}
    path = out / "finetune_modernise.json"
    for method in ("full", "lora", "scratch"):
        print(f"{method} ...", flush=True)
        model, _, run = finetune.train_modernise(method, on_eval=lambda h: print("  ", h, flush=True))
        artefacts.require_finished(run["history"], finetune.ModerniseConfig().steps)
        print(f"  CER {run['final']['cer']}, exact {run['final']['exact']}, {run['seconds']} s", flush=True)
        result["runs"][method] = run
        artefacts.write_json(artefacts.partial_path(path), result)
        if method == "lora":
            made = artefacts.provenance(seconds=run["seconds"], seed=finetune.ModerniseConfig().seed, argv=argv)
            lora.save_adapter(model, out / "modernise_lora.pt", steps=run["steps"], cer=run["final"]["cer"],
                                  exact=run["final"]["exact"], provenance=made)
    result["provenance"] = artefacts.provenance(seconds=time.perf_counter() - started, seed=finetune.ModerniseConfig().seed,
                                                argv=argv)
    artefacts.finish_partial(path, result)


EXTRA_STEPS = 250                  # the forgetting and LoRA-on-every-layer runs
EXTRA_EVAL_AT = (0, 10, 250)       # notebook 11 reruns the first 10 steps of the replay run
# (--part forgetting, --part lora-all and --part probe: about 5, 5 and 1 minutes on a quiet core)
REPLAY_ROWS = 4                    # windows of pretraining text added to each batch of 16 pairs
SWEEP_STEPS = 100                  # the learning-rate sweep for LoRA, on the development pairs
SWEEP_RATES = (3e-3, 1e-2, 3e-2)
SWEEP_TARGETS = {"qv": ("query", "value"), "all": lora.ALL_LINEAR}   # qv: at the rate chosen for all
PROBE_SEEDS = {20: (0, 1, 2), 80: (0, 1, 2), 320: (0,)}   # draws of training passages for the probe


def _modernise_run(name, result, path, argv, **kwargs):
    print(f"{name} ...", flush=True)
    _, _, run = finetune.train_modernise(on_eval=lambda h: print("  ", h, flush=True), **kwargs)
    print(f"  final {None if run['final'] is None else {k: run['final'][k] for k in ('cer', 'exact')}}, "
          f"{run['seconds']} s", flush=True)
    result["runs"][name] = run
    artefacts.write_json(artefacts.partial_path(path), result)
    return run


def forgetting(out: Path, argv: list[str]) -> None:
    """Full fine-tuning for modernisation at a ten times smaller rate (1e-4), and at 1e-3 with
    replay (``REPLAY_ROWS`` windows of pretraining text in every batch): 250 steps each, measured
    as the stored 1,000-step runs were at step 250, and scored on the held-out pairs."""
    started = time.perf_counter()
    config = finetune.ModerniseConfig()
    result = {"settings": {"steps": EXTRA_STEPS, "eval_at": EXTRA_EVAL_AT, "replay_rows": REPLAY_ROWS},
              "runs": {}}
    path = out / "finetune_forgetting.json"
    for name, lr, replay in (("full-1e-4", 1e-4, 0), ("full-replay", 1e-3, REPLAY_ROWS)):
        _modernise_run(name, result, path, argv, method="full", steps=EXTRA_STEPS, replay=replay,
                       config=dataclasses.replace(config, lr={**config.lr, "full": lr}), eval_at=EXTRA_EVAL_AT)
    result["provenance"] = artefacts.provenance(seconds=time.perf_counter() - started, seed=config.seed, argv=argv)
    artefacts.finish_partial(path, result)


def lora_all(out: Path, argv: list[str]) -> None:
    """LoRA on every linear layer for modernisation: its learning rate chosen by a sweep on the
    development pairs (``finetune.dev_pairs``, from the training plays), LoRA on query and value
    at the chosen rate on the same pairs (to separate rate from targets), then 250 steps at that
    rate scored on the held-out pairs."""
    started = time.perf_counter()
    config = finetune.ModerniseConfig()
    result = {"settings": {"steps": EXTRA_STEPS, "eval_at": EXTRA_EVAL_AT, "sweep_steps": SWEEP_STEPS,
                           "sweep_rates": SWEEP_RATES, "sweep_targets": SWEEP_TARGETS, "lora_rank": 4,
                           "lora_alpha": 8.0}, "runs": {}}
    path = out / "finetune_lora_all.json"
    sweep = {}

    def dev_run(key, rate):
        run = _modernise_run(f"dev-lora-{key}-{rate:g}", result, path, argv, method="lora",
                             steps=SWEEP_STEPS, config=dataclasses.replace(config, lr={**config.lr, "lora": rate}),
                             lora_config=lora.LoRAConfig(targets=SWEEP_TARGETS[key]), eval_at=(0, SWEEP_STEPS),
                             on_dev=True, score=False)
        sweep[(key, rate)] = run["history"]["answer_loss"][-1]

    for rate in SWEEP_RATES:
        dev_run("all", rate)
    best = min(SWEEP_RATES, key=lambda rate: sweep[("all", rate)])
    result["chosen_lr"] = best
    dev_run("qv", best)
    _modernise_run("lora-all", result, path, argv, method="lora", steps=EXTRA_STEPS,
                   config=dataclasses.replace(config, lr={**config.lr, "lora": best}),
                   lora_config=lora.LoRAConfig(targets=lora.ALL_LINEAR), eval_at=EXTRA_EVAL_AT)
    result["provenance"] = artefacts.provenance(seconds=time.perf_counter() - started, seed=config.seed, argv=argv)
    artefacts.finish_partial(path, result)


def probe(out: Path, argv: list[str]) -> None:
    """The frozen body + head fitted as a linear probe: logistic regression on the frozen model's
    pooled features, for each training size and (for 20 and 80 per genre) three draws of the
    training passages; seed 0 draws the passages the SGD-trained runs used."""
    started = time.perf_counter()
    config = finetune.ClassifyConfig()
    body, tok = finetune.load_pretrained()
    eval_texts, eval_labels = finetune.genre_passages("held-out", config.eval_per_genre, config.length,
                                                      seed=config.seed + 1)
    eval_features = finetune.pooled_features(body, tok, eval_texts)
    result = {"settings": {"sizes": SIZES, "seeds": {str(n): s for n, s in PROBE_SEEDS.items()},
                           "length": config.length}, "labels": eval_labels,
              "runs": {}}
    for per_genre in SIZES:
        for seed in PROBE_SEEDS[per_genre]:
            texts, labels = finetune.genre_passages("train", per_genre, config.length, seed=seed)
            predict = finetune.logistic_regression(finetune.pooled_features(body, tok, texts), labels, 3)
            predictions = predict(eval_features)
            accuracy = round((predictions == torch.tensor(eval_labels)).float().mean().item(), 4)
            result["runs"][f"probe-{per_genre}-seed{seed}"] = {"accuracy": accuracy,
                                                               "predictions": predictions.tolist()}
            print(f"probe {per_genre} seed {seed}: {accuracy}", flush=True)
    result["provenance"] = artefacts.provenance(seconds=time.perf_counter() - started, seed=0, argv=argv)
    artefacts.write_json(out / "finetune_probe.json", result)


def main(argv=None) -> int:
    parser = artefacts.command_parser(__file__, __doc__)
    parser.add_argument("--part", choices=("genre", "modernise", "all", "forgetting", "lora-all", "probe"),
                        default="all")
    args = artefacts.start_command(parser, argv, threads=1)
    if args.part in ("genre", "all"):
        genre(args.out, args.argv)
    if args.part in ("modernise", "all"):
        modernise(args.out, args.argv)
    if args.part == "forgetting":
        forgetting(args.out, args.argv)
    if args.part == "lora-all":
        lora_all(args.out, args.argv)
    if args.part == "probe":
        probe(args.out, args.argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
