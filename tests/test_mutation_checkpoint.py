"""checkpoint/ behaviour that mutation testing (docs/testing.md) found unchecked.

Which loader a file goes to (by its first bytes, not only its suffix), the zip checks of
torch.save files (the zip-bomb bound, records written without a CRC), the messages for pickles
that need more than tensors, torch.load failures and copy failures, the hints a folder without
weights gives, and how renamed layers pair (natural order of unordered files, a group that
cannot be paired not stopping the others, a source tensor used once). Fast: tiny models only.
"""

from __future__ import annotations

import datetime
import decimal
import fractions
import os
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

from netwright.checkpoint import load_weights, save_weights, torch_file
from netwright.errors import CheckpointError

WHAT_TAIL = (". It was probably cut short by a crash or a full disk, or damaged in a copy. Fix: load "
             "an earlier checkpoint (e.g. checkpoints/best/ or checkpoints/last/ of the run), copy "
             "the file again, or save the weights again.")


def _corrupt(path: Path, what: str) -> str:
    return f"weights file {str(path)!r} is corrupt or incomplete: {what}"


def _refused(model, source, mode="strict", **kw) -> str:
    with pytest.raises(CheckpointError) as info:
        load_weights(model, source, mode, **kw)
    return str(info.value)


def _linear_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return nn.Linear(2, 3).state_dict()


def _same(model: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


# ---- which reader a file goes to ----------------------------------------------------------------

def test_a_legacy_torch_file_is_read_as_torch(tmp_path):
    state = _linear_state(1)
    torch.save(state, tmp_path / "w.pt", _use_new_zipfile_serialization=False)
    model = nn.Linear(2, 3)
    assert load_weights(model, tmp_path / "w.pt").ok and _same(model, state)


@pytest.mark.parametrize("name", ["weights.bin", "weights"])
def test_safetensors_under_another_name_is_read_as_safetensors(tmp_path, name):
    state = _linear_state(2)
    save_weights(state, tmp_path / name)
    model = nn.Linear(2, 3)
    assert load_weights(model, tmp_path / name).ok and _same(model, state)


def test_a_missing_file_in_a_missing_folder(tmp_path):
    path = tmp_path / "nowhere" / "w.safetensors"
    assert _refused(nn.Linear(2, 3), path) == (f"weights file {str(path)!r} does not exist. Fix: "
                                                f"check the path.")


# ---- memory -----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_large_file_is_never_read_into_memory_whole(tmp_path, suffix):
    # Python-side memory while loading a 32 MiB file stays far below its size: the head, the
    # header and the CRC check read in bounded pieces (tensors themselves are torch's memory).
    import tracemalloc

    state = {"weight": torch.zeros(4096, 2048)}
    path = tmp_path / f"big{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
    else:
        save_weights(state, path)
    assert path.stat().st_size > 32 * 2**20
    model = nn.Linear(2048, 4096, bias=False)
    tracemalloc.start()
    try:
        load_weights(model, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, peak


# ---- torch.save files: zip checks ----------------------------------------------------------------

def _zip_of_size(path: Path, file_size: int, inflated: int) -> None:
    """A zip of exactly ``file_size`` bytes holding one deflated record of ``inflated`` zeros."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big", b"\0" * inflated)
    pad = file_size - path.stat().st_size
    assert pad >= 0
    with zipfile.ZipFile(path, "a") as zf:
        zf.comment = b"x" * pad
    assert path.stat().st_size == file_size


def test_the_zip_bomb_bound_is_twenty_times_the_file_plus_one_mebibyte(tmp_path):
    size = 4000
    limit = 20 * size + 2**20
    at = tmp_path / "at.pt"
    _zip_of_size(at, size, limit)
    torch_file._check_torch_zip(at)  # exactly at the bound: read and checked, not refused
    over = tmp_path / "over.pt"
    _zip_of_size(over, size, limit + 1)
    with pytest.raises(CheckpointError) as info:
        torch_file._check_torch_zip(over)
    assert str(info.value) == _corrupt(over, f"record 'big' would inflate to {limit + 1:,} bytes "
                                             f"from a {size:,}-byte file") + WHAT_TAIL


def test_a_file_saved_without_crc32_loads(tmp_path):
    state = _linear_state(3)
    torch.serialization.set_crc32_options(False)
    try:
        torch.save(state, tmp_path / "nocrc.pt")
    finally:
        torch.serialization.set_crc32_options(True)
    with zipfile.ZipFile(tmp_path / "nocrc.pt") as zf:
        assert all(info.CRC == 0 for info in zf.infolist())
    model = nn.Linear(2, 3)
    assert load_weights(model, tmp_path / "nocrc.pt").ok and _same(model, state)


def _zero_crc(raw: bytearray, name: bytes) -> None:
    """Set the CRC-32 of record ``name`` to 0 in the zip's central directory."""
    at = 0
    while (at := raw.find(b"PK\x01\x02", at)) >= 0:
        length = int.from_bytes(raw[at + 28:at + 30], "little")
        if raw[at + 46:at + 46 + length] == name:
            raw[at + 16:at + 20] = b"\0\0\0\0"
            return
        at += 4
    raise AssertionError(name)


def test_a_record_without_crc_does_not_end_the_checks_of_the_others(tmp_path):
    path = tmp_path / "mixed.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a", b"first record")
        zf.writestr("b", b"second record, checked")
    raw = bytearray(path.read_bytes())
    _zero_crc(raw, b"a")
    path.write_bytes(bytes(raw))
    torch_file._check_torch_zip(path)  # 'a' is skipped, 'b' is intact
    i = raw.index(b"second record")
    raw[i] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as info:
        torch_file._check_torch_zip(path)
    assert "(BadZipFile: Bad CRC-32 for file 'b')" in str(info.value)


# ---- torch.save files: what torch.load refuses -----------------------------------------------------

class _System:
    def __reduce__(self):
        return (os.system, ("true",))


def test_a_blocked_global_is_named_with_its_module(tmp_path):
    torch.save({"weight": torch.ones(3, 2), "x": _System()}, tmp_path / "evil.pt")
    msg = _refused(nn.Linear(2, 3), tmp_path / "evil.pt")
    module = os.system.__module__  # posix (nt on Windows)
    assert msg.startswith(f"{str(tmp_path / 'evil.pt')!r} was refused as unsafe, not damaged: its "
                          f"pickle names '{module}.system', from the module '{module}', which ")
    assert f"Unpickling it could call {module}.system with arguments from the file" in msg


def test_every_object_the_pickle_needs_is_named(tmp_path):
    torch.save({"weight": torch.ones(3, 2), "f": fractions.Fraction(1, 3),
                "d": decimal.Decimal("1.5"), "t": datetime.date(2020, 1, 1)}, tmp_path / "objs.pt")
    msg = _refused(nn.Linear(2, 3), tmp_path / "objs.pt")
    head = f"{str(tmp_path / 'objs.pt')!r} is a pickle that holds Python objects, not only tensors ("
    assert msg.startswith(head)
    named = msg[len(head):].split("). Loading it would run code", 1)[0]
    assert sorted(named.split(", ")) == ["datetime.date", "decimal.Decimal", "fractions.Fraction"]


def test_a_legacy_file_needing_objects_names_them_from_torchs_message(tmp_path):
    # torch cannot list the globals of a pre-zip file; the name comes from torch.load's error
    torch.save({"weight": torch.ones(3, 2), "f": fractions.Fraction(1, 3)}, tmp_path / "old.pt",
               _use_new_zipfile_serialization=False)
    msg = _refused(nn.Linear(2, 3), tmp_path / "old.pt")
    assert msg.startswith(f"{str(tmp_path / 'old.pt')!r} is a pickle that holds Python objects, not "
                          f"only tensors (fractions.Fraction). ")


def test_bytes_that_are_no_pickle(tmp_path):
    path = tmp_path / "garbage.bin"
    path.write_bytes(bytes(range(256)) * 4)
    msg = _refused(nn.Linear(2, 3), path)
    assert msg.startswith(_corrupt(path, "it could not be unpickled as tensors (UnpicklingError: "))
    assert msg.endswith(WHAT_TAIL)


def test_a_zip_that_is_no_torch_file(tmp_path):
    path = tmp_path / "other.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.txt", b"not a checkpoint")
    msg = _refused(nn.Linear(2, 3), path)
    assert msg.startswith(_corrupt(path, "torch.load could not read it (RuntimeError: "))
    assert msg.endswith(WHAT_TAIL)


def test_cuda_tensors_without_a_cuda_device(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the file loads")
    import torch.serialization as ser

    before = list(ser._package_registry)
    ser.register_package(-1000, lambda obj: "cuda:0", lambda obj, location: None)
    try:
        torch.save(_linear_state(), tmp_path / "gpu.pt")
    finally:
        ser._package_registry[:] = before
    assert _refused(nn.Linear(2, 3), tmp_path / "gpu.pt", map_location=None) == (
        f"{str(tmp_path / 'gpu.pt')!r} holds CUDA tensors and this machine has no CUDA device. Fix: "
        f"pass map_location='cpu' (the default).")


def test_allow_pickle_keeps_map_location(tmp_path):
    torch.save(nn.Linear(2, 3), tmp_path / "module.pt")
    module = torch_file.read_torch(tmp_path / "module.pt", True, "meta")
    assert module.weight.device.type == "meta"


def test_allow_pickle_when_even_a_full_unpickle_fails(tmp_path):
    # an object of a class whose module no longer exists (another environment's package)
    gone = types.ModuleType("netwright_mutation_gone")
    Thing = type("Thing", (), {"__module__": gone.__name__, "__qualname__": "Thing"})
    gone.Thing = Thing
    sys.modules[gone.__name__] = gone
    try:
        torch.save({"weight": torch.ones(3, 2), "thing": Thing()}, tmp_path / "gone.pt")
    finally:
        del sys.modules[gone.__name__]
    path = tmp_path / "gone.pt"
    assert _refused(nn.Linear(2, 3), path, allow_pickle=True) == (
        f"{str(path)!r} could not be unpickled even with allow_pickle=True (ModuleNotFoundError: "
        f"No module named 'netwright_mutation_gone'). Fix: load it in the environment that saved it "
        f"(same packages) and save the state_dict alone.")


# ---- folders without weights --------------------------------------------------------------------

def _folder_error(folder: Path) -> str:
    return _refused(nn.Linear(2, 3), folder)


def test_a_folder_listing_of_exactly_twenty_entries_is_complete(tmp_path):
    for i in range(20):
        (tmp_path / f"f{i:02d}.txt").write_text("")
    names = ", ".join(f"f{i:02d}.txt" for i in range(20))
    assert f"it holds: {names}. Fix: pass the weights file itself" in _folder_error(tmp_path)
    (tmp_path / "f20.txt").write_text("")
    assert f"it holds: {names}, ... (21 entries). Fix: " in _folder_error(tmp_path)


def test_a_folder_hints_at_its_last_checkpoint(tmp_path):
    (tmp_path / "checkpoints" / "last").mkdir(parents=True)
    save_weights(_linear_state(), tmp_path / "checkpoints/last/weights.safetensors")
    assert _folder_error(tmp_path).endswith(
        f"Fix: pass one of these: {str(tmp_path / 'checkpoints/last/weights.safetensors')!r}.")


def test_a_folder_hints_at_four_weight_files(tmp_path):
    for name in ("a.safetensors", "b.pth", "c.bin", "d.ckpt", "e.pt", "f.txt"):
        (tmp_path / name).write_bytes(b"")
    hints = ", ".join(repr(str(tmp_path / n)) for n in ("a.safetensors", "b.pth", "c.bin", "d.ckpt"))
    assert _folder_error(tmp_path).endswith(f"Fix: pass one of these: {hints}.")


# ---- pairing renamed layers ----------------------------------------------------------------------

class _Stack(nn.Module):
    def __init__(self, n: int = 12):
        super().__init__()
        self.layers = nn.Sequential(*[nn.Linear(2, 2, bias=False) for _ in range(n)])


def test_renamed_layers_of_an_unordered_file_pair_in_natural_order(tmp_path):
    # safetensors' own writer keeps no key order (it lists blocks.10 before blocks.2):
    # layers that differ only in their index pair by its number.
    save_file({f"blocks.{i}.weight": torch.full((2, 2), float(i)) for i in range(12)},
              str(tmp_path / "w.safetensors"))
    model = _Stack()
    report = load_weights(model, tmp_path / "w.safetensors", "repair")
    assert report.renamed == {f"blocks.{i}.weight": f"layers.{i}.weight" for i in range(12)}
    assert [float(layer.weight.detach()[0, 0]) for layer in model.layers] == [float(i) for i in range(12)]


class _TwoParts(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(2, 3)
        self.head = nn.Linear(3, 1)


def test_a_layer_group_that_cannot_pair_does_not_stop_the_next():
    # two checkpoint layers look like the model's one 'first': which is which cannot be told,
    # but the head still pairs with 'out'
    torch.manual_seed(0)
    src = {}
    for name, layer in (("x1", nn.Linear(2, 3)), ("x2", nn.Linear(2, 3)), ("out", nn.Linear(3, 1))):
        src.update({f"{name}.{k}": v for k, v in layer.state_dict().items()})
    model = _TwoParts()
    report = load_weights(model, src, "partial")
    assert report.to_dict() == {
        "source": "the given dict", "mode": "partial", "location": "the top level",
        "matched": ["head.weight", "head.bias"], "missing": ["first.weight", "first.bias"],
        "unexpected": ["x1.weight", "x1.bias", "x2.weight", "x2.bias"], "shape_mismatched": {},
        "renamed": {"out.weight": "head.weight", "out.bias": "head.bias"}, "tied": {}}
    assert torch.equal(model.head.weight, src["out.weight"])


class _Three(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 2)
        self.b = nn.Linear(2, 2)
        self.c = nn.Linear(2, 5)


def test_alike_layers_of_unknown_order_do_not_stop_the_next(tmp_path):
    torch.manual_seed(1)
    src = {}
    for name, layer in (("x", nn.Linear(2, 2)), ("y", nn.Linear(2, 2)), ("z", nn.Linear(2, 5))):
        src.update({f"{name}.{k}": v.contiguous() for k, v in layer.state_dict().items()})
    save_file(src, str(tmp_path / "w.safetensors"))  # no recorded order: x/y vs a/b is a guess
    model = _Three()
    report = load_weights(model, tmp_path / "w.safetensors", "partial")
    assert report.matched == ["c.weight", "c.bias"]
    assert report.renamed == {"z.weight": "c.weight", "z.bias": "c.bias"}
    assert sorted(report.missing) == ["a.bias", "a.weight", "b.bias", "b.weight"]
    assert torch.equal(model.c.weight, src["z.weight"])


def test_a_checkpoint_tensor_pairs_with_one_model_key_only():
    # 'a.weight' (4, 1) fits the model's 'b.weight' by shape; it is not also reported as the
    # model's 'a.weight' with another shape
    model = nn.Module()
    model.a = nn.Linear(1, 5, bias=False)
    model.b = nn.Linear(1, 4, bias=False)
    src = {"a.weight": torch.ones(4, 1)}
    report = load_weights(model, src, "partial")
    assert (report.matched, report.missing, report.unexpected, report.shape_mismatched,
            report.renamed) == (["b.weight"], ["a.weight"], [], {}, {"a.weight": "b.weight"})


# ---- tied tensors -------------------------------------------------------------------------------

class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 4)
        self.out = nn.Linear(4, 11, bias=False)
        self.out.weight = self.emb.weight


def test_tied_copies_with_another_shape_are_reported_unexpected():
    torch.manual_seed(2)
    src = {"emb.weight": torch.randn(11, 4), "out.weight": torch.randn(3, 4)}
    model = _Tied()
    report = load_weights(model, src, "partial")
    assert (report.matched, report.missing, report.unexpected, report.shape_mismatched,
            report.tied) == (["emb.weight", "out.weight"], [], ["out.weight"], {},
                             {"out.weight": "emb.weight"})
    assert torch.equal(model.out.weight, src["emb.weight"])


def test_tied_copies_that_agree_at_the_first_ones_precision_load():
    torch.manual_seed(3)
    w = torch.randn(11, 4)
    src = {"emb.weight": w, "out.weight": w.double() + 1e-12}  # the same float32 values
    model = _Tied()
    assert load_weights(model, src).ok and torch.equal(model.emb.weight, w)


def test_tied_copies_agree_in_the_models_dtype_whichever_comes_first():
    """Both orders load: the copies are compared as they would be loaded (float32 here), not at
    the first copy's precision (found by mutation testing: float64 first was refused)."""
    torch.manual_seed(3)
    w = torch.randn(11, 4)
    src = {"emb.weight": w.double() + 1e-12, "out.weight": w}
    model = _Tied()
    assert load_weights(model, src).ok and torch.equal(model.emb.weight, w)


def test_a_torch_zip_named_safetensors_is_read_as_torch(tmp_path):
    """torch.load reads any path ending in .safetensors as safetensors: netwright gives it the
    open file, whose first bytes said it is a torch zip (it escaped as a raw SafetensorError)."""
    state = _linear_state()
    torch.save(state, tmp_path / "w.safetensors")
    model = nn.Linear(2, 3)
    assert load_weights(model, tmp_path / "w.safetensors").ok and _same(model, state)


def test_tied_copies_that_differ_are_refused_naming_the_model():
    torch.manual_seed(4)
    w = torch.randn(11, 4)
    assert _refused(_Tied(), {"emb.weight": w, "out.weight": w + 1}, "partial") == (
        "_Tied ties 'emb.weight', 'out.weight' (one shared tensor), but the given dict holds "
        "different values for them: loading would keep one and silently drop the other. Fix: "
        "untie them in the model to load both, or drop one of them from the checkpoint to choose.")


# ---- what strict mode suggests ---------------------------------------------------------------------

def _fix(msg: str) -> str:
    return msg.split("\nNothing was loaded. Fix: ", 1)[1]


def test_strict_suggests_repair_for_alike_layers_in_a_known_order():
    torch.manual_seed(5)
    src = {}
    for name in ("x", "y"):
        src.update({f"{name}.{k}": v for k, v in nn.Linear(2, 2).state_dict().items()})
    model = nn.Module()
    model.a, model.b = nn.Linear(2, 2), nn.Linear(2, 2)
    assert _fix(_refused(model, src)) == ("use mode='repair', which maps every key (e.g. 'x.weight' "
                                          "-> 'a.weight') and lists each mapping in the report.")


def _chain(prefixes: dict[int, str], extra: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state of ``_chain_model()``'s layers named in ``prefixes`` (layer -> key prefix)."""
    torch.manual_seed(6)
    full = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4), nn.Linear(4, 5), nn.Linear(5, 6))
    state = {}
    for i, prefix in prefixes.items():
        state.update({f"{prefix}{i}.{k}": v for k, v in full[i].state_dict().items()})
    return {**state, **extra}


def _chain_model() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4), nn.Linear(4, 5), nn.Linear(5, 6))


NEW_HEAD = ("would still not fit; if that is intended (a new head with another number of classes), "
            "use mode='partial' to load what fits and keep the rest as initialized.")


def test_strict_counts_what_repair_adds_and_lists_four_leftovers():
    src = _chain({0: "", 1: "module."}, {"extra.a": torch.ones(7), "extra.b": torch.ones(7)})
    assert _fix(_refused(_chain_model(), src)) == (
        "mode='repair' maps 2 more keys (e.g. 'module.1.weight' -> '1.weight'), but '2.weight', "
        "'2.bias', '3.weight', '3.bias', ... and 2 more " + NEW_HEAD)


def test_strict_with_only_an_unexpected_leftover_does_not_promise_repair():
    src = _chain({0: "", 1: "module.", 2: "module.", 3: "module."}, {"extra.a": torch.ones(7)})
    assert _fix(_refused(_chain_model(), src)) == (
        "mode='repair' maps 6 more keys (e.g. 'module.1.weight' -> '1.weight'), but 'extra.a' "
        + NEW_HEAD)


def test_a_failed_copy_is_a_checkpoint_error_naming_source_and_model():
    # a state_dict of a model built on the meta device has shapes but no values
    src = {"weight": torch.empty(3, 2, device="meta"), "bias": torch.empty(3, device="meta")}
    msg = _refused(nn.Linear(2, 3), src)
    assert msg.startswith("copying the weights of the given dict into Linear failed: Error(s) in "
                          "loading state_dict for Linear:")
    assert msg.endswith(". Fix: check the checkpoint's dtypes.")


class _Cwd:
    """Unpickles to os.getcwd(): a harmless call into a module torch's safe loader blocks."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_allow_pickle_loads_a_file_naming_a_blocked_module(tmp_path):
    # The caller vouches for the file: it is fully unpickled, not called damaged.
    state = _linear_state(7)
    torch.save({**state, "cwd_extra_state": _Cwd()}, tmp_path / "trusted.pt")
    assert "was refused as unsafe" in _refused(nn.Linear(2, 3), tmp_path / "trusted.pt")
    model = nn.Linear(2, 3)
    assert load_weights(model, tmp_path / "trusted.pt", allow_pickle=True).ok and _same(model, state)
