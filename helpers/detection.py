"""A small Faster R-CNN that trains from scratch on a CPU, its training and evaluation loops, and drawings.

The model is torchvision's `FasterRCNN` with every size turned down: a 4-block convolutional
backbone (stride 16 and 64 channels by default; notebook 03 uses stride 4), one feature map, anchors
of 3 sizes x 3 aspect ratios, a small two-layer box head, small images (128 pixels by default), and
few proposals. torchvision's defaults (800-pixel images, a 1024-wide head, 2000 proposals) are made
for GPUs and photographs, not for training in minutes on a laptop CPU.

Conventions are torchvision's: images float `[3,H,W]` in [0,1]; targets with `boxes` (xyxy float32)
and `labels` (int64, 1..K); predictions with `boxes`, `scores`, `labels`.
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch
import torch.nn as nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign
from helpers.session import capped_steps, progress_bar

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


def small_faster_rcnn(num_classes: int = NUM_CLASSES + 1, image_size: int = 128, channels: int = 64, stride: int = 16,
                      anchor_sizes=(16, 32, 64), aspect_ratios=(0.5, 1.0, 2.0), head_width: int = 256,
                      sampling_ratio: int = 2, rois_per_image: int = 64, roi_size: int = 7) -> FasterRCNN:
    """A Faster R-CNN small enough to train from scratch on a CPU in a couple of minutes.

    Args:
        num_classes: classes including background (ShapesScenes: 3 shapes + background = 4).
        image_size: images are resized to this (min_size = max_size), in pixels.
        channels: width of the backbone's last feature map; stride: its downsampling factor.
        anchor_sizes, aspect_ratios: one feature map, so one tuple of each (in resized pixels).
        head_width: width of the two fully connected layers of the box head.
        sampling_ratio: RoIAlign's bilinear samples per bin side. On a CPU, RoIAlign's backward pass is
            the costliest single operation of a training step, and it grows with sampling_ratio squared.
        rois_per_image: proposals per image the box head trains on at each step.
        roi_size: RoIAlign's output is `roi_size x roi_size` bins per proposal (torchvision's default is 7);
            fewer bins make RoIAlign's backward pass and the head's first layer cheaper.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2 (background included), got {num_classes!r}")
    if not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an int of at least 32, got {image_size!r}")
    if not isinstance(roi_size, int) or roi_size < 1:
        raise ValueError(f"roi_size must be a positive int (bins per side), got {roi_size!r}")
    backbone = small_backbone(channels, stride)
    anchors = AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=(tuple(aspect_ratios),))
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
        rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=100,
        rpn_pre_nms_top_n_test=150,
        rpn_post_nms_top_n_test=50,
        rpn_batch_size_per_image=128,
        box_roi_pool=roi_align,
        box_head=head,
        box_predictor=predictor,
        box_batch_size_per_image=rois_per_image,
        box_detections_per_img=50,
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def render(dataset, indices=None):
    """Render scenes once: `(images, targets)` lists, targets keeping only `boxes` and `labels`."""
    indices = range(len(dataset)) if indices is None else indices
    images, targets = [], []
    for i in indices:
        image, target = dataset[int(i)]
        images.append(image)
        targets.append({"boxes": target["boxes"], "labels": target["labels"]})
    return images, targets


def _flip(image: torch.Tensor, target: dict):
    """Mirror an image and its boxes left-right."""
    width = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    return image.flip(-1), {"boxes": boxes, "labels": target["labels"]}


def train_detector(model: FasterRCNN, images: list, targets: list, steps: int, batch_size: int = 8, lr: float = 0.02,
                   device="cpu", seed: int = 0, flip: bool = True, progress: bool = True, optimizer: str = "sgd",
                   cpu_threads: int | None = None) -> dict:
    """Train on random batches, with a linear warm-up and a cosine decay of the learning rate.

    optimizer: `"sgd"` (momentum 0.9, weight decay 1e-4) or `"adamw"` (weight decay 1e-4; use a
    learning rate near 1e-3).
    cpu_threads: on a CPU, torch's intra-op threads during training (restored afterwards); None keeps
    torch's setting (one per core). On a quiet 2-core machine 2 threads were about 8% faster than 1;
    on a CPU shared with other busy processes, 1 can be several times faster than fighting for cores.

    images: list of `[3,H,W]`; targets: list of dicts with `boxes`, `labels` (int64). Each step draws
    `batch_size` scenes at random (mirrored half the time when `flip`). Returns the history: a dict
    of lists, one value per step, for each of `LOSS_NAMES`, plus `loss` (their sum) and `seconds`
    (the wall time of the whole run, a one-element list).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    steps = capped_steps(steps)  # SEEING_NETWORKS_MAX_STEPS, for smoke tests (helpers.session)
    if optimizer not in ("sgd", "adamw"):
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}")
    if len(images) != len(targets) or len(images) == 0:
        raise ValueError(f"images and targets must be non-empty lists of the same length, got {len(images)} and {len(targets)}")
    for k, t in enumerate(targets):
        if t["labels"].dtype != torch.int64:
            raise TypeError(f"targets[{k}]['labels'] must be int64 (torchvision indexes with them), got {t['labels'].dtype}")
        widths = t["boxes"][:, 2:] - t["boxes"][:, :2]
        if len(widths) and bool((widths <= 0).any()):
            raise ValueError(f"targets[{k}]['boxes'] has a box with zero width or height (torchvision asserts on it)")
    device = torch.device(device)
    threads = torch.get_num_threads()
    if device.type == "cpu" and cpu_threads is not None:
        torch.set_num_threads(cpu_threads)
    try:
        return _train(model, images, targets, steps, batch_size, lr, device, seed, flip, progress, optimizer)
    finally:
        torch.set_num_threads(threads)


def _train(model, images, targets, steps, batch_size, lr, device, seed, flip, progress, optimizer) -> dict:
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    else:
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    warmup = max(1, min(100, steps // 10))

    def schedule(step):
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(1, steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + torch.cos(torch.tensor(progress_ * torch.pi)).item())

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    g = torch.Generator().manual_seed(seed)
    history = defaultdict(list)
    start = time.perf_counter()
    bar = progress_bar(range(steps), desc="training", disable=not progress)
    for step in bar:
        batch = torch.randint(len(images), (batch_size,), generator=g).tolist()
        flips = torch.rand(batch_size, generator=g) < 0.5 if flip else torch.zeros(batch_size, dtype=torch.bool)
        xs, ys = [], []
        for i, f in zip(batch, flips.tolist()):
            x, y = (_flip(images[i], targets[i]) if f else (images[i], targets[i]))
            xs.append(x.to(device))
            ys.append({k: v.to(device) for k, v in y.items()})
        losses = model(xs, ys)
        total = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optimizer.step()
        scheduler.step()
        for name in LOSS_NAMES:
            history[name].append(losses[name].item())
        history["loss"].append(total.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
    history["seconds"] = [time.perf_counter() - start]
    model.eval()
    return dict(history)


@torch.no_grad()
def predict(model: FasterRCNN, images: list, device="cpu", batch_size: int = 16, progress: bool = False) -> list:
    """Detections for a list of images: one dict per image (`boxes`, `scores`, `labels`), on the CPU."""
    model.to(device).eval()
    out = []
    for k in progress_bar(range(0, len(images), batch_size), desc="detecting", disable=not progress):
        batch = [x.to(device) for x in images[k:k + batch_size]]
        out += [{key: value.cpu() for key, value in d.items()} for d in model(batch)]
    return out


@torch.no_grad()
def proposals(model: FasterRCNN, images: list, device="cpu") -> list:
    """The RPN's proposals (after its NMS) for each image, xyxy `[P,4]` in the image's own pixels, best first."""
    model.to(device).eval()
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


def evaluate_detector(model: FasterRCNN, images: list, targets: list, device="cpu", batch_size: int = 16) -> tuple:
    """Detect on held-out scenes and score them: returns `(predictions, metrics)`.

    `metrics` is `helpers.metrics.mean_average_precision(predictions, targets)` (COCO AP) with, in
    addition, `voc_map_50` (VOC all-point AP at IoU 0.5).
    """
    predictions = predict(model, images, device, batch_size)
    metrics = mean_average_precision(predictions, targets)
    metrics["voc_map_50"] = mean_average_precision(predictions, targets, method="voc", iou_thresholds=[0.5])["map"]
    return predictions, metrics


# --------------------------------------------------------------------------------------------
# Drawings
# --------------------------------------------------------------------------------------------


def draw_proposals(ax, image: torch.Tensor, boxes: torch.Tensor, top: int = 30, title: str | None = None) -> None:
    """Draw an image with its `top` best proposals (xyxy `[P,4]`, best first) as thin white boxes."""
    from helpers.plot import draw_boxes, show_image

    show_image(ax, image, title)
    draw_boxes(ax, boxes[:top], colour="white", linewidth=0.6)


def draw_detections(ax, image: torch.Tensor, prediction: dict, target: dict | None = None, score_threshold: float = 0.5,
                    title: str | None = None) -> None:
    """Draw detections scoring at least `score_threshold` (class colours, with scores) and, if
    given, the ground truth as dashed white boxes."""
    from helpers.plot import draw_boxes, show_image

    show_image(ax, image, title)
    if target is not None:
        draw_boxes(ax, target["boxes"], colour="white", linestyle="--", linewidth=1.0)
    keep = prediction["scores"] >= score_threshold
    draw_boxes(ax, prediction["boxes"][keep], labels=prediction["labels"][keep], scores=prediction["scores"][keep])


def draw_pr_curve(ax, scores: torch.Tensor, is_tp: torch.Tensor, num_gt: int, label: str | None = None,
                  envelope: bool = True, colour=None, fill: bool = False, envelope_colour=None) -> None:
    """Plot a precision/recall curve (a step per detection, best score first) and, dashed, its envelope.

    The envelope is drawn so that the area under it is exactly the all-point AP: on each stretch of
    recall (recall[k-1], recall[k]] it holds the best precision reached at rank k or later. `fill`
    shades that area. Labelled lines appear in the legend ("envelope" is named after `label`).
    `envelope_colour` defaults to the curve's colour; a contrasting one shows where the two coincide.
    """
    from helpers.metrics import precision_envelope, precision_recall_curve

    precision, recall = precision_recall_curve(scores, is_tp, num_gt)
    recall = torch.cat([torch.zeros(1, dtype=recall.dtype), recall])
    precision = torch.cat([precision[:1], precision]) if len(precision) else torch.ones(1, dtype=recall.dtype)
    (line,) = ax.plot(recall.numpy(), precision.numpy(), drawstyle="steps-post", label=label, color=colour, lw=1.2)
    if envelope:
        best = precision_envelope(precision).numpy()
        name = f"{label}: envelope" if label else "envelope"
        ax.plot(recall.numpy(), best, drawstyle="steps-pre", ls="--", color=envelope_colour or line.get_color(), lw=1.6,
                label=name, zorder=3)
        if fill:
            ax.fill_between(recall.numpy(), best, step="pre", color=line.get_color(), alpha=0.15,
                            label="area under the envelope")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")


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
    from helpers.boxes import paired_box_iou

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


def draw_matches(ax, image: torch.Tensor, prediction: dict, target: dict, iou_threshold: float = 0.5,
                 title: str | None = None) -> torch.Tensor:
    """Draw one image's detections as true positives (green) or false positives (red, dotted), the
    ground truth dashed white, each class matched separately. Returns the flags, bool `[N]`."""
    from helpers.metrics import match_detections
    from helpers.plot import draw_boxes, show_image

    show_image(ax, image, title)
    draw_boxes(ax, target["boxes"], colour="white", linestyle="--", linewidth=1.0)
    is_tp = torch.zeros(len(prediction["scores"]), dtype=torch.bool)
    for label in prediction["labels"].unique().tolist():
        mine = prediction["labels"] == label
        gt = target["boxes"][target["labels"] == label]
        is_tp[mine] = match_detections(prediction["boxes"][mine], prediction["scores"][mine], gt, iou_threshold)
    for flags, colour, style in ((is_tp, "#2ecc40", "-"), (~is_tp, "#ff4136", ":")):
        draw_boxes(ax, prediction["boxes"][flags], colour=colour, linestyle=style, scores=prediction["scores"][flags])
    return is_tp


# --------------------------------------------------------------------------------------------
# Error analysis
# --------------------------------------------------------------------------------------------

#: What can go wrong with one true object, and with one kept detection (see `detection_errors`).
MISS_KINDS = ("wrong class", "low score", "loose box", "not found")
FALSE_POSITIVE_KINDS = ("duplicate", "wrong class", "loose box", "background")


def detection_errors(predictions: list, targets: list, score_threshold: float = 0.5, iou_threshold: float = 0.5,
                     loose_iou: float = 0.1) -> dict:
    """Sort every error of a detector, kept at `score_threshold`, into kinds.

    Detections scoring at least `score_threshold` are kept and matched to the ground truth class by
    class with `helpers.metrics.match_detections` at `iou_threshold`. Then:

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
    from helpers.metrics import match_detections

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
            flags = match_detections(boxes[mine], scores[mine], gt_boxes[theirs], iou_threshold)
            is_tp[mine] = flags
            if len(theirs) and bool(flags.any()):
                # which objects were taken: re-run the greedy rule to see who took what
                iou = _iou(boxes[mine], gt_boxes[theirs])
                taken = torch.zeros(len(theirs), dtype=torch.bool)
                for i in torch.sort(scores[mine], descending=True, stable=True).indices.tolist():
                    free = torch.where(taken, torch.full_like(iou[i], -1.0), iou[i])
                    if float(free.max()) >= iou_threshold:
                        j = int(len(free) - 1 - free.flip(0).argmax())
                        taken[j] = True
                found[theirs] = taken
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
