"""Keras classifier of the harness: ``keras.applications.MobileNet`` (or a small CNN) + thesis head.

``--weights imagenet`` asks Keras for the ImageNet MobileNet weights (a download on first use,
cached under ``~/.keras/models``); ``--weights PATH`` loads a local weights file into the
backbone; ``--weights none`` starts from random weights. Training augmentation (random flips
and rotations) is part of the model and active only while training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import InvalidParameterError
from .._optional import require
from .config import TrainConfig

__all__ = ["KerasClassifier", "build_keras_model"]

_SMALL_CNN = (16, 32, 64, 128)


def _keras():
    return require("keras", purpose="the keras backend of `synthaug evaluate`")


def _backbone(config: TrainConfig, shape: tuple[int, int, int]):
    keras = _keras()
    if config.model == "small-cnn":
        if config.weights != "none":
            raise InvalidParameterError("--weights", config.weights, "'none' with --model small-cnn")
        inputs = keras.Input(shape)
        x = inputs
        for width in _SMALL_CNN:
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU(6.0)(x)
            x = keras.layers.MaxPooling2D()(x)
        return keras.Model(inputs, x, name="small_cnn")
    weights = None if config.weights == "none" else config.weights
    try:
        return keras.applications.MobileNet(input_shape=shape, alpha=config.alpha, include_top=False, weights=weights)
    except Exception as exc:  # noqa: BLE001 - a failed download or a bad file, reported as bad input
        if config.weights == "imagenet":
            raise InvalidParameterError(
                "--weights", "imagenet", "weights Keras can load",
                f"downloading the ImageNet MobileNet weights failed ({type(exc).__name__}: {exc}); run once on a "
                "machine with internet access (Keras caches them in ~/.keras/models), or pass a local weights "
                "file with --weights PATH, or --weights none",
            ) from exc
        raise InvalidParameterError(
            "--weights", config.weights, "a Keras MobileNet weights file matching --alpha and include_top=False",
            f"{type(exc).__name__}: {exc}",
        ) from exc


def _factory_model(config: TrainConfig, n_classes: int):
    """The user factory's keras.Model with ``config.weights`` (a file) loaded into it."""
    from .factory import build_factory_model

    model = build_factory_model(config.factory, n_classes, "keras")
    if config.weights != "none":
        try:
            model.load_weights(config.weights)
        except Exception as exc:  # noqa: BLE001 - a bad or mismatched file, reported as bad input
            raise InvalidParameterError("--weights", config.weights, "a Keras weights file of the factory's model",
                                        f"{type(exc).__name__}: {exc}") from exc
    return model


def build_keras_model(config: TrainConfig, n_classes: int):
    """Inputs in [0, 255] -> flips/rotations (training only) -> [-1, 1] -> backbone -> thesis head;
    with a model factory: inputs in [0, 255] -> flips/rotations -> the factory's model (logits)."""
    keras = _keras()
    layers = keras.layers
    shape = (config.image_size, config.image_size, 3)
    inputs = keras.Input(shape)
    x = inputs
    if config.augment:
        x = layers.RandomFlip("horizontal_and_vertical")(x)
        if config.rotation > 0:
            x = layers.RandomRotation(config.rotation, fill_mode="reflect")(x)
    if config.factory is not None:
        return _compiled(keras, keras.Model(inputs, _factory_model(config, n_classes)(x)), config)
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(x)
    x = _backbone(config, shape)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(256, activation="leaky_relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(128, activation="leaky_relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.15)(x)
    outputs = layers.Dense(n_classes)(x)  # logits
    return _compiled(keras, keras.Model(inputs, outputs, name="synthaug_classifier"), config)


def _compiled(keras, model, config: TrainConfig):
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=(keras.losses.CategoricalCrossentropy(from_logits=True) if config.label_mode == "soft"
              else keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
    )
    return model


class KerasClassifier:
    """Same interface as :class:`~synthaug._evaluate.torch_backend.TorchClassifier`."""

    def __init__(self, data: Any, config: TrainConfig, *, class_weights: Mapping[str, float] | None,
                 seed: int, cache: Any = None) -> None:
        import numpy as np

        keras = _keras()
        tf = require("tensorflow", purpose="the keras backend of `synthaug evaluate`")
        if config.threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(config.threads)
                tf.config.threading.set_inter_op_parallelism_threads(config.threads)
            except RuntimeError:
                pass  # already initialised in this process
        keras.utils.set_random_seed(seed)
        self.classes = list(data.classes)
        self.model = build_keras_model(config, len(self.classes))
        self.class_weight = (
            {i: float(class_weights[c]) for i, c in enumerate(self.classes)} if class_weights is not None else None
        )
        train = data.to_tf(config.image_size, config.batch_size, True, seed, cache=True,
                           label_mode="soft" if config.label_mode == "soft" else "int")
        self._iterator = iter(train.repeat())
        self._held = {}
        for split in ("val", "test"):
            batches = list(data.to_tf(config.image_size, 256, False, split=split, cache=False))
            images = np.concatenate([b[0].numpy() for b in batches]) if batches else np.zeros((0, *[config.image_size] * 2, 3))
            labels = [int(v) for b in batches for v in b[1].numpy()]
            self._held[split] = (images, labels)

    def train_steps(self, n: int) -> float:
        total = 0.0
        for _ in range(n):
            images, labels = next(self._iterator)
            loss = self.model.train_on_batch(images, labels, class_weight=self.class_weight)
            total += float(loss if not isinstance(loss, (list, tuple)) else loss[0])
        return total / max(n, 1)

    def predict(self, split: str) -> tuple[Any, list[int]]:
        images, labels = self._held[split]
        logits = self.model.predict(images, batch_size=256, verbose=0)
        return logits, labels

    def snapshot(self) -> Any:
        return self.model.get_weights()

    def restore(self, state: Any) -> None:
        self.model.set_weights(state)

    def close(self) -> None:
        self._held.clear()
        _keras().backend.clear_session()
