import pytest
import torch

from dvsnet.errors import DvsnetError
from dvsnet.policies import (
    AlwaysSegment,
    DecisionNetwork,
    FixedInterval,
    FlowMagnitude,
    FrameDifference,
    Oracle,
    RegionBatch,
    confidence_score,
)
from dvsnet.policy_strings import parse_policy


@pytest.mark.parametrize("text,kind,value", [
    ("dn:0.92", DecisionNetwork, 0.92), ("oracle:0.8", Oracle, 0.8), ("fixed:5", FixedInterval, 5),
    ("diff:12.5", FrameDifference, 12.5), ("flow:3", FlowMagnitude, 3.0), ("always", AlwaysSegment, None),
    ("DN:1", DecisionNetwork, 1.0), ("dn:0", DecisionNetwork, 0.0),
])
def test_policy_strings_parse(text, kind, value):
    policy = parse_policy(text)
    assert isinstance(policy, kind)
    if value is not None:
        assert value == getattr(policy, {"dn": "threshold", "oracle": "threshold", "fixed": "interval",
                                         "diff": "max_difference", "flow": "max_magnitude"}
                                [text[:text.index(":")].lower()])


@pytest.mark.parametrize("text,message", [
    ("dn:1.7", "in \\[0, 1\\]"), ("oracle:-0.1", "in \\[0, 1\\]"), ("fixed:0", ">= 1"),
    ("foo", "valid forms"), ("dn:", "needs a value"), ("fixed:2.5", "whole number"), ("diff:-1", ">= 0"),
    ("flow:abc", "number"), ("always:3", "valid forms"),
])
def test_bad_policy_strings_fail_with_a_clear_message(text, message):
    with pytest.raises(DvsnetError, match=message):
        parse_policy(text)


@pytest.mark.parametrize("text,target", [("dn:fps=30", 30.0), ("DN:agree=0.95", 0.95), ("dn:agree=1", 1.0)])
def test_target_policy_strings_parse_and_print_back(text, target):
    from dvsnet.control import ThresholdController

    policy = parse_policy(text)
    assert isinstance(policy, ThresholdController) and policy.target == target
    assert parse_policy(repr(policy)).target == target


@pytest.mark.parametrize("text,message", [
    ("dn:fps=0", "> 0 frames/s"), ("dn:agree=1.5", "in \\(0, 1\\]"),
    ("dn:speed=3", "valid: dn:fps=F, dn:agree=A"), ("dn:fps=", "needs a value, e.g. dn:fps=15"),
    ("dn:agree=x", "not a number"), ("dn:fps=nan", "> 0"),
])
def test_bad_target_strings_fail_with_a_clear_message(text, message):
    with pytest.raises(DvsnetError, match=message):
        parse_policy(text)


def test_confidence_score_is_the_share_of_agreeing_pixels():
    seg = torch.zeros(2, 4, 5, dtype=torch.long)
    warped = seg.clone()
    warped[0, 0, :] = 3  # 5 of 20 pixels differ
    warped[1] = 1  # none agree
    assert torch.allclose(confidence_score(warped, seg), torch.tensor([0.75, 0.0]))


def batch(n=3, ages=(0, 4, 5), images=None, **given):
    key_images = torch.rand(n, 3, 16, 16)
    return RegionBatch(ages=torch.tensor(ages), key_images=key_images,
                       images=key_images if images is None else images, **given)


def test_fixed_interval_warps_until_the_key_is_interval_frames_old():
    warp, _ = FixedInterval(5).decide(batch())
    assert warp.tolist() == [True, True, False]


def test_frame_difference_follows_eq2_in_grey_levels():
    b = batch(2, (1, 1))
    b.images = b.key_images.clone()
    b.images[1] = (b.images[1] + 20 / 255).clamp(max=1)
    warp, d = FrameDifference(10).decide(b)
    d = d.tolist()
    assert d[0] == pytest.approx(0.0, abs=1e-4) and 5 < d[1] <= 20.01
    assert warp.tolist() == [True, d[1] <= 10]


def test_flow_magnitude_follows_eq3_in_image_pixels():
    flow = torch.zeros(2, 2, 8, 8)  # at half the image resolution
    flow[1, 0], flow[1, 1] = 3.0, 4.0  # 5 px on the flow grid = 10 image px
    warp, f = FlowMagnitude(6).decide(batch(2, (1, 1), flow=flow))
    assert f.tolist() == pytest.approx([0.0, 10.0])
    assert warp.tolist() == [True, False]


def test_decision_network_thresholds_the_networks_score():
    class Halves(torch.nn.Module):
        in_size = (4, 4)

        def forward(self, features):  # (B, C, 4, 4) -> mean of the first channel
            assert features.shape[-2:] == (4, 4)
            return features[:, 0].flatten(1).mean(1)

    features = torch.stack([torch.full((2, 8, 8), 0.95), torch.full((2, 8, 8), 0.5)])
    b = batch(2, (1, 1), flow=torch.zeros(2, 2, 8, 8), features=features)
    warp, scores = DecisionNetwork(0.9, Halves()).decide(b)
    assert warp.tolist() == [True, False] and scores.tolist() == pytest.approx([0.95, 0.5])


def test_a_decision_network_for_other_features_is_a_clear_error():
    from dvsnet.models.decision import DecisionNet

    # e.g. DIS motion features into a DN trained on 5 channels
    b = batch(2, (1, 1), flow=torch.zeros(2, 2, 8, 8), features=torch.zeros(2, 7, 8, 8))
    with pytest.raises(DvsnetError, match="reads 5 feature channels but the flow estimator gives 7"):
        DecisionNetwork(0.9, DecisionNet(5, (4, 4))).decide(b)


def test_a_keyseg_decision_network_also_reads_the_key_segmentation():
    class LastChannel(torch.nn.Module):  # the boundary channel appended after the motion features
        in_size = (16, 16)
        reads_key_segmentation = True

        def forward(self, features):
            assert features.shape[1:] == (9, 16, 16)
            return 1 - features[:, -1].flatten(1).mean(1)

    key_logits = torch.zeros(2, 19, 32, 32)
    key_logits[:, 0] = 10.0
    key_logits[1, 1, :, 16:] = 20.0  # region 1's key segmentation has a class boundary
    b = batch(2, (1, 1), key_logits=key_logits, flow=torch.zeros(2, 2, 16, 16),
              features=torch.zeros(2, 7, 16, 16))
    warp, scores = DecisionNetwork(0.99, LastChannel()).decide(b)
    assert warp.tolist() == [True, False]
    # one column of 32 is boundary
    assert scores[0] == pytest.approx(1.0) and scores[1] == pytest.approx(1 - 1 / 32)
