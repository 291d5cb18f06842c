"""Reading a submitted notebook (`helpers.grading.notebook_file`): every malformed file is one
`InvalidNotebook` with a one-line message, never another exception, and reading is linear."""

from __future__ import annotations

import json
import time

import pytest

from helpers.grading.notebook_file import InvalidNotebook, read_submission_notebook, safe_text
from tests.exercises import harness


def notebook_bytes(cells, **top) -> bytes:
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    nb.update(top)
    return json.dumps(nb).encode()


def code(source="x = 1", **fields) -> dict:
    cell = {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}
    cell.update(fields)
    return cell


def test_a_course_notebook_reads_without_outputs():
    path = harness.ROOT / "notebooks" / "solutions" / "02_iou_ap_map.ipynb"
    nb = read_submission_notebook(path)
    assert nb.nbformat == 4 and len(nb.cells) > 20
    assert all(isinstance(c.source, str) for c in nb.cells)
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert read_submission_notebook(path.read_bytes()).cells[3].source == nb.cells[3].source


def test_what_is_recoverable_is_normalised():
    cells = [code(["a = 1\n", "b = 2"], outputs=[{"output_type": "stream", "name": "stdout", "text": "hi"}],
                  execution_count=7, id="same"),
             {"cell_type": "markdown", "metadata": {"tags": ["x"]}, "source": "# title", "id": "same"},
             {"cell_type": "raw", "source": "", "id": "not a valid id!"}]
    nb = read_submission_notebook(notebook_bytes(cells))
    assert nb.cells[0].source == "a = 1\nb = 2" and nb.cells[0].outputs == [] and nb.cells[0].execution_count is None
    assert nb.cells[1].metadata.tags == ["x"]
    ids = [c.id for c in nb.cells]
    assert len(set(ids)) == 3 and ids[0] == "same"


# name: (the file's bytes, a fragment of the message)
MALFORMED = {
    "not JSON": (b"{not json", "the file is not JSON"),
    "not UTF-8": (b'{"nbformat": 4, "x": "\xff"}', "not UTF-8"),
    "a JSON list": (b"[1, 2]", "holds a JSON list, not a notebook"),
    "no version": (json.dumps({"cells": []}).encode(), "no nbformat version"),
    "nbformat 5": (json.dumps({"nbformat": 5, "cells": []}).encode(), "nbformat 5 is not supported"),
    "nbformat 2": (json.dumps({"nbformat": 2, "cells": []}).encode(), "nbformat 2 is not supported"),
    "version as a string": (json.dumps({"nbformat": "4", "cells": []}).encode(), "no nbformat version"),
    "cells not a list": (notebook_bytes({"a": 1}), "`cells` must be a list, got dict"),
    "a cell that is a number": (notebook_bytes([code(), 3]), "cell 2 must be an object, got int"),
    "an unknown cell type": (notebook_bytes([code(cell_type="python")]), "cell 1: `cell_type` must be one of code, markdown, raw"),
    "source a number": (notebook_bytes([code(), code(12)]), "cell 2: `source` must be a string or a list of strings, got a number"),
    "source a list of numbers": (notebook_bytes([code([1, 2])]), "got a list holding other than strings"),
    "source an object": (notebook_bytes([code({"a": "b"})]), "`source` must be a string or a list of strings, got an object"),
    "tags a number": (notebook_bytes([code(metadata={"tags": 5})]), "cell 1: `metadata.tags` must be a list of strings, got a number"),
    "tags a list of numbers": (notebook_bytes([code(metadata={"tags": [1]})]), "`metadata.tags` must be a list of strings"),
    "cell metadata a list": (notebook_bytes([code(metadata=["tags"])]), "cell 1: `metadata` must be an object, got a list"),
    "exercise metadata a string": (notebook_bytes([code(metadata={"exercise": "box_iou"})]), "`metadata.exercise` must be an object of strings"),
    "outputs a number": (notebook_bytes([code(outputs=1)]), "cell 1: `outputs` must be a list, got a number"),
    "execution count a string": (notebook_bytes([code(execution_count="1")]), "`execution_count` must be a number or null"),
    "notebook metadata a list": (notebook_bytes([code()], metadata=[]), "the notebook's `metadata` must be an object"),
    "nested too deeply": (b'{"nbformat": 4, "cells": [], "metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
                          "nested too deeply"),
    "nbformat 3 without worksheets": (json.dumps({"nbformat": 3, "worksheets": 4}).encode(), "without a list of worksheets"),
    "nbformat 3 with a numeric input": (
        json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {},
                    "worksheets": [{"cells": [{"cell_type": "code", "input": 5}]}]}).encode(),
        "cell 1: `input` must be a string or a list of strings"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_each_malformed_file_is_one_invalid_notebook_line(case):
    raw, fragment = MALFORMED[case]
    with pytest.raises(InvalidNotebook) as caught:
        read_submission_notebook(raw)
    message = str(caught.value)
    assert fragment in message
    assert message.isprintable() and len(message) <= 300


def test_caps_on_cells_and_bytes():
    raw = notebook_bytes([code() for _ in range(11)])
    with pytest.raises(InvalidNotebook, match="has 11 cells, more than the 10 allowed"):
        read_submission_notebook(raw, max_cells=10)
    with pytest.raises(InvalidNotebook, match="larger than 100 bytes"):
        read_submission_notebook(raw, max_bytes=100)
    assert len(read_submission_notebook(raw, max_cells=11).cells) == 11


def test_a_missing_file_is_an_invalid_notebook(tmp_path):
    with pytest.raises(InvalidNotebook, match="cannot be read"):
        read_submission_notebook(tmp_path / "absent.ipynb")


def test_nbformat_3_is_converted():
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": ""},
          "worksheets": [{"metadata": {}, "cells": [
              {"cell_type": "code", "input": ["x = 1\n", "y = 2"], "language": "python", "outputs": [], "metadata": {}},
              {"cell_type": "markdown", "source": "# hi", "metadata": {}}]}]}
    nb = read_submission_notebook(json.dumps(v3).encode())
    assert nb.nbformat == 4
    assert [(c.cell_type, c.source) for c in nb.cells] == [("code", "x = 1\ny = 2"), ("markdown", "# hi")]


def test_4000_cells_of_200_names_read_in_well_under_a_second():
    """The old grader spent 70 s preparing this notebook, quadratically. Best of three, to ride out a busy machine."""
    source = "\n".join(f"name_{j} = {j}" for j in range(200))
    raw = notebook_bytes([code(source) for _ in range(4000)])
    times = []
    for _ in range(3):
        start = time.perf_counter()
        nb = read_submission_notebook(raw)
        times.append(time.perf_counter() - start)
    assert len(nb.cells) == 4000 and nb.cells[-1].source == source
    assert min(times) < 1.0, f"{len(raw)} bytes read in {min(times):.2f} s at best"


def test_a_20000_term_expression_does_not_crash_the_reader():
    source = "x = " + " + ".join(["1"] * 20_000)
    nb = read_submission_notebook(notebook_bytes([code(source)]))
    assert nb.cells[0].source == source


@pytest.mark.parametrize("text, expected", [
    ("alice\nbob,5/5", "alice\\nbob,5/5"),
    ("carriage\rreturn", "carriage\\rreturn"),
    ("\x1b[2Jcleared", "\\x1b[2Jcleared"),
    ("tab\there", "tab\\there"),
    ("nul\x00", "nul\\x00"),
    ("right-to-left \u202eevil", "right-to-left \\u202eevil"),
    ("line\u2028separator", "line\\u2028separator"),
    ("Zoë Åström 李", "Zoë Åström 李"),
    (42, "42"),
])
def test_safe_text_escapes_control_characters(text, expected):
    assert safe_text(text, 100) == expected


def test_safe_text_cuts_long_text():
    out = safe_text("x" * 500 + "\n", 50)
    assert len(out) == 50 and out.endswith("...")
    assert safe_text("\n" * 100, 20).isprintable()
