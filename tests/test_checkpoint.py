"""Safe weight loading (safetensors, torch.save, Lightning, run folders), state_dict repair,
and refusing corrupt, crafted and code-carrying files."""

from __future__ import annotations

import json
import resource
import struct
import tracemalloc
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import save_file

from netwright.checkpoint import (LoadReport, load_weights, load_weights_file, save_weights,
                                  state_to_cpu)
from netwright.errors import CheckpointError, ConfigError


class Net(nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        self.linear1 = nn.Linear(4, 6)
        self.norm = nn.BatchNorm1d(6)
        self.linear2 = nn.Linear(6, 5)
        self.output = nn.Linear(5, classes)

    def forward(self, x):
        return self.output(torch.relu(self.linear2(torch.relu(self.norm(self.linear1(x))))))


class Wrapped(nn.Module):
    """A network kept under an attribute, as wrappers (DataParallel, torch.compile) keep it."""

    def __init__(self, attr: str, inner: nn.Module):
        super().__init__()
        self.add_module(attr, inner)


class Trio(nn.Module):
    """Three alike layers (8 -> 8): only their names tell them apart, and the names sort
    (decoder, encoder, middle) differently from the order the layers are defined in."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(8, 8)
        self.middle = nn.Linear(8, 8)
        self.decoder = nn.Linear(8, 8)

    def forward(self, x):
        return self.decoder(torch.relu(self.middle(torch.relu(self.encoder(x)))))


TRIO_LAYERS = ("encoder", "middle", "decoder")
#: How a state_dict reaches load_weights: in memory, a torch.save'd file (keeps its key order),
#: or a safetensors file written by the safetensors library (sorted keys, no order recorded).
SOURCES = ["dict", "torch.save", "plain safetensors"]


def out_of_order(state: dict, prefix: str = "") -> OrderedDict:
    """``state`` with ``prefix`` on every key and its modules listed last to first, as a merged
    or converted file may list them: among alike layers, only the names can be trusted."""
    modules = list(dict.fromkeys(k.rpartition(".")[0] for k in state))
    return OrderedDict((prefix + k, state[k]) for m in reversed(modules) for k in state
                       if k.rpartition(".")[0] == m)


def write_source(tmp_path: Path, state: dict, how: str):
    if how == "dict":
        return state
    if how == "torch.save":
        torch.save(state, tmp_path / "w.pt")
        return tmp_path / "w.pt"
    save_file(state_to_cpu(state), tmp_path / "w.safetensors")
    return tmp_path / "w.safetensors"


def assert_layers(model: nn.Module, src: Trio):
    """Every tensor of ``model`` (a Trio) holds the value of the same tensor of ``src``; the
    three layers of ``src`` differ, so a swap of two of them cannot pass."""
    for name in TRIO_LAYERS:
        for leaf in ("weight", "bias"):
            got, want = getattr(getattr(model, name), leaf), getattr(getattr(src, name), leaf)
            assert torch.equal(got, want), f"{name}.{leaf} holds another layer's values"
    weights = [getattr(src, name).weight for name in TRIO_LAYERS]
    assert not any(torch.equal(a, b) for i, a in enumerate(weights) for b in weights[i + 1:])


class TiedLM(nn.Module):
    def __init__(self, vocab: int = 11, dim: int = 4):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, vocab, bias=False)
        self.out.weight = self.emb.weight


class Evil:
    """Unpickled with weights_only=False, this creates ``path``: code running from the file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def trained(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every tensor (BatchNorm statistics included) values an untouched model lacks."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g))
            else:
                t.fill_(7)
    return model


def assert_same(model: nn.Module, state: dict, mapping: dict | None = None):
    got = model.state_dict()
    for src_key, value in state.items():
        dst_key = (mapping or {}).get(src_key, src_key)
        assert torch.equal(got[dst_key], value), dst_key


def crafted_safetensors(path: Path, header: dict, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


# ------------------------------------------------------------------------------------------
# Sources
# ------------------------------------------------------------------------------------------

def test_strict_roundtrip_from_file_run_folder_and_checkpoint_folder(tmp_path):
    src = trained(Net())
    save_weights(src.state_dict(), tmp_path / "run" / "weights.safetensors")
    save_weights(src.state_dict(), tmp_path / "run" / "checkpoints" / "best" / "weights.safetensors")
    for source in (tmp_path / "run" / "weights.safetensors", tmp_path / "run",
                   str(tmp_path / "run" / "checkpoints" / "best")):
        model = Net()
        report = load_weights(model, source)
        assert report.ok and report.mode == "strict" and not report.renamed
        assert report.matched == list(model.state_dict())
        assert report.source.endswith("weights.safetensors")
        assert_same(model, src.state_dict())


def test_loading_copies_into_the_models_own_parameters_keeping_dtype(tmp_path):
    src = trained(Net())
    model = Net().double()
    weight = model.linear1.weight
    load_weights(model, src.state_dict())
    assert model.linear1.weight is weight and weight.dtype == torch.float64
    assert torch.allclose(weight, src.linear1.weight.double())


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
def test_torch_save_state_dict(tmp_path, suffix):
    src = trained(Net())
    torch.save(src.state_dict(), tmp_path / f"w{suffix}")
    model = Net()
    assert load_weights(model, tmp_path / f"w{suffix}").location == "the top level"
    assert_same(model, src.state_dict())


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", "model", "net", "weights"])
def test_wrapped_state_dict_is_found_and_reported(tmp_path, key):
    src = trained(Net())
    opt = torch.optim.SGD(src.parameters(), lr=0.1, momentum=0.9)
    src(torch.randn(4, 4)).sum().backward()
    opt.step()
    torch.save({key: src.state_dict(), "optimizer_state_dict": opt.state_dict(), "epoch": 5,
                "config": {"lr": 0.1}}, tmp_path / "ckpt.pt")
    model = Net()
    report = load_weights(model, tmp_path / "ckpt.pt")
    assert report.location == f"[{key!r}]" and f"[{key!r}]" in str(report)
    assert_same(model, src.state_dict())


def test_in_memory_wrapped_dict(tmp_path):
    src = trained(Net())
    model = Net()
    assert load_weights(model, {"model_state_dict": src.state_dict(), "epoch": 1}).ok
    assert_same(model, src.state_dict())


@pytest.mark.parametrize("attr", ["model", "net"])
def test_lightning_ckpt(tmp_path, attr):
    """A LightningModule keeps the network under an attribute: its .ckpt holds the weights under
    'state_dict' with that prefix, next to the trainer's own records."""
    src = trained(Trio())
    ckpt = {
        "epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0",
        "state_dict": out_of_order(src.state_dict(), f"{attr}."),
        "optimizer_states": [torch.optim.Adam(src.parameters()).state_dict()],
        "lr_schedulers": [], "hyper_parameters": {"lr": 1e-3, "width": 8},
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 3}}}},
    }
    torch.save(ckpt, tmp_path / "epoch=3-step=120.ckpt")
    model = Trio()
    with pytest.raises(CheckpointError, match="mode='repair'"):
        load_weights(model, tmp_path / "epoch=3-step=120.ckpt")
    report = load_weights(model, tmp_path / "epoch=3-step=120.ckpt", mode="repair")
    assert report.ok and report.location == "['state_dict']"
    assert report.renamed == {f"{attr}.{k}": k for k in src.state_dict()}
    assert_layers(model, src)


def test_cuda_saved_checkpoint_loads_on_cpu(tmp_path):
    """torch.save records each storage's device; a file written on a GPU says 'cuda:0'."""
    import torch.serialization as ser

    src = trained(Net())
    before = list(ser._package_registry)
    ser.register_package(-1000, lambda obj: "cuda:0", lambda obj, location: None)
    try:
        torch.save(src.state_dict(), tmp_path / "gpu.pt")
    finally:
        ser._package_registry[:] = before
    assert b"cuda:0" in (tmp_path / "gpu.pt").read_bytes()
    model = Net()
    assert load_weights(model, tmp_path / "gpu.pt").ok
    assert_same(model, src.state_dict())
    if not torch.cuda.is_available():
        with pytest.raises(CheckpointError, match="map_location='cpu'"):
            load_weights(Net(), tmp_path / "gpu.pt", map_location=None)


@pytest.mark.gpu
def test_real_cuda_checkpoint_loads_into_cpu_model(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    src = trained(Net()).cuda()
    torch.save(src.state_dict(), tmp_path / "gpu.pt")
    save_weights(src.state_dict(), tmp_path / "gpu.safetensors")
    for name in ("gpu.pt", "gpu.safetensors"):
        model = Net()
        load_weights(model, tmp_path / name)
        assert model.linear1.weight.device.type == "cpu"
        assert_same(model, state_to_cpu(src.state_dict()))
    model = Net().cuda()
    load_weights(model, tmp_path / "gpu.safetensors")
    assert model.linear1.weight.device.type == "cuda"


def test_torch_load_is_only_called_weights_only(tmp_path, monkeypatch):
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    torch.save(trained(Net()).state_dict(), tmp_path / "w.pt")
    load_weights(Net(), tmp_path / "w.pt")
    load_weights(Net(), tmp_path / "w.pt", allow_pickle=True)  # a pure state_dict: no unpickle
    assert calls and all(c["weights_only"] is True and c["map_location"] == "cpu" for c in calls)


# ------------------------------------------------------------------------------------------
# Repair: prefixes
# ------------------------------------------------------------------------------------------

# The model is a Trio (three alike 8 -> 8 layers) and the files list its layers out of order, so
# pairing layers by shape or by position would put a layer's weights into another one: these pass
# only if the prefixes themselves are mapped.

@pytest.mark.parametrize("how", SOURCES)
@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "model.", "net.",
                                    "module._orig_mod.", "model.module.", "_orig_mod.net."])
def test_repair_strips_wrapper_prefixes(tmp_path, prefix, how):
    src = trained(Trio())
    source = write_source(tmp_path, out_of_order(src.state_dict(), prefix), how)
    model = Trio()
    with pytest.raises(CheckpointError) as err:
        load_weights(model, source)
    assert "mode='repair'" in str(err.value) and f"{prefix}encoder.weight" in str(err.value)
    assert not torch.equal(model.encoder.weight, src.encoder.weight)  # strict loaded nothing
    report = load_weights(model, source, mode="repair")
    assert report.ok and report.renamed == {prefix + k: k for k in src.state_dict()}
    assert_layers(model, src)


@pytest.mark.parametrize("how", SOURCES)
@pytest.mark.parametrize("attr", ["module", "_orig_mod", "model", "net"])
def test_repair_adds_the_prefix_the_model_has(tmp_path, attr, how):
    src = trained(Trio())
    source = write_source(tmp_path, out_of_order(src.state_dict()), how)
    model = Wrapped(attr, Trio())
    report = load_weights(model, source, mode="repair")
    assert report.ok and report.renamed == {k: f"{attr}.{k}" for k in src.state_dict()}
    assert_layers(getattr(model, attr), src)


def test_repair_swaps_one_wrapper_for_another(tmp_path):
    src = trained(Trio())
    state = out_of_order(src.state_dict(), "model._orig_mod.")  # Lightning + compile
    torch.save(state, tmp_path / "w.pt")
    model = nn.DataParallel(Trio())  # on a machine without GPUs it only wraps: keys "module.*"
    report = load_weights(model, tmp_path / "w.pt", mode="repair")
    assert report.ok
    assert report.renamed == {f"model._orig_mod.{k}": f"module.{k}" for k in src.state_dict()}
    assert_layers(model.module, src)


@pytest.mark.parametrize("how", SOURCES)
def test_repair_compiled_submodule_keys(tmp_path, how):
    """Two alike submodules compiled on their own: their keys carry '._orig_mod.' inside."""
    src = trained(Trio())
    state = {k.replace("coder.", "coder._orig_mod."): v for k, v in src.state_dict().items()}
    source = write_source(tmp_path, out_of_order(state), how)
    model = Trio()
    report = load_weights(model, source, mode="repair")
    assert report.ok and report.renamed == {
        f"{m}._orig_mod.{leaf}": f"{m}.{leaf}" for m in ("encoder", "decoder")
        for leaf in ("weight", "bias")}
    assert_layers(model, src)


# ------------------------------------------------------------------------------------------
# Repair: renamed layers
# ------------------------------------------------------------------------------------------

def stack(named: bool) -> nn.Sequential:
    """Four layers, three of them alike (8 -> 8), so only their order tells them apart."""
    layers = [("inp", nn.Linear(3, 8)), ("act", nn.ReLU()), ("hidden1", nn.Linear(8, 8)),
              ("act2", nn.ReLU()), ("hidden2", nn.Linear(8, 8)), ("hidden3", nn.Linear(8, 8)),
              ("head", nn.Linear(8, 2))]
    return nn.Sequential(OrderedDict(layers)) if named else nn.Sequential(*(m for _, m in layers))


INDEX_TO_NAME = {"0": "inp", "2": "hidden1", "4": "hidden2", "5": "hidden3", "6": "head"}


def renamed_keys(state):
    return {k: INDEX_TO_NAME[k.split(".")[0]] + "." + k.split(".")[1] for k in state}


@pytest.mark.parametrize("how", ["dict", "torch.save", "netwright safetensors",
                                 "plain safetensors"])
def test_repair_maps_sequential_indices_to_ordereddict_names(tmp_path, how):
    src = trained(stack(named=False))
    state = src.state_dict()
    source = {"dict": state, "torch.save": tmp_path / "w.pt",
              "netwright safetensors": tmp_path / "w.safetensors",
              "plain safetensors": tmp_path / "plain.safetensors"}[how]
    torch.save(state, tmp_path / "w.pt")
    save_weights(state, tmp_path / "w.safetensors")
    save_file(state_to_cpu(state), tmp_path / "plain.safetensors")  # sorted: 0, 2, 4, 5, 6
    model = stack(named=True)
    with pytest.raises(CheckpointError, match="mode='repair'"):
        load_weights(model, source)
    report = load_weights(model, source, mode="repair")
    assert report.renamed == renamed_keys(state)
    assert_same(model, state, report.renamed)


def test_repair_maps_names_back_to_indices():
    src = trained(stack(named=True))
    model = stack(named=False)
    report = load_weights(model, src.state_dict(), mode="repair")
    assert report.renamed == {v: k for k, v in renamed_keys(model.state_dict()).items()}
    assert torch.equal(model[5].weight, src.hidden3.weight)


def test_repair_maps_a_renamed_attribute():
    class Renamed(Net):
        def __init__(self):
            super().__init__()
            self.classifier = self.output
            del self.output

    src = trained(Net())
    model = Renamed()
    report = load_weights(model, src.state_dict(), mode="repair")
    assert report.renamed == {"output.weight": "classifier.weight",
                              "output.bias": "classifier.bias"}
    assert torch.equal(model.classifier.weight, src.output.weight)


def test_repair_refuses_to_guess_between_alike_layers_of_unknown_order(tmp_path):
    """A plain safetensors file keeps no module order, and names like 'first'/'second' sort
    differently from how the layers were defined: pairing them by shape would be a guess."""
    state = trained(nn.Sequential(OrderedDict(
        [("second", nn.Linear(8, 8)), ("first", nn.Linear(8, 8))]))).state_dict()
    save_file(state_to_cpu(state), tmp_path / "plain.safetensors")
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    with pytest.raises(CheckpointError, match="nothing in"):
        load_weights(model, tmp_path / "plain.safetensors", mode="repair")
    report = load_weights(model, state, mode="repair")  # a dict keeps its order: 'second' first
    assert report.renamed["second.weight"] == "0.weight"


def test_repair_error_names_what_still_does_not_fit_and_loads_nothing():
    src = trained(Net(classes=10))
    state = {"module." + k: v for k, v in src.state_dict().items()}
    model = Net(classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_weights(model, state, mode="repair")
    msg = str(err.value)
    assert "'output.weight' checkpoint (10, 5) vs model (3, 5)" in msg
    assert "'output.bias' checkpoint (10,) vs model (3,)" in msg
    assert "mode='partial'" in msg and "Nothing was loaded" in msg
    assert "'module.linear1.weight' -> 'linear1.weight'" in msg
    assert_same(model, before)


# ------------------------------------------------------------------------------------------
# Strict, partial, nothing fits
# ------------------------------------------------------------------------------------------

def test_strict_error_lists_keys_shapes_and_counts():
    state = trained(Net(classes=10)).state_dict()
    state["extra.weight"] = torch.zeros(2, 2)
    del state["linear2.bias"]
    with pytest.raises(CheckpointError) as err:
        load_weights(Net(classes=3), state)
    msg = str(err.value)
    assert "1 missing, 1 unexpected, 2 with another shape" in msg
    assert "'output.weight' checkpoint (10, 5) vs model (3, 5)" in msg
    assert "'linear2.bias' (5,)" in msg and "'extra.weight' (2, 2)" in msg
    assert "Net" in msg and "mode='partial'" in msg


def test_partial_loads_the_body_and_reports_the_new_head():
    src = trained(Net(classes=10))
    state = {"module." + k: v for k, v in src.state_dict().items()}
    model = Net(classes=3)
    head = model.output.weight.detach().clone()
    report = load_weights(model, state, mode="partial")
    assert report.shape_mismatched == {"output.weight": ((10, 5), (3, 5)),
                                       "output.bias": ((10,), (3,))}
    assert not report.missing and not report.unexpected and not report.ok
    assert torch.equal(model.output.weight, head)
    assert torch.equal(model.linear2.weight, src.linear2.weight)
    assert torch.equal(model.norm.running_var, src.norm.running_var)
    assert "output.weight" not in report.matched and "norm.num_batches_tracked" in report.matched
    text = str(report)
    assert "'output.weight' checkpoint (10, 5) vs model (3, 5)" in text
    assert json.loads(json.dumps(report.to_dict()))["shape_mismatched"]["output.bias"] == [[10], [3]]


def test_partial_reports_missing_and_unexpected():
    src = Net()
    state = {k: v for k, v in trained(src).state_dict().items() if not k.startswith("norm.")}
    state["aux.weight"] = torch.ones(3)
    report = load_weights(Net(), state, mode="partial")
    assert set(report.missing) == {k for k in Net().state_dict() if k.startswith("norm.")}
    assert report.unexpected == ["aux.weight"]
    assert "aux.weight" in str(report)


@pytest.mark.parametrize("mode", ["strict", "repair", "partial"])
def test_nothing_fits_is_an_error_in_every_mode(mode):
    state = trained(nn.Conv2d(3, 7, 3)).state_dict()
    with pytest.raises(CheckpointError) as err:
        load_weights(Net(), state, mode=mode)
    msg = str(err.value)
    assert "nothing in the given" in msg and "fits model Net" in msg
    assert "'weight' (7, 3, 3, 3)" in msg and "'linear1.weight' (6, 4)" in msg


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="Did you mean 'repair'"):
        load_weights(Net(), {}, mode="repiar")
    with pytest.raises(ConfigError, match="nn.Module"):
        load_weights({"a": 1}, {})
    with pytest.raises(ConfigError, match="a path"):
        load_weights(Net(), 42)


# ------------------------------------------------------------------------------------------
# Missing files and folders
# ------------------------------------------------------------------------------------------

def test_missing_file_and_folder_without_weights(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(Net(), tmp_path / "nope.safetensors")
    run = tmp_path / "run"
    save_weights(trained(Net()).state_dict(), run / "checkpoints" / "best" / "weights.safetensors")
    (run / "metrics.csv").write_text("epoch\n")
    with pytest.raises(CheckpointError) as err:
        load_weights(Net(), run)
    msg = str(err.value)
    assert "holds no weights.safetensors" in msg and "metrics.csv" in msg and "checkpoints/" in msg
    assert str(run / "checkpoints" / "best" / "weights.safetensors") in msg


def test_a_dict_without_tensors_says_what_it_holds(tmp_path):
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="found no state_dict.*'epoch': int 3"):
        load_weights(Net(), tmp_path / "x.pt")


# ------------------------------------------------------------------------------------------
# Pickles that run code
# ------------------------------------------------------------------------------------------

def test_pickle_with_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    torch.save({"state_dict": trained(Net()).state_dict(), "extra": Evil(marker)},
               tmp_path / "evil.pt")
    assert not marker.exists()
    for mode in ("strict", "repair", "partial"):
        with pytest.raises(CheckpointError) as err:
            load_weights(Net(), tmp_path / "evil.pt", mode=mode)
        msg = str(err.value)
        assert "allow_pickle=True" in msg and "run code" in msg and "evil.pt" in msg
        assert "open" in msg  # names what it would have called
    assert not marker.exists()


def test_allow_pickle_loads_a_pickled_module(tmp_path):
    src = trained(Net())
    torch.save(src, tmp_path / "whole_model.pt")
    with pytest.raises(CheckpointError, match="allow_pickle=True"):
        load_weights(Net(), tmp_path / "whole_model.pt")
    model = Net()
    report = load_weights(model, tmp_path / "whole_model.pt", allow_pickle=True)
    assert report.location == "a pickled nn.Module"
    assert_same(model, src.state_dict())


# ------------------------------------------------------------------------------------------
# Corrupt and crafted files
# ------------------------------------------------------------------------------------------

def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def refused(path: Path, *match: str) -> str:
    """Load ``path``; it must fail with a CheckpointError naming it, in bounded memory."""
    rss = rss_peak_mb()
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as err:
            load_weights(Net(), path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    msg = str(err.value)
    assert str(path) in msg
    for text in match:
        assert text in msg, msg
    assert peak < 2**20 * 8, peak
    assert rss_peak_mb() - rss < 200
    return msg


def good_safetensors(tmp_path: Path) -> tuple[Path, bytes, dict, int]:
    path = save_weights(trained(Net()).state_dict(), tmp_path / "good.safetensors")
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return path, raw, json.loads(raw[8:8 + n]), n


def test_safetensors_header_length_beyond_the_file(tmp_path):
    _, raw, _, _ = good_safetensors(tmp_path)
    for claim in (2**40, 2**63, len(raw)):
        path = tmp_path / f"claims_{claim}.safetensors"
        path.write_bytes(struct.pack("<Q", claim) + raw[8:])
        refused(path, "corrupt or incomplete", f"{claim:,} bytes")


def test_safetensors_offsets_out_of_range_or_overlapping(tmp_path):
    data = bytes(64)
    f32 = {"dtype": "F32", "shape": [4]}
    msg = refused(crafted_safetensors(tmp_path / "range.safetensors", {
        "a": {**f32, "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [2**30, 2**30], "data_offsets": [16, 2**62 + 16]}}, data),
        "corrupt or incomplete", "'b'")
    assert "data section holds 64 bytes" in msg
    refused(crafted_safetensors(tmp_path / "overlap.safetensors", {
        "a": {**f32, "data_offsets": [0, 16]}, "b": {**f32, "data_offsets": [8, 24]},
        "c": {"dtype": "F32", "shape": [10], "data_offsets": [24, 64]}}, data),
        "corrupt or incomplete", "overlap")


def test_safetensors_shape_not_matching_the_byte_range(tmp_path):
    refused(crafted_safetensors(tmp_path / "shape.safetensors", {
        "linear1.weight": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 96]}},
        bytes(96)), "corrupt or incomplete", "'linear1.weight'", "(1048576, 1048576)")


def test_truncated_safetensors(tmp_path):
    _, raw, _, n = good_safetensors(tmp_path)
    for cut in (4, n // 2, n + 8 + 3, len(raw) - 1):
        path = tmp_path / f"cut_{cut}.safetensors"
        path.write_bytes(raw[:cut])
        refused(path, "corrupt or incomplete")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    refused(tmp_path / "empty.safetensors", "empty")


def test_every_flipped_bit_in_the_header_is_caught(tmp_path):
    """Shapes, offsets, dtypes and names are covered by the checks and the checksum; the
    netwright metadata (key order, tied names, the checksum itself) is checked too. Only the
    'format' tag, which no loader here relies on, may change unnoticed."""
    good, raw, _, n = good_safetensors(tmp_path)
    tag = raw.index(b'"format":"pt"')
    positions = [p for p in range(0, 8 + n) if not tag <= p < tag + len('"format":"pt"')]
    path = tmp_path / "flipped.safetensors"
    for pos in positions:
        flipped = bytearray(raw)
        flipped[pos] ^= 0x01
        path.write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError, match="corrupt or incomplete"):
            load_weights(Net(), path)
    assert len(positions) > 900 and load_weights(Net(), good).ok


def test_flipped_data_byte_fails_the_checksum(tmp_path):
    _, raw, _, _ = good_safetensors(tmp_path)
    flipped = bytearray(raw)
    flipped[-10] ^= 0x10
    (tmp_path / "bad.safetensors").write_bytes(bytes(flipped))
    refused(tmp_path / "bad.safetensors", "corrupt or incomplete", "checksum")
    with pytest.raises(CheckpointError, match="checksum"):
        load_weights_file(tmp_path / "bad.safetensors")


def test_corrupt_torch_files(tmp_path):
    torch.save(trained(Net()).state_dict(), tmp_path / "good.pt")
    raw = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    refused(tmp_path / "truncated.pt", "corrupt or incomplete")
    # A flipped bit in a tensor's bytes: torch.load itself would return the wrong weight.
    weight_at = raw.index(trained(Net()).state_dict()["linear2.weight"].numpy().tobytes())
    flipped = bytearray(raw)
    flipped[weight_at + 5] ^= 0x01
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    refused(tmp_path / "flipped.pt", "corrupt or incomplete", "CRC")
    (tmp_path / "garbage.bin").write_bytes(bytes(range(256)) * 4)
    refused(tmp_path / "garbage.bin", "corrupt or incomplete")
    torch.save(trained(Net()).state_dict(), tmp_path / "legacy.pt",
               _use_new_zipfile_serialization=False)
    legacy = (tmp_path / "legacy.pt").read_bytes()
    (tmp_path / "legacy_cut.pt").write_bytes(legacy[: len(legacy) // 2])
    refused(tmp_path / "legacy_cut.pt", "corrupt or incomplete")


# ------------------------------------------------------------------------------------------
# Tied weights
# ------------------------------------------------------------------------------------------

def test_tied_weights_are_stored_once_and_come_back_tied(tmp_path):
    src = trained(TiedLM())
    assert src.out.weight is src.emb.weight
    path = save_weights(src.state_dict(), tmp_path / "lm.safetensors", metadata={"note": "x"})
    with safe_open(str(path), "pt") as f:
        assert sorted(f.keys()) == ["emb.weight", "mix.bias", "mix.weight"]
        assert json.loads(f.metadata()["netwright.aliases"]) == {"out.weight": "emb.weight"}
        assert f.metadata()["note"] == "x"
    loaded = load_weights_file(path)
    assert list(loaded) == list(src.state_dict()) and loaded["out.weight"] is loaded["emb.weight"]

    model = TiedLM()
    report = load_weights(model, path)
    assert report.ok and model.out.weight is model.emb.weight
    assert torch.equal(model.out.weight, src.emb.weight)

    untied = TiedLM()
    untied.out.weight = nn.Parameter(torch.zeros(11, 4))
    load_weights(untied, path)
    assert untied.out.weight is not untied.emb.weight
    assert torch.equal(untied.out.weight, src.emb.weight)


def test_tied_model_filled_from_a_checkpoint_storing_the_weight_once():
    src = trained(TiedLM())
    state = {k: v for k, v in src.state_dict().items() if k != "out.weight"}
    model = TiedLM()
    report = load_weights(model, state)
    assert report.ok and report.tied == {"out.weight": "emb.weight"}
    assert model.out.weight is model.emb.weight and torch.equal(model.out.weight, src.emb.weight)


def test_tied_model_refuses_two_different_values():
    state = dict(trained(TiedLM()).state_dict())
    state["out.weight"] = state["emb.weight"] + 1
    with pytest.raises(CheckpointError, match="ties 'emb.weight', 'out.weight'"):
        load_weights(TiedLM(), state, mode="partial")


def test_report_str_and_to_dict():
    report = LoadReport(source="w.pt", mode="repair", matched=["a.weight"],
                        renamed={"module.a.weight": "a.weight"}, missing=["b.bias"])
    text = str(report)
    assert "'module.a.weight' -> 'a.weight'" in text and "'b.bias'" in text
    assert report.to_dict()["renamed"] == {"module.a.weight": "a.weight"} and not report.ok
