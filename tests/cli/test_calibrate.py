"""`dvsnet calibrate`: a DN from unlabelled frames, its table, and the refusals around it."""
import json

import cv2
import pytest

from dvsnet.cli import main
from tests.segmenters import panning_clip
from tests.videos import lie_about_frame_count


@pytest.fixture
def clip(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for i, frame in enumerate(panning_clip(14, height=64, width=128)):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), frame[:, :, ::-1])
    return folder


def calibrate(clip, weights, out, cache, *extra):
    return main(["calibrate", str(clip), "--segmenter", str(weights), "--grid", "1x2", "--out", str(out),
                 "--max-offset", "2", "--steps", "8", "--thresholds", "0.5,0.99", "--cache", str(cache),
                 "--no-progress", "--threads", "1", *extra])


@pytest.mark.backends
def test_calibrate_writes_a_dn_its_table_and_a_plot_that_segment_uses(clip, weights, tmp_path, capsys):
    out = tmp_path / "cal" / "dn.safetensors"
    assert calibrate(clip, weights, out, tmp_path / "cache") == 0
    printed = capsys.readouterr().out
    assert "within 5% of per-frame output" in printed and "within 10% of per-frame output" in printed
    assert sorted(p.name for p in out.parent.iterdir()) == ["calibration.json", "calibration.png",
                                                            "dn.safetensors"]
    record = json.loads((out.parent / "calibration.json").read_text())
    assert [r["threshold"] for r in record["thresholds"]] == [0.5, 0.99]
    for row in record["thresholds"]:
        assert 0 <= row["measured_agreement"] <= 1 and 0 <= row["predicted_agreement"] <= 1
        assert 0 < row["seg_share"] <= 1 and row["speedup"] > 0
    # 14 frames, one source: frames 0..9 train, 10..13 held out; chunks of 3 frames (key + 2), a last
    # chunk of one frame has no offset and is dropped; 2 regions per frame
    assert (record["training_clips"][0]["frames"] == [0, 10]
            and record["held_out_clips"][0]["frames"] == [10, 14])
    assert record["samples"] == {"training": 3 * 2 * 2, "held_out": 1 * 2 * 2}
    assert record["pipeline"]["grid"] == "1x2" and record["segmenter_identity"].startswith(weights.name)

    runs = tmp_path / "runs"
    assert main(["segment", str(clip), "--segmenter", str(weights), "--grid", "1x2", "--dn", str(out),
                 "--policy", "dn:0.5", "--output", str(runs), "--no-progress"]) == 0


def test_a_calibrated_dn_is_refused_for_another_segmenter_or_flow(clip, weights, tmp_path, capsys):
    out = tmp_path / "dn.safetensors"
    assert calibrate(clip, weights, out, tmp_path / "cache") == 0
    capsys.readouterr()
    base = ["segment", str(clip), "--grid", "1x2", "--dn", str(out), "--output", str(tmp_path / "runs"),
            "--no-progress"]
    assert main([*base, "--segmenter", "fast"]) == 2
    assert "was calibrated for segmenter" in capsys.readouterr().err
    assert main([*base, "--segmenter", str(weights), "--flow", "dis-medium"]) == 2
    assert "was calibrated for flow 'dis'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_calibrate_takes_a_video_shorter_than_its_header(weights, tmp_path, capsys):
    """An AVI announcing 444 frames over 14 clean ones is calibrated on its 14 frames, split as a folder of
    the same frames would be (it was refused as corrupt)."""
    avi = tmp_path / "short.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (128, 64))
    for frame in panning_clip(14, height=64, width=128):
        writer.write(frame[:, :, ::-1].copy())
    writer.release()
    lie_about_frame_count(avi, 444)
    out = tmp_path / "cal" / "dn.safetensors"
    assert calibrate(avi, weights, out, tmp_path / "cache") == 0
    record = json.loads((out.parent / "calibration.json").read_text())
    assert (record["training_clips"][0]["frames"] == [0, 10]
            and record["held_out_clips"][0]["frames"] == [10, 14])


def test_calibrate_refuses_short_clips_and_existing_files(clip, weights, tmp_path, capsys):
    assert calibrate(clip, weights, tmp_path / "a.safetensors", tmp_path / "cache", "--max-offset", "7") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has 14 frames; key offsets up to 7 need at least 16" in err
    assert not (tmp_path / "a.safetensors").exists()
    out = tmp_path / "b.safetensors"
    out.write_bytes(b"mine")
    assert calibrate(clip, weights, out, tmp_path / "cache") == 2
    assert "calibrate never overwrites" in capsys.readouterr().err and out.read_bytes() == b"mine"


def test_held_out_sources_are_not_trained_on(clip, weights, tmp_path, capsys):
    out = tmp_path / "dn.safetensors"
    assert calibrate(clip, weights, out, tmp_path / "cache", "--held-out", str(clip)) == 0
    record = json.loads((tmp_path / "calibration.json").read_text())
    assert [c["frames"] for c in record["training_clips"]] == [[0, 14]]
    assert [c["frames"] for c in record["held_out_clips"]] == [[0, 14]]
    # 4 chunks of 3, 1 of 2
    assert record["samples"]["held_out"] == record["samples"]["training"] == 4 * 2 * 2 + 1 * 2
