"""The exception tree of synthaug.

Every error the library raises on purpose derives from :class:`SynthaugError`::

    SynthaugError
    ├── UsageError                 bad user input; the CLI exits with code 2
    │   ├── InvalidParameterError  a parameter has a value that is not allowed (also ValueError)
    │   ├── UnknownGeneratorError  no generator with that name is registered (also KeyError)
    │   ├── InvalidOptionsError    generator options failed validation (also ValueError)
    │   ├── DatasetError           input images or labels cannot be used
    │   │   └── UnreadableImageError  an image file cannot be decoded (strict mode)
    │   ├── LeakageError           validation/test images would reach a generator or synthetic data
    │   └── OutputConflictError    the output folder holds another run or lies inside the data
    │       └── OutputLockedError  another synthaug process is writing the output folder
    ├── MissingDependencyError     an optional extra is not installed (also ImportError)
    ├── PluginError                a plugin is broken
    │   └── DuplicateGeneratorError  two plugins register one generator name
    ├── GenerationError            fitting or generating failed at run time
    └── StorageError               the disk is full or another OS error stopped a write

Messages name the offending parameter, file or option, echo the value and say what to do.
"""

from __future__ import annotations

__all__ = [
    "DatasetError",
    "DuplicateGeneratorError",
    "GenerationError",
    "InvalidOptionsError",
    "InvalidParameterError",
    "LeakageError",
    "MissingDependencyError",
    "OutputConflictError",
    "OutputLockedError",
    "PluginError",
    "StorageError",
    "SynthaugError",
    "UnknownGeneratorError",
    "UnreadableImageError",
    "UsageError",
]


class SynthaugError(Exception):
    """Base class of every error raised on purpose by synthaug."""

    #: Exit status the command line uses for this error.
    exit_code: int = 1


class UsageError(SynthaugError):
    """The user asked for something that cannot be done as asked (CLI exit code 2)."""

    exit_code = 2


class InvalidParameterError(UsageError, ValueError):
    """A parameter has a value outside what is allowed."""

    def __init__(self, parameter: str, value: object, allowed: str, hint: str = "") -> None:
        self.parameter = parameter
        self.value = value
        self.allowed = allowed
        message = f"invalid {parameter}={value!r}: {allowed}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class UnknownGeneratorError(UsageError, KeyError):
    """No generator with the requested name is registered."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = available
        listed = ", ".join(available) or "none"
        super().__init__(
            f"unknown generator {name!r}; available generators: {listed} "
            "(`synthaug plugins` shows plugins that failed to load)"
        )

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class InvalidOptionsError(UsageError, ValueError):
    """Generator options failed validation (unknown key, wrong type, out of range)."""


class DatasetError(UsageError):
    """The input images or labels cannot be used as given."""


class UnreadableImageError(DatasetError):
    """An image file cannot be decoded (raised instead of skipping in strict mode)."""

    def __init__(self, paths: list[str], reasons: list[str] | None = None) -> None:
        self.paths = paths
        self.reasons = reasons or []
        shown = ", ".join(paths[:10]) + (" …" if len(paths) > 10 else "")
        super().__init__(
            f"{len(paths)} unreadable image file(s): {shown}; "
            "fix or remove them, or drop strict mode to skip them with a warning"
        )


class LeakageError(UsageError):
    """Validation or test images would be used to fit a generator or be mixed with synthetic data."""


class OutputConflictError(UsageError):
    """The output folder cannot be used: it holds another run, foreign files, or lies in the data."""


class CorruptRecordError(OutputConflictError):
    """A file synthaug wrote (manifest, marker, results) names a path outside its output folder;
    the message names the file and the record, and nothing was deleted or moved."""


class OutputLockedError(OutputConflictError):
    """Another process holds the output folder's one-writer lock (the message names it)."""


class StorageError(SynthaugError):
    """Writing failed for an operating-system reason (e.g. a full disk); rerunning resumes."""


class MissingDependencyError(SynthaugError, ImportError):
    """An optional dependency is missing; the message gives the exact ``pip install``."""

    exit_code = 2


class PluginError(SynthaugError):
    """A plugin could not be loaded or registered something invalid."""


class DuplicateGeneratorError(PluginError, UsageError):
    """Two plugins register a generator under the same name."""

    exit_code = 2


class GenerationError(SynthaugError):
    """Fitting a generator or generating images failed at run time."""
