"""`dvsnet evaluate` end to end on a tiny generated synthetic tree, in-process through cli.main."""
import json

import numpy as np
import pytest
import torch

from dvsnet.cli import main


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    from dvsnet.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, "val", sequences=2, frames=30, size=(64, 128), seed=3, progress=False)
    return root


def _run(capsys, *argv):
    code = main(["evaluate", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_writes_a_complete_result_and_never_overwrites(tree, weights, tmp_path, capsys):
    out_dir = tmp_path / "results"
    args = [tree, "--segmenter", weights, "--policy", "fixed:5", "--grid", "2x2", "--overlap", "8",
            "--warmup-frames", "2", "--threads", "1", "--output", out_dir, "--no-progress", "--device", "cpu"]
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    files = sorted(out_dir.glob("*.json"))
    assert len(files) == 1 and f"result: {files[0]}" in out
    result = json.loads(files[0].read_text())
    assert result["config"]["policy"] == "fixed:5" and result["config"]["grid"] == "2x2"
    assert result["config"]["overlap"] == 8 and result["config"]["frame_size"] == "64x128"
    assert result["snippets"] == 2 and result["frames"] == 40 and result["scored_frames"] == 2
    # fixed:5 over frames 0..19: key frames at 0, 5, 10, 15 in each of the 4 regions
    assert result["regions_seg"] == 2 * 4 * 4 and result["workload_saved"] == pytest.approx(0.8)
    assert (result["seg_share"], result["warp_share"]) == (pytest.approx(0.2), pytest.approx(0.8))
    matrix = np.array(result["confusion_matrix"])
    assert 0 < matrix.sum() <= 2 * 64 * 128  # two scored frames, void pixels left out
    assert 0.0 <= result["miou"] <= 1.0 and result["fps"] > 0
    assert len(result["iou_per_class"]) == 19
    assert result["machine"]["torch_threads"] == 1 and result["machine"]["cpu"]
    assert result["machine"]["device"] == "cpu"
    assert result["config"]["flow_width"] is None  # flow at full resolution unless --flow-width says otherwise
    assert {"torch", "numpy", "opencv", "dvsnet"} <= set(result["versions"])
    assert "mIoU" in out and "fps" in out and "workload saved 80.0%" in out

    first = files[0].read_text()
    code, out, err = _run(capsys, *args)  # same run again: a second file, the first one untouched
    assert code == 0, err
    assert files[0].read_text() == first
    second = files[0].with_name(files[0].stem + "-2.json")
    assert sorted(out_dir.glob("*.json")) == sorted([files[0], second]) and f"result: {second}" in out
    assert not list(out_dir.glob(".*"))  # no temp files left behind


def test_all_frames_scores_every_frame(tree, weights, tmp_path, capsys):
    code, _out, err = _run(capsys, tree, "--segmenter", weights, "--policy", "always", "--grid", "1x1",
                          "--all-frames", "--max-snippets", "1", "--warmup-frames", "0", "--threads", "1",
                          "--output", tmp_path, "--no-progress")
    assert code == 0, err
    result = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert result["snippets"] == 1 and result["scored_frames"] == 20
    assert result["workload_saved"] == 0.0 and result["seg_share"] == 1.0


@pytest.mark.parametrize("argv, message", [
    (["{missing}"], "does not exist"),
    (["{tree}", "--policy", "dn:1.5"], "threshold must be in [0, 1]"),
    (["{tree}", "--policy", "sometimes"], "unknown policy"),
    (["{tree}", "--segmenter", "{tree}/nothing.safetensors"], "not found"),
])
def test_user_errors_are_one_line(tree, weights, tmp_path, capsys, argv, message):
    argv = [a.format(tree=tree, missing=tmp_path / "nope") for a in argv]
    if "--segmenter" not in argv:
        argv += ["--segmenter", str(weights)]
    code, _out, err = _run(capsys, *argv, "--output", tmp_path / "r", "--no-progress")
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where torch sees no GPU")
def test_device_cuda_without_a_gpu_is_one_line(tree, weights, tmp_path, capsys):
    code, _out, err = _run(capsys, tree, "--segmenter", weights, "--device", "cuda", "--output", tmp_path / "r",
                           "--no-progress")
    assert code == 2 and "no CUDA GPU is visible" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_an_output_folder_that_cannot_be_written_is_refused_before_evaluating(tree, weights, tmp_path, capsys,
                                                                            monkeypatch):
    import dvsnet.evaluate

    def never(*args, **kwargs):
        raise AssertionError("evaluated although the result could not be written")

    monkeypatch.setattr(dvsnet.evaluate, "evaluate", never)
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    code, out, err = _run(capsys, tree, "--segmenter", weights, "--policy", "always", "--output",
                          blocker / "results", "--no-progress")
    assert code == 2 and out == "" and "is not a writable folder" in err and len(err.strip().splitlines()) == 1
    assert blocker.read_text() == "keep me"
