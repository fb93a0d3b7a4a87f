"""`dvsnet export`'s self-check: the pipeline with the exported `fast` (.onnx through ONNX Runtime, .pt2
through torch.export) labels a rendered clip as the torch module does, and refusals leave nothing behind."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dvsnet import DVSNet
from dvsnet.cli import main
from dvsnet.data.labels import CLASS_NAMES
from dvsnet.data.synthetic import render_sequence
from dvsnet.errors import DvsnetError
from dvsnet.models import ExternalSegmenter, load_segmenter
from dvsnet.models import export as export_module
from dvsnet.models.backbone import Backbone
from dvsnet.models.segnets import SegNet

MIN_AGREEMENT = 0.999  # the bar: exported and torch labels equal on >= 99.9% of pixels


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, str]:
    """The shipped `fast` exported by the CLI to .onnx and .pt2 (checked on 128x256 frames: cheaper)."""
    folder = tmp_path_factory.mktemp("export")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for form in ("onnx", "pt2"):
            assert main(["export", "fast", "--out", str(folder / f"fast.{form}"), "--size", "128x256"]) == 0
    finally:
        torch.set_num_threads(threads)
    return {form: str(folder / f"fast.{form}") for form in ("onnx", "pt2")}


def test_export_writes_the_model_and_a_sidecar_that_reads_rgb_0_1(exported):
    sidecar = json.loads(Path(exported["onnx"]).with_suffix(".json").read_text())
    assert sidecar["classes"] == list(CLASS_NAMES) and len(sidecar["palette"]) == 19
    assert ((sidecar["scale"], sidecar["mean"], sidecar["std"], sidecar["channels"])
            == (255, [0] * 3, [1] * 3, "rgb"))
    assert sidecar["input_multiple"] == 8 and "input_size" not in sidecar
    seg = load_segmenter(exported["onnx"])
    assert (isinstance(seg, ExternalSegmenter)
            and (seg.num_classes, seg.output_stride, seg.fixed_batch) == (19, 8, None))


@pytest.mark.backends
@pytest.mark.parametrize("policy", ["always", "dn:0.92"])
def test_the_pipeline_with_the_exported_fast_labels_as_torch_does(exported, policy):
    frames = [frame.image for frame in render_sequence(3, 3, (256, 512))]
    reference = DVSNet(segmenter="fast", policy=policy, backend="torch", precision="fp32")
    expected = [reference.step(frame) for frame in frames]
    if policy != "always":  # the dn policy warps some regions: the warp path is compared too
        assert any("warp" in r.paths for r in expected)
    for form, path in exported.items():
        pipe = DVSNet(segmenter=path, policy=policy)
        for want, frame in zip(expected, frames):
            got = pipe.step(frame)
            assert got.paths == want.paths, form
            agreement = float(np.mean(got.labels == want.labels))
            assert agreement >= MIN_AGREEMENT, (form, policy, agreement)


def tiny_segnet() -> SegNet:
    torch.manual_seed(0)
    return SegNet("fast", Backbone(widths=(8, 8, 8, 8), depths=(1, 1, 1)), torch.nn.Conv2d(8, 8, 1), 8).eval()


@pytest.mark.parametrize("form", ["onnx", "pt2"])
def test_an_export_whose_labels_differ_is_refused_and_nothing_is_written(form, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "MAX_LABEL_DISAGREEMENT", -1.0)  # any export now "differs"
    with pytest.raises(DvsnetError, match="labels differ from the module's on 0.000% .* nothing written"):
        export_module.export_segmenter(tiny_segnet(), tmp_path / f"net.{form}", size=(64, 128))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("form", ["onnx", "pt2"])
def test_a_small_segnet_exports_and_loads_with_the_same_logits(form, tmp_path):
    net = tiny_segnet()
    report = export_module.export_segmenter(net, tmp_path / f"net.{form}", size=(64, 128))
    assert report.label_agreement == 1.0 and report.max_abs_diff < 1e-4 and report.dynamic
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.json", f"net.{form}"]
    images = torch.rand(3, 3, 48, 80)
    with torch.no_grad():
        torch.testing.assert_close(load_segmenter(report.path)(images), net(images), atol=1e-4, rtol=1e-4)
