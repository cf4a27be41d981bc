"""Resume bundles carry checksums of every file: a one-bit change anywhere (a weight, an
optimizer moment, Adam's betas in state.json, the manifest itself) is detected, the bundle is
skipped for the previous complete one, and with none left resume refuses (issue #9)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn as nn
from hostile import snapshot

import netwright as nw
from netwright.checkpoint import load_weights_file
from netwright.resume import BUNDLE_FORMAT, load_bundle


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(200, 6, generator=g)
    return X, (X[:, 0] + X[:, 1] > X[:, 2] + 0.5).long()


def _fit(run_dir, **kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    options = dict(loss="cross_entropy", optimizer="adam", lr=0.01, epochs=5, batch_size=32,
                   val=0.2, run_dir=run_dir, verbose=0, seed=1)
    options.update(kw)
    return nw.fit(model, _data(), **options)


class Interrupt(nw.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs, model):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _interrupted(run_dir, epoch=2):
    with pytest.raises(KeyboardInterrupt):
        _fit(run_dir, callbacks=[Interrupt(epoch)])
    return run_dir / "checkpoints"


def _same_weights(a, b):
    wa, wb = load_weights_file(a / "weights.safetensors"), load_weights_file(b / "weights.safetensors")
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_changed_adam_betas_in_state_json_are_detected_and_the_previous_bundle_used(tmp_path):
    ckpt = _interrupted(tmp_path / "cut")
    state = ckpt / "last" / "state.json"
    text = state.read_text()
    assert '"betas"' in text and "0.9," in text
    state.write_text(text.replace("0.9,", "0.8,", 1))  # valid JSON, a plausible value
    with pytest.raises(nw.CheckpointError) as err:
        load_bundle(ckpt / "last")
    assert str(state) in str(err.value) and "checksum" in str(err.value)
    with pytest.warns(UserWarning, match=r"skipping a damaged checkpoint.*last.*state\.json"):
        result = _fit(tmp_path / "cut", resume=True)
    assert len(result.history) == 5
    _fit(tmp_path / "ref")
    # Resumed from the previous bundle with the true betas: the same end as never interrupted.
    assert _same_weights(tmp_path / "ref", tmp_path / "cut")


@pytest.mark.parametrize("name", ["weights.safetensors", "state.safetensors", "state.json",
                                  "manifest.json"])
def test_one_flipped_bit_in_any_bundle_file_is_detected(tmp_path, name):
    ckpt = _interrupted(tmp_path / "r")
    path = ckpt / "last" / name
    data = bytearray(path.read_bytes())
    # A bit inside a value, not in whitespace: the middle of the file (tensor bytes, a JSON
    # number or checksum digit).
    at = len(data) // 2
    while chr(data[at]) in ' \n\t"{}[],:':
        at += 1
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(nw.CheckpointError) as err:
        load_bundle(ckpt / "last")
    assert str(path) in str(err.value)
    assert load_bundle(ckpt / "prev").position == (1, 0)  # the previous one is intact


def test_with_no_intact_bundle_left_resume_refuses_and_changes_nothing(tmp_path):
    ckpt = _interrupted(tmp_path / "r")
    for bundle in ckpt.iterdir():
        state = bundle / "state.json"
        state.write_text(state.read_text().replace('"epoch": ', '"epoch": 1', 1))
    before = snapshot(tmp_path / "r")
    with pytest.raises(nw.CheckpointError) as err:
        _fit(tmp_path / "r", resume=True)
    message = str(err.value)
    assert "no usable checkpoint" in message and "state.json" in message and "Fix:" in message
    assert snapshot(tmp_path / "r") == before


def test_a_bundle_of_the_older_format_is_refused_with_a_clear_message(tmp_path):
    ckpt = _interrupted(tmp_path / "r")
    for bundle in ckpt.iterdir():  # what netwright.bundle/1 wrote: no manifest
        (bundle / "manifest.json").unlink()
        meta = json.loads((bundle / "state.json").read_text())
        meta.update({"format": "netwright.bundle/1", "complete": True})
        (bundle / "state.json").write_text(json.dumps(meta))
    with pytest.raises(nw.CheckpointError) as err:
        load_bundle(ckpt / "last")
    assert "older format 'netwright.bundle/1'" in str(err.value) and BUNDLE_FORMAT in str(err.value)
    assert "without resume" in str(err.value)
    with pytest.raises(nw.CheckpointError, match=r"no usable checkpoint.*older format"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _fit(tmp_path / "r", resume=True)


def test_a_bundle_whose_manifest_was_never_written_is_incomplete(tmp_path):
    ckpt = _interrupted(tmp_path / "r")
    (ckpt / "last" / "manifest.json").unlink()  # killed after state.json, before the manifest
    with pytest.raises(nw.CheckpointError, match=r"incomplete: manifest\.json is missing"):
        load_bundle(ckpt / "last")
    with pytest.warns(UserWarning, match="manifest.json is missing"):
        result = _fit(tmp_path / "r", resume=True)
    assert len(result.history) == 5


def test_deeply_nested_state_json_with_a_matching_manifest_is_an_error_not_a_crash(tmp_path):
    import hashlib

    from netwright.resume import _manifest_digest

    ckpt = _interrupted(tmp_path / "r")
    bundle = ckpt / "last"
    raw = ('{"format": "%s", "state": ' % BUNDLE_FORMAT + "[" * 50_000 + "]" * 50_000 + "}").encode()
    (bundle / "state.json").write_bytes(raw)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["state.json"] = {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
    manifest["sha256"] = _manifest_digest(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(nw.CheckpointError, match=r"state\.json.*nested too deeply"):
        load_bundle(bundle)
