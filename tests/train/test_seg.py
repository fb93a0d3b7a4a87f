"""Segmentation training on a tiny generated tree: it learns, logs, checkpoints, resumes, refuses to
clobber."""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dvsnet.cli import main
from dvsnet.data.cityscapes import labelled_frames
from dvsnet.errors import DvsnetError
from dvsnet.models import load_segmenter
from dvsnet.train.seg import load_pairs, resolve_precision


def _load_benchmark(name: str):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_training_frames_come_from_the_snippets_with_train_ids(tiny_tree):
    """The trainer reads dvsnet.data's labelled frames: 2 snippets x 30 frames, label ids mapped to train
    ids."""
    pairs = labelled_frames(tiny_tree, "train")
    assert len(pairs) == 60 and pairs[0][0].name == "tiny_000000_000000_leftImg8bit.png"
    images, labels = load_pairs(pairs[::2])
    assert images.shape == (30, 64, 128, 3) and images.dtype == np.uint8
    assert labels.shape == (30, 64, 128) and set(np.unique(labels[0])) == {0, 2, 10, 13}


def test_train_seg_logs_checkpoints_and_resumes(tiny_tree, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "seg", "--data", str(tiny_tree), "--out", str(out), "--crop", "32x64", "--batch", "2",
            "--frame-stride", "1", "--val-every", "5", "--val-frames", "2", "--lr", "5e-3", "--threads", "1",
            "--no-progress"]
    assert main(args + ["--steps", "5"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["arch"] == "fast" and config["crop"] == [32, 64]
    assert (out / "checkpoint.pt").is_file()
    # the same folder without --resume is refused (never overwrite a run)
    assert main(args + ["--steps", "10"]) == 2
    assert "--resume" in capsys.readouterr().err
    # a changed setting cannot be resumed either
    assert main(args + ["--steps", "10", "--resume", "--lr", "1e-3"]) == 2
    assert "lr" in capsys.readouterr().err
    assert main(args + ["--steps", "10", "--resume"]) == 0
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["step"]) for r in rows if r["val_miou"]] == [5, 10]
    net = load_segmenter(str(out / "model.safetensors"))
    assert net.num_classes == 19


def test_train_accurate_starts_from_fasts_matching_tensors(tiny_tree, tiny_fast, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "seg", "--arch", "accurate", "--data", str(tiny_tree), "--crop", "32x64", "--batch", "2",
            "--frame-stride", "1", "--val-frames", "2", "--lr", "0", "--steps", "1", "--threads", "1",
            "--no-progress"]
    assert main(args + ["--out", str(out), "--init-matching", str(tiny_fast)]) == 0
    assert "139 of 158 tensors start from" in capsys.readouterr().out
    fast, accurate = load_segmenter(str(tiny_fast)), load_segmenter(str(out / "model.safetensors"))
    assert accurate.output_stride == 4
    # lr 0: the backbone is still fast's (BatchNorm running statistics aside)
    assert torch.equal(accurate.backbone.stem[0].weight, fast.backbone.stem[0].weight)
    assert json.loads((out / "config.json").read_text())["init_matching"] == str(tiny_fast)
    # both inits at once is a one-line error
    assert main(args + ["--out", str(tmp_path / "both"), "--init", str(tiny_fast), "--init-matching",
                        str(tiny_fast)]) == 2
    err = capsys.readouterr().err
    assert "not both" in err and err.count("\n") == 1


@pytest.mark.slow
def test_train_seg_learns_the_tiny_scenes(tiny_tree, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "seg", "--data", str(tiny_tree), "--out", str(out), "--crop", "64x64",
                 "--batch", "4", "--frame-stride", "1", "--val-every", "60", "--val-frames", "4",
                 "--lr", "5e-3", "--steps", "60", "--no-progress"]) == 0
    vals = [float(r["val_miou"]) for r in csv.DictReader((out / "log.csv").open()) if r["val_miou"]]
    # four flat colour bands + noise: 60 steps learn them well beyond chance
    assert vals[-1] > 0.5


def test_train_seg_missing_data_is_one_line_error(tmp_path, capsys):
    assert main(["train", "seg", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r"),
                 "--steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and err.count("\n") == 1


def test_ship_writes_fp16_weights_and_config_that_load(tiny_fast, tmp_path):
    run = tiny_fast.parent
    assert main(["train", "ship", str(run), "--name", "fast", "--weights-dir", str(tmp_path)]) == 0
    shipped = tmp_path / "fast.safetensors"
    from safetensors.torch import load_file

    assert all(v.dtype in (torch.float16, torch.int64) for v in load_file(str(shipped)).values())
    info = json.loads((tmp_path / "fast.json").read_text())
    assert info["metadata"]["arch"] == "fast" and info["config"]["steps"] == 30
    net = load_segmenter(str(shipped))
    reference = load_segmenter(str(tiny_fast))
    x = torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        assert (net(x).argmax(1) == reference(x).argmax(1)).float().mean() > 0.98


def test_ship_without_a_trained_run_is_one_line_error(tmp_path, capsys):
    assert main(["train", "ship", str(tmp_path), "--name", "fast", "--weights-dir", str(tmp_path)]) == 2
    assert "train first" in capsys.readouterr().err


def test_ship_mistakes_are_one_line_errors_that_write_nothing(tiny_fast, tmp_path, capsys):
    run = tiny_fast.parent
    target = tmp_path / "weights"
    target.mkdir()
    # a name nothing would load these weights by
    assert main(["train", "ship", str(run), "--name", "accurate", "--weights-dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert "load by the name 'fast'" in err and err.count("\n") == 1
    # a folder that is not there, and one that cannot be written (a file stands in its way)
    assert main(["train", "ship", str(run), "--name", "fast", "--weights-dir", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert list(target.iterdir()) == []
    # a run whose weights file is not a safetensors file
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"not weights")
    assert main(["train", "ship", str(broken), "--name", "fast", "--weights-dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert "not a readable .safetensors file" in err and "Traceback" not in err
    assert list(target.iterdir()) == []


def test_train_into_an_unwritable_folder_is_one_line_error(tiny_tree, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["train", "seg", "--data", str(tiny_tree), "--out", str(blocker / "run"), "--steps", "1",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the run folder" in err and err.count("\n") == 1


def test_enet_class_weights_known_answer():
    from dvsnet.train.seg import class_weights

    labels = np.array([0] * 90 + [13] * 10, np.uint8)
    weights = class_weights(labels, "enet")
    assert weights[0].item() == pytest.approx(1 / np.log(1.02 + 0.9), rel=1e-5)
    assert weights[13].item() == pytest.approx(1 / np.log(1.02 + 0.1), rel=1e-5)
    assert weights[1].item() == 0.0  # absent class
    assert class_weights(labels, "none") is None


def test_auto_precision_uses_bf16_only_where_the_hardware_has_it(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)  # an AVX2-only CPU
    assert resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)  # AVX512-BF16 / AMX
    assert resolve_precision("auto", cpu) == "bf16"
    with pytest.raises(DvsnetError, match="auto, bf16, fp32"):
        resolve_precision("fp8", cpu)


def test_bench_stride_ceiling_scores_the_labels_on_each_grid(tiny_tree, tmp_path, capsys):
    bench = _load_benchmark("bench_stride_ceiling")
    output = tmp_path / "ceiling.json"
    assert bench.main(["--data", str(tiny_tree), "--strides", "1", "8", "--fit", "--fit-steps", "50",
                       "--threads", "1", "--output", str(output)]) == 0
    rows = {r["stride"]: r for r in json.loads(output.read_text())["rows"]}
    assert rows[1]["shares"] == pytest.approx(100) and rows[1]["fitted"] == pytest.approx(100)  # the labels
    assert rows[8]["shares"] < 100  # band edges fall inside 8x8 cells
    assert rows[8]["fitted"] >= rows[8]["shares"] - 1  # fitting starts from the shares and improves on them
    capsys.readouterr()
    assert bench.main(["--data", str(tmp_path / "none"), "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_bench_models_counts_macs_and_measures_only_the_models_asked_for(tiny_tree, tiny_fast, tmp_path,
                                                                         capsys):
    bench = _load_benchmark("bench_models")
    # known answers: a 3x3 conv makes out_numel * in_channels * 9 MACs, a linear layer
    # out_numel * in_features, a transposed conv scatters a kernel per input pixel
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert bench.count_macs(conv, torch.rand(1, 3, 4, 5)) == 8 * 4 * 5 * 3 * 9
    assert bench.count_macs(torch.nn.Linear(10, 4), torch.rand(2, 10)) == 2 * 4 * 10
    deconv = torch.nn.ConvTranspose2d(6, 2, 4, stride=2, padding=1)
    assert bench.count_macs(deconv, torch.rand(1, 6, 3, 3)) == 6 * 3 * 3 * 2 * 16
    out = tmp_path / "models.json"
    bench.main(["--models", "fast", "--weights", f"fast={tiny_fast}", "--data", str(tiny_tree),
                "--all-frames", "--size", "64x128", "--threads", "1", "--warmup", "0", "--repeats", "1",
                "--out", str(out)])
    rows = {row["model"]: row for row in json.loads(out.read_text())["rows"]}
    assert "accurate" not in rows and rows["fast"]["weights"] == str(tiny_fast)
    assert rows["fast"]["val_frames"] == 30 and 0 < rows["fast"]["val_miou"] <= 1
    assert rows["fast"]["GFLOPs"] > 0 and rows["fast"]["ms_per_frame"] > 0
    capsys.readouterr()
