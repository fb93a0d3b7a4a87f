"""Segmenters: shapes and strides for every name, self-normalisation, weights round trip and mismatch
errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dvsnet.errors import DvsnetError
from dvsnet.models import SEGMENTERS, ExternalSegmenter, build_segmenter, load_segmenter, save_weights
from dvsnet.models.segnets import build_fast
from dvsnet.models.weights import load_matching_weights, shipped_path


@pytest.mark.parametrize("name", SEGMENTERS)
@pytest.mark.parametrize("size", [(64, 128), (40, 72)])
def test_segmenter_output_shape_follows_its_stride(name, size):
    torch.manual_seed(0)
    net = build_segmenter(name).eval()
    stride = net.output_stride
    with torch.no_grad():
        logits = net(torch.rand(2, 3, *size))
    assert logits.shape == (2, 19, size[0] // stride, size[1] // stride)
    assert torch.isfinite(logits).all()
    assert net.num_classes == 19 and stride in (4, 8) and net.input_multiple == 8


# per-frame mIoU of the shipped weights on 3 rendered frames (seed 5, 256x512), measured at 0.70 (fast) and
# 0.70 (accurate): a floor well under that catches weights that load but no longer segment
SHIPPED_MIOU_FLOOR = 0.60


@pytest.mark.parametrize("name", SEGMENTERS)
def test_shipped_segmenters_segment_a_rendered_clip(name):
    from dvsnet import DVSNet
    from dvsnet.data.synthetic import render_sequence
    from dvsnet.metrics import confusion_matrix, mean_iou

    pipe = DVSNet(segmenter=name, policy="always", grid=(1, 1))
    matrix = np.zeros((19, 19), dtype=np.int64)
    for frame in render_sequence(5, 3, (256, 512)):
        matrix += confusion_matrix(frame.labels, pipe.step(frame.image).labels, 19)
    assert mean_iou(matrix) >= SHIPPED_MIOU_FLOOR


def test_accurate_starts_from_fasts_backbone_and_head(tmp_path):
    torch.manual_seed(2)
    fast = build_fast()
    path = save_weights(fast, tmp_path / "fast.safetensors", {"arch": "fast", "num_classes": "19"})
    accurate = build_segmenter("accurate")
    untouched = accurate.classifier.weight.clone()
    loaded, total = load_matching_weights(accurate, path)
    # + classifier.bias: (19,) in both, fast's class priors
    assert loaded == sum(1 for k in accurate.state_dict() if k.startswith(("backbone.", "head."))) + 1
    assert loaded < total  # the decoder and the classifier's weight (other shape) keep their init
    assert torch.equal(accurate.classifier.bias, fast.classifier.bias)
    assert torch.equal(accurate.backbone.stage3[2].conv2[0].weight, fast.backbone.stage3[2].conv2[0].weight)
    assert torch.equal(accurate.head.fuse[0].weight, fast.head.fuse[0].weight)
    assert torch.equal(accurate.classifier.weight, untouched)


def test_matching_weights_that_match_nothing_fail_with_one_line(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"something.else": torch.zeros(3)}, str(path))
    with pytest.raises(DvsnetError, match="no tensor matches"):
        load_matching_weights(build_fast(), path)


def test_segmenter_rejects_sizes_not_multiple_of_8():
    with pytest.raises(ValueError, match="multiples of 8"):
        build_fast().eval()(torch.rand(1, 3, 60, 64))


def test_unknown_segmenter_lists_valid_names():
    with pytest.raises(DvsnetError, match="valid: fast, accurate"):
        build_segmenter("huge")


def test_weights_round_trip_in_fp16_gives_nearly_equal_logits(tmp_path):
    torch.manual_seed(1)
    net = build_fast().eval()
    path = save_weights(net, tmp_path / "w.safetensors", {"arch": "fast", "num_classes": "19"}, half=True)
    loaded = load_segmenter(str(path))
    assert not loaded.training
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = net(x), loaded(x)
    assert loaded.backbone.stem[0].weight.dtype == torch.float32
    assert torch.allclose(a, b, atol=2e-2 * a.abs().max().item())
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.95


def test_weights_of_another_architecture_fail_with_one_line(tmp_path):
    path = save_weights(build_fast(), tmp_path / "w.safetensors", {"arch": "fast"})
    with pytest.raises(DvsnetError, match="architecture 'fast', expected 'accurate'"):
        from dvsnet.models.weights import load_weights
        load_weights(build_segmenter("accurate"), path, "accurate")


def test_weights_with_wrong_shapes_name_the_tensor(tmp_path):
    state = {k: v.clone() for k, v in build_fast().state_dict().items()}
    state["classifier.weight"] = torch.zeros(7, 96, 1, 1)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path), metadata={"arch": "fast"})
    with pytest.raises(DvsnetError) as info:
        load_segmenter(str(path))
    message = str(info.value)
    assert "classifier.weight" in message and "(7, 96, 1, 1)" in message and "\n" not in message


def test_weights_with_missing_tensors_fail(tmp_path):
    state = {k: v for k, v in build_fast().state_dict().items() if not k.startswith("head.")}
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path), metadata={"arch": "fast"})
    with pytest.raises(DvsnetError, match="missing"):
        load_segmenter(str(path))


def test_load_segmenter_passes_callables_through_and_rejects_bad_specs(tmp_path):
    fn = lambda x: x
    assert isinstance(load_segmenter(fn), ExternalSegmenter)  # the adapter: dry run, class count, stride
    with pytest.raises(DvsnetError, match="not found"):
        load_segmenter(str(tmp_path / "nope.safetensors"))
    with pytest.raises(DvsnetError, match="unknown segmenter"):
        load_segmenter("nonsense")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(DvsnetError, match="not a readable"):
        load_segmenter(str(tmp_path / "junk.safetensors"))


def test_trained_weights_fit_a_constant_image():
    """A few optimiser steps drive the network to predict a constant class: it is trainable end to end."""
    torch.manual_seed(0)
    net = build_fast().train()
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    x = torch.rand(2, 3, 16, 16)
    y = torch.full((2, 2, 2), 13, dtype=torch.long)
    for _ in range(10):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        assert (net(x).argmax(1) == 13).all()
    assert np.isfinite(loss.item())


def test_every_shipped_weights_file_loads_into_its_architecture_by_name():
    from dvsnet.models import load_decision_net, load_flownet
    from dvsnet.models.weights import SHIPPED_DIR

    names = sorted(p.stem for p in SHIPPED_DIR.glob("*.safetensors"))
    assert {"fast", "accurate", "flownet", "dn-dis"} <= set(names)
    for name in names:
        if name in SEGMENTERS:
            assert load_segmenter(name).arch == name
        elif name == "flownet":
            load_flownet()
        else:
            load_decision_net(name.removeprefix("dn-"))


def test_a_segmenter_is_identified_by_its_name_or_file_and_the_hash_of_its_weights(tmp_path):
    import hashlib

    from dvsnet.models.weights import same_segmenter, segmenter_identity, weights_digest, weights_file

    assert weights_file("fast") == shipped_path("fast") and weights_file("x.onnx").name == "x.onnx"
    fast = hashlib.sha256(shipped_path("fast").read_bytes()).hexdigest()
    assert weights_digest("fast", 16) == fast[:16] and segmenter_identity("fast") == f"fast:{fast[:12]}"
    copy = tmp_path / "mine.safetensors"
    copy.write_bytes(shipped_path("fast").read_bytes())
    assert segmenter_identity(copy) == f"mine.safetensors:{fast[:12]}"
    assert same_segmenter(segmenter_identity("fast"), copy)  # the same weights under another name
    assert not same_segmenter(segmenter_identity("accurate"), copy)
    assert segmenter_identity(tmp_path / "missing.onnx") == str(tmp_path / "missing.onnx")
