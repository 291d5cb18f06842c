"""ipywidgets explorers. Each returns the widget, so a notebook cell can display it."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt

from helpers.data import CLASSES
from helpers.plot import class_legend, draw_boxes, show_image, show_instances, show_semantic

TASKS = ("classification", "localisation", "detection", "semantic segmentation", "instance segmentation")


def show_task(ax, image, target, task: str) -> None:
    """Draw what one vision task asks of this scene: a label, a box, boxes, or a mask."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if task == "semantic segmentation":
        show_semantic(ax, target["semantic"], "semantic: a class per pixel")
        return
    if task == "instance segmentation":
        show_instances(ax, target["masks"], f"instances: {len(target['masks'])} masks")
        return
    show_image(ax, image)
    if task == "classification":
        ax.set_title(f"class: {CLASSES[int(target['label'])]}", fontsize=10)
    elif task == "localisation":
        draw_boxes(ax, target["box"][None], target["label"][None])
        ax.set_title("one object, one box", fontsize=10)
    else:
        draw_boxes(ax, target["boxes"], target["labels"])
        ax.set_title(f"detection: {len(target['boxes'])} boxes", fontsize=10)


def scene_browser(dataset) -> widgets.Widget:
    """Browse `dataset` (e.g. ShapesScenes) scene by scene, seeing one task or all five at once."""
    index = widgets.IntSlider(value=0, min=0, max=len(dataset) - 1, description="scene")
    task = widgets.Dropdown(options=("all",) + TASKS, value="all", description="task")

    def draw(i, which):
        image, target = dataset[i]
        tasks = TASKS if which == "all" else (which,)
        fig, axes = plt.subplots(1, len(tasks), figsize=(2.6 * len(tasks), 2.8), squeeze=False)
        for ax, t in zip(axes[0], tasks):
            show_task(ax, image, target, t)
        if which != "classification":
            class_legend(axes[0][-1], title="class colours")
        plt.tight_layout()
        plt.show()

    out = widgets.interactive_output(draw, {"i": index, "which": task})
    return widgets.VBox([widgets.HBox([index, task]), out])


def image_from_bytes(content: bytes, size: int = 224):
    """An uploaded picture's bytes -> float32 `[3, size, size]` in [0, 1] (shorter side resized, centre-cropped)."""
    import io

    import torchvision.transforms.functional as TF
    from PIL import Image

    image = Image.open(io.BytesIO(bytes(content))).convert("RGB")
    return TF.center_crop(TF.resize(TF.to_tensor(image), size, antialias=True), size)


def classify_uploads(net, k: int = 5) -> widgets.Widget:
    """An upload button: each picture you upload is shown beside `net`'s top-`k` classes (`net`: a
    classifier from `helpers.features.load_classifier`)."""
    from helpers.features import classify

    upload = widgets.FileUpload(accept="image/*", multiple=False, description="your picture")
    out = widgets.Output()

    def show(change):
        if not change["new"]:
            return
        item = change["new"][0]
        out.clear_output(wait=True)
        with out:
            try:
                image = image_from_bytes(item["content"])
            except OSError as error:  # PIL cannot read it
                print(f"{item.get('name', 'the file')} could not be read as a picture: {error}")
                return
            fig, ax = plt.subplots(figsize=(6, 2.6))
            show_image(ax, image)
            lines = [f"{p:6.1%}  {name}" for name, p in classify(net, image, k)]
            ax.text(1.05, 0.5, "\n".join(lines), transform=ax.transAxes, va="center", fontsize=10, family="monospace")
            ax.set_title(item.get("name", ""), fontsize=9)
            plt.show()

    upload.observe(show, names="value")
    return widgets.VBox([upload, out])
