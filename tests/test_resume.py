"""Exact resume: interrupted runs continue bitwise where they stopped, also after a SIGKILL at
a batch, inside a bundle's write or between the renames of a rotation; damaged checkpoints are
skipped with a message; a changed configuration is refused.

The model has dropout and the batches are shuffled, so a resume that did not restore the RNG
states would train on other masks and another order, and end with other weights."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import netwright as nw
from netwright.checkpoint import load_weights_file
from netwright.resume import load_bundle


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(300, 8, generator=g)
    return X, (X[:, 0] + X[:, 1] > X[:, 2] + 0.5).long()


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))


def _fit(run_dir, model=None, **kw):
    X, y = _data()
    options = dict(loss="cross_entropy", lr=0.01, epochs=6, batch_size=32, val=0.2,
                   metrics=["accuracy"], run_dir=run_dir, verbose=0, early_stopping=50,
                   scheduler={"name": "step", "step_size": 2, "gamma": 0.5}, seed=3)
    options.update(kw)
    return nw.fit(model or _model(), (X, y), **options)


class Interrupt(nw.Callback):
    """Raises KeyboardInterrupt, like a user pressing Ctrl-C: right after batch ``batch`` of
    epoch ``epoch`` was trained, or (batch=None) as epoch ``epoch`` starts, once the bundle of
    the end of the epoch before is written."""

    def __init__(self, epoch, batch=None):
        self.epoch, self.batch = epoch, batch

    def on_epoch_start(self, epoch):
        if self.batch is None and epoch == self.epoch:
            raise KeyboardInterrupt

    def on_batch_end(self, epoch, batch, loss):
        if self.batch is not None and (epoch, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt


class FirstBatch(nw.Callback):
    """Records the (epoch, batch) of the first batch a run trains: where a resume started."""

    def __init__(self):
        self.at = None

    def on_batch_end(self, epoch, batch, loss):
        if self.at is None:
            self.at = (epoch, batch)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every resumed one must equal, bit for bit (written without mid-epoch
    bundles: writing them must not change the training either)."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    _fit(run_dir)
    return run_dir


def _bundles(run_dir: Path) -> dict:
    """Where each bundle of the ``last`` rotation stands: (epoch, batch), or 'torn'."""
    out = {}
    for folder in sorted((run_dir / "checkpoints").iterdir()):
        if folder.name in ("last", "prev", "last.new"):
            try:
                out[folder.name] = load_bundle(folder).position
            except nw.CheckpointError:
                out[folder.name] = "torn"
    return out


def _same_run(a: Path, b: Path):
    wa, wb = load_weights_file(a / "weights.safetensors"), load_weights_file(b / "weights.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    la, lb = load_bundle(a / "checkpoints" / "last").state, load_bundle(b / "checkpoints" / "last").state
    assert la["history"] == lb["history"]
    oa, ob = la["optimizer"]["state"], lb["optimizer"]["state"]
    assert oa.keys() == ob.keys()
    for k in oa:
        for name in oa[k]:
            assert torch.equal(torch.as_tensor(oa[k][name]), torch.as_tensor(ob[k][name])), (k, name)


@pytest.mark.parametrize("where, resumed_at", [((3, None), (3, 0)), ((3, 4), (3, 4))],
                         ids=["after-epoch-3", "mid-epoch-4"])
def test_interrupted_run_resumes_bitwise(tmp_path, reference, where, resumed_at):
    """8 batches an epoch, a bundle every 2 (positions are 0-based (epoch, batch)): stopped once
    3 epochs are done, the newest bundle is the end-of-epoch one, (3, 0); stopped right after
    batch 4 of the 4th epoch, it is (3, 4), written after batch 3, so batch 4 runs again."""
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "cut", checkpoint_every=2, callbacks=[Interrupt(*where)])
    assert _bundles(tmp_path / "cut")["last"] == resumed_at
    first = FirstBatch()
    result = _fit(tmp_path / "cut", checkpoint_every=2, resume=True, callbacks=[first])
    assert first.at == resumed_at and len(result.history) == 6
    _same_run(reference, tmp_path / "cut")


def test_resume_of_a_finished_or_early_stopped_run_changes_nothing(tmp_path):
    first = _fit(tmp_path / "r", early_stopping=1, epochs=30, lr=2.0, optimizer="sgd")
    again = _fit(tmp_path / "r", early_stopping=1, epochs=30, lr=2.0, optimizer="sgd", resume=True)
    assert again.history == first.history and again.stop_reason == first.stop_reason


def test_changed_configuration_is_refused_naming_the_fields(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "r", callbacks=[Interrupt(1)])
    with pytest.raises(nw.ConfigError, match=r"changed: lr: 0.01 -> 0.02"):
        _fit(tmp_path / "r", lr=0.02, resume=True)
    result = _fit(tmp_path / "r", lr=0.02, resume=True, force=True)
    assert len(result.history) == 6


def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, reference):
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "r", callbacks=[Interrupt(3)])
    ckpt = tmp_path / "r" / "checkpoints"
    weights = ckpt / "last" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7])  # truncated
    (ckpt / ".state.json.123.tmp").write_text("{")   # a stray temporary file from a crash
    intact = [load_bundle(ckpt / name).position for name in ("prev", "best", "best.prev")
              if (ckpt / name).is_dir()]
    assert (2, 0) in intact and max(intact) <= (3, 0)
    first = FirstBatch()
    with pytest.warns(UserWarning, match=r"skipping a damaged checkpoint.*last.*corrupt or incomplete"):
        result = _fit(tmp_path / "r", resume=True, callbacks=[first])
    assert len(result.history) == 6 and not list(ckpt.glob(".*.tmp"))
    assert first.at == max(intact)  # the newest intact bundle (best may hold epoch 3's end too)
    _same_run(reference, tmp_path / "r")


def test_bit_flip_in_a_state_file_is_detected(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "r", callbacks=[Interrupt(2)])
    state = tmp_path / "r" / "checkpoints" / "last" / "state.safetensors"
    data = bytearray(state.read_bytes())
    data[-3] ^= 0x10
    state.write_bytes(bytes(data))
    with pytest.raises(nw.CheckpointError, match=r"state.safetensors"):
        load_bundle(state.parent)


# Trains the run of _fit with a bundle every 2 batches and kills itself with SIGKILL (no
# cleanup, no finally) at a fixed point:
#   batch E,B   right after batch B of epoch E was trained;
#   rename N    in the N-th rotation of checkpoints/last (one per bundle), between its two renames:
#               last is already prev, last.new (complete) not yet last;
#   manifest N  as the N-th bundle's manifest.json, written last, was to be renamed into place:
#               last.new is torn.
WORKER = r'''
import os, pathlib, signal, sys
import torch
tests, threads, run_dir, kind, where = sys.argv[1:]
sys.path.insert(0, tests)
torch.set_num_threads(int(threads))  # as in the test's process, which resumes the run
import netwright as nw
from test_resume import _fit

def die():
    os.kill(os.getpid(), signal.SIGKILL)

callbacks, calls = [], [0]
if kind == "batch":
    at = tuple(map(int, where.split(",")))

    class KillAt(nw.Callback):
        def on_batch_end(self, epoch, batch, loss):
            if (epoch, batch) == at:
                die()

    callbacks.append(KillAt())
elif kind == "rename":
    rename = pathlib.Path.rename

    def rename_or_die(self, target):
        if self.name == "last.new":
            calls[0] += 1
            if calls[0] == int(where):
                die()
        return rename(self, target)

    pathlib.Path.rename = rename_or_die
else:
    replace = os.replace

    def replace_or_die(src, dst, **kw):
        dst = pathlib.Path(dst)
        if (dst.parent.name, dst.name) == ("last.new", "manifest.json"):
            calls[0] += 1
            if calls[0] == int(where):
                die()
        return replace(src, dst, **kw)

    os.replace = replace_or_die
_fit(run_dir, checkpoint_every=2, callbacks=callbacks)
sys.exit("the run finished: the kill never happened")
'''


@pytest.mark.parametrize("kill, left, resumed_at", [
    (("batch", "2,5"), {"last": (2, 4), "prev": (2, 2)}, (2, 4)),
    # Bundles 1-4 are (0, 2), (0, 4), (0, 6) and the first epoch's end, (1, 0); the 7th is
    # (1, 6) and the 8th (2, 0), the second epoch's end.
    (("rename", "8"), {"last.new": (2, 0), "prev": (1, 6)}, (2, 0)),
    (("manifest", "7"), {"last": (1, 4), "last.new": "torn", "prev": (1, 2)}, (1, 4)),
], ids=["at-a-batch", "between-the-renames-of-a-rotation", "before-a-bundle-is-complete"])
def test_sigkill_at_a_fixed_point_then_resume_is_bitwise_equal(tmp_path, reference, kill, left,
                                                                resumed_at):
    run_dir = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", WORKER, str(Path(__file__).parent),
                           str(torch.get_num_threads()), str(run_dir), *kill],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert _bundles(run_dir) == left
    first = FirstBatch()
    result = _fit(run_dir, checkpoint_every=2, resume=True, callbacks=[first])
    assert first.at == resumed_at and len(result.history) == 6
    assert _bundles(run_dir) == {"last": (6, 0), "prev": (5, 6)}  # the rotation was finished
    _same_run(reference, run_dir)
