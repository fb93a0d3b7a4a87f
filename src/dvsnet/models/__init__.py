"""The networks: segmenters (`fast`, `accurate`, or any model from a file: external.py), the FlowNetS flow
network and the decision network.

Weights ship in `dvsnet/weights/` as fp16 .safetensors with their architecture in the metadata and a
JSON of the config and validation figures beside each file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dvsnet.errors import DvsnetError
from dvsnet.models.decision import DN_VARIANTS, DecisionNet
from dvsnet.models.external import ExternalSegmenter, Sidecar, adapt_callable, load_onnx, load_program
from dvsnet.models.flownet import FlowNetS, build_flownet
from dvsnet.models.segnets import SEGMENTERS, SegNet, build_accurate, build_fast
from dvsnet.models.weights import load_weights, read_metadata, save_weights, shipped_path

# the synthetic frames (dvsnet synth's default) every shipped network learnt on
SHIPPED_FRAME_SIZE = (256, 512)


def build_segmenter(name: str) -> SegNet:
    """A segmenter by name with random initial weights; DvsnetError listing valid names if unknown."""
    if name not in SEGMENTERS:
        raise DvsnetError(f"unknown segmenter {name!r}; valid: {', '.join(SEGMENTERS)}")
    return SEGMENTERS[name]()


def load_segmenter(spec: Any, device: str | torch.device = "cpu") -> Any:
    """A trained segmenter: "fast" | "accurate" (shipped weights), a .safetensors file of ours, an ONNX file
    (.onnx, run with ONNX Runtime), a torch.export program (.pt2), or a callable / torch module.

    Returns a callable in eval mode: (B,3,h,w) float RGB [0,1], h and w multiples of `input_multiple` ->
    (B,K,h/s,w/s) logits, s = `output_stride`, with attributes num_classes, output_stride and
    input_multiple. Our SegNet modules (names, .safetensors, or passed in) come as they are; everything else
    is wrapped in an ExternalSegmenter (models/external.py: sidecar JSON, dry run, class names and palette).
    Every mistake is a one-line DvsnetError.
    """
    if isinstance(spec, (SegNet, ExternalSegmenter)):
        return spec
    if callable(spec) and not isinstance(spec, (str, Path)):
        return adapt_callable(spec)
    if not isinstance(spec, (str, Path)):
        raise DvsnetError(f"segmenter must be a name, a .safetensors, .onnx or .pt2 file, or a callable, "
                          f"got {type(spec).__name__}")
    text = str(spec)
    suffix = Path(text).suffix.lower()
    if suffix in (".onnx", ".pt2"):
        path = Path(text)
        if not path.is_file():
            raise DvsnetError(f"segmenter file not found: {path}")
        return (load_onnx if suffix == ".onnx" else load_program)(path, device)
    if text in SEGMENTERS:
        path = shipped_path(text)
        if not path.is_file():
            raise DvsnetError(f"no trained weights ship for {text!r} yet (expected {path}); "
                              f"train them with `dvsnet train seg --arch {text}` and pass the weights file")
        arch = text
    else:
        path = Path(text)
        if suffix != ".safetensors":
            raise DvsnetError(f"unknown segmenter {text!r}; valid: {', '.join(SEGMENTERS)}, "
                              "or a .safetensors, .onnx or .pt2 file")
        arch = read_metadata(path).get("arch")
        if arch not in SEGMENTERS:
            raise DvsnetError(f"{path}: metadata names architecture {arch!r}; "
                              f"expected one of {', '.join(SEGMENTERS)}")
    model = load_weights(SEGMENTERS[arch](), path, arch)
    return model.to(device).eval()


def load_flownet(device: str | torch.device = "cpu", path: str | Path | None = None) -> FlowNetS:
    """The trained FlowNetS (shipped `flownet` weights unless `path` is given), in eval mode."""
    path = shipped_path("flownet") if path is None else Path(path)
    if not path.is_file():
        raise DvsnetError(f"no trained weights ship for 'flownet' yet (expected {path}); "
                          "train them with `dvsnet train flow`")
    return load_weights(build_flownet(), path, "flownet").to(device).eval()


def load_decision_net(variant: str | None, device: str | torch.device = "cpu",
                      path: str | Path | None = None) -> DecisionNet:
    """The trained decision network for a feature variant ("dis", "flownet-conv6", ...), in eval mode.

    The weights file records in_channels and in_size; the engine pools its features to `net.in_size`.
    With `path`, variant None accepts whatever variant the file was trained on (`net.variant` says which).
    """
    if path is None:
        if variant not in DN_VARIANTS:
            raise DvsnetError(f"no decision network for flow features {variant!r}; "
                              f"valid: {', '.join(DN_VARIANTS)}")
        path = shipped_path(f"dn-{variant}")
        if not path.is_file():
            raise DvsnetError(f"no trained weights ship for decision network {variant!r} yet "
                              f"(expected {path}); train them with `dvsnet train dn --variant {variant}`")
    path = Path(path)
    meta = read_metadata(path)
    try:
        channels, height, width = int(meta["in_channels"]), int(meta["in_height"]), int(meta["in_width"])
    except (KeyError, ValueError):
        raise DvsnetError(f"{path}: not a decision-network weights file (metadata lacks "
                          "in_channels/in_height/in_width)") from None
    if variant is not None and meta.get("variant") not in (None, variant) and variant in DN_VARIANTS:
        raise DvsnetError(f"{path}: decision network was trained on {meta['variant']!r} features, "
                          f"not {variant!r}")
    net = load_weights(DecisionNet(channels, (height, width), variant=meta.get("variant", variant)), path,
                       "decision")
    return net.to(device).eval()


__all__ = [
    "DN_VARIANTS",
    "SEGMENTERS",
    "SHIPPED_FRAME_SIZE",
    "DecisionNet",
    "ExternalSegmenter",
    "FlowNetS",
    "SegNet",
    "Sidecar",
    "build_accurate",
    "build_fast",
    "build_flownet",
    "build_segmenter",
    "load_decision_net",
    "load_flownet",
    "load_segmenter",
    "save_weights",
]
