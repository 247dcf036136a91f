"""Running the trainings of an evaluation: in this process (``jobs=1``) or in ``jobs`` worker
processes (``concurrent.futures`` with the ``spawn`` start method, so no worker inherits a
half-initialised torch/TF thread pool).

Every training is seeded by its task alone and each worker sets its framework's CPU threads
to ``threads`` (default: CPU cores // jobs), so a task gives the same numbers in any process;
results come back in task order whatever order they finish in. With several CUDA devices,
worker ``i`` trains on ``devices[i]`` (one training per GPU; :mod:`.device`).
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from typing import Any

from .._errors import InvalidParameterError, SynthaugError, UsageError
from .._progress import Progress
from .training import TrainingTask, run_training

__all__ = ["on_device", "run_tasks", "worker_threads"]

Record = dict[str, Any]


def worker_threads(threads: int | None, jobs: int) -> int:
    """CPU threads per training: ``threads`` if given, else the cores shared out among ``jobs``."""
    return threads or max(1, (os.cpu_count() or 1) // jobs)


def _set_threads(n: int, backend: str) -> None:
    if backend == "torch":
        import torch

        torch.set_num_threads(n)
    # the keras backend sets TF's thread pools itself from config.threads


def _timed(task: TrainingTask, threads: int, progress_task: Any = None, cache: Any = None) -> Record:
    _set_threads(threads, task.config.backend)
    started = time.perf_counter()
    record = run_training(task, progress_task, cache)
    record["seconds"] = round(time.perf_counter() - started, 2)
    return record


def on_device(task: TrainingTask, device: str | None) -> TrainingTask:
    """``task`` with its classifier placed on ``device`` (unchanged for None or keras)."""
    if device is None or task.config.backend != "torch" or task.config.device == device:
        return task
    return replace(task, config=replace(task.config, device=device))


def _init_worker(slots: Any, devices: Sequence[str]) -> None:
    """Worker start-up: take the next worker index from ``slots``; its device is ``devices[index]``."""
    global _WORKER_DEVICE
    _WORKER_DEVICE = devices[slots.get() % len(devices)] if devices else None


def _in_worker(task: TrainingTask, threads: int) -> Record:
    """A task in a worker process; a synthaug error comes back as a picklable one, same message."""
    from .._adapters._decode import ImageCache

    global _WORKER_CACHE
    if _WORKER_CACHE is None:
        _WORKER_CACHE = ImageCache()
    try:
        return _timed(on_device(task, _WORKER_DEVICE), threads, cache=_WORKER_CACHE)
    except UsageError as exc:  # subclasses take several arguments and do not unpickle
        raise UsageError(str(exc)) from None
    except SynthaugError as exc:
        raise SynthaugError(str(exc)) from None


_WORKER_CACHE: Any = None
_WORKER_DEVICE: str | None = None


def _check_picklable(task: TrainingTask) -> None:
    try:
        pickle.dumps(task.config)
    except Exception as exc:  # noqa: BLE001 - a lambda or local function as model factory
        raise InvalidParameterError(
            "--jobs", "> 1", "a model factory defined at module level (importable by name)",
            f"worker processes cannot receive {task.config.model_name}: {exc}; use --jobs 1 or a module function",
        ) from exc


def run_tasks(tasks: Sequence[TrainingTask], jobs: int, progress: Progress,
              on_result: Callable[[TrainingTask, Record], None], devices: Sequence[str] = ()) -> list[Record]:
    """Run every task; ``on_result`` is called in this process as each one finishes.
    Returns the records in ``tasks`` order. ``devices``: the torch device of each worker
    (:func:`.device.worker_devices`; the first one in this process); empty: the tasks' own."""
    if not tasks:
        return []
    threads = worker_threads(tasks[0].config.threads, jobs)
    if jobs == 1 or len(tasks) == 1:
        from .._adapters._decode import ImageCache

        cache = ImageCache()
        records = []
        for task in tasks:
            bar = progress.task(task.label, task.steps)
            try:
                record = _timed(on_device(task, devices[0] if devices else None), threads, bar, cache)
            finally:
                bar.close()
            on_result(task, record)
            records.append(record)
        return records
    _check_picklable(tasks[0])
    import multiprocessing

    results: dict[int, Record] = {}
    bar = progress.task(f"trainings in {jobs} processes", len(tasks))
    context = multiprocessing.get_context("spawn")
    workers = min(jobs, len(tasks))
    slots = context.Queue()
    for i in range(workers):
        slots.put(i)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                 initargs=(slots, list(devices))) as pool:
            futures = {pool.submit(_in_worker, task, threads): i for i, task in enumerate(tasks)}
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                on_result(tasks[i], results[i])
                progress.log(f"{tasks[i].label}: done in {results[i]['seconds']:.0f} s")
                bar.advance(1)
    finally:
        bar.close()
    return [results[i] for i in range(len(tasks))]
