"""The pipeline's configuration as one frozen value: what every caller builds a DVSNet from, and what every
result file (summary.json, the evaluate JSON, the sweep CSV) records, in one format (`to_record`).

A field holds a name (str) for the usual case; the Python API may also put an object there (a segmenter
module, a flow estimator, a policy object). Such an object is described by its name or repr in records.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvsnet.errors import DvsnetError
from dvsnet.regions import STITCH_MODES

AUTO_GRID = "auto"
# grid "auto" cuts a frame into regions of about the paper's size (§4.5: a 2x2 grid on 1024x2048 Cityscapes
# frames, 512x1024 px regions): smaller regions lose the context the segmenter needs. On frames up to 512 px
# wide a 2x2 grid alone cost 25-37 points of agreement with per-frame output on real clips
# (docs/real-video.md).
AUTO_REGION_PX = (512, 1024)
# A dn:T policy re-segments a region whose key frame is this many frames old, whatever the DN says: on real
# footage a DN trained elsewhere can trust stale keys long after the segmenter's own output moved on
# (docs/real-video.md: the key-age cap). 0 in PipelineConfig.max_key_age turns it off.
DN_MAX_KEY_AGE = 10
# With online self-calibration (PipelineConfig.online, dvsnet.online) the calibrated scores set the schedule
# and the cap is only a safety net: a key is re-segmented after at most this many frames (2 s at 30
# frames/s).
ONLINE_MAX_KEY_AGE = 60
# overlap of neighbouring regions (paper §4.5): 64 px at 2048 px frame width, scaled with the width
PAPER_OVERLAP_PX, PAPER_WIDTH_PX = 64, 2048


def default_overlap(width: int) -> int:
    """The paper's 64 px of overlap at 2048 px frame width, scaled to `width` (16 px at 512)."""
    return round(PAPER_OVERLAP_PX * width / PAPER_WIDTH_PX)


def auto_grid(height: int, width: int) -> tuple[int, int]:
    """Grid "auto": regions of about AUTO_REGION_PX (1x1 up to 767x1535 px, 2x2 at 1024x2048 and
    1080x1920)."""
    return max(1, round(height / AUTO_REGION_PX[0])), max(1, round(width / AUTO_REGION_PX[1]))


def format_grid(grid: tuple[int, int] | str) -> str:
    """(2, 2) -> '2x2': how every result file writes a grid ("auto" stays "auto")."""
    return grid if isinstance(grid, str) else f"{grid[0]}x{grid[1]}"


def parse_grid(text: str) -> tuple[int, int]:
    """'2x2' (or '2×2') -> (2, 2): rows x columns, each >= 1; DvsnetError otherwise."""
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        rows, cols = (int(p) for p in parts)
    except ValueError:
        raise DvsnetError(f"grid must look like RxC (e.g. 2x2), got {text!r}") from None
    if rows < 1 or cols < 1:
        raise DvsnetError(f"grid rows and columns must be >= 1, got {text!r}")
    return rows, cols


def describe(part: Any) -> str | None:
    """A record entry for a name, a path, or an object (policy objects print as their policy string)."""
    if part is None:
        return None
    if isinstance(part, (str, int, float, Path)):
        return str(part)
    for attribute in ("name", "arch"):  # flow estimators have a name, our segmenters an arch
        name = getattr(part, attribute, None)
        if isinstance(name, str):
            return name
    if hasattr(part, "parameters"):  # a torch module's repr is its whole layer list
        return type(part).__name__
    if type(part).__repr__ is not object.__repr__:
        return repr(part)
    return type(part).__name__


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that configures a DVSNet (the meaning of each field: dvsnet.pipeline.DVSNet).

    segmenter: "fast" | "accurate" | weights path | a segmenter callable.
    flow: a flow estimator name (dvsnet.flow.FLOWS) or estimator callable.
    policy: a policy string (dvsnet.policies) or policy object.
    grid: (rows, cols), or "auto": regions of about 512x1024 px (auto_grid), resolved per frame size by
    `grid_at`. overlap: px grown on inner region edges; None = default_overlap(frame width),
    resolved by `overlap_px` (the one place that does). stitch: "max-logit" | "core".
    dn: decision network of a dn:T policy (shipped variant name or .safetensors path); None = the one
    shipped for the flow estimator. device: "auto" | "cpu" | "cuda[:N]" | torch.device; None = where the
    segmenter's weights are (the CPU for a name). flow_width: px the flow runs at (None: full width).
    max_key_age: frames after which a region's key is re-segmented whatever the policy says; None = the
    policy's own (for dn:T ONLINE_MAX_KEY_AGE with online calibration, DN_MAX_KEY_AGE without; no cap for
    the others), 0 = no cap; resolved by `key_age_cap`.
    online: a dn policy calibrates its DN on the video while it runs (dvsnet.online; docs/adaptive.md).
    backend: "auto" | "torch" | "onnxruntime", precision: "auto" | "fp32" | "bf16" | "int8": what runs our
    segmenter (dvsnet.backends; auto: ONNX Runtime on the CPU, bf16 where the CPU has it natively).
    """

    segmenter: Any = "fast"
    flow: Any = "dis"
    policy: Any = "dn:0.92"
    grid: tuple[int, int] | str = AUTO_GRID
    overlap: int | None = None
    stitch: str = "max-logit"
    dn: str | Path | None = None
    device: Any = None
    flow_width: int | None = None
    max_key_age: int | None = None
    backend: str = "auto"
    precision: str = "auto"
    online: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.grid, str) and self.grid.strip().lower() == AUTO_GRID:
            grid = AUTO_GRID
        else:
            grid = parse_grid(self.grid) if isinstance(self.grid, str) else tuple(int(n) for n in self.grid)
            if len(grid) != 2 or min(grid) < 1:
                raise DvsnetError(f"grid must be (rows, cols), each >= 1, or 'auto', got {self.grid!r}")
        object.__setattr__(self, "grid", grid)
        if self.overlap is not None and (not isinstance(self.overlap, int) or self.overlap < 0):
            raise DvsnetError(f"overlap must be a whole number of pixels >= 0 or None, got {self.overlap!r}")
        if self.stitch not in STITCH_MODES:
            raise DvsnetError(f"unknown stitch mode {self.stitch!r}; valid: {', '.join(STITCH_MODES)}")
        if self.flow_width is not None and (not isinstance(self.flow_width, int) or self.flow_width < 16):
            raise DvsnetError(f"flow_width must be a whole number of pixels >= 16 or None, "
                              f"got {self.flow_width!r}")
        if self.max_key_age is not None and (not isinstance(self.max_key_age, int) or self.max_key_age < 0):
            raise DvsnetError(f"max_key_age must be a whole number of frames >= 0 (0: no cap) or None, "
                              f"got {self.max_key_age!r}")
        if not isinstance(self.online, bool):
            raise DvsnetError(f"online must be True or False, got {self.online!r}")
        from dvsnet.backends import BACKENDS, PRECISIONS

        if self.backend not in BACKENDS:
            raise DvsnetError(f"unknown backend {self.backend!r}; valid: {', '.join(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise DvsnetError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")

    def grid_at(self, height: int, width: int) -> tuple[int, int]:
        """The grid for frames of height x width px (the one place "auto" is resolved)."""
        return auto_grid(height, width) if self.grid == AUTO_GRID else self.grid

    def overlap_px(self, width: int, height: int | None = None) -> int:
        """The overlap in px for frames `width` (x `height`) px; 0 on a 1x1 grid, which has no inner edge to
        grow (an "auto" grid is resolved when the height is given)."""
        grid = self.grid if height is None else self.grid_at(height, width)
        if grid == (1, 1):
            return 0
        return default_overlap(width) if self.overlap is None else self.overlap

    def key_age_cap(self, policy: Any) -> int | None:
        """Frames after which a region's key frame is re-segmented under `policy` (the parsed policy object):
        max_key_age, or for None the policy's own cap (for a plain dn:T: ONLINE_MAX_KEY_AGE when it calibrates
        online, a safety net, else DN_MAX_KEY_AGE); None = no cap."""
        if self.max_key_age is not None:
            return self.max_key_age or None
        from dvsnet.policies import DecisionNetwork

        if type(policy) is not DecisionNetwork:
            return None
        return ONLINE_MAX_KEY_AGE if policy.online is not None else DN_MAX_KEY_AGE

    def per_frame(self) -> PipelineConfig:
        """The per-frame reference of this configuration, the one every speed-up and agreement is measured
        against (docs/design.md §5, dvsnet.runner): the same segmenter on every whole frame (policy "always",
        grid 1x1, no overlap, no decision network) on the same backend, precision and device."""
        return self.replace(policy="always", grid=(1, 1), overlap=None, dn=None)

    def replace(self, **changes: Any) -> PipelineConfig:
        """A copy with some fields changed (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    def to_record(self, width: int | None = None, height: int | None = None) -> dict[str, Any]:
        """The config as result files record it: names, grid as 'RxC' (an "auto" grid resolved when the frame
        size is known, with grid_default saying so), overlap in px when the frame width is known (with
        overlap_default saying whether it came from the default), max_key_age as given (None: the
        policy's)."""
        from dvsnet.policy_strings import describe_policy

        sized = width is not None and height is not None
        return {
            "segmenter": describe(self.segmenter), "flow": describe(self.flow),
            "policy": describe_policy(self.policy),
            "grid": format_grid(self.grid_at(height, width) if sized else self.grid),
            "grid_default": self.grid == AUTO_GRID,
            "overlap": self.overlap if width is None else self.overlap_px(width, height),
            "overlap_default": self.overlap is None, "stitch": self.stitch,
            "dn": describe(self.dn), "device": describe(self.device), "flow_width": self.flow_width,
            "max_key_age": self.max_key_age, "backend": self.backend, "precision": self.precision,
            "online": self.online,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PipelineConfig:
        """The config back from `to_record`'s dict (extra keys are ignored; an overlap the default
        resolved is read as the default again; a record from before the backends, which ran torch in
        fp32, reads as backend "torch", precision "fp32"; one from before online calibration as online
        False)."""
        overlap = None if record.get("overlap_default") else record.get("overlap")
        grid = AUTO_GRID if record.get("grid_default") else record.get("grid", (2, 2))  # older records: 2x2
        max_key_age = record.get("max_key_age")
        return cls(
            segmenter=record.get("segmenter", "fast"), flow=record.get("flow", "dis"),
            policy=record.get("policy", "dn:0.92"), grid=grid, max_key_age=None if max_key_age in (None, "")
            else int(max_key_age),
            overlap=None if overlap is None else int(overlap), stitch=record.get("stitch", "max-logit"),
            dn=record.get("dn"), device=record.get("device"),
            flow_width=None if record.get("flow_width") in (None, "") else int(record["flow_width"]),
            backend=record.get("backend") or "torch", precision=record.get("precision") or "fp32",
            online=_as_bool(record.get("online", False)),
        )


def _as_bool(value: Any) -> bool:
    """A record's boolean, also as a CSV cell writes it ("True", "False", "1", "0", "")."""
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")


DEFAULT_CONFIG = PipelineConfig()
