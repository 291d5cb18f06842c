"""Canvas round trips: its group export, its assignment titles and points, and its re-upload names.

What Canvas does, from its source (canvas-lms):

- *Groups* (``lib/content_zipper.rb`` with ``Assignment#representatives``): a group assignment's
  "Download Submissions" holds each group's files once, named after one member, the representative
  (``<group name key>_<representative's user id>_<file id>_<file name>``). `read_groups` reads
  Canvas's group export (People > Groups > Import/Export: ``name, canvas_user_id, user_id, login_id,
  sections, group_name, canvas_group_id, group_id``) and `credit_groups` gives every member the file.
- *Assignment columns* (``lib/gradebook_importer.rb``): a column title ``Title (123)`` is matched by
  the id 123 first, then the whole title must equal an assignment's title exactly; anything else makes
  Canvas create a new assignment. `parse_assignments` reads ``NB="Title (id)"`` options and
  `assignments_from_export` reads the titles, ids and points possible from a Canvas gradebook export.
- *Re-upload names* (``Assignment#generate_comments_from_files``): Canvas takes the first two numbers
  between underscores of a file's name as the user id and the attachment id, so feedback named
  ``<name key>_<user id>_<attachment id>_<file name>`` (as the zipper named the submission) goes back
  to the right student with "Re-Upload Submissions". `reupload_name` builds it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from helpers.grading.submissions import Entry, _nfc, name_key

TITLE_AND_ID = re.compile(r"\A(.*)\s\((\d+)\)\Z", re.DOTALL)  # Assignment.title_and_id in Canvas
NOT_ASSIGNMENTS = ("Current Score", "Current Points", "Current Grade", "Final Score", "Final Points", "Final Grade",
                   "Override Score", "Override Grade", "Override Status")  # fmt: skip
STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section", "Root Account")


@dataclass
class Member:
    """One row of Canvas's group export: a student and the group they are in."""

    canvas_id: str
    name: str
    group: str
    sis_user_id: str = ""
    login_id: str = ""


def _key(header: str) -> str:
    return " ".join(str(header).replace("_", " ").lower().split())


def read_groups(path: str | Path) -> list[Member]:
    """The members of Canvas's group export CSV (``name, canvas_user_id, user_id, login_id, sections,
    group_name, canvas_group_id, group_id``), students in no group left out.

    Raises FileNotFoundError, or ValueError naming the file when a column is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"groups must be Canvas's group export CSV file, got {str(path)!r}")
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        header = [_key(h) for h in next(reader, [])]
        missing = [c for c in ("canvas user id", "group name") if c not in header]
        if missing:
            raise ValueError(f"groups {str(path)!r} must be Canvas's group export with columns canvas_user_id and group_name, it lacks {missing}")
        at = {name: header.index(name) for name in ("name", "canvas user id", "group name", "user id", "login id") if name in header}
        members = []
        for row in reader:
            cell = lambda name: _nfc(row[at[name]]).strip() if name in at and at[name] < len(row) else ""  # noqa: E731
            if cell("canvas user id") and cell("group name"):
                members.append(Member(cell("canvas user id"), cell("name"), cell("group name"), cell("user id"), cell("login id")))
    return members


def credit_groups(entries: Iterable[Entry], members: Iterable[Member]) -> list[Entry]:
    """The entries, plus one copy of each Canvas group file for every other member of its group.

    A Canvas file belongs to a group when its user id is a member's (the representative) or its name key
    is the group's name key. Each copy carries the member's user id, name and name key, and the group
    file's path, file id and late flag: the grader runs the file once and every member gets its rows.
    """
    members = list(members)
    by_group: dict[str, list[Member]] = {}
    for m in members:
        if not isinstance(m, Member):
            raise TypeError(f"members must hold Member items (from read_groups), got {type(m).__name__}")
        by_group.setdefault(m.group, []).append(m)
    group_of_user = {m.canvas_id: m.group for m in members}
    group_of_key = {name_key(g): g for g in by_group}
    out = []
    for entry in entries:
        out.append(entry)
        if entry.source != "canvas":
            continue
        group = group_of_user.get(entry.student_id) or group_of_key.get(entry.name_key)
        for m in by_group.get(group, []):
            if m.canvas_id != entry.student_id:
                out.append(replace(entry, student_id=m.canvas_id, student_name=m.name, name_key=name_key(m.name) if m.name else ""))
    return out


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """["02_iou_ap_map=IoU, AP and mAP (4521)", ...] -> {notebook: column title}. Raises ValueError."""
    names = {}
    for pair in pairs:
        notebook, sep, title = str(pair).partition("=")
        if not sep or not notebook.strip() or not title.strip():
            raise ValueError(f'--assignment must be NOTEBOOK="Title (id)", got {pair!r}')
        names[notebook.strip()] = title.strip()
    return names


def _notebook_of_title(title: str, notebooks: list[str]) -> str | None:
    """The course notebook an assignment title names: its name ("02_iou_ap_map") in the title's words, or
    its number at the start ("02 IoU, AP and mAP", "Notebook 02: ...")."""
    words = re.sub(r"[^0-9a-z]+", "_", title.lower()).strip("_")
    named = [nb for nb in notebooks if nb in words]
    if len(named) == 1:
        return named[0]
    numbered = [nb for nb in notebooks if re.match(rf"(?:notebook_|nb_?)?{nb[:2]}(?:_|$)", words)]
    return numbered[0] if len(numbered) == 1 else None


def assignments_from_export(path: str | Path, notebooks: Iterable[str]) -> tuple[dict[str, str], dict[str, float]]:
    """({notebook: "Title (id)"}, {notebook: points possible}) from a Canvas gradebook export CSV.

    Each assignment column whose title names a course notebook (see `_notebook_of_title`) is kept with
    its header exactly as Canvas wrote it, and with its "Points Possible" (when the export has that row).
    Raises FileNotFoundError, or ValueError when the file is not a Canvas export or two columns name one
    notebook.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"the Canvas gradebook export must be a CSV file, got {str(path)!r}")
    notebooks = list(notebooks)
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        lines = list(csv.reader(f))
    if not lines or len(lines[0]) < 2 or "Student" not in lines[0][0] or "ID" not in lines[0][1]:
        raise ValueError(f"{str(path)!r} must be a Canvas gradebook export (its header starts with Student, ID), got {lines[0][:3] if lines else 'an empty file'}")
    header = lines[0]
    possible = next((line for line in lines[1:] if line and "Points Possible" in line[0]), [])
    titles, points = {}, {}
    for i, title in enumerate(header):
        if title in STUDENT_COLUMNS or any(word in title for word in NOT_ASSIGNMENTS):
            continue
        nb = _notebook_of_title(TITLE_AND_ID.sub(r"\1", title), notebooks)
        if nb is None:
            continue
        if nb in titles:
            raise ValueError(f"{str(path)!r}: the columns {titles[nb]!r} and {title!r} both name notebook {nb}: give --assignment {nb}=\"Title (id)\"")
        titles[nb] = title
        try:
            points[nb] = float(possible[i])
        except (IndexError, ValueError):
            pass
    return titles, points


def parse_points(pairs: Iterable[str]) -> dict[str, float]:
    """["02_iou_ap_map=10", ...] -> {notebook: points in the LMS}. Raises ValueError."""
    out = {}
    for pair in pairs:
        notebook, sep, value = str(pair).partition("=")
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not sep or not notebook.strip() or number <= 0:
            raise ValueError(f"--points must be NOTEBOOK=POINTS with POINTS > 0, got {pair!r}")
        out[notebook.strip()] = number
    return out


def canvas_user_ids(entries: Iterable[Entry], roster: Iterable | None = None) -> dict[str, str]:
    """{row key: Canvas user id} for the keys known to be Canvas user ids: Canvas download entries (not
    anonymous) and roster students whose roster gave Canvas's id (`roster.Student.canvas_id`)."""
    known = {}
    for entry in entries:
        if entry.source == "canvas" and entry.student_id.isdigit():
            known[entry.student] = entry.student_id
    for s in roster or []:
        if getattr(s, "canvas_id", ""):
            known[s.id] = s.canvas_id
    return known


def reupload_name(entry: Entry, filename: str) -> str:
    """The name Canvas's "Re-Upload Submissions" maps back to `entry`'s student and file:
    ``<name key>[_LATE]_<user id>_<file id>_<filename>``, `filename` cleaned the way the zipper cleans
    names (no / \\ : * ? " < > |). Raises ValueError for an entry that is not from a Canvas download."""
    if not isinstance(entry, Entry) or entry.source != "canvas" or not entry.file_id:
        raise ValueError(f"entry must come from a Canvas download (user id and file id), got {getattr(entry, 'source', entry)!r}")
    key = re.sub(r"_(\d+)_", r"\1", entry.name_key)
    clean = re.sub(r'[\x00/\\:*?"<>|]+', "_", filename)
    return "_".join(p for p in (key, "LATE" if entry.late else "", entry.student_id, entry.file_id, clean) if p)


def rescale(earned: float, maximum: float, lms_points: float) -> float:
    """`earned` of `maximum` course points as points of an LMS assignment worth `lms_points` (2 decimals)."""
    return round(earned / maximum * lms_points, 2) if maximum else 0.0
