"""Export a model to TorchScript, ``torch.export`` (``.pt2``) or ONNX, and prove it computes what
the model computes.

Each artifact is written to a temporary name in its folder and loaded back **in a fresh Python
process** (``torch.jit.load``, ``torch.export.load``, an onnxruntime ``InferenceSession``), which
runs it on the example batch and on fresh random inputs of another batch size, and times it at
batch 1 and 64. Its outputs are compared with the eager model's, computed here; only an artifact
within tolerance is renamed into place, so a failed export never leaves a file behind.

    report = export(model, "model.onnx", example=(20,))         # a random batch of 2 × (20,)
    reports = export_all(model, "runs/demo/exports", example=x)  # .onnx, .ts, .pt2, verify.json
    y = predict_onnx("runs/demo/exports/model.onnx", features)   # onnxruntime + numpy only

Outputs are compared, and named in ONNX, in one documented order: a tensor is one output
(``output``); a dict gives its values in key order (named by key, ``a.b`` when nested); a tuple or
list gives its items in order (``output.0``, ``output.1``, ...).

torch, onnx and onnxruntime are imported inside the functions that use them: importing this package
is cheap, and :func:`predict_onnx` never imports torch.

The package: ``report`` (the formats and :class:`ExportReport`), ``arguments`` (their checks),
``job`` (the model, its example and eager outputs), ``writers`` (one per format), ``verifier``
(the parent's side of the check) and ``child`` (the fresh process, ``__main__``), ``runtime``
(onnxruntime serving) and ``api`` (:func:`export`, :func:`export_all`).
"""

from .api import export, export_all
from .report import (DEFAULT_TOLERANCE, FILE_NAMES, FORMATS, LATENCY_BATCHES, VERIFY_FILE,
                     ExportReport, ExportWarning)
from .runtime import predict_onnx
from .verifier import MAX_SPREAD

__all__ = ["FORMATS", "FILE_NAMES", "ExportReport", "ExportWarning", "export", "export_all",
           "predict_onnx", "DEFAULT_TOLERANCE"]
