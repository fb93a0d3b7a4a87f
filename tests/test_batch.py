"""dvsnet.batch: which sources make a batch, the batch record, resuming, failures that do not stop it."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from dvsnet import DvsnetError, PipelineConfig
from dvsnet.batch import BATCH_JSON, BatchOptions, batch_sources, read_list, segment_batch
from tests.segmenters import ColourSegmenter, panning_clip


def write_video(path: Path, frames: int = 4) -> Path:
    clip = panning_clip(frames)
    height, width = clip[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (width, height))
    for frame in clip:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return path


def write_image(path: Path) -> Path:
    assert cv2.imwrite(str(path), panning_clip(1)[0])
    return path


@pytest.fixture
def tree(tmp_path):
    """videos/ (two videos), frames/ (two images), mixed/ (an image and a video), list.txt, missing."""
    (tmp_path / "videos").mkdir()
    (tmp_path / "frames").mkdir()
    (tmp_path / "mixed").mkdir()
    for name in ("b10.mp4", "b2.avi"):
        (tmp_path / "videos" / name).write_bytes(b"x")
    for name in ("f0.png", "f1.png"):
        (tmp_path / "frames" / name).write_bytes(b"x")
    (tmp_path / "mixed" / "f0.png").write_bytes(b"x")
    (tmp_path / "mixed" / "v.mp4").write_bytes(b"x")
    (tmp_path / "list.txt").write_text("# my videos\nvideos/b10.mp4\n\n  /abs/other.mkv  \n")
    return tmp_path


@pytest.mark.parametrize("source", ["videos/b10.mp4", "frames", "frames/*.png", "mixed", "mixed/*",
                                    "missing.mp4", "missing/", "empty/*.mp4", "frames/f0.png"])
def test_one_source_is_one_run_as_before(tree, source, monkeypatch):
    monkeypatch.chdir(tree)
    assert batch_sources([source]) is None


def test_folder_glob_and_list_of_videos_are_batches(tree, monkeypatch):
    monkeypatch.chdir(tree)
    videos = [str(tree / "videos" / "b2.avi"), str(tree / "videos" / "b10.mp4")]  # natural order
    assert batch_sources(["videos"]) == videos
    assert batch_sources(["videos/*"]) == videos
    assert batch_sources(["list.txt"]) == [str(tree / "videos" / "b10.mp4"), "/abs/other.mkv"]
    # relative to the list's folder
    assert read_list(tree / "list.txt")[0] == str(tree / "videos" / "b10.mp4")


def test_several_sources_each_add_their_videos_once(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert batch_sources(["videos/b10.mp4", "videos", "frames", "nope.mp4"]) == [
        str(tree / "videos" / "b10.mp4"), str(tree / "videos" / "b2.avi"), str(tree / "frames"),
        str(tree / "nope.mp4")]


def test_unquoted_glob_of_images_is_refused(tree, monkeypatch):
    monkeypatch.chdir(tree)
    with pytest.raises(DvsnetError, match="quote the glob"):
        batch_sources(["frames/f0.png", "frames/f1.png"])


def test_options_record_is_plain_json():
    record = BatchOptions(PipelineConfig(policy="fixed:3", grid="1x2"), ("labels",),
                          resize=(64, 128)).record()
    assert record == json.loads(json.dumps(record))
    assert (record["config"]["grid"] == "1x2" and record["resize"] == [64, 128]
            and record["writes"] == ["labels"])


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    good = [str(write_video(folder / f"v{i}.mp4")) for i in range(3)]
    bad = folder / "bad.mp4"
    bad.write_bytes(b"not a video" * 50)
    return good, str(bad)


def _batch(sources, output, policy="fixed:3"):
    # a callable segmenter is fine in-process (workers=1); the batch's processes need names or files
    options = BatchOptions(PipelineConfig(segmenter=ColourSegmenter(), policy=policy, grid=(1, 2)),
                           ("labels",))
    return segment_batch(sources, options, output, workers=1, threads=1, note=lambda line: None)


def test_batch_runs_records_and_resumes(videos, tmp_path):
    good, bad = videos
    out = tmp_path / "out"
    result = _batch([*good, bad], out)
    assert not result.ok and result.counts == {"complete": 3, "failed": 1} and result.frames == 12
    record = json.loads((out / BATCH_JSON).read_text())
    rows = {row["source"]: row for row in record["videos"]}
    assert rows[bad]["status"] == "failed" and "cannot decode video" in rows[bad]["error"]
    assert "\n" not in rows[bad]["error"] and rows[bad]["run"] is None
    assert [rows[s]["run"] for s in good] == ["v0-0001", "v1-0001", "v2-0001"]
    assert all(rows[s]["frames"] == 4 and rows[s]["seg_share"] is not None for s in good)
    summary = json.loads((out / "v0-0001" / "summary.json").read_text())
    assert summary["batch"]["source"] == good[0] and summary["complete"] is True
    assert (out / "batch.csv").read_text().count("\n") == 5
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.parent != out}

    again = _batch([*good, bad], out)  # the same command: nothing complete is redone or touched
    assert again.counts == {"skipped": 3, "failed": 1} and again.frames == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert sorted(os.listdir(out)) == ["batch.csv", "batch.json", "v0-0001", "v1-0001", "v2-0001"]

    other = _batch(good[:1], out, policy="fixed:2")  # other options: a new run, the earlier one kept
    row = other.rows[0]
    assert (row["status"], row["run"], row["earlier_runs"]) == ("complete", "v0-0002", ["v0-0001"])
    kept = {r["source"] for r in json.loads((out / BATCH_JSON).read_text())["videos"]}
    assert kept == {*good, bad}  # rows of the videos this command did not name stay in batch.json


def test_incomplete_run_is_redone_in_a_new_folder(videos, tmp_path):
    good, _ = videos
    out = tmp_path / "out"
    _batch(good[:1], out)
    summary_path = out / "v0-0001" / "summary.json"
    cut = {**json.loads(summary_path.read_text()), "complete": False, "stopped": "interrupted"}
    summary_path.write_text(json.dumps(cut))
    row = _batch(good[:1], out).rows[0]
    assert (row["status"], row["run"], row["earlier_runs"]) == ("complete", "v0-0002", ["v0-0001"])
    assert json.loads(summary_path.read_text()) == cut  # the user's earlier run is left as it was


def test_a_foreign_batch_json_is_not_overwritten(videos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / BATCH_JSON).write_text("my notes")
    with pytest.raises(DvsnetError, match="not a batch record"):
        _batch(videos[0], out)
    assert (out / BATCH_JSON).read_text() == "my notes"
