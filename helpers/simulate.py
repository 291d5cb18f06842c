"""A pretend detector: detections made from the ground truth with chosen faults, for studying metrics
(notebook 02) and error analysis without training a detector."""

from __future__ import annotations

import torch

from helpers.boxes import paired_box_iou
from helpers.data import NUM_CLASSES


def simulated_detections(targets: list, seed: int = 0, miss_rate: float = 0.1, jitter: float = 0.12,
                         duplicate_rate: float = 0.2, junk_per_image: float = 1.5, confusion: float = 0.05,
                         image_size: int = 64) -> list:
    """A pretend detector, for studying metrics without training one.

    For each ground-truth box: missed with probability `miss_rate`; otherwise a detection whose
    corners move by Gaussian noise of `jitter` x the box size, of the right class (a random one with
    probability `confusion`), scored higher the better it fits; sometimes (`duplicate_rate`) a second,
    worse copy. Plus on average `junk_per_image` random boxes with low-ish scores. Deterministic for a
    seed. Returns torchvision-style dicts (`boxes`, `scores`, `labels`).
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    for target in targets:
        gt, labels = target["boxes"].float(), target["labels"]
        keep = torch.rand(len(gt), generator=g) >= miss_rate
        copies = torch.cat([torch.ones(len(gt), dtype=torch.int64),
                            (torch.rand(len(gt), generator=g) < duplicate_rate).long()]) * keep.repeat(2).long()
        src = torch.arange(len(gt)).repeat(2).repeat_interleave(copies)
        noise = 1 + torch.arange(len(src)).ge(int(keep.sum())).float()  # duplicates are worse
        size = (gt[src, 2:] - gt[src, :2]).repeat(1, 2)
        boxes = gt[src] + torch.randn(len(src), 4, generator=g) * jitter * size * noise[:, None]
        boxes = torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:]) + 0.5], 1)
        fit = paired_box_iou(boxes, gt[src]) if len(src) else torch.zeros(0)
        scores = (0.3 + 0.6 * fit + 0.15 * torch.randn(len(src), generator=g)).clamp(0.01, 0.99)
        det_labels = torch.where(torch.rand(len(src), generator=g) < confusion,
                                 torch.randint(1, NUM_CLASSES + 1, (len(src),), generator=g), labels[src])
        n_junk = int(torch.poisson(torch.tensor([junk_per_image]), generator=g))
        xy = torch.rand(n_junk, 2, generator=g) * image_size * 0.8
        junk = torch.cat([xy, xy + 6 + torch.rand(n_junk, 2, generator=g) * image_size * 0.3], 1)
        out.append({
            "boxes": torch.cat([boxes, junk]).clamp(0, image_size),
            "scores": torch.cat([scores, (0.7 * torch.rand(n_junk, generator=g)).clamp(0.01, 1)]),
            "labels": torch.cat([det_labels, torch.randint(1, NUM_CLASSES + 1, (n_junk,), generator=g)]),
        })
    return out
