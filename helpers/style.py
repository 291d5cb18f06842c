"""Neural style transfer (Gatys et al. 2016): content loss, Gram matrices, style loss, the optimisation.

Conventions used throughout (the notebook states them too):

- `gram_matrix(f)` for features `[B,C,H,W]` is `f f^T / (C*H*W)` over the flattened positions: `[B,C,C]`.
- content loss: the mean squared difference between two feature maps;
- style loss: a weighted sum over layers of the mean squared difference between Gram matrices;
- total: `content + k * style`, the handout's L(x) with squared errors (and, optionally, a small
  total-variation term that discourages pixel noise), minimised over the pixels with Adam.

The network is the original VGG-19 (`helpers.features.load_vgg19`), whose activations are in the
units of its 0..255 training images: the losses are large numbers, and a useful k is near the ratio
of the content loss to the style loss of the two pictures (1 to 1000 for the course's pictures).

Images are `[3,H,W]` (or `[B,3,H,W]`) floats in [0,1]; `helpers.data.load_image` reads a shipped name, a path or a URL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers.session import capped_steps, progress_bar

from helpers.features import FeatureNetwork, check_network, last_needed

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


def _as_image(image, name: str, size: int, device) -> torch.Tensor | None:
    """A `[3,H,W]` image in [0,1] (or None) -> `[1,3,size,size]` on `device` (resized only when not that size)."""
    if image is None:
        return None
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"{name} must be a [3,H,W] image tensor or None, got {getattr(image, 'shape', type(image))}")
    image = image[None].float().to(device)
    if tuple(image.shape[-2:]) != (size, size):
        image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    return image


def style_transfer(
    net: FeatureNetwork,
    content: torch.Tensor | None,
    style: torch.Tensor | None,
    k=10.0,
    content_layer: str = PAPER_CONTENT_LAYER,
    style_layers=PAPER_STYLE_LAYERS,
    style_weights=None,
    steps: int = 40,
    lr: float = 0.05,
    tv_weight: float = 0.0,
    init: str = "content",
    size: int | None = None,
    seed: int = 0,
    progress: bool = True,
    record_every: int = 10,
):
    """Optimise an image x with Adam so that its features match `content`'s and its Gram matrices `style`'s.

    content, style: `[3,H,W]` images in [0,1] (either may be None: style alone is texture synthesis,
    content alone a reconstruction from one layer). k: the style weight, a float or a list of floats:
    one result per value, optimised side by side as a batch. The loss is a sum of per-image terms and
    Adam updates each pixel on its own, so the images do not interact: K independent optimisations.
    style_weights: one per style layer, equal (1/L) by default. lr: Adam's step on pixels in [0, 1]
    (clamped there after each step). init: "content" or "noise" (seeded by `seed`). size: the side
    the images are resized to (default: the reference image's width). tv_weight: a total-variation
    penalty against pixel grain (0: none).
    Returns `(images [3,size,size] or [K,3,size,size] in [0,1], history)`, history a dict of lists:
    "step", "content", "style" (unweighted, one value per result, every `record_every` steps and at the end).
    """
    check_network(net)
    if content is None and style is None:
        raise ValueError("content and style cannot both be None")
    if init not in ("content", "noise") or (init == "content" and content is None):
        raise ValueError(f"init must be 'content' (with a content image) or 'noise', got {init!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    steps = capped_steps(steps)  # SEEING_NETWORKS_MAX_STEPS, for smoke tests (helpers.session)
    single = not isinstance(k, (list, tuple))
    ks = torch.tensor([float(k)] if single else [float(v) for v in k])
    style_layers = list(style_layers) if style is not None else []
    style_weights = list(style_weights) if style_weights is not None else [1 / max(len(style_layers), 1)] * len(style_layers)
    if len(style_weights) != len(style_layers):
        raise ValueError(f"style_weights must have one weight per style layer ({len(style_layers)}), got {len(style_weights)}")
    device = net.mean.device
    reference = content if content is not None else style
    size = size if size is not None else getattr(reference, "shape", [0])[-1]
    content, style = _as_image(content, "content", size, device), _as_image(style, "style", size, device)
    used = ([content_layer] if content is not None else []) + style_layers
    cut = net.truncated(last_needed(net, used))

    with torch.no_grad():  # the targets: fixed during the optimisation
        content_target = cut.activations(net.normalise(content), [content_layer])[content_layer] if content is not None else None
        style_feats = cut.activations(net.normalise(style), style_layers) if style is not None else {}
        target_grams = [gram_matrix(style_feats[layer]) for layer in style_layers]
    if init == "content":
        x = content.repeat(len(ks), 1, 1, 1)
    else:
        noise = torch.randn(len(ks), 3, size, size, generator=torch.Generator().manual_seed(seed))
        x = (0.5 + 0.1 * noise).clamp(0, 1).to(device)
    x = x.clone().contiguous().requires_grad_(True)
    ks = ks.to(device)
    optimiser = torch.optim.Adam([x], lr=lr)
    history = {"step": [], "content": [], "style": []}

    def per_image_losses():
        feats = cut.activations(net.normalise(x), used)
        content_part = torch.zeros(len(ks), device=device)
        if content is not None:
            content_part = (feats[content_layer] - content_target).pow(2).flatten(1).mean(1)
        style_part = sum(w * (gram_matrix(feats[layer]) - g).pow(2).flatten(1).mean(1)
                         for layer, w, g in zip(style_layers, style_weights, target_grams))
        return content_part, style_part if style is not None else torch.zeros(len(ks), device=device)

    def record(step, content_part, style_part):
        history["step"].append(step)
        history["content"].append(content_part.detach().cpu().tolist())
        history["style"].append(style_part.detach().cpu().tolist())

    for step in progress_bar(range(steps), desc="style transfer", disable=not progress, leave=False):
        content_part, style_part = per_image_losses()
        loss = (content_part + ks * style_part).sum()
        if tv_weight:
            loss = loss + tv_weight * total_variation(x) * len(ks)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            x.clamp_(0, 1)
        if step % record_every == 0:
            record(step, content_part, style_part)
    with torch.no_grad():
        record(steps, *per_image_losses())
    result = x.detach()
    return (result[0] if single else result), history


def loss_change(history, key: str, index: int = 0) -> tuple[float, float]:
    """`(first, last)` recorded value of "content" or "style" for result `index` of a `style_transfer` history."""
    if key not in ("content", "style"):
        raise ValueError(f"key must be 'content' or 'style', got {key!r}")
    return history[key][0][index], history[key][-1][index]


def edge_map(images: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the grey levels: `[3,H,W]` or `[B,3,H,W]` in [0,1] -> `[H,W]` or `[B,H,W]`."""
    if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"images must be a [3,H,W] or [B,3,H,W] tensor, got {getattr(images, 'shape', type(images))}")
    batch = images if images.dim() == 4 else images[None]
    grey = batch.float().mean(1, keepdim=True)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=grey.device)
    kernels = torch.stack([sobel, sobel.T])[:, None]  # [2,1,3,3]: d/dx and d/dy
    gradients = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
    magnitude = gradients.pow(2).sum(1).sqrt()
    return magnitude if images.dim() == 4 else magnitude[0]


def edge_correlation(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Pearson correlation of the edge maps (`edge_map`) of two `[3,H,W]` images of one size: 1 when
    the edges are where the reference's are (up to contrast), about 0 when they are unrelated."""
    if image.shape != reference.shape:
        raise ValueError(f"reference must have the shape of image {list(image.shape)}, got {list(reference.shape)}")
    a, b = edge_map(image).flatten(), edge_map(reference).flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm() + 1e-12))
