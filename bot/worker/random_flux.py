"""FLUX.1-schnell with random weights, at its published size or shrunk; nothing downloaded.

What the GPU benchmarks time: bench/worker.py builds it in its own process, bench/fleet.py in
every replica (RandomFluxLoader). The configs below are the published ones; the tokenizers are
local stand-ins (bot.worker.synthetic) that pad prompts to the real ones' lengths, so every
part gets the inputs of the real model's shapes. TINY is the same pipeline shrunk to one block
of each kind, 16 to 32 wide: the same code on a CPU in seconds, for tests and dry runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from bot.worker.pipelines import Engine, LoadedModel, pick_device, place_pipeline
from bot.worker.sources import EngineOptions

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


@dataclass(frozen=True)
class FluxConfigs:
    """The keyword arguments a FluxPipeline's parts are built from (diffusers / transformers)."""

    transformer: Mapping[str, Any]  # FluxTransformer2DModel
    vae: Mapping[str, Any]  # AutoencoderKL
    clip_text: Mapping[str, Any]  # CLIPTextConfig
    t5: Mapping[str, Any]  # T5Config (encoder only)
    scheduler: Mapping[str, Any]  # FlowMatchEulerDiscreteScheduler


FULL_SIZE = FluxConfigs(FLUX_TRANSFORMER, FLUX_VAE, CLIP_TEXT, T5_XXL, FLUX_SCHEDULER)
TINY = FluxConfigs(
    transformer={**FLUX_TRANSFORMER, "in_channels": 16, "num_layers": 1, "num_single_layers": 1,
                 "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 32,
                 "pooled_projection_dim": 32, "axes_dims_rope": [4, 6, 6]},
    vae={**FLUX_VAE, "latent_channels": 4, "block_out_channels": [8, 8, 8, 8],
         "layers_per_block": 1, "norm_num_groups": 4},
    clip_text={**CLIP_TEXT, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
               "num_attention_heads": 4, "projection_dim": 32},
    t5={**T5_XXL, "d_model": 32, "d_ff": 37, "d_kv": 8, "num_heads": 4, "num_layers": 2},
    scheduler=FLUX_SCHEDULER,
)


def build_flux(configs: FluxConfigs, device: torch.device, dtype: torch.dtype) -> Any:
    """A FluxPipeline built from `configs` with random weights of `dtype`, created on `device`.

    On the meta device the parts have their shapes and dtypes but no memory behind them, so the
    full-size pipeline (34 GB in bfloat16) builds anywhere in seconds. The tokenizers are local
    stand-ins (bot.worker.synthetic) that pad prompts to the same lengths as the real ones.
    """
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from bot.worker.synthetic import clip_tokenizer, sentencepiece_model, t5_tokenizer

    tokenizer = clip_tokenizer()
    tokenizer_2 = t5_tokenizer(sentencepiece_model())
    clip_config = CLIPTextConfig(  # pools at the stand-in tokenizer's end-of-text token
        **{**configs.clip_text, "bos_token_id": tokenizer.bos_token_id,
           "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id})
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            pipe: Any = FluxPipeline(
                scheduler=FlowMatchEulerDiscreteScheduler(**configs.scheduler),
                vae=AutoencoderKL(**configs.vae),
                text_encoder=CLIPTextModel(clip_config).eval(),
                tokenizer=tokenizer,
                text_encoder_2=T5EncoderModel(T5Config(**configs.t5)).eval(),
                tokenizer_2=tokenizer_2,
                transformer=FluxTransformer2DModel(**configs.transformer),
            )
    finally:
        torch.set_default_dtype(previous)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def random_flux_engine(configs: FluxConfigs, device: torch.device, dtype: torch.dtype
                       ) -> Engine:
    """An Engine serving flux-schnell from build_flux(configs), placed as the worker places a
    loaded model (LoadedModel, place_pipeline): the worker's own generate path around it."""
    pipe = build_flux(configs, device, dtype)
    loaded = LoadedModel("flux-schnell", pipe, dict(pipe.scheduler.config))
    place_pipeline(loaded, device, EngineOptions())
    return Engine({"flux-schnell": loaded}, device, dtype)


@dataclass(frozen=True)
class RandomFluxLoader:
    """A fleet loader (picklable, for Ray): flux-schnell with random weights on the replica's
    device, as Engine.load picks it (its GPU in bfloat16, else the CPU in float32)."""

    configs: FluxConfigs = FULL_SIZE

    def __call__(self, model: str) -> Engine:
        """The Engine serving flux-schnell, the one model this loader builds."""
        if model != "flux-schnell":
            raise ValueError(f"RandomFluxLoader builds flux-schnell only, not {model!r}")
        device, dtype = pick_device(EngineOptions())
        return random_flux_engine(self.configs, device, dtype)
