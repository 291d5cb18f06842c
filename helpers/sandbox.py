"""Run one untrusted command confined, and leave nothing of it running.

    python -m helpers.sandbox --limit SECONDS --folder DIR [--read PATH ...] [--uid N --gid N] -- COMMAND...

This is the small process the grader starts once per notebook (one notebook, one OS process). It

- becomes a *child subreaper* (Linux `prctl`), so every process the command starts, even one that
  detaches with a double fork or `setsid`, stays its descendant and is killed when the command ends;
- dies with the grader (`PR_SET_PDEATHSIG`): stopped by Ctrl-C, `timeout` or `kill`, the grader takes
  its runners with it, and each runner takes its whole tree;
- confines the command with Landlock where the kernel has it (Linux 5.13+, no root needed): it may
  write only under `--folder`, read only the system, Python and the course (`--read`), and neither
  signal nor trace any process outside its own tree;
- when started as root, runs the command as `--uid`/`--gid` (an unprivileged user), never as root;
- kills the whole tree at the wall-clock `--limit` (SIGKILL, not an interrupt a loop can ignore).

It prints one JSON line at the end: `{"returncode": int|null, "timed_out": bool, "seconds": float,
"landlock": int}` (Landlock's ABI version, 0 where it is not available).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

_LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 38, 36
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # the same on x86_64 and aarch64
_RULE_PATH_BENEATH = 1

# Landlock filesystem rights, by the ABI version that introduced them.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_ABI1_ALL = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
READ_ONLY = EXECUTE | READ_FILE | READ_DIR
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the rights a rule on a file may hold


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """Landlock's ABI version on this kernel, or 0 where there is none (not Linux, too old, disabled)."""
    if not sys.platform.startswith("linux"):
        return 0
    version = _LIBC.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(version), 0)


def handled_rights(abi: int) -> int:
    rights = _ABI1_ALL
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def landlock_confine(read: list[str], write: list[str], abi: int) -> None:
    """Restrict this process (and all it starts) to reading `read` and reading/writing `write`.

    Everything else on the filesystem is refused; with ABI 6+ signals and abstract Unix sockets are
    scoped to the process's own domain too. Raises OSError when the kernel refuses a step.
    """
    handled = handled_rights(abi)
    attr = _RulesetAttr(handled, 0, (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0)
    ruleset = _LIBC.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for rights, paths in ((READ_ONLY, read), (handled, write)):
            for path in paths:
                _allow(ruleset, path, rights & handled)
        if _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        if _LIBC.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)


def _allow(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path this system does not have
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS
        rule = _PathBeneathAttr(rights, fd)
        if _LIBC.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# The process tree
# --------------------------------------------------------------------------------------------


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process visible in /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry)] = int(fields[1])
    return table


def descendants(root: int) -> list[int]:
    """Every process below `root` (children, grandchildren, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(root: int, patience: float = 5.0) -> int:
    """SIGKILL every descendant of `root` and reap them, until none is left. Returns how many were killed."""
    killed, deadline = set(), time.monotonic() + patience
    while time.monotonic() < deadline:
        alive = descendants(root)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        _reap()
        if not alive:
            break
        time.sleep(0.05)
    return len(killed)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# --------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------


def default_read_paths() -> list[str]:
    """What a Python kernel of this environment needs to read: the system, Python, the course."""
    course = str(Path(__file__).resolve().parent.parent)
    paths = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys", course]
    paths += [sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(sys.executable).resolve().parent.parent)]
    paths += [p for p in sys.path if p and os.path.isdir(p)]
    return list(dict.fromkeys(os.path.realpath(p) for p in paths))


def _confine(folder: str, read: list[str], abi: int):
    """The pre-exec step of the confined command (runs in the child, after the uid change)."""

    def step() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if abi:
            landlock_confine(read=read + ["/dev"], write=[folder, "/dev/shm", "/dev/null"], abi=abi)
        else:
            _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)

    return step


def run(command: list[str], folder: str, limit: float, read: list[str], uid: int | None, gid: int | None, env: dict) -> dict:
    """Run `command` confined in `folder`; kill its whole tree when it ends or at `limit` seconds."""
    abi = landlock_abi()
    as_user = {"user": uid, "group": gid, "extra_groups": []} if uid is not None and os.geteuid() == 0 else {}
    started = time.monotonic()
    child = subprocess.Popen(
        command, cwd=folder, env=env, start_new_session=True, preexec_fn=_confine(folder, read, abi),
        pass_fds=[int(fd) for fd in env.get("SEEING_NETWORKS_RECORD_FD", "").split() if fd.isdigit()],
        stdin=subprocess.DEVNULL, **as_user,
    )  # fmt: skip
    timed_out, returncode = False, None
    try:
        returncode = child.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        kill_tree(os.getpid())
    if returncode is None:
        returncode = child.poll()
    return {"returncode": returncode, "timed_out": timed_out, "seconds": round(time.monotonic() - started, 3), "landlock": abi}


def _stop(signum, frame):  # SIGTERM/SIGINT/SIGHUP, or the grader died: take the tree down with us
    kill_tree(os.getpid())
    os._exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.sandbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=float, required=True, help="wall-clock seconds before the tree is killed")
    parser.add_argument("--folder", required=True, help="the only folder the command may write to (its cwd)")
    parser.add_argument("--read", action="append", default=[], help="more paths the command may read")
    parser.add_argument("--uid", type=int, default=None, help="when root: run the command as this user")
    parser.add_argument("--gid", type=int, default=None, help="when root: run the command with this group")
    parser.add_argument("--parent", type=int, default=None, help="exit at once if this pid is no longer our parent")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command to run is required after --")
    if sys.platform.startswith("linux"):
        _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _stop)
    if args.parent is not None and os.getppid() != args.parent:
        return 3  # the grader is already gone
    read = default_read_paths() + args.read
    summary = run(command, args.folder, args.limit, read, args.uid, args.gid, dict(os.environ))
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
