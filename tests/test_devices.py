import time

import numpy as np
import pytest
import torch

from dvsnet import DVSNet, DvsnetError
from dvsnet.devices import clock, describe_device, pick_device, same_device
from dvsnet.models import build_segmenter, load_decision_net
from dvsnet.policies import DecisionNetwork
from tests.segmenters import ColourSegmenter, panning_clip

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
without_gpu = pytest.mark.skipif(torch.cuda.is_available(),
                                 reason="checks the refusal where torch sees no GPU")


def test_auto_picks_a_gpu_only_when_torch_sees_one():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == torch.device("cpu")
    for name in ("tpu", "mps", ""):
        with pytest.raises(DvsnetError, match="unknown device .*; choose auto, cpu or cuda"):
            pick_device(name)


@without_gpu
def test_cuda_where_there_is_no_gpu_is_refused_before_anything_loads():
    for name in ("cuda", "cuda:1"):
        with pytest.raises(DvsnetError, match=f"device '{name}': no CUDA GPU is visible"):
            pick_device(name)
    with pytest.raises(DvsnetError, match="no CUDA GPU is visible"):
        DVSNet(segmenter="fast", device="cuda")
    with pytest.raises(DvsnetError, match="no CUDA GPU is visible"):
        pick_device(torch.device("cuda"))


def test_a_segmenter_on_another_device_than_the_requested_one_is_refused():
    with pytest.raises(DvsnetError,
                       match="the segmenter's weights are on cpu, not on the requested device meta"):
        DVSNet(segmenter=build_segmenter("fast"), device=torch.device("meta"))
    on_meta = load_decision_net("dis", device="meta")
    with pytest.raises(DvsnetError, match="the policy's decision network is on meta, the segmenter on cpu"):
        DVSNet(segmenter=build_segmenter("fast"), policy=DecisionNetwork(0.9, net=on_meta))
    assert same_device(torch.device("cpu"), torch.device("cpu"))
    assert not same_device(torch.device("cpu"), torch.device("meta"))


@pytest.mark.backends
@pytest.mark.parametrize("device", DEVICES)
def test_every_network_runs_on_the_requested_device_with_the_cpus_results(device, monkeypatch, request):
    # TF32 convolutions and matmuls (the CUDA default on recent GPUs) would move scores near the threshold
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    request.addfinalizer(lambda: torch.set_float32_matmul_precision(precision))
    frames = panning_clip(5, height=128, width=256, speed=2.0)
    reference = DVSNet(segmenter="fast", flow="flownet", policy="dn:0.5", grid=(1, 2))
    pipe = DVSNet(segmenter="fast", flow="flownet", policy="dn:0.5", grid=(1, 2), device=device)
    assert pipe.device.type == device
    # torch modules on the device; ONNX Runtime: CPU
    for net in (pipe.segmenter, pipe.flow.net, pipe.policy.net):
        if isinstance(net, torch.nn.Module):
            assert all(p.device.type == device for p in net.parameters())
        else:
            assert net.backend == "onnxruntime" and device == "cpu"
    for frame in frames:
        expected, out = reference.step(frame), pipe.step(frame)
        assert out.paths == expected.paths
        assert out.labels.dtype == np.uint8 and (out.labels == expected.labels).mean() > 0.99
        assert set(out.timings) >= {"flow", "decision", "segmentation", "warp", "stitch", "total"}
    assert "warp" in out.paths  # frames after the first took the warp path on this device
    # DIS runs on the CPU; its flow and features come back to the regions' device
    dis = DVSNet(segmenter=ColourSegmenter().to(device), flow="dis", policy="dn:0.5", device=device)
    assert all(dis.step(frame).labels.shape == frame.shape[:2] for frame in frames)


def test_the_clock_waits_for_the_gpu_only_on_cuda():
    assert clock(torch.device("cpu")) is time.perf_counter
    assert describe_device(torch.device("cpu")) == "cpu"
