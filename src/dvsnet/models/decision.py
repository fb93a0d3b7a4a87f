"""Decision network (paper §3.4, Fig. 6): one conv layer, then three fully connected layers.

DecisionNet(in_channels, in_size=(h, w)) maps features (B, C, h, w) to the expected confidence score
(B,) in [0, 1] (sigmoid). The caller (the engine) resizes its features to `in_size` with adaptive
average pooling before calling it; `forward` does the same pooling itself when the size differs, so
any feature size is accepted.

Input variants (which features feed the DN), recorded in each weights file's metadata. At inference a
variant reads the features of the flow estimator (dvsnet.flow.FLOWS) whose `name` is the variant without
"-keyseg"; weights ship for dis and flownet-conv6 only, the others come from `dvsnet train dn --variant`:
  dis                 hand-made motion features of the DIS flow (dvsnet.features.motion_features)   --flow dis
  dis-keyseg          dis + the key segmentation's uncertainty and class boundaries             --flow dis
                      (dvsnet.features.key_segmentation_features; the policy appends them)
  flownet-conv4/5/6   FlowNetS encoder features after conv4 / conv5 / conv6 (paper Table 2)
                      (96 / 128 / 192 channels)              --flow flownet-conv4 / flownet-conv5 / flownet
  flownet-image-flow  key image + flownet flow (paper Table 2, last row; 5 channels) --flow flownet-image-flow
  mv                  the codec's motion vectors chained from the key (dvsnet.flow_mv.MV_FEATURES;   --flow mv
                      10 channels, no pixel read); `dis` features serve --flow mv as well
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DIS_VARIANTS: tuple[str, ...] = ("dis", "dis-keyseg")
FLOWNET_VARIANTS: tuple[str, ...] = ("flownet-conv4", "flownet-conv5", "flownet-conv6", "flownet-image-flow")
MV_VARIANTS: tuple[str, ...] = ("mv",)
DN_VARIANTS: tuple[str, ...] = DIS_VARIANTS + FLOWNET_VARIANTS + MV_VARIANTS
KEYSEG_SUFFIX = "-keyseg"  # a "<flow features>-keyseg" DN also reads the key segmentation's summary


class DecisionNet(nn.Module):
    """conv3x3 (stride 1) + ReLU -> flatten -> FC 256 -> FC 64 -> FC 1 -> sigmoid."""

    def __init__(self, in_channels: int, in_size: tuple[int, int] = (16, 16), conv_channels: int = 32,
                 hidden: tuple[int, int] = (256, 64), variant: str | None = None) -> None:
        super().__init__()
        self.variant = variant  # which features it was trained on (see the module docstring)
        self.reads_key_segmentation = variant is not None and variant.endswith(KEYSEG_SUFFIX)
        self.in_channels = in_channels
        self.in_size = tuple(in_size)
        self.conv = nn.Conv2d(in_channels, conv_channels, 3, padding=1)
        self.fc1 = nn.Linear(conv_channels * self.in_size[0] * self.in_size[1], hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], 1)
        # Normalisation of the raw features, fitted on the training set (per channel).
        self.register_buffer("feature_mean", torch.zeros(1, in_channels, 1, 1))
        self.register_buffer("feature_std", torch.ones(1, in_channels, 1, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 4 or features.shape[1] != self.in_channels:
            raise ValueError(f"expected features (B, {self.in_channels}, h, w), got {tuple(features.shape)}")
        if tuple(features.shape[2:]) != self.in_size:
            features = F.adaptive_avg_pool2d(features, self.in_size)
        x = (features - self.feature_mean) / self.feature_std
        x = torch.relu(self.conv(x)).flatten(1)  # (B, conv_channels*h*w)
        x = torch.relu(self.fc2(torch.relu(self.fc1(x))))
        return torch.sigmoid(self.fc3(x)).squeeze(1)  # (B,) expected confidence score
