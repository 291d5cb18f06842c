"""Canvas round trips: a download unzipped one folder down, a group assignment and a roster, graded into a
Canvas import CSV that Canvas's own importer would match, column by column and student by student.

`canvas_import` below re-states, in a few lines, the rules of canvas-lms `lib/gradebook_importer.rb`
(header check, `Assignment.title_and_id`, the student lookup by ID, SIS ids, then name) and the test
files are named the way `lib/content_zipper.rb` names them (a group's file under its representative,
with the group's name key). No kernel runs here: the notebooks are empty (the grader gives them the
row "empty notebook"), or the rows are written by hand.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import zipfile
from dataclasses import asdict
from pathlib import Path

import pytest

from helpers.grading import canvas, gradebook
from helpers.grading.records import Result
from helpers.grading.roster import read_roster
from helpers.grading.submissions import choose_latest, discover, find_class, name_key

ROOT = Path(__file__).resolve().parents[1]
NB2, NB3 = "02_iou_ap_map", "03_faster_rcnn"
POINTS = {(NB2, "box_iou"): 1, (NB2, "match_detections"): 2, (NB2, "all_point_ap"): 1, (NB3, "make_anchors"): 1, (NB3, "nms"): 3}

# The course in Canvas: its students (user id, name, sortable name, SIS user id, login) and assignments
STUDENTS = [
    (101, "John Smith", "Smith, John", "S101", "jsmith"),
    (102, "Zoë O'Brien", "O'Brien, Zoë", "S102", "zobrien"),
    (103, "Ana Núñez", "Núñez, Ana", "S103", "anunez"),
    (104, "Wei Chen", "Chen, Wei", "S104", "wchen"),
    (105, "Ola Berg", "Berg, Ola", "S105", "oberg"),
]
ASSIGNMENTS = {4521: "Notebook 02: IoU, AP and mAP", 4522: "Notebook 03: Faster R-CNN"}
GROUPS = {"Team Kestrel": [101, 102], "Team Osprey": [103, 104]}


def canvas_import(path: Path) -> dict:
    """What Canvas's GradebookImporter makes of a CSV: {"assignments": {column: assignment id or "NEW"},
    "students": {row: user id or "NEW"}, "grades": {(user id, assignment id): cell}}."""
    with path.open(newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    header = lines[0]
    assert "Student" in header[0] and "ID" in header[1], "Canvas: Invalid header row"
    if re.search(r"SIS\s+Login\s+ID", header[2]):
        sis_user, sis_login, first = None, 2, 3
    elif re.search(r"SIS\s+User\s+ID", header[2]) and re.search(r"SIS\s+Login\s+ID", header[3]):
        sis_user, sis_login, first = 2, 3, 4
    else:
        sis_user, sis_login, first = None, None, 2
    assert "Section" in header[first], "Canvas: Invalid header row (the last student column must be Section)"
    assignments = {}
    for column in range(first + 1, len(header)):
        title = header[column]
        match = re.fullmatch(r"(.*)\s\((\d+)\)", title, re.DOTALL)
        found = int(match.group(2)) if match and int(match.group(2)) in ASSIGNMENTS else None
        found = found or next((aid for aid, t in ASSIGNMENTS.items() if t == title), None)
        assignments[column] = found or "NEW"
    students, grades = {}, {}
    for number, line in enumerate(lines[1:], start=1):
        if "Points Possible" in line[0]:
            continue
        raw_id = re.match(r"\s*[+-]?\d*", line[1]).group().strip()  # Ruby's to_i: the leading digits, else 0
        user = int(raw_id) if raw_id not in ("", "+", "-") and int(raw_id) in {s[0] for s in STUDENTS} else None
        user = user or next((s[0] for s in STUDENTS if sis_user is not None and line[sis_user] and s[3] == line[sis_user]), None)
        user = user or next((s[0] for s in STUDENTS if sis_login is not None and line[sis_login] and s[4] == line[sis_login]), None)
        user = user or next((s[0] for s in STUDENTS if line[0] in (s[1], s[2])), None)
        students[number] = user or "NEW"
        for column, aid in assignments.items():
            grades[(user, aid)] = line[column].strip()
    return {"assignments": assignments, "students": students, "grades": grades}


def notebook_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    return path


def canvas_download(top: Path) -> Path:
    """The unzipped download of assignment 4521 (a group assignment), one folder below `top`: one file per
    group, named after its representative with the group's name key; Ola (no group) handed in late."""
    folder = top / "course-notebook_02_submissions"
    notebook_file(folder / f"{name_key('Team Kestrel')}_101_9001_{NB2}.ipynb")
    notebook_file(folder / f"{name_key('Berg, Ola')}_LATE_105_9003_{NB2}.ipynb")
    return folder


def write(path: Path, lines: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(lines)
    return path


def canvas_roster(path: Path) -> Path:
    """Canvas's gradebook export: Student, ID, SIS User ID, SIS Login ID, Section, the assignments."""
    header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"] + [f"{t} ({aid})" for aid, t in ASSIGNMENTS.items()] + ["Current Score"]
    lines = [header, ["    Points Possible", "", "", "", "", "10", "20", ""]]
    lines += [[s[2], str(s[0]), s[3], s[4], "Sec 1", "", "", ""] for s in STUDENTS]
    return write(path, lines)


def canvas_groups(path: Path) -> Path:
    lines = [["name", "canvas_user_id", "user_id", "login_id", "sections", "group_name", "canvas_group_id", "group_id"]]
    for gid, (group, members) in enumerate(GROUPS.items(), start=70):
        for uid in members:
            s = next(s for s in STUDENTS if s[0] == uid)
            lines.append([s[1], str(uid), s[3], s[4], "Sec 1", group, str(gid), ""])
    lines.append(["Ola Berg", "105", "S105", "oberg", "Sec 1", "", "", ""])  # in no group
    return write(path, lines)


# --------------------------------------------------------------------------------------------
# Finding the files
# --------------------------------------------------------------------------------------------


def test_canvas_names_are_found_one_folder_down(tmp_path):
    canvas_download(tmp_path / "class")
    entries = discover([tmp_path / "class"])
    assert sorted((e.source, e.student_id, e.late) for e in entries) == [("canvas", "101", False), ("canvas", "105", True)]


def test_a_folder_per_student_still_owns_a_canvas_looking_name(tmp_path):
    notebook_file(tmp_path / "class" / "alice" / "x_1_2_02_iou_ap_map.ipynb")
    notebook_file(tmp_path / "class" / "alice" / "notes.ipynb")
    assert {e.student for e in discover([tmp_path / "class"])} == {"alice"}


def test_several_differently_named_files_for_one_notebook_stop_the_run(tmp_path):
    notebook_file(tmp_path / "class" / "alice" / "02_iou_ap_map.ipynb")
    notebook_file(tmp_path / "class" / "alice" / "02_iou_ap_map_final.ipynb")
    with pytest.raises(ValueError, match=r"student 'alice' has 2 differently named files for notebook '02_iou_ap_map'.*will not guess"):
        choose_latest(discover([tmp_path / "class"]))
    # copies of one name are one file handed in twice: the latest counts, no error
    (tmp_path / "class" / "alice" / "02_iou_ap_map_final.ipynb").rename(tmp_path / "class" / "alice" / "02_iou_ap_map (1).ipynb")
    chosen, superseded = choose_latest(discover([tmp_path / "class"]))
    assert len(chosen) == 1 and len(superseded) == 1


def test_a_group_file_credits_every_member(tmp_path):
    canvas_download(tmp_path / "class")
    groups = canvas.read_groups(canvas_groups(tmp_path / "groups.csv"))
    assert [(m.canvas_id, m.group) for m in groups] == [("101", "Team Kestrel"), ("102", "Team Kestrel"), ("103", "Team Osprey"), ("104", "Team Osprey")]
    subs, _ = find_class([tmp_path / "class"], groups=groups)
    assert sorted(s.student for s in subs) == ["101", "102", "105"]
    assert len({s.path for s in subs if s.student in ("101", "102")}) == 1  # one file, graded once
    with pytest.raises(ValueError, match="canvas_user_id and group_name"):
        canvas.read_groups(write(tmp_path / "bad.csv", [["name", "group"], ["A", "B"]]))


def test_a_blank_roster_id_falls_back_to_the_email_then_the_name(tmp_path):
    path = write(tmp_path / "gs.csv", [["Name", "SID", "Email"], ["Ann Lee", "", "ann@uni.edu"], ["Bo Ek", "", ""], ["Cy Fu", "7", "cy@uni.edu"], ["Bo Ek", "", ""]])
    assert [s.id for s in read_roster(path)] == ["ann@uni.edu", "Bo Ek", "7", "Bo Ek (line 5)"]


def test_a_canvas_export_roster_keeps_canvas_user_ids(tmp_path):
    roster = read_roster(canvas_roster(tmp_path / "export.csv"))
    assert [(s.id, s.canvas_id, s.sis_user_id) for s in roster][:2] == [("101", "101", "S101"), ("102", "102", "S102")]
    plain = read_roster(write(tmp_path / "plain.csv", [["ID", "Name"], ["123", "A B"]]))
    assert plain[0].canvas_id == ""  # an "ID" that is not known to be Canvas's


def test_assignment_titles_and_points_come_from_the_export(tmp_path):
    titles, points = canvas.assignments_from_export(canvas_roster(tmp_path / "export.csv"), [NB2, NB3])
    assert titles == {NB2: "Notebook 02: IoU, AP and mAP (4521)", NB3: "Notebook 03: Faster R-CNN (4522)"}
    assert points == {NB2: 10.0, NB3: 20.0}
    assert canvas.parse_assignments([f'{NB2}=IoU (4521)']) == {NB2: "IoU (4521)"}
    with pytest.raises(ValueError, match='--assignment must be NOTEBOOK="Title'):
        canvas.parse_assignments(["IoU (4521)"])
    with pytest.raises(ValueError, match="--points must be NOTEBOOK=POINTS"):
        canvas.parse_points([f"{NB2}=0"])


def test_reupload_names_are_what_canvas_reads_back(tmp_path):
    (entry,) = [e for e in discover([canvas_download(tmp_path / "class")]) if e.late]
    name = canvas.reupload_name(entry, "02_iou_ap_map_feedback.html")
    assert name == "bergola_LATE_105_9003_02_iou_ap_map_feedback.html"
    # Canvas takes the first two numbers between underscores as the user id and the attachment id
    assert [p for p in name.split("_") if p.isdigit()][:2] == ["105", "9003"]


# --------------------------------------------------------------------------------------------
# Writing the Canvas CSV
# --------------------------------------------------------------------------------------------


def hand_rows() -> list[dict]:
    rows = [Result("101", NB2, "box_iou", True, "passed"), Result("101", NB2, "match_detections", True, "passed"),
            Result("101", NB2, "all_point_ap", False, "incorrect"), Result("105", NB2, "box_iou", True, "passed")]  # fmt: skip
    return [asdict(r) for r in rows]


def test_the_canvas_csv_matches_canvas_s_importer(tmp_path):
    roster = read_roster(canvas_roster(tmp_path / "export.csv"))
    titles, lms = canvas.assignments_from_export(tmp_path / "export.csv", [NB2, NB3])
    path = tmp_path / "canvas.csv"
    gradebook.write_gradebook(path, hand_rows(), POINTS, roster, fmt="canvas", id_column=None, assignment_names=titles,
                              canvas_ids={s.id: s.canvas_id for s in roster}, lms_points=lms)  # fmt: skip
    imported = canvas_import(path)
    assert set(imported["assignments"].values()) == {4521, 4522}  # no new assignment
    assert sorted(imported["students"].values()) == [101, 102, 103, 104, 105]  # every row is a known student
    grades = imported["grades"]
    assert grades[(101, 4521)] == "7.5"  # 3 of 4 points, rescaled to the assignment's 10
    assert grades[(105, 4521)] == "2.5"
    assert grades[(102, 4521)] == grades[(101, 4522)] == ""  # nothing handed in: blank, Canvas keeps its grade
    with path.open() as f:
        assert list(csv.reader(f))[1][5:] == ["10", "20"]  # Points Possible: the assignments' own


def test_ids_go_in_id_only_when_they_are_canvas_user_ids(tmp_path):
    rows = [asdict(Result("S103", NB2, "box_iou", True, "passed")), asdict(Result("wchen@uni.edu", NB2, "box_iou", True, "passed"))]
    path = tmp_path / "canvas.csv"
    gradebook.write_gradebook(path, rows, POINTS, fmt="canvas", id_column=None)
    with path.open() as f:
        lines = list(csv.reader(f))
    assert [line[1] for line in lines[2:]] == ["", ""]  # an SID or an e-mail in ID would match no one, or the wrong student
    gradebook.write_gradebook(path, rows[:1], POINTS, fmt="canvas", id_column="SIS User ID")
    assert canvas_import(path)["students"] == {2: 103}  # matched by SIS User ID
    gradebook.write_gradebook(path, rows[:1], POINTS, fmt="canvas", id_column=None, missing_as_zero=True)
    with path.open() as f:
        assert list(csv.reader(f))[2][5:] == ["1", "0"]  # --missing-as-zero: 0 for notebook 03


# --------------------------------------------------------------------------------------------
# The whole round trip, through the command line
# --------------------------------------------------------------------------------------------


def test_round_trip_through_the_command_line(tmp_path):
    canvas_download(tmp_path / "class")
    export, groups = canvas_roster(tmp_path / "export.csv"), canvas_groups(tmp_path / "groups.csv")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "helpers.grade", str(tmp_path / "class"), "--roster", str(export), "--groups", str(groups),
               "--gradebook", str(out / "canvas.csv"), "--format", "canvas", "--assignments-from", str(export), "--rescale",
               "--csv", str(out / "long.csv"), "--feedback", str(out / "feedback")]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = canvas_import(out / "canvas.csv")
    assert set(imported["assignments"].values()) == {4521}  # the notebook graded, in its own column
    assert sorted(imported["students"].values()) == [101, 102, 103, 104, 105]
    grades = imported["grades"]
    # the group's file (empty here: 0 points) counts for both members; nothing came from Team Osprey
    assert (grades[(101, 4521)], grades[(102, 4521)], grades[(105, 4521)]) == ("0", "0", "0")
    assert (grades[(103, 4521)], grades[(104, 4521)]) == ("", "")
    with (out / "long.csv").open() as f:
        long = list(csv.DictReader(f))
    assert {(r["student"], r["status"], r["late"], r["file"]) for r in long if r["status"] != "not submitted"} == {
        ("101", "empty notebook", "0", f"{NB2}.ipynb"), ("102", "empty notebook", "0", f"{NB2}.ipynb"),
        ("105", "empty notebook", "1", f"{NB2}.ipynb"),
    }  # fmt: skip
    with zipfile.ZipFile(out / "feedback" / "canvas-reupload.zip") as bundle:
        assert sorted(bundle.namelist()) == sorted([
            f"bergola_LATE_105_9003_{NB2}_feedback.html", f"zoëobrien_102_9001_{NB2}_feedback.html", f"teamkestrel_101_9001_{NB2}_feedback.html",
        ])  # fmt: skip


def test_loose_notebooks_can_be_given_a_student(tmp_path):
    notebook_file(tmp_path / "solutions" / f"{NB2}.ipynb")
    notebook_file(tmp_path / "solutions" / "alice" / f"{NB2}.ipynb")
    assert {e.student for e in discover([tmp_path / "solutions"])} == {"solutions", "alice"}
    assert {e.student for e in discover([tmp_path / "solutions"], student="solutions (reference)")} == {"solutions (reference)", "alice"}


def test_a_gradescope_student_without_an_sid_is_found_once_in_a_canvas_roster(tmp_path):
    from helpers.grading.roster import find_student, missing_students
    from helpers.grading.submissions import Entry

    roster = read_roster(canvas_roster(tmp_path / "export.csv"))  # Canvas's export has no e-mail column
    entry = Entry("ana@uni.edu", "Ana Núñez", "ana@uni.edu", tmp_path / "x.ipynb", NB2, None, "gradescope", f"{NB2}.ipynb")
    assert find_student(roster, entry).id == "103"  # by the name, written the other way round
    assert "103" not in [s.id for s in missing_students(roster, [entry])]


def test_rows_keyed_by_e_mail_land_on_the_roster_s_line(tmp_path):
    from helpers.grading.roster import roster_keys
    from helpers.grading.submissions import Entry

    roster = read_roster(canvas_roster(tmp_path / "export.csv"))
    entry = Entry("ana@uni.edu", "Ana Núñez", "ana@uni.edu", tmp_path / "x.ipynb", NB2, None, "gradescope", f"{NB2}.ipynb")
    keys = roster_keys(roster, [entry])
    assert keys == {"ana@uni.edu": "103"}
    rows = [{**r, "student": keys.get(r["student"], r["student"])} for r in [asdict(Result("ana@uni.edu", NB2, "box_iou", True, "passed"))]]
    header, table = gradebook.gradebook(rows, POINTS, roster)
    assert [line[0] for line in table] == ["101", "102", "103", "104", "105"]  # one line for Ana, no second one
    assert dict(zip(header, table[2]))[NB2] == 1
