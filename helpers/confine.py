"""The Linux primitives of the sandbox (`helpers.sandbox`): Landlock, namespaces and mounts, cgroups.

- `landlock_confine(read, write, abi, deny_tcp)`: a Landlock domain for this process and its children;
- `enter_namespaces(privileged)`, `loopback_up()`, `private_mounts(...)`: a network namespace with only
  a loopback, an IPC namespace, and a mount namespace with a private /tmp and /dev/shm, the other sandboxes' folders
  covered, and (as root) a /proc that hides what the process may not trace;
- `Cgroups(memory, processes)`: a memory and a pids cgroup (v1 or v2) for one sandbox's tree.

Every function raises OSError (with the step) when the kernel refuses it; `helpers.sandbox` decides
what to do without.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import sys
import time
from pathlib import Path

LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 4, 38, 36
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # the same on x86_64 and aarch64
_RULE_PATH_BENEATH = 1

# Landlock filesystem rights, by the ABI version that introduced them.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_ABI1_ALL = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
READ_ONLY = EXECUTE | READ_FILE | READ_DIR
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the rights a rule on a file may hold

# Namespaces and mounts.
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x08000000, 0x10000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """Landlock's ABI version on this kernel, or 0 where there is none (not Linux, too old, disabled)."""
    if not sys.platform.startswith("linux"):
        return 0
    version = LIBC.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
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


def landlock_confine(read: list[str], write: list[str], abi: int, deny_tcp: bool = False) -> None:
    """Restrict this process (and all it starts) to reading `read` and reading/writing `write`.

    Everything else on the filesystem is refused; with ABI 6+ signals and abstract Unix sockets are
    scoped to the process's own domain too; with `deny_tcp` (ABI 4+) every TCP bind and connect is
    refused. Raises OSError when the kernel refuses a step.
    """
    handled = handled_rights(abi)
    net = NET_BIND_TCP | NET_CONNECT_TCP if deny_tcp and abi >= 4 else 0
    attr = _RulesetAttr(handled, net, (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0)
    ruleset = LIBC.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for rights, paths in ((READ_ONLY, read), (handled, write)):
            for path in paths:
                _allow(ruleset, path, rights & handled)
        if LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        if LIBC.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
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
        if LIBC.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# Namespaces: a private network, a private /tmp and /dev/shm, the other folders out of sight
# --------------------------------------------------------------------------------------------


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(LIBC.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)), f"mount {target}")


def enter_namespaces(privileged: bool) -> bool:
    """Give this process a network, a mount and an IPC namespace (System V shared memory, semaphores,
    message queues) of its own: directly as root, else inside a new user namespace (where the kernel
    allows it). Returns whether it worked."""
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC
    if privileged:
        return LIBC.unshare(ctypes.c_int(flags)) == 0
    return own_user_namespace(flags)


def own_user_namespace(flags: int = 0) -> bool:
    """Move this process into a new user namespace (and the namespaces of `flags`) in which its uid and
    gid stay what they are, so it keeps no capability once it execs. Its keyrings are its own there.
    Returns False where the kernel allows no user namespace."""
    uid, gid = os.getuid(), os.getgid()
    LIBC.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # the maps are written through /proc/self, which it must own
    if LIBC.unshare(ctypes.c_int(flags | CLONE_NEWUSER)) != 0:
        return False
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    return True


def loopback_up() -> None:
    """Bring up `lo` in this (new, empty) network namespace: the command's only network."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0)))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _cover(cover: str, keep: list[str], size: int, writable: tuple[str, ...] = ()) -> None:
    """Mount an empty tmpfs over `cover`, then bind every path of `keep` under it back in its place,
    read-only unless it is one of `writable`. (The command may write anywhere in the tmpfs, so a course
    or a Python kept under /tmp would otherwise come back writable.)"""
    kept = []
    for path in keep:
        if under(path, cover) and path != cover and os.path.exists(path):
            kept.append((path, os.open(path, os.O_PATH | os.O_CLOEXEC)))
    _mount("tmpfs", cover, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
    for path, fd in sorted(kept):
        try:
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(path, mode=0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                Path(path).touch()
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            if path not in writable:
                _remount_read_only(path)
        finally:
            os.close(fd)


def _remount_read_only(path: str) -> None:
    """Make the bind mount at `path` read-only, keeping the flags it has (a user namespace may not drop them)."""
    kept = os.statvfs(path).f_flag
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | (kept & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME))
    flags |= MS_RELATIME if kept & os.ST_RELATIME else 0
    _mount(None, path, None, flags)


def private_mounts(folder: str, read: list[str], size: int, privileged: bool, hide: tuple[str, ...] = ()) -> dict[str, str]:
    """In this process's new mount namespace: a fresh tmpfs on /tmp and /dev/shm, the folder that holds
    `folder` and each folder of `hide` covered (only `folder` and the `read` paths under them come
    back), and as root a /proc that hides the processes the command may not trace. Returns what applied."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    keep = [folder] + read
    covered = ["/tmp"]
    parent = os.path.dirname(folder)
    if not under(folder, "/tmp") and parent != "/" and not any(under(p, parent) and p != folder for p in read):
        covered.append(parent)  # another sandbox's folder beside this one cannot be seen
    covered += [h for h in hide if not any(under(h, c) for c in covered)]
    for cover in covered:
        _cover(cover, keep, size, writable=(folder,))
    applied = {"shared storage": "private", "classmates": "namespace" if any(under(folder, c) and folder != c for c in covered[:2]) else "landlock"}
    if hide:
        applied["repository"] = "hidden"
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
    if privileged:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
    return applied


# --------------------------------------------------------------------------------------------
# Cgroups: memory and processes for the whole tree
# --------------------------------------------------------------------------------------------


class Cgroups:
    """A memory and a pids cgroup for one sandbox (cgroup v1 or v2), made where this process may.

    `made` names the controllers that were made ("memory", "pids"); `join()` (in the child, before
    exec) moves the calling process into them; `hits()` lists the caps reached; `remove()` deletes them.
    """

    def __init__(self, memory: int, processes: int):
        self.dirs: dict[str, Path] = {}
        name = f"seeing-networks-{os.getpid()}"
        for controller, limits in (("memory", self._memory_limits(memory)), ("pids", [("pids.max", str(processes))])):
            try:
                folder = self._place(controller) / name
                self._remove_stale(folder.parent)
                if folder.is_dir():  # a killed runner's, which had this pid before us
                    folder.rmdir()
                folder.mkdir()
            except (OSError, ValueError):
                continue
            try:
                (folder / limits[0][0]).write_text(limits[0][1])
            except OSError:
                folder.rmdir()
                continue
            for file, value in limits[1:]:  # swap: not every kernel accounts for it
                try:
                    (folder / file).write_text(value)
                except OSError:
                    pass
            self.dirs[controller] = folder

    @staticmethod
    def _remove_stale(place: Path) -> None:
        """Remove the empty cgroups of sandbox runners that were killed outright (no runner to remove them)."""
        for stale in place.glob("seeing-networks-*"):
            pid = stale.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                try:
                    stale.rmdir()
                except OSError:
                    pass  # still holds a process, or another runner took it first

    @staticmethod
    def _memory_limits(memory: int) -> list[tuple[str, str]]:
        if Path("/sys/fs/cgroup/memory").is_dir():
            return [("memory.limit_in_bytes", str(memory)), ("memory.memsw.limit_in_bytes", str(memory))]
        return [("memory.max", str(memory)), ("memory.swap.max", "0")]

    @staticmethod
    def _place(controller: str) -> Path:
        """Where this process's cgroup of `controller` is (v1 hierarchy, else the unified one)."""
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        for line in lines:
            _, names, path = line.split(":", 2)
            if controller in names.split(",") and Path(f"/sys/fs/cgroup/{controller}").is_dir():
                return Path(f"/sys/fs/cgroup/{controller}") / path.lstrip("/")
        for line in lines:
            if line.startswith("0::") and Path("/sys/fs/cgroup/cgroup.controllers").is_file():
                here = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
                if controller in (here / "cgroup.subtree_control").read_text().split():
                    return here
        raise ValueError(f"no {controller} cgroup this process may use")

    @property
    def made(self) -> list[str]:
        return sorted(self.dirs)

    def join(self) -> None:
        for folder in self.dirs.values():
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def _counter(self, controller: str, files: tuple[str, ...], key: str) -> int:
        for file in files:
            try:
                for line in (self.dirs[controller] / file).read_text().splitlines():
                    if line.split()[:1] == [key]:
                        return int(line.split()[1])
            except (OSError, KeyError, ValueError, IndexError):
                continue
        return 0

    def hits(self) -> list[str]:
        found = []
        if self._counter("memory", ("memory.oom_control", "memory.events"), "oom_kill"):
            found.append("memory")
        if self._counter("pids", ("pids.events",), "max"):
            found.append("processes")
        return found

    def memory_peak(self) -> int | None:
        """The most memory the tree held at once, in bytes (None without a memory cgroup)."""
        for file in ("memory.max_usage_in_bytes", "memory.peak"):
            try:
                return int((self.dirs["memory"] / file).read_text())
            except (OSError, KeyError, ValueError):
                continue
        return None

    def remove(self) -> None:
        for folder in self.dirs.values():
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
