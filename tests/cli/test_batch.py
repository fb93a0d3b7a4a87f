"""`dvsnet segment` on many videos: batch folders, --workers processes, --ray actors, failures, Ctrl-C.

Tiny generated videos (64x128, a few frames) and the seeded random `fast` segmenter of conftest.py, so
that the label PNGs of every backend can be compared byte for byte with a sequential run.
"""
from __future__ import annotations

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

from dvsnet.cli import main
from tests.cli.test_segment import SRC, moving_frames, write_video
from tests.conftest import import_or_install

RUN = ["--policy", "fixed:3", "--no-progress"]


def segment(*argv: str | Path) -> int:
    return main(["segment", *map(str, argv), *RUN])


def make_videos(folder: Path, good: int, corrupt: int = 0, frames: int = 4) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [write_video(folder / f"clip{i:02d}.mp4", moving_frames(frames + i % 3)) for i in range(good)]
    for i in range(corrupt):
        path = folder / f"broken{i}.mp4"
        path.write_bytes(os.urandom(2000) if i % 2 else b"")
        paths.append(path)
    return paths


def rows_of(out: Path) -> dict[str, dict]:
    return {Path(row["source"]).name: row for row in json.loads((out / "batch.json").read_text())["videos"]}


def labels_of(out: Path) -> dict[str, bytes]:
    """Every label PNG of a batch, by video and file name."""
    return {f"{Path(row['source']).name}/{png.name}": png.read_bytes()
            for row in rows_of(out).values() if row["run"]
            for png in sorted((out / row["run"] / "labels").iterdir())}


def test_fifty_videos_five_corrupt(tmp_path, weights, capfd):
    make_videos(tmp_path / "in", good=45, corrupt=5)
    out = tmp_path / "out"
    assert segment(tmp_path / "in", "--segmenter", weights, "--output", out, "--workers", "1",
                   "--threads", "1", "--write", "csv") == 1
    rows = rows_of(out)
    assert len(rows) == 50 and sum(r["status"] == "complete" for r in rows.values()) == 45
    failed = {name: r["error"] for name, r in rows.items() if r["status"] == "failed"}
    assert sorted(failed) == [f"broken{i}.mp4" for i in range(5)]
    assert all(error and "\n" not in error for error in failed.values())
    assert len([d for d in os.listdir(out) if (out / d).is_dir()]) == 45
    assert all(json.loads((out / r["run"] / "summary.json").read_text())["complete"]
               for r in rows.values() if r["status"] == "complete")
    stdout, stderr = capfd.readouterr()
    assert "45 complete, 5 failed" in stdout and "video" in stderr and "Traceback" not in stderr
    assert (out / "batch.csv").read_text().count("\n") == 51

    # the same command again: the 45 are skipped, the 5 tried again and recorded again
    assert segment(tmp_path / "in", "--segmenter", weights, "--output", out, "--workers", "1",
                   "--threads", "1", "--write", "csv") == 1
    statuses = [r["status"] for r in rows_of(out).values()]
    assert (statuses.count("skipped"), statuses.count("failed")) == (45, 5)
    assert len(os.listdir(out)) == 47


@pytest.mark.backends
def test_workers_write_the_same_labels_as_one_process(tmp_path, weights, capfd):
    videos = make_videos(tmp_path / "in", good=3, corrupt=1)
    (tmp_path / "list.txt").write_text("\n".join(os.path.relpath(v, tmp_path) for v in videos) + "\n")
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["--segmenter", weights, "--write", "labels", "--threads", "2"]
    assert segment(tmp_path / "list.txt", *common, "--output", one, "--workers", "1") == 1
    assert segment(*videos, *common, "--output", two, "--workers", "2") == 1
    _, stderr = capfd.readouterr()
    assert "2 workers x 1 thread" in stderr
    assert labels_of(two) == labels_of(one) and len(labels_of(one)) == 4 + 5 + 6
    assert rows_of(two)["broken0.mp4"]["error"] == rows_of(one)["broken0.mp4"]["error"]


def test_single_source_refuses_batch_options(tmp_path, weights, capfd):
    video = write_video(tmp_path / "clip.mp4", moving_frames(3))
    assert segment(video, "--segmenter", weights, "--output", tmp_path / "out", "--workers", "2") == 2
    assert "batch of videos" in capfd.readouterr().err
    assert not (tmp_path / "out").exists()


def _ray():
    """Ray (the optional extra dvsnet[ray])."""
    return import_or_install("ray", "ray>=2")


@pytest.mark.backends
def test_ray_writes_the_same_labels_as_one_process(tmp_path, weights):
    ray = _ray()
    make_videos(tmp_path / "in", good=3, corrupt=1)
    one, on_ray = tmp_path / "one", tmp_path / "ray"
    common = ["--segmenter", weights, "--write", "labels", "--threads", "1"]
    assert segment(tmp_path / "in", *common, "--output", one, "--workers", "1") == 1
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        assert segment(tmp_path / "in", *common, "--output", on_ray, "--ray") == 1
    finally:
        ray.shutdown()
    record = json.loads((on_ray / "batch.json").read_text())
    assert record["batch"]["backend"] == "ray:default" and record["batch"]["workers"] == 2
    assert labels_of(on_ray) == labels_of(one) and len(labels_of(one)) == 4 + 5 + 6
    assert rows_of(on_ray)["broken0.mp4"]["status"] == "failed"


def test_ctrl_c_keeps_finished_runs_and_the_next_run_finishes(tmp_path, weights):
    make_videos(tmp_path / "in", good=4, frames=400)  # long enough to be inside one when Ctrl-C comes
    out = tmp_path / "out"
    # Python's own Ctrl-C handler even where the test runner ignores SIGINT (a background job of a
    # non-interactive shell starts with SIGINT ignored, and Python then installs no handler)
    run_cli = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
               "sys.argv[0] = 'dvsnet'; runpy.run_module('dvsnet', run_name='__main__')")
    argv = [sys.executable, "-c", run_cli, "segment", str(tmp_path / "in"), "--segmenter", str(weights),
            "--output", str(out), "--workers", "2", "--threads", "2", "--write", "csv", *RUN]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("clip*/frames.partial.csv")):
        time.sleep(0.1)  # until a worker is inside a video
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    rows = rows_of(out)
    assert {r["status"] for r in rows.values()} <= {"complete", "interrupted", "pending"}
    assert any(r["status"] == "interrupted" for r in rows.values())
    for folder in out.glob("clip*"):  # every run is complete, or says it is not
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["complete"] or summary["stopped"] == "interrupted"
    before = sorted(os.listdir(out))
    assert main(["segment", str(tmp_path / "in"), "--segmenter", str(weights), "--output", str(out),
                 "--workers", "1", "--threads", "1", "--write", "csv", *RUN]) == 0
    rows = rows_of(out)
    assert all(r["status"] in ("complete", "skipped") for r in rows.values())
    assert set(before) <= set(os.listdir(out))  # nothing the first run left was removed


@pytest.mark.backends
def test_each_video_starts_with_a_fresh_policy(tmp_path, weights):
    """dn:agree=A learns from every frame (dvsnet.control): in a batch, the second video must be
    segmented as if it were alone, not with what the policy learnt on the first."""
    videos = make_videos(tmp_path / "in", good=2, frames=8)
    policy = ["--policy", "dn:agree=0.9", "--grid", "1x2", "--write", "labels", "--threads", "1"]
    batch = tmp_path / "batch"
    assert main(["segment", *map(str, videos), "--segmenter", str(weights), "--output", str(batch),
                 "--workers", "1", "--no-progress", *policy]) == 0
    alone = tmp_path / "alone"
    assert main(["segment", str(videos[1]), "--segmenter", str(weights), "--output", str(alone),
                 "--no-progress", *policy]) == 0
    second = rows_of(batch)[videos[1].name]["run"]
    pngs = sorted((alone / "segment-0001" / "labels").iterdir())
    assert len(pngs) == 9
    assert [p.read_bytes() for p in pngs] == [(batch / second / "labels" / p.name).read_bytes() for p in pngs]


def test_every_backend_and_precision_completes_a_batch_with_two_workers(tmp_path, monkeypatch):
    """Workers build their pipeline from the config (nothing live is copied or pickled: an ONNX Runtime
    session cannot be), on every backend and precision auto can take; torch fp32 and ONNX Runtime fp32 write
    the same labels (>= 99.9 % of pixels). The shipped `fast`, so int8 is calibrated as users get it."""
    for name in ("DVSNET_BACKEND", "DVSNET_PRECISION"):
        monkeypatch.delenv(name, raising=False)  # the test names each combination itself
    make_videos(tmp_path / "in", good=2, frames=3)
    labels = {}
    for backend, precision in [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"),
                               ("auto", "auto")]:
        out = tmp_path / f"{backend}-{precision}"
        assert segment(tmp_path / "in", "--segmenter", "fast", "--backend", backend, "--precision", precision,
                       "--workers", "2", "--threads", "2", "--write", "labels", "--output", out) == 0
        rows = rows_of(out)
        assert [row["status"] for row in rows.values()] == ["complete", "complete"]
        ran = json.loads((out / rows["clip00.mp4"]["run"] / "summary.json").read_text())["config"]
        assert backend == "auto" or (ran["backend"], ran["precision"]) == (backend, precision)
        labels[backend, precision] = labels_of(out)
    torch_fp32, ort_fp32 = labels["torch", "fp32"], labels["onnxruntime", "fp32"]
    assert sorted(torch_fp32) == sorted(ort_fp32) and len(torch_fp32) == 3 + 4
    agreement = np.mean([np.mean(png_labels(torch_fp32[k]) == png_labels(ort_fp32[k])) for k in torch_fp32])
    assert agreement >= 0.999


def png_labels(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
