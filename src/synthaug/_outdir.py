"""Shared guards of every command that writes: where its output may go, and one writer at a time.

- :func:`check_output_location` refuses, before anything is written, an output path that is
  an existing file, or that lies inside (or contains) any input the command reads.
- :func:`claim_output` holds a lock on an output folder for the whole run (a ``filelock``
  lock file ``OUT/.synthaug.lock`` plus ``OUT/.synthaug.lock.json`` naming the holder). A
  second writer gets :class:`~synthaug._errors.OutputLockedError` naming the running process.
  The operating system drops the lock when its process dies, so a lock left by a dead
  process is recovered on the next start. A process that launches workers
  (``--processes N``) claims once; the workers inherit the claim through
  :data:`CLAIM_ENV` and do not lock again.
- :func:`open_run_folder` checks an augmenter's output folder against the run about to be
  written (``"new"``, ``"same"`` run to resume, or ``"stale"`` to clear with ``overwrite``);
  :func:`input_roots` lists the folders a run reads, for :func:`check_output_location`.
- :func:`storage_error` turns an :class:`OSError` met while writing into a
  :class:`~synthaug._errors.SynthaugError` that names the path and says what to do.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from ._errors import OutputConflictError, OutputLockedError, StorageError, SynthaugError
from ._paths import realpaths
from ._store import Store

__all__ = [
    "CLAIM_ENV",
    "LOCK_FILE",
    "LOCK_INFO_FILE",
    "check_output_location",
    "claim_output",
    "input_roots",
    "open_run_folder",
    "storage_error",
]

#: Lock file and its sidecar description, hidden inside the output folder (folder readers skip them).
LOCK_FILE = ".synthaug.lock"
LOCK_INFO_FILE = ".synthaug.lock.json"
#: Environment variable through which launched worker processes inherit their parent's claims.
CLAIM_ENV = "SYNTHAUG_CLAIMED_OUTPUTS"

_HELD: dict[Path, int] = {}  # claims of this process (re-entrant), by resolved folder


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def check_output_location(
    out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]], *, option: str = "--out"
) -> None:
    """Raise unless ``out`` can be a new or existing output folder of a command reading ``inputs``.

    Refused: an ``out`` that is an existing file; an ``out`` equal to, inside, or containing
    an input (symlinks resolved). Call it before writing anything.
    """
    out_path = Path(out)
    if out_path.exists() and not out_path.is_dir():
        raise OutputConflictError(
            f"{option} {str(out)!r} is an existing file, not a folder; give a folder path (new or existing)"
        )
    target = _resolved(out_path)
    sources = []
    for given in sorted({os.fspath(g) for g in inputs if g is not None}):
        source = _resolved(given)
        if source.is_file():
            source = source.parent if source.suffix.lower() == ".csv" else source
        sources.append((given, source))
    # "inside" is checked for every input before "contains", so the message does not depend
    # on the order of ``inputs`` (out == data is reported as inside the data folder).
    for given, source in sources:
        if target == source or source in target.parents:
            raise OutputConflictError(
                f"{option} {str(out)!r} is inside the data folder {given!r}, an input of this command; "
                "inputs are never written to, so choose an output folder outside every input"
            )
    for given, source in sources:
        if target in source.parents:
            raise OutputConflictError(
                f"{option} {str(out)!r} contains the data folder {given!r}, an input of this command; "
                "choose an output folder that neither lies in nor holds an input"
            )


def input_roots(data: object, datasets: Iterable[Any]) -> set[str]:
    """Every folder a run reads: the data argument, the dataset roots, each image's folder,
    and for an image reached through a link (a split root) the folder above its real folder,
    i.e. the original data folder. A file-system root is never one of them."""
    roots = {os.fspath(data)} if isinstance(data, (str, os.PathLike)) else set()
    for ds in datasets:
        if ds.root is not None:
            roots.add(os.fspath(ds.root))
        for s, resolved in zip(ds, realpaths(s.path for s in ds)):  # one realpath per folder
            real = os.path.dirname(resolved)
            roots.add(real)
            if real != os.path.dirname(os.path.abspath(s.path)):
                roots.add(os.path.dirname(real))
    return {r for r in roots if os.path.dirname(os.path.realpath(r)) != os.path.realpath(r)}


RunState = Literal["new", "same", "stale"]


def open_run_folder(
    out: str | os.PathLike[str], run: Mapping[str, Any], *, inputs: Iterable[str], overwrite: bool = False
) -> tuple[Store, RunState]:
    """Raise unless folder ``out`` can take ``run``; return its store and state.

    ``"new"``: no plan yet (an empty or new folder); ``"same"``: this run, to resume;
    ``"stale"``: a different earlier run or a damaged ``plan.json``, to be cleared, allowed
    only with ``overwrite``. Refuses an ``out`` inside or holding one of ``inputs``, and a
    non-empty folder that holds no synthaug run. Writes nothing.
    """
    check_output_location(out, inputs)
    _refuse_linked_folders(Path(out))
    store = Store(out)
    try:
        existing = store.read_plan()
    except OutputConflictError:
        if not overwrite:
            raise
        return store, "stale"
    if existing is None:
        foreign = store.foreign_entries()
        if foreign:
            raise OutputConflictError(
                f"output folder {str(out)!r} is not empty and holds no synthaug plan.json "
                f"({', '.join(foreign[:5])}); choose an empty or new folder"
            )
        return store, "new"
    if existing.get("run") == run:
        return store, "same"
    if not overwrite:
        old, new = existing.get("run") or {}, dict(run)
        other_images = _other_training_sets(old, new)
        if other_images:
            raise OutputConflictError(
                f"output folder {str(out)!r} holds a run made from other source images (the training set of "
                f"{', '.join(map(repr, other_images[:5]))} differs in file names, sizes or SHA-256); its "
                "images must not be kept for this data: use another --out, or --overwrite to delete that run's images"
            )
        derived = _without_training_sets(old), _without_training_sets(new)  # follows generator options
        diff = sorted(k for k in set(old) | set(new) if derived[0].get(k) != derived[1].get(k)) or ["concepts"]
        raise OutputConflictError(
            f"output folder {str(out)!r} holds a different run (differs in: "
            f"{', '.join(diff)}); use another folder, or --overwrite to delete that run's images"
        )
    return store, "stale"


def _refuse_linked_folders(out: Path) -> None:
    """Raise before anything is written when an entry of ``out`` is a symbolic link to a folder:
    synthaug would write (and on ``--overwrite`` delete) through it, into the link's target."""
    if not out.is_dir():
        return
    for entry in sorted(out.iterdir()):
        if entry.is_symlink() and (entry.is_dir() or not entry.exists()):
            raise OutputConflictError(
                f"{str(entry)!r} in the output folder is a symbolic link (to {os.readlink(entry)!r}); synthaug "
                "writes its class folders itself and never through a link, so remove the link or use a new --out"
            )


def _without_training_sets(run: Mapping[str, Any]) -> dict[str, Any]:
    concepts = run.get("concepts")
    if not isinstance(concepts, dict):
        return dict(run)
    return {**run, "concepts": {k: {f: v for f, v in c.items() if f != "training_set"} if isinstance(c, dict) else c
                                for k, c in concepts.items()}}


def _other_training_sets(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The concepts of both runs whose training images (by content) differ."""
    before, after = old.get("concepts") or {}, new.get("concepts") or {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    return sorted(name for name, info in after.items()
                  if isinstance(info, dict) and isinstance(before.get(name), dict)
                  and "training_images" in before[name]  # an older plan without it differs in "concepts"
                  and before[name]["training_images"] != info.get("training_images"))


#: The command line the ``synthaug`` CLI runs (set by it while a command runs); ``None`` for a
#: Python-API run, whose lock holder is described by the process's real command line.
CLI_COMMAND: list[str] | None = None


def _command_line() -> str:
    """How the running process was started: ``synthaug ARGS`` under the CLI, else the Python
    interpreter with its real arguments (``python train.py --fold 2``)."""
    if CLI_COMMAND is not None:
        return " ".join(["synthaug", *CLI_COMMAND])
    argv = [a for a in sys.argv if a] or ["-c"]
    try:
        with open(f"/proc/{os.getpid()}/cmdline", "rb") as fh:
            real = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
        if real:
            return " ".join(real)
    except OSError:
        pass
    return " ".join([os.path.basename(sys.executable) or "python", *argv])


def _holder_description() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": _command_line(),
    }


def _read_holder(folder: Path) -> str:
    try:
        info = json.loads((folder / LOCK_INFO_FILE).read_text())
        return (f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}: "
                f"{info.get('command')}")
    except (OSError, ValueError, AttributeError):
        return "a process whose description could not be read"


def _inherited() -> set[Path]:
    return {Path(p) for p in os.environ.get(CLAIM_ENV, "").split(os.pathsep) if p}


@contextlib.contextmanager
def claim_output(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the one-writer lock of output folder ``out`` (created if needed) inside the block.

    Re-entrant within a process. Raises :class:`~synthaug._errors.OutputLockedError` at once
    when another process holds it. If this call created ``out`` and leaves it holding only
    the lock files, the folder is removed again on exit.
    """
    from filelock import FileLock, Timeout

    folder = Path(out)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, folder, "creating the output folder") from exc
    key = _resolved(folder)
    if key in _HELD or key in _inherited():
        _HELD[key] = _HELD.get(key, 0) + 1
        try:
            yield folder
        finally:
            _HELD[key] -= 1
            if not _HELD[key]:
                del _HELD[key]
        return
    lock = FileLock(str(folder / LOCK_FILE), timeout=0, is_singleton=False)
    try:
        lock.acquire()
    except Timeout:
        raise OutputLockedError(
            f"output folder {str(out)!r} is being written by another synthaug run ({_read_holder(folder)}); "
            "wait for it to finish or stop it. Two writers would corrupt the manifest"
        ) from None
    except OSError as exc:
        raise storage_error(exc, folder / LOCK_FILE, "locking the output folder") from exc
    except NotImplementedError as exc:  # filelock: the file system has no flock support
        raise StorageError(
            f"the file system of {str(out)!r} cannot lock files ({exc}); synthaug will not write there "
            "without a lock, so choose an output folder on a local or NFS v4 file system"
        ) from exc
    _HELD[key] = 1
    try:
        (folder / LOCK_INFO_FILE).write_text(json.dumps(_holder_description()))
        os.environ[CLAIM_ENV] = os.pathsep.join(sorted(str(p) for p in _inherited() | {key}))
        yield folder
    finally:
        del _HELD[key]
        os.environ[CLAIM_ENV] = os.pathsep.join(sorted(str(p) for p in _inherited() - {key}))
        with contextlib.suppress(OSError):
            (folder / LOCK_INFO_FILE).unlink()
        lock.release()
        if created:
            _remove_if_only_lock(folder)


def _remove_if_only_lock(folder: Path) -> None:
    with contextlib.suppress(OSError):
        if {p.name for p in folder.iterdir()} <= {LOCK_FILE, LOCK_INFO_FILE}:
            (folder / LOCK_FILE).unlink(missing_ok=True)
            folder.rmdir()


def storage_error(exc: OSError, path: str | os.PathLike[str] | None = None, action: str = "writing") -> SynthaugError:
    """The :class:`SynthaugError` for an operating-system error met while ``action`` at ``path``."""
    where = str(exc.filename or path or "the output folder")
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(
            f"no space left on the device while {action} {where!r}; free some space, then rerun the same "
            "command: it resumes where it stopped"
        )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputConflictError(
            f"cannot write {where!r} while {action} (permission denied or read-only file system); "
            "choose a writable output folder or fix its permissions"
        )
    if code == errno.ENOTDIR:
        return OutputConflictError(
            f"a part of {where!r} is an existing file, not a folder ({action}); give a folder path"
        )
    if code == errno.EEXIST:
        return OutputConflictError(f"{where!r} already exists as a file ({action}); give a folder path")
    return StorageError(f"{exc.strerror or exc} while {action} {where!r}; fix the cause and rerun the same command")
