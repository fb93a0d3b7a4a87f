"""Flow-network training: flow composition, multi-scale EPE, and a short run on a tiny rendered tree."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from dvsnet.cli import main
from dvsnet.data.flowio import read_kitti_flow
from dvsnet.models import FlowNetS, load_flownet
from dvsnet.train.flow import FlowPairs, compose_backward, flow_epe, multiscale_epe


def test_composing_constant_flows_adds_them():
    a = torch.zeros(1, 2, 8, 8)
    a[:, 0] = 1.5
    b = torch.zeros(1, 2, 8, 8)
    b[:, 1] = -2.0
    total = compose_backward([a, b])
    assert torch.allclose(total[:, 0], torch.full((1, 8, 8), 1.5))
    assert torch.allclose(total[:, 1], torch.full((1, 8, 8), -2.0))


def test_composition_samples_the_second_flow_where_the_first_lands():
    """F1 = +2 px in x everywhere; F2 = x-coordinate ramp: composed dx(p) = 2 + F2(p + 2)."""
    f1 = torch.zeros(1, 2, 4, 16)
    f1[:, 0] = 2
    f2 = torch.zeros(1, 2, 4, 16)
    f2[:, 0] = torch.arange(16.0) * 0.1
    total = compose_backward([f1, f2])
    expected = 2 + (torch.arange(16.0) + 2).clamp(max=15) * 0.1
    assert torch.allclose(total[0, 0, 0], expected, atol=1e-5)


def test_multiscale_epe_is_zero_for_exact_pyramids_and_positive_otherwise():
    target = torch.zeros(1, 2, 64, 64)
    target[:, 0] = 4.0  # 4 px in the full grid
    # each level holds the flow in pixels of its own grid: 4 px full-res = 4 * w_level / 64
    levels = [torch.full((1, 2, 64 // s, 64 // s), 0.0) for s in (64, 32, 16, 8, 4)]
    for lv, s in zip(levels, (64, 32, 16, 8, 4)):
        lv[:, 0] = 4.0 / s
    assert multiscale_epe(levels, target).item() == pytest.approx(0.0, abs=1e-6)
    assert flow_epe(levels[-1], target).item() == pytest.approx(0.0, abs=1e-5)
    levels[-1] = levels[-1] + 0.25  # 1 px full-res error in both dx and dy at the finest level
    assert flow_epe(levels[-1], target).item() == pytest.approx(2 ** 0.5, rel=1e-4)


def test_flownet_output_grid_and_features():
    net = FlowNetS().eval()
    with torch.no_grad():
        flow, feats = net(torch.rand(2, 3, 136, 264), torch.rand(2, 3, 136, 264))
    assert flow.shape == (2, 2, 17, 33)  # half input resolution, stride 4 -> stride 8 of the crop
    assert feats["conv4"].shape == (2, 96, 5, 9)
    assert feats["conv5"].shape == (2, 128, 3, 5)
    assert feats["conv6"].shape == (2, 192, 2, 3)


@pytest.fixture(scope="module")
def rendered_tree(tmp_path_factory):
    from dvsnet.data.synthetic.writer import write_dataset

    root = tmp_path_factory.mktemp("render")
    for split, seed in (("train", 1), ("val", 2)):
        write_dataset(root, split, sequences=1, frames=30, size=(64, 128), seed=seed, progress=False)
    return root


def test_pairs_hold_the_snippets_frames_and_backward_flows(rendered_tree):
    """FlowPairs reads the tree through dvsnet.data: 30-frame snippets and each frame's backward flow in
    pixels; offset 1's target is that flow itself."""
    pairs = FlowPairs(str(rendered_tree), "train", None)
    assert pairs.frames.shape == (1, 30, 64, 128, 3) and pairs.flows.shape == (1, 30, 2, 64, 128)
    stored, _ = read_kitti_flow(rendered_tree / "flow/train/synth/synth_000000_000003_flow_backward.png")
    np.testing.assert_allclose(pairs.flows[0, 3].float().permute(1, 2, 0).numpy(), stored, atol=2e-2)  # fp16
    assert np.abs(stored).max() > 0
    key, _, target = pairs.pair(0, 3, 1)
    assert torch.equal(target, pairs.flows[0, 3].float())
    assert torch.equal(key, torch.from_numpy(pairs.frames[0, 2]).permute(2, 0, 1).float() / 255)


def test_train_flow_cli_runs_logs_and_writes_loadable_weights(rendered_tree, tmp_path):
    out = tmp_path / "flow"
    assert main(["train", "flow", "--data", str(rendered_tree), "--out", str(out), "--steps", "6",
                 "--batch", "2", "--crop", "64x128", "--max-offset", "3", "--val-every", "3",
                 "--threads", "1", "--no-progress"]) == 0
    rows = [r for r in csv.DictReader((out / "log.csv").open()) if r["val_epe"]]
    assert [int(r["step"]) for r in rows] == [3, 6]
    assert all(np.isfinite(float(r["val_epe"])) for r in rows)
    net = load_flownet(path=out / "model.safetensors")
    assert not net.training
