"""Checks shared by the dataset readers: class names, one identity per image file, CSV text.

- **Class names** (:func:`validate_label`, :func:`check_class_names`): not empty, usable as a
  folder name (no ``/``, ``\\``, leading ``.``), no control characters (NUL, newline, …), at
  most :data:`MAX_LABEL_BYTES` bytes of UTF-8 (file systems allow 255 per name and synthaug
  adds suffixes to class names), and no two names that are one name in another Unicode
  normalisation (``café`` spelled NFC and NFD print alike and are one folder on macOS).
- **One identity per image** (:func:`file_identity`, :func:`without_duplicates`): a file is
  identified by ``(st_dev, st_ino)`` of its resolved path, so a symlink or a hard link is the
  same image as its target. The same file under two labels is an error; the same file twice
  under one label is counted once, with a notice. Class folders that are one folder
  (a link to another class folder) are refused (:func:`refuse_linked_class_folders`).
- **CSV text** (:func:`read_csv_table`): UTF-8 with or without BOM, or UTF-16 with its BOM;
  anything else is a :class:`~synthaug._errors.DatasetError` naming the file and the byte;
  a column named twice is refused when synthaug reads that column.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ._errors import DatasetError

__all__ = ["MAX_LABEL_BYTES", "check_class_names", "file_identity", "read_csv_table",
           "refuse_linked_class_folders", "refuse_repeated_columns", "validate_label", "without_duplicates"]

#: Longest class name, in bytes of UTF-8: a name is one folder name (at most 255 bytes on
#: common file systems) and synthaug derives longer names from it (image ids, temporary files).
MAX_LABEL_BYTES = 200


def validate_label(label: object, where: str) -> str:
    """``label`` as a class name (surrounding white space removed), or a DatasetError saying why not."""
    text = str(label).strip() if label is not None else ""
    if not text:
        raise DatasetError(f"empty class label in {where}; every image needs a class label")
    if text in (".", "..") or "/" in text or "\\" in text or text.startswith("."):
        raise DatasetError(
            f"class label {text!r} in {where} cannot be used as a folder name; "
            "labels must not contain '/' or '\\' or start with '.'"
        )
    bad = next((c for c in text if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise DatasetError(
            f"class label {text!r} in {where} contains the control character U+{ord(bad):04X}; "
            "class names become folder names and may not contain NUL, newlines, tabs or other control characters"
        )
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_LABEL_BYTES:
        raise DatasetError(
            f"class label {text[:40]!r}… in {where} is {size} bytes long in UTF-8; the limit is "
            f"{MAX_LABEL_BYTES} bytes (a file name may have 255 and synthaug adds suffixes); shorten it"
        )
    return text


def check_class_names(labels: Iterable[str], where: str) -> None:
    """Refuse two class names that are one name in another Unicode normalisation (NFC/NFD)."""
    seen: dict[str, str] = {}
    for label in sorted(set(labels)):
        other = seen.setdefault(unicodedata.normalize("NFC", label), label)
        if other != label:
            raise DatasetError(
                f"classes {other!r} and {label!r} in {where} are one name in two Unicode normalisations "
                f"(NFC {unicodedata.normalize('NFC', label)!r}); they print alike and are one folder on some file "
                "systems; rename one of them"
            )


def file_identity(path: str | os.PathLike[str]) -> tuple[Any, ...]:
    """``(st_dev, st_ino)`` of ``path`` (links followed): one value for a file, however reached.

    A path that cannot be stat-ed (it is reported as unreadable later) is identified by its
    resolved path instead."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.realpath(path))
    return (st.st_dev, st.st_ino)


def without_duplicates(samples: Sequence[Any], source: str) -> tuple[list[Any], list[str]]:
    """``samples`` (objects with ``path`` and ``label``) with each file once, and a notice when
    some were dropped. One file (symlink, hard link or a repeated row) under two labels is a
    :class:`DatasetError` naming both paths and both labels."""
    first: dict[tuple[Any, ...], Any] = {}
    dropped = 0
    for s in samples:
        seen = first.setdefault(file_identity(s.path), s)
        if seen is s:
            continue
        if seen.label != s.label:
            same = "" if os.fspath(seen.path) == os.fspath(s.path) else f" (the same file as {str(seen.path)!r})"
            raise DatasetError(
                f"image {str(s.path)!r}{same} is listed in {source} with two labels, {seen.label!r} and "
                f"{s.label!r}; one file (a link or a repeated row) under two classes would train both on it: "
                "give every image one label"
            )
        dropped += 1
    if not dropped:
        return list(samples), []
    kept = list(first.values())
    return kept, [f"{source} lists {dropped} image(s) more than once (repeated rows, or links to one file); "
                  f"each image is counted once ({len(kept)} distinct images)"]


def refuse_linked_class_folders(root: Path, class_dirs: Sequence[Path]) -> None:
    """Refuse a class folder that is (a link to) the data root, one of its ancestors, another
    class folder, or a folder inside another class folder: one set of images under two labels."""
    real_root = Path(os.path.realpath(root))
    resolved = [(folder, Path(os.path.realpath(folder))) for folder in class_dirs]
    for folder, target in resolved:
        if target == real_root or target in real_root.parents:
            raise DatasetError(
                f"class folder {str(folder)!r} links to {str(target)!r}, the data folder itself or one "
                "of its parents, so it would hold every image; remove the link"
            )
    for folder, target in resolved:
        for other, other_target in resolved:
            if other != folder and (target == other_target or other_target in target.parents):
                raise DatasetError(
                    f"class folder {str(folder)!r} is {'the same folder as' if target == other_target else 'inside'} "
                    f"class folder {str(other)!r} (links resolved to {str(target)!r}): its images would be "
                    "counted under both classes; remove the link"
                )


def _decode(raw: bytes, csv_path: Path) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"CSV file {str(csv_path)!r} is not valid {'UTF-16' if encoding == 'utf-16' else 'UTF-8'}: byte "
            f"0x{raw[exc.start]:02x} at offset {exc.start} ({exc.reason}); save it as UTF-8 (with or without BOM) "
            "or UTF-16 with BOM (a Latin-1 or Windows-1252 export is the usual cause)"
        ) from None


def read_csv_table(csv_path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """``(columns, [(line, row dict), ...])`` of ``csv_path``; undecodable text or malformed CSV
    is a DatasetError naming the file. Check the columns read with :func:`refuse_repeated_columns`."""
    try:
        raw = csv_path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"CSV file {str(csv_path)!r} cannot be read: {exc.strerror or exc}") from None
    text = _decode(raw, csv_path)
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        columns = [c.strip() for c in next(reader, [])]
        rows = [(reader.line_num, dict(zip(columns, values))) for values in reader if any(v.strip() for v in values)]
    except csv.Error as exc:
        raise DatasetError(f"CSV file {str(csv_path)!r} is not valid CSV: {exc}") from None
    return columns, rows


def refuse_repeated_columns(csv_path: Path, columns: Sequence[str], used: Sequence[str | None]) -> None:
    """A DatasetError naming a column of ``used`` that the header of ``csv_path`` names twice."""
    for name in used:
        if name is not None and columns.count(name) > 1:
            raise DatasetError(
                f"CSV file {str(csv_path)!r} has the column {name!r} {columns.count(name)} times in its header; "
                "synthaug would not know which to read: rename or remove the extra one"
            )
