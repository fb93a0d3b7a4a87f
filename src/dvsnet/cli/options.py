"""Option names shared across subcommands, and their parsers (DESIGN.md §3)."""
from __future__ import annotations

import argparse

from dvsnet.devices import DEVICES
from dvsnet.errors import DvsnetError


def parse_grid(text: str) -> tuple[int, int]:
    """'2x2' -> (2, 2): rows x columns, each >= 1."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        rows, cols = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid must look like RxC (e.g. 2x2), got {text!r}") from None
    if rows < 1 or cols < 1:
        raise argparse.ArgumentTypeError(f"grid rows and columns must be >= 1, got {text!r}")
    return rows, cols


def parse_size(text: str) -> tuple[int, int]:
    """'256x512' -> (256, 512): height x width in pixels, each >= 16."""
    try:
        height, width = parse_grid(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"size must look like HxW (e.g. 256x512), got {text!r}") from None
    if height < 16 or width < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16, got {text!r}")
    return height, width


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number >= 1, got 0")
    return value


def width_or_full(text: str) -> int | None:
    """--flow-width: a width in pixels, or 0 for full resolution (None)."""
    return non_negative_int(text) or None


def add_pipeline_options(parser: argparse.ArgumentParser, *, policy: str = "dn:0.92") -> None:
    """--policy --segmenter --flow --dn --grid --overlap --flow-width --device --stitch: everything that
    configures a DVSNet."""
    group = parser.add_argument_group("pipeline")
    group.add_argument(
        "--policy", default=policy,
        help="which regions get segmented: dn:T (decision network, T in [0,1]), fixed:L (key frame "
             "every L frames), diff:D (mean grey difference <= D warps), flow:F (mean flow magnitude "
             "<= F px warps), oracle:T (true confidence score, analysis only), always (per-frame "
             f"segmentation). Default: {policy}",
    )
    group.add_argument("--segmenter", default="fast",
                       help="segmentation network: 'fast', 'accurate', or a .safetensors weights file "
                            "(default: fast)")
    group.add_argument("--flow", default="dis",
                       help="flow estimator: dis (OpenCV DIS, ultrafast), dis-fast, dis-medium, or flownet "
                            "(default: dis)")
    group.add_argument("--dn", default=None, metavar="NAME|FILE",
                       help="decision network of a dn:T policy: a shipped variant (dis, flownet-conv6) or "
                            "a .safetensors file from `dvsnet train dn` (default: the one shipped for --flow)")
    group.add_argument("--grid", type=parse_grid, default=(2, 2), metavar="RxC",
                       help="frame regions as rows x columns (default: 2x2)")
    group.add_argument("--overlap", type=non_negative_int, default=None, metavar="PX",
                       help="overlap of neighbouring regions in pixels (default: 64 px at 2048 px width, "
                            "scaled with the frame width)")
    group.add_argument("--flow-width", type=width_or_full, default=None, metavar="PX",
                       help="frames wider than PX are scaled to PX wide for the flow and the decision network's "
                            "features: cheaper flow, coarser warps; 0 = full resolution (default: full resolution)")
    group.add_argument("--device", choices=DEVICES, default="auto",
                       help="where the networks run: auto (a CUDA GPU when torch sees one, else the CPU), "
                            "cpu or cuda; DIS flow always runs on the CPU (default: auto)")
    group.add_argument("--stitch", choices=("max-logit", "core"), default="max-logit",
                       help="how overlap bands are resolved: the region with the higher max-logit wins, "
                            "or each region keeps only its core (default: max-logit)")


def require(condition: bool, message: str) -> None:
    """Raise a one-line user error unless `condition` holds."""
    if not condition:
        raise DvsnetError(message)
