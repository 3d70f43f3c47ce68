"""Pretrain the course's character-level GPT on the training plays and save it to data/.

Usage (from the repository root):

    python scripts/make_pretrained.py                 # the shipped model (about 30 minutes on 2 cores)
    python scripts/make_pretrained.py --resume        # continue an interrupted run
    python scripts/make_pretrained.py --steps 200 --out /tmp/try   # a quick try elsewhere
    torchrun --nproc_per_node=4 scripts/make_pretrained.py         # the same run on 4 GPUs (or processes)

The same command runs on the CPU, on a CUDA GPU (used when present; ``--device cpu`` declines it,
bfloat16 autocast where the GPU has it) and on N processes started by PyTorch's ``torchrun``
(``DistributedDataParallel``: NCCL between GPUs, gloo on CPU; add ``--nnodes``, ``--node_rank``
and ``--rdzv_endpoint`` for several machines). Every step still sees the configured batch,
shared among the processes (``--micro-batch`` splits each share further: gradient accumulation),
so the files are the same as a one-process run's, to float round-off; only process 0 prints and
writes them. A run can resume with another number of processes.

The model and its training are ``helpers.training.SHIPPED_MODEL`` and ``SHIPPED_TRAIN`` (each
number can be changed with an option: ``--n-embd 128``). Writes ``<out>/gpt_shakespeare.pt``
(float16 weights, no optimizer state), snapshots ``gpt_shakespeare.stepNNNNNN.pt`` (int8 weights)
along the way (for notebook 09's "watch text emerge"), and ``gpt_shakespeare.json``: the
configuration, the loss history, the final training, held-out and test losses over every
character of those plays, the training run's wall time (``training_wall_seconds``) and how the
file was made (``helpers.artefacts.provenance``: command, seed, total seconds, threads, machine,
versions). The working checkpoint with optimizer state (for ``--resume``) is
``<out>/.gpt_shakespeare.work.pt``.
"""

import math
import os
import sys
import time
from dataclasses import asdict

import torch

from helpers import artefacts, checkpoints, data, gpt, tokenizers, training

NAME = "gpt_shakespeare"
MODEL, TRAIN = training.SHIPPED_MODEL, training.SHIPPED_TRAIN
SNAPSHOTS = (100, 500, 1500)          # besides the final model; each about 1.9 MB in int8
MODEL_SEED = 1337


def main(argv=None) -> int:
    alone = os.environ.get("WORLD_SIZE", "1") == "1"        # torchrun sets WORLD_SIZE
    parser = artefacts.command_parser(__file__, __doc__, threads=2 if alone else 1)
    parser.add_argument("--resume", action="store_true", help="continue from the working checkpoint")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: a GPU if present)")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="windows per forward pass in each process (default: its whole share of the batch)")
    for key, value in {**MODEL, **TRAIN}.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    args = artefacts.start_command(parser, argv)
    rank, processes, device = training.start_processes(args.device)
    try:
        return run(args, rank, processes, device)
    finally:
        training.end_processes()


def run(args, rank: int, processes: int, device) -> int:
    """Train (every process), then evaluate and write the files (process 0)."""
    def log(line):
        if rank == 0:
            print(line, flush=True)

    text = data.corpus_text("train")
    tok = tokenizers.CharTokenizer(text)
    train_ids = torch.tensor(tok.encode(text))
    val_ids = torch.tensor(tok.encode(data.corpus_text("validation")))
    test_ids = torch.tensor(tok.encode(data.corpus_text("test")))
    config = gpt.GPTConfig(vocab_size=tok.vocab_size, **{k: getattr(args, k) for k in MODEL})
    train_config = training.TrainConfig(**{k: getattr(args, k) for k in TRAIN})
    torch.manual_seed(MODEL_SEED)
    model = gpt.GPT(config).to(device)
    tokens_per_step = train_config.batch_size * config.block_size
    tokens = train_config.steps * tokens_per_step
    log(f"model: {gpt.count_parameters(config):,} parameters {asdict(config)}")
    log(f"training: {asdict(train_config)}; {tokens:,} tokens = {tokens / len(train_ids):.1f} passes "
        f"over {len(train_ids):,} training characters; {processes} process(es) on {device}, "
        f"{args.threads} thread(s) each")

    work = args.out / f".{NAME}.work.pt"
    final = args.out / f"{NAME}.pt"
    started = time.perf_counter()

    def report(step, history):
        minutes = (time.perf_counter() - started) / 60
        print(f"step {step:>6}: train {history['train'][-1]:.4f}, held-out {history['val'][-1]:.4f} nats "
              f"({minutes:.1f} min, {step * tokens_per_step / (minutes * 60):,.0f} tokens/s since the start)", flush=True)

    history = training.train(model, train_ids, val_ids, train_config, checkpoint_path=work, resume=args.resume,
                             progress=sys.stderr.isatty(), tokenizer_chars="".join(tok.chars), on_eval=report,
                             snapshots={s: args.out / f"{NAME}.step{s:06d}.pt" for s in SNAPSHOTS if s < train_config.steps},
                             micro_batch=args.micro_batch)
    wall = time.perf_counter() - started                  # the training run, evaluations included
    if not history["step"] or history["step"][-1] != train_config.steps:
        log("training did not finish; nothing shipped. Continue with --resume.")
        return 1
    if rank > 0:
        return 0
    checkpoints.save_checkpoint(final, model, train_config, train_config.steps, history,
                                tokenizer_chars="".join(tok.chars), precision="float16")
    shipped, _ = checkpoints.load_model(final)            # evaluate exactly what ships (float16 weights)
    losses = {split: training.full_loss(shipped, ids) for split, ids in
              (("train (first 200,000 characters)", train_ids[:200_000]), ("validation", val_ids), ("test", test_ids))}
    record = {**artefacts.provenance(seconds=time.perf_counter() - started, seed=MODEL_SEED, argv=args.argv),
              "model_config": asdict(config), "train_config": asdict(train_config),
              "parameters": gpt.count_parameters(config), "tokens_seen": tokens,
              "training_wall_seconds": round(wall, 1), "processes": processes, "device": device.type,
              "resumed": args.resume, "history": history,
              "final_loss_nats_per_char": {k: round(v, 4) for k, v in losses.items()},
              "final_bits_per_char": {k: round(v / math.log(2), 4) for k, v in losses.items()},
              "final_perplexity": {k: round(math.exp(v), 3) for k, v in losses.items()},
              "snapshots": [f"{NAME}.step{s:06d}.pt" for s in SNAPSHOTS if s < train_config.steps]}
    artefacts.write_json(args.out / f"{NAME}.json", record)
    for split, loss in losses.items():
        print(f"{split}: {loss:.4f} nats = {loss / math.log(2):.4f} bits per character, perplexity {math.exp(loss):.3f}")
    print(f"training took {wall / 60:.1f} min; wrote {final} ({final.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
