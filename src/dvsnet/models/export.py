"""Our segmenters as ONNX files or torch.export programs (.pt2), with the JSON sidecar that lets
`load_segmenter` run them as it runs the module (models/external.py).

Our SegNet normalises internally, so the exported graph's input is what the module's is: RGB in [0, 1]
(sidecar `scale: 255`, mean 0, std 1). ONNX files have a dynamic batch and dynamic height and width
(TorchScript exporter, opset `OPSET`); .pt2 programs have a dynamic batch and height and width that are
multiples of the input multiple, or, where torch.export cannot make them dynamic, the fixed `size`
(recorded as `input_size` in the sidecar). Every export is checked against the module on rendered frames
before it is written; files appear atomically (dvsnet.atomic).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dvsnet.atomic import atomic_path, write_json_atomic
from dvsnet.errors import DvsnetError
from dvsnet.models.external import Sidecar, class_names_and_palette, load_onnx, load_program, sidecar_path
from dvsnet.models.segnets import SegNet

FORMATS = (".onnx", ".pt2")
OPSET = 17
MAX_LABEL_DISAGREEMENT = 0.001  # refuse an export whose labels differ from the module's on > 0.1% of pixels
CHECK_FRAMES = 2  # rendered frames in the check batch (2: a batch dimension the export must not fix)


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
            raise DvsnetError(f"the export's labels differ from the module's on {100 * (1 - agreement):.3f}% of "
                              f"{pixels} pixels (max |logit diff| {diff:.3g}); nothing written")
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
