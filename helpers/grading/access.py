"""Why the sandbox user cannot run the grader's Python, and the one command that fixes it.

As root, the grader runs every kernel as an unprivileged user (uid SANDBOX_UID, "others" to every file
of the course). When the Python environment lies under a folder that others may not enter (``/root`` is
``drwx------`` on most systems), starting the kernel fails with a bare ``[Errno 13] Permission denied``.
`closed_on_the_way` finds the folders (and the file) in the way; `explain_denied` says it in words.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path


def closed_on_the_way(path: str | Path) -> tuple[list[Path], list[Path]]:
    """(folders others cannot enter, files others cannot read or run) on the way to `path` and to where it
    leads (a venv's ``bin/python`` is a link to the real interpreter: both are checked), from ``/`` down.

    Only the "others" permission bits count (the sandbox user owns nothing and is in no group of them).
    """
    folders: list[Path] = []
    files: list[Path] = []
    for target in dict.fromkeys([Path(os.path.abspath(path)), Path(os.path.realpath(path))]):
        for folder in reversed(target.parents):
            try:
                mode = os.stat(folder).st_mode
            except OSError:
                continue
            if not mode & stat.S_IXOTH and folder not in folders:
                folders.append(folder)
        try:
            mode = os.stat(target).st_mode
        except OSError:
            continue
        if (not mode & stat.S_IXOTH or not mode & stat.S_IROTH) and target not in files:
            files.append(target)
    return folders, files


def fix_command(path: str | Path) -> str:
    """The one shell command that lets others reach and run `path` ("" when nothing is in the way)."""
    folders, files = closed_on_the_way(path)
    parts = []
    if folders:
        parts.append("chmod o+x " + " ".join(shlex.quote(str(f)) for f in folders))
    if files:
        parts.append("chmod o+rx " + " ".join(shlex.quote(str(f)) for f in files))
    return " && ".join(parts)


def explain_denied(executable: str | Path, uid: int, error: BaseException | None = None) -> str:
    """The message for a sandbox user (`uid`) that may not run `executable`: why, and the command that fixes it."""
    command = fix_command(executable)
    folders, files = closed_on_the_way(executable)
    why = (
        f"the folder(s) {', '.join(map(str, folders))} may not be entered by other users" if folders
        else f"{', '.join(map(str, files))} may not be run by other users" if files
        else f"the system refused it ({error})"
    )  # fmt: skip
    fix = (f"Run `{command}` (it lets others pass through, and lists nothing), then grade again; or grade "
           "as an ordinary user" + (", or install the course's environment outside /root." if str(executable).startswith("/root/") else ".")) if command else (
           "Make the Python environment and the course readable by others, or grade as an ordinary user.")  # fmt: skip
    return (f"grading as root runs each kernel as the unprivileged uid {uid}, which cannot start {executable}: {why}. {fix}")
