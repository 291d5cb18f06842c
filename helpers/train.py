"""A plain training loop with a progress bar, and random mini-batches from tensors."""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from helpers.session import progress_bar


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


def fit(
    model: torch.nn.Module,
    batches: Iterator,
    step_loss: Callable[[torch.nn.Module, tuple], dict],
    steps: int,
    lr: float = 2e-3,
    desc: str = "training",
) -> dict[str, list[float]]:
    """Train `model` for `steps` mini-batches with Adam and a cosine learning-rate decay.

    `step_loss(model, batch)` returns a dict of scalar loss tensors; their sum is minimised.
    Returns the history of every entry (and of the total as "loss"), one float per step.
    """
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    history: dict[str, list[float]] = {}
    bar = progress_bar(range(steps), desc=desc)
    for _ in bar:
        losses = step_loss(model, next(batches))
        total = sum(losses.values())
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        schedule.step()
        for name, value in {**losses, "loss": total}.items():
            history.setdefault(name, []).append(float(value.detach()))
        bar.set_postfix(loss=f"{float(total.detach()):.3f}", refresh=False)
    model.eval()
    return history


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 256):
    """Run `model` in eval mode over `images` `[N, ...]` in batches; outputs are concatenated."""
    model.eval()
    outputs = [model(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    if isinstance(outputs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outputs))
    return torch.cat(outputs)
