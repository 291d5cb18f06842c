"""Exercises of notebook 07 (neural style transfer): the Gram matrix, the style loss, the total loss."""

from __future__ import annotations

import torch

from helpers import style
from helpers.exercises.core import Case, FunctionExercise

NOTEBOOK = "07_style_transfer"


def _features(shape, seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


gram_matrix = FunctionExercise(
    notebook=NOTEBOOK,
    name="gram_matrix",
    library=("helpers.style.gram_matrix",),
    reference=style.gram_matrix,
    cases=lambda: [
        Case("features of shape [1, 3, 4, 4]", (_features((1, 3, 4, 4), 0),)),
        Case("features of shape [2, 5, 3, 6]", (_features((2, 5, 3, 6), 1),)),
    ],
    hint=(
        "Flatten the positions: `f = features.reshape(B, C, H * W)`. Then `f @ f.transpose(1, 2)` is `[B, C, C]`, "
        "entry (i, j) summing f_i * f_j over positions. Divide by C * H * W."
    ),
    solution='''
def gram_matrix(features):
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)
''',
)


def _grams(sizes, seed: int, batch: int = 1):
    return [_features((batch, c, c), seed + i) for i, c in enumerate(sizes)]


style_loss = FunctionExercise(
    notebook=NOTEBOOK,
    name="style_loss",
    library=("helpers.style.style_loss", "helpers.style.total_loss"),
    reference=style.style_loss,
    cases=lambda: [
        Case("one layer with weight 1", (_grams([4], 0), _grams([4], 10), [1.0])),
        Case("three layers with weights 0.5, 0.3, 0.2", (_grams([3, 5, 2], 20), _grams([3, 5, 2], 30), [0.5, 0.3, 0.2])),
        Case("a batch of B = 3 images ([3, C, C] Gram matrices) against [1, C, C] targets, two layers",
             (_grams([4, 3], 60, batch=3), _grams([4, 3], 70), [0.6, 0.4])),
        Case("a batch of B = 2 images against [2, C, C] targets, one layer", (_grams([5], 80, batch=2), _grams([5], 90, batch=2), [1.0])),
    ],
    hint=(
        "Loop over the layers together: `for g, a, w in zip(grams, target_grams, weights)`, and add "
        "`w * ((g - a) ** 2).mean()` to a running total. Return the total (a scalar tensor). With a batch, "
        "`.mean()` over the whole `[B, C, C]` difference averages over the images too, and a `[1, C, C]` target "
        "broadcasts against a `[B, C, C]` Gram matrix by itself: no loop over the batch is needed."
    ),
    solution='''
def style_loss(grams, target_grams, weights):
    total = 0.0
    for g, a, w in zip(grams, target_grams, weights):
        total = total + w * ((g - a) ** 2).mean()
    return total
''',
)


def _total_cases():
    return [
        Case("k = 1000 with two style layers",
             (_features((1, 4, 3, 3), 40), _features((1, 4, 3, 3), 41), _grams([3, 2], 42), _grams([3, 2], 44), [0.5, 0.5], 1000.0)),
        Case("k = 0.5 with one style layer",
             (_features((1, 2, 5, 5), 50), _features((1, 2, 5, 5), 51), _grams([6], 52), _grams([6], 53), [1.0], 0.5)),
        Case("a batch of B = 2 images, [1, C, C] style targets, k = 100",
             (_features((2, 3, 4, 4), 54), _features((2, 3, 4, 4), 55), _grams([3], 56, batch=2), _grams([3], 57), [1.0], 100.0)),
    ]


total_loss = FunctionExercise(
    notebook=NOTEBOOK,
    name="total_loss",
    library=("helpers.style.total_loss", "helpers.style.style_loss", "helpers.style.content_loss"),
    reference=style.total_loss,
    cases=_total_cases,
    hint=(
        "Content part: the mean of the squared differences between `content_features` and `content_target`. "
        "Style part: the weighted sum over layers of the mean squared difference between Gram matrices, as in "
        "`style_loss`. Return content + k * style."
    ),
    solution='''
def total_loss(content_features, content_target, grams, target_grams, weights, k):
    content = ((content_features - content_target) ** 2).mean()
    style = sum(w * ((g - a) ** 2).mean() for g, a, w in zip(grams, target_grams, weights))
    return content + k * style
''',
)
