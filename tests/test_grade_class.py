"""The grader on a class as an LMS delivers it: names, copies, a roster, gradebooks, feedback, shards.

The parsing and the file formats are tested without kernels in tests/test_classbook.py; here the
command line grades a small Canvas download of notebook 00 for real, once whole and once in two
shards, and the outputs must agree.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from pathlib import Path

import nbformat
import pytest

from helpers import grade
from helpers.exercises.answers import RESPONDER

ROOT = Path(__file__).resolve().parents[1]
NB = "00_start_here"
SOLUTION = ROOT / "notebooks" / "solutions" / f"{NB}.ipynb"
STUDENT = ROOT / "notebooks" / f"{NB}.ipynb"


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = grade.main(argv)
    return status, out.getvalue()


@pytest.fixture(scope="module")
def canvas(tmp_path_factory):
    """A Canvas download: smith (solved, plus an older untouched copy), o'brien (untouched); a roster of three."""
    root = tmp_path_factory.mktemp("canvas")
    download = root / "download"
    download.mkdir()
    older = download / f"smithjohn_123_1001_{NB}.ipynb"
    older.write_text(STUDENT.read_text())
    (download / f"smithjohn_123_1002_{NB}-1.ipynb").write_text(SOLUTION.read_text())  # resubmitted: a later file id
    (download / f"obrienzoë_late_456_1003_{NB}.ipynb").write_text(STUDENT.read_text())
    os.utime(older, (time.time() + 3600, time.time() + 3600))  # its date must not matter: Canvas dates every file alike
    roster = root / "roster.csv"
    roster.write_text("Student ID,Name,Email\n123,\"Smith, John\",js@uni.edu\n456,\"O'Brien, Zoë\",zo@uni.edu\n789,Ann Absent,aa@uni.edu\n")
    common = ["--timeout", "120", "--seed", "7", "--workers", "2", "--roster", str(roster)]
    whole = root / "whole"
    status, text = run([str(download), *common, "--csv", str(whole / "long.csv"), "--gradebook", str(whole / "book.csv"),
                        "--results", str(whole / "results.jsonl"), "--feedback", str(whole / "feedback")])  # fmt: skip
    shards = []
    for k in range(2):
        shard_status, _ = run([str(download), *common, "--shard", f"{k}/2", "--results", str(root / f"results-{k}.jsonl")])
        assert shard_status == 0
        shards.append(root / f"results-{k}.jsonl")
    merged = root / "merged"
    merge_status, merge_text = run(["merge", *map(str, shards), "--roster", str(roster), "--csv", str(merged / "long.csv"),
                                    "--gradebook", str(merged / "book.csv"), "--format", "plain"])  # fmt: skip
    return {"root": root, "status": status, "text": text, "whole": whole, "shards": shards, "merged": merged,
            "merge_status": merge_status, "merge_text": merge_text}  # fmt: skip


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_canvas_names_become_students_and_the_latest_copy_is_graded(canvas):
    assert canvas["status"] == 0, canvas["text"][-2000:]
    rows = read_csv(canvas["whole"] / "long.csv")
    smith = {r["exercise"]: r for r in rows if r["student"] == "123"}
    assert {r["status"] for r in smith.values()} == {"passed"}, smith  # the solved resubmission, not the older copy
    assert all(r["path"].endswith(f"smithjohn_123_1002_{NB}-1.ipynb") for r in smith.values())
    assert {r["status"] for r in rows if r["student"] == "456"} == {"not attempted"}
    assert "older file(s) not graded" in canvas["text"] and f"smithjohn_123_1001_{NB}.ipynb" in canvas["text"]


def test_the_roster_adds_who_submitted_nothing(canvas):
    rows = read_csv(canvas["whole"] / "long.csv")
    assert [r["status"] for r in rows if r["student"] == "789"] == ["not submitted"]
    book = {r["student"]: r for r in read_csv(canvas["whole"] / "book.csv")}
    assert book["789"]["status"] == "not submitted" and book["789"]["total"] == "0"


def test_the_gradebook_totals_and_records_the_course_version(canvas):
    book = {r["student"]: r for r in read_csv(canvas["whole"] / "book.csv")}
    assert (book["123"]["total"], book["123"]["maximum"], book["123"]["percentage"]) == ("2", "2", "100.0")
    assert (book["456"]["total"], book["456"]["percentage"]) == ("0", "0.0")
    assert book["123"]["name"] == "Smith, John" and book["456"]["name"] == "O'Brien, Zoë"
    assert book["123"]["course_version"] and book["123"]["timeout_s"] == "120.0" and book["123"]["graded_at"]


def test_each_student_gets_a_feedback_page_results_json_and_the_executed_notebook(canvas):
    folder = canvas["whole"] / "feedback" / "123"
    page = (folder / "feedback.html").read_text()
    assert "to_grayscale" in page and "values_per_image" in page
    results = json.loads((folder / "results.json").read_text())
    assert results["score"] == 2 and {t["max_score"] for t in results["tests"]} == {1}
    assert all({"name", "score", "max_score", "output"} <= set(t) for t in results["tests"])
    executed = nbformat.read(folder / f"{NB}.ipynb", as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert not any(RESPONDER in c.source for c in code)  # the grader's questions are not cells of the notebook
    assert any("the grader asks for your answer" in json.dumps(c.outputs) for c in code)  # a check judges nothing while grading


def test_shards_are_disjoint_cover_the_class_and_merge_to_the_single_run(canvas):
    paths = [{json.loads(line)["path"] for line in shard.read_text().splitlines()} for shard in canvas["shards"]]
    assert not paths[0] & paths[1]
    whole = {json.loads(line)["path"] for line in (canvas["whole"] / "results.jsonl").read_text().splitlines()}
    assert paths[0] | paths[1] == whole
    assert canvas["merge_status"] == 0, canvas["merge_text"]

    def key(rows):
        return sorted((r["student"], r["notebook"], r["exercise"], r["status"], r["detail"]) for r in rows)

    assert key(read_csv(canvas["merged"] / "long.csv")) == key(read_csv(canvas["whole"] / "long.csv"))
    drop = ("course_version", "graded_at")
    strip = lambda rows: sorted(tuple((k, v) for k, v in r.items() if k not in drop) for r in rows)  # noqa: E731
    assert strip(read_csv(canvas["merged"] / "book.csv")) == strip(read_csv(canvas["whole"] / "book.csv"))


def test_shard_from_env_reads_slurm_and_refuses_nothing_to_read(tmp_path, monkeypatch, capsys):
    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "JOB_COMPLETION_INDEX", "SEEING_NETWORKS_SHARD", "SEEING_NETWORKS_SHARDS"):
        monkeypatch.delenv(name, raising=False)
    nbformat.write(nbformat.read(STUDENT, as_version=4), tmp_path / f"{NB}.ipynb")
    assert grade.main([str(tmp_path), "--shard-from-env"]) == 2
    assert "found no SLURM_ARRAY_TASK_ID" in capsys.readouterr().err
    assert grade.main([str(tmp_path), "--shard", "3/2"]) == 2
