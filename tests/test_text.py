"""Texts end to end: reading tables and folders (with named errors), tokenizers trained on the
training split, batches padded per batch and bucketed by length, runs, prediction on raw
strings, evaluation on labelled files, and the doctor's text checks."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import netwright as nw
from netwright.data.builtin import load_languages
from netwright.data.texts import BucketBatches, TokenIds, pad_batch, read_texts
from netwright.data.tokenize import PAD, UNK, encode_texts, load_tokenizer, train_tokenizer
from netwright.errors import ConfigError, DataError


def _words(n_per_class=60, langs=("french", "german", "spanish")):
    words, labels = load_languages()
    out = []
    for lang in langs:
        out += [(w, lang) for w, lab in zip(words, labels) if lab == lang][:n_per_class]
    return out


def _write_csv(path, rows, header=("review", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


# --- reading ------------------------------------------------------------------------------


def test_tables_of_every_format_read_the_same_texts_and_labels(tmp_path):
    import pandas as pd

    rows = _words(5)
    df = pd.DataFrame(rows, columns=["review", "label"])
    _write_csv(tmp_path / "t.csv", rows)
    df.to_parquet(tmp_path / "t.parquet")
    df.to_json(tmp_path / "t.jsonl", orient="records", lines=True, force_ascii=False)
    got = [read_texts(tmp_path / f"t.{ext}", text="review", target="label")
           for ext in ("csv", "parquet", "jsonl")]
    for listed in got:
        assert listed.texts == [r[0] for r in rows]
        assert listed.classes == ["french", "german", "spanish"]
        assert listed.labels.tolist() == [listed.classes.index(r[1]) for r in rows]


def test_a_folder_of_class_folders_of_txt_files(tmp_path):
    for label, texts in {"pos": ["great film", "loved it"], "neg": ["dull", "awful plot"]}.items():
        (tmp_path / label).mkdir()
        for i, t in enumerate(texts):
            (tmp_path / label / f"{i}.txt").write_text(t, encoding="utf-8")
    listed = read_texts(tmp_path)
    assert listed.classes == ["neg", "pos"]
    assert sorted(zip(listed.texts, listed.labels.tolist())) == [
        ("awful plot", 0), ("dull", 0), ("great film", 1), ("loved it", 1)]


def test_bytes_that_are_not_utf8_are_named_by_file_and_line_or_replaced_and_counted(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"review,label\nbon,fr\ngut,de\nmal \xff\xfe,fr\n")
    with pytest.raises(DataError) as err:
        read_texts(path, text="review", target="label")
    assert "t.csv" in str(err.value) and "line 4" in str(err.value)
    assert "encoding_errors: replace" in str(err.value)
    listed = read_texts(path, text="review", target="label", encoding_errors="replace")
    assert listed.texts[2] == "mal \ufffd\ufffd"
    assert any("2 byte sequence(s) that are not UTF-8" in n for n in listed.notes)


def test_a_missing_text_column_lists_the_columns_there_are(tmp_path):
    path = _write_csv(tmp_path / "t.csv", _words(3))
    with pytest.raises(DataError) as err:
        read_texts(path, text="reveiw", target="label")
    msg = str(err.value)
    assert "data.text" in msg and "'reveiw'" in msg and "['review', 'label']" in msg
    assert "Did you mean 'review'" in msg


def test_empty_and_whitespace_texts_are_named_or_skipped_and_counted(tmp_path):
    rows = _words(4) + [("   ", "french"), ("", "german")]
    path = _write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(DataError) as err:
        read_texts(path, text="review", target="label")
    assert "t.csv row 14" in str(err.value) and "2 such" in str(err.value)
    assert "skip_bad" in str(err.value)
    listed = read_texts(path, text="review", target="label", skip_bad=True)
    assert len(listed.texts) == 12
    assert [w for w, _ in listed.skipped] == ["t.csv row 14", "t.csv row 15"]


def test_a_single_class_is_refused(tmp_path):
    path = _write_csv(tmp_path / "t.csv", [(w, "fr") for w, _ in _words(4)])
    with pytest.raises(DataError, match="at least two classes"):
        read_texts(path, text="review", target="label")


def test_a_label_the_run_never_saw_is_named(tmp_path):
    path = _write_csv(tmp_path / "t.csv", [("hola", "spanish"), ("ciao", "italian")])
    with pytest.raises(DataError) as err:
        read_texts(path, text="review", target="label", classes=["french", "spanish"])
    assert "'italian' was not seen in training" in str(err.value) and "t.csv row 3" in str(err.value)


# --- tokenizers ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "word", "char"])
def test_every_tokenizer_kind_pads_with_0_and_reloads_the_same(kind):
    texts = [w for w, _ in _words(40)]
    tok = train_tokenizer(texts, kind=kind, vocab_size=300, min_frequency=1)
    assert (tok.token_to_id("[PAD]"), tok.token_to_id("[UNK]")) == (PAD, UNK)
    again = load_tokenizer(tok.to_str(), "tokenizer.json")
    sample = ["bonjour tout le monde", "Straße", "¿qué?"]
    assert [e.ids for e in tok.encode_batch(sample)] == [e.ids for e in again.encode_batch(sample)]
    encoded = encode_texts(tok, sample, max_length=64)
    assert (encoded.ids != PAD).all()  # padding is never a token inside a text


def test_truncation_and_unknown_tokens_are_counted():
    tok = train_tokenizer(["abc", "abd"], kind="char", min_frequency=1)
    enc = encode_texts(tok, ["abcabcabc", "xyz", "ab"], max_length=4)
    assert enc.lengths.tolist() == [4, 3, 2] and enc.truncated == 1
    assert enc.unknown == 3 and enc.unknown_share() == pytest.approx(3 / 9)


# --- batches -------------------------------------------------------------------------------


def test_each_batch_is_padded_to_its_own_longest_text():
    x, y = pad_batch([(torch.tensor([4, 5]), torch.tensor(1)), (torch.tensor([6]), torch.tensor(0))])
    assert x.tolist() == [[4, 5], [6, 0]] and y.tolist() == [1, 0]
    words = [w for w, _ in _words(30)]
    tok = train_tokenizer(words, kind="char", min_frequency=1)
    ds = TokenIds(encode_texts(tok, words, 64), np.zeros(len(words), dtype=np.int64), tokenizer=tok)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=ds.collate)
    for xb, _ in loader:
        lengths = (xb != PAD).sum(1)
        assert xb.shape[1] == int(lengths.max())  # never wider than its longest text


def test_length_buckets_cover_every_text_once_with_similar_lengths_and_repeat_by_seed():
    lengths = np.random.default_rng(0).integers(1, 200, size=1000)
    sampler = BucketBatches(lengths, 32, torch.Generator().manual_seed(3))
    epoch = list(sampler)
    assert sorted(i for b in epoch for i in b) == list(range(1000))
    assert [len(b) for b in epoch] == sampler.sizes() == [32] * 31 + [8]
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in epoch[:-1]])
    shuffled = np.random.default_rng(1).permutation(1000)[:992].reshape(31, 32)
    random_spread = np.mean([lengths[b].max() - lengths[b].min() for b in shuffled])
    assert spread < random_spread / 5  # similar lengths together
    again = list(BucketBatches(lengths, 32, torch.Generator().manual_seed(3)))
    assert again == epoch
    assert list(sampler) != epoch  # the next epoch draws another order


# --- runs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A char-level GRU trained for a few epochs on a CSV of real words of three languages."""
    root = tmp_path_factory.mktemp("text")
    path = _write_csv(root / "words.csv", _words(120))
    result = nw.run({
        "name": "words", "run_dir": str(root / "runs"),
        "model": {"zoo": "text_classifier", "cell": "gru", "embed_dim": 16, "hidden_size": 32,
                  "bidirectional": True},
        "data": {"source": str(path), "text": "review", "target": "label", "max_length": 12,
                 "tokenizer": {"kind": "char", "min_frequency": 1}},
        "loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 6, "batch_size": 32}, "metrics": ["accuracy"],
        "export": {"formats": ["onnx", "pt2"]},
    }, verbose=0)
    return root, path, result


def test_a_text_run_saves_its_tokenizer_and_learns(text_run):
    root, path, result = text_run
    run_dir = result.run_dir
    assert (run_dir / "tokenizer.json").is_file()
    meta = json.loads((run_dir / "model.json").read_text())
    assert meta["classes"] == ["french", "german", "spanish"]
    assert meta["text"]["max_length"] == 12 and meta["text"]["tokenizer"]["kind"] == "char"
    tok = load_tokenizer((run_dir / "tokenizer.json").read_text(), "tokenizer.json")
    assert tok.get_vocab_size() == meta["text"]["vocab_size"]
    assert result.scores["test"]["accuracy"] > 0.6  # three languages: chance is 0.33
    exports = json.loads((run_dir / "results.json").read_text())["exports"]
    assert set(exports) == {"onnx", "pt2"} and all(e["max_abs_diff"] < 1e-4 for e in exports.values())
    verify = json.loads((run_dir / "exports" / "verify.json").read_text())
    assert verify["inputs"][0]["shape"] == ["batch", "sequence"]


def test_the_tokenizer_is_trained_on_the_training_split_only(tmp_path):
    rows = [("aaa", "x"), ("aab", "x"), ("bbb", "y"), ("bba", "y")] * 5 + [("zzz", "x")]
    path = _write_csv(tmp_path / "t.csv", rows)
    from netwright.config import DataConfig
    from netwright.data.prepare import prepare_data

    data = prepare_data(DataConfig(source=str(path), text="review", target="label", val=0.0,
                                   test=0.25, tokenizer={"kind": "char", "min_frequency": 1}),
                        "multiclass")
    train_texts = set(data.train.texts)
    vocab = set(data.tokenizer.get_vocab()) - {"[PAD]", "[UNK]"}
    assert vocab == set("".join(train_texts))
    if "zzz" not in train_texts:  # held out: its letter is unknown to the tokenizer
        assert "z" not in vocab


def test_predict_on_raw_strings_files_and_the_cli(text_run, tmp_path):
    from typer.testing import CliRunner

    from netwright.cli import app

    root, path, result = text_run
    words = ["bonjour", "straße", "gracias"]
    rows = nw.predict(result.run_dir, words)
    assert [r["text"] for r in rows] == words
    assert set(rows[0]) == {"text", "label", "p_french", "p_german", "p_spanish"}
    assert all(abs(sum(v for k, v in r.items() if k.startswith("p_")) - 1) < 1e-4 for r in rows)
    assert all(r["label"] in ("french", "german", "spanish") for r in rows)
    (tmp_path / "t.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    _write_csv(tmp_path / "t.csv", [(w, "") for w in words])
    runner = CliRunner()
    for name in ("t.txt", "t.csv"):
        out = tmp_path / f"{name}.predictions.csv"
        res = runner.invoke(app, ["predict", str(result.run_dir), str(tmp_path / name), "--out", str(out)])
        assert res.exit_code == 0, res.output
        got = list(csv.DictReader(out.open()))
        assert [g["text"] for g in got] == words
        assert [g["label"] for g in got] == [r["label"] for r in rows]
    onnx = runner.invoke(app, ["predict", str(result.run_dir), str(tmp_path / "t.txt"), "--onnx"])
    assert onnx.exit_code == 0, onnx.output
    lines = list(csv.DictReader(onnx.output.splitlines()))
    assert [g["label"] for g in lines] == [r["label"] for r in rows]
    for g, r in zip(lines, rows):
        assert abs(float(g["p_french"]) - r["p_french"]) < 1e-4
    (tmp_path / "blank.txt").write_text("bonjour\n\nhola\n", encoding="utf-8")
    res = runner.invoke(app, ["predict", str(result.run_dir), str(tmp_path / "blank.txt")])
    assert res.exit_code != 0 and "blank.txt line 2" in res.output


def test_evaluate_on_a_labelled_file_and_a_label_never_seen(text_run, tmp_path):
    from netwright.runner import open_run

    root, path, result = text_run
    loaded = open_run(result.run_dir)
    scores, n = loaded.evaluate_on(path=path)
    assert n == 360 and 0 <= scores["accuracy"] <= 1
    bad = _write_csv(tmp_path / "bad.csv", [("hola", "spanish"), ("ciao", "italian")])
    with pytest.raises(DataError, match="'italian' was not seen in training"):
        loaded.evaluate_on(path=bad)


def test_long_texts_are_cut_and_counted_at_predict(text_run):
    from netwright.runner import open_run

    loaded = open_run(text_run[2].run_dir)
    rows = nw.predict(loaded, ["a" * 40, "hola"])
    assert len(rows) == 2 and loaded.notes == ["1 text(s) longer than 12 tokens were cut to it"]


def test_nw_texts_and_fit_from_python():
    pairs = _words(80, ("german", "italian"))
    train = nw.texts([w for w, _ in pairs], [lab for _, lab in pairs], tokenizer={"kind": "char", "min_frequency": 1})
    model = nw.build_zoo("text_cnn", vocab_size=train.vocab_size, num_classes=2, embed_dim=16, channels=16)
    result = nw.fit(model, train, loss="cross_entropy", epochs=8, batch_size=16, lr=0.01, verbose=0,
                    metrics=["accuracy"])
    assert result.history[-1]["train_accuracy"] > 0.8
    val = nw.texts(["bellissimo", "wunderbar"], ["italian", "german"], tokenizer=train.tokenizer,
                   classes=train.classes)
    assert val.targets.tolist() == [1, 0] and val.vocab_size == train.vocab_size


# --- the doctor ----------------------------------------------------------------------------


def test_the_doctor_names_padding_mistakes_and_a_collapsed_vocabulary():
    model = nw.build_zoo("text_classifier", vocab_size=50, num_classes=2)
    y = torch.tensor([0, 1, 0])
    right = torch.tensor([[5, 6, 7], [8, 9, 0], [4, 0, 0]])
    assert not any(f.code.startswith("NW21") or f.code == "NW307"
                   for f in nw.doctor(model, (right, y), loss="cross_entropy"))
    left = torch.tensor([[5, 6, 7], [0, 8, 9], [0, 0, 4]])
    report = nw.doctor(model, (left, y), loss="cross_entropy")
    assert "NW213" in report.codes and "left padding" in str(report)
    column = right[:, :, None]
    assert "NW213" in nw.doctor(model, (column, y), loss="cross_entropy").codes
    other_pad = nw.build_zoo("text_classifier", vocab_size=50, num_classes=2, padding_idx=3)
    assert "NW212" in nw.doctor(other_pad, (right, y), loss="cross_entropy").codes
    unknown = torch.tensor([[1, 1, 7], [1, 1, 0], [1, 0, 0]])
    report = nw.doctor(model, (unknown, y), loss="cross_entropy")
    assert "NW307" in report.codes and "83.33% of the first batch's tokens" in report[0].message


def test_config_errors_name_the_field(tmp_path):
    path = _write_csv(tmp_path / "t.csv", _words(4))
    base = {"model": {"zoo": "text_classifier"}, "loss": "cross_entropy"}
    with pytest.raises(DataError, match="if 'review' holds texts, set data.text: review"):
        nw.run({**base, "data": {"source": str(path), "target": "label"}}, verbose=0)
    with pytest.raises(ConfigError, match="tokenizer.kind"):
        nw.run({**base, "data": {"source": str(path), "text": "review", "target": "label",
                                 "tokenizer": {"kind": "sentencepiece"}}}, verbose=0)
    with pytest.raises(ConfigError, match="data.image_size: not used for texts"):
        nw.run({**base, "data": {"source": str(path), "text": "review", "target": "label",
                                 "image_size": 28}}, verbose=0)
    with pytest.raises(ConfigError, match="regression loss"):
        nw.run({**base, "loss": "mse", "data": {"source": str(path), "text": "review",
                                                 "target": "label"}}, verbose=0)


def test_the_report_shows_the_mistaken_texts(text_run):
    import re

    result = text_run[2]
    html = (result.run_dir / "report.html").read_text()
    table = html[html.index('<table id="mistakes">'):]
    table = table[:table.index("</table>")]
    assert '<th class="l">text</th>' in table and '<th class="l">features</th>' not in table
    rows = re.findall(r'<tr><td class="l">(\d+)</td><td class="l">(\w+)</td><td class="l">(\w+)</td>'
                      r'<td>[\d.]+</td><td class="l">([^<]+)</td></tr>', table)
    assert rows, table
    test_texts = result.data.test.texts
    for index, true, predicted, text in rows:
        assert test_texts[int(index)] == text and true != predicted


def test_the_summary_of_a_text_model_counts_a_full_length_text():
    model = nw.build_zoo("text_classifier", (20,), vocab_size=62, num_classes=10, cell="gru",
                         bidirectional=True, hidden_size=8, embed_dim=4)
    s = nw.summary(model)
    rnn = next(r for r in s.rows if r.name == "rnn")
    assert rnn.output_shape[0] == "packed (20, 16)"  # 20 real steps, not one step of padding
    short = nw.summary(nw.build_zoo("text_classifier", (10,), vocab_size=62, num_classes=10,
                                    cell="gru", bidirectional=True, hidden_size=8, embed_dim=4))
    assert next(r for r in short.rows if r.name == "rnn").flops * 2 == rnn.flops


def test_an_interrupted_text_run_resumes_bitwise_through_the_length_buckets(tmp_path):
    from netwright.checkpoint import load_weights_file

    pairs = _words(40, ("german", "italian"))
    data = nw.texts([w for w, _ in pairs], [lab for _, lab in pairs],
                    tokenizer={"kind": "char", "min_frequency": 1})

    class Stop(nw.Callback):
        def on_batch_end(self, epoch, batch, loss):
            if (epoch, batch) == (2, 2):
                raise KeyboardInterrupt

    def fit(run_dir, **kw):
        torch.manual_seed(0)
        model = nw.build_zoo("text_classifier", vocab_size=data.vocab_size, num_classes=2,
                             cell="gru", embed_dim=8, hidden_size=8)
        return nw.fit(model, data, loss="cross_entropy", epochs=4, batch_size=16, lr=0.01,
                      run_dir=run_dir, verbose=0, seed=5, checkpoint_every=1, **kw)

    fit(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "cut", callbacks=[Stop()])
    fit(tmp_path / "cut", resume=True)
    a = load_weights_file(tmp_path / "whole" / "weights.safetensors")
    b = load_weights_file(tmp_path / "cut" / "weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- the review's cases ----------------------------------------------------------------------


def test_a_literal_special_token_in_a_text_is_text_not_padding(text_run):
    tok = train_tokenizer(["hello world", "pad"], kind="word", min_frequency=1)
    ids = encode_texts(tok, ["hello [PAD] world [UNK]"], 16).row(0).tolist()
    assert PAD not in ids and len(ids) == 8  # hello [ pad ] world [ unk ]: never id 0
    again = load_tokenizer(tok.to_str(), "tokenizer.json")  # set again on every load
    assert encode_texts(again, ["hello [PAD] world [UNK]"], 16).row(0).tolist() == ids


def test_drop_last_drops_random_texts_not_the_longest(tmp_path):
    lengths = np.arange(100)
    dropped = []
    for seed in range(4):
        kept = {i for b in BucketBatches(lengths, 8, torch.Generator().manual_seed(seed), drop_last=True)
                for i in b}
        assert len(kept) == 96
        dropped.append(frozenset(set(range(100)) - kept))
    assert len(set(dropped)) > 1 and any(max(d) < 96 for d in dropped)


def test_empty_inputs_and_file_names_are_explained(tmp_path):
    (tmp_path / "head.csv").write_text("review,label\n", encoding="utf-8")
    with pytest.raises(DataError, match="no texts to read"):
        read_texts(tmp_path / "head.csv", text="review", target="label")
    (tmp_path / "lines.json").write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 2}\n')
    with pytest.raises(DataError, match="name the file .jsonl"):
        read_texts(tmp_path / "lines.json", text="text", target="label")
    for label, name in (("pos", "A.TXT"), ("neg", "b.txt")):
        (tmp_path / "upper" / label).mkdir(parents=True)
        (tmp_path / "upper" / label / name).write_text("some words", encoding="utf-8")
    assert sorted(read_texts(tmp_path / "upper").classes) == ["neg", "pos"]
    numbers = _write_csv(tmp_path / "n.csv", [("a", "10"), ("b", "2"), ("c", "2")])
    assert read_texts(numbers, text="review", target="label").classes == [2, 10]


def test_predict_reads_lines_and_strings_as_a_user_means_them(text_run, tmp_path):
    from netwright.data.tokenize import texts_to_predict

    path = tmp_path / "w.txt"
    path.write_bytes("bonjour\r\nfeed\x0cline\r\nhola\r\n".encode())
    values, where = texts_to_predict(path)
    assert values == ["bonjour", "feed\x0cline", "hola"] and where[2] == "w.txt line 3"
    assert texts_to_predict("see the notes.txt")[0] == ["see the notes.txt"]  # a sentence
    with pytest.raises(DataError, match="does not exist"):
        texts_to_predict("missing.txt")
    run = text_run[2].run_dir
    sub = torch.utils.data.Subset(nw.texts(["ab", "abc", "a"], [0, 1, 0],
                                           tokenizer={"kind": "char", "min_frequency": 1}), [0, 1])
    from netwright.data.batches import make_batches
    from netwright.data.sources import DatasetSource

    x, _ = next(iter(make_batches(DatasetSource(sub), batch_size=2, shuffle=False,
                                  device=torch.device("cpu"), generator=None)))
    assert x.shape == (2, 3)  # padded per batch through the Subset
    assert len(nw.predict(run, "bonjour")) == 1


def test_a_finished_run_remakes_its_splits_with_its_own_tokenizer(text_run, monkeypatch):
    import netwright.data.texts as texts_module
    from netwright.runner import open_run

    def refuse(*args, **kwargs):
        raise AssertionError("a new tokenizer was trained")

    monkeypatch.setattr(texts_module, "train_tokenizer", refuse)
    data = open_run(text_run[2].run_dir).data()
    assert data.test.texts == text_run[2].data.test.texts
    assert torch.equal(data.test.ids, text_run[2].data.test.ids)


def test_validation_texts_keep_the_training_class_ids():
    train = nw.texts(["aa", "bb", "cc", "ab"], ["neg", "neu", "pos", "neg"],
                     tokenizer={"kind": "char", "min_frequency": 1})
    val = nw.texts(["ac", "ba"], ["pos", "neg"], tokenizer=train)
    assert val.classes == ["neg", "neu", "pos"] and val.targets.tolist() == [2, 0]
    assert val.tokenizer is train.tokenizer


def test_a_transformer_shorter_than_the_texts_is_refused(tmp_path):
    path = _write_csv(tmp_path / "t.csv", _words(10))
    with pytest.raises(ConfigError, match="model.max_length: 8 positions, but data.max_length"):
        nw.run({"model": {"zoo": "text_transformer", "max_length": 8}, "loss": "cross_entropy",
                "data": {"source": str(path), "text": "review", "target": "label", "max_length": 16,
                         "tokenizer": {"kind": "char", "min_frequency": 1}},
                "run_dir": str(tmp_path / "runs")}, verbose=0)


def test_datasets_show_prints_training_texts_as_tokens(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from netwright.cli import app

    path = _write_csv(tmp_path / "t.csv", _words(20))
    config = tmp_path / "t.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"zoo": "text_classifier"}, "loss": "cross_entropy",
        "data": {"source": str(path), "text": "review", "target": "label", "max_length": 6,
                 "tokenizer": {"kind": "char", "min_frequency": 1}}}))
    res = CliRunner().invoke(app, ["datasets", "show", str(config), "--count", "4"],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines() if line.startswith("│")]
    assert len(rows) == 4
    words = {w for w, _ in _words(20)}
    for line in rows:
        label, text, tokens, n = [c.strip() for c in line.strip("│").split("│")]
        assert text in words and label in ("french", "german", "spanish")
        assert tokens.split() == list(text)[:6] and int(n) == min(6, len(text))
