"""The augmenter's parameters, one validator each (imbalanced-learn style: the message names the
parameter, echoes the value and says what is allowed), and the notice for an unsplit folder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import InvalidParameterError
from ._generator import Generator, GeneratorOptions

__all__ = ["resolve_generator", "unsplit_notice", "validate_seed", "validate_workers"]


def resolve_generator(
    generator: str | Generator | type[Generator], options: GeneratorOptions | Mapping[str, Any] | None = None
) -> Generator:
    """A generator instance from a registered name, a class or an instance."""
    if isinstance(generator, Generator):
        if options:
            raise InvalidParameterError(
                "generator_options", dict(options), "empty when an instance is given (set options on the instance)"
            )
        return generator
    if isinstance(generator, type) and issubclass(generator, Generator):
        return generator(options)
    if isinstance(generator, str):
        from ._plugins import get_generator

        return get_generator(generator)(options)
    raise InvalidParameterError("generator", generator, "a registered generator name, a Generator class or instance")


def validate_seed(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameterError("random_state", value, "a non-negative integer")
    return value


def validate_workers(value: object) -> int:
    from ._generation_pool import default_workers

    if value is None:
        return default_workers()
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameterError("workers", value, "a whole number of at least 1")
    return value


def unsplit_notice(generator: str) -> str:
    """The one-line notice for a trainable generator fitted on a folder with no held-out split."""
    return (f"generator {generator!r} learns from every image of this unsplit folder: none of them may be in a "
            "test set later (a model can memorise them); make the split first (`synthaug split DATA --out ROOT`) "
            "and balance ROOT")
