"""The layout docs/architecture.md describes is the code's: layers import only downward, no
source file is several modules in one, and no private name crosses a module boundary."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "netwright"

# Lowest first (docs/architecture.md). A module may import from its own layer and below.
LAYERS = {
    "util": 0, "errors": 0, "atomic": 0, "yamlfiles": 0,
    "config": 1, "dataconfig": 1,
    "models": 2, "data": 2, "losses": 2, "optim": 2, "metrics": 2,
    "diagnosis": 3,
    "checkpoint": 4, "saving": 4, "resume": 4,
    "training": 5,
    "exporting": 6, "reporting": 6,
    "runner": 7, "runs": 7, "tuning": 7, "sklearn": 7, "serving": 7, "__init__": 7,
    "cli": 8, "cli_datasets": 8, "cli_tune": 8, "cli_serve": 8, "__main__": 8,
}
# config checks names (loss, optimizer, scheduler, metric, data set) against the registries
# that live a layer up; it imports them inside the check, when a config is validated.
UPWARD_ALLOWED = {("config", "losses"), ("config", "metrics"), ("config", "optim"), ("config", "data")}
MAX_LINES = 650


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        yield path, path.relative_to(SRC)


def _imports(path: Path, rel: Path):
    """(line, target top-level module, imported names, at module level?) for relative imports."""
    tree = ast.parse(path.read_text())
    top_level = set(map(id, tree.body))
    package = list(rel.parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            parts = base + (node.module.split(".") if node.module else [])
            target = parts[0] if parts else node.names[0].name
            yield node.lineno, target, [a.name for a in node.names], id(node) in top_level, parts


def test_every_module_has_a_layer():
    tops = {rel.parts[0].removesuffix(".py") for _, rel in _modules()}
    assert tops <= set(LAYERS), f"add {sorted(tops - set(LAYERS))} to LAYERS and the architecture page"


def test_layers_import_only_downward():
    wrong = []
    for path, rel in _modules():
        me = rel.parts[0].removesuffix(".py")
        for line, target, _, at_top, _ in _imports(path, rel):
            if LAYERS.get(target, -1) > LAYERS[me]:
                if (me, target) in UPWARD_ALLOWED and not at_top:
                    continue
                wrong.append(f"{rel}:{line} ({me}, layer {LAYERS[me]}) imports {target} "
                             f"(layer {LAYERS[target]})")
    assert not wrong, "\n".join(wrong)


def test_no_source_file_is_several_modules():
    long = [f"{rel}: {len(path.read_text().splitlines())} lines" for path, rel in _modules()
            if len(path.read_text().splitlines()) > MAX_LINES]
    assert not long, "split along its sections: " + "; ".join(long)


def test_no_private_name_is_imported_from_another_module():
    crossing = []
    for path, rel in _modules():
        for line, _, names, _, parts in _imports(path, rel):
            source = ".".join(parts)
            own = ".".join(rel.with_suffix("").parts)
            if source == own:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                crossing.append(f"{rel}:{line} imports {private} from {source}")
    assert not crossing, "\n".join(crossing)


def test_the_architecture_page_names_every_package_and_module():
    page = (ROOT / "docs" / "architecture.md").read_text()
    for _, rel in _modules():
        if rel.name == "__init__.py" and len(rel.parts) == 1:
            continue
        name = "/".join(rel.parts[:-1]) + "/" if len(rel.parts) > 1 else rel.name
        assert f"`{name}`" in page or f"`{rel.as_posix()}`" in page, f"docs/architecture.md does not mention {name}"
