"""Plausible wrong answers to notebook 08's exercises."""

import torch
import torch.nn.functional as F


def saliency_without_abs(model, images, targets):
    x = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, targets.view(-1, 1)).sum(), x)
    return grad.amax(dim=1)


def saliency_summed_over_channels(model, images, targets):
    x = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, targets.view(-1, 1)).sum(), x)
    return grad.abs().sum(dim=1)


def saliency_of_probability(model, images, targets):
    x = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).softmax(1).gather(1, targets.view(-1, 1)).sum(), x)
    return grad.abs().amax(dim=1)


def saliency_of_all_scores(model, images, targets):
    x = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).sum(), x)
    return grad.abs().amax(dim=1)


def cam_without_relu(activations, gradients):
    return (gradients.mean(dim=(2, 3), keepdim=True) * activations).sum(dim=1)


def cam_without_averaging(activations, gradients):
    return F.relu((gradients * activations).sum(dim=1))


def cam_weights_from_activations(activations, gradients):
    return F.relu((activations.mean(dim=(2, 3), keepdim=True) * gradients).sum(dim=1))


def cam_averaged_over_channels(activations, gradients):
    return F.relu((gradients.mean(dim=(2, 3), keepdim=True) * activations).mean(dim=1))


def fool_descending(model, images, target, alpha):
    x = images.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.log_softmax(model(x), dim=1)[:, target].sum(), x)
    return (x - alpha * g.sign()).clamp(0, 1).detach()


def fool_raw_gradient(model, images, target, alpha):
    x = images.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.log_softmax(model(x), dim=1)[:, target].sum(), x)
    return (x + alpha * g).clamp(0, 1).detach()


def fool_unclamped(model, images, target, alpha):
    x = images.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.log_softmax(model(x), dim=1)[:, target].sum(), x)
    return (x + alpha * g.sign()).detach()


def fool_not_detached(model, images, target, alpha):
    x = images.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.log_softmax(model(x), dim=1)[:, target].sum(), x)
    return (x + alpha * g.sign()).clamp(0, 1)


def visualise_adding_l2(model, images, target, step_size, l2):
    x = images.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[:, target].sum() + l2 * x.pow(2).sum(), x)
    return (x + step_size * g / (g.abs().mean() + 1e-8)).detach()


def visualise_without_l2(model, images, target, step_size, l2):
    x = images.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[:, target].sum(), x)
    return (x + step_size * g / (g.abs().mean() + 1e-8)).detach()


def visualise_unnormalised(model, images, target, step_size, l2):
    x = images.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[:, target].sum() - l2 * x.pow(2).sum(), x)
    return (x + step_size * g).detach()


def _cam_at(net, image, target, layer, upsample=True, normalise=True, relu=True):
    x = net.normalise(image[None])
    for name, module in net.model.named_children():
        x = module(x)
        if name == layer:
            activation = x = x.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(x[0, target], activation)
    cam = ((gradient.mean(dim=(2, 3), keepdim=True) * activation.detach()).sum(dim=1, keepdim=True))
    cam = F.relu(cam) if relu else cam
    if upsample:
        cam = F.interpolate(cam, size=image.shape[-2:], mode="bilinear", align_corners=False)
    cam = cam[0, 0]
    return cam / cam.max() if normalise and cam.max() > 0 else cam


def grad_cam_not_upsampled(net, image, target, layer):
    return _cam_at(net, image, target, layer, upsample=False)


def grad_cam_not_normalised(net, image, target, layer):
    return _cam_at(net, image, target, layer, normalise=False)


def grad_cam_without_relu(net, image, target, layer):
    return _cam_at(net, image, target, layer, relu=False)


def grad_cam_at_the_last_layer_always(net, image, target, layer):
    return _cam_at(net, image, target, "relu2")


WRONG = {
    "saliency_map": [saliency_without_abs, saliency_summed_over_channels, saliency_of_probability, saliency_of_all_scores],
    "grad_cam_combine": [cam_without_relu, cam_without_averaging, cam_weights_from_activations, cam_averaged_over_channels],
    "fooling_step": [fool_descending, fool_raw_gradient, fool_unclamped, fool_not_detached],
    "class_visualisation_step": [visualise_adding_l2, visualise_without_l2, visualise_unnormalised],
    "grad_cam": [grad_cam_not_upsampled, grad_cam_not_normalised, grad_cam_without_relu, grad_cam_at_the_last_layer_always],
}
