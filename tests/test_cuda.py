"""CUDA paths: device moves, float16 with a GradScaler, bfloat16, clipping of unscaled
gradients, label checks before a device-side assert. They run where CUDA is present (the lent
GPU machine: `pytest -m gpu`); the CPU-side halves of these paths are tested elsewhere."""

import pytest
import torch
import torch.nn as nn

import netwright as nw

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(1000, 20, generator=g)
    return X, X[:, :3].argmax(1)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))


def test_auto_device_is_cuda_and_results_match_cpu(data):
    X, y = data
    model = _model()
    result = nw.fit(model, (X, y), loss="cross_entropy", lr=1e-2, epochs=5, val=0.2,
                    metrics=["accuracy"], verbose=0)
    assert next(model.parameters()).device.type == "cuda"
    assert result.history[-1]["val_accuracy"] > 0.8
    gpu_out = nw.predict(model, X)
    cpu_out = nw.predict(model.cpu(), X)
    torch.testing.assert_close(gpu_out, cpu_out, rtol=1e-3, atol=1e-4)
    assert nw.build_optimizer("adam", _model().cuda(), lr=1e-3).defaults.get("fused") is True


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_mixed_precision_trains(data, precision):
    X, y = data
    model = _model()
    result = nw.fit(model, (X, y), loss="cross_entropy", lr=1e-2, epochs=8, val=0.2,
                    metrics=["accuracy"], precision=precision, verbose=0)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[-1]["val_accuracy"] > 0.8
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_float16_clipping_sees_unscaled_gradients(data):
    X, y = data
    model = _model()
    norms = []
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    orig = opt.step

    def step(*a, **k):
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        return orig(*a, **k)

    opt.step = step
    nw.fit(model.cuda(), (X * 100, y), loss="cross_entropy", optimizer=opt, epochs=1,
           precision="16-mixed", clip_grad=0.25, verbose=0)
    # GradScaler multiplies the loss by 65536 at first: without unscale_ before clipping the
    # clipped norm would be 0.25 of the scaled gradient, i.e. far below 0.25 after unscaling.
    finite = [n for n in norms if n == n and n != float("inf")]
    assert finite and max(finite) <= 0.25 * 1.01 and max(finite) > 0.05


def test_out_of_range_labels_are_caught_before_a_device_side_assert(data):
    X, y = data
    with pytest.raises(nw.LossTargetError, match=r"\[0, 3\)"):
        nw.fit(_model(), (X, y + 1), loss="cross_entropy", epochs=1, device="cuda", verbose=0)
    # The CUDA context is still usable afterwards.
    assert float(torch.ones(2, device="cuda").sum()) == 2.0


def test_dataset_path_with_pinned_memory_and_workers(data):
    from torch.utils.data import TensorDataset

    X, y = data
    result = nw.fit(_model(), TensorDataset(X, y), loss="cross_entropy", lr=1e-2, epochs=3,
                    batch_size=64, num_workers=2, val=0.2, metrics=["accuracy"], verbose=0)
    assert result.history[-1]["val_accuracy"] > 0.7


def test_same_seed_same_weights_on_cuda(data):
    X, y = data

    def run():
        model = _model()
        nw.fit(model, (X, y), loss="cross_entropy", epochs=3, seed=5, verbose=0)
        return [p.detach().cpu().clone() for p in model.parameters()]

    a, b = run(), run()
    assert all(torch.equal(p, q) for p, q in zip(a, b))
