"""dvsnet.flow_mv: the `mv` flow, codec motion vectors chained from each region's key frame, on videos
encoded here with a known pan."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dvsnet import DVSNet, DvsnetError
from dvsnet.data.motion import BLOCK, dense_field, encode_video, no_motion, read_motion_frames
from dvsnet.flow import FLOWS, build_flow
from dvsnet.flow_mv import MV_FEATURES, MotionVectorFlow, plan_motion
from dvsnet.regions import region_grid
from tests.conftest import textured_pan
from tests.segmenters import ColourSegmenter

H, W = 128, 256


def uniform(dx: float, dy: float, height: int = H, width: int = W):
    """A P-frame whose every 16x16 block moved (dx, dy) px (quarter-pel vectors, as H.264 writes them)."""
    from tests.data.test_motion import vectors

    rows = [(-1, 16, 16, x, y, round(dx * 4), round(dy * 4), 4)
            for y in range(8, height, 16) for x in range(8, width, 16)]
    return dense_field(vectors(*rows), (height, width))


def test_mv_is_a_flow_choice_whose_features_the_decision_network_picks():
    """The shipped `mv` DN by default (the codec's own features); the `dis` DN when it is named."""
    assert "mv" in FLOWS and isinstance(build_flow("mv"), MotionVectorFlow)
    pipe = DVSNet(segmenter=ColourSegmenter(), flow="mv", policy="dn:0.5")
    assert pipe.policy.net.variant == "mv" and pipe.flow.dn_variant == "mv"
    assert pipe.policy.net.in_channels == len(MV_FEATURES)
    pipe = DVSNet(segmenter=ColourSegmenter(), flow="mv", policy="dn:0.5", dn="dis")
    assert pipe.policy.net.variant == "dis" and pipe.flow.dn_variant == "dis"
    with pytest.raises(DvsnetError, match="reads 'mv' features"):
        DVSNet(segmenter=ColourSegmenter(), flow="dis", policy="dn:0.5", dn="mv")


def _features(mv: MotionVectorFlow, regions: int) -> torch.Tensor:
    crops = torch.zeros(regions, 3, H, W)
    return mv.region_flow(torch.arange(regions), crops, crops)[1]


def test_codec_features_of_a_steady_pan_are_its_chain_path_and_age():
    """Known answer: 5 frames of every block moving (4, -2) px: the chain and the path are 5 steps of
    (0.5, -0.25) cells, nothing is intra, still or at a motion boundary, and the key is 5 frames old."""
    regions = region_grid(H, W, 1, 1, 0)
    mv = MotionVectorFlow()
    for index in range(1, 6):
        mv.advance(uniform(4, -2), index, np.zeros(1, np.int64), regions, (H, W))
    features = dict(zip(MV_FEATURES, _features(mv, 1)[0]))
    assert (features["dx"].allclose(torch.tensor(2.5), atol=1e-4)
            and features["dy"].allclose(torch.tensor(-1.25), atol=1e-4))
    step = (0.5 ** 2 + 0.25 ** 2) ** 0.5
    assert features["magnitude"].allclose(torch.tensor(5 * step), atol=1e-4)
    assert features["path"].allclose(torch.tensor(5 * step), atol=1e-4)
    for name in ("boundary", "spread", "intra_frames", "intra", "zero"):
        assert features[name].abs().max() < 1e-4, name
    assert features["age"].eq(5).all()


def test_codec_features_count_intra_frames_and_mark_still_blocks_and_motion_boundaries():
    """The left half of the frame coded with the zero vector, the right half intra, for two frames; then a
    frame whose left half moves 8 px and right half stands still."""
    from tests.data.test_motion import vectors

    left_still = dense_field(vectors(*[(-1, 16, 16, x, y, 0, 0, 4) for y in range(8, H, 16)
                                       for x in range(8, W // 2, 16)]), (H, W))
    regions = region_grid(H, W, 1, 1, 0)
    mv = MotionVectorFlow()
    for index in (1, 2):
        mv.advance(left_still, index, np.zeros(1, np.int64), regions, (H, W))
    # 16x16 pooled from 16x32 cells: column c = cells 2c, 2c+1
    features = dict(zip(MV_FEATURES, _features(mv, 1)[0]))
    assert features["zero"][:, :8].eq(1).all() and features["zero"][:, 8:].eq(0).all()
    assert features["intra"][:, :8].eq(0).all() and features["intra"][:, 8:].eq(1).all()
    assert features["intra_frames"][:, :8].eq(0).all() and features["intra_frames"][:, 8:].eq(2).all()
    split = dense_field(vectors(*[(-1, 16, 16, x, y, 32 if x < W // 2 else 0, 0, 4) for y in range(8, H, 16)
                                  for x in range(8, W, 16)]), (H, W))
    mv = MotionVectorFlow()
    mv.advance(split, 1, np.zeros(1, np.int64), regions, (H, W))
    features = dict(zip(MV_FEATURES, _features(mv, 1)[0]))
    for name in ("boundary", "spread"):  # only next to the edge between the moving and the still half
        columns = features[name].mean(0)
        assert (columns[7:9].max() > 0.1 and columns[:6].abs().max() < 1e-4
                and columns[10:].abs().max() < 1e-4), name


def test_chaining_from_the_key_frame_over_10_frames_of_a_pan_is_10_times_the_shift(av, tmp_path):
    path = encode_video(textured_pan(3, -2, 11, H, W), tmp_path / "pan.mp4", crf=18)
    regions = region_grid(H, W, 1, 2, 0)
    mv = MotionVectorFlow()
    for index, (_, _, field) in enumerate(read_motion_frames(path)):
        if index:  # both regions keep frame 0 as their key
            mv.advance(field, index, np.zeros(2, np.int64), regions, (H, W // 2))
    flow, _ = mv.region_flow(torch.arange(2), torch.zeros(2, 3, H, W // 2), torch.zeros(2, 3, H, W // 2),
                             False)
    assert flow.shape == (2, 2, H // BLOCK, W // 2 // BLOCK)
    inner = flow[:, :, 4:-4, 4:-4] * BLOCK  # in frame pixels, away from the borders the pan uncovers
    assert (inner[:, 0].median() == pytest.approx(30.0, abs=1.0)
            and inner[:, 1].median() == pytest.approx(-20.0, abs=1.0))
    assert not mv.untrusted().any()


def test_each_key_frame_has_its_own_chain_and_region_crops_are_in_their_own_grid():
    regions = region_grid(H, W, 1, 2, 0)
    mv = MotionVectorFlow()
    mv.advance(uniform(4, 0), 1, np.array([0, 0]), regions, (H, W // 2))
    mv.advance(uniform(4, 0), 2, np.array([0, 1]), regions, (H, W // 2))  # region 1 became key on frame 1
    flow, _ = mv.region_flow(torch.arange(2), torch.zeros(2, 3, H, W // 2), torch.zeros(2, 3, H, W // 2),
                             False)
    assert flow[0, 0, 2:-2, 2:-6].mul(BLOCK).allclose(torch.tensor(8.0), atol=1e-4)  # two steps from frame 0
    assert flow[1, 0, 2:-2, 2:-2].mul(BLOCK).allclose(torch.tensor(4.0), atol=1e-4)  # one step from frame 1


def test_the_flow_follows_a_resize_of_the_frames():
    regions = region_grid(H // 2, W // 2, 1, 1, 0)  # frames read at half the source size
    mv = MotionVectorFlow()
    mv.advance(uniform(4, -2), 1, np.zeros(1, np.int64), regions, (H // 2, W // 2))
    flow, _ = mv.region_flow(torch.arange(1), torch.zeros(1, 3, H // 2, W // 2),
                             torch.zeros(1, 3, H // 2, W // 2), False)
    assert flow[0, :, 2:-2, 2:-2].mul(BLOCK).mean((1, 2)).tolist() == pytest.approx([2.0, -1.0], abs=1e-4)


def test_regions_whose_chain_crossed_an_i_frame_are_segmented_whatever_the_policy(av, tmp_path):
    path = encode_video(textured_pan(2, 0, 10, H, W), tmp_path / "pan.mp4", keyint=6, crf=18)
    seg = ColourSegmenter()
    pipe = DVSNet(segmenter=seg, flow="mv", policy="fixed:100", grid=(1, 2))
    outs = [pipe.step(image, motion=field) for _, image, field in read_motion_frames(path)]
    assert [o.paths for o in outs] == ([["seg", "seg"]] + [["warp", "warp"]] * 5 + [["seg", "seg"]]
                                       + [["warp", "warp"]] * 3)
    assert outs[-1].key_ages == [3, 3]


def test_a_pan_warped_by_mv_matches_the_same_pan_warped_by_dis(av, tmp_path):
    frames = textured_pan(3, 1, 8, H, W)
    path = encode_video(frames, tmp_path / "pan.mp4", crf=18)
    decoded = list(read_motion_frames(path))
    outs = {}
    for flow in ("mv", "dis"):
        pipe = DVSNet(segmenter=ColourSegmenter(), flow=flow, policy="fixed:100", grid=(1, 1))
        outs[flow] = [pipe.step(image, motion=field) for _, image, field in decoded]
    agreement = np.mean([(a.labels == b.labels).mean() for a, b in zip(outs["mv"][1:], outs["dis"][1:])])
    assert agreement > 0.9 and all(o.paths == ["warp"] for o in outs["mv"][1:])


def test_the_dn_policy_scores_mv_regions_with_the_shipped_mv_network(av, tmp_path):
    path = encode_video(textured_pan(2, 1, 4, H, W), tmp_path / "pan.mp4", crf=18)
    pipe = DVSNet(segmenter=ColourSegmenter(), flow="mv", policy="dn:0.0", grid=(2, 2), overlap=8)
    outs = [pipe.step(image, motion=field) for _, image, field in read_motion_frames(path)]
    scores = [s for o in outs[1:] for s in o.scores]
    assert all(0.0 <= s <= 1.0 for s in scores) and all(o.paths == ["warp"] * 4 for o in outs[1:])


def test_mv_without_motion_is_a_one_line_error_and_other_flows_ignore_motion():
    frame = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(DvsnetError, match="motion vectors"):
        DVSNet(segmenter=ColourSegmenter(), flow="mv", policy="fixed:5").step(frame)
    dis = DVSNet(segmenter=ColourSegmenter(), flow="dis", policy="fixed:5", grid=(2, 2))
    assert dis.step(frame, motion=no_motion(H, W)).paths == ["seg"] * 4


def test_plan_motion_falls_back_to_dis_with_a_note_or_refuses(tmp_path):
    notes = []
    assert plan_motion("dis", tmp_path, "none", notes.append) == ("dis", False)  # not mv: nothing to check
    assert plan_motion("mv", tmp_path, "dis", notes.append) == ("dis", False)
    assert len(notes) == 1 and notes[0].startswith("note: ") and "falls back to dis" in notes[0]
    with pytest.raises(DvsnetError, match="--flow-fallback none"):
        plan_motion("mv", tmp_path, "none", notes.append)
