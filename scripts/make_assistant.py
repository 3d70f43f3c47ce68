"""Make notebook 13's stored runs: the supervised fine-tune, the reward model and DPO.

Usage (from the repository root):

    python scripts/make_assistant.py                      # both parts (about 30 minutes on a busy core)
    python scripts/make_assistant.py --part sft           # the supervised fine-tune only
    python scripts/make_assistant.py --part preferences   # reward model, best-of-n, DPO (needs the first)

``--part sft`` adds the three control tokens to the shipped GPT (``data/gpt_shakespeare.pt``) and
fine-tunes all of it on the instruction set of ``helpers/assistant.py`` (``SFTConfig``) with two
seeds; the seed-0 model is stored in float16 as ``data/assistant_sft.pt``, and both runs' curves
and held-out scores, with the base model's (prompted one-shot, and in the chat format), in
``data/assistant_sft.json``.

``--part preferences`` reads that model, trains the Bradley-Terry reward model
(``data/assistant_reward.pt``: its LoRA matrices and head), measures best-of-n with it, and
trains DPO from the SFT model for each beta of ``PreferenceConfig`` with two seeds. The seed-0
model of the largest beta is stored in int8 as ``data/assistant_dpo.pt``; every result in
``data/assistant_preferences.json``.

Every file is written atomically, with how it was made (``helpers.artefacts.provenance``). One
thread: notebook 13 reruns the first 50 SFT steps on one thread and compares the held-out loss.
"""

import copy
import dataclasses
import sys
import time

import torch

from helpers import artefacts, assistant, checkpoints, data, preferences, training

SECOND_SEED = 1


def lm_loss(model, tok) -> float:
    """The language-model loss on the validation plays (5 fixed batches): how much plain
    Shakespeare the model still predicts."""
    ids = torch.tensor(tok.encode(data.corpus_text("validation")))
    return round(training.estimate_loss(model, ids, batches=5), 4)


def scores_only(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("replies", "endings")}


def sft_part(args) -> None:
    started = time.perf_counter()
    config = assistant.SFT
    _, eval_examples = assistant.sft_data(config)
    base, tok = assistant.load_chat_base()
    few_shot = assistant.FEW_SHOT
    record = {"settings": dataclasses.asdict(config), "few_shot": few_shot, "runs": {}}
    print("base model ...", flush=True)
    prompted = assistant.evaluate(base, tok, eval_examples, few_shot=few_shot)
    chat = assistant.evaluate(base, tok, eval_examples)
    record["base"] = {"one-shot": prompted, "chat": chat, "lm_loss": lm_loss(base, tok)}
    print("  one-shot", scores_only(prompted), "chat", scores_only(chat), flush=True)
    for seed in (config.seed, SECOND_SEED):
        print(f"SFT seed {seed} ...", flush=True)
        run_config = dataclasses.replace(config, seed=seed)
        model, tok, history = assistant.train_sft(config=run_config, on_eval=lambda h: print("  ", h, flush=True))
        artefacts.require_finished(history, config.steps)
        if seed == config.seed:
            path = args.out / "assistant_sft.pt"
            checkpoints.save_checkpoint(path, model, step=config.steps, history=history,
                                        tokenizer_chars="".join(tok.chars.chars), precision="float16")
            model, _ = checkpoints.load_model(path)          # scored as shipped, in float16
        result = assistant.evaluate(model, tok, eval_examples)   # the same held-out examples for every seed
        record["runs"][str(seed)] = {"history": history, "scores": result, "lm_loss": lm_loss(model, tok)}
        print("  ", scores_only(result), record["runs"][str(seed)]["lm_loss"], flush=True)
    record["provenance"] = artefacts.provenance(seconds=time.perf_counter() - started, seed=config.seed,
                                                argv=args.argv)
    artefacts.write_json(args.out / "assistant_sft.json", record)


def modernise_scores(model, tok, lines, reference_replies=None) -> dict:
    """Greedy modernisations of held-out ``lines``: exact share, the rule's score (share with no
    old word left), format, and the win rate under the rule against ``reference_replies``."""
    examples = [("modernise", line) for line in lines]
    result = assistant.evaluate(model, tok, examples)
    replies = result["replies"]
    out = {"exact": result["modernise"], "format": result["format"],
           "no_old_words": round(sum(assistant.archaic_words(r) == 0 for r in replies) / len(lines), 4),
           "replies": replies}
    if reference_replies is not None:
        wins = [preferences.rule_preference(a, b) for a, b in zip(replies, reference_replies)]
        out["win_rate"] = round(sum(wins) / len(wins), 4)
    return out


def preferences_part(args) -> None:
    started = time.perf_counter()
    config = preferences.PREFERENCES
    sft, state = checkpoints.load_model(args.out / "assistant_sft.pt")
    tok = assistant.ChatTokenizer(assistant.finetune.load_pretrained()[1])
    train_pairs = preferences.preference_pairs("train", config.pairs, config.seed)
    eval_pairs = preferences.preference_pairs("held-out", config.eval_pairs, config.seed + 1)
    lines = [p[0] for p in eval_pairs]
    record = {"settings": dataclasses.asdict(config), "examples": train_pairs[:5]}
    reference = modernise_scores(sft, tok, lines)
    record["sft"] = {**reference, "lm_loss": lm_loss(sft, tok)}
    print("SFT", scores_only(reference), flush=True)

    print("reward model ...", flush=True)
    history = {"step": [], "accuracy": []}

    def measure(model, step):
        history["step"].append(step)
        history["accuracy"].append(round(preferences.pair_accuracy(model, tok, eval_pairs), 4))
        print("  ", history, flush=True)

    reward_model = preferences.train_reward_model(copy.deepcopy(sft), tok, train_pairs, config.reward_steps,
                                                  config.reward_lr, config.batch_size, config.seed, measure,
                                                  eval_at=range(0, config.reward_steps + 1, 50))
    preferences.save_reward_model(reward_model, args.out / "assistant_reward.pt", steps=config.reward_steps)
    record["reward_model"] = history

    print("best-of-n ...", flush=True)
    samples = preferences.sample_replies(sft, tok, lines, config.best_of, seed=config.seed)
    scores = [preferences.rewards(reward_model, tok, lines, s).tolist() for s in samples]
    best = {}
    for n in (1, 2, 4, 8):
        chosen = preferences.best_of_n(samples, scores, n)
        best[n] = {"no_old_words": round(sum(assistant.archaic_words(r) == 0 for r in chosen) / len(lines), 4),
                   "exact": round(sum(r == assistant.answer("modernise", l) for r, l in zip(chosen, lines))
                                  / len(lines), 4)}
    record["best_of_n"] = {"samples": samples, "rewards": [[round(x, 4) for x in s] for s in scores], "by_n": best}
    print("  ", best, flush=True)

    record["dpo"] = {}
    for beta in config.betas:
        for seed in (config.seed, SECOND_SEED):
            print(f"DPO beta {beta} seed {seed} ...", flush=True)
            policy = copy.deepcopy(sft)
            t0 = time.perf_counter()
            curve = {"step": [], "margin": []}

            def measure_dpo(step):
                curve["step"].append(step)
                curve["margin"].append(round(preferences.implicit_margin(policy, sft, tok, eval_pairs, beta), 4))

            done = preferences.train_dpo(policy, sft, tok, train_pairs, beta, config.dpo_steps, config.dpo_lr,
                                         config.batch_size, seed, measure_dpo,
                                         eval_at=range(0, config.dpo_steps + 1, 50))
            if done != config.dpo_steps:
                raise SystemExit("the DPO run stopped early (interrupted?); nothing more is stored")
            result = modernise_scores(policy, tok, lines, reference["replies"])
            result.update(curve=curve, margin=curve["margin"][-1], lm_loss=lm_loss(policy, tok),
                          kl=round(preferences.kl_estimate(policy, sft, tok, lines, seed=config.seed), 4),
                          seconds=round(time.perf_counter() - t0, 1))
            record["dpo"][f"{beta}/{seed}"] = result
            print("  ", scores_only(result), flush=True)
            if beta == config.betas[0] and seed == config.seed:
                checkpoints.save_checkpoint(args.out / "assistant_dpo.pt", policy, step=config.dpo_steps,
                                            tokenizer_chars="".join(tok.chars.chars), precision="int8")
    record["provenance"] = artefacts.provenance(seconds=time.perf_counter() - started, seed=config.seed,
                                                argv=args.argv)
    artefacts.write_json(args.out / "assistant_preferences.json", record)


def main(argv=None) -> int:
    parser = artefacts.command_parser(__file__, __doc__)
    parser.add_argument("--part", choices=("all", "sft", "preferences"), default="all")
    args = artefacts.start_command(parser, argv, threads=1)
    if args.part in ("all", "sft"):
        sft_part(args)
    if args.part in ("all", "preferences"):
        preferences_part(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
