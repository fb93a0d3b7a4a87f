"""FlowNetS at reduced width (the paper's FlowNet2-s role): a key crop and a current crop -> flow.

forward(key, cur): both (B, 3, h, w) float RGB in [0, 1], h and w multiples of 8. The pair is resized
by `input_scale` (0.5: the paper's code runs the flow net at half the region resolution), stacked to
6 channels, padded to a multiple of 64 and run through the FlowNetS encoder (conv1..conv6) and its
refinement decoder. Returns
  flow     (B, 2, h*s/4, w*s/4): (dx, dy) in pixels of its own grid, mapping each CURRENT pixel to its
           position in the KEY crop (warp the key by it to get the current crop); with s = 0.5 that
           grid is the segmenters' stride-8 logits grid.
  features {"conv4": (B,96,·,·) stride 16, "conv5": (B,128,·,·) stride 32, "conv6": (B,192,·,·) stride 64}
           (strides of the resized input).
In training mode `forward` also returns the coarser flow predictions (stride 64..4, each in pixels of
its own grid, cropped to the unpadded size) under features["multiscale"] for the multi-scale loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2), nn.LeakyReLU(0.1, inplace=True))


def deconv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.1, inplace=True))


class FlowNetS(nn.Module):
    """FlowNetS encoder-decoder; `widths` are conv1..conv6 channels (the original uses 64..1024)."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 96, 128, 192),
                 input_scale: float = 0.5) -> None:
        super().__init__()
        c1, c2, c3, c4, c5, c6 = widths
        self.input_scale = input_scale
        self.conv1 = conv(6, c1, 7, 2)
        self.conv2 = conv(c1, c2, 5, 2)
        self.conv3 = nn.Sequential(conv(c2, c3, 5, 2), conv(c3, c3))
        self.conv4 = nn.Sequential(conv(c3, c4, 3, 2), conv(c4, c4))
        self.conv5 = nn.Sequential(conv(c4, c5, 3, 2), conv(c5, c5))
        self.conv6 = nn.Sequential(conv(c5, c6, 3, 2), conv(c6, c6))
        d = 32  # decoder width
        self.predict6 = nn.Conv2d(c6, 2, 3, 1, 1)
        self.deconv5 = deconv(c6, d)
        self.predict5 = nn.Conv2d(c5 + d + 2, 2, 3, 1, 1)
        self.deconv4 = deconv(c5 + d + 2, d)
        self.predict4 = nn.Conv2d(c4 + d + 2, 2, 3, 1, 1)
        self.deconv3 = deconv(c4 + d + 2, d)
        self.predict3 = nn.Conv2d(c3 + d + 2, 2, 3, 1, 1)
        self.deconv2 = deconv(c3 + d + 2, d)
        self.predict2 = nn.Conv2d(c2 + d + 2, 2, 3, 1, 1)

    @staticmethod
    def _up_flow(flow: torch.Tensor) -> torch.Tensor:
        """Flow on a grid twice as fine: bilinear x2, values x2 (pixels of the finer grid)."""
        return 2 * F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, key: torch.Tensor, cur: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if key.shape != cur.shape or key.ndim != 4 or key.shape[1] != 3:
            raise ValueError(f"expected key and cur (B, 3, h, w) of one shape, "
                             f"got {tuple(key.shape)}, {tuple(cur.shape)}")
        # ints when run; under ONNX export traced sizes, so the exported graph takes any frame size
        height, width = key.shape[2], key.shape[3]
        x = torch.cat([key, cur], dim=1) - 0.5  # (B, 6, h, w)
        if self.input_scale != 1:
            height, width = _round(height * self.input_scale), _round(width * self.input_scale)
            x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
        pad_h, pad_w = (-height) % 64, (-width) % 64
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        c2 = self.conv2(self.conv1(x))  # stride 4
        c3 = self.conv3(c2)  # stride 8
        c4 = self.conv4(c3)  # stride 16
        c5 = self.conv5(c4)  # stride 32
        c6 = self.conv6(c5)  # stride 64
        flow6 = self.predict6(c6)
        y = torch.cat([c5, self.deconv5(c6), self._up_flow(flow6)], 1)
        flow5 = self.predict5(y)
        y = torch.cat([c4, self.deconv4(y), self._up_flow(flow5)], 1)
        flow4 = self.predict4(y)
        y = torch.cat([c3, self.deconv3(y), self._up_flow(flow4)], 1)
        flow3 = self.predict3(y)
        y = torch.cat([c2, self.deconv2(y), self._up_flow(flow3)], 1)
        flow2 = self.predict2(y) + self._up_flow(flow3)  # residual refinement at stride 4

        def crop(t: torch.Tensor, stride: int) -> torch.Tensor:
            # ceil(size / stride), written so that ONNX's integer division (which truncates) agrees
            return t[..., : (height + stride - 1) // stride, : (width + stride - 1) // stride]

        features = {"conv4": crop(c4, 16), "conv5": crop(c5, 32), "conv6": crop(c6, 64)}
        if self.training:
            features["multiscale"] = [crop(f, s) for f, s in
                                      ((flow6, 64), (flow5, 32), (flow4, 16), (flow3, 8), (flow2, 4))]
        return crop(flow2, 4), features


def _round(value: float | torch.Tensor) -> int | torch.Tensor:
    """round() for a size: Python's on a number, torch's (also half to even) on a size traced for ONNX."""
    return torch.round(value).to(torch.int64) if torch.is_tensor(value) else round(value)


def build_flownet() -> FlowNetS:
    """FlowNetS at reduced width, half input resolution (random init)."""
    return FlowNetS()
