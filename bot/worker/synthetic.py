"""Random-weight pipelines built from configs, offline: for the tests and the CPU benchmark.

Nothing here downloads. Tokenizers are trained on a few sentences with the `sentencepiece`
and `tokenizers` libraries; models get random weights from small configs (the sizes of
diffusers' own fast tests, with a VAE that downsamples 32x so that 512-2048 px images stay
cheap on a CPU). `save_tiny_pipeline` writes a folder that `from_pretrained` loads exactly
like a real model folder, so the worker's loading path is the one under test.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

CORPUS = (
    "a red fox in the snow at dawn",
    "a painting of a squirrel eating a burger",
    "close-up portrait of a young knight in shining armor, dramatic lighting",
    "a bengal tiger in an astronaut suit on mars, cubist style",
    "three boys laughing in an agave field, warm 2d illustration",
    "the quick brown fox jumps over the lazy dog",
    "low quality, ugly, deformed, blurry, bad anatomy",
    "a lighthouse on a cliff under a starry sky, oil on canvas",
)

TINY_MODELS = ("flux-schnell", "chroma", "kolors")
# VAE levels: 2 ** (levels - 1) is the VAE's downscale factor (32 here, 8 in the real models).
_VAE_LEVELS = 6


def sentencepiece_model() -> bytes:
    """A small unigram sentencepiece model trained on CORPUS (bytes of a .model file)."""
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 8), model_writer=buffer, vocab_size=200,
        hard_vocab_limit=False, model_type="unigram", character_coverage=1.0,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
    )
    return buffer.getvalue()


def t5_tokenizer(sp_model: bytes) -> Any:
    """A T5 tokenizer whose vocabulary is the sentencepiece model's pieces and scores."""
    import sentencepiece as spm
    from transformers import T5Tokenizer

    sp = spm.SentencePieceProcessor(model_proto=sp_model)
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.vocab_size())]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def clip_tokenizer() -> Any:
    """A CLIP BPE tokenizer trained on CORPUS with the `tokenizers` library."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    bpe = Tokenizer(models.BPE(unk_token="<|endoftext|>", end_of_word_suffix="</w>"))
    bpe.normalizer = normalizers.Lowercase()
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|startoftext|>", "<|endoftext|>"],
        end_of_word_suffix="</w>", show_progress=False,
    )
    bpe.train_from_iterator(CORPUS, trainer)
    model = json.loads(bpe.to_str())["model"]
    return CLIPTokenizer(
        # Annotated list[str], but the tokenizer takes the (left, right) pairs the trainer made.
        vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]],  # type: ignore[misc]
        model_max_length=77
    )


def _vae(latent_channels: int, **extra: Any) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=latent_channels,
        block_out_channels=(4,) * _VAE_LEVELS, layers_per_block=1, norm_num_groups=1,
        down_block_types=("DownEncoderBlock2D",) * _VAE_LEVELS,
        up_block_types=("UpDecoderBlock2D",) * _VAE_LEVELS,
        sample_size=256, **extra,
    )


def _t5_encoder(vocab_size: int) -> Any:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab_size, d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2,
        relative_attention_num_buckets=8, dropout_rate=0.0, pad_token_id=0, eos_token_id=1,
    )
    return T5EncoderModel(config).eval()


def tiny_flux() -> Any:
    """A FluxPipeline (schnell layout: no guidance embedding) with random weights."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tokenizer_2 = t5_tokenizer(sentencepiece_model())
    tokenizer = clip_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8], guidance_embeds=False,
    )
    clip_config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, projection_dim=32, max_position_embeddings=77, hidden_act="gelu",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False, shift=1.0),
        vae=_vae(1, use_quant_conv=False, use_post_quant_conv=False,
                 shift_factor=0.1159, scaling_factor=0.3611),
        text_encoder=CLIPTextModel(clip_config).eval(), tokenizer=tokenizer,
        text_encoder_2=_t5_encoder(len(tokenizer_2)), tokenizer_2=tokenizer_2,
        transformer=transformer,
    )


def tiny_chroma() -> Any:
    """A ChromaPipeline with random weights."""
    import torch
    from diffusers import ChromaPipeline, ChromaTransformer2DModel, FlowMatchEulerDiscreteScheduler

    torch.manual_seed(0)
    tokenizer = t5_tokenizer(sentencepiece_model())
    transformer = ChromaTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, axes_dims_rope=[4, 4, 8],
        approximator_hidden_dim=32, approximator_layers=1, approximator_num_channels=16,
    )
    return ChromaPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
        vae=_vae(1, use_quant_conv=False, use_post_quant_conv=False,
                 shift_factor=0.1159, scaling_factor=0.3611),
        text_encoder=_t5_encoder(len(tokenizer)), tokenizer=tokenizer,
        transformer=transformer, image_encoder=None, feature_extractor=None,
    )


def tiny_kolors(tmp_dir: Path) -> Any:
    """A KolorsPipeline (ChatGLM text encoder, SDXL-style UNet) with random weights."""
    import torch
    from diffusers import EulerDiscreteScheduler, KolorsPipeline, UNet2DConditionModel
    from diffusers.pipelines.kolors import ChatGLMModel, ChatGLMTokenizer
    from diffusers.pipelines.kolors.text_encoder import ChatGLMConfig

    torch.manual_seed(0)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    vocab_file = tmp_dir / "tokenizer.model"
    vocab_file.write_bytes(sentencepiece_model())
    tokenizer = ChatGLMTokenizer(vocab_file=str(vocab_file))
    text_config = ChatGLMConfig(
        num_layers=2, padded_vocab_size=len(tokenizer.get_vocab()) + 8, hidden_size=16,
        ffn_hidden_size=32, kv_channels=8, num_attention_heads=2, seq_length=256,
        multi_query_attention=True, multi_query_group_num=1, add_qkv_bias=True, original_rope=True,
    )
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=32, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=6 * 8 + 16,
        cross_attention_dim=16, norm_num_groups=1,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.014, beta_schedule="scaled_linear",
        num_train_timesteps=1100, steps_offset=1, timestep_spacing="leading",
    )
    return KolorsPipeline(
        vae=_vae(4, scaling_factor=0.13025), text_encoder=_initialised(ChatGLMModel(text_config)),
        tokenizer=tokenizer, unet=unet, scheduler=scheduler, image_encoder=None,
        feature_extractor=None, force_zeros_for_empty_prompt=False,
    )


def _initialised(module: Any, std: float = 0.2) -> Any:
    """Fill every parameter: ChatGLM's constructor leaves its weights uninitialised."""
    import torch

    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.ndim == 1 and "norm" in name:
                param.fill_(1.0)
            elif param.ndim == 1:
                param.zero_()
            else:
                param.normal_(0.0, std)
    return module.eval()


def save_tiny_pipeline(model: str, folder: Path) -> Path:
    """Build the tiny pipeline for `model` and save_pretrained it into `folder`."""
    if model == "flux-schnell":
        pipeline = tiny_flux()
    elif model == "chroma":
        pipeline = tiny_chroma()
    elif model == "kolors":
        pipeline = tiny_kolors(folder.parent / f".{folder.name}-build")
    else:
        raise ValueError(f"no tiny pipeline for {model!r}; one of {', '.join(TINY_MODELS)}")
    pipeline.save_pretrained(folder)
    return folder


class FixedLatencyPipeline:
    """A stand-in for FluxPipeline that sleeps `latency_s` per image and paints it grey.

    For benchmarks of the serving layer (bench/fleet.py): the Engine drives it exactly as it
    drives a real pipeline (noise, packing, a fresh scheduler, the call, the crop), so what a
    benchmark measures beyond latency_s x images is ours and Ray's, not the model's.
    """

    vae_scale_factor = 8
    _execution_device = "cpu"

    def __init__(self, latency_s: float) -> None:
        from types import SimpleNamespace

        self.latency_s = latency_s
        self.transformer = SimpleNamespace(config=SimpleNamespace(in_channels=64))
        self.scheduler: Any = None

    @staticmethod
    def _pack_latents(latents: Any, batch_size: int, channels: int, height: int, width: int
                      ) -> Any:
        # FluxPipeline._pack_latents: 2x2 patches of the latent image become one token.
        latents = latents.view(batch_size, channels, height // 2, 2, width // 2, 2)
        latents = latents.permute(0, 2, 4, 1, 3, 5)
        return latents.reshape(batch_size, (height // 2) * (width // 2), channels * 4)

    def __call__(self, *, prompt: str | list[str], width: int, height: int, **_: Any) -> Any:
        """Sleep latency_s per image, then answer one grey image per prompt."""
        import time
        from types import SimpleNamespace

        from PIL import Image

        count = 1 if isinstance(prompt, str) else len(prompt)
        time.sleep(self.latency_s * count)
        return SimpleNamespace(images=[Image.new("RGB", (width, height), (128, 128, 128))
                                       for _ in range(count)])


class FixedLatencyLoader:
    """Builds an Engine whose flux-schnell is a FixedLatencyPipeline (picklable, for Ray)."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s

    def __call__(self, model: str) -> Any:
        """The Engine for `model` (any name; it is served as given) on the CPU."""
        import torch
        from diffusers import FlowMatchEulerDiscreteScheduler

        from bot.worker.pipelines import Engine, LoadedModel

        scheduler: Any = FlowMatchEulerDiscreteScheduler(shift=1.0)  # its config is set at init
        config = dict(scheduler.config)
        loaded = LoadedModel(model, FixedLatencyPipeline(self.latency_s), config)
        return Engine({model: loaded}, torch.device("cpu"), torch.float32)
