"""lora-sdxl on the tiny SDXL model: contract, learning, SDXL conditioning, caching, optimizers, VAE."""

from __future__ import annotations

import sys
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from synthaug import (  # noqa: E402
    InvalidOptionsError,
    MissingDependencyError,
    NullProgress,  # noqa: E402
)
from synthaug.testing import check_generator  # noqa: E402
from synthaug_lora_sdxl import LORA_FILE, LoraSDXLGenerator, kohya_file_name  # noqa: E402

torch.set_num_threads(1)


class LossRecorder(NullProgress):
    """A progress that keeps the loss reported at every optimizer step."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def task(self, description, total=None, *, completed=0):
        outer = self

        class Task:
            def advance(self, n=1, *, metrics=None):
                if metrics and "loss" in metrics:
                    outer.losses.append(float(metrics["loss"]))

            def close(self):
                pass

        return Task()


class Spy(LoraSDXLGenerator):
    """lora-sdxl that keeps its trainer and counts text-encoder and VAE-encoder calls while training."""

    def before_training(self, pipe: Any, trainer: Any) -> None:
        super().before_training(pipe, trainer)
        self.trainer, self.calls = trainer, {"text": 0, "vae": 0}
        self.devices_while_training = [m.device.type for m in (*self.text_encoders(pipe), pipe.vae)]

        def counter(key: str):
            def hook(*_: Any) -> None:
                self.calls[key] += 1
            return hook

        self.hooks = [m.register_forward_hook(counter("text")) for m in self.text_encoders(pipe)]
        self.hooks.append(pipe.vae.encoder.register_forward_hook(counter("vae")))

    def image_conditioning(self, pipe: Any, conditioning: dict[str, Any], images: list[Any]) -> dict[str, Any]:
        if pipe.unet.training:  # a training step (the probe loss runs in eval mode)
            self.checkpointing = pipe.unet.is_gradient_checkpointing
        return super().image_conditioning(pipe, conditioning, images)

    def finish_training(self, pipe: Any, concept: Any) -> None:
        for hook in getattr(self, "hooks", []):
            hook.remove()
        super().finish_training(pipe, concept)


def test_passes_check_generator(quick) -> None:
    check_generator(LoraSDXLGenerator, quick(max_train_steps=2))


def test_training_lowers_the_loss_on_a_fixed_batch(fitted, concepts) -> None:
    training = fitted.artifact(concepts[0])["training"]
    assert training["steps"] == 30
    assert training["probe_loss_end"] < 0.95 * training["probe_loss_start"], training


def test_artifact_and_manifest_record(fitted, concepts, tiny_model) -> None:
    from synthaug.diffusion import adapter_digest

    folder = fitted.concept_dir(concepts[0])
    info = fitted.artifact(concepts[0])
    assert info["generator"] == "lora-sdxl" and info["options"]["resolution"] == 32
    assert info["adapter_files"] == [LORA_FILE, kohya_file_name(concepts[0])]
    assert {"torch", "diffusers", "peft"} <= set(info["versions"])
    record = fitted.record(concepts[0])
    assert record["base_model"] == str(tiny_model)
    assert record["adapter_sha256"] == adapter_digest(folder / LORA_FILE, folder / kohya_file_name(concepts[0]))


def test_cached_embeddings_train_exactly_like_encoding_every_step(quick, concepts, tmp_path) -> None:
    curves, calls = {}, {}
    for cached in (True, False):
        gen, progress = Spy(quick(max_train_steps=5, cache_text_embeddings=cached, cache_latents=cached,
                                  gradient_accumulation_steps=2)), LossRecorder()
        gen.fit(concepts[:1], tmp_path / str(cached), progress=progress)
        curves[cached], calls[cached] = progress.losses, gen.calls
    assert len(curves[True]) == 5
    assert curves[True] == pytest.approx(curves[False], rel=1e-4, abs=1e-6)
    # cached: nothing is encoded while the UNet trains; uncached: prompts and images every micro-batch
    assert calls[True] == {"text": 0, "vae": 0}
    assert calls[False]["text"] >= 2 * 10 and calls[False]["vae"] >= 10


def test_time_ids_follow_each_images_original_size_and_crop(quick, tmp_path) -> None:
    from PIL import Image

    from synthaug import Concept
    from synthaug.diffusion import load_training_images

    path = tmp_path / "wide.png"
    Image.new("RGB", (64, 40), (200, 40, 40)).save(path)
    pixels, images = load_training_images([path], 32, flip=True, crop="center")
    assert pixels.shape == (2, 3, 32, 32)
    # 64x40 -> 51x32 (shorter side to 32), centre crop at left (51 - 32) // 2 = 9, mirrored: 51 - 32 - 9 = 10
    assert [(im.original_size, im.crop_top_left, im.target_size) for im in images] == [
        ((40, 64), (0, 9), (32, 32)), ((40, 64), (0, 10), (32, 32))]
    squeezed = load_training_images([path], 32, flip=False, crop="resize")[1][0]
    assert squeezed.crop_top_left == (0, 0) and squeezed.original_size == (40, 64)

    gen = Spy(quick(max_train_steps=1))
    gen.fit([Concept("wide", "wide", (path,))], tmp_path / "work")
    cond = gen.trainer.conditioning(2)
    cond = gen.image_conditioning(gen.pipeline, cond, images)
    assert cond["added_cond_kwargs"]["time_ids"].tolist() == [[40, 64, 0, 9, 32, 32], [40, 64, 0, 10, 32, 32]]
    assert cond["added_cond_kwargs"]["text_embeds"].shape == (2, 32)  # pooled embedding of text encoder 2
    assert cond["encoder_hidden_states"].shape[-1] == 64  # both encoders' token embeddings, concatenated


def test_8bit_adamw_runs_on_cpu_with_8bit_state_for_large_tensors(quick, concepts, tmp_path) -> None:
    pytest.importorskip("bitsandbytes")
    # rank 8: to_q's LoRA matrices have 8 x 64 = 512 elements, the GEGLU projection's up matrix 512 x 8 = 4096
    gen = Spy(quick(max_train_steps=2, optimizer="adamw8bit", rank=8, target_modules=["to_q", "ff.net.0.proj"]))
    gen.fit(concepts[:1], tmp_path)
    assert type(gen.trainer.optimizer).__name__ == "AdamW8bit"
    states = [(p.numel(), gen.trainer.optimizer.state[p]) for p in gen.trainer.params.values()]
    big = [s for n, s in states if n >= 4096]
    small = [s for n, s in states if n < 4096]
    assert big and all(s["state1"].dtype == torch.uint8 for s in big)
    assert small and all(s["state1"].dtype == torch.float32 for s in small)
    assert len(list(gen.generate(concepts[0], [1]))) == 1


def test_the_t4_combination_trains_on_cpu_in_float32(quick, concepts, tmp_path) -> None:
    pytest.importorskip("bitsandbytes")
    # everything the preset selects except float16, which a CPU cannot train in
    gen = Spy(quick(preset="t4", resolution=32, dtype="float32", mixed_precision="no", max_train_steps=2,
                    validation_images=0))
    assert gen.options.gradient_accumulation_steps == 4 and gen.options.optimizer == "adamw8bit"
    gen.fit(concepts[:1], tmp_path)
    assert gen.checkpointing and type(gen.trainer.optimizer).__name__ == "AdamW8bit"
    assert gen.calls == {"text": 0, "vae": 0}
    assert gen.artifact(concepts[0])["training"]["steps"] == 2


def test_nan_latents_stop_training_with_the_remedies(quick, concepts, tmp_path) -> None:
    from synthaug import GenerationError

    gen = LoraSDXLGenerator(quick())
    with torch.no_grad():
        gen.pipeline.vae.encoder.conv_in.bias.fill_(float("nan"))  # what an overflowing float16 VAE gives
    with pytest.raises(GenerationError, match="sdxl-vae-fp16-fix.*dtype=float32"):
        gen.fit(concepts[:1], tmp_path)
    assert not any("lora" in n for n, _ in gen.pipeline.unet.named_parameters())  # the pipeline is clean again


def test_auto_optimizer_is_adamw_on_cpu_and_validation_grids_work(quick, concepts, tmp_path) -> None:
    gen = Spy(quick(max_train_steps=1, validation_images=2))
    gen.fit(concepts[:1], tmp_path)
    assert type(gen.trainer.optimizer) is torch.optim.AdamW
    assert (gen.concept_dir(concepts[0]) / "validation" / "step-000001.png").is_file()


def test_missing_bitsandbytes_fails_before_loading_with_the_pip_command(quick, concepts, tmp_path,
                                                                        monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` fail
    gen = LoraSDXLGenerator(quick(optimizer="adamw8bit"))
    with pytest.raises(MissingDependencyError, match="pip install"):
        gen.fit(concepts[:1], tmp_path)
    assert gen._pipe is None


def test_separate_vae_from_a_folder(quick, concepts, tmp_path) -> None:
    from synthaug.testing import tiny_vae

    torch.manual_seed(123)
    vae = tiny_vae()
    vae.save_pretrained(tmp_path / "vae")
    gen = LoraSDXLGenerator(quick(vae=str(tmp_path / "vae")))
    assert torch.equal(gen.pipeline.vae.encoder.conv_in.weight, vae.encoder.conv_in.weight)
    assert torch.equal(LoraSDXLGenerator(quick(vae=str(tmp_path))).pipeline.vae.encoder.conv_in.weight,
                       vae.encoder.conv_in.weight)  # a pipeline-like folder with vae/ works too
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidOptionsError, match="vae=.*config.json"):
        _ = LoraSDXLGenerator(quick(vae=str(tmp_path / "empty"))).pipeline


@pytest.mark.gpu
def test_text_encoders_and_vae_leave_the_gpu_while_the_unet_trains(quick, concepts, tmp_path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    gen = Spy(quick(max_train_steps=2, device="cuda", optimizer="adamw"))
    gen.fit(concepts[:1], tmp_path)
    pipe = gen.pipeline
    assert gen.devices_while_training == ["cpu", "cpu", "cpu"] and gen.calls == {"text": 0, "vae": 0}
    assert all(m.device.type == "cuda" for m in (*gen.text_encoders(pipe), pipe.vae))
    assert len(list(gen.generate(concepts[0], [1]))) == 1
