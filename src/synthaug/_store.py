"""The output folder: ``OUT/<class>/<id>.png``, ``OUT/manifest.jsonl``, ``OUT/plan.json``.

Crash safety: an image is written to a hidden temporary file, flushed to disk and renamed
into place; only then is its manifest line appended (and flushed). A run killed at any
moment therefore leaves at worst a temporary file (removed on the next open), an image
without a manifest line (regenerated under the same name, with the same seed, so the same
bytes), or a partial last manifest line (dropped). Re-running resumes to exactly the plan.

Anything that is not a class folder, ``manifest.jsonl`` or ``plan.json`` stays out of
``OUT`` so that folder readers (torchvision ``ImageFolder``, Keras
``image_dataset_from_directory``) can read it directly; fitted artifacts live in a sidecar
folder, ``OUT.synthaug/`` (``fits/`` for artifacts, ``rejected/`` for filtered images).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._atomic import atomic_write_bytes, atomic_write_json, parse_jsonl
from ._confine import Confiner, owned_image_names, remove_unlisted_images, unused_name
from ._errors import DatasetError, OutputConflictError

__all__ = [
    "MANIFEST", "PLAN", "REJECTED", "Confiner", "Store", "check_layout", "image_id",
]

MANIFEST = "manifest.jsonl"
PLAN = "plan.json"
#: Records of images removed by filtering (their indices are never reused).
REJECTED = "rejected.jsonl"
_TMP_RE = re.compile(r"^\..+\.tmp$")


def image_id(concept_slug: str, index: int) -> str:
    """File stem of synthetic image ``index`` of a concept: ``<concept>-<index:05d>``."""
    return f"{concept_slug}-{index:05d}"


def check_layout(classes: Iterable[str], concepts: Iterable[str]) -> None:
    """Raise :class:`DatasetError` unless every class gets its own ``OUT/<class>/`` folder and
    every concept its own artifact folder and image-id stem (:func:`~synthaug._generator.concept_slug`).

    Names are compared case-folded, as on a case-insensitive file system (macOS, Windows);
    class names may not be the output folder's own files.
    """
    from ._generator import concept_slug

    reserved = {MANIFEST, PLAN, REJECTED}
    folders: dict[str, str] = {}
    for label in classes:
        if label in reserved or label.startswith("manifest.part-"):
            raise DatasetError(
                f"class name {label!r} is a file name synthaug uses in the output folder; rename the class"
            )
        other = folders.setdefault(label.casefold(), label)
        if other != label:
            raise DatasetError(
                f"classes {other!r} and {label!r} differ only in letter case, so their output folders would be "
                "one folder on a case-insensitive file system; rename one of them"
            )
    stems: dict[str, str] = {}
    for name in concepts:
        other = stems.setdefault(concept_slug(name).casefold(), name)
        if other != name:
            raise DatasetError(
                f"concepts {other!r} and {name!r} would share the artifact folder and image ids "
                f"{concept_slug(name)!r}; rename one of the classes"
            )


class Store:
    """Reads and writes one output folder. Not safe for two writers on the same manifest."""

    #: zlib level of written PNGs: 1 encodes ~4x faster than Pillow's default 6 for ~15% more bytes.
    png_compress_level: int = 1

    def __init__(self, out_dir: str | os.PathLike[str], *, part: int | None = None) -> None:
        self.root = Path(out_dir)
        self.main_manifest_path = self.root / MANIFEST
        #: Where :meth:`add` appends: ``manifest.jsonl``, or ``manifest.part-<rank>.jsonl``
        #: for one rank of a multi-process run (merged by :meth:`merge_parts`).
        self.manifest_path = self.root / (MANIFEST if part is None else f"manifest.part-{part}.jsonl")
        self.plan_path = self.root / PLAN
        self.rejected_path = self.root / REJECTED
        self._parsed: dict[Path, tuple[tuple[int, int, int], list[dict[str, Any]], bool]] = {}
        #: Resolves every path a manifest names, confined to OUT (:class:`Confiner`).
        self.confiner = Confiner(self.root)

    @property
    def sidecar(self) -> Path:
        """``OUT.synthaug/``: fitted artifacts (``fits/``) and rejected images (``rejected/``)."""
        return self.root.parent / f"{self.root.name}.synthaug"

    # -- plan ------------------------------------------------------------------------
    def read_plan(self) -> dict[str, Any] | None:
        """The saved plan, ``None`` when there is none; a damaged one raises
        :class:`OutputConflictError` (``--overwrite`` then clears the run)."""
        if not self.plan_path.is_file():
            return None
        try:
            plan = json.loads(self.plan_path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            problem = f"is not valid JSON ({exc})"
        else:
            if isinstance(plan, dict):
                return plan
            problem = f"holds a JSON {type(plan).__name__}, not a synthaug plan object"
        raise OutputConflictError(
            f"{self.plan_path} {problem}; rerun with --overwrite to delete this run's images and start again"
        )

    def write_plan(self, data: Mapping[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.plan_path, dict(data))

    # -- manifest ------------------------------------------------------------------------
    def _read_jsonl(self, path: Path) -> tuple[list[dict[str, Any]], bool]:
        """Records of a JSON-lines file, and whether a damaged (partial) line was dropped.

        Parsed once per run: the result is kept while the file's inode, size and mtime stay
        the same, and dropped whenever this store rewrites or appends to it.
        """
        try:
            st = os.stat(path)
        except OSError:
            return [], False
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._parsed.get(path)
        if cached is None or cached[0] != signature:
            with open(path, "rb") as fh:
                cached = (signature, *parse_jsonl(fh))
            self._parsed[path] = cached
        return list(cached[1]), cached[2]

    def records(self) -> list[dict[str, Any]]:
        """Every complete record of ``manifest.jsonl`` (a partial last line is ignored)."""
        return self._read_jsonl(self.main_manifest_path)[0]

    def part_paths(self) -> list[Path]:
        return sorted(self.root.glob("manifest.part-*.jsonl")) if self.root.is_dir() else []

    def merge_parts(self) -> int:
        """Fold every ``manifest.part-*.jsonl`` into ``manifest.jsonl`` atomically; returns records added.

        Records are ordered by (class, concept, index); a record whose file is missing is
        dropped (it will be generated again). Call from one process only.
        """
        parts = self.part_paths()
        if not parts:
            return 0
        records, _ = self._read_jsonl(self.main_manifest_path)
        self.confiner.resolve_all(records, listed_in=self.main_manifest_path)
        known = {r.get("file") for r in records}
        added = 0
        for part in parts:
            part_records = self._read_jsonl(part)[0]
            self.confiner.resolve_all(part_records, listed_in=part)
            for r in part_records:
                if r.get("file") not in known and (self.root / r.get("file", "")).is_file():
                    known.add(r["file"])
                    records.append(r)
                    added += 1
        records.sort(key=lambda r: (r.get("class", ""), r.get("concept", ""), int(r.get("index", 0))))
        self._rewrite(self.main_manifest_path, records)
        for part in parts:
            part.unlink()
        return added

    def rejected(self) -> list[dict[str, Any]]:
        return self._read_jsonl(self.rejected_path)[0]

    def recover(self) -> list[dict[str, Any]]:
        """Repair after a crash and return the valid records.

        Removes temporary files, drops partial manifest lines and records whose file is
        missing, and rewrites the manifest atomically if anything was dropped.
        """
        if not self.root.is_dir():
            return []
        self._remove_temp_files()
        self.merge_parts()
        records, damaged = self._read_jsonl(self.main_manifest_path)
        paths = self.confiner.resolve_all(records, listed_in=self.main_manifest_path)
        valid, seen = [], set()
        for r, path in zip(records, paths):
            file = r.get("file")
            if file in seen or not os.path.isfile(path):
                damaged = True
                continue
            seen.add(file)
            valid.append(r)
        if damaged:
            self._rewrite(self.main_manifest_path, valid)
        return valid

    def verify(self, *, full: bool = False) -> list[dict[str, Any]]:
        """Drop manifest records whose file no longer matches; return them with a ``problem``.

        The cheap check (always) compares each file's size and SHA-256 with the record (no
        decoding; records without these fields are trusted). ``full`` also decodes the PNG.
        The images of dropped records are generated again by the next run, under the same name.
        """
        records, bad = self.records(), []
        self.confiner.resolve_all(records, listed_in=self.main_manifest_path)
        for r in records:
            problem = self._mismatch(r, full)
            if problem:
                bad.append({**r, "problem": problem})
        if bad:
            dropped = {r["file"] for r in bad}
            self._rewrite(self.main_manifest_path, [r for r in records if r["file"] not in dropped])
        return bad

    def _mismatch(self, record: Mapping[str, Any], full: bool) -> str | None:
        path = os.path.join(self.root, record["file"])
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            return f"unreadable: {exc.strerror or exc}"
        if "bytes" in record and len(data) != int(record["bytes"]):
            return f"size {len(data)} instead of {record['bytes']}"
        if "sha256" in record and hashlib.sha256(data).hexdigest() != record["sha256"]:
            return "checksum differs"
        if full:
            from ._imageio import probe_image

            try:
                probe_image(path)
            except Exception as exc:  # noqa: BLE001 - any decoder failure is a mismatch
                return f"does not decode: {type(exc).__name__}"
        return None

    def _rewrite(self, path: Path, records: Iterable[Mapping[str, Any]]) -> None:
        self._parsed.pop(path, None)
        data = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records)
        atomic_write_bytes(path, data.encode())

    def _append(self, path: Path, record: Mapping[str, Any]) -> None:
        self._parsed.pop(path, None)
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with open(path, "ab") as fh:
            fh.write(line.encode())
            fh.flush()
            os.fsync(fh.fileno())

    def missing_indices(self, quotas: Mapping[str, int]) -> dict[str, list[int]]:
        """Per concept, the indices still to generate so that it has ``quotas[concept]`` images.

        The smallest indices that are neither in the manifest nor retired by :meth:`reject`, so
        the choice is the same in every process and after every interruption.
        """
        used: dict[str, set[int]] = defaultdict(set)
        done: dict[str, int] = defaultdict(int)
        for r in self.records():
            used[r["concept"]].add(int(r["index"]))
            done[r["concept"]] += 1
        for r in self.rejected():
            used[r["concept"]].add(int(r["index"]))
        out: dict[str, list[int]] = {}
        for concept, quota in quotas.items():
            need, taken, indices, i = quota - done[concept], used[concept], [], 0
            while len(indices) < need:
                if i not in taken:
                    indices.append(i)
                i += 1
            out[concept] = indices
        return out

    # -- images --------------------------------------------------------------------------
    def add(self, image: Any, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``image`` (PIL) as ``OUT/<class>/<id>.png`` atomically, then append its record.

        ``record`` must hold ``id`` and ``class``; ``file``, ``sha256`` and ``created`` are added.
        """
        return self.add_record(record, *self.write_image(image, record["class"], record["id"]))

    def write_image(self, image: Any, label: str, ident: str) -> tuple[str, str, int]:
        """Write ``image`` as ``OUT/<label>/<ident>.png`` atomically, without a manifest line;
        return its ``file`` (relative to OUT), SHA-256 and size. Safe from several processes."""
        folder = self.root / label
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=self.png_compress_level)
        data = buffer.getvalue()
        atomic_write_bytes(folder / f"{ident}.png", data)
        return f"{label}/{ident}.png", hashlib.sha256(data).hexdigest(), len(data)

    def add_record(self, record: Mapping[str, Any], file: str, sha256: str, size: int) -> dict[str, Any]:
        """Append the manifest line of an image already written by :meth:`write_image`."""
        full = {
            **record,
            "file": file,
            "sha256": sha256,
            "bytes": size,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self._append(self.manifest_path, full)
        return full

    def reject(self, records: Iterable[Mapping[str, Any]], reason: str | Mapping[str, str]) -> int:
        """Move images to ``OUT.synthaug/rejected/<class>/`` and out of the manifest; returns how many.

        ``reason`` is one string, or a mapping ``file -> reason``. Their indices are retired.
        """
        chosen = {r.get("file"): r for r in records}
        if not chosen:
            return 0
        rejected_dir = self.sidecar / "rejected"
        listed = self.records()
        self.confiner.resolve_all(listed, listed_in=self.main_manifest_path)
        unlisted = [r for r in chosen.values() if r not in listed]
        self.confiner.resolve_all(unlisted, listed_in=f"the records given to reject ({self.main_manifest_path})")
        remaining = [r for r in listed if r["file"] not in chosen]
        for file, r in chosen.items():
            why = reason if isinstance(reason, str) else reason.get(file, "rejected")
            src = self.root / file
            dst = unused_name(rejected_dir / file)  # an earlier run's rejected image is kept
            if src.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(src), str(dst))
            self._append(self.rejected_path, {**r, "reason": why, "rejected_to": str(dst)})
        self._rewrite(self.main_manifest_path, remaining)
        return len(chosen)

    def clear(self) -> int:
        """Delete this run's images (those in the manifest), the manifest and the plan."""
        removed = 0
        self.merge_parts()
        records = self._read_jsonl(self.main_manifest_path)[0]
        paths = self.confiner.resolve_all(records, listed_in=self.main_manifest_path)  # all checked first
        try:
            plan = self.read_plan() or {}
        except OutputConflictError:
            plan = {}
        own = owned_image_names(plan, records, self.confiner, listed_in=f"{self.plan_path} or {self.main_manifest_path}")
        for path in paths:
            if path.is_file():
                path.unlink()
                removed += 1
        removed += remove_unlisted_images(self.root, own)
        for path in (self.main_manifest_path, self.plan_path, self.rejected_path):
            self._parsed.pop(path, None)
            if path.exists():
                path.unlink()
        if self.root.is_dir():
            self._remove_temp_files()
            for folder in self.root.iterdir():
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        return removed

    def _remove_temp_files(self) -> None:
        """Delete the hidden temporary files an interrupted write leaves (OUT and class folders)."""
        for folder in [self.root, *(p for p in self.root.iterdir() if p.is_dir())]:
            for entry in folder.iterdir():
                if entry.is_file() and _TMP_RE.match(entry.name):
                    entry.unlink()

    def foreign_entries(self) -> list[str]:
        """Entries in OUT that a synthaug run did not make (checked before a first run)."""
        if not self.root.exists():
            return []
        known = {MANIFEST, PLAN, REJECTED}
        return sorted(p.name for p in self.root.iterdir() if p.name not in known and not p.is_dir()
                      and not p.name.startswith(("manifest.part-", "."))) + sorted(
            p.name + "/" for p in self.root.iterdir() if p.is_dir() and any(p.iterdir())
        )
