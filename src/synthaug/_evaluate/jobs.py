"""Running the trainings of an evaluation: in this process (``jobs=1``) or in ``jobs`` worker
processes (``concurrent.futures`` with the ``spawn`` start method, so no worker inherits a
half-initialised torch/TF thread pool).

Every training is seeded by its task alone and each worker sets its framework's CPU threads
to ``threads`` (default: CPU cores // jobs), so a task gives the same numbers in any process;
results come back in task order whatever order they finish in.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from .._errors import InvalidParameterError, SynthaugError, UsageError
from .._progress import Progress
from .training import TrainingTask, run_training

__all__ = ["run_tasks", "worker_threads"]

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


def _in_worker(task: TrainingTask, threads: int) -> Record:
    """A task in a worker process; a synthaug error comes back as a picklable one, same message."""
    from .._adapters._decode import ImageCache

    global _WORKER_CACHE
    if _WORKER_CACHE is None:
        _WORKER_CACHE = ImageCache()
    try:
        return _timed(task, threads, cache=_WORKER_CACHE)
    except UsageError as exc:  # subclasses take several arguments and do not unpickle
        raise UsageError(str(exc)) from None
    except SynthaugError as exc:
        raise SynthaugError(str(exc)) from None


_WORKER_CACHE: Any = None


def _check_picklable(task: TrainingTask) -> None:
    try:
        pickle.dumps(task.config)
    except Exception as exc:  # noqa: BLE001 - a lambda or local function as model factory
        raise InvalidParameterError(
            "--jobs", "> 1", "a model factory defined at module level (importable by name)",
            f"worker processes cannot receive {task.config.model_name}: {exc}; use --jobs 1 or a module function",
        ) from exc


def run_tasks(tasks: Sequence[TrainingTask], jobs: int, progress: Progress,
              on_result: Callable[[TrainingTask, Record], None]) -> list[Record]:
    """Run every task; ``on_result`` is called in this process as each one finishes.
    Returns the records in ``tasks`` order."""
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
                record = _timed(task, threads, bar, cache)
            finally:
                bar.close()
            on_result(task, record)
            records.append(record)
        return records
    _check_picklable(tasks[0])
    import multiprocessing

    results: dict[int, Record] = {}
    bar = progress.task(f"trainings in {jobs} processes", len(tasks))
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
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
