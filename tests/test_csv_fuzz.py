"""Issue 21: a Hypothesis fuzz of the CSV reader and of class names.

Random label sets (any Unicode, NFC and NFD spellings, long names, separators, quotes, control
characters), random delimiters in the data, and random encodings (UTF-8, UTF-8 with BOM,
UTF-16, Latin-1, CP1252). Property: ``Dataset.from_csv`` either returns a dataset whose
class names are the written labels (stripped), with the right counts, or raises a synthaug
``DatasetError``/``UsageError``; never another exception.
"""

from __future__ import annotations

import csv
import io
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from synthaug import Dataset, DatasetError, UsageError

N_IMAGES = 4


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four distinct 8x8 images ``img0.png`` … ``img3.png`` (the rows' paths)."""
    root = tmp_path_factory.mktemp("csv-fuzz")
    for i in range(N_IMAGES):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / f"img{i}.png")
    return root

_ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cs",))
_TRICKY = st.sampled_from(["caf\u00e9", "cafe\u0301", "a,b", 'q"uote', "a;b", "tab\tx", "nul\0x", "new\nline",
                           " pad ", "\u00e9" * 120, "x" * 200, "x" * 201, "\u6c34\u75d8", ".hidden", "a/b", ""])
_LABEL = st.one_of(st.text(_ALPHABET, min_size=0, max_size=12), _TRICKY)


def _write(folder: Path, labels: list[str], encoding: str, delimiter: str) -> Path | None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(["path", "label"])
    for i, label in enumerate(labels):
        writer.writerow([f"img{i}.png", label])
    try:
        data = buffer.getvalue().encode(encoding)
    except UnicodeEncodeError:
        return None  # a label this encoding cannot write: nothing to read
    path = folder / "labels.csv"
    path.write_bytes(data)
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labels=st.lists(_LABEL, min_size=1, max_size=N_IMAGES),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]),
       delimiter=st.sampled_from([",", ",", ";", "\t"]))
def test_csv_reader_round_trips_class_names_or_raises_a_synthaug_error(folder: Path, labels: list[str],
                                                                       encoding: str, delimiter: str) -> None:
    path = _write(folder, labels, encoding, delimiter)
    if path is None:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = Dataset.from_csv(path)
    except (DatasetError, UsageError):
        return
    assert delimiter == ","  # another delimiter makes one column "path;label": no label column, refused
    expected: dict[str, int] = {}
    for label in labels:
        expected[label.strip()] = expected.get(label.strip(), 0) + 1
    assert dataset.counts() == dict(sorted(expected.items()))
    names = dataset.classes
    assert len({unicodedata.normalize("NFC", n) for n in names}) == len(names)  # NFC/NFD clashes refused
    for name in names:
        assert name and len(name.encode()) <= 200 and not any(unicodedata.category(c) == "Cc" for c in name)
