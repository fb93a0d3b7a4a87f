import cv2
import numpy as np
import pytest
import torch

from dvsnet.errors import DvsnetError
from dvsnet.flow import (
    DIS_PRESETS,
    FLOWS,
    DISFlow,
    build_flow,
    half_resolution,
    key_segmentation_features,
    motion_features,
)


def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3)).astype(np.float32)
    return (cv2.GaussianBlur(noise, (0, 0), 2.0) * 255 * 3 - 255).clip(0, 255).astype(np.uint8)


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("preset", list(DIS_PRESETS))
@pytest.mark.parametrize("shift", [(3, 0), (-2, 4)])
def test_dis_recovers_a_pure_translation_with_the_engine_sign_convention(preset, shift):
    dx, dy = shift
    big = textured_image(160, 220)
    key = big[20:148, 20:212]
    cur = big[20 - dy:148 - dy, 20 - dx:212 - dx]  # cur(p) = key(p - shift): content moved by +shift
    flow, _ = DISFlow(preset)(as_tensor(key), as_tensor(cur))
    interior = flow[0, :, 16:-16, 16:-16]
    # current pixel p sits at p - shift in the key frame
    assert torch.allclose(interior[0].median(), torch.tensor(-float(dx)), atol=0.5)
    assert (interior[0] + dx).abs().mean() < 0.5
    assert (interior[1] + dy).abs().mean() < 0.5


def test_motion_features_have_a_fixed_size_and_see_motion():
    image = as_tensor(textured_image(96, 128))
    still = motion_features(image, image, torch.zeros(1, 2, 96, 128))
    assert still.shape == (1, 7, 16, 16)
    assert still.abs().max() < 1e-5
    moved = torch.roll(image, 4, dims=3)
    _, features = DISFlow()(image, moved)
    assert features.shape == (1, 7, 16, 16) and torch.isfinite(features).all()
    assert features[:, 2].mean() > 0.3  # |flow| / 8 ≈ 0.5


def test_unknown_flow_names_fail_with_the_valid_ones():
    with pytest.raises(DvsnetError, match="dis"):
        build_flow("raft")


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


@pytest.mark.parametrize("name", list(FLOWS))
def test_dn_variant_names_the_features_each_estimator_gives(name):
    from dvsnet.flow import dn_variant
    from dvsnet.models import DN_VARIANTS

    estimator = build_flow(name)
    assert dn_variant(name) == (getattr(estimator, "dn_variant", None) or estimator.name)
    assert dn_variant(name) in DN_VARIANTS
