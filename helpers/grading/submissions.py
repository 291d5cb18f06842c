"""Finding submissions: who handed in what, from a Canvas download, a Gradescope export or a folder per student.

`discover(paths)` lists every notebook with its student, from three layouts:

- *Canvas* "Download Submissions": flat files named ``<namekey>[_LATE]_<userid>_<fileid>_<name>``.
  Canvas builds them in ``lib/content_zipper.rb``: the name key is the student's sortable name
  ("O'Brien, Zoë"), lower-cased, with every character that is not a letter, digit or underscore
  removed (``obrienzoë``); ``LATE`` follows it when the submission was late; then the Canvas user id
  (``anon_<id>`` under anonymous grading), the id of the uploaded file, and the file's own name
  (Canvas appends ``-1``, ``-2`` to a name already taken in the student's files).
- *Gradescope* "Export Submissions": a folder holding ``submission_metadata.yml`` and one
  ``submission_<id>/`` folder per submission; the YAML maps each folder to ``:submitters:``
  (``:name:``, ``:sid:``, ``:email:``) and ``:created_at:`` (Ruby's symbol keys, hence the colons).
- *A folder per student*: ``folder/alice/...ipynb`` is alice's.

`choose_latest` keeps one file per student and notebook; `find_class` turns what is left into
`Submission`s and `read_submission` reads one (never raising: a bad file becomes its own row).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from helpers.grading.records import one_line, printable

NOTEBOOK_STEM = re.compile(r"(\d\d_[A-Za-z0-9_]+)")

SOURCES = ("canvas", "gradescope", "folder")
GRADESCOPE_METADATA = "submission_metadata.yml"

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


ENTRY_RECORD = ("student_id", "student_name", "email", "notebook", "source", "original_name", "name_key", "late", "file_id")


def entry_record(entry: Entry | None) -> dict | None:
    """An Entry as plain JSON data (for a --results line), or None: what the outputs say about a submission."""
    if entry is None:
        return None
    record = {name: getattr(entry, name) for name in ENTRY_RECORD}
    return {**record, "path": str(entry.path), "submitted_at": entry.submitted_at.isoformat() if entry.submitted_at else None}


def entry_from_record(record: dict) -> Entry:
    """The Entry `entry_record` wrote. Raises KeyError, TypeError or ValueError for anything else."""
    when = parse_timestamp(record.get("submitted_at"))
    return Entry(**{name: record[name] for name in ENTRY_RECORD}, path=Path(record["path"]), submitted_at=when)


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
    """The course notebook a file name names (`notebook_from_filename`), or ""."""
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

    Read with PyYAML (several documents split by "..." are merged). Raises FileNotFoundError, or ValueError when the file is not that shape.
    """
    import yaml

    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
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


def discover(paths: Iterable[str | Path], student: str | None = None) -> list[Entry]:
    """Every notebook under `paths` (files or folders), each with its student and where it came from.

    A folder holding ``submission_metadata.yml`` (at any depth) is a Gradescope export; a file named the
    Canvas way (``smithjohn_123_456_02_iou_ap_map.ipynb``) is from a Canvas download, at any depth (a
    folder above the unzipped download works too: see `_canvas_folders`); any other notebook belongs to
    the first folder below the one named (``folder/alice/x.ipynb`` is alice's), or to that folder itself
    when it lies directly in it (to `student` when given, e.g. "solutions (reference)"). Hidden files and folders
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
                add(_folder_entry(path, student or path.parent.name, path.parent))
            continue
        exports = sorted(
            meta.parent for meta in path.rglob(GRADESCOPE_METADATA) if not _hidden(meta.relative_to(path).parts[:-1])
        )
        for export in exports:
            for entry in _gradescope_entries(export):
                add(entry)
        notebooks = [
            nb for nb in sorted(path.rglob("*.ipynb"))
            if not _hidden(nb.relative_to(path).parts) and nb.is_file() and not any(export in nb.parents for export in exports)
        ]  # fmt: skip
        flat_downloads = _canvas_folders(notebooks, path)
        for nb in notebooks:
            rel = nb.relative_to(path)
            parts = parse_canvas_name(nb.name) if nb.parent in flat_downloads else None
            if parts:
                add(_canvas_entry(nb, parts))
            elif student is not None and len(rel.parts) == 1:
                add(_folder_entry(nb, student, path))
            else:
                add(_folder_entry(nb, rel.parts[0] if len(rel.parts) > 1 else path.name, path))
    return entries


def _canvas_folders(notebooks: list[Path], top: Path) -> set[Path]:
    """The folders (at any depth under `top`) that are an unzipped Canvas download: the folder named
    itself when a notebook directly in it is named the Canvas way, and any folder below whose notebooks
    are all named the Canvas way (so `alice/x_1_2_y.ipynb` beside `alice/hw.ipynb` stays alice's)."""
    by_folder: dict[Path, list[bool]] = {}
    for nb in notebooks:
        by_folder.setdefault(nb.parent, []).append(parse_canvas_name(nb.name) is not None)
    return {folder for folder, named in by_folder.items() if (folder == top and any(named)) or all(named)}


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

    Raises ValueError when one student has differently named files for one notebook in one submission
    ("02_iou_ap_map.ipynb" and "02_final.ipynb"): which one counts is the student's to say, not a guess
    (and it is what a folder above a class, taken for one student, looks like).
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
    for (student, what), members in groups.items():
        group = [entries[i] for i in members]
        _refuse_ambiguous(student, what, group)
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


# --------------------------------------------------------------------------------------------
# Submissions: one notebook of one student, read
# --------------------------------------------------------------------------------------------


@dataclass
class Submission:
    """A notebook to grade: whose it is, where it is, and what reading it found."""

    student: str
    path: Path
    notebook: str = ""  # the course notebook it is, e.g. "01_vision_tasks"
    problem: str = ""  # "invalid notebook" / "empty notebook" when it cannot be run
    detail: str = ""
    sha256: str = ""
    nb: object = field(default=None, repr=False)
    entry: object = field(default=None, repr=False)  # the Entry it came from (LMS, name, time)


def _refuse_ambiguous(student: str, what: str, group: list[Entry]) -> None:
    """Raise ValueError when `group` (one student's files for one notebook) holds differently named files
    of one submission; copies of one name ("x.ipynb", "x-1.ipynb", "x (1).ipynb") and Gradescope's
    separate submissions are fine (the latest counts)."""
    names = sorted({_base_name(e.original_name or e.path.name) for e in group})
    submissions = {e.file_id if e.source == "gradescope" else "" for e in group}
    if len(names) < 2 or (group[0].source == "gradescope" and len(submissions) == len(group)):
        return
    files = ", ".join(printable(str(e.path)) for e in group[:4]) + (" ..." if len(group) > 4 else "")
    raise ValueError(
        f"student {printable(student)!r} has {len(group)} differently named files for notebook {printable(what)!r} "
        f"({files}), and the grader will not guess which one counts: keep one of them, or, if this is a whole "
        "class, point the grader at the folder that holds one folder per student (or at the unzipped Canvas download)"
    )


def find_class(paths: list[str | Path], student: str | None = None, groups: list | None = None) -> tuple[list[Submission], list[Entry]]:
    """The notebooks to grade under `paths`, one per student and notebook, and the files they superseded.

    When a student handed in several files for one notebook, the latest counts (`choose_latest`).
    `student` names the student of loose notebooks (see `discover`); `groups` (Canvas's group export, from
    `canvas.read_groups`) gives each member of a group the file Canvas filed under one of them.
    Raises FileNotFoundError, or ValueError for an ambiguous student (see `choose_latest`).
    """
    entries = discover(paths, student)
    if groups:
        from helpers.grading.canvas import credit_groups

        entries = credit_groups(entries, groups)
    chosen, superseded = choose_latest(entries)
    return [Submission(student=e.student, path=e.path, entry=e) for e in chosen], superseded


def find_submissions(paths: list[str | Path]) -> list[Submission]:
    """Every notebook to grade under `paths` (files or folders), each with its student."""
    return find_class(paths)[0]


def notebook_from_filename(path: Path) -> str:
    """The course notebook a file name names: `alice_01_vision_tasks.ipynb` -> `01_vision_tasks`, else ""."""
    from helpers.grading.course import known_notebooks

    names = known_notebooks()
    for name in names:
        if name in path.stem:
            return name
    match = NOTEBOOK_STEM.search(path.stem)
    if match:
        same = [n for n in names if n.startswith(match.group(1)[:2] + "_")]
        if len(same) == 1:
            return same[0]
    return ""


def _read_notebook(raw: bytes):
    """The notebook in `raw`, read by `helpers.grading.notebook_file` where it exists. Raises on anything bad."""
    try:
        from helpers.grading.notebook_file import read_submission_notebook
    except ImportError:
        import nbformat

        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
        cells = nb.get("cells")
        if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
            raise ValueError("no list of cells")
        for number, cell in enumerate(cells, 1):
            if not isinstance(cell.get("source", ""), str) or not isinstance(cell.get("metadata", {}), dict):
                raise ValueError(f"cell {number}: its source or metadata is malformed")
            tags = cell.get("metadata", {}).get("tags", [])
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ValueError(f"cell {number}: its tags are not a list of strings")
        return nb
    return read_submission_notebook(raw)


def read_submission(sub: Submission) -> Submission:
    """Read the notebook and decide which course notebook it is, or what is wrong with it. Never raises.

    The file name decides when it names a course notebook (the student chose neither it nor the
    LMS's renaming); otherwise the labels the course wrote into its check cells.
    """
    try:
        raw = sub.path.read_bytes()
        sub.sha256 = hashlib.sha256(raw).hexdigest()
        nb = _read_notebook(raw)
        labels = [
            str(cell.get("metadata", {}).get("exercise", {}).get("notebook", ""))
            for cell in nb.cells
            if isinstance(cell.get("metadata", {}).get("exercise"), dict)
        ]
    except BaseException as error:  # not JSON, not a notebook, malformed, too deep, too large
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        sub.notebook = getattr(sub.entry, "notebook", "") or notebook_from_filename(sub.path) or sub.path.stem
        sub.problem, sub.detail = "invalid notebook", one_line(f"{type(error).__name__}: {error}")
        return sub
    named = getattr(sub.entry, "notebook", "") or notebook_from_filename(sub.path)
    sub.notebook = named or (Counter(labels).most_common(1)[0][0] if labels else sub.path.stem)
    sub.nb = nb
    if not any(cell.get("cell_type") == "code" for cell in nb.cells):
        sub.problem, sub.detail = "empty notebook", "no code cells"
    return sub
