"""BPE training speed: the naive trainer (recount every pair after each merge) against the
incremental one, on the same text; both must learn identical merges.

Usage:  OMP_NUM_THREADS=1 python bench/bench_bpe.py [--megabytes 1.0] [--vocab-size 512] [--runs 3]

Reports the median wall time of ``--runs`` runs of the fast trainer and of ``--naive-runs``
runs (default 1: it takes minutes) of the naive one.
"""

import argparse
import statistics
import sys
import time

from helpers import data, tokenizers


def timed(fn, runs):
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=1.0)
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--naive-runs", type=int, default=1)
    args = parser.parse_args(argv)
    ids = data.corpus_text("train").encode("utf-8")[: int(args.megabytes * 1_000_000)]
    num_merges = args.vocab_size - 256
    fast_s, fast = timed(lambda: tokenizers.train_merges(ids, num_merges), args.runs)
    naive_s, naive = timed(lambda: tokenizers.train_merges_naive(ids, num_merges), args.naive_runs)
    assert fast == naive, "the two trainers disagree"
    print(f"{len(ids):,} bytes of training plays, {num_merges} merges (vocabulary {args.vocab_size})")
    print(f"{'trainer':<12} {'median s':>9} {'runs':>5}")
    print(f"{'naive':<12} {naive_s:>9.2f} {args.naive_runs:>5}")
    print(f"{'incremental':<12} {fast_s:>9.2f} {args.runs:>5}")
    print(f"speed-up: {naive_s / fast_s:.1f}x; identical merges: yes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
