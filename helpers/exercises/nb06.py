"""Exercises of notebook 06 (DeepDream): one dream step, the octave sizes, clamping to the image range."""

from __future__ import annotations

import torch
import torch.nn as nn

from helpers import dream
from helpers.exercises.compare import compare_auto, compare_detached, randomly_weighted
from helpers.exercises.core import Case, FunctionExercise

NOTEBOOK = "06_deepdream"


def _tiny_network(seed: int) -> nn.Sequential:
    """A small fixed random conv net standing in for 'the network up to the chosen layer'."""
    return randomly_weighted(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2), nn.ReLU()), seed, 0.5)


def _image(shape, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _dream_step_cases():
    return [
        Case("one 8x8 image with step_size 0.1", (_tiny_network(1), _image((1, 3, 8, 8), 2), 0.1)),
        Case("a batch of two 10x12 images with step_size 0.05", (_tiny_network(3), _image((2, 3, 10, 12), 4), 0.05)),
    ]


dream_step = FunctionExercise(
    notebook=NOTEBOOK,
    name="dream_step",
    library=("helpers.dream.dream_step", "helpers.dream.deepdream"),
    reference=dream.dream_step,
    cases=_dream_step_cases,
    compare=compare_detached,
    hint=(
        "Make a copy of the image that records gradients (`image.detach().clone().requires_grad_(True)`), "
        "compute `activation = forward(x)`, then `activation.backward(gradient=activation.detach())`: that hands "
        "the layer the gradient a, exactly what ½‖a‖² would. Read `x.grad`, divide it by its mean absolute value "
        "(over the whole tensor, plus 1e-8), and *add* `step_size` times that to the image: we climb, not descend. "
        "Return the result detached."
    ),
    solution='''
def dream_step(forward, image, step_size):
    x = image.detach().clone().requires_grad_(True)
    activation = forward(x)                               # step 2: forward to the layer
    activation.backward(gradient=activation.detach())     # step 3: the gradient at the layer is a
    grad = x.grad                                         # step 4: backpropagated to the image
    return (x + step_size * grad / (grad.abs().mean() + 1e-8)).detach()
''',
)


def _octave_cases():
    return [
        Case("size (128, 128), 3 octaves, scale 1.4", ((128, 128), 3, 1.4)),
        Case("size (100, 150), 4 octaves, scale 1.3", ((100, 150), 4, 1.3)),
        Case("size (64, 64), 1 octave, scale 1.4", ((64, 64), 1, 1.4)),
    ]


def _hidden_octave_cases(g: torch.Generator) -> list[Case]:
    cases = []
    for _ in range(2):
        h, w = (int(n) for n in torch.randint(40, 200, (2,), generator=g))
        octaves, scale = int(torch.randint(2, 6, (), generator=g)), round(1.2 + 0.4 * float(torch.rand((), generator=g)), 2)
        cases.append(Case(f"size ({h}, {w}), {octaves} octaves, scale {scale}", ((h, w), octaves, scale)))
    return cases


def _compare_octaves(expected, got) -> str | None:
    """Name the usual slips (wrong order, truncating instead of rounding, a shifted or short ladder) without the answer."""
    if isinstance(got, (list, tuple)) and all(isinstance(s, (list, tuple)) and len(s) == 2 for s in got):
        pairs = [tuple(s) for s in got]
        if len(pairs) != len(expected):
            return (f"expected one (h, w) per octave, {len(expected)} in all, got {len(pairs)}: "
                    "k should run over num_octaves values, from num_octaves - 1 down to 0")
        if len(pairs) > 1 and pairs != list(expected) and pairs == list(reversed(expected)):
            return ("the sizes are right but in the wrong order: the list should start with the smallest "
                    "octave and end with `size` itself")
        if pairs and pairs[-1] != tuple(expected[-1]):
            return "the last entry should be `size` itself (k = 0), the full size the dream ends at"
        if all(isinstance(v, int) for s in pairs for v in s):
            short = [i for i, (g, e) in enumerate(zip(pairs, expected)) if g != tuple(e)]
            if short and all(0 < e[j] - g[j] <= 1 or g[j] == e[j] for i in short
                             for g, e in [(pairs[i], expected[i])] for j in (0, 1)):
                return (f"item [{short[0]}] has a side one pixel too small: round h / scale**k to the nearest int "
                        "with `round(...)`; `int(...)` and `//` cut the fraction off")
    return compare_auto(expected, got)


octave_sizes = FunctionExercise(
    notebook=NOTEBOOK,
    name="octave_sizes",
    library=("helpers.dream.octave_sizes",),
    reference=dream.octave_sizes,
    cases=_octave_cases,
    compare=_compare_octaves,
    hidden_cases=_hidden_octave_cases,
    hint=(
        "Octave k counted down from the full size has sides `round(H / scale**k)` and `round(W / scale**k)`, "
        "for k = num_octaves - 1 down to 0, so the list starts small and its last entry is `size` itself. "
        "Return a list of (h, w) tuples of ints."
    ),
    solution='''
def octave_sizes(size, num_octaves, scale):
    h, w = size
    return [(round(h / scale**k), round(w / scale**k)) for k in range(num_octaves - 1, -1, -1)]
''',
)


def _clamp_cases():
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    return [
        Case("ImageNet normalisation, values from -4 to 4", (torch.linspace(-4, 4, 2 * 3 * 4 * 5).reshape(2, 3, 4, 5), mean, std)),
        Case("mean 0.5 and std 0.25 in every channel", (3 * _image((1, 3, 6, 6), 5), torch.full((3,), 0.5), torch.full((3,), 0.25))),
    ]


clamp_to_image_range = FunctionExercise(
    notebook=NOTEBOOK,
    name="clamp_to_image_range",
    library=("helpers.dream.clamp_to_image_range",),
    reference=dream.clamp_to_image_range,
    cases=_clamp_cases,
    hint=(
        "A pixel p in [0, 1] becomes (p - mean) / std, so channel c may go from (0 - mean[c]) / std[c] to "
        "(1 - mean[c]) / std[c]. Build those two `[3]` tensors, reshape them to `[1, 3, 1, 1]` so they broadcast "
        "over batch and pixels, and clamp with `torch.max(torch.min(inputs, high), low)` (or `torch.clamp`, "
        "which also takes tensors)."
    ),
    solution='''
def clamp_to_image_range(inputs, mean, std):
    low = ((0 - mean) / std).view(1, 3, 1, 1)
    high = ((1 - mean) / std).view(1, 3, 1, 1)
    return torch.max(torch.min(inputs, high), low)
''',
)
