"""Balancing policies: how many synthetic images each class gets.

A policy turns the real per-class counts into a :class:`Plan` before any model is loaded.
Conventions follow imbalanced-learn where it has one. Counts use :func:`round`, never
truncation. Every invalid value raises :class:`~synthaug._errors.InvalidParameterError`
naming the parameter, echoing the value and listing what is allowed.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ._errors import InvalidParameterError

__all__ = [
    "ClassPlan",
    "MinorityUpsampling",
    "Plan",
    "Policy",
    "Proportion",
    "PlanNoticeWarning",
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "make_policy",
    "validate_share",
    "validate_strategy",
]

#: The named strategies of :class:`MinorityUpsampling` (imbalanced-learn's meanings).
STRATEGIES = ("minority", "not minority", "not majority", "all", "auto")

#: The strategy of :class:`MinorityUpsampling` when none is given, in the API and on the command line.
DEFAULT_STRATEGY = "not majority"

#: Other spellings of a strategy, read as their canonical name so that they describe the same run.
_STRATEGY_ALIASES = {"auto": "not majority"}


class PlanNoticeWarning(UserWarning):
    """A plan is unusual in a way the user should know (ties of the rarest classes, one class)."""

Strategy = str | Mapping[str, int] | Callable[[Mapping[str, int]], Mapping[str, int]]


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
    """What a policy decided: per class, how many real images are kept and how many are made.

    ``notices`` are sentences a user should read with the plan (tied rarest classes, a
    one-class dataset); the CLI prints them whatever Python's warning filter says.
    """

    policy: Mapping[str, Any]
    classes: Mapping[str, ClassPlan]
    notices: tuple[str, ...] = field(default=(), compare=False)

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
        notices = tuple(self.notices(counts))
        for notice in notices:
            warnings.warn(notice, PlanNoticeWarning, stacklevel=2)
        return Plan(self.describe(), classes, notices)

    def notices(self, counts: Mapping[str, int]) -> list[str]:
        """Sentences about ``counts`` a user should read with the plan (none by default)."""
        return []

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _validate_counts(counts: Mapping[str, int]) -> dict[str, int]:
    if not counts or not any(counts.values()):
        raise InvalidParameterError("counts", dict(counts), "at least one class with images")
    return {str(k): int(v) for k, v in counts.items()}


def validate_strategy(strategy: object) -> Strategy:
    """Check a :class:`MinorityUpsampling` strategy; dashes and underscores read as spaces.

    A name comes back canonical: ``"auto"`` reads as ``"not majority"`` (imbalanced-learn's
    meaning), so both spellings plan, describe and reuse the same run.
    """
    if isinstance(strategy, str):
        normal = strategy.strip().lower().replace("-", " ").replace("_", " ")
        if normal in STRATEGIES:
            return _STRATEGY_ALIASES.get(normal, normal)
        raise InvalidParameterError(
            "strategy", strategy, "one of " + ", ".join(repr(s) for s in STRATEGIES)
            + ", a dict {class: final_count} or a callable counts -> dict"
        )
    if isinstance(strategy, Mapping) or callable(strategy):
        return strategy  # type: ignore[return-value]
    raise InvalidParameterError(
        "strategy", strategy, "a name (" + ", ".join(STRATEGIES) + "), a dict {class: final_count} or a callable"
    )


#: The largest final count a target may ask for in one class (a bigger one is a typo, and its
#: index list alone would not fit in memory).
MAX_IMAGES_PER_CLASS = 10_000_000


def _validate_targets(targets: Mapping[str, object], counts: Mapping[str, int], source: str,
                      notes: list[str] | None = None) -> dict[str, int]:
    """Synthetic counts of final-count ``targets``. A target above the majority count is noted in
    ``notes`` (the plan's notices, printed once), or warned about without ``notes``."""
    out = {}
    majority = max(counts.values())
    cli = source.startswith("--")

    def where(name: str) -> str:
        return f"{source} {name}" if cli else f"{source}[{name!r}]"

    swap = "--policy proportion --replace" if cli else "Proportion(mode='replace')"
    for name, value in targets.items():
        if name not in counts:
            raise InvalidParameterError(where(name), value, "a class of the dataset: " + ", ".join(sorted(counts)))
        if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, float) and value.is_integer()):
            raise InvalidParameterError(where(name), value, "a whole number of images")
        value = int(value)
        if counts[name] == 0 and value > 0:
            raise InvalidParameterError(
                where(name), value, f"0, because class {name!r} has no usable real image to learn from"
            )
        if value < counts[name]:
            raise InvalidParameterError(
                where(name),
                value,
                f"a final count of at least the {counts[name]} real images of {name!r} "
                f"(upsampling never removes images; use {swap} to swap real for synthetic)",
            )
        if value > MAX_IMAGES_PER_CLASS:
            raise InvalidParameterError(where(name), value, f"at most {MAX_IMAGES_PER_CLASS:,} images per class")
        if value > majority and notes is not None:
            notes.append(f"{where(name)}={value} is above the majority class count {majority}")
        elif value > majority:
            warnings.warn(f"{where(name)}={value} is above the majority class count {majority}",
                          UserWarning, stacklevel=4)
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

    Ties: ``"minority"`` fills *every* class tied for the rarest count, so ``"not minority"``
    leaves every tied rarest class unchanged (imbalanced-learn's ``"not minority"`` picks one
    of them and fills the others). The plan's notices say so whenever a tie changes the plan.
    ``source`` names the strategy in error messages (``"--target"`` for the command line).
    """

    def __init__(self, strategy: Strategy = DEFAULT_STRATEGY, *, source: str = "strategy") -> None:
        self.strategy = validate_strategy(strategy)
        self.source = source

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
            return _validate_targets(strategy, counts, self.source, notes=[])
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
            "all": lambda n: True,
        }[strategy]
        return {name: majority - n for name, n in present.items() if chosen(n)}

    def notices(self, counts: Mapping[str, int]) -> list[str]:
        """A one-class dataset (nothing to balance), ties of the rarest classes, and targets
        above the majority count."""
        present = {name: n for name, n in counts.items() if n > 0}
        if len(present) == 1:
            return [f"only one class with images ({next(iter(present))!r}): there is nothing to balance it "
                    "against, so no image is planned; check that DATA has one sub-folder (or CSV label) per class"]
        out: list[str] = []
        if isinstance(self.strategy, Mapping):
            _validate_targets(self.strategy, counts, self.source, notes=out)
        if self.strategy not in ("minority", "not minority") or len(set(present.values())) < 2:
            return out
        rarest = min(present.values())
        tied = sorted(name for name, n in present.items() if n == rarest)
        if len(tied) > 1:
            effect = ("fills every one of them" if self.strategy == "minority"
                      else "leaves every one of them unchanged (imbalanced-learn would fill all but one)")
            out.append(f"classes {', '.join(tied)} tie as the rarest ({rarest} images each): "
                       f"strategy {self.strategy!r} {effect}")
        return out


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
        """Exact arithmetic on the share as written (0.6 is 3/5), then :func:`round` (half to
        even): 9 images at share 0.6 give exactly 13.5 -> 14, where floats gave 13.4999 -> 13."""
        share = Fraction(repr(self.share))
        if self.mode == "add":
            return {name: round(n * share / (1 - share)) for name, n in counts.items()}
        return {name: round(n * share) for name, n in counts.items()}


def make_policy(policy: str | Policy | Mapping[str, Any] | None = None, **kwargs: Any) -> Policy:
    """The one policy factory (the API and the command line both build policies here).

    ``policy`` is a name (``"upsample"``/``"minority-upsampling"``, ``"proportion"``), a
    :meth:`Policy.describe` dict, or a :class:`Policy` returned unchanged; ``kwargs`` go to
    the policy (``strategy``, ``source``; ``share``, ``mode``). An upsampling policy without
    a ``strategy`` (or with ``strategy=None``) gets :data:`DEFAULT_STRATEGY`.
    """
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, Mapping):
        kwargs = {k: v for k, v in policy.items() if k != "name"} | kwargs
        policy = str(policy.get("name"))
    name = (policy or "upsample").lower().replace("_", "-")
    if name in ("upsample", "minority-upsampling", "upsampling"):
        return MinorityUpsampling(kwargs.pop("strategy", None) or DEFAULT_STRATEGY, **kwargs)
    if name == "proportion":
        if "share" not in kwargs:
            raise InvalidParameterError("share", None, "a fraction, required by policy 'proportion'")
        return Proportion(**kwargs)
    raise InvalidParameterError("policy", policy, "'upsample' (minority-upsampling) or 'proportion'")
