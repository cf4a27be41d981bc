"""Sharded (torch.distributed.checkpoint) checkpoints: DCP reads its .metadata with plain
pickle, so netwright reads it with DCP's own classes only, and checks every shard file against
the checksums its bundle recorded."""

from __future__ import annotations

import pickle

import pytest
import torch

from netwright.checkpoint.sharded import (SafeReader, check_digests, folder_digests,
                                          read_metadata_safely)
from netwright.errors import CheckpointError


def _dcp_folder(tmp_path):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(8, 3)).sum().backward()
    opt.step()
    msd, osd = get_state_dict(model, opt)
    folder = tmp_path / "shards"
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(folder), no_dist=True)
    return folder, model, opt


def test_a_real_dcp_checkpoint_reads_back_through_the_safe_reader(tmp_path):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    folder, model, opt = _dcp_folder(tmp_path)
    fresh = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.1)
    msd, osd = get_state_dict(fresh, fresh_opt)
    state = {"model": msd, "optim": osd}
    dcp.load(state, storage_reader=SafeReader(folder), no_dist=True)
    set_state_dict(fresh, fresh_opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    mine = opt.state_dict()["state"][0]
    theirs = fresh_opt.state_dict()["state"][0]
    assert torch.equal(mine["exp_avg"], theirs["exp_avg"]) and float(theirs["step"]) == 1.0


class _Payload:
    def __reduce__(self):
        return (open, ("/tmp/netwright-pwned-by-dcp-metadata", "w"))


def test_a_crafted_metadata_file_is_refused_before_anything_runs(tmp_path):
    import os

    folder, _, _ = _dcp_folder(tmp_path)
    target = "/tmp/netwright-pwned-by-dcp-metadata"
    if os.path.exists(target):
        os.remove(target)
    (folder / ".metadata").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(CheckpointError, match=r"asks to import (builtins|io).open"):
        read_metadata_safely(folder / ".metadata")
    assert not os.path.exists(target)
    (folder / ".metadata").write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match=r"cannot be read"):
        read_metadata_safely(folder / ".metadata")


def test_a_changed_or_missing_shard_file_is_named(tmp_path):
    folder, _, _ = _dcp_folder(tmp_path)
    recorded = folder_digests(folder)
    assert set(recorded) == {".metadata", "__0_0.distcp"}
    check_digests(folder, recorded)  # as written: accepted
    data = folder / "__0_0.distcp"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"__0_0.distcp' is changed or damaged"):
        check_digests(folder, recorded)
    data.unlink()
    with pytest.raises(CheckpointError, match=r"__0_0.distcp' is missing"):
        check_digests(folder, recorded)
    with pytest.raises(CheckpointError, match=r"record of the shard folder .* is corrupt"):
        check_digests(folder, {"../../etc/passwd": {"sha256": "x", "bytes": 1}})
