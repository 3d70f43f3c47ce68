"""Train notebook 12's models and store them with their training curves.

Usage (from the repository root):

    python scripts/make_families.py                 # about 12 minutes on one core
    python scripts/make_families.py --out /tmp/try  # somewhere else
    python scripts/make_families.py --part prefix   # the prefix LM and the mask fractions only
    python scripts/make_families.py --part rank     # sample-and-rank on held-out speeches only

Writes, in ``data/``:

- ``family_causal.pt``, ``family_masked.pt``, ``family_permutation.pt``: the small GPT of
  notebook 10 (2 blocks x 64, plus a ``[MASK]`` token) trained with each objective of
  ``helpers/families.py`` (``TRAIN``: 3,000 steps of 16 windows of 32 characters, seed 1337),
  stored in float16;
- ``dialogue_lora.pt``: a LoRA adapter that turns the pretrained GPT into a speech -> reply model
  (``DIALOGUE``: 600 steps of 16 pairs);
- ``families.json``: every training curve, the settings and how the files were made
  (``helpers.artefacts.provenance``).

``--part prefix`` writes two more files and leaves those above as they are:

- ``family_prefix.pt``: the same small GPT trained as a prefix LM (``families.PREFIX``: a random
  prefix per window seen both ways, the loss on the characters after it), same settings;
- ``families_extra.json``: its training curve, and the masked objective of notebook 12's
  Exercise 3 trained 600 steps with 15%, 30% and 50% of the characters hidden, with the share of
  2,000 held-out blanks each fills in (``families.fill_in_accuracy``).

``--part rank`` writes ``families_rank.json``: for each of the first 40 held-out speeches of
the dialogue data, 8 replies sampled from the dialogue adapter (temperature 1, seed = the
speech's index) ranked by ``families.sample_and_rank`` (the model's own mean log-probability).

One thread, so that notebook 12's short live runs repeat the stored curves digit for digit.
Every file is written atomically (a temporary file, then renamed).
"""

import dataclasses
import sys
import time

from helpers import artefacts, checkpoints, families, lora
from helpers.paths import DATA_DIR


MASK_FRACTIONS = (0.15, 0.3, 0.5)
FRACTION_STEPS = 600


def make_extra(args) -> int:
    """``--part prefix``: the prefix LM and the mask-fraction runs (``families_extra.json``)."""
    started = time.perf_counter()
    tok, mask_id = families.tokenizer_and_mask_id()
    print("prefix ...", flush=True)
    model, history = families.train_objective(families.PREFIX)
    artefacts.require_finished(history, families.TRAIN.steps)
    print(f"  loss {history['loss'][-1]}, {history['seconds']} s", flush=True)
    checkpoints.save_checkpoint(args.out / f"family_{families.PREFIX}.pt", model, families.TRAIN,
                                step=families.TRAIN.steps, history=history, tokenizer_chars="".join(tok.chars),
                                precision="float16")
    result = {"settings": {"train": dataclasses.asdict(families.TRAIN), "window": families.WINDOW,
                           "fraction_steps": FRACTION_STEPS},
              "prefix": history, "mask_fraction": {}}
    windows = families.held_out_windows(2000)
    for fraction in MASK_FRACTIONS:
        print(f"masked, fraction {fraction} ...", flush=True)
        model, history = families.train_objective("masked", stop_after=FRACTION_STEPS, mask_fraction=fraction)
        artefacts.require_finished(history, FRACTION_STEPS)
        history["fill_in"] = families.fill_in_accuracy(model, "masked", windows, mask_id)
        print(f"  loss {history['loss'][-1]}, fills {history['fill_in']:.1%}, {history['seconds']} s", flush=True)
        result["mask_fraction"][str(fraction)] = history
    result["provenance"] = artefacts.provenance(seconds=time.perf_counter() - started, seed=families.TRAIN.seed,
                                                argv=args.argv)
    artefacts.write_json(args.out / "families_extra.json", result)
    return 0


RANK_SPEECHES = 40
RANK_SAMPLES = 8


def make_rank(args) -> int:
    """``--part rank``: sample-and-rank on held-out speeches (``families_rank.json``)."""
    started = time.perf_counter()
    model, tok, _ = lora.load_adapter(DATA_DIR / "dialogue_lora.pt")      # the shipped adapter
    _, eval_pairs = families.dialogue_data()
    ranked = []
    for seed, (speech, _) in enumerate(eval_pairs[:RANK_SPEECHES]):
        ranked.append({"speech": speech, "ranked": [[round(score, 4), reply] for score, reply in
                                                    families.sample_and_rank(model, tok, speech, RANK_SAMPLES,
                                                                             seed=seed)]})
    result = {"settings": {"speeches": RANK_SPEECHES, "samples": RANK_SAMPLES, "temperature": 1.0},
              "speeches": ranked,
              "provenance": artefacts.provenance(seconds=time.perf_counter() - started, seed=0, argv=args.argv)}
    artefacts.write_json(args.out / "families_rank.json", result)
    print(f"{len(ranked)} speeches ranked, {result['provenance']['seconds']} s")
    return 0


def main(argv=None) -> int:
    parser = artefacts.command_parser(__file__, __doc__)
    parser.add_argument("--part", choices=("models", "prefix", "rank"), default="models",
                        help="models: the three objectives and the dialogue adapter (default); "
                             "prefix: the prefix LM and the mask fractions; rank: sample-and-rank")
    args = artefacts.start_command(parser, argv, threads=1)
    if args.part == "prefix":
        return make_extra(args)
    if args.part == "rank":
        return make_rank(args)
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
