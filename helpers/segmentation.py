"""Semantic segmentation: prediction and the naive per-pixel baseline (with its
mini-batches for `helpers.train.fit`). The metrics (IoU, Dice, boundary accuracy) are in `helpers.metrics`.

Class maps are int64 `[..., H, W]` with 0 = background.
"""

from __future__ import annotations

import time
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------------------------
# Prediction of dense models ([B, 3, H, W] -> [B, K, H, W])
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def predict_masks(model: nn.Module, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Class maps int64 `[n, H, W]`: the argmax of a dense model's scores, in eval mode."""
    model.eval()
    return torch.cat([model(images[i : i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])


# --------------------------------------------------------------------------------------------
# The naive baseline: classify each pixel from the patch around it
# --------------------------------------------------------------------------------------------


class PatchClassifier(nn.Module):
    """A small CNN that labels the centre pixel of a `patch_size x patch_size` patch.

    `[B, 3, p, p]` -> class scores `[B, num_classes]`. Unpadded 3x3 convolutions, one stride-2, then
    global average pooling and a linear layer.
    """

    def __init__(self, num_classes: int = 4, patch_size: int = 15, width: int = 24):
        super().__init__()
        if not isinstance(patch_size, int) or patch_size < 9 or patch_size % 2 == 0:
            raise ValueError(f"patch_size must be an odd int of at least 9, got {patch_size!r}")
        self.patch_size = patch_size
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, 3), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        if patches.dim() != 4 or patches.shape[-2:] != (self.patch_size, self.patch_size):
            raise ValueError(f"patches must be [B, C, {self.patch_size}, {self.patch_size}], got {list(patches.shape)}")
        return self.classifier(self.features(patches).mean(dim=(2, 3)))


def patches_at(images: torch.Tensor, n: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """The `patch_size` patches centred on pixels `(ys, xs)` of images `n`: `[B, C, p, p]`.

    images `[N, C, H, W]`; n, ys, xs int64 `[B]`. Outside the image the border pixels are repeated.
    """
    r = patch_size // 2
    padded = F.pad(images[n], (r, r, r, r), mode="replicate")  # only the B images read, not all N
    offsets = torch.arange(patch_size, device=images.device)
    rows = (ys[:, None] + offsets)[:, :, None]  # [B, p, 1]
    cols = (xs[:, None] + offsets)[:, None, :]  # [B, 1, p]
    which = torch.arange(len(n), device=images.device)[:, None, None]
    return padded[which, :, rows, cols].permute(0, 3, 1, 2)  # [B, p, p, C] -> [B, C, p, p]


def random_pixel_patches(images: torch.Tensor, masks: torch.Tensor, patch_size: int, batch_size: int,
                         seed: int = 0) -> Iterator[tuple]:
    """Endless mini-batches for the per-pixel baseline, for `helpers.train.fit`.

    Each batch draws `batch_size` random (scene, row, column) triples from images `[n, 3, H, W]`
    and masks `[n, H, W]`, and yields the patches around those pixels `[B, 3, p, p]` and the
    pixels' classes int64 `[B]`.
    """
    if images.dim() != 4 or masks.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"images must be [n, 3, H, W] and masks [n, H, W], got {list(images.shape)} and {list(masks.shape)}")
    g = torch.Generator().manual_seed(seed)
    n_img, _, h, w = images.shape
    while True:
        n, ys, xs = (torch.randint(high, (batch_size,), generator=g).to(images.device) for high in (n_img, h, w))
        yield patches_at(images, n, ys, xs, patch_size), masks[n, ys, xs]


class FullyConvolutional(nn.Module):
    """A `PatchClassifier` made fully convolutional (the FCN step): the same layers and weights, run
    once over a whole image instead of once per pixel.

    `[B, 3, H, W]` -> scores `[B, K, H, W]`; the score at pixel (y, x) is exactly what the patch
    classifier gives for the patch centred there (borders repeated, as `patches_at` does). The
    stride-2 convolution is computed at every position, so the layers after it read their inputs two
    positions apart (dilation 2), the patch's mean pool becomes a dilated mean over the same window,
    and the linear classifier a 1x1 convolution. Trained on whole scenes, every pixel of a scene
    gives a label to the loss: the same context as the patch classifier, the U-Net's budget of
    labelled pixels per step.
    """

    def __init__(self, classifier: "PatchClassifier"):
        super().__init__()
        conv1, conv2, conv3 = (m for m in classifier.features if isinstance(m, nn.Conv2d))
        if conv2.stride != (2, 2) or conv1.stride != (1, 1) or conv3.stride != (1, 1):
            raise ValueError("classifier must be a PatchClassifier (stride 1, 2, 1 convolutions)")
        self.classifier = classifier
        self.window = ((classifier.patch_size - 2 - 3) // 2 + 1) - 2  # the last map's side in a patch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {list(images.shape)}")
        f = self.classifier.features
        r = self.classifier.patch_size // 2
        x = F.pad(images, (r, r, r, r), mode="replicate")
        x = f[2](f[1](f[0](x)))
        x = f[5](f[4](F.conv2d(x, f[3].weight, f[3].bias)))              # the stride-2 conv at every position
        x = f[8](f[7](F.conv2d(x, f[6].weight, f[6].bias, dilation=2)))  # its inputs are 2 apart now
        taps = torch.zeros(1, 1, 2 * self.window - 1, 2 * self.window - 1, device=x.device, dtype=x.dtype)
        taps[..., ::2, ::2] = 1.0 / self.window**2
        x = F.conv2d(x, taps.expand(x.shape[1], 1, -1, -1), groups=x.shape[1])  # the mean pool, dilated
        linear = self.classifier.classifier
        return F.conv2d(x, linear.weight[:, :, None, None], linear.bias)


@torch.no_grad()
def predict_per_pixel(model: PatchClassifier, images: torch.Tensor, batch_size: int = 4096) -> tuple[torch.Tensor, int]:
    """Label every pixel of `images` `[n, 3, H, W]` by running `model` on the patch around it.

    Returns the class maps int64 `[n, H, W]` and the number of patches classified (one per pixel:
    the naive method's forward passes).
    """
    model.eval()
    n_img, _, h, w = images.shape
    p, r = model.patch_size, model.patch_size // 2
    out = torch.empty(n_img, h, w, dtype=torch.int64, device=images.device)
    for k in range(n_img):
        padded = F.pad(images[k : k + 1], (r, r, r, r), mode="replicate")
        patches = F.unfold(padded, p).transpose(1, 2).reshape(h * w, -1, p, p)  # one patch per pixel
        out[k] = torch.cat([model(patches[i : i + batch_size]).argmax(1) for i in range(0, h * w, batch_size)]).reshape(h, w)
    return out, n_img * h * w


def unet_weight_map(masks: torch.Tensor, w0: float = 10.0, sigma: float = 5.0) -> torch.Tensor:
    """The original U-Net's loss weights for one scene: `w(x) = w_c(x) + w0 exp(-(d1 + d2)^2 / (2 sigma^2))`.

    masks: instance masks `[N, H, W]` (bool or 0/1, N >= 2). `w_c` balances the two classes, object
    and background: 1 on background, (background pixels / object pixels) on objects. d1 and d2 are a
    pixel's distances (in pixels) to the nearest and the second nearest object; the border term is
    added on background pixels only, where it is large in the narrow gaps between two objects.
    Returns float32 `[H, W]`.
    """
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3 or len(masks) < 2:
        raise ValueError(f"masks must be [N, H, W] with N >= 2 objects, got {getattr(masks, 'shape', type(masks))}")
    masks = masks.bool()
    h, w = masks.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    pixels = torch.stack([ys.flatten(), xs.flatten()], 1)  # [H*W, 2]
    distances = torch.stack([torch.cdist(pixels, m.nonzero().float()).min(dim=1).values for m in masks], 1)  # [H*W, N]
    d1, d2 = distances.sort(dim=1).values[:, :2].T
    background = ~masks.any(dim=0)
    balance = torch.where(background, 1.0, float(background.sum()) / max(1, int((~background).sum())))
    border = w0 * torch.exp(-((d1 + d2) ** 2) / (2 * sigma**2)).reshape(h, w)
    return (balance + border * background).float()


def forward_flops(model: nn.Module, example: torch.Tensor) -> int:
    """Floating-point operations of one forward pass on `example`, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example)
    return int(counter.get_total_flops())


def timed(fn, *args, **kwargs):
    """Run `fn(*args, **kwargs)`; return `(result, seconds)` (CUDA work is waited for)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start
