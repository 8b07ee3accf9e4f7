#!/usr/bin/env bash
# Regenerates every committed result in results/, one benchmark after another (on a quiet machine: the
# timings are single-threaded and a second busy core skews them). About an hour on 2 cores.
#   bash benchmarks/reference.sh            all of them
#   bash benchmarks/reference.sh mod kw     only some groups: mod, mod-impl, torch, kw, micronet, compconv,
#                                           harness, tables
set -uo pipefail  # a failing benchmark is reported and the others still run
cd "$(dirname "$0")/.."
CB=.venv/bin/convbench
PY=.venv/bin/python
groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(mod mod-impl torch kw micronet compconv harness tables)
want() { [[ " ${groups[*]} " == *" $1 "* ]]; }
fresh() { rm -f "$@"; }  # compare appends; a reference file holds one run

if want mod; then  # issue 2: CNN-MoD on ONNX Runtime, 1 thread, batch 1
  fresh results/mod-onnxruntime-cpu.csv
  $CB compare resnet50 resnet75-mod resnet86-mod resnet50-mod --device cpu --threads 1 --runs 100 --min-time 8 \
    -o results/mod-onnxruntime-cpu.csv
fi
if want mod-impl; then  # issue 3: every MoD implementation, ONNX Runtime and PyTorch
  $PY benchmarks/mod_speedup.py --runs 120 --min-time 4 -o results/mod_speedup.csv
fi
if want torch; then  # issue 6: the same comparison in single-threaded PyTorch eager, as the paper timed it
  fresh results/mod-torch-cpu.csv
  $CB compare resnet50 resnet75-mod resnet86-mod resnet50-mod --runtime torch --device cpu --threads 1 --runs 60 \
    --min-time 8 -o results/mod-torch-cpu.csv
fi
if want kw; then  # issue 4: ResNet18 with KernelWarehouse, ODConv and DY-Conv
  fresh results/kw-resnet18-onnxruntime-cpu.csv
  $CB compare resnet18 resnet18-kw-0.25x resnet18-kw-1x resnet18-kw-4x resnet18-odconv-4x resnet18-dyconv-4x \
    --device cpu --threads 1 --runs 60 --min-time 4 -o results/kw-resnet18-onnxruntime-cpu.csv
fi
if want micronet; then  # issue 5: MicroNet against MobileNetV3-Small 0.5
  fresh results/micronet-onnxruntime-cpu.csv
  $CB compare mobilenetv3-small-050 micronet-m1 micronet-m2 micronet-m3 --device cpu --threads 1 --runs 300 \
    --min-time 3 -o results/micronet-onnxruntime-cpu.csv
fi
if want compconv; then  # issue 5: CompConv128 in ResNet50
  fresh results/compconv-resnet50-onnxruntime-cpu.csv
  $CB compare resnet50 resnet50-compconv128 --device cpu --threads 1 --runs 80 --min-time 6 \
    -o results/compconv-resnet50-onnxruntime-cpu.csv
fi
if want harness; then  # issue 6: what the harness adds to a bare session.run loop
  $PY benchmarks/harness_overhead.py --model resnet18 --rounds 40 -o results/harness_overhead.csv
fi
if want tables; then  # issue 7: the papers' tables, published beside measured, and their plots
  fresh results/mod-imagenet-cpu.csv results/mod-resnets-cpu.csv results/kw-resnet18-cpu.csv \
    results/micronet-cpu.csv
  for runtime in onnxruntime torch; do
    $CB reproduce mod-imagenet --device cpu --runtime $runtime --threads 1 --convention paper \
      -o results/mod-imagenet-cpu.csv
    $CB reproduce mod-resnets --device cpu --runtime $runtime --threads 1 --convention paper \
      -o results/mod-resnets-cpu.csv
  done
  $CB reproduce kw-resnet18 --device cpu --threads 1 -o results/kw-resnet18-cpu.csv
  $CB reproduce micronet --device cpu --threads 1 --convention paper -o results/micronet-cpu.csv
  for name in mod-imagenet mod-resnets kw-resnet18 micronet; do
    $CB plot results/$name-cpu.csv -o results/$name-cpu.png
  done
fi
