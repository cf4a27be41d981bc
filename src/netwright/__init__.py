"""netwright: build, train, check, save and ship PyTorch network models.

    import netwright as nw
    result = nw.fit(model, (X, y), loss="cross_entropy", epochs=10, val=0.2, metrics=["accuracy"])

Names are imported on first use, so ``import netwright`` stays fast (no torch import until a
function that needs it is called).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # training
    "fit": "netwright.training.trainer",
    "evaluate": "netwright.training.inference",
    "predict": "netwright.runner",
    "Trainer": "netwright.training.trainer",
    "FitResult": "netwright.training.trainer",
    "seed_everything": "netwright.training.devices",
    "resolve_device": "netwright.training.devices",
    "train_step": "netwright.training.step",
    "closure_step": "netwright.training.step",
    "StepContext": "netwright.training.step",
    "FitOptions": "netwright.config",
    "eval_step": "netwright.training.step",
    # callbacks
    "Callback": "netwright.training.callbacks",
    "EarlyStopping": "netwright.training.callbacks",
    "BestCheckpoint": "netwright.training.callbacks",
    "CSVLogger": "netwright.training.callbacks",
    "ProgressBar": "netwright.training.callbacks",
    # runs, models, saving
    "run": "netwright.runner",
    "open_run": "netwright.runner",
    "load_config": "netwright.config",
    "RunConfig": "netwright.config",
    "build": "netwright.models.builder",
    "summary": "netwright.models.summary",
    "build_zoo": "netwright.models.zoo",
    "save": "netwright.saving",
    "load": "netwright.saving",
    "load_weights": "netwright.checkpoint",
    "LoadReport": "netwright.checkpoint",
    "doctor": "netwright.diagnosis",
    "preflight": "netwright.diagnosis",
    "DoctorError": "netwright.diagnosis",
    "Report": "netwright.diagnosis",
    "Finding": "netwright.diagnosis",
    "export": "netwright.exporting",
    "export_all": "netwright.exporting",
    "ExportReport": "netwright.exporting",
    "predict_onnx": "netwright.exporting",
    # components by name
    "resolve_loss": "netwright.losses",
    "build_optimizer": "netwright.optim",
    "build_scheduler": "netwright.optim",
    "MetricSet": "netwright.metrics",
    "load_builtin": "netwright.data.builtin",
    "stream": "netwright.data.streaming",
    "images": "netwright.data.images",
    "texts": "netwright.data.texts",
    "audio": "netwright.data.audio",
    "lr_find": "netwright.tuning.lr_find",
    "Classifier": "netwright.sklearn",
    "Regressor": "netwright.sklearn",
    "tune": "netwright.tuning.search",
    "serve": "netwright.serving.app",
    # errors
    "NetwrightError": "netwright.errors",
    "ConfigError": "netwright.errors",
    "DataError": "netwright.errors",
    "ModelSpecError": "netwright.errors",
    "LossTargetError": "netwright.errors",
    "CheckpointError": "netwright.errors",
    "ExportError": "netwright.errors",
    "UntrustedCodeError": "netwright.errors",
    "NonFiniteLossError": "netwright.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'netwright' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .checkpoint import LoadReport, load_weights
    from .config import RunConfig, load_config
    from .data.builtin import load_builtin
    from .data.streaming import stream
    from .data.images import images
    from .data.texts import texts
    from .data.audio import audio
    from .sklearn import Classifier, Regressor
    from .tuning.lr_find import lr_find
    from .tuning.search import tune
    from .serving.app import serve
    from .diagnosis import DoctorError, Finding, Report, doctor, preflight
    from .exporting import ExportReport, export, export_all, predict_onnx
    from .models.builder import build
    from .models.summary import summary
    from .models.zoo import build_zoo
    from .runner import open_run, predict, run
    from .saving import load, save
    from .errors import (CheckpointError, ConfigError, DataError, ExportError, LossTargetError,
                         ModelSpecError, NetwrightError, NonFiniteLossError, UntrustedCodeError)
    from .losses import resolve_loss
    from .metrics import MetricSet
    from .optim import build_optimizer, build_scheduler
    from .training.callbacks import BestCheckpoint, Callback, CSVLogger, EarlyStopping, ProgressBar
    from .config import FitOptions
    from .training.step import StepContext, closure_step, eval_step, train_step
    from .training.devices import resolve_device, seed_everything
    from .training.inference import evaluate
    from .training.trainer import FitResult, Trainer, fit
