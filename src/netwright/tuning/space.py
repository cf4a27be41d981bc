"""A config's ``tune:`` section read and checked: the search space (dotted config paths to
distributions) and the search settings (metric, direction, pruner, sampler, seed).

Everything is checked before any trial starts: every path against the config's schemas (a zoo
model's arguments for ``model.*``), every distribution and its bounds, and the configs that the
space's ends make, validated as ``netwright train`` would validate them.
"""

from __future__ import annotations

import copy
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ..config import OptimizerConfig, RunConfig, load_config
from ..errors import ConfigError, NetwrightError, did_you_mean, short_repr

__all__ = ["Param", "Space", "parse_space", "apply_params", "DISTRIBUTIONS", "SETTINGS"]

DISTRIBUTIONS = ("log_uniform", "uniform", "int", "choice")
SETTINGS = ("metric", "direction", "pruner", "sampler", "seed")
PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random")
_OPTIONS = {"log_uniform": (), "uniform": ("step",), "int": ("log", "step"), "choice": ()}
# Sections whose keys are free-form options (checked when the run builds them).
_OPEN = ("loss", "scheduler")
_EXAMPLE = "optimizer.lr: {log_uniform: [1.0e-4, 1.0e-1]}"


@dataclass(frozen=True)
class Param:
    """One dimension of the space: ``path`` (``optimizer.lr``), its distribution and bounds."""

    path: str
    kind: str  # one of DISTRIBUTIONS
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None
    choices: tuple = ()

    @property
    def encoded(self) -> bool:
        """A choice among lists or mappings: Optuna stores each as its JSON text."""
        return self.kind == "choice" and any(not _plain(c) for c in self.choices)

    def suggest(self, trial: Any) -> Any:
        """The trial's value (Optuna's ``suggest_*``), decoded to what the config holds."""
        if self.kind == "choice":
            options = [json.dumps(c) if self.encoded else c for c in self.choices]
            value = trial.suggest_categorical(self.path, options)
            return self.decode(value)
        if self.kind == "int":
            return trial.suggest_int(self.path, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_float(self.path, self.low, self.high, log=self.kind == "log_uniform",
                                   step=self.step)

    def decode(self, value: Any) -> Any:
        return json.loads(value) if self.encoded and isinstance(value, str) else value

    def ends(self) -> list[Any]:
        """The values that bound the space: low and high, or every choice."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def describe(self) -> str:
        if self.kind == "choice":
            return f"choice of {len(self.choices)}"
        return f"{self.kind} [{self.low}, {self.high}]{' log' if self.log else ''}"


@dataclass
class Space:
    """The search space and settings of a ``tune:`` section."""

    params: list[Param]
    metric: str = "val_loss"
    direction: str = "minimize"
    pruner: dict = field(default_factory=lambda: {"name": "median"})
    sampler: str = "tpe"
    seed: int = 0

    def decode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna's stored parameters as config values (JSON-encoded choices decoded)."""
        by_path = {p.path: p for p in self.params}
        return {k: by_path[k].decode(v) if k in by_path else v for k, v in params.items()}


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _flatten(section: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{optimizer: {lr: {log_uniform: ...}}}`` and ``{optimizer.lr: {...}}`` alike, as
    dotted paths; a mapping that names a distribution is a leaf."""
    flat: dict[str, Any] = {}
    for key, value in section.items():
        path = f"{prefix}{key}"
        if (not prefix and key in SETTINGS) or not isinstance(value, Mapping):
            flat[path] = value
        elif any(k in DISTRIBUTIONS for k in value) or not value or not all(
                isinstance(v, Mapping) for v in value.values()):
            flat[path] = value
        else:
            flat.update(_flatten(value, f"{path}."))
    return flat


def parse_space(raw: Mapping[str, Any], where: str = "tune") -> Space:
    """The ``tune:`` section of a raw config mapping (after overrides) as a :class:`Space`,
    checked against the config; every problem in one :class:`ConfigError`.

    >>> space = parse_space({"model": {"zoo": "mlp"}, "data": {"source": "iris"},
    ...     "loss": "cross_entropy", "tune": {"optimizer.lr": {"log_uniform": [1e-4, 1e-1]}}})
    >>> space.params[0].kind, space.metric, space.direction
    ('log_uniform', 'val_loss', 'minimize')
    """
    section = raw.get("tune")
    if not isinstance(section, Mapping) or not section:
        raise ConfigError(f"{where}: the config has no tune: section (the search space). Fix: add "
                          f"one, e.g.\n  tune:\n    {_EXAMPLE}\n    model.hidden: {{choice: [[64], "
                          f"[128]]}}")
    flat = _flatten(section)
    problems: list[str] = []
    params = []
    for path, value in flat.items():
        if path in SETTINGS:
            continue
        try:
            _check_path(path, raw)
            params.append(_parse_distribution(path, value))
        except ConfigError as exc:
            problems.append(str(exc))
    if not params and not problems:
        problems.append(f"{where}: no parameter to search (only settings). Fix: add one, e.g. "
                        f"{_EXAMPLE}")
    space = Space(params)
    try:
        _settings(space, flat, raw)
    except ConfigError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError(f"{where}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    _check_ends(space, raw, where)
    return space


# --- paths --------------------------------------------------------------------------------------


def _schema_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``Optional[Model]`` / ``Union[..., Model]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _schema_of(arg)
        if found is not None:
            return found
    return None


def _check_path(path: str, raw: Mapping) -> None:
    parts = path.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"tune.{path}: expected a dotted config path such as optimizer.lr.")
    head = parts[0]
    if head == "model":
        _check_model_path(parts, raw.get("model"))
        return
    if head in ("name", "run_dir", "tune", "data") and len(parts) == 1:
        raise ConfigError(f"tune.{path}: {head} cannot be searched. Fix: search one of its "
                          f"fields (data.val, ...)" if head == "data" else
                          f"tune.{path}: {head} cannot be searched.")
    schema: type[BaseModel] = RunConfig
    for depth, part in enumerate(parts):
        fields = schema.model_fields
        if part not in fields:
            if schema.model_config.get("extra") == "allow":
                _check_optimizer_keyword(path, part, raw.get("optimizer"))
                return
            here = ".".join(parts[:depth]) or "the config"
            raise ConfigError(f"tune.{path}: {part!r} is not a field of {here}."
                              f"{did_you_mean(part, fields)} Expected one of: {', '.join(fields)}.")
        if depth == 0 and part in _OPEN:
            return  # {name: ..., options}: the options are the loss's or scheduler's own
        inner = _schema_of(fields[part].annotation)
        if inner is None:
            if depth < len(parts) - 1:
                raise ConfigError(f"tune.{path}: {'.'.join(parts[:depth + 1])} is a value, not a "
                                  f"section.")
            return
        if depth == len(parts) - 1:
            raise ConfigError(f"tune.{path}: {path} is a section. Fix: search one of its fields: "
                              f"{', '.join(inner.model_fields)}.")
        schema = inner


def _check_optimizer_keyword(path: str, key: str, section: Any) -> None:
    """``optimizer.momentum``: a keyword of the config's torch optimizer."""
    import inspect

    import torch

    name = str(section.get("name", "adam") if isinstance(section, Mapping) else "adam").lower()
    classes = {n.lower(): getattr(torch.optim, n) for n in dir(torch.optim)
               if isinstance(getattr(torch.optim, n), type)}
    cls = classes.get(name)
    if cls is None:
        return  # load_config reports the unknown optimizer
    accepted = [k for k in inspect.signature(cls.__init__).parameters if k not in ("self", "params")]
    if key not in accepted:
        fields = [*OptimizerConfig.model_fields, *(k for k in accepted if k != "lr")]
        raise ConfigError(f"tune.{path}: {key!r} is not an option of optimizer {name!r} "
                          f"(torch.optim.{cls.__name__}).{did_you_mean(key, fields)} Expected one "
                          f"of: {', '.join(fields)}.")


def _check_model_path(parts: list[str], spec: Any) -> None:
    path = ".".join(parts)
    if len(parts) < 2:
        raise ConfigError(f"tune.{path}: search the model's arguments (model.hidden ...), not the "
                          f"whole model spec.")
    if isinstance(spec, str):
        spec = {"zoo": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"tune.{path}: the model is a list of layers; only a mapping spec "
                          f"({{zoo: mlp, hidden: [64]}}, {{class: ..., args: {{...}}}}) has named "
                          f"arguments to search.")
    if "zoo" in spec and len(parts) == 2:
        from ..models.zoo import ZOO

        entry = ZOO.get(spec["zoo"])
        if entry is None:
            return  # the unknown zoo name is load_config's and the builder's to report
        params = entry.params
        if parts[1] not in params:
            raise ConfigError(f"tune.{path}: zoo model {spec['zoo']!r} has no argument {parts[1]!r}."
                              f"{did_you_mean(parts[1], params)} Accepted arguments: "
                              f"{', '.join(params)}.")
        return
    node: Any = spec
    for depth, part in enumerate(parts[1:], start=1):
        if not isinstance(node, Mapping) or part not in node:
            keys = list(node) if isinstance(node, Mapping) else []
            raise ConfigError(f"tune.{path}: the model spec has no {'.'.join(parts[:depth + 1])}."
                              f"{did_you_mean(part, keys)} A path under model must name a key the "
                              f"spec already has{': ' + ', '.join(keys) if keys else ''}.")
        node = node[part]


# --- distributions ------------------------------------------------------------------------------


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse_distribution(path: str, value: Any) -> Param:
    where = f"tune.{path}"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a distribution, e.g. {{log_uniform: [1.0e-4, 0.1]}}, "
                          f"{{uniform: [0, 0.5]}}, {{int: [16, 128]}} or {{choice: [a, b]}}; "
                          f"received {short_repr(value)}.")
    kinds = [k for k in value if k in DISTRIBUTIONS]
    if len(kinds) != 1:
        unknown = [k for k in value if k not in DISTRIBUTIONS and k not in ("log", "step")]
        hint = did_you_mean(str(unknown[0]), DISTRIBUTIONS) if unknown else ""
        what = (f"unknown distribution {short_repr(unknown[0])}.{hint}" if len(kinds) == 0 and unknown
                else f"expected exactly one distribution, received {short_repr(list(value))}.")
        raise ConfigError(f"{where}: {what} Expected one of: {', '.join(DISTRIBUTIONS)}.")
    kind = kinds[0]
    extra = [k for k in value if k != kind and k not in _OPTIONS[kind]]
    if extra:
        raise ConfigError(f"{where}: {kind} takes no option {short_repr(extra[0])}."
                          f"{did_you_mean(str(extra[0]), _OPTIONS[kind])}"
                          f"{' Options: ' + ', '.join(_OPTIONS[kind]) + '.' if _OPTIONS[kind] else ''}")
    bounds = value[kind]
    if kind == "choice":
        if not isinstance(bounds, (list, tuple)) or not bounds:
            raise ConfigError(f"{where}: choice expects a non-empty list of values, received "
                              f"{short_repr(bounds)}.")
        texts = [json.dumps(c, sort_keys=True, default=str) for c in bounds]
        if len(set(texts)) != len(texts):
            raise ConfigError(f"{where}: choice lists a value twice: {short_repr(list(bounds))}.")
        return Param(path, kind, choices=tuple(bounds))
    if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2 and all(map(_number, bounds))):
        raise ConfigError(f"{where}: {kind} expects [low, high] (two finite numbers), received "
                          f"{short_repr(bounds)}.")
    low, high = bounds
    log = kind == "log_uniform"
    if kind == "int":
        if not all(float(b).is_integer() for b in bounds):
            raise ConfigError(f"{where}: int expects whole bounds, received {short_repr(bounds)}. "
                              f"Fix: use uniform for real numbers.")
        low, high = int(low), int(high)
        log = value.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{where}: log expects true or false, received {short_repr(log)}.")
    if not low < high:
        raise ConfigError(f"{where}: {kind} expects low < high, received [{low}, {high}].")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs low > 0, received [{low}, {high}]."
                          f"{' Fix: use uniform.' if kind == 'log_uniform' else ''}")
    step = value.get("step")
    if step is not None:
        if not _number(step) or step <= 0 or (kind == "int" and not float(step).is_integer()):
            raise ConfigError(f"{where}: step expects a positive number, received {short_repr(step)}.")
        if kind == "int" and log and step != 1:
            raise ConfigError(f"{where}: int takes either log: true or a step, not both.")
        step = int(step) if kind == "int" else float(step)
    return Param(path, kind, low, high, log=log, step=step)


# --- settings -----------------------------------------------------------------------------------


def _settings(space: Space, flat: Mapping[str, Any], raw: Mapping) -> None:
    train = raw.get("train") if isinstance(raw.get("train"), Mapping) else {}
    metric = flat.get("metric") or train.get("monitor") or "val_loss"
    if not isinstance(metric, str):
        raise ConfigError(f"tune.metric: expected a logged value's name such as val_accuracy, "
                          f"received {short_repr(metric)}.")
    if not metric.startswith(("val_", "train_")):
        metric = f"val_{metric}"
    if metric.startswith("train_"):
        raise ConfigError(f"tune.metric: {metric!r} is scored on the training data; a search must "
                          f"compare trials on validation data. Fix: "
                          f"val_{metric.removeprefix('train_')}.")
    _check_metric(metric, raw)
    space.metric = metric
    from ..optim import metric_mode

    direction = flat.get("direction") or ("minimize" if metric_mode(metric) == "min" else "maximize")
    aliases = {"min": "minimize", "max": "maximize", "minimise": "minimize", "maximise": "maximize"}
    direction = aliases.get(str(direction).lower(), str(direction).lower())
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"tune.direction: expected minimize or maximize, received "
                          f"{short_repr(flat.get('direction'))}.")
    space.direction = direction
    pruner = flat.get("pruner", "median")
    pruner = {"name": pruner} if isinstance(pruner, str) or pruner is None else dict(pruner)
    name = str(pruner.get("name") or "median").lower()  # {n_startup_trials: 2}: the default
    if name not in PRUNERS:
        raise ConfigError(f"tune.pruner: unknown pruner {short_repr(name)}.{did_you_mean(name, PRUNERS)} "
                          f"Expected one of: {', '.join(PRUNERS)}.")
    space.pruner = {**pruner, "name": name}
    sampler = str(flat.get("sampler", "tpe")).lower()
    if sampler not in SAMPLERS:
        raise ConfigError(f"tune.sampler: unknown sampler {short_repr(sampler)}."
                          f"{did_you_mean(sampler, SAMPLERS)} Expected one of: {', '.join(SAMPLERS)}.")
    space.sampler = sampler
    seed = flat.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"tune.seed: expected a whole number >= 0, received {short_repr(seed)}.")
    space.seed = seed


def _check_metric(metric: str, raw: Mapping) -> None:
    """The metric must be one that every trial logs: val_loss, or val_<one of metrics>."""
    from ..metrics import parse_metric

    names = ["loss"]
    metrics = raw.get("metrics") or []
    for m in [metrics] if isinstance(metrics, (str, Mapping)) else metrics:
        try:
            names.append(parse_metric(m)[0])
        except NetwrightError:
            continue  # load_config reports it
    known = [f"val_{n}" for n in names]
    if metric not in known:
        raise ConfigError(f"tune.metric: {metric!r} is not logged by this config.{did_you_mean(metric, known)} "
                          f"Expected one of: {', '.join(known)} (add a metric to metrics: to "
                          f"search on it).")


# --- configs ------------------------------------------------------------------------------------


def apply_params(raw: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the raw config with each dotted path set to its value, without ``tune:``.

    >>> apply_params({"optimizer": {"lr": 0.1}, "tune": {}}, {"optimizer.lr": 0.01})
    {'optimizer': {'lr': 0.01}}
    """
    out = copy.deepcopy({k: v for k, v in raw.items() if k != "tune"})
    for path, value in params.items():
        parts = path.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if isinstance(child, str) and part == "model" and node is out:
                child = {"zoo": child}
            elif isinstance(child, str) and part in _OPEN and node is out:
                child = {"name": child}
            elif not isinstance(child, Mapping):
                child = {}
            node[part] = child = dict(child)
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return out


def _check_ends(space: Space, raw: Mapping, where: str) -> None:
    """Every value that bounds the space, set into the config and validated as a run would."""
    variants = [("low ends", {p.path: p.ends()[0] for p in space.params}),
                ("high ends", {p.path: p.ends()[-1] for p in space.params})]
    for p in space.params:
        for value in p.ends()[1:-1]:
            variants.append((f"{p.path}={short_repr(value)}", {p.path: value}))
    for label, params in variants:
        cfg = apply_params(raw, params)
        try:
            checked = load_config(cfg)
            _check_model(checked.model)
        except NetwrightError as exc:
            raise ConfigError(f"{where}: the config with the space's {label} "
                              f"({', '.join(f'{k}={short_repr(v)}' for k, v in params.items())}) "
                              f"is not valid:\n{exc}") from None


def _check_model(spec: Any) -> None:
    if isinstance(spec, str):
        spec = {"zoo": spec}
    if isinstance(spec, Mapping) and "zoo" in spec:
        from ..models.zoo import ZOO

        entry = ZOO.get(spec["zoo"])
        params = entry.params if entry is not None else {}
        for key in spec:
            if entry is not None and key != "zoo" and key not in params:
                raise ConfigError(f"model: zoo model {spec['zoo']!r} has no argument {key!r}."
                                  f"{did_you_mean(str(key), params)}")
