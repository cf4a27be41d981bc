"""``nw.save(overwrite=True)`` replaces model.json and weights.safetensors as one unit: a crash at
any step leaves a loadable pair, old or new, never new weights with an old model.json."""

from __future__ import annotations

import os

import pytest
import torch

import netwright as nw
from netwright import saving


def models():
    torch.manual_seed(0)
    old = nw.build([{"linear": 3}], (4,))
    new = nw.build([{"linear": 5}, "relu", {"linear": 2}], (4,))  # another shape entirely
    return old, new


def same(a, b):
    x = torch.ones(2, 4)
    return a(x).shape == b(x).shape and torch.equal(a(x), b(x))


class Crash(Exception):
    pass


@pytest.mark.parametrize("step", ["weights", "model.json", "commit"])
def test_a_crash_before_the_commit_leaves_the_old_pair(tmp_path, monkeypatch, step):
    old, new = models()
    folder = nw.save(old, tmp_path / "m")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    real_replace = os.replace

    def crashing_replace(src, dst):
        name = os.path.basename(str(dst))
        if (step == "weights" and name == "weights.safetensors") or (
                step == "model.json" and name == "model.json") or (
                step == "commit" and name == saving.PENDING):
            raise Crash(step)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crashing_replace)
    with pytest.raises(Crash):
        nw.save(new, folder, overwrite=True)
    monkeypatch.setattr(os, "replace", real_replace)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no staging folder left
    with torch.no_grad():
        assert same(nw.load(folder), old)


@pytest.mark.parametrize("moved", [0, 1, 2])
def test_a_crash_after_the_commit_loads_the_new_pair(tmp_path, monkeypatch, moved):
    old, new = models()
    folder = nw.save(old, tmp_path / "m")
    real_finish = saving._finish_pending
    monkeypatch.setattr(saving, "_finish_pending", lambda f: None)  # die right after the commit
    nw.save(new, folder, overwrite=True)
    monkeypatch.setattr(saving, "_finish_pending", real_finish)
    pending = folder / saving.PENDING
    assert pending.is_dir()
    for name in saving.FILES[:moved]:  # part of the move into place had happened
        os.replace(pending / name, folder / name)
    with torch.no_grad():
        assert same(nw.load(folder), new)
    # the next save (or its refusal) finishes the committed one first
    with pytest.raises(nw.CheckpointError, match="already holds"):
        nw.save(old, folder)
    assert not pending.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "weights.safetensors"]
    with torch.no_grad():
        assert same(nw.load(folder), new)


def test_save_into_a_folder_with_other_files_keeps_them(tmp_path):
    old, new = models()
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    nw.save(old, folder)
    nw.save(new, folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"
    with torch.no_grad():
        assert same(nw.load(folder), new)


def test_save_refuses_to_write_through_a_symlink(tmp_path):
    old, _ = models()
    folder = tmp_path / "m"
    folder.mkdir()
    target = tmp_path / "elsewhere.bin"
    target.write_bytes(b"user data")
    (folder / "weights.safetensors").symlink_to(target)
    with pytest.raises(nw.CheckpointError, match="symbolic link"):
        nw.save(old, folder, overwrite=True)
    assert target.read_bytes() == b"user data"
