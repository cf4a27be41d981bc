"""Mixed precision, tested on the CPU where it can be.

bf16: a forward hook sees the dtype a layer actually computes in, during the training steps and
during evaluation, so a run that silently drops autocast fails here (a loss that falls proves
nothing: float32 trains too). float16: the GradScaler logic of ``train_step`` (scale the loss,
unscale before clipping, skip the step on overflow, update the scale) runs on the CPU with
``torch.amp.GradScaler("cpu")``, and the order of those calls is checked with a recording
scaler. ``fit`` refuses ``16-mixed`` off CUDA, so its wiring (GradScaler built and handed to the
step) is reached on the CPU only by replacing the trainer's autocast factory; the CUDA run itself
is in tests/test_cuda.py (marker ``gpu``).
"""

import copy

import pytest
import torch
import torch.nn as nn

import netwright as nw
from netwright.training.step import StepContext, make_clipper, train_step


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g)
    return X, (X[:, 0] + X[:, 1] > 0).long()


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))


def _dtype_probe(layer: nn.Module):
    """Record (training mode, grad enabled, output dtype) of every forward of ``layer``."""
    seen = []

    def hook(module, args, out):
        seen.append((module.training, torch.is_grad_enabled(), out.dtype))

    return seen, layer.register_forward_hook(hook)


# -- bf16 on the CPU ---------------------------------------------------------------------------
def test_bf16_mixed_computes_in_bfloat16_during_training_and_evaluation():
    X, y = _data()
    model = _model()
    seen, handle = _dtype_probe(model[0])
    result = nw.fit(model, (X, y), loss="cross_entropy", lr=0.05, epochs=2, batch_size=32,
                    val=(X[:32], y[:32]), metrics=["accuracy"], precision="bf16-mixed",
                    device="cpu", verbose=0)
    handle.remove()
    train = [dt for training, grad, dt in seen if training and grad]
    assert len(train) == 2 * 3  # every training step: 2 epochs x 3 batches
    assert set(train) == {torch.bfloat16}
    # Validation (one batch per epoch) runs under autocast too. (The doctor's pre-flight
    # forward before the first step is not part of training and may run in float32.)
    first_step = next(i for i, (training, grad, _) in enumerate(seen) if training and grad)
    evals = [dt for training, _, dt in seen[first_step:] if not training]
    assert evals == [torch.bfloat16, torch.bfloat16]
    # The weights (master copy) stay float32 and the logged values are plain floats.
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(isinstance(r["train_loss"], float) for r in result.history)


def test_precision_32_computes_in_float32():
    X, y = _data()
    model = _model()
    seen, handle = _dtype_probe(model[0])
    nw.fit(model, (X, y), loss="cross_entropy", lr=0.05, epochs=1, batch_size=32,
           val=(X[:32], y[:32]), precision="32", device="cpu", verbose=0)
    handle.remove()
    assert len([s for s in seen if s[0] and s[1]]) == 3
    assert {dt for _, _, dt in seen} == {torch.float32}


def test_bf16_mixed_predict_and_evaluate_use_bfloat16_and_return_float32():
    X, y = _data(40)
    model = _model()
    seen, handle = _dtype_probe(model[0])
    out = nw.predict(model, X, precision="bf16-mixed", device="cpu")
    assert {dt for _, _, dt in seen} == {torch.bfloat16}
    assert out.dtype == torch.float32 and out.shape == (40, 2)
    # bf16 keeps ~3 significant digits: close to, but not bitwise, the float32 output.
    ref = model(X).detach()
    torch.testing.assert_close(out, ref, rtol=0.05, atol=0.05)
    assert not torch.equal(out, ref)
    seen.clear()
    res = nw.evaluate(model, (X, y), loss="cross_entropy", metrics=["accuracy"],
                      precision="bf16-mixed", device="cpu")
    handle.remove()
    assert seen and {dt for _, _, dt in seen} == {torch.bfloat16}
    assert res["loss"] == pytest.approx(float(nn.functional.cross_entropy(ref, y)), rel=0.05)


def test_float16_off_cuda_and_unknown_precisions_are_config_errors():
    X, y = _data(32)
    with pytest.raises(nw.ConfigError, match=r"'16-mixed' needs a CUDA device.*bf16-mixed"):
        nw.fit(_model(), (X, y), loss="cross_entropy", epochs=1, precision="16-mixed",
               device="cpu", verbose=0)
    with pytest.raises(nw.ConfigError, match=r"precision: expected one of '32', 'bf16-mixed' or '16-mixed'"):
        nw.fit(_model(), (X, y), loss="cross_entropy", epochs=1, precision="bf16", verbose=0)


# -- float16's GradScaler logic in train_step, on the CPU -----------------------------------------
def _true_grads(model, x, y):
    ref = copy.deepcopy(model)
    nn.functional.cross_entropy(ref(x), y).backward()
    return [p.grad.clone() for p in ref.parameters()]


def _step_with_scaler(model, x, y, clip, scaler):
    """One train_step with a recording optimizer; returns the gradients the optimizer saw."""
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    seen = []
    orig = opt.step

    def step(*a, **k):
        seen.append([p.grad.clone() for p in model.parameters()])
        return orig(*a, **k)

    opt.step = step
    ctx = StepContext(model, nn.CrossEntropyLoss(), opt, scaler=scaler, clip=make_clipper(clip),
                      params=list(model.parameters()))
    loss = train_step(ctx, x, y)
    return loss, seen


def _norm(grads):
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))


def test_grad_scaler_gradients_are_unscaled_before_clipping():
    X, y = _data(32)
    X = X * 30  # large inputs: a true gradient norm well above the clip threshold
    model = _model()
    true = _true_grads(model, X, y)
    true_norm = _norm(true)
    max_norm = true_norm / 4
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    loss, seen = _step_with_scaler(model, X, y, max_norm, scaler)
    assert len(seen) == 1
    # Clipping saw the true gradients: the optimizer gets them scaled to exactly max_norm and
    # pointing the same way. Had the scaled (x65536) gradients been clipped and unscaled after,
    # the norm would be max_norm / 65536.
    assert _norm(seen[0]) == pytest.approx(max_norm, rel=1e-4)
    for got, want in zip(seen[0], true):
        torch.testing.assert_close(got, want * (max_norm / true_norm), rtol=1e-4, atol=1e-7)
    with torch.no_grad():
        assert float(loss) == pytest.approx(float(nn.functional.cross_entropy(model(X), y)), rel=1e-6)


def test_grad_scaler_without_clipping_hands_the_true_gradients_to_the_optimizer():
    X, y = _data(32)
    model = _model()
    true = _true_grads(model, X, y)
    # A clip threshold above the true norm changes nothing; no clip at all neither.
    for clip in (_norm(true) * 10, None):
        m = copy.deepcopy(model)
        _, seen = _step_with_scaler(m, X, y, clip, torch.amp.GradScaler("cpu", init_scale=2.0**16))
        for got, want in zip(seen[0], true):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_grad_scaler_skips_the_step_and_lowers_the_scale_on_overflow():
    X, y = _data(8)
    X[0, 0] = float("inf")  # non-finite gradients
    model = _model()
    model[2].weight.data.normal_()
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    ctx = StepContext(model, nn.CrossEntropyLoss(), opt, scaler=scaler, clip=make_clipper(1.0),
                      params=list(model.parameters()))
    train_step(ctx, X, y)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # the optimizer step was skipped
    assert scaler.get_scale() == 2.0**15  # update() ran and backed off
    assert all(p.grad is None for p in model.parameters())  # zeroed all the same
    # A finite batch afterwards trains normally.
    train_step(ctx, _data(8)[0], y)
    assert not torch.equal(model[2].weight, before["2.weight"])


class _RecordingScaler:
    """Stands in for GradScaler (scale 1) and logs the order of its calls."""

    def __init__(self, log):
        self.log = log

    def scale(self, loss):
        self.log.append("scale")
        return loss

    def unscale_(self, opt):
        self.log.append("unscale_")

    def step(self, opt):
        self.log.append("step")
        opt.step()

    def update(self):
        self.log.append("update")


@pytest.mark.parametrize("clip", [True, False])
def test_train_step_calls_scaler_clip_step_update_in_order(clip):
    X, y = _data(12)
    model = _model()
    log = []
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    orig_step, orig_zero = opt.step, opt.zero_grad
    opt.step = lambda *a, **k: (log.append("optimizer.step"), orig_step(*a, **k))[1]
    opt.zero_grad = lambda *a, **k: (log.append("zero_grad"), orig_zero(*a, **k))[1]
    clipper = (lambda params: log.append("clip")) if clip else None
    ctx = StepContext(model, nn.CrossEntropyLoss(), opt, scaler=_RecordingScaler(log),
                      clip=clipper, params=list(model.parameters()))
    # Accumulation: the first two batches only scale and backward.
    train_step(ctx, X[:4], y[:4], scale=0.25, step=False)
    train_step(ctx, X[4:8], y[4:8], scale=0.25, step=False)
    assert log == ["scale", "scale"]
    train_step(ctx, X[8:], y[8:], scale=0.5, step=True)
    middle = ["unscale_", "clip"] if clip else []
    assert log == ["scale", "scale", "scale", *middle, "step", "optimizer.step", "update",
                   "zero_grad"]


# -- fit's float16 wiring, on the CPU --------------------------------------------------------------
def test_fit_16_mixed_builds_a_grad_scaler_and_clips_true_gradients(monkeypatch):
    """fit refuses 16-mixed off CUDA inside autocast_for; with that one factory replaced by CPU
    float16 autocast, the rest of fit's float16 path runs for real on the CPU: a
    GradScaler('cpu') is built and passed to every step, and clipping sees unscaled gradients."""
    import netwright.training.trainer as trainer_mod

    def cpu_fp16(precision, device):
        assert precision == "16-mixed"
        return lambda: torch.autocast(device_type="cpu", dtype=torch.float16)

    monkeypatch.setattr(trainer_mod, "autocast_for", cpu_fp16)
    built = []
    real_scaler = torch.amp.GradScaler

    calls = []

    def scaler_factory(*args, **kwargs):
        s = real_scaler(*args, **kwargs)
        built.append(s)
        for name in ("scale", "unscale_", "step", "update"):
            method = getattr(s, name)
            setattr(s, name, lambda *a, _m=method, _n=name, **k: (calls.append(_n), _m(*a, **k))[1])
        return s

    monkeypatch.setattr(torch.amp, "GradScaler", scaler_factory)
    X, y = _data()
    model = _model()
    seen, handle = _dtype_probe(model[0])
    norms = []
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    orig = opt.step

    def step(*a, **k):
        norms.append(_norm([p.grad for p in model.parameters()]))
        return orig(*a, **k)

    opt.step = step
    nw.fit(model, (X * 5, y), loss="cross_entropy", optimizer=opt, epochs=1, batch_size=32,
           precision="16-mixed", clip_grad=0.25, device="cpu", verbose=0)
    handle.remove()
    assert len(built) == 1 and built[0].is_enabled()
    assert calls == ["scale", "unscale_", "step", "update"] * 3  # used by every one of 3 steps
    assert {dt for tr, g, dt in seen if tr and g} == {torch.float16}
    # Unscaled, then clipped to 0.25 (the true norms are larger); clipping the scaled
    # gradients would leave 0.25 / 65536 after the scaler's own unscale.
    assert len(norms) == 3 and all(0.25 * 0.999 <= n <= 0.25 * 1.001 for n in norms)
