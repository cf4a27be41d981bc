"""The training core: fit/evaluate/predict on any nn.Module."""

import numpy as np
import pytest
import torch
import torch.nn as nn

import netwright as nw
from conftest import SimpleNet, SimpleNetLogits


def test_article_simplenet_verbatim_trains_with_integer_labels(rule_data):
    X, y = rule_data
    torch.manual_seed(0)
    net = SimpleNet(in_features=20, out_features=3)
    before = nw.evaluate(net, (X, y), metrics=["accuracy"])["accuracy"]
    result = nw.fit(net, (X, y), loss="cross_entropy", lr=0.01, epochs=30, verbose=0)
    after = nw.evaluate(net, (X, y), metrics=["accuracy"])["accuracy"]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert after > before + 0.2


def test_simplenet_logits_reaches_90_percent_on_held_out(rule_data):
    X, y = rule_data
    torch.manual_seed(0)
    net = SimpleNetLogits(in_features=20, out_features=3)
    result = nw.fit(net, (X[:400], y[:400]), loss="cross_entropy", lr=0.01, epochs=60,
                    metrics=["accuracy"], val=(X[400:], y[400:]), verbose=0)
    assert result.history[-1]["val_accuracy"] >= 0.90
    assert set(result.history[-1]) == {"epoch", "train_loss", "val_loss", "val_accuracy", "lr"}


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_gives_bitwise_identical_weights_with_dropout(rule_data):
    X, y = rule_data

    def run():
        torch.manual_seed(123)
        model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))
        nw.fit(model, (X, y), loss="cross_entropy", epochs=3, seed=7, val=0.2, verbose=0)
        return _weights(model)

    a, b = run(), run()
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(123)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))
    nw.fit(model, (X, y), loss="cross_entropy", epochs=3, seed=8, val=0.2, verbose=0)
    assert not all(torch.equal(a[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("n", [256, 100])  # 100: the last window holds 2 batches (16 + 4 rows)
def test_accumulating_4_batches_of_16_equals_one_batch_of_64(n):
    g = torch.Generator().manual_seed(1)
    X = torch.randn(n, 6, generator=g)
    y = torch.randn(n, 1, generator=g)

    def run(batch_size, accumulate):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
        result = nw.fit(model, (X, y), loss="mse", optimizer="sgd", lr=0.1, epochs=3,
                        batch_size=batch_size, accumulate=accumulate, seed=3, verbose=0)
        return model, result

    big, r_big = run(64, 1)
    small, r_small = run(16, 4)
    for (k, a), b in zip(big.state_dict().items(), small.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
    assert r_big.history[-1]["train_loss"] == pytest.approx(r_small.history[-1]["train_loss"], rel=1e-5)
    # Without the size weighting the short last window would be off: check the test can fail.
    if n == 100:
        unequal, _ = run(16, 1)
        assert not torch.allclose(unequal[0].weight, big[0].weight, atol=1e-6)


def test_reduce_on_plateau_lowers_lr_when_val_loss_stalls(blobs):
    X, y = blobs
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    result = nw.fit(model, (X, y), loss="cross_entropy", lr=0.5, epochs=12, val=0.3,
                    scheduler={"name": "reduce_on_plateau", "patience": 1, "factor": 0.1,
                               "threshold": 0.5},
                    verbose=0)
    lrs = [row["lr"] for row in result.history]
    assert lrs[0] == pytest.approx(0.5)
    assert min(lrs) <= 0.05 + 1e-12


def test_reduce_on_plateau_can_monitor_a_metric_in_max_mode(blobs):
    X, y = blobs
    model = nn.Linear(2, 3)
    result = nw.fit(model, (X, y), loss="cross_entropy", lr=0.5, epochs=8, val=0.3,
                    metrics=["accuracy"], verbose=0,
                    scheduler={"name": "reduce_on_plateau", "monitor": "val_accuracy",
                               "patience": 0, "threshold": 1.0})
    assert result.history[-1]["lr"] < 0.5
    assert nw.build_scheduler({"name": "plateau", "monitor": "val_accuracy"},
                              torch.optim.SGD(model.parameters(), lr=1), epochs=1,
                              steps_per_epoch=1).scheduler.mode == "max"


def test_early_stopping_stops_and_restores_best_weights(blobs):
    X, y = blobs
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 3))
    snapshots = []

    class Snap(nw.Callback):
        def on_epoch_end(self, epoch, logs, model):
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})

    # A huge lr makes validation loss bounce, so it stops improving early.
    es = nw.EarlyStopping(patience=2)
    result = nw.fit(model, (X, y), loss="cross_entropy", optimizer="sgd", lr=3.0, epochs=50,
                    val=0.3, callbacks=[Snap(), es], verbose=0)
    assert result.stop_reason == "early_stopping"
    assert len(result.history) < 50
    best_epoch = min(range(len(result.history)), key=lambda i: result.history[i]["val_loss"])
    assert result.best["epoch"] == best_epoch + 1
    assert best_epoch != len(result.history) - 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[best_epoch][k])


def test_evaluate_restores_each_module_mode_and_uses_inference_mode(blobs):
    X, y = blobs
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 3))
    model.train()
    model[1].eval()  # a frozen BatchNorm the user set on purpose
    seen = {}

    def hook(module, inputs, output):
        seen["training"] = module.training
        seen["inference"] = torch.is_inference_mode_enabled()

    model[2].register_forward_hook(hook)
    stats_before = model[1].running_mean.clone()
    nw.evaluate(model, (X, y), loss="cross_entropy")
    assert seen == {"training": False, "inference": True}
    assert model.training and not model[1].training and model[2].training
    assert torch.equal(model[1].running_mean, stats_before)


def test_user_data_is_not_modified(blobs):
    X, y = blobs
    X64 = X.astype(np.float64)
    Xc, yc = X64.copy(), y.copy()
    Xt = torch.from_numpy(X.copy())
    Xtc = Xt.clone()
    nw.fit(nn.Linear(2, 3), (X64, y), loss="cross_entropy", epochs=2, val=0.2, verbose=0)
    nw.fit(nn.Linear(2, 3), (Xt, torch.from_numpy(y)), loss="cross_entropy", epochs=2, verbose=0)
    assert np.array_equal(X64, Xc) and np.array_equal(y, yc) and torch.equal(Xt, Xtc)


def test_accepts_dataframe_dataset_and_dataloader(blobs):
    pd = pytest.importorskip("pandas")
    from torch.utils.data import DataLoader, TensorDataset

    X, y = blobs
    df = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "label": y})
    r1 = nw.fit(nn.Linear(2, 3), (df, "label"), loss="cross_entropy", lr=0.05, epochs=5,
                val=0.2, metrics=["accuracy"], verbose=0)
    r2 = nw.fit(nn.Linear(2, 3), df, target="label", loss="cross_entropy", lr=0.05, epochs=5,
                verbose=0)
    ds = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    r3 = nw.fit(nn.Linear(2, 3), ds, loss="cross_entropy", lr=0.05, epochs=5, val=0.2,
                batch_size=16, metrics=["accuracy"], verbose=0)
    loader = DataLoader(ds, batch_size=16, shuffle=True)
    r4 = nw.fit(nn.Linear(2, 3), loader, loss="cross_entropy", lr=0.05, epochs=5, val=ds,
                metrics=["accuracy"], verbose=0)
    for r in (r1, r3, r4):
        assert r.history[-1]["val_accuracy"] > 0.8
    assert r2.history[-1]["train_loss"] < r2.history[0]["train_loss"]


def test_dataset_with_workers_and_persistent_workers(blobs):
    from torch.utils.data import TensorDataset

    X, y = blobs
    ds = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    result = nw.fit(nn.Linear(2, 3), ds, loss="cross_entropy", lr=0.05, epochs=2, batch_size=64,
                    num_workers=2, persistent_workers=True, pin_memory=False, verbose=0)
    assert len(result.history) == 2


def test_val_fraction_is_stratified(blobs):
    from netwright.data.sources import to_source
    from netwright.data.splits import split_fraction

    X, y = blobs
    y = np.where(np.arange(len(y)) < 30, 2, np.where(y == 2, 0, y))  # class 2: exactly 30 rows
    train, val = split_fraction(to_source((X, y)), 0.2, seed=0, stratify=True)
    assert int((val.y == 2).sum()) == 6 and int((train.y == 2).sum()) == 24
    assert len(val) + len(train) == len(y)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 3), nn.Linear(1, 3)

    def forward(self, xa, xb):
        return self.a(xa) + self.b(xb)


class DictOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(2, 4)

    def forward(self, x):
        h = self.body(x)
        return {"logits": h[:, :3], "score": h[:, 3]}


def test_multiple_inputs_and_dict_outputs(blobs):
    X, y = blobs
    xa, xb = X, X[:, :1].copy()
    result = nw.fit(TwoInputs(), ((xa, xb), y), loss="cross_entropy", lr=0.05, epochs=5,
                    val=0.2, metrics=["accuracy"], verbose=0)
    assert result.history[-1]["val_accuracy"] > 0.7
    out = nw.predict(TwoInputs(), (xa, xb), batch_size=64)
    assert out.shape == (300, 3)
    out = nw.predict(DictOut(), X, batch_size=64)
    assert set(out) == {"logits", "score"} and out["logits"].shape == (300, 3)
    assert out["score"].shape == (300,)
    dict_in = nw.fit(TwoInputs(), ({"xa": xa, "xb": xb}, y), loss="cross_entropy", epochs=1, verbose=0)
    assert len(dict_in.history) == 1


def test_predict_matches_the_model_and_restores_mode(blobs):
    X, _ = blobs
    model = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5))
    model.train()
    out = nw.predict(model, X, batch_size=7)
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(X))
    # Dropout is off (eval mode); batching by 7 may round differently from one big matmul.
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_trainer_object_fit_evaluate_predict(blobs):
    X, y = blobs
    trainer = nw.Trainer(nn.Linear(2, 3), loss="cross_entropy", lr=0.05, epochs=5,
                         metrics=["accuracy", "f1_macro"], verbose=0)
    result = trainer.fit((X, y), val=0.25)
    scores = trainer.evaluate((X, y))
    assert set(scores) == {"loss", "accuracy", "f1_macro"}
    assert scores["accuracy"] > 0.8
    assert trainer.predict(X).shape == (300, 3)
    assert result.best is not None and "val_loss" in result.best


def test_gradient_clipping_by_norm_and_value(rule_data):
    X, y = rule_data
    seen = []

    class GradProbe(nw.Callback):
        pass

    model = nn.Linear(20, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    orig_step = opt.step

    def step(*a, **k):
        seen.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        return orig_step(*a, **k)

    opt.step = step
    nw.fit(model, (X * 1000, y), loss="cross_entropy", optimizer=opt, epochs=1, clip_grad=0.5, verbose=0)
    assert max(float(g.norm()) for g in seen) <= 0.5 + 1e-4
    seen.clear()
    nw.fit(model, (X * 1000, y), loss="cross_entropy", optimizer=opt, epochs=1,
           clip_grad={"value": 0.01}, verbose=0)
    assert max(float(g.abs().max()) for g in seen) <= 0.01 + 1e-7


def test_bf16_mixed_precision_reaches_80_percent_on_easy_data_on_cpu(blobs):
    X, y = blobs
    result = nw.fit(nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3)), (X, y),
                    loss="cross_entropy", lr=0.05, epochs=5, precision="bf16-mixed", device="cpu",
                    metrics=["accuracy"], val=0.2, verbose=0)
    assert result.history[-1]["val_accuracy"] > 0.8


def test_fit_uses_torch_fused_optimizer_where_available():
    model = nn.Linear(3, 2)
    opt = nw.build_optimizer("adam", model, lr=1e-3)
    assert opt.defaults.get("fused") is True
    plain = nw.build_optimizer({"name": "adam", "fused": False}, model, lr=1e-3)
    assert not plain.defaults.get("fused")


def test_without_a_seed_torchs_own_generator_decides_and_is_never_reseeded():
    # seed=None: netwright seeds nothing; the data order's seed comes from torch's generator as
    # the caller left it, so torch.manual_seed before fit repeats the run (as in a torch loop).
    X, y = torch.randn(96, 5), torch.randint(0, 3, (96,))

    def trained(global_seed):
        torch.manual_seed(0)
        model = nn.Linear(5, 3)  # the same initial weights every time
        torch.manual_seed(global_seed)
        nw.fit(model, (X, y), loss="cross_entropy", epochs=2, batch_size=8, seed=None,
               val=0.25, verbose=0)
        return model.weight.detach().clone(), torch.rand(1)  # and what the generator gives next

    (a, after_a), (b, after_b), (c, _) = trained(5), trained(5), trained(6)
    assert torch.equal(a, b) and torch.equal(after_a, after_b)  # repeated, never reseeded
    assert not torch.equal(a, c)  # another global seed: another split and data order
