"""The augmenter and the store: exact counts, resume, conflicts, never touching the input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from synthaug import (
    MinorityUpsampling,
    OutputConflictError,
    Proportion,
    SyntheticAugmenter,
    upsample,
)
from synthaug._store import Store

from .test_splits import tree_digest


def check_output(out: Path, expected: dict[str, int]) -> list[dict]:
    """Every planned image exists once, decodes, matches its manifest record (sha256)."""
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len({r["file"] for r in records}) == len(records)
    per_class: dict[str, int] = {}
    for r in records:
        path = out / r["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == r["sha256"]
        with Image.open(path) as im:
            im.load()
            assert im.mode == "RGB"
        per_class[r["class"]] = per_class.get(r["class"], 0) + 1
    assert per_class == {k: v for k, v in expected.items() if v}
    on_disk = {d.name: len(list(d.glob("*.png"))) for d in out.iterdir() if d.is_dir()}
    # every class has a folder (empty when it gets no image), so folder readers number classes alike
    assert {k: v for k, v in on_disk.items() if v} == {k: v for k, v in expected.items() if v}
    assert not list(out.rglob(".*.tmp"))
    return records


def test_upsample_one_liner(tiny_folder: Path, tmp_path: Path) -> None:
    before = tree_digest(tiny_folder)
    out = tmp_path / "out"
    result = upsample(tiny_folder, out)
    assert result.counts() == {
        "a": {"real": 12, "synthetic": 0, "total": 12},
        "b": {"real": 6, "synthetic": 6, "total": 12},
        "c": {"real": 3, "synthetic": 9, "total": 12},
    }
    records = check_output(out, {"b": 6, "c": 9})
    assert tree_digest(tiny_folder) == before
    plan = json.loads((out / "plan.json").read_text())
    assert plan["classes"]["c"]["synthetic"] == 9 and plan["run"]["generator"]["name"] == "classic"
    assert {"class", "concept", "generator", "generator_version", "options", "seed", "index", "sha256"} <= set(records[0])
    assert all(s.is_synthetic and s.provenance["class"] == s.label for s in result.synthetic)
    assert not (out / "c").joinpath("..", "..", "out.synthaug").resolve().is_relative_to(out.resolve())


def test_rerun_generates_nothing_new(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    upsample(tiny_folder, out)
    manifest = (out / "manifest.jsonl").read_bytes()
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    upsample(tiny_folder, out)
    assert (out / "manifest.jsonl").read_bytes() == manifest
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == mtimes


def test_same_seed_same_images_other_seed_other_images(tiny_folder: Path, tmp_path: Path) -> None:
    first = upsample(tiny_folder, tmp_path / "one", random_state=1)
    second = upsample(tiny_folder, tmp_path / "two", random_state=1)
    third = upsample(tiny_folder, tmp_path / "three", random_state=2)
    digest = lambda r: sorted(s.provenance["sha256"] for s in r.synthetic)  # noqa: E731
    assert digest(first) == digest(second)
    assert digest(first) != digest(third)


def test_resume_after_crash_debris(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    upsample(tiny_folder, out)
    full = (out / "manifest.jsonl").read_text().splitlines()
    reference = {json.loads(line)["file"]: json.loads(line)["sha256"] for line in full}
    # simulate a kill: last record lost, one half-written line, an orphan image, a temp file
    keep = full[:-4]
    orphan = json.loads(full[-1])["file"]
    (out / "manifest.jsonl").write_text("\n".join(keep) + "\n" + full[-3][: len(full[-3]) // 2])
    for line in full[-4:]:
        if json.loads(line)["file"] != orphan:
            (out / json.loads(line)["file"]).unlink()
    (out / "c" / ".c-00099.png.123.tmp").write_bytes(b"partial")
    upsample(tiny_folder, out)
    records = check_output(out, {"b": 6, "c": 9})
    assert {r["file"]: r["sha256"] for r in records} == reference


def test_different_run_is_refused_unless_overwrite(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    upsample(tiny_folder, out)
    with pytest.raises(OutputConflictError, match="differs in: generator"):
        upsample(tiny_folder, out, generator_options={"hue": 0.1})
    with pytest.raises(OutputConflictError, match="policy"):
        SyntheticAugmenter(policy=Proportion(0.5), out_dir=out).fit_resample(tiny_folder)
    result = SyntheticAugmenter(policy=Proportion(0.5), out_dir=out, overwrite=True).fit_resample(tiny_folder)
    check_output(out, {"a": 12, "b": 6, "c": 3})
    assert len(result.synthetic) == 21


def test_output_inside_data_or_foreign_folder_is_refused(tiny_folder: Path, tmp_path: Path) -> None:
    before = tree_digest(tiny_folder)
    with pytest.raises(OutputConflictError, match="inside the data folder"):
        upsample(tiny_folder, tiny_folder / "synthetic")
    with pytest.raises(OutputConflictError, match="inside the data folder"):
        upsample(tiny_folder, tiny_folder / "a")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("precious")
    with pytest.raises(OutputConflictError, match="not empty"):
        upsample(tiny_folder, foreign)
    assert (foreign / "thesis.docx").read_text() == "precious"
    assert tree_digest(tiny_folder) == before


def test_replace_mode_keeps_class_sizes(tiny_folder: Path, tmp_path: Path) -> None:
    result = SyntheticAugmenter(policy=Proportion(0.5, mode="replace"), out_dir=tmp_path / "o").fit_resample(tiny_folder)
    counts = result.counts()
    assert {k: v["total"] for k, v in counts.items()} == {"a": 12, "b": 6, "c": 3}
    assert counts["a"]["synthetic"] == 6 and counts["c"]["synthetic"] == round(1.5)


def test_minority_strategy_only_fills_rarest(tiny_folder: Path, tmp_path: Path) -> None:
    result = SyntheticAugmenter(policy=MinorityUpsampling("minority"), out_dir=tmp_path / "o").fit_resample(tiny_folder)
    assert {k: v["synthetic"] for k, v in result.counts().items()} == {"a": 0, "b": 0, "c": 9}


def test_store_reject_retires_indices(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    upsample(tiny_folder, out)
    store = Store(out)
    victims = [r for r in store.records() if r["class"] == "c"][:2]
    assert store.reject(victims, "near-copy") == 2
    assert not (out / victims[0]["file"]).exists()
    assert (store.sidecar / "rejected" / victims[0]["file"]).is_file()
    upsample(tiny_folder, out)  # top-up
    records = check_output(out, {"b": 6, "c": 9})
    new = {r["index"] for r in records if r["class"] == "c"}
    assert not new & {v["index"] for v in victims}
    assert len(new) == 9


def test_held_out_in_memory_is_leakage_checked_and_returned(tiny_folder: Path, tmp_path: Path) -> None:
    """fit_resample(train, held_out=...) takes val/test samples in memory, with a split root's checks."""
    import shutil

    from synthaug import Dataset, LeakageError
    from synthaug._errors import InvalidParameterError
    from synthaug.testing import make_image_folder

    held = Dataset.from_folder(make_image_folder(tmp_path / "held", {"a": 2, "b": 2}, size=16, seed=7))
    held_out = {"val": held.filter(lambda s: s.path.stem.endswith("0")),
                "test": held.filter(lambda s: s.path.stem.endswith("1"))}
    before = tree_digest(tiny_folder)
    result = SyntheticAugmenter("classic", MinorityUpsampling(), out_dir=tmp_path / "out",
                                random_state=0).fit_resample(tiny_folder, held_out=held_out)
    assert [s.path for s in result.val] == [s.path for s in held_out["val"]]
    assert [s.path for s in result.test] == [s.path for s in held_out["test"]]
    fitted_on = {r["source"] for r in (json.loads(line) for line in
                                       (tmp_path / "out" / "manifest.jsonl").read_text().splitlines())}
    assert fitted_on and not fitted_on & {str(s.path) for s in held}  # held-out images never reach the generator
    assert tree_digest(tiny_folder) == before

    train_copy = next(iter(Dataset.from_folder(tiny_folder)))  # a copy of a training image in the test split
    leaked = tmp_path / "leaked.png"
    shutil.copy(train_copy.path, leaked)
    with pytest.raises(LeakageError, match="also in the test split"):
        SyntheticAugmenter("classic", MinorityUpsampling(), out_dir=tmp_path / "out2").fit_resample(
            tiny_folder, held_out={"test": Dataset.from_lists([leaked], [train_copy.label])})
    assert not (tmp_path / "out2").exists()
    with pytest.raises(InvalidParameterError, match="held_out"):
        SyntheticAugmenter("classic", MinorityUpsampling(), out_dir=tmp_path / "out3").fit_resample(
            tiny_folder, held_out={"train": held})


def test_no_op_rerun_parses_the_manifest_once(tiny_folder: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import synthaug._store as store_module

    out = tmp_path / "out"
    SyntheticAugmenter("classic", out_dir=out).fit_resample(tiny_folder)
    parsed: list[int] = []
    real_parse = store_module.parse_jsonl

    def counting_parse(lines):  # type: ignore[no-untyped-def]
        records, damaged = real_parse(lines)
        parsed.append(len(records))
        return records, damaged

    monkeypatch.setattr(store_module, "parse_jsonl", counting_parse)
    result = SyntheticAugmenter("classic", out_dir=out).fit_resample(tiny_folder)
    n_records = len((out / "manifest.jsonl").read_text().splitlines())
    assert len(result.synthetic) == n_records > 0
    assert parsed == [n_records]  # recover, verify, missing_indices and the result share one parse


def test_store_sees_a_manifest_changed_by_another_store(tmp_path: Path) -> None:
    out = tmp_path / "out"
    reader, writer = Store(out), Store(out)
    writer.add(Image.new("RGB", (4, 4), "red"), {"id": "a", "class": "x", "concept": "x", "index": 0})
    assert [r["id"] for r in reader.records()] == ["a"]
    writer.add(Image.new("RGB", (4, 4), "blue"), {"id": "b", "class": "x", "concept": "x", "index": 1})
    assert [r["id"] for r in reader.records()] == ["a", "b"]
    kept = reader.records()
    kept.clear()  # a caller's list is its own: the kept parse is not changed
    assert [r["id"] for r in reader.records()] == ["a", "b"]


def test_parsed_records_share_equal_nested_values_but_keep_json_types() -> None:
    from synthaug._atomic import parse_jsonl as _parse_jsonl

    lines = [json.dumps(r).encode() + b"\n" for r in (
        {"file": "a", "options": {"x": 1.0, "y": [1, 2]}},
        {"file": "b", "options": {"x": 1.0, "y": [1, 2]}},
        {"file": "c", "options": {"x": 1, "y": [1, 2]}},
        {"file": "d", "options": {"x": True, "y": [1, 2]}},
        {"file": "e", "options": {"x": -0.0, "y": [1, 2]}},
    )]
    records, damaged = _parse_jsonl(lines)
    assert not damaged and [json.dumps(r) for r in records] == [line.decode().strip() for line in lines]
    assert records[0]["options"] is records[1]["options"]  # one object for a run's repeated options
    assert len({id(r["options"]) for r in records}) == 4  # 1 vs 1.0 vs true vs -0.0: never merged
