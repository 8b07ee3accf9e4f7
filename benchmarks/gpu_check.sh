#!/usr/bin/env bash
# One-shot check of the CUDA path on a GPU machine, within 8 minutes on one H200:
#   1. the install: make install where a package registry is reachable; else make install-system, a venv over
#      the system's python that already has a CUDA torch (GPU_CHECK_INSTALL=install|system|none forces one),
#   2. the GPU tests (tests/test_cuda.py),
#   3. CNN-MoD (ResNet50 vs ResNet75/86/50-MoD) at batch 1 and 64, fp32 and amp-fp16, CUDA graphs off and on,
#      into results/mod-cuda.csv,
#   4. the CNN-MoD ImageNet table (reproduce) into results/mod-imagenet-cuda-torch.csv, and its plot.
# A failing step is reported and the others still run; the script exits non-zero if any failed or was skipped
# for lack of time. Every step is timed against one overall budget (GPU_CHECK_BUDGET_S, default 480 s). The
# step limits are about twice the times measured on one H200 (torch 2.11, CUDA 13.0): install 0 s (done) or
# ~20 s (install-system), GPU tests 26 s, a 4-model compare with CUDA graphs 62 s at --runs 50 --min-time 1
# (here 30 and 0.5). Without nvidia-smi the GPU steps are skipped with a message (a dry run: exit 0).
# When $OUT is set (the device machine collects what is written under it), the result files and the log are
# copied to $OUT/results/.
#   bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p results
LOG=results/gpu-check.log
exec > >(tee "$LOG") 2>&1

BUDGET_S=${GPU_CHECK_BUDGET_S:-480}
DEADLINE=$((SECONDS + BUDGET_S))
CB=.venv/bin/convbench
PY=.venv/bin/python
failed=()
skipped_no_gpu=0
HAVE_GPU=$(command -v nvidia-smi || true)

# gpu NAME LIMIT_S COMMAND...: a step that needs the GPU (skipped where there is none).
gpu() { GPU_STEP=1 step "$@"; }

# Which install: make install needs a package registry (it pulls torch); install-system uses the system's torch.
registry_reachable() {
  python3 -c 'import os, sys, urllib.request
url = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/") + "/pip/"
try:
    urllib.request.urlopen(url, timeout=5)
except Exception:
    sys.exit(1)' 2>/dev/null
}
do_install() {
  local how=${GPU_CHECK_INSTALL:-auto}
  if [ "$how" = auto ]; then
    if registry_reachable; then how=install; else how=system; fi
  fi
  echo "install: $how"
  case $how in
    install) make install ;;
    system) make install-system ;;
    none) [ -x "$CB" ] || { echo "GPU_CHECK_INSTALL=none but $CB is missing" >&2; return 2; } ;;
    *) echo "GPU_CHECK_INSTALL is install, system, none or auto, not $how" >&2; return 2 ;;
  esac
}

# step NAME LIMIT_S COMMAND...: run COMMAND for at most LIMIT_S seconds (less if the budget is nearly spent),
# print timestamps and the exit code, and remember a failure instead of stopping.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 15 ]; then
    echo "=== $(date -u +%FT%TZ) SKIPPED $name: the ${BUDGET_S} s budget is spent"
    failed+=("$name (skipped: no time left)")
    return 0
  fi
  [ "$limit" -le "$left" ] || limit=$left
  if [ "${GPU_STEP:-0}" = 1 ] && [ -z "$HAVE_GPU" ]; then
    echo "=== $(date -u +%FT%TZ) SKIPPED $name: no nvidia-smi here, so no NVIDIA GPU (dry run)"
    skipped_no_gpu=$((skipped_no_gpu + 1))
    return 0
  fi
  echo "=== $(date -u +%FT%TZ) START $name (limit ${limit} s)"
  local start=$SECONDS rc=0
  timeout --kill-after=15 "$limit" "$@" || rc=$?
  echo "=== $(date -u +%FT%TZ) END $name: exit $rc after $((SECONDS - start)) s"
  if [ "$rc" -eq 124 ]; then
    failed+=("$name (timed out after ${limit} s)")
  elif [ "$rc" -ne 0 ]; then
    failed+=("$name (exit $rc)")
  fi
  return 0
}

collect() {
  [ -n "${OUT:-}" ] || return 0
  mkdir -p "$OUT/results"
  local f
  for f in results/mod-cuda.csv results/mod-imagenet-cuda-torch.csv results/mod-imagenet-cuda-torch.png \
    results/mod-imagenet-cuda-torch.svg results/gpu-check-pytest.xml "$LOG"; do
    [ -f "$f" ] && cp "$f" "$OUT/results/"
  done
  return 0
}
trap collect EXIT

# compare and reproduce append (and reproduce reuses rows it already has): each result file holds this run only.
rm -f results/mod-cuda.csv results/mod-imagenet-cuda-torch.csv results/mod-imagenet-cuda-torch.png \
  results/mod-imagenet-cuda-torch.svg results/gpu-check-pytest.xml

gpu "environment" 20 bash -c 'nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit \
  --format=csv'
# timeout runs programs, not shell functions: the install runs in a bash that is given the two functions.
step "install" 240 bash -c "$(declare -f registry_reachable do_install); CB=$CB do_install"
gpu "torch sees the GPU" 30 "$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA"; \
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))'
gpu "pytest tests/test_cuda.py" 75 "$PY" -m pytest tests/test_cuda.py -q -p no:cacheprovider \
  --junitxml=results/gpu-check-pytest.xml

MODELS=(resnet50 resnet75-mod resnet86-mod resnet50-mod)
# Eager batch-1 forwards are bound by the host's kernel launches (5-9 ms each on the H200, CV 20-26%): a short
# timed window per model and trial keeps the eager steps within their limits; the graphs steps have CV < 1%.
SHORT=(--runs 30 --min-time 0.5 --trials 2)
# The first step runs each trial in a fresh worker process (the default), so the worker path is checked on CUDA
# too; it costs a torch import, a CUDA context and the builds per trial, so it times two models only. The other
# steps keep the trials in one process.
gpu "compare fp32, graphs off, worker processes" 100 "$CB" compare resnet50 resnet75-mod --device cuda -b 1,64 \
  --precision fp32 "${SHORT[@]}" --output results/mod-cuda.csv
gpu "compare fp32, graphs on" 80 "$CB" compare "${MODELS[@]}" --device cuda -b 1,64 --precision fp32 \
  --cuda-graphs "${SHORT[@]}" --isolate session --output results/mod-cuda.csv
gpu "compare amp-fp16, graphs off" 90 "$CB" compare "${MODELS[@]}" --device cuda -b 1,64 --precision amp-fp16 \
  "${SHORT[@]}" --isolate session --output results/mod-cuda.csv
gpu "compare amp-fp16, graphs on" 80 "$CB" compare "${MODELS[@]}" --device cuda -b 1,64 --precision amp-fp16 \
  --cuda-graphs "${SHORT[@]}" --isolate session --output results/mod-cuda.csv

gpu "reproduce mod-imagenet" 100 "$CB" reproduce mod-imagenet --device cuda --runtime torch --convention paper \
  "${SHORT[@]}" --isolate session -o results/mod-imagenet-cuda-torch.csv
gpu "plot mod-imagenet" 40 "$CB" plot results/mod-imagenet-cuda-torch.csv -o results/mod-imagenet-cuda-torch.png

echo "=== $(date -u +%FT%TZ) done in $SECONDS s"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
if [ "$skipped_no_gpu" -gt 0 ]; then
  echo "dry run: $skipped_no_gpu GPU step(s) skipped (no nvidia-smi); the other steps passed"
  exit 0
fi
echo "all steps passed"
