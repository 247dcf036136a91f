"""Per-image metadata for attribute prompts (``balance --metadata labels.csv``, ``metadata=``).

A metadata CSV has one row per image, matched to images by file stem through a ``path``,
``image_id``, ``image`` or ``file`` column (as ``--groups`` files are); every other column is an
attribute a ``prompt_template`` may name, e.g. ``"a dermoscopic image of {dx} on the
{localization}, {sex}, age {age}"``. Training captions each image with its own row; generation
samples a row of the concept's training images per new image (the empirical joint distribution of
the class), seeded per image.
"""

from __future__ import annotations

import csv
import os
import string
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._errors import DatasetError, InvalidOptionsError

__all__ = ["KEY_COLUMNS", "check_attributes", "fill_template", "image_attributes", "read_metadata", "template_fields"]

#: Columns that name the image a row describes (the first present is used).
KEY_COLUMNS = ("path", "image_id", "image", "file")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """``{image file stem: {column: value}}`` of a metadata CSV (the key column left out)."""
    file = Path(path)
    if not file.is_file():
        raise DatasetError(f"metadata file {str(file)!r} does not exist")
    with open(file, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        key = next((c for c in KEY_COLUMNS if c in columns), None)
        if key is None:
            raise DatasetError(f"metadata file {str(file)!r} needs a column naming the image ({', '.join(KEY_COLUMNS)}) "
                               f"to match images by file stem; columns: {', '.join(columns)}")
        return {Path(row[key]).stem: {c: (row.get(c) or "").strip() for c in columns if c != key} for row in reader}


def image_attributes(metadata: Mapping[str, Mapping[str, str]], paths: Sequence[Path]) -> tuple[dict[str, str], ...]:
    """Each image's row (``{}`` for an image the file does not list: an error once a template needs it)."""
    return tuple(dict(metadata.get(Path(p).stem, {})) for p in paths)


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names of ``template`` in order (``{concept}`` included)."""
    try:
        return list(dict.fromkeys(name for _, name, _, _ in string.Formatter().parse(template) if name))
    except ValueError as exc:
        raise InvalidOptionsError(f"option prompt_template={template!r}: {exc}") from None


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{field}`` of ``values`` replaced (other text left as is)."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", str(value))
    return template


def check_attributes(template: str, concept: str, label: str, paths: Sequence[Path],
                     attributes: Sequence[Mapping[str, str]]) -> list[str]:
    """The metadata columns ``template`` names, after checking them against a concept's images.

    Errors: a column no row has (:class:`InvalidOptionsError` listing the columns), an image with no
    row or an empty value (:class:`DatasetError` naming the image and column), and a template that
    names neither ``{concept}`` nor a column holding the class (``label``) for every image.
    """
    fields = [f for f in template_fields(template) if f != "concept"]
    columns = sorted({c for row in attributes for c in row})
    unknown = [f for f in fields if f not in columns]
    if unknown:
        raise InvalidOptionsError(f"option prompt_template={template!r} names {', '.join(unknown)}, which the metadata "
                                  f"file does not have; its columns: {', '.join(columns) or 'none'}")
    for path, row in zip(paths, attributes):
        missing = [f for f in fields if not row.get(f)]
        if missing:
            what = "is not in the metadata file" if not row else f"has no {', '.join(missing)} value in the metadata file"
            raise DatasetError(f"training image {str(path)!r} of {concept!r} {what}; the prompt template "
                               f"{template!r} needs {', '.join(fields)} for every image")
    if "concept" not in template_fields(template) and not any(
            all(row[f] == label for row in attributes) for f in fields):
        raise InvalidOptionsError(f"option prompt_template={template!r} names no class field: use {{concept}} or a "
                                  f"column that holds the class ({label!r} for every image of {concept!r})")
    return fields
