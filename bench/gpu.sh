#!/usr/bin/env bash
# Run on the lent GPU machine, from the repository root, with the wheels of
# bench/gpu-wheels.sh carried: the device tool's
#   run(command="bash bench/gpu.sh", carry=[".whl"], timeout_s=540)
# Installs them beside the image's PyTorch, then runs bench/worker.py's GPU mode (full-size
# FLUX.1-schnell with random weights, 1024x1024, 4 steps, bf16, eager and compiled). What it
# prints also goes to $OUT/worker.txt, which comes back.
set -uo pipefail
python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
out=${OUT:-/tmp}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 \
    | tee "$out/worker.txt"
python3 bench/worker.py --runs 10 --warmup 3 2>&1 | tee -a "$out/worker.txt"
