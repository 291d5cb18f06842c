"""Matching detections to ground truth: who matched whom, the COCO way.

Within one image and one class, detections are visited in decreasing score (ties keep input order);
each takes the still-unmatched ground-truth box it overlaps most (ties: the later box, as
pycocotools), provided that IoU >= the threshold; a detection left without a box is a false
positive. One loop, `_greedy`, applies this rule: `match_groups` runs it on every (image, class) group of
a data set and every threshold at once (`helpers.metrics` builds AP and mAP on it); `greedy_match`,
`match_detections` (boxes) and `greedy_match_iou` (any precomputed IoU, e.g. of masks) on one image.
"""

from __future__ import annotations

import torch

from helpers.boxes import check_boxes, iou_matrix

_TAKEN, _NEVER = 1.0e4, -1.0e8  # matching bookkeeping: a taken box, a box below the threshold
#: The highest threshold a match can be asked to reach (pycocotools': an IoU of 1 stays reachable).
MAX_THRESHOLD = 1 - 1e-10


def check_threshold(value, name: str = "iou_threshold") -> float:
    """`value` as a float after checking that it is one number in [0, 1] (errors name `name`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
        isinstance(value, torch.Tensor) and value.numel() == 1
    ):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def rank_by_score(scores: torch.Tensor) -> torch.Tensor:
    """Indices that sort `scores` `[N]` from highest to lowest; equal scores keep their order."""
    return torch.sort(scores, descending=True, stable=True).indices


def _iou64(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """`helpers.boxes.iou_matrix` in float64, 0 where the union is empty: `[..., N, 4]`, `[..., M, 4]` -> `[..., N, M]`."""
    return iou_matrix(boxes1.double(), boxes2.double()).nan_to_num(0.0)


def greedy_match(pred_boxes: torch.Tensor, pred_scores: torch.Tensor, gt_boxes: torch.Tensor,
                 iou_threshold: float = 0.5) -> torch.Tensor:
    """Who matched whom, for one image's detections of one class: int64 `[N]`, the index of the
    ground-truth box each detection took, or -1 for a false positive.

    pred_boxes `[N,4]`, pred_scores `[N]`, gt_boxes `[M,4]` (xyxy). In decreasing score (ties keep
    input order), each detection takes the still-unmatched ground-truth box it overlaps most (ties:
    the later box, as pycocotools), if that IoU >= the threshold; otherwise (no overlap, or its box was
    already taken: a duplicate) it takes nothing. The answer is in the input order of the detections.
    This is the same matcher `mean_average_precision` runs on every image and class.
    """
    pred_boxes = check_boxes(pred_boxes, "pred_boxes").detach().cpu()
    gt_boxes = check_boxes(gt_boxes, "gt_boxes").detach().cpu()
    if not isinstance(pred_scores, torch.Tensor) or pred_scores.shape != pred_boxes.shape[:1]:
        raise ValueError(f"pred_scores must be a tensor of shape [{len(pred_boxes)}], got "
                         f"{getattr(pred_scores, 'shape', type(pred_scores).__name__)}")
    return greedy_match_iou(_iou64(pred_boxes, gt_boxes), pred_scores, iou_threshold)


def match_detections(pred_boxes: torch.Tensor, pred_scores: torch.Tensor, gt_boxes: torch.Tensor,
                     iou_threshold: float = 0.5) -> torch.Tensor:
    """Greedy matching of one image's detections of one class: bool `[N]`, True for a true positive.

    The verdicts of `greedy_match` (which says, besides, which box each true positive took), in the
    input order of the detections.
    """
    return greedy_match(pred_boxes, pred_scores, gt_boxes, iou_threshold) >= 0


def rank_in_group(group: torch.Tensor) -> torch.Tensor:
    """For a sorted group key `[N]`, each element's position within its group (0, 1, ...)."""
    if len(group) == 0:
        return group.clone()
    starts = torch.ones_like(group, dtype=torch.bool)
    starts[1:] = group[1:] != group[:-1]
    first = torch.cummax(torch.where(starts, torch.arange(len(group)), 0), 0).values
    return torch.arange(len(group)) - first


def _pad(values: torch.Tensor, row: torch.Tensor, col: torch.Tensor, shape, fill):
    out = torch.full(shape, fill, dtype=values.dtype)
    out[row, col] = values
    return out


def match_groups(d_boxes, d_group, g_boxes, g_group, g_rank, thresholds, n_groups) -> torch.Tensor:
    """Greedy COCO matching within every group (one image and class), at every threshold at once.

    Detections `d_*` `[n]` come sorted by group, then by decreasing score; ground-truth boxes `g_*`
    `[m]` sorted by group, `g_rank` their position in it. Returns int64 `[n, T]`: the index (into
    `g_*`) of the box each detection took at each threshold, -1 where it took none (a false positive).

    The matching is sequential in score order, so the loop runs over the rank r of a detection in
    its group, and step r handles the r-th detection of every group and every threshold together.
    """
    T = len(thresholds)
    took = torch.full((len(d_group), T), -1, dtype=torch.int64)
    if len(d_group) == 0 or len(g_group) == 0:
        return took
    # ground-truth boxes padded to [groups with boxes, G, 4]
    gt_groups = torch.unique(g_group)
    G = int(g_rank.max()) + 1
    gt_slot_of_group = torch.full((n_groups,), -1, dtype=torch.int64)
    gt_slot_of_group[gt_groups] = torch.arange(len(gt_groups))
    g_slot = gt_slot_of_group[g_group]
    gts = _pad(g_boxes, g_slot, g_rank, (len(gt_groups), G, 4), 0.0)
    gt_valid = _pad(torch.ones(len(g_group), dtype=torch.bool), g_slot, g_rank, (len(gt_groups), G), False)
    gt_index = _pad(torch.arange(len(g_group)), g_slot, g_rank, (len(gt_groups), G), -1)  # slot, rank -> g index
    # IoU of each detection with the boxes of its own image and class: [k, G], padding -1
    det_slot = gt_slot_of_group[d_group]
    index = (det_slot >= 0).nonzero()[:, 0]
    rows = _iou64(d_boxes[index][:, None, :], gts[det_slot[index]])[:, 0, :]
    rows = torch.where(gt_valid[det_slot[index]], rows, -1.0)
    # a detection below the lowest threshold with every box is a false positive at every threshold
    # and takes nothing from later ones: leave it out of the loop
    useful = rows.amax(1) >= thresholds.min()
    index, rows = index[useful], rows[useful]
    if len(index) == 0:
        return took
    slot = det_slot[index]  # still in runs, one per group
    rank = rank_in_group(slot)
    # renumber groups by decreasing number of detections: at step r the busy ones are a prefix
    count = torch.bincount(slot, minlength=len(gt_groups))
    by_count = torch.sort(count, descending=True, stable=True).indices
    position = torch.empty_like(by_count)
    position[by_count] = torch.arange(len(by_count))
    slot, count = position[slot], count[by_count]
    S, D = int((count > 0).sum()), int(count[0])
    iou = torch.full((S, D, G), -1.0, dtype=torch.float64)
    iou[slot, rank] = rows
    matched = _greedy(iou, thresholds, count[:S])  # the rank in its group of the box taken
    box_rank = matched[slot, rank]  # [k, T]
    own_boxes = gt_index[det_slot[index]]  # [k, G]
    took[index] = torch.where(box_rank >= 0, own_boxes.gather(1, box_rank.clamp(min=0)), -1)
    return took


def _greedy(iou: torch.Tensor, thresholds: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """The greedy rule on padded IoUs: float64 `[S, D, G]` (group, detection in decreasing score, box;
    -1 for padding), thresholds `[T]`, count `[S]` detections per group, non-increasing. Returns int64
    `[S, D, T]`: the box (index along G) each detection took at each threshold, or -1.

    The matching is sequential in score order, so the loop runs over the rank r of a detection in
    its group, and step r handles the r-th detection of every group and every threshold together.
    """
    S, D, G = iou.shape
    T = len(thresholds)
    # each detection's preference among the boxes: the rank of (IoU, box index), so the highest IoU
    # wins and, among equal IoUs, the later box (as in pycocotools)
    preference = torch.empty(S, D, G, dtype=torch.float32)
    preference.scatter_(2, torch.sort(iou, dim=2, stable=True).indices,
                        torch.arange(G, dtype=torch.float32).expand(S, D, G).contiguous())
    blocked = torch.zeros(S, G, T, dtype=torch.float32)  # _TAKEN once a box is matched
    matched = torch.full((S, D, T), -1, dtype=torch.int64)
    busy = torch.searchsorted(-count, -torch.arange(D), right=False)  # groups with more than r detections
    for r in range(D):
        s = int(busy[r])
        reaches = iou[:s, r, :, None] >= thresholds  # [s, G, T]
        wanted = torch.where(reaches, preference[:s, r, :, None], _NEVER) - blocked[:s]
        best, which = wanted.max(1)  # [s, T]: the preferred box still free, if any
        found = best >= 0
        blocked[:s].scatter_add_(1, which[:, None, :], found[:, None, :] * _TAKEN)
        matched[:s, r] = torch.where(found, which, -1)
    return matched


def greedy_match_iou(iou: torch.Tensor, pred_scores: torch.Tensor, iou_threshold: float = 0.5) -> torch.Tensor:
    """`greedy_match` from a precomputed IoU matrix `[N, M]` (detections x ground truth, e.g. the IoU of
    masks instead of boxes) and the detections' scores `[N]`: int64 `[N]`, the ground truth each
    detection took, or -1. The same rule and the same code as every other matching here."""
    if not isinstance(iou, torch.Tensor) or iou.dim() != 2:
        raise ValueError(f"iou must be a [N, M] tensor, got {getattr(iou, 'shape', type(iou).__name__)}")
    if not isinstance(pred_scores, torch.Tensor) or pred_scores.shape != iou.shape[:1]:
        raise ValueError(f"pred_scores must be a tensor of shape [{len(iou)}], got "
                         f"{getattr(pred_scores, 'shape', type(pred_scores).__name__)}")
    threshold = torch.tensor([min(check_threshold(iou_threshold), MAX_THRESHOLD)], dtype=torch.float64)
    matched = torch.full((len(iou),), -1, dtype=torch.int64)
    if iou.numel() == 0:
        return matched
    order = rank_by_score(pred_scores.detach().cpu())
    rows = iou.detach().cpu().double().nan_to_num(0.0)[order]
    matched[order] = _greedy(rows[None], threshold, torch.tensor([len(rows)]))[0, :, 0]
    return matched
