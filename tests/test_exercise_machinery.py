"""The check machinery itself: verdicts, rendering, name lookup, and that it never crashes."""

import numpy as np
import pytest
import torch

from helpers.exercises.compare import compare_scalars, compare_tensors
from helpers.exercises.core import Case, FunctionExercise, Incorrect, NotAttempted, ValueExercise

square = FunctionExercise(
    notebook="test_machinery",
    name="square",
    reference=lambda x: x**2,
    cases=lambda: [Case("a vector of three", (torch.tensor([1.0, -2.0, 3.0]),)), Case("a 2x2 matrix", (torch.eye(2),))],
    hint="Multiply x by itself.",
    solution="def square(x):\n    return x * x",
)
forty_two = ValueExercise(notebook="test_machinery", name="the_answer", expected=42, hint="Six times seven.", solution="the_answer = 42")


def test_correct_prints_a_short_green_line(capsys):
    square.check(lambda x: x * x)
    out = capsys.readouterr().out
    assert "Correct" in out and len(out.splitlines()) == 1


def test_stub_is_not_attempted_and_renders_in_two_lines():
    def stub(x):
        raise NotImplementedError()

    with pytest.raises(NotAttempted) as failure:
        square.check(stub)
    lines = failure.value._render_traceback_()
    assert len(lines) == 2 and "not attempted" in lines[0].lower() and "hint()" in lines[1]


def test_wrong_answer_names_the_input_and_the_difference_not_the_solution():
    with pytest.raises(Incorrect) as failure:
        square.check(lambda x: 2 * x)
    message = failure.value.message
    assert "a vector of three" in message and "differ" in message
    assert "9" not in message  # the expected value 3**2 is not revealed


def test_student_exceptions_become_verdicts():
    with pytest.raises(Incorrect, match="ZeroDivisionError"):
        square.check(lambda x: 1 / 0)


def test_inputs_are_copied_so_in_place_edits_cannot_fool_the_check():
    def sneaky(x):
        x.mul_(x)
        return x

    square.check(sneaky)  # correct, and the reference still saw the original input


def test_check_looks_the_answer_up_in_the_callers_globals(capsys):
    with pytest.raises(NotAttempted, match="not defined"):
        forty_two.check()
    globals()["answer_value_for_lookup"] = 1
    lookup = ValueExercise(notebook="test_machinery", name="answer_value_for_lookup", expected=1, hint="h", solution="s = 1")
    lookup.check()
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("odd", [None, "42", [42], np.float64("nan"), torch.tensor([42, 42]), object()])
def test_value_exercise_handles_odd_answers(odd):
    with pytest.raises(Incorrect):
        forty_two.check(odd)


def test_value_exercise_accepts_equivalent_numbers(capsys):
    for good in (42, 42.0, np.int64(42), torch.tensor(42)):
        forty_two.check(good)
    assert capsys.readouterr().out.count("Correct") == 4


def test_compare_tensors_messages():
    e = torch.zeros(2, 3)
    assert compare_tensors(e, torch.zeros(2, 3)) is None
    assert "shape" in compare_tensors(e, torch.zeros(3, 2))
    assert "floating-point" in compare_tensors(e, torch.zeros(2, 3, dtype=torch.int64))
    assert "numpy" in compare_tensors(e, np.zeros((2, 3)))
    assert "return" in compare_tensors(e, None)
    assert "NaN" in compare_tensors(e, torch.full((2, 3), float("nan")))
    assert "1 of 6 values differ" in compare_tensors(e, torch.tensor([[0, 0, 0], [0, 0.5, 0]]))
    assert compare_scalars(1.0, torch.ones(3)).startswith("expected a single number")
    assert compare_scalars(1.0, True).startswith("expected a number")


def test_a_broken_reference_still_gives_a_verdict_not_a_crash():
    broken = FunctionExercise(notebook="test_machinery", name="broken", reference=lambda x: 1 / 0,
                              cases=lambda: [Case("x", (1,))], hint="h", solution="def broken(x): pass")
    with pytest.raises(Incorrect, match="checking it failed"):
        broken.check(lambda x: x)


def test_names_must_be_identifiers():
    with pytest.raises(ValueError, match="name"):
        ValueExercise(notebook="n", name="not an identifier", expected=1, hint="h", solution="s")


# ---- what the grader sends and what the graded kernel holds --------------------------------------


def _all_function_exercises():
    import importlib

    from helpers.exercises.core import REGISTRY, FunctionExercise
    from helpers.grading.course import exercise_modules

    for module in exercise_modules().values():
        importlib.import_module(module)
    return [ex for ex in REGISTRY.values() if isinstance(ex, FunctionExercise) and ex.notebook[:2].isdigit()]


def test_every_question_carries_its_inputs_or_else_only_its_own_seed():
    """The grader's question holds each case's inputs as plain data; where an input is a module (a U-Net
    block), it holds that exercise's own seed instead, which says nothing of the grader's seed."""
    import json

    from helpers.exercises.answers import _has_opaque, decode, exercise_seed, question

    seeded = []
    for exercise in _all_function_exercises():
        asked = json.loads(question(exercise, seed=11))
        assert asked["name"] == exercise.name
        if "seed" in asked:
            assert asked["seed"] == exercise_seed(11, exercise) != 11 and "cases" not in asked
            seeded.append(exercise.id)
            continue
        cases = exercise.trial_cases(exercise_seed(11, exercise))
        assert len(asked["cases"]) == len(cases)
        for sent, case in zip(asked["cases"], cases):
            got = decode(sent)
            assert not _has_opaque(got), (exercise.id, case.label)
            assert len(got["args"]) == len(case.args) and set(got["kwargs"]) == set(case.kwargs), (exercise.id, case.label)
    assert len(seeded) < len(_all_function_exercises()) / 2, seeded  # most questions carry their inputs


def test_the_graded_kernel_holds_no_reference_and_check_judges_nothing():
    import subprocess
    import sys

    code = (
        "from helpers.exercises import nb00 as ex\n"
        "from helpers.exercises.core import Withheld, ReferenceWithheld\n"
        "assert isinstance(ex.to_grayscale.reference, Withheld) and isinstance(ex.values_per_image.expected, Withheld)\n"
        "assert ex.to_grayscale.solution_source == '' and ex.values_per_image.solution_source == ''\n"
        "for attempt in (lambda: ex.to_grayscale.reference(1), lambda: float(ex.values_per_image.expected),\n"
        "                lambda: ex.values_per_image.expected + 1, lambda: ex.to_grayscale._record(ex.to_grayscale.reference, 5)):\n"
        "    try:\n        got = attempt()\n    except ReferenceWithheld:\n        continue\n"
        "    assert got == {'state': 'reference'}, got\n"
        "ex.to_grayscale.check(lambda image: image)\n"
        "ex.values_per_image.solution()\n"
    )
    env = {**__import__("os").environ, "SEEING_NETWORKS_GRADING": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "the grader asks for your answer" in done.stdout and "not shown while grading" in done.stdout


def test_yours_or_course_picks_a_passing_answer_else_the_course_version(capsys):
    from helpers.exercises.core import yours_or_course

    def course(x):
        return x**2

    def mine(x):
        return x * x

    def wrong(x):
        return x + x

    assert yours_or_course(square, mine, course) is mine
    assert yours_or_course(square, wrong, course) is course
    assert yours_or_course(square, None, course) is course
    out = capsys.readouterr().out
    assert "yours (it passes its check)" in out and "incorrect" in out and "not attempted" in out


def test_yours_or_course_in_the_graded_kernel_never_touches_the_withheld_reference():
    import os
    import subprocess
    import sys

    code = (
        "from helpers.exercises import nb08 as ex\n"
        "from helpers import visualise\n"
        "def mine(*args, **kwargs):\n    raise AssertionError('the kernel must not run the answer to check it')\n"
        "assert ex.grad_cam_to_use(mine) is visualise.grad_cam\n"
        "assert ex.grad_cam.reference.uses == 0, 'the withheld reference was touched'\n"
    )
    env = {**os.environ, "SEEING_NETWORKS_GRADING": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "while grading, the kernel checks nothing" in done.stdout
