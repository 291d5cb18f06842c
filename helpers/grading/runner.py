"""The one notebook runner: nbclient's `NotebookClient`, for the grader, the benchmarks and the smoke tests.

    execute(nb, cwd, timeout, ...) -> Execution          run the cells (a kernel of this Python, or any argv)
    run_graded(nb, labels, notebook, module, questions, root, ...) -> Run
        run a prepared submission in a kernel inside `helpers.sandbox`, then ask it for the answers

Limits are the grader's, by the wall clock: a cell running past `timeout` is interrupted (an
`interrupt_request` on the control channel), and if the kernel does not answer within `GRACE`
seconds its whole tree is killed; the notebook as a whole gets `limit` seconds. The client notices a
dead kernel within a second (the sandbox runner, the kernel's parent, exits with it).

After the last cell the grader asks, over the kernel client's own shell channel, one question per
exercise (`helpers.exercises.answers.question`): the inputs of a function exercise are drawn now from
the grader's seed. The reply is read only from the stdout stream of THAT request (its msg_id), framed
by a nonce the kernel sees only in the question, and bounded in size.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

GRACE = 5.0  # seconds an interrupted cell gets before its kernel is killed
LOST_REPLY_GRACE = 10.0  # seconds a cell's reply may lag its last output before it counts as lost
MAX_OUTPUT_CHARS = 2_000_000  # per cell, kept in the executed notebook
MAX_REPLY_CHARS = 64 * 1024 * 1024
MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # one message from the kernel, at most
STARTUP_TIMEOUT = 240
SANDBOX_UID = SANDBOX_GID = 65534  # "nobody": who the kernels run as when the grader is root


@dataclass
class Execution:
    """How a run of a notebook's cells went: the notebook with its outputs, and why it stopped early (if it did)."""

    nb: object
    stopped: tuple[str, str] | None = None  # (status, detail): "timed out" / "kernel died" / "error" / "runner error"
    seconds: float = 0.0
    last_cell: int = -1  # index (among code cells) of the last cell that started


@dataclass
class Run:
    """A graded notebook's run: how it went, and each exercise's record (or why there is none)."""

    execution: Execution
    answers: dict[str, dict | str] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)  # the sandbox runner's last line (caps, signal, protections)


def _client_class():
    from nbclient import NotebookClient

    class RunnerClient(NotebookClient):
        """A NotebookClient that keeps at most MAX_OUTPUT_CHARS of each cell's outputs, and does not wait
        for ever on a reply the kernel sent but that never arrived (see `_async_poll_for_reply`)."""

        async def _async_poll_for_reply(self, msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive):
            """nbclient's wait for the cell's execute_reply, bounded once the kernel has said it is idle.

            The outputs (iopub) end with the kernel's "idle" for this cell; the reply comes on the shell
            channel. Rarely, in CI and under load, the reply never came although the kernel was idle and
            every output had arrived: nbclient then waits the whole cell timeout. Here, LOST_REPLY_GRACE
            s after the outputs end without a reply, the cell counts as finished, failed when it printed
            an error, and a line on stderr says so."""
            reply = asyncio.ensure_future(super()._async_poll_for_reply(msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive))
            try:
                await asyncio.wait({reply, task_poll_output_msg}, return_when=asyncio.FIRST_COMPLETED)
                if not reply.done():
                    done, _ = await asyncio.wait({reply}, timeout=LOST_REPLY_GRACE)
                    if not done:
                        reply.cancel()
                        task_poll_kernel_alive.cancel()
                        task_poll_output_msg.result()  # its own error, if it had one
                        print(f"runner: no reply to a cell {LOST_REPLY_GRACE:g} s after its last output; it counts as finished", file=sys.stderr)
                        return _reply_from_outputs(msg_id, cell)
                return await reply
            except asyncio.CancelledError:
                reply.cancel()
                raise

        def output(self, outs, msg, display_id, cell_index):
            used = getattr(self, "_sn_used", {})
            self._sn_used = used
            content = msg.get("content", {})
            size = len(content.get("text", "")) + sum(len(str(v)) for v in content.get("data", {}).values())
            used[cell_index] = used.get(cell_index, 0) + size
            if used[cell_index] > MAX_OUTPUT_CHARS:
                if used[cell_index] - size <= MAX_OUTPUT_CHARS:
                    from nbformat.v4 import new_output

                    outs.append(new_output("stream", name="stdout", text=f"(more than {MAX_OUTPUT_CHARS} characters of output: the rest is not kept)\n"))
                return None
            return super().output(outs, msg, display_id, cell_index)

    return RunnerClient


def _reply_from_outputs(msg_id: str, cell) -> dict:
    """An execute_reply for a cell whose reply was lost: "error", with the error output's name, value and
    traceback, when the cell printed one; else "ok"."""
    error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
    content = {"status": "ok"}
    if error is not None:
        content = {"status": "error", "ename": error.get("ename", ""), "evalue": error.get("evalue", ""), "traceback": error.get("traceback", [])}
    return {"parent_header": {"msg_id": msg_id}, "header": {"msg_type": "execute_reply"}, "metadata": {}, "content": content}


def kernel_manager(prefix: list[str] | None = None, folder: Path | None = None, owner: tuple[int, int] | None = None):
    """An AsyncKernelManager that starts ipykernel with this very Python, after `prefix` (e.g. the sandbox).

    With `folder`, the kernel talks over Unix sockets in it (no TCP: a kernel in its own network
    namespace is still reachable), and its connection file is written there, owned by `owner`.
    """
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec = KernelSpec(
        argv=[*(prefix or []), sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        display_name=f"Python ({sys.executable})", language="python", interrupt_mode="message",
    )  # fmt: skip

    class Specs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return spec

    class Manager(AsyncKernelManager):
        def write_connection_file(self, **kwargs):
            super().write_connection_file(**kwargs)
            if owner is not None:
                os.chown(self.connection_file, *owner)

    km = Manager(kernel_name="seeing-networks", kernel_spec_manager=Specs())
    try:  # no message the kernel sends may be larger than this (the client's sockets drop it)
        import zmq

        km.context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    except Exception:  # noqa: BLE001 - an older pyzmq: the per-cell output cap still applies
        pass
    if folder is not None:
        from helpers.sandbox import kernel_transport

        talk = kernel_transport(folder)  # Unix sockets in a sub-folder with a random name
        km.transport, km.ip, km.connection_file = talk["transport"], talk["ip"], str(folder / "kernel.json")
    return km


async def _release(client) -> None:
    """After the kernel is ended: stop the client's channels, then free the kernel manager's control
    socket, connection files and zmq context. nbclient does neither for a kernel manager it was handed:
    each channel left running keeps a heartbeat thread and its sockets alive in the grader for good, and
    each context (its eventfds and epoll) stays open until a full garbage collection happens to run."""
    if getattr(client, "kc", None) is not None:
        client.kc.stop_channels()
    await client.km.cleanup_resources()


async def _execute(client, labels: list[str], timeout: float, limit: float, started: float, run: Execution, stop_on_error: bool):
    """Run every code cell of `client.nb` in order; fill `run.stopped` when one stops the notebook."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    number = -1
    for index, cell in enumerate(client.nb.cells):
        if cell.get("cell_type") != "code":
            continue
        number += 1
        label = labels[number] if number < len(labels) else f"cell {number + 1}"
        left = limit - (time.monotonic() - started)
        if left <= 0:
            run.stopped = ("timed out", f"the notebook ran past its limit of {limit:g} s before {label}")
            return
        client.timeout = max(1, int(min(timeout, left) + 0.999))
        run.last_cell, began = number, time.monotonic()
        try:
            await client.async_execute_cell(cell, index, execution_count=number + 1)
        except CellTimeoutError:
            took = time.monotonic() - began
            whose = f" (the notebook's limit of {limit:g} s)" if timeout > left else ""
            interrupted = await _interrupt(client)
            killed = f"; it ignored the interrupt and was killed {time.monotonic() - began:.0f} s after the cell began"
            run.stopped = ("timed out", f"timed out in {label} after {took:.0f} s{whose}" + ("" if interrupted else killed))
            return
        except DeadKernelError:
            run.stopped = ("kernel died", f"the kernel died in {label} (noticed after {time.monotonic() - began:.1f} s)")
            return
        except CellExecutionError as error:
            if stop_on_error:
                run.stopped = ("error", f"{label} raised {' '.join(str(error).split())[-300:]}")
                return
            raise


async def _interrupt(client) -> bool:
    """Interrupt the running cell; True when the kernel answers again within GRACE s, else kill it (False)."""
    try:
        await client.km.interrupt_kernel()
        msg_id = client.kc.execute("pass", silent=True, store_history=False)
        deadline = time.monotonic() + GRACE
        while time.monotonic() < deadline:
            try:
                reply = await client.kc.get_shell_msg(timeout=max(0.05, deadline - time.monotonic()))
            except Empty:
                break
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return True
    except Exception:  # noqa: BLE001 - a kernel that cannot be interrupted is killed
        pass
    await _kill(client.km)
    return False


async def _kill(km) -> None:
    """End the kernel's whole tree: SIGTERM to the sandbox runner (it kills its tree), SIGKILL if it lingers."""
    process = getattr(km.provisioner, "process", None) if km.provisioner else None
    if process is None or process.poll() is not None:
        return
    for signum, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            process.send_signal(signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if process.poll() is not None:
            return


async def _request(client, code: str, timeout: float) -> tuple[str, str] | str:
    """Run `code` in the kernel; (its stdout, its error or "") from the messages of THAT request only,
    or why there is none (a sentence: timed out, the kernel died, too long)."""
    msg_id = client.kc.execute(code, store_history=False, allow_stdin=False, stop_on_error=False)
    texts, size, error = [], 0, ""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            await _kill(client.km)
            return f"timed out: no reply within {timeout:g} s"
        try:
            msg = await client.kc.get_iopub_msg(timeout=min(1.0, left))
        except Empty:
            if not await client.km.is_alive():
                return "the kernel died while answering"
            continue
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg.get("msg_type"), msg.get("content", {})
        if kind == "stream" and content.get("name") == "stdout":
            size += len(content.get("text", ""))
            if size > MAX_REPLY_CHARS:
                return f"the reply was longer than {MAX_REPLY_CHARS} characters"
            texts.append(content.get("text", ""))
        elif kind == "error":
            error = f"{content.get('ename', '')}: {content.get('evalue', '')}"
        elif kind == "status" and content.get("execution_state") == "idle":
            return "".join(texts), error


async def _ask(client, question: str, timeout: float, tripwires: bool = False) -> dict | str:
    """Ask the kernel one question; the record it replied, or why there is none (a sentence).

    With `tripwires` (installed by `sourcecheck.tripwire_source`), they are reset before the answer is
    computed and the names they noted come back in the record's "tripped".
    """
    from helpers.exercises.answers import RESPONDER, read_reply

    nonce = secrets.token_hex(16)
    code = f"{RESPONDER}({nonce!r}, {question!r})"
    if tripwires:
        code = f"_sn_tripwire_reset()\n{RESPONDER}({nonce!r}, {question!r}, _sn_tripped)"
    reply = await _request(client, code, timeout)
    if isinstance(reply, str):
        return reply
    text, error = reply
    try:
        return read_reply(text, nonce)
    except ValueError as why:
        return f"the kernel's reply was unreadable ({why})" + (f"; the question raised {error}"[:300] if error else "")


def execute(nb, cwd: str | Path, timeout: float, limit: float = float("inf"), labels: list[str] | None = None,
            stop_on_error: bool = True, record_timing: bool = False, env: dict | None = None) -> Execution:  # fmt: skip
    """Run the notebook `nb` (changed in place: outputs) in a kernel of this Python, in folder `cwd`.

    Stops at the first failing cell when `stop_on_error`; never raises for the notebook's own trouble.
    """
    run = Execution(nb)
    client = _client_class()(nb, km=kernel_manager(), timeout=timeout, allow_errors=not stop_on_error,
                             record_timing=record_timing, startup_timeout=STARTUP_TIMEOUT, resources={"metadata": {"path": str(cwd)}})  # fmt: skip
    labels = labels or [f"cell {n + 1}" for n in range(len(nb.cells))]

    async def main():
        started = time.monotonic()
        try:
            async with client.async_setup_kernel(**({"env": env} if env is not None else {})):
                try:
                    await _execute(client, labels, timeout, limit, started, run, stop_on_error)
                finally:  # nbclient leaves a kernel it was handed running: end it (and its tree) here
                    await _kill(client.km)
                    await _release(client)
        except Exception as error:  # noqa: BLE001 - the kernel did not start, a channel broke
            run.stopped = run.stopped or ("runner error", f"{type(error).__name__}: {' '.join(str(error).split())[:300]}")
        run.seconds = time.monotonic() - started

    asyncio.run(main())
    return run


# --------------------------------------------------------------------------------------------
# A graded notebook: in the sandbox, then asked
# --------------------------------------------------------------------------------------------

#: The graded kernel's start-up file, run before any cell: the course comes from its installed place
#: (never the folder), the notebook's exercises are imported without references, the responder is bound.
KERNEL_STARTUP = """\
import os as _os, sys as _sys
_sys.path[:] = [_p for _p in _sys.path if _p not in ("", ".", _os.getcwd())]
from helpers.exercises.answers import start_responder as _start
_start({module!r}, {notebook!r})
del _os, _sys, _start
"""


def sandbox_env(folder: Path, threads: int) -> dict:
    """The whole environment of a graded kernel: nothing of the grader's own is passed on."""
    from helpers.exercises.core import GRADING_ENV

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
        if key.startswith("SEEING_NETWORKS_") or key == "CUDA_VISIBLE_DEVICES":
            env.setdefault(key, value)
    env[GRADING_ENV] = "1"
    return env


def make_sandbox(root: Path, startup: str, owner: tuple[int, int] | None) -> Path:
    """A fresh folder holding only the kernel's start-up file (and, later, its sockets)."""
    folder = Path(tempfile.mkdtemp(prefix="sandbox-", dir=root))
    for sub in ("tmp", ".matplotlib", ".ipython/profile_default/startup", ".jupyter/runtime"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / ".ipython/profile_default/startup/00-seeing-networks.py").write_text(startup)
    if owner is not None:
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, *owner, follow_symlinks=False)
    folder.chmod(0o700)
    return folder


def read_summary(log: Path) -> dict:
    """The sandbox runner's last JSON line in its log (the tail only), or {}."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - 65536))
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
        for line in reversed(lines):
            if line.startswith("{"):
                return json.loads(line)
    except (OSError, ValueError):
        pass
    return {}


class Runners:
    """The sandbox runners alive now, so that stopping the grader stops them (each takes its tree)."""

    def __init__(self):
        self.live, self.stopping = set(), False

    def stop_all(self) -> None:
        self.stopping = True
        for process in list(self.live):
            try:
                process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass


def run_graded(nb, labels: list[str], notebook: str, module: str, questions: dict[str, str], root: Path,
               timeout: float, limit: float, threads: int, runners: Runners | None = None,
               sandbox_options: list[str] | None = None, tripwires: str = "") -> Run:  # fmt: skip
    """Run a prepared notebook in a kernel inside `helpers.sandbox`, then ask it each question.

    `questions` maps exercise names to `answers.question(...)` texts; `tripwires` is Python source run
    after the last cell, before the questions (`sourcecheck.tripwire_source`). Never raises for the
    notebook's own trouble: what went wrong is in `Run.execution.stopped` and in `Run.answers`.
    """
    owner = (SANDBOX_UID, SANDBOX_GID) if os.geteuid() == 0 else None
    folder = make_sandbox(root, KERNEL_STARTUP.format(module=module, notebook=notebook), owner)
    log = root / f"{folder.name}.log"
    prefix = [sys.executable, "-m", "helpers.sandbox", "--limit", f"{limit + 30:g}", "--folder", str(folder),
              "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--parent", str(os.getpid()), *(sandbox_options or []), "--"]  # fmt: skip
    km = kernel_manager(prefix, folder, owner)
    run = Run(Execution(nb))
    client = _client_class()(nb, km=km, timeout=timeout, allow_errors=True, record_timing=False,
                             startup_timeout=STARTUP_TIMEOUT, resources={"metadata": {"path": str(folder)}})  # fmt: skip

    async def main():
        started = time.monotonic()
        try:
            with log.open("wb") as out:
                async with client.async_setup_kernel(env=sandbox_env(folder, threads), stdout=out, stderr=out):
                    process = km.provisioner.process
                    if runners is not None:
                        runners.live.add(process)
                    try:
                        await _execute(client, labels, timeout, limit, started, run.execution, stop_on_error=False)
                        if run.execution.stopped is None or run.execution.stopped[0] == "timed out" and await km.is_alive():
                            wired = bool(tripwires) and await _request(client, tripwires, timeout) == ("", "")
                            for name, text in questions.items():
                                left = limit - (time.monotonic() - started)
                                run.answers[name] = await _ask(client, text, max(1.0, min(timeout, left)), wired)
                    finally:
                        await _kill(km)
                        await _release(client)
                        if runners is not None:
                            runners.live.discard(process)
        except Exception as error:  # noqa: BLE001 - the kernel did not start, a channel broke
            detail = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
            run.execution.stopped = run.execution.stopped or ("runner error", detail)
        run.execution.seconds = time.monotonic() - started

    try:
        asyncio.run(main())
        run.summary = read_summary(log)
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        log.unlink(missing_ok=True)
    return run
