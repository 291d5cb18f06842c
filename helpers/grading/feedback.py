"""Reports: the printed table, the run's summary line, Gradescope's results.json and each student's page."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

from helpers.grading.gradebook import _check_points, _check_rows, _number, course_meta
from helpers.grading.records import NOT_RUN, NOT_SUBMITTED, STATUSES, Result, printable


def _rows_by_exercise(rows: list[dict], points: dict) -> tuple[list[str], dict, dict]:
    """(notebooks, {(nb, ex): last row}, {nb: a notebook-wide problem row}) of one submission's rows."""
    notebooks = list(dict.fromkeys(r["notebook"] for r in rows))
    by_key = {(r["notebook"], r["exercise"]): r for r in rows}
    problem = {r["notebook"]: r for r in rows if r["exercise"] == "-"}  # the grader's row for a notebook it could not run
    return notebooks, by_key, problem


def _in_row_order(points: dict, rows: list[dict]) -> dict:
    """`points` with each notebook's exercises in the order the rows give them (the notebook's order, see
    `in_notebook_order`), the exercises no row names after them."""
    seen = {(r["notebook"], r["exercise"]): i for i, r in enumerate(rows)}
    keys = sorted(points, key=lambda k: (seen.get(k, len(seen)), list(points).index(k)))
    return {k: points[k] for k in keys}


def in_notebook_order(rows: list, nb) -> list:
    """`rows` (Results of one notebook) in the order of their exercises' check cells in `nb`, the notebook
    as graded (each exercise has one); rows of exercises with no check cell keep their place at the end."""
    from helpers.grading.conventions import check_cell_exercise

    order: dict[str, int] = {}
    for cell in getattr(nb, "cells", []):
        try:
            name = check_cell_exercise(cell.get("source", "")) if cell.get("cell_type") == "code" else None
        except ValueError:
            name = None
        if name and name not in order:
            order[name] = len(order)
    return sorted(rows, key=lambda r: order.get(r.exercise, len(order)))


def _verdict(notebook: str, exercise: str, by_key: dict, problem: dict) -> tuple[bool, str, str]:
    row = by_key.get((notebook, exercise)) or problem.get(notebook)
    if row is None:
        return False, "not run", "no result came back for this exercise"
    return bool(row["passed"]), str(row.get("status", "")), str(row.get("detail", ""))


VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
HIDDEN_CASE = "a hidden case"  # how a verdict names an input the student never saw (helpers.exercises.core)


def gradescope_results(rows, points, meta: Mapping | None = None, visibility: str = "visible", hidden_visibility: str | None = None) -> dict:
    """One submission's rows as Gradescope's autograder ``results.json`` (a dict: ``json.dump`` it).

    Top level: ``score`` (points earned), ``output`` (a summary with the course version, timeout and
    date), ``visibility``, ``stdout_visibility`` "hidden", ``extra_data`` {"meta": meta}, and ``tests``:
    one per exercise of the notebooks in the rows (in `points` order) with ``name`` ("notebook:
    exercise"), ``number``, ``score``, ``max_score``, ``output`` (the verdict and its detail),
    ``tags`` [notebook, status] and ``visibility``, in the notebook's order. With `hidden_visibility`,
    a verdict that comes from a hidden case says only that in its test, and its detail (the hidden
    inputs) goes in a 0-point test "<notebook>: <exercise> (hidden case)" shown at `hidden_visibility`
    (e.g. "after_published"). Raises ValueError when the rows name several students or none, or a
    visibility is not one of Gradescope's.
    """
    rows = _check_rows(rows)
    points = _in_row_order(_check_points(points), rows)
    for name, value in (("visibility", visibility), ("hidden_visibility", hidden_visibility or visibility)):
        if value not in VISIBILITIES:
            raise ValueError(f"{name} must be 'hidden', 'after_due_date', 'after_published' or 'visible', got {value!r}")
    students = {str(r["student"]) for r in rows}
    if len(students) != 1:
        raise ValueError(f"rows must be one submission's rows (one student), got students {sorted(students)}")
    meta = dict(course_meta(None) if meta is None else meta)
    notebooks, by_key, problem = _rows_by_exercise(rows, points)
    tests, score, maximum = [], 0.0, 0.0
    for nb_index, nb in enumerate(notebooks, start=1):
        for ex_index, ((n, ex), worth) in enumerate(((k, v) for k, v in points.items() if k[0] == nb), start=1):
            passed, status, detail = _verdict(n, ex, by_key, problem)
            got = worth if passed else 0
            score += got
            maximum += worth
            output = "passed" if passed else f"{status}: {detail}" if detail else status
            secret = hidden_visibility is not None and not passed and HIDDEN_CASE in detail
            tests.append({
                "name": f"{n}: {ex}", "number": f"{nb_index}.{ex_index}", "score": _number(got), "max_score": _number(worth),
                "output": f"{status} on a hidden case (the details are shown as the course decides)" if secret else output,
                "tags": [n, "passed" if passed else status], "visibility": visibility, "status": "passed" if passed else "failed",
            })  # fmt: skip
            if secret:
                tests.append({"name": f"{n}: {ex} (hidden case)", "number": f"{nb_index}.{ex_index}.1", "score": 0, "max_score": 0,
                              "output": output, "tags": [n, status], "visibility": hidden_visibility, "status": "failed"})  # fmt: skip
    summary = (
        f"{_number(score)}/{_number(maximum)} points for {', '.join(notebooks)}. "
        f"Graded by Seeing Networks {meta.get('course_version', '')} with a per-cell timeout of "
        f"{meta.get('timeout_s', '')} s on {meta.get('date', '')}."
    )
    return {
        "score": _number(score), "output": summary, "visibility": visibility, "stdout_visibility": "hidden",
        "extra_data": {"meta": meta}, "tests": tests,
    }  # fmt: skip


FEEDBACK_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
.total { font-size: 1.2rem; margin: .25rem 0 1rem; } .total b { font-size: 1.5rem; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; } col.ex { width: 24%; } col.verdict { width: 20%; } col.pts { width: 10%; } th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; } .pts { white-space: nowrap; text-align: right; }
.ok { color: #1a7f37; font-weight: 600; white-space: nowrap; } .no { color: #cf222e; font-weight: 600; white-space: nowrap; }
.detail { color: #57606a; font-size: .92rem; overflow-wrap: anywhere; } code { font-family: ui-monospace, monospace; font-size: .9rem; }
footer { margin-top: 2rem; color: #57606a; font-size: .85rem; border-top: 1px solid #d0d7de; padding-top: .5rem; }
"""


def feedback_html(student: str, rows, points, meta: Mapping | None = None) -> str:
    """A self-contained HTML page for one student: each exercise's verdict and message, the total, and `meta`.

    All text is escaped; the CSS is inline (the page can be mailed or uploaded as it is). Notebooks come
    from the rows; an exercise of those notebooks with no row is shown as "not run".
    """
    if not isinstance(student, str) or not student:
        raise TypeError(f"student must be a non-empty str, got {student!r}")
    rows = [r for r in _check_rows(rows) if str(r["student"]) == student]
    points = _in_row_order(_check_points(points), rows)
    meta = dict(course_meta(None) if meta is None else meta)
    notebooks, by_key, problem = _rows_by_exercise(rows, points)
    e = html.escape
    body, score, maximum, seen = [], 0.0, 0.0, []
    for nb in notebooks:
        lines = []
        for (n, ex), worth in points.items():
            if n != nb:
                continue
            passed, status, detail = _verdict(n, ex, by_key, problem)
            got = worth if passed else 0
            score += got
            maximum += worth
            if not passed and status not in seen:
                seen.append(status)
            verdict = '<span class="ok">✓ passed</span>' if passed else f'<span class="no">✗ {e(status)}</span>'
            lines.append(
                f"<tr><td><code>{e(ex)}</code></td><td>{verdict}</td>"
                f'<td class="detail">{e(detail)}</td><td class="pts">{_number(got)} / {_number(worth)}</td></tr>'
            )
        if not lines:  # a notebook the points do not know (no exercises): show its rows as they are
            for r in (r for r in rows if r["notebook"] == nb):
                lines.append(f'<tr><td><code>{e(str(r["exercise"]))}</code></td><td><span class="no">✗ {e(str(r["status"]))}</span></td>'
                             f'<td class="detail">{e(str(r["detail"]))}</td><td class="pts">–</td></tr>')  # fmt: skip
        files = sorted({Path(str(r["path"])).name for r in rows if r["notebook"] == nb and r.get("path")})
        graded = f' <span class="detail">(graded file: {e(", ".join(files))})</span>' if files else ""
        body.append(
            f'<h2>{e(nb)}{graded}</h2><table><colgroup><col class="ex"><col class="verdict"><col><col class="pts"></colgroup><thead>'
            f"<tr><th>exercise</th><th>verdict</th><th>message</th>"
            f'<th class="pts">points</th></tr></thead><tbody>{"".join(lines)}</tbody></table>'
        )
    if not notebooks:
        body.append(f"<p>{e(NOT_SUBMITTED.capitalize())}: no notebook was graded.</p>")
    legend = "".join(f"<li><b>{e(s)}</b>: {e(STATUSES[s])}</li>" for s in seen if s in STATUSES)
    legend = f"<h2>What the verdicts mean</h2><ul class='detail'>{legend}</ul>" if legend else ""
    percent = f" ({100 * score / maximum:.0f} %)" if maximum else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Feedback for {e(student)}</title><style>{FEEDBACK_CSS}</style></head><body>"
        f"<h1>Seeing Networks: feedback for {e(student)}</h1>"
        f'<p class="total">Total: <b>{_number(score)} / {_number(maximum)}</b> points{percent}</p>'
        + "".join(body) + legend
        + f"<footer>Course version {e(str(meta.get('course_version', '')))} · per-cell timeout "
        f"{e(str(meta.get('timeout_s', '')))} s · graded {e(str(meta.get('date', '')))}</footer></body></html>\n"
    )


# --------------------------------------------------------------------------------------------
# What every output records
# --------------------------------------------------------------------------------------------



# --------------------------------------------------------------------------------------------
# What the command line prints
# --------------------------------------------------------------------------------------------


def _cell(text) -> str:
    """A table cell's text: control characters escaped (a newline in a file name cannot forge a row)."""
    return printable(text).replace("|", "/")


def format_table(results: list[Result], seconds: dict[str, float] | None = None) -> str:
    """A Markdown table: one row per exercise, a total row per student and notebook, a grand total."""
    seconds = seconds or {}
    lines = ["| student | notebook | exercise | result | detail |", "|---|---|---|---|---|"]
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.student, r.notebook, r.path), []).append(r)
    per_student: dict[str, list[int]] = {}
    for (student, notebook, path), rows in groups.items():
        who, nb = _cell(student), _cell(notebook)
        for r in rows:
            mark = "✓ passed" if r.passed else f"✗ {r.status}"
            lines.append(f"| {who} | {nb} | {_cell(r.exercise)} | {mark} | {_cell(r.detail)} |")
        got = sum(r.passed for r in rows if r.exercise != "-")
        of = sum(1 for r in rows if r.exercise != "-")
        took = f" in {seconds[path]:.0f} s" if path in seconds else ""
        lines.append(f"| **{who}** | **{nb}** | **total** | **{got}/{of}** | {_cell(Path(path).name)}{took} |")
        tally = per_student.setdefault(student, [0, 0])
        tally[0] += got
        tally[1] += of
    lines += ["", "| student | exercises passed |", "|---|---|"]
    for student, (got, of) in per_student.items():
        lines.append(f"| {_cell(student)} | {got}/{of} |")
    seen = [status for status in STATUSES if status != "passed" and any(r.status == status for r in results)]
    if seen:
        lines += ["", "Failing results: " + "; ".join(f"{status}: {STATUSES[status]}" for status in seen) + "."]
    return "\n".join(lines)


def summary_line(results: list[Result], superseded: list, seconds: float, sandbox: str = "") -> str:
    """One line: how many notebooks were graded, not submitted, failed to run, replaced, the time, and
    how the kernels were confined (`sandbox`, as the runner reported it)."""
    notebooks = {(r.student, r.path) for r in results if r.path}
    failed = {(r.student, r.path) for r in results if r.path and r.status in NOT_RUN}
    missing = {r.student for r in results if r.status == NOT_SUBMITTED}
    students = {r.student for r in results}
    line = (f"Graded {len(notebooks)} notebook(s) of {len(students)} student(s) in {seconds:.0f} s: "
            f"{len(notebooks) - len(failed)} ran, {len(failed)} failed to run or finish, {len(missing)} not submitted")  # fmt: skip
    if superseded:
        line += f"; {len(superseded)} older file(s) not graded: " + ", ".join(_cell(e.path.name) for e in superseded[:5])
        line += " ..." if len(superseded) > 5 else ""
    return line + (f". Sandbox: {sandbox}" if sandbox else "") + "."
