"""The open training step: three things the built-in step does not do, on real data.

1. A two-output model (the digit's class, and whether it is >= 5 as a second head) trained
   with a weighted sum of two losses, logging each part per epoch.
2. L-BFGS, whose step needs a closure: by name (netwright's closure step) and with a closure
   written by hand in a custom step.
3. A step that logs an extra value (the gradient norm) into the history and metrics.csv.

    python examples/custom_step.py
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import netwright as nw

EPOCHS = int(os.environ.get("NETWRIGHT_EXAMPLE_EPOCHS", "15"))


class TwoHeads(nn.Module):
    """One body, two heads: 10 digit classes, and a 'high digit' (>= 5) logit."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
        self.digit = nn.Linear(64, 10)
        self.high = nn.Linear(64, 1)

    def forward(self, x):
        h = self.body(x)
        return self.digit(h), self.high(h).squeeze(1)


def two_losses(out, y):
    """Validation loss: the same weighted sum the step trains on."""
    digit_logits, high_logit = out
    return (0.8 * F.cross_entropy(digit_logits, y)
            + 0.2 * F.binary_cross_entropy_with_logits(high_logit, (y >= 5).float()))


def two_loss_step(ctx, x, y, *, scale=1.0, step=True):
    with ctx.autocast():
        digit_logits, high_logit = ctx.model(x)
        ce = F.cross_entropy(digit_logits, y)
        bce = F.binary_cross_entropy_with_logits(high_logit, (y >= 5).float())
        loss = 0.8 * ce + 0.2 * bce
    (loss * scale).backward()
    if step:
        ctx.optimizer.step()
        ctx.optimizer.zero_grad(set_to_none=True)
    return {"loss": loss.detach(), "digit_ce": ce.detach(), "high_bce": bce.detach()}


def grad_norm_step(ctx, x, y, *, scale=1.0, step=True):
    with ctx.autocast():
        loss = ctx.loss_fn(ctx.model(x), y)
    (loss * scale).backward()
    norm = torch.nn.utils.clip_grad_norm_(ctx.params, max_norm=float("inf"))  # measure only
    if step:
        ctx.optimizer.step()
        ctx.optimizer.zero_grad(set_to_none=True)
    return {"loss": loss.detach(), "grad_norm": norm}


def main() -> None:
    digits = load_digits()
    X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    n = len(X) * 4 // 5
    train, test = (X[:n], y[:n]), (X[n:], y[n:])

    # 1. two outputs, two losses
    torch.manual_seed(0)
    model = TwoHeads()
    result = nw.fit(model, train, loss=two_losses, step=two_loss_step, lr=3e-3, epochs=EPOCHS,
                    val=0.2, verbose=0)
    last = result.history[-1]
    with torch.no_grad():
        digit_logits, high_logit = model.eval()(test[0])
    acc = (digit_logits.argmax(1) == test[1]).float().mean().item()
    high_acc = ((high_logit > 0) == (test[1] >= 5)).float().mean().item()
    print(f"two heads: train_digit_ce {last['train_digit_ce']:.3f}, train_high_bce "
          f"{last['train_high_bce']:.3f}; test digit accuracy {acc:.3f}, high-digit accuracy "
          f"{high_acc:.3f}")

    # 2. L-BFGS by name: netwright's closure step (full batch, a linear softmax classifier)
    torch.manual_seed(0)
    linear = nn.Linear(64, 10)
    result = nw.fit(linear, train, loss="cross_entropy", optimizer="lbfgs", lr=0.5,
                    epochs=max(2, EPOCHS // 3), batch_size=n, verbose=0)
    acc = nw.evaluate(linear, test, metrics=["accuracy"])["accuracy"]
    print(f"lbfgs (built-in closure step): train loss {result.history[-1]['train_loss']:.4f}, "
          f"test accuracy {acc:.3f}")

    #    ... and the same with a closure written by hand in a custom step
    def lbfgs_step(ctx, x, y, **_):
        def closure():
            ctx.optimizer.zero_grad()
            loss = ctx.loss_fn(ctx.model(x), y)
            loss.backward()
            return loss
        return ctx.optimizer.step(closure).detach()

    torch.manual_seed(0)
    linear = nn.Linear(64, 10)
    opt = torch.optim.LBFGS(linear.parameters(), lr=0.5, max_iter=20)
    result = nw.fit(linear, train, loss="cross_entropy", optimizer=opt, step=lbfgs_step,
                    epochs=max(2, EPOCHS // 3), batch_size=n, verbose=0)
    print(f"lbfgs (own closure): train loss {result.history[-1]['train_loss']:.4f}")

    # 3. an extra value in the history
    torch.manual_seed(0)
    result = nw.fit(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), train,
                    loss="cross_entropy", step=grad_norm_step, lr=3e-3, epochs=EPOCHS, verbose=0)
    norms = [round(row["train_grad_norm"], 3) for row in result.history]
    print(f"gradient norm per epoch: first {norms[0]}, last {norms[-1]}")


if __name__ == "__main__":
    main()
