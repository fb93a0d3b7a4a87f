"""Light residual backbones with output stride 8 (dilated last stage), shared by every segmenter.

Input: (B, 3, H, W) float32, already normalised. Output: (B, C, H/8, W/8) features, C = `out_channels`.
H and W must be multiples of 8. Stages: stem (stride 2) -> stage 1 (stride 4) -> stage 2 (stride 8)
-> stage 3 (stride 8, dilation 2, the DeepLab way of keeping resolution while growing the receptive field).
"""
from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU; 'same' padding for odd kernels."""
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with a residual; a 1x1 projection when channels or stride change."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(cin, cout, 3, stride, dilation)
        self.conv2 = nn.Sequential(
            nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.project = None
        if cin != cout or stride != 1:
            self.project = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                         nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.project is None else self.project(x)
        return torch.relu(self.conv2(self.conv1(x)) + shortcut)


class Backbone(nn.Module):
    """Stem + three residual stages; `widths` = (stem, stage1, stage2, stage3), `depths` = blocks per stage.

    forward(x (B,3,H,W)) -> (B, widths[3], H/8, W/8).
    """

    def __init__(self, widths: tuple[int, int, int, int], depths: tuple[int, int, int]) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.out_channels = w3
        self.stem = conv_bn_relu(3, w0, 3, stride=2)  # H/2
        self.stage1 = self._stage(w0, w1, depths[0], stride=2, dilation=1)  # H/4
        self.stage2 = self._stage(w1, w2, depths[1], stride=2, dilation=1)  # H/8
        self.stage3 = self._stage(w2, w3, depths[2], stride=1, dilation=2)  # H/8, dilated
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _stage(cin: int, cout: int, depth: int, stride: int, dilation: int) -> nn.Sequential:
        blocks = [BasicBlock(cin, cout, stride, dilation)]
        blocks += [BasicBlock(cout, cout, 1, dilation) for _ in range(depth - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage3(self.stage2(self.stage1(self.stem(x))))

    def forward_with_low(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(stage-1 features (B, widths[1], H/4, W/4), output (B, widths[3], H/8, W/8)), for a decoder."""
        low = self.stage1(self.stem(x))
        return low, self.stage3(self.stage2(low))
