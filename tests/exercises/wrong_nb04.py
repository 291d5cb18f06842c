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


def convolution_size(size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def forgets_dilation(size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
    return (size - 1) * stride - 2 * padding + kernel_size + output_padding


def float_size(size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
    return float((size - 1) * stride + dilation * (kernel_size - 1) + 1 - 2 * padding + output_padding)


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


WRONG = {
    "transposed_conv": [ordinary_full_convolution, ignores_stride, pads_instead_of_cropping, overwrites_instead_of_adding],
    "output_size": [convolution_size, forgets_dilation, float_size],
    "conv_matrix": [transposed_matrix, flipped_kernel_matrix, column_index_uses_output_width],
    "even_kernel_sizes": [{3, 5, 7}, {2, 4}, {4}, [2, 3, 4, 5, 6, 7], "2, 4, 6", {2.0, 4.0, 6.0}],
}
