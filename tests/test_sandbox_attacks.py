"""The red team's attacks on the sandbox (issue 18), each as a tiny Python script run confined.

Where an attack aims at a classmate, an honest classmate runs in its own sandbox at the same time and
reports what it saw (a stranger on its port, its files untouched, its process alive). Each test runs
twice where it matters: with the namespaces the runner makes (as root, or in a user namespace), and
with `--no-namespaces`, the Landlock-and-rlimits fallback of a machine that allows no namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from helpers import sandbox

LINUX = sys.platform.startswith("linux")
ROOT = LINUX and os.geteuid() == 0
NOBODY = 65534
pytestmark = [
    pytest.mark.skipif(not LINUX, reason="the sandbox's guarantees are Linux's"),
    pytest.mark.skipif(LINUX and sandbox.landlock_abi() < 4, reason="these attacks need Landlock ABI 4+ (Linux 6.7+)"),
]
MODES = ["namespaces", "landlock only"]
REPO = sandbox.course_repository()  # the checkout (None for a site-packages install)

# Every attack script starts with this: `attempt(name, action)` records "allowed: ..." or "denied (errno)".
PRELUDE = r"""
import json, os, socket, sys, time
report = {}
def attempt(name, action):
    try:
        result = action()
        report[name] = "allowed" + ("" if result is None else f": {result!r}"[:200])
    except OSError as error:
        report[name] = f"denied ({error.errno})"
def done():
    print("REPORT " + json.dumps(report), flush=True)
"""


class Box:
    """One sandbox folder (owned by the sandbox user, 0700) in a grading root only it can pass through."""

    def __init__(self, root: Path, name: str, mode: str = "namespaces", runner_user: int | None = None, uid: int | str = NOBODY):
        self.folder = root / name
        self.folder.mkdir(mode=0o700)
        self.mode, self.runner_user, self.uid = mode, runner_user, uid
        if ROOT:
            os.chown(self.folder, NOBODY, NOBODY)
        self.process: subprocess.Popen | None = None

    def command(self, script: str, args: tuple, limit: float, options: tuple) -> list[str]:
        (self.folder / "attack.py").write_text(PRELUDE + script)
        as_root = ROOT and self.runner_user is None
        argv = sandbox.command_line(self.folder, limit, uid=self.uid if as_root else None, no_namespaces=self.mode != "namespaces")
        return argv[:-1] + list(options) + ["--", sys.executable, "attack.py", *map(str, args)]

    def start(self, script: str, *args, limit: float = 60, options: tuple = (), fds: tuple = ()) -> "Box":
        self.process = subprocess.Popen(
            self.command(script, args, limit, options), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=self.folder.parent, pass_fds=fds, **as_user(self.runner_user),
        )  # fmt: skip
        return self

    def finish(self, timeout: float = 120) -> tuple[dict, dict, str]:
        """(the runner's summary, the script's report, all output)."""
        output, _ = self.process.communicate(timeout=timeout)
        lines = output.strip().splitlines()
        report = next((json.loads(line[7:]) for line in lines if line.startswith("REPORT ")), {})
        return json.loads(lines[-1]), report, output

    def run(self, script: str, *args, **options) -> tuple[dict, dict, str]:
        return self.start(script, *args, **options).finish()

    def wait_for(self, name: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.folder / name).exists():
                return (self.folder / name).read_text()
            assert self.process.poll() is None, self.process.communicate()[0]
            time.sleep(0.1)
        raise AssertionError(f"the sandbox never wrote {name}")

    def tell(self, name: str, text: str = "") -> None:
        (self.folder / name).write_text(text)


def as_user(uid: int | None) -> dict:
    return {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}


@pytest.fixture
def root():
    """A grading root like the grader's: others may pass through (0711), list nothing."""
    path = Path(tempfile.mkdtemp(prefix="seeing-networks-attack-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def denied(value: str) -> bool:
    return value.startswith("denied")


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------

HONEST_SERVER = """
server = socket.socket()
attempt("bind", lambda: server.bind(("127.0.0.1", 0)))
if report["bind"] == "allowed":
    server.listen()
    attempt("own loopback", lambda: socket.create_connection(server.getsockname(), timeout=5).close())
    server.accept()[0].close()  # its own connection
    open("port", "w").write(str(server.getsockname()[1]))
else:
    open("port", "w").write("0")
abstract = socket.socket(socket.AF_UNIX)
abstract.bind("\\0" + sys.argv[1])
abstract.listen()
open("ready", "w").write("")
server.settimeout(0.2)
strangers = 0
while not os.path.exists("stop"):
    try:
        server.accept()[0].close()
        strangers += 1
    except OSError:
        pass
abstract.settimeout(0.1)
try:
    abstract.accept()
    strangers += 1
except OSError:
    pass
report["strangers"] = strangers
done()
"""

ATTACKER = """
port = int(sys.argv[1])
def connect(address, family=socket.AF_INET):
    with socket.socket(family) as s:
        s.settimeout(3)
        s.connect(address)
attempt("classmate's port", lambda: connect(("127.0.0.1", port or 1)))
attempt("the grader's loopback", lambda: connect(("127.0.0.1", int(sys.argv[2]))))
attempt("the internet", lambda: connect(("192.0.2.1", 80)))
attempt("classmate's abstract socket", lambda: connect("\\0" + sys.argv[3], socket.AF_UNIX))
attempt("listen", lambda: socket.socket().bind(("0.0.0.0", 0)))
done()
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_kernel_reaches_no_classmate_and_no_network(root, mode):
    honest, attacker = Box(root, "honest", mode), Box(root, "attacker", mode)
    name = f"seeing-networks-{uuid.uuid4().hex}"
    with socket.socket() as grader:  # a port of the grader's machine, on its loopback
        grader.bind(("127.0.0.1", 0))
        grader.listen()
        grader.settimeout(0.1)
        honest.start(HONEST_SERVER, name)
        honest.wait_for("ready")
        port = honest.wait_for("port")
        summary, report, output = attacker.run(ATTACKER, port, grader.getsockname()[1], name)
        honest.tell("stop")
        with pytest.raises(OSError):
            grader.accept()
    _, honest_report, honest_output = honest.finish()
    assert all(denied(report[k]) for k in report if k != "listen" or mode != "namespaces"), output
    assert honest_report["strangers"] == 0, honest_output
    if mode == "namespaces":
        assert summary["protections"]["network"] == "namespace"
        assert honest_report["own loopback"] == "allowed", honest_output  # a private loopback of its own
    else:
        assert summary["protections"]["network"] == "landlock (TCP)" and denied(honest_report["bind"])


def test_the_grader_talks_to_a_sandboxed_kernel_over_ipc_sockets(root):
    """How the grader runs a kernel (kernel_transport): ZMQ over Unix sockets in the folder, across
    the sandbox's namespaces, while the kernel itself can open no TCP connection."""
    from jupyter_client import BlockingKernelClient
    from jupyter_client.connect import write_connection_file

    box = Box(root, "kernel")
    transport = sandbox.kernel_transport(box.folder)
    connection, _ = write_connection_file(str(box.folder / "kernel.json"), **transport)
    if ROOT:
        os.chown(connection, NOBODY, NOBODY)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(box.folder), "IPYTHONDIR": str(box.folder / ".ipython"), "JUPYTER_PLATFORM_DIRS": "1",
           "JUPYTER_RUNTIME_DIR": str(box.folder), "MPLCONFIGDIR": str(box.folder)}  # fmt: skip
    argv = sandbox.command_line(box.folder, 60, uid=NOBODY if ROOT else None) + [sys.executable, "-m", "ipykernel_launcher", "-f", connection]
    runner = subprocess.Popen(argv, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = BlockingKernelClient(connection_file=connection)
    client.load_connection_file()
    client.start_channels(hb=False)  # a heartbeat's 1 s deadline is too short on a busy machine
    try:
        # Until the kernel has answered kernel_info and an iopub message has come through, the iopub
        # subscription may not be in place: outputs published before it are dropped, and the execute
        # below would wait for them in vain (seen once in a fresh-clone run).
        client.wait_for_ready(timeout=60)
        seen = []
        code = "import socket; print(socket.socket().connect_ex(('127.0.0.1', 1)) != 0, 6 * 7)"
        reply = client.execute_interactive(code, timeout=60, output_hook=lambda m: seen.append(m["content"].get("text", "")))
        assert reply["content"]["status"] == "ok" and "True 42" in "".join(seen)
        client.shutdown()
        output, _ = runner.communicate(timeout=60)
    finally:
        client.stop_channels()
        if runner.poll() is None:
            runner.terminate()  # the runner takes its tree with it
            print(runner.communicate(timeout=60)[0])
    assert json.loads(output.strip().splitlines()[-1])["returncode"] == 0


def test_kernel_sockets_are_in_a_random_sub_folder_the_folder_owner_owns(root):
    box = Box(root, "kernel")
    first, second = sandbox.kernel_transport(box.folder), sandbox.kernel_transport(box.folder)
    sockets = Path(first["ip"]).parent
    assert first["transport"] == "ipc" and sockets.parent == box.folder.resolve() and first["ip"] != second["ip"]
    assert len(sockets.name) == 16 and sockets.stat().st_uid == box.folder.stat().st_uid and sockets.stat().st_mode & 0o777 == 0o700
    with pytest.raises(ValueError, match="folder must have a path of at most"):
        sandbox.kernel_transport(box.folder / ("x" * 100))


# --------------------------------------------------------------------------------------------
# Classmates and shared storage
# --------------------------------------------------------------------------------------------

HONEST_WRITER = """
os.makedirs("answers", exist_ok=True)
open("answers/box_iou.json", "w").write("honest work")
attempt("own /dev/shm", lambda: open("/dev/shm/answers.json", "w").write("honest work"))
attempt("own /tmp", lambda: open("/tmp/answers.json", "w").write("honest work"))
kernel = socket.socket(socket.AF_UNIX)
kernel.bind("k-1")  # a kernel socket at a name the snooper can guess
kernel.listen()
kernel.settimeout(0.1)
open("pid", "w").write(str(os.getpid()))
open("ready", "w").write("")  # after the pid is whole
while not os.path.exists("stop"):
    time.sleep(0.05)
report["answers intact"] = open("answers/box_iou.json").read() == "honest work"
try:
    kernel.accept()
    report["strangers"] = 1
except OSError:
    report["strangers"] = 0
done()
"""

SNOOPER = """
folder, pid = sys.argv[1], int(sys.argv[2])
target = os.path.join(folder, "answers", "box_iou.json")
attempt("stat a classmate's file", lambda: os.stat(target).st_size)
attempt("stat a classmate's folder", lambda: os.stat(folder).st_mode)
attempt("list the grading root", lambda: os.listdir(os.path.dirname(folder)))
attempt("read a classmate's file", lambda: open(target).read())
attempt("write a classmate's file", lambda: open(target, "w").write("forged"))
attempt("hard-link a classmate's file", lambda: os.link(target, "stolen"))
attempt("read through a symlink", lambda: (os.symlink(target, "link"), open("link").read())[1])
attempt("read /dev/shm", lambda: open("/dev/shm/answers.json").read())
attempt("read /tmp", lambda: open("/tmp/answers.json").read())
attempt("see the classmate's process", lambda: open(f"/proc/{pid}/cmdline").read())
attempt("signal the classmate", lambda: os.kill(pid, 9))
attempt("read the classmate's memory", lambda: open(f"/proc/{pid}/mem", "rb").read(1))
def ptrace_attach():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), "ptrace")
attempt("ptrace the classmate", ptrace_attach)
attempt("the classmate's cwd", lambda: os.listdir(f"/proc/{pid}/cwd"))
attempt("list a classmate's folder", lambda: os.listdir(folder))
attempt("connect to a classmate's kernel socket", lambda: socket.socket(socket.AF_UNIX).connect(os.path.join(folder, "k-1")))
attempt("kill(-1)", lambda: os.kill(-1, 9))
def uncover():  # a user namespace of its own, then unmount what hides the classmates
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000 | 0x00020000) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    for cover in ("/tmp", os.path.dirname(folder)):
        libc.umount2(cover.encode(), 2)
    return os.stat(target).st_size
attempt("unmount the cover, then stat", uncover)
done()
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_kernel_cannot_see_touch_or_signal_a_classmate(root, mode):
    honest, snooper = Box(root, "honest", mode), Box(root, "snooper", mode)
    honest.start(HONEST_WRITER)
    honest.wait_for("ready")
    pid = (honest.folder / "pid").read_text()
    summary, report, output = snooper.run(SNOOPER, honest.folder, pid)
    honest.tell("stop")
    _, honest_report, honest_output = honest.finish()
    assert honest_report["answers intact"] is True, honest_output  # alive after kill(-1), its answers untouched
    stat_attacks = ("stat a classmate's file", "stat a classmate's folder", "unmount the cover, then stat")
    seen = ("read /dev/shm", "read /tmp", "see the classmate's process", "kill(-1)", "list the grading root",
            "connect to a classmate's kernel socket")  # fmt: skip
    others = [k for k in report if k not in stat_attacks + seen]
    assert all(denied(report[k]) for k in others), output
    assert denied(report["read /dev/shm"]) and denied(report["read /tmp"]), output
    if mode == "namespaces":
        assert all(report[k] == "denied (2)" for k in stat_attacks), output  # not there at all
        assert summary["protections"]["classmates"] == "namespace"
        assert report["list the grading root"] in ("allowed: ['snooper']", "denied (13)"), output  # itself at most
        assert denied(report["connect to a classmate's kernel socket"]) and honest_report["strangers"] == 0, output
        assert honest_report["own /dev/shm"] == honest_report["own /tmp"] == "allowed: 11", honest_output
        if ROOT:
            assert denied(report["see the classmate's process"]), output  # hidepid: invisible
    else:
        assert summary["protections"]["classmates"] == "landlock (stat works)" and denied(report["list the grading root"])
        # Landlock does not govern connecting to a Unix socket by path: hence kernel_transport's unlistable,
        # random sub-folder (its listing is denied above), tested in test_kernel_sockets_are_in_a_random_sub_folder_...
        assert denied(honest_report["own /dev/shm"]), honest_output


@pytest.mark.skipif(not ROOT, reason="only root can give each sandbox a uid of its own")
def test_with_a_uid_of_its_own_a_classmate_is_out_of_reach_even_without_namespaces(root):
    """--uid auto: each sandbox runs as a uid no other running sandbox has, and its folder is given to
    it (0700), so the file permissions keep classmates out where no namespace hides them (a grader in
    a container that allows no namespace): no stat, no socket, no keyring in common."""
    honest = Box(root, "honest", "landlock only", uid="auto")
    snooper = Box(root, "snooper", "landlock only", uid="auto")
    honest.start(HONEST_WRITER)
    honest.wait_for("ready")
    summary, report, output = snooper.run(SNOOPER, honest.folder, (honest.folder / "pid").read_text())
    honest.tell("stop")
    honest_summary, honest_report, honest_output = honest.finish()
    assert honest_report["answers intact"] is True and honest_report["strangers"] == 0, honest_output
    for attack in ("stat a classmate's file", "connect to a classmate's kernel socket", "unmount the cover, then stat"):
        assert report[attack] == "denied (13)", output
    users = {summary["protections"]["user"], honest_summary["protections"]["user"]}
    assert len(users) == 2 and all(int(u.split()[1]) in sandbox.AUTO_UIDS for u in users), users


def test_dev_shm_and_tmp_are_private_and_gone_after_the_run(root):
    marker = uuid.uuid4().hex
    writer = "attempt('plant', lambda: [open(d + '/' + sys.argv[1], 'w').write('answers') for d in ('/dev/shm', '/tmp')])\ndone()\n"
    summary, report, output = Box(root, "first").run(writer, marker)
    assert report["plant"].startswith("allowed") and summary["protections"]["shared storage"] == "private", output
    reader = "attempt('found', lambda: [open(d + '/' + sys.argv[1]).read() for d in ('/dev/shm', '/tmp')])\ndone()\n"
    _, report, output = Box(root, "later").run(reader, marker)
    assert report["found"] == "denied (2)", output
    assert not Path("/dev/shm", marker).exists() and not Path("/tmp", marker).exists()


SYSV = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
key, flags = int(sys.argv[2]), (0o1000 | 0o666) if sys.argv[1] == "plant" else 0  # IPC_CREAT
def get(call, *args):
    found = call(key, *args, flags)
    if found < 0:
        raise OSError(ctypes.get_errno(), "System V IPC")
    return "found"
attempt("message queue", lambda: get(libc.msgget))
attempt("shared memory", lambda: get(libc.shmget, ctypes.c_size_t(4096)))
if sys.argv[1] == "plant":
    open("ready", "w").write("")
    while not os.path.exists("stop"):
        time.sleep(0.05)
done()
"""


def test_system_v_ipc_is_private_to_each_sandbox(root):
    """System V message queues and shared memory outlive processes and are shared by a uid: a way to
    pass answers, between classmates or to a later run, that Landlock does not govern."""
    key = int.from_bytes(os.urandom(3), "big") + 1
    planter = Box(root, "planter").start(SYSV, "plant", key)
    planter.wait_for("ready")
    _, report, output = Box(root, "classmate").run(SYSV, "find", key)
    planter.tell("stop")
    summary, planted, planter_output = planter.finish()
    assert planted == {"message queue": "allowed: 'found'", "shared memory": "allowed: 'found'"}, planter_output
    assert report == {"message queue": "denied (2)", "shared memory": "denied (2)"}, output
    _, report, output = Box(root, "later").run(SYSV, "find", key)
    assert report == {"message queue": "denied (2)", "shared memory": "denied (2)"}, output
    ipcs = subprocess.run(["ipcs"], capture_output=True, text=True).stdout if shutil.which("ipcs") else ""
    assert f"0x{key:08x}" not in ipcs


KEYRING = """
import ctypes, platform
libc = ctypes.CDLL(None, use_errno=True)
ADD_KEY, KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}[platform.machine()]
USER_KEYRING, GET_PERSISTENT, SEARCH = -4, 22, 10
def call(*args):
    found = libc.syscall(*args)
    if found < 0:
        raise OSError(ctypes.get_errno(), "keyctl")
    return found
def persistent():
    return call(KEYCTL, GET_PERSISTENT, -1, USER_KEYRING)
name = sys.argv[2].encode()
if sys.argv[1] == "plant":
    attempt("user keyring", lambda: call(ADD_KEY, b"user", name, b"answers", 7, USER_KEYRING) and None)
    attempt("persistent keyring", lambda: call(ADD_KEY, b"user", name, b"answers", 7, persistent()) and None)
    open("ready", "w").write("")
    while not os.path.exists("stop"):
        time.sleep(0.05)
else:
    attempt("user keyring", lambda: call(KEYCTL, SEARCH, USER_KEYRING, b"user", name, 0) and None)
    attempt("persistent keyring", lambda: call(KEYCTL, SEARCH, persistent(), b"user", name, 0) and None)
done()
"""


@pytest.mark.skipif(not ROOT, reason="a grader that is not root gives each sandbox a user namespace of its own anyway")
def test_keyrings_are_private_to_each_sandbox(root):
    """The user and persistent keyrings belong to a uid (the latter outlives its processes by days):
    with one sandbox uid for all, a way to pass answers that Landlock does not govern."""
    name = f"seeing-networks-{uuid.uuid4().hex}"
    planter = Box(root, "planter").start(KEYRING, "plant", name)
    planter.wait_for("ready")
    _, report, output = Box(root, "classmate").run(KEYRING, "find", name)
    planter.tell("stop")
    summary, planted, planter_output = planter.finish()
    assert planted == {"user keyring": "allowed", "persistent keyring": "allowed"}, planter_output
    assert denied(report["user keyring"]) and denied(report["persistent keyring"]), output
    _, report, output = Box(root, "later").run(KEYRING, "find", name)
    assert denied(report["user keyring"]) and denied(report["persistent keyring"]), output
    assert summary["protections"]["keyrings"] == "private"


# --------------------------------------------------------------------------------------------
# What it can read, and the runner's descriptors
# --------------------------------------------------------------------------------------------

READER = """
for name in sys.argv[1:]:
    attempt(name, lambda: len(open(name, "rb").read(64)))
done()
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_kernel_reads_the_course_package_and_data_but_not_the_repository(root, mode, tmp_path):
    if REPO is None:
        pytest.skip("the course is not installed from a checkout: no repository to hide")
    solutions = sorted((REPO / "notebooks" / "solutions").glob("*.ipynb"))
    submission = tmp_path / "submissions" / "alice.ipynb"
    submission.parent.mkdir()
    submission.write_text("{}")
    secret = [*solutions[:2], REPO / "tests" / "test_sandbox.py", REPO / "pyproject.toml", submission]
    allowed = [sandbox.course_package() / "boxes.py", *sorted((REPO / "data").glob("*.jpg"))[:1], Path(sys.executable).resolve()]
    summary, report, output = Box(root, "reader", mode).run(READER, *secret, *allowed)
    assert solutions and all(denied(report[str(p)]) for p in secret), output
    assert all(report[str(p)].startswith("allowed") for p in allowed), output
    if mode == "namespaces":  # not even there to stat: the repository is covered, the package put back
        assert all(report[str(p)] == "denied (2)" for p in secret[:3]) and summary["protections"]["repository"] == "hidden", output


PIDFD_THIEF = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
runner = os.getppid()
def steal():
    pidfd = os.pidfd_open(runner)
    stolen = [fd for fd in range(64) if libc.syscall(438, pidfd, fd, 0) >= 0]  # pidfd_getfd
    os.close(pidfd)
    if not stolen:
        raise OSError(ctypes.get_errno(), "pidfd_getfd")
    return stolen
attempt("pidfd_getfd on the runner", steal)
attempt("open the runner's fd through /proc", lambda: open(f"/proc/{runner}/fd/{sys.argv[1]}", "w").write("x" * 1000))
attempt("ptrace the runner", lambda: open(f"/proc/{runner}/mem", "rb").read(1))
report["own fds"] = {fd: os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
done()
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_kernel_cannot_take_the_runners_file_descriptors(root, mode, tmp_path):
    outside = tmp_path / "grader-log.txt"
    with outside.open("w") as log:
        summary, report, output = Box(root, "thief", mode).run(PIDFD_THIEF, log.fileno(), fds=(log.fileno(),))
    assert denied(report["pidfd_getfd on the runner"]), output
    assert denied(report["open the runner's fd through /proc"]) and denied(report["ptrace the runner"]), output
    assert outside.read_text() == ""
    assert set(report["own fds"]) <= {"0", "1", "2", "3"}, output  # 0, 1, 2 and the listing's own


def test_unprivileged_the_runner_uses_a_user_namespace_and_says_what_applied(root):
    """A grader that is not root: the runner makes a user namespace where the kernel allows one."""
    if not ROOT:
        pytest.skip("needs root to start the runner as another user")
    box = Box(root, "user", runner_user=NOBODY)
    summary, report, output = box.run("attempt('uid', os.getuid)\nattempt('shm', lambda: open('/dev/shm/x', 'w').write('x'))\ndone()\n")
    assert report["uid"] == f"allowed: {NOBODY}", output
    protections = summary["protections"]
    assert protections["user"] == "same user" and protections["filesystem"] == "landlock"
    if protections["network"] == "namespace":  # user namespaces allowed here
        assert protections["shared storage"] == "private" and report["shm"].startswith("allowed")


# --------------------------------------------------------------------------------------------
# Caps
# --------------------------------------------------------------------------------------------


def test_memory_over_the_cap_ends_the_kernel_and_says_so(root):
    script = "x = bytearray(600 << 20)\nprint('survived', flush=True)\n"
    summary, _, output = Box(root, "hog").run(script, options=("--memory", "200M"))
    assert "survived" not in output
    if summary["protections"]["memory"] == "cgroup":
        assert summary["cap"] == "memory" and summary["signal"] == 9, output
    else:
        assert "MemoryError" in output


def test_memory_over_the_cap_is_a_memory_error_without_a_cgroup(root):
    if not ROOT:
        pytest.skip("needs root to start the runner as another user (no cgroup)")
    summary, _, output = Box(root, "hog", runner_user=NOBODY).run("x = bytearray(600 << 20)\n", options=("--memory", "200M"))
    assert summary["protections"]["memory"] == "rlimit (per process)" and "MemoryError" in output, output


@pytest.mark.parametrize("runner_user", [None, NOBODY], ids=["cgroup", "rlimit"])
def test_torch_runs_under_the_default_memory_cap(root, runner_user):
    if runner_user is not None and not ROOT:
        pytest.skip("needs root to start the runner as another user")
    script = "import torch\nx = torch.ones(25_000_000)\nprint('sum', int(x.sum()), flush=True)\n"
    summary, _, output = Box(root, "torch", runner_user=runner_user).run(script)
    assert summary["returncode"] == 0 and "sum 25000000" in output, output


def test_a_file_over_the_size_cap_fails_to_grow_and_the_summary_says_so(root):
    script = "open('big', 'wb').write(b'x' * (20 << 20))\nprint('survived', flush=True)\n"
    summary, _, output = Box(root, "big").run(script, options=("--disk", "10M"))
    assert "File too large" in output and "survived" not in output, output  # Python ignores SIGXFSZ: EFBIG
    assert "file size" in summary["caps_hit"] and (root / "big" / "big").stat().st_size == 10 << 20


def test_a_folder_over_the_disk_cap_is_stopped(root):
    script = "for i in range(6):\n    open(f'part{i}', 'wb').write(b'x' * (5 << 20))\nimport time\ntime.sleep(60)\n"
    summary, _, output = Box(root, "disk").run(script, options=("--disk", "10M"))
    assert summary["cap"] == "disk" and summary["signal"] == 9 and summary["seconds"] < 30, output


def test_a_fork_flood_is_capped_and_its_tree_killed(root):
    marker = f"seeing-networks-flood-{uuid.uuid4().hex}"
    script = f"""
import subprocess
children = []
for _ in range(60):
    try:
        children.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{marker}"]))
    except OSError as error:
        report["refused"] = error.errno
        break
report["started"] = len(children)
done()
"""
    summary, report, output = Box(root, "flood").run(script, options=("--processes", "10"))
    assert report["started"] < 10 and "refused" in report, output
    if summary["protections"]["processes"] == "cgroup":
        assert "processes" in summary["caps_hit"]
    alive = [p for p in os.listdir("/proc") if p.isdigit() and marker.encode() in _cmdline(p)]
    assert alive == []


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_protections_says_what_applies_here():
    found = sandbox.protections()
    assert set(found) >= {"network", "classmates", "shared storage", "ipc", "keyrings", "filesystem", "memory", "processes"}
    if ROOT:
        assert found["network"] == "namespace" and found["classmates"] == "namespace" and found["memory"] == "cgroup"
        assert found["ipc"] == "namespace" and found["keyrings"] == "private" and found["user"] == "uid 65534"
    fallback = sandbox.protections(no_namespaces=True)
    assert fallback["network"] == "landlock (TCP)" and fallback["ipc"] == "shared" and fallback["shared storage"] == "denied"
