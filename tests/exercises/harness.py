"""The standard trials every exercise check must survive.

Each notebook's wrong answers live in `tests/exercises/wrong_nbNN.py` as `WRONG = {name: [answer, ...]}`;
`test_all_exercises.py` runs every registered exercise against its solution, its stub, those wrong
answers and the odd answers below.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from helpers.build import BEGIN, END
from helpers.exercises.core import Exercise, FunctionExercise

ROOT = Path(__file__).resolve().parents[2]


def solution_namespace() -> dict:
    """What a solution may use without importing it (the notebooks import these at the top)."""
    return {"torch": torch, "nn": nn, "F": F, "math": math, "np": np, "torchvision": torchvision}


def solution_answer(exercise: Exercise):
    """Run an exercise's solution text and return the answer it defines."""
    namespace = solution_namespace()
    exec(compile(exercise.solution_source, f"<solution of {exercise.id}>", "exec"), namespace)
    return namespace[exercise.name]


def stub_answer(exercise: FunctionExercise):
    """What the generated student notebook defines: a function raising NotImplementedError."""

    def stub(*args, **kwargs):
        raise NotImplementedError()

    return stub


def _raises(*args, **kwargs):
    raise RuntimeError("student code blew up")


ODD_FUNCTION_ANSWERS = {
    "None": None,
    "a number": 3,
    "a list": [1, 2],
    "a numpy array": np.zeros(3),
    "returns None": lambda *a, **k: None,
    "returns a list": lambda *a, **k: [1.0, 2.0],
    "returns numpy": lambda *a, **k: np.zeros((2, 2)),
    "returns a string": lambda *a, **k: "answer",
    "returns a wrong-shaped tensor": lambda *a, **k: torch.zeros(1, 1, 1),
    "returns NaN": lambda *a, **k: torch.tensor(float("nan")),
    "takes no arguments": lambda: torch.zeros(1),
    "raises": _raises,
}

ODD_VALUE_ANSWERS = {
    "None": None,
    "a list": [1],
    "NaN": float("nan"),
    "numpy NaN": np.float64("nan"),
    "a string": "my answer",
    "a tensor": torch.zeros(5),
    "an object": object(),
    "a function": _raises,
}


def normalised_lines(source: str) -> list[str]:
    """Non-blank lines, stripped, without the solution markers."""
    return [l.strip() for l in source.splitlines() if l.strip() and not l.strip().startswith((BEGIN, END))]


def is_subsequence(needle: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(any(line == h for h in it) for line in needle)


def solution_notebook_sources(notebook: str) -> list[str]:
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "solutions" / f"{notebook}.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code" and BEGIN in c.source]


def solution_stands_in_notebook(exercise: Exercise) -> bool:
    """Does the exercise's solution text appear, line by line in order, in one solution-notebook cell?"""
    wanted = normalised_lines(exercise.solution_source)
    return any(is_subsequence(wanted, normalised_lines(src)) for src in solution_notebook_sources(exercise.notebook))


def check_cells(notebook: str) -> list[dict]:
    """The `exercise` metadata of every check cell in a solution notebook."""
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "solutions" / f"{notebook}.ipynb", as_version=4)
    return [c.metadata["exercise"] for c in nb.cells if c.cell_type == "code" and "exercise" in c.metadata]

