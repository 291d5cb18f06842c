"""A small U-Net (Ronneberger et al. 2015) for semantic segmentation, and its parts.

- down path: at each depth two 3x3 convolutions (batch norm, ReLU), kept as the skip, then 2x2 max-pool;
- a bottleneck of two more 3x3 convolutions;
- up path: a 2x2 stride-2 `ConvTranspose2d` doubles the resolution, the skip from the same depth is
  copied (centre-cropped if it is larger) and concatenated along channels, two 3x3 convolutions follow;
- a 1x1 convolution gives one score per class at every pixel.

`UNet(..., skips=False)` is the same network without the long skip connections (the ablation of
notebook 05): each up block sees only the upsampled features.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convolutions (padding 1, so the size is kept), each followed by batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central `height x width` window of `x` `[B, C, H, W]` (H >= height, W >= width)."""
    h, w = x.shape[-2:]
    if height > h or width > w:
        raise ValueError(f"cannot crop [{h}, {w}] to a larger [{height}, {width}]")
    top, left = (h - height) // 2, (w - width) // 2
    return x[..., top : top + height, left : left + width]


def up_block_forward(x: torch.Tensor, skip: torch.Tensor, up: nn.Module, conv: nn.Module) -> torch.Tensor:
    """One step up the U: upsample `x`, copy-and-crop `skip`, concatenate, convolve.

    x `[B, C, h, w]`; skip `[B, C_skip, H, W]` with H >= the upsampled height (the original U-Net's
    unpadded convolutions leave the skip larger; then its centre is used); up: the upsampler
    (e.g. `ConvTranspose2d(C, C_up, 2, stride=2)`); conv: what reads the `C_up + C_skip` channels.
    The upsampled features come first in the concatenation. Returns `conv`'s output.
    """
    u = up(x)
    s = center_crop(skip, u.shape[-2], u.shape[-1])
    return conv(torch.cat([u, s], dim=1))


class UpBlock(nn.Module):
    """`ConvTranspose2d(in, in // 2, 2, stride=2)`, concatenate the skip, then `double_conv`.

    forward(x `[B, in, h, w]`, skip `[B, skip, 2h, 2w]`) -> `[B, out, 2h, 2w]`. With `skip_channels=0`
    the block has no skip connection and `forward(x, skip=None)` only upsamples and convolves.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = double_conv(in_channels // 2 + skip_channels, out_channels)
        self.uses_skip = skip_channels > 0

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.uses_skip:
            return up_block_forward(x, skip, self.up, self.conv)
        return self.conv(self.up(x))


class UNet(nn.Module):
    """U-Net: `[B, in_channels, H, W]` -> class scores `[B, num_classes, H, W]`.

    Args:
        in_channels: channels of the input image (3 for RGB).
        num_classes: scores per pixel (background included).
        base_channels: channels at full resolution; they double at each depth.
        depth: number of 2x poolings; H and W must be divisible by `2 ** depth`.
        skips: False drops the long skip connections (for the ablation).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 4, base_channels: int = 16, depth: int = 3, skips: bool = True):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("base_channels", base_channels), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 (background and one class), got {num_classes}")
        self.depth, self.skips = depth, skips
        widths = [base_channels * 2**i for i in range(depth + 1)]
        chans = [in_channels] + widths
        self.down = nn.ModuleList(double_conv(chans[i], chans[i + 1]) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double_conv(widths[depth - 1], widths[depth])
        self.up = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i] if skips else 0, widths[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError unless x is `[B, C, H, W]` with H and W divisible by 2**depth."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"x must be a [B, C, H, W] tensor, got {getattr(x, 'shape', type(x))}")
        c = self.down[0][0].in_channels
        if x.shape[1] != c:
            raise ValueError(f"x must have {c} channels, got {x.shape[1]}")
        m = 2**self.depth
        if x.shape[2] % m or x.shape[3] % m:
            raise ValueError(f"height and width must be divisible by 2**depth = {m}, got {list(x.shape[2:])}")

    def feature_maps(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """Every stage's output, in order: `down1..downD`, `bottleneck`, `upD..up1`, `scores`."""
        self.check_input(x)
        maps, skips = OrderedDict(), []
        for i, block in enumerate(self.down):
            x = block(x)
            maps[f"down{i + 1}"] = x
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        maps["bottleneck"] = x
        for block, skip, level in zip(self.up, reversed(skips), range(self.depth, 0, -1)):
            x = block(x, skip if self.skips else None)
            maps[f"up{level}"] = x
        maps["scores"] = self.head(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_maps(x)["scores"]


#: The arrow kinds of the U-Net figure, in the order of its legend.
ARROW_KINDS = ("conv", "pool", "up", "copy", "head")


def unet_diagram(model: UNet, height: int = 32, width: int | None = None) -> dict:
    """The bars and arrows of a U-Net figure, read from `model` by one forward pass with hooks.

    Nothing is typed by hand: every bar is a feature map the model computes for a
    `[1, in_channels, height, width]` input, and every arrow is a layer it runs.
    Returns a dict with

    - `bars`: a list of dicts, one per feature map in the order computed, each with `channels`,
      `height`, `width`, `level` (0 = full resolution, +1 per pooling), `column` (horizontal
      position: it advances with each horizontal arrow, so down and up arrows are vertical) and
      `parts`: `[(channels, "up"), (channels, "copy")]` for a concatenation, else `[(channels, kind)]`;
    - `arrows`: a list of `(kind, from_bar, to_bar)` with `kind` in `ARROW_KINDS`: "conv" (3x3
      convolution, batch norm, ReLU), "pool" (max-pool), "up" (transposed convolution), "copy"
      (copy, crop and concatenate) and "head" (the final 1x1 convolution).
    """
    width = height if width is None else width
    events: list[tuple] = []
    hooks = []

    def record(kind):
        def hook(module, inputs, output):
            events.append((kind, tuple(output.shape[1:])))
        return hook

    def record_concat(module, inputs):
        events.append(("concat", tuple(inputs[0].shape[1:])))

    for module in model.modules():
        if isinstance(module, nn.ReLU):
            hooks.append(module.register_forward_hook(record("conv")))
        elif isinstance(module, nn.MaxPool2d):
            hooks.append(module.register_forward_hook(record("pool")))
        elif isinstance(module, nn.ConvTranspose2d):
            hooks.append(module.register_forward_hook(record("up")))
    for block in model.up:
        hooks.append(block.conv.register_forward_pre_hook(record_concat))
    hooks.append(model.head.register_forward_hook(record("head")))
    in_channels = model.down[0][0].in_channels
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, height, width, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)

    bars = [dict(channels=in_channels, height=height, width=width, level=0, column=0, parts=[(in_channels, "input")])]
    arrows: list[tuple[str, int, int]] = []
    skip_stack: list[int] = []

    def add(kind, shape, level, column, parts=None):
        bars.append(dict(channels=shape[0], height=shape[1], width=shape[2], level=level, column=column,
                         parts=parts or [(shape[0], kind)]))
        arrows.append((kind, len(bars) - 2, len(bars) - 1))
        return len(bars) - 1

    for kind, shape in events:
        last = bars[-1]
        if kind in ("conv", "head"):
            add(kind, shape, last["level"], last["column"] + 1)
        elif kind == "pool":
            skip_stack.append(len(bars) - 1)
            add(kind, shape, last["level"] + 1, last["column"])
        elif kind == "up":
            add(kind, shape, last["level"] - 1, last["column"])
        elif kind == "concat":
            up_bar = bars[-1]
            skip = skip_stack.pop()
            extra = shape[0] - up_bar["channels"]
            if extra > 0:  # a skip connection: the bar becomes the upsampled part and the copied part
                up_bar["parts"] = [(up_bar["channels"], "up"), (extra, "copy")]
                up_bar["channels"] = shape[0]
                arrows.append(("copy", skip, len(bars) - 1))
    return {"bars": bars, "arrows": arrows}


def parameters_by_module_type(model: nn.Module) -> "OrderedDict[str, int]":
    """Number of learned parameters held directly by each kind of layer (e.g. "Conv2d": 12345).

    Every leaf module type appears, with 0 for those that learn nothing (MaxPool2d, ReLU).
    """
    counts: "OrderedDict[str, int]" = OrderedDict()
    for module in model.modules():
        if len(list(module.children())) == 0:
            name = type(module).__name__
            counts[name] = counts.get(name, 0) + sum(p.numel() for p in module.parameters(recurse=False))
    return counts


class AssembledUNet(UNet):
    """A `UNet` whose forward pass is `assemble(model, x)`, a function wiring the blocks together (the
    one notebook 05's students write): the same parts, initialised the same way, and the same
    `feature_maps` for the figures. forward: `[B, in_channels, H, W]` -> scores `[B, num_classes, H, W]`."""

    def __init__(self, assemble, *args, **kwargs):
        if not callable(assemble):
            raise TypeError(f"assemble must be a function (model, x) -> scores, got {type(assemble).__name__}")
        super().__init__(*args, **kwargs)
        self.assemble = assemble

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.assemble(self, x)
