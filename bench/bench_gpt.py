"""GPT training throughput on one CPU thread: tokens/s and model FLOP utilisation (MFU).

Usage:  OMP_NUM_THREADS=1 python bench/bench_gpt.py [--model nanogpt|shipped] [--runs 20] [--warmup 3]

Models: ``nanogpt``, nanoGPT's CPU configuration (n_layer=4, n_head=4, n_embd=128, block_size=64,
a 65-character vocabulary, dropout 0), batches of 12 x 64 tokens; ``shipped``, the course's
pretrained model (``helpers.training.SHIPPED_MODEL`` and ``SHIPPED_TRAIN``, which
``scripts/make_pretrained.py`` trains: n_layer=4, n_head=4, n_embd=192, block_size=128, 78
characters), batches of 16 x 128 tokens. For each attention path of ``helpers/gpt.py`` (from
scratch, and PyTorch's ``scaled_dot_product_attention``) it times a forward+backward pass and a
forward+backward+AdamW step: median of ``--runs`` timed steps after ``--warmup`` untimed ones.
The machine's peak is the median speed of 512x512 float32 matmuls on the same thread; MFU =
tokens/s x ``gpt.flops_per_token(config)`` / that matmul FLOP/s.
"""

import argparse
import statistics
import sys
import time

import torch

from helpers import gpt, training

# {name: (model sizes, batch size)}; the shipped model reads the 78 characters of the training plays.
MODELS = {"nanogpt": (dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128), 12),
          "shipped": (dict(vocab_size=78, **training.SHIPPED_MODEL), training.SHIPPED_TRAIN["batch_size"])}


def median_seconds(step, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_flops_per_second(runs: int, size: int = 512, repeat: int = 10) -> float:
    """Median FLOP/s of ``repeat`` back-to-back ``size x size`` float32 matmuls (2 size^3 FLOPs each)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = median_seconds(lambda: [a @ b for _ in range(repeat)], runs, warmup=3)
    return repeat * 2 * size**3 / seconds


def bench_path(sizes: dict, batch: int, use_sdpa: bool, runs: int, warmup: int):
    """Median seconds of (forward+backward, forward+backward+AdamW) for one attention path."""
    torch.manual_seed(0)
    config = gpt.GPTConfig(**{**sizes, "dropout": 0.0, "use_sdpa": use_sdpa})
    model = gpt.GPT(config)
    x = torch.randint(0, config.vocab_size, (batch, config.block_size))
    y = torch.randint(0, config.vocab_size, (batch, config.block_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        model(x, y)[1].backward()

    def training_step():
        forward_backward()
        optimizer.step()

    return config, median_seconds(forward_backward, runs, warmup), median_seconds(training_step, runs, warmup)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--model", choices=sorted(MODELS), default="nanogpt")
    args = parser.parse_args(argv)
    sizes, batch = MODELS[args.model]
    torch.set_num_threads(1)

    peak = matmul_flops_per_second(args.runs)
    rows = []
    for name, use_sdpa in [("from scratch", False), ("SDPA", True)]:
        config, fb_s, step_s = bench_path(sizes, batch, use_sdpa, args.runs, args.warmup)
        rows += [(name, "forward+backward", fb_s), (name, "+ AdamW step", step_s)]
    tokens = batch * config.block_size
    flops = gpt.flops_per_token(config)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, median of {args.runs} runs "
          f"after {args.warmup} warm-up")
    print(f"model: {gpt.count_parameters(config):,} parameters, {flops / 1e6:.2f} MFLOP per token "
          f"(6N + 12*L*C*T), batch {batch} x {config.block_size} = {tokens} tokens ({args.model})")
    print(f"matmul 512x512 float32: {peak / 1e9:.1f} GFLOP/s\n")
    print(f"{'attention':<13} {'step':<17} {'ms/step':>8} {'tokens/s':>9} {'GFLOP/s':>8} {'MFU':>6}")
    for name, step, seconds in rows:
        tokens_per_s = tokens / seconds
        achieved = tokens_per_s * flops
        print(f"{name:<13} {step:<17} {seconds * 1e3:>8.1f} {tokens_per_s:>9,.0f} "
              f"{achieved / 1e9:>8.1f} {achieved / peak:>6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
