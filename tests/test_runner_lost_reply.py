"""A cell whose reply never arrives, although the kernel went idle and sent every output, costs the
runner a few seconds, not the whole cell timeout (a CI run's grader once waited 600 s on one)."""

from __future__ import annotations

import time

import nbformat
import pytest

from helpers.grading import runner


def notebook():
    cell = nbformat.v4.new_code_cell
    return nbformat.v4.new_notebook(cells=[cell("x = 1"), cell("print('two')"), cell("raise ValueError('three')")])


@pytest.fixture
def lose_reply(monkeypatch):
    """Drop the kernel's execute_reply to the cell with the given kernel execution count."""
    from jupyter_client.channels import AsyncZMQSocketChannel

    original = AsyncZMQSocketChannel.get_msg
    lost = {}

    async def get_msg(self, *args, **kwargs):
        while True:
            msg = await original(self, *args, **kwargs)
            if msg["msg_type"] == "execute_reply" and msg["content"].get("execution_count") == lost.get("count"):
                lost["dropped"] = lost.get("dropped", 0) + 1
                continue
            return msg

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", get_msg)
    monkeypatch.setattr(runner, "LOST_REPLY_GRACE", 1.0)
    return lost


def test_a_lost_reply_of_a_finished_cell_costs_seconds_and_keeps_its_output(tmp_path, lose_reply):
    lose_reply["count"] = 2
    nb = notebook()
    started = time.monotonic()
    run = runner.execute(nb, cwd=tmp_path, timeout=60)
    assert lose_reply["dropped"] == 1
    assert time.monotonic() - started < 30
    assert nb.cells[1].outputs[0]["text"] == "two\n"
    assert run.stopped is not None and run.stopped[0] == "error" and "three" in run.stopped[1], run.stopped  # the next cell ran


def test_a_lost_reply_of_a_failing_cell_still_reports_its_error(tmp_path, lose_reply):
    lose_reply["count"] = 3
    started = time.monotonic()
    run = runner.execute(notebook(), cwd=tmp_path, timeout=60)
    assert lose_reply["dropped"] == 1 and time.monotonic() - started < 30
    assert run.stopped is not None and run.stopped[0] == "error" and "ValueError" in run.stopped[1] and "three" in run.stopped[1], run.stopped
