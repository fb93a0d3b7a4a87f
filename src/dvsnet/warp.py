"""The warping function W (paper §3.1, from DFF): carry key-frame logits to the current frame by flow.

Flow convention (owned by the engine): `flow[:, 0]` = dx, `flow[:, 1]` = dy, in pixels of the grid the
flow lives on, mapping each CURRENT pixel p to its position p + flow(p) in the KEY frame. Warping is
therefore a backward warp: out(p) = key(p + flow(p)), bilinear, with borders clamped.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Key logits are warped on a grid of this stride, upsampled first when the segmenter's is coarser: a
# stride-8 grid smears thin objects and boundaries (benchmarks/bench_warp.py, synthetic val, key one frame
# back, DIS ultrafast: 63.8% mIoU warping at stride 8, 65.3% at stride 4, 65.5% at full resolution) and
# stride 4 adds only ~0.3 ms a frame.
WARP_STRIDE = 4
WARP_UPSCALE = 8 // WARP_STRIDE  # for stride-8 logits (the DN cache key records it)


def warp_upscale(stride: int) -> int:
    """How many times logits of output stride `stride` are upsampled before warping (1 when already as
    fine)."""
    return max(1, stride // WARP_STRIDE)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 2, H, W) flow in pixels of H×W -> (B, 2, h, w) flow in pixels of the h×w grid."""
    height, width = flow.shape[-2:]
    h, w = size
    if (h, w) == (height, width):
        return flow
    resized = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
    scale = torch.tensor([w / width, h / height], dtype=flow.dtype, device=flow.device)
    return resized * scale.view(1, 2, 1, 1)


def backward_warp(source: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """out(p) = source(p + flow(p)), bilinear, borders clamped. source (B, C, h, w), flow (B, 2, h, w)."""
    h, w = source.shape[-2:]
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    x = xs + flow[:, 0]  # (B, h, w) sample positions in pixels
    y = ys + flow[:, 1]
    # grid_sample with align_corners=True maps -1/+1 to the centres of the first/last pixels.
    grid = torch.stack((2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1), dim=-1)  # (B, h, w, 2)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=True)


def warp_logits(key_logits: torch.Tensor, flow: torch.Tensor, upscale: int = WARP_UPSCALE) -> torch.Tensor:
    """W(S_k, F): warp (B, K, h, w) key logits by (B, 2, H, W) image-grid flow on a grid `upscale` times
    finer than the logits' own; returns (B, K, h*upscale, w*upscale)."""
    if upscale != 1:
        key_logits = F.interpolate(key_logits.contiguous(memory_format=torch.channels_last),
                                   scale_factor=upscale, mode="bilinear", align_corners=False)
    return backward_warp(key_logits, resize_flow(flow, key_logits.shape[-2:]))


def upsample_logits(logits: torch.Tensor, size: tuple[int, int],
                    with_scores: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(B, K, h, w) logits -> (max-logit (B, H, W), labels (B, H, W) int64), bilinear upsample then argmax.

    Where `size` is an integer multiple of (h, w) the result comes from `_upsample_max_by_cells`, which
    gives the same labels and max-logits (to float rounding) at a fraction of the cost. with_scores=False
    returns None for the max-logit (one region needs no stitching by score) and skips its cost.
    """
    height, width = logits.shape[-2:]
    scale = size[0] // height if height else 0
    if (scale >= 1 and tuple(size) == (scale * height, scale * width)
            and logits.dtype in (torch.float32, torch.float64)):
        return _upsample_max_by_cells(logits, scale, with_scores)
    if tuple(logits.shape[-2:]) != tuple(size):
        # channels-last interpolation is ~3x faster on CPU for 19 channels
        logits = F.interpolate(logits.contiguous(memory_format=torch.channels_last), size=size,
                               mode="bilinear", align_corners=False)
    scores, labels = logits.max(dim=1)
    return (scores if with_scores else None), labels


def _cell_weights(scale: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(4, scale²) bilinear weights of a cell's corners (top-left, top-right, bottom-left, bottom-right)
    for the scale×scale output pixels between them, as F.interpolate(align_corners=False) places them."""
    offset = scale // 2
    lam = (torch.arange(scale, dtype=torch.float64) + offset + 0.5) / scale - 0.5
    ly, lx = lam.view(scale, 1), lam.view(1, scale)
    weights = torch.stack([(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx])
    return weights.reshape(4, scale * scale).to(dtype=dtype, device=device)


def _corners(grid: torch.Tensor) -> torch.Tensor:
    """(..., h+1, w+1) values of a padded grid -> (..., h, w, 4) the corners of each of its cells."""
    return torch.stack([grid[..., :-1, :-1], grid[..., :-1, 1:], grid[..., 1:, :-1], grid[..., 1:, 1:]],
                       dim=-1)


def _upsample_max_by_cells(logits: torch.Tensor, scale: int,
                           with_scores: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
    """upsample_logits for an integer scale, without upsampling all K channels.

    Bilinear upsampling fills each cell between four neighbouring logit vectors with their convex
    combinations, so where one class has the largest logit at all four corners it wins everywhere in
    the cell, with max-logit = the upsampled max-logit map. Only cells whose corners disagree (class
    boundaries, about a quarter of a street scene's cells) are upsampled in full. Border cells come
    from replicate padding, which is how F.interpolate clamps its samples.
    """
    batch, classes, height, width = logits.shape
    padded = F.pad(logits, (1, 1, 1, 1), mode="replicate")  # (B, K, h+2, w+2): (h+1) × (w+1) cells
    # one logit vector per padded pixel, contiguous: the class max reduces along memory (~4x faster than
    # over dim 1 of NCHW) and the mixed cells' corners are gathered from the same copy
    flat = padded.permute(0, 2, 3, 1).contiguous()  # (B, h+2, w+2, K)
    padded_max, padded_labels = flat.max(dim=-1)
    top_left = padded_labels[:, :-1, :-1]  # (B, h+1, w+1), one per cell
    mixed = ((top_left != padded_labels[:, :-1, 1:]) | (top_left != padded_labels[:, 1:, :-1])
             | (top_left != padded_labels[:, 1:, 1:]))
    weights = _cell_weights(scale, logits.dtype, logits.device)
    scores = _corners(padded_max) @ weights if with_scores else None  # (B, h+1, w+1, scale²)
    labels = top_left.unsqueeze(-1).expand(-1, -1, -1, scale * scale).clone()
    if mixed.any():
        # gather the mixed cells' corners only: stacking every cell's K x 4 corners and masking them
        # costs ~4x more than the whole rest of this function
        flat = flat.view(-1, classes)
        stride = width + 2  # padded pixels per row
        b, i, j = mixed.nonzero(as_tuple=True)
        corner = (b * (height + 2) + i) * stride + j
        corners = torch.stack([flat[corner], flat[corner + 1], flat[corner + stride],
                               flat[corner + stride + 1]], dim=1)  # (n, 4, K)
        # (scale², 4) @ (n, 4, K) -> (n, scale², K): the class max then runs along memory (~1.7x faster)
        mixed_scores, mixed_labels = (weights.T @ corners).max(dim=-1)  # (n, scale²)
        labels[mixed] = mixed_labels
        if scores is not None:
            scores[mixed] = mixed_scores
    start = scale - scale // 2  # the first cell starts half a cell above and left of the image

    def to_image(cells: torch.Tensor) -> torch.Tensor:
        image = cells.view(batch, height + 1, width + 1, scale, scale).permute(0, 1, 3, 2, 4)
        image = image.reshape(batch, (height + 1) * scale, (width + 1) * scale)
        return image[:, start:start + height * scale, start:start + width * scale].contiguous()

    return (None if scores is None else to_image(scores)), to_image(labels)


def logits_to_labels(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, K, h, w) logits -> (B, H, W) int64 labels (bilinear upsample to `size`, argmax)."""
    return upsample_logits(logits, size)[1]


def estimate_flow(estimator, key: torch.Tensor, cur: torch.Tensor,
                  flow_size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The flow path's first half, shared by the pipeline and the confidence-score generator: `estimator`
    (see dvsnet.flow) on key and current crops (B, 3, h, w) in [0, 1], both scaled to `flow_size` first when
    given. Returns (flow (B, 2, h', w') current -> key in pixels of its own grid, features or None)."""
    if flow_size is not None and tuple(flow_size) != tuple(key.shape[-2:]):
        key, cur = (F.interpolate(x, size=tuple(flow_size), mode="area") for x in (key, cur))
    return estimator(key, cur)


def warp_labels(key_logits: torch.Tensor, flow: torch.Tensor, crop_size: tuple[int, int],
                upscale: int = WARP_UPSCALE, with_scores: bool = True
                ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The flow path's second half: W(S_k, F) at `upscale` x the logits' grid, then bilinear upsampling to
    the crops' size and argmax. (B, K, h, w) key logits, (B, 2, h', w') flow -> (max-logit (B, Hc, Wc) or
    None without with_scores, labels (B, Hc, Wc) int64)."""
    return upsample_logits(warp_logits(key_logits, flow, upscale), crop_size, with_scores)
