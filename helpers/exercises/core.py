"""Exercise checks with hints and solutions, in the spirit of Kaggle's learntools.

A check either prints a short green "Correct" or raises an `ExerciseFailure`:

- `NotAttempted`: the answer is still the stub (it raises `NotImplementedError`) or is not defined;
- `Incorrect`: the answer runs but differs from the reference on a named input.

Both render in Jupyter as a few readable lines instead of a traceback of this module (IPython calls
an exception's `_render_traceback_`), and both still fail the cell, so nbval and the grader see them.
The checker never lets its own errors escape: whatever a student hands in gets a verdict.
"""

from __future__ import annotations

import copy
import inspect
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

_MISSING = object()
_GREEN, _RED, _YELLOW, _BLUE, _RESET = "\033[32m", "\033[31m", "\033[33m", "\033[34m", "\033[0m"

#: Every exercise ever created, by (notebook, name). Tests and the build read it.
REGISTRY: dict[tuple[str, str], "Exercise"] = {}


class ExerciseFailure(Exception):
    """Base of the two failing verdicts. `exercise` is the `Exercise` that was checked."""

    verdict = "failed"
    colour = _RED

    def __init__(self, exercise: "Exercise", message: str):
        super().__init__(message)
        self.exercise = exercise
        self.message = message

    def lines(self) -> list[str]:
        ex = self.exercise
        return [
            f"{self.colour}✗ {self.verdict.capitalize()}{_RESET} ({ex.notebook} · {ex.name}): {self.message}",
            f"{_BLUE}Stuck? ex.{ex.name}.hint() gives a hint, ex.{ex.name}.solution() shows a solution.{_RESET}",
        ]

    def _render_traceback_(self) -> list[str]:
        return self.lines()

    def __str__(self) -> str:
        return f"{self.verdict}: {self.message}"


class NotAttempted(ExerciseFailure):
    verdict = "not attempted yet"
    colour = _YELLOW


class Incorrect(ExerciseFailure):
    verdict = "incorrect"


@dataclass
class Case:
    """One input a function exercise is tried on: a label a student can read, and the arguments."""

    label: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Comparisons: return None when `got` is right, else one sentence saying what differs.
# They never reveal the expected values.
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Exercises
# --------------------------------------------------------------------------------------------


class Exercise:
    """What every exercise has: where it lives, a hint, a solution, and `check`."""

    kind = "exercise"

    def __init__(self, notebook: str, name: str, hint: str, solution: str):
        if not name.isidentifier():
            raise ValueError(f"name must be a Python identifier, got {name!r}")
        key = (notebook, name)
        self.notebook, self.name = notebook, name
        self._hint, self._solution = hint.strip(), inspect.cleandoc(solution)
        REGISTRY[key] = self

    @property
    def id(self) -> str:
        return f"{self.notebook}/{self.name}"

    def hint(self) -> None:
        """Print the hint."""
        print(f"{_BLUE}Hint ({self.name}):{_RESET} {self._hint}")

    def solution(self) -> None:
        """Show a solution (as Markdown in Jupyter, as text elsewhere)."""
        text = f"Solution ({self.name}):\n\n```python\n{self._solution}\n```"
        try:
            from IPython import get_ipython
            from IPython.display import Markdown, display

            if get_ipython() is not None:
                display(Markdown(text))
                return
        except ImportError:  # pragma: no cover - IPython ships with the course
            pass
        print(text)

    @property
    def solution_source(self) -> str:
        return self._solution

    def check(self, answer: Any = _MISSING) -> None:
        """Check an answer; without one, look up `self.name` in the calling notebook.

        Prints "Correct" or raises `NotAttempted` / `Incorrect`.
        """
        if answer is _MISSING:
            answer = sys._getframe(1).f_globals.get(self.name, _MISSING)
        if answer is _MISSING:
            raise NotAttempted(self, f"`{self.name}` is not defined yet: run the cell where you write it.")
        try:
            verdict = self._verdict(answer)
        except ExerciseFailure:
            raise
        except Exception as error:  # the checker's own trouble still ends in a verdict
            verdict = f"checking it failed with {type(error).__name__}: {error}"
        if verdict is not None:
            raise Incorrect(self, verdict)
        print(f"{_GREEN}✓ Correct{_RESET} ({self.notebook} · {self.name})")

    def _verdict(self, answer: Any) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}: .check() .hint() .solution()>"


class FunctionExercise(Exercise):
    """The student writes a function; it must agree with `reference` on every case."""

    kind = "function"

    def __init__(
        self,
        notebook: str,
        name: str,
        reference: Callable,
        cases: Callable[[], list[Case]],
        hint: str,
        solution: str,
        compare: Callable[[Any, Any], str | None] = compare_auto,
    ):
        super().__init__(notebook, name, hint, solution)
        self.reference, self.cases, self.compare = reference, cases, compare

    def _verdict(self, answer: Any) -> str | None:
        if not callable(answer):
            return f"expected a function, got {describe(answer)}"
        for case in self.cases():
            expected = self.reference(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
            try:
                got = answer(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
            except NotImplementedError:
                raise NotAttempted(self, f"`{self.name}` still raises NotImplementedError: replace the stub.")
            except Exception as error:
                return f"on {case.label}, your function raised {type(error).__name__}: {error}"
            diff = self.compare(expected, got)
            if diff:
                return f"on {case.label}: {diff}"
        return None


class ValueExercise(Exercise):
    """The student sets a named answer; it must match `expected` under `compare`."""

    kind = "value"

    def __init__(
        self,
        notebook: str,
        name: str,
        expected: Any,
        hint: str,
        solution: str,
        compare: Callable[[Any, Any], str | None] = compare_auto,
    ):
        super().__init__(notebook, name, hint, solution)
        self.expected, self.compare = expected, compare

    def _verdict(self, answer: Any) -> str | None:
        if answer is NotImplemented or answer is Ellipsis:
            raise NotAttempted(self, f"`{self.name}` still holds the placeholder: set it to your answer.")
        return self.compare(self.expected, answer)


def exercises_of(notebook: str) -> list[Exercise]:
    """All registered exercises of one notebook (import its `helpers.exercises.nbNN` first)."""
    return [ex for (nb, _), ex in REGISTRY.items() if nb == notebook]
