"""helpers.boxes against torchvision.ops: IoU, NMS, box coding, formats, and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torchvision.models.detection._utils import BoxCoder

from helpers import boxes as B


def random_boxes(n: int, seed: int, size: float = 100.0, integer: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3
    boxes = torch.cat([xy, xy + wh], 1)
    return boxes.round() if integer else boxes


EDGE_PAIRS = {
    "identical": (torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[0.0, 0, 10, 10]])),
    "touching edges": (torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[10.0, 0, 20, 10]])),
    "disjoint": (torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[5.0, 5, 6, 6]])),
    "nested": (torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[2.0, 2, 4, 4]])),
    "zero-width with a box": (torch.tensor([[3.0, 0, 3, 10]]), torch.tensor([[0.0, 0, 10, 10]])),
    "two points": (torch.tensor([[3.0, 3, 3, 3]]), torch.tensor([[3.0, 3, 3, 3]])),
}


@pytest.mark.parametrize("seed", range(5))
def test_box_iou_equals_torchvision_on_random_boxes(seed):
    a, b = random_boxes(37, seed), random_boxes(23, seed + 100)
    assert torch.equal(B.box_iou(a, b), torchvision.ops.box_iou(a, b))
    ai, bi = random_boxes(20, seed, integer=True), random_boxes(15, seed + 1, integer=True)
    torch.testing.assert_close(B.box_iou(ai, bi), torchvision.ops.box_iou(ai, bi), equal_nan=True)


@pytest.mark.parametrize("case", EDGE_PAIRS)
def test_box_iou_edge_cases_match_torchvision(case):
    a, b = EDGE_PAIRS[case]
    torch.testing.assert_close(B.box_iou(a, b), torchvision.ops.box_iou(a, b), equal_nan=True, rtol=0, atol=0)


def test_box_iou_values_by_hand():
    a = torch.tensor([[0.0, 0, 2, 2]])
    b = torch.tensor([[1.0, 1, 3, 3], [0.0, 0, 2, 2], [2.0, 2, 4, 4]])
    torch.testing.assert_close(B.box_iou(a, b), torch.tensor([[1 / 7, 1.0, 0.0]]))


@pytest.mark.parametrize("n, m", [(0, 5), (5, 0), (0, 0)])
def test_box_iou_empty_inputs(n, m):
    a, b = random_boxes(n, 0), random_boxes(m, 1)
    got, want = B.box_iou(a, b), torchvision.ops.box_iou(a, b)
    assert got.shape == want.shape == (n, m)


def test_box_iou_float64_and_device_mismatch_message():
    a, b = random_boxes(4, 0).double(), random_boxes(3, 1).double()
    assert B.box_iou(a, b).dtype == torch.float64
    torch.testing.assert_close(B.box_iou(a, b), torchvision.ops.box_iou(a, b))


@pytest.mark.parametrize("seed", range(3))
def test_paired_box_iou_is_the_diagonal(seed):
    a, b = random_boxes(30, seed), random_boxes(30, seed + 7)
    b[::3] = a[::3]  # some identical pairs
    torch.testing.assert_close(B.paired_box_iou(a, b), torchvision.ops.box_iou(a, b).diagonal(), rtol=0, atol=0)
    assert B.paired_box_iou(a[:0], b[:0]).shape == (0,)


def test_paired_box_iou_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="same shape"):
        B.paired_box_iou(random_boxes(3, 0), random_boxes(4, 0))


BAD_BOXES = {
    "x2 < x1": (torch.tensor([[5.0, 0, 4, 10]]), ValueError, "x2 >= x1"),
    "y2 < y1": (torch.tensor([[0.0, 5, 4, 1]]), ValueError, "y2 >= y1"),
    "NaN": (torch.tensor([[0.0, float("nan"), 4, 10]]), ValueError, "finite"),
    "inf": (torch.tensor([[0.0, 0, float("inf"), 10]]), ValueError, "finite"),
    "three columns": (torch.zeros(2, 3), ValueError, r"\[N, 4\]"),
    "1-D": (torch.zeros(4), ValueError, r"\[N, 4\]"),
    "a list": ([[0, 0, 1, 1]], TypeError, "torch.Tensor"),
    "bool": (torch.zeros(1, 4, dtype=torch.bool), TypeError, "real"),
}


@pytest.mark.parametrize("case", BAD_BOXES)
@pytest.mark.parametrize("which", ["boxes1", "boxes2"])
def test_box_iou_bad_inputs_name_the_argument(case, which):
    bad, error, text = BAD_BOXES[case]
    good = torch.tensor([[0.0, 0, 1, 1]])
    args = (bad, good) if which == "boxes1" else (good, bad)
    with pytest.raises(error, match=text) as info:
        B.box_iou(*args)
    assert which in str(info.value)
    with pytest.raises(error, match=text):
        B.paired_box_iou(*args)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_equals_torchvision(seed, threshold):
    boxes = random_boxes(60, seed, size=50)
    scores = torch.rand(60, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(B.nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold))


@pytest.mark.parametrize("seed", range(4))
def test_nms_with_tied_scores_and_duplicates_equals_torchvision(seed):
    boxes = random_boxes(40, seed, size=40, integer=True)
    boxes = torch.cat([boxes, boxes[:10]])  # exact duplicates
    scores = (torch.rand(50, generator=torch.Generator().manual_seed(seed)) * 4).round() / 4  # many ties
    assert torch.equal(B.nms(boxes, scores, 0.5), torchvision.ops.nms(boxes, scores, 0.5))


def test_nms_empty_and_single():
    empty = B.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.dtype == torch.int64 and empty.shape == (0,)
    assert B.nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([0.3]), 0.5).tolist() == [0]


def test_nms_bad_inputs():
    boxes = random_boxes(3, 0)
    with pytest.raises(ValueError, match="scores must have shape"):
        B.nms(boxes, torch.rand(4), 0.5)
    with pytest.raises(TypeError, match="scores"):
        B.nms(boxes, [0.1, 0.2, 0.3], 0.5)
    with pytest.raises(ValueError, match="NaN"):
        B.nms(boxes, torch.tensor([0.1, float("nan"), 0.3]), 0.5)
    with pytest.raises(TypeError, match="iou_threshold"):
        B.nms(boxes, torch.rand(3), "0.5")
    with pytest.raises(ValueError, match="boxes"):
        B.nms(torch.tensor([[1.0, 0, 0, 1]]), torch.rand(1), 0.5)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_encode_decode_equal_torchvision_box_coder(weights):
    coder = BoxCoder(weights)
    boxes = random_boxes(40, 0) + torch.tensor([0, 0, 1, 1.0])
    anchors = random_boxes(40, 1) + torch.tensor([0, 0, 1, 1.0])
    assert torch.equal(B.encode_boxes(boxes, anchors, weights), coder.encode_single(boxes, anchors))
    deltas = torch.randn(40, 4, generator=torch.Generator().manual_seed(2))
    deltas[0, 2] = 20.0  # beyond the clip
    assert torch.equal(B.decode_boxes(deltas, anchors, weights), coder.decode_single(deltas, anchors))


def test_encode_then_decode_round_trips():
    boxes = random_boxes(25, 3) + torch.tensor([0, 0, 0.5, 0.5])
    anchors = random_boxes(25, 4) + torch.tensor([0, 0, 0.5, 0.5])
    for weights in [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]:
        back = B.decode_boxes(B.encode_boxes(boxes, anchors, weights), anchors, weights)
        torch.testing.assert_close(back, boxes, atol=1e-4, rtol=1e-5)


def test_encode_known_values():
    anchor = torch.tensor([[0.0, 0, 10, 20]])
    box = torch.tensor([[5.0, 0, 15, 40]])  # centre moves by (5, 10), height doubles
    torch.testing.assert_close(B.encode_boxes(box, anchor), torch.tensor([[0.5, 0.5, 0.0, math.log(2)]]))


def test_coding_bad_inputs():
    with pytest.raises(ValueError, match="anchors must have positive width"):
        B.encode_boxes(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[0.0, 0, 0, 1]]))
    with pytest.raises(ValueError, match="weights"):
        B.encode_boxes(random_boxes(2, 0), random_boxes(2, 1), weights=(1, 1, 1))
    with pytest.raises(ValueError, match="same shape"):
        B.decode_boxes(torch.zeros(3, 4), random_boxes(2, 1))
    with pytest.raises(TypeError, match="deltas"):
        B.decode_boxes(torch.zeros(2, 4, dtype=torch.int64), random_boxes(2, 1))


@pytest.mark.parametrize("shape", [(5,), (2, 3)])
def test_iou_matrix_broadcasts_over_leading_dimensions(shape):
    """One call on a batch of box sets gives what box_iou gives set by set."""
    sets1 = random_boxes(int(torch.tensor(shape).prod()) * 4, 3).reshape(*shape, 4, 4)
    sets2 = random_boxes(int(torch.tensor(shape).prod()) * 6, 4).reshape(*shape, 6, 4)
    batched = B.iou_matrix(sets1, sets2)
    assert batched.shape == (*shape, 4, 6)
    for index in torch.cartesian_prod(*[torch.arange(n) for n in shape]).reshape(-1, len(shape)).tolist():
        torch.testing.assert_close(batched[tuple(index)], torchvision.ops.box_iou(sets1[tuple(index)], sets2[tuple(index)]))
