"""Gradescope's autograder: one upload, one submission, and a ``results.json`` whatever happens.

Gradescope runs ``/autograder/run_autograder`` with the student's upload in ``/autograder/submission``
and shows the student what ``/autograder/results/results.json`` says; with no such file it shows only
"The autograder failed to execute correctly". `run_gradescope` therefore writes that file on every path
out: a graded notebook's tests, or, when the upload cannot be graded (no notebook, the wrong notebook
for this assignment, notebooks in two folders, a sandbox that cannot start, any unexpected error), a
score of 0 with a visible explanation of what to upload or whom to tell.

``python -m helpers.grade --gradescope --notebook 02_iou_ap_map`` is the command line (`add_parser`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import asdict
from pathlib import Path

SUBMISSION = "/autograder/submission"
RESULTS = "/autograder/results/results.json"
GRADESCOPE_TIMEOUT = 600  # seconds: Gradescope's default limit for a whole autograder run
STUDENT = "submission"


class UploadProblem(Exception):
    """An upload the grader cannot grade as this assignment; the message is for the student."""


def _labels(path: Path) -> list[str]:
    """The notebooks named by the course's check-cell labels in the notebook at `path` ([] if unreadable)."""
    try:
        nb = json.loads(path.read_bytes())
        return [str(c.get("metadata", {}).get("exercise", {}).get("notebook", "")) for c in nb.get("cells", [])
                if isinstance(c, dict) and isinstance(c.get("metadata", {}).get("exercise"), dict)]  # fmt: skip
    except (OSError, ValueError, AttributeError, RecursionError):
        return []


def identify(path: Path, known: list[str]) -> set[str]:
    """The course notebooks a file says it is: the one its name names, and the one most of its labels name."""
    from helpers.grading.submissions import notebook_from_filename

    said = {notebook_from_filename(path)}
    labels = Counter(label for label in _labels(path) if label in known)
    if labels:
        said.add(labels.most_common(1)[0][0])
    return said & set(known)


def find_upload(folder: str | Path, notebook: str, known: list[str]) -> Path:
    """The one notebook of the upload in `folder` to grade as `notebook`. Raises UploadProblem, saying what
    to upload: no notebook, notebooks in two folders, several candidates, or a notebook that is another
    course notebook (by its name or by its check cells)."""
    folder = Path(folder)
    found = [p for p in sorted(folder.rglob("*.ipynb")) if p.is_file()
             and not any(part.startswith(".") or part == "__MACOSX" for part in p.relative_to(folder).parts)]  # fmt: skip
    if not found:
        listed = sorted(p.name for p in folder.rglob("*") if p.is_file())[:5] if folder.is_dir() else []
        raise UploadProblem(f"No notebook (.ipynb file) was found in your upload{' (it holds ' + ', '.join(listed) + ')' if listed else ''}. "
                            f"Upload your {notebook}.ipynb.")  # fmt: skip
    folders = sorted({str(p.parent.relative_to(folder)) for p in found})
    if len(folders) > 1:
        raise UploadProblem(f"Your upload has notebooks in {len(folders)} folders ({', '.join(f or '(top)' for f in folders)}), so the "
                            f"grader cannot tell which one to grade. Upload only your {notebook}.ipynb.")  # fmt: skip
    mine = [p for p in found if notebook in identify(p, known)]
    if len(mine) == 1:
        return mine[0]
    if len(mine) > 1:
        raise UploadProblem(f"Your upload has {len(mine)} notebooks that are {notebook} ({', '.join(p.name for p in mine)}). Upload only one.")
    others = sorted({nb for p in found for nb in identify(p, known)})
    if others:
        raise UploadProblem(f"This assignment grades notebook {notebook}, but your upload is notebook {', '.join(others)} "
                            f"({', '.join(p.name for p in found)}). Upload your {notebook}.ipynb here.")  # fmt: skip
    if len(found) > 1:
        raise UploadProblem(f"None of the notebooks in your upload ({', '.join(p.name for p in found)}) is {notebook}. Upload your {notebook}.ipynb.")
    return found[0]  # renamed and unlabelled: graded as this assignment's notebook


def failure_results(message: str, notebook: str, points: dict, meta: dict, seconds: float) -> dict:
    """results.json for an upload that could not be graded: 0 points, `message` shown at the top and in
    a test per exercise (so the student also sees what the assignment is worth)."""
    from helpers.grading.gradebook import _number

    tests = [{"name": f"{nb}: {ex}", "number": f"1.{i}", "score": 0, "max_score": _number(worth), "status": "failed",
              "output": f"not graded: {message}", "visibility": "visible"}
             for i, ((nb, ex), worth) in enumerate(((k, v) for k, v in points.items() if k[0] == notebook), start=1)]  # fmt: skip
    return {"score": 0, "execution_time": round(seconds, 1), "output": message, "visibility": "visible",
            "stdout_visibility": "hidden", "extra_data": {"meta": meta, "notebook": notebook}, "tests": tests}  # fmt: skip


def write_results(results: dict, path: str | Path) -> Path:
    """Write `results` as JSON to `path` (its folder made), through a temporary file: never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    os.replace(partial, path)
    return path


def grade_upload(upload: Path, notebook: str, options: dict) -> tuple[dict, dict]:
    """(results.json, meta) of one notebook graded as `notebook`, copied first under that notebook's name
    into a private folder (so the grader knows what it is, whatever the student called it)."""
    from helpers.grading import course
    from helpers.grading.feedback import gradescope_results
    from helpers.grading.grader import grade_class

    points = course.course_points([notebook])
    with tempfile.TemporaryDirectory(prefix="gradescope-upload-") as tmp:
        copy = Path(tmp) / f"{notebook}.ipynb"
        shutil.copyfile(upload, copy)
        outcome = grade_class([copy], timeout=options["timeout"], notebook_timeout=options["notebook_timeout"], workers=1, student=STUDENT)
    rows = [asdict(r) for r in outcome.results if r.student == STUDENT]
    results = gradescope_results(rows, points, outcome.meta, options["visibility"], options["hidden_visibility"])
    results["extra_data"]["uploaded_file"] = upload.name
    return results, outcome.meta


def run_gradescope(notebook: str, submission: str | Path = SUBMISSION, results_path: str | Path = RESULTS, **options) -> dict:
    """Grade the upload in `submission` as `notebook` and write Gradescope's results.json to
    `results_path`, whatever happens (see the module's docstring); return what was written.

    `options`: timeout and notebook_timeout (seconds), visibility and hidden_visibility (Gradescope's
    visibilities, see `feedback.gradescope_results`).
    """
    from helpers.grading import course
    from helpers.grading.gradebook import course_meta

    started = time.monotonic()
    options = {"timeout": 300, "notebook_timeout": 480, "visibility": "visible", "hidden_visibility": "after_published", **options}
    known = course.known_notebooks()
    meta = {"course_version": "unknown", "timeout_s": options["timeout"], "date": ""}
    points: dict = {}
    try:
        meta = course_meta(options["timeout"])
        if notebook not in known:
            raise UploadProblem(f"The autograder is set up for notebook {notebook!r}, which the course does not have "
                                f"(it has {', '.join(known)}): tell your instructor.")  # fmt: skip
        points = course.course_points([notebook])
        upload = find_upload(submission, notebook, known)
        results, _ = grade_upload(upload, notebook, options)
        results["execution_time"] = round(time.monotonic() - started, 1)
    except UploadProblem as problem:
        results = failure_results(str(problem), notebook, points, meta, time.monotonic() - started)
    except PermissionError as error:  # the sandbox cannot start (grader.check_sandbox_can_start says why)
        message = f"The grader could not start its sandbox, so your notebook was not run; this is not your fault: tell your instructor. ({error})"
        results = failure_results(message, notebook, points, meta, time.monotonic() - started)
    except BaseException as error:  # noqa: BLE001 - Gradescope must get a results.json whatever happened
        if isinstance(error, KeyboardInterrupt):
            message = "The autograder was stopped before it finished (Gradescope's time limit?): tell your instructor."
        else:
            message = (f"The autograder hit an unexpected error, so your notebook was not graded; this is not your fault: tell your "
                       f"instructor. ({type(error).__name__}: {error})")  # fmt: skip
        traceback.print_exc(file=sys.stderr)
        results = failure_results(message, notebook, points, meta, time.monotonic() - started)
    write_results(results, results_path)
    return results


def add_parser(commands) -> argparse.ArgumentParser:
    """The `gradescope` subcommand (also reached as `python -m helpers.grade --gradescope ...`)."""
    from helpers.grading.feedback import VISIBILITIES

    parser = commands.add_parser("gradescope", help="grade one Gradescope upload and always write results.json")
    parser.add_argument("--notebook", required=True, help="the course notebook this assignment grades, e.g. 02_iou_ap_map")
    parser.add_argument("--submission", default=SUBMISSION, help=f"the upload's folder (default {SUBMISSION})")
    parser.add_argument("--results-json", default=RESULTS, help=f"where results.json goes (default {RESULTS})")
    parser.add_argument("--visibility", choices=VISIBILITIES, default="visible", help="visibility of the score and of each exercise's test (default visible)")
    parser.add_argument("--hidden-visibility", choices=VISIBILITIES, default="after_published",
                        help="visibility of a failure's details when they show a hidden case's inputs (default after_published)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=300, help="seconds per cell, wall clock (default 300)")
    parser.add_argument("--notebook-timeout", type=float, default=480,
                        help=f"seconds for the notebook, wall clock (default 480: below Gradescope's {GRADESCOPE_TIMEOUT} s limit)")  # fmt: skip
    return parser


def command(args) -> int:
    """Run the gradescope subcommand: 0 whenever results.json was written (it always is, unless the disk fails)."""
    if args.notebook_timeout >= GRADESCOPE_TIMEOUT:
        print(f"warning: --notebook-timeout {args.notebook_timeout:g} s is not below Gradescope's default limit of {GRADESCOPE_TIMEOUT} s for the "
              "whole run: raise the assignment's autograder timeout too, or Gradescope may stop the run before results.json is written", file=sys.stderr)  # fmt: skip
    results = run_gradescope(args.notebook, args.submission, args.results_json, timeout=args.timeout,
                             notebook_timeout=args.notebook_timeout, visibility=args.visibility, hidden_visibility=args.hidden_visibility)  # fmt: skip
    print(f"wrote {args.results_json}: {results['score']} points. {results['output']}")
    return 0
