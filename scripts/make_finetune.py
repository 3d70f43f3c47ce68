"""Run notebook 11's fine-tuning experiments and store their results.

Usage (from the repository root):

    python scripts/make_finetune.py                    # both parts, one after the other (~90 min, 1 core)
    python scripts/make_finetune.py --part genre       # the classification grid only (~43 min)
    python scripts/make_finetune.py --part modernise   # the generative task only (~43 min; run both at once on 2 cores)

``--part genre`` fine-tunes the shipped GPT (``data/gpt_shakespeare.pt``) to label 256-character
passages with their play's genre, by each of ``finetune.METHODS`` and with 20, 80 and 320
training passages per genre, measured on passages from the six held-out plays
(``helpers/finetune.py``: ``ClassifyConfig``, seed 0); results in ``data/finetune_genre.json``.

``--part modernise`` fine-tunes it (fully, and with LoRA) and the same network from scratch to
rewrite a Shakespearean line in modern English (``ModerniseConfig``); results in
``data/finetune_modernise.json`` and the LoRA matrices in ``data/modernise_lora.pt``.

Each part writes ``<name>.partial.json`` after every run and ``<name>.json`` when complete
(removing the partial file), so an interrupted run never replaces a complete file; with the
results, how they were made (``helpers.artefacts.provenance``). One thread: the notebook reruns
one point live on one thread (as the tests do) and compares every digit.
"""

import dataclasses
import sys
import time
from pathlib import Path

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


def main(argv=None) -> int:
    parser = artefacts.command_parser(__file__, __doc__)
    parser.add_argument("--part", choices=("genre", "modernise", "all"), default="all")
    args = artefacts.start_command(parser, argv, threads=1)
    if args.part in ("genre", "all"):
        genre(args.out, args.argv)
    if args.part in ("modernise", "all"):
        modernise(args.out, args.argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
