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


def test_every_public_name_resolves_to_the_object_its_module_defines():
    import importlib

    import netwright as nw

    for name in nw.__all__:
        if name == "__version__":
            continue
        value = getattr(nw, name)
        assert value is getattr(importlib.import_module(nw._EXPORTS[name]), name), name
        assert callable(value), name  # functions and classes: the API has no bare constants


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
