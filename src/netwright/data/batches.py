"""Batches: a fast in-memory path and a DataLoader path.

In-memory data is batched by slicing a shuffled index: one ``randperm`` per epoch and one gather
per tensor per batch, on the device the data lives on. That is what a hand-written loop does and
several times faster than ``DataLoader(TensorDataset)``, which fetches and collates item by item.
Datasets go through a ``DataLoader`` with workers and pinned memory when asked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, Sampler
from torch.utils.data.dataloader import default_collate

from ..errors import ConfigError, DataError, describe
from .sources import DatasetSource, Features, InMemory, LoaderSource, Source, map_features

# Above this size a shuffled epoch is gathered batch by batch, so the data is never held twice.
_WHOLE_EPOCH_GATHER_BYTES = 256 * 2**20

__all__ = ["Batches", "TensorBatches", "LoaderBatches", "make_batches", "move", "split_batch"]


def move(x: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move a tensor, or a tuple/list/dict of tensors, to ``device``."""
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=non_blocking)
    if isinstance(x, Mapping):
        return {k: move(v, device, non_blocking) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(move(v, device, non_blocking) for v in x)
    return x


def split_batch(batch: Any, *, targets: bool) -> tuple[Features, torch.Tensor | None]:
    """A DataLoader batch → (x, y). Batches are ``(x, y)`` pairs, or ``x`` alone for prediction."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    if not targets:
        if isinstance(batch, (tuple, list)) and len(batch) == 1:
            return batch[0], None
        return batch, None
    raise DataError(
        f"data: each batch must be an (inputs, targets) pair; the loader yielded {describe(batch)}. "
        f"Fix: make the Dataset's __getitem__ return (x, y)."
    )


class Batches:
    """An iterable of (x, y) batches on ``device``, with the size of each batch known upfront
    where possible (gradient accumulation needs it to weight a short last window exactly)."""

    def __iter__(self) -> Iterator[tuple[Features, torch.Tensor | None]]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def sizes(self) -> list[int] | None:
        return None

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next pass belongs to (a sampler's or a stream's seeded order)."""

    def peek(self) -> tuple[Features, torch.Tensor | None]:
        """The first batch without advancing any shuffling state (for pre-flight checks)."""
        raise NotImplementedError


class TensorBatches(Batches):
    def __init__(self, data: InMemory, batch_size: int, *, shuffle: bool,
                 generator: torch.Generator | None, device: torch.device, drop_last: bool = False,
                 shard: tuple[int, int] | None = None, even: bool = False):
        # Data small enough is moved to the device once, so batches are gathered there.
        self.data = data.to(device)
        self.total = len(data)
        # Under data-parallel training (rank, ranks): this rank's every ranks-th sample of the
        # epoch's order, so the ranks' shards are disjoint and cover every sample once.
        self.shard = shard if shard is not None and shard[1] > 1 else None
        # even: every rank as many samples (FSDP has no Join for uneven shards): the epoch's last
        # total % ranks samples of the order are left out (other ones each epoch).
        self.used = self.total - (self.total % shard[1] if self.shard and even else 0)
        self.n = len(range(shard[0], self.used, shard[1])) if self.shard else self.total
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.drop_last = drop_last
        self.device = device

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else math.ceil(self.n / self.batch_size)

    def sizes(self) -> list[int]:
        full, rest = divmod(self.n, self.batch_size)
        return [self.batch_size] * full + ([rest] if rest and not self.drop_last else [])

    def peek(self):
        head = self.data.subset(torch.arange(min(self.batch_size, self.n), device=self.device))
        return head.x, head.y

    def __iter__(self):
        x, y, bs = self.data.x, self.data.y, self.batch_size
        if self.shuffle or self.shard:
            # randperm on the CPU generator keeps the order identical on every device (and rank).
            order = (torch.randperm(self.total, generator=self.generator) if self.shuffle
                     else torch.arange(self.total))
            if self.shard:
                order = order[:self.used][self.shard[0]::self.shard[1]]
            order = order.to(self.device)
            if self.data.nbytes <= _WHOLE_EPOCH_GATHER_BYTES:
                # One gather for the whole epoch, then views: cheaper than a gather per batch.
                x = x[order] if isinstance(x, torch.Tensor) else map_features(x, lambda t: t[order])
                y = y[order] if y is not None else None
                order = None
        else:
            order = None
        single = isinstance(x, torch.Tensor)
        stop = min(len(self) * bs, self.n)
        for start in range(0, stop, bs):
            if order is None:
                sl = slice(start, start + bs)
                xb = x[sl] if single else map_features(x, lambda t: t[sl])
                yield xb, (y[sl] if y is not None else None)
            else:
                idx = order[start:start + bs]
                xb = x[idx] if single else map_features(x, lambda t: t[idx])
                yield xb, (y[idx] if y is not None else None)


class LoaderBatches(Batches):
    def __init__(self, loader: DataLoader, device: torch.device, *, targets: bool):
        self.loader = loader
        self.device = device
        self.targets = targets
        self.epoch = 0  # a DistributedSampler's or a stream's epoch: its seeded order
        self.non_blocking = bool(getattr(loader, "pin_memory", False)) and device.type == "cuda"

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        try:
            return len(self.loader)
        except TypeError:
            return 0  # an IterableDataset without __len__: length unknown

    def sizes(self) -> list[int] | None:
        known = getattr(self.loader.batch_sampler, "sizes", None)
        if callable(known):  # a dataset's own batch sampler (texts' length buckets)
            return known()
        bs = self.loader.batch_size
        dataset = self.loader.dataset
        if bs is None or isinstance(dataset, IterableDataset):
            return None
        try:
            n = len(dataset)
        except TypeError:
            return None
        sampler = self.loader.sampler
        if isinstance(sampler, (DistributedSampler, _Stride)):
            n = len(sampler)
        full, rest = divmod(n, bs)
        return [bs] * full + ([rest] if rest and not self.loader.drop_last else [])

    def peek(self):
        dataset = self.loader.dataset
        if isinstance(dataset, IterableDataset):
            peek = getattr(dataset, "peek", None)  # a stream reads its first rows for the checks
            if not callable(peek):
                return None
            rows = self.loader.batch_size or getattr(dataset, "batch_size", None) or 1
            x, y = split_batch(default_collate(peek(min(rows, 64))),
                               targets=self.targets)
            return move(x, self.device), move(y, self.device)
        try:
            n = min(self.loader.batch_size or 1, len(dataset), 64)
            items = [dataset[i] for i in range(n)]
        except Exception:  # noqa: BLE001 - a dataset that cannot be indexed is checked by training itself
            return None
        collate = self.loader.collate_fn or default_collate
        x, y = split_batch(collate(items), targets=self.targets)
        return move(x, self.device), move(y, self.device)

    def __iter__(self):
        dev, nb = self.device, self.non_blocking
        for owner in (self.loader.sampler, self.loader.dataset):
            set_epoch = getattr(owner, "set_epoch", None)
            if callable(set_epoch):
                set_epoch(self.epoch)
        for batch in self.loader:
            x, y = split_batch(batch, targets=self.targets)
            yield move(x, dev, nb), move(y, dev, nb)


def make_batches(source: Source, *, batch_size: int, shuffle: bool, device: torch.device,
                 generator: torch.Generator | None, targets: bool = True, num_workers: int = 0,
                 pin_memory: bool | None = None, persistent_workers: bool = False,
                 drop_last: bool = False, shard: tuple[int, int] | None = None,
                 even_shards: bool = False) -> Batches:
    """Batches for any source; ``pin_memory=None`` pins when the device is CUDA. ``shard``
    ``(rank, ranks)``: only this rank's disjoint part of each epoch (data-parallel training)."""
    shard = shard if shard is not None and shard[1] > 1 else None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigError(f"batch_size: expected a positive integer, received {batch_size!r}.")
    if isinstance(source, InMemory):
        if targets and source.y is None:
            raise DataError("data: targets are needed here; received features only. Fix: pass (X, y).")
        return TensorBatches(source, batch_size, shuffle=shuffle, generator=generator,
                             device=device, drop_last=drop_last, shard=shard, even=even_shards)
    if isinstance(source, LoaderSource):
        if shard and not isinstance(source.loader.sampler, DistributedSampler):
            raise ConfigError(
                f"data: a DataLoader of your own cannot be split among the {shard[1]} processes "
                f"by netwright (every process would train on all of it). Fix: pass its Dataset "
                f"instead (netwright gives each process its part), or build the DataLoader with "
                f"sampler=DistributedSampler(dataset).")
        return LoaderBatches(source.loader, device, targets=targets)
    if isinstance(source, DatasetSource):
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(f"num_workers: expected an integer >= 0, received {num_workers!r}.")
        iterable = isinstance(source.dataset, IterableDataset)
        if shard and iterable and even_shards:
            raise ConfigError("data: a stream's shards give the processes different numbers of "
                              "rows, which FSDP cannot train on. Fix: strategy 'ddp' for streams.")
        if shard and iterable:
            set_shard = getattr(source.dataset, "set_shard", None)
            if not callable(set_shard):
                raise ConfigError(
                    f"data: an IterableDataset cannot be split among the {shard[1]} processes by "
                    f"netwright. Fix: use nw.stream(...) for sharded files, or read "
                    f"torch.distributed.get_rank() in your dataset and yield only that part.")
            set_shard(*shard)
        batched = callable(getattr(source.dataset, "set_batch_size", None))
        if batched:  # a stream gathers its own batches (NumPy blocks, not rows one by one)
            source.dataset.set_batch_size(batch_size)
        sampler = batch_sampler = None
        # A dataset may bring its own collate (texts: pad each batch to its longest) and, for
        # shuffled training batches, its own batch sampler (texts: similar lengths together).
        collate = _inner_hook(source.dataset, "collate")  # also through a Subset of the dataset
        bucket = getattr(source.dataset, "bucket_sampler", None)
        if shuffle and not shard and not iterable and not batched and callable(bucket):
            batch_sampler = bucket(batch_size, generator, drop_last)
        if shard and not iterable:
            if shuffle:  # torch's sampler: a seeded shuffle per epoch, split among the ranks
                seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
                sampler = DistributedSampler(source.dataset, num_replicas=shard[1], rank=shard[0],
                                             shuffle=True, seed=seed, drop_last=drop_last)
            else:
                sampler = _Stride(len(source.dataset), shard)
        common = dict(num_workers=num_workers, collate_fn=collate if callable(collate) else None,
                      pin_memory=(device.type == "cuda") if pin_memory is None else pin_memory,
                      persistent_workers=persistent_workers and num_workers > 0)
        if batch_sampler is not None:
            loader = DataLoader(source.dataset, batch_sampler=batch_sampler, **common)
        else:
            loader = DataLoader(
                source.dataset, batch_size=None if batched else batch_size, sampler=sampler,
                shuffle=shuffle and not iterable and sampler is None,
                generator=generator if shuffle and not iterable and sampler is None else None,
                drop_last=drop_last and not batched, **common)
        return LoaderBatches(loader, device, targets=targets)
    raise DataError(f"data: unsupported source {describe(source)}.")


def _inner_hook(dataset: Any, name: str) -> Any:
    """``dataset.<name>``, or that of the dataset a ``Subset`` (or ``ConcatDataset``) wraps."""
    for _ in range(8):
        found = getattr(dataset, name, None)
        if found is not None:
            return found
        inner = getattr(dataset, "dataset", None)
        if inner is None and getattr(dataset, "datasets", None):
            inner = dataset.datasets[0]
        if inner is None:
            return None
        dataset = inner
    return None


class _Stride(Sampler):
    """Every ``ranks``-th index from ``rank`` on, in order: a rank's part of an evaluation (no
    padding, so metrics summed over the ranks count every sample once)."""

    def __init__(self, n: int, shard: tuple[int, int]):
        self.indices = range(shard[0], n, shard[1])

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
