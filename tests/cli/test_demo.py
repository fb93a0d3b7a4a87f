"""`dvsnet demo`: renders the seeded synthetic clip, segments it, writes a run folder; one line on failure."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from dvsnet.cli import main
from dvsnet.data.synthetic import render_clip
from dvsnet.models.weights import shipped_path


def read_video(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame[:, :, ::-1])


def test_demo_renders_segments_and_writes_run_folder(tmp_path, weights, capfd):
    out = tmp_path / "runs"
    argv = ["demo", "--segmenter", str(weights), "--policy", "fixed:3", "--grid", "2x2", "--frames", "6",
            "--size", "64x128",
            "--seed", "3", "--output", str(out), "--no-progress"]
    assert main(argv) == 0
    stdout, stderr = capfd.readouterr()
    run = out / "demo-0001"
    assert stdout.strip() == stdout.strip().splitlines()[0] and str(run) in stdout and stderr == ""
    assert sorted(os.listdir(run)) == ["frames.csv", "input.mp4", "overlay.mp4", "summary.json"]
    # input.mp4 is the seeded synthetic clip (mp4v is lossy: compare means of absolute differences)
    rendered = render_clip(3, 6, (64, 128))
    decoded = read_video(run / "input.mp4")
    assert len(decoded) == 6
    for a, b in zip(rendered, decoded):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 8
    assert len(read_video(run / "overlay.mp4")) == 6
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] is True and summary["frames"] == 6
    assert summary["config"]["synthetic"] == {"seed": 3, "frames": 6, "size": [64, 128]}
    assert summary["machine"]["torch_threads"] == 1  # the demo's default
    assert (summary["regions_seg"], summary["regions_warp"]) == (8, 16)  # fixed:3: frames 0 and 3 segment
    assert main(argv) == 0  # a second demo gets its own folder
    assert sorted(os.listdir(out)) == ["demo-0001", "demo-0002"]


def test_demo_with_missing_weights_is_one_line_and_writes_nothing(tmp_path, capfd):
    out = tmp_path / "runs"
    assert main(["demo", "--segmenter", str(tmp_path / "nope.safetensors"), "--output", str(out),
                 "--no-progress"]) == 2
    _, stderr = capfd.readouterr()
    assert stderr.strip().splitlines() == [
        f"dvsnet demo: error: weights file not found: {tmp_path / 'nope.safetensors'}"]
    assert not out.exists()


def test_demo_grid_too_large_for_the_resized_frames_is_one_line_and_writes_nothing(tmp_path, weights, capfd):
    out = tmp_path / "runs"
    assert main(["demo", "--segmenter", str(weights), "--policy", "fixed:3", "--frames", "3",
                 "--size", "64x128", "--resize", "16x32", "--grid", "20x2", "--output", str(out),
                 "--no-progress"]) == 2
    _, stderr = capfd.readouterr()
    assert "grid 20x2" in stderr and "16x32 frame" in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_demo_defaults_use_shipped_weights_or_say_they_are_missing(tmp_path, capfd):
    """With the shipped weights: a short default-policy demo runs. Without them: one line says so."""
    out = tmp_path / "runs"
    status = main(["demo", "--frames", "4", "--size", "64x128", "--output", str(out), "--no-progress"])
    stdout, stderr = capfd.readouterr()
    shipped = shipped_path("fast").is_file() and shipped_path("dn-dis").is_file()
    if shipped:
        assert status == 0 and "demo-0001" in stdout
        summary = json.loads((out / "demo-0001" / "summary.json").read_text())
        assert summary["config"]["policy"] == "dn:0.92" and summary["frames"] == 4
    else:
        assert status == 2 and not out.exists()
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "no trained weights ship" in lines[0] and "Traceback" not in stderr


def test_demo_default_policy_needs_the_decision_network(tmp_path, weights, capfd):
    """dn:0.92 (the default) with a given segmenter: runs when the DN ships, else one line with a way out."""
    out = tmp_path / "runs"
    status = main(["demo", "--segmenter", str(weights), "--frames", "3", "--size", "64x128",
                   "--output", str(out), "--no-progress"])
    _, stderr = capfd.readouterr()
    if shipped_path("dn-dis").is_file():
        assert status == 0
        assert json.loads((out / "demo-0001" / "summary.json").read_text())["config"]["policy"] == "dn:0.92"
    else:
        assert status == 2 and not out.exists()
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "decision network" in lines[0] and "--policy fixed:5" in lines[0]


@pytest.mark.slow
def test_full_default_demo_under_two_minutes(tmp_path):
    if not (shipped_path("fast").is_file() and shipped_path("dn-dis").is_file()):
        pytest.skip("shipped fast and dn-dis weights are not trained yet")
    start = time.perf_counter()
    assert main(["demo", "--output", str(tmp_path), "--no-progress"]) == 0
    assert time.perf_counter() - start < 120
    assert json.loads((tmp_path / "demo-0001" / "summary.json").read_text())["frames"] == 60
