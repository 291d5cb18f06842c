"""Transposed convolution three ways, and the checkerboard artefact it can leave.

- `conv_transpose2d`: the scatter form, written out. Every input pixel adds a copy of the kernel,
  scaled by the pixel's value, into the output at `stride` times its position; `padding` then crops
  the border of that sum. Same signature and results as `torch.nn.functional.conv_transpose2d`.
- `conv_transpose2d_zero_insertion`: put `stride - 1` zeros between input pixels, pad, and run an
  ordinary convolution with the kernel flipped (and its two channel axes swapped).
- `conv_transpose2d_matrix`: write the ordinary convolution as a matrix `C` (`convolution_matrix`),
  so that `conv(x) = C @ x.flatten()`; the transposed convolution is `C.T @ y`. Hence the name.

Shapes follow PyTorch: input `[N, C_in, H, W]` (or unbatched `[C_in, H, W]`), weight
`[C_in, C_out // groups, kH, kW]`, bias `[C_out]`, output `[N, C_out, H_out, W_out]` with
`H_out = (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each at least `minimum`, as a pair."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
    ):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def conv_transpose_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0, dilation: int = 1) -> int:
    """Length of a transposed convolution's output along one axis, for an input of length `size`.

    `(size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1`.
    """
    for name, value, minimum in (("size", size, 1), ("kernel_size", kernel_size, 1), ("stride", stride, 1),
                                 ("padding", padding, 0), ("output_padding", output_padding, 0),
                                 ("dilation", dilation, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name} must be an int of at least {minimum}, got {value!r}")
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def _check_arguments(input, weight, bias, stride, padding, output_padding, groups, dilation):
    """Validate everything once; return (batched input, was_unbatched, pairs, output size)."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if input.dim() not in (3, 4):
        raise ValueError(f"input must be [N, C_in, H, W] or [C_in, H, W], got shape {list(input.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"weight must be [C_in, C_out // groups, kH, kW], got shape {list(weight.shape)}")
    if not (input.is_floating_point() and weight.is_floating_point()):
        raise TypeError(f"input and weight must be floating point, got {input.dtype} and {weight.dtype}")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    unbatched = input.dim() == 3
    x = input[None] if unbatched else input
    c_in = x.shape[1]
    if weight.shape[0] != c_in:
        raise ValueError(f"weight.shape[0] must equal the input channels ({c_in}), got {weight.shape[0]}")
    if c_in % groups:
        raise ValueError(f"input channels ({c_in}) must be divisible by groups ({groups})")
    c_out = weight.shape[1] * groups
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.shape != (c_out,):
            raise ValueError(f"bias must be None or a tensor of shape [{c_out}], got {getattr(bias, 'shape', bias)!r}")
    s, p = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    op, d = _pair(output_padding, "output_padding", 0), _pair(dilation, "dilation", 1)
    for axis in range(2):
        if op[axis] >= max(s[axis], d[axis]):
            raise ValueError(
                f"output_padding must be smaller than stride or dilation, got output_padding={output_padding!r} "
                f"with stride={stride!r} and dilation={dilation!r}"
            )
    k = weight.shape[2:]
    out = tuple((x.shape[2 + a] - 1) * s[a] - 2 * p[a] + d[a] * (k[a] - 1) + op[a] + 1 for a in range(2))
    if min(out) < 1:
        raise ValueError(f"padding {padding!r} is too large: the output would be {list(out)} pixels")
    return x, unbatched, s, p, op, d, out


# --------------------------------------------------------------------------------------------
# View 1: scatter
# --------------------------------------------------------------------------------------------


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed convolution, scatter form; same arguments and result as `F.conv_transpose2d`.

    input `[N, C_in, H, W]` or `[C_in, H, W]`; weight `[C_in, C_out // groups, kH, kW]`; bias `[C_out]`.
    Returns `[N, C_out, H_out, W_out]` (or `[C_out, H_out, W_out]` for an unbatched input).

    Each input pixel `(i, j)` adds `sum_c input[c, i, j] * weight[c]` (a `[C_out, kH, kW]` stamp,
    spread out by `dilation`) at rows `i * stride ...` and columns `j * stride ...` of a full-size
    canvas; the output is that canvas with `padding` cropped from every side.
    """
    x, unbatched, s, p, op, d, out = _check_arguments(input, weight, bias, stride, padding, output_padding, groups, dilation)
    n, c_in, h, w = x.shape
    kh, kw = weight.shape[2:]
    c_out = weight.shape[1] * groups
    full_h = (h - 1) * s[0] + d[0] * (kh - 1) + 1 + op[0]
    full_w = (w - 1) * s[1] + d[1] * (kw - 1) + 1 + op[1]
    canvas = x.new_zeros(n, c_out, full_h, full_w)
    xg = x.reshape(n, groups, c_in // groups, h, w)
    wg = weight.reshape(groups, c_in // groups, weight.shape[1], kh, kw)
    for i in range(h):
        for j in range(w):
            # the stamp of pixel (i, j): each group's channels mix only with that group's kernels
            stamp = torch.einsum("ngc,gcokl->ngokl", xg[:, :, :, i, j], wg).reshape(n, c_out, kh, kw)
            rows = slice(i * s[0], i * s[0] + d[0] * (kh - 1) + 1, d[0])
            cols = slice(j * s[1], j * s[1] + d[1] * (kw - 1) + 1, d[1])
            canvas[:, :, rows, cols] += stamp
    result = canvas[:, :, p[0] : p[0] + out[0], p[1] : p[1] + out[1]]
    if bias is not None:
        result = result + bias.reshape(1, -1, 1, 1)
    return result[0] if unbatched else result


def scatter_steps(x: torch.Tensor, kernel: torch.Tensor, stride: int = 1):
    """The scatter form one pixel at a time, for pictures: single channel, no padding.

    x `[H, W]`, kernel `[kH, kW]`. Returns a list of `(i, j, canvas)` after each pixel, row by row;
    `canvas` is the full (uncropped) output `[(H-1)*stride + kH, (W-1)*stride + kW]` so far.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a [H, W] tensor, got {getattr(x, 'shape', type(x))}")
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 2:
        raise ValueError(f"kernel must be a [kH, kW] tensor, got {getattr(kernel, 'shape', type(kernel))}")
    s = _pair(stride, "stride", 1)
    (h, w), (kh, kw) = x.shape, kernel.shape
    canvas = torch.zeros((h - 1) * s[0] + kh, (w - 1) * s[1] + kw, dtype=torch.float64)
    steps = []
    for i in range(h):
        for j in range(w):
            canvas[i * s[0] : i * s[0] + kh, j * s[1] : j * s[1] + kw] += float(x[i, j]) * kernel.double()
            steps.append((i, j, canvas.clone()))
    return steps


# --------------------------------------------------------------------------------------------
# View 2: insert zeros, pad, convolve with the flipped kernel
# --------------------------------------------------------------------------------------------


def insert_zeros(x: torch.Tensor, stride) -> torch.Tensor:
    """Put `stride - 1` zeros between neighbouring pixels: `[..., H, W]` -> `[..., (H-1)*s+1, (W-1)*s+1]`."""
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError(f"x must be a tensor [..., H, W], got {getattr(x, 'shape', type(x))}")
    s = _pair(stride, "stride", 1)
    h, w = x.shape[-2:]
    out = x.new_zeros(*x.shape[:-2], (h - 1) * s[0] + 1, (w - 1) * s[1] + 1)
    out[..., :: s[0], :: s[1]] = x
    return out


def flipped_conv_weight(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """A transposed convolution's weight `[C_in, C_out/g, kH, kW]` as the ordinary convolution's
    weight `[C_out, C_in/g, kH, kW]` that does the same job on the zero-inserted input: swap the
    two channel axes within each group and rotate every kernel by 180 degrees."""
    c_in, c_out_g, kh, kw = weight.shape
    w = weight.reshape(groups, c_in // groups, c_out_g, kh, kw).transpose(1, 2)
    return w.reshape(groups * c_out_g, c_in // groups, kh, kw).flip(-1, -2)


def conv_transpose2d_zero_insertion(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed convolution as an ordinary one; same arguments and result as `F.conv_transpose2d`.

    1. insert `stride - 1` zeros between input pixels;
    2. pad every side by `dilation * (k - 1) - padding` (a negative pad crops), plus
       `output_padding` more at the bottom and right;
    3. convolve (stride 1, same dilation and groups) with `flipped_conv_weight(weight)`.
    """
    x, unbatched, s, p, op, d, out = _check_arguments(input, weight, bias, stride, padding, output_padding, groups, dilation)
    kh, kw = weight.shape[2:]
    z = insert_zeros(x, s)
    ph, pw = d[0] * (kh - 1) - p[0], d[1] * (kw - 1) - p[1]
    z = F.pad(z, (pw, pw + op[1], ph, ph + op[0]))  # (left, right, top, bottom); negative values crop
    result = F.conv2d(z, flipped_conv_weight(weight, groups), bias, stride=1, dilation=d, groups=groups)
    return result[0] if unbatched else result


# --------------------------------------------------------------------------------------------
# View 3: the transpose of the convolution's matrix
# --------------------------------------------------------------------------------------------


def convolution_matrix(weight, input_size, output_size=None, stride=1, padding=0, dilation=1, groups=1):
    """The matrix `C` of an ordinary convolution (PyTorch's cross-correlation, no bias).

    weight `[C_out, C_in // groups, kH, kW]`; input_size `(H, W)`; output_size `(H_o, W_o)` defaults
    to the usual `floor((H + 2p - d(k-1) - 1) / s) + 1`. Returns `C` of shape
    `[C_out * H_o * W_o, C_in * H * W]` (dtype of `weight`) such that, for one image `x` `[C_in, H, W]`,
    `F.conv2d(x[None], weight, ...).flatten() == C @ x.flatten()`.

    Row `(o, y, x)` holds the kernel `weight[o]` laid over the input window whose corner is
    `(y * s - p, x * s - p)`; entries falling into the padding are dropped (they would multiply zeros).
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise ValueError(f"weight must be a [C_out, C_in // groups, kH, kW] tensor, got {getattr(weight, 'shape', type(weight))}")
    h, w = _pair(tuple(input_size) if isinstance(input_size, (tuple, list, torch.Size)) else input_size, "input_size", 1)
    s, p, d = _pair(stride, "stride", 1), _pair(padding, "padding", 0), _pair(dilation, "dilation", 1)
    if not isinstance(groups, int) or groups < 1 or weight.shape[0] % groups:
        raise ValueError(f"groups must be a positive int dividing weight.shape[0] ({weight.shape[0]}), got {groups!r}")
    c_out, c_in_g, kh, kw = weight.shape
    c_in = c_in_g * groups
    if output_size is None:
        output_size = tuple((n + 2 * p[a] - d[a] * (k - 1) - 1) // s[a] + 1 for a, (n, k) in enumerate(((h, kh), (w, kw))))
    ho, wo = _pair(tuple(output_size), "output_size", 1)
    C = weight.new_zeros(c_out, ho, wo, c_in, h, w)
    ys, xs = torch.arange(ho), torch.arange(wo)
    for o in range(c_out):
        g = o // (c_out // groups)
        for c in range(c_in_g):
            for a in range(kh):
                rows = ys * s[0] - p[0] + a * d[0]  # input row each output row reads through tap a
                ok_y = (rows >= 0) & (rows < h)
                for b in range(kw):
                    cols = xs * s[1] - p[1] + b * d[1]
                    ok_x = (cols >= 0) & (cols < w)
                    yy, xx = torch.meshgrid(ys[ok_y], xs[ok_x], indexing="ij")
                    C[o, yy, xx, g * c_in_g + c, rows[ok_y][:, None], cols[ok_x][None, :]] += weight[o, c, a, b]
    return C.reshape(c_out * ho * wo, c_in * h * w)


def conv_transpose2d_matrix(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed convolution as `C.T @ x`; same arguments and result as `F.conv_transpose2d`.

    The same `weight`, read as an ordinary convolution's weight, maps an image of the transposed
    convolution's *output* size back to its *input* size; `C` is that convolution's matrix
    (`convolution_matrix`), and the transposed convolution multiplies by its transpose.
    """
    x, unbatched, s, p, op, d, out = _check_arguments(input, weight, bias, stride, padding, output_padding, groups, dilation)
    n, c_in, h, w = x.shape
    C = convolution_matrix(weight, out, output_size=(h, w), stride=s, padding=p, dilation=d, groups=groups)
    result = (x.reshape(n, -1) @ C.to(x.dtype)).reshape(n, -1, *out)  # row-vector form of C.T @ x
    if bias is not None:
        result = result + bias.reshape(1, -1, 1, 1)
    return result[0] if unbatched else result


# --------------------------------------------------------------------------------------------
# Checkerboard artefacts
# --------------------------------------------------------------------------------------------


def overlap_counts(size: int, kernel_size: int, stride: int, padding: int = 0) -> torch.Tensor:
    """How many kernel copies land on each output pixel when a `size x size` image is upsampled.

    The transposed convolution of an all-ones image with an all-ones `kernel_size` kernel: float64
    `[H_out, W_out]`. Uneven counts (when `kernel_size % stride != 0`) are the checkerboard.
    """
    x = torch.ones(1, 1, size, size, dtype=torch.float64)
    k = torch.ones(1, 1, kernel_size, kernel_size, dtype=torch.float64)
    return F.conv_transpose2d(x, k, stride=stride, padding=padding)[0, 0]


def phase_sums(kernel: torch.Tensor, stride: int) -> torch.Tensor:
    """What an all-ones input becomes, away from the border, under a one-channel transposed convolution.

    kernel `[kH, kW]` (floating point), stride a positive int. Canvas pixel `(y, x)` receives
    `kernel[a, b]` from one copy for every `a` with `a % stride == y % stride` and every `b` with
    `b % stride == x % stride`, so its value depends only on its *phase* `(y % stride, x % stride)`.
    Returns `[stride, stride]`: entry `[p, q]` is the sum of `kernel[a, b]` over `a % stride == p`,
    `b % stride == q` (0 where no entry falls). A constant input comes out flat inside exactly when
    all the entries are equal; when the kernel size is a multiple of the stride every phase sums the
    same *number* of weights, but their values can still differ.
    """
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 2 or not kernel.is_floating_point():
        raise ValueError(f"kernel must be a floating-point [kH, kW] tensor, got {getattr(kernel, 'shape', type(kernel))}")
    if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    kh, kw = kernel.shape
    rows = torch.arange(kh, device=kernel.device) % stride
    cols = torch.arange(kw, device=kernel.device) % stride
    row_phase = F.one_hot(rows, stride).to(kernel.dtype)  # [kH, s]
    col_phase = F.one_hot(cols, stride).to(kernel.dtype)  # [kW, s]
    return row_phase.T @ kernel @ col_phase


class ResizeConv(nn.Module):
    """Odena et al.'s fix: nearest-neighbour upsampling by `scale`, then a `kernel_size` convolution.

    `[B, C_in, H, W]` -> `[B, C_out, scale*H, scale*W]`. Every output pixel sees the same number of
    weights, so a constant image stays constant away from the border.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (so the output keeps its size), got {kernel_size}")
        self.scale = scale
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, padding_mode="replicate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


def upsampling_stack(kind: str, layers: int = 3, channels: int = 4, seed: int = 0) -> nn.Sequential:
    """`layers` randomly initialised 2x upsamplers with ReLU between, to see artefacts compound.

    kind: "transposed k3" (kernel 3, stride 2: uneven overlap), "transposed k4" (kernel 4, stride 2,
    padding 1: even overlap inside) or "resize-conv". The first layer takes 1 channel, the last
    gives 1. Weights are uniform in [0.2, 1.2) and biases zero: no training's initialisation (PyTorch's
    draws both signs), chosen so that a constant input's output stays positive and its pattern, not
    its sign, shows.
    """
    g = torch.Generator().manual_seed(seed)
    chans = [1] + [channels] * (layers - 1) + [1]
    mods = []
    for a, b in zip(chans[:-1], chans[1:]):
        if kind == "transposed k3":
            m = nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1)
        elif kind == "transposed k4":
            m = nn.ConvTranspose2d(a, b, 4, stride=2, padding=1)
        elif kind == "resize-conv":
            m = ResizeConv(a, b)
        else:
            raise ValueError(f"kind must be 'transposed k3', 'transposed k4' or 'resize-conv', got {kind!r}")
        conv = m.conv if isinstance(m, ResizeConv) else m
        with torch.no_grad():
            conv.weight.copy_(torch.rand(conv.weight.shape, generator=g) + 0.2)
            conv.bias.zero_()
        mods += [m, nn.ReLU()]
    return nn.Sequential(*mods[:-1])


def show_scatter_step(axes, x: torch.Tensor, kernel: torch.Tensor, step: int, stride: int = 1, padding: int = 0) -> None:
    """Draw step `step` (0-based) of the scatter form on three axes: the input with the current pixel
    outlined, the stamp it adds (kernel times pixel), and the canvas so far, with the part kept after
    cropping `padding` outlined (the output of the transposed convolution)."""
    from matplotlib.patches import Rectangle

    steps = scatter_steps(x, kernel, stride)
    step = max(0, min(step, len(steps) - 1))
    i, j, canvas = steps[step]
    kh, kw = kernel.shape
    vmax = float(steps[-1][2].abs().max()) or 1.0
    panels = [(x.double(), "input (pixel being scattered)"), (float(x[i, j]) * kernel.double(), f"stamp = {float(x[i, j]):g} x kernel"),
              (canvas, f"canvas after {step + 1} of {len(steps)} pixels")]
    for ax, (img, title) in zip(axes, panels):
        ax.clear()
        ax.imshow(img.numpy(), cmap="viridis", vmin=min(0.0, float(steps[-1][2].min())), vmax=vmax)
        for (r, c), v in zip(torch.cartesian_prod(torch.arange(img.shape[0]), torch.arange(img.shape[1])).tolist(), img.flatten().tolist()):
            ax.text(c, r, f"{v:g}", ha="center", va="center", color="white", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
    axes[2].add_patch(Rectangle((j * stride - 0.5, i * stride - 0.5), kw, kh, fill=False, ec="red", lw=2))
    h, w = canvas.shape
    if 2 * padding < min(h, w):
        axes[2].add_patch(Rectangle((padding - 0.5, padding - 0.5), w - 2 * padding, h - 2 * padding,
                                    fill=False, ec="white", lw=2, ls="--"))
