"""The model doctor: every finding code from a broken setup, no error or warning from healthy
ones (the zoo, the example configs), the article's SimpleNet, strange models, and preflight's
promise to leave the model and the RNG untouched."""

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import netwright as nw
from conftest import SimpleNet, SimpleNetLogits
from netwright.diagnosis import CODES, DoctorError, Finding, Report, doctor, preflight
from netwright.losses import resolve_loss
from netwright.models import ZOO, build_zoo

ROOT = Path(__file__).resolve().parents[1]


# --- data and small models -------------------------------------------------------------------


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def cls_data(n=64, features=20, classes=3, seed=0):
    g = _gen(seed)
    X = torch.randn(n, features, generator=g)
    y = torch.arange(n) % classes  # every class, balanced
    return X, y[torch.randperm(n, generator=g)]


def reg_data(n=64, features=20, seed=0):
    g = _gen(seed)
    X = torch.randn(n, features, generator=g)
    return X, X[:, :1] * 0.5 + 0.1 * torch.randn(n, 1, generator=g)


def mlp(features=20, out=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, out))


class DictOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(20, 3)

    def forward(self, x):
        return {"logits": self.fc(x), "aux": x.mean(1)}


class TupleOut(DictOut):
    def forward(self, x):
        return self.fc(x), x.mean(1)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(20, 3), nn.Linear(5, 3)

    def forward(self, a, b):
        return self.a(a) + self.b(b)


class NoParams(nn.Module):
    def forward(self, x):
        return x[:, :3]


class RaisesInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(20, 12), nn.Linear(12, 3)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h.view(h.shape[0], 5, -1))  # 12 features do not split into 5 rows


class FunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(20, 3)

    def forward(self, x):
        return self.fc(F.dropout(x, 0.5))  # training=True by default: active in eval too


class NanOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(20, 3)

    def forward(self, x):
        return torch.log(self.fc(x) * 0 - 1)


class TrainModeFails(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(20, 3)

    def forward(self, x):
        if self.training:
            raise RuntimeError("only in training")
        return self.fc(x)


class Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.unused = nn.Linear(20, 3), nn.Linear(20, 3)

    def forward(self, x):
        return self.fc(x)


class Dead(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.out = nn.Linear(20, 8), nn.Linear(8, 3)
        with torch.no_grad():
            self.hidden.bias.fill_(-100.0)  # every ReLU dead for standardised inputs

    def forward(self, x):
        return self.out(F.relu(self.hidden(x)))


class NanGrad(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.out = nn.Linear(20, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = self.hidden(x)
        return self.out(torch.sqrt(h - h))  # the output is fine; sqrt's slope at 0 is inf: inf - inf


class SigmoidFunctional(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(20, 1)

    def forward(self, x):
        return torch.sigmoid(self.fc(x))


class BatchSecondLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8)  # torch's default batch_first=False
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def big_output_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 1))
    with torch.no_grad():
        model[2].weight.mul_(1000)
    return model


# --- one broken setup per code ------------------------------------------------------------------


def _ce(model, X, y, **kw):
    return dict(model=model, data=(X, y), loss="cross_entropy", **kw)


def case_nw101():
    X, y = cls_data()
    return _ce(nn.Sequential(nn.Linear(20, 3), nn.Softmax(dim=1)), X, y)


def case_nw102():
    X, y = cls_data()
    return dict(model=mlp(), data=(X, y), loss="nll")


def case_nw103():
    X, y = cls_data()
    return dict(model=nn.Sequential(nn.Linear(20, 3), nn.Softmax(dim=1)), data=(X, y), loss="nll")


def case_nw104():
    X, y = cls_data()
    return _ce(mlp(), X, y[:, None].float())


def case_nw105():
    X, y = cls_data()
    return _ce(mlp(), X, y[:, None])


def case_nw106():
    X, y = cls_data()
    return _ce(mlp(), X, F.one_hot(y, 3))


def case_nw107():
    X, y = cls_data()
    multi_hot = F.one_hot(y, 3).float()
    multi_hot[:, 0] = 1.0
    return _ce(mlp(), X, multi_hot)


def case_nw108():
    X, y = cls_data()
    return _ce(mlp(), X, y + 3)


def case_nw109():
    X, y = cls_data(n=200)
    return _ce(mlp(out=10), X, y)


def case_nw110():
    X, _ = cls_data(n=200)
    y = torch.zeros(200, dtype=torch.long)
    y[:5], y[5:10] = 1, 2
    return _ce(mlp(), X, y)


def case_nw110_binary():
    X, _ = cls_data(n=200)
    y = torch.zeros(200, 1)
    y[:6] = 1.0
    return dict(model=mlp(out=1), data=(X, y), loss="bce_with_logits")


def case_nw111():
    X, y = cls_data()
    return _ce(mlp(out=1), X, y)


def case_nw112():
    X, y = cls_data()
    return _ce(mlp(), X, torch.stack([y, y], 1))


def case_nw121():
    X, y = cls_data()
    return dict(model=mlp(out=1), data=(X, (y[:, None] > 0).float()), loss="bce")


def case_nw122():
    X, y = cls_data()
    return dict(model=nn.Sequential(nn.Linear(20, 1), nn.Sigmoid()), data=(X, (y[:, None] > 0).float()),
                loss="bce_with_logits")


def case_nw122_functional():
    X, y = cls_data()
    return dict(model=SigmoidFunctional(), data=(X, (y[:, None] > 0).float()), loss="bce_with_logits")


def case_nw123():
    X, y = cls_data()
    return dict(model=mlp(out=1), data=(X, y[:, None].float()), loss="bce_with_logits")


def case_nw131():
    X, y = reg_data()
    return dict(model=mlp(out=1), data=(X, y[:, 0]), loss="mse")


def case_nw132():
    X, y = reg_data()
    return dict(model=mlp(out=1), data=(X, y.round().long()), loss="l1")


def case_nw190():
    X, y = cls_data()
    return _ce(DictOut(), X, y)


def case_nw190_custom():
    X, y = cls_data()

    def broken(out, target):
        raise ValueError("this loss needs a mask")
    return dict(model=mlp(), data=(X, y), loss=broken)


def case_nw191():
    X, y = cls_data()
    return dict(model=mlp(), data=(X, y), loss=lambda out, t: out.mean() * float("nan"))


def case_nw192():
    X, y = cls_data()
    return dict(model=DictOut(), data=(X, y), loss=lambda out, t: F.cross_entropy(out["logits"], t))


def case_nw201():
    X, y = cls_data()
    return _ce(nn.Linear(10, 3), X, y)


def case_nw201_images_to_linear():
    _, y = cls_data()
    return _ce(nn.Sequential(nn.Linear(64, 3)), torch.randn(64, 1, 8, 8, generator=_gen()), y)


def case_nw201_conv_channels():
    _, y = cls_data()
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    return _ce(model, torch.randn(64, 1, 8, 8, generator=_gen()), y)


def case_nw201_lstm():
    X, y = reg_data()
    return dict(model=build_zoo("lstm", input_size=3, outputs=1, hidden_size=4),
                data=(torch.randn(64, 10, 2, generator=_gen()), y), loss="mse")


def case_nw202():
    _, y = cls_data()
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    return _ce(model, torch.randn(64, 8, 8, 3, generator=_gen()), y)


def case_nw203():
    X, y = cls_data()
    return _ce(nn.Sequential(nn.Linear(20, 13), nn.ReLU(), nn.Linear(12, 3)), X, y)


def case_nw203_in_forward():
    X, y = cls_data()
    return _ce(RaisesInForward(), X, y)


def case_nw204():
    _, y = cls_data()
    pixels = np.random.default_rng(0).integers(0, 256, size=(64, 20), dtype=np.uint8)
    return _ce(mlp(), pixels, y)


def case_nw205():
    _, y = cls_data()
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(4 * 12, 3))
    return _ce(model, torch.randint(0, 20, (64, 12), generator=_gen()), y)


def case_nw206():
    X, y = cls_data()
    return _ce(mlp().eval(), X, y)


def case_nw207():
    X, y = cls_data()
    return _ce(FunctionalDropout(), X, y)


def case_nw208():
    X, y = cls_data(n=65)  # batches of 32, 32 and 1
    model = nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    return _ce(model, X, y, batch_size=32)


def case_nw208_batch_size_1():
    X, y = cls_data(n=8)
    model = nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    return _ce(model, X, y, batch_size=1)


def case_nw209():
    X, y = cls_data()
    return _ce(NanOut(), X, y)


def case_nw210():
    _, y = cls_data()
    model = nn.Sequential(nn.Conv2d(8, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 3, 3))
    return _ce(model, torch.randn(64, 8, 8, 3, generator=_gen()), y)


def case_nw211():
    _, y = cls_data()
    return _ce(BatchSecondLSTM(), torch.randn(64, 10, 4, generator=_gen()), y)


def _padded_ids(low=2):
    """64 right-padded rows of token ids (lengths 1 to 12), padding 0."""
    ids = torch.randint(low, 50, (64, 12), generator=_gen())
    lengths = torch.randint(1, 13, (64,), generator=_gen())
    ids[torch.arange(12)[None, :] >= lengths[:, None]] = 0
    ids[0, :] = torch.randint(low, 50, (12,), generator=_gen())  # one full row
    return ids


def case_nw212():
    _, y = cls_data()
    from netwright.models.zoo import build_zoo

    model = build_zoo("text_cnn", vocab_size=50, num_classes=3, padding_idx=1, channels=8)
    return _ce(model, _padded_ids(low=2), y)


def case_nw213():
    _, y = cls_data()
    from netwright.models.zoo import build_zoo

    left = _padded_ids().flip(1)  # left padding: the mask would cut every short text
    return _ce(build_zoo("text_classifier", vocab_size=50, num_classes=3), left, y)


def case_nw307():
    _, y = cls_data()
    from netwright.models.zoo import build_zoo

    ids = _padded_ids()
    ids[:, :6] = torch.where(ids[:, :6] > 0, 1, 0)  # half or more of each text is [UNK]
    return _ce(build_zoo("text_classifier", vocab_size=50, num_classes=3), ids, y)


class ListOfLayers(nn.Module):
    """The article's containers lesson, ignored: layers in a plain list are not registered."""

    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(20, 16), nn.Linear(16, 16)]
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.out(x)


class TensorWeight(nn.Module):
    def __init__(self, requires_grad):
        super().__init__()
        self.scale = torch.ones(20, requires_grad=requires_grad)  # not an nn.Parameter / buffer
        self.fc = nn.Linear(20, 3)

    def forward(self, x):
        return self.fc(x * self.scale)


class SquareFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x  # wrong: d(x*x)/dx is 2x


class Square(nn.Module):
    def forward(self, x):
        return SquareFn.apply(x)


def case_nw113():
    X, y = cls_data()
    return _ce(nn.Sequential(nn.Linear(20, 3), nn.Softmax(dim=0)), X, y)


def case_nw216():
    X, y = cls_data()
    torch.manual_seed(0)
    return _ce(ListOfLayers(), X, y)


def case_nw217():
    X, y = cls_data()
    torch.manual_seed(0)
    return _ce(TensorWeight(True), X, y)


def case_nw218():
    X, y = cls_data()
    torch.manual_seed(0)
    return _ce(TensorWeight(False), X, y)


def case_nw219():
    X, y = cls_data()
    net = mlp()
    for layer in (net[0], net[2]):
        nn.init.zeros_(layer.weight)
    return _ce(net, X, y)


def case_nw310():
    X, y = cls_data(n=96)
    return _ce(mlp(), X, y, val=(X[:32].clone(), y[:32].clone()))  # validation rows from training


def case_nw311():
    X, y = cls_data()
    X = X.clone()
    X[:, 7] = y.float() * 2 + 1  # the label in disguise
    return _ce(mlp(), X, y)


def case_nw404():
    X, y = cls_data()
    order = torch.argsort(y, stable=True)
    return _ce(mlp(), X[order], y[order], shuffle=False)


def case_nw405():
    X, y = cls_data()
    net = mlp()
    net[0].requires_grad_(False)  # half the model frozen
    return _ce(net, X, y)


def case_nw509():
    X, y = cls_data()
    torch.manual_seed(0)
    return _ce(nn.Sequential(nn.Linear(20, 8), Square(), nn.Linear(8, 3)), X, y, deep=True)


def _sound_folder(*, loud: bool = False, silent: bool = False) -> Path:
    """Two classes of real WAV files (16 kHz, 0.5 s tones with noise); one clipped or one
    silent file more when asked."""
    import tempfile

    sf = pytest.importorskip("soundfile", reason="soundfile comes with the audio extra")
    root = Path(tempfile.mkdtemp()) / "sounds"
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    for label, freq in (("high", 2000.0), ("low", 300.0)):
        (root / label).mkdir(parents=True)
        for i in range(8):
            wave = 0.4 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.02, len(t))
            sf.write(root / label / f"{i}.wav", wave.astype(np.float32), 16000)
    if loud:
        sf.write(root / "low" / "loud.wav", np.clip(3 * np.sin(2 * np.pi * 300 * t), -1, 1), 16000)
    if silent:
        sf.write(root / "high" / "quiet.wav", np.zeros(8000, dtype=np.float32), 16000)
    return root


def case_nw214():
    data = nw.audio(_sound_folder())  # 16 kHz
    model = build_zoo("audio_cnn", (1, 8000), num_classes=2, sample_rate=8000, channels=[4, 4])
    return dict(model=model, data=data, loss="cross_entropy", batch_size=8)


def case_nw215():
    data = nw.audio(_sound_folder())  # 0.5 s: 8000 samples
    model = build_zoo("audio_cnn", (1, 16000), num_classes=2, channels=[4, 4])
    return dict(model=model, data=data, loss="cross_entropy", batch_size=8)


def case_nw308():
    data = nw.audio(_sound_folder(loud=True))
    model = build_zoo("audio_cnn", (1, 8000), num_classes=2, channels=[4, 4])
    return dict(model=model, data=data, loss="cross_entropy", batch_size=8)


def case_nw309():
    data = nw.audio(_sound_folder(silent=True))
    model = build_zoo("audio_cnn", (1, 8000), num_classes=2, channels=[4, 4])
    return dict(model=model, data=data, loss="cross_entropy", batch_size=8)


def case_nw301():
    X, y = cls_data()
    X[40, 3] = float("nan")
    return _ce(mlp(), X, y)


def case_nw302():
    X, y = reg_data()
    y[50] = float("inf")
    return dict(model=mlp(out=1), data=(X, y), loss="mse")


def case_nw303():
    X, y = cls_data()
    X[:, 5] = 0.0
    return _ce(mlp(), X, y)


def case_nw304():
    _, y = cls_data()
    return _ce(mlp(), torch.ones(64, 20), y)


def case_nw305():
    _, y = cls_data()
    return _ce(mlp(), torch.rand(64, 20, generator=_gen()) * 255, y)


def case_nw306():
    X, y = reg_data()
    return dict(model=mlp(out=1), data=(X, y * 1000 + 5000), loss="mse")


def case_nw401():
    X, y = cls_data()
    model = mlp()
    return _ce(model, X, y, optimizer=torch.optim.SGD(model[0].parameters(), lr=0.1))


def case_nw402():
    X, y = cls_data()
    return _ce(mlp(), X, y, optimizer=torch.optim.SGD(mlp().parameters(), lr=0.1))


def case_nw402_empty():
    X, y = cls_data()
    return _ce(mlp(), X, y, optimizer=torch.optim.SGD([{"params": []}], lr=0.1))


def case_nw403():
    X, y = cls_data()
    return _ce(mlp().requires_grad_(False), X, y)


def case_nw411():
    X, y = cls_data()
    return _ce(mlp(), X, y, scheduler={"name": "reduce_on_plateau", "monitor": "val_accuracy"})


def case_nw412():
    X, y = cls_data()  # 2 batches per epoch x 5 epochs = 10 steps
    return _ce(mlp(), X, y, epochs=5, scheduler={"name": "onecycle", "total_steps": 6})


def case_nw413():
    X, y = cls_data()
    return _ce(mlp(), X, y, epochs=5, scheduler={"name": "onecycle", "total_steps": 100})


def case_nw413_per_epoch_object():
    X, y = cls_data()
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=5, steps_per_epoch=2)
    return _ce(model, X, y, epochs=5, optimizer=opt, scheduler=sched)


def case_nw414():
    X, y = cls_data()
    return _ce(mlp(), X, y, monitor="val_f1", metrics=["f1"])


def case_nw415():
    X, y = cls_data()
    return _ce(mlp(), X, y, metrics=["accuracy", "r2"])


def case_nw501():
    X, y = cls_data()
    return _ce(Unused(), X, y, deep=True)


def case_nw502():
    X, y = cls_data()
    return _ce(Dead(), X, y, deep=True)


def case_nw503():
    X, y = cls_data()
    return _ce(NanGrad(), X, y, deep=True)


def case_nw504():
    X, y = reg_data()
    return dict(model=big_output_layer(), data=(X, y), loss="mse", optimizer={"name": "sgd", "lr": 0.01},
                deep=True)


def case_nw505():
    X, y = cls_data()
    torch.manual_seed(0)
    return _ce(SimpleNetLogits(20, 3), X, y, optimizer={"name": "adam", "lr": 1e-4}, deep=True)


def case_nw506():
    X, y = reg_data()
    return dict(model=mlp(out=1), data=(X, y), loss="mse", optimizer={"name": "sgd", "lr": 1e4}, deep=True)


def case_nw507():
    X, y = cls_data()
    return _ce(TrainModeFails(), X, y, deep=True)


class CompileBreaks(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(20, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = self.a(x)
        print(h.shape)  # torch.compile cannot trace print: a graph break
        return self.b(h)


def case_nw508():
    X, y = cls_data()
    return {**_ce(CompileBreaks(), X, y, deep=True), "compile": True}


CASES = {name[5:]: fn for name, fn in dict(globals()).items() if name.startswith("case_nw")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_broken_setup_produces_its_finding(name):
    code = "NW" + name[2:5]
    report = doctor(**CASES[name]())
    print(report)
    assert code in report.codes, report
    finding = next(f for f in report if f.code == code)
    assert finding.severity == CODES[code][0]
    assert finding.message and finding.fix and finding.where
    unrelated = [f.code for f in report.errors if f.code != code]
    assert not unrelated, f"unrelated errors {unrelated} in\n{report}"


def test_every_code_has_a_broken_setup():
    covered = {"NW" + name[2:5] for name in CASES}
    assert covered == set(CODES)


# --- messages name what was expected, what was received and the fix --------------------------


@pytest.mark.parametrize("name, pattern", [
    ("nw201", r"Linear \(the model itself\) expects in_features=10 input features; its input has 20"),
    ("nw201_images_to_linear", r"nn\.Flatten\(\)"),
    ("nw201_conv_channels", r"in_channels=3.*1 channels"),
    ("nw201_lstm", r"input_size=3.*has 2"),
    ("nw202", r"x\.permute\(0, 3, 1, 2\)"),
    ("nw203", r"Linear '2' expects in_features=12.*its input has 13.*not the first layer"),
    ("nw203_in_forward",
     r"RaisesInForward\.forward itself, after layer .fc1. returned float32 of shape \(32, 12\)"),
    ("nw204", r"x\.float\(\) / 255"),
    ("nw205", r"ids from \d+ to 19.*at least 20"),
    ("nw108", r"\[0, 3\).*labels from 3 to 5"),
    ("nw131", r"\(32, 1\).*\(32,\).*\(32, 32\).*unsqueeze"),
    ("nw110", r"'weight': \["),
    ("nw110_binary", r"'pos_weight': \["),
    ("nw208", r"batch of 1 sample.*drop_last=True"),
    ("nw301", r"1 row\(s\) with NaN/Inf.*row 40"),
    ("nw402", r"none of the \d+ trainable parameters"),
    ("nw401", r"2 of 4 trainable parameters.*2\.weight, 2\.bias"),
    ("nw411", r"'val_accuracy'.*val data"),
    ("nw412", r"total_steps=6.*10 optimizer steps.*Tried to step 7 times"),
    ("nw413_per_epoch_object", r"once per epoch.*'interval': 'step'"),
    ("nw505", r"try lr=0\.001 \(10x higher\)"),
    ("nw501", r"'unused' \(weight, bias\)"),
])
def test_messages_name_the_place_and_the_fix(name, pattern):
    report = doctor(**CASES[name]())
    text = "\n".join(f"{f.message} Fix: {f.fix}" for f in report)
    assert re.search(pattern, text), text


# --- healthy setups -----------------------------------------------------------------------------


def zoo_setup(name):
    g = _gen()
    y3 = (torch.arange(64) % 3)[torch.randperm(64, generator=g)]
    torch.manual_seed(0)
    if name in ("simplenet", "mlp"):
        kw = {"out_features": 3} if name == "simplenet" else {"num_classes": 3, "hidden": [16]}
        return build_zoo(name, (20,), **kw), (torch.randn(64, 20, generator=g), y3), "cross_entropy"
    if name == "cnn":
        return (build_zoo("cnn", (1, 8, 8), num_classes=3, channels=[4], hidden=8),
                (torch.randn(64, 1, 8, 8, generator=g), y3), "cross_entropy")
    if name == "resnet":
        return (build_zoo("resnet", (1, 8, 8), num_classes=3, stages=[1, 1], width=4),
                (torch.randn(64, 1, 8, 8, generator=g), y3), "cross_entropy")
    if name in ("rnn", "lstm", "gru"):
        X = torch.randn(64, 10, 2, generator=g)
        return build_zoo(name, (10, 2), outputs=1, hidden_size=8), (X, X[:, -1, :1]), "mse"
    if name == "text_classifier":
        return (build_zoo(name, (12,), vocab_size=50, num_classes=3, embed_dim=8, hidden_size=8),
                (torch.randint(1, 50, (64, 12), generator=g), y3), "cross_entropy")
    if name == "text_cnn":
        return (build_zoo(name, (12,), vocab_size=50, num_classes=3, embed_dim=8, channels=4),
                (torch.randint(1, 50, (64, 12), generator=g), y3), "cross_entropy")
    if name == "text_transformer":
        return (build_zoo(name, (12,), vocab_size=50, num_classes=3, d_model=8, nhead=2,
                          num_layers=1, dim_feedforward=16),
                (torch.randint(1, 50, (64, 12), generator=g), y3), "cross_entropy")
    if name in ("audio_cnn", "m5"):  # a tone whose pitch is the class, in a little noise
        length = 4000 if name == "audio_cnn" else 7000
        t = torch.arange(length) / 8000
        pitch = torch.tensor([300.0, 900.0, 2000.0])[y3]
        x = torch.sin(2 * torch.pi * pitch[:, None] * t) + 0.1 * torch.randn(64, length, generator=g)
        args = {"n_mels": 16, "channels": [4, 8]} if name == "audio_cnn" else {"channels": 4}
        return (build_zoo(name, (1, length), num_classes=3, sample_rate=8000, **args),
                (x[:, None].float(), y3), "cross_entropy")
    raise AssertionError(f"no healthy setup for zoo model {name!r}: add one here")


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_models_are_healthy(name):
    model, data, loss = zoo_setup(name)
    report = doctor(model, data, loss=loss, optimizer="adam", metrics=None, epochs=5,
                    deep=name in ("mlp", "lstm", "cnn"))
    assert not report.errors and not report.warnings, report


EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def digits_png(tmp_path_factory):
    from netwright.data.images import export_images

    folder = tmp_path_factory.mktemp("doctor") / "digits_png"
    export_images("digits", folder)
    return folder


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_configs_are_healthy(path, request):
    from netwright.config import load_config
    from netwright.data.prepare import prepare_data
    from netwright.runner import build_model

    overrides = []
    if "source: mnist_png" in path.read_text():  # an image-folder example: a real folder of PNGs
        overrides.append(f"data.source={request.getfixturevalue('digits_png')}")
    cfg = load_config(path, overrides)
    _, info = resolve_loss(cfg.loss)
    data = prepare_data(cfg.data, info.task)
    model = build_model(cfg, data)
    report = doctor(model, data.train, loss=cfg.loss, optimizer=cfg.optimizer.model_dump(),
                    scheduler=cfg.scheduler, metrics=list(cfg.metrics) or None,
                    epochs=cfg.train.epochs, batch_size=cfg.train.batch_size, val=data.val,
                    monitor=cfg.train.monitor)
    assert not report.errors and not report.warnings, report


# --- the article's SimpleNet -------------------------------------------------------------------


def test_article_simplenet_both_bugs_then_the_fixes_train(rule_data):
    torch.manual_seed(0)
    net = SimpleNet(in_features=20, out_features=3)
    X = torch.rand((500, 20), dtype=torch.float32)
    y = torch.randint(low=0, high=3, size=(500, 1), dtype=torch.float32)  # the article's targets
    report = doctor(net, (X, y), loss="cross_entropy")
    print(report)
    targets = next(f for f in report if f.code == "NW104")
    softmax = next(f for f in report if f.code == "NW101")
    assert targets.severity == "error" and "float32 of shape (32, 1)" in targets.message
    assert targets.fix == "pass class indices, y = y.squeeze(1).long()"
    assert softmax.severity == "warning" and "drop the final softmax" in softmax.fix
    assert not report.ok

    # Fix 1 (targets) on a learnable rule: the verbatim model trains, with the softmax warning.
    X, y = rule_data
    assert doctor(SimpleNet(20, 3), (X, y), loss="cross_entropy").codes == ["NW101"]
    # Fix 2 (logits): nothing left to report.
    assert doctor(SimpleNetLogits(20, 3), (X, y), loss="cross_entropy").codes == []

    # The same optimizer and budget for both. SGD shows the squashed gradients plainly; Adam's
    # per-parameter normalisation hides much of them at this size.
    def accuracy(cls):
        torch.manual_seed(0)
        model = cls(20, 3)
        nw.fit(model, (X[:400], y[:400]), loss="cross_entropy", optimizer={"name": "sgd", "momentum": 0.9},
               lr=0.1, epochs=10, verbose=0)
        with torch.no_grad():
            return float((model(X[400:]).argmax(1) == y[400:]).float().mean())

    before, after = accuracy(SimpleNet), accuracy(SimpleNetLogits)
    print(f"val accuracy after 10 epochs: softmax output {before:.3f}, logits {after:.3f}")
    assert after > before + 0.2


# --- strange models: a finding, never a crash --------------------------------------------------


def test_dict_and_tuple_outputs():
    X, y = cls_data()
    for model in (DictOut(), TupleOut()):
        report = doctor(model, (X, y), loss="cross_entropy")
        assert report.codes == ["NW190"] and "several outputs" in report[0].fix
        report = doctor(model, (X, y), loss=lambda out, t: F.cross_entropy(out[0] if isinstance(out, tuple)
                                                                           else out["logits"], t))
        assert report.codes == ["NW192"]


def test_two_inputs_and_dict_inputs():
    X, y = cls_data()
    b = torch.randn(64, 5, generator=_gen(1))
    assert doctor(TwoInputs(), ((X, b), y), loss="cross_entropy").codes == []
    assert doctor(TwoInputs(), ({"a": X, "b": b}, y), loss="cross_entropy").codes == []
    Xn = X.clone()
    Xn[7, 0] = float("nan")
    report = doctor(TwoInputs(), ((b, Xn), y), loss="cross_entropy")
    assert "NW301" in report.codes and report.errors[0].where == "inputs[1]"  # each input named
    assert "NW201" in report.codes  # inputs swapped: layer 'a' gets 5 features


def test_no_parameters_and_a_forward_that_raises():
    X, y = cls_data()
    assert doctor(NoParams(), (X, y), loss="cross_entropy").codes == ["NW403"]
    report = doctor(RaisesInForward(), (X, y), loss="cross_entropy", deep=True)
    assert report.codes == ["NW203"] and report[0].where == "model"


def test_dataset_and_loader_data():
    from torch.utils.data import DataLoader, TensorDataset

    X, y = cls_data()
    ds = TensorDataset(X, y[:, None].float())
    assert "NW104" in doctor(mlp(), ds, loss="cross_entropy").codes
    assert "NW104" in doctor(mlp(), DataLoader(ds, batch_size=16), loss="cross_entropy").codes


def test_bad_arguments_raise_like_fit():
    X, y = cls_data()
    with pytest.raises(nw.ConfigError, match="Did you mean 'cross_entropy'"):
        doctor(mlp(), (X, y), loss="cross_entropyy")
    with pytest.raises(nw.ModelSpecError, match=r"SimpleNet\(\) rather than SimpleNet"):
        doctor(SimpleNet, (X, y), loss="cross_entropy")


# --- preflight: cheap, and no side effects ------------------------------------------------------


class Mixed(nn.Module):
    """BatchNorm (running stats), Dropout, a submodule left in eval, and randomness in eval."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.drop = nn.Linear(20, 16), nn.BatchNorm1d(16), nn.Dropout(0.5)
        self.frozen = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16)).eval()
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        h = self.drop(F.relu(self.bn(self.fc1(x))))
        return self.out(F.dropout(self.frozen(h), 0.1))


@pytest.mark.parametrize("data", [False, True])
def test_preflight_leaves_model_and_rng_untouched(data):
    X, y = cls_data()
    model = Mixed()
    state = copy.deepcopy(model.state_dict())
    modes = [m.training for m in model.modules()]
    fn, info = resolve_loss("cross_entropy")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rng = torch.get_rng_state()
    report = preflight(model, X[:32], y[:32], loss_fn=fn, loss_info=info, optimizer=opt,
                       data=(X, y) if data else None, batch_sizes=[32, 32])
    assert torch.equal(torch.get_rng_state(), rng)
    assert [m.training for m in model.modules()] == modes and modes[1] and not model.frozen.training
    after = model.state_dict()
    assert state.keys() == after.keys() and all(torch.equal(state[k], after[k]) for k in state)
    assert report.codes == ["NW207"]  # the functional dropout, found by comparing two forwards
    assert report.output.shape == (32, 3)  # fit infers the task from it: no second forward
    assert all(p.grad is None for p in model.parameters())


def test_preflight_leaves_lazy_modules_uninitialised():
    fn, info = resolve_loss("cross_entropy")
    X, y = cls_data()
    model = nn.Sequential(nn.LazyLinear(3))
    assert preflight(model, X[:32], y[:32], loss_fn=fn, loss_info=info).codes == []
    assert isinstance(model[0].weight, nn.parameter.UninitializedParameter)


def test_preflight_schedule_and_log_keys():
    from netwright.optim import build_scheduler

    X, y = cls_data()
    model = mlp()
    fn, info = resolve_loss("cross_entropy")
    opt = torch.optim.Adam(model.parameters())
    schedule = build_scheduler({"name": "reduce_on_plateau", "monitor": "val_loss"}, opt, epochs=3,
                               steps_per_epoch=2)
    report = preflight(model, X[:32], y[:32], loss_fn=fn, loss_info=info, optimizer=opt,
                       schedule=schedule, log_keys=["epoch", "train_loss", "lr"])
    assert report.codes == ["NW411"]


# --- the report -------------------------------------------------------------------------------


def test_report_table_json_and_error():
    report = doctor(**case_nw104())
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["errors"] == 1 and data["findings"][0]["code"] == "NW104"
    text = str(report)
    assert text.startswith("netwright doctor: 1 error") and "NW104" in text and "Fix: pass class" in text
    table = report.to_table()
    assert table.row_count == len(report)
    with pytest.raises(DoctorError) as info:
        report.raise_for_errors()
    assert info.value.report is report
    # Code that caught what fit raised before the doctor still catches it.
    assert isinstance(info.value, nw.LossTargetError) and isinstance(info.value, nw.NetwrightError)
    assert "float32 of shape (32, 1)" in str(info.value) and "y.squeeze(1).long()" in str(info.value)
    Report([Finding("NW303", "info", "m", "f")]).raise_for_errors()  # no error: no raise
    assert str(Report()) == "netwright doctor: no findings."


def test_docs_list_every_code_with_its_severity():
    page = (ROOT / "docs" / "doctor.md").read_text()
    for code, (severity, _) in CODES.items():
        row = re.search(rf"^\| `?{code}`? \| {severity} \|", page, re.M)
        assert row, f"docs/doctor.md has no table row '| {code} | {severity} |'"
