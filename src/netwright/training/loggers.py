"""Loggers beyond ``metrics.csv``: TensorBoard event files (``train.loggers: [csv, tensorboard]``).

The event files are written by ``torch.utils.tensorboard`` (the ``tensorboard`` package) into
``RUN_DIR/tensorboard/``: every value an epoch logs, under its own name (``train_loss``,
``val_accuracy``, ``lr``, ...) at step = epoch; the training loss and the learning rate per
optimizer step at a bounded rate (at most :data:`STEPS_PER_EPOCH` points an epoch, so a long
epoch costs a few reads of the loss, not one per batch); and the model's graph where tracing
works (it is skipped, with a note in the event file's text, where it does not).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .callbacks import Callback, FitInfo

__all__ = ["TensorBoardLogger", "StepLRLogger", "LOGGERS", "STEPS_PER_EPOCH", "LR_STEPS_FILE",
           "make_loggers"]

LR_STEPS_FILE = "lr_steps.csv"

LOGGERS = ("csv", "tensorboard")
STEPS_PER_EPOCH = 50


class TensorBoardLogger(Callback):
    """Write per-epoch values, per-step loss and learning rate, and the graph to ``folder``.

    >>> TensorBoardLogger("runs/x/tensorboard").folder.name
    'tensorboard'
    """

    def __init__(self, folder: str | Path, *, steps_per_epoch: int = STEPS_PER_EPOCH):
        self.folder = Path(folder)
        self.steps_per_epoch = steps_per_epoch
        self.writer: Any = None
        self.every = 1
        self.optimizer: Any = None
        self.batches = 0
        self.example: Any = None

    def on_fit_start(self, info: FitInfo) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ConfigError("loggers: 'tensorboard' needs the tensorboard package. Fix: pip "
                              "install 'netwright[report]' (or leave tensorboard out of "
                              "train.loggers).") from exc
        self.writer = SummaryWriter(log_dir=str(self.folder))
        self.optimizer = info.optimizer
        self.batches = max(1, info.batches_per_epoch)
        self.every = max(1, math.ceil(self.batches / self.steps_per_epoch))
        if info.example is not None:
            self._graph(info.model, info.example)

    def _graph(self, model: Any, example: Any) -> None:
        import warnings

        from ..util import eval_mode

        import torch

        from ..data.sources import map_features

        args = example if isinstance(example, tuple) else (example,)
        args = tuple(map_features(a, lambda t: t[:1]) for a in args)  # one sample is enough
        try:
            with warnings.catch_warnings(), eval_mode(model), torch.no_grad():
                warnings.simplefilter("ignore")
                # Traced here without torch's trace check, which runs the model again and on its
                # first use costs ~0.5 s (a tenth of a short fit); add_graph keeps a traced module.
                traced = torch.jit.trace(model, args, check_trace=False)
                self.writer.add_graph(traced, args)
        except Exception as exc:  # noqa: BLE001 - a graph is a picture: say why there is none
            self.writer.add_text("graph", f"no graph: tracing the model failed "
                                          f"({type(exc).__name__}: {str(exc)[:300]})")

    def on_batch_end(self, epoch: int, i: int, loss: Any) -> None:
        if self.writer is None or i % self.every:
            return
        step = epoch * self.batches + i
        value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
        self.writer.add_scalar("step/train_loss", value, step)
        self.writer.add_scalar("step/lr", float(self.optimizer.param_groups[0]["lr"]), step)

    def on_epoch_end(self, epoch: int, logs: dict, model: Any) -> bool:
        if self.writer is None:
            return False
        step = int(logs.get("epoch", epoch + 1))
        for key, value in logs.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, float(value), step)
        self.writer.flush()
        return False

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class StepLRLogger(Callback):
    """``lr_steps.csv`` in a run directory whose schedule changes the learning rate within
    epochs (onecycle, cosine or warm-up stepped per batch): the rate after no more than
    :data:`STEPS_PER_EPOCH` evenly spread batches an epoch (the rate the next optimizer step
    uses), as ``step, epoch, lr``: ``step`` counts batches, ``epoch`` is fractional (batch ``i``
    of epoch ``e``, counted from 0, is at ``e + (i + 1) / batches``, so the end of an epoch
    falls on metrics.csv's epoch number). Rewritten atomically each epoch; a resumed run
    continues it.

    >>> StepLRLogger("runs/x/lr_steps.csv").path.name
    'lr_steps.csv'
    """

    def __init__(self, path: str | Path, *, steps_per_epoch: int = STEPS_PER_EPOCH):
        self.path = Path(path)
        self.steps_per_epoch = steps_per_epoch
        self.rows: list[list] = []
        self.optimizer: Any = None
        self.batches = 1
        self.every = 1

    def on_fit_start(self, info: FitInfo) -> None:
        self.optimizer = info.optimizer
        self.batches = max(1, info.batches_per_epoch)
        self.every = max(1, math.ceil(self.batches / self.steps_per_epoch))

    def on_batch_end(self, epoch: int, i: int, loss: Any) -> None:
        if i % self.every == 0 or i + 1 == self.batches:
            lr = float(self.optimizer.param_groups[0]["lr"])
            self.rows.append([epoch * self.batches + i + 1, round(epoch + (i + 1) / self.batches, 6), lr])

    def on_epoch_end(self, epoch: int, logs: dict, model: Any) -> bool:
        import csv
        import io

        from ..atomic import atomic_write_text

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["step", "epoch", "lr"])
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())
        return False

    def state_dict(self) -> dict:
        return {"rows": [list(r) for r in self.rows]}

    def load_state_dict(self, state: dict) -> None:
        self.rows = [list(r) for r in state["rows"]]


def make_loggers(names: Any, run_dir: Path | None) -> list:
    """The loggers besides metrics.csv (which the trainer keeps whenever there is a run_dir)."""
    out = []
    for name in names or ():
        if name == "tensorboard":
            if run_dir is None:
                raise ConfigError("loggers: 'tensorboard' writes into the run directory. Fix: "
                                  "pass run_dir=..., or leave tensorboard out.")
            out.append(TensorBoardLogger(run_dir / "tensorboard"))
    return out
