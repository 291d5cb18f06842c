"""The official COCO evaluation (pycocotools' `COCOeval`) on the course's torchvision-style lists, to
compare `helpers.metrics.mean_average_precision` with (notebook 02, the tests, `benchmarks/map_speed.py`).
pycocotools comes with the course's `dev` extra; nothing else in `helpers` needs it."""

from __future__ import annotations

import contextlib
import io

import torch

from helpers.metrics import _gather_detection_lists


def pycocotools_map(preds, targets) -> dict:
    """The same figures from pycocotools' `COCOeval` (bbox, area "all", 100 detections), for comparison.

    Needs pycocotools (in the course's `dev` extra). Builds COCO-format ground truth and results from
    the torchvision-style lists (boxes go in as float64 xywh) and returns `{"map", "map_50", "map_75"}`.
    Categories are the labels that occur, so (as in `mean_average_precision`) a class without any
    ground-truth box is left out of the mean.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("pycocotools_map needs pycocotools: pip install pycocotools") from error
    d_boxes, d_labels, d_image, d_scores = _gather_detection_lists(preds, "preds", with_scores=True)
    g_boxes, g_labels, g_image, _ = _gather_detection_lists(targets, "targets", with_scores=False)
    if len(preds) != len(targets):
        raise ValueError(f"preds and targets must have one entry per image, got {len(preds)} and {len(targets)}")

    def xywh(boxes):
        return torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist()

    annotations = [
        {"id": k + 1, "image_id": int(i) + 1, "category_id": int(label), "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
        for k, (i, label, box) in enumerate(zip(g_image.tolist(), g_labels.tolist(), xywh(g_boxes)))
    ]
    results = [
        {"image_id": int(i) + 1, "category_id": int(label), "bbox": box, "score": score}
        for i, label, box, score in zip(d_image.tolist(), d_labels.tolist(), xywh(d_boxes), d_scores.tolist())
    ]
    categories = sorted(set(g_labels.tolist()) | set(d_labels.tolist()))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": i + 1} for i in range(len(targets))], "annotations": annotations,
                      "categories": [{"id": c} for c in categories]}
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
        if not results:
            dt.dataset = {"images": gt.dataset["images"], "annotations": [], "categories": gt.dataset["categories"]}
            dt.createIndex()
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {"map": float(stats[0]), "map_50": float(stats[1]), "map_75": float(stats[2])}
