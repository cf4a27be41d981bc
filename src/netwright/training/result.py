"""What ``fit`` returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..metrics import Task

__all__ = ["FitResult"]


@dataclass
class FitResult:
    """What ``fit`` returns: the per-epoch ``history``, the ``best`` epoch's row by ``monitor``,
    the trained ``model``, the ``run_dir`` (if any) and why training stopped. ``weights_epoch``
    is the epoch whose weights ``model`` (and run_dir's weights.safetensors) hold: the best one
    when ``restored_best``, else the last."""

    history: list[dict]
    best: dict | None
    monitor: str
    model: nn.Module
    run_dir: Path | None = None
    stop_reason: str = "completed"
    seconds: float = 0.0
    task: Task | None = None
    findings: Any = None  # the doctor's pre-flight report (warnings; errors stop fit)
    weights_epoch: int | None = None
    restored_best: bool = False

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}

    @property
    def weights_note(self) -> str:
        """Which epoch's weights the model holds, said plainly: ``"best epoch 6 (by val_loss)"``
        or ``"last epoch 8 (best was 6 by val_loss)"``."""
        if self.weights_epoch is None:
            return "initial weights (no epoch ran)"
        best = self.best["epoch"] if self.best else None
        if self.restored_best and best == self.weights_epoch:
            return f"best epoch {best} (by {self.monitor})"
        if best is None:
            return f"last epoch {self.weights_epoch} (no epoch logged a finite {self.monitor})"
        if best == self.weights_epoch:
            return f"last epoch {best} (also the best by {self.monitor})"
        return f"last epoch {self.weights_epoch} (best was {best} by {self.monitor})"

    def __repr__(self) -> str:
        best = {k: v for k, v in (self.best or {}).items() if not isinstance(v, (list, dict))}
        return (f"FitResult(epochs={len(self.history)}, stop_reason={self.stop_reason!r}, "
                f"monitor={self.monitor!r}, best={best}, weights_epoch={self.weights_epoch}, "
                f"seconds={self.seconds:.2f})")
