"""Boxes: validation, IoU, encoding against anchors, non-maximum suppression.

Conventions (torchvision's): a box is a row of four numbers `(x1, y1, x2, y2)` ("xyxy") with
x2 >= x1 and y2 >= y1. A set of boxes is a floating-point tensor `[N, 4]`; `N` may be 0.

Everything here gives exactly what `torchvision.ops` gives (the tests compare them), and is written
out so a student can read how it works.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

#: The largest log-scale change `decode_boxes` applies (torchvision's `bbox_xform_clip`), so a wild
#: prediction cannot make `exp` overflow.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def check_boxes(boxes, name: str = "boxes") -> torch.Tensor:
    """Validate a set of boxes and return it as a floating-point tensor `[N, 4]`.

    Raises TypeError for a non-tensor, ValueError (naming `name`) for the wrong shape, NaN or
    infinite coordinates, and x2 < x1 or y2 < y1. Integer tensors are converted to float32.
    """
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [N, 4], got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape [N, 4], got {list(boxes.shape)}")
    if boxes.dtype == torch.bool or boxes.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {boxes.dtype}")
    if not boxes.is_floating_point():
        boxes = boxes.float()
    if boxes.numel() == 0:
        return boxes
    if not bool(torch.isfinite(boxes).all()):
        row = int(torch.nonzero(~torch.isfinite(boxes))[0, 0])
        raise ValueError(f"{name} must hold finite numbers; row {row} is {boxes[row].tolist()}")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bool(bad.any()):
        row = int(torch.nonzero(bad)[0, 0])
        raise ValueError(f"{name} must have x2 >= x1 and y2 >= y1 (xyxy); row {row} is {boxes[row].tolist()}")
    return boxes


def _check_same_device(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.device != b.device:
        raise ValueError(f"{name_a} and {name_b} must be on the same device, got {a.device} and {b.device}")


# --------------------------------------------------------------------------------------------
# IoU
# --------------------------------------------------------------------------------------------


def iou_matrix(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """The IoU formula, without checks: boxes1 `[..., N, 4]`, boxes2 `[..., M, 4]` (xyxy) -> `[..., N, M]`.

    Leading dimensions broadcast, so a batch of box sets is one call. Entry `[..., i, j]` is
    area(b1_i ∩ b2_j) / area(b1_i ∪ b2_j); two zero-area boxes give 0/0 = NaN. `box_iou`,
    `paired_box_iou` and `helpers.metrics` all compute IoU here.
    """
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])  # [..., N]
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])  # [..., M]
    top_left = torch.max(boxes1[..., :, None, :2], boxes2[..., None, :, :2])  # [..., N, M, 2]
    bottom_right = torch.min(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])  # [..., N, M, 2]
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[..., :, None] + area2[..., None, :] - inter)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every pair: boxes1 `[N,4]`, boxes2 `[M,4]` (xyxy) -> `[N, M]`.

    Entry `[i, j]` is area(b1_i ∩ b2_j) / area(b1_i ∪ b2_j). Two zero-area boxes give 0/0 = NaN,
    as `torchvision.ops.box_iou` does.
    """
    boxes1 = check_boxes(boxes1, "boxes1")
    boxes2 = check_boxes(boxes2, "boxes2")
    _check_same_device(boxes1, boxes2, "boxes1", "boxes2")
    return iou_matrix(boxes1, boxes2)


def paired_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of matching rows: boxes1 `[N,4]`, boxes2 `[N,4]` (xyxy) -> `[N]`.

    Entry `i` is the IoU of `boxes1[i]` with `boxes2[i]`, i.e. the diagonal of `box_iou` without
    building the `[N, N]` matrix. Two zero-area boxes give NaN (0/0), like `box_iou`.
    """
    boxes1 = check_boxes(boxes1, "boxes1")
    boxes2 = check_boxes(boxes2, "boxes2")
    if boxes1.shape != boxes2.shape:
        raise ValueError(f"boxes1 and boxes2 must have the same shape [N, 4], got {list(boxes1.shape)} and {list(boxes2.shape)}")
    _check_same_device(boxes1, boxes2, "boxes1", "boxes2")
    return iou_matrix(boxes1[:, None], boxes2[:, None])[:, 0, 0]  # N sets of one box each


# --------------------------------------------------------------------------------------------
# Encoding against anchors (Faster R-CNN's box coder)
# --------------------------------------------------------------------------------------------


def _check_weights(weights) -> tuple[float, float, float, float]:
    if not isinstance(weights, (tuple, list)) or len(weights) != 4:
        raise ValueError(f"weights must be four numbers (wx, wy, ww, wh), got {weights!r}")
    try:
        weights = tuple(float(w) for w in weights)
    except (TypeError, ValueError):
        raise TypeError(f"weights must be four numbers (wx, wy, ww, wh), got {weights!r}") from None
    if not all(math.isfinite(w) and w > 0 for w in weights):
        raise ValueError(f"weights must be positive and finite, got {weights!r}")
    return weights


def encode_boxes(boxes: torch.Tensor, anchors: torch.Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """The regression targets `(dx, dy, dw, dh)` `[N,4]` that move `anchors[i]` onto `boxes[i]`.

    boxes, anchors: xyxy `[N,4]`, anchors with positive width and height. With anchor centre
    `(xa, ya)` and size `(wa, ha)`, box centre `(x, y)` and size `(w, h)`:
    `dx = wx (x - xa) / wa`, `dy = wy (y - ya) / ha`, `dw = ww log(w / wa)`, `dh = wh log(h / ha)`.
    Matches `torchvision.models.detection._utils.BoxCoder(weights).encode_single(boxes, anchors)`
    (the RPN uses weights (1, 1, 1, 1), the RoI head (10, 10, 5, 5)).
    """
    boxes = check_boxes(boxes, "boxes")
    anchors = check_boxes(anchors, "anchors")
    if boxes.shape != anchors.shape:
        raise ValueError(f"boxes and anchors must have the same shape [N, 4], got {list(boxes.shape)} and {list(anchors.shape)}")
    _check_same_device(boxes, anchors, "boxes", "anchors")
    wx, wy, ww, wh = _check_weights(weights)
    anchor_w = anchors[:, 2] - anchors[:, 0]
    anchor_h = anchors[:, 3] - anchors[:, 1]
    if bool((anchor_w <= 0).any() | (anchor_h <= 0).any()):
        raise ValueError("anchors must have positive width and height (a zero-size anchor cannot be a reference)")
    anchor_cx = anchors[:, 0] + 0.5 * anchor_w
    anchor_cy = anchors[:, 1] + 0.5 * anchor_h
    box_w = boxes[:, 2] - boxes[:, 0]
    box_h = boxes[:, 3] - boxes[:, 1]
    box_cx = boxes[:, 0] + 0.5 * box_w
    box_cy = boxes[:, 1] + 0.5 * box_h
    dx = wx * (box_cx - anchor_cx) / anchor_w
    dy = wy * (box_cy - anchor_cy) / anchor_h
    dw = ww * torch.log(box_w / anchor_w)
    dh = wh * torch.log(box_h / anchor_h)
    return torch.stack((dx, dy, dw, dh), dim=1)


def decode_boxes(deltas: torch.Tensor, anchors: torch.Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """Apply regression deltas `(dx, dy, dw, dh)` `[N,4]` to `anchors` xyxy `[N,4]` -> boxes xyxy `[N,4]`.

    The inverse of `encode_boxes`: `x = xa + wa dx / wx`, `w = wa exp(dw / ww)` (with `dw / ww`
    clipped at `BBOX_XFORM_CLIP`), likewise for y and h. Matches torchvision's
    `BoxCoder(weights).decode_single(deltas, anchors)`.
    """
    if not isinstance(deltas, torch.Tensor):
        raise TypeError(f"deltas must be a torch.Tensor of shape [N, 4], got {type(deltas).__name__}")
    if deltas.dim() != 2 or deltas.shape[1] != 4:
        raise ValueError(f"deltas must have shape [N, 4], got {list(deltas.shape)}")
    if not deltas.is_floating_point():
        raise TypeError(f"deltas must be a floating-point tensor, got dtype {deltas.dtype}")
    if deltas.numel() and not bool(torch.isfinite(deltas).all()):
        raise ValueError("deltas must hold finite numbers")
    anchors = check_boxes(anchors, "anchors")
    if deltas.shape != anchors.shape:
        raise ValueError(f"deltas and anchors must have the same shape [N, 4], got {list(deltas.shape)} and {list(anchors.shape)}")
    _check_same_device(deltas, anchors, "deltas", "anchors")
    wx, wy, ww, wh = _check_weights(weights)
    anchors = anchors.to(deltas.dtype)
    anchor_w = anchors[:, 2] - anchors[:, 0]
    anchor_h = anchors[:, 3] - anchors[:, 1]
    anchor_cx = anchors[:, 0] + 0.5 * anchor_w
    anchor_cy = anchors[:, 1] + 0.5 * anchor_h
    dx = deltas[:, 0] / wx
    dy = deltas[:, 1] / wy
    dw = (deltas[:, 2] / ww).clamp(max=BBOX_XFORM_CLIP)
    dh = (deltas[:, 3] / wh).clamp(max=BBOX_XFORM_CLIP)
    cx = dx * anchor_w + anchor_cx
    cy = dy * anchor_h + anchor_cy
    w = torch.exp(dw) * anchor_w
    h = torch.exp(dh) * anchor_h
    half_w = torch.tensor(0.5, dtype=cx.dtype, device=cx.device) * w
    half_h = torch.tensor(0.5, dtype=cy.dtype, device=cy.device) * h
    return torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=1)


# --------------------------------------------------------------------------------------------
# Non-maximum suppression
# --------------------------------------------------------------------------------------------


def _check_scores(scores, boxes: torch.Tensor) -> torch.Tensor:
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch.Tensor of shape [N], got {type(scores).__name__}")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"scores must have shape [{boxes.shape[0]}] (one per box), got {list(scores.shape)}")
    if not scores.is_floating_point():
        raise TypeError(f"scores must be a floating-point tensor, got dtype {scores.dtype}")
    if scores.numel() and bool(torch.isnan(scores).any()):
        raise ValueError("scores must not hold NaN")
    _check_same_device(boxes, scores, "boxes", "scores")
    return scores


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: the indices (int64 `[K]`) of the boxes kept, best score first.

    Walk the boxes from the highest score down; keep a box unless a box already kept overlaps it
    with IoU > `iou_threshold`. Ties in score keep their input order. Gives exactly
    `torchvision.ops.nms(boxes, scores, iou_threshold)`.
    """
    boxes = check_boxes(boxes, "boxes")
    scores = _check_scores(scores, boxes)
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)) or math.isnan(iou_threshold):
        raise TypeError(f"iou_threshold must be a number, got {iou_threshold!r}")
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])  # rows and columns in score order
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    kept = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(kept, dtype=torch.int64, device=boxes.device)]
