"""Skipping the cells tagged `grader-skip` changes no verdict.

Every course notebook is handed in three ways: solved (the solution notebook), untouched (the student
notebook), and wrong (the solution with each exercise's first wrong answer from
tests/exercises/wrong_nbNN.py put in right after the answer cell). The class is graded twice with
the same hidden-case seed: skipping the tagged cells (what the grader does) and running every cell
(`--run-all`). Both runs must give every row the same status and detail, and the verdicts must be
the expected ones. Trainings are capped at a few steps in both runs (`SEEING_NETWORKS_MAX_STEPS`), so
running "every cell" stays affordable; no verdict depends on how well anything trained, which is
what this test shows.
"""

from __future__ import annotations

import copy
import importlib
import io
import re
from pathlib import Path

import nbformat
import pytest

from helpers import grade
from helpers.grading.conventions import SKIP_TAG, defines
from helpers.grading.course import known_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = known_notebooks()


def wrong_version(notebook: str) -> nbformat.NotebookNode:
    """The solution notebook with each exercise answered by its first wrong answer (the wrong module's
    source is written into the cell: the sandboxed kernel cannot read the repository's tests/)."""
    nb = nbformat.read(ROOT / "notebooks" / "solutions" / f"{notebook}.ipynb", as_version=4)
    module = f"tests.exercises.wrong_nb{notebook[:2]}"
    wrong = importlib.import_module(module).WRONG
    for name in wrong:
        at = max(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and defines(c.source, name))
        source = (ROOT / "tests" / "exercises" / f"wrong_nb{notebook[:2]}.py").read_text() + f"\n{name} = WRONG[{name!r}][0]"
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source))
    return nb


def tagged(notebook: str) -> int:
    nb = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    return sum(SKIP_TAG in c.metadata.get("tags", []) for c in nb.cells)


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    for notebook in NOTEBOOKS:
        versions = {
            "solved": nbformat.read(ROOT / "notebooks" / "solutions" / f"{notebook}.ipynb", as_version=4),
            "stub": nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4),
            "wrong": wrong_version(notebook),
        }
        for kind, nb in versions.items():
            (folder / kind).mkdir(exist_ok=True)
            nbformat.write(copy.deepcopy(nb), folder / kind / f"{notebook}.ipynb")
    patch = pytest.MonkeyPatch()
    patch.setenv("SEEING_NETWORKS_MAX_STEPS", "3")
    try:
        runs = {
            skip: grade.grade([folder], timeout=600, seed=3, skip=skip, out=io.StringIO())[0] for skip in (True, False)
        }
    finally:
        patch.undo()
    return runs


def test_every_notebook_tags_the_cells_no_check_needs():
    assert {nb: tagged(nb) for nb in NOTEBOOKS if tagged(nb) == 0} == {}


def test_no_course_cell_reads_a_withheld_answer():
    """In the graded kernel `ex.X.expected` and `ex.X.reference` count every use as the student's (a
    course cell reading one made an untouched notebook 'use the reference' when every cell ran).
    Identity tests (`is`, `in (...)`) count nothing and stay allowed."""
    reads = re.compile(r"\bex\.\w+\.(expected|reference)\b")
    identity = re.compile(r"\b(is|in) .*\bex\.\w+\.(expected|reference)\b")
    found = {
        (notebook, i): line
        for notebook in NOTEBOOKS
        for i, cell in enumerate(nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4).cells)
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if reads.search(line) and not identity.search(line) and not line.lstrip().startswith("#")
    }
    assert found == {}


def test_skipping_changes_no_verdict(both_runs):
    def table(rows):
        return sorted((r.student, r.notebook, r.exercise, r.status, r.detail) for r in rows)

    skipped, everything = table(both_runs[True]), table(both_runs[False])
    assert len(skipped) == len(everything) > 0
    assert [row for row in skipped if row not in everything] == []


def test_the_verdicts_are_the_expected_ones(both_runs):
    for row in both_runs[True]:
        expected = {"solved": {"passed"}, "stub": {"not attempted"}, "wrong": {"incorrect", "uses the reference", "uses a library implementation", "needs review"}}[row.student]
        assert row.status in expected, row
