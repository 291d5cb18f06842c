"""Run every solution notebook once, timed, and print a Markdown table of seconds and quality figures.

    python benchmarks/series.py [NOTEBOOK...] [--timeout S] [--json FILE] [--markdown FILE] [--keep DIR]

Each notebook is copied into a temporary folder and executed there by the course's one runner
(`helpers.grading.runner.execute`: nbclient, a kernel of this very Python environment, a wall-clock
limit per cell), so the committed notebook is never touched. While a notebook runs, its kernel's
peak resident memory (VmHWM in /proc, on Linux) is read twice a second, and on an NVIDIA GPU the
memory in use on it (`nvidia-smi`). The quality figures are what
the notebook prints on lines of the form

    METRIC <name> = <value>
    METRIC <name> = <value> (<what the notebook asserts>)

for example `METRIC test accuracy = 0.947 (>= 0.90)`; see benchmarks/README.md. The table also names
the device, and says whether the series met the goal of at most 600 s on a CPU.

Exit status: 0 when every notebook ran, 1 when one failed (the table still lists the others).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "notebooks" / "solutions"
CPU_GOAL_SECONDS = 600
METRIC_LINE = re.compile(
    r"^\s*METRIC\s+(?P<name>[^=]+?)\s*=\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?%?)\s*(?:\((?P<bound>[^)]*)\))?\s*$"
)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Metric:
    """One quality figure a notebook printed: `METRIC name = value (bound)`."""

    name: str
    value: str
    bound: str = ""


@dataclass
class Run:
    """One notebook's run: how long it took, what it printed as quality, and whether it finished."""

    notebook: str
    seconds: float
    ok: bool
    metrics: list[Metric] = field(default_factory=list)
    error: str = ""
    slowest_cell: tuple[int, float] | None = None  # (code cell number, seconds)
    peak_mib: float | None = None  # the kernel's peak resident memory; None where /proc cannot tell
    gpu_peak_mib: float | None = None  # the GPU's most memory in use while it ran (nvidia-smi); None without


def parse_metrics(text: str) -> list[Metric]:
    """Every `METRIC name = value [(bound)]` line in `text`, in order."""
    found = []
    for line in ANSI.sub("", text).splitlines():
        match = METRIC_LINE.match(line)
        if match:
            found.append(Metric(match["name"], match["value"], (match["bound"] or "").strip()))
    return found


def output_text(cell, errors: bool = False) -> str:
    """The text a code cell printed or displayed (streams and text/plain results), and with `errors`
    also its exceptions as `Name: message`."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif errors and out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "\n".join(parts)


def gpu_used_mib() -> int:
    """Memory in use on the first NVIDIA GPU, in MiB, as `nvidia-smi` reports it; 0 without one."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "--id=0"],
                              capture_output=True, text=True, timeout=10)  # fmt: skip
        return int(done.stdout.split()[0]) if done.returncode == 0 else 0
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return 0


def children_peak_kib() -> int:
    """The largest peak resident memory (VmHWM, KiB) among this process's living children; 0 without /proc."""
    me, peak = os.getpid(), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            status = (stat.parent / "status").read_text() if parent == me else ""
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        peak = max(peak, int(match[1]) if match else 0)
    return peak


@contextmanager
def watching_peak_memory(interval: float = 0.5, gpu: bool = False):
    """Yield a two-item list that holds, once the block ends, the peak resident memory in KiB of any
    child (the kernel) and, with `gpu`, the most GPU memory in use in MiB, read every `interval` seconds."""
    peak, stop = [0, 0], threading.Event()

    def poll():
        while not stop.wait(interval):
            peak[0] = max(peak[0], children_peak_kib())
            if gpu:
                peak[1] = max(peak[1], gpu_used_mib())

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        yield peak
    finally:
        stop.set()
        watcher.join()


def run_notebook(path: Path, timeout: float, keep: Path | None = None, gpu: bool = False) -> Run:
    """Execute a temporary copy of the notebook at `path`; return its time, metrics and any error.
    With `keep`, the executed notebook (outputs and all) is written into that folder."""
    import nbformat

    from helpers.grading.runner import execute

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # timings saved in the file are another run's: the slowest cell is this run's
        cell.metadata.pop("execution", None)
    with tempfile.TemporaryDirectory(prefix="seeing-networks-bench-") as tmp:
        shutil.copy2(path, Path(tmp) / path.name)
        with watching_peak_memory(gpu=gpu) as peaks:
            run = execute(nb, tmp, timeout, record_timing=True)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / path.name)
    error = " ".join(ANSI.sub("", f"{run.stopped[0]}: {run.stopped[1]}").split())[:300] if run.stopped else ""
    seconds = run.seconds
    code = [c for c in nb.cells if c.cell_type == "code"]
    metrics = [m for c in code for m in parse_metrics(output_text(c))]
    peak_mib = peaks[0] / 1024 if peaks[0] else None
    return Run(path.stem, seconds, not error, metrics, error, slowest_cell(code), peak_mib, peaks[1] or None)


def cell_seconds(cell) -> float | None:
    """How long a code cell ran, from nbclient's timing metadata (None when it did not run)."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda stamp: _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (parse(end) - parse(start)).total_seconds()


def slowest_cell(code_cells) -> tuple[int, float] | None:
    """(code cell number, seconds) of the cell that ran longest, from nbclient's timing metadata."""
    timed = [(number, cell_seconds(cell)) for number, cell in enumerate(code_cells)]
    timed = [(number, took) for number, took in timed if took is not None]
    return max(timed, key=lambda pair: pair[1]) if timed else None


def cpu_name() -> str:
    """The CPU's model name with its family and model ("AMD EPYC" alone does not say which generation),
    from the first processor in /proc/cpuinfo; else what `platform` knows."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
        fields = {key.strip(): value.strip() for key, value in (line.split(":", 1) for line in first.splitlines() if ":" in line)}
        return f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"
    except (OSError, KeyError):
        return platform.processor() or platform.machine()


def describe_device() -> dict:
    """What the notebooks ran on: the device they pick, its name, the CPU, the library versions."""
    import torch
    import torchvision

    from helpers.session import pick_device

    device = pick_device()
    return {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "",
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def device_line(info: dict) -> str:
    where = f"{info['gpu']} (CUDA)" if info["gpu"] else f"CPU, {info['cores']} cores, {info['torch_threads']} torch threads"
    return (
        f"{info['date']} · device `{info['device']}`: {where} · {info['cpu']} · "
        f"torch {info['torch']} · torchvision {info['torchvision']} · Python {info['python']}"
    )


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def format_table(runs: list[Run], info: dict) -> str:
    """The Markdown table: one row per notebook, then the total and the CPU goal."""
    on_gpu = bool(info["gpu"])  # then a column for the GPU memory in use
    header = ["notebook", "seconds", "peak memory", *(["GPU memory in use (most)"] if on_gpu else []),
              "quality (as asserted in the notebook)", "slowest cell", "status"]  # fmt: skip
    align = ["---", "---:", "---:", *(["---:"] if on_gpu else []), "---", "---", "---"]
    lines = [device_line(info), "", _row(header), _row(align)]
    for run in runs:
        quality = "; ".join(f"{m.name} = {m.value}" + (f" ({m.bound})" if m.bound else "") for m in run.metrics) or "–"
        # A fresh kernel numbers the k-th code cell [k+1], as JupyterLab shows it.
        slow = f"[{run.slowest_cell[0] + 1}]: {run.slowest_cell[1]:.1f} s" if run.slowest_cell else "–"
        status = "ok" if run.ok else f"FAILED: {run.error.replace('|', '/')}"
        memory = f"{run.peak_mib / 1024:.2f} GiB" if run.peak_mib else "–"
        gpu = [f"{run.gpu_peak_mib / 1024:.2f} GiB" if run.gpu_peak_mib else "–"] if on_gpu else []
        lines.append(_row([run.notebook, f"{run.seconds:.1f}", memory, *gpu, quality.replace("|", "/"), slow, status]))
    total = sum(r.seconds for r in runs)
    if info["device"] == "cpu":
        goal = f"goal on a CPU: at most {CPU_GOAL_SECONDS} s, {'met' if total <= CPU_GOAL_SECONDS else 'NOT met'}"
    else:
        goal = f"on {info['device']}"
    peaks = [r.peak_mib for r in runs if r.peak_mib]
    most = f"most {max(peaks) / 1024:.2f} GiB" if peaks else "–"
    gpus = [r.gpu_peak_mib for r in runs if r.gpu_peak_mib]
    gpu = [f"most {max(gpus) / 1024:.2f} GiB" if gpus else "–"] if on_gpu else []
    lines.append(_row(["**total**", f"**{total:.1f}**", most, *gpu, goal, "", f"{sum(r.ok for r in runs)}/{len(runs)} ran"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/series.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: every notebooks/solutions/NN_*.ipynb)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds allowed per cell (default 1200)")
    parser.add_argument("--json", type=Path, help="also write the runs and the device as JSON here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--keep", type=Path, help="write each executed notebook (with its outputs) into this folder")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if not paths or missing:
        parser.error(f"notebooks must be existing .ipynb files, got {missing or 'none in ' + str(SOLUTIONS)}")
    info = describe_device()
    print(device_line(info), flush=True)
    runs = []
    for path in paths:
        print(f"running {path.name} ...", end=" ", flush=True)
        run = run_notebook(Path(path).resolve(), args.timeout, args.keep, gpu=bool(info["gpu"]))
        print(f"{run.seconds:.1f} s" + ("" if run.ok else f"  FAILED: {run.error}"), flush=True)
        runs.append(run)
    table = format_table(runs, info)
    print()
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.write_text(json.dumps({"device": info, "runs": [asdict(r) for r in runs]}, indent=1) + "\n")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # `helpers` also when the course is not installed
    sys.exit(main())
