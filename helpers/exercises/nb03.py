"""Exercises of notebook 03: anchors, box encoding and decoding, non-maximum suppression, the RPN's losses."""

from __future__ import annotations

from functools import partial

import torch
import torchvision
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from helpers import boxes
from helpers.exercises.compare import compare_tensors
from helpers.exercises.core import Case, FunctionExercise

NOTEBOOK = "03_faster_rcnn"


def reference_anchors(sizes, aspect_ratios, feature_size, stride) -> torch.Tensor:
    """Anchors of one feature map as torchvision's `AnchorGenerator` makes them: `[H * W * A, 4]` xyxy.

    sizes: anchor sizes (square root of the area), aspect_ratios: height / width, feature_size: (H, W),
    stride: pixels per feature-map cell. Order: position (row by row), then ratio, then size.
    """
    generator = AnchorGenerator(sizes=(tuple(sizes),), aspect_ratios=(tuple(aspect_ratios),))
    height, width = feature_size
    image_size = (height * stride, width * stride)
    images = ImageList(torch.zeros(1, 3, *image_size), [image_size])
    return generator(images, [torch.zeros(1, 1, height, width)])[0]


def _random_boxes(n: int, seed: int, offset: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 60 + offset
    return torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=g) * 30], 1)


# --------------------------------------------------------------------------------------------
# 1. Anchors
# --------------------------------------------------------------------------------------------


def _anchor_cases():
    return [
        Case("one size, one ratio, a 2x2 map, stride 16", ((32,), (1.0,), (2, 2), 16)),
        Case("sizes (16, 32, 64), ratios (0.5, 1, 2), a 4x5 map, stride 16", ((16, 32, 64), (0.5, 1.0, 2.0), (4, 5), 16)),
        Case("size 8, ratios (0.5, 2), a 3x3 map, stride 4", ((8,), (0.5, 2.0), (3, 3), 4)),
    ]


def _hidden_anchor_cases(g: torch.Generator) -> list[Case]:
    def pick(options, k):
        return tuple(options[i] for i in sorted(torch.randperm(len(options), generator=g)[:k].tolist()))

    cases = []
    for _ in range(2):
        sizes, ratios = pick((8, 12, 16, 24, 32, 48), 2), pick((0.5, 0.75, 1.0, 1.5, 2.0), 2)
        h, w = (int(n) for n in torch.randint(2, 6, (2,), generator=g))
        stride = pick((4, 8, 16), 1)[0]
        cases.append(Case(f"sizes {sizes}, ratios {ratios}, a {h}x{w} map, stride {stride}", (sizes, ratios, (h, w), stride)))
    return cases


make_anchors = FunctionExercise(
    notebook=NOTEBOOK,
    name="make_anchors",
    library=("torchvision.models.detection.anchor_utils.AnchorGenerator", "helpers.exercises.nb03.reference_anchors"),
    reference=reference_anchors,
    cases=_anchor_cases,
    compare=partial(compare_tensors, exact_dtype=True),  # the text asks for float32, as torchvision makes them
    hidden_cases=_hidden_anchor_cases,
    hint="First the A = len(ratios) * len(sizes) base anchors centred on (0, 0): for ratio r = height / width and "
         "size s, height = s * sqrt(r), width = s / sqrt(r) (area s**2); ratios vary slowest; round the corners "
         "with .round(). Then shift copies of them to every cell's top-left pixel (x = column * stride, "
         "y = row * stride, rows outermost): shifts [H*W, 1, 4] + base [1, A, 4], reshaped to [H*W*A, 4].",
    solution='''
def make_anchors(sizes, aspect_ratios, feature_size, stride):
    sizes = torch.tensor(sizes, dtype=torch.float32)
    ratios = torch.tensor(aspect_ratios, dtype=torch.float32)
    h_ratios = torch.sqrt(ratios)  # ratio = height / width; the area stays size ** 2
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * sizes[None, :]).reshape(-1)  # ratios vary slowest
    hs = (h_ratios[:, None] * sizes[None, :]).reshape(-1)
    base = (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()  # [A, 4] around (0, 0)
    height, width = feature_size
    ys, xs = torch.meshgrid(torch.arange(height) * stride, torch.arange(width) * stride, indexing="ij")
    shifts = torch.stack([xs, ys, xs, ys], dim=-1).reshape(-1, 1, 4).float()  # [H*W, 1, 4]
    return (shifts + base[None]).reshape(-1, 4)
''',
)


# --------------------------------------------------------------------------------------------
# 2. and 3. Box encoding and decoding
# --------------------------------------------------------------------------------------------


def _encode_cases():
    anchors = _random_boxes(12, 1)
    return [
        Case("one box on its own anchor (all deltas 0)", (torch.tensor([[10.0, 10, 30, 50]]), torch.tensor([[10.0, 10, 30, 50]]))),
        Case("a box twice as tall, shifted right", (torch.tensor([[15.0, 0, 25, 40]]), torch.tensor([[10.0, 10, 20, 30]]))),
        Case("12 random boxes and anchors", (_random_boxes(12, 2), anchors)),
        Case("12 random boxes with the RoI head's weights (10, 10, 5, 5)", (_random_boxes(12, 3), anchors, (10.0, 10.0, 5.0, 5.0))),
    ]


encode_boxes = FunctionExercise(
    notebook=NOTEBOOK,
    name="encode_boxes",
    library=("helpers.boxes.encode_boxes", "torchvision.models.detection._utils.BoxCoder",
             "torchvision.models.detection._utils.encode_boxes"),
    reference=boxes.encode_boxes,
    cases=_encode_cases,
    hint="Convert both to centre and size: w = x2 - x1, cx = x1 + 0.5 * w (same for y and h). Then "
         "dx = wx * (cx - cxa) / wa, dy = wy * (cy - cya) / ha, dw = ww * log(w / wa), dh = wh * log(h / ha); "
         "stack them into [N, 4].",
    solution='''
def encode_boxes(boxes, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    wx, wy, ww, wh = weights
    wa, ha = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    cxa, cya = anchors[:, 0] + 0.5 * wa, anchors[:, 1] + 0.5 * ha
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h
    return torch.stack([wx * (cx - cxa) / wa, wy * (cy - cya) / ha,
                        ww * torch.log(w / wa), wh * torch.log(h / ha)], dim=1)
''',
)


def _decode_cases():
    anchors = _random_boxes(12, 4)
    targets = _random_boxes(12, 5)
    g = torch.Generator().manual_seed(6)
    return [
        Case("zero deltas (the anchor itself)", (torch.zeros(1, 4), torch.tensor([[10.0, 10, 30, 50]]))),
        Case("a shift right and a doubled height", (torch.tensor([[0.5, 0.0, 0.0, 0.6931472]]), torch.tensor([[10.0, 10, 20, 30]]))),
        Case("12 random deltas", (0.5 * torch.randn(12, 4, generator=g), anchors)),
        Case("a round trip: decoding what encode_boxes gives must return the boxes",
             (boxes.encode_boxes(targets, anchors), anchors)),
        Case("a round trip with the weights (10, 10, 5, 5)",
             (boxes.encode_boxes(targets, anchors, (10.0, 10.0, 5.0, 5.0)), anchors, (10.0, 10.0, 5.0, 5.0))),
    ]


decode_boxes = FunctionExercise(
    notebook=NOTEBOOK,
    name="decode_boxes",
    library=("helpers.boxes.decode_boxes", "torchvision.models.detection._utils.BoxCoder"),
    reference=boxes.decode_boxes,
    cases=_decode_cases,
    hint="Undo each step of encode_boxes in reverse: divide the deltas by the weights; cx = dx * wa + cxa, "
         "w = exp(dw) * wa (same for y, h); then back to corners: x1 = cx - 0.5 * w, x2 = cx + 0.5 * w.",
    solution='''
def decode_boxes(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    wx, wy, ww, wh = weights
    wa, ha = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    cxa, cya = anchors[:, 0] + 0.5 * wa, anchors[:, 1] + 0.5 * ha
    cx = deltas[:, 0] / wx * wa + cxa
    cy = deltas[:, 1] / wy * ha + cya
    w = torch.exp(deltas[:, 2] / ww) * wa
    h = torch.exp(deltas[:, 3] / wh) * ha
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=1)
''',
)


# --------------------------------------------------------------------------------------------
# 4. Non-maximum suppression
# --------------------------------------------------------------------------------------------


def _nms_cases():
    cluster = torch.tensor([[10.0, 10, 30, 30], [12, 11, 31, 29], [9, 12, 29, 32], [50, 50, 70, 70], [52, 49, 71, 70]])
    g = torch.Generator().manual_seed(7)
    many = _random_boxes(40, 8)
    return [
        Case("two clusters of overlapping boxes, threshold 0.5", (cluster, torch.tensor([0.9, 0.8, 0.95, 0.6, 0.7]), 0.5)),
        Case("the same boxes, threshold 0.9 (almost nothing suppressed)", (cluster, torch.tensor([0.9, 0.8, 0.95, 0.6, 0.7]), 0.9)),
        Case("40 random boxes, threshold 0.3", (many, torch.rand(40, generator=g), 0.3)),
        Case("no boxes at all", (torch.zeros(0, 4), torch.zeros(0), 0.5)),
    ]


def _hidden_nms_cases(g: torch.Generator) -> list[Case]:
    n = 30
    boxes = _random_boxes(n, int(torch.randint(0, 2**31 - 1, (), generator=g)))
    threshold = round(0.3 + 0.4 * float(torch.rand((), generator=g)), 2)
    return [Case(f"{n} random boxes, threshold {threshold}", (boxes, torch.rand(n, generator=g), threshold))]


nms = FunctionExercise(
    notebook=NOTEBOOK,
    name="nms",
    library=("torchvision.ops.nms", "torchvision.ops.boxes.nms", "torchvision.ops.batched_nms",
             "torchvision.ops.boxes.batched_nms", "torch.ops.torchvision.nms", "helpers.boxes.nms"),
    reference=torchvision.ops.nms,
    cases=_nms_cases,
    compare=partial(compare_tensors, exact_dtype=True),  # the text asks for int64 indices
    hidden_cases=_hidden_nms_cases,
    hint="Compute the IoU matrix once. Visit boxes from the highest score down; skip a box already suppressed; "
         "otherwise keep it and suppress every box whose IoU with it is above the threshold. Return the kept "
         "indices as an int64 tensor, in the order you kept them.",
    solution='''
def nms(boxes, scores, iou_threshold):
    iou = torchvision.ops.box_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in torch.argsort(scores, descending=True).tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)
''',
)


# --------------------------------------------------------------------------------------------
# 5. The RPN's two losses
# --------------------------------------------------------------------------------------------


class _ChosenAnchors:
    """Stands in for torchvision's random `fg_bg_sampler`: picks the given anchor indices of one image."""

    def __init__(self, sampled: torch.Tensor):
        self.sampled = sampled

    def __call__(self, labels: list) -> tuple:
        chosen = torch.zeros_like(labels[0], dtype=torch.bool)
        chosen[self.sampled] = True
        return [chosen & (labels[0] == 1)], [chosen & (labels[0] == 0)]


def reference_rpn_losses(objectness, deltas, labels, targets, sampled) -> tuple:
    """torchvision's `RegionProposalNetwork.compute_loss` for one image, on the anchors `sampled`.

    objectness `[N]` logits, deltas `[N, 4]` predicted, labels `[N]` (1 positive, 0 negative, -1
    ignored), targets `[N, 4]` encoded boxes of each anchor's matched object, sampled int64 `[S]`
    (positive and negative anchors only). Returns `(loss_objectness, loss_rpn_box_reg)`, two scalars.
    """
    from torchvision.models.detection.rpn import RegionProposalNetwork

    rpn = RegionProposalNetwork(None, None, 0.7, 0.3, 256, 0.5, {}, {}, 0.7)
    rpn.fg_bg_sampler = _ChosenAnchors(sampled)
    return tuple(rpn.compute_loss(objectness[:, None], deltas, [labels], [targets]))


def rpn_training_targets(anchors: torch.Tensor, gt_boxes: torch.Tensor) -> tuple:
    """What torchvision's RPN trains one image's anchors towards: `(labels [N], targets [N, 4])`.

    labels: 1.0 positive (IoU >= 0.7 with an object, or an object's best anchor, ties included), 0.0
    negative (IoU < 0.3 with every object), -1.0 ignored; targets: each anchor's best-IoU object,
    encoded against it with weights (1, 1, 1, 1).
    """
    from torchvision.models.detection.rpn import RegionProposalNetwork

    rpn = RegionProposalNetwork(None, None, 0.7, 0.3, 256, 0.5, {}, {}, 0.7)
    labels, matched = rpn.assign_targets_to_anchors([anchors], [{"boxes": gt_boxes}])
    return labels[0], boxes.encode_boxes(matched[0], anchors)


def sample_anchors(labels: torch.Tensor, generator: torch.Generator, per_image: int = 256, positive_fraction: float = 0.5):
    """torchvision's sampling rule with a generator of its own: up to `positive_fraction * per_image`
    positives, the rest negatives, at random. Returns int64 indices `[S]`, positives first."""
    positives, negatives = torch.where(labels == 1)[0], torch.where(labels == 0)[0]
    n_pos = min(len(positives), int(per_image * positive_fraction))
    n_neg = min(len(negatives), per_image - n_pos)
    return torch.cat([positives[torch.randperm(len(positives), generator=generator)[:n_pos]],
                      negatives[torch.randperm(len(negatives), generator=generator)[:n_neg]]])


def _rpn_case(label: str, seed: int, num_objects=(1, 4), empty: bool = False) -> Case:
    from helpers.data import ShapesScenes

    g = torch.Generator().manual_seed(seed)
    anchors = reference_anchors((8, 16, 32), (1.0,), (16, 16), 4)
    gt = torch.zeros(0, 4) if empty else ShapesScenes(1, size=64, seed=seed, num_objects=num_objects)[0][1]["boxes"]
    labels, targets = rpn_training_targets(anchors, gt) if len(gt) else (torch.zeros(len(anchors)), torch.zeros(len(anchors), 4))
    objectness, deltas = torch.randn(len(anchors), generator=g), 0.3 * torch.randn(len(anchors), 4, generator=g)
    return Case(label, (objectness, deltas, labels, targets, sample_anchors(labels, g)))


def _rpn_loss_cases() -> list[Case]:
    return [
        Case("three anchors by hand: one positive, one negative, one ignored; all sampled but the ignored one",
             (torch.tensor([2.0, -1.0, 0.5]), torch.tensor([[0.1, 0.0, 0.2, -0.1], [0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]),
              torch.tensor([1.0, 0.0, -1.0]), torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]]),
              torch.tensor([0, 1]))),
        _rpn_case("a scene with one object, its 768 anchors, 256 sampled", 31, num_objects=(1, 1)),
        _rpn_case("a scene with four objects", 32, num_objects=(4, 4)),
        _rpn_case("a scene without objects (no positives)", 33, empty=True),
    ]


def _hidden_rpn_loss_cases(g: torch.Generator) -> list[Case]:
    seeds = torch.randint(100, 10_000, (2,), generator=g).tolist()
    return [_rpn_case(f"a random scene (seed {s})", s) for s in seeds]


rpn_losses = FunctionExercise(
    notebook=NOTEBOOK,
    name="rpn_losses",
    reference=reference_rpn_losses,
    cases=_rpn_loss_cases,
    hidden_cases=_hidden_rpn_loss_cases,
    hint="Only the sampled anchors count. The objectness loss is the mean binary cross-entropy (with logits) "
         "over all of them, each against its label. The box loss uses the sampled anchors that are positive, "
         "with a smooth L1 whose quadratic part ends at 1/9 instead of 1; torchvision sums it and divides by "
         "the number of sampled anchors, not by the number of positives.",
    solution='''
def rpn_losses(objectness, deltas, labels, targets, sampled):
    loss_objectness = F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled])
    positives = sampled[labels[sampled] == 1]
    summed = F.smooth_l1_loss(deltas[positives], targets[positives], beta=1 / 9, reduction="sum")
    return loss_objectness, summed / len(sampled)
''',
    library=("torchvision.models.detection.rpn.RegionProposalNetwork.compute_loss",
             "helpers.exercises.nb03.reference_rpn_losses"),
)
