"""SmolLM2's tokenizer: the course's byte-level BPE (helpers/byte_bpe.py, pure Python) against
Hugging Face's (Rust, loaded offline from the same GGUF file), encoding the same plays; the ids
must be identical.

Usage:  OMP_NUM_THREADS=1 python bench/bench_tokenizer_llm.py [--megabytes 1.0] [--runs 3]

Reports the load time of each tokenizer (once) and the median wall time of ``--runs`` encodes of
the first ``--megabytes`` of the training plays, each ours with an empty piece cache (a fresh
tokenizer), so every run pays for the BPE of every distinct piece.
"""

import argparse
import os
import statistics
import sys
import time

from helpers import byte_bpe, data, gguf


def timed(fn, runs, setup=lambda: None):
    times, result = [], None
    for _ in range(runs):
        arg = setup()
        start = time.perf_counter()
        result = fn(arg)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoTokenizer

    path = gguf.smollm2_path()
    text = data.corpus_text("train")[: int(args.megabytes * 1_000_000)]

    start = time.perf_counter()
    file = gguf.read_gguf(path)
    byte_bpe.ByteBPE.from_gguf(file)
    ours_load = time.perf_counter() - start
    start = time.perf_counter()
    hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    hf_load = time.perf_counter() - start

    ours_s, ids = timed(lambda tok: tok.encode(text), args.runs,
                        setup=lambda: byte_bpe.ByteBPE.from_gguf(file))
    hf_s, expected = timed(lambda _: hf(text, split_special_tokens=True)["input_ids"], args.runs)
    assert ids == expected, "the two tokenizers disagree"

    print(f"{len(text):,} characters of training plays -> {len(ids):,} tokens "
          f"({len(text) / len(ids):.2f} characters per token); identical ids: yes")
    print(f"{'tokenizer':<22} {'load s':>7} {'encode s':>9} {'tokens/s':>10} {'runs':>5}")
    for name, load, seconds in (("ours (Python)", ours_load, ours_s), ("Hugging Face (Rust)", hf_load, hf_s)):
        print(f"{name:<22} {load:>7.2f} {seconds:>9.2f} {len(ids) / seconds:>10,.0f} {args.runs:>5}")
    print(f"ours takes {ours_s / hf_s:.2f}x Hugging Face's encode time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
