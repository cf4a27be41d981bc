"""A finished run read back (``nw.open_run``) and prediction with it (``nw.predict``).

A run directory may come from someone else: nothing in it is imported unless
``trust_code=True``. Prediction reads new data the way the run read its training data:
features in the training columns, image files decoded and resized alike, texts tokenized by
the run's own ``tokenizer.json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .atomic import read_json
from .config import RunConfig, load_config
from .data.prepare import Prepared, features_from_file, prepare_data, read_npy
from .errors import ConfigError, DataError
from .losses import resolve_loss
from .saving import load
from .training.inference import evaluate
from .training.inference import predict as predict_outputs

__all__ = ["LoadedRun", "open_run", "predict"]


@dataclass
class LoadedRun:
    """A finished run read back: its config, rebuilt model and model.json."""

    run_dir: Path
    config: RunConfig
    model: nn.Module
    meta: dict
    notes: list = field(default_factory=list)  # what the last read of new data stated

    @property
    def task(self) -> str:
        return self.meta.get("task", "regression")

    def data(self) -> Prepared:
        """The run's data, split exactly as in training (the config fixes the seeds)."""
        _, info = resolve_loss(self.config.loss)
        return prepare_data(self.config.data, info.task, info.name,
                            tokenizer=self.tokenizer() if self.text is not None else None)

    def evaluate_on(self, *, split: str | None = None, path: Any = None) -> tuple[dict, int]:
        """(scores, samples) on one of the run's own splits, or on a file: features with their
        target, or for an image run a folder of class folders (or a table like the training
        one) whose labels are the run's classes."""
        if path is not None:
            if self.text is not None:
                data = self.read_labelled_texts(path)
            elif self.audio is not None:
                data = self.read_audio(path, labelled=True)
            elif self.images is not None:
                data = self.read_labelled_images(path)
            else:
                X, y = self.read_features(path)
                if y is None:
                    raise ConfigError(f"--data {path}: the file has no target "
                                      f"({self.config.data.target!r}); evaluation needs one. Fix: "
                                      f"use `netwright predict` for features only.")
                data = (X, y)
        else:
            if split not in ("train", "val", "test"):
                raise ConfigError(f"--split: expected test, val or train; received {split!r}.")
            data = self.data().split(split)
        n = len(data[0]) if isinstance(data, tuple) else len(data)
        scores = evaluate(self.model, data, loss=self.config.loss,
                          metrics=list(self.config.metrics) or None)
        return scores, n

    def read_labelled_images(self, path: Any) -> Any:
        """Labelled image files (a folder of class folders, or a table with the training
        config's image and target columns) as a Dataset with the run's class ids."""
        from .data.images import ImageFiles, list_images

        cfg, info = self.config.data, self.images
        listed = list_images(path, image=cfg.image if Path(path).is_file() else None,
                             target=cfg.target if Path(path).is_file() else None,
                             image_size=list(info["size"]), channels=int(info["channels"]),
                             classes=self.meta.get("classes"))
        return ImageFiles(listed, binary=self.task == "binary")

    def evaluate(self, features: Any, targets: Any) -> dict:
        return evaluate(self.model, (features, targets), loss=self.config.loss,
                        metrics=list(self.config.metrics) or None)

    def read_features(self, path: str | os.PathLike) -> tuple[np.ndarray, Any]:
        """Features (and targets if the file has them) from a .csv/.parquet/.npz/.npy file, in
        the layout the model was trained on."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"input file {str(path)!r} does not exist.")
        cfg = self.config.data
        if path.suffix.lower() == ".npy":
            X, y = read_npy(path), None
        elif path.suffix.lower() in (".csv", ".parquet", ".npz"):
            X, y, _ = features_from_file(path, cfg.model_copy(update={"features": cfg.features or self.meta.get(
                "feature_names")}) if path.suffix.lower() != ".npz" else cfg, need_target=False)
        else:
            raise DataError(f"input file {str(path)!r}: expected .csv, .parquet, .npz or .npy.")
        shape = tuple(self.meta["model"].get("input_shape") or ())
        if shape and X.shape[1:] != shape:
            if int(np.prod(X.shape[1:])) == int(np.prod(shape)):
                X = X.reshape(len(X), *shape)
            else:
                raise DataError(
                    f"input file {str(path)!r}: each sample has shape {X.shape[1:]}, the model was "
                    f"trained on {shape}. Fix: give the same features as in training.")
        if y is not None and self.task in ("multiclass", "binary"):
            classes = self.meta.get("classes")
            lookup = {c: i for i, c in enumerate(classes)} if classes else None
            try:
                y = np.array([lookup[v] for v in y.tolist()] if lookup else y, dtype=np.int64)
            except KeyError as exc:
                raise DataError(f"input file {str(path)!r}: label {exc.args[0]!r} was not seen in "
                                f"training (classes: {classes}).") from None
            if self.task == "binary":
                y = y.astype(np.float32)[:, None]
        elif y is not None:
            y = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
        return X, y

    @property
    def images(self) -> dict | None:
        """``{"size": [h, w], "channels": c}`` for a model trained on image files, else None."""
        return self.meta.get("images")

    def read_images(self, files: Any) -> Any:
        """Image files (a file, a folder searched recursively, or a list of files) as a Dataset
        decoded like the training images; ``.path(i)`` names each."""
        from .data.images import ImageFiles, ImageList, check_images, files_from

        info = self.images
        if info is None:
            raise DataError(f"run {str(self.run_dir)!r} was not trained on image files; it "
                            f"predicts from features (.csv/.parquet/.npz/.npy).")
        paths = files_from(files)
        check_images(paths, skip_bad=False)
        listed = ImageList(paths, np.zeros(len(paths), dtype=np.int64), list(self.meta.get("classes") or []),
                           tuple(info["size"]), int(info["channels"]))
        return ImageFiles(listed)

    def predict_images(self, files: Any) -> tuple[list[str], list[list[Any]]]:
        """Rows ``path, label, p_<class>...`` for image files (see :meth:`read_images`), or
        for sound files in a run trained on sounds (see :meth:`read_audio`)."""
        data = self.read_audio(files) if self.audio is not None else self.read_images(files)
        header, rows = self.predict_table(data)
        return ["path"] + header, [[str(data.path(i))] + row for i, row in enumerate(rows)]

    @property
    def audio(self) -> dict | None:
        """``{"sample_rate": hz, "duration": s, "num_samples": n}`` for a model trained on
        sound files, else None."""
        return self.meta.get("audio")

    def read_audio(self, files: Any, *, labelled: bool = False) -> Any:
        """Sound files as a Dataset read like the evaluation clips of training (resampled, the
        centre cut or padded to the run's length). ``files``: a file, a folder searched
        recursively, or a list of files; ``labelled``: a folder of class folders or a table
        like the training one, whose labels are the run's classes. ``.path(i)`` names each."""
        from .data.audio import SOUNDS, AudioFiles, AudioList, check_audio, conversion_notes, list_audio
        from .data.files import files_from

        info = self.audio
        if info is None:
            raise DataError(f"run {str(self.run_dir)!r} was not trained on sound files.")
        rate, length = int(info["sample_rate"]), int(info["num_samples"])
        if labelled:
            cfg, is_file = self.config.data, Path(files).is_file()
            listed = list_audio(files, audio=(cfg.audio or "path") if is_file else None,
                                target=(cfg.target or "label") if is_file else None,
                                sample_rate=rate, duration=length / rate,
                                classes=self.meta.get("classes"))
            self.notes = list(listed.notes)
            return AudioFiles(listed, binary=self.task == "binary")
        paths = files_from(files, SOUNDS)
        _, infos, _ = check_audio(paths, skip_bad=False)
        listed = AudioList(paths, np.zeros(len(paths), dtype=np.int64),
                           list(self.meta.get("classes") or []), rate, length)
        self.notes = conversion_notes(infos, rate, length)
        return AudioFiles(listed)

    @property
    def text(self) -> dict | None:
        """``{"tokenizer": {...}, "vocab_size": n, "max_length": L}`` for a model trained on
        texts, else None."""
        return self.meta.get("text")

    def tokenizer(self) -> Any:
        """The run's own tokenizer (``tokenizer.json``), as trained on its training texts."""
        from .data.tokenize import load_tokenizer

        if self.text is None:
            raise DataError(f"run {str(self.run_dir)!r} was not trained on texts.")
        if getattr(self, "_tokenizer", None) is None:
            path = self.run_dir / "tokenizer.json"
            if not path.is_file():
                raise ConfigError(f"run directory {str(self.run_dir)!r}: tokenizer.json is "
                                  f"missing; a text run cannot read new texts without it. Fix: "
                                  f"copy the whole run directory, or train again.")
            self._tokenizer = load_tokenizer(path.read_text(encoding="utf-8"), str(path))
        return self._tokenizer

    def read_texts(self, data: Any) -> tuple[list[str], Any]:
        """(texts, dataset of their token ids) from a list of strings, one string, a .txt file
        (one text per line) or a table with the training config's text column."""
        from .data.texts import TokenIds
        from .data.tokenize import encode_texts, texts_to_predict

        values, _ = texts_to_predict(data, column=self.config.data.text,
                                     errors=self.config.data.encoding_errors)
        encoded = encode_texts(self.tokenizer(), values, int(self.text["max_length"]))
        self.notes = ([f"{encoded.truncated} text(s) longer than {self.text['max_length']} tokens "
                       f"were cut to it"] if encoded.truncated else [])
        return values, TokenIds(encoded, tokenizer=self.tokenizer(), bucket=False)

    def read_labelled_texts(self, path: Any) -> Any:
        """Labelled texts (a table with the training config's text and target columns, or a
        folder of class folders of .txt files) with the run's class ids."""
        from .data.texts import TokenIds, read_texts
        from .data.tokenize import encode_texts

        cfg = self.config.data
        listed = read_texts(path, text=cfg.text if not Path(path).is_dir() else None,
                            target=cfg.target, encoding_errors=cfg.encoding_errors,
                            skip_bad=cfg.skip_bad, classes=self.meta.get("classes"))
        encoded = encode_texts(self.tokenizer(), listed.texts, int(self.text["max_length"]))
        return TokenIds(encoded, listed.labels, binary=self.task == "binary", bucket=False,
                        texts=listed.texts)

    def predict_texts(self, data: Any) -> tuple[list[str], list[list[Any]]]:
        """Rows ``text, label, p_<class>...`` (see :meth:`read_texts`)."""
        values, dataset = self.read_texts(data)
        header, rows = self.predict_table(dataset)
        return ["text"] + header, [[v] + row for v, row in zip(values, rows)]

    def predict_any(self, data: Any) -> tuple[list[str], list[list[Any]]]:
        """Predictions for what this run reads: texts, image files, or features (a file or
        an array)."""
        if isinstance(data, (torch.Tensor, np.ndarray)):
            return self.predict_table(data)
        if self.text is not None:
            return self.predict_texts(data)
        if self.images is not None or self.audio is not None:
            return self.predict_images(data)
        if isinstance(data, (str, os.PathLike)):
            X, _ = self.read_features(data)
            return self.predict_table(X)
        return self.predict_table(data)

    def predict_table(self, X: Any) -> tuple[list[str], list[list[Any]]]:
        """Rows of predictions: class label and class probabilities, or the predicted values."""
        from .serving.onnx import prediction_rows

        out = predict(self.model, X)
        if isinstance(out, (dict, tuple, list)):
            raise ConfigError("predict: models with several outputs are not supported by the CLI yet.")
        return prediction_rows(out.float().numpy(), self.task, self.meta.get("classes"))


def predict(model: Any, data: Any, **options: Any) -> Any:
    """Predict with a model (raw outputs, see :func:`netwright.training.inference.predict`) or
    with a finished run (a :class:`RunResult`, a run directory or :class:`LoadedRun`): then
    ``data`` may be texts (a list of strings, or a .txt/.csv file; for runs trained on texts),
    image files (a path, a folder or a list of paths; for runs trained on images) or features,
    and the result is one dict per sample: ``text`` (texts) or ``path`` (images), ``label`` in
    the data's own class names and ``p_<class>`` probabilities, or ``prediction`` values.

    >>> import torch
    >>> predict(torch.nn.Linear(3, 2), torch.zeros(4, 3)).shape
    torch.Size([4, 2])
    """
    if isinstance(model, nn.Module):
        return predict_outputs(model, data, **options)
    if hasattr(model, "run_dir") and hasattr(model, "fit"):  # a RunResult: this process trained it
        model = open_run(model.run_dir, trust_code=True)
    elif isinstance(model, (str, os.PathLike)):
        model = open_run(model, trust_code=bool(options.pop("trust_code", False)))
    if not isinstance(model, LoadedRun):
        raise ConfigError(f"predict: expected an nn.Module, a run directory or a run result; "
                          f"received {type(model).__name__}.")
    header, rows = model.predict_any(data)
    return [dict(zip(header, row)) for row in rows]


def open_run(run_dir: str | os.PathLike, *, trust_code: bool = False) -> LoadedRun:
    """Read a finished run directory back. The folder may come from someone else: nothing in it
    is imported unless ``trust_code=True`` (see :func:`netwright.load`)."""
    folder = Path(run_dir)
    if not folder.exists():
        raise ConfigError(f"run directory {str(folder)!r} does not exist. Fix: check the path; "
                          f"`netwright train CONFIG` prints the run directory it writes.")
    if not (folder / "config.yaml").is_file() or not (folder / "model.json").is_file():
        held = sorted(p.name for p in folder.iterdir())[:10] if folder.is_dir() else "a file"
        raise ConfigError(
            f"run directory {str(folder)!r} is not a netwright run from a config (it needs "
            f"config.yaml and model.json; it holds {held}). Fix: pass a folder made by "
            f"`netwright train`."
        )
    cfg = load_config(folder / "config.yaml")
    model = load(folder, trust_code=trust_code)
    meta = read_json(folder / "model.json", what="model.json", error=ConfigError)
    return LoadedRun(folder, cfg, model, meta)
