"""Exercises of notebook 05: U-Net.

Problem 3's answers are letters from one list of operations (`OPERATIONS`), so that a student's
phrasing does not matter: "C", "c", "(c)" and " C. " are the same answer, and a set of letters can be
written as {"A", "C"}, ["a", "c"], "A, C" or "AC".
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn

from helpers import metrics, unet
from helpers.exercises.compare import describe
from helpers.exercises.core import Case, FunctionExercise, ValueExercise

NOTEBOOK = "05_unet"

#: The operations a U-Net figure draws, or could be mistaken for. Problem 3 answers with these letters.
OPERATIONS = {
    "A": "3x3 convolution followed by ReLU",
    "B": "2x2 max-pooling",
    "C": "2x2 transposed convolution with stride 2",
    "D": "copy the encoder's feature map (cropped to size) and concatenate it with the decoder's, along channels",
    "E": "add the encoder's feature map to the decoder's, element by element (a residual connection)",
    "F": "1x1 convolution",
    "G": "bilinear interpolation to twice the size",
}


def _letters(got) -> set[str] | str:
    """A student's answer as a set of upper-case letters, or a sentence saying why it is not one."""
    if isinstance(got, str):
        parts = [p for p in re.split(r"[\s,;/&+]+|\bAND\b", got.strip().upper()) if p]
        parts = [p.strip("().[]{}'\"") for p in parts]
        if len(parts) == 1 and len(parts[0]) > 1 and parts[0].isalpha() and len(parts[0]) <= len(OPERATIONS):
            parts = list(parts[0])  # "ACF"
        items = parts
    elif isinstance(got, (set, frozenset, list, tuple)):
        items = []
        for item in got:
            if not isinstance(item, str):
                return f"expected letters (strings) from A to {max(OPERATIONS)}, found {describe(item)} among them"
            items.append(item.strip().strip("().").upper())
    else:
        return f"expected a letter (a string) from A to {max(OPERATIONS)}, got {describe(got)}"
    bad = [i for i in items if i not in OPERATIONS]
    if bad or not items:
        return f"answer with letters from A to {max(OPERATIONS)} (see OPERATIONS), not {bad[0] if bad else 'nothing'!r}"
    return set(items)


def _compare_one_letter(feedback: dict[str, str]):
    """A comparison for a single-choice question; `feedback` maps tempting wrong letters to a nudge."""

    def compare(expected: str, got) -> str | None:
        letters = _letters(got)
        if isinstance(letters, str):
            return letters
        if len(letters) != 1:
            return "choose one letter"
        (letter,) = letters
        if letter == expected:
            return None
        return f"{letter} is not it: {feedback.get(letter, 'look again at what the arrow does to the feature maps')}"

    return compare


def _compare_letter_set(expected: frozenset, got) -> str | None:
    letters = _letters(got)
    if isinstance(letters, str):
        return letters
    extra = sorted(letters - expected)
    if extra:
        return f"{extra[0]} ({OPERATIONS[extra[0]]}) has no learned parameters"
    if letters != expected:
        return f"{len(expected - letters)} operation(s) with learned parameters are missing"
    return None


up_arrows = ValueExercise(
    notebook=NOTEBOOK,
    name="up_arrows",
    expected="C",
    compare=_compare_one_letter({
        "B": "max-pooling halves the resolution; the up arrows double it",
        "G": "interpolation would double the size too, but the U-Net learns its upsampling (part (c) depends on this)",
        "A": "a 3x3 convolution with padding keeps the size; the up arrows double it",
        "D": "that is the long horizontal arrow",
        "E": "that is a kind of skip connection, not an upsampling",
        "F": "a 1x1 convolution keeps the size",
    }),
    hint="Follow an up arrow in the figure: the resolution doubles and the channels halve. Which operation in the list does that, with weights?",
    solution='''
up_arrows = "C"
''',
)

long_arrows = ValueExercise(
    notebook=NOTEBOOK,
    name="long_arrows",
    expected="D",
    compare=_compare_one_letter({
        "E": "the handout calls them residual connections, but count the channels right after the arrow: they double",
        "A": "the short arrows are the 3x3 convolutions; the long ones jump across the U",
        "C": "that is the up arrow",
        "B": "that is the down arrow",
    }),
    hint="After a long arrow, the decoder's feature map has as many channels as its own plus the encoder's. What joins two maps that way?",
    solution='''
long_arrows = "D"
''',
)

learned_parameters = ValueExercise(
    notebook=NOTEBOOK,
    name="learned_parameters",
    expected=frozenset({"A", "C", "F"}),
    compare=_compare_letter_set,
    hint="An operation learns parameters when it has weights: kernels that training changes. Pooling, copying, adding and fixed interpolation have none.",
    solution='''
learned_parameters = {"A", "C", "F"}
''',
)


def _up_block_cases() -> list[Case]:
    g = torch.Generator().manual_seed(5)
    cases = []
    for label, (c, c_skip, h, skip_h, out) in {
        "a batch of 2, 8 channels up to 4, skip of 4 channels, same size": (8, 4, 3, 6, 5),
        "skip larger than the upsampled map by 4 pixels (copy and crop its centre)": (4, 2, 3, 10, 3),
        "skip larger by 3 pixels (an odd margin)": (4, 3, 2, 7, 2),
    }.items():
        up = nn.ConvTranspose2d(c, c // 2, 2, stride=2).double()
        conv = nn.Sequential(nn.Conv2d(c // 2 + c_skip, out, 3, padding=1), nn.ReLU()).double()
        with torch.no_grad():  # fixed weights (not the global random state) so every check sees the same case
            for p in [*up.parameters(), *conv.parameters()]:
                p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64))
        x = torch.randn(2, c, h, h, generator=g, dtype=torch.float64)
        skip = torch.randn(2, c_skip, skip_h, skip_h + 1 if "odd" in label else skip_h, generator=g, dtype=torch.float64)
        cases.append(Case(label, (x, skip, up, conv)))
    return cases


def _compare_no_grad(expected, got):
    from helpers.exercises.compare import compare_tensors

    return compare_tensors(expected.detach(), got.detach() if isinstance(got, torch.Tensor) else got)


up_block = FunctionExercise(
    notebook=NOTEBOOK,
    name="up_block",
    library=("helpers.unet.up_block_forward", "helpers.unet.UpBlock", "helpers.unet.center_crop"),
    reference=unet.up_block_forward,
    cases=_up_block_cases,
    compare=_compare_no_grad,
    hint=(
        "Three lines: upsample x with `up`; cut the centre of `skip` to the upsampled height and width "
        "(offset (H - h) // 2 from the top, likewise from the left); torch.cat the two along dim=1 with "
        "the upsampled map first, and pass that through `conv`."
    ),
    solution='''
def up_block(x, skip, up, conv):
    u = up(x)
    h, w = u.shape[-2:]
    top, left = (skip.shape[-2] - h) // 2, (skip.shape[-1] - w) // 2
    skip = skip[..., top : top + h, left : left + w]
    return conv(torch.cat([u, skip], dim=1))
''',
)


def _hidden_confusion_cases(generator: torch.Generator) -> list[Case]:
    cases = []
    for classes in (3, 5):
        confusion = torch.randint(0, 60, (classes, classes), generator=generator)
        confusion[int(torch.randint(0, classes, (), generator=generator))] = 0  # a class never true
        cases.append(Case(f"a {classes}-class confusion matrix", (confusion,)))
    return cases


def _iou_cases() -> list[Case]:
    return [
        Case("a 2-class confusion matrix", (torch.tensor([[50, 10], [5, 35]]),)),
        Case("a 4-class confusion matrix", (torch.tensor([[900, 10, 5, 0], [20, 80, 0, 3], [4, 0, 60, 6], [1, 2, 9, 40]]),)),
        Case("a class that is never true but sometimes predicted", (torch.tensor([[30, 4, 0], [0, 0, 0], [2, 1, 10]]),)),
        Case("a class that is neither true nor predicted (its IoU is NaN)", (torch.tensor([[30, 0, 3], [0, 0, 0], [2, 0, 10]]),)),
    ]


iou_per_class = FunctionExercise(
    notebook=NOTEBOOK,
    name="iou_per_class",
    library=("helpers.metrics.iou_from_confusion", "helpers.metrics.per_class_iou", "helpers.metrics.mean_iou"),
    reference=metrics.iou_from_confusion,
    cases=_iou_cases,
    hidden_cases=_hidden_confusion_cases,
    hint=(
        "Row t of the confusion matrix holds the pixels whose true class is t, column p those predicted as p. "
        "For class k: intersection = C[k, k]; union = row sum + column sum - C[k, k]. Work in float64, and "
        "return NaN where the union is 0."
    ),
    solution='''
def iou_per_class(confusion):
    c = confusion.double()
    intersection = c.diagonal()
    union = c.sum(dim=0) + c.sum(dim=1) - intersection
    return intersection / union
''',
)


# --------------------------------------------------------------------------------------------
# The capstone: assemble the U-Net's forward pass from its blocks
# --------------------------------------------------------------------------------------------


def _unet_case(label: str, seed: int, depth: int, base: int, in_channels: int, classes: int, height: int, width: int) -> Case:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = unet.UNet(in_channels, classes, base_channels=base, depth=depth).double().eval()
        with torch.no_grad():  # non-trivial batch-norm statistics, so that a block left out shows
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.normal_(0, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
        x = torch.randn(2, in_channels, height, width, dtype=torch.float64)
    return Case(label, (model, x))


def _unet_forward_cases() -> list[Case]:
    return [
        _unet_case("the notebook's shape: depth 3, 3 input channels, 4 classes, 16x16 scenes", 1, 3, 4, 3, 4, 16, 16),
        _unet_case("depth 2, one input channel, 3 classes, 8x12 scenes (not square)", 2, 2, 8, 1, 3, 8, 12),
        _unet_case("depth 1 (one skip connection)", 3, 1, 4, 3, 2, 4, 6),
    ]


def _hidden_unet_forward_cases(g: torch.Generator) -> list[Case]:
    seed, depth = int(torch.randint(10, 10_000, (), generator=g)), int(torch.randint(1, 4, (), generator=g))
    return [_unet_case(f"a random U-Net of depth {depth}", seed, depth, 4, 3, 3, 2**depth * 2, 2**depth * 3)]


unet_forward = FunctionExercise(
    notebook=NOTEBOOK,
    name="unet_forward",
    library=("helpers.unet.UNet.forward", "helpers.unet.UNet.feature_maps"),
    reference=unet.UNet.forward,
    cases=_unet_forward_cases,
    hidden_cases=_hidden_unet_forward_cases,
    compare=_compare_no_grad,
    hint=(
        "Go down first: run each block of `model.down` in turn, keep its output for later, then pool. After "
        "the bottleneck, go up: each block of `model.up` takes the decoder's map and one kept map, and the "
        "first up block needs the map kept last (the deepest one). The 1x1 head turns the last map into scores."
    ),
    solution='''
def unet_forward(model, x):
    skips = []
    for block in model.down:
        x = block(x)
        skips.append(x)
        x = model.pool(x)
    x = model.bottleneck(x)
    for block, skip in zip(model.up, reversed(skips)):
        x = block(x, skip)
    return model.head(x)
''',
)
