"""The run config schema: defaults, overrides, and every error reported at once with its path."""

import pytest

import netwright as nw
from netwright.config import apply_overrides, config_to_dict, load_config

BASE = {"model": {"zoo": "mlp"}, "data": {"source": "iris"}, "loss": "cross_entropy"}


def test_defaults_are_filled_in_and_resolved_config_round_trips():
    cfg = load_config(BASE)
    assert cfg.optimizer.name == "adam" and cfg.optimizer.lr == 1e-3
    assert cfg.train.epochs == 10 and cfg.data.test == 0.2 and cfg.data.standardize == "features"
    again = load_config(config_to_dict(cfg))
    assert again == cfg


def test_yaml_file_and_dotted_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: {zoo: mlp}\ndata: {source: iris}\nloss: cross_entropy\n")
    cfg = load_config(path, ["train.epochs=3", "optimizer.lr=0.01", "optimizer.momentum=0.9",
                             "data.val=0", "metrics=[accuracy, f1]"])
    assert cfg.train.epochs == 3 and cfg.optimizer.lr == 0.01 and cfg.data.val == 0
    assert cfg.optimizer.model_dump()["momentum"] == 0.9
    assert cfg.metrics == ["accuracy", "f1"]
    assert apply_overrides({"a": 1}, ["b.c=x"]) == {"a": 1, "b": {"c": "x"}}


def test_every_problem_is_reported_at_once_with_its_path():
    bad = {"model": {"zoo": "mlp"}, "data": {"source": "digts", "vall": 0.1}, "loss": "cros_entropy",
           "optimizer": {"name": "adma", "lr": "fast"}, "train": {"epochs": 0, "batchsize": 3},
           "metrics": ["accurcy"], "scheduler": "cosin"}
    with pytest.raises(nw.ConfigError) as e:
        load_config(bad)
    msg = str(e.value)
    for expected in [
        "data.vall: unknown key. Did you mean 'val'?",
        "optimizer.lr: expected a positive number, received 'fast'",
        "train.epochs: expected an integer >= 1, received 0",
        "train.batchsize: unknown key. Did you mean 'batch_size'?",
        "loss: unknown name 'cros_entropy'. Did you mean 'cross_entropy'?",
        "optimizer.name: unknown optimizer 'adma'. Did you mean 'adam'?",
        "metrics[0]: unknown metric 'accurcy'. Did you mean 'accuracy'?",
        "scheduler: unknown scheduler 'cosin'. Did you mean 'cosine'?",
        "data.source: unknown built-in data set 'digts'. Did you mean 'digits'?",
    ]:
        assert expected in msg, expected
    assert msg.startswith("config: 9 problem(s)")


def test_missing_sections_and_bad_files(tmp_path):
    with pytest.raises(nw.ConfigError, match=r"model: required, but missing"):
        load_config({"data": {"source": "iris"}, "loss": "mse"})
    with pytest.raises(nw.ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(nw.ConfigError, match="not valid YAML"):
        load_config(broken)
    with pytest.raises(nw.ConfigError, match=r"data: val \(0.5\) \+ test \(0.5\) leave nothing"):
        load_config({**BASE, "data": {"source": "iris", "val": 0.5, "test": 0.5}})
    with pytest.raises(nw.ConfigError, match=r"data.source: file 'missing.csv' does not exist"):
        load_config({**BASE, "data": {"source": "missing.csv", "target": "y"}})
    with pytest.raises(nw.ConfigError, match="override 'epochs': expected key=value"):
        load_config(BASE, ["epochs"])
