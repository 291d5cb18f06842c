"""Metrics. Detection: matching, precision/recall, AP (VOC07, VOC all-point, COCO) and mAP.
Segmentation (at the end): the confusion matrix, per-class IoU and Dice, and boundary accuracy.

The detection part follows the COCO evaluation (pycocotools' `COCOeval`, bbox, area "all"):

- within one image and one class, detections are taken in decreasing score (ties keep input order),
  at most `max_detections` of them; each is matched to the unmatched ground-truth box of the same
  class with the highest IoU, provided that IoU >= the threshold; a detection left without a match
  (a miss, or a duplicate of a box already found) is a false positive;
- over the whole data set, each class's detections are ranked by score (ties: earlier image first),
  which gives a precision/recall curve per class and IoU threshold, and an AP;
- mAP is the mean AP over the classes that have at least one ground-truth box (and, for COCO, over
  the IoU thresholds 0.50, 0.55, ..., 0.95).

`mean_average_precision` gives the same numbers as pycocotools (the tests and
`benchmarks/map_speed.py` compare them), vectorised with torch.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from helpers.boxes import check_boxes, paired_box_iou
from helpers.data import NUM_CLASSES

#: AP definitions `average_precision` knows.
AP_METHODS = ("voc07", "voc", "coco")
#: COCO's IoU thresholds 0.50:0.05:0.95, computed exactly as pycocotools does (float64).
COCO_IOU_THRESHOLDS = tuple(np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True).tolist())
#: COCO's 101 recall levels 0:0.01:1, exactly as pycocotools computes them.
COCO_RECALL_LEVELS = tuple(np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True).tolist())
#: VOC2007's 11 recall levels 0, 0.1, ..., 1.
VOC07_RECALL_LEVELS = tuple(k / 10 for k in range(11))
#: pycocotools adds this to the denominator of precision (numpy's `np.spacing(1)`).
_EPS = float(np.spacing(1))
_TAKEN, _NEVER = 1.0e4, -1.0e8  # matching bookkeeping: a taken box, a box below the threshold
#: The highest threshold a match can be asked to reach (pycocotools': an IoU of 1 stays reachable).
_MAX_THRESHOLD = 1 - 1e-10


@contextlib.contextmanager
def _one_thread():
    """Run torch on one intra-op thread, then restore the setting. The tensors here are small: extra
    threads gain nothing, and on a busy CPU they make these many small operations several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _check_method(method) -> str:
    if method not in AP_METHODS:
        raise ValueError(f"method must be one of {AP_METHODS}, got {method!r}")
    return method


def _check_threshold(value, name: str = "iou_threshold") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
        isinstance(value, torch.Tensor) and value.numel() == 1
    ):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def _check_ranked(scores, is_tp, num_gt):
    """Validate `average_precision`'s inputs; return float64 scores, bool is_tp, int num_gt."""
    if not isinstance(scores, torch.Tensor) or scores.dim() != 1:
        raise ValueError(f"scores must be a 1-D tensor [N], got {getattr(scores, 'shape', type(scores).__name__)}")
    if not scores.is_floating_point():
        scores = scores.double()
    if scores.numel() and bool(torch.isnan(scores).any()):
        raise ValueError("scores must not hold NaN")
    if not isinstance(is_tp, torch.Tensor) or is_tp.shape != scores.shape:
        raise ValueError(f"is_tp must be a tensor of shape {list(scores.shape)} (one flag per detection), got "
                         f"{getattr(is_tp, 'shape', type(is_tp).__name__)}")
    if is_tp.dtype != torch.bool:
        if is_tp.is_floating_point() or bool(((is_tp != 0) & (is_tp != 1)).any()):
            raise ValueError("is_tp must hold booleans (or 0/1 integers)")
        is_tp = is_tp.bool()
    if isinstance(num_gt, torch.Tensor) and num_gt.numel() == 1 and not num_gt.is_floating_point():
        num_gt = int(num_gt)
    if isinstance(num_gt, bool) or not isinstance(num_gt, int) or num_gt < 0:
        raise ValueError(f"num_gt must be a non-negative int (the number of ground-truth boxes), got {num_gt!r}")
    if int(is_tp.sum()) > num_gt:
        raise ValueError(f"is_tp marks {int(is_tp.sum())} true positives but num_gt is {num_gt}: "
                         "each ground-truth box can be found at most once")
    return scores.detach().cpu().double(), is_tp.detach().cpu(), num_gt


# --------------------------------------------------------------------------------------------
# Precision, recall and AP of one ranked list
# --------------------------------------------------------------------------------------------


def rank_by_score(scores: torch.Tensor) -> torch.Tensor:
    """Indices that sort `scores` `[N]` from highest to lowest; equal scores keep their order."""
    return torch.sort(scores, descending=True, stable=True).indices


def precision_recall_curve(scores: torch.Tensor, is_tp: torch.Tensor, num_gt: int):
    """Precision and recall after each detection, best score first.

    scores `[N]`, is_tp bool `[N]` (was detection i a true positive?), num_gt: number of ground-truth
    boxes. Returns `(precision, recall)`, float64 `[N]` each, in decreasing-score order:
    precision[k] = TP(k) / (k + 1), recall[k] = TP(k) / num_gt, where TP(k) counts the true positives
    among the k + 1 best detections. With num_gt = 0 recall is NaN.
    """
    scores, is_tp, num_gt = _check_ranked(scores, is_tp, num_gt)
    tp = is_tp[rank_by_score(scores)].double().cumsum(0)
    rank = torch.arange(1, len(tp) + 1, dtype=torch.float64)
    recall = tp / num_gt if num_gt else torch.full_like(tp, float("nan"))
    return tp / rank, recall


def precision_envelope(precision: torch.Tensor) -> torch.Tensor:
    """The monotone envelope: each precision replaced by the best precision at this rank or later.

    `[N] -> [N]`, non-increasing. This is what VOC all-point and COCO AP integrate: a detector is
    credited, at each recall, with the best precision it reaches at that recall or beyond.
    """
    if not isinstance(precision, torch.Tensor) or precision.dim() != 1:
        raise ValueError(f"precision must be a 1-D tensor, got {getattr(precision, 'shape', type(precision).__name__)}")
    if precision.numel() == 0:
        return precision.clone()
    return precision.flip(0).cummax(0).values.flip(0)


def _ap_of_ranked(tp: torch.Tensor, num_gt: int, method: str) -> torch.Tensor:
    """AP of ranked true-positive flags `tp` bool `[N, T]` (best first; one column per threshold) -> float64 `[T]`.

    num_gt > 0. The arithmetic follows the reference implementations operation for operation.
    """
    n, thresholds = tp.shape
    if n == 0:
        return torch.zeros(thresholds, dtype=torch.float64)
    tp_sum = tp.double().cumsum(0)
    fp_sum = (~tp).double().cumsum(0)
    recall = tp_sum / num_gt
    if method == "coco":
        precision = tp_sum / (fp_sum + tp_sum + _EPS)
        envelope = precision.flip(0).cummax(0).values.flip(0)
        levels = torch.tensor(COCO_RECALL_LEVELS, dtype=torch.float64)
        # the first rank whose recall reaches each level; beyond the last rank precision counts 0
        first = torch.searchsorted(recall.T.contiguous(), levels.expand(thresholds, -1).contiguous(), right=False)
        reached = first < n
        picked = envelope.T.gather(1, first.clamp(max=n - 1))
        return torch.where(reached, picked, torch.zeros_like(picked)).mean(1)
    precision = tp_sum / (fp_sum + tp_sum)  # tp + fp = rank >= 1
    if method == "voc07":
        levels = torch.tensor(VOC07_RECALL_LEVELS, dtype=torch.float64)  # [11]
        reaches = recall[None, :, :] >= levels[:, None, None]  # [11, N, T]
        best = torch.where(reaches, precision[None], torch.zeros_like(precision[None])).amax(1)  # [11, T]
        return best.sum(0) / 11
    # "voc": area under the envelope of the curve closed by (0, .) and (1, 0)
    zero = torch.zeros(1, thresholds, dtype=torch.float64)
    recall = torch.cat([zero, recall, zero + 1])
    precision = torch.cat([zero, precision, zero])
    envelope = precision.flip(0).cummax(0).values.flip(0)
    return ((recall[1:] - recall[:-1]) * envelope[1:]).sum(0)


def average_precision(scores: torch.Tensor, is_tp: torch.Tensor, num_gt: int, method: str = "voc") -> float:
    """AP of one class from its detections: the area under the precision/recall curve.

    Args:
        scores: `[N]` confidence of each detection (ranked highest first; ties keep input order).
        is_tp: bool `[N]`, whether each detection was matched to a ground-truth box.
        num_gt: the number of ground-truth boxes of this class (misses lower recall).
        method: `"voc07"` mean of the best precision at recall >= 0, 0.1, ..., 1 (11 points);
            `"voc"` exact area under the monotone precision envelope (all points, VOC2010+);
            `"coco"` mean of the envelope at recall 0, 0.01, ..., 1 (101 points, as pycocotools).

    Returns a Python float in [0, 1]; NaN when num_gt is 0 (AP is undefined without ground truth).
    """
    method = _check_method(method)
    scores, is_tp, num_gt = _check_ranked(scores, is_tp, num_gt)
    if num_gt == 0:
        return float("nan")
    ranked = is_tp[rank_by_score(scores)]
    return float(_ap_of_ranked(ranked[:, None], num_gt, method)[0])


# --------------------------------------------------------------------------------------------
# Matching detections to ground truth
# --------------------------------------------------------------------------------------------


def _iou64(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU in float64 of boxes `[..., N, 4]` with `[..., M, 4]` -> `[..., N, M]`, 0 where the union is empty."""
    boxes1, boxes2 = boxes1.double(), boxes2.double()
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    top_left = torch.max(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    bottom_right = torch.min(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    iou = inter / (area1[..., :, None] + area2[..., None, :] - inter)
    return iou.nan_to_num(0.0)


def match_detections(pred_boxes: torch.Tensor, pred_scores: torch.Tensor, gt_boxes: torch.Tensor,
                     iou_threshold: float = 0.5) -> torch.Tensor:
    """Greedy matching of one image's detections of one class: bool `[N]`, True for a true positive.

    pred_boxes `[N,4]`, pred_scores `[N]`, gt_boxes `[M,4]` (xyxy). In decreasing score, each
    detection takes the still-unmatched ground-truth box it overlaps most, if that IoU >= the
    threshold; otherwise (no overlap, or its box was already taken: a duplicate) it is a false
    positive. The flags come back in the input order of the detections.
    """
    pred_boxes = check_boxes(pred_boxes, "pred_boxes")
    gt_boxes = check_boxes(gt_boxes, "gt_boxes")
    if not isinstance(pred_scores, torch.Tensor) or pred_scores.shape != pred_boxes.shape[:1]:
        raise ValueError(f"pred_scores must be a tensor of shape [{len(pred_boxes)}], got "
                         f"{getattr(pred_scores, 'shape', type(pred_scores).__name__)}")
    threshold = min(_check_threshold(iou_threshold), _MAX_THRESHOLD)
    order = rank_by_score(pred_scores)
    iou = _iou64(pred_boxes[order], gt_boxes)
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
    is_tp = torch.zeros(len(pred_boxes), dtype=torch.bool)
    for rank, det in enumerate(order.tolist()):
        candidates = torch.where(taken, -1.0, iou[rank].cpu())
        if len(candidates) == 0 or float(candidates.max()) < threshold:
            continue
        best = int(len(candidates) - 1 - candidates.flip(0).argmax())  # ties: the later box, as pycocotools
        taken[best] = True
        is_tp[det] = True
    return is_tp


# --------------------------------------------------------------------------------------------
# mAP over a data set
# --------------------------------------------------------------------------------------------


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"a {type(value).__name__}"


def _gather_detection_lists(items, where: str, with_scores: bool):
    """Validate per-image dicts and concatenate them.

    Returns boxes float64 `[N,4]`, labels int64 `[N]`, image index int64 `[N]`, and (with_scores)
    scores float64 `[N]`. Errors name the image, e.g. `preds[3]['boxes']`.
    """
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"{where} must be a list of dicts (one per image), got {type(items).__name__}")
    keys = ("boxes", "scores", "labels") if with_scores else ("boxes", "labels")
    boxes, labels, scores, sizes = [], [], [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise TypeError(f"{where}[{i}] must be a dict, got {type(item).__name__}")
        for key in keys:
            if key not in item:
                raise ValueError(f"{where}[{i}] must have the key {key!r} (it has {sorted(map(str, item))})")
        b, l = item["boxes"], item["labels"]
        if not isinstance(b, torch.Tensor) or b.dim() != 2 or b.shape[1] != 4 or b.dtype == torch.bool or b.is_complex():
            raise ValueError(f"{where}[{i}]['boxes'] must be a real tensor of shape [N, 4], got {_describe(b)}")
        n = b.shape[0]
        if not isinstance(l, torch.Tensor) or l.shape != (n,) or l.is_floating_point() or l.dtype == torch.bool or l.is_complex():
            raise ValueError(f"{where}[{i}]['labels'] must be an integer tensor of shape [{n}], got {_describe(l)}")
        if with_scores:
            sc = item["scores"]
            if not isinstance(sc, torch.Tensor) or sc.shape != (n,) or not sc.is_floating_point():
                raise ValueError(f"{where}[{i}]['scores'] must be a floating-point tensor of shape [{n}], got {_describe(sc)}")
            scores.append(sc.detach().cpu())
        boxes.append(b.detach().cpu())
        labels.append(l.detach().cpu())
        sizes.append(n)
    image = torch.repeat_interleave(torch.arange(len(items)), torch.tensor(sizes, dtype=torch.int64))
    if not boxes:
        return torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, dtype=torch.int64), image, torch.zeros(0, dtype=torch.float64)
    boxes = torch.cat(boxes).double()
    labels = torch.cat(labels).long()
    scores = torch.cat(scores).double() if with_scores else None
    # value checks once over the whole data set; the message names the first bad image
    bad = ~torch.isfinite(boxes).all(1) | (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bool(bad.any()):
        k = int(bad.nonzero()[0, 0])
        i = int(image[k])
        raise ValueError(f"{where}[{i}]['boxes'] must hold finite xyxy boxes with x2 >= x1 and y2 >= y1; "
                         f"row {k - int((image < i).sum())} is {boxes[k].tolist()}")
    if with_scores and bool(torch.isnan(scores).any()):
        i = int(image[torch.isnan(scores).nonzero()[0, 0]])
        raise ValueError(f"{where}[{i}]['scores'] must not hold NaN")
    return boxes, labels, image, scores


def _rank_in_group(group: torch.Tensor) -> torch.Tensor:
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


def _match_groups(d_boxes, d_group, g_boxes, g_group, g_rank, thresholds, n_groups) -> torch.Tensor:
    """Greedy COCO matching within every group (one image and class), at every threshold at once.

    Detections `d_*` `[n]` come sorted by group, then by decreasing score; ground-truth boxes `g_*`
    `[m]` sorted by group, `g_rank` their position in it. Returns is_tp bool `[n, T]`.

    The matching is sequential in score order, so the loop runs over the rank r of a detection in
    its group, and step r handles the r-th detection of every group and every threshold together.
    """
    T = len(thresholds)
    is_tp = torch.zeros(len(d_group), T, dtype=torch.bool)
    if len(d_group) == 0 or len(g_group) == 0:
        return is_tp
    # ground-truth boxes padded to [groups with boxes, G, 4]
    gt_groups = torch.unique(g_group)
    G = int(g_rank.max()) + 1
    gt_slot_of_group = torch.full((n_groups,), -1, dtype=torch.int64)
    gt_slot_of_group[gt_groups] = torch.arange(len(gt_groups))
    g_slot = gt_slot_of_group[g_group]
    gts = _pad(g_boxes, g_slot, g_rank, (len(gt_groups), G, 4), 0.0)
    gt_valid = _pad(torch.ones(len(g_group), dtype=torch.bool), g_slot, g_rank, (len(gt_groups), G), False)
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
        return is_tp
    slot = det_slot[index]  # still in runs, one per group
    rank = _rank_in_group(slot)
    # renumber groups by decreasing number of detections: at step r the busy ones are a prefix
    count = torch.bincount(slot, minlength=len(gt_groups))
    by_count = torch.sort(count, descending=True, stable=True).indices
    position = torch.empty_like(by_count)
    position[by_count] = torch.arange(len(by_count))
    slot, count = position[slot], count[by_count]
    S, D = int((count > 0).sum()), int(count[0])
    iou = torch.full((S, D, G), -1.0, dtype=torch.float64)
    iou[slot, rank] = rows
    # each detection's preference among the boxes: the rank of (IoU, box index), so the highest IoU
    # wins and, among equal IoUs, the later box (as in pycocotools)
    preference = torch.empty(S, D, G, dtype=torch.float32)
    preference.scatter_(2, torch.sort(iou, dim=2, stable=True).indices,
                        torch.arange(G, dtype=torch.float32).expand(S, D, G).contiguous())
    blocked = torch.zeros(S, G, T, dtype=torch.float32)  # _TAKEN once a box is matched
    matched = torch.zeros(S, D, T, dtype=torch.bool)
    busy = torch.searchsorted(-count[:S], -torch.arange(D), right=False)  # groups with more than r detections
    for r in range(D):
        s = int(busy[r])
        reaches = iou[:s, r, :, None] >= thresholds  # [s, G, T]
        wanted = torch.where(reaches, preference[:s, r, :, None], _NEVER) - blocked[:s]
        best, which = wanted.max(1)  # [s, T]: the preferred box still free, if any
        found = best >= 0
        blocked[:s].scatter_add_(1, which[:, None, :], found[:, None, :] * _TAKEN)
        matched[:s, r] = found
    is_tp[index] = matched[slot, rank]
    return is_tp


def evaluate_detections(preds, targets, iou_thresholds, max_detections: int = 100):
    """Match every detection of a data set, at every IoU threshold, the COCO way.

    preds, targets: lists of torchvision-style dicts (see `mean_average_precision`).
    iou_thresholds: a sequence of T numbers in [0, 1].

    Returns a dict:
      `classes` int64 `[C]` (every label seen in preds or targets, sorted), `num_gt` int64 `[C]`,
      and per kept detection (sorted by class, then decreasing score; ties: earlier image, then
      input order): `label` `[D]`, `score` float64 `[D]`, `image` `[D]`, `is_tp` bool `[D, T]`.
    """
    d_boxes, d_labels, d_image, d_scores = _gather_detection_lists(preds, "preds", with_scores=True)
    g_boxes, g_labels, g_image, _ = _gather_detection_lists(targets, "targets", with_scores=False)
    if len(preds) != len(targets):
        raise ValueError(f"preds and targets must have one entry per image, got {len(preds)} and {len(targets)}")
    thresholds = torch.tensor([min(_check_threshold(t, "iou_thresholds"), _MAX_THRESHOLD) for t in iou_thresholds],
                              dtype=torch.float64)
    if isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 1:
        raise ValueError(f"max_detections must be a positive int, got {max_detections!r}")
    classes = torch.unique(torch.cat([d_labels, g_labels]))
    C = len(classes)
    num_gt = torch.bincount(torch.searchsorted(classes, g_labels), minlength=C) if C else torch.zeros(0, dtype=torch.int64)

    # group = (image, class); detections sorted by group, then decreasing score (stable)
    d_group = d_image * C + torch.searchsorted(classes, d_labels)
    order = torch.sort(d_scores, descending=True, stable=True).indices
    order = order[torch.sort(d_group[order], stable=True).indices]
    d_boxes, d_labels, d_image, d_scores, d_group = (x[order] for x in (d_boxes, d_labels, d_image, d_scores, d_group))
    d_rank = _rank_in_group(d_group)
    keep = d_rank < max_detections
    d_boxes, d_labels, d_image, d_scores, d_group, d_rank = (x[keep] for x in (d_boxes, d_labels, d_image, d_scores, d_group, d_rank))

    g_group = g_image * C + torch.searchsorted(classes, g_labels)
    g_order = torch.sort(g_group, stable=True).indices
    g_boxes, g_group = g_boxes[g_order], g_group[g_order]
    g_rank = _rank_in_group(g_group)

    is_tp = _match_groups(d_boxes, d_group, g_boxes, g_group, g_rank, thresholds, len(targets) * C)

    # rank each class's detections over the data set: class, then score (stable keeps image order)
    order = torch.sort(d_scores, descending=True, stable=True).indices
    order = order[torch.sort(d_labels[order], stable=True).indices]
    return {
        "classes": classes,
        "num_gt": num_gt,
        "label": d_labels[order],
        "score": d_scores[order],
        "image": d_image[order],
        "is_tp": is_tp[order],
        "iou_thresholds": thresholds,
    }


def mean_average_precision(preds, targets, method: str = "coco", iou_thresholds=None, max_detections: int = 100) -> dict:
    """mAP of detections against ground truth, as COCO (pycocotools' `COCOeval`, bbox, area "all") computes it.

    Args:
        preds: one dict per image with `boxes` float `[N,4]` (xyxy), `scores` float `[N]`, `labels` int `[N]`.
        targets: one dict per image with `boxes` `[M,4]` and `labels` int `[M]`.
        method: how each AP is computed: `"coco"` (101 points), `"voc"` (all points) or `"voc07"` (11 points).
        iou_thresholds: the IoU thresholds `map` averages over; default COCO's 0.50:0.05:0.95.
        max_detections: at most this many detections per image and class count (highest scores).

    Returns a dict:
        `map`: mean AP over classes with ground truth and over `iou_thresholds` (a float; NaN when
            there is no ground truth at all);
        `map_50`, `map_75`: mean AP over classes at IoU 0.5 and 0.75;
        `classes` int64 `[C]`: every label seen; `num_gt` int64 `[C]`;
        `ap_per_class` float64 `[C]`: AP averaged over `iou_thresholds` (NaN for a class without ground truth);
        `ap` float64 `[T, C]`: AP at each threshold and class; `iou_thresholds` float64 `[T]`.
    """
    method = _check_method(method)
    if iou_thresholds is None:
        iou_thresholds = COCO_IOU_THRESHOLDS
    if isinstance(iou_thresholds, (int, float)) and not isinstance(iou_thresholds, bool):
        iou_thresholds = (iou_thresholds,)
    if isinstance(iou_thresholds, torch.Tensor):
        iou_thresholds = iou_thresholds.flatten().tolist()
    if not isinstance(iou_thresholds, (list, tuple)) or len(iou_thresholds) == 0:
        raise ValueError(f"iou_thresholds must be a non-empty sequence of numbers in [0, 1], got {iou_thresholds!r}")
    asked = [_check_threshold(t, "iou_thresholds") for t in iou_thresholds]
    # also evaluate 0.5 and 0.75 for map_50 / map_75 (COCO's own values when they are among the defaults)
    extra = [t for t in (COCO_IOU_THRESHOLDS[0], COCO_IOU_THRESHOLDS[5]) if t not in asked]
    with _one_thread():
        return _mean_average_precision(preds, targets, method, asked, extra, max_detections)


def _mean_average_precision(preds, targets, method, asked, extra, max_detections) -> dict:
    result = evaluate_detections(preds, targets, asked + extra, max_detections)
    classes, num_gt, T = result["classes"], result["num_gt"], len(asked) + len(extra)
    ap = torch.full((T, len(classes)), float("nan"), dtype=torch.float64)
    bounds = torch.searchsorted(result["label"], classes, right=True) if len(classes) else classes
    start = 0
    for c in range(len(classes)):
        stop = int(bounds[c])
        if num_gt[c] > 0:
            ap[:, c] = _ap_of_ranked(result["is_tp"][start:stop], int(num_gt[c]), method)
        start = stop

    def mean(values: torch.Tensor) -> float:
        values = values[~torch.isnan(values)]
        return float(values.mean()) if values.numel() else float("nan")

    all_thresholds = asked + extra
    ap_asked = ap[: len(asked)]
    return {
        "map": mean(ap_asked.flatten()),
        "map_50": mean(ap[all_thresholds.index(COCO_IOU_THRESHOLDS[0])]),
        "map_75": mean(ap[all_thresholds.index(COCO_IOU_THRESHOLDS[5])]),
        "classes": classes,
        "num_gt": num_gt,
        "ap_per_class": ap_asked.mean(0),
        "ap": ap_asked,
        "iou_thresholds": torch.tensor(asked, dtype=torch.float64),
    }


def class_detections(preds, targets, label: int, iou_threshold: float = 0.5, max_detections: int = 100):
    """One class's ranked detections over a data set, for a precision/recall curve.

    Returns `(scores, is_tp, num_gt)`: float64 `[D]` best first, bool `[D]`, and an int, ready for
    `precision_recall_curve` or `average_precision` (which then agree with `mean_average_precision`).
    """
    result = evaluate_detections(preds, targets, [iou_threshold], max_detections)
    mine = result["label"] == int(label)
    where = (result["classes"] == int(label)).nonzero()
    num_gt = int(result["num_gt"][where[0, 0]]) if len(where) else 0
    return result["score"][mine], result["is_tp"][mine, 0], num_gt



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


def pycocotools_map(preds, targets) -> dict:
    """The same figures from pycocotools' `COCOeval` (bbox, area "all", 100 detections), for comparison.

    Needs pycocotools (in the course's `dev` extra). Builds COCO-format ground truth and results from
    the torchvision-style lists (boxes go in as float64 xywh) and returns `{"map", "map_50", "map_75"}`.
    Categories are the labels that occur, so (as in `mean_average_precision`) a class without any
    ground-truth box is left out of the mean.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("pycocotools_map needs pycocotools: pip install pycocotools") from error
    import contextlib
    import io

    d_boxes, d_labels, d_image, d_scores = _gather_detection_lists(preds, "preds", with_scores=True)
    g_boxes, g_labels, g_image, _ = _gather_detection_lists(targets, "targets", with_scores=False)
    if len(preds) != len(targets):
        raise ValueError(f"preds and targets must have one entry per image, got {len(preds)} and {len(targets)}")

    def xywh(boxes):
        return torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist()

    annotations = [
        {"id": k + 1, "image_id": int(i) + 1, "category_id": int(label), "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
        for k, (i, label, box) in enumerate(zip(g_image.tolist(), g_labels.tolist(), xywh(g_boxes)))
    ]
    results = [
        {"image_id": int(i) + 1, "category_id": int(label), "bbox": box, "score": score}
        for i, label, box, score in zip(d_image.tolist(), d_labels.tolist(), xywh(d_boxes), d_scores.tolist())
    ]
    categories = sorted(set(g_labels.tolist()) | set(d_labels.tolist()))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": i + 1} for i in range(len(targets))], "annotations": annotations,
                      "categories": [{"id": c} for c in categories]}
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
        if not results:
            dt.dataset = {"images": gt.dataset["images"], "annotations": [], "categories": gt.dataset["categories"]}
            dt.createIndex()
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {"map": float(stats[0]), "map_50": float(stats[1]), "map_75": float(stats[2])}


# --- segmentation metrics ---
# Class maps are integer tensors `[..., H, W]` with 0 = background and values in 0..K-1.

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
