#!/usr/bin/env bash
# The GPU run, in one call of a lent, offline CUDA machine. First, on a machine with a package
# registry: `bash benchmarks/gpu_prepare.sh` (fills .gpu/ with the wheels the image lacks and
# Fashion-MNIST). Then, from the repo root there, with `.gpu` carried:
#     bash benchmarks/gpu.sh
# Installs the carried wheels into /tmp/site (no index), puts this checkout on PYTHONPATH (no
# install), checks CUDA, then runs: (a) Trainer vs bare loop, (c) precision x channels_last (eager),
# (b) the input pipeline, the degradation study (experiment=degradation_fashionmnist, its 8 jobs
# side by side on the GPU), and (c) with torch.compile in the time left. Each step runs under a
# time limit, min(its own, what is left of DEADLINE_S), so the script ends inside one 10-minute
# call; everything lands in $OUT (the device tool's folder; default outputs/gpu/out): gpu_run.log,
# numbers.txt, results.tar.gz (benchmark JSONs, the sweep without checkpoints, GPU load), and the
# sweep's report.md, summary.csv and figures (8 files at most come back).
# Env: EPOCHS (study epochs, default 15), SEEDS (comma list, default 0), N_JOBS (study jobs at
# once; default resnet_exp's own: free GPU memory // 4 GiB, at most cores // 2), STUDY_BUDGET_S
# (300), DEADLINE_S (570), LOGGER (auto: W&B offline if its wheels came, else none), COMPILE (1:
# the torch.compile matrix runs in the time left; 0: skip), INSTALL (1; 0: use the installed
# packages), DEVICE (cuda; cpu rehearses the script here), STUDY_ARGS (extra study overrides),
# SKIP (comma list of step names not to run, e.g. SKIP=speed_switches_compile,input_pipeline).
set -uo pipefail # not -e: a failed step must not lose the others' results
cd "$(dirname "$0")/.."
REPO=$PWD
T0=$SECONDS
EPOCHS="${EPOCHS:-15}"
SEEDS="${SEEDS:-0}"
N_JOBS="${N_JOBS:-}"
STUDY_BUDGET_S="${STUDY_BUDGET_S:-300}"
DEADLINE_S="${DEADLINE_S:-570}"
LOGGER="${LOGGER:-auto}"
COMPILE="${COMPILE:-1}"
INSTALL="${INSTALL:-1}"
DEVICE="${DEVICE:-cuda}"
STUDY_ARGS="${STUDY_ARGS:-}"
SKIP=",${SKIP:-},"
OUT="${OUT:-$REPO/outputs/gpu/out}"
WORK="$REPO/outputs/gpu"
BENCH="$WORK/bench"
SWEEP="$WORK/study"
RESERVE_S=25 # kept for packing the results
MIN_STEP_S=20
mkdir -p "$OUT" "$BENCH"
rm -rf "$SWEEP"
export PYTHONUNBUFFERED=1 RESNET_EXP_BENCH_RESULTS="$BENCH"
export RESNET_EXP_DEBIAN_FMNIST="$REPO/.gpu/fashion-mnist" RESNET_EXP_DATA="$WORK/data"
export WANDB_MODE=offline WANDB_SILENT=true WANDB_DIR="$WORK" WANDB_CONFIG_DIR="$WORK/.wandb-config"
PY=python3

left() { echo $((DEADLINE_S - (SECONDS - T0) - RESERVE_S)); }
declare -A STEP_RC STEP_S
step() { # step NAME CAP_S CMD...: CMD under min(CAP_S, time left) seconds; skipped if too little
  local name=$1 cap=$2
  shift 2
  if [[ "$SKIP" == *",$name,"* ]]; then
    echo "=== $name: skipped (SKIP)"
    STEP_RC[$name]=skipped
    return 0
  fi
  local limit
  limit=$(left)
  ((cap < limit)) && limit=$cap
  if ((limit < MIN_STEP_S)); then
    echo "=== $name: skipped ($(left) s left of DEADLINE_S=$DEADLINE_S)"
    STEP_RC[$name]=skipped
    return 0
  fi
  echo
  echo "=== $name (limit ${limit} s): $*"
  local t0=$SECONDS rc
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  STEP_RC[$name]=$rc
  STEP_S[$name]=$((SECONDS - t0))
  ((rc == 124)) && echo "=== $name: TIMED OUT after $limit s"
  echo "=== $name: exit $rc, $((SECONDS - t0)) s wall"
}

setup() {
  if [ "$INSTALL" = 1 ] && compgen -G ".gpu/wheels/*.whl" >/dev/null; then
    echo "=== installing $(ls .gpu/wheels/*.whl | wc -l) carried wheels into /tmp/site (no index)"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .gpu/wheels/*.whl || return 1
    export PYTHONPATH="$REPO:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  else
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
  fi
  echo "=== checking imports, the device and the data"
  $PY - "$DEVICE" <<'EOF' || return 1
import importlib, os, sys
from pathlib import Path

device = sys.argv[1]
missing = []
for name in ("hydra", "omegaconf", "antlr4", "hydra_plugins.hydra_joblib_launcher", "joblib",
             "yaml", "torch", "torchvision", "numpy", "matplotlib", "tqdm", "resnet_exp.app"):
    try:
        importlib.import_module(name)
    except Exception as error:  # noqa: BLE001 - report every missing piece at once
        missing.append(f"{name}: {type(error).__name__}: {error}")
if missing:
    sys.exit("cannot import what the run needs (run benchmarks/gpu_prepare.sh and carry .gpu):\n  "
             + "\n  ".join(missing))
import torch, torchvision, hydra, omegaconf
from resnet_exp.data.sources import fetch_missing
from resnet_exp.hydra_glue.launchers import local_jobs
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, torchvision "
      f"{torchvision.__version__}, hydra {hydra.__version__}, omegaconf {omegaconf.__version__}, "
      f"cores {len(os.sched_getaffinity(0))}")
if device == "cuda":
    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible to torch")
    free, total = torch.cuda.mem_get_info()
    props = torch.cuda.get_device_properties(0)
    print(f"GPU: {props.name}, capability {props.major}.{props.minor}, "
          f"{props.multi_processor_count} SMs, {free / 2**30:.1f} of {total / 2**30:.1f} GiB free, "
          f"bf16 {torch.cuda.is_bf16_supported()}, cuDNN {torch.backends.cudnn.version()}")
print(f"resnet_exp's default joblib n_jobs here: {local_jobs()}")
root = Path(os.environ["RESNET_EXP_DATA"])
print(f"Fashion-MNIST: {fetch_missing('fashionmnist', root, download=False)} -> {root}")
try:
    import wandb
    print(f"wandb {wandb.__version__} importable")
except Exception as error:  # noqa: BLE001
    print(f"wandb not importable ({type(error).__name__}: {error}): logger=none")
EOF
  nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.sm,clocks.max.sm \
    --format=csv 2>/dev/null || true
}

study() {
  local logger_args=("logger=none")
  if [ "$LOGGER" = wandb ] || { [ "$LOGGER" = auto ] && $PY -c "import wandb" 2>/dev/null; }; then
    logger_args=("logger=wandb" "logger.mode=offline")
  fi
  local args=(experiment=degradation_fashionmnist "trainer.epochs=$EPOCHS" "seed=$SEEDS"
    "trainer.device=$DEVICE" trainer.progress=false "${logger_args[@]}" "hydra.sweep.dir=$SWEEP")
  [ -n "$N_JOBS" ] && args+=("hydra.launcher.n_jobs=$N_JOBS")
  # shellcheck disable=SC2206 # STUDY_ARGS: space-separated overrides
  args+=($STUDY_ARGS)
  local load_log="$WORK/gpu_load.csv" sampler=""
  if [ "$DEVICE" = cuda ] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,clocks.sm,power.draw \
      --format=csv,nounits -l 2 >"$load_log" 2>/dev/null &
    sampler=$!
  fi
  step study "$STUDY_BUDGET_S" $PY -m resnet_exp "${args[@]}"
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
  if [ "${STEP_RC[study]}" != 0 ] && [ -d "$SWEEP" ]; then # a cut-short sweep: report what ran
    step study_report 60 $PY -m resnet_exp.report "$SWEEP"
  fi
}

numbers() { # the short table at the end (benchmarks/gpu_numbers.py)
  $PY -m benchmarks.gpu_numbers --bench "$BENCH" --sweep "$SWEEP" --load "$WORK/gpu_load.csv" \
    --epochs "$EPOCHS" --study-s "${STEP_S[study]:-0}"
}

pack() {
  echo
  echo "=== packing results into $OUT"
  cp "$WORK/numbers.txt" "$OUT/" 2>/dev/null
  for f in report.md summary.csv degradation.png gradients.png layer_responses.png; do
    [ -f "$SWEEP/$f" ] && cp "$SWEEP/$f" "$OUT/"
  done
  local parts=()
  for f in bench study gpu_load.csv; do [ -e "$WORK/$f" ] && parts+=("$f"); done
  tar -czf "$OUT/results.tar.gz" -C "$WORK" --exclude='checkpoints' --exclude='*.pt' "${parts[@]}"
  if (($(stat -c %s "$OUT/results.tar.gz") > 15 * 1024 * 1024)); then # 16 MiB a file comes back
    echo "results.tar.gz over 15 MiB: packing again without the W&B run folders"
    tar -czf "$OUT/results.tar.gz" -C "$WORK" --exclude='checkpoints' --exclude='*.pt' \
      --exclude='wandb' "${parts[@]}"
  fi
  ls -la "$OUT"
}

main() {
  echo "=== gpu.sh: EPOCHS=$EPOCHS SEEDS=$SEEDS N_JOBS=${N_JOBS:-default} DEVICE=$DEVICE" \
    "STUDY_BUDGET_S=$STUDY_BUDGET_S DEADLINE_S=$DEADLINE_S LOGGER=$LOGGER COMPILE=$COMPILE"
  if ! setup; then
    echo "=== setup failed: nothing was run"
    return 1
  fi
  echo "=== setup: $((SECONDS - T0)) s"
  local d="--device $DEVICE --batch-size 128"
  # (a) Trainer vs bare loop: ResNet-20 fp32 NCHW, and the study's setting (bf16 NHWC), -20 and -56
  step train_step_r20_fp32 40 $PY -m benchmarks.train_step $d --steps 50 --reps 7 \
    --out "$BENCH/train_step_r20_fp32.json"
  step train_step_r20_bf16_nhwc 40 $PY -m benchmarks.train_step $d --steps 50 --reps 7 \
    --precision bf16 --channels-last --out "$BENCH/train_step_r20_bf16_nhwc.json"
  step train_step_r56_bf16_nhwc 40 $PY -m benchmarks.train_step $d --model resnet56 --steps 30 \
    --reps 5 --precision bf16 --channels-last --out "$BENCH/train_step_r56_bf16_nhwc.json"
  # (c) precision x channels_last, eager
  step speed_switches_eager 60 $PY -m benchmarks.speed_switches $d --models resnet20,resnet56 \
    --precisions 32,bf16,16 --steps 20 --reps 5 --out "$BENCH/speed_switches_eager.json"
  # (b) input pipeline
  step input_pipeline 45 $PY -m benchmarks.input_pipeline $d --batches 40 --reps 5 \
    --out "$BENCH/input_pipeline.json"
  study
  # (c) with torch.compile (two cold compiles: bf16 NCHW and NHWC), in the time left
  if [ "$COMPILE" = 1 ]; then
    step speed_switches_compile 120 $PY -m benchmarks.speed_switches $d --models resnet20 \
      --precisions 32,bf16 --compile --compile-precisions bf16 --steps 20 --reps 5 \
      --out "$BENCH/speed_switches_compile.json"
  fi
  echo
  echo "=== steps (exit code, wall s):"
  for name in "${!STEP_RC[@]}"; do echo "  $name: ${STEP_RC[$name]} ${STEP_S[$name]:-}"; done
  numbers 2>&1 | tee "$WORK/numbers.txt"
  pack
  echo "=== gpu.sh done in $((SECONDS - T0)) s"
  echo "retry with less, if this call ran out of time:" \
    "EPOCHS=$(((EPOCHS + 1) / 2)) COMPILE=0 STUDY_BUDGET_S=240 bash benchmarks/gpu.sh"
}

main 2>&1 | tee "$OUT/gpu_run.log"
