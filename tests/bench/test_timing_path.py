"""The GPU mode's timing path (build, LoadedModel, place_pipeline, Engine, generate; eager then
compiled) run end to end on the CPU with shrunk configs: the code a GPU runs, minus its CUDA
calls. Nothing here is asserted on speed."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import torch

from bot.worker.random_flux import TINY

RUNS, SIZE = 2, 64


@pytest.fixture(scope="module")
def tiny_run(bench: ModuleType) -> Any:
    """time_flux with FLUX.1-schnell's configs shrunk (2 blocks, 32-wide), bfloat16 as on a GPU.

    Compiled with dynamo's eager backend: dynamo traces the same transformer the GPU compiles,
    without the minute inductor's C++ code generation takes on a CPU.
    """
    torch.set_num_threads(1)  # tiny ops: syncing threads costs more than it saves
    lines: list[str] = []
    run = bench.time_flux(TINY, torch.device("cpu"), torch.bfloat16, size=SIZE, runs=RUNS,
                          warmup=1, compile_options={"backend": "eager"}, say=lines.append)
    return run, lines


def test_the_timing_path_times_eager_then_compiled_images(tiny_run: Any) -> None:
    run, _ = tiny_run

    assert list(run.seconds) == [
        "flux-schnell 64px 4 steps eager", "flux-schnell 64px 4 steps compiled"
    ]
    assert all(len(times) == RUNS and min(times) > 0 for times in run.seconds.values())


def test_the_timing_path_makes_real_images_of_the_asked_size(tiny_run: Any) -> None:
    run, _ = tiny_run

    for image in run.images.values():
        assert image.size == (SIZE, SIZE)
        assert len(set(image.getdata())) > 1  # pixels decoded from latents, not a blank


def test_the_timing_path_prints_a_row_per_mode(tiny_run: Any) -> None:
    run, lines = tiny_run

    rows = [line for line in lines if " p50 " in line]
    assert [line.split(" p50 ")[0].rstrip() for line in rows] == list(run.seconds)


def test_off_cuda_the_timing_path_prints_no_gpu_memory_figure(tiny_run: Any) -> None:
    _, lines = tiny_run

    assert lines[0].startswith("built in ")
    assert "GiB allocated" not in lines[0]
