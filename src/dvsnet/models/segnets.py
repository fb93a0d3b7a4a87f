"""Segmentation networks: `fast` (the paper's DeepLab-Fast role) and `accurate` (PSPNet role).

Both take images (B, 3, h, w) float32 RGB in [0, 1] (they normalise themselves), h and w multiples of
8 (`input_multiple`), and return logits (B, 19, h/s, w/s) over the Cityscapes train ids, s = `output_stride`.

- fast: light residual backbone (widths 48-96-160-256) + ASPP-lite head (1x1, 3x3 rate 6, 3x3 rate 12,
  image pooling), output stride 8, about 12.5 GMAC at 256x512 (~65 ms with 2 threads on the first 2-core
  dev machine, ~350 ms with 1 thread on the AVX2-only one; README, "What it costs").
- accurate: the same backbone and head + a DeepLabv3+ decoder that fuses the stride-4 stage-1 features
  into two more 3x3 convs, output stride 4. Deeper and slower than fast, and finer: stride-8 outputs smear
  thin objects (README, "Figures"). Its backbone and head can start from fast's weights
  (`dvsnet train seg --init-matching`).
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


class Decoder(nn.Module):
    """DeepLabv3+ decoder: upsample the head's stride-8 output to the stride-4 features, concat, two 3x3
    convs."""

    def __init__(self, low_channels: int, head_channels: int, reduced: int, cout: int) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(low_channels, reduced, 1)
        self.fuse = nn.Sequential(conv_bn_relu(head_channels + reduced, cout, 3), conv_bn_relu(cout, cout, 3))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        high = F.interpolate(high, size=low.shape[2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([high, self.reduce(low)], dim=1))


class SegNet(nn.Module):
    """Normalise -> backbone (stride 8) -> head [-> decoder (stride 4)] -> 1x1 classifier.

    forward: (B,3,h,w) -> (B,K,h/s,w/s), s = output_stride (8, or 4 with a decoder)."""

    input_multiple = 8

    def __init__(self, arch: str, backbone: Backbone, head: nn.Module, classifier_channels: int,
                 num_classes: int = NUM_CLASSES, decoder: Decoder | None = None) -> None:
        super().__init__()
        self.arch = arch
        self.num_classes = num_classes
        self.output_stride = 8 if decoder is None else 4
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.backbone = backbone
        self.head = head
        self.decoder = decoder
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(classifier_channels, num_classes, 1)  # the head's, or the decoder's

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, h, w), got {tuple(images.shape)}")
        if images.shape[2] % self.input_multiple or images.shape[3] % self.input_multiple:
            raise ValueError(f"image height and width must be multiples of {self.input_multiple}, "
                             f"got {tuple(images.shape[2:])}")
        x = (images - self.mean) / self.std
        if self.decoder is None:
            return self.classifier(self.dropout(self.head(self.backbone(x))))  # (B, K, h/8, w/8)
        low, high = self.backbone.forward_with_low(x)
        return self.classifier(self.dropout(self.decoder(low, self.head(high))))  # (B, K, h/4, w/4)


def build_fast(num_classes: int = NUM_CLASSES) -> SegNet:
    """DeepLab-Fast role: light backbone + ASPP-lite, output stride 8 (random init)."""
    # Sized for the method's economics (docs/design.md §2), not for FLOPs alone: on the first 2-core CPU the
    # whole warp path of a 256x512 frame costs ~6-9 ms, so a segmenter of ~20 ms (widths 24-128) leaves no
    # room for a speed-up; these widths cost ~60 ms per 256x512 frame there (~12.5 GMAC).
    backbone = Backbone(widths=(48, 96, 160, 256), depths=(2, 2, 3))
    head = ASPPLite(256, branch=128, rates=(6, 12), cout=160)
    return SegNet("fast", backbone, head, 160, num_classes)


def build_accurate(num_classes: int = NUM_CLASSES) -> SegNet:
    """PSPNet role: fast's backbone and ASPP-lite + a stride-4 decoder, output stride 4 (random init)."""
    # Backbone and head have fast's names and shapes, so training can start from fast's weights.
    backbone = Backbone(widths=(48, 96, 160, 256), depths=(2, 2, 3))
    head = ASPPLite(256, branch=128, rates=(6, 12), cout=160)
    decoder = Decoder(low_channels=96, head_channels=160, reduced=48, cout=128)
    return SegNet("accurate", backbone, head, 128, num_classes, decoder=decoder)


SEGMENTERS: dict[str, Callable[..., SegNet]] = {"fast": build_fast, "accurate": build_accurate}
