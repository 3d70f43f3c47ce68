"""Run notebook 10's data and scale experiments and store their results in data/sweeps.json.

Usage (from the repository root):

    python scripts/make_sweeps.py                  # every experiment (about 20 minutes on 2 cores)
    python scripts/make_sweeps.py --resume         # continue an interrupted sweep
    python scripts/make_sweeps.py --only noise-0.1 --out /tmp/try   # one run, into /tmp/try/sweeps.json
    python scripts/make_sweeps.py --part duplicates   # duplicates that bite (about 5 minutes, 1 thread)
    python scripts/make_sweeps.py --part tokens       # BPE-512 vs characters (about 3 minutes, 1 thread)
    python scripts/make_sweeps.py --part compute      # bigger models at the baseline's compute (1 minute)
    python scripts/make_sweeps.py --part control      # the duplicates' control: fewer steps (2 minutes)

Every run trains the same small GPT (``helpers/experiments.py``: ``MODEL``, ``TRAIN``, seed 1337)
on a different training text, or (the size sweep) a different width and depth on the full text,
and measures it on the same fixed windows of the held-out plays (``baseline-seed-2`` repeats
the baseline with seed 2, to show how large chance is). A full sweep writes
``sweeps.partial.json`` after each run (an interruption loses at most one run; ``--resume``
continues it), then ``sweeps.json`` at the end (removing the partial file); ``--only`` updates
``sweeps.json`` in place. Each run records how it was made (``helpers.artefacts.provenance``: command, seed,
seconds, threads, machine, versions). Also stored: the shipped model's loss on the first 20,000
characters of every play (seen and unseen).

Two later parts write their own files and leave ``sweeps.json`` alone, each on one thread (so that
notebook 10's live checks, also on one thread, give the stored numbers):

- ``--part duplicates`` (``sweeps_duplicates.json``, ``sweeps_dup.pt``, ``sweeps_nodup.pt``): a
  small training text (the first 1/16 of every play) read about three to five times, with and
  without 72 extra copies of some of its passages, two seeds each, and the verbatim-continuation
  probe (``experiments.recited_characters``) on repeated, unrepeated and held-out passages.
- ``--part tokens`` (``sweeps_tokens.json``, ``sweeps_char.pt``, ``sweeps_bpe512.pt``): the
  baseline model on characters and on the course's BPE-512 tokens, at equal compute (6 x
  parameters x tokens), both measured in bits per character on the validation plays.
- ``--part compute`` (``sweeps_compute.json``): the size sweep's two bigger models trained with
  the baseline's compute (6 x parameters x tokens), so for fewer steps, each with its whole
  schedule (warm-up and cosine decay to the end).
- ``--part control`` (``sweeps_control.json``): the control for ``--part duplicates``: the text
  without duplicates, trained only for the steps the run with duplicates did not spend on copies
  (1,200 x its share of that text, 756 steps, with a whole schedule of its own), seeds 1337 and 2.
"""

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
import sys
import time

import torch

from helpers import artefacts, checkpoints, data, experiments, gpt, tokenizers, training
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


# --part duplicates: the passages repeated 64 and 8 extra times, and 16 never repeated (the control)
DUP_FRACTION, PASSAGES, PASSAGE_LENGTH, DUP_COPIES = 1 / 16, 16, 128, (64, 8, 0)
DUP_SEEDS = (1337, 2)
# --part tokens: the BPE model takes as many steps as give it the character model's compute
BPE_FILE = "tokenizer_bpe512.json"
PROBE_CHARACTERS = 20_000             # the notebook measures bits per character on this much again


def duplicates_part(args) -> dict:
    """Train with and without repeated passages (two seeds) and probe what each model recites."""
    train_plays = data.split_plays()["train"]
    base = experiments.fraction_of_plays(train_plays, DUP_FRACTION)
    drawn = experiments.pick_passages(base, PASSAGES * len(DUP_COPIES), PASSAGE_LENGTH, seed=0)
    groups = {f"x{copies + 1}": drawn[i * PASSAGES: (i + 1) * PASSAGES] for i, copies in enumerate(DUP_COPIES)}
    groups["held-out"] = experiments.pick_passages(data.corpus_text("validation"), PASSAGES, PASSAGE_LENGTH, seed=0)
    copies = {p: c for c, name in zip(DUP_COPIES, groups) for p in groups[name] if c}
    texts = {"without": base, "with": experiments.with_repeats(base, copies, seed=0)}
    eval_texts = {"validation": data.corpus_text("validation"),
                  **{f"passages {name}": "\n".join(ps) for name, ps in groups.items()}}
    tok = experiments.tokenizer()
    record = {"base_fraction": DUP_FRACTION, "passage_length": PASSAGE_LENGTH, "prompt": experiments.PROMPT,
              "copies": {name: c + 1 for name, c in zip(groups, DUP_COPIES)}, "passages": groups,
              "train_characters": {k: len(v) for k, v in texts.items()}, "runs": {}}
    for seed in DUP_SEEDS:
        for condition, text in texts.items():
            name = f"{condition}-seed-{seed}"
            print(f"{name}: {len(text):,} characters", flush=True)
            keep = seed == experiments.MODEL_SEED
            path = args.out / f"sweeps_{'dup' if condition == 'with' else 'nodup'}.pt" if keep else \
                Path(tempfile.mkdtemp()) / "model.pt"
            result = experiments.run(text, eval_texts, seed=seed, checkpoint=path)
            artefacts.require_finished(result["history"], experiments.TRAIN.steps)
            model, _ = checkpoints.load_model(path)          # probe the float16 weights the file holds
            result["recited"] = {g: experiments.recited_characters(model, tok, ps) for g, ps in groups.items()}
            made = artefacts.provenance(seconds=result["seconds"], argv=args.argv, seed=seed)
            record["runs"][name] = {**made, **result, "checkpoint": path.name if keep else None}
            print(f"  held-out {result['final']['validation']:.4f}; recited (mean characters) "
                  + ", ".join(f"{g} {sum(v) / len(v):.1f}" for g, v in result["recited"].items()), flush=True)
            artefacts.write_json(args.out / "sweeps_duplicates.json", record)
    return record


def tokens_part(args) -> dict:
    """The baseline GPT on characters and on BPE-512 tokens at equal compute, in bits per character."""
    full, val = data.corpus_text("train"), data.corpus_text("validation")
    bpe = tokenizers.BPETokenizer.load(DATA_DIR / BPE_FILE)
    char_params = gpt.count_parameters(gpt.GPTConfig(vocab_size=experiments.tokenizer().vocab_size,
                                                     **experiments.MODEL))
    bpe_params = gpt.count_parameters(gpt.GPTConfig(vocab_size=bpe.vocab_size, **experiments.MODEL))
    bpe_steps = round(experiments.TRAIN.steps * char_params / bpe_params)      # equal 6 N D
    record = {"tokenizer": BPE_FILE, "probe_characters": PROBE_CHARACTERS,
              "characters_per_token": {"validation": round(len(val) / len(bpe.encode(val)), 4)}, "runs": {}}
    for name, tok, steps in (("characters", experiments.tokenizer(), None), ("bpe512", bpe, bpe_steps)):
        print(f"{name}: {steps or experiments.TRAIN.steps} steps", flush=True)
        path = args.out / f"sweeps_{'char' if name == 'characters' else name}.pt"
        result = experiments.run(full, {"validation": val}, tok=tok, steps=steps, checkpoint=path)
        artefacts.require_finished(result["history"], steps or experiments.TRAIN.steps)
        model, _ = checkpoints.load_model(path)
        result["bits_per_character"] = {
            "validation": round(experiments.bits_per_character(model, tok, val), 4),
            "probe": round(experiments.bits_per_character(model, tok, val[:PROBE_CHARACTERS]), 4)}
        result["flops"] = 6 * result["parameters"] * result["tokens_seen"]
        if name == "bpe512":
            record["characters_per_token"]["train"] = round(len(full) / result["train_tokens"], 4)
        made = artefacts.provenance(seconds=result["seconds"], argv=args.argv, seed=experiments.MODEL_SEED)
        record["runs"][name] = {**made, **result, "checkpoint": path.name}
        print(f"  {result['bits_per_character']} bits per character; {result['flops']:.3g} FLOPs", flush=True)
        artefacts.write_json(args.out / "sweeps_tokens.json", record)
    return record


def compute_part(args) -> dict:
    """The bigger models of the size sweep, each trained for as many steps as give it the compute
    of the baseline's 1,200 steps (with a whole schedule of its own), measured like every run."""
    full, val = data.corpus_text("train"), data.corpus_text("validation")
    budget = 6 * gpt.count_parameters(gpt.GPTConfig(vocab_size=experiments.tokenizer().vocab_size,
                                                    **experiments.MODEL)) * experiments.TRAIN.steps \
        * experiments.TRAIN.batch_size * experiments.MODEL["block_size"]
    record = {"flops": budget, "runs": {}}
    for n_layer, n_embd in SIZES[1:]:
        model = dict(n_layer=n_layer, n_embd=n_embd)
        params = gpt.count_parameters(gpt.GPTConfig(vocab_size=experiments.tokenizer().vocab_size,
                                                    **{**experiments.MODEL, **model}))
        steps = round(budget / (6 * params * experiments.TRAIN.batch_size * experiments.MODEL["block_size"]))
        name = f"size-{n_layer}x{n_embd}-equal-compute"
        print(f"{name}: {steps} steps", flush=True)
        result = experiments.run(full, {"validation": val}, model=model, steps=steps)
        artefacts.require_finished(result["history"], steps)
        result["flops"] = 6 * result["parameters"] * result["tokens_seen"]
        made = artefacts.provenance(seconds=result["seconds"], argv=args.argv, seed=experiments.MODEL_SEED)
        record["runs"][name] = {**made, **result}
        print(f"  held-out {result['final']['validation']:.4f}; {result['flops']:.3g} FLOPs", flush=True)
        artefacts.write_json(args.out / "sweeps_compute.json", record)
    return record


def control_part(args) -> dict:
    """The text without duplicates, trained only for the steps the run with duplicates spent on it
    (the rest went to the copies), both seeds of ``--part duplicates``."""
    train_plays = data.split_plays()["train"]
    base = experiments.fraction_of_plays(train_plays, DUP_FRACTION)
    stored = json.loads((DATA_DIR / "sweeps_duplicates.json").read_text(encoding="utf-8"))
    share = len(base) / stored["train_characters"]["with"]
    steps = round(experiments.TRAIN.steps * share)
    record = {"base_fraction": DUP_FRACTION, "share_not_copies": round(share, 4), "steps": steps, "runs": {}}
    for seed in DUP_SEEDS:
        name = f"without-{steps}-steps-seed-{seed}"
        print(f"{name}: {len(base):,} characters", flush=True)
        result = experiments.run(base, {"validation": data.corpus_text("validation")}, steps=steps, seed=seed)
        artefacts.require_finished(result["history"], steps)
        made = artefacts.provenance(seconds=result["seconds"], argv=args.argv, seed=seed)
        record["runs"][name] = {**made, **result}
        print(f"  held-out {result['final']['validation']:.4f}", flush=True)
        artefacts.write_json(args.out / "sweeps_control.json", record)
    return record


def main(argv=None) -> int:
    parser = artefacts.command_parser(__file__, __doc__, threads=2)
    parser.add_argument("--part", default="sweeps",
                        choices=("sweeps", "duplicates", "tokens", "compute", "control"),
                        help="sweeps (default): sweeps.json; the others: their own files, one thread")
    parser.add_argument("--resume", action="store_true", help="keep the runs already stored")
    parser.add_argument("--only", nargs="*", help="run only these experiments (names as in the file)")
    parser.add_argument("--steps", type=int, default=None, help="a quick try: shorter runs (not for data/)")
    parser.add_argument("--eval-batches", type=int, default=experiments.EVAL_BATCHES,
                        help=f"batches of the final measurement (default {experiments.EVAL_BATCHES})")
    args = artefacts.start_command(parser, argv)
    if args.part != "sweeps":
        torch.set_num_threads(1)
        started = time.perf_counter()
        {"duplicates": duplicates_part, "tokens": tokens_part, "compute": compute_part,
         "control": control_part}[args.part](args)
        print(f"done in {(time.perf_counter() - started) / 60:.1f} min")
        return 0
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
