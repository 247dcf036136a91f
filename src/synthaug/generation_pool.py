"""Generation on all CPU cores: a process pool for generators with ``parallel_generation``.

The augmenter stays the only writer of the output folder. Worker processes rebuild the
generator from its class and options, generate a chunk of seeds, and return each image
already encoded as PNG (encoding is a large share of the cost). The main process receives
the chunks in submission order and hands them to :meth:`synthaug.store.Store.add` exactly
as a one-process run would, so the images, the manifest and its order, and resuming after
an interruption are the same whatever the number of workers. At most a few chunks per
worker are in flight, so memory does not grow with the size of the run.

Workers are started with ``spawn`` (safe beside the progress bar's thread and torch), which
costs about a second once per run; the pool is only used when there is enough work.
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .generator import Concept, GeneratedImage, Generator

__all__ = ["EncodedImage", "GenerationPool", "default_workers", "use_pool"]

#: Most workers used by default (``--workers`` may ask for more).
MAX_DEFAULT_WORKERS = 8
#: Images per task sent to a worker.
CHUNK = 8
#: Fewest images to generate before a pool is worth its start-up.
MIN_IMAGES = 4 * CHUNK

_worker_generator: Generator | None = None


def default_workers() -> int:
    """The CPU cores this process may use, capped at :data:`MAX_DEFAULT_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def use_pool(generator: Generator, workers: int, n_images: int) -> bool:
    """True when generation should run in a pool of ``workers`` processes."""
    importable = "<locals>" not in type(generator).__qualname__  # a worker must import the class
    return (workers > 1 and bool(getattr(generator, "parallel_generation", False)) and importable
            and n_images >= MIN_IMAGES)


class EncodedImage:
    """An image a worker already encoded as PNG; ``save`` writes those bytes unchanged.

    It stands in for the PIL image in :meth:`Store.add`, which encodes with
    ``format="PNG", compress_level=Store.png_compress_level``: the worker encodes with the
    same settings, so the bytes are the ones a one-process run writes.
    """

    mode = "RGB"

    def __init__(self, data: bytes) -> None:
        self.data = data

    def save(self, fp: Any, format: str | None = None, **params: Any) -> None:  # noqa: A002 - PIL's name
        fp.write(self.data)


def _encode(image: Any) -> bytes:
    from .store import Store

    if image.mode != "RGB":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=Store.png_compress_level)
    return buffer.getvalue()


def _start_worker(cls: type[Generator], options: dict[str, Any], work_dir: str | None) -> None:
    global _worker_generator
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _worker_generator = cls(options)
    if work_dir is not None and hasattr(_worker_generator, "work_dir"):
        _worker_generator.work_dir = Path(work_dir)


def _generate_chunk(concept: Concept, seeds: Sequence[int]) -> list[tuple[int, bytes, dict[str, Any]]]:
    """(seed, PNG bytes, metadata) of each seed, in order (runs in a worker)."""
    assert _worker_generator is not None, "worker not initialised"
    out = []
    for seed, item in zip(seeds, _worker_generator.generate(concept, seeds)):
        image = item.image if isinstance(item, GeneratedImage) else item
        metadata = item.metadata if isinstance(item, GeneratedImage) else {}
        out.append((int(seed), _encode(image), dict(metadata)))
    if len(out) != len(seeds):
        from .errors import GenerationError

        raise GenerationError(
            f"generator {_worker_generator.name!r} yielded {len(out)} images for {len(seeds)} seeds of {concept.name!r}"
        )
    return out


class GenerationPool:
    """``workers`` processes generating for one generator; use as a context manager."""

    def __init__(self, generator: Generator, workers: int, work_dir: str | os.PathLike[str] | None = None) -> None:
        import multiprocessing

        self.workers = workers
        options = generator.options.model_dump(mode="python")
        self._executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
            initargs=(type(generator), options, os.fspath(work_dir) if work_dir is not None else None),
        )

    def __enter__(self) -> GenerationPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def generate(self, concept: Concept, seeds: Sequence[int]) -> Iterator[GeneratedImage]:
        """One :class:`GeneratedImage` (holding an :class:`EncodedImage`) per seed, in order."""
        chunks = [list(seeds[i : i + CHUNK]) for i in range(0, len(seeds), CHUNK)]
        pending: deque[Future] = deque()
        window = 3 * self.workers
        next_chunk = 0
        while next_chunk < len(chunks) or pending:
            while next_chunk < len(chunks) and len(pending) < window:
                pending.append(self._executor.submit(_generate_chunk, concept, chunks[next_chunk]))
                next_chunk += 1
            for seed, data, metadata in pending.popleft().result():
                yield GeneratedImage(EncodedImage(data), seed, metadata)
