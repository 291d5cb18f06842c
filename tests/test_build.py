"""Student notebooks: generated from solutions, never clobbering a student's edits, always in sync."""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers import build
from helpers.grading.conventions import names_of
from helpers.session import SETUP_CELL
from helpers.exercises.core import REGISTRY

ROOT = Path(__file__).resolve().parents[1]


def test_committed_student_notebooks_are_in_sync(capsys):
    assert build.build(ROOT / "notebooks", check=True) == 0, capsys.readouterr().out


def test_no_solution_text_remains_in_student_notebooks():
    for solution_path in build.solution_paths(ROOT / "notebooks" / "solutions"):
        student = (ROOT / "notebooks" / solution_path.name).read_text()
        solution = nbformat.read(solution_path, as_version=4)
        for cell in solution.cells:
            inside = False
            for line in cell.source.splitlines():
                if line.strip().startswith(build.BEGIN):
                    inside = True
                elif line.strip().startswith(build.END):
                    inside = False
                elif inside and len(line.strip()) > 12:
                    assert line.strip() not in student, f"{solution_path.name}: solution line leaked: {line.strip()}"


def test_student_notebooks_have_no_outputs_and_every_solution_region_a_stub():
    for solution_path in build.solution_paths(ROOT / "notebooks" / "solutions"):
        solution = nbformat.read(solution_path, as_version=4)
        student = nbformat.read(ROOT / "notebooks" / solution_path.name, as_version=4)
        assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
        regions = sum(c.source.count(build.BEGIN) for c in solution.cells)
        stubs = sum(
            c.source.count(build.CODE_STUB) + c.source.count(build.MARKDOWN_STUB) + c.source.count(build.VALUE_STUB)
            for c in student.cells
        )
        assert regions > 0 and stubs >= regions


def test_named_answers_become_templates_and_top_level_stubs_are_tagged():
    code = "### BEGIN SOLUTION\nanswer = 42\nother = {1, 2}\n### END SOLUTION"
    assert build.strip_solutions(code, "code") == "answer = ...  # your answer\nother = ...  # your answer"
    computed = "### BEGIN SOLUTION\nanswer = 6 * 7\nprint(answer)\n### END SOLUTION"
    assert build.strip_solutions(computed, "code") == build.CODE_STUB  # not only assignments: a stub
    inside = "def f():\n    ### BEGIN SOLUTION\n    x = 1\n    return x\n    ### END SOLUTION"
    assert build.strip_solutions(inside, "code") == "def f():\n    raise NotImplementedError()"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(computed),
        nbformat.v4.new_code_cell(inside),
        nbformat.v4.new_code_cell("ex.f.check()", metadata={"exercise": {"notebook": "99_x", "id": "f"}}),
    ]
    student = build.student_version(nb, "99_x.ipynb")
    tags = [c.metadata.get("tags", []) for c in student.cells]
    assert tags == [[build.RAISES], [], [build.RAISES]]


def test_every_check_cell_of_the_student_notebooks_lets_run_all_go_on():
    for solution_path in build.solution_paths(ROOT / "notebooks" / "solutions"):
        student = nbformat.read(ROOT / "notebooks" / solution_path.name, as_version=4)
        for cell in student.cells:
            if cell.cell_type == "code" and ("exercise" in cell.metadata or build.runs_a_stub(cell.source)):
                assert build.RAISES in cell.metadata.get("tags", []), f"{solution_path.name}: {cell.source[:60]}"


def test_every_notebook_opens_with_the_setup_cell_and_checks_its_exercises():
    import importlib
    import pkgutil

    import helpers.exercises
    from helpers.session import SETUP_CELL

    for m in pkgutil.iter_modules(helpers.exercises.__path__):
        if m.name.startswith("nb"):
            importlib.import_module(f"helpers.exercises.{m.name}")
    for solution_path in build.solution_paths(ROOT / "notebooks" / "solutions"):
        nb = nbformat.read(solution_path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[0].source == SETUP_CELL, f"{solution_path.name}: first code cell is not SETUP_CELL"
        checked = {c.metadata["exercise"]["id"] for c in code if "exercise" in c.metadata}
        registered = {name for (notebook, name) in REGISTRY if notebook == solution_path.stem}
        assert checked == registered and len(checked) >= 2, solution_path.name


def _mini_course(tmp_path: Path) -> Path:
    (tmp_path / "solutions").mkdir()
    nb = new_notebook(cells=[
        new_markdown_cell("Explain.\n### BEGIN SOLUTION\nThe answer is 4.\n### END SOLUTION"),
        new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION"),
        new_code_cell("ex.f.check()"),
    ])
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hello")]
    nbformat.write(nb, tmp_path / "solutions" / "01_mini.ipynb")
    return tmp_path


def test_build_replaces_regions_with_stubs_and_labels_checks(tmp_path, capsys):
    course = _mini_course(tmp_path)
    assert build.build(course) == 0
    student = nbformat.read(course / "01_mini.ipynb", as_version=4)
    assert student.cells[0].source == "Explain.\nYOUR ANSWER HERE"
    assert student.cells[1].source == SETUP_CELL  # inserted before the first code cell
    assert student.cells[2].source == "def f(x):\n    raise NotImplementedError()"
    assert student.cells[2].outputs == []
    assert student.cells[3].metadata["exercise"] == {"notebook": "01_mini", "id": "f"}
    solution = nbformat.read(course / "solutions" / "01_mini.ipynb", as_version=4)
    assert solution.cells[1].source == SETUP_CELL and solution.cells[3].metadata["exercise"]["id"] == "f"
    assert build.build(course, check=True) == 0
    assert "up to date" in (capsys.readouterr(), build.build(course), capsys.readouterr().out)[2]


def test_build_refuses_to_clobber_an_edited_notebook_and_force_keeps_a_backup(tmp_path, capsys):
    course = _mini_course(tmp_path)
    build.build(course)
    student_path = course / "01_mini.ipynb"
    nb = nbformat.read(student_path, as_version=4)
    nb.cells[2].source = "def f(x):\n    return x + 1  # my work"
    nbformat.write(nb, student_path)
    mine = student_path.read_text()

    # the solution changes, so the build wants to rewrite the student notebook
    sol = nbformat.read(course / "solutions" / "01_mini.ipynb", as_version=4)
    sol.cells[0].source += "\nMore prose."
    nbformat.write(sol, course / "solutions" / "01_mini.ipynb")

    capsys.readouterr()
    assert build.build(course) == 1
    assert "KEPT" in capsys.readouterr().out and student_path.read_text() == mine
    assert build.build(course, check=True) == 1

    assert build.build(course, force=True) == 0
    backups = list((course / "backup").glob("01_mini-*.ipynb"))
    assert len(backups) == 1 and backups[0].read_text() == mine
    assert "More prose." in student_path.read_text()


def test_running_a_student_notebook_is_not_an_edit(tmp_path):
    course = _mini_course(tmp_path)
    build.build(course)
    nb = nbformat.read(course / "01_mini.ipynb", as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="ran")]
    nbformat.write(nb, course / "01_mini.ipynb")
    assert not build.was_edited(course / "01_mini.ipynb")


def test_check_catches_drift(tmp_path, capsys):
    course = _mini_course(tmp_path)
    build.build(course)
    sol = nbformat.read(course / "solutions" / "01_mini.ipynb", as_version=4)
    sol.cells[2].source = sol.cells[2].source.replace("def f(x):", "def f(x, y=0):")
    nbformat.write(sol, course / "solutions" / "01_mini.ipynb")
    assert build.build(course, check=True) == 1
    assert "differs" in capsys.readouterr().out


@pytest.mark.parametrize("source", [
    "### BEGIN SOLUTION\nx = 1",
    "x = 1\n### END SOLUTION",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
])
def test_unbalanced_markers_are_refused(source):
    with pytest.raises(ValueError, match="SOLUTION"):
        build.strip_solutions(source, "code")


def test_an_old_setup_cell_is_replaced_not_duplicated():
    old = SETUP_CELL.split("\n", 1)[0] + "\nprint('an older set-up')"
    nb = new_notebook(cells=[new_code_cell(old), new_code_cell("x = 1")])
    assert build.use_setup_cell(nb) and [c.source for c in nb.cells] == [SETUP_CELL, "x = 1"]
    assert not build.use_setup_cell(nb)


def test_a_demo_cell_that_fails_on_purpose_is_not_a_check_cell():
    nb = new_notebook(cells=[new_code_cell("ex.f.check(lambda x: 0)", metadata={"tags": ["raises-exception"]})])
    build.label_check_cells(nb, "01_mini")
    assert "exercise" not in nb.cells[0].metadata


def test_cli_check_exit_code(tmp_path):
    course = _mini_course(tmp_path)
    assert build.main(["--notebooks", str(course), "--check"]) == 1  # nothing generated yet
    assert build.main(["--notebooks", str(course)]) == 0
    assert build.main(["--notebooks", str(course), "--check"]) == 0


def test_every_check_cell_is_the_course_template():
    for solution_path in build.solution_paths(ROOT / "notebooks" / "solutions"):
        nb = nbformat.read(solution_path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and "exercise" in cell.metadata:
                assert cell.source == build.check_cell_source(cell.metadata["exercise"]["id"]), solution_path.name


def test_cells_no_exercise_needs_are_tagged_for_the_grader_to_skip():
    cells = [
        "# set-up\nfrom helpers.session import start\ndevice = start(seed=0)",
        "import torch\nfrom helpers.exercises import nb99 as ex",
        "SIZE = 8\ndata = torch.zeros(SIZE)",  # read by the solution: needed
        "model = train(data)  # a long training",  # read by nothing an exercise needs
        "def f(x):\n    ### BEGIN SOLUTION\n    return x * SIZE\n    ### END SOLUTION",
        "ex.f.check()",
        "plt.plot(model(data))  # a figure",
        "%timeit f(data)",  # not plain Python: kept, to be safe
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.cells[5].metadata["exercise"] = {"notebook": "99_x", "id": "f"}
    assert build.tag_skippable_cells(nb) is True
    skipped = [i for i, c in enumerate(nb.cells) if "grader-skip" in c.metadata.get("tags", [])]
    assert skipped == [3, 6]
    assert build.tag_skippable_cells(nb) is False  # already tagged: nothing changes


def test_names_local_to_a_function_do_not_make_a_cell_needed():
    defined, read = names_of("def f(image):\n    x = image * scale\n    return x")
    assert defined == {"f"} and read == {"scale"}
