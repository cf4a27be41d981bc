"""scikit-learn's built-in data sets read from the files it ships, without importing it: the
arrays must be scikit-learn's own, byte for byte, and anything unexpected must fall back to
scikit-learn's loader rather than give other data."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from netwright.data import builtin
from netwright.data.builtin import BUILTIN, load_builtin

skd = pytest.importorskip("sklearn.datasets")
SKLEARN_SETS = [name for name, b in BUILTIN.items() if b.package == "scikit-learn"]


@pytest.mark.parametrize("name", SKLEARN_SETS)
def test_the_files_read_as_scikit_learn_reads_them(name):
    ours = builtin._read_sklearn_copy(name)
    assert ours is not None, "the shipped file is not the known one: update _SKLEARN_FILES"
    theirs = getattr(skd, f"load_{name}")(return_X_y=True)
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_builtin_sets_load_without_importing_scikit_learn():
    code = ("import sys\n"
            "from netwright.data.builtin import load_builtin\n"
            "shapes = [load_builtin(n)[0].shape for n in ('iris', 'wine', 'breast_cancer', 'digits', 'diabetes')]\n"
            "print(shapes, 'sklearn' in sys.modules, 'scipy' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("[(150, 4), (178, 13), (569, 30), (1797, 64), (442, 10)] "
                                  "False False"), out.stderr


def test_an_unknown_file_falls_back_to_scikit_learns_loader(monkeypatch):
    expected = load_builtin("wine")
    monkeypatch.setitem(builtin._SKLEARN_FILES, "wine_data.csv", "0" * 64)  # as if sklearn changed it
    assert builtin._read_sklearn_copy("wine") is None
    X, y = load_builtin("wine")
    assert np.array_equal(X, expected[0]) and np.array_equal(y, expected[1])
    assert "sklearn.datasets" in sys.modules


def test_a_set_is_read_once_per_process_and_callers_get_copies():
    X, y = load_builtin("wine")
    X[:] = 0  # a caller scaling its arrays in place
    again, y2 = load_builtin("wine")
    assert again.any() and np.array_equal(y, y2) and "wine" in builtin._LOADED


def test_scikit_learn_not_found_is_the_same_clear_error(monkeypatch):
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(builtin, "_LOADED", {})  # as in a process that has not read it yet
    assert builtin._read_sklearn_copy("iris") is None
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # `import sklearn.datasets` fails
    with pytest.raises(builtin.ConfigError, match=r"ships in the package 'scikit-learn', which is "
                                                  r"not installed\. Fix: pip install 'netwright\[datasets\]'"):
        load_builtin("iris")
