"""Exercise checks with hints and solutions, in the spirit of Kaggle's learntools.

A check either prints a short green "Correct" or raises an `ExerciseFailure`:

- `NotAttempted`: the answer is still the stub (it raises `NotImplementedError`) or is not defined;
- `Incorrect`: the answer runs but differs from the reference on a named input.

Both render in Jupyter as a few readable lines instead of a traceback of this module (IPython calls
an exception's `_render_traceback_`), and both still fail the cell, so nbval and the grader see them.
The checker never lets its own errors escape: whatever a student hands in gets a verdict.

A check has two halves, so that the grader can keep the second one out of the student's reach:
`record(answer, seed)` runs the student's answer (in the student's kernel) and describes what it
gave in a safe format (`helpers.exercises.answers`); `judge(record, seed)` compares that with the
reference (in whichever process decides: the notebook's own for `check()`, the grader's for a grade).
With a `seed`, a function is also tried on hidden inputs drawn from it, so an answer that only
knows the visible cases fails.

**In the graded kernel** (the grader sets `SEEING_NETWORKS_GRADING=1` and imports the exercises before
any cell runs) an exercise carries no reference, expected value or solution text: each is a
`Withheld` stand-in that holds nothing and notes being used, and `check()` judges nothing. The
grader asks the kernel for the answers after the last cell (`helpers.exercises.answers`) and judges
them in its own process, where the references are.
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
import sys
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from helpers.exercises.answers import decode, encode  # bound here: a student's `sys.modules` entry cannot replace them
from helpers.exercises.compare import compare_auto, describe

MISSING = object()  # the answer's name is not defined in the notebook
GRADING_ENV = "SEEING_NETWORKS_GRADING"
#: True in the kernel the grader runs: exercises carry no reference (read once, at import).
GRADED = os.environ.get(GRADING_ENV) == "1"
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


class ReferenceWithheld(RuntimeError):
    """Raised by a `Withheld` stand-in: the graded kernel holds no reference."""


class Withheld:
    """What `reference`, `expected` and the solution are in the graded kernel: nothing, noting each use.

    Calling it, converting it or reading from it raises `ReferenceWithheld`; `uses` counts the tries,
    so that an answer built on it is reported as "uses the reference".
    """

    def __init__(self, what: str):
        self._what, self.uses = what, 0

    def _refuse(self, *args, **kwargs):
        self.uses += 1
        raise ReferenceWithheld(f"the {self._what} is not in the kernel while grading: the grader holds it")

    __call__ = __float__ = __int__ = __index__ = __complex__ = __bool__ = __len__ = __iter__ = _refuse
    __getitem__ = __array__ = __add__ = __radd__ = __mul__ = __rmul__ = __sub__ = __rsub__ = _refuse
    __truediv__ = __rtruediv__ = __lt__ = __gt__ = __le__ = __ge__ = __neg__ = __format__ = _refuse
    # == and hash stay identity: `x in (answer, ex.X.reference)` in the course's own cells uses nothing

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        self._refuse()

    def __repr__(self) -> str:
        return f"<{self._what} withheld while grading>"


@dataclass
class Case:
    """One input a function exercise is tried on: a label a student can read, and the arguments."""

    label: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass
class Verdict:
    """What a check concluded: a status ("passed", "incorrect", "not attempted", "uses the reference")
    and one sentence for the student (empty when passed)."""

    status: str
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


#: Modules whose functions are the course's or the library's work, not a student's.
LIBRARY_MODULES = ("helpers", "torch", "torchvision", "numpy")
_CALL_SEED = 20_240_101  # torch is seeded with this plus the case number before every call
# Building cases and running answers seed torch's one global generator (a case's network is initialised
# from it). The grader judges several notebooks at once, one thread each: without this lock two threads
# seed and draw in turns, and the reference's network comes out with other weights (a solved notebook
# was once judged incorrect so). Every use of the global generator here holds it.
GLOBAL_RNG_LOCK = threading.RLock()


def _holding_global_rng_lock(method: Callable) -> Callable:
    """`method`, run while this thread holds GLOBAL_RNG_LOCK (re-entrant: a locked method may call another)."""

    @functools.wraps(method)
    def locked(*args, **kwargs):
        with GLOBAL_RNG_LOCK:
            return method(*args, **kwargs)

    return locked


def perturbed(value: Any, generator: torch.Generator) -> Any:
    """`value` with every floating-point tensor and float nudged by about 1% of its size.

    A tensor goes through x -> x + 0.01 s sin(w x / s + phase) (s its largest magnitude, w in [3, 6)),
    which is strictly increasing: the order of its values, ties and `x2 >= x1` all survive, so a
    hidden case is the visible case with other numbers and still a valid input (boxes stay boxes,
    rankings stay rankings). Integer tensors, ints, strings and modules are kept.
    """
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel():
        x = value.detach()
        scale = float(x.abs().max()) or 1.0
        w, phase = 3 + 3 * float(torch.rand((), generator=generator)), 6.283 * float(torch.rand((), generator=generator))
        nudged = x + 0.01 * scale * torch.sin(w * x / scale + phase)
        return nudged.requires_grad_(value.requires_grad)
    if type(value) is float:
        return value * (1 + 0.01 * float(torch.rand((), generator=generator, dtype=torch.float64) - 0.5))
    if isinstance(value, (tuple, list)):
        return type(value)(perturbed(v, generator) for v in value)
    if isinstance(value, dict):
        return {k: perturbed(v, generator) for k, v in value.items()}
    return value


def is_library_object(answer: Any, reference: Any) -> bool:
    """True when `answer` is the reference itself or a function of the course or its libraries."""
    if answer is reference:
        return True
    if not callable(answer):
        return False
    module = getattr(answer, "__module__", None)
    return isinstance(module, str) and module.split(".")[0] in LIBRARY_MODULES


# --------------------------------------------------------------------------------------------
# Exercises
# --------------------------------------------------------------------------------------------


class Exercise:
    """What every exercise has: where it lives, a hint, a solution, and `check`."""

    kind = "exercise"

    def __init__(
        self, notebook: str, name: str, hint: str, solution: str, points: float = 1, library: tuple[str, ...] = ()
    ):
        if not name.isidentifier():
            raise ValueError(f"name must be a Python identifier, got {name!r}")
        if isinstance(points, bool) or not isinstance(points, (int, float)) or not points > 0:
            raise ValueError(f"points must be a positive number, got {points!r}")
        key = (notebook, name)
        self.notebook, self.name, self.points = notebook, name, points
        self._hint, self._solution = hint.strip(), "" if GRADED else inspect.cleandoc(solution)
        #: Dotted names of the functions this exercise asks the student to write by hand (e.g.
        #: "torchvision.ops.box_iou"): an answer that calls one of them is not the student's work.
        self.library = tuple(library)
        REGISTRY[key] = self

    @property
    def id(self) -> str:
        return f"{self.notebook}/{self.name}"

    def hint(self) -> None:
        """Print the hint."""
        print(f"{_BLUE}Hint ({self.name}):{_RESET} {self._hint}")

    def solution(self) -> None:
        """Show a solution (as Markdown in Jupyter, as text elsewhere)."""
        if GRADED:
            print(f"Solution ({self.name}): not shown while grading.")
            return
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

    def check(self, answer: Any = MISSING) -> None:
        """Check an answer; without one, look up `self.name` in the calling notebook.

        Prints "Correct" or raises `NotAttempted` / `Incorrect`. The same two steps as the grader's:
        record the answer, then judge the record.
        """
        if GRADED:
            print(f"({self.notebook} · {self.name}: while grading, the grader asks for your answer after the last cell and decides)")
            return
        if answer is MISSING:
            answer = sys._getframe(1).f_globals.get(self.name, MISSING)
        verdict = self.judge(self.record(answer))
        if verdict.status == "not attempted":
            raise NotAttempted(self, verdict.message)
        if not verdict.passed:
            raise Incorrect(self, verdict.message)
        print(f"{_GREEN}✓ Correct{_RESET} ({self.notebook} · {self.name})")

    def record(self, answer: Any, seed: int | None = None) -> dict:
        """Describe `answer` in the safe format (runs where the answer lives: the student's kernel).

        `answer` is the student's value, or `MISSING` when the name is not defined.
        """
        if answer is MISSING:
            return {"state": "missing"}
        if self._is_reference(answer):
            return {"state": "reference"}
        return self._record(answer, seed)

    @_holding_global_rng_lock
    def judge(self, record: dict, seed: int | None = None) -> Verdict:
        """The verdict on a record made by `record` (runs in the process that decides). Never raises."""
        state = record.get("state") if isinstance(record, dict) else None
        if state == "missing":
            return Verdict("not attempted", f"`{self.name}` is not defined yet: run the cell where you write it.")
        if state == "reference":
            return Verdict("uses the reference", f"`{self.name}` is the course's own reference, not your work.")
        if state == "error":
            return Verdict("incorrect", f"your answer could not be recorded: {record.get('detail', '')}")
        try:
            message = self._judge(record, seed)
        except ExerciseFailure as failure:
            return Verdict("not attempted" if isinstance(failure, NotAttempted) else "incorrect", failure.message)
        except Exception as error:  # the checker's own trouble still ends in a verdict
            message = f"checking it failed with {type(error).__name__}: {error}"
        return Verdict("passed") if message is None else Verdict("incorrect", message)

    def _is_reference(self, answer: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def _record(self, answer: Any, seed: int | None) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _judge(self, record: dict, seed: int | None) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}: .check() .hint() .solution()>"


class FunctionExercise(Exercise):
    """The student writes a function; it must agree with `reference` on every case.

    `cases()` gives the visible cases. The hidden ones are `hidden_cases(generator)` when given, else
    the visible cases with their floating-point numbers nudged (`perturbed`).
    """

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
        hidden_cases: Callable[[torch.Generator], list[Case]] | None = None,
        points: float = 1,
        library: tuple[str, ...] = (),
    ):
        super().__init__(notebook, name, hint, solution, points, library)
        self.reference = Withheld("reference") if GRADED else reference
        self.cases, self.compare = cases, compare
        self._hidden_cases = hidden_cases

    @_holding_global_rng_lock
    def trial_cases(self, seed: int | None = None) -> list[Case]:
        """The visible cases, then (with a seed) the hidden ones drawn from it."""
        cases = list(self.cases())
        if seed is None:
            return cases
        generator = torch.Generator().manual_seed(seed ^ zlib.crc32(self.id.encode()))
        if self._hidden_cases is not None:
            hidden = list(self._hidden_cases(generator))
        else:
            hidden = [Case(c.label, perturbed(c.args, generator), perturbed(c.kwargs, generator)) for c in cases]
        return cases + [Case(f"a hidden case ({c.label}, with other numbers)", c.args, c.kwargs) for c in hidden]

    def call(self, function: Callable, case: Case, number: int) -> Any:
        """`function` on a private copy of the case's inputs, with torch seeded for this case."""
        torch.manual_seed(_CALL_SEED + number)
        return function(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))

    def _is_reference(self, answer: Any) -> bool:
        return is_library_object(answer, self.reference)

    def _record(self, answer: Any, seed: int | None) -> dict:
        return self.run_cases(answer, self.trial_cases(seed))

    @_holding_global_rng_lock
    def run_cases(self, answer: Any, cases: list[Case]) -> dict:
        """The record of `answer` on `cases`: what it returned (encoded) or raised on each, in order."""
        if not callable(answer):
            return {"state": "not callable", "describe": describe(answer)}
        results = []
        for number, case in enumerate(cases):
            try:
                got = self.call(answer, case, number)
            except NotImplementedError:
                results.append({"not_attempted": True})
                break
            except ReferenceWithheld:
                return {"state": "reference"}
            except Exception as error:  # noqa: BLE001 - the student's code: any error is a verdict
                results.append({"raised": f"{type(error).__name__}: {error}"[:300]})
                break
            results.append({"output": encode(got)})
        return {"state": "ran", "results": results}

    def _judge(self, record: dict, seed: int | None) -> str | None:
        if record.get("state") == "not callable":
            return f"expected a function, got {record.get('describe', 'something else')}"
        results = record.get("results")
        if record.get("state") != "ran" or not isinstance(results, list):
            return "no answer was recorded"
        for number, case in enumerate(self.trial_cases(seed)):
            if number >= len(results) or not isinstance(results[number], dict):
                return f"on {case.label}: no result was recorded"
            result = results[number]
            if result.get("not_attempted"):
                raise NotAttempted(self, f"`{self.name}` still raises NotImplementedError: replace the stub.")
            if "raised" in result:
                return f"on {case.label}, your function raised {result['raised']}"
            try:
                got = decode(result.get("output"))
            except ValueError as error:
                return f"on {case.label}: the result could not be read ({error})"
            diff = self.compare(self.call(self.reference, case, number), got)
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
        points: float = 1,
        library: tuple[str, ...] = (),
    ):
        super().__init__(notebook, name, hint, solution, points, library)
        self.expected = Withheld("expected answer") if GRADED else expected
        self.compare = compare

    def _is_reference(self, answer: Any) -> bool:
        scalar = answer is None or isinstance(answer, (bool, int, float, str))  # equal scalars may be one object
        return not scalar and answer is self.expected

    def _record(self, answer: Any, seed: int | None) -> dict:
        return {"state": "set", "value": encode(answer)}

    def _judge(self, record: dict, seed: int | None) -> str | None:
        if record.get("state") != "set":
            return "no answer was recorded"
        try:
            answer = decode(record.get("value"))
        except ValueError as error:
            return f"your answer could not be read ({error})"
        if answer is NotImplemented or answer is Ellipsis:
            raise NotAttempted(self, f"`{self.name}` still holds the placeholder `...`: set it to your answer.")
        return self.compare(self.expected, answer)


def yours_or_course(exercise: Exercise, answer: Any, course: Any) -> Any:
    """What a notebook builds on after a capstone: `answer` (the student's) when it passes `exercise`'s
    check, else `course` (the course's own version, e.g. `helpers.visualise.grad_cam`); prints which.

    `answer` None counts as not written yet. In the graded kernel, which holds no reference to check
    against, it returns `course` without touching the withheld reference: the grader judges the answer
    itself after the run, so what later cells train there changes no mark.
    """
    if GRADED:
        print(f"{exercise.name}: the course's version (while grading, the kernel checks nothing)")
        return course
    verdict = exercise.judge(exercise.record(MISSING if answer is None else answer))
    if verdict.passed:
        print(f"{exercise.name}: yours (it passes its check)")
        return answer
    print(f"{exercise.name}: the course's version (yours does not pass its check yet: {verdict.status})")
    return course


def exercises_of(notebook: str) -> list[Exercise]:
    """All registered exercises of one notebook (import its `helpers.exercises.nbNN` first)."""
    return [ex for (nb, _), ex in REGISTRY.items() if nb == notebook]
