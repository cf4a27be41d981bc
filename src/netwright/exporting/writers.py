"""Writing each format to a temporary path (the caller renames it into place once verified):
TorchScript (scripted, else traced with a warning), torch.export (``.pt2``) and ONNX (torch's
dynamo exporter); and an export's failure turned into an error that says why and what to do."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ExportError
from ..util import first_line, strip_ansi
from .job import Job
from .report import LABELS, ExportWarning


@contextlib.contextmanager
def _quiet():
    """torch's exporters warn and log a lot about their own internals (deprecations, guards,
    LSTM weight views); the fresh-process comparison is what tells whether an export is right."""
    loggers = [logging.getLogger(n) for n in ("torch", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        # torch.export prints the partial graph to stderr when it fails; the error says why.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def temp_path(final: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}",
                                dir=final.parent)
    os.close(fd)
    return Path(name)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _write_torchscript(job: Job, tmp: Path, opset: int | None, final: Path) -> dict:
    import torch

    notes: list[str] = []
    with _quiet():
        try:
            artifact = torch.jit.script(job.net)
            method = "torch.jit.script"
        except Exception as script_exc:  # noqa: BLE001 - any scripting failure falls back
            reason = _script_reason(script_exc)
            args, kwargs = job.trace_args()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    # check_trace=False: the fresh-process check below is the stronger test.
                    artifact = torch.jit.trace(job.net, args if not kwargs else None,
                                               example_kwarg_inputs=kwargs or None,
                                               strict=False, check_trace=False)
                except Exception as trace_exc:  # noqa: BLE001
                    raise ExportError(
                        f"TorchScript export of {type(job.net).__name__} failed: torch.jit.script "
                        f"cannot compile it ({reason}) and torch.jit.trace fails too "
                        f"({type(trace_exc).__name__}: {first_line(trace_exc)}). Nothing was "
                        f"written to {str(final)!r}. Fix: export to 'pt2' or 'onnx', or make "
                        f"forward scriptable (type-annotated, no **kwargs, no super() calls)."
                    ) from None
            method = "torch.jit.trace"
            torch_dir = str(Path(torch.__file__).parent)
            seen = sorted({f"{Path(w.filename).name}:{w.lineno}" for w in caught
                           if issubclass(w.category, torch.jit.TracerWarning)
                           and not str(w.filename).startswith(torch_dir)})
            message = (
                f"TorchScript: torch.jit.script cannot compile {type(job.net).__name__} "
                f"({reason}), so it was traced with torch.jit.trace instead. A trace records only "
                f"the operations this example ran: data-dependent control flow (an if or a loop "
                f"on tensor values or sizes) is frozen to the branch the example took, and the "
                f"artifact silently computes something else for inputs that would take another "
                f"branch."
                + (f" The tracer saw such control flow at {', '.join(seen)}." if seen else "")
                + " Check forward for such control flow, or export to 'pt2' or 'onnx', which "
                  "refuse it."
            )
            notes.append(message)
        buffer = io.BytesIO()
        torch.jit.save(artifact, buffer)
    _write_bytes(tmp, buffer.getvalue())
    if method == "torch.jit.trace":  # outside _quiet(), which silences warnings
        warnings.warn(notes[-1], ExportWarning, stacklevel=4)  # export() -> user
    return {"method": method, "notes": notes}


def _script_reason(exc: BaseException) -> str:
    text = strip_ansi(str(exc))
    where = re.search(r'File "([^"]+)", line (\d+)', text)
    first = first_line(exc).rstrip(":").rstrip()
    return first + (f" at {Path(where.group(1)).name}:{where.group(2)}" if where else "")


def _write_bytes(tmp: Path, data: bytes) -> None:
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def _lstm_last_from_sequence(net: Any):
    """Make netwright's ``LSTM(output="last")`` layers read the last step from the output
    sequence while torch.export traces them.

    torch.export in torch 2.11 gives ``nn.LSTM``'s ``h_n`` a wrong shape under fake tensors
    (``(layers*D, 1, N, H)``), so reading it fails to trace. The same values are the sequence's
    final step of the forward direction and its first step of the backward direction; the
    fresh-process check confirms the two agree.
    """
    from ..models.layers import LSTM

    patched = [m for m in net.modules()
               if type(m) is LSTM and m.output == "last" and "forward" not in vars(m)]
    for m in patched:
        m.forward = _lstm_last.__get__(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def _lstm_last(self: Any, x: Any) -> Any:
    import torch
    from torch import nn

    seq, _ = nn.LSTM.forward(self, x)  # (N, T, D*H) when batch_first, else (T, N, D*H)
    size = self.proj_size or self.hidden_size
    first, last = (seq[:, 0], seq[:, -1]) if self.batch_first else (seq[0], seq[-1])
    if self.bidirectional:
        return torch.cat([last[..., :size], first[..., size:]], dim=-1)
    return last


def _torch_export(job: Job, fmt: str, final: Path) -> Any:
    import torch

    args, kwargs = job.trace_args()
    try:
        with _quiet(), _lstm_last_from_sequence(job.net):
            return torch.export.export(job.net, args, kwargs or None,
                                       dynamic_shapes=job.dynamic_shapes())
    except Exception as exc:  # noqa: BLE001 - explained below
        raise export_failure(exc, fmt, job, final) from None


def _write_pt2(job: Job, tmp: Path, opset: int | None, final: Path) -> dict:
    import torch

    program = _torch_export(job, "pt2", final)
    buffer = io.BytesIO()
    with _quiet():
        torch.export.save(program, buffer)
    _write_bytes(tmp, buffer.getvalue())
    return {"method": "torch.export", "notes": []}


def _write_onnx(job: Job, tmp: Path, opset: int | None, final: Path) -> dict:
    import torch

    try:
        import onnx
        import onnxscript  # noqa: F401 - torch's ONNX exporter needs it
    except ImportError as exc:
        raise ExportError(f"ONNX export needs the onnx and onnxscript packages (missing: "
                          f"{exc.name}). Fix: pip install 'netwright[export]'.") from None
    args, kwargs = job.trace_args()
    try:
        with _quiet(), _lstm_last_from_sequence(job.net):
            # dynamo=True: the torch.export-based exporter (the default since torch 2.9, named
            # so that torch 2.5-2.8 pick it too); dynamic_shapes marks the batch dimension.
            program = torch.onnx.export(
                job.net, args, None, kwargs=kwargs or None, dynamo=True,
                dynamic_shapes=job.dynamic_shapes(), input_names=job.input_names,
                output_names=job.output_names, opset_version=opset, verbose=False,
                external_data=False)
            program.save(str(tmp), external_data=False)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - explained below
        raise export_failure(exc, "onnx", job, final, opset) from None
    _fsync(tmp)
    try:
        onnx.checker.check_model(str(tmp))
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"ONNX export of {type(job.net).__name__}: the file torch wrote fails "
                          f"onnx.checker ({first_line(exc)}). Nothing was written to "
                          f"{str(final)!r}. Fix: try another opset (opset=...), or export to "
                          f"'pt2'.") from None
    model = onnx.load(str(tmp), load_external_data=False)
    used = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    dims = {i.name: i.type.tensor_type.shape.dim for i in model.graph.input}
    fixed = [name for name, d in dims.items() if d and d[0].HasField("dim_value")]
    if job.dynamic and fixed:
        raise ExportError(
            f"ONNX export of {type(job.net).__name__}: dynamic_batch=True, but the exporter "
            f"fixed the batch size of input {', '.join(map(repr, fixed))} to "
            f"{job.batch if job.batch > 1 else 2}: something in forward pins it. Nothing was "
            f"written to {str(final)!r}. Fix: use the input's own batch size in forward "
            f"(x.shape[0]), or dynamic_batch=False.")
    return {"method": "torch.onnx.export (dynamo)", "notes": [], "opset": used}


WRITERS: dict[str, Callable[..., dict]] = {
    "onnx": _write_onnx, "torchscript": _write_torchscript, "pt2": _write_pt2}


def export_failure(exc: BaseException, fmt: str, job: Job, final: Path,
                   opset: int | None = None) -> ExportError:
    import torch

    text = strip_ansi(f"{type(exc).__name__}: {exc}")
    label = LABELS[fmt]
    model = type(job.net).__name__
    nothing = f"Nothing was written to {str(final)!r}."
    where = _user_call(text)
    if re.search(r"data.dependent|GuardOnDataDependent|DataDependentOutput", text):
        return ExportError(
            f"{label} export of {model} failed: the model has data-dependent control flow (a "
            f"Python if or loop on a tensor's values{where}). torch.export, which the {label} "
            f"export is built on, records one graph for every input and cannot choose a branch "
            f"from the data. {nothing} Fix: write the branch as torch.where(cond, a, b) or "
            f"torch.cond(...), or export to 'torchscript', whose torch.jit.script keeps both "
            f"branches."
        )
    if re.search(r"Constraints violated|specialized it to be a constant", text):
        return ExportError(
            f"{label} export of {model} failed: dynamic_batch=True, but the model fixes the "
            f"batch size (torch.export: {_summary(text)}){where}. {nothing} Fix: use the "
            f"input's own batch size in forward (x.view(x.shape[0], -1), not x.view({job.batch}, "
            f"-1)), or export for one batch size with dynamic_batch=False."
        )
    op = re.search(r"No ONNX function found for <OpOverload\(op='([\w.]+)', overload='(\w+)'\)>",
                   text) or re.search(r"No ONNX function found for ([\w.:]+)", text)
    if fmt == "onnx" and op:
        name = ".".join(g for g in op.groups() if g)
        return ExportError(
            f"ONNX export of {model} failed: ONNX cannot express the op {name} (torch "
            f"{torch.__version__}'s ONNX exporter has no translation for it"
            f"{f' at opset {opset}' if opset else ''}). {nothing} Fix: compute that part with "
            f"ops ONNX has, or export to 'pt2' or 'torchscript', which keep every torch op."
        )
    hint = ""
    if fmt != "torchscript" and any(isinstance(m, torch.nn.LSTM) for m in job.net.modules()):
        hint = (" If the model reads an LSTM's h_n: torch.export in some torch versions (2.11 "
                "among them) gives it a wrong shape; read the last step from the output "
                "sequence instead, or upgrade torch.")
    return ExportError(f"{label} export of {model} failed: {_summary(text)}{where}. {nothing} "
                       f"Fix: export to another format, or change the part of forward named "
                       f"above.{hint}")


def _summary(text: str) -> str:
    """The line that says what went wrong (torch's ONNX errors put it under a heading)."""
    part = text.split("## Exception summary", 1)[-1]
    lines = [ln.strip() for ln in part.splitlines() if ln.strip()]
    for ln in lines:
        if not ln.startswith(("Failed to", "- ", "#", "For more", "consider", "⬆")):
            return re.sub(r"^<class '(?:[\w]+\.)*(\w+)'>", r"\1", ln[:400]).rstrip(".")
    return (lines[0] if lines else text)[:400].rstrip(".")


def _user_call(text: str) -> str:
    found = re.search(r'The following call raised this error:\s*File "([^"]+)", line (\d+), in '
                      r'(\w+)\s*\n\s*(.+)', text)
    if not found:
        return ""
    return (f", at {Path(found.group(1)).name}:{found.group(2)} in {found.group(3)}: "
            f"`{found.group(4).strip()[:120]}`")
