"""benchmarks/bench_headroom.py's pieces: the oracles' shared segmentation, the figures it reads off
curves."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dvsnet.config import PipelineConfig
from dvsnet.pipeline import DVSNet
from tests.segmenters import ColourSegmenter, panning_clip

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_headroom.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_headroom", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_oracles_on_a_shared_segmentation_decide_as_on_their_own(bench):
    frames = panning_clip(12, speed=3.0)
    segmenter = ColourSegmenter()
    shared = bench.SharedSegmentation(segmenter)
    thresholds = (0.99, 0.9, 0.8)
    alone = [DVSNet.from_config(PipelineConfig(segmenter=ColourSegmenter(), policy=f"oracle:{t}",
                                               grid=(1, 1)))
             for t in thresholds]
    together = [DVSNet.from_config(PipelineConfig(segmenter=shared, policy=f"oracle:{t}", grid=(1, 1)))
                for t in thresholds]
    calls = len(segmenter.calls)
    for frame in frames:
        for a, b in zip(alone, together):
            out_a, out_b = a.step(frame), b.step(frame)
            assert out_a.paths == out_b.paths
            np.testing.assert_array_equal(out_a.labels, out_b.labels)
    assert len(segmenter.calls) - calls == len(frames)  # one segmenter call per frame for all three


def test_worst_share_and_curves(bench):
    assert bench.worst_share([0.9] * 19 + [0.1]) == pytest.approx(0.1)  # 5 % of 20 frames: the worst one
    assert bench.worst_share([0.5, 1.0]) == pytest.approx(0.5)
    points = [(1.0, 1.0), (0.5, 0.9), (0.1, 0.7)]
    assert bench.curve_at(points, 0.3) == pytest.approx(0.8)
    assert bench.curve_at(points, 0.05) is None
