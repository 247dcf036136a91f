"""Issue 21: every path read back from a file synthaug wrote is confined to its output folder;
what synthaug removes is only what it wrote."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from synthaug._cli import main
from synthaug._store import Store
from synthaug.testing import make_image_folder


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def balanced(tmp_path: Path) -> tuple[Path, Path]:
    data = make_image_folder(tmp_path / "data", {"a": 6, "b": 3})
    out = tmp_path / "out"
    assert main(["balance", str(data), "--out", str(out), "-q", "--workers", "1"]) == 0
    return data, out


def _add_record(out: Path, file: str) -> None:
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    with open(out / "manifest.jsonl", "a") as fh:
        fh.write(json.dumps({**records[0], "file": file}) + "\n")


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "into-data"])
def test_overwrite_never_deletes_a_path_a_manifest_names_outside_out(balanced: tuple[Path, Path], kind: str,
                                                                    capsys: pytest.CaptureFixture) -> None:
    data, out = balanced
    victim = data / "a" / "a_000.png"
    (out.parent / "x.png").write_bytes(b"mine")
    file = {"dotdot": "../x.png", "absolute": str(victim), "into-data": f"a/../../data/a/{victim.name}"}[kind]
    _add_record(out, file)
    before_data, before_out = _tree(data), _tree(out)
    capsys.readouterr()
    assert main(["balance", str(data), "--out", str(out), "-q", "--seed", "3", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "manifest.jsonl: record 4 is corrupt" in err and repr(file) in err and "nothing was deleted" in err
    assert _tree(data) == before_data and _tree(out) == before_out
    assert (out.parent / "x.png").read_bytes() == b"mine"


def test_filter_never_moves_a_path_outside_out(balanced: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    data, out = balanced
    _add_record(out, str(data / "a" / "a_000.png"))
    before = _tree(data)
    assert main(["filter", str(out), "--real", str(data), "-q"]) == 2
    assert "is an absolute path" in capsys.readouterr().err
    record = json.loads((out / "manifest.jsonl").read_text().splitlines()[-1])
    with pytest.raises(Exception, match="is corrupt"):
        Store(out).reject([record], "test")
    assert _tree(data) == before and not (out.parent / "out.synthaug" / "rejected").exists()


def test_a_class_folder_linked_into_data_is_refused_before_writing(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    data = make_image_folder(tmp_path / "data", {"a": 6, "b": 3})
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(data / "b", out / "b")
    before = _tree(data)
    assert main(["balance", str(data), "--out", str(out), "-q"]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert _tree(data) == before and sorted(p.name for p in out.iterdir()) == ["b"]


def test_combined_marker_naming_outside_paths_deletes_nothing(balanced: tuple[Path, Path],
                                                              capsys: pytest.CaptureFixture) -> None:
    data, out = balanced
    combined = out.parent / "combined"
    assert main(["balance", str(data), "--out", str(out), "-q", "--combined", str(combined)]) == 0
    marker = combined / ".synthaug-combined.json"
    listed = json.loads(marker.read_text())["files"]
    marker.write_text(json.dumps({"files": [*listed, "../data/a/a_000.png"]}))
    before = _tree(data)
    capsys.readouterr()
    assert main(["balance", str(data), "--out", str(out), "-q", "--combined", str(combined)]) == 2
    assert f"record {len(listed) + 1} is corrupt" in capsys.readouterr().err
    assert _tree(data) == before and all(os.path.lexists(combined / rel) for rel in listed)


def test_combined_killed_while_linking_resumes(balanced: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Loud-but-wrong item: a --combined run killed while writing links is resumable."""
    data, out = balanced
    combined = out.parent / "combined"
    real_symlink, made = os.symlink, []

    def dying(src, dst, *args, **kwargs):  # noqa: ANN001, ANN202
        if len(made) == 3:
            raise KeyboardInterrupt
        made.append(dst)
        real_symlink(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "symlink", dying)
    assert main(["balance", str(data), "--out", str(out), "-q", "--combined", str(combined)]) == 130
    monkeypatch.setattr(os, "symlink", real_symlink)
    assert main(["balance", str(data), "--out", str(out), "-q", "--combined", str(combined)]) == 0
    assert {d.name: len(list(d.iterdir())) for d in combined.iterdir() if d.is_dir()} == {"a": 6, "b": 6}


def test_overwrite_after_a_killed_pool_run_leaves_no_unlisted_images(balanced: tuple[Path, Path]) -> None:
    """Item 6 (orphans): images a killed worker wrote but never listed must not stay after
    ``--overwrite`` with a smaller target: class folders == manifest == plan. A user's file stays."""
    data, out = balanced
    assert main(["balance", str(data), "--out", str(out), "-q", "--target", "b=12", "--overwrite"]) == 0
    lines = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text("\n".join(lines[:4]) + "\n")  # 5 written, never listed
    Image.new("RGB", (4, 4)).save(out / "b" / "mine.png")
    assert main(["balance", str(data), "--out", str(out), "-q", "--target", "b=5", "--overwrite"]) == 0
    listed = {json.loads(line)["file"] for line in (out / "manifest.jsonl").read_text().splitlines()}
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*.png")} - {"b/mine.png"}
    plan = json.loads((out / "plan.json").read_text())
    assert on_disk == listed and len(listed) == plan["classes"]["b"]["synthetic"] == 2
    assert (out / "b" / "mine.png").is_file()


def test_rejecting_again_after_overwrite_keeps_the_earlier_rejected_image(balanced: tuple[Path, Path]) -> None:
    """Item 9: ``filter`` after ``balance --overwrite`` must not overwrite an earlier rejected image."""
    data, out = balanced
    first = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    first_bytes = (out / first["file"]).read_bytes()
    assert Store(out).reject([first], "copy") == 1
    assert main(["balance", str(data), "--out", str(out), "-q", "--seed", "5", "--overwrite"]) == 0
    second = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    second_bytes = (out / second["file"]).read_bytes()
    assert second["file"] == first["file"] and second_bytes != first_bytes
    assert Store(out).reject([second], "copy") == 1
    rejected = sorted((out.parent / "out.synthaug" / "rejected" / "b").iterdir())
    assert len(rejected) == 2 and {p.read_bytes() for p in rejected} == {first_bytes, second_bytes}
    logged = [json.loads(line)["rejected_to"] for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert logged == [str(out.parent / "out.synthaug" / "rejected" / "b" / "b-00000.1.png")]  # where it went
