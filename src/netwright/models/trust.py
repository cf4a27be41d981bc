"""Which classes and functions a spec may name, checked before anything is imported.

Importing a module runs its code, so a spec read from a file (model.json, a config file) names
only classes in :data:`TRUSTED_MODULES` unless the caller passes ``trust_code=True``; the check is
made on the string. ``__main__``, private and dunder names are never imported, and a trusted
package not yet imported must come from where it is installed (not a folder of that name next
to a downloaded run).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import keyword
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ModelSpecError, UntrustedCodeError, short_repr
from ..util import first_line

__all__ = ["TRUSTED_MODULES", "check_class_target", "import_module_class", "torchvision_builder",
           "TORCHVISION_FIXED_ARGS"]

# Packages whose classes a spec from a file may name without trust_code=True: installed code
# whose import runs nothing a file's author chose.
TRUSTED_MODULES = ("torch.nn", "torchvision.models", "netwright")
# Arguments of a torchvision builder that a spec may not set: pretrained weights are downloaded
# (a file must not make netwright fetch anything); the weights come from weights.safetensors.
TORCHVISION_FIXED_ARGS = ("weights", "progress", "weights_backbone")


def check_class_target(target: Any, path: str = "model", *, trust_code: bool = False) -> tuple[str, str]:
    """Check ``"pkg.module:ClassName"`` on the string alone, before anything is imported, and
    return ``(module, qualname)``.

    Never importable: ``__main__``, private or dunder names, anything that is not a dotted name of
    identifiers. Without ``trust_code``, only modules inside :data:`TRUSTED_MODULES`.

    >>> check_class_target("torch.nn:Linear")
    ('torch.nn', 'Linear')
    >>> check_class_target("evil_run.payload:Net")
    Traceback (most recent call last):
    netwright.errors.UntrustedCodeError: model 'class': 'evil_run.payload:Net' is outside the packages netwright imports without asking (torch.nn, torchvision.models, netwright); importing it would run the code of module 'evil_run.payload'. Fix: only if you trust where this file came from, load it with trust_code=True (nw.load(path, trust_code=True); --trust-code on the command line).
    """
    if not isinstance(target, str) or target.count(":") != 1 or not all(target.split(":")):
        raise ModelSpecError(
            f"{path} 'class': expected 'package.module:ClassName'; received {short_repr(target)}. "
            f"Fix: e.g. {{'class': 'mypkg.models:Net', 'args': {{'hidden': 64}}}}."
        )
    module_name, qualname = target.split(":")
    for part in (*module_name.split("."), *qualname.split(".")):
        if not part.isidentifier() or keyword.iskeyword(part) or part.startswith("_"):
            raise UntrustedCodeError(
                f"{path} 'class': {short_repr(target)} names {short_repr(part)}; netwright never "
                f"imports __main__, private or dunder names, or anything that is not a dotted "
                f"name. Fix: name a public nn.Module class in an installed module, e.g. "
                f"'mypkg.models:Net'."
            )
    if not trust_code and not any(module_name == m or module_name.startswith(m + ".")
                                  for m in TRUSTED_MODULES):
        raise UntrustedCodeError(
            f"{path} 'class': {target!r} is outside the packages netwright imports without asking "
            f"({', '.join(TRUSTED_MODULES)}); importing it would run the code of module "
            f"{module_name!r}. Fix: only if you trust where this file came from, load it with "
            f"trust_code=True (nw.load(path, trust_code=True); --trust-code on the command line)."
        )
    if not trust_code:
        _check_not_shadowed(module_name.split(".")[0], target, path)
    return module_name, qualname


def _check_not_shadowed(top: str, target: str, path: str) -> None:
    """A trusted package not yet imported must come from its installed location: a folder named
    ``torchvision`` next to a downloaded run (the current folder is on ``sys.path`` in the REPL
    and notebooks) would otherwise be imported in its place."""
    if top in sys.modules:
        return  # already imported: its submodules are found through its own __path__
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return  # importing will fail with the ordinary 'cannot import' message
    if found is None or not found.origin:
        return
    from importlib import metadata

    try:
        expected = Path(str(metadata.distribution(top).locate_file(f"{top}/__init__.py"))).resolve()
    except metadata.PackageNotFoundError:
        expected = None
    actual = Path(found.origin).resolve()
    if actual != expected:
        raise UntrustedCodeError(
            f"{path} 'class': {target!r} would import {top!r} from {str(actual)!r}, which is not "
            f"the installed package{' (' + str(expected) + ')' if expected else ''}: a file or "
            f"folder of that name on sys.path shadows it. Fix: run from another folder, or only "
            f"if you trust that copy, load with trust_code=True."
        )


def import_module_class(target: Any, path: str = "model", *, trust_code: bool = True) -> type[nn.Module]:
    """Import ``"pkg.module:ClassName"`` and check that it is an ``nn.Module`` class (after
    :func:`check_class_target`, which runs first, on the string).

    >>> import_module_class("torch.nn:Linear", trust_code=False)
    <class 'torch.nn.modules.linear.Linear'>
    """
    module_name, qualname = check_class_target(target, path, trust_code=trust_code)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelSpecError(
            f"{path} 'class': cannot import module {module_name!r} "
            f"({first_line(exc, limit=None)}). Fix: check "
            f"the name, and that the module is installed or on PYTHONPATH."
        ) from None
    for part in qualname.split("."):
        parent, obj = obj, getattr(obj, part, None)
        if obj is None:
            names = {n.lower(): n for n in dir(parent) if not n.startswith("_")}
            close = difflib.get_close_matches(part.lower(), list(names), n=1, cutoff=0.6)
            hint = f" Did you mean {names[close[0]]!r}?" if close else ""
            raise ModelSpecError(
                f"{path} 'class': {module_name!r} has no attribute {part!r}.{hint} "
                f"Fix: give 'module:ClassName' of an nn.Module class."
            )
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise ModelSpecError(
            f"{path} 'class': expected an nn.Module class; {target!r} is "
            f"{'a class not derived from nn.Module' if isinstance(obj, type) else 'a ' + type(obj).__name__}. "
            f"Fix: point at a subclass of torch.nn.Module."
        )
    return obj


def torchvision_builder(name: Any, path: str = "model", *, trust_code: bool = False) -> Callable[..., nn.Module]:
    """The builder function of torchvision classification model ``name`` (``"resnet18"``), after
    the same checks as a class: torchvision.models is trusted, but it must be the installed one.

    Only torchvision's registered classification builders are called (they take ``weights=None``
    and keyword arguments passed on to the model class), never any other function a file names.
    """
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise ModelSpecError(
            f"{path} 'torchvision': expected the name of a torchvision classification model, e.g. "
            f"'resnet18'; received {short_repr(name)}."
        )
    check_class_target(f"torchvision.models:{name}", path, trust_code=trust_code)
    try:
        import torchvision.models as tvm
    except ImportError as exc:
        raise ModelSpecError(
            f"{path} 'torchvision': {name!r} needs torchvision, which cannot be imported "
            f"({first_line(exc)}). Fix: pip install torchvision."
        ) from None
    names = tvm.list_models(module=tvm)  # classification only: detection builders download backbones
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        raise ModelSpecError(
            f"{path} 'torchvision': {name!r} is not a torchvision classification model."
            f"{' Did you mean ' + repr(close[0]) + '?' if close else ''} Expected one of "
            f"torchvision.models.list_models(module=torchvision.models), e.g. 'resnet18'."
        )
    return tvm.get_model_builder(name)
