"""lora-sd3 on the tiny SD3.5 model: contract, learning, resume, stock diffusers loading, QLoRA options."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from synthaug import InvalidOptionsError  # noqa: E402
from synthaug.testing import check_generator, check_resume  # noqa: E402
from synthaug_lora_sd3 import LORA_FILE, LoraSD3Generator  # noqa: E402

torch.set_num_threads(1)


def test_passes_check_generator(quick) -> None:
    check_generator(LoraSD3Generator, quick(max_train_steps=2))


def test_training_lowers_the_flow_matching_loss_on_a_fixed_batch(fitted, concepts) -> None:
    training = fitted.artifact(concepts[0])["training"]
    assert training["steps"] == 30 and training["target"] == "flow_matching"
    assert training["probe_loss_end"] < 0.9 * training["probe_loss_start"], training


def test_lora_loads_in_stock_diffusers_and_changes_its_output(fitted, concepts, tiny_model) -> None:
    from diffusers import StableDiffusion3Pipeline
    from safetensors import safe_open

    lora = fitted.concept_dir(concepts[0]) / LORA_FILE
    with safe_open(str(lora), "pt") as fh:
        keys = list(fh.keys())
    assert keys and all(k.startswith("transformer.") and ".lora_" in k for k in keys)
    assert any(".attn.add_q_proj." in k for k in keys) and any(".attn.to_q." in k for k in keys)
    pipe = StableDiffusion3Pipeline.from_pretrained(str(tiny_model))
    pipe.set_progress_bar_config(disable=True)
    # ComfyUI's rule for SD3/FLUX (comfy/lora.py): "transformer.<diffusers key>" of a linear layer's weight
    linear = {n for n, m in pipe.transformer.named_modules() if isinstance(m, torch.nn.Linear)}
    assert {k.removeprefix("transformer.").split(".lora_")[0] for k in keys} <= linear
    prompt = fitted.prompt_for(concepts[0])

    def run():
        return pipe(prompt, num_inference_steps=3, height=32, width=32, guidance_scale=4.5, max_sequence_length=16,
                    negative_prompt=fitted.options.negative_prompt, generator=torch.Generator().manual_seed(3),
                    output_type="np").images[0]

    before = run()
    pipe.load_lora_weights(str(lora.parent))
    after = run()
    assert abs(after - before).mean() > 1e-3  # the LoRA changes the image
    ours = next(iter(fitted.generate(concepts[0], [3])))
    assert abs(after * 255 - np.asarray(ours.image, dtype=float)).max() <= 1  # the generator = stock diffusers


def test_resume_matches_an_uninterrupted_run(quick, concepts, tmp_path) -> None:
    options = quick(max_train_steps=6, checkpoint_every=2, gradient_accumulation_steps=2, lr_scheduler="cosine",
                    lr_warmup_steps=2)
    check_resume(LoraSD3Generator, options, concepts[0], tmp_path, interrupt_at=5, checkpoint_step=4)


def test_cached_prompt_embeddings_train_exactly_like_encoding_every_step(quick, concepts, tmp_path) -> None:
    digests = []
    for cache in (True, False):
        gen = LoraSD3Generator(quick(max_train_steps=3, cache_text_embeddings=cache))
        gen.fit(concepts[:1], tmp_path / str(cache))
        digests.append(gen.artifact(concepts[0])["adapter_sha256"])
    assert digests[0] == digests[1]


def test_preset_16gb_sets_qlora_and_explicit_options_win() -> None:
    o = LoraSD3Generator(preset="16gb", rank=4, gradient_accumulation_steps=2).options
    assert (o.quantize_base, o.quantize_text_encoder, o.optimizer, o.dtype) == ("nf4", "int8", "adamw8bit", "bfloat16")
    assert o.gradient_checkpointing and o.cache_latents and o.resolution == 1024
    assert (o.rank, o.gradient_accumulation_steps) == (4, 2)


@pytest.mark.parametrize("option", ["quantize_base=nf4", "quantize_text_encoder=int8"])
def test_bitsandbytes_quantization_off_cuda_is_a_clear_error(quick, concepts, tmp_path, option) -> None:
    if torch.cuda.is_available():
        pytest.skip("this checks the error without CUDA")
    key, value = option.split("=")
    gen = LoraSD3Generator(quick(**{key: value}, device="cpu"))
    with pytest.raises(InvalidOptionsError, match=f"{option}.*CUDA GPU.*{key}=none"):
        gen.fit(concepts[:1], tmp_path)


def test_bad_resolution_names_the_option(quick) -> None:
    with pytest.raises(InvalidOptionsError, match="resolution=40.*multiple of 16"):
        LoraSD3Generator(quick(resolution=40))


@pytest.mark.gpu
def test_qlora_on_cuda_trains_and_loads_in_stock_diffusers(quick, concepts, tmp_path, tiny_model) -> None:
    if not torch.cuda.is_available():
        pytest.skip("bitsandbytes NF4 through diffusers needs a CUDA GPU")
    pytest.importorskip("bitsandbytes")
    from diffusers import StableDiffusion3Pipeline

    gen = LoraSD3Generator(quick(quantize_base="nf4", quantize_text_encoder="int8", device="cuda",
                                 dtype="bfloat16", optimizer="adamw8bit", gradient_checkpointing=True,
                                 max_train_steps=20))
    gen.fit(concepts[:1], tmp_path)
    artifact = gen.artifact(concepts[0])
    assert artifact["training"]["probe_loss_end"] < artifact["training"]["probe_loss_start"]
    assert 0 < artifact["peak_gpu_memory_gib"] < 1
    assert len(list(gen.generate(concepts[0], [1, 2]))) == 2
    assert type(gen.pipeline.transformer.transformer_blocks[0].attn.to_q.base_layer).__name__ == "Linear4bit"
    pipe = StableDiffusion3Pipeline.from_pretrained(str(tiny_model))
    pipe.load_lora_weights(str(gen.concept_dir(concepts[0])))  # the QLoRA file loads on the unquantized model
