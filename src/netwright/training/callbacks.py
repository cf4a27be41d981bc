"""Callbacks: plain objects with a few named hooks, all optional.

The trainer calls, with explicit arguments and nothing else:

- ``on_fit_start(info: FitInfo)``
- ``on_epoch_start(epoch: int)``
- ``on_batch_end(epoch: int, batch: int, loss: Tensor)`` — only on callbacks that define it
- ``on_epoch_end(epoch: int, logs: dict, model) -> bool | None`` — return True to stop training
- ``on_fit_end(history: list[dict], model)``
- ``on_notice(message: str)`` — a one-off message for the user (e.g. "resumed from ...")

A callback with state worth resuming also defines ``state_dict()``/``load_state_dict()``.
Subclassing :class:`Callback` is optional; it only supplies the no-op hooks.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_write_json, atomic_write_text, save_weights, state_to_cpu
from ..errors import ConfigError
from ..optim import metric_mode

__all__ = ["Callback", "FitInfo", "EarlyStopping", "BestWeights", "BestCheckpoint", "CSVLogger",
           "ProgressBar", "EpochPrinter", "is_better"]


@dataclass
class FitInfo:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    epochs: int
    batches_per_epoch: int
    monitor: str
    mode: str
    run_dir: Path | None = None
    log_keys: list = field(default_factory=list)  # the keys every epoch's logs will hold
    example: Any = None  # the first training batch's inputs (a logger's graph), when known


class Callback:
    """No-op hooks to subclass; any object with some of these methods works as well."""

    def on_fit_start(self, info: FitInfo) -> None: ...
    def on_epoch_start(self, epoch: int) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict, model: torch.nn.Module) -> bool | None: ...
    def on_fit_end(self, history: list, model: torch.nn.Module) -> None: ...


def is_better(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return not math.isnan(value)
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _check_monitor(owner: str, monitor: str, info: FitInfo) -> None:
    if info.log_keys and monitor not in info.log_keys:
        raise ConfigError(
            f"{owner}: monitor {monitor!r} is not a logged value; each epoch logs "
            f"{info.log_keys}. Fix: monitor one of those (val_* needs val data)."
        )


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``restore_best`` asks fit to end with the weights of the best epoch by fit's ``monitor``
    (fit keeps them: see :class:`BestWeights`); fit's own ``restore_best``, when given, decides.

    >>> es = EarlyStopping(monitor="val_loss", patience=3)
    """

    def __init__(self, monitor: str | None = None, patience: int = 5, mode: str = "auto",
                 min_delta: float = 0.0, restore_best: bool = True):
        if not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"EarlyStopping.patience: expected an integer >= 1, received {patience!r}.")
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"EarlyStopping.mode: expected 'auto', 'min' or 'max', received {mode!r}.")
        self.monitor, self.patience, self.mode = monitor, patience, mode
        self.min_delta, self.restore_best = float(min_delta), restore_best
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_fit_start(self, info: FitInfo) -> None:
        self.monitor = self.monitor or info.monitor
        _check_monitor("EarlyStopping", self.monitor, info)
        if self.mode == "auto":
            self.mode = metric_mode(self.monitor)

    def on_epoch_end(self, epoch, logs, model):
        value = float(logs[self.monitor])
        if is_better(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "mode": self.mode, "monitor": self.monitor}

    def load_state_dict(self, state: dict) -> None:
        for key in ("best", "best_epoch", "wait", "mode", "monitor"):
            setattr(self, key, state[key])


class BestWeights(Callback):
    """Keep a CPU copy of the weights of the best epoch by ``monitor`` (taken when it improves);
    :meth:`restore` loads it back. fit keeps one when ``restore_best`` is on and restores it
    before ``on_fit_end``, also when early stopping or a NaN loss ends the run.

    >>> keeper = BestWeights("val_loss")
    >>> keeper.epoch is None
    True
    """

    def __init__(self, monitor: str | None = None, mode: str = "auto"):
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None
        self.epoch: int | None = None  # 1-based, as in the logs
        self.weights: dict | None = None

    def on_fit_start(self, info: FitInfo) -> None:
        self.monitor = self.monitor or info.monitor
        _check_monitor("BestWeights", self.monitor, info)
        if self.mode == "auto":
            self.mode = metric_mode(self.monitor)

    def on_epoch_end(self, epoch, logs, model):
        value = logs.get(self.monitor)
        if isinstance(value, float) and is_better(value, self.best, self.mode):
            self.best, self.epoch = value, int(logs.get("epoch", epoch + 1))
            self.weights = state_to_cpu(model.state_dict())
        return False

    def restore(self, model: torch.nn.Module) -> int | None:
        """Load the best epoch's weights into ``model``; returns that epoch (None if none)."""
        if self.weights is None:
            return None
        model.load_state_dict(self.weights)
        return self.epoch

    def state_dict(self) -> dict:
        # The weights are part of the state: a resumed run must end with the same ones.
        return {"best": self.best, "epoch": self.epoch, "mode": self.mode, "monitor": self.monitor,
                "weights": self.weights}

    def load_state_dict(self, state: dict) -> None:
        for key in ("best", "epoch", "mode", "monitor", "weights"):
            setattr(self, key, state[key])


class BestCheckpoint(Callback):
    """Save the weights of the best epoch by ``monitor`` to ``run_dir/checkpoints/best/``."""

    def __init__(self, run_dir: str | Path, monitor: str | None = None, mode: str = "auto"):
        self.dir = Path(run_dir) / "checkpoints" / "best"
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None

    def on_fit_start(self, info: FitInfo) -> None:
        from ..resume import refuse_links

        self.monitor = self.monitor or info.monitor
        _check_monitor("BestCheckpoint", self.monitor, info)
        if self.mode == "auto":
            self.mode = metric_mode(self.monitor)
        refuse_links(self.dir.parent.parent)  # never write through a linked checkpoints/best

    def on_epoch_end(self, epoch, logs, model):
        value = float(logs[self.monitor])
        if is_better(value, self.best, self.mode):
            self.best = value
            save_weights(model.state_dict(), self.dir / "weights.safetensors")
            atomic_write_json(self.dir / "state.json", {"epoch": epoch + 1, "monitor": self.monitor,
                                                        "value": value, "logs": logs})
        return False

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]


class CSVLogger(Callback):
    """Keep ``metrics.csv`` (one row per epoch) up to date; rewritten atomically each epoch.

    The columns are in the order the epochs log them (``epoch``, ``train_loss``, ``val_*``,
    ``lr``: ``FitInfo.log_keys``), then any other key in the order it first appears; a resumed
    run keeps the columns it started with.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: list[dict] = []
        self.columns: list[str] = []

    def on_fit_start(self, info: FitInfo) -> None:
        if not self.columns:
            self.columns = list(dict.fromkeys(info.log_keys))

    def on_epoch_end(self, epoch, logs, model):
        self.rows.append({k: v for k, v in logs.items() if not isinstance(v, (list, dict))})
        known, present = set(self.columns), set()
        for row in self.rows:
            for k in row:
                present.add(k)
                if k not in known:
                    self.columns.append(k)
                    known.add(k)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[k for k in self.columns if k in present],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())
        return False

    def state_dict(self) -> dict:
        return {"rows": copy.deepcopy(self.rows), "columns": list(self.columns)}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])
        self.columns = list(state.get("columns") or self.columns)


def _fmt(logs: dict) -> str:
    parts = []
    for k, v in logs.items():
        if k == "epoch" or isinstance(v, (list, dict)):
            continue
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return "  ".join(parts)


class EpochPrinter(Callback):
    """One plain line per epoch (used when output is not a terminal)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self._t0 = 0.0
        self.epochs = 0

    def on_fit_start(self, info):
        self.epochs = info.epochs

    def on_epoch_start(self, epoch):
        self._t0 = time.perf_counter()

    def on_notice(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def on_epoch_end(self, epoch, logs, model):
        took = time.perf_counter() - self._t0
        print(f"epoch {epoch + 1}/{self.epochs}  {_fmt(logs)}  ({took:.2f}s)", file=self.stream, flush=True)
        return False


class ProgressBar(Callback):
    """A rich progress bar with the live training loss; a line per finished epoch."""

    def __init__(self, console=None, refresh_s: float = 0.1):
        self.console = console
        self.refresh_s = refresh_s
        self._progress = None
        self._task = None
        self._last = 0.0

    def on_fit_start(self, info):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = self.console or Console()
        self.epochs = info.epochs
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(),
            console=self.console, transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=info.batches_per_epoch or None,
                                             epoch="1", loss="-")

    def on_notice(self, message: str) -> None:
        self._progress.console.print(message, highlight=False)

    def on_epoch_start(self, epoch):
        self._progress.reset(self._task, epoch=f"{epoch + 1}/{self.epochs}", loss="-")

    def on_batch_end(self, epoch, batch, loss):
        now = time.perf_counter()
        # Reading the loss synchronises with the GPU: do it a few times a second, not per batch.
        if now - self._last >= self.refresh_s:
            self._last = now
            self._progress.update(self._task, completed=batch + 1, loss=f"{float(loss):.4g}")

    def on_epoch_end(self, epoch, logs, model):
        self._progress.console.print(f"epoch {epoch + 1}/{self.epochs}  {_fmt(logs)}", highlight=False)
        return False

    def on_fit_end(self, history, model):
        self.close()

    def close(self):
        """Called by the trainer also when training fails, so the terminal is left clean."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
