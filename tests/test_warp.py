import torch

from dvsnet.warp import backward_warp, logits_to_labels, resize_flow, warp_logits


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
    warped = warp_logits(key_logits, flow)  # at stride 8: a shift of 2 cells
    expected = torch.roll(key_logits, shifts=2, dims=3)
    assert torch.allclose(warped[..., 2:], expected[..., 2:], atol=1e-5)
    labels = logits_to_labels(warped, (128, 256))
    expected_labels = logits_to_labels(expected, (128, 256))
    assert (labels[..., 24:] == expected_labels[..., 24:]).float().mean() > 0.999
