"""How the frozen UNet weights are stored: in the compute dtype, or in float8 (option ``base_weights``).

``base_weights="float8"`` keeps every UNet ``Linear``/``Conv`` weight in ``float8_e4m3fn``
(one byte per parameter) and upcasts it to the compute dtype (the ``dtype`` option) just for
that layer's forward pass, with diffusers' layerwise casting
(``ModelMixin.enable_layerwise_casting``). Normalisation layers stay in the compute dtype
(the UNet's own skip patterns). This halves the UNet weight memory against float16; SDXL's
2.6 B-parameter UNet drops from 4.8 GiB to about 2.4 GiB.

LoRA layers must not be stored in float8: peft puts a new adapter in the dtype of the layer
it wraps, so each cast layer also advertises its ``compute_dtype`` (the attribute peft reads
for quantised base layers), and adapters added afterwards, for training or loaded for
generation, are created in the compute dtype (the trainer then keeps its parameters in float32).

Training: the upcast copy of a weight lives until the backward pass needs it, so the saving
holds during training only with ``gradient_checkpointing`` (then one block's copies at a time).
Importing this module does not import torch.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["BaseWeights", "FLOAT8_STORAGE", "store_base_weights"]

#: Values of the ``base_weights`` option.
BaseWeights = Literal["dtype", "float8"]
#: The float8 format of ``base_weights="float8"`` (the one kohya-ss uses: 4 exponent, 3 mantissa bits).
FLOAT8_STORAGE = "float8_e4m3fn"


def store_base_weights(unet: Any, base_weights: BaseWeights, compute_dtype: Any) -> None:
    """Store ``unet``'s frozen weights as ``base_weights`` says; compute in ``compute_dtype``.

    ``"dtype"`` leaves the model as loaded. ``"float8"`` enables diffusers' layerwise casting
    (storage ``float8_e4m3fn``, compute ``compute_dtype``); ``unet.dtype`` then reports
    ``compute_dtype``. Call it once, right after loading, before any adapter is added.
    """
    if base_weights == "dtype":
        return
    import torch

    unet.enable_layerwise_casting(storage_dtype=getattr(torch, FLOAT8_STORAGE), compute_dtype=compute_dtype)
    for module in unet.modules():
        registry = getattr(module, "_diffusers_hook", None)
        if registry is not None and registry.get_hook("layerwise_casting") is not None:
            module.compute_dtype = compute_dtype  # peft creates adapters of this layer in this dtype
