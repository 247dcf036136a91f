"""Analytic GPU memory of LoRA / QLoRA training on SD3.5 and FLUX.1 at 1024 px (target: FLUX.1-dev <= 16 GiB).

Builds the full-size transformer denoisers of SD3.5 Medium, SD3.5 Large and FLUX.1-dev, and
their T5-XXL / CLIP text encoders and VAE, from the configs written below, with RANDOM weights
on PyTorch's ``meta`` device (no memory, no download). It then counts, component by component:

- the frozen transformer: bfloat16 (2 bytes a parameter), or NF4 (``quantize_base=nf4``: every
  ``nn.Linear`` weight in 4 bits plus its block-wise quantization constants; with bitsandbytes'
  double quantization about 0.127 bits a parameter; biases, norms and embeddings stay bfloat16);
- the LoRA parameters (float32), their gradients (float32) and the optimizer state (8-bit AdamW:
  2 bytes a parameter, float32 for tensors under 4,096 elements; AdamW: 8 bytes);
- activations of one training step from a ``meta``-device forward pass with hooks: under
  gradient checkpointing, the inputs of every checkpointed block (diffusers checkpoints each
  ``JointTransformerBlock`` / ``FluxTransformerBlock`` / ``FluxSingleTransformerBlock``), the
  outputs of modules outside the blocks, and the largest block recomputed in backward plus
  its input/output gradients; attention runs through ``scaled_dot_product_attention`` and keeps
  no score matrix (flash / memory-efficient kernels);
- the latent/prompt caching phase before training: the transformer, the text encoders and the
  VAE (encoding in float32, as its config asks) on the GPU together. In bfloat16 the text
  encoders and the VAE then leave the GPU; with ``preset=16gb`` T5-XXL is loaded in 8-bit
  (``quantize_text_encoder=int8``: 4.4 GiB instead of 8.9) and stays, as the plugins leave
  bitsandbytes modules in place; only CLIP and the VAE leave.

It prints one JSON object per configuration and a table. Nothing here is measured: a peak
measured with ``torch.cuda.max_memory_allocated`` needs a CUDA GPU and real weights (the NF4
path through diffusers refuses to load without a GPU). The measuring command is printed with
the table; ``docs/sd3-flux.md`` keeps both.

    python benchmarks/sd3_flux_memory.py                 # all configurations, table + JSON lines
    python benchmarks/sd3_flux_memory.py --model flux-dev --rank 16 --json results/sd3-flux-memory.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from activations import activation_bytes as shared_activation_bytes  # noqa: E402  (a sibling script module)

GIB = 2**30
RESOLUTION = 1024
LATENT_DOWNSCALE = 8
#: bytes per parameter of an NF4 weight: 4 bits + one 8-bit absmax per 64 weights + one float32 per 256 absmax
#: (bitsandbytes double quantization, ``bnb_4bit_use_double_quant=True``)
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
#: bytes per parameter of an LLM.int8 weight: 1 byte + one float32 scale per output row (~0)
INT8_BYTES = 1.0

#: diffusers config of black-forest-labs/FLUX.1-dev transformer/ (11.9 B parameters).
FLUX_DEV = {"patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38, "attention_head_dim": 128,
            "num_attention_heads": 24, "joint_attention_dim": 4096, "pooled_projection_dim": 768,
            "guidance_embeds": True, "axes_dims_rope": (16, 56, 56)}
#: diffusers config of stabilityai/stable-diffusion-3.5-large transformer/ (8.1 B parameters).
SD35_LARGE = {"sample_size": 128, "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 38,
              "attention_head_dim": 64, "num_attention_heads": 38, "joint_attention_dim": 4096,
              "caption_projection_dim": 2432, "pooled_projection_dim": 2048, "pos_embed_max_size": 192,
              "qk_norm": "rms_norm"}
#: diffusers config of stabilityai/stable-diffusion-3.5-medium transformer/ (2.5 B parameters; MMDiT-X).
SD35_MEDIUM = {"sample_size": 128, "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 24,
               "attention_head_dim": 64, "num_attention_heads": 24, "joint_attention_dim": 4096,
               "caption_projection_dim": 1536, "pooled_projection_dim": 2048, "pos_embed_max_size": 384,
               "qk_norm": "rms_norm", "dual_attention_layers": tuple(range(13))}
#: google/t5-v1_1-xxl encoder, as shipped in text_encoder_3/ (SD3) and text_encoder_2/ (FLUX).
T5_XXL = {"vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
          "feed_forward_proj": "gated-gelu", "is_gated_act": True, "dense_act_fn": "gelu_new"}
CLIP_L = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
          "projection_dim": 768}
CLIP_G = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 20,
          "projection_dim": 1280}
#: the 16-channel VAE of SD3 and FLUX (same architecture; force_upcast: encodes in float32).
VAE_16 = {"in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 4,
          "up_block_types": ["UpDecoderBlock2D"] * 4, "block_out_channels": [128, 256, 512, 512],
          "layers_per_block": 2, "latent_channels": 16, "norm_num_groups": 32, "use_quant_conv": False,
          "use_post_quant_conv": False}

#: model -> transformer class, its config, its CLIP text encoders, T5 prompt tokens
MODELS: dict[str, dict[str, Any]] = {
    "sd3.5-medium": {"cls": "SD3Transformer2DModel", "config": SD35_MEDIUM, "clip": ("L", "G"), "t5_tokens": 256},
    "sd3.5-large": {"cls": "SD3Transformer2DModel", "config": SD35_LARGE, "clip": ("L", "G"), "t5_tokens": 256},
    "flux-dev": {"cls": "FluxTransformer2DModel", "config": FLUX_DEV, "clip": ("L",), "t5_tokens": 512},
}
CLIP_TOKENS = 77
#: (label, quantize_base, optimizer): bfloat16 LoRA with AdamW, and the preset=16gb QLoRA.
SETUPS = (("LoRA, bf16, AdamW", "none", "adamw"), ("preset=16gb (NF4, T5 int8, 8-bit AdamW)", "nf4", "adamw8bit"))
MEASURE_COMMAND = ("on a CUDA GPU with the real weights: synthaug balance DATA --out OUT -g lora-flux -o preset=16gb "
                   "-o max_train_steps=20, then read peak_gpu_memory_gib in "
                   "OUT.synthaug/fits/lora-flux/<class>/artifact.json")


def count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def build_transformer(name: str) -> Any:
    import diffusers
    import torch

    spec = MODELS[name]
    with torch.device("meta"):
        return getattr(diffusers, spec["cls"])(**spec["config"]).to(torch.bfloat16)


def text_encoder_parameters(name: str) -> tuple[int, int]:
    """Parameters of the model's CLIP text encoders (L [+ G]) and of its T5-XXL encoder, built on ``meta``."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    specs = {"L": CLIP_L, "G": CLIP_G}
    with torch.device("meta"):
        t5 = count(T5EncoderModel(T5Config(**T5_XXL)))
        clip = sum(count(CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=49408, max_position_embeddings=77,
                                                                    **specs[key])))
                   for key in MODELS[name]["clip"])
    return clip, t5


def vae_parameters() -> int:
    import torch
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        return count(AutoencoderKL(**VAE_16))


def frozen_bytes(transformer: Any, quantize: str) -> tuple[float, int]:
    """Bytes of the frozen transformer (bf16, or NF4 Linear weights + bf16 rest), and the largest Linear."""
    import torch

    linear = [m.weight.numel() for m in transformer.modules() if isinstance(m, torch.nn.Linear)]
    total = count(transformer)
    if quantize != "nf4":
        return total * 2.0, max(linear)
    return sum(linear) * NF4_BYTES + (total - sum(linear)) * 2.0, max(linear)


def model_inputs(name: str, transformer: Any, batch: int) -> dict[str, Any]:
    """Meta-device inputs of one 1024 px training batch (packed 2x2 latents and RoPE ids for FLUX)."""
    import torch

    meta = {"device": "meta", "dtype": torch.bfloat16}
    side = RESOLUTION // LATENT_DOWNSCALE
    spec = MODELS[name]
    text = torch.zeros(batch, spec["t5_tokens"] + (CLIP_TOKENS if spec["cls"] == "SD3Transformer2DModel" else 0),
                       transformer.config.joint_attention_dim, **meta)
    pooled = torch.zeros(batch, transformer.config.pooled_projection_dim, **meta)
    timestep = torch.zeros(batch, **meta)
    if spec["cls"] == "SD3Transformer2DModel":
        return {"hidden_states": torch.zeros(batch, 16, side, side, **meta), "encoder_hidden_states": text,
                "pooled_projections": pooled, "timestep": timestep}
    tokens = (side // 2) ** 2
    return {"hidden_states": torch.zeros(batch, tokens, 64, **meta), "encoder_hidden_states": text,
            "pooled_projections": pooled, "timestep": timestep, "guidance": torch.zeros(batch, **meta),
            "img_ids": torch.zeros(tokens, 3, device="meta"),
            "txt_ids": torch.zeros(spec["t5_tokens"], 3, device="meta")}


def activation_bytes(name: str, transformer: Any, batch: int) -> dict[str, float]:
    """Activation bytes of one bfloat16 training step (``activations.activation_bytes``); the
    checkpointed units are the transformer's blocks (its ``_no_split_modules``)."""
    unit_names = set(transformer._no_split_modules)
    units = [m for m in transformer.modules() if type(m).__name__ in unit_names]
    return shared_activation_bytes(transformer, units, lambda: transformer(**model_inputs(name, transformer, batch)))


def lora_parameters(name: str, transformer: Any, rank: int) -> tuple[int, int]:
    """LoRA parameters the plugins add (default target modules), and those in tensors under 4,096 elements."""
    import torch
    from peft import LoraConfig

    from synthaug.diffusion._flow_options import ATTENTION_LORA_TARGETS

    with torch.device("meta"):
        transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(ATTENTION_LORA_TARGETS)))
    lora = [p for n, p in transformer.named_parameters() if "lora_" in n]
    return sum(p.numel() for p in lora), sum(p.numel() for p in lora if p.numel() < 4096)


def estimate(name: str, quantize: str, optimizer: str, rank: int, batch: int) -> dict[str, Any]:
    """One configuration's memory, component by component, in GiB."""
    transformer = build_transformer(name)
    total = count(transformer)
    frozen, largest_linear = frozen_bytes(transformer, quantize)
    acts = activation_bytes(name, transformer, batch)
    lora, small = lora_parameters(name, transformer, rank)
    state = (lora - small) * 2 + small * 8 if optimizer == "adamw8bit" else lora * 8
    training = {
        "transformer_frozen": frozen,
        "lora_params_fp32": lora * 4.0,
        "lora_grads_fp32": lora * 4.0,
        "optimizer_state": float(state),
        "activations_checkpointed": acts["checkpointed"],
        # NF4: backward dequantizes one weight at a time to bfloat16
        "dequantized_weight": largest_linear * 2.0 if quantize == "nf4" else 0.0,
    }
    (clip, t5), vae = text_encoder_parameters(name), vae_parameters()
    # caching: transformer + text encoders + VAE in float32 encoding one 1024 px image
    # (~3 live float32 tensors of 128 channels at full resolution)
    encode = vae * 4.0 + 3 * 128 * RESOLUTION * RESOLUTION * 4
    if quantize == "nf4":  # 8-bit T5 stays on the GPU (the plugins do not move bnb modules)
        t5_bytes = t5 * INT8_BYTES
        training["t5_int8_resident"] = t5_bytes
        caching = frozen + clip * 2.0 + t5_bytes + encode
    else:  # bfloat16 encoders, all moved off the GPU once latents and prompt embeddings are cached
        caching = frozen + (clip + t5) * 2.0 + encode
    train_peak = sum(training.values())
    return {
        "model": name, "quantize_base": quantize, "quantize_text_encoder": "int8" if quantize == "nf4" else "none",
        "optimizer": optimizer, "resolution": RESOLUTION, "train_batch_size": batch, "rank": rank,
        "gradient_checkpointing": True,
        "parameters": {"transformer": total, "lora": lora, "clip": clip, "t5": t5, "vae": vae},
        "training_gib": {k: round(v / GIB, 3) for k, v in training.items()},
        "training_peak_gib": round(train_peak / GIB, 2),
        "activations_without_checkpointing_gib": round(acts["without_checkpointing"] / GIB, 2),
        "caching_peak_gib": round(caching / GIB, 2),
        "caching_peak_t5_bf16_gib": round((caching - t5 * INT8_BYTES + t5 * 2.0) / GIB, 2)
        if quantize == "nf4" else round(caching / GIB, 2),
        "estimated_peak_gib": round(max(train_peak, caching) / GIB, 2),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | setup | transformer params | frozen transformer GiB | LoRA + grads + optimizer GiB | "
             "activations GiB (checkpointed / not) | training peak GiB | caching peak GiB | estimated peak GiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    labels = {(q, o): label for label, q, o in SETUPS}
    for row in rows:
        t = row["training_gib"]
        adapter = t["lora_params_fp32"] + t["lora_grads_fp32"] + t["optimizer_state"]
        lines.append(f"| {row['model']} | {labels[row['quantize_base'], row['optimizer']]} | "
                     f"{row['parameters']['transformer'] / 1e9:.2f} B | {t['transformer_frozen']:.2f} | "
                     f"{adapter:.2f} | "
                     f"{t['activations_checkpointed']:.2f} / {row['activations_without_checkpointing_gib']:.2f} | "
                     f"{row['training_peak_gib']:.2f} | {row['caching_peak_gib']:.2f} | "
                     f"{row['estimated_peak_gib']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), action="append", help="default: all")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    from synthaug.diffusion._loading import quiet_libraries

    rows = []
    with quiet_libraries():
        for name in args.model or list(MODELS):
            for _, quantize, optimizer in SETUPS:
                rows.append(estimate(name, quantize, optimizer, args.rank, args.batch_size))
                print(json.dumps(rows[-1]))
    print(table(rows))
    print(f"Estimated, not measured (no CUDA GPU used). To measure: {MEASURE_COMMAND}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
