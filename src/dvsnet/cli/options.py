"""Option names shared across subcommands, and their parsers (docs/design.md §3)."""
from __future__ import annotations

import argparse

from dvsnet.backends import BACKENDS, PRECISIONS
from dvsnet.config import PipelineConfig
from dvsnet.devices import DEVICES
from dvsnet.errors import DvsnetError
from dvsnet.outputs import OUTPUTS
from dvsnet.run import DEFAULT_WRITES


def parse_grid(text: str) -> tuple[int, int]:
    """'2x2' -> (2, 2): rows x columns, each >= 1."""
    from dvsnet.config import parse_grid as parse

    try:
        return parse(text)
    except DvsnetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_grid_or_auto(text: str) -> tuple[int, int] | str:
    """'2x2' -> (2, 2); 'auto' -> 'auto' (regions of about 512x1024 px, resolved per frame size)."""
    from dvsnet.config import AUTO_GRID

    if text.strip().lower() == AUTO_GRID:
        return AUTO_GRID
    try:
        return parse_grid(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"grid must look like RxC (e.g. 2x2) or be 'auto', got {text!r}"
        ) from None


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


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def agreement(text: str) -> float:
    """--target-agreement: a share in (0, 1], or a percentage ('95%')."""
    percent = text.strip().endswith("%")
    value = non_negative_float(text.strip().removesuffix("%")) / (100 if percent else 1)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"agreement must be in (0, 1] (or a percentage), got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number >= 1, got 0")
    return value


def width_or_full(text: str) -> int | None:
    """--flow-width: a width in pixels, or 0 for full resolution (None)."""
    return non_negative_int(text) or None


def add_pipeline_options(parser: argparse.ArgumentParser, *, policy: str | None = "dn:0.92") -> None:
    """--policy --target-fps --target-agreement --segmenter --flow --dn --grid --overlap --flow-width --device
    --backend --precision --stitch: everything that configures a DVSNet (policy None: no --policy, targets
    and --dn, for a command that makes its own DN)."""
    group = parser.add_argument_group("pipeline")
    if policy is not None:
        group.add_argument(
            "--policy", default=policy,
            help="which regions get segmented: dn:T (decision network, T in [0,1]), dn:fps=F and dn:agree=A "
                 "(the DN's threshold set frame by frame to hold F frames/s or agreement A with per-frame "
                 "output: --target-fps, --target-agreement), fixed:L (key frame "
                 "every L frames), diff:D (mean grey difference <= D warps), flow:F (mean flow magnitude "
                 "<= F px warps), oracle:T (true confidence score, analysis only), always (per-frame "
                 f"segmentation). Default: {policy}",
        )
    if policy is not None:
        group.add_argument(
            "--target-fps",
            type=positive_float,
            default=None,
            metavar="F",
            help="hold the pipeline at F frames/s, never slower: the decision network's threshold "
            "is set frame by frame (policy dn:fps=F; docs/targets.md)",
        )
        group.add_argument(
            "--target-agreement",
            type=agreement,
            default=None,
            metavar="A",
            help="hold the agreement with per-frame output at A (0.95, or 95%%), segmenting as "
            "little as that allows (policy dn:agree=A; docs/targets.md)",
        )
    group.add_argument(
        "--segmenter",
        default="fast",
        help="segmentation network: 'fast', 'accurate', a .safetensors file of ours, an ONNX model "
        "(.onnx) or a torch.export program (.pt2), with an optional JSON sidecar beside it "
        "(docs/models.md) (default: fast)",
    )
    group.add_argument(
        "--flow",
        default="dis",
        help="flow estimator: dis (OpenCV DIS, ultrafast), dis-fast, dis-medium, flownet (its DN reads "
        "conv6 features), or flownet-conv4, flownet-conv5, flownet-image-flow (no DN ships "
        "for these: dn:T needs --dn FILE from `dvsnet train dn --variant NAME`), or mv (the "
        "video's own H.264 / MPEG-4 motion vectors, pip install 'dvsnet[mv]'; its DN reads "
        "the vectors too, --dn dis gives it DIS's features; docs/motion-vectors.md) "
        "(default: dis)",
    )
    if policy is not None:  # a command that makes a DN for mv needs the vectors: it refuses without them
        group.add_argument("--flow-fallback", choices=("dis", "none"), default="dis",
                           help="when --flow mv meets a source without motion vectors (frames, HEVC, VP9, no "
                                "PyAV): dis runs DIS instead with a note, none refuses (default: dis)")
    if policy is not None:
        group.add_argument(
            "--dn",
            default=None,
            metavar="NAME|FILE",
            help="decision network of a dn:T policy: a shipped variant (dis, flownet-conv6, mv) or a "
            ".safetensors file from `dvsnet calibrate` or `dvsnet train dn` (default: the one "
            "shipped for --flow)",
        )
    group.add_argument("--grid", type=parse_grid_or_auto, default="auto", metavar="RxC|auto",
                       help="frame regions as rows x columns; auto = regions of about 512x1024 px: 1x1 up to "
                            "767x1535 px frames, 2x2 at 1024x2048 or 1080x1920 (default: auto)")
    group.add_argument(
        "--max-key-age",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="re-segment a region whose key frame is N frames old, whatever the policy says; "
        "0 = no cap (default: for dn:T 60 with online calibration, 10 without; no cap for "
        "the other policies)",
    )
    if policy is not None:
        group.add_argument("--no-online", dest="online", action="store_false",
                           help="use the decision network's scores as they are, without calibrating them on "
                                "the video while it runs (docs/adaptive.md)")
    group.add_argument("--overlap", type=non_negative_int, default=None, metavar="PX",
                       help="overlap of neighbouring regions in pixels (default: 64 px at 2048 px width, "
                            "scaled with the frame width)")
    group.add_argument(
        "--flow-width",
        type=width_or_full,
        default=None,
        metavar="PX",
        help="frames wider than PX are scaled to PX wide for the flow and the decision network's "
        "features: cheaper flow, coarser warps; 0 = full resolution (default: full resolution)",
    )
    group.add_argument("--device", choices=DEVICES, default="auto",
                       help="where the networks run: auto (a CUDA GPU when torch sees one, else the CPU), "
                            "cpu or cuda; DIS flow always runs on the CPU (default: auto)")
    add_backend_options(group)
    group.add_argument("--stitch", choices=("max-logit", "core"), default="max-logit",
                       help="how overlap bands are resolved: the region with the higher max-logit wins, "
                            "or each region keeps only its core (default: max-logit)")


def add_backend_options(group: argparse._ActionsContainer) -> None:
    """--backend --precision: what runs the segmenter (dvsnet.backends)."""
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="what runs the segmenter: onnxruntime (its graph exported on first use and cached in "
        "~/.cache/dvsnet/onnx), torch, or auto (ONNX Runtime on the CPU, torch on CUDA); "
        "--backend torch --precision fp32 is eager PyTorch as before (default: auto)",
    )
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="the segmenter's arithmetic: fp32; bf16 (torch, CPUs with native bf16: AVX-512 BF16 "
        "or AMX); int8 (ONNX Runtime static quantisation); auto = bf16 where the CPU has it "
        "and --backend is auto, else fp32 (docs/speed.md) (default: auto)",
    )


def require(condition: bool, message: str) -> None:
    """Raise a one-line user error unless `condition` holds."""
    if not condition:
        raise DvsnetError(message)


def parse_resize(text: str) -> tuple[int, int] | int:
    """'256x512' -> (256, 512) (height x width); '512' -> 512 (width, height keeps the aspect ratio)."""
    if text.isdigit():
        width = int(text)
        if width < 16:
            raise argparse.ArgumentTypeError(f"resize width must be >= 16 px, got {width}")
        return width
    return parse_size(text)


def parse_threshold(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"threshold must be a number in [0, 1], got {text!r}") from None


def add_threshold_option(parser: argparse.ArgumentParser) -> None:
    """--threshold T: shorthand that sets the threshold of the dn/oracle policy (`--threshold 0.85`)."""
    parser.add_argument("--threshold", type=parse_threshold, default=None, metavar="T",
                        help="confidence threshold in [0, 1] for the dn (or oracle) policy: lower warps more "
                             "regions (faster), higher segments more (more accurate); overrides the T of "
                             "--policy (default: the policy's own, 0.92 for the default dn:0.92)")


def policy_spec(policy: str, threshold: float | None) -> str:
    """The policy string with --threshold applied: ('dn:0.92', 0.8) -> 'dn:0.8'."""
    if threshold is None:
        return policy
    name = policy.strip().lower().partition(":")[0]
    if name not in ("dn", "oracle"):
        raise DvsnetError(f"--threshold applies to the dn and oracle policies, not {policy!r}")
    return f"{name}:{threshold:g}"


def target_spec(policy: str, fps: float | None, agreement: float | None) -> str:
    """The policy string with --target-fps / --target-agreement applied: ('dn:0.92', 20, None) ->
    'dn:fps=20'."""
    if fps is None and agreement is None:
        return policy
    if fps is not None and agreement is not None:
        raise DvsnetError("--target-fps and --target-agreement are two targets; give one")
    if policy.strip().lower().partition(":")[0] != "dn":
        raise DvsnetError(
            f"--target-fps and --target-agreement set the threshold of a dn policy, not {policy!r}"
        )
    return f"dn:fps={fps:g}" if fps is not None else f"dn:agree={agreement:g}"


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The PipelineConfig of the pipeline options (and --threshold where the command has it); the policy
    string is checked here, the cheapest check, before anything is loaded."""
    from dvsnet.policy_strings import parse_policy

    fps, agreement = getattr(args, "target_fps", None), getattr(args, "target_agreement", None)
    if getattr(args, "threshold", None) is not None and (fps, agreement) != (None, None):
        raise DvsnetError(
            "--threshold fixes the threshold that --target-fps / --target-agreement set: give one"
        )
    policy = target_spec(
        policy_spec(getattr(args, "policy", None) or "dn:0.92", getattr(args, "threshold", None)),
        fps,
        agreement,
    )
    parse_policy(policy)
    return PipelineConfig(
        segmenter=args.segmenter,
        flow=args.flow,
        policy=policy,
        grid=args.grid,
        overlap=args.overlap,
        stitch=args.stitch,
        dn=getattr(args, "dn", None),
        device=args.device,
        flow_width=args.flow_width,
        max_key_age=getattr(args, "max_key_age", None),
        backend=getattr(args, "backend", "auto"),
        precision=getattr(args, "precision", "auto"),
        online=getattr(args, "online", True),
    )


def parse_write(text: str) -> str:
    """One --write value: an output name, or +name to add it to the defaults."""
    name = text.removeprefix("+")
    if name not in OUTPUTS:
        raise argparse.ArgumentTypeError(f"unknown output {text!r}; valid: {', '.join(OUTPUTS)} (or +NAME to "
                                         "add one to the defaults)")
    return text


def writes_of(values: list[str] | None) -> tuple[str, ...]:
    """The outputs --write asks for: the defaults, replaced by the plain names given and extended by the
    +names (`--write color` writes colour PNGs only; `--write +color` the defaults and colour PNGs)."""
    values = values or []
    plain = [v for v in values if not v.startswith("+")]
    added = [v[1:] for v in values if v.startswith("+")]
    return tuple(dict.fromkeys((plain or (list(DEFAULT_WRITES) if added or not values else [])) + added))


def add_io_options(parser: argparse.ArgumentParser, *, threads: int | None = None) -> None:
    """--resize --stride --max-frames --output --write --no-progress --threads (segment and demo)."""
    group = parser.add_argument_group("input and output")
    group.add_argument("--resize", type=parse_resize, default=None, metavar="HxW|W",
                       help="resize frames before segmenting: HxW, or a width keeping the aspect ratio "
                            "(default: keep the source size)")
    group.add_argument("--stride", type=positive_int, default=1, metavar="N",
                       help="keep every N-th frame of the source (default: 1, every frame)")
    group.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                       help="stop after N frames (default: all)")
    group.add_argument("--output", default="runs", metavar="DIR",
                       help="where run folders are created; each run gets a new DIR/<command>-NNNN "
                            "(default: runs)")
    group.add_argument(
        "--write",
        action="append",
        type=parse_write,
        default=None,
        metavar="WHAT",
        help="outputs to write, repeatable: overlay (video), labels (train-id PNGs), label-ids "
        "(Cityscapes label-id PNGs and naming), color (colour PNGs), csv (frames.csv). "
        f"Names given REPLACE the defaults ({' and '.join(DEFAULT_WRITES)}); +NAME adds to "
        "them (--write +color: overlay, csv and colour PNGs). summary.json is always written",
    )
    group.add_argument("--no-progress", action="store_true",
                       help="no progress bar (default: shown on stderr when it is a terminal)")
    group.add_argument(
        "--threads",
        type=positive_int,
        default=threads,
        metavar="N",
        help="CPU threads for torch and OpenCV; 1 is often faster on a machine busy with other "
        "work (default: "
        + ("their own choice, usually the core count)" if threads is None else f"{threads})"),
    )


def stream_option(text: str) -> tuple[str, str]:
    """--stream-option NAME=VALUE -> (NAME, VALUE)."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (an FFmpeg option), got {text!r}")
    return name.strip(), value


def add_live_options(parser: argparse.ArgumentParser) -> None:
    """--realtime --duration --timeout --reconnect --rtsp-transport --stream-option (segment: live video)."""
    from dvsnet.live.sources import DEFAULT_RECONNECT, DEFAULT_TIMEOUT, RTSP_TRANSPORTS

    group = parser.add_argument_group("live video (a camera or a stream URL as SOURCE; docs/live.md)")
    group.add_argument(
        "--realtime",
        action="store_true",
        help="play a video file at its own frame rate as if it were a camera: the newest frame "
        "only, drops and latency recorded (default: every frame of a file, as fast as it goes)",
    )
    group.add_argument(
        "--duration",
        type=positive_float,
        default=None,
        metavar="S",
        help="stop a live run after S seconds (default: until Ctrl-C, SIGTERM or the stream's end)",
    )
    group.add_argument("--timeout", type=positive_float, default=None, metavar="S",
                       help="seconds to connect to a stream, and of silence before it counts as stalled "
                            f"(default: {DEFAULT_TIMEOUT:g})")
    group.add_argument(
        "--reconnect",
        type=non_negative_float,
        default=None,
        metavar="S",
        help="seconds a stream that stopped, stalled or failed is reopened for (back-off 0.5 to 8 s "
        f"between tries) before the run ends; 0 = end at once (default: {DEFAULT_RECONNECT:g})",
    )
    group.add_argument("--rtsp-transport", choices=RTSP_TRANSPORTS, default=None,
                       help="how RTSP carries the video (default: tcp, which loses no packets)")
    group.add_argument(
        "--stream-option",
        type=stream_option,
        action="append",
        default=None,
        metavar="NAME=VALUE",
        help="an FFmpeg option for the source, repeatable: video_size=1280x720 or framerate=30 "
        "for a camera, fifo_size=... for udp, ...",
    )


def stream_options(args: argparse.Namespace):
    """The StreamOptions of the live options; None when none was given."""
    from dvsnet.live.sources import DEFAULT_RECONNECT, DEFAULT_TIMEOUT, StreamOptions

    given = (args.timeout, args.reconnect, args.rtsp_transport, args.stream_option)
    if given == (None, None, None, None):
        return None
    return StreamOptions(timeout=DEFAULT_TIMEOUT if args.timeout is None else args.timeout,
                         reconnect=DEFAULT_RECONNECT if args.reconnect is None else args.reconnect,
                         rtsp_transport=args.rtsp_transport or "tcp", ffmpeg=tuple(args.stream_option or ()))


def frames_phrase(count: int) -> str:
    return f"{count} frame" if count == 1 else f"{count} frames"


def print_summary(summary: dict, run_dir: object, what: str) -> None:
    """The one line at the end of a run, on stdout."""
    def fps(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    saved = summary["workload_saved"]
    print(f"{what} {frames_phrase(summary['frames'])}: {fps(summary['fps'])} fps pipeline "
          f"({fps(summary['fps_warm'])} after the first frame), "
          f"{fps(summary['fps_end_to_end'])} fps end to end, "
          f"{'n/a' if saved is None else f'{saved:.0%}'} of region segmentations saved -> {run_dir}")
    live = summary.get("live")
    if live:
        latency = live["latency_ms"]
        share = live["processed_share"]
        ms = (
            "n/a"
            if latency["p50"] is None
            else (f"p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms, max {latency['max']:.0f} ms")
        )
        print(
            f"live: processed {live['frames_processed']} of the {live['frames_received']} frames received"
            f"{'' if share is None else f' ({share:.0%})'}, dropped {live['frames_dropped']}; latency {ms}; "
            f"{live['reconnects']} reconnects; ended: {live['ended']}"
        )
