"""How a model netwright did not build is described as a spec that rebuilds it (for model.json).

- torch's containers (``nn.Sequential``, plain or with names, ``nn.ModuleList``,
  ``nn.ModuleDict``), nested to any depth, become the builder's own forms (``[...]``,
  ``{name: ...}``, ``{"module_list": [...]}``, ``{"module_dict": {...}}``);
- a torchvision classification model becomes ``{"torchvision": "resnet18", "args": {...}}`` when
  one of torchvision's builder functions makes the very same model;
- any other class becomes ``{"class": "pkg.mod:Class", "args": {...}}``: each ``__init__``
  parameter's value is read back from the attribute of the same name (torch's layers keep their
  arguments so; a user's class must too), and must be plain JSON data.

A description is kept only when what it builds (on the meta device: no memory, no random numbers)
is the same model: the same modules at the same places, of the same classes, the same values in
the attributes named like their ``__init__`` parameters, the same state_dict keys and shapes, and
the same shared (tied) parameters. Otherwise :class:`NotDescribable` says where and why.
"""

from __future__ import annotations

import enum
import inspect
import math
import sys
import types
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ModelSpecError, NetwrightError, describe, short_repr
from ..util import first_line
from .budget import on_meta
from .builder import rebuild
from .layers import CONTAINERS, LAYERS
from .messages import signature_text
from .trust import check_class_target

__all__ = ["NotDescribable", "describe_module", "class_target", "build_ghost", "differences",
           "float_dtype"]

# Arguments that say where a module lives or how it starts, not what it is.
_SKIP_ARGS = {"device", "dtype", "_weight", "_freeze"}
# torch's recurrent layers take *args/**kwargs; these are RNNBase's arguments, kept as attributes.
_RNN_ARGS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
             "bidirectional", "proj_size")
_MODULE_INTERNALS = frozenset(vars(nn.Module()))  # _parameters, hooks, training, ...
_MISSING = object()
_SKIP = object()


class NotDescribable(ModelSpecError):
    """model.json cannot describe this model; the message says where and why."""


def describe_module(module: nn.Module, path: str = "model") -> Any:
    """The spec that rebuilds ``module``, checked by building it on the meta device.

    >>> describe_module(nn.Sequential(nn.Linear(8, 16), nn.ModuleList([nn.ReLU()])))
    [{'class': 'torch.nn:Linear', 'args': {'in_features': 8, 'out_features': 16, 'bias': True}}, {'module_list': [{'class': 'torch.nn:ReLU', 'args': {'inplace': False}}]}]
    """
    spec = _spec(module, path)
    problem = differences(module, build_ghost(spec, path), path)
    if problem:
        fix = ""
        if isinstance(spec, Mapping) and "class" in spec:
            fix = (f" Fix: pass init_args= with the arguments {type(module).__name__} was made "
                   f"with: nw.save(model, path, init_args={{...}}).")
        raise NotDescribable(f"{path}: what model.json would say builds another model: "
                             f"{problem}.{fix}")
    return spec


def _spec(module: Any, path: str) -> Any:
    if not isinstance(module, nn.Module):
        raise NotDescribable(f"{path}: expected a module; found {describe(module)}.")
    cls = type(module)
    if cls in (nn.Sequential, nn.ModuleList, nn.ModuleDict):
        children = {name: _spec(child, _place(path, name)) for name, child in module._modules.items()}
        if cls is nn.ModuleList:
            return {"module_list": list(children.values())}
        if cls is nn.ModuleDict:
            return {"module_dict": children}
        if list(children) == [str(i) for i in range(len(children))]:
            return list(children.values())
        reads_as = _reads_as(list(children))
        if reads_as:
            raise NotDescribable(
                f"{path}: the child names {list(children)} of this nn.Sequential read as {reads_as} "
                f"in a spec, so model.json cannot name them as children."
            )
        return children
    if cls.__module__.startswith("torchvision.models."):
        spec, closest = _torchvision_spec(module, path)
        if spec is not None:
            return spec
        try:
            return {"class": class_target(cls, path), "args": _arguments(module, path)}
        except NotDescribable:
            raise NotDescribable(
                f"{path}: this {cls.__name__} is not what any of torchvision's builders makes with "
                f"the arguments that can be read off it (closest: {closest}); it was changed after "
                f"it was made (a new head?), or made by its class with other arguments."
            ) from None
    return {"class": class_target(cls, path), "args": _arguments(module, path)}


def _reads_as(names: list[str]) -> str | None:
    """What a mapping with these keys means to the builder, if not a mapping of children."""
    keys = set(names)
    for form, allowed in (("class", {"class", "args"}),
                          ("torchvision", {"torchvision", "args", "in_channels"}),
                          ("branches", {"branches", "merge", "dim"})):
        if form in keys and keys <= allowed:
            return f"a {form!r} block"
    if "zoo" in keys:
        return "a 'zoo' model"
    if len(names) == 1 and (names[0] in LAYERS or names[0] in CONTAINERS):
        return f"the {names[0]!r} {'layer' if names[0] in LAYERS else 'block'}"
    return None


def _place(path: str, dotted: str) -> str:
    """``model[0].fc`` for the module ``0.fc`` of ``model``."""
    for part in dotted.split(".") if dotted else ():
        path = f"{path}[{part}]" if part.isdigit() else (
            f"{path}.{part}" if part.isidentifier() else f"{path}[{part!r}]")
    return path


def class_target(cls: type, path: str = "model") -> str:
    """``"pkg.mod:Class"`` for a class that can be imported by that name again
    (``"torch.nn:Linear"`` for torch's own layers); :class:`NotDescribable` otherwise.

    >>> class_target(nn.Linear)
    'torch.nn:Linear'
    """
    if getattr(nn, cls.__name__, None) is cls:
        return f"torch.nn:{cls.__name__}"
    module_name, qualname = cls.__module__, cls.__qualname__
    if module_name == "__main__":
        raise NotDescribable(
            f"{path}: the model class {qualname} is defined in the script being run (__main__), "
            f"so model.json could not name it for loading later (move the class into a module, "
            f"e.g. models.py, to make it loadable by name)."
        )
    if "<locals>" in qualname:
        raise NotDescribable(
            f"{path}: the class {qualname.replace('.<locals>', '')} is defined inside a function, so "
            f"model.json could not name it for loading later (define it at the top level of a "
            f"module to make it loadable by name)."
        )
    target = f"{module_name}:{qualname}"
    try:
        check_class_target(target, path, trust_code=True)
    except NetwrightError as exc:
        raise NotDescribable(str(exc)) from None
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not cls:
        raise NotDescribable(
            f"{path}: {target!r} does not name this class when imported (the class was redefined "
            f"or renamed after the model was made), so model.json could not name it."
        )
    return target


def _arguments(module: nn.Module, path: str) -> dict[str, Any]:
    """The class's ``__init__`` arguments, read back from the attributes of the same names."""
    cls = type(module)
    torch_layer = getattr(nn, cls.__name__, None) is cls
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        raise NotDescribable(f"{path}: Python cannot tell the arguments of {cls.__name__}.") from None
    recurrent = isinstance(module, nn.RNNBase)
    if recurrent:
        # torch's recurrent layers take (*args, **kwargs) and keep RNNBase's arguments.
        names = [n for n in _RNN_ARGS if n != "proj_size" or module.proj_size]
        if isinstance(module, nn.RNN):
            names.append("nonlinearity")
        params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names] + [
            p for p in params if p.name not in names]
    args: dict[str, Any] = {}
    missing: list[str] = []
    for p in params:
        if p.name in _SKIP_ARGS:
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            if recurrent or torch_layer:
                continue
            raise NotDescribable(
                f"{path}: {cls.__name__}{signature_text(cls)} takes {'*' if p.kind is p.VAR_POSITIONAL else '**'}"
                f"{p.name}, so what was passed through it cannot be read back."
                + _fix(cls, path)
            )
        if p.kind is p.POSITIONAL_ONLY:
            raise NotDescribable(f"{path}: {cls.__name__}{signature_text(cls)} has positional-only "
                                 f"arguments; model.json passes arguments by name." + _fix(cls, path))
        value = _attribute(module, p.name)
        if value is _MISSING:
            if not (torch_layer and p.default is not p.empty):  # torch's: only how it starts
                missing.append(p.name)
            continue
        if p.name == "bias" and (value is None or isinstance(value, torch.Tensor)):
            value = value is not None  # torch keeps the bias tensor (or None) under the flag's name
        plain = _json_value(value)
        if plain is _MISSING:
            raise NotDescribable(
                f"{path}: the argument {p.name!r} of {cls.__name__} is kept as {describe(value)}, "
                f"which model.json (JSON: numbers, strings, lists, mappings) cannot hold."
                + _fix(cls, path)
            )
        args[p.name] = plain
    if missing:
        raise NotDescribable(
            f"{path}: {cls.__name__}{signature_text(cls)} keeps no attribute named "
            f"{', '.join(map(repr, missing))}, so the value{'s' if len(missing) > 1 else ''} it was "
            f"made with cannot be read back." + _fix(cls, path, missing)
        )
    return args


def _fix(cls: type, path: str, missing: list[str] | None = None) -> str:
    if path != "model":
        return (f" Fix: keep each argument of {cls.__name__}.__init__ as an attribute of the same "
                f"name (self.width = width).")
    example = ", ".join(f"{n!r}: ..." for n in (missing or [])[:4]) or "..."
    return (f" Fix: pass the arguments it was made with: nw.save(model, path, "
            f"init_args={{{example}}}).")


def _attribute(module: nn.Module, name: str) -> Any:
    if name in vars(module):
        return vars(module)[name]
    try:
        return getattr(module, name)  # a parameter, buffer, child or property
    except Exception:  # noqa: BLE001 - a property may raise anything: then it cannot be read
        return _MISSING


def _json_value(value: Any) -> Any:
    """``value`` as JSON data (tuples become lists), or _MISSING."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _MISSING
    if isinstance(value, (list, tuple)):
        items = [_json_value(v) for v in value]
        return _MISSING if any(v is _MISSING for v in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: _json_value(v) for k, v in value.items()}
        return _MISSING if any(v is _MISSING for v in items.values()) else items
    return _MISSING


# --- torchvision --------------------------------------------------------------------------------


def _torchvision_spec(module: nn.Module, path: str) -> tuple[dict | None, str]:
    """``{"torchvision": name, "args": {...}}`` if one of torchvision's classification builders
    makes this very model (its class's builders are tried, the likeliest first); else None and
    how the likeliest differs."""
    import torchvision.models as tvm

    cls = type(module)
    names = [n for n in tvm.list_models(module=tvm)
             if tvm.get_model_builder(n).__module__ == cls.__module__]
    n_params = sum(p.numel() for p in module.parameters())
    heads = _head_sizes(module)
    as_1000 = _params_with_1000_classes(module, n_params)
    likely = [n for n in names if as_1000 is not None and _published_params(tvm, n) == as_1000]
    closest = f"none of {', '.join(names) or 'its builders'} could be made"
    for name in likely + [n for n in names if n not in likely]:
        builder = tvm.get_model_builder(name)
        for args in ({} if n == 1000 else {"num_classes": n} for n in heads):
            ghost = _try_ghost(lambda: builder(weights=None, **args), real=name in likely)
            if ghost is None or type(ghost) is not cls:
                break  # this builder makes another class, or cannot be made on meta
            extra = _differing_arguments(module, ghost)
            if extra:
                args = {**args, **extra}
                ghost = _try_ghost(lambda: builder(weights=None, **args), real=name in likely)
            problem = None if ghost is None else differences(module, ghost, path)
            if ghost is not None and problem is None:
                return {"torchvision": name, "args": args}, ""
            if problem and closest.startswith("none of"):
                call = ", ".join(f"{k}={v!r}" for k, v in args.items())
                closest = f"torchvision.models.{name}({call}), where {problem}"
    return None, closest


def _head_sizes(module: nn.Module) -> list[int]:
    """Candidates for num_classes: the attribute, and the first size of the last tensor."""
    sizes = []
    if isinstance(getattr(module, "num_classes", None), int):
        sizes.append(module.num_classes)
    last = next((t for t in reversed(list(module.state_dict().values())) if t.ndim), None)
    if last is not None:
        sizes.append(int(last.shape[0]))
    return list(dict.fromkeys(sizes)) or [1000]


def _params_with_1000_classes(module: nn.Module, n_params: int) -> int | None:
    """The parameter count the same model would have with torchvision's 1000 classes (what its
    published weights' metadata states), or None if the head cannot be found."""
    tensors = [t for t in module.parameters()]
    weight = next((t for t in reversed(tensors) if t.ndim >= 2), None)
    if weight is None:
        return None
    classes = weight.shape[0]
    per_class = weight[0].numel() + (1 if tensors[-1].ndim == 1 and tensors[-1].shape[0] == classes else 0)
    return n_params + (1000 - classes) * per_class


def _published_params(tvm: Any, name: str) -> int | None:
    try:
        return int(tvm.get_model_weights(name).DEFAULT.meta["num_params"])
    except Exception:  # noqa: BLE001 - metadata is a hint for the order only
        return None


def _try_ghost(factory: Callable[[], nn.Module], *, real: bool) -> nn.Module | None:
    """The model made on meta; made for real (random numbers restored) only where ``real``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return on_meta(factory)
        except Exception:  # noqa: BLE001 - a builder that computes values (regnet) fails on meta
            if not real:
                return None
        try:
            with torch.random.fork_rng(devices=[]):
                return factory()
        except Exception:  # noqa: BLE001 - arguments this builder does not take
            return None


def _differing_arguments(module: nn.Module, ghost: nn.Module) -> dict[str, Any]:
    """The class's ``__init__`` arguments whose attributes differ between the model and the
    ghost (e.g. ``dropout``, ``aux_logits``), as JSON data."""
    try:
        params = inspect.signature(type(module).__init__).parameters
    except (TypeError, ValueError):
        return {}
    extra = {}
    for name in params:
        ours, theirs = vars(module).get(name, _MISSING), vars(ghost).get(name, _MISSING)
        plain = _json_value(ours)
        if plain is not _MISSING and _canonical(ours) != _canonical(theirs):
            extra[name] = plain
    if "dropout" in params and "dropout" not in vars(module):
        # Most classifiers pass ``dropout`` straight to their Dropout layers and keep no attribute.
        ghosts = dict(ghost.named_modules())
        rates = {m.p for n, m in module.named_modules() if isinstance(m, nn.Dropout)
                 and isinstance(ghosts.get(n), nn.Dropout) and ghosts[n].p != m.p}
        if len(rates) == 1:
            extra["dropout"] = rates.pop()
    return extra


# --- is it the same model? ----------------------------------------------------------------------


def build_ghost(spec: Any, path: str = "model") -> nn.Module:
    """The model ``spec`` describes, made on the meta device (or, for a constructor that reads
    values, for real with the random number generator's state restored afterwards)."""
    description = {"spec": spec, "input_shape": None, "input_dtype": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return on_meta(lambda: rebuild(description, trust_code=True))  # the caller's own classes
        except NetwrightError as exc:
            raise NotDescribable(f"{path}: what model.json would say cannot be built again: "
                                 f"{first_line(exc)}") from None
        except Exception:  # noqa: BLE001 - a constructor that cannot run on meta
            pass
        try:
            with torch.random.fork_rng(devices=[]):
                return rebuild(description, trust_code=True)
        except Exception as exc:  # noqa: BLE001 - any constructor failure means it cannot be reloaded
            raise NotDescribable(f"{path}: what model.json would say cannot be built again "
                                 f"({first_line(exc, typed=True)}).") from None


def differences(model: nn.Module, ghost: nn.Module, path: str = "model", *,
                shapes_only: bool = False) -> str | None:
    """The first difference between ``model`` and ``ghost`` (a rebuilt model), or None.

    >>> differences(nn.Linear(3, 2), nn.Linear(3, 4))
    'model.out_features is 2; rebuilt, 4'
    >>> differences(nn.Linear(3, 2), nn.Linear(3, 4), shapes_only=True)
    'model.weight has shape (2, 3); rebuilt, (4, 3)'
    """
    if not shapes_only:
        ours = list(model.named_modules(remove_duplicate=False))
        theirs = list(ghost.named_modules(remove_duplicate=False))
        if [n for n, _ in ours] != [n for n, _ in theirs]:
            only = [n for n, _ in ours if n not in dict(theirs)][:3]
            new = [n for n, _ in theirs if n not in dict(ours)][:3]
            return (f"the modules differ (only in the model: {[_place(path, n) for n in only]}; "
                    f"only when rebuilt: {[_place(path, n) for n in new]})")
        for (name, mine), (_, other) in zip(ours, theirs):
            problem = _module_difference(mine, other, _place(path, name))
            if problem:
                return problem
        if [n for n, _ in model.named_parameters()] != [n for n, _ in ghost.named_parameters()]:
            return "the model shares parameters between modules (tied weights); a rebuilt one would not"
    for what, a, b in (("state_dict", model.state_dict(), ghost.state_dict()),
                       ("buffers", dict(model.named_buffers()), dict(ghost.named_buffers()))):
        if list(a) != list(b):
            diff = sorted(set(a) ^ set(b))[:3] or [k for k, j in zip(a, b) if k != j][:3]
            return f"its {what} keys differ (first: {diff})"
        for key in a:
            if a[key].shape != b[key].shape:
                return (f"{_place(path, key)} has shape {tuple(a[key].shape)}; rebuilt, "
                        f"{tuple(b[key].shape)}")
    return None


def _module_difference(mine: nn.Module, other: nn.Module, where: str) -> str | None:
    if type(mine) is not type(other):
        return f"{where} is a {type(mine).__qualname__}; rebuilt, a {type(other).__qualname__}"
    try:
        params = inspect.signature(type(mine).__init__).parameters
    except (TypeError, ValueError):
        params = {}
    for name in params:
        if name in _MODULE_INTERNALS:
            continue
        ours, theirs = vars(mine).get(name, _MISSING), vars(other).get(name, _MISSING)
        a, b = _canonical(ours), _canonical(theirs)
        if a is _SKIP or b is _SKIP:
            if (ours is _MISSING) != (theirs is _MISSING):
                return f"{where}.{name} is {'missing' if ours is _MISSING else 'set'} in the model only"
            continue
        if a != b:
            return (f"{where}.{name} is {short_repr(ours)}; rebuilt, "
                    f"{short_repr(theirs) if theirs is not _MISSING else 'missing'}")
    return None


def _canonical(value: Any) -> Any:
    """A form of ``value`` that compares equal for the same setting (a tuple and the list it
    came back as from JSON; a function by its code; a tensor by its shape), or _SKIP."""
    if value is None or isinstance(value, (bool, int, str, bytes, complex, torch.dtype, enum.Enum)):
        return value
    if isinstance(value, float):
        return ("nan",) if value != value else value
    if isinstance(value, (list, tuple)):
        items = tuple(_canonical(v) for v in value)
        return _SKIP if any(v is _SKIP for v in items) else items
    if isinstance(value, dict):
        items = tuple((k, _canonical(v)) for k, v in value.items())
        return _SKIP if any(v is _SKIP for _, v in items) else items
    if isinstance(value, types.FunctionType):
        return ("function", value.__code__)
    if isinstance(value, (types.BuiltinFunctionType, type)):
        return ("object", id(value))
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape))
    return _SKIP


def float_dtype(module: nn.Module) -> torch.dtype | None:
    """The floating dtype of all the module's floating parameters and buffers, if they share
    one."""
    found = {t.dtype for t in module.state_dict().values() if t.is_floating_point()}
    return found.pop() if len(found) == 1 else None
