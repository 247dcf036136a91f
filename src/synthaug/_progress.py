"""Progress reporting: the callback protocol the core and generators report through.

The library never prints. Long operations call a :class:`Progress`; the CLI passes one
that draws rich progress bars, the Python API defaults to :data:`NULL_PROGRESS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

__all__ = ["NULL_PROGRESS", "NullProgress", "Progress", "ProgressTask"]


@runtime_checkable
class ProgressTask(Protocol):
    """One bar: advanced as work is done, closed when finished."""

    def advance(self, n: int = 1, *, metrics: Mapping[str, float] | None = None) -> None:
        """Record ``n`` more units done; ``metrics`` (e.g. ``{"loss": 0.1}``) may be shown."""

    def close(self) -> None:
        """Mark the task finished."""


@runtime_checkable
class Progress(Protocol):
    """Factory of progress tasks."""

    def task(self, description: str, total: int | None = None, *, completed: int = 0) -> ProgressTask:
        """Start a task of ``total`` units (``None`` when unknown), ``completed`` already done."""

    def log(self, message: str) -> None:
        """Show an informational line (the CLI prints it above the bars unless ``--quiet``)."""


class _NullTask:
    def advance(self, n: int = 1, *, metrics: Mapping[str, float] | None = None) -> None:
        return None

    def close(self) -> None:
        return None


class NullProgress:
    """A :class:`Progress` that shows nothing."""

    def task(self, description: str, total: int | None = None, *, completed: int = 0) -> ProgressTask:
        return _NullTask()

    def log(self, message: str) -> None:
        return None


NULL_PROGRESS: Progress = NullProgress()
