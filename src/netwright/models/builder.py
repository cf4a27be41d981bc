"""Build an ``nn.Module`` from a JSON-able description (a *spec*).

The grammar (full reference: docs/models.md):

- ``"relu"``: a layer without arguments.
- ``{"linear": 64}``: a layer with its main argument(s) (``{"conv2d": [32, 3]}`` gives
  ``out_channels=32, kernel_size=3``); ``{"linear": {"out_features": 64, "bias": False}}``: torch's
  keyword arguments.
- ``[spec, spec, ...]``: ``nn.Sequential``.
- ``{"name": spec, "other": spec, ...}``: ``nn.Sequential`` with those child names.
- ``{"repeat": {"times": 3, "block": spec}}``: a ``ModuleList`` of 3 independent blocks, applied in turn.
- ``{"branches": {"a": spec, "b": spec}, "merge": "concat"}``: a ``ModuleDict``; every branch
  gets the input; outputs are concatenated on dim 1 (or ``"sum"``, ``"stack"``; ``"dim": k``).
- ``{"heads": {"a": spec, "b": spec}}``: a ``ModuleDict`` returning ``{"a": ..., "b": ...}``.
- ``{"residual": spec}``: ``x + block(x)``.
- ``{"module_list": [spec, ...]}``, ``{"module_dict": {"a": spec, ...}}``: torch's own
  ``nn.ModuleList`` / ``nn.ModuleDict`` (no forward: they hold blocks a class calls).
- ``{"torchvision": "resnet18", "args": {...}}``: a torchvision classification model from its
  builder function (``weights=None``: the weights come from a file, never a download).
- ``{"zoo": "cnn", **args}``: a model from :mod:`netwright.models.zoo`.
- ``{"class": "pkg.module:ClassName", "args": {...}}``: any ``nn.Module`` class. Importing a module
  runs its code, so :func:`rebuild` (a spec read from a file) imports only from
  :data:`TRUSTED_MODULES` unless the caller passes ``trust_code=True``; the check is made on the
  string, before anything is imported (:mod:`netwright.models.trust`).

Sizes that follow from the input (``in_features``, ``in_channels``, ``num_features``,
``input_size``, ``normalized_shape``) may be left out when ``input_shape`` is given: the builder
runs a zero batch through each layer as soon as it is made (in eval mode, without gradients, so
no running statistics move and no random numbers are drawn), reads the next layer's sizes off
the result, and so never leaves a lazy layer behind. The sizes it inferred are recorded
(``spec_of(model)["sizes"]``, saved in model.json), and a build given them runs nothing: a model
read from a file is made without computing a single activation (see :func:`build`).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ModelSpecError, NetwrightError, did_you_mean, short_repr
from ..util import eval_mode, first_line
from .arguments import (check_dtype, check_input_shape, check_names, check_sizes, json_copy,
                        sizes_digest)
from .budget import Budget, on_meta
from .layer_args import check_ndim, infer_sizes, layer_arguments, required_arguments
from .layers import CONTAINERS, LAYERS, Branches, Heads, LayerInfo, Repeat, Residual
from .messages import attr_path, fmt_shape, looks_like_arguments, signature_text
from .trust import (TORCHVISION_FIXED_ARGS, TRUSTED_MODULES, check_class_target,
                    import_module_class, torchvision_builder)
from .vision import adapt_input_channels, check_in_channels

__all__ = ["build", "spec_of", "rebuild", "SPEC_ATTR", "TRUSTED_MODULES", "MAX_MODULES",
           "check_class_target", "import_module_class"]

# A spec is a few hundred bytes; 'repeat' multiplies it. More modules than this is a spec made
# to exhaust memory or time, not a model.
MAX_MODULES = 10_000
MAX_DEPTH = 100  # levels of nesting in a spec

# The attribute a built model carries its own description in: {"spec", "input_shape",
# "input_dtype", "sizes"}, everything needed to rebuild it (and what a run stores in model.json).
SPEC_ATTR = "netwright_spec"

_BATCH = 2  # the dummy batch: >1 so that a layer squeezing the batch dimension shows up


def build(spec: Any, input_shape: Sequence[int] | None = None, *, input_dtype: Any = None,
          trust_code: bool = True, max_values: int | None = None,
          sizes: Mapping[str, Any] | None = None) -> nn.Module:
    """Build the ``nn.Module`` that ``spec`` describes, for inputs of ``input_shape`` per sample.

    ``input_shape`` leaves out the batch dimension: ``(20,)``, ``(1, 28, 28)``, ``(T,)`` for token
    ids (``input_dtype`` defaults to float32, or int64 when the first layer is an embedding).
    The same spec and shape always give the same structure, so a model rebuilt from its spec
    loads the original's ``state_dict``. ``trust_code=False`` refuses ``{"class": ...}`` outside
    :data:`TRUSTED_MODULES` (for specs that come from files).

    ``max_values`` bounds the parameter and buffer values of the model (for specs that come from
    files): each module is first made on the meta device, where it takes no memory, and counted;
    :class:`~netwright.models.budget.BudgetExceeded` is raised before the module that would pass
    the bound is allocated, and :class:`~netwright.models.budget.BudgetUnknown` before a lazy
    layer (whose size only a forward pass tells).

    ``sizes`` are the sizes an earlier build inferred (``spec_of(model)["sizes"]``): given them,
    the builder computes nothing, it only makes the modules. With ``max_values`` and without
    ``sizes`` (a model.json from before sizes were saved, or written by hand) they are inferred
    on the meta device first, so no activation is ever allocated for a spec from a file (a 1×1
    convolution to many channels over a large ``input_shape`` would otherwise allocate gigabytes
    with a handful of parameters); that pass imports ``torch._dynamo`` (about 2 s).

    >>> model = build({"hidden": {"linear": 13}, "act": "relu", "out": {"linear": 3}}, input_shape=(20,))
    >>> model
    Sequential(
      (hidden): Linear(in_features=20, out_features=13, bias=True)
      (act): ReLU()
      (out): Linear(in_features=13, out_features=3, bias=True)
    )
    >>> model(torch.zeros(4, 20)).shape
    torch.Size([4, 3])
    """
    spec = json_copy(spec)
    shape = check_input_shape(input_shape)
    dtype = check_dtype(input_dtype)
    digest = sizes_digest(spec, shape)
    layers = (check_sizes(json_copy(sizes)) or {}).get("layers") if sizes is not None else None
    if sizes is not None and sizes.get("of") != digest:
        layers = None  # recorded for another spec or shape (model.json edited by hand)
    if layers is None and shape is not None and max_values is not None:
        layers, ids_dtype = _sizes_on_meta(spec, shape, dtype, trust_code)
        dtype = dtype or ids_dtype
    module = None
    if layers is not None:
        builder = _Builder(None, dtype_given=dtype is not None, trust_code=trust_code,
                           max_values=max_values, sizes=layers)
        module, _ = builder.build(spec, None, "model")
        if shape is not None and any(isinstance(p, nn.parameter.UninitializedParameter)
                                     for p in module.parameters()):
            module = None  # a lazy layer (a {"class": ...} one) learns its size from a forward
    if module is None:
        x = None if shape is None else torch.zeros((_BATCH, *shape), dtype=dtype or torch.float32)
        builder = _Builder(x, dtype_given=dtype is not None, trust_code=trust_code,
                           max_values=max_values)
        module, _ = builder.build(spec, x, "model")
        layers = builder.recorded
    remember(module, spec, shape, builder.ids_dtype or dtype, {"of": digest, "layers": layers})
    return module


def _sizes_on_meta(spec: Any, shape: tuple[int, ...], dtype: torch.dtype | None,
                   trust_code: bool) -> tuple[dict, torch.dtype | None]:
    """The sizes ``spec`` infers for ``shape``, found with modules and a batch on the meta device
    (shapes only, no memory), and the input dtype it turned out to read."""
    x = torch.zeros((_BATCH, *shape), dtype=dtype or torch.float32, device="meta")
    builder = _Builder(x, dtype_given=dtype is not None, trust_code=trust_code, meta=True)
    builder.build(spec, x, "model")
    return builder.recorded, builder.ids_dtype


def spec_of(model: nn.Module) -> dict | None:
    """How ``model`` was built: ``{"spec", "input_shape", "input_dtype", "sizes"}`` (JSON-able),
    or ``None`` for a model netwright did not build. ``sizes`` are the sizes the builder inferred,
    by the path of the layer they belong to.

    >>> spec_of(build([{"linear": 2}], (3,)))  # doctest: +ELLIPSIS
    {'spec': [{'linear': 2}], 'input_shape': [3], 'input_dtype': None, 'sizes': {'of': '...', 'layers': {'model[0]': {'in_features': 3}}}}
    """
    desc = getattr(model, SPEC_ATTR, None)
    return copy.deepcopy(desc) if isinstance(desc, dict) else None


def rebuild(description: Mapping[str, Any], *, trust_code: bool = False,
            max_values: int | None = None) -> nn.Module:
    """Build a model again from what :func:`spec_of` returned (e.g. read back from model.json).

    The description may come from someone else's file, so ``{"class": ...}`` is imported only
    from :data:`TRUSTED_MODULES` unless ``trust_code=True``; ``max_values`` is :func:`build`'s.

    >>> m = build([{"linear": 2}], (3,)); r = rebuild(spec_of(m))
    >>> r.load_state_dict(m.state_dict()) and torch.equal(r(torch.ones(1, 3)), m(torch.ones(1, 3)))
    True
    """
    if not isinstance(description, Mapping) or "spec" not in description:
        raise ModelSpecError(
            f"rebuild: expected {{'spec': ..., 'input_shape': [...], 'input_dtype': ...}} as "
            f"spec_of(model) returns it; received {type(description).__name__} "
            f"{sorted(description) if isinstance(description, Mapping) else ''}."
        )
    return build(description["spec"], description.get("input_shape"),
                 input_dtype=description.get("input_dtype"), trust_code=trust_code,
                 max_values=max_values, sizes=description.get("sizes"))


def remember(module: nn.Module, spec: Any, shape: Sequence[int] | None, dtype: torch.dtype | None,
             sizes: Mapping[str, Any] | None = None) -> None:
    """Attach the description :func:`spec_of` returns (a plain attribute: no effect on printing,
    state_dict or export)."""
    desc = {
        "spec": spec,
        "input_shape": None if shape is None else list(shape),
        "input_dtype": None if dtype is None else str(dtype).replace("torch.", ""),
        "sizes": copy.deepcopy(sizes),
    }
    try:
        object.__setattr__(module, SPEC_ATTR, desc)
    except (AttributeError, TypeError):  # pragma: no cover - a module class with __slots__
        pass


# --- the builder --------------------------------------------------------------------------------


class _Builder:
    """Walks a spec, building each module and pushing a dummy batch through it.

    ``x`` is the dummy batch reaching the current place: a tensor, a dict (after ``heads``), or
    ``None`` where no input shape is known (then nothing can be inferred).
    """

    def __init__(self, root: torch.Tensor | None, *, dtype_given: bool, trust_code: bool = True,
                 max_values: int | None = None, sizes: Mapping[str, Any] | None = None,
                 meta: bool = False):
        self.root, self.dtype_given, self.trust_code = root, dtype_given, trust_code
        self.ids_dtype: torch.dtype | None = None  # set when the model turns out to read ids
        self.count = self.depth = 0
        self.budget = None if max_values is None else Budget(max_values)
        self.sizes = sizes or {}  # given: inferred sizes by path, used where no batch flows
        self.recorded: dict[str, dict[str, Any]] = {}  # inferred here, by path
        self.meta = meta  # modules made on the meta device (the sizing pass of a file's spec)

    def make(self, factory: Callable[[], Any], path: str) -> Any:
        """``factory()`` (a module's constructor), counted against the budget if there is one."""
        if self.meta:
            return on_meta(factory)
        return factory() if self.budget is None else self.budget.make(factory, path)

    def record(self, path: str, name: str, value: Any) -> None:
        self.recorded.setdefault(path, {})[name] = value

    def given_size(self, path: str, name: str) -> Any:
        return self.sizes.get(path, {}).get(name)

    def build(self, spec: Any, x: Any, path: str) -> tuple[nn.Module, Any]:
        self.depth += 1
        try:
            return self._build(spec, x, path)
        finally:
            self.depth -= 1

    def _build(self, spec: Any, x: Any, path: str) -> tuple[nn.Module, Any]:
        self.count += 1
        if self.depth > MAX_DEPTH:
            raise ModelSpecError(
                f"{path[:120]}...: the spec is nested more than {MAX_DEPTH} levels deep; a real "
                f"model needs a handful (deeper would exhaust Python's stack). Fix: flatten it, or "
                f"use 'repeat' for repeated blocks."
            )
        if self.count > MAX_MODULES:
            raise ModelSpecError(
                f"{path}: the spec describes more than {MAX_MODULES:,} modules; netwright stops "
                f"there rather than exhaust memory (a spec of a few bytes can 'repeat' without end). "
                f"Fix: lower 'times' in the 'repeat' blocks."
            )
        if isinstance(spec, list):
            return self.sequential(list(enumerate(spec)), x, path, named=False)
        if isinstance(spec, str):
            return self.layer(spec, None, x, path)
        if isinstance(spec, Mapping):
            keys = list(spec)
            if "zoo" in spec:
                return self.zoo(spec, x, path)
            if "class" in spec and set(keys) <= {"class", "args"}:
                return self.klass(spec, x, path)
            if "torchvision" in spec and set(keys) <= {"torchvision", "args", "in_channels"}:
                return self.torchvision(spec, x, path)
            if "branches" in spec and set(keys) <= {"branches", "merge", "dim"}:
                return self.branches(spec, x, path)
            if len(keys) == 1 and keys[0] in ("repeat", "heads", "residual", "module_list",
                                              "module_dict"):
                return getattr(self, keys[0])(spec[keys[0]], x, path)
            if len(keys) == 1 and keys[0] in LAYERS:
                return self.layer(keys[0], spec[keys[0]], x, path)
            if len(keys) == 1 and looks_like_arguments(spec[keys[0]]) and did_you_mean(keys[0], LAYERS):
                raise self.unknown_layer(keys[0], path)
            if not keys:
                raise ModelSpecError(
                    f"{path}: expected a layer or a mapping of names to layers; received an empty "
                    f"mapping. Fix: e.g. {{'linear': 64}}, or remove it."
                )
            return self.sequential(list(spec.items()), x, path, named=True)
        raise ModelSpecError(
            f"{path}: expected a layer name ('relu'), a layer with arguments ({{'linear': 64}}), a "
            f"list of layers or a mapping of names to layers; received {short_repr(spec)}."
        )

    # containers ----------------------------------------------------------------------------

    def sequential(self, items: list[tuple[Any, Any]], x: Any, path: str, *, named: bool):
        if named:
            check_names([name for name, _ in items], nn.Sequential(), path, "layer")
        modules: OrderedDict[str, nn.Module] = OrderedDict()
        previous, last = None, None
        for key, item in items:
            where = attr_path(path, key) if named else f"{path}[{key}]"
            if previous is not None and (isinstance(x, Mapping) or isinstance(last, Heads)):
                raise ModelSpecError(
                    f"{where} follows {previous}, which returns a dict of outputs"
                    f"{' ' + fmt_shape(x) if isinstance(x, Mapping) else ''}; a "
                    f"layer needs one tensor. Fix: make 'heads' the last block, and put layers "
                    f"that belong to one output inside its head."
                )
            module, x = self.build(item, x, where)
            modules[str(key)] = module
            previous, last = where, module
        return nn.Sequential(modules), x

    def repeat(self, options: Any, x: Any, path: str):
        if not isinstance(options, Mapping) or set(options) != {"times", "block"}:
            raise ModelSpecError(
                f"{path} 'repeat': expected {{'times': N, 'block': spec}}; received {short_repr(options)}. "
                f"Fix: e.g. {{'repeat': {{'times': 3, 'block': [{{'linear': 64}}, 'relu']}}}}."
            )
        times = options["times"]
        if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= MAX_MODULES:
            raise ModelSpecError(f"{path} 'repeat': times must be an integer from 1 to {MAX_MODULES:,}; "
                                 f"received {short_repr(times)}.")
        blocks = []
        for i in range(times):
            block, x = self.build(options["block"], x, f"{path}[{i}]")
            blocks.append(block)
        return Repeat(blocks), x

    def residual(self, block_spec: Any, x: Any, path: str):
        block, out = self.build(block_spec, x, f"{path}.block")
        if isinstance(x, torch.Tensor):
            if not isinstance(out, torch.Tensor) or out.shape != x.shape:
                fix = ""
                if isinstance(out, torch.Tensor) and out.ndim == x.ndim and x.ndim >= 2:
                    fix = f"make the block end with {x.shape[1]} features/channels (it ends with {out.shape[1]}) and keep the other sizes, or "
                raise ModelSpecError(
                    f"{path} 'residual' computes x + block(x), so the block must keep the shape; it "
                    f"maps {fmt_shape(x)} to {fmt_shape(out)}. Fix: {fix}take the block out of 'residual'."
                )
            out = x + out
        return Residual(block), out

    def _mapping_of_blocks(self, what: str, blocks: Any, path: str, example: str) -> None:
        if not isinstance(blocks, Mapping) or not blocks:
            raise ModelSpecError(
                f"{path} '{what}': expected a non-empty mapping of names to blocks; received "
                f"{short_repr(blocks)}. Fix: e.g. {example}."
            )
        check_names(list(blocks), nn.ModuleDict(), path, what)

    def branches(self, spec: Mapping[str, Any], x: Any, path: str):
        blocks = spec["branches"]
        self._mapping_of_blocks("branches", blocks, path,
                                "{'branches': {'wide': {'linear': 32}, 'deep': [{'linear': 32}, 'relu']}}")
        modules, outs = {}, []
        for name, branch_spec in blocks.items():
            modules[name], out = self.build(branch_spec, x, f"{path}[{name!r}]")
            outs.append(out)
        try:
            module = Branches(modules, merge=spec.get("merge", "concat"), dim=spec.get("dim", 1))
        except (ValueError, TypeError) as exc:
            raise ModelSpecError(f"{path} 'branches': {exc}.") from None
        if x is None:
            return module, None
        try:
            merged = module.merge_outputs(outs)
        except (RuntimeError, TypeError, IndexError) as exc:
            shapes = ", ".join(f"{name!r}: {fmt_shape(o)}" for name, o in zip(blocks, outs))
            fix = ("give the branches outputs that differ only in that dimension" if module.merge == "concat"
                   else "give every branch the same output shape")
            raise ModelSpecError(
                f"{path} 'branches' cannot {module.merge} the outputs of its branches"
                f"{' along dim ' + str(module.dim) if module.merge != 'sum' else ''}: {shapes} "
                f"({first_line(exc, limit=None)}). Fix: {fix}."
            ) from None
        return module, merged

    def heads(self, blocks: Any, x: Any, path: str):
        self._mapping_of_blocks("heads", blocks, path,
                                "{'heads': {'label': {'linear': 10}, 'box': {'linear': 4}}}")
        modules, outs = {}, {}
        for name, head_spec in blocks.items():
            modules[name], outs[name] = self.build(head_spec, x, f"{path}[{name!r}]")
        return Heads(modules), (None if x is None else outs)

    def module_list(self, items: Any, x: Any, path: str):
        if not isinstance(items, list):
            raise ModelSpecError(f"{path} 'module_list': expected a list of blocks; received "
                                 f"{short_repr(items)}. Fix: e.g. {{'module_list': [{{'linear': "
                                 f"{{'in_features': 4, 'out_features': 4}}}}, 'relu']}}.")
        self.no_forward("module_list", x, path)
        return nn.ModuleList([self.build(item, None, f"{path}[{i}]")[0]
                              for i, item in enumerate(items)]), None

    def module_dict(self, blocks: Any, x: Any, path: str):
        if not isinstance(blocks, Mapping):
            raise ModelSpecError(f"{path} 'module_dict': expected a mapping of names to blocks; "
                                 f"received {short_repr(blocks)}. Fix: e.g. "
                                 f"{{'module_dict': {{'encoder': ['flatten', 'relu']}}}}.")
        check_names(list(blocks), nn.ModuleDict(), path, "module_dict")
        self.no_forward("module_dict", x, path)
        return nn.ModuleDict({name: self.build(block, None, f"{path}[{name!r}]")[0]
                              for name, block in blocks.items()}), None

    def no_forward(self, what: str, x: Any, path: str) -> None:
        """torch's ModuleList and ModuleDict hold modules but cannot be called."""
        if x is not None:
            raise ModelSpecError(
                f"{path} '{what}' holds modules without a forward of its own (torch's "
                f"nn.{'ModuleList' if what == 'module_list' else 'ModuleDict'} cannot be called), so "
                f"it cannot take the input {fmt_shape(x)}. Fix: use 'repeat' to apply blocks in "
                f"turn, 'branches' or 'heads' to give each block the input, or build it without "
                f"input_shape (then give every size)."
            )

    # things from elsewhere -----------------------------------------------------------------

    def zoo(self, spec: Mapping[str, Any], x: Any, path: str):
        from . import zoo  # the zoo builds its layer specs with this module: import late

        args = {k: v for k, v in spec.items() if k != "zoo"}
        shape = tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else None
        if shape is not None:
            self.record(path, "input_shape", list(shape))
        elif x is None and self.given_size(path, "input_shape") is not None:
            shape = tuple(self.given_size(path, "input_shape"))
        made = self.make(lambda: zoo.make(spec["zoo"], shape, args, where=path), path)
        if isinstance(made, nn.Module):
            if getattr(made, "reads_token_ids", False) and isinstance(x, torch.Tensor) \
                    and x.is_floating_point() and x is self.root and not self.dtype_given:
                self.ids_dtype = torch.int64  # a text model: the check batch (and model.json) are ids
                x = torch.zeros_like(x, dtype=torch.int64)
            return made, self.trace(made, x, path, f"zoo {spec['zoo']!r}")
        return self.build(made, x, path)

    def klass(self, spec: Mapping[str, Any], x: Any, path: str):
        target, args = spec["class"], spec.get("args") or {}
        cls = import_module_class(target, path, trust_code=self.trust_code)
        if not isinstance(args, Mapping):
            raise ModelSpecError(f"{path} {target!r}: 'args' must be a mapping of keyword arguments; received {short_repr(args)}.")
        try:
            module = self.make(lambda: cls(**args), path)
        except TypeError as exc:
            raise ModelSpecError(
                f"{path} {target!r} cannot be made with args {short_repr(dict(args))}: "
                f"{first_line(exc, limit=None)}. "
                f"Fix: use the arguments of {cls.__name__}{signature_text(cls)}."
            ) from None
        return module, self.trace(module, x, path, repr(target))

    def torchvision(self, spec: Mapping[str, Any], x: Any, path: str):
        name, args = spec["torchvision"], spec.get("args") or {}
        builder = torchvision_builder(name, path, trust_code=self.trust_code)
        fixed = [k for k in TORCHVISION_FIXED_ARGS if isinstance(args, Mapping) and k in args]
        if not isinstance(args, Mapping) or fixed:
            raise ModelSpecError(
                f"{path} torchvision {name!r}: 'args' must be a mapping of the model's keyword "
                f"arguments without {', '.join(TORCHVISION_FIXED_ARGS)} (netwright never downloads "
                f"weights: they come from the weights file); received {short_repr(args)}."
            )
        in_channels = spec.get("in_channels", 3)
        check_in_channels(in_channels, path)  # before anything is made
        try:
            module = self.make(lambda: adapt_input_channels(builder(weights=None, **args),
                                                            in_channels, path), path)
        except NetwrightError:
            raise  # the budget's own errors, and the stem that cannot be adapted
        except (TypeError, ValueError) as exc:
            raise ModelSpecError(
                f"{path} torchvision {name!r} cannot be made with args {short_repr(dict(args))}: "
                f"{first_line(exc, limit=None)}. Fix: use the keyword arguments of "
                f"torchvision.models.{name} (e.g. num_classes)."
            ) from None
        return module, self.trace(module, x, path, f"torchvision {name!r}")

    # layers --------------------------------------------------------------------------------

    def unknown_layer(self, name: Any, path: str) -> ModelSpecError:
        return ModelSpecError(
            f"{path}: unknown layer {name!r}.{did_you_mean(str(name), LAYERS)} Expected one of: "
            f"{', '.join(LAYERS)}; or a block: {', '.join(CONTAINERS)}."
        )

    def layer(self, name: str, value: Any, x: Any, path: str):
        info = LAYERS.get(name)
        if info is None:
            raise self.unknown_layer(name, path)
        label = f"{path} {name!r}"
        kwargs = {**info.defaults, **layer_arguments(info, value, label)}
        inferred = info.infer is not None and info.infer not in kwargs
        if isinstance(x, torch.Tensor):
            x = self.check_input(info, kwargs, x, label)
            if inferred and info.infer in kwargs:
                self.record(path, info.infer, kwargs[info.infer])
        elif x is None and inferred and self.given_size(path, info.infer) is not None:
            kwargs[info.infer] = self.given_size(path, info.infer)
        elif x is not None:
            raise ModelSpecError(f"{label} needs one tensor as input; it receives {fmt_shape(x)}.")
        missing = [a for a in required_arguments(info) if a not in kwargs]
        if missing:
            if missing == [info.infer]:
                raise ModelSpecError(
                    f"{label} needs {info.infer}, which can only be inferred from the input shape. "
                    f"Fix: pass input_shape to build(), e.g. build(spec, input_shape=(20,)), or "
                    f"set {info.infer}."
                )
            main = [a for a in info.main if a != info.infer]
            raise ModelSpecError(
                f"{label} needs {', '.join(missing)}; received {kwargs or 'no arguments'}. Fix: "
                f"e.g. {{{name!r}: {{{', '.join(f'{a!r}: ...' for a in missing)}}}}}"
                + (f", or {{{name!r}: [{', '.join(main)}]}}." if len(main) > 1 else ".")
            )
        try:
            module = self.make(lambda: info.cls(**kwargs), path)
        except NetwrightError:
            raise  # the budget's own errors
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ModelSpecError(
                f"{label} ({info.torch_name}) cannot be made with {kwargs}: "
                f"{first_line(exc, limit=None)}. "
                f"Fix: check the values against "
                f"{'torch' if info.torch_name.startswith('torch.') else 'netwright'}'s "
                f"documentation of {info.cls.__name__}."
            ) from None
        return module, self.trace(module, x, path, repr(name))

    def check_input(self, info: LayerInfo, kwargs: dict, x: torch.Tensor, label: str) -> torch.Tensor:
        """Check the incoming dummy batch against the layer and fill in the inferable size."""
        check_ndim(info, x, label)
        if info.name == "embedding":
            if x.is_floating_point():
                if x is self.root and not self.dtype_given:
                    # The model reads token ids: the dummy batch (and model.json) say so.
                    self.ids_dtype = torch.int64
                    return torch.zeros_like(x, dtype=torch.int64)
                raise ModelSpecError(
                    f"{label} expects integer token ids; it receives floats {fmt_shape(x)}. Fix: put "
                    f"'embedding' first and feed int64 ids (input_dtype='int64')."
                )
            return x
        return infer_sizes(info, kwargs, x, label)

    def trace(self, module: nn.Module, x: Any, path: str, what: str) -> Any:
        """The module's output for the dummy batch ``x``, with every module's mode left as it was."""
        if x is None:
            return None
        try:
            # eval: BatchNorm must not update its running statistics, Dropout must not draw
            with eval_mode(module), torch.no_grad():
                if isinstance(x, Mapping):
                    return module(**x)
                return module(x)
        except Exception as exc:  # noqa: BLE001 - any failure here is a spec that cannot chain
            raise ModelSpecError(
                f"{path} {what} cannot take an input of shape {fmt_shape(x)}: "
                f"{first_line(exc, limit=None)}. Fix: "
                f"check its arguments against the incoming shape (the layers before it produce "
                f"{fmt_shape(x)})."
            ) from None
