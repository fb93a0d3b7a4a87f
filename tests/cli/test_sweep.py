"""`dvsnet sweep` on a tiny generated tree: rows, resume without redoing, plots; plus the row plan."""
import csv
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from dvsnet.cli import main
from dvsnet.experiments import read_rows
from dvsnet.sweep import SweepConfig, plan_rows


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    from dvsnet.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, "val", sequences=1, frames=30, size=(64, 128), seed=5, progress=False)
    return root


def test_plan_has_each_configuration_once_in_priority_order():
    config = SweepConfig(segmenters=("fast", "accurate"), flows=("dis", "flownet"), thresholds=(0.9, 0.92),
                         fixed=(5,), diff=(8.0,), flow_limits=(2.0,), oracle=(0.9,), grids=((1, 1), (2, 2)),
                         overlaps=(0, 16), threshold=0.92)
    rows = plan_rows(config, width=512)  # default overlap 16 px
    keys = [r.key for r in rows]
    assert len(keys) == len(set(keys))
    assert keys[:2] == ["fast|-|always|1x1|0", "accurate|-|always|1x1|0"]  # e first: the baselines
    assert keys[2:4] == ["fast|dis|dn:0.9|2x2|16", "fast|dis|dn:0.92|2x2|16"]
    shared = next(r for r in rows if r.key == "fast|dis|dn:0.92|2x2|16")
    assert set(shared.experiments) == set("abcd")  # the default 2x2 dn row serves four experiments
    # one region has no inner edge: its overlap is 0 whatever was asked
    assert "fast|dis|dn:0.92|1x1|0" in keys and not any(k.endswith("1x1|16") for k in keys)
    # 2 baselines + 2x2x2 dn + 1x1 dn curve (a, its 0.92 shared with c, d) + fixed, flow, diff, oracle
    # + overlap 0 (d)
    assert len(rows) == 2 + 8 + 2 + 4 + 1
    assert keys[-1] == "accurate|flownet|dn:0.92|2x2|16"  # a's other configurations come last


def test_plan_puts_the_curve_grids_right_after_the_2x2_dn_curve():
    config = SweepConfig(segmenters=("fast", "accurate"), flows=("dis", "flownet"), thresholds=(0.9, 0.92),
                         fixed=(5,), diff=(8.0,), flow_limits=(2.0,), oracle=(0.9,), grids=((1, 1), (2, 2)),
                         overlaps=(0, 16), threshold=0.92, curve_grids=((1, 1), (1, 2)))
    rows = plan_rows(config, width=512)  # default overlap 16 px
    keys = [r.key for r in rows]
    assert keys[2:8] == ["fast|dis|dn:0.9|2x2|16", "fast|dis|dn:0.92|2x2|16",
                         "fast|dis|dn:0.9|1x1|0", "fast|dis|dn:0.92|1x1|0",     # 1x1: no overlap
                         "fast|dis|dn:0.9|1x2|16", "fast|dis|dn:0.92|1x2|16"]  # others: the default
    assert keys[8] == "fast|dis|fixed:5|2x2|16"  # then b's other policies
    assert len(keys) == len(set(keys))
    shared = next(r for r in rows if r.key == "fast|dis|dn:0.92|1x1|0")
    assert shared.experiments == ("a", "c", "d")  # one row for the curve, Table 3 and Fig. 10
    # only (first segmenter, first flow) gets the extra curves
    others = [r.config for r in rows if r.config.policy.startswith("dn:")
              and (r.config.segmenter, r.config.flow) != ("fast", "dis")]
    assert {c.grid for c in others} == {(2, 2)} and len(others) == 6
    # without experiment a there is no curve on other grids; with no curve grids only c's 1x1 row is left
    assert "fast|dis|dn:0.9|1x1|0" not in [r.key for r in plan_rows(replace(config, experiments="bcde"), 512)]
    none = [r.key for r in plan_rows(replace(config, curve_grids=()), 512) if "|dn:" in r.key]
    assert [k for k in none if "|2x2|" not in k] == ["fast|dis|dn:0.92|1x1|0"]


def test_sweep_passes_curve_grids_to_the_config(tmp_path, monkeypatch, capsys):
    import dvsnet.sweep

    seen = []
    monkeypatch.setattr(dvsnet.sweep, "run_sweep", lambda data, output, *, config, **kw: seen.append(config))
    for option, grids in ([], ((1, 1),)), (["--curve-grids", "1x1,1x2"], ((1, 1), (1, 2))), \
            (["--curve-grids", ""], ()):
        assert main(["sweep", str(tmp_path), "--output", str(tmp_path / "o"), *option]) == 0
        assert seen.pop().curve_grids == grids
    with pytest.raises(SystemExit):
        main(["sweep", str(tmp_path), "--curve-grids", "1by1"])
    assert "grid must look like RxC" in capsys.readouterr().err


def _sweep(capsys, tree, weights, out, *extra):
    code = main(["sweep", str(tree), "--output", str(out), "--segmenters", str(weights), "--flows", "dis",
                 "--experiments", "eb", "--thresholds=", "--fixed", "2,20", "--diff", "4",
                 "--flow-limits", "1", "--oracle", "0.9", "--warmup-frames", "1", "--threads", "1",
                 "--no-progress", *extra])
    out_text, err = capsys.readouterr()
    return code, out_text, err


def test_sweep_writes_rows_resumes_and_plots(tree, weights, tmp_path, capsys):
    out = tmp_path / "sweep"
    code, text, err = _sweep(capsys, tree, weights, out)
    assert code == 0, err
    rows = read_rows(out / "sweep.csv")
    assert [r.policy for r in rows] == ["always", "fixed:2", "fixed:20", "flow:1", "diff:4", "oracle:0.9"]
    by_policy = {r.policy: r for r in rows}
    assert by_policy["always"].seg_share == 1.0 and by_policy["always"].grid == "1x1"
    assert by_policy["fixed:2"].seg_share == pytest.approx(0.5)   # frames 0, 2, ..., 18
    assert by_policy["fixed:20"].seg_share == pytest.approx(0.05)  # frame 0 only
    for row in rows:
        assert row.frames == 20 and row.snippets == 1 and row.frame_size == "64x128"
        assert row.fps > 0 and row.ref_fps > 0
        assert row.speedup == pytest.approx(row.fps / row.ref_fps, rel=1e-4)
        assert 0 <= row.miou <= 1
        assert (out / "rows").is_dir()
    assert len(list((out / "rows").glob("*.json"))) == 6
    assert (out / "fig9_policies.png").stat().st_size > 1000
    assert "6 rows" in text

    # an interrupted sweep (last two rows missing), and a row measured with other weights (stale)
    with open(out / "sweep.csv", newline="") as f:
        table = list(csv.DictReader(f))
    table = table[:-2]
    table[0]["weights_id"] = "0123456789"
    with open(out / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    before = {r.key: r.finished_utc for r in read_rows(out / "sweep.csv")}
    code, text, err = _sweep(capsys, tree, weights, out)
    assert code == 0, err
    assert "3 already in" in err and "3 to run" in err and "1 rows were measured with other weights" in err
    stale = list(out.glob("sweep-stale-*.csv"))
    assert len(stale) == 1 and [r.weights_id for r in read_rows(stale[0])] == ["0123456789"]
    after = read_rows(out / "sweep.csv")
    assert len(after) == 6 and len({r.weights_id for r in after}) == 1
    kept = [r for r in after if r.key in before and r.key != table[0]["key"]]
    assert len(kept) == 3 and all(before[r.key] == r.finished_utc for r in kept)
    assert ({(r.backend, r.precision) for r in after} == {(after[0].backend, after[0].precision)}
            != {(None, None)})

    # a row that ran on another precision than this sweep's is measured again too
    with open(out / "sweep.csv", newline="") as f:
        table = list(csv.DictReader(f))
    table[1]["precision"] = "int8" if table[1]["precision"] != "int8" else "fp32"
    with open(out / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    code, text, err = _sweep(capsys, tree, weights, out)
    assert code == 0, err
    assert ("1 rows were measured with other weights or another backend or precision" in err
            and "1 to run" in err)

    # rows made on another subset are refused instead of mixed: mark them as from 3 snippets
    with open(out / "sweep.csv", newline="") as f:
        table = list(csv.DictReader(f))
    for row in table:
        row["snippets"] = "3"
    with open(out / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    code, text, err = _sweep(capsys, tree, weights, out)
    assert code == 2 and "holds rows for 3 snippets" in err and "Traceback" not in err
    assert main(["sweep", str(tree), "--output", str(out), "--plots-only"]) == 0  # drawing needs no data


def test_sweep_user_errors(tree, tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "missing"), "--output", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sweep", str(tree), "--experiments", "xz", "--output", str(tmp_path / "o")]) == 2
    assert "unknown experiment" in capsys.readouterr().err
    assert main(["sweep", str(tree), "--plots-only", "--output", str(tmp_path / "empty")]) == 2
    assert "no sweep.csv" in capsys.readouterr().err
    assert main(["sweep", str(tree), "--segmenters=", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "at least one name" in err and "Traceback" not in err
    assert main(["sweep", str(tree), "--flows", "dis,mv", "--output", str(tmp_path / "o")]) == 2
    assert "--flows mv needs video files" in capsys.readouterr().err
    # a sweep.csv that is not a sweep's, or one with a row cut short by hand: refused, left as it was
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "sweep.csv").write_text("name,value\na,1\n")
    assert main(["sweep", str(tree), "--plots-only", "--output", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert "not a dvsnet sweep CSV: no key, segmenter" in err and len(err.strip().splitlines()) == 1
    assert (foreign / "sweep.csv").read_text() == "name,value\na,1\n"
    header = "key,segmenter,flow,policy,grid,miou,fps,snippets,frame_size,data"
    (foreign / "sweep.csv").write_text(f"{header}\nfast|-|always|1x1|0,fast,-,always,1x1,0.5,2.0,,64x128,d\n")
    assert main(["sweep", str(tree), "--output", str(foreign)]) == 2
    assert "line 2: no snippets" in capsys.readouterr().err


def test_jobs_run_rows_in_parallel_with_the_results_of_one_process(tree, weights, tmp_path, capsys):
    code, _, err = _sweep(capsys, tree, weights, tmp_path / "serial")
    assert code == 0, err
    code, _, err = _sweep(capsys, tree, weights, tmp_path / "parallel", "--jobs", "2")
    assert code == 0, err
    assert "6 to run on 1 snippets at 64x128, 2 at a time" in err and "Traceback" not in err
    serial = {r.key: r for r in read_rows(tmp_path / "serial" / "sweep.csv")}
    parallel = {r.key: r for r in read_rows(tmp_path / "parallel" / "sweep.csv")}
    assert serial.keys() == parallel.keys()
    for key, row in parallel.items():  # same frames, same networks: identical scores and paths
        assert row.miou == serial[key].miou and row.seg_share == serial[key].seg_share, key
        assert row.torch_threads == 1 and row.fps > 0 and row.ref_fps > 0
        assert row.jobs == 2 and serial[key].jobs == 1
    assert len(list((tmp_path / "parallel" / "rows").glob("*.json"))) == 6
    with pytest.raises(SystemExit):
        main(["sweep", str(tree), "--jobs", "0", "--output", str(tmp_path / "o")])
    assert "--jobs" in capsys.readouterr().err


def test_ctrl_c_stops_parallel_rows_cleanly(tree, weights, tmp_path):
    """A terminal's Ctrl-C (SIGINT to the whole process group) during `--jobs 2`: exit 130, one line,
    no traceback or multiprocessing leak warning from the workers, no worker left, finished rows kept."""
    out = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    # Python's own Ctrl-C handler even where the test runner's shell ignores SIGINT (background jobs)
    run_cli = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
               "sys.argv[0] = 'dvsnet'; runpy.run_module('dvsnet', run_name='__main__')")
    proc = subprocess.Popen(
        [sys.executable, "-c", run_cli, "sweep", str(tree), "--output", str(out),
         "--segmenters", str(weights), "--flows", "dis", "--experiments", "b",
         "--fixed", ",".join(map(str, range(1, 41))),
         "--diff=", "--flow-limits=", "--oracle=", "--thresholds=", "--warmup-frames", "1", "--threads", "1",
         "--jobs", "2", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(read_rows(out / "sweep.csv")) < 1 and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "dvsnet sweep: interrupted"
    assert "Traceback" not in stderr and "leaked" not in stderr and "Warning" not in stderr
    rows = read_rows(out / "sweep.csv")
    assert 1 <= len(rows) < 41 and len(list((out / "rows").glob("*.json"))) == len(rows)
    deadline = time.time() + 10
    while time.time() < deadline and _group_alive(proc.pid):
        time.sleep(0.1)
    assert not _group_alive(proc.pid), "a worker or the resource tracker outlived the sweep"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
