#!/usr/bin/env bash
# Run here, from the repository root, after `make test` has built .venv: downloads into .whl/
# the wheels bench/gpu.sh installs on the lent GPU machine. That machine's image holds PyTorch,
# transformers, tokenizers, sentencepiece, safetensors and huggingface_hub, and cannot fetch
# anything; the bot's worker code also needs these, at the versions the tests here ran with.
# Usage: bash bench/gpu-wheels.sh [PYTHON_VERSION]   (the machine's Python: 3.12)
set -euo pipefail
python_version=${1:-3.12}
names="diffusers pydantic pydantic_core annotated-types typing-inspection typing_extensions
       starlette"
pins=$(.venv/bin/python -c 'import sys, importlib.metadata as m
print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $names)
rm -rf .whl
.venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "$python_version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl $pins
ls -l .whl
