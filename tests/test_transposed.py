"""The three views of transposed convolution against torch.nn.functional.conv_transpose2d."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from helpers import transposed
from helpers.transposed import (
    conv_transpose2d,
    conv_transpose2d_matrix,
    conv_transpose2d_zero_insertion,
    conv_transpose_output_size,
    convolution_matrix,
)

VIEWS = [conv_transpose2d, conv_transpose2d_zero_insertion, conv_transpose2d_matrix]


def random_configurations(count: int, seed: int):
    """Random valid (x, weight, bias, stride, padding, output_padding, groups, dilation) in float64."""
    rng = random.Random(seed)
    found = []
    while len(found) < count:
        groups = rng.choice([1, 1, 2, 3])
        c_in, c_out = groups * rng.randint(1, 2), groups * rng.randint(1, 2)
        k = (rng.randint(1, 4), rng.randint(1, 4))
        s = (rng.randint(1, 3), rng.randint(1, 3))
        d = (rng.randint(1, 3), rng.randint(1, 3))
        op = (rng.randint(0, max(s[0], d[0]) - 1), rng.randint(0, max(s[1], d[1]) - 1))
        p = (rng.randint(0, 2), rng.randint(0, 2))
        h, w = rng.randint(1, 5), rng.randint(1, 5)
        if min((h - 1) * s[0] - 2 * p[0] + d[0] * (k[0] - 1) + op[0] + 1, (w - 1) * s[1] - 2 * p[1] + d[1] * (k[1] - 1) + op[1] + 1) < 1:
            continue
        g = torch.Generator().manual_seed(rng.randint(0, 10**6))
        x = torch.randn(rng.randint(1, 2), c_in, h, w, generator=g, dtype=torch.float64)
        weight = torch.randn(c_in, c_out // groups, *k, generator=g, dtype=torch.float64)
        bias = torch.randn(c_out, generator=g, dtype=torch.float64) if rng.random() < 0.5 else None
        found.append((x, weight, bias, s, p, op, groups, d))
    return found


CONFIGS = random_configurations(150, seed=0)


@pytest.mark.parametrize("view", VIEWS, ids=lambda f: f.__name__)
def test_every_view_equals_torch_on_random_configurations(view):
    for x, weight, bias, s, p, op, groups, d in CONFIGS:
        expected = F.conv_transpose2d(x, weight, bias, s, p, op, groups, d)
        got = view(x, weight, bias, stride=s, padding=p, output_padding=op, groups=groups, dilation=d)
        assert got.shape == expected.shape, (s, p, op, groups, d)
        assert torch.allclose(got, expected, atol=1e-6, rtol=0), (s, p, op, groups, d)


@pytest.mark.parametrize("view", VIEWS, ids=lambda f: f.__name__)
def test_every_combination_of_options_with_and_without_bias(view):
    g = torch.Generator().manual_seed(1)
    for s in (1, 2, 3):
        for p in (0, 1):
            for d in (1, 2):
                for op in range(max(s, d)):
                    for groups in (1, 2):
                        for with_bias in (False, True):
                            x = torch.randn(2, 4, 3, 4, generator=g, dtype=torch.float64)
                            weight = torch.randn(4, 3, 3, 2, generator=g, dtype=torch.float64)
                            bias = torch.randn(3 * groups, generator=g, dtype=torch.float64) if with_bias else None
                            expected = F.conv_transpose2d(x, weight, bias, s, p, op, groups, d)
                            got = view(x, weight, bias, s, p, op, groups, d)
                            assert torch.allclose(got, expected, atol=1e-6, rtol=0), (s, p, d, op, groups, with_bias)


def test_handout_problem_2():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    expected = torch.tensor([[0.0, 0.0, 1.0], [0.0, 4.0, 6.0], [4.0, 12.0, 9.0]])
    for view in VIEWS:
        assert torch.equal(view(x, x.clone())[0, 0], expected)


def test_unbatched_input_and_float32():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 4, 4, generator=g)
    weight = torch.randn(3, 2, 3, 3, generator=g)
    for view in VIEWS:
        assert torch.allclose(view(x, weight, stride=2), F.conv_transpose2d(x, weight, stride=2), atol=1e-5)


def test_scatter_form_carries_gradients():
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: conv_transpose2d(a, b, stride=2, padding=1), (x, weight))


def test_convolution_matrix_is_the_convolution():
    rng = random.Random(3)
    for _ in range(40):
        groups = rng.choice([1, 2])
        c_in, c_out = groups * rng.randint(1, 2), groups * rng.randint(1, 2)
        k, s, p, d = rng.randint(1, 3), rng.randint(1, 3), rng.randint(0, 2), rng.randint(1, 2)
        h, w = rng.randint(d * (k - 1) + 1, 7), rng.randint(d * (k - 1) + 1, 7)
        weight = torch.randn(c_out, c_in // groups, k, k, dtype=torch.float64)
        x = torch.randn(c_in, h, w, dtype=torch.float64)
        C = convolution_matrix(weight, (h, w), stride=s, padding=p, dilation=d, groups=groups)
        y = F.conv2d(x[None], weight, stride=s, padding=p, dilation=d, groups=groups)
        assert C.shape == (y.numel(), x.numel())
        assert torch.allclose(C @ x.flatten(), y.flatten(), atol=1e-9)


def test_transpose_of_the_matrix_is_the_adjoint():
    # <conv(x), y> == <x, conv_transpose(y)>: the defining property of the transpose
    g = torch.Generator().manual_seed(4)
    weight = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)  # conv: 2 -> 3 channels
    x = torch.randn(1, 2, 7, 7, generator=g, dtype=torch.float64)
    y = torch.randn(1, 3, 3, 3, generator=g, dtype=torch.float64)
    conv_x = F.conv2d(x, weight, stride=2)
    assert conv_x.shape == y.shape
    assert torch.allclose((conv_x * y).sum(), (x * conv_transpose2d(y, weight, stride=2)).sum())


def test_zero_insertion_and_flipped_weight():
    x = torch.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    assert torch.equal(transposed.insert_zeros(x, 2)[0, 0], torch.tensor([[1.0, 0, 2], [0, 0, 0], [3, 0, 4]]))
    weight = torch.arange(8.0).reshape(2, 1, 2, 2)
    flipped = transposed.flipped_conv_weight(weight)
    assert flipped.shape == (1, 2, 2, 2)
    assert torch.equal(flipped[0, 1], torch.tensor([[7.0, 6], [5, 4]]))


@pytest.mark.parametrize("size,k,s,p,op,d", [(2, 2, 1, 0, 0, 1), (8, 2, 2, 0, 0, 1), (5, 3, 2, 1, 1, 1), (4, 3, 1, 2, 0, 2)])
def test_output_size_formula_matches_torch(size, k, s, p, op, d):
    out = F.conv_transpose2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, k, k), stride=s, padding=p, output_padding=op, dilation=d)
    assert conv_transpose_output_size(size, k, s, p, op, d) == out.shape[-1]


def test_overlap_counts_show_the_checkerboard():
    even = transposed.overlap_counts(6, 4, 2)[3:-3, 3:-3]
    uneven = transposed.overlap_counts(6, 3, 2)[3:-3, 3:-3]
    assert even.unique().tolist() == [4.0]
    assert uneven.unique().tolist() == [1.0, 2.0, 4.0]


def test_resize_conv_keeps_a_constant_image_constant_and_transposed_k3_does_not():
    x = torch.ones(1, 1, 8, 8)
    with torch.no_grad():
        resized = transposed.upsampling_stack("resize-conv")(x)[0, 0]
        checker = transposed.upsampling_stack("transposed k3")(x)[0, 0]
    inner = slice(8, -8)
    assert resized.shape == checker.shape == (64, 64)
    assert resized[inner, inner].std() / resized[inner, inner].mean() < 1e-5
    assert checker[inner, inner].std() / checker[inner, inner].mean() > 0.05


def test_scatter_steps_end_at_the_full_output():
    x, k = torch.tensor([[0.0, 1.0], [2.0, 3.0]]), torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    steps = transposed.scatter_steps(x, k, stride=2)
    assert len(steps) == 4
    assert torch.equal(steps[-1][2], F.conv_transpose2d(x[None, None].double(), k[None, None].double(), stride=2)[0, 0])


@pytest.mark.parametrize("kwargs,match", [
    (dict(input=torch.zeros(1, 3, 4, 4), weight=torch.zeros(3, 1, 2, 2), groups=2), "divisible by groups"),
    (dict(input=torch.zeros(1, 3, 4, 4), weight=torch.zeros(2, 1, 2, 2)), r"weight.shape\[0\]"),
    (dict(input=torch.zeros(1, 1, 4, 4), weight=torch.zeros(1, 1, 2, 2), stride=2, output_padding=2), "output_padding must be smaller"),
    (dict(input=torch.zeros(1, 1, 4, 4), weight=torch.zeros(1, 1, 2, 2), stride=0), "stride must be at least 1"),
    (dict(input=torch.zeros(1, 1, 4, 4), weight=torch.zeros(1, 1, 2, 2), padding=-1), "padding must be at least 0"),
    (dict(input=torch.zeros(1, 1, 1, 1), weight=torch.zeros(1, 1, 1, 1), padding=1), "too large"),
    (dict(input=torch.zeros(1, 1, 4, 4), weight=torch.zeros(1, 1, 2, 2), bias=torch.zeros(3)), "bias must be"),
    (dict(input=torch.zeros(4, 4), weight=torch.zeros(1, 1, 2, 2)), "input must be"),
    (dict(input=torch.zeros(1, 1, 4, 4), weight=torch.zeros(1, 2, 2)), "weight must be"),
])
@pytest.mark.parametrize("view", VIEWS, ids=lambda f: f.__name__)
def test_bad_arguments_get_clear_errors(view, kwargs, match):
    with pytest.raises(ValueError, match=match):
        view(**kwargs)


def test_bad_types_get_clear_errors():
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        conv_transpose2d([[1.0]], torch.zeros(1, 1, 1, 1))
    with pytest.raises(TypeError, match="floating point"):
        conv_transpose2d(torch.zeros(1, 1, 2, 2, dtype=torch.int64), torch.zeros(1, 1, 1, 1))
    with pytest.raises(TypeError, match="stride must be an int"):
        conv_transpose2d(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 1, 1), stride=1.5)
    with pytest.raises(ValueError, match="kernel_size"):
        conv_transpose_output_size(3, 0)


@pytest.mark.parametrize("kh,kw,stride", [(2, 2, 2), (3, 3, 2), (4, 4, 2), (5, 3, 3), (2, 2, 3), (3, 4, 1)])
def test_phase_sums_are_the_inside_of_an_all_ones_input(kh, kw, stride):
    g = torch.Generator().manual_seed(kh * 10 + kw + stride)
    kernel = torch.rand(kh, kw, generator=g, dtype=torch.float64)
    out = F.conv_transpose2d(torch.ones(1, 1, 9, 9, dtype=torch.float64), kernel[None, None], stride=stride)[0, 0]
    sums = transposed.phase_sums(kernel, stride)
    assert sums.shape == (stride, stride) and sums.dtype == torch.float64
    for y in range(kh, out.shape[0] - kh):
        for x in range(kw, out.shape[1] - kw):
            assert torch.isclose(out[y, x], sums[y % stride, x % stride])


def test_phase_sums_separate_counts_from_weights():
    # 2x2, stride 2: even counts, but a constant input comes out as the kernel tiled
    k = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert torch.equal(transposed.phase_sums(k, 2), k)
    # bilinear 3x3, stride 2: uneven counts, equal sums (a flat output)
    b = torch.tensor([0.5, 1.0, 0.5])
    assert torch.equal(transposed.phase_sums(torch.outer(b, b), 2), torch.ones(2, 2))
    with pytest.raises(ValueError, match="kernel"):
        transposed.phase_sums(torch.ones(1, 1, 2, 2), 2)
    with pytest.raises(ValueError, match="stride"):
        transposed.phase_sums(torch.ones(2, 2), 0)
