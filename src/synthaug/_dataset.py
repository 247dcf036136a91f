"""Labelled image datasets: class folders, CSV files, plain lists.

A :class:`Dataset` is an immutable, ordered collection of :class:`Sample` records
(path, label, optional group and split). Reading never writes to the input folder.
Unreadable files are skipped with ONE warning listing them (or raise in ``strict`` mode);
a class folder with no usable image is reported in :attr:`Dataset.empty_classes` and warned
about, never silently dropped. The same sentences are kept as data in
:attr:`Dataset.notices`, so a caller can show them whatever Python's warning filter says.

Class folders are the visible sub-folders of the root (names starting with ``_`` are classes,
as in torchvision and Keras; hidden ``.`` folders are skipped).

Every reader identifies an image by its file (``(st_dev, st_ino)``, links followed; see
:mod:`synthaug._inputcheck`): one file under two labels is an error, one file twice under a
label counts once (with a notice), and class names are checked alike (control characters,
length, Unicode normalisation) whichever reader found them.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._errors import DatasetError, UnreadableImageError
from ._imageio import is_image_file, load_image
from ._inputcheck import (
    check_class_names,
    read_csv_table,
    refuse_linked_class_folders,
    refuse_repeated_columns,
    validate_label,
    without_duplicates,
)

_validate_label = validate_label  # the name Dataset.from_hf passes on

__all__ = ["Dataset", "Sample", "UnreadableImagesWarning", "EmptyClassWarning", "DuplicateRowsWarning"]

SPLITS = ("train", "val", "test")
#: Label-column names a CSV may use, tried in this order when ``label_column`` is not given.
LABEL_COLUMNS = ("label", "class", "labels", "category", "target", "dx")


class UnreadableImagesWarning(UserWarning):
    """Some image files could not be decoded and were skipped."""


class EmptyClassWarning(UserWarning):
    """A class has no usable image."""


class DuplicateRowsWarning(UserWarning):
    """The same image was listed more than once; it is counted once."""


@dataclass(frozen=True)
class Sample:
    """One image: where it is, its class, and where it came from.

    ``group`` keeps related images together when splitting (e.g. a lesion id).
    ``split`` is ``"train"``, ``"val"``, ``"test"`` or ``None`` when unknown.
    ``provenance`` is the manifest record of a synthetic image (``None`` for real ones); treat it
    as read-only (the records of one run share their nested values, e.g. the generator options).
    """

    path: Path
    label: str
    group: str | None = None
    split: str | None = None
    provenance: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def is_synthetic(self) -> bool:
        """True when the image was generated (it has a manifest record)."""
        return self.provenance is not None

    def load(self):  # -> PIL.Image.Image
        """Decode the image as 8-bit RGB."""
        return load_image(self.path)


class Dataset(Sequence[Sample]):
    """An ordered, immutable list of labelled samples.

    Build one with :meth:`from_folder`, :meth:`from_csv`, :meth:`from_lists`,
    :meth:`from_hf` or :meth:`load` (which guesses from the path).
    """

    def __init__(
        self,
        samples: Iterable[Sample],
        *,
        root: str | os.PathLike[str] | None = None,
        empty_classes: Iterable[str] = (),
        skipped: Iterable[Path] = (),
        notices: Iterable[str] = (),
    ) -> None:
        self._samples: tuple[Sample, ...] = tuple(samples)
        self.root: Path | None = Path(root) if root is not None else None
        self.empty_classes: tuple[str, ...] = tuple(sorted(set(empty_classes)))
        self.skipped: tuple[Path, ...] = tuple(skipped)
        #: What reading found that a user should know (skipped files, empty classes, duplicates).
        self.notices: tuple[str, ...] = tuple(notices)

    # -- Sequence protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return Dataset(self._samples[index], root=self.root)
        return self._samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)

    def __repr__(self) -> str:
        return f"Dataset({len(self)} samples, {len(self.classes)} classes, root={str(self.root)!r})"

    # -- views ---------------------------------------------------------------------
    @property
    def samples(self) -> tuple[Sample, ...]:
        """All samples, in order."""
        return self._samples

    @property
    def classes(self) -> list[str]:
        """Sorted class names, including empty classes that were found but have no image."""
        return sorted({s.label for s in self._samples} | set(self.empty_classes))

    @property
    def class_to_index(self) -> dict[str, int]:
        """Stable mapping class name -> index (sorted by name)."""
        return {name: i for i, name in enumerate(self.classes)}

    def counts(self) -> dict[str, int]:
        """Images per class (sorted by class name; empty classes count 0)."""
        counter = Counter(s.label for s in self._samples)
        return {name: counter.get(name, 0) for name in self.classes}

    def paths_by_class(self) -> dict[str, list[Path]]:
        """The image paths of each class, in dataset order."""
        out: dict[str, list[Path]] = {name: [] for name in self.classes}
        for s in self._samples:
            out[s.label].append(s.path)
        return out

    def filter(self, predicate) -> Dataset:
        """A new dataset with the samples for which ``predicate(sample)`` is true."""
        return Dataset([s for s in self._samples if predicate(s)], root=self.root)

    def with_split(self, split: str | None) -> Dataset:
        """A copy whose samples are all marked as belonging to ``split``."""
        return Dataset([replace(s, split=split) for s in self._samples], root=self.root,
                       empty_classes=self.empty_classes, skipped=self.skipped, notices=self.notices)

    # -- constructors --------------------------------------------------------------
    @classmethod
    def load(cls, source: str | os.PathLike[str] | Dataset, *, strict: bool = False) -> Dataset:
        """Open ``source``: a Dataset (returned as is), a ``.csv`` file, or a class folder."""
        if isinstance(source, Dataset):
            return source
        path = Path(source)
        if path.is_file() and path.suffix.lower() == ".csv":
            return cls.from_csv(path, strict=strict)
        return cls.from_folder(path, strict=strict)

    @classmethod
    def from_folder(cls, root: str | os.PathLike[str], *, strict: bool = False) -> Dataset:
        """Read ``root/<class>/<image>``; hidden entries and non-image files are ignored.

        Images in nested sub-folders of a class folder belong to that class.
        """
        root = Path(root)
        if not root.exists():
            raise DatasetError(f"data folder {str(root)!r} does not exist")
        if not root.is_dir():
            raise DatasetError(
                f"data path {str(root)!r} is not a folder; give a folder with one sub-folder per "
                "class, or a CSV file with path,label columns"
            )
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        refuse_linked_class_folders(root, class_dirs)
        if not class_dirs:
            raise DatasetError(
                f"data folder {str(root)!r} has no class sub-folders; expected {root}/<class>/<image>"
            )
        samples = []
        for class_dir in class_dirs:
            label = class_dir.name
            validate_label(label, f"data folder {str(root)!r}")  # control characters, length
            for dirpath, dirnames, filenames in os.walk(class_dir):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if is_image_file(name):
                        samples.append(Sample(Path(dirpath) / name, label))
        samples, notices = without_duplicates(samples, f"data folder {str(root)!r}")
        return cls._checked(samples, root=root, classes=[d.name for d in class_dirs], strict=strict, notices=notices)

    @classmethod
    def from_csv(
        cls,
        csv_path: str | os.PathLike[str],
        *,
        path_column: str = "path",
        label_column: str | None = None,
        group_column: str | None = None,
        strict: bool = False,
    ) -> Dataset:
        """Read a CSV with a path column and a label column; paths are relative to the CSV.

        ``label_column`` defaults to the first of :data:`LABEL_COLUMNS` the CSV has
        (``label``, ``class``, ``labels``, ``category``, ``target``, ``dx``). A row repeating
        an earlier image counts once (a notice says how many); one image with two different
        labels is an error.
        """
        csv_path = Path(csv_path)
        if csv_path.is_dir():
            raise DatasetError(
                f"CSV path {str(csv_path)!r} is a folder, not a CSV file; give the CSV file, or the folder "
                "itself as DATA when it holds one sub-folder per class"
            )
        if not csv_path.is_file():
            raise DatasetError(f"CSV file {str(csv_path)!r} does not exist")
        columns, rows = read_csv_table(csv_path)
        if label_column is None:
            label_column = next((c for c in LABEL_COLUMNS if c in columns), None)
            if label_column is None:
                raise DatasetError(
                    f"CSV file {str(csv_path)!r} has no label column; its columns are "
                    f"{', '.join(columns) or 'none'}; name the label column one of {', '.join(LABEL_COLUMNS)} "
                    "(or pass label_column= to Dataset.from_csv)"
                )
        refuse_repeated_columns(csv_path, columns, (path_column, label_column, group_column))
        for needed in (path_column, label_column, group_column):
            if needed is not None and needed not in columns:
                raise DatasetError(
                    f"CSV file {str(csv_path)!r} has no column {needed!r}; its columns are "
                    f"{', '.join(columns) or 'none'}"
                )
        samples = []
        for line, row in rows:
            where = f"{csv_path}:{line}"
            raw_path = (row.get(path_column) or "").strip()
            if not raw_path:
                raise DatasetError(f"empty {path_column!r} in {where}")
            path = Path(raw_path)
            if not path.is_absolute():
                path = csv_path.parent / path
            group = row.get(group_column) if group_column else None
            samples.append(Sample(path, validate_label(row.get(label_column), where), group or None))
        _refuse_missing(samples, f" in {str(csv_path)!r}", "; paths are read relative to the CSV file's folder")
        samples, notices = without_duplicates(samples, str(csv_path))
        return cls._checked(samples, root=csv_path.parent, classes=[], strict=strict, notices=notices)

    @classmethod
    def from_lists(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        labels: Sequence[object],
        *,
        groups: Sequence[object] | None = None,
        strict: bool = False,
    ) -> Dataset:
        """Build a dataset from parallel lists of image paths and labels (and optional groups)."""
        if len(paths) != len(labels):
            raise DatasetError(
                f"paths and labels differ in length ({len(paths)} vs {len(labels)}); give one label per path"
            )
        if groups is not None and len(groups) != len(paths):
            raise DatasetError(f"groups has {len(groups)} entries for {len(paths)} paths")
        samples = [
            Sample(
                Path(p),
                validate_label(lab, f"labels[{i}]"),
                None if groups is None else str(groups[i]),
            )
            for i, (p, lab) in enumerate(zip(paths, labels))
        ]
        _refuse_missing(samples, "", "")
        samples, notices = without_duplicates(samples, "the path list")
        return cls._checked(samples, root=None, classes=[], strict=strict, notices=notices)

    @classmethod
    def from_hf(
        cls,
        hf_dataset: Any,
        cache_dir: str | os.PathLike[str],
        *,
        image_column: str = "image",
        label_column: str = "label",
    ) -> Dataset:
        """Materialise a local Hugging Face ``datasets.Dataset`` as PNG files under ``cache_dir``.

        Class names come from the label column's ``ClassLabel`` names when it has them.
        Nothing is downloaded: pass a dataset already in memory or on disk. Cached files are
        named by the SHA-256 of their PNG bytes (``cache_dir/<label>/<hash>.png``), so a
        shuffled dataset, or train and test splits sharing one ``cache_dir``, never reuse
        another row's image.
        """
        from ._hf_input import materialize_hf

        rows = list(materialize_hf(hf_dataset, cache_dir, image_column, label_column, _validate_label))
        paths, labels = [path for path, _ in rows], [label for _, label in rows]
        return cls.from_lists(paths, labels)

    @classmethod
    def _checked(
        cls, samples: list[Sample], *, root: Path | None, classes: Sequence[str], strict: bool,
        notices: Sequence[str] = (),
    ) -> Dataset:
        from ._probe import probe_files  # header probe + completeness check, cached (see probe.py)

        check_class_names([*classes, *(s.label for s in samples)], f"{str(root)!r}" if root else "the labels")
        failed = probe_files((s.path for s in samples), root)
        good = [s for s in samples if s.path not in failed] if failed else samples
        bad, reasons = list(failed), list(failed.values())
        if bad and strict:
            raise UnreadableImageError([str(p) for p in bad], reasons)
        notes = list(notices)
        for notice in notes:
            warnings.warn(notice, DuplicateRowsWarning, stacklevel=3)
        if bad:
            shown = "; ".join(f"{_shown_path(p, root)} ({why})" for p, why in zip(bad[:20], reasons))
            where = f" in {str(root)!r}" if root else ""
            notes.append(f"skipped {len(bad)} unreadable image file(s){where}: {shown}"
                         + (" …" if len(bad) > 20 else "") + "; use --strict (strict=True) to stop on them instead")
            warnings.warn(notes[-1], UnreadableImagesWarning, stacklevel=3)
        present = {s.label for s in good}
        empty = sorted((set(classes) | {s.label for s in samples}) - present)
        if empty:
            notes.append(f"class(es) with no usable image: {', '.join(empty)}; they cannot be balanced "
                         "and are reported with 0 images")
            warnings.warn(notes[-1], EmptyClassWarning, stacklevel=3)
        if not good:
            where = f" in {str(root)!r}" if root else ""
            raise DatasetError(f"no readable images found{where}")
        return cls(good, root=root, empty_classes=empty, skipped=bad, notices=notes)


def _shown_path(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies there (class folder included), else in full."""
    if root is not None:
        try:
            return str(path.relative_to(root))
        except ValueError:
            pass
    return str(path)


def _refuse_missing(samples: Sequence[Sample], where: str, hint: str) -> None:
    """A DatasetError naming the listed paths that do not exist or are not regular files (a
    FIFO, a folder): such a file is never opened, so reading cannot block on it."""
    import stat

    missing, special = [], []
    for s in samples:
        try:
            mode = os.stat(s.path).st_mode
        except OSError:
            missing.append(str(s.path))
            continue
        if not stat.S_ISREG(mode):
            special.append(str(s.path))
    if missing:
        raise DatasetError(f"{len(missing)} path(s){where} do not exist, e.g. {', '.join(missing[:5])}{hint}")
    if special:
        raise DatasetError(f"{len(special)} path(s){where} are not regular files (a FIFO, socket, device or "
                           f"folder), e.g. {', '.join(special[:5])}; list image files only")
