"""The result row, defined once: one exercise of one student's notebook, and what each status means."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

ROW_FIELDS = ("student", "notebook", "exercise", "passed", "status", "detail", "path")
NOT_SUBMITTED = "not submitted"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

#: What each status means (the table ends with the ones that occurred).
STATUSES = {
    "passed": "the kernel's answer matches the reference on every case, hidden ones included",
    "incorrect": "the answer differs from the reference (the detail says where)",
    "not attempted": "the answer is still the stub, or was never defined",
    "uses the reference": "the answer is, or calls, the course's own reference, not the student's work",
    "uses a library implementation": "the answer calls a library function the exercise asks to write by hand",
    "needs review": "the answer's code is dynamic (exec, getattr on a built name, ...): no points until accepted",
    "timed out": "the notebook ran past a time limit before the grader could ask for this answer",
    "kernel died": "the kernel died before the grader could ask for this answer",
    "error": "the kernel's reply to the grader's question was missing or unreadable (the detail says why)",
    "runner error": "the grader could not run this notebook (the detail gives the error)",
    "invalid notebook": "the file is not a readable notebook",
    "empty notebook": "the notebook has no code cells",
    "no exercises": "the course defines no exercise for this notebook",
    NOT_SUBMITTED: "the roster lists the student, who handed in no notebook",
}
#: Statuses that mean the notebook did not run to the end (the summary counts them).
NOT_RUN = ("invalid notebook", "empty notebook", "timed out", "kernel died", "runner error")


@dataclass
class Result:
    """One row of the grade table: one exercise of one student's notebook."""

    student: str
    notebook: str
    exercise: str
    passed: bool
    status: str
    detail: str = ""
    path: str = ""


def one_line(text: str, limit: int = 160) -> str:
    """`text` on one line, ANSI colours removed, at most `limit` characters."""
    text = " ".join(ANSI.sub("", str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def printable(text: str) -> str:
    """`text` with every control character written as an escape (a newline becomes `\\n`), so that a
    name from an LMS can never start a new row of a printed table."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(text))


def read_results(path: Path) -> dict[tuple[str, str], dict]:
    """{(path, sha256): line, its "rows" as `Result`s} of a results file an earlier run wrote (unreadable lines skipped)."""
    done = {}
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                rows = [Result(**row) for row in entry["rows"]]
                done[(entry["path"], entry["sha256"])] = {**entry, "rows": rows}
            except (ValueError, KeyError, TypeError):
                continue
    return done


def safe_name(text: str) -> str:
    """A file name made of `text`'s letters, digits, '-', '_' and '.' only (never a path)."""
    name = re.sub(r"[^\w.-]+", "_", str(text)).strip("._") or "unnamed"
    return name[:100]
