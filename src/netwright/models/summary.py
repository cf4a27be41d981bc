"""A per-layer summary of any ``nn.Module``: output shapes, parameters and FLOPs.

One forward pass of an example batch (zeros of ``(1, *input_shape)`` unless ``example=`` is
given) runs in eval mode without gradients under ``torch.utils.flop_counter.FlopCounterMode``;
forward hooks record each module's output. Nothing about the model changes: modes are restored
and BatchNorm statistics do not move.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ModelSpecError, describe
from ..util import call_model, eval_mode, first_line
from .builder import spec_of

__all__ = ["summary", "Summary", "Row"]

_MB = 2**20  # "MB" here is a mebibyte, as torch.cuda.memory_* and Keras count


def _bytes_text(n: float) -> str:
    """``232 bytes``, ``4.09 KB``, ``1.53 MB``, ``2.10 GB`` (binary units, as torch counts).

    >>> _bytes_text(4188), _bytes_text(3 * 2**20)
    ('4.09 KB', '3.00 MB')
    """
    n = float(n)
    if n < 1024:
        return f"{int(n)} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1024
        if n < 1024 or unit == "TB":
            return f"{n:.2f} {unit}"
    return f"{n:.2f} TB"  # pragma: no cover


@dataclass
class Row:
    """One module: ``name`` is its dotted path (as in ``named_modules``/``state_dict``);
    ``params``/``flops`` include its children; ``output_shape`` is a list of sizes, a dict or a
    list of those for dict/tuple outputs, or ``None`` if the forward never called it."""

    name: str
    type: str
    depth: int
    output_shape: Any
    params: int
    trainable: int
    frozen: int
    flops: int
    leaf: bool


@dataclass
class Summary:
    """What :func:`summary` returns. ``str(s)`` is a plain table; ``s.to_table()`` (and
    ``rich.print(s)``) a rich Table; ``s.to_dict()`` JSON-able data."""

    model: str
    input: str
    rows: list[Row] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    frozen_params: int = 0
    flops: int = 0
    size_mb: float = 0.0
    output_shape: Any = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _cells(self) -> list[tuple[str, str, str, str]]:
        cells = []
        for r in self.rows:
            params = f"{r.params:,}" + (f" ({r.frozen:,} frozen)" if r.frozen else "")
            cells.append((f"{'  ' * r.depth}{r.name} ({r.type})", _shape_text(r.output_shape),
                          params, f"{r.flops:,}"))
        return cells

    def _footer(self) -> list[str]:
        return [
            f"Total params: {self.total_params:,} (trainable {self.trainable_params:,}, "
            f"frozen {self.frozen_params:,})",
            f"FLOPs: {self.flops:,}{f' ({_human(self.flops)})' if self.flops >= 1000 else ''} for one forward of {self.input}",
            f"Size: {_bytes_text(self.size_mb * _MB)} (parameters + buffers)",
        ]

    def __str__(self) -> str:
        header = ("Layer (type)", "Output shape", "Params", "FLOPs")
        cells = self._cells()
        widths = [max([len(header[i])] + [len(c[i]) for c in cells]) for i in range(4)]

        def line(values: Sequence[str]) -> str:
            # Names left-aligned, numbers right-aligned: the usual way to read a column of counts.
            return "  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))

        rule = "-" * len(line(header))
        out = [f"{self.model}  (input {self.input})", rule, line(header), rule]
        out += [line(c) for c in cells]
        out += [rule, *self._footer()]
        return "\n".join(out)

    def to_table(self) -> Any:
        """The summary as a ``rich.table.Table``."""
        from rich.table import Table

        table = Table(title=f"{self.model}  (input {self.input})", caption="\n".join(self._footer()))
        table.add_column("Layer (type)")
        table.add_column("Output shape")
        table.add_column("Params", justify="right")
        table.add_column("FLOPs", justify="right")
        from rich.markup import escape

        for cells in self._cells():  # "[...]" in a shape is text, not rich markup
            table.add_row(*(escape(c) if isinstance(c, str) else c for c in cells))
        return table

    def __rich__(self) -> Any:
        return self.to_table()


def _human(n: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}P"


def _shape_of(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return list(out.shape)
    if isinstance(out, nn.utils.rnn.PackedSequence):  # a text RNN's packed steps: (steps, features)
        return "packed (" + ", ".join(map(str, out.data.shape)) + ")"
    if isinstance(out, Mapping):
        return {str(k): _shape_of(v) for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return [_shape_of(v) for v in out]
    return type(out).__name__


def _shape_text(shape: Any) -> str:
    if shape is None:
        return "-"
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {_shape_text(v)}" for k, v in shape.items()) + "}"
    if isinstance(shape, list) and all(isinstance(s, int) for s in shape):
        return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    return str(shape)


def _device(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _example(model: nn.Module, input_shape: Any, input_dtype: Any) -> torch.Tensor:
    desc = spec_of(model) or {}
    if input_shape is None:
        input_shape = desc.get("input_shape")
        input_dtype = input_dtype or desc.get("input_dtype")
    if input_shape is None:
        raise ModelSpecError(
            f"summary: cannot tell the input of {type(model).__name__}; expected input_shape "
            f"(one sample, no batch dimension) or example=; received neither. Fix: "
            f"summary(model, input_shape=(20,)) or summary(model, example=(x1, x2))."
        )
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    if input_dtype is None:
        first = next((m for m in model.modules() if not list(m.children())), None)
        input_dtype = torch.int64 if isinstance(first, nn.Embedding) else torch.float32
    if not isinstance(input_dtype, torch.dtype):
        input_dtype = getattr(torch, str(input_dtype).replace("torch.", ""), None)
        if not isinstance(input_dtype, torch.dtype):
            raise ModelSpecError(f"summary: input_dtype must be a torch dtype or its name; received {input_dtype!r}.")
    # A text model reads id 0 as padding: its example is one text of full length (id 1).
    fill = 1 if any(getattr(m, "reads_token_ids", False) for m in model.modules()) else 0
    try:
        return torch.full((1, *input_shape), fill, dtype=input_dtype, device=_device(model))
    except (TypeError, RuntimeError) as exc:
        raise ModelSpecError(
            f"summary: input_shape must be the sizes of one sample, e.g. (20,) or (1, 28, 28); "
            f"received {input_shape!r} ({exc})."
        ) from None


def _describe_input(example: Any) -> str:
    def one(t: Any) -> str:
        if isinstance(t, torch.Tensor):
            return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"
        return describe(t)

    if isinstance(example, Mapping):
        return "{" + ", ".join(f"{k}: {one(v)}" for k, v in example.items()) + "}"
    if isinstance(example, tuple):
        return "(" + ", ".join(one(v) for v in example) + ")"
    return one(example)


def summary(model: nn.Module, input_shape: Sequence[int] | None = None, *, example: Any = None,
            input_dtype: Any = None) -> Summary:
    """Per-layer output shapes, parameters (trainable/frozen) and FLOPs of ``model``.

    ``input_shape`` is one sample's shape (a batch of 1 zeros is run); models built by netwright
    know their own. For several inputs pass ``example=``: a tensor, a tuple (``model(*example)``)
    or a dict (``model(**example)``). FLOPs are torch's ``FlopCounterMode`` count for that
    forward (matmuls and convolutions; element-wise ops count 0).

    >>> from netwright.models import build
    >>> s = summary(build([{"linear": 8}, "relu", {"linear": 2}], (4,)))
    >>> s.total_params, s.flops
    (58, 96)
    >>> print(s)
    Sequential  (input (1, 4) float32)
    -----------------------------------------
    Layer (type)  Output shape  Params  FLOPs
    -----------------------------------------
    0 (Linear)    (1, 8)            40     64
    1 (ReLU)      (1, 8)             0      0
    2 (Linear)    (1, 2)            18     32
    -----------------------------------------
    Total params: 58 (trainable 58, frozen 0)
    FLOPs: 96 for one forward of (1, 4) float32
    Size: 232 bytes (parameters + buffers)
    """
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"summary: expected an nn.Module; received {describe(model)}.")
    if example is None:
        example = _example(model, input_shape, input_dtype)

    outputs: dict[str, Any] = {}
    handles = []
    named = [(name, m) for name, m in model.named_modules() if name]
    for name, module in named:
        def hook(_module: nn.Module, _inputs: Any, out: Any, name: str = name) -> None:
            outputs[name] = _shape_of(out)
        handles.append(module.register_forward_hook(hook))

    counter = flop_counter()
    try:
        # eval: no Dropout draws, no BatchNorm statistics updates, batch of 1 allowed
        with eval_mode(model), torch.no_grad(), counter:
            out = call_model(model, example)
    except Exception as exc:  # noqa: BLE001 - report any forward failure with the input described
        raise ModelSpecError(
            f"summary: {type(model).__name__}'s forward failed on {_describe_input(example)}: "
            f"{first_line(exc, limit=None)}. "
            f"Fix: pass the input_shape (or example=) the model is built for."
        ) from None
    finally:
        for h in handles:
            h.remove()

    # FlopCounterMode names modules "<RootClass>.<dotted path>", each count including children.
    counts = counter.get_flop_counts()
    root = type(model).__name__
    rows = []
    for name, module in named:
        params = list(module.parameters())
        trainable = sum(p.numel() for p in params if p.requires_grad)
        total = sum(p.numel() for p in params)
        rows.append(Row(
            name=name, type=type(module).__name__, depth=name.count("."),
            output_shape=outputs.get(name), params=total, trainable=trainable,
            frozen=total - trainable, flops=int(sum(counts.get(f"{root}.{name}", {}).values())),
            leaf=not any(True for _ in module.children()),
        ))

    params = list(model.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad)
    total = sum(p.numel() for p in params)
    size = sum(t.numel() * t.element_size() for t in (*params, *model.buffers()))
    return Summary(
        model=root, input=_describe_input(example), rows=rows, total_params=total,
        trainable_params=trainable, frozen_params=total - trainable,
        flops=int(counter.get_total_flops()), size_mb=size / _MB, output_shape=_shape_of(out),
    )


def flop_counter() -> Any:
    """torch's ``FlopCounterMode``, without the ~1 s import of ``torch._dynamo``.

    torch wraps every dispatch mode's ``__torch_dispatch__`` in ``_disable_dynamo``, whose first
    call imports the whole compiler, which a summary never uses. When this torch's counter has
    the layout this relies on (a private ``_FlopCounterMode`` whose dispatch function keeps the
    unwrapped one as ``__wrapped__``), the same counter runs with the unwrapped function: the
    same counts (a test compares them); otherwise torch's own counter is returned unchanged.
    """
    from torch.utils import flop_counter as fc  # ~80 ms of torch modules building never needs

    mode = getattr(fc, "_FlopCounterMode", None)
    raw = getattr(getattr(mode, "__torch_dispatch__", None), "__wrapped__", None)
    if raw is None or not hasattr(mode, "_should_skip_dynamo"):
        return fc.FlopCounterMode(display=False)

    class _Mode(mode):
        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            return False  # else __init_subclass__ wraps __torch_dispatch__ again

        __torch_dispatch__ = raw

    class _Counter(fc.FlopCounterMode):
        def __enter__(self):  # FlopCounterMode.__enter__, with the unwrapped mode
            self.flop_counts.clear()
            self.mod_tracker.__enter__()
            self.mode = _Mode(self)
            self.mode.__enter__()
            return self

    return _Counter(display=False)
