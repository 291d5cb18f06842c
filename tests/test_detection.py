"""helpers.detection: the small Faster R-CNN, its loops, the pretend detector and the drawings."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from helpers import detection as D
from helpers.data import ShapesScenes
from helpers.exercises.nb03 import reference_anchors
from helpers.metrics import mean_average_precision


@pytest.fixture(scope="module")
def scenes():
    return D.render(ShapesScenes(6, size=64, seed=3))


@pytest.mark.parametrize("stride", [4, 8, 16])
def test_backbone_output_shape(stride):
    backbone = D.small_backbone(32, stride)
    out = backbone(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 32, 64 // stride, 64 // stride)
    assert backbone.out_channels == 32


def test_backbone_and_model_bad_arguments():
    with pytest.raises(ValueError, match="stride"):
        D.small_backbone(32, 3)
    with pytest.raises(ValueError, match="channels"):
        D.small_backbone(4)
    with pytest.raises(ValueError, match="num_classes"):
        D.small_faster_rcnn(num_classes=1)
    with pytest.raises(ValueError, match="image_size"):
        D.small_faster_rcnn(image_size=16)
    with pytest.raises(ValueError, match="roi_size"):
        D.small_faster_rcnn(roi_size=0)


def test_roi_size_sets_the_pooled_patch_and_the_head_width():
    model = D.small_faster_rcnn(image_size=64, stride=4, channels=16, roi_size=5)
    assert model.roi_heads.box_roi_pool.output_size == (5, 5)
    assert model.roi_heads.box_head.fc6.in_features == 16 * 5 * 5


def test_model_returns_the_four_losses_and_detections(scenes):
    torch.manual_seed(0)
    images, targets = scenes
    model = D.small_faster_rcnn(image_size=64, stride=4, anchor_sizes=(8, 16, 32))
    model.train()
    losses = model(images[:2], targets[:2])
    assert set(losses) == set(D.LOSS_NAMES)
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model(images[:2])
    assert len(out) == 2 and set(out[0]) == {"boxes", "scores", "labels"}


def test_train_detector_history_and_predict(scenes):
    images, targets = scenes
    model = D.small_faster_rcnn(image_size=64, stride=4, anchor_sizes=(8, 16, 32))
    threads = torch.get_num_threads()
    history = D.train_detector(model, images, targets, steps=3, batch_size=2, progress=False, optimizer="adamw", lr=1e-3)
    assert torch.get_num_threads() == threads  # the single-thread training leaves torch's setting as it was
    for name in D.LOSS_NAMES + ("loss",):
        assert len(history[name]) == 3
    assert history["seconds"][0] > 0
    assert not model.training
    preds = D.predict(model, images, batch_size=4)
    assert len(preds) == len(images) and preds[0]["boxes"].device.type == "cpu"
    props = D.proposals(model, images[:2])
    assert len(props) == 2 and props[0].shape[1] == 4
    # proposals are in the original image's pixels
    assert float(props[0].max()) <= 64 + 1e-3
    _, metrics = D.evaluate_detector(model, images, targets)
    assert 0.0 <= metrics["map"] <= 1.0 and 0.0 <= metrics["voc_map_50"] <= 1.0


def test_train_detector_rejects_what_torchvision_would_crash_on(scenes):
    images, targets = scenes
    model = D.small_faster_rcnn(image_size=64, stride=4, anchor_sizes=(8, 16, 32))
    bad_labels = [dict(t, labels=t["labels"].int()) for t in targets]
    with pytest.raises(TypeError, match="int64"):
        D.train_detector(model, images, bad_labels, steps=1, progress=False)
    flat = [dict(t) for t in targets]
    flat[0] = {"boxes": torch.tensor([[3.0, 3, 3, 9]]), "labels": torch.tensor([1])}
    with pytest.raises(ValueError, match="zero width"):
        D.train_detector(model, images, flat, steps=1, progress=False)
    with pytest.raises(ValueError, match="steps"):
        D.train_detector(model, images, targets, steps=0, progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        D.train_detector(model, images, targets, steps=1, progress=False, optimizer="adam")


def test_flip_mirrors_boxes(scenes):
    images, targets = scenes
    image, target = D._flip(images[0], targets[0])
    assert torch.equal(image.flip(-1), images[0])
    back = D._flip(image, target)[1]["boxes"]
    assert torch.equal(back, targets[0]["boxes"])
    assert bool((target["boxes"][:, 2] > target["boxes"][:, 0]).all())


def test_model_anchors_are_the_exercise_reference():
    model = D.small_faster_rcnn(image_size=64, stride=4, anchor_sizes=(8, 16, 32))
    generator = model.rpn.anchor_generator
    from torchvision.models.detection.image_list import ImageList

    anchors = generator(ImageList(torch.zeros(1, 3, 64, 64), [(64, 64)]), [torch.zeros(1, 64, 16, 16)])[0]
    assert torch.equal(anchors, reference_anchors((8, 16, 32), (0.5, 1.0, 2.0), (16, 16), 4))


def test_simulated_detections_are_deterministic_and_well_formed(scenes):
    _, targets = scenes
    a = D.simulated_detections(targets, seed=1)
    b = D.simulated_detections(targets, seed=1)
    for p, q, t in zip(a, b, targets):
        assert torch.equal(p["boxes"], q["boxes"]) and torch.equal(p["scores"], q["scores"])
        assert p["labels"].dtype == torch.int64
        assert bool((p["boxes"][:, 2:] >= p["boxes"][:, :2]).all())
    result = mean_average_precision(a, targets)
    assert 0.0 < result["map_50"] <= 1.0
    perfect = D.simulated_detections(targets, seed=0, miss_rate=0.0, jitter=0.0, duplicate_rate=0.0,
                                      junk_per_image=0.0, confusion=0.0)
    assert mean_average_precision(perfect, targets, iou_thresholds=[0.5])["map"] == pytest.approx(1.0)


def test_drawings_run(scenes):
    images, targets = scenes
    preds = D.simulated_detections(targets, seed=2)
    fig, axes = plt.subplots(1, 4)
    D.draw_detections(axes[0], images[0], preds[0], targets[0], score_threshold=0.3)
    D.draw_proposals(axes[1], images[0], targets[0]["boxes"], top=5)
    flags = D.draw_matches(axes[2], images[0], preds[0], targets[0], 0.5)
    assert flags.shape == preds[0]["scores"].shape
    D.draw_pr_curve(axes[3], preds[0]["scores"], flags, len(targets[0]["boxes"]), label="x")
    assert len(axes[0].patches) >= len(targets[0]["boxes"])
    plt.close(fig)


def test_pr_curve_envelope_encloses_the_all_point_ap(scenes):
    from helpers.metrics import average_precision

    _, targets = scenes
    preds = D.simulated_detections(targets, seed=2)
    scores = torch.cat([p["scores"] for p in preds])
    is_tp = torch.rand(len(scores), generator=torch.Generator().manual_seed(0)) < 0.6
    num_gt = int(is_tp.sum()) + 3
    fig, ax = plt.subplots()
    D.draw_pr_curve(ax, scores, is_tp, num_gt, label="x", fill=True, envelope_colour="black")
    raw, envelope = ax.lines[0], ax.lines[1]
    assert envelope.get_label() == "x: envelope" and envelope.get_drawstyle() == "steps-pre"
    recall, best = envelope.get_xdata(), envelope.get_ydata()
    area = sum((recall[k] - recall[k - 1]) * best[k] for k in range(1, len(recall)))  # steps-pre: the value on the left
    assert area == pytest.approx(average_precision(scores, is_tp, num_gt, "voc"))
    assert raw.get_label() == "x" and len(ax.collections) == 1  # the shaded area
    plt.close(fig)


def _box(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def test_detection_errors_sorts_each_kind():
    target = {"boxes": _box([0, 0, 10, 10], [8, 0, 18, 10], [40, 40, 50, 50], [20, 20, 30, 30]),
              "labels": torch.tensor([1, 2, 3, 1])}
    pred = {
        "boxes": _box([0, 0, 10, 10],      # TP on object 0
                      [0, 0, 10, 11],      # duplicate on object 0
                      [8, 0, 18, 10],      # wrong class on object 1 (kept), object 1 missed: wrong class
                      [40, 40, 50, 50],    # right box, low score: object 2 missed, "low score"
                      [20, 20, 27, 27],    # loose box on object 3 (IoU 0.49): false positive, object 3 missed
                      [55, 55, 60, 60]),   # background
        "scores": torch.tensor([0.9, 0.8, 0.9, 0.3, 0.7, 0.6]),
        "labels": torch.tensor([1, 1, 3, 3, 1, 2]),
    }
    found = D.detection_errors([pred], [target])
    kinds = sorted((e["kind"], e["why"]) for e in found["errors"])
    assert kinds == sorted([("false positive", "duplicate"), ("false positive", "wrong class"), ("miss", "wrong class"),
                            ("miss", "low score"), ("false positive", "loose box"), ("miss", "loose box"),
                            ("false positive", "background")])
    assert found["misses"].tolist() == [3] and found["false_positives"].tolist() == [4]
    overlapping = {(e["kind"], e["why"]): e["overlapping"] for e in found["errors"]}
    assert overlapping[("miss", "wrong class")] and not overlapping[("miss", "low score")]
    perfect = {"boxes": target["boxes"], "scores": torch.ones(4), "labels": target["labels"]}
    assert D.detection_errors([perfect], [target])["errors"] == []
    with pytest.raises(ValueError, match="same length"):
        D.detection_errors([perfect], [])
