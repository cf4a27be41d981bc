"""Findings, their codes, and the report the doctor returns; the words findings are written in.

Severity follows consequence: a setup that cannot train, or trains meaninglessly, is an
``error``; one that trains, but badly, is a ``warning``; ``info`` is worth knowing but harmless.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import (ConfigError, DataError, LossTargetError, ModelSpecError, NetwrightError,
                      describe_tensors)
from ..util import first_line

SEVERITIES = ("error", "warning", "info")

# code: (severity, what it means, the error kind it raises as). The kind lets ``except
# LossTargetError`` (or DataError ...) keep catching what fit raised before the doctor existed.
_CODES: dict[str, tuple[str, str, type[NetwrightError]]] = {
    "NW101": ("warning", "probabilities fed to cross_entropy (a double softmax)", LossTargetError),
    "NW102": ("error", "nll on outputs that are not log-probabilities", LossTargetError),
    "NW103": ("warning", "nll on probabilities instead of log-probabilities", LossTargetError),
    "NW104": ("error", "float class targets", LossTargetError),
    "NW105": ("error", "class targets shaped as a column (N, 1)", LossTargetError),
    "NW106": ("error", "integer one-hot (or multi-hot) class targets", LossTargetError),
    "NW107": ("warning", "soft-label targets whose rows are not distributions", LossTargetError),
    "NW108": ("error", "class labels outside [0, C)", LossTargetError),
    "NW109": ("warning", "outputs for classes the targets never hold", LossTargetError),
    "NW110": ("warning", "strong class imbalance", DataError),
    "NW111": ("error", "a class loss on an output without a class dimension", LossTargetError),
    "NW112": ("error", "class targets whose shape does not fit the output", LossTargetError),
    "NW113": ("error", "probabilities over the batch (softmax along dim 0)", LossTargetError),
    "NW121": ("error", "bce on values outside [0, 1]", LossTargetError),
    "NW122": ("warning", "bce_with_logits after a final sigmoid", LossTargetError),
    "NW123": ("error", "binary targets outside [0, 1]", LossTargetError),
    "NW131": ("error", "element-wise loss on output and targets of different shapes", LossTargetError),
    "NW132": ("error", "integer targets for an element-wise loss", LossTargetError),
    "NW190": ("error", "the loss fails on the first batch", LossTargetError),
    "NW191": ("error", "the loss is NaN/Inf on the first batch", LossTargetError),
    "NW192": ("info", "the model returns several outputs: output checks skipped", LossTargetError),
    "NW201": ("error", "a layer does not fit its input size", ModelSpecError),
    "NW202": ("error", "channels-last images fed to a convolution", ModelSpecError),
    "NW203": ("error", "the forward fails", ModelSpecError),
    "NW204": ("error", "the input dtype does not fit the layer", ModelSpecError),
    "NW205": ("error", "token ids outside the embedding", ModelSpecError),
    "NW206": ("info", "the model is in eval mode", ModelSpecError),
    "NW207": ("warning", "randomness (dropout) active in evaluation", ModelSpecError),
    "NW208": ("error", "BatchNorm trained on batches of one sample", ModelSpecError),
    "NW209": ("error", "NaN/Inf outputs on finite inputs", ModelSpecError),
    "NW210": ("warning", "images that look channels-last", ModelSpecError),
    "NW211": ("error", "a recurrent layer reads the batch dimension as time", ModelSpecError),
    "NW212": ("error", "a text model's padding id is not the batch's", ModelSpecError),
    "NW213": ("error", "token ids a text model cannot mask (shape, left padding)", ModelSpecError),
    "NW214": ("error", "a sound model built for another sample rate", DataError),
    "NW215": ("error", "clips of another length than the sound model's", DataError),
    "NW216": ("error", "layers kept in a plain list, tuple or dict: not registered", ModelSpecError),
    "NW217": ("error", "a trainable tensor kept as a plain attribute, not a Parameter", ModelSpecError),
    "NW218": ("warning", "a tensor kept as a plain attribute, not a buffer", ModelSpecError),
    "NW219": ("warning", "layers whose weights are all equal (symmetric initialisation)", ModelSpecError),
    "NW301": ("error", "NaN/Inf in the inputs", DataError),
    "NW302": ("error", "NaN/Inf in the targets", DataError),
    "NW303": ("info", "constant features", DataError),
    "NW304": ("error", "every feature is constant", DataError),
    "NW305": ("warning", "inputs far from unit scale", DataError),
    "NW306": ("warning", "regression targets far from unit scale", DataError),
    "NW307": ("warning", "texts made mostly of unknown tokens", DataError),
    "NW308": ("warning", "clipped recordings", DataError),
    "NW309": ("warning", "silent recordings", DataError),
    "NW310": ("warning", "the same rows in the training and the validation data", DataError),
    "NW311": ("warning", "a feature that is the target in disguise", DataError),
    "NW401": ("warning", "trainable parameters missing from the optimizer", ConfigError),
    "NW402": ("error", "the optimizer updates none of the model's parameters", ConfigError),
    "NW403": ("error", "the model has no trainable parameters", ModelSpecError),
    "NW404": ("warning", "training data sorted by label, with shuffling off", ConfigError),
    "NW405": ("info", "frozen parameters", ModelSpecError),
    "NW411": ("error", "reduce_on_plateau monitors a value that is never logged", ConfigError),
    "NW412": ("error", "onecycle would step past its total_steps", ConfigError),
    "NW413": ("warning", "onecycle's total_steps exceed the run", ConfigError),
    "NW414": ("error", "the monitor is never logged", ConfigError),
    "NW415": ("error", "a metric that does not fit the task", ConfigError),
    "NW501": ("warning", "parameters that get no gradient (disconnected)", ModelSpecError),
    "NW502": ("warning", "parameters whose gradient is exactly zero (dead)", ModelSpecError),
    "NW503": ("error", "NaN/Inf gradients", ModelSpecError),
    "NW504": ("warning", "exploding gradients: the first step outgrows the weights", ModelSpecError),
    "NW505": ("warning", "the loss does not fall when overfitting one batch", ModelSpecError),
    "NW506": ("error", "the loss diverges when overfitting one batch", ModelSpecError),
    "NW507": ("error", "a training step fails", ModelSpecError),
    "NW508": ("warning", "torch.compile graph breaks in the forward", ModelSpecError),
    "NW509": ("error", "a custom layer's gradient disagrees with its numerical gradient", ModelSpecError),
}

#: Every finding code: ``{code: (severity, what it means)}``.
CODES: dict[str, tuple[str, str]] = {code: (sev, title) for code, (sev, title, _) in _CODES.items()}


# --- findings and the report ---------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One problem: a stable ``code``, its ``severity``, a ``message`` naming the layer, tensor,
    column or setting with what was expected and what was received, the ``fix``, and ``where``
    (a layer path or an argument name).

    >>> f = Finding("NW105", "error", "targets are a column", "y = y.squeeze(1)", "targets")
    >>> str(f)
    'error NW105 [targets]: targets are a column Fix: y = y.squeeze(1)'
    """

    code: str
    severity: str
    message: str
    fix: str = ""
    where: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = f" [{self.where}]" if self.where else ""
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{self.severity} {self.code}{where}: {self.message}{fix}"


def finding(code: str, message: str, fix: str = "", where: str | None = None) -> Finding:
    return Finding(code, _CODES[code][0], message, fix, where)


class DoctorError(NetwrightError, ValueError):
    """The doctor found errors; ``.report`` holds every finding (errors, warnings, infos)."""

    def __init__(self, report: Report):
        self.report = report
        super().__init__(report.error_text())

    def __reduce__(self) -> tuple:
        return type(self), (self.report,)


# Raised in place of DoctorError so that code catching the kind fit used to raise (a
# LossTargetError for float targets, a ModelSpecError for a forward that fails) still catches it.
class _LossTargetDoctorError(DoctorError, LossTargetError):
    pass


class _DataDoctorError(DoctorError, DataError):
    pass


class _ModelDoctorError(DoctorError, ModelSpecError):
    pass


class _ConfigDoctorError(DoctorError, ConfigError):
    pass


_ERROR_OF_KIND = {LossTargetError: _LossTargetDoctorError, DataError: _DataDoctorError,
                  ModelSpecError: _ModelDoctorError, ConfigError: _ConfigDoctorError}
_ORDER = {"error": 0, "warning": 1, "info": 2}


class Report(list):
    """The findings of a check, a list of :class:`Finding` (errors first). A report from
    :func:`preflight` also carries ``.output``: the model's eval-mode output on the batch (None
    when the forward failed).

    >>> r = Report([Finding("NW303", "info", "column 3 is constant", "drop it", "inputs")])
    >>> r.ok, len(r.errors), r.codes
    (True, 0, ['NW303'])
    >>> r.to_dict()["findings"][0]["code"]
    'NW303'
    """

    output: Any = None
    stage: str = "fit"  # the call that ran the checks (fit, evaluate, predict): named in errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self if f.severity == "warning"]

    @property
    def infos(self) -> list[Finding]:
        return [f for f in self if f.severity == "info"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings and infos allowed)."""
        return not self.errors

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "errors": len(self.errors), "warnings": len(self.warnings),
                "infos": len(self.infos), "findings": [f.to_dict() for f in self]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        def n(count: int, word: str) -> str:
            return f"{count} {word}{'' if count == 1 else 's'}"
        return (f"{n(len(self.errors), 'error')}, {n(len(self.warnings), 'warning')}, "
                f"{len(self.infos)} info")

    def __repr__(self) -> str:
        return f"Report({self.summary()}: {', '.join(self.codes) or 'no findings'})"

    def __str__(self) -> str:
        if not self:
            return "netwright doctor: no findings."
        width = 100
        where_w = min(24, max(5, *(len(f.where or "") for f in self)))
        head = f"{'severity':<8}  {'code':<5}  {'where':<{where_w}}  finding"
        indent = " " * (8 + 2 + 5 + 2 + where_w + 2)
        lines = [f"netwright doctor: {self.summary()}", head, "-" * min(width, len(head) + 40)]
        body_w = max(40, width - len(indent))
        for f in self:
            where = (f.where or "")
            where = where if len(where) <= where_w else where[: where_w - 1] + "…"
            text = textwrap.wrap(f.message, body_w) or [""]
            if f.fix:
                text += textwrap.wrap("Fix: " + f.fix, body_w)
            lines.append(f"{f.severity:<8}  {f.code:<5}  {where:<{where_w}}  {text[0]}")
            lines += [indent + t for t in text[1:]]
        return "\n".join(lines)

    def to_table(self) -> Any:
        """The findings as a ``rich.table.Table`` (for the console)."""
        from rich.table import Table

        table = Table(title=f"netwright doctor: {self.summary()}", show_lines=True)
        for name in ("severity", "code", "where", "finding", "fix"):
            table.add_column(name, overflow="fold")
        style = {"error": "bold red", "warning": "yellow", "info": "cyan"}
        for f in self:
            table.add_row(f"[{style[f.severity]}]{f.severity}[/]", f.code, f.where or "",
                          f.message, f.fix)
        return table

    def error_text(self) -> str:
        shown = self.errors + self.warnings
        when = "before training" if self.stage == "fit" else f"in {self.stage}'s first batch"
        lines = [f"netwright doctor found {self.summary()} {when}:"]
        lines += [f"  {f.code} {f.severity} [{f.where or '-'}]: {f.message}"
                  + (f" Fix: {f.fix}" if f.fix else "") for f in shown]
        lines.append(f"(Each code is explained in docs/doctor.md; {self.stage}(..., check=False) "
                     f"skips these checks.)")
        return "\n".join(lines)

    def raise_for_errors(self) -> None:
        """Raise :class:`DoctorError` (carrying this report) if any finding is an error."""
        errors = self.errors
        if errors:
            kind = _CODES.get(errors[0].code, ("", "", NetwrightError))[2]
            raise _ERROR_OF_KIND.get(kind, DoctorError)(self)

    def sorted(self) -> Report:
        """The same findings, errors first, then warnings, then infos."""
        return Report(sorted(self, key=lambda f: _ORDER.get(f.severity, 3)))


# --- the words findings are written in -----------------------------------------------------------


fmt = describe_tensors  # "float32 of shape (32, 1)", structures part by part


def num(x: float) -> str:
    """A number in 4 significant digits: ``num(1234.5678) == '1235'``."""
    return f"{x:.4g}"


def listed(items: Sequence[Any], limit: int = 6) -> str:
    """The first ``limit`` items, comma-separated, then how many more there are."""
    items = [str(i) for i in items]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def error_line(exc: BaseException) -> str:
    """An exception as a finding quotes it: ``ValueError: its first line`` (300 characters at
    most)."""
    return first_line(exc, typed=True, cut="…")
