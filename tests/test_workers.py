"""DataLoader workers, observed from inside the dataset.

The dataset writes one line per item fetched (``torch.utils.data.get_worker_info()``'s worker id,
the process id, the index) into a per-process file, so the test sees which process loaded what.
A fit that drops ``num_workers`` (or ``persistent_workers``) on the way to the DataLoader trains
just the same; only these observations tell.
"""

import os
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.utils.data import Dataset, get_worker_info

import netwright as nw

N, BATCH = 48, 8  # 6 batches per epoch


class FetchLog(Dataset):
    """(x, y) items; every fetch is logged as 'tag worker_id pid index' to log_dir."""

    def __init__(self, log_dir: Path, n: int = N, tag: str = "train"):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, generator=g)
        self.y = (self.x[:, 0] > 0).long()
        self.log_dir, self.tag = str(log_dir), tag

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        info = get_worker_info()
        wid = "main" if info is None else str(info.id)
        pid = os.getpid()
        with open(os.path.join(self.log_dir, f"fetch-{pid}.log"), "a") as f:
            f.write(f"{self.tag} {wid} {pid} {int(i)}\n")
        return self.x[i], self.y[i]


def _fetches(log_dir: Path, tag: str = "train"):
    rows = []
    for path in sorted(log_dir.glob("fetch-*.log")):
        for line in path.read_text().splitlines():
            t, wid, pid, idx = line.split()
            if t == tag:
                rows.append((wid, int(pid), int(idx)))
    return rows


def _fit(ds, epochs=2, **options):
    torch.manual_seed(0)
    return nw.fit(nn.Linear(3, 2), ds, loss="cross_entropy", lr=0.05, epochs=epochs,
                  batch_size=BATCH, device="cpu", verbose=0, **options)


def test_two_workers_load_every_training_item(tmp_path):
    result = _fit(FetchLog(tmp_path), epochs=2, num_workers=2, pin_memory=False)
    assert len(result.history) == 2
    rows = _fetches(tmp_path)
    in_workers = [r for r in rows if r[0] != "main"]
    assert {wid for wid, _, _ in in_workers} == {"0", "1"}
    assert all(pid != os.getpid() for _, pid, _ in in_workers)
    # Every item of every epoch came from a worker, each exactly once per epoch; the main
    # process fetched only the first batch (read for the pre-flight checks, not trained on).
    assert Counter(idx for _, _, idx in in_workers) == {i: 2 for i in range(N)}
    assert {idx for wid, _, idx in rows if wid == "main"} <= set(range(BATCH))
    # Batches are dealt round-robin: each of the two workers loaded half of them.
    per_worker = Counter(wid for wid, _, _ in in_workers)
    assert per_worker["0"] == per_worker["1"] == N


def test_no_workers_loads_everything_in_the_main_process(tmp_path):
    _fit(FetchLog(tmp_path), epochs=2, num_workers=0)
    rows = _fetches(tmp_path)
    assert rows and {wid for wid, _, _ in rows} == {"main"}
    assert {pid for _, pid, _ in rows} == {os.getpid()}
    counts = Counter(idx for _, _, idx in rows)
    assert set(counts) == set(range(N)) and min(counts.values()) >= 2


@pytest.mark.parametrize("persistent, processes", [(True, 2), (False, 6)])
def test_persistent_workers_survive_epochs(tmp_path, persistent, processes):
    _fit(FetchLog(tmp_path), epochs=3, num_workers=2, persistent_workers=persistent,
         pin_memory=False)
    pids = {pid for wid, pid, _ in _fetches(tmp_path) if wid != "main"}
    # Persistent: the same two worker processes for all 3 epochs; otherwise 2 new ones each epoch.
    assert len(pids) == processes


def test_validation_dataset_is_loaded_by_workers_too(tmp_path):
    val = FetchLog(tmp_path, n=20, tag="val")
    result = _fit(FetchLog(tmp_path), epochs=1, val=val, num_workers=2, pin_memory=False,
                  eval_batch_size=8, metrics=["accuracy"])
    assert "val_accuracy" in result.history[0]
    rows = _fetches(tmp_path, "val")
    assert {wid for wid, _, _ in rows} == {"0", "1"}  # 3 val batches: both workers load some
    assert Counter(idx for _, _, idx in rows) == {i: 1 for i in range(20)}


def test_num_workers_must_be_a_non_negative_integer(tmp_path):
    with pytest.raises(nw.ConfigError, match="num_workers: expected an integer >= 0, received -1"):
        _fit(FetchLog(tmp_path), epochs=1, num_workers=-1)
