"""The Gradescope mode (`python -m helpers.grade --gradescope`): results.json is written whatever the upload
holds, with an explanation the student can act on; and, as root, a Python the sandbox user cannot run is
explained with the command that fixes it.

Gradescope's autograder specification: results.json holds `score` or per-test scores, `output`,
`visibility` / `stdout_visibility` ("hidden", "after_due_date", "after_published", "visible"),
`extra_data`, and `tests` (each with `score`, `max_score`, `name`, `number`, `output`, `tags`,
`visibility`, optional `status` "passed"/"failed"). No kernel runs in the failure cases here; one test
grades the solution of notebook 00 end to end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.grading import course
from helpers.grading.gradescope import find_upload, run_gradescope, UploadProblem

ROOT = Path(__file__).resolve().parents[1]
NB = "02_iou_ap_map"
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}


def check_results(path: Path) -> dict:
    """results.json as Gradescope reads it: the documented fields, of the documented types."""
    results = json.loads(path.read_text())
    assert isinstance(results["score"], (int, float)) and isinstance(results["output"], str) and results["output"]
    assert results["visibility"] in VISIBILITIES and results["stdout_visibility"] in VISIBILITIES
    for test in results["tests"]:
        assert isinstance(test["name"], str) and isinstance(test["output"], str)
        assert isinstance(test["score"], (int, float)) and isinstance(test["max_score"], (int, float)) and 0 <= test["score"] <= test["max_score"]
        assert test["visibility"] in VISIBILITIES and test.get("status", "passed") in ("passed", "failed")
    return results


def failure(tmp_path: Path, upload: Path, **options) -> dict:
    target = tmp_path / "results" / "results.json"
    run_gradescope(NB, upload, target, **options)
    results = check_results(target)
    points = course.course_points([NB])
    assert results["score"] == 0
    assert [t["max_score"] for t in results["tests"]] == list(points.values())  # the student sees what it is worth
    assert all(t["output"].startswith("not graded: ") and t["visibility"] == "visible" for t in results["tests"])
    return results


def test_an_upload_without_a_notebook(tmp_path):
    upload = tmp_path / "submission"
    upload.mkdir()
    (upload / "answers.py").write_text("print(1)\n")
    results = failure(tmp_path, upload)
    assert results["output"] == f"No notebook (.ipynb file) was found in your upload (it holds answers.py). Upload your {NB}.ipynb."


def test_the_wrong_notebook(tmp_path):
    upload = tmp_path / "submission"
    upload.mkdir()
    shutil.copy(ROOT / "notebooks" / "03_faster_rcnn.ipynb", upload / "03_faster_rcnn.ipynb")
    results = failure(tmp_path, upload)
    assert results["output"].startswith(f"This assignment grades notebook {NB}, but your upload is notebook 03_faster_rcnn")
    # renamed, it is still notebook 03: its check cells say so
    (upload / "03_faster_rcnn.ipynb").rename(upload / "homework.ipynb")
    assert "your upload is notebook 03_faster_rcnn (homework.ipynb)" in failure(tmp_path, upload)["output"]


def test_notebooks_in_two_folders(tmp_path):
    upload = tmp_path / "submission"
    for folder in ("draft", "final"):
        (upload / folder).mkdir(parents=True)
        shutil.copy(ROOT / "notebooks" / f"{NB}.ipynb", upload / folder / f"{NB}.ipynb")
    results = failure(tmp_path, upload)
    assert results["output"].startswith("Your upload has notebooks in 2 folders (draft, final)")


def test_the_upload_is_found_by_its_name_or_its_check_cells(tmp_path):
    known = course.known_notebooks()
    upload = tmp_path / "submission"
    (upload / ".ipynb_checkpoints").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / f"{NB}.ipynb", upload / "mine.ipynb")
    shutil.copy(ROOT / "notebooks" / f"{NB}.ipynb", upload / ".ipynb_checkpoints" / "mine-checkpoint.ipynb")
    assert find_upload(upload, NB, known) == upload / "mine.ipynb"
    shutil.copy(ROOT / "notebooks" / f"{NB}.ipynb", upload / f"{NB}.ipynb")
    with pytest.raises(UploadProblem, match=f"2 notebooks that are {NB}"):
        find_upload(upload, NB, known)


def test_an_unknown_assignment_and_an_unexpected_error_still_answer(tmp_path, monkeypatch):
    upload = tmp_path / "submission"
    upload.mkdir()
    target = tmp_path / "results.json"
    run_gradescope("02_typo", upload, target)
    assert "which the course does not have" in check_results(target)["output"]

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("helpers.grading.gradescope.find_upload", broken)
    results = failure(tmp_path, upload)
    assert results["output"].startswith("The autograder hit an unexpected error") and "RuntimeError: disk full" in results["output"]


@pytest.fixture
def closed_python(tmp_path_factory):
    """This environment's Python, reached through a folder that other users may not enter (mode 0700)."""
    if os.geteuid() != 0:
        pytest.skip("the sandbox user exists only when grading as root")
    closed = tmp_path_factory.mktemp("closed")
    venv = closed / "venv"
    (venv / "bin").mkdir(parents=True)
    shutil.copy(Path(sys.prefix) / "pyvenv.cfg", venv / "pyvenv.cfg")
    (venv / "bin" / "python").symlink_to(os.path.realpath(sys.executable))
    (venv / "lib").symlink_to(Path(sys.prefix) / "lib")
    closed.chmod(0o700)
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import helpers.grading, ipykernel"], cwd=ROOT, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this Python cannot run the course through a copied venv")
    yield closed, python
    closed.chmod(0o755)


def test_a_sandbox_that_cannot_start(tmp_path, closed_python):
    closed, python = closed_python
    upload = tmp_path / "submission"
    upload.mkdir()
    shutil.copy(ROOT / "notebooks" / "solutions" / f"{NB}.ipynb", upload / f"{NB}.ipynb")
    target = tmp_path / "results" / "results.json"
    done = subprocess.run([str(python), "-m", "helpers.grade", "--gradescope", "--notebook", NB, "--submission", str(upload), "--results-json", str(target)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    results = check_results(target)
    assert results["score"] == 0 and results["output"].startswith("The grader could not start its sandbox")
    assert "Run `chmod o+x " in results["output"] and f" {closed}` (it lets others pass through" in results["output"]


def test_root_s_permission_error_says_what_to_run(tmp_path, closed_python):
    closed, python = closed_python
    done = subprocess.run([str(python), "-m", "helpers.grade", str(ROOT / "notebooks" / "solutions" / f"{NB}.ipynb")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2
    message = done.stderr.strip().splitlines()[-1]
    assert "Errno 13" not in message and "may not be entered by other users" in message
    assert "Run `chmod o+x " in message and f" {closed}` (it lets others pass through" in message


def test_a_graded_upload_has_one_test_per_exercise_in_notebook_order(tmp_path):
    upload = tmp_path / "submission"
    upload.mkdir()
    notebook = "00_start_here"
    shutil.copy(ROOT / "notebooks" / "solutions" / f"{notebook}.ipynb", upload / "my work.ipynb")
    target = tmp_path / "results.json"
    results = run_gradescope(notebook, upload, target, visibility="after_published")
    assert check_results(target) == json.loads(json.dumps(results))
    points = course.course_points([notebook])
    assert results["score"] == sum(points.values()) and results["visibility"] == "after_published"
    from helpers.grading.conventions import check_cell_exercise

    cells = json.loads((upload / "my work.ipynb").read_text())["cells"]
    in_order = list(dict.fromkeys(n for c in cells if c["cell_type"] == "code" and (n := check_cell_exercise("".join(c["source"])))))
    assert [t["name"] for t in results["tests"]] == [f"{notebook}: {ex}" for ex in in_order] and len(in_order) == len(points)
    assert {t["visibility"] for t in results["tests"]} == {"after_published"}
    assert results["extra_data"]["uploaded_file"] == "my work.ipynb"


def test_the_folders_in_the_way_are_found_from_the_real_path(tmp_path):
    from helpers.grading.access import closed_on_the_way, fix_command

    outer, inner = tmp_path / "home", tmp_path / "home" / "me" / "venv" / "bin"
    inner.mkdir(parents=True)
    python = inner / "python"
    python.write_text("#!/bin/sh\n")
    for folder in (tmp_path, outer, outer / "me", outer / "me" / "venv", inner):
        folder.chmod(0o755)
    python.chmod(0o755)
    (outer / "me").chmod(0o700)
    folders, files = closed_on_the_way(python)
    assert outer / "me" in folders and files == []
    assert fix_command(python).startswith("chmod o+x ") and fix_command(python).endswith(str(outer / "me"))
    (outer / "me").chmod(0o711)
    python.chmod(0o700)
    assert closed_on_the_way(python)[1] == [python] and fix_command(python).endswith(f"chmod o+rx {python}")
