"""`dvsnet segment --flow mv` end to end, in-process: motion vectors from an H.264 file, the fallback to
DIS for sources without them, and the refusal with --flow-fallback none."""
from __future__ import annotations

import csv
import json

import cv2
import pytest

from dvsnet.cli import main
from dvsnet.data.motion import encode_video
from dvsnet.models.weights import read_metadata
from tests.conftest import textured_pan

ARGS = ["--no-progress", "--threads", "1", "--write", "csv"]


def rows(run_dir):
    with open(run_dir / "frames.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.backends
def test_mv_segments_an_h264_video_warping_from_its_vectors(av, tmp_path, weights, capsys):
    video = encode_video(textured_pan(2, 1, 8, 64, 128), tmp_path / "pan.mp4", crf=18)
    assert main(["segment", str(video), "--flow", "mv", "--policy", "fixed:4", "--segmenter", str(weights),
                 "--output", str(tmp_path / "runs"), *ARGS]) == 0
    run_dir = tmp_path / "runs" / "segment-0001"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["config"]["flow"] == "mv" and summary["frames"] == 8
    paths = [r["path"] for r in rows(run_dir) if r["region"] == "0"]
    assert paths == ["seg", "warp", "warp", "warp", "seg", "warp", "warp", "warp"]
    assert "note:" not in capsys.readouterr().err


def test_a_folder_of_frames_falls_back_to_dis_with_one_note(tmp_path, weights, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(textured_pan(2, 1, 3, 64, 128)):
        cv2.imwrite(str(folder / f"f{i}.png"), image)
    assert main(["segment", str(folder), "--flow", "mv", "--segmenter", str(weights),
                 "--output", str(tmp_path / "runs"), *ARGS]) == 0
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and "falls back to dis" in err
    summary = json.loads((tmp_path / "runs" / "segment-0001" / "summary.json").read_text())
    assert summary["config"]["flow"] == "dis"


@pytest.mark.parametrize("codec, suffix", [("libx265", ".mkv"), ("libvpx-vp9", ".webm")])
def test_flow_fallback_none_refuses_a_video_without_vectors_in_one_line(av, tmp_path, weights, capsys,
                                                                        codec, suffix):
    video = encode_video(textured_pan(2, 1, 3, 64, 128), tmp_path / f"clip{suffix}", codec=codec)
    assert main(["segment", str(video), "--flow", "mv", "--flow-fallback", "none",
                 "--segmenter", str(weights), "--output", str(tmp_path / "runs"), *ARGS]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "exports no motion vectors" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_calibrate_makes_a_dn_for_mv_that_segment_uses_with_mv_only(av, tmp_path, weights, capsys):
    video = encode_video(textured_pan(2, 1, 14, 64, 128), tmp_path / "pan.mp4", crf=18)
    out = tmp_path / "cal" / "dn.safetensors"
    assert main(["calibrate", str(video), "--flow", "mv", "--segmenter", str(weights), "--grid", "1x2",
                 "--out", str(out), "--max-offset", "2", "--steps", "8", "--thresholds", "0.5,0.99",
                 "--cache", str(tmp_path / "cache"), "--no-progress", "--threads", "1"]) == 0
    record = json.loads((out.parent / "calibration.json").read_text())
    assert (record["pipeline"]["flow"] == "mv"
            and record["samples"] == {"training": 3 * 2 * 2, "held_out": 1 * 2 * 2})
    assert read_metadata(out)["variant"] == "mv"  # the codec's own features, as the shipped mv DN reads
    base = ["segment", str(video), "--segmenter", str(weights), "--grid", "1x2", "--dn", str(out),
            "--policy", "dn:0.5", "--output", str(tmp_path / "runs"), *ARGS]
    assert main([*base, "--flow", "mv"]) == 0
    capsys.readouterr()
    assert main([*base, "--flow", "dis"]) == 2
    assert "reads 'mv' features, but flow estimator 'dis'" in capsys.readouterr().err


def test_calibrate_for_mv_refuses_frames_in_one_line_and_takes_no_fallback(tmp_path, weights, capsys):
    """A DN for mv is trained on vectors: calibrate never falls back to DIS, so it has no --flow-fallback."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(textured_pan(2, 1, 8, 64, 128)):
        cv2.imwrite(str(folder / f"f{i}.png"), image)
    out = tmp_path / "cal" / "dn.safetensors"
    base = ["calibrate", str(folder), "--flow", "mv", "--segmenter", str(weights), "--out", str(out),
            "--max-offset", "2", "--cache", str(tmp_path / "cache"), "--no-progress", "--threads", "1"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds images, which carry no motion vectors" in err
    with pytest.raises(SystemExit) as exited:
        main([*base, "--flow-fallback", "dis"])
    assert exited.value.code == 2 and "unrecognized arguments: --flow-fallback" in capsys.readouterr().err
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_evaluate_without_labels_runs_mv_on_a_video_and_falls_back_on_frames(av, tmp_path, weights, capsys):
    video = encode_video(textured_pan(2, 1, 8, 64, 128), tmp_path / "pan.mp4", crf=18)
    common = ["--flow", "mv", "--segmenter", str(weights), "--grid", "1x2", "--policy", "fixed:3",
              "--threads", "1", "--warmup-frames", "2", "--no-progress", "--output", str(tmp_path / "out")]
    assert main(["evaluate", str(video), *common]) == 0
    result = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert result["config"]["flow"] == "mv" and result["frames"] == 8 and result["pixel_agreement"] > 0.5
    assert "note:" not in capsys.readouterr().err
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(textured_pan(2, 1, 4, 64, 128)):
        cv2.imwrite(str(folder / f"f{i}.png"), image)
    assert main(["evaluate", str(folder), *common]) == 0
    assert capsys.readouterr().err.count("falls back to dis") == 1


def test_the_demo_runs_mv_on_its_own_mpeg4_clip(av, tmp_path, weights, capfd):
    out = tmp_path / "runs"
    assert main(["demo", "--flow", "mv", "--segmenter", str(weights), "--policy", "fixed:3", "--grid", "2x2",
                 "--frames", "6",
                 "--size", "64x128", "--seed", "3", "--output", str(out), "--no-progress"]) == 0
    assert "note:" not in capfd.readouterr().err
    summary = json.loads((out / "demo-0001" / "summary.json").read_text())
    assert summary["config"]["flow"] == "mv" and (summary["regions_seg"], summary["regions_warp"]) == (8, 16)


@pytest.mark.backends
def test_a_batch_passes_flow_fallback_to_every_video(av, tmp_path, weights, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    encode_video(textured_pan(2, 1, 4, 64, 128), folder / "a.mp4")  # H.264: vectors
    encode_video(textured_pan(2, 1, 4, 64, 128), folder / "b.webm", codec="libvpx-vp9")  # none
    out = tmp_path / "batch"
    code = main(["segment", str(folder), "--flow", "mv", "--flow-fallback", "none",
                 "--segmenter", str(weights), "--output", str(out), *ARGS])
    assert code != 0  # one video failed
    record = json.loads((out / "batch.json").read_text())
    status = {row["source"].rsplit("/", 1)[-1]: row for row in record["videos"]}
    assert status["a.mp4"]["status"] == "complete" and status["b.webm"]["status"] == "failed"
    assert "exports no motion vectors" in status["b.webm"]["error"]
