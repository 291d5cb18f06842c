"""Grading a class: every submission prepared, run in its sandbox, asked, and judged; one row per exercise.

`grade_class(paths, ...)` is what `python -m helpers.grade` runs. Whatever one submission holds, it
costs only its own rows: any error while reading, preparing, running or judging it becomes its row.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from helpers.grading import course, shards
from helpers.exercises.answers import question
from helpers.grading.feedback import in_notebook_order, summary_line
from helpers.grading.judging import verdicts
from helpers.grading.prepare import prepare
from helpers.grading.records import NOT_SUBMITTED, Result, one_line, printable, read_results
from helpers.grading.roster import missing_students
from helpers.grading.runner import SANDBOX_GID, SANDBOX_UID, Runners, run_graded
from helpers.grading.submissions import Submission, entry_record, find_class, read_submission

DEFAULT_TIMEOUT = 900  # seconds per cell
DEFAULT_NOTEBOOK_TIMEOUT = 3600  # seconds per notebook, wall clock


@dataclass
class Outcome:
    """Everything one grading run produced, for the outputs (tables, gradebooks, feedback)."""

    results: list[Result]
    seconds: dict[str, float]
    superseded: list = field(default_factory=list)  # files a later one replaced (submissions.Entry)
    executed: dict[str, object] = field(default_factory=dict)  # path -> the notebook as it ran
    meta: dict = field(default_factory=dict)
    entries: dict = field(default_factory=dict)  # (student, notebook) -> the submissions.Entry it came from (LMS, late, time)
    elapsed: float = 0.0  # seconds the whole run took (what every summary line reports)


def check_sandbox_can_start(root: Path) -> None:
    """As root, the kernels run as an unprivileged user: make sure that user can run this Python."""
    if os.geteuid() != 0:
        return
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import helpers.exercises.answers, ipykernel"],
            user=SANDBOX_UID, group=SANDBOX_GID, extra_groups=[], cwd=root, capture_output=True, text=True,
            env={"PATH": "/usr/bin:/bin", "HOME": str(root), "PYTHONSAFEPATH": "1"},
        )  # fmt: skip
    except PermissionError as error:  # the exec itself failed: a folder on the way to this Python is closed to others
        from helpers.grading.access import explain_denied

        raise PermissionError(explain_denied(sys.executable, SANDBOX_UID, error)) from None
    if probe.returncode != 0:
        denied = one_line(probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "permission denied", 200)
        raise PermissionError(
            f"grading as root runs the kernels as uid {SANDBOX_UID}, which cannot run {sys.executable} ({denied}). "
            "Grade as an ordinary user, or make the Python environment and the course readable by others "
            "(for a Python under /root: chmod o+x /root)."
        )


def grade(paths: list[str | Path], **options) -> tuple[list[Result], dict[str, float], int]:
    """Grade every notebook under `paths`; return (results, seconds per notebook path, 0) (see `grade_class`)."""
    outcome = grade_class(paths, **options)
    return outcome.results, outcome.seconds, 0


def grade_one(sub: Submission, root: Path, settings: dict, runners: Runners, outcome: Outcome) -> list[Result]:
    """The rows of one submission. Never raises: a failure anywhere becomes this submission's rows."""
    exercises = []
    try:
        exercises = course.course_exercises(sub.notebook, settings["modules"]) if not sub.problem else []
        if sub.problem or not exercises:
            names = [e.name for e in exercises] or ["-"]
            status, detail = (sub.problem, sub.detail) if sub.problem else ("no exercises", f"the course has no exercises for {sub.notebook!r}")
            return [Result(sub.student, sub.notebook, name, False, status, detail, str(sub.path)) for name in names]
        names = [e.name for e in exercises]
        try:
            nb, labels = prepare(sub.nb, sub.notebook, names, settings["skip"])
        except Exception as error:  # noqa: BLE001 - malformed beyond what reading caught
            detail = one_line(f"{type(error).__name__}: {error}")
            return [Result(sub.student, sub.notebook, name, False, "invalid notebook", detail, str(sub.path)) for name in names]
        module = course.exercise_module(sub.notebook, settings["modules"])
        run = run_graded(nb, labels, sub.notebook, module, {e.name: question(e, settings["seed"]) for e in exercises}, root,
                         settings["timeout"], settings["notebook_timeout"], settings["threads"], runners, tripwires=_tripwires(exercises))  # fmt: skip
        outcome.seconds[str(sub.path)] = run.execution.seconds
        if settings["keep_executed"]:
            outcome.executed[str(sub.path)] = run.execution.nb
        if run.summary.get("protections"):
            outcome.meta.setdefault("sandbox", run.summary["protections"])
        sources = [c.get("source", "") for c in sub.nb.cells if c.get("cell_type") == "code"]
        return in_notebook_order(verdicts(sub, exercises, run, settings["seed"], sources, settings.get("accept", ())), nb)
    except BaseException as error:  # noqa: BLE001 - one submission, one row, whatever it holds
        if isinstance(error, KeyboardInterrupt):
            raise
        detail = one_line(f"{type(error).__name__}: {error}", 300)
        return [Result(sub.student, sub.notebook, e.name, False, "runner error", detail, str(sub.path)) for e in exercises or [type("E", (), {"name": "-"})]]


def _tripwires(exercises) -> str:
    """The tripwires' source for these exercises (`sourcecheck.tripwire_source`), or "" without it."""
    try:
        from helpers.grading.sourcecheck import tripwire_source
    except ImportError:
        return ""
    return tripwire_source(exercises) if any(getattr(e, "library", ()) for e in exercises) else ""


def _check_options(timeout, notebook_timeout, workers, resume, results_file) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if isinstance(notebook_timeout, bool) or not isinstance(notebook_timeout, (int, float)) or notebook_timeout <= 0:
        raise ValueError(f"notebook_timeout must be a positive number of seconds, got {notebook_timeout!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if resume and results_file is None:
        raise ValueError("resume needs results_file, the file an earlier run wrote")


def grade_class(
    paths: list[str | Path],
    timeout: float = DEFAULT_TIMEOUT,
    workers: int | None = None,
    out=None,
    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT,
    results_file: str | Path | None = None,
    resume: bool = False,
    seed: int | None = None,
    exercise_modules: dict[str, str] | None = None,
    shard: tuple[int, int] | None = None,
    roster: list | None = None,
    keep_executed: bool = False,
    skip: bool = True,
    accept: list[str] | None = None,
    student: str | None = None,
    groups: list | None = None,
) -> Outcome:
    """Grade every notebook under `paths` (one per student and notebook: the latest file).

    `seed` draws the hidden cases (default: a fresh secret one, `secrets.randbits`, that never leaves
    this process but inside the questions); `shard` (k, n) grades only slice k of n; `roster`
    (roster.Student list) adds a "not submitted" row per student with no notebook; `results_file` gets
    one JSON line per notebook as it finishes, and with `resume` the notebooks already in it are not
    graded again; `keep_executed` keeps each notebook as it ran (for feedback); `skip` leaves out the
    cells tagged `grader-skip`; `accept` lists the "needs review" findings the instructor accepted (keys, or "student:key"); `student` names the student of loose notebooks and `groups` (Canvas's group
    export) credits every group member (see `submissions.find_class`). Raises FileNotFoundError for a missing path, ValueError when no
    notebook is found or an argument is out of range, PermissionError when the sandbox user cannot
    run this Python (root only).
    """
    from tqdm.auto import tqdm

    from helpers.grading.gradebook import course_meta

    out = out or sys.stdout
    _check_options(timeout, notebook_timeout, workers, resume, results_file)
    found, superseded = find_class(paths, student, groups)
    if shard is not None:
        found = [s for s in found if s.entry in shards.shard([s.entry for s in found], *shard)]
    if not found and not roster:
        raise ValueError(f"paths must hold at least one .ipynb notebook, got {[str(p) for p in paths]}")
    subs = [read_submission(s) for s in found]
    meta = course_meta(timeout)
    results_path = Path(results_file) if results_file else None
    if results_path:
        results_path.parent.mkdir(parents=True, exist_ok=True)
    done = read_results(results_path) if resume and results_path else {}
    todo = [s for s in subs if (str(s.path), s.sha256) not in done]
    distinct = list({str(s.path): s for s in todo}.values())  # a group's one file is graded once
    workers = workers or max(1, min(os.cpu_count() or 1, len(distinct) or 1))
    settings = {
        "modules": exercise_modules, "skip": skip, "timeout": timeout, "notebook_timeout": notebook_timeout, "keep_executed": keep_executed,
        "seed": secrets.randbits(63) if seed is None else int(seed), "accept": list(accept or []),
        "threads": max(1, min(2, (os.cpu_count() or 1) // workers)),  # never more kernels' threads than cores
    }  # fmt: skip
    already = len({str(s.path) for s in subs}) - len(distinct)
    print(f"Grading {len(distinct) + already} notebook(s)" + (f": {already} already graded, {len(distinct)} to run" if done else "")
          + f", with {workers} worker(s) of {settings['threads']} thread(s), at most {timeout:g} s per cell and {notebook_timeout:g} s per notebook.",
          file=out, flush=True)  # fmt: skip
    outcome = Outcome([], {}, superseded, meta=meta, entries={(s.student, s.notebook): s.entry for s in subs})
    graded: dict[str, list[Result]] = {str(s.path): done[(str(s.path), s.sha256)]["rows"] for s in subs if (str(s.path), s.sha256) in done}
    lock, runners = threading.Lock(), Runners()
    started = time.monotonic()

    def one(sub: Submission) -> list[Result]:
        rows = grade_one(sub, root, settings, runners, outcome)
        with lock:
            if results_path and not runners.stopping:
                with results_path.open("a") as f:
                    line = {"path": str(sub.path), "sha256": sub.sha256, "meta": meta, "rows": [asdict(r) for r in rows], "entry": entry_record(sub.entry)}
                    f.write(json.dumps(line) + "\n")
        return rows

    with tempfile.TemporaryDirectory(prefix="seeing-networks-grade-") as tmp:
        root = Path(tmp)
        root.chmod(0o711)  # the sandbox user may pass through to its own folder, and list nothing
        if any(not s.problem for s in distinct):
            check_sandbox_can_start(root)
            outcome.meta["sandbox"] = _protections()
        previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        try:
            futures = {pool.submit(one, s): s for s in distinct}
            bar = tqdm(concurrent.futures.as_completed(futures), total=len(futures), desc="grading", unit="notebook", file=sys.stderr)
            for future in bar:
                sub = futures[future]
                graded[str(sub.path)] = future.result()
                got = sum(r.passed for r in graded[str(sub.path)])
                bar.write(printable(f"  graded {sub.student}/{sub.path.name}: {got}/{len(graded[str(sub.path)])}"), file=out)
        except KeyboardInterrupt:
            print("\ngrading stopped: stopping every notebook still running", file=out, flush=True)
            runners.stop_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    for s in subs:  # every student of a group submission gets the group's rows
        outcome.results += [Result(**{**asdict(r), "student": s.student}) for r in graded.get(str(s.path), [])]
    for student in missing_students(roster or [], [s.entry for s in subs]):
        outcome.results.append(Result(student.id, "-", "-", False, NOT_SUBMITTED, "", ""))
    outcome.elapsed = time.monotonic() - started
    print(summary_line(outcome.results, superseded, outcome.elapsed, _describe(outcome.meta.get("sandbox"))), file=out, flush=True)
    return outcome


def _protections() -> dict:
    """What the sandboxes of this run get (`helpers.sandbox.protections`: network, classmates, memory ...)."""
    try:
        from helpers.sandbox import protections

        return protections()
    except Exception as error:  # noqa: BLE001 - the summary says so; each notebook's run still reports its own trouble
        return {"unknown": one_line(f"{type(error).__name__}: {error}", 120)}


def _describe(protections) -> str:
    if isinstance(protections, dict):
        return "; ".join(f"{k}: {v}" for k, v in protections.items())
    return str(protections or "")


def _interrupt(signum, frame):
    raise KeyboardInterrupt
