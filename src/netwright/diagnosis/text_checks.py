"""Checks of token-id batches for netwright's text models (NW212, NW213, NW307): the models
find the padding themselves (``ids == padding_idx``, right-padded), so a batch shaped otherwise,
padded with another id, padded on the left, or made mostly of unknown tokens trains quietly on
the wrong thing."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .report import Finding, finding, num

# Above this share of unknown tokens (id 1 in netwright's tokenizers) the vocabulary has
# collapsed: the model sees one token for most of the text.
UNKNOWN_SHARE = 0.2
UNK_ID = 1


def text_model(model: nn.Module) -> nn.Module | None:
    """The first of netwright's text models inside ``model`` (they mark themselves with
    ``reads_token_ids = True``), else None."""
    return next((m for m in model.modules() if getattr(m, "reads_token_ids", False)), None)


def text_findings(model: nn.Module, x: Any, *, training: bool = True) -> list[Finding]:
    """Token-id checks on one batch ``x`` for a text model; [] for any other model."""
    net = text_model(model)
    if net is None or not isinstance(x, torch.Tensor):
        return []
    name = type(net).__name__
    pad = int(getattr(net, "padding_idx", 0) or 0)
    if x.ndim != 2 or x.is_floating_point():
        return [finding(
            "NW213", f"{name} reads token ids of shape (N, T), int64, right-padded with "
            f"{pad}; its input is {str(x.dtype).replace('torch.', '')} of shape {tuple(x.shape)}, "
            f"from which no padding mask (N, T) can be made.",
            "pass (N, T) integer ids, e.g. x = x.squeeze(-1).long(); netwright's text data "
            "(data.text, nw.texts) makes such batches", name)]
    found: list[Finding] = []
    ids = x.detach()
    if not ids.numel():
        return found
    is_pad = ids == pad
    # Right padding: once a row holds the padding id, only padding follows.
    later_real = (~is_pad).flip(1).cumsum(1).flip(1) > 0  # a real token at or after t
    inside = (is_pad & later_real).any(1)
    zeros = ids == 0
    if pad != 0 and bool(zeros[:, -1].any()) and not bool(is_pad.any()):
        found.append(finding(
            "NW212", f"{name} treats id {pad} as padding (padding_idx={pad}), but the batch is "
            f"padded with 0 ({int(zeros[:, -1].sum())} of {len(ids)} rows end in 0) and holds no "
            f"id {pad}: padding would be read as text.",
            "padding_idx=0, the id netwright's tokenizers and batches pad with", name))
    elif bool(inside.any()):
        rows = inside.nonzero().flatten()
        found.append(finding(
            "NW213", f"{name} reads each row as its text followed by padding (id {pad}), but "
            f"{len(rows)} of {len(ids)} rows have padding before a real token (the first: row "
            f"{int(rows[0])}): left padding, or id {pad} used inside a text. The mask would cut "
            f"those texts short.",
            f"pad on the right (torch.nn.utils.rnn.pad_sequence(..., batch_first=True, "
            f"padding_value={pad})), and keep id {pad} for padding only", name))
    real = ~is_pad
    total = int(real.sum())
    if training and pad != UNK_ID and total:
        share = int(((ids == UNK_ID) & real).sum()) / total
        if share > UNKNOWN_SHARE:
            found.append(finding(
                "NW307", f"{num(share * 100)}% of the first batch's tokens are the unknown token "
                f"(id {UNK_ID}): the vocabulary does not cover the texts, and the model sees one "
                f"token for much of them.",
                "a larger tokenizer vocab_size or a lower min_frequency; kind: char or bpe for "
                "rare words", name))
    return found
