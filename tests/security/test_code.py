"""Opening a run directory never runs its code: each attack is a crafted folder, opened the way a
user would (Python from the parent folder, the command line), and each asserts that the payload's
marker file never appears and the error names the file and the opt-in."""

from __future__ import annotations

import json

import pytest
import torch
from hostile import cli, python, snapshot, tiny_weights, write_model_json

import netwright as nw
from netwright.errors import UntrustedCodeError
from netwright.models.builder import check_class_target

PAYLOAD = "import pathlib; pathlib.Path({marker!r}).write_text('pwned')\n"


def evil_run(tmp_path, target: str, payload_module: str | None = "payload"):
    """``tmp_path/evil_run``: a run folder that ships a payload module and names it in model.json."""
    run = tmp_path / "evil_run"
    write_model_json(run, {"class": target, "args": {}})
    tiny_weights(run)
    marker = tmp_path / "MARKER"
    if payload_module:
        (run / "__init__.py").write_text(PAYLOAD.format(marker=str(marker)))
        (run / f"{payload_module}.py").write_text(
            PAYLOAD.format(marker=str(marker)) + "import torch\nclass Net(torch.nn.Sequential):\n"
            "    def __init__(self):\n        super().__init__(torch.nn.Linear(4, 4))\n")
    return run, marker


def test_payload_next_to_the_run_is_not_imported_by_nw_load(tmp_path):
    run, marker = evil_run(tmp_path, "evil_run.payload:Net")
    before = snapshot(tmp_path)
    res = python("""
        import netwright as nw
        try:
            nw.load('evil_run')
        except nw.UntrustedCodeError as exc:
            print('REFUSED', exc)
    """, cwd=tmp_path)
    assert "REFUSED" in res.stdout, res.stderr
    assert not marker.exists()
    assert "model.json" in res.stdout and "evil_run.payload:Net" in res.stdout
    assert "trust_code=True" in res.stdout
    assert snapshot(tmp_path) == before


def test_the_same_folder_loads_with_an_explicit_opt_in(tmp_path):
    # The opt-in is real: with trust_code=True the class is imported (so the payload runs: that is
    # exactly what the user agreed to) and the model loads with its weights.
    run, marker = evil_run(tmp_path, "evil_run.payload:Net")
    res = python("""
        import netwright as nw
        m = nw.load('evil_run', trust_code=True)
        print('LOADED', type(m).__name__, float(m[0].weight.abs().sum()))
    """, cwd=tmp_path)
    assert "LOADED Net 0.0" in res.stdout, res.stderr
    assert marker.exists()


@pytest.mark.parametrize("target", [
    "venv.__main__:X",          # runs venv's main (and through it, an archive's executables)
    "this:X",                   # prints the Zen of Python on import
    "os:system",                # not a module class, and outside the allowlist
    "torch.nn._private:X",      # private module inside a trusted package
    "netwright.__main__:X",
    "torch.nn:Linear.__init__",  # dunder attribute
    "torch.nn:Lin ear",
])
def test_dangerous_or_untrusted_targets_are_refused_before_import(tmp_path, target):
    run, marker = evil_run(tmp_path, target, payload_module=None)
    res = python(f"""
        import sys, netwright as nw
        before = set(sys.modules)
        try:
            nw.load('evil_run')
        except nw.NetwrightError as exc:
            print('REFUSED', type(exc).__name__, exc)
        new = set(sys.modules) - before
        print('IMPORTED_THIS', 'this' in new, 'venv' in new, 'venv.__main__' in new)
    """, cwd=tmp_path)
    assert "REFUSED" in res.stdout, res.stdout + res.stderr
    assert "IMPORTED_THIS False False False" in res.stdout
    assert "Beautiful is better than ugly" not in res.stdout + res.stderr
    assert "model.json" in res.stdout


def test_private_and_main_are_refused_even_with_trust_code():
    for target in ("venv.__main__:X", "pkg._impl:Net", "torch.nn:__class__"):
        with pytest.raises(UntrustedCodeError, match="never imports"):
            check_class_target(target, trust_code=True)


@pytest.mark.parametrize("command", ["evaluate", "summary", "predict", "export", "serve",
                                     "serve-torch"])
def test_cli_commands_refuse_a_run_that_names_untrusted_code(tmp_path, command):
    # A complete run directory (config.yaml + model.json + weights) as `netwright train` makes it,
    # with model.json edited to name a module from the folder itself.
    res = nw.run({"model": {"zoo": "mlp", "hidden": [8]}, "data": {"source": "iris"},
                  "loss": "cross_entropy", "metrics": ["accuracy"], "run_dir": str(tmp_path / "runs"),
                  "name": "evil_run", "train": {"epochs": 1}}, verbose=0)
    run = res.run_dir
    marker = tmp_path / "MARKER"
    (run / "payload.py").write_text(PAYLOAD.format(marker=str(marker)))
    desc = json.loads((run / "model.json").read_text())
    desc["model"]["spec"] = {"class": "evil_run.payload:Net", "args": {}}
    (run / "model.json").write_text(json.dumps(desc))
    (tmp_path / "x.npy").write_bytes(b"")
    args = {"evaluate": ["evaluate", str(run)], "summary": ["summary", str(run)],
            "predict": ["predict", str(run), str(tmp_path / "x.npy")],
            "export": ["export", str(run), "--format", "onnx"],
            # serve: the run has no ONNX export, so it would export one (rebuilding the model)
            "serve": ["serve", str(run), "--port", "0"],
            "serve-torch": ["serve", str(run), "--runtime", "torch", "--port", "0"]}[command]
    before = snapshot(tmp_path)
    out = cli(*args, cwd=run.parent)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "UntrustedCodeError" in out.stderr and "--trust-code" in out.stderr
    assert str(run / "model.json") in out.stderr.replace("\n", "")
    assert not marker.exists()
    assert snapshot(tmp_path) == before


def test_a_folder_shadowing_a_trusted_package_is_refused(tmp_path):
    # An archive that unpacks a 'torchvision' folder next to the run: with the current folder on
    # sys.path, importing torchvision.models would run the archive's code instead.
    run, marker = evil_run(tmp_path, "torchvision.models:ResNet", payload_module=None)
    (tmp_path / "torchvision").mkdir()
    (tmp_path / "torchvision" / "__init__.py").write_text(PAYLOAD.format(marker=str(marker)))
    res = python("""
        import sys, netwright as nw
        assert 'torchvision' not in sys.modules
        try:
            nw.load('evil_run')
        except nw.UntrustedCodeError as exc:
            print('REFUSED', exc)
    """, cwd=tmp_path)
    assert "REFUSED" in res.stdout, res.stdout + res.stderr
    assert "shadows" in res.stdout
    assert not marker.exists()


def test_a_config_file_naming_untrusted_code_needs_trust_code(tmp_path):
    marker = tmp_path / "MARKER"
    (tmp_path / "mynet.py").write_text(PAYLOAD.format(marker=str(marker)) +
                                       "import torch\nclass Net(torch.nn.Linear):\n"
                                       "    def __init__(self):\n        super().__init__(4, 3)\n")
    (tmp_path / "cfg.yaml").write_text(
        "model: {class: 'mynet:Net'}\ndata: {source: iris}\nloss: cross_entropy\n"
        f"run_dir: {tmp_path / 'runs'}\ntrain: {{epochs: 1}}\n")
    res = python("""
        import netwright as nw
        try:
            nw.run('cfg.yaml', verbose=0)
        except nw.UntrustedCodeError as exc:
            print('REFUSED', exc)
        import os; print('RUNS', os.path.exists('runs'))
        r = nw.run('cfg.yaml', verbose=0, trust_code=True)
        print('TRAINED', type(r.model.net).__name__)
    """, cwd=tmp_path)
    assert "REFUSED config file 'cfg.yaml'" in res.stdout, res.stdout + res.stderr
    assert "RUNS False" in res.stdout  # refused before anything was written
    assert "TRAINED Net" in res.stdout, res.stderr


def test_a_users_own_class_round_trips_with_trust_code(tmp_path, monkeypatch):
    (tmp_path / "user_models.py").write_text(
        "import torch\nclass Two(torch.nn.Module):\n    def __init__(self, width=5):\n"
        "        super().__init__(); self.a = torch.nn.Linear(3, width)\n"
        "    def forward(self, x):\n        return self.a(x)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_models

    model = user_models.Two(width=6)
    folder = nw.save(model, tmp_path / "saved", init_args={"width": 6})
    with pytest.raises(UntrustedCodeError) as info:
        nw.load(folder)
    assert "user_models:Two" in str(info.value) and "model.json" in str(info.value)
    loaded = nw.load(folder, trust_code=True)
    assert torch.equal(loaded.a.weight, model.a.weight)


def test_trusted_packages_load_without_opt_in(tmp_path):
    write_model_json(tmp_path / "m", {"class": "torch.nn:Linear", "args": {"in_features": 3,
                                                                            "out_features": 2}})
    from safetensors.torch import save_file
    save_file({"weight": torch.ones(2, 3), "bias": torch.zeros(2)}, str(tmp_path / "m" / "weights.safetensors"))
    loaded = nw.load(tmp_path / "m")
    assert isinstance(loaded, torch.nn.Linear) and torch.equal(loaded.weight, torch.ones(2, 3))
