"""Small matplotlib helpers: images, boxes, masks, and grids of panels.

All take torch tensors in the course's conventions (images float `[3,H,W]` in [0,1], boxes xyxy in
pixel-edge coordinates) and draw onto a matplotlib `Axes`, so they compose in any figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib import colors as mcolors
from matplotlib.patches import Rectangle

from helpers.boxes import box_iou
from helpers.data import CLASSES
from helpers.matching import match_detections
from helpers.metrics import precision_envelope, precision_recall_curve

#: One colour per class (index = label; 0 = background is black), the same in every figure of the course.
CLASS_COLOURS = ("#000000", "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6")
CLASS_CMAP = mcolors.ListedColormap(CLASS_COLOURS[: len(CLASSES)])
#: Colours for instance masks, one per object: none of them is a class colour (red, green, blue), so an
#: instance map cannot be read as a class map.
INSTANCE_COLOURS = ("#ffe119", "#f032e6", "#42d4f4", "#f58231", "#911eb4", "#bfef45", "#fabed4", "#469990",
                    "#dcbeff", "#9a6324", "#fffac8", "#aaffc3")


def text_colour_on(colour) -> str:
    """Black or white, whichever reads better on a patch of `colour` (by its relative luminance)."""
    r, g, b = mcolors.to_rgb(colour)
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "white"


def class_legend(ax, labels=None, loc: str = "upper left", outside: bool = True, title: str | None = None) -> None:
    """A legend of class colours on `ax`: the classes in `labels` (ints; default every object class).

    `outside` puts it to the right of the axes, where it hides nothing.
    """
    from matplotlib.patches import Patch

    labels = range(1, len(CLASSES)) if labels is None else sorted({int(k) for k in labels})
    handles = [Patch(facecolor=CLASS_COLOURS[k % len(CLASS_COLOURS)], edgecolor="black", lw=0.5,
                     label=CLASSES[k] if 0 <= k < len(CLASSES) else str(k)) for k in labels]
    where = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0) if outside else dict(loc=loc)
    ax.legend(handles=handles, fontsize=8, frameon=False, title=title, title_fontsize=8, **where)


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


def _placed_labels(ax) -> list:
    """The window extents of the box labels already on `ax` (kept on the axes, so that labels drawn by
    several calls avoid each other too)."""
    if not hasattr(ax, "_box_label_extents"):
        ax._box_label_extents = []
    return ax._box_label_extents


def _place_label(ax, x1, y1, x2, y2, text: str, colour) -> None:
    """Write `text` on a patch of `colour` beside box (x1, y1, x2, y2), where it overlaps no label
    already placed and stays inside the axes: above the box, inside its top, below it, or inside its
    bottom, left then right."""
    renderer = ax.figure.canvas.get_renderer()
    placed = _placed_labels(ax)
    candidates = [(x1, y1, "bottom", "left"), (x1, y1, "top", "left"), (x1, y2, "top", "left"),
                  (x1, y2, "bottom", "left"), (x2, y1, "bottom", "right"), (x2, y2, "top", "right")]
    label = ax.text(0, 0, text, color=text_colour_on(colour), fontsize=7, clip_on=True,
                    bbox=dict(facecolor=colour, alpha=0.9, pad=1, lw=0.6, edgecolor="black"))
    frame = ax.get_window_extent(renderer)
    for x, y, va, ha in candidates + candidates[:1]:  # if no place is free, the first one
        label.set_position((x - 0.5, y - 0.5))
        label.set_va(va)
        label.set_ha(ha)
        extent = label.get_window_extent(renderer)
        inside = frame.x0 <= extent.x0 and extent.x1 <= frame.x1 and frame.y0 <= extent.y0 and extent.y1 <= frame.y1
        if inside and not any(extent.expanded(1.05, 1.1).overlaps(other) for other in placed):
            break
    placed.append(label.get_window_extent(renderer))


def draw_boxes(ax, boxes: torch.Tensor, labels=None, scores=None, colour=None, linestyle="-", linewidth=1.5) -> None:
    """Draw xyxy boxes `[N,4]` (pixel edges), with optional class labels `[N]` and scores `[N]`.

    Without `colour`, each box takes its class colour (white when there are no labels). A label
    ("disc 0.87") sits on a patch of the box's colour, in black or white text, whichever reads on it,
    and moves round its box so that it covers no other label on the axes.
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
            _place_label(ax, x1, y1, x2, y2, " ".join(text), c)


def show_semantic(ax, semantic: torch.Tensor, title: str | None = None, legend: bool = False) -> None:
    """Draw a class map `[H,W]` (0 = background) in the class colours; `legend` adds the class legend."""
    ax.imshow(semantic.detach().cpu().numpy(), cmap=CLASS_CMAP, vmin=0, vmax=len(CLASSES) - 1, interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if legend:
        class_legend(ax, range(len(CLASSES)))


def show_instances(ax, masks: torch.Tensor, title: str | None = None) -> None:
    """Draw instance masks `[N,H,W]`, each object in its own colour from `INSTANCE_COLOURS` (never a
    class colour: the colour says *which* object, not its class), on black."""
    ids = torch.zeros(masks.shape[1:], dtype=torch.int64)
    for k, mask in enumerate(masks.bool().cpu()):
        ids[mask] = k % len(INSTANCE_COLOURS) + 1
    cmap = mcolors.ListedColormap(["#000000"] + list(INSTANCE_COLOURS))
    ax.imshow(ids.numpy(), cmap=cmap, vmin=0, vmax=len(INSTANCE_COLOURS), interpolation="nearest")
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


#: How `draw_unet` draws each arrow kind of `helpers.unet.unet_diagram`: legend label, colour, line style.
UNET_ARROW_STYLES = {
    "conv": ("conv 3x3, batch norm, ReLU", "#08519c", "-"),
    "pool": ("max pool 2x2", "#cb181d", "-"),
    "up": ("up-conv 2x2", "#238b45", "-"),
    "copy": ("copy and crop", "#636363", "--"),
    "head": ("conv 1x1", "#6a3d9a", "-."),
}


def draw_unet(ax, model, height: int = 32, width: int | None = None, legend: bool = True) -> dict:
    """Draw a U-Net figure of `model` (a `helpers.unet.UNet`) in the style of Ronneberger et al.

    Bars are feature maps: bar height grows with the map's height in pixels, bar width with the square
    root of its channel count (written above the bar); each level is labelled with its size. Arrows are
    the layers, one style per kind (`UNET_ARROW_STYLES`), with a legend unless `legend=False`. A concatenated map is drawn as
    two parts side by side: the copied part white, the upsampled part shaded. All numbers come from
    `helpers.unet.unet_diagram`, i.e. from one forward pass of the model. Returns the number of arrows
    drawn of each kind.
    """
    from matplotlib.lines import Line2D

    from helpers.unet import ARROW_KINDS, unet_diagram

    diagram = unet_diagram(model, height, width)
    bars, arrows = diagram["bars"], diagram["arrows"]
    top_h = max(b["height"] for b in bars)
    unit_h, dx, gap = 4.0 / top_h, 1.7, 1.0
    bar_h = lambda b: b["height"] * unit_h
    part_w = lambda c: 0.08 * c**0.5
    level_h = {b["level"]: bar_h(b) for b in bars}
    level_y = {0: 0.0}
    for level in range(1, max(level_h) + 1):
        level_y[level] = level_y[level - 1] - (level_h[level - 1] + level_h[level]) / 2 - gap
    fills = {"input": "#d9d9d9", "conv": "#9ecae1", "pool": "#9ecae1", "up": "#a1d99b", "copy": "white", "head": "#fdd0a2"}

    vertical_at_top = {j for kind, i, j in arrows if kind == "pool"} | {i for kind, i, j in arrows if kind == "up"}
    boxes = []  # per bar: {kind: (x0, x1)} and the bar's (x0, x1, y0, y1)
    for n, b in enumerate(bars):
        xc, yc, h = b["column"] * dx, level_y[b["level"]], bar_h(b)
        parts = {}
        if len(b["parts"]) == 2:  # (up, copy): the upsampled part sits over the up arrow, the copy to its left
            (c_up, _), (c_copy, _) = b["parts"]
            parts["up"] = (xc - part_w(c_up) / 2, xc + part_w(c_up) / 2)
            parts["copy"] = (parts["up"][0] - part_w(c_copy), parts["up"][0])
        else:
            (c, kind), = b["parts"]
            parts[kind] = (xc - part_w(c) / 2, xc + part_w(c) / 2)
        for kind, (x0, x1) in parts.items():
            ax.add_patch(Rectangle((x0, yc - h / 2), x1 - x0, h, facecolor=fills[kind], edgecolor="black", lw=0.8))
        x0, x1 = min(p[0] for p in parts.values()), max(p[1] for p in parts.values())
        label = "+".join(str(c) for c, _ in reversed(b["parts"])) if len(b["parts"]) == 2 else str(b["channels"])
        if n in vertical_at_top:  # an arrow meets the top of this bar: write the count beside it
            ax.text(x1 + 0.06, yc + h / 2 + 0.05, label, ha="left", va="bottom", fontsize=7)
        else:
            ax.text((x0 + x1) / 2, yc + h / 2 + 0.12, label, ha="center", va="bottom", fontsize=7)
        boxes.append(dict(parts=parts, x0=x0, x1=x1, y0=yc - h / 2, y1=yc + h / 2, yc=yc))
    for level, y in level_y.items():
        first = min((i for i, b in enumerate(bars) if b["level"] == level), key=lambda i: bars[i]["column"])
        b = bars[first]
        ax.text(boxes[first]["x0"] - 0.15, y, f"{b['height']}x{b['width']}", ha="right", va="center", fontsize=7, color="#444444")

    drawn = {kind: 0 for kind in ARROW_KINDS}
    for kind, i, j in arrows:
        a, b = boxes[i], boxes[j]
        if kind in ("conv", "head"):
            start, end = (a["x1"], a["yc"]), (b["x0"], b["yc"])
        elif kind == "copy":
            start, end = (a["x1"], a["yc"]), (b["parts"]["copy"][0], b["yc"])
        elif kind == "pool":
            x = sum(a["parts"][next(iter(a["parts"]))]) / 2 if len(a["parts"]) == 1 else (a["x0"] + a["x1"]) / 2
            start, end = (x, a["y0"]), (x, b["y1"])
        else:  # up: from the top of the lower bar to the bottom of the upsampled part
            x = sum(b["parts"]["up"]) / 2 if "up" in b["parts"] else (b["x0"] + b["x1"]) / 2
            start, end = (x, a["y1"]), (x, b["y0"])
        _, colour, style = UNET_ARROW_STYLES[kind]
        ax.annotate("", xy=end, xytext=start,
                    arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.8, linestyle=style, shrinkA=0, shrinkB=0, mutation_scale=9))
        drawn[kind] += 1

    handles = [Line2D([0], [0], color=UNET_ARROW_STYLES[k][1], ls=UNET_ARROW_STYLES[k][2], lw=2, marker=">", markersize=5,
                      label=UNET_ARROW_STYLES[k][0]) for k in ARROW_KINDS if drawn[k]]
    if legend:  # notebook 05 hides it until Problem 3 is answered: it names the arrows
        ax.legend(handles=handles, loc="lower right", fontsize=8, frameon=False)
    ax.set_xlim(min(bx["x0"] for bx in boxes) - 1.3, max(bx["x1"] for bx in boxes) + 0.5)
    ax.set_ylim(min(bx["y0"] for bx in boxes) - 0.4, max(bx["y1"] for bx in boxes) + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    return drawn


# --------------------------------------------------------------------------------------------
# Detection: proposals, detections, matches and precision/recall
# --------------------------------------------------------------------------------------------


def draw_proposals(ax, image: torch.Tensor, boxes: torch.Tensor, top: int = 30, title: str | None = None) -> None:
    """Draw an image with its `top` best proposals (xyxy `[P,4]`, best first) as thin white boxes."""
    show_image(ax, image, title)
    draw_boxes(ax, boxes[:top], colour="white", linewidth=0.6)


def draw_detections(ax, image: torch.Tensor, prediction: dict, target: dict | None = None, score_threshold: float = 0.5,
                    title: str | None = None, legend: bool = False) -> None:
    """Draw detections scoring at least `score_threshold` (class colours, with scores) and, if
    given, the ground truth as dashed white boxes. `legend` adds the class legend."""
    show_image(ax, image, title)
    if target is not None:
        draw_boxes(ax, target["boxes"], colour="white", linestyle="--", linewidth=1.0)
    keep = prediction["scores"] >= score_threshold
    draw_boxes(ax, prediction["boxes"][keep], labels=prediction["labels"][keep], scores=prediction["scores"][keep])
    if legend:
        class_legend(ax)


def draw_pr_curve(ax, scores: torch.Tensor, is_tp: torch.Tensor, num_gt: int, label: str | None = None,
                  envelope: bool = True, colour=None, fill: bool = False, envelope_colour=None) -> None:
    """Plot a precision/recall curve (a step per detection, best score first) and, dashed, its envelope.

    The envelope is drawn so that the area under it is exactly the all-point AP: on each stretch of
    recall (recall[k-1], recall[k]] it holds the best precision reached at rank k or later. `fill`
    shades that area. Labelled lines appear in the legend ("envelope" is named after `label`).
    `envelope_colour` defaults to the curve's colour; a contrasting one shows where the two coincide.
    """
    precision, recall = precision_recall_curve(scores, is_tp, num_gt)
    recall = torch.cat([torch.zeros(1, dtype=recall.dtype), recall])
    precision = torch.cat([precision[:1], precision]) if len(precision) else torch.ones(1, dtype=recall.dtype)
    (line,) = ax.plot(recall.numpy(), precision.numpy(), drawstyle="steps-post", label=label, color=colour, lw=1.2)
    if envelope:
        best = precision_envelope(precision).numpy()
        name = f"{label}: envelope" if label else "envelope"
        ax.plot(recall.numpy(), best, drawstyle="steps-pre", ls="--", color=envelope_colour or line.get_color(), lw=1.6,
                label=name, zorder=3)
        if fill:
            ax.fill_between(recall.numpy(), best, step="pre", color=line.get_color(), alpha=0.15,
                            label="area under the envelope")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")


def draw_matches(ax, image: torch.Tensor, prediction: dict, target: dict, iou_threshold: float = 0.5,
                 title: str | None = None, legend: bool = False) -> torch.Tensor:
    """Draw one image's detections by verdict, each labelled with its class and score: true positives
    (green, solid), duplicates (orange, dash-dot: false positives that overlap a true box of their class
    with IoU >= `iou_threshold`, already taken by a better-scored detection) and the other false
    positives (red, dotted); the ground truth dashed white. Each class is matched separately. `legend`
    explains the styles (to the right of the axes). Returns the true-positive flags, bool `[N]`."""
    from matplotlib.lines import Line2D

    show_image(ax, image, title)
    draw_boxes(ax, target["boxes"], colour="white", linestyle="--", linewidth=1.0)
    is_tp = torch.zeros(len(prediction["scores"]), dtype=torch.bool)
    for label in prediction["labels"].unique().tolist():
        mine = prediction["labels"] == label
        gt = target["boxes"][target["labels"] == label]
        is_tp[mine] = match_detections(prediction["boxes"][mine], prediction["scores"][mine], gt, iou_threshold)
    same_class = prediction["labels"][:, None] == target["labels"][None, :]
    iou = box_iou(prediction["boxes"].float(), target["boxes"].float()) if len(target["boxes"]) else same_class.float()
    duplicate = ~is_tp & ((iou.nan_to_num(0) >= iou_threshold) & same_class).any(1)
    for kind, flags in (("false positive", ~is_tp & ~duplicate), ("duplicate", duplicate), ("true positive", is_tp)):
        colour, style = MATCH_STYLES[kind]
        draw_boxes(ax, prediction["boxes"][flags], labels=prediction["labels"][flags], colour=colour, linestyle=style,
                   scores=prediction["scores"][flags])
    if legend:
        handles = [Line2D([0], [0], color=c, lw=1.5, ls=style, label=kind) for kind, (c, style) in MATCH_STYLES.items()]
        handles.append(Line2D([0], [0], color="grey", lw=1.0, ls="--", label="ground truth (white)"))
        ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return is_tp


#: The colour and line style of each of `draw_matches`' verdicts.
MATCH_STYLES = {"true positive": ("#2ecc40", "-"), "duplicate": ("#ff851b", "-."), "false positive": ("#ff4136", ":")}
