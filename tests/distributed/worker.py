"""A training script run by torchrun in the distributed tests: digits, an MLP, nw.fit with no
distributed code at all. argv: out_dir epochs n_train [crash_rank [kill_at]]: crash_rank raises
at the end of epoch 2; with kill_at "E:B" it kills itself with SIGKILL after batch B of epoch E
instead, on the first attempt only (torchrun's restart then resumes the run)."""
import json
import os
import sys

import numpy as np
import torch

import netwright as nw

out, epochs, n_train = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
crash_rank = int(sys.argv[4]) if len(sys.argv) > 4 else None
kill_at = tuple(int(v) for v in sys.argv[5].split(":")) if len(sys.argv) > 5 else None
rank = int(os.environ.get("RANK", "0"))
first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"


class Crash:
    def on_epoch_end(self, epoch, logs, model):
        if rank == crash_rank and epoch == 1 and kill_at is None:
            raise RuntimeError(f"deliberate failure in rank {rank}")

    def on_batch_end(self, epoch, i, loss):
        if rank == crash_rank and kill_at == (epoch, i) and first_attempt:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = (X / 16).astype("float32"), y.astype("int64")
    idx = np.random.default_rng(0).permutation(len(X))
    return X[idx[:n_train]], y[idx[:n_train]], X[idx[1400:]], y[idx[1400:]]


X, y, Xv, yv = digits()
torch.manual_seed(0)
model = nw.build([{"linear": 64}, "relu", {"dropout": 0.2}, {"linear": 10}], (64,))
res = nw.fit(model, (X, y), val=(Xv, yv), loss="cross_entropy", metrics=["accuracy", "f1"],
             epochs=epochs, batch_size=16, lr=3e-3, restore_best=False, verbose=0,
             checkpoint_every=int(os.environ.get("NW_TEST_CKPT", "5")),
             strategy=os.environ.get("NW_TEST_STRATEGY", "auto"),
             run_dir=os.path.join(out, "run"), overwrite=True,
             callbacks=[Crash()] if crash_rank is not None else None)
with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
    json.dump({"history": res.history, "world": int(os.environ.get("WORLD_SIZE", "1"))}, f)
