"""dvsnet.run.segment_video: the run loop from Python writes what `dvsnet segment` writes."""
import json

import cv2
import pytest

from dvsnet import DvsnetError, PipelineConfig, segment_video
from tests.segmenters import ColourSegmenter, panning_clip


@pytest.fixture
def frame_folder(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(panning_clip(7)):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), frame[:, :, ::-1])
    return folder


@pytest.mark.backends
def test_segment_video_writes_a_run_folder(frame_folder, tmp_path):
    config = PipelineConfig(segmenter=ColourSegmenter(), policy="fixed:3", grid=(2, 2))
    run_dir, summary = segment_video(frame_folder, config, output=tmp_path / "runs",
                                     writes=("labels", "csv"), max_frames=6, note=lambda line: None)
    assert run_dir == tmp_path / "runs" / "segment-0001"
    assert sorted(p.name for p in run_dir.iterdir()) == ["frames.csv", "labels", "summary.json"]
    assert len(list((run_dir / "labels").iterdir())) == 6
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["complete"] and summary["frames"] == 6 and summary["regions_seg"] == 2 * 4
    assert summary["config"]["policy"] == "fixed:3" and summary["config"]["grid"] == "2x2"
    assert summary["config"]["segmenter"] == "ColourSegmenter" and summary["machine"]["torch_threads"] >= 1


def test_a_grid_the_frames_cannot_hold_leaves_nothing_behind(frame_folder, tmp_path):
    config = PipelineConfig(segmenter=ColourSegmenter(), policy="fixed:3", grid=(200, 200))
    with pytest.raises(DvsnetError, match="grid 200x200 does not suit"):
        segment_video(frame_folder, config, output=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
