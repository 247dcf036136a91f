"""Real-size Stable Diffusion 1.5 built from its published configs with RANDOM weights (no download).

Speed and memory do not depend on the weights' values, so a random model measures what the
real one costs. Only the tokenizer is the tiny test one (its ids index the full 49,408-row
CLIP-L embedding table). The built pipeline is saved once under a cache folder (gitignored,
``benchmarks/results/models`` by default) and reused by later runs.

Parameter counts: UNet 859,520,964; VAE 83,653,863; CLIP-L text encoder 123,060,480.
The SDXL configs live in ``sdxl_memory.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_CACHE = Path(__file__).resolve().parent / "results" / "models"
CLIP_VOCAB = 49408

#: diffusers config of stable-diffusion-v1-5 unet/ (859,520,964 parameters).
SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "attention_head_dim": 8,
    "cross_attention_dim": 768,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}
#: diffusers config of the SD1.5 VAE (83,653,863 parameters).
SD15_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
#: CLIP ViT-L/14 text encoder (SD1.5's; 123,060,480 parameters with the full vocabulary).
CLIP_L: dict[str, Any] = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                          "num_attention_heads": 12, "hidden_act": "quick_gelu", "max_position_embeddings": 77}
#: SD1.5's PNDM sampler (training uses a DDPM scheduler from the same betas).
SD15_SCHEDULER: dict[str, Any] = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                                  "beta_schedule": "scaled_linear", "skip_prk_steps": True, "steps_offset": 1,
                                  "prediction_type": "epsilon"}


def _complete(folder: Path) -> bool:
    return (folder / ".complete").is_file()


def sd15_folder(cache: Path = DEFAULT_CACHE, *, seed: int = 0) -> Path:
    """The real-size random SD1.5 pipeline folder under ``cache`` (float32), built on first use."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from synthaug.diffusion._loading import quiet_libraries
    from synthaug.diffusion._testing import tiny_clip_tokenizer

    folder = Path(cache) / "sd15-random"
    if _complete(folder):
        return folder
    torch.manual_seed(seed)
    tokenizer = tiny_clip_tokenizer()
    text_config = CLIPTextConfig(vocab_size=CLIP_VOCAB, bos_token_id=tokenizer.bos_token_id,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **CLIP_L)
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**SD15_VAE), text_encoder=CLIPTextModel(text_config), tokenizer=tokenizer,
        unet=UNet2DConditionModel(**SD15_UNET), scheduler=PNDMScheduler(**SD15_SCHEDULER),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    with quiet_libraries():
        pipe.save_pretrained(folder, safe_serialization=True)
    (folder / ".complete").write_text("random weights from benchmarks/real_models.py\n")
    return folder


def parameter_count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())
