"""A class of submissions: who handed in what (Canvas, Gradescope, a folder), gradebooks, feedback, shards.

Plain functions around the grader (`helpers.grade`): nothing here runs a kernel or a notebook.

**Inputs.** `discover(paths)` lists every notebook with its student, from three layouts:

- *Canvas* "Download Submissions": flat files named ``<namekey>[_LATE]_<userid>_<fileid>_<name>``.
  Canvas builds them in ``lib/content_zipper.rb``: the name key is the student's sortable name
  ("O'Brien, Zoë"), lower-cased, with every character that is not a letter, digit or underscore
  removed (``obrienzoë``); ``LATE`` follows it when the submission was late; then the Canvas user id
  (``anon_<id>`` under anonymous grading), the id of the uploaded file, and the file's own name
  (Canvas appends ``-1``, ``-2`` to a name already taken in the student's files).
- *Gradescope* "Export Submissions": a folder holding ``submission_metadata.yml`` and one
  ``submission_<id>/`` folder per submission; the YAML maps each folder to ``:submitters:``
  (``:name:``, ``:sid:``, ``:email:``) and ``:created_at:`` (Ruby's symbol keys, hence the colons).
- *A folder per student*: ``folder/alice/...ipynb`` is alice's (as ``helpers.grade`` has it).

`choose_latest` keeps one file per student and notebook; `read_roster` and `missing_students` bring in
the students who handed in nothing.

**Outputs** (from the grader's long rows: dicts with student, notebook, exercise, passed, status,
detail, path): `gradebook` / `write_gradebook` (plain CSV, or the CSV Canvas's gradebook import
accepts), `gradescope_results` (an autograder ``results.json``), `feedback_html` (one page per
student). Each records `course_meta`: the course version, the timeout and the date.

**Beyond one machine**: `shard` splits submissions between machines, `shard_from_env` reads the
slice from a Slurm array or a Kubernetes Indexed Job, `parse_shard` reads "K/N", and `merge` joins
the shards' ``--results`` files into one list of rows.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import os
import re
import subprocess
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("canvas", "gradescope", "folder")
GRADESCOPE_METADATA = "submission_metadata.yml"
ROW_FIELDS = ("student", "notebook", "exercise", "passed", "status", "detail", "path")
NOT_SUBMITTED = "not submitted"
SHARDS_ENV = "SEEING_NETWORKS_SHARDS"  # how many shards, where the scheduler does not say (Kubernetes)
SHARD_ENV = "SEEING_NETWORKS_SHARD"  # "K/N", for any other scheduler

# <namekey>_[LATE_]<user id>_<file id>_<file name>; the name key may be empty (a user with no name)
CANVAS_NAME = re.compile(r"^(?P<key>.*?)_(?:(?P<late>late)_)?(?P<uid>\d+)_(?P<fid>\d+)_(?P<orig>.+)$", re.IGNORECASE)
# anonymous grading: [LATE_]anon_<anonymous id>_<file id>_<file name>
CANVAS_ANON = re.compile(r"^(?:(?P<late>late)_)?(?P<uid>anon_[A-Za-z0-9]+)_(?P<fid>\d+)_(?P<orig>.+)$", re.IGNORECASE)
# a copy's suffix: "name-1.ipynb" (Canvas), "name (1).ipynb" (browsers), "name copy.ipynb"
COPY_SUFFIX = re.compile(r"(?:-(\d+)|\s*\((\d+)\)|\s+copy(?:\s+(\d+))?)$", re.IGNORECASE)


@dataclass
class Entry:
    """One notebook file of one student, as the LMS delivered it.

    `student_id` is the LMS's id (Canvas user id, Gradescope SID, or the folder's name);
    `submitted_at` is the LMS's time of submission when it gives one (Gradescope), else None.
    """

    student_id: str
    student_name: str
    email: str
    path: Path
    notebook: str  # the course notebook ("02_iou_ap_map"), or "" when the name names none
    submitted_at: datetime | None
    source: str  # "canvas" | "gradescope" | "folder"
    original_name: str  # the file's name as the student uploaded it (the LMS's prefix removed)
    name_key: str = ""  # Canvas's name key ("smithjohn"), "" elsewhere
    late: bool = False  # Canvas marked the submission late
    file_id: str = ""  # Canvas's id of the uploaded file; Gradescope's submission id
    mtime: float = 0.0  # the file's modification time when discovered

    @property
    def student(self) -> str:
        """The key that names this student in grade rows: the id, else the name key, else the name."""
        return self.student_id or self.name_key or self.student_name


@dataclass
class Student:
    """One student of a roster. `id` is what the grade rows call the student."""

    id: str
    name: str = ""
    email: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _nfc(text: str) -> str:
    """Unicode NFC: the same name whether the zip was unpacked on macOS (NFD) or elsewhere."""
    return unicodedata.normalize("NFC", str(text))


def _hidden(parts: Iterable[str]) -> bool:
    """Is any part of a relative path hidden (``.ipynb_checkpoints``, ``.DS_Store``) or macOS's zip clutter?"""
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _course_notebook(name: str) -> str:
    """The course notebook a file name names (``helpers.grade.notebook_from_filename``), or ""."""
    from helpers.grade import notebook_from_filename

    return notebook_from_filename(Path(name))


def name_key(name: str) -> str:
    """Canvas's name key of a sortable name: "O'Brien, Zoë" -> "obrienzoë" (lower case, letters/digits/_ only)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    text = re.sub(r"_(\d+)_", r"\1", _nfc(name)).lower()  # Canvas keeps "_<digits>_" out of the key
    return re.sub(r"[^\w]", "", text)


def _name_keys(name: str) -> set[str]:
    """The name keys a roster name could have in Canvas: as written, and "Last, First" from "First Last"."""
    name = _nfc(name).strip()
    keys = {name_key(name)} if name else set()
    if name and "," not in name and " " in name:
        first, last = name.rsplit(" ", 1)
        keys.add(name_key(f"{last}, {first}"))
    return keys - {""}


def copy_number(name: str) -> int:
    """How many copies deep a file name is: "02.ipynb" -> 0, "02 (2).ipynb" -> 2, "02-1.ipynb" -> 1."""
    match = COPY_SUFFIX.search(Path(name).stem)
    if not match:
        return 0
    digits = next((g for g in match.groups() if g), None)
    return int(digits) if digits else 1


def _base_name(name: str) -> str:
    """A file name without its copy suffix and extension: "02_iou_ap_map (1).ipynb" -> "02_iou_ap_map"."""
    return COPY_SUFFIX.sub("", Path(name).stem).strip()


def _as_utc(moment: datetime) -> datetime:
    """An aware datetime in UTC (a naive one is taken to be UTC already)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def parse_timestamp(value) -> datetime | None:
    """A time as Gradescope's YAML writes it ("2026-04-26 17:34:00.861687000 Z", "... -07:00") or ISO 8601.

    Returns an aware datetime, or None for None/"". Raises ValueError for text that is no time.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).strip()
    match = re.fullmatch(
        r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?\s*(Z|UTC|[+-]\d\d:?\d\d)?", text, re.IGNORECASE
    )
    if not match:
        raise ValueError(f"value must be a time like '2026-04-26 17:34:00.861687000 Z', got {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    zone = match.group(8)
    if zone is None or zone.upper() in ("Z", "UTC"):
        tz = timezone.utc
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


# --------------------------------------------------------------------------------------------
# LMS inputs
# --------------------------------------------------------------------------------------------


def parse_canvas_name(filename: str) -> dict | None:
    """The parts of a Canvas "Download Submissions" file name, or None when it is not one.

    "smithjohn_LATE_123_456_02_iou_ap_map.ipynb" -> {"name_key": "smithjohn", "late": True,
    "student_id": "123", "file_id": "456", "original_name": "02_iou_ap_map.ipynb"}.
    """
    if not isinstance(filename, str):
        raise TypeError(f"filename must be a str, got {type(filename).__name__}")
    name = _nfc(Path(filename).name)
    match = CANVAS_ANON.match(name)
    key = ""
    if match is None:
        match = CANVAS_NAME.match(name)
        if match is None:
            return None
        key = match.group("key")
    return {
        "name_key": key,
        "late": bool(match.group("late")),
        "student_id": match.group("uid"),
        "file_id": match.group("fid"),
        "original_name": match.group("orig"),
    }


def _canvas_entry(path: Path, parts: dict) -> Entry:
    original = parts["original_name"]
    return Entry(
        student_id=parts["student_id"], student_name=parts["name_key"], email="", path=path,
        notebook=_course_notebook(original) or _course_notebook(path.name), submitted_at=None, source="canvas",
        original_name=original, name_key=parts["name_key"], late=parts["late"], file_id=parts["file_id"],
        mtime=path.stat().st_mtime,
    )  # fmt: skip


def read_gradescope_metadata(path: str | Path) -> dict[str, dict]:
    """Gradescope's ``submission_metadata.yml``: {folder: {"submitters": [{name, sid, email}], "created_at"}}.

    Uses PyYAML when it is installed (several documents split by "..." are merged), else a small reader
    of just that file's shape. Raises FileNotFoundError, or ValueError when the file is not that shape.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        import yaml
    except ImportError:
        raw = _read_gradescope_yaml(text)
    else:
        raw = {}
        try:
            # Gradescope's file can hold several documents split by a bare "..." with no "---" after it,
            # which YAML 1.2 allows and PyYAML (YAML 1.1) refuses: read each part on its own
            for part in re.split(r"(?m)^\.\.\.[ \t]*$", text):
                for document in yaml.safe_load_all(part):
                    if document is None:
                        continue
                    if not isinstance(document, dict):
                        raise ValueError("a document that is not a mapping")
                    raw.update(document)
        except yaml.YAMLError as error:
            raise ValueError(f"{path} is not readable YAML: {error}") from None
        except ValueError as error:
            raise ValueError(f"{path} must map submission folders to their submitters: {error}") from None
    out = {}
    for folder, record in raw.items():
        if not isinstance(record, dict):
            continue
        submitters = record.get(":submitters", record.get("submitters")) or []
        people = []
        for person in submitters if isinstance(submitters, list) else []:
            if not isinstance(person, dict):
                continue
            get = lambda key: person.get(f":{key}", person.get(key))  # noqa: E731
            people.append({k: _nfc("" if get(k) is None else str(get(k))).strip() for k in ("name", "sid", "email")})
        created = record.get(":created_at", record.get("created_at"))
        try:
            created = parse_timestamp(created)
        except ValueError:
            created = None
        out[str(folder)] = {"submitters": people, "created_at": created}
    return out


def _scalar(text: str) -> str:
    """One YAML scalar as written on one line: 'single', "double" or plain."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return json.loads(re.sub(r"\\x([0-9A-Fa-f]{2})", r"\\u00\1", text))
        except ValueError:
            return text[1:-1]
    return text


def _read_gradescope_yaml(text: str) -> dict[str, dict]:
    """A reader of ``submission_metadata.yml``'s shape only (for when PyYAML is missing).

    Reads each top-level ``submission_<id>:`` key, its ``:submitters:`` list (``- :name: ...`` items
    with ``:sid:`` and ``:email:``) and ``:created_at:``; everything else (results, history) is skipped.
    """
    out: dict[str, dict] = {}
    current = None
    in_submitters = False
    person = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or line.strip() in ("---", "..."):
            continue
        indent = len(line) - len(line.lstrip(" "))
        stripped = line.strip()
        if indent == 0:
            match = re.fullmatch(r"(['\"]?)([^'\":]+)\1:\s*", line)
            current = out.setdefault(match.group(2), {":submitters": []}) if match else None
            in_submitters, person = False, None
            continue
        if current is None:
            continue
        key_match = re.fullmatch(r"(:?\w+):(?:\s+(.*))?", stripped)
        if indent <= 2 and key_match:
            key, value = key_match.group(1), key_match.group(2)
            in_submitters = key in (":submitters", "submitters") and not (value or "").strip().startswith("[")
            person = None
            if key in (":created_at", "created_at") and value:
                current[":created_at"] = _scalar(value)
            continue
        if not in_submitters:
            continue
        item = re.fullmatch(r"-\s+(:?\w+):\s*(.*)", stripped)
        if item:
            person = {}
            current[":submitters"].append(person)
            person[item.group(1).lstrip(":")] = _scalar(item.group(2))
        elif person is not None and key_match:
            person[key_match.group(1).lstrip(":")] = _scalar(key_match.group(2) or "")
        elif indent <= 2:
            in_submitters = False
    return out


def _gradescope_entries(export: Path) -> list[Entry]:
    """Every notebook of a Gradescope export folder: one entry per submitter (group work gives several)."""
    metadata = read_gradescope_metadata(export / GRADESCOPE_METADATA)
    entries = []
    for folder in sorted(p for p in export.iterdir() if p.is_dir() and not _hidden([p.name])):
        record = metadata.get(folder.name, {"submitters": [], "created_at": None})
        people = record["submitters"] or [{"name": "", "sid": folder.name, "email": ""}]
        submission_id = folder.name.removeprefix("submission_")
        for nb in sorted(folder.rglob("*.ipynb")):
            if _hidden(nb.relative_to(folder).parts) or not nb.is_file():
                continue
            for person in people:
                entries.append(
                    Entry(
                        student_id=person["sid"] or person["email"] or person["name"] or folder.name,
                        student_name=person["name"], email=person["email"], path=nb,
                        notebook=_course_notebook(nb.name), submitted_at=record["created_at"], source="gradescope",
                        original_name=_nfc(nb.name), file_id=submission_id, mtime=nb.stat().st_mtime,
                    )  # fmt: skip
                )
    return entries


def discover(paths: Iterable[str | Path]) -> list[Entry]:
    """Every notebook under `paths` (files or folders), each with its student and where it came from.

    A folder holding ``submission_metadata.yml`` (at any depth) is a Gradescope export; a file named the
    Canvas way (``smithjohn_123_456_02_iou_ap_map.ipynb``) lying directly in a folder you name is a Canvas
    download; any other notebook belongs to the first folder below the one named (``folder/alice/x.ipynb``
    is alice's), or to that folder itself when it lies directly in it. Hidden files and folders
    (``.ipynb_checkpoints``) and ``__MACOSX`` are skipped. Raises TypeError for a lone string (give a list)
    and FileNotFoundError for a path that does not exist.
    """
    if isinstance(paths, (str, bytes, Path)):
        raise TypeError(f"paths must be a list of paths, got a single {type(paths).__name__}: wrap it in a list")
    entries: list[Entry] = []
    seen: set[tuple[Path, str]] = set()

    def add(entry: Entry) -> None:
        if (entry.path, entry.student) not in seen:
            seen.add((entry.path, entry.student))
            entries.append(entry)

    for given in paths:
        if not isinstance(given, (str, Path)):
            raise TypeError(f"paths must hold str or Path items, got {type(given).__name__}")
        path = Path(given)
        if not path.exists():
            raise FileNotFoundError(f"paths must exist, got {str(given)!r}")
        path = path.resolve()
        if path.is_file():
            if path.suffix != ".ipynb":
                continue
            parts = parse_canvas_name(path.name)
            if parts:
                add(_canvas_entry(path, parts))
            else:
                add(_folder_entry(path, path.parent.name, path.parent))
            continue
        exports = sorted(
            meta.parent for meta in path.rglob(GRADESCOPE_METADATA) if not _hidden(meta.relative_to(path).parts[:-1])
        )
        for export in exports:
            for entry in _gradescope_entries(export):
                add(entry)
        for nb in sorted(path.rglob("*.ipynb")):
            rel = nb.relative_to(path)
            if _hidden(rel.parts) or not nb.is_file() or any(export in nb.parents for export in exports):
                continue
            parts = parse_canvas_name(nb.name) if len(rel.parts) == 1 else None
            if parts:
                add(_canvas_entry(nb, parts))
            else:
                add(_folder_entry(nb, rel.parts[0] if len(rel.parts) > 1 else path.name, path))
    return entries


def _folder_entry(nb: Path, student: str, top: Path) -> Entry:
    student = _nfc(student)
    return Entry(
        student_id=student, student_name=student, email="", path=nb, notebook=_course_notebook(nb.name),
        submitted_at=None, source="folder", original_name=_nfc(nb.name), mtime=nb.stat().st_mtime,
    )  # fmt: skip


def choose_latest(entries: Iterable[Entry]) -> tuple[list[Entry], list[Entry]]:
    """One file per student and notebook: (chosen, superseded), each in the order given.

    Files count as the same notebook when they name the same course notebook, or (naming none) have the
    same name once a copy suffix is removed ("x (1).ipynb", Canvas's "x-1.ipynb"). The latest is the one
    the LMS dated last (Gradescope's created_at); failing that, for Canvas, the highest file id (Canvas
    numbers uploads in order, and its zips date every file at download time); failing that, the latest
    modification time. Ties go to the higher copy number, then to the path that sorts last.
    """
    entries = list(entries)
    for entry in entries:
        if not isinstance(entry, Entry):
            raise TypeError(f"entries must hold Entry items (from discover), got {type(entry).__name__}")
    groups: dict[tuple[str, str], list[int]] = {}
    for i, entry in enumerate(entries):
        what = entry.notebook or _base_name(entry.original_name or entry.path.name).casefold()
        groups.setdefault((entry.student, what), []).append(i)
    chosen_ids = set()
    for members in groups.values():
        group = [entries[i] for i in members]
        if all(e.submitted_at is not None for e in group):
            when = [_as_utc(e.submitted_at).timestamp() for e in group]
        elif all(e.source == "canvas" and e.file_id.isdigit() for e in group):
            when = [int(e.file_id) for e in group]
        else:
            when = [e.mtime or (e.path.stat().st_mtime if e.path.exists() else 0.0) for e in group]
        best = max(range(len(group)), key=lambda j: (when[j], copy_number(group[j].original_name or group[j].path.name), str(group[j].path)))
        chosen_ids.add(members[best])
    chosen = [e for i, e in enumerate(entries) if i in chosen_ids]
    superseded = [e for i, e in enumerate(entries) if i not in chosen_ids]
    return chosen, superseded


# --------------------------------------------------------------------------------------------
# Rosters
# --------------------------------------------------------------------------------------------

#: Header spellings (lower case, single spaces) for each roster field, in order of preference.
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
    Possible" and muted rows are skipped, and SIS User ID, SIS Login ID and Section are kept. Raises
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
            if not sid:
                raise ValueError(f"roster {str(path)!r} line {line}: every student must have an id, got none for {name!r}")
            if sid in seen:
                raise ValueError(f"roster {str(path)!r} must list each id once, got {sid!r} on lines {seen[sid]} and {line}")
            seen[sid] = line
            students.append(
                Student(id=sid, name=name, email=cell("email"), sis_user_id=cell("sis_user_id"),
                        sis_login_id=cell("sis_login_id"), section=cell("section"))
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
        keys = {who.name_key} if who.name_key else set()
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
    from helpers.grade import course_exercises, known_notebooks

    notebooks = known_notebooks() if notebooks is None else list(notebooks)
    return {(nb, ex.name): ex.points for nb in notebooks for ex in course_exercises(nb)}


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
    scores = _scores(rows, points)
    maximum = sum(points.values())
    header = ["student", "name", "email"]
    for nb in notebooks:
        header += [f"{nb}/{ex}" for (n, ex) in points if n == nb] + [nb]
    header += ["total", "maximum", "percentage", "status"]

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


def write_gradebook(
    path: str | Path,
    rows,
    points,
    roster=None,
    fmt: str = "plain",
    meta: Mapping | None = None,
    id_column: str = "ID",
    assignment_names: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write a gradebook CSV; return the files written.

    ``fmt="plain"``: `gradebook`'s header and table, then the columns course_version, timeout_s and
    graded_at from `meta` on every line.

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

    `meta` defaults to ``course_meta(None)``. Raises ValueError for an unknown fmt or id_column.
    """
    if fmt not in ("plain", "canvas"):
        raise ValueError(f"fmt must be 'plain' or 'canvas', got {fmt!r}")
    if id_column not in ("ID", "SIS User ID", "SIS Login ID"):
        raise ValueError(f"id_column must be 'ID', 'SIS User ID' or 'SIS Login ID', got {id_column!r}")
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
            writer.writerow(header + extra)
            for line in table:
                writer.writerow(line + [meta.get("course_version", ""), meta.get("timeout_s", ""), meta.get("date", "")])
        else:
            notebooks = _notebooks(points)
            names = dict(assignment_names or {})
            writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section"] + [names.get(nb, nb) for nb in notebooks])
            maxima = [_number(sum(p for (n, _), p in points.items() if n == nb)) for nb in notebooks]
            writer.writerow(["Points Possible", "", "", "", ""] + maxima)
            by_id = {s.id: s for s in roster}
            at = {nb: header.index(nb) for nb in notebooks}
            for line in table:
                s = by_id.get(line[0])
                ids = {"ID": "", "SIS User ID": s.sis_user_id if s else "", "SIS Login ID": s.sis_login_id if s else ""}
                ids[id_column] = line[0]
                writer.writerow([line[1] or line[0], ids["ID"], ids["SIS User ID"], ids["SIS Login ID"], s.section if s else ""] + [line[at[nb]] for nb in notebooks])
    if fmt == "canvas":
        side = path.with_name(path.name + ".meta.json")
        side.write_text(json.dumps({**meta, "gradebook": path.name, "format": "canvas", "id_column": id_column}, indent=2, default=str) + "\n")
        written.append(side)
    return written


def _rows_by_exercise(rows: list[dict], points: dict) -> tuple[list[str], dict, dict]:
    """(notebooks, {(nb, ex): last row}, {nb: a notebook-wide problem row}) of one submission's rows."""
    notebooks = list(dict.fromkeys(r["notebook"] for r in rows))
    by_key = {(r["notebook"], r["exercise"]): r for r in rows}
    problem = {r["notebook"]: r for r in rows if r["exercise"] == "-"}  # the grader's row for a notebook it could not run
    return notebooks, by_key, problem


def _verdict(notebook: str, exercise: str, by_key: dict, problem: dict) -> tuple[bool, str, str]:
    row = by_key.get((notebook, exercise)) or problem.get(notebook)
    if row is None:
        return False, "not run", "no result came back for this exercise"
    return bool(row["passed"]), str(row.get("status", "")), str(row.get("detail", ""))


def gradescope_results(rows, points, meta: Mapping | None = None, visibility: str = "visible") -> dict:
    """One submission's rows as Gradescope's autograder ``results.json`` (a dict: ``json.dump`` it).

    Top level: ``score`` (points earned), ``output`` (a summary with the course version, timeout and
    date), ``visibility``, ``stdout_visibility`` "hidden", ``extra_data`` {"meta": meta}, and ``tests``:
    one per exercise of the notebooks in the rows (in `points` order) with ``name`` ("notebook:
    exercise"), ``number``, ``score``, ``max_score``, ``output`` (the verdict and its detail),
    ``tags`` [notebook, status] and ``visibility``. Raises ValueError when the rows name several
    students or none, or `visibility` is not one of Gradescope's.
    """
    rows = _check_rows(rows)
    points = _check_points(points)
    if visibility not in ("hidden", "after_due_date", "after_published", "visible"):
        raise ValueError(f"visibility must be 'hidden', 'after_due_date', 'after_published' or 'visible', got {visibility!r}")
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
            tests.append({
                "name": f"{n}: {ex}", "number": f"{nb_index}.{ex_index}", "score": _number(got), "max_score": _number(worth),
                "output": "passed" if passed else f"{status}: {detail}" if detail else status,
                "tags": [n, "passed" if passed else status], "visibility": visibility,
            })  # fmt: skip
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
    from helpers.grade import STATUSES

    if not isinstance(student, str) or not student:
        raise TypeError(f"student must be a non-empty str, got {student!r}")
    rows = [r for r in _check_rows(rows) if str(r["student"]) == student]
    points = _check_points(points)
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


def parse_shard(text: str) -> tuple[int, int]:
    """ "K/N" -> (K, N): this machine grades slice K of N, K counting from 0 ("0/4" ... "3/4")."""
    if not isinstance(text, str):
        raise TypeError(f"shard must be a str 'K/N', got {type(text).__name__}")
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"shard must be 'K/N' with whole numbers, e.g. '0/4', got {text!r}")
    k, n = int(match.group(1)), int(match.group(2))
    _check_shard(k, n)
    return k, n


def _check_shard(k, n) -> None:
    for name, value in (("k", k), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if n < 1:
        raise ValueError(f"n must be at least 1 (the number of shards), got {n}")
    if not 0 <= k < n:
        raise ValueError(f"k must be in 0..{n - 1} (shards count from 0), got {k} of {n}")


def shard_key(item, root: str | Path | None = None) -> str:
    """What decides an item's shard: an Entry's student and notebook (the same on every machine), or a
    path (a str, a Path, or an object with `.path`) relative to `root` when given."""
    if isinstance(item, Entry):
        return f"{item.student}\x00{item.notebook or _base_name(item.original_name or item.path.name)}"
    path = getattr(item, "path", item)
    if not isinstance(path, (str, Path)):
        raise TypeError(f"items must be Entry objects, paths, or objects with a .path, got {type(item).__name__}")
    path = Path(path)
    if root is not None:
        try:
            path = path.resolve().relative_to(Path(root).resolve())
        except ValueError:
            raise ValueError(f"every path must lie under root {str(root)!r}, got {str(path)!r}") from None
    return path.as_posix()


def shard_of(key: str, n: int) -> int:
    """The shard (0..n-1) of a key: a SHA-256 of it, modulo n (the same in every process and Python)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % n


def shard(items, k: int, n: int, root: str | Path | None = None) -> list:
    """Slice `k` of `n` of `items`, in their order: the items whose `shard_key` hashes to k.

    Each item's shard depends on the item alone, so the slices are disjoint, cover everything, and stay
    the same however the list is ordered or whatever else it holds (a late submission moves nobody).
    Slices are balanced only on average.
    """
    _check_shard(k, n)
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(f"items must be a list, got {type(items).__name__}")
    return [item for item in items if shard_of(shard_key(item, root), n) == k]


def shard_from_env(environ: Mapping[str, str] | None = None, n: int | None = None) -> tuple[int, int] | None:
    """(k, n) from the scheduler's environment (default `os.environ`), or None outside a job array.

    - Slurm array: ``SLURM_ARRAY_TASK_ID``, counted from ``SLURM_ARRAY_TASK_MIN`` in steps of
      ``SLURM_ARRAY_TASK_STEP`` (so ``--array=1-8`` and ``--array=0-7`` both give 0..7), with
      ``SLURM_ARRAY_TASK_COUNT`` shards. The array must be one range (not a list like 1,4,9).
    - Kubernetes Indexed Job: ``JOB_COMPLETION_INDEX`` (from 0). Kubernetes gives pods no count, so n is
      `n`, else ``SEEING_NETWORKS_SHARDS`` (set it to the Job's ``completions``).
    - Anything else: ``SEEING_NETWORKS_SHARD`` = "K/N".

    Raises ValueError when the variables disagree or are incomplete.
    """
    env = os.environ if environ is None else environ
    if not isinstance(env, Mapping):
        raise TypeError(f"environ must be a mapping of environment variables, got {type(env).__name__}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive int, got {n!r}")

    def number(name: str, default: int | None = None) -> int | None:
        value = env.get(name, "")
        if str(value).strip() == "":
            return default
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {value!r}") from None

    if number("SLURM_ARRAY_TASK_ID") is not None:
        task, low = number("SLURM_ARRAY_TASK_ID"), number("SLURM_ARRAY_TASK_MIN", 0)
        step, count, high = number("SLURM_ARRAY_TASK_STEP", 1) or 1, number("SLURM_ARRAY_TASK_COUNT"), number("SLURM_ARRAY_TASK_MAX")
        if count is None:
            count = n if n is not None else (None if high is None else (high - low) // step + 1)
        if count is None:
            raise ValueError("SLURM_ARRAY_TASK_COUNT must be set with SLURM_ARRAY_TASK_ID (or pass n)")
        if n is not None and n != count:
            raise ValueError(f"n ({n}) must equal SLURM_ARRAY_TASK_COUNT ({count})")
        if high is not None and (high - low) // step + 1 != count:
            raise ValueError(
                f"the Slurm array must be one range like --array=0-{count - 1} (got ids {low}..{high} in steps of {step} "
                f"but {count} tasks); give --shard K/N instead"
            )
        k, rest = divmod(task - low, step)
        if rest or not 0 <= k < count:
            raise ValueError(f"SLURM_ARRAY_TASK_ID {task} is not in the range {low}..{low + step * (count - 1)} step {step}")
        return k, count
    if number("JOB_COMPLETION_INDEX") is not None:
        k = number("JOB_COMPLETION_INDEX")
        shards = n if n is not None else number(SHARDS_ENV)
        if shards is None:
            raise ValueError(
                f"a Kubernetes Indexed Job gives JOB_COMPLETION_INDEX but not the number of completions: "
                f"set {SHARDS_ENV} to the Job's spec.completions (or pass n)"
            )
        _check_shard(k, shards)
        return k, shards
    if str(env.get(SHARD_ENV, "")).strip():
        k, shards = parse_shard(str(env[SHARD_ENV]))
        if n is not None and n != shards:
            raise ValueError(f"n ({n}) must equal the N of {SHARD_ENV}={env[SHARD_ENV]!r}")
        return k, shards
    return None


class Merged(list):
    """The rows `merge` returns (a list of dicts), with `skipped` (unreadable lines), `notebooks` (graded
    notebooks) and `meta` (the course version, timeout and date the first graded line recorded, or None)."""

    skipped: int = 0
    notebooks: int = 0
    meta: dict | None = None


def merge(results_files: Iterable[str | Path]) -> Merged:
    """The long rows of several ``--results`` files (one JSON line per graded notebook), as one list.

    Files are read in the order given, lines in order; a later line for the same (path, sha256) replaces
    an earlier one (a notebook graded again). Lines that are not JSON objects with "path", "sha256" and a
    list of "rows" are skipped and counted in ``.skipped``. Rows come out by path, each notebook's rows
    in their order. Raises FileNotFoundError for a missing file.
    """
    if isinstance(results_files, (str, bytes, Path)):
        raise TypeError("results_files must be a list of files, got a single path: wrap it in a list")
    done: dict[tuple[str, str], list[dict]] = {}
    skipped, meta = 0, None
    for given in results_files:
        path = Path(given)
        if not path.is_file():
            raise FileNotFoundError(f"results_files must exist, got {str(given)!r}")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                key = (str(entry["path"]), str(entry["sha256"]))
                rows = entry["rows"]
                if not isinstance(rows, list) or not all(isinstance(r, dict) and all(f in r for f in ROW_FIELDS) for r in rows):
                    raise ValueError("rows")
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            done.pop(key, None)
            done[key] = rows
            if meta is None and isinstance(entry.get("meta"), dict):
                meta = entry["meta"]
    out = Merged(row for key in sorted(done) for row in done[key])
    out.skipped, out.notebooks, out.meta = skipped, len(done), meta
    return out
