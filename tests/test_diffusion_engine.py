"""synthaug.diffusion: tiny model factories, loading, the training loop's hooks, generation retries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from synthaug._errors import InvalidOptionsError  # noqa: E402
from synthaug.diffusion import DiffusionGeneratorBase, DiffusionOptions  # noqa: E402
from synthaug.diffusion._generation import generate_images, image_defect, retry_seed  # noqa: E402
from synthaug.diffusion._loading import autocast_dtype, load_pipeline, resolve_device, resolve_dtype  # noqa: E402
from synthaug.testing import InterruptAfter, make_concepts, tiny_sd15, tiny_sdxl  # noqa: E402

torch.set_num_threads(1)


class BiasTuner(DiffusionGeneratorBase):
    """The smallest adapter the engine can train: the UNet's output-convolution bias."""

    name = "bias-tuner"
    FILE = "bias.safetensors"

    def add_trainable(self, pipe: Any, concept: Any) -> dict[str, Any]:
        self._original = pipe.unet.conv_out.bias.detach().clone()
        return {"unet.conv_out.bias": pipe.unet.conv_out.bias}

    def save_adapter(self, pipe: Any, concept: Any, folder: Path) -> list[Path]:
        from safetensors.torch import save_file

        save_file({"bias": pipe.unet.conv_out.bias.detach().clone()}, str(folder / self.FILE))
        return [folder / self.FILE]

    def finish_training(self, pipe: Any, concept: Any) -> None:
        pipe.unet.conv_out.bias.requires_grad_(False)
        pipe.unet.conv_out.bias.data = self._original

    def activate_adapter(self, pipe: Any, concept: Any, folder: Path) -> None:
        from safetensors.torch import load_file

        pipe.unet.conv_out.bias.data = load_file(str(folder / self.FILE))["bias"]


class BiasTunerXL(BiasTuner):
    """The same adapter on SDXL: only the conditioning hook differs (pooled embeds, time ids)."""

    name = "bias-tuner-xl"
    pipeline_class = "StableDiffusionXLPipeline"

    def training_conditioning(self, pipe: Any, prompts: list[str]) -> dict[str, Any]:
        embeds, _, pooled, _ = pipe.encode_prompt(prompts, device=pipe.unet.device, do_classifier_free_guidance=False)
        side = self.options.resolution
        time_ids = torch.tensor([[side, side, 0, 0, side, side]] * len(prompts), device=pipe.unet.device)
        return {"encoder_hidden_states": embeds, "added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"sd15": tiny_sd15(root / "sd15"), "v": tiny_sd15(root / "v", prediction_type="v_prediction"),
            "sdxl": tiny_sdxl(root / "sdxl")}


@pytest.fixture(scope="module")
def concepts(tmp_path_factory):
    return make_concepts(tmp_path_factory.mktemp("data"), n_concepts=1, n_images=2, size=40)


def test_importing_the_engine_and_plugins_does_not_import_torch() -> None:
    code = ("import sys, synthaug.diffusion, synthaug.testing; import synthaug_lora_sd15, synthaug_textual_inversion\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'peft') if m in sys.modules]\n"
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_tiny_factories_write_loadable_pipelines(models) -> None:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    assert tiny_sd15(models["sd15"]) == models["sd15"]  # an existing complete folder is reused
    sd15 = StableDiffusionPipeline.from_pretrained(str(models["sd15"]))
    assert sd15.safety_checker is None and sd15.text_encoder.config.hidden_size == 32
    assert sd15.tokenizer.tokenize("a dermoscopic image") == ["a</w>", "dermoscopic</w>", "image</w>"]
    assert StableDiffusionPipeline.from_pretrained(str(models["v"])).scheduler.config.prediction_type == "v_prediction"
    sdxl = load_pipeline("StableDiffusionXLPipeline", str(models["sdxl"]), device=torch.device("cpu"),
                         dtype=torch.float32)
    assert isinstance(sdxl, StableDiffusionXLPipeline) and sdxl.text_encoder_2.config.projection_dim == 32
    embeds, _, pooled, _ = sdxl.encode_prompt("a skin lesion", device="cpu", do_classifier_free_guidance=False)
    assert embeds.shape[-1] == sdxl.unet.config.cross_attention_dim == 64 and pooled.shape == (1, 32)
    images = list(generate_images(sdxl, [1, 2], prompt="a skin lesion", batch_size=2,
                                  call_kwargs={"num_inference_steps": 2, "height": 32, "width": 32}))
    assert [im.image.size for im in images] == [(32, 32), (32, 32)]


def test_device_and_dtype_choice() -> None:
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else resolve_device(None).type)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    assert autocast_dtype("auto", torch.float32, torch.device("cpu")) is None
    assert autocast_dtype("auto", torch.float16, torch.device("cuda")) == torch.float16
    assert autocast_dtype("bf16", torch.float32, torch.device("cuda")) == torch.bfloat16


def test_loading_errors_name_the_option(models, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    cpu = torch.device("cpu")
    with pytest.raises(InvalidOptionsError, match="model_index.json"):
        load_pipeline("StableDiffusionPipeline", str(tmp_path / "empty"), device=cpu, dtype=torch.float32)
    with pytest.raises(InvalidOptionsError, match="no such folder"):
        load_pipeline("StableDiffusionPipeline", str(tmp_path / "missing" / "a b"), device=cpu, dtype=torch.float32)
    with pytest.raises(InvalidOptionsError, match="scheduler='NotAScheduler'"):
        load_pipeline("StableDiffusionPipeline", str(models["sd15"]), device=cpu, dtype=torch.float32,
                      scheduler="NotAScheduler")
    pipe = load_pipeline("StableDiffusionPipeline", str(models["sd15"]), device=cpu, dtype=torch.float32,
                         scheduler="DDIMScheduler", extra=BiasTuner().load_kwargs())
    assert type(pipe.scheduler).__name__ == "DDIMScheduler" and pipe.safety_checker is None


def test_image_defects() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    assert image_defect(rng.random((8, 8, 3))) is None
    assert image_defect(np.zeros((8, 8, 3))) == "black"
    assert image_defect(np.full((8, 8, 3), 0.5)) == "flat"
    assert image_defect(np.full((8, 8, 3), np.nan)) == "nan"


class FakePipe:
    """Returns a NaN image for the seeds in ``bad``, noise otherwise; records calls."""

    def __init__(self, bad: set[int]) -> None:
        self.bad, self.calls = bad, []

    def __call__(self, *, prompt, negative_prompt, generator, output_type, **kwargs):
        import numpy as np

        seeds = [g.initial_seed() for g in generator]
        self.calls.append(seeds)
        images = np.stack([np.full((4, 4, 3), np.nan) if s in self.bad else
                           np.random.default_rng(s).random((4, 4, 3)) for s in seeds])
        return type("Out", (), {"images": images})()


def test_defective_images_are_regenerated_with_derived_seeds() -> None:
    pipe = FakePipe(bad={7, 9, retry_seed(9, 1), retry_seed(9, 2)})
    out = list(generate_images(pipe, [5, 7, 9], prompt="p", batch_size=3, max_retries=3))
    assert [o.seed for o in out] == [5, 7, 9]
    assert out[0].metadata == {}
    assert out[1].metadata == {"retries": 1, "generation_seed": retry_seed(7, 1)}
    assert out[2].metadata == {"retries": 3, "generation_seed": retry_seed(9, 3)}
    assert pipe.calls[0] == [5, 7, 9] and len(pipe.calls) == 5
    always_bad = FakePipe(bad={1, retry_seed(1, 1)})
    with pytest.warns(UserWarning, match="still nan"):
        (item,) = generate_images(always_bad, [1], prompt="p", max_retries=1)
    assert item.metadata["defect"] == "nan" and item.metadata["retries"] == 1


def quick(model: Path, **extra) -> dict:
    return {"base_model": str(model), "resolution": 32, "max_train_steps": 3, "learning_rate": 1e-2,
            "num_inference_steps": 2, "validation_images": 0, "checkpoint_every": 0, **extra}


def test_engine_trains_any_adapter_v_prediction_checkpointing(models, concepts, tmp_path) -> None:
    gen = BiasTuner(quick(models["v"], gradient_checkpointing=True, train_batch_size=2))
    before = gen.pipeline.unet.conv_out.bias.detach().clone()
    gen.fit(concepts, tmp_path)
    from safetensors.torch import load_file

    learned = load_file(str(tmp_path / concepts[0].slug / BiasTuner.FILE))["bias"]
    assert not torch.equal(learned, before)
    assert torch.equal(gen.pipeline.unet.conv_out.bias, before)  # the pipeline is clean for the next concept
    assert not gen.pipeline.unet.is_gradient_checkpointing
    assert len(list(gen.generate(concepts[0], [1]))) == 1


def test_engine_trains_sdxl_through_the_conditioning_hook(models, concepts, tmp_path) -> None:
    gen = BiasTunerXL(quick(models["sdxl"], train_batch_size=2))
    assert gen.load_kwargs() == {}  # SDXL has no safety checker to switch off
    before = gen.pipeline.unet.conv_out.bias.detach().clone()
    gen.fit(concepts, tmp_path)
    training = gen.artifact(concepts[0])["training"]
    assert training["steps"] == 3 and training["probe_loss_end"] != training["probe_loss_start"]
    assert torch.equal(gen.pipeline.unet.conv_out.bias, before)
    assert len(list(gen.generate(concepts[0], [1, 2]))) == 2


def test_cached_latents_train_like_encoding_every_step(models, concepts, tmp_path) -> None:
    from safetensors.torch import load_file

    results = []
    for cached in (True, False):
        gen = BiasTuner(quick(models["sd15"], cache_latents=cached))
        gen.fit(concepts, tmp_path / str(cached))
        results.append(load_file(str(tmp_path / str(cached) / concepts[0].slug / BiasTuner.FILE))["bias"])
    assert torch.allclose(results[0], results[1], atol=1e-5)


def test_shared_options_are_described_and_generation_only_options_do_not_refit() -> None:
    assert all(f.description for f in DiffusionOptions.model_fields.values())
    a = BiasTuner(guidance_scale=3.0, num_inference_steps=5, generation_batch_size=4, device="cpu",
                  cache_latents=False, gradient_checkpointing=True, checkpoint_every=7, validation_images=0)
    assert a.fit_options() == BiasTuner().fit_options()  # generation- and speed-only options never force a refit
    assert "cache_latents" not in a.fit_options() and "learning_rate" in a.fit_options()
    schema = BiasTuner.options_schema()["properties"]  # the mark is visible to tools reading the schema
    assert schema["cache_latents"].get("fit_neutral") is True and "fit_neutral" not in schema["learning_rate"]
    assert BiasTuner(max_train_steps=7).fit_options() != BiasTuner().fit_options()
    assert BiasTuner().prompt_for(make_concept()) == "a dermoscopic image of basal cell carcinoma"
    per = BiasTuner(prompts={"basal_cell_carcinoma": "a close-up photo of {concept} on skin"})
    assert per.prompt_for(make_concept()) == "a close-up photo of basal cell carcinoma on skin"


def test_old_option_names_are_unknown_options() -> None:
    """Pre-release names were removed, not aliased: an old name is an unknown option."""
    with pytest.raises(InvalidOptionsError, match="batch_size"):
        BiasTuner(batch_size=4)
    assert BiasTuner(device=None).options.device == "auto"
    with pytest.raises(InvalidOptionsError, match="device='gpu'"):
        BiasTuner(device="gpu")


def make_concept():
    from synthaug._generator import Concept

    return Concept("basal_cell_carcinoma", "basal_cell_carcinoma", ())


def test_latents_encode_in_float32_but_the_vae_keeps_its_dtype(models) -> None:
    from diffusers import AutoencoderKL

    from synthaug.diffusion._data import LatentSource

    vae = AutoencoderKL.from_pretrained(str(models["sd15"]), subfolder="vae", dtype=torch.bfloat16)
    pixels = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    for cached in (True, False):
        source = LatentSource(vae, pixels, cached, torch.device("cpu"), torch.float32)
        latents = source.sample(torch.tensor([0, 2]), torch.zeros(2, *source.latent_shape))
        assert latents.dtype == torch.float32 and latents.shape == (2, 4, 16, 16)
        assert vae.dtype == torch.bfloat16  # the pipeline still decodes in its own dtype


def test_a_checkpoint_resumes_only_under_the_same_training_options(models, concepts, tmp_path) -> None:
    options = quick(models["sd15"], max_train_steps=4, checkpoint_every=2)
    for work, changed, resumed_from in [("same", {"generation_batch_size": 2}, 2), ("other", {"learning_rate": 5e-3}, 0)]:
        with pytest.raises(KeyboardInterrupt):
            BiasTuner(options).fit(concepts, tmp_path / work, progress=InterruptAfter(3))
        gen = BiasTuner({**options, **changed})  # a generation-only change keeps the checkpoint usable
        gen.fit(concepts, tmp_path / work)
        assert gen.artifact(concepts[0])["training"]["resumed_from_step"] == resumed_from, work


def test_every_lora_generator_shares_one_lora_vocabulary() -> None:
    """rank, alpha, target_modules and lora_dropout mean the same in every LoRA generator
    (one definition, synthaug.diffusion.LoraOptions; only defaults may differ), and the large
    models share optimizer/cache_text_embeddings (LargeModelOptions)."""
    import synthaug
    from synthaug.diffusion import LargeModelOptions, LoraOptions

    lora = [name for name in synthaug.list_generators() if name.startswith("lora-")]
    assert {"lora-sd15", "lora-sdxl"} <= set(lora)
    for name in lora:
        options = synthaug.get_generator(name).Options
        assert issubclass(options, LoraOptions), name
        for field in ("rank", "alpha", "lora_dropout"):
            assert options.model_fields[field].description == LoraOptions.model_fields[field].description, (name, field)
            assert options.model_fields[field].metadata == LoraOptions.model_fields[field].metadata, (name, field)
    for name in {"lora-sdxl", "lora-sd3", "lora-flux"} & set(lora):  # the large models: one memory vocabulary
        options = synthaug.get_generator(name).Options
        assert issubclass(options, LargeModelOptions) and options().optimizer == "auto", name
        ours, shared = options.model_fields["cache_text_embeddings"], LargeModelOptions.model_fields["cache_text_embeddings"]
        assert (ours.default, ours.description, ours.json_schema_extra) == (shared.default, shared.description,
                                                                             shared.json_schema_extra), name
