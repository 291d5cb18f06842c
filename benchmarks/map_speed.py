"""Time `helpers.metrics.mean_average_precision` against pycocotools' COCOeval on the same detections.

    python benchmarks/map_speed.py [--images 500] [--max-dets 100] [--repeats 3] [--threads 1]

A synthetic set: `--images` images, each with 0-10 ground-truth boxes of 5 classes and up to
`--max-dets` detections (noisy copies of the boxes, duplicates, wrong classes, junk, tied scores).
Both evaluators run in this process on the same data; each time is the best of `--repeats` runs
(pycocotools' time includes building its COCO objects from the lists, which is part of using it on
torchvision-style outputs; the conversion alone is printed too). Prints both times, their ratio and
the largest difference in map / map_50 / map_75.

pycocotools runs on one core; `mean_average_precision` runs torch on one thread too (its tensors are
small), whatever `--threads` sets for the rest.
"""

from __future__ import annotations

import argparse
import time

import torch

from helpers.coco import pycocotools_map
from helpers.metrics import mean_average_precision


def synthetic_detections(images: int, max_dets: int, classes: int = 5, seed: int = 0):
    """Torchvision-style `(preds, targets)` lists for a benchmark."""
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for _ in range(images):
        m = int(torch.randint(0, 11, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * 400
        gt = torch.cat([xy, xy + 8 + torch.rand(m, 2, generator=g) * 120], 1)
        gl = torch.randint(1, classes + 1, (m,), generator=g)
        k = int(torch.randint(max_dets // 2, max_dets + 1, (1,), generator=g))
        if m:
            src = torch.randint(0, m, (k,), generator=g)
            size = (gt[src, 2:] - gt[src, :2]).repeat(1, 2)
            boxes = gt[src] + torch.randn(k, 4, generator=g) * size * 0.15 * torch.rand(k, 1, generator=g)
            labels = torch.where(torch.rand(k, generator=g) < 0.8, gl[src], torch.randint(1, classes + 1, (k,), generator=g))
        else:
            xy = torch.rand(k, 2, generator=g) * 400
            boxes = torch.cat([xy, xy + 30], 1)
            labels = torch.randint(1, classes + 1, (k,), generator=g)
        junk = torch.rand(k, generator=g) < 0.3
        xy = torch.rand(int(junk.sum()), 2, generator=g) * 400
        boxes[junk] = torch.cat([xy, xy + 5 + torch.rand(len(xy), 2, generator=g) * 60], 1)
        boxes = torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        scores = (torch.rand(k, generator=g) * 1000).round() / 1000  # some ties
        preds.append({"boxes": boxes, "scores": scores, "labels": labels})
        targets.append({"boxes": gt, "labels": gl})
    return preds, targets


def best_time(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--max-dets", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave torch's default)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    preds, targets = synthetic_detections(args.images, args.max_dets)
    n_dets = sum(len(p["scores"]) for p in preds)
    n_gt = sum(len(t["labels"]) for t in targets)
    mean_average_precision(preds[:5], targets[:5])  # warm-up
    ours_s, ours = best_time(lambda: mean_average_precision(preds, targets), args.repeats)
    coco_s, coco = best_time(lambda: pycocotools_map(preds, targets), max(1, min(args.repeats, 2)))
    diff = max(abs(ours[k] - coco[k]) for k in ("map", "map_50", "map_75"))
    print(f"{args.images} images, {n_dets} detections, {n_gt} ground-truth boxes, torch threads {torch.get_num_threads()}")
    print(f"{'evaluator':<32}{'seconds':>10}{'map':>10}{'map_50':>10}{'map_75':>10}")
    print(f"{'helpers.metrics (torch)':<32}{ours_s:>10.3f}{ours['map']:>10.4f}{ours['map_50']:>10.4f}{ours['map_75']:>10.4f}")
    print(f"{'pycocotools COCOeval':<32}{coco_s:>10.3f}{coco['map']:>10.4f}{coco['map_50']:>10.4f}{coco['map_75']:>10.4f}")
    print(f"speed-up {coco_s / ours_s:.1f}x; largest difference in map/map_50/map_75: {diff:.2e}")
    return {"ours_s": ours_s, "coco_s": coco_s, "ratio": coco_s / ours_s, "max_diff": diff}


if __name__ == "__main__":
    main()
