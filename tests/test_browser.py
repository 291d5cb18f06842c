"""JupyterLab in a real browser, on a real course notebook.

Starts JupyterLab from this environment on a free local port, copies the untouched student notebook
`notebooks/02_iou_ap_map.ipynb` into the folder it serves (the repository's copy is never opened),
opens it in headless Chromium driven by Playwright, and runs all cells from the Run menu, as a
student would on first opening it. Then it checks what the course promises about that first run:

- Run All reaches the end: every code cell gets an execution count, the last one included (check
  cells carry the `raises-exception` tag, so a failing check does not stop the run);
- every check cell (metadata "exercise") shows its verdict as one or two readable lines
  ("✗ Not attempted yet (02_iou_ap_map · box_iou): ..." and the hint line), not a traceback;
- the notebook's widget is drawn as a control (sliders and the figure they drive, no "Error
  displaying widget"), and moving a slider redraws the figure, so the kernel answers through it.

A full-page screenshot of the whole run notebook goes to `test-artifacts/` (on a failure,
`jupyterlab-failure.png`).

What it needs it installs: Debian's `chromium` (with apt-get, when running as root) and the
`playwright` Python package (in the dev extra; otherwise pip installs it into a cache folder). No
browser is downloaded by Playwright: it drives /usr/bin/chromium.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
#: A student notebook that runs in well under a minute and has exercises and a widget.
COURSE_NOTEBOOK = ROOT / "notebooks" / "02_iou_ap_map.ipynb"
RUN_ALL_SECONDS = 600  # the kernel needs 20-60 s for it; CI machines can be much slower
CHROMIUM = Path(os.environ.get("SEEING_NETWORKS_CHROMIUM", "/usr/bin/chromium"))
PLAYWRIGHT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "seeing-networks" / (
    f"playwright-py{sys.version_info.major}{sys.version_info.minor}"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FAILURE_TEXTS = ("Error displaying widget", "model not found", "Failed to load model class")
#: What a Python traceback (rather than a check's verdict) leaves in an output area.
TRACEBACK_TEXTS = ("Traceback", "-----", "Cell In[", 'File "', "core.py", "helpers/exercises")


def cannot_continue(reason: str):
    """Skip on a machine where we may not install things; fail where we could have (as root)."""
    if os.geteuid() == 0:
        pytest.fail(reason)
    pytest.skip(reason + " (run as root, or install it yourself)")


def ensure_chromium() -> Path:
    """/usr/bin/chromium, installed with apt-get when it is missing and we are root."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        cannot_continue(f"{CHROMIUM} is missing and apt-get cannot install it here")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            cannot_continue(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    if not CHROMIUM.exists():
        cannot_continue(f"apt-get installed chromium, but {CHROMIUM} is not there")
    return CHROMIUM


def ensure_playwright():
    """Playwright's sync API, pip-installed into a cache folder when this environment lacks it."""
    try:
        from playwright import sync_api
    except ImportError:
        if str(PLAYWRIGHT_CACHE) not in sys.path:
            sys.path.append(str(PLAYWRIGHT_CACHE))  # after the environment's own packages
        try:
            from playwright import sync_api
        except ImportError:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--target", str(PLAYWRIGHT_CACHE), "playwright"],
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if done.returncode != 0:
                cannot_continue(f"pip could not install playwright:\n{done.stderr[-2000:]}")
            sys.path_importer_cache.pop(str(PLAYWRIGHT_CACHE), None)  # it was cached as missing
            importlib.invalidate_caches()
            from playwright import sync_api
    return sync_api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accept_kernel_dialog(page) -> None:
    """Take the offered kernel if JupyterLab asks which one to start (it may, when the notebook opens
    before the kernel specs have loaded)."""
    dialog = page.locator(".jp-Dialog:has-text('Select Kernel')")
    if dialog.count() and dialog.first.is_visible():
        dialog.first.locator(".jp-mod-accept").first.click()


def wait_for_idle_kernel(page, seconds: float = 120) -> None:
    """Wait until the notebook's kernel reports idle, answering a kernel-choice dialog on the way."""
    deadline = time.monotonic() + seconds
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    while time.monotonic() < deadline:
        accept_kernel_dialog(page)
        if idle.count():
            return
        page.wait_for_timeout(250)
    pytest.fail(f"the kernel was not idle within {seconds} s")


def start_kernel_session(url: str, token: str, notebook: str) -> None:
    """Start the notebook's kernel through the REST API before the page opens it.

    JupyterLab then attaches to the running session. Otherwise, on a first start in a new
    environment, it may open the notebook before it knows the kernel specs and ask which kernel to use.
    """
    body = json.dumps({"path": notebook, "type": "notebook", "name": notebook, "kernel": {"name": "python3"}}).encode()
    request = urllib.request.Request(f"{url}/api/sessions?token={token}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as reply:
        assert reply.status == 201, reply.status


def run_all_cells(page, attempts: int = 3) -> None:
    """Run > Run All Cells, as a person would; again if the kernel was not connected yet and nothing started."""
    first_prompt = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").first
    for attempt in range(attempts):
        accept_kernel_dialog(page)
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if first_prompt.inner_text().strip() not in ("[ ]:", "[]:", ""):  # "[*]:" or "[1]:"
                return
            page.wait_for_timeout(250)
    pytest.fail(f"Run All Cells started nothing in {attempts} attempts")


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on a free port, serving tmp_path; yields (url, token). Stopped afterwards."""
    port, token = free_port(), uuid.uuid4().hex
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / ".runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / ".workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / ".settings"),
    }
    settings = tmp_path / ".settings" / "@jupyterlab"
    (settings / "apputils-extension").mkdir(parents=True)
    # No "would you like news?" toast over the notebook.
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    # Every cell in the page (no virtual scrolling), so each one can be read and all are in the screenshot,
    # which ends at the last cell (no room to scroll past it).
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none", "scrollPastEnd": false}'
    )
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.port_retries=0",
    ]  # fmt: skip
    if os.geteuid() == 0:  # containers and CI machines often run as root
        command.append("--allow-root")
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited early:\n{(tmp_path / 'jupyterlab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in 120 s:\n{(tmp_path / 'jupyterlab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, token
    finally:
        server.send_signal(signal.SIGTERM)  # the server shuts its kernels down
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture
def browser_tools():
    """(Chromium's path, Playwright's sync API), installed first if they are missing."""
    return ensure_chromium(), ensure_playwright()


# What the page shows of each cell, in notebook order (one round trip, so all of it is from one moment).
READ_CELLS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell')).map(cell => {
    const prompt = cell.querySelector('.jp-InputPrompt');
    const outputs = cell.querySelector('.jp-OutputArea');
    return {
        code: cell.classList.contains('jp-CodeCell'),
        prompt: prompt ? prompt.innerText.trim() : '',
        output: outputs ? outputs.innerText : '',
        sliders: cell.querySelectorAll('.jupyter-widgets.widget-slider').length,
        figures: cell.querySelectorAll('.widget-output img').length,
    };
})"""
EXECUTED = re.compile(r"\[\d+\]:")


def code_cell_label(nb, index: int) -> str:
    """'cell 13 (`image, target = scenes[0]`)': the cell's place in the notebook and its first line."""
    first = next((line for line in nb.cells[index].source.splitlines() if line.strip()), "")
    return f"cell {index} (`{first[:80]}`)"


def wait_until_all_cells_ran(page, nb, seconds: float = RUN_ALL_SECONDS) -> list[dict]:
    """Wait until every code cell shows an execution count and the kernel is idle; returns the cells.

    Fails early, naming the cell, when Run All stopped: the kernel idle, nothing queued ("[*]"), and
    code cells still without a count (JupyterLab clears the queue when a cell without the
    `raises-exception` tag fails).
    """
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    deadline, stopped_since = time.monotonic() + seconds, None
    while True:
        accept_kernel_dialog(page)
        cells = page.evaluate(READ_CELLS)
        if len(cells) != len(nb.cells):
            pytest.fail(f"the page shows {len(cells)} cells, the notebook has {len(nb.cells)}")
        code = [i for i, cell in enumerate(cells) if cell["code"]]
        not_run = [i for i in code if not EXECUTED.fullmatch(cells[i]["prompt"])]
        queued = [i for i in code if cells[i]["prompt"] == "[*]:"]
        kernel_idle = idle.count() > 0
        if not not_run and kernel_idle:
            return cells
        if kernel_idle and not queued:
            stopped_since = stopped_since or time.monotonic()
            if time.monotonic() - stopped_since > 10:
                ran = [i for i in code if i not in not_run]
                last = ran[-1] if ran else None
                shown = f"\n{code_cell_label(nb, last)} shows:\n{cells[last]['output'][-3000:]}" if last is not None else ""
                pytest.fail(
                    f"Run All stopped before the end of an untouched {COURSE_NOTEBOOK.name}: "
                    f"{len(not_run)} of {len(code)} code cells never ran, the first is "
                    f"{code_cell_label(nb, not_run[0])}; the last that ran is "
                    f"{code_cell_label(nb, last) if last is not None else 'none'}.{shown}"
                )
        else:
            stopped_since = None
        if time.monotonic() > deadline:
            pytest.fail(
                f"Run All did not finish in {seconds} s: {len(not_run)} of {len(code)} code cells without an "
                f"execution count (first: {code_cell_label(nb, not_run[0]) if not_run else '-'}), "
                f"{len(queued)} queued, kernel {'idle' if kernel_idle else 'busy'}"
            )
        page.wait_for_timeout(500)


def screenshot_whole_notebook(page, path: Path, width: int) -> None:
    """A full-page screenshot showing every cell: the notebook scrolls inside JupyterLab's fixed-size
    shell, so the window is first made tall enough to hold all of it (within Chromium's limits)."""
    hidden = page.evaluate("""() => {
        const scroller = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');
        if (!scroller) return 0;
        scroller.scrollTop = 0;
        return scroller.scrollHeight - scroller.clientHeight;
    }""")
    height = page.viewport_size["height"]
    page.set_viewport_size({"width": width, "height": min(height + hidden + 40, 16_000)})
    page.wait_for_timeout(1000)  # let the taller window lay out and paint
    page.screenshot(path=str(path), full_page=True)


def wait_for_widget(page, nb, index: int, seconds: float = 90) -> None:
    """Wait until cell `index` shows its widget as a control: a slider and the figure it drives (the
    figure comes in a message after the cell's own execution). Fails with what the cell shows instead."""
    deadline = time.monotonic() + seconds
    while True:
        cell = page.evaluate(READ_CELLS)[index]
        if cell["sliders"] and cell["figures"]:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"the widget of {code_cell_label(nb, index)} was not drawn as a control within {seconds} s: "
                f"{cell['sliders']} sliders, {cell['figures']} figures; its output area shows:\n{cell['output'][:2000]}"
            )
        page.wait_for_timeout(500)


def assert_readable_verdicts(nb, cells: list[dict], checks: list[int]) -> None:
    """Each check cell of an untouched notebook says "not attempted yet" in one or two lines (the
    verdict and the hint), never as a traceback."""
    for i in checks:
        exercise = nb.cells[i].metadata["exercise"]
        where = f"check cell {i} ({exercise['id']})"
        shown = cells[i]["output"]
        lines = [line for line in shown.splitlines() if line.strip()]
        leaks = [marker for marker in TRACEBACK_TEXTS if marker in shown]
        assert not leaks, f"{where} shows a traceback ({', '.join(map(repr, leaks))}) instead of a verdict:\n{shown}"
        assert 1 <= len(lines) <= 2, f"{where} should show its verdict in one or two lines, it shows:\n{shown}"
        assert "\x1b" not in shown and "[0m" not in shown, f"{where} shows raw colour codes:\n{shown!r}"
        heading = f"({exercise['notebook']} · {exercise['id']})"
        assert "Not attempted yet" in lines[0] and heading in lines[0], (
            f"{where}: an untouched exercise should say '✗ Not attempted yet {heading}: ...', it shows:\n{shown}"
        )
        assert any(f"ex.{exercise['id']}.hint()" in line for line in lines), f"{where} does not offer the hint:\n{shown}"


@pytest.fixture
def course_notebook(jupyterlab, tmp_path):
    """The untouched student notebook, copied into the folder JupyterLab serves: (name, its cells)."""
    target = tmp_path / COURSE_NOTEBOOK.name
    shutil.copyfile(COURSE_NOTEBOOK, target)
    return target.name, nbformat.read(target, as_version=4)


def test_course_notebook_runs_all_in_jupyterlab(browser_tools, jupyterlab, course_notebook):
    chromium, sync_api = browser_tools
    url, token = jupyterlab
    name, nb = course_notebook
    repo_copy = hashlib.sha256(COURSE_NOTEBOOK.read_bytes()).hexdigest()
    checks = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and "exercise" in cell.metadata]
    widget_cells = [
        i for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and re.search(r"\binteract\b|widgets\.\w+\(", cell.source)
        and "nbval-ignore-output" in cell.metadata.get("tags", [])
    ]  # fmt: skip
    assert checks, f"{name} has no check cells (metadata 'exercise'): pick a notebook with exercises"
    assert widget_cells, f"{name} shows no widget (a cell tagged nbval-ignore-output that makes one)"
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / f"jupyterlab-{Path(name).stem}.png"
    (ARTIFACTS / "jupyterlab-failure.png").unlink(missing_ok=True)  # an old run's, not this one's
    width = 1400

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        page = None
        try:
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.set_default_timeout(120_000)
            start_kernel_session(url, token, name)
            page.goto(f"{url}/lab/tree/{name}?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            # The kernel must be up before Run All, or the cells queue behind its start.
            wait_for_idle_kernel(page, seconds=180)
            run_all_cells(page)
            wait_until_all_cells_ran(page, nb)
            for i in widget_cells:
                wait_for_widget(page, nb, i)
            cells = page.evaluate(READ_CELLS)
            screenshot_whole_notebook(page, screenshot, width)

            # Run All reached the end; the checks speak in verdicts; the widget is a control.
            code = [i for i, cell in enumerate(cells) if cell["code"]]
            assert EXECUTED.fullmatch(cells[code[-1]]["prompt"]), (
                f"Run All did not reach the last code cell, {code_cell_label(nb, code[-1])}: "
                f"its prompt is {cells[code[-1]]['prompt']!r}"
            )
            assert "Seeing Networks" in cells[code[0]]["output"], (
                f"the set-up cell did not print its one-line banner; it shows:\n{cells[code[0]]['output'][:2000]}"
            )
            assert_readable_verdicts(nb, cells, checks)
            text = page.locator(".jp-Notebook").inner_text()
            for failure in FAILURE_TEXTS:
                assert failure.lower() not in text.lower(), f"{failure!r} in the notebook:\n{text[-5000:]}"

            # Move the widget's first slider (dx: the first detection's box) one step with the keyboard,
            # as a person can: the kernel must answer through the widget and draw a new figure.
            widget = page.locator(".jp-Notebook .jp-Cell").nth(widget_cells[0])
            figure = widget.locator(".widget-output img").first
            before = figure.get_attribute("src")
            figure.evaluate("img => img.setAttribute('data-before-move', '')")
            slider = widget.locator(".jupyter-widgets.widget-slider").first
            readout = slider.locator(".widget-readout").first
            value_before = readout.inner_text().strip()
            slider.locator(".noUi-handle").first.focus()
            page.keyboard.press("ArrowRight")
            redrawn = "cell => { const img = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell]" \
                "  .querySelector('.widget-output img'); return img && !img.hasAttribute('data-before-move'); }"
            try:
                page.wait_for_function(redrawn, arg=widget_cells[0], timeout=60_000)
            except sync_api.TimeoutError:
                pytest.fail(
                    f"moving the first slider of {code_cell_label(nb, widget_cells[0])} "
                    f"({value_before} -> {readout.inner_text().strip()}) drew no new figure within 60 s"
                )
            after = widget.locator(".widget-output img").first.get_attribute("src")
            value_after = readout.inner_text().strip()
            assert value_after != value_before, f"the slider did not move ({value_before} -> {value_after})"
            assert after != before, f"moving the slider ({value_before} -> {value_after}) redrew the same figure"
        except BaseException:  # pytest.fail raises a BaseException too: keep a picture of what went wrong
            if page is not None:
                try:
                    screenshot_whole_notebook(page, ARTIFACTS / "jupyterlab-failure.png", width)
                except Exception as error:  # the failure itself matters more than its picture
                    print(f"no failure screenshot: {error}")
            raise
        finally:
            browser.close()

    assert hashlib.sha256(COURSE_NOTEBOOK.read_bytes()).hexdigest() == repo_copy, "the repository's notebook changed"
    assert screenshot.exists() and screenshot.stat().st_size > 50_000, f"{screenshot} is missing or nearly empty"
