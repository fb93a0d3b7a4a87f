"""What runs a pipeline's segmenter (`load_pipeline_segmenter`), and what `--backend auto --precision auto`
means on a CPU: the fastest engine and precision that keeps the labels.

The candidates are those this CPU can run: torch fp32 (eager), ONNX Runtime fp32, ONNX Runtime int8, and
torch bf16 where the CPU computes bf16 natively (dvsnet.backends.native_bf16).

- Speed, once per machine: each candidate segments CHECK_FRAMES frames (rendered street scenes at the shipped
  networks' 256x512, of CHECK_SEEDS: not the frames int8 is calibrated on), timed as the median of REPEATS
  passes after a warm-up pass, the candidates taking turns pass by pass so that a load on the machine falls
  on all of them alike. Cached in `$XDG_CACHE_HOME/dvsnet/auto-precision.json` (default ~/.cache), keyed by
  the weights' hash, the code that builds the graphs, the CPU (model and flags) and the library versions;
  not by the thread count, so every run on a machine weighs the same speeds. One line says what it found.
- Labels, once per footage: a candidate qualifies when its labels equal torch fp32's on >= MIN_AGREEMENT of
  the pixels of the first CHECK_FRAMES frames of the footage the pipeline will segment (the check frames
  when it has none; cached by the frames' digest). Rendered frames flatter int8: on real clips it keeps
  92-94 % of fp32's labels (benchmarks/bench_precision_real.py), so there auto runs fp32.
- The fastest qualifying candidate wins; a lower precision must beat the fastest fp32 by MARGIN, so timing
  noise never costs labels. The pipeline records why (`DVSNet.backend_choice`, summary.json's config).
  `--backend` / `--precision` (or DVSNET_BACKEND / DVSNET_PRECISION, dvsnet.backends) pin a choice instead.
"""
from __future__ import annotations

import hashlib
import json
import statistics
import sys
import time
from collections.abc import Sequence
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
CHECK_SEEDS = (2001, 2002)  # rendered sequences held out from int8's calibration frames (models.quantize)
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


def choose(spec: Any, frames: Sequence[np.ndarray] | None = None, note: Any = None) -> Choice:
    """The backend and precision auto runs our segmenter `spec` at on this CPU. Speeds (and labels on the
    check frames) are measured once per machine and cached (one line to `note`, default stderr); with
    `frames` (H×W×3 uint8 RGB: the first frames of the footage the pipeline will segment) the labels are
    checked on them instead, once per footage (cached by the frames' digest), and a line is said only when
    the footage rejects what the check frames chose."""
    measured = _measured(spec, note or _stderr)
    general = pick(measured)
    if not frames:
        return general
    key = f"{machine_key(spec)}-{_frames_digest(frames)}"
    cached = _read_cache().get("footage", {}).get(key)
    if isinstance(cached, dict) and {"backend", "precision", "reason"} <= set(cached):
        return Choice(cached["backend"], cached["precision"], cached["reason"])
    choice = _check_on(spec, frames, measured)
    _write_cache(lambda entries: entries.setdefault("footage", {}).__setitem__(key, choice._asdict()))
    if choice[:2] != general[:2]:
        (note or _stderr)(f"note: --precision auto: {choice.reason}")
    return choice


def _measured(spec: Any, note: Any) -> dict[tuple[str, str], tuple[float, float]]:
    """(seconds per frame, agreement with torch fp32 on the check frames) per candidate: cached, else measured
    (one line to `note`) and cached."""
    key = machine_key(spec)
    cached = _read_cache().get(key)
    if isinstance(cached, dict) and "measured" in cached:
        return {tuple(k.split(" ")): tuple(v) for k, v in cached["measured"].items()}
    measured = measure(spec)
    choice = pick(measured)
    _write_cache(lambda entries: entries.__setitem__(key, {
        **choice._asdict(), "segmenter": str(spec),
        "measured": {" ".join(k): list(v) for k, v in measured.items()}}))
    note(f"note: --precision auto: {choice.reason} (measured once on this machine; cached in {cache_path()}; "
         "--backend/--precision pin another)")
    return measured


def _check_on(spec: Any, frames: Sequence[np.ndarray], measured: dict) -> Choice:
    """The choice with the labels checked on `frames`: the candidates that could win, fastest first, each
    against torch fp32 on the same frames, until one keeps MIN_AGREEMENT of them."""
    cpu = torch.device("cpu")
    fp32 = load_backend_segmenter(spec, "torch", "fp32", cpu)
    images = [_padded(f, int(getattr(fp32, "input_multiple", 8))) for f in frames[:CHECK_FRAMES]]
    with torch.no_grad():
        reference = [fp32(x).argmax(1) for x in images]
        checked = dict(measured)
        while True:
            choice = pick(checked, footage=True)
            key = (choice.backend, choice.precision)
            if key[1] == "fp32":
                return choice
            segmenter = load_backend_segmenter(spec, *key, cpu)
            agreement = float(np.mean([(segmenter(x).argmax(1) == r).float().mean().item()
                                       for x, r in zip(images, reference)]))
            checked[key] = (checked[key][0], agreement)
            if agreement >= MIN_AGREEMENT:
                return pick(checked, footage=True)  # below the bar, it is out of the running


def check_frames() -> list[torch.Tensor]:
    """The CHECK_FRAMES frames every candidate segments, (1, 3, 256, 512) float RGB in [0, 1] each."""
    from dvsnet.data.synthetic import render_sequence

    per_seed = -(-CHECK_FRAMES // len(CHECK_SEEDS))
    frames = [f.image for seed in CHECK_SEEDS for f in render_sequence(seed, per_seed, (256, 512))]
    return [torch.from_numpy(f).permute(2, 0, 1)[None].float().div(255) for f in frames[:CHECK_FRAMES]]


def measure(spec: Any) -> dict[tuple[str, str], tuple[float, float]]:
    """(seconds per frame, agreement with torch fp32) of every candidate on the check frames (see the module
    docstring)."""
    images = check_frames()
    cpu = torch.device("cpu")
    segmenters = {key: load_backend_segmenter(spec, *key, cpu) for key in candidates()}
    passes: dict[tuple[str, str], list[float]] = {key: [] for key in segmenters}
    labels: dict[tuple[str, str], list[torch.Tensor]] = {}
    with torch.no_grad():
        for repeat in range(REPEATS + 1):  # the first pass warms up, untimed
            for key, segmenter in segmenters.items():
                start = time.perf_counter()
                labels[key] = [segmenter(x).argmax(1) for x in images]  # (1, h, w) each
                if repeat:
                    passes[key].append((time.perf_counter() - start) / len(images))
    reference = labels[("torch", "fp32")]
    return {key: (statistics.median(passes[key]),
                  float(np.mean([(a == b).float().mean().item() for a, b in zip(labels[key], reference)])))
            for key in segmenters}


def pick(results: dict[tuple[str, str], tuple[float, float]], footage: bool = False) -> Choice:
    """The choice from measured (seconds per frame, agreement with torch fp32) per (backend, precision);
    footage: the agreements were (partly) checked on the footage's own first frames."""
    base = results[("torch", "fp32")][0]
    fp32 = min((k for k in results if k[1] == "fp32"), key=lambda k: results[k][0])
    best = fp32
    for key, (seconds, agreement) in results.items():
        if key[1] != "fp32" and agreement >= MIN_AGREEMENT and seconds * MARGIN <= results[fp32][0] \
                and seconds < results[best][0]:
            best = key
    seconds, agreement = results[best]
    others = ", ".join(f"{p} {b} {base / s:.2f}x ({a:.1%})"
                       for (b, p), (s, a) in results.items() if (b, p) != best)
    where = "on this footage's first frames" if footage else "on the check frames"
    reason = (f"{best[1]} on {best[0]}, {base / seconds:.2f}x torch fp32 here with {agreement:.1%} of its "
              f"labels {where} (others: {others})")
    return Choice(best[0], best[1], reason)


def _padded(frame: np.ndarray, multiple: int) -> torch.Tensor:
    """An H×W×3 uint8 frame as (1, 3, H', W') float RGB in [0, 1], padded bottom/right (edge pixels repeated)
    to a multiple of `multiple`, as the pipeline pads its regions."""
    height, width = frame.shape[:2]
    image = np.pad(frame, ((0, -height % multiple), (0, -width % multiple), (0, 0)), mode="edge")
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255)


def _frames_digest(frames: Sequence[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for frame in frames[:CHECK_FRAMES]:
        digest.update(str(frame.shape).encode())
        digest.update(np.ascontiguousarray(frame).tobytes())
    return digest.hexdigest()[:16]


def _write_cache(update: Any) -> None:
    """Apply `update` to the cache's entries and write them back atomically; a read-only cache is no error
    (measured again next time)."""
    entries = _read_cache()
    update(entries)
    try:
        write_json_atomic(cache_path(), entries)
    except (OSError, DvsnetError):
        pass


def _read_cache() -> dict[str, Any]:
    try:
        entries = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def resolve_for(spec: Any, backend: str, precision: str, device: torch.device,
                footage: Sequence[np.ndarray] | None = None) -> tuple[str, str, str | None]:
    """(backend, precision, why auto chose them or None) that will run our segmenter `spec` on `device`: the
    configured pair, pinned by the environment where it is the default (backends.pinned), both auto on the
    CPU measured (`choose`, its labels checked on `footage` when given), the rest resolved by
    backends.resolve."""
    backend, precision = pinned(backend, precision)
    reason = None
    if (backend, precision) == ("auto", "auto") and device.type == "cpu":
        backend, precision, reason = choose(spec, footage)
    return (*resolve(backend, precision, device), reason)


def first_frames(source: Any, **read: Any) -> list[np.ndarray] | None:
    """The first CHECK_FRAMES frames of `source` (dvsnet.data.video.read_named_frames with `read`'s options),
    on which auto checks its labels; those before a frame that cannot be read, None when there are none (the
    run itself then reports the source's problem, where it belongs)."""
    from dvsnet.data.video import read_named_frames

    frames: list[np.ndarray] = []
    try:
        for frame in read_named_frames(source, max_frames=CHECK_FRAMES, **read):
            frames.append(frame.image)
    except DvsnetError:
        pass
    return frames or None


def load_pipeline_segmenter(spec: Any, backend: str, precision: str, device: str | torch.device,
                            footage: Sequence[np.ndarray] | None = None) -> tuple[Any, str, str]:
    """(segmenter, backend, precision) for a pipeline: our segmenters (a name or .safetensors) on the
    resolved backend and precision (both auto on the CPU: the measured `choose`, its reason in the
    segmenter's `backend_choice`); anything else (an .onnx / .pt2 file, a module or callable, a segmenter
    this function made before) as it is, with the backend and precision it runs at. footage: the first frames
    the pipeline will segment, on which auto checks its labels. DvsnetError (one line) for a combination that
    cannot run, or a bf16 / int8 request for a segmenter that is not ours."""
    from dvsnet.devices import pick_device
    from dvsnet.models import ExternalSegmenter, load_segmenter

    device = pick_device(device) if isinstance(device, str) else device
    if is_ours(spec):
        backend, precision, reason = resolve_for(spec, backend, precision, device, footage)
        segmenter = load_backend_segmenter(spec, backend, precision, device)
        segmenter.backend_choice = reason
        return segmenter, backend, precision
    if backend not in BACKENDS or precision not in PRECISIONS:
        resolve(backend, precision, device)  # its one-line error
    if getattr(spec, "backend", None) and getattr(spec, "precision", None):  # made here before: reused
        segmenter = spec
    else:
        if precision in ("bf16", "int8"):
            raise DvsnetError(f"--precision {precision} applies to dvsnet's own segmenters (a name or a "
                              ".safetensors file); export yours to ONNX and quantise it, or run it in fp32")
        segmenter = load_segmenter(spec, device)
    onnx = isinstance(segmenter, ExternalSegmenter) and hasattr(segmenter, "providers")
    return (segmenter, getattr(segmenter, "backend", "onnxruntime" if onnx else "torch"),
            getattr(segmenter, "precision", "fp32"))


def load_segmenter(spec: Any, device: str | torch.device = "cpu", *, backend: str = "auto",
                   precision: str = "auto", footage: Sequence[np.ndarray] | None = None) -> Any:
    """`dvsnet.load_segmenter`: a segmenter as a pipeline runs it, so the Python API and the command line run
    at the same speed with the same defaults. Our segmenters (a name or .safetensors) on `backend` and
    `precision` (auto: as `load_pipeline_segmenter` chooses, checked on `footage` when given); an .onnx /
    .pt2 file, a module or a callable as dvsnet.models.load_segmenter adapts it. The eager fp32 torch module
    of ours: `backend="torch"` (or dvsnet.models.load_segmenter)."""
    return load_pipeline_segmenter(spec, backend, precision, device, footage)[0]
