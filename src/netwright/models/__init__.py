"""Models: a spec → ``nn.Module`` builder, a zoo of named architectures, and a summary table.

>>> from netwright.models import build
>>> build([{"linear": 3}], input_shape=(4,))
Sequential(
  (0): Linear(in_features=4, out_features=3, bias=True)
)
"""

from __future__ import annotations

from .builder import build, rebuild, spec_of
from .summary import Summary, summary
from .zoo import ZOO, build_zoo

__all__ = ["build", "rebuild", "spec_of", "summary", "Summary", "ZOO", "build_zoo"]
