"""Files other tools load: kohya-layout LoRA files (SD1.x and SDXL) and A1111-format embeddings.

Each written key set is checked against the loading rules of ComfyUI and kohya-ss, encoded in
``tests/interop_rules.py``: every key must be one those tools load (recognised == total).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from synthaug.diffusion._kohya import lora_to_kohya  # noqa: E402
from synthaug.diffusion._lora import TARGET_MODULE_SETS, injected_lora_modules, lora_config  # noqa: E402

from .interop_rules import (  # noqa: E402
    a1111_check_pt,
    a1111_embedding,
    comfy_clip_names,
    comfy_embedding,
    comfy_loaded_keys,
    comfy_unet_names,
    kohya_loaded_keys,
    kohya_modules,
)
from .test_lora_layout import concepts, quick_options  # noqa: E402, F401  (a fixture and the fit options)

torch.set_num_threads(1)


def _report(what: str, recognised: set[str], keys: set[str]) -> None:
    print(f"{what}: {len(recognised)}/{len(keys)} keys recognised")
    assert recognised == keys, sorted(keys - recognised)[:5]


@pytest.mark.parametrize("target_set", sorted(TARGET_MODULE_SETS))
def test_sd15_kohya_file_is_fully_recognised_by_comfyui_and_kohya(target_set, tiny_sd15_model, concepts, tmp_path,
                                                                  capsys):
    from synthaug_lora_sd15 import LoraSD15Generator, kohya_file_name

    gen = LoraSD15Generator(quick_options(tiny_sd15_model, export_format="kohya",
                                     target_modules=list(TARGET_MODULE_SETS[target_set])))
    try:
        gen.fit(concepts, tmp_path)
        path = gen.concept_dir(concepts[0]) / kohya_file_name(concepts[0])
        state = load_file(str(path))
        unet = gen.pipeline.unet
        keys = set(state)
        assert all(k.startswith(("lora_unet_down_blocks_", "lora_unet_mid_block_", "lora_unet_up_blocks_"))
                   for k in keys)
        kohya = kohya_modules(unet, None, naming="diffusers")
        _report(f"sd15 kohya ({target_set}) in kohya-ss", kohya_loaded_keys(state, kohya), keys)
        _report(f"sd15 kohya ({target_set}) in ComfyUI", comfy_loaded_keys(keys, comfy_unet_names(unet)), keys)
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata()
        assert metadata["ss_base_model_version"] == "sd_v1" and metadata["ss_network_dim"] == "8"
        assert artifact_lists(gen, concepts[0]) == ["pytorch_lora_weights.safetensors", path.name]
    finally:
        gen.close()


def artifact_lists(gen, concept) -> list[str]:
    return gen.artifact(concept)["adapter_files"]


def test_sd15_kohya_file_loads_in_diffusers_with_the_same_output(tiny_sd15_model, concepts, tmp_path):
    from diffusers import StableDiffusionPipeline

    from synthaug_lora_sd15 import LORA_FILE, LoraSD15Generator, kohya_file_name

    gen = LoraSD15Generator(quick_options(tiny_sd15_model, export_format="kohya", alpha=4.0))
    try:
        gen.fit(concepts, tmp_path)
    finally:
        gen.close()
    folder = gen.concept_dir(concepts[0])
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd15_model, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)

    def image(weight_name: str | None):
        pipe.unload_lora_weights()
        if weight_name:
            pipe.load_lora_weights(str(folder), weight_name=weight_name)
        return pipe("a lesion", num_inference_steps=2, height=32, width=32, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images[0]

    base, ours, kohya = image(None), image(LORA_FILE), image(kohya_file_name(concepts[0]))
    assert float(abs(ours - base).max()) > 1e-4
    assert float(abs(kohya - ours).max()) < 1e-5


def test_sd15_text_encoder_lora_gets_lora_te_keys_both_tools_recognise(tiny_sd15_model):
    """The text-encoder part of the conversion, on a real peft state dict of the tiny CLIP text encoder.

    (Training a text-encoder LoRA through the plugin needs peft >= 0.22 with transformers 5; the
    conversion does not.)"""
    from diffusers import UNet2DConditionModel
    from peft import inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel

    encoder = CLIPTextModel.from_pretrained(tiny_sd15_model / "text_encoder")
    unet = UNet2DConditionModel.from_pretrained(tiny_sd15_model / "unet")
    config = lora_config(rank=4, alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])
    inject_adapter_in_model(config, encoder, adapter_name="te")
    te_state = get_peft_model_state_dict(encoder, adapter_name="te")
    state = lora_to_kohya({"unet": {}, "text_encoder": te_state}, unet.config, alpha=4, naming="diffusers")
    keys = set(state)
    n_layers = encoder.config.num_hidden_layers
    assert len(keys) == 3 * 6 * n_layers and all(k.startswith("lora_te_text_model_encoder_layers_") for k in keys)
    _report("sd15 text encoder in kohya-ss", kohya_loaded_keys(state, kohya_modules(unet, encoder, naming="diffusers")),
            keys)
    _report("sd15 text encoder in ComfyUI", comfy_loaded_keys(keys, comfy_clip_names(n_layers)), keys)


def test_sd15_diffusers_file_text_encoder_keys_load_in_comfyui_and_diffusers(tiny_sd15_model, concepts, tmp_path):
    """transformers 5 names CLIP's layers ``encoder.layers.*`` (no ``text_model.``), and ComfyUI maps only
    ``text_encoder.text_model.encoder.layers.<i>.<module>``: the diffusers-layout file keeps the
    ``text_model.`` level, which stock diffusers 0.42 loads too (every module, the saved weights).

    peft 0.21 refuses to train a LoRA on transformers 5's ``CLIPTextModel`` (add_adapter), so the
    adapters are injected with peft's ``inject_adapter_in_model`` and written by the plugin's own
    ``save_adapter``."""
    from diffusers import StableDiffusionPipeline
    from peft import inject_adapter_in_model

    from synthaug.diffusion._lora import check_lora_loaded
    from synthaug_lora_sd15 import LORA_FILE, LoraSD15Generator

    gen = LoraSD15Generator(quick_options(tiny_sd15_model, train_text_encoder=True, rank=8, alpha=4.0))

    def pipeline():
        return StableDiffusionPipeline.from_pretrained(tiny_sd15_model, safety_checker=None, feature_extractor=None,
                                                       requires_safety_checker=False)

    pipe = pipeline()
    inject_adapter_in_model(lora_config(rank=8, alpha=4.0, target_modules=["to_q", "to_k", "to_v", "to_out.0"]),
                            pipe.unet, adapter_name="synthaug")
    inject_adapter_in_model(lora_config(rank=8, alpha=4.0, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]),
                            pipe.text_encoder, adapter_name="synthaug")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in [*pipe.unet.named_parameters(), *pipe.text_encoder.named_parameters()]:
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g))
    assert gen.save_adapter(pipe, concepts[0], tmp_path) == [tmp_path / LORA_FILE]
    keys = set(load_file(str(tmp_path / LORA_FILE)))
    te_keys = {k for k in keys if k.startswith("text_encoder.")}
    n_layers = pipe.text_encoder.config.num_hidden_layers
    assert len(te_keys) == 2 * 4 * n_layers and all(k.startswith("text_encoder.text_model.encoder.layers.")
                                                    for k in te_keys)
    _report("sd15 diffusers-layout text encoder in ComfyUI", comfy_loaded_keys(te_keys, comfy_clip_names(n_layers)),
            te_keys)
    stock = pipeline()
    stock.load_lora_weights(str(tmp_path), weight_name=LORA_FILE, adapter_name="synthaug")
    assert len(injected_lora_modules(stock.text_encoder, adapter_name="synthaug")) == 4 * n_layers
    assert check_lora_loaded(stock, tmp_path / LORA_FILE, adapter_name="synthaug") == len(keys) // 2


def test_sd15_plugin_writes_text_encoder_keys_when_the_text_encoder_is_trained(tiny_sd15_model, concepts, tmp_path):
    from synthaug._errors import MissingDependencyError
    from synthaug_lora_sd15 import LoraSD15Generator, kohya_file_name

    gen = LoraSD15Generator(quick_options(tiny_sd15_model, export_format="kohya", train_text_encoder=True))
    try:
        try:
            gen.fit(concepts, tmp_path)
        except MissingDependencyError as exc:
            pytest.skip(f"text-encoder LoRA cannot be trained with these versions: {exc}")
        keys = set(load_file(str(gen.concept_dir(concepts[0]) / kohya_file_name(concepts[0]))))
    finally:
        gen.close()
    assert any(k.startswith("lora_te_text_model_encoder_layers_0_self_attn_q_proj.") for k in keys)


@pytest.mark.parametrize("target_set", ["attention", "transformer"])
def test_sdxl_kohya_file_is_fully_recognised_by_comfyui_and_kohya(target_set, concepts, tmp_path):
    from synthaug.testing import tiny_sdxl
    from synthaug_lora_sdxl import LoraSDXLGenerator, kohya_file_name

    model = tiny_sdxl(tmp_path / "sdxl")
    gen = LoraSDXLGenerator(quick_options(model, export_format="kohya",
                                          target_modules=list(TARGET_MODULE_SETS[target_set])))
    try:
        gen.fit(concepts, tmp_path / "work")
        state = load_file(str(gen.concept_dir(concepts[0]) / kohya_file_name(concepts[0])))
        unet = gen.pipeline.unet
        keys = set(state)
        _report(f"sdxl kohya ({target_set}) in kohya-ss", kohya_loaded_keys(state, kohya_modules(unet, None,
                                                                                                naming="sgm")), keys)
        _report(f"sdxl kohya ({target_set}) in ComfyUI", comfy_loaded_keys(keys, comfy_unet_names(unet)), keys)
    finally:
        gen.close()


def test_textual_inversion_a1111_files_load_in_a1111_and_comfyui(tiny_sd15_model, concepts, tmp_path):
    from synthaug_textual_inversion import EMBEDS_FILE, TextualInversionGenerator

    gen = TextualInversionGenerator(quick_options(tiny_sd15_model, export_format="a1111", num_vectors=2,
                                             learning_rate=0.05))
    try:
        gen.fit(concepts, tmp_path)
    finally:
        gen.close()
    folder, slug = gen.concept_dir(concepts[0]), concepts[0].slug
    learned = load_file(str(folder / EMBEDS_FILE))[gen.placeholder(concepts[0])]
    assert gen.artifact(concepts[0])["adapter_files"] == [EMBEDS_FILE, f"{slug}.safetensors", f"{slug}.pt"]

    diffusers_data = load_file(str(folder / EMBEDS_FILE))  # also loads in both (one tensor), but named learned_embeds
    assert torch.equal(a1111_embedding(diffusers_data)[0], learned)
    assert torch.equal(comfy_embedding(diffusers_data, embedding_size=32), learned)
    safetensors_data = load_file(str(folder / f"{slug}.safetensors"))
    assert list(safetensors_data) == ["emb_params"]
    a1111_check_pt(folder / f"{slug}.pt")  # A1111 checks a .pt with its allow-list before loading it
    pt_data = torch.load(folder / f"{slug}.pt", weights_only=True)  # ComfyUI loads .pt this way
    for data in (safetensors_data, pt_data):
        vectors, info = a1111_embedding(data)
        assert vectors.shape == (2, 32) and torch.equal(vectors, learned)
        assert torch.equal(comfy_embedding(data, embedding_size=32), learned)
    _, info = a1111_embedding(pt_data)
    assert info["step"] == 2 and info["sd_checkpoint_name"] == tiny_sd15_model.name
    assert pt_data["name"] == slug and set(pt_data["string_to_param"]) == {"*"}
    with safe_open(str(folder / f"{slug}.safetensors"), "pt") as f:
        assert f.metadata() == {"name": slug, "step": "2", "sd_checkpoint_name": tiny_sd15_model.name}


def test_a1111_rule_refuses_what_torch_save_writes_by_default_and_takes_the_legacy_format(tmp_path):
    """AUTOMATIC1111 (``modules/safe.py``, ``check_pt``) refuses a zip ``.pt`` with entries beyond
    ``<name>/data.pkl``, ``<name>/version``, ``<name>/data/<n>``: today's ``torch.save`` writes
    ``.format_version`` and more. The rule as encoded refuses that and a forbidden global, and
    accepts torch's legacy format, which ``torch.load(weights_only=True)`` still reads."""
    import pickle
    import zipfile

    data = {"string_to_token": {"*": 265}, "string_to_param": {"*": torch.randn(2, 32)}, "name": "x", "step": 3}
    torch.save(data, tmp_path / "zip.pt")
    assert any(n.endswith("/.format_version") for n in zipfile.ZipFile(tmp_path / "zip.pt").namelist())
    with pytest.raises(ValueError, match="bad file inside .*format_version"):
        a1111_check_pt(tmp_path / "zip.pt")
    torch.save(data, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    a1111_check_pt(tmp_path / "legacy.pt")
    assert torch.equal(torch.load(tmp_path / "legacy.pt", weights_only=True)["string_to_param"]["*"],
                       data["string_to_param"]["*"])
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(print))  # a global outside the allow-list
    with pytest.raises(ValueError, match="builtins/print' is forbidden"):
        a1111_check_pt(tmp_path / "evil.pt")


def test_the_rules_refuse_the_diffusers_layout_file(tiny_sd15_model, concepts, tmp_path):
    """The diffusers-layout file is for diffusers only: kohya-ss loads none of its keys, ComfyUI
    none of the attention keys (its diffusers names are ``….processor.to_q``) — which is why the
    kohya export exists, and shows the rules do reject keys."""
    from synthaug_lora_sd15 import LORA_FILE, LoraSD15Generator

    gen = LoraSD15Generator(quick_options(tiny_sd15_model))
    try:
        gen.fit(concepts, tmp_path)
        state = load_file(str(gen.concept_dir(concepts[0]) / LORA_FILE))
        unet = gen.pipeline.unet
    finally:
        gen.close()
    assert len(state) == 64
    assert kohya_loaded_keys(state, kohya_modules(unet, None, naming="diffusers")) == set()
    assert comfy_loaded_keys(set(state), comfy_unet_names(unet)) == set()
