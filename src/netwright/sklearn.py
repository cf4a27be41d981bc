"""scikit-learn estimators over netwright: :class:`Classifier` and :class:`Regressor`.

They train with :func:`netwright.fit` and follow scikit-learn's estimator contract: ``__init__``
only stores its parameters (so ``clone``, ``get_params`` and ``set_params`` work, also for the
nested ``module__hidden``, ``optimizer__momentum``, ``loss__label_smoothing``,
``scheduler__step_size`` and ``fit__<any nw.fit option>`` ones), ``fit`` validates the data the
way scikit-learn does, and a fitted estimator pickles its weights as safetensors bytes, never as
a pickled ``nn.Module``. Importing this module does not import torch: that happens in ``fit``.

Inputs are not standardised here: put a ``StandardScaler`` before the estimator in a
``Pipeline``.

>>> from sklearn.datasets import load_iris
>>> X, y = load_iris(return_X_y=True)
>>> clf = Classifier(module__hidden=[16], lr=0.01, epochs=30, random_state=0).fit(X, y)
>>> clf.score(X, y) > 0.9
True
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .errors import did_you_mean

__all__ = ["Classifier", "Regressor", "NESTED_PREFIXES"]

# The parameters set with scikit-learn's double-underscore style, by what they configure.
NESTED_PREFIXES = ("module", "optimizer", "loss", "scheduler", "fit")
_EXPLICIT_FIT = frozenset({"loss", "optimizer", "lr", "weight_decay", "epochs", "batch_size",
                           "scheduler", "early_stopping", "device", "precision", "seed",
                           "verbose", "check", "n_threads"})


def _is_nested(key: str) -> bool:
    prefix, sep, rest = key.partition("__")
    return bool(sep and rest) and prefix in NESTED_PREFIXES


class _NetwrightEstimator(BaseEstimator):
    """What :class:`Classifier` and :class:`Regressor` share; see their docstrings."""

    _default_loss = "mse"
    _classifier = False

    def __init__(self, module: Any = "mlp", *, loss: Any = None, optimizer: Any = "adam",
                 lr: float = 1e-3, weight_decay: float = 0.0, epochs: int = 10,
                 batch_size: int = 32, scheduler: Any = None, early_stopping: Any = None,
                 val: Any = None, device: str = "cpu", precision: str = "32",
                 random_state: Any = None, verbose: int = 0, check: bool = True,
                 n_threads: int | None = None, **params: Any):
        self.module = module
        self.loss = loss
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.scheduler = scheduler
        self.early_stopping = early_stopping
        self.val = val
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        self.check = check
        self.n_threads = n_threads
        # Private, so that scikit-learn's checks see no attribute beyond the signature's. Names
        # are checked by fit (scikit-learn's rule: __init__ and set_params never raise).
        self._nested = dict(params)

    # -- nested (double-underscore) parameters ------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        nested = self.__dict__.get("_nested")
        if nested is not None and name in nested:
            return nested[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if "_nested" in self.__dict__ and (_is_nested(name) or name in self._nested):
            self._nested[name] = value
        else:
            object.__setattr__(self, name, value)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = super().get_params(deep=deep)
        params.update(self._nested)
        return params

    def set_params(self, **params: Any) -> _NetwrightEstimator:
        known = set(self._get_param_names())
        nested = {k: v for k, v in params.items()
                  if _is_nested(k) or k.partition("__")[0] not in known}
        rest = {k: v for k, v in params.items() if k not in nested}
        if rest:
            super().set_params(**rest)
        self._nested.update(nested)
        return self

    def _by_prefix(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {p: {} for p in NESTED_PREFIXES}
        for key, value in self._nested.items():
            if not _is_nested(key):
                raise ValueError(
                    f"{type(self).__name__}: unknown parameter {key!r}."
                    f"{did_you_mean(key, self._get_param_names())} Nested parameters take a "
                    f"prefix: {', '.join(p + '__' for p in NESTED_PREFIXES)} (e.g. "
                    f"module__hidden=[64]); any other option of nw.fit is fit__<name>.")
            prefix, _, rest = key.partition("__")
            out[prefix][rest] = value
        return out

    # -- building the pieces -------------------------------------------------------------------
    def _seed(self) -> int | None:
        rs = self.random_state
        if rs is None:
            return None
        if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool):
            return int(rs) % 2**31
        if isinstance(rs, np.random.RandomState):
            return int(rs.randint(2**31 - 1))
        raise ValueError(f"random_state: expected None, an int or a numpy RandomState; "
                         f"received {type(rs).__name__}.")

    def _build_module(self, n_features: int, n_outputs: int) -> Any:
        from torch import nn

        from .models.builder import build
        from .models.zoo import build_zoo

        spec, args = self.module, self._by_prefix()["module"]
        head = {"num_classes": n_outputs} if self._classifier else {"outputs": n_outputs}
        if isinstance(spec, str):
            return build_zoo(spec, (n_features,), **{**head, **args})
        if isinstance(spec, Mapping) and "zoo" in spec:
            rest = {k: v for k, v in spec.items() if k != "zoo"}
            return build_zoo(spec["zoo"], (n_features,), **{**head, **rest, **args})
        if isinstance(spec, (list, tuple, Mapping)):
            if args:
                raise ValueError(f"module__{next(iter(args))}: nested module parameters are for a "
                                 f"zoo name or a callable; a builder spec holds its own values.")
            body = list(spec) if isinstance(spec, (list, tuple)) else [spec]
            return build(body + [{"linear": n_outputs}], (n_features,))
        if isinstance(spec, nn.Module):
            if args:
                raise ValueError("module__*: an nn.Module instance takes no nested parameters.")
            return copy.deepcopy(spec)
        if callable(spec):
            made = spec(n_features, n_outputs, **args)
            if not isinstance(made, nn.Module):
                raise ValueError(f"module: the callable returned {type(made).__name__}; expected "
                                 f"an nn.Module for (n_features={n_features}, "
                                 f"n_outputs={n_outputs}).")
            return made
        raise ValueError(
            f"module: expected a zoo name ('mlp'), a builder spec (list or dict; the output layer "
            f"is added), an nn.Module or a callable (n_features, n_outputs) -> nn.Module; "
            f"received {type(spec).__name__}.")

    def _loss_spec(self, weighted: bool) -> Any:
        loss = self.loss if self.loss is not None else self._default_loss
        options = self._by_prefix()["loss"]
        if isinstance(loss, Mapping):
            loss, options = dict(loss), {**{k: v for k, v in loss.items() if k != "name"}, **options}
            loss = loss.get("name")
        if not isinstance(loss, str):
            if options or weighted:
                raise ValueError("loss: loss__* parameters and sample_weight need a loss given by "
                                 "name (e.g. 'cross_entropy', 'mse', 'huber').")
            return loss
        if weighted:
            options = {**options, "reduction": "none"}
        return {"name": loss, **options} if options else loss

    def _options(self, weighted: bool, seed: int | None, optimizer: Any = None) -> dict[str, Any]:
        nested = self._by_prefix()
        opt_args = dict(nested["optimizer"])
        lr = opt_args.pop("lr", self.lr)
        weight_decay = opt_args.pop("weight_decay", self.weight_decay)
        if optimizer is None:
            optimizer = self.optimizer
            if opt_args:
                if not isinstance(optimizer, str):
                    raise ValueError("optimizer__*: nested optimizer parameters need an optimizer "
                                     "given by name (e.g. 'sgd').")
                optimizer = {"name": optimizer, **opt_args}
        scheduler = self.scheduler
        if nested["scheduler"]:
            if not isinstance(scheduler, str):
                raise ValueError("scheduler__*: nested scheduler parameters need scheduler= "
                                 "given by name (e.g. 'step').")
            scheduler = {"name": scheduler, **nested["scheduler"]}
        clash = sorted(set(nested["fit"]) & (_EXPLICIT_FIT | {"random_state"}))
        if clash:
            raise ValueError(f"fit__{clash[0]}: this option is a parameter of its own; pass "
                             f"{'random_state' if clash[0] == 'seed' else clash[0]}= instead.")
        return dict(loss=self._loss_spec(weighted), optimizer=optimizer, lr=lr,
                    weight_decay=weight_decay, epochs=self.epochs, batch_size=self.batch_size,
                    scheduler=scheduler, early_stopping=self.early_stopping, device=self.device,
                    precision=self.precision, seed=seed, verbose=self.verbose, check=self.check,
                    **nested["fit"])

    # -- training --------------------------------------------------------------------------
    def _train(self, X: np.ndarray, targets: np.ndarray, sample_weight: Any, *, first: bool,
               val: Any = None) -> None:
        import torch

        from .training.trainer import Trainer

        seed = self._seed()
        if first:
            self.n_fit_calls_ = 0
            if seed is not None:
                torch.manual_seed(seed)  # the initial weights, before fit seeds the data order
            self.module_ = self._build_module(self.n_features_in_, self.n_outputs_)
            self.optimizer_ = None
        elif seed is not None:
            seed = (seed + self.n_fit_calls_) % 2**31  # another data order for each call
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                           ensure_non_negative=True)
            if np.all(weights == weights[0]):
                weights = None  # equal weights do not change a weighted mean
        x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        y = torch.from_numpy(targets)
        options = self._options(weights is not None, seed, optimizer=self.optimizer_)
        if weights is not None:
            # Mean 1 over the whole training set: a weight of 2 counts a sample twice, in any batch.
            w = torch.from_numpy((weights / weights.mean()).astype(np.float32))
            y = torch.cat([y.reshape(len(y), -1).float(), w[:, None]], dim=1)
            options["loss"] = _weighted_loss(options["loss"], self._classifier)
            if val is not None and not isinstance(val, float):
                raise ValueError("val=(X, y) with sample_weight: pass a fraction (val=0.1) instead.")
        elif isinstance(val, tuple):
            val = (val[0], torch.from_numpy(val[1]))
        trainer = Trainer(self.module_, **options)
        with _threads(self.n_threads):
            result = trainer.fit((x, y), val)
        self.optimizer_ = trainer.optimizer
        self.n_fit_calls_ += 1
        self.history_ = ([] if first else list(getattr(self, "history_", []))) + result.history
        self.module_.eval()

    def _val(self, encode: Any) -> Any:
        if self.val is None or isinstance(self.val, float):
            return self.val
        if isinstance(self.val, tuple) and len(self.val) == 2:
            Xv = validate_data(self, self.val[0], dtype=np.float32, reset=False)
            return (Xv, encode(np.asarray(self.val[1])))
        raise ValueError(f"val: expected None, a fraction (0.1) or (X_val, y_val); received "
                         f"{type(self.val).__name__}.")

    def _outputs(self, X: Any) -> np.ndarray:
        """The network's raw outputs for ``X``, as float64."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        import torch

        with torch.inference_mode(), _threads(self.n_threads):
            model = self.module_
            model.eval()
            device = next(iter(model.parameters()), torch.empty(0)).device
            out = model(torch.from_numpy(np.ascontiguousarray(X)).to(device))
            return out.float().cpu().numpy().astype(np.float64)

    # -- pickling: weights as safetensors bytes, the module rebuilt -----------------------------
    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        module = state.pop("module_", None)
        state.pop("optimizer_", None)
        if module is not None:
            from safetensors.torch import save

            from .models.builder import spec_of

            tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
            state["_weights_safetensors"] = save(tensors)
            state["_module_spec"] = spec_of(module)
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        weights = state.pop("_weights_safetensors", None)
        spec = state.pop("_module_spec", None)
        super().__setstate__(state)
        if weights is not None:
            from safetensors.torch import load

            from .models.builder import rebuild

            module = (rebuild(spec, trust_code=True) if spec is not None
                      else self._build_module(self.n_features_in_, self.n_outputs_))
            module.load_state_dict(load(weights))
            self.module_ = module.eval()
            self.optimizer_ = None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for a fit or a predict (None: left as they are)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _weighted_loss(spec: Any, classification: bool) -> Any:
    """A loss callable that reads per-sample weights from the targets' last column."""
    from .losses import resolve_loss

    base, _ = resolve_loss(spec)  # reduction='none'

    def weighted(output: Any, packed: Any) -> Any:
        w = packed[:, -1]
        target = packed[:, 0].long() if classification else packed[:, :-1].reshape(output.shape)
        if hasattr(base, "to"):
            base.to(output.device)
        per_sample = base(output, target)
        if per_sample.dim() > 1:
            per_sample = per_sample.flatten(1).mean(1)
        return (per_sample * w).mean()

    return weighted


def _two_classes(classes: np.ndarray) -> None:
    if len(classes) < 2:
        raise ValueError(f"Classifier needs samples of at least 2 classes; y holds 1 class "
                         f"({classes[0]!r}).")


class Classifier(ClassifierMixin, _NetwrightEstimator):
    """A netwright network as a scikit-learn classifier.

    ``module``: a zoo name (``"mlp"``, configured with ``module__hidden=[64]`` etc.; the head gets
    one logit per class), a builder spec (list or dict of hidden layers; a ``{"linear":
    n_classes}`` output layer is appended), an ``nn.Module`` (copied at each fit) or a callable
    ``(n_features, n_outputs, **module__params) -> nn.Module``. ``loss`` defaults to
    ``"cross_entropy"``; the other parameters are :func:`netwright.fit`'s options
    (``random_state`` is its ``seed``); any other fit option passes as ``fit__<name>``.
    Labels of any kind are kept in ``classes_``; ``predict_proba`` is the softmax of the logits
    ``decision_function`` returns (for two classes: the difference of the two logits).
    """

    _default_loss = "cross_entropy"
    _classifier = True

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Classifier:
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        _two_classes(self.classes_)
        self.n_outputs_ = len(self.classes_)
        self._train(X, encoded.astype(np.int64), sample_weight, first=True,
                    val=self._val(self._encode))
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None,
                    sample_weight: Any = None) -> Classifier:
        """Train ``epochs`` more epochs on ``(X, y)`` (the optimizer keeps its state). The first
        call takes ``classes=`` (every label that will ever come), else ``y``'s labels."""
        first = not hasattr(self, "module_")
        X, y = validate_data(self, X, y, dtype=np.float32, reset=first)
        check_classification_targets(y)
        if first:
            self.classes_ = np.unique(y if classes is None else np.asarray(classes))
            _two_classes(self.classes_)
            self.n_outputs_ = len(self.classes_)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes={list(classes)} differ from the first call's "
                             f"{list(self.classes_)}.")
        self._train(X, self._encode(y), sample_weight, first=first)
        return self

    def _encode(self, y: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if np.any(unknown):
            raise ValueError(f"y holds labels not in classes_ {list(self.classes_)}: "
                             f"{list(np.unique(np.asarray(y)[unknown]))[:5]}.")
        return index.astype(np.int64)

    def decision_function(self, X: Any) -> np.ndarray:
        logits = self._outputs(X)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_proba(self, X: Any) -> np.ndarray:
        logits = self._outputs(X)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        logits = self._outputs(X)
        return self.classes_[np.argmax(logits, axis=1)]


class Regressor(RegressorMixin, _NetwrightEstimator):
    """A netwright network as a scikit-learn regressor (one or several targets).

    ``module`` as for :class:`Classifier` (the head gets one output per target); ``loss``
    defaults to ``"mse"``; ``predict`` returns ``(n,)`` for a 1-D ``y``, else ``(n, targets)``.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Regressor:
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, y_numeric=True)
        self._y_1d = y.ndim == 1
        targets = np.ascontiguousarray(y, dtype=np.float32).reshape(len(y), -1)
        self.n_outputs_ = targets.shape[1]
        self._train(X, targets, sample_weight, first=True, val=self._val(self._targets))
        return self

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> Regressor:
        """Train ``epochs`` more epochs on ``(X, y)`` (the optimizer keeps its state)."""
        first = not hasattr(self, "module_")
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True, y_numeric=True,
                             reset=first)
        targets = self._targets(y) if not first else np.ascontiguousarray(
            y, dtype=np.float32).reshape(len(y), -1)
        if first:
            self._y_1d = y.ndim == 1
            self.n_outputs_ = targets.shape[1]
        self._train(X, targets, sample_weight, first=first)
        return self

    def _targets(self, y: np.ndarray) -> np.ndarray:
        targets = np.ascontiguousarray(y, dtype=np.float32).reshape(len(y), -1)
        if targets.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {targets.shape[1]} targets; the estimator was fitted on "
                             f"{self.n_outputs_}.")
        return targets

    def predict(self, X: Any) -> np.ndarray:
        out = self._outputs(X)
        return out.ravel() if self._y_1d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
