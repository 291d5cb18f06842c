"""Grade submitted notebooks: run each one under nbval and read the verdict of every check cell.

    python -m helpers.grade PATH... [--csv FILE] [--timeout S] [--workers N]

PATH is a notebook or a folder searched for notebooks. A notebook directly inside a folder you name
belongs to a student called like the folder; one further down belongs to the first folder below it
(`submissions/alice/01_vision_tasks.ipynb` is alice's). A notebook named on its own belongs to the
folder it sits in.

Each notebook runs top to bottom in one fresh kernel (nbval in lax mode, in this Python environment):
a cell that raises fails, the others pass, and outputs are only compared in cells tagged
`nbval-check-output`. The check cells carry `{"exercise": {"notebook": ..., "id": ...}}` in their
metadata (written by `python -m helpers.build`), so every check cell's result is an exercise's result.
An exercise whose check cell is gone, was edited so it no longer checks that exercise, or never ran
counts as failed. A cell running longer than `--timeout` seconds is interrupted; it and every exercise
after it in that notebook count as failed. A file that is not a notebook (invalid JSON, no cells) is
reported, and the others are graded all the same. Notebooks run in parallel (pytest-xdist,
`--dist loadfile`, so each notebook keeps its one kernel).

The exit status is 0 whenever grading ran, whatever the scores; 2 when there was nothing to grade
or the arguments were wrong; 1 when pytest itself broke.

Grading runs the submitted code with your permissions: do it in a container or on a throwaway machine.

This module is also the small pytest plugin (`-p helpers.grade`) that records every cell's result.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = ROOT / "notebooks" / "solutions"
DEFAULT_TIMEOUT = 900
RECORD_OPTION = "--seeing-networks-record"
RECORD_KEY = "seeing_networks_cell"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
NOTEBOOK_STEM = re.compile(r"(\d\d_[A-Za-z0-9_]+)")

#: What each status means (the table ends with the ones that occurred).
STATUSES = {
    "passed": "the check cell ran and said Correct",
    "incorrect": "the check ran and found a wrong answer",
    "not attempted": "the answer is still the stub, or was never defined",
    "error": "the check cell raised something other than a verdict",
    "timed out": "the check cell ran past the per-cell timeout",
    "after timeout": "an earlier cell of this notebook timed out",
    "skipped": "the check cell was marked to be skipped",
    "check cell missing": "no check cell for this exercise in the notebook",
    "check cell edited": "the cell labelled as this exercise's check no longer checks it",
    "not run": "no result came back for the check cell (the kernel died or grading was stopped)",
    "invalid notebook": "the file is not a readable notebook",
    "empty notebook": "the notebook has no code cells",
    "no exercises": "the notebook has no check cell and the course defines no exercise for it",
}


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


@dataclass
class Submission:
    """A notebook to grade: whose it is, where it is, and what reading it found."""

    student: str
    path: Path
    notebook: str = ""  # the course notebook it is, e.g. "01_vision_tasks"
    problem: str = ""  # "invalid notebook" / "empty notebook" when it cannot be run
    detail: str = ""
    check_cells: list = field(default_factory=list)  # [(code cell number, exercise id or None, source ok)]
    code_cells: int = 0


# --------------------------------------------------------------------------------------------
# Finding and reading submissions
# --------------------------------------------------------------------------------------------


def find_submissions(paths: list[str | Path]) -> list[Submission]:
    """Every notebook under `paths` (files or folders), each with its student. Raises FileNotFoundError."""
    found: dict[Path, Submission] = {}
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise FileNotFoundError(f"paths must exist, got {str(given)!r}")
        if path.is_file():
            found.setdefault(path.resolve(), Submission(student=path.resolve().parent.name, path=path.resolve()))
            continue
        top = path.resolve()
        for nb in sorted(top.rglob("*.ipynb")):
            rel = nb.relative_to(top)
            if any(part.startswith(".") for part in rel.parts):  # .ipynb_checkpoints and friends
                continue
            student = rel.parts[0] if len(rel.parts) > 1 else top.name
            found.setdefault(nb, Submission(student=student, path=nb))
    return list(found.values())


def known_notebooks() -> list[str]:
    """The course's notebook names (file stems of `notebooks/solutions/NN_*.ipynb`)."""
    return sorted(p.stem for p in SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb"))


def notebook_from_filename(path: Path) -> str:
    """Guess the course notebook from a file name: `alice_01_vision_tasks.ipynb` -> `01_vision_tasks`."""
    names = known_notebooks()
    for name in names:
        if name in path.stem:
            return name
    match = NOTEBOOK_STEM.search(path.stem)
    if match:
        prefix = match.group(1)[:2]
        same = [n for n in names if n.startswith(prefix + "_")]
        if len(same) == 1:
            return same[0]
    return path.stem


def read_submission(sub: Submission) -> Submission:
    """Read the notebook: its check cells and which course notebook it is, or what is wrong with it."""
    import nbformat

    try:  # (a schema nit is only logged by nbformat: nbval runs such a notebook all the same)
        nb = nbformat.read(sub.path, as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("no list of cells")
    except Exception as error:  # not JSON, not a notebook, unreadable
        sub.notebook = notebook_from_filename(sub.path)
        sub.problem = "invalid notebook"
        sub.detail = one_line(f"{type(error).__name__}: {error}")
        return sub
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    sub.code_cells = len(code)
    labels = []
    for number, cell in enumerate(code):
        metadata = cell.get("metadata", {})
        label = metadata.get("exercise")
        if isinstance(label, dict) and label.get("id"):
            labels.append(str(label.get("notebook", "")))
            sub.check_cells.append((number, str(label["id"]), str(label["id"]) in checked_exercises(cell.source)))
            continue
        # A check cell that lost its metadata still counts if it is a plain `ex.NAME.check()`; a cell
        # tagged `raises-exception` shows a failing check on purpose and is not one.
        plain = checked_exercises(cell.source, plain_only=True)
        if len(plain) == 1 and "raises-exception" not in metadata.get("tags", []):
            sub.check_cells.append((number, plain.pop(), True))
    sub.notebook = Counter(labels).most_common(1)[0][0] if labels else notebook_from_filename(sub.path)
    if not code:
        sub.problem, sub.detail = "empty notebook", "no code cells"
    return sub


def checked_exercises(source: str, plain_only: bool = False) -> set[str]:
    """The NAMEs of the `ex.NAME.check(...)` calls in a cell's code (comments do not count).

    With `plain_only`, only calls without arguments (`ex.NAME.check()`, as generated) count.
    """
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax (magics, `!cmd`): fall back to the text, minus comments
        code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
        pattern = r"\bex\.(\w+)\.check\(\s*\)" if plain_only else r"\bex\.(\w+)\.check\("
        return set(re.findall(pattern, code))
    names = set()
    for node in ast.walk(tree):
        func = getattr(node, "func", None)
        if (
            isinstance(node, ast.Call)
            and isinstance(func, ast.Attribute)
            and func.attr == "check"
            and isinstance(func.value, ast.Attribute)
            and isinstance(func.value.value, ast.Name)
            and func.value.value.id == "ex"
            and not (plain_only and (node.args or node.keywords))
        ):
            names.add(func.value.attr)
    return names


def registered_exercises(notebook: str) -> list[str]:
    """The exercise names the course defines for `notebook` (from `helpers.exercises.nbNN`), if any."""
    from helpers.exercises.core import exercises_of

    if not re.fullmatch(r"\d\d_\w+", notebook):
        return []
    try:
        importlib.import_module(f"helpers.exercises.nb{notebook[:2]}")
    except ImportError:
        return []
    return [ex.name for ex in exercises_of(notebook)]


def one_line(text: str, limit: int = 160) -> str:
    text = " ".join(ANSI.sub("", str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# The pytest plugin: each worker tags its reports; the controlling process writes them down.
# --------------------------------------------------------------------------------------------


def pytest_addoption(parser):
    parser.addoption(RECORD_OPTION, default=None, help="(helpers.grade) append a JSON line per notebook cell report")


def pytest_configure(config):
    path = config.getoption(RECORD_OPTION, default=None)
    if path and not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        config.pluginmanager.register(_Recorder(Path(path)), "seeing-networks-recorder")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if hasattr(item, "cell_num") and hasattr(item, "cell"):  # an nbval cell
        errors = [o for o in (getattr(item, "test_outputs", None) or []) if o.get("output_type") == "error"]
        report.user_properties.append(
            (
                RECORD_KEY,
                {
                    "path": str(item.path),
                    "cell": int(item.cell_num),
                    "timed_out": bool(getattr(item.parent, "timed_out", False)),
                    "ename": errors[-1].get("ename", "") if errors else "",
                    "evalue": one_line(errors[-1].get("evalue", ""), 300) if errors else "",
                },
            )
        )
    return report


class _Recorder:
    def __init__(self, path: Path):
        self.path = path

    def pytest_runtest_logreport(self, report):
        for key, value in report.user_properties:
            if key != RECORD_KEY:
                continue
            record = dict(value)
            record.update(
                when=report.when,
                outcome=report.outcome,
                xfail=hasattr(report, "wasxfail"),
                duration=float(report.duration),
                longrepr=one_line(report.longreprtext, 300) if report.failed else "",
            )
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def read_records(path: Path) -> dict[str, dict[int, dict[str, dict]]]:
    """The recorded reports: {notebook path: {code cell number: {phase: record}}}."""
    results: dict[str, dict[int, dict[str, dict]]] = {}
    if not path.exists():
        return results
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short when grading was stopped
            continue
        results.setdefault(record["path"], {}).setdefault(record["cell"], {})[record["when"]] = record
    return results


# --------------------------------------------------------------------------------------------
# Running nbval
# --------------------------------------------------------------------------------------------


def nbval_command(paths: list[Path], timeout: float, workers: int, record: Path, config: Path) -> list[str]:
    """The pytest command line that runs `paths` under nbval and records every cell."""
    command = [
        sys.executable, "-m", "pytest",
        # Ignore the repository's pytest settings; root the node ids where every notebook lies, so
        # that two students' notebooks of the same name stay apart (and xdist groups by file).
        "-c", str(config), "--rootdir", os.path.commonpath([str(p.parent) for p in paths]),
        "--noconftest", "-p", "no:cacheprovider", "-p", "helpers.grade",
        "--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={timeout:g}",
        RECORD_OPTION, str(record),
        "-q", "-rN", "--color=no", "--continue-on-collection-errors",
    ]  # fmt: skip
    if workers > 1 and len(paths) > 1:
        command += ["-n", str(min(workers, len(paths))), "--dist", "loadfile"]
    else:
        command += ["-p", "no:xdist"]
    return command + [str(p) for p in paths]


def run_nbval(subs: list[Submission], timeout: float, workers: int, workdir: Path, out=sys.stdout) -> tuple[int, str]:
    """Run the runnable submissions under nbval; return pytest's exit status and the tail of its log.

    Prints a line as each notebook finishes. A run going past a generous overall limit (every cell
    at the timeout, plus start-up) is stopped, and whatever has no result counts as not run.
    """
    record, log_path, config = workdir / "cells.jsonl", workdir / "pytest.log", workdir / "pytest.ini"
    config.write_text("[pytest]\naddopts =\n")
    command = nbval_command([s.path for s in subs], timeout, workers, record, config)
    limit = 120 + sum((timeout + 15) * max(s.code_cells, 1) for s in subs)
    todo = {str(s.path): s for s in subs}
    started = time.monotonic()
    env = dict(os.environ)
    parallel = min(workers, len(subs))
    if parallel > 1 and "OMP_NUM_THREADS" not in env:  # share the cores instead of fighting over them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // parallel))
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env, start_new_session=True
        )
        while True:
            try:
                status = process.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                pass
            report_finished(todo, read_records(record), started, len(subs), out)
            if time.monotonic() - started > limit:
                print(f"grading ran past {limit:.0f} s; stopping it", file=out)
                os.killpg(process.pid, signal.SIGKILL)
                status = process.wait()
                break
    report_finished(todo, read_records(record), started, len(subs), out)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
    return status, tail


def report_finished(todo: dict, records: dict, started: float, total: int, out) -> None:
    """Print (once) each notebook whose every code cell has finished."""
    for path, sub in list(todo.items()):
        cells = records.get(path, {})
        if len(cells) >= sub.code_cells and all("teardown" in phases for phases in cells.values()):
            del todo[path]
            print(f"  graded {total - len(todo)}/{total}  {sub.student}/{sub.path.name}  ({time.monotonic() - started:.0f} s)", file=out, flush=True)


# --------------------------------------------------------------------------------------------
# From cell results to exercise results
# --------------------------------------------------------------------------------------------


def cell_verdict(phases: dict[str, dict] | None) -> tuple[bool, str, str]:
    """(passed, status, detail) of one check cell from its recorded setup/call reports."""
    if not phases:
        return False, "not run", ""
    setup, call = phases.get("setup", {}), phases.get("call")
    if setup.get("outcome") == "failed":
        return False, "error", setup.get("longrepr", "")
    if call is None:
        return False, "skipped" if setup.get("outcome") == "skipped" else "not run", ""
    if call["outcome"] == "skipped" and not call.get("xfail"):
        return False, "skipped", ""
    ename, evalue = call.get("ename", ""), call.get("evalue", "")
    if call["outcome"] == "passed" and not call.get("xfail") and not ename:
        return True, "passed", ""  # (a cell tagged `raises-exception` passes nbval with an error: not here)
    if ename == "NotAttempted":
        return False, "not attempted", evalue.removeprefix("not attempted yet: ")
    if ename == "Incorrect":
        return False, "incorrect", evalue.removeprefix("incorrect: ")
    if ename:
        return False, "error", f"{ename}: {evalue}"
    return False, "error", call.get("longrepr", "")


def grade_submission(sub: Submission, records: dict[int, dict[str, dict]]) -> list[Result]:
    """One row per exercise of the notebook: the course's exercises and any other labelled check cell."""
    expected = registered_exercises(sub.notebook)
    in_notebook = [name for _, name, _ in sub.check_cells]
    names = list(dict.fromkeys(in_notebook + expected))

    def row(name: str, passed: bool, status: str, detail: str = "") -> Result:
        return Result(sub.student, sub.notebook, name, passed, status, detail, str(sub.path))

    if sub.problem:
        return [row(name, False, sub.problem, sub.detail) for name in names] or [row("-", False, sub.problem, sub.detail)]
    timed_out_cells = sorted(n for n, phases in records.items() if any(p.get("timed_out") for p in phases.values()))
    first_timeout = timed_out_cells[0] if timed_out_cells else None
    rows = []
    for name in names:
        cells = [(number, ok) for number, ex_name, ok in sub.check_cells if ex_name == name]
        if not cells:
            rows.append(row(name, False, "check cell missing"))
            continue
        verdicts = []
        for number, source_ok in cells:
            if not source_ok:
                verdicts.append((False, "check cell edited", f"nbval Cell {number} is labelled {name!r} but does not call ex.{name}.check("))
            elif first_timeout is not None and number > first_timeout:
                verdicts.append((False, "after timeout", f"an earlier cell (nbval Cell {first_timeout}) timed out"))
            elif first_timeout is not None and number == first_timeout:
                verdicts.append((False, "timed out", f"nbval Cell {number} ran past the per-cell timeout"))
            else:
                verdicts.append(cell_verdict(records.get(number)))
        passing = [v for v in verdicts if v[0]]
        rows.append(row(name, *(passing[0] if passing else verdicts[-1])))
    if not rows:
        rows.append(row("-", False, "no exercises", "no check cells found"))
    return rows


def notebook_seconds(records: dict[int, dict[str, dict]]) -> float:
    return sum(p.get("duration", 0.0) for phases in records.values() for p in phases.values())


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def format_table(results: list[Result], seconds: dict[str, float] | None = None) -> str:
    """A Markdown table: one row per exercise, a total row per student and notebook, a grand total."""
    seconds = seconds or {}
    lines = ["| student | notebook | exercise | result | detail |", "|---|---|---|---|---|"]
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.student, r.notebook, r.path), []).append(r)
    per_student: dict[str, list[int]] = {}
    for (student, notebook, path), rows in groups.items():
        for r in rows:
            mark = "✓ passed" if r.passed else f"✗ {r.status}"
            lines.append(f"| {student} | {notebook} | {r.exercise} | {mark} | {r.detail.replace('|', '/')} |")
        got = sum(r.passed for r in rows if r.exercise != "-")
        of = sum(1 for r in rows if r.exercise != "-")
        took = f" in {seconds[path]:.0f} s" if path in seconds else ""
        lines.append(f"| **{student}** | **{notebook}** | **total** | **{got}/{of}** | {Path(path).name}{took} |")
        tally = per_student.setdefault(student, [0, 0])
        tally[0] += got
        tally[1] += of
    lines.append("")
    lines.append("| student | exercises passed |")
    lines.append("|---|---|")
    for student, (got, of) in per_student.items():
        lines.append(f"| {student} | {got}/{of} |")
    seen = [status for status in STATUSES if status != "passed" and any(r.status == status for r in results)]
    if seen:
        lines += ["", "Failing results: " + "; ".join(f"{status}: {STATUSES[status]}" for status in seen) + "."]
    return "\n".join(lines)


def write_csv(results: list[Result], path: str | Path) -> None:
    """One line per exercise: student, notebook, exercise, passed (1/0), status, detail, path."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["student", "notebook", "exercise", "passed", "status", "detail", "path"])
        writer.writeheader()
        for r in results:
            writer.writerow({**asdict(r), "passed": int(r.passed)})


# --------------------------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------------------------


def grade(
    paths: list[str | Path],
    timeout: float = DEFAULT_TIMEOUT,
    workers: int | None = None,
    out=sys.stdout,
) -> tuple[list[Result], dict[str, float], int]:
    """Grade every notebook under `paths`.

    Returns (results, seconds per notebook path, pytest's exit status or 0 when nothing could run).
    Raises FileNotFoundError for a missing path, ValueError when no notebook is found or an
    argument is out of range.
    """
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    subs = [read_submission(s) for s in find_submissions(paths)]
    if not subs:
        raise ValueError(f"paths must hold at least one .ipynb notebook, got {[str(p) for p in paths]}")
    runnable = [s for s in subs if not s.problem]
    workers = workers or max(1, min(os.cpu_count() or 1, len(runnable)))
    print(f"Grading {len(runnable)} notebook(s) with {workers} worker(s), at most {timeout:g} s per cell.", file=out)
    for s in subs:
        if s.problem:
            print(f"  {s.problem}: {s.path} ({s.detail})", file=out)
    records: dict[str, dict] = {}
    status = 0
    if runnable:
        with tempfile.TemporaryDirectory(prefix="seeing-networks-grade-") as tmp:
            status, tail = run_nbval(runnable, timeout, workers, Path(tmp), out)
            records = read_records(Path(tmp) / "cells.jsonl")
        if status not in (0, 1):
            print(f"pytest stopped with exit status {status}; the end of its log:\n{tail}", file=out)
    results = [r for s in subs for r in grade_submission(s, records.get(str(s.path), {}))]
    seconds = {str(s.path): notebook_seconds(records[str(s.path)]) for s in runnable if str(s.path) in records}
    return results, seconds, status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.grade",
        description="Grade submitted notebooks through nbval: one row per student, notebook and exercise.",
        epilog="Grading runs the submitted code: use a container or a throwaway machine.",
    )
    parser.add_argument("paths", nargs="+", help="notebooks, or folders searched for notebooks")
    parser.add_argument("--csv", help="also write the results to this CSV file")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help=f"seconds per cell (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--workers", type=int, default=None, help="notebooks graded at once (default: one per core)")
    args = parser.parse_args(argv)
    try:
        results, seconds, status = grade(args.paths, timeout=args.timeout, workers=args.workers)
    except (FileNotFoundError, ValueError) as error:
        print(f"python -m helpers.grade: {error}", file=sys.stderr)
        return 2
    print()
    print(format_table(results, seconds))
    if args.csv:
        write_csv(results, args.csv)
        print(f"\nwrote {args.csv}")
    return 0 if status in (0, 1, 5) else 1


if __name__ == "__main__":
    sys.exit(main())
