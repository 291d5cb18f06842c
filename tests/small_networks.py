"""A small named conv net wrapped as a `FeatureNetwork`, for tests of the feature machinery (hooks,
truncation, dreams, style transfer) that need layers with names but not trained weights."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from helpers.features import FeatureNetwork


def small_feature_network(seed: int = 0, widths=(16, 32, 48, 64), num_classes: int = 3) -> FeatureNetwork:
    """Conv + batch-norm + ReLU stages named `conv1`, `bn1`, `relu1`, `pool1`, ... (the last without a
    pool), a global max-pool and `logits`: images `[B,3,H,W]` of any size -> `[B, num_classes]`; frozen."""
    torch.manual_seed(seed)
    layers, c_in = [], 3
    for i, c_out in enumerate(widths, start=1):
        layers += [(f"conv{i}", nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)), (f"bn{i}", nn.BatchNorm2d(c_out)),
                   (f"relu{i}", nn.ReLU())]
        if i < len(widths):
            layers.append((f"pool{i}", nn.MaxPool2d(2)))
        c_in = c_out
    layers += [("global_max", nn.AdaptiveMaxPool2d(1)), ("flatten", nn.Flatten()), ("logits", nn.Linear(c_in, num_classes))]
    model = nn.Sequential(OrderedDict(layers)).eval().requires_grad_(False)
    return FeatureNetwork("test", model, torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.25, 0.25]), False, "test net")
