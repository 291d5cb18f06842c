"""The grader (`python -m helpers.grade`) on real kernels and on the pieces that read its results.

One grading run covers a folder of synthetic submissions (solved, untouched, one exercise solved, a
wrong answer, a hanging cell, a corrupt file, an empty notebook) in parallel, and notebook 00's
solution and student versions when they exist. The synthetic notebooks call real checks
(`tests/fixtures/grade_exercises.py`, built on `helpers.exercises.core`); the heavy course notebooks
are not re-run here (the solution notebooks already run under nbval in the main test run).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import nbformat
import pytest

from helpers import grade
from helpers.build import label_check_cells, student_version

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = "98_grading_fixture"
NB00_SOLUTION = ROOT / "notebooks" / "solutions" / "00_start_here.ipynb"
NB00_STUDENT = ROOT / "notebooks" / "00_start_here.ipynb"
TIMEOUT = 30  # seconds per cell: far above what the cells here need, small enough to wait out a hang

ANSWER = "### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION"
DOUBLE = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
COLOUR = '### BEGIN SOLUTION\ncolour = "red"\n### END SOLUTION'


def fixture_solution(answer: str = ANSWER, double: str = DOUBLE, colour: str = COLOUR) -> nbformat.NotebookNode:
    """A small solution notebook in the course's layout: three exercises, each followed by its check."""
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        md("# A notebook for the grading tests"),
        code(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom tests.fixtures import grade_exercises as ex"),
        md("Set `answer`."),
        code(answer),
        code("ex.answer.check()\n# ex.answer.hint()\n# ex.answer.solution()"),
        md("Write `double`."),
        code(double),
        code("ex.double.check()\n# ex.double.hint()\n# ex.double.solution()"),
        md("A cell that runs whatever the student did."),
        code("print('still running')"),
        code(colour),
        code("ex.colour.check()\n# ex.colour.hint()\n# ex.colour.solution()"),
    ]
    label_check_cells(nb, FIXTURE)
    return nb


def fixture_student() -> nbformat.NotebookNode:
    """The generated student version of the fixture (stubs, no outputs), as `helpers.build` makes it."""
    return student_version(fixture_solution(), f"{FIXTURE}.ipynb")


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def one_solved(name: str) -> nbformat.NotebookNode:
    """The student notebook with exactly the exercise `name` filled in."""
    nb = fixture_student()
    solved = {"answer": "answer = 42", "double": "def double(x):\n    return 2 * x", "colour": 'colour = "red"'}[name]
    stub_cells = [c for c in nb.cells if c.cell_type == "code" and "raise NotImplementedError()" in c.source]
    index = ["answer", "double", "colour"].index(name)
    stub_cells[index].source = solved
    return nb


# --------------------------------------------------------------------------------------------
# One grading run over every kind of submission
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade a folder of submissions (and notebook 00 if present) once; return what came out."""
    root = tmp_path_factory.mktemp("submissions")
    subs = root / "submissions"
    write(fixture_solution(), subs / "alice" / f"{FIXTURE}.ipynb")
    write(fixture_student(), subs / "bob" / f"{FIXTURE}.ipynb")
    write(one_solved("double"), subs / "carol" / f"{FIXTURE}.ipynb")
    write(fixture_solution(answer="answer = 41"), subs / "dave" / f"{FIXTURE}.ipynb")
    # erin: `double` loops for ever, so its check cell hangs; `colour` after it is solved.
    write(fixture_solution(double="def double(x):\n    while True:\n        pass"), subs / "erin" / f"{FIXTURE}.ipynb")
    (subs / "frank").mkdir()
    (subs / "frank" / f"{FIXTURE}.ipynb").write_text('{"cells": [ this is not JSON')
    write(nbformat.v4.new_notebook(), subs / "grace" / "empty.ipynb")
    paths = [str(subs)] + [str(p) for p in (NB00_SOLUTION, NB00_STUDENT) if p.exists()]
    csv_path = root / "grades.csv"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = grade.main(paths + ["--csv", str(csv_path), "--timeout", str(TIMEOUT), "--workers", "2"])
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    return {"status": status, "rows": rows, "text": out.getvalue(), "subs": subs}


def results_of(graded, student: str, notebook: str = FIXTURE) -> dict[str, dict]:
    return {r["exercise"]: r for r in graded["rows"] if r["student"] == student and r["notebook"] == notebook}


def test_grading_exits_0_and_writes_the_csv_columns(graded):
    assert graded["status"] == 0, graded["text"]
    assert {"student", "notebook", "exercise", "passed"} <= set(graded["rows"][0])


def test_solution_passes_every_exercise(graded):
    alice = results_of(graded, "alice")
    assert set(alice) == {"answer", "double", "colour"}, graded["text"]
    assert all(r["passed"] == "1" and r["status"] == "passed" for r in alice.values()), alice


def test_untouched_student_notebook_passes_none(graded):
    bob = results_of(graded, "bob")
    assert set(bob) == {"answer", "double", "colour"}
    assert all(r["passed"] == "0" for r in bob.values()), bob
    assert {r["status"] for r in bob.values()} == {"not attempted"}, bob


def test_one_solved_exercise_passes_exactly_that_one(graded):
    carol = results_of(graded, "carol")
    assert {name for name, r in carol.items() if r["passed"] == "1"} == {"double"}, carol


def test_wrong_answer_is_incorrect_and_says_why(graded):
    dave = results_of(graded, "dave")
    assert dave["answer"]["status"] == "incorrect" and dave["answer"]["passed"] == "0"
    assert "not right" in dave["answer"]["detail"]
    assert dave["double"]["passed"] == "1" and dave["colour"]["passed"] == "1"


def test_hanging_cell_is_timed_out_and_later_exercises_fail(graded):
    erin = results_of(graded, "erin")
    assert erin["answer"]["passed"] == "1", erin
    assert erin["double"]["status"] == "timed out" and erin["double"]["passed"] == "0", erin
    assert erin["colour"]["status"] == "after timeout" and erin["colour"]["passed"] == "0", erin


def test_corrupt_and_empty_notebooks_are_reported_and_grading_goes_on(graded):
    frank = [r for r in graded["rows"] if r["student"] == "frank"]
    grace = [r for r in graded["rows"] if r["student"] == "grace"]
    assert frank and all(r["status"] == "invalid notebook" and r["passed"] == "0" for r in frank)
    assert grace and all(r["status"] == "empty notebook" for r in grace)
    assert "invalid notebook" in graded["text"] and "empty notebook" in graded["text"]
    assert results_of(graded, "alice")  # the others were graded all the same


def test_table_totals_per_student_and_notebook(graded):
    text = graded["text"]
    assert f"| **alice** | **{FIXTURE}** | **total** | **3/3** |" in text
    assert f"| **bob** | **{FIXTURE}** | **total** | **0/3** |" in text
    assert f"| **carol** | **{FIXTURE}** | **total** | **1/3** |" in text
    assert "| erin | 1/3 |" in text
    assert "after timeout: an earlier cell of this notebook timed out" in text  # the legend


@pytest.mark.skipif(not NB00_SOLUTION.exists(), reason="notebook 00 has not landed yet")
def test_notebook_00_solution_passes_every_exercise_and_student_version_none(graded):
    registered = set(grade.registered_exercises("00_start_here"))
    assert registered, "helpers.exercises.nb00 registers no exercise"
    solution = results_of(graded, "solutions", "00_start_here")
    student = results_of(graded, "notebooks", "00_start_here")
    assert set(solution) == registered and all(r["passed"] == "1" for r in solution.values()), solution
    assert set(student) == registered and all(r["passed"] == "0" for r in student.values()), student


# --------------------------------------------------------------------------------------------
# The pieces, without kernels
# --------------------------------------------------------------------------------------------


def test_students_are_named_by_their_folder(tmp_path):
    write(fixture_student(), tmp_path / "class" / "alice" / "a.ipynb")
    write(fixture_student(), tmp_path / "class" / "loose.ipynb")
    write(fixture_student(), tmp_path / "class" / ".ipynb_checkpoints" / "a-checkpoint.ipynb")
    found = {(s.student, s.path.name) for s in grade.find_submissions([tmp_path / "class"])}
    assert found == {("alice", "a.ipynb"), ("class", "loose.ipynb")}
    single = grade.find_submissions([tmp_path / "class" / "alice" / "a.ipynb"])
    assert [(s.student, s.path.name) for s in single] == [("alice", "a.ipynb")]


def test_missing_path_and_bad_arguments_are_refused(tmp_path, capsys):
    assert grade.main([str(tmp_path / "nowhere")]) == 2
    assert "paths must exist" in capsys.readouterr().err
    assert grade.main([str(tmp_path)]) == 2  # a folder without notebooks
    with pytest.raises(ValueError, match="timeout"):
        grade.grade([tmp_path], timeout=0)
    with pytest.raises(ValueError, match="workers"):
        grade.grade([tmp_path], workers=0)


def test_notebook_is_recognised_from_labels_or_file_name(tmp_path):
    sub = grade.read_submission(grade.Submission("x", write(fixture_student(), tmp_path / "whatever.ipynb")))
    assert sub.notebook == FIXTURE and not sub.problem
    assert [name for _, name, ok in sub.check_cells if ok] == ["answer", "double", "colour"]
    bad = tmp_path / "alice_00_start_here.ipynb"
    bad.write_text("")
    sub = grade.read_submission(grade.Submission("alice", bad))
    assert sub.problem == "invalid notebook"
    if NB00_SOLUTION.exists():
        assert sub.notebook == "00_start_here"


def test_missing_and_edited_check_cells_count_as_failed(tmp_path, monkeypatch):
    nb = fixture_solution()
    checks = [c for c in nb.cells if c.metadata.get("exercise")]
    nb.cells.remove(checks[0])  # the `answer` check is deleted
    checks[1].source = "print('Correct')  # ex.double.check()"  # the `double` check no longer checks
    sub = grade.read_submission(grade.Submission("mallory", write(nb, tmp_path / "m.ipynb")))
    monkeypatch.setattr(grade, "registered_exercises", lambda notebook: ["answer", "double", "colour"])
    passed_call = {"setup": {"outcome": "passed"}, "call": {"outcome": "passed"}}
    records = {number: passed_call for number, _, _ in sub.check_cells}
    rows = {r.exercise: r for r in grade.grade_submission(sub, records)}
    assert rows["answer"].status == "check cell missing" and not rows["answer"].passed
    assert rows["double"].status == "check cell edited" and not rows["double"].passed
    assert rows["colour"].passed


@pytest.mark.parametrize(
    "phases, expected",
    [
        (None, (False, "not run")),
        ({"setup": {"outcome": "failed", "longrepr": "kernel died"}}, (False, "error")),
        ({"setup": {"outcome": "passed"}, "call": {"outcome": "passed", "xfail": True}}, (False, "error")),
        ({"setup": {"outcome": "passed"}, "call": {"outcome": "skipped"}}, (False, "skipped")),
        ({"setup": {"outcome": "passed"}, "call": {"outcome": "failed", "ename": "NameError", "evalue": "x"}}, (False, "error")),
        ({"setup": {"outcome": "passed"}, "call": {"outcome": "failed", "ename": "Incorrect", "evalue": "incorrect: no"}}, (False, "incorrect")),
        ({"setup": {"outcome": "passed"}, "call": {"outcome": "passed"}}, (True, "passed")),
        # a check cell tagged `raises-exception` passes nbval although the check raised
        ({"setup": {"outcome": "passed"}, "call": {"outcome": "passed", "ename": "Incorrect", "evalue": "no"}}, (False, "incorrect")),
    ],
)
def test_cell_verdicts(phases, expected):
    assert grade.cell_verdict(phases)[:2] == expected


def test_pytest_command_ignores_repository_settings_and_runs_files_in_parallel(tmp_path):
    command = grade.nbval_command([tmp_path / "a.ipynb", tmp_path / "b.ipynb"], 30, 4, tmp_path / "r", tmp_path / "p.ini")
    assert "-c" in command and "--noconftest" in command and "no:cacheprovider" in command
    assert "--nbval-lax" in command and "--nbval-current-env" in command and "--nbval-cell-timeout=30" in command
    assert command[command.index("-n") + 1] == "2" and command[command.index("--dist") + 1] == "loadfile"
    single = grade.nbval_command([tmp_path / "a.ipynb"], 30, 4, tmp_path / "r", tmp_path / "p.ini")
    assert "-n" not in single


def test_csv_has_one_line_per_exercise(tmp_path):
    results = [grade.Result("a", "nb", "x", True, "passed"), grade.Result("a", "nb", "y", False, "incorrect", "off by one")]
    grade.write_csv(results, tmp_path / "g.csv")
    rows = list(csv.DictReader((tmp_path / "g.csv").open()))
    assert [(r["exercise"], r["passed"], r["status"]) for r in rows] == [("x", "1", "passed"), ("y", "0", "incorrect")]
    assert json.dumps(rows)  # plain strings throughout


def test_check_calls_are_read_from_code_not_comments():
    assert grade.checked_exercises("ex.a.check()\n# ex.b.check()") == {"a"}
    assert grade.checked_exercises("ex.a.check(lambda x: x)", plain_only=True) == set()
    assert grade.checked_exercises("ex.a.check(lambda x: x)") == {"a"}
    assert grade.checked_exercises("%time ex.a.check()  # ex.b.check()", plain_only=True) == {"a"}


def test_a_demonstration_of_a_failing_check_is_not_a_check_cell(tmp_path):
    nb = fixture_student()
    demo = nbformat.v4.new_code_cell("ex.answer.check(41)", metadata={"tags": ["raises-exception"]})
    nb.cells.insert(2, demo)
    sub = grade.read_submission(grade.Submission("x", write(nb, tmp_path / "demo.ipynb")))
    assert [name for _, name, _ in sub.check_cells] == ["answer", "double", "colour"]
