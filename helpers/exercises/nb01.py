"""Exercises of notebook 01: the four vision tasks, the joint localisation loss and the localiser
itself (the capstone: the notebook trains the student's `Localiser` with their `joint_loss` once both
pass their checks, and the references here until then: `mine_or_reference`)."""

from functools import partial

import torch
import torch.nn as nn

from helpers.boxes import paired_box_iou
from helpers.data import ShapesScenes, semantic_from_instances as _semantic
from helpers.exercises.compare import compare_tensors
from helpers.exercises.core import Case, Exercise, FunctionExercise, yours_or_course
from helpers.models import conv_block, joint_localisation_loss

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


# --------------------------------------------------------------------------------------------
# The capstone: the localiser, a classifier with a second head for one box
# --------------------------------------------------------------------------------------------


class ReferenceLocaliser(nn.Module):
    """The course's localiser: `features` (conv blocks, `[B, 3, S, S] -> [B, channels, g, g]`, `g * g =
    cells`), a class head on the global max of the features, and a box head on all of them.

    `forward(images)` returns `(class logits [B, num_classes], boxes [B, 4])`, the boxes xyxy as
    fractions of the image side, in (0, 1) by a sigmoid.
    """

    def __init__(self, features: nn.Module, channels: int, cells: int, num_classes: int = 3, hidden: int = 128):
        super().__init__()
        self.features = features
        self.class_head = nn.Linear(channels, num_classes)
        self.box_head = nn.Sequential(nn.Flatten(), nn.Linear(channels * cells, hidden), nn.ReLU(), nn.Linear(hidden, 4))

    def forward(self, images: torch.Tensor):
        f = self.features(images)
        return self.class_head(f.amax(dim=(2, 3))), torch.sigmoid(self.box_head(f))


def _features(seed: int, channels: int) -> nn.Sequential:
    """Four small conv blocks (stride 16) with weights drawn from `seed`, ending in `channels` maps."""
    torch.manual_seed(seed)
    widths = (3, 8, 8, 16, channels)
    return nn.Sequential(*[conv_block(a, b) for a, b in zip(widths[:-1], widths[1:])])


class LocaliserExercise(FunctionExercise):
    """The student writes an `nn.Module` class. A case is `(seed, channels, size, images)`: the class is
    built on conv blocks drawn from `seed`, given the reference's weights (so the comparison does not
    depend on how the layers were initialised; the layer names must be the ones the notebook asks for),
    and run in eval mode on `images`. Whatever the answer returns that is not a module is judged as
    the outputs themselves."""

    def call(self, function, case: Case, number: int):
        seed, channels, size, images = case.args
        cells = (size // 16) ** 2
        weights = ReferenceLocaliser(_features(seed, channels), channels, cells).state_dict()
        torch.manual_seed(seed + 1 + number)
        model = function(_features(seed, channels), channels, cells)
        if not isinstance(model, nn.Module):
            return model
        missing, unexpected = _differences(model.state_dict(), weights)
        if missing or unexpected:
            raise ValueError(f"the layers differ from the ones asked for (features, class_head, box_head): "
                             f"missing {missing[:4]}, unexpected {unexpected[:4]}")
        model.load_state_dict(weights)
        model.eval()
        with torch.no_grad():
            return model(images.clone())


def _differences(got: dict, wanted: dict) -> tuple[list, list]:
    """Parameter names (and shapes) in `wanted` but not in `got`, and the other way round."""
    shapes = lambda d: {f"{k} {list(v.shape)}" for k, v in d.items()}  # noqa: E731
    return sorted(shapes(wanted) - shapes(got)), sorted(shapes(got) - shapes(wanted))


def _localiser_cases():
    g = torch.Generator().manual_seed(3)
    return [Case(f"{channels} feature maps, {size}x{size} images, a batch of {batch}",
                 (seed, channels, size, torch.rand(batch, 3, size, size, generator=g)))
            for seed, channels, size, batch in ((0, 16, 32, 2), (1, 24, 48, 5))]


def _hidden_localiser_cases(generator: torch.Generator) -> list[Case]:
    seed = int(torch.randint(100, 10**6, (), generator=generator))
    return [Case(f"{channels} feature maps, {size}x{size} images", (seed + k, channels, size, torch.rand(3, 3, size, size, generator=generator)))
            for k, (channels, size) in enumerate(((8, 32), (20, 64)))]


Localiser = LocaliserExercise(
    notebook=NOTEBOOK,
    name="Localiser",
    reference=ReferenceLocaliser,
    cases=_localiser_cases,
    hidden_cases=_hidden_localiser_cases,
    hint="The class head is one nn.Linear from `channels` numbers to the classes: give it, per feature map, the "
    "strongest response anywhere (the max over both spatial dimensions, dim=(2, 3)). The box head must know "
    "where things are, so it sees every cell: nn.Sequential of nn.Flatten, nn.Linear (channels * cells in, "
    "hidden out), nn.ReLU and nn.Linear (hidden in, 4 out), in that order. A sigmoid squashes its four "
    "outputs into (0, 1); forward returns the logits and the boxes, in that order.",
    solution='''
    class Localiser(nn.Module):
        def __init__(self, features, channels, cells, num_classes=3, hidden=128):
            super().__init__()
            self.features = features
            self.class_head = nn.Linear(channels, num_classes)
            self.box_head = nn.Sequential(nn.Flatten(), nn.Linear(channels * cells, hidden), nn.ReLU(), nn.Linear(hidden, 4))

        def forward(self, images):
            f = self.features(images)
            logits = self.class_head(f.amax(dim=(2, 3)))
            boxes = torch.sigmoid(self.box_head(f))
            return logits, boxes
    ''',
    library=("helpers.models.SmallConvNet",),
)


def mine_or_reference(exercise: Exercise, answer):
    """`answer` if it passes `exercise`'s check, else the course's version; prints which is used.

    For the capstone training: it trains with the student's code once that code is right, and with
    the course's (so that the rest of the notebook still runs) until then (`core.yours_or_course`).
    """
    course = {"Localiser": ReferenceLocaliser, "joint_loss": joint_localisation_loss}[exercise.name]
    return yours_or_course(exercise, answer, course)
