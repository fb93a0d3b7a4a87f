import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dvsnet import DVSNet
from dvsnet.calibration_table import CalibrationTable
from dvsnet.control import AgreementTarget, FpsTarget, threshold_segmenting
from dvsnet.errors import DvsnetError
from dvsnet.policies import RegionBatch
from dvsnet.regions import region_grid
from tests.segmenters import ColourSegmenter, panning_clip

REGIONS = region_grid(64, 128, 2, 2, 0)


def frame_result(paths, scores, seg_s=0.0, warp_s=0.0, other_s=0.01, restarted=False):
    """A FrameResult as the controllers read it: paths, scores, regions and stage seconds."""
    timings = {"segmentation": seg_s, "warp": warp_s, "flow": other_s, "decision": 0.0, "stitch": 0.0,
               "total": seg_s + warp_s + other_s}
    return SimpleNamespace(paths=paths, scores=scores, timings=timings, regions=REGIONS, restarted=restarted)


def scores_batch(scores, seg_labels=None, warped_labels=None):
    n = len(scores)
    return RegionBatch(torch.zeros(n, dtype=torch.long), torch.rand(n, 3, 8, 8), torch.rand(n, 3, 8, 8),
                       seg_labels=seg_labels, warped_labels=warped_labels,
                       segment=lambda images: torch.zeros(len(images), 2, 8, 8)), torch.tensor(scores)


def run_fake_clock(policy, frames, seg_per_region=0.1, warp_per_region=0.002, other=0.01,
                   scores=(0.9, 0.8, 0.7, 0.6)):
    """Drive a controller with a fake clock: frame time = other + its regions' costs. -> (totals, counts)."""
    totals, counts = [], []
    policy.observe(frame_result(["seg"] * 4, [None] * 4, 4 * seg_per_region, 0, 0, restarted=True))
    for _ in range(frames):
        batch, s = scores_batch(list(scores))
        policy.scores = lambda batch, s=s: s
        warp, _ = policy.decide(batch)
        seg = int((~warp).sum())
        result = frame_result(["warp" if w else "seg" for w in warp.tolist()], list(scores),
                              seg * seg_per_region, (4 - seg) * warp_per_region, other)
        policy.observe(result)
        totals.append(result.timings["total"])
        counts.append(seg)
    return totals, counts


@pytest.mark.parametrize("target", [4.0, 10.0, 25.0, 50.0])
def test_fps_target_holds_the_rate_of_a_fake_clock(target):
    totals, _ = run_fake_clock(FpsTarget(target), 400)
    rate = len(totals[50:]) / sum(totals[50:])
    assert rate == pytest.approx(target, rel=0.05)
    seconds = np.cumsum(totals)
    per_second = np.bincount(seconds.astype(int))[1:int(seconds[-1])]
    assert per_second.min() >= 0.75 * target  # no second far below F


def test_fps_target_follows_a_change_of_cost():
    policy = FpsTarget(10.0)
    run_fake_clock(policy, 100, seg_per_region=0.05)
    totals, _ = run_fake_clock(policy, 200, seg_per_region=0.15)  # the segmenter got 3x slower
    assert len(totals[40:]) / sum(totals[40:]) == pytest.approx(10.0, rel=0.05)


def test_an_fps_target_above_warp_only_speed_is_said_once_and_warps_everything():
    notes = []
    _, counts = run_fake_clock(FpsTarget(200.0, note=notes.append), 400)  # warp-only: 1/0.018 = 55 fps
    assert len(notes) == 1 and "above what warping every region reaches" in notes[0] and "55" in notes[0]
    assert counts[-100:] == [0] * 100


def test_an_fps_target_below_per_frame_speed_segments_everything_and_says_so():
    notes = []
    _, counts = run_fake_clock(FpsTarget(1.0, note=notes.append), 60)
    assert counts[-10:] == [4] * 10 and len(notes) == 1 and "below what segmenting every region" in notes[0]


def test_the_threshold_segments_the_lowest_scores():
    scores = torch.tensor([0.9, 0.5, 0.7, 0.99])
    assert threshold_segmenting(scores, 0) == 0.5 and threshold_segmenting(scores, 2) == pytest.approx(0.9)
    assert threshold_segmenting(scores, 4) > 0.99


def test_agreement_target_segments_as_few_regions_as_the_target_allows():
    policy = AgreementTarget(0.9)
    policy.observe(frame_result(["seg"] * 4, [None] * 4, restarted=True))  # equal cells: weights 1/4
    batch, scores = scores_batch([0.95, 0.5, 0.7, 0.99])
    policy.scores = lambda batch: scores
    warp, _ = policy.decide(batch)
    # predicted: 0 segmented 0.785, the 0.5 one 0.91 >= 0.9
    assert warp.tolist() == [True, False, True, True] and policy.threshold == pytest.approx(0.7)


def test_agreement_checks_correct_the_bias_of_the_dn():
    """The DN says 0.95 everywhere, but warping agrees on 70% of the pixels: the checks find it out and the
    controller segments more."""
    policy = AgreementTarget(0.9)
    policy.observe(frame_result(["seg"] * 4, [None] * 4, restarted=True))
    seg_labels = torch.zeros(4, 10, 10, dtype=torch.long)
    warped_labels = seg_labels.clone()
    warped_labels[:, :3] = 1  # 70% agreement
    segmented = []
    for _ in range(200):
        batch, scores = scores_batch([0.95] * 4, seg_labels, warped_labels)
        policy.scores = lambda batch, s=scores: s
        warp, _ = policy.decide(batch)
        policy.observe(frame_result(["warp" if w else "seg" for w in warp.tolist()], scores.tolist()))
        segmented.append(int((~warp).sum()))
    assert policy.bias == pytest.approx(-0.25, abs=0.02) and len(policy.checks) >= 8
    assert np.mean(segmented[:8]) < 1 and np.mean(segmented[-20:]) >= 2  # 0.7 + 0.3 k/4 >= 0.9 -> k >= 2.7


@pytest.mark.parametrize("share", ["seg_share", "regions_segmented"])  # the name tables had before
def test_targets_start_from_the_calibration_table(tmp_path, share):
    rows = [{"threshold": t, "fps": fps, "fps_per_frame": 5, "speedup": fps / 5, "measured_agreement": m,
             "predicted_agreement": p, share: seg}
            for t, fps, m, p, seg in [(0.9, 20, 0.96, 0.97, 0.3), (0.8, 40, 0.93, 0.95, 0.1),
                                      (0.95, 10, 0.98, 0.99, 0.5)]]
    (tmp_path / "dn.safetensors").write_bytes(b"")
    (tmp_path / "calibration.json").write_text(json.dumps({"weights": "dn.safetensors", "thresholds": rows}))
    table = CalibrationTable.read(tmp_path / "dn.safetensors")
    assert [row.threshold for row in table.rows] == [0.8, 0.9, 0.95] and table.row_at(0.9).seg_share == 0.3
    assert FpsTarget(25, table=table).threshold == 0.8 and FpsTarget(15, table=table).threshold == 0.9
    assert FpsTarget(100, table=table).threshold == 0.8  # none reaches it: the fastest
    assert AgreementTarget(0.95, table=table).threshold == 0.9
    assert AgreementTarget(0.95, table=table).bias == pytest.approx((0.96 - 0.97) / 0.7)
    assert AgreementTarget(0.99, table=table).threshold == 0.95
    assert FpsTarget(25).threshold == AgreementTarget(0.95).threshold == 0.92  # no table: the default dn:T
    assert (CalibrationTable.read(tmp_path / "other.safetensors") is None
            and CalibrationTable.read("dis") is None)
    (tmp_path / "calibration.json").write_text(json.dumps({"weights": "other.safetensors",
                                                           "thresholds": rows}))
    assert CalibrationTable.read(tmp_path / "dn.safetensors") is None  # another weights file's table
    (tmp_path / "calibration.json").write_text(json.dumps({"weights": "dn.safetensors", "thresholds": [{}]}))
    with pytest.raises(DvsnetError, match="cannot read the calibration table"):
        CalibrationTable.read(tmp_path / "dn.safetensors")


def still_then_fast_then_still(frames_each=12):
    """A clip whose motion switches: still, a fast pan, still again."""
    pan = panning_clip(frames_each, speed=12)
    return [pan[0]] * frames_each + pan + [pan[-1]] * frames_each


def test_an_agreement_target_holds_through_a_change_of_motion():
    """The shipped DIS decision network on a still / fast pan / still clip: the measured agreement with
    per-frame output is within 3 points of A in the fast part and never below A - 3 points in any part
    (this small clip's band; in the still parts warping everything is already above A)."""
    frames = still_then_fast_then_still(20)
    seg = ColourSegmenter()
    always = DVSNet(segmenter=seg, policy="always", grid=(2, 2))
    reference = [always.step(f).labels for f in frames]
    pipe = DVSNet(segmenter=seg, policy="dn:agree=0.9", grid=(2, 2))
    outs = [pipe.step(f) for f in frames]
    agreement = [(o.labels == r).mean() for o, r in zip(outs, reference)]
    assert np.mean(agreement[20:40]) == pytest.approx(0.9, abs=0.03)
    assert min(np.mean(agreement[i:i + 20]) for i in (0, 20, 40)) >= 0.87
    assert sum(o.paths.count("seg") for o in outs[1:]) < 0.5 * 4 * (len(frames) - 1)  # far from per-frame
    assert outs[0].threshold is None and all(0 <= o.threshold <= 1.01 for o in outs[1:])


@pytest.mark.backends
def test_an_fps_target_runs_the_pipeline_and_records_its_threshold():
    frames = still_then_fast_then_still(8)
    pipe = DVSNet(segmenter=ColourSegmenter(), policy="dn:fps=1000")
    outs = [pipe.step(f) for f in frames]
    assert repr(pipe.policy) == "dn:fps=1000" and outs[0].threshold is None
    assert all(isinstance(o.threshold, float) for o in outs[1:])


def test_a_target_reaches_the_pipeline_config():
    from dvsnet.cli.options import pipeline_config, target_spec

    args = SimpleNamespace(policy="dn:0.92", threshold=None, target_fps=12.0, target_agreement=None,
                           segmenter="fast", flow="dis", grid=(2, 2), overlap=None, stitch="max-logit",
                           dn=None, device="cpu", flow_width=None)
    assert pipeline_config(args).policy == "dn:fps=12"
    assert target_spec("dn:0.92", None, 0.95) == "dn:agree=0.95"
    with pytest.raises(Exception, match=re.escape("give one")):
        target_spec("dn:0.92", 10, 0.9)
    with pytest.raises(Exception, match="dn policy"):
        target_spec("fixed:5", 10, None)
