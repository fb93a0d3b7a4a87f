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
    """Nearest-palette-colour classifier at output stride `stride` (default 8): logits = -squared distance
    to each colour. `input_multiple`, when given, is the size its images must be a multiple of (checked)."""

    num_classes = 19

    def __init__(self, stride: int = 8, input_multiple: int | None = None):
        super().__init__()
        self.output_stride = stride
        if input_multiple is not None:
            self.input_multiple = input_multiple
        self.register_buffer("palette", PALETTE)
        self.calls: list[int] = []  # batch size of every call: how many regions were segmented
        self.sizes: list[tuple[int, int]] = []  # image size of every call

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls.append(images.shape[0])
        self.sizes.append(tuple(images.shape[2:]))
        multiple = getattr(self, "input_multiple", self.output_stride)
        assert images.shape[2] % multiple == 0 and images.shape[3] % multiple == 0, images.shape
        pooled = F.avg_pool2d(images, self.output_stride)  # (B, 3, h/s, w/s)
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
