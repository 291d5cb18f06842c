"""Exercises of notebook 02: IoU, matching, precision/recall, AP, and Problem 1."""

from __future__ import annotations

from functools import partial

import torch

from helpers import boxes, metrics
from helpers.exercises.compare import compare_scalars
from helpers.exercises.core import Case, FunctionExercise, ValueExercise

NOTEBOOK = "02_iou_ap_map"

#: Problem 1 of the handout: the IoU of each detection A-F with its ground-truth box.
PROBLEM1_IOU = {"A": 0.29, "B": 0.11, "C": 0.701, "D": 0.001, "E": 0.92, "F": 0.45}


def _boxes(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def _random_boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 50
    return torch.cat([xy, xy + 2 + torch.rand(n, 2, generator=g) * 25], 1)


# --------------------------------------------------------------------------------------------
# 1. IoU of every pair
# --------------------------------------------------------------------------------------------


def _iou_cases():
    return [
        Case("one pair of overlapping boxes", (_boxes([[0, 0, 2, 2]]), _boxes([[1, 1, 3, 3]]))),
        Case("identical, nested, touching and disjoint boxes",
             (_boxes([[0, 0, 10, 10], [2, 2, 4, 4]]), _boxes([[0, 0, 10, 10], [10, 0, 20, 10], [30, 30, 40, 40]]))),
        Case("7 random boxes against 5 (the result must be [7, 5])", (_random_boxes(7, 1), _random_boxes(5, 2))),
        Case("3 boxes against none (the result must be [3, 0])", (_random_boxes(3, 3), torch.zeros(0, 4))),
    ]


box_iou = FunctionExercise(
    notebook=NOTEBOOK,
    name="box_iou",
    library=("torchvision.ops.box_iou", "torchvision.ops.boxes.box_iou", "helpers.boxes.box_iou",
             "helpers.boxes.iou_matrix", "helpers.matching._iou64", "helpers.detection._iou"),
    reference=boxes.box_iou,
    cases=_iou_cases,
    hint="Broadcast: boxes1[:, None, :2] against boxes2[None, :, :2] gives [N, M, 2]. The intersection's top-left "
         "corner is the elementwise max of the top-left corners, its bottom-right the min of the bottom-right "
         "corners; clamp its width and height at 0. Union = area1 + area2 - intersection.",
    solution='''
def box_iou(boxes1, boxes2):
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])  # [N]
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])  # [M]
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # [N, M, 2]
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])  # [N, M, 2]
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]  # [N, M]
    return inter / (area1[:, None] + area2[None, :] - inter)
''',
)


# --------------------------------------------------------------------------------------------
# 2. Problem 1: the AP when the two true positives are ranked last
# --------------------------------------------------------------------------------------------

#: The ranking the exercise asks about: C and E (the true positives at IoU 0.5) in places 5 and 6.
PROBLEM1_WORST_RANKING = ("A", "B", "D", "F", "C", "E")


def _problem1_worst_ap() -> float:
    flags = torch.tensor([PROBLEM1_IOU[k] >= 0.5 for k in PROBLEM1_WORST_RANKING])
    return metrics.average_precision(-torch.arange(6.0), flags, len(PROBLEM1_IOU), "voc")


problem1_ap_worst = ValueExercise(
    notebook=NOTEBOOK,
    name="problem1_ap_worst",
    expected=_problem1_worst_ap(),
    compare=partial(compare_scalars, atol=2e-3, rtol=0.0),
    hint="Only ranks where recall grows contribute: ranks 5 and 6, each adding 1/6 of recall. Write down the "
         "precision at ranks 5 and 6, then replace each by the envelope (the best precision at that rank or any "
         "later one) before multiplying by the recall step.",
    solution='''
problem1_ap_worst = (2 / 6) * (1 / 6) + (2 / 6) * (1 / 6)  # the envelope at rank 5 is the precision at rank 6
''',
)


# --------------------------------------------------------------------------------------------
# 3. Greedy matching of one image's detections
# --------------------------------------------------------------------------------------------


def _match_cases():
    gt = _boxes([[0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 12]])
    pred = _boxes([[1, 0, 10, 10], [0, 0, 10, 9], [20, 21, 30, 34], [60, 60, 70, 70], [40, 1, 50, 11]])
    return [
        Case("one detection on one box", (_boxes([[0, 0, 10, 10]]), torch.tensor([0.9]), _boxes([[1, 1, 10, 10]]), 0.5)),
        Case("a duplicate, a miss and a junk box (threshold 0.5)", (pred, torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5]), gt, 0.5)),
        Case("the same scene with scores not in order", (pred, torch.tensor([0.3, 0.8, 0.95, 0.6, 0.5]), gt, 0.5)),
        Case("the same scene at threshold 0.8", (pred, torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5]), gt, 0.8)),
        Case("an image without ground truth", (pred[:2], torch.tensor([0.9, 0.4]), torch.zeros(0, 4), 0.5)),
        # the second detection overlaps the taken box most, but the free box enough: a true positive here,
        # a false positive under PASCAL VOC's rule (best box overall, even if taken)
        Case("two overlapping true boxes, the second detection's favourite already taken",
             (_boxes([[0, 0, 10, 10], [0.5, 0, 10.5, 10]]), torch.tensor([0.9, 0.8]),
              _boxes([[0, 0, 10, 10], [2, 0, 12, 10]]), 0.5)),
    ]


match_detections = FunctionExercise(
    notebook=NOTEBOOK,
    name="match_detections",
    library=("helpers.metrics.match_detections", "helpers.matching.match_detections", "helpers.matching.greedy_match",
             "helpers.matching.match_groups", "helpers.metrics.evaluate_detections",
             "helpers.metrics.class_detections"),
    reference=metrics.match_detections,
    cases=_match_cases,
    hint="Compute the [N, M] IoU matrix once. Visit detections in order of decreasing score (torch.argsort with "
         "descending=True). For each, look only at boxes not taken yet; if the best IoU among them is >= the "
         "threshold, mark the detection True and the box taken. Return the flags in the input order.",
    solution='''
def match_detections(pred_boxes, pred_scores, gt_boxes, iou_threshold):
    iou = torchvision.ops.box_iou(pred_boxes, gt_boxes)  # [N, M]
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
    is_tp = torch.zeros(len(pred_boxes), dtype=torch.bool)
    for i in torch.argsort(pred_scores, descending=True).tolist():
        free = torch.where(taken, -1.0, iou[i])  # taken boxes cannot be matched again
        if len(free) > 0 and free.max() >= iou_threshold:
            taken[free.argmax()] = True
            is_tp[i] = True
    return is_tp
''',
)


# --------------------------------------------------------------------------------------------
# 4. Precision and recall down a ranked list
# --------------------------------------------------------------------------------------------


def _ranked_scores(n: int) -> torch.Tensor:
    return -torch.arange(n, dtype=torch.float64)  # already ranked: decreasing


def _precision_recall_reference(is_tp, num_gt):
    precision, recall = metrics.precision_recall_curve(_ranked_scores(len(is_tp)), is_tp, num_gt)
    return precision, recall


def _hidden_ranked_cases(generator: torch.Generator) -> list[Case]:
    cases = []
    for n in (6, 11):
        is_tp = torch.rand(n, generator=generator) < 0.5
        num_gt = int(is_tp.sum()) + int(torch.randint(1, 4, (), generator=generator))
        cases.append(Case(f"{n} ranked detections of {num_gt} objects", (is_tp, num_gt)))
    return cases


def _ranked_cases():
    return [
        Case("Problem 1 with C and E ranked first (6 objects)", (torch.tensor([1, 1, 0, 0, 0, 0], dtype=torch.bool), 6)),
        Case("Problem 1 with C and E ranked last", (torch.tensor([0, 0, 0, 0, 1, 1], dtype=torch.bool), 6)),
        Case("a mixed ranking of 8 detections of 5 objects", (torch.tensor([1, 0, 1, 1, 0, 0, 1, 0], dtype=torch.bool), 5)),
        Case("a single false positive", (torch.tensor([False]), 2)),
    ]


precision_recall = FunctionExercise(
    notebook=NOTEBOOK,
    name="precision_recall",
    library=("helpers.metrics.precision_recall_curve", "sklearn.metrics.precision_recall_curve"),
    reference=_precision_recall_reference,
    cases=_ranked_cases,
    hidden_cases=_hidden_ranked_cases,
    hint="torch.cumsum of the flags (as floats) counts the true positives among the first k+1 detections. "
         "Precision divides that count by k+1 (torch.arange(1, N + 1)); recall divides it by num_gt.",
    solution='''
def precision_recall(is_tp, num_gt):
    tp = torch.cumsum(is_tp.float(), dim=0)
    precision = tp / torch.arange(1, len(is_tp) + 1)
    recall = tp / num_gt
    return precision, recall
''',
)


# --------------------------------------------------------------------------------------------
# 5. All-point (VOC) AP of a ranked list
# --------------------------------------------------------------------------------------------


def _voc_ap_reference(is_tp, num_gt):
    return metrics.average_precision(_ranked_scores(len(is_tp)), is_tp, num_gt, "voc")


all_point_ap = FunctionExercise(
    notebook=NOTEBOOK,
    name="all_point_ap",
    library=("helpers.metrics.average_precision", "helpers.metrics.precision_envelope",
             "helpers.metrics._ap_of_ranked", "sklearn.metrics.average_precision_score"),
    reference=_voc_ap_reference,
    cases=_ranked_cases,
    hidden_cases=_hidden_ranked_cases,
    hint="Compute precision and recall as in the previous exercise. Replace each precision by the largest precision at the same rank or "
         "later (flip, torch.cummax, flip). Then add up envelope[k] * (recall[k] - recall[k-1]) with recall[-1] = 0: "
         "only ranks where recall grows contribute.",
    solution='''
def all_point_ap(is_tp, num_gt):
    tp = torch.cumsum(is_tp.float(), dim=0)
    precision = tp / torch.arange(1, len(is_tp) + 1)
    recall = tp / num_gt
    envelope = precision.flip(0).cummax(0).values.flip(0)
    recall_step = torch.diff(recall, prepend=torch.zeros(1))
    return float((envelope * recall_step).sum())
''',
)
