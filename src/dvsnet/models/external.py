"""Segmenters from outside dvsnet: ONNX files, torch.export programs (.pt2) and Python callables, all behind
one adapter, `ExternalSegmenter`, that honours the segmenter contract:

    images (B, 3, h, w) float32 RGB in [0, 1] -> logits (B, K, h/s, w/s), s = output_stride,

with attributes num_classes (K), output_stride (s), input_multiple, class_names (K names) and palette
((K, 3) uint8 RGB). Our own SegNet modules honour it already and are never wrapped.

What a file cannot tell is declared in a JSON sidecar beside it (`model.json` for `model.onnx`), every key
optional (see `Sidecar`): class names and colours, the input normalisation (the network sees
`(pixel / scale - mean) / std` per channel, pixel in 0..255, in `channels` order) and a fixed input size.
The class count and the output stride come from one dry run on a small image when the model is loaded.

A model whose output is labels rather than scores (an integer output, or (B, h, w) / (B, 1, h, w)) is
turned into one-hot "logits" so that warping and stitching work; its class count must then come from the
sidecar's `classes`. Every mistake is a one-line DvsnetError at load time, before the first frame.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dvsnet.data.labels import CLASS_NAMES, NUM_CLASSES, TRAIN_TO_COLOR, generated_palette
from dvsnet.errors import DvsnetError

DEFAULT_INPUT_MULTIPLE = 32  # what most backbones (five stride-2 stages) accept; a sidecar may declare less
PROBE_SIZE = 128  # the dry run's image is about this many pixels high (rounded to the input multiple)
CHANNELS = ("rgb", "bgr")
ORT_SPIN_ENV = "DVSNET_ORT_SPIN"  # "1": ONNX Runtime's pool threads spin between runs (its own default)


@dataclass(frozen=True)
class Sidecar:
    """What a model file cannot tell, from its JSON sidecar; every field optional.

    classes: class names (K). palette: RGB 0..255 per class (K x 3). mean, std: per channel (3), in units
    of pixel / scale. channels: "rgb" | "bgr", the order the network wants. scale: the network input is
    (pixel / scale - mean) / std, pixel in 0..255 (255: the network wants [0, 1]; 1: it wants 0..255).
    input_size: (H, W) of a model with a fixed input: crops are resized to it, scores resized back.
    input_multiple: what the input height and width must be a multiple of (default 32).
    """

    classes: tuple[str, ...] | None = None
    palette: tuple[tuple[int, int, int], ...] | None = None
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channels: str = "rgb"
    scale: float = 255.0
    input_size: tuple[int, int] | None = None
    input_multiple: int | None = None

    @classmethod
    def from_dict(cls, data: Any, source: str = "sidecar") -> Sidecar:
        """A Sidecar from parsed JSON; DvsnetError naming `source` and the key for anything wrong."""
        if not isinstance(data, dict):
            raise DvsnetError(f"{source}: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise DvsnetError(f"{source}: unknown key {unknown[0]!r}; "
                              f"valid: {', '.join(cls.__dataclass_fields__)}")
        fields: dict[str, Any] = {}
        for key, value in data.items():
            try:
                fields[key] = _SIDECAR_PARSERS[key](value)
            except (TypeError, ValueError) as exc:
                raise DvsnetError(f"{source}: bad {key!r} {json.dumps(value)[:60]}: {exc}") from None
        if "palette" in fields and "classes" in fields and len(fields["palette"]) != len(fields["classes"]):
            raise DvsnetError(f"{source}: {len(fields['classes'])} classes but "
                              f"{len(fields['palette'])} palette colours")
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists for tuples, unset keys left out."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items() if value is not None}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _triple(value: Any) -> tuple[float, float, float]:
    values = [value] * 3 if _is_number(value) else value
    if not isinstance(values, list) or len(values) != 3 or not all(_is_number(v) for v in values):
        raise ValueError("expected a number or 3 numbers")
    return tuple(float(v) for v in values)


def _std(value: Any) -> tuple[float, float, float]:
    std = _triple(value)
    if min(std) <= 0:
        raise ValueError("must be > 0")
    return std


def _classes(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a non-empty list of names")
    if len(value) > 255:
        raise ValueError("at most 255 classes fit uint8 labels (255 = ignore)")
    return tuple(value)


def _palette(value: Any) -> tuple[tuple[int, int, int], ...]:
    rows = value if isinstance(value, list) else None
    if not rows or not all(isinstance(r, list) and len(r) == 3 and all(
            isinstance(c, int) and 0 <= c <= 255 for c in r) for r in rows):
        raise ValueError("expected a list of [R, G, B], each 0..255")
    return tuple(tuple(r) for r in rows)


def _channels(value: Any) -> str:
    if value not in CHANNELS:
        raise ValueError(f"expected one of {', '.join(CHANNELS)}")
    return value


def _scale(value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise ValueError("expected a number > 0")
    return float(value)


def _positive(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError("expected an integer >= 1")
    return value


def _size(value: Any) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError("expected [H, W]")
    return _positive(value[0]), _positive(value[1])


_SIDECAR_PARSERS: dict[str, Callable[[Any], Any]] = {
    "classes": _classes, "palette": _palette, "mean": _triple, "std": _std, "channels": _channels,
    "scale": _scale, "input_size": _size, "input_multiple": _positive,
}


def sidecar_path(model: str | Path) -> Path:
    """The sidecar of a model file: model.json beside model.onnx / model.pt2."""
    return Path(model).with_suffix(".json")


def read_sidecar(model: str | Path) -> Sidecar:
    """The sidecar beside `model` (defaults when there is none); DvsnetError if it is unreadable or wrong."""
    path = sidecar_path(model)
    if not path.is_file():
        return Sidecar()
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DvsnetError(f"{path}: not a readable JSON sidecar ({exc})") from None
    return Sidecar.from_dict(data, str(path))


class ExternalSegmenter(nn.Module):
    """Any segmentation model behind the segmenter contract (module docstring).

    run: the model itself, network input (B, 3, H, W) float32 -> its raw output: a tensor or numpy array,
    a dict ("out", else its single value) or a tuple/list (its first element). A torch module is kept as
    a submodule, so `.to()` and `.parameters()` see its weights. fixed_batch: the only batch size the
    model takes (regions then run in chunks of it, the last padded), None = any. declared: attributes the
    model declares (num_classes, output_stride, input_multiple), checked against the dry run.
    """

    def __init__(self, run: Callable[[torch.Tensor], Any], *, name: str, sidecar: Sidecar = Sidecar(),
                 fixed_batch: int | None = None, declared: Mapping[str, int] | None = None,
                 device: str | torch.device | None = None) -> None:
        super().__init__()
        self.name = name
        self.model = run  # a module assigned here is registered as a submodule
        self.sidecar = sidecar
        self.fixed_batch = fixed_batch
        declared = dict(declared or {})
        # input = (pixel / scale - mean) / std with pixel = 255 * image: image * gain - offset per channel
        self.bgr = sidecar.channels == "bgr"
        self.identity = sidecar.scale == 255 and sidecar.mean == (0, 0, 0) and sidecar.std == (1, 1, 1)
        self.register_buffer("gain", (255.0 / sidecar.scale / torch.tensor(sidecar.std)).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("offset",
                             (torch.tensor(sidecar.mean) / torch.tensor(sidecar.std)).view(1, 3, 1, 1),
                             persistent=False)
        self.input_size = sidecar.input_size
        # a callable that declares its output stride but no input_multiple takes multiples of that stride
        # (the segmenter contract before the adapter existed)
        self.input_multiple = 1 if self.input_size else (
            sidecar.input_multiple or declared.get("input_multiple") or declared.get("output_stride")
            or DEFAULT_INPUT_MULTIPLE)
        device = device if device is not None else _module_device(run)
        if device is not None:
            self.to(device)
        self._probe(declared)

    def _probe(self, declared: Mapping[str, int]) -> None:
        """The dry run: class count, output stride, scores or labels; every disagreement a DvsnetError."""
        m = self.input_multiple
        size = self.input_size or (m * max(1, round(PROBE_SIZE / m)), m * max(1, round(PROBE_SIZE / m)) + m)
        images = torch.rand((1, 3, *size), generator=torch.Generator().manual_seed(0)).to(self.gain.device)
        try:
            with torch.no_grad():
                out = self._run(self._prepare(images))
        except DvsnetError:
            raise
        except Exception as exc:  # noqa: BLE001 (the model's own error, whatever its type: one line)
            raise DvsnetError(f"{self.name}: the dry run on a (1, 3, {size[0]}, {size[1]}) image failed: "
                              f"{_first_line(exc)}") from None
        self.labels_out = (not out.is_floating_point() or out.ndim == 3
                           or (out.ndim == 4 and out.shape[1] == 1))
        if out.ndim not in (3, 4) or out.shape[0] != 1 or 0 in out.shape or (
                self.labels_out and out.ndim == 4 and out.shape[1] != 1):
            raise DvsnetError(f"{self.name}: output of shape {tuple(out.shape)} for a (1, 3, {size[0]}, "
                              f"{size[1]}) image is neither (B, K, h, w) scores nor (B, h, w) labels")
        classes = self.sidecar.classes
        if self.labels_out:
            if classes is None:
                raise DvsnetError(f"{self.name}: the model outputs labels, not scores; declare its classes "
                                  "in the sidecar (\"classes\": [names])")
            count = len(classes)
        else:
            count = int(out.shape[1])
            if count < 2 or count > 255:
                raise DvsnetError(f"{self.name}: output of shape {tuple(out.shape)} has {count} channels; "
                                  "expected 2 to 255 class scores")
            if classes is not None and len(classes) != count:
                raise DvsnetError(f"{self.name}: the sidecar names {len(classes)} classes, the model outputs "
                                  f"{count}")
        if "num_classes" in declared and int(declared["num_classes"]) != count:
            raise DvsnetError(f"{self.name}: num_classes is {declared['num_classes']}, but the model outputs "
                              f"{count} classes")
        self.num_classes = count
        self.output_stride = self._stride(size, tuple(out.shape[-2:]))
        if "output_stride" in declared and int(declared["output_stride"]) != self.output_stride:
            raise DvsnetError(f"{self.name}: output_stride is {declared['output_stride']}, but a {size[0]}x"
                              f"{size[1]} image gives {out.shape[-2]}x{out.shape[-1]} scores (stride "
                              f"{self.output_stride})")
        self.class_names, self.palette = class_names_and_palette(count, classes, self.sidecar.palette)

    def _stride(self, size: tuple[int, int], out: tuple[int, int]) -> int:
        if self.input_size:  # scores are resized back anyway: the coarsest whole stride the output carries
            return max(1, min(size[0] // out[0], size[1] // out[1]))
        if size[0] % out[0] or size[1] % out[1] or size[0] // out[0] != size[1] // out[1]:
            raise DvsnetError(f"{self.name}: a {size[0]}x{size[1]} image gives {out[0]}x{out[1]} scores, "
                              "not a whole stride; declare input_multiple or input_size in the sidecar")
        return size[0] // out[0]

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) RGB [0, 1] -> the network's input (B, 3, H, W): normalised, channel order, size."""
        x = images.flip(1) if self.bgr else images
        if not self.identity:  # .to: a no-op on the adapter's own device
            x = x * self.gain.to(images.device) - self.offset.to(images.device)
        if self.input_size and tuple(x.shape[-2:]) != tuple(self.input_size):
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return x

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """The model on x, in chunks of its fixed batch (the last chunk padded by repetition)."""
        step = self.fixed_batch
        if step is None or len(x) == step:
            return _pick_output(self.model(x), self.name)
        outs = []
        for start in range(0, len(x), step):
            chunk = x[start:start + step]
            pad = step - len(chunk)
            if pad:
                chunk = torch.cat([chunk, chunk[-1:].expand(pad, -1, -1, -1)])
            outs.append(_pick_output(self.model(chunk), self.name)[: step - pad])
        return torch.cat(outs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = (images.shape[2] // self.output_stride, images.shape[3] // self.output_stride)
        out = self._run(self._prepare(images)).to(images.device)
        if self.labels_out:
            labels = out.reshape(len(out), *out.shape[-2:])
            if tuple(labels.shape[-2:]) != size:
                labels = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0]
            labels = labels.long()
            known = (labels >= 0) & (labels < self.num_classes)  # anything else (e.g. 255) scores no class
            onehot = F.one_hot(labels.clamp(0, self.num_classes - 1), self.num_classes) * known[..., None]
            return onehot.permute(0, 3, 1, 2).float()  # (B, K, h/s, w/s)
        logits = out.float()
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits  # (B, K, h/s, w/s)

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, num_classes={self.num_classes}, output_stride={self.output_stride}, "
                f"input_multiple={self.input_multiple}, labels_out={self.labels_out}")


def _pick_output(out: Any, name: str) -> torch.Tensor:
    """The logits in a model's output: a tensor (or array), a dict's "out" (else its single value), or the
    first element of a tuple/list."""
    if isinstance(out, Mapping):
        if "out" in out:
            out = out["out"]
        elif len(out) == 1:
            out = next(iter(out.values()))
        else:
            raise DvsnetError(f"{name}: the model returns a dict with keys {', '.join(map(str, out))}; "
                              "expected 'out' or a single value")
    elif isinstance(out, (tuple, list)) and out:
        out = out[0]
    if isinstance(out, np.ndarray):
        out = torch.from_numpy(out)
    if not isinstance(out, torch.Tensor):
        raise DvsnetError(f"{name}: the model returns {type(out).__name__}; expected a tensor, a dict with "
                          "'out', or a tuple/list of tensors")
    return out


def _first_line(exc: BaseException) -> str:
    """An exception's message cut to one line of at most 160 characters (its type when it has none)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _module_device(model: object) -> torch.device | None:
    """The device of a module's first parameter; None for callables without parameters."""
    first = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    return None if first is None else first.device


def class_names_and_palette(count: int, classes: tuple[str, ...] | None,
                            palette: tuple[tuple[int, int, int], ...] | None
                            ) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names and (K, 3) uint8 colours: the sidecar's; Cityscapes' for 19 undeclared classes; else
    "class k" and a generated palette."""
    if palette is not None and len(palette) != count:
        raise DvsnetError(f"the sidecar's palette has {len(palette)} colours, "
                          f"the model outputs {count} classes")
    cityscapes = count == NUM_CLASSES and classes is None
    names = classes or (CLASS_NAMES if cityscapes else tuple(f"class {k}" for k in range(count)))
    if palette is not None:
        colors = np.asarray(palette, dtype=np.uint8)
    else:
        colors = TRAIN_TO_COLOR[:NUM_CLASSES].copy() if cityscapes else generated_palette(count)
    return tuple(names), colors


def adapt_callable(model: Callable, sidecar: Sidecar = Sidecar()) -> ExternalSegmenter:
    """A Python callable or torch module (e.g. an nn.Sequential, a torchvision model) as a segmenter; the
    attributes it declares (num_classes, output_stride, input_multiple) are checked by the dry run."""
    declared = {key: getattr(model, key) for key in ("num_classes", "output_stride", "input_multiple")
                if isinstance(getattr(model, key, None), int)}
    name = (type(model).__name__ if isinstance(model, nn.Module)
            else getattr(model, "__name__", type(model).__name__))
    return ExternalSegmenter(model, name=name, sidecar=sidecar, declared=declared)


def session_options() -> Any:
    """ONNX Runtime session options for every graph dvsnet runs: torch's thread count, errors-only logging,
    and pool threads that sleep when idle instead of spinning: spinning threads take the cores DIS flow and
    torch need between two network calls (as OpenMP's did: GOMP_SPINCOUNT, docs/speed.md)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", os.environ.get(ORT_SPIN_ENV, "0"))
    options.log_severity_level = 3
    return options


def load_onnx(path: str | Path, device: str | torch.device = "cpu", sidecar: Sidecar | None = None
              ) -> ExternalSegmenter:
    """An ONNX file run with ONNX Runtime: its CUDA provider where `device` is cuda and the installed
    onnxruntime has it, else the CPU (threads: torch's count). `sidecar` default: the file beside it."""
    import onnxruntime as ort

    path = Path(path)
    sidecar = read_sidecar(path) if sidecar is None else sidecar
    options = session_options()
    providers = ["CPUExecutionProvider"]
    if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # noqa: BLE001 (onnxruntime's exception types vary by version)
        raise DvsnetError(f"{path} is not a readable ONNX model ({_first_line(exc)})") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise DvsnetError(f"{path}: the model has {len(inputs)} inputs; "
                          "dvsnet feeds one image batch (B, 3, H, W)")
    spec = inputs[0]
    dtypes = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
    if spec.type not in dtypes:
        raise DvsnetError(f"{path}: input {spec.name!r} is {spec.type}; expected a float image tensor")
    fixed_batch, fixed_size = _check_input_shape(list(spec.shape), str(path))
    sidecar = _with_model_size(sidecar, fixed_size, str(path))
    dtype, input_name = dtypes[spec.type], spec.name

    def run(x: torch.Tensor) -> np.ndarray:
        array = x.detach().cpu().numpy().astype(dtype, copy=False)
        return session.run(None, {input_name: np.ascontiguousarray(array)})[0]

    segmenter = ExternalSegmenter(run, name=str(path), sidecar=sidecar, fixed_batch=fixed_batch,
                                  device=device)
    segmenter.providers = tuple(session.get_providers())
    return segmenter


def load_program(path: str | Path, device: str | torch.device = "cpu", sidecar: Sidecar | None = None
                 ) -> ExternalSegmenter:
    """A torch.export program (.pt2, torch.export.load), on `device`. `sidecar` default: the file
    beside it."""
    path = Path(path)
    sidecar = read_sidecar(path) if sidecar is None else sidecar
    try:
        with open(path, "rb") as f:  # a file object: torch.export.load warns about names not ending in .pt2
            program = torch.export.load(f)
    except Exception as exc:  # noqa: BLE001 (another zip, a truncated file, another torch's format)
        raise DvsnetError(f"{path} is not a readable torch.export program ({_first_line(exc)})") from None
    names = set(program.graph_signature.user_inputs)
    shapes = [node.meta["val"].shape for node in program.graph.nodes
              if node.op == "placeholder" and node.name in names
              and isinstance(node.meta.get("val"), torch.Tensor)]
    if len(names) != 1 or len(shapes) != 1:
        raise DvsnetError(f"{path}: the program takes {len(names)} inputs; dvsnet feeds one image batch "
                          "(B, 3, H, W)")
    shape = [int(d) if isinstance(d, int) else None for d in shapes[0]]
    fixed_batch, fixed_size = _check_input_shape(shape, str(path))
    sidecar = _with_model_size(sidecar, fixed_size, str(path))
    return ExternalSegmenter(program.module(), name=str(path), sidecar=sidecar, fixed_batch=fixed_batch,
                             device=device)


def _check_input_shape(shape: list, source: str) -> tuple[int | None, tuple[int, int] | None]:
    """(fixed batch or None, fixed (H, W) or None) of an input shape whose dims are ints or symbols."""
    if len(shape) != 4:
        raise DvsnetError(f"{source}: the model's input has rank {len(shape)} {tuple(shape)}; "
                          "expected (B, 3, H, W)")
    batch, channels, height, width = (d if isinstance(d, int) and d > 0 else None for d in shape)
    if channels not in (None, 3):
        raise DvsnetError(f"{source}: the model's input has {channels} channels; expected 3 (B, 3, H, W)")
    fixed_size = (height, width) if height and width else None
    return batch, fixed_size


def _with_model_size(sidecar: Sidecar, fixed: tuple[int, int] | None, source: str) -> Sidecar:
    """The sidecar with the model's own fixed input size; DvsnetError when the two disagree."""
    if fixed is None:
        return sidecar
    if sidecar.input_size is not None and tuple(sidecar.input_size) != fixed:
        raise DvsnetError(f"{source}: the sidecar's input_size {list(sidecar.input_size)} differs from "
                          f"the model's fixed input {list(fixed)}")
    return Sidecar(**{**asdict(sidecar), "input_size": fixed})
