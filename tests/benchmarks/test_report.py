"""benchmarks/report.py on hand-made sweep rows: Table 1 operating points picked across grids."""
import importlib.util
import json
from pathlib import Path

import pytest

from dvsnet import experiments
from dvsnet.experiments import SweepRow
from dvsnet.sweep import SweepConfig

REPORT = Path(__file__).resolve().parents[2] / "benchmarks" / "report.py"
OVERLAP = 16  # default overlap at 512 px width


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("benchmarks_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(policy: str, grid: str, miou: float, speedup: float, *, segmenter="fast", flow="dis") -> SweepRow:
    """A sweep.csv row as read_rows returns it; fps = speedup x 10 (ref_fps 10)."""
    saved = 1 - 1 / speedup
    return SweepRow(
        segmenter=segmenter, flow=flow, policy=policy, grid=grid, overlap=0 if grid == "1x1" else OVERLAP,
        miou=miou, pixel_accuracy=0.9, fps=10.0 * speedup, ms_per_frame=100.0 / speedup, ref_fps=10.0,
        speedup=speedup, seg_share=1 - saved, warp_share=saved,
        warp_seg_ratio=None if saved == 0 else 1.0, flow_ms=1.0, decision_ms=0.1, segmentation_ms=50.0,
        warp_ms=1.0, stitch_ms=0.1, snippets=1, frames=20, frame_size="256x512", data="data/synth",
        weights_id="w", load_1m=1.0, torch_threads=1, finished_utc="2026-01-01T00:00:00+00:00",
    )


BASE = row("always", "1x1", 0.640, 1.0, flow="-")
PAPER_GRID = [row("dn:0.5", "2x2", 0.450, 6.5), row("dn:0.8", "2x2", 0.570, 3.0),
              row("dn:0.9", "2x2", 0.620, 2.0)]
ONE_REGION = [row("dn:0.8", "1x1", 0.580, 7.0), row("dn:0.92", "1x1", 0.623, 4.0)]


def render(report, rows, tmp_path) -> str:
    config = SweepConfig(segmenters=("fast",), flows=("dis",))
    return report.build_report(rows, config, tmp_path, [], "python benchmarks/report.py --no-run")


def test_operating_points_come_from_the_better_grid_and_the_2x2_pick_stays_visible(report, tmp_path):
    curves = experiments.dn_curves([BASE, *PAPER_GRID, *ONE_REGION], "fast", "dis", ((1, 1),), OVERLAP)
    assert list(curves) == ["2x2", "1x1"]
    across = experiments.operating_points([r for rs in curves.values() for r in rs], BASE)
    assert across["balanced"][0].key == "fast|dis|dn:0.92|1x1|0" and across["balanced"][2]
    assert across["high-speed"][0].key == "fast|dis|dn:0.8|1x1|0" and across["high-speed"][2]

    text = render(report, [BASE, *PAPER_GRID, *ONE_REGION], tmp_path)
    lines = text.splitlines()
    assert "| balanced (fast, dis) | dn:0.92 | 1x1 | 62.30 | 40.00 | 4.00× | 1.70 | 75.0% |" in lines
    assert "| balanced (fast, dis), 2x2 only | dn:0.9 | 2x2 | 62.00 | 20.00 | 2.00× | 2.00 | 50.0% |" \
        in lines
    assert "| high-speed (fast, dis) | dn:0.8 | 1x1 | 58.00 | 70.00 | 7.00× | 6.00 | 85.7% |" in lines
    assert "| high-speed (fast, dis), 2x2 only | dn:0.5 | 2x2 | 45.00 | 65.00 | 6.50× | 19.00 | 84.6% |" \
        in lines
    verdicts = [line for line in lines if "**balanced** target" in line or "division alone" in line]
    assert verdicts[0].endswith("**met** — dn:0.92 on 1x1: 4.00× at 1.70 points drop (62.30% vs 64.00%).")
    paper = "  On the paper's 2x2 division alone: **missed** — "
    assert verdicts[1] == paper + "dn:0.9 on 2x2: 2.00× at 2.00 points drop (62.00%)."
    assert paper + "dn:0.5 on 2x2: 6.50× at 19.00 points drop (45.00%)." in lines
    assert sum("division alone" in line for line in lines) == 4  # twice: verdicts at a glance and Table 1
    assert "ours are 256×128 px of 512×256" in text and "plus 1x1" in text
    # Fig. 8: one line per curve; the Fig. 9 policy table stays on the 2x2 grid
    assert "| (fast, dis) | 1x1 | 0.8–0.92 | 58.00–62.30 | 4.00–7.00× | 1/1 | 1/1 |" in lines
    assert "| (fast, dis) | 2x2 | 0.5–0.9 | 45.00–62.00 | 2.00–6.50× | 2/2 | 2/2 |" in lines
    fig9 = text[text.index("## Fig. 9"):text.index("## Table 3")]
    assert "| dn:0.9 | 62.00 |" in fig9 and "dn:0.92" not in fig9


def test_without_a_curve_on_another_grid_the_report_picks_on_2x2_as_before(report, tmp_path):
    # an older CSV: the only 1x1 dn row is experiment c's dn:0.92, which is no curve
    text = render(report, [BASE, *PAPER_GRID, ONE_REGION[1]], tmp_path)
    lines = text.splitlines()
    assert "| balanced (fast, dis) | dn:0.9 | 2x2 | 62.00 | 20.00 | 2.00× | 2.00 | 50.0% |" in lines
    assert "| high-speed (fast, dis) | dn:0.5 | 2x2 | 45.00 | 65.00 | 6.50× | 19.00 | 84.6% |" in lines
    assert "2x2 only" not in text and "division alone" not in text
    assert "Operating points are picked from the dn curve at the default grid and overlap" in text
    assert not any(line.startswith("| (fast, dis) | 1x1 |") for line in lines)


def test_the_setup_says_when_rows_ran_in_parallel(report, tmp_path):
    rows = [BASE, *PAPER_GRID]  # rows of an older CSV have no jobs column: one at a time
    assert "at a time" not in render(report, rows, tmp_path)
    parallel = [r.replace(jobs=2) for r in rows]
    assert "Rows ran up to 2 at a time (`--jobs`)" in render(report, parallel, tmp_path)


def test_the_setup_says_how_the_rows_timed_their_reference(report, tmp_path):
    old = render(report, [BASE, *PAPER_GRID], tmp_path)  # rows from before the one runner: no ref_frames
    assert "first 10 frames of the first snippet, timed in the same worker just before each row" in old
    assert "the scatter of its own 10-frame reference" in old
    new = render(report, [r.replace(ref_frames=20) for r in [BASE, *PAPER_GRID]], tmp_path)
    assert ("(policy `always`, 1x1, interleaved frame by frame with each row on its snippets, "
            "dvsnet.runner)") in new
    assert "the scatter of its own reference, timed on the same frames interleaved with it" in new


def test_speed_ups_use_the_runs_median_reference_not_each_rows_own(report, tmp_path):
    # the same rows, their 10-frame reference timings scattered around 10 fps as on a busy machine
    scatter = [7.0, 10.0, 13.0, 10.0]
    rows = [r.replace(ref_fps=ref, speedup=r.fps / ref, finished_utc=f"2026-01-01T00:0{i}:00+00:00")
            for i, (r, ref) in enumerate(zip([BASE, *PAPER_GRID], scatter))]
    rows, stats = experiments.pool_reference(rows)
    assert stats["fast"] == {"median": 10.0, "min": 7.0, "max": 13.0, "count": 4, "first_half": 8.5,
                             "second_half": 11.5}
    assert [r.speedup for r in rows] == pytest.approx([1.0, 6.5, 3.0, 2.0])  # fps / 10
    assert (rows[1].speedup_own_ref == pytest.approx(65 / 10)
            and rows[0].speedup_own_ref == pytest.approx(10 / 7))
    text = render(report, [r.replace(speedup=r.speedup_own_ref) for r in rows], tmp_path)
    assert "median 10.00 fps over 4 timings (range 7.00–13.00, ±30% around it" in text
    assert "| `fast / dis / dn:0.8 / 2x2 / 16` | 57.00 | 30.00 | 13.00 | 3.00× | 2.31× |" in text


def test_a_check_on_more_snippets_gives_its_own_table_1_and_its_verdicts_stand(report, tmp_path):
    # 20 snippets: dn:0.92 on 1x1 meets the balanced target; on 50 snippets the same threshold drops 4
    # points, and the balanced pick moves to a slower row
    main_rows = [BASE, *PAPER_GRID, *ONE_REGION]
    check = [r.replace(snippets=50) for r in (
        row("always", "1x1", 0.650, 1.0, flow="-"), row("dn:0.8", "2x2", 0.560, 3.0),
        row("dn:0.9", "2x2", 0.625, 2.0), row("dn:0.8", "1x1", 0.570, 7.0),
        row("dn:0.92", "1x1", 0.610, 4.0))]
    config = SweepConfig(segmenters=("fast",), flows=("dis",))
    text = report.build_report(main_rows, config, tmp_path, [], "python benchmarks/report.py --no-run",
                               check_rows=check, check_dir=tmp_path / "check")
    lines = text.splitlines()
    section = text[text.index("## Checked on 50 snippets"):text.index("## All rows")]
    assert text.index("## Fig. 10") < text.index("## Checked on 50 snippets")  # after every main-run verdict
    assert "at 1 snippets one snippet's key decision" in section
    assert "on 1x1, 2x2 at thresholds 0.8, 0.9, 0.92" in section and "check/sweep.csv" in section
    assert "| balanced (fast, dis) | dn:0.9 | 2x2 | 62.50 | 20.00 | 2.00× | 2.50 | 50.0% |" in section
    check_verdict = "- **balanced** target (≥ 3.5× per-frame fps, ≤ 3.0 points drop): **missed** — " \
        "dn:0.9 on 2x2: 2.00× at 2.50 points drop (62.50% vs 65.00%)."
    assert check_verdict in section
    glance = text[text.index("## Verdicts at a glance"):text.index("## Table 1:")]
    assert glance.splitlines()[2] == ("- Checked on 50 snippets (these verdicts stand where they differ "
                                      "from the 1-snippet ones after them):")
    assert "- On 1 snippets, the whole experiment grid:" in glance.splitlines()
    assert "  " + check_verdict in glance.splitlines()
    # the 20-snippet verdict is still reported, beside the check's
    assert any(line.startswith("- **balanced** target") and "**met**" in line for line in lines)


def test_the_check_also_gives_fig_9_verdicts_when_it_holds_other_policies(report, tmp_path):
    check = [r.replace(snippets=50) for r in (
        row("always", "1x1", 0.650, 1.0, flow="-"), row("dn:0.8", "2x2", 0.560, 3.0),
        row("dn:0.9", "2x2", 0.625, 2.0), row("fixed:2", "2x2", 0.600, 2.0),
        row("fixed:5", "2x2", 0.500, 3.0), row("diff:16", "2x2", 0.630, 2.0))]
    config = SweepConfig(segmenters=("fast",), flows=("dis",))
    text = report.build_report([BASE, *PAPER_GRID], config, tmp_path, [],
                               "python benchmarks/report.py --no-run", check_rows=check)
    section = text[text.index("## Checked on 50 snippets"):text.index("## All rows")]
    assert "### Fig. 9 policies on 2x2" in section and "| fixed:5 | 50.00 | 30.00 | 3.00× |" in section
    fixed = ("- dn vs fixed (DFF), target dn ≥ fixed + 1.5 points at equal speed somewhere: **met**; "
             "largest gap +6.00 points at 3.00×")
    diff = ("- dn vs diff (frame difference), target dn above it everywhere the curves overlap: "
            "**missed**; gaps -0.50@2.0×.")
    assert fixed in section and diff in section
    glance = text[text.index("## Verdicts at a glance"):text.index("## Table 1:")].splitlines()
    assert "  " + diff in glance and any(line.startswith("  " + fixed) for line in glance)


def test_gpu_fps_table_comes_from_bench_gpu_when_it_ran_on_a_gpu(report, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_gpu", REPORT.parent / "bench_gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "gpu.json"
    assert bench.main(["--device", "cpu", "--sizes", "64x128", "--clips", "1", "--frames", "4",
                       "--warmup", "1", "--configs", "fixed:2@1x1", "fixed:2@2x2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {r["config"]: r for r in result["rows"]}
    assert set(rows) == {"always@1x1", "fixed:2@1x1", "fixed:2@2x2"} and result["device"] == "cpu"
    assert rows["always@1x1"]["seg_share"] == 1.0 and rows["always@1x1"]["speedup"] == 1.0
    assert rows["fixed:2@1x1"]["seg_share"] == 0.5 and rows["fixed:2@2x2"]["seg_share"] == 0.5  # frames 0, 2
    assert all(r["fps"] > 0 and r["size"] == "64x128" for r in rows.values())
    assert bench.main(["--sizes", "64"]) == 2 and "size must look like HxW" in capsys.readouterr().err

    config = SweepConfig(segmenters=("fast",), flows=("dis",))
    cpu_only = report.build_report([BASE, *PAPER_GRID], config, tmp_path, [], "report", gpu=result)
    assert "**GPU.** No GPU was lent" in cpu_only  # a CPU run of bench_gpu is not a GPU figure
    on_gpu = {**result, "device": "cuda:0 (a GPU)", "device_type": "cuda"}  # what a GPU run records
    text = report.build_report([BASE, *PAPER_GRID], config, tmp_path, [], "report", gpu=on_gpu)
    assert "No GPU was lent" not in text and "on cuda:0 (a GPU)" in text
    assert "| 64x128 | `fixed:2@1x1` |" in text and "| 50.0% |" in text
