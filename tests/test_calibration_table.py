"""dvsnet.calibration_table: the table calibrate writes and the controllers read, and predicted agreement."""
import json

import numpy as np
import pytest

from dvsnet.calibration_table import CalibrationTable, ThresholdRow, predicted_agreement


def test_predicted_agreement_counts_segmented_regions_as_one_and_warped_ones_at_their_score():
    weights = np.array([0.5, 0.25, 0.25])
    assert predicted_agreement(["seg", "warp", "warp"], [None, 0.8, 0.6], weights) == pytest.approx(
        0.5 + 0.25 * 0.8 + 0.25 * 0.6)
    # a bias moves the warped regions' scores, clipped to [0, 1]
    assert predicted_agreement(["warp", "warp", "seg"], [0.9, 0.1, None], weights, bias=0.2) == pytest.approx(
        0.5 * 1.0 + 0.25 * 0.3 + 0.25)


def test_a_table_written_as_calibrate_writes_it_reads_back_sorted(tmp_path):
    rows = (ThresholdRow(0.9, 0.97, 0.96, 0.3, 20.0, 5.0, 4.0),
            ThresholdRow(0.5, 0.9, 0.85, 0.05, 40.0, 5.0, 8.0))
    table = CalibrationTable(rows, "dn.safetensors")
    assert [row.threshold for row in table.rows] == [0.5, 0.9]
    (tmp_path / "calibration.json").write_text(json.dumps({"weights": table.weights,
                                                          "thresholds": table.to_records()}))
    assert CalibrationTable.read(tmp_path / "dn.safetensors") == table
    assert table.to_records()[0] == {"threshold": 0.5, "predicted_agreement": 0.9, "measured_agreement": 0.85,
                                     "seg_share": 0.05, "fps": 40.0, "fps_per_frame": 5.0, "speedup": 8.0}
    assert table.threshold_where("measured_agreement", 0.9, reaching=min, otherwise=max) == 0.9
    assert table.threshold_where("measured_agreement", 0.99, reaching=min, otherwise=max) == 0.9
    assert CalibrationTable(()).threshold_where("fps", 1, reaching=min, otherwise=max) is None
