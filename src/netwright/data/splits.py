"""Hold out a fraction of the data: stratified by class for classification, seeded."""

from __future__ import annotations

import torch
from torch.utils.data import random_split

from ..errors import ConfigError, DataError
from .sources import DatasetSource, LoaderSource, Source

__all__ = ["split_fraction", "stratified_indices"]


def stratified_indices(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held-out) indices with ``fraction`` of every class held out (at least one of
    every class that has two or more samples).

    >>> keep, held = stratified_indices(torch.tensor([0] * 8 + [1] * 2), 0.5, seed=0)
    >>> sorted(torch.tensor([0] * 8 + [1] * 2)[held].tolist())
    [0, 0, 0, 0, 1]
    """
    g = torch.Generator().manual_seed(seed)
    held = []
    for cls in torch.unique(labels):
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        held.append(idx[:k])
    held_t = torch.cat(held) if held else torch.empty(0, dtype=torch.long)
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held_t] = False
    keep = torch.nonzero(mask).flatten()
    # Shuffle each part so classes are not in blocks (matters for unshuffled evaluation order).
    return keep[torch.randperm(len(keep), generator=g)], held_t[torch.randperm(len(held_t), generator=g)]


def _class_labels(y: torch.Tensor | None) -> torch.Tensor | None:
    """Integer class labels if ``y`` looks like single-label classes, else None."""
    if y is None:
        return None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        return None
    if y.is_floating_point():
        if not torch.equal(y, y.round()) or torch.unique(y).numel() > max(20, len(y) // 10):
            return None
    return y.long()


def _is_files(dataset: object) -> bool:
    from .audio import AudioFiles
    from .images import ImageFiles

    return isinstance(dataset, (ImageFiles, AudioFiles))


def split_fraction(source: Source, fraction: float, *, seed: int, stratify: bool, arg: str = "val") -> tuple[Source, Source]:
    """Split ``source`` into (train, held-out) with ``fraction`` held out."""
    if isinstance(fraction, bool) or not 0 < fraction < 1:
        raise ConfigError(
            f"{arg}: a fraction must lie strictly between 0 and 1; received {fraction!r}. "
            f"Fix: e.g. {arg}=0.2 to hold out 20 %."
        )
    if isinstance(source, LoaderSource):
        raise DataError(
            f"{arg}={fraction}: a DataLoader cannot be split. Fix: pass its Dataset instead, or "
            f"a separate {arg} loader."
        )
    if isinstance(source, DatasetSource) and _is_files(source.dataset):
        # nw.images(...), nw.audio(...): stratified by class, and the held-out part is never
        # augmented (nor, for sounds, cropped at random).
        data = source.dataset
        labels = _class_labels(data.targets) if stratify else None
        if labels is not None:
            keep, held = stratified_indices(labels, fraction, seed)
        else:
            perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
            held, keep = perm[:max(1, int(round(len(data) * fraction)))], perm[max(1, int(round(len(data) * fraction))):]
        if len(keep) == 0 or len(held) == 0:
            raise DataError(f"{arg}={fraction}: {len(data)} files cannot be split into two "
                            f"non-empty parts. Fix: more files, or separate {arg} data.")
        mode = {"train": data.train} if hasattr(data, "train") else {}
        return (DatasetSource(data.subset(keep.numpy(), augment=data.augment, **mode)),
                DatasetSource(data.subset(held.numpy())))
    if isinstance(source, DatasetSource):
        n = len(source.dataset)
        n_val = max(1, int(round(n * fraction)))
        if n_val >= n:
            raise DataError(f"{arg}={fraction}: {n} samples leave nothing to train on.")
        tr, va = random_split(source.dataset, [n - n_val, n_val], generator=torch.Generator().manual_seed(seed))
        return DatasetSource(tr), DatasetSource(va)
    n = len(source)
    labels = _class_labels(source.y) if stratify else None
    if labels is not None:
        keep, held = stratified_indices(labels.cpu(), fraction, seed)
    else:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        n_val = int(round(n * fraction))
        held, keep = perm[:n_val], perm[n_val:]
    if len(held) == 0 or len(keep) == 0:
        raise DataError(
            f"{arg}={fraction}: {n} samples cannot be split into two non-empty parts. "
            f"Fix: pass more data or separate {arg} data."
        )
    return source.subset(keep), source.subset(held)
