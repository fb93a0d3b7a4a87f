"""`dvsnet export NAME|FILE --out X.onnx|X.pt2`: one of our segmenters as an ONNX file or a torch.export
program, with its JSON sidecar, checked against torch before it is written (dvsnet.models.export)."""
from __future__ import annotations

import argparse

from dvsnet.cli.options import parse_size, require
from dvsnet.models import SEGMENTERS, SegNet, load_segmenter
from dvsnet.models.export import OPSET, export_segmenter

EPILOG = """examples:
  dvsnet export fast --out fast.onnx                      ONNX (dynamic batch and size) + fast.json
  dvsnet export accurate --out accurate.pt2               a torch.export program + accurate.json
  dvsnet export runs/seg-fast/model.safetensors --out my.onnx --size 512x1024
  dvsnet segment clip.mp4 --segmenter fast.onnx           run it (ONNX Runtime)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a segmenter to ONNX or a torch.export program (.pt2)",
        description="Export a shipped segmenter or a .safetensors segmenter file of ours to OUT (.onnx: "
                    "dynamic batch and size; .pt2: dynamic where torch.export allows, else fixed to --size) "
                    "and write its sidecar JSON (classes, palette, input normalisation) beside it. The "
                    "export is checked against the torch module on rendered frames of --size: the max "
                    "|logit| difference is printed, and an export whose labels differ on more than 0.1% "
                    "of pixels is refused (nothing written).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("segmenter", metavar="NAME|FILE",
                        help=f"{', '.join(SEGMENTERS)}, or a .safetensors file from `dvsnet train seg`")
    parser.add_argument("--out", required=True, metavar="X.onnx|X.pt2",
                        help="the file to write; its sidecar X.json goes beside it")
    parser.add_argument("--size", type=parse_size, default=(256, 512), metavar="HxW",
                        help="frame size of the check (and of a .pt2 whose size cannot be dynamic) "
                             "(default: 256x512)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default: {OPSET})")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    require(str(args.segmenter).endswith(".safetensors") or args.segmenter in SEGMENTERS,
            f"can export {', '.join(SEGMENTERS)} or a .safetensors segmenter file, not {args.segmenter!r}")
    model = load_segmenter(args.segmenter, "cpu")
    require(isinstance(model, SegNet), f"{args.segmenter} is not a segmenter of ours")
    report = export_segmenter(model, args.out, size=args.size, opset=args.opset)
    shape = "dynamic batch and size" if report.dynamic else f"fixed size {args.size[0]}x{args.size[1]}"
    print(f"wrote {report.path} ({shape}) and {report.sidecar}")
    print(f"check on rendered {args.size[0]}x{args.size[1]} frames: max |logit diff| {report.max_abs_diff:.3g}, "
          f"labels agree on {100 * report.label_agreement:.3f}% of {report.pixels} logit pixels")
    return 0
