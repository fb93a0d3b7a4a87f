"""External segmenters: ONNX files, torch.export programs and plain callables behind ExternalSegmenter.

Every model here is a tiny nn.Sequential built and exported at test time (no model files committed): a
stride-4 conv net whose outputs the torch module gives directly, so each loaded form is compared with it.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dvsnet.data.labels import CLASS_NAMES, TRAIN_TO_COLOR
from dvsnet.errors import DvsnetError
from dvsnet.models import ExternalSegmenter, Sidecar, build_fast, load_segmenter
from dvsnet.models.external import read_sidecar


def tiny_net(classes: int = 5, seed: int = 0) -> nn.Sequential:
    """(B, 3, h, w) -> (B, classes, h/4, w/4) scores, no num_classes attribute."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(8, classes, 3, stride=2, padding=1)).eval()


def export_onnx(model: nn.Module, path, *, dynamic: bool = True, size=(64, 96), batch: int = 2,
                channels: int = 3):
    example = torch.rand(batch, channels, *size)
    axes = {"images": {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["images"],
                          dynamic_axes=axes)
    return path


def export_pt2(model: nn.Module, path):
    dims = {0: torch.export.Dim("batch", min=1, max=64), 2: 4 * torch.export.Dim("h", min=1, max=256),
            3: 4 * torch.export.Dim("w", min=1, max=256)}
    torch.export.save(torch.export.export(model, (torch.rand(2, 3, 64, 96),), dynamic_shapes=(dims,)),
                      str(path))
    return path


def sidecar(path, **keys):
    path.with_suffix(".json").write_text(json.dumps(keys))


IMAGES = torch.rand((3, 3, 64, 96), generator=torch.Generator().manual_seed(1))


def test_a_sequential_gets_its_classes_and_stride_from_a_dry_run():
    net = tiny_net(5)
    seg = load_segmenter(net)
    assert isinstance(seg, ExternalSegmenter) and seg.model is net
    assert (seg.num_classes, seg.output_stride, seg.input_multiple) == (5, 4, 32)
    assert seg.class_names == tuple(f"class {k}" for k in range(5)) and seg.palette.shape == (5, 3)
    assert len({tuple(c) for c in seg.palette}) == 5  # distinct colours
    assert next(seg.parameters()) is next(net.parameters())  # the pipeline finds the weights' device
    with torch.no_grad():
        assert torch.equal(seg(IMAGES), net(IMAGES))


def test_our_segnet_is_not_wrapped():
    net = build_fast()
    assert load_segmenter(net) is net


class DictOut(nn.Module):
    def __init__(self, key: str = "out"):
        super().__init__()
        self.net, self.key = tiny_net(3), key

    def forward(self, x):
        return {self.key: self.net(x)} if self.key != "many" else {"a": self.net(x), "b": self.net(x)}


@pytest.mark.parametrize("model", [DictOut("out"), DictOut("logits"), lambda x: (tiny_net(3)(x), x),
                                   lambda x: [tiny_net(3)(x)]], ids=["out", "single-value", "tuple", "list"])
def test_dict_tuple_and_list_outputs_are_understood(model):
    seg = load_segmenter(model)
    with torch.no_grad():
        assert seg(IMAGES).shape == (3, 3, 16, 24)
    assert seg.num_classes == 3


@pytest.mark.parametrize("model, message", [
    (DictOut("many"), "a dict with keys a, b"),
    (lambda x: "labels", "returns str"),
    (lambda x: x.mean(), "neither"),
    (lambda x: x[:, :, 0], "outputs labels, not scores"),
    (nn.Conv2d(1, 4, 3), "dry run .* failed"),
], ids=["dict", "str", "scalar", "3-channel-rank", "wrong-channels"])
def test_other_outputs_and_failing_models_are_refused_in_one_line(model, message):
    with pytest.raises(DvsnetError, match=message) as info:
        load_segmenter(model)
    assert "\n" not in str(info.value)


def test_declared_num_classes_and_stride_are_checked():
    net = tiny_net(5)
    net.num_classes = 19
    with pytest.raises(DvsnetError, match="num_classes is 19, but the model outputs 5"):
        load_segmenter(net)
    net.num_classes, net.output_stride = 5, 8
    with pytest.raises(DvsnetError, match="output_stride is 8"):
        load_segmenter(net)
    net.output_stride, net.input_multiple = 4, 8
    assert load_segmenter(net).input_multiple == 8


@pytest.mark.parametrize("classes", [2, 19, 21, 150])
def test_class_names_and_palette_for_any_class_count(classes, tmp_path):
    path = export_onnx(tiny_net(classes), tmp_path / "net.onnx")
    seg = load_segmenter(path)
    assert (seg.num_classes == classes and len(seg.class_names) == classes
            and seg.palette.shape == (classes, 3))
    if classes == 19:  # no sidecar: the Cityscapes classes
        assert seg.class_names == CLASS_NAMES and np.array_equal(seg.palette, TRAIN_TO_COLOR[:19])
    names = [f"c{k}" for k in range(classes)]
    palette = [[k, 255 - k, 7] for k in range(classes)]
    sidecar(path, classes=names, palette=palette)
    seg = load_segmenter(path)
    assert (seg.class_names == tuple(names) and seg.palette.tolist() == palette
            and seg.palette.dtype == np.uint8)


@pytest.mark.parametrize("form", ["onnx", "pt2"])
def test_onnx_and_pt2_files_match_the_torch_module(form, tmp_path):
    net = tiny_net(5)
    path = (export_onnx if form == "onnx" else export_pt2)(net, tmp_path / f"net.{form}")
    seg = load_segmenter(path)
    assert (seg.num_classes, seg.output_stride, seg.fixed_batch, seg.input_size) == (5, 4, None, None)
    for images in (IMAGES, torch.rand(1, 3, 128, 64)):  # any batch, any size
        with torch.no_grad():
            torch.testing.assert_close(seg(images), net(images), atol=1e-5, rtol=1e-5)


def test_an_onnx_model_with_a_fixed_batch_of_one_runs_regions_one_at_a_time(tmp_path):
    net = tiny_net(5)
    path = export_onnx(net, tmp_path / "net.onnx", dynamic=False, batch=1)
    seg = load_segmenter(path)
    assert seg.fixed_batch == 1 and seg.input_size == (64, 96)
    with torch.no_grad():
        torch.testing.assert_close(seg(IMAGES), net(IMAGES), atol=1e-5, rtol=1e-5)


def test_bgr_and_0_255_inputs_with_mean_and_std_follow_the_sidecar(tmp_path):
    net = tiny_net(4)
    path = export_onnx(net, tmp_path / "net.onnx")
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]  # MMSeg's, over BGR here
    sidecar(path, channels="bgr", scale=1, mean=mean, std=std)
    seg = load_segmenter(path)
    expected_input = ((IMAGES.flip(1) * 255 - torch.tensor(mean).view(1, 3, 1, 1))
                      / torch.tensor(std).view(1, 3, 1, 1))
    with torch.no_grad():
        torch.testing.assert_close(seg(IMAGES), net(expected_input), atol=1e-4, rtol=1e-4)
    sidecar(path, mean=0.5, std=0.25)  # torchvision style: [0, 1] input (scale 255), one number per channel
    with torch.no_grad():
        torch.testing.assert_close(load_segmenter(path)(IMAGES), net((IMAGES - 0.5) / 0.25), atol=1e-4,
                                   rtol=1e-4)


def test_a_fixed_input_size_resizes_crops_and_scores(tmp_path):
    net = tiny_net(5)
    path = export_onnx(net, tmp_path / "net.onnx", dynamic=False, size=(32, 48), batch=3)
    seg = load_segmenter(path)
    assert seg.input_size == (32, 48) and seg.fixed_batch == 3 and seg.input_multiple == 1
    with torch.no_grad():
        logits = seg(IMAGES[:2])  # 2 regions, padded to the model's batch of 3
        expected = F.interpolate(net(F.interpolate(IMAGES[:2], size=(32, 48), mode="bilinear")),
                                 size=(16, 24), mode="bilinear")
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    sidecar(path, input_size=[64, 64])
    with pytest.raises(DvsnetError,
                       match=r"input_size \[64, 64\] differs from the model's fixed input \[32, 48\]"):
        load_segmenter(path)


class LabelNet(nn.Module):
    def __init__(self, keepdim: bool = False):
        super().__init__()
        self.net, self.keepdim = tiny_net(3), keepdim

    def forward(self, x):
        return self.net(x).argmax(1, keepdim=self.keepdim)  # (B, h, w) or (B, 1, h, w) int64


@pytest.mark.parametrize("keepdim", [False, True])
def test_a_label_output_becomes_one_hot_logits(keepdim, tmp_path):
    model = LabelNet(keepdim)
    path = export_onnx(model, tmp_path / "labels.onnx")
    with pytest.raises(DvsnetError, match="outputs labels, not scores; declare its classes"):
        load_segmenter(path)
    sidecar(path, classes=["a", "b", "c", "d"])
    seg = load_segmenter(path)
    assert seg.labels_out and seg.num_classes == 4 and seg.output_stride == 4
    with torch.no_grad():
        logits = seg(IMAGES)
        expected = model.net(IMAGES).argmax(1)
    assert logits.shape == (3, 4, 16, 24) and torch.equal(logits.argmax(1), expected)
    assert torch.equal(logits.sum(1), torch.ones(3, 16, 24)) and not logits[:, 3].any()


def test_a_label_model_runs_through_the_pipeline(tmp_path):
    from dvsnet import DVSNet
    from tests.segmenters import panning_clip

    path = export_onnx(LabelNet(), tmp_path / "labels.onnx")
    sidecar(path, classes=["a", "b", "c"], input_multiple=8)
    pipe = DVSNet(segmenter=str(path), flow="dis", policy="fixed:2", grid=(1, 2))
    assert pipe.stitch_mode == "core"  # one-hot scores have no max-logit to compare in overlap bands
    results = [pipe.step(frame) for frame in panning_clip(3, 64, 128)]
    assert [r.paths for r in results] == [["seg", "seg"], ["warp", "warp"], ["seg", "seg"]]
    assert all(r.labels.shape == (64, 128) and r.labels.max() < 3 for r in results)


@pytest.mark.parametrize("keys, message", [
    ({"colours": []}, "unknown key 'colours'"),
    ({"classes": "road"}, "bad 'classes'"),
    ({"classes": []}, "bad 'classes'"),
    ({"palette": [[0, 0, 300]]}, "bad 'palette'"),
    ({"mean": [1, 2]}, "bad 'mean'"),
    ({"std": 0}, "bad 'std'.*> 0"),
    ({"channels": "rgba"}, "bad 'channels'"),
    ({"scale": -1}, "bad 'scale'"),
    ({"scale": True}, "bad 'scale'"),
    ({"mean": "0.5"}, "bad 'mean'"),
    ({"input_size": [64]}, "bad 'input_size'"),
    ({"input_multiple": 0}, "bad 'input_multiple'"),
    ({"classes": ["a", "b"], "palette": [[0, 0, 0]]}, "2 classes but 1 palette colours"),
], ids=lambda v: v if isinstance(v, str) else ",".join(v))
def test_bad_sidecar_keys_and_values_are_one_line_errors(keys, message, tmp_path):
    path = tmp_path / "m.onnx"
    sidecar(path, **keys)
    with pytest.raises(DvsnetError, match=message) as info:
        read_sidecar(path)
    assert str(tmp_path / "m.json") in str(info.value) and "\n" not in str(info.value)


def test_sidecar_defaults_and_round_trip():
    assert Sidecar().to_dict() == {"mean": [0.0] * 3, "std": [1.0] * 3, "channels": "rgb", "scale": 255.0}
    full = Sidecar(classes=("a", "b"), palette=((1, 2, 3), (4, 5, 6)), input_size=(8, 16), input_multiple=8)
    assert Sidecar.from_dict(json.loads(json.dumps(full.to_dict()))) == full
