"""Plausible wrong answers for notebook 03's exercises."""

import torch
import torchvision


def _base(sizes, ratios, swap=False, size_major=False, rounded=True):
    sizes = torch.tensor(sizes, dtype=torch.float32)
    ratios = torch.tensor(ratios, dtype=torch.float32)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    if swap:  # ratio read as width / height
        h_ratios, w_ratios = w_ratios, h_ratios
    if size_major:
        ws = (sizes[:, None] * w_ratios[None, :]).reshape(-1)
        hs = (sizes[:, None] * h_ratios[None, :]).reshape(-1)
    else:
        ws = (w_ratios[:, None] * sizes[None, :]).reshape(-1)
        hs = (h_ratios[:, None] * sizes[None, :]).reshape(-1)
    base = torch.stack([-ws, -hs, ws, hs], dim=1) / 2
    return base.round() if rounded else base


def _grid(base, feature_size, stride, centre=False):
    height, width = feature_size
    ys, xs = torch.meshgrid(torch.arange(height) * stride, torch.arange(width) * stride, indexing="ij")
    shifts = torch.stack([xs, ys, xs, ys], dim=-1).reshape(-1, 1, 4).float()
    if centre:
        shifts = shifts + stride / 2
    return (shifts + base[None]).reshape(-1, 4)


def anchors_ratio_swapped(sizes, aspect_ratios, feature_size, stride):
    return _grid(_base(sizes, aspect_ratios, swap=True), feature_size, stride)


def anchors_at_cell_centres(sizes, aspect_ratios, feature_size, stride):
    return _grid(_base(sizes, aspect_ratios), feature_size, stride, centre=True)


def anchors_sizes_slowest(sizes, aspect_ratios, feature_size, stride):
    return _grid(_base(sizes, aspect_ratios, size_major=True), feature_size, stride)


def anchors_not_rounded(sizes, aspect_ratios, feature_size, stride):
    return _grid(_base(sizes, aspect_ratios, rounded=False), feature_size, stride)


def anchors_float64(sizes, aspect_ratios, feature_size, stride):
    return _grid(_base(sizes, aspect_ratios), feature_size, stride).double()  # right values, float64 not float32


def anchors_only_base(sizes, aspect_ratios, feature_size, stride):
    return _base(sizes, aspect_ratios)


def _centres(b):
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return b[:, 0] + 0.5 * w, b[:, 1] + 0.5 * h, w, h


def encode_without_weights(boxes, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    cxa, cya, wa, ha = _centres(anchors)
    cx, cy, w, h = _centres(boxes)
    return torch.stack([(cx - cxa) / wa, (cy - cya) / ha, torch.log(w / wa), torch.log(h / ha)], dim=1)


def encode_without_log(boxes, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    wx, wy, ww, wh = weights
    cxa, cya, wa, ha = _centres(anchors)
    cx, cy, w, h = _centres(boxes)
    return torch.stack([wx * (cx - cxa) / wa, wy * (cy - cya) / ha, ww * (w / wa), wh * (h / ha)], dim=1)


def encode_unnormalised_shift(boxes, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    wx, wy, ww, wh = weights
    cxa, cya, wa, ha = _centres(anchors)
    cx, cy, w, h = _centres(boxes)
    return torch.stack([wx * (cx - cxa), wy * (cy - cya), ww * torch.log(w / wa), wh * torch.log(h / ha)], dim=1)


def decode_ignoring_weights(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    cxa, cya, wa, ha = _centres(anchors)
    cx, cy = deltas[:, 0] * wa + cxa, deltas[:, 1] * ha + cya
    w, h = torch.exp(deltas[:, 2]) * wa, torch.exp(deltas[:, 3]) * ha
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=1)


def decode_without_exp(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    wx, wy, ww, wh = weights
    cxa, cya, wa, ha = _centres(anchors)
    cx, cy = deltas[:, 0] / wx * wa + cxa, deltas[:, 1] / wy * ha + cya
    w, h = (1 + deltas[:, 2] / ww) * wa, (1 + deltas[:, 3] / wh) * ha
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=1)


def decode_returns_centres(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    wx, wy, ww, wh = weights
    cxa, cya, wa, ha = _centres(anchors)
    cx, cy = deltas[:, 0] / wx * wa + cxa, deltas[:, 1] / wy * ha + cya
    w, h = torch.exp(deltas[:, 2] / ww) * wa, torch.exp(deltas[:, 3] / wh) * ha
    return torch.stack([cx, cy, w, h], dim=1)


def nms_input_order(boxes, scores, iou_threshold):
    iou = torchvision.ops.box_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in range(len(boxes)):  # forgets to visit the best scores first
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def nms_sorted_indices(boxes, scores, iou_threshold):
    keep = torchvision.ops.nms(boxes, scores, iou_threshold)
    return keep.sort().values  # right boxes, wrong order


def nms_suppress_any_overlap(boxes, scores, iou_threshold):
    return torchvision.ops.nms(boxes, scores, 0.0)


def nms_int32(boxes, scores, iou_threshold):
    return torchvision.ops.nms(boxes, scores, iou_threshold).int()  # right indices, int32 not int64


def nms_mask(boxes, scores, iou_threshold):
    mask = torch.zeros(len(boxes), dtype=torch.bool)
    mask[torchvision.ops.nms(boxes, scores, iou_threshold)] = True
    return mask


WRONG = {
    "make_anchors": [anchors_ratio_swapped, anchors_at_cell_centres, anchors_sizes_slowest, anchors_not_rounded, anchors_only_base, anchors_float64],
    "encode_boxes": [encode_without_weights, encode_without_log, encode_unnormalised_shift],
    "decode_boxes": [decode_ignoring_weights, decode_without_exp, decode_returns_centres],
    "nms": [nms_input_order, nms_sorted_indices, nms_suppress_any_overlap, nms_mask, nms_int32],
}


# --- rpn_losses -------------------------------------------------------------------------------

import torch.nn.functional as F  # noqa: E402


def rpn_box_loss_per_positive(objectness, deltas, labels, targets, sampled):
    # divides by the positives: the paper's spirit, not torchvision's normalisation
    positives = sampled[labels[sampled] == 1]
    box = F.smooth_l1_loss(deltas[positives], targets[positives], beta=1 / 9, reduction="sum") / max(1, len(positives))
    return F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled]), box


def rpn_plain_smooth_l1(objectness, deltas, labels, targets, sampled):
    # smooth L1 with torch's default beta = 1, not the RPN's 1/9
    positives = sampled[labels[sampled] == 1]
    box = F.smooth_l1_loss(deltas[positives], targets[positives], reduction="sum") / len(sampled)
    return F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled]), box


def rpn_every_anchor(objectness, deltas, labels, targets, sampled):
    # ignores the sampling: every positive and negative anchor
    used = torch.where(labels >= 0)[0]
    positives = torch.where(labels == 1)[0]
    box = F.smooth_l1_loss(deltas[positives], targets[positives], beta=1 / 9, reduction="sum") / len(used)
    return F.binary_cross_entropy_with_logits(objectness[used], labels[used]), box


def rpn_box_loss_on_all_sampled(objectness, deltas, labels, targets, sampled):
    # regresses the negatives' boxes too
    box = F.smooth_l1_loss(deltas[sampled], targets[sampled], beta=1 / 9, reduction="sum") / len(sampled)
    return F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled]), box


def rpn_mean_box_loss(objectness, deltas, labels, targets, sampled):
    # averages over the positives' 4 coordinates as well
    positives = sampled[labels[sampled] == 1]
    box = F.smooth_l1_loss(deltas[positives], targets[positives], beta=1 / 9) if len(positives) else deltas.sum() * 0
    return F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled]), box


WRONG["rpn_losses"] = [rpn_box_loss_per_positive, rpn_plain_smooth_l1, rpn_every_anchor, rpn_box_loss_on_all_sampled,
                       rpn_mean_box_loss]
