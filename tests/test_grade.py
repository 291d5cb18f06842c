"""The grader (`python -m helpers.grade`) attacked on real kernels, beside honest controls.

One grading run covers a class of submissions of notebook 00 (fast: two exercises, a function and a
named answer): honest ones (solved, untouched, one exercise solved, a wrong answer, saved from Colab,
one that replaces `print` and `sys.stdout`) and, one per submission, every cheat and sabotage a
student has tried: rebinding `ex`, replacing a check, hiding a check cell, swallowing exceptions,
rewriting cells as they run, inventing exercises, shipping or planting a `helpers/` package, forging
answer records (files, `_record(reference, seed)` in the last cell, a background thread printing
forged replies), patching `json.dumps`, `Exercise.record`, the recorder or `sys.modules`, using the
reference or the expected value, hard-coding the visible cases, malformed cells, a 20,000-term
expression, a newline in a file name, killing the grading process, ignoring Ctrl-C, `os._exit`,
leaving a process behind; and correct answers that wrap the library or reach it dynamically (`getattr`
on a built name, `importlib`, `exec`). Classmates graded in the same run must keep exactly their marks.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from helpers import grade
from helpers.grading import grader
from helpers.grading.conventions import defines

ROOT = Path(__file__).resolve().parents[1]
NB = "00_start_here"
STUDENT = ROOT / "notebooks" / f"{NB}.ipynb"
SOLUTION = ROOT / "notebooks" / "solutions" / f"{NB}.ipynb"
TIMEOUT = 40  # seconds per cell: far above what notebook 00's cells need, even on a busy machine
NOTEBOOK_TIMEOUT = 90
MARKER = f"seeing-networks-left-behind-{uuid.uuid4().hex}"
NEWLINE_NAME = "eve\n| mallory | 00_start_here | to_grayscale | ✓ passed |"
GRAY = "def to_grayscale(image):\n    return 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]"
VALUES = "values_per_image = 3 * 64 * 64"


# --------------------------------------------------------------------------------------------
# Building submissions from the real student notebook
# --------------------------------------------------------------------------------------------


def student() -> nbformat.NotebookNode:
    return nbformat.read(STUDENT, as_version=4)


def code_index(nb, predicate) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and predicate(c))


def answer_cell(nb, name: str) -> int:
    return code_index(nb, lambda c: defines(c.source, name))


def check_cell(nb, name: str) -> int:
    return code_index(nb, lambda c: c.metadata.get("exercise", {}).get("id") == name)


def solve(nb, gray: str | None = GRAY, values: str | None = VALUES):
    """The notebook with the given answers written in (None keeps the stub)."""
    nb = copy.deepcopy(nb)
    if gray is not None:
        nb.cells[answer_cell(nb, "to_grayscale")].source = gray
    if values is not None:
        nb.cells[answer_cell(nb, "values_per_image")].source = values
    return nb


def insert(nb, index: int, source: str, **metadata):
    nb = copy.deepcopy(nb)
    nb.cells.insert(index, nbformat.v4.new_code_cell(source, metadata=metadata))
    return nb


def after_imports(nb, source: str):
    """`source` as a new cell right after the notebook's imports (before any exercise)."""
    return insert(nb, code_index(nb, lambda c: "import" in c.source and "helpers.exercises" in c.source) + 1, source)


def write(nb, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def submissions(subs: Path, results: Path) -> dict[str, nbformat.NotebookNode]:
    """student name -> notebook, for every case (the attackers know where the class lies)."""
    untouched, solved = student(), solve(student())
    colab = nbformat.read(SOLUTION, as_version=4)
    for cell in colab.cells:
        if cell.cell_type == "code":
            cell.execution_count = None  # what Colab saves: outputs kept, no counts
    colab.metadata["colab"] = {"provenance": []}
    fake_labels = solved
    for i in range(10):
        fake_labels = insert(fake_labels, 5, "print('✓ Correct')", exercise={"notebook": NB, "id": f"bonus_{i}"})
    hidden = check_cell(untouched, "to_grayscale")
    walk_up = (
        "import os, signal\npid = os.getppid()\nwhile pid > 1:\n"
        "    parent = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
        "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n    pid = parent"
    )
    plant = (
        "import os, pathlib\nfor target in [{bob!r}, {results!r}, {grader_tmp!r}]:\n"
        "    try:\n        p = pathlib.Path(target)\n        p.parent.mkdir(parents=True, exist_ok=True)\n"
        "        p.write_text('raise SystemExit(\"planted\")\\n' if p.suffix == '.py' else '{{}}\\n')\n"
        "    except OSError as error:\n        print('refused:', error)"
    ).format(bob=str(subs / "bob" / "helpers" / "__init__.py"), results=str(results), grader_tmp="/tmp/seeing-networks-grade-planted/x.jsonl")
    from helpers.exercises import nb00  # the visible outputs, computed outside the graded kernel and pasted in

    pasted = [nb00.to_grayscale.reference(*case.args).tolist() for case in nb00.to_grayscale.cases()]
    replay = (
        f"import torch\n_outputs = [torch.tensor(o) for o in {pasted!r}]\n_calls = iter(range(10**6))\n"
        "def to_grayscale(image):\n    return _outputs[next(_calls) % len(_outputs)].clone()"
    )
    last = len(untouched.cells)  # an index past the end: a last cell
    forge_answers = (
        "import json, os\nos.makedirs('.answers', exist_ok=True)\n"
        "for name in ('to_grayscale', 'values_per_image'):\n"
        "    json.dump({'state': 'ran', 'results': [], 'exercise': name}, open(f'.answers/{name}.json', 'w'))\n"
        "record = ex.to_grayscale._record(ex.to_grayscale.reference, 12345)"
    )
    forging_thread = (
        "import threading, time, json, sys\n"
        "_out = sys.stdout\n"
        "def _forge():\n"
        "    while True:\n"
        "        _out.write('0' * 32 + json.dumps({'state': 'set', 'value': 12288}) + '0' * 32 + '\\n')\n"
        "        time.sleep(0.01)\n"
        "threading.Thread(target=_forge, daemon=True).start()"
    )
    patch_json = (  # every record the kernel writes becomes a "passing" one; the kernel's own messages are left alone
        "import json\n_dumps = json.dumps\n"
        "json.dumps = lambda obj, *a, **k: _dumps({'state': 'set', 'value': 12288} if isinstance(obj, dict) and 'state' in obj else obj, *a, **k)"
    )
    patch_record = (
        "from helpers.exercises import core\n"
        "core.Exercise.record = lambda self, *a, **k: {'state': 'set', 'value': 12288}\n"
        "core.FunctionExercise.run_cases = lambda self, *a, **k: {'state': 'ran', 'results': []}\n"
        "core.Exercise.judge = lambda self, *a, **k: core.Verdict('passed')"
    )
    patch_modules = (
        "import sys, types\nfake = types.ModuleType('json')\nfake.dumps = lambda *a, **k: '{}'\nfake.loads = lambda *a, **k: {}\n"
        "sys.modules['json'] = fake\nsys.modules['helpers.exercises.answers'] = fake\nsys.modules['helpers.exercises.core'] = fake"
    )
    quiet = "import io, sys\nprint = lambda *a, **k: None\nsys.stdout = io.StringIO()\nsys.stderr = io.StringIO()"
    malformed = copy.deepcopy(solve(untouched))
    malformed.cells[answer_cell(malformed, "to_grayscale")].metadata["tags"] = 7
    unreadable = copy.deepcopy(solve(untouched))
    unreadable.cells[answer_cell(unreadable, "values_per_image")]["source"] = 42
    return {
        # honest work
        "alice": solved,
        "bob": solved,  # the classmate the saboteurs aim at
        "carol": untouched,
        "dave": solve(untouched, values=None),
        "erin": solve(untouched, values="values_per_image = 3 * 64"),
        "fay": colab,
        # cheats: each leaves the stubs in place, so nothing may pass
        "cheat_rebind_ex": insert(untouched, hidden, "class _Pass:\n    def check(self, *a):\n        print('✓ Correct')\nclass ex:\n    to_grayscale = values_per_image = _Pass()"),
        "cheat_replace_check": after_imports(untouched, "ex.to_grayscale.check = ex.values_per_image.check = lambda *a: print('✓ Correct')"),
        "cheat_patch_judge": after_imports(untouched, "from helpers.exercises.core import Verdict, Exercise\nExercise.judge = lambda self, record, seed=None: Verdict('passed')"),
        "cheat_try_except": _edit_check(untouched, "try:\n    ex.{name}.check()\nexcept Exception:\n    print('✓ Correct')"),
        "cheat_if_false": _edit_check(untouched, "if False:\n    ex.{name}.check()"),
        "cheat_deleted_checks": _drop_checks(untouched),
        "cheat_custom_exc": after_imports(untouched, "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)"),
        "cheat_input_transformer": after_imports(untouched, "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])"),
        "cheat_invented_exercises": fake_labels,
        "cheat_forged_answer_file": after_imports(
            untouched,
            "import json, os\nos.makedirs('.answers', exist_ok=True)\n"
            "json.dump({'state': 'ran', 'results': []}, open('.answers/to_grayscale.json', 'w'))\n"
            "os.symlink('/etc/shadow', '.answers/values_per_image.json')",
        ),
        "cheat_hard_coded": solve(untouched, gray=replay, values=None),
        "cheat_reference": solve(untouched, gray="to_grayscale = ex.to_grayscale.reference", values=None),
        "cheat_calls_reference": solve(untouched, gray="def to_grayscale(image):\n    return ex.to_grayscale.reference(image)", values=None),
        "cheat_expected_value": solve(untouched, gray=None, values="values_per_image = int(ex.values_per_image.expected)"),
        "cheat_forged_records_last_cell": insert(untouched, last, forge_answers),
        "cheat_forging_thread": after_imports(untouched, forging_thread),
        "cheat_patch_json": insert(untouched, last, patch_json),
        "cheat_patch_record": after_imports(untouched, patch_record),
        "cheat_patch_sys_modules": insert(untouched, last, patch_modules),
        # wrappers: a correct to_grayscale that hands the work to a library, or reaches it dynamically
        **{name: solve(untouched, gray=source, values=None) for name, (source, _) in WRAPPERS.items()},
        # honest, with an odd last cell: replacing print and sys.stdout does not lose the marks
        "quiet": insert(solved, len(solved.cells), quiet),
        # a notebook no reader expects: its own row, never the run
        "odd_tags": malformed,
        "odd_source": unreadable,
        "deep_expression": insert(solved, len(solved.cells), "x = " + "1 + " * 20000 + "1"),
        "cheat_shadow_helpers": after_imports(untouched, "import os\nos.makedirs('helpers/exercises', exist_ok=True)\nopen('helpers/__init__.py', 'w').write('raise SystemExit')\nimport importlib; importlib.invalidate_caches()"),
        # sabotage: each solves to_grayscale before the attack and values_per_image after it
        "harm_plant_files": insert(solve(untouched), check_cell(untouched, "to_grayscale") + 1, plant),
        "harm_kill_ancestors": insert(solve(untouched), check_cell(untouched, "to_grayscale") + 1, walk_up),
        "harm_ignore_interrupt": insert(solve(untouched), check_cell(untouched, "to_grayscale") + 1,
                                        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"),
        "harm_exit": insert(solve(untouched), check_cell(untouched, "to_grayscale") + 1, "import os\nos._exit(0)"),
        "harm_leave_process": insert(
            solve(untouched), check_cell(untouched, "to_grayscale") + 1,
            f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(900)', {MARKER!r}], start_new_session=True)",
        ),  # fmt: skip
    }


#: Answers that wrap the library or reach it dynamically: (the answer cell, to_grayscale's verdict).
#: Each computes the right values, so only the source check and the tripwires stand between it and a mark.
WRAPPERS = {
    "wrap_library_call": ("import torchvision\ndef to_grayscale(image):\n    return torchvision.transforms.functional.rgb_to_grayscale(image)[0]",
                          "uses a library implementation"),
    "wrap_library_alias": ("from torchvision.transforms import functional as F2\ndef to_grayscale(image):\n    g = F2.rgb_to_grayscale\n    return g(image)[0]",
                           "uses a library implementation"),
    "wrap_built_name": ("import torchvision\ndef to_grayscale(image):\n    return getattr(torchvision.transforms.functional, 'rgb_to_' + 'grayscale')(image)[0]",
                        "needs review"),
    "wrap_importlib": ("import importlib\ndef to_grayscale(image):\n    return importlib.import_module('torchvision.transforms.functional').rgb_to_grayscale(image)[0]",
                       "needs review"),
    "wrap_exec_source": ("import inspect, torchvision\nsource = 'def to_grayscale(image):\\n    return torchvision.transforms.functional.rgb_to_grayscale(image)[0]'\nexec(source)",
                         "needs review"),
}  # fmt: skip


def _edit_check(nb, template: str):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        name = cell.get("metadata", {}).get("exercise", {}).get("id")
        if name:
            cell.source = template.format(name=name)
    return nb


def _drop_checks(nb):
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if not c.get("metadata", {}).get("exercise")]
    return nb


# --------------------------------------------------------------------------------------------
# One grading run over the whole class
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    subs, results = root / "submissions", root / "results.jsonl"
    for name, nb in submissions(subs, results).items():
        write(nb, subs / name / f"{NB}.ipynb")
    (subs / "shipped" / "helpers").mkdir(parents=True)  # a submission that ships its own helpers/
    (subs / "shipped" / "helpers" / "__init__.py").write_text("raise SystemExit('shipped helpers')\n")
    write(solve(student()), subs / "shipped" / f"{NB}.ipynb")
    (subs / "frank").mkdir()
    (subs / "frank" / f"{NB}.ipynb").write_text('{"cells": [ this is not JSON')
    write(student(), subs / NEWLINE_NAME / f"{NB}.ipynb")  # an LMS name with a newline and a forged row in it
    bob_before = (subs / "bob" / f"{NB}.ipynb").read_bytes()
    csv_path, out = root / "grades.csv", io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out):
        status = grade.main([str(subs), "--csv", str(csv_path), "--results", str(results), "--timeout", str(TIMEOUT),
                             "--notebook-timeout", str(NOTEBOOK_TIMEOUT), "--workers", "2", "--feedback", str(root / "feedback")])  # fmt: skip
    executed = {p.parent.name: nbformat.read(p, as_version=4) for p in (root / "feedback").glob(f"*/{NB}.ipynb")}
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "grading-attacks.md").write_text(out.getvalue())  # the table, for a person to read
    return {
        "status": status, "rows": rows, "text": out.getvalue(), "subs": subs, "results": results,
        "bob_before": bob_before, "seconds": time.monotonic() - started, "executed": executed,
    }  # fmt: skip


def of(graded, name: str) -> dict[str, dict]:
    rows = {r["exercise"]: r for r in graded["rows"] if r["student"] == name}
    assert rows, f"{name} was not graded:\n{graded['text'][-3000:]}"
    return rows


def marks(graded, name: str) -> dict[str, str]:
    return {exercise: row["status"] for exercise, row in of(graded, name).items()}


BOTH_PASS = {"to_grayscale": "passed", "values_per_image": "passed"}


def test_grading_ran_and_exit_status_is_0(graded):
    assert graded["status"] == 0, graded["text"][-3000:]


# ---- honest controls ------------------------------------------------------------------------


def test_honest_work_keeps_exactly_its_credit(graded):
    assert marks(graded, "alice") == BOTH_PASS
    assert marks(graded, "carol") == {"to_grayscale": "not attempted", "values_per_image": "not attempted"}
    assert marks(graded, "dave") == {"to_grayscale": "passed", "values_per_image": "not attempted"}
    erin = of(graded, "erin")
    assert erin["to_grayscale"]["status"] == "passed" and erin["values_per_image"]["status"] == "incorrect"
    assert "too small" in erin["values_per_image"]["detail"]


def test_a_notebook_saved_from_colab_with_outputs_and_no_counts_grades_the_same(graded):
    assert marks(graded, "fay") == BOTH_PASS


def test_the_classmate_keeps_full_marks_and_an_untouched_folder(graded):
    assert marks(graded, "bob") == BOTH_PASS
    assert (graded["subs"] / "bob" / f"{NB}.ipynb").read_bytes() == graded["bob_before"]
    assert not (graded["subs"] / "bob" / "helpers").exists()


def test_a_corrupt_file_is_reported_and_grading_goes_on(graded):
    assert set(marks(graded, "frank").values()) == {"invalid notebook"}


@pytest.mark.parametrize("who", ["odd_tags", "odd_source"])
def test_a_malformed_cell_costs_only_its_own_row(graded, who):
    rows = of(graded, who)
    assert {r["status"] for r in rows.values()} == {"invalid notebook"}, rows
    assert all(r["detail"] for r in rows.values())


def test_a_deeply_nested_expression_costs_nothing_but_its_own_cell(graded):
    """Compiling it may take the kernel past the cell's limit on a busy machine, and the source check cannot
    read it (an instructor looks): either way the row names cell 11, and the run goes on."""
    rows = of(graded, "deep_expression")
    assert {r["status"] for r in rows.values()} <= {"passed", "needs review", "timed out"}, rows
    assert all(r["status"] == "passed" or "cell 11" in r["detail"] for r in rows.values()), rows


def test_replacing_print_and_stdout_does_not_lose_honest_marks(graded):
    assert marks(graded, "quiet") == BOTH_PASS


def test_a_newline_in_a_name_cannot_forge_a_row(graded):
    assert marks(graded, NEWLINE_NAME) == {"to_grayscale": "not attempted", "values_per_image": "not attempted"}
    assert not any(line.startswith("| mallory") for line in graded["text"].splitlines()), graded["text"][-3000:]
    assert "eve\\n/ mallory" in graded["text"]  # printed, escaped, on the student's own line

# ---- cheats ----------------------------------------------------------------------------------

CHEATS = [
    "cheat_rebind_ex", "cheat_replace_check", "cheat_patch_judge", "cheat_try_except", "cheat_if_false",
    "cheat_deleted_checks", "cheat_custom_exc", "cheat_input_transformer", "cheat_invented_exercises",
    "cheat_forged_answer_file", "cheat_shadow_helpers", "cheat_calls_reference", "cheat_expected_value",
    "cheat_forged_records_last_cell", "cheat_forging_thread", "cheat_patch_json", "cheat_patch_record",
    "cheat_patch_sys_modules",
]  # fmt: skip
#: What each forging cheat gets, and the words of its verdict: none of them is credit.
FORGERIES = {
    "cheat_forged_answer_file": ("not attempted", "not attempted"),
    "cheat_forged_records_last_cell": ("uses the reference", "not attempted"),
    "cheat_forging_thread": ("not attempted", "not attempted"),
    "cheat_patch_json": ("not attempted", "not attempted"),
    "cheat_patch_record": ("not attempted", "not attempted"),
    "cheat_patch_sys_modules": ("not attempted", "not attempted"),
    "cheat_expected_value": ("not attempted", "uses the reference"),
    "cheat_calls_reference": ("uses the reference", "not attempted"),
}


@pytest.mark.parametrize("cheat", CHEATS)
def test_no_cheat_turns_a_stub_into_marks(graded, cheat):
    rows = of(graded, cheat)
    assert set(rows) == {"to_grayscale", "values_per_image"}, rows  # only the course's exercises count
    if cheat == "cheat_invented_exercises":  # its answers are real; its ten invented exercises are not
        assert marks(graded, cheat) == BOTH_PASS
        return
    assert not any(r["passed"] == "1" for r in rows.values()), rows


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_a_wrapped_or_dynamic_answer_earns_nothing_and_says_why(graded, wrapper):
    rows = of(graded, wrapper)
    assert rows["to_grayscale"]["status"] == WRAPPERS[wrapper][1], rows
    assert rows["to_grayscale"]["passed"] == "0" and rows["to_grayscale"]["detail"], rows
    assert marks(graded, "bob") == BOTH_PASS  # the honest classmate graded in the same run


@pytest.mark.parametrize("cheat", sorted(FORGERIES))
def test_a_forged_or_borrowed_answer_gets_a_verdict_that_says_why(graded, cheat):
    gray, values = FORGERIES[cheat]
    rows = of(graded, cheat)
    assert (rows["to_grayscale"]["status"], rows["values_per_image"]["status"]) == (gray, values), rows
    assert all(r["detail"] for r in rows.values()), rows


def test_the_graded_kernel_holds_no_reference_expected_value_or_solution(graded):
    """What a student reads of `ex.X` in the graded kernel: stand-ins that hold nothing."""
    executed = graded["executed"]["cheat_expected_value"]
    shown = "\n".join(json.dumps(c.get("outputs", [])) for c in executed.cells if c.cell_type == "code")
    assert "withheld while grading" in shown or "not in the kernel while grading" in shown, shown[-2000:]


def test_a_restored_check_cell_still_gives_the_student_feedback(graded):
    """Deleted and edited check cells come back, so the recorded answer is judged as usual."""
    assert marks(graded, "cheat_deleted_checks") == {"to_grayscale": "not attempted", "values_per_image": "not attempted"}
    assert marks(graded, "cheat_if_false") == {"to_grayscale": "not attempted", "values_per_image": "not attempted"}


def test_hard_coding_the_visible_cases_fails_the_hidden_ones(graded):
    row = of(graded, "cheat_hard_coded")["to_grayscale"]
    assert row["status"] == "incorrect" and "hidden case" in row["detail"], row


def test_handing_in_the_reference_is_reported(graded):
    assert of(graded, "cheat_reference")["to_grayscale"]["status"] == "uses the reference"
    assert of(graded, "cheat_calls_reference")["to_grayscale"]["status"] == "uses the reference"


def test_a_shipped_helpers_folder_is_never_imported(graded):
    assert marks(graded, "shipped") == BOTH_PASS


# ---- sabotage --------------------------------------------------------------------------------


def test_planting_files_for_others_is_refused(graded):
    assert marks(graded, "harm_plant_files") == BOTH_PASS  # the attempt fails quietly; the work still counts
    lines = graded["results"].read_text().splitlines()
    assert all(json.loads(line)["rows"] for line in lines)  # no `{}` made it into the grader's records
    assert len(lines) == len({r["path"] for r in graded["rows"]})  # one line per notebook, and nothing else
    assert not Path("/tmp/seeing-networks-grade-planted").exists()


def test_killing_the_grading_process_costs_only_that_notebook(graded):
    rows = of(graded, "harm_kill_ancestors")  # the kernel may kill only itself: then every row says so
    assert {r["status"] for r in rows.values()} in ({"passed"}, {"kernel died"}), rows


def test_a_loop_that_ignores_interrupts_is_killed_and_blamed_on_its_cell(graded):
    rows = of(graded, "harm_ignore_interrupt")
    assert {r["status"] for r in rows.values()} == {"timed out"}, rows
    loop_at = check_cell(student(), "to_grayscale") + 1  # where the loop was inserted
    loop_cell = [c.cell_type for c in submissions_cache(graded, "harm_ignore_interrupt").cells[: loop_at + 1]].count("code")
    assert all(f"timed out in cell {loop_cell} after" in r["detail"] and "killed" in r["detail"] for r in rows.values()), rows


def test_os_exit_is_reported_at_once_as_a_dead_kernel_in_its_cell(graded):
    rows = of(graded, "harm_exit")
    assert rows["to_grayscale"]["status"] == "kernel died"
    assert rows["values_per_image"]["status"] == "kernel died", rows
    exit_cell = [c.cell_type for c in submissions_cache(graded, "harm_exit").cells[: check_cell(student(), "to_grayscale") + 2]].count("code")
    detail = rows["values_per_image"]["detail"]
    assert f"in cell {exit_cell} " in detail, detail
    took = float(re.search(r"noticed after ([\d.]+) s", detail).group(1))
    assert took < 5, f"the dead kernel was noticed only after {took} s (the per-cell timeout is {TIMEOUT} s)"


def test_no_process_outlives_grading(graded):
    assert marks(graded, "harm_leave_process") == BOTH_PASS
    assert processes_with(MARKER) == []


# ---- helpers of the tests above ----------------------------------------------------------------


def submissions_cache(graded, name: str):
    return nbformat.read(graded["subs"] / name / f"{NB}.ipynb", as_version=4)


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


# --------------------------------------------------------------------------------------------
# Stopping the grader leaves nothing behind
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_stopping_the_grader_leaves_nothing_running(tmp_path, how):
    marker = f"seeing-networks-stop-{uuid.uuid4().hex}"
    nb = insert(student(), check_cell(student(), "to_grayscale") + 1,
                f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(900)', {marker!r}])\ntime.sleep(900)")  # fmt: skip
    write(nb, tmp_path / "subs" / "zoe" / f"{NB}.ipynb")
    grader = subprocess.Popen(
        [sys.executable, "-m", "helpers.grade", str(tmp_path / "subs"), "--timeout", "900"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_with(marker), "the notebook never reached its long cell"
    from helpers.sandbox import descendants

    tree = descendants(grader.pid)
    assert len(tree) >= 3  # the runner, pytest, the kernel (and the marker process)
    grader.send_signal(how)
    grader.wait(timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (processes_with(marker) or _alive(tree)):
        time.sleep(0.5)
    assert processes_with(marker) == [] and _alive(tree) == [], f"left running after {how!r}"


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


# --------------------------------------------------------------------------------------------
# A loop that prints a dot a second and ignores Ctrl-C, beside a classmate
# --------------------------------------------------------------------------------------------


def test_a_dot_printing_loop_that_ignores_interrupts_is_stopped_within_twice_the_cell_timeout(tmp_path):
    timeout = 10
    loop = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    print('.', end='', flush=True)\n    time.sleep(1)"
    nb = insert(solve(student()), check_cell(student(), "to_grayscale") + 1, loop)
    write(nb, tmp_path / "subs" / "dots" / f"{NB}.ipynb")
    write(solve(student()), tmp_path / "subs" / "classmate" / f"{NB}.ipynb")
    outcome = grader.grade_class([tmp_path / "subs"], timeout=timeout, workers=2, out=io.StringIO())
    rows = {(r.student, r.exercise): r for r in outcome.results}
    assert {rows[("classmate", e)].status for e in ("to_grayscale", "values_per_image")} == {"passed"}
    dots = [rows[("dots", e)] for e in ("to_grayscale", "values_per_image")]
    assert {r.status for r in dots} == {"timed out"} and all("timed out in cell" in r.detail for r in dots), dots
    stopped = float(re.search(r"killed (\d+) s after the cell began", dots[0].detail).group(1))
    assert timeout <= stopped <= 2 * timeout, dots[0].detail
