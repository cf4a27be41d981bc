"""Nothing a user has is replaced, deleted or written through a link: fit into a folder holding
files, resume without a usable checkpoint, exports over existing files, and symbolic links for
checkpoints/ and exports/ inside a run directory (issue #9)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from hostile import cli, snapshot

import netwright as nw
from netwright.exporting import export, export_all
from netwright.models import build
from netwright.resume import load_bundle


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(120, 4, generator=g)
    return X, (X[:, 0] > X[:, 1]).long()


def _fit(run_dir, **kw):
    torch.manual_seed(0)
    options = dict(loss="cross_entropy", lr=0.05, epochs=2, batch_size=32, verbose=0,
                   run_dir=run_dir, seed=0)
    options.update(kw)
    return nw.fit(nn.Linear(4, 2), _data(), **options)


def _user_folder(folder: Path) -> Path:
    """A folder of a user's own things, including names netwright also uses."""
    (folder / "sub").mkdir(parents=True)
    (folder / "config.yaml").write_text("my_own: config\nlr: 3\n")
    (folder / "notes.txt").write_text("do not lose me\n")
    (folder / "sub" / "data.bin").write_bytes(os.urandom(64))
    (folder / ".keep.tmp").write_text("a user's file that looks like a temporary one\n")
    return folder


# -- nw.fit(run_dir=...) into a folder that already holds something ----------------------------

def test_fit_refuses_a_folder_holding_a_users_own_config_yaml(tmp_path):
    project = _user_folder(tmp_path / "project")
    before = snapshot(project)
    with pytest.raises(nw.ConfigError) as err:
        _fit(project)
    message = str(err.value)
    assert str(project) in message and "config.yaml" in message and "notes.txt" in message
    assert "overwrite=True" in message and "new run_dir" in message
    assert snapshot(project) == before


def test_fit_refuses_the_current_folder(tmp_path, monkeypatch):
    _user_folder(tmp_path)
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(nw.ConfigError, match="config.yaml"):
        _fit(".")
    assert snapshot(tmp_path) == before


def test_fit_into_an_existing_empty_folder_is_fine(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _fit(tmp_path / "empty")
    assert (tmp_path / "empty" / "weights.safetensors").is_file() and len(result.history) == 2


def test_overwrite_replaces_only_netwrights_files_and_the_old_checkpoints(tmp_path):
    run = tmp_path / "run"
    _fit(run, epochs=5)
    (run / "notes.txt").write_text("mine\n")
    (run / "checkpoints" / "mine.txt").write_text("also mine\n")
    keep = {k: v for k, v in snapshot(run).items() if k in ("notes.txt", "checkpoints/mine.txt")}
    old_config = (run / "config.yaml").read_text()
    with pytest.raises(nw.ConfigError, match="overwrite=True"):
        _fit(run, epochs=1, lr=0.1)
    _fit(run, epochs=1, lr=0.1, overwrite=True)
    after = snapshot(run)
    assert {k: after[k] for k in keep} == keep
    assert (run / "config.yaml").read_text() != old_config
    # The old run's 5-epoch checkpoints are gone: a later resume cannot pick them up.
    bundles = [p for p in (run / "checkpoints").iterdir() if p.is_dir()]
    assert {p.name for p in bundles} == {"last", "best"}
    for folder in bundles:
        state = load_bundle(folder).state
        assert state["epoch"] == 1 and state["config"]["lr"] == 0.1, folder.name


# -- resume without a usable checkpoint ----------------------------------------------------------

def test_resume_of_a_finished_run_without_checkpoints_refuses_and_keeps_its_files(tmp_path):
    run = tmp_path / "run"
    _fit(run)
    shutil.rmtree(run / "checkpoints")
    before = snapshot(run)
    with pytest.raises(nw.CheckpointError) as err:
        _fit(run, resume=True)
    message = str(err.value)
    assert str(run) in message and "no usable checkpoint" in message
    assert "weights.safetensors" in message and "metrics.csv" in message
    assert "without resume" in message
    assert snapshot(run) == before


def test_resume_with_only_damaged_checkpoints_refuses_and_says_why(tmp_path):
    run = tmp_path / "run"
    _fit(run)
    for bundle in (run / "checkpoints").iterdir():
        weights = bundle / "weights.safetensors"
        weights.write_bytes(weights.read_bytes()[:-5])
    before = snapshot(run)
    with pytest.raises(nw.CheckpointError, match=r"no usable checkpoint.*weights.safetensors.*corrupt"):
        _fit(run, resume=True)
    assert snapshot(run) == before


def test_nw_run_resume_without_a_checkpoint_keeps_model_json_and_results(tmp_path):
    cfg = {"model": {"zoo": "mlp", "hidden": [8]}, "data": {"source": "iris"},
           "loss": "cross_entropy", "metrics": ["accuracy"], "run_dir": str(tmp_path),
           "name": "iris", "train": {"epochs": 2}}
    first = nw.run(cfg, verbose=0)
    shutil.rmtree(first.run_dir / "checkpoints")
    before = snapshot(first.run_dir)
    assert {"model.json", "results.json", "config.yaml", "metrics.csv"} <= set(before)
    with pytest.raises(nw.CheckpointError, match="no usable checkpoint"):
        nw.run(cfg, verbose=0, resume=True)
    assert snapshot(first.run_dir) == before


def test_resume_compares_config_yaml_even_before_the_first_checkpoint(tmp_path):
    class Stop(nw.Callback):
        def on_batch_end(self, epoch, batch, loss):
            raise KeyboardInterrupt  # before any checkpoint is written

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _fit(run, callbacks=[Stop()])
    assert not (run / "checkpoints").exists() and (run / "config.yaml").is_file()
    before = snapshot(run)
    with pytest.raises(nw.ConfigError, match=r"config\.yaml.*changed: lr: 0.05 -> 0.2.*--force"):
        _fit(run, lr=0.2, resume=True)
    assert snapshot(run) == before
    result = _fit(run, resume=True)  # the same settings: nothing to lose, it starts over
    assert len(result.history) == 2 and (run / "weights.safetensors").is_file()


# -- symbolic links inside a run directory -------------------------------------------------------

def test_symlinked_checkpoints_folder_is_refused_and_its_target_untouched(tmp_path):
    run = tmp_path / "run"
    _fit(run)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "last.new").mkdir(parents=True)
    (elsewhere / "last.new" / "thesis.tex").write_text("years of work\n")
    (elsewhere / ".draft.tmp").write_text("a user's file\n")
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)
    for kw in ({"resume": True}, {"overwrite": True}):
        with pytest.raises(nw.CheckpointError) as err:
            _fit(run, **kw)
        assert str(run / "checkpoints") in str(err.value) and str(elsewhere) in str(err.value)
        assert "symbolic link" in str(err.value) and "Fix:" in str(err.value)
        assert snapshot(elsewhere) == before


def test_symlinked_bundle_folder_is_never_followed_or_deleted(tmp_path):
    run = tmp_path / "run"
    _fit(run)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "state.json").write_text('{"not": "a bundle"}')
    (mine / "keep.txt").write_text("keep\n")
    shutil.rmtree(run / "checkpoints" / "prev")
    (run / "checkpoints" / "prev").symlink_to(mine, target_is_directory=True)
    before = snapshot(mine)
    with pytest.raises(nw.CheckpointError, match=r"prev.*symbolic link"):
        _fit(run, resume=True, epochs=4)
    assert snapshot(mine) == before and (run / "checkpoints" / "prev").is_symlink()


def test_a_users_folder_named_like_an_unfinished_bundle_is_not_deleted(tmp_path):
    run = tmp_path / "run"
    _fit(run)
    stray = run / "checkpoints" / "last.new"
    stray.mkdir()
    (stray / "results.xlsx").write_bytes(b"a user's spreadsheet")
    result = _fit(run, resume=True)
    assert len(result.history) == 2
    assert (stray / "results.xlsx").read_bytes() == b"a user's spreadsheet"


# -- exports ---------------------------------------------------------------------------------------

def _small_model():
    torch.manual_seed(0)
    return build([{"linear": 3}], (4,))


def test_export_never_replaces_an_existing_file_unless_overwrite(tmp_path):
    precious = tmp_path / "precious.onnx"
    precious.write_bytes(b"the only copy of something else")
    with pytest.raises(nw.ExportError) as err:
        export(_small_model(), precious, verify=False)
    assert str(precious) in str(err.value) and "overwrite=True" in str(err.value)
    assert precious.read_bytes() == b"the only copy of something else"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.onnx"]  # no temporary left
    report = export(_small_model(), tmp_path / "m.ts", verify=False)
    assert report.path.is_file()
    ts_before = report.path.read_bytes()
    export(_small_model(), tmp_path / "m.ts", verify=False, overwrite=True)
    assert (tmp_path / "m.ts").is_file() and ts_before  # replaced in place, no error


def test_export_all_checks_every_target_before_writing_anything(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "verify.json").write_text('{"mine": true}')
    with pytest.raises(nw.ExportError) as err:
        export_all(_small_model(), folder, ["torchscript", "onnx"], verify=False)
    assert "verify.json" in str(err.value) and "--overwrite" in str(err.value)
    assert sorted(p.name for p in folder.iterdir()) == ["verify.json"]  # nothing half-written
    assert (folder / "verify.json").read_text() == '{"mine": true}'
    export_all(_small_model(), folder, ["torchscript"], verify=False, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["model.ts", "verify.json"]
    assert (folder / "verify.json").read_text() != '{"mine": true}'


def test_export_all_refuses_a_symlinked_exports_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    target = tmp_path / "shared"
    target.mkdir()
    (target / "model.ts").write_bytes(b"someone else's model")
    (run / "exports").symlink_to(target, target_is_directory=True)
    for overwrite in (False, True):
        with pytest.raises(nw.ExportError) as err:
            export_all(_small_model(), run / "exports", ["torchscript"], verify=False,
                       overwrite=overwrite)
        assert str(run / "exports") in str(err.value) and str(target) in str(err.value)
        assert sorted(p.name for p in target.iterdir()) == ["model.ts"]
        assert (target / "model.ts").read_bytes() == b"someone else's model"


def test_cli_export_refuses_existing_files_then_overwrites_with_the_flag(tmp_path):
    cfg = {"model": {"zoo": "mlp", "hidden": [8]}, "data": {"source": "iris"},
           "loss": "cross_entropy", "run_dir": str(tmp_path), "name": "iris",
           "train": {"epochs": 1}}
    run_dir = nw.run(cfg, verbose=0).run_dir
    exports = run_dir / "exports"
    exports.mkdir()
    (exports / "model.ts").write_bytes(b"an export a user keeps")
    res = cli("export", str(run_dir), "--format", "torchscript", cwd=tmp_path)
    assert res.returncode == 2 and "model.ts" in res.stderr and "--overwrite" in res.stderr
    assert (exports / "model.ts").read_bytes() == b"an export a user keeps"
    assert sorted(p.name for p in exports.iterdir()) == ["model.ts"]
    res = cli("export", str(run_dir), "--format", "torchscript", "--overwrite", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (exports / "model.ts").read_bytes() != b"an export a user keeps"
    assert (exports / "verify.json").is_file()


def test_best_checkpoint_callback_refuses_a_symlinked_checkpoints_folder(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    target = tmp_path / "target"
    (target / "best").mkdir(parents=True)
    (target / "best" / "weights.safetensors").write_bytes(b"a user's weights")
    (other / "checkpoints").symlink_to(target, target_is_directory=True)
    with pytest.raises(nw.CheckpointError, match=r"checkpoints.*symbolic link"):
        _fit(None, callbacks=[nw.BestCheckpoint(other)])
    assert (target / "best" / "weights.safetensors").read_bytes() == b"a user's weights"
