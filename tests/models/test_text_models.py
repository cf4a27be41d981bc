"""The zoo's text models (netwright.models.text): padding never changes a result, the exported
formulations equal the eager (packed) one, gradients reach the used embedding rows only, and
torch.export / the ONNX dynamo exporter keep both the batch and the sequence length dynamic."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from netwright.models import build_zoo
from netwright.models.text import TextRNN, TextTransformer

VOCAB = 40
ZOO_ARGS = {
    "text_classifier": {"embed_dim": 8, "hidden_size": 6, "bidirectional": True, "num_layers": 2},
    "text_cnn": {"embed_dim": 8, "channels": 5, "kernel_sizes": [2, 3, 5]},
    "text_transformer": {"d_model": 16, "nhead": 2, "num_layers": 2, "dim_feedforward": 32},
}
RNN_CASES = list(itertools.product(["lstm", "gru", "rnn"], [False, True], [1, 2],
                                   ["last", "mean", "max"]))


def texts(lengths, width=None, seed=0):
    """Right-padded ids (N, width): row i holds lengths[i] ids in 1..VOCAB-1, then padding."""
    g = torch.Generator().manual_seed(seed)
    width = width or max(lengths)
    ids = torch.randint(1, VOCAB, (len(lengths), width), generator=g)
    ids[torch.arange(width)[None] >= torch.tensor(lengths)[:, None]] = 0
    return ids


def zoo_model(name):
    torch.manual_seed(0)
    return build_zoo(name, (12,), vocab_size=VOCAB, num_classes=3, **ZOO_ARGS[name]).eval()


def rnn_model(cell, bidirectional, num_layers, pool):
    torch.manual_seed(0)
    return TextRNN(VOCAB, 3, cell=cell, embed_dim=8, hidden_size=6, num_layers=num_layers,
                   bidirectional=bidirectional, pool=pool, dropout=0.1).eval()


def check_padding_invariance(model):
    lengths = [9, 3, 1, 6, 2]
    ids = texts(lengths)
    with torch.no_grad():
        batch = model(ids)
        alone = torch.cat([model(ids[i:i + 1, :n]) for i, n in enumerate(lengths)])
        padded = model(torch.cat([ids, torch.zeros(len(lengths), 7, dtype=torch.long)], 1))
    torch.testing.assert_close(alone, batch, atol=1e-5, rtol=0)
    torch.testing.assert_close(padded, batch, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(ZOO_ARGS))
def test_zoo_text_models_ignore_padding(name):
    check_padding_invariance(zoo_model(name))


@pytest.mark.parametrize("name", ["text_transformer", "text_classifier"])
def test_the_convolution_over_the_embeddings_ignores_padding_and_takes_odd_widths_only(name):
    torch.manual_seed(0)
    model = build_zoo(name, (12,), vocab_size=VOCAB, num_classes=3, conv_kernel=3,
                      **ZOO_ARGS[name]).eval()
    assert model.conv.kernel_size == (3,)
    with torch.no_grad():  # a padding row that is not zero (a state dict from elsewhere)
        model.embedding.weight[0].fill_(5.0)
    check_padding_invariance(model)
    plain = build_zoo(name, (12,), vocab_size=VOCAB, num_classes=3, **ZOO_ARGS[name])
    assert plain.conv is None and not any(k.startswith("conv.") for k in plain.state_dict())
    for width in (2, -1):
        with pytest.raises(Exception, match="conv_kernel must be 0 or an odd width"):
            build_zoo(name, (12,), vocab_size=VOCAB, conv_kernel=width)


def test_the_rnns_convolution_is_in_every_export_path():
    torch.manual_seed(0)
    model = TextRNN(VOCAB, 3, cell="gru", embed_dim=8, hidden_size=6, bidirectional=True,
                    pool="mean", conv_kernel=3).eval()
    ids = texts([9, 3, 1, 6, 2, 9, 4])
    with torch.no_grad():
        packed = model(ids)
        for path in ("padded", "scan"):
            model.force_path = path
            torch.testing.assert_close(model(ids), packed, atol=1e-5, rtol=0)
        model.force_path = None
        model.conv.weight.zero_()  # without its convolution the model answers otherwise
        assert not torch.allclose(model(ids), packed, atol=1e-3)


@pytest.mark.parametrize("cell, bidirectional, num_layers, pool", RNN_CASES)
def test_text_rnn_ignores_padding_and_its_export_paths_equal_packing(cell, bidirectional,
                                                                     num_layers, pool):
    model = rnn_model(cell, bidirectional, num_layers, pool)
    check_padding_invariance(model)
    ids = texts([9, 3, 1, 6, 2, 9, 4])
    with torch.no_grad():
        packed = model(ids)
        for path in ("padded", "scan"):  # torch's fused op (traces), a scan (torch.export)
            model.force_path = path
            torch.testing.assert_close(model(ids), packed, atol=1e-5, rtol=0)
        model.force_path = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, (texts([5, 2, 4], width=6, seed=1),), check_trace=False)
        torch.testing.assert_close(traced(ids), packed, atol=1e-5, rtol=0)  # other N and T


@pytest.mark.parametrize("name", sorted(ZOO_ARGS))
def test_a_row_of_padding_gives_a_finite_result(name):
    out = zoo_model(name)(torch.tensor([[0, 0, 0], [5, 6, 0]]))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(ZOO_ARGS))
def test_a_training_step_moves_the_used_embeddings_and_never_the_padding_row(name):
    model = zoo_model(name).train()
    ids = texts([6, 2, 4])
    used = ids.unique()
    unused = torch.tensor([i for i in range(VOCAB) if i not in used.tolist()])
    before = model.embedding.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    torch.nn.functional.cross_entropy(model(ids), torch.tensor([0, 1, 2])).backward()
    opt.step()
    after = model.embedding.weight.detach()
    assert torch.equal(after[0], torch.zeros_like(after[0]))
    moved = (after - before).abs().sum(1) > 0
    assert moved[used[used != 0]].all() and not moved[unused].any() and not moved[0]


def _dynamic():
    from torch.export import Dim

    return {"ids": {0: Dim("batch", min=1, max=1024), 1: Dim("seq", min=1, max=512)}}


@pytest.mark.parametrize("name", sorted(ZOO_ARGS))
def test_torch_export_keeps_batch_and_length_dynamic(name):
    model = zoo_model(name)
    program = torch.export.export(model, (texts([7, 3, 5]),), dynamic_shapes=_dynamic())
    other = texts([11, 1, 4, 8, 2, 11, 6], seed=2)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(other), model(other), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(ZOO_ARGS))
def test_onnx_dynamo_export_keeps_batch_and_length_dynamic(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = zoo_model(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (texts([7, 3, 5]),), dynamo=True,
                                    dynamic_shapes=_dynamic(), input_names=["ids"], verbose=False)
    program.save(str(tmp_path / "m.onnx"))
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    other = texts([11, 1, 4, 8, 2, 11, 6], seed=2)
    got = torch.from_numpy(session.run(None, {"ids": other.numpy()})[0])
    with torch.no_grad():
        torch.testing.assert_close(got, model(other), atol=1e-5, rtol=1e-5)


def test_text_transformer_refuses_texts_past_max_length():
    model = TextTransformer(VOCAB, d_model=8, nhead=2, num_layers=1, max_length=6)
    model(texts([6]))
    with pytest.raises(ValueError, match=r"max_length=6.*received 7"):
        model(texts([7]))


# --- the bag of hashed n-grams ------------------------------------------------------------------


def bag_model(name, **extra):
    """A zoo text model with a bag of 1- to 3-grams whose rows are random (they start at zero,
    which would hide any mistake in which rows a text reads)."""
    torch.manual_seed(0)
    model = build_zoo(name, (12,), vocab_size=VOCAB, num_classes=3, ngrams=3, ngram_buckets=97,
                      **{**ZOO_ARGS[name], **extra}).eval()
    with torch.no_grad():
        model.ngram_bag.table.weight.normal_()
        model.ngram_bag.importance.weight.normal_()
    return model


def reference_bag(bag, ids):
    """The bag's scores computed by hand: the n-grams of [begin] + text + [end] enumerated in
    Python, hashed with Python integers."""
    base, rows = VOCAB + 2, []
    out = []
    for row in ids.tolist():
        text = [VOCAB] + [t for t in row if t != 0] + [VOCAB + 1]
        rows = []
        for n in range(1, bag.max_n + 1):
            for start in range(len(text) - n + 1):
                h = 0
                for code in text[start:start + n]:
                    h = (h * base + code) % bag.PRIME
                mixed = ((h + n * 1_000_003) % bag.PRIME) * 2_654_435_761
                rows.append((mixed >> 16) % bag.buckets)
        table = bag.table.weight.detach()
        weight = torch.nn.functional.softplus(bag.importance.weight.detach()[rows, 0])
        scores = (table[rows] * weight[:, None]).sum(0)
        out.append(scores * bag.scale / weight.pow(2).sum().sqrt())
    return torch.stack(out)


def test_the_bag_reads_each_texts_ngrams_with_its_begin_and_end_markers():
    from netwright.models.text import NgramBag, padding_mask

    torch.manual_seed(0)
    bag = NgramBag(VOCAB, 3, max_n=3, buckets=97)
    assert torch.allclose(torch.nn.functional.softplus(bag.importance.weight), torch.ones(1),
                          atol=1e-4)  # every n-gram weighs 1 at the start
    with torch.no_grad():
        bag.table.weight.normal_()
        bag.importance.weight.normal_()
    ids = texts([9, 3, 1, 6, 2], width=11)
    got = bag(ids, padding_mask(ids, 0))
    torch.testing.assert_close(got, reference_bag(bag, ids), atol=1e-5, rtol=1e-5)
    # a text filling the whole width still gets its end marker
    full = texts([4, 4])
    torch.testing.assert_close(bag(full, padding_mask(full, 0)), reference_bag(bag, full))
    # reversed texts share their unigrams, not their bigrams: the bag tells them apart
    ab, ba = torch.tensor([[5, 7]]), torch.tensor([[7, 5]])
    assert not torch.allclose(bag(ab, ab != 0), bag(ba, ba != 0))


@pytest.mark.parametrize("name", sorted(ZOO_ARGS))
def test_the_bag_ignores_padding_is_added_to_the_network_and_exports(name, tmp_path):
    model = bag_model(name)
    check_padding_invariance(model)
    ids = texts([9, 3, 1, 6, 2])
    with torch.no_grad():
        with_bag = model(ids)
        model.ngram_bag.table.weight.zero_()
        without = model(ids)
        model.ngram_bag.table.weight.copy_(bag_model(name).ngram_bag.table.weight)
        assert not torch.allclose(with_bag, without, atol=1e-3)
    torch.testing.assert_close(with_bag - without, reference_bag(model.ngram_bag, ids),
                               atol=1e-5, rtol=1e-5)
    program = torch.export.export(model, (texts([7, 3, 5]),), dynamic_shapes=_dynamic())
    other = texts([11, 1, 4, 8, 2, 11, 6], seed=2)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(other), model(other), atol=1e-5, rtol=0)


def test_the_bag_options_are_checked_and_none_by_default():
    assert zoo_model("text_classifier").ngram_bag is None
    assert not any(k.startswith("ngram_bag") for k in zoo_model("text_cnn").state_dict())
    from netwright.errors import ModelSpecError

    for field, value in (("ngrams", -1), ("ngrams", 2.5), ("ngram_buckets", 0)):
        with pytest.raises(ModelSpecError, match=f"{field} must be .*positive integer; received"):
            build_zoo("text_transformer", (12,), vocab_size=VOCAB, **{field: value, "ngrams": 2}
                      if field == "ngram_buckets" else {field: value})
    # ids of another integer type hash as int64 ids do (int32 would wrap around)
    model = bag_model("text_cnn")
    ids = texts([9, 3, 6])
    with torch.no_grad():
        torch.testing.assert_close(model(ids.int()), model(ids))
