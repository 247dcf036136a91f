"""lora-sdxl files: the diffusers layout and the kohya-ss/A1111 layout both load in stock diffusers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from synthaug import InvalidOptionsError  # noqa: E402
from synthaug.diffusion import unet_module_to_kohya  # noqa: E402
from synthaug_lora_sdxl import LORA_FILE, LoraSDXLGenerator, kohya_file_name  # noqa: E402

torch.set_num_threads(1)

#: The block layout of the real SDXL base UNet (what kohya names are computed from).
SDXL_UNET = {"down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"], "layers_per_block": 2}


@pytest.fixture(scope="module")
def stock_pipe(tiny_model):
    """The tiny base model loaded with plain diffusers (no synthaug code)."""
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_model), add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe):
    return pipe("a dermoscopic image of class0", num_inference_steps=3, height=32, width=32, guidance_scale=5.0,
                generator=torch.Generator().manual_seed(3), output_type="np").images[0]


def test_kohya_names_follow_the_original_sdxl_unet_blocks() -> None:
    attn = "transformer_blocks.0.attn1.to_q"
    assert unet_module_to_kohya(f"down_blocks.1.attentions.0.{attn}", SDXL_UNET) == \
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    assert unet_module_to_kohya("down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_out.0", SDXL_UNET) == \
        "lora_unet_input_blocks_8_1_transformer_blocks_9_attn2_to_out_0"
    assert unet_module_to_kohya(f"mid_block.attentions.0.{attn}", SDXL_UNET) == \
        "lora_unet_middle_block_1_transformer_blocks_0_attn1_to_q"
    assert unet_module_to_kohya("up_blocks.0.attentions.2.proj_out", SDXL_UNET) == \
        "lora_unet_output_blocks_2_1_proj_out"
    assert unet_module_to_kohya(f"up_blocks.1.attentions.0.{attn}", SDXL_UNET) == \
        "lora_unet_output_blocks_3_1_transformer_blocks_0_attn1_to_q"
    with pytest.raises(ValueError, match="attention"):
        unet_module_to_kohya("down_blocks.0.resnets.0.conv1", SDXL_UNET)


def test_kohya_file_layout(fitted, concepts) -> None:
    from safetensors import safe_open

    path = fitted.concept_dir(concepts[0]) / kohya_file_name(concepts[0])
    with safe_open(str(path), "pt") as fh:
        keys, metadata = set(fh.keys()), fh.metadata()
        alphas = {float(fh.get_tensor(k)) for k in keys if k.endswith(".alpha")}
    modules = {k.rsplit(".", 2)[0] if k.endswith(".weight") else k.rsplit(".", 1)[0] for k in keys}
    assert all(m.startswith("lora_unet_") for m in modules)
    for module in modules:
        assert {f"{module}.lora_down.weight", f"{module}.lora_up.weight", f"{module}.alpha"} <= keys
    assert len(keys) == 3 * len(modules) and alphas == {4.0}  # alpha 4 at rank 8: scale 0.5
    blocks = {m.split("_")[2] + "_" + m.split("_")[3] for m in modules}
    assert blocks == {"input_blocks", "middle_block", "output_blocks"}
    assert metadata["ss_network_dim"] == "8" and metadata["ss_network_module"] == "networks.lora"


def test_diffusers_file_changes_the_stock_pipeline_and_kohya_file_gives_the_same_output(fitted, concepts,
                                                                                        stock_pipe) -> None:
    folder = fitted.concept_dir(concepts[0])
    stock_pipe.unload_lora_weights()
    base = run(stock_pipe)
    stock_pipe.load_lora_weights(str(folder), weight_name=LORA_FILE)
    with_diffusers_file = run(stock_pipe)
    stock_pipe.unload_lora_weights()
    stock_pipe.load_lora_weights(str(folder), weight_name=kohya_file_name(concepts[0]))
    with_kohya_file = run(stock_pipe)
    stock_pipe.unload_lora_weights()
    assert abs(with_diffusers_file - base).mean() > 1e-3
    assert abs(with_kohya_file - with_diffusers_file).max() < 1e-4
    # and synthaug's own generation uses the same weights
    ours = next(iter(fitted.generate(concepts[0], [3])))
    assert ours.image.size == (32, 32)


def test_kohya_export_refuses_modules_without_kohya_names_before_training(quick, concepts, tmp_path) -> None:
    gen = LoraSDXLGenerator(quick(export_format="kohya", target_modules=["to_q", "conv1"]))
    with pytest.raises(InvalidOptionsError, match="export_format=kohya"):
        gen.fit(concepts[:1], tmp_path)
    assert not list(tmp_path.glob("*/*.safetensors"))
