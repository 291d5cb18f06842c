"""JupyterLab in a real browser: widgets must render as controls.

Starts JupyterLab from this environment on a free local port, opens a small notebook (the course's
set-up cell, an IntSlider, an `interact` control) in headless Chromium driven by Playwright, runs all
cells from the Run menu, and checks that the widgets were drawn as controls rather than as "Error
displaying widget" or a model-not-found message. A screenshot goes to `test-artifacts/`.

What it needs it installs: Debian's `chromium` (with apt-get, when running as root) and the
`playwright` Python package (in the dev extra; otherwise pip installs it into a cache folder). No
browser is downloaded by Playwright: it drives /usr/bin/chromium.
"""

from __future__ import annotations

import importlib
import json
import os
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

from helpers.session import SETUP_CELL

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
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


def course_explorer_available() -> bool:
    """Whether `helpers.widgets.scene_browser` (the course's scene explorer) exists to be shown too."""
    try:
        from helpers import widgets
    except ImportError:
        return False
    return hasattr(widgets, "scene_browser")


def widget_notebook(path: Path) -> Path:
    """A notebook opening with the course's set-up cell, then ipywidgets controls and, when it exists,
    the course's scene explorer (sliders driving a matplotlib figure)."""
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [
        md("# Widgets in JupyterLab"),
        code(SETUP_CELL),
        code("import ipywidgets as widgets\nslider = widgets.IntSlider(value=3, min=0, max=10, description='size')\nslider"),
        code(
            "@widgets.interact(colour=['red', 'green', 'blue'])\n"
            "def show(colour='green'):\n"
            "    print(f'chosen colour: {colour}')"
        ),
        code("print('all cells ran')"),
    ]
    if course_explorer_available():
        nb.cells.insert(-1, code(
            "from helpers.data import ShapesScenes\nfrom helpers.widgets import scene_browser\n"
            "scene_browser(ShapesScenes(4, size=64, seed=0))"
        ))  # fmt: skip
    nbformat.write(nb, path)
    return path


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
    (tmp_path / ".settings" / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    # No "would you like news?" toast over the notebook.
    (tmp_path / ".settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
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


def test_widgets_render_as_controls_in_jupyterlab(browser_tools, jupyterlab, tmp_path):
    chromium, sync_api = browser_tools
    url, token = jupyterlab
    widget_notebook(tmp_path / "widgets.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "jupyterlab-widgets.png"

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        page = None
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            page.set_default_timeout(120_000)
            start_kernel_session(url, token, "widgets.ipynb")
            page.goto(f"{url}/lab/tree/widgets.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            # The kernel must be up before Run All, or the cells queue behind its start.
            wait_for_idle_kernel(page)
            run_all_cells(page)
            page.wait_for_selector(".jp-OutputArea-output:has-text('all cells ran')", timeout=180_000)
            page.wait_for_selector(".widget-slider", state="visible")
            page.wait_for_selector(".widget-dropdown", state="visible")
            page.wait_for_selector(".jp-OutputArea-output:has-text('chosen colour: green')")
            if course_explorer_available():  # its figure is drawn inside the widget's output area
                page.wait_for_selector(".widget-output img", state="visible")
            page.wait_for_timeout(500)  # let the last frame paint
            page.screenshot(path=str(screenshot), full_page=True)

            text = page.locator(".jp-Notebook").inner_text()
            sliders = page.locator(".jupyter-widgets.widget-slider").count()
            dropdown = page.locator(".widget-dropdown select").first  # the `interact` control
            options = dropdown.locator("option").all_inner_texts()
            readout = page.locator(".widget-slider .widget-readout").first.inner_text()
            # Change the dropdown: the kernel must answer through the widget's comm.
            dropdown.select_option("blue")
            page.wait_for_selector(".jp-OutputArea-output:has-text('chosen colour: blue')", timeout=60_000)
        except Exception:
            if page is not None:
                page.screenshot(path=str(ARTIFACTS / "jupyterlab-failure.png"), full_page=True)
            raise
        finally:
            browser.close()

    for failure in FAILURE_TEXTS:
        assert failure.lower() not in text.lower(), f"{failure!r} in the notebook:\n{text}"
    assert "Seeing Networks" in text  # the set-up cell ran in JupyterLab's kernel
    assert sliders == 1 + course_explorer_available() and readout.strip() == "3"
    assert options == ["red", "green", "blue"]
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
