"""Run one untrusted command confined, and leave nothing of it running.

    python -m helpers.sandbox --limit SECONDS --folder DIR [--read PATH ...] [--uid N|auto --gid N]
        [--memory BYTES] [--disk BYTES] [--processes N] [--no-namespaces] -- COMMAND...

This is the small process the grader starts once per notebook (one notebook, one OS process). It

- becomes a *child subreaper* (Linux `prctl`), so every process the command starts, even one that
  detaches with a double fork or `setsid`, stays its descendant and is killed when the command ends;
- dies with the grader (`PR_SET_PDEATHSIG`), taking its whole tree, and is not dumpable, so the
  command can neither trace it nor take its file descriptors (`pidfd_getfd`); the command inherits no
  descriptor but 0, 1, 2 (and the grader's record descriptor, where one is passed);
- gives the command its own network namespace with only a private loopback, its own IPC namespace
  (System V shared memory and message queues), and its own mount namespace: a private `/tmp` and
  `/dev/shm` (tmpfs, gone when the sandbox ends), the grading folder covered so that no other
  sandbox's folder can be seen (not even by `stat`), and (as root) a `/proc` that hides the processes
  the command may not trace. As root directly; otherwise inside a user namespace where the kernel
  allows one. Where neither works, Landlock denies TCP `bind`/`connect`;
- confines the command with Landlock (Linux 5.13+, no root needed): it may write only under
  `--folder`, read only the system, the Python environment and the installed course package (not the
  repository around it), and (ABI 6+) neither signal nor reach an abstract Unix socket outside its
  own tree;
- when started as root, runs the command as `--uid`/`--gid` (an unprivileged user), never as root, in
  a user namespace of its own (so the user's keyrings are not shared with other sandboxes); with
  `--uid auto`, as a uid that no other running sandbox has, to which it gives the folder;
- caps memory (a memory cgroup where it can make one, else RLIMIT_DATA per process), processes (a
  pids cgroup, else RLIMIT_NPROC), the size of each file (RLIMIT_FSIZE) and the bytes in its folder
  (watched every second), and kills the whole tree at the wall-clock `--limit`.

It prints one JSON line at the end: `{"returncode": int|null, "timed_out": bool, "seconds": float,
"landlock": int, "signal": int|null, "cap": str|null, "caps_hit": [str], "memory_peak": int|null,
"protections": {...}}`.
`signal` is the signal that ended the command; `cap` names the cap that ended it ("time", "memory",
"disk", "file size"); `caps_hit` every cap it ran into ("processes" when a fork was refused, "file
size" when a file reached it); `memory_peak` the most bytes the tree held at once (from the memory
cgroup); `protections` what applied (see `protections()`).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import secrets
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers.confine import LIBC, PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG, Cgroups, under
from helpers.confine import enter_namespaces, landlock_abi, landlock_confine, loopback_up, own_user_namespace, private_mounts


# Caps: the defaults of the command line.
GiB, MiB = 1 << 30, 1 << 20
DEFAULT_MEMORY = 4 * GiB  # bytes of memory for the whole tree (or each process, without a cgroup)
DEFAULT_DISK = 1 * GiB  # bytes in the folder; also the largest file, and the size of the private /tmp and /dev/shm
DEFAULT_PROCESSES = 512  # processes and threads of the tree
DISK_ENTRIES = 100_000  # more files than this in the folder counts as over the disk cap
SOCKET_PATH_MAX = 107  # the longest Unix socket path Linux takes
AUTO_UIDS = range(1_900_000_000, 1_900_065_536)  # --uid auto: one of these, held by no other sandbox


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
            stat_line = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat_line[stat_line.rfind(")") + 2 :].split()
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
# What the grader reads from, and how it talks to, a sandbox
# --------------------------------------------------------------------------------------------


def read_file_from_sandbox(folder: str | Path, relative: str, max_bytes: int) -> bytes:
    """The bytes of the regular file `relative` under `folder`, a sandbox's folder, read safely.

    Every component is opened from its parent's descriptor without following a link (`O_NOFOLLOW`),
    so a link the command planted cannot send the grader elsewhere; a FIFO, device, hard-linked file
    or anything but a plain file is refused, and so is a file of more than `max_bytes` bytes.
    Raises ValueError for a bad `relative` or `max_bytes`, OSError (with the path) when it cannot be read.
    """
    parts = str(relative).split("/")
    if not relative or str(relative).startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"relative must be a plain relative path inside the folder (no '..', no leading '/'), got {relative!r}")
    if not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
    no_follow = os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | no_follow)
    try:
        for part in parts[:-1]:
            fd, parent = os.open(part, os.O_RDONLY | os.O_DIRECTORY | no_follow, dir_fd=fd), fd
            os.close(parent)
        fd, parent = os.open(parts[-1], os.O_RDONLY | os.O_NONBLOCK | no_follow, dir_fd=fd), fd
        os.close(parent)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise OSError(f"{relative} in the sandbox folder is not a plain file (mode {oct(info.st_mode)}, {info.st_nlink} links)")
        data = os.read(fd, max_bytes + 1)
        chunks = [data]
        while data and sum(map(len, chunks)) <= max_bytes:
            data = os.read(fd, max_bytes + 1)
            chunks.append(data)
        content = b"".join(chunks)
        if len(content) > max_bytes:
            raise OSError(f"{relative} in the sandbox folder holds more than {max_bytes} bytes")
        return content
    finally:
        os.close(fd)


def kernel_transport(folder: str | Path) -> dict[str, str]:
    """How a kernel in the sandbox at `folder` and the grader's client should talk: ZMQ over Unix
    sockets (`ipc`), so the kernel needs no network at all.

    The sockets go in a new sub-folder of `folder` with a random name (owned like `folder`, 0700):
    where no namespace hides the folder, Landlock still keeps other sandboxes from listing it, so they
    cannot find a socket to connect to (Landlock does not govern connecting to a Unix socket).
    Give the result to jupyter_client: `KernelManager(transport=t["transport"], ip=t["ip"])`; the
    sockets are `ip-1` .. `ip-5`. Raises ValueError when the path is too long for a Unix socket.
    """
    sockets = os.path.join(os.path.realpath(folder), secrets.token_hex(8))
    ip = os.path.join(sockets, "k")
    if len(ip) + 4 > SOCKET_PATH_MAX:
        raise ValueError(f"folder must have a path of at most {SOCKET_PATH_MAX - 27} characters for the kernel's sockets, got {folder!s}")
    os.mkdir(sockets, 0o700)
    owner = os.stat(folder)
    if os.geteuid() == 0:
        os.chown(sockets, owner.st_uid, owner.st_gid)
    return {"transport": "ipc", "ip": ip}


def command_line(folder: str | Path, limit: float, uid: int | str | None = None, gid: int | None = None, **caps) -> list[str]:
    """The argv that runs a command in a sandbox at `folder` (append the command after it); `uid` may
    be "auto" (a uid of its own, see `claim_uid`).

    `caps`: memory, disk, processes (ints), read (list of paths), no_namespaces (bool), parent (pid).
    """
    argv = [sys.executable, "-m", __name__, "--limit", f"{limit:g}", "--folder", str(folder)]
    if uid == "auto":
        argv += ["--uid", "auto"]
    elif uid is not None:
        argv += ["--uid", str(uid), "--gid", str(uid if gid is None else gid)]
    for name in ("memory", "disk", "processes", "parent"):
        if caps.get(name) is not None:
            argv += [f"--{name}", str(int(caps[name]))]
    for path in caps.get("read", []):
        argv += ["--read", str(path)]
    if caps.get("no_namespaces"):
        argv.append("--no-namespaces")
    return argv + ["--"]


def protections(uid: int | None = 65534, **caps) -> dict[str, str]:
    """What a sandbox started now, from this process, would get: runs one empty command in one and
    returns its `protections` (see `run`): {"network": "namespace"|"landlock (TCP)"|"none", "classmates":
    "namespace"|"landlock (stat works)"|"none", "shared storage": "private"|"denied"|"shared", "ipc":
    "namespace"|"shared", "keyrings": "private"|"shared by the uid", "filesystem": "landlock"|"none",
    "signals", "user", "descriptors", "memory": "cgroup"|"rlimit (per process)", "processes", "disk"}."""
    folder = Path(tempfile.mkdtemp(prefix="seeing-networks-probe-"))
    try:
        if os.geteuid() == 0 and uid is not None:
            folder.chmod(0o711)
        argv = command_line(folder, 60, uid if os.geteuid() == 0 else None, **caps) + [sys.executable, "-c", "pass"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=folder)
        return json.loads(done.stdout.strip().splitlines()[-1])["protections"]
    finally:
        folder.rmdir()


# --------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------


def course_package() -> Path:
    """The folder of the installed `helpers` package (the course's code)."""
    import helpers

    return Path(helpers.__file__).resolve().parent


def course_repository() -> Path | None:
    """The checkout that holds the course package (an editable install), or None (installed in site-packages)."""
    parent = course_package().parent
    return None if parent.name in ("site-packages", "dist-packages") else parent


def default_read_paths() -> list[str]:
    """What a Python kernel of this environment needs to read: the system, Python, the course package
    and its data folder. Not the repository around the package (solutions, notebooks, tests)."""
    package, repository = course_package(), course_repository()
    paths = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys", str(package)]
    if repository is not None:
        paths.append(str(repository / "data"))  # helpers.data.DATA_DIR: the images the notebooks load
    paths += [sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(sys.executable).resolve().parent.parent)]
    paths += [p for p in sys.path[1:] if p and os.path.isdir(p)]  # sys.path[0] is the runner's cwd or script
    found = dict.fromkeys(os.path.realpath(p) for p in paths)
    return [p for p in found if repository is None or not under(str(repository), p)]  # never the repository itself


def folder_usage(folder: str, entries: int = DISK_ENTRIES) -> tuple[int, int]:
    """(bytes on disk under `folder`, size of its largest file), links not followed; more than
    `entries` entries counts as no room left."""
    total, largest, todo, seen = 0, 0, [folder], 0
    while todo:
        try:
            with os.scandir(todo.pop()) as listing:
                for entry in listing:
                    seen += 1
                    if seen > entries:
                        return sys.maxsize, largest
                    info = entry.stat(follow_symlinks=False)
                    total += info.st_blocks * 512
                    largest = max(largest, info.st_size if stat.S_ISREG(info.st_mode) else 0)
                    if stat.S_ISDIR(info.st_mode):
                        todo.append(entry.path)
        except OSError:
            continue
    return total, largest


def set_caps(memory: int, disk: int, processes: int, cgroups: Cgroups, uid: int | None) -> None:
    """The rlimits of the command (in the child, before exec): the ones no cgroup covers."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (disk, disk))
    if "memory" not in cgroups.made:
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    if "pids" not in cgroups.made:  # RLIMIT_NPROC counts every process of the user: allow for the ones it has
        allowed = processes + _processes_of(os.getuid() if uid is None else uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (allowed, allowed))


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        try:
            count += entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid
        except OSError:
            continue
    return count


def _confine(folder: str, read: list[str], abi: int, caps: dict, cgroups: Cgroups, uid, gid, deny_tcp: bool, shm: bool, own_users: bool):
    """The pre-exec step of the confined command (runs in the child): cgroups, rlimits, user, Landlock."""

    def step() -> None:
        cgroups.join()
        set_caps(caps["memory"], caps["disk"], caps["processes"], cgroups, uid)
        if uid is not None:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            if own_users:  # keyrings (user, persistent) are per uid and user namespace: not the classmates'
                try:
                    own_user_namespace()
                except OSError:
                    pass  # the summary says the keyrings are shared
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after the uid change, which clears it: a runner killed outright takes the command
        if abi:
            write = [folder, "/dev/null"] + (["/dev/shm", "/tmp"] if shm else [])  # private tmpfs, gone after
            landlock_confine(read=read + ["/dev"], write=write, abi=abi, deny_tcp=deny_tcp)
        else:
            LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)

    return step


def isolate(folder: str, read: list[str], size: int, allowed: bool) -> dict[str, str]:
    """Namespaces for this runner and its tree, where they can be had. Returns what applied."""
    privileged = os.geteuid() == 0
    try:
        entered = allowed and enter_namespaces(privileged)
    except OSError as error:  # in them, but refused the uid map (as under AppArmor's userns restriction)
        print(f"sandbox: user namespace without a uid map ({error}); mounts and loopback may fail", file=sys.stderr)
        entered = True
    if not entered:
        return {}
    applied = {"ipc": "namespace"}
    try:
        loopback_up()
        applied["network"] = "namespace"
    except OSError:
        applied["network"] = "namespace (no loopback)"
    try:
        repository = course_repository()  # hidden too: Landlock already refuses reading it, not stat
        applied.update(private_mounts(folder, read, size, privileged, hide=(str(repository),) if repository else ()))
    except OSError as error:
        print(f"sandbox: private mounts failed ({error}); Landlock only", file=sys.stderr)
    return applied


def run(command: list[str], folder: str, limit: float, read: list[str], uid: int | None, gid: int | None, env: dict,
        memory: int = DEFAULT_MEMORY, disk: int = DEFAULT_DISK, processes: int = DEFAULT_PROCESSES, namespaces: bool = True) -> dict:  # fmt: skip
    """Run `command` confined in `folder`; kill its whole tree when it ends, at `limit` seconds or past a cap."""
    folder = os.path.realpath(folder)
    abi = landlock_abi()
    uid = uid if uid is not None and os.geteuid() == 0 else None
    gid = (uid if gid is None else gid) if uid is not None else None
    graders_users = os.readlink("/proc/self/ns/user")
    applied = isolate(folder, read, disk, namespaces)
    LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # after the user namespace's maps are written: they need it dumpable
    cgroups = Cgroups(memory, processes)
    _CGROUPS.append(cgroups)
    shm = applied.get("shared storage") == "private"
    deny_tcp = "network" not in applied and abi >= 4
    caps = {"memory": memory, "disk": disk, "processes": processes}
    record_fds = [int(fd) for fd in env.get("SEEING_NETWORKS_RECORD_FD", "").split() if fd.isdigit()]
    started = time.monotonic()
    child = subprocess.Popen(
        command, cwd=folder, env=env, start_new_session=True, pass_fds=record_fds, stdin=subprocess.DEVNULL,
        preexec_fn=_confine(folder, read, abi, caps, cgroups, uid, gid, deny_tcp, shm, own_users=bool(applied)),
    )  # fmt: skip
    try:
        applied["keyrings"] = "private" if os.readlink(f"/proc/{child.pid}/ns/user") != graders_users else "shared by the uid"
    except OSError:
        pass  # it has already exited
    timed_out, returncode, cap = False, None, None
    try:
        returncode, timed_out, cap = _watch(child, started + limit, folder, disk)
    finally:
        if child.poll() is None:  # past a cap: kill it first, so that its status says so (kill_tree reaps blindly)
            child.kill()
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        kill_tree(os.getpid())
        hits, peak = cgroups.hits(), cgroups.memory_peak()
        cgroups.remove()
    if returncode is None:
        returncode = child.poll()
    ended_by = -returncode if isinstance(returncode, int) and returncode < 0 else None
    if cap is None and "memory" in hits and ended_by == signal.SIGKILL:
        cap = "memory"
    if cap is None and ended_by == signal.SIGXFSZ:
        cap = "file size"
    if folder_usage(folder)[1] >= disk:  # Python ignores SIGXFSZ: its writes fail with EFBIG instead
        hits.append("file size")
    summary = {"returncode": returncode, "timed_out": timed_out, "seconds": round(time.monotonic() - started, 3), "landlock": abi}
    summary |= {"signal": ended_by, "cap": cap, "caps_hit": sorted(set(hits + ([cap] if cap else []))), "memory_peak": peak}
    summary["protections"] = _protections(applied, abi, uid, cgroups, deny_tcp, shm)
    return summary


def _watch(child: subprocess.Popen, deadline: float, folder: str, disk: int) -> tuple[int | None, bool, str | None]:
    """Wait for `child`, checking the folder's bytes each second. Returns (returncode, timed out, cap)."""
    while True:
        try:
            return child.wait(timeout=max(0.0, min(1.0, deadline - time.monotonic()))), False, None
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() >= deadline:
            return None, True, "time"
        if folder_usage(folder)[0] > disk:
            return None, False, "disk"


def _protections(applied: dict, abi: int, uid, cgroups: Cgroups, deny_tcp: bool, shm: bool) -> dict[str, str]:
    landlock = "landlock" if abi else "none"
    return {
        "network": applied.get("network") or ("landlock (TCP)" if deny_tcp else "none"),
        "classmates": applied.get("classmates") or ("landlock (stat works)" if abi else "none"),
        "shared storage": applied.get("shared storage") or ("denied" if abi else "shared"),
        "ipc": applied.get("ipc", "shared"),
        "filesystem": landlock,
        "repository": applied.get("repository") or ("landlock (stat works)" if abi and course_repository() else "none" if course_repository() else "not a checkout"),
        "signals": "landlock" if abi >= 6 else ("uid" if uid is not None else "none"),
        "user": f"uid {uid}" if uid is not None else "same user",
        "keyrings": applied.get("keyrings", "unknown"),
        "descriptors": "closed, runner not dumpable",
        "memory": "cgroup" if "memory" in cgroups.made else "rlimit (per process)",
        "processes": "cgroup" if "pids" in cgroups.made else "rlimit (per user)",
        "disk": "watched, rlimit per file",
    }


_CGROUPS: list[Cgroups] = []  # this runner's, for _stop to remove


def claim_uid(uids: range = AUTO_UIDS) -> tuple[int, int]:
    """A uid of `uids` that no other running sandbox holds: (uid, the descriptor of its lock, to keep
    open while the sandbox runs). Root only. The locks are files in a root-only folder, held with flock.
    Raises PermissionError when the lock folder is not root's, RuntimeError when every uid is taken."""
    locks = "/run/lock/seeing-networks-uids" if os.path.isdir("/run/lock") else os.path.join(tempfile.gettempdir(), "seeing-networks-uids")
    os.makedirs(locks, mode=0o700, exist_ok=True)
    info = os.lstat(locks)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077:
        raise PermissionError(f"the uid lock folder {locks} must be a directory of root's, mode 0700")
    start = secrets.randbelow(len(uids))
    for step in range(len(uids)):
        uid = uids[(start + step) % len(uids)]
        fd = os.open(os.path.join(locks, str(uid)), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return uid, fd
        except BlockingIOError:
            os.close(fd)
    raise RuntimeError(f"every uid of {uids} is held by a running sandbox")


def chown_tree(folder: str, uid: int, gid: int) -> None:
    """Give `folder` and everything in it (links not followed) to uid:gid."""
    os.chown(folder, uid, gid, follow_symlinks=False)
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.chown(os.path.join(parent, name), uid, gid, follow_symlinks=False)


def _user(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a uid (a number) or 'auto', got {text!r}")


def _stop(signum, frame):  # SIGTERM/SIGINT/SIGHUP, or the grader died: take the tree down with us
    kill_tree(os.getpid())
    for cgroups in _CGROUPS:
        cgroups.remove()
    os._exit(128 + signum)


def _bytes(text: str) -> int:
    """'4G', '512M', '100k' or a plain number of bytes."""
    units = {"k": 1 << 10, "m": MiB, "g": GiB}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    try:
        value = int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(text)
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"expected a number of bytes such as 4G, 512M or 1000000, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of bytes, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.sandbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=float, required=True, help="wall-clock seconds before the tree is killed")
    parser.add_argument("--folder", required=True, help="the only folder the command may write to (its cwd)")
    parser.add_argument("--read", action="append", default=[], help="more paths the command may read")
    parser.add_argument("--uid", type=_user, default=None, help="when root: run the command as this user, or 'auto': "
                        "a uid no other running sandbox has (the folder is given to it)")  # fmt: skip
    parser.add_argument("--gid", type=int, default=None, help="when root: run the command with this group")
    parser.add_argument("--parent", type=int, default=None, help="exit at once if this pid is no longer our parent")
    parser.add_argument("--memory", type=_bytes, default=DEFAULT_MEMORY, help="memory of the whole tree (default 4G)")
    parser.add_argument("--disk", type=_bytes, default=DEFAULT_DISK, help="bytes in the folder, and the largest file (default 1G)")
    parser.add_argument("--processes", type=int, default=DEFAULT_PROCESSES, help="processes and threads (default 512)")
    parser.add_argument("--no-namespaces", action="store_true", help="use no namespaces (Landlock and rlimits only)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command to run is required after --")
    if args.processes < 1:
        parser.error(f"--processes must be a positive int, got {args.processes}")
    if sys.platform.startswith("linux"):
        LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _stop)
    if args.parent is not None and os.getppid() != args.parent:
        return 3  # the grader is already gone
    if args.uid == "auto":
        if os.geteuid() != 0:
            args.uid = None  # no other user to be
        else:
            args.uid, _lock = claim_uid()  # held until this runner exits
            args.gid = args.uid
            chown_tree(os.path.realpath(args.folder), args.uid, args.gid)
    read = default_read_paths() + [os.path.realpath(p) for p in args.read]
    caps = {"memory": args.memory, "disk": args.disk, "processes": args.processes, "namespaces": not args.no_namespaces}
    summary = run(command, args.folder, args.limit, read, args.uid, args.gid, dict(os.environ), **caps)
    print("\n" + json.dumps(summary), flush=True)  # on a line of its own, whatever the command left unfinished
    return 0


if __name__ == "__main__":
    sys.exit(main())
