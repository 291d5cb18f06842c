"""Grade submitted notebooks: each runs in its own sandbox, and the grader decides every verdict itself.

    python -m helpers.grade PATH... [--csv FILE] [--results FILE [--resume]] [--timeout S]
                                    [--notebook-timeout S] [--workers N] [--seed N]

PATH is a notebook or a folder searched for notebooks. A notebook directly inside a folder you name
belongs to a student called like the folder; one further down belongs to the first folder below it
(`submissions/alice/01_vision_tasks.ipynb` is alice's). A notebook named on its own belongs to the
folder it sits in.

How a notebook is graded:

1. **Prepared.** Outputs and execution counts are cleared (a notebook saved from Colab, VS Code or
   JupyterLab grades the same). Every exercise the course registers for that notebook gets the
   course's own check cell back: an edited one is restored, a deleted one re-added; labels on cells
   the course does not register count for nothing. After each check cell the grader adds a cell that
   *records* the student's answer (`helpers.exercises.answers.export_answers`): the value of a named
   answer, or what a function returns on the check's inputs, visible ones and hidden ones drawn from
   a seed the student cannot know.
2. **Run**, top to bottom under nbval (lax mode), in a fresh empty folder holding only that copy, by
   one `python -m helpers.sandbox` process per notebook: the kernel may write only there, reads the
   course from its installed place (never from the folder), runs as an unprivileged user when the
   grader is root, cannot signal or trace anything outside its own tree, and is killed with everything
   it started when the notebook ends or runs past `--notebook-timeout`. A cell running past
   `--timeout` is interrupted. A kernel that dies is noticed at once.
3. **Judged** in this process: each recorded answer is compared with the reference by the course's
   check (`Exercise.judge`). Nothing the student's kernel prints, raises or patches decides a grade;
   the student can influence only their own answers. An answer that is the course's own reference
   object counts as "uses the reference".

`--results FILE` appends one JSON line per notebook as it finishes; with `--resume`, notebooks already
in FILE (same path, same content) are not graded again. The exit status is 0 whenever grading ran,
whatever the scores; 2 when there was nothing to grade or the arguments were wrong.

This module is also the small pytest plugin (`-p helpers.grade`) that, inside the sandbox, reports
every cell's start and end to the grader through an inherited file descriptor.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import hashlib
import importlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = ROOT / "notebooks" / "solutions"
DEFAULT_TIMEOUT = 900  # seconds per cell
DEFAULT_NOTEBOOK_TIMEOUT = 3600  # seconds per notebook, wall clock, enforced with a kill
SANDBOX_UID = SANDBOX_GID = 65534  # "nobody": who the kernels run as when the grader is root
RECORD_FD_ENV = "SEEING_NETWORKS_RECORD_FD"
ANSWERS = ".answers"  # the folder, inside the sandbox, the recording cells write to
NOTEBOOK_FILE = "submission.ipynb"
EXPORT_MARK = "# seeing-networks: grader records your answer here"
SKIP_TAG = "grader-skip"  # a cell no check needs (a long training, a figure grid, a widget): not run when grading
SKIPPED = "# (not run when grading: no check needs this cell)"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
NOTEBOOK_STEM = re.compile(r"(\d\d_[A-Za-z0-9_]+)")

#: What each status means (the table ends with the ones that occurred).
STATUSES = {
    "passed": "the recorded answer matches the reference on every case, hidden ones included",
    "incorrect": "the recorded answer differs from the reference (the detail says where)",
    "not attempted": "the answer is still the stub, or was never defined",
    "uses the reference": "the answer is the course's own reference function or value, not the student's work",
    "timed out": "the notebook ran past a time limit before this answer was recorded",
    "kernel died": "the kernel died before this answer was recorded",
    "error": "the grader's recording cell failed (the detail says why)",
    "not run": "no answer came back (grading was stopped, or the notebook could not start)",
    "invalid notebook": "the file is not a readable notebook",
    "empty notebook": "the notebook has no code cells",
    "no exercises": "the course defines no exercise for this notebook",
}


@dataclass
class Result:
    """One row of the grade table: one exercise of one student's notebook."""

    student: str
    notebook: str
    exercise: str
    passed: bool
    status: str
    detail: str = ""
    path: str = ""


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
    entry: object = field(default=None, repr=False)  # the classbook.Entry it came from (LMS, name, time)


# --------------------------------------------------------------------------------------------
# Finding and reading submissions
# --------------------------------------------------------------------------------------------


def find_class(paths: list[str | Path]) -> tuple[list[Submission], list]:
    """The notebooks to grade under `paths`, one per student and notebook, and the files they superseded.

    Reads the layouts `helpers.classbook.discover` knows: a Canvas download (flat names), a Gradescope
    export (`submission_metadata.yml`), or a folder per student. When a student handed in several
    files for one notebook, the latest counts (`classbook.choose_latest`). Raises FileNotFoundError.
    """
    from helpers import classbook

    chosen, superseded = classbook.choose_latest(classbook.discover(paths))
    return [Submission(student=e.student, path=e.path, entry=e) for e in chosen], superseded


def find_submissions(paths: list[str | Path]) -> list[Submission]:
    """Every notebook to grade under `paths` (files or folders), each with its student."""
    return find_class(paths)[0]


def known_notebooks() -> list[str]:
    """The course's notebook names (file stems of `notebooks/solutions/NN_*.ipynb`)."""
    return sorted(p.stem for p in SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb"))


def notebook_from_filename(path: Path) -> str:
    """The course notebook a file name names: `alice_01_vision_tasks.ipynb` -> `01_vision_tasks`, else ""."""
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


def read_submission(sub: Submission) -> Submission:
    """Read the notebook and decide which course notebook it is, or what is wrong with it.

    The file name decides when it names a course notebook (the student chose neither it nor the
    LMS's renaming); otherwise the labels the course wrote into its check cells.
    """
    import nbformat

    try:
        raw = sub.path.read_bytes()
        sub.sha256 = hashlib.sha256(raw).hexdigest()
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("no list of cells")
    except Exception as error:  # not JSON, not a notebook, unreadable
        sub.notebook = notebook_from_filename(sub.path) or sub.path.stem
        sub.problem, sub.detail = "invalid notebook", one_line(f"{type(error).__name__}: {error}")
        return sub
    labels = [
        str(cell.get("metadata", {}).get("exercise", {}).get("notebook", ""))
        for cell in nb.cells
        if isinstance(cell.get("metadata", {}).get("exercise"), dict)
    ]
    named = getattr(sub.entry, "notebook", "") or notebook_from_filename(sub.path)
    sub.notebook = named or (Counter(labels).most_common(1)[0][0] if labels else sub.path.stem)
    sub.nb = nb
    if not any(cell.get("cell_type") == "code" for cell in nb.cells):
        sub.problem, sub.detail = "empty notebook", "no code cells"
    return sub


def exercise_module(notebook: str, extra: dict[str, str] | None = None) -> str | None:
    """The module that defines `notebook`'s exercises: `helpers.exercises.nbNN`, or one named in `extra`."""
    if extra and notebook in extra:
        return extra[notebook]
    if re.fullmatch(r"\d\d_\w+", notebook) and (ROOT / "helpers" / "exercises" / f"nb{notebook[:2]}.py").exists():
        return f"helpers.exercises.nb{notebook[:2]}"
    return None


def course_exercises(notebook: str, extra: dict[str, str] | None = None) -> list:
    """The `Exercise` objects the course registers for `notebook`, in the order they were defined."""
    from helpers.exercises.core import exercises_of

    module = exercise_module(notebook, extra)
    if module is None:
        return []
    importlib.import_module(module)
    return exercises_of(notebook)


def one_line(text: str, limit: int = 160) -> str:
    text = " ".join(ANSI.sub("", str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# Preparing a notebook: cleared, its check cells the course's, a recording cell after each
# --------------------------------------------------------------------------------------------


def defines(source: str, name: str) -> bool:
    """Does this cell define `name` at the top level (`def name(` or `name = ...`)?"""
    return re.search(rf"(?m)^(def\s+{re.escape(name)}\s*\(|{re.escape(name)}\s*(:[^=]*)?=[^=])", source) is not None


def prepare(nb, notebook: str, names: list[str], seed: int, module: str, skip: bool = True):
    """The notebook as the grader runs it, and for each code cell its place in the student's numbering.

    With `skip`, cells the course tagged `grader-skip` (no check needs them) are emptied, so grading
    does not wait for trainings whose results no answer depends on (tests/test_grade_skip.py).

    Returns (notebook, labels) where labels[i] is the i-th code cell's "cell N" (N counts the code
    cells a student sees, restored check cells included) or the exercise name for a recording cell.
    """
    import copy

    import nbformat

    from helpers.build import check_cell_source

    nb = copy.deepcopy(nb)
    if skip:
        skip_unneeded(nb, names)
    cells = []
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell.outputs, cell.execution_count = [], None
            label = cell.get("metadata", {}).get("exercise")
            if isinstance(label, dict) and (label.get("notebook") != notebook or label.get("id") not in names):
                del cell.metadata["exercise"]  # a label the course did not write counts for nothing
        cells.append(cell)
    placed = set()
    for name in names:
        wanted = {"notebook": notebook, "id": name}
        where = [i for i, c in enumerate(cells) if c.get("cell_type") == "code" and c.get("metadata", {}).get("exercise") == wanted]
        for extra in where[1:]:
            del cells[extra].metadata["exercise"]
        if where:
            cells[where[0]].source = check_cell_source(name)
            continue
        defining = [i for i, c in enumerate(cells) if c.get("cell_type") == "code" and defines(c.get("source", ""), name)]
        at = defining[-1] + 1 if defining else len(cells)
        cells.insert(at, nbformat.v4.new_code_cell(check_cell_source(name), metadata={"exercise": wanted}))
        placed.add(name)
    prepared, labels, shown = [], [], 0
    for cell in cells:
        prepared.append(cell)
        if cell.get("cell_type") != "code":
            continue
        shown += 1
        labels.append(f"cell {shown}")
        label = cell.get("metadata", {}).get("exercise")
        if isinstance(label, dict) and label.get("notebook") == notebook:
            code = (
                f"{EXPORT_MARK}\nfrom helpers.exercises.answers import export_answers\n"
                f"export_answers({notebook!r}, [{label['id']!r}], seed={seed}, folder={ANSWERS!r}, module={module!r})"
            )
            prepared.append(nbformat.v4.new_code_cell(code))
            labels.append(label["id"])
    nb.cells = prepared
    return nb, labels


def skip_unneeded(nb, names: list[str]) -> None:
    """Empty the cells tagged `grader-skip` that none of this student's answers needs.

    The tags say what the course's own solutions need; a student's answer may read something else
    (a helper they wrote, a variable of a tagged cell), so the cells that define what the student's
    answers read are run all the same (`helpers.build.needed_cells` on the submission itself).
    """
    from helpers.build import needed_cells

    code = [c for c in nb.cells if c.get("cell_type") == "code"]
    seeds = {
        i for i, c in enumerate(code)
        if SKIP_TAG not in c.get("metadata", {}).get("tags", []) or any(defines(c.get("source", ""), n) for n in names)
    }  # fmt: skip
    keep = needed_cells([c.get("source", "") for c in code], seeds)
    for i, cell in enumerate(code):
        if i not in keep:
            cell.source = SKIPPED


# --------------------------------------------------------------------------------------------
# The pytest plugin, inside the sandbox: every cell's start and end, through an inherited fd
# --------------------------------------------------------------------------------------------


class KernelDied(RuntimeError):
    """The kernel process ended while a cell was running."""


def pytest_configure(config):
    fd = os.environ.get(RECORD_FD_ENV, "")
    if fd.isdigit() and not hasattr(config, "seeing_networks_records"):
        config.seeing_networks_records = os.fdopen(int(fd), "a", buffering=1)
        _notice_dead_kernels()


def _emit(config, record: dict) -> None:
    stream = getattr(config, "seeing_networks_records", None)
    if stream is not None:
        stream.write(json.dumps(record) + "\n")


MAX_OUTPUT_BYTES = 2_000_000  # per cell, in the executed notebook a student gets back


def _capped(outputs: list) -> list:
    """A cell's outputs as JSON-able dicts, or one line saying they were too large to keep."""
    try:
        text = json.dumps(outputs)
    except (TypeError, ValueError):
        return [{"output_type": "stream", "name": "stdout", "text": "(the outputs of this cell could not be kept)\n"}]
    if len(text) > MAX_OUTPUT_BYTES:
        return [{"output_type": "stream", "name": "stdout", "text": f"(outputs of {len(text)} bytes not kept)\n"}]
    return json.loads(text)


def _notice_dead_kernels() -> None:
    """Make nbval's wait for a cell's reply give up as soon as the kernel process is gone."""
    from queue import Empty

    from nbval.kernel import RunningKernel

    if getattr(RunningKernel.await_reply, "notices_death", False):
        return
    wait = RunningKernel.await_reply

    def await_reply(self, msg_id, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 0.5 if deadline is None else max(0.01, min(0.5, deadline - time.monotonic()))
            try:
                return wait(self, msg_id, timeout=step)
            except Empty:
                if not self.is_alive():
                    raise KernelDied("the kernel died while this cell ran") from None
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    await_reply.notices_death = True
    RunningKernel.await_reply = await_reply


def pytest_runtest_setup(item):
    if hasattr(item, "cell_num"):
        _emit(item.config, {"cell": int(item.cell_num), "event": "start"})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if hasattr(item, "cell_num") and call.when == "call":
        errors = [o for o in (getattr(item, "test_outputs", None) or []) if o.get("output_type") == "error"]
        excinfo = call.excinfo
        died = excinfo is not None and (excinfo.errisinstance(KernelDied) or "Kernel dead" in str(excinfo.value))
        _emit(
            item.config,
            {
                "cell": int(item.cell_num), "event": "end", "outcome": report.outcome, "died": bool(died),
                "outputs": _capped(list(getattr(item, "test_outputs", None) or [])),
                "timed_out": bool(getattr(item.parent, "timed_out", False)), "duration": float(report.duration),
                "ename": errors[-1].get("ename", "") if errors else (excinfo.typename if excinfo else ""),
                "evalue": one_line(errors[-1].get("evalue", "") if errors else (str(excinfo.value) if excinfo else ""), 300),
            },
        )  # fmt: skip
    return report


# --------------------------------------------------------------------------------------------
# Running one notebook in its sandbox
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """What came back from one sandboxed notebook."""

    cells: dict[int, dict] = field(default_factory=dict)  # nbval cell number -> {"start": .., "end": ..}
    answers: dict[str, dict | str] = field(default_factory=dict)  # exercise -> record, or why it is unreadable
    summary: dict = field(default_factory=dict)  # the sandbox runner's last line
    log: str = ""
    seconds: float = 0.0


def executed_notebook(prepared, labels: list[str], run: Run):
    """The notebook as it ran, for the student: each code cell with its outputs, the grader's cells left out."""
    import copy

    import nbformat

    nb = copy.deepcopy(prepared)
    cells, number = [], 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        if not labels[number].startswith("cell "):  # a recording cell
            number += 1
            continue
        ran = run.cells.get(number, {}).get("end")
        cell.outputs = [nbformat.from_dict(o) for o in (ran or {}).get("outputs", []) if isinstance(o, dict) and "output_type" in o]
        cell.execution_count = int(labels[number].split()[1]) if ran else None
        cells.append(cell)
        number += 1
    nb.cells = cells
    return nb


def sandbox_env(folder: Path, threads: int) -> dict:
    """The whole environment of a sandboxed notebook: nothing of the grader's own is passed on."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(folder), "TMPDIR": str(folder / "tmp"), "LANG": "C.UTF-8",
        "IPYTHONDIR": str(folder / ".ipython"), "MPLCONFIGDIR": str(folder / ".matplotlib"),
        "JUPYTER_CONFIG_DIR": str(folder / ".jupyter"), "JUPYTER_DATA_DIR": str(folder / ".jupyter" / "data"),
        "JUPYTER_RUNTIME_DIR": str(folder / ".jupyter" / "runtime"), "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONSAFEPATH": "1", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "SEEING_NETWORKS_OFFLINE": "1",
    }  # fmt: skip
    for key, value in os.environ.items():
        if key.startswith("SEEING_NETWORKS_") and key != RECORD_FD_ENV or key == "CUDA_VISIBLE_DEVICES":
            env.setdefault(key, value)
    return env


#: Run in the kernel before any cell: the course comes from its installed place, never the folder.
KERNEL_STARTUP = """\
import os as _os, sys as _sys
_sys.path[:] = [_p for _p in _sys.path if _p not in ("", ".", _os.getcwd())]
import helpers  # noqa: E402,F401
del _os, _sys
"""


def make_sandbox(root: Path, nb, as_root: bool) -> Path:
    """A fresh folder holding only the prepared notebook and the kernel's start-up file."""
    import nbformat

    folder = Path(tempfile.mkdtemp(prefix="sandbox-", dir=root))
    for sub in ("tmp", ".matplotlib", ANSWERS, ".ipython/profile_default/startup", ".jupyter/runtime"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / ".ipython/profile_default/startup/00-seeing-networks.py").write_text(KERNEL_STARTUP)
    (folder / "pytest.ini").write_text("[pytest]\naddopts =\n")
    (folder / NOTEBOOK_FILE).write_text(nbformat.writes(nb))
    if as_root:
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, SANDBOX_UID, SANDBOX_GID, follow_symlinks=False)
    folder.chmod(0o700)
    return folder


def run_notebook(nb, root: Path, timeout: float, limit: float, threads: int, procs: "Runners") -> Run:
    """Run a prepared notebook under nbval in a sandbox of its own; return cells, answers and timing."""
    as_root = os.geteuid() == 0
    folder = make_sandbox(root, nb, as_root)
    records_path = root / f"{folder.name}.cells.jsonl"
    run = Run()
    started = time.monotonic()
    try:
        with records_path.open("w") as records:
            os.set_inheritable(records.fileno(), True)
            env = sandbox_env(folder, threads)
            env[RECORD_FD_ENV] = str(records.fileno())
            pytest_command = [
                sys.executable, "-m", "pytest", "-c", str(folder / "pytest.ini"), "--rootdir", str(folder),
                "--noconftest", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "helpers.grade",
                "--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={timeout:g}", "-q", "--color=no", NOTEBOOK_FILE,
            ]  # fmt: skip
            command = [
                sys.executable, "-m", "helpers.sandbox", "--limit", f"{limit:g}", "--folder", str(folder),
                "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--parent", str(os.getpid()), "--", *pytest_command,
            ]  # fmt: skip
            output = procs.run(command, env=env, pass_fds=[records.fileno()], cwd=root)
        run.seconds = time.monotonic() - started
        lines = output.strip().splitlines()
        try:
            run.summary = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            run.summary = {}
        run.log = "\n".join(lines[-30:])
        run.cells = read_cell_records(records_path)
        run.answers = read_answers(folder / ANSWERS)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        records_path.unlink(missing_ok=True)
    return run


def read_cell_records(path: Path) -> dict[int, dict]:
    """{nbval cell number: {"start": record, "end": record}} from the plugin's lines (odd lines skipped)."""
    cells: dict[int, dict] = {}
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
            cells.setdefault(int(record["cell"]), {})[str(record["event"])] = record
        except (ValueError, KeyError, TypeError):
            continue
    return cells


def read_answers(folder: Path) -> dict[str, dict | str]:
    """{exercise: record} from the answer files, or {exercise: why it could not be read}."""
    from helpers.exercises.answers import read_answer_file

    answers: dict[str, dict | str] = {}
    try:
        entries = sorted(os.listdir(folder))[:500]
    except OSError:
        return answers
    for entry in entries:
        if not entry.endswith(".json") or entry.startswith("."):
            continue
        try:
            answers[entry[:-5]] = read_answer_file(folder / entry)
        except (ValueError, OSError) as error:
            answers[entry[:-5]] = str(error)
    return answers


class Runners:
    """The sandbox processes running now, so that stopping the grader stops them (and their trees)."""

    def __init__(self):
        self.lock, self.live, self.stopping = threading.Lock(), set(), False

    def run(self, command: list[str], env: dict, pass_fds: list[int], cwd: Path) -> str:
        with self.lock:
            if self.stopping:
                return ""
            process = subprocess.Popen(
                command, env=env, pass_fds=pass_fds, cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True, errors="replace",
            )  # fmt: skip
            self.live.add(process)
        try:
            output, _ = process.communicate()
        finally:
            with self.lock:
                self.live.discard(process)
        return output

    def stop_all(self) -> None:
        with self.lock:
            self.stopping = True
            live = list(self.live)
        for process in live:
            try:
                process.send_signal(signal.SIGTERM)  # the runner kills its tree, then exits
            except ProcessLookupError:
                pass
        for process in live:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


# --------------------------------------------------------------------------------------------
# From what came back to one row per exercise
# --------------------------------------------------------------------------------------------


def verdicts(sub: Submission, exercises: list, run: Run, labels: list[str], seed: int, timeout: float, limit: float) -> list[Result]:
    """One row per exercise the course registers for the notebook, judged in this process."""

    def row(name: str, passed: bool, status: str, detail: str = "") -> Result:
        return Result(sub.student, sub.notebook, name, passed, status, one_line(detail, 300), str(sub.path))

    rows = []
    for exercise in exercises:
        answer = run.answers.get(exercise.name)
        if isinstance(answer, dict):
            verdict = exercise.judge(answer, seed=seed)
            rows.append(row(exercise.name, verdict.passed, verdict.status, verdict.message))
        elif isinstance(answer, str):
            rows.append(row(exercise.name, False, "error", f"the recorded answer could not be read: {answer}"))
        else:
            rows.append(row(exercise.name, False, *why_not_recorded(exercise.name, run, labels, timeout, limit)))
    return rows


def why_not_recorded(name: str, run: Run, labels: list[str], timeout: float, limit: float) -> tuple[str, str]:
    """(status, detail) for an exercise whose answer never came back: the first cell that went wrong."""
    export = labels.index(name) if name in labels else len(labels)
    timed_out = [n for n, cell in sorted(run.cells.items()) if cell.get("end", {}).get("timed_out")]
    returncode = run.summary.get("returncode")
    for number in range(export + 1):
        cell = run.cells.get(number, {})
        end, where = cell.get("end"), labels[number] if number < len(labels) else f"cell {number + 1}"
        if end and end.get("died"):
            return "kernel died", f"the kernel died in {where} (noticed after {end.get('duration', 0):.1f} s)"
        if timed_out and number == timed_out[0]:
            return "timed out", f"{where} ran past the per-cell timeout of {timeout:g} s"
        if "start" in cell and end is None:
            if run.summary.get("timed_out"):
                return "timed out", f"the notebook ran past its limit of {limit:g} s in {where}"
            if isinstance(returncode, int) and returncode < 0:
                return "not run", f"the notebook's grading process was killed (signal {-returncode}) in {where}"
            return "not run", f"grading of this notebook stopped in {where}"
        if number == export and end is not None:
            why = f"{end.get('ename')}: {end.get('evalue')}" if end.get("ename") else "it wrote no answer (did the notebook change how cells run?)"
            return "error", f"the grader's recording cell failed: {why}"
    if run.summary.get("timed_out"):
        return "timed out", f"the notebook ran past its limit of {limit:g} s"
    tail = one_line(run.log.splitlines()[-1] if run.log.strip() else "no output", 200)
    return "not run", f"the notebook did not run this far ({tail})"


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def format_table(results: list[Result], seconds: dict[str, float] | None = None) -> str:
    """A Markdown table: one row per exercise, a total row per student and notebook, a grand total."""
    seconds = seconds or {}
    lines = ["| student | notebook | exercise | result | detail |", "|---|---|---|---|---|"]
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.student, r.notebook, r.path), []).append(r)
    per_student: dict[str, list[int]] = {}
    for (student, notebook, path), rows in groups.items():
        for r in rows:
            mark = "✓ passed" if r.passed else f"✗ {r.status}"
            lines.append(f"| {student} | {notebook} | {r.exercise} | {mark} | {r.detail.replace('|', '/')} |")
        got = sum(r.passed for r in rows if r.exercise != "-")
        of = sum(1 for r in rows if r.exercise != "-")
        took = f" in {seconds[path]:.0f} s" if path in seconds else ""
        lines.append(f"| **{student}** | **{notebook}** | **total** | **{got}/{of}** | {Path(path).name}{took} |")
        tally = per_student.setdefault(student, [0, 0])
        tally[0] += got
        tally[1] += of
    lines += ["", "| student | exercises passed |", "|---|---|"]
    for student, (got, of) in per_student.items():
        lines.append(f"| {student} | {got}/{of} |")
    seen = [status for status in STATUSES if status != "passed" and any(r.status == status for r in results)]
    if seen:
        lines += ["", "Failing results: " + "; ".join(f"{status}: {STATUSES[status]}" for status in seen) + "."]
    return "\n".join(lines)


def write_csv(results: list[Result], path: str | Path) -> None:
    """One line per exercise: student, notebook, exercise, passed (1/0), status, detail, path."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["student", "notebook", "exercise", "passed", "status", "detail", "path"])
        writer.writeheader()
        for r in results:
            writer.writerow({**asdict(r), "passed": int(r.passed)})


def read_results(path: Path) -> dict[tuple[str, str], dict]:
    """{(path, sha256): line} of a results file written by an earlier run (unreadable lines skipped)."""
    done = {}
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                done[(entry["path"], entry["sha256"])] = entry
            except (ValueError, KeyError, TypeError):
                continue
    return done


# --------------------------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------------------------


def check_sandbox_can_start(root: Path) -> None:
    """As root, the kernels run as an unprivileged user: make sure that user can run this Python."""
    if os.geteuid() != 0:
        return
    probe = subprocess.run(
        [sys.executable, "-c", "import helpers.exercises.answers, nbval, ipykernel"],
        user=SANDBOX_UID, group=SANDBOX_GID, extra_groups=[], cwd=root, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(root), "PYTHONSAFEPATH": "1"},
    )  # fmt: skip
    if probe.returncode != 0:
        denied = one_line(probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "permission denied", 200)
        raise PermissionError(
            f"grading as root runs the kernels as uid {SANDBOX_UID}, which cannot run {sys.executable} ({denied}). "
            "Grade as an ordinary user, or make the Python environment and the course readable by others "
            "(for a Python under /root: chmod o+x /root)."
        )


@dataclass
class Outcome:
    """Everything one grading run produced, for the outputs (tables, gradebooks, feedback)."""

    results: list[Result]
    seconds: dict[str, float]
    superseded: list = field(default_factory=list)  # files a later one replaced (classbook.Entry)
    executed: dict[str, object] = field(default_factory=dict)  # path -> the notebook as it ran
    meta: dict = field(default_factory=dict)


def grade(paths: list[str | Path], **options) -> tuple[list[Result], dict[str, float], int]:
    """Grade every notebook under `paths`; return (results, seconds per notebook path, 0).

    The short form of `grade_class`, which takes the same keyword arguments.
    """
    outcome = grade_class(paths, **options)
    return outcome.results, outcome.seconds, 0


def grade_class(
    paths: list[str | Path],
    timeout: float = DEFAULT_TIMEOUT,
    workers: int | None = None,
    out=None,
    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT,
    results_file: str | Path | None = None,
    resume: bool = False,
    seed: int | None = None,
    exercise_modules: dict[str, str] | None = None,
    shard: tuple[int, int] | None = None,
    roster: list | None = None,
    keep_executed: bool = False,
    skip: bool = True,
) -> Outcome:
    """Grade every notebook under `paths` (one per student and notebook: the latest file).

    `shard` (k, n) grades only slice k of n (`classbook.shard`); `roster` (classbook.Student list) adds
    a "not submitted" row for each student with no notebook; `results_file` gets one JSON line per
    notebook as it finishes, and with `resume` the notebooks already in it are not graded again;
    `keep_executed` keeps each notebook as it ran (for feedback); `skip` leaves out the cells tagged
    `grader-skip`. Raises FileNotFoundError for a missing
    path, ValueError when no notebook is found or an argument is out of range, PermissionError when
    the sandbox user cannot run this Python (root only).
    """
    from tqdm.auto import tqdm

    from helpers import classbook

    out = out or sys.stdout

    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if not isinstance(notebook_timeout, (int, float)) or notebook_timeout <= 0:
        raise ValueError(f"notebook_timeout must be a positive number of seconds, got {notebook_timeout!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if resume and results_file is None:
        raise ValueError("resume needs results_file, the file an earlier run wrote")
    found, superseded = find_class(paths)
    if shard is not None:
        found = [s for s in found if s.entry in classbook.shard([s.entry for s in found], *shard)]
    if not found and not roster:
        raise ValueError(f"paths must hold at least one .ipynb notebook, got {[str(p) for p in paths]}")
    subs = [read_submission(s) for s in found]
    meta = classbook.course_meta(timeout)
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    results_path = Path(results_file) if results_file else None
    if results_path:
        results_path.parent.mkdir(parents=True, exist_ok=True)
    done = read_results(results_path) if resume and results_path else {}
    todo = [s for s in subs if (str(s.path), s.sha256) not in done]
    distinct = list({str(s.path): s for s in todo}.values())  # a group's one file is graded once
    workers = workers or max(1, min(os.cpu_count() or 1, len(distinct) or 1))
    threads = max(1, min(2, (os.cpu_count() or 1) // workers))  # one or two per kernel: never more kernels' threads than cores
    print(f"Grading {len(distinct)} notebook(s) with {workers} worker(s) of {threads} thread(s), at most {timeout:g} s "
          f"per cell and {notebook_timeout:g} s per notebook" + (f"; {len(subs) - len(todo)} already graded" if done else "") + ".", file=out, flush=True)  # fmt: skip
    outcome = Outcome([], {}, superseded, meta=meta)
    graded: dict[str, list[Result]] = {}
    for s in subs:
        if (str(s.path), s.sha256) in done:
            graded[str(s.path)] = [Result(**row) for row in done[(str(s.path), s.sha256)]["rows"]]
    lock, procs = threading.Lock(), Runners()

    def one(sub: Submission) -> list[Result]:
        exercises = course_exercises(sub.notebook, exercise_modules) if not sub.problem else []
        if sub.problem or not exercises:
            names = [e.name for e in exercises] or ["-"]
            status, detail = (sub.problem, sub.detail) if sub.problem else ("no exercises", f"the course has no exercises for {sub.notebook!r}")
            rows = [Result(sub.student, sub.notebook, name, False, status, detail, str(sub.path)) for name in names]
        else:
            module = exercise_module(sub.notebook, exercise_modules)
            nb, labels = prepare(sub.nb, sub.notebook, [e.name for e in exercises], seed, module, skip)
            run = run_notebook(nb, root, timeout, notebook_timeout, threads, procs)
            rows = verdicts(sub, exercises, run, labels, seed, timeout, notebook_timeout)
            outcome.seconds[str(sub.path)] = run.seconds
            if keep_executed:
                outcome.executed[str(sub.path)] = executed_notebook(nb, labels, run)
        with lock:
            if results_path and not procs.stopping:
                with results_path.open("a") as f:
                    line = {"path": str(sub.path), "sha256": sub.sha256, "seed": seed, "meta": meta, "rows": [asdict(r) for r in rows]}
                    f.write(json.dumps(line) + "\n")
        return rows

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="seeing-networks-grade-") as tmp:
        root = Path(tmp)
        root.chmod(0o711)  # the sandbox user may pass through to its own folder, and list nothing
        if any(not s.problem for s in distinct):
            check_sandbox_can_start(root)
        previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        try:
            futures = {pool.submit(one, s): s for s in distinct}
            bar = tqdm(concurrent.futures.as_completed(futures), total=len(futures), desc="grading", unit="notebook", file=sys.stderr)
            for future in bar:
                sub = futures[future]
                graded[str(sub.path)] = future.result()
                got = sum(r.passed for r in graded[str(sub.path)])
                bar.write(f"  graded {sub.student}/{sub.path.name}: {got}/{len(graded[str(sub.path)])}", file=out)
        except KeyboardInterrupt:
            print("\ngrading stopped: stopping every notebook still running", file=out, flush=True)
            procs.stop_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    for s in subs:  # every student of a group submission gets the group's rows
        outcome.results += [Result(**{**asdict(r), "student": s.student}) for r in graded.get(str(s.path), [])]
    for student in classbook.missing_students(roster or [], [s.entry for s in subs]):
        outcome.results.append(Result(student.id, "-", "-", False, "not submitted", "", ""))
    print(summary_line(outcome.results, superseded, time.monotonic() - started), file=out, flush=True)
    return outcome


def summary_line(results: list[Result], superseded: list, seconds: float) -> str:
    """One line: how many notebooks were graded, not submitted, failed to run, replaced, and the time."""
    notebooks = {(r.student, r.path) for r in results if r.path}
    failed = {(r.student, r.path) for r in results if r.path and r.status in ("invalid notebook", "empty notebook", "not run", "timed out", "kernel died")}
    missing = {r.student for r in results if r.status == "not submitted"}
    students = {r.student for r in results}
    line = (f"Graded {len(notebooks)} notebook(s) of {len(students)} student(s) in {seconds:.0f} s: "
            f"{len(notebooks) - len(failed)} ran, {len(failed)} failed to run or finish, {len(missing)} not submitted")  # fmt: skip
    if superseded:
        line += f"; {len(superseded)} older file(s) not graded: " + ", ".join(str(e.path.name) for e in superseded[:5])
        line += " ..." if len(superseded) > 5 else ""
    return line + "."


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def parse_modules(pairs: list[str]) -> dict[str, str]:
    modules = {}
    for pair in pairs:
        notebook, sep, module = pair.partition("=")
        if not sep or not notebook or not module:
            raise ValueError(f"--exercises must be NOTEBOOK=MODULE, got {pair!r}")
        modules[notebook] = module
    return modules


def course_points_of(results: list[Result]) -> dict[tuple[str, str], float]:
    """{(notebook, exercise): points} of the course notebooks the results name, in course order."""
    from helpers import classbook

    named = {r.notebook for r in results}
    return classbook.course_points([nb for nb in known_notebooks() if nb in named])


def write_outputs(outcome: Outcome, args) -> None:
    """The CSV, gradebook and feedback files the command line asked for."""
    from helpers import classbook

    roster = classbook.read_roster(args.roster) if args.roster else None
    points = course_points_of(outcome.results)
    rows = [asdict(r) for r in outcome.results]
    for wanted in (args.csv, args.gradebook):
        if wanted:
            Path(wanted).parent.mkdir(parents=True, exist_ok=True)
    if args.csv:
        write_csv(outcome.results, args.csv)
        print(f"wrote {args.csv}")
    if args.gradebook:  # (the gradebook adds the roster's missing students itself)
        handed_in = [r for r in rows if r["status"] != "not submitted"]
        for path in classbook.write_gradebook(args.gradebook, handed_in, points, roster=roster, fmt=args.format, meta=outcome.meta):
            print(f"wrote {path}")
    if args.feedback:
        folder = Path(args.feedback)
        for student in dict.fromkeys(r.student for r in outcome.results if r.status != "not submitted"):
            mine = [r for r in rows if r["student"] == student]
            into = folder / safe_name(student)
            into.mkdir(parents=True, exist_ok=True)
            (into / "feedback.html").write_text(classbook.feedback_html(student, mine, points, outcome.meta), encoding="utf-8")
            (into / "results.json").write_text(json.dumps(classbook.gradescope_results(mine, points, outcome.meta), indent=1))
            for path in {r["path"] for r in mine if r["path"] in outcome.executed}:
                import nbformat

                nbformat.write(outcome.executed[path], into / f"{safe_name(next(r['notebook'] for r in mine if r['path'] == path))}.ipynb")
        print(f"wrote feedback for {len({r.student for r in outcome.results if r.status != 'not submitted'})} student(s) in {folder}")


def safe_name(text: str) -> str:
    """A file name made of `text`'s letters, digits, '-', '_' and '.' only (never a path)."""
    name = re.sub(r"[^\w.-]+", "_", str(text)).strip("._") or "unnamed"
    return name[:100]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["merge"]:
        return merge_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m helpers.grade",
        description="Grade submitted notebooks, each in its own sandbox: one row per student, notebook and exercise. "
        "`python -m helpers.grade merge RESULTS...` combines the --results files of several shards.",
    )
    parser.add_argument("paths", nargs="+", help="notebooks, or folders searched for notebooks (Canvas, Gradescope, a folder per student)")
    add_output_options(parser)
    parser.add_argument("--results", help="append one JSON line per graded notebook to this file, as each finishes")
    parser.add_argument("--resume", action="store_true", help="skip notebooks already in --results (same file content)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help=f"seconds per cell (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--notebook-timeout", type=float, default=DEFAULT_NOTEBOOK_TIMEOUT,
                        help=f"seconds per notebook, enforced with a kill (default {DEFAULT_NOTEBOOK_TIMEOUT})")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, help="notebooks graded at once (default: one per core)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the hidden cases (default: a fresh secret one)")
    parser.add_argument("--run-all", action="store_true", help=f"also run the cells tagged {SKIP_TAG} (trainings no check needs)")
    parser.add_argument("--shard", help="grade only slice K of N of the submissions, as K/N (K from 0)")
    parser.add_argument("--shard-from-env", action="store_true",
                        help="take the slice from SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX (+ SEEING_NETWORKS_SHARDS)")  # fmt: skip
    parser.add_argument("--exercises", action="append", default=[], metavar="NOTEBOOK=MODULE",
                        help="grade NOTEBOOK with the exercises of MODULE (for notebooks outside helpers.exercises)")  # fmt: skip
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        from helpers import classbook

        shard = classbook.parse_shard(args.shard) if args.shard else classbook.shard_from_env() if args.shard_from_env else None
        if args.shard_from_env and shard is None:
            raise ValueError("--shard-from-env found no SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or SEEING_NETWORKS_SHARD")
        roster = classbook.read_roster(args.roster) if args.roster else None
        outcome = grade_class(
            args.paths, timeout=args.timeout, workers=args.workers, notebook_timeout=args.notebook_timeout,
            results_file=args.results, resume=args.resume, seed=args.seed, exercise_modules=parse_modules(args.exercises),
            shard=shard, roster=roster, keep_executed=bool(args.feedback), skip=not args.run_all,
        )  # fmt: skip
    except (FileNotFoundError, ValueError, TypeError, PermissionError) as error:
        print(f"python -m helpers.grade: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("python -m helpers.grade: stopped; nothing is left running", file=sys.stderr)
        return 130
    print()
    print(format_table(outcome.results, outcome.seconds))
    print(f"\n{len({r.path for r in outcome.results if r.path})} notebook(s) in {time.monotonic() - started:.0f} s")
    write_outputs(outcome, args)
    return 0


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", help="write one row per student, notebook and exercise to this CSV file")
    parser.add_argument("--gradebook", help="write one row per student (points per exercise and notebook, total, maximum, %%)")
    parser.add_argument("--format", choices=["plain", "canvas"], default="plain", help="--gradebook's format (canvas: its import CSV)")
    parser.add_argument("--roster", help="CSV of id, name, email: students with no notebook get 0 and 'not submitted'")
    parser.add_argument("--feedback", help="folder for each student's feedback: feedback.html, results.json (Gradescope) and the executed notebooks")


def merge_main(argv: list[str]) -> int:
    """`python -m helpers.grade merge RESULTS... [--csv] [--gradebook] [--format] [--roster] [--feedback]`."""
    from helpers import classbook

    parser = argparse.ArgumentParser(prog="python -m helpers.grade merge", description="Combine the --results files of several shards.")
    parser.add_argument("results", nargs="+", help="--results files written by the shards")
    add_output_options(parser)
    args = parser.parse_args(argv)
    try:
        rows = classbook.merge(args.results)
    except (FileNotFoundError, ValueError, TypeError) as error:
        print(f"python -m helpers.grade merge: {error}", file=sys.stderr)
        return 2
    results = [Result(**{k: row[k] for k in Result.__dataclass_fields__}) for row in rows]
    outcome = Outcome(results, {}, meta=rows.meta or classbook.course_meta(None))
    if args.roster:
        roster = classbook.read_roster(args.roster)
        found = {getattr(classbook.find_student(roster, r.student), "id", None) for r in results}
        outcome.results += [Result(s.id, "-", "-", False, "not submitted", "", "") for s in roster if s.id not in found]
    print(format_table(outcome.results))
    print(f"\nmerged {rows.notebooks} notebook(s) from {len(args.results)} file(s); {rows.skipped} unreadable line(s) skipped")
    write_outputs(outcome, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
