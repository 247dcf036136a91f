"""Confinement: the one resolver of every path read back from a file synthaug wrote.

A manifest, a ``--combined`` marker or a results file could be edited, damaged or crafted. A
path it names is used (read, deleted, moved) only when :class:`Confiner` finds it relative,
free of ``..`` and, with symbolic links followed, inside the folder that file belongs to; any
other path makes its record corrupt (:class:`~synthaug._errors.CorruptRecordError`, naming
the file and the record) before anything is deleted or moved.

:func:`owned_image_names` and :func:`remove_unlisted_images` say which files of OUT's class
folders synthaug owns although no manifest lists them (images a worker of a killed run wrote):
only ``<concept slug>-<index>.png`` in the class folder of that concept; a user's file stays.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._errors import CorruptRecordError

__all__ = ["Confiner", "owned_image_names", "remove_unlisted_images", "unused_name"]


def unused_name(path: Path) -> Path:
    """``path``, or ``<stem>.<n><suffix>`` with the smallest ``n`` that names nothing yet."""
    n, candidate = 1, path
    while os.path.lexists(candidate):
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
        n += 1
    return candidate


class Confiner:
    """The one resolver of paths read back from a file synthaug wrote (``manifest.jsonl``'s
    ``file``, the ``--combined`` marker, ``rejected.jsonl``).

    A path must be relative, free of ``..`` and, with symbolic links followed, lie inside
    ``root`` (or one of ``also``, e.g. the sidecar ``OUT.synthaug``). Anything else makes its
    record corrupt: :class:`~synthaug._errors.CorruptRecordError` names the file and the
    record, and the caller has deleted or moved nothing yet. Folders are resolved once each.
    """

    def __init__(self, root: str | os.PathLike[str], *also: str | os.PathLike[str], links_are_entries: bool = False) -> None:
        self.root = Path(root)
        #: True where the listed files are links synthaug made (``--combined``): the link itself
        #: is the entry (removing it never touches its target), so only its folder is resolved.
        self.links_are_entries = links_are_entries
        self._inside = [os.path.realpath(p) for p in (root, *also)]
        self._folders: dict[str, bool] = {}

    def _contained(self, real: str) -> bool:
        return any(real == base or real.startswith(base.rstrip(os.sep) + os.sep) for base in self._inside)

    def resolve(self, rel: object, *, listed_in: str | os.PathLike[str], record: int) -> Path:
        """``root / rel`` once ``rel`` passed the rules above; raise :class:`CorruptRecordError` otherwise."""
        problem = None
        if not isinstance(rel, str) or not rel:
            problem = "names no file"
        elif os.path.isabs(rel) or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
            problem = "is an absolute path"
        elif ".." in re.split(r"[\\/]", rel):
            problem = "contains '..'"
        else:
            full = os.path.join(self.root, rel)
            folder = os.path.dirname(full)
            inside = self._folders.get(folder)
            if inside is None:
                inside = self._folders[folder] = self._contained(os.path.realpath(folder))
            if not inside or (not self.links_are_entries and os.path.islink(full)
                              and not self._contained(os.path.realpath(full))):
                problem = "resolves (symbolic links followed) outside the output folder"
            else:
                return Path(full)
        raise CorruptRecordError(
            f"{listed_in}: record {record} is corrupt: its path {rel!r} {problem}; synthaug only "
            f"touches files inside {str(self.root)!r}, so nothing was deleted or moved. Remove or fix that "
            "record (or use a new output folder)"
        )

    def resolve_all(self, records: Iterable[Mapping[str, Any]], *, listed_in: str | os.PathLike[str],
                    key: str = "file") -> list[Path]:
        """:meth:`resolve` of every record's ``key`` (all checked before the caller acts on any)."""
        return [self.resolve(r.get(key), listed_in=listed_in, record=i) for i, r in enumerate(records, 1)]


def owned_image_names(plan: Mapping[str, Any], records: Iterable[Mapping[str, Any]], confiner: Confiner, *,
                      listed_in: str) -> dict[str, re.Pattern[str]]:
    """Per class folder of a run, the pattern of the image names synthaug gives there: the
    ``<concept slug>-<index>.png`` of the concepts ``plan`` (``plan.json``) and the manifest
    ``records`` name. Every class folder is confined (raises before anything is removed)."""
    from ._generator import concept_slug

    slugs: dict[str, set[str]] = defaultdict(set)
    run = plan.get("run") if isinstance(plan.get("run"), dict) else {}
    concepts = run.get("concepts") if isinstance(run.get("concepts"), dict) else {}
    for name, info in concepts.items():
        if isinstance(info, dict) and isinstance(info.get("label"), str):
            slugs[info["label"]].add(concept_slug(name))
    for r in records:
        if isinstance(r.get("class"), str) and isinstance(r.get("concept"), str):
            slugs[r["class"]].add(concept_slug(r["concept"]))
    for label in slugs:
        confiner.resolve(f"{label}/x.png", listed_in=listed_in, record=0)
    return {label: re.compile("^(?:" + "|".join(map(re.escape, sorted(names))) + r")-\d{5,}\.png$")
            for label, names in slugs.items()}


def remove_unlisted_images(root: Path, own: Mapping[str, re.Pattern[str]]) -> int:
    """Delete the files of ``root/<class>/`` whose names match ``own[class]``
    (:func:`owned_image_names`); returns how many. Links and other files stay."""
    removed = 0
    for label, pattern in own.items():
        folder = root / label
        if folder.is_symlink() or not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if pattern.match(entry.name) and entry.is_file() and not entry.is_symlink():
                entry.unlink()
                removed += 1
    return removed
