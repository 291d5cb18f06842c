"""benchmarks/series.py: what it reports of one notebook's run, and its table on a CPU and a GPU."""

from __future__ import annotations

import nbformat

from benchmarks import series


def notebook_with_an_old_timing(path):
    """Three cells: a METRIC line; a failing assert (IPython colours its traceback); and a cell that
    never runs but carries another run's timing of 100 s in its metadata."""
    cells = [
        nbformat.v4.new_code_cell('print("METRIC accuracy = 0.93 (>= 0.9)")'),
        nbformat.v4.new_code_cell('assert 1 > 2, "one is not more than two"'),
        nbformat.v4.new_code_cell("print('never runs')"),
    ]
    cells[2].metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z", "shell.execute_reply": "2026-01-01T00:01:40Z"}
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)


def test_a_failed_run_reports_its_error_plainly_and_only_its_own_timings(tmp_path):
    path = tmp_path / "nb.ipynb"
    notebook_with_an_old_timing(path)
    run = series.run_notebook(path, timeout=60)
    assert not run.ok
    assert "one is not more than two" in run.error and "\x1b" not in run.error
    assert [(m.name, m.value, m.bound) for m in run.metrics] == [("accuracy", "0.93", ">= 0.9")]
    assert run.slowest_cell is not None and run.slowest_cell[1] < 50  # not the saved 100 s of a cell that never ran
    assert run.gpu_peak_mib is None


def test_the_table_has_a_gpu_memory_column_only_on_a_gpu():
    info = dict(device="cpu", gpu="", cpu="a CPU", cores=2, torch_threads=2, torch="2", torchvision="0", python="3", date="d")
    runs = [series.Run("00_x", 1.0, True, [], "", (0, 1.0), 700.0, None)]
    assert "GPU memory" not in series.format_table(runs, info)
    gpu_runs = [series.Run("00_x", 1.0, True, [], "", (0, 1.0), 700.0, 1536.0)]
    table = series.format_table(gpu_runs, dict(info, device="cuda", gpu="NVIDIA H200"))
    assert "GPU memory in use" in table and "| 1.50 GiB |" in table and "most 1.50 GiB" in table
