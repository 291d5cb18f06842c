"""Plausible wrong answers to notebook 06's exercises."""

import torch


def step_without_normalising(forward, image, step_size):
    x = image.detach().clone().requires_grad_(True)
    a = forward(x)
    a.backward(gradient=a.detach())
    return (x + step_size * x.grad).detach()


def step_descending(forward, image, step_size):
    x = image.detach().clone().requires_grad_(True)
    a = forward(x)
    a.backward(gradient=a.detach())
    return (x - step_size * x.grad / (x.grad.abs().mean() + 1e-8)).detach()


def step_with_gradient_of_sum(forward, image, step_size):
    x = image.detach().clone().requires_grad_(True)
    forward(x).sum().backward()  # the gradient at the layer is 1, not a
    return (x + step_size * x.grad / (x.grad.abs().mean() + 1e-8)).detach()


def step_normalised_by_norm(forward, image, step_size):
    x = image.detach().clone().requires_grad_(True)
    a = forward(x)
    a.backward(gradient=a.detach())
    return (x + step_size * x.grad / (x.grad.norm() + 1e-8)).detach()


def step_not_detached(forward, image, step_size):
    x = image.detach().clone().requires_grad_(True)
    a = forward(x)
    a.backward(gradient=a.detach())
    return x + step_size * x.grad / (x.grad.abs().mean() + 1e-8)  # still attached to the graph


def octaves_largest_first(size, num_octaves, scale):
    h, w = size
    return [(round(h / scale**k), round(w / scale**k)) for k in range(num_octaves)]


def octaves_truncated(size, num_octaves, scale):
    h, w = size
    return [(int(h / scale**k), int(w / scale**k)) for k in range(num_octaves - 1, -1, -1)]


def octaves_off_by_one(size, num_octaves, scale):
    h, w = size
    return [(round(h / scale**k), round(w / scale**k)) for k in range(num_octaves, 0, -1)]


def octaves_one_short(size, num_octaves, scale):
    h, w = size
    return [(round(h / scale**k), round(w / scale**k)) for k in range(num_octaves - 2, -1, -1)]


def octaves_as_lists(size, num_octaves, scale):
    h, w = size
    return [[round(h / scale**k), round(w / scale**k)] for k in range(num_octaves - 1, -1, -1)]


def clamp_pixels(inputs, mean, std):
    return inputs.clamp(0, 1)


def clamp_one_range(inputs, mean, std):
    return inputs.clamp(float(((0 - mean) / std).min()), float(((1 - mean) / std).max()))


def clamp_multiplying(inputs, mean, std):
    low = ((0 - mean) * std).view(1, 3, 1, 1)
    high = ((1 - mean) * std).view(1, 3, 1, 1)
    return torch.max(torch.min(inputs, high), low)


WRONG = {
    "dream_step": [step_without_normalising, step_descending, step_with_gradient_of_sum, step_normalised_by_norm, step_not_detached],
    "octave_sizes": [octaves_largest_first, octaves_truncated, octaves_off_by_one, octaves_one_short, octaves_as_lists],
    "clamp_to_image_range": [clamp_pixels, clamp_one_range, clamp_multiplying],
}
