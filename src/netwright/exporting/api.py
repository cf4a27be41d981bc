"""The public functions :func:`export` and :func:`export_all`: check the arguments, prepare the
job, write every format, verify them in one fresh process, and only then rename them into place."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import fsync_dir
from ..errors import ConfigError, ExportError
from ..util import eval_mode
from .arguments import (check_format, check_formats, check_not_replacing, check_opset,
                        check_target_file, check_tolerance, check_writable_folder)
from .job import Job, prepare_job
from .report import FILE_NAMES, FORMATS, LATENCY_BATCHES, VERIFY_FILE, ExportReport
from .verifier import Verifier, check_outputs, tolerance, verify_artifacts
from .writers import WRITERS, export_failure, temp_path

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


def export(model: nn.Module, path: str | os.PathLike, *, format: str | None = None,
           example: Any = None, dynamic_batch: bool = True, verify: bool = True,
           rtol: float | None = None, atol: float | None = None, opset: int | None = None,
           latency_batches: Sequence[int] = LATENCY_BATCHES,
           timeout: float = 600.0, overwrite: bool = False) -> ExportReport:
    """Export ``model`` to ``path`` as ``format`` (``"onnx"``, ``"torchscript"`` or ``"pt2"``;
    by default from the file's suffix: ``.onnx``, ``.ts``, ``.pt2``) and verify it.

    An existing file at ``path`` is never replaced unless ``overwrite=True`` (then the new file
    replaces it, or the link at ``path``, atomically; a link's target is not written to).

    ``example`` is one input batch: a tensor, a tuple of tensors (several inputs), a dict of
    tensors (forward's keyword arguments), or the shape of one sample such as ``(20,)`` (then a
    random batch of 2 is made: floats, or int64 token ids for a model that reads them). It may be
    left out for a model built by netwright with an ``input_shape``. The batch dimension is
    dynamic unless ``dynamic_batch=False``.

    The model is exported in eval mode, on the CPU. With ``verify=True`` the artifact is loaded
    in a fresh Python process and run on the example and on random inputs of another batch
    size; any output beyond ``atol + rtol * |eager|`` (defaults by dtype:
    :data:`DEFAULT_TOLERANCE`) is an :class:`~netwright.errors.ExportError` listing the
    largest differences, and nothing is written. The same process times the artifact at each of
    ``latency_batches`` (eager is timed here). The file appears only once it is complete and
    verified.

    >>> import tempfile, torch
    >>> from netwright.models import build
    >>> model = build({"hidden": {"linear": 8}, "act": "relu", "out": {"linear": 3}}, (4,))
    >>> report = export(model, Path(tempfile.mkdtemp()) / "model.ts", latency_batches=())
    >>> report.method, report.outputs, report.max_abs_diff < 1e-5
    ('torch.jit.script', ['output'], True)
    """
    path = Path(path)
    fmt = check_format(format, path)
    check_tolerance(rtol, atol)
    check_opset(opset)
    check_target_file(path)
    check_not_replacing([path], overwrite, "export")
    job = prepare_job(model, example, dynamic_batch)
    return _export_many(job, {fmt: path}, verify=verify, rtol=rtol, atol=atol, opset=opset,
                        latency_batches=latency_batches, timeout=timeout,
                        overwrite=overwrite)[fmt]


def export_all(model: nn.Module, folder: str | os.PathLike,
               formats: Sequence[str] | str = FORMATS, *, example: Any = None,
               dynamic_batch: bool = True, verify: bool = True, rtol: float | None = None,
               atol: float | None = None, opset: int | None = None,
               latency_batches: Sequence[int] = LATENCY_BATCHES,
               timeout: float = 600.0, overwrite: bool = False) -> dict[str, ExportReport]:
    """Export ``model`` to every format in ``formats`` inside ``folder`` (``model.onnx``,
    ``model.ts``, ``model.pt2``), verify them all in one fresh process, and write
    ``folder/verify.json`` with every report. Arguments as :func:`export`.

    ``folder`` is created if only its last part is missing (``RUN_DIR/exports``). It is all or
    nothing: when one format fails to export or verify, the error names each failure and which
    formats did work, and no file is written. Existing files (``model.*``, ``verify.json``) are
    never replaced unless ``overwrite=True``; every one is checked before anything is written. A
    ``folder`` that is a symbolic link is refused (pass the folder it points to instead).

    >>> import tempfile
    >>> from netwright.models import build
    >>> model = build([{"linear": 3}], (4,))
    >>> reports = export_all(model, Path(tempfile.mkdtemp()) / "exports", ["torchscript"],
    ...                      latency_batches=())
    >>> sorted(p.name for p in reports["torchscript"].path.parent.iterdir())
    ['model.ts', 'verify.json']
    """
    folder = Path(folder)
    fmts = check_formats(formats)
    check_tolerance(rtol, atol)
    check_opset(opset)
    if folder.is_symlink():
        raise ExportError(
            f"export_all: {str(folder)!r} is a symbolic link (to {os.readlink(folder)!r}); "
            f"netwright does not write through a link, which would put the exports outside the "
            f"folder named. Expected a real folder. Fix: remove the link (the files it points to "
            f"are kept) and export again, or pass the folder it points to, "
            f"{str(folder.resolve())!r}, if that is where the exports belong.")
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"export_all: {str(folder)!r} is a file; expected a folder to write "
                          f"{', '.join(FILE_NAMES[f] for f in fmts)} into.")
    check_writable_folder(folder.parent, folder)
    check_not_replacing([folder / FILE_NAMES[f] for f in fmts] + [folder / VERIFY_FILE],
                        overwrite, "export_all")
    job = prepare_job(model, example, dynamic_batch)
    created = not folder.exists()
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise ExportError(f"export_all: cannot create {str(folder)!r} "
                          f"({exc.strerror or type(exc).__name__}). Fix: choose a folder you can "
                          f"write to.") from None
    try:
        reports = _export_many(job, {f: folder / FILE_NAMES[f] for f in fmts}, verify=verify,
                               rtol=rtol, atol=atol, opset=opset,
                               latency_batches=latency_batches, timeout=timeout,
                               after=lambda reps: _write_verify_json(folder, job, reps),
                               overwrite=overwrite, also=[folder / VERIFY_FILE])
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: never removes what someone else put there
        raise
    return reports


def _write_verify_json(folder: Path, job: Job, reports: dict[str, ExportReport]) -> None:
    from ..checkpoint import atomic_write_json
    import torch

    try:
        import onnxruntime
        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    atomic_write_json(folder / VERIFY_FILE, {
        "format": "netwright.exports/1",
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "inputs": [{"name": n, "shape": ["batch" if job.dynamic and i == 0 else
                                         "sequence" if job.sequence is not None and i == 1 else s
                                         for i, s in enumerate(t.shape)],
                    "dtype": str(t.dtype).replace("torch.", "")}
                   for n, t in zip(job.input_names, job.inputs)],
        "outputs": job.output_names,
        "files": {fmt: r.path.name for fmt, r in reports.items()},
        "reports": {fmt: {**r.to_dict(), "path": r.path.name} for fmt, r in reports.items()},
    })


def _export_many(job: Job, targets: dict[str, Path], *, verify: bool, rtol: float | None,
                 atol: float | None, opset: int | None, latency_batches: Sequence[int],
                 timeout: float, after: Callable[[dict], None] | None = None,
                 overwrite: bool = False, also: Sequence[Path] = ()
                 ) -> dict[str, ExportReport]:
    import torch

    if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in latency_batches):
        raise ConfigError(f"export latency_batches must be positive batch sizes such as (1, 64); "
                          f"got {latency_batches!r}.")
    temps: dict[str, Path] = {}
    made: dict[str, dict] = {}
    failures: dict[str, ExportError] = {}
    verifier = Verifier(list(targets)) if verify else None
    try:
        with eval_mode(job.net):
            for fmt, final in targets.items():
                temps[fmt] = temp_path(final)
                try:
                    made[fmt] = WRITERS[fmt](job, temps[fmt], opset, final)
                except ExportError as exc:
                    failures[fmt] = exc
                except Exception as exc:  # noqa: BLE001 - e.g. saving failed: named, not raw
                    failures[fmt] = export_failure(exc, fmt, job, final, opset)
        if failures:
            raise _combined(failures, [f for f in targets if f in made])
        reports = {}
        for fmt, final in targets.items():
            notes = made[fmt]["notes"]
            if job.dynamic and job.batch == 1 and fmt != "torchscript":
                notes.append("the example has batch 1, which torch.export would fix as a "
                             "constant: it was traced with the sample repeated (batch 2)")
            reports[fmt] = ExportReport(path=final, format=fmt, method=made[fmt]["method"],
                                        inputs=list(job.input_names),
                                        outputs=list(job.output_names),
                                        dynamic_batch=job.dynamic, verified=False,
                                        example_batch=job.batch, opset=made[fmt].get("opset"),
                                        torch_version=torch.__version__,
                                        notes=notes)
        if verify:
            rt, at = tolerance(job, rtol, atol)
            checked, latency, eager = verify_artifacts(job, temps, verifier,
                                                       latency_batches=latency_batches, timeout=timeout)
            for fmt, final in targets.items():
                maxima, error = check_outputs(fmt, final, job, checked["outputs"][fmt],
                                              checked["expected"], checked["batches"], rt, at)
                if error is not None:
                    failures[fmt] = error
                    continue
                r = reports[fmt]
                r.verified, r.rtol, r.atol = True, rt, at
                r.max_abs_example, r.max_rel_example = maxima["example"]
                if "other" in maxima:
                    r.other_batch = checked["batches"]["other"]
                    r.max_abs_other, r.max_rel_other = maxima["other"]
                r.latency_eager = dict(eager)
                r.latency_export = dict(latency.get(fmt, {}))
                r.latency_noisy = list(checked.get("noisy", {}).get(fmt, []))
            if failures:
                raise _combined(failures, [f for f in targets if f not in failures])
        else:
            for r in reports.values():
                r.notes.append("not verified (verify=False)")
        # Checked again at the last moment: a file may have appeared while exporting.
        check_not_replacing(list(targets.values()) + list(also), overwrite, "export")
        for fmt, final in targets.items():
            os.replace(temps.pop(fmt), final)
        for folder in {p.parent for p in targets.values()}:
            fsync_dir(folder)
        if after is not None:
            after(reports)
        return reports
    finally:
        if verifier is not None:
            verifier.close()
        for tmp in temps.values():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _combined(failures: dict[str, ExportError], worked: list[str]) -> ExportError:
    if len(failures) == 1 and not worked:
        return next(iter(failures.values()))
    lines = [f"export failed for {', '.join(failures)}"
             + (f" ({', '.join(worked)} worked, but nothing is written unless every format "
                f"does)" if worked else "") + ":"]
    for fmt, exc in failures.items():
        lines.append(f"- {fmt}: {exc}")
    if worked:
        lines.append(f"Fix: export only the formats that work: formats={worked!r} "
                     f"(--format {','.join(worked)}), or fix the model as said above.")
    return ExportError("\n".join(lines))
