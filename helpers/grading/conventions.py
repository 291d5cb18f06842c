"""The notebook conventions the build (`helpers.build`) and the grader share, written once.

- Solution regions: `### BEGIN SOLUTION` ... `### END SOLUTION`, and the stubs that replace them.
- Check cells: `ex.NAME.check()` (`check_cell_source`), labelled `{"exercise": {"notebook", "id"}}`.
- The `grader-skip` tag: a cell no check needs, emptied when grading (`SKIPPED`).
- `defines` (does a cell define a name at the top level) and `needed_cells` (which cells a set of
  cells needs, through the global names they read).
"""

from __future__ import annotations

import re

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = "raise NotImplementedError()"
VALUE_STUB = "...  # your answer"
MARKDOWN_STUB = "YOUR ANSWER HERE"
RAISES = "raises-exception"  # JupyterLab's Run All goes on past a cell with this tag
SKIP_TAG = "grader-skip"  # a cell no check needs (a long training, a figure grid, a widget): not run when grading
SKIPPED = "# (not run when grading: no check needs this cell)"
CHECK_CALL = re.compile(r"\bex\.(\w+)\.check\(")


def check_cell_source(name: str) -> str:
    """The course's check cell for exercise `name`, word for word (the grader restores it from here)."""
    return f"ex.{name}.check()\n# ex.{name}.hint()\n# ex.{name}.solution()"


def check_cell_exercise(source: str) -> str | None:
    """The exercise a check cell checks (`ex.NAME.check(...)`), or None for other cells."""
    names = set(CHECK_CALL.findall(source))
    if len(names) > 1:
        raise ValueError(f"a check cell must check one exercise, this one checks {sorted(names)}:\n{source}")
    return names.pop() if names else None


def defines(source: str, name: str) -> bool:
    """Does this cell define `name` at the top level (`def name(`, `class name` or `name = ...`)?"""
    n = re.escape(name)
    return re.search(rf"(?m)^(def\s+{n}\s*\(|class\s+{n}\b|{n}\s*(:[^=]*)?=[^=])", source) is not None


def names_of(source: str) -> tuple[set[str], set[str]] | None:
    """(global names a cell defines, global names it reads) from its code; None when it is not plain Python.

    Names local to a function or class of the cell (its parameters, its own variables) do not count.
    """
    import symtable

    try:
        top = symtable.symtable(source, "<cell>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    defined, read = set(), set()
    for symbol in top.get_symbols():
        if symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace():
            defined.add(symbol.get_name())
        if symbol.is_referenced():
            read.add(symbol.get_name())
    todo = list(top.get_children())
    while todo:
        table = todo.pop()
        todo.extend(table.get_children())
        for symbol in table.get_symbols():
            if symbol.is_global() and symbol.is_referenced():
                read.add(symbol.get_name())
    return defined, read


def needed_cells(sources: list[str], seeds: set[int]) -> set[int]:
    """The code cells (by index) that `seeds` need: the seeds, every cell that is not plain Python, and,
    transitively, the cell that last defined each global name a needed cell reads.

    Linear in the cells and names: one pass records, for every name, the cells that define it.
    """
    import bisect

    names = [names_of(source) for source in sources]
    definers: dict[str, list[int]] = {}
    for i, found in enumerate(names):
        for name in found[0] if found else ():
            definers.setdefault(name, []).append(i)
    keep = set(seeds) | {i for i, n in enumerate(names) if n is None}
    todo = sorted(keep)
    while todo:
        j = todo.pop()
        if names[j] is None:
            continue
        defined, read = names[j]
        for name in read - defined:
            cells = definers.get(name, [])
            at = bisect.bisect_left(cells, j)
            if at and cells[at - 1] not in keep:
                keep.add(cells[at - 1])
                todo.append(cells[at - 1])
    return keep
