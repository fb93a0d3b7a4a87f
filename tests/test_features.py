"""dvsnet.features: the decision network's hand-made inputs, with known answers."""
import pytest
import torch

from dvsnet.features import half_resolution, key_segmentation_features, motion_features
from dvsnet.flow import DISFlow
from tests.test_flow import as_tensor, textured_image


def test_motion_features_have_a_fixed_size_and_see_motion():
    image = as_tensor(textured_image(96, 128))
    still = motion_features(image, image, torch.zeros(1, 2, 96, 128))
    assert still.shape == (1, 7, 16, 16)
    assert still.abs().max() < 1e-5
    moved = torch.roll(image, 4, dims=3)
    _, features = DISFlow()(image, moved)
    assert features.shape == (1, 7, 16, 16) and torch.isfinite(features).all()
    assert features[:, 2].mean() > 0.3  # |flow| / 8 ≈ 0.5


def test_key_segmentation_features_measure_uncertainty_and_class_boundaries():
    sure = torch.zeros(1, 19, 32, 32)
    sure[:, 3] = 20.0  # one class everywhere, certain
    features = key_segmentation_features(sure)
    assert features.shape == (1, 2, 16, 16)
    assert features.abs().max() < 1e-6  # no doubt, no boundary

    split = sure.clone()
    split[:, 3, :, 16:] = 0.0
    split[:, 5, :, 16:] = 20.0  # class 3 left, class 5 right: one vertical boundary at column 15
    boundary = key_segmentation_features(split)[0, 1]
    assert boundary[:, 7].min() == pytest.approx(0.5)  # pooled 2x2 cell holding columns 14-15
    assert boundary[:, [c for c in range(16) if c != 7]].abs().max() < 1e-6

    tied = torch.zeros(1, 19, 32, 32)
    tied[:, 0] = tied[:, 1] = 5.0  # two classes equally likely: margin 0, uncertainty 1
    assert key_segmentation_features(tied)[0, 0].min() == pytest.approx(1.0)


def test_half_resolution_is_a_2x2_average_pool():
    images = torch.rand(2, 2, 13, 18)  # odd height: the last row is dropped, as avg_pool2d drops it
    assert torch.allclose(half_resolution(images), torch.nn.functional.avg_pool2d(images, 2), atol=1e-6)
