"""Judging, in the grader's process: each exercise's record from the kernel against the course's reference.

Every row says why: a verdict from `Exercise.judge`, or what stopped the notebook before the grader
could ask (timed out in cell N after S s, the kernel died in cell N, the runner's error), or why the
reply could not be used. The source check (`helpers.grading.sourcecheck`, where present) can take
the credit back: an answer that calls a library implementation, or whose code is dynamic.
"""

from __future__ import annotations

from helpers.exercises.answers import exercise_seed
from helpers.grading.records import Result, one_line
from helpers.grading.runner import Run


def stop_reason(run: Run) -> tuple[str, str] | None:
    """(status, detail) when the notebook did not run to its end, with the cap or signal the sandbox saw."""
    if run.execution.stopped is None:
        return None
    status, detail = run.execution.stopped
    cap, signum = run.summary.get("cap"), run.summary.get("signal")
    if status == "kernel died" and cap:
        detail += f": it ran into the sandbox's {cap} cap"
    elif status == "kernel died" and isinstance(signum, int):
        detail += f" (signal {signum})"
    return status, detail


def source_findings(sources: list[str], exercise, accept=(), who: str = "") -> tuple[str, str] | None:
    """("uses a library implementation" | "needs review", detail) from the source check, or None.

    A "needs review" finding the instructor accepted (`accept`: its key, or "student:key") counts for
    nothing; the detail of one not accepted ends with the option that accepts it.
    """
    try:
        from helpers.grading.sourcecheck import accepted, scan
    except ImportError:
        return None
    findings = [f for f in scan(sources, exercise) if not accepted(f, accept, who)]
    library = [f.detail for f in findings if f.kind == "library"]
    if library:
        return "uses a library implementation", "; ".join(library)
    dynamic = [f for f in findings if f.kind == "dynamic"]
    if dynamic:
        return "needs review", "; ".join(f"{f.detail} [accept: --accept {who}:{f.key}]" for f in dynamic)
    return None


def tripped(answer: dict, exercise) -> tuple[str, str] | None:
    """("uses a library implementation", detail) when a tripwire noted a listed function while answering."""
    called = [n for n in answer.get("tripped", []) if isinstance(n, str) and n in getattr(exercise, "library", ())]
    if not called:
        return None
    return "uses a library implementation", f"`{called[0]}` was called while your answer ran (tripwire)"


def verdict(exercise, answer, seed: int, stopped: tuple[str, str] | None) -> tuple[bool, str, str]:
    """(passed, status, detail) of one exercise from what the kernel replied (`answer`: a record or why none)."""
    if isinstance(answer, dict):
        result = exercise.judge(answer, seed=exercise_seed(seed, exercise))
        if result.status == "not attempted" and answer.get("state") == "missing" and stopped:
            return False, stopped[0], f"{stopped[1]}, before `{exercise.name}` was defined"
        return result.passed, result.status, result.message
    if stopped:
        return False, *stopped
    if isinstance(answer, str):
        if answer.startswith("timed out"):
            return False, "timed out", f"answering the grader's question about `{exercise.name}` {answer}"
        if "died" in answer:
            return False, "kernel died", f"{answer} the grader's question about `{exercise.name}`"
        return False, "error", answer
    return False, "error", "the grader could not ask for this answer"


def verdicts(sub, exercises: list, run: Run, seed: int, sources: list[str], accept=()) -> list[Result]:
    """One row per exercise the course registers for the notebook, judged in this process."""
    stopped = stop_reason(run)
    rows = []
    for exercise in exercises:
        answer = run.answers.get(exercise.name)
        passed, status, detail = verdict(exercise, answer, seed, stopped)
        if isinstance(answer, dict) and answer.get("state") not in ("missing", None):
            flagged = source_findings(sources, exercise, accept, sub.student) or tripped(answer, exercise)
            if flagged and status in ("passed", "incorrect"):
                passed, (status, detail) = False, flagged
        rows.append(Result(sub.student, sub.notebook, exercise.name, passed, status, one_line(detail, 300), str(sub.path)))
    return rows
