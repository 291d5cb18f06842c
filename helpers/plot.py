"""Small matplotlib helpers: images, boxes, masks, and grids of panels.

All take torch tensors in the course's conventions (images float `[3,H,W]` in [0,1], boxes xyxy in
pixel-edge coordinates) and draw onto a matplotlib `Axes`, so they compose in any figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib import colors as mcolors
from matplotlib.patches import Rectangle

from helpers.data import CLASSES

#: One colour per class (index = label; 0 = background is black).
CLASS_COLOURS = ("#000000", "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6")
CLASS_CMAP = mcolors.ListedColormap(CLASS_COLOURS[: len(CLASSES)])


def image_to_numpy(image: torch.Tensor):
    """`[3,H,W]` or `[H,W]` tensor -> an array `imshow` takes (`[H,W,3]` or `[H,W]`), on the CPU."""
    if not isinstance(image, torch.Tensor) or image.dim() not in (2, 3):
        raise ValueError(f"image must be a [3,H,W] or [H,W] tensor, got {getattr(image, 'shape', type(image))}")
    image = image.detach().float().cpu()
    return image.permute(1, 2, 0).clamp(0, 1).numpy() if image.dim() == 3 else image.numpy()


def show_image(ax, image: torch.Tensor, title: str | None = None) -> None:
    """Draw an image (`[3,H,W]` in [0,1], or a `[H,W]` map) without axis ticks."""
    ax.imshow(image_to_numpy(image), interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_boxes(ax, boxes: torch.Tensor, labels=None, scores=None, colour=None, linestyle="-", linewidth=1.5) -> None:
    """Draw xyxy boxes `[N,4]` (pixel edges), with optional class labels `[N]` and scores `[N]`.

    Without `colour`, each box takes its class colour (white when there are no labels).
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float32).detach().cpu().reshape(-1, 4)
    for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        label = int(labels[k]) if labels is not None else None
        c = colour or (CLASS_COLOURS[label % len(CLASS_COLOURS)] if label is not None else "white")
        # pixel (i, j) is drawn centred on (j, i): edges sit half a pixel before the centre
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=c, lw=linewidth, ls=linestyle))
        text = []
        if label is not None:
            text.append(CLASSES[label] if 0 <= label < len(CLASSES) else str(label))
        if scores is not None:
            text.append(f"{float(scores[k]):.2f}")
        if text:
            ax.text(x1 - 0.5, y1 - 1.5, " ".join(text), color="white", fontsize=7,
                    bbox=dict(facecolor=c, alpha=0.8, pad=1, lw=0))


def show_semantic(ax, semantic: torch.Tensor, title: str | None = None) -> None:
    """Draw a class map `[H,W]` (0 = background) in the class colours."""
    ax.imshow(semantic.detach().cpu().numpy(), cmap=CLASS_CMAP, vmin=0, vmax=len(CLASSES) - 1, interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def show_instances(ax, masks: torch.Tensor, title: str | None = None) -> None:
    """Draw instance masks `[N,H,W]`, each instance in its own colour whatever its class."""
    ids = torch.zeros(masks.shape[1:], dtype=torch.int64)
    for k, mask in enumerate(masks.bool().cpu()):
        ids[mask] = k + 1
    cmap = mcolors.ListedColormap(["#000000"] + list(plt.get_cmap("tab10").colors))
    ax.imshow(ids.numpy(), cmap=cmap, vmin=0, vmax=10, interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def panels(n: int, per_row: int = 4, size: float = 2.6):
    """A figure with `n` axes, `per_row` to a row. Returns `(fig, axes)` with `axes` a flat list of `n`."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rows = (n + per_row - 1) // per_row
    cols = min(n, per_row)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    axes = list(axes.flat)
    for ax in axes[n:]:
        ax.axis("off")
    return fig, axes[:n]


def plot_curves(ax, curves: dict, xlabel: str = "step", ylabel: str = "loss", log: bool = True, smooth: int = 1) -> None:
    """Plot named 1-D sequences (e.g. loss histories) on one axes, optionally smoothed by a moving mean."""
    for name, values in curves.items():
        values = torch.as_tensor(values, dtype=torch.float64)
        if smooth > 1 and len(values) >= smooth:
            values = values.unfold(0, smooth, 1).mean(1)
        ax.plot(values.numpy(), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
