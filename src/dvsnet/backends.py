"""Which engine runs the segmenter, at which precision: torch or ONNX Runtime; fp32, bf16 or int8.

    backend    auto | torch | onnxruntime
    precision  auto | fp32 | bf16 | int8

`auto` backend: ONNX Runtime on the CPU (but torch where `auto` precision picks bf16, see below), torch on
CUDA. `auto` precision, with the auto backend on the CPU: bf16 where the CPU computes bf16 natively
(AVX-512 BF16 or AMX; `native_bf16`), else fp32; with a named backend or on CUDA: fp32, so
`--backend torch` is the eager fp32 PyTorch every figure before the backends came from. What each precision
runs on (measured on synthetic val: docs/speed.md):

    fp32  torch eager, or ONNX Runtime (the graph exported on first use, labels equal torch's on >= 99.9 %)
    bf16  torch with bf16 weights and activations (oneDNN, AMX where the CPU has it); ONNX Runtime's CPU
          provider has no bf16 convolutions, so bf16 with --backend onnxruntime is refused
    int8  ONNX Runtime static quantisation (models/quantize.py); torch has no int8 path here

ONNX graphs are exported on first use into the cache folder (`cache_dir`: $XDG_CACHE_HOME/dvsnet/onnx,
default ~/.cache/dvsnet/onnx), named by the weights file's hash, the precision and the opset, written
atomically; a later load finds them there. The backends apply to dvsnet's own segmenters (a name or a
.safetensors file); an .onnx / .pt2 file or a callable runs as it is.
"""
from __future__ import annotations

import hashlib
import os
import platform
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dvsnet.digest import file_digest
from dvsnet.errors import DvsnetError

BACKENDS = ("auto", "torch", "onnxruntime")
PRECISIONS = ("auto", "fp32", "bf16", "int8")
BACKEND_ENV, PRECISION_ENV = "DVSNET_BACKEND", "DVSNET_PRECISION"  # pin what "auto" means (`pinned`)
NATIVE_BF16_ENV = "DVSNET_NATIVE_BF16"  # 0 / 1: what `native_bf16` says, whatever the CPU
CACHE_FORMAT = 1  # bumped when what goes into a cached graph changes
# the code that makes a cached graph: its digest is in every cached graph's name, so an upgrade of dvsnet that
# changes a network's forward or its export never runs a graph exported by the code before
GRAPH_SOURCES = tuple(Path(__file__).parent / "models" / name for name in
                      ("backbone.py", "segnets.py", "decision.py", "flownet.py", "export.py", "quantize.py"))


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (/proc/cpuinfo "flags", or "Features" on ARM); empty where unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def native_bf16() -> bool:
    """Whether the CPU computes bf16 in hardware (x86 AVX-512 BF16 or AMX-BF16, ARM BF16); elsewhere
    torch emulates it, many times slower than fp32. DVSNET_NATIVE_BF16=0 or 1 overrides what the CPU says
    (to test or run a machine as if it were of the other kind)."""
    forced = os.environ.get(NATIVE_BF16_ENV)
    if forced is not None:
        if forced not in ("0", "1"):
            raise DvsnetError(f"{NATIVE_BF16_ENV} must be 0 or 1, not {forced!r}")
        return forced == "1"
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16", "bf16"})


def pinned(backend: str, precision: str) -> tuple[str, str]:
    """What the defaults (backend and precision both "auto") mean where DVSNET_BACKEND / DVSNET_PRECISION are
    set: one switch that pins what every default pipeline of the process (and its workers) runs, e.g. to run
    the whole test suite on one backend. A backend or precision given explicitly keeps the pair as given."""
    for name, valid in ((BACKEND_ENV, BACKENDS), (PRECISION_ENV, PRECISIONS)):
        value = os.environ.get(name)
        if value is not None and value not in valid:
            raise DvsnetError(f"{name}={value!r} is not one of {', '.join(valid)}")
    if (backend, precision) != ("auto", "auto"):
        return backend, precision
    return os.environ.get(BACKEND_ENV) or backend, os.environ.get(PRECISION_ENV) or precision


def cache_dir() -> Path:
    """Where exported graphs are cached: $XDG_CACHE_HOME/dvsnet/onnx (default ~/.cache/dvsnet/onnx)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dvsnet" / "onnx"


def resolve(backend: str, precision: str, device: torch.device) -> tuple[str, str]:
    """(backend, precision) that will run, from the configured ones ("auto" resolved) on `device`;
    DvsnetError (one line) for a combination that cannot run here."""
    backend, precision = pinned(backend, precision)
    if backend not in BACKENDS:
        raise DvsnetError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise DvsnetError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    cuda = device.type == "cuda"
    if precision == "auto":
        precision = "bf16" if backend == "auto" and not cuda and native_bf16() else "fp32"
    if precision == "bf16":
        if backend == "onnxruntime":
            raise DvsnetError("--precision bf16 runs on torch (ONNX Runtime's CPU provider has no bf16 "
                              "convolutions): use --backend torch or auto")
        if cuda and not torch.cuda.is_bf16_supported():
            raise DvsnetError(f"--precision bf16: the GPU {device} has no bf16 support; use fp32")
        if not cuda and not native_bf16():
            raise DvsnetError(f"--precision bf16: this CPU ({platform.processor() or platform.machine()}) "
                              "has no native bf16 (AVX-512 BF16 or AMX), torch would emulate it many times "
                              "slower; use fp32 or int8")
        return "torch", "bf16"
    if precision == "int8":
        if backend == "torch":
            raise DvsnetError("--precision int8 runs on ONNX Runtime (static quantisation): use --backend "
                              "onnxruntime or auto")
        if cuda:
            raise DvsnetError("--precision int8 is a CPU path (ONNX Runtime's CPU kernels); "
                              "on CUDA use fp32 or bf16")
        return "onnxruntime", "int8"
    if backend == "auto":
        backend = "torch" if cuda else "onnxruntime"
    return backend, precision


def is_ours(spec: Any) -> bool:
    """Whether `spec` names one of our segmenters by name or .safetensors file (what the backends apply
    to)."""
    from dvsnet.models import SEGMENTERS

    return isinstance(spec, (str, Path)) and (str(spec) in SEGMENTERS or str(spec).endswith(".safetensors"))


def weights_file(spec: str | Path) -> Path:
    """The .safetensors file of a segmenter name or file."""
    from dvsnet.models import SEGMENTERS
    from dvsnet.models.weights import shipped_path

    return shipped_path(str(spec)) if str(spec) in SEGMENTERS else Path(spec)


@lru_cache(maxsize=4)
def code_digest(files: tuple[Path, ...] = GRAPH_SOURCES) -> str:
    """The first 8 hex digits of the sha256 over `files`' bytes (in order): which code made a graph."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:8]


def graph_version() -> str:
    """The part of a cached graph's name that says which dvsnet made it: "v<CACHE_FORMAT>-<code digest>"."""
    return f"v{CACHE_FORMAT}-{code_digest()}"


def weights_hash(path: str | Path) -> str:
    """The first 16 hex digits of the sha256 of a weights file's bytes (the cache key's core)."""
    return file_digest(path, 16)


def cached_graph(spec: str | Path, precision: str, *, opset: int | None = None,
                 folder: str | Path | None = None) -> Path:
    """The ONNX graph of our segmenter `spec` at `precision` ("fp32" | "int8"), exported (and for int8
    quantised on the default calibration frames) on first use into `folder` (default `cache_dir()`);
    returns its path. The name carries the weights' hash, the precision, the opset and the code's digest
    (graph_version), so new weights, another precision or another dvsnet never find a stale graph."""
    from dvsnet.models import load_segmenter
    from dvsnet.models.export import OPSET, export_segmenter
    from dvsnet.models.external import sidecar_path
    from dvsnet.models.quantize import default_calibration_frames, quantize_segmenter

    if precision not in ("fp32", "int8"):
        raise DvsnetError(f"ONNX graphs are cached in fp32 or int8, not {precision!r}")
    opset = OPSET if opset is None else opset
    source = weights_file(spec)
    if not source.is_file():
        load_segmenter(spec)  # its own one-line error (missing shipped weights, file not found)
    folder = cache_dir() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"segmenter-{weights_hash(source)}-opset{opset}-{graph_version()}"  # by content, not by name
    fp32 = folder / f"{stem}-fp32.onnx"
    if not (fp32.is_file() and sidecar_path(fp32).is_file()):
        export_segmenter(load_segmenter(spec, "cpu"), fp32, opset=opset)
    if precision == "fp32":
        return fp32
    int8 = folder / f"{stem}-int8-cal{default_calibration_identity()}.onnx"
    if not (int8.is_file() and sidecar_path(int8).is_file()):
        quantize_segmenter(fp32, int8, default_calibration_frames())
        _copy_atomic(sidecar_path(fp32), sidecar_path(int8))
    return int8


def default_calibration_identity() -> str:
    """Names the default int8 calibration frames without rendering them (0.85 s at every int8 load): their
    recipe (seeds, frames per seed) and the digest of the renderer's code, which alone decide them."""
    from dvsnet.data import synthetic
    from dvsnet.models.quantize import CALIBRATION_FRAMES_PER_SEED, CALIBRATION_SEEDS

    renderer = tuple(sorted(Path(synthetic.__file__).parent.glob("*.py")))
    recipe = f"{CALIBRATION_SEEDS}-{CALIBRATION_FRAMES_PER_SEED}-{code_digest(renderer)}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _copy_atomic(source: Path, target: Path) -> None:
    from dvsnet.atomic import write_bytes_atomic

    write_bytes_atomic(target, source.read_bytes())


class Bf16Segmenter(nn.Module):
    """One of our segmenters with bf16 weights in channels-last layout: images (B, 3, h, w) float RGB
    [0, 1] -> float32 logits (B, K, h/s, w/s), computed in bf16 (oneDNN; AMX tiles where the CPU has them)."""

    backend, precision = "torch", "bf16"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(dtype=torch.bfloat16, memory_format=torch.channels_last).eval()
        self.arch = getattr(model, "arch", type(model).__name__)
        self.num_classes = int(model.num_classes)
        self.output_stride = int(model.output_stride)
        self.input_multiple = int(model.input_multiple)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)  # (B, 3, h, w)
        return self.model(x).float()  # (B, K, h/s, w/s)


def load_backend_segmenter(spec: Any, backend: str, precision: str, device: torch.device) -> Any:
    """The segmenter `spec` on the resolved `backend` at `precision` (see `resolve`), on `device`. Our
    segmenters only (`is_ours`); ONNX Runtime sessions use torch's thread count (dvsnet.provenance
    .set_threads sets both)."""
    from dvsnet.models import load_segmenter
    from dvsnet.models.external import load_onnx

    if backend == "torch":
        model = load_segmenter(spec, device)
        return Bf16Segmenter(model) if precision == "bf16" else model
    segmenter = load_onnx(cached_graph(spec, precision), device)
    segmenter.backend, segmenter.precision = backend, precision
    return segmenter


class OnnxDecisionNet:
    """A decision network run by ONNX Runtime, for pipelines whose segmenter runs there: features (B, C, h, w)
    -> (B,) float32 scores, as the DecisionNet it was exported from gives them (its in_size, in_channels,
    variant and reads_key_segmentation are kept: the policy reads them). The graph is cached like the
    segmenters', named by a hash of the network's weights."""

    backend, precision = "onnxruntime", "fp32"

    def __init__(self, net: nn.Module, folder: str | Path | None = None) -> None:
        self.in_size, self.in_channels = tuple(net.in_size), int(net.in_channels)
        self.variant = net.variant
        self.reads_key_segmentation = bool(getattr(net, "reads_key_segmentation", False))
        self.path, self.session = _cached_network(net, "dn", folder)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        if tuple(features.shape[2:]) != self.in_size:  # as DecisionNet.forward: pool to the trained size
            features = torch.nn.functional.adaptive_avg_pool2d(features, self.in_size)
        scores = self.session.run(None, {"features": features.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(scores)  # (B,)

    def __repr__(self) -> str:
        return f"OnnxDecisionNet({self.path.name})"


class OnnxFlowNet:
    """FlowNetS run by ONNX Runtime, for pipelines whose segmenter runs there: (key, cur) (B, 3, h, w) ->
    (flow, {"conv4", "conv5", "conv6"}) as FlowNetS gives them. Its graph takes any batch and frame size;
    it is exported on first use and cached, named by a hash of the weights."""

    backend, precision = "onnxruntime", "fp32"

    def __init__(self, net: nn.Module, folder: str | Path | None = None) -> None:
        self.path, self.session = _cached_network(net.cpu().eval(), "flownet", folder)

    def __call__(self, key: torch.Tensor, cur: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs = {"key": key.detach().float().cpu().contiguous().numpy(),
                  "cur": cur.detach().float().cpu().contiguous().numpy()}
        flow, conv4, conv5, conv6 = (torch.from_numpy(x) for x in self.session.run(None, inputs))
        return flow, {"conv4": conv4, "conv5": conv5, "conv6": conv6}


def _cached_network(net: nn.Module, prefix: str, folder: str | Path | None) -> tuple[Path, Any]:
    """(graph path, CPU session) of a flow or decision network: exported on first use into `folder` (default
    `cache_dir()`; checked against torch, written atomically), named by its weights and the code's digest."""
    from dvsnet.models.export import OPSET, export_network

    folder = cache_dir() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{prefix}-{_state_digest(net)}-opset{OPSET}-{graph_version()}.onnx"
    if not path.is_file():
        export_network(net, path)
    return path, _cpu_session(path)


def _state_digest(net: nn.Module) -> str:
    """16 hex digits of the sha256 of a network's weights and buffers (a cached graph's name)."""
    digest = hashlib.sha256()
    for tensor in net.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _cpu_session(path: Path) -> Any:
    """An ONNX Runtime CPU session on `path` (dvsnet's session options: models.external.session_options)."""
    import onnxruntime as ort

    from dvsnet.models.external import session_options

    return ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
