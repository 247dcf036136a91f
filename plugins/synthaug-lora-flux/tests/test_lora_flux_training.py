"""lora-flux on the tiny FLUX.1-dev model: contract, learning, resume, stock diffusers loading, FLUX specifics."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from synthaug import InvalidOptionsError  # noqa: E402
from synthaug.testing import check_generator, check_resume  # noqa: E402
from synthaug_lora_flux import LORA_FILE, FluxDenoiser, LoraFluxGenerator, training_shift  # noqa: E402

torch.set_num_threads(1)


def test_passes_check_generator(quick) -> None:
    check_generator(LoraFluxGenerator, quick(max_train_steps=2))


def test_training_lowers_the_flow_matching_loss_on_a_fixed_batch(fitted, concepts) -> None:
    training = fitted.artifact(concepts[0])["training"]
    assert training["steps"] == 30 and training["target"] == "flow_matching"
    assert training["probe_loss_end"] < 0.9 * training["probe_loss_start"], training


def test_lora_loads_in_stock_diffusers_and_gives_the_generators_images(fitted, concepts, tiny_model) -> None:
    from diffusers import FluxPipeline
    from safetensors import safe_open

    lora = fitted.concept_dir(concepts[0]) / LORA_FILE
    with safe_open(str(lora), "pt") as fh:
        keys = list(fh.keys())
    assert keys and all(k.startswith("transformer.") and ".lora_" in k for k in keys)
    assert any(k.startswith("transformer.single_transformer_blocks.0.attn.to_q.") for k in keys)
    pipe = FluxPipeline.from_pretrained(str(tiny_model))
    pipe.set_progress_bar_config(disable=True)
    # ComfyUI's rule for SD3/FLUX (comfy/lora.py): "transformer.<diffusers key>" of a linear layer's weight
    linear = {n for n, m in pipe.transformer.named_modules() if isinstance(m, torch.nn.Linear)}
    assert {k.removeprefix("transformer.").split(".lora_")[0] for k in keys} <= linear

    def run():
        return pipe(fitted.prompt_for(concepts[0]), num_inference_steps=3, height=32, width=32, guidance_scale=3.5,
                    max_sequence_length=16, generator=torch.Generator().manual_seed(3), output_type="np").images[0]

    before = run()
    pipe.load_lora_weights(str(lora.parent))
    after = run()
    assert abs(after - before).mean() > 1e-3  # the LoRA changes the image
    ours = next(iter(fitted.generate(concepts[0], [3])))
    assert abs(after * 255 - np.asarray(ours.image, dtype=float)).max() <= 1  # the generator = stock diffusers


def test_resume_matches_an_uninterrupted_run(quick, concepts, tmp_path) -> None:
    options = quick(max_train_steps=6, checkpoint_every=2, gradient_accumulation_steps=2, timestep_sampling="mode",
                    loss_weighting="cosmap")
    check_resume(LoraFluxGenerator, options, concepts[0], tmp_path, interrupt_at=5, checkpoint_step=4)


def test_denoiser_packs_latents_like_the_pipeline_and_feeds_the_guidance(quick, tiny_model) -> None:
    from diffusers import FluxPipeline

    gen = LoraFluxGenerator(quick())
    pipe = gen.pipeline
    denoiser = gen.denoiser(pipe)
    assert isinstance(denoiser, FluxDenoiser) and denoiser.guidance == 3.5
    cond = gen.training_conditioning(pipe, ["a dermoscopic image of nevus"])
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = denoiser(latents, torch.tensor([600.0]), cond)
        packed = FluxPipeline._pack_latents(latents, 1, 4, 16, 16)
        ids = FluxPipeline._prepare_latent_image_ids(1, 8, 8, latents.device, latents.dtype)
        direct = pipe.transformer(hidden_states=packed, timestep=torch.tensor([0.6]), guidance=torch.tensor([3.5]),
                                  img_ids=ids, return_dict=False, **cond)[0]
        other_guidance = FluxDenoiser(pipe.transformer, guidance=1.0, vae_scale_factor=pipe.vae_scale_factor)(
            latents, torch.tensor([600.0]), cond)
    assert ours.shape == latents.shape
    assert torch.allclose(FluxPipeline._pack_latents(ours, 1, 4, 16, 16), direct, atol=1e-6)
    assert not torch.allclose(ours, other_guidance)  # FLUX.1-dev: guidance is an input of the transformer


def test_training_shift_is_the_pipelines_resolution_dependent_shift(quick) -> None:
    config = {"base_image_seq_len": 256, "max_image_seq_len": 4096, "base_shift": 0.5, "max_shift": 1.15}
    assert training_shift(config, 1024, 8) == pytest.approx(math.exp(1.15))  # 4096 tokens: max_shift
    assert training_shift(config, 256, 8) == pytest.approx(math.exp(0.5))  # 256 tokens: base_shift
    gen = LoraFluxGenerator(quick())
    rule = gen.target_rule(gen.pipeline)
    assert rule.shift == pytest.approx(training_shift(gen.pipeline.scheduler.config, 32, gen.pipeline.vae_scale_factor))
    assert LoraFluxGenerator(quick(flow_shift=3.0)).target_rule(gen.pipeline).shift == 3.0


def test_negative_prompt_is_refused_with_the_fix(quick) -> None:
    with pytest.raises(InvalidOptionsError, match="negative_prompt='blurry'.*no negative prompt.*negative_prompt=''"):
        LoraFluxGenerator(quick(negative_prompt="blurry"))


def test_preset_16gb_trains_on_cpu_without_the_cuda_only_quantization(quick, concepts, tmp_path) -> None:
    """The preset's CPU-runnable part (8-bit AdamW, accumulation, checkpointing, caching) with NF4 turned off."""
    pytest.importorskip("bitsandbytes")
    gen = LoraFluxGenerator(quick(preset="16gb", quantize_base="none", quantize_text_encoder="none",
                                  dtype="float32", mixed_precision="no", resolution=32, max_train_steps=2,
                                  validation_images=0))
    assert gen.options.optimizer == "adamw8bit" and gen.options.gradient_checkpointing
    gen.fit(concepts[:1], tmp_path)
    assert gen.artifact(concepts[0])["training"]["steps"] == 2


@pytest.mark.gpu
def test_qlora_on_cuda_trains_and_loads_in_stock_diffusers(quick, concepts, tmp_path, tiny_model) -> None:
    if not torch.cuda.is_available():
        pytest.skip("bitsandbytes NF4 through diffusers needs a CUDA GPU")
    pytest.importorskip("bitsandbytes")
    from diffusers import FluxPipeline

    gen = LoraFluxGenerator(quick(preset="16gb", resolution=32, device="cuda", max_train_steps=20,
                                  validation_images=0))
    gen.fit(concepts[:1], tmp_path)
    artifact = gen.artifact(concepts[0])
    assert artifact["training"]["probe_loss_end"] < artifact["training"]["probe_loss_start"]
    assert 0 < artifact["peak_gpu_memory_gib"] < 1
    assert len(list(gen.generate(concepts[0], [1, 2]))) == 2
    assert type(gen.pipeline.transformer.transformer_blocks[0].attn.to_q.base_layer).__name__ == "Linear4bit"
    pipe = FluxPipeline.from_pretrained(str(tiny_model))
    pipe.load_lora_weights(str(gen.concept_dir(concepts[0])))  # the QLoRA file loads on the unquantized model
