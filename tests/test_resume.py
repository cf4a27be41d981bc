"""Exact resume: interrupted runs continue bitwise where they stopped; damaged checkpoints are
skipped with a message; a changed configuration is refused."""

import json
import random
import subprocess
import sys
import time
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
    """Raises KeyboardInterrupt at a given (epoch, batch), like a user pressing Ctrl-C."""

    def __init__(self, epoch, batch=None):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, epoch, batch, loss):
        if self.batch is not None and (epoch, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs, model):
        if self.batch is None and epoch == self.epoch:
            raise KeyboardInterrupt


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


@pytest.mark.parametrize("where", [(2, None), (3, 4)], ids=["after-epoch-3", "mid-epoch-4"])
def test_interrupted_run_resumes_bitwise(tmp_path, where):
    _fit(tmp_path / "ref", checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "cut", checkpoint_every=2, callbacks=[Interrupt(*where)])
    result = _fit(tmp_path / "cut", checkpoint_every=2, resume=True)
    assert len(result.history) == 6
    _same_run(tmp_path / "ref", tmp_path / "cut")


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


def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "r", callbacks=[Interrupt(3)])
    ckpt = tmp_path / "r" / "checkpoints"
    weights = ckpt / "last" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7])  # truncated
    (ckpt / ".state.json.123.tmp").write_text("{")   # a stray temporary file from a crash
    with pytest.warns(UserWarning, match=r"skipping a damaged checkpoint.*last.*corrupt or incomplete"):
        result = _fit(tmp_path / "r", resume=True)
    assert len(result.history) == 6 and not list(ckpt.glob(".*.tmp"))
    _fit(tmp_path / "ref")
    _same_run(tmp_path / "ref", tmp_path / "r")  # resumed from epoch 3 instead of 4: same end


def test_bit_flip_in_a_state_file_is_detected(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "r", callbacks=[Interrupt(2)])
    state = tmp_path / "r" / "checkpoints" / "last" / "state.safetensors"
    data = bytearray(state.read_bytes())
    data[-3] ^= 0x10
    state.write_bytes(bytes(data))
    with pytest.raises(nw.CheckpointError, match=r"state.safetensors"):
        load_bundle(state.parent)


WORKER = r'''
import sys, torch, torch.nn as nn
sys.path.insert(0, {tests!r})
import netwright as nw
from test_resume import _fit

class Ready(nw.Callback):
    def on_fit_start(self, info):
        print("TRAINING", flush=True)

_fit(sys.argv[1], epochs=10, checkpoint_every=3, resume=True, callbacks=[Ready()])
print("DONE", flush=True)
'''


def test_sigkill_at_random_moments_then_resume_is_bitwise_equal(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(Path(__file__).parent)))
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, str(script), str(ref)], check=True, capture_output=True, timeout=120)
    rng = random.Random(1234)
    kills = 0
    for trial in range(3):
        run_dir = tmp_path / f"killed{trial}"
        for attempt in range(12):
            proc = subprocess.Popen([sys.executable, str(script), str(run_dir)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            line = proc.stdout.readline()
            if attempt < 2 and line.startswith("TRAINING"):
                time.sleep(rng.uniform(0.0, 0.3))  # well inside the ~1 s of training
                proc.kill()  # SIGKILL: no cleanup, possibly in the middle of a checkpoint write
                proc.wait()
                kills += proc.returncode == -9
                continue
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-2000:]
            break
        _same_run(ref, run_dir)
    assert kills >= 3
