"""What a training run reports: :class:`TrainResult` (stored in the artifact JSON) and the line
shown when ``time_budget_s`` stops training early."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["TrainResult", "budget_message"]


@dataclass
class TrainResult:
    """What a finished training run reports (stored in the artifact JSON)."""

    steps: int
    resumed_from_step: int
    final_loss: float | None
    probe_loss_start: float | None
    probe_loss_end: float
    seconds: float
    steps_per_second: float
    n_training_images: int
    losses: list[float] = field(default_factory=list)  # every step's loss, resumed runs included
    processes: int = 1  # ranks that trained together (data-parallel); 1 otherwise
    stopped_by: str = "max_train_steps"  # or "time_budget_s"
    training_seconds: float = 0.0  # loop time summed over resumed runs (what time_budget_s limits)
    target: str = ""  # the target rule: epsilon, v_prediction or flow_matching

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("losses")
        return data


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def budget_message(key: str, step: int, max_steps: int, training_seconds: float) -> str:
    """The line shown when ``time_budget_s`` stops training early: how far it got and, at the
    rate so far, about how long the remaining steps would take."""
    share = step / max_steps * 100 if max_steps else 0.0
    line = f"{key}: time_budget_s stopped training at step {step} of {max_steps} ({share:.1f}%)"
    if step > 0 and training_seconds > 0:
        remaining = (max_steps - step) * training_seconds / step
        line += (f"; the other {max_steps - step} steps need about {_duration(remaining)} more at this speed "
                 "(raise time_budget_s to train them)")
    return line + "; images generated now come from an under-trained model"
