"""Balancing policies follow imbalanced-learn's meanings and validate every parameter."""

from __future__ import annotations

import pytest

from synthaug import InvalidParameterError, MinorityUpsampling, Proportion

COUNTS = {"big": 100, "mid": 40, "small": 10, "tiny": 10}


def synthetic(policy, counts=COUNTS):
    return policy.plan(counts).synthetic_counts()


def test_named_strategies() -> None:
    assert synthetic(MinorityUpsampling("minority")) == {"big": 0, "mid": 0, "small": 90, "tiny": 90}
    assert synthetic(MinorityUpsampling("not minority")) == {"big": 0, "mid": 60, "small": 0, "tiny": 0}
    assert synthetic(MinorityUpsampling("not majority")) == {"big": 0, "mid": 60, "small": 90, "tiny": 90}
    assert synthetic(MinorityUpsampling("auto")) == synthetic(MinorityUpsampling("not-majority"))
    assert synthetic(MinorityUpsampling("all")) == {"big": 0, "mid": 60, "small": 90, "tiny": 90}
    plan = MinorityUpsampling("auto").plan(COUNTS)
    assert {name: c.final for name, c in plan.classes.items()} == dict.fromkeys(COUNTS, 100)


def test_dict_and_callable_strategies() -> None:
    assert synthetic(MinorityUpsampling({"small": 50})) == {"big": 0, "mid": 0, "small": 40, "tiny": 0}
    assert synthetic(MinorityUpsampling(lambda c: {k: 2 * v for k, v in c.items() if v < 50})) == {
        "big": 0, "mid": 40, "small": 10, "tiny": 10,
    }
    with pytest.raises(InvalidParameterError, match=r"strategy\['small'\]=5.*at least the 10 real"):
        MinorityUpsampling({"small": 5}).plan(COUNTS)
    with pytest.raises(InvalidParameterError, match="a class of the dataset: big, mid, small, tiny"):
        MinorityUpsampling({"unknown": 50}).plan(COUNTS)
    with pytest.warns(UserWarning, match="above the majority"):
        MinorityUpsampling({"small": 150}).plan(COUNTS)


def test_bad_strategy_lists_what_is_allowed() -> None:
    with pytest.raises(InvalidParameterError) as info:
        MinorityUpsampling("majority")
    message = str(info.value)
    assert "strategy='majority'" in message and "'not minority'" in message and "'auto'" in message
    with pytest.raises(InvalidParameterError, match="strategy=3"):
        MinorityUpsampling(3)  # type: ignore[arg-type]


def test_proportion_add_uses_round_not_truncation() -> None:
    counts = {"a": 50, "b": 7, "c": 3}
    got = synthetic(Proportion(0.6), counts)
    assert got == {k: round(n * 0.6 / 0.4) for k, n in counts.items()}
    assert got["b"] == 10  # 7 * 1.5 = 10.5 -> 10 (round half to even); int() would also give 10
    assert synthetic(Proportion(0.7), {"x": 1}) == {"x": 2}  # 2.33 -> 2
    assert synthetic(Proportion(0.65), {"x": 3}) == {"x": 6}  # 5.571 -> 6, int() would give 5


def test_proportion_replace_keeps_class_size() -> None:
    plan = Proportion(0.6, mode="replace").plan({"a": 50, "b": 7})
    assert plan.classes["a"].synthetic == 30 and plan.classes["a"].real_used == 20 and plan.classes["a"].final == 50
    assert plan.classes["b"].synthetic == round(4.2) and plan.classes["b"].final == 7
    full = Proportion(1.0, mode="replace").plan({"a": 5})
    assert full.classes["a"].real_used == 0 and full.classes["a"].synthetic == 5


@pytest.mark.parametrize("share", [1.5, -0.1, 1.0, "lots", True])
def test_bad_share(share) -> None:
    with pytest.raises(InvalidParameterError) as info:
        Proportion(share)
    assert f"share={share!r}" in str(info.value)


def test_bad_mode() -> None:
    with pytest.raises(InvalidParameterError, match="mode='swap'.*'add' or 'replace'"):
        Proportion(0.5, mode="swap")


def test_plan_to_dict_shape() -> None:
    data = MinorityUpsampling("minority").plan({"a": 3, "b": 1}).to_dict()
    assert data["policy"] == {"name": "minority-upsampling", "strategy": "minority"}
    assert data["classes"]["b"] == {"real": 1, "synthetic": 2, "final": 3, "real_used": 1}


def test_empty_classes_get_nothing_and_cannot_be_targeted() -> None:
    counts = {"a": 10, "b": 4, "empty": 0}
    assert synthetic(MinorityUpsampling("minority"), counts) == {"a": 0, "b": 6, "empty": 0}
    with pytest.raises(InvalidParameterError, match="no usable real image"):
        MinorityUpsampling({"empty": 5}).plan(counts)
    with pytest.raises(InvalidParameterError, match="at least one class with images"):
        MinorityUpsampling().plan({"x": 0})
