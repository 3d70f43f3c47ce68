"""Run notebook 10's data and scale experiments and store their results in data/sweeps.json.

Usage (from the repository root):

    python scripts/make_sweeps.py                  # every experiment (about 20 minutes on 2 cores)
    python scripts/make_sweeps.py --resume         # continue an interrupted sweep
    python scripts/make_sweeps.py --only noise-0.1 --out /tmp/try   # one run, into /tmp/try/sweeps.json

Every run trains the same small GPT (``helpers/experiments.py``: ``MODEL``, ``TRAIN``, seed 1337)
on a different training text, or (the size sweep) a different width and depth on the full text,
and measures it on the same fixed windows of the held-out plays (``baseline-seed-2`` repeats
the baseline with seed 2, to show how large chance is). A full sweep writes
``sweeps.partial.json`` after each run (an interruption loses at most one run; ``--resume``
continues it), then ``sweeps.json`` at the end (removing the partial file); ``--only`` updates
``sweeps.json`` in place. Each run records how it was made (``helpers.artefacts.provenance``: command, seed,
seconds, threads, machine, versions). Also stored: the shipped model's loss on the first 20,000
characters of every play (seen and unseen).
"""

import json
from dataclasses import asdict
import sys
import time

import torch

from helpers import artefacts, checkpoints, data, experiments, tokenizers, training
from helpers.paths import DATA_DIR

FRACTIONS = (256, 64, 16, 4)                         # 1/256 ... 1/4 of every play (the baseline is all of it)
NOISE = (0.03, 0.1, 0.3)
SIZES = ((1, 32), (3, 96), (4, 128))                 # (n_layer, n_embd), 4 heads each; the baseline is (2, 64)
DUPLICATED_PLAYS, COPIES = 4, 8
GENRE = "comedies"
PLAY_CHARACTERS = 20_000
# Notebook 10 reruns this one live and compares. Results depend on the number of threads in the
# last digits, and the tests run notebooks on one thread, so this run always uses one.
LIVE_CHECK = "size-1x32"


def eval_texts() -> dict[str, str]:
    """The texts every run is measured on: the validation plays; the six held-out plays by genre
    (a comedy, a history and a tragedy each in validation and test); and, for the duplicates
    experiment, the training plays that it repeats and the other training plays."""
    splits = data.split_plays()
    held_out = splits["validation"] + splits["test"]
    texts = {"validation": data.corpus_text("validation")}
    for genre in sorted({p.genre for p in held_out}):        # comedies, histories, tragedies
        texts[f"held-out {genre}"] = "\n".join(p.text for p in held_out if p.genre == genre)
    texts["duplicated plays"] = "\n".join(p.text for p in splits["train"][:DUPLICATED_PLAYS])
    texts["other training plays"] = "\n".join(p.text for p in splits["train"][DUPLICATED_PLAYS:])
    return texts


def experiment_plan() -> dict:
    """``{run name: (training text maker, model overrides, description)}`` for every run."""
    train_plays = data.split_plays()["train"]
    alphabet = "".join(experiments.tokenizer().chars)
    full = data.corpus_text("train")
    genre_text = "\n".join(p.text for p in train_plays if p.genre == GENRE)
    share = len(genre_text) / len(full)
    plan = {"baseline": (lambda: full, None, "every training play (the reference run)"),
            "baseline-seed-2": (lambda: full, None, "the same as the baseline with seed 2 (chance alone)")}
    for n in FRACTIONS:
        plan[f"fraction-1/{n}"] = (lambda n=n: experiments.fraction_of_plays(train_plays, 1 / n), None,
                                   f"the first 1/{n} of every training play")
    for p in NOISE:
        plan[f"noise-{p:g}"] = (lambda p=p: experiments.add_noise(full, p, alphabet, seed=1),
                                None, f"every training play, {p:.0%} of characters replaced at random")
    plan["duplicates"] = (lambda: experiments.with_duplicates(train_plays, DUPLICATED_PLAYS, COPIES), None,
                          f"every training play, plus {COPIES} more copies of the first {DUPLICATED_PLAYS}")
    plan[f"genre-{GENRE}"] = (lambda: genre_text, None, f"only the {len(genre_text):,} characters of the "
                              f"training {GENRE}")
    plan["genre-all"] = (lambda: experiments.fraction_of_plays(train_plays, share), None,
                         f"the same number of characters from every training play ({share:.3f} of each)")
    for n_layer, n_embd in SIZES:
        plan[f"size-{n_layer}x{n_embd}"] = (lambda: full, dict(n_layer=n_layer, n_embd=n_embd),
                                            f"every training play; {n_layer} layer{'s' if n_layer > 1 else ''}, width {n_embd}")
    return plan


def per_play_losses() -> dict:
    """The shipped model's loss on the first ``PLAY_CHARACTERS`` characters of every play."""
    model, state = checkpoints.load_model(DATA_DIR / "gpt_shakespeare.pt")
    tok = tokenizers.CharTokenizer(state["tokenizer_chars"])
    held_out = set(data.VALIDATION_PLAYS + data.TEST_PLAYS)
    out = {}
    for play in data.load_plays():
        ids = torch.tensor(tok.encode(play.text[:PLAY_CHARACTERS]))
        out[play.slug] = {"title": play.title, "genre": play.genre, "seen": play.slug not in held_out,
                          "loss": round(training.full_loss(model, ids), 4)}
        print(f"  {play.slug}: {out[play.slug]['loss']:.4f}", flush=True)
    return out


def main(argv=None) -> int:
    parser = artefacts.command_parser(__file__, __doc__, threads=2)
    parser.add_argument("--resume", action="store_true", help="keep the runs already stored")
    parser.add_argument("--only", nargs="*", help="run only these experiments (names as in the file)")
    parser.add_argument("--steps", type=int, default=None, help="a quick try: shorter runs (not for data/)")
    parser.add_argument("--eval-batches", type=int, default=experiments.EVAL_BATCHES,
                        help=f"batches of the final measurement (default {experiments.EVAL_BATCHES})")
    args = artefacts.start_command(parser, argv)
    quick = args.steps is not None or args.eval_batches != experiments.EVAL_BATCHES
    if quick and args.out.resolve() == DATA_DIR.resolve():
        parser.error("--steps and --eval-batches are for a quick try: give --out another folder "
                     "(data/sweeps.json holds the full runs the notebooks read)")
    path = args.out / "sweeps.json"
    # A full sweep writes sweeps.partial.json after every run and sweeps.json when every run is
    # done, so that an interrupted sweep never replaces a complete file; --only edits sweeps.json.
    partial = artefacts.partial_path(path)
    target = path if args.only else partial
    source = path if args.only else (partial if args.resume and partial.exists() else path if args.resume else None)
    record = json.loads(source.read_text(encoding="utf-8")) if source is not None and source.exists() else {}
    for stale in ("threads", "torch", "python", "machine"):
        record.pop(stale, None)             # kept per run: a rerun with --only may differ
    record.update({"command": "python scripts/make_sweeps.py",
                   "model": experiments.MODEL, "train": asdict(experiments.TRAIN), "model_seed": experiments.MODEL_SEED,
                   "eval_batches": args.eval_batches, "duplicated_plays": [
                       p.slug for p in data.split_plays()["train"][:DUPLICATED_PLAYS]]})
    runs = record.setdefault("runs", {})
    texts = eval_texts()
    plan = experiment_plan()
    unknown = set(args.only or ()) - set(plan) - {"plays"}
    if unknown:
        parser.error(f"unknown experiments {sorted(unknown)}; choose from {sorted(plan)} or 'plays'")
    started = time.perf_counter()
    for name, (make_text, model, description) in plan.items():
        if (args.only and name not in args.only) or (args.resume and not args.only and name in runs):
            continue
        text = make_text()
        threads = 1 if name == LIVE_CHECK else args.threads
        torch.set_num_threads(threads)
        print(f"{name}: {description} ({len(text):,} characters, {threads} thread(s))", flush=True)
        seed = 2 if name == "baseline-seed-2" else None
        result = experiments.run(text, texts, model=model, seed=seed, steps=args.steps,
                                 eval_batches=args.eval_batches)
        artefacts.require_finished(result["history"], args.steps or experiments.TRAIN.steps)
        made = artefacts.provenance(seconds=result["seconds"], argv=args.argv,
                                    seed=experiments.MODEL_SEED if seed is None else seed)
        runs[name] = {"description": description, **made, **result}
        print(f"  held-out {result['final']['validation']:.4f} (best {result['best_val']:.4f}), train "
              f"{result['final']['train']:.4f}; {result['seconds']:.0f} s", flush=True)
        artefacts.write_json(target, record)
    if not args.only or "plays" in args.only:
        if not (args.resume and "plays" in record):
            print("the shipped model on every play:", flush=True)
            torch.set_num_threads(args.threads)
            record["plays"] = per_play_losses()
            record["play_characters"] = PLAY_CHARACTERS
            artefacts.write_json(target, record)
    if target == partial:
        artefacts.finish_partial(path, record)
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
