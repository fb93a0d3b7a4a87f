import pytest
import torch
import torch.nn.functional as F

from dvsnet.warp import backward_warp, logits_to_labels, resize_flow, upsample_logits, warp_logits


def test_zero_flow_is_the_identity():
    x = torch.randn(2, 19, 12, 20)
    assert torch.allclose(backward_warp(x, torch.zeros(2, 2, 12, 20)), x, atol=1e-5)


def test_integer_flow_equals_a_roll_in_the_interior():
    x = torch.randn(1, 5, 30, 40)
    flow = torch.zeros(1, 2, 30, 40)
    flow[:, 0], flow[:, 1] = 3, -2  # current pixel (y, x) comes from key pixel (y - 2, x + 3)
    out = backward_warp(x, flow)
    expected = torch.roll(x, shifts=(2, -3), dims=(2, 3))
    assert torch.allclose(out[..., 2:, :-3], expected[..., 2:, :-3], atol=1e-5)


def test_borders_are_clamped():
    x = torch.arange(10.0).view(1, 1, 1, 10).expand(1, 1, 4, 10).contiguous()
    flow = torch.zeros(1, 2, 4, 10)
    flow[:, 0] = 100  # far off the right edge
    assert torch.all(backward_warp(x, flow) == 9)


def test_resize_flow_rescales_displacements_to_the_new_grid():
    flow = torch.zeros(1, 2, 64, 128)
    flow[:, 0], flow[:, 1] = 16.0, -8.0
    small = resize_flow(flow, (8, 16))
    assert small.shape == (1, 2, 8, 16)
    assert torch.allclose(small[:, 0], torch.tensor(2.0)) and torch.allclose(small[:, 1], torch.tensor(-1.0))


def test_warping_stride_8_logits_by_image_flow_reproduces_the_translated_map():
    # a label map that moved 16 px right between key and current: flow(current) = -16 px in x
    key_logits = torch.randn(1, 19, 16, 32)
    flow = torch.zeros(1, 2, 128, 256)
    flow[:, 0] = -16.0
    warped = warp_logits(key_logits, flow, upscale=1)  # at stride 8: a shift of 2 cells
    expected = torch.roll(key_logits, shifts=2, dims=3)
    assert torch.allclose(warped[..., 2:], expected[..., 2:], atol=1e-5)
    labels = logits_to_labels(warped, (128, 256))
    expected_labels = logits_to_labels(expected, (128, 256))
    assert (labels[..., 24:] == expected_labels[..., 24:]).float().mean() > 0.999


def test_default_warp_runs_on_a_twice_finer_grid_and_keeps_the_translation():
    # the key map moved 12 px right: 1.5 cells at stride 8, exactly 3 cells at stride 4
    key_logits = torch.randn(1, 19, 16, 32)
    flow = torch.zeros(1, 2, 128, 256)
    flow[:, 0] = -12.0
    warped = warp_logits(key_logits, flow)
    assert warped.shape == (1, 19, 32, 64)
    fine = torch.nn.functional.interpolate(key_logits, scale_factor=2, mode="bilinear", align_corners=False)
    expected = torch.roll(fine, shifts=3, dims=3)
    assert torch.allclose(warped[..., 3:], expected[..., 3:], atol=1e-5)


def test_finer_warp_keeps_a_thin_object_that_the_stride_8_warp_smears():
    # a 4 px wide pole seen at stride 8 (the segmenter's own map), moved 4 px: warping the fine grid puts
    # the pole's peak where it belongs; warping the coarse one must interpolate half a cell
    height, width = 64, 128
    key_logits = torch.zeros(1, 2, height // 8, width // 8)
    key_logits[:, 1, :, 5] = 4.0  # pole in cell column 5 (pixels 40..47)
    key_logits[:, 0] = 1.0
    flow = torch.zeros(1, 2, height, width)
    flow[:, 0] = -4.0  # moved 4 px right
    truth = logits_to_labels(torch.roll(
        torch.nn.functional.interpolate(key_logits, scale_factor=8, mode="bilinear", align_corners=False),
        shifts=4, dims=3), (height, width))
    fine = logits_to_labels(warp_logits(key_logits, flow), (height, width))
    coarse = logits_to_labels(warp_logits(key_logits, flow, upscale=1), (height, width))
    assert torch.equal(fine, truth)
    assert (coarse == truth).float().mean() < 0.98  # the coarse warp widens the pole


def _upsample_then_max(logits: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False).max(dim=1)


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 8])
def test_upsample_logits_equals_full_upsampling_then_argmax(scale):
    # blocky class layout (whole cells agree) plus noise (cells on class boundaries do not): both paths
    torch.manual_seed(scale)
    layout = torch.randint(0, 7, (2, 1, 3, 4))
    logits = F.one_hot(layout, 7)[:, 0].permute(0, 3, 1, 2).float() * 4
    logits = F.interpolate(logits, size=(9, 11), mode="nearest") + torch.randn(2, 7, 9, 11)
    size = (9 * scale, 11 * scale)
    scores, labels = upsample_logits(logits, size)
    expected_scores, expected_labels = _upsample_then_max(logits, size)
    assert labels.shape == scores.shape == (2, *size) and labels.dtype == torch.int64
    assert torch.equal(labels, expected_labels)
    assert torch.allclose(scores, expected_scores, atol=1e-5)


def test_upsample_logits_to_a_size_that_is_not_a_multiple_still_upsamples_then_argmaxes():
    logits = torch.randn(1, 5, 6, 7)
    scores, labels = upsample_logits(logits, (20, 30))
    expected_scores, expected_labels = _upsample_then_max(logits, (20, 30))
    assert torch.equal(labels, expected_labels) and torch.allclose(scores, expected_scores, atol=1e-5)
