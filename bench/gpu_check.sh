#!/usr/bin/env bash
# The course's model and training code on CUDA GPUs, in one short prepared run (a few minutes):
#   1. tokens/s and MFU of a training step of the shipped configuration on one GPU
#      (bench/bench_gpt.py --device cuda: the course model next to the fused reference), at the
#      shipped batch (16 windows) and at 512 windows, enough to keep a big GPU busy;
#   2. notebook 09's pretraining command, unchanged, for a short run on one GPU; its checkpoint
#      is then loaded on the CPU, as the notebooks load it;
#   3. notebook 12's masked objective (training.train with a batch function) and notebook 11's
#      LoRA fine-tuning of the shipped model (training.fit), a few steps each on the GPU;
#   4. with more than one GPU, the run of 2 again under torchrun (DistributedDataParallel over
#      NCCL, one process per GPU), which must follow the one-GPU loss curve.
#
# Usage (from anywhere):   bash bench/gpu_check.sh [steps, default 300; at least 10]
# Writes only to a temporary folder. Without a CUDA GPU it says so and exits 0.
# GPU_CHECK_DEVICE=cpu runs the same steps on the CPU (2 gloo processes for step 4): a dry run
# that checks the script itself on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

steps=${1:-300}
device=${GPU_CHECK_DEVICE:-cuda}
if [ "$device" = cuda ]; then
  gpus=$(python -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
  if [ "$gpus" -eq 0 ]; then
    echo "gpu_check: PyTorch sees no CUDA GPU on this machine: nothing to check here."
    echo "(The course runs on the CPU; GPU_CHECK_DEVICE=cpu bash bench/gpu_check.sh dry-runs this script.)"
    exit 0
  fi
  processes=$gpus rounds=10 big_batch=512
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
else
  processes=2 rounds=2 big_batch=32                  # a dry run: small enough for a laptop
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
small=(--steps "$steps" --warmup-steps $((steps / 10)) --eval-every $((steps / 3)) --eval-batches 5)

echo; echo "== 1. training step of the shipped configuration on one device: tokens/s and MFU"
python bench/bench_gpt.py --device "$device" --model shipped --rounds "$rounds"
python bench/bench_gpt.py --device "$device" --model shipped --rounds "$rounds" --batch "$big_batch"

echo; echo "== 2. scripts/make_pretrained.py on one device, $steps steps"
python scripts/make_pretrained.py --device "$device" "${small[@]}" --out "$out/one"
python - "$out/one" <<'EOF'
import sys
from pathlib import Path

from helpers import checkpoints

model, state = checkpoints.load_model(Path(sys.argv[1]) / "gpt_shakespeare.pt")
print(f"the checkpoint loads on the CPU: {next(model.parameters()).device}, step {state['step']}, "
      f"held-out loss {state['history']['val'][-1]:.4f}")
EOF

echo; echo "== 3. notebooks 11 and 12: LoRA fine-tuning and the masked objective, 30 steps each"
python - "$device" <<'EOF'
import sys
import time

import torch

from helpers import data, families, finetune, lora, training

device = torch.device(sys.argv[1])
tok, mask_id = families.tokenizer_and_mask_id()
ids = torch.tensor(tok.encode(data.corpus_text("train")[:200_000]))
model = families.make_model().to(device)
config = training.TrainConfig(steps=30, batch_size=16, warmup_steps=5, eval_every=10)
start = time.perf_counter()
history = training.train(model, ids, None, config, progress=False,
                         make_batch=lambda g: families.batch("masked", ids, mask_id, 16, g),
                         measure=lambda losses: {"loss": sum(losses) / len(losses)})
print(f"notebook 12, masked objective on {device}: losses {[round(x, 3) for x in history['loss']]} "
      f"({time.perf_counter() - start:.1f} s)")
assert history["loss"][-1] < history["loss"][0]

base, tok = finetune.load_pretrained()
lora.add_lora(base, lora.LoRAConfig())
base.to(device)
ids = torch.tensor(tok.encode(data.corpus_text("validation")[:100_000]))
generator = torch.Generator().manual_seed(0)
losses = []
done = training.fit(base, lambda: training.random_batch(ids, 16, 128, generator), 30, 1e-3,
                    evaluate=lambda step: losses.append(training.estimate_loss(base, ids, batches=3)),
                    eval_at=(0,))
print(f"notebook 11, LoRA on {device}: {done} steps, held-out loss {losses[0]:.3f} -> {losses[-1]:.3f}")
assert done == 30 and losses[-1] < losses[0]
EOF

if [ "$processes" -gt 1 ]; then
  echo; echo "== 4. the same run on $processes processes: torchrun + DistributedDataParallel"
  python -m torch.distributed.run --standalone --nproc_per_node="$processes" \
    scripts/make_pretrained.py --device "$device" "${small[@]}" --out "$out/ddp"
  python - "$out" <<'EOF'
import json
import sys
from pathlib import Path

runs = {name: json.loads((Path(sys.argv[1]) / name / "gpt_shakespeare.json").read_text())
        for name in ("one", "ddp")}
one, ddp = (runs[name]["history"]["val"] for name in ("one", "ddp"))
gap = max(abs(a - b) for a, b in zip(one, ddp))
print(f"held-out losses, 1 process {[round(x, 4) for x in one]}, {runs['ddp']['processes']} processes "
      f"{[round(x, 4) for x in ddp]}: largest difference {gap:.4f}")
print(f"wall time of training: 1 process {runs['one']['training_wall_seconds']} s, "
      f"{runs['ddp']['processes']} processes {runs['ddp']['training_wall_seconds']} s")
assert gap < 0.02, "the data-parallel run left the one-process loss curve"   # bfloat16 round-off
EOF
else
  echo; echo "== 4. one GPU only: no data-parallel run"
fi
echo; echo "gpu_check: all done"
