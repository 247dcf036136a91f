"""benchmarks/real_size.py and benchmarks/sdxl_memory.py keep working (reduced runs, so they cannot rot)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("peft")
pytest.importorskip("synthaug_lora_sd15")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.slow
def test_real_size_benchmark_runs_reduced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole script on the tiny model: every figure is printed and written, with sane values."""
    real_size = _load("real_size")
    out = tmp_path / "result.json"
    result = real_size.main(["--device", "cpu", "--tiny", "--quick", "--json", str(out)])
    assert json.loads(out.read_text()) == result
    training, generation = result["training"], result["generation"]
    assert set(training["seconds_per_step"]) == {"synthaug_cached", "synthaug_uncached", "reference"}
    assert all(s > 0 for s in training["seconds_per_step"].values())
    for key in ("synthaug_uncached_vs_reference", "synthaug_cached_vs_reference", "cached_vs_uncached"):
        assert 0.1 < training[key] < 10, (key, training[key])
    assert 0 < training["vae_share_of_uncached_step"] < 1
    assert generation["identical_images"] is True  # same seed, steps and LoRA give the same pixels
    assert 0.5 < generation["synthaug_vs_direct"] < 2
    assert set(generation["images_per_second"]) == {"batch_1", "batch_4"}
    assert set(result["peak_memory"]) == {"load_gib", "training_gib", "generation_gib"}
    printed = capsys.readouterr().out
    for phrase in ("diffusers reference loop", "VAE share", "synthaug / direct pipe()", "images/s", "peak memory"):
        assert phrase in printed


def test_real_size_configs_match_published_parameter_counts() -> None:
    """The configs give the published SD1.5 sizes (meta device: no memory, no time)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    models = _load("real_models")
    with torch.device("meta"):
        unet = UNet2DConditionModel(**models.SD15_UNET)
        vae = AutoencoderKL(**models.SD15_VAE)
        text = CLIPTextModel(CLIPTextConfig(vocab_size=models.CLIP_VOCAB, **models.CLIP_L))
    assert models.parameter_count(unet) == 859_520_964
    assert models.parameter_count(vae) == 83_653_863
    assert models.parameter_count(text) == 123_060_480


@pytest.mark.slow
def test_sdxl_memory_estimate_float8_halves_the_unet_weights() -> None:
    """The analytic estimate of the 8 GiB mode (meta device): float8 storage, its upcast copies, the peak."""
    pytest.importorskip("synthaug_lora_sdxl")
    sdxl_memory = _load("sdxl_memory")
    fp16 = sdxl_memory.estimate(rank=8, batch=1, base_weights="dtype")
    fp8 = sdxl_memory.estimate(rank=8, batch=1, base_weights="float8")
    weights16, weights8 = fp16["training_gib"]["unet_weights_stored"], fp8["training_gib"]["unet_weights_stored"]
    assert weights16 == pytest.approx(2_567_463_684 * 2 / 2**30, rel=1e-3)
    assert 0.49 * weights16 < weights8 < 0.52 * weights16  # norms stay float16
    assert fp16["training_gib"]["float8_upcast_copies_fp16"] == 0
    assert 0 < fp8["training_gib"]["float8_upcast_copies_fp16"] < 0.1 * weights16
    assert fp8["estimated_peak_gib"] <= 8 < fp16["estimated_peak_gib"]


def test_activation_estimate_counts_a_tensor_shared_by_blocks_once() -> None:
    import torch
    from torch import nn

    activations = _load("activations")

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
            return self.lin(x) + shared

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.second, self.head = Block(), Block(), nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shared = torch.ones(2, 8, device=x.device)  # handed to both blocks, like rotary embeddings
            return self.head(self.second(self.first(x, shared), shared=shared))

    with torch.device("meta"):
        model = Model()
    x = torch.zeros(2, 8, device="meta")  # every (2, 8) float32 tensor is 64 bytes
    result = activations.activation_bytes(model, [model.first, model.second], lambda: model(x))
    assert result["checkpoint_inputs"] == 3 * 64  # x, shared (once), the first block's output
    assert result["outside_units"] == 32  # the head's (2, 4) output
    assert result["largest_unit_recompute"] == 64 + 2 * 128  # its leaf output, its inputs and their gradients
    assert result["checkpointed"] == 192 + 32 + 320 and result["without_checkpointing"] == 64 + 64 + 32
