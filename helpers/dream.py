"""DeepDream: make an image excite one layer of a network more and more.

The handout's four steps, in code (`dream_step`):

1. pick a layer; 2. forward the image to it, giving the activation `a`;
3. set the gradient arriving at that layer to `a` itself, i.e. do gradient *ascent* on ½‖a‖²;
4. backpropagate to the image and move it a small step along the gradient, normalised so that one
   step size suits every layer and image.

What makes it work in practice (`deepdream`): octaves (dream at a few scales, about 1.4x apart, and
carry the detail added at one scale up to the next), a random roll (jitter) before each step so no
pixel grid gets favoured, and clamping to the valid image range in the network's normalisation.

All images here are float tensors; `[3,H,W]` in [0,1] at the edges of the API, `[1,3,H,W]` in the
network's normalisation inside.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from helpers.features import FeatureNetwork, check_image, check_layer, check_network
from helpers.session import capped_steps, progress_bar


def dream_objective(activation: torch.Tensor) -> torch.Tensor:
    """½‖a‖², the quantity DeepDream ascends: `activation` of any shape -> a scalar tensor."""
    if not isinstance(activation, torch.Tensor):
        raise TypeError(f"activation must be a torch.Tensor, got {type(activation).__name__}")
    return 0.5 * activation.pow(2).sum()


def dream_step(forward, image: torch.Tensor, step_size: float) -> torch.Tensor:
    """One DeepDream step (steps 2-4 of the handout) on a normalised image.

    forward: a function from images `[B,3,H,W]` to the chosen layer's activation (step 1 chose it);
    image: `[B,3,H,W]`; step_size: how far to move, in units of the mean absolute gradient.
    Returns the new image `[B,3,H,W]`, detached: `image + step_size * g / mean(|g|)` where
    `g = d(½‖a‖²)/d(image)`.
    """
    if not callable(forward):
        raise TypeError(f"forward must be callable, got {type(forward).__name__}")
    if not isinstance(image, torch.Tensor) or image.dim() != 4:
        raise ValueError(f"image must be a [B,3,H,W] tensor, got {getattr(image, 'shape', type(image))}")
    image = image.detach().clone().requires_grad_(True)
    activation = forward(image)
    activation.backward(gradient=activation.detach())  # step 3: the gradient at the layer is a itself
    grad = image.grad
    return (image + step_size * grad / (grad.abs().mean() + 1e-8)).detach()


def octave_sizes(size, num_octaves: int, scale: float) -> list[tuple[int, int]]:
    """The image sizes DeepDream visits, smallest first, ending at `size`.

    size: `(H, W)`; octave k from the top has side `round(side / scale**k)`.
    >>> octave_sizes((128, 128), 3, 1.4)
    [(65, 65), (91, 91), (128, 128)]
    """
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise ValueError(f"size must be a pair of positive ints (H, W), got {size!r}")
    if not isinstance(num_octaves, int) or num_octaves < 1:
        raise ValueError(f"num_octaves must be a positive int, got {num_octaves!r}")
    if not scale > 1:
        raise ValueError(f"scale must be greater than 1, got {scale!r}")
    h, w = size
    return [(round(h / scale**k), round(w / scale**k)) for k in range(num_octaves - 1, -1, -1)]


def clamp_to_image_range(inputs: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Clamp normalised `inputs` `[B,3,H,W]` so that they map back to pixels in [0, 1].

    mean, std: `[3]`, the normalisation `(pixel - mean) / std`. Channel c is clamped to
    `[(0 - mean[c]) / std[c], (1 - mean[c]) / std[c]]`.
    """
    low = ((0 - mean) / std).view(1, 3, 1, 1)
    high = ((1 - mean) / std).view(1, 3, 1, 1)
    return torch.max(torch.min(inputs, high), low)


def layer_objective(net: FeatureNetwork, image: torch.Tensor, layer: str) -> float:
    """½‖a‖² of `layer` for one image `[3,H,W]` in [0, 1] (a Python float)."""
    check_image(image)
    with torch.no_grad():
        x = net.normalise(image.to(net.mean.device))[None]
        return float(dream_objective(net.activations(x, [layer])[layer]))


def deepdream(
    net: FeatureNetwork,
    image: torch.Tensor,
    layer: str,
    num_octaves: int = 4,
    octave_scale: float = 1.4,
    steps: int = 10,
    step_size: float = 0.03,
    jitter: int = 8,
    seed: int = 0,
    progress: bool = True,
):
    """Dream `image` (`[3,H,W]` in [0, 1]) at `layer` of `net`.

    At each of `num_octaves` scales (`octave_sizes`, smallest first) it takes `steps` `dream_step`s,
    each after a random roll of up to `jitter` pixels (undone afterwards) and followed by clamping to
    the valid range; the detail added at one scale is upsampled and added to the next scale's
    version of the original image.
    Returns `(dreamed [3,H,W] in [0, 1], objectives)`, `objectives` a list of ½‖a‖² per step.
    """
    check_network(net)
    check_image(image)
    check_layer(net, layer)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    steps = capped_steps(steps)  # SEEING_NETWORKS_MAX_STEPS, for smoke tests (helpers.session)
    cut = net.truncated(layer)
    device = net.mean.device
    generator = torch.Generator().manual_seed(seed)
    original = net.normalise(image.to(device).float())[None]
    sizes = octave_sizes(tuple(original.shape[-2:]), num_octaves, octave_scale)
    detail = torch.zeros(1, 3, *sizes[0], device=device)
    objectives = []

    def forward(x):
        return cut.model(x)

    bar = progress_bar(total=len(sizes) * steps, desc=f"dreaming at {layer}", disable=not progress, leave=False)
    for size in sizes:
        base = F.interpolate(original, size=size, mode="bilinear", align_corners=False)
        detail = F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
        x = base + detail
        for _ in range(steps):
            dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            x = dream_step(forward, x, step_size)
            x = torch.roll(x, shifts=(-dy, -dx), dims=(2, 3))
            x = clamp_to_image_range(x, net.mean, net.std)
            with torch.no_grad():
                objectives.append(float(dream_objective(forward(x))))
            bar.update(1)
        detail = x - base
    bar.close()
    return net.denormalise(x[0]).clamp(0, 1).detach(), objectives


def dream_grid(net: FeatureNetwork, image: torch.Tensor, layers, step_sizes, octave_counts, progress: bool = True, **kwargs) -> dict:
    """Precompute dreams for every `(layer, step_size, num_octaves)`; returns `{(layer, step, octaves): image}`."""
    grid = {}
    combos = [(l, s, o) for l in layers for s in step_sizes for o in octave_counts]
    for layer, step, octaves in progress_bar(combos, desc="dream grid", disable=not progress):
        grid[(layer, step, octaves)], _ = deepdream(net, image, layer, num_octaves=octaves, step_size=step, progress=False, **kwargs)
    return grid


# --------------------------------------------------------------------------------------------
# Which layers to dream at, and measuring what a dream changed
# --------------------------------------------------------------------------------------------

#: A shallow, a middle and a deep layer to dream at, per network.
LITE0_DREAM_LAYERS = ("block3", "block8", "block11")
GOOGLENET_DREAM_LAYERS = ("inception3b", "inception4c", "inception4e")
VGG19_DREAM_LAYERS = ("relu2_2", "relu3_4", "relu4_4")
DREAM_LAYERS = (LITE0_DREAM_LAYERS, GOOGLENET_DREAM_LAYERS, VGG19_DREAM_LAYERS)


def dream_layers(net: FeatureNetwork) -> tuple[str, str, str]:
    """`(shallow, middle, deep)` layer names that dream well in `net` (Lite0, GoogLeNet or VGG-19; else spread evenly)."""
    check_network(net)
    for layers in DREAM_LAYERS:
        if all(layer in net.layer_names for layer in layers):
            return layers
    names = net.layer_names
    return names[len(names) // 4], names[len(names) // 2], names[-1]


def _grey_power(change: torch.Tensor):
    """`change` `[3,H,W]` -> (power spectrum `[H,W]` of its grey mean, minus the mean; radial frequency `[H,W]` in cycles/pixel)."""
    check_image(change, "change")
    grey = change.float().mean(0)
    power = torch.fft.fft2(grey - grey.mean()).abs().pow(2)
    fy, fx = torch.fft.fftfreq(grey.shape[0]), torch.fft.fftfreq(grey.shape[1])
    return power, torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).to(power.device)


def spectral_centroid(change: torch.Tensor) -> float:
    """The power-weighted mean spatial frequency (cycles per pixel, 0 to 0.71) of an image change `[3,H,W]`:
    low for broad structures, high for fine grain."""
    power, radius = _grey_power(change)
    return float((power * radius).sum() / power.sum().clamp_min(1e-12))


def coarse_share(change: torch.Tensor, period: float = 8.0) -> float:
    """The share (0 to 1) of an image change's power `[3,H,W]` in structures larger than `period` pixels
    (spatial frequencies below 1/period)."""
    power, radius = _grey_power(change)
    return float(power[radius < 1 / period].sum() / power.sum().clamp_min(1e-12))
