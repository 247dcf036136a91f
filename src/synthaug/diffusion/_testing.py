"""Tiny random Stable Diffusion pipelines written to disk, for tests without downloads.

:func:`tiny_sd15`, :func:`tiny_sdxl`, :func:`tiny_sd3` and :func:`tiny_flux` build pipelines
with the same components and configuration keys as the real SD1.5 / SDXL / SD3.5 / FLUX.1
checkpoints but a few thousand parameters, with a hand-written CLIP byte-level BPE vocabulary
(and a tiny T5 Unigram vocabulary), and ``save_pretrained`` them into a folder.
Load the folder with the normal code path (``base_model=<folder>``). Building takes about a
second on a CPU; calling again on an existing complete folder returns at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

__all__ = ["TINY_WORDS", "tiny_clip_tokenizer", "tiny_vae", "tiny_flux", "tiny_sd3", "tiny_sd15", "tiny_sdxl", "tiny_t5_tokenizer"]

#: Whole words the tiny vocabulary knows as single tokens (everything else is spelled out).
TINY_WORDS: tuple[str, ...] = (
    "a", "an", "of", "the", "image", "photo", "dermoscopic", "skin", "lesion", "class",
    "melanoma", "nevus", "blurry", "low", "quality", "cartoon", "text", "watermark",
)
_MARKER = "model_index.json"


def _bytes_to_unicode() -> dict[int, str]:
    """The reversible byte -> printable-character table of GPT-2/CLIP byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def _vocab_and_merges(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    symbols = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in words:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            merged = current + piece
            if merged not in vocab:
                merges.append((current, piece))
                vocab[merged] = len(vocab)
            current = merged
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return vocab, merges


def tiny_clip_tokenizer(words: Iterable[str] = TINY_WORDS, *, pad_token: str | None = None):
    """A CLIP tokenizer over a tiny byte-level BPE vocabulary (``words`` are single tokens)."""
    from transformers import CLIPTokenizer

    vocab, merges = _vocab_and_merges(words)
    kwargs = {"pad_token": pad_token} if pad_token else {}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77, **kwargs)


def _is_complete(path: Path, pipeline_class: str) -> bool:
    marker = path / _MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("_class_name") == pipeline_class
    except ValueError:
        return False


def tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    )


def _tiny_text_config(vocab_size: int, *, projection_dim: int | None = None):
    from transformers import CLIPTextConfig

    extra = {"projection_dim": projection_dim} if projection_dim else {}
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        **extra,
    )


def _ddpm_scheduler(prediction_type: str):
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


def _save(pipe, path: Path) -> None:
    from ._loading import quiet_libraries

    with quiet_libraries():
        pipe.save_pretrained(path, safe_serialization=True)


def tiny_sd15(path: str | Path, *, seed: int = 0, prediction_type: str = "epsilon") -> Path:
    """Write a tiny random SD1.5-like ``StableDiffusionPipeline`` to ``path``; return ``path``.

    ``prediction_type`` is ``"epsilon"`` (SD1.5) or ``"v_prediction"`` (SD2-style).
    The folder loads with ``StableDiffusionPipeline.from_pretrained(path)``.
    """
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    path = Path(path)
    if _is_complete(path, "StableDiffusionPipeline"):
        return path
    torch.manual_seed(seed)
    tokenizer = tiny_clip_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=32,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    pipe = StableDiffusionPipeline(
        vae=tiny_vae(),
        text_encoder=CLIPTextModel(_tiny_text_config(len(tokenizer))),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_ddpm_scheduler(prediction_type),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    _save(pipe, path)
    return path


def tiny_sdxl(path: str | Path, *, seed: int = 0, prediction_type: str = "epsilon") -> Path:
    """Write a tiny random SDXL-like ``StableDiffusionXLPipeline`` to ``path``; return ``path``.

    Two tokenizers and text encoders (the second with a projection, giving pooled
    embeddings), a UNet with ``addition_embed_type="text_time"``: the real SDXL wiring.
    """
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    path = Path(path)
    if _is_complete(path, "StableDiffusionXLPipeline"):
        return path
    torch.manual_seed(seed)
    tokenizer = tiny_clip_tokenizer()
    tokenizer_2 = tiny_clip_tokenizer(pad_token="!")
    unet = UNet2DConditionModel(
        sample_size=32,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 * 8 time ids + 32 pooled text
        cross_attention_dim=64,
        norm_num_groups=32,
    )
    pipe = StableDiffusionXLPipeline(
        vae=tiny_vae(),
        text_encoder=CLIPTextModel(_tiny_text_config(len(tokenizer))),
        text_encoder_2=CLIPTextModelWithProjection(_tiny_text_config(len(tokenizer_2), projection_dim=32)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=_ddpm_scheduler(prediction_type),
        add_watermarker=False,
    )
    _save(pipe, path)
    return path


# -- flow-matching transformer pipelines (SD3.5, FLUX.1) --------------------------------------
def tiny_t5_tokenizer(words: Iterable[str] = TINY_WORDS):
    """A T5 tokenizer over a tiny Unigram vocabulary (``words`` are single pieces; the rest is spelled out).

    T5's layout: ``<pad>``=0, ``</s>``=1, ``<unk>``=2, then the pieces; no sentinel tokens.
    """
    from transformers import T5TokenizerFast

    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(f"\u2581{w}", -1.0) for w in dict.fromkeys(words)]
    pieces += [(f"\u2581{c}", -4.0) for c in letters] + [(c, -5.0) for c in letters]
    return T5TokenizerFast(vocab=pieces, extra_ids=0)


def _tiny_t5(vocab_size: int, d_model: int):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))


def _tiny_flow_vae(*, scaling_factor: float, shift_factor: float):
    """The SD3/FLUX VAE wiring (no quant convs, a shift factor) at test size, 4 latent channels."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(32, 64), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4, norm_num_groups=32, sample_size=64, use_quant_conv=False, use_post_quant_conv=False,
        scaling_factor=scaling_factor, shift_factor=shift_factor,
    )


def tiny_sd3(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random SD3.5-like ``StableDiffusion3Pipeline`` to ``path``; return ``path``.

    The real wiring: two CLIP text encoders with projections (pooled embeddings), a T5 encoder,
    an ``SD3Transformer2DModel`` with SD3.5's dual-attention layer and RMS query/key norm, a
    VAE with a shift factor (4 latent channels instead of 16) and a
    ``FlowMatchEulerDiscreteScheduler`` with SD3's shift of 3. Load it with
    ``StableDiffusion3Pipeline.from_pretrained(path)``.
    """
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    path = Path(path)
    if _is_complete(path, "StableDiffusion3Pipeline"):
        return path
    torch.manual_seed(seed)
    tokenizer, tokenizer_2, tokenizer_3 = tiny_clip_tokenizer(), tiny_clip_tokenizer(pad_token="!"), tiny_t5_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=4, out_channels=4, num_layers=2, attention_head_dim=8,
        num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=64,  # = the T5 width
        pooled_projection_dim=64,  # both CLIP projections, concatenated
        pos_embed_max_size=32, dual_attention_layers=(0,), qk_norm="rms_norm",
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        vae=_tiny_flow_vae(scaling_factor=1.5305, shift_factor=0.0609),
        text_encoder=CLIPTextModelWithProjection(_tiny_text_config(len(tokenizer), projection_dim=32)),
        tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(_tiny_text_config(len(tokenizer_2), projection_dim=32)),
        tokenizer_2=tokenizer_2,
        text_encoder_3=_tiny_t5(len(tokenizer_3), d_model=64),
        tokenizer_3=tokenizer_3,
    )
    _save(pipe, path)
    return path


def tiny_flux(path: str | Path, *, seed: int = 0, guidance_embeds: bool = True) -> Path:
    """Write a tiny random FLUX.1-like ``FluxPipeline`` to ``path``; return ``path``.

    The real wiring: a CLIP text encoder (pooled embedding), a T5 encoder (token embeddings),
    a ``FluxTransformer2DModel`` with double- and single-stream blocks and 3-axis RoPE over
    2x2-packed latents, a VAE with a shift factor and the resolution-dependent shift of the
    ``FlowMatchEulerDiscreteScheduler``. ``guidance_embeds=True`` is FLUX.1-dev (guidance
    distilled: the guidance scale is an input of the transformer); ``False`` is FLUX.1-schnell.
    """
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    path = Path(path)
    if _is_complete(path, "FluxPipeline"):
        return path
    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = tiny_clip_tokenizer(), tiny_t5_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16,  # 4 latent channels, 2x2-packed
        num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=guidance_embeds, axes_dims_rope=(4, 4, 8),
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
        base_image_seq_len=256, max_image_seq_len=4096,
    )
    pipe = FluxPipeline(
        scheduler=scheduler,
        vae=_tiny_flow_vae(scaling_factor=0.3611, shift_factor=0.1159),
        text_encoder=CLIPTextModel(_tiny_text_config(len(tokenizer))),
        tokenizer=tokenizer,
        text_encoder_2=_tiny_t5(len(tokenizer_2), d_model=32),
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )
    _save(pipe, path)
    return path
