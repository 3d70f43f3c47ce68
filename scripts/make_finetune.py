"""Run notebook 11's fine-tuning experiments and store their results.

Usage (from the repository root):

    python data/make_finetune.py                    # both parts, one after the other (~90 min, 1 core)
    python data/make_finetune.py --part genre       # the classification grid only (~43 min)
    python data/make_finetune.py --part modernise   # the generative task only (~43 min; run both at once on 2 cores)

``--part genre`` fine-tunes the shipped GPT (``data/gpt_shakespeare.pt``) to label 256-character
passages with their play's genre, by each of ``finetune.METHODS`` and with 20, 80 and 320
training passages per genre, measured on passages from the six held-out plays
(``helpers/finetune.py``: ``CLASSIFY``, seed 0); results in ``data/finetune_genre.json``.

``--part modernise`` fine-tunes it (fully, and with LoRA) and the same network from scratch to
rewrite a Shakespearean line in modern English (``MODERNISE``); results in
``data/finetune_modernise.json`` and the LoRA matrices in ``data/modernise_lora.pt``.

Each part writes ``<name>.partial.json`` after every run and renames it when complete, so an
interrupted run never replaces a complete file. One thread: the notebook reruns one point live
on one thread (as the tests do) and compares every digit.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from helpers import finetune  # noqa: E402
from helpers.paths import DATA_DIR  # noqa: E402

SIZES = (20, 80, 320)              # training passages per genre
LIVE_CHECK = ("full", 20)          # notebook 11 reruns the first 25 steps of this run


def provenance(seconds: float) -> dict:
    return {"command": "python " + " ".join(["data/make_finetune.py"] + sys.argv[1:]),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "seconds": round(seconds, 1)}


def write(path: Path, result: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(result, indent=1) + "\n")
    temporary.replace(path)


def genre(out: Path) -> None:
    started = time.perf_counter()
    result = {"settings": {**finetune.CLASSIFY, "sizes": SIZES, "lora": finetune.LORA}, "live_check": LIVE_CHECK,
              "runs": {}}
    partial = out / "finetune_genre.partial.json"
    for per_genre in SIZES:
        for method in finetune.METHODS:
            name = f"{method}-{per_genre}"
            print(f"{name} ...", flush=True)
            result["runs"][name] = finetune.train_classifier(method, per_genre)
            print(f"  accuracy {result['runs'][name]['history']['accuracy']}, "
                  f"{result['runs'][name]['seconds']} s", flush=True)
            write(partial, result)
    result["provenance"] = provenance(time.perf_counter() - started)
    write(partial, result)
    partial.replace(out / "finetune_genre.json")


def modernise(out: Path) -> None:
    started = time.perf_counter()
    result = {"settings": {**finetune.MODERNISE, "lora": finetune.LORA}, "runs": {}}
    partial = out / "finetune_modernise.partial.json"
    for method in ("full", "lora", "scratch"):
        print(f"{method} ...", flush=True)
        model, _, run = finetune.train_modernise(method, on_eval=lambda h: print("  ", h, flush=True))
        print(f"  CER {run['final']['cer']}, exact {run['final']['exact']}, {run['seconds']} s", flush=True)
        result["runs"][method] = run
        write(partial, result)
        if method == "lora":
            finetune.save_adapter(model, out / "modernise_lora.pt", steps=run["steps"], cer=run["final"]["cer"],
                                  exact=run["final"]["exact"], command="python data/make_finetune.py --part modernise")
    result["provenance"] = provenance(time.perf_counter() - started)
    write(partial, result)
    partial.replace(out / "finetune_modernise.json")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("genre", "modernise", "all"), default="all")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="folder for the results (default: data/)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.part in ("genre", "all"):
        genre(args.out)
    if args.part in ("modernise", "all"):
        modernise(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
