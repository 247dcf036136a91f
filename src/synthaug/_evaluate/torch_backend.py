"""PyTorch classifier of the harness: a MobileNet-v1-like backbone (or a small CNN) + thesis head.

torchvision is not required: the built-in backbone is written here (depthwise-separable blocks with a
width multiplier ``alpha``, as in MobileNet v1). ``--weights PATH`` loads a ``state_dict``
saved from this model (``torch.save(model.state_dict(), PATH)``, backbone keys suffice);
there are no ImageNet weights for it (use ``--backend keras`` for those, or a model factory,
``TrainConfig(model=...)`` / ``--model package.module:function``, that builds a pretrained network).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .._errors import InvalidParameterError
from .._optional import require
from .config import TrainConfig
from .device import autocast_context, check_amp, cuda_count, resolve_device

__all__ = ["TorchClassifier", "build_model"]

# (output channels at alpha=1, stride) of MobileNet v1's depthwise-separable blocks
_MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
                     (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
_SMALL_CNN = (16, 32, 64, 128)
_LEAKY_SLOPE = 0.2  # keras.activations.leaky_relu's default, as in the thesis head


def _torch():
    return require("torch", purpose="the torch backend of `synthaug evaluate`")


def _backbone(model: str, alpha: float):
    nn = _torch().nn

    def conv_bn(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> list:
        return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]

    layers: list = []
    if model == "mobilenet":
        channels = max(8, int(32 * alpha))
        layers += conv_bn(3, channels, 3, 2)
        for width, stride in _MOBILENET_BLOCKS:
            out = max(8, int(width * alpha))
            layers += conv_bn(channels, channels, 3, stride, groups=channels)  # depthwise
            layers += conv_bn(channels, out, 1, 1)  # pointwise
            channels = out
    else:
        channels = 3
        for out in _SMALL_CNN:
            layers += conv_bn(channels, out, 3, 1) + [nn.MaxPool2d(2)]
            channels = out
    return nn.Sequential(*layers), channels


def build_model(config: TrainConfig, n_classes: int):
    """Backbone + thesis head (GAP, Dropout .3, 256 leaky, BN, Dropout .2, 128 leaky, BN, Dropout .15, n),
    or the user factory's model; ``config.weights`` (a state_dict file) is loaded into either."""
    torch = _torch()
    nn = torch.nn
    factory = config.factory
    if factory is not None:
        from .factory import build_factory_model

        model = build_factory_model(factory, n_classes, "torch")
        if config.weights != "none":
            _load_weights(model, config.weights, strict=True)
        return model
    backbone, channels = _backbone(config.model, config.alpha)
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3),
        nn.Linear(channels, 256), nn.LeakyReLU(_LEAKY_SLOPE), nn.BatchNorm1d(256), nn.Dropout(0.2),
        nn.Linear(256, 128), nn.LeakyReLU(_LEAKY_SLOPE), nn.BatchNorm1d(128), nn.Dropout(0.15),
        nn.Linear(128, n_classes),
    )
    model = nn.Sequential()
    model.add_module("backbone", backbone)
    model.add_module("head", head)
    if config.weights == "imagenet":
        raise InvalidParameterError(
            "--weights", "imagenet", "'none' or a local state_dict file with --backend torch",
            "the built-in torch backbone has no ImageNet weights; use --backend keras --weights imagenet",
        )
    if config.weights != "none":
        _load_weights(model, config.weights)
    return model


def _load_weights(model: Any, path: str, strict: bool = False) -> None:
    """Load a state_dict file (backbone keys at least; every key if ``strict``) into ``model``,
    or raise a clear error."""
    torch = _torch()
    wanted = ("a state_dict saved from the factory's model" if strict
              else "a state_dict saved from this backbone (same --model and --alpha)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing, unexpected = model.load_state_dict(state, strict=strict)
    except Exception as exc:  # noqa: BLE001 - unreadable file or shape mismatch
        first = str(exc).strip().splitlines()
        raise InvalidParameterError("--weights", path, wanted, first[1].strip() if len(first) > 1 else str(exc)) from exc
    if unexpected or any(k.startswith("backbone.") for k in missing):
        raise InvalidParameterError("--weights", path, wanted,
                                    f"{len(unexpected)} unexpected and {len(missing)} missing keys")


def augment_batch(images, rotation: float, generator):
    """Random horizontal/vertical flips and a rotation up to ``rotation`` turns, per image."""
    import math

    torch = _torch()
    F = torch.nn.functional
    n = images.shape[0]
    flip_h = torch.rand(n, generator=generator) < 0.5
    flip_v = torch.rand(n, generator=generator) < 0.5
    images = torch.where(flip_h[:, None, None, None], images.flip(3), images)
    images = torch.where(flip_v[:, None, None, None], images.flip(2), images)
    if rotation > 0:
        angle = (torch.rand(n, generator=generator) * 2 - 1) * rotation * 2 * math.pi
        cos, sin = angle.cos(), angle.sin()
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return images


class TorchClassifier:
    """Trains the model on an AugmentedDataset's training split; scores val and test."""

    def __init__(self, data: Any, config: TrainConfig, *, class_weights: Mapping[str, float] | None,
                 seed: int, cache: Any = None) -> None:
        torch = _torch()
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(seed)
        self.config = config
        self.device = resolve_device(config.device, cuda_count())
        check_amp(self.device, config.precision)
        self.classes = list(data.classes)
        self.model = build_model(config, len(self.classes)).to(self.device)
        # fp16 keeps small gradients alive with a loss scaler; bf16 and fp32 need none
        self.scaler = (torch.amp.GradScaler("cuda") if config.precision == "fp16" else None)
        # built-in models see [-1, 1]; a factory's model sees [0, 1] (add its own normalisation)
        self._offset = 0.0 if config.factory is not None else 1.0
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
        weight = None
        if class_weights is not None:
            weight = torch.tensor([class_weights[c] for c in self.classes], dtype=torch.float32).to(self.device)
        self.loss = torch.nn.CrossEntropyLoss(weight=weight)
        self.generator = torch.Generator().manual_seed(seed)
        label_mode = "soft" if config.label_mode == "soft" else "int"  # soft: probability targets
        self.loader = data.to_torch_loader("train", batch_size=config.batch_size, seed=seed,
                                           image_size=config.image_size, cache=cache, drop_last=False,
                                           label_mode=label_mode)
        self._iterator = iter(self.loader)
        self._held = {split: self._stack(data.to_torch(split, image_size=config.image_size, cache=cache))
                      for split in ("val", "test")}

    @staticmethod
    def _stack(dataset) -> tuple[Any, list[int]]:
        torch = _torch()
        items = [dataset[i] for i in range(len(dataset))]
        return torch.stack([x for x, _ in items]), [int(y) for _, y in items]

    def _next_batch(self):
        try:
            return next(self._iterator)
        except StopIteration:
            self._iterator = iter(self.loader)
            return next(self._iterator)

    def train_steps(self, n: int) -> float:
        """Run ``n`` optimizer steps; returns their mean loss."""
        self.model.train()
        total = 0.0
        for _ in range(n):
            images, labels = self._next_batch()
            if self.config.augment:
                images = augment_batch(images, self.config.rotation, self.generator)
            if images.shape[0] == 1:  # BatchNorm needs 2 samples: repeat a lone last image
                images, labels = images.repeat(2, 1, 1, 1), labels.repeat(2, *[1] * (labels.dim() - 1))
            images, labels = images.to(self.device), labels.to(self.device)
            with autocast_context(self.device, self.config.precision):
                logits = self.model(self._scale(images))
                loss = self.loss(logits.float(), labels)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is None:
                loss.backward()
                self.optimizer.step()
            else:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            total += float(loss.detach())
        return total / max(n, 1)

    def predict(self, split: str) -> tuple[Any, list[int]]:
        """``(logits as numpy N x K, true labels)`` of the real ``val`` or ``test`` images."""
        torch = _torch()
        images, labels = self._held[split]
        self.model.eval()
        with torch.no_grad(), autocast_context(self.device, self.config.precision):
            logits = torch.cat([self.model(self._scale(chunk.to(self.device))).float() for chunk in images.split(256)])
        return logits.cpu().numpy(), labels

    def _scale(self, images):
        return images * (1 + self._offset) - self._offset

    def snapshot(self) -> Any:
        return copy.deepcopy(self.model.state_dict())

    def restore(self, state: Any) -> None:
        self.model.load_state_dict(state)

    def close(self) -> None:
        self._held.clear()
