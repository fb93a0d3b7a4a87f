"""Small real segmenters for engine tests (no trained weights needed)."""
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PALETTE = torch.tensor([
    [200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40], [40, 200, 200], [200, 40, 200],
], dtype=torch.float32) / 255


class ColourSegmenter(nn.Module):
    """Nearest-palette-colour classifier at output stride 8: logits = -squared distance to each colour."""

    num_classes = 19
    output_stride = 8

    def __init__(self):
        super().__init__()
        self.register_buffer("palette", PALETTE)
        self.calls: list[int] = []  # batch size of every call: how many regions were segmented

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls.append(images.shape[0])
        pooled = F.avg_pool2d(images, 8)  # (B, 3, h/8, w/8)
        distance = ((pooled[:, None] - self.palette[None, :, :, None, None]) ** 2).sum(2)  # (B, 6, h, w)
        logits = torch.full((images.shape[0], 19, *pooled.shape[-2:]), -10.0)
        logits[:, : len(self.palette)] = -distance * 50
        return logits


def blob_canvas(height: int, width: int, seed: int = 0) -> np.ndarray:
    """H×W×3 uint8: palette-coloured blobs with fine texture, so both flow and labels are well defined."""
    rng = np.random.default_rng(seed)
    field = cv2.GaussianBlur(rng.random((height, width, len(PALETTE))).astype(np.float32), (0, 0), 20)
    classes = field.argmax(-1)
    image = (PALETTE.numpy()[classes] * 255).astype(np.float32)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 1.0) * 40
    return (image + texture[..., None]).clip(0, 255).astype(np.uint8)


def panning_clip(frames: int, height: int = 128, width: int = 256, speed: float = 1.5, seed: int = 0):
    """A camera panning right over a blob canvas at `speed` px per frame."""
    canvas = blob_canvas(height, width + int(frames * speed) + 8, seed)
    return [canvas[:, round(i * speed):round(i * speed) + width].copy() for i in range(frames)]
