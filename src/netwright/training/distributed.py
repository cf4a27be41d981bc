"""Data-parallel training on ``torch.distributed``: netwright drives torch's own engine (the
``torchrun`` elastic launcher, gloo on CPU, NCCL on CUDA, ``DistributedDataParallel``) and builds
none of its own.

A process started by ``torchrun`` (or ``netwright train --nproc N``) finds ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK`` in its environment; :func:`world_for` joins the process group they
describe and returns a :class:`World`, which the trainer asks for everything that differs from
one process: the shard of each epoch a rank trains on, the model wrapper, sums over ranks, and
whether this rank writes (only rank 0 does).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["World", "SINGLE", "STRATEGIES", "world_for", "shard_indices", "reduce_epoch",
           "distributed_line", "restarted", "TIMEOUT_S"]

STRATEGIES = ("auto", "none", "ddp", "fsdp")
# A collective that waits longer than this fails (a crashed or hung rank never leaves the
# others waiting forever); NETWRIGHT_DIST_TIMEOUT (seconds) overrides it.
TIMEOUT_S = 300


@dataclass(frozen=True)
class World:
    """This process's place among the processes training one model."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None
    strategy: str = "ddp"  # with several processes: "ddp" or "fsdp"

    @property
    def sharded(self) -> bool:
        """FSDP: parameters, gradients and optimizer state are split among the processes."""
        return self.active and self.strategy == "fsdp"

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes the run directory, logs and checkpoints."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """One device per process: CUDA device ``LOCAL_RANK`` when training on CUDA."""
        if self.active and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: nn.Module, device: torch.device, precision: str = "32") -> nn.Module:
        """The model the training step calls: ``DistributedDataParallel`` over ``model`` (whose
        own ``state_dict`` keeps its keys: no ``module.`` prefix is ever saved); under FSDP the
        model itself, sharded in place (each child block with parameters, then the whole), so
        the optimizer must be built after this."""
        if not self.active:
            return model
        if self.sharded:
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

            policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
                      if precision == "bf16-mixed" else MixedPrecisionPolicy())
            for child in model.children():
                if any(p.requires_grad for p in child.parameters()):
                    fully_shard(child, mp_policy=policy)
            fully_shard(model, mp_policy=policy)
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def join(self, wrapped: nn.Module) -> contextlib.AbstractContextManager:
        """Uneven shards (a rank with one batch fewer) without a hang: torch's ``Join``."""
        if not self.active or self.sharded:  # FSDP: shards of a stream may differ, see docs
            return contextlib.nullcontext()
        from torch.distributed.algorithms.join import Join

        return Join([wrapped])

    def no_sync(self, wrapped: nn.Module, inside_window: bool) -> contextlib.AbstractContextManager:
        """Inside an accumulation window gradients stay local; they are averaged once, at the
        window's last batch."""
        if self.active and inside_window and hasattr(wrapped, "no_sync"):
            return wrapped.no_sync()
        return contextlib.nullcontext()

    def model_state(self, model: nn.Module) -> dict:
        """The whole model's state for writing: under FSDP gathered from every process onto
        rank 0's CPU (a collective: every rank calls it; the others get ``{}``)."""
        if not self.sharded:
            return model.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def optimizer_state(self, model: nn.Module, optimizer: Any) -> dict:
        """The optimizer's state for a resume bundle, gathered like :meth:`model_state`."""
        if not self.sharded:
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import (StateDictOptions,
                                                             get_optimizer_state_dict)

        return get_optimizer_state_dict(model, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_states(self, model: nn.Module, optimizer: Any, model_state: dict, optimizer_state: dict) -> None:
        """Put whole states (a resume bundle every rank holds) back, each rank taking its shard."""
        if not self.sharded:
            model.load_state_dict(model_state)
            optimizer.load_state_dict(optimizer_state)
            return
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                             set_optimizer_state_dict)

        options = StateDictOptions(full_state_dict=True)
        set_model_state_dict(model, model_state, options=options)
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)

    def save_sharded(self, model: nn.Module, optimizer: Any, folder: Any) -> None:
        """FSDP: every rank writes its own shards of the model and optimizer state into
        ``folder`` with torch.distributed.checkpoint (a collective; nothing is gathered)."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_state, optim_state = get_state_dict(model, optimizer)
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(folder))

    def load_sharded(self, model: nn.Module, optimizer: Any, folder: Any) -> None:
        """FSDP: read the shards in ``folder`` back (resharded by DCP when the number of
        processes changed); its metadata is unpickled with DCP's classes only."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        from ..checkpoint.sharded import SafeReader

        model_state, optim_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optim": optim_state}
        dcp.load(state, storage_reader=SafeReader(folder))
        set_state_dict(model, optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optim"])

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a seed, a run directory's name)."""
        if not self.active:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank (one resume bundle holds each
        rank's RNG streams)."""
        if not self.active:
            return [value]
        out: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(out, value)
        return out

    def smallest(self, value: int) -> int:
        """The smallest ``value`` of all ranks (the batches every rank has, for checkpoints in
        the middle of an epoch, which every rank must reach together)."""
        if not self.active:
            return value
        device = torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")
        t = torch.tensor([value], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        return int(t.item())

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over the ranks (in float64, on the CPU for gloo)."""
        if not self.active:
            return list(values)
        device = torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")
        t = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return t.tolist()


SINGLE = World()


def world_for(strategy: str = "auto") -> World:
    """The process group this process belongs to, joined if it is not yet.

    ``"auto"`` trains data-parallel when the environment describes several processes (torchrun
    sets ``WORLD_SIZE``), else in this process alone; ``"ddp"`` requires several; ``"none"``
    trains alone even under torchrun (every process its own model)."""
    if strategy not in STRATEGIES:  # (the schema checks it for fit and configs)
        raise ConfigError(f"strategy: expected one of {', '.join(STRATEGIES)}; received {strategy!r}.")
    dist = torch.distributed
    if strategy == "none":
        return SINGLE
    initialized = dist.is_available() and dist.is_initialized()
    size = dist.get_world_size() if initialized else _env_int("WORLD_SIZE", 1)
    if size <= 1:
        if strategy in ("ddp", "fsdp"):
            raise ConfigError(
                f"strategy: {strategy!r} trains with several processes, and this one is alone (no "
                "WORLD_SIZE in its environment). Fix: start it with `netwright train CONFIG "
                "--nproc 2`, or `torchrun --nproc-per-node 2 your_script.py`.")
        return SINGLE
    if not initialized:
        if not dist.is_available():
            raise ConfigError("strategy: this build of torch has no torch.distributed; train in "
                              "one process (strategy: none).")
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
        timeout = datetime.timedelta(seconds=_env_int("NETWRIGHT_DIST_TIMEOUT", TIMEOUT_S))
        # torchrun's store outlives a restart (--max-restarts): keys of the failed attempt (a
        # dead rank's address) would send the new processes to closed ports, so each attempt
        # keeps its keys apart (pytorch/pytorch#167288 reports the same with NCCL).
        store, rank, size = next(dist.rendezvous("env://", timeout=timeout))
        attempt = _env_int("TORCHELASTIC_RESTART_COUNT", 0)
        store = dist.PrefixStore(f"netwright/attempt{attempt}/", store)
        dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=timeout)
        # The group netwright joined is left before the interpreter shuts down: left to
        # finalisation, gloo's threads were sometimes destroyed while still joinable, and the
        # process died with "terminate called without an active exception" (SIGABRT) after a
        # run that had finished (seen 1 in 8 FSDP runs on 2 CPU processes).
        atexit.register(_leave_group)
    return World(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0),
                 dist.get_backend(), "fsdp" if strategy == "fsdp" else "ddp")


def _leave_group() -> None:
    """At exit: wait (briefly) until every rank is here, then leave the group together."""
    import torch.distributed as dist

    import sys

    if getattr(sys, "last_value", None) is not None:
        return  # this rank is failing (an uncaught exception): its error must surface now
    with contextlib.suppress(Exception):
        if not dist.is_initialized():
            return
        if dist.get_backend() == "gloo":  # a rank that failed is not waited for long
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=20))
        dist.destroy_process_group()


def shard_indices(order: torch.Tensor, world: World) -> torch.Tensor:
    """This rank's part of an epoch's order: every ``size``-th sample from ``rank`` on, so the
    ranks' parts are disjoint and together hold every sample once (they differ by at most one
    sample in length).

    >>> shard_indices(torch.arange(7), World(1, 3)).tolist()
    [1, 4]
    """
    return order[world.rank::world.size]


def reduce_epoch(world: World, mean: float, losses: list, sizes: list[int] | None,
                 skipped: int) -> tuple[float, int]:
    """An epoch's training loss over every rank's samples (each rank's mean weighted by its
    samples), and the skipped batches of all ranks."""
    n = float(sum(sizes[:len(losses)])) if sizes and not skipped else float(len(losses))
    total, count, skipped_all = world.sum([mean * n if losses else 0.0, n, float(skipped)])
    return (total / count if count else float("nan")), int(skipped_all)


def distributed_line(world: World, options: Any, samples: int | None) -> str:
    """What data-parallel training does with the options, said once in the run's log."""
    per = options.batch_size
    accumulate = options.accumulate
    shard = f", {samples // world.size:,}-{-(-samples // world.size):,} samples each" if samples else ""
    return (f"data-parallel: {world.size} processes ({world.backend}){shard}; batch {per} per "
            f"process x {world.size} = {per * world.size} per step"
            + (f" x {accumulate} accumulated = {per * world.size * accumulate}" if accumulate > 1 else "")
            + f"; lr {options.lr:g} as given (not scaled with the batch); gradients averaged "
              f"over the processes" + (" once per accumulation window" if accumulate > 1 else ""))


def restarted(world: World) -> bool:
    """This process group was started again by torchrun after a failure (``--max-restarts``):
    it continues the run from its newest complete resume bundle."""
    return world.active and _env_int("TORCHELASTIC_RESTART_COUNT", 0) > 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        raise ConfigError(f"{name}: expected an integer in the environment; received {value!r}.") from None
