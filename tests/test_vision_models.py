"""Vision models: torchvision classifiers for grey and RGBA images, pretrained weights from a
local file (never a download), fine-tuning a pretrained model's head first, channels-last."""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

import netwright as nw
from netwright.checkpoint.pretrained import load_pretrained
from netwright.errors import CheckpointError, ConfigError, ModelSpecError
from netwright.models.scaling import Scaled
from netwright.models.vision import adapt_input_channels, head_module_names
from netwright.optim import build_optimizer, param_groups
from netwright.training.finetune import plan_finetune

tvm = pytest.importorskip("torchvision.models")


# --- grey and RGBA input ------------------------------------------------------------------------


def test_a_grey_torchvision_model_is_built_and_round_trips_through_save_and_load(tmp_path):
    torch.manual_seed(0)
    spec = {"torchvision": "resnet18", "args": {"num_classes": 10}, "in_channels": 1}
    model = nw.build(spec, input_shape=(1, 32, 32)).eval()
    assert model.conv1.in_channels == 1
    assert (model.conv1.out_channels, model.conv1.kernel_size, model.conv1.stride,
            model.conv1.padding, model.conv1.bias) == (64, (7, 7), (2, 2), (3, 3), None)
    x = torch.randn(2, 1, 32, 32)
    assert model(x).shape == (2, 10)

    folder = nw.save(model, tmp_path / "grey")
    assert json.loads((folder / "model.json").read_text())["model"]["spec"] == spec
    loaded = nw.load(folder).eval()
    assert repr(loaded) == repr(model)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_an_rgba_model_reads_four_channels_and_three_stays_unchanged():
    rgba = nw.build({"torchvision": "mobilenet_v3_small", "args": {"num_classes": 3},
                     "in_channels": 4})
    assert rgba.features[0][0].in_channels == 4
    assert rgba(torch.randn(2, 4, 32, 32)).shape == (2, 3)
    rgb = nw.build({"torchvision": "resnet18", "in_channels": 3})
    assert repr(rgb) == repr(tvm.resnet18())


@pytest.mark.parametrize("value", [0, -1, "1", 1.0, True])
def test_in_channels_must_be_a_positive_whole_number(value):
    with pytest.raises(ModelSpecError, match=r"'in_channels': expected a positive whole number.*"
                                             r"Fix: e\.g\. 'in_channels': 1"):
        nw.build({"torchvision": "resnet18", "in_channels": value})


def test_a_stem_that_cannot_be_adapted_is_a_clear_error():
    grouped = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.Flatten())
    with pytest.raises(ModelSpecError, match=r"model: the first convolution '0'.*grouped "
                                             r"\(groups=2\).*Fix: drop 'in_channels'"):
        adapt_input_channels(grouped, 1)
    with pytest.raises(ModelSpecError, match=r"has no Conv2d"):
        adapt_input_channels(nn.Sequential(nn.Linear(3, 2)), 1)


def test_a_sequential_whose_children_read_as_a_torchvision_block_is_not_described(tmp_path):
    # model.json would say {"torchvision": ..., "in_channels": ...}, which the builder reads as
    # a torchvision model, not as two children.
    net = nn.Sequential(OrderedDict(torchvision=nn.Linear(2, 2), in_channels=nn.Linear(2, 2)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nw.save(net, tmp_path / "m")
    assert any("read as a 'torchvision' block" in str(w.message) for w in caught)


def test_the_head_is_found_in_torchvision_models_layer_specs_and_wrapped_models():
    assert head_module_names(tvm.resnet18(num_classes=3)) == ["fc"]
    assert head_module_names(tvm.mobilenet_v3_small(num_classes=3)) == ["classifier.3"]
    assert head_module_names(tvm.vgg11(num_classes=3)) == ["classifier.6"]
    spec = nw.build([{"conv2d": [4, 3]}, "relu", "flatten", {"linear": 5}, "softmax"], (1, 8, 8))
    assert head_module_names(spec) == ["3"]
    wrapped = Scaled(tvm.resnet18(num_classes=2), x_shape=(1, 1, 1), y_shape=None)
    assert head_module_names(wrapped) == ["net.fc"]
    two = nw.build([{"linear": 8},
                    {"heads": {"label": {"linear": 3}, "box": [{"linear": 4}, "relu"]}}], (5,))
    assert head_module_names(two) == ["1.label", "1.box.0"]


# --- pretrained weights from a local file ------------------------------------------------------


@pytest.fixture(scope="module")
def imagenet_resnet(tmp_path_factory):
    """A 1000-class resnet18 (stands in for ImageNet weights: random, with moved BN statistics)
    saved as torchvision publishes it (.pth, a plain state_dict) and as safetensors."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = tvm.resnet18()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    folder = tmp_path_factory.mktemp("weights")
    torch.save(model.state_dict(), folder / "resnet18.pth")
    save_file(model.state_dict(), str(folder / "resnet18.safetensors"))
    return model.eval(), folder


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_grey_model_loads_rgb_weights_summed_over_the_colour_channels(imagenet_resnet, suffix):
    rgb, folder = imagenet_resnet
    torch.manual_seed(1)
    grey = nw.build({"torchvision": "resnet18", "args": {"num_classes": 10}, "in_channels": 1})
    head_before = grey.fc.weight.detach().clone()
    report = load_pretrained(grey, folder / f"resnet18{suffix}")
    assert report["loaded"] == len(grey.state_dict()) - 2
    assert set(report["left"]) == {"fc.weight", "fc.bias"}
    assert "new classifier head" in report["left"]["fc.weight"]
    assert list(report["adapted"]) == ["conv1.weight"]
    assert torch.equal(grey.fc.weight, head_before)
    assert torch.equal(grey.bn1.running_mean, rgb.bn1.running_mean)
    assert torch.equal(grey.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)
    # conv(x repeated to RGB, W) == conv(x, W summed over its input channels)
    grey.fc = rgb.fc  # the same head, to compare whole outputs
    grey.eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), rgb(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5)


def test_an_rgba_model_starts_blind_to_the_alpha_channel(imagenet_resnet):
    rgb, folder = imagenet_resnet
    rgba = adapt_input_channels(tvm.resnet18(), 4)
    report = load_pretrained(rgba, folder / "resnet18.pth")
    assert report["left"] == {} and list(report["adapted"]) == ["conv1.weight"]
    assert torch.equal(rgba.conv1.weight[:, 3], torch.zeros_like(rgba.conv1.weight[:, 3]))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = rgba.eval()(torch.cat([x, torch.rand(2, 1, 32, 32)], dim=1))
        torch.testing.assert_close(out, rgb(x), rtol=1e-4, atol=1e-5)


def test_another_architecture_loads_its_own_weights_with_a_new_head(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    published = tvm.mobilenet_v3_small()
    save_file(published.state_dict(), str(tmp_path / "mnv3.safetensors"))
    model = Scaled(tvm.mobilenet_v3_small(num_classes=5), x_shape=(3, 1, 1), y_shape=None)
    report = load_pretrained(model, tmp_path / "mnv3.safetensors")
    assert set(report["left"]) == {"net.classifier.3.weight", "net.classifier.3.bias"}
    assert report["loaded"] == len(published.state_dict()) - 2
    assert report["renamed"] == {} and report["unused"] == []
    assert torch.equal(model.net.features[3].block[0][1].running_var,
                       published.features[3].block[0][1].running_var)
    assert torch.equal(model.net.classifier[0].weight, published.classifier[0].weight)


def test_wrapper_prefixes_in_the_file_are_undone(imagenet_resnet, tmp_path):
    rgb, _ = imagenet_resnet
    torch.save({"model": {f"module.{k}": v for k, v in rgb.state_dict().items()}},
               tmp_path / "ddp.pt")
    model = tvm.resnet18()
    report = load_pretrained(model, tmp_path / "ddp.pt")
    assert report["renamed"]["module.fc.weight"] == "fc.weight" and report["left"] == {}
    assert torch.equal(model.fc.weight, rgb.fc.weight)


@pytest.mark.parametrize("name", ["IMAGENET1K_V1", "DEFAULT", "ResNet18_Weights.IMAGENET1K_V1",
                                  "https://download.pytorch.org/models/resnet18-f37072fd.pth"])
def test_a_weights_name_or_url_is_refused_with_how_to_get_the_file(name):
    with pytest.raises(ConfigError, match=r"netwright never downloads weights\. Fix: download "
                                          r"them once with torchvision.*state_dict\(\).*weights: "
                                          r"path/to/"):
        load_pretrained(tvm.resnet18(), name)


def test_weights_of_another_architecture_are_an_error_that_shows_both_sides(imagenet_resnet):
    _, folder = imagenet_resnet
    model = tvm.mobilenet_v3_small()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as caught:
        load_pretrained(model, folder / "resnet18.pth")
    message = str(caught.value)
    assert "resnet18.pth" in message and "0 of the model's 244 tensors" in message
    assert "'conv1.weight' (64, 3, 7, 7)" in message and "'features.0.0.weight'" in message
    assert "Fix:" in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- fine-tuning -------------------------------------------------------------------------------


def _cnn():
    torch.manual_seed(0)
    return nw.build([{"conv2d": [4, 3]}, {"batchnorm2d": {}}, "relu", {"conv2d": [4, 3]}, "relu",
                     "flatten", {"linear": 3}], (1, 12, 12))


def _data(n=48):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 12, 12, generator=g), torch.randint(0, 3, (n,), generator=g)


class Snapshots(nw.Callback):
    def __init__(self):
        self.states = {}

    def on_epoch_end(self, epoch, logs, model):
        self.states[epoch + 1] = {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_the_head_trains_first_and_the_backbone_from_unfreeze_at():
    model, shots = _cnn(), Snapshots()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    nw.fit(model, _data(), loss="cross_entropy", epochs=3, batch_size=16, lr=0.01,
           optimizer="adamw", weight_decay=0.1, verbose=0, callbacks=[shots],
           finetune={"freeze": "backbone", "unfreeze_at": 2, "backbone_lr": 0.1})
    backbone = ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]
    for key in backbone:  # no update, no weight decay in epoch 1
        assert torch.equal(shots.states[1][key], start[key]), key
        assert not torch.equal(shots.states[2][key], shots.states[1][key]), key
    assert not torch.equal(shots.states[1]["6.weight"], start["6.weight"])
    assert not torch.equal(shots.states[1]["1.running_mean"], start["1.running_mean"])
    assert all(p.requires_grad for p in model.parameters())  # left as it was found


def test_the_frozen_groups_have_the_backbone_fraction_of_lr_and_keep_decay_groups():
    trainer = nw.Trainer(_cnn(), loss="cross_entropy", epochs=1, lr=0.02, verbose=0,
                         optimizer="sgd", weight_decay=0.01, decay_norm_and_bias=False,
                         finetune={"freeze": ["0", "1"], "backbone_lr": 0.25})
    trainer.fit(_data())
    named = {id(p): n for n, p in trainer.model.named_parameters()}
    groups = {tuple(sorted(named[id(p)] for p in g["params"])): (g["lr"], g["weight_decay"])
              for g in trainer.optimizer.param_groups}
    assert groups == {("0.weight",): (0.005, 0.01), ("0.bias", "1.bias", "1.weight"): (0.005, 0.0),
                      ("3.weight", "6.weight"): (0.02, 0.01), ("3.bias", "6.bias"): (0.02, 0.0)}
    assert trainer.optimizer.param_groups[0]["lr"] == 0.02  # the lr logged is the main one
    assert all(p.requires_grad for p in trainer.model.parameters())  # fit leaves them as found


def test_a_fine_tuned_run_resumes_exactly(tmp_path):
    class Interrupt(nw.Callback):
        def on_batch_end(self, epoch, batch, loss):
            if (epoch, batch) == (1, 1):
                raise KeyboardInterrupt

    options = dict(loss="cross_entropy", epochs=3, batch_size=16, lr=0.01, optimizer="adam",
                   verbose=0, seed=1, finetune={"unfreeze_at": 3}, scheduler="cosine",
                   checkpoint_every=1)
    reference = nw.fit(_cnn(), _data(), run_dir=tmp_path / "a", **options).model
    with pytest.raises(KeyboardInterrupt):
        nw.fit(_cnn(), _data(), run_dir=tmp_path / "b", callbacks=[Interrupt()], **options)
    resumed = nw.fit(_cnn(), _data(), run_dir=tmp_path / "b", resume=True, **options).model
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in reference.state_dict().items())
    saved = (tmp_path / "a" / "config.yaml").read_text()
    assert "unfreeze_at: 3" in saved and "backbone_lr: 0.1" in saved


def test_an_unknown_module_to_freeze_is_an_error_with_real_names():
    with pytest.raises(ConfigError, match=r"no module 'layr1'\. Did you mean 'layer1'\? Its "
                                          r"modules include: conv1, bn1, .*Fix:"):
        plan_finetune(tvm.resnet18(), {"freeze": ["layr1"]})
    with pytest.raises(ConfigError, match=r"freezes every parameter.*before epoch 3"):
        plan_finetune(_cnn(), {"freeze": ["0", "1", "3", "6"], "unfreeze_at": 3})


def test_unfreezing_mid_run_is_refused_with_several_processes():
    model = _cnn()
    with pytest.raises(ConfigError, match=r"unfreeze_at=2 is not supported with several "
                                          r"processes yet.*Fix:"):
        plan_finetune(model, {"unfreeze_at": 2}, several_processes=True)
    plan = plan_finetune(model, {"freeze": "backbone"}, several_processes=True)
    assert not model[0].weight.requires_grad and model[6].weight.requires_grad  # before DDP wraps
    plan.restore()
    assert model[0].weight.requires_grad


def test_lr_factors_need_an_optimizer_netwright_builds():
    model = _cnn()
    factors = {id(model[0].weight): 0.1}
    with pytest.raises(ConfigError, match=r"needs netwright to build the optimizer.*Fix:"):
        build_optimizer(torch.optim.SGD(model.parameters(), lr=0.1), model, lr=0.1,
                        lr_factors=factors)
    with pytest.raises(ConfigError, match=r"LBFGS: fine-tuning .* not supported"):
        build_optimizer("lbfgs", model, lr=0.1, lr_factors=factors)
    model[0].weight.requires_grad_(False)
    assert sum(len(g["params"]) for g in param_groups(model, 0.0, True)) == 7
    assert sum(len(g["params"]) for g in param_groups(model, 0.0, True, factors)) == 8


# --- channels-last -----------------------------------------------------------------------------


def test_channels_last_keeps_conv_weights_channels_last_and_trains():
    model = _cnn()
    start = model[3].weight.detach().clone()
    result = nw.fit(model, _data(), loss="cross_entropy", epochs=2, batch_size=16, lr=0.01,
                    verbose=0, channels_last=True)
    assert model[3].weight.is_contiguous(memory_format=torch.channels_last)
    assert not model[3].weight.is_contiguous()
    assert not torch.equal(model[3].weight, start)
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in result.history)
