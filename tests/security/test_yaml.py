"""Config and model files from others: alias bombs, deep nesting, broken JSON and names that
escape the run folder all end in an error naming the file, without a traceback, in bounded
memory; and written files are readable by colleagues (they honour the umask)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from hostile import baseline_mb, cli, peak_mb, python, snapshot, tiny_weights, write_model_json

import netwright as nw
from netwright.atomic import atomic_write_text
from netwright.config import load_config, parse_yaml
from netwright.errors import CheckpointError, ConfigError

# "Billion laughs": 9 levels of 9 aliases, 386 bytes, expands to 9**9 (387 million) strings.
LAUGHS = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n" + "".join(
    f"{b}: &{b} [*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a}]\n"
    for a, b in zip("abcdefgh", "bcdefghi")) + "model: *i\n"

MINIMAL = {"model": {"zoo": "mlp", "hidden": [8]}, "data": {"source": "iris"},
           "loss": "cross_entropy", "train": {"epochs": 1}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return nw.run({**MINIMAL, "run_dir": str(root), "name": "r"}, verbose=0).run_dir


def test_alias_bomb_in_a_runs_config_is_refused_in_bounded_memory(tmp_path, trained):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "config.yaml").write_text(LAUGHS)
    assert len(LAUGHS) < 400
    before = snapshot(tmp_path)
    res = python("""
        import netwright as nw
        try:
            nw.open_run('run')
        except nw.NetwrightError as exc:
            print('REFUSED', type(exc).__name__, exc)
    """, cwd=tmp_path, timeout=120)
    assert "REFUSED ConfigError" in res.stdout, res.stdout + res.stderr[-2000:]
    assert "config.yaml" in res.stdout and "aliases" in res.stdout and "line 2" in res.stdout
    assert peak_mb(res) < baseline_mb(tmp_path) + 100
    out = cli("evaluate", str(run), cwd=tmp_path)
    assert out.returncode == 2 and "aliases" in out.stderr and "Traceback" not in out.stderr
    assert snapshot(tmp_path) == before


def test_alias_bomb_in_predict_onnx_path_is_refused(tmp_path, trained):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "exports").mkdir(exist_ok=True)
    (run / "exports" / "model.onnx").write_bytes(b"not used")
    (run / "config.yaml").write_text(LAUGHS)
    (tmp_path / "x.npy").write_bytes(b"")
    out = cli("predict", str(run), str(tmp_path / "x.npy"), "--onnx", cwd=tmp_path)
    assert out.returncode == 2 and "aliases" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("text, words", [
    ("a: " + "[" * 5000 + "]" * 5000, "nested"),
    ("a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)), "nested more than 64"),
    ("a: [1, 2\n", "not valid YAML"),
])
def test_deep_or_broken_yaml_is_an_error_naming_the_file(tmp_path, text, words):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert words in str(info.value) and str(path) in str(info.value)


def test_plain_anchors_without_aliases_still_parse():
    assert parse_yaml("a: &x 1\nb: 2") == {"a": 1, "b": 2}


def test_error_messages_quote_huge_values_briefly(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({**MINIMAL, "train": {"epochs": ["x" * 100] * 20_000}}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "train.epochs" in str(info.value)
    assert len(str(info.value)) < 2_000


@pytest.mark.parametrize("content, words", [
    ("{not json", "is not valid JSON"),
    (json.dumps({"format": "netwright.model/1"}), 'expected "model"'),
    (json.dumps([1, 2]), "expected a JSON object"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (json.dumps({"format": "netwright.model/1", "model": {"spec": ["relu"]},
                 "scaled": {"x_shape": [-1]}}), "scaled.x_shape"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_broken_model_json_is_an_error_naming_the_file(tmp_path, content, words):
    tiny_weights(tmp_path)
    path = tmp_path / "model.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CheckpointError) as info:
        nw.load(tmp_path)
    assert words in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("name", ["../../escape_run", "/abs/run", "a/b", "..", " run", "a\\b"])
def test_run_names_stay_inside_run_dir(tmp_path, name):
    with pytest.raises(ConfigError, match="name: expected a plain folder name"):
        nw.run({**MINIMAL, "run_dir": str(tmp_path / "runs"), "name": name}, verbose=0)
    assert not any(tmp_path.rglob("*"))


def test_written_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        nw.save(nw.build([{"linear": 2}], (3,)), tmp_path / "m")
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "a.txt") == 0o644
    assert mode(tmp_path / "m" / "model.json") == 0o644
    assert mode(tmp_path / "m" / "weights.safetensors") == 0o644
    assert mode(tmp_path / "private.txt") == 0o600
    os.chmod(tmp_path / "a.txt", 0o640)
    atomic_write_text(tmp_path / "a.txt", "y")  # a replaced file keeps its mode
    assert mode(tmp_path / "a.txt") == 0o640


def test_model_json_over_the_size_limit_is_refused(tmp_path):
    tiny_weights(tmp_path)
    write_model_json(tmp_path, ["relu"], extra={"pad": "x" * (65 * 2**20)})
    with pytest.raises(CheckpointError, match="bytes; netwright's model.json files are far smaller"):
        nw.load(tmp_path)
