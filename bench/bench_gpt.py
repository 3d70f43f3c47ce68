"""GPT training throughput on one CPU thread: the course model next to a lean fused reference.

Usage:  OMP_NUM_THREADS=1 python bench/bench_gpt.py [--model nanogpt|shipped] [--rounds 15] [--steps 3]
                                                    [--clock wall|cpu] [--nanogpt /elsewhere/nanoGPT/model.py]
        python bench/bench_gpt.py --device cuda --model shipped [--batch 512]     # on a GPU

Models: ``nanogpt``, nanoGPT's CPU configuration (n_layer=4, n_head=4, n_embd=128, block_size=64,
bias, dropout 0) on the course's 78-character vocabulary, batches of 12 x 64 tokens; ``shipped``,
the course's pretrained model (``helpers.training.SHIPPED_MODEL`` and ``SHIPPED_TRAIN``, which
``scripts/make_pretrained.py`` trains: n_layer=4, n_head=4, n_embd=192, block_size=128),
batches of 16 x 128 tokens.

Contestants, each timed on a whole training step (forward, backward, AdamW update):

* ``course``: ``helpers.gpt.GPT`` (fused attention, the default) with ``training.make_optimizer``;
* ``course, from scratch``: the same model with ``use_sdpa=False`` (attention written out);
* ``fused reference``: :class:`FusedGPT` below, the same architecture written as lean as PyTorch
  allows (one matmul for queries, keys and values, ``F.layer_norm``, the causal path of
  ``scaled_dot_product_attention``, no dropout calls), with the same optimizer. The course model
  should be at least as fast: the ratio is printed in every run;
* ``nanoGPT`` (only with ``--nanogpt PATH``): the ``model.py`` of a nanoGPT checkout kept *outside*
  this repository (its code is not part of the course), with its own ``configure_optimizers``.

The machine may be shared, so the contestants take turns: ``--rounds`` rounds, each timing
``--steps`` steps of every contestant (in a rotating order, after a warm-up); each reports the
median step. ``--clock cpu`` times this thread's CPU time instead of the wall clock: on a
machine shared with other jobs it is the steadier measure (the clock stops while another job
has the core). The machine's peak is the median speed of 512x512 float32 matmuls on the same
thread and clock; MFU = tokens/s x ``gpt.flops_per_token(config)`` / that matmul FLOP/s.

On a GPU (``--device cuda``, used by ``bench/gpu_check.sh``) every step runs under the autocast
of ``training.autocast`` (bfloat16 where the GPU has it, as in training) and is timed to its end
(``torch.cuda.synchronize``); the peak is that of 8192x8192 matmuls in the same precision.
"""

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from helpers import gpt, training

# {name: (model sizes, batch size)}; both read the 78 characters of the training plays (dropout 0).
SIZES = ("block_size", "n_layer", "n_head", "n_embd")
MODELS = {"nanogpt": (dict(vocab_size=78, block_size=64, n_layer=4, n_head=4, n_embd=128), 12),
          "shipped": (dict(vocab_size=78, **{k: training.SHIPPED_MODEL[k] for k in SIZES}),
                      training.SHIPPED_TRAIN["batch_size"])}
assert training.SHIPPED_MODEL["dropout"] == 0.0


# ---------------------------------------------------------------- the fused reference

class FusedBlock(nn.Module):
    """A pre-LayerNorm transformer block in as few kernels as PyTorch offers."""

    def __init__(self, C: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)       # F.layer_norm inside
        self.qkv = nn.Linear(C, 3 * C)                                 # queries, keys, values at once
        self.out = nn.Linear(C, C)
        self.fc, self.fc_out = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        qkv = self.qkv(self.ln_1(x)).view(B, T, 3, self.n_head, C // self.n_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)                           # each (B, n_head, T, d_head)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fc_out(F.gelu(self.fc(self.ln_2(x))))


class FusedGPT(nn.Module):
    """The course GPT's architecture (tied head, learned positions, bias, no dropout), lean."""

    def __init__(self, config: gpt.GPTConfig):
        super().__init__()
        self.config = config
        self.tokens = nn.Embedding(config.vocab_size, config.n_embd)
        self.positions = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(FusedBlock(config.n_embd, config.n_head) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, targets):
        x = self.tokens(idx) + self.positions(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.tokens.weight.T                   # the head, tied
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())


# ---------------------------------------------------------------- the contestants

def course(sizes: dict, device, use_sdpa: bool = True):
    """``(model, optimizer)``: the course model and the course's optimizer."""
    model = gpt.GPT(gpt.GPTConfig(**sizes, dropout=0.0, use_sdpa=use_sdpa)).to(device)
    return model, training.make_optimizer(model, training.TrainConfig())


def reference(sizes: dict, device):
    model = FusedGPT(gpt.GPTConfig(**sizes)).to(device)
    return model, training.make_optimizer(model, training.TrainConfig())


def nanogpt(sizes: dict, device, path: Path):
    """nanoGPT's model and its own optimizer settings, from a ``model.py`` outside this repository."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.GPT(module.GPTConfig(**sizes, dropout=0.0, bias=True)).to(device)
    config = training.TrainConfig()
    return model, model.configure_optimizers(config.weight_decay, config.lr, (0.9, config.beta2), device.type)


def training_step(model, optimizer, x, y):
    """A function doing one step: forward, backward, the optimizer's update (to its end on a GPU)."""
    model.train()
    device = x.device

    def step():
        with training.autocast(device):
            _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return step


def interleaved_medians(steps: dict, rounds: int, per_round: int, clock=time.perf_counter, warmup: int = 3) -> dict:
    """``{name: median seconds of a step}``: every round times ``per_round`` steps of each contestant,
    the order rotating from round to round, so a slow spell of a shared machine hits them all.
    ``clock``: wall time (``time.perf_counter``) or this thread's CPU time (``time.thread_time``)."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            for _ in range(per_round):
                start = clock()
                steps[name]()
                times[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def matmul_flops_per_second(device: torch.device, clock=time.perf_counter, runs: int = 20, repeat: int = 10) -> float:
    """Median FLOP/s of ``repeat`` back-to-back square matmuls (2 size^3 FLOPs each): 512x512 float32
    on the CPU, 8192x8192 under the training autocast on a GPU."""
    size = 8192 if device.type == "cuda" else 512
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)

    def matmuls():
        with training.autocast(device):
            [a @ b for _ in range(repeat)]
        if device.type == "cuda":
            torch.cuda.synchronize()
    seconds = interleaved_medians({"matmul": matmuls}, runs, 1, clock)["matmul"]
    return repeat * 2 * size**3 / seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="nanogpt")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=3, help="steps of each contestant per round")
    parser.add_argument("--nanogpt", type=Path, help="a nanoGPT model.py outside this repository, to time too")
    parser.add_argument("--device", default="cpu", help="cpu (one thread) or cuda")
    parser.add_argument("--batch", type=int, help="windows per step (default: the model's)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or (on the CPU) this thread's CPU time: steadier on a shared machine")
    args = parser.parse_args(argv)
    if args.nanogpt is not None and not args.nanogpt.is_file():
        parser.error(f"--nanogpt {args.nanogpt}: no such file (give the path of nanoGPT's model.py)")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: PyTorch sees no CUDA GPU here")
    if device.type == "cuda" and args.clock == "cpu":
        parser.error("--clock cpu measures the CPU's work: on a GPU use --clock wall")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    sizes, batch = MODELS[args.model]
    batch = args.batch or batch
    if device.type == "cpu":
        torch.set_num_threads(1)

    makers = {"course": lambda: course(sizes, device), "course, from scratch": lambda: course(sizes, device, False),
              "fused reference": lambda: reference(sizes, device)}
    if args.nanogpt is not None:
        makers["nanoGPT"] = lambda: nanogpt(sizes, device, args.nanogpt)
    generator = torch.Generator().manual_seed(0)
    x, y = (torch.randint(0, sizes["vocab_size"], (batch, sizes["block_size"]), generator=generator).to(device)
            for _ in range(2))
    steps = {}
    for name, make in makers.items():
        torch.manual_seed(0)
        steps[name] = training_step(*make(), x, y)
    peak = matmul_flops_per_second(device, clock)
    medians = interleaved_medians(steps, args.rounds, args.steps, clock)

    config = gpt.GPTConfig(**sizes)
    tokens, flops = batch * config.block_size, gpt.flops_per_token(config)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU, {torch.get_num_threads()} thread")
    print(f"torch {torch.__version__}, {where}; median step ({args.clock} time) of {args.rounds} rounds "
          f"x {args.steps} steps per contestant, interleaved")
    print(f"model ({args.model}): {gpt.count_parameters(config):,} parameters, {flops / 1e6:.2f} MFLOP per token "
          f"(6N + 12*L*C*T), batch {batch} x {config.block_size} = {tokens} tokens")
    kind = "8192x8192 under autocast" if device.type == "cuda" else "512x512 float32"
    print(f"matmul {kind}: {peak / 1e9:,.1f} GFLOP/s\n")
    print(f"{'forward+backward+AdamW':<22} {'ms/step':>8} {'tokens/s':>9} {'MFU':>6} {'vs reference':>13}")
    for name, seconds in medians.items():
        print(f"{name:<22} {seconds * 1e3:>8.1f} {tokens / seconds:>9,.0f} {tokens * flops / seconds / peak:>6.1%} "
              f"{medians['fused reference'] / seconds:>12.2f}x")
    if "nanoGPT" in medians:
        print(f"\ncourse / nanoGPT: {medians['nanoGPT'] / medians['course']:.2f}x tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
