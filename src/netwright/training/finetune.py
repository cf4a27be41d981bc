"""Fine-tuning a pretrained model: train its new head first, then the rest at a lower rate.

:func:`plan_finetune` turns the ``finetune`` option (:class:`~netwright.config.FinetuneConfig`)
into a :class:`FinetunePlan`. Every parameter is in the optimizer from the start; the frozen
ones are in groups of their own at ``lr * backbone_lr`` (so a scheduler scales them with the
others), and have ``requires_grad=False`` before the epoch ``unfreeze_at``: they get no
gradient, so torch's optimizers skip them (no update, no weight decay, no optimizer state).
Whether they train is decided from the epoch number alone at the start of every epoch, so a run
resumed mid-way is in the same state as one that was never interrupted.

Frozen BatchNorm layers still update their running statistics in training mode (freezing
stops gradients, not the statistics of the data seen); that is what adapting a pretrained
backbone to new images usually wants. To keep them fixed too, put those layers in eval mode
from a callback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..config import FinetuneConfig
from ..errors import ConfigError, did_you_mean
from ..models.scaling import Scaled
from ..models.vision import head_module_names

__all__ = ["FinetunePlan", "plan_finetune"]


class FinetunePlan:
    """Which parameters (by name) wait, from which epoch they train, at what fraction of lr.

    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> plan = plan_finetune(net, {"freeze": "backbone", "unfreeze_at": 2})
    >>> plan.start_epoch(1); plan.frozen, net[0].weight.requires_grad
    (['0.weight', '0.bias'], False)
    >>> plan.start_epoch(2); net[0].weight.requires_grad
    True
    >>> plan.restore(); net[0].weight.requires_grad
    True
    """

    def __init__(self, model: nn.Module, frozen: list[str], unfreeze_at: int | None,
                 backbone_lr: float):
        self.model, self.frozen = model, frozen
        self.unfreeze_at, self.backbone_lr = unfreeze_at, backbone_lr
        self._was = {n: p.requires_grad for n, p in model.named_parameters() if n in set(frozen)}

    def lr_factors(self, model: nn.Module | None = None) -> dict[int, float]:
        """``{id(param): backbone_lr}`` for the frozen parameters, looked up by name in ``model``
        (the model as the optimizer will see it, e.g. after sharding), for
        :func:`~netwright.optim.build_optimizer`."""
        chosen = set(self.frozen)
        return {id(p): self.backbone_lr
                for n, p in (model or self.model).named_parameters() if n in chosen}

    def trains(self, epoch: int) -> bool:
        """Whether the frozen parameters train in ``epoch`` (1 = the first)."""
        return self.unfreeze_at is not None and epoch >= self.unfreeze_at

    def start_epoch(self, epoch: int) -> None:
        """Call at the start of every epoch (1-based): the frozen parameters train or not."""
        on, chosen = self.trains(epoch), set(self.frozen)
        for name, p in self.model.named_parameters():
            if name in chosen:
                p.requires_grad_(on)

    def restore(self) -> None:
        """Give the parameters back the ``requires_grad`` they had before the plan (at the end of
        fit, so that the model is left as it was found, but for its weights)."""
        for name, p in self.model.named_parameters():
            if name in self._was:
                p.requires_grad_(self._was[name])


def plan_finetune(model: nn.Module, config: FinetuneConfig | Mapping[str, Any], *,
                  several_processes: bool = False) -> FinetunePlan:
    """The :class:`FinetunePlan` for ``model``; nothing is frozen before its first
    :meth:`~FinetunePlan.start_epoch`, except with ``several_processes``.

    ``freeze="backbone"`` freezes every parameter outside the classifier head
    (:func:`~netwright.models.vision.head_module_names`); a list freezes the modules of those
    names and everything under them (``"layer1"``, ``"features.0"``). ``several_processes``:
    training is data-parallel, where DDP fixes the set of parameters with gradients when it
    wraps the model: the first epoch's state is set at once (call this before wrapping), and
    ``unfreeze_at`` is refused (parameters cannot start training mid-run).

    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> plan_finetune(net, {"freeze": ["0"], "backbone_lr": 0.5}).lr_factors()[id(net[0].bias)]
    0.5
    """
    if not isinstance(config, FinetuneConfig):
        try:
            config = FinetuneConfig.model_validate(dict(config))
        except Exception as exc:  # noqa: BLE001 - pydantic's message lists every problem
            raise ConfigError(f"finetune: {exc}") from None
    if several_processes and config.unfreeze_at is not None:
        raise ConfigError(
            f"finetune.unfreeze_at={config.unfreeze_at} is not supported with several processes "
            f"yet: data-parallel training fixes which parameters get gradients when it wraps the "
            f"model, so frozen ones cannot start training mid-run. Fix: run in one process, or "
            f"train in two runs: the head first (unfreeze_at unset), then everything from those "
            f"weights (without finetune, a lower lr)."
        )
    names = [n for n, _ in model.named_parameters()]
    if config.freeze == "backbone":
        heads = head_module_names(model)
        frozen = [n for n in names if not any(_under(n, h) for h in heads)]
        if not frozen:
            raise ConfigError(
                f"finetune.freeze='backbone': {type(model).__name__} has only its head "
                f"({', '.join(heads) or 'no parameters'}), so there is nothing to freeze. Fix: "
                f"drop finetune, or fine-tune a model with a backbone.")
    else:
        prefixes = [_known(model, p) for p in config.freeze]
        frozen = [n for n in names if any(_under(n, p) for p in prefixes)]
    if len(frozen) == len(names) and config.unfreeze_at != 1:
        raise ConfigError(
            f"finetune.freeze={config.freeze!r} freezes every parameter of "
            f"{type(model).__name__}, so nothing would train"
            + (" at all" if config.unfreeze_at is None else
               f" before epoch {config.unfreeze_at}") + ". Fix: leave the head out of freeze "
            f"(e.g. freeze: backbone).")
    plan = FinetunePlan(model, frozen, config.unfreeze_at, config.backbone_lr)
    if several_processes:
        plan.start_epoch(1)
    return plan


def _under(name: str, prefix: str) -> bool:
    return not prefix or name == prefix or name.startswith(prefix + ".")


def _known(model: nn.Module, prefix: Any) -> str:
    """``prefix`` if it names a module or parameter of ``model`` (``"net."`` added for a model
    wrapped in Scaled), else a ConfigError listing real names."""
    modules = [n for n, _ in model.named_modules() if n]
    places = set(modules) | {n for n, _ in model.named_parameters()}
    if isinstance(prefix, str) and prefix in places:
        return prefix
    if isinstance(prefix, str) and isinstance(model, Scaled) and f"net.{prefix}" in places:
        return f"net.{prefix}"
    top = [n for n in modules if "." not in n] or modules
    if isinstance(model, Scaled):
        top = [n for n in modules if n.count(".") == 1 and n.startswith("net.")] or top
    shown = ", ".join(top[:8]) + (f" and {len(top) - 8} more" if len(top) > 8 else "")
    raise ConfigError(
        f"finetune.freeze: {type(model).__name__} has no module {prefix!r}."
        f"{did_you_mean(str(prefix), sorted(places))} Its modules include: {shown}. Fix: name "
        f"modules as model.named_modules() does (e.g. 'layer1', 'features.0'), or "
        f"freeze: backbone.")
