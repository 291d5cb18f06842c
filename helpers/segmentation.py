"""Semantic segmentation: data as tensors, metrics, training, and the naive per-pixel baseline.

Metrics (a confusion matrix, per-class IoU and Dice, their means) live here for now; they could join
`helpers.metrics` later. Class maps are int64 `[..., H, W]` with 0 = background.
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset
from helpers.session import progress_bar

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def stack_semantic(dataset: Dataset, device: torch.device | str = "cpu"):
    """Render a whole `ShapesScenes` once: images float32 `[n, 3, H, W]`, masks int64 `[n, H, W]`."""
    if len(dataset) == 0:
        raise ValueError("dataset must hold at least one scene")
    images, masks = zip(*((image, target["semantic"]) for image, target in (dataset[i] for i in range(len(dataset)))))
    return torch.stack(images).to(device), torch.stack(masks).to(device)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def _check_maps(pred, target, num_classes):
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"pred and target must be tensors, got {type(pred).__name__} and {type(target).__name__}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {list(pred.shape)} and {list(target.shape)}")
    if pred.is_floating_point() or target.is_floating_point():
        raise TypeError(f"pred and target must be integer class maps (take argmax of scores first), got {pred.dtype} and {target.dtype}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    for name, t in (("pred", pred), ("target", target)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise ValueError(f"{name} must hold classes in 0..{num_classes - 1}, got values in {int(t.min())}..{int(t.max())}")


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Pixel counts int64 `[K, K]`: entry `[t, p]` counts pixels of true class t predicted as p.

    pred, target: integer class maps of the same shape (any shape), values in 0..K-1.
    """
    _check_maps(pred, target, num_classes)
    index = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(index.cpu(), minlength=num_classes**2).reshape(num_classes, num_classes)


def _check_confusion(confusion):
    if not isinstance(confusion, torch.Tensor) or confusion.dim() != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion must be a square [K, K] tensor, got {getattr(confusion, 'shape', type(confusion))}")


def iou_from_confusion(confusion: torch.Tensor) -> torch.Tensor:
    """Per-class IoU float64 `[K]`: true positives / (true + predicted - true positives).

    A class absent from both prediction and target gets NaN (it has no IoU; means skip it).
    """
    _check_confusion(confusion)
    c = confusion.double()
    tp = c.diagonal()
    union = c.sum(0) + c.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def dice_from_confusion(confusion: torch.Tensor) -> torch.Tensor:
    """Per-class Dice float64 `[K]`: 2 * true positives / (true + predicted); NaN where both are empty."""
    _check_confusion(confusion)
    c = confusion.double()
    tp = c.diagonal()
    total = c.sum(0) + c.sum(1)
    return torch.where(total > 0, 2 * tp / total.clamp(min=1), torch.full_like(tp, float("nan")))


def per_class_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """IoU of each class over all pixels given, float64 `[K]` (NaN for a class seen nowhere)."""
    return iou_from_confusion(confusion_matrix(pred, target, num_classes))


def mean_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """mIoU: the mean of the per-class IoUs over the classes that occur (background included)."""
    return float(per_class_iou(pred, target, num_classes).nanmean())


def per_class_dice(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Dice (= F1) of each class over all pixels given, float64 `[K]` (NaN for a class seen nowhere)."""
    return dice_from_confusion(confusion_matrix(pred, target, num_classes))


def mean_dice(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """The mean of the per-class Dice scores over the classes that occur."""
    return float(per_class_dice(pred, target, num_classes).nanmean())


def boundary_mask(semantic: torch.Tensor, width: int = 1) -> torch.Tensor:
    """Pixels within `width` pixels (a square neighbourhood) of a change of class: bool, same shape.

    semantic: int class map `[H, W]` or `[N, H, W]`.
    """
    if not isinstance(semantic, torch.Tensor) or semantic.dim() not in (2, 3) or semantic.is_floating_point():
        raise ValueError(f"semantic must be an integer [H, W] or [N, H, W] tensor, got {getattr(semantic, 'shape', type(semantic))}")
    s = semantic.float()[:, None] if semantic.dim() == 3 else semantic.float()[None, None]
    k = 2 * width + 1
    high = F.max_pool2d(s, k, stride=1, padding=width)
    low = -F.max_pool2d(-s, k, stride=1, padding=width)
    edge = (high != low)[:, 0]
    return edge if semantic.dim() == 3 else edge[0]


def boundary_accuracy(pred: torch.Tensor, target: torch.Tensor, width: int = 1) -> float:
    """Fraction of the pixels near a true class boundary (`boundary_mask(target, width)`) labelled right."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {list(pred.shape)} and {list(target.shape)}")
    near = boundary_mask(target, width)
    return float((pred[near] == target[near]).double().mean())


# --------------------------------------------------------------------------------------------
# Training and prediction of dense models ([B, 3, H, W] -> [B, K, H, W])
# --------------------------------------------------------------------------------------------


def train_segmenter(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, steps: int, batch_size: int = 16,
                    lr: float = 3e-3, seed: int = 0, flips: bool = True, desc: str = "training") -> list[float]:
    """Train a dense model with per-pixel cross-entropy, Adam and a one-cycle learning rate.

    images float `[n, 3, H, W]`, masks int64 `[n, H, W]` (same device as the model). Random flips
    (both axes) augment each batch when `flips`. Returns the loss of every step; leaves the model in
    eval mode.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if images.dim() != 4 or masks.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"images must be [n, 3, H, W] and masks [n, H, W], got {list(images.shape)} and {list(masks.shape)}")
    g = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    losses = []
    bar = progress_bar(range(steps), desc=desc)
    for _ in bar:
        idx = torch.randint(len(images), (batch_size,), generator=g).to(images.device)
        x, y = images[idx], masks[idx]
        if flips:
            if torch.rand(1, generator=g) < 0.5:
                x, y = x.flip(-1), y.flip(-1)
            if torch.rand(1, generator=g) < 0.5:
                x, y = x.flip(-2), y.flip(-2)
        loss = F.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    model.eval()
    return losses


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
    padded = F.pad(images, (r, r, r, r), mode="replicate")
    offsets = torch.arange(patch_size, device=images.device)
    rows = (ys[:, None] + offsets)[:, :, None]  # [B, p, 1]
    cols = (xs[:, None] + offsets)[:, None, :]  # [B, 1, p]
    return padded[n[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # [B, p, p, C] -> [B, C, p, p]


def train_patch_classifier(model: PatchClassifier, images: torch.Tensor, masks: torch.Tensor, steps: int,
                           batch_size: int = 256, lr: float = 3e-3, seed: int = 0, desc: str = "patch classifier") -> list[float]:
    """Train the per-pixel baseline on random pixels of the training scenes (cross-entropy).

    Each step draws `batch_size` random (scene, row, column) triples and the patches around them.
    Returns the loss of every step; leaves the model in eval mode.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    g = torch.Generator().manual_seed(seed)
    n_img, _, h, w = images.shape
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    losses = []
    bar = progress_bar(range(steps), desc=desc)
    for _ in bar:
        n = torch.randint(n_img, (batch_size,), generator=g).to(images.device)
        ys = torch.randint(h, (batch_size,), generator=g).to(images.device)
        xs = torch.randint(w, (batch_size,), generator=g).to(images.device)
        loss = F.cross_entropy(model(patches_at(images, n, ys, xs, model.patch_size)), masks[n, ys, xs])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    model.eval()
    return losses


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
