"""Checks of data that gives the answer away or hides it (NW310, NW311, NW404): the same rows
in the training and the validation data (validation scores then measure memory, not
learning), a feature that is the target in disguise (a column equal to the label, or a
perfect function of it: the model learns that column, and fails on real data that lacks it),
and training data sorted by label with shuffling off (each stretch of batches holds one class,
so the model chases the class of the moment and ends biased to the last one).

All three are cheap: one random projection per row (a matrix-vector product) with exact
comparison of the rows that match, per-class minima and maxima of each
feature over at most ``_ROWS`` rows, and the count of label changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .report import Finding, finding, listed

_ROWS = 4096  # rows the leakage check reads (evenly spaced over the data)
_SAMPLE = 512  # items of a Dataset hashed for the duplicate check
_MIN_ROWS = 30  # fewer rows prove nothing about a feature and the target


def _row_keys(x: torch.Tensor) -> torch.Tensor:
    """One number per row of ``x``: its dot product with a fixed random vector (in its own
    floating dtype). Equal
    rows get equal keys; different rows, different keys but for a chance that
    :func:`_shared_rows` rules out by comparing the rows themselves. A matrix-vector product:
    about 1 ms for 4,000 MNIST rows."""
    flat = x.detach().reshape(len(x), -1)
    if not flat.is_floating_point():
        flat = flat.double()  # ids and counts: exact in float64
    weights = torch.randn(flat.shape[1], generator=torch.Generator().manual_seed(12345),
                          dtype=flat.dtype)
    return flat @ weights


def _shared_rows(train: torch.Tensor, val: torch.Tensor) -> tuple[np.ndarray, float]:
    """(validation rows also in training, by index; the share of training rows that repeat an
    earlier training row)."""
    tk, vk = _row_keys(train).numpy(), _row_keys(val).numpy()
    order = np.argsort(tk, kind="stable")
    sorted_keys = tk[order]
    pos = np.searchsorted(sorted_keys, vk)
    pos = np.clip(pos, 0, len(sorted_keys) - 1)
    candidates = np.nonzero(sorted_keys[pos] == vk)[0]
    tflat, vflat = train.detach().reshape(len(train), -1), val.detach().reshape(len(val), -1)
    hits = [int(i) for i in candidates if torch.equal(vflat[i], tflat[order[pos[i]]])]
    repeated = 1 - len(np.unique(tk)) / len(tk)
    return np.asarray(hits, dtype=np.int64), repeated


def _dataset_rows(data: Any, limit: int = _SAMPLE) -> tuple[torch.Tensor | None, int]:
    """Up to ``limit`` evenly spaced inputs of a map-style Dataset as one tensor, and its size."""
    try:
        n = len(data)
    except TypeError:
        return None, 0
    if n == 0:
        return None, 0
    picks = np.unique(np.linspace(0, n - 1, min(n, limit)).astype(int))
    rows = []
    for i in picks:
        item = data[int(i)]
        x = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(x, torch.Tensor):
            return None, n
        rows.append(x.reshape(-1))
    if len({r.shape for r in rows}) != 1:
        return None, n
    return torch.stack(rows), n


def _paths(data: Any) -> list[str] | None:
    """The file of each item of netwright's file datasets (images, sounds), else None."""
    from ..data.audio import AudioFiles
    from ..data.images import ImageFiles

    inner = getattr(data, "dataset", data)
    if isinstance(inner, (ImageFiles, AudioFiles)):
        positions = getattr(data, "indices", range(len(inner)))
        return [str(inner.path(int(i))) for i in positions]
    return None


def duplicate_findings(train: Any, val: Any, *, sample: bool = True) -> list[Finding]:
    """NW310: rows (or files) of the validation data that are also in the training data.
    ``train``/``val``: input tensors (in memory) or Datasets (their files compared, or with
    ``sample`` a sample of their items hashed)."""
    if train is None or val is None:
        return []
    how = "rows"
    train_paths, val_paths = _paths(train), _paths(val)
    if train_paths is not None and val_paths is not None:
        seen = set(train_paths)
        shared = [p for p in val_paths if p in seen]
        total, how, examples = len(val_paths), "files", shared[:3]
        count = len(shared)
    else:
        if isinstance(train, torch.Tensor) and isinstance(val, torch.Tensor):
            tx, vx, total = train, val, len(val)
        elif not sample:
            return []  # fit's pre-flight reads no items of a user's Dataset (they may be costly)
        else:
            tx, _ = (train, len(train)) if isinstance(train, torch.Tensor) else _dataset_rows(train, 4 * _SAMPLE)
            vx, total = (val, len(val)) if isinstance(val, torch.Tensor) else _dataset_rows(val)
            if tx is not None and vx is not None and not isinstance(val, torch.Tensor):
                how = f"rows of a sample of {len(vx)}"
                total = len(vx)
        if tx is None or vx is None or tx.shape[1:] != vx.shape[1:] or not len(vx) or not len(tx):
            return []
        hits, repeated = _shared_rows(tx, vx)
        count = len(hits)
        examples = hits[:3].tolist()
        # Data whose rows repeat anyway (a few binary features) shares rows between any two
        # splits: only an overlap well above the training data's own repetition is a copy.
        if count and count / len(vx) <= 2 * repeated + 0.01:
            return []
    if not count:
        return []
    share = 100 * count / max(1, total)
    return [finding(
        "NW310", f"{count} of {total} validation {how} ({share:.0f}%) are also in the training "
        f"data (e.g. {', '.join(map(str, examples))}): validation scores on them measure memory, not "
        f"learning, and early stopping and the best epoch follow them.",
        "split before any copying or augmentation, drop duplicates first (e.g. "
        "np.unique(X, axis=0, return_index=True)), and keep the same source out of both splits",
        "val")]


def _feature_matrix(x: Any) -> torch.Tensor | None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        return None
    return x


def leakage_findings(x: Any, y: Any, task: str | None) -> list[Finding]:
    """NW311: a feature column equal to the target or a perfect function of it (one value per
    class, a different one for each class; for values, correlation |r| > 0.9999 beside other
    features)."""
    X = _feature_matrix(x)
    if X is None or not isinstance(y, torch.Tensor) or len(X) < _MIN_ROWS or len(y) != len(X):
        return []
    # A seeded sample of rows, not every k-th: labels that cycle (0, 1, 2, 3, 0, ...) would
    # alias with a stride and leave classes out.
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(X), generator=g)[:_ROWS]  # in random order (see below)
    X = X.detach()
    t = y[pick].detach()
    leaks: list[tuple[int, str]] = []
    if task == "regression" or (t.is_floating_point() and t.reshape(len(t), -1).shape[1] == 1
                                and len(torch.unique(t)) > 30):
        if X.shape[1] < 2:
            return []  # one feature that predicts the values is a model, not a leak
        X = X[pick].double()
        v = t.reshape(len(t), -1)[:, 0].double()
        xc, vc = X - X.mean(0), v - v.mean()
        denom = xc.norm(dim=0) * vc.norm()
        r = (xc * vc[:, None]).sum(0) / torch.where(denom > 0, denom, torch.ones_like(denom))
        leaks = [(int(j), f"correlation {float(r[j]):.5f} with the target")
                 for j in torch.nonzero(r.abs() > 0.9999).flatten().tolist()]
    else:
        if t.numel() != len(t):
            return []  # one-hot, soft or multi-label targets: not one class per row
        labels = t.reshape(-1).long()
        classes, ids = torch.unique(labels, return_inverse=True)
        if len(classes) < 2 or torch.bincount(ids).min() < 2:
            return []
        # Candidates on an eighth of the rows first (a leaking column is constant within each
        # class there too), then only those columns over all the rows read: 5x cheaper on MNIST.
        columns = torch.arange(X.shape[1])
        k = len(classes)
        for rows in (slice(None, max(64, len(pick) // 8)), slice(None)):  # pick is shuffled
            if not len(columns):
                return []
            # The rows, for the columns still in question only (all of them, then few).
            part = X[pick[rows]] if len(columns) == X.shape[1] else X.index_select(1, columns)[pick[rows]]
            sub, sub_ids = part.float(), ids[rows]
            present = torch.bincount(sub_ids, minlength=k) > 0
            idx = sub_ids[:, None].expand_as(sub)
            lo = torch.full((k, sub.shape[1]), float("inf")).scatter_reduce(
                0, idx, sub, "amin", include_self=True)[present]
            hi = torch.full((k, sub.shape[1]), float("-inf")).scatter_reduce(
                0, idx, sub, "amax", include_self=True)[present]
            keep = (lo == hi).all(0) & (lo.amax(0) != lo.amin(0))  # not a constant column
            if int(present.sum()) < 2:
                keep = torch.ones_like(keep)  # too few classes in the sample to tell: look at all
            lo, columns = lo[:, keep], columns[keep]
        per_class_constant = torch.ones(len(columns), dtype=torch.bool)
        # The column names the class: one value per class, a different one for each. A column
        # shared by several classes (a category above the label) is a fair feature.
        ordered = lo.sort(0).values
        varies = (ordered[1:] != ordered[:-1]).all(0)
        for c in torch.nonzero(per_class_constant & varies).flatten().tolist():
            j = int(columns[c])
            same = bool(torch.equal(lo[:, c], classes.to(lo.dtype)))
            leaks.append((j, "equal to the label" if same else
                          "one value per class (" + ", ".join(
                              f"{int(k_)}→{float(v):g}" for k_, v in list(zip(classes, lo[:, c]))[:4])
                          + (", ..." if k > 4 else "") + ")"))
    if not leaks:
        return []
    cols = [f"column {j} ({why})" for j, why in leaks]
    return [finding(
        "NW311", f"{len(leaks)} feature(s) are the target in disguise: {listed(cols, 4)}, over "
        f"{len(X)} rows. The model will learn that column alone and score perfectly here, then "
        f"fail on data where it is not known (a label, an id sorted by label, a value computed "
        f"from the outcome).",
        "remove the column(s) from the features (or check how they were made)",
        f"inputs column {leaks[0][0]}")]


def order_findings(y: Any, shuffle: bool, task: str | None = None) -> list[Finding]:
    """NW404: class labels in a few long runs (sorted by label) while ``shuffle`` is off; not
    for regression (a time-ordered series is trained in order on purpose)."""
    if shuffle or task == "regression" or not isinstance(y, torch.Tensor) or y.is_floating_point() and y.ndim > 1 \
            and y.shape[1] > 1 or len(y) < _MIN_ROWS:
        return []
    labels = y.reshape(len(y), -1)[:, 0]
    if labels.is_floating_point() and len(torch.unique(labels)) > 30:
        return []  # values, not classes
    classes = len(torch.unique(labels))
    changes = int((labels[1:] != labels[:-1]).sum())
    if classes < 2 or changes > 2 * (classes - 1):
        return []
    first = [str(int(v)) if not labels.is_floating_point() else f"{float(v):g}"
             for v in torch.unique_consecutive(labels)[:6]]
    return [finding(
        "NW404", f"the training targets come in {changes + 1} runs of one class each "
        f"({' then '.join(first)}{' ...' if changes + 1 > 6 else ''}) and shuffle=False: every "
        f"stretch of batches shows one class, so the model learns the class of the moment and ends "
        f"biased towards the last one.",
        "shuffle=True (fit's default), or shuffle the rows once before training", "train")]


def _parts(source: Any, shuffle: bool) -> tuple[Any, Any, bool]:
    """(inputs, targets, shuffled) of a fit data source: tensors in memory; a Dataset and its
    ``targets`` when it has them; a DataLoader's dataset, shuffled when its sampler is random."""
    from torch.utils.data import SequentialSampler

    from ..data.sources import DatasetSource, InMemory, LoaderSource

    if isinstance(source, InMemory):
        x = source.x if isinstance(source.x, torch.Tensor) else None
        return x, source.y, shuffle
    if isinstance(source, LoaderSource):
        loader = source.loader
        shuffle = not isinstance(getattr(loader, "sampler", None), SequentialSampler)
        data = loader.dataset
    elif isinstance(source, DatasetSource):
        data = source.dataset
    else:
        return None, None, True
    targets = getattr(data, "targets", None)
    return data, targets if isinstance(targets, torch.Tensor) else None, shuffle


def split_findings(train: Any, val: Any, *, shuffle: bool, task: str | None,
                   sample: bool = False) -> list[Finding]:
    """NW310, NW311 and NW404 for fit's training and validation sources (``val`` may be None).
    ``sample``: also hash a sample of the items of Datasets (``nw.doctor``; fit's pre-flight
    compares only in-memory rows and the files of image and sound datasets)."""
    tx, ty, shuffled = _parts(train, shuffle)
    found: list[Finding] = []
    if isinstance(tx, torch.Tensor):
        found += leakage_findings(tx, ty, task)
    found += order_findings(ty, shuffled, task)
    if val is not None:
        vx, _, _ = _parts(val, False)
        found += duplicate_findings(tx, vx, sample=sample)
    return found
