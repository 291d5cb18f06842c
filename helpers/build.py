"""Generate the student notebooks from the solution notebooks.

    python -m helpers.build            write notebooks/NN_*.ipynb from notebooks/solutions/NN_*.ipynb
    python -m helpers.build --check    exit 1 if a committed student notebook is not what would be written
    python -m helpers.build --force    also replace student notebooks that were edited (a backup is kept)

Each solution notebook's first code cell is made `helpers.session.SETUP_CELL` and its check cells are
labelled with their exercise. In a student notebook every `### BEGIN SOLUTION` ... `### END SOLUTION` region becomes a
`raise NotImplementedError()` stub (a region that only sets named answers becomes `name = ...`; in
Markdown: "YOUR ANSWER HERE"), outputs are cleared, check cells are tagged `raises-exception` (so Run
All in JupyterLab goes on past an unsolved check to the end), and the metadata keeps a hash of the
generated cells. A student notebook whose cells no longer match that hash
was edited by someone, and is never overwritten without `--force`; even then it is copied to
`notebooks/backup/` first.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import hashlib
import json
import shutil
import sys
from pathlib import Path

import nbformat

from helpers.grading.conventions import (  # noqa: F401 - BEGIN, END and check_cell_source are read from here too
    BEGIN, CODE_STUB, END, MARKDOWN_STUB, RAISES, SKIP_TAG, VALUE_STUB, check_cell_exercise, check_cell_source, needed_cells,
)  # fmt: skip

META_KEY = "seeing_networks"
ROOT = Path(__file__).resolve().parent.parent


def strip_solutions(source: str, cell_type: str) -> str:
    """Replace each solution region (markers included) with a stub at the marker's indentation.

    A code region that only assigns named answers (`answer = ...` at the top level) becomes the
    template `answer = ...  # your answer`, so the cell runs and the check says "not attempted";
    any other code region becomes `raise NotImplementedError()`.
    """
    out, region, inside, indent = [], [], False, ""
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise ValueError(f"nested {BEGIN!r} in:\n{source}")
            inside, region = True, []
            indent = line[: len(line) - len(line.lstrip())]
        elif stripped.startswith(END):
            if not inside:
                raise ValueError(f"{END!r} without {BEGIN!r} in:\n{source}")
            inside = False
            out.extend(indent + stub for stub in region_stub(region, indent, cell_type))
        elif inside:
            region.append(line)
        else:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} is never closed in:\n{source}")
    return "\n".join(out)


def region_stub(region: list[str], indent: str, cell_type: str) -> list[str]:
    """The stub lines (without indentation) that replace one solution region."""
    if cell_type != "code":
        return [MARKDOWN_STUB]
    names = assigned_names("\n".join(region)) if not indent else None
    if names:
        return [f"{name} = {VALUE_STUB}" for name in names]
    return [CODE_STUB]


def assigned_names(code: str) -> list[str] | None:
    """The names a block of code assigns, when it does nothing but `NAME = ...`; else None."""
    import ast

    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    names = []
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            return None
        names.append(node.targets[0].id)
    return list(dict.fromkeys(names)) or None


def runs_a_stub(source: str) -> bool:
    """True when a student cell raises as soon as it runs (a top-level `raise NotImplementedError()`)."""
    return any(line == CODE_STUB for line in source.splitlines())


def label_check_cells(nb: nbformat.NotebookNode, notebook_name: str) -> bool:
    """Write `{"exercise": {"notebook", "id"}}` into every check cell's metadata. True if anything changed.

    A cell tagged `raises-exception` demonstrates a failing check on purpose and is not a check cell.
    """
    changed = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        demo = "raises-exception" in cell.metadata.get("tags", [])  # shows a failing check on purpose
        name = None if demo else check_cell_exercise(cell.source)
        wanted = {"notebook": notebook_name, "id": name} if name else None
        if cell.metadata.get("exercise") != wanted:
            if wanted is None:
                cell.metadata.pop("exercise", None)
            else:
                cell.metadata["exercise"] = wanted
            changed = True
    return changed


def tag_skippable_cells(nb: nbformat.NotebookNode) -> bool:
    """Tag `grader-skip` on every code cell no exercise needs; True if any tag changed.

    Needed (never tagged): the set-up cell, the cells holding a solution, the check cells, and what
    they need (`needed_cells`). The rest (trainings, evaluations, figures, widgets) only show things,
    so the grader need not run them (`helpers.grading.prepare`; tests/test_grade_skip.py shows that no verdict
    changes).
    """
    code = [c for c in nb.cells if c.cell_type == "code"]
    seeds = {0} | {i for i, c in enumerate(code) if BEGIN in c.source or "exercise" in c.metadata}
    keep = needed_cells([c.source for c in code], seeds)
    changed = False
    for i, cell in enumerate(code):
        tags = cell.metadata.get("tags", [])
        want = i not in keep
        if want != (SKIP_TAG in tags):
            cell.metadata["tags"] = [t for t in tags if t != SKIP_TAG] + ([SKIP_TAG] if want else [])
            if not cell.metadata["tags"]:
                del cell.metadata["tags"]
            changed = True
    return changed


def use_setup_cell(nb: nbformat.NotebookNode) -> bool:
    """Make the first code cell `helpers.session.SETUP_CELL`, the one place it is written. True if changed.

    An older set-up cell (same first line) is replaced; any other first cell is kept and the set-up
    cell is inserted before it.
    """
    from helpers.session import SETUP_CELL

    index, first = next(((i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"), (len(nb.cells), None))
    if first is not None and first.source == SETUP_CELL:
        return False
    if first is not None and first.source.split("\n", 1)[0] == SETUP_CELL.split("\n", 1)[0]:
        first.source = SETUP_CELL
    else:
        nb.cells.insert(index, nbformat.v4.new_code_cell(SETUP_CELL))
    return True


def cells_hash(nb: nbformat.NotebookNode) -> str:
    """A hash of what a student can edit: each cell's type and source."""
    text = json.dumps([[c.cell_type, c.source] for c in nb.cells], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def student_version(solution: nbformat.NotebookNode, source_name: str) -> nbformat.NotebookNode:
    """The student notebook for a solution notebook: stubs for solutions, no outputs, a hash."""
    nb = copy.deepcopy(solution)
    for cell in nb.cells:
        cell.source = strip_solutions(cell.source, cell.cell_type)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
            if "exercise" in cell.metadata or runs_a_stub(cell.source):
                add_tag(cell, RAISES)
    nb.metadata.pop("widgets", None)
    nb.metadata[META_KEY] = {"generated_from": f"solutions/{source_name}", "cells_sha256": cells_hash(nb)}
    return nb


def add_tag(cell: nbformat.NotebookNode, tag: str) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def render(nb: nbformat.NotebookNode) -> str:
    """The exact text a notebook is saved as."""
    return nbformat.writes(nb) + "\n"


def was_edited(path: Path) -> bool:
    """True when the student notebook at `path` no longer matches the hash it was generated with."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:
        return True  # unreadable: treat as someone's work
    recorded = nb.metadata.get(META_KEY, {}).get("cells_sha256")
    return recorded != cells_hash(nb)


def solution_paths(solutions_dir: Path) -> list[Path]:
    return sorted(p for p in solutions_dir.glob("[0-9][0-9]_*.ipynb"))


def build(notebooks_dir: Path, force: bool = False, check: bool = False, out=None) -> int:
    """Generate (or with `check`, compare) every student notebook. Returns a process exit code."""
    out = out or sys.stdout
    notebooks_dir = Path(notebooks_dir)
    solutions = solution_paths(notebooks_dir / "solutions")
    if not solutions:
        print(f"no solution notebooks found in {notebooks_dir / 'solutions'}", file=out)
        return 1
    status = 0
    for src in solutions:
        solution = nbformat.read(src, as_version=4)
        stale = use_setup_cell(solution) | label_check_cells(solution, src.stem) | tag_skippable_cells(solution)
        student_text = render(student_version(solution, src.name))
        dst = notebooks_dir / src.name
        current = dst.read_text() if dst.exists() else None
        if check:
            problems = []
            if stale:
                problems.append(f"{src}: set-up cell or check-cell metadata out of date (run `python -m helpers.build`)")
            if current != student_text:
                problems.append(f"{dst}: differs from what `python -m helpers.build` generates")
            for problem in problems:
                print(problem, file=out)
            status |= bool(problems)
            continue
        if stale:
            src.write_text(render(solution))
            print(f"updated set-up cell / check-cell labels in {src}", file=out)
        if current == student_text:
            print(f"up to date  {dst}", file=out)
            continue
        if current is not None and was_edited(dst):
            if not force:
                print(f"KEPT        {dst}: it was edited since it was generated; use --force to replace it", file=out)
                status = 1
                continue
            backup = notebooks_dir / "backup" / f"{dst.stem}-{_dt.datetime.now():%Y%m%d-%H%M%S}.ipynb"
            backup.parent.mkdir(exist_ok=True)
            shutil.copy2(dst, backup)
            print(f"backed up   {dst} -> {backup}", file=out)
        dst.write_text(student_text)
        print(f"wrote       {dst}", file=out)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks", help="folder holding solutions/")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on any difference")
    parser.add_argument("--force", action="store_true", help="replace edited student notebooks (after a backup)")
    args = parser.parse_args(argv)
    return build(args.notebooks, force=args.force, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
