"""What ``torch.compile`` will make of a model: its graph breaks, each by the line of the model's
code that causes it (``torch._dynamo.explain`` on the first batch). Run by the doctor's deep
check when the run compiles (``compile=True``, a config's ``train.compile``)."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn

from ..util import call_model, eval_mode
from .report import Finding, finding

__all__ = ["graph_break_findings"]

_SHOWN = 5  # breaks listed in the finding; the count says how many there are


def graph_break_findings(model: nn.Module, x: Any) -> list[Finding]:
    """NW508 when the forward does not compile into one graph, naming where each break is."""
    import torch._dynamo as dynamo

    quiet = logging.getLogger("torch._dynamo")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # dynamo logs each break as a warning: the finding says it
    try:
        dynamo.reset()
        with eval_mode(model), torch.no_grad():
            out = dynamo.explain(lambda inputs: call_model(model, inputs))(x)
    except Exception as exc:  # noqa: BLE001 - a model dynamo cannot trace at all is reported
        return [finding("NW508", f"torch.compile cannot trace the model's forward: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}.",
                        "train without compile, or change what the message names", "model")]
    finally:
        dynamo.reset()
        quiet.setLevel(level)
    breaks = [r for r in out.break_reasons if getattr(r, "graph_break", True)]
    if not breaks:
        return []
    places = []
    for reason in breaks[:_SHOWN]:
        frame = reason.user_stack[-1] if reason.user_stack else None
        where = (f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
                 if frame is not None else "an unknown place")
        line = f" `{frame.line.strip()}`" if frame is not None and frame.line else ""
        places.append(f"{where}{line} ({reason.reason.splitlines()[0][:120]})")
    more = f"; and {len(breaks) - _SHOWN} more" if len(breaks) > _SHOWN else ""
    return [finding(
        "NW508", f"torch.compile splits the forward into {out.graph_count} graphs at "
        f"{len(breaks)} graph break(s): " + "; ".join(places) + more + ". Each break returns to "
        f"Python between compiled pieces, which costs time on every step.",
        "move .item(), print, data-dependent if/for and non-torch calls out of forward (or "
        "compute them with torch ops), or train without compile", "model")]
