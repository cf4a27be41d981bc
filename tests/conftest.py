import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F


class SimpleNet(nn.Module):
    """The article's SimpleNet, verbatim (it ends in softmax)."""

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
    """The same architecture returning logits, as CrossEntropyLoss expects."""

    def forward(self, x):
        return self.output(F.sigmoid(self.linear2(F.relu(self.linear1(x)))))


@pytest.fixture
def rule_data():
    """The article's 500x20 uniform inputs with a learnable rule: the class is the argmax of the
    first three features."""
    g = torch.Generator().manual_seed(0)
    X = torch.rand((500, 20), generator=g, dtype=torch.float32)
    y = X[:, :3].argmax(dim=1)
    return X, y


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    centers = np.array([[2, 0], [-2, 0], [0, 2.5]])
    y = rng.integers(0, 3, size=300)
    X = (centers[y] + rng.normal(scale=0.7, size=(300, 2))).astype(np.float32)
    return X, y.astype(np.int64)
