"""Cheap dataset reading: header probes, completeness checks and the probe cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from synthaug import Dataset
from synthaug._dataset import UnreadableImagesWarning
from synthaug._probe import ProbeCache, probe_file


def _jpeg(path: Path, size: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (200, 40, 90)).save(path, quality=90)
    return path


def test_probe_cache_is_used_on_a_second_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        _jpeg(tmp_path / "data" / ("a" if i < 3 else "b") / f"{i}.jpg")
    calls: list[Path] = []
    import synthaug._probe as probe

    real = probe.probe_file
    monkeypatch.setattr(probe, "probe_file", lambda p: (calls.append(Path(p)), real(p))[1])
    first = Dataset.from_folder(tmp_path / "data")
    assert len(calls) == 5
    cache_files = list((Path(os.environ["SYNTHAUG_CACHE_DIR"]) / "probe").glob("*.json"))
    assert len(cache_files) == 1 and str(tmp_path / "data" / "a" / "0.jpg") in cache_files[0].read_text()
    second = Dataset.from_folder(tmp_path / "data")
    assert len(calls) == 5  # nothing probed again
    assert second.samples == first.samples
    # a changed file (new size and mtime) is probed again, and found truncated
    changed = tmp_path / "data" / "b" / "4.jpg"
    changed.write_bytes(changed.read_bytes()[:-40])
    with pytest.warns(UnreadableImagesWarning, match="4.jpg"):
        third = Dataset.from_folder(tmp_path / "data")
    assert calls[5:] == [changed] and len(third) == 4
    assert not any(p.name.endswith(".json") for p in (tmp_path / "data").rglob("*"))  # input untouched


def test_probe_checks_completeness_without_decoding(tmp_path: Path) -> None:
    good = _jpeg(tmp_path / "g.jpg")
    probe_file(good)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:-2])
    with pytest.raises(OSError, match="truncated"):
        probe_file(cut)
    Image.new("RGB", (16, 16)).save(tmp_path / "p.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "p.png").read_bytes()[:-12])
    with pytest.raises(OSError, match="IEND"):
        probe_file(tmp_path / "cut.png")


def test_cache_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHAUG_CACHE_DIR", "off")
    _jpeg(tmp_path / "x.jpg")
    cache = ProbeCache(tmp_path)
    assert cache.path is None
    assert cache.check(tmp_path / "x.jpg") is None and cache.probed == 1
    cache.save()
    assert cache.check(tmp_path / "x.jpg") is None and cache.probed == 1  # remembered in memory


def test_realpaths_agree_with_os_realpath(tmp_path: Path) -> None:
    from synthaug._paths import realpaths

    real = _jpeg(tmp_path / "real" / "a" / "1.jpg")
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    (tmp_path / "tree" / "a").mkdir(parents=True)
    (tmp_path / "tree" / "a" / "2.jpg").symlink_to(real)
    paths = [real, tmp_path / "linked" / "a" / "1.jpg", tmp_path / "tree" / "a" / "2.jpg",
             tmp_path / "real" / "a" / ".." / "a" / "1.jpg", tmp_path / "linked" / "a" / ".." / "a" / "1.jpg",
             tmp_path / "missing.jpg", Path("relative.jpg")]
    assert realpaths(paths) == [os.path.realpath(p) for p in paths]
