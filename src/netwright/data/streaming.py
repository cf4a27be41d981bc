"""Data larger than memory: a glob of Parquet or ``.npy`` shards read as a stream.

``nw.stream("shards/*.parquet", target="label")`` is an ``IterableDataset`` that never holds the
whole set: each epoch it deals the shards (in a seeded order) to the training processes and,
within a process, to the DataLoader workers; each reads its shards a block of rows at a time and
shuffles through a buffer of ``shuffle_buffer`` rows. The order is a function of the seed and the
epoch alone, so a resumed run that replays an epoch's first batches sees exactly the batches it
saw before (netwright's exact resume skips them without training).

Parquet shards are read with pyarrow (only the columns used); ``.npy`` shards are opened as
memory maps: 2-D float arrays whose column ``target`` (an index, e.g. ``-1``) is the target.
"""

from __future__ import annotations

import glob as globmod
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..errors import ConfigError, DataError

__all__ = ["Stream", "stream", "prepare_stream"]

_BLOCK_ROWS = 4096  # rows read from a shard at a time


class Stream(IterableDataset):
    """Rows of many shard files as ``(features, target)`` pairs, read lazily; see the module."""

    def __init__(self, files: Sequence[Path], *, target: Any, features: Sequence[str] | None,
                 shuffle: bool, shuffle_buffer: int, seed: int, target_dtype: str | None,
                 shape: Sequence[int] | None = None, target_2d: bool = False):
        self.files, self.target, self.features = list(files), target, features
        self.shape = tuple(shape) if shape else None  # each row reshaped (an image: 1, 28, 28)
        self.target_2d = target_2d  # targets as (rows, 1), a regression model's output shape
        self.shuffle, self.shuffle_buffer, self.seed = shuffle, shuffle_buffer, seed
        self.target_dtype = target_dtype
        self.epoch = 0
        self.rank, self.ranks = 0, 1
        self.batch_size: int | None = None  # set by netwright's batches: whole batches, not rows

    def set_batch_size(self, batch_size: int | None) -> None:
        """Yield whole batches of ``batch_size`` rows (gathered and shuffled with NumPy, not row
        by row): what ``nw.fit`` asks for; ``None`` yields rows, for a DataLoader of your own."""
        self.batch_size = batch_size

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next pass gives (netwright's batches call it every epoch)."""
        self.epoch = int(epoch)

    def set_shard(self, rank: int, ranks: int) -> None:
        """Read only this training process's part of the shards (data-parallel training)."""
        self.rank, self.ranks = int(rank), int(ranks)

    def peek(self, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``n`` rows of the first shard, in file order (for the checks before
        training and the task's inference): nothing of an epoch's order is used up."""
        out: list[tuple[torch.Tensor, torch.Tensor]] = []
        for x, y in _blocks(self.files[0], self.target, self.features):
            out += [self._tensors((x[i], y[i])) for i in range(min(len(x), n - len(out)))]
            if len(out) >= n:
                break
        return out

    def rows(self) -> int:
        """The rows of all shards, from the files' metadata (nothing is read)."""
        return sum(_row_count(f) for f in self.files)

    def _my_files(self) -> list[Path]:
        order = list(range(len(self.files)))
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(len(order), generator=g).tolist()
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        mine = order[self.rank::self.ranks][worker::workers]
        return [self.files[i] for i in mine]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
        if self.batch_size is not None:
            yield from self._batches(rng, self.batch_size)
            return
        buffer: list[tuple[np.ndarray, Any]] = []
        for path in self._my_files():
            for x, y in _blocks(path, self.target, self.features):
                for i in range(len(x)):
                    row = (x[i], y[i])
                    if not self.shuffle:
                        yield self._tensors(row)
                        continue
                    if len(buffer) < self.shuffle_buffer:
                        buffer.append(row)
                        continue
                    j = int(rng.integers(len(buffer)))
                    buffer[j], row = row, buffer[j]
                    yield self._tensors(row)
        if self.shuffle:
            for j in rng.permutation(len(buffer)):
                yield self._tensors(buffer[j])

    def _batches(self, rng: np.random.Generator, bs: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Whole batches: blocks are appended to a buffer; once it holds more than
        ``shuffle_buffer`` rows it is permuted and the rows beyond that many leave as batches."""
        keep = self.shuffle_buffer if self.shuffle else 0
        bx: np.ndarray | None = None
        by: np.ndarray | None = None
        for path in self._my_files():
            for x, y in _blocks(path, self.target, self.features):
                bx = x if bx is None else np.concatenate([bx, x])
                by = y if by is None else np.concatenate([by, y])
                if len(bx) < keep + bs:
                    continue
                if self.shuffle:
                    order = rng.permutation(len(bx))
                    bx, by = bx[order], by[order]
                k = (len(bx) - keep) // bs * bs
                for start in range(0, k, bs):
                    yield self._tensors((bx[start:start + bs], by[start:start + bs]))
                bx, by = bx[k:], by[k:]
        if bx is not None and len(bx):
            if self.shuffle:
                order = rng.permutation(len(bx))
                bx, by = bx[order], by[order]
            for start in range(0, len(bx), bs):
                yield self._tensors((bx[start:start + bs], by[start:start + bs]))

    def _tensors(self, row: tuple[np.ndarray, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = row
        target = torch.as_tensor(np.array(y))  # copies: the block may be a view
        if self.target_dtype is not None:
            target = target.to(getattr(torch, self.target_dtype))
        if self.target_2d:
            target = target.reshape(-1, 1) if target.ndim == 1 else target.reshape(1)
        features = torch.from_numpy(np.array(x, dtype=np.float32))
        if self.shape is not None:
            features = features.reshape(*features.shape[:-1], *self.shape)
        return features, target


def stream(source: str | os.PathLike | Sequence[str | os.PathLike], *, target: Any,
           features: Sequence[str] | None = None, shuffle: bool = True,
           shuffle_buffer: int = 10_000, seed: int = 0, target_dtype: str | None = None,
           shape: Sequence[int] | None = None, target_2d: bool = False) -> Stream:
    """A :class:`Stream` over ``source``: a glob (``"shards/*.parquet"``), a folder (its
    ``.parquet`` and ``.npy`` files) or a list of files. ``target`` is the target column (a name
    for Parquet, an index for ``.npy``); ``features`` the Parquet feature columns (default: all
    others). ``target_dtype`` (``"int64"`` for class indices, ``"float32"``) converts the target;
    ``shape`` reshapes each row's features (``[1, 28, 28]``); ``target_2d`` gives targets as
    ``(rows, 1)`` (a regression model's output).

    >>> import tempfile, numpy as np
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i in range(3):
    ...     np.save(folder / f"part{i}.npy", np.c_[np.full((4, 2), i), np.arange(4)].astype("float32"))
    >>> s = stream(folder / "*.npy", target=-1, shuffle=False)
    >>> s.rows(), [tuple(x.tolist()) + (float(y),) for x, y in s][:2]
    (12, [(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)])
    """
    files = _files(source)
    kinds = {f.suffix.lower() for f in files}
    if len(kinds) > 1:
        raise ConfigError(f"data.source: the shards mix {', '.join(sorted(kinds))} files; a stream "
                          f"reads one kind. Fix: put the .parquet and .npy shards in separate sets.")
    if not isinstance(shuffle_buffer, int) or isinstance(shuffle_buffer, bool) or shuffle_buffer < 1:
        raise ConfigError(f"shuffle_buffer: expected a positive number of rows; received {shuffle_buffer!r}.")
    if kinds == {".npy"} and not (isinstance(target, int) and not isinstance(target, bool)):
        raise ConfigError(f"target: .npy shards hold numbers only, so the target is a column index "
                          f"(e.g. -1 for the last column); received {target!r}.")
    if kinds == {".parquet"}:
        _parquet_columns(files[0], target, features)  # a wrong column is named before training
    return Stream(files, target=target, features=features, shuffle=shuffle,
                  shuffle_buffer=shuffle_buffer, seed=seed, target_dtype=target_dtype, shape=shape,
                  target_2d=target_2d)


def _files(source: Any) -> list[Path]:
    if isinstance(source, (list, tuple)):
        files = [Path(s) for s in source]
    else:
        text = str(source)
        path = Path(text)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".parquet", ".npy"))
        else:
            files = sorted(Path(p) for p in globmod.glob(text))
    files = [f for f in files if f.is_file()]
    if not files:
        raise DataError(f"data.source: {str(source)!r} names no .parquet or .npy files. Fix: a glob "
                        f"such as 'shards/*.parquet', a folder of shards, or a list of files.")
    bad = [f.name for f in files if f.suffix.lower() not in (".parquet", ".npy")]
    if bad:
        raise DataError(f"data.source: a stream reads .parquet or .npy shards; received {bad[:3]}.")
    return files


def _parquet_columns(path: Path, target: Any, features: Sequence[str] | None) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError("data: reading Parquet shards needs pyarrow. Fix: pip install "
                          "'netwright[parquet]'.") from exc
    names = pq.ParquetFile(path).schema_arrow.names
    missing = [c for c in [target, *(features or [])] if c not in names]
    if missing:
        raise DataError(f"data: {path.name} has no column {missing[0]!r}; its columns are "
                        f"{names[:20]}. Fix: name the target (and features) as in the files.")
    return list(features) if features else [n for n in names if n != target]


def _npy_header(fh: Any, path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        major, _ = np.lib.format.read_magic(fh)
        read = (np.lib.format.read_array_header_1_0 if major == 1
                else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(fh)
    except ValueError as exc:
        raise DataError(f"data: {path.name} is not a .npy file numpy can read ({exc}).") from None
    if len(shape) != 2 or fortran or dtype.hasobject:
        raise DataError(f"data: {path.name} holds a {'Fortran-ordered ' if fortran else ''}array of "
                        f"shape {shape} and dtype {dtype}; a .npy shard is a 2-D array of numbers "
                        f"(rows x columns, the target one of the columns), in C order.")
    return shape, fortran, dtype


def _row_count(path: Path) -> int:
    if path.suffix.lower() == ".npy":
        with path.open("rb") as fh:
            return int(_npy_header(fh, path)[0][0])
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _blocks(path: Path, target: Any, features: Sequence[str] | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(x, y)`` blocks of at most ``_BLOCK_ROWS`` rows of one shard."""
    if path.suffix.lower() == ".npy":
        # Read a block at a time from the file (not a memory map, whose pages would stay in the
        # process's memory once touched).
        with path.open("rb") as fh:
            shape, fortran, dtype = _npy_header(fh, path)
            col = target % shape[1]
            keep = [c for c in range(shape[1]) if c != col]
            for start in range(0, shape[0], _BLOCK_ROWS):
                rows = min(_BLOCK_ROWS, shape[0] - start)
                block = np.fromfile(fh, dtype=dtype, count=rows * shape[1]).reshape(rows, shape[1])
                yield block[:, keep], block[:, col]
        return
    import pyarrow.parquet as pq

    columns = _parquet_columns(path, target, features)
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_BLOCK_ROWS, columns=[*columns, target]):
        x = np.stack([batch.column(c).to_numpy(zero_copy_only=False) for c in columns], axis=1)
        yield x, batch.column(target).to_numpy(zero_copy_only=False)


def prepare_stream(cfg: Any, loss_task: str, loss_name: str | None = None) -> Any:
    """A config's ``data`` with ``streaming: true``: the training, validation and test streams
    and what the model needs to know, measured in one pass over the training shards (the
    standardisation, the number of classes, non-finite values), which never holds them."""
    from .prepare import Prepared, check_task

    given = {k for k in ("val", "test", "window", "split") if k in cfg.model_fields_set}
    if given:
        raise ConfigError(
            f"data.{sorted(given)[0]}: a stream is not split by fractions or windows (that would "
            f"need the whole set). Fix: give the splits as shards: data.val_source and "
            f"data.test_source.")
    if loss_task == "binary":
        raise ConfigError(
            f"data.streaming: {loss_name or 'this loss'} wants (N, 1) float targets of two classes; "
            f"streams give class indices. Fix: loss: cross_entropy (two logits).")
    if cfg.target is None or isinstance(cfg.target, list):
        raise ConfigError("data.target: a stream needs one target column (a name for Parquet, an "
                          "index such as -1 for .npy).")
    target = cfg.target
    if isinstance(target, str) and target.lstrip("-").isdigit():
        target = int(target)
    probe = stream(cfg.source, target=target, features=cfg.features, shuffle=False)
    classify = loss_task == "multiclass" or (loss_task == "custom" and _integral(probe))
    n, width = 0, None
    x_sum = x_sq = None
    y_sum = y_sq = 0.0
    y_max = -1
    for path in probe.files:  # one pass: statistics and checks, a block at a time
        for x, y in _blocks(path, target, cfg.features):
            x = np.asarray(x, dtype=np.float64)
            y = np.asarray(y, dtype=np.float64)
            if not (np.isfinite(x).all() and np.isfinite(y).all()):
                raise DataError(f"data: {path.name} has NaN/Inf values. Fix: drop or fill them.")
            if classify:
                if (y < 0).any() or (y != np.round(y)).any():
                    raise DataError(f"data: {path.name}: a classification target must be class "
                                    f"indices 0, 1, 2, ...; received {y[(y < 0) | (y != np.round(y))][:3]}.")
                y_max = max(y_max, int(y.max(initial=-1)))
            width = x.shape[1]
            x_sum = x.sum(axis=0) if x_sum is None else x_sum + x.sum(axis=0)
            x_sq = (x * x).sum(axis=0) if x_sq is None else x_sq + (x * x).sum(axis=0)
            y_sum, y_sq, n = y_sum + float(y.sum()), y_sq + float((y * y).sum()), n + len(x)
    if not n:
        raise DataError(f"data.source: the shards {str(cfg.source)!r} hold no rows.")
    shape = tuple(cfg.shape) if cfg.shape else (width,)
    if int(np.prod(shape)) != width:
        raise ConfigError(f"data.shape: {list(shape)} holds {int(np.prod(shape))} values but each "
                          f"row has {width} features. Fix: a shape whose sizes multiply to {width}.")
    head = probe.peek(64)
    check_task(np.array([float(y) for _, y in head]) if not classify else
               np.array([int(y) for _, y in head]), loss_task, cfg, loss_name)
    x_stats = _stats(x_sum, x_sq, n, cfg.standardize, shape)
    scale_y = cfg.standardize_target if cfg.standardize_target is not None else not classify
    if scale_y and classify:
        raise ConfigError("data.standardize_target: only regression targets can be standardised.")
    y_stats = _stats(np.array([y_sum]), np.array([y_sq]), n, "features", (1,)) if scale_y else None

    def make(source: Any, shuffle: bool) -> Stream:
        return stream(source, target=target, features=cfg.features, shuffle=shuffle,
                      shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed, shape=cfg.shape,
                      target_dtype="int64" if classify else "float32", target_2d=not classify)

    train = make(cfg.source, True)
    val = make(cfg.val_source, False) if cfg.val_source else None
    test = make(cfg.test_source, False) if cfg.test_source else None
    names = None
    if train.files[0].suffix.lower() == ".parquet":
        names = _parquet_columns(train.files[0], target, cfg.features)
    return Prepared(
        train=train, val=val, test=test, task="multiclass" if classify else "regression",
        input_shape=shape, classes=list(range(y_max + 1)) if classify else None,
        feature_names=names, x_stats=x_stats, y_stats=y_stats, target_width=None if classify else 1,
        sizes={"train": n, "val": val.rows() if val else 0, "test": test.rows() if test else 0},
    )


def _integral(probe: Stream) -> bool:
    head = probe.peek(64)
    return bool(head) and all(float(y) == int(float(y)) for _, y in head)


def _stats(total: Any, squares: Any, n: int, mode: str, shape: tuple[int, ...]) -> Any:
    """(mean, std) as float32, per feature (reshaped like a sample) or one for all; None for
    mode 'none'. Constant features keep std 1."""
    if mode == "none":
        return None
    if mode == "global":
        count = n * len(total)
        mean = total.sum() / count
        std = np.sqrt(max(squares.sum() / count - mean * mean, 0.0))
        mean, std = np.array(mean), np.array(std)
    else:
        mean = total / n
        std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
        mean, std = mean.reshape(shape), std.reshape(shape)
    std = np.where(std > 1e-8, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)
