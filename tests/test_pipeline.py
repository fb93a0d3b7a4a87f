import numpy as np
import pytest
import torch

from dvsnet import DVSNet, DvsnetError
from dvsnet.policies import DecisionNetwork
from dvsnet.policy_strings import POLICIES
from dvsnet.stats import RunStats
from tests.segmenters import ColourSegmenter, panning_clip


def run(policy, frames, grid=(2, 2), seg=None, flow="dis", **kwargs):
    seg = ColourSegmenter() if seg is None else seg
    pipe = DVSNet(segmenter=seg, flow=flow, policy=policy, grid=grid, **kwargs)
    if hasattr(seg, "calls"):  # forget the adapter's dry run: count the pipeline's calls only
        seg.calls.clear()
        seg.sizes.clear()
    outs = [pipe.step(f) for f in frames]
    pipe.stats = RunStats()  # the run's bookkeeping, as every caller keeps it
    for out in outs:
        pipe.stats.add(out)
    return seg, pipe, outs


def test_always_segments_every_region_of_every_frame_in_one_batch():
    seg, pipe, outs = run("always", panning_clip(6))
    assert seg.calls == [4] * 6  # one batched call of 4 regions per frame
    assert all(o.paths == ["seg"] * 4 for o in outs)
    assert (pipe.stats.frames, pipe.stats.regions_seg, pipe.stats.regions_warp) == (6, 24, 0)
    assert [r["frame"] for r in pipe.stats.restarts] == [0]


def test_fixed_5_segments_exactly_on_frames_0_5_10():
    seg, _, outs = run("fixed:5", panning_clip(12))
    seg_frames = [o.index for o in outs if "seg" in o.paths]
    assert seg_frames == [0, 5, 10]
    assert seg.calls == [4, 4, 4]  # the segmenter ran on those three frames only
    assert all(o.paths in (["seg"] * 4, ["warp"] * 4) for o in outs)
    assert outs[7].key_ages == [2, 2, 2, 2]


@pytest.mark.parametrize("policy", ["flow:100", "diff:255"])
def test_permissive_policies_warp_most_regions_and_agree_with_per_frame_labels(policy):
    frames = panning_clip(12)
    _, _, reference = run("always", frames)
    _, pipe, outs = run(policy, frames)
    assert pipe.stats.regions_warp >= 0.8 * 4 * len(frames)
    agreement = np.mean([(o.labels == r.labels).mean() for o, r in zip(outs, reference)])
    assert agreement >= 0.95


def test_a_stride_4_segmenter_gets_crops_it_accepts_and_warps_as_well():
    """`accurate` returns stride-4 logits but takes multiples of 8: crops are padded to both."""
    frames = [f[:, :236] for f in panning_clip(8, height=100)]  # 2x2 regions of sizes 4 does not reach 8
    stride_4 = ColourSegmenter(stride=4, input_multiple=8)
    _, _, reference = run("always", frames, seg=stride_4)
    assert all(h % 8 == 0 and w % 8 == 0 for h, w in stride_4.sizes)
    _, pipe, outs = run("flow:100", frames, seg=ColourSegmenter(stride=4, input_multiple=8))
    assert pipe.stats.regions_warp >= 0.8 * 4 * len(frames)
    assert all(o.labels.shape == (100, 236) for o in outs)
    agreement = np.mean([(o.labels == r.labels).mean() for o, r in zip(outs, reference)])
    assert agreement >= 0.95


class WarpDiagonal:
    """Warp regions 1 and 2 of a 2x2 grid, segment 0 and 3: both paths in one frame, interleaved."""

    def decide(self, batch):
        return torch.tensor([False, True, True, False]), torch.full((4,), float("nan"))


def test_a_frame_with_both_paths_puts_each_region_where_it_belongs():
    frames = panning_clip(2)
    _, _, segmented = run("always", frames, stitch="core")
    _, _, warped = run("fixed:1000", frames, stitch="core")
    _, pipe, mixed = run(WarpDiagonal(), frames, stitch="core")
    assert mixed[1].paths == ["seg", "warp", "warp", "seg"]
    for region, path in zip(pipe.regions, mixed[1].paths):
        core = (slice(region.core_top, region.core_bottom), slice(region.core_left, region.core_right))
        expected = (segmented if path == "seg" else warped)[1].labels[core]
        assert np.array_equal(mixed[1].labels[core], expected)
    assert not np.array_equal(segmented[1].labels, warped[1].labels)  # the two paths differ on this clip


def test_frame_result_contents():
    _, _, outs = run("fixed:3", panning_clip(2, height=67, width=131), grid=(3, 3))
    out = outs[1]
    assert out.labels.shape == (67, 131) and out.labels.dtype == np.uint8
    assert len(out.paths) == len(out.scores) == len(out.regions) == 9
    assert set(out.timings) == {"flow", "decision", "segmentation", "warp", "stitch", "total"}
    assert out.timings["total"] >= out.timings["segmentation"] + out.timings["warp"]
    assert outs[0].restarted and not out.restarted


def test_a_new_frame_size_restarts_the_key_frames_and_reset_forgets_them():
    _, pipe, _ = run("fixed:100", panning_clip(3))
    out = pipe.step(panning_clip(1, height=64, width=96)[0])
    assert out.restarted and out.paths == ["seg"] * 4 and out.labels.shape == (64, 96)
    pipe.reset()
    assert pipe.step(panning_clip(1)[0]).paths == ["seg"] * 4


def test_oracle_scores_are_true_confidence_scores():
    """Eq. (1) recomputed from the pieces: the share of each region's pixels where the key logits warped by
    DIS flow agree with the segmenter's labels of the current crop."""
    from dvsnet.flow import DISFlow
    from dvsnet.policies import confidence_score
    from dvsnet.regions import crop_regions, padded_size
    from dvsnet.warp import upsample_logits, warp_labels

    frames = panning_clip(4)
    seg, pipe, outs = run("oracle:0.5", frames)
    assert all(o.paths == ["warp"] * 4 for o in outs[1:])  # so frame 0 stays every region's key
    size = padded_size(pipe.regions, 8)

    def crops(frame):
        return crop_regions(torch.from_numpy(frame).permute(2, 0, 1).float() / 255, pipe.regions, size)

    key = crops(frames[0])
    for index in (1, 3):
        cur = crops(frames[index])
        flow, _ = DISFlow()(key, cur)
        warped = warp_labels(seg(key), flow, size, upscale=2)[1]
        expected = confidence_score(warped, upsample_logits(seg(cur), size)[1])
        assert outs[index].scores == pytest.approx(expected.tolist(), abs=1e-6)
        assert min(outs[index].scores) < 1.0  # the clip pans: warping is not trivially exact


def test_dn_policy_with_a_given_network():
    class Constant(torch.nn.Module):
        in_size = (16, 16)

        def forward(self, features):
            return torch.full((features.shape[0],), 0.7)

    _, _, outs = run(DecisionNetwork(0.6, Constant()), panning_clip(3))
    assert outs[2].paths == ["warp"] * 4 and outs[2].scores == pytest.approx([0.7] * 4)
    _, _, outs = run(DecisionNetwork(0.8, Constant()), panning_clip(3))
    assert outs[2].paths == ["seg"] * 4


def test_a_policy_with_observe_sees_every_frame_and_dn_frames_carry_their_threshold():
    class Watching(WarpDiagonal):
        def __init__(self):
            self.seen = []

        def observe(self, result):
            self.seen.append((result.index, result.paths))

    policy = Watching()
    _, _, outs = run(policy, panning_clip(3))
    assert policy.seen == [(o.index, o.paths) for o in outs] and all(o.threshold is None for o in outs)
    _, _, outs = run("dn:0.9", panning_clip(3))
    assert [o.threshold for o in outs] == [None, 0.9, 0.9]


@pytest.mark.parametrize("frame", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), "x"])
def test_bad_frames_fail_clearly(frame):
    _, pipe, _ = run("always", [])
    with pytest.raises(DvsnetError, match="H×W×3 uint8"):
        pipe.step(frame)


class ConstantFlow:
    """A flow estimator that records its input size and returns the same flow (dx, dy) everywhere."""

    name = "constant"

    def __init__(self, dx: float):
        self.dx, self.sizes = dx, []

    def __call__(self, key, cur):
        self.sizes.append(tuple(cur.shape[-2:]))
        flow = torch.zeros(cur.shape[0], 2, *cur.shape[-2:])
        flow[:, 0] = self.dx
        return flow, None


def test_frames_wider_than_flow_width_get_their_flow_at_that_width_and_in_its_pixels():
    frames = panning_clip(3, height=64, width=1024)
    scaled, full = ConstantFlow(2.0), ConstantFlow(2.0)
    _, _, outs = run("flow:100", frames, grid=(1, 1), flow=scaled, flow_width=512)
    assert set(scaled.sizes) == {(32, 512)}  # the 64x1024 crop at half size
    assert outs[1].scores == [pytest.approx(4.0)]  # 2 px of the half-size grid = 4 px of the frame
    _, _, outs = run("flow:100", frames, grid=(1, 1), flow=full, flow_width=None)
    assert set(full.sizes) == {(64, 1024)} and outs[1].scores == [pytest.approx(2.0)]
    narrow = ConstantFlow(2.0)
    run("flow:100", panning_clip(3, height=64, width=512), grid=(1, 1), flow=narrow, flow_width=512)
    assert set(narrow.sizes) == {(64, 512)}  # not wider than flow_width: as it is
    for bad in (8, 0, 512.0):
        with pytest.raises(DvsnetError, match="flow_width must be a whole number of pixels >= 16 or None"):
            DVSNet(segmenter=ColourSegmenter(), flow_width=bad)


@pytest.mark.parametrize("name", POLICIES)
def test_every_policy_kind_runs_the_pipeline(name):
    """Each policy form with its example value: frame 0 segments every region, later frames take either
    path, and a policy that computes scores gives one per region once there are key frames."""
    kind = POLICIES[name]
    policy = f"{name}:{kind.example}" if kind.value_type else name
    frames = panning_clip(6)
    _, pipe, outs = run(policy, frames)
    assert outs[0].paths == ["seg"] * 4 and outs[0].scores == [None] * 4
    for out in outs:
        assert out.labels.shape == frames[0].shape[:2] and set(out.paths) <= {"seg", "warp"}
    scored = [s is not None for out in outs[1:] for s in out.scores]
    assert all(scored) if name in ("dn", "diff", "flow", "oracle") else not any(scored)
    assert repr(pipe.policy) == policy


class _TrustsEverything(torch.nn.Module):
    """A decision network that scores every region 1.0: only a key-age cap makes the pipeline segment."""

    in_size = (16, 16)

    def forward(self, features):
        return torch.ones(features.shape[0])


@pytest.mark.parametrize("max_key_age, seg_frames", [
    (None, [0, 10, 20]),  # dn:T's own cap, config.DN_MAX_KEY_AGE = 10
    (4, [0, 4, 8, 12, 16, 20]),
    (0, [0]),  # no cap: the DN alone decides
])
def test_a_dn_policy_re_segments_keys_as_old_as_the_cap(max_key_age, seg_frames):
    _, _, outs = run(DecisionNetwork(0.5, _TrustsEverything()), panning_clip(22), max_key_age=max_key_age)
    assert [o.index for o in outs if "seg" in o.paths] == seg_frames
    assert max(max(o.key_ages) for o in outs) == (21 if max_key_age == 0 else (max_key_age or 10) - 1)


def test_the_cap_applies_to_any_policy_when_given_and_to_none_but_dn_by_default():
    _, _, outs = run("fixed:8", panning_clip(12))
    assert [o.index for o in outs if "seg" in o.paths] == [0, 8]
    _, _, outs = run("fixed:8", panning_clip(12), max_key_age=3)
    assert [o.index for o in outs if "seg" in o.paths] == [0, 3, 6, 9]


@pytest.mark.parametrize("size, grid", [((64, 128), (1, 1)), ((72, 1400), (1, 1)), ((1100, 2100), (2, 2))])
def test_grid_auto_picks_regions_of_about_512x1024_px(size, grid):
    # the frame size is resolved on the first frame; the ColourSegmenter runs at any size
    pipe = DVSNet(segmenter=ColourSegmenter(), policy="always")
    assert pipe.config.grid == "auto" and pipe.grid is None
    out = pipe.step(np.zeros((*size, 3), np.uint8))
    assert pipe.grid == grid and len(out.regions) == grid[0] * grid[1]
