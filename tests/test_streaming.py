"""nw.stream: Parquet and .npy shards read as a stream — every row once per epoch across
processes and DataLoader workers, a new seeded order per epoch, exact resume by replay, and a
peak memory far below the data's size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import netwright as nw
from netwright.data.batches import make_batches
from netwright.data.sources import to_source


def _npy_shards(folder, shards=5, rows=37):
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(shards):  # column 0 is the row's global id, the last the target
        ids = np.arange(s * rows, (s + 1) * rows)
        np.save(folder / f"p{s}.npy", np.c_[ids, ids % 3].astype("float32"))
    return folder


def _ids(batches):
    return sorted(int(v) for x, _ in batches for v in x[:, 0])


@pytest.mark.parametrize("workers", [0, 2])
def test_every_row_once_per_epoch_across_ranks_and_workers(tmp_path, workers):
    folder = _npy_shards(tmp_path / "s")
    seen = []
    for rank in (0, 1):
        src = to_source(nw.stream(folder / "*.npy", target=-1, shuffle_buffer=16), arg="train")
        batches = make_batches(src, batch_size=8, shuffle=True, device=torch.device("cpu"),
                               generator=None, num_workers=workers, shard=(rank, 2))
        batches.set_epoch(1)
        seen += _ids(batches)
    assert sorted(seen) == list(range(5 * 37))


def test_the_order_is_the_seed_and_epoch_alone(tmp_path):
    folder = _npy_shards(tmp_path / "s")

    def order(epoch, seed=0):
        s = nw.stream(folder, target=-1, shuffle_buffer=16, seed=seed)
        s.set_batch_size(8)
        s.set_epoch(epoch)
        return [int(v) for x, _ in s for v in x[:, 0]]

    assert order(0) == order(0)  # a replayed epoch sees the same batches
    assert order(0) != order(1) and sorted(order(0)) == sorted(order(1)) == list(range(185))
    assert order(0) != order(0, seed=1)


def test_fit_on_parquet_shards_learns_and_a_wrong_column_is_named(tmp_path):
    rng = np.random.default_rng(0)
    for s in range(4):
        X = rng.normal(size=(500, 4)).astype("float32")
        df = pd.DataFrame(X, columns=list("abcd"))
        df["label"] = (X[:, 0] + X[:, 1] > 0).astype("int64")
        df.to_parquet(tmp_path / f"part{s}.parquet")
    train = nw.stream(tmp_path / "part[0-2].parquet", target="label", target_dtype="int64")
    val = nw.stream(tmp_path / "part3.parquet", target="label", target_dtype="int64", shuffle=False)
    torch.manual_seed(0)
    res = nw.fit(torch.nn.Linear(4, 2), train, val=val, loss="cross_entropy", metrics=["accuracy"],
                 epochs=5, batch_size=64, lr=0.05, verbose=0)
    assert res.history[-1]["val_accuracy"] > 0.95
    with pytest.raises(nw.DataError, match="no column 'lable'.*columns are"):
        nw.stream(tmp_path / "*.parquet", target="lable")


def test_a_stream_resumes_bitwise(tmp_path):
    """Interrupted in the middle of epoch 2 (a callback raises after batch 5), resumed: the final
    weights equal an uninterrupted run's; the resumed epoch replays its first batches."""
    folder = _npy_shards(tmp_path / "s", shards=4, rows=60)

    class Stop:
        def on_batch_end(self, epoch, i, loss):
            if epoch == 1 and i == 5:
                raise KeyboardInterrupt

    def run(name, **extra):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 3))
        data = nw.stream(folder, target=-1, shuffle_buffer=32, target_dtype="int64")
        return nw.fit(model, data, loss="cross_entropy", epochs=3, batch_size=16, verbose=0,
                      run_dir=tmp_path / name, checkpoint_every=3, seed=0, **extra).model

    whole = run("whole")
    with pytest.raises(KeyboardInterrupt):
        run("cut", callbacks=[Stop()])
    again = run("cut", resume=True)
    a, b = whole.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_rows_for_a_dataloader_of_your_own(tmp_path):
    folder = _npy_shards(tmp_path / "s", shards=2, rows=10)
    loader = DataLoader(nw.stream(folder, target=-1, shuffle=False), batch_size=4)
    assert _ids(loader) == list(range(20))


@pytest.mark.slow
def test_peak_memory_stays_far_below_the_data(tmp_path):
    """12 shards of 16,000 rows x 256 float32 columns (197 MB) against 3 of them (49 MB): one epoch
    over either has the same peak memory, because the stream holds a block and its shuffle buffer,
    never the set: four times the data, not a megabyte of it more."""
    from security.hostile import peak_mb, python

    rng = np.random.default_rng(0)
    (tmp_path / "big").mkdir()
    (tmp_path / "small").mkdir()
    for s in range(12):
        X = rng.normal(size=(16_000, 256)).astype("float32")
        shard = np.c_[X, (X[:, 0] > 0)].astype("float32")
        np.save(tmp_path / "big" / f"part{s:02d}.npy", shard)
        if s < 3:
            np.save(tmp_path / "small" / f"part{s:02d}.npy", shard)
    code = """
        import torch, netwright as nw
        data = nw.stream('.', target=-1, target_dtype='int64', shuffle_buffer=8192)
        res = nw.fit(torch.nn.Linear(256, 2), data, loss='cross_entropy', epochs=1, batch_size=1024,
                     verbose=0)
        print('ROWS', data.rows(), 'LOSS', res.history[-1]['train_loss'])
    """
    small = python(code, cwd=tmp_path / "small", timeout=300)
    big = python(code, cwd=tmp_path / "big", timeout=300)
    assert "ROWS 192000" in big.stdout, big.stdout + big.stderr[-3000:]
    assert "ROWS 48000" in small.stdout, small.stdout + small.stderr[-3000:]
    assert peak_mb(big) - peak_mb(small) < 20, (peak_mb(big), peak_mb(small))


def _parquet_split(folder, name, shards, rows, rng):
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        X = rng.normal(loc=3.0, scale=2.0, size=(rows, 4)).astype("float32")
        df = pd.DataFrame(X, columns=list("abcd"))
        df["label"] = ((X[:, 0] - 3) + (X[:, 1] - 3) > 0).astype("int64") + (X[:, 2] > 5)
        df["value"] = (X[:, 0] * 2 - X[:, 3]).astype("float32")
        df.to_parquet(folder / f"{name}{s}.parquet")


@pytest.mark.slow
def test_a_config_trains_on_streamed_shards(tmp_path):
    rng = np.random.default_rng(0)
    _parquet_split(tmp_path / "data", "train", 4, 800, rng)
    _parquet_split(tmp_path / "data", "val", 1, 400, rng)
    _parquet_split(tmp_path / "data", "test", 1, 400, rng)
    config = {"name": "s", "run_dir": str(tmp_path / "runs"), "model": {"zoo": "mlp", "hidden": [32]},
              "data": {"source": str(tmp_path / "data" / "train*.parquet"), "streaming": True,
                       "target": "label", "features": ["a", "b", "c", "d"],
                       "val_source": str(tmp_path / "data" / "val*.parquet"),
                       "test_source": str(tmp_path / "data" / "test*.parquet")},
              "loss": "cross_entropy", "metrics": ["accuracy"],
              "train": {"epochs": 20, "batch_size": 32}}
    res = nw.run(config, verbose=0)
    assert res.scores["test"]["accuracy"] > 0.9
    assert res.data.sizes == {"train": 3200, "val": 400, "test": 400}
    assert res.data.classes == [0, 1, 2] and res.data.input_shape == (4,)
    mean, std = res.data.x_stats  # fitted in one pass over the training shards
    assert mean == pytest.approx([3, 3, 3, 3], abs=0.15) and std == pytest.approx([2] * 4, abs=0.15)
    loaded = nw.load(res.run_dir)  # the standardisation travels with the model
    X = pd.read_parquet(tmp_path / "data" / "test0.parquet")
    pred = loaded(torch.tensor(X[list("abcd")].to_numpy())).argmax(1).numpy()
    assert (pred == X["label"].to_numpy()).mean() > 0.9
    regression = {**config, "name": "r", "loss": "mse", "metrics": ["r2"],
                  "data": {**config["data"], "target": "value"}}
    assert nw.run(regression, verbose=0).scores["test"]["r2"] > 0.9


def test_a_stream_refuses_split_fractions():
    with pytest.raises(nw.ConfigError, match="val_source"):
        nw.run({"model": {"zoo": "mlp"}, "loss": "cross_entropy",
                "data": {"source": "x/*.parquet", "streaming": True, "target": "y", "val": 0.1}},
               verbose=0)
