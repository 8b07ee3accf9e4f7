#!/usr/bin/env bash
# One-shot check of the CUDA path on a GPU machine, within about 8 minutes on one H200:
#   1. make install (the only install), 2. the GPU tests (tests/test_cuda.py),
#   3. CNN-MoD (ResNet50 vs ResNet75/86/50-MoD) at batch 1 and 64, fp32 and amp-fp16, CUDA graphs off and on,
#      into results/mod-cuda.csv,
#   4. the CNN-MoD ImageNet table (reproduce) into results/mod-imagenet-cuda-torch.csv, and its plot.
# A failing step is reported and the others still run; the script exits non-zero if any failed or was skipped
# for lack of time. Every step is timed against one overall budget (GPU_CHECK_BUDGET_S, default 480 s).
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

step "environment" 30 bash -c 'nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit \
  --format=csv'
step "make install" 240 make install
step "torch sees the GPU" 60 "$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA"; \
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))'
step "pytest tests/test_cuda.py" 180 "$PY" -m pytest tests/test_cuda.py -q --junitxml=results/gpu-check-pytest.xml

MODELS=(resnet50 resnet75-mod resnet86-mod resnet50-mod)
SHORT=(--runs 50 --min-time 1 --trials 2)
# The first combination runs each trial in a fresh worker process (the default), so the worker path is checked
# on CUDA too; the others keep the trials in one process to stay within the budget.
step "compare fp32, graphs off" 90 "$CB" compare "${MODELS[@]}" --device cuda -b 1,64 --precision fp32 \
  "${SHORT[@]}" --output results/mod-cuda.csv
step "compare fp32, graphs on" 70 "$CB" compare "${MODELS[@]}" --device cuda -b 1,64 --precision fp32 \
  --cuda-graphs "${SHORT[@]}" --isolate session --output results/mod-cuda.csv
step "compare amp-fp16, graphs off" 70 "$CB" compare "${MODELS[@]}" --device cuda -b 1,64 --precision amp-fp16 \
  "${SHORT[@]}" --isolate session --output results/mod-cuda.csv
step "compare amp-fp16, graphs on" 70 "$CB" compare "${MODELS[@]}" --device cuda -b 1,64 --precision amp-fp16 \
  --cuda-graphs "${SHORT[@]}" --isolate session --output results/mod-cuda.csv

step "reproduce mod-imagenet" 100 "$CB" reproduce mod-imagenet --device cuda --runtime torch --convention paper \
  "${SHORT[@]}" --isolate session -o results/mod-imagenet-cuda-torch.csv
step "plot mod-imagenet" 40 "$CB" plot results/mod-imagenet-cuda-torch.csv -o results/mod-imagenet-cuda-torch.png

echo "=== $(date -u +%FT%TZ) done in $SECONDS s"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all steps passed"
