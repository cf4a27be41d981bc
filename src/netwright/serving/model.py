"""A run directory made ready to answer requests: its model on onnxruntime (the default) or
torch, what one input looks like, and answers in the run's own label names.

The ONNX runtime serves ``RUN_DIR/exports/model.onnx``; when the run has none it is exported
(and verified) first, exactly as ``netwright export RUN_DIR --format onnx`` would. The torch
runtime rebuilds the model from ``model.json`` and ``weights.safetensors``. Neither path ever
unpickles anything, and a model class from outside torch, torchvision and netwright is only
imported with ``trust_code=True``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import read_json
from ..errors import ConfigError
from .onnx import read_run_files

__all__ = ["InputSchema", "ServedModel", "ModelFailure", "RUNTIMES"]

RUNTIMES = ("onnx", "torch")
log = logging.getLogger("netwright.serve")


class ModelFailure(RuntimeError):
    """The model could not answer checked inputs (a 500, with this message)."""


@dataclass(frozen=True)
class InputSchema:
    """What one request row is: ``kind`` (table, images, audio, text), the shape of one sample
    as the model takes it, the training column names (tables read from a named table) and the
    dtype of the model's input."""

    kind: str
    shape: tuple[int, ...]
    feature_names: tuple[str, ...] | None
    dtype: str

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 0

    def describe(self) -> dict:
        """The schema as /metadata shows it, with an example request."""
        out: dict[str, Any] = {"kind": self.kind, "dtype": self.dtype}
        if self.kind == "text":
            out["request"] = {"texts": ["a text to classify"]}
            out["upload"] = "a .txt file as the form field 'files' (one text per line)"
            return out
        out.update(shape=list(self.shape), values_per_row=self.size)
        if self.feature_names:
            out["feature_names"] = list(self.feature_names)
            out["request"] = {"rows": [{n: 0.0 for n in self.feature_names[:3]} | (
                {"...": "one value per feature"} if len(self.feature_names) > 3 else {})]}
        else:
            out["request"] = {"rows": [f"{self.size} numbers (flat, or nested as {list(self.shape)})"]}
        if self.kind in ("images", "audio"):
            out["upload"] = (f"{'image' if self.kind == 'images' else 'sound'} files as the form "
                             f"field 'files'")
        return out


def _read_run(folder: Path) -> tuple[dict, dict]:
    if not folder.is_dir():
        raise ConfigError(f"run directory {str(folder)!r} does not exist. Fix: pass the folder "
                          f"`netwright train` printed.")
    return read_run_files(folder)


def _schema(meta: dict) -> InputSchema:
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    shape = tuple(int(s) for s in (model.get("input_shape") or ()))
    names = meta.get("feature_names")
    names = tuple(str(n) for n in names) if isinstance(names, list) and names else None
    if isinstance(meta.get("text"), dict):
        return InputSchema("text", (), None, "int64")
    kind = "images" if isinstance(meta.get("images"), dict) else (
        "audio" if isinstance(meta.get("audio"), dict) else "table")
    if not shape:
        raise ConfigError("model.json has no model.input_shape: the service cannot check requests "
                          "against it. Fix: train the run again with this netwright.")
    if names is not None and len(names) != int(np.prod(shape)):
        names = None  # columns reshaped into a sample (an image from pixel columns): by position
    return InputSchema(kind, shape, names, "float32")


class ServedModel:
    """A run's model, callable on one batch (a NumPy array of raw inputs → raw outputs)."""

    def __init__(self, run_dir: str | os.PathLike, *, runtime: str = "onnx",
                 trust_code: bool = False, threads: int | None = None) -> None:
        if runtime not in RUNTIMES:
            raise ConfigError(f"runtime: expected one of {', '.join(RUNTIMES)}; received "
                              f"{runtime!r}.")
        self.run_dir = Path(run_dir)
        self.meta, self.config = _read_run(self.run_dir)
        self.task = str(self.meta.get("task", "regression"))
        classes = self.meta.get("classes")
        self.schema = _schema(self.meta)
        if self.task == "multiclass" and not classes:
            classes = None  # filled from the output width on the first call
        self.classes = [str(c) for c in classes] if classes else None
        self.runtime = runtime
        self.tokenizer = self._tokenizer() if self.schema.kind == "text" else None
        self._torch_model = None
        self._session = None
        self.export_stale = False
        if runtime == "onnx":
            self._session = self._onnx(trust_code, threads)
        else:
            self._torch_model = self._torch(trust_code, threads)
        if self.classes is None and self.task in ("multiclass", "binary"):
            width = self.output_width()
            self.classes = [str(i) for i in range(width if self.task == "multiclass" else 2)]

    # -- loading ------------------------------------------------------------------------------
    def _tokenizer(self) -> Any:
        from ..data.tokenize import load_tokenizer

        path = self.run_dir / "tokenizer.json"
        if not path.is_file():
            raise ConfigError(f"run directory {str(self.run_dir)!r}: tokenizer.json is missing; a "
                              f"text run cannot read new texts without it. Fix: copy the whole run "
                              f"directory.")
        return load_tokenizer(path.read_text(encoding="utf-8"), str(path))

    def _onnx(self, trust_code: bool, threads: int | None) -> Any:
        from ..exporting.runtime import onnx_session

        path = self.run_dir / "exports" / "model.onnx"
        if not path.is_file():
            from ..exporting import export
            from ..runs import open_run

            log.warning("%s has no ONNX export: exporting it now (as `netwright export %s "
                        "--format onnx`)", self.run_dir, self.run_dir)
            loaded = open_run(self.run_dir, trust_code=trust_code)
            try:
                path.parent.mkdir(exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"{str(self.run_dir)!r} has no ONNX export and its exports "
                                  f"folder cannot be made ({exc.strerror}). Fix: export it where "
                                  f"you can write (netwright export), or serve with --runtime "
                                  f"torch.") from None
            export(loaded.model, path, format="onnx", example=self.schema.shape or None)
        else:
            weights = self.run_dir / "weights.safetensors"
            self.export_stale = (weights.is_file()
                                 and weights.stat().st_mtime > path.stat().st_mtime + 1)
            if self.export_stale:
                log.warning("%s is older than the run's weights.safetensors: it may hold earlier "
                            "weights. Export again (netwright export %s --format onnx "
                            "--overwrite) or serve with --runtime torch.", path, self.run_dir)
        session = onnx_session(path, threads)
        if len(session.get_inputs()) != 1 or len(session.get_outputs()) != 1:
            raise ConfigError(f"{str(path)!r}: the service answers models with one input and one "
                              f"output; this one has {len(session.get_inputs())} and "
                              f"{len(session.get_outputs())}. Fix: serve it with your own code "
                              f"around nw.predict_onnx.")
        self._input = session.get_inputs()[0].name
        return session

    def _torch(self, trust_code: bool, threads: int | None) -> Any:
        import torch

        from ..runs import open_run

        if threads:
            torch.set_num_threads(threads)
        model = open_run(self.run_dir, trust_code=trust_code).model
        model.eval()
        return model

    # -- running ------------------------------------------------------------------------------
    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Raw outputs for one batch (called off the event loop, one batch at a time)."""
        if self._session is not None:
            out = self._session.run(None, {self._input: X})[0]
            return np.asarray(out, dtype=np.float32)
        import torch

        with torch.inference_mode():
            out = self._torch_model(torch.from_numpy(X))
        if not isinstance(out, torch.Tensor):
            raise ConfigError("the service answers models with one output tensor; this model "
                              "returns " + type(out).__name__ + ".")
        return out.float().numpy()

    def output_width(self) -> int:
        """Outputs per sample, from one call on zeros."""
        if self.schema.kind == "text":
            probe = np.full((1, 4), 2, dtype=np.int64)
        else:
            probe = np.zeros((1, *self.schema.shape), dtype=np.float32)
        out = self(probe)
        return int(np.prod(out.shape[1:])) if out.ndim > 1 else 1

    def collate(self, parts: list[np.ndarray]) -> np.ndarray:
        """One batch from several requests' inputs; token ids are right-padded to the longest."""
        if len(parts) == 1:
            return parts[0]
        if self.schema.kind != "text":
            return np.concatenate(parts)
        from ..data.tokenize import PAD

        width = max(p.shape[1] for p in parts)
        out = np.full((sum(len(p) for p in parts), width), PAD, dtype=np.int64)
        start = 0
        for p in parts:
            out[start:start + len(p), :p.shape[1]] = p
            start += len(p)
        return out

    def answer(self, out: np.ndarray) -> dict:
        """The JSON answer for one request's outputs: ``labels`` and ``probabilities`` (one per
        class, in ``classes`` order) for classification, ``values`` for regression."""
        out = np.asarray(out, dtype=np.float64)
        if not np.isfinite(out).all():
            rows = np.flatnonzero(~np.isfinite(out.reshape(len(out), -1)).all(axis=1)).tolist()
            raise ModelFailure(f"the model's outputs for row(s) {rows[:10]} are NaN or infinite "
                               f"(the inputs were finite and in range); it cannot be answered.")
        if self.task == "multiclass":
            z = out.reshape(len(out), -1)
            z = np.exp(z - z.max(axis=1, keepdims=True))
            probs = z / z.sum(axis=1, keepdims=True)
            names = self.classes
            return {"labels": [names[i] for i in probs.argmax(axis=1)],
                    "probabilities": probs.tolist(), "classes": names}
        if self.task == "binary":
            p = 1.0 / (1.0 + np.exp(-out.reshape(len(out), -1)[:, 0]))
            return {"labels": [self.classes[int(v > 0.5)] for v in p],
                    "probabilities": np.stack([1 - p, p], axis=1).tolist(), "classes": self.classes}
        values = out.reshape(len(out), -1)
        return {"values": (values[:, 0] if values.shape[1] == 1 else values).tolist()}

    def versions(self) -> dict:
        import importlib.metadata as md

        names = ["netwright", "numpy"] + (["onnxruntime"] if self._session is not None else ["torch"])
        found = {}
        for name in names:
            try:
                found[name] = md.version(name)
            except md.PackageNotFoundError:
                found[name] = None
        return found

    def results(self) -> dict:
        """The run's final scores and best epoch (results.json), for /metadata."""
        path = self.run_dir / "results.json"
        if not path.is_file():
            return {}
        try:
            data = read_json(path, what="results.json", error=ConfigError)
        except ConfigError:
            return {}
        if not isinstance(data, dict):
            return {}
        best = data.get("best") if isinstance(data.get("best"), dict) else {}
        return {"scores": data.get("scores"), "best_epoch": best.get("epoch"),
                "sizes": data.get("sizes")}
