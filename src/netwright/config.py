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

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError,
                      field_validator)

from .dataconfig import (DataConfig, StrictModel, TokenizerConfig, Whole, is_bool,
                         positive_number, verbosity)
from .errors import ConfigError, did_you_mean, short_repr
from .yamlfiles import MAX_CONFIG_BYTES, MAX_YAML_DEPTH, parse_yaml, read_yaml_file

__all__ = ["RunConfig", "DataConfig", "TokenizerConfig", "TrainConfig", "FitOptions", "OptimizerConfig", "ExportConfig",
           "FinetuneConfig", "fit_options", "options_reference",
           "load_config", "apply_overrides", "config_to_dict", "parse_yaml", "read_yaml_file", "MAX_CONFIG_BYTES",
           "MAX_YAML_DEPTH"]

class OptimizerConfig(BaseModel):
    """``name`` and ``lr`` plus any keyword argument of the torch optimizer (momentum, betas ...)."""

    model_config = ConfigDict(extra="allow")
    name: str = "adam"
    lr: Annotated[float, BeforeValidator(positive_number)] = 1e-3
    weight_decay: float = Field(0.0, ge=0)
    decay_norm_and_bias: bool = True


class EarlyStoppingConfig(StrictModel):
    patience: Whole = Field(5, ge=1, description="epochs without improvement before stopping")
    monitor: Optional[str] = Field(None, description="logged value to watch (default: fit's monitor)")
    mode: Literal["auto", "min", "max"] = "auto"
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")
    restore_best: StrictBool = Field(True, description="end with the best epoch's weights")


class FinetuneConfig(StrictModel):
    """Fine-tuning: which parameters wait, until when, and at what learning rate."""

    freeze: Union[Literal["backbone"], list[str]] = Field(
        "backbone", description="'backbone': every parameter but the classifier head's; or a list "
                                "of module names (prefixes such as 'layer1', 'features.0')")
    unfreeze_at: Optional[Whole] = Field(
        None, ge=1, description="the epoch (1 = the first) from which the frozen parameters train "
                                "too; default: never")
    backbone_lr: float = Field(0.1, gt=0, description="the frozen parameters' learning rate once "
                                                      "they train, as a fraction of lr")


class TrainConfig(StrictModel):
    """The training options a config file holds (its ``train:`` section). Python's
    :class:`FitOptions` has every one of them, with the same defaults, plus those that take
    Python objects."""

    epochs: Whole = Field(10, ge=1, description="passes over the training data")
    batch_size: Whole = Field(32, ge=1, description="samples per training step")
    eval_batch_size: Optional[Whole] = Field(None, ge=1, description="samples per evaluation "
                                             "batch (default: max(batch_size, 256))")
    seed: Optional[Whole] = Field(0, description="seeds Python, NumPy and torch before anything "
                                  "random is made (None: netwright seeds nothing and draws the "
                                  "data order's seed from torch's generator, so torch.manual_seed "
                                  "before fit repeats a run)")
    device: str = Field("auto", description="'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', "
                        "'cuda:N' or 'mps'")
    precision: Literal["32", "bf16-mixed", "16-mixed"] = Field(
        "32", description="'32', 'bf16-mixed' (CPU or CUDA) or '16-mixed' (CUDA, with a gradient "
                          "scaler)")
    accumulate: Whole = Field(1, ge=1, description="batches whose gradients add up to one step")
    clip_grad: Optional[Union[float, dict[str, float]]] = Field(
        None, description="clip gradients: a max norm (1.0), {norm: 1.0, norm_type: 2} or "
                          "{value: 0.5}")
    early_stopping: Optional[EarlyStoppingConfig] = Field(
        None, description="stop when the monitor stops improving: a patience (5) or "
                          "{patience, monitor, mode, min_delta, restore_best}")
    monitor: Optional[str] = Field(None, description="the logged value that picks the best epoch "
                                   "(default: val_loss with val data, else train_loss)")
    restore_best: Optional[StrictBool] = Field(None, description="end with the best epoch's weights by "
                                         "the monitor (default: yes when there is validation data)")
    on_nonfinite: Literal["raise", "skip"] = Field(
        "raise", description="a NaN/Inf training loss: 'raise' stops with an error naming the "
                             "epoch and step (the run directory keeps the last good checkpoint); "
                             "'skip' drops such batches and counts them in the history")
    shuffle: StrictBool = Field(True, description="reshuffle the training data every epoch")
    drop_last: StrictBool = Field(False, description="drop a last, smaller training batch")
    num_workers: Whole = Field(0, ge=0, description="DataLoader worker processes (0: load in "
                               "this process)")
    pin_memory: Optional[StrictBool] = Field(None, description="pin loader memory (default: on when "
                                       "training on CUDA)")
    persistent_workers: StrictBool = Field(False, description="keep loader workers between epochs")
    checkpoint_every: Optional[Whole] = Field(None, ge=1, description="also write a resume bundle "
                                              "every this many batches (one is written every epoch)")
    compile: Union[StrictBool, Literal["default", "reduce-overhead", "max-autotune",
                                        "max-autotune-no-cudagraphs"]] = Field(
        False, description="torch.compile the model for training and evaluation: true, or a "
                           "mode ('reduce-overhead', 'max-autotune', ...); saved weights keep "
                           "the model's own keys")
    loggers: list[Literal["csv", "tensorboard"]] = Field(
        ["csv"], description="where each epoch's values go besides the "
        "terminal: 'csv' (metrics.csv, always kept in a run directory) and 'tensorboard' (event "
        "files in RUN_DIR/tensorboard: per-epoch values, per-step loss and lr, the graph)")
    channels_last: StrictBool = Field(False, description="convolution models: keep the model and "
                                      "image batches in channels-last memory format")
    finetune: Optional[FinetuneConfig] = Field(
        None, description="train a pretrained model's head first: {freeze: backbone, unfreeze_at: "
                          "3, backbone_lr: 0.1}")
    strategy: Literal["auto", "none", "ddp", "fsdp"] = Field(
        "auto", description="'auto': data-parallel (DDP) when started by torchrun or "
                            "`netwright train --nproc N`, else one process; 'ddp' requires "
                            "several processes; 'fsdp' shards parameters, gradients and optimizer "
                            "state among them (FSDP2); 'none' trains alone even under torchrun")

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, v):
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _patience_shortcut(cls, v):
        return {"patience": v} if isinstance(v, int) and not isinstance(v, bool) else v


def _callable_or_none(v: Any) -> Any:
    if v is not None and not callable(v):
        raise ValueError("expected a callable (step(ctx, x, y, *, scale, step) -> loss) or None")
    return v


class FitOptions(TrainConfig):
    """Every option of :func:`netwright.fit` and :class:`netwright.Trainer`, with its default:
    the one place they are defined. A config file's ``train:`` section is the
    :class:`TrainConfig` part; ``loss``, ``optimizer``, ``scheduler`` and ``metrics`` are its
    top-level sections."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, arbitrary_types_allowed=True)

    loss: Any = Field(description="a name ('cross_entropy', 'mse', 'bce', 'bce_logits', 'l1', "
                                  "'huber' ...), {name: ..., **options} or any callable(output, "
                                  "target)")
    optimizer: Any = Field("adam", description="a name ('adam', 'adamw', 'sgd', 'rmsprop', "
                           "'adagrad', 'lbfgs'), {name: ..., **options}, a torch.optim class or "
                           "an instance (used as is)")
    lr: Annotated[float, BeforeValidator(positive_number)] = Field(1e-3, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay")
    decay_norm_and_bias: StrictBool = Field(True, description="False exempts biases and norm weights "
                                      "from weight decay")
    scheduler: Any = Field(None, description="a name ('step', 'exponential', 'cosine', "
                           "'onecycle', 'reduce_on_plateau' ...), {name: ..., **options} or a "
                           "torch scheduler instance")
    metrics: Any = Field(None, description="names logged each epoch: 'accuracy', 'f1', "
                         "'precision', 'recall', 'auroc', 'mae', 'rmse', 'r2' ...")
    callbacks: Optional[list[Any]] = Field(None, description="objects with on_epoch_end(epoch, "
                                           "logs, model) and other hooks (netwright.Callback)")
    early_stopping: Any = Field(None, description="stop when the monitor stops improving: a "
                                "patience (5), {patience, monitor, mode, min_delta, restore_best} "
                                "or an EarlyStopping")
    step: Optional[Any] = Field(None, description="replaces the training step: step(ctx, x, y, "
                                "*, scale, step) returning the batch's loss, or a dict with "
                                "'loss' and other values to log (see docs/training.md)")
    run_dir: Optional[Union[str, os.PathLike]] = Field(None, description="write config, "
                                                       "metrics.csv, checkpoints and weights here")
    overwrite: StrictBool = Field(False, description="let run_dir be a folder that already holds files")
    resume: StrictBool = Field(False, description="continue the run in run_dir from its newest "
                         "checkpoint")
    force: StrictBool = Field(False, description="resume even though the options changed")
    verbose: Annotated[int, BeforeValidator(verbosity)] = Field(
        1, ge=0, description="0 (or False): silent, 1: a progress bar on a terminal, 2: one line "
                             "per epoch")
    target: Any = Field(None, description="the target column (DataFrame) or key (dict data)")
    task: Optional[Literal["binary", "multiclass", "multilabel", "regression"]] = Field(
        None, description="what the metrics score (default: inferred from the loss, the output "
                          "and the targets)")
    check: StrictBool = Field(True, description="the doctor's cheap checks on the first batch before "
                        "training")
    run_files: Optional[dict[str, str]] = Field(None, description="extra files written into "
                                                "run_dir once the checks pass (used by `run`)")

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _early(cls, v):
        if v is None or (hasattr(v, "on_epoch_end") and not isinstance(v, (Mapping, int))):
            return v  # an EarlyStopping (or compatible) object is used as is
        if hasattr(v, "__index__") and not is_bool(v):
            v = {"patience": int(v.__index__())}
        return EarlyStoppingConfig.model_validate(v)

    @field_validator("step")
    @classmethod
    def _step(cls, v):
        return _callable_or_none(v)

    @field_validator("callbacks", mode="before")
    @classmethod
    def _callbacks(cls, v):
        if v is not None and not isinstance(v, (list, tuple)):
            raise ValueError("expected a list of callbacks")
        return None if v is None else list(v)


class ExportConfig(StrictModel):
    formats: list[Literal["onnx", "torchscript", "pt2"]] = Field(default_factory=list)


class RunConfig(StrictModel):
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
    weights: Optional[str] = Field(None, description="a weights file (safetensors, or a torch "
                                   "state_dict such as torchvision's .pth) loaded into the model "
                                   "before training; a classifier head of another size is left "
                                   "as initialised, a grey model's first convolution sums the "
                                   "file's RGB filters")
    tune: Optional[dict[str, Any]] = Field(
        None, description="the hyperparameter search space for `netwright tune` (dotted config "
                          "paths to distributions, plus metric, direction, pruner, sampler, "
                          "seed); training ignores it")

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
    "bool_type": "expected true or false",
    "missing": "required, but missing",
}


def _fields_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The field names valid at ``loc`` (for "did you mean" on unknown keys). A field that
    :class:`FitOptions` widens to accept objects is looked up in the class it comes from."""
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            break
        nested = []
        for cls in getattr(current, "__mro__", (current,)):
            field = getattr(cls, "model_fields", {}).get(part)
            ann = field.annotation if field is not None else None
            nested += [a for a in getattr(ann, "__args__", (ann,))
                       if isinstance(a, type) and issubclass(a, BaseModel)]
            for arg in getattr(ann, "__args__", ()):  # Optional[Union[Model, ...]]
                nested += [a for a in getattr(arg, "__args__", ())
                           if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return []
        current = nested[0]
    return list(getattr(current, "model_fields", {}))


def _format_errors(exc: ValidationError, root: type[BaseModel] | None = None,
                   unknown: str = "unknown key") -> list[str]:
    root = root or RunConfig
    lines = []
    seen = set()
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in (
            "str", "dict[str,any]", "list[any]", "float", "dict[str,float]", "int", "function-after")))]
        path = ".".join(str(p) for p in loc) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = _fields_at(root, loc[:-1])
            msg = f"{unknown}.{did_you_mean(str(loc[-1]), parent)} Allowed here: {', '.join(parent)}."
        elif kind in _FRIENDLY:
            msg = _FRIENDLY[kind].format(**err.get("ctx", {}))
            if kind.startswith("greater_than") and isinstance(err.get("input"), int):
                msg = msg.replace("a number", "an integer")
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


def _name_errors(loss: Any, optimizer: Any, scheduler: Any, metrics: Any) -> list[str]:
    """Names that no type can check (loss, optimizer, scheduler, metrics), each problem a line;
    objects (a callable loss, an optimizer instance) are left to the code that uses them."""
    from .losses import resolve_loss
    from .metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS, parse_metric
    from .optim import OPTIMIZERS, SCHEDULERS, scheduler_key

    errors = []
    if isinstance(loss, (str, Mapping)):
        try:
            resolve_loss(loss)
        except ConfigError as exc:
            errors.append(f"loss: {str(exc).removeprefix('loss: ')}")
    opt = optimizer.get("name", "adam") if isinstance(optimizer, Mapping) else optimizer
    if isinstance(opt, str) and opt.lower() not in OPTIMIZERS:
        where = "optimizer.name" if isinstance(optimizer, Mapping) else "optimizer"
        errors.append(f"{where}: unknown optimizer {short_repr(opt)}.{did_you_mean(opt, OPTIMIZERS)} "
                      f"Expected one of: {', '.join(OPTIMIZERS)}.")
    if isinstance(scheduler, (str, Mapping)):
        name = scheduler if isinstance(scheduler, str) else scheduler.get("name")
        key = scheduler_key(name)
        if key not in SCHEDULERS:
            errors.append(f"scheduler: unknown scheduler {short_repr(name)}.{did_you_mean(key, SCHEDULERS)} "
                          f"Expected one of: {', '.join(SCHEDULERS)}.")
    known = CLASSIFICATION_METRICS + REGRESSION_METRICS
    metrics = [metrics] if isinstance(metrics, (str, Mapping)) else metrics
    for i, m in enumerate(metrics if isinstance(metrics, (list, tuple)) else []):
        if not isinstance(m, (str, Mapping)):
            continue  # a metric object is the user's own
        try:
            _, base, _ = parse_metric(m)
        except ConfigError as exc:
            errors.append(f"metrics[{i}]: {exc}")
            continue
        if base not in known:
            errors.append(f"metrics[{i}]: unknown metric {short_repr(base)}.{did_you_mean(base, known)} "
                          f"Expected one of: {', '.join(known)}.")
    return errors


def _semantic_errors(raw: Mapping) -> list[str]:
    """Names that the schema cannot check by type, read from the raw mapping so that they are
    reported together with any schema problems."""
    from .data.builtin import BUILTIN

    def section(name):
        value = raw.get(name)
        return value if isinstance(value, Mapping) else {}

    errors = _name_errors(raw.get("loss"), section("optimizer"), raw.get("scheduler"),
                          raw.get("metrics") or [])
    data = section("data")
    val, test = data.get("val", 0.1), data.get("test", 0.2)
    if isinstance(val, (int, float)) and isinstance(test, (int, float)) and val + test >= 1:
        errors.append(f"data: val ({val}) + test ({test}) leave nothing to train on. Fix: make "
                      f"their sum < 1.")
    augment = data.get("augment")
    if isinstance(augment, list) and augment:
        from .data.augment import build_augment
        from .data.sound_augment import SOUND_AUGMENTS, build_sound_augment

        names = [next(iter(a)) if isinstance(a, Mapping) and len(a) == 1 else a for a in augment]
        try:  # names and arguments now; sizes and channels once the images are known
            sounds = data.get("audio") is not None or str(data.get("source")).strip().lower() \
                == "spoken_digits" or any(isinstance(n, str) and n in SOUND_AUGMENTS for n in names)
            if sounds:
                build_sound_augment(augment, 16000, load=False)  # sounds: noise files later
            else:
                build_augment(augment)
        except ConfigError as exc:
            errors.append(str(exc))
    src = data.get("source")
    if data.get("streaming") is True:
        src = None  # a glob, folder or file of shards: the stream checks it when it opens them
    if isinstance(src, str) and Path(src).is_dir() and src.strip().lower() not in BUILTIN:
        pass  # a folder of images or texts in class folders: read and checked by data/
    elif isinstance(src, str):
        if not Path(src).suffix:
            if src.lower() not in BUILTIN:
                errors.append(f"data.source: unknown built-in data set {short_repr(src)}."
                              f"{did_you_mean(src, BUILTIN)} Expected one of: {', '.join(BUILTIN)}; "
                              f"a .csv/.parquet/.npz/.jsonl file; or a folder of class folders "
                              f"(no folder {src!r} here).")
        elif Path(src).suffix.lower() not in (".csv", ".parquet", ".npz", ".jsonl", ".json"):
            errors.append(f"data.source: files must be .csv, .parquet, .npz or .jsonl (texts); "
                          f"received {short_repr(src)}.")
        elif not Path(src).is_file():
            errors.append(f"data.source: file {src!r} does not exist.")
    return errors


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


def fit_options(options: Mapping[str, Any] | FitOptions | None = None, /,
                where: str = "fit", **kwargs: Any) -> FitOptions:
    """Validate the options of a ``fit`` call (``options``, updated by ``kwargs``) into a
    :class:`FitOptions`: every problem at once in one :class:`ConfigError`, an unknown option
    with a "did you mean".

    >>> fit_options(loss="mse", epochs=3).epochs
    3
    >>> fit_options(loss="mse", epoch=3)
    Traceback (most recent call last):
    netwright.errors.ConfigError: fit: 1 problem(s):
      epoch: unknown option. Did you mean 'epochs'? See help(netwright.fit) for every option.
    """
    raw = dict(options) if options is not None else {}
    raw.update(kwargs)
    problems: list[str] = []
    result = None
    try:
        result = FitOptions.model_validate(raw)
    except ValidationError as exc:
        problems += [_short_unknown(line) for line in _format_errors(exc, FitOptions, "unknown option")]
    problems += [p for p in _name_errors(raw.get("loss"), raw.get("optimizer"), raw.get("scheduler"),
                                         raw.get("metrics")) if p not in problems]
    if problems:
        raise ConfigError(f"{where}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return result


def _short_unknown(line: str) -> str:
    """fit has ~40 options: an unknown one gets the did-you-mean and a pointer, not the list."""
    head, sep, _ = line.partition(" Allowed here: ")
    nested = "." in line.partition(":")[0]
    return f"{head} See help(netwright.fit) for every option." if sep and not nested else line


def options_reference(schema: type[BaseModel] | None = None) -> str:
    """Every option of ``fit`` (or of another schema: ``TrainConfig`` for a config's ``train:``
    section) as a Markdown table (name, default, meaning), generated from the schema so that
    ``fit``'s docstring, docs/python-api.md and docs/config.md cannot drift."""
    schema = schema or FitOptions
    rows = [f"| {'option' if schema is FitOptions else 'key'} | default | meaning |", "|---|---|---|"]
    fields = schema.model_fields
    first = [n for n in ("loss", "optimizer", "lr", "weight_decay", "decay_norm_and_bias",
                         "scheduler", "epochs", "batch_size", "metrics", "callbacks", "step",
                         "run_dir") if n in fields]
    for name in [*first, *(n for n in fields if n not in first)]:
        field = fields[name]
        if field.is_required():
            default = "(required)"
        elif field.default_factory is not None:
            default = repr(field.default_factory())
        else:
            default = repr(field.default)
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | `{default}` | {meaning} |")
    return "\n".join(rows)


def config_to_dict(cfg: RunConfig) -> dict:
    """The resolved config (every default filled in) as plain data, for ``config.yaml``."""
    return cfg.model_dump(mode="json")
