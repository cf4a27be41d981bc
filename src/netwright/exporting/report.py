"""The formats, their files and tolerances, and :class:`ExportReport`: what an export wrote and
what its fresh-process check found."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("onnx", "torchscript", "pt2")
#: The file each format is written to by :func:`export_all`.
FILE_NAMES = {"onnx": "model.onnx", "torchscript": "model.ts", "pt2": "model.pt2"}
VERIFY_FILE = "verify.json"
LABELS = {"onnx": "ONNX", "torchscript": "TorchScript", "pt2": "torch.export (.pt2)"}
#: (rtol, atol) by the outputs' dtype when rtol/atol are not given. Float32 leaves room for the
#: reordered sums of fused kernels and of other batch sizes (GEMM blocking), not for real errors.
DEFAULT_TOLERANCE = {"float64": (1e-7, 1e-9), "float32": (1e-3, 1e-5),
                     "float16": (1e-2, 1e-3), "bfloat16": (2e-2, 1e-2)}
LATENCY_BATCHES = (1, 64)
SEED = 0


class ExportWarning(UserWarning):
    """An export that works but may not generalise (e.g. TorchScript made by tracing)."""


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass
class ExportReport:
    """What :func:`export` wrote and what its fresh-process check found.

    ``max_abs_example``/``max_rel_example`` compare the artifact with the eager model on the
    example batch, ``max_abs_other``/``max_rel_other`` on fresh random inputs of batch
    ``other_batch``. The relative difference is ``|artifact - eager| / max(|eager|, atol)``; an
    element passes when ``|artifact - eager| <= atol + rtol * |eager|``. ``latency_eager`` and
    ``latency_export`` map a batch size to the median seconds of one forward call (the artifact
    timed in the fresh process).

    >>> r = ExportReport(path=Path("m.onnx"), format="onnx", method="torch.onnx.export",
    ...                  latency_eager={1: 2e-4}, latency_export={1: 1e-4})
    >>> r.speedup(1)
    2.0
    """

    path: Path
    format: str
    method: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    dynamic_batch: bool = True
    verified: bool = False
    rtol: float | None = None
    atol: float | None = None
    example_batch: int | None = None
    other_batch: int | None = None
    max_abs_example: float | None = None
    max_rel_example: float | None = None
    max_abs_other: float | None = None
    max_rel_other: float | None = None
    latency_eager: dict[int, float] = field(default_factory=dict)
    latency_export: dict[int, float] = field(default_factory=dict)
    latency_noisy: list[int] = field(default_factory=list)  # batches whose timings spread too much
    opset: int | None = None
    torch_version: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float | None:
        """The largest absolute difference over every check."""
        values = [v for v in (self.max_abs_example, self.max_abs_other) if v is not None]
        return max(values) if values else None

    @property
    def max_rel_diff(self) -> float | None:
        """The largest relative difference over every check."""
        values = [v for v in (self.max_rel_example, self.max_rel_other) if v is not None]
        return max(values) if values else None

    def speedup(self, batch: int) -> float | None:
        """Eager seconds / artifact seconds at ``batch`` (above 1: the artifact is faster)."""
        eager, exported = self.latency_eager.get(batch), self.latency_export.get(batch)
        if not eager or not exported:
            return None
        return eager / exported

    def to_dict(self) -> dict:
        """A JSON-able dict (what ``verify.json`` holds per format).

        >>> ExportReport(Path("m.ts"), "torchscript", "torch.jit.script").to_dict()["path"]
        'm.ts'
        """
        out = dataclasses.asdict(self)
        out["path"] = str(self.path)
        out["latency_eager"] = {str(k): v for k, v in self.latency_eager.items()}
        out["latency_export"] = {str(k): v for k, v in self.latency_export.items()}
        out["max_abs_diff"], out["max_rel_diff"] = self.max_abs_diff, self.max_rel_diff
        out["speedup"] = {str(b): self.speedup(b) for b in self.latency_export}
        out["latency_noisy"] = list(self.latency_noisy)
        return out

    def __str__(self) -> str:
        head = f"{self.path} ({self.format}, {self.method}"
        head += f", opset {self.opset})" if self.opset else ")"
        lines = [head + (": verified in a fresh process" if self.verified else ": NOT verified")]
        if self.verified:
            lines.append(f"  tolerance: rtol {self.rtol:.0e}, atol {self.atol:.0e}")
            lines.append(f"  example (batch {self.example_batch}): max abs diff "
                         f"{self.max_abs_example:.2e}, max rel diff {self.max_rel_example:.2e}")
            if self.max_abs_other is not None:
                lines.append(f"  random (batch {self.other_batch}):  max abs diff "
                             f"{self.max_abs_other:.2e}, max rel diff {self.max_rel_other:.2e}")
        for batch in sorted(self.latency_export):
            eager, art = self.latency_eager.get(batch), self.latency_export[batch]
            ratio = self.speedup(batch)
            note = " (timings too noisy to compare)" if batch in self.latency_noisy else (
                f" ({ratio:.2f}x eager's speed)" if ratio else "")
            lines.append(f"  latency batch {batch}: eager {_ms(eager)}, {self.format} {_ms(art)}{note}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.3f} ms"
