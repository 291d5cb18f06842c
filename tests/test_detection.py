"""helpers.detection (the small Faster R-CNN, its batches and losses for fit, detecting), and its drawings
in helpers.plot and the pretend detector in helpers.metrics."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from helpers import detection as D
from helpers.data import ShapesScenes, render
from helpers.simulate import simulated_detections
from helpers.plot import draw_detections, draw_matches, draw_pr_curve, draw_proposals
from helpers.train import fit
from helpers.exercises.nb03 import reference_anchors
from helpers.metrics import mean_average_precision


@pytest.fixture(scope="module")
def scenes():
    return render(ShapesScenes(6, size=64, seed=3), "targets")


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
    with pytest.raises(ValueError, match="positive_fraction"):
        D.small_faster_rcnn(positive_fraction=0)


def test_positive_fraction_reaches_the_heads_sampler():
    assert D.small_faster_rcnn().roi_heads.fg_bg_sampler.positive_fraction == 0.25
    assert D.small_faster_rcnn(positive_fraction=0.5).roi_heads.fg_bg_sampler.positive_fraction == 0.5


def test_fewer_proposals_in_training_than_at_test_time():
    """The docstring's settings: a cheaper NMS in training, more recall (and low scores) at test time."""
    model = D.small_faster_rcnn(image_size=64, stride=4)
    assert model.rpn._pre_nms_top_n == {"training": 150, "testing": 300}
    assert model.rpn._post_nms_top_n == {"training": 50, "testing": 100}
    assert model.roi_heads.score_thresh == 0.01 and model.roi_heads.detections_per_img == 50


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


def test_fit_trains_a_detector_then_detect_and_proposals(scenes):
    images, targets = scenes
    model = D.small_faster_rcnn(image_size=64, stride=4, anchor_sizes=(8, 16, 32))
    batches = D.random_scene_batches(images, targets, batch_size=2)
    history = fit(model, batches, D.detection_losses, steps=3, lr=1e-3, clip_grad_norm=10.0, progress=False)
    for name in D.LOSS_NAMES + ("loss",):
        assert len(history[name]) == 3
    assert not model.training
    preds = D.detect(model, images, batch_size=4)
    assert len(preds) == len(images) and preds[0]["boxes"].device.type == "cpu"
    props = D.proposals(model, images[:2])
    assert len(props) == 2 and props[0].shape[1] == 4
    # proposals are in the original image's pixels
    assert float(props[0].max()) <= 64 + 1e-3
    _, metrics = D.evaluate_detector(model, images, targets)
    assert 0.0 <= metrics["map"] <= 1.0 and 0.0 <= metrics["voc_map_50"] <= 1.0


def test_scene_batches_refuse_what_torchvision_would_crash_on(scenes):
    images, targets = scenes
    bad_labels = [dict(t, labels=t["labels"].int()) for t in targets]
    with pytest.raises(TypeError, match="int64"):
        next(D.random_scene_batches(images, bad_labels, batch_size=2))
    flat = [dict(t) for t in targets]
    flat[0] = {"boxes": torch.tensor([[3.0, 3, 3, 9]]), "labels": torch.tensor([1])}
    with pytest.raises(ValueError, match="zero width"):
        next(D.random_scene_batches(images, flat, batch_size=2))
    with pytest.raises(ValueError, match="same length"):
        next(D.random_scene_batches(images, targets[:2], batch_size=2))
    with pytest.raises(ValueError, match="batch_size"):
        next(D.random_scene_batches(images, targets, batch_size=0))


def test_scene_batches_are_mirrored_copies_of_the_scenes(scenes):
    images, targets = scenes
    xs, ys = next(D.random_scene_batches(images, targets, batch_size=12, seed=1))
    mirrored = 0
    for x, y in zip(xs, ys):
        k = next(k for k in range(len(images)) if torch.equal(x, images[k]) or torch.equal(x, images[k].flip(-1)))
        if torch.equal(x, images[k]) and not torch.equal(x, images[k].flip(-1)):
            assert torch.equal(y["boxes"], targets[k]["boxes"])
        else:
            mirrored += 1
            assert torch.equal(y["boxes"], D.mirrored(images[k], targets[k])[1]["boxes"])
        assert torch.equal(y["labels"], targets[k]["labels"])
    assert 0 < mirrored < 12
    unflipped = next(D.random_scene_batches(images, targets, batch_size=12, seed=1, flip=False))[0]
    assert all(any(torch.equal(x, image) for image in images) for x in unflipped)


def test_mirrored_reflects_boxes(scenes):
    images, targets = scenes
    image, target = D.mirrored(images[0], targets[0])
    assert torch.equal(image.flip(-1), images[0])
    back = D.mirrored(image, target)[1]["boxes"]
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
    a = simulated_detections(targets, seed=1)
    b = simulated_detections(targets, seed=1)
    for p, q, t in zip(a, b, targets):
        assert torch.equal(p["boxes"], q["boxes"]) and torch.equal(p["scores"], q["scores"])
        assert p["labels"].dtype == torch.int64
        assert bool((p["boxes"][:, 2:] >= p["boxes"][:, :2]).all())
    result = mean_average_precision(a, targets)
    assert 0.0 < result["map_50"] <= 1.0
    perfect = simulated_detections(targets, seed=0, miss_rate=0.0, jitter=0.0, duplicate_rate=0.0,
                                      junk_per_image=0.0, confusion=0.0)
    assert mean_average_precision(perfect, targets, iou_thresholds=[0.5])["map"] == pytest.approx(1.0)


def test_drawings_run(scenes):
    images, targets = scenes
    preds = simulated_detections(targets, seed=2)
    fig, axes = plt.subplots(1, 4)
    draw_detections(axes[0], images[0], preds[0], targets[0], score_threshold=0.3)
    draw_proposals(axes[1], images[0], targets[0]["boxes"], top=5)
    flags = draw_matches(axes[2], images[0], preds[0], targets[0], 0.5)
    assert flags.shape == preds[0]["scores"].shape
    draw_pr_curve(axes[3], preds[0]["scores"], flags, len(targets[0]["boxes"]), label="x")
    assert len(axes[0].patches) >= len(targets[0]["boxes"])
    plt.close(fig)


def test_pr_curve_envelope_encloses_the_all_point_ap(scenes):
    from helpers.metrics import average_precision

    _, targets = scenes
    preds = simulated_detections(targets, seed=2)
    scores = torch.cat([p["scores"] for p in preds])
    is_tp = torch.rand(len(scores), generator=torch.Generator().manual_seed(0)) < 0.6
    num_gt = int(is_tp.sum()) + 3
    fig, ax = plt.subplots()
    draw_pr_curve(ax, scores, is_tp, num_gt, label="x", fill=True, envelope_colour="black")
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


@pytest.mark.parametrize("bins", [1, 5, 7])
def test_bin_centre_roi_align_equals_torchvisions_with_one_sample(bins):
    """Values and gradients: random features, proposals of every size, some on the image's edge, one
    narrower than a cell, an image without proposals, and images of two sizes padded into one batch."""
    from torchvision.ops import MultiScaleRoIAlign

    g = torch.Generator().manual_seed(bins)
    features = torch.randn(3, 8, 16, 16, generator=g, dtype=torch.float64)
    image_shapes = [(64, 64), (64, 48), (60, 64)]
    proposals = []
    for (h, w), n in zip(image_shapes, (12, 0, 9)):
        xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([w - 2.0, h - 2.0], dtype=torch.float64)
        wh = 0.5 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 40
        proposals.append(torch.cat([xy, torch.minimum(xy + wh, torch.tensor([w, h], dtype=torch.float64))], 1))
    proposals[0][0] = torch.tensor([0.0, 0.0, 64.0, 64.0], dtype=torch.float64)  # the whole image
    proposals[0][1] = torch.tensor([10.0, 20.0, 11.0, 20.5], dtype=torch.float64)  # under a cell wide
    ours, theirs = D.BinCentreRoIAlign(bins), MultiScaleRoIAlign(["0"], bins, sampling_ratio=1)
    a_in, b_in = features.clone().requires_grad_(), features.clone().requires_grad_()
    a = ours({"0": a_in}, proposals, image_shapes)
    b = theirs({"0": b_in}, proposals, image_shapes)
    assert a.shape == b.shape == (21, 8, bins, bins)
    assert torch.allclose(a, b, atol=1e-10)
    weights = torch.randn(a.shape, generator=g, dtype=torch.float64)
    (a * weights).sum().backward()
    (b * weights).sum().backward()
    assert torch.allclose(a_in.grad, b_in.grad, atol=1e-10)


def test_the_model_pools_with_bin_centres_only_at_one_sample_per_bin():
    from torchvision.ops import MultiScaleRoIAlign

    assert isinstance(D.small_faster_rcnn(sampling_ratio=1).roi_heads.box_roi_pool, D.BinCentreRoIAlign)
    assert type(D.small_faster_rcnn(sampling_ratio=2).roi_heads.box_roi_pool) is MultiScaleRoIAlign
    with pytest.raises(ValueError, match="output_size"):
        D.BinCentreRoIAlign(0)


# --- the RPN losses of notebook 03's exercise, positives per step, the mask head ---------------


def _small_detector():
    torch.manual_seed(0)
    return D.small_faster_rcnn(image_size=64, stride=4, anchor_sizes=(8, 16, 32), aspect_ratios=(1.0,), sampling_ratio=1,
                               roi_size=5, rois_per_image=32, positive_fraction=0.5)


def _scene_batch(n=3, masks=False):
    scenes = ShapesScenes(n, size=64, seed=5)
    keys = ("boxes", "labels", "masks") if masks else ("boxes", "labels")
    return [scenes[i][0] for i in range(n)], [{k: scenes[i][1][k] for k in keys} for i in range(n)]


def test_use_rpn_losses_with_the_reference_gives_torchvision_s_losses():
    from helpers.exercises.nb03 import reference_rpn_losses

    model = _small_detector().train()
    images, targets = _scene_batch()
    torch.manual_seed(1)
    before = model(images, targets)
    D.use_rpn_losses(model, reference_rpn_losses)
    torch.manual_seed(1)
    after = model(images, targets)
    for name in D.LOSS_NAMES:
        assert torch.allclose(before[name], after[name], atol=1e-6), name


def test_record_head_positives_counts_once_per_step():
    model = _small_detector().train()
    counts = D.record_head_positives(model)
    model(*_scene_batch())
    assert len(counts) == 1 and 1 <= counts[0] <= 16  # the true boxes are proposals too; at most half of 32


def test_mask_head_adds_the_fifth_loss_and_trains_only_itself():
    model = D.add_mask_head(_small_detector()).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("roi_heads.mask_head", "roi_heads.mask_predictor")) for n in trainable)
    losses = D.mask_losses(model, _scene_batch(masks=True))
    assert set(losses) == {"loss_mask"} and losses["loss_mask"].requires_grad
    model.eval()
    out = D.detect(model, _scene_batch()[0][:1])[0]
    assert out["masks"].shape[1:] == (1, 64, 64)


def test_mask_average_precision_is_one_for_the_truth_and_zero_for_misses():
    _, targets = _scene_batch(masks=True)
    perfect = [{"masks": t["masks"][:, None].float(), "scores": torch.ones(len(t["labels"])), "labels": t["labels"]} for t in targets]
    assert D.mask_average_precision(perfect, targets)["map"] == pytest.approx(1.0)
    shifted = [dict(p, masks=p["masks"].roll(20, dims=-1)) for p in perfect]
    assert D.mask_average_precision(shifted, targets)["map"] < 0.5
