"""The threshold table of a calibrated decision network: one type for calibration.json, which `dvsnet
calibrate` writes beside the weights (dvsnet.calibrate) and the target controllers read (dvsnet.control).

A row per threshold T of dn:T, measured on held-out clips against the per-frame reference in one run
(dvsnet.runner):
    threshold             T
    predicted_agreement   what the DN expects: per frame, `predicted_agreement`; mean over frames
    measured_agreement    mean share of pixels equal to the per-frame reference's labels
    seg_share             share of regions segmented ("regions_segmented" in older tables)
    fps, fps_per_frame    the row's and the reference's frames / pipeline second
    speedup               reference pipeline time / the row's
Agreements and shares are fractions in [0, 1].
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dvsnet.errors import DvsnetError

TABLE_FILE = "calibration.json"  # beside the weights it describes


def predicted_agreement(paths: Sequence[str], scores: Sequence[float | None], weights: np.ndarray,
                        bias: float = 0.0) -> float:
    """A frame's agreement with per-frame output as its DN expects it: Σ_r w_r · (1 if region r is segmented
    else its score + bias, clipped to [0, 1]); weights (R,): each region's share of the frame's cells
    (dvsnet.regions.core_shares)."""
    expected = [1.0 if path == "seg" else min(max(score + bias, 0.0), 1.0)
                for path, score in zip(paths, scores)]
    return float(np.dot(weights, expected))


@dataclass(frozen=True)
class ThresholdRow:
    """One threshold's figures (see the module docstring)."""

    threshold: float
    predicted_agreement: float
    measured_agreement: float
    seg_share: float
    fps: float
    fps_per_frame: float
    speedup: float

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ThresholdRow:
        """A row of calibration.json; older tables name seg_share "regions_segmented"."""
        share = record["seg_share"] if "seg_share" in record else record["regions_segmented"]
        return cls(threshold=float(record["threshold"]),
                   predicted_agreement=float(record["predicted_agreement"]),
                   measured_agreement=float(record["measured_agreement"]), seg_share=float(share),
                   fps=float(record["fps"]), fps_per_frame=float(record["fps_per_frame"]),
                   speedup=float(record["speedup"]))

    def to_record(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class CalibrationTable:
    """The rows of a calibration table, by threshold, and the weights file they belong to (its name)."""

    rows: tuple[ThresholdRow, ...]
    weights: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(sorted(self.rows, key=lambda row: row.threshold)))

    @classmethod
    def read(cls, dn_file: str | Path | None) -> CalibrationTable | None:
        """The table in the calibration.json beside the DN file `dn_file`, or None when there is none (a
        shipped DN, a DN from `dvsnet train dn`), it is another weights file's, or it has no rows."""
        if dn_file is None or not str(dn_file).endswith(".safetensors"):
            return None
        path = Path(dn_file).with_name(TABLE_FILE)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            table = cls.from_record(record)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DvsnetError(f"cannot read the calibration table {path}: {exc!r}") from None
        if table.weights not in (None, Path(dn_file).name) or not table.rows:
            return None  # the table of other weights in the same folder
        return table

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CalibrationTable:
        """The table of calibration.json's `weights` and `thresholds` entries."""
        return cls(tuple(ThresholdRow.from_record(row) for row in record.get("thresholds") or ()),
                   record.get("weights"))

    def to_records(self) -> list[dict[str, float]]:
        """calibration.json's `thresholds`."""
        return [row.to_record() for row in self.rows]

    def row_at(self, threshold: float) -> ThresholdRow | None:
        return next((row for row in self.rows if row.threshold == threshold), None)

    def threshold_where(self, column: str, target: float, *, reaching: Callable[[Iterable[float]], float],
                        otherwise: Callable[[Iterable[float]], float]) -> float | None:
        """`reaching` (min or max) of the thresholds of the rows whose `column` >= target; with none,
        `otherwise` of all the thresholds; None for an empty table."""
        if not self.rows:
            return None
        good = [row.threshold for row in self.rows if getattr(row, column) >= target]
        return reaching(good) if good else otherwise(row.threshold for row in self.rows)
