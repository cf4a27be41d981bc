"""Runs from configs: data in configs, splits, standardisation, the run directory, reloading."""

import json

import numpy as np
import pytest
import torch

import netwright as nw
from netwright.config import load_config
from netwright.data.prepare import prepare_data
from netwright.runner import open_run, run


def _cfg(tmp_path, **over):
    cfg = {"model": {"zoo": "mlp", "hidden": [32]}, "data": {"source": "iris"},
           "loss": "cross_entropy", "metrics": ["accuracy"], "run_dir": str(tmp_path),
           "train": {"epochs": 3}}
    cfg.update(over)
    return cfg


def test_run_writes_the_run_directory_and_reloads_identically(tmp_path):
    result = run(_cfg(tmp_path), verbose=0)
    names = sorted(p.name for p in result.run_dir.iterdir())
    assert names == ["checkpoints", "config.yaml", "metrics.csv", "model.json", "report.html",
                     "results.json", "weights.safetensors"]
    loaded = open_run(result.run_dir)
    X, y = result.data.split("test")
    torch.testing.assert_close(nw.predict(loaded.model, X), nw.predict(result.model, X), rtol=0, atol=0)
    assert loaded.evaluate(X, y)["accuracy"] == pytest.approx(result.scores["test"]["accuracy"])
    saved = json.loads((result.run_dir / "results.json").read_text())
    assert saved["sizes"] == {"train": 105, "val": 15, "test": 30}
    second = run(_cfg(tmp_path), verbose=0)
    assert second.run_dir.name == "run-2"  # the first run is never reused


def test_splits_are_stratified_seeded_and_disjoint():
    cfg = load_config({"model": {"zoo": "mlp"}, "data": {"source": "wine", "seed": 3}, "loss": "cross_entropy"})
    a, b = prepare_data(cfg.data, "multiclass"), prepare_data(cfg.data, "multiclass")
    assert all(np.array_equal(x, y) for x, y in zip(a.test, b.test))
    rows = {tuple(r) for part in (a.train, a.val, a.test) for r in part[0]}
    assert len(rows) == 178  # every sample in exactly one split
    full = np.bincount(np.concatenate([a.train[1], a.val[1], a.test[1]]))
    test_share = np.bincount(a.test[1], minlength=3) / full
    assert np.all(np.abs(test_share - 0.2) < 0.05)


def test_standardisation_is_fitted_on_the_training_split_only():
    cfg = load_config({"model": {"zoo": "mlp"}, "data": {"source": "diabetes"}, "loss": "mse"})
    data = prepare_data(cfg.data, "regression")
    np.testing.assert_allclose(data.x_stats[0], data.train[0].mean(axis=0), rtol=1e-5)
    assert not np.allclose(data.x_stats[0], np.concatenate([data.train[0], data.test[0]]).mean(axis=0))
    assert data.y_stats is not None and data.train[1].shape[1] == 1


def test_regression_model_outputs_original_units(tmp_path):
    result = run(_cfg(tmp_path, data={"source": "diabetes"}, loss="mse", metrics=["r2", "rmse"],
                      train={"epochs": 40}, optimizer={"name": "adamw", "lr": 0.003}), verbose=0)
    preds = nw.predict(result.model, result.data.test[0])
    assert 50 < float(preds.mean()) < 250  # diabetes targets are 25..346, not standardised units
    assert result.scores["test"]["r2"] > 0.3


def test_csv_and_npz_sources_with_string_labels(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    label = np.where(X[:, 0] > 0, "yes", "no")
    df = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": label})
    df.to_csv(tmp_path / "d.csv", index=False)
    result = run(_cfg(tmp_path, data={"source": str(tmp_path / "d.csv"), "target": "label"},
                      train={"epochs": 30}), verbose=0)
    assert result.data.classes == ["no", "yes"] and result.scores["test"]["accuracy"] > 0.8
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(np.int64))
    result = run(_cfg(tmp_path, data={"source": str(tmp_path / "d.npz")}), verbose=0)
    assert result.data.input_shape == (3,)


def test_data_errors_name_the_column_and_write_nothing(tmp_path):
    pd = pytest.importorskip("pandas")
    pd.DataFrame({"a": [1.0, 2.0] * 10, "color": ["r", "g"] * 10, "y": [0, 1] * 10}).to_csv(
        tmp_path / "d.csv", index=False)
    out = tmp_path / "runs"
    with pytest.raises(nw.DataError, match=r"has no target column 'label'; its columns are \['a', 'color', 'y'\]"):
        run(_cfg(out, data={"source": str(tmp_path / "d.csv"), "target": "label"}), verbose=0)
    with pytest.raises(nw.DataError, match=r"\['color'\] are not"):
        run(_cfg(out, data={"source": str(tmp_path / "d.csv"), "target": "y"}), verbose=0)
    with pytest.raises(nw.ModelSpecError, match="Did you mean 'linear'"):
        run(_cfg(out, model=[{"linera": 8}]), verbose=0)
    with pytest.raises(nw.ModelSpecError):
        run(_cfg(out, model=[{"conv2d": {"out_channels": 4, "kernel_size": 3}}]), verbose=0)
    assert not out.exists()


def test_model_spec_with_all_four_containers_trains_and_round_trips(tmp_path):
    spec = [{"linear": 32}, "relu",
            {"repeat": {"times": 2, "block": {"fc": {"linear": 32}, "act": "relu"}}},
            {"branches": {"wide": {"linear": 8}, "deep": [{"linear": 8}, "tanh"]}},
            {"linear": 3}]
    result = run(_cfg(tmp_path, model=spec, train={"epochs": 20}), verbose=0)
    net = result.model.net
    kinds = {type(m).__name__ for m in net.modules()}
    assert isinstance(net, torch.nn.Sequential)
    assert any(isinstance(m, torch.nn.ModuleList) for m in net.modules())
    assert any(isinstance(m, torch.nn.ModuleDict) for m in net.modules())
    assert "Linear" in kinds and hasattr(net[2][0], "fc")
    loaded = open_run(result.run_dir)
    X = result.data.test[0]
    assert torch.equal(nw.predict(loaded.model, X), nw.predict(result.model, X))
    assert result.scores["test"]["accuracy"] > 0.7


def test_sunspots_lstm_beats_the_naive_forecast(tmp_path):
    result = run("examples/sunspots_lstm.yaml", [f"run_dir={tmp_path}"], verbose=0)
    X, y = result.data.test
    naive_rmse = float(np.sqrt(((X[:, -1, 0] - y[:, 0]) ** 2).mean()))
    naive_mae = float(np.abs(X[:, -1, 0] - y[:, 0]).mean())
    print(f"sunspots test: LSTM {result.scores['test']}, naive rmse {naive_rmse:.2f} mae {naive_mae:.2f}")
    assert result.scores["test"]["rmse"] < naive_rmse
    assert result.scores["test"]["mae"] < naive_mae


def test_export_section_of_a_config_writes_verified_exports(tmp_path):
    result = run(_cfg(tmp_path, export={"formats": ["onnx", "pt2"]}, train={"epochs": 1}), verbose=0)
    exports = result.run_dir / "exports"
    assert sorted(p.name for p in exports.iterdir()) == ["model.onnx", "model.pt2", "verify.json"]
    verify = json.loads((exports / "verify.json").read_text())
    assert verify  # one report per format, each verified in a fresh process
    saved = json.loads((result.run_dir / "results.json").read_text())
    assert set(saved["exports"]) == {"onnx", "pt2"}
