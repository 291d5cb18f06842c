"""The course as the grader knows it: its notebooks, their exercises and points, from the exercise registry.

The registry (`helpers.exercises.core.REGISTRY`, filled by importing `helpers.exercises.nbNN`) is the
single source: nothing here reads `notebooks/solutions/`, so an installed course (not a checkout)
grades too.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from functools import lru_cache


@lru_cache(maxsize=1)
def exercise_modules() -> dict[str, str]:
    """{notebook: module} of every `helpers.exercises.nbNN` module, read from the `NOTEBOOK = "..."` line
    of its source (importing all of them would build every reference); imported where there is no source."""
    import helpers.exercises as package

    found = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not re.fullmatch(r"nb\d\d", info.name):
            continue
        name = f"helpers.exercises.{info.name}"
        spec = importlib.util.find_spec(name)
        source = spec.loader.get_source(name) if spec and spec.loader and hasattr(spec.loader, "get_source") else None
        match = re.search(r'(?m)^NOTEBOOK\s*=\s*"([^"]+)"', source or "")
        notebook = match.group(1) if match else getattr(importlib.import_module(name), "NOTEBOOK", None)
        if isinstance(notebook, str):
            found[notebook] = name
    return found


def known_notebooks() -> list[str]:
    """The course's notebook names, e.g. ["00_start_here", "01_vision_tasks", ...], in order."""
    return sorted(exercise_modules())


def exercise_module(notebook: str, extra: dict[str, str] | None = None) -> str | None:
    """The module that defines `notebook`'s exercises: one named in `extra`, else the course's, else None."""
    if extra and notebook in extra:
        return extra[notebook]
    return exercise_modules().get(notebook)


def course_exercises(notebook: str, extra: dict[str, str] | None = None) -> list:
    """The `Exercise` objects the course registers for `notebook`, in the order they were defined."""
    from helpers.exercises.core import exercises_of

    module = exercise_module(notebook, extra)
    if module is None:
        return []
    importlib.import_module(module)
    return exercises_of(notebook)


def course_points(notebooks=None) -> dict[tuple[str, str], float]:
    """{(notebook, exercise): points} from the course's registered exercises (all course notebooks by default)."""
    notebooks = known_notebooks() if notebooks is None else list(notebooks)
    return {(nb, ex.name): ex.points for nb in notebooks for ex in course_exercises(nb)}
