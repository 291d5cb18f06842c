"""Rosters: the students of a course (CSV of id, name, email), matched to what they handed in."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from helpers.grading.submissions import Entry, _name_keys, _nfc, name_key


@dataclass
class Student:
    """One student of a roster. `id` is what the grade rows call the student."""

    id: str
    name: str = ""
    email: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    canvas_id: str = ""  # Canvas's user id, when the roster is known to give it (a Canvas export's "ID")


ROSTER_HEADERS = {
    "id": ["id", "student id", "studentid", "sid", "student number", "user id", "canvas user id", "sis user id", "sis id", "login id", "sis login id", "username"],
    "name": ["name", "student", "student name", "full name", "display name", "sortable name"],
    "email": ["email", "email address", "e-mail", "e-mail address", "mail"],
    "sis_user_id": ["sis user id", "sis id"],
    "sis_login_id": ["sis login id", "login id"],
    "section": ["section", "sections"],
}  # fmt: skip


def _header_key(header: str) -> str:
    return " ".join(str(header).replace("_", " ").lower().split())


def read_roster(path: str | Path) -> list[Student]:
    """The students of a roster CSV (UTF-8, with or without a BOM): id, name and email columns.

    Headers are matched case-insensitively: id from "ID", "Student ID", "SID", "SIS User ID", ...; name
    from "Name", "Student", ...; email from "Email", "Email Address", ... (see `ROSTER_HEADERS`); names
    may also come as "First Name" + "Last Name". A Canvas gradebook export works as it is: its "Points
    Possible" and muted rows are skipped, SIS User ID, SIS Login ID and Section are kept, and its "ID"
    (Canvas's user id) is kept as `canvas_id`. A student with a blank id (a Gradescope student without an
    SID) is keyed by the e-mail, else the name. Raises
    FileNotFoundError, or ValueError naming the file when it has no id column or repeats an id.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path must be a roster CSV file, got {str(path)!r}")
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ValueError(f"roster {str(path)!r} must start with a header row (id, name, email), got an empty file")
        keys = [_header_key(h) for h in header]
        column = {}
        for field_name, spellings in ROSTER_HEADERS.items():
            taken = {column["id"]} if field_name in ("name", "email") and "id" in column else set()
            at = next((keys.index(sp) for sp in spellings if sp in keys and keys.index(sp) not in taken), None)
            if at is not None:
                column[field_name] = at
        if "id" not in column:
            raise ValueError(f"roster {str(path)!r} must have an id column (e.g. 'ID', 'Student ID', 'SIS User ID'), got columns {header}")
        canvas_ids = keys[:2] == ["student", "id"]  # a Canvas gradebook export: its ID is Canvas's user id
        if "canvas user id" in keys:  # Canvas's group export: name, canvas_user_id, user_id, login_id, ...
            column["id"], canvas_ids = keys.index("canvas user id"), True
        first = next((keys.index(k) for k in ("first name", "first", "given name") if k in keys), None)
        last = next((keys.index(k) for k in ("last name", "last", "surname", "family name") if k in keys), None)
        students, seen = [], {}
        for line, row in enumerate(reader, start=2):
            cell = lambda name: _nfc(row[column[name]]).strip() if name in column and column[name] < len(row) else ""  # noqa: E731
            sid, name = cell("id"), cell("name")
            if not name and first is not None and last is not None:
                name = " ".join(p for p in (row[first].strip() if first < len(row) else "", row[last].strip() if last < len(row) else "") if p)
            if not sid and (not name or "points possible" in name.lower() or not any(c.strip() for c in row)):
                continue  # a blank line, Canvas's "Points Possible" row, a muted-assignments row
            if sid in seen:
                raise ValueError(f"roster {str(path)!r} must list each id once, got {sid!r} on lines {seen[sid]} and {line}")
            if not sid:  # a Gradescope student without an SID: the e-mail, else the name, is the key
                sid = cell("email") or name
                sid = sid if sid not in seen else f"{sid} (line {line})"
            seen[sid] = line
            students.append(
                Student(id=sid, name=name, email=cell("email"), sis_user_id=cell("sis_user_id"),
                        sis_login_id=cell("sis_login_id"), section=cell("section"),
                        canvas_id=cell("id") if canvas_ids and cell("id").isdigit() else "")
            )  # fmt: skip
    return students


def _check_roster(roster, name: str = "roster") -> list[Student]:
    if roster is None:
        return []
    roster = list(roster)
    for s in roster:
        if not isinstance(s, Student):
            raise TypeError(f"{name} must hold Student items (from read_roster), got {type(s).__name__}")
    return roster


def find_student(roster: Iterable[Student], who: str | Entry) -> Student | None:
    """The roster's student a row's student string or an Entry names: by id, SIS ids, email, then Canvas name key."""
    roster = _check_roster(roster)
    if isinstance(who, Entry):
        ids = {who.student_id, who.email.lower()} - {""}
        keys = {who.name_key} if who.name_key else _name_keys(who.student_name)  # "Ana Núñez" finds "Núñez, Ana"
        names = {who.student_name.casefold()} - {""}
    elif isinstance(who, str):
        ids, keys, names = {who, who.lower()} - {""}, {name_key(who)} - {""}, {who.casefold()} - {""}
    else:
        raise TypeError(f"who must be a student string or an Entry, got {type(who).__name__}")
    for s in roster:
        if ids & ({s.id, s.sis_user_id, s.sis_login_id, s.email.lower()} - {""}):
            return s
    for s in roster:
        if names & ({s.name.casefold()} - {""}):
            return s
    for s in roster:
        if keys & _name_keys(s.name):
            return s
    return None


def with_roster(entries: Iterable[Entry], roster: Iterable[Student]) -> list[Entry]:
    """The entries with the roster's id, name and email filled in where a student is found (new objects)."""
    from dataclasses import replace

    roster = _check_roster(roster)
    out = []
    for entry in entries:
        if not isinstance(entry, Entry):
            raise TypeError(f"entries must hold Entry items (from discover), got {type(entry).__name__}")
        s = find_student(roster, entry)
        out.append(entry if s is None else replace(entry, student_id=s.id, student_name=s.name or entry.student_name, email=s.email or entry.email))
    return out


def roster_keys(roster: Iterable[Student] | None, entries: Iterable[Entry]) -> dict[str, str]:
    """{row key: roster id} for every entry `find_student` places in the roster (by id, SIS ids, e-mail,
    name or Canvas name key): the rows of a Gradescope student without an SID, keyed by e-mail, land on
    the roster's student, not on a second line."""
    roster = _check_roster(roster)
    keys = {}
    for entry in entries:
        s = find_student(roster, entry) if roster and isinstance(entry, Entry) else None
        if s is not None:
            keys[entry.student] = s.id
    return keys


def missing_students(roster: Iterable[Student], entries: Iterable[Entry]) -> list[Student]:
    """The roster's students with no entry at all (by id, SIS ids, email or Canvas name key), in roster order.

    In a gradebook they get 0 points and the status "not submitted" (`gradebook` does this itself).
    """
    roster = _check_roster(roster)
    found = set()
    for entry in entries:
        if not isinstance(entry, Entry):
            raise TypeError(f"entries must hold Entry items (from discover), got {type(entry).__name__}")
        s = find_student(roster, entry)
        if s is not None:
            found.add(s.id)
    return [s for s in roster if s.id not in found]


# --------------------------------------------------------------------------------------------
# Gradebooks
# --------------------------------------------------------------------------------------------

