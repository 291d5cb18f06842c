"""A plain training loop with a progress bar, and random (optionally mirrored) mini-batches from tensors."""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from helpers.session import capped_steps, progress_bar


def random_batches(*tensors: torch.Tensor, batch_size: int, seed: int = 0) -> Iterator[tuple]:
    """Endless random mini-batches (without replacement within each pass) of equally long tensors."""
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError(f"tensors must all have the same length, got {[len(t) for t in tensors]}")
    if not 0 < batch_size <= n:
        raise ValueError(f"batch_size must be in 1..{n}, got {batch_size}")
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=g)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size].to(tensors[0].device)
            yield tuple(t[idx] for t in tensors)


def random_flips(batches: Iterator[tuple], vertical: bool = True, seed: int = 0) -> Iterator[tuple]:
    """Mirror each mini-batch of `batches` at random: left-right with probability 1/2 and, when
    `vertical`, upside down with probability 1/2 (the whole batch flips together).

    Every tensor of a batch with at least 3 dimensions (images `[B, C, H, W]`, masks `[B, H, W]`) is
    flipped along its last two axes; the others (class labels `[B]`) pass through. Box coordinates
    would need mirroring too, so do not use it on batches with boxes.
    """
    g = torch.Generator().manual_seed(seed)
    for batch in batches:
        for axis, wanted in ((-1, True), (-2, vertical)):
            if wanted and torch.rand(1, generator=g) < 0.5:
                batch = tuple(t.flip(axis) if t.dim() >= 3 else t for t in batch)
        yield batch


def cross_entropy_step(model: torch.nn.Module, batch: tuple) -> dict:
    """The loss of a classifier for `fit`: batch `(inputs, classes)`, classes int64 `[B]` (or
    `[B, H, W]` for per-pixel scores `[B, K, H, W]`) -> `{"cross-entropy": scalar}`."""
    inputs, classes = batch
    return {"cross-entropy": F.cross_entropy(model(inputs), classes)}


def fit(
    model: torch.nn.Module,
    batches: Iterator,
    step_loss: Callable[[torch.nn.Module, tuple], dict],
    steps: int,
    lr: float = 2e-3,
    warmup: float = 0.0,
    weight_decay: float = 0.0,
    clip_grad_norm: float | None = None,
    desc: str = "training",
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train `model` for `steps` mini-batches with AdamW (`adamw`) and a cosine learning-rate decay.

    `batches` yields one mini-batch per step; `step_loss(model, batch)` returns a dict of scalar loss
    tensors, and their sum is minimised. The learning rate rises linearly from 0 to `lr` over the
    first `warmup` fraction of the steps, then falls to 0 along a half cosine. `weight_decay` is
    AdamW's (0 makes it plain Adam). `clip_grad_norm`, when given, rescales the gradients of each
    step so that their joint norm is at most that (torch's `clip_grad_norm_`), and the history then
    has "grad_norm", the joint norm before clipping at each step. A loss that is not
    finite stops training with a `FloatingPointError` that names the step and the loss. Returns the
    history of every entry (and of the total as "loss"), one float per step; leaves the model in
    eval mode. `progress=False` hides the bar.
    `SEEING_NETWORKS_MAX_STEPS` (see `helpers.session`) caps `steps`; the schedule then spans the
    capped run.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    steps = capped_steps(steps)
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must be a fraction of the steps in [0, 1), got {warmup!r}")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"clip_grad_norm must be a positive number or None, got {clip_grad_norm!r}")
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimiser = adamw(parameters, lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, partial(warmup_cosine, steps=steps, warmup=warmup))
    history: dict[str, list[float]] = {}
    bar = progress_bar(range(steps), desc=desc, disable=not progress)
    for step in bar:
        losses = step_loss(model, next(batches))
        total = sum(losses.values())
        if not torch.isfinite(total):
            values = ", ".join(f"{name} {float(value.detach()):.4g}" for name, value in losses.items())
            raise FloatingPointError(f"the loss is not finite at step {step} of {steps} ({values}); "
                                     "try a smaller lr or set clip_grad_norm")
        optimiser.zero_grad()
        total.backward()
        extra = {}
        if clip_grad_norm is not None:
            extra["grad_norm"] = torch.nn.utils.clip_grad_norm_(parameters, clip_grad_norm)  # the norm before clipping
        optimiser.step()
        schedule.step()
        for name, value in {**losses, "loss": total, **extra}.items():
            history.setdefault(name, []).append(float(value.detach()))
        bar.set_postfix(loss=f"{float(total.detach()):.3f}", refresh=False)
    model.eval()
    return history


def adamw(parameters: list, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """torch's AdamW over `parameters`, in its fused form (one kernel for all of them) where this torch
    has one for their device, else the loop over parameters. The same update; on a CPU a fused step of
    notebook 03's detector (38 parameter tensors) took 0.6 ms against 3.4 ms (AMD EPYC, 2 cores)."""
    try:
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device or this torch
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)


def warmup_cosine(step: int, steps: int, warmup: float = 0.0) -> float:
    """The learning-rate factor at `step` of `steps`: a linear rise over the first `warmup` fraction
    (from 1/w to 1, where w is the number of warm-up steps), then a half cosine from 1 down to 0."""
    w = int(warmup * steps)
    if step < w:
        return (step + 1) / w
    return 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, steps - w)))


@torch.no_grad()
def forward_in_batches(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 256):
    """Run `model` in eval mode over `inputs` `[N, ...]`, `batch_size` at a time: its outputs `[N, ...]`
    concatenated (a tuple of them when the model returns a tuple)."""
    model.eval()
    outputs = [model(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    if isinstance(outputs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outputs))
    return torch.cat(outputs)
