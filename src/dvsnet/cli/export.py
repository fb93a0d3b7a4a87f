"""`dvsnet export NAME|FILE --out X.onnx|X.pt2`: any network of ours (a segmenter, FlowNetS, a decision
network) as an ONNX file, a segmenter also as a torch.export program or an int8 ONNX graph, checked
against torch before it is written (dvsnet.models.export, dvsnet.models.quantize)."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from dvsnet.cli.options import parse_size, require
from dvsnet.models import SegNet, load_decision_net, load_flownet, load_segmenter
from dvsnet.models.export import OPSET, export_network, export_segmenter, network_kind, shipped_networks

EPILOG = """examples:
  dvsnet export fast --out fast.onnx                      ONNX (dynamic batch and size) + fast.json
  dvsnet export accurate --out accurate.pt2               a torch.export program + accurate.json
  dvsnet export fast --out fast-int8.onnx --precision int8 --calibration-frames clip.mp4
  dvsnet export flownet --out flownet.onnx                 FlowNetS (dynamic batch and size)
  dvsnet export dn-dis --out dn-dis.onnx                  the DIS decision network (dynamic batch)
  dvsnet export runs/seg-fast/model.safetensors --out my.onnx --size 512x1024
  dvsnet segment clip.mp4 --segmenter fast.onnx           run it (ONNX Runtime)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a network to ONNX (a segmenter also to a torch.export program, .pt2)",
        description="Export a shipped network or a .safetensors file of ours to OUT. Segmenters: .onnx "
                    "(dynamic batch and size, fp32 or int8) or .pt2 (dynamic where torch.export allows, else "
                    "fixed to --size), with a sidecar JSON (classes, palette, input normalisation) beside "
                    "it; checked against the torch module on rendered frames of --size (the max |logit| "
                    "difference is printed; an fp32 export whose labels differ on more than 0.1% of pixels "
                    "is refused, nothing written). FlowNetS (.onnx, dynamic batch and size, checked at "
                    "--size and one other size) and the decision networks (.onnx, dynamic batch, fixed "
                    "feature size) are checked the same way.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("network", metavar="NAME|FILE",
                        help=f"{', '.join(shipped_networks())}, or a .safetensors file from `dvsnet train`")
    parser.add_argument("--out", required=True, metavar="X.onnx|X.pt2",
                        help="the file to write; a segmenter's sidecar X.json goes beside it")
    parser.add_argument("--size", type=parse_size, default=(256, 512), metavar="HxW",
                        help="frame size of the check (and of a .pt2 whose size cannot be dynamic) "
                             "(default: 256x512)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default: {OPSET})")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                        help="int8: ONNX Runtime static quantisation of a segmenter (QDQ, per-channel "
                             "int8 weights, uint8 activations), calibrated on --calibration-frames "
                             "(default: fp32)")
    parser.add_argument("--calibration-frames", default=None, metavar="SOURCE",
                        help="int8: a video, folder of frames or glob whose frames (up to 16, evenly "
                             "spaced) set the activation ranges (default: 8 rendered synthetic street "
                             "frames)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    kind, path = network_kind(args.network)
    require(args.precision == "fp32" or (kind == "segmenter" and str(args.out).endswith(".onnx")),
            "--precision int8 quantises a segmenter to a .onnx file")
    require(args.calibration_frames is None or args.precision == "int8",
            "--calibration-frames calibrates an int8 export: add --precision int8")
    if kind != "segmenter":
        net = load_flownet(path=path) if kind == "flownet" else load_decision_net(None, path=path)
        report = export_network(net, args.out, size=args.size, opset=args.opset)
        shape = "dynamic batch, fixed feature size" if kind == "decision" else "dynamic batch and size"
        print(f"wrote {report.path} ({shape}; inputs {', '.join(report.inputs)}; "
              f"outputs {', '.join(report.outputs)})")
        print(f"check against torch: max |output diff| {report.max_abs_diff:.3g}")
        return 0
    model = load_segmenter(str(path) if args.network.endswith(".safetensors") else args.network, "cpu")
    require(isinstance(model, SegNet), f"{args.network} is not a segmenter of ours")
    if args.precision == "int8":
        return _export_int8(model, args)
    report = export_segmenter(model, args.out, size=args.size, opset=args.opset)
    shape = "dynamic batch and size" if report.dynamic else f"fixed size {args.size[0]}x{args.size[1]}"
    print(f"wrote {report.path} ({shape}) and {report.sidecar}")
    print(f"check on rendered {args.size[0]}x{args.size[1]} frames: "
          f"max |logit diff| {report.max_abs_diff:.3g}, "
          f"labels agree on {100 * report.label_agreement:.3f}% of {report.pixels} logit pixels")
    return 0


def _export_int8(model: SegNet, args: argparse.Namespace) -> int:
    """The fp32 graph (exported and checked in a temporary folder), quantised to args.out, its labels
    compared with torch's fp32 module on the check frames."""
    import torch

    from dvsnet.atomic import write_bytes_atomic
    from dvsnet.models.export import _check_images
    from dvsnet.models.external import load_onnx, sidecar_path
    from dvsnet.models.quantize import default_calibration_frames, quantize_segmenter, read_calibration_frames

    out = Path(args.out)
    require(out.parent.is_dir(), f"--out {out}: folder {out.parent} does not exist")
    frames = (default_calibration_frames(args.size) if args.calibration_frames is None
              else read_calibration_frames(args.calibration_frames))
    with tempfile.TemporaryDirectory() as folder:
        fp32 = export_segmenter(model, Path(folder) / "fp32.onnx", size=args.size, opset=args.opset)
        quantize_segmenter(fp32.path, out, frames, input_multiple=int(model.input_multiple))
        write_bytes_atomic(sidecar_path(out), fp32.sidecar.read_bytes())
    images = _check_images(args.size)
    with torch.no_grad():
        agreement = float((load_onnx(out)(images).argmax(1) == model(images).argmax(1)).float().mean())
    print(f"wrote {out} (int8, dynamic batch and size; calibrated on {len(frames)} frames) "
          f"and {sidecar_path(out)}")
    print(f"check on rendered {args.size[0]}x{args.size[1]} frames: labels agree with torch fp32 on "
          f"{100 * agreement:.2f}% of logit pixels")
    return 0
