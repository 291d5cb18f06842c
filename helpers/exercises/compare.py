"""Comparisons for the exercise checks: each takes (expected, got) and returns None when `got` is right,
else one sentence saying what differs. They never reveal the expected values."""

from __future__ import annotations

import math
from typing import Any

import torch



def describe(value: Any) -> str:
    """A short description of any value's type (and shape and dtype for arrays)."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {list(value.shape)} and dtype {value.dtype}"
    if type(value).__module__ == "numpy":
        return f"a numpy {type(value).__name__}; return a torch.Tensor instead"
    if value is None:
        return "None (did you forget a `return`?)"
    return f"a {type(value).__name__}"


def compare_tensors(
    expected: torch.Tensor, got: Any, atol: float = 1e-5, rtol: float = 1e-4, exact_dtype: bool = False
) -> str | None:
    """Compare a tensor answer with the reference: type, shape, kind of dtype, then values.

    With `exact_dtype`, the dtype must be the reference's (float64 where float32 is asked for fails).
    A one-element tensor is judged like a number: the message says which way it is off.
    """
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor, got {describe(got)}"
    if got.shape != expected.shape:
        return f"expected shape {list(expected.shape)}, got {list(got.shape)}"
    if expected.is_floating_point() and not got.is_floating_point():
        return f"expected a floating-point tensor, got dtype {got.dtype}"
    if not expected.is_floating_point() and got.is_floating_point():
        return f"expected an integer tensor ({expected.dtype}), got dtype {got.dtype}"
    if expected.dtype == torch.bool and got.dtype != torch.bool:
        return f"expected a boolean tensor, got dtype {got.dtype}"
    if exact_dtype and got.dtype != expected.dtype:
        return f"expected dtype {expected.dtype}, got {got.dtype}"
    if got.requires_grad and not expected.requires_grad:
        got = got.detach()
    got64 = got.detach().to("cpu", torch.float64)
    exp64 = expected.detach().to("cpu", torch.float64)
    if got.numel() == 0:
        return None
    nan_got, nan_exp = torch.isnan(got64), torch.isnan(exp64)
    if not torch.equal(nan_got, nan_exp):
        where = tuple(torch.nonzero(nan_got != nan_exp)[0].tolist())
        return f"NaN where there should be none (or the reverse), first at index {where}"
    close = torch.isclose(got64, exp64, atol=atol, rtol=rtol) | (nan_got & nan_exp)
    if bool(close.all()):
        return None
    if got.numel() == 1:
        return how_far_off(float(exp64.reshape(())), float(got64.reshape(())))
    bad = int((~close).sum())
    err = (got64 - exp64).abs().nan_to_num(0.0)
    where = tuple(torch.nonzero(~close)[0].tolist()) if got.dim() else ()
    return (
        f"{bad} of {got.numel()} values differ; largest difference {float(err.max()):.3g}"
        + (f", first at index {where}" if where else "")
    )


def compare_detached(expected: torch.Tensor, got: Any) -> str | None:
    """`compare_tensors`, after insisting that the answer is detached (a step of an optimisation loop
    that returns a tensor still on the autograd graph makes the next step backpropagate through it)."""
    if isinstance(got, torch.Tensor) and (got.requires_grad or got.grad_fn is not None):
        return ("your result is still attached to the autograd graph (it has requires_grad=True): return it "
                "detached, e.g. `(...).detach()`, so that the next step does not backpropagate through this one")
    return compare_tensors(expected, got)


def randomly_weighted(model: "torch.nn.Module", seed: int, scale: float) -> "torch.nn.Module":
    """`model` with every parameter redrawn from N(0, scale²) by a generator seeded with `seed`: a fixed
    small network for exercise cases, the same on every machine. Returns `model` itself."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model


def compare_scalars(expected: float, got: Any, atol: float = 1e-6, rtol: float = 1e-4) -> str | None:
    """Compare a number (Python, numpy or 0-d/1-element tensor) with the reference."""
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            return f"expected a single number, got {describe(got)}"
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)) and type(got).__module__ != "numpy":
        return f"expected a number, got {describe(got)}"
    try:
        got = float(got)
    except (TypeError, ValueError):
        return f"expected a number, got {describe(got)}"
    if math.isnan(got):
        return "got NaN"
    if math.isclose(got, float(expected), abs_tol=atol, rel_tol=rtol):
        return None
    return how_far_off(float(expected), got)


def how_far_off(expected: float, got: float) -> str:
    """Which way a wrong number is off, and roughly by how much of the expected size (never the value)."""
    if math.isinf(got) or math.isnan(got):
        return f"got {got}"
    direction = "too large" if got > expected else "too small"
    if expected == 0:
        return f"that number is {direction}: it should be 0"
    if (got > 0) != (expected > 0) and got != 0:
        return f"that number has the wrong sign (it is {direction})"
    ratio = abs(got - expected) / abs(expected)
    if ratio < 0.1:
        size = "slightly, by less than 10% of its size"
    elif ratio < 0.5:
        size = "by 10% to 50% of its size"
    elif ratio < 2:
        size = "by 50% to 200% of its size"
    else:
        size = "by more than twice its size"
    return f"that number is {direction}, {size}"


def compare_exact(expected: Any, got: Any) -> str | None:
    """Equality, for strings, choices and small Python values."""
    if type(got) is not type(expected):
        return f"expected a {type(expected).__name__}, got {describe(got)}"
    return None if got == expected else "that answer is not right"


def compare_auto(expected: Any, got: Any) -> str | None:
    """Pick a comparison from the reference's type; tuples and lists compare element by element.

    A tuple must come back as a tuple and a list as a list; a wrong item is named by its place,
    e.g. "item [2][0]: that number is too large, ...".
    """
    if isinstance(expected, torch.Tensor):
        return compare_tensors(expected, got)
    if isinstance(expected, (tuple, list)):
        kind = type(expected).__name__
        if not isinstance(got, (tuple, list)):
            return f"expected a {kind} of {len(expected)} items, got {describe(got)}"
        if type(got) is not type(expected):
            return f"expected a {kind}, got a {type(got).__name__} (of {len(got)} items)"
        if len(got) != len(expected):
            return f"expected a {kind} of {len(expected)} items, got {len(got)} items"
        for i, (e, g) in enumerate(zip(expected, got)):
            diff = compare_auto(e, g)
            if diff:
                if diff.startswith("item ["):  # nested: item [i][j]: ...
                    return f"item [{i}]{diff[len('item '):]}"
                return f"item [{i}]: {diff}"
        return None
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return compare_scalars(expected, got)
    return compare_exact(expected, got)
