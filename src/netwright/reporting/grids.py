"""``netwright datasets show``: a grid of augmented training images with their labels.

Drawn with matplotlib's Agg backend (no display needed) and written atomically; an existing
file is never replaced.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["show_grid", "draw_grid"]


def draw_grid(images: Sequence[Any], labels: Sequence[str], columns: int = 8) -> bytes:
    """PNG bytes of ``images`` ((C, H, W) floats in [0, 1]) in a grid, each titled by its label."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(images)
    columns = max(1, min(columns, n))
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.45), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, label in zip(axes.ravel(), images, labels):
        arr = np.asarray(img, dtype=np.float32).clip(0, 1)
        c = arr.shape[0]
        if c == 1:
            ax.imshow(arr[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(np.moveaxis(arr[:3] if c != 4 else arr, 0, -1), interpolation="nearest")
        ax.set_title(str(label), fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def show_grid(config: str | os.PathLike, overrides: Sequence[str], out: str | os.PathLike,
              count: int = 32) -> int:
    """Write ``count`` augmented training images of ``config`` (seeded: the same grid each time)
    to the PNG file ``out``; returns how many were drawn."""
    import torch

    from ..atomic import atomic_write_bytes
    from ..config import load_config
    from ..data.images import ImageFiles
    from ..data.prepare import prepare_data
    from ..losses import resolve_loss

    out = Path(out)
    if out.exists():
        raise ConfigError(f"--out: {str(out)!r} already exists; netwright does not overwrite it. "
                          f"Fix: choose another file name.")
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out: expected a .png file name; received {str(out)!r}.")
    cfg = load_config(config, overrides)
    _, info = resolve_loss(cfg.loss)
    data = prepare_data(cfg.data, info.task, info.name)
    train = data.train
    if isinstance(train, tuple) and data.images is not None:  # cached, not augmented: arrays
        x, y = train
        train = [(torch.from_numpy(x[i]), torch.as_tensor(y[i])) for i in range(len(x))]
    elif not isinstance(train, ImageFiles):
        raise DataError(f"datasets show: {str(config)!r} does not train on image files (data.source "
                        f"{cfg.data.source!r}). Fix: a config whose data.source is a folder of class "
                        f"folders, or a table with data.image.")
    torch.manual_seed(cfg.data.seed)  # the augmentation's random draws: the same grid each time
    pick = np.random.default_rng(cfg.data.seed).permutation(len(train))[:count]
    shown, labels = [], []
    for i in pick.tolist():
        x, y = train[i]
        shown.append(x.numpy())
        labels.append(data.classes[int(y.reshape(-1)[0])])
    atomic_write_bytes(out, draw_grid(shown, labels))
    return len(shown)
