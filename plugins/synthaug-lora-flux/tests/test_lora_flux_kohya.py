"""lora-flux ``export_format=kohya``: the kohya-ss FLUX layout, checked by value and by diffusers' own kohya loader."""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from synthaug import InvalidOptionsError  # noqa: E402
from synthaug_lora_flux import LORA_FILE, LoraFluxGenerator, kohya_file_name  # noqa: E402
from synthaug_lora_flux.kohya import flux_lora_to_kohya, kohya_module  # noqa: E402

torch.set_num_threads(1)

#: kohya-ss sd-scripts' FLUX LoRA key names (networks/lora_flux.py, networks/convert_flux_lora.py)
KOHYA_KEY = re.compile(r"lora_unet_(double_blocks_\d+_(img|txt)_(attn_qkv|attn_proj|mlp_0|mlp_2|mod_lin)"
                       r"|single_blocks_\d+_(linear1|linear2|modulation_lin))"
                       r"\.(lora_down\.weight|lora_up\.weight|alpha)")
DOUBLE_BLOCK_ONLY = [f"transformer_blocks.0.attn.{m}" for m in ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj",
                                                                 "add_k_proj", "add_v_proj", "to_add_out")]


def test_fused_modules_hold_exactly_the_separate_loras() -> None:
    g = torch.Generator().manual_seed(0)
    rank, width, alpha = 2, 8, 4.0
    mods = ["single_transformer_blocks.3.attn.to_q", "single_transformer_blocks.3.attn.to_k",
            "single_transformer_blocks.3.attn.to_v", "transformer_blocks.1.attn.to_out.0"]  # no proj_mlp LoRA
    state = {}
    for m in mods:
        state[f"{m}.lora_A.weight"] = torch.randn(rank, width, generator=g)
        state[f"{m}.lora_B.weight"] = torch.randn(width, rank, generator=g)
    out = {m: width for m in mods} | {"single_transformer_blocks.3.proj_mlp": 3 * width}
    kohya = flux_lora_to_kohya(state, out, alpha=alpha)
    parts = ("lora_down.weight", "lora_up.weight", "alpha")
    assert set(kohya) == {f"lora_unet_{m}.{s}" for m in ("single_blocks_3_linear1", "double_blocks_1_img_attn_proj")
                          for s in parts}
    assert all(KOHYA_KEY.fullmatch(k) for k in kohya)

    def delta(prefix: str) -> torch.Tensor:  # kohya applies up @ down * alpha / rank
        down, up = kohya[f"{prefix}.lora_down.weight"], kohya[f"{prefix}.lora_up.weight"]
        return up @ down * float(kohya[f"{prefix}.alpha"]) / down.shape[0]

    separate = [state[f"{m}.lora_B.weight"] @ state[f"{m}.lora_A.weight"] * alpha / rank for m in mods[:3]]
    expected = torch.cat([*separate, torch.zeros(3 * width, width)])  # q, k, v, then the MLP input rows untouched
    assert torch.allclose(delta("lora_unet_single_blocks_3_linear1"), expected, atol=1e-6)
    assert torch.allclose(delta("lora_unet_double_blocks_1_img_attn_proj"),
                          state[f"{mods[3]}.lora_B.weight"] @ state[f"{mods[3]}.lora_A.weight"] * alpha / rank)


def test_modules_without_a_kohya_name_are_refused_before_training(quick, concepts, tmp_path) -> None:
    assert kohya_module("transformer_blocks.0.attn.add_q_proj")[0] == "lora_unet_double_blocks_0_txt_attn_qkv"
    with pytest.raises(ValueError, match="no kohya-ss FLUX LoRA name"):
        kohya_module("x_embedder")
    gen = LoraFluxGenerator(quick(export_format="kohya", target_modules=["x_embedder"]))
    with pytest.raises(InvalidOptionsError, match="export_format=kohya.*x_embedder"):
        gen.fit(concepts[:1], tmp_path)


def test_kohya_file_loads_in_diffusers_and_gives_the_same_images(quick, concepts, tmp_path, tiny_model) -> None:
    """diffusers' FluxPipeline reads kohya FLUX files (it splits fused modules back). Its converter assumes
    full-size single blocks, so the tiny model's LoRA is limited to the double block here."""
    from diffusers import FluxPipeline
    from safetensors import safe_open

    gen = LoraFluxGenerator(quick(export_format="kohya", target_modules=DOUBLE_BLOCK_ONLY, max_train_steps=6,
                                  alpha=8.0))
    gen.fit(concepts[:1], tmp_path)
    folder = gen.concept_dir(concepts[0])
    kohya = folder / kohya_file_name(concepts[0])
    assert gen.artifact(concepts[0])["adapter_files"] == [LORA_FILE, kohya.name]
    with safe_open(str(kohya), "pt") as fh:
        keys, meta = list(fh.keys()), fh.metadata()
    assert keys and all(KOHYA_KEY.fullmatch(k) for k in keys)
    assert meta["ss_network_module"] == "networks.lora_flux" and meta["ss_network_alpha"] == "8.0"
    images = []
    for weight_name in (LORA_FILE, kohya.name):
        pipe = FluxPipeline.from_pretrained(str(tiny_model))
        pipe.set_progress_bar_config(disable=True)
        pipe.load_lora_weights(str(folder), weight_name=weight_name)
        images.append(pipe(gen.prompt_for(concepts[0]), num_inference_steps=3, height=32, width=32,
                           max_sequence_length=16, generator=torch.Generator().manual_seed(5),
                           output_type="np").images[0])
    base = FluxPipeline.from_pretrained(str(tiny_model))
    base.set_progress_bar_config(disable=True)
    plain = base(gen.prompt_for(concepts[0]), num_inference_steps=3, height=32, width=32, max_sequence_length=16,
                 generator=torch.Generator().manual_seed(5), output_type="np").images[0]
    assert np.abs(images[0] - plain).mean() > 1e-3  # the LoRA does something
    assert np.abs(images[0] - images[1]).max() < 2e-3  # and the kohya file does the same
