"""GPU worker benchmark: seconds per image through the worker's own generate path.

On an NVIDIA GPU: FLUX.1-schnell at full size with random weights built from its published
configs (written below; nothing is downloaded), 1024x1024, 4 steps, bfloat16, batch 1,
eager and torch.compile'd; p50 over --runs images after --warmup. Printed beside the bound the
hardware sets (the transformer's FLOPs per step, counted from the config, over the GPU's dense
bf16 peak) and beside Replicate's published 0.72 s per image.

Without a CUDA GPU it says so, and times the tiny random-weight Flux, Chroma and Kolors
pipelines of the test suite on the CPU instead: that measures the worker's code path, not
the models' speed.

Usage: python bench/worker.py [--runs 10] [--warmup 3] [--no-compile] [--compile-mode MODE]
       [--threads 1 (CPU mode)] [--peak-tflops N (a GPU this script does not know)]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded, ever

import torch

from bot.core.catalog import Catalog
from bot.worker.params import GenerationParams, parse_body
from bot.worker.pipelines import (
    Engine,
    EngineOptions,
    LoadedModel,
    place_pipeline,
)

REPLICATE_S = 0.72  # Replicate's published seconds per image for FLUX.1-schnell
TARGET_S = 0.6
# Dense (not sparse) bf16 tensor-core peaks, TFLOP/s, from NVIDIA's data sheets.
PEAK_BF16_TFLOPS = {"H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H200": 989.0,
                    "A100": 312.0, "L40S": 362.0, "L4": 121.0, "RTX 4090": 165.0}

# The published configs of black-forest-labs/FLUX.1-schnell (diffusers layout).
FLUX_TRANSFORMER = {
    "patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38,
    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
    "pooled_projection_dim": 768, "guidance_embeds": False, "axes_dims_rope": [16, 56, 56],
}
FLUX_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 16,
    "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "norm_num_groups": 32,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "act_fn": "silu", "sample_size": 1024, "scaling_factor": 0.3611, "shift_factor": 0.1159,
    "use_quant_conv": False, "use_post_quant_conv": False, "mid_block_add_attention": True,
    "force_upcast": True,
}
CLIP_TEXT = {  # openai/clip-vit-large-patch14, text tower
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
    "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77,
    "hidden_act": "quick_gelu", "projection_dim": 768, "layer_norm_eps": 1e-5,
}
T5_XXL = {  # google/t5-v1_1-xxl, encoder only
    "vocab_size": 32128, "d_model": 4096, "d_ff": 10240, "d_kv": 64, "num_heads": 64,
    "num_layers": 24, "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128, "layer_norm_epsilon": 1e-6, "dropout_rate": 0.0,
}
FLUX_SCHEDULER = {
    "num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False,
    "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096,
}


def flux_tflop_per_step(config: dict[str, Any], image_tokens: int, text_tokens: int) -> float:
    """Matmul FLOPs of one transformer step (2 per multiply-add; norms and RoPE left out)."""
    hidden = config["num_attention_heads"] * config["attention_head_dim"]
    mlp = 4 * hidden
    tokens = image_tokens + text_tokens
    attention = 2 * tokens * tokens * hidden  # QK^T and AV
    double = tokens * (4 * hidden * hidden + 2 * hidden * mlp) + attention
    single = tokens * (3 * hidden * hidden + hidden * mlp + (hidden + mlp) * hidden) + attention
    macs = config["num_layers"] * double + config["num_single_layers"] * single
    return 2 * macs / 1e12


def peak_tflops(gpu_name: str) -> float | None:
    """The dense bf16 peak of a known GPU, matched by name."""
    for key, value in sorted(PEAK_BF16_TFLOPS.items(), key=lambda kv: -len(kv[0])):
        if all(part.lower() in gpu_name.lower() for part in key.split()):
            return value
    if "h100" in gpu_name.lower():
        return PEAK_BF16_TFLOPS["H100 SXM"]
    return None


def full_size_flux(device: torch.device) -> Any:
    """FluxPipeline with FLUX.1-schnell's shapes and random bf16 weights, built on `device`."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from bot.worker.synthetic import clip_tokenizer, sentencepiece_model, t5_tokenizer

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            tokenizer = clip_tokenizer()  # a local stand-in: prompts pad to the same lengths
            tokenizer_2 = t5_tokenizer(sentencepiece_model())
            pipe = FluxPipeline(
                scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER),
                vae=AutoencoderKL(**FLUX_VAE),
                text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_TEXT)).eval(),
                tokenizer=tokenizer,
                text_encoder_2=T5EncoderModel(T5Config(**T5_XXL)).eval(),
                tokenizer_2=tokenizer_2,
                transformer=FluxTransformer2DModel(**FLUX_TRANSFORMER),
            )
    finally:
        torch.set_default_dtype(previous)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def time_images(generate: Callable[[], Any], runs: int, warmup: int, sync: bool) -> list[float]:
    """Seconds per call of `generate`, after `warmup` untimed calls."""
    for _ in range(warmup):
        generate()
    times = []
    for _ in range(runs):
        if sync:
            torch.cuda.synchronize()
        started = time.perf_counter()
        generate()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return times


def request(engine: Engine, model: str, **fields: Any) -> GenerationParams:
    spec = Catalog().get(model)
    assert spec is not None
    return parse_body(spec, {"prompt": "a red fox in the snow", **fields}, engine.tables[model])


def row(label: str, times: list[float]) -> str:
    p50 = statistics.median(times)
    return (f"{label:<44} p50 {p50:8.3f} s   min {min(times):8.3f}   max {max(times):8.3f}"
            f"   n={len(times)}")


def gpu_bench(args: argparse.Namespace) -> None:
    device = torch.device("cuda", torch.cuda.current_device())
    name = torch.cuda.get_device_name(device)
    print(f"GPU: {name}; torch {torch.__version__}; bf16; FLUX.1-schnell shapes, random weights")
    tokens, text = (args.size // 16) ** 2, 256
    tflop = flux_tflop_per_step(FLUX_TRANSFORMER, tokens, text)
    peak = args.peak_tflops or peak_tflops(name)
    started = time.perf_counter()
    pipe = full_size_flux(device)
    print(f"built in {time.perf_counter() - started:.0f}s; "
          f"{torch.cuda.memory_allocated(device) / 2**30:.1f} GiB allocated")
    loaded = LoadedModel("flux-schnell", pipe, dict(pipe.scheduler.config))
    place_pipeline(loaded, device, EngineOptions())
    engine = Engine({"flux-schnell": loaded}, device, torch.bfloat16)
    params = request(engine, "flux-schnell", width=args.size, height=args.size, steps=4)
    results = {}
    for compiled in [False] if args.no_compile else [False, True]:
        if compiled:
            loaded.denoiser.compile(mode=args.compile_mode)
            started = time.perf_counter()
            engine.generate(params)
            print(f"first compiled image (compiling) took {time.perf_counter() - started:.0f}s")
        label = f"flux-schnell {args.size}px 4 steps {'compiled' if compiled else 'eager'}"
        results[label] = time_images(lambda: engine.generate(params), args.runs, args.warmup,
                                     sync=True)
        print(row(label, results[label]))
    print(f"transformer: {tflop:.1f} TFLOP per step at {tokens} image + {text} text tokens, "
          f"{4 * tflop:.0f} TFLOP per image")
    if peak:
        print(f"hardware bound at {peak:.0f} TFLOP/s dense bf16: {4 * tflop / peak:.3f} s/image")
    else:
        print("hardware bound: unknown peak for this GPU (pass --peak-tflops)")
    best = min(statistics.median(t) for t in results.values())
    print(f"Replicate's published figure: {REPLICATE_S:.2f} s/image; target < {TARGET_S} s")
    print(f"best p50 {best:.3f} s/image on {name}"
          + (f" = {4 * tflop / best:.0f} TFLOP/s achieved" if best else ""))


def cpu_bench(args: argparse.Namespace) -> None:
    print("No CUDA GPU here: timing the tiny random-weight test pipelines on the CPU.")
    print("These figures measure the worker's code path (queue-less generate: noise, scheduler,")
    print("pipeline call, crop), NOT the speed of FLUX.1-schnell, Chroma or Kolors.")
    print("The GPU figure (FLUX.1-schnell 1024px 4 steps bf16) is NOT measured by this run.")
    torch.set_num_threads(args.threads)  # tiny ops: syncing threads costs more than it saves
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}; torch {torch.__version__} with "
          f"{torch.get_num_threads()} thread(s), float32")
    from bot.worker.sources import resolve_source
    from bot.worker.synthetic import TINY_MODELS, save_tiny_pipeline

    with tempfile.TemporaryDirectory() as folder:
        sources = {
            m: resolve_source(m, str(save_tiny_pipeline(m, Path(folder) / m))) for m in TINY_MODELS
        }
        engine = Engine.load(sources, EngineOptions())
        cases = [
            ("flux-schnell", {"steps": 4}),
            ("chroma", {"steps": 40}),
            ("kolors", {"steps": 25}),
        ]
        for model, fields in cases:
            params = request(engine, model, width=args.size, height=args.size, **fields)
            times = time_images(lambda p=params: engine.generate(p), args.runs, args.warmup,
                                sync=False)
            print(row(f"tiny {model} {args.size}px {params.steps} steps eager", times))
        if not args.no_compile:
            loaded = engine.models["flux-schnell"]
            loaded.denoiser.compile(mode=args.compile_mode)
            params = request(engine, "flux-schnell", width=args.size, height=args.size, steps=4)
            started = time.perf_counter()
            engine.generate(params)
            print(f"first compiled tiny flux-schnell image (compiles) took "
                  f"{time.perf_counter() - started:.0f}s")
            times = time_images(lambda: engine.generate(params), args.runs, args.warmup,
                                sync=False)
            print(row(f"tiny flux-schnell {args.size}px 4 steps compiled", times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed images per case")
    parser.add_argument("--warmup", type=int, default=3, help="untimed images first")
    parser.add_argument("--size", type=int, default=1024, help="width and height")
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode: default, max-autotune, ...")
    parser.add_argument("--threads", type=int, default=1, help="CPU mode: torch threads")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the GPU's dense bf16 peak, when its name is not known here")
    args = parser.parse_args()
    if torch.cuda.is_available():
        gpu_bench(args)
    else:
        cpu_bench(args)


if __name__ == "__main__":
    main()
