"""Settings of the classifier every experiment trains (identical across experiments)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError

__all__ = ["BACKENDS", "MODELS", "TrainConfig"]

BACKENDS = ("torch", "keras")
MODELS = ("mobilenet", "small-cnn")


@dataclass(frozen=True)
class TrainConfig:
    """The classifier and its training budget.

    The thesis head sits on the backbone: global average pooling, Dropout 0.3, Dense 256
    leaky-ReLU, BatchNorm, Dropout 0.2, Dense 128 leaky-ReLU, BatchNorm, Dropout 0.15, Dense
    n (logits), softmax cross-entropy from logits, Adam. Training augmentation: random
    horizontal/vertical flips and rotations up to ``rotation`` turns (0.1 = 36 degrees).

    Budget: ``steps`` optimizer steps, or ``epochs`` epochs *of the baseline* (``epochs *
    ceil(n_baseline_train / batch_size)`` steps), the same for every experiment of a split.
    The validation set is scored every ``eval_every`` steps (default: one baseline epoch) and
    the best-validation-accuracy weights are restored before testing.
    """

    backend: str = "torch"
    model: str = "mobilenet"
    alpha: float = 0.25
    weights: str = "none"
    image_size: int = 64
    batch_size: int = 32
    epochs: float | None = 10.0
    steps: int | None = None
    eval_every: int | None = None
    learning_rate: float = 1e-3
    rotation: float = 0.1
    augment: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InvalidParameterError("--backend", self.backend, "'torch' or 'keras'")
        if self.model not in MODELS:
            raise InvalidParameterError("--model", self.model, "'mobilenet' or 'small-cnn'")
        if not 0 < self.alpha <= 4:
            raise InvalidParameterError("--alpha", self.alpha, "a MobileNet width multiplier in (0, 4], e.g. 0.25")
        if self.image_size < 16:
            raise InvalidParameterError("--image-size", self.image_size, "at least 16 pixels")
        if self.batch_size < 1:
            raise InvalidParameterError("--batch-size", self.batch_size, "a positive integer")
        if self.steps is None and (self.epochs is None or self.epochs <= 0):
            raise InvalidParameterError("--epochs", self.epochs, "a positive number of baseline epochs (or give --steps)")
        if self.steps is not None and self.steps < 1:
            raise InvalidParameterError("--steps", self.steps, "a positive number of optimizer steps")
        if self.eval_every is not None and self.eval_every < 1:
            raise InvalidParameterError("--eval-every", self.eval_every, "a positive number of steps")
        if self.learning_rate <= 0:
            raise InvalidParameterError("--lr", self.learning_rate, "a positive learning rate")
        if self.weights == "imagenet" and (self.backend != "keras" or self.model != "mobilenet"):
            raise InvalidParameterError(
                "--weights", "imagenet", "'none' or a local weights file with this backend/model",
                "ImageNet weights exist only for --backend keras --model mobilenet",
            )
        if self.weights not in ("none", "imagenet") and not Path(self.weights).is_file():
            raise InvalidParameterError(
                "--weights", self.weights, "'imagenet', 'none' or the path of an existing weights file"
            )

    def budget(self, n_baseline_train: int) -> tuple[int, int]:
        """``(steps, eval_every)`` for a split whose baseline has ``n_baseline_train`` images."""
        epoch = max(1, -(-n_baseline_train // self.batch_size))
        steps = self.steps if self.steps is not None else max(1, round(float(self.epochs) * epoch))
        every = self.eval_every or min(epoch, steps)
        return steps, every

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
