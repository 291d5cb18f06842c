"""Exercises of notebook 01: the four vision tasks and the joint localisation loss."""

from functools import partial

import torch

from helpers.boxes import paired_box_iou
from helpers.data import ShapesScenes, semantic_from_instances as _semantic
from helpers.exercises.core import Case, FunctionExercise, compare_tensors
from helpers.models import joint_localisation_loss

NOTEBOOK = "01_vision_tasks"


def _scene_cases():
    scenes = ShapesScenes(3, size=48, seed=7)
    cases = [Case(f"scene {i} of ShapesScenes(3, size=48, seed=7)", (t["masks"], t["labels"])) for i, (_, t) in enumerate(scenes)]
    empty = (torch.zeros(0, 5, 6, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))
    return cases + [Case("a 5x6 scene with no objects", empty)]


def _hidden_scene_cases(generator: torch.Generator) -> list[Case]:
    seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
    return [Case(f"scene {i}", (t["masks"], t["labels"])) for i, (_, t) in enumerate(ShapesScenes(2, size=40, seed=seed))]


semantic_from_instances = FunctionExercise(
    notebook=NOTEBOOK,
    name="semantic_from_instances",
    library=("helpers.data.semantic_from_instances",),
    reference=_semantic,
    cases=_scene_cases,
    compare=partial(compare_tensors, exact_dtype=True),  # the text asks for int64
    hidden_cases=_hidden_scene_cases,
    hint="Start from torch.zeros(H, W, dtype=torch.int64). For each instance k, set the pixels where "
    "masks[k] is 1 to labels[k] (boolean indexing: semantic[masks[k].bool()] = labels[k]).",
    solution='''
    def semantic_from_instances(masks, labels):
        semantic = torch.zeros(masks.shape[1:], dtype=torch.int64)
        for mask, label in zip(masks, labels):
            semantic[mask.bool()] = label
        return semantic
    ''',
)


def _iou_cases():
    b = lambda rows: torch.tensor(rows, dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(50, 2, generator=g) * 40
    wh = 1 + torch.rand(50, 2, generator=g) * 20
    random_a = torch.cat([xy, xy + wh], 1)
    random_b = random_a + (torch.rand(50, 4, generator=g) - 0.5) * 12
    random_b[:, 2:] = torch.maximum(random_b[:, 2:], random_b[:, :2] + 1)
    return [
        Case("two half-overlapping boxes", (b([[0, 0, 10, 10]]), b([[5, 0, 15, 10]]))),
        Case("identical boxes", (b([[2, 3, 7, 9]]), b([[2, 3, 7, 9]]))),
        Case("disjoint boxes", (b([[0, 0, 4, 4], [0, 0, 4, 4]]), b([[10, 10, 12, 12], [4, 0, 8, 4]]))),
        Case("a box inside another", (b([[0, 0, 10, 10]]), b([[2, 2, 4, 4]]))),
        Case("50 random pairs", (random_a, random_b)),
    ]


paired_iou = FunctionExercise(
    notebook=NOTEBOOK,
    name="paired_iou",
    library=("helpers.boxes.paired_box_iou", "helpers.boxes.box_iou", "torchvision.ops.box_iou",
             "torchvision.ops.boxes.box_iou"),
    reference=paired_box_iou,
    cases=_iou_cases,
    hint="The intersection is a box too: its left edge is the larger of the two left edges, its right "
    "edge the smaller of the two right edges (same for top/bottom). Clamp its width and height at 0, "
    "then IoU = intersection / (area1 + area2 - intersection). Work on whole columns, e.g. boxes1[:, 0].",
    solution='''
    def paired_iou(boxes1, boxes2):
        left = torch.maximum(boxes1[:, 0], boxes2[:, 0])
        top = torch.maximum(boxes1[:, 1], boxes2[:, 1])
        right = torch.minimum(boxes1[:, 2], boxes2[:, 2])
        bottom = torch.minimum(boxes1[:, 3], boxes2[:, 3])
        intersection = (right - left).clamp(min=0) * (bottom - top).clamp(min=0)
        area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
        area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
        return intersection / (area1 + area2 - intersection)
    ''',
)


def _loss_cases():
    g = torch.Generator().manual_seed(2)
    cases = []
    for batch, weight in ((1, 1.0), (8, 1.0), (16, 5.0)):
        logits = torch.randn(batch, 3, generator=g)
        labels = torch.randint(0, 3, (batch,), generator=g)
        pred, true = torch.rand(batch, 4, generator=g), torch.rand(batch, 4, generator=g)
        cases.append(Case(f"a batch of {batch} with box_weight={weight}", (logits, pred, labels, true), {"box_weight": weight}))
    return cases


joint_loss = FunctionExercise(
    notebook=NOTEBOOK,
    name="joint_loss",
    library=("helpers.models.joint_localisation_loss",),
    reference=joint_localisation_loss,
    cases=_loss_cases,
    hint="F.cross_entropy(class_logits, labels) gives the classification term. For the box term, square "
    "the differences, sum over the 4 coordinates (dim=1), then average over the batch. Return "
    "classification + box_weight * box.",
    solution='''
    def joint_loss(class_logits, pred_boxes, labels, true_boxes, box_weight=1.0):
        classification = F.cross_entropy(class_logits, labels)
        box = ((pred_boxes - true_boxes) ** 2).sum(dim=1).mean()
        return classification + box_weight * box
    ''',
)
