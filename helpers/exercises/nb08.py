"""Exercises of notebook 08 (what a trained classifier looks at): a saliency map, Grad-CAM's combination,
one fooling step, one regularised class-visualisation step, and the capstone, Grad-CAM whole."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from helpers import visualise
from helpers.exercises import core
from helpers.exercises.compare import compare_detached, randomly_weighted
from helpers.exercises.core import Case, FunctionExercise
from helpers.features import FeatureNetwork

NOTEBOOK = "08_what_a_network_looks_at"


def _tiny_classifier(seed: int, classes: int = 6) -> nn.Sequential:
    """A small fixed random classifier with named layers: images [B,3,H,W] -> logits [B,classes]."""
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 4, 3, padding=1)), ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(4, 5, 3, stride=2, padding=1)), ("relu2", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("logits", nn.Linear(5, classes))]))
    return randomly_weighted(model, seed, 0.6).eval().requires_grad_(False)


def _tiny_net(seed: int) -> FeatureNetwork:
    names = tuple(f"class {i}" for i in range(6))
    return FeatureNetwork("tiny", _tiny_classifier(seed), torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.25, 0.2, 0.3]),
                          False, "a tiny test classifier", names)


def _pixels(shape, seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _draw(g: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high, (), generator=g))


# --------------------------------------------------------------------------------------------
# 1. Saliency
# --------------------------------------------------------------------------------------------


def _saliency_cases():
    return [
        Case("two 8x8 images, classes 1 and 4", (_tiny_classifier(1), _pixels((2, 3, 8, 8), 2), torch.tensor([1, 4]))),
        Case("one 10x12 image, class 0", (_tiny_classifier(3), _pixels((1, 3, 10, 12), 4), torch.tensor([0]))),
    ]


def _hidden_saliency_cases(g: torch.Generator) -> list[Case]:
    b, h, w = _draw(g, 1, 4), _draw(g, 6, 14), _draw(g, 6, 14)
    targets = torch.randint(0, 6, (b,), generator=g)
    return [Case(f"{b} image(s) of {h}x{w}", (_tiny_classifier(_draw(g, 10, 10**6)), _pixels((b, 3, h, w), _draw(g, 0, 10**6)), targets))]


saliency_map = FunctionExercise(
    notebook=NOTEBOOK,
    name="saliency_map",
    library=("helpers.visualise.saliency_map",),
    reference=visualise.saliency_map,
    cases=_saliency_cases,
    hidden_cases=_hidden_saliency_cases,
    hint=(
        "Copy the images into a tensor that records gradients (`images.detach().clone().requires_grad_(True)`), "
        "run the model, pick each image's own target logit with `logits.gather(1, targets.view(-1, 1))` (the "
        "score before the softmax), sum those so one backward pass serves the whole batch, and take "
        "`torch.autograd.grad(score, x)`. The map is the absolute gradient, maximised over the colour channels "
        "(`.abs().amax(dim=1)`): shape [B, H, W]."
    ),
    solution='''
def saliency_map(model, images, targets):
    x = images.detach().clone().requires_grad_(True)
    scores = model(x).gather(1, targets.view(-1, 1)).sum()   # each image's own class score
    (grad,) = torch.autograd.grad(scores, x)
    return grad.abs().amax(dim=1)                            # [B, H, W]
''',
)


# --------------------------------------------------------------------------------------------
# 2. Grad-CAM's combination of activations and gradients
# --------------------------------------------------------------------------------------------


def _cam_cases():
    g = torch.Generator().manual_seed(5)
    return [
        Case("one map of 4 channels, 3x3", (torch.rand(1, 4, 3, 3, generator=g), torch.randn(1, 4, 3, 3, generator=g))),
        Case("two maps of 6 channels, 5x7", (torch.rand(2, 6, 5, 7, generator=g), torch.randn(2, 6, 5, 7, generator=g))),
    ]


def _hidden_cam_cases(g: torch.Generator) -> list[Case]:
    b, c, h, w = _draw(g, 1, 3), _draw(g, 2, 9), _draw(g, 2, 8), _draw(g, 2, 8)
    return [Case(f"{b} map(s) of {c} channels, {h}x{w}", (torch.rand(b, c, h, w, generator=g), torch.randn(b, c, h, w, generator=g)))]


grad_cam_combine = FunctionExercise(
    notebook=NOTEBOOK,
    name="grad_cam_combine",
    library=("helpers.visualise.grad_cam_combine", "helpers.visualise.grad_cam"),
    reference=visualise.grad_cam_combine,
    cases=_cam_cases,
    hidden_cases=_hidden_cam_cases,
    hint=(
        "Each channel's weight is its gradient averaged over the positions: `gradients.mean(dim=(2, 3), "
        "keepdim=True)`, shape [B, C, 1, 1]. Multiply the activations by those weights, sum over the channel "
        "dimension (dim 1) and keep only the positive part (`F.relu`): shape [B, h, w]."
    ),
    solution='''
def grad_cam_combine(activations, gradients):
    weights = gradients.mean(dim=(2, 3), keepdim=True)        # one weight per channel: [B, C, 1, 1]
    return F.relu((weights * activations).sum(dim=1))         # [B, h, w]
''',
)


# --------------------------------------------------------------------------------------------
# 3. One fooling step
# --------------------------------------------------------------------------------------------


def _fool_cases():
    return [
        Case("two 8x8 images towards class 2, alpha 0.01", (_tiny_classifier(7), _pixels((2, 3, 8, 8), 8), 2, 0.01)),
        Case("one 9x9 image towards class 5, alpha 0.05", (_tiny_classifier(9), _pixels((1, 3, 9, 9), 10), 5, 0.05)),
    ]


def _hidden_fool_cases(g: torch.Generator) -> list[Case]:
    h = _draw(g, 6, 12)
    alpha = round(0.005 + 0.05 * float(torch.rand((), generator=g)), 4)
    return [Case(f"one {h}x{h} image, alpha {alpha}", (_tiny_classifier(_draw(g, 10, 10**6)), _pixels((1, 3, h, h), _draw(g, 0, 10**6)), _draw(g, 0, 6), alpha))]


fooling_step = FunctionExercise(
    notebook=NOTEBOOK,
    name="fooling_step",
    library=("helpers.visualise.fooling_step", "helpers.visualise.fool"),
    reference=visualise.fooling_step,
    cases=_fool_cases,
    compare=compare_detached,
    hidden_cases=_hidden_fool_cases,
    hint=(
        "Make a copy of the images that records gradients, compute `F.log_softmax(model(x), dim=1)[:, target]` "
        "(the log-probability of the class you want), sum it, and take its gradient with respect to x. Move every "
        "pixel and channel by `alpha` in the direction of the gradient's *sign* (`g.sign()`), so that no pixel "
        "moves more than alpha; clamp to [0, 1] and return it detached."
    ),
    solution='''
def fooling_step(model, images, target, alpha):
    x = images.detach().clone().requires_grad_(True)
    log_p = F.log_softmax(model(x), dim=1)[:, target].sum()
    (g,) = torch.autograd.grad(log_p, x)
    return (x + alpha * g.sign()).clamp(0, 1).detach()
''',
)


# --------------------------------------------------------------------------------------------
# 4. One regularised class-visualisation step
# --------------------------------------------------------------------------------------------


def _visualisation_cases():
    return [
        Case("one 8x8 image, class 3, step 0.1, l2 0.01", (_tiny_classifier(11), _pixels((1, 3, 8, 8), 12) - 0.5, 3, 0.1, 0.01)),
        Case("two 10x10 images, class 0, step 0.05, l2 0.5", (_tiny_classifier(13), _pixels((2, 3, 10, 10), 14) - 0.5, 0, 0.05, 0.5)),
    ]


def _hidden_visualisation_cases(g: torch.Generator) -> list[Case]:
    h = _draw(g, 6, 12)
    l2 = round(0.01 + float(torch.rand((), generator=g)), 3)
    return [Case(f"one {h}x{h} image, l2 {l2}", (_tiny_classifier(_draw(g, 10, 10**6)), _pixels((1, 3, h, h), _draw(g, 0, 10**6)) - 0.5, _draw(g, 0, 6), 0.1, l2))]


class_visualisation_step = FunctionExercise(
    notebook=NOTEBOOK,
    name="class_visualisation_step",
    library=("helpers.visualise.class_visualisation_step", "helpers.visualise.class_visualisation"),
    reference=visualise.class_visualisation_step,
    cases=_visualisation_cases,
    compare=compare_detached,
    hidden_cases=_hidden_visualisation_cases,
    hint=(
        "The objective is the target class's logit (summed over the batch) minus `l2 * (x ** 2).sum()`: a high "
        "score, but not by making pixels extreme. Take its gradient g with respect to a copy of the images that "
        "records gradients, and *climb*: `x + step_size * g / (g.abs().mean() + 1e-8)`, detached, like the "
        "DeepDream step of notebook 06."
    ),
    solution='''
def class_visualisation_step(model, images, target, step_size, l2):
    x = images.detach().clone().requires_grad_(True)
    objective = model(x)[:, target].sum() - l2 * x.pow(2).sum()
    (g,) = torch.autograd.grad(objective, x)
    return (x + step_size * g / (g.abs().mean() + 1e-8)).detach()
''',
)


# --------------------------------------------------------------------------------------------
# 5. Capstone: Grad-CAM, whole
# --------------------------------------------------------------------------------------------


def _grad_cam_cases():
    return [
        Case("a 12x12 image, class 1, at relu2 (6x6)", (_tiny_net(21), _pixels((3, 12, 12), 22), 1, "relu2")),
        Case("a 10x14 image, class 4, at relu1 (full size)", (_tiny_net(23), _pixels((3, 10, 14), 24), 4, "relu1")),
    ]


def _hidden_grad_cam_cases(g: torch.Generator) -> list[Case]:
    h, w = _draw(g, 8, 16), _draw(g, 8, 16)
    layer = ("relu1", "relu2", "conv2")[_draw(g, 0, 3)]
    return [Case(f"a {h}x{w} image at {layer}", (_tiny_net(_draw(g, 10, 10**6)), _pixels((3, h, w), _draw(g, 0, 10**6)), _draw(g, 0, 6), layer))]


def _compare_cam(expected, got) -> str | None:
    if isinstance(got, torch.Tensor) and got.dim() == 2 and got.shape != expected.shape:
        return f"expected a map of the image's size {list(expected.shape)}, got {list(got.shape)}: upsample it with F.interpolate"
    if isinstance(got, torch.Tensor) and got.shape == expected.shape and float(expected.max()) > 0 and abs(float(got.max()) - 1) > 1e-3:
        return f"the map's maximum should be 1 (divide by it), got {float(got.max()):.4g}"
    return compare_detached(expected, got)


grad_cam = FunctionExercise(
    notebook=NOTEBOOK,
    name="grad_cam",
    library=("helpers.visualise.grad_cam", "helpers.visualise.grad_cam_combine", "helpers.features.LayerHooks"),
    reference=visualise.grad_cam,
    cases=_grad_cam_cases,
    compare=_compare_cam,
    hidden_cases=_hidden_grad_cam_cases,
    points=3,
    hint=(
        "Run the network layer by layer: `x = net.normalise(image[None])`, then `for name, module in "
        "net.model.named_children(): x = module(x)`. When `name == layer`, keep the activation as a leaf that "
        "records gradients (`activation = x = x.detach().requires_grad_(True)`) and carry on to the logits. "
        "Take the gradient of `x[0, target]` with respect to that activation, combine the two with your "
        "`grad_cam_combine` (written out again here: the checks run this function on its own), upsample the [1, 1, h, w] "
        "map to the image's size with `F.interpolate(..., mode='bilinear', align_corners=False)`, and divide by "
        "its maximum when that is above 0."
    ),
    solution='''
def grad_cam(net, image, target, layer):
    x = net.normalise(image[None])
    for name, module in net.model.named_children():
        x = module(x)
        if name == layer:                                  # stop the gradient here, and keep the activation
            activation = x = x.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(x[0, target], activation)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation.detach()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=image.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return cam / cam.max() if cam.max() > 0 else cam
''',
)


def grad_cam_to_use(answer):
    """The student's `grad_cam` if it passes its check, else the course's `visualise.grad_cam`; prints which
    (`core.yours_or_course`)."""
    return core.yours_or_course(grad_cam, answer, visualise.grad_cam)
