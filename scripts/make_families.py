"""Train notebook 12's models and store them with their training curves.

Usage (from the repository root):

    python scripts/make_families.py                 # about 12 minutes on one core
    python scripts/make_families.py --out /tmp/try  # somewhere else

Writes, in ``data/``:

- ``family_causal.pt``, ``family_masked.pt``, ``family_permutation.pt``: the small GPT of
  notebook 10 (2 blocks x 64, plus a ``[MASK]`` token) trained with each objective of
  ``helpers/families.py`` (``TRAIN``: 3,000 steps of 16 windows of 32 characters, seed 1337),
  stored in float16;
- ``dialogue_lora.pt``: a LoRA adapter that turns the pretrained GPT into a speech -> reply model
  (``DIALOGUE``: 600 steps of 16 pairs);
- ``families.json``: every training curve, the settings and how the files were made
  (``helpers.artefacts.provenance``).

One thread, so that notebook 12's short live runs repeat the stored curves digit for digit.
Every file is written atomically (a temporary file, then renamed).
"""

import dataclasses
import sys
import time

from helpers import artefacts, checkpoints, families, lora


def main(argv=None) -> int:
    parser = artefacts.command_parser(__file__, __doc__)
    args = artefacts.start_command(parser, argv, threads=1)
    started = time.perf_counter()
    tok, mask_id = families.tokenizer_and_mask_id()
    result = {"settings": {"train": dataclasses.asdict(families.TRAIN), "window": families.WINDOW,
                           "mask_fraction": families.MASK_FRACTION,
                           "dialogue": dataclasses.asdict(families.DIALOGUE),
                           "lora": dataclasses.asdict(lora.LoRAConfig())},
              "objectives": {}}
    for objective in families.OBJECTIVES:
        print(f"{objective} ...", flush=True)
        model, history = families.train_objective(objective)
        artefacts.require_finished(history, families.TRAIN.steps)
        print(f"  loss {history['loss'][-1]}, {history['seconds']} s", flush=True)
        result["objectives"][objective] = history
        checkpoints.save_checkpoint(args.out / f"family_{objective}.pt", model,
                                    families.TRAIN, step=families.TRAIN.steps,
                                    history=history, tokenizer_chars="".join(tok.chars), precision="float16")
    print("dialogue ...", flush=True)
    model, _, history = families.train_dialogue(on_eval=lambda h: print("  ", h, flush=True))
    artefacts.require_finished(history, families.DIALOGUE.steps)
    result["dialogue"] = history
    made = artefacts.provenance(seconds=history["seconds"], seed=families.DIALOGUE.seed, argv=args.argv)
    lora.save_adapter(model, args.out / "dialogue_lora.pt", steps=families.DIALOGUE.steps, provenance=made)
    result["provenance"] = artefacts.provenance(seconds=time.perf_counter() - started, seed=families.TRAIN.seed,
                                                argv=args.argv)
    artefacts.write_json(args.out / "families.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
