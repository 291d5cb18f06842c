"""Exercises of notebook 04: transposed convolution."""

from __future__ import annotations

import torch

from helpers import transposed
from helpers.exercises.compare import describe
from helpers.exercises.core import Case, FunctionExercise

NOTEBOOK = "04_transposed_convolution"

#: Problem 2 of the handout: input and kernel (one channel, stride 1, no padding).
PROBLEM2_INPUT = torch.tensor([[0.0, 1.0], [2.0, 3.0]], dtype=torch.float64)
PROBLEM2_KERNEL = torch.tensor([[0.0, 1.0], [2.0, 3.0]], dtype=torch.float64)


def reference_transposed_conv(x: torch.Tensor, kernel: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """One-channel transposed convolution: x `[H, W]`, kernel `[kH, kW]` -> `[H_out, W_out]`."""
    return transposed.conv_transpose2d(x[None, None], kernel[None, None], stride=stride, padding=padding)[0, 0]


def _transposed_conv_cases() -> list[Case]:
    g = torch.Generator().manual_seed(4)
    r = lambda *shape: torch.randint(-3, 4, shape, generator=g).double()  # small integers: easy to read
    return [
        Case("the handout's Problem 2 (2x2 input, 2x2 kernel, stride 1)", (PROBLEM2_INPUT, PROBLEM2_KERNEL)),
        Case("a 3x3 input and a non-symmetric 3x3 kernel, stride 1", (r(3, 3), r(3, 3))),
        Case("a 3x3 input, 2x2 kernel, stride 2 (copies side by side)", (r(3, 3), r(2, 2)), {"stride": 2}),
        Case("a 2x4 input, 2x3 kernel, stride 3 (gaps between copies)", (r(2, 4), r(2, 3)), {"stride": 3}),
        Case("a 4x3 input, 3x3 kernel, stride 2, padding 1", (r(4, 3), r(3, 3)), {"stride": 2, "padding": 1}),
        Case("a 3x3 input, 4x4 kernel, stride 2, padding 2", (r(3, 3), r(4, 4)), {"stride": 2, "padding": 2}),
    ]


transposed_conv = FunctionExercise(
    notebook=NOTEBOOK,
    name="transposed_conv",
    library=("torch.nn.functional.conv_transpose2d", "torch.conv_transpose2d", "torch.nn.ConvTranspose2d",
             "helpers.transposed.conv_transpose2d", "torch.nn.LazyConvTranspose2d", "torch.nn.grad.conv2d_input",
             "helpers.transposed.conv_transpose2d_zero_insertion", "helpers.transposed.conv_transpose2d_matrix",
             "helpers.transposed.scatter_steps", "helpers.exercises.nb04.reference_transposed_conv"),
    reference=reference_transposed_conv,
    cases=_transposed_conv_cases,
    hint=(
        "Start from a zero canvas of size (H - 1) * stride + kH by (W - 1) * stride + kW. For every input "
        "pixel (i, j), add x[i, j] * kernel into the window whose top-left corner is (i * stride, j * stride). "
        "Padding does not add zeros here: it removes `padding` rows and columns from every side of the canvas."
    ),
    solution='''
def transposed_conv(x, kernel, stride=1, padding=0):
    H, W = x.shape
    kh, kw = kernel.shape
    canvas = torch.zeros((H - 1) * stride + kh, (W - 1) * stride + kw, dtype=x.dtype)
    for i in range(H):
        for j in range(W):
            canvas[i * stride : i * stride + kh, j * stride : j * stride + kw] += x[i, j] * kernel
    return canvas[padding : canvas.shape[0] - padding, padding : canvas.shape[1] - padding]
''',
)


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Length of a `Conv2d`'s output along one axis (dilation 1): an int."""
    return (size + 2 * padding - kernel_size) // stride + 1


def reference_inverse_padding(size: int, kernel_size: int, stride: int, padding: int) -> tuple[int, int]:
    """`(padding, output_padding)` of the `ConvTranspose2d(kernel_size, stride)` that gives back the
    `size` pixels a `Conv2d(kernel_size, stride, padding)` took in, with the conv's own padding."""
    return padding, (size + 2 * padding - kernel_size) % stride


def compare_inverse_padding(expected: tuple, got) -> str | None:
    """None when `got` equals `expected`, a pair of ints; else which of the two is off, without the answer."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a pair (padding, output_padding), got {describe(got)}"
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in got):
        return f"expected two ints, got {describe(got[0])} and {describe(got[1])}"
    if got[0] != expected[0]:
        return f"padding {got[0]} is not the one that undoes the conv's padding"
    if got[1] != expected[1]:
        return f"with output_padding {got[1]} the transposed convolution does not give the conv's input size back"
    return None


def _inverse_padding_cases(g: "torch.Generator | None" = None) -> list[Case]:
    """Fixed cases first (the U-Net's down step, a size the stride does not divide), then random
    convolutions drawn from `g` (seed 5 when None)."""
    hidden = g is not None
    cases = [] if hidden else [
        Case("a 3x3 conv, stride 1, padding 1 on 8 pixels", (8, 3, 1, 1)),
        Case("a 2x2 conv, stride 2 on 8 pixels (the U-Net's down step)", (8, 2, 2, 0)),
        Case("a 3x3 conv, stride 2, padding 1 on 7 pixels (7 and 8 both give 4)", (7, 3, 2, 1)),
        Case("a 3x3 conv, stride 2, padding 1 on 8 pixels", (8, 3, 2, 1)),
    ]
    g = g if hidden else torch.Generator().manual_seed(5)
    while len(cases) < (8 if hidden else 16):
        size, k, s, p = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((5, 20), (1, 6), (1, 4), (0, 3)))
        if p >= k or conv_output_size(size, k, s, p) < 1:
            continue
        cases.append(Case(f"a {k}x{k} conv, stride {s}, padding {p} on {size} pixels", (size, k, s, p)))
    return cases


inverse_padding = FunctionExercise(
    notebook=NOTEBOOK,
    name="inverse_padding",
    reference=reference_inverse_padding,
    cases=_inverse_padding_cases,
    hidden_cases=_inverse_padding_cases,
    compare=compare_inverse_padding,
    hint=(
        "First work out how many pixels the convolution gives: it drops the remainder of a division by the "
        "stride, so several input sizes give the same output. The transposed convolution with the conv's own "
        "padding gives back the smallest of them; output_padding must add back exactly what the division dropped."
    ),
    solution='''
def inverse_padding(size, kernel_size, stride, padding):
    dropped = (size + 2 * padding - kernel_size) % stride
    return padding, dropped
''',
    library=("helpers.exercises.nb04.reference_inverse_padding",),
)


def reference_conv_matrix(kernel: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Matrix of the one-channel, stride-1, unpadded convolution of a `height x width` image."""
    return transposed.convolution_matrix(kernel[None, None], (height, width))


def _conv_matrix_cases() -> list[Case]:
    g = torch.Generator().manual_seed(6)
    r = lambda *shape: torch.randint(1, 10, shape, generator=g).double()
    return [
        Case("the Problem 2 kernel on a 3x3 image", (PROBLEM2_KERNEL, 3, 3)),
        Case("a 3x3 kernel on a 4x4 image", (r(3, 3), 4, 4)),
        Case("a 2x3 kernel on a 3x5 image", (r(2, 3), 3, 5)),
        Case("a 1x1 kernel on a 2x3 image", (r(1, 1), 2, 3)),
    ]


conv_matrix = FunctionExercise(
    notebook=NOTEBOOK,
    name="conv_matrix",
    library=("helpers.transposed.convolution_matrix", "helpers.transposed.conv_transpose2d_matrix",
             "helpers.exercises.nb04.reference_conv_matrix"),
    reference=reference_conv_matrix,
    cases=_conv_matrix_cases,
    hint=(
        "The output has (height - kH + 1) * (width - kW + 1) pixels: one row of C each, numbered row by row "
        "(y * out_width + x). Output pixel (y, x) reads input pixel (y + a, x + b) with weight kernel[a, b]; "
        "that input pixel is column (y + a) * width + (x + b)."
    ),
    solution='''
def conv_matrix(kernel, height, width):
    kh, kw = kernel.shape
    oh, ow = height - kh + 1, width - kw + 1
    C = torch.zeros(oh * ow, height * width, dtype=kernel.dtype)
    for y in range(oh):
        for x in range(ow):
            for a in range(kh):
                for b in range(kw):
                    C[y * ow + x, (y + a) * width + (x + b)] = kernel[a, b]
    return C
''',
)


def _phase_sums_cases() -> list[Case]:
    g = torch.Generator().manual_seed(7)
    r = lambda *shape: torch.randint(0, 6, shape, generator=g).double()  # small integers: easy to read
    return [
        Case("the Problem 2 kernel, stride 2 (the 2x2 copies tile the output)", (PROBLEM2_KERNEL, 2)),
        Case("a 3x3 kernel of ones, stride 2 (uneven counts)", (torch.ones(3, 3, dtype=torch.float64), 2)),
        Case("a random 4x4 kernel, stride 2", (r(4, 4), 2)),
        Case("a random 3x5 kernel, stride 2 (not square)", (r(3, 5), 2)),
        Case("a random 5x4 kernel, stride 3", (r(5, 4), 3)),
        Case("a random 2x2 kernel, stride 3 (gaps: some phases get no weight)", (r(2, 2), 3)),
        Case("a random 3x3 kernel, stride 1", (r(3, 3), 1)),
    ]


phase_sums = FunctionExercise(
    notebook=NOTEBOOK,
    name="phase_sums",
    library=("helpers.transposed.phase_sums", "torch.nn.functional.conv_transpose2d", "torch.conv_transpose2d",
             "torch.nn.ConvTranspose2d", "helpers.transposed.conv_transpose2d"),
    reference=transposed.phase_sums,
    cases=_phase_sums_cases,
    hint=(
        "The copy of input pixel i puts kernel row a on canvas row stride * i + a. So, away from the border, "
        "canvas row y collects every kernel row a with a % stride == y % stride (and columns likewise). "
        "Entry [p, q] is the sum of kernel[a, b] over those a and b: a [stride, stride] tensor."
    ),
    solution='''
def phase_sums(kernel, stride):
    kh, kw = kernel.shape
    sums = torch.zeros(stride, stride, dtype=kernel.dtype)
    for a in range(kh):
        for b in range(kw):
            sums[a % stride, b % stride] += kernel[a, b]
    return sums
''',
)
