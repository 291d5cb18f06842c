"""Make `brushstrokes.jpg`, the course's painterly style image (256 x 256, CC0): run `python data/make_brushstrokes.py`.

No public-domain painting ships in a registry package, so this paints one: a night sky of short
brush strokes with dark edges, laid along the swirls of a flow field made of a few vortices, in
blues, with yellow and white around two "stars". Strokes with a visible direction, edges and a
palette give style transfer a structure a viewer can recognise in the result, not only colours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 256
SEED = 3
#: (x, y, strength): vortices of the flow field; positive turns anticlockwise.
VORTICES = ((70, 80, 1.0), (180, 150, -1.0), (120, 230, 0.7), (230, 40, 0.6))
STARS = ((70, 80, 34), (190, 60, 22))  # (x, y, radius): yellow discs of circular strokes
SKY = np.array([[20, 40, 110], [35, 70, 160], [60, 110, 190], [90, 150, 210], [25, 55, 130]], float)
LIGHT = np.array([[250, 220, 90], [240, 190, 60], [255, 245, 190]], float)


def flow_angle(x: float, y: float) -> float:
    """Direction (radians) of the swirling flow at (x, y): vortices plus a gentle rightward drift."""
    vx, vy = 0.4, 0.0
    for cx, cy, s in VORTICES:
        dx, dy = x - cx, y - cy
        r2 = dx * dx + dy * dy + 400.0
        vx, vy = vx - s * dy * 60 / r2, vy + s * dx * 60 / r2
    return float(np.arctan2(vy, vx))


def stroke_colour(x: float, y: float, rng) -> tuple:
    """Sky blues, turning to yellows and white near a star."""
    near = max(max(0.0, 1 - np.hypot(x - sx, y - sy) / (1.8 * r)) for sx, sy, r in STARS)
    base = SKY[rng.integers(len(SKY))] if rng.random() > near else LIGHT[rng.integers(len(LIGHT))]
    return tuple(int(v) for v in np.clip(base + rng.normal(0, 12, 3), 0, 255))


def stroke_path(x: float, y: float, length: float, step: float = 3.0) -> list:
    """Points from (x, y) following the flow for `length` pixels."""
    points = [(x, y)]
    for _ in range(int(length / step)):
        a = flow_angle(x, y)
        x, y = x + step * np.cos(a), y + step * np.sin(a)
        points.append((x, y))
    return points


def paint(size: int = SIZE, seed: int = SEED) -> Image.Image:
    """The painting, as a PIL RGB image of `size` x `size` (drawn at that size, then softened a touch)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), (25, 45, 100))
    draw = ImageDraw.Draw(image)
    for _ in range(2600):
        x, y = rng.uniform(-10, size + 10, 2)
        points = stroke_path(x, y, rng.uniform(14, 30))
        width = int(rng.integers(5, 9))
        colour = stroke_colour(x, y, rng)
        edge = tuple(int(c * 0.35) for c in colour)
        draw.line(points, fill=edge, width=width + 2, joint="curve")
        draw.line(points, fill=colour, width=width, joint="curve")
    for sx, sy, r in STARS:  # concentric rings of short strokes around each star
        for ring in np.arange(r * 0.25, r, 5.0):
            for t in np.linspace(0, 2 * np.pi, int(2 * np.pi * ring / 7), endpoint=False):
                t0 = t + rng.uniform(-0.1, 0.1)
                arc = [(sx + ring * np.cos(t0 + d), sy + ring * np.sin(t0 + d)) for d in np.linspace(0, 0.35, 4)]
                colour = tuple(int(v) for v in np.clip(LIGHT[rng.integers(len(LIGHT))] + rng.normal(0, 10, 3), 0, 255))
                draw.line(arc, fill=tuple(int(c * 0.5) for c in colour), width=6, joint="curve")
                draw.line(arc, fill=colour, width=4, joint="curve")
    return image.filter(ImageFilter.SMOOTH)


if __name__ == "__main__":
    out = Path(__file__).with_name("brushstrokes.jpg")
    paint().save(out, quality=92)
    print(f"wrote {out}")
