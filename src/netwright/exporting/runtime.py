"""Serving with onnxruntime, without torch: :func:`predict_onnx`, and the cached sessions and
input checks that the fresh verifying process uses too."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, ExportError
from ..util import first_line

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
              "tensor(float16)": np.float16, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
              "tensor(bool)": np.bool_}
_SESSIONS: dict[tuple, Any] = {}


def onnx_session(path: Path, threads: int | None = None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("predict_onnx needs onnxruntime. Fix: pip install onnxruntime "
                          "(or 'netwright[export]').") from None
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, threads)
    session = _SESSIONS.get(key)
    if session is None:
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error kinds
            raise ExportError(f"{str(path)!r} is not an ONNX model onnxruntime can load "
                              f"({first_line(exc)}). Fix: export it again with "
                              f"netwright export RUN_DIR --format onnx.") from None
        if len(_SESSIONS) >= 8:
            _SESSIONS.pop(next(iter(_SESSIONS)))
        _SESSIONS[key] = session
    return session


def onnx_feed(session: Any, features: Any, path: Path) -> dict[str, np.ndarray]:
    specs = session.get_inputs()
    names = [i.name for i in specs]
    if isinstance(features, Mapping):
        missing = [n for n in names if n not in features]
        if missing:
            raise DataError(f"{path.name} takes inputs {names}; the features dict lacks "
                            f"{missing}. Fix: give one array per input name.")
        arrays = [features[n] for n in names]
    elif isinstance(features, (list, tuple)) and len(names) > 1:
        arrays = list(features)
    else:
        arrays = [features]
    if len(arrays) != len(names):
        raise DataError(f"{path.name} takes {len(names)} inputs ({', '.join(names)}); got "
                        f"{len(arrays)}. Fix: pass a tuple or a dict with one array per input.")
    feed = {}
    for spec, array in zip(specs, arrays):
        array = np.asarray(array)
        want = _ORT_TYPES.get(spec.type)
        if want is not None and array.dtype != want:
            if np.issubdtype(want, np.integer) and array.dtype.kind == "f":
                if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
                    raise DataError(f"{path.name} input {spec.name!r} takes integer ids "
                                    f"({spec.type}); the features are non-integer floats. Fix: "
                                    f"give the token ids.")
            array = array.astype(want)
        dims = list(spec.shape)
        if array.ndim != len(dims) or any(isinstance(d, int) and d != s
                                          for d, s in zip(dims, array.shape)):
            shown = "(" + ", ".join("N" if not isinstance(d, int) else str(d) for d in dims) + ")"
            raise DataError(f"{path.name} input {spec.name!r} takes arrays of shape {shown}; got "
                            f"shape {array.shape}. Fix: give a batch of samples shaped as in "
                            f"training, the batch dimension first.")
        feed[spec.name] = np.ascontiguousarray(array)
    return feed


def predict_onnx(path: str | os.PathLike, features: Any, *, batch_size: int | None = None,
                 threads: int | None = None) -> Any:
    """Run an ``.onnx`` file on ``features`` with onnxruntime (no torch needed).

    ``features`` is one array (a batch, the batch dimension first), or a tuple/dict of arrays
    for a model with several inputs; they are cast to the input's dtype (float32, or int64 token
    ids). A model trained by ``netwright train`` holds its input standardisation inside the
    graph (the ``Scaled`` wrapper), so raw features go in as they are. Returns the output array,
    or a dict ``{name: array}`` in the documented output order when there are several.
    ``batch_size`` runs large inputs in chunks; sessions are cached per file.

    >>> import tempfile
    >>> from netwright.exporting import export
    >>> from netwright.models import build
    >>> model = build([{"linear": 2}], (3,))
    >>> r = export(model, Path(tempfile.mkdtemp()) / "m.onnx", verify=False)
    >>> predict_onnx(r.path, np.ones((4, 3), dtype=np.float32)).shape
    (4, 2)
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"predict_onnx: {str(path)!r} does not exist. Fix: export the model "
                          f"first (netwright export RUN_DIR --format onnx writes "
                          f"RUN_DIR/exports/model.onnx).")
    session = onnx_session(path, threads)
    feed = onnx_feed(session, features, path)
    names = [o.name for o in session.get_outputs()]
    n = len(next(iter(feed.values())))
    if batch_size and n > batch_size:
        parts = [session.run(None, {k: v[i:i + batch_size] for k, v in feed.items()})
                 for i in range(0, n, batch_size)]
        outs = [np.concatenate([p[j] for p in parts]) for j in range(len(names))]
    else:
        outs = session.run(None, feed)
    return outs[0] if len(outs) == 1 else dict(zip(names, outs))
