"""What a trained classifier looks at (notebook 08): saliency maps, Grad-CAM, class visualisation and
fooling images, after Simonyan et al. (2014), Selvaraju et al. (2017) and CS231n's assignment.

Most functions take `model`, any callable from images `[B,3,H,W]` to logits `[B,K]`. In the
notebook that is `pixels_to_logits(net)`, the classifier with its normalisation in front, so that
every gradient here is with respect to *pixels* in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from helpers.features import FeatureNetwork, check_image, check_layer, check_network
from helpers.session import capped_steps


def _check_batch(images, argument: str = "images") -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{argument} must be a [B,3,H,W] tensor, got {getattr(images, 'shape', type(images).__name__)}")


def _check_targets(targets, batch: int) -> torch.Tensor:
    if not isinstance(targets, torch.Tensor) or targets.shape != (batch,) or targets.is_floating_point():
        raise ValueError(f"targets must be an integer tensor of shape [{batch}] (one class per image), got {targets!r:.80}")
    return targets


def pixels_to_logits(net: FeatureNetwork):
    """The classifier `net` with its normalisation in front: images `[B,3,H,W]` in [0, 1] -> logits `[B,K]`."""
    check_network(net, classifier=True)
    return lambda images: net.model(net.normalise(images))


# --------------------------------------------------------------------------------------------
# Saliency and Grad-CAM
# --------------------------------------------------------------------------------------------


def saliency_map(model, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Simonyan et al.'s saliency: `[B,H,W]`, at each pixel the largest over the colour channels of
    |d score_target / d pixel|, where score is the target class's logit (before the softmax)."""
    _check_batch(images)
    _check_targets(targets, images.shape[0])
    x = images.detach().clone().requires_grad_(True)
    scores = model(x).gather(1, targets.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(scores, x)
    return grad.abs().amax(dim=1)


def grad_cam_combine(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM's map at the layer's resolution: `[B,h,w]` = ReLU(sum over channels k of w_k A_k), with
    w_k the mean over positions of d score / d A_k. activations, gradients: `[B,C,h,w]`."""
    if not isinstance(activations, torch.Tensor) or activations.dim() != 4:
        raise ValueError(f"activations must be a [B,C,h,w] tensor, got {getattr(activations, 'shape', type(activations).__name__)}")
    if not isinstance(gradients, torch.Tensor) or gradients.shape != activations.shape:
        raise ValueError(f"gradients must have the shape of activations {list(activations.shape)}, got {getattr(gradients, 'shape', gradients)}")
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * activations).sum(dim=1))


def grad_cam(net: FeatureNetwork, image: torch.Tensor, target: int, layer: str = "head") -> torch.Tensor:
    """Grad-CAM (Selvaraju et al.) for one image `[3,H,W]` in [0, 1] and class `target`: the map of
    `layer` (`grad_cam_combine`), bilinearly upsampled to `[H,W]` and divided by its maximum (so in
    [0, 1]; all zeros if nothing in the layer speaks for the class)."""
    check_network(net)
    check_image(image)
    check_layer(net, layer)
    x = net.normalise(image[None])
    for name, module in net.model.named_children():
        x = module(x)
        if name == layer:  # a leaf here: the gradient of the score stops at this layer's activation
            activation = x = x.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(x[0, int(target)], activation)
    cam = grad_cam_combine(activation.detach(), gradient)[:, None]
    cam = F.interpolate(cam, size=image.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return cam / cam.max() if cam.max() > 0 else cam


def mass_inside(heat: torch.Tensor, mask: torch.Tensor) -> float:
    """The share (0 to 1) of a non-negative map `heat` `[H,W]` that falls where `mask` `[H,W]` is True."""
    if not isinstance(heat, torch.Tensor) or heat.dim() != 2 or not isinstance(mask, torch.Tensor) or mask.shape != heat.shape:
        raise ValueError(f"heat and mask must be [H,W] tensors of one shape, got {getattr(heat, 'shape', heat)} and {getattr(mask, 'shape', mask)}")
    if float(heat.min()) < 0:
        raise ValueError("heat must be non-negative")
    return float(heat[mask.bool()].sum() / heat.sum().clamp_min(1e-12))


# --------------------------------------------------------------------------------------------
# Class visualisation and fooling images
# --------------------------------------------------------------------------------------------


def class_visualisation_step(model, images: torch.Tensor, target: int, step_size: float, l2: float) -> torch.Tensor:
    """One regularised ascent step: `images` `[B,3,H,W]` + step_size * g / mean|g|, where g is the gradient of
    score_target - l2 * ||images||² (per image, summed over the batch). Returns the new images, detached."""
    _check_batch(images)
    x = images.detach().clone().requires_grad_(True)
    objective = model(x)[:, int(target)].sum() - l2 * x.pow(2).sum()
    (g,) = torch.autograd.grad(objective, x)
    return (x + step_size * g / (g.abs().mean() + 1e-8)).detach()


def class_visualisation(net: FeatureNetwork, target: int, size: int = 160, steps: int = 100, step_size: float = 0.05,
                        l2: float = 1e-3, blur_every: int = 10, blur_sigma: float = 0.5, jitter: int = 8, seed: int = 0):
    """An image the classifier calls `target`, grown from faint noise by `class_visualisation_step`s on the
    pixels around mid-grey, with CS231n's regularisers: L2 (`l2`), a random roll of up to `jitter` pixels
    before each step (undone after), a Gaussian blur (`blur_sigma`) every `blur_every` steps, and clamping
    to [0, 1]. Returns `(image [3,size,size] in [0, 1], scores)`, scores the target logit after each step."""
    check_network(net, classifier=True)
    if not 0 <= int(target) < len(net.categories):
        raise ValueError(f"target must be a class index from 0 to {len(net.categories) - 1}, got {target!r}")
    steps = capped_steps(steps)  # SEEING_NETWORKS_MAX_STEPS, for smoke tests (helpers.session)
    model, device = pixels_to_logits(net), net.mean.device
    generator = torch.Generator().manual_seed(seed)
    x = (0.5 + 0.02 * torch.randn(1, 3, size, size, generator=generator)).to(device)
    centred = lambda images: model(images + 0.5)  # L2 pulls towards grey, not towards black
    x = x - 0.5
    scores = []
    for step in range(steps):
        dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
        x = torch.roll(x, (dy, dx), (2, 3))
        x = class_visualisation_step(centred, x, target, step_size, l2)
        x = torch.roll(x, (-dy, -dx), (2, 3)).clamp(-0.5, 0.5)
        if blur_every and (step + 1) % blur_every == 0 and blur_sigma > 0:
            x = TF.gaussian_blur(x, kernel_size=2 * round(3 * blur_sigma) + 1, sigma=blur_sigma)
        with torch.no_grad():
            scores.append(float(centred(x)[0, int(target)]))
    return (x[0] + 0.5).clamp(0, 1), scores


def fooling_step(model, images: torch.Tensor, target: int, alpha: float) -> torch.Tensor:
    """One targeted step of the iterative sign-gradient attack: `images` `[B,3,H,W]` in [0, 1] moved by
    `alpha` per pixel and channel along sign(d log p_target / d pixel), clamped to [0, 1], detached."""
    _check_batch(images)
    x = images.detach().clone().requires_grad_(True)
    log_p = F.log_softmax(model(x), dim=1)[:, int(target)].sum()
    (g,) = torch.autograd.grad(log_p, x)
    return (x + alpha * g.sign()).clamp(0, 1).detach()


def fool(net: FeatureNetwork, image: torch.Tensor, target: int, alpha: float = 1 / 255, max_steps: int = 50):
    """Change `image` `[3,H,W]` in [0, 1] by `fooling_step`s until the classifier's top class is `target`.

    Returns `(fooled [3,H,W], steps taken, fooled?)`; every pixel moved by at most steps * alpha.
    """
    check_image(image)
    model = pixels_to_logits(net)
    x = image[None].detach()
    for step in range(1, max_steps + 1):
        x = fooling_step(model, x, target, alpha)
        with torch.no_grad():
            if int(model(x).argmax(1)) == int(target):
                return x[0], step, True
    return x[0], max_steps, False
