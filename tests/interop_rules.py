"""How ComfyUI and kohya-ss decide which keys of a LoRA / embedding file they load, written down as tests' rules.

Rules read (not copied) from:

- ComfyUI ``comfy/lora.py`` (``model_lora_keys_unet``, ``model_lora_keys_clip``, ``load_lora``) and
  ``comfy/utils.py`` (``unet_to_diffusers``): a LoRA module name is recognised when it is
  ``lora_unet_`` + an original (SGM) UNet weight name or a diffusers UNet weight name with ``.``
  written ``_``; ``diffusion_model.<SGM name>``; ``[unet.]<diffusers name>`` with ``.to_`` written
  ``.processor.to_`` and ``to_out.0`` written ``to_out``; or, for the CLIP text encoder,
  ``lora_te_text_model_encoder_layers_<i>_<self_attn_q_proj|…|mlp_fc1|mlp_fc2>`` (also ``lora_te1_``)
  or ``text_encoder.text_model.encoder.layers.<i>.<module>``. Only weights that
  ``unet_to_diffusers`` maps have diffusers names: resnets, attention blocks (``proj_in``,
  ``proj_out``, ``norm``, every transformer block's ``attn1/attn2.to_q/k/v/to_out.0``,
  ``ff.net.0.proj``, ``ff.net.2``, norms), samplers and the embeddings. For a recognised module
  ``x`` the first present pair loads: ``x.lora_up/lora_down.weight`` (+ ``lora_mid``),
  ``x_lora.up/down.weight``, ``x.lora_B/lora_A.weight``, ``x.lora.up/down.weight``,
  ``x.lora_linear_layer.up/down.weight``; plus ``x.alpha``. Every other key is "not loaded".
- kohya-ss ``networks/lora.py`` (``create_network_from_weights``, ``LoRANetwork.create_modules``):
  LoRA modules are the ``Linear``/``Conv2d`` children of the UNet's ``Transformer2DModel``
  (and, when the weights name them, ``ResnetBlock2D``/``Downsample2D``/``Upsample2D``) and of the
  text encoder's ``CLIPAttention``/``CLIPMLP``, named ``lora_unet_`` / ``lora_te_`` + the module
  path with ``.`` written ``_``; SD1.x paths are the diffusers ones, SDXL paths the original
  UNet's (``input_blocks.4.1…``); text-encoder paths start with ``text_model.`` (transformers 4
  layout). A key ``<name>.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha`` loads when
  ``<name>`` is such a module; ``lora_down`` is ``(rank, in)`` (``(rank, in, kh, kw)`` for a conv)
  and ``lora_up`` ``(out, rank)`` (``(out, rank, 1, 1)``).
- Embeddings: AUTOMATIC1111 ``create_embedding_from_data`` and ComfyUI ``load_embed`` (see
  :func:`a1111_embedding` / :func:`comfy_embedding`); AUTOMATIC1111's check of a ``.pt`` before
  loading it, ``modules/safe.py`` (``check_pt``, ``check_zip_filenames``, ``RestrictedUnpickler``,
  AUTOMATIC1111/stable-diffusion-webui commit 05933840f0676dd1a90a7e2ad3f2a0672624b2cd), see
  :func:`a1111_check_pt`.
- SD3 / SD3.5: ComfyUI ``comfy/lora.py`` ``model_lora_keys_unet`` (``lora_unet_`` + every weight name of
  its model, and for SD3 ``transformer.``/``base_model.model.``/``lora_transformer_`` + the diffusers
  names that ``comfy/utils.py`` ``mmdit_to_diffusers`` maps) and kohya-ss ``networks/lora_sd3.py``
  (``LoRANetwork``: ``Linear`` children of each ``SingleDiTBlock``, prefix ``lora_unet``), see
  :func:`comfy_sd3_names` / :func:`kohya_sd3_modules`.

These files were read as stored public source (not run); the rules are written from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: ComfyUI's recognised (up, down, extra) key endings per module, in the order it tries them.
COMFY_PAIRS = [(".lora_up.weight", ".lora_down.weight", ".lora_mid.weight"),
               ("_lora.up.weight", "_lora.down.weight", None), (".lora_B.weight", ".lora_A.weight", None),
               (".lora.up.weight", ".lora.down.weight", None),
               (".lora_linear_layer.up.weight", ".lora_linear_layer.down.weight", None)]
#: ComfyUI's CLIP module names in the kohya style.
COMFY_CLIP = {"mlp.fc1": "mlp_fc1", "mlp.fc2": "mlp_fc2", "self_attn.k_proj": "self_attn_k_proj",
              "self_attn.q_proj": "self_attn_q_proj", "self_attn.v_proj": "self_attn_v_proj",
              "self_attn.out_proj": "self_attn_out_proj"}
_KOHYA_UNET_CLASSES = {"Transformer2DModel", "ResnetBlock2D", "Downsample2D", "Upsample2D"}
_KOHYA_TE_CLASSES = {"CLIPAttention", "CLIPSdpaAttention", "CLIPMLP"}


def sgm_prefixes(unet: Any) -> dict[str, str]:
    """Diffusers block prefix -> original (SGM) UNet prefix, following ``unet_to_diffusers``'s numbering."""
    out: dict[str, str] = {}
    n = 1
    for x, block in enumerate(unet.down_blocks):
        for i in range(len(block.resnets)):
            out[f"down_blocks.{x}.resnets.{i}"] = f"input_blocks.{n}.0"
            if getattr(block, "attentions", None):
                out[f"down_blocks.{x}.attentions.{i}"] = f"input_blocks.{n}.1"
            n += 1
        if block.downsamplers:
            out[f"down_blocks.{x}.downsamplers.0.conv"] = f"input_blocks.{n}.0.op"
            n += 1
    if getattr(unet.mid_block, "attentions", None):
        out["mid_block.attentions.0"] = "middle_block.1"
    n = 0
    for x, block in enumerate(unet.up_blocks):
        has_attention = bool(getattr(block, "attentions", None))
        for i in range(len(block.resnets)):
            out[f"up_blocks.{x}.resnets.{i}"] = f"output_blocks.{n}.0"
            if has_attention:
                out[f"up_blocks.{x}.attentions.{i}"] = f"output_blocks.{n}.1"
            if i == len(block.resnets) - 1 and block.upsamplers:
                out[f"up_blocks.{x}.upsamplers.0.conv"] = f"output_blocks.{n}.{2 if has_attention else 1}.conv"
            n += 1
    return out


def to_sgm(module: str, prefixes: Mapping[str, str]) -> str | None:
    """The SGM name of an attention-block module (children keep their names there), else None."""
    for prefix, sgm in prefixes.items():
        if ".attentions." in prefix and (module == prefix or module.startswith(prefix + ".")):
            return sgm + module[len(prefix):]
    return None


def _diffusers_weight_modules(unet: Any) -> set[str]:
    """UNet modules with a weight that ``unet_to_diffusers`` maps (resnets, attention blocks, samplers, embeddings)."""
    block = r"((down|up)_blocks\.\d+|mid_block)"
    pattern = re.compile(
        rf"^({block}\.attentions\.\d+\.(proj_in|proj_out|norm|transformer_blocks\.\d+\.(norm[123]|"
        r"attn[12]\.to_(q|k|v|out\.0)|ff\.net\.0\.proj|ff\.net\.2))|"
        rf"{block}\.resnets\.\d+\.(conv1|conv2|time_emb_proj|conv_shortcut|norm1|norm2)|"
        r"(down|up)_blocks\.\d+\.(down|up)samplers\.0\.conv|conv_in|conv_out|conv_norm_out|"
        r"time_embedding\.linear_[12]|add_embedding\.linear_[12])$")
    return {name for name, m in unet.named_modules() if getattr(m, "weight", None) is not None and pattern.match(name)}


def comfy_unet_names(unet: Any) -> set[str]:
    """LoRA module names ComfyUI maps onto this UNet's weights."""
    prefixes = sgm_prefixes(unet)
    names: set[str] = set()
    for module in _diffusers_weight_modules(unet):
        names.add("lora_unet_" + module.replace(".", "_"))
        diffusers_style = module.replace(".to_", ".processor.to_")
        if diffusers_style.endswith(".to_out.0"):
            diffusers_style = diffusers_style[:-2]
        names |= {diffusers_style, "unet." + diffusers_style}
        if (sgm := to_sgm(module, prefixes)) is not None:
            names |= {"lora_unet_" + sgm.replace(".", "_"), "diffusion_model." + sgm}
    return names


def comfy_clip_names(n_layers: int) -> set[str]:
    """LoRA module names ComfyUI maps onto an SD1.x CLIP-L text encoder of ``n_layers`` layers."""
    names: set[str] = set()
    for b in range(n_layers):
        for module, kohya in COMFY_CLIP.items():
            names |= {f"lora_te_text_model_encoder_layers_{b}_{kohya}",
                      f"lora_te1_text_model_encoder_layers_{b}_{kohya}",
                      f"text_encoder.text_model.encoder.layers.{b}.{module}"}
    return names


def comfy_loaded_keys(keys: Iterable[str], names: set[str]) -> set[str]:
    """The keys ComfyUI's LoRA loader uses, given the module names it maps."""
    keys = set(keys)
    loaded: set[str] = set()
    for x in names:
        if x + ".alpha" in keys:
            loaded.add(x + ".alpha")
        for up, down, mid in COMFY_PAIRS:
            if x + up in keys:
                loaded |= {x + up, x + down} & keys
                if mid and x + mid in keys:
                    loaded.add(x + mid)
                break
    return loaded


def kohya_modules(unet: Any, text_encoder: Any | None, *, naming: str) -> dict[str, Any]:
    """kohya-ss LoRA module name -> the torch module it wraps.

    ``naming``: ``diffusers`` (SD1.x) or ``sgm`` (SDXL) UNet paths."""
    prefixes = sgm_prefixes(unet)
    out: dict[str, Any] = {}
    for name, module in unet.named_modules():
        if type(module).__name__ not in _KOHYA_UNET_CLASSES:
            continue
        for child_name, child in module.named_modules():
            if type(child).__name__ in ("Linear", "Conv2d") and child_name:
                path = f"{name}.{child_name}"
                if naming == "sgm":
                    path = to_sgm(path, prefixes)
                    if path is None:
                        continue
                out["lora_unet_" + path.replace(".", "_")] = child
    for name, module in (text_encoder.named_modules() if text_encoder is not None else []):
        if type(module).__name__ in _KOHYA_TE_CLASSES:
            for child_name, child in module.named_modules():
                if type(child).__name__ == "Linear":
                    path = ("" if name.startswith("text_model.") else "text_model.") + f"{name}.{child_name}"
                    out["lora_te_" + path.replace(".", "_")] = child
    return out


def _kohya_shape_ok(part: str, tensor: Any, module: Any) -> bool:
    if part == "alpha":
        return tensor.numel() == 1
    weight = module.weight
    if part == "lora_down.weight":
        return tuple(tensor.shape[1:]) == tuple(weight.shape[1:]) if weight.dim() == 4 else \
            tensor.dim() == 2 and tensor.shape[1] == weight.shape[1]
    if weight.dim() == 4:
        return tensor.dim() == 4 and tensor.shape[0] == weight.shape[0] and tuple(tensor.shape[2:]) == (1, 1)
    return tensor.dim() == 2 and tensor.shape[0] == weight.shape[0]


def kohya_loaded_keys(state: Mapping[str, Any], modules: Mapping[str, Any]) -> set[str]:
    """The keys kohya-ss ``create_network_from_weights`` + ``load_weights`` put into a module, with fitting shapes."""
    loaded = set()
    for key, tensor in state.items():
        name, _, part = key.partition(".")
        if name in modules and part in ("lora_down.weight", "lora_up.weight", "alpha") and \
                _kohya_shape_ok(part, tensor, modules[name]):
            loaded.add(key)
    return loaded


def a1111_embedding(data: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """What AUTOMATIC1111 takes from a loaded embedding file: the ``(n, dim)`` vectors and ``step``,
    ``sd_checkpoint``, ``sd_checkpoint_name``. Raises ValueError where A1111 raises."""
    if "string_to_param" in data:
        params = data["string_to_param"]
        if len(params) != 1:
            raise ValueError("embedding file has multiple terms in it")
        vectors = next(iter(params.values()))
    elif data and all(hasattr(v, "shape") for v in data.values()):
        if len(data) != 1:
            raise ValueError("embedding file has multiple terms in it")
        vectors = next(iter(data.values()))
        vectors = vectors.unsqueeze(0) if vectors.dim() == 1 else vectors
    else:
        raise ValueError("neither textual inversion embedding nor diffuser concept")
    return vectors, {k: data.get(k) for k in ("step", "sd_checkpoint", "sd_checkpoint_name")}


def comfy_embedding(data: Mapping[str, Any], embedding_size: int, embed_key: str = "clip_l") -> Any | None:
    """The vectors ComfyUI's ``load_embed`` takes, or None when their width is not ``embedding_size`` (ignored)."""
    if "string_to_param" in data:
        vectors = next(iter(data["string_to_param"].values()))
    elif embed_key in data:
        vectors = data[embed_key]
    else:
        vectors = next(iter(data.values()))
    return vectors if vectors.shape[-1] == embedding_size else None


# -- AUTOMATIC1111's check of a .pt file before loading it --------------------------------------
#: AUTOMATIC1111/stable-diffusion-webui ``modules/safe.py`` (read at commit 05933840f0676dd1a90a7e2ad3f2a0672624b2cd):
#: the zip entries ``check_zip_filenames`` accepts (``allowed_zip_names_re``) and the globals its
#: ``RestrictedUnpickler.find_class`` allows (the pytorch_lightning and numpy ones left out: our files
#: never need them, so leaving them out only makes the check stricter).
A1111_ALLOWED_ZIP_NAME = re.compile(r"^([^/]+)/((data/\d+)|version|(data\.pkl))$")
_A1111_DATA_PKL = re.compile(r"^([^/]+)/data\.pkl$")
_A1111_GLOBALS = {
    ("collections", "OrderedDict"),
    *(("torch._utils", n) for n in ("_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_device_tensor_from_numpy")),
    *(("torch", n) for n in ("FloatStorage", "HalfStorage", "IntStorage", "LongStorage", "DoubleStorage",
                             "ByteStorage", "float32", "BFloat16Storage")),
    ("torch.nn.modules.container", "ParameterDict"), ("_codecs", "encode"), ("__builtin__", "set"),
}


def a1111_check_pt(path: Any) -> None:
    """Raise ValueError where AUTOMATIC1111's ``safe.check_pt`` refuses ``path`` ("The file may be malicious").

    As A1111 does it: a zip file must hold only entries matching :data:`A1111_ALLOWED_ZIP_NAME` and
    exactly one ``<name>/data.pkl``, which must unpickle with the restricted unpickler; a non-zip file
    (torch's legacy serialization) must give five pickles that unpickle with it. Storages are not read
    (A1111 hands back an empty storage for every persistent id, as here)."""
    import pickle
    import zipfile

    import torch

    class _Restricted(pickle.Unpickler):
        def persistent_load(self, saved_id: Any) -> Any:
            if saved_id[0] != "storage":
                raise ValueError(f"persistent id {saved_id[0]!r} is not a storage")
            return torch.storage.TypedStorage(_internal=True)

        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in _A1111_GLOBALS:
                raise ValueError(f"global '{module}/{name}' is forbidden")
            return super().find_class("builtins" if module == "__builtin__" else module, name)

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            for name in names:
                if not A1111_ALLOWED_ZIP_NAME.match(name):
                    raise ValueError(f"bad file inside {path}: {name}")
            pickles = [n for n in names if _A1111_DATA_PKL.match(n)]
            if len(pickles) != 1:
                raise ValueError(f"{len(pickles)} data.pkl found in {path}")
            with z.open(pickles[0]) as fh:
                _Restricted(fh).load()
        return
    with open(path, "rb") as fh:
        unpickler = _Restricted(fh)
        for _ in range(5):
            unpickler.load()


# -- SD3 / SD3.5 (MMDiT) ------------------------------------------------------------------------
#: ComfyUI ``comfy/utils.py`` ``MMDIT_MAP_BLOCK`` (diffusers module of a joint block -> original module)
#: plus the fused q/k/v rows of ``mmdit_to_diffusers`` (rows ``[k * hidden, (k + 1) * hidden)``).
#: The ComfyUI versions read map no ``attn2`` module here: SD3.5's second attention has only its
#: original name (``x_block.attn2.qkv``/``.proj``, from the checkpoint's own weights, which
#: ComfyUI's model has: its SD3 detection counts ``x_block.attn2.qkv.weight`` keys).
SD3_FUSED = {"attn.to_q": ("x_block.attn.qkv", 0), "attn.to_k": ("x_block.attn.qkv", 1),
             "attn.to_v": ("x_block.attn.qkv", 2), "attn.add_q_proj": ("context_block.attn.qkv", 0),
             "attn.add_k_proj": ("context_block.attn.qkv", 1), "attn.add_v_proj": ("context_block.attn.qkv", 2)}
SD3_BLOCK = {"norm1_context.linear": "context_block.adaLN_modulation.1", "attn.to_add_out": "context_block.attn.proj",
             "ff_context.net.0.proj": "context_block.mlp.fc1", "ff_context.net.2": "context_block.mlp.fc2",
             "norm1.linear": "x_block.adaLN_modulation.1", "attn.to_out.0": "x_block.attn.proj",
             "ff.net.0.proj": "x_block.mlp.fc1", "ff.net.2": "x_block.mlp.fc2"}
#: The second image attention of SD3.5 (MMDiT-X), by its original names only.
SD3_ATTN2 = {"attn2.to_q": ("x_block.attn2.qkv", 0), "attn2.to_k": ("x_block.attn2.qkv", 1),
             "attn2.to_v": ("x_block.attn2.qkv", 2), "attn2.to_out.0": ("x_block.attn2.proj", None)}


def sd3_original_linears(transformer: Any) -> dict[str, tuple[tuple[int, int], dict[str, slice]]]:
    """The joint blocks' linear weights of the original SD3 checkpoint (ComfyUI's and kohya-ss's model), built
    from a diffusers ``SD3Transformer2DModel``: ``{original name: ((out, in), {diffusers module: its rows})}``."""
    table = {**SD3_FUSED, **{k: (v, None) for k, v in SD3_BLOCK.items()}, **SD3_ATTN2}
    out: dict[str, tuple[tuple[int, int], dict[str, slice]]] = {}
    for i, block in enumerate(transformer.transformer_blocks):
        modules = dict(block.named_modules())
        for diffusers_name, (original, slot) in table.items():
            layer = modules.get(diffusers_name)
            if layer is None or not hasattr(layer, "out_features"):
                continue
            rows = layer.out_features
            shape = (rows if slot is None else 3 * rows, layer.in_features)
            start = 0 if slot is None else slot * rows
            parts = out.setdefault(f"joint_blocks.{i}.{original}", (shape, {}))[1]
            parts[f"transformer_blocks.{i}.{diffusers_name}"] = slice(start, start + rows)
    return out


def comfy_sd3_names(transformer: Any) -> set[str]:
    """LoRA module names ComfyUI's ``model_lora_keys_unet`` maps onto an SD3 model: ``lora_unet_`` + every original
    weight name with ``.`` written ``_`` (and the original name itself), and for the diffusers weights that
    ``mmdit_to_diffusers`` maps: ``transformer.<name>``, ``base_model.model.<name>``, ``lora_transformer_<name_>``."""
    names: set[str] = set()
    for original, (_, parts) in sd3_original_linears(transformer).items():
        names |= {"lora_unet_" + original.replace(".", "_"), "diffusion_model." + original}
        for module in parts:
            if ".attn2." not in module:
                names |= {f"transformer.{module}", f"base_model.model.{module}",
                          "lora_transformer_" + module.replace(".", "_")}
    return names


def kohya_sd3_modules(transformer: Any) -> dict[str, tuple[int, int]]:
    """kohya-ss ``networks/lora_sd3.py`` LoRA module names -> (out, in) of the linear they wrap: the ``Linear``
    children of every ``SingleDiTBlock`` (``joint_blocks.<i>.x_block`` / ``.context_block``) under prefix
    ``lora_unet``, ``.`` written ``_``."""
    return {"lora_unet_" + name.replace(".", "_"): shape
            for name, (shape, _) in sd3_original_linears(transformer).items()}
