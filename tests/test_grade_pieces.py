"""The grader's pieces, without kernels: preparing, reading, resuming, writing, and one submission's
trouble becoming its own rows. The attacks on real kernels are in tests/test_grade.py."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import time

import nbformat
import pytest

from helpers import grade
from helpers.exercises.answers import RESPONDER
from helpers.grading import grader
from helpers.grading.conventions import SKIP_TAG, SKIPPED, check_cell_source, defines
from helpers.grading.prepare import prepare
from helpers.grading.records import Result
from helpers.grading.submissions import Submission, find_submissions, read_submission
from tests.test_grade import NB, _edit_check, answer_cell, check_cell, solve, student, write


# --------------------------------------------------------------------------------------------
# The pieces, without kernels
# --------------------------------------------------------------------------------------------


def test_preparing_restores_the_course_check_cells_and_adds_nothing_else():
    nb = _edit_check(student(), "print('✓ Correct')  # ex.{name}.check()")
    del nb.cells[check_cell(nb, "values_per_image")]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="old")]
    prepared, labels = prepare(nb, NB, ["to_grayscale", "values_per_image"])
    code = [c for c in prepared.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert len(code) == len([c for c in student().cells if c.cell_type == "code"])  # the deleted check is back; nothing is added
    assert labels == [f"cell {n}" for n in range(1, len(code) + 1)]
    assert not any(RESPONDER in c.source or "answers" in c.source for c in code)
    for name in ("to_grayscale", "values_per_image"):
        at = next(i for i, c in enumerate(code) if c.metadata.get("exercise", {}).get("id") == name)
        assert code[at].source == check_cell_source(name)
    restored = next(i for i, c in enumerate(code) if c.metadata.get("exercise", {}).get("id") == "values_per_image")
    assert defines(code[restored - 1].source, "values_per_image")  # re-added right after the answer


def test_preparing_is_linear_in_the_notebook_and_caps_its_size():
    """1,000 cells of 100 names each are prepared in seconds; 4,000 cells of 200 names are refused at once."""
    nb = student()
    filler = "\n".join(f"name_{k} = {k}" for k in range(100))
    nb.cells += [nbformat.v4.new_code_cell(filler, metadata={"tags": [SKIP_TAG]}) for _ in range(1000)]
    started = time.monotonic()
    prepared, labels = prepare(nb, NB, ["to_grayscale", "values_per_image"])
    assert time.monotonic() - started < 30 and len(labels) > 1000
    huge = student()
    huge.cells += [nbformat.v4.new_code_cell("\n".join(f"name_{k} = {k}" for k in range(200))) for _ in range(4000)]
    started = time.monotonic()
    with pytest.raises(ValueError, match="more than"):
        prepare(huge, NB, ["to_grayscale", "values_per_image"])
    assert time.monotonic() - started < 5


def test_students_are_named_by_their_folder(tmp_path):
    write(student(), tmp_path / "class" / "alice" / "a.ipynb")
    write(student(), tmp_path / "class" / "loose.ipynb")
    write(student(), tmp_path / "class" / ".ipynb_checkpoints" / "a-checkpoint.ipynb")
    found = {(s.student, s.path.name) for s in find_submissions([tmp_path / "class"])}
    assert found == {("alice", "a.ipynb"), ("class", "loose.ipynb")}


def test_the_notebook_is_known_by_file_name_first_then_by_labels(tmp_path):
    sub = read_submission(Submission("x", write(student(), tmp_path / "whatever.ipynb")))
    assert sub.notebook == NB and not sub.problem
    renamed = read_submission(Submission("x", write(student(), tmp_path / "smith_02_iou_ap_map.ipynb")))
    assert renamed.notebook == "02_iou_ap_map"  # the labels inside do not override the name
    bad = tmp_path / "alice_00_start_here.ipynb"
    bad.write_text("")
    assert read_submission(Submission("alice", bad)).problem == "invalid notebook"


def test_missing_path_and_bad_arguments_are_refused(tmp_path, capsys):
    assert grade.main([str(tmp_path / "nowhere")]) == 2
    assert "paths must exist" in capsys.readouterr().err
    assert grade.main([str(tmp_path)]) == 2  # a folder without notebooks
    for bad in ({"timeout": 0}, {"workers": 0}, {"notebook_timeout": -1}, {"resume": True}):
        with pytest.raises(ValueError):
            grade.grade([tmp_path], **bad)


def test_resume_skips_notebooks_already_graded(tmp_path, monkeypatch):
    path = write(student(), tmp_path / "subs" / "amy" / f"{NB}.ipynb")
    sub = read_submission(Submission("amy", path))
    results = tmp_path / "results.jsonl"
    row = Result("amy", NB, "to_grayscale", True, "passed", "", str(path))
    results.write_text(json.dumps({"path": str(path), "sha256": sub.sha256, "rows": [dataclasses.asdict(row)]}) + "\n{}\n")
    monkeypatch.setattr(grader, "run_graded", lambda *a, **k: pytest.fail("a graded notebook ran again"))
    rows, _, _ = grade.grade([tmp_path / "subs"], results_file=results, resume=True, out=io.StringIO())
    assert rows == [row]


def test_csv_has_one_line_per_exercise(tmp_path):
    from helpers.grading.gradebook import write_csv

    results = [Result("a", "nb", "x", True, "passed"), Result("a", "nb", "y", False, "incorrect", "off by one")]
    write_csv(results, tmp_path / "g.csv")
    rows = list(csv.DictReader((tmp_path / "g.csv").open()))
    assert [(r["exercise"], r["passed"], r["status"]) for r in rows] == [("x", "1", "passed"), ("y", "0", "incorrect")]


def test_skipping_keeps_the_cells_a_students_own_answer_reads():
    nb = student()
    helper = nbformat.v4.new_code_cell("WEIGHTS = (0.299, 0.587, 0.114)", metadata={"tags": [SKIP_TAG]})
    other = nbformat.v4.new_code_cell("slow = sum(range(10**9))", metadata={"tags": [SKIP_TAG]})
    nb.cells[answer_cell(nb, "to_grayscale")].source = "def to_grayscale(image):\n    r, g, b = WEIGHTS\n    return r * image[0] + g * image[1] + b * image[2]"
    nb.cells.insert(answer_cell(nb, "to_grayscale"), helper)
    nb.cells.insert(answer_cell(nb, "to_grayscale"), other)
    prepared, _ = prepare(nb, NB, ["to_grayscale", "values_per_image"])
    sources = [c.source for c in prepared.cells if c.cell_type == "code"]
    assert "WEIGHTS = (0.299, 0.587, 0.114)" in sources  # the student's answer reads it: it runs
    assert not any("10**9" in s for s in sources) and SKIPPED in sources
    everything, _ = prepare(nb, NB, ["to_grayscale", "values_per_image"], skip=False)
    assert any("10**9" in c.source for c in everything.cells)


def test_any_error_while_grading_one_submission_becomes_its_own_rows(tmp_path, monkeypatch):
    """Preparing raises RecursionError, running raises MemoryError: each is that submission's rows, with the error."""
    from helpers.grading.runner import Runners

    sub = read_submission(Submission("amy", write(solve(student()), tmp_path / "amy" / f"{NB}.ipynb")))
    settings = {"modules": None, "skip": True, "timeout": 10, "notebook_timeout": 20, "threads": 1, "seed": 1, "keep_executed": False}

    def fail(error):
        def raising(*args, **kwargs):
            raise error
        return raising

    monkeypatch.setattr(grader, "prepare", fail(RecursionError("maximum recursion depth exceeded")))
    rows = grader.grade_one(sub, tmp_path, settings, Runners(), grader.Outcome([], {}))
    assert [(r.exercise, r.status) for r in rows] == [("to_grayscale", "invalid notebook"), ("values_per_image", "invalid notebook")]
    assert all("RecursionError: maximum recursion depth" in r.detail for r in rows)
    monkeypatch.undo()
    monkeypatch.setattr(grader, "run_graded", fail(MemoryError("no memory left")))
    rows = grader.grade_one(sub, tmp_path, settings, Runners(), grader.Outcome([], {}))
    assert {r.status for r in rows} == {"runner error"} and all("MemoryError: no memory left" in r.detail for r in rows)


def test_a_needs_review_finding_names_its_key_and_counts_for_nothing_once_accepted():
    from helpers.exercises import nb00
    from helpers.grading.judging import source_findings

    sources = ["import torch", "def to_grayscale(image):\n    return eval('0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]')"]
    status, detail = source_findings(sources, nb00.to_grayscale, (), "amy")
    assert status == "needs review" and "--accept amy:" in detail, detail
    key = re.search(r"--accept amy:(\w+)", detail).group(1)
    assert source_findings(sources, nb00.to_grayscale, [f"amy:{key}"], "amy") is None
    assert source_findings(sources, nb00.to_grayscale, [f"bob:{key}"], "amy")[0] == "needs review"  # another student's acceptance


def test_execute_leaves_no_kernel_running():
    """nbclient does not shut down a kernel it was handed; `runner.execute` must (the GPU-settings and
    benchmark runs used to leave one kernel of about 1.5 GB per notebook behind)."""
    import nbformat
    import psutil

    from helpers.grading import runner

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    run = runner.execute(nb, ".", timeout=60)
    assert run.stopped is None
    left = [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]
    assert not left, f"kernels left running: {left}"
