"""The resident pipelines and one generation: FluxPipeline, ChromaPipeline, KolorsPipeline.

Each pipeline is loaded once with from_pretrained (a local folder or a hub id, see sources.py)
and stays on its device: bfloat16 on CUDA, float32 on the CPU. Options for small GPUs: model
CPU offload, attention slicing and VAE tiling; torch.compile of the denoiser, with a warm-up
generation per model at start. `Engine.generate` is blocking and is meant to run on the one
thread that owns the GPU (see queue.py); it makes the samples one by one, each from its own
seed, so sample i of a request is the image that seed+i gives alone. `Engine.generate_batch`
(used by the Ray Serve fleet) makes the images of several compatible requests in one pipeline
call, each from its own seed's starting noise; only requests with equal `batch_key`s share one.
"""

from __future__ import annotations

import gc
import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from PIL import Image

from bot.core.catalog import Catalog
from bot.worker.contract import GenerationCancelled, OutOfMemory
from bot.worker.noise import starting_noise
from bot.worker.params import GenerationParams, batch_key, parse_body
from bot.worker.samplers import FLOW_MODELS, table_for
from bot.worker.sources import EngineOptions, ModelSource, SourceError

log = logging.getLogger("bot.worker")

MAX_SEQUENCE_LENGTH = {"flux-schnell": 256, "chroma": 512, "kolors": 256}
DEFAULT_OPTIONS = EngineOptions()

# One image of a pipeline call: the request it belongs to, its seed and its variation seed.
_Row = tuple[GenerationParams, int, int | None]


@dataclass
class LoadedModel:
    """One resident pipeline and what generation needs to know about it."""

    name: str
    pipeline: Any
    scheduler_config: Mapping[str, Any]

    @property
    def is_flow(self) -> bool:
        return self.name in FLOW_MODELS

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.pipeline.transformer if self.is_flow else self.pipeline.unet

    @property
    def granularity(self) -> int:
        """Pixel multiple the pipeline works in (the VAE's factor, times 2 for packed latents)."""
        factor = int(self.pipeline.vae_scale_factor)
        return factor * 2 if self.is_flow else factor

    def latent_shape(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The unpacked latent shape for one image of width x height (multiples of granularity)."""
        factor = int(self.pipeline.vae_scale_factor)
        if self.is_flow:
            channels = self.pipeline.transformer.config.in_channels // 4
        else:
            channels = self.pipeline.unet.config.in_channels
        return (1, channels, height // factor, width // factor)


@dataclass
class _Stats:
    images: int = 0
    seconds: float = 0.0


def pick_device(options: EngineOptions) -> tuple[torch.device, torch.dtype]:
    """The device to run on and its dtype: bfloat16 on CUDA, float32 on the CPU."""
    name = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device, (torch.bfloat16 if device.type == "cuda" else torch.float32)


def load_pipeline(source: ModelSource, dtype: torch.dtype) -> Any:
    """from_pretrained for the model's pipeline class; load failures become SourceError."""
    import diffusers

    cls = getattr(diffusers, source.pipeline_class)
    try:
        pipeline = cls.from_pretrained(source.location, dtype=dtype)
    except (OSError, ValueError, ImportError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise SourceError(
            f"{source.model}: could not load {source.location}: {type(exc).__name__}: {first}"
        ) from None
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


class Engine:
    """The loaded models of one worker process and the blocking generate() call."""

    def __init__(
        self,
        models: Mapping[str, LoadedModel],
        device: torch.device,
        dtype: torch.dtype,
        options: EngineOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.models = dict(models)
        self.device = device
        self.dtype = dtype
        self.options = options
        self.catalog = Catalog()
        self.tables = {name: table_for(name) for name in self.models}
        self._stats = {name: _Stats() for name in self.models}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, sources: Mapping[str, ModelSource], options: EngineOptions = DEFAULT_OPTIONS
             ) -> Engine:
        """Load every pipeline once, place it, apply the options; raises SourceError."""
        device, dtype = pick_device(options)
        models: dict[str, LoadedModel] = {}
        for name, source in sources.items():
            log.info("loading %s from %s (%s, %s)", name, source.location, device, dtype)
            pipeline = load_pipeline(source, dtype)
            models[name] = LoadedModel(name, pipeline, dict(pipeline.scheduler.config))
            place_pipeline(models[name], device, options)
        return cls(models, device, dtype, options)

    # --- what /health reports -----------------------------------------------------------------

    @property
    def device_name(self) -> str:
        """The device, with the GPU's name on CUDA."""
        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        return str(self.device)

    def seconds_per_image(self) -> dict[str, float]:
        """Mean seconds per image for each model that has made one."""
        with self._lock:
            return {m: s.seconds / s.images for m, s in self._stats.items() if s.images}

    def images_made(self) -> dict[str, int]:
        """Images made per model since start."""
        with self._lock:
            return {m: s.images for m, s in self._stats.items()}

    # --- generation ---------------------------------------------------------------------------

    def generate(
        self, params: GenerationParams, is_cancelled: Callable[[], bool] = lambda: False
    ) -> list[Image.Image]:
        """Make params.samples images; raises GenerationCancelled or OutOfMemory."""
        loaded = self.models[params.model]
        images = []
        out_of_memory = False
        try:
            for seed, variation_seed in zip(params.seeds(), params.variation_seeds(), strict=True):
                started = time.perf_counter()
                images.append(self._one(loaded, params, seed, variation_seed, is_cancelled))
                self._record(params.model, time.perf_counter() - started)
        except Exception as exc:
            if not _is_out_of_memory(exc):
                raise
            out_of_memory = True
        if out_of_memory:  # out of the except block: the failed call's tensors are free now
            self._out_of_memory(params)
        return images

    def generate_batch(
        self, batch: Sequence[GenerationParams], is_cancelled: Callable[[], bool] = lambda: False
    ) -> list[list[Image.Image]]:
        """Every image of `batch` in one pipeline call; each request's images, in order.

        The requests must share a batch_key (ValueError otherwise); image i of a request is
        made from seed+i's starting noise, as generate() makes it alone."""
        keys = {batch_key(params) for params in batch}
        if not batch or len(keys) != 1 or None in keys:
            raise ValueError("generate_batch needs requests that share one batch_key")
        first = batch[0]
        rows: list[_Row] = [
            (params, seed, variation_seed) for params in batch
            for seed, variation_seed in zip(params.seeds(), params.variation_seeds(), strict=True)
        ]
        out_of_memory = False
        try:
            started = time.perf_counter()
            images = self._call(self.models[first.model], rows, is_cancelled)
            each = (time.perf_counter() - started) / len(rows)
            for _ in rows:
                self._record(first.model, each)
        except Exception as exc:
            if not _is_out_of_memory(exc):
                raise
            out_of_memory = True
        if out_of_memory:
            self._out_of_memory(first)
        answers, start = [], 0
        for params in batch:
            answers.append(images[start:start + params.samples])
            start += params.samples
        return answers

    def _out_of_memory(self, params: GenerationParams) -> None:
        """Free what the failed call held and raise the client's sentence."""
        self._free_memory()
        raise OutOfMemory(
            f"The worker's {self.device.type.upper()} ran out of memory making a "
            f"{params.width}x{params.height} {params.model} image; try a smaller size, "
            f"or start the worker with --cpu-offload or --vae-tiling."
        )

    def warm_up(self) -> None:
        """One short generation per model (compiles the denoiser when --compile is on)."""
        for name, loaded in self.models.items():
            spec = self.catalog.get(name)
            assert spec is not None
            table = self.tables[name]
            body = {"prompt": "warm-up"}
            if spec.default_sampler not in table.samplers:  # its package is missing
                body["sampler_name"] = table.samplers[0]
            if spec.default_scheduler not in table.schedules:
                body["scheduler"] = table.schedules[0]
            params = replace(parse_body(spec, body, table), steps=2)
            started = time.perf_counter()
            self._one(loaded, params, params.seed, None, lambda: False)
            log.info("warm-up of %s took %.1fs", name, time.perf_counter() - started)

    def _one(
        self,
        loaded: LoadedModel,
        params: GenerationParams,
        seed: int,
        variation_seed: int | None,
        is_cancelled: Callable[[], bool],
    ) -> Image.Image:
        return self._call(loaded, [(params, seed, variation_seed)], is_cancelled)[0]

    def _call(
        self, loaded: LoadedModel, rows: Sequence[_Row], is_cancelled: Callable[[], bool]
    ) -> list[Image.Image]:
        """One pipeline call making one image per row; the rows share every setting but
        prompt, negative prompt, seed and variation (the first row's settings are used)."""
        if is_cancelled():
            raise GenerationCancelled
        params, seed, _ = rows[0]
        pipe = loaded.pipeline
        step = loaded.granularity
        width, height = -(-params.width // step) * step, -(-params.height // step) * step
        shape = loaded.latent_shape(width, height)
        latents = torch.cat([
            starting_noise(row_seed, shape, row_variation, row.variation_strength)
            for row, row_seed, row_variation in rows
        ])
        if loaded.is_flow:
            latents = pipe._pack_latents(latents, len(rows), shape[1], shape[2], shape[3])
        latents = latents.to(device=pipe._execution_device, dtype=self.dtype)
        pipe.scheduler = _scheduler(loaded, params, seed)
        one = len(rows) == 1  # a single image keeps the exact call it always had

        def on_step(_pipe: Any, _i: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            if is_cancelled():
                raise GenerationCancelled
            return kwargs

        generators = [torch.Generator("cpu").manual_seed(row_seed) for _, row_seed, _ in rows]
        call: dict[str, Any] = {
            "prompt": params.prompt if one else [row.prompt for row, _, _ in rows],
            "width": width, "height": height,
            "num_inference_steps": params.steps, "latents": latents,
            "generator": generators[0] if one else generators,
            "max_sequence_length": MAX_SEQUENCE_LENGTH[params.model],
            "callback_on_step_end": on_step, "output_type": "pil",
        }
        if params.model == "flux-schnell":
            call["guidance_scale"] = 0.0
        else:
            call["guidance_scale"] = params.cfg
            negatives = [row.negative_prompt for row, _, _ in rows]
            call["negative_prompt"] = params.negative_prompt if one or None in negatives else negatives
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)  # noise that samplers draw per step (euler_a) follows the seed
            images = pipe(**call).images
        return [_crop(image, params.width, params.height) for image in images]

    def _record(self, model: str, seconds: float) -> None:
        with self._lock:
            stats = self._stats[model]
            stats.images += 1
            stats.seconds += seconds

    def _free_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def place_pipeline(loaded: LoadedModel, device: torch.device, options: EngineOptions) -> None:
    """Move a pipeline to its device (or offload it) and apply the memory and speed options."""
    pipe = loaded.pipeline
    if options.cpu_offload and device.type == "cuda":
        pipe.enable_model_cpu_offload(device=device)
    else:
        if options.cpu_offload:
            log.warning("--cpu-offload needs a CUDA GPU; %s stays on %s", loaded.name, device)
        pipe.to(device)
    if options.attention_slicing:
        pipe.enable_attention_slicing()
    if options.vae_tiling:
        pipe.vae.enable_tiling()
    if options.compile:
        loaded.denoiser.compile()


def _scheduler(loaded: LoadedModel, params: GenerationParams, seed: int) -> Any:
    """A fresh scheduler per image (no state carried between requests)."""
    import diffusers

    cls = getattr(diffusers, params.scheduler_class)
    overrides = dict(params.scheduler_overrides)
    if "noise_sampler_seed" in inspect.signature(cls.__init__).parameters:
        overrides["noise_sampler_seed"] = seed  # DPMSolverSDE's Brownian tree follows the seed
    return cls.from_config(dict(loaded.scheduler_config), **overrides)


def _crop(image: Image.Image, width: int, height: int) -> Image.Image:
    """The centre width x height of an image made on the pipeline's coarser grid."""
    if image.size == (width, height):
        return image
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError | MemoryError) and (
        "out of memory" in text or "can't allocate memory" in text
        or isinstance(exc, MemoryError)
    )

