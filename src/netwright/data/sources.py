"""Turn what a user passes as data into one of three sources.

- :class:`InMemory`: features and targets as tensors (from numpy arrays, tensors or a pandas
  DataFrame). Batches are cut by shuffled index slicing: no per-item ``__getitem__`` or collate.
- :class:`DatasetSource`: a ``torch.utils.data.Dataset``, batched by a ``DataLoader`` (workers,
  pinned memory).
- :class:`LoaderSource`: a ``DataLoader`` the user built, used as is.

Features may be one tensor, a tuple of tensors (the model is called as ``model(*x)``) or a dict
of tensors (``model(**x)``). The user's arrays are never written to: conversions copy only when
the dtype must change (float64 → float32, the dtype of torch's default parameters).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError, describe

__all__ = ["InMemory", "DatasetSource", "LoaderSource", "Source", "to_source", "to_tensor",
           "Features", "map_features", "first_len"]

Features = Union[torch.Tensor, tuple, dict]


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns")


def _is_series(obj: Any) -> bool:
    return type(obj).__name__ == "Series" and hasattr(obj, "to_numpy")


def to_tensor(value: Any, *, arg: str) -> torch.Tensor:
    """One array-like → tensor; float64 becomes float32, bool becomes float32, ints int64."""
    if isinstance(value, torch.Tensor):
        t = value
    else:
        if _is_series(value) or _is_dataframe(value):
            value = value.to_numpy()
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{arg}: expected a numeric array or tensor, received {describe(value)} ({exc})."
            ) from exc
        if arr.dtype == object or arr.dtype.kind in "USV":
            raise DataError(
                f"{arg}: expected numbers, received an array of dtype {arr.dtype} "
                f"(strings or mixed objects). Fix: encode them as numbers first."
            )
        if arr.dtype.kind == "i" or arr.dtype.kind == "u":
            arr = arr.astype(np.int64, copy=False)
        arr = np.ascontiguousarray(arr)
        if not arr.flags.writeable:
            arr = arr.copy()  # torch warns on read-only arrays (pandas returns some)
        t = torch.from_numpy(arr)
    if t.dtype == torch.float64:
        t = t.to(torch.float32)
    elif t.dtype == torch.bool:
        t = t.to(torch.float32)
    elif t.dtype in (torch.int8, torch.int16, torch.int32, torch.uint8):
        t = t.to(torch.int64)
    if t.ndim == 0:
        raise DataError(f"{arg}: expected one row per sample, received a scalar {t.item()!r}.")
    return t


def map_features(x: Features, fn) -> Features:
    """Apply ``fn`` to every tensor of a feature structure (tensor, tuple or dict)."""
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, Mapping):
        return {k: map_features(v, fn) for k, v in x.items()}
    return tuple(map_features(v, fn) for v in x)


def first_len(x: Features) -> int:
    if isinstance(x, torch.Tensor):
        return x.shape[0]
    if isinstance(x, Mapping):
        return first_len(next(iter(x.values())))
    return first_len(x[0])


def _features(value: Any, arg: str) -> Features:
    if isinstance(value, Mapping):
        if not value:
            raise DataError(f"{arg}: received an empty dict of inputs.")
        return {str(k): to_tensor(v, arg=f"{arg}['{k}']") for k, v in value.items()}
    if isinstance(value, tuple) and len(value) > 1 and all(
        isinstance(v, (torch.Tensor, np.ndarray)) for v in value
    ):
        # A tuple of arrays is several model inputs (model(*x)); a list is one array of rows.
        return tuple(to_tensor(v, arg=f"{arg}[{i}]") for i, v in enumerate(value))
    return to_tensor(value, arg=arg)


@dataclass
class InMemory:
    """Features and targets held as tensors; ``y`` is None for prediction inputs."""

    x: Features
    y: torch.Tensor | None

    def __post_init__(self) -> None:
        n = first_len(self.x)
        lengths = {}
        map_features(self.x, lambda t: lengths.setdefault(tuple(t.shape), t.shape[0]))
        if any(v != n for v in lengths.values()):
            raise DataError(
                f"inputs: every input tensor needs the same number of rows; received shapes "
                f"{sorted(lengths)}."
            )
        if self.y is not None and self.y.shape[0] != n:
            raise DataError(
                f"targets: expected one target per sample ({n} rows, like the features); "
                f"received {self.y.shape[0]} targets of shape {tuple(self.y.shape)}. Fix: pass "
                f"X and y of the same length."
            )
        if n == 0:
            raise DataError("data: received 0 samples. Fix: pass at least one row.")

    def __len__(self) -> int:
        return first_len(self.x)

    def subset(self, index: torch.Tensor) -> InMemory:
        y = self.y[index] if self.y is not None else None
        return InMemory(map_features(self.x, lambda t: t[index]), y)

    def to(self, device: torch.device) -> InMemory:
        y = self.y.to(device) if self.y is not None else None
        return InMemory(map_features(self.x, lambda t: t.to(device)), y)

    @property
    def nbytes(self) -> int:
        total = [0]
        map_features(self.x, lambda t: total.__setitem__(0, total[0] + t.numel() * t.element_size()))
        if self.y is not None:
            total[0] += self.y.numel() * self.y.element_size()
        return total[0]


@dataclass
class DatasetSource:
    dataset: Dataset


@dataclass
class LoaderSource:
    loader: DataLoader


Source = Union[InMemory, DatasetSource, LoaderSource]


def _from_dataframe(df: Any, target: Any, arg: str) -> InMemory:
    columns = [str(c) for c in df.columns]
    targets = list(target) if isinstance(target, (list, tuple)) else [target]
    missing = [t for t in targets if t not in df.columns]
    if missing:
        raise DataError(
            f"{arg}: target column {missing[0]!r} is not in the DataFrame; its columns are "
            f"{columns}. Fix: pass target= one of those names."
        )
    features = df.drop(columns=targets)
    non_numeric = [str(c) for c, dt in features.dtypes.items() if dt.kind not in "biuf"]
    if non_numeric:
        raise DataError(
            f"{arg}: feature columns must be numeric; {non_numeric} are not (dtypes "
            f"{[str(features[c].dtype) for c in non_numeric]}). Fix: encode them (e.g. "
            f"pandas.get_dummies) or drop them."
        )
    y = df[targets[0]] if not isinstance(target, (list, tuple)) else df[targets]
    return InMemory(to_tensor(features.to_numpy(), arg=f"{arg} features"),
                    to_tensor(y.to_numpy(), arg=f"{arg} target {target!r}"))


def to_source(data: Any, *, arg: str = "train", target: Any = None, targets: bool = True) -> Source:
    """Classify and convert user data. ``targets=False`` accepts bare features (prediction).

    Accepted: ``(X, y)``; ``X`` alone when ``targets`` is False; ``(DataFrame, "target")`` or a
    DataFrame with ``target=``; a ``Dataset``; a ``DataLoader``.

    >>> src = to_source((np.zeros((4, 2)), np.array([0, 1, 0, 1])))
    >>> src.x.dtype, src.y.dtype
    (torch.float32, torch.int64)
    """
    if isinstance(data, DataLoader):
        return LoaderSource(data)
    if isinstance(data, Dataset) and not isinstance(data, torch.Tensor):
        return DatasetSource(data)
    if _is_dataframe(data):
        if target is None:
            if targets:
                raise DataError(
                    f"{arg}: a DataFrame needs the name of its target column; received none. "
                    f"Fix: pass ({arg}_df, 'label') or target='label'. Columns: "
                    f"{[str(c) for c in data.columns]}."
                )
            return InMemory(_features(data.to_numpy(), arg), None)
        return _from_dataframe(data, target, arg)
    if isinstance(data, (tuple, list)) and len(data) == 2 and _is_dataframe(data[0]) and isinstance(
        data[1], (str, list, tuple)
    ):
        return _from_dataframe(data[0], data[1], arg)
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (int, float)):
        x, y = data
        if y is None:
            return InMemory(_features(x, f"{arg}[0] (features)"), None)
        if not isinstance(y, (torch.Tensor, np.ndarray, list)) and not _is_series(y):
            raise DataError(
                f"{arg}: expected (X, y) with y an array, tensor or list; received y as "
                f"{describe(y)}."
            )
        return InMemory(_features(x, f"{arg}[0] (features)"), to_tensor(y, arg=f"{arg}[1] (targets)"))
    if not targets and isinstance(data, (torch.Tensor, np.ndarray, Mapping, list, tuple)):
        return InMemory(_features(data, arg), None)
    raise DataError(
        f"{arg}: expected (X, y) of arrays/tensors, (DataFrame, 'target_column'), a "
        f"torch.utils.data.Dataset or a DataLoader; received {describe(data)}."
        + (" Fix: pass (X, y) — features and targets as a pair." if isinstance(
            data, (torch.Tensor, np.ndarray)) else "")
    )
