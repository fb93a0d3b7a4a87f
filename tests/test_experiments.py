"""dvsnet.experiments on hand-made rows: known answers of the analysis, and the CSV round trip."""
import csv

import pytest

from dvsnet import experiments as ex
from dvsnet.config import PipelineConfig
from dvsnet.experiments import SweepRow
from dvsnet.sweep import PlannedRow, SweepConfig, plan_rows


def row(policy: str, grid: str = "2x2", miou: float | None = 0.6, speedup: float = 2.0, *, overlap=None,
        segmenter="fast", flow="dis", **more) -> SweepRow:
    return SweepRow(segmenter=segmenter, flow=flow, policy=policy, grid=grid,
                    overlap=(0 if grid == "1x1" else 16) if overlap is None else overlap, miou=miou,
                    fps=10.0 * speedup, speedup=speedup, ref_fps=10.0, snippets=2, frame_size="256x512",
                    data="d", **more)


BASE = row("always", "1x1", 0.64, 1.0, flow="-")


def test_a_row_derives_its_key_policy_parts_and_size():
    r = row("dn:0.92")
    assert r.key == "fast|dis|dn:0.92|2x2|16" and (r.policy_kind, r.policy_value) == ("dn", 0.92)
    assert (BASE.policy_kind, BASE.policy_value, BASE.width, BASE.height) == ("always", None, 512, 256)


def test_select_compares_numbers_as_floats_and_derived_fields():
    rows = [BASE, row("dn:0.9"), row("dn:0.9", overlap=8), row("fixed:2")]
    assert ex.select(rows, policy_kind="dn", overlap=16.0) == [rows[1]]
    assert ex.select(rows, policy_value=2) == [rows[3]]
    assert ex.baseline(rows, "fast") is BASE and ex.baseline(rows, "accurate") is None


def test_pool_reference_divides_by_the_median_and_keeps_the_own_ratio():
    rows = [row("dn:0.5", speedup=s, finished_utc=f"t{i}").replace(ref_fps=ref, fps=fps)
            for i, (s, ref, fps) in enumerate([(4.0, 5.0, 20.0), (1.0, 20.0, 20.0), (2.0, 10.0, 20.0)])]
    pooled, stats = ex.pool_reference(rows)
    assert stats["fast"] == {"median": 10.0, "min": 5.0, "max": 20.0, "count": 3, "first_half": 5.0,
                             "second_half": 15.0}
    assert ([r.speedup for r in pooled] == [2.0, 2.0, 2.0]
            and [r.speedup_own_ref for r in pooled] == [4.0, 1.0, 2.0])
    assert rows[0].speedup == 4.0  # the input rows are left as they were


def test_compare_curves_interpolates_ours_at_their_points_inside_our_range():
    ours = [row("dn:0.5", miou=0.50, speedup=4.0), row("dn:0.9", miou=0.70, speedup=2.0)]
    theirs = [row("fixed:2", miou=0.55, speedup=3.0), row("fixed:9", miou=0.4, speedup=9.0)]
    assert ex.curve(ours) [0].tolist() == [2.0, 4.0]
    [(x, gap)] = ex.compare_curves(ours, theirs)  # 9x is outside ours' 2..4x
    assert x == 3.0 and gap == pytest.approx(60.0 - 55.0)
    assert ex.compare_curves(ours[:1], theirs) == []


def test_operating_points_pick_the_fastest_within_3_points_and_the_best_at_6x():
    dn = [row("dn:0.5", miou=0.50, speedup=8.0), row("dn:0.7", miou=0.55, speedup=6.5),
          row("dn:0.9", miou=0.62, speedup=3.0), row("dn:0.95", miou=0.63, speedup=2.0),
          row("dn:0.3", miou=None)]
    points = ex.operating_points(dn, BASE)
    assert points["balanced"] == (dn[2], pytest.approx(2.0), False)  # 3.0x < 3.5x
    assert points["high-speed"] == (dn[1], pytest.approx(9.0), False)  # 9 points > 8
    slow = ex.operating_points(dn[2:], BASE)["high-speed"]  # none reaches 6x: the fastest
    assert slow.row is dn[2] and not slow.met
    assert ex.most_accurate_at(dn, 6.0) is dn[1] and ex.most_accurate_at(dn, 10.0) is None
    assert ex.monotone_steps(ex.scored(dn)) == (3, 3)


def test_dn_curves_and_table1_choice_across_grids():
    paper = [row("dn:0.8", miou=0.57, speedup=3.0), row("dn:0.9", miou=0.62, speedup=2.0)]
    one = [row("dn:0.8", "1x1", 0.58, 7.0), row("dn:0.92", "1x1", 0.623, 4.0)]
    other_overlap = row("dn:0.8", overlap=8)
    rows = [BASE, *paper, *one, other_overlap]
    assert ex.dn_curves(rows, "fast", "dis", ((1, 1),), 16) == {"2x2": paper, "1x1": one}
    assert list(ex.dn_curves(rows[:-2], "fast", "dis", ((1, 1),), 16)) == ["2x2"]  # one 1x1 row: no curve
    choice = ex.table1_choice(rows, BASE, "dis", ((1, 1),), 16)
    assert choice.across["balanced"].row is one[1] and choice.default_grid["balanced"].row is paper[1]
    assert ex.table1_choice(rows[:3], BASE, "dis", ((1, 1),), 16).default_grid == {}


def test_policy_division_and_overlap_selections():
    rows = [row("dn:0.92"), row("fixed:2"), row("dn:0.92", "1x1"), row("dn:0.92", "4x4"),
            row("dn:0.92", overlap=0), row("dn:0.92", overlap=8, miou=None), row("dn:0.92", "3x3", overlap=8)]
    pol = ex.policy_curves(rows, "fast", "dis", 16)
    assert pol["dn"] == [rows[0]] and pol["fixed"] == [rows[1]] and pol["oracle"] == []
    assert ex.division_rows(rows, "fast", "dis", "dn:0.92", 16) == {"1x1": rows[2], "2x2": rows[0],
                                                                     "4x4": rows[3]}
    assert ex.overlap_rows(rows, "fast", "dis", "dn:0.92") == [rows[4], rows[0]]  # scored, by overlap


def test_csv_round_trip_keeps_every_field(tmp_path):
    rows = [BASE.replace(overlap_default=True, stitch="max-logit", jobs=2, torch_threads=1, frames=40,
                         finished_utc="2026-01-01T00:00:00+00:00", warp_seg_ratio=None),
            row("dn:0.92", miou=None, seg_share=0.25, flow_width=256, dn="dis", overlap_default=False)]
    ex.write_rows(tmp_path / "sweep.csv", rows)
    assert ex.read_rows(tmp_path / "sweep.csv") == rows
    with open(tmp_path / "sweep.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(ex.COLUMNS)
    assert table[1]["key"] == "fast|dis|dn:0.92|2x2|16" and table[1]["policy_value"] == "0.92"
    assert table[0]["overlap_default"] == "true" and table[1]["miou"] == "" and table[0]["grid"] == "1x1"


def test_a_csv_of_the_old_columns_reads_and_resumes(tmp_path):
    # the columns sweep.csv had before PipelineConfig.to_record: no overlap_default, stitch, dn, device,
    # flow_width
    old = ("key,segmenter,flow,policy,policy_kind,policy_value,grid,overlap,miou,pixel_accuracy,fps,"
           "ms_per_frame,"
           "ref_fps,speedup,seg_share,warp_share,workload_saved,warp_seg_ratio,flow_ms,decision_ms,segmentation_ms,"
           "warp_ms,stitch_ms,snippets,frames,frame_size,data,weights_id,load_1m,torch_threads,jobs,finished_utc\n"
           "fast|-|always|1x1|0,fast,-,always,always,,1x1,0,0.64,0.9,10,100,10,1,1,0,0,,0,0,90,0,1,2,40,256x512,d,w,"
           "1.5,1,1,2026-01-01T00:00:00+00:00\n"
           "fast|dis|dn:0.92|2x2|16,fast,dis,dn:0.92,dn,0.92,2x2,16,0.6,0.9,20,50,10,2,0.5,0.5,0.5,1,3,1,40,2,1,2,40,"
           "256x512,d,w,1.5,1,1,2026-01-01T00:01:00+00:00\n")
    (tmp_path / "sweep.csv").write_text(old)
    rows = ex.read_rows(tmp_path / "sweep.csv")
    assert [r.key for r in rows] == ["fast|-|always|1x1|0", "fast|dis|dn:0.92|2x2|16"]
    assert rows[1].overlap == 16 and rows[1].stitch is None and rows[0].warp_seg_ratio is None
    # the plan of the same experiments finds them done: same keys
    planned = {p.key for p in plan_rows(SweepConfig(segmenters=("fast",), flows=("dis",), thresholds=(0.92,),
                                                    experiments="e"), 512)}
    assert "fast|-|always|1x1|0" in planned
    assert PlannedRow(PipelineConfig(policy="dn:0.92", grid=(2, 2)), 512).key == rows[1].key
    ex.write_rows(tmp_path / "again.csv", rows)  # rewritten on resume: the new columns empty
    assert ex.read_rows(tmp_path / "again.csv") == rows
    assert rows[1].warp_share == 0.5 and "workload_saved" not in (tmp_path / "again.csv").read_text()


def test_workload_saved_of_an_old_csv_reads_as_warp_share(tmp_path):
    (tmp_path / "sweep.csv").write_text("key,segmenter,flow,policy,grid,overlap,miou,fps,snippets,frame_size,"
                                        "data,workload_saved\nk,fast,dis,dn:0.9,2x2,16,0.6,20,2,256x512,d,0.75\n")
    assert ex.read_rows(tmp_path / "sweep.csv")[0].warp_share == 0.75


def test_planned_rows_record_the_whole_pipeline_config():
    planned = PlannedRow(PipelineConfig(segmenter="fast", policy="always", grid=(1, 1)), 512)
    assert planned.record()["flow"] == "-" and planned.key == "fast|-|always|1x1|0"
    config = PipelineConfig(policy="dn:0.920", grid=(2, 2), stitch="core", flow_width=256, max_key_age=0)
    record = PlannedRow(config, 512).record()
    assert record == {"segmenter": "fast", "flow": "dis", "policy": "dn:0.92", "grid": "2x2",
                      "grid_default": False, "overlap": 16, "overlap_default": True, "stitch": "core",
                      "dn": None, "device": None, "flow_width": 256, "max_key_age": 0, "backend": "auto",
                      "precision": "auto", "online": True}
    assert SweepRow(**record, miou=0.5, fps=1.0, snippets=1, frame_size="256x512", data="d").stitch == "core"


def test_read_rows_names_a_cell_that_is_not_a_number(tmp_path):
    path = tmp_path / "sweep.csv"
    header = "key,segmenter,flow,policy,grid,miou,fps,snippets,frame_size,data"
    path.write_text(f"{header}\nk,fast,-,always,1x1,0.5,fast,1,64x128,d\n")
    with pytest.raises(ex.DvsnetError, match="line 2: fps 'fast' is not a number"):
        ex.read_rows(path)
