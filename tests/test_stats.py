"""RunStats: the one per-run bookkeeping, with hand-counted answers."""
import numpy as np
import pytest

from dvsnet.pipeline import FrameResult
from dvsnet.stats import RunStats


def result(paths, total, index, restarted=False, flow=0.0):
    return FrameResult(labels=np.zeros((4, 6), np.uint8), paths=paths, scores=[None] * len(paths),
                       timings={"flow": flow, "total": total}, regions=[], index=index, restarted=restarted)


def test_figures_of_three_frames():
    stats = RunStats()
    stats.add(result(["seg", "seg"], 0.5, 0, restarted=True), wall_seconds=1.0, name="a")
    stats.add(result(["seg", "warp"], 0.2, 1, flow=0.1), wall_seconds=0.5)
    stats.add(result(["warp", "warp"], 0.3, 2, flow=0.1), wall_seconds=0.5)
    f = stats.figures()
    assert f["frames"] == 3 and f["region_frames"] == 6
    assert (f["regions_seg"], f["regions_warp"]) == (3, 3)
    assert f["seg_share"] == f["warp_share"] == f["workload_saved"] == pytest.approx(0.5)
    assert f["warp_seg_ratio"] == pytest.approx(1.0)
    assert f["fps"] == pytest.approx(3 / 1.0) and f["ms_per_frame"] == pytest.approx(1000 / 3)
    assert f["fps_warm"] == pytest.approx(2 / 0.5) and f["fps_end_to_end"] == pytest.approx(3 / 2.0)
    assert f["stage_ms"] == {"flow": pytest.approx(200 / 3), "total": pytest.approx(1000 / 3)}
    assert f["restarts"] == [{"frame": 0, "name": "a", "height": 4, "width": 6}]


def test_nothing_counted_is_none_not_a_division_by_zero():
    f = RunStats().figures()
    assert f["frames"] == 0 and f["fps"] is None and f["seg_share"] is None and f["warp_seg_ratio"] is None
