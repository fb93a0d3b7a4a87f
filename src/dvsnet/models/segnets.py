"""Segmentation networks: `fast` (the paper's DeepLab-Fast role) and `accurate` (PSPNet role).

Both take images (B, 3, h, w) float32 RGB in [0, 1] (they normalise themselves), h and w multiples of
8, and return logits (B, 19, h/8, w/8) over the Cityscapes train ids (output stride 8).

- fast: light residual backbone (widths 48-96-160-256) + ASPP-lite head (1x1, 3x3 rate 6, 3x3 rate 12,
  image pooling), about 12.5 GMAC at 256x512 (~65 ms with 2 threads on the first 2-core dev machine,
  ~350 ms with 1 thread on the AVX2-only one; README, "What it costs").
- accurate: deeper, wider backbone (56-112-192-288, more blocks) + pyramid pooling head (bins 1, 2, 3, 6)
  + a 3x3 fusion conv; about 2x the cost of fast.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dvsnet.data.labels import NUM_CLASSES
from dvsnet.models.backbone import Backbone, conv_bn_relu

# ImageNet statistics: a fixed, conventional input normalisation (no pretrained weights involved).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class ASPPLite(nn.Module):
    """ASPP-lite (DeepLab): parallel 1x1, dilated 3x3 branches and image pooling, fused by a 1x1 conv."""

    def __init__(self, cin: int, branch: int, rates: tuple[int, ...], cout: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, branch, 1)] + [conv_bn_relu(cin, branch, 3, dilation=r) for r in rates]
        )
        self.pool = conv_bn_relu(cin, branch, 1)
        self.fuse = conv_bn_relu(branch * (len(rates) + 2), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        pooled = self.pool(F.adaptive_avg_pool2d(x, 1))  # (B, branch, 1, 1)
        outs.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        return self.fuse(torch.cat(outs, dim=1))


class PyramidPooling(nn.Module):
    """PSPNet pyramid pooling: pool to bins x bins, 1x1 conv, upsample, concat with input, 3x3 fuse."""

    def __init__(self, cin: int, branch: int, bins: tuple[int, ...], cout: int) -> None:
        super().__init__()
        self.bins = bins
        self.branches = nn.ModuleList([conv_bn_relu(cin, branch, 1) for _ in bins])
        self.fuse = conv_bn_relu(cin + branch * len(bins), cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        outs = [x]
        for bins, branch in zip(self.bins, self.branches):
            pooled = branch(F.adaptive_avg_pool2d(x, bins))
            outs.append(F.interpolate(pooled, size=size, mode="bilinear", align_corners=False))
        return self.fuse(torch.cat(outs, dim=1))


class SegNet(nn.Module):
    """Normalise -> backbone (stride 8) -> head -> 1x1 classifier. forward: (B,3,h,w) -> (B,K,h/8,w/8)."""

    output_stride = 8

    def __init__(self, arch: str, backbone: Backbone, head: nn.Module, head_channels: int,
                 num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.arch = arch
        self.num_classes = num_classes
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.backbone = backbone
        self.head = head
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(head_channels, num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, h, w), got {tuple(images.shape)}")
        if images.shape[2] % 8 or images.shape[3] % 8:
            raise ValueError(f"image height and width must be multiples of 8, got {tuple(images.shape[2:])}")
        x = (images - self.mean) / self.std
        return self.classifier(self.dropout(self.head(self.backbone(x))))  # (B, K, h/8, w/8)


def build_fast(num_classes: int = NUM_CLASSES) -> SegNet:
    """DeepLab-Fast role: light backbone + ASPP-lite, output stride 8 (random init)."""
    # Sized for the method's economics (DESIGN.md §2), not for FLOPs alone: on the first 2-core CPU the whole
    # warp path of a 256x512 frame costs ~6-9 ms, so a segmenter of ~20 ms (widths 24-128) leaves no room
    # for a speed-up; these widths cost ~60 ms per 256x512 frame there (~12.5 GMAC).
    backbone = Backbone(widths=(48, 96, 160, 256), depths=(2, 2, 3))
    head = ASPPLite(256, branch=128, rates=(6, 12), cout=160)
    return SegNet("fast", backbone, head, 160, num_classes)


def build_accurate(num_classes: int = NUM_CLASSES) -> SegNet:
    """PSPNet role: deeper, wider backbone + pyramid pooling head, output stride 8 (random init)."""
    # ~2x the cost of `fast` (see build_fast for why `fast` is as large as it is).
    backbone = Backbone(widths=(56, 112, 192, 288), depths=(2, 3, 4))
    head = PyramidPooling(288, branch=64, bins=(1, 2, 3, 6), cout=160)
    return SegNet("accurate", backbone, head, 160, num_classes)


SEGMENTERS: dict[str, Callable[..., SegNet]] = {"fast": build_fast, "accurate": build_accurate}
