"""Peak GPU memory and speed of lora-sdxl training at 1024 px with ``preset="t4"`` (target: <= 12 GiB),
alone or with ``base_weights="float8"`` (the 8 GiB mode; target: <= 8 GiB).

Builds the full-size SDXL base architecture with RANDOM weights from the configs written
below (nothing is downloaded): the 2.6 B-parameter UNet, the VAE, and both text encoders at
full size (only the vocabulary is the tiny test one). It saves that pipeline to a temporary
folder and runs the real plugin on it: ``LoraSDXLGenerator(preset="t4").fit(...)`` on
synthetic 1024 x 1024 images (128 x 128 latents), then reports the peak of
``torch.cuda.max_memory_allocated`` (latent encoding and training; the CUDA context,
~0.3-0.5 GiB, comes on top) and seconds per optimizer step.

Without CUDA it prints an analytic estimate of the preset instead: parameters counted by
instantiating the configs on the ``meta`` device, times bytes for weights, LoRA gradients
and 8-bit AdamW state, plus activations under gradient checkpointing from a ``meta``-device
forward pass (stored inputs of every checkpointed block + the largest block recomputed in
backward + the tensors between blocks), and says the measured figure needs a GPU. With
``--base-weights float8`` the UNet is stored in float8 (diffusers layerwise casting, as the
option does): 1 byte per cast weight, plus the float16 copies that autograd keeps for backward
(the layers outside checkpointed blocks, and the largest block while it is recomputed).

    python benchmarks/sdxl_memory.py                   # GPU: measure; CPU: estimate
    python benchmarks/sdxl_memory.py --estimate-only   # the estimate, anywhere
    python benchmarks/sdxl_memory.py --base-weights float8 --estimate-only   # the 8 GiB mode
    python benchmarks/sdxl_memory.py --steps 6 --rank 16 --json results/sdxl-memory.json
    python benchmarks/sdxl_memory.py --base-weights float8 --model-cache benchmarks/results/models   # GPU, reused model
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from activations import activation_bytes as shared_activation_bytes  # noqa: E402  (sibling script modules)
from real_models import SD15_VAE  # noqa: E402

GIB = 2**30
RESOLUTION = 1024
TEXT_TOKENS = 77

#: diffusers config of stabilityai/stable-diffusion-xl-base-1.0 unet/ (2,567,463,684 parameters).
SDXL_UNET = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "norm_num_groups": 32,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}
#: diffusers config of the SDXL VAE (83,653,863 parameters: SD1.5's architecture with another scaling
#: factor); force_upcast: encode/decode in float32.
SDXL_VAE = {**SD15_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}
#: CLIP ViT-L/14 text encoder and OpenCLIP ViT-bigG/14 text encoder (with projection), as in SDXL.
TEXT_ENCODER = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                "hidden_act": "quick_gelu"}
TEXT_ENCODER_2 = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 20,
                  "hidden_act": "gelu", "projection_dim": 1280}
SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "steps_offset": 1, "clip_sample": False, "prediction_type": "epsilon"}


def build_unet(device: str) -> Any:
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device(device):
        return UNet2DConditionModel(**SDXL_UNET)


def text_encoders(device: str, vocab_size: int) -> tuple[Any, Any]:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def config(spec: dict[str, Any]) -> Any:
        return CLIPTextConfig(vocab_size=vocab_size, max_position_embeddings=TEXT_TOKENS, bos_token_id=vocab_size - 2,
                              eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1, **spec)

    with torch.device(device):
        return CLIPTextModel(config(TEXT_ENCODER)), CLIPTextModelWithProjection(config(TEXT_ENCODER_2))


def count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


# -- the analytic estimate --------------------------------------------------------------------
def activation_bytes(unet: Any, batch: int) -> dict[str, float]:
    """Activation bytes of one float16 training step (``activations.activation_bytes``); the
    checkpointed units are what diffusers checkpoints: every ResnetBlock2D and BasicTransformerBlock."""
    import torch
    from diffusers.models.attention import BasicTransformerBlock
    from diffusers.models.resnet import ResnetBlock2D

    units = [m for m in unet.modules() if isinstance(m, (ResnetBlock2D, BasicTransformerBlock))]
    meta = {"device": "meta", "dtype": torch.float16}
    side = RESOLUTION // 8

    def forward() -> Any:
        return unet(torch.zeros(batch, 4, side, side, **meta), torch.zeros(batch, device="meta", dtype=torch.long),
                    encoder_hidden_states=torch.zeros(batch, TEXT_TOKENS, 2048, **meta),
                    added_cond_kwargs={"text_embeds": torch.zeros(batch, 1280, **meta),
                                       "time_ids": torch.zeros(batch, 6, **meta)})

    return shared_activation_bytes(unet, units, forward)


def float8_upcast_bytes(unet: Any) -> float:
    """Bytes of the float16 weight copies that layerwise casting leaves alive for backward under
    gradient checkpointing: every cast layer outside a checkpointed block (its forward is not
    recomputed, so its upcast weight is saved), plus the largest block's layers while recomputed."""
    from diffusers.models.attention import BasicTransformerBlock
    from diffusers.models.resnet import ResnetBlock2D

    def cast_bytes(module: Any) -> int:
        registry = getattr(module, "_diffusers_hook", None)
        if registry is None or registry.get_hook("layerwise_casting") is None:
            return 0
        return sum(p.numel() * 2 for p in module.parameters(recurse=False))

    units = [m for m in unet.modules() if isinstance(m, (ResnetBlock2D, BasicTransformerBlock))]
    inside = {id(leaf) for unit in units for leaf in unit.modules()}
    outside = sum(cast_bytes(m) for m in unet.modules() if id(m) not in inside)
    largest = max(sum(cast_bytes(m) for m in unit.modules()) for unit in units)
    return float(outside + largest)


def estimate(rank: int, batch: int, base_weights: str = "dtype") -> dict[str, Any]:
    """The t4 preset's memory (with ``base_weights``), component by component, in GiB."""
    import torch
    from diffusers import AutoencoderKL

    from synthaug.diffusion._casting import store_base_weights
    from synthaug.diffusion._lora import add_lora, lora_config
    from synthaug_lora_sdxl import LoraSDXLOptions

    options = LoraSDXLOptions(preset="t4", rank=rank, base_weights=base_weights)
    unet = build_unet("meta").to(torch.float16)
    unet_params = count(unet)
    store_base_weights(unet, options.base_weights, torch.float16)
    unet_bytes = sum(p.numel() * p.element_size() for p in unet.parameters())
    upcast = float8_upcast_bytes(unet) if base_weights == "float8" else 0.0
    add_lora(unet, lora_config(rank=rank, alpha=None, target_modules=options.target_modules), adapter_name="x",
             generator="lora-sdxl")
    lora = [p for n, p in unet.named_parameters() if "lora_" in n]
    lora_params = sum(p.numel() for p in lora)
    small = sum(p.numel() for p in lora if p.numel() < 4096)  # bitsandbytes keeps these states in float32
    with torch.device("meta"):
        vae_params = count(AutoencoderKL(**SDXL_VAE))
    te1, te2 = text_encoders("meta", vocab_size=49408)
    text_params = count(te1) + count(te2)
    acts = activation_bytes(unet, batch)
    training = {
        "unet_weights_stored": unet_bytes / GIB,
        "float8_upcast_copies_fp16": upcast / GIB,
        "lora_params_fp32": lora_params * 4 / GIB,
        "lora_grads_fp32": lora_params * 4 / GIB,
        "adamw8bit_state": ((lora_params - small) * 2 + small * 8) / GIB,
        "activations_checkpointed": (acts["checkpoint_inputs"] + acts["outside_units"]
                                     + acts["largest_unit_recompute"]) / GIB,
    }
    # caching latents (before training): UNet + text encoders (fp16) + VAE upcast to fp32, 2 images of
    # 1024 px per VAE call; ~3 live float32 tensors of 128 channels at full resolution per image
    encode_acts = 2 * 3 * 128 * RESOLUTION * RESOLUTION * 4
    encoding = unet_bytes + text_params * 2 + vae_params * 4 + encode_acts
    # loading: the whole pipeline arrives in float16 on the GPU; float8 storage is applied after
    loading = (unet_params + text_params + vae_params) * 2
    return {
        "preset": "t4",
        "base_weights": base_weights,
        "resolution": RESOLUTION,
        "train_batch_size": batch,
        "gradient_accumulation_steps": options.gradient_accumulation_steps,
        "rank": rank,
        "parameters": {"unet": unet_params, "lora": lora_params, "vae": vae_params, "text_encoders": text_params},
        "training_gib": {k: round(v, 3) for k, v in training.items()},
        "training_peak_gib": round(sum(training.values()), 2),
        "latent_caching_peak_gib": round(encoding / GIB, 2),
        "loading_peak_gib": round(loading / GIB, 2),
        "activations_without_checkpointing_gib": round(acts["without_checkpointing"] / GIB, 2),
        "estimated_peak_gib": round(max(sum(training.values()), encoding / GIB, loading / GIB), 2),
    }


# -- the measurement ------------------------------------------------------------------------------
def build_pipeline(folder: Path) -> Path:
    """Save a random full-size SDXL pipeline (float16) to ``folder``; reuse it if already complete there."""
    import torch

    if (folder / ".complete").is_file():
        return folder
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionXLPipeline

    from synthaug.diffusion._testing import tiny_clip_tokenizer

    tokenizer, tokenizer_2 = tiny_clip_tokenizer(), tiny_clip_tokenizer(pad_token="!")
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16)  # build in float16 directly: a float32 UNet alone is 9.6 GiB
    try:
        te1, te2 = text_encoders("cuda", vocab_size=len(tokenizer))
        with torch.device("cuda"):
            vae = AutoencoderKL(**SDXL_VAE)
        unet = build_unet("cuda")
    finally:
        torch.set_default_dtype(default_dtype)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tokenizer,
                                     tokenizer_2=tokenizer_2, unet=unet, scheduler=DDPMScheduler(**SCHEDULER),
                                     add_watermarker=False)
    pipe.to(torch.float16)
    pipe.save_pretrained(folder, safe_serialization=True)
    (folder / ".complete").write_text("random weights from benchmarks/sdxl_memory.py\n")
    del pipe
    torch.cuda.empty_cache()
    return folder


def measure(steps: int, rank: int, batch: int | None, work: Path, base_weights: str = "dtype",
            model_cache: Path | None = None) -> dict[str, Any]:
    import numpy as np
    import torch
    from PIL import Image

    from synthaug._generator import Concept
    from synthaug_lora_sdxl import LoraSDXLGenerator

    model = build_pipeline((model_cache or work) / "sdxl-random")
    images = work / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):  # non-square, like dermoscopy photos: exercises crop and time ids
        path = images / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (768, 1024, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    class Measured(LoraSDXLGenerator):
        """Splits the peak: latent/prompt caching (before the offload) and the training loop (after)."""

        def before_training(self, pipe: Any, trainer: Any) -> None:
            super().before_training(pipe, trainer)
            torch.cuda.synchronize()
            self.caching_peak = torch.cuda.max_memory_allocated()
            torch.cuda.reset_peak_memory_stats()

    extra = {"train_batch_size": batch} if batch else {}
    gen = Measured(preset="t4", base_weights=base_weights, base_model=str(model), rank=rank, max_train_steps=steps,
                            checkpoint_every=0, validation_images=0, **extra)
    gen.pipeline  # load before measuring: the peak below is latent caching + training
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    gen.fit([Concept("random", "random", tuple(paths))], work / "fit")
    torch.cuda.synchronize()
    training = gen.artifact(Concept("random", "random", tuple(paths)))["training"]
    return {
        "device": torch.cuda.get_device_name(),
        "preset": "t4",
        "options": {k: v for k, v in gen.options.model_dump().items()
                    if k in ("resolution", "dtype", "base_weights", "mixed_precision", "optimizer", "train_batch_size",
                             "gradient_accumulation_steps", "gradient_checkpointing", "rank")},
        "steps": steps,
        "peak_allocated_gib": round(max(gen.caching_peak, torch.cuda.max_memory_allocated()) / GIB, 2),
        "caching_peak_allocated_gib": round(gen.caching_peak / GIB, 2),
        "training_peak_allocated_gib": round(torch.cuda.max_memory_allocated() / GIB, 2),
        "training_peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 2),
        "seconds_per_step": round(1 / training["steps_per_second"], 2) if training.get("steps_per_second") else None,
        "fit_seconds": round(time.perf_counter() - started, 1),
        "probe_loss": [training["probe_loss_start"], training["probe_loss_end"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps to run on the GPU")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=None, help="override the preset's train_batch_size")
    parser.add_argument("--base-weights", choices=["dtype", "float8"], default="dtype",
                        help="storage of the frozen UNet (option base_weights); float8: the 8 GiB mode")
    parser.add_argument("--model-cache", type=Path, default=None,
                        help="build the random SDXL folder here once and reuse it (default: a temporary folder)")
    parser.add_argument("--estimate-only", action="store_true", help="print the analytic estimate, even on a GPU")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    import torch

    from synthaug.diffusion._loading import quiet_libraries

    with quiet_libraries():
        result: dict[str, Any] = {"estimate": estimate(args.rank, args.batch_size or 1, args.base_weights)}
    print(json.dumps(result["estimate"], indent=2))
    if args.estimate_only:
        pass
    elif torch.cuda.is_available():
        with tempfile.TemporaryDirectory(prefix="sdxl-memory-") as tmp, quiet_libraries():
            result["measured"] = measure(args.steps, args.rank, args.batch_size, Path(tmp), args.base_weights,
                                         args.model_cache)
        print(json.dumps(result["measured"], indent=2))
        target = 8 if args.base_weights == "float8" else 12
        verdict = "within" if result["measured"]["peak_allocated_gib"] <= target else "ABOVE"
        print(f"peak {result['measured']['peak_allocated_gib']} GiB: {verdict} the {target} GiB target")
    else:
        print("No CUDA GPU here: the figures above are an analytic estimate. The measured peak memory and "
              "seconds per step need a GPU: run this script on one (python benchmarks/sdxl_memory.py).")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
