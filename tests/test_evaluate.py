"""Known-answer tests for the evaluation protocol (dvsnet.evaluate): what is scored, counted and timed."""
import time

import numpy as np
import pytest
import torch
from torch import nn

import dvsnet
from dvsnet.config import PipelineConfig
from dvsnet.errors import DvsnetError
from dvsnet.evaluate import Snippet, run_pipeline

H, W = 64, 128


class ConstantSegmenter(nn.Module):
    """A real stride-8 conv whose weights are zero and whose bias is one-hot: predicts `cls` everywhere."""

    def __init__(self, cls: int, num_classes: int = 19, delay_s: float = 0.0):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, kernel_size=8, stride=8)
        nn.init.zeros_(self.conv.weight)
        with torch.no_grad():
            self.conv.bias.zero_()
            self.conv.bias[cls] = 1.0
        self.num_classes = num_classes
        self.output_stride = 8
        self.delay_s = delay_s
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)  # a segmenter of known cost, to check what the clock covers
        return self.conv(images)


def _frames(n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """A textured scene panning 1 px per frame: real motion for DIS, H×W×3 uint8."""
    rng = np.random.default_rng(seed)
    wide = rng.integers(0, 256, size=(H, W + n, 3), dtype=np.uint8)
    wide = np.ascontiguousarray(np.repeat(np.repeat(wide[::4, ::4], 4, 0), 4, 1)[:H, :W + n])
    return tuple(np.ascontiguousarray(wide[:, i:i + W]) for i in range(n))


def _halves() -> np.ndarray:
    labels = np.zeros((H, W), np.uint8)
    labels[:, W // 2:] = 2
    return labels


def test_only_frame_19_is_scored_unless_all_frames():
    # frame 19 is all road (class 0); every other frame is half road, half building (class 2)
    labels = {offset: _halves() for offset in range(19)}
    labels[19] = np.zeros((H, W), np.uint8)
    snippet = Snippet("s0", _frames(20), labels)
    pipe = dvsnet.DVSNet(segmenter=ConstantSegmenter(0), flow="dis", policy="always", grid=(1, 1))

    last = run_pipeline([snippet], pipe, warmup_frames=0)
    assert last["miou"] == 1.0 and last["classes_present"] == 1 and last["scored_frames"] == 1
    assert sum(map(sum, last["confusion_matrix"])) == H * W

    every = run_pipeline([snippet], pipe, all_frames=True, warmup_frames=0)
    # road: TP = 19 * HW/2 + HW, union = 20 HW  -> 0.525 ; building: never predicted -> 0
    assert every["iou_per_class"]["road"] == pytest.approx(0.525)
    assert every["iou_per_class"]["building"] == 0.0
    assert every["iou_per_class"]["car"] is None  # absent: not in truth, never predicted
    assert every["miou"] == pytest.approx(0.525 / 2)
    assert every["scored_frames"] == 20


def test_ignore_pixels_are_not_scored():
    labels = np.zeros((H, W), np.uint8)
    labels[:, W // 2:] = 255
    snippet = Snippet("s0", _frames(20), {19: labels})
    pipe = dvsnet.DVSNet(segmenter=ConstantSegmenter(0), flow="dis", policy="always", grid=(1, 1))
    result = run_pipeline([snippet], pipe, warmup_frames=0)
    assert result["miou"] == 1.0
    assert sum(map(sum, result["confusion_matrix"])) == H * W // 2


@pytest.mark.parametrize("policy, grid, seg_share", [
    ("always", (2, 2), 1.0),
    ("fixed:5", (2, 2), 4 / 20),    # key frames at 0, 5, 10, 15 in every region
    ("fixed:20", (1, 2), 1 / 20),   # only frame 0
    ("fixed:3", (1, 1), 7 / 20),    # 0, 3, ..., 18
])
def test_path_shares(policy, grid, seg_share):
    snippets = [Snippet(f"s{i}", _frames(20, seed=i), {19: _halves()}) for i in range(2)]
    pipe = dvsnet.DVSNet(segmenter=ConstantSegmenter(0), flow="dis", policy=policy, grid=grid, overlap=8)
    result = run_pipeline(snippets, pipe, warmup_frames=0)
    regions = grid[0] * grid[1]
    assert result["frames"] == 40 and result["regions_per_frame"] == regions
    assert result["region_frames"] == 40 * regions
    assert result["regions_seg"] == round(seg_share * 40 * regions)
    assert result["seg_share"] == pytest.approx(seg_share)
    assert result["warp_share"] == pytest.approx(1 - seg_share)
    assert "workload_saved" not in result  # the workload saved is warp_share: one name per figure
    # a constant segmenter warped by any flow is still constant: accuracy does not depend on the policy
    assert result["iou_per_class"]["road"] == pytest.approx(0.5)


def test_fps_counts_pipeline_steps_only_and_excludes_warm_up():
    delay = 0.02
    seg = ConstantSegmenter(0, delay_s=delay)
    pipe = dvsnet.DVSNet(segmenter=seg, flow="dis", policy="always", grid=(1, 1))
    snippet = Snippet("s0", _frames(20), {19: _halves()})
    result = run_pipeline([snippet], pipe, warmup_frames=5)
    assert seg.calls == 1 + 5 + 20  # the adapter's dry run, the warm-up, then the 20 timed frames
    assert result["frames"] == 20
    # every timed frame cost at least one segmenter call; only 20 frames are in the denominator
    assert result["ms_per_frame"] >= 1000 * delay
    assert result["fps"] == pytest.approx(1000.0 / result["ms_per_frame"])
    assert result["stage_ms"]["segmentation"] >= 1000 * delay
    assert result["stage_ms"]["total"] <= result["ms_per_frame"]


def test_no_snippets_is_a_user_error():
    pipe = dvsnet.DVSNet(segmenter=ConstantSegmenter(0), flow="dis", policy="always", grid=(1, 1))
    with pytest.raises(DvsnetError, match="no snippets"):
        run_pipeline([], pipe)


@pytest.fixture(scope="module")
def synth_tree(tmp_path_factory):
    from dvsnet.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, "val", sequences=2, frames=30, size=(H, W), seed=11, progress=False)
    return root


def _real_naming_copy(synth_root, dest, first_frame=100):
    """The synthetic tree re-laid out like real Cityscapes: frame numbers from `first_frame`, labels on
    the 20th frame of each snippet only."""
    import shutil

    from dvsnet.data.cityscapes import CityscapesSequences

    for item in CityscapesSequences(synth_root, "val"):
        city, seq = item.city, item.sequence
        images = dest / "leftImg8bit_sequence" / "val" / city
        labels = dest / "gtFine" / "val" / city
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for offset, path in enumerate(item.frame_paths):
            shutil.copy(path, images / f"{city}_{seq:06d}_{first_frame + offset:06d}_leftImg8bit.png")
        shutil.copy(item.label_paths[19],
                    labels / f"{city}_{seq:06d}_{first_frame + 19:06d}_gtFine_labelIds.png")
    return dest


def test_constant_prediction_on_a_generated_tree_matches_a_hand_count(synth_tree):
    from dvsnet.data.cityscapes import CityscapesSequences, load_labels
    from dvsnet.evaluate import evaluate

    truth = np.stack([load_labels(s.label_paths[19]) for s in CityscapesSequences(synth_tree, "val")])
    valid = truth != 255
    cls = int(np.bincount(truth[valid]).argmax())  # predict the most common class everywhere
    present = set(np.unique(truth[valid]).tolist()) | {cls}
    expected = (truth[valid] == cls).mean() / len(present)  # IoU of cls; every other present class 0

    config = PipelineConfig(segmenter=ConstantSegmenter(cls), flow="dis", policy="fixed:5", grid=(2, 2))
    result = evaluate(synth_tree, config, warmup_frames=0)
    assert result["miou"] == pytest.approx(expected)
    assert result["classes_present"] == len(present)
    assert result["snippets"] == 2 and result["frames"] == 40 and result["scored_frames"] == 2
    # 64 px at 2048 -> 4 at 128
    assert result["config"]["overlap"] == 4 and result["config"]["overlap_default"]

    every = evaluate(synth_tree, config, warmup_frames=0, all_frames=True, max_snippets=1)
    assert every["scored_frames"] == 20 and every["snippets"] == 1


def test_real_cityscapes_naming_gives_the_same_result(synth_tree, tmp_path):
    from dvsnet.evaluate import evaluate

    real = _real_naming_copy(synth_tree, tmp_path / "cityscapes")
    torch.manual_seed(0)
    seg = ConstantSegmenter(0)
    nn.init.normal_(seg.conv.weight, std=0.05)  # a varied prediction, so equal matrices mean something
    config = PipelineConfig(segmenter=seg, flow="dis", policy="fixed:4", grid=(1, 2))
    ours = evaluate(synth_tree, config, warmup_frames=0)
    theirs = evaluate(real, config, warmup_frames=0)
    assert theirs["confusion_matrix"] == ours["confusion_matrix"]
    assert (np.array(ours["confusion_matrix"]).sum(0) > 0).sum() >= 2  # at least two classes predicted
    assert theirs["regions_seg"] == ours["regions_seg"] == 2 * 5 * 2
    with pytest.raises(DvsnetError, match="no labels for offsets"):
        evaluate(real, config, warmup_frames=0, all_frames=True)


# --- without labels: evaluate_video against per-frame output -------------------------------------------

def test_a_segmenter_that_follows_a_panning_pattern_is_consistent_over_time():
    from dvsnet.evaluate import evaluate_video_configs
    from tests.segmenters import ColourSegmenter, panning_clip

    frames = panning_clip(12, height=64, width=128, speed=2.0)  # a pure horizontal shift, 2 px a frame
    seg = ColourSegmenter(stride=1)  # labels a pure function of each pixel: they shift exactly with the image
    configs = [PipelineConfig(segmenter=seg, flow="dis", policy=policy, grid=grid)
               for policy, grid in (("always", (1, 1)), ("fixed:4", (1, 2)))]
    same, fixed = evaluate_video_configs("panning", configs, frames=frames, warmup_frames=2)
    # `always` on 1x1 IS the reference: it agrees everywhere, on every frame
    assert same["pixel_agreement"] == same["pixel_agreement_min"] == same["miou_vs_per_frame"] == 1.0
    assert same["seg_share"] == 1.0 and "regions_segmented" not in same and same["frames"] == 12
    consistency = same["temporal_consistency"]
    assert consistency["dvsnet"] == consistency["per_frame"] > 0.9  # labels move with the pattern
    assert same["flicker_ceiling"] > 0.95
    assert fixed["temporal_consistency"]["per_frame"] == consistency["per_frame"]  # one reference for both
    assert fixed["temporal_consistency"]["dvsnet"] > 0.9 and 0.8 < fixed["pixel_agreement"] <= 1.0
    assert fixed["seg_share"] == pytest.approx(3 / 12)  # key frames 0, 4, 8
    assert fixed["speedup"] == pytest.approx(fixed["fps"] / fixed["fps_per_frame"])
    assert fixed["config"]["reference"]["policy"] == "always" and fixed["config"]["grid"] == "1x2"
    assert fixed["config"]["data"] == "panning" and fixed["config"]["consistency_flow"] == "dis-medium"


def test_configurations_evaluated_together_share_one_segmenter():
    from dvsnet.evaluate import evaluate_video_configs

    configs = [PipelineConfig(segmenter=ConstantSegmenter(0)), PipelineConfig(segmenter=ConstantSegmenter(1))]
    with pytest.raises(DvsnetError, match="must share the segmenter"):
        evaluate_video_configs("x", configs, frames=_frames(3))


def test_a_source_must_have_two_frames_and_fit_in_memory(tmp_path, monkeypatch):
    import cv2

    import dvsnet.evaluate
    from dvsnet.evaluate import load_frames

    for i, frame in enumerate(_frames(3)):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), frame)
    assert len(load_frames(tmp_path)) == 3 and load_frames(tmp_path, resize=64)[0].shape == (32, 64, 3)
    with pytest.raises(DvsnetError, match="at least 2"):
        load_frames(tmp_path, max_frames=1)
    monkeypatch.setattr(dvsnet.evaluate, "MAX_DECODED_BYTES", 2 * H * W * 3)
    with pytest.raises(DvsnetError, match="--max-frames"):
        load_frames(tmp_path)
