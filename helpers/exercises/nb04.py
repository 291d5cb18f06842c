"""Exercises of notebook 04: transposed convolution."""

from __future__ import annotations

import torch

from helpers import transposed
from helpers.exercises.core import Case, FunctionExercise, describe

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


def _output_size_cases(g: "torch.Generator | None" = None) -> list[Case]:
    """The two sizes the notebook computes, then random settings drawn from `g` (seed 5 when None)."""
    hidden = g is not None
    cases = [] if hidden else [Case("size 2, kernel 2 (Problem 2)", (2, 2)), Case("size 8, kernel 2, stride 2 (U-Net's up step)", (8, 2), {"stride": 2})]
    g = g if hidden else torch.Generator().manual_seed(5)
    while len(cases) < (10 if hidden else 30):
        size, k, s, p, d = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((1, 9), (1, 6), (1, 4), (0, 3), (1, 3)))
        op = int(torch.randint(0, max(s, d), (1,), generator=g))
        if transposed.conv_transpose_output_size(size, k, s, p, op, d) < 1:
            continue
        cases.append(Case(f"size {size}, kernel {k}, stride {s}, padding {p}, output_padding {op}, dilation {d}",
                          (size, k), {"stride": s, "padding": p, "output_padding": op, "dilation": d}))
    return cases


def _compare_size(expected: int, got) -> str | None:
    if isinstance(got, float) and got.is_integer():
        return "expected an int, got a float (use // rather than /)"
    if not isinstance(got, int) or isinstance(got, bool):
        return f"expected an int, got {describe(got)}"
    return None if got == expected else f"got {got}, which is not the output size"


output_size = FunctionExercise(
    notebook=NOTEBOOK,
    name="output_size",
    library=("helpers.transposed.conv_transpose_output_size", "torch.nn.ConvTranspose1d",
             "torch.nn.functional.conv_transpose1d", "torch.nn.functional.conv_transpose2d", "torch.conv_transpose2d",
             "torch.nn.ConvTranspose2d", "helpers.transposed.conv_transpose2d"),
    reference=transposed.conv_transpose_output_size,
    cases=_output_size_cases,
    hidden_cases=_output_size_cases,
    compare=_compare_size,
    hint=(
        "Count the canvas: the last input pixel's copy starts at (size - 1) * stride and a dilated kernel "
        "spans dilation * (kernel_size - 1) + 1 pixels. Then padding removes pixels from both ends, and "
        "output_padding adds some back at one end."
    ),
    solution='''
def output_size(size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
    return (size - 1) * stride + dilation * (kernel_size - 1) + 1 - 2 * padding + output_padding
''',
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
