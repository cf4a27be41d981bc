"""Issue 10: one schema for every option, an open training step, and a NaN mid-training that
stops cleanly (nothing non-finite written, the run resumable) or is skipped and counted."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import netwright as nw
from netwright.config import FitOptions, TrainConfig, fit_options, options_reference

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def xy():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(96, 6, generator=g)
    y = (X[:, 0] + X[:, 1] > 0).long()
    return X, y


# -- one schema -----------------------------------------------------------------------------

def test_a_mistyped_fit_option_gets_did_you_mean_not_a_type_error(xy):
    with pytest.raises(nw.ConfigError, match=r"epoch: unknown option\. Did you mean 'epochs'\?"):
        nw.fit(nn.Linear(6, 2), xy, loss="mse", epoch=5)


def test_every_problem_of_a_fit_call_is_reported_at_once(xy):
    with pytest.raises(nw.ConfigError) as info:
        nw.fit(nn.Linear(6, 2), xy, loss="cross_entropyy", epochs=0, batchsize=8, lr="fast",
               optimizer="adma", verbose=0)
    text = str(info.value)
    assert text.startswith("fit: 5 problem(s):")
    for part in ("epochs: expected an integer >= 1, received 0", "batchsize: unknown option. Did you "
                 "mean 'batch_size'?", "lr: expected a positive number, received 'fast'",
                 "loss: unknown name 'cross_entropyy'", "optimizer: unknown optimizer 'adma'"):
        assert part in text


def test_trainer_and_fit_validate_the_same_way():
    with pytest.raises(nw.ConfigError, match=r"^Trainer: 1 problem"):
        nw.Trainer(nn.Linear(2, 2), loss="mse", shufle=False)
    trainer = nw.Trainer(nn.Linear(2, 2), loss="mse", epochs=3)
    assert isinstance(trainer.options, FitOptions) and trainer.options.epochs == 3
    # the validated object is what the trainer keeps: nothing copied field by field
    opts = fit_options(loss="mse", epochs=4)
    assert nw.Trainer(nn.Linear(2, 2), opts).options is opts


def test_defaults_live_in_one_place_and_config_train_is_the_same_schema():
    train_fields = set(TrainConfig.model_fields)
    fit_fields = set(FitOptions.model_fields)
    assert train_fields < fit_fields
    defaults = fit_options(loss="mse")
    for name in train_fields - {"early_stopping"}:
        assert getattr(defaults, name) == TrainConfig.model_fields[name].default, name
    # a YAML config and nw.fit agree on every training default
    from netwright.config import load_config

    cfg = load_config({"model": {"zoo": "mlp"}, "data": {"source": "iris"}, "loss": "mse"})
    for name in train_fields:
        assert getattr(cfg.train, name) == getattr(defaults, name), name
    assert cfg.optimizer.lr == defaults.lr and cfg.optimizer.name == defaults.optimizer


def test_numpy_integers_pass_but_booleans_and_fractions_do_not():
    assert fit_options(loss="mse", epochs=np.int64(3), batch_size=np.int32(8)).epochs == 3
    for bad, text in [({"epochs": True}, "epochs: expected an integer, received True"),
                      ({"epochs": 2.5}, "epochs: expected an integer, received 2.5"),
                      ({"shuffle": "no"}, "shuffle: expected true or false, received 'no'"),
                      ({"early_stopping": {"patiense": 2}}, "early_stopping.patiense: unknown "
                                                            "option. Did you mean 'patience'?")]:
        with pytest.raises(nw.ConfigError, match=re.escape(text)):
            fit_options(loss="mse", **bad)


def test_fit_docstring_and_python_api_doc_list_every_option_from_the_schema():
    reference = options_reference()
    for name in FitOptions.model_fields:
        assert f"| `{name}` |" in reference
        assert f"`{name}`" in nw.fit.__doc__
    doc = (ROOT / "docs" / "python-api.md").read_text()
    assert reference in doc, "docs/python-api.md is out of date: paste options_reference() into it"
    config_doc = (ROOT / "docs" / "config.md").read_text()
    assert options_reference(TrainConfig) in config_doc, "docs/config.md's train table is out of date"


# -- the open step ----------------------------------------------------------------------------

class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU())
        self.cls = nn.Linear(16, 2)
        self.reg = nn.Linear(16, 1)

    def forward(self, x):
        h = self.body(x)
        return self.cls(h), self.reg(h).squeeze(1)


def test_a_two_output_model_trains_with_a_weighted_sum_of_two_losses_in_a_custom_step(xy):
    X, y = xy
    value = X[:, 0] * 2.0  # a second target, regressed by the second head
    targets = torch.stack([y.float(), value], 1)
    seen = []

    def step(ctx, x, t, *, scale=1.0, step=True):
        logits, pred = ctx.model(x)
        ce = nn.functional.cross_entropy(logits, t[:, 0].long())
        mse = nn.functional.mse_loss(pred, t[:, 1])
        loss = 0.7 * ce + 0.3 * mse
        loss.backward()
        ctx.optimizer.step()
        ctx.optimizer.zero_grad(set_to_none=True)
        seen.append(type(ctx).__name__)
        return {"loss": loss.detach(), "ce": ce.detach(), "mse": mse}

    def combined(out, t):  # the validation loss: the same weighted sum
        logits, pred = out
        return (0.7 * nn.functional.cross_entropy(logits, t[:, 0].long())
                + 0.3 * nn.functional.mse_loss(pred, t[:, 1]))

    torch.manual_seed(0)
    result = nw.fit(TwoHeads(), (X, targets), loss=combined, step=step, lr=0.02, epochs=15,
                    batch_size=16, val=0.25, verbose=0, check=False)
    assert seen and set(seen) == {"StepContext"}
    first, last = result.history[0], result.history[-1]
    assert {"train_ce", "train_mse", "val_loss"} <= set(last)
    assert last["train_ce"] < first["train_ce"] * 0.7 and last["train_mse"] < first["train_mse"] * 0.5
    assert last["val_loss"] < first["val_loss"]


def test_lbfgs_by_name_uses_a_closure_and_fits_a_regression():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(128, 3, generator=g)
    y = X @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.3
    torch.manual_seed(0)
    result = nw.fit(nn.Linear(3, 1), (X, y), loss="mse", optimizer="lbfgs", lr=0.5, epochs=3,
                    batch_size=128, verbose=0)
    assert result.history[-1]["train_loss"] < 1e-4  # exact solution of a linear least squares
    with pytest.raises(nw.ConfigError, match=r"LBFGS re-evaluates the loss.*accumulate=1"):
        nw.fit(nn.Linear(3, 1), (X, y), loss="mse", optimizer="lbfgs", accumulate=2, verbose=0)
    with pytest.raises(nw.ConfigError, match=r"weight_decay=0.1 is not supported"):
        nw.fit(nn.Linear(3, 1), (X, y), loss="mse", optimizer="lbfgs", weight_decay=0.1, verbose=0)


def test_lbfgs_instance_with_the_users_own_closure_step():
    g = torch.Generator().manual_seed(2)
    X = torch.randn(64, 2, generator=g)
    y = X.sum(1, keepdim=True)
    model = nn.Linear(2, 1)
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=20)
    calls = []

    def step(ctx, x, t, **_):
        def closure():
            ctx.optimizer.zero_grad()
            loss = ctx.loss_fn(ctx.model(x), t)
            loss.backward()
            calls.append(1)
            return loss
        return ctx.optimizer.step(closure).detach()

    result = nw.fit(model, (X, y), loss="mse", optimizer=opt, step=step, epochs=2, batch_size=64,
                    verbose=0)
    assert len(calls) > 2 and result.history[-1]["train_loss"] < 1e-6


def test_a_trainer_subclass_can_override_train_step(xy):
    class Counting(nw.Trainer):
        steps = 0

        def train_step(self, ctx, x, y, *, scale=1.0, step=True):
            Counting.steps += 1
            return super().train_step(ctx, x, y, scale=scale, step=step)

    result = Counting(nn.Linear(6, 2), loss="cross_entropy", epochs=2, batch_size=32,
                      verbose=0).fit(xy)
    assert Counting.steps == 2 * 3 and len(result.history) == 2


def test_the_default_step_is_the_builtin_function_not_a_wrapper():
    trainer = nw.Trainer(nn.Linear(2, 2), loss="mse")
    trainer.optimizer = torch.optim.Adam(trainer.model.parameters())
    fn, custom = trainer._step_function()
    assert fn is nw.train_step and not custom


def test_a_custom_step_returning_something_else_is_explained(xy):
    with pytest.raises(nw.ConfigError, match=r"step: expected the batch's loss as a one-value "
                                             r"tensor.*received float 1\.0 at epoch 1, step 1"):
        nw.fit(nn.Linear(6, 2), xy, loss="cross_entropy", step=lambda ctx, x, y, **k: 1.0,
               epochs=1, verbose=0)
    with pytest.raises(nw.ConfigError, match=r"dict without 'loss'"):
        nw.fit(nn.Linear(6, 2), xy, loss="cross_entropy",
               step=lambda ctx, x, y, **k: {"ce": torch.tensor(1.0)}, epochs=1, verbose=0)


# -- a loss that becomes NaN mid-training -------------------------------------------------------

def _regression(n=64):
    g = torch.Generator().manual_seed(3)
    X = torch.randn(n, 4, generator=g)
    return X, X.sum(1, keepdim=True)


def test_nan_mid_training_raises_and_keeps_the_last_good_run_dir(tmp_path):
    X, y = _regression()
    run = tmp_path / "run"
    torch.manual_seed(0)
    # lr 1 on SGD trains for an epoch, then diverges: we want NaN after epoch 1 is written
    with pytest.raises(nw.NonFiniteLossError) as info:
        nw.fit(nn.Linear(4, 1), (X * 3, y * 3), loss="mse", optimizer="sgd", lr=0.25, epochs=40,
               batch_size=8, run_dir=run, verbose=0, check=False)
    text = str(info.value)
    epoch = int(re.search(r"at epoch (\d+), step \d+ of 8", text).group(1))
    assert epoch >= 2, text
    assert "The batch: inputs shape [8, 4]" in text and "checkpoints/last" in text
    assert "resume=True" in text
    assert not (run / "weights.safetensors").exists()  # never written with NaN
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(rows) == epoch - 1 and all(np.isfinite(float(r["train_loss"])) for r in rows)
    from netwright.resume import latest_bundle
    latest = latest_bundle(run)
    assert latest.state["epoch"] == epoch - 1
    assert all(torch.isfinite(t).all() for t in latest.model_state.values())
    # and it resumes from there with a gentler lr (force: the options changed)
    result = nw.fit(nn.Linear(4, 1), (X * 3, y * 3), loss="mse", optimizer="sgd", lr=0.01,
                    epochs=epoch + 1, batch_size=8, run_dir=run, resume=True, force=True,
                    verbose=0, check=False)
    assert len(result.history) == epoch + 1 and np.isfinite(result.history[-1]["train_loss"])
    assert result.history[-1]["lr"] == pytest.approx(0.01)  # the new lr, not the restored one
    assert (run / "weights.safetensors").is_file()


def test_on_nonfinite_skip_drops_bad_batches_and_counts_them():
    X, y = _regression(64)
    X = X.clone()
    X[5, 0] = float("nan")  # one poisoned row: its batch is skipped every epoch
    torch.manual_seed(0)
    result = nw.fit(nn.Linear(4, 1), (X, y), loss="mse", lr=0.05, epochs=4, batch_size=16,
                    on_nonfinite="skip", verbose=0, check=False)
    assert [row["nonfinite_skipped"] for row in result.history] == [1, 1, 1, 1]
    assert all(np.isfinite(row["train_loss"]) for row in result.history)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    with pytest.raises(nw.NonFiniteLossError, match=r"every one of the 4 training batches"):
        nw.fit(nn.Linear(4, 1), (X * float("nan"), y), loss="mse", epochs=1, batch_size=16,
               on_nonfinite="skip", verbose=0, check=False)


def test_without_the_skip_the_same_poisoned_batch_raises():
    X, y = _regression(64)
    X = X.clone()
    X[5, 0] = float("nan")
    with pytest.raises(nw.NonFiniteLossError, match=r"NaN 1, Inf 0"):
        nw.fit(nn.Linear(4, 1), (X, y), loss="mse", epochs=1, batch_size=16, shuffle=False,
               verbose=0, check=False)


def test_the_nonfinite_option_is_in_the_yaml_schema_too():
    from netwright.config import load_config

    base = {"model": {"zoo": "mlp"}, "data": {"source": "iris"}, "loss": "cross_entropy"}
    assert load_config(base, ["train.on_nonfinite=skip"]).train.on_nonfinite == "skip"
    with pytest.raises(nw.ConfigError, match=r"train.on_nonfinite: expected one of 'raise' or "
                                             r"'skip', received 'ignore'"):
        load_config(base, ["train.on_nonfinite=ignore"])


# -- found in review ----------------------------------------------------------------------------

def test_verbose_false_and_numpy_values_are_accepted_numpy_booleans_are_not():
    o = fit_options(loss="mse", verbose=False, early_stopping=np.int64(3), lr=np.float32(0.5))
    assert o.verbose == 0 and o.early_stopping.patience == 3 and o.lr == pytest.approx(0.5)
    with pytest.raises(nw.ConfigError, match=r"epochs: expected an integer, received np\.True_"):
        fit_options(loss="mse", epochs=np.True_)


def test_skip_with_a_custom_step_keeps_the_weights_finite():
    X, y = _regression(64)
    X = X.clone()
    X[3, 0] = float("nan")

    def my_step(ctx, x, t, *, scale=1.0, step=True):
        loss = ctx.loss_fn(ctx.model(x), t)
        loss.backward()
        ctx.optimizer.step()  # the guard refuses NaN gradients here
        ctx.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    result = nw.fit(nn.Linear(4, 1), (X, y), loss="mse", step=my_step, epochs=2, batch_size=16,
                    shuffle=False, on_nonfinite="skip", verbose=0, check=False)
    assert [r["nonfinite_skipped"] for r in result.history] == [1, 1]
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_skip_inside_an_accumulation_window_still_steps_the_other_batches():
    X, y = _regression(64)
    X = X.clone()
    X[20, 0] = float("nan")  # batch 1 of 4, all in one window of 4
    model = nn.Linear(4, 1)
    before = [p.detach().clone() for p in model.parameters()]
    result = nw.fit(model, (X, y), loss="mse", optimizer="sgd", lr=0.1, epochs=1, batch_size=16,
                    accumulate=4, shuffle=False, on_nonfinite="skip", verbose=0, check=False)
    assert result.history[0]["nonfinite_skipped"] == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # it stepped


def test_lbfgs_puts_the_weights_back_when_a_later_closure_call_is_nan():
    X = torch.ones(8, 4)
    y = torch.full((8, 1), 40.0)

    def capped(out, t):  # NaN once the output passes 8: L-BFGS's first move goes there
        loss = ((out - t) ** 2).mean()
        return loss if float(out.abs().max()) <= 8 else loss * float("nan")

    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(nw.NonFiniteLossError):
        nw.fit(model, (X, y), loss=capped, optimizer={"name": "lbfgs", "lr": 1.0}, epochs=1,
               batch_size=8, verbose=0, check=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_forced_resume_takes_a_new_lr_given_inside_the_optimizer_mapping(tmp_path):
    X, y = _regression(64)
    common = dict(loss="mse", epochs=2, batch_size=16, run_dir=tmp_path / "r", verbose=0)

    class Stop(nw.Callback):
        def on_epoch_start(self, epoch):
            if epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        nw.fit(nn.Linear(4, 1), (X, y), optimizer={"name": "sgd", "lr": 0.1}, callbacks=[Stop()],
               **common)
    result = nw.fit(nn.Linear(4, 1), (X, y), optimizer={"name": "sgd", "lr": 0.001},
                    resume=True, force=True, **common)
    assert [round(r["lr"], 6) for r in result.history] == [0.1, 0.001]


def test_numpy_option_values_are_written_to_config_yaml(tmp_path):
    X, y = _regression(32)
    nw.fit(nn.Linear(4, 1), (X, y), loss="mse", optimizer={"name": "sgd", "momentum": np.float64(0.9)},
           epochs=1, run_dir=tmp_path / "r", verbose=0)
    assert "momentum: 0.9" in (tmp_path / "r" / "config.yaml").read_text()


def test_a_mid_epoch_resume_keeps_the_skipped_count_and_the_custom_steps_values(tmp_path):
    class Interrupt(nw.Callback):
        def on_batch_end(self, epoch, batch, loss):
            if (epoch, batch) == (0, 4):
                raise KeyboardInterrupt

    def extra_step(ctx, x, y, *, scale=1.0, step=True):
        return {"loss": nw.train_step(ctx, x, y, scale=scale, step=step), "marker": x[:, 1].mean()}

    X, y = _regression(64)
    X = X.clone()
    X[2, 0] = float("nan")  # batch 0 is skipped
    common = dict(loss="mse", lr=0.05, epochs=2, batch_size=8, shuffle=False, on_nonfinite="skip",
                  step=extra_step, checkpoint_every=2, verbose=0, check=False)
    ref = nw.fit(nn.Linear(4, 1), (X, y), run_dir=tmp_path / "ref", **common)
    with pytest.raises(KeyboardInterrupt):
        nw.fit(nn.Linear(4, 1), (X, y), run_dir=tmp_path / "cut", callbacks=[Interrupt()], **common)
    res = nw.fit(nn.Linear(4, 1), (X, y), run_dir=tmp_path / "cut", resume=True, **common)
    assert [r["nonfinite_skipped"] for r in res.history] == [1, 1]
    assert [r["train_marker"] for r in res.history] == [r["train_marker"] for r in ref.history]
    assert (tmp_path / "cut" / "metrics.csv").read_text() == (tmp_path / "ref" / "metrics.csv").read_text()


def test_a_skipped_batch_adds_nothing_to_the_custom_steps_logged_values():
    X, y = _regression(64)
    X = X.clone()
    X[3, 0] = float("nan")

    def step(ctx, x, t, *, scale=1.0, step=True):
        loss = nw.train_step(ctx, x, t, scale=scale, step=step)
        return {"loss": loss, "mean_input": x.mean()}

    result = nw.fit(nn.Linear(4, 1), (X, y), loss="mse", step=step, epochs=1, batch_size=16,
                    shuffle=False, on_nonfinite="skip", verbose=0, check=False)
    assert result.history[0]["nonfinite_skipped"] == 1
    assert result.history[0]["train_mean_input"] == pytest.approx(float(X[16:].mean()), rel=1e-5)
