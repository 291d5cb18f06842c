"""Detection metrics: AP of ranked lists against independent references, mAP against pycocotools."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision

from helpers import metrics as M
from helpers.coco import pycocotools_map


# --------------------------------------------------------------------------------------------
# Independent references, written the textbook way (loops, numpy)
# --------------------------------------------------------------------------------------------


def reference_ap(is_tp_ranked, num_gt, method):
    """AP of a list already ranked best first, following the VOC devkit / pycocotools code."""
    tp = np.cumsum(np.asarray(is_tp_ranked, dtype=float))
    fp = np.cumsum(1 - np.asarray(is_tp_ranked, dtype=float))
    if len(tp) == 0:
        return 0.0
    rec = tp / num_gt
    if method == "voc07":
        prec = tp / (tp + fp)
        total = 0.0
        for k in range(11):
            t = k / 10
            total += (prec[rec >= t].max() if (rec >= t).any() else 0.0) / 11
        return total
    if method == "voc":
        prec = tp / (tp + fp)
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        for i in range(len(mpre) - 1, 0, -1):
            mpre[i - 1] = max(mpre[i - 1], mpre[i])
        i = np.where(mrec[1:] != mrec[:-1])[0]
        return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
    prec = list(tp / (fp + tp + np.spacing(1)))
    for i in range(len(prec) - 1, 0, -1):
        prec[i - 1] = max(prec[i - 1], prec[i])
    q = np.zeros(101)
    for r, p in enumerate(np.searchsorted(rec, np.linspace(0, 1, 101), side="left")):
        if p >= len(prec):
            break
        q[r] = prec[p]
    return float(q.mean())


def random_ranked(seed, n=40, num_gt=25, ties=False):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(n, generator=g)
    if ties:
        scores = (scores * 5).round() / 5
    is_tp = torch.zeros(n, dtype=torch.bool)
    is_tp[torch.randperm(n, generator=g)[: min(num_gt, n) * 2 // 3]] = True
    return scores, is_tp, num_gt


def random_dataset(seed, images=30, classes=3, max_gt=6, max_dets=30, ties=False, empty_images=0.2,
                   duplicates=0.2, cap_test=False):
    """Random detections around random ground truth: misses, duplicates, wrong classes, junk, ties."""
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for i in range(images):
        m = 0 if float(torch.rand(1, generator=g)) < empty_images else int(torch.randint(1, max_gt + 1, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * 90
        gt = torch.cat([xy, xy + 4 + torch.rand(m, 2, generator=g) * 30], 1)
        gl = torch.randint(1, classes + 1, (m,), generator=g)
        k = int(torch.randint(0, max_dets + 1, (1,), generator=g))
        if cap_test:
            k = 130
        if m:
            src = torch.randint(0, m, (k,), generator=g)
            boxes = gt[src] + torch.randn(k, 4, generator=g) * 2.5 * torch.rand(k, 1, generator=g)
            labels = torch.where(torch.rand(k, generator=g) < 0.85, gl[src], torch.randint(1, classes + 1, (k,), generator=g))
            dup = torch.rand(k, generator=g) < duplicates
            boxes[dup] = gt[src[dup]]  # exact copies: the second one is a duplicate
        else:
            xy = torch.rand(k, 2, generator=g) * 90
            boxes = torch.cat([xy, xy + 10], 1)
            labels = torch.randint(1, classes + 1, (k,), generator=g)
        boxes = torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        scores = torch.rand(k, generator=g)
        if ties:
            scores = (scores * 4).round() / 4
        preds.append({"boxes": boxes, "scores": scores, "labels": labels})
        targets.append({"boxes": gt, "labels": gl})
    return preds, targets


def assert_same_as_coco(preds, targets, tol=1e-12):
    pytest.importorskip("pycocotools")  # only the comparisons need it; the pure-torch tests run without
    ours = M.mean_average_precision(preds, targets)
    theirs = pycocotools_map(preds, targets)
    for key in ("map", "map_50", "map_75"):
        if theirs[key] == -1:  # pycocotools' "no ground truth"
            assert math.isnan(ours[key]), key
        else:
            assert abs(ours[key] - theirs[key]) <= tol, (key, ours[key], theirs[key])
    return ours


# --------------------------------------------------------------------------------------------
# AP of one ranked list
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", M.AP_METHODS)
def test_perfect_and_empty_rankings(method):
    assert M.average_precision(torch.tensor([0.9, 0.8]), torch.tensor([True, True]), 2, method) == pytest.approx(1.0)
    assert M.average_precision(torch.tensor([0.9, 0.8]), torch.tensor([False, False]), 2, method) == 0.0
    assert M.average_precision(torch.zeros(0), torch.zeros(0, dtype=torch.bool), 3, method) == 0.0
    assert math.isnan(M.average_precision(torch.tensor([0.5]), torch.tensor([False]), 0, method))


def test_problem_one_numbers_under_each_method():
    # two true positives ranked first among six detections of six objects
    scores = torch.tensor([6.0, 5, 4, 3, 2, 1])
    is_tp = torch.tensor([True, True, False, False, False, False])
    assert M.average_precision(scores, is_tp, 6, "voc") == pytest.approx(1 / 3)
    assert M.average_precision(scores, is_tp, 6, "voc07") == pytest.approx(4 / 11)  # recall 0, .1, .2, .3
    assert M.average_precision(scores, is_tp, 6, "coco") == pytest.approx(34 / 101, abs=1e-12)  # recall 0 ... 0.33
    # ranked last instead: the envelope at recall 1/3 is precision 2/6
    assert M.average_precision(-scores, is_tp, 6, "voc") == pytest.approx(1 / 9)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("method", M.AP_METHODS)
def test_average_precision_matches_reference(seed, method):
    scores, is_tp, num_gt = random_ranked(seed, ties=seed % 2 == 1)
    order = torch.sort(scores, descending=True, stable=True).indices
    want = reference_ap(is_tp[order].numpy(), num_gt, method)
    assert M.average_precision(scores, is_tp, num_gt, method) == pytest.approx(want, abs=1e-12)


def test_precision_recall_curve_and_envelope():
    precision, recall = M.precision_recall_curve(torch.tensor([0.9, 0.1, 0.5]), torch.tensor([True, True, False]), 4)
    torch.testing.assert_close(precision, torch.tensor([1.0, 0.5, 2 / 3], dtype=torch.float64))
    torch.testing.assert_close(recall, torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64))
    torch.testing.assert_close(M.precision_envelope(precision), torch.tensor([1.0, 2 / 3, 2 / 3], dtype=torch.float64))


def test_average_precision_bad_inputs():
    with pytest.raises(ValueError, match="method"):
        M.average_precision(torch.rand(3), torch.ones(3, dtype=torch.bool), 3, "voc2012")
    with pytest.raises(ValueError, match="is_tp must be a tensor of shape"):
        M.average_precision(torch.rand(3), torch.ones(2, dtype=torch.bool), 3)
    with pytest.raises(ValueError, match="num_gt"):
        M.average_precision(torch.rand(3), torch.ones(3, dtype=torch.bool), -1)
    with pytest.raises(ValueError, match="at most once"):
        M.average_precision(torch.rand(3), torch.ones(3, dtype=torch.bool), 2)
    with pytest.raises(ValueError, match="scores"):
        M.average_precision([0.1, 0.2], torch.ones(2, dtype=torch.bool), 2)
    with pytest.raises(ValueError, match="NaN"):
        M.average_precision(torch.tensor([0.1, float("nan")]), torch.ones(2, dtype=torch.bool), 2)


# --------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------


def test_match_detections_duplicates_and_thresholds():
    gt = torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]])
    pred = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10], [20.0, 20, 30, 35], [50.0, 50, 60, 60]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert M.match_detections(pred, scores, gt, 0.5).tolist() == [True, False, True, False]
    assert M.match_detections(pred, scores, gt, 0.7).tolist() == [True, False, False, False]  # IoU 100/150
    # the lower-scored copy is the duplicate, whatever the input order
    assert M.match_detections(pred, torch.tensor([0.8, 0.9, 0.7, 0.6]), gt, 0.5).tolist() == [False, True, True, False]
    assert M.match_detections(pred, scores, gt[:0], 0.5).tolist() == [False] * 4


def test_match_detections_takes_the_best_free_box():
    gt = torch.tensor([[0.0, 0, 10, 10], [2.0, 0, 12, 10]])
    pred = torch.tensor([[1.0, 0, 11, 10], [2.0, 0, 12, 10]])
    # the first detection overlaps both equally (9/11): it takes the later box, as pycocotools does,
    # so the second detection finds its perfect box taken and gets the other one
    assert M.match_detections(pred, torch.tensor([0.9, 0.8]), gt, 0.5).tolist() == [True, True]


def loop_greedy_match(pred_boxes, pred_scores, gt_boxes, threshold):
    """The greedy rule written as a plain loop, independently of helpers.matching: int64 [N], -1 = none."""
    import torchvision

    took = torch.full((len(pred_boxes),), -1, dtype=torch.int64)
    if len(gt_boxes) == 0:
        return took
    iou = torchvision.ops.box_iou(pred_boxes.double(), gt_boxes.double()).nan_to_num(0)
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
    for i in torch.sort(pred_scores, descending=True, stable=True).indices.tolist():
        free = torch.where(taken, -1.0, iou[i])
        if float(free.max()) >= threshold:
            j = int(len(free) - 1 - free.flip(0).argmax())  # ties: the later box
            taken[j] = True
            took[i] = j
    return took


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.75])
def test_greedy_match_says_who_took_whom_as_a_plain_loop_does(seed, threshold):
    preds, targets = random_dataset(seed, images=10, classes=1, ties=True)
    for p, t in zip(preds, targets):
        took = M.greedy_match(p["boxes"], p["scores"], t["boxes"], threshold)
        assert torch.equal(took, loop_greedy_match(p["boxes"], p["scores"], t["boxes"], threshold))
        assert len(took[took >= 0].unique()) == int((took >= 0).sum())  # no box taken twice
        assert torch.equal(M.match_detections(p["boxes"], p["scores"], t["boxes"], threshold), took >= 0)


@pytest.mark.parametrize("seed", range(3))
def test_match_detections_agrees_with_the_batched_matcher(seed):
    preds, targets = random_dataset(seed, images=12, classes=1, ties=True)
    result = M.evaluate_detections(preds, targets, [0.5])
    flags = []
    for p, t in zip(preds, targets):
        flags.append(M.match_detections(p["boxes"], p["scores"], t["boxes"], 0.5))
    # the data-set ranking: score descending, ties by image then in-image score order
    scores = torch.cat([p["scores"][torch.sort(p["scores"], descending=True, stable=True).indices] for p in preds])
    ranked = torch.cat([f[torch.sort(p["scores"], descending=True, stable=True).indices] for f, p in zip(flags, preds)])
    order = torch.sort(scores.double(), descending=True, stable=True).indices
    assert torch.equal(result["is_tp"][:, 0], ranked[order])


# --------------------------------------------------------------------------------------------
# mAP against pycocotools
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_map_equals_pycocotools_on_random_sets(seed):
    preds, targets = random_dataset(seed, ties=seed % 2 == 0)
    ours = assert_same_as_coco(preds, targets)
    assert 0.0 < ours["map"] < 1.0


def test_map_equals_pycocotools_with_many_tied_scores_and_duplicates():
    preds, targets = random_dataset(11, images=40, ties=True, duplicates=0.5)
    assert_same_as_coco(preds, targets)


def test_map_keeps_only_100_detections_per_image_and_class_like_pycocotools():
    preds, targets = random_dataset(5, images=6, classes=1, cap_test=True, empty_images=0.0)
    assert all(len(p["scores"]) > 100 for p in preds)
    assert_same_as_coco(preds, targets)
    # image 0: 100 junk detections outscore a perfect one, which the cap then drops
    gt = targets[0]["boxes"][:1]
    junk = torch.tensor([[200.0, 200, 210, 210]]).repeat(100, 1)
    preds[0] = {"boxes": torch.cat([junk, gt]), "scores": torch.cat([torch.ones(100), torch.tensor([0.5])]),
                "labels": torch.ones(101, dtype=torch.int64)}
    capped = assert_same_as_coco(preds, targets)
    uncapped = M.mean_average_precision(preds, targets, max_detections=1000)
    assert uncapped["map"] != capped["map"]


def test_map_with_class_without_detections_and_class_without_ground_truth():
    preds, targets = random_dataset(3, classes=2)
    targets[0] = {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([7])}  # class 7: never detected
    preds[1] = {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([9])}  # no GT
    ours = assert_same_as_coco(preds, targets)
    ap = dict(zip(ours["classes"].tolist(), ours["ap_per_class"].tolist()))
    assert ap[7] == 0.0 and math.isnan(ap[9])


def test_map_with_images_without_ground_truth_or_detections():
    preds, targets = random_dataset(4, empty_images=0.5)
    preds[2] = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
    assert_same_as_coco(preds, targets)


def test_map_with_no_detections_at_all():
    _, targets = random_dataset(2, images=5, empty_images=0.0)
    preds = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}] * 5
    ours = assert_same_as_coco(preds, targets)
    assert ours["map"] == 0.0


def test_map_of_perfect_detections_is_one():
    _, targets = random_dataset(6, images=10, empty_images=0.0)
    preds = [{"boxes": t["boxes"], "scores": torch.rand(len(t["labels"])), "labels": t["labels"]} for t in targets]
    for method in M.AP_METHODS:
        assert M.mean_average_precision(preds, targets, method=method)["map"] == pytest.approx(1.0)


@pytest.mark.parametrize("method", M.AP_METHODS)
def test_map_per_class_agrees_with_average_precision_of_class_detections(method):
    preds, targets = random_dataset(8, ties=True)
    result = M.mean_average_precision(preds, targets, method=method, iou_thresholds=[0.6])
    for c, ap in zip(result["classes"].tolist(), result["ap_per_class"].tolist()):
        scores, is_tp, num_gt = M.class_detections(preds, targets, c, 0.6)
        assert M.average_precision(scores, is_tp, num_gt, method) == pytest.approx(ap, abs=1e-12)


def test_map_over_thresholds_is_the_mean_of_single_thresholds():
    preds, targets = random_dataset(9)
    both = M.mean_average_precision(preds, targets, method="voc", iou_thresholds=[0.5, 0.7])
    singles = [M.mean_average_precision(preds, targets, method="voc", iou_thresholds=[t])["map"] for t in (0.5, 0.7)]
    assert both["map"] == pytest.approx(sum(singles) / 2, abs=1e-12)
    assert both["map_50"] == pytest.approx(singles[0], abs=1e-12)


def test_map_on_device_tensors_and_float64_inputs():
    preds, targets = random_dataset(10, images=8)
    doubled = [{k: (v.double() if v.is_floating_point() else v) for k, v in p.items()} for p in preds]
    assert M.mean_average_precision(doubled, targets)["map"] == M.mean_average_precision(preds, targets)["map"]


BAD = {
    "not a list": (lambda p, t: ({"boxes": 1}, t), TypeError, "preds must be a list"),
    "lengths differ": (lambda p, t: (p[:-1], t), ValueError, "one entry per image"),
    "missing scores": (lambda p, t: ([{"boxes": p[0]["boxes"], "labels": p[0]["labels"]}] + p[1:], t), ValueError, "'scores'"),
    "float labels": (lambda p, t: (p, [{"boxes": t[0]["boxes"], "labels": t[0]["labels"].float()}] + t[1:]), ValueError,
                     r"targets\[0\]\['labels'\]"),
    "x2 < x1": (lambda p, t: (p, t[:1] + [{"boxes": torch.tensor([[5.0, 0, 1, 1]]), "labels": torch.tensor([1])}] + t[2:]),
                ValueError, r"targets\[1\]\['boxes'\]"),
    "NaN score": (lambda p, t: ([{**p[0], "scores": torch.full_like(p[0]["scores"], float("nan"))}] + p[1:], t), ValueError, "NaN"),
    "bad threshold": (None, ValueError, "iou_thresholds"),
    "bad method": (None, ValueError, "method"),
}


@pytest.mark.parametrize("case", BAD)
def test_map_bad_inputs(case):
    preds, targets = random_dataset(1, images=4, empty_images=0.0)
    preds[0] = {"boxes": torch.tensor([[0.0, 0, 5, 5]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([1])}
    make, error, text = BAD[case]
    with pytest.raises(error, match=text):
        if case == "bad threshold":
            M.mean_average_precision(preds, targets, iou_thresholds=[1.5])
        elif case == "bad method":
            M.mean_average_precision(preds, targets, method="map")
        else:
            M.mean_average_precision(*make(preds, targets))


@pytest.mark.parametrize("seed", range(3))
def test_greedy_match_iou_on_a_precomputed_matrix_follows_the_same_rule(seed):
    """Any IoU matrix (of masks, say): the box matcher's answer when the matrix is the boxes' IoU, and the
    plain loop's answer on random matrices with ties."""
    from helpers.matching import greedy_match_iou

    preds, targets = random_dataset(seed, images=6, classes=1, ties=True)
    for p, t in zip(preds, targets):
        iou = torchvision.ops.box_iou(p["boxes"].double(), t["boxes"].double()) if len(t["boxes"]) else torch.zeros(len(p["boxes"]), 0)
        assert torch.equal(greedy_match_iou(iou, p["scores"], 0.5), M.greedy_match(p["boxes"], p["scores"], t["boxes"], 0.5))
    g = torch.Generator().manual_seed(seed)
    iou = (torch.rand(9, 5, generator=g) * 4).round() / 4  # many ties
    scores = (torch.rand(9, generator=g) * 3).round()
    took = greedy_match_iou(iou, scores, 0.5)
    taken, expected = torch.zeros(5, dtype=torch.bool), torch.full((9,), -1)
    for i in torch.sort(scores, descending=True, stable=True).indices.tolist():
        free = torch.where(taken, -1.0, iou[i].double())
        if float(free.max()) >= 0.5:
            j = int(len(free) - 1 - free.flip(0).argmax())
            taken[j], expected[i] = True, j
    assert torch.equal(took, expected)
    with pytest.raises(ValueError, match="pred_scores"):
        greedy_match_iou(iou, scores[:3], 0.5)
