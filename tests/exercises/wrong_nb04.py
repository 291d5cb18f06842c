"""Plausible wrong answers to notebook 04's exercises."""

import torch
import torch.nn.functional as F

from helpers.exercises.nb04 import reference_conv_matrix


def ordinary_full_convolution(x, kernel, stride=1, padding=0):
    # slides the kernel without flipping it: right only for symmetric kernels
    kh, kw = kernel.shape
    return F.conv2d(x[None, None], kernel[None, None], padding=(kh - 1, kw - 1))[0, 0]


def ignores_stride(x, kernel, stride=1, padding=0):
    H, W = x.shape
    kh, kw = kernel.shape
    out = torch.zeros(H + kh - 1, W + kw - 1, dtype=x.dtype)
    for i in range(H):
        for j in range(W):
            out[i : i + kh, j : j + kw] += x[i, j] * kernel
    return out[padding : out.shape[0] - padding, padding : out.shape[1] - padding]


def pads_instead_of_cropping(x, kernel, stride=1, padding=0):
    H, W = x.shape
    kh, kw = kernel.shape
    out = torch.zeros((H - 1) * stride + kh, (W - 1) * stride + kw, dtype=x.dtype)
    for i in range(H):
        for j in range(W):
            out[i * stride : i * stride + kh, j * stride : j * stride + kw] += x[i, j] * kernel
    return F.pad(out, (padding,) * 4)


def overwrites_instead_of_adding(x, kernel, stride=1, padding=0):
    H, W = x.shape
    kh, kw = kernel.shape
    out = torch.zeros((H - 1) * stride + kh, (W - 1) * stride + kw, dtype=x.dtype)
    for i in range(H):
        for j in range(W):
            out[i * stride : i * stride + kh, j * stride : j * stride + kw] = x[i, j] * kernel
    return out[padding : out.shape[0] - padding, padding : out.shape[1] - padding]


def no_output_padding(size, kernel_size, stride, padding):
    # the conv's own padding alone: right only when the stride divides evenly
    return padding, 0


def zero_padding(size, kernel_size, stride, padding):
    # forgets that a transposed convolution's padding crops: the output comes back too large
    return 0, (size + 2 * padding - kernel_size) % stride


def remainder_of_size(size, kernel_size, stride, padding):
    # the remainder of the input size, not of what the conv's windows left over
    return padding, size % stride


def float_answer(size, kernel_size, stride, padding):
    return float(padding), float((size + 2 * padding - kernel_size) % stride)


def transposed_matrix(kernel, height, width):
    return reference_conv_matrix(kernel, height, width).T  # the transposed convolution's matrix instead


def flipped_kernel_matrix(kernel, height, width):
    return reference_conv_matrix(kernel.flip(0, 1), height, width)  # true convolution, not cross-correlation


def column_index_uses_output_width(kernel, height, width):
    kh, kw = kernel.shape
    oh, ow = height - kh + 1, width - kw + 1
    C = torch.zeros(oh * ow, height * width, dtype=kernel.dtype)
    for y in range(oh):
        for x in range(ow):
            for a in range(kh):
                for b in range(kw):
                    C[y * ow + x, (y + a) * ow + (x + b)] = kernel[a, b]
    return C


def counts_not_sums(kernel, stride):
    # how many weights land on each phase (the overlap count), not what they add up to
    kh, kw = kernel.shape
    counts = torch.zeros(stride, stride, dtype=kernel.dtype)
    for a in range(kh):
        for b in range(kw):
            counts[a % stride, b % stride] += 1
    return counts


def kernel_sum_spread_evenly(kernel, stride):
    # assumes every phase gets an equal share of the kernel's total
    return torch.full((stride, stride), float(kernel.sum()) / stride**2, dtype=kernel.dtype)


def rows_only(kernel, stride):
    # sorts the rows by phase but adds up whole rows
    sums = torch.zeros(stride, stride, dtype=kernel.dtype)
    for a in range(kernel.shape[0]):
        sums[a % stride, :] += kernel[a].sum() / stride
    return sums


def flips_the_kernel(kernel, stride):
    # the rotated kernel belongs to the zero-insertion view, not to the scatter
    k = kernel.flip(0, 1)
    sums = torch.zeros(stride, stride, dtype=kernel.dtype)
    for a in range(k.shape[0]):
        for b in range(k.shape[1]):
            sums[a % stride, b % stride] += k[a, b]
    return sums


def block_sums(kernel, stride):
    # groups neighbouring weights (a // stride) instead of weights a stride apart (a % stride)
    kh, kw = kernel.shape
    sums = torch.zeros(stride, stride, dtype=kernel.dtype)
    for a in range(kh):
        for b in range(kw):
            sums[min(a // stride, stride - 1), min(b // stride, stride - 1)] += kernel[a, b]
    return sums


WRONG = {
    "transposed_conv": [ordinary_full_convolution, ignores_stride, pads_instead_of_cropping, overwrites_instead_of_adding],
    "inverse_padding": [no_output_padding, zero_padding, remainder_of_size, float_answer],
    "conv_matrix": [transposed_matrix, flipped_kernel_matrix, column_index_uses_output_width],
    "phase_sums": [counts_not_sums, kernel_sum_spread_evenly, rows_only, flips_the_kernel, block_sums],
}
