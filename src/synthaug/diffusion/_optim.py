"""The optimizer and learning-rate schedule a diffusion training run uses (from its options)."""

from __future__ import annotations

from typing import Any

__all__ = ["make_lr_scheduler", "make_optimizer", "resolve_optimizer"]


def resolve_optimizer(optimizer: str, device: Any) -> str:
    """The optimizer an ``optimizer`` option means on ``device``: ``auto`` is adamw8bit on CUDA, else adamw."""
    if optimizer == "auto":
        return "adamw8bit" if getattr(device, "type", str(device)) == "cuda" else "adamw"
    return optimizer


def make_optimizer(params: list[Any], options: Any, device: Any) -> Any:
    """AdamW, or bitsandbytes' 8-bit AdamW (``optimizer`` option), with the options' learning rate and decay."""
    import torch

    o = options
    if resolve_optimizer(o.optimizer, device) == "adamw8bit":
        import logging

        from .._optional import require

        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
        bnb = require("bitsandbytes", purpose="optimizer=adamw8bit")
        return bnb.optim.AdamW8bit(params, lr=o.learning_rate, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.learning_rate, weight_decay=o.weight_decay)


def make_lr_scheduler(optimizer: Any, options: Any) -> Any:
    """diffusers' ``get_scheduler`` for ``lr_scheduler`` (``constant`` with warmup steps warms up)."""
    from diffusers.optimization import get_scheduler

    o = options
    name = "constant_with_warmup" if o.lr_scheduler == "constant" and o.lr_warmup_steps else o.lr_scheduler
    return get_scheduler(name, optimizer, num_warmup_steps=o.lr_warmup_steps, num_training_steps=o.max_train_steps)
