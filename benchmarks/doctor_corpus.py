"""A corpus of real model-building mistakes, and how many of them the doctor names.

Each case is a small, self-contained setup written the way people write it: an ``nn.Module``
class or an ``nn.Sequential``, data made with torch/numpy or taken from scikit-learn's bundled
(offline) data sets (digits, iris, breast cancer, diabetes, wine), and the loss, optimizer and
options handed to netwright. There are two kinds:

* **mistakes** — each with an id, a one-line description, the finding code(s) that describe it
  (any one of them counts) and a citation of where people report this kind of mistake (a forum
  thread, a StackOverflow mirror, a GitHub issue, a blog post; where no thread was found, the
  kind of source is named in words instead of a URL);
* **correct setups** — realistic, varied setups that must not be refused: an *error* finding on
  one of them is a false positive (warnings and infos are allowed, and listed).

Every case builds a fresh model (and optimizer) for each of two runs:

1. **pre-flight** — what ``nw.fit`` itself reports before the first step. The case is trained
   for one epoch through ``netwright.training.trainer.Trainer`` — exactly what ``nw.fit`` runs
   (``fit`` is ``Trainer(model, fit_options(options)).fit(train, val)``) — so that the pre-flight
   report can be read even when training fails *after* it: a ``DoctorError`` carries its report
   in ``.report``; otherwise the report fit kept (its warnings and infos) is
   ``trainer.findings``, the same object ``FitResult.findings`` holds. An exception raised before
   the pre-flight ran is recorded as ``crash: <type>`` (never a named mistake); one raised by fit
   after a clean pre-flight (its own later setup checks, or training) as ``after: <type>``, with
   the pre-flight codes kept beside it.
2. **deep** — ``nw.doctor(model, data, loss=..., deep=True, epochs=1, **options)`` (the doctor
   takes every option fit takes).

A mistake counts as **named** by a run when that run reports one of its expected codes. NW505
(the loss does not fall) is generic: it counts only where it is itself the expected code. The
totals are the share of mistakes named by the pre-flight and by the deep doctor, and the number
of *error* findings on correct setups, printed beside their targets (>= 70 % pre-flight,
>= 90 % deep, 0 false errors). ``tests/test_doctor_corpus.py`` runs the whole corpus and holds
the doctor to these targets.

Run it (about a minute or two on 2 CPU cores; seeds fixed)::

    .venv/bin/python benchmarks/doctor_corpus.py                 # the whole table + totals
    .venv/bin/python benchmarks/doctor_corpus.py --only softmax_dim0
    .venv/bin/python benchmarks/doctor_corpus.py --json corpus.json
    .venv/bin/python benchmarks/doctor_corpus.py --list          # ids, expected codes, sources
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import netwright as nw
from netwright.training.trainer import Trainer

TARGET_DEEP, TARGET_PREFLIGHT, TARGET_FALSE_ERRORS = 0.90, 0.70, 0
SEED = 0


# --- data ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _sk(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loader = {"digits": datasets.load_digits, "iris": datasets.load_iris,
              "breast_cancer": datasets.load_breast_cancer, "diabetes": datasets.load_diabetes,
              "wine": datasets.load_wine}[name]
    bunch = loader()
    return bunch.data.astype(np.float32), bunch.target


def _standardize(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean(0)) / (x.std(0) + 1e-8)).astype(np.float32)


def digits(n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 8x8 digits, pixels scaled to [0, 1] (they are 0..16), int64 labels 0..9."""
    x, y = _sk("digits")
    return torch.tensor(x[:n] / 16.0), torch.tensor(y[:n], dtype=torch.long)


def digits_images(n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = digits(n)
    return x.reshape(-1, 1, 8, 8), y


def breast_cancer(scaled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """569 rows, 30 features; binary targets as float (N, 1)."""
    x, y = _sk("breast_cancer")
    x = _standardize(x) if scaled else x
    return torch.tensor(x), torch.tensor(y, dtype=torch.float32).unsqueeze(1)


def diabetes(scaled_target: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """442 rows, 10 (already centred) features; regression target as (N, 1)."""
    x, y = _sk("diabetes")
    x = _standardize(x)
    y = (y - y.mean()) / y.std() if scaled_target else y
    return torch.tensor(x), torch.tensor(y, dtype=torch.float32).unsqueeze(1)


def wine() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _sk("wine")
    return torch.tensor(_standardize(x)), torch.tensor(y, dtype=torch.long)


def iris() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _sk("iris")
    return torch.tensor(_standardize(x)), torch.tensor(y, dtype=torch.long)


def sequences(n: int = 256, t: int = 12, f: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T, F) noisy sine waves; the class is whether the frequency is high."""
    g = torch.Generator().manual_seed(SEED)
    freq = torch.randint(0, 2, (n,), generator=g)
    steps = torch.arange(t, dtype=torch.float32)
    base = torch.sin(steps[None, :] * (0.3 + 0.9 * freq[:, None].float()))
    x = base[:, :, None].repeat(1, 1, f) + 0.1 * torch.randn(n, t, f, generator=g)
    return x, freq.long()


def mlp(n_in: int, n_out: int, hidden: int = 32) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


# --- cases --------------------------------------------------------------------------------------

@dataclass
class Setup:
    model: nn.Module
    data: Any
    loss: Any
    options: dict = field(default_factory=dict)  # passed to fit and (what it takes) to doctor
    val: Any = None


@dataclass
class Case:
    id: str
    description: str
    build: Callable[[], Setup]
    expected: tuple[str, ...]
    source: str
    kind: str  # "mistake" | "correct"


CASES: list[Case] = []


def mistake(id: str, description: str, expected: tuple[str, ...] | str, source: str):
    def register(fn: Callable[[], Setup]) -> Callable[[], Setup]:
        codes = (expected,) if isinstance(expected, str) else tuple(expected)
        CASES.append(Case(id, description, fn, codes, source, "mistake"))
        return fn
    return register


def correct(id: str, description: str):
    def register(fn: Callable[[], Setup]) -> Callable[[], Setup]:
        CASES.append(Case(id, description, fn, (), "", "correct"))
        return fn
    return register


# Sources (each URL was seen in a search of stored public pages; see the module docstring).
KARPATHY = "https://karpathy.github.io/2019/04/25/recipe/"
ORANGEDUCK = "https://theorangeduck.com/page/neural-network-not-working"

# ---- the output, the loss and the targets ----


@mistake("softmax_then_ce", "model ends in nn.Softmax and the loss is cross_entropy (double softmax)",
         "NW101", "https://imaddabbura.github.io/posts/dl/why-not-softmax.html")
def _():
    x, y = digits()
    return Setup(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10), nn.Softmax(dim=1)),
                 (x, y), "cross_entropy")


class SoftmaxDim0Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x):
        return F.log_softmax(self.fc2(torch.relu(self.fc1(x))), dim=0)  # meant dim=1


@mistake("softmax_dim0", "log_softmax(dim=0) + nll: probabilities over the batch, not the classes",
         "NW113", "https://openillumi.com/en/en-pytorch-softmax-dim-multidim-tensor-resolve")
def _():
    x, y = digits()
    return Setup(SoftmaxDim0Net(), (x, y), "nll")


@mistake("softmax_module_dim0", "nn.Softmax(dim=0) at the end of a classifier trained with cross_entropy",
         "NW113", "https://runebook.dev/en/articles/pytorch/generated/torch.nn.softmax")
def _():
    x, y = wine()
    return Setup(nn.Sequential(nn.Linear(13, 16), nn.ReLU(), nn.Linear(16, 3), nn.Softmax(dim=0)),
                 (x, y), "cross_entropy")


@mistake("float_column_targets_ce", "class labels as float (N, 1) for cross_entropy (from a CSV column)",
         "NW104", "https://openillumi.com/?p=8593")
def _():
    x, y = iris()
    return Setup(mlp(4, 3), (x, y.float().unsqueeze(1)), "cross_entropy")


@mistake("labels_1_to_C", "labels 1..C (wine classes counted from 1) with C outputs",
         "NW108", "https://www.codegenes.net/blog/target-is-out-of-bounds-pytorch")
def _():
    x, y = wine()
    return Setup(mlp(13, 3), (x, y + 1), "cross_entropy")


@mistake("ce_single_output", "binary task with one output unit and cross_entropy",
         ("NW111",), "https://runebook.dev/en/docs/pytorch/generated/torch.nn.functional.sigmoid")
def _():
    x, y = breast_cancer()
    return Setup(mlp(30, 1), (x, y.squeeze(1).long()), "cross_entropy")


@mistake("int_onehot_targets", "one-hot int64 targets (N, C) for cross_entropy",
         "NW106", "https://www.codegenes.net/blog/target-is-out-of-bounds-pytorch")
def _():
    x, y = iris()
    return Setup(mlp(4, 3), (x, F.one_hot(y, 3)), "cross_entropy")


@mistake("nll_on_logits", "nll on raw scores (no log_softmax at the end)",
         "NW102", "https://pytorch.org/docs/stable/generated/torch.nn.NLLLoss.html")
def _():
    x, y = digits()
    return Setup(mlp(64, 10), (x, y), "nll")


@mistake("sigmoid_then_bce_logits", "model ends in nn.Sigmoid and the loss is bce_with_logits",
         "NW122", "http://www.philkr.net/cs342/doc/sigmoid/")
def _():
    x, y = breast_cancer()
    return Setup(nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid()),
                 (x, y), "bce_with_logits")


@mistake("bce_on_logits", "loss 'bce' on a model without a final sigmoid",
         "NW121", "https://github.com/ray-project/ray/issues/17117")
def _():
    x, y = breast_cancer()
    return Setup(mlp(30, 1), (x, y), "bce")


@mistake("regression_target_N", "regression target (N,) against output (N, 1): mse broadcasts to (N, N)",
         "NW131", "https://github.com/deepset-ai/FARM/issues/229")
def _():
    x, y = diabetes()
    return Setup(mlp(10, 1), (x, y.squeeze(1)), "mse")


@mistake("binary_target_N", "binary float targets (N,) against output (N, 1) with bce_with_logits",
         ("NW131", "NW190"), "https://github.com/carpedm20/DiscoGAN-pytorch/issues/16")
def _():
    x, y = breast_cancer()
    return Setup(mlp(30, 1), (x, y.squeeze(1)), "bce_with_logits")


@mistake("mse_on_class_indices", "mse on integer class indices (a regression loss for a class label)",
         ("NW132",), "https://openillumi.com/en/en-pytorch-float-long-cast-error-fix")
def _():
    x, y = iris()
    return Setup(mlp(4, 1), (x, y.unsqueeze(1)), "mse")


@mistake("bce_targets_0_2", "multi-class labels 0..2 fed to bce_with_logits",
         "NW123", "https://github.com/pytorch/pytorch/issues/15262")
def _():
    x, y = iris()
    return Setup(mlp(4, 1), (x, y.float().unsqueeze(1)), "bce_with_logits")


# ---- the model's layers and shapes ----


@mistake("first_layer_in_features", "first Linear built for 28x28 MNIST, fed 8x8 digits",
         "NW201", "https://androidkt.com/fix-runtimeerror-mat1-and-mat2-shapes-cannot-be-multiplied/")
def _():
    x, y = digits()
    return Setup(nn.Sequential(nn.Linear(28 * 28, 64), nn.ReLU(), nn.Linear(64, 10)), (x, y),
                 "cross_entropy")


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int = 1, classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.head = nn.Linear(8 * 4 * 4, classes)

    def forward(self, x):
        h = F.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.head(h.flatten(1))


@mistake("channels_last_images", "RGB-style images (N, H, W, C) fed to a Conv2d expecting (N, C, H, W)",
         ("NW202", "NW210"), "https://openillumi.com/?p=69018")
def _():
    x, y = digits()
    img = x.reshape(-1, 8, 8, 1).repeat(1, 1, 1, 3)  # (N, 8, 8, 3): as loaded from PIL/numpy
    return Setup(SmallCNN(in_channels=3), (img, y), "cross_entropy")


@mistake("int_pixel_inputs", "uint8-style integer pixels (int64) fed to the network",
         "NW204", "https://learn.biosrag.com/ai/experiences/mismatch-long-and-float.html")
def _():
    x, y = digits()
    return Setup(mlp(64, 10), ((x * 16).long(), y), "cross_entropy")


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(64, 32), nn.BatchNorm1d(32), nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


@mistake("batchnorm_last_batch_1", "BatchNorm1d and 513 rows with batch_size 32: the last batch has 1 sample",
         "NW208", "https://discuss.pytorch.org/t/batch-norm-training-when-batch-size-1/102979")
def _():
    x, y = digits(513)
    return Setup(BNNet(), (x, y), "cross_entropy", {"batch_size": 32})


class SeqNet(nn.Module):
    def __init__(self, batch_first: bool):
        super().__init__()
        self.lstm = nn.LSTM(3, 16, batch_first=batch_first)
        self.head = nn.Linear(16, 2)
        self.batch_first = batch_first

    def forward(self, x):
        out, _ = self.lstm(x)
        last = out[:, -1] if self.batch_first else out[-1]
        return self.head(last)


class SeqNetForgotBatchFirst(SeqNet):
    """The author indexes the output as (N, T, H) but left batch_first at its default False."""

    def __init__(self):
        super().__init__(batch_first=False)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


@mistake("lstm_batch_first", "LSTM left at batch_first=False fed (N, T, F) sequences",
         "NW211", "https://theneuralbase.com/pytorch/learn/intermediate/input-shape-for-rnns-seq-batch-features/")
def _():
    x, y = sequences()
    return Setup(SeqNetForgotBatchFirst(), (x, y), "cross_entropy")


class FunctionalDropoutNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x):
        h = F.dropout(torch.relu(self.fc1(x)), p=0.5)  # training=self.training forgotten
        return self.fc2(h)


@mistake("functional_dropout_eval", "F.dropout without training=self.training: dropout stays on in eval",
         "NW207", "https://discuss.pytorch.org/t/confusion-about-dropout/39407")
def _():
    x, y = digits()
    return Setup(FunctionalDropoutNet(), (x, y), "cross_entropy")


class ListNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(64, 32), nn.Linear(32, 32)]  # not nn.ModuleList
        self.out = nn.Linear(32, 10)

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.out(x)


@mistake("layers_in_list", "hidden layers kept in a plain Python list: never registered, never trained",
         "NW216", "https://runebook.dev/ru/docs/pytorch/generated/torch.nn.modulelist/torch.nn.ModuleList")
def _():
    x, y = digits()
    return Setup(ListNet(), (x, y), "cross_entropy")


class DictHeadsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(13, 16)
        self.heads = {"cls": nn.Linear(16, 3), "aux": nn.Linear(16, 3)}  # not nn.ModuleDict

    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.heads["cls"](h) + 0.1 * self.heads["aux"](h)


@mistake("layers_in_dict", "heads kept in a plain dict instead of nn.ModuleDict",
         "NW216", "https://runebook.dev/zh/docs/pytorch/generated/torch.nn.modulelist/torch.nn.ModuleList")
def _():
    x, y = wine()
    return Setup(DictHeadsNet(), (x, y), "cross_entropy")


class PlainTensorWeightNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = (torch.randn(64, 10) * 0.1).requires_grad_()  # not an nn.Parameter
        self.b = torch.zeros(10, requires_grad=True)

    def forward(self, x):
        return x @ self.w + self.b


@mistake("tensor_not_parameter", "weights created as torch tensors with requires_grad=True, not nn.Parameter",
         "NW217", "https://runebook.dev/zh/docs/pytorch/generated/torch.nn.parameter.parameter")
def _():
    x, y = digits()
    return Setup(PlainTensorWeightNet(), (x, y), "cross_entropy", {"optimizer": "sgd", "lr": 0.1})


class ScaleParamNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(30, 16), nn.Linear(16, 1)
        self.temperature = torch.ones(1, requires_grad=True)  # meant to be learnt

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x))) / self.temperature


@mistake("tensor_attr_requires_grad", "a learnable temperature kept as a plain requires_grad tensor",
         "NW217", "https://openillumi.com/?p=120695")
def _():
    x, y = breast_cancer()
    return Setup(ScaleParamNet(), (x, y), "bce_with_logits")


class PlainMeanNet(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.mean, self.std = mean, std  # plain attributes: not in state_dict, not moved by .to()
        self.net = mlp(30, 1)

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


@mistake("normalisation_not_buffer", "normalisation mean/std kept as plain tensor attributes, not buffers",
         "NW218", "https://openillumi.com/en/en-pytorch-cuda-tensor-not-transfer-fix")
def _():
    x, y = breast_cancer(scaled=False)
    return Setup(PlainMeanNet(x.mean(0), x.std(0)), (x, y), "bce_with_logits")


@mistake("zero_init", "hidden layers initialised with nn.init.zeros_ (symmetric weights)",
         ("NW219", "NW502"),
         "https://community.deeplearning.ai/t/week-1-programming-assignment-initialization-exercise-1-initialize-parameters-zeros/121049")
def _():
    x, y = digits()
    net = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10))
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    return Setup(net, (x, y), "cross_entropy")


@mistake("constant_init", "weights initialised to a constant 0.5 (nn.init.constant_)",
         "NW219", "http://www.vynguyen.net/2016/08/29/learning-from-data-a-short-course-exercise-7-9/")
def _():
    x, y = iris()
    net = mlp(4, 3, hidden=16)
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)
    return Setup(net, (x, y), "cross_entropy")


class UnusedLayerNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(64, 32), nn.Linear(32, 32), nn.Linear(32, 10)

    def forward(self, x):
        return self.out(torch.relu(self.fc1(x)))  # fc2 defined, never used


@mistake("unused_layer", "a layer defined in __init__ but never used in forward",
         "NW501", "https://github.com/ImprintLab/MedSegDiff/issues/27")
def _():
    x, y = digits()
    return Setup(UnusedLayerNet(), (x, y), "cross_entropy")


class ProtoNet(nn.Module):
    """Distances to class prototypes initialised from training rows: sqrt(0) at those rows."""

    def __init__(self, protos: torch.Tensor):
        super().__init__()
        self.protos = nn.Parameter(protos.clone())

    def forward(self, x):
        d = torch.sqrt(((x[:, None, :] - self.protos[None]) ** 2).sum(-1))
        return -d


@mistake("sqrt_at_zero", "Euclidean distance with torch.sqrt: NaN gradients where the distance is 0",
         "NW503", "https://discuss.pytorch.org/t/how-to-fix-gradient-at-0-for-sqrt-function/23390")
def _():
    x, y = digits()
    protos = torch.stack([x[(y == c).nonzero()[0, 0]] for c in range(10)])
    return Setup(ProtoNet(protos), (x, y), "cross_entropy")


class SquareWrongBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x  # should be 2 * x * g


class SquareRight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class SquareActNet(nn.Module):
    def __init__(self, fn: type[torch.autograd.Function]):
        super().__init__()
        self.fn = fn
        self.fc1, self.fc2 = nn.Linear(13, 16), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.fn.apply(self.fc1(x)))


@mistake("autograd_wrong_backward", "custom autograd.Function for x*x whose backward returns g*x",
         "NW509", "https://discuss.pytorch.org/t/how-gradcheck-works/25946")
def _():
    x, y = wine()
    return Setup(SquareActNet(SquareWrongBackward), (x, y), "cross_entropy")


# ---- the data ----


@mistake("nan_inputs", "missing values left as NaN in the feature matrix",
         "NW301", "https://www.codegenes.net/blog/pytorch-cost-result-is-nan")
def _():
    x, y = breast_cancer()
    x = x.clone()
    x[[40, 200, 333], 5] = float("nan")
    return Setup(mlp(30, 1), (x, y), "bce_with_logits")


@mistake("pixels_0_255", "images left as 0..255 pixel values (never divided by 255)",
         "NW305", ORANGEDUCK)
def _():
    x, y = digits_images()
    return Setup(SmallCNN(), (x * 255.0, y), "cross_entropy")


@mistake("unscaled_tabular", "raw tabular features (breast cancer areas ~ 650) without standardisation",
         "NW305", ORANGEDUCK)
def _():
    x, y = breast_cancer(scaled=False)
    return Setup(mlp(30, 1), (x, y), "bce_with_logits")


@mistake("unscaled_regression_target", "regression target in its raw units (diabetes 25..346)",
         "NW306", ORANGEDUCK)
def _():
    x, y = diabetes(scaled_target=False)
    return Setup(mlp(10, 1), (x, y), "mse")


@mistake("val_is_train", "validation set taken from the training rows (a subset of them)",
         "NW310", "https://quicktinydata.com/guides/how-to-check-train-test-leakage-before-trusting-model-metrics")
def _():
    x, y = digits()
    return Setup(mlp(64, 10), (x, y), "cross_entropy", val=(x[:128].clone(), y[:128].clone()))


@mistake("target_column_leak", "the label left in the feature matrix as its last column",
         "NW311", "https://bpp-sot.github.io/l6ds-m9-machine-learning/topic-2-feature-engineering/explanation/feature-leakage")
def _():
    x, y = wine()
    return Setup(mlp(14, 3), (torch.cat([x, y[:, None].float()], 1), y), "cross_entropy")


@mistake("target_affine_leak", "a feature derived from the target (label*2+1) kept among the inputs",
         "NW311", "https://neuralnetworklexicon.com/data-and-distribution/target-leakage")
def _():
    x, y = breast_cancer()
    return Setup(mlp(31, 1), (torch.cat([x, y * 2 + 1], 1), y), "bce_with_logits")


@mistake("sorted_no_shuffle", "training data sorted by label and shuffle=False",
         "NW404", "https://dailydoseofds.beehiiv.com/p/why-is-it-important-to-shuffle-your")
def _():
    x, y = digits()
    order = torch.argsort(y, stable=True)
    return Setup(mlp(64, 10), (x[order], y[order]), "cross_entropy", {"shuffle": False})


# ---- the optimizer, the parameters and the schedule ----


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


@mistake("optimizer_missing_params", "optimizer built from the first layer's parameters only",
         "NW401", "https://runebook.dev/zh/docs/pytorch/generated/torch.nn.parameter.parameter")
def _():
    x, y = digits()
    model = TwoLayer()
    return Setup(model, (x, y), "cross_entropy",
                 {"optimizer": torch.optim.Adam(model.fc1.parameters(), lr=1e-3)})


@mistake("optimizer_other_model", "optimizer created, then the model re-instantiated (optimizer holds the old one)",
         "NW402", "(no thread found) forum threads on 'parameters not updating' after re-running a notebook cell")
def _():
    x, y = digits()
    model = TwoLayer()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model = TwoLayer()  # e.g. a notebook cell run again
    return Setup(model, (x, y), "cross_entropy", {"optimizer": opt})


@mistake("everything_frozen", "requires_grad=False on every parameter (the new head was frozen too)",
         "NW403", "https://leyaa.ai/codefly/learn/pytorch/part-2/pytorch-finetuning-strategy/visualize")
def _():
    x, y = digits()
    model = TwoLayer()
    for p in model.parameters():
        p.requires_grad = False
    model.fc2 = nn.Linear(32, 10)  # "new head" ...
    for p in model.parameters():   # ... then the freezing loop ran again after it
        p.requires_grad = False
    return Setup(model, (x, y), "cross_entropy")


@mistake("half_frozen_by_mistake", "a copy-pasted freezing loop freezes the first layer of a model trained from scratch",
         "NW405", "https://www.codegenes.net/blog/gradual-unfreezing-pytorch")
def _():
    x, y = digits()
    model = TwoLayer()
    for p in model.fc1.parameters():
        p.requires_grad = False
    return Setup(model, (x, y), "cross_entropy")


@mistake("lr_10_sgd", "SGD at lr=10: the loss diverges",
         ("NW506", "NW504"), "https://www.codegenes.net/blog/loss-explodes-pytorch")
def _():
    x, y = diabetes()
    return Setup(mlp(10, 1), (x, y), "mse", {"optimizer": "sgd", "lr": 10.0})


@mistake("lr_far_too_low", "Adam at lr=1e-7: the loss does not fall",
         "NW505", KARPATHY)
def _():
    x, y = digits()
    return Setup(mlp(64, 10), (x, y), "cross_entropy", {"lr": 1e-7})


@mistake("onecycle_total_steps", "onecycle with total_steps smaller than the run's steps",
         "NW412", "https://discuss.pytorch.org/t/how-to-use-onecyclelr/159945")
def _():
    x, y = digits()
    return Setup(mlp(64, 10), (x, y), "cross_entropy",
                 {"scheduler": {"name": "onecycle", "max_lr": 0.01, "total_steps": 5}})


@mistake("monitor_never_logged", "early stopping on val_accuracy without validation data or metrics",
         "NW414", "PyTorch Lightning / Keras issue threads on early stopping conditioned on a metric that is not available")
def _():
    x, y = digits()
    return Setup(mlp(64, 10), (x, y), "cross_entropy", {"monitor": "val_accuracy"})


@mistake("metric_for_other_task", "metric r2 on a multiclass run",
         "NW415", "(no thread found) library docs on metrics per task")
def _():
    x, y = digits()
    return Setup(mlp(64, 10), (x, y), "cross_entropy", {"metrics": ["r2"]})


# ---- correct setups -----------------------------------------------------------------------------


@correct("ok_mlp_digits", "MLP on digits, cross_entropy, int64 labels")
def _():
    x, y = digits()
    return Setup(mlp(64, 10), (x, y), "cross_entropy", {"metrics": ["accuracy"]})


@correct("ok_cnn_digits", "CNN on (N, 1, 8, 8) digits")
def _():
    x, y = digits_images()
    return Setup(SmallCNN(), (x, y), "cross_entropy")


@correct("ok_binary_bce_logits", "binary classifier, bce_with_logits, float (N, 1) targets")
def _():
    x, y = breast_cancer()
    return Setup(mlp(30, 1), (x, y), "bce_with_logits", {"metrics": ["accuracy"]})


@correct("ok_regression_mse", "regression with mse, standardised (N, 1) targets")
def _():
    x, y = diabetes()
    return Setup(mlp(10, 1), (x, y), "mse")


@correct("ok_lstm_batch_first", "LSTM(batch_first=True) on (N, T, F) sequences")
def _():
    x, y = sequences()
    return Setup(SeqNet(batch_first=True), (x, y), "cross_entropy")


class RegisteredNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(64, 32), nn.Linear(32, 32)])
        self.heads = nn.ModuleDict({"cls": nn.Linear(32, 10)})

    def forward(self, x):
        for b in self.blocks:
            x = torch.relu(b(x))
        return self.heads["cls"](x)


@correct("ok_modulelist_moduledict", "layers in nn.ModuleList, head in nn.ModuleDict")
def _():
    x, y = digits()
    return Setup(RegisteredNet(), (x, y), "cross_entropy")


class BufferNormNet(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.net = mlp(30, 1)

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


@correct("ok_registered_buffer", "normalisation statistics registered as buffers (raw inputs)")
def _():
    x, y = breast_cancer(scaled=False)
    return Setup(BufferNormNet(x.mean(0), x.std(0)), (x, y), "bce_with_logits")


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.classifier = nn.Linear(32, 10)

    def forward(self, x):
        return self.classifier(self.features(x))


@correct("ok_frozen_backbone", "fine-tuning: backbone frozen on purpose, only the head trains (NW405 info only)")
def _():
    x, y = digits()
    model = Backbone()
    model.features.requires_grad_(False)
    opt = torch.optim.Adam(model.classifier.parameters(), lr=1e-3)
    return Setup(model, (x, y), "cross_entropy", {"optimizer": opt})


@correct("ok_custom_function", "custom autograd.Function for x*x with the right backward (2*x*g)")
def _():
    x, y = wine()
    return Setup(SquareActNet(SquareRight), (x, y), "cross_entropy")


class DropBNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.3),
                                 nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)


@correct("ok_dropout_batchnorm", "MLP with nn.Dropout and BatchNorm1d, batches of 32 (last batch 16)")
def _():
    x, y = digits(496)
    return Setup(DropBNNet(), (x, y), "cross_entropy", {"batch_size": 32})


@correct("ok_shuffle_false_unsorted", "shuffle=False on data that is already in random order")
def _():
    x, y = digits()
    return Setup(mlp(64, 10), (x, y), "cross_entropy", {"shuffle": False})


@correct("ok_val_disjoint", "validation set disjoint from training (train_test_split, stratified)")
def _():
    from sklearn.model_selection import train_test_split

    x, y = digits()
    xt, xv, yt, yv = train_test_split(x.numpy(), y.numpy(), test_size=0.25, random_state=SEED, stratify=y.numpy())
    return Setup(mlp(64, 10), (torch.tensor(xt), torch.tensor(yt)), "cross_entropy",
                 {"metrics": ["accuracy"], "monitor": "val_accuracy"},
                 val=(torch.tensor(xv), torch.tensor(yv)))


class LogSoftmaxNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 16), nn.Linear(16, 3)

    def forward(self, x):
        return F.log_softmax(self.fc2(torch.relu(self.fc1(x))), dim=1)


@correct("ok_log_softmax_nll", "log_softmax(dim=1) + nll on iris")
def _():
    x, y = iris()
    return Setup(LogSoftmaxNet(), (x, y), "nll")


@correct("ok_soft_labels", "float one-hot rows (soft labels) with cross_entropy")
def _():
    x, y = wine()
    return Setup(mlp(13, 3), (x, F.one_hot(y, 3).float()), "cross_entropy")


@correct("ok_sgd_momentum_onecycle", "SGD with momentum and a onecycle schedule sized by fit")
def _():
    x, y = digits()
    return Setup(mlp(64, 10), (x, y), "cross_entropy",
                 {"optimizer": "sgd", "lr": 0.05, "scheduler": {"name": "onecycle", "max_lr": 0.1}})


class EmbedBagNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.head = nn.Linear(16, 2)

    def forward(self, ids):
        return self.head(self.emb(ids).mean(1))


@correct("ok_embedding_bag", "token ids (N, T) int64 through nn.Embedding, mean-pooled")
def _():
    g = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, 50, (256, 10), generator=g)
    y = (ids < 25).sum(1).gt(5).long()
    return Setup(EmbedBagNet(), (ids, y), "cross_entropy")


# --- running ------------------------------------------------------------------------------------

def _codes(report: Any) -> list[str]:
    if report is None:
        return []
    return [f.code for f in report]


def _errors(report: Any) -> list[str]:
    if report is None:
        return []
    return [f.code for f in report if f.severity == "error"]


def _last_line(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    text = lines[-1].strip() if lines else type(exc).__name__
    return text.splitlines()[0][:200]


def _seed() -> None:
    torch.manual_seed(SEED)
    np.random.seed(SEED)


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def run_preflight(case: Case) -> dict:
    """What fit reports before its first step (see the module docstring)."""
    _seed()
    s = case.build()
    opts = dict(s.options)
    opts.update(loss=s.loss, epochs=1, verbose=0)
    out: dict = {"status": "ok", "codes": [], "errors": [], "note": ""}
    trainer = None
    try:
        with _quiet():
            trainer = Trainer(s.model, opts)
            trainer.fit(s.data, s.val)
    except nw.DoctorError as exc:
        out.update(status="DoctorError", codes=_codes(exc.report), errors=_errors(exc.report))
        return out
    except Exception as exc:  # noqa: BLE001 - recorded, not raised
        findings = getattr(trainer, "findings", None) if trainer is not None else None
        if findings is None:
            out.update(status=f"crash: {type(exc).__name__}", note=_last_line(exc))
            return out
        out.update(status=f"after: {type(exc).__name__}", note=_last_line(exc))
    else:
        findings = trainer.findings
    out["codes"], out["errors"] = _codes(findings), _errors(findings)
    return out


def run_deep(case: Case) -> dict:
    _seed()
    s = case.build()
    kwargs = dict(s.options)  # the doctor takes every option fit takes
    if s.val is not None:
        kwargs["val"] = s.val
    kwargs.setdefault("epochs", 1)
    out: dict = {"status": "ok", "codes": [], "errors": [], "note": ""}
    try:
        with _quiet():
            report = nw.doctor(s.model, s.data, loss=s.loss, deep=True, **kwargs)
    except Exception as exc:  # noqa: BLE001
        out.update(status=f"crash: {type(exc).__name__}", note=_last_line(exc))
        return out
    out["codes"], out["errors"] = _codes(report), _errors(report)
    return out


def named(case: Case, codes: list[str]) -> bool:
    """Named when a run reports one of the case's expected codes; a generic code (NW505) found
    where it is not expected does not count, and neither does any other unexpected code."""
    return any(c in case.expected for c in codes)


def run_case(case: Case) -> dict:
    t0 = time.perf_counter()
    pre, deep = run_preflight(case), run_deep(case)
    row = {"id": case.id, "kind": case.kind, "description": case.description,
           "expected": list(case.expected), "source": case.source,
           "preflight": pre, "deep": deep, "seconds": round(time.perf_counter() - t0, 2)}
    if case.kind == "mistake":
        row["named_preflight"] = named(case, pre["codes"])
        row["named_deep"] = named(case, deep["codes"])
    else:
        row["false_errors_preflight"] = pre["errors"]
        row["false_errors_deep"] = deep["errors"]
    return row


def _fmt_codes(res: dict) -> str:
    codes = ",".join(dict.fromkeys(res["codes"])) or "-"
    if res["status"] not in ("ok", "DoctorError"):
        return f"{res['status']}" + (f" [{codes}]" if res["codes"] else "")
    return codes


def print_table(rows: list[dict]) -> None:
    def line(cols, widths):
        return "  ".join(str(c)[:w].ljust(w) for c, w in zip(cols, widths))

    mist = [r for r in rows if r["kind"] == "mistake"]
    ok = [r for r in rows if r["kind"] == "correct"]
    if mist:
        w = (26, 52, 12, 30, 30, 3, 3)
        print(f"MISTAKES ({len(mist)})")
        print(line(("id", "description", "expected", "pre-flight", "deep", "pre", "dp"), w))
        for r in mist:
            print(line((r["id"], r["description"], "/".join(r["expected"]),
                        _fmt_codes(r["preflight"]), _fmt_codes(r["deep"]),
                        "✓" if r["named_preflight"] else "✗", "✓" if r["named_deep"] else "✗"), w))
        print()
    if ok:
        w = (26, 52, 30, 30, 24)
        print(f"CORRECT SETUPS ({len(ok)})")
        print(line(("id", "description", "pre-flight", "deep", "false errors"), w))
        for r in ok:
            errs = sorted(set(r["false_errors_preflight"]) | set(r["false_errors_deep"]))
            print(line((r["id"], r["description"], _fmt_codes(r["preflight"]), _fmt_codes(r["deep"]),
                        ",".join(errs) or "none"), w))
        print()
    crashes = [(r["id"], run, r[run]["status"], r[run]["note"]) for r in rows for run in ("preflight", "deep")
               if r[run]["status"].startswith(("crash", "after"))]
    if crashes:
        print("EXCEPTIONS (crash: raised before the pre-flight report existed; "
              "after: raised by fit after a clean pre-flight, its codes kept)")
        for cid, run, status, note in crashes:
            print(f"  {cid} [{run}] {status}: {note}")
        print()


def totals(rows: list[dict]) -> dict:
    mist = [r for r in rows if r["kind"] == "mistake"]
    ok = [r for r in rows if r["kind"] == "correct"]
    n = len(mist)
    pre = sum(r["named_preflight"] for r in mist)
    deep = sum(r["named_deep"] for r in mist)
    false_errors = sum(len(set(r["false_errors_preflight"]) | set(r["false_errors_deep"])) for r in ok)
    cases_with_false = [r["id"] for r in ok if r["false_errors_preflight"] or r["false_errors_deep"]]
    return {"mistakes": n, "correct": len(ok),
            "named_preflight": pre, "named_preflight_pct": round(100 * pre / n, 1) if n else None,
            "named_deep": deep, "named_deep_pct": round(100 * deep / n, 1) if n else None,
            "false_errors": false_errors, "cases_with_false_errors": cases_with_false,
            "targets": {"preflight_pct": 100 * TARGET_PREFLIGHT, "deep_pct": 100 * TARGET_DEEP,
                        "false_errors": TARGET_FALSE_ERRORS}}


def print_totals(t: dict) -> None:
    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    if t["mistakes"]:
        pre_ok = t["named_preflight_pct"] >= 100 * TARGET_PREFLIGHT
        deep_ok = t["named_deep_pct"] >= 100 * TARGET_DEEP
        print(f"named by pre-flight : {t['named_preflight']}/{t['mistakes']} = {t['named_preflight_pct']:.1f} %"
              f"   (target >= {100 * TARGET_PREFLIGHT:.0f} %: {mark(pre_ok)})")
        print(f"named by deep=True  : {t['named_deep']}/{t['mistakes']} = {t['named_deep_pct']:.1f} %"
              f"   (target >= {100 * TARGET_DEEP:.0f} %: {mark(deep_ok)})")
    if t["correct"]:
        extra = f" in {t['cases_with_false_errors']}" if t["cases_with_false_errors"] else ""
        print(f"false errors on {t['correct']} correct setups: {t['false_errors']}{extra}"
              f"   (target {TARGET_FALSE_ERRORS}: {mark(t['false_errors'] <= TARGET_FALSE_ERRORS)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="write the table and the totals as JSON")
    parser.add_argument("--only", metavar="ID", action="append", help="run only this case (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the cases and their sources, run nothing")
    args = parser.parse_args(argv)

    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    cases = CASES
    if args.only:
        unknown = [i for i in args.only if i not in ids]
        if unknown:
            parser.error(f"unknown case id(s) {unknown}; --list shows them")
        cases = [c for c in CASES if c.id in args.only]
    if args.list:
        for c in cases:
            print(f"{c.kind:8} {c.id:28} {'/'.join(c.expected) or '-':14} {c.source}")
        return 0

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    rows = []
    for c in cases:
        rows.append(run_case(c))
        print(f"  ran {c.id} ({rows[-1]['seconds']:.1f} s)", file=sys.stderr)
    print()
    print_table(rows)
    t = totals(rows)
    t["seconds"] = round(time.perf_counter() - t0, 1)
    print_totals(t)
    print(f"({t['seconds']:.0f} s, torch {torch.__version__}, netwright {getattr(nw, '__version__', '?')})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"totals": t, "cases": rows}, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
