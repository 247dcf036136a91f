"""Visual sub-groups: k-means/silhouette choice, exact quota split, concepts in the run, CSV groups."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from synthaug import (
    ByClass,
    DatasetError,
    InvalidParameterError,
    MinorityUpsampling,
    OutputConflictError,
    Subgroups,
    SyntheticAugmenter,
)
from synthaug._cli import main
from synthaug._dataset import Dataset
from synthaug._store import Store
from synthaug._subgroups import choose_groups, kmeans, parse_subgroups, silhouette_score, split_quota

SMALL = ("vascular_lesion", "dermatofibroma")


def test_split_quota_sums_exactly_and_is_proportional() -> None:
    assert split_quota(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert split_quota(370, {"x~0": 22, "x~1": 8}) == {"x~0": 271, "x~1": 99}
    assert split_quota(0, {"a": 5, "b": 2}) == {"a": 0, "b": 0}
    rng = random.Random(0)
    for _ in range(300):
        sizes = {f"g{i}": rng.randint(1, 60) for i in range(rng.randint(1, 6))}
        total = rng.randint(0, 500)
        shares = split_quota(total, sizes)
        assert sum(shares.values()) == total
        weight = sum(sizes.values())
        assert all(abs(shares[g] - total * n / weight) < 1 for g, n in sizes.items())


def test_parse_subgroups_validates(tmp_path: Path) -> None:
    assert parse_subgroups("auto").mode == "auto"
    assert parse_subgroups("3").describe() == {"mode": "k", "k": 3, "features": "colour-texture"}
    assert not parse_subgroups(1).active and not parse_subgroups(None).active
    for bad in ("sometimes", 0, -2, 2.5, "x.csv:"):
        with pytest.raises(InvalidParameterError, match="subgroups"):
            parse_subgroups(bad)
    with pytest.raises(DatasetError, match="missing.csv"):
        parse_subgroups(f"{tmp_path / 'missing.csv'}:colour")
    with pytest.raises(InvalidParameterError, match="min_group_size"):
        parse_subgroups("auto", min_group_size=0)


def test_kmeans_and_silhouette_find_real_structure() -> None:
    rng = np.random.default_rng(0)
    two = np.concatenate([rng.normal(0, 1, (30, 5)), rng.normal(8, 1, (20, 5))])
    labels, _ = kmeans(two, 2, seed=0)
    assert sorted(np.bincount(labels)) == [20, 30]
    assert silhouette_score(two, labels) > 0.7
    groups, info = choose_groups(two, parse_subgroups("auto", min_group_size=8))
    assert info["k"] == 2 and list(np.bincount(groups)) == [30, 20]  # group 0 is the largest
    one, info = choose_groups(rng.normal(0, 1, (50, 5)), parse_subgroups("auto", min_group_size=8))
    assert info["k"] == 1 and set(one) == {0}
    # a minimum group size the data cannot meet keeps the class whole
    _, info = choose_groups(two, parse_subgroups("auto", min_group_size=26))
    assert info["k"] == 1


@pytest.fixture(scope="module")
def small_classes(skin_lesions: Path) -> Dataset:
    by_class = Dataset.from_folder(skin_lesions).paths_by_class()
    paths = [p for label in (*SMALL, "melanoma") for p in by_class[label][: 60 if label == "melanoma" else None]]
    return Dataset.from_lists(paths, [p.parent.name for p in paths])


@pytest.fixture(scope="module")
def auto_run(small_classes: Dataset, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sub") / "out"
    policy = MinorityUpsampling({"vascular_lesion": 53, "dermatofibroma": 47})
    augmenter = SyntheticAugmenter("classic", policy, out_dir=out, concepts=Subgroups.auto())
    result = augmenter.fit_resample(small_classes)
    return augmenter, result, out


def test_auto_splits_skin_lesions_and_quotas_add_up(auto_run) -> None:
    augmenter, result, out = auto_run
    plan = json.loads((out / "plan.json").read_text())
    run = plan["run"]
    assert run["subgroups"]["mode"] == "auto" and run["subgroups"]["features"] == "colour-texture"
    split = {label: [c for c, v in run["concepts"].items() if v["label"] == label] for label in SMALL}
    assert any(len(names) > 1 for names in split.values()), split
    assert all(name == label or name.startswith(label + "~") for label, names in split.items() for name in names)
    # the quotas of a class's concepts add up to its plan exactly, and the manifest holds exactly them
    records = Store(out).records()
    for label in SMALL:
        quotas = {c: run["concepts"][c]["synthetic"] for c in split[label]}
        assert sum(quotas.values()) == plan["classes"][label]["synthetic"] == {"vascular_lesion": 23,
                                                                               "dermatofibroma": 17}[label]
        made = {c: sum(r["concept"] == c for r in records) for c in split[label]}
        assert made == quotas
        sizes = {c: run["concepts"][c]["n_train_images"] for c in split[label]}
        assert sum(sizes.values()) == 30 and made == split_quota(sum(quotas.values()), sizes)
    assert result.counts()["vascular_lesion"] == {"real": 30, "synthetic": 23, "total": 53}
    # every synthetic image came from a training image of its own sub-group
    members = {c: {Path(p).name for p in paths} for groups in augmenter.subgroups_.groups.values()
               for c, paths in groups.items()}
    assert all(r["source"] in members[r["concept"]] for r in records)


def test_contact_sheets_live_in_the_sidecar(auto_run) -> None:
    _, _, out = auto_run
    sheets = out.parent / "out.synthaug" / "subgroups"
    assert {p.name for p in sheets.glob("*.png")} == {f"{label}.png" for label in SMALL}
    info = json.loads((sheets / "subgroups.json").read_text())
    assert len(info["images"]) == 60 and info["setting"]["mode"] == "auto"
    from PIL import Image

    with Image.open(sheets / "vascular_lesion.png") as im:
        assert im.width > 0 and im.height >= 96 * len(info["classes"]["vascular_lesion"]["concepts"])
    visible = {p.name for p in out.iterdir() if not p.name.startswith(".")}  # the hidden lock file aside
    assert {"manifest.jsonl", "plan.json", *SMALL} <= visible  # ImageFolder-readable: class folders only
    assert all((out / name).is_dir() for name in visible - {"manifest.jsonl", "plan.json"})


def test_rerun_is_a_no_op_and_a_changed_setting_is_a_different_run(auto_run, small_classes: Dataset) -> None:
    augmenter, _, out = auto_run
    before = (out / "manifest.jsonl").read_bytes()
    again = SyntheticAugmenter("classic", augmenter.policy, out_dir=out, concepts=Subgroups.auto())
    again.fit_resample(small_classes)
    assert (out / "manifest.jsonl").read_bytes() == before
    with pytest.raises(OutputConflictError, match="subgroups"):
        SyntheticAugmenter("classic", augmenter.policy, out_dir=out, concepts=ByClass()).fit_resample(small_classes)


def test_groups_from_a_csv_column(small_classes: Dataset, tmp_path: Path) -> None:
    vascular = sorted(s.path for s in small_classes if s.label == "vascular_lesion")
    table = tmp_path / "groups.csv"
    with open(table, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "colour"])
        writer.writerows([p.stem, "red" if i % 3 else "dark"] for i, p in enumerate(vascular))
    policy = MinorityUpsampling({"vascular_lesion": 39, "dermatofibroma": 33})
    augmenter = SyntheticAugmenter("classic", policy, out_dir=tmp_path / "out",
                                   concepts=Subgroups.from_csv(table, "colour"))
    augmenter.fit_resample(small_classes)
    run = json.loads((tmp_path / "out" / "plan.json").read_text())["run"]
    assert {c: v["synthetic"] for c, v in run["concepts"].items()} == {
        "vascular_lesion~dark": 3, "vascular_lesion~red": 6, "dermatofibroma": 3}
    assert run["subgroups"] == {"mode": "csv", "csv": str(table.resolve()), "column": "colour"}
    with open(table, "a", newline="") as fh:  # a class with some images grouped and some not
        csv.writer(fh).writerow([sorted(s.path for s in small_classes if s.label == "dermatofibroma")[0].stem, "x"])
    for step in ("prepare", "fit_resample"):
        again = SyntheticAugmenter("classic", policy, out_dir=tmp_path / "out2",
                                   concepts=Subgroups.from_csv(table, "colour"))
        with pytest.raises(DatasetError, match="no value for 29 of the 30 images of class 'dermatofibroma'"):
            getattr(again, step)(small_classes)
    assert not (tmp_path / "out2").exists()


def test_cli_balance_with_fixed_k(tiny_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    code = main(["balance", str(tiny_folder), "--out", str(out), "--subgroups", "2", "--json"])
    assert code == 0, capsys.readouterr().err
    run = json.loads((out / "plan.json").read_text())["run"]
    assert run["subgroups"] == {"mode": "k", "k": 2, "features": "colour-texture"}
    concepts = {c: (v["label"], v["synthetic"], v["n_train_images"]) for c, v in run["concepts"].items()}
    assert sorted(concepts) == ["b~0", "b~1", "c~0", "c~1"]
    assert concepts["c~0"] == ("c", 6, 2) and concepts["c~1"] == ("c", 3, 1)
    assert concepts["b~0"][1] + concepts["b~1"][1] == 6 and concepts["b~0"][2] >= concepts["b~1"][2]
    assert json.loads(capsys.readouterr().out)["counts"]["c"]["synthetic"] == 9
    assert main(["balance", str(tiny_folder), "--out", str(out), "--subgroups", "sometimes"]) == 2
    assert "subgroups='sometimes'" in capsys.readouterr().err


def test_generator_features_hook(small_classes: Dataset, tmp_path: Path) -> None:
    """A generator with ``features(paths)`` (e.g. VAE latents) drives the k-means when asked."""
    from synthaug._default_plugins.classic import ClassicGenerator

    class Featured(ClassicGenerator):
        name = "classic-featured"
        calls: list[int] = []

        def features(self, paths):  # two obvious clusters: file names ending in an even/odd digit
            self.calls.append(len(paths))
            return np.array([[float(int(Path(p).stem[-1]) % 2) * 10, 0.0] for p in paths])

    policy = MinorityUpsampling({"vascular_lesion": 40, "dermatofibroma": 30})
    augmenter = SyntheticAugmenter(Featured(), policy, out_dir=tmp_path / "out",
                                   concepts=Subgroups.auto(features="generator"))
    augmenter.fit_resample(small_classes)
    assert Featured.calls == [30]  # once per class that needs images, once per run
    groups = augmenter.subgroups_.groups["vascular_lesion"]
    parity = [{int(p.stem[-1]) % 2 for p in paths} for paths in groups.values()]
    assert len(groups) == 2 and all(len(s) == 1 for s in parity)
    info = json.loads((tmp_path / "out.synthaug" / "subgroups" / "subgroups.json").read_text())
    assert info["feature_space"] == "generator:classic-featured"
    assert json.loads((tmp_path / "out" / "plan.json").read_text())["run"]["subgroups"]["features"] == "generator"


def test_concepts_parameter_is_validated(tiny_folder: Path, tmp_path: Path) -> None:
    """``concepts=`` takes a strategy; the pre-release ``subgroups=`` keywords are gone."""
    assert "subgroups" not in SyntheticAugmenter("classic")._run_inputs(tiny_folder).run
    with pytest.raises(TypeError, match="subgroups"):
        SyntheticAugmenter("classic", subgroups="auto")  # type: ignore[call-arg]
    with pytest.raises(InvalidParameterError, match="ConceptStrategy"):
        SyntheticAugmenter("classic", concepts="auto")  # type: ignore[arg-type]
    assert Subgroups.k(3).setting.k == 3 and Subgroups.k(1).active is False


