"""Our networks as ONNX files: the segmenters (also as torch.export programs, .pt2) with the JSON sidecar
that lets `load_segmenter` run them as it runs the module (models/external.py), and the FlowNetS flow
network and the decision networks (`export_network`, ONNX only).

Our SegNet normalises internally, so the exported graph's input is what the module's is: RGB in [0, 1]
(sidecar `scale: 255`, mean 0, std 1). ONNX files have a dynamic batch and dynamic height and width
(TorchScript exporter, opset `OPSET`); .pt2 programs have a dynamic batch and height and width that are
multiples of the input multiple, or, where torch.export cannot make them dynamic, the fixed `size`
(recorded as `input_size` in the sidecar). Every export is checked against the module on rendered frames
before it is written; files appear atomically (dvsnet.atomic).

FlowNetS: inputs `key`, `cur` (B, 3, H, W) RGB [0, 1], outputs `flow` (B, 2, H/4, W/4) in px of that grid
and its `conv4`, `conv5`, `conv6` features (what the flownet-* decision networks read); batch, height and
width are dynamic (its input resize and padding are traced as shape arithmetic; checked at two sizes). A
decision network: input `features` (B, C, h, w) already pooled to the network's
`in_size` (the pipeline pools before it calls it), output `score` (B,); the batch is dynamic, h and w are
fixed (ONNX has no adaptive pooling to arbitrary sizes). Both are checked against torch on export.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dvsnet.atomic import atomic_path, write_json_atomic
from dvsnet.errors import DvsnetError
from dvsnet.models.decision import DecisionNet
from dvsnet.models.external import (
    Sidecar,
    class_names_and_palette,
    load_onnx,
    load_program,
    session_options,
    sidecar_path,
)
from dvsnet.models.flownet import FlowNetS
from dvsnet.models.segnets import SEGMENTERS, SegNet
from dvsnet.models.weights import read_metadata, shipped_path

FORMATS = (".onnx", ".pt2")
OPSET = 17
MAX_LABEL_DISAGREEMENT = 0.001  # refuse an export whose labels differ from the module's on > 0.1% of pixels
CHECK_FRAMES = 2  # rendered frames in the check batch (2: a batch dimension the export must not fix)
MAX_RELATIVE_DIFF = 1e-3  # flow / DN exports: max |output difference| <= this x (1 + max |torch output|)


@dataclass(frozen=True)
class ExportReport:
    """What `export_segmenter` wrote and how closely the export matches the module."""

    path: Path
    sidecar: Path
    max_abs_diff: float  # max |logit difference| on the check frames
    label_agreement: float  # share of logit pixels with the same argmax, 0..1
    pixels: int  # logit pixels compared
    dynamic: bool  # height and width are dynamic (False: fixed to the export size)


def export_sidecar(model: SegNet, input_size: tuple[int, int] | None = None) -> Sidecar:
    """The sidecar that makes an export of `model` see exactly what the module sees (RGB in [0, 1])."""
    names, palette = class_names_and_palette(model.num_classes, None, None)
    return Sidecar(classes=names, palette=tuple(tuple(int(c) for c in row) for row in palette),
                   scale=255.0, channels="rgb", input_size=input_size,
                   input_multiple=None if input_size else int(model.input_multiple))


def export_segmenter(model: SegNet, out: str | Path, *, size: tuple[int, int] = (256, 512),
                     opset: int = OPSET) -> ExportReport:
    """Export `model` to `out` (.onnx or .pt2) with its sidecar beside it, checked on rendered frames of
    `size` (H, W); DvsnetError, and nothing written, when labels differ on more than 0.1% of pixels."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise DvsnetError(f"--out {out}: export to a .onnx or .pt2 file")
    multiple = int(model.input_multiple)
    if size[0] % multiple or size[1] % multiple:
        raise DvsnetError(f"export size {size[0]}x{size[1]} must be a multiple of {multiple} both ways")
    if not out.parent.is_dir():
        raise DvsnetError(f"--out {out}: folder {out.parent} does not exist")
    model = model.cpu().eval()
    images = _check_images(size)  # (CHECK_FRAMES, 3, H, W)
    with torch.no_grad():
        reference = model(images)  # (B, K, H/s, W/s)
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".onnx":
            _export_onnx(model, images, tmp, opset)
            sidecar, dynamic = export_sidecar(model), True
            exported = load_onnx(tmp, "cpu", sidecar)
        else:
            dynamic = _export_program(model, images, tmp)
            sidecar = export_sidecar(model, None if dynamic else size)
            exported = load_program(tmp, "cpu", sidecar)
        with torch.no_grad():
            logits = exported(images)
        diff = float((logits - reference).abs().max())
        agreement = float((logits.argmax(1) == reference.argmax(1)).float().mean())
        pixels = reference[:, 0].numel()
        if 1 - agreement > MAX_LABEL_DISAGREEMENT:
            raise DvsnetError(f"the export's labels differ from the module's on {100 * (1 - agreement):.3f}% "
                              f"of {pixels} pixels (max |logit diff| {diff:.3g}); nothing written")
        write_json_atomic(sidecar_path(out), sidecar.to_dict())
    return ExportReport(out, sidecar_path(out), diff, agreement, pixels, dynamic)


def _check_images(size: tuple[int, int]) -> torch.Tensor:
    """(CHECK_FRAMES, 3, H, W) rendered street frames, RGB [0, 1]: realistic inputs, not noise, so that
    labels are decided by clear margins as on real footage."""
    from dvsnet.data.synthetic import render_sequence

    frames = [frame.image for frame in render_sequence(0, CHECK_FRAMES, size)]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255)


def _export_onnx(model: SegNet, images: torch.Tensor, path: Path, opset: int) -> None:
    """The TorchScript exporter: it needs only the onnx package (the dynamo one also needs onnxscript)."""
    with warnings.catch_warnings():
        # its deprecation notice, and tracer notes on SegNet's input checks (traced away: the sidecar's
        # input_multiple carries them)
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (images,), str(path), dynamo=False, opset_version=opset,
                          input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                        "logits": {0: "batch", 2: "out_height", 3: "out_width"}})


def _export_program(model: SegNet, images: torch.Tensor, path: Path) -> bool:
    """torch.export with a dynamic batch and sizes in multiples of the input multiple, else at the images'
    fixed size; returns whether the sizes are dynamic."""
    multiple = int(model.input_multiple)
    batch = torch.export.Dim("batch", min=1, max=1024)
    height, width = torch.export.Dim("height", min=1, max=1024), torch.export.Dim("width", min=1, max=1024)
    try:
        program = torch.export.export(model, (images,), dynamic_shapes=(
            {0: batch, 2: multiple * height, 3: multiple * width},))
        dynamic = True
    except Exception:  # noqa: BLE001 (torch.export's constraint errors vary; the static export says more if it fails too)
        program = torch.export.export(model, (images,), dynamic_shapes=({0: batch},))
        dynamic = False
    with open(path, "wb") as f:  # a file object: torch.export.save wants names ending in .pt2, not our .tmp
        torch.export.save(program, f)
    return dynamic


def shipped_networks() -> tuple[str, ...]:
    """Every network whose weights ship with dvsnet: the segmenters, "flownet" and "dn-<variant>" for each
    shipped decision network (the names `dvsnet export` takes)."""
    from dvsnet.models.decision import DN_VARIANTS

    names = (*SEGMENTERS, "flownet", *(f"dn-{variant}" for variant in DN_VARIANTS))
    return tuple(name for name in names if shipped_path(name).is_file())


def network_kind(spec: str | Path) -> tuple[str, Path]:
    """("segmenter" | "flownet" | "decision", weights file) of a shipped name or a .safetensors file of
    ours (its metadata's arch); DvsnetError listing the shipped names otherwise."""
    text = str(spec)
    if text in shipped_networks():
        path = shipped_path(text)
    elif text.endswith(".safetensors"):
        path = Path(text)
    else:
        raise DvsnetError(f"can export {', '.join(shipped_networks())} or a .safetensors file of ours, "
                          f"not {text!r}")
    arch = read_metadata(path).get("arch")
    if arch in SEGMENTERS:
        return "segmenter", path
    if arch in ("flownet", "decision"):
        return arch, path
    raise DvsnetError(f"{path}: metadata names architecture {arch!r}; expected one of "
                      f"{', '.join((*SEGMENTERS, 'flownet', 'decision'))}")


@dataclass(frozen=True)
class NetworkReport:
    """What `export_network` wrote for a flow or decision network and how closely it matches torch."""

    path: Path
    max_abs_diff: float  # max |output difference| over the outputs and check inputs
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class _FlowNetGraph(torch.nn.Module):
    """FlowNetS with its features dict as separate outputs (ONNX graphs return tensors)."""

    def __init__(self, net: FlowNetS) -> None:
        super().__init__()
        self.net = net

    def forward(self, key: torch.Tensor, cur: torch.Tensor) -> tuple[torch.Tensor, ...]:
        flow, features = self.net(key, cur)  # (B, 2, H/4, W/4), {conv4, conv5, conv6}
        return flow, features["conv4"], features["conv5"], features["conv6"]


def export_network(net: FlowNetS | DecisionNet, out: str | Path, *, size: tuple[int, int] = (256, 512),
                   opset: int = OPSET) -> NetworkReport:
    """Export FlowNetS (frames of `size` (H, W) in the check) or a decision network to `out` (.onnx),
    checked against torch; DvsnetError, and nothing written, when an output differs by more than
    MAX_RELATIVE_DIFF of its scale."""
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise DvsnetError(f"--out {out}: flow and decision networks export to a .onnx file")
    if not out.parent.is_dir():
        raise DvsnetError(f"--out {out}: folder {out.parent} does not exist")
    net = net.cpu().eval()
    if isinstance(net, FlowNetS):
        module, inputs, outputs = _FlowNetGraph(net), ("key", "cur"), ("flow", "conv4", "conv5", "conv6")
        frames = _check_images(size)  # (2, 3, H, W): two consecutive frames, a batch of 1 pair ...
        checks = [(frames[:1].repeat(2, 1, 1, 1), frames[1:].repeat(2, 1, 1, 1))]  # ... given twice: batch 2
        # another size, not a multiple of 64: the graph's is dynamic
        odd = frames[..., : size[0] - 22, : size[1] - 38]
        checks.append((odd[:1], odd[1:]))
        axes = {name: {0: "batch", 2: f"{name}_height", 3: f"{name}_width"} for name in (*inputs, *outputs)}
    elif isinstance(net, DecisionNet):
        module, inputs, outputs = net, ("features",), ("score",)
        generator = torch.Generator().manual_seed(0)
        features = torch.randn(3, net.in_channels, *net.in_size, generator=generator)
        checks = [(net.feature_mean + net.feature_std * features,)]  # (3, C, h, w) at the training scale
        axes = {"features": {0: "batch"}, "score": {0: "batch"}}
    else:
        raise DvsnetError(f"export_network exports FlowNetS or a DecisionNet, not {type(net).__name__}")
    import onnxruntime as ort

    with atomic_path(out) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(module, checks[0], str(tmp), dynamo=False, opset_version=opset,
                              input_names=list(inputs), output_names=list(outputs), dynamic_axes=axes)
        session = ort.InferenceSession(str(tmp), session_options(), providers=["CPUExecutionProvider"])
        worst = 0.0
        for check in checks:
            with torch.no_grad():
                reference = module(*check)
            reference = reference if isinstance(reference, tuple) else (reference,)
            got = session.run(None, {name: x.numpy() for name, x in zip(inputs, check)})
            for name, want, have in zip(outputs, reference, got):
                if tuple(have.shape) != tuple(want.shape):
                    raise DvsnetError(f"the export's {name} has shape {tuple(have.shape)} where torch gives "
                                      f"{tuple(want.shape)}; nothing written")
                diff = float((torch.from_numpy(have) - want).abs().max())
                if diff > MAX_RELATIVE_DIFF * (1 + float(want.abs().max())):
                    raise DvsnetError(f"the export's {name} differs from torch's by up to {diff:.3g}; "
                                      "nothing written")
                worst = max(worst, diff)
    return NetworkReport(out, worst, inputs, outputs)

