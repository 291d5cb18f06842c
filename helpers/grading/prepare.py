"""Preparing a notebook for grading: outputs cleared, the course's own check cells restored, and the cells
tagged `grader-skip` that no answer needs emptied. Linear in the notebook's size.

Nothing is added that records an answer: the grader asks the kernel for the answers after the last
cell (`helpers.grading.runner`).
"""

from __future__ import annotations

import copy
import re

from helpers.grading.conventions import SKIP_TAG, SKIPPED, check_cell_source, needed_cells

MAX_CELLS = 2000  # a course notebook has about a hundred
MAX_CODE_CHARS = 2_000_000  # and about 50,000 characters of code
TOP_LEVEL_NAME = re.compile(r"(?m)^(?:def\s+(\w+)\s*\(|class\s+(\w+)\b|(\w+)\s*(?::[^=\n]*)?=[^=])")


def top_level_names(source: str) -> set[str]:
    """The names a cell defines at the top level (`def name(`, `class name` or `name = ...`), as
    `conventions.defines` sees them."""
    return {a or b or c for a, b, c in TOP_LEVEL_NAME.findall(source)}


def prepare(nb, notebook: str, names: list[str], skip: bool = True):
    """The notebook as the grader runs it, and for each code cell its "cell N" (the student's numbering).

    Every exercise in `names` gets the course's check cell: a labelled cell's source is restored, a
    missing one is added after the last cell that defines the answer (or at the end). Labels the
    course did not write count for nothing. With `skip`, the `grader-skip` cells no answer needs are
    emptied (`skip_unneeded`). Raises ValueError beyond MAX_CELLS cells or MAX_CODE_CHARS of code.
    Returns (notebook, labels), labels[i] being "cell N" for the i-th code cell.
    """
    import nbformat

    if len(nb.cells) > MAX_CELLS:
        raise ValueError(f"the notebook has {len(nb.cells)} cells, more than the {MAX_CELLS} the grader runs")
    code_chars = sum(len(c.get("source", "")) for c in nb.cells if c.get("cell_type") == "code")
    if code_chars > MAX_CODE_CHARS:
        raise ValueError(f"the notebook holds {code_chars} characters of code, more than the {MAX_CODE_CHARS} the grader runs")
    nb = copy.deepcopy(nb)
    wanted = set(names)
    labelled: dict[str, int] = {}
    last_definer: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        label = cell.get("metadata", {}).get("exercise")
        if isinstance(label, dict):
            ok = label.get("notebook") == notebook and label.get("id") in wanted and label.get("id") not in labelled
            if ok:
                labelled[label["id"]] = i
            else:
                del cell.metadata["exercise"]  # a label the course did not write (or a second copy) counts for nothing
        for name in top_level_names(cell.get("source", "")) & wanted:
            last_definer[name] = i
    if skip:
        skip_unneeded(nb, names)
    inserts: dict[int, list] = {}
    for name in names:
        if name in labelled:
            nb.cells[labelled[name]].source = check_cell_source(name)
        else:
            at = last_definer.get(name, len(nb.cells) - 1) + 1
            cell = nbformat.v4.new_code_cell(check_cell_source(name), metadata={"exercise": {"notebook": notebook, "id": name}})
            inserts.setdefault(at, []).append(cell)
    cells = []
    for i, cell in enumerate(nb.cells + [None]):
        cells += inserts.get(i, [])
        if cell is not None:
            cells.append(cell)
    nb.cells = cells
    labels = [f"cell {n}" for n in range(1, 1 + sum(c.get("cell_type") == "code" for c in cells))]
    return nb, labels


def skip_unneeded(nb, names: list[str]) -> None:
    """Empty the cells tagged `grader-skip` that none of this student's answers needs.

    The tags say what the course's own solutions need; a student's answer may read something else
    (a helper they wrote, a variable of a tagged cell), so the cells that define what the student's
    answers read are run all the same (`conventions.needed_cells` on the submission itself).
    """
    code = [c for c in nb.cells if c.get("cell_type") == "code"]
    wanted = set(names)
    seeds = {
        i for i, c in enumerate(code)
        if SKIP_TAG not in c.get("metadata", {}).get("tags", []) or top_level_names(c.get("source", "")) & wanted
    }  # fmt: skip
    keep = needed_cells([c.get("source", "") for c in code], seeds)
    for i, cell in enumerate(code):
        if i not in keep:
            cell.source = SKIPPED
