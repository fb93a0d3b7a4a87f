"""Both kinds of CPU on one machine: with native bf16 faked off and on (DVSNET_NATIVE_BF16), `auto`
resolves as documented (dvsnet.auto_precision: the measured choice, never bf16 without native bf16) and
`segment`, a batch with worker processes, `evaluate` and `calibrate` run end to end on the path it chose."""
from __future__ import annotations

import json

import pytest

from dvsnet import auto_precision, backends
from dvsnet.cli import main
from tests.cli.test_batch import make_videos, rows_of
from tests.cli.test_segment import moving_frames, write_video


@pytest.mark.parametrize("native_bf16", ["0", "1"])
def test_every_command_runs_on_what_auto_chose_for_the_kind_of_cpu(native_bf16, tmp_path, weights,
                                                                    monkeypatch, capsys):
    for name in (backends.BACKEND_ENV, backends.PRECISION_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(backends.NATIVE_BF16_ENV, native_bf16)  # inherited by the batch's worker processes
    video = write_video(tmp_path / "clip.mp4", moving_frames(14))
    choice = auto_precision.choose(weights, auto_precision.first_frames(video), note=lambda line: None)
    assert native_bf16 == "1" or choice.precision != "bf16"
    ran = (choice.backend, choice.precision)
    common = ["--segmenter", str(weights), "--threads", "1", "--no-progress"]

    assert main(["segment", str(video), *common, "--output", str(tmp_path / "one")]) == 0
    config = json.loads((tmp_path / "one" / "segment-0001" / "summary.json").read_text())["config"]
    assert (config["backend"], config["precision"], config["backend_choice"]) == (*ran, choice.reason)

    make_videos(tmp_path / "in", good=2, frames=3)  # each worker checks auto on its first video's frames
    assert main(["segment", str(tmp_path / "in"), *common, "--workers", "2",
                 "--output", str(tmp_path / "batch")]) == 0
    for row in rows_of(tmp_path / "batch").values():
        config = json.loads((tmp_path / "batch" / row["run"] / "summary.json").read_text())["config"]
        assert row["status"] == "complete" and config["backend_choice"]
        assert native_bf16 == "1" or config["precision"] != "bf16"

    assert main(["evaluate", str(video), *common, "--warmup-frames", "2",
                 "--output", str(tmp_path / "eval")]) == 0
    result = json.loads(next((tmp_path / "eval").glob("*.json")).read_text())
    assert (result["config"]["backend"], result["config"]["precision"]) == ran and result["frames"] == 14

    dn = tmp_path / "cal" / "dn.safetensors"
    assert main(["calibrate", str(video), *common, "--out", str(dn), "--max-offset", "2", "--steps", "4",
                 "--thresholds", "0.5,0.99", "--cache", str(tmp_path / "cache")]) == 0
    assert json.loads((dn.parent / "calibration.json").read_text())["thresholds"][0]["threshold"] == 0.5
    capsys.readouterr()
