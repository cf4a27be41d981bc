"""A tiny file must not make netwright allocate without bound: each model.json below is a few
hundred bytes next to a 1 KB weights file. Loading runs in a fresh process whose peak memory is
compared with that of a process that only imports netwright and torch."""

from __future__ import annotations

import json

import pytest
from hostile import baseline_mb, cli, peak_mb, python, snapshot, tiny_weights, write_model_json

import netwright as nw
from netwright.errors import CheckpointError, ModelSpecError

# 40 x Linear(8192, 8192): 2.7 billion values, 10.7 GB of float32, from 265 bytes.
BOMB = {"repeat": {"times": 40, "block": {"linear": 8192}}}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return baseline_mb(tmp_path_factory.mktemp("base"))


@pytest.mark.parametrize("case", ["repeat_bomb", "class_args_bomb", "scaled_bomb", "endless_repeat",
                                  "nested_repeat", "huge_input_shape"])
def test_tiny_model_json_cannot_exhaust_memory(tmp_path, base, case):
    run = tmp_path / "run"
    spec, shape, scaled = {
        "repeat_bomb": (BOMB, [8192], None),
        "class_args_bomb": ({"class": "torch.nn:Linear", "args": {"in_features": 10**6,
                                                                  "out_features": 10**6}}, None, None),
        "scaled_bomb": ([{"linear": 4}], [4], {"x_shape": [2**15, 2**15], "y_shape": None}),
        "endless_repeat": ({"repeat": {"times": 10**9, "block": "relu"}}, [4], None),
        "nested_repeat": ({"repeat": {"times": 1000, "block": {"repeat": {"times": 1000, "block": "relu"}}}},
                          [4], None),
        "huge_input_shape": ([{"linear": 4}], [10**12, 10**12], None),
    }[case]
    write_model_json(run, spec, input_shape=shape, scaled=scaled)
    tiny_weights(run)
    assert len((run / "model.json").read_bytes()) < 400
    before = snapshot(tmp_path)
    res = python("""
        import netwright as nw
        try:
            nw.load('run')
        except nw.NetwrightError as exc:
            print('REFUSED', type(exc).__name__, exc)
    """, cwd=tmp_path)
    assert "REFUSED" in res.stdout, res.stdout + res.stderr[-3000:]
    assert "model.json" in res.stdout
    assert "Traceback" not in res.stderr
    # Importing torch is the baseline; a real allocation of the model would be gigabytes.
    assert peak_mb(res) < base + 200, (peak_mb(res), base)
    assert snapshot(tmp_path) == before


def test_the_budget_names_both_files_and_the_sizes(tmp_path):
    write_model_json(tmp_path, BOMB, input_shape=[8192])
    tiny_weights(tmp_path)
    with pytest.raises(CheckpointError) as info:
        nw.load(tmp_path)
    msg = str(info.value)
    assert "2,684,682,240 values" in msg and "weights.safetensors holds 20" in msg
    assert "max_extra_values" in msg


def test_a_model_partly_new_loads_within_the_budget(tmp_path):
    # A model.json that grew a layer since its weights were saved: the budget allows new
    # parameters up to max_extra_values, and mode='partial' then loads what fits.
    write_model_json(tmp_path, [{"linear": 4}, {"linear": 4}], input_shape=[4])
    tiny_weights(tmp_path)
    model = nw.load(tmp_path, mode="partial")
    assert float(model[0].weight.detach().abs().sum()) == 0.0  # from the file
    with pytest.raises(CheckpointError, match="refuses to allocate"):
        nw.load(tmp_path, mode="partial", max_extra_values=10)


def test_repeat_and_module_counts_are_bounded_in_build_too():
    with pytest.raises(ModelSpecError, match="times must be an integer from 1 to 10,000"):
        nw.build({"repeat": {"times": 10**9, "block": "relu"}}, (4,))
    with pytest.raises(ModelSpecError, match="more than 10,000 modules"):
        nw.build({"repeat": {"times": 200, "block": {"repeat": {"times": 200, "block": "relu"}}}}, (4,))


def test_cli_evaluate_refuses_the_bomb_quickly_and_bounded(tmp_path, base):
    res = nw.run({"model": {"zoo": "mlp", "hidden": [8]}, "data": {"source": "iris"},
                  "loss": "cross_entropy", "run_dir": str(tmp_path / "runs"), "name": "r",
                  "train": {"epochs": 1}}, verbose=0)
    desc = json.loads((res.run_dir / "model.json").read_text())
    desc["model"].update(spec=BOMB, input_shape=[8192])
    (res.run_dir / "model.json").write_text(json.dumps(desc))
    before = snapshot(tmp_path)
    out = cli("evaluate", str(res.run_dir), cwd=tmp_path)
    assert out.returncode == 2 and "CheckpointError" in out.stderr and "refuses to allocate" in out.stderr
    assert snapshot(tmp_path) == before


def test_a_deeply_nested_spec_is_an_error_not_a_recursion_error(tmp_path):
    spec = "relu"
    for _ in range(400):  # JSON parses this fine; building it would overflow Python's stack
        spec = [spec]
    write_model_json(tmp_path, spec, input_shape=[4])
    tiny_weights(tmp_path)
    with pytest.raises(ModelSpecError, match="nested more than 100 levels") as info:
        nw.load(tmp_path)
    assert str(tmp_path / "model.json") in str(info.value)
