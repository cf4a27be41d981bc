"""Each rank's part of an epoch: disjoint, and together every sample once (no processes
needed: the shard is a rank and a count)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import netwright as nw
from netwright.data.batches import make_batches
from netwright.data.sources import to_source


def _seen(source, rank, ranks, *, shuffle, seed=0, epochs=1):
    batches = make_batches(source, batch_size=4, shuffle=shuffle, device=torch.device("cpu"),
                           generator=torch.Generator().manual_seed(seed), shard=(rank, ranks))
    out = []
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        out.append(torch.cat([x[:, 0] for x, _ in batches]).long().tolist())
    return out


@pytest.mark.parametrize("n", [40, 41, 3])
@pytest.mark.parametrize("shuffle", [True, False])
def test_in_memory_shards_cover_every_sample_once(n, shuffle):
    X = torch.arange(n, dtype=torch.float32)[:, None]
    src = to_source((X, torch.zeros(n, dtype=torch.long)), arg="train")
    parts = [_seen(src, r, 2, shuffle=shuffle)[0] for r in (0, 1)]
    assert sorted(parts[0] + parts[1]) == list(range(n))
    assert not set(parts[0]) & set(parts[1])


def test_in_memory_shards_reshuffle_every_epoch_the_same_way_on_every_rank():
    X = torch.arange(32, dtype=torch.float32)[:, None]
    src = to_source((X, torch.zeros(32, dtype=torch.long)), arg="train")
    r0, r1 = (_seen(src, r, 2, shuffle=True, epochs=2) for r in (0, 1))
    assert r0[0] != r0[1]  # a new order each epoch
    for e in range(2):
        assert sorted(r0[e] + r1[e]) == list(range(32))


def test_a_dataset_is_split_by_torchs_distributed_sampler_with_its_epoch_set():
    ds = TensorDataset(torch.arange(24, dtype=torch.float32)[:, None], torch.zeros(24, dtype=torch.long))
    src = to_source(ds, arg="train")
    r0, r1 = (_seen(src, r, 2, shuffle=True, epochs=2) for r in (0, 1))
    assert r0[0] != r0[1]  # set_epoch: a new shuffle per epoch
    for e in range(2):
        assert sorted(r0[e] + r1[e]) == list(range(24))


def test_an_evaluation_shard_of_a_dataset_is_not_padded():
    ds = TensorDataset(torch.arange(7, dtype=torch.float32)[:, None], torch.zeros(7, dtype=torch.long))
    parts = [_seen(to_source(ds, arg="val"), r, 2, shuffle=False)[0] for r in (0, 1)]
    assert sorted(parts[0] + parts[1]) == list(range(7))  # 4 + 3: no sample twice


def test_a_users_own_loader_without_a_distributed_sampler_is_refused():
    ds = TensorDataset(torch.rand(8, 2), torch.zeros(8, dtype=torch.long))
    with pytest.raises(nw.ConfigError, match="DistributedSampler"):
        make_batches(to_source(DataLoader(ds, batch_size=4), arg="train"), batch_size=4,
                     shuffle=True, device=torch.device("cpu"), generator=None, shard=(0, 2))


def test_strategy_ddp_in_a_lone_process_says_how_to_start_several(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(nw.ConfigError, match="--nproc 2"):
        nw.fit(torch.nn.Linear(2, 2), (torch.rand(8, 2), torch.zeros(8, dtype=torch.long)),
               loss="cross_entropy", strategy="ddp", epochs=1, verbose=0)


class _Trainer:
    def __init__(self, world):
        self.world = world


def _part(world, state):
    from netwright.training.bundles import BundleSaver

    saver = BundleSaver.__new__(BundleSaver)
    saver.t = _Trainer(world)
    return saver._this_ranks_part(state)


def test_a_bundle_gives_each_rank_its_own_streams_and_losses():
    from netwright.training.distributed import World

    state = {"world": 2, "batch": 5, "epoch": 2, "rng": "rank0's", "losses": "rank0's",
             "ranks": [{"rng": "r0", "losses": "l0"}, {"rng": "r1", "losses": "l1"}]}
    assert _part(World(1, 2), state)["rng"] == "r1" and _part(World(1, 2), state)["losses"] == "l1"
    assert _part(World(0, 2), state)["rng"] == "r0"


def test_another_world_size_resumes_only_from_an_epochs_end():
    from netwright.training.distributed import SINGLE

    with pytest.raises(nw.ConfigError, match=r"written by 2 process\(es\) in the middle of epoch 3.*--nproc 2"):
        _part(SINGLE, {"world": 2, "batch": 5, "epoch": 2, "ranks": [None, None]})
    with pytest.warns(UserWarning, match="continues from the end of epoch 3"):
        state = _part(SINGLE, {"world": 2, "batch": 0, "epoch": 3, "rng": "rank0's", "ranks": [None, None]})
    assert state["rng"] == "rank0's"
