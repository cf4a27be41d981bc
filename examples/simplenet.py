"""The article's SimpleNet, verbatim, trained with netwright.

The article builds SimpleNet (Linear -> ReLU -> Linear -> Sigmoid -> Linear -> Softmax) on 500x20
random data with float targets of shape (500, 1). Two things in it break training with
CrossEntropyLoss, and netwright says so instead of crashing with torch's message:

1. float (N, 1) targets: cross-entropy wants class indices, int64 of shape (N,);
2. softmax at the end: CrossEntropyLoss applies log-softmax itself, so the model should return
   logits (the doubled softmax still trains, but slowly).

Run:  python examples/simplenet.py   (NETWRIGHT_EXAMPLE_EPOCHS=5 for a quick run)
"""

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

import netwright as nw

EPOCHS = int(os.environ.get("NETWRIGHT_EXAMPLE_EPOCHS", "60"))


class SimpleNet(nn.Module):
    def __init__(self, in_features=10, out_features=2):
        super(SimpleNet, self).__init__()
        self.linear1 = nn.Linear(in_features, 13, bias=True)
        self.linear2 = nn.Linear(13, 8, bias=True)
        self.output = nn.Linear(8, out_features, bias=True)

    def forward(self, x):
        z1 = self.linear1(x)
        sigma1 = F.relu(z1)
        z2 = self.linear2(sigma1)
        sigma2 = F.sigmoid(z2)
        z3 = self.output(sigma2)
        sigma3 = F.softmax(z3, dim=1)
        return sigma3


class SimpleNetLogits(SimpleNet):
    """The fix for the second bug: return the logits, let the loss do the softmax."""

    def forward(self, x):
        return self.output(F.sigmoid(self.linear2(F.relu(self.linear1(x)))))


torch.manual_seed(0)
net = SimpleNet(in_features=20, out_features=3)
X = torch.rand((500, 20), dtype=torch.float32)
y = torch.randint(low=0, high=3, size=(500, 1), dtype=torch.float32)  # the article's targets
y_hat = net(X)
print("forward pass:", tuple(y_hat.shape))

# 1. The article's data as is: netwright explains the target problem before training starts.
try:
    nw.fit(net, (X, y), loss="cross_entropy", epochs=1, verbose=0)
except nw.LossTargetError as exc:
    print("caught:", exc)

# The article's targets are random, so nothing can be learned from them. Make the data
# learnable (the class is the largest of the first three features), with integer labels.
y = X[:, :3].argmax(dim=1)

# 2. The verbatim model (softmax output) trains, but more slowly: its gradients pass through two
# softmaxes; 3. the logits variant learns faster. Both are shown early and at the end.
EARLY = min(10, EPOCHS)
for name, model in [("SimpleNet (softmax out)", net), ("SimpleNet (logits out)", SimpleNetLogits(20, 3))]:
    result = nw.fit(model, (X[:400], y[:400]), loss="cross_entropy", lr=0.01, epochs=EPOCHS,
                    val=(X[400:], y[400:]), metrics=["accuracy", "recall", "f1"], verbose=0, seed=0)
    early, last = result.history[EARLY - 1], result.history[-1]
    print(f"{name}: val accuracy {early['val_accuracy']:.3f} after {EARLY} epochs, "
          f"{last['val_accuracy']:.3f} after {len(result.history)} (recall {last['val_recall']:.3f}, "
          f"f1 {last['val_f1']:.3f})")
