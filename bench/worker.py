"""GPU worker benchmark: seconds per image through the worker's own generate path.

On an NVIDIA GPU: FLUX.1-schnell at full size with random weights built from its published
configs (bot/worker/random_flux.py; nothing is downloaded), 1024x1024, 4 steps, bfloat16,
batch 1, eager and torch.compile'd; p50 over --runs images after --warmup. Printed beside the
bound the hardware sets (the FLOPs of one image, counted as --shapes counts them, over the
GPU's dense bf16 peak) and beside Replicate's published 0.72 s per image.

--shapes needs no GPU and times nothing: it builds the same full-size pipeline with the same
builder on torch's meta device (shapes and dtypes, no memory behind them), prints each part's
parameter count and the transformer's inputs as the pipeline's own call makes them, and counts
the FLOPs of one image with torch.utils.flop_counter.FlopCounterMode (the pipeline runs on meta
tensors), beside the analytic per-step formula flux_tflop_per_step.

Without a CUDA GPU (and without --shapes) it says so, and times the tiny random-weight Flux,
Chroma and Kolors pipelines of the test suite on the CPU instead: that measures the worker's
code path, not the models' speed.

Usage: python bench/worker.py [--runs 10] [--warmup 3] [--no-compile] [--compile-mode MODE]
       [--threads 1 (CPU mode)] [--peak-tflops N (a GPU this script does not know)]
       python bench/worker.py --shapes [--size 1024] [--peak-tflops N (default: H100 SXM)]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded, ever

import torch
from PIL import Image

from bot.core.catalog import Catalog
from bot.worker.params import GenerationParams, ParamError, parse_body
from bot.worker.pipelines import MAX_SEQUENCE_LENGTH, Engine
from bot.worker.random_flux import FULL_SIZE, FluxConfigs, build_flux, random_flux_engine
from bot.worker.sources import EngineOptions

REPLICATE_S = 0.72  # Replicate's published seconds per image for FLUX.1-schnell
TARGET_S = 0.40  # s/image on an H100 SXM or H200, whose bound (printed) is about 0.29 s
# Dense (not sparse) bf16 tensor-core peaks, TFLOP/s, from NVIDIA's data sheets.
PEAK_BF16_TFLOPS = {"H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H200": 989.0,
                    "A100": 312.0, "L40S": 362.0, "L4": 121.0, "RTX 4090": 165.0}

# FLUX.1-schnell's published parameter counts, as usually quoted.
PUBLISHED_PARAMETERS = {"transformer": 11.9e9, "text_encoder_2": 4.76e9, "text_encoder": 123e6,
                        "vae": 84e6}
META = torch.device("meta")
CPU = torch.device("cpu")


def flux_tflop_per_step(config: Mapping[str, Any], image_tokens: int, text_tokens: int) -> float:
    """TFLOP of one transformer forward at batch 1: its matrix products, 2 FLOPs per multiply-add.

    Every product FluxTransformer2DModel computes is here, so this agrees with what
    FlopCounterMode counts (--shapes prints both; tests/bench holds them equal): per token, the
    blocks' projections and MLPs and attention's QK^T and AV, and the input and output
    projections; per image (0.01% at 1024 px), the timestep / pooled-text embedding and the
    blocks' modulation. Elementwise work (norms, RoPE, softmax, activations, the gates) is not
    counted, by FlopCounterMode neither: on a GPU it costs memory traffic, not tensor-core time.
    """
    hidden = config["num_attention_heads"] * config["attention_head_dim"]
    mlp = 4 * hidden  # FluxTransformer2DModel's fixed mlp_ratio
    tokens = image_tokens + text_tokens
    attention = 2 * tokens * tokens * hidden  # QK^T and AV
    double = tokens * (4 * hidden * hidden + 2 * hidden * mlp) + attention  # q k v out, MLP
    single = tokens * (3 * hidden * hidden + hidden * mlp + (hidden + mlp) * hidden) + attention
    patch = config["patch_size"] ** 2
    out_channels = config.get("out_channels") or config["in_channels"]
    embed = (image_tokens * config["in_channels"] * hidden  # x_embedder
             + text_tokens * config["joint_attention_dim"] * hidden  # context_embedder
             + image_tokens * hidden * patch * out_channels)  # proj_out
    conditioning = (256 * hidden + hidden * hidden  # timestep embedding (256 sinusoids)
                    + config["pooled_projection_dim"] * hidden + hidden * hidden  # pooled text
                    + (256 * hidden + hidden * hidden if config["guidance_embeds"] else 0)
                    + config["num_layers"] * 2 * 6 * hidden * hidden  # AdaLayerNormZero x2
                    + config["num_single_layers"] * 3 * hidden * hidden  # AdaLayerNormZeroSingle
                    + 2 * hidden * hidden)  # norm_out
    macs = (config["num_layers"] * double + config["num_single_layers"] * single + embed
            + conditioning)
    return 2 * macs / 1e12


def peak_tflops(gpu_name: str) -> float | None:
    """The dense bf16 peak of a known GPU, matched by name."""
    for key, value in sorted(PEAK_BF16_TFLOPS.items(), key=lambda kv: -len(kv[0])):
        if all(part.lower() in gpu_name.lower() for part in key.split()):
            return value
    if "h100" in gpu_name.lower():
        return PEAK_BF16_TFLOPS["H100 SXM"]
    return None


def parameter_counts(pipe: Any) -> dict[str, int]:
    """Parameters of each part of a FluxPipeline, by its attribute name."""
    return {name: sum(p.numel() for p in getattr(pipe, name).parameters())
            for name in ("transformer", "text_encoder_2", "text_encoder", "vae")}


@dataclass(frozen=True)
class FlopCount:
    """The FLOPs of one image as FlopCounterMode counted them, and what the transformer was fed."""

    size: int
    steps: int
    transformer_calls: int
    transformer_inputs: dict[str, tuple[int, ...]]  # shapes of the first call's tensor arguments
    tflop: dict[str, float]  # per part, for the whole image (the transformer: all its steps)
    analytic_per_step: float  # flux_tflop_per_step for the transformer's config and inputs

    @property
    def image_tokens(self) -> int:
        return self.transformer_inputs["hidden_states"][1]

    @property
    def text_tokens(self) -> int:
        return self.transformer_inputs["encoder_hidden_states"][1]

    @property
    def transformer_per_step(self) -> float:
        return self.tflop["transformer"] / self.transformer_calls

    @property
    def image(self) -> float:
        return sum(self.tflop.values())


# FlopCounterMode names each count after the outermost module it ran in: the VAE's decoder runs
# from vae.decode (a method, not a forward), so it counts under its own class name.
_COUNTED_PARTS = {"FluxTransformer2DModel": "transformer", "T5EncoderModel": "text_encoder_2",
                  "CLIPTextModel": "text_encoder", "Decoder": "vae decode"}


def count_flux_flops(pipe: Any, size: int, steps: int = 4) -> FlopCount:
    """Run `pipe` (built on the meta device) as the worker calls it, counting every FLOP.

    The call is the one Engine makes for flux-schnell (packed latents, guidance 0, the worker's
    max_sequence_length), decoded to a tensor instead of PIL images (which need real numbers).
    """
    from torch.utils.flop_counter import FlopCounterMode

    calls: list[dict[str, tuple[int, ...]]] = []

    def record(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        calls.append({k: tuple(v.shape) for k, v in kwargs.items() if isinstance(v, torch.Tensor)})

    channels = pipe.transformer.config.in_channels // 4
    side = size // int(pipe.vae_scale_factor)
    latents = torch.empty(1, channels, side, side, device=META, dtype=pipe.transformer.dtype)
    latents = pipe._pack_latents(latents, 1, channels, side, side)
    counter = FlopCounterMode(display=False)
    hook = pipe.transformer.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with counter, torch.inference_mode():
            pipe(prompt="a red fox in the snow", width=size, height=size, num_inference_steps=steps,
                 latents=latents, guidance_scale=0.0,
                 max_sequence_length=MAX_SEQUENCE_LENGTH["flux-schnell"], output_type="pt")
    finally:
        hook.remove()
    counts = counter.get_flop_counts()
    tflop = {part: sum(counts.get(module, {}).values()) / 1e12
             for module, part in _COUNTED_PARTS.items()}
    uncounted = counter.get_total_flops() / 1e12 - sum(tflop.values())
    if abs(uncounted) > 1e-9:
        tflop["elsewhere"] = uncounted
    inputs = calls[0]
    analytic = flux_tflop_per_step(pipe.transformer.config, inputs["hidden_states"][1],
                                   inputs["encoder_hidden_states"][1])
    return FlopCount(size, steps, len(calls), inputs, tflop, analytic)


def flop_lines(flops: FlopCount, peak: float | None, peak_name: str) -> list[str]:
    """The FLOP figures of one image and the hardware bound they set, as printed lines."""
    counted, analytic = flops.transformer_per_step, flops.analytic_per_step
    parts = [
        (f"transformer, {flops.transformer_calls} forwards", flops.tflop["transformer"]),
        (f"T5-XXL encoder, {flops.text_tokens} tokens", flops.tflop["text_encoder_2"]),
        ("CLIP-L text encoder, 77 tokens", flops.tflop["text_encoder"]),
        ("VAE decode", flops.tflop["vae decode"]),
    ]
    if "elsewhere" in flops.tflop:
        parts.append(("outside these parts", flops.tflop["elsewhere"]))
    parts.append(("whole image", flops.image))
    lines = [
        f"FLOPs counted by FlopCounterMode (matrix products and convolutions, 2 per multiply-add)"
        f" for one {flops.size}x{flops.size} image, {flops.steps} steps:",
        f"  {'transformer, per forward':<34} {counted:9.3f} TFLOP   analytic flux_tflop_per_step "
        f"{analytic:.3f} ({100 * (analytic - counted) / counted:+.4f}%)",
        *(f"  {label:<34} {tflop:9.3f} TFLOP" for label, tflop in parts),
    ]
    if peak:
        lines.append(
            f"hardware bound at {peak:.0f} TFLOP/s dense bf16 ({peak_name}): "
            f"{flops.tflop['transformer'] / peak:.3f} s/image for the transformer alone, "
            f"{flops.image / peak:.3f} s for the whole image")
    else:
        lines.append("hardware bound: unknown peak for this GPU (pass --peak-tflops)")
    return lines


def shapes(args: argparse.Namespace) -> None:
    """--shapes: the full-size pipeline on the meta device; parameters, inputs and FLOPs."""
    import diffusers
    import transformers

    print("FLUX.1-schnell at full size on torch's meta device: shapes and FLOPs only; no weights")
    print("are allocated, no GPU is used and nothing is timed.")
    started = time.perf_counter()
    pipe = build_flux(FULL_SIZE, META, torch.bfloat16)
    print(f"built by build_flux (the GPU mode's builder) in {time.perf_counter() - started:.0f}s; "
          f"torch {torch.__version__}, diffusers {diffusers.__version__}, "
          f"transformers {transformers.__version__}")
    counts = parameter_counts(pipe)
    dtypes = {p.dtype for name in counts for p in getattr(pipe, name).parameters()}
    devices = {p.device.type for name in counts for p in getattr(pipe, name).parameters()}
    print(f"parameters ({', '.join(sorted(map(str, dtypes)))} on {', '.join(sorted(devices))}):")
    for name, count in counts.items():
        print(f"  {name:<15} {type(getattr(pipe, name)).__name__:<23} {count:>15,}   "
              f"published ~{_short(PUBLISHED_PARAMETERS[name])}")
    total = sum(counts.values())
    print(f"  {'total':<39} {total:>15,}   {total * 2 / 1e9:.1f} GB in bfloat16")
    started = time.perf_counter()
    flops = count_flux_flops(pipe, args.size)
    print(f"transformer inputs at {args.size}x{args.size}, as the pipeline's own call passed them "
          f"(run on meta tensors in {time.perf_counter() - started:.0f}s):")
    for name, shape in flops.transformer_inputs.items():
        print(f"  {name:<22} {shape}")
    peak = args.peak_tflops or PEAK_BF16_TFLOPS["H100 SXM"]
    for line in flop_lines(flops, peak, "--peak-tflops" if args.peak_tflops else "H100 SXM"):
        print(line)


def _short(count: float) -> str:
    return f"{count / 1e9:g}B" if count >= 1e9 else f"{count / 1e6:g}M"


def time_images(generate: Callable[[], Any], runs: int, warmup: int, device: torch.device
                ) -> tuple[list[float], Any]:
    """Seconds per call of `generate` after `warmup` untimed calls, and the last call's result."""
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    for _ in range(warmup):
        generate()
    times = []
    result = None
    for _ in range(runs):
        sync()
        started = time.perf_counter()
        result = generate()
        sync()
        times.append(time.perf_counter() - started)
    return times, result


def request(engine: Engine, model: str, **fields: Any) -> GenerationParams:
    spec = Catalog().get(model)
    assert spec is not None
    return parse_body(spec, {"prompt": "a red fox in the snow", **fields}, engine.tables[model])


def row(label: str, times: list[float]) -> str:
    p50 = statistics.median(times)
    return (f"{label:<44} p50 {p50:8.3f} s   min {min(times):8.3f}   max {max(times):8.3f}"
            f"   n={len(times)}")


@dataclass
class FluxRun:
    """What time_flux measured: seconds per image of each row, and the last image it made."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    images: dict[str, Image.Image] = field(default_factory=dict)


def time_flux(
    configs: FluxConfigs,
    device: torch.device,
    dtype: torch.dtype,
    *,
    size: int,
    runs: int,
    warmup: int,
    compile_options: Mapping[str, Any] | None,
    say: Callable[[str], None] = print,
) -> FluxRun:
    """Build a flux-schnell pipeline from `configs` and time 4-step images through the worker.

    The worker's own path: LoadedModel, place_pipeline, Engine.generate (noise, scheduler,
    pipeline call, crop); eager, then with the transformer torch.compile'd with
    `compile_options` (None: eager only). The GPU mode calls this with the full-size configs,
    CUDA and bfloat16; tests/bench call it with tiny configs on the CPU.
    """
    started = time.perf_counter()
    engine = random_flux_engine(configs, device, dtype)
    built = f"built in {time.perf_counter() - started:.0f}s"
    if device.type == "cuda":
        built += f"; {torch.cuda.memory_allocated(device) / 2**30:.1f} GiB allocated"
    say(built)
    loaded = engine.models["flux-schnell"]
    # The size is set after parsing: the catalog's 512-2048 px is the HTTP contract's limit, and
    # the tests run this path at 64 px.
    params = replace(request(engine, "flux-schnell", steps=4), width=size, height=size)
    run = FluxRun()
    for compiled in [False] if compile_options is None else [False, True]:
        if compiled:
            loaded.denoiser.compile(**compile_options)
            started = time.perf_counter()
            engine.generate(params)
            say(f"first compiled image (compiling) took {time.perf_counter() - started:.0f}s")
        label = f"flux-schnell {size}px 4 steps {'compiled' if compiled else 'eager'}"
        times, images = time_images(lambda: engine.generate(params), runs, warmup, device)
        run.seconds[label], run.images[label] = times, images[-1]
        say(row(label, times))
    return run


def gpu_bench(args: argparse.Namespace) -> None:
    device = torch.device("cuda", torch.cuda.current_device())
    name = torch.cuda.get_device_name(device)
    print(f"GPU: {name}; torch {torch.__version__}; bf16; FLUX.1-schnell shapes, random weights")
    flops = count_flux_flops(build_flux(FULL_SIZE, META, torch.bfloat16), args.size)
    run = time_flux(FULL_SIZE, device, torch.bfloat16, size=args.size, runs=args.runs,
                    warmup=args.warmup,
                    compile_options=None if args.no_compile else {"mode": args.compile_mode})
    peak = args.peak_tflops or peak_tflops(name)
    for line in flop_lines(flops, peak, "--peak-tflops" if args.peak_tflops else name):
        print(line)
    best = min(statistics.median(t) for t in run.seconds.values())
    print(f"Replicate's published figure: {REPLICATE_S:.2f} s/image; target <= {TARGET_S:.2f} s")
    print(f"best p50 {best:.3f} s/image on {name}"
          + (f" = {flops.image / best:.0f} TFLOP/s achieved (whole image)" if best else ""))


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
            try:
                params = request(engine, model, width=args.size, height=args.size, **fields)
            except ParamError as error:  # the size is outside this model's HTTP contract
                print(f"tiny {model} skipped: {error}")
                continue
            times, _ = time_images(lambda p=params: engine.generate(p), args.runs, args.warmup,
                                   CPU)
            print(row(f"tiny {model} {args.size}px {params.steps} steps eager", times))
        if not args.no_compile:
            loaded = engine.models["flux-schnell"]
            loaded.denoiser.compile(mode=args.compile_mode)
            params = request(engine, "flux-schnell", width=args.size, height=args.size, steps=4)
            started = time.perf_counter()
            engine.generate(params)
            print(f"first compiled tiny flux-schnell image (compiles) took "
                  f"{time.perf_counter() - started:.0f}s")
            times, _ = time_images(lambda: engine.generate(params), args.runs, args.warmup, CPU)
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
                        help="the GPU's dense bf16 peak, when its name is not known here "
                             "(--shapes: the peak to bound with; default the H100 SXM's)")
    parser.add_argument("--shapes", action="store_true",
                        help="no GPU needed, nothing timed: build full-size FLUX.1-schnell on "
                             "torch's meta device, print its parameter counts, the transformer's "
                             "inputs and the FLOPs of one image counted by FlopCounterMode beside "
                             "the analytic formula")
    args = parser.parse_args()
    if args.shapes:
        shapes(args)
    elif torch.cuda.is_available():
        gpu_bench(args)
    else:
        cpu_bench(args)


if __name__ == "__main__":
    main()
