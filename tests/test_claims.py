"""dvsnet.claims on hand-made rows: Table 3's picks and the check's plan (the rest: tests/benchmarks)."""
from dvsnet import claims
from dvsnet.experiments import SweepRow
from dvsnet.sweep import SweepConfig


def _row(grid: str, miou: float, ratio: float | None) -> SweepRow:
    return SweepRow(segmenter="fast", flow="dis", policy="dn:0.92", grid=grid,
                    overlap=0 if grid == "1x1" else 16, miou=miou, fps=20.0, snippets=1,
                    frame_size="256x512", data="d", speedup=2.0, warp_seg_ratio=ratio)


def test_division_picks_the_highest_ratio_and_miou_as_printed_the_first_grid_on_a_tie():
    rows = [_row("1x1", 0.60, 4.001), _row("2x2", 0.62, 4.004), _row("3x3", 0.62, None)]
    found = claims.division(rows, "fast", "dis", "dn:0.92", ((1, 1), (2, 2), (3, 3), (4, 4)), 16)
    assert list(found.rows) == ["1x1", "2x2", "3x3"]  # no 4x4 row
    assert found.best_ratio == "1x1"  # 4.00 and 4.00 as printed: the first
    assert found.best_miou == "2x2"
    assert claims.division_verdict(found).startswith("Paper claim (Table 3): 2x2 uses the warp path best")
    assert ("ratio at **1x1** — not reproduced. Highest mIoU at 2x2 (62.00%)."
            in claims.division_verdict(found))
    nothing = claims.division([_row("1x1", 0.6, None)], "fast", "dis", "dn:0.92", ((1, 1),), 16)
    assert nothing.best_ratio is None and claims.division_verdict(nothing) is None


def test_the_check_reruns_the_first_segmenter_and_flows_curves():
    config = SweepConfig(segmenters=("fast", "accurate"), flows=("dis", "flownet"), curve_grids=((1, 1),),
                         backend="torch", precision="fp32")
    table1, fig9 = claims.check_configs(config, (0.9, 0.95))
    assert table1.segmenters == fig9.segmenters == ("fast",) and table1.flows == fig9.flows == ("dis",)
    assert table1.experiments == "ae" and table1.thresholds == (0.9, 0.95) and table1.curve_grids == ((1, 1),)
    assert fig9.experiments == "be" and fig9.oracle == () and fig9.thresholds == (0.9, 0.95, 0.97, 0.98)
    assert table1.backend == fig9.backend == "torch"
