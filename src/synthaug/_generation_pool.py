"""Generation on all CPU cores: a process pool for generators with ``parallel_generation``.

Worker processes rebuild the generator from its class and options, generate a chunk of
seeds, and write each image into the output folder themselves
(:meth:`synthaug._store.Store.write_image`: PNG encoding, an atomic rename and ``fsync``,
the bulk of the cost). The main process stays the only writer of the manifest: it takes
the chunks in submission order and appends their records (:meth:`Store.add_record`)
exactly as a one-process run does. So the images, the manifest and its order are the same
whatever the number of workers, and an interruption leaves what a one-process run leaves
at worst (images without a manifest line, written again with the same bytes on resume).
At most a few chunks per worker are in flight, so memory does not grow with the run. A
concept (with its list of training images: 30,000 paths for a large class) is pickled once
into a private temporary folder and loaded once per worker, not sent with every chunk, so the
cost per image does not grow with the class size.

Workers are forked on Linux (:func:`pool_context`): start-up costs milliseconds and a
script that calls synthaug without an ``if __name__ == "__main__":`` guard still works. The
workers only run PIL/numpy code and report errors back by pickling, never through the
parent's console. Elsewhere they are spawned (about a second once per run, and the calling
script needs the guard). The pool is only used when there is enough work.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import GenerationError
from ._generator import Concept, GeneratedImage, Generator
from ._imageio import to_rgb

__all__ = ["WrittenImage", "GenerationPool", "default_workers", "exit_with_parent", "pool_context", "use_pool"]

#: Most workers used by default (``--workers`` may ask for more).
MAX_DEFAULT_WORKERS = 8
#: Images per task sent to a worker.
CHUNK = 8
#: Fewest images to generate before a pool is worth its start-up.
MIN_IMAGES = 4 * CHUNK

_worker_generator: Generator | None = None
_worker_store: Any = None
_worker_concept: tuple[str, Concept] | None = None


def default_workers() -> int:
    """The CPU cores this process may use, capped at :data:`MAX_DEFAULT_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def pool_context() -> Any:
    """The multiprocessing context of synthaug's worker pools: ``fork`` on Linux, else ``spawn``."""
    import multiprocessing
    import sys

    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def use_pool(generator: Generator, workers: int, n_images: int) -> bool:
    """True when generation should run in a pool of ``workers`` processes."""
    cls = type(generator)
    importable = "<locals>" not in cls.__qualname__ and cls.__module__ != "__main__"  # for spawned workers
    return (workers > 1 and bool(getattr(generator, "parallel_generation", False)) and importable
            and n_images >= MIN_IMAGES)


@dataclass(frozen=True)
class WrittenImage:
    """An image a worker already wrote to ``OUT/<file>``; its manifest line is still due."""

    file: str
    sha256: str
    size: int


def exit_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this worker when the process that started it is gone.

    A forked worker inherits the pool's pipes, so a parent killed with SIGKILL would leave it
    waiting forever; a daemon thread checks the parent once a second.
    """
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="synthaug-parent-watch", daemon=True).start()


def _start_worker(cls: type[Generator], options: dict[str, Any], work_dir: str | None, out_dir: str,
                  parent_pid: int) -> None:
    global _worker_generator, _worker_store
    from ._store import Store

    exit_with_parent(parent_pid)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _worker_store = Store(out_dir)
    _worker_generator = cls(options)
    if work_dir is not None:  # the work-dir contract of Generator
        _worker_generator.work_dir = Path(work_dir)


def _load_concept(path: str) -> Concept:
    """The concept pickled at ``path`` (read once per worker while it stays the current one)."""
    global _worker_concept
    if _worker_concept is None or _worker_concept[0] != path:
        with open(path, "rb") as fh:
            _worker_concept = (path, pickle.load(fh))
    return _worker_concept[1]


def _generate_chunk(concept_file: str, seeds: Sequence[int], ids: Sequence[str]) -> list[tuple[WrittenImage, dict]]:
    """Generate and write image ``ids[i]`` from ``seeds[i]`` of the concept pickled at
    ``concept_file`` (runs in a worker); their metadata."""
    assert _worker_generator is not None and _worker_store is not None, "worker not initialised"
    concept = _load_concept(concept_file)
    out = []
    for ident, item in zip(ids, _worker_generator.generate(concept, seeds)):
        image = item.image if isinstance(item, GeneratedImage) else item
        if not hasattr(image, "save") or not hasattr(image, "mode"):
            raise GenerationError(f"generator yielded {type(image).__name__} for {concept.name!r}; expected a PIL image")
        written = WrittenImage(*_worker_store.write_image(to_rgb(image), concept.label, ident))
        out.append((written, dict(item.metadata) if isinstance(item, GeneratedImage) else {}))
    if len(out) != len(seeds):
        raise GenerationError(
            f"generator {_worker_generator.name!r} yielded {len(out)} images for {len(seeds)} seeds of {concept.name!r}"
        )
    return out


class GenerationPool:
    """``workers`` processes generating for one generator; use as a context manager."""

    def __init__(self, generator: Generator, workers: int, out_dir: str | os.PathLike[str],
                 work_dir: str | os.PathLike[str] | None = None) -> None:
        self.workers = workers
        options = generator.options.model_dump(mode="python")
        self._executor = ProcessPoolExecutor(
            workers, mp_context=pool_context(), initializer=_start_worker,
            initargs=(type(generator), options, os.fspath(work_dir) if work_dir is not None else None, os.fspath(out_dir),
                      os.getpid()),
        )
        self._shared = tempfile.TemporaryDirectory(prefix="synthaug-pool-")
        self._concept_files: dict[int, tuple[Concept, str]] = {}  # id(concept) -> (concept, its file)

    def __enter__(self) -> GenerationPool:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._executor.shutdown(wait=True, cancel_futures=True)
        finally:
            self._shared.cleanup()

    def _concept_file(self, concept: Concept) -> str:
        """The file ``concept`` is pickled in for the workers (written once per concept object;
        each file has its own name, so a worker never mistakes one concept for another)."""
        known = self._concept_files.get(id(concept))
        if known is None:
            path = os.path.join(self._shared.name, f"concept-{len(self._concept_files)}.pickle")
            with open(path, "wb") as fh:
                pickle.dump(concept, fh, protocol=pickle.HIGHEST_PROTOCOL)
            known = self._concept_files[id(concept)] = (concept, path)  # the concept kept: its id stays unique
        return known[1]

    def generate(self, concept: Concept, seeds: Sequence[int], ids: Sequence[str]) -> Iterator[GeneratedImage]:
        """Write image ``ids[i]`` from ``seeds[i]``; yield a :class:`GeneratedImage` holding a
        :class:`WrittenImage` per seed, in order."""
        concept_file = self._concept_file(concept)
        chunks = [(list(seeds[i : i + CHUNK]), list(ids[i : i + CHUNK])) for i in range(0, len(seeds), CHUNK)]
        pending: deque[Future] = deque()
        window = 3 * self.workers
        next_chunk = 0
        while next_chunk < len(chunks) or pending:
            while next_chunk < len(chunks) and len(pending) < window:
                pending.append(self._executor.submit(_generate_chunk, concept_file, *chunks[next_chunk]))
                next_chunk += 1
            chunk_seeds = chunks[next_chunk - len(pending)][0]
            for seed, (written, metadata) in zip(chunk_seeds, pending.popleft().result()):
                yield GeneratedImage(written, seed, metadata)
