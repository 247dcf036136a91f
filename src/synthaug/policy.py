"""Balancing policies: how many synthetic images each class gets.

A policy turns the real per-class counts into a :class:`Plan` before any model is loaded.
Conventions follow imbalanced-learn where it has one. Counts use :func:`round`, never
truncation. Every invalid value raises :class:`~synthaug.errors.InvalidParameterError`
naming the parameter, echoing the value and listing what is allowed.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from .errors import InvalidParameterError

__all__ = [
    "ClassPlan",
    "MinorityUpsampling",
    "Plan",
    "Policy",
    "Proportion",
    "STRATEGIES",
    "make_policy",
    "validate_share",
    "validate_strategy",
]

#: The named strategies of :class:`MinorityUpsampling` (imbalanced-learn's meanings).
STRATEGIES = ("minority", "not minority", "not majority", "all", "auto")

Strategy = Union[str, Mapping[str, int], Callable[[Mapping[str, int]], Mapping[str, int]]]


@dataclass(frozen=True)
class ClassPlan:
    """The plan of one class: ``real`` images found, ``real_used`` kept, ``synthetic`` to make."""

    real: int
    synthetic: int
    real_used: int

    @property
    def final(self) -> int:
        """Images of this class after balancing (real kept + synthetic)."""
        return self.real_used + self.synthetic

    def to_dict(self) -> dict[str, int]:
        return {"real": self.real, "synthetic": self.synthetic, "final": self.final, "real_used": self.real_used}


@dataclass(frozen=True)
class Plan:
    """What a policy decided: per class, how many real images are kept and how many are made."""

    policy: Mapping[str, Any]
    classes: Mapping[str, ClassPlan]

    @property
    def synthetic_total(self) -> int:
        return sum(c.synthetic for c in self.classes.values())

    def synthetic_counts(self) -> dict[str, int]:
        return {name: c.synthetic for name, c in self.classes.items()}

    def to_dict(self) -> dict[str, Any]:
        """``{"policy": {...}, "classes": {class: {"real", "synthetic", "final", "real_used"}}}``."""
        return {"policy": dict(self.policy), "classes": {k: v.to_dict() for k, v in self.classes.items()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        classes = {
            name: ClassPlan(int(c["real"]), int(c["synthetic"]), int(c.get("real_used", c["real"])))
            for name, c in data["classes"].items()
        }
        return cls(dict(data["policy"]), classes)


class Policy:
    """Base class: subclasses implement :meth:`synthetic_counts` and :meth:`describe`."""

    mode: str = "add"

    def describe(self) -> dict[str, Any]:
        """A JSON-able description of the policy (saved in plan.json)."""
        raise NotImplementedError

    def synthetic_counts(self, counts: Mapping[str, int]) -> dict[str, int]:
        """Synthetic images per class for the given real counts."""
        raise NotImplementedError

    def plan(self, counts: Mapping[str, int]) -> Plan:
        """Compute the :class:`Plan` for per-class real image ``counts``."""
        counts = _validate_counts(counts)
        synthetic = self.synthetic_counts(counts)
        classes = {}
        for name, n in counts.items():
            m = int(synthetic.get(name, 0))
            used = n - m if self.mode == "replace" else n
            classes[name] = ClassPlan(real=n, synthetic=m, real_used=used)
        return Plan(self.describe(), classes)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _validate_counts(counts: Mapping[str, int]) -> dict[str, int]:
    if not counts or not any(counts.values()):
        raise InvalidParameterError("counts", dict(counts), "at least one class with images")
    return {str(k): int(v) for k, v in counts.items()}


def validate_strategy(strategy: object) -> Strategy:
    """Check a :class:`MinorityUpsampling` strategy; dashes and underscores read as spaces."""
    if isinstance(strategy, str):
        normal = strategy.strip().lower().replace("-", " ").replace("_", " ")
        if normal in STRATEGIES:
            return normal
        raise InvalidParameterError(
            "strategy", strategy, "one of " + ", ".join(repr(s) for s in STRATEGIES)
            + ", a dict {class: final_count} or a callable counts -> dict"
        )
    if isinstance(strategy, Mapping) or callable(strategy):
        return strategy  # type: ignore[return-value]
    raise InvalidParameterError(
        "strategy", strategy, "a name (" + ", ".join(STRATEGIES) + "), a dict {class: final_count} or a callable"
    )


def _validate_targets(targets: Mapping[str, object], counts: Mapping[str, int], source: str) -> dict[str, int]:
    out = {}
    majority = max(counts.values())
    for name, value in targets.items():
        if name not in counts:
            raise InvalidParameterError(
                f"{source}[{name!r}]", value, "a class of the dataset: " + ", ".join(sorted(counts))
            )
        if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, float) and value.is_integer()):
            raise InvalidParameterError(f"{source}[{name!r}]", value, "a whole number of images")
        value = int(value)
        if counts[name] == 0 and value > 0:
            raise InvalidParameterError(
                f"{source}[{name!r}]", value, f"0, because class {name!r} has no usable real image to learn from"
            )
        if value < counts[name]:
            raise InvalidParameterError(
                f"{source}[{name!r}]",
                value,
                f"a final count of at least the {counts[name]} real images of {name!r} "
                "(upsampling never removes images; use Proportion(mode='replace') to swap real for synthetic)",
            )
        if value > majority:
            warnings.warn(
                f"{source}[{name!r}]={value} is above the majority class count {majority}",
                UserWarning,
                stacklevel=4,
            )
        out[name] = value - counts[name]
    return out


class MinorityUpsampling(Policy):
    """Fill classes up with synthetic images (imbalanced-learn's ``sampling_strategy``).

    ``strategy``:

    - ``"minority"``: only the rarest class (all of them when several tie) up to the majority count;
    - ``"not minority"``: every class except the rarest;
    - ``"not majority"`` / ``"auto"``: every class except the largest;
    - ``"all"``: every class (the majority gets none);
    - a dict ``{class: final_count}``: those classes up to that count (an error below the
      real count, a warning above the majority count);
    - a callable ``counts -> {class: final_count}``, validated like the dict.
    """

    def __init__(self, strategy: Strategy = "auto") -> None:
        self.strategy = validate_strategy(strategy)

    def describe(self) -> dict[str, Any]:
        strategy = self.strategy
        if callable(strategy) and not isinstance(strategy, Mapping):
            strategy = f"callable:{getattr(strategy, '__qualname__', repr(strategy))}"
        elif isinstance(strategy, Mapping):
            strategy = dict(strategy)
        return {"name": "minority-upsampling", "strategy": strategy}

    def synthetic_counts(self, counts: Mapping[str, int]) -> dict[str, int]:
        strategy = self.strategy
        if isinstance(strategy, Mapping):
            return _validate_targets(strategy, counts, "strategy")
        if callable(strategy):
            result = strategy(dict(counts))
            if not isinstance(result, Mapping):
                raise InvalidParameterError("strategy(counts)", result, "a dict {class: final_count}")
            return _validate_targets(result, counts, "strategy(counts)")
        present = {name: n for name, n in counts.items() if n > 0}  # empty classes cannot be learnt
        majority, minority = max(present.values()), min(present.values())
        chosen = {
            "minority": lambda n: n == minority,
            "not minority": lambda n: n != minority,
            "not majority": lambda n: n != majority,
            "auto": lambda n: n != majority,
            "all": lambda n: True,
        }[strategy]
        return {name: majority - n for name, n in present.items() if chosen(n)}


def validate_share(share: object, mode: str) -> float:
    """Check a :class:`Proportion` share for ``mode``."""
    if isinstance(share, bool):
        raise InvalidParameterError("share", share, "a number")
    try:
        value = float(share)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameterError("share", share, "a number between 0 and 1") from None
    if mode == "add" and not 0 <= value < 1:
        raise InvalidParameterError(
            "share", share, "a fraction in [0, 1) with mode='add'", "for a 100% synthetic set use mode='replace'"
        )
    if mode == "replace" and not 0 <= value <= 1:
        raise InvalidParameterError("share", share, "a fraction in [0, 1] with mode='replace'")
    return value


class Proportion(Policy):
    """Make ``share`` of each class's training set synthetic.

    ``mode="add"`` keeps every real image and adds ``round(n * share / (1 - share))``;
    ``mode="replace"`` keeps the class size and swaps ``round(n * share)`` real images for
    synthetic ones (``share=1`` is a fully synthetic training set).
    """

    def __init__(self, share: float, mode: str = "add") -> None:
        if mode not in ("add", "replace"):
            raise InvalidParameterError("mode", mode, "'add' or 'replace'")
        self.mode = mode
        self.share = validate_share(share, mode)

    def describe(self) -> dict[str, Any]:
        return {"name": "proportion", "share": self.share, "mode": self.mode}

    def synthetic_counts(self, counts: Mapping[str, int]) -> dict[str, int]:
        if self.mode == "add":
            return {name: round(n * self.share / (1 - self.share)) for name, n in counts.items()}
        return {name: round(n * self.share) for name, n in counts.items()}


def make_policy(policy: str | Policy | Mapping[str, Any] | None = None, **kwargs: Any) -> Policy:
    """Build a policy from a name (``"upsample"``/``"minority-upsampling"``, ``"proportion"``),
    a :meth:`Policy.describe` dict, or return a :class:`Policy` unchanged."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, Mapping):
        kwargs = {k: v for k, v in policy.items() if k != "name"} | kwargs
        policy = str(policy.get("name"))
    name = (policy or "upsample").lower().replace("_", "-")
    if name in ("upsample", "minority-upsampling", "upsampling"):
        return MinorityUpsampling(kwargs.pop("strategy", "auto"), **kwargs)
    if name == "proportion":
        if "share" not in kwargs:
            raise InvalidParameterError("share", None, "a fraction, required by policy 'proportion'")
        return Proportion(**kwargs)
    raise InvalidParameterError("policy", policy, "'upsample' (minority-upsampling) or 'proportion'")
