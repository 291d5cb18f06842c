"""helpers.classbook: a class's submissions from Canvas, Gradescope and folders; gradebooks; shards.

No kernel runs here: the files are empty notebooks built in tmp_path, and the grade rows are written by
hand in the grader's format (`helpers.grade.Result`).
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import subprocess
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from helpers import classbook as cb
from helpers.grading.records import Result
from helpers.grading.submissions import find_submissions

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
NB2, NB3 = "02_iou_ap_map", "03_faster_rcnn"
POINTS = {
    (NB2, "box_iou"): 1, (NB2, "match_detections"): 2, (NB2, "all_point_ap"): 1,
    (NB3, "make_anchors"): 1, (NB3, "nms"): 3,
}  # fmt: skip
META = {"course_version": "git:abc123", "timeout_s": 600, "date": "2026-05-01T12:00:00+00:00"}


def touch(path: Path, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def row(student, notebook, exercise, passed, status=None, detail="", path=""):
    status = status or ("passed" if passed else "incorrect")
    return asdict(Result(student, notebook, exercise, passed, status, detail, path or f"/subs/{student}/{notebook}.ipynb"))


# --------------------------------------------------------------------------------------------
# Canvas
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("smithjohn_123_456_02_iou_ap_map.ipynb", ("smithjohn", False, "123", "456", "02_iou_ap_map.ipynb")),
        ("smithjohn_LATE_123_456_02_iou_ap_map.ipynb", ("smithjohn", True, "123", "456", "02_iou_ap_map.ipynb")),
        ("smithjohn_late_123_456_02_iou_ap_map-1.ipynb", ("smithjohn", True, "123", "456", "02_iou_ap_map-1.ipynb")),
        ("obrienzoë_77_9001_my notebook (2).ipynb", ("obrienzoë", False, "77", "9001", "my notebook (2).ipynb")),
        ("LATE_anon_Xy12z_456_02_iou_ap_map.ipynb", ("", True, "anon_Xy12z", "456", "02_iou_ap_map.ipynb")),
        ("_55_66_02_iou_ap_map.ipynb", ("", False, "55", "66", "02_iou_ap_map.ipynb")),
    ],
)
def test_canvas_file_names_are_parsed(name, expected):
    parts = cb.parse_canvas_name(name)
    assert (parts["name_key"], parts["late"], parts["student_id"], parts["file_id"], parts["original_name"]) == expected


@pytest.mark.parametrize("name", ["02_iou_ap_map.ipynb", "alice.ipynb", "smith_john.ipynb", "smithjohn_123_02.ipynb"])
def test_names_canvas_did_not_make_are_not_parsed(name):
    assert cb.parse_canvas_name(name) is None


def test_canvas_name_keys_follow_canvas():
    # Canvas: sortable name, lower case, everything but letters, digits and _ removed
    assert cb.name_key("O'Brien, Zoë") == "obrienzoë"
    assert cb.name_key("Smith, John") == "smithjohn"
    assert cb.name_key("Nguyễn, Thị Ánh") == "nguyễnthịánh"
    with pytest.raises(TypeError, match="name must be a str"):
        cb.name_key(None)


def test_discover_reads_a_canvas_download(tmp_path):
    folder = tmp_path / "submissions"
    touch(folder / "smithjohn_123_456_02_iou_ap_map.ipynb")
    touch(folder / "obrienzoë_LATE_789_1001_02_iou_ap_map.ipynb")
    touch(folder / "obrienzoë_LATE_789_1002_02_iou_ap_map-1.ipynb")
    touch(folder / ".ipynb_checkpoints" / "smithjohn_123_456_02_iou_ap_map-checkpoint.ipynb")
    touch(folder / "._smithjohn_123_456_02_iou_ap_map.ipynb")  # macOS resource fork
    touch(folder / "__MACOSX" / "smithjohn_123_456_02_iou_ap_map.ipynb")
    (folder / "smithjohn_123_457_notes.txt").write_text("not a notebook")

    entries = cb.discover([folder])
    got = sorted((e.student_id, e.name_key, e.notebook, e.late, e.file_id, e.source, e.original_name) for e in entries)
    assert got == [
        ("123", "smithjohn", NB2, False, "456", "canvas", "02_iou_ap_map.ipynb"),
        ("789", "obrienzoë", NB2, True, "1001", "canvas", "02_iou_ap_map.ipynb"),
        ("789", "obrienzoë", NB2, True, "1002", "canvas", "02_iou_ap_map-1.ipynb"),
    ]
    assert all(e.submitted_at is None and e.path.is_file() for e in entries)


def test_a_file_named_on_its_own_is_parsed_too(tmp_path):
    path = touch(tmp_path / "dl" / "smithjohn_123_456_02_iou_ap_map.ipynb")
    (entry,) = cb.discover([path])
    assert (entry.student, entry.notebook, entry.source) == ("123", NB2, "canvas")
    with pytest.raises(TypeError, match="wrap it in a list"):
        cb.discover(str(path))
    with pytest.raises(FileNotFoundError, match="paths must exist"):
        cb.discover([tmp_path / "nowhere"])


# --------------------------------------------------------------------------------------------
# Gradescope
# --------------------------------------------------------------------------------------------

# The shape of Gradescope's export: Ruby (Psych) symbol keys, a group submission, a name with an
# apostrophe, a comma and a non-ASCII letter, Ruby timestamps, a block scalar in the results, and a
# second YAML document after "..." (real exports carry one).
GRADESCOPE_YAML = """\
submission_1001:
  :submitters:
  - :name: "O'Brien, Zo\\u00EB"
    :sid: '2024001'
    :email: zoe@uni.edu
  :created_at: 2026-04-26 17:34:00.861687000 Z
  :score: 2.0
  :results:
    score: 2.0
    output: |-
      ===========
      :name: not a submitter
submission_1002:
  :submitters:
  - :name: Ana Núñez
    :sid: 2024002
    :email: ana@uni.edu
  - :name: Bo Li
    :sid: '2024003'
    :email: bo@uni.edu
  :created_at: 2026-04-27 09:00:00.000000000 -07:00
  :score: 0.0
  :results:
    tests:
    - name: Correct Assignment Check
      output: 'Don''t worry about this test, it checks that you submitted the
        right assignment.

'
      status: passed
...
submission_1003:
  :submitters:
  - :name: Zoë O'Brien
    :sid: '2024001'
    :email: zoe@uni.edu
  :created_at: 2026-04-28 08:00:00.5 Z
"""


def gradescope_export(tmp_path: Path) -> Path:
    export = tmp_path / "assignment_42_export"
    export.mkdir(parents=True)
    (export / cb.GRADESCOPE_METADATA).write_text(GRADESCOPE_YAML, encoding="utf-8")
    touch(export / "submission_1001" / "02_iou_ap_map.ipynb")
    touch(export / "submission_1001" / ".ipynb_checkpoints" / "02_iou_ap_map-checkpoint.ipynb")
    touch(export / "submission_1002" / "work" / "02_iou_ap_map.ipynb")
    touch(export / "submission_1003" / "02_iou_ap_map.ipynb")
    return export


@pytest.fixture
def yaml_reader():
    pytest.importorskip("yaml")  # PyYAML reads Gradescope's metadata (the hand-written reader is gone)
    return "pyyaml"


def test_gradescope_metadata_is_read(tmp_path, yaml_reader):
    meta = cb.read_gradescope_metadata(gradescope_export(tmp_path) / cb.GRADESCOPE_METADATA)
    assert sorted(meta) == ["submission_1001", "submission_1002", "submission_1003"]
    assert meta["submission_1001"]["submitters"] == [{"name": "O'Brien, Zoë", "sid": "2024001", "email": "zoe@uni.edu"}]
    assert [p["sid"] for p in meta["submission_1002"]["submitters"]] == ["2024002", "2024003"]
    assert meta["submission_1001"]["created_at"] == datetime(2026, 4, 26, 17, 34, 0, 861687, tzinfo=timezone.utc)
    assert meta["submission_1002"]["created_at"] == datetime(2026, 4, 27, 16, 0, tzinfo=timezone.utc)


def test_discover_reads_a_gradescope_export(tmp_path, yaml_reader):
    export = gradescope_export(tmp_path)
    entries = cb.discover([tmp_path])  # the export may sit anywhere below the folder named
    got = sorted((e.student_id, e.student_name, e.email, e.file_id, e.notebook, e.source) for e in entries)
    assert got == [
        ("2024001", "O'Brien, Zoë", "zoe@uni.edu", "1001", NB2, "gradescope"),
        ("2024001", "Zoë O'Brien", "zoe@uni.edu", "1003", NB2, "gradescope"),
        ("2024002", "Ana Núñez", "ana@uni.edu", "1002", NB2, "gradescope"),
        ("2024003", "Bo Li", "bo@uni.edu", "1002", NB2, "gradescope"),  # group work: one entry per submitter
    ]
    assert not any(".ipynb_checkpoints" in str(e.path) for e in entries)
    assert all(e.path.is_relative_to(export) and e.submitted_at is not None for e in entries)


# --------------------------------------------------------------------------------------------
# Folders, and the latest of several files
# --------------------------------------------------------------------------------------------


def test_folder_layout_matches_the_grader(tmp_path):
    folder = tmp_path / "class"
    touch(folder / "alice" / "02_iou_ap_map.ipynb")
    touch(folder / "Zoë O'Brien, jr" / "week 2" / "03_faster_rcnn.ipynb")
    touch(folder / "alice" / ".ipynb_checkpoints" / "02_iou_ap_map-checkpoint.ipynb")
    touch(folder / ".hidden" / "02_iou_ap_map.ipynb")
    touch(folder / "loose.ipynb")
    entries = cb.discover([folder])
    got = sorted((e.student, e.notebook, e.source) for e in entries)
    assert got == [("Zoë O'Brien, jr", NB3, "folder"), ("alice", NB2, "folder"), ("class", "", "folder")]
    # the same students and files as helpers.grade.find_submissions
    assert sorted((s.student, str(s.path)) for s in find_submissions([folder])) == sorted((e.student, str(e.path)) for e in entries)


def test_the_latest_file_wins_by_modification_time(tmp_path):
    folder = tmp_path / "class"
    old = touch(folder / "alice" / "02_iou_ap_map.ipynb", mtime=1_700_000_000)
    new = touch(folder / "alice" / "02_iou_ap_map (1).ipynb", mtime=1_700_000_500)
    other = touch(folder / "alice" / "03_faster_rcnn.ipynb", mtime=1_600_000_000)
    bob = touch(folder / "bob" / "02_iou_ap_map.ipynb", mtime=1_600_000_000)
    chosen, superseded = cb.choose_latest(cb.discover([folder]))
    assert sorted(e.path for e in chosen) == sorted([new, other, bob])
    assert [e.path for e in superseded] == [old]
    os.utime(old, (1_800_000_000, 1_800_000_000))  # now the plain name is newer: it wins
    chosen, superseded = cb.choose_latest(cb.discover([folder]))
    assert old in [e.path for e in chosen] and [e.path for e in superseded] == [new]


def test_the_lms_time_beats_the_modification_time(tmp_path, yaml_reader):
    export = gradescope_export(tmp_path)
    # the older submission's file is touched last: Gradescope's created_at must still decide
    os.utime(export / "submission_1001" / "02_iou_ap_map.ipynb", (2_000_000_000, 2_000_000_000))
    chosen, superseded = cb.choose_latest(cb.discover([export]))
    zoe = [e for e in chosen if e.student_id == "2024001"]
    assert [e.file_id for e in zoe] == ["1003"]
    assert [(e.student_id, e.file_id) for e in superseded] == [("2024001", "1001")]
    assert len(chosen) == 3


def test_canvas_file_ids_decide_when_the_zip_dates_everything_alike(tmp_path):
    folder = tmp_path / "dl"
    first = touch(folder / "obrienzoë_789_1001_02_iou_ap_map.ipynb", mtime=1_700_000_900)
    second = touch(folder / "obrienzoë_789_1002_02_iou_ap_map-1.ipynb", mtime=1_700_000_000)
    chosen, superseded = cb.choose_latest(cb.discover([folder]))
    assert [e.path for e in chosen] == [second] and [e.path for e in superseded] == [first]


def test_choose_latest_checks_its_input():
    with pytest.raises(TypeError, match="entries must hold Entry items"):
        cb.choose_latest(["a.ipynb"])


# --------------------------------------------------------------------------------------------
# Rosters
# --------------------------------------------------------------------------------------------


def write_csv(path: Path, lines: list[list[str]], bom: bool = False) -> Path:
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        csv.writer(f).writerows(lines)
    return path


def test_roster_headers_are_matched_loosely(tmp_path):
    path = write_csv(
        tmp_path / "roster.csv",
        [["Student Name", "SIS User ID", "Email Address", "Section"],
         ["O'Brien, Zoë", "2024001", "zoe@uni.edu", "A"],
         ["Ana Núñez", "2024002", "ana@uni.edu", "B"],
         ["", "", "", ""],
         ["Chen, Wei", "2024009", "wei@uni.edu", "A"]],
        bom=True,
    )  # fmt: skip
    roster = cb.read_roster(path)
    assert [(s.id, s.name, s.email, s.section) for s in roster] == [
        ("2024001", "O'Brien, Zoë", "zoe@uni.edu", "A"),
        ("2024002", "Ana Núñez", "ana@uni.edu", "B"),
        ("2024009", "Chen, Wei", "wei@uni.edu", "A"),
    ]


def test_a_canvas_gradebook_export_is_a_roster(tmp_path):
    path = write_csv(
        tmp_path / "export.csv",
        [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW2 (555)"],
         ["    Points Possible", "", "", "", "", "5"],
         ["Smith, John", "123", "S1", "jsmith", "Sec 1", "4"],
         ["O'Brien, Zoë", "789", "S2", "zobrien", "Sec 1", ""]],
    )  # fmt: skip
    roster = cb.read_roster(path)
    assert [(s.id, s.name, s.sis_user_id, s.sis_login_id, s.section) for s in roster] == [
        ("123", "Smith, John", "S1", "jsmith", "Sec 1"),
        ("789", "O'Brien, Zoë", "S2", "zobrien", "Sec 1"),
    ]


def test_bad_rosters_are_refused(tmp_path):
    with pytest.raises(ValueError, match="must have an id column"):
        cb.read_roster(write_csv(tmp_path / "a.csv", [["Name", "Email"], ["Ann", "a@x"]]))
    with pytest.raises(ValueError, match="each id once"):
        cb.read_roster(write_csv(tmp_path / "b.csv", [["id", "name"], ["1", "Ann"], ["1", "Bob"]]))
    with pytest.raises(FileNotFoundError):
        cb.read_roster(tmp_path / "none.csv")


def test_the_roster_adds_students_who_submitted_nothing(tmp_path):
    dl = tmp_path / "dl"
    touch(dl / "smithjohn_123_456_02_iou_ap_map.ipynb")
    touch(dl / "obrienzoë_LATE_999_1001_02_iou_ap_map.ipynb")  # Canvas id unknown to the roster: found by name key
    roster = [
        cb.Student("123", "Smith, John"),
        cb.Student("S2", "Zoë O'Brien"),
        cb.Student("S3", "Núñez, Ana", "ana@uni.edu"),
    ]
    entries = cb.discover([dl])
    assert [s.id for s in cb.missing_students(roster, entries)] == ["S3"]
    filled = cb.with_roster(entries, roster)
    assert sorted((e.student_id, e.student_name) for e in filled) == [("123", "Smith, John"), ("S2", "Zoë O'Brien")]
    with pytest.raises(TypeError, match="roster must hold Student items"):
        cb.missing_students([{"id": "1"}], entries)


# --------------------------------------------------------------------------------------------
# Gradebooks
# --------------------------------------------------------------------------------------------


def class_rows() -> list[dict]:
    return [
        row("alice", NB2, "box_iou", True), row("alice", NB2, "match_detections", True), row("alice", NB2, "all_point_ap", False),
        row("alice", NB3, "make_anchors", True), row("alice", NB3, "nms", True),
        row("bob", NB2, "box_iou", False, "timed out", "cell 4 ran past 600 s"), row("bob", NB2, "match_detections", True),
        row("bob", NB2, "all_point_ap", True),
        row("dan", NB3, "-", False, "invalid notebook", "JSONDecodeError: Expecting value"),
    ]  # fmt: skip


ROSTER = [cb.Student("alice", "Alice Ames", "alice@uni.edu"), cb.Student("carol", "Carol Cruz", "carol@uni.edu"), cb.Student("bob", "Bob Berg")]


def test_gradebook_totals(tmp_path):
    header, table = cb.gradebook(class_rows(), POINTS, ROSTER)
    assert header == [
        "student", "name", "email",
        f"{NB2}/box_iou", f"{NB2}/match_detections", f"{NB2}/all_point_ap", NB2,
        f"{NB3}/make_anchors", f"{NB3}/nms", NB3,
        "total", "maximum", "percentage", "status",
    ]  # fmt: skip
    by = {line[0]: dict(zip(header, line)) for line in table}
    assert [line[0] for line in table] == ["alice", "carol", "bob", "dan"]  # roster order, then the others
    assert (by["alice"][NB2], by["alice"][NB3], by["alice"]["total"], by["alice"]["maximum"]) == (3, 4, 7, 8)
    assert (by["alice"]["percentage"], by["alice"]["status"]) == (87.5, "graded")
    assert (by["bob"][f"{NB2}/box_iou"], by["bob"][NB2], by["bob"]["total"], by["bob"]["status"]) == (0, 3, 3, f"missing: {NB3}")
    assert (by["carol"]["total"], by["carol"]["percentage"], by["carol"]["status"], by["carol"]["name"]) == (0, 0.0, "not submitted", "Carol Cruz")
    assert (by["dan"]["total"], by["dan"]["status"], by["dan"]["name"]) == (0, f"missing: {NB2}; {NB3}: invalid notebook", "")
    assert all(by[s]["total"] == by[s][NB2] + by[s][NB3] for s in by)


def test_gradebook_checks_its_input():
    with pytest.raises(TypeError, match="points must be a dict"):
        cb.gradebook(class_rows(), [1, 2])
    with pytest.raises(ValueError, match="must be a number >= 0"):
        cb.gradebook(class_rows(), {(NB2, "box_iou"): -1})
    with pytest.raises(ValueError, match=r"rows\[0\] must have the keys"):
        cb.gradebook([{"student": "x"}], POINTS)


def test_plain_gradebook_records_the_meta(tmp_path):
    written = cb.write_gradebook(tmp_path / "gb.csv", class_rows(), POINTS, ROSTER, meta=META)
    assert written == [tmp_path / "gb.csv"]
    with open(written[0], newline="", encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    assert [line["student"] for line in lines] == ["alice", "carol", "bob", "dan"]
    assert {(line["course_version"], line["timeout_s"], line["graded_at"]) for line in lines} == {("git:abc123", "600", META["date"])}
    assert lines[1]["status"] == "not submitted" and lines[0]["total"] == "7"


def test_canvas_gradebook_follows_the_import_format(tmp_path):
    roster = [cb.Student("123", "Smith, John", sis_user_id="S1", sis_login_id="jsmith", section="Sec 1"), cb.Student("789", "O'Brien, Zoë")]
    rows = [row("123", NB2, "box_iou", True), row("123", NB2, "match_detections", True), row("123", NB3, "nms", True)]
    path = tmp_path / "canvas.csv"
    written = cb.write_gradebook(path, rows, POINTS, roster, fmt="canvas", meta=META, assignment_names={NB2: "Notebook 2 (5551)"})
    with open(path, newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    # what Canvas's GradebookImporter checks: Student, ID, [SIS User ID, SIS Login ID], Section, then assignments
    assert lines[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Notebook 2 (5551)", NB3]
    assert lines[1] == ["Points Possible", "", "", "", "", "4", "4"]
    assert lines[2] == ["Smith, John", "123", "S1", "jsmith", "Sec 1", "3", "3"]
    assert lines[3] == ["O'Brien, Zoë", "789", "", "", "", "", ""]  # submitted nothing: blank (Canvas keeps its grade)
    assert len(lines) == 4
    side = json.loads(written[1].read_text())
    assert written[1].name == "canvas.csv.meta.json" and side["course_version"] == "git:abc123" and side["timeout_s"] == 600
    # ids from Gradescope (university numbers) go in SIS User ID, and ID stays empty
    cb.write_gradebook(path, [row("S9", NB2, "box_iou", True)], POINTS, fmt="canvas", meta=META, id_column="SIS User ID")
    with open(path, newline="", encoding="utf-8") as f:
        assert list(csv.reader(f))[2] == ["S9", "", "S9", "", "", "1", ""]  # notebook 03 not handed in: blank
    with pytest.raises(ValueError, match="fmt must be 'plain' or 'canvas'"):
        cb.write_gradebook(path, rows, POINTS, fmt="excel")
    with pytest.raises(ValueError, match="id_column must be"):
        cb.write_gradebook(path, rows, POINTS, fmt="canvas", id_column="Login")


# --------------------------------------------------------------------------------------------
# Gradescope results.json and feedback pages
# --------------------------------------------------------------------------------------------


def test_gradescope_results_have_the_documented_fields():
    rows = [r for r in class_rows() if r["student"] == "bob"]
    results = json.loads(json.dumps(cb.gradescope_results(rows, POINTS, META)))  # JSON all the way through
    assert set(results) >= {"score", "tests", "output", "visibility"}
    assert [t["name"] for t in results["tests"]] == [f"{NB2}: box_iou", f"{NB2}: match_detections", f"{NB2}: all_point_ap"]
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "output"}
        assert isinstance(test["score"], (int, float)) and 0 <= test["score"] <= test["max_score"]
    assert [t["score"] for t in results["tests"]] == [0, 2, 1]
    assert results["score"] == sum(t["score"] for t in results["tests"]) == 3
    assert results["tests"][0]["output"] == "timed out: cell 4 ran past 600 s"
    assert "git:abc123" in results["output"] and "600" in results["output"]
    dan = cb.gradescope_results([r for r in class_rows() if r["student"] == "dan"], POINTS, META)
    assert [t["output"].split(":")[0] for t in dan["tests"]] == ["invalid notebook", "invalid notebook"] and dan["score"] == 0
    with pytest.raises(ValueError, match="one submission's rows"):
        cb.gradescope_results(class_rows(), POINTS, META)
    with pytest.raises(ValueError, match="visibility must be"):
        cb.gradescope_results(rows, POINTS, META, visibility="public")


def test_feedback_page(tmp_path):
    student = "O'Brien <Zoë>"
    rows = [
        row(student, NB2, "box_iou", True, path="/subs/zoe/02_iou_ap_map.ipynb"),
        row(student, NB2, "match_detections", False, "incorrect", "on hidden case 3: expected 2 matches, got <b>3</b>"),
        row(student, NB2, "all_point_ap", False, "not attempted", "the answer is still the stub"),
        row(student, NB3, "make_anchors", False, "kernel died", "the kernel died in cell 7"),
        row(student, NB3, "nms", True),
    ]
    page = cb.feedback_html(student, rows, POINTS, META)
    assert "<b>3</b>" not in page and "&lt;b&gt;3&lt;/b&gt;" in page  # the student's text is escaped
    assert "O&#x27;Brien &lt;Zoë&gt;" in page
    assert "Total: <b>4 / 8</b>" in page
    assert "git:abc123" in page and "600 s" in page and META["date"] in page
    assert page.count("✓ passed") == 2 and "✗ kernel died" in page and "<style>" in page and "src=" not in page
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / "classbook-feedback.html"
    target.write_text(page, encoding="utf-8")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium to render the page (the HTML is in test-artifacts/)")
    png = ARTIFACTS / "classbook-feedback.png"
    png.unlink(missing_ok=True)
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={png}", "--window-size=1000,800", target.as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert png.exists() and png.stat().st_size > 10_000


def test_course_meta(monkeypatch):
    monkeypatch.delenv(cb.VERSION_ENV, raising=False)
    meta = cb.course_meta(900, when=datetime(2026, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert meta["timeout_s"] == 900 and meta["date"] == "2026-05-01T12:00:00+00:00"
    if (ROOT / ".git").exists() and shutil.which("git"):
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        assert meta["course_version"].startswith(f"git:{head}")
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        cb.course_meta(0)
    monkeypatch.setenv(cb.VERSION_ENV, "git:feedbeef (image 2026-05)")
    assert cb.course_meta(None)["course_version"] == "git:feedbeef (image 2026-05)"


def test_course_points_come_from_the_registered_exercises():
    points = cb.course_points(["00_start_here"])
    assert points == {("00_start_here", "to_grayscale"): 1, ("00_start_here", "values_per_image"): 1}


# --------------------------------------------------------------------------------------------
# Shards and merging
# --------------------------------------------------------------------------------------------


def class_paths(root: Path, students: int = 40) -> list[Path]:
    return [root / f"student{i:03d}" / f"{nb}.ipynb" for i in range(students) for nb in (NB2, NB3)]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_shards_are_disjoint_complete_and_order_free(tmp_path, n):
    paths = class_paths(tmp_path)
    slices = [cb.shard(paths, k, n, root=tmp_path) for k in range(n)]
    assert sorted(p for s in slices for p in s) == sorted(paths)  # complete, and nothing twice
    assert sum(len(s) for s in slices) == len(paths)
    shuffled = paths[:]
    random.Random(n).shuffle(shuffled)
    assert [set(cb.shard(shuffled, k, n, root=tmp_path)) for k in range(n)] == [set(s) for s in slices]
    # the same class under another mount point shards the same way (paths are taken relative to root)
    moved = [Path("/elsewhere") / p.relative_to(tmp_path) for p in paths]
    assert [[p.relative_to("/elsewhere") for p in cb.shard(moved, k, n, root="/elsewhere")] for k in range(n)] == [
        [p.relative_to(tmp_path) for p in s] for s in slices
    ]
    if n > 1:
        assert all(s for s in slices)  # 80 notebooks: no shard is empty


def test_entries_shard_by_student_and_notebook(tmp_path):
    folder = tmp_path / "class"
    for i in range(30):
        touch(folder / f"s{i}" / "02_iou_ap_map.ipynb")
        touch(folder / f"s{i}" / "02_iou_ap_map (1).ipynb")
    entries = cb.discover([folder])
    slices = [cb.shard(entries, k, 4) for k in range(4)]
    assert sorted(id(e) for s in slices for e in s) == sorted(id(e) for e in entries)
    for s in slices:  # both files of one student's notebook land together, so choose_latest can run per shard
        assert {e.student for e in s}.isdisjoint({e.student for other in slices if other is not s for e in other})


def test_parse_shard():
    assert cb.parse_shard("0/4") == (0, 4) and cb.parse_shard(" 3 / 4 ") == (3, 4)
    for bad, message in [("4/4", r"k must be in 0\.\.3"), ("1/0", "n must be at least 1"), ("a/b", "must be 'K/N'"), ("2", "must be 'K/N'")]:
        with pytest.raises(ValueError, match=message):
            cb.parse_shard(bad)
    with pytest.raises(TypeError, match="shard must be a str"):
        cb.parse_shard(3)


def test_shard_from_env():
    slurm = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8", "SLURM_ARRAY_TASK_COUNT": "8"}
    assert cb.shard_from_env(slurm) == (0, 8)  # --array=1-8 starts at 1
    assert cb.shard_from_env({**slurm, "SLURM_ARRAY_TASK_ID": "8"}) == (7, 8)
    assert cb.shard_from_env({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "6"}) == (5, 6)  # --array=0-5
    stepped = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "7", "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert cb.shard_from_env(stepped) == (3, 4)  # --array=1-7:2
    with pytest.raises(ValueError, match="one range"):  # --array=1,4,9
        cb.shard_from_env({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "9", "SLURM_ARRAY_TASK_COUNT": "3"})
    with pytest.raises(ValueError, match="must equal SLURM_ARRAY_TASK_COUNT"):
        cb.shard_from_env(slurm, n=4)
    assert cb.shard_from_env({"JOB_COMPLETION_INDEX": "2", cb.SHARDS_ENV: "5"}) == (2, 5)
    assert cb.shard_from_env({"JOB_COMPLETION_INDEX": "2"}, n=3) == (2, 3)
    with pytest.raises(ValueError, match="spec.completions"):
        cb.shard_from_env({"JOB_COMPLETION_INDEX": "2"})
    with pytest.raises(ValueError, match=r"k must be in 0\.\.1"):
        cb.shard_from_env({"JOB_COMPLETION_INDEX": "2", cb.SHARDS_ENV: "2"})
    assert cb.shard_from_env({cb.SHARD_ENV: "1/3"}) == (1, 3)
    assert cb.shard_from_env({"PATH": "/usr/bin"}) is None
    with pytest.raises(TypeError, match="environ must be a mapping"):
        cb.shard_from_env(["SLURM_ARRAY_TASK_ID=1"])


def results_line(path: Path, rows: list[dict], sha: str = "") -> str:
    sha = sha or f"sha-{path.name}-{path.parent.name}"
    return json.dumps({"path": str(path), "sha256": sha, "seed": 7, "rows": rows})


def graded_rows(path: Path, student: str) -> list[dict]:
    notebook = path.stem
    names = [ex for (nb, ex) in POINTS if nb == notebook]
    return [asdict(Result(student, notebook, ex, (len(student) + i) % 2 == 0, "passed", "", str(path))) for i, ex in enumerate(names)]


@pytest.mark.parametrize("n", [2, 3, 7])
def test_merging_shards_equals_one_run(tmp_path, n):
    paths = class_paths(tmp_path / "subs", students=25)
    single = tmp_path / "single.jsonl"
    single.write_text("".join(results_line(p, graded_rows(p, p.parent.name)) + "\n" for p in paths))
    one_run = [r for p in sorted(paths, key=str) for r in graded_rows(p, p.parent.name)]

    files = []
    for k in range(n):
        mine = cb.shard(paths, k, n, root=tmp_path / "subs")
        lines = [results_line(p, graded_rows(p, p.parent.name)) for p in mine]
        if k == 0 and mine:  # a shard killed mid-line, then resumed: the broken line is skipped
            lines.insert(0, lines[0][: len(lines[0]) // 2])
            lines.insert(1, json.dumps({"path": "x", "sha256": "y", "rows": "not rows"}))
        files.append(tmp_path / f"results-{k}.jsonl")
        files[-1].write_text("\n".join(lines) + "\n")
    merged = cb.merge(files)
    assert list(merged) == one_run == list(cb.merge([single]))
    assert merged.skipped == 2 and merged.notebooks == len(paths)


def test_a_later_line_for_the_same_notebook_wins(tmp_path):
    path = tmp_path / "alice" / "02_iou_ap_map.ipynb"
    first = [asdict(Result("alice", NB2, "box_iou", False, "timed out", "", str(path)))]
    again = [asdict(Result("alice", NB2, "box_iou", True, "passed", "", str(path)))]
    (tmp_path / "a.jsonl").write_text(results_line(path, first, "abc") + "\n")
    (tmp_path / "b.jsonl").write_text(results_line(path, again, "abc") + "\n\n{not json\n")
    merged = cb.merge([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert list(merged) == again and merged.skipped == 1
    with pytest.raises(FileNotFoundError, match="results_files must exist"):
        cb.merge([tmp_path / "c.jsonl"])


# --------------------------------------------------------------------------------------------
# What the run prints (issue 20): rows in the notebook's order, --resume's count, one total time
# --------------------------------------------------------------------------------------------


def test_rows_come_in_the_notebook_s_order():
    import nbformat

    from helpers.grading.conventions import check_cell_source
    from helpers.grading.feedback import in_notebook_order

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(check_cell_source(name)) for name in ("nms", "make_anchors")])
    rows = [Result("a", NB3, "make_anchors", True, "passed"), Result("a", NB3, "nms", False, "incorrect"), Result("a", NB3, "extra", False, "error")]
    assert [r.exercise for r in in_notebook_order(rows, nb)] == ["nms", "make_anchors", "extra"]
    results = cb.gradescope_results([asdict(r) for r in in_notebook_order(rows, nb)[:2]], POINTS, META)
    assert [t["name"] for t in results["tests"]] == [f"{NB3}: nms", f"{NB3}: make_anchors"]


def test_resume_counts_what_was_graded_before(tmp_path):
    import io

    from helpers.grading.grader import grade_class

    touch(tmp_path / "class" / "alice" / f"{NB2}.ipynb")  # no code cells: "empty notebook", no kernel runs
    touch(tmp_path / "class" / "bob" / f"{NB2}.ipynb")
    results = tmp_path / "results.jsonl"
    first, second = io.StringIO(), io.StringIO()
    grade_class([tmp_path / "class"], results_file=results, out=first)
    outcome = grade_class([tmp_path / "class"], results_file=results, resume=True, out=second)
    assert first.getvalue().startswith("Grading 2 notebook(s), with")
    assert second.getvalue().startswith("Grading 2 notebook(s): 2 already graded, 0 to run, with")
    assert f"in {outcome.elapsed:.0f} s" in second.getvalue().splitlines()[-1]
    assert sorted(r.student for r in outcome.results) == ["alice", "bob"]


def test_hidden_case_details_can_wait_for_publication():
    rows = [row("z", NB2, "box_iou", False, "incorrect", "on a hidden case (two boxes, with other numbers): expected 0.5, got 0.4"),
            row("z", NB2, "match_detections", True), row("z", NB2, "all_point_ap", False, "incorrect", "on the case 'one box': expected 1")]  # fmt: skip
    results = cb.gradescope_results(rows, POINTS, META, visibility="visible", hidden_visibility="after_published")
    by_name = {t["name"]: t for t in results["tests"]}
    assert by_name[f"{NB2}: box_iou"]["output"].startswith("incorrect on a hidden case") and "0.4" not in by_name[f"{NB2}: box_iou"]["output"]
    hidden = by_name[f"{NB2}: box_iou (hidden case)"]
    assert (hidden["visibility"], hidden["max_score"], hidden["score"]) == ("after_published", 0, 0) and "got 0.4" in hidden["output"]
    assert by_name[f"{NB2}: all_point_ap"]["output"] == "incorrect: on the case 'one box': expected 1"  # a visible case: shown
    assert results["score"] == 2


def test_submission_times_and_late_flags_reach_the_long_csv_and_the_gradebook(tmp_path, yaml_reader):
    from helpers.grading.gradebook import write_csv

    chosen, _ = cb.choose_latest(cb.discover([gradescope_export(tmp_path)]))
    entries = {(e.student, e.notebook): e for e in chosen}
    results = [Result(e.student, NB2, "box_iou", True, "passed", "", str(e.path)) for e in chosen]
    write_csv(results, tmp_path / "long.csv", entries)
    with open(tmp_path / "long.csv", newline="") as f:
        long = {line["student"]: line for line in csv.DictReader(f)}
    assert long["2024001"]["submitted_at"] == "2026-04-28T08:00:00.500000+00:00" and long["2024001"]["late"] == "0"
    assert long["2024003"]["submitted_at"] == "2026-04-27T09:00:00-07:00"
    cb.write_gradebook(tmp_path / "gb.csv", [asdict(r) for r in results], POINTS, meta=META, entries=entries)
    with open(tmp_path / "gb.csv", newline="") as f:
        book = {line["student"]: line for line in csv.DictReader(f)}
    assert book["2024001"][f"{NB2}/submitted_at"] == "2026-04-28T08:00:00.500000+00:00" and book["2024001"][f"{NB3}/late"] == ""


def test_merged_shards_keep_what_the_lms_said(tmp_path, yaml_reader):
    from helpers.grading.submissions import entry_record

    chosen, _ = cb.choose_latest(cb.discover([gradescope_export(tmp_path)]))
    lines = []
    for e in chosen:
        line = json.loads(results_line(e.path, [asdict(Result(e.student, NB2, "box_iou", True, "passed", "", str(e.path)))]))
        lines.append(json.dumps({**line, "entry": entry_record(e)}))
    (tmp_path / "r.jsonl").write_text("\n".join(lines) + "\n")
    merged = cb.merge([tmp_path / "r.jsonl"])
    assert {key: (e.submitted_at, e.original_name, e.source) for key, e in merged.entries.items()} == {
        (e.student, NB2): (e.submitted_at, e.original_name, "gradescope") for e in {e.path: e for e in chosen}.values()
    }  # one line per file graded (a group's file is graded once)
