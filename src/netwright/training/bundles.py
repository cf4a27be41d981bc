"""Resume bundles for one ``fit``: what is written after each epoch (and every
``checkpoint_every`` batches) and how a run is put back exactly where it stopped. The files
themselves are :mod:`netwright.resume`'s."""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ConfigError
from ..yamlfiles import parse_own_yaml
from .callbacks import is_better

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

__all__ = ["BundleSaver", "rescale_lr", "effective_lr"]


class BundleSaver:
    """Writes and restores resume bundles for one fit (see ``netwright.resume``)."""

    def __init__(self, trainer: Trainer, callbacks: list, scaler: Any, generator: torch.Generator,
                 config_text: str | None, monitor: str, mode: str, log_keys: list[str]):
        self.t, self.callbacks, self.scaler, self.generator = trainer, callbacks, scaler, generator
        self.log_keys = log_keys
        self.config = None
        if config_text is not None:
            self.config = parse_own_yaml(config_text)
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None
        self.epoch_lr: float | None = None
        self.partial_skipped, self.partial_extras = 0, {}

    def _keyed_callbacks(self) -> dict:
        """Callbacks with state, keyed ``Name#k`` (the k-th of that class): a callback added or
        left out at resume (a one-off interrupt, a printer) does not shift the others' keys."""
        keyed, seen = {}, {}
        for cb in self.callbacks:
            if callable(getattr(cb, "state_dict", None)):
                name = type(cb).__name__
                seen[name] = seen.get(name, 0) + 1
                keyed[f"{name}#{seen[name] - 1}"] = cb
        return keyed

    def _callback_states(self) -> dict:
        return {key: cb.state_dict() for key, cb in self._keyed_callbacks().items()}

    def save(self, epoch: int, batch: int, history: list, losses: list, epoch_rng: Any,
             stop_reason: str, logs: dict | None = None, skipped: int = 0,
             extras: dict | None = None) -> None:
        from ..resume import rng_state, rotate_into

        t = self.t
        # Under data-parallel training every rank's own part: its RNG streams, and the unfinished
        # epoch's losses, skipped batches and logged values of its shard.
        ranks = t.world.gather({
            "rng": rng_state(), "skipped": skipped,
            "losses": torch.stack(losses).cpu() if losses else None,
            "extras": {k: torch.stack(v).cpu() for k, v in extras.items() if v} if extras else None,
        }) if t.world.active else None
        shards = None
        if t.world.sharded:
            # FSDP: every rank writes its own shards (torch.distributed.checkpoint); the bundle
            # that rank 0 writes after them refers to their folder and records its checksums.
            shards = self._write_shards(epoch, batch)
            model_state, optimizer_state = {}, None
        else:
            model_state = t.world.model_state(t.model)
            optimizer_state = t.world.optimizer_state(t.model, t.optimizer)
        if t.run_dir is None:
            return  # not rank 0: only rank 0 writes
        state = {
            "epoch": epoch, "batch": batch, "history": history, "stop_reason": stop_reason,
            "optimizer": optimizer_state, "schedule": t.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "callbacks": self._callback_states(), "rng": rng_state(),
            "epoch_rng": epoch_rng if epoch_rng is not None else self.generator.get_state(),
            "losses": torch.stack(losses).cpu() if losses else None, "epoch_lr": self.epoch_lr,
            "best": self.best, "monitor": self.monitor, "config": self.config,
            # the unfinished epoch's skipped batches and a custom step's logged values
            "skipped": skipped,
            "extras": {k: torch.stack(v).cpu() for k, v in extras.items() if v} if extras else None,
            "world": t.world.size, "ranks": ranks, "shards": shards,
        }
        ckpt = t.run_dir / "checkpoints"
        t._check_weights(len(history), f"at epoch {epoch + (1 if batch else 0)}, batch {batch}"
                         if batch else f"at the end of epoch {epoch}", model_state)
        rotate_into(ckpt, "last", model_state, state)
        value = logs.get(self.monitor) if logs else None
        if isinstance(value, float) and is_better(value, self.best, self.mode):
            self.best = value
            state["best"] = value
            rotate_into(ckpt, "best", model_state, state)
        if shards is not None:
            _remove_unused_shards(ckpt)

    def _write_shards(self, epoch: int, batch: int) -> dict:
        """All ranks: write this checkpoint's shards into a new folder under
        ``checkpoints/shards/`` (named by rank 0); rank 0 returns its name and checksums."""
        import uuid

        from ..checkpoint.sharded import folder_digests

        t = self.t
        name = t.world.broadcast(f"e{epoch}-b{batch}-{uuid.uuid4().hex[:8]}")
        root = t.world.broadcast(str(t.run_dir))
        folder = Path(root) / "checkpoints" / "shards" / name
        t.world.save_sharded(t.model, t.optimizer, folder)  # returns once every rank wrote
        return {"dir": name, "files": folder_digests(folder)} if t.run_dir is not None else {}

    def restore(self, bundle: Any) -> tuple:
        from ..resume import set_rng_state

        t, s = self.t, bundle.state
        if s.get("shards"):
            _load_shards(t, bundle)
        else:
            if t.world.sharded and not bundle.model_state:
                raise ConfigError("resume: this checkpoint holds no weights (it refers to no "
                                  "shards). Fix: resume from another run, or train again.")
            t.world.load_states(t.model, t.optimizer, bundle.model_state, s["optimizer"])
        t.schedule.load_state_dict(s["schedule"])
        rescale_lr(t, effective_lr(s.get("config")))
        if self.scaler is not None and s.get("scaler"):
            self.scaler.load_state_dict(s["scaler"])
        states = s.get("callbacks") or {}
        for key, cb in self._keyed_callbacks().items():
            if key in states and callable(getattr(cb, "load_state_dict", None)):
                cb.load_state_dict(states[key])
        s = self._this_ranks_part(s)
        set_rng_state(s["rng"])
        self.generator.set_state(s["epoch_rng"])
        self.best, self.epoch_lr = s.get("best"), s.get("epoch_lr")
        self.partial_skipped = int(s.get("skipped") or 0)
        self.partial_extras = {k: list(v.to(t.device)) for k, v in (s.get("extras") or {}).items()}
        losses = list(s["losses"].to(t.device)) if s.get("losses") is not None else []
        # state.json stores its keys sorted: give each row back the order the epochs logged it.
        history = [{**{k: row[k] for k in self.log_keys if k in row}, **row} for row in s["history"]]
        return (history, s.get("stop_reason", "completed"), int(s["epoch"]),
                int(s["batch"]), losses, s["epoch_rng"])


    def _this_ranks_part(self, s: dict) -> dict:
        """The bundle's state with this rank's own RNG streams and unfinished-epoch values. A
        bundle from another number of processes continues only from an epoch's end (the shards
        differ), with every rank on rank 0's streams."""
        world = self.t.world
        saved = int(s.get("world") or 1)
        if saved != world.size:
            if int(s["batch"]):
                raise ConfigError(
                    f"resume: the newest checkpoint was written by {saved} process(es) in the "
                    f"middle of epoch {int(s['epoch']) + 1}, and this run has {world.size}; the "
                    f"epoch's shards differ, so it cannot go on from there. Fix: resume with "
                    f"{saved} process(es) (--nproc {saved}), or from an epoch's end.")
            warnings.warn(f"resume: the checkpoint was written by {saved} process(es), this run "
                          f"has {world.size}: it continues from the end of epoch {s['epoch']}, and "
                          f"its later data order differs from a run that was never interrupted.",
                          stacklevel=2)
            return s
        own = (s.get("ranks") or [None] * world.size)[world.rank]
        return s if own is None else {**s, **own}


_SHARD_DIR = re.compile(r"^e\d+-b\d+-[0-9a-f]{8}$")


def _load_shards(t: Any, bundle: Any) -> None:
    """Every rank: check the shard folder a bundle refers to against the checksums the bundle
    recorded, then read it back (with DCP's classes only: see netwright.checkpoint.sharded)."""
    from ..checkpoint.sharded import check_digests

    shards = bundle.state["shards"]
    name = shards.get("dir") if isinstance(shards, dict) else None
    if not isinstance(name, str) or not _SHARD_DIR.match(name):
        raise ConfigError(f"resume: bundle {str(bundle.folder)!r} refers to the shard folder "
                          f"{name!r}, which is not a name netwright writes.")
    if not t.world.sharded:
        raise ConfigError(
            f"resume: the checkpoint in {str(bundle.folder)!r} is sharded (written under "
            f"strategy 'fsdp'); this run is not. Fix: resume with strategy: fsdp and several "
            f"processes (--nproc N).")
    folder = bundle.folder.parent / "shards" / name
    check_digests(folder, shards.get("files"))
    t.world.load_sharded(t.model, t.optimizer, folder)


def _remove_unused_shards(ckpt: Path) -> None:
    """Rank 0, after a rotation: shard folders no bundle refers to any more (the replaced
    ones, or a write cut short) are removed, file by file; anything else is left alone."""
    from ..atomic import read_json
    from ..checkpoint.sharded import SHARD_FILE

    root = ckpt / "shards"
    if not root.is_dir() or root.is_symlink():
        return
    used = set()
    for bundle in ("last", "prev", "best", "best.prev"):
        with contextlib.suppress(Exception):
            state = read_json(ckpt / bundle / "state.json", what="state.json").get("state", {})
            shards = state.get("shards") if isinstance(state, dict) else None
            if isinstance(shards, dict) and isinstance(shards.get("dir"), str):
                used.add(shards["dir"])
    for folder in root.iterdir():
        if folder.name in used or not _SHARD_DIR.match(folder.name) or folder.is_symlink():
            continue
        files = list(folder.iterdir())
        if all(SHARD_FILE.match(f.name) and f.is_file() and not f.is_symlink() for f in files):
            for f in files:
                f.unlink()
            folder.rmdir()


def effective_lr(config: Any) -> Any:
    """The learning rate a resolved config trains with: an ``lr`` inside the optimizer mapping
    wins over the top-level one (as in ``build_optimizer``)."""
    if not isinstance(config, dict):
        return None
    optimizer = config.get("optimizer")
    if isinstance(optimizer, dict) and isinstance(optimizer.get("lr"), (int, float)):
        return optimizer["lr"]
    return config.get("lr")


def rescale_lr(trainer: Trainer, saved_lr: Any) -> None:
    """A run resumed with ``force`` and a new ``lr`` (the usual fix after a divergence) goes on
    with the new one: the restored optimizer and schedule would otherwise keep the old. Every
    group's lr and the schedule's base are scaled by new/old, so a schedule keeps its shape."""
    new = effective_lr({"lr": trainer.options.lr, "optimizer": trainer.options.optimizer})
    if (not isinstance(saved_lr, (int, float)) or not saved_lr > 0 or new == saved_lr
            or isinstance(trainer.options.optimizer, torch.optim.Optimizer)):
        return
    factor = new / saved_lr
    for group in trainer.optimizer.param_groups:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):
            if isinstance(group.get(key), (int, float)):
                group[key] *= factor
    for sched in (getattr(trainer.schedule, "scheduler", None), getattr(trainer.schedule, "warmup", None)):
        for attr in ("base_lrs", "_last_lr", "min_lrs"):
            values = getattr(sched, attr, None)
            if isinstance(values, list):
                setattr(sched, attr, [v * factor if isinstance(v, (int, float)) else v for v in values])
