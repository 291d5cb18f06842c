"""The command line: `python -m helpers.grade [grade] PATH...` and `python -m helpers.grade merge RESULTS...`.

Exit status: 0 whenever grading ran, whatever the scores; 2 when there was nothing to grade or the
arguments were wrong; 130 when stopped (nothing is left running).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from helpers.grading import canvas, course, feedback, gradebook, gradescope, roster, shards
from helpers.grading.conventions import SKIP_TAG
from helpers.grading.grader import DEFAULT_NOTEBOOK_TIMEOUT, DEFAULT_TIMEOUT, Outcome, grade_class
from helpers.grading.records import NOT_SUBMITTED, Result, safe_name


def parse_modules(pairs: list[str]) -> dict[str, str]:
    """["NOTEBOOK=MODULE", ...] -> {notebook: module}. Raises ValueError on a malformed pair."""
    modules = {}
    for pair in pairs:
        notebook, sep, module = pair.partition("=")
        if not sep or not notebook or not module:
            raise ValueError(f"--exercises must be NOTEBOOK=MODULE, got {pair!r}")
        modules[notebook] = module
    return modules


def write_outputs(outcome: Outcome, args) -> None:
    """The CSV, gradebook and feedback files the command line asked for."""
    students = roster.read_roster(args.roster) if args.roster else None
    named = {r.notebook for r in outcome.results}
    points = course.course_points([nb for nb in course.known_notebooks() if nb in named])
    rows = [asdict(r) for r in outcome.results]
    for wanted in (args.csv, args.gradebook):
        if wanted:
            Path(wanted).parent.mkdir(parents=True, exist_ok=True)
    if args.csv:
        gradebook.write_csv(outcome.results, args.csv, outcome.entries)
        print(f"wrote {args.csv}")
    if args.gradebook:  # (the gradebook adds the roster's missing students itself)
        keys = roster.roster_keys(students, outcome.entries.values())
        handed_in = [{**r, "student": keys.get(r["student"], r["student"])} for r in rows if r["status"] != NOT_SUBMITTED]
        for path in gradebook.write_gradebook(args.gradebook, handed_in, points, roster=students, fmt=args.format, meta=outcome.meta,
                                              **lms_options(args, outcome, students, named)):  # fmt: skip
            print(f"wrote {path}")
    if args.feedback:
        import nbformat

        folder = Path(args.feedback)
        who = list(dict.fromkeys(r.student for r in outcome.results if r.status != NOT_SUBMITTED))
        for student in who:
            mine = [r for r in rows if r["student"] == student]
            into = folder / safe_name(student)
            into.mkdir(parents=True, exist_ok=True)
            (into / "feedback.html").write_text(feedback.feedback_html(student, mine, points, outcome.meta), encoding="utf-8")
            (into / "results.json").write_text(json.dumps(feedback.gradescope_results(mine, points, outcome.meta), indent=1))
            for path in {r["path"] for r in mine if r["path"] in outcome.executed}:
                nbformat.write(outcome.executed[path], into / f"{safe_name(next(r['notebook'] for r in mine if r['path'] == path))}.ipynb")
        print(f"wrote feedback for {len(who)} student(s) in {folder}")
        reupload = write_canvas_feedback(folder, outcome)
        if reupload:
            print(f"wrote {reupload} (Canvas: Submissions > Re-Upload Submissions)")


def lms_options(args, outcome, students, named: set[str]) -> dict:
    """write_gradebook's Canvas options from the command line: column titles, ids, blanks, points."""
    names = canvas.parse_assignments(args.assignment)
    lms_points = canvas.parse_points(args.points)
    if args.assignments_from:
        titles, possible = canvas.assignments_from_export(args.assignments_from, sorted(named))
        names = {**titles, **names}
        lms_points = {**(possible if args.rescale else {}), **lms_points}
    keys = roster.roster_keys(students, outcome.entries.values())
    remap = lambda key: keys.get(key) or getattr(roster.find_student(students, key), "id", key) if students else key  # noqa: E731
    entries = {(remap(student), nb): entry for (student, nb), entry in outcome.entries.items()}
    canvas_ids = {remap(key): uid for key, uid in canvas.canvas_user_ids(outcome.entries.values(), students).items()}
    return {"id_column": None if args.id_column == "auto" else args.id_column, "assignment_names": names, "canvas_ids": canvas_ids,
            "missing_as_zero": args.missing_as_zero, "lms_points": lms_points, "entries": entries}  # fmt: skip


def write_canvas_feedback(folder: Path, outcome) -> Path | None:
    """Each Canvas submission's feedback page under the name Canvas's "Re-Upload Submissions" maps back
    to its student (`canvas.reupload_name`), zipped as <folder>/canvas-reupload.zip; None without Canvas files."""
    import zipfile

    pages = {}
    for (student, notebook), entry in outcome.entries.items():
        if getattr(entry, "source", "") == "canvas" and not entry.student_id.startswith("anon_"):
            page = folder / safe_name(student) / "feedback.html"
            if page.is_file():
                pages[canvas.reupload_name(entry, f"{Path(entry.original_name).stem}_feedback.html")] = page
    if not pages:
        return None
    target = folder / "canvas-reupload.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, page in sorted(pages.items()):
            bundle.write(page, name)
    return target


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", help="write one row per student, notebook and exercise to this CSV file")
    parser.add_argument("--gradebook", help="write one row per student (points per exercise and notebook, total, maximum, %%)")
    parser.add_argument("--format", choices=["plain", "canvas"], default="plain", help="--gradebook's format (canvas: its import CSV)")
    parser.add_argument("--roster", help="CSV of id, name, email: students with no notebook get 0 and 'not submitted'")
    parser.add_argument("--feedback", help="folder for each student's feedback: feedback.html, results.json (Gradescope) and the executed notebooks"
                        "; Canvas submissions also get canvas-reupload.zip, named for Canvas's Re-Upload Submissions")  # fmt: skip
    parser.add_argument("--assignment", action="append", default=[], metavar='NOTEBOOK="Title (id)"',
                        help="the Canvas column of NOTEBOOK: its assignment's title and id as Canvas writes them (--format canvas)")  # fmt: skip
    parser.add_argument("--assignments-from", metavar="CANVAS_EXPORT.csv",
                        help="read each notebook's Canvas column title (and, with --rescale, its points) from a Canvas gradebook export")  # fmt: skip
    parser.add_argument("--points", action="append", default=[], metavar="NOTEBOOK=POINTS",
                        help="rescale NOTEBOOK's points to a Canvas assignment worth POINTS (--format canvas)")  # fmt: skip
    parser.add_argument("--rescale", action="store_true", help="rescale each notebook to its assignment's Points Possible in --assignments-from")
    parser.add_argument("--id-column", choices=["auto", "ID", "SIS User ID", "SIS Login ID"], default="auto",
                        help="the Canvas column that gets each student's key (default auto: ID gets only keys known to be Canvas user ids)")  # fmt: skip
    parser.add_argument("--missing-as-zero", action="store_true", help="write 0, not a blank, for a notebook not handed in (--format canvas)")


def add_grade_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="notebooks, or folders searched for notebooks (Canvas, Gradescope, a folder per student)")
    add_output_options(parser)
    parser.add_argument("--results", help="append one JSON line per graded notebook to this file, as each finishes")
    parser.add_argument("--resume", action="store_true", help="skip notebooks already in --results (same file content)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help=f"seconds per cell, wall clock (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--notebook-timeout", type=float, default=DEFAULT_NOTEBOOK_TIMEOUT,
                        help=f"seconds per notebook, wall clock (default {DEFAULT_NOTEBOOK_TIMEOUT})")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, help="notebooks graded at once (default: one per core)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the hidden cases, to reproduce a run (default: a fresh secret one)")
    parser.add_argument("--accept", action="append", default=[], metavar="[STUDENT:]KEY",
                        help="accept a 'needs review' finding after reading it (its key is in the row's detail)")  # fmt: skip
    parser.add_argument("--run-all", action="store_true", help=f"also run the cells tagged {SKIP_TAG} (trainings no check needs)")
    parser.add_argument("--shard", help="grade only slice K of N of the submissions, as K/N (K from 0)")
    parser.add_argument("--shard-from-env", action="store_true",
                        help="take the slice from SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX (+ SEEING_NETWORKS_SHARDS)")  # fmt: skip
    parser.add_argument("--groups", metavar="CANVAS_GROUPS.csv", help="Canvas's group export: every member of a group gets the group's file")
    parser.add_argument("--student", help="the student of notebooks given on their own or lying directly in a folder given (default: the folder's name)")
    parser.add_argument("--exercises", action="append", default=[], metavar="NOTEBOOK=MODULE",
                        help="grade NOTEBOOK with the exercises of MODULE (for notebooks outside helpers.exercises)")  # fmt: skip


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m helpers.grade", description="Grade submitted notebooks, each in its own sandbox: one row per student, notebook and exercise.")
    commands = top.add_subparsers(dest="command", required=True)
    add_grade_options(commands.add_parser("grade", help="grade notebooks (the default: `python -m helpers.grade PATH...`)"))
    merge = commands.add_parser("merge", help="combine the --results files of several shards")
    merge.add_argument("results", nargs="+", help="--results files written by the shards")
    add_output_options(merge)
    gradescope.add_parser(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--gradescope" in argv:
        argv = ["gradescope", *(a for a in argv if a not in ("--gradescope", "gradescope"))]
    if argv[:1] not in (["grade"], ["merge"], ["gradescope"], ["-h"], ["--help"]):
        argv = ["grade", *argv]
    args = parser().parse_args(argv)
    if args.command == "gradescope":
        return gradescope.command(args)
    return merge_command(args) if args.command == "merge" else grade_command(args)


def grade_command(args) -> int:
    try:
        shard = shards.parse_shard(args.shard) if args.shard else shards.shard_from_env() if args.shard_from_env else None
        if args.shard_from_env and shard is None:
            raise ValueError("--shard-from-env found no SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or SEEING_NETWORKS_SHARD")
        students = roster.read_roster(args.roster) if args.roster else None
        groups = canvas.read_groups(args.groups) if args.groups else None
        outcome = grade_class(
            args.paths, timeout=args.timeout, workers=args.workers, notebook_timeout=args.notebook_timeout,
            results_file=args.results, resume=args.resume, seed=args.seed, exercise_modules=parse_modules(args.exercises),
            shard=shard, roster=students, keep_executed=bool(args.feedback), skip=not args.run_all, student=args.student, groups=groups, accept=args.accept,
        )  # fmt: skip
    except (FileNotFoundError, ValueError, TypeError, PermissionError) as error:
        print(f"python -m helpers.grade: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("python -m helpers.grade: stopped; nothing is left running", file=sys.stderr)
        return 130
    print()
    print(feedback.format_table(outcome.results, outcome.seconds))
    print(f"\n{len({r.path for r in outcome.results if r.path})} notebook(s) in {outcome.elapsed:.0f} s")
    try:
        write_outputs(outcome, args)
    except (FileNotFoundError, ValueError) as error:
        print(f"python -m helpers.grade: {error}", file=sys.stderr)
        return 2
    return 0


def merge_command(args) -> int:
    try:
        rows = shards.merge(args.results)
    except (FileNotFoundError, ValueError, TypeError) as error:
        print(f"python -m helpers.grade merge: {error}", file=sys.stderr)
        return 2
    results = [Result(**{k: row[k] for k in Result.__dataclass_fields__}) for row in rows]
    outcome = Outcome(results, {}, meta=rows.meta or gradebook.course_meta(None), entries=rows.entries or {})
    if args.roster:
        students = roster.read_roster(args.roster)
        found = {getattr(roster.find_student(students, r.student), "id", None) for r in results}
        outcome.results += [Result(s.id, "-", "-", False, NOT_SUBMITTED, "", "") for s in students if s.id not in found]
    print(feedback.format_table(outcome.results))
    print(f"\nmerged {rows.notebooks} notebook(s) from {len(args.results)} file(s); {rows.skipped} unreadable line(s) skipped")
    write_outputs(outcome, args)
    return 0
