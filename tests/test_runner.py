"""The one runner (dvsnet.runner): warm-up, clip boundaries, interleaving, agreement, speed-up, labels."""
import numpy as np
import pytest

import dvsnet
from dvsnet.config import PipelineConfig
from dvsnet.runner import Clip, run_interleaved, warm_up
from tests.segmenters import ColourSegmenter, panning_clip
from tests.test_evaluate import ConstantSegmenter, _frames


def _pipe(segmenter, policy="always", grid=(1, 1)):
    return dvsnet.DVSNet(segmenter=segmenter, flow="dis", policy=policy, grid=grid)


def test_the_reference_of_a_config_is_the_same_segmenter_on_every_whole_frame():
    config = PipelineConfig(segmenter="accurate", flow="mv", policy="dn:0.8", grid=(2, 2), overlap=8,
                            dn="dis", device="cpu", backend="torch", precision="fp32", flow_width=256)
    assert config.per_frame() == config.replace(policy="always", grid=(1, 1), overlap=None, dn=None)


def test_warm_up_frames_run_through_every_pipeline_and_are_not_counted():
    segmenters = [ConstantSegmenter(0), ConstantSegmenter(2), ConstantSegmenter(2)]
    reference, *pipes = [_pipe(s) for s in segmenters]
    run = run_interleaved([Clip(_frames(8))], pipes, reference=reference, warmup_frames=3)
    assert [s.calls for s in segmenters] == [1 + 3 + 8] * 3  # dry run, warm-up, frames
    assert run.reference.stats.frames == 8 and [r.stats.frames for r in run.runs] == [8, 8]
    assert run.reference.labels == [None] * 8  # labels are kept only when asked for
    assert [r.agreement for r in run.runs] == [0.0, 0.0]  # class 2 everywhere, the reference says 0
    assert all(record.agreement is None for record in run.reference.frames)


def test_every_clip_starts_from_a_reset_and_records_say_where_each_frame_was():
    seg = ConstantSegmenter(0)
    pipe = _pipe(seg, policy="fixed:4", grid=(1, 2))
    run = run_interleaved([Clip(_frames(6)), Clip(_frames(3, seed=1))], [pipe], warmup_frames=0)
    records = run.runs[0].frames
    assert [(r.clip, r.offset) for r in records] == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (0, 5),
                                                      (1, 0), (1, 1), (1, 2)]
    # key frames at 0 and 4 of the first clip, and again at the second clip's first frame
    assert [r.paths for r in records if "seg" in r.paths] == [["seg", "seg"]] * 3
    assert [records[i].paths for i in (0, 4, 6)] == [["seg", "seg"]] * 3
    assert run.reference is None and run.runs[0].agreement is None
    with pytest.raises(ValueError, match="no reference"):
        run.speedup(run.runs[0])


def test_agreement_is_per_frame_against_the_reference_and_speed_up_compares_the_same_run():
    frames = panning_clip(10, height=64, width=128, speed=2.0)
    seg = ColourSegmenter(stride=1)  # labels a pure function of each pixel
    reference = _pipe(seg)
    same, fixed = _pipe(seg), _pipe(seg, policy="fixed:5", grid=(1, 2))
    run = run_interleaved([Clip(frames)], [same, fixed], reference=reference, warmup_frames=2,
                          keep_labels=True)
    assert [r.agreement for r in run.runs[0].frames] == [1.0] * 10
    truth = [np.asarray(reference.step(f).labels) for f in frames]  # a fresh per-frame pass gives the same
    assert all(np.array_equal(a, b) for a, b in zip(run.reference.labels, truth))
    warped = [r.agreement for r in run.runs[1].frames]
    assert warped[0] == warped[5] == 1.0 and min(warped) < 1.0  # key frames agree; warped ones may not
    assert run.speedup(run.runs[1]) == pytest.approx(
        run.reference.stats.pipeline_seconds / run.runs[1].stats.pipeline_seconds)
    assert run.runs[1].stats.pipeline_seconds == pytest.approx(
        sum(r.timings["total"] for r in run.runs[1].frames))


def test_a_clips_labels_accumulate_one_confusion_matrix_per_pipeline():
    labels = np.zeros((64, 128), np.uint8)
    labels[:, 64:] = 2
    clips = [Clip(_frames(4), labels={3: labels}), Clip(_frames(4, seed=1), labels={0: labels, 3: labels})]
    pipe = _pipe(ConstantSegmenter(0))
    run = run_interleaved(clips, [pipe], warmup_frames=1)
    matrix = run.runs[0].confusion
    assert matrix.shape == (19, 19) and matrix.sum() == 3 * 64 * 128
    assert matrix[0, 0] == matrix[2, 0] == 3 * 64 * 64  # rows: truth, columns: prediction


def test_the_warm_up_runs_the_first_frames_of_a_clip_then_resets():
    seg = ConstantSegmenter(0)
    pipe = _pipe(seg)
    warm_up([pipe], Clip(_frames(4)), 10)  # more warm-up frames than the clip has: all of them
    assert seg.calls == 1 + 4 and pipe.index == -1
