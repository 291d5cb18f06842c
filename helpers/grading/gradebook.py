"""Gradebooks: one row per student (points per exercise and notebook, total, maximum, %), plain or for
Canvas's import, the long CSV of rows, and what every output records (`course_meta`)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from helpers.grading.records import NOT_SUBMITTED, ROW_FIELDS, Result
from helpers.grading.roster import Student, _check_roster, find_student
from helpers.grading.submissions import _as_utc

ROOT = Path(__file__).resolve().parents[2]


def _passed(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == 1
    return str(value).strip().lower() in ("1", "true", "yes", "passed")


def _check_rows(rows, name: str = "rows") -> list[dict]:
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Iterable):
        raise TypeError(f"{name} must be a list of dicts with the keys {list(ROW_FIELDS)}, got {type(rows).__name__}")
    out = []
    for i, row in enumerate(rows):
        if hasattr(row, "__dataclass_fields__"):
            from dataclasses import asdict

            row = asdict(row)
        if not isinstance(row, Mapping):
            raise TypeError(f"{name}[{i}] must be a dict with the keys {list(ROW_FIELDS)}, got {type(row).__name__}")
        missing = [k for k in ("student", "notebook", "exercise", "passed") if k not in row]
        if missing:
            raise ValueError(f"{name}[{i}] must have the keys {list(ROW_FIELDS)}, it lacks {missing}")
        out.append({**{k: "" for k in ROW_FIELDS}, **row, "passed": _passed(row["passed"])})
    return out


def _check_points(points) -> dict[tuple[str, str], float]:
    if not isinstance(points, Mapping):
        raise TypeError(f"points must be a dict {{(notebook, exercise): points}}, got {type(points).__name__}")
    for key, value in points.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)):
            raise TypeError(f"points must have (notebook, exercise) keys, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"points[{key!r}] must be a number >= 0, got {value!r}")
    return dict(points)


def course_points(notebooks: Iterable[str] | None = None) -> dict[tuple[str, str], float]:
    """{(notebook, exercise): points} from the course's registered exercises (all course notebooks by default)."""
    from helpers.grading import course

    return course.course_points(notebooks)


def _number(value: float):
    value = round(float(value), 4)
    return int(value) if value == int(value) else value


def _notebooks(points: dict) -> list[str]:
    return list(dict.fromkeys(nb for nb, _ in points))


def _scores(rows: list[dict], points: dict) -> dict[str, dict]:
    """{student: {"earned": {(nb, ex): points}, "notebooks": set of notebooks handed in}} from long rows (last row wins)."""
    out: dict[str, dict] = {}
    for row in rows:
        student = str(row["student"])
        record = out.setdefault(student, {"earned": {}, "notebooks": set(), "problems": {}})
        record["notebooks"].add(row["notebook"])
        if row["exercise"] == "-" and not row["passed"]:  # the grader could not run this notebook at all
            record["problems"][row["notebook"]] = str(row.get("status", "")) or "not graded"
        key = (row["notebook"], row["exercise"])
        if key in points:
            record["earned"][key] = points[key] if row["passed"] else 0
    return out


def gradebook(rows, points, roster=None) -> tuple[list[str], list[list]]:
    """One row per student from the grader's long rows: (header, table).

    Columns: student, name, email, then for each notebook of `points` (in its order) one column per
    exercise ("02_iou_ap_map/box_iou", points earned) and the notebook's total ("02_iou_ap_map"), then
    total, maximum, percentage and status. Students come in roster order, then any others in the order
    the rows name them; a roster student with no row has zeros and the status "not submitted"; a
    student missing some notebooks has "missing: ...", and a notebook the grader could not run at all
    (its "-" row: invalid notebook, empty notebook) is named with its status ("03_faster_rcnn: invalid
    notebook"). When a student has two rows for one exercise, the later row counts.
    """
    rows = _check_rows(rows)
    points = _check_points(points)
    roster = _check_roster(roster)
    notebooks = _notebooks(points)
    maximum = sum(points.values())
    header = ["student", "name", "email"]
    for nb in notebooks:
        header += [f"{nb}/{ex}" for (n, ex) in points if n == nb] + [nb]
    header += ["total", "maximum", "percentage", "status"]
    merged, order = _merged_scores(rows, points, roster)

    table = []
    for key, s in order:
        record = merged.get(key)
        line = [key, s.name if s else "", s.email if s else ""]
        total = 0.0
        for nb in notebooks:
            subtotal = 0.0
            for (n, ex) in points:
                if n != nb:
                    continue
                got = record["earned"].get((n, ex), 0) if record else 0
                line.append(_number(got))
                subtotal += got
            line.append(_number(subtotal))
            total += subtotal
        if record is None:
            status = NOT_SUBMITTED
        else:
            missing = [nb for nb in notebooks if nb not in record["notebooks"]]
            notes = [f"missing: {', '.join(missing)}"] if missing else []
            notes += [f"{nb}: {problem}" for nb, problem in record["problems"].items()]
            status = "; ".join(notes) or "graded"
        line += [_number(total), _number(maximum), round(100 * total / maximum, 2) if maximum else 0.0, status]
        table.append(line)
    return header, table


def _merged_scores(rows: list[dict], points: dict, roster: list[Student]) -> tuple[dict[str, dict], list[tuple[str, Student | None]]]:
    """({key: {"earned", "notebooks", "problems"}}, [(key, roster student or None)] in output order): the
    rows' scores with each row's student found in the roster (by id, SIS ids, e-mail, name) merged
    under the roster's id; roster students first, then the others in the order the rows name them."""
    scores = _scores(rows, points)
    order: list[tuple[str, Student | None]] = []
    claimed: dict[str, str] = {}  # row student -> roster id
    for student in scores:
        s = find_student(roster, student) if roster else None
        if s is not None:
            claimed[student] = s.id
    merged: dict[str, dict] = {}
    for student, record in scores.items():
        target = claimed.get(student, student)
        into = merged.setdefault(target, {"earned": {}, "notebooks": set(), "problems": {}})
        into["earned"].update(record["earned"])
        into["notebooks"] |= record["notebooks"]
        into["problems"].update(record["problems"])
    for s in roster:
        order.append((s.id, s))
    for student in scores:
        if student not in claimed and all(student != key for key, _ in order):
            order.append((student, None))
    return merged, order


def write_gradebook(
    path: str | Path,
    rows,
    points,
    roster=None,
    fmt: str = "plain",
    meta: Mapping | None = None,
    id_column: str | None = "ID",
    assignment_names: Mapping[str, str] | None = None,
    canvas_ids: Mapping[str, str] | None = None,
    missing_as_zero: bool = False,
    lms_points: Mapping[str, float] | None = None,
    entries: Mapping[tuple[str, str], object] | None = None,
) -> list[Path]:
    """Write a gradebook CSV; return the files written.

    ``fmt="plain"``: `gradebook`'s header and table, then the columns course_version, timeout_s and
    graded_at from `meta` on every line; with `entries` ({(student, notebook): submissions.Entry}), also
    ``<notebook>/late`` (1 when the LMS marked it late) and ``<notebook>/submitted_at`` per notebook.

    ``fmt="canvas"``: what Canvas's gradebook import (``GradebookImporter``) reads: the header
    ``Student, ID, SIS User ID, SIS Login ID, Section`` then one column per notebook (an assignment),
    a second row ``Points Possible`` with each notebook's maximum, then one row per student with the
    points of each notebook. Canvas finds the student by ID (its user id), else SIS User ID, else SIS
    Login ID, else the name; `id_column` says which of those columns the rows' student ids go in ("ID"
    for ids from a Canvas download, "SIS User ID" for Gradescope SIDs or university numbers, "SIS Login
    ID"); the roster fills the other columns it knows. A column title that is not an existing assignment
    makes Canvas create one, so name the columns as the course's assignments with `assignment_names`
    ({notebook: "Assignment title"} or "Title (canvas id)"). Canvas would take any extra column for a
    new assignment, so `meta` goes beside it, in ``<path>.meta.json``.

    `id_column=None` puts a row's key in no id column: ``ID`` gets only a Canvas user id the grader knows
    (`canvas_ids` {key: user id}: from a Canvas download or a Canvas roster), since Canvas reads ``ID``
    first, as its own user id, and a Gradescope SID or an e-mail there matches no one or the wrong
    student; Canvas then matches by SIS ids, then by the name. A notebook the student did not hand in is
    left blank (Canvas leaves a blank cell's grade alone, so excusals and hand-entered scores survive);
    `missing_as_zero` writes 0 instead. `lms_points` ({notebook: points of the Canvas assignment})
    rescales each notebook's points to the assignment's (and writes them as "Points Possible").

    `meta` defaults to ``course_meta(None)``. Raises ValueError for an unknown fmt or id_column.
    """
    if fmt not in ("plain", "canvas"):
        raise ValueError(f"fmt must be 'plain' or 'canvas', got {fmt!r}")
    if id_column not in ("ID", "SIS User ID", "SIS Login ID", None):
        raise ValueError(f"id_column must be 'ID', 'SIS User ID', 'SIS Login ID' or None, got {id_column!r}")
    if meta is not None and not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict (see course_meta), got {type(meta).__name__}")
    if assignment_names is not None and not isinstance(assignment_names, Mapping):
        raise TypeError(f"assignment_names must be a dict {{notebook: title}}, got {type(assignment_names).__name__}")
    meta = dict(course_meta(None) if meta is None else meta)
    path = Path(path)
    header, table = gradebook(rows, points, roster)
    points = _check_points(points)
    roster = _check_roster(roster)
    written = [path]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if fmt == "plain":
            extra = ["course_version", "timeout_s", "graded_at"]
            late = _late_columns(table, _notebooks(points), dict(entries or {}))
            writer.writerow(header + late[0] + extra)
            for line, more in zip(table, late[1]):
                writer.writerow(line + more + [meta.get("course_version", ""), meta.get("timeout_s", ""), meta.get("date", "")])
        else:
            merged, _ = _merged_scores(_check_rows(rows), points, roster)
            handed_in = {key: record["notebooks"] for key, record in merged.items()}
            options = {"id_column": id_column, "canvas_ids": dict(canvas_ids or {}), "missing_as_zero": missing_as_zero,
                       "lms_points": dict(lms_points or {}), "names": dict(assignment_names or {})}  # fmt: skip
            for line in _canvas_lines(header, table, points, roster, handed_in, options):
                writer.writerow(line)
    if fmt == "canvas":
        side = path.with_name(path.name + ".meta.json")
        side.write_text(json.dumps({**meta, "gradebook": path.name, "format": "canvas", "id_column": id_column or "auto: ID only for Canvas user ids"}, indent=2, default=str) + "\n")
        written.append(side)
    return written


def _canvas_lines(header, table, points, roster, handed_in: dict, options: dict) -> list[list]:
    """The lines of Canvas's import CSV (see `write_gradebook`): header, Points Possible, one per student."""
    from helpers.grading.canvas import rescale

    notebooks, names, lms = _notebooks(points), options["names"], options["lms_points"]
    maxima = {nb: sum(p for (n, _), p in points.items() if n == nb) for nb in notebooks}
    lines = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section"] + [names.get(nb, nb) for nb in notebooks]]
    lines.append(["Points Possible", "", "", "", ""] + [_number(lms.get(nb, maxima[nb])) for nb in notebooks])
    by_id = {s.id: s for s in roster}
    at = {nb: header.index(nb) for nb in notebooks}
    for line in table:
        key, s = line[0], by_id.get(line[0])
        ids = {"ID": options["canvas_ids"].get(key, ""), "SIS User ID": s.sis_user_id if s else "", "SIS Login ID": s.sis_login_id if s else ""}
        if options["id_column"]:
            ids[options["id_column"]] = key
        cells = []
        for nb in notebooks:
            if nb not in handed_in.get(key, ()) and not options["missing_as_zero"]:
                cells.append("")  # nothing handed in: Canvas keeps whatever grade it has
            else:
                cells.append(_number(rescale(line[at[nb]], maxima[nb], lms[nb])) if nb in lms else line[at[nb]])
        lines.append([line[1] or key, ids["ID"], ids["SIS User ID"], ids["SIS Login ID"], s.section if s else ""] + cells)
    return lines


def _late_columns(table, notebooks: list[str], entries: dict) -> tuple[list[str], list[list]]:
    """(header, a list of cells per table line): ``<nb>/late`` and ``<nb>/submitted_at`` from the entries
    ({(student, notebook): Entry}); no columns when no entry is known."""
    if not entries:
        return [], [[] for _ in table]
    header = [f"{nb}/{what}" for nb in notebooks for what in ("late", "submitted_at")]
    cells = []
    for line in table:
        more = []
        for nb in notebooks:
            entry = entries.get((line[0], nb))
            when = getattr(entry, "submitted_at", None)
            more += ["" if entry is None else int(bool(entry.late)), when.isoformat() if when else ""]
        cells.append(more)
    return header, cells


VERSION_ENV = "SEEING_NETWORKS_COURSE_VERSION"  # set where git cannot say (an image built from a checkout)


def course_version(root: str | Path | None = None) -> str:
    """The course's version: ``$SEEING_NETWORKS_COURSE_VERSION`` when set (e.g. baked into a container
    image at build time), else "git:<commit>" (with "+changes" when helpers/ differs from it) of the
    checkout `root` (default: the folder above helpers/), else "seeing-networks <version>" of the
    installed package, else "unknown"."""
    if os.environ.get(VERSION_ENV, "").strip():
        return os.environ[VERSION_ENV].strip()
    root = Path(ROOT if root is None else root).resolve()
    try:
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel", "HEAD"], capture_output=True, text=True, timeout=10)
        lines = top.stdout.split()
        if top.returncode == 0 and len(lines) == 2 and Path(lines[0]).resolve() == root:
            changed = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "helpers"], capture_output=True, text=True, timeout=10
            )  # fmt: skip
            return f"git:{lines[1]}" + ("+changes" if changed.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import PackageNotFoundError, version

        return f"seeing-networks {version('seeing-networks')}"
    except PackageNotFoundError:
        return "unknown"


def course_meta(timeout, when: datetime | None = None) -> dict:
    """{"course_version", "timeout_s", "date"}: what every gradebook, results file and feedback page records.

    `timeout` is the per-cell timeout in seconds (a positive number, or None when unknown); `date` is
    `when` (default now) in UTC, ISO 8601.
    """
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be a positive number of seconds (or None), got {timeout!r}")
    if when is not None and not isinstance(when, datetime):
        raise TypeError(f"when must be a datetime, got {type(when).__name__}")
    moment = _as_utc(when or datetime.now(timezone.utc))
    return {"course_version": course_version(), "timeout_s": timeout, "date": moment.isoformat(timespec="seconds")}


# --------------------------------------------------------------------------------------------
# Beyond one machine: shards and merging
# --------------------------------------------------------------------------------------------



def write_csv(results: list[Result], path: str | Path, entries: Mapping[tuple[str, str], object] | None = None) -> None:
    """One line per exercise: student, notebook, exercise, passed (1/0), status, detail, path; with
    `entries` ({(student, notebook): submissions.Entry}) also late (1/0, Canvas's LATE mark), submitted_at
    (the LMS's time, ISO 8601) and file (the name the student uploaded), blank where unknown."""
    entries = dict(entries or {})
    fields = list(ROW_FIELDS) + (["late", "submitted_at", "file"] if entries else [])
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in results:
            line = {**asdict(r), "passed": int(r.passed)}
            if entries:
                entry = entries.get((r.student, r.notebook))
                when = getattr(entry, "submitted_at", None)
                line.update(late="" if entry is None else int(bool(entry.late)), submitted_at=when.isoformat() if when else "",
                            file=getattr(entry, "original_name", "") or "")  # fmt: skip
            writer.writerow(line)
