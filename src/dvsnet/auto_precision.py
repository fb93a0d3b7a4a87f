"""What runs a pipeline's segmenter (`load_pipeline_segmenter`), and what `--backend auto --precision auto`
means on a CPU: the fastest engine and precision that keeps the labels.

The candidates are those this CPU can run: torch fp32 (eager), ONNX Runtime fp32, ONNX Runtime int8, and
torch bf16 where the CPU computes bf16 natively (dvsnet.backends.native_bf16). Each runs our segmenter on
CHECK_FRAMES frames (the default int8 calibration frames: rendered street scenes at the shipped networks'
256x512), timed as the median of REPEATS passes after one warm-up pass. A candidate qualifies when its labels
equal torch fp32's on >= MIN_AGREEMENT of the pixels; the fastest qualifying one wins, and a lower precision
must beat the fastest fp32 by MARGIN, so timing noise never costs accuracy.

The choice is measured once per machine and segmenter and cached in `$XDG_CACHE_HOME/dvsnet/auto-precision.json`
(default ~/.cache), keyed by the weights' hash, the code that builds the graphs, the CPU (model and flags) and
the library versions. Not by the thread count: the choice, made at the threads of the first run, stays the
same for every run on the machine, so two runs of one video give the same labels whatever their threads. The
measurement prints one line saying what was chosen and why; the pipeline records the reason
(`DVSNet.backend_choice`, summary.json's config). `--backend` / `--precision` (or DVSNET_BACKEND /
DVSNET_PRECISION, dvsnet.backends) pin a choice instead.
"""
from __future__ import annotations

import hashlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from dvsnet.atomic import write_json_atomic
from dvsnet.backends import (
    BACKENDS,
    PRECISIONS,
    cache_dir,
    cpu_flags,
    graph_version,
    is_ours,
    load_backend_segmenter,
    native_bf16,
    pinned,
    resolve,
    weights_file,
    weights_hash,
)
from dvsnet.errors import DvsnetError

CHECK_FRAMES = 4
REPEATS = 3
MIN_AGREEMENT = 0.99  # share of pixels whose label equals torch fp32's
MARGIN = 1.10  # a lower precision is chosen only when >= 10 % faster than the fastest fp32
CACHE_NAME = "auto-precision.json"


class Choice(NamedTuple):
    """What auto runs: (backend, precision) and why, in one line."""

    backend: str
    precision: str
    reason: str


def candidates() -> list[tuple[str, str]]:
    """(backend, precision) pairs this CPU can run, the torch fp32 reference first."""
    found = [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")]
    return found + [("torch", "bf16")] if native_bf16() else found


def cache_path() -> Path:
    return cache_dir().parent / CACHE_NAME


def machine_key(spec: Any) -> str:
    """What the measured choice depends on: weights, code, CPU, library versions."""
    import onnxruntime

    from dvsnet.provenance import describe_machine

    parts = [weights_hash(weights_file(spec)), graph_version(), str(describe_machine()["cpu"]),
             ",".join(sorted(cpu_flags())), torch.__version__,
             onnxruntime.__version__, str(native_bf16())]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def choose(spec: Any, note: Any = None) -> Choice:
    """The backend and precision auto runs our segmenter `spec` at on this CPU: cached, else measured (one
    line to `note`, default stderr) and cached."""
    key = machine_key(spec)
    cached = _read_cache().get(key)
    if isinstance(cached, dict) and {"backend", "precision", "reason"} <= set(cached):
        return Choice(cached["backend"], cached["precision"], cached["reason"])
    choice = measure(spec)
    entries = _read_cache()
    entries[key] = {**choice._asdict(), "segmenter": str(spec)}
    try:
        write_json_atomic(cache_path(), entries)
    except OSError:
        pass  # a read-only cache: measured again next time, never an error
    (note or _stderr)(f"note: --precision auto: {choice.reason} (measured once on this machine; "
                      f"cached in {cache_path()}; --backend/--precision pin another)")
    return choice


def measure(spec: Any) -> Choice:
    """Time every candidate on the check frames and pick (see the module docstring)."""
    from dvsnet.models.quantize import default_calibration_frames

    frames = default_calibration_frames()[:CHECK_FRAMES]
    images = [torch.from_numpy(f).permute(2, 0, 1)[None].float().div(255) for f in frames]  # (1, 3, H, W) each
    results: dict[tuple[str, str], tuple[float, float]] = {}  # -> (seconds per frame, agreement with fp32)
    reference: list[torch.Tensor] = []
    cpu = torch.device("cpu")
    for backend, precision in candidates():
        segmenter = load_backend_segmenter(spec, backend, precision, cpu)
        seconds, labels = _time(segmenter, images)
        if not reference:
            reference = labels
        agreement = float(np.mean([(a == b).float().mean().item() for a, b in zip(labels, reference)]))
        results[(backend, precision)] = (seconds, agreement)
    return pick(results)


def pick(results: dict[tuple[str, str], tuple[float, float]]) -> Choice:
    """The choice from measured (seconds per frame, agreement with torch fp32) per (backend, precision)."""
    base = results[("torch", "fp32")][0]
    fp32 = min((k for k in results if k[1] == "fp32"), key=lambda k: results[k][0])
    best = fp32
    for key, (seconds, agreement) in results.items():
        if key[1] != "fp32" and agreement >= MIN_AGREEMENT and seconds * MARGIN <= results[fp32][0] \
                and seconds < results[best][0]:
            best = key
    seconds, agreement = results[best]
    others = ", ".join(f"{p} {b} {base / s:.2f}x ({a:.1%})" for (b, p), (s, a) in results.items() if (b, p) != best)
    reason = (f"{best[1]} on {best[0]}, {base / seconds:.2f}x torch fp32 here with {agreement:.1%} of its labels "
              f"(others: {others})")
    return Choice(best[0], best[1], reason)


def _time(segmenter: Any, images: list[torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
    """(median seconds per frame over REPEATS passes after a warm-up pass, labels of the last pass)."""
    with torch.no_grad():
        labels = [segmenter(x).argmax(1) for x in images]  # warm-up; (1, h, w) each
        passes = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            labels = [segmenter(x).argmax(1) for x in images]
            passes.append((time.perf_counter() - start) / len(images))
    return statistics.median(passes), labels


def _read_cache() -> dict[str, Any]:
    try:
        entries = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def resolve_for(spec: Any, backend: str, precision: str, device: torch.device) -> tuple[str, str, str | None]:
    """(backend, precision, why auto chose them or None) that will run our segmenter `spec` on `device`: the
    configured pair, pinned by the environment where it is the default (backends.pinned), both auto on the
    CPU measured (`choose`), the rest resolved by backends.resolve."""
    backend, precision = pinned(backend, precision)
    reason = None
    if (backend, precision) == ("auto", "auto") and device.type == "cpu":
        backend, precision, reason = choose(spec)
    return (*resolve(backend, precision, device), reason)


def load_pipeline_segmenter(spec: Any, backend: str, precision: str, device: str | torch.device
                            ) -> tuple[Any, str, str]:
    """(segmenter, backend, precision) for a pipeline: our segmenters (a name or .safetensors) on the
    resolved backend and precision (both auto on the CPU: the measured `choose`, its reason in the
    segmenter's `backend_choice`); anything else (an .onnx / .pt2 file, a module or callable, a segmenter
    this function made before) as it is, with the backend and precision it runs at. DvsnetError (one line)
    for a combination that cannot run, or a bf16 / int8 request for a segmenter that is not ours."""
    from dvsnet.devices import pick_device
    from dvsnet.models import ExternalSegmenter, load_segmenter

    device = pick_device(device) if isinstance(device, str) else device
    if is_ours(spec):
        backend, precision, reason = resolve_for(spec, backend, precision, device)
        segmenter = load_backend_segmenter(spec, backend, precision, device)
        segmenter.backend_choice = reason
        return segmenter, backend, precision
    if backend not in BACKENDS or precision not in PRECISIONS:
        resolve(backend, precision, device)  # its one-line error
    if getattr(spec, "backend", None) and getattr(spec, "precision", None):  # made here before: reused
        segmenter = spec
    else:
        if precision in ("bf16", "int8"):
            raise DvsnetError(f"--precision {precision} applies to dvsnet's own segmenters (a name or a .safetensors "
                              "file); export yours to ONNX and quantise it, or run it in fp32")
        segmenter = load_segmenter(spec, device)
    onnx = isinstance(segmenter, ExternalSegmenter) and hasattr(segmenter, "providers")
    return (segmenter, getattr(segmenter, "backend", "onnxruntime" if onnx else "torch"),
            getattr(segmenter, "precision", "fp32"))
