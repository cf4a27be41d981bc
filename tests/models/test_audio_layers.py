"""Audio feature layers (netwright.models.audio) against librosa, their shapes, devices, dtypes
and errors; SpecAugment; the builder's audio layer names; the audio zoo models and their export.

Tolerances (float32 layers vs librosa's float64): the mel filter bank within 1e-6 absolute; mel
power within 1e-4 relative wherever librosa's value is above 1e-6 of its maximum (measured:
below 1e-5); log-mel within 0.01 dB (measured: below 1e-4 dB); MFCCs within 0.01 (measured:
below 1e-4, on coefficients up to ~130)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from netwright.errors import ModelSpecError
from netwright.models import build, build_zoo, rebuild, spec_of
from netwright.models.audio import (MFCC, M5, AmplitudeToDB, AudioCNN, LogMel, MelSpectrogram,
                                    SpecAugment, dct_matrix, mel_filters)

librosa = pytest.importorskip("librosa")

MEL_RTOL, DB_ATOL, MFCC_ATOL, FB_ATOL = 1e-4, 0.01, 0.01, 1e-6
CASES = [(sr, scale) for sr in (16000, 22050) for scale in ("slaney", "htk")]


def signal(sr: int, seconds: float = 0.75, seed: int = 0) -> np.ndarray:
    """A rising chirp, a tone that stops halfway, a click and some noise: energy in every band,
    silence-like stretches, and a sharp onset (librosa.ex needs a download)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    y = (0.5 * np.sin(2 * np.pi * (100 * t + 3000 * t**2))
         + 0.3 * np.sin(2 * np.pi * 440 * t) * (t < seconds / 2)
         + 0.02 * rng.standard_normal(t.size))
    y[len(y) // 3] += 1.0
    return y.astype(np.float32)


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    mask = want > 1e-6 * want.max()
    return float((np.abs(got - want)[mask] / want[mask]).max())


@pytest.mark.parametrize("norm", ["slaney", None])
@pytest.mark.parametrize("sr, scale", CASES)
def test_mel_filters_match_librosa(sr, scale, norm):
    for n_fft, n_mels, fmin, fmax in [(512, 40, 0.0, None), (1024, 64, 30.0, sr / 2 - 500)]:
        want = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                                   htk=scale == "htk", norm=norm).T
        got = mel_filters(n_fft // 2 + 1, n_mels, sr, fmin, fmax, norm=norm, mel_scale=scale)
        assert got.dtype == torch.float32 and got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=FB_ATOL)


@pytest.mark.parametrize("sr, scale", CASES)
def test_features_match_librosa(sr, scale):
    y = signal(sr)
    kw = dict(n_fft=512, hop_length=128, n_mels=40, htk=scale == "htk", pad_mode="reflect")
    args = dict(n_fft=512, hop_length=128, n_mels=40, mel_scale=scale)
    power = librosa.feature.melspectrogram(y=y, sr=sr, **kw)
    with torch.no_grad():
        got = MelSpectrogram(sr, **args)(torch.from_numpy(y)).numpy()
        db = LogMel(sr, **args)(torch.from_numpy(y)).numpy()
        mfcc = MFCC(sr, n_mfcc=20, **args)(torch.from_numpy(y)).numpy()
    assert got.shape == power.shape == (40, 1 + len(y) // 128)
    assert rel_err(got, power) <= MEL_RTOL
    np.testing.assert_allclose(db, librosa.power_to_db(power, ref=1.0, top_db=80.0), rtol=0, atol=DB_ATOL)
    want = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, **kw)
    np.testing.assert_allclose(mfcc, want, rtol=0, atol=MFCC_ATOL)


def test_other_stft_settings_match_librosa():
    sr, y = 16000, signal(16000, seconds=0.3)
    for kw in [dict(win_length=400, hop_length=160, center=True, pad_mode="constant"),
               dict(win_length=None, hop_length=100, center=False, pad_mode="reflect")]:
        power = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, n_mels=32, fmin=50.0,
                                               fmax=7000.0, power=1.0, **kw)
        layer = MelSpectrogram(sr, n_fft=512, n_mels=32, f_min=50.0, f_max=7000.0, power=1.0, **kw)
        with torch.no_grad():
            assert rel_err(layer(torch.from_numpy(y)).numpy(), power) <= MEL_RTOL
    magnitude = np.abs(librosa.stft(y, n_fft=256))
    want = librosa.amplitude_to_db(magnitude, ref=1.0, amin=1e-5, top_db=60.0)
    got = AmplitudeToDB("magnitude", top_db=60.0, amin=1e-5)(torch.from_numpy(magnitude))
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=DB_ATOL)


def test_float64_matches_librosa_closely():
    y = signal(16000).astype(np.float64)
    layer = MelSpectrogram(16000, hop_length=128).double()
    assert layer.filters.dtype == layer.window.dtype == torch.float64
    got = layer(torch.from_numpy(y))
    assert got.dtype == torch.float64
    want = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=128, n_mels=40,
                                          pad_mode="reflect")
    # the buffers were made in float32 (window and filters rounded), so no closer than that
    assert rel_err(got.numpy(), want) <= MEL_RTOL


def test_dct_matrix_is_scipys_orthonormal_dct():
    scipy_fft = pytest.importorskip("scipy.fft")
    x = np.random.default_rng(0).standard_normal((40, 7))
    want = scipy_fft.dct(x, type=2, norm="ortho", axis=0)[:13]
    np.testing.assert_allclose((dct_matrix(13, 40).double() @ torch.from_numpy(x)).numpy(), want,
                               atol=1e-6)


# --- the DFT path -------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [{}, {"win_length": 400, "hop_length": 160},
                                {"center": False, "power": 1.0}, {"pad_mode": "constant"}])
def test_the_dft_path_computes_the_same_spectrogram(kw):
    layer = MelSpectrogram(16000, **kw)
    x = torch.from_numpy(np.stack([signal(16000, 0.5, seed) for seed in (0, 1)]))[:, None]
    with torch.no_grad():
        stft = layer(x)
        layer.stft_path = "dft"
        dft = layer(x)
    assert dft.shape == stft.shape
    assert rel_err(dft.numpy(), stft.numpy()) <= 1e-4
    assert layer.stft_path == "dft" and MelSpectrogram().stft_path == "stft"


# --- shapes, devices, dtypes --------------------------------------------------------------------


def test_shapes_for_conv1d_and_conv2d_inputs():
    for length in (257, 512, 8000, 8001):
        frames = 1 + length // 160
        assert LogMel(hop_length=160)(torch.randn(3, length)).shape == (3, 40, frames)
        assert LogMel(hop_length=160)(torch.randn(3, 1, length)).shape == (3, 1, 40, frames)
    assert MFCC(n_mfcc=13)(torch.randn(2, 4000)).shape == (2, 13, 32)
    assert MelSpectrogram(center=False, hop_length=100)(torch.randn(2, 1, 1012)).shape == (2, 1, 40, 6)
    assert AmplitudeToDB()(torch.rand(2, 1, 40, 7)).shape == (2, 1, 40, 7)


def test_buffers_move_with_the_model_and_are_not_in_the_state_dict():
    layer = MFCC()
    assert layer.state_dict() == {}  # the arguments rebuild them exactly
    meta = layer.to("meta")
    assert {b.device.type for b in meta.buffers()} == {"meta"}
    assert meta(torch.zeros(2, 1, 4000, device="meta")).shape == (2, 1, 13, 32)
    if torch.cuda.is_available():  # pragma: no cover - a machine with a GPU
        gpu = LogMel().cuda()
        x = torch.randn(2, 8000)
        torch.testing.assert_close(gpu(x.cuda()).cpu(), LogMel()(x), atol=1e-3, rtol=1e-4)


def test_top_db_clamps_each_item_against_its_own_peak():
    loud, quiet = torch.rand(1, 20, 30) * 1e3, torch.rand(1, 20, 30) * 1e-9
    quiet[0, 0, 0] = 0.0  # far below quiet's peak
    layer = AmplitudeToDB(top_db=30.0)
    both = layer(torch.cat([loud, quiet]))
    assert torch.equal(both[1:], layer(quiet)) and torch.equal(both[:1], layer(loud))
    assert both[1].min() >= both[1].max() - 30.0 - 1e-4
    assert both[1].max() < -80  # not clamped up to 30 dB below the loud item's peak


# --- SpecAugment --------------------------------------------------------------------------------


def test_spec_augment_masks_in_training_and_is_the_identity_in_eval():
    aug = SpecAugment(freq_masks=2, freq_width=8, time_masks=2, time_width=10)
    x = torch.randn(16, 1, 40, 60) + 5.0
    assert torch.equal(aug.eval()(x), x)
    aug.train()
    torch.manual_seed(0)
    out = aug(x)
    assert out.shape == x.shape and not torch.equal(out, x)
    changed = out != x
    fill = x.mean(dim=(-2, -1), keepdim=True).expand_as(x)
    assert torch.equal(out[changed], fill[changed])  # masked with the item's own mean
    # each mask covers whole rows (frequency bands) or whole columns (frames)
    for item in changed[:, 0]:
        rows, cols = item.all(1), item.all(0)
        assert torch.equal(item, rows[:, None] | cols[None, :])
        assert rows.sum() <= 16 and cols.sum() <= 20
    assert len({tuple(c.flatten().tolist()) for c in changed}) > 1  # each item its own masks
    torch.manual_seed(0)
    assert torch.equal(aug(x), out)  # seeded runs repeat
    assert torch.equal(SpecAugment(0, 8, 0, 10)(x), x)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("make, fragments", [
    (lambda: MelSpectrogram(n_fft=512, n_mels=300), ["n_mels", "at most n_fft // 2 + 1 = 257", "300"]),
    (lambda: MelSpectrogram(16000, f_max=9000), ["f_max", "sample_rate / 2 = 8000", "9000"]),
    (lambda: MelSpectrogram(hop_length=0), ["hop_length", ">= 1", "hop_length=0"]),
    (lambda: MelSpectrogram(n_fft=256, win_length=400), ["win_length", "at most n_fft=256", "400"]),
    (lambda: MelSpectrogram(sample_rate=-1), ["sample_rate", "positive", "-1"]),
    (lambda: MelSpectrogram(f_min=100, f_max=50), ["f_min", "[0, f_max=50)", "100"]),
    (lambda: MelSpectrogram(pad_mode="zeros"), ["pad_mode", "'reflect'", "'zeros'"]),
    (lambda: MelSpectrogram(mel_scale="mel"), ["mel_scale", "'htk'", "'mel'"]),
    (lambda: MelSpectrogram(norm="l2"), ["norm", "'slaney' or None", "'l2'"]),
    (lambda: LogMel(top_db=-1), ["top_db", "non-negative", "-1"]),
    (lambda: MFCC(n_mfcc=50, n_mels=40), ["n_mfcc", "at most n_mels=40", "50"]),
    (lambda: AmplitudeToDB("energy"), ["stype", "'magnitude'", "'energy'"]),
    (lambda: SpecAugment(freq_width=-1), ["freq_width", ">= 0", "-1"]),
    (lambda: MelSpectrogram()(torch.randn(2, 256)), ["more than n_fft // 2 = 256", "received 256",
                                                    "pad_mode='constant'"]),
    (lambda: MelSpectrogram(center=False)(torch.randn(2, 500)), ["at least n_fft = 512", "500"]),
    (lambda: MelSpectrogram()(torch.ones(2, 1000, dtype=torch.int64)), ["float waveforms", "int64"]),
])
def test_bad_arguments_name_the_argument_the_expectation_and_the_value(make, fragments):
    with pytest.raises(ValueError) as info:
        make()
    for fragment in fragments:
        assert fragment in str(info.value)


# --- the builder's layer names ------------------------------------------------------------------


def test_a_spec_of_audio_layer_names_builds_and_rebuilds():
    spec = [{"log_mel": {"n_mels": 40, "hop_length": 160}}, {"spec_augment": [1, 4, 1, 5]},
            {"conv2d": [8, 3]}, "relu", {"maxpool2d": 2}, {"adaptive_avgpool2d": 1}, "flatten",
            {"linear": 3}]
    model = build(spec, (1, 16000))
    assert isinstance(model[0], LogMel) and model[0].sample_rate == 16000
    assert model[2].in_channels == 1 and model[1].time_width == 5
    x = torch.randn(2, 1, 16000)
    assert model(x).shape == (2, 3)
    again = rebuild(json.loads(json.dumps(spec_of(model))))
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.eval()(x), model.eval()(x))
    conv1d = build([{"mfcc": 13}, {"conv1d": [4, 3]}], (8000,))  # hop 512 // 4: 63 frames
    assert conv1d[1].in_channels == 13 and conv1d(torch.randn(2, 8000)).shape == (2, 4, 61)
    db = build([{"mel_spectrogram": 32}, {"amplitude_to_db": "power"}], (4000,))
    assert db(torch.rand(2, 4000)).shape == (2, 32, 32)


def test_audio_layer_names_give_the_builders_errors():
    with pytest.raises(ModelSpecError, match=r"'log_mel' expects input of shape \(N, L\) or \(N, C, L\)"):
        build([{"log_mel": 40}], (2, 1, 16000))
    with pytest.raises(ModelSpecError, match="n_mels must be at most n_fft // 2 \\+ 1 = 257"):
        build([{"log_mel": 300}], (1, 16000))
    with pytest.raises(ModelSpecError, match="'spec_augment' expects input of shape"):
        build(["spec_augment"], (16000,))


# --- the zoo's audio models ---------------------------------------------------------------------


def test_audio_models_record_what_they_expect_of_the_data():
    cnn = build_zoo("audio_cnn", (1, 8000), sample_rate=8000, channels=[4, 8])
    assert isinstance(cnn, AudioCNN) and (cnn.sample_rate, cnn.num_samples) == (8000, 8000)
    assert cnn.features.sample_rate == 8000
    m5 = build_zoo("m5", (8000,), channels=4)
    assert isinstance(m5, M5) and (m5.sample_rate, m5.num_samples) == (16000, 8000)
    assert build_zoo("m5", channels=4).num_samples is None
    loaded = rebuild(json.loads(json.dumps(spec_of(cnn))))
    assert (loaded.sample_rate, loaded.num_samples) == (8000, 8000)


def test_audio_cnn_reads_any_length_from_n_fft_up():
    model = build_zoo("audio_cnn", (1, 512), channels=[4, 8, 8, 8]).eval()
    for length in (512, 1000, 16000):
        assert model(torch.randn(2, 1, length)).shape == (2, 2)
        assert model(torch.randn(2, length)).shape == (2, 2)


@pytest.mark.parametrize("name, shape, args, fragments", [
    ("audio_cnn", (2, 8000), {}, ["mono waveforms (1, L) or (L,)", "(2, 8000)"]),
    ("audio_cnn", (1, 300), {}, ["300 samples", "n_fft=512"]),
    ("audio_cnn", (1, 8000), {"n_mels": 400}, ["n_mels must be at most", "400"]),
    ("audio_cnn", (1, 8000), {"sample_rate": 8000, "n_mels": 40, "dropout": 1.5}, ["dropout", "1.5"]),
    ("m5", (1, 4000), {}, ["4000 samples", "at least 6848"]),
    ("m5", (1, 8000), {"stride": 0}, ["stride", "0"]),
])
def test_audio_zoo_argument_errors(name, shape, args, fragments):
    with pytest.raises(ModelSpecError) as info:
        build_zoo(name, shape, **args)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_m5_refuses_too_short_a_waveform_clearly():
    with pytest.raises(ValueError, match="at least 6848 samples; received 5000"):
        build_zoo("m5", channels=4)(torch.randn(2, 1, 5000))


# --- export -------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:`torch.jit.* is deprecated")
@pytest.mark.parametrize("name, args", [("audio_cnn", {"channels": [4, 8], "n_mels": 16}),
                                        ("m5", {"channels": 4})])
def test_audio_models_export_to_every_format_with_the_spectrogram_inside(name, args, tmp_path):
    from netwright.exporting import export_all

    formats = ["pt2", "torchscript"]
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
        formats.insert(0, "onnx")
    except ImportError:
        pass
    torch.manual_seed(0)
    model = build_zoo(name, (1, 8000), **args)
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)  # no trace fallback: scripted
        reports = export_all(model, tmp_path / "exports", formats, latency_batches=())
    for fmt, report in reports.items():
        assert report.verified and report.max_abs_diff < 1e-4, (fmt, report)
        assert report.other_batch not in (None, 2)  # the batch is dynamic
    assert reports["torchscript"].method == "torch.jit.script"
    saved = json.loads((tmp_path / "exports" / "verify.json").read_text())
    assert saved["inputs"][0]["shape"] == ["batch", 1, 8000]
    if "onnx" in reports:
        import onnx

        ops = {n.op_type for n in onnx.load(str(reports["onnx"].path)).graph.node}
        assert name != "audio_cnn" or "STFT" in ops  # the spectrogram is in the graph


def test_the_dft_path_exports_to_onnx_without_an_stft_operator(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnx

    from netwright.exporting import export

    torch.manual_seed(0)
    model = build([{"log_mel": {"n_mels": 16, "hop_length": 160}}, {"conv2d": [4, 3]},
                   {"adaptive_avgpool2d": 1}, "flatten"], (1, 4000))
    model[0].stft_path = "dft"
    report = export(model, tmp_path / "m.onnx", latency_batches=())
    assert report.verified and report.max_abs_diff < 1e-3
    assert "STFT" not in {n.op_type for n in onnx.load(str(report.path)).graph.node}
