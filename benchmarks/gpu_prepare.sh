#!/usr/bin/env bash
# Prepare the lent GPU machine's run on THIS machine (which reaches a package registry); then one
# device call runs `bash benchmarks/gpu.sh` with `carry: [".gpu"]`. From the repo root:
#     bash benchmarks/gpu_prepare.sh
# Fills .gpu/ (git-ignored): .gpu/wheels/ holds the CPython 3.12 x86-64 Linux wheels of every package
# the run needs that the lent image lacks (pins: benchmarks/gpu_bundle.py; one version of each,
# fetched with --no-deps, the closure listed there explicitly), .gpu/fashion-mnist/ the four gzipped
# Fashion-MNIST files. W&B (~23 MB of wheels) is carried only where it fits under the 64 MiB a call
# carries (working tree included); without it gpu.sh runs with logger=none.
# Env: PYTHON (an interpreter with pip and packaging; default .venv/bin/python, else python3),
# WANDB=auto|yes|no (default auto), FMNIST_SRC (folder of the four .gz files; default Debian's
# /usr/share/datasets/fashion-mnist),
# GPU_BUNDLE (where to prepare; default .gpu, the path gpu.sh reads and `carry` names).
# Exit 0: ready (prints the carry list and the run command); 1: not ready; 75: registry unreachable.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
WANDB="${WANDB:-auto}"
FMNIST_SRC="${FMNIST_SRC:-/usr/share/datasets/fashion-mnist}"
BUNDLE="${GPU_BUNDLE:-.gpu}"
WHEELS="$BUNDLE/wheels"
DATA="$BUNDLE/fashion-mnist"
case "$WANDB" in auto | yes | no) ;; *) echo "WANDB=$WANDB: use auto, yes or no" >&2; exit 1 ;; esac
mkdir -p "$WHEELS" "$DATA"
LOG="$BUNDLE/prepare.log"
: >"$LOG"

pip_() { "$PYTHON" -m pip --disable-pip-version-check "$@" >>"$LOG" 2>&1; }
offline_or_fail() {  # after a failed pip call: 75 if the registry could not be reached, else 1
  if grep -qiE "Could not fetch URL|ConnectionError|Max retries exceeded|Network is unreachable|\
Temporary failure in name resolution|Name or service not known|timed out" "$LOG"; then
    echo "the package registry is unreachable from here (pip's log: $LOG):" >&2
    tail -n 5 "$LOG" >&2
    exit 75
  fi
  echo "pip failed ($1); the end of $LOG:" >&2
  tail -n 15 "$LOG" >&2
  exit 1
}
TARGET=(--python-version 3.12 --implementation cp --abi cp312 --only-binary=:all:
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
sdist_only=" $("$PYTHON" -m benchmarks.gpu_bundle sdist-only | tr '\n' ' ') "

fetch() {  # fetch PIN: one wheel, no dependencies (the pin lists name the whole closure)
  local pin=$1 name=${1%%==*}
  if [[ "$sdist_only" == *" $name "* ]]; then  # pure Python, sdist only on PyPI: build the wheel
    pip_ wheel --no-deps --no-binary=:all: -w "$WHEELS" "$pin" || offline_or_fail "build $pin"
  else
    pip_ download --no-deps "${TARGET[@]}" -d "$WHEELS" "$pin" || offline_or_fail "download $pin"
  fi
}

mapfile -t core < <("$PYTHON" -m benchmarks.gpu_bundle pins core)
mapfile -t wandb < <("$PYTHON" -m benchmarks.gpu_bundle pins wandb)
echo "fetching ${#core[@]} core wheels (hydra, omegaconf, antlr4, joblib launcher)..."
for pin in "${core[@]}"; do fetch "$pin"; done
if [ "$WANDB" != no ]; then
  echo "fetching ${#wandb[@]} W&B wheels..."
  for pin in "${wandb[@]}"; do fetch "$pin"; done
fi

# Keep exactly the pinned wheels (an earlier prepare may have left other versions).
"$PYTHON" -m benchmarks.gpu_bundle prune --dir "$BUNDLE" $([ "$WANDB" = no ] && echo --without-wandb)

echo "packing Fashion-MNIST from $FMNIST_SRC..."
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz \
  t10k-labels-idx1-ubyte.gz; do
  if [ ! -f "$FMNIST_SRC/$f" ]; then
    echo "$FMNIST_SRC/$f is missing: install Debian's dataset-fashion-mnist or set FMNIST_SRC" >&2
    exit 1
  fi
  cmp -s "$FMNIST_SRC/$f" "$DATA/$f" || cp "$FMNIST_SRC/$f" "$DATA/$f"
done

# W&B stays behind where it does not fit (WANDB=auto), or the prepare fails (WANDB=yes).
if ! "$PYTHON" -m benchmarks.gpu_bundle check --dir "$BUNDLE" 2>"$BUNDLE/check.err"; then
  if [ "$WANDB" = auto ] && grep -q "exceeds the" "$BUNDLE/check.err"; then
    echo "W&B does not fit in one call's carry: left out; gpu.sh runs with logger=none"
    "$PYTHON" -m benchmarks.gpu_bundle prune --dir "$BUNDLE" --without-wandb
    "$PYTHON" -m benchmarks.gpu_bundle check --dir "$BUNDLE" || exit 1
  else
    cat "$BUNDLE/check.err" >&2
    exit 1
  fi
fi
rm -f "$BUNDLE/check.err"

# pip itself, as the lent machine's would: every pinned wheel resolves from .gpu/wheels alone.
reqs=("${core[@]}")
if compgen -G "$WHEELS/wandb-*.whl" >/dev/null; then reqs+=("${wandb[@]}"); fi
dry="$(mktemp -d)"
if ! "$PYTHON" -m pip --disable-pip-version-check install --dry-run --no-index --no-deps \
  --find-links "$WHEELS" "${TARGET[@]}" --target "$dry/site" "${reqs[@]}" >"$dry/out" 2>&1; then
  echo "pip cannot install the pinned wheels from $WHEELS alone:" >&2
  tail -n 15 "$dry/out" >&2
  exit 1
fi
grep "^Would install" "$dry/out"
rm -rf "$dry"

echo
echo "ready. One device call, from this repo's root:"
echo "  carry:     [\"$BUNDLE\"]"
echo "  command:   bash benchmarks/gpu.sh"
echo "  timeout_s: 600"
