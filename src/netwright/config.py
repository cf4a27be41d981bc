"""One typed schema for a run, and loading it from YAML with dotted overrides.

Defaults live here and nowhere else. Every problem in a config is reported at once, each with
its path: ``optimizer.lr: expected a positive number, received 'fast'``; unknown keys get a
"did you mean". Names (loss, optimizer, scheduler, metrics, data set) are checked here too, so a
typo fails at load time, before any data is read or any file written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError, did_you_mean, short_repr

__all__ = ["RunConfig", "DataConfig", "TrainConfig", "OptimizerConfig", "ExportConfig",
           "load_config", "apply_overrides", "config_to_dict", "parse_yaml", "read_yaml_file", "MAX_CONFIG_BYTES",
           "MAX_YAML_DEPTH"]

MAX_CONFIG_BYTES = 4 * 2**20  # a config is a few kilobytes
MAX_YAML_DEPTH = 64  # levels of nesting; a model spec needs a dozen


def parse_yaml(text: str, where: str = "config") -> Any:
    r"""Parse YAML safely for files that may come from others: only plain data (safe_load),
    no aliases (``*name``: a 386-byte "billion laughs" file expands to gigabytes), and at most
    :data:`MAX_YAML_DEPTH` levels of nesting (deeper would exhaust Python's stack).

    >>> parse_yaml("a: [1, 2]")
    {'a': [1, 2]}
    >>> parse_yaml("a: &x [1]\nb: *x")
    Traceback (most recent call last):
    netwright.errors.ConfigError: config: line 2: YAML aliases ('*x') are not accepted in netwright files: they can expand a small file into gigabytes. Fix: write the value out in full.
    """
    import yaml

    class _Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise ConfigError(
                    f"{where}: line {event.start_mark.line + 1}: YAML aliases ('*{event.anchor}') "
                    f"are not accepted in netwright files: they can expand a small file into "
                    f"gigabytes. Fix: write the value out in full."
                )
            self.depth += 1
            try:
                if self.depth > MAX_YAML_DEPTH:
                    mark = self.peek_event().start_mark
                    raise ConfigError(
                        f"{where}: line {mark.line + 1}: nested more than {MAX_YAML_DEPTH} levels "
                        f"deep; a netwright config needs far fewer. Fix: flatten it; a file this "
                        f"deep is corrupt or crafted."
                    )
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {short_repr(str(exc), 400)}") from None
    except RecursionError:  # flow collections ("[[[[...") recurse in the parser, not the composer
        raise ConfigError(f"{where}: nested too deeply to parse; it is corrupt or crafted.") from None
    finally:
        loader.dispose()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Where the data comes from and how it is split and scaled."""

    source: str = Field(description="a built-in data set (digits, iris, wine, breast_cancer, diabetes, "
                                    "mnist, sunspots) or a .csv/.parquet/.npz file")
    target: Optional[Union[str, list[str]]] = Field(None, description="target column(s) (files) or key (.npz)")
    features: Optional[list[str]] = Field(None, description="feature columns; default: all but the target")
    val: float = Field(0.1, ge=0, lt=1, description="fraction held out for validation (0: none)")
    test: float = Field(0.2, ge=0, lt=1, description="fraction held out for the final test (0: none)")
    split: Literal["auto", "stratified", "random", "ordered"] = Field(
        "auto", description="auto: stratified for classes, ordered for time series, else random")
    seed: int = Field(0, description="seed of the splits")
    task: Optional[Literal["classification", "regression"]] = Field(
        None, description="what the targets are; default: inferred from them (whole numbers with "
                          "few distinct values are classes, other numbers are values). Set it to "
                          "accept a loss the inference disagrees with")
    standardize: Literal["features", "global", "none"] = Field(
        "features", description="inputs: per-feature mean/std, one global mean/std (images), or none; "
                                "fitted on the training split only")
    standardize_target: Optional[bool] = Field(
        None, description="regression targets scaled to mean 0, std 1 for training (default: on for "
                          "regression); the model still outputs original units")
    shape: Optional[list[int]] = Field(None, description="reshape each sample, e.g. [1, 28, 28] for images")
    window: Optional[int] = Field(None, ge=1, description="time series: predict the next value from this "
                                                          "many past values")

    @field_validator("shape")
    @classmethod
    def _positive_dims(cls, v):
        if v is not None and (not v or any(d <= 0 for d in v)):
            raise ValueError("expected a list of positive sizes such as [1, 28, 28]")
        return v


def _positive_number(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ValueError("expected a positive number")
    return v


class OptimizerConfig(BaseModel):
    """``name`` and ``lr`` plus any keyword argument of the torch optimizer (momentum, betas ...)."""

    model_config = ConfigDict(extra="allow")
    name: str = "adam"
    lr: Annotated[float, BeforeValidator(_positive_number)] = 1e-3
    weight_decay: float = Field(0.0, ge=0)
    decay_norm_and_bias: bool = True


class EarlyStoppingConfig(_Strict):
    patience: int = Field(5, ge=1)
    monitor: Optional[str] = None
    mode: Literal["auto", "min", "max"] = "auto"
    min_delta: float = Field(0.0, ge=0)
    restore_best: bool = True


class TrainConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: Optional[int] = Field(None, ge=1)
    seed: int = 0
    device: str = "auto"
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"
    accumulate: int = Field(1, ge=1)
    clip_grad: Optional[Union[float, dict[str, float]]] = None
    early_stopping: Optional[EarlyStoppingConfig] = None
    monitor: Optional[str] = None
    num_workers: int = Field(0, ge=0)
    checkpoint_every: Optional[int] = Field(None, ge=1, description="also write a resume bundle "
                                            "every this many batches (one is written every epoch)")
    restore_best: Optional[bool] = Field(None, description="end with the best epoch's weights by "
                                         "the monitor (default: yes when there is validation data)")

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, v):
        return str(v) if isinstance(v, int) else v

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _patience_shortcut(cls, v):
        return {"patience": v} if isinstance(v, int) and not isinstance(v, bool) else v


class ExportConfig(_Strict):
    formats: list[Literal["onnx", "torchscript", "pt2"]] = Field(default_factory=list)


class RunConfig(_Strict):
    """A whole run: model, data, loss, optimizer, scheduler, training, metrics, export."""

    name: str = Field("run", description="the run directory is <run_dir>/<name> (numbered if taken)")
    run_dir: str = Field("runs", description="folder that holds the run directories")
    model: Union[list, dict, str] = Field(description="a layer spec, {zoo: NAME, ...} or {class: 'pkg.mod:Class', args: {...}}")
    data: DataConfig
    loss: Union[str, dict[str, Any]]
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scheduler: Optional[Union[str, dict[str, Any]]] = None
    train: TrainConfig = Field(default_factory=TrainConfig)
    metrics: list[Union[str, dict[str, Any]]] = Field(default_factory=list)
    export: Optional[ExportConfig] = None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v):
        # The run directory is run_dir/name: a name with a separator or '..' would put (and, with
        # --resume, replace) files outside run_dir.
        if (not v or v in (".", "..") or "/" in v or "\\" in v or "\0" in v or len(v) > 200
                or v != v.strip()):
            raise ValueError("expected a plain folder name (no '/', '\\', '..' or surrounding "
                             "spaces, at most 200 characters), e.g. 'mnist_cnn'")
        return v


_FRIENDLY = {
    "greater_than": "expected a number > {gt}",
    "greater_than_equal": "expected a number >= {ge}",
    "less_than": "expected a number < {lt}",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_parsing": "expected a number",
    "bool_parsing": "expected true or false",
    "missing": "required, but missing",
}


def _fields_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The field names valid at ``loc`` (for "did you mean" on unknown keys)."""
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            break
        ann = fields[part].annotation
        nested = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return []
        current = nested[0]
    return list(getattr(current, "model_fields", {}))


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    seen = set()
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in (
            "str", "dict[str,any]", "list[any]", "float", "dict[str,float]", "int", "function-after")))]
        path = ".".join(str(p) for p in loc) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = _fields_at(RunConfig, loc[:-1])
            msg = f"unknown key.{did_you_mean(str(loc[-1]), parent)} Allowed here: {', '.join(parent)}."
        elif kind in _FRIENDLY:
            msg = _FRIENDLY[kind].format(**err.get("ctx", {}))
            if kind != "missing":
                msg += f", received {short_repr(err.get('input'))}"
        elif kind == "literal_error":
            msg = f"expected one of {err['ctx']['expected']}, received {short_repr(err.get('input'))}"
        else:
            msg = f"{err['msg'].replace('Value error, ', '')}, received {short_repr(err.get('input'))}"
        key = (path, kind if kind != "missing" else "")
        if path in {p for p, _ in seen} and kind not in ("extra_forbidden", "missing"):
            continue  # a union reports one failure per alternative: keep the first
        seen.add(key)
        lines.append(f"{path}: {msg}")
    return lines


def _semantic_errors(raw: Mapping) -> list[str]:
    """Names that the schema cannot check by type, read from the raw mapping so that they are
    reported together with any schema problems."""
    from .data.builtin import BUILTIN
    from .losses import resolve_loss
    from .metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS, _parse
    from .optim import _SCHED_ALIASES, OPTIMIZERS, SCHEDULERS

    def section(name):
        value = raw.get(name)
        return value if isinstance(value, Mapping) else {}

    errors = []
    if isinstance(raw.get("loss"), (str, Mapping)):
        try:
            resolve_loss(raw["loss"])
        except ConfigError as exc:
            errors.append(f"loss: {str(exc).removeprefix('loss: ')}")
    opt = section("optimizer").get("name", "adam")
    if isinstance(opt, str) and opt.lower() not in OPTIMIZERS:
        errors.append(f"optimizer.name: unknown optimizer {short_repr(opt)}.{did_you_mean(opt, OPTIMIZERS)} "
                      f"Expected one of: {', '.join(OPTIMIZERS)}.")
    sched = raw.get("scheduler")
    if sched is not None:
        name = sched if isinstance(sched, str) else (sched.get("name") if isinstance(sched, Mapping) else None)
        key = _SCHED_ALIASES.get(str(name).lower(), str(name).lower())
        if key not in SCHEDULERS:
            errors.append(f"scheduler: unknown scheduler {short_repr(name)}.{did_you_mean(key, SCHEDULERS)} "
                          f"Expected one of: {', '.join(SCHEDULERS)}.")
    known = CLASSIFICATION_METRICS + REGRESSION_METRICS
    metrics = raw.get("metrics") or []
    for i, m in enumerate(metrics if isinstance(metrics, list) else []):
        try:
            _, base, _ = _parse(m)
        except ConfigError as exc:
            errors.append(f"metrics[{i}]: {exc}")
            continue
        if base not in known:
            errors.append(f"metrics[{i}]: unknown metric {short_repr(base)}.{did_you_mean(base, known)} "
                          f"Expected one of: {', '.join(known)}.")
    data = section("data")
    val, test = data.get("val", 0.1), data.get("test", 0.2)
    if isinstance(val, (int, float)) and isinstance(test, (int, float)) and val + test >= 1:
        errors.append(f"data: val ({val}) + test ({test}) leave nothing to train on. Fix: make "
                      f"their sum < 1.")
    src = data.get("source")
    if isinstance(src, str):
        if not Path(src).suffix:
            if src.lower() not in BUILTIN:
                errors.append(f"data.source: unknown built-in data set {short_repr(src)}."
                              f"{did_you_mean(src, BUILTIN)} Expected one of: {', '.join(BUILTIN)}; "
                              f"or a .csv/.parquet/.npz file.")
        elif Path(src).suffix.lower() not in (".csv", ".parquet", ".npz"):
            errors.append(f"data.source: files must be .csv, .parquet or .npz; received {short_repr(src)}.")
        elif not Path(src).is_file():
            errors.append(f"data.source: file {src!r} does not exist.")
    return errors


def read_yaml_file(path: str | os.PathLike, where: str | None = None,
                   fix: str = "Fix: check the path.", *, allow_link: bool = True) -> Any:
    """A YAML file as data (through :func:`parse_yaml`), refusing folders, files over
    :data:`MAX_CONFIG_BYTES`, text that is not UTF-8 and (``allow_link=False``, for files
    inside a run directory) symbolic links, with a ConfigError naming the file."""
    path = Path(path)
    where = where or f"config file {str(path)!r}"
    if (not allow_link and path.is_symlink()) or not path.is_file():
        raise ConfigError(f"{where} is not a regular file{'' if allow_link else ' (a link)'}; "
                          f"expected a YAML config. {fix}")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where} is {size:,} bytes; a config is a few kilobytes (at most "
                          f"{MAX_CONFIG_BYTES:,} are read). {fix}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where} is not UTF-8 text (byte {exc.start}). {fix}") from None
    return parse_yaml(text, where)


def _parse_value(text: str) -> Any:
    try:
        return parse_yaml(text, "override")
    except ConfigError:
        return text


def apply_overrides(raw: dict, overrides: Sequence[str]) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw config mapping.

    >>> apply_overrides({"train": {"epochs": 10}}, ["train.epochs=3", "name=quick"])
    {'train': {'epochs': 3}, 'name': 'quick'}
    """
    out = dict(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. train.epochs=5.")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[:depth + 1])} is not a section.")
            node[part] = child = dict(child)
            node = child
        node[parts[-1]] = _parse_value(value)
    return out


def load_config(source: Union[str, os.PathLike, Mapping, RunConfig],
                overrides: Sequence[str] = ()) -> RunConfig:
    """Read and validate a run config (a YAML path, a mapping or a RunConfig).

    All problems are collected into one :class:`ConfigError`, one line each.

    >>> cfg = load_config({"model": {"zoo": "mlp"}, "data": {"source": "iris"},
    ...                    "loss": "cross_entropy"}, ["train.epochs=2"])
    >>> cfg.train.epochs, cfg.optimizer.name
    (2, 'adam')
    """
    where = "config"
    if isinstance(source, RunConfig):
        raw = config_to_dict(source)
    elif isinstance(source, Mapping):
        raw = dict(source)
    else:
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise ConfigError(f"config file {where!r} does not exist. Fix: check the path, or run "
                              f"`netwright init` to write a starter config.")
        raw = read_yaml_file(path) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {where!r}: expected a mapping at the top, received "
                              f"{type(raw).__name__}.")
    raw = apply_overrides(raw, overrides)
    problems: list[str] = []
    cfg = None
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        problems += _format_errors(exc)
    problems += [p for p in _semantic_errors(raw) if p not in problems]
    if problems:
        raise ConfigError(f"{where}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return cfg


def config_to_dict(cfg: RunConfig) -> dict:
    """The resolved config (every default filled in) as plain data, for ``config.yaml``."""
    return cfg.model_dump(mode="json")
