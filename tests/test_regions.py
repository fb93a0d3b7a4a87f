import numpy as np
import pytest
import torch

from dvsnet.config import default_overlap
from dvsnet.errors import DvsnetError
from dvsnet.regions import crop_regions, padded_size, region_grid, stitch

GRIDS = [(1, 1), (1, 2), (2, 2), (3, 3), (4, 4)]
SIZES = [(64, 128), (67, 131), (101, 77)]


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("size", SIZES)
def test_cores_partition_the_frame_and_crops_contain_their_core(grid, size):
    height, width = size
    covered = torch.zeros(height, width, dtype=torch.int32)
    for r in region_grid(height, width, *grid, overlap=7):
        covered[r.core_top:r.core_bottom, r.core_left:r.core_right] += 1
        assert r.top <= r.core_top < r.core_bottom <= r.bottom
        assert r.left <= r.core_left < r.core_right <= r.right
        # grown by the overlap on inner edges only
        assert r.top == max(0, r.core_top - 7) and r.right == min(width, r.core_right + 7)
    assert torch.all(covered == 1)


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("overlap", [0, 5, 16])
@pytest.mark.parametrize("mode", ["max-logit", "core"])
def test_stitching_the_crops_of_a_logit_map_returns_it_exactly(grid, size, overlap, mode):
    height, width = size
    logits = torch.randn(19, height, width)
    regions = region_grid(height, width, *grid, overlap)
    crops = crop_regions(logits, regions, padded_size(regions, 8))  # (R, 19, Hc, Wc)
    assert crops.shape[-2] % 8 == 0 and crops.shape[-1] % 8 == 0
    stitched = stitch(crops, crops.max(dim=1).values, regions, height, width, mode)
    assert np.array_equal(stitched, logits.numpy())


def test_max_logit_stitching_keeps_the_more_confident_region_in_the_overlap():
    regions = region_grid(8, 16, 1, 2, overlap=2)  # cores [0,8) and [8,16); crops [0,10) and [6,16)
    values = torch.stack([torch.zeros(1, 8, 10), torch.ones(1, 8, 10)])
    scores = torch.stack([torch.full((8, 10), 0.5), torch.full((8, 10), 0.9)])
    out = stitch(values, scores, regions, 8, 16, "max-logit")[0]
    assert (out[:, :6] == 0).all() and (out[:, 6:] == 1).all()  # right region wins its whole crop
    core = stitch(values, scores, regions, 8, 16, "core")[0]
    assert (core[:, :8] == 0).all() and (core[:, 8:] == 1).all()


def test_default_overlap_follows_the_paper_scaled_to_width():
    assert default_overlap(2048) == 64
    assert default_overlap(512) == 16
    assert default_overlap(256) == 8


@pytest.mark.parametrize("grid,overlap", [((0, 2), 0), ((2, 200), 0), ((2, 2), -1)])
def test_bad_grids_fail_clearly(grid, overlap):
    with pytest.raises(DvsnetError):
        region_grid(64, 128, *grid, overlap)


def test_grids_too_fine_for_the_frame_are_refused_with_the_largest_that_fits():
    from dvsnet.regions import check_grid, crop_pixels

    check_grid(576, 768, 14, 14, 24)  # fits: cells of 41x54 px, crops 3.8x the frame
    assert crop_pixels(576, 768, 14, 14, 24) <= 4 * 576 * 768 < crop_pixels(576, 768, 15, 15, 24)
    with pytest.raises(DvsnetError,
                       match=r"cells would be 2x3 px.*largest grid of that shape that fits is 14x14"):
        check_grid(576, 768, 200, 200, 24)
    with pytest.raises(DvsnetError, match=r"would hold 4.1x the frame's pixels.*fits is 14x14"):
        check_grid(576, 768, 15, 15, 24)
    with pytest.raises(DvsnetError, match="fits is 1x8"):
        check_grid(64, 128, 2, 16, 4)  # 32x8 px cells; the same 1:8 shape at 1x8 has 64x16 px cells
