"""The sandbox runner (`python -m helpers.sandbox`) on its own: what a confined command can and cannot do.

Each test runs a small Python script as the confined command and reads what it reports; the
grader's own tests (tests/test_grade.py) then attack it through real notebooks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from helpers import sandbox

LINUX = sys.platform.startswith("linux")
pytestmark = pytest.mark.skipif(not LINUX, reason="the sandbox's guarantees are Linux's (subreaper, Landlock)")

PROBE = r"""
import json, os, signal, sys
report = {"uid": os.getuid()}
def attempt(name, action):
    try:
        action()
        report[name] = "allowed"
    except OSError as error:
        report[name] = f"denied ({error.errno})"
attempt("write own folder", lambda: open("mine.txt", "w").write("ok"))
attempt("write outside", lambda: open(sys.argv[1], "w").write("escaped"))
attempt("read outside", lambda: open(sys.argv[2]).read())
attempt("write the course", lambda: open(sys.argv[3], "a").write("# planted"))
attempt("signal the runner", lambda: os.kill(os.getppid(), 0))
import helpers
report["helpers from"] = helpers.__file__
print(json.dumps(report))
"""


def run_confined(tmp_path: Path, script: str, *args: str, limit: float = 60, uid: int | None = None, read: tuple[str, ...] = ()) -> tuple[dict, str]:
    folder = tmp_path / "box"
    if uid is not None and os.geteuid() == 0:  # the user must be able to pass through to its folder
        folder = Path(tempfile.mkdtemp(prefix="seeing-networks-test-"))
        folder.chmod(0o711)
        folder = folder / "box"
    folder.mkdir(exist_ok=True)
    if uid is not None and os.geteuid() == 0:
        os.chown(folder, uid, uid)
    (folder / "probe.py").write_text(script)
    command = [sys.executable, "-m", "helpers.sandbox", "--limit", str(limit), "--folder", str(folder)]
    if uid is not None:
        command += ["--uid", str(uid), "--gid", str(uid)]
    for path in read:
        command += ["--read", path]
    try:
        done = subprocess.run(command + ["--", sys.executable, "probe.py", *args], capture_output=True, text=True, timeout=limit + 60)
    finally:
        if folder.parent != tmp_path:
            shutil.rmtree(folder.parent, ignore_errors=True)
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]), "\n".join(lines[:-1]) + done.stderr


def processes_with(marker: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline and "pgrep" not in cmdline:
                found.append(cmdline)
    return found


@pytest.fixture
def outside(tmp_path):
    secret = tmp_path / "grader-secret.txt"
    secret.write_text("the grader's records")
    return {"write": str(tmp_path / "escaped.txt"), "read": str(secret)}


@pytest.mark.skipif(sandbox.landlock_abi() == 0, reason="this kernel has no Landlock")
def test_a_confined_command_writes_only_its_folder_and_reaches_nothing_outside(tmp_path, outside):
    course_file = Path(sandbox.__file__)
    before = course_file.read_bytes()
    summary, output = run_confined(tmp_path, PROBE, outside["write"], outside["read"], str(course_file))
    report = json.loads(output.strip().splitlines()[0])
    assert summary["returncode"] == 0 and summary["landlock"] >= 1, (summary, output)
    assert report["write own folder"] == "allowed"
    private_tmp = summary["protections"]["shared storage"] == "private"  # /tmp is a tmpfs of its own, gone after
    assert (report["write outside"].startswith("denied") or private_tmp) and not Path(outside["write"]).exists()
    assert report["read outside"].startswith("denied")
    assert report["write the course"].startswith("denied") and course_file.read_bytes() == before
    if summary["landlock"] >= 6:
        assert report["signal the runner"].startswith("denied")
    assert report["helpers from"] == str(Path(sandbox.__file__).parent / "__init__.py")


@pytest.mark.skipif(sandbox.landlock_abi() == 0, reason="this kernel has no Landlock")
def test_a_readable_path_under_tmp_stays_read_only(tmp_path):
    """A course or a Python kept under /tmp comes back into the sandbox's private /tmp, where the command
    may write: it must come back read-only. (A checkout under /tmp let the command append to the course.)"""
    shared = Path(tempfile.mkdtemp(prefix="seeing-networks-shared-", dir="/tmp"))
    try:
        course = shared / "course.py"
        course.write_text("print('the course')\n")
        probe = (
            "import sys\ntry:\n    open(sys.argv[1], 'a').write('# planted')\n    print('allowed')\n"
            "except OSError as error:\n    print(f'denied ({error.errno})')\nprint(open(sys.argv[1]).read().strip())"
        )
        summary, output = run_confined(tmp_path, probe, str(course), read=(str(shared),))
        assert summary["returncode"] == 0, output
        lines = output.splitlines()
        assert lines[0].startswith("denied") and lines[1] == "print('the course')", output  # it may read it, not write it
        assert course.read_text() == "print('the course')\n"
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="only a grader running as root changes the user")
def test_as_root_the_command_runs_as_an_unprivileged_user(tmp_path, outside):
    summary, output = run_confined(tmp_path, PROBE, outside["write"], outside["read"], "/etc/hostname", uid=65534)
    report = json.loads(output.strip().splitlines()[0])
    assert summary["returncode"] == 0, output
    assert report["uid"] == 65534


def test_detached_children_are_killed_when_the_command_ends(tmp_path):
    marker = f"seeing-networks-orphan-{uuid.uuid4().hex}"
    script = f"""
import os, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{marker}"], start_new_session=True)
if os.fork() == 0:  # a double fork: the grandchild is orphaned at once
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "{marker}"])
    os._exit(0)
print("started")
"""
    summary, output = run_confined(tmp_path, script)
    assert summary["returncode"] == 0 and "started" in output
    assert processes_with(marker) == []


def test_the_wall_clock_limit_kills_a_command_that_ignores_interrupts(tmp_path):
    marker = f"seeing-networks-stubborn-{uuid.uuid4().hex}"
    script = f"""
import signal, subprocess, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{marker}"])
while True:
    pass
"""
    summary, _ = run_confined(tmp_path, script, limit=3)
    assert summary["timed_out"] is True and summary["seconds"] < 15
    assert summary["cap"] == "time" and summary["signal"] == 9
    assert processes_with(marker) == []


def test_the_runner_takes_its_tree_down_when_it_is_stopped(tmp_path):
    marker = f"seeing-networks-stopped-{uuid.uuid4().hex}"
    folder = tmp_path / "box"
    folder.mkdir()
    (folder / "probe.py").write_text(
        f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{marker}'])\n"
        "print('ready', flush=True)\ntime.sleep(600)\n"
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "helpers.sandbox", "--limit", "600", "--folder", str(folder), "--", sys.executable, "probe.py"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with(marker), "the confined command never started its child"
    runner.terminate()  # what the grader does when it is stopped (and what PDEATHSIG does if it is killed)
    runner.wait(timeout=30)
    assert processes_with(marker) == []
    places = []
    for controller in ("memory", "pids"):
        try:
            places.append(sandbox.Cgroups._place(controller))  # where the runner, our child, made its own
        except (OSError, ValueError):
            continue
    leftovers = [place for place in places if (place / f"seeing-networks-{runner.pid}").exists()]
    assert leftovers == [], "the runner's cgroups outlived it"


# --------------------------------------------------------------------------------------------
# Reading a sandbox's files back, as the grader does
# --------------------------------------------------------------------------------------------


def test_read_file_from_sandbox_reads_a_plain_file_up_to_its_cap(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "answer.json").write_bytes(b"12345")
    assert sandbox.read_file_from_sandbox(tmp_path, "sub/answer.json", 5) == b"12345"
    with pytest.raises(OSError, match="more than 4 bytes"):
        sandbox.read_file_from_sandbox(tmp_path, "sub/answer.json", 4)


def test_read_file_from_sandbox_follows_no_link_anywhere_on_the_path(tmp_path):
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "grades.csv").write_text("the grader's records")
    folder = tmp_path / "box"
    folder.mkdir()
    (folder / "file-link").symlink_to(secret / "grades.csv")
    (folder / "dir-link").symlink_to(secret)
    os.link(secret / "grades.csv", folder / "hard-link")
    os.mkfifo(folder / "fifo")
    for relative in ("file-link", "dir-link/grades.csv", "hard-link", "fifo"):
        with pytest.raises(OSError):
            sandbox.read_file_from_sandbox(folder, relative, 1000)


@pytest.mark.parametrize("relative", ["../outside", "/etc/passwd", "", "a//b", "./a"])
def test_read_file_from_sandbox_refuses_a_path_that_is_not_plainly_inside(tmp_path, relative):
    with pytest.raises(ValueError, match="relative must be a plain relative path"):
        sandbox.read_file_from_sandbox(tmp_path, relative, 10)


def test_the_command_line_keeps_its_old_form_and_adds_caps_with_defaults(tmp_path):
    argv = sandbox.command_line(tmp_path, 30, uid=65534, memory=1 << 30, processes=64, read=["/opt/x"], no_namespaces=True)
    assert argv[1:3] == ["-m", "helpers.sandbox"] and argv[-1] == "--"
    assert argv[argv.index("--memory") + 1] == str(1 << 30) and argv[argv.index("--uid") + 1] == argv[argv.index("--gid") + 1] == "65534"
    assert "--no-namespaces" in argv and argv[argv.index("--read") + 1] == "/opt/x"
    assert sandbox.command_line(tmp_path, 30, uid="auto")[-3:] == ["--uid", "auto", "--"]
    assert sandbox._bytes("4G") == 4 << 30 and sandbox._bytes("512M") == 512 << 20 and sandbox._bytes("1000") == 1000
    with pytest.raises(Exception, match="expected a number of bytes"):
        sandbox._bytes("lots")


def test_the_summary_is_a_line_of_its_own_whatever_the_command_printed(tmp_path):
    script = "import sys\nsys.stdout.write('{\"returncode\": 0, \"cap\": null')\nsys.stdout.flush()\n"
    summary, output = run_confined(tmp_path, script)
    assert summary["returncode"] == 0 and "protections" in summary and output.startswith('{"returncode": 0')
