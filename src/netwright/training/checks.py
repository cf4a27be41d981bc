"""The doctor's part in ``fit``: the pre-flight on the first batch, the structure check before
the optimizer is built, and setups fit refuses, each as a finding with its code."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..data.batches import Batches
from ..data.sources import InMemory, Source
from ..errors import ConfigError

__all__ = ["preflight_checks", "structure_checks", "refuse"]


def preflight_checks(trainer: Any, batches: Batches, source: Source, log_keys: list[str],
                     steps_per_epoch: int, val: Source | None) -> Any:
    """The doctor's cheap checks on one batch: errors stop fit (a DoctorError carrying the
    report), warnings are returned to be shown once."""
    from ..diagnosis import preflight
    from ..diagnosis.audio_checks import data_audio

    head = batches.peek()
    if head is None:
        return None
    whole = (source.x, source.y) if isinstance(source, InMemory) else None
    options = trainer.options
    report = preflight(trainer.model, head[0], head[1], loss_fn=trainer.loss_fn,
                       loss_info=trainer.loss_info, optimizer=trainer.optimizer,
                       schedule=trainer.schedule, log_keys=log_keys,
                       steps_per_epoch=steps_per_epoch, epochs=options.epochs, data=whole,
                       batch_sizes=batches.sizes(), audio=data_audio(source),
                       sources=(source, val), shuffle=options.shuffle)
    report.raise_for_errors()
    return report


def structure_checks(model: nn.Module) -> None:
    """Layers in plain containers, trainable tensors that are not parameters, nothing to train
    (NW216, NW217, NW403): raised before the optimizer would refuse the model without a code."""
    from ..diagnosis.api import structure_errors

    structure_errors(model).raise_for_errors()


def refuse(code: str, message: str, fix: str, where: str, coded: bool) -> None:
    """A setup fit refuses: as the doctor's finding ``code`` (a DoctorError that is also a
    ConfigError) when the checks are on, else as a plain ConfigError."""
    if not coded:
        raise ConfigError(f"{message} Fix: {fix}.")
    from ..diagnosis.report import Report, finding

    Report([finding(code, message, fix, where)]).raise_for_errors()
