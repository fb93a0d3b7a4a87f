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


def test_unknown_flow_names_fail_with_the_valid_ones():
    with pytest.raises(DvsnetError, match="dis"):
        build_flow("raft")


@pytest.mark.parametrize("name", list(FLOWS))
def test_dn_variant_names_the_features_each_estimator_gives(name):
    from dvsnet.flow import dn_variant
    from dvsnet.models import DN_VARIANTS

    estimator = build_flow(name)
    assert dn_variant(name) == (getattr(estimator, "dn_variant", None) or estimator.name)
    assert dn_variant(name) in DN_VARIANTS
