"""Activation memory of one training step, with and without gradient checkpointing.

Shared by the analytic memory estimates of ``sdxl_memory.py`` and ``sd3_flux_memory.py``. One
forward pass runs on the meta device (no memory, no compute) with hooks:

- without checkpointing, training keeps every leaf module's output for the backward pass;
- with checkpointing on ``units`` (the blocks the model checkpoints), it keeps each unit's
  tensor inputs, counting each tensor object once (the text embeddings handed to every block
  are stored once), and the outputs of leaf modules outside any unit; during the backward pass
  of one unit it also holds that unit's recomputed leaf outputs and its input/output gradients
  (the largest unit counts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any


def _tensors(value: Any) -> Iterator[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _nbytes(tensor: Any) -> int:
    return tensor.numel() * tensor.element_size()


def activation_bytes(model: Any, units: Sequence[Any], forward: Callable[[], Any]) -> dict[str, float]:
    """Bytes of activations of ``forward()`` (one meta-device pass of ``model``) with gradient
    checkpointing on ``units`` and without; the checkpointed total and its three parts."""
    import torch

    inside = {id(leaf): i for i, unit in enumerate(units) for leaf in unit.modules()}
    unit_inputs, unit_leaves, outside = [0] * len(units), [0] * len(units), [0]
    stored: dict[int, Any] = {}  # kept alive, so that no later tensor reuses an id

    def on_unit(index: int) -> Callable[..., None]:
        def hook(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
            for tensor in _tensors((args, kwargs)):
                unit_inputs[index] += _nbytes(tensor)
                stored.setdefault(id(tensor), tensor)
        return hook

    def on_leaf(module: Any, args: tuple, output: Any) -> None:
        size = sum(_nbytes(t) for t in _tensors(output))
        if id(module) in inside:
            unit_leaves[inside[id(module)]] += size
        else:
            outside[0] += size

    hooks = [u.register_forward_hook(on_unit(i), with_kwargs=True) for i, u in enumerate(units)]
    hooks += [m.register_forward_hook(on_leaf) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            forward()
    finally:
        for h in hooks:
            h.remove()
    largest = max(range(len(units)), key=lambda i: unit_leaves[i])
    parts = {
        "checkpoint_inputs": float(sum(_nbytes(t) for t in stored.values())),
        "outside_units": float(outside[0]),
        "largest_unit_recompute": float(unit_leaves[largest] + 2 * unit_inputs[largest]),
    }
    return {**parts, "checkpointed": sum(parts.values()), "without_checkpointing": float(sum(unit_leaves) + outside[0])}
