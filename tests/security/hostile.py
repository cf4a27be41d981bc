"""Helpers for the hostile-input tests: crafted run folders, snapshots of a user's files, and
a fresh Python process whose peak memory is measured (an attack must not be able to hide in
the test's own process, where torch is already imported and memory already taken)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "netwright"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (links not followed) with its bytes."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(folder))] = p.read_bytes()
    return out


def write_model_json(folder: Path, spec, *, input_shape=None, scaled=None, extra=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    desc = {"format": "netwright.model/1",
            "model": {"spec": spec, "input_shape": input_shape, "input_dtype": None},
            "scaled": scaled, **(extra or {})}
    (folder / "model.json").write_text(json.dumps(desc))
    return folder


def tiny_weights(folder: Path) -> Path:
    """A real, tiny (about 1 KB) safetensors file."""
    path = folder / "weights.safetensors"
    save_file({"0.weight": torch.zeros(4, 4), "0.bias": torch.zeros(4)}, str(path))
    return path


def python(code: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (``-c``: the current folder is first on sys.path, as in
    the REPL and notebooks) and print its peak memory last, as ``MAXRSS_MB=<n>``."""
    body = textwrap.dedent(code)
    wrapped = ("import resource, atexit\n"
               "atexit.register(lambda: print('MAXRSS_MB=%d' % (resource.getrusage("
               "resource.RUSAGE_SELF).ru_maxrss // 1024)))\n" + body)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-c", wrapped], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def peak_mb(result: subprocess.CompletedProcess) -> int:
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("MAXRSS_MB=")]
    assert lines, f"no memory line; stdout={result.stdout!r} stderr={result.stderr[-2000:]!r}"
    return int(lines[-1].split("=")[1])


def baseline_mb(cwd: Path) -> int:
    """Peak memory of a process that imports netwright and torch and loads nothing."""
    return peak_mb(python("import netwright as nw, torch, safetensors.torch", cwd))
