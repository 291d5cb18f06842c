"""Synthetic scenes of coloured shapes: one scene gives targets for all four vision tasks.

`ShapesScenes(n, size, seed)[i]` is `(image, target)` in torchvision's detection conventions:

- `image`: float32 `[3, H, W]` in [0, 1];
- `target["boxes"]`: float32 `[N, 4]`, xyxy in pixel-edge coordinates, tight around the *visible*
  pixels (a shape covering columns 3..7 has x1 = 3, x2 = 8, so no box is ever zero-wide);
- `target["labels"]`: int64 `[N]` in 1..K (`CLASSES[label]` is the name, `CLASSES[0]` is background);
- `target["masks"]`: uint8 `[N, H, W]`, the visible pixels of each instance (later shapes occlude
  earlier ones);
- `target["semantic"]`: int64 `[H, W]`, the class of every pixel, 0 = background;
- `target["label"]`, `target["box"]`: the class (int64 scalar) and box (float32 `[4]`) of the shape
  with the most visible pixels, for classification and single-object localisation;
- `target["area"]` (float32 `[N]`, visible pixels), `target["image_id"]` (int64 scalar).

Each scene is a pure function of `(seed, i)`.
"""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path

import torch
from torch.utils.data import Dataset

CLASSES = ("background", "square", "disc", "triangle")
NUM_CLASSES = len(CLASSES) - 1  # K, the object classes
MIN_VISIBLE_FRACTION = 0.5  # a shape hidden more than this is pushed out of the scene
DATA_DIR = Path(__file__).resolve().parent.parent / "data"  # the repository's shipped assets


def data_path(name: str) -> Path:
    """The path of a file shipped in the repository's `data/` folder (see `data/README.md`)."""
    path = DATA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"name must be a file in {DATA_DIR}, got {name!r} (is the course installed from a clone?)")
    return path


def semantic_from_instances(masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Paint every instance's label into one map.

    masks: uint8/bool `[N, H, W]` (visible pixels, so they do not overlap); labels: int64 `[N]`.
    Returns int64 `[H, W]` with 0 where no instance is.
    """
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3:
        raise ValueError(f"masks must be a [N, H, W] tensor, got {getattr(masks, 'shape', type(masks))}")
    if not isinstance(labels, torch.Tensor) or labels.shape != masks.shape[:1]:
        raise ValueError(f"labels must be a tensor of shape [{masks.shape[0]}], got {getattr(labels, 'shape', labels)}")
    semantic = torch.zeros(masks.shape[1:], dtype=torch.int64)
    for mask, label in zip(masks.bool(), labels):
        semantic[mask] = label
    return semantic


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Tight xyxy boxes (pixel edges) around each non-empty mask: `[N, H, W]` -> float32 `[N, 4]`."""
    boxes = torch.zeros((len(masks), 4), dtype=torch.float32)
    for k, mask in enumerate(masks.bool()):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        boxes[k] = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
    return boxes


@functools.lru_cache(maxsize=8)
def _pixel_centres(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The y and x coordinates of every pixel's centre, float32 `[size, size]` each (cached: never change them)."""
    return torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")


def _shape_mask(kind: str, cx: float, cy: float, r: float, angle: float, size: int) -> torch.Tensor:
    """Boolean `[size, size]` mask of one shape: `r` is the half-width (square) or radius."""
    y, x = _pixel_centres(size)
    dx, dy = x - cx, y - cy
    if kind == "disc":
        return dx**2 + dy**2 <= r**2
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy  # coordinates in the shape's own frame
    if kind == "square":
        return (u.abs() <= r) & (v.abs() <= r)
    if kind == "triangle":  # equilateral, circumradius r*1.25, one vertex pointing up in its frame
        R = 1.25 * r
        inside = torch.ones_like(u, dtype=torch.bool)
        for k in range(3):  # three half-planes, normals at -90°, 30°, 150°
            t = -math.pi / 2 + k * 2 * math.pi / 3
            inside &= u * math.cos(t) + v * math.sin(t) <= R / 2
        return inside
    raise ValueError(f"kind must be one of {CLASSES[1:]}, got {kind!r}")


def _background(size: int, g: torch.Generator) -> torch.Tensor:
    """A muted colour gradient with blotches and pixel noise, float32 `[3, size, size]`."""
    base = 0.25 + 0.35 * torch.rand(3, 1, 1, generator=g)
    coarse = torch.rand(3, 4, 4, generator=g) - 0.5
    blotches = torch.nn.functional.interpolate(coarse[None], size=(size, size), mode="bicubic", align_corners=False)[0]
    noise = 0.06 * torch.randn(3, size, size, generator=g)
    return base + 0.25 * blotches + noise


def _bright_colour(g: torch.Generator) -> torch.Tensor:
    """A saturated colour `[3]`: one channel high, one low, one anywhere (any hue, never grey)."""
    order = torch.randperm(3, generator=g)
    colour = torch.empty(3)
    colour[order[0]] = 0.75 + 0.25 * torch.rand(1, generator=g)
    colour[order[1]] = 0.15 * torch.rand(1, generator=g)
    colour[order[2]] = torch.rand(1, generator=g)
    return colour


class ShapesScenes(Dataset):
    """`n` synthetic scenes of squares, discs and triangles. See the module docstring for targets.

    Args:
        n: number of scenes.
        size: height and width in pixels (at least 32).
        seed: which family of scenes; `(seed, i)` fixes scene `i`.
        num_objects: an int, or an inclusive `(low, high)` range of shapes per scene.
            `num_objects=1` gives single-object scenes for classification and localisation.
        scale: inclusive `(low, high)` range of a shape's radius, as a fraction of `size`.
    """

    classes = CLASSES
    num_classes = NUM_CLASSES

    def __init__(self, n: int, size: int = 64, seed: int = 0, num_objects=(1, 4), scale=(0.08, 0.22)):
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if not isinstance(size, int) or size < 32:
            raise ValueError(f"size must be an int of at least 32 pixels, got {size!r}")
        if not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        low, high = (num_objects, num_objects) if isinstance(num_objects, int) else tuple(num_objects)
        if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high <= 10):
            raise ValueError(f"num_objects must be an int or a (low, high) range within 1..10, got {num_objects!r}")
        if not (0 < scale[0] <= scale[1] <= 0.4):
            raise ValueError(f"scale must be a (low, high) range within (0, 0.4], got {scale!r}")
        self.n, self.size, self.seed = n, size, seed
        self.num_objects, self.scale = (low, high), tuple(scale)

    def __len__(self) -> int:
        return self.n

    def generator(self, i: int) -> torch.Generator:
        """The random generator of scene `i`, seeded from `(seed, i)` alone."""
        digest = hashlib.sha256(f"ShapesScenes:{self.seed}:{i}".encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))

    def __getitem__(self, i: int):
        if not isinstance(i, int) or not -self.n <= i < self.n:
            raise IndexError(f"scene index must be an int in [0, {self.n}), got {i!r}")
        i = i % self.n
        g = self.generator(i)
        image, masks, labels = self._render(g)
        boxes = boxes_from_masks(masks)
        area = masks.flatten(1).sum(1).float()
        main = int(area.argmax())
        target = {
            "boxes": boxes,
            "labels": labels,
            "masks": masks,
            "semantic": semantic_from_instances(masks, labels),
            "label": labels[main].clone(),
            "box": boxes[main].clone(),
            "area": area,
            "image_id": torch.tensor(i, dtype=torch.int64),
        }
        return image, target

    def _render(self, g: torch.Generator):
        """Draw one scene. Returns image `[3,H,W]`, visible masks uint8 `[N,H,W]`, labels int64 `[N]`."""
        size = self.size
        low, high = self.num_objects
        count = int(torch.randint(low, high + 1, (1,), generator=g))
        image = _background(size, g)
        visible = torch.zeros((0, size, size), dtype=torch.bool)  # the visible part of every shape so far
        areas, labels = torch.zeros(0, dtype=torch.int64), []    # their full areas and classes
        for _ in range(count):
            for _attempt in range(20):  # resample a shape that would hide another too much
                label = int(torch.randint(1, NUM_CLASSES + 1, (1,), generator=g))
                r = size * (self.scale[0] + (self.scale[1] - self.scale[0]) * float(torch.rand(1, generator=g)))
                margin = 1.25 * r
                cx = margin + (size - 2 * margin) * float(torch.rand(1, generator=g))
                cy = margin + (size - 2 * margin) * float(torch.rand(1, generator=g))
                angle = 2 * math.pi * float(torch.rand(1, generator=g))
                mask = _shape_mask(CLASSES[label], cx, cy, r, angle, size)
                area = mask.sum()
                if self._keeps_everyone_visible(visible, areas, mask, area):
                    visible = torch.cat([visible & ~mask, mask[None]])  # the new shape goes on top
                    areas = torch.cat([areas, area[None]])
                    labels.append(label)
                    image[:, mask] = _bright_colour(g)[:, None] * (0.9 + 0.1 * torch.rand(1, int(area), generator=g))
                    break
        image = (image + 0.03 * torch.randn(image.shape, generator=g)).clamp(0, 1)
        return image.float(), visible.to(torch.uint8), torch.tensor(labels, dtype=torch.int64)

    @staticmethod
    def _keeps_everyone_visible(visible: torch.Tensor, areas: torch.Tensor, new: torch.Tensor, area: torch.Tensor) -> bool:
        """With `new` (bool `[H, W]`, `area` pixels) painted on top of the shapes drawn so far (their
        visible masks `[N, H, W]` and full areas `[N]`), would the new shape have at least 12 pixels,
        and every earlier one keep at least MIN_VISIBLE_FRACTION of its own?"""
        if area < 12:
            return False
        left = (visible & ~new).flatten(1).sum(1)
        return not bool((left < MIN_VISIBLE_FRACTION * areas).any())


#: What `render` can return beside the images, per scene: its shape and dtype, or what it is.
RENDER_FIELDS = {
    "label": "int64 [n]: the class of the shape with the most visible pixels (classification)",
    "box": "float32 [n, 4]: that shape's xyxy box (single-object localisation)",
    "semantic": "int64 [n, H, W]: the class of every pixel, 0 = background (semantic segmentation)",
    "targets": "a list of n dicts with `boxes` float32 [N, 4] and `labels` int64 [N] (detection)",
}


def render(dataset: Dataset, *fields: str, device: torch.device | str = "cpu") -> tuple:
    """Draw every scene of `dataset` once and keep it as tensors on `device`.

    Returns `(images, *one entry per field)`: images float32 `[n, 3, H, W]`, then for each name in
    `fields` (see `RENDER_FIELDS`): "label", "box", "semantic" stacked over the scenes, or "targets",
    torchvision's detection targets, one dict per scene. For example
    `images, labels, boxes = render(ShapesScenes(100, num_objects=1), "label", "box")`.
    """
    unknown = [f for f in fields if f not in RENDER_FIELDS]
    if not fields or unknown:
        raise ValueError(f"fields must be one or more of {sorted(RENDER_FIELDS)}, got {fields!r}")
    if len(dataset) == 0:
        raise ValueError("dataset must hold at least one scene")
    scenes = [dataset[i] for i in range(len(dataset))]
    out = [torch.stack([image for image, _ in scenes]).to(device)]
    for field in fields:
        if field == "targets":
            out.append([{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for _, t in scenes])
        else:
            out.append(torch.stack([t[field] for _, t in scenes]).to(device))
    return tuple(out)


def load_image(source, size: int | None = None) -> torch.Tensor:
    """Read an image as float32 `[3,H,W]` in [0,1].

    source: a file name in the course's `data/` folder, a path, or an http(s) URL.
    size: if given, resize so the shorter side is `size`, then centre-crop to `size` x `size`.
    """
    import io
    import urllib.request

    from PIL import Image
    import torchvision.transforms.functional as TF

    if isinstance(source, (str, Path)) and str(source).startswith(("http://", "https://")):
        with urllib.request.urlopen(str(source), timeout=20) as answer:
            image = Image.open(io.BytesIO(answer.read()))
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            path = data_path(str(source))  # raises FileNotFoundError naming the data folder
        image = Image.open(path)
    else:
        raise TypeError(f"source must be a file name, a path or a URL, got {type(source).__name__}")
    tensor = TF.to_tensor(image.convert("RGB"))
    if size is not None:
        if not isinstance(size, int) or size < 8:
            raise ValueError(f"size must be an int of at least 8, got {size!r}")
        tensor = TF.center_crop(TF.resize(tensor, size, antialias=True), [size, size]).clamp(0, 1)
    return tensor
