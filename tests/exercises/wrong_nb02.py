"""Plausible wrong answers for notebook 02's exercises."""

import torch
import torchvision


def iou_union_without_overlap(boxes1, boxes2):
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    return wh[..., 0] * wh[..., 1] / (area1[:, None] + area2[None, :])  # forgot "- intersection"


def iou_without_clamp(boxes1, boxes2):
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = rb - lt  # two negative sides multiply to a positive "overlap"
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


def iou_paired_only(boxes1, boxes2):
    n = min(len(boxes1), len(boxes2))
    return torchvision.ops.box_iou(boxes1, boxes2).diagonal()[:n]


def match_without_taking(pred_boxes, pred_scores, gt_boxes, iou_threshold):
    iou = torchvision.ops.box_iou(pred_boxes, gt_boxes)
    if iou.shape[1] == 0:
        return torch.zeros(len(pred_boxes), dtype=torch.bool)
    return iou.max(1).values >= iou_threshold  # duplicates count as true positives


def match_in_input_order(pred_boxes, pred_scores, gt_boxes, iou_threshold):
    iou = torchvision.ops.box_iou(pred_boxes, gt_boxes)
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
    is_tp = torch.zeros(len(pred_boxes), dtype=torch.bool)
    for i in range(len(pred_boxes)):  # ignores the scores
        free = torch.where(taken, -1.0, iou[i])
        if len(free) and free.max() >= iou_threshold:
            taken[free.argmax()] = True
            is_tp[i] = True
    return is_tp


def match_voc_style(pred_boxes, pred_scores, gt_boxes, iou_threshold):
    iou = torchvision.ops.box_iou(pred_boxes, gt_boxes)
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
    is_tp = torch.zeros(len(pred_boxes), dtype=torch.bool)
    for i in torch.argsort(pred_scores, descending=True).tolist():
        if iou.shape[1] == 0:
            break
        best = int(iou[i].argmax())  # PASCAL VOC: the best box overall, even if it is taken
        if iou[i, best] >= iou_threshold and not taken[best]:
            taken[best] = True
            is_tp[i] = True
    return is_tp


def match_flags_in_score_order(pred_boxes, pred_scores, gt_boxes, iou_threshold):
    order = torch.argsort(pred_scores, descending=True)
    iou = torchvision.ops.box_iou(pred_boxes[order], gt_boxes)
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
    is_tp = torch.zeros(len(pred_boxes), dtype=torch.bool)
    for k in range(len(order)):
        free = torch.where(taken, -1.0, iou[k])
        if len(free) and free.max() >= iou_threshold:
            taken[free.argmax()] = True
            is_tp[k] = True  # in score order, not in input order
    return is_tp


def pr_recall_over_detections(is_tp, num_gt):
    tp = torch.cumsum(is_tp.float(), 0)
    rank = torch.arange(1, len(is_tp) + 1)
    return tp / rank, tp / len(is_tp)


def pr_as_list(is_tp, num_gt):
    tp = torch.cumsum(is_tp.float(), 0)
    return [tp / torch.arange(1, len(is_tp) + 1), tp / num_gt]  # a list where a tuple is asked for


def pr_swapped(is_tp, num_gt):
    tp = torch.cumsum(is_tp.float(), 0)
    rank = torch.arange(1, len(is_tp) + 1)
    return tp / num_gt, tp / rank


def pr_not_cumulative(is_tp, num_gt):
    tp = is_tp.float()
    rank = torch.arange(1, len(is_tp) + 1)
    return tp / rank, tp / num_gt


def ap_without_envelope(is_tp, num_gt):
    tp = torch.cumsum(is_tp.float(), 0)
    precision = tp / torch.arange(1, len(is_tp) + 1)
    recall = tp / num_gt
    return float((precision * torch.diff(recall, prepend=torch.zeros(1))).sum())


def ap_final_precision(is_tp, num_gt):
    return float(is_tp.float().sum() / len(is_tp))  # the handout's "AP(0.5) = 1/3" is this


def ap_eleven_point(is_tp, num_gt):
    tp = torch.cumsum(is_tp.float(), 0)
    precision = tp / torch.arange(1, len(is_tp) + 1)
    recall = tp / num_gt
    total = 0.0
    for k in range(11):
        reach = recall >= k / 10
        total += float(precision[reach].max()) if reach.any() else 0.0
    return total / 11


WRONG = {
    "box_iou": [iou_union_without_overlap, iou_without_clamp, iou_paired_only],
    # the handout's 1/3; without the envelope (1/5 * 1/6 + 2/6 * 1/6); the 11-point AP; the last rank only
    "problem1_ap_worst": [1 / 3, 1 / 30 + 1 / 18, 4 / 33, 1 / 18],
    "match_detections": [match_without_taking, match_in_input_order, match_flags_in_score_order, match_voc_style],
    "precision_recall": [pr_recall_over_detections, pr_swapped, pr_not_cumulative, pr_as_list],
    "all_point_ap": [ap_without_envelope, ap_final_precision, ap_eleven_point],
}
