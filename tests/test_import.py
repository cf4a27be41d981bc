"""`import netwright` stays light: the heavy packages load on first use."""

import subprocess
import sys


def _modules_after(code: str) -> set:
    out = subprocess.run([sys.executable, "-c", code + "; import sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return set(out.split())


def test_import_netwright_loads_neither_torch_nor_torchmetrics():
    mods = _modules_after("import netwright")
    assert "torch" not in mods and "torchmetrics" not in mods and "pandas" not in mods


def test_training_api_does_not_load_torchmetrics_or_optional_packages():
    mods = _modules_after("import netwright as nw; nw.fit; nw.evaluate; nw.Trainer")
    assert "torch" in mods
    for heavy in ("torchmetrics", "sklearn", "pandas", "torchvision", "matplotlib", "rich.progress"):
        assert heavy not in mods, heavy


def test_public_names_resolve():
    import netwright as nw

    for name in nw.__all__:
        assert getattr(nw, name) is not None


def test_public_names_are_not_shadowed_by_submodules():
    # `import netwright.x` sets the attribute netwright.x to the module: no public function may
    # share a submodule's name, or it would turn into a module after that import.
    import importlib
    import pkgutil
    import types

    import netwright as nw

    for info in pkgutil.walk_packages(nw.__path__, "netwright."):
        importlib.import_module(info.name)
    for name in nw.__all__:
        assert not isinstance(getattr(nw, name), types.ModuleType), name
