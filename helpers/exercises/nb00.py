"""Exercises of notebook 00: a warm-up that shows how checks, hints and solutions work."""

from functools import partial

import torch
import torchvision.transforms.functional as TF

from helpers.exercises.compare import compare_tensors
from helpers.exercises.core import Case, FunctionExercise, ValueExercise

NOTEBOOK = "00_start_here"


def _grayscale_cases():
    g = torch.Generator().manual_seed(0)
    return [
        Case("a random 3x4x5 image", (torch.rand(3, 4, 5, generator=g),)),
        Case("a pure red 3x2x2 image", (torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand(3, 2, 2).clone(),)),
        Case("a random 3x64x64 image", (torch.rand(3, 64, 64, generator=g),)),
    ]


to_grayscale = FunctionExercise(
    notebook=NOTEBOOK,
    name="to_grayscale",
    library=("torchvision.transforms.functional.rgb_to_grayscale", "torchvision.transforms.Grayscale",
             "torchvision.transforms.v2.functional.rgb_to_grayscale", "torchvision.transforms.v2.Grayscale"),
    reference=lambda image: TF.rgb_to_grayscale(image)[0],
    cases=_grayscale_cases,
    compare=partial(compare_tensors, atol=1e-3),
    hint="Take image[0], image[1] and image[2] (red, green, blue, each [H, W]) and add them with the "
    "weights 0.299, 0.587 and 0.114. The result has no channel dimension.",
    solution='''
    def to_grayscale(image):
        red, green, blue = image[0], image[1], image[2]
        return 0.299 * red + 0.587 * green + 0.114 * blue
    ''',
)

values_per_image = ValueExercise(
    notebook=NOTEBOOK,
    name="values_per_image",
    expected=3 * 64 * 64,
    hint="An image tensor has shape [3, H, W]: multiply the three sizes.",
    solution="values_per_image = 3 * 64 * 64",
)
