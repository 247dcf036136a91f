"""Fitting a generator and generating a run's missing images into the store.

- :func:`fit_generator` calls :meth:`~synthaug.Generator.fit` and turns any failure into a
  :class:`~synthaug._errors.SynthaugError` with context.
- :func:`generate_missing` generates the images a store lacks (this process's share in a
  multi-process run), in this process or in a :class:`~synthaug._generation_pool.GenerationPool`,
  and appends one manifest record per image. A generator that breaks the contract (a
  non-image, more images than seeds, fewer images than seeds) is an error.

A full disk, or an OS error on a path of the output folder, is a storage problem (a rerun
resumes); any other failure is the generator's.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._errors import GenerationError, SynthaugError
from ._generation_pool import WrittenImage
from ._generator import Concept, GeneratedImage, Generator, derive_seed
from ._imageio import to_rgb
from ._outdir import storage_error
from ._progress import NULL_PROGRESS, Progress
from ._store import Store, image_id

__all__ = ["fit_generator", "generate_missing"]


def _failure(exc: OSError, store: Store, context: str) -> SynthaugError:
    """A storage error for a full disk or a path of the output folder or its sidecar; the
    generator's failure otherwise."""
    paths = [Path(os.path.realpath(p)) for p in (exc.filename, exc.filename2) if p]
    ours = (Path(os.path.realpath(store.root)), Path(os.path.realpath(store.sidecar)))
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or any(p == o or o in p.parents for p in paths for o in ours):
        return storage_error(exc, store.root)
    return GenerationError(f"{context}: {type(exc).__name__}: {exc}")


def fit_generator(generator: Generator, concepts: list[Concept], work_dir: Path, store: Store, *,
                  progress: Progress = NULL_PROGRESS) -> None:
    """Fit ``generator`` on ``concepts`` into ``work_dir``; any failure becomes a SynthaugError."""
    try:
        generator.fit(concepts, work_dir, progress=progress)
    except SynthaugError:
        raise
    except OSError as exc:
        raise _failure(exc, store, f"generator {generator.name!r} failed while fitting") from exc
    except Exception as exc:  # noqa: BLE001 - report with context, keep the chain for --debug
        raise GenerationError(
            f"generator {generator.name!r} failed while fitting {', '.join(c.name for c in concepts)}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _pool_for(generator: Generator, workers: int, n_images: int, store: Store, work_dir: Path) -> Any:
    """A started :class:`~synthaug._generation_pool.GenerationPool`, or ``None`` to generate here."""
    from ._generation_pool import GenerationPool, use_pool

    return GenerationPool(generator, workers, store.root, work_dir) if use_pool(generator, workers, n_images) else None


def _checked(generator: Generator, items: Iterable[Any], concept: Concept, indices: Sequence[int],
             seeds: Sequence[int]) -> Iterator[tuple[int, int, Any]]:
    """``(index, seed, item)`` per yielded item; a non-image or an image beyond the seeds
    asked for breaks the generator contract (an error, never silently dropped)."""
    count = 0
    for item in items:
        image = item.image if isinstance(item, GeneratedImage) else item
        if not hasattr(image, "save") or not hasattr(image, "mode"):
            raise GenerationError(
                f"generator yielded {type(image).__name__} for {concept.name!r}; expected a PIL image"
            )
        if count >= len(seeds):
            raise GenerationError(
                f"generator {generator.name!r} broke the contract: it yielded more than the "
                f"{len(seeds)} image(s) asked for {concept.name!r} (one image per seed)"
            )
        yield indices[count], seeds[count], item
        count += 1


def _my_share(concepts: list[Concept], todo: Mapping[str, list[int]],
              ctx: Any) -> tuple[list[Concept], Mapping[str, list[int]]]:
    """This process's round-robin share of the missing images in a multi-process run."""
    from ._distributed import shard

    if ctx is None or not ctx.distributed:
        return concepts, todo
    items = [(c.name, i) for c in concepts for i in todo[c.name]]
    share = set(shard(items, ctx.rank, ctx.world_size))
    todo = {c.name: [i for i in todo[c.name] if (c.name, i) in share] for c in concepts}
    return [c for c in concepts if todo[c.name]], todo


def generate_missing(generator: Generator, concepts: list[Concept], todo: Mapping[str, list[int]], store: Store, *,
                     run_seed: int, workers: int = 1, work_dir: Path, progress: Progress = NULL_PROGRESS,
                     ctx: Any = None) -> None:
    """Generate image ``i`` of each concept for every ``i`` in ``todo[concept.name]`` into ``store``.

    Seeds derive from ``(run_seed, class, concept, i)``; ``workers`` > 1 uses a process pool
    for a ``parallel_generation`` generator (one process per rank in a multi-process run).
    """
    g = generator
    concepts, todo = _my_share(concepts, todo, ctx)
    total = sum(len(todo[c.name]) for c in concepts)
    task = progress.task(f"generating ({g.name})", total)
    options = g.options.model_dump(mode="json")
    pool = _pool_for(g, 1 if ctx is not None and ctx.distributed else workers, total, store, work_dir)
    try:
        for concept in concepts:
            indices = todo[concept.name]
            seeds = [derive_seed(run_seed, concept.label, concept.name, i) for i in indices]
            shared = {"generator": g.name, "generator_version": g.version, "options": options, **g.record(concept)}
            produced = 0
            items = (zip(indices, seeds, pool.generate(concept, seeds, [image_id(concept.slug, i) for i in indices]))
                     if pool else _checked(g, g.generate(concept, seeds), concept, indices, seeds))
            for index, seed, item in items:
                image = item.image if isinstance(item, GeneratedImage) else item
                extra = item.metadata if isinstance(item, GeneratedImage) else {}
                record = {"id": image_id(concept.slug, index), "class": concept.label, "concept": concept.name,
                          "index": index, "seed": seed, "run_seed": run_seed, **shared, **extra}
                if isinstance(image, WrittenImage):  # written by a pool worker: only the record is due
                    store.add_record(record, image.file, image.sha256, image.size)
                else:
                    store.add(to_rgb(image), record)
                produced += 1
                task.advance()
            if produced != len(seeds):
                raise GenerationError(
                    f"generator {g.name!r} yielded {produced} images for {len(seeds)} seeds of {concept.name!r}"
                )
    except SynthaugError:
        raise
    except OSError as exc:
        raise _failure(exc, store, f"generator {g.name!r} failed while generating") from exc
    except Exception as exc:  # noqa: BLE001
        raise GenerationError(f"generator {g.name!r} failed while generating: {type(exc).__name__}: {exc}") from exc
    finally:
        if pool is not None:
            pool.__exit__(None, None, None)
        task.close()
