"""Train notebook 12's models and store them with their training curves.

Usage (from the repository root):

    python data/make_families.py                 # about 12 minutes on one core
    python data/make_families.py --out /tmp/try  # somewhere else

Writes, in ``data/``:

- ``family_causal.pt``, ``family_masked.pt``, ``family_permutation.pt``: the small GPT of
  notebook 10 (2 blocks x 64, plus a ``[MASK]`` token) trained with each objective of
  ``helpers/families.py`` (``TRAIN``: 3,000 steps of 16 windows of 32 characters, seed 1337),
  stored in float16;
- ``dialogue_lora.pt``: a LoRA adapter that turns the pretrained GPT into a speech -> reply model
  (``DIALOGUE``: 600 steps of 16 pairs);
- ``families.json``: every training curve, the settings and how the files were made.

One thread, so that notebook 12's short live runs repeat the stored curves digit for digit.
Every file is written atomically (a temporary file, then renamed).
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from helpers import families, finetune, training  # noqa: E402
from helpers.paths import DATA_DIR  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="folder for the files (default: data/)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tok, mask_id = families.tokenizer_and_mask_id()
    result = {"settings": {"train": families.TRAIN, "window": families.WINDOW,
                           "mask_fraction": families.MASK_FRACTION, "dialogue": families.DIALOGUE,
                           "lora": finetune.LORA},
              "objectives": {}}
    for objective in families.OBJECTIVES:
        print(f"{objective} ...", flush=True)
        model, history = families.train_objective(objective)
        print(f"  loss {history['loss'][-1]}, {history['seconds']} s", flush=True)
        result["objectives"][objective] = history
        training.save_checkpoint(args.out / f"family_{objective}.pt", model,
                                 training.TrainConfig(**families.TRAIN), step=families.TRAIN["steps"],
                                 history=history, tokenizer_chars="".join(tok.chars), precision="float16")
    print("dialogue ...", flush=True)
    model, _, history = families.train_dialogue(on_eval=lambda h: print("  ", h, flush=True))
    result["dialogue"] = history
    finetune.save_adapter(model, args.out / "dialogue_lora.pt", steps=families.DIALOGUE["steps"],
                          command="python data/make_families.py")
    result["provenance"] = {"command": "python " + " ".join(["data/make_families.py"] + sys.argv[1:]),
                            "threads": torch.get_num_threads(), "torch": torch.__version__,
                            "python": platform.python_version(), "machine": platform.machine(),
                            "seconds": round(time.perf_counter() - started, 1)}
    path = args.out / "families.json"
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(result, indent=1) + "\n")
    temporary.replace(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
