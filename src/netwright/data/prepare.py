"""Data described in a run config → train/val/test arrays, ready for ``fit``.

Reads a built-in data set or a CSV/Parquet/.npz file, cuts time-series windows, encodes class
labels, splits (stratified, random or in time order, seeded) and computes the standardisation
statistics on the training split only. The statistics are not applied here: the run puts them
into the model (``netwright.models.scaling.Scaled``) so that the saved model maps raw inputs to
outputs in the data's own units and prediction can never forget the transform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DataConfig
from ..errors import ConfigError, DataError
from .builtin import BUILTIN, load_builtin, load_series

__all__ = ["Prepared", "prepare_data", "class_splits", "read_table", "features_from_file", "read_npy"]


@dataclass
class Prepared:
    """Split arrays and what the model needs to know about them."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray] | None
    test: tuple[np.ndarray, np.ndarray] | None
    task: str  # multiclass, binary, regression
    input_shape: tuple[int, ...]
    classes: list | None = None  # original class labels, index = class id
    feature_names: list[str] | None = None
    x_stats: tuple[np.ndarray, np.ndarray] | None = None  # (mean, std), shaped to broadcast
    y_stats: tuple[np.ndarray, np.ndarray] | None = None
    sizes: dict = field(default_factory=dict)
    target_width: int | None = None  # set for streams (their targets are not arrays here)
    notes: list[str] = field(default_factory=list)  # stated conversions, for the run's log
    skipped: list[tuple[str, str]] = field(default_factory=list)  # files left out, and why
    workers: int | None = None  # loader processes this data wants when the config is silent
    images: dict | None = None  # image data: {"size": [h, w], "channels": c, "range": [0, 1]}
    audio: dict | None = None  # sound data: {"sample_rate", "duration", "num_samples", "levels"}
    text: dict | None = None  # text data: tokenizer options, vocabulary, truncations, unknowns
    tokenizer: Any = None  # text data: the tokenizer trained on the training split

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        part = {"train": self.train, "val": self.val, "test": self.test}.get(name)
        if part is None:
            raise ConfigError(
                f"split {name!r}: this run has no {name} split (data.{name} is 0). Fix: use "
                f"{', '.join(k for k in ('train', 'val', 'test') if getattr(self, k) is not None)}."
            )
        return part


def read_table(path: Path) -> Any:
    """A CSV or Parquet file as a pandas DataFrame, with clear errors."""
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas comes with the datasets extra
        raise ConfigError("data: reading files needs pandas. Fix: pip install 'netwright[datasets]'.") from exc
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except ImportError as exc:
        raise ConfigError(f"data: reading {path.name} needs pyarrow. Fix: pip install 'netwright[parquet]'.") from exc
    except Exception as exc:  # noqa: BLE001 - any parser failure becomes a DataError naming the file
        raise DataError(f"data file {str(path)!r} could not be read: {type(exc).__name__}: {exc}") from exc


def _names(names: list[str], limit: int = 10) -> str:
    """A list of column or array names for a message: the first few and how many in all."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{f', ... ({len(names):,} in all)' if len(names) > limit else ''}]"


def _numeric(df: Any, columns: list[str], path: Path) -> np.ndarray:
    # Tables can be very wide (200,000 columns): look dtypes up once in a dict and select by
    # position; a per-column df[c] or a list membership test would take minutes.
    kinds = {str(c): dt.kind for c, dt in zip(df.columns, df.dtypes)}
    bad = [c for c in columns if kinds[c] not in "biuf"]
    if bad:
        raise DataError(
            f"data file {str(path)!r}: feature columns must be numeric; {_names(bad)} are not "
            f"(dtypes {[str(df[c].dtype) for c in bad[:10]]}). Fix: encode them as numbers, or "
            f"leave them out with data.features; if {bad[0]!r} holds texts, set data.text: "
            f"{bad[0]} (a tokenizer turns them into token ids for a text model)."
        )
    if df.columns.is_unique and all(k in "biuf" for k in kinds.values()):
        positions = df.columns.get_indexer(columns)
        whole = df.to_numpy(dtype=np.float32)
        if len(positions) == whole.shape[1] and np.array_equal(positions, np.arange(len(positions))):
            return whole
        return whole[:, positions]
    return df[columns].to_numpy(dtype=np.float32)


def _npz_array(arrays: Any, key: str, path: Path) -> np.ndarray:
    """One array of an .npz file; object arrays (pickles) and damaged members are DataErrors."""
    try:
        return arrays[key]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise DataError(f"data file {str(path)!r}: array {key!r} cannot be read: {exc}") from None
        raise DataError(
            f"data file {str(path)!r}: array {key!r} holds Python objects (dtype=object), not "
            f"numbers. Reading it would unpickle it, which can run code from the file, so "
            f"netwright reads only numeric (and string) arrays. Fix: save numeric arrays, e.g. "
            f"np.savez(path, X=X.astype('float32'), y=y), or encode the objects as numbers."
        ) from None
    except Exception as exc:  # noqa: BLE001 - a damaged zip member: named, not raw
        raise DataError(f"data file {str(path)!r}: array {key!r} cannot be read "
                        f"({type(exc).__name__}: {exc}); the file is damaged. Fix: save it "
                        f"again.") from None


def read_npy(path: Path, what: str = "input file") -> np.ndarray:
    """A numeric .npy array; an object array (a pickle) or an unreadable file is a DataError
    naming the file and the fix.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.npy"; np.save(p, np.array([None, 1], dtype=object))
    >>> try:
    ...     read_npy(p)
    ... except DataError as exc:
    ...     print("dtype=object" in str(exc))
    True
    """
    try:
        X = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(
                f"{what} {str(path)!r} holds Python objects (dtype=object), not numbers. Reading "
                f"it would unpickle it, which can run code from the file, so netwright reads only "
                f"numeric arrays. Fix: save a numeric array, e.g. np.save(path, X.astype('float32'))."
            ) from None
        raise DataError(f"{what} {str(path)!r} is not a readable .npy array: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is named, not raw
        raise DataError(f"{what} {str(path)!r} is not a readable .npy array: "
                        f"{type(exc).__name__}: {exc}") from None
    if not isinstance(X, np.ndarray) or X.dtype.kind not in "biuf":
        raise DataError(f"{what} {str(path)!r}: expected a numeric array; it holds "
                        f"{getattr(X, 'dtype', type(X).__name__)}. Fix: save the features as "
                        f"numbers.")
    return X.astype(np.float32)


def features_from_file(path: Path, cfg: DataConfig, *, need_target: bool) -> tuple[np.ndarray, Any, list[str] | None]:
    """(features, target or None, feature names) from a CSV/Parquet/.npz file."""
    if path.suffix.lower() == ".npz":
        try:
            arrays = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"data file {str(path)!r} is not a readable .npz file: {exc}") from exc
        with arrays:
            keys = list(arrays.files)
            xkey = (cfg.features or ["X"])[0] if cfg.features is None or len(cfg.features) == 1 else None
            if xkey is None:
                raise ConfigError("data.features: for .npz files give one array name, e.g. [X].")
            ykey = cfg.target or "y"
            if xkey not in keys:
                raise DataError(f"data file {str(path)!r} has no array {xkey!r}; it holds "
                                f"{_names(keys)}. Fix: set data.features: [<name>].")
            if need_target and ykey not in keys:
                raise DataError(f"data file {str(path)!r} has no target array {ykey!r}; it holds "
                                f"{_names(keys)}. Fix: set data.target.")
            X = _npz_array(arrays, xkey, path)
            y = _npz_array(arrays, ykey, path) if ykey in keys else None
        if X.dtype.kind not in "biuf":
            raise DataError(f"data file {str(path)!r}: array {xkey!r} has dtype {X.dtype}; "
                            f"features must be numbers. Fix: save it as a numeric array.")
        return X.astype(np.float32), y, None
    df = read_table(path)
    columns = [str(c) for c in df.columns]
    df.columns = columns
    present = set(columns)
    targets = [cfg.target] if isinstance(cfg.target, str) else list(cfg.target or [])
    if need_target and not targets:
        raise ConfigError(f"data.target: required for {path.name}; its columns are {_names(columns)}.")
    missing = [t for t in targets if t not in present]
    if missing and need_target:
        raise DataError(f"data file {str(path)!r} has no target column {missing[0]!r}; its columns "
                        f"are {_names(columns)}. Fix: set data.target to one of them.")
    target_set = set(targets)
    feats = cfg.features or [c for c in columns if c not in target_set]
    absent = [c for c in feats if c not in present]
    if absent:
        raise DataError(f"data file {str(path)!r} has no column(s) {_names(absent)}; its columns "
                        f"are {_names(columns)}. Fix: correct data.features.")
    X = _numeric(df, feats, path)
    y = None
    if targets and not missing:
        y = df[targets[0]].to_numpy() if len(targets) == 1 else df[targets].to_numpy()
    return X, y, feats


def _windows(series: np.ndarray, window: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    series = np.asarray(series, dtype=np.float32).reshape(-1)
    if len(series) <= window + 1:
        raise DataError(f"{what}: {len(series)} values cannot make windows of {window}. Fix: a smaller data.window.")
    idx = np.arange(window)[None, :] + np.arange(len(series) - window)[:, None]
    return series[idx][..., None], series[window:][:, None]  # (N, window, 1), (N, 1)


def _encode_classes(y: np.ndarray, task: str) -> tuple[np.ndarray, list | None]:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"data: class targets must be one column; received shape {y.shape}.")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise DataError("data: the target column has missing (NaN) values. Fix: drop those rows.")
    classes, codes = np.unique(y, return_inverse=True)
    if task == "binary" and len(classes) != 2:
        raise DataError(f"data: a binary loss needs exactly 2 classes in the target; found "
                        f"{len(classes)}: {classes[:10].tolist()}. Fix: use cross_entropy for several classes.")
    labels = classes.tolist()
    identity = y.dtype.kind in "iu" and labels == list(range(len(labels)))
    return codes.astype(np.int64), (None if identity else labels)


def split_indices(n: int, labels: np.ndarray | None, frac: float, mode: str, seed: int,
                   what: str) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) positions into an array of length n."""
    if frac == 0:
        return np.arange(n), np.arange(0)
    k = int(round(n * frac))
    if k == 0 or k >= n:
        raise DataError(f"data.{what}={frac}: {n} samples cannot be split like that. Fix: another fraction.")
    if mode == "ordered":  # time order: hold out the most recent part
        return np.arange(n - k), np.arange(n - k, n)
    if mode == "stratified" and labels is not None:
        import torch

        from .splits import stratified_indices

        keep, held = stratified_indices(torch.as_tensor(labels), frac, seed)
        return np.sort(keep.numpy()), np.sort(held.numpy())
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def class_splits(labels: np.ndarray, cfg: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) positions of class-labelled files or texts by the config's fractions:
    stratified by class (seeded), or ``data.split: random`` / ``ordered``."""
    mode = {"random": "random", "ordered": "ordered"}.get(cfg.split, "stratified")
    rest, test_idx = split_indices(len(labels), labels, cfg.test, mode, cfg.seed, "test")
    keep, val_local = split_indices(len(rest), labels[rest],
                                     cfg.val / (1 - cfg.test) if cfg.test else cfg.val,
                                     mode, cfg.seed + 1, "val")
    return rest[keep], rest[val_local], test_idx


# Whole-number targets with more distinct values than this are quantities (a regression), not
# class labels: diabetes' 214 distinct disease scores, counts, years.
MAX_CLASSES_GUESS = 30


def targets_kind(y: Any) -> tuple[str, str] | None:
    """``("classes" | "values", description)`` of a single target column, or None when it
    cannot be told (several columns, missing values).

    >>> targets_kind(np.array([0, 1, 2, 1]))
    ('classes', '3 distinct whole-number targets')
    >>> targets_kind(np.array([0.5, 1.25, 3.0]))
    ('values', '3 distinct targets that are not whole numbers')
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) == 0:
        return None
    if y.dtype.kind in "USOb":
        return "classes", f"{len(np.unique(y.astype(str)))} distinct labels"
    if y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not np.all(np.isfinite(y))):
        return None
    distinct = len(np.unique(y))
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        return "values", f"{distinct} distinct targets that are not whole numbers"
    what = f"{distinct} distinct whole-number targets"
    return ("classes", what) if distinct <= MAX_CLASSES_GUESS else ("values", what)


def check_task(y: Any, loss_task: str, cfg: DataConfig, loss_name: str | None) -> None:
    """The loss's task must agree with what the targets are: a classification loss on
    quantities makes one class per distinct value, a regression loss on class labels fits
    numbers to names. Raises a LossTargetError with the fix, before anything is trained."""
    from ..errors import LossTargetError

    if loss_task == "custom":
        return
    wants = "regression" if loss_task == "regression" else "classification"
    if cfg.task is not None:
        if cfg.task != wants:
            raise LossTargetError(
                f"data.task is {cfg.task!r} but loss {loss_name or ''!r} is a {wants} loss. Fix: "
                f"{'loss: mse' if cfg.task == 'regression' else 'loss: cross_entropy'}, or "
                f"data.task: {wants}."
            )
        return  # the user has said what the targets are
    kind = targets_kind(y)
    if kind is None:
        return
    found, what = kind
    source = f"data {cfg.source!r}"
    if found == "values" and wants == "classification":
        raise LossTargetError(
            f"{source} holds {what}: a regression. Loss {loss_name or 'the loss'!r} is a "
            f"classification loss and would make one class per distinct value (each seen a few "
            f"times, never predicted from its neighbours). Fix: loss: mse (or mae, huber); or, if "
            f"these really are class labels, set data.task: classification."
        )
    if found == "classes" and wants == "regression" and np.asarray(y).dtype.kind in "iuf":
        raise LossTargetError(
            f"{source} holds {what}: class labels. Loss {loss_name or 'the loss'!r} is a "
            f"regression loss and would fit one number to the labels, as if one class were 'more' "
            f"than another. Fix: loss: cross_entropy (bce_with_logits for two classes); or, if "
            f"these are quantities, set data.task: regression."
        )


def prepare_data(cfg: DataConfig, loss_task: str, loss_name: str | None = None, *,
                 tokenizer: Any = None) -> Prepared:
    """Load, window, encode, split and measure the data of a run config.

    ``loss_task`` is what the loss implies (``LossInfo.task``): multiclass, binary, regression,
    or custom (then integer targets mean classes); it must agree with the targets (see
    :func:`check_task`). ``loss_name`` is for messages. ``tokenizer``: texts only, a finished
    run's own tokenizer (else one is trained on the training split).
    """
    if cfg.streaming:
        from .streaming import prepare_stream

        return prepare_stream(cfg, loss_task, loss_name)
    from .audio import is_audio_source, prepare_audio
    from .images import is_image_source, prepare_images
    from .texts import is_text_source, prepare_texts

    if is_audio_source(cfg):
        return prepare_audio(cfg, loss_task, loss_name)
    if is_text_source(cfg):
        return prepare_texts(cfg, loss_task, loss_name, tokenizer)
    if is_image_source(cfg):
        return prepare_images(cfg, loss_task, loss_name)
    image_only = sorted(k for k in ("image_size", "channels", "augment", "mean", "std",
                                    "tokenizer", "sample_rate", "duration", "group")
                        if getattr(cfg, k) is not None)
    if image_only or cfg.cache != "none":
        what = ("texts (a folder of class folders of .txt files, or a table with data.text)"
                if image_only[:1] == ["tokenizer"] else
                "sounds (a folder of class folders of sound files, or a table with data.audio)"
                if image_only[:1] and image_only[0] in ("sample_rate", "duration", "group") else
                "images (a folder of class folders, or a table with data.image)" if image_only else
                "images or sounds (a folder of class folders, or a table with data.image or "
                "data.audio)")
        raise ConfigError(f"data.{(image_only or ['cache'])[0]}: only for {what}; "
                          f"{cfg.source!r} is not one.")
    source = cfg.source
    names = None
    path = Path(source)
    key = source.strip().lower()
    is_series = cfg.window is not None
    if not path.suffix:
        info = BUILTIN.get(key)
        if info is None:
            raise ConfigError(f"data.source: unknown built-in data set {source!r}.")
        if info.kind == "series":
            X, y = _windows(load_series(key), cfg.window or 12, f"data set {key!r}")
            is_series = True
        else:
            if cfg.window:
                raise ConfigError(f"data.window: {key!r} is not a time series (only sunspots is).")
            X, y = load_builtin(key)
    else:
        X, y, names = features_from_file(path, cfg, need_target=not cfg.window)
        if cfg.window:
            series = y if y is not None else X[:, 0]
            X, y = _windows(np.asarray(series, dtype=np.float32), cfg.window, f"data file {path.name}")
    check_task(y, loss_task, cfg, loss_name)
    task = loss_task if loss_task != "custom" else (
        "multiclass" if np.asarray(y).dtype.kind in "iuUSOb" else "regression")
    classes = None
    if task in ("multiclass", "binary"):
        y, classes = _encode_classes(y, task)
        if task == "binary":
            y = y.astype(np.float32)[:, None]
    else:
        y = np.asarray(y)
        if y.dtype.kind not in "iuf":
            raise DataError(f"data: a regression target must be numeric; received dtype {y.dtype}. "
                            f"Fix: use a classification loss such as cross_entropy.")
        y = y.astype(np.float32)
        if y.ndim == 1:
            y = y[:, None]
    X = np.asarray(X, dtype=np.float32)
    if not np.all(np.isfinite(X)):
        rows = np.nonzero(~np.isfinite(X.reshape(len(X), -1)).all(axis=1))[0]
        raise DataError(f"data: the features have {len(rows)} row(s) with NaN/Inf values, the first "
                        f"at row {int(rows[0])}. Fix: drop or fill them.")
    if cfg.shape:
        per = int(np.prod(X.shape[1:]))
        if int(np.prod(cfg.shape)) != per:
            raise ConfigError(f"data.shape: {cfg.shape} holds {int(np.prod(cfg.shape))} values but each "
                              f"sample has {per} features. Fix: a shape whose sizes multiply to {per}.")
        X = X.reshape(len(X), *cfg.shape)
    mode = cfg.split
    if mode == "auto":
        mode = "ordered" if is_series else ("stratified" if task == "multiclass" or task == "binary" else "random")
    labels = (y.reshape(-1).astype(np.int64) if task in ("multiclass", "binary") else None)
    rest, test_idx = split_indices(len(X), labels, cfg.test, mode, cfg.seed, "test")
    sub_labels = labels[rest] if labels is not None else None
    keep, val_local = split_indices(len(rest), sub_labels, cfg.val / (1 - cfg.test) if cfg.test else cfg.val,
                                     mode, cfg.seed + 1, "val")
    train_idx, val_idx = rest[keep], rest[val_local]
    Xtr = X[train_idx]
    x_stats = None
    if cfg.standardize != "none":
        if cfg.standardize == "global":
            mean, std = np.array(Xtr.mean(), dtype=np.float32), np.array(Xtr.std(), dtype=np.float32)
        else:
            mean, std = Xtr.mean(axis=0), Xtr.std(axis=0)
        std = np.where(std > 1e-8, std, 1.0).astype(np.float32)  # constant features stay as they are
        x_stats = (mean.astype(np.float32), std)
    y_stats = None
    scale_y = cfg.standardize_target if cfg.standardize_target is not None else task == "regression"
    if scale_y:
        if task != "regression":
            raise ConfigError("data.standardize_target: only regression targets can be standardised.")
        ytr = y[train_idx]
        std = ytr.std(axis=0)
        y_stats = (ytr.mean(axis=0).astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32))
    part = lambda idx: (X[idx], y[idx]) if len(idx) else None  # noqa: E731
    return Prepared(
        train=(Xtr, y[train_idx]), val=part(val_idx), test=part(test_idx), task=task,
        input_shape=tuple(X.shape[1:]), classes=classes, feature_names=names,
        x_stats=x_stats, y_stats=y_stats,
        sizes={"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)},
    )
