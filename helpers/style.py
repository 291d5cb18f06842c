"""Neural style transfer (Gatys et al. 2016): content loss, Gram matrices, style loss, the optimisation.

Conventions used throughout (the notebook states them too):

- `gram_matrix(f)` for features `[B,C,H,W]` is `f f^T / (C*H*W)` over the flattened positions: `[B,C,C]`.
- content loss: the mean squared difference between two feature maps;
- style loss: a weighted sum over layers of the mean squared difference between Gram matrices;
- total: `content + k * style`, the handout's L(x) with squared errors (and, optionally, a small
  total-variation term that discourages pixel noise).

Images are `[3,H,W]` (or `[B,3,H,W]`) floats in [0,1]; `helpers.data.load_image` reads a shipped name, a path or a URL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers.session import capped_steps, progress_bar

from helpers.features import FeatureNetwork, last_needed

#: Gatys et al.'s layers: content from conv4_2, style from conv1_1 ... conv5_1 (we read the ReLU outputs).
PAPER_CONTENT_LAYER = "relu4_2"
PAPER_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations: `[B,C,H,W]` -> `[B,C,C]`, entry (i, j) = sum over positions of f_i f_j / (C*H*W)."""
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        raise ValueError(f"features must be a [B,C,H,W] tensor, got {getattr(features, 'shape', type(features))}")
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between feature maps of the same shape: a scalar tensor."""
    if not isinstance(features, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError("features and target must be torch tensors")
    if features.shape != target.shape:
        raise ValueError(f"target must have the shape of features {list(features.shape)}, got {list(target.shape)}")
    return F.mse_loss(features, target)


def style_loss(grams, target_grams, weights) -> torch.Tensor:
    """Sum over layers l of `weights[l] * mean((grams[l] - target_grams[l])**2)`: a scalar tensor.

    grams, target_grams: lists of `[B,C_l,C_l]` (targets may have batch 1 and broadcast); weights: floats.
    """
    grams, target_grams, weights = list(grams), list(target_grams), list(weights)
    if not (len(grams) == len(target_grams) == len(weights)) or not grams:
        raise ValueError(f"grams, target_grams and weights must be equally long and non-empty, got "
                         f"{len(grams)}, {len(target_grams)}, {len(weights)}")
    total = 0.0
    for g, a, w in zip(grams, target_grams, weights):
        total = total + w * (g - a).pow(2).mean()
    return total


def total_loss(content_features, content_target, grams, target_grams, weights, k: float) -> torch.Tensor:
    """The handout's L(x) with squared errors: `content_loss + k * style_loss`, a scalar tensor."""
    return content_loss(content_features, content_target) + k * style_loss(grams, target_grams, weights)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (down and right) of `[B,3,H,W]`: a scalar."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a [B,3,H,W] tensor, got {getattr(images, 'shape', type(images))}")
    down = (images[:, :, 1:, :] - images[:, :, :-1, :]).pow(2).mean()
    right = (images[:, :, :, 1:] - images[:, :, :, :-1]).pow(2).mean()
    return down + right


def style_transfer(
    net: FeatureNetwork,
    content: torch.Tensor | None,
    style: torch.Tensor | None,
    k=1e4,
    content_layer: str = PAPER_CONTENT_LAYER,
    style_layers=PAPER_STYLE_LAYERS,
    style_weights=None,
    steps: int = 200,
    optimiser: str = "adam",
    lr: float = 0.02,
    tv_weight: float = 0.0,
    init: str = "content",
    size: int | None = None,
    seed: int = 0,
    progress: bool = True,
    record_every: int = 10,
):
    """Optimise an image x so that its features match `content`'s and its Gram matrices match `style`'s.

    content, style: `[3,H,W]` images in [0,1] (either may be None: style alone is texture synthesis,
    content alone a reconstruction from one layer). k: the style weight, a float or a list of floats
    (one result per value, optimised side by side as a batch). style_weights: one per style layer,
    equal (1/L) by default. optimiser: "adam" (step size `lr`) or "lbfgs". init: "content" or "noise".
    Returns `(images [3,H,W] or [K,3,H,W] in [0,1], history)` with history a dict of lists:
    "step", "content", "style" (unweighted, per result, recorded every `record_every` steps).
    """
    if not isinstance(net, FeatureNetwork):
        raise TypeError(f"net must be a FeatureNetwork, got {type(net).__name__}")
    if content is None and style is None:
        raise ValueError("content and style cannot both be None")
    for name, img in (("content", content), ("style", style)):
        if img is not None and (not isinstance(img, torch.Tensor) or img.dim() != 3 or img.shape[0] != 3):
            raise ValueError(f"{name} must be a [3,H,W] image tensor or None, got {getattr(img, 'shape', type(img))}")
    if optimiser not in ("adam", "lbfgs"):
        raise ValueError(f"optimiser must be 'adam' or 'lbfgs', got {optimiser!r}")
    if init not in ("content", "noise") or (init == "content" and content is None):
        raise ValueError(f"init must be 'content' (with a content image) or 'noise', got {init!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    steps = capped_steps(steps)  # SEEING_NETWORKS_MAX_STEPS, for smoke tests (helpers.session)
    single = not isinstance(k, (list, tuple))
    ks = [float(k)] if single else [float(v) for v in k]
    style_layers = list(style_layers) if style is not None else []
    style_weights = list(style_weights) if style_weights is not None else [1 / max(len(style_layers), 1)] * len(style_layers)
    if len(style_weights) != len(style_layers):
        raise ValueError(f"style_weights must have one weight per style layer ({len(style_layers)}), got {len(style_weights)}")
    used = ([content_layer] if content is not None else []) + style_layers
    cut = net.truncated(last_needed(net, used))
    device = net.mean.device

    reference = content if content is not None else style
    if size is None:
        size = reference.shape[-1]
    prepare = lambda img: torch.nn.functional.interpolate(img[None].float().to(device), size=(size, size), mode="bilinear",
                                                          align_corners=False, antialias=True).clamp(0, 1)
    with torch.no_grad():
        content_target = cut.activations(net.normalise(prepare(content)), [content_layer])[content_layer] if content is not None else None
        style_grams = []
        if style is not None:
            feats = cut.activations(net.normalise(prepare(style)), style_layers)
            style_grams = [gram_matrix(feats[l]) for l in style_layers]

    g = torch.Generator().manual_seed(seed)
    if init == "content":
        start = prepare(content).repeat(len(ks), 1, 1, 1)
    else:
        start = (0.5 + 0.1 * torch.randn(len(ks), 3, size, size, generator=g)).clamp(0, 1).to(device)
    x = start.clone().contiguous().requires_grad_(True)
    k_vec = torch.tensor(ks, device=device)
    history = {"step": [], "content": [], "style": []}

    def losses():
        feats = cut.activations(net.normalise(x), used)
        per_content = torch.zeros(len(ks), device=device)
        per_style = torch.zeros(len(ks), device=device)
        if content is not None:
            per_content = (feats[content_layer] - content_target).pow(2).flatten(1).mean(1)
        for layer, w, target in zip(style_layers, style_weights, style_grams):
            per_style = per_style + w * (gram_matrix(feats[layer]) - target).pow(2).flatten(1).mean(1)
        return per_content, per_style

    def objective():
        per_content, per_style = losses()
        loss = (per_content + k_vec * per_style).sum()
        if tv_weight:
            loss = loss + tv_weight * total_variation(x) * len(ks)
        return loss, per_content, per_style

    def record(step, per_content, per_style):
        history["step"].append(step)
        history["content"].append(per_content.detach().cpu().tolist())
        history["style"].append(per_style.detach().cpu().tolist())

    if optimiser == "adam":
        opt = torch.optim.Adam([x], lr=lr)
    else:
        opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=50)
    bar = progress_bar(range(steps), desc="style transfer", disable=not progress, leave=False)
    for step in bar:
        def closure():
            opt.zero_grad()
            loss, per_content, per_style = objective()
            loss.backward()
            closure.parts = (per_content, per_style)
            return loss

        loss = opt.step(closure)
        with torch.no_grad():
            x.clamp_(0, 1)
        if step % record_every == 0:
            record(step, *closure.parts)
            bar.set_postfix(loss=f"{float(loss.detach()):.3g}")
    with torch.no_grad():
        record(steps, *losses())
    result = x.detach()
    return (result[0] if single else result), history


def loss_change(history, key: str, index: int = 0) -> tuple[float, float]:
    """`(first, last)` recorded value of "content" or "style" for result `index` of a `style_transfer` history."""
    if key not in ("content", "style"):
        raise ValueError(f"key must be 'content' or 'style', got {key!r}")
    return history[key][0][index], history[key][-1][index]


def with_padding(net: FeatureNetwork, mode: str) -> FeatureNetwork:
    """A copy of `net` whose convolutions pad with `mode` ("zeros", "replicate", "reflect" or "circular").

    VGG pads every 3x3 convolution with zeros; the copy changes only how the border is filled (weights
    are copied, the original is untouched).
    """
    import copy
    from dataclasses import replace

    if mode not in ("zeros", "replicate", "reflect", "circular"):
        raise ValueError(f"mode must be 'zeros', 'replicate', 'reflect' or 'circular', got {mode!r}")
    if not isinstance(net, FeatureNetwork):
        raise TypeError(f"net must be a FeatureNetwork, got {type(net).__name__}")
    model = copy.deepcopy(net.model)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.padding_mode = mode
    return replace(net, model=model)


def clamped_share(images: torch.Tensor, width: int = 4) -> tuple[float, float]:
    """`(border, inside)`: the share of pixels with a channel at 0 or 1, in the `width`-pixel frame and inside it.

    images: `[3,H,W]` or `[B,3,H,W]` in [0, 1] (a batch is pooled).
    """
    if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4):
        raise ValueError(f"images must be a [3,H,W] or [B,3,H,W] tensor, got {getattr(images, 'shape', type(images))}")
    images = images if images.dim() == 4 else images[None]
    h, w = images.shape[-2:]
    if not isinstance(width, int) or width < 1 or 2 * width >= min(h, w):
        raise ValueError(f"width must be a positive int smaller than half the image, got {width!r}")
    at_limit = ((images <= 1e-6) | (images >= 1 - 1e-6)).any(1)  # [B,H,W]
    frame = torch.ones(h, w, dtype=torch.bool, device=images.device)
    frame[width:-width, width:-width] = False
    return float(at_limit[:, frame].float().mean()), float(at_limit[:, ~frame].float().mean())
