"""``nw.run``: a whole run from a config — data, model, training, final scores, run directory.

Everything that can be wrong with a config (names, data, the model spec, shapes) is found
before the run directory is created, so a failed start leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import atomic_write_json
from .config import FitOptions, RunConfig, config_to_dict, load_config
from .data.prepare import Prepared, prepare_data
from .errors import ConfigError
from .losses import resolve_loss
from .models.builder import build
from .models.scaling import Scaled
from .saving import describe_model, load
from .training.devices import seed_everything
from .training.distributed import restarted, world_for
from .runs import LoadedRun, open_run, predict  # re-exported: nw.open_run, nw.predict
from .training.inference import evaluate
from .training.trainer import FitResult, Trainer

__all__ = ["run", "RunResult", "build_model", "new_run_dir", "LoadedRun", "open_run", "predict"]


@dataclass
class RunResult:
    run_dir: Path
    fit: FitResult
    scores: dict  # split name -> metrics
    config: RunConfig
    model: nn.Module
    data: Prepared

    def __repr__(self) -> str:
        return f"RunResult(run_dir={str(self.run_dir)!r}, scores={self.scores})"


def build_model(cfg: RunConfig, data: Prepared, *, trust_code: bool = True,
                verbose: int = 0) -> nn.Module:
    """The config's model for this data, wrapped with the training split's standardisation.

    ``trust_code=False`` (a config read from a file) refuses a ``class`` outside the trusted
    packages, as loading a model.json does."""
    spec = cfg.model
    if isinstance(spec, str):
        spec = {"zoo": spec}
    if isinstance(spec, dict) and "zoo" in spec:
        spec = _fill_head(dict(spec), data)
    if isinstance(spec, dict) and "torchvision" in spec:
        spec = _fill_torchvision(dict(spec), data)
    net = build(spec, data.input_shape, trust_code=trust_code)
    if cfg.weights is not None:  # pretrained weights from a file (never a download)
        from .checkpoint.pretrained import load_pretrained

        report = load_pretrained(net, cfg.weights)
        if verbose:
            print(f"weights: {report_line(report)}", file=sys.stderr)
    if data.x_stats is None and data.y_stats is None:
        return net
    model = Scaled(net, data.x_stats[0].shape if data.x_stats else None,
                   data.y_stats[0].shape if data.y_stats else None)
    model.set_stats(x=data.x_stats, y=data.y_stats)
    return model


def _fill_head(spec: dict, data: Prepared) -> dict:
    """Give a zoo model the output size the data implies, where the config left it out."""
    from .models.zoo import ZOO

    entry = ZOO.get(spec["zoo"])
    if entry is None:
        return spec
    params = entry.params
    if data.text is not None:  # a text model: the tokenizer's vocabulary and longest input
        if "vocab_size" in params and "vocab_size" not in spec:
            spec["vocab_size"] = int(data.text["vocab_size"])
        if "max_length" in params and "max_length" not in spec:
            spec["max_length"] = int(data.text["max_length"])
        elif "max_length" in params and int(spec["max_length"]) < int(data.text["max_length"]):
            raise ConfigError(
                f"model.max_length: {spec['max_length']} positions, but data.max_length lets texts "
                f"be {data.text['max_length']} tokens long; a longer text would not fit the model "
                f"at prediction. Fix: leave model.max_length out (it follows data.max_length), or "
                f"set data.max_length: {spec['max_length']}.")
    if data.audio is not None and "sample_rate" in params:  # a sound model: the clips' rate
        rate = int(data.audio["sample_rate"])
        if "sample_rate" not in spec:
            spec["sample_rate"] = rate
        elif int(spec["sample_rate"]) != rate:
            raise ConfigError(
                f"model.sample_rate: {spec['sample_rate']} Hz, but the clips are read at {rate} Hz "
                f"(data.sample_rate); the model's features would put every sound at the wrong "
                f"frequencies. Fix: leave model.sample_rate out (it follows the data), or set "
                f"data.sample_rate: {spec['sample_rate']}.")
    if "num_classes" in spec or "outputs" in spec or "out_features" in spec:
        return spec
    if data.task == "multiclass":
        n = len(data.classes) if data.classes else int(data.train[1].max()) + 1
        key = "num_classes" if "num_classes" in params else "out_features"
        if key in params:
            spec[key] = n
    else:
        key = next((k for k in ("outputs", "out_features", "num_classes") if k in params), None)
        if data.target_width is not None:  # a stream: its targets are not an array here
            width = data.target_width
        else:
            width = int(data.train[1].shape[1]) if data.train[1].ndim == 2 else 1
        if key is not None:
            spec[key] = width
    return spec


def report_line(report: dict) -> str:
    """One line on what :func:`~netwright.checkpoint.pretrained.load_pretrained` did."""
    parts = [f"{report['loaded']} tensors loaded from {report['source']}"]
    if report.get("adapted"):
        parts.append("adapted: " + "; ".join(f"{k} ({why})" for k, why in report["adapted"].items()))
    if report.get("left"):
        left = list(report["left"])
        parts.append(f"{len(left)} left as initialised ({', '.join(left[:4])}"
                     f"{', ...' if len(left) > 4 else ''})")
    return "; ".join(parts)


def _fill_torchvision(spec: dict, data: Prepared) -> dict:
    """``{torchvision: resnet18}``: the classifier head sized to the data's classes and the
    first convolution to its channels, where the config left them out."""
    args = dict(spec.get("args") or {})
    if data.task in ("multiclass", "binary") and "num_classes" not in args:
        n = len(data.classes) if data.classes else int(data.train[1].max()) + 1
        args["num_classes"] = 1 if data.task == "binary" else n
    spec["args"] = args
    channels = data.input_shape[0] if len(data.input_shape) == 3 else None
    if "in_channels" not in spec and channels not in (None, 3):
        spec["in_channels"] = int(channels)
    return spec


def new_run_dir(root: str | os.PathLike, name: str) -> Path:
    """``root/name``, or ``root/name-2``, ``-3`` ... : an existing run is never reused."""
    root = Path(root)
    candidate, n = root / name, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{name}-{n}"
    return candidate


def _trainer(cfg: RunConfig, model: nn.Module, run_dir: Path | None, verbose: int,
             run_files: dict[str, str] | None = None, resume: bool = False,
             force: bool = False, workers: int | None = None,
             callbacks: Sequence[Any] | None = None) -> Trainer:
    """The config's training options as one validated :class:`FitOptions`: its ``train:``
    section is FitOptions' TrainConfig part as it is; the other sections fill the rest."""
    opt = cfg.optimizer.model_dump()
    lr, wd, dnb = opt.pop("lr"), opt.pop("weight_decay"), opt.pop("decay_norm_and_bias")
    train = dict(cfg.train)
    if workers is not None and "num_workers" not in cfg.train.model_fields_set:
        # Image files want loader processes; the saved config keeps the user's own setting.
        train["num_workers"] = workers
        if "persistent_workers" not in cfg.train.model_fields_set:
            train["persistent_workers"] = workers > 0
    options = FitOptions.model_validate({
        **train, "loss": cfg.loss, "optimizer": opt, "lr": lr, "weight_decay": wd,
        "decay_norm_and_bias": dnb, "metrics": list(cfg.metrics) or None,
        "scheduler": cfg.scheduler, "run_dir": run_dir, "verbose": verbose,
        "run_files": run_files, "resume": resume, "force": force,
        "callbacks": list(callbacks) if callbacks else None,
    })
    return Trainer(model, options)


def latest_run_dir(root: str | os.PathLike, name: str) -> Path | None:
    """The newest existing ``root/name`` or ``root/name-N`` (highest N), or None."""
    root = Path(root)
    found = [p for p in root.glob(f"{name}*") if p.is_dir() and (
        p.name == name or (p.name.startswith(f"{name}-") and p.name[len(name) + 1:].isdigit()))]
    return max(found, key=lambda p: int(p.name[len(name) + 1:] or 1) if p.name != name else 1, default=None)


def run(config: str | os.PathLike | Mapping | RunConfig, overrides: Sequence[str] = (), *,
        verbose: int = 1, resume: bool = False, force: bool = False,
        trust_code: bool | None = None, callbacks: Sequence[Any] | None = None,
        report: bool = True) -> RunResult:
    """Run a config: train, score the val and test splits, write the run directory.

    ``resume=True`` continues the newest run of this config's name from its newest complete
    checkpoint (bitwise as if never interrupted, on CPU); a changed config is refused unless
    ``force=True``. A config read from a file may name a model ``class`` outside torch.nn,
    torchvision.models and netwright only with ``trust_code=True`` (importing it runs its code);
    a mapping or RunConfig built in Python is trusted unless ``trust_code=False``.
    ``callbacks`` are added to the trainer's own (each sees every epoch's logs), as fit's are.
    ``report=False`` leaves report.html out (a tune's trials: `netwright report RUN_DIR` draws
    it later from the run directory).

    >>> import tempfile
    >>> result = run({"model": {"zoo": "mlp", "hidden": [16]}, "data": {"source": "iris"},
    ...               "loss": "cross_entropy", "metrics": ["accuracy"],
    ...               "run_dir": tempfile.mkdtemp()}, ["train.epochs=2"], verbose=0)
    >>> sorted(result.scores)
    ['test', 'val']
    """
    if trust_code is None:
        trust_code = isinstance(config, (Mapping, RunConfig))
    cfg = load_config(config, overrides)
    _, info = resolve_loss(cfg.loss)
    if not trust_code:  # refuse before any data is read
        check_model_classes(cfg.model, f"config file {str(config)!r}")
    data = prepare_data(cfg.data, info.task, info.name)
    # One seeding point before the model is made: its initial weights come from torch's global
    # generator, so without this the same config gave different weights on every run.
    seed_everything(int(cfg.train.seed))
    model = build_model(cfg, data, trust_code=trust_code, verbose=verbose)
    # Under torchrun every process runs this; rank 0's choice of folder is everyone's, and only
    # rank 0 writes in it (the trainer, results.json, exports). A process group that torchrun
    # started again after a failure continues the run it was training.
    world = world_for(cfg.train.strategy)
    again = restarted(world)
    run_dir = latest_run_dir(cfg.run_dir, cfg.name) if resume or again else None
    if resume and run_dir is None:
        raise ConfigError(f"resume: no run named {cfg.name!r} in {cfg.run_dir!r} to continue. Fix: "
                          f"train it first (without --resume), or check name and run_dir.")
    resume, run_dir = world.broadcast((resume or (again and run_dir is not None),
                                       str(run_dir or new_run_dir(cfg.run_dir, cfg.name))))
    run_dir = Path(run_dir)
    import yaml

    model_json = describe_model(model)
    model_json.update({"task": data.task, "classes": data.classes,
                       "feature_names": data.feature_names})
    if data.images is not None:  # what prediction needs to read new image files the same way
        model_json["images"] = data.images
    if data.audio is not None:  # what prediction needs to read new sound files the same way
        model_json["audio"] = {k: data.audio[k] for k in ("sample_rate", "duration", "num_samples")}
    files = {"config.yaml": yaml.safe_dump(config_to_dict(cfg), sort_keys=False),
             "model.json": json.dumps(model_json, indent=2) + "\n"}
    if data.tokenizer is not None:  # prediction tokenizes new texts with the run's own tokenizer
        model_json["text"] = {k: data.text[k] for k in ("tokenizer", "vocab_size", "max_length")}
        files["model.json"] = json.dumps(model_json, indent=2) + "\n"
        files["tokenizer.json"] = data.tokenizer.to_str()
    trainer = _trainer(cfg, model, run_dir, verbose, files, resume, force, data.workers,
                       callbacks)
    if verbose and world.main:
        for note in data.notes:
            print(f"data: {note}", file=sys.stderr)
    val = data.val if data.val is not None else None
    fit_result = trainer.fit(data.train, val)
    scores = {}
    for split in ("val", "test"):
        part = getattr(data, split)
        if part is not None:  # every rank scores the whole split (metrics sync over the ranks)
            scores[split] = evaluate(model, part, loss=cfg.loss, metrics=list(cfg.metrics) or None,
                                     batch_size=trainer.eval_batch_size)
    if not world.main:
        return RunResult(run_dir, fit_result, scores, cfg, model, data)
    exports = {}
    if cfg.export is not None and cfg.export.formats:
        from .exporting import export_all

        shape = tuple(data.input_shape)
        # Sharded by FSDP, the model computes only with every process: export the whole one
        # from the run's own files (its weights were gathered into weights.safetensors).
        source = load(run_dir, trust_code=trust_code) if world.sharded else model
        # A resumed run's exports/ holds this same run's files: replacing them is the point.
        reports = export_all(source, run_dir / "exports", list(cfg.export.formats), example=shape,
                             overwrite=resume)
        exports = {fmt: {"path": str(r.path.name), "max_abs_diff": r.max_abs_diff}
                   for fmt, r in reports.items()}
    atomic_write_json(run_dir / "results.json", {
        "exports": exports,
        "scores": scores, "sizes": data.sizes, "epochs": len(fit_result.history),
        "stop_reason": fit_result.stop_reason, "seconds": round(fit_result.seconds, 3),
        "best": {k: v for k, v in (fit_result.best or {}).items() if not isinstance(v, (list, dict))},
        "weights_epoch": fit_result.weights_epoch, "restored_best": fit_result.restored_best,
        "device": str(trainer.device),
        "doctor": [{"code": f.code, "severity": f.severity, "where": f.where or "",
                    "message": f.message, "fix": f.fix} for f in (fit_result.findings or [])],
        **({"data_notes": data.notes} if data.notes else {}),
        **({"skipped_files": [{"file": f, "reason": why} for f, why in data.skipped]}
           if data.skipped else {}),
    })
    if report:
        _report(run_dir, model, data, fit_result.findings, verbose)
    return RunResult(run_dir, fit_result, scores, cfg, model, data)


def _report(run_dir: Path, model: nn.Module, data: Prepared, findings: Any, verbose: int) -> None:
    """report.html at the end of a run; without matplotlib or Jinja2 the run says so."""
    from .reporting.report import write_report

    try:
        import jinja2  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the report extra is part of 'all'
        if verbose:
            print(f"report.html not written ({exc.name} is not installed). Fix: pip install "
                  f"'netwright[report]', then `netwright report {run_dir}`.", file=sys.stderr)
        return
    write_report(run_dir, model=model, data=data, findings=findings)


def check_model_classes(spec: Any, where: str) -> None:
    """Every ``{"class": ...}`` in a spec from a file, checked on the string (nothing imported);
    a class outside the trusted packages is an UntrustedCodeError that starts with ``where``."""
    from .errors import UntrustedCodeError
    from .models.builder import check_class_target

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            if "class" in node and set(node) <= {"class", "args"}:
                try:
                    check_class_target(node["class"], path, trust_code=False)
                except UntrustedCodeError as exc:
                    raise UntrustedCodeError(f"{where}: {exc}") from None
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(spec, "model")
