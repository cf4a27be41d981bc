"""An MLP on scikit-learn's real 8x8 digits: held-out split, scheduler, early stopping, run dir.

Run:  python examples/digits_mlp.py [RUN_DIR]   (NETWRIGHT_EXAMPLE_EPOCHS=5 for a quick run)
"""

import os
import sys
import tempfile

import torch
import torch.nn as nn

import netwright as nw
from netwright.data.splits import stratified_indices

EPOCHS = int(os.environ.get("NETWRIGHT_EXAMPLE_EPOCHS", "40"))
run_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(tempfile.mkdtemp(), "digits")

X, y = nw.load_builtin("digits")  # (1797, 64) float32 pixels 0..16, int64 labels 0..9
train_idx, test_idx = (t.numpy() for t in stratified_indices(torch.as_tensor(y), 0.2, seed=0))
mean, std = X[train_idx].mean(0), X[train_idx].std(0) + 1e-6  # training statistics only
X = (X - mean) / std

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
result = nw.fit(
    model, (X[train_idx], y[train_idx]),
    loss={"name": "cross_entropy", "label_smoothing": 0.05},
    optimizer="adamw", lr=2e-3, weight_decay=1e-4, decay_norm_and_bias=False,
    epochs=EPOCHS, batch_size=32, val=0.15,
    metrics=["accuracy", "f1_macro"],
    scheduler={"name": "cosine", "warmup_steps": 50},
    early_stopping={"patience": 8},
    run_dir=run_dir,
)
print(result)
test = nw.evaluate(model, (X[test_idx], y[test_idx]), loss="cross_entropy",
                   metrics=["accuracy", "precision", "recall", "f1_macro", "confusion_matrix"])
print(f"test accuracy {test['accuracy']:.4f}  recall {test['recall']:.4f}  f1 {test['f1_macro']:.4f}")
print("run directory:", run_dir)
