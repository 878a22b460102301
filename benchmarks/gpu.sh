#!/usr/bin/env bash
# The GPU benchmark run, for a lent CUDA machine: run from the repo root, `bash benchmarks/gpu.sh`.
# Needs torch with CUDA installed; installs the project (editable, dev extra) if it is missing,
# pinned to the installed torch so pip never replaces it. Fashion-MNIST must be on disk:
# RESNET_EXP_DATA=<folder holding FashionMNIST/raw> (or the Debian package). EPOCHS (default 30)
# sizes the degradation sweep: 8 jobs (plain/residual x depth 20/32/44/56), several minutes each.
set -euo pipefail
export RESNET_EXP_BENCH_RESULTS="${RESNET_EXP_BENCH_RESULTS:-benchmarks/results/gpu}"
EPOCHS="${EPOCHS:-30}"
SWEEP_DIR="outputs/gpu-bench/degradation_fashionmnist"
mkdir -p "$RESNET_EXP_BENCH_RESULTS"

python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, torch.cuda.get_device_name(0))"
if ! python -c "import resnet_exp" 2>/dev/null; then
  pip install -e ".[dev]" -c <(python -c "import torch; print('torch==' + torch.__version__)")
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

step() {  # step NAME CMD...: run CMD, print its wall time
  local name=$1 t0=$SECONDS
  shift
  echo; echo "=== $name: $*"
  "$@"
  echo "=== $name: $((SECONDS - t0)) s wall"
}

step train_step python -m benchmarks.train_step --device cuda --batch-size 128 --steps 50 --reps 7
step train_step_bf16_nhwc python -m benchmarks.train_step --device cuda --batch-size 128 \
  --steps 50 --reps 7 --precision bf16 --channels-last \
  --out "$RESNET_EXP_BENCH_RESULTS/train_step_bf16_nhwc.json"
step input_pipeline python -m benchmarks.input_pipeline --device cuda --batch-size 128 --batches 100
step speed_switches python -m benchmarks.speed_switches --device cuda --compile \
  --models resnet20 --batch-size 128 --steps 20 --reps 5
if python -c "import lightning" 2>/dev/null; then  # (e): optional, pip install -e .[bench]
  step lightning_peer python -m benchmarks.lightning_peer --device cuda --epochs 2
fi
step sweep bash -c "time python -m resnet_exp experiment=degradation_fashionmnist \
  trainer.epochs=$EPOCHS logger.mode=offline hydra.sweep.dir=$SWEEP_DIR"

echo; echo "=== summary"
for f in "$RESNET_EXP_BENCH_RESULTS"/*.json; do echo "--- $f"; cat "$f"; done
echo "--- $SWEEP_DIR/report.md (verdict)"
sed -n '/^## Verdict/,/^## [^V]/p' "$SWEEP_DIR/report.md"
