"""Metrics. Detection: precision/recall, AP (VOC07, VOC all-point, COCO) and mAP, on the matching of
`helpers.matching` (whose `greedy_match` and `match_detections` are importable from here too).
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

`mean_average_precision` gives the same numbers as pycocotools (`helpers.coco.pycocotools_map`; the
tests and `benchmarks/map_speed.py` compare them), vectorised with torch.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from helpers.matching import (  # noqa: F401 - greedy_match, match_detections re-exported
    MAX_THRESHOLD,
    check_threshold,
    greedy_match,
    match_detections,
    match_groups,
    rank_by_score,
    rank_in_group,
)

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
    thresholds = torch.tensor([min(check_threshold(t, "iou_thresholds"), MAX_THRESHOLD) for t in iou_thresholds],
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
    d_rank = rank_in_group(d_group)
    keep = d_rank < max_detections
    d_boxes, d_labels, d_image, d_scores, d_group, d_rank = (x[keep] for x in (d_boxes, d_labels, d_image, d_scores, d_group, d_rank))

    g_group = g_image * C + torch.searchsorted(classes, g_labels)
    g_order = torch.sort(g_group, stable=True).indices
    g_boxes, g_group = g_boxes[g_order], g_group[g_order]
    g_rank = rank_in_group(g_group)

    is_tp = match_groups(d_boxes, d_group, g_boxes, g_group, g_rank, thresholds, len(targets) * C) >= 0

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
    asked = [check_threshold(t, "iou_thresholds") for t in iou_thresholds]
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
