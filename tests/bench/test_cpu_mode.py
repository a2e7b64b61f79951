"""bench/worker.py without a GPU: it times the tiny test pipelines and says what it skipped."""

from __future__ import annotations

import argparse
from types import ModuleType

import pytest


def test_a_size_outside_a_models_contract_skips_that_model_and_times_the_others(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(size=512, runs=1, warmup=0, threads=1, no_compile=True,
                              compile_mode="default")

    bench.cpu_bench(args)

    lines = capsys.readouterr().out.splitlines()
    assert "tiny chroma skipped: width 512 is not allowed: a whole number from 768 to 2048." in lines
    assert [line.split(" p50")[0].strip() for line in lines if " p50 " in line] == [
        "tiny flux-schnell 512px 4 steps eager", "tiny kolors 512px 25 steps eager"
    ]
