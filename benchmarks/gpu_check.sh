#!/usr/bin/env bash
# One-shot validation of everything GPU-side; writes one report file to send back.
#
#   bash benchmarks/gpu_check.sh [REPORT]      (default: gpu_check_report.txt; PYTHON=... picks the
#                                              interpreter, default .venv/bin/python, else python3)
#
# With a full installation (openmm, openmm-torch, openmm-so3krates; `pip install '.[test,cuda12]'`):
# so3krates doctor, the cuda-marked tests, `so3krates bench --platform CUDA` (CUDA graphs where the
# model allows them), SO3LR on CUDA (against float64 on the CPU, CUDA-graph capture, and MD), short
# `so3krates train` runs on CUDA with TF32 and with bf16, SO3LR fine-tuned on CUDA (its long-range
# terms in training), and a one-GPU torchrun (DDP) run.
# Where the Python has its own torch and no OpenMM (a cluster's GPU node without internet), it runs
# from this source tree what can run: the compiled ops if they build against that torch, the model on
# CUDA with CUDA-graph capture in plain PyTorch, and training with TF32/bf16 (and torchrun), and
# reports what it skipped and why. Without a CUDA GPU it says so and exits 0 without running anything.
# Each step is timed; the first failure stops the script with a non-zero exit status.
set -euo pipefail
cd "$(dirname "$0")/.."
REPORT="$(realpath -m "${1:-gpu_check_report.txt}")"
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON="$(command -v python3)"; fi
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/so3krates_gpu_check.XXXXXX")"

if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" > /dev/null 2>&1; then
  echo "gpu_check: no CUDA GPU visible to $PYTHON (torch missing, a CPU-only torch, or no NVIDIA driver): nothing to check"
  exit 0
fi

: > "$REPORT"
say() { echo "$*" | tee -a "$REPORT"; }
run() {  # run NAME COMMAND...: time the step, keep its output's tail, stop at the first failure
  local name="$1"; shift
  local start=$SECONDS
  if "$@" > "$WORK/$name.log" 2>&1; then
    say "PASS  $name ($((SECONDS - start)) s)"
    tail -n 40 "$WORK/$name.log" | sed 's/^/      /' >> "$REPORT"
  else
    say "FAIL  $name ($((SECONDS - start)) s): $*"
    tail -n 60 "$WORK/$name.log" | sed 's/^/      /' | tee -a "$REPORT"
    say "stopped at the first failure; full logs in $WORK"
    exit 1
  fi
}
skip() { say "SKIP  $1: $2"; }

say "openmm-so3krates GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(git rev-parse --short HEAD 2>/dev/null || echo 'no git')"
say "$("$PYTHON" -c "import torch; print('torch', torch.__version__, '(CUDA', torch.version.cuda, ') on', ', '.join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))")"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/GPU: /' | tee -a "$REPORT"

TRAIN=(examples/rmd17_ethanol.yaml device=cuda optim.epochs=2 data.train=400 data.valid=50 data.test=50)
if "$PYTHON" -c "import openmm, openmmtorch, openmmml, so3krates" > /dev/null 2>&1; then
  say "mode: full installation"
  run doctor "$PYTHON" -m so3krates doctor
  run cuda_tests "$PYTHON" -m pytest -q -m cuda tests
  run bench_cuda "$PYTHON" -m so3krates bench --platform CUDA --cases so3krates,so3lr --repeats 1 --steps 100 \
      --water-steps 10 --json "$WORK/bench.json"
  run so3lr_model "$PYTHON" benchmarks/gpu_check_model.py model --device cuda
  run so3lr_md "$PYTHON" -m so3krates md --model so3lr --platform CUDA --steps 2000 --report-interval 500 \
      --output "$WORK/md_so3lr"
  run train_tf32 "$PYTHON" -m so3krates train "${TRAIN[@]}" tf32=true output="$WORK/train_tf32" --no-progress
  run train_bf16 "$PYTHON" -m so3krates train "${TRAIN[@]}" bf16=true output="$WORK/train_bf16" --no-progress
  run finetune_so3lr "$PYTHON" benchmarks/gpu_check_model.py train --finetune --tf32 --output "$WORK/finetune"
  run torchrun_ddp "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node 1 --module so3krates train \
      "${TRAIN[@]}" output="$WORK/train_ddp" --no-progress
else
  say "mode: source tree (no OpenMM/openmm-torch/openmm-so3krates installation in $PYTHON)"
  skip doctor "needs OpenMM"
  skip cuda_tests "the test suite needs OpenMM and openmm-torch"
  skip bench_cuda "runs MD in OpenMM"
  skip so3lr_md "runs MD in OpenMM"
  export PYTHONPATH="$PWD/python:$PWD/training${PYTHONPATH:+:$PYTHONPATH}"
  if command -v cmake > /dev/null && cmake -S plugin -B "$WORK/ops" -DSO3KRATES_OPS_ONLY=ON -DCMAKE_BUILD_TYPE=Release \
       -DPython_EXECUTABLE="$(command -v "$PYTHON")" > "$WORK/ops_build.log" 2>&1 \
     && cmake --build "$WORK/ops" -j 4 >> "$WORK/ops_build.log" 2>&1; then
    export SO3KRATES_OPS_LIBRARY="$WORK/ops/libso3krates_ops.so"
    say "PASS  compiled ops built against this torch ($SO3KRATES_OPS_LIBRARY)"
  else
    export SO3KRATES_WITHOUT_OPS=1
    skip compiled_ops "did not build here (no cmake or compiler, or this torch's headers differ; $WORK/ops_build.log); the CUDA path does not need them"
  fi
  run so3lr_model "$PYTHON" benchmarks/gpu_check_model.py model --device cuda
  if "$PYTHON" -c "import yaml, h5py, ase, e3nn, rich" > /dev/null 2>&1; then
    run train_tf32 "$PYTHON" benchmarks/gpu_check_model.py train --tf32 --output "$WORK/train_tf32"
    run train_bf16 "$PYTHON" benchmarks/gpu_check_model.py train --bf16 --output "$WORK/train_bf16"
    run finetune_so3lr "$PYTHON" benchmarks/gpu_check_model.py train --finetune --tf32 --output "$WORK/finetune"
    run torchrun_ddp "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node 1 \
        benchmarks/gpu_check_model.py train --output "$WORK/train_ddp"
  else
    skip training "needs pyyaml, h5py, ase, e3nn and rich in $PYTHON"
  fi
fi
say "all checks passed; report: $REPORT"
