"""`dvsnet segment` end to end, in-process, on tiny generated videos and frame folders.

The segmenter is the real `fast` architecture with seeded random weights saved as a .safetensors file
(the same loading path as trained weights); labels are then arbitrary but deterministic, so the files
the CLI writes are compared with what the Python API computes on the same frames.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import dvsnet
from dvsnet.cli import main
from dvsnet.data.labels import TRAIN_TO_LABEL, colorize
from dvsnet.data.video import read_frames
from dvsnet.models import build_accurate, save_weights
from tests.videos import lie_about_frame_count

H, W = 64, 128
SRC = Path(__file__).resolve().parents[2] / "src"


def moving_frames(n: int, height: int = H, width: int = W) -> list[np.ndarray]:
    """A bright bar moving right over a two-tone background, RGB uint8."""
    frames = []
    for i in range(n):
        frame = np.full((height, width, 3), (90, 120, 60), np.uint8)
        frame[: height // 3] = (120, 160, 220)
        x = (4 * i) % max(1, width - 16)
        frame[height // 3:, x:x + 16] = (230, 230, 230)
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fourcc: str = "mp4v") -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (width, height))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return path


def write_folder(folder: Path, frames: list[np.ndarray],
                 name: str = "city_000000_{:06d}_leftImg8bit.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        image = frame if frame.ndim == 2 else frame[:, :, ::-1]
        assert cv2.imwrite(str(folder / name.format(i)), image)
    return folder


def segment(*argv: str | Path) -> int:
    # one thread: tests share 2 cores with other jobs, where 2 OpenMP threads run several times slower
    return main(["segment", *map(str, argv), "--no-progress", "--threads", "1"])


def run_dirs(root: Path) -> list[str]:
    return sorted(os.listdir(root)) if root.exists() else []


def count_video_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    n = 0
    while capture.read()[0]:
        n += 1
    return n


@pytest.mark.backends
def test_video_default_outputs_and_numbered_runs(tmp_path, weights, capfd):
    video = write_video(tmp_path / "clip.mp4", moving_frames(12))
    out = tmp_path / "runs"
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert segment(video, "--segmenter", weights, "--policy", "fixed:3", "--grid", "2x2",
                   "--output", out) == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored
    stdout, stderr = capfd.readouterr()
    run = out / "segment-0001"
    assert stdout.strip().splitlines() == [stdout.strip()] and str(run) in stdout  # one line naming the run
    assert "12 frames" in stdout and stderr == ""
    assert sorted(os.listdir(run)) == ["frames.csv", "overlay.mp4", "summary.json"]
    assert count_video_frames(run / "overlay.mp4") == 12
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] is True and summary["frames"] == 12
    # fixed:3 on a 2x2 grid: frames 0, 3, 6, 9 segment all 4 regions, the other 8 frames warp all 4
    assert (summary["regions_seg"], summary["regions_warp"]) == (16, 32)
    assert summary["workload_saved"] == pytest.approx(32 / 48)
    assert summary["fps"] > 0 and summary["fps_end_to_end"] > 0
    assert summary["config"]["policy"] == "fixed:3" and summary["config"]["grid"] == "2x2"
    # --device auto
    assert summary["config"]["device"].startswith("cuda" if torch.cuda.is_available() else "cpu")
    assert (summary["config"]["source_info"]["frames"] == 12
            and summary["versions"]["torch"] == torch.__version__)
    with open(run / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 * 4
    assert [r["path"] for r in rows if r["frame"] == "3"] == ["seg"] * 4
    assert [r["path"] for r in rows if r["frame"] == "4"] == ["warp"] * 4
    # a second run never touches the first
    before = (run / "summary.json").read_bytes()
    assert segment(video, "--segmenter", weights, "--policy", "fixed:3", "--output", out,
                   "--max-frames", "2") == 0
    assert run_dirs(out) == ["segment-0001", "segment-0002"]
    assert (run / "summary.json").read_bytes() == before


@pytest.mark.backends
def test_label_pngs_match_the_python_api(tmp_path, weights):
    frames = moving_frames(6)
    folder = write_folder(tmp_path / "frames", frames)
    out = tmp_path / "runs"
    assert segment(folder, "--segmenter", weights, "--policy", "fixed:2", "--output", out,
                   "--write", "labels", "--write", "label-ids", "--write", "color", "--backend", "torch") == 0
    run = out / "segment-0001"
    pipe = dvsnet.DVSNet(segmenter=dvsnet.load_segmenter(str(weights), backend="torch"), flow="dis",
                         policy="fixed:2")
    for i, frame in enumerate(read_frames(folder)):
        expected = pipe.step(frame).labels
        base = f"city_000000_{i:06d}"
        train = cv2.imread(str(run / "labels" / f"{base}_pred_trainIds.png"), cv2.IMREAD_UNCHANGED)
        ids = cv2.imread(str(run / "label_ids" / f"{base}_pred_labelIds.png"), cv2.IMREAD_UNCHANGED)
        color = cv2.imread(str(run / "color" / f"{base}_pred_color.png"))[:, :, ::-1]
        np.testing.assert_array_equal(train, expected)
        np.testing.assert_array_equal(ids, TRAIN_TO_LABEL[expected])
        np.testing.assert_array_equal(color, colorize(expected))
    assert sorted(os.listdir(run)) == ["color", "label_ids", "labels", "summary.json"]


def test_stride_max_frames_resize(tmp_path, weights):
    video = write_video(tmp_path / "clip.avi", moving_frames(10), "MJPG")
    out = tmp_path / "runs"
    assert segment(video, "--segmenter", weights, "--policy", "always", "--output", out, "--stride", "3",
                   "--max-frames", "3", "--resize", "32x64", "--write", "labels", "--grid", "1x2") == 0
    run = out / "segment-0001"
    names = sorted(os.listdir(run / "labels"))
    assert names == [f"clip_{i:06d}_pred_trainIds.png" for i in (0, 3, 6)]
    assert cv2.imread(str(run / "labels" / names[0]), cv2.IMREAD_UNCHANGED).shape == (32, 64)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["workload_saved"] == 0.0 and summary["regions_seg"] == 3 * 2
    assert summary["config"]["frame_size"] == "32x64"


def test_threshold_sets_the_policy_threshold(tmp_path, weights):
    video = write_video(tmp_path / "clip.mp4", moving_frames(5))
    out = tmp_path / "runs"
    # oracle:T warps a region when its true confidence score >= T; T = 0 accepts every warp
    assert segment(video, "--segmenter", weights, "--policy", "oracle:0.9", "--threshold", "0",
                   "--grid", "2x2", "--output", out) == 0
    summary = json.loads((out / "segment-0001" / "summary.json").read_text())
    assert summary["config"]["policy"] == "oracle:0"
    assert (summary["regions_seg"], summary["regions_warp"]) == (4, 16)


def test_gray_rgba_and_odd_sized_frames_work(tmp_path, weights):
    folder = tmp_path / "frames"
    rgb = moving_frames(3, 37, 51)
    write_folder(folder, [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb[:2]], "a_{:03d}.png")
    write_folder(folder, [np.dstack([rgb[2][:, :, ::-1], np.full((37, 51), 200, np.uint8)])], "b_{:03d}.png")
    out = tmp_path / "runs"
    assert segment(folder, "--segmenter", weights, "--policy", "fixed:2", "--output", out,
                   "--write", "labels", "--write", "overlay") == 0
    run = out / "segment-0001"
    labels = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((run / "labels").iterdir())]
    assert [x.shape for x in labels] == [(37, 51)] * 3
    assert count_video_frames(run / "overlay.mp4") == 3


@pytest.mark.backends
def test_resolution_change_restarts_key_frames(tmp_path, weights, capfd):
    folder = tmp_path / "frames"
    write_folder(folder, moving_frames(3), "f{:02d}.png")
    write_folder(folder, [f for f in moving_frames(2, 48, 96)], "g{:02d}.png")
    out = tmp_path / "runs"
    assert segment(folder, "--segmenter", weights, "--policy", "fixed:10", "--grid", "2x2",
                   "--output", out) == 0
    _, stderr = capfd.readouterr()
    assert stderr.strip() == "note: frame 3 (g00) is 48x96, a new size: key frames restarted"
    run = out / "segment-0001"
    summary = json.loads((run / "summary.json").read_text())
    assert [r["frame"] for r in summary["restarts"]] == [0, 3]
    assert summary["regions_seg"] == 8  # frames 0 and 3 segment all four regions, the rest warp
    with open(run / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["restarted"] for r in rows[::4]] == ["1", "0", "0", "1", "0"]
    assert count_video_frames(run / "overlay.mp4") == 5


def test_truncated_video_keeps_finished_frames_and_fails(tmp_path, weights, capfd):
    data = write_video(tmp_path / "full.avi", moving_frames(20), "MJPG").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    out = tmp_path / "runs"
    assert segment(cut, "--segmenter", weights, "--policy", "fixed:3", "--grid", "2x2", "--output", out) == 2
    _, stderr = capfd.readouterr()
    assert_one_line_error(stderr, "truncated or corrupt")
    run = out / "segment-0001"
    assert str(run) in stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] is False and "ended after" in summary["stopped"]
    assert 0 < summary["frames"] < 20
    assert count_video_frames(run / "overlay.mp4") == summary["frames"]
    assert len((run / "frames.csv").read_text().splitlines()) == 1 + 4 * summary["frames"]
    assert not any("partial" in name for name in os.listdir(run))


def test_a_video_shorter_than_its_header_is_segmented_to_its_end(tmp_path, weights, capfd):
    """A header that announces 444 frames over 20 clean ones (FFmpeg decodes all 20 without an error): the run
    is complete, exit 0, one note, and summary.json records both counts."""
    avi = lie_about_frame_count(write_video(tmp_path / "short.avi", moving_frames(20), "MJPG"), 444)
    out = tmp_path / "runs"
    assert segment(avi, "--segmenter", weights, "--policy", "fixed:3", "--output", out) == 0
    _, stderr = capfd.readouterr()
    notes = [line for line in stderr.splitlines() if "its header announces" in line]
    assert len(notes) == 1 and notes[0].startswith("note: ") and "holds 20 frames, not the 444" in notes[0]
    summary = json.loads((out / "segment-0001" / "summary.json").read_text())
    assert summary["complete"] is True and summary["frames"] == 20
    assert summary["source_ended_early"] == {"announced_frames": 444, "decoded_frames": 20}
    assert summary["config"]["source_info"]["frames"] == 444


def assert_one_line_error(stderr: str, match: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("dvsnet segment: error: ") and match in lines[0], stderr
    assert "Traceback" not in stderr


def make_bad_source(tmp_path: Path, case: str) -> Path:
    if case == "missing":
        return tmp_path / "nope.mp4"
    if case == "random-bytes":
        path = tmp_path / "junk.mp4"
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes())
        return path
    if case == "text-file":
        path = tmp_path / "notes.mkv"
        path.write_text("this is not a video\n")
        return path
    if case == "truncated-mp4":
        data = write_video(tmp_path / "full.mp4", moving_frames(10)).read_bytes()
        path = tmp_path / "cut.mp4"
        path.write_bytes(data[: len(data) // 2])
        return path
    if case == "zero-frame-video":
        return _zero_frame_avi(tmp_path)
    if case == "empty-folder":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    if case == "corrupt-frame":
        folder = write_folder(tmp_path / "frames", moving_frames(1))
        (folder / "city_000000_000001_leftImg8bit.png").write_bytes(b"\x89PNG broken")
        return folder
    raise AssertionError(case)


def _zero_frame_avi(tmp_path: Path) -> Path:
    path = tmp_path / "zero.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    writer.release()
    return path


@pytest.mark.parametrize("case,match", [
    ("missing", "no such file or folder"),
    ("random-bytes", "cannot decode video"),
    ("text-file", "cannot decode video"),
    ("truncated-mp4", "cannot decode video"),
    ("zero-frame-video", "no frames"),
    ("empty-folder", "holds no image files"),
])
def test_bad_source_one_line_and_nothing_written(tmp_path, weights, capfd, case, match):
    out = tmp_path / "runs"
    (out / "segment-0001").mkdir(parents=True)
    (out / "segment-0001" / "summary.json").write_text("earlier run")
    source = make_bad_source(tmp_path, case)
    assert segment(source, "--segmenter", weights, "--output", out) == 2
    _, stderr = capfd.readouterr()
    assert_one_line_error(stderr, match)
    assert run_dirs(out) == ["segment-0001"]  # no new run folder for input rejected up front
    assert (out / "segment-0001" / "summary.json").read_text() == "earlier run"


def test_corrupt_frame_mid_folder_stops_with_partial_run(tmp_path, weights, capfd):
    out = tmp_path / "runs"
    source = make_bad_source(tmp_path, "corrupt-frame")
    assert segment(source, "--segmenter", weights, "--output", out, "--policy", "always") == 2
    _, stderr = capfd.readouterr()
    assert_one_line_error(stderr, "city_000000_000001_leftImg8bit.png")
    summary = json.loads((out / "segment-0001" / "summary.json").read_text())
    assert (summary["complete"], summary["frames"]) == (False, 1)


@pytest.mark.parametrize("args,match", [
    (["--policy", "dn:1.5"], "threshold must be in [0, 1]"),
    (["--policy", "oracle:-0.1"], "threshold must be in [0, 1]"),
    (["--policy", "magic:3"], "unknown policy"),
    (["--policy", "dn:0.9", "--threshold", "1.2"], "threshold must be in [0, 1]"),
    (["--policy", "fixed:3", "--threshold", "0.5"], "--threshold applies to the dn and oracle policies"),
    (["--flow", "raft"], "unknown flow estimator"),
    (["--segmenter", "huge"], "unknown segmenter"),
    (["--grid", "100x2"], "the largest grid of that shape that fits is 4x1"),
    (["--policy", "fixed:3", "--dn", "dis"], "only applies to dn:T policies"),
    (["--policy", "dn:0.9", "--dn", "missing.safetensors"], "not found"),
    (["--policy", "dn:0.9", "--dn", "sift"], "no decision network for flow features 'sift'"),
    (["--policy", "dn:0.9", "--flow", "flownet", "--dn", "dis"], "reads 'dis' features"),
])
def test_bad_options_one_line_and_nothing_written(tmp_path, weights, capfd, args, match):
    video = write_video(tmp_path / "clip.mp4", moving_frames(3))
    out = tmp_path / "runs"
    argv = ["--segmenter", str(weights), *(["--policy", "fixed:2"] if "--policy" not in args else []), *args]
    assert segment(video, *argv, "--output", out) == 2
    _, stderr = capfd.readouterr()
    assert_one_line_error(stderr, match)
    assert not out.exists()


def test_weights_that_do_not_match_the_architecture(tmp_path, capfd):
    wrong = save_weights(build_accurate(), tmp_path / "wrong.safetensors", {"arch": "fast"})
    video = write_video(tmp_path / "clip.mp4", moving_frames(3))
    assert segment(video, "--segmenter", wrong, "--policy", "always", "--output", tmp_path / "runs") == 2
    _, stderr = capfd.readouterr()
    assert_one_line_error(stderr, "does not match architecture 'fast'")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not safetensors at all")
    assert segment(video, "--segmenter", garbage, "--policy", "always", "--output", tmp_path / "runs") == 2
    _, stderr = capfd.readouterr()
    assert_one_line_error(stderr, "garbage.safetensors")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("make_output", [
    lambda tmp: (tmp / "a_file").write_text("mine") and tmp / "a_file",
    lambda tmp: (tmp / "a_file").write_text("mine") and tmp / "a_file" / "runs",
])
def test_output_folder_that_cannot_be_written(tmp_path, weights, capfd, make_output):
    video = write_video(tmp_path / "clip.mp4", moving_frames(3))
    output = make_output(tmp_path)
    assert segment(video, "--segmenter", weights, "--policy", "always", "--output", output) == 2
    _, stderr = capfd.readouterr()
    assert_one_line_error(stderr, "output folder")
    assert (tmp_path / "a_file").read_text() == "mine"


def start_long_run(tmp_path: Path, weights: Path, frames: int = 400) -> tuple[subprocess.Popen, Path]:
    """A real `dvsnet segment` process on a long video; returns once it has finished a few frames."""
    video = write_video(tmp_path / "long.avi", moving_frames(frames), "MJPG")
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvsnet", "segment", str(video), "--segmenter", str(weights), "--policy",
         "always", "--output", str(out), "--no-progress", "--threads", "1", "--write", "overlay",
         "--write", "csv", "--write", "labels"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    partial = out / "segment-0001" / "frames.partial.csv"
    deadline = time.time() + 60
    while time.time() < deadline and not (partial.exists() and partial.read_text().count("\n") > 4 * 3):
        time.sleep(0.05)
    return proc, out / "segment-0001"


def test_sigkill_leaves_nothing_presented_as_complete(tmp_path, weights):
    proc, run = start_long_run(tmp_path, weights)
    proc.kill()
    proc.communicate(timeout=60)
    names = set(os.listdir(run))
    assert {"overlay.partial.mp4", "frames.partial.csv", "labels"} <= names
    assert not names & {"summary.json", "overlay.mp4", "frames.csv"}
    pngs = list((run / "labels").glob("*.png"))  # not the hidden .tmp of a write the kill cut short
    assert pngs
    for png in pngs:  # every label PNG present is whole
        assert cv2.imread(str(png), cv2.IMREAD_UNCHANGED).shape == (H, W)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_leaves_valid_outputs(tmp_path, weights, signum):
    """A real Ctrl-C (SIGINT) or kill (SIGTERM) to a real process: finished frames are kept and closed,
    summary.json marks the run incomplete."""
    proc, run = start_long_run(tmp_path, weights)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] is False and summary["stopped"] == "interrupted"
    assert 3 <= summary["frames"] < 400
    assert count_video_frames(run / "overlay.mp4") == summary["frames"]
    # grid auto: 1x1 on small frames
    assert len((run / "frames.csv").read_text().splitlines()) == 1 + summary["frames"]
    assert len(os.listdir(run / "labels")) == summary["frames"]
    assert sorted(os.listdir(run)) == ["frames.csv", "labels", "overlay.mp4", "summary.json"]


def test_frames_twice_the_training_width_get_a_note_about_resizing(tmp_path, capsys):
    folder = write_folder(tmp_path / "wide", moving_frames(2, height=64, width=1024))
    for extra, noted in (([], True), (["--resize", "512"], False)):
        assert main(["segment", str(folder), "--segmenter", "fast", "--grid", "1x1", "--write", "csv",
                     "--output", str(tmp_path / "runs"), "--no-progress", *extra]) == 0
        err = capsys.readouterr().err
        note = "note: frames are 64x1024; the shipped networks were trained on 256x512 frames"
        assert (note in err and "--resize 512 runs at that scale" in err) == noted, err
