"""Trainer: fit, evaluate and predict with any ``nn.Module``.

``fit`` only puts things in order — check the setup on one batch, then per epoch: train the
batches (:func:`~netwright.training.step.train_step`), evaluate, step the scheduler, run the
callbacks. Everything that happens to a batch is in ``step.py``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import atomic_write_text, save_weights
from ..config import (EarlyStoppingConfig, FinetuneConfig, FitOptions, fit_options,
                      options_reference)
from ..data.batches import Batches, make_batches
from ..data.sources import InMemory, Source, to_source
from ..data.splits import split_fraction
from ..errors import ConfigError, ModelSpecError, NonFiniteLossError, describe, describe_tensors
from ..losses import resolve_loss
from ..metrics import MetricSet, Task, infer_task, parse_metric
from ..optim import Schedule, build_optimizer, build_scheduler, metric_mode, needs_closure
from ..util import call_model, eval_mode, plain_module
from ..yamlfiles import parse_own_yaml
from .bundles import BundleSaver
from .callbacks import BestWeights, CSVLogger, EarlyStopping, EpochPrinter, FitInfo, ProgressBar, is_better
from .checks import preflight_checks, refuse, structure_checks
from .devices import resolve_device, seed_everything
from .distributed import distributed_line, reduce_epoch, restarted, world_for
from .finetune import plan_finetune
from .inference import evaluate, evaluate_batches, predict
from .loggers import LR_STEPS_FILE, StepLRLogger, make_loggers
from .result import FitResult
from .rundir import prepare_run_dir, resume_bundle
from .step import (NonFiniteLoss, StepContext, accumulation_plan, autocast_for, batch_stats,
                   closure_step, finish_window, is_finite, make_clipper, mean_loss, step_output,
                   train_step)

__all__ = ["Trainer", "FitResult", "fit", "evaluate", "predict", "resolve_device", "seed_everything"]


# Options that change where files go, what is printed or how fast data loads, not the result.
_NOT_IN_CONFIG = frozenset({"callbacks", "run_dir", "overwrite", "resume", "force", "verbose", "check",
                            "run_files", "num_workers", "pin_memory", "persistent_workers",
                            "checkpoint_every", "eval_batch_size", "loggers"})


class Trainer:
    """Train, evaluate and predict with any ``nn.Module``; every knob of :func:`fit`.

    >>> import torch.nn as nn, numpy as np
    >>> X = np.random.rand(64, 4).astype("float32"); y = (X[:, 0] > 0.5).astype("int64")
    >>> t = Trainer(nn.Linear(4, 2), loss="cross_entropy", epochs=2, verbose=0)
    >>> len(t.fit((X, y)).history)
    2
    """

    def __init__(self, model: nn.Module, options: FitOptions | Mapping[str, Any] | None = None,
                 /, **kwargs: Any):
        if not isinstance(model, nn.Module):
            raise ModelSpecError(
                f"model: expected a torch.nn.Module, received {describe(model)}. Fix: pass an "
                f"instance, e.g. SimpleNet() rather than SimpleNet."
            )
        o = options if isinstance(options, FitOptions) and not kwargs else fit_options(
            options, where="Trainer", **kwargs)
        self.options = o
        # A model compiled by the caller trains compiled; it is saved as the module it wraps.
        self.compiled = model if plain_module(model) is not model else None
        self.model = plain_module(model)
        self.loss_fn, self.loss_info = resolve_loss(o.loss)
        self.eval_batch_size = o.eval_batch_size or max(o.batch_size, 256)
        self.callbacks = list(o.callbacks or [])
        early = o.early_stopping
        self.early_stopping = (EarlyStopping(**early.model_dump())
                               if isinstance(early, EarlyStoppingConfig) else early)
        self.world = world_for(o.strategy)  # several processes under torchrun: data-parallel
        self.device = self.world.device(resolve_device(o.device))
        self.autocast = autocast_for(o.precision, self.device)
        self.clip = make_clipper(o.clip_grad)
        # Only rank 0 writes the run directory (logs, checkpoints, weights) and prints.
        self.run_dir = Path(o.run_dir) if o.run_dir is not None and self.world.main else None
        if o.resume and o.run_dir is None:
            raise ConfigError("resume=True needs the run_dir of the run to continue. Fix: pass run_dir=.")
        # Resume bundles: rank 0 writes them, every rank contributes its RNG streams. A process
        # group restarted by torchrun after a failure continues from the newest one.
        self.bundles = o.run_dir is not None
        self.resume = bool(o.resume) or (self.bundles and restarted(self.world))
        self.task: Task | None = None
        self.findings = None  # the doctor's pre-flight report of the last fit
        self.optimizer: torch.optim.Optimizer | None = None
        self.schedule: Schedule | None = None

    def train_step(self, ctx: StepContext, x: Any, y: Any, *, scale: float = 1.0,
                   step: bool = True) -> torch.Tensor | Mapping[str, Any]:
        """One batch of training; override it in a subclass (or pass ``step=`` to ``fit``) to
        replace it. It receives the :class:`~netwright.training.step.StepContext` (model,
        loss_fn, optimizer, autocast, scaler, clip, params), the batch, this batch's share of its
        accumulation window (``scale``) and whether the window ends here (``step``: then zero
        the gradients after stepping). It returns the batch's loss (a tensor), or a dict with
        ``"loss"`` and other scalars, logged per epoch as ``train_<name>``."""
        return train_step(ctx, x, y, scale=scale, step=step)

    # -- helpers ---------------------------------------------------------------------------
    def _batches(self, source: Source, *, train: bool, targets: bool = True,
                 generator: torch.Generator | None = None) -> Batches:
        return make_batches(
            source, batch_size=self.options.batch_size if train else self.eval_batch_size,
            shuffle=self.options.shuffle and train, device=self.device, generator=generator,
            targets=targets, drop_last=self.options.drop_last and train, num_workers=self.options.num_workers, pin_memory=self.options.pin_memory,
            persistent_workers=self.options.persistent_workers,
            shard=(self.world.rank, self.world.size) if self.world.active else None,
            even_shards=self.world.sharded and train,
        )

    def _infer_task(self, batches: Batches) -> Task | None:
        """Forward one batch in eval mode (no side effects) to infer the task for the metrics."""
        head = batches.peek()
        if head is None:
            return None
        x, y = head
        with eval_mode(self.model), torch.inference_mode(), self.autocast():
            try:
                out = call_model(self.model, x)
            except Exception as exc:  # noqa: BLE001 - re-raised with the inputs named
                raise ModelSpecError(
                    f"model {type(self.model).__name__}: forward failed on the first batch, "
                    f"inputs {describe_tensors(x)}: {type(exc).__name__}: {exc}"
                ) from exc
        if isinstance(out, torch.Tensor) and isinstance(y, torch.Tensor):
            return infer_task(self.loss_info, out, y, self.options.task)
        return None

    def _resolved_config(self) -> dict:
        """The options that decide the result (not where files go or what is printed), as
        plain data for config.yaml; a resume compares them with the interrupted run's."""
        def name(spec):
            if hasattr(spec, "item") and not hasattr(spec, "__len__"):  # a NumPy scalar
                spec = spec.item()
            if isinstance(spec, dict):
                return {k: name(v) for k, v in spec.items()}
            if isinstance(spec, list):
                return [name(v) for v in spec]
            if spec is None or isinstance(spec, (str, int, float, bool)):
                return spec
            if isinstance(spec, (EarlyStoppingConfig, FinetuneConfig)):
                return spec.model_dump()
            if isinstance(spec, (tuple, set)):
                return [name(v) for v in spec]
            kind = spec if hasattr(spec, "__qualname__") else type(spec)  # class, function, object
            return f"{kind.__module__}.{kind.__qualname__}"
        o = self.options
        out = {"model": name(type(self.model))}
        for key in type(o).model_fields:
            if key not in _NOT_IN_CONFIG:
                out[key] = name(getattr(o, key))
        out["device"] = str(self.device)
        out["task"] = self.task.kind if self.task else None
        return out

    # -- public API ------------------------------------------------------------------------
    def fit(self, train: Any, val: Any = None) -> FitResult:
        """Train on ``train``; validate on ``val`` (data, or a fraction of ``train`` to hold out)."""
        t_start = time.perf_counter()
        model, device = self.model, self.device
        if self.options.seed is not None:
            seed_everything(int(self.options.seed))
        world = self.world
        # One shuffling seed for every rank; without one, torch's generator as the caller left it.
        seed = world.broadcast(int(self.options.seed) if self.options.seed is not None
                               else int(torch.randint(0, 2**31 - 1, ()).item()))
        train_src = to_source(train, arg="train", target=self.options.target)
        val_src = None
        if isinstance(val, float):
            stratify = self.loss_info.task in ("multiclass", "binary", "custom")
            train_src, val_src = split_fraction(train_src, val, seed=seed, stratify=stratify)
        elif val is not None:
            val_src = to_source(val, arg="val", target=self.options.target)

        model.to(device)
        if self.options.channels_last:
            model.to(memory_format=torch.channels_last)  # 4-D weights only: convolutions
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn.to(device)
        # Frozen parameters are set before DDP wraps the model (it fixes which get gradients).
        finetune = plan_finetune(model, self.options.finetune, several_processes=world.active
                                 ) if self.options.finetune is not None else None
        # DDP wraps the model; FSDP shards it in place (before the optimizer sees its parameters).
        trained = world.wrap(model, device, self.options.precision)
        evaluated = model
        if self.options.compile or self.compiled is not None:
            evaluated = self.compiled or compiled(model, self.options.compile)
            trained = evaluated if not world.active else compiled(trained, self.options.compile or True)
        generator = torch.Generator().manual_seed(seed)
        train_batches = self._batches(train_src, train=True, generator=generator)
        val_batches = self._batches(val_src, train=False) if val_src is not None else None
        nb = len(train_batches)
        nb_all = world.smallest(nb)  # batches every rank has (their shards may differ by one)
        if nb == 0 and self.options.accumulate > 1:
            raise ConfigError("accumulate: needs a training loader whose length is known (len(loader)).")

        if self.options.check:  # a model fit cannot train is named before the optimizer refuses it
            structure_checks(model)
        self.optimizer = build_optimizer(self.options.optimizer, model, lr=self.options.lr,
                                         weight_decay=self.options.weight_decay,
                                         decay_norm_and_bias=self.options.decay_norm_and_bias,
                                         lr_factors=finetune and finetune.lr_factors(model))
        steps_per_epoch = max(1, math.ceil(nb / self.options.accumulate))
        metric_keys = [parse_metric(m)[0] for m in _as_list(self.options.metrics)]
        metric_keys = [k for k in metric_keys if k != "confusion_matrix"]
        log_keys = ["epoch", "train_loss"]
        log_keys += ["val_loss"] + [f"val_{k}" for k in metric_keys] if val_batches else [
            f"train_{k}" for k in metric_keys]
        log_keys.append("lr")
        if self.options.on_nonfinite == "skip":
            log_keys.append("nonfinite_skipped")
        monitor = self.options.monitor or ("val_loss" if val_batches else "train_loss")
        if monitor not in log_keys:
            refuse("NW414", f"monitor: {monitor!r} is not a logged value; each epoch logs "
                    f"{log_keys}.", "monitor one of those (val_* values need val data)", "monitor",
                    self.options.check)
        mode = metric_mode(monitor)
        self.schedule = build_scheduler(self.options.scheduler, self.optimizer, epochs=self.options.epochs,
                                        steps_per_epoch=steps_per_epoch, default_monitor=monitor)
        if self.schedule.interval == "plateau" and self.schedule.monitor not in log_keys:
            raise ConfigError(
                f"scheduler '{self.schedule.name}': monitor {self.schedule.monitor!r} will never be "
                f"logged; each epoch logs {log_keys}. Fix: monitor one of those."
            )
        self.findings = preflight_checks(self, train_batches, train_src, log_keys,
                                         steps_per_epoch, val_src) if self.options.check else None
        self.task = self._infer_task(train_batches)
        metrics = None
        if self.options.metrics:
            if self.task is None:
                raise ConfigError("metrics: the task could not be inferred from the data. Fix: pass task=.")
            try:
                metrics = MetricSet(self.options.metrics, self.task).to(device)
            except ConfigError as exc:
                message, _, fix = str(exc).partition(" Fix: ")
                refuse("NW415", message, fix.rstrip("."), "metrics", self.options.check)
        scaler = None
        if self.options.precision == "16-mixed":
            scaler = torch.amp.GradScaler(device.type)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        skip_nonfinite = self.options.on_nonfinite == "skip"
        # On the CPU reading the loss costs nothing, so every step is checked before backward;
        # on an accelerator that read is a sync, so "raise" checks the epoch's losses at its end
        # (and before any checkpoint): either way nothing non-finite is ever written.
        ctx = StepContext(trained, self.loss_fn, self.optimizer, self.autocast, scaler, self.clip,
                          params, check_finite=device.type == "cpu" or skip_nonfinite)
        step_fn, custom_step = self._step_function()
        guard = None
        if custom_step and skip_nonfinite:
            # A custom step calls backward and the optimizer itself, before fit sees its loss:
            # the optimizer refuses non-finite gradients instead, so "skip" keeps the weights.
            guard = self.optimizer.register_step_pre_hook(_refuse_nonfinite_gradients)
        plan = accumulation_plan(train_batches.sizes(), nb, self.options.accumulate)

        prepare_run_dir(self.run_dir, overwrite=self.options.overwrite, resume=self.resume,
                        run_files=self.options.run_files or {})
        callbacks = list(self.callbacks)
        if self.early_stopping is not None:
            callbacks.append(self.early_stopping)
        keeper = None
        if self._restores(val_batches is not None, callbacks):
            keeper = BestWeights(monitor, mode)
            callbacks.append(keeper)
        config_text, bundle = None, None
        if self.run_dir is not None:
            import yaml

            files = {"config.yaml": yaml.safe_dump(self._resolved_config(), sort_keys=False),
                     **(self.options.run_files or {})}
            config_text = files["config.yaml"]
            bundle = (resume_bundle(self.run_dir, parse_own_yaml(config_text), force=self.options.force,
                                    run_files=self.options.run_files or {}) if self.resume else None)
            for name, text in files.items():
                atomic_write_text(self.run_dir / name, text)
            callbacks.append(CSVLogger(self.run_dir / "metrics.csv"))
        if world.main:
            callbacks += make_loggers([n for n in self.options.loggers if n != "csv"], self.run_dir)
            if self.run_dir is not None and self.schedule.per_batch:  # the lr moves within epochs
                callbacks.append(StepLRLogger(self.run_dir / LR_STEPS_FILE))
        if world.active and self.resume:
            bundle = world.broadcast(bundle)  # rank 0 read it; every rank continues from it
        if self.options.verbose > 0 and world.main:
            tty = sys.stdout.isatty() and self.options.verbose == 1
            callbacks.append(ProgressBar() if tty else EpochPrinter())
        batch_cbs = [cb for cb in callbacks if callable(getattr(cb, "on_batch_end", None))]
        info = FitInfo(model, self.optimizer, self.options.epochs, nb, monitor, mode, self.run_dir,
                       log_keys, example=_first_inputs(train_batches) if "tensorboard" in self.options.loggers else None)

        history: list[dict] = []
        stop_reason = "completed"
        per_batch_schedule = self.schedule.per_batch
        sizes = train_batches.sizes()
        saver = BundleSaver(self, callbacks, scaler, generator, config_text, monitor, mode, log_keys)
        start_epoch, start_batch, partial, epoch_rng = 0, 0, [], None
        try:
            for cb in callbacks:
                _hook(cb, "on_fit_start", info)
            if world.active:
                _notice(callbacks, distributed_line(world, self.options, len(train_src) if isinstance(
                    train_src, InMemory) else None))
            for finding in (self.findings.warnings if self.findings is not None else []):
                _notice(callbacks, f"doctor {finding.code} (warning): {finding.message} Fix: {finding.fix}")
            if self.resume:
                if bundle is None:
                    _notice(callbacks, f"resume: no checkpoint in {self.run_dir}; starting from the beginning")
                else:
                    history, stop_reason, start_epoch, start_batch, partial, epoch_rng = saver.restore(bundle)
                    _notice(callbacks, f"resumed from {bundle.folder} at epoch {start_epoch + 1}, "
                                       f"batch {start_batch}")
            self.optimizer.zero_grad(set_to_none=True)
            for epoch in range(start_epoch, self.options.epochs):
                if stop_reason != "completed":
                    break  # the run had already stopped (early stopping) before it was interrupted
                if finetune is not None:
                    finetune.start_epoch(epoch + 1)  # from the epoch alone: right after a resume
                for cb in callbacks:
                    _hook(cb, "on_epoch_start", epoch)
                model.train()
                train_batches.set_epoch(epoch)
                if epoch == start_epoch and start_batch:
                    generator.set_state(epoch_rng)  # replay this epoch's data order
                else:
                    epoch_rng, start_batch, partial = generator.get_state(), 0, []
                lr_now = self.optimizer.param_groups[0]["lr"] if not start_batch else saver.epoch_lr
                saver.epoch_lr = lr_now
                losses = list(partial)
                skipped = saver.partial_skipped if start_batch else 0
                extras: dict[str, list] = ({k: list(v) for k, v in saver.partial_extras.items()}
                                           if start_batch else {})
                # A rank whose shard has a batch fewer waits at the end of the epoch for the others
                # (not left by an exception: the error ends this rank, and torchrun the others).
                joined = world.join(trained)
                joined.__enter__()
                for i, (x, y) in enumerate(train_batches):
                    if i < start_batch:
                        continue  # done before the interruption
                    scale, stepped = plan[i] if plan is not None else (1.0, True)
                    try:
                        with world.no_sync(trained, not stepped):
                            loss = step_fn(ctx, x, y) if plan is None else step_fn(
                                ctx, x, y, scale=scale, step=stepped)
                        if custom_step:
                            loss, values = step_output(loss, epoch, i)
                            if ctx.check_finite and not is_finite(loss):
                                raise NonFiniteLoss(loss)
                            for key, value in values.items():
                                extras.setdefault(key, []).append(value)
                    except NonFiniteLoss as bad:
                        if not skip_nonfinite:
                            raise self._nonfinite_error(epoch, i, nb, bad.loss, x, y) from None
                        skipped += 1
                        if custom_step:  # its gradients are its own: drop the unfinished window
                            self.optimizer.zero_grad(set_to_none=True)
                        elif stepped and plan is not None:
                            # The built-in step stopped before backward: the window's other
                            # batches keep their gradients and still get their step.
                            finish_window(ctx)
                            if per_batch_schedule:
                                self.schedule.step_batch()
                        continue
                    losses.append(loss)
                    if stepped and per_batch_schedule:
                        self.schedule.step_batch()
                    for cb in batch_cbs:
                        cb.on_batch_end(epoch, i, loss)
                    if (stepped and self.options.checkpoint_every and self.bundles
                            and (i + 1) % self.options.checkpoint_every == 0 and i + 1 < nb_all):
                        self._check_finite(epoch, losses, nb)
                        saver.save(epoch, i + 1, history, losses, epoch_rng, "completed",
                                   skipped=skipped, extras=extras)
                joined.__exit__(None, None, None)
                self._check_finite(epoch, losses, nb)
                start_batch = 0
                logs: dict[str, Any] = {"epoch": epoch + 1, "train_loss": mean_loss(
                    losses, sizes if not skipped else None)}
                if world.active:  # the mean over every rank's samples, the same on every rank
                    logs["train_loss"], skipped = reduce_epoch(world, logs["train_loss"], losses,
                                                               sizes, skipped)
                if skip_nonfinite and not losses:
                    raise NonFiniteLossError(
                        f"every one of the {skipped} training batches of epoch {epoch + 1} had a "
                        f"non-finite loss (on_nonfinite='skip' skipped them all). The weights "
                        f"were not changed by them. Fix: lower lr (now {lr_now:g}), add "
                        f"clip_grad=1.0, or look for NaN/Inf in the inputs (netwright doctor).")
                if val_batches is not None:
                    res = evaluate_batches(evaluated, val_batches, self.loss_fn, metrics, self.autocast,
                                           world=world)
                    logs.update({f"val_{k}": v for k, v in res.items()})
                elif metrics:
                    eval_train = self._batches(train_src, train=False)
                    res = evaluate_batches(evaluated, eval_train, None, metrics, self.autocast, world=world)
                    logs.update({f"train_{k}": v for k, v in res.items()})
                logs["lr"] = lr_now
                if skip_nonfinite:
                    logs["nonfinite_skipped"] = skipped
                for key, values in extras.items():
                    logs[f"train_{key}"] = float(torch.stack(values).float().mean())
                history.append(logs)
                self.schedule.step_epoch(logs)
                for cb in callbacks:
                    if _hook(cb, "on_epoch_end", epoch, logs, model) and stop_reason == "completed":
                        stop_reason = ("early_stopping" if isinstance(cb, EarlyStopping)
                                       else f"stopped by {type(cb).__name__}")
                if self.bundles:
                    saver.save(epoch + 1, 0, history, [], None, stop_reason, logs=logs)
            # Before on_fit_end, so that every callback sees the weights fit returns.
            restored = keeper.restore(model) if keeper is not None else None
            weights_epoch = restored if restored is not None else (
                history[-1]["epoch"] if history else None)
            for cb in callbacks:
                _hook(cb, "on_fit_end", history, model)
        finally:
            if guard is not None:
                guard.remove()
            if finetune is not None:
                finetune.restore()
            for cb in callbacks:
                close = getattr(cb, "close", None)
                if callable(close):
                    close()
        if self.bundles:
            state = world.model_state(model)  # under FSDP gathered onto rank 0
            if self.run_dir is not None:
                self._check_weights(len(history), "at the end of training", state)
                save_weights(state, self.run_dir / "weights.safetensors")
        best = None
        for row in history:
            value = row.get(monitor)
            if isinstance(value, float) and is_better(value, None if best is None else best[monitor], mode):
                best = row
        return FitResult(history, best, monitor, model, self.run_dir, stop_reason,
                         time.perf_counter() - t_start, self.task, self.findings, weights_epoch,
                         restored is not None)

    def _step_function(self) -> tuple[Any, bool]:
        """The per-batch step and whether it is the user's (its output is then checked): the
        ``step`` option, else an overridden :meth:`train_step`, else the built-in step (called
        directly, so the default costs no extra call), or :func:`closure_step` for an optimizer
        that needs a closure (L-BFGS)."""
        o = self.options
        if o.step is not None:
            return o.step, True
        if type(self).train_step is not Trainer.train_step:
            return self.train_step, True
        if needs_closure(self.optimizer):
            name = type(self.optimizer).__name__
            if o.accumulate > 1:
                raise ConfigError(f"accumulate: {name} re-evaluates the loss on one batch inside "
                                  f"its step; it cannot accumulate batches. Fix: accumulate=1 and "
                                  f"a larger batch_size.")
            if o.precision == "16-mixed":
                raise ConfigError(f"precision: {name} cannot run with the float16 gradient scaler. "
                                  f"Fix: precision='32' or 'bf16-mixed'.")
            return closure_step, False
        return train_step, False

    def _nonfinite_error(self, epoch: int, index: int, nb: int, loss: Any, x: Any = None,
                         y: Any = None) -> NonFiniteLossError:
        """What a NaN/Inf loss mid-training says: where, the batch, what was kept, the fix."""
        lr = self.optimizer.param_groups[0]["lr"]
        batch = f" The batch: inputs {batch_stats(x)}; targets {batch_stats(y)}." if x is not None else ""
        kept = ""
        if self.run_dir is not None:
            kept = (f" {self.run_dir} keeps the last good checkpoint (checkpoints/last, epoch "
                    f"{epoch} done) and metrics.csv; no non-finite weights were written, and the "
                    f"run resumes from there (resume=True, force=True after changing options; "
                    f"`netwright train CONFIG --resume --force`).")
        return NonFiniteLossError(
            f"the training loss became {float(loss)} at epoch {epoch + 1}, step {index + 1} of "
            f"{nb}.{batch}{kept} Fix: lower the learning rate (now {lr:g}), add clip_grad=1.0, "
            f"standardize the inputs, or on_nonfinite='skip' to drop such batches and count them.")

    def _check_finite(self, epoch: int, losses: list, nb: int) -> None:
        """Where the steps did not check each loss (an accelerator, "raise"): one read of the
        epoch's losses before anything is logged or written."""
        if not losses or (self.device.type == "cpu" or self.options.on_nonfinite == "skip"):
            return
        stacked = torch.stack(losses)
        finite = torch.isfinite(stacked)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0, 0])  # losses hold the resumed batches too
            raise self._nonfinite_error(epoch, first, nb, stacked[first])

    def _check_weights(self, epochs_done: int, when: str, state: dict | None = None) -> None:
        """Refuse to write weights that are NaN or infinite (a finite loss can still step into
        them with huge gradients)."""
        for name, tensor in (self.model.state_dict() if state is None else state).items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                lr = self.optimizer.param_groups[0]["lr"] if self.optimizer else float("nan")
                kept = (f" {self.run_dir} keeps the last good checkpoint (checkpoints/last) and "
                        f"metrics.csv; nothing non-finite was written." if self.run_dir else "")
                raise NonFiniteLossError(
                    f"the weights became non-finite ({name!r} holds NaN/Inf) {when}, after "
                    f"{epochs_done} complete epoch(s).{kept} Fix: lower the learning rate (now "
                    f"{lr:g}) or add clip_grad=1.0.")

    def _restores(self, has_val: bool, callbacks: list) -> bool:
        """restore_best as given; else what an EarlyStopping asks for; else whether there is val
        data (the train loss alone does not tell a better model). Not under FSDP (yet): the
        best weights would be each process's shards, which a resume bundle cannot hold."""
        if self.world.sharded:
            if self.options.restore_best:
                raise ConfigError("restore_best: not supported with strategy 'fsdp' yet (the best "
                                  "epoch's weights are sharded among the processes). Fix: "
                                  "restore_best=False, or strategy 'ddp'.")
            return False
        if self.options.restore_best is not None:
            return self.options.restore_best
        stoppers = [cb for cb in callbacks if isinstance(cb, EarlyStopping)]
        if stoppers:
            return any(cb.restore_best for cb in stoppers)
        return has_val

    def evaluate(self, data: Any, *, metrics: Any = None, loss: Any = "default") -> dict[str, Any]:
        """Loss and metrics on ``data``; defaults to this trainer's loss and metrics."""
        return evaluate(self.model, data, loss=self.options.loss if loss == "default" else loss,
                        metrics=metrics if metrics is not None else self.options.metrics,
                        batch_size=self.eval_batch_size, device=self.device,
                        precision=self.options.precision, task=self.options.task, target=self.options.target,
                        check=self.options.check)

    def predict(self, data: Any) -> Any:
        """Raw model outputs for ``data``, on the CPU."""
        return predict(self.model, data, batch_size=self.eval_batch_size, device=self.device,
                       precision=self.options.precision, check=self.options.check)


def _first_inputs(batches: Batches) -> Any:
    head = batches.peek()
    return head[0] if head is not None else None


def _refuse_nonfinite_gradients(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """An optimizer step pre-hook: a NaN/Inf gradient stops the step before it moves a weight."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                optimizer.zero_grad(set_to_none=True)
                raise NonFiniteLoss(torch.tensor(float("nan")))


def compiled(model: nn.Module, mode: Any) -> nn.Module:
    """``torch.compile(model)`` with ``mode`` (``True``: torch's default); it shares the
    model's parameters, so training it trains the model."""
    return torch.compile(model, mode=None if mode is True else mode)


def _as_list(spec: Any) -> list:
    if spec is None:
        return []
    return [spec] if isinstance(spec, (str, dict)) else list(spec)


def _notice(callbacks: list, message: str) -> None:
    for cb in callbacks:
        _hook(cb, "on_notice", message)


def _hook(cb: Any, name: str, *args: Any) -> Any:
    fn = getattr(cb, name, None)
    return fn(*args) if callable(fn) else None


def fit(model: nn.Module, train: Any, *, val: Any = None, **options: Any) -> FitResult:
    """Train ``model`` on ``train`` and return a :class:`FitResult`.

    ``train``/``val``: ``(X, y)`` arrays or tensors, ``(DataFrame, "target")``, a ``Dataset``
    or a ``DataLoader``; ``val`` may be a fraction of ``train`` to hold out (stratified for
    classification). ``loss`` is required; every other option has a default (the table
    below, generated from :class:`netwright.FitOptions`). An unknown or mistyped option is a
    ``ConfigError`` that lists every problem at once, with a "did you mean".
    ``result.weights_epoch`` says which epoch's weights the model holds.

    >>> import torch, torch.nn as nn
    >>> X = torch.randn(200, 4); y = (X[:, 0] > 0).long()
    >>> result = fit(nn.Linear(4, 2), (X, y), loss="cross_entropy", lr=0.05, epochs=5,
    ...              val=0.25, metrics=["accuracy"], verbose=0)
    >>> result.history[-1]["val_accuracy"] > 0.8
    True

    Options:

    {options}
    """
    return Trainer(model, fit_options(options, where="fit")).fit(train, val)


fit.__doc__ = fit.__doc__.replace("{options}", options_reference().replace("\n", "\n    "))
