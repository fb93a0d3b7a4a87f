"""Online self-calibration (dvsnet.online): the free samples, the model, the keep-or-segment rule, reset."""
import numpy as np
import pytest
import torch

from dvsnet.config import DN_MAX_KEY_AGE, ONLINE_MAX_KEY_AGE, PipelineConfig
from dvsnet.flow import motion_features
from dvsnet.online import KEY_PRICE, AgreementModel, OnlineCalibration, key_price, logit, sigmoid
from dvsnet.pipeline import DVSNet
from tests.segmenters import PALETTE, ColourSegmenter


class StillFlow:
    """Zero flow and the DIS motion features it implies: warping a key is copying it."""

    name = "dis"

    def __call__(self, key, cur):
        flow = torch.zeros(key.shape[0], 2, *key.shape[-2:])
        return flow, motion_features(key, cur, flow)


def colour_frame(height, width, colour, patch=None, patch_colour=1):
    """H×W×3 uint8 of palette colour `colour`, with the box `patch` (top, bottom, left, right) in another."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = (PALETTE[colour].numpy() * 255).astype(np.uint8)
    if patch is not None:
        top, bottom, left, right = patch
        frame[top:bottom, left:right] = (PALETTE[patch_colour].numpy() * 255).astype(np.uint8)
    return frame


def test_the_free_sample_is_eq1_of_the_warped_old_key():
    # frame 1 recolours a quarter of the frame; with zero flow, warping frame 0's key gives frame 0's labels,
    # so the sample is the share of pixels where the two frames' segmented outputs agree (about 3/4)
    frames = [colour_frame(64, 128, 0), colour_frame(64, 128, 0, patch=(0, 32, 0, 64))]
    pipe = DVSNet(segmenter=ColourSegmenter(), flow=StillFlow(), policy="dn:0.9", grid=(1, 1), max_key_age=1)
    first, second = (pipe.step(f) for f in frames)
    assert first.true_scores == [None]  # no old key on the first frame
    assert first.paths == second.paths == ["seg"]
    expected = float((first.labels == second.labels).mean())
    assert second.true_scores == [pytest.approx(expected)]
    assert expected == pytest.approx(0.75, abs=0.03)
    assert second.online["samples"] == 1


def test_the_free_samples_are_measured_on_each_regions_own_pixels():
    # 2x2 grid, the patch in the top-left region only: the other regions' old keys agree everywhere
    frames = [colour_frame(64, 128, 0), colour_frame(64, 128, 0, patch=(0, 16, 0, 32))]
    pipe = DVSNet(segmenter=ColourSegmenter(), flow=StillFlow(), policy="dn:0.9", grid=(2, 2), overlap=0,
                  max_key_age=1)
    first = pipe.step(frames[0])
    out = pipe.step(frames[1])
    expected = float((first.labels[:32, :64] == out.labels[:32, :64]).mean())
    assert out.true_scores == [pytest.approx(expected), 1.0, 1.0, 1.0]
    assert expected == pytest.approx(0.75, abs=0.05)


def test_without_online_no_sample_is_measured():
    frames = [colour_frame(64, 128, 0), colour_frame(64, 128, 0, patch=(0, 32, 0, 64))]
    pipe = DVSNet(segmenter=ColourSegmenter(), flow=StillFlow(), policy="dn:0.9", grid=(1, 1), max_key_age=1,
                  online=False)
    outs = [pipe.step(f) for f in frames]
    assert outs[1].true_scores == [None] and outs[1].online is None
    assert pipe.policy.online is None


def test_online_is_the_default_and_the_key_age_cap_a_safety_net():
    config = PipelineConfig(segmenter=ColourSegmenter(), flow=StillFlow())
    pipe = DVSNet.from_config(config)
    assert pipe.policy.online is not None and pipe.max_key_age == ONLINE_MAX_KEY_AGE
    assert config.to_record()["online"] is True
    off = DVSNet.from_config(config.replace(online=False))
    assert off.policy.online is None and off.max_key_age == DN_MAX_KEY_AGE
    assert PipelineConfig.from_record(config.replace(online=False).to_record()).online is False
    assert PipelineConfig.from_record({}).online is False  # a record from before online calibration


def test_the_model_recovers_a_known_monotone_mapping():
    # measured agreement = sigmoid(-1 + 0.8 logit(s) - 0.5 log(1 + age)): the DN overconfident, more so for
    # old keys
    rng = np.random.default_rng(0)
    truth = np.array([-1.0, 0.8, -0.5])
    model = AgreementModel(np.array([0.0, 1.0, 0.0]), strength=0.1, forgetting=1.0)
    for _ in range(400):
        x = np.array([1.0, logit(rng.uniform(0.6, 0.99)), np.log1p(rng.integers(1, 40))])
        model.learn(x, float(sigmoid(x @ truth)))
    grid = np.array([[1.0, logit(s), np.log1p(a)] for s in (0.7, 0.9, 0.97) for a in (1, 10, 30)])
    np.testing.assert_allclose(model.predict(grid), sigmoid(grid @ truth), atol=0.01)


def test_before_any_sample_the_prediction_is_the_dn_score():
    calibration = OnlineCalibration("dis")
    scores = torch.tensor([0.5, 0.9, 0.97])
    predicted = calibration.predict(scores, torch.rand(3, 7, 16, 16), torch.tensor([1, 5, 20]))
    np.testing.assert_allclose(predicted.numpy(), scores.numpy(), atol=1e-6)


def test_an_overconfident_dn_is_corrected_by_its_samples():
    # the DN says 0.97 whatever happens; the footage agrees 0.85
    calibration = OnlineCalibration("mv")  # features without residual channels: x = [1, logit(s), log(1+a)]
    for age in range(1, 41):
        calibration.predict(torch.tensor([0.97]), None, torch.tensor([age % 10 + 1]))
        calibration.learn([0.85])
    predicted = calibration.predict(torch.tensor([0.97]), None, torch.tensor([5]))
    assert float(predicted[0]) == pytest.approx(0.85, abs=0.01)
    assert calibration.state()["samples"] == 40
    assert calibration.state()["mean_error"] > 0  # it was overconfident before it learnt


def test_reset_restores_the_initial_state():
    calibration = OnlineCalibration("dis")
    fresh = OnlineCalibration("dis")
    features, ages = torch.rand(2, 7, 16, 16), torch.tensor([3, 7])
    for _ in range(5):
        predicted = calibration.predict(torch.tensor([0.9, 0.95]), features, ages)
        calibration.keep_keys(predicted, ages, 0.9)
        calibration.learn([0.6, None])
    calibration.reset()
    assert calibration.state() == fresh.state()
    np.testing.assert_array_equal(calibration.predict(torch.tensor([0.9, 0.95]), features, ages).numpy(),
                                  fresh.predict(torch.tensor([0.9, 0.95]), features, ages).numpy())
    assert calibration.age_limit(0.9) == fresh.age_limit(0.9)


def test_key_price_spans_the_threshold_range():
    assert key_price(0.5) == pytest.approx(KEY_PRICE)
    assert key_price(1.0) == 0.0
    prices = [key_price(t) for t in (0.5, 0.7, 0.9, 0.99)]
    assert prices == sorted(prices, reverse=True)


def run_keep_keys(calibration, predicted_by_age, threshold):
    """Feed one region's predicted agreement at ages 1, 2, ... until it is segmented; -> the age it was."""
    for age, p in enumerate(predicted_by_age, start=1):
        keep = calibration.keep_keys(torch.tensor([p], dtype=torch.float64), torch.tensor([age]), threshold)
        if not keep[0]:
            return age
    return None


def test_a_key_is_kept_while_its_loss_does_not_grow():
    calibration = OnlineCalibration("dis", warm_up_age=1000)
    assert run_keep_keys(calibration, [0.95] * 200, 0.9) is None  # a still: a·l - L stays at l = 0.05


def test_a_cut_is_segmented_at_once_and_a_steady_decay_at_the_renewal_optimum():
    calibration = OnlineCalibration("dis", warm_up_age=1000)
    # a cut at age 4: 4 · 0.8 - 3 · 0.05 = 3.05 >= key_price(0.5) = 3
    assert run_keep_keys(calibration, [0.95, 0.95, 0.95, 0.2, 0.2], 0.5) == 4
    # loss 0.02 a: a · l - L = 0.01 a (a + 1) >= key_price(0.9) = 1/3 first at a = 6
    assert run_keep_keys(calibration, [1 - 0.02 * a for a in range(1, 30)], 0.9) == 6


def test_the_warm_up_cap_grows_with_the_key_price_and_doubles_with_every_sample():
    calibration = OnlineCalibration("mv", warm_up_age=3)
    limits = []
    for _ in range(3):
        limits.append((calibration.age_limit(0.5), calibration.age_limit(1.0)))
        calibration.predict(torch.tensor([0.9]), None, torch.tensor([2]))
        calibration.learn([0.9])
    assert limits == [(12, 3), (24, 6), (48, 12)]  # 3 · (1 + key_price(0.5) = 3), and 3 at a price of 0


def test_the_same_video_gives_the_same_decisions_and_reset_starts_over(sample_clips):
    from dvsnet.evaluate import load_frames

    frames = load_frames(sample_clips["carphone"], max_frames=24)
    config = PipelineConfig(device="cpu", backend="torch", precision="fp32", policy="dn:0.8")

    def run(pipe):
        outs = [pipe.step(f) for f in frames]
        return [o.paths for o in outs], [o.scores for o in outs], outs[-1].online

    pipe = DVSNet.from_config(config)
    first = run(pipe)
    pipe.reset()
    again = run(pipe)
    other = run(DVSNet.from_config(config))
    assert first == again == other
    assert first[2]["samples"] >= 2  # it learnt from the video's re-segmentations
    assert any(path == ["seg"] for path in first[0][1:])


def test_summary_json_records_online_calibration(tmp_path):
    import json

    import cv2

    from dvsnet import segment_video
    from tests.segmenters import panning_clip

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(panning_clip(12, speed=4.0)):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), frame[:, :, ::-1])
    config = PipelineConfig(segmenter=ColourSegmenter(), policy="dn:0.9", grid=(1, 1))
    run_dir, summary = segment_video(folder, config, output=tmp_path / "runs", writes=("csv",),
                                     note=lambda line: None)
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["config"]["online"] is True and on_disk["config"]["key_age_cap"] == ONLINE_MAX_KEY_AGE
    assert on_disk["online"]["samples"] >= 1  # the warm-up cap (5 frames) re-segments within 12 frames
    assert len(on_disk["online"]["weights"]) == 5 and on_disk["online"]["mean_abs_error"] is not None


@pytest.mark.parametrize("policy", ["dn:agree=0.9", "dn:fps=20"])
def test_a_target_keeps_its_online_model_through_reset(policy):
    frames = [colour_frame(64, 128, 0), colour_frame(64, 128, 0, patch=(0, 32, 0, 64))]
    pipe = DVSNet(segmenter=ColourSegmenter(), flow=StillFlow(), policy=policy, grid=(1, 1), max_key_age=1)
    for frame in frames:
        pipe.step(frame)
    online = pipe.policy.online
    assert online is not None and online.model.samples == 1
    pipe.reset()
    assert pipe.policy.online is online and online.model.samples == 0
