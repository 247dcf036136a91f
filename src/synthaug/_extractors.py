"""Feature extractors by name: the ``register_feature_extractors`` hook and ``--features SPEC``.

A *feature extractor* makes a feature space (:class:`synthaug._features.FeatureSpace`: a
``name`` and ``extract(paths) -> (n, d) array``) from a spec string::

    colour-texture                    # the download-free default
    dinov2:/models/dinov2-base        # NAME:ARGUMENT, here a local checkpoint folder
    clip:/models/clip-vit-base-patch32
    inception                         # torch-fidelity's weights from the torch hub cache
    inception:/weights/pt_inception.pth
    mypackage.features:embed          # a callable: embed(list of PIL RGB images) -> (n, d) array

Extractors are registered through the ``register_feature_extractors(register)`` hook, the
built-in ones (``synthaug._default_plugins.features``) through the same hook as a
third-party plugin; a plugin whose hook raises is reported as broken and the others keep
working. ``register(name, factory, description="")`` takes a factory
``factory(argument: str | None, *, device: str) -> FeatureSpace``.

A space with an ``identity`` attribute (its name plus a hash of its configuration) has its
rows cached per image content in the user cache folder (:mod:`synthaug._feature_cache`).
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import InvalidParameterError
from ._optional import import_callable

__all__ = [
    "CallableFeatures",
    "ExtractorInfo",
    "describe_extractors",
    "register_extractor",
    "registered_extractors",
    "resolve_feature_space",
]

#: synthaug's own extractor module: a plugin of the ``register_feature_extractors`` hook like any other.
BUILTIN_EXTRACTORS = ("synthaug._default_plugins.features",)
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class ExtractorInfo:
    """A registered extractor: its name, its factory and a one-line description."""

    name: str
    factory: Callable[..., Any]
    description: str = ""


_REGISTRY: dict[str, ExtractorInfo] = {}
_COLLECTED_FROM: list[Any] = []


def register_extractor(name: str, factory: Callable[..., Any], description: str = "") -> None:
    """The ``register`` of the ``register_feature_extractors`` hook."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise TypeError(f"feature extractor name {name!r}: use lower-case letters, digits and '-'")
    if not callable(factory):
        raise TypeError(f"feature extractor {name!r}: the factory {factory!r} is not callable")
    if name in _REGISTRY and _REGISTRY[name].factory.__module__.startswith("synthaug."):
        raise TypeError(f"feature extractor name {name!r} is built into synthaug")
    _REGISTRY[name] = ExtractorInfo(name, factory, description)


def registered_extractors() -> dict[str, ExtractorInfo]:
    """Every extractor by name, collected once per plugin manager through the hook."""
    from ._plugins import get_plugin_manager, register_feature_extractors

    pm = get_plugin_manager()
    if not _COLLECTED_FROM or _COLLECTED_FROM[0] is not pm:
        _REGISTRY.clear()
        _COLLECTED_FROM[:] = [pm]
        register_feature_extractors(register_extractor, BUILTIN_EXTRACTORS)
    return _REGISTRY


def describe_extractors() -> str:
    """``name (description)`` of every extractor, for help texts and errors."""
    return ", ".join(f"{i.name}" for i in registered_extractors().values())


# -- a user callable ------------------------------------------------------------------------------------
def _source_hash(func: Callable[..., Any]) -> str:
    """Hash of the file that defines ``func`` (a changed function gets new cache entries)."""
    module = importlib.import_module(func.__module__) if getattr(func, "__module__", None) else None
    source = getattr(module, "__file__", None)
    try:
        return hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16] if source else "nofile"
    except OSError:
        return "nofile"


class CallableFeatures:
    """A user function ``f(images: list[PIL.Image RGB]) -> (n, d) array`` as a feature space."""

    def __init__(self, spec: str, batch_size: int = 32) -> None:
        wanted = "package.module:function returning an (n, d) array for a list of n PIL RGB images"
        target = import_callable(spec, parameter="features", wanted=wanted)
        self.function = target
        self.name = spec
        self.identity = f"callable:{spec}:{_source_hash(target)}"
        self.batch_size = batch_size

    def extract(self, paths: Sequence[Path]) -> Any:
        import numpy as np

        from ._imageio import load_image

        rows = []
        for start in range(0, len(paths), self.batch_size):
            batch = [load_image(Path(p)) for p in paths[start : start + self.batch_size]]
            out = np.asarray(self.function(batch), dtype=np.float64)
            if out.ndim != 2 or out.shape[0] != len(batch):
                raise InvalidParameterError("features", self.name, "a function returning an (n, d) array",
                                            f"got shape {out.shape} for {len(batch)} images")
            rows.append(out)
        return np.concatenate(rows) if rows else np.zeros((0, 0))


# -- resolving a spec ----------------------------------------------------------------------------------
def _cached(space: Any, cache: bool) -> Any:
    if not cache or not getattr(space, "identity", None):
        return space
    from ._feature_cache import CachedFeatures

    return CachedFeatures(space)


def _auto() -> tuple[Any, str]:
    from ._features import ColourTextureFeatures, InceptionFeatures, inception_unavailable_reason

    reason = inception_unavailable_reason()
    if reason is None:
        return InceptionFeatures(), "Inception-v3 pool features (torch-fidelity weights found locally)"
    return ColourTextureFeatures(), f"colour-texture statistics (download-free; Inception not used: {reason})"


def _generator_space(generator: Any) -> tuple[Any, str]:
    from ._features import ColourTextureFeatures, GeneratorFeatures
    from ._generator import has_features

    if generator is not None and has_features(generator):
        return GeneratorFeatures(generator), f"features of generator {generator.name!r}"
    who = f"generator {generator.name!r}" if generator is not None else "no generator"
    return ColourTextureFeatures(), f"colour-texture statistics ({who} provides no features(paths))"


def resolve_feature_space(spec: Any = "auto", *, generator: Any = None, device: str = "auto",
                          cache: bool = True) -> tuple[Any, str]:
    """A feature space from a spec (see the module docstring), and a sentence saying which and why.

    ``"auto"``: Inception when torch-fidelity and its weights are on disk, else
    ``colour-texture``. ``"generator"``: the generator's ``features(paths)`` (falls back to
    ``colour-texture`` with a note when it has none). An object with ``name`` and
    ``extract(paths)`` is used as is. Spaces with an ``identity`` are cached (``cache``).
    """
    if not isinstance(spec, str):
        if not callable(getattr(spec, "extract", None)):
            raise InvalidParameterError("features", spec, "a spec (" + describe_extractors() + ") or a FeatureSpace")
        return _cached(spec, cache), f"custom feature space {getattr(spec, 'name', type(spec).__name__)!r}"
    text = spec.strip()
    head, sep, argument = text.partition(":")
    key = head.strip().lower().replace("_", "-")
    key = "colour-texture" if key == "color-texture" else key
    extractors = registered_extractors()
    if key == "auto" and not sep:
        return _auto()
    if key == "generator" and not sep:
        return _generator_space(generator)
    if key in extractors:
        info = extractors[key]
        space = info.factory(argument.strip() if sep else None, device=device)
        note = f"{info.description or key}" + (f" from {argument.strip()}" if sep else "") + ", as requested"
        return _cached(space, cache), note
    if _CALLABLE.match(text):
        space = CallableFeatures(text)
        return _cached(space, cache), f"user function {text}"
    raise InvalidParameterError(
        "features", spec, "auto, generator, one of " + describe_extractors() + " (NAME or NAME:ARGUMENT), "
        "or package.module:function")
