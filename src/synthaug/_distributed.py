"""Running one balance over several processes (``accelerate launch``, torchrun underneath).

The work is split deterministically, so N processes write exactly what one would:

- **fitting across concepts**: concept ``i`` (in plan order) is fitted by rank ``i % N``
  when the generator fits one artifact per concept (``Generator.fit_scope == "concept"``);
  a generator with one model for all concepts is fitted by the main process;
- **fitting within a concept** (``Generator.fit_scope == "data"``, e.g. a diffusion generator
  with ``parallel=data``): every rank trains every concept on its own share of each batch and
  the gradients are averaged (:meth:`DistContext.average`); the main process saves;
- **generation**: the missing images, ordered by (concept, index), are dealt round-robin;
  each image's seed depends only on (run seed, class, concept, index);
- **manifest**: each rank appends to ``manifest.part-<rank>.jsonl``; the main process merges
  the parts atomically into ``manifest.jsonl`` (also after a crash, on the next start).

Phases end at a synchronisation point where every rank reports success or its error; an
error on any rank stops every rank with a message naming the rank. Without a distributed
launch (no ``WORLD_SIZE`` > 1 in the environment) everything runs in this process.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ._errors import GenerationError, SynthaugError

__all__ = ["DistContext", "current_context", "shard"]

T = TypeVar("T")


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Round-robin share of ``items`` for ``rank`` (deterministic for a given order)."""
    return list(items[rank::world_size])


@dataclass
class DistContext:
    """Rank, world size and the synchronisation primitive of the current launch."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def _gather(self, status: Any) -> list[Any]:
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, status)
        return gathered

    def barrier(self) -> None:
        """Wait until every rank gets here (nothing to do in a single process)."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def average(self, tensors: Sequence[Any]) -> None:
        """Replace each tensor, in place, by its mean over the ranks (one collective call).

        All tensors must be float32 on one device (CPU with gloo, the rank's GPU with NCCL).
        Data-parallel training calls it on the gradients of the trainable parameters after
        ``backward``, so every rank takes the same optimizer step.
        """
        if not self.distributed or not tensors:
            return
        import torch
        import torch.distributed as dist

        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for t in tensors:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order; ``[value]`` in a single process."""
        return self._gather(value) if self.distributed else [value]

    def phase(self, name: str, work: Callable[[], T]) -> T | None:
        """Run ``work`` on this rank, then wait for every rank; raise if any rank failed.

        The failing rank re-raises its own error; the others raise
        :class:`~synthaug._errors.GenerationError` naming the failed rank and its message.
        """
        result: T | None = None
        error: BaseException | None = None
        try:
            result = work()
        except Exception as exc:  # noqa: BLE001 - must reach the sync point to stop the others
            error = exc
        if not self.distributed:
            if error is not None:
                raise error
            return result
        status = f"{type(error).__name__}: {error}" if error is not None else None
        statuses = self._gather(status)
        if error is not None:
            if isinstance(error, SynthaugError):
                raise error
            raise GenerationError(f"rank {self.rank} failed during {name}: {status}") from error
        failed = [(r, s) for r, s in enumerate(statuses) if s]
        if failed:
            rank, message = failed[0]
            raise GenerationError(f"rank {rank} failed during {name}: {message}; all ranks stopped")
        return result


_CONTEXT: DistContext | None = None
#: The launch's default process group, kept so that it can be released at exit even when the
#: caller destroyed it already (:func:`_close_process_group`).
_WORLD: Any = None


def current_context() -> DistContext:
    """The context of this process: from ``accelerate``'s state when launched distributed."""
    global _CONTEXT, _WORLD
    if _CONTEXT is not None:
        return _CONTEXT
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        _CONTEXT = DistContext()
        return _CONTEXT
    from ._optional import require

    accelerate = require("accelerate", purpose="multi-process runs")
    torch = require("torch", purpose="multi-process runs")
    # Without GPUs, ask for the CPU backend (gloo) explicitly: accelerate otherwise treats a
    # torchrun-launched CPU process as a single, non-distributed one.
    state = accelerate.PartialState(cpu=not torch.cuda.is_available())
    _CONTEXT = DistContext(rank=state.process_index, world_size=state.num_processes)
    _WORLD = torch.distributed.group.WORLD if torch.distributed.is_initialized() else None
    atexit.register(_close_process_group)
    return _CONTEXT


def _close_process_group() -> None:
    """Tear a gloo (CPU) process group down before the interpreter exits, threads included.

    Root cause of the sporadic SIGABRT of a finished CPU rank ("terminate called without an
    active exception", issue 21 item 12): ``destroy_process_group()`` only drops torch's own
    references to the group. ``torch.distributed.nn.functional`` (imported by diffusers through
    ``torch._dynamo`` -> ``fsdp`` -> ``_shard``, after the group was initialised) evaluates
    ``group=group.WORLD`` defaults at import time, so ten of its functions keep the live group.
    The C++ ``ProcessGroupGloo`` and its threads (``gloo_tcp_loop``, ``pt_gloo_runloop``) then
    outlived this handler and were torn down during interpreter finalization, where they could
    abort the process. Here the group's captured defaults are dropped too, so the C++ object and
    its threads go away now. NCCL groups are left alone (tearing one down can wait on a failed rank).
    """
    import torch.distributed as dist

    global _WORLD
    world, _WORLD = _WORLD, None
    if dist.is_initialized() and dist.get_backend() == "gloo":
        world = dist.group.WORLD
        dist.destroy_process_group()
    elif dist.is_initialized() or world is None:
        return
    _drop_captured_defaults(world)
    del world  # the last reference: the C++ group joins its threads here, while Python is alive


def _drop_captured_defaults(group: Any) -> int:
    """Replace ``group`` by ``None`` (the default group) in every Python function default that holds
    it (see :func:`_close_process_group`); returns how many functions changed."""
    import gc
    import types

    changed = 0
    for obj in gc.get_objects():
        if not isinstance(obj, types.FunctionType):
            continue
        if obj.__defaults__ and any(d is group for d in obj.__defaults__):
            obj.__defaults__ = tuple(None if d is group else d for d in obj.__defaults__)
            changed += 1
        if obj.__kwdefaults__ and any(d is group for d in obj.__kwdefaults__.values()):
            obj.__kwdefaults__ = {k: None if d is group else d for k, d in obj.__kwdefaults__.items()}
            changed += 1
    return changed
