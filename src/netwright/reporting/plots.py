"""The report's pictures: matplotlib (Agg) figures as inline PNG data URIs."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["figure", "png_uri", "curves", "confusion", "roc_pr", "regression", "thumbnails"]


def figure(width: float = 5.2, height: float = 3.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def png_uri(fig: Any) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (closed afterwards)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def curves(rows: Sequence[dict], key: str, best_epoch: int | None, *, log: bool = False,
           title: str | None = None) -> str | None:
    """``train_<key>`` and ``val_<key>`` per epoch (or ``key`` alone, such as ``lr``), the best
    epoch marked."""
    epochs = [r.get("epoch") for r in rows]
    series = {name: [r.get(name) for r in rows] for name in (f"train_{key}", f"val_{key}", key)}
    series = {k: v for k, v in series.items() if any(isinstance(x, (int, float)) for x in v)}
    if not series:
        return None
    fig, ax = figure()
    for name, values in series.items():
        pts = [(e, v) for e, v in zip(epochs, values) if isinstance(v, (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 30 else None,
                markersize=3, label=name)
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best_epoch}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_title(title or key)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_uri(fig)


def confusion(matrix: np.ndarray, names: Sequence[str], *, normalised: bool) -> str:
    n = len(names)
    size = min(9.0, 2.5 + 0.45 * n)
    fig, ax = figure(size, size * 0.85)
    values = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalised else matrix
    ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalised else max(1, values.max()))
    if n <= 30:
        for i in range(n):
            for j in range(n):
                text = f"{values[i, j]:.2f}" if normalised else str(int(values[i, j]))
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] > (0.5 if normalised else values.max() / 2) else "black")
    ticks = range(n) if n <= 30 else []
    ax.set_xticks(list(ticks), [str(names[i]) for i in ticks], rotation=90 if n > 10 else 0, fontsize=7)
    ax.set_yticks(list(ticks), [str(names[i]) for i in ticks], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("row-normalised" if normalised else "counts")
    return png_uri(fig)


def roc_pr(fpr: np.ndarray, tpr: np.ndarray, recall: np.ndarray, precision: np.ndarray,
           auroc: float, ap: float) -> str:
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.4))
    a.plot(fpr, tpr)
    a.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    a.set_xlabel("false positive rate")
    a.set_ylabel("true positive rate")
    a.set_title(f"ROC (AUROC {auroc:.4f})")
    b.plot(recall, precision)
    b.set_xlabel("recall")
    b.set_ylabel("precision")
    b.set_title(f"precision-recall (AP {ap:.4f})")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    return png_uri(fig)


def regression(actual: np.ndarray, predicted: np.ndarray) -> str:
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.4))
    a.scatter(actual, predicted, s=8, alpha=0.6)
    lo, hi = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    a.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1)
    a.set_xlabel("actual")
    a.set_ylabel("predicted")
    a.set_title("predicted vs actual")
    b.hist(predicted - actual, bins=30)
    b.set_xlabel("residual (predicted - actual)")
    b.set_title("residuals")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    return png_uri(fig)


def thumbnails(images: Sequence[np.ndarray], titles: Sequence[str]) -> str:
    """Images ((C, H, W) floats in [0, 1]) in one row, each titled."""
    from .grids import draw_grid

    return "data:image/png;base64," + base64.b64encode(
        draw_grid(list(images), list(titles), columns=min(8, len(images)))).decode("ascii")
