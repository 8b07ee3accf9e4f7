#!/usr/bin/env bash
# Regenerates every committed result in results/, one benchmark after another, on a quiet machine (the timings
# are single-threaded and anything else running skews them; convbench flags what it sees in each row).
# About 90 minutes on 2 cores with the export cache warm.
#   bash benchmarks/reference.sh            all of them
#   bash benchmarks/reference.sh mod kw     only some groups: mod, torch, openvino, mod-impl, kw, micronet,
#                                           compconv, harness, tables, macs, repro, cli
set -uo pipefail  # a failing benchmark is reported and the others still run
cd "$(dirname "$0")/.."
CB=.venv/bin/convbench
PY=.venv/bin/python
groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(mod torch openvino mod-impl kw micronet compconv harness tables macs repro cli)
want() { [[ " ${groups[*]} " == *" $1 "* ]]; }
fresh() { rm -f "$@"; }  # compare appends; a reference file holds one run
# Per trial; every compare runs --trials independent trials, each in a fresh process (the default).
TIMING=(--trials 6 --runs 20 --min-time 1.5)

if want mod; then  # CNN-MoD on ONNX Runtime, 1 thread, batch 1
  fresh results/mod-onnxruntime-cpu.csv
  $CB compare resnet50 resnet75-mod resnet86-mod resnet50-mod --device cpu --threads 1 "${TIMING[@]}" \
    -o results/mod-onnxruntime-cpu.csv
fi
if want torch; then  # the same comparison in single-threaded PyTorch eager, as the paper timed it
  fresh results/mod-torch-cpu.csv
  $CB compare resnet50 resnet75-mod resnet86-mod resnet50-mod --runtime torch --device cpu --threads 1 \
    "${TIMING[@]}" -o results/mod-torch-cpu.csv
fi
if want openvino; then  # and on OpenVINO, from the same ONNX files
  fresh results/mod-openvino-cpu.csv
  $CB compare resnet50 resnet75-mod resnet86-mod resnet50-mod --runtime openvino --device cpu --threads 1 \
    "${TIMING[@]}" -o results/mod-openvino-cpu.csv
fi
if want mod-impl; then  # every MoD implementation on every CPU runtime
  $PY benchmarks/mod_speedup.py --trials 3 --runs 20 --min-time 1 -o results/mod_speedup.csv
fi
if want kw; then  # ResNet18 with KernelWarehouse, ODConv and DY-Conv
  fresh results/kw-resnet18-onnxruntime-cpu.csv
  $CB compare resnet18 resnet18-kw-0.25x resnet18-kw-1x resnet18-kw-4x resnet18-odconv-4x resnet18-dyconv-4x \
    --device cpu --threads 1 "${TIMING[@]}" -o results/kw-resnet18-onnxruntime-cpu.csv
fi
if want micronet; then  # MicroNet against MobileNetV3-Small 0.5
  fresh results/micronet-onnxruntime-cpu.csv
  $CB compare mobilenetv3-small-050 micronet-m1 micronet-m2 micronet-m3 --device cpu --threads 1 --trials 6 \
    --runs 200 --min-time 1.5 -o results/micronet-onnxruntime-cpu.csv
fi
if want compconv; then  # CompConv128 in ResNet50
  fresh results/compconv-resnet50-onnxruntime-cpu.csv
  $CB compare resnet50 resnet50-compconv128 --device cpu --threads 1 "${TIMING[@]}" \
    -o results/compconv-resnet50-onnxruntime-cpu.csv
fi
if want harness; then  # what the harness adds to a bare session.run loop
  $PY benchmarks/harness_overhead.py --model resnet18 --rounds 40 -o results/harness_overhead.csv
fi
if want tables; then  # the papers' tables, published beside measured, and their plots
  fresh results/mod-imagenet-cpu.csv results/mod-resnets-cpu.csv results/kw-resnet18-cpu.csv \
    results/micronet-cpu.csv
  for runtime in onnxruntime torch; do
    $CB reproduce mod-imagenet --device cpu --runtime $runtime --threads 1 --trials 3 --runs 15 --min-time 1 \
      -o results/mod-imagenet-cpu.csv
    $CB reproduce mod-resnets --device cpu --runtime $runtime --threads 1 --trials 3 --runs 15 --min-time 1 \
      -o results/mod-resnets-cpu.csv
  done
  $CB reproduce kw-resnet18 --device cpu --threads 1 --trials 3 --runs 15 --min-time 1 -o results/kw-resnet18-cpu.csv
  $CB reproduce micronet --device cpu --threads 1 --trials 3 --runs 100 --min-time 1 -o results/micronet-cpu.csv
  for name in mod-imagenet mod-resnets kw-resnet18 micronet; do
    $CB plot results/$name-cpu.csv -o results/$name-cpu.png
  done
fi
if want macs; then  # do MACs predict latency? the whole registry on ONNX Runtime and OpenVINO
  $PY benchmarks/macs_vs_latency.py -o results/macs-vs-latency-cpu.csv
fi
if want repro; then  # do the intervals hold on a rerun? (the "before" rows come from the previous release)
  $PY benchmarks/reproducibility.py --runs-of 8 --label "after, defaults" --append -o results/reproducibility.csv
fi
if want cli; then  # how fast the CLI answers
  $PY benchmarks/cli_latency.py -o results/cli_latency.csv
fi
