"""The set-up cell every notebook opens with, tested without Colab.

The cell's source (`helpers.session.SETUP_CELL`) is executed as a notebook would execute it, with a
fake `google.colab` module standing in for Colab, `importlib.util.find_spec` pretending `helpers` is
missing, and `subprocess.run` recording the commands instead of running them.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import torch

from helpers import session

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb")) + sorted(
    (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")
)


def run_setup_cell(monkeypatch, colab: bool, helpers_installed: bool) -> tuple[dict, list]:
    """Execute SETUP_CELL in a fresh namespace; return the namespace and the recorded subprocess calls."""
    calls = []

    def fake_run(command, *args, **kwargs):
        calls.append((list(command), kwargs))
        return subprocess.CompletedProcess(command, 0)

    real_find_spec = importlib.util.find_spec

    def fake_find_spec(name, *args, **kwargs):
        if name == "helpers" and not helpers_installed:
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    monkeypatch.setattr(sys, "path", list(sys.path))
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    namespace: dict = {"__name__": "__main__"}
    exec(compile(session.SETUP_CELL, "<set-up cell>", "exec"), namespace)
    return namespace, calls


def test_on_colab_without_the_course_it_clones_and_installs_it(monkeypatch, capsys):
    namespace, calls = run_setup_cell(monkeypatch, colab=True, helpers_installed=False)
    assert len(calls) == 2, calls
    (clone, clone_kwargs), (install, install_kwargs) = calls
    assert clone[:2] == ["git", "clone"] and session.REPO_URL in clone
    target = clone[-1]
    assert install == [sys.executable, "-m", "pip", "install", "-q", "-e", target]
    assert clone_kwargs.get("check") is True and install_kwargs.get("check") is True  # a failure stops the cell
    assert sys.path[0] == target  # importable at once, without restarting the kernel
    assert isinstance(namespace["device"], torch.device)
    assert "Seeing Networks" in capsys.readouterr().out


def test_on_colab_with_the_course_installed_it_installs_nothing(monkeypatch):
    namespace, calls = run_setup_cell(monkeypatch, colab=True, helpers_installed=True)
    assert calls == []
    assert namespace["device"] == session.pick_device()


@pytest.mark.parametrize("helpers_installed", [True, False])
def test_elsewhere_it_never_installs_and_sets_the_device(monkeypatch, capsys, helpers_installed):
    namespace, calls = run_setup_cell(monkeypatch, colab=False, helpers_installed=helpers_installed)
    assert calls == []
    assert isinstance(namespace["device"], torch.device) and namespace["device"] == session.pick_device()
    assert f"device {namespace['device']}" in capsys.readouterr().out


def test_the_device_can_be_forced(monkeypatch):
    monkeypatch.setenv("SEEING_NETWORKS_DEVICE", "cpu")
    namespace, _ = run_setup_cell(monkeypatch, colab=False, helpers_installed=True)
    assert namespace["device"] == torch.device("cpu")


def test_before_helpers_is_importable_the_cell_uses_only_the_standard_library():
    tree = ast.parse(session.SETUP_CELL)
    modules = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "helpers.session":
            break
        if isinstance(node, ast.Import):
            modules += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules.append(node.module.split(".")[0])
    else:
        pytest.fail("the set-up cell never imports helpers.session")
    assert modules and all(m in sys.stdlib_module_names for m in modules), modules


def test_data_comes_with_the_clone():
    """The clone is installed in place (`pip install -e`), so `data/` is found next to `helpers/`."""
    import helpers
    from helpers import data

    assert data.DATA_DIR == Path(helpers.__file__).resolve().parent.parent / "data"
    assert '"-e"' in session.SETUP_CELL


def test_the_repository_address_is_written_once():
    assert session.REPO_URL.startswith("https://") and session.REPO_URL.endswith(".git")
    assert session.SETUP_CELL.count(session.REPO_URL) == 1
    elsewhere = [
        p.relative_to(ROOT)
        for p in sorted((ROOT / "helpers").rglob("*.py"))
        if p.name != "session.py" and session.REPO_URL.removesuffix(".git") in p.read_text()
    ]
    assert elsewhere == [], f"the repository address belongs in helpers/session.py only, also found in {elsewhere}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_every_notebook_opens_with_the_set_up_cell(path):
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code cell"
    assert code[0].source == session.SETUP_CELL, f"{path.name}: the first code cell must be helpers.session.SETUP_CELL"
