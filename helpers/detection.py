"""A small Faster R-CNN that trains from scratch on a CPU: the model, its mini-batches and losses for
`helpers.train.fit`, detecting, evaluating, and sorting its errors. The drawings are in `helpers.plot`.

The model is torchvision's `FasterRCNN` with every size turned down: a 4-block convolutional
backbone (stride 16 and 64 channels by default; notebook 03 uses stride 4), one feature map, anchors
of 3 sizes x 3 aspect ratios, a small two-layer box head, small images (128 pixels by default), and
few proposals. torchvision's defaults (800-pixel images, a 1024-wide head, 2000 proposals) are made
for GPUs and photographs, not for training in minutes on a laptop CPU.

Conventions are torchvision's: images float `[3,H,W]` in [0,1]; targets with `boxes` (xyxy float32)
and `labels` (int64, 1..K); predictions with `boxes`, `scores`, `labels`.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign
from helpers.session import progress_bar

from helpers.data import NUM_CLASSES
from helpers.metrics import mean_average_precision

#: The four losses torchvision's Faster R-CNN returns in training mode, and what each one trains.
LOSS_NAMES = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg")
LOSS_MEANING = {
    "loss_objectness": "RPN: is there an object at this anchor? (binary cross-entropy)",
    "loss_rpn_box_reg": "RPN: move a positive anchor onto its object (smooth L1 on the deltas)",
    "loss_classifier": "head: which class is this proposal, or background? (cross-entropy)",
    "loss_box_reg": "head: refine the proposal's box for its true class (smooth L1 on the deltas)",
}


def small_backbone(channels: int = 64, stride: int = 16) -> nn.Module:
    """Four conv-BN-ReLU blocks: `[B,3,H,W]` -> `[B,channels,H/stride,W/stride]`.

    Each block is two 3x3 convolutions; the second halves the resolution in the first log2(stride)
    blocks. Has the `out_channels` attribute `FasterRCNN` needs.
    """
    if not isinstance(channels, int) or channels < 8:
        raise ValueError(f"channels must be an int of at least 8, got {channels!r}")
    if stride not in (2, 4, 8, 16):
        raise ValueError(f"stride must be 2, 4, 8 or 16, got {stride!r}")
    halvings = {2: 1, 4: 2, 8: 3, 16: 4}[stride]
    widths = [3, channels // 4, channels // 2, channels, channels]
    layers = []
    for k, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                   nn.Conv2d(c_out, c_out, 3, stride=2 if k < halvings else 1, padding=1, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    backbone = nn.Sequential(*layers)
    backbone.out_channels = channels
    return backbone


class BinCentreRoIAlign(MultiScaleRoIAlign):
    """torchvision's `MultiScaleRoIAlign(featmap_names=[featmap_name], output_size=s, sampling_ratio=1)`
    on a single feature map, computed with `grid_sample` (for `FasterRCNN`'s `box_roi_pool`).

    It gives the same numbers (tests check values and gradients): with one sample per bin, RoI Align
    is a bilinear read at the centre of each of the `s x s` bins, which is what `F.grid_sample` does.
    The reason for it is speed on a CPU, where torchvision's RoI Align runs on one core. For 256
    proposals of 64 channels into 5x5 bins, forward and backward took 7.8 ms with torchvision's op
    (on 1 or 2 threads alike) and 3.1 ms with this one on 1 thread, 1.8 ms on 2 (AMD EPYC).

    forward(features `{name: [B, C, H, W]}`, proposals: B tensors `[R_i, 4]` xyxy in the resized
    image's pixels, image_shapes: B `(h, w)`) -> `[sum R_i, C, s, s]`, images in order.
    """

    def __init__(self, output_size: int, featmap_name: str = "0"):
        if not isinstance(output_size, int) or output_size < 1:
            raise ValueError(f"output_size must be a positive int (bins per side), got {output_size!r}")
        super().__init__(featmap_names=[featmap_name], output_size=output_size, sampling_ratio=1)

    def forward(self, features: dict, proposals: list, image_shapes: list) -> torch.Tensor:
        x = features[self.featmap_names[0]]
        height, width = x.shape[-2:]
        tallest = max(h for h, _ in image_shapes)
        scale = 2.0 ** round(math.log2(height / tallest))  # the stride, inferred as MultiScaleRoIAlign does
        bins = self.output_size[0]
        centres = (torch.arange(bins, device=x.device, dtype=x.dtype) + 0.5) / bins
        return torch.cat([self._pool(image, boxes * scale, centres) for image, boxes in zip(x, proposals)])

    @staticmethod
    def _pool(image: torch.Tensor, boxes: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """One image's features `[C, H, W]` read at the bin centres of `boxes` `[R, 4]` (feature-map
        cells) -> `[R, C, s, s]`."""
        channels, height, width = image.shape
        s, r = len(centres), len(boxes)
        sides = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0)  # torchvision makes every box at least one cell
        xs = boxes[:, 0:1] + centres * sides[:, 0:1]  # [R, s], in cells
        ys = boxes[:, 1:2] + centres * sides[:, 1:2]
        inside = ((ys >= -1) & (ys <= height))[:, :, None] & ((xs >= -1) & (xs <= width))[:, None, :]  # torchvision reads 0 beyond
        grid = torch.stack(torch.broadcast_tensors(xs[:, None, :] / (width - 1) * 2 - 1, ys[:, :, None] / (height - 1) * 2 - 1), -1)
        read = F.grid_sample(image[None], grid.reshape(1, r * s, s, 2), mode="bilinear", padding_mode="border",
                             align_corners=True)  # [1, C, R*s, s]; border: torchvision clamps to the edge cells
        return read.reshape(channels, r, s, s).transpose(0, 1) * inside[:, None]


def small_faster_rcnn(num_classes: int = NUM_CLASSES + 1, image_size: int = 128, channels: int = 64, stride: int = 16,
                      anchor_sizes=(16, 32, 64), aspect_ratios=(0.5, 1.0, 2.0), head_width: int = 256,
                      sampling_ratio: int = 2, rois_per_image: int = 64, roi_size: int = 7,
                      positive_fraction: float = 0.25) -> FasterRCNN:
    """A Faster R-CNN small enough to train from scratch on a CPU in a couple of minutes.

    Args:
        num_classes: classes including background (ShapesScenes: 3 shapes + background = 4).
        image_size: images are resized to this (min_size = max_size), in pixels.
        channels: width of the backbone's last feature map; stride: its downsampling factor.
        anchor_sizes, aspect_ratios: one feature map, so one tuple of each (in resized pixels).
        head_width: width of the two fully connected layers of the box head.
        sampling_ratio: RoIAlign's bilinear samples per bin side. With 1, the model pools with
            `BinCentreRoIAlign` (the same numbers as torchvision's op, several times faster on a CPU);
            otherwise with torchvision's `MultiScaleRoIAlign`, whose backward pass is then the costliest
            single operation of a CPU training step, growing with sampling_ratio squared.
        rois_per_image: proposals per image the box head trains on at each step.
        roi_size: RoIAlign's output is `roi_size x roi_size` bins per proposal (torchvision's default is 7);
            fewer bins make RoIAlign's backward pass and the head's first layer cheaper.
        positive_fraction: at most this share of the `rois_per_image` proposals the head trains on
            are positives (proposals on an object); torchvision's default is 0.25.

    Proposals: in training the RPN keeps its 150 best-scoring anchors per image before NMS and 50
    after it, out of which the head samples its `rois_per_image`; at test time it keeps 300 and
    100, and the head reports every detection scoring at least 0.01 (torchvision: 0.05), up to 50
    per image. Fewer proposals make a training step cheaper (NMS is quadratic in them); more of
    them, and low-scoring detections, at test time raise recall, which AP rewards.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2 (background included), got {num_classes!r}")
    if not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an int of at least 32, got {image_size!r}")
    if not isinstance(roi_size, int) or roi_size < 1:
        raise ValueError(f"roi_size must be a positive int (bins per side), got {roi_size!r}")
    if not 0 < positive_fraction <= 1:
        raise ValueError(f"positive_fraction must be in (0, 1], got {positive_fraction!r}")
    backbone = small_backbone(channels, stride)
    anchors = AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=(tuple(aspect_ratios),))
    if sampling_ratio == 1:
        roi_align = BinCentreRoIAlign(roi_size, featmap_name="0")
    else:
        roi_align = MultiScaleRoIAlign(featmap_names=["0"], output_size=roi_size, sampling_ratio=sampling_ratio)
    head = TwoMLPHead(channels * roi_size * roi_size, head_width)
    predictor = FastRCNNPredictor(head_width, num_classes)
    return FasterRCNN(
        backbone,
        num_classes=None,  # given through box_predictor (passing both is an error)
        min_size=image_size,
        max_size=image_size,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.25, 0.25, 0.25],
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=150,
        rpn_post_nms_top_n_train=50,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=100,
        rpn_batch_size_per_image=128,
        box_roi_pool=roi_align,
        box_head=head,
        box_predictor=predictor,
        box_batch_size_per_image=rois_per_image,
        box_positive_fraction=positive_fraction,
        box_score_thresh=0.01,
        box_detections_per_img=50,
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def random_scene_batches(images, targets: list, batch_size: int, flip: bool = True, seed: int = 0) -> Iterator[tuple]:
    """Endless mini-batches of scenes for `helpers.train.fit`: `(list of images, list of targets)`.

    images: `[n, 3, H, W]` (or a list of `[3, H, W]`); targets: n dicts with `boxes` (xyxy) and
    `labels` (int64), as `helpers.data.render(..., "targets")` gives. Each batch draws `batch_size`
    scenes at random (with replacement), and mirrors each left-right, boxes included, with
    probability 1/2 when `flip`. Scenes torchvision would crash on are refused up front.
    """
    if len(images) != len(targets) or len(images) == 0:
        raise ValueError(f"images and targets must be non-empty and of the same length, got {len(images)} and {len(targets)}")
    for k, t in enumerate(targets):
        if t["labels"].dtype != torch.int64:
            raise TypeError(f"targets[{k}]['labels'] must be int64 (torchvision indexes with them), got {t['labels'].dtype}")
        sides = t["boxes"][:, 2:] - t["boxes"][:, :2]
        if bool((sides <= 0).any()):
            raise ValueError(f"targets[{k}]['boxes'] has a box with zero width or height (torchvision asserts on it)")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    g = torch.Generator().manual_seed(seed)
    while True:
        picks = torch.randint(len(images), (batch_size,), generator=g).tolist()
        mirror = (torch.rand(batch_size, generator=g) < 0.5).tolist() if flip else [False] * batch_size
        pairs = [mirrored(images[i], targets[i]) if m else (images[i], targets[i]) for i, m in zip(picks, mirror)]
        yield [x for x, _ in pairs], [y for _, y in pairs]


def mirrored(image: torch.Tensor, target: dict) -> tuple:
    """An image `[3, H, W]` and its target mirrored left-right (boxes' x-coordinates reflected, and
    the instance masks `[N, H, W]` flipped when the target has them)."""
    width = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    flipped = {"boxes": boxes, "labels": target["labels"]}
    if "masks" in target:
        flipped["masks"] = target["masks"].flip(-1)
    return image.flip(-1), flipped


def detection_losses(model: FasterRCNN, batch: tuple) -> dict:
    """The step of `helpers.train.fit` for a detector: batch `(images, targets)` -> torchvision's
    four losses (`LOSS_NAMES`), scalars whose sum `fit` minimises. The batch is moved to the model's
    device, so the scenes can stay on the CPU."""
    device = next(model.parameters()).device
    images, targets = batch
    return model([x.to(device) for x in images], [{k: v.to(device) for k, v in t.items()} for t in targets])


def use_rpn_losses(model: FasterRCNN, rpn_losses) -> FasterRCNN:
    """Make the model's RPN compute its two losses with `rpn_losses`, one image at a time.

    rpn_losses: `(objectness [N], deltas [N, 4], labels [N], targets [N, 4], sampled int64 [S]) ->
    (loss_objectness, loss_rpn_box_reg)` for one image (notebook 03's exercise). The RPN still labels
    and samples the anchors; the per-image losses are combined weighted by each image's sampled
    anchors, which gives exactly torchvision's batch losses (a mean over all sampled anchors, and a
    sum over their positives divided by their number). Returns the model, changed in place.
    """
    rpn = model.rpn

    def compute_loss(objectness, pred_bbox_deltas, labels, regression_targets):
        positive, negative = rpn.fg_bg_sampler(labels)
        counts = [len(l) for l in labels]
        per_image = zip(objectness.flatten().split(counts), pred_bbox_deltas.split(counts), labels, regression_targets,
                        positive, negative)
        losses, weights = [], []
        for obj, deltas, lab, targets, pos, neg in per_image:
            sampled = torch.where(pos | neg)[0]
            losses.append(rpn_losses(obj, deltas, lab, targets, sampled))
            weights.append(len(sampled))
        total = sum(weights)
        return (sum(l[0] * w for l, w in zip(losses, weights)) / total, sum(l[1] * w for l, w in zip(losses, weights)) / total)

    rpn.compute_loss = compute_loss
    return model


def record_head_positives(model: FasterRCNN) -> list:
    """Start recording, at every training step, how many of the proposals the box head samples are
    positives (on an object), per image on average. Returns the list that each step appends to."""
    counts = []
    select = model.roi_heads.select_training_samples

    def recording(proposals, targets):
        out = select(proposals, targets)
        labels = out[2]
        counts.append(sum(int((l > 0).sum()) for l in labels) / len(labels))
        return out

    model.roi_heads.select_training_samples = recording
    return counts


def add_mask_head(model: FasterRCNN, roi_size: int = 7, width: int = 64) -> FasterRCNN:
    """Give the detector Mask R-CNN's fifth output, a mask per detection, from torchvision's parts.

    The box head's RoIs are read again (`roi_size` bins a side, one sample per bin) by a mask head of
    two 3x3 convolutions of `width` channels and a 2x upsampling predictor that scores each pixel of a
    `2 roi_size` square, one map per class. In training the model then also returns `loss_mask` (per
    pixel binary cross-entropy on the positive RoIs, for their true class) when the targets hold
    `masks` `[N, H, W]`; at test time each detection gets `masks` `[1, H, W]`, probabilities pasted
    into the image. Returns the model, changed in place; only the new parts are trainable.
    """
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

    for p in model.parameters():
        p.requires_grad_(False)
    heads = model.roi_heads
    heads.mask_roi_pool = BinCentreRoIAlign(roi_size, featmap_name="0")
    heads.mask_head = MaskRCNNHeads(model.backbone.out_channels, (width, width), 1)
    heads.mask_predictor = MaskRCNNPredictor(width, width, heads.box_predictor.cls_score.out_features)
    return model


def mask_losses(model: FasterRCNN, batch: tuple) -> dict:
    """The step of `helpers.train.fit` for a mask head on a trained, frozen detector: batch
    `(images, targets with masks)` -> `{"loss_mask": ...}`. The backbone's batch norm stays in
    evaluation mode, so the frozen detector computes exactly what it was trained to."""
    model.backbone.eval()
    return {"loss_mask": detection_losses(model, batch)["loss_mask"]}


def mask_average_precision(predictions: list, targets: list, iou_threshold: float = 0.5, mask_threshold: float = 0.5) -> dict:
    """Mask AP: `helpers.metrics.average_precision` (COCO's 101 points) with detections matched by the
    IoU of their masks instead of their boxes (greedily, best score first, class by class).

    predictions: dicts with `masks` float `[N, 1, H, W]` (probabilities; a pixel belongs to the mask
    when >= mask_threshold), `scores` `[N]`, `labels` `[N]`; targets: dicts with `masks` `[M, H, W]`
    and `labels` `[M]`. Returns `{"map": mean over classes, "ap_per_class": {label: AP}}`.
    """
    from helpers.metrics import average_precision

    classes = sorted({int(c) for t in targets for c in t["labels"]})
    ap = {}
    for c in classes:
        scores, hits, num_gt = [], [], 0
        for p, t in zip(predictions, targets):
            gt = t["masks"][t["labels"] == c].flatten(1).bool()
            mine = p["labels"] == c
            order = torch.argsort(p["scores"][mine], descending=True)
            det = (p["masks"][mine][order, 0] >= mask_threshold).flatten(1)
            num_gt += len(gt)
            inter = det.float() @ gt.float().T
            iou = inter / (det.sum(1, keepdim=True) + gt.sum(1)[None] - inter).clamp(min=1)
            taken = torch.zeros(len(gt), dtype=torch.bool)
            for k in range(len(det)):
                candidates = torch.where(~taken & (iou[k] >= iou_threshold), iou[k], torch.tensor(-1.0))
                hit = len(gt) > 0 and bool(candidates.max() >= 0)
                if hit:
                    taken[int(candidates.argmax())] = True
                hits.append(hit)
            scores.append(p["scores"][mine][order])
        ap[c] = average_precision(torch.cat(scores), torch.tensor(hits, dtype=torch.bool), num_gt, method="coco")
    return {"map": sum(ap.values()) / len(ap), "ap_per_class": ap}


@torch.no_grad()
def detect(model: FasterRCNN, images, batch_size: int = 16, progress: bool = False) -> list:
    """Detections for images `[n, 3, H, W]` (or a list of `[3, H, W]`), on the model's device: one
    dict per image (`boxes`, `scores`, `labels`), on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for k in progress_bar(range(0, len(images), batch_size), desc="detecting", disable=not progress):
        batch = [x.to(device) for x in images[k:k + batch_size]]
        out += [{key: value.cpu() for key, value in d.items()} for d in model(batch)]
    return out


@torch.no_grad()
def proposals(model: FasterRCNN, images) -> list:
    """The RPN's proposals (after its NMS) for each image, xyxy `[P,4]` in the image's own pixels, best first."""
    model.eval()
    device = next(model.parameters()).device
    batch = [x.to(device) for x in images]
    sizes = [tuple(x.shape[-2:]) for x in batch]
    image_list, _ = model.transform(batch)
    features = model.backbone(image_list.tensors)
    features = {"0": features} if isinstance(features, torch.Tensor) else features
    boxes, _ = model.rpn(image_list, features)
    # back from the resized frame to each original image
    out = []
    for b, resized, original in zip(boxes, image_list.image_sizes, sizes):
        scale = torch.tensor([original[1] / resized[1], original[0] / resized[0]] * 2, device=b.device)
        out.append((b * scale).cpu())
    return out


def evaluate_detector(model: FasterRCNN, images, targets: list, batch_size: int = 16) -> tuple:
    """Detect on held-out scenes and score them: returns `(predictions, metrics)`.

    `metrics` is `helpers.metrics.mean_average_precision(predictions, targets)` (COCO AP) with, in
    addition, `voc_map_50` (VOC all-point AP at IoU 0.5).
    """
    predictions = detect(model, images, batch_size)
    metrics = mean_average_precision(predictions, targets)
    metrics["voc_map_50"] = mean_average_precision(predictions, targets, method="voc", iou_thresholds=[0.5])["map"]
    return predictions, metrics


# --------------------------------------------------------------------------------------------
# Error analysis
# --------------------------------------------------------------------------------------------

def detection_errors(predictions: list, targets: list, score_threshold: float = 0.5, iou_threshold: float = 0.5,
                     loose_iou: float = 0.1) -> dict:
    """Sort every error of a detector, kept at `score_threshold`, into kinds.

    Detections scoring at least `score_threshold` are kept and matched to the ground truth class by
    class with `helpers.matching.greedy_match` at `iou_threshold`. Then:

    - each true object left unmatched (a *miss*) is, in this order of precedence, `"wrong class"` (a
      kept detection of another class covers it with IoU >= iou_threshold), `"low score"` (a
      detection of its class covers it but scored below the threshold), `"loose box"` (a kept
      detection of its class overlaps it with loose_iou <= IoU < iou_threshold) or `"not found"`;
    - each kept detection left unmatched (a *false positive*) is `"duplicate"` (its class's object
      was already taken), `"wrong class"`, `"loose box"` or `"background"` (IoU < loose_iou with
      every object).

    For each error it also records whether the object concerned (for a false positive: the object
    it overlaps most, if any) *overlaps* another object's box, and its box area in pixels.

    Returns a dict: `misses`, `false_positives` (int64 `[n_images]`, per image), and `errors`, a list
    of dicts `{"image", "kind" ("miss" or "false positive"), "why", "overlapping", "area"}`.
    """
    from helpers.matching import greedy_match

    if len(predictions) != len(targets):
        raise ValueError(f"predictions and targets must have the same length, got {len(predictions)} and {len(targets)}")
    misses = torch.zeros(len(targets), dtype=torch.int64)
    false_positives = torch.zeros(len(targets), dtype=torch.int64)
    errors = []
    for k, (pred, target) in enumerate(zip(predictions, targets)):
        gt_boxes, gt_labels = target["boxes"].float(), target["labels"]
        kept = pred["scores"] >= score_threshold
        boxes, labels, scores = pred["boxes"].float(), pred["labels"], pred["scores"]
        is_tp = torch.zeros(len(scores), dtype=torch.bool)
        found = torch.zeros(len(gt_labels), dtype=torch.bool)
        for c in labels[kept].unique().tolist():
            mine = (kept & (labels == c)).nonzero().flatten()
            theirs = (gt_labels == c).nonzero().flatten()
            took = greedy_match(boxes[mine], scores[mine], gt_boxes[theirs], iou_threshold)  # who took which object
            is_tp[mine] = took >= 0
            found[theirs[took[took >= 0]]] = True
        iou = _iou(boxes, gt_boxes)  # [detections, objects]
        gt_overlap = _iou(gt_boxes, gt_boxes) > 0
        overlapping = (gt_overlap.sum(1) > 1) if len(gt_labels) else torch.zeros(0, dtype=torch.bool)
        area = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
        same = labels[:, None] == gt_labels[None, :]
        for j in (~found).nonzero().flatten().tolist():
            if bool((kept & ~same[:, j] & (iou[:, j] >= iou_threshold)).any()):
                why = "wrong class"
            elif bool((~kept & same[:, j] & (iou[:, j] >= iou_threshold)).any()):
                why = "low score"
            elif bool((kept & same[:, j] & (iou[:, j] >= loose_iou)).any()):
                why = "loose box"
            else:
                why = "not found"
            errors.append({"image": k, "kind": "miss", "why": why, "overlapping": bool(overlapping[j]), "area": float(area[j])})
            misses[k] += 1
        for i in (kept & ~is_tp).nonzero().flatten().tolist():
            if len(gt_labels) == 0 or float(iou[i].max()) < loose_iou:
                errors.append({"image": k, "kind": "false positive", "why": "background", "overlapping": False, "area": float("nan")})
            else:
                j = int(iou[i].argmax())
                same_ok = same[i] & (iou[i] >= iou_threshold)
                if bool(same_ok.any()):
                    why, j = "duplicate", int(torch.where(same_ok, iou[i], torch.zeros_like(iou[i])).argmax())
                elif bool((~same[i] & (iou[i] >= iou_threshold)).any()):
                    why = "wrong class"
                else:
                    why = "loose box"
                errors.append({"image": k, "kind": "false positive", "why": why, "overlapping": bool(overlapping[j]),
                               "area": float(area[j])})
            false_positives[k] += 1
    return {"misses": misses, "false_positives": false_positives, "errors": errors}


def _iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    from helpers.boxes import box_iou

    if len(boxes1) == 0 or len(boxes2) == 0:
        return torch.zeros(len(boxes1), len(boxes2))
    return box_iou(boxes1.float(), boxes2.float())
