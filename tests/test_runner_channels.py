"""The runner closes every kernel client's channels: a grader that grades a class in one process
must not keep a heartbeat thread and its sockets per notebook (a CI run's grader held 520 threads and
1675 file descriptors when one of its notebooks hung)."""

from __future__ import annotations

import os
import threading

import nbformat

from helpers.grading import runner


def test_running_notebooks_leaves_no_thread_or_socket_behind(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    counts = []
    for _ in range(4):
        assert runner.execute(nb, cwd=tmp_path, timeout=60).stopped is None
        counts.append((threading.active_count(), len(os.listdir("/proc/self/fd"))))
    (threads_first, fds_first), (threads_last, fds_last) = counts[2], counts[-1]  # after the first runs warm up
    assert threads_last == threads_first, counts
    assert fds_last <= fds_first + 2, counts
