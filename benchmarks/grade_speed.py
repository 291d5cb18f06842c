"""Time the grader on a generated class: N students, each handing in the whole series (every course notebook).

    python benchmarks/grade_speed.py [--students N] [--workers W] [--run-all] [--markdown FILE]

Student i hands in, for every notebook, the solution (i % 3 == 0), the untouched student version
(i % 3 == 1), or the solution with its first exercise reverted to the stub (i % 3 == 2). The class is
graded once with `helpers.grade.grade_class`, as `python -m helpers.grade` does, and the script prints
one line: "N students x M notebooks in S s (P s per student)", the machine, and whether the grader's
verdicts were the expected ones (all passed / all not attempted / all but the first passed).
`--run-all` also runs the cells tagged `grader-skip`, which is what grading cost before they were
tagged. Record results in benchmarks/README.md beside the series table, with the CPU model.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # its sibling series.py

import nbformat  # noqa: E402

from helpers import grade  # noqa: E402
from helpers.grading.course import known_notebooks  # noqa: E402
from helpers.build import BEGIN, strip_solutions  # noqa: E402
from series import cpu_name  # noqa: E402


def first_exercise_reverted(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The solution notebook with its first solution region turned back into the stub."""
    nb = nbformat.from_dict(solution)
    cell = next(c for c in nb.cells if c.cell_type == "code" and BEGIN in c.source)
    cell.source = strip_solutions(cell.source, "code")
    return nb


def make_class(folder: Path, students: int) -> dict[str, str]:
    """Write the submissions; return student -> what they handed in ("solved", "stub", "one unsolved")."""
    kinds = {}
    for i in range(students):
        kind = ("solved", "stub", "one unsolved")[i % 3]
        name = f"student{i:03d}"
        kinds[name] = kind
        for notebook in known_notebooks():
            solution = nbformat.read(ROOT / "notebooks" / "solutions" / f"{notebook}.ipynb", as_version=4)
            nb = {
                "solved": lambda: solution,
                "stub": lambda: nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4),
                "one unsolved": lambda: first_exercise_reverted(solution),
            }[kind]()
            (folder / name).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, folder / name / f"{notebook}.ipynb")
    return kinds


def expected(kind: str, rows: list) -> bool:
    """Are these rows (one student's) what their kind of submission must get?"""
    by_notebook: dict[str, list] = {}
    for r in rows:
        by_notebook.setdefault(r.notebook, []).append(r)
    for nb_rows in by_notebook.values():
        statuses = [r.status for r in nb_rows]
        if kind == "solved" and set(statuses) != {"passed"}:
            return False
        if kind == "stub" and set(statuses) != {"not attempted"}:
            return False
        if kind == "one unsolved" and (statuses[0] != "not attempted" or set(statuses[1:]) - {"passed"}):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--run-all", action="store_true", help="also run the cells tagged grader-skip")
    parser.add_argument("--markdown", help="append the result line to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="grade-speed-") as tmp:
        folder = Path(tmp) / "class"
        kinds = make_class(folder, args.students)
        started = time.monotonic()
        outcome = grade.grade_class([folder], workers=args.workers, skip=not args.run_all, out=io.StringIO())
        seconds = time.monotonic() - started
    notebooks = len(known_notebooks())
    right = all(expected(kind, [r for r in outcome.results if r.student == name]) for name, kind in kinds.items())
    per_notebook = sorted(outcome.seconds.items(), key=lambda kv: -kv[1])[:3]
    line = (
        f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC · {args.students} students x {notebooks} notebooks in "
        f"{seconds:.0f} s ({seconds / args.students:.0f} s per student) · workers {args.workers or os.cpu_count()} · "
        f"{'every cell run' if args.run_all else 'grader-skip cells skipped'} · verdicts as expected: {'yes' if right else 'NO'} · "
        f"{cpu_name()}, {os.cpu_count()} cores · slowest notebooks: "
        + ", ".join(f"{Path(p).parent.name}/{Path(p).stem} {s:.0f} s" for p, s in per_notebook)
    )
    print(line)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(line + "\n")
    return 0 if right else 1


if __name__ == "__main__":
    sys.exit(main())
