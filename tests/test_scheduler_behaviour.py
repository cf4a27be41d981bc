"""Learning-rate schedules, checked value by value through ``fit``'s ``lr`` history column (the lr
at the start of each epoch).

For ``reduce_on_plateau`` the monitored value is scripted: a loss that returns a chosen number
per epoch (and a zero gradient), so a plateau and an improvement are told apart exactly, and the
lr must drop by exactly ``factor`` after exactly ``patience + 1`` epochs without improvement. For
``onecycle`` every optimizer step's lr is compared with torch's own OneCycleLR over exactly
``epochs x optimizer steps per epoch`` steps, after which one more step is what torch refuses.
Per-epoch schedulers are compared with their closed forms.
"""

import math

import pytest
import torch
import torch.nn as nn

import netwright as nw

LR = 0.8


class ScriptedLoss:
    """A loss whose value is ``train[epoch]`` in training steps and ``val[epoch]`` in evaluation
    (no grad), with a zero gradient so the weights never move."""

    def __init__(self, train, val=None):
        self.train, self.val = list(train), list(val if val is not None else train)
        self.epoch = 0

    def __call__(self, out, y):
        values = self.train if torch.is_grad_enabled() else self.val
        return out.sum() * 0.0 + values[min(self.epoch, len(values) - 1)]

    def on_epoch_start(self, epoch):  # used as a callback too: it learns the epoch from fit
        self.epoch = epoch


def _plateau_run(train, val=None, **options):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(16, 2, generator=g)
    y = torch.randn(16, 1, generator=g)
    loss = ScriptedLoss(train, val)
    extra = {"val": (X[:8], y[:8])} if val is not None else {}
    result = nw.fit(nn.Linear(2, 1), (X, y), loss=loss, callbacks=[loss], optimizer="sgd", lr=LR,
                    epochs=len(train), batch_size=8, device="cpu", verbose=0,
                    scheduler={"name": "reduce_on_plateau", **options}, **extra)
    assert [r["train_loss"] for r in result.history] == pytest.approx(train)  # the script ran
    return [r["lr"] for r in result.history]


def test_plateau_reduces_by_factor_after_patience_plus_one_flat_epochs():
    # Epoch 0 sets the best; epochs 1-3 do not improve: after the 3rd (= patience + 1) the lr is
    # halved, so epoch 4 starts at LR/2; three more flat epochs halve it again.
    lrs = _plateau_run([1.0] * 8, monitor="train_loss", patience=2, factor=0.5)
    assert lrs == pytest.approx([LR] * 4 + [LR / 2] * 3 + [LR / 4], rel=1e-12)


@pytest.mark.parametrize("factor, patience", [(0.1, 0), (0.25, 3)])
def test_plateau_factor_and_patience_are_the_configured_ones(factor, patience):
    n = 2 * (patience + 1) + 2
    lrs = _plateau_run([1.0] * n, monitor="train_loss", patience=patience, factor=factor)
    first = patience + 2  # the first epoch that starts reduced
    expected = [LR] * first + [LR * factor] * (patience + 1)
    expected += [LR * factor**2] * (n - len(expected))
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_no_reduction_while_the_monitored_value_improves():
    lrs = _plateau_run([2.0 ** -i for i in range(8)], monitor="train_loss", patience=0, factor=0.5)
    assert lrs == [LR] * 8


def test_an_improvement_resets_the_count_of_flat_epochs():
    # Two flat epochs (not > patience=2), an improvement, then three flat ones: one reduction,
    # and only after the last of them.
    lrs = _plateau_run([1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8], monitor="train_loss",
                       patience=2, factor=0.5)
    assert lrs == pytest.approx([LR] * 8 + [LR / 2], rel=1e-12)


def test_plateau_threshold_decides_what_counts_as_an_improvement():
    falling_by_1_percent = [0.99 ** i for i in range(6)]
    # Default threshold (1e-4, relative): a 1 % fall is an improvement.
    assert _plateau_run(falling_by_1_percent, monitor="train_loss", patience=1,
                        factor=0.5) == [LR] * 6
    # threshold=0.05: it is not, so the lr halves after 2 (= patience + 1) such epochs.
    lrs = _plateau_run(falling_by_1_percent, monitor="train_loss", patience=1, factor=0.5,
                       threshold=0.05)
    assert lrs == pytest.approx([LR] * 3 + [LR / 2] * 2 + [LR / 4], rel=1e-12)


def test_plateau_mode_follows_the_monitor_or_the_option():
    rising = [1.0, 2.0, 3.0, 4.0, 5.0]
    # A loss that rises is getting worse (mode 'min' from the name) ...
    assert _plateau_run(rising, monitor="train_loss", patience=1, factor=0.5) == pytest.approx(
        [LR] * 3 + [LR / 2] * 2, rel=1e-12)
    # ... unless mode='max' is given explicitly.
    assert _plateau_run(rising, monitor="train_loss", patience=1, factor=0.5, mode="max") == [LR] * 5


def test_plateau_monitors_val_loss_by_default_when_there_is_val_data():
    improving = [2.0 ** -i for i in range(6)]
    flat = [1.0] * 6
    # Training improves every epoch, validation is flat: the default monitor is val_loss.
    lrs = _plateau_run(improving, flat, patience=1, factor=0.5)
    assert lrs == pytest.approx([LR] * 3 + [LR / 2] * 2 + [LR / 4], rel=1e-12)
    # And the other way round: no reduction.
    assert _plateau_run(flat, improving, patience=1, factor=0.5) == [LR] * 6


# -- onecycle ----------------------------------------------------------------------------------
class _RecordingSGD(torch.optim.SGD):
    """SGD that records the lr of every step it takes (a subclass: torch's schedulers wrap
    ``optimizer.step`` as a bound method)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lrs = []

    def step(self, closure=None):
        self.lrs.append(self.param_groups[0]["lr"])
        return super().step(closure)


def _onecycle_fit(epochs, n, batch_size, accumulate=1, **sched):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 2, generator=g)
    y = (X[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    opt = _RecordingSGD(model.parameters(), lr=0.1, momentum=0.9)
    seen = opt.lrs
    trainer = nw.Trainer(model, loss="cross_entropy", optimizer=opt, epochs=epochs,
                         batch_size=batch_size, accumulate=accumulate, device="cpu", verbose=0,
                         scheduler={"name": "onecycle", **sched})
    result = trainer.fit((X, y))
    return trainer, result, seen


def _reference_onecycle(total, **options):
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total, **options)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("accumulate, steps_per_epoch", [(1, 5), (2, 3)])
def test_onecycle_spans_exactly_the_optimizer_steps_of_the_run(accumulate, steps_per_epoch):
    # 40 rows in batches of 8: 5 batches per epoch; accumulating 2 gives windows 2, 2, 1 = 3 steps.
    epochs = 3
    total = epochs * steps_per_epoch
    trainer, result, seen = _onecycle_fit(epochs, 40, 8, accumulate)
    sched = trainer.schedule.scheduler
    assert isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)
    assert sched.total_steps == total
    ref = _reference_onecycle(total)
    assert seen == pytest.approx(ref, rel=1e-9)  # every step's lr, in order
    # The last optimizer step ran at the cycle's final (lowest) lr: initial / final_div_factor.
    assert seen[-1] == pytest.approx(0.1 / 25 / 1e4, rel=1e-6)
    assert [r["lr"] for r in result.history] == pytest.approx(ref[::steps_per_epoch], rel=1e-9)
    # The scheduler has been stepped exactly total_steps times: one more is what torch refuses.
    with pytest.raises(ValueError, match=f"Tried to step {total + 1} times"):
        sched.step()


def test_onecycle_options_are_passed_to_torch():
    trainer, _, seen = _onecycle_fit(2, 40, 8, pct_start=0.5, div_factor=10.0)
    ref = _reference_onecycle(10, pct_start=0.5, div_factor=10.0)
    assert seen == pytest.approx(ref, rel=1e-9)
    assert seen[0] == pytest.approx(0.01) and max(seen) == pytest.approx(0.1)
    assert seen.index(max(seen)) == 4  # the peak at step pct_start * total - 1


def test_onecycle_total_steps_that_do_not_fit_the_run_are_caught_before_training():
    with pytest.raises(nw.NetwrightError, match="total_steps=6"):
        _onecycle_fit(3, 40, 8, total_steps=6)


# -- per-epoch schedulers ------------------------------------------------------------------------
def _epoch_lrs(spec, epochs=6):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(32, 2, generator=g)
    y = (X[:, 0] > 0).long()
    torch.manual_seed(0)
    result = nw.fit(nn.Linear(2, 2), (X, y), loss="cross_entropy", optimizer="sgd", lr=LR,
                    epochs=epochs, batch_size=8, device="cpu", verbose=0, scheduler=spec)
    return [r["lr"] for r in result.history]  # 4 batches per epoch: one scheduler step each epoch


@pytest.mark.parametrize("spec, closed_form", [
    ({"name": "step", "step_size": 2, "gamma": 0.5}, lambda e: LR * 0.5 ** (e // 2)),
    ("step", lambda e: LR * 0.1 ** (e // 2)),  # defaults: step_size = epochs // 3, gamma 0.1
    ({"name": "exponential", "gamma": 0.7}, lambda e: LR * 0.7 ** e),
    ("exponential", lambda e: LR * 0.95 ** e),  # default gamma
    ({"name": "multistep", "milestones": [1, 4], "gamma": 0.5},
     lambda e: LR * 0.5 ** sum(e >= m for m in (1, 4))),
    ("cosine", lambda e: LR * (1 + math.cos(math.pi * e / 6)) / 2),  # T_max = epochs
    ({"name": "cosine", "T_max": 3, "eta_min": 0.1},
     lambda e: 0.1 + (LR - 0.1) * (1 + math.cos(math.pi * e / 3)) / 2),
])
def test_epoch_schedulers_follow_their_closed_form(spec, closed_form):
    lrs = _epoch_lrs(spec)
    assert lrs == pytest.approx([closed_form(e) for e in range(6)], rel=1e-6, abs=1e-12)
