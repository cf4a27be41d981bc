"""Fitting a checkpoint's keys to a model's, and the :class:`LoadReport` of what was done.

Keys pair by name and shape; in ``repair`` and ``partial`` mode also after undoing wrapper
prefixes (:data:`WRAPPER_PREFIXES`), and renamed layers pair by their parameters' names and
shapes (and, among alike layers, by order where the order is known). What is left is reported:
missing, unexpected, or paired by name with another shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .weights_file import SHOWN

#: Prefixes that wrappers add to every key: DataParallel/DDP, torch.compile, and the attribute
#: name common wrappers (Lightning modules among them) keep the network under.
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.", "net.")

Shape = tuple[int, ...]


@dataclass
class LoadReport:
    """What :func:`load_weights` did: which model keys were loaded, renamed, left out.

    ``shape_mismatched`` maps a model key to (checkpoint shape, model shape); ``renamed`` maps
    each checkpoint key that was loaded (or paired) under another name to the model key;
    ``tied`` maps a model key to the key it shares its tensor with, when it was filled that way.

    >>> r = LoadReport(source="w.safetensors", mode="strict", matched=["weight", "bias"])
    >>> r.ok, r.to_dict()["matched"]
    (True, ['weight', 'bias'])
    """

    source: str
    mode: str
    location: str = "the top level"
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatched: dict[str, tuple[Shape, Shape]] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    tied: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every model key was loaded and every checkpoint key used."""
        return not (self.missing or self.unexpected or self.shape_mismatched)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (shapes as lists)."""
        return {"source": self.source, "mode": self.mode, "location": self.location,
                "matched": list(self.matched), "missing": list(self.missing),
                "unexpected": list(self.unexpected),
                "shape_mismatched": {k: [list(a), list(b)]
                                     for k, (a, b) in self.shape_mismatched.items()},
                "renamed": dict(self.renamed), "tied": dict(self.tied)}

    def __str__(self) -> str:
        lines = [f"loaded {len(self.matched)} tensors from {self.source!r} "
                 f"(weights at {self.location}; mode={self.mode!r})"]
        if self.renamed:
            lines.append(f"  renamed ({len(self.renamed)}): "
                         + listing(f"{s!r} -> {d!r}" for s, d in self.renamed.items()))
        if self.tied:
            lines.append(f"  tied ({len(self.tied)}): "
                         + listing(f"{k!r} shares {v!r}" for k, v in self.tied.items()))
        if self.shape_mismatched:
            lines.append(f"  shape mismatched, kept as initialized ({len(self.shape_mismatched)}): "
                         + listing(f"{k!r} checkpoint {a} vs model {b}"
                                    for k, (a, b) in self.shape_mismatched.items()))
        if self.missing:
            lines.append(f"  missing from the checkpoint, kept as initialized "
                         f"({len(self.missing)}): " + listing(map(repr, self.missing)))
        if self.unexpected:
            lines.append(f"  in the checkpoint but not the model, ignored "
                         f"({len(self.unexpected)}): " + listing(map(repr, self.unexpected)))
        return "\n".join(lines)


def listing(items: Iterable[str], limit: int = SHOWN) -> str:
    items = list(items)
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _canonical(key: str) -> str:
    """A key without wrapper prefixes: what it would be on the bare network."""
    key = key.replace("._orig_mod.", ".")  # a torch.compile'd submodule
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix) and len(key) > len(prefix):
                key, stripped = key[len(prefix):], True
    return key


def _natural(key: str) -> tuple:
    """Sort key under which 'layers.10' follows 'layers.2', as modules were registered."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in key.split("."))


def _groups(keys: Iterable[str]) -> dict[str, dict[str, str]]:
    """Keys grouped by module path: {module path: {leaf name: key}}, in the given order."""
    groups: dict[str, dict[str, str]] = {}
    for key in keys:
        module, _, leaf = key.rpartition(".")
        groups.setdefault(module, {})[leaf] = key
    return groups


def _structural(src: list[str], dst: list[str], src_shapes: Mapping[str, Shape],
                dst_shapes: Mapping[str, Shape], src_ordered: bool) -> dict[str, str]:
    """Pair renamed modules: same leaf names and shapes; among modules alike in that, by order.

    A module is matched only to one with the very same parameters and buffers (names like
    ``weight``/``bias`` and shapes). When several modules look alike (a stack of equal layers)
    their order decides, which is trusted only when it is known: a torch.save'd dict keeps the
    modules' order, netwright records it in safetensors; without it, only names that differ in
    indices alone ('0', '2', '4') are ordered, by their numbers. Returns {model key: source key}.
    """
    def signature(group: dict[str, str], shapes: Mapping[str, Shape]) -> tuple:
        return tuple(sorted((leaf, shapes[key]) for leaf, key in group.items()))

    src_groups = _groups(src if src_ordered else sorted(src, key=_natural))
    dst_groups = _groups(dst)
    src_by_sig: dict[tuple, list[str]] = {}
    for module, group in src_groups.items():
        src_by_sig.setdefault(signature(group, src_shapes), []).append(module)
    dst_by_sig: dict[tuple, list[str]] = {}
    for module, group in dst_groups.items():
        dst_by_sig.setdefault(signature(group, dst_shapes), []).append(module)
    pairs: dict[str, str] = {}
    for sig, dst_modules in dst_by_sig.items():
        src_modules = src_by_sig.get(sig, [])
        if len(src_modules) != len(dst_modules):
            continue  # some of them are new or gone: which is which cannot be told
        if len(src_modules) > 1 and not src_ordered and \
                len({re.sub(r"\d+", "#", m) for m in src_modules}) > 1:
            continue
        for s_mod, d_mod in zip(src_modules, dst_modules):
            for leaf, d_key in dst_groups[d_mod].items():
                pairs[d_key] = src_groups[s_mod][leaf]
    return pairs


@dataclass
class _Plan:
    pairs: dict[str, str]  # model key → source key, shapes equal
    mismatched: dict[str, str]  # model key → source key, shapes differ
    missing: list[str]
    unexpected: list[str]


def plan_keys(src_shapes: Mapping[str, Shape], dst_shapes: Mapping[str, Shape], repair: bool,
          src_ordered: bool) -> _Plan:
    pairs = {k: k for k in dst_shapes if k in src_shapes and src_shapes[k] == dst_shapes[k]}

    def free() -> tuple[list[str], list[str]]:
        used = set(pairs.values())
        return ([k for k in src_shapes if k not in used], [k for k in dst_shapes if k not in pairs])

    def by_canonical(keys: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k in keys:
            out.setdefault(_canonical(k), []).append(k)
        return out

    def one_to_one(src_keys: list[str], dst_keys: list[str]) -> list[tuple[str, str]]:
        """(model key, source key) for each name, wrapper prefixes undone, that exactly one
        key on each side has."""
        src_canon = by_canonical(src_keys)
        return [(d_keys[0], src_canon[canon][0]) for canon, d_keys in by_canonical(dst_keys).items()
                if len(d_keys) == 1 and len(src_canon.get(canon, [])) == 1]

    if repair:
        src_free, dst_free = free()
        pairs.update((d, s) for d, s in one_to_one(src_free, dst_free)
                     if src_shapes[s] == dst_shapes[d])
        src_free, dst_free = free()
        if src_free and dst_free:
            pairs.update(_structural(src_free, dst_free, src_shapes, dst_shapes, src_ordered))

    # What is left pairs up by name only to be reported with both shapes.
    src_free, dst_free = free()
    mismatched = {k: k for k in dst_free if k in src_shapes and k in src_free}
    if repair:
        taken = set(mismatched.values())
        mismatched.update(one_to_one([k for k in src_free if k not in taken],
                                     [k for k in dst_free if k not in mismatched]))
    taken = set(mismatched.values())
    return _Plan(pairs, mismatched, [k for k in dst_free if k not in mismatched],
                 [k for k in src_free if k not in taken])
