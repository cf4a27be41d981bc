"""Data-parallel training on 2 CPU processes (gloo), started the ways a user starts it: torchrun
around an unchanged nw.fit script, `netwright train --nproc 2`, and two launchers meeting at a
c10d rendezvous on 127.0.0.1 (two simulated machines)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import netwright as nw

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src"),
       "NETWRIGHT_DIST_TIMEOUT": "60"}


def torchrun(*args, timeout=240, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", *args], capture_output=True,
                          text=True, timeout=timeout, env={**ENV, **(env or {})}, cwd=cwd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ranks(out: Path, n: int = 2) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(n)]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    res = torchrun("--standalone", "--nproc-per-node", "2", str(HERE / "worker.py"), str(out), "8", "1400")
    assert res.returncode == 0, res.stderr[-4000:]
    return out


def test_torchrun_around_an_unchanged_fit_trains_data_parallel(ddp_run):
    a, b = ranks(ddp_run)
    assert a["world"] == b["world"] == 2
    assert a["history"] == b["history"]  # every rank logs the same, reduced values
    assert a["history"][-1]["val_accuracy"] > 0.93


def test_it_reaches_the_accuracy_of_one_process(ddp_run, tmp_path):
    env = {k: v for k, v in ENV.items() if k not in ("RANK", "WORLD_SIZE")}
    res = subprocess.run([sys.executable, str(HERE / "worker.py"), str(tmp_path), "8", "1400"],
                         capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    one = json.loads((tmp_path / "rank0.json").read_text())["history"][-1]["val_accuracy"]
    two = ranks(ddp_run)[0]["history"][-1]["val_accuracy"]
    assert abs(one - two) < 0.02, (one, two)


def test_validation_metrics_are_of_the_whole_set_not_a_shard(ddp_run):
    """The run's final weights, evaluated in one process on the whole validation set, give the
    values the two processes logged for their last epoch (each rank held half of the set)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(X))
    Xv, yv = (X[idx[1400:]] / 16).astype("float32"), y[idx[1400:]].astype("int64")
    model = nw.build([{"linear": 64}, "relu", {"dropout": 0.2}, {"linear": 10}], (64,))
    nw.load_weights(model, ddp_run / "run" / "weights.safetensors")
    res = nw.evaluate(model, (Xv, yv), loss="cross_entropy", metrics=["accuracy", "f1"])
    last = ranks(ddp_run)[0]["history"][-1]
    assert res["accuracy"] == pytest.approx(last["val_accuracy"], abs=1e-6)
    assert res["f1"] == pytest.approx(last["val_f1"], abs=1e-6)
    assert res["loss"] == pytest.approx(last["val_loss"], rel=1e-5)


def test_only_rank_zero_writes_and_weights_have_no_module_prefix(ddp_run):
    run = ddp_run / "run"
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 8  # one header, one row per epoch: not two writers
    keys = load_file(str(run / "weights.safetensors")).keys()
    assert keys and not any(k.startswith("module.") for k in keys), sorted(keys)


def test_uneven_shards_do_not_hang(tmp_path):
    """65 samples, batches of 16: rank 0 trains 33 samples in 3 batches, rank 1 32 in 2; a
    checkpoint every 2 batches comes only where both ranks are (after batch 2 rank 1's epoch
    is over)."""
    res = torchrun("--standalone", "--nproc-per-node", "2", str(HERE / "worker.py"), str(tmp_path), "2", "65",
                   timeout=120, env={"NW_TEST_CKPT": "2"})
    assert res.returncode == 0, res.stderr[-4000:]
    a, b = ranks(tmp_path)
    assert a["history"] == b["history"]


def test_a_crashing_rank_fails_the_run_naming_it_in_bounded_time(tmp_path):
    res = torchrun("--standalone", "--nproc-per-node", "2", str(HERE / "worker.py"), str(tmp_path), "4", "400",
                   "1", timeout=120)
    assert res.returncode != 0
    text = res.stdout + res.stderr
    assert "deliberate failure in rank 1" in text
    assert "rank      : 1" in text or "rank: 1" in text, text[-3000:]


def test_netwright_train_nproc_2(tmp_path):
    config = tmp_path / "digits.yaml"
    config.write_text((ROOT / "examples" / "digits_mlp.yaml").read_text())
    res = subprocess.run([sys.executable, "-m", "netwright.cli", "train", str(config), "--nproc", "2",
                          "train.epochs=3", f"run_dir={tmp_path / 'runs'}"], capture_output=True,
                         text=True, timeout=300, env=ENV, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-4000:]
    assert res.stdout.count("final metrics") == 1  # rank 0 prints, rank 1 does not
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1, runs  # one run directory, chosen by rank 0
    results = json.loads((runs[0] / "results.json").read_text())
    assert results["epochs"] == 3 and results["scores"]["test"]["accuracy"] > 0.8
    assert "data-parallel: 2 processes (gloo)" in res.stdout + res.stderr


def test_two_machines_meet_at_a_c10d_rendezvous(tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    common = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
              "--rdzv-endpoint", endpoint, "--rdzv-id", "nwtest"]
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *common,
                               str(HERE / "worker.py"), str(tmp_path), "2", "400"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
             for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    a, b = ranks(tmp_path)
    assert a["world"] == b["world"] == 2 and a["history"] == b["history"]


def test_sigkill_of_one_worker_restarts_the_group_and_ends_bitwise_equal(ddp_run, tmp_path):
    """Rank 1 kills itself (SIGKILL) after batch 7 of epoch 3 on the first attempt; torchrun
    (--max-restarts 1) starts both processes again, they resume from the newest bundle (epoch 3,
    batch 5: each rank's RNG streams and the data position) and end with the weights of the
    uninterrupted run."""
    res = torchrun("--standalone", "--nproc-per-node", "2", "--max-restarts", "1", str(HERE / "worker.py"),
                   str(tmp_path), "8", "1400", "1", "2:7")
    assert res.returncode == 0, res.stderr[-4000:]
    text = res.stdout + res.stderr
    assert "failed (exitcode: -9) local_rank: 1" in text, text[-3000:]  # the kill, then a restart
    again = load_file(str(tmp_path / "run" / "weights.safetensors"))
    whole = load_file(str(ddp_run / "run" / "weights.safetensors"))
    assert again.keys() == whole.keys()
    assert all(torch.equal(again[k], whole[k]) for k in whole)
    assert ranks(tmp_path)[0]["history"] == ranks(ddp_run)[0]["history"]


# -- FSDP2: parameters, gradients and optimizer state sharded between the 2 processes --------

@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    res = torchrun("--standalone", "--nproc-per-node", "2", str(HERE / "worker.py"), str(out), "8", "1400",
                   env={"NW_TEST_STRATEGY": "fsdp"})
    assert res.returncode == 0, res.stderr[-4000:]
    return out


def test_fsdp_trains_and_writes_one_consolidated_weights_file(fsdp_run, ddp_run):
    a, b = ranks(fsdp_run)
    assert a["history"] == b["history"] and a["history"][-1]["val_accuracy"] > 0.93
    mine = load_file(str(fsdp_run / "run" / "weights.safetensors"))
    ddp = load_file(str(ddp_run / "run" / "weights.safetensors"))
    assert {k: v.shape for k, v in mine.items()} == {k: v.shape for k, v in ddp.items()}  # whole, not shards
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(X))
    model = nw.build([{"linear": 64}, "relu", {"dropout": 0.2}, {"linear": 10}], (64,))
    nw.load_weights(model, fsdp_run / "run" / "weights.safetensors")
    res = nw.evaluate(model, ((X[idx[1400:]] / 16).astype("float32"), y[idx[1400:]]),
                      loss="cross_entropy", metrics=["accuracy"])
    assert res["accuracy"] == pytest.approx(a["history"][-1]["val_accuracy"], abs=1e-6)


def test_fsdp_sigkill_restart_resumes_its_sharded_state_bitwise(fsdp_run, tmp_path):
    res = torchrun("--standalone", "--nproc-per-node", "2", "--max-restarts", "1", str(HERE / "worker.py"),
                   str(tmp_path), "8", "1400", "1", "2:7", env={"NW_TEST_STRATEGY": "fsdp"})
    assert res.returncode == 0, res.stderr[-4000:]
    assert "failed (exitcode: -9) local_rank: 1" in res.stdout + res.stderr
    again = load_file(str(tmp_path / "run" / "weights.safetensors"))
    whole = load_file(str(fsdp_run / "run" / "weights.safetensors"))
    assert all(torch.equal(again[k], whole[k]) for k in whole)
    # The checkpoints were sharded: each rank wrote its own part (torch.distributed.checkpoint),
    # the bundles hold no gathered weights, and only the folders they refer to are kept.
    ckpt = tmp_path / "run" / "checkpoints"
    referred = set()
    bundles = [b for b in ("last", "prev", "best", "best.prev") if (ckpt / b).is_dir()]
    assert bundles[:2] == ["last", "prev"]
    for bundle in bundles:
        state = json.loads((ckpt / bundle / "state.json").read_text())["state"]
        referred.add(state["shards"]["dir"])
        assert set(state["shards"]["files"]) == {".metadata", "__0_0.distcp", "__1_0.distcp"}
        assert load_file(str(ckpt / bundle / "weights.safetensors")) == {}
    assert {p.name for p in (ckpt / "shards").iterdir()} == referred
