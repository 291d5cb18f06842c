"""Every exercise check against its solution, its stub, plausible wrong answers and odd answers."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import helpers.exercises
from helpers.exercises.answers import decode, encode
from helpers.exercises.core import REGISTRY, ExerciseFailure, FunctionExercise, Incorrect, NotAttempted
from tests.exercises import harness

NOTEBOOK_MODULES = sorted(m.name for m in pkgutil.iter_modules(helpers.exercises.__path__) if m.name.startswith("nb"))
for _name in NOTEBOOK_MODULES:
    importlib.import_module(f"helpers.exercises.{_name}")


def wrong_answers() -> dict:
    """(notebook, name) -> wrong answers, gathered from tests/exercises/wrong_nbNN.py."""
    found = {}
    for name in NOTEBOOK_MODULES:
        exercises = importlib.import_module(f"helpers.exercises.{name}")
        try:
            wrong = importlib.import_module(f"tests.exercises.wrong_{name}").WRONG
        except ModuleNotFoundError:  # reported per exercise by test_wrong_answers_are_incorrect
            wrong = {}
        for exercise_name, answers in wrong.items():
            found[(exercises.NOTEBOOK, exercise_name)] = answers
    return found


WRONG = wrong_answers()
NOTEBOOKS = {importlib.import_module(f"helpers.exercises.{name}").NOTEBOOK for name in NOTEBOOK_MODULES}
EXERCISES = sorted((e for e in REGISTRY.values() if e.notebook in NOTEBOOKS), key=lambda e: e.id)
IDS = [e.id for e in EXERCISES]


def test_every_notebook_module_registers_exercises():
    assert NOTEBOOK_MODULES, "no helpers/exercises/nbNN modules found"
    assert EXERCISES


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_solution_passes(exercise, capsys):
    exercise.check(harness.solution_answer(exercise))
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_stub_is_not_attempted(exercise):
    if isinstance(exercise, FunctionExercise):
        with pytest.raises(NotAttempted):
            exercise.check(harness.stub_answer(exercise))
    with pytest.raises(NotAttempted, match="not defined yet"):
        exercise.check()  # the name is not defined in this module: the stub cell raised


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_wrong_answers_are_incorrect(exercise):
    answers = WRONG.get((exercise.notebook, exercise.name))
    assert answers, f"tests/exercises/wrong_*.py has no wrong answer for {exercise.id}"
    for answer in answers:
        with pytest.raises(Incorrect) as failure:
            exercise.check(answer)
        assert exercise.name in "\n".join(failure.value._render_traceback_())


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_odd_answers_get_a_clear_verdict(exercise):
    odd = harness.ODD_FUNCTION_ANSWERS if isinstance(exercise, FunctionExercise) else harness.ODD_VALUE_ANSWERS
    for label, answer in odd.items():
        with pytest.raises(ExerciseFailure) as failure:
            exercise.check(answer)
        assert failure.value.message, label


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_solution_text_stands_in_the_solution_notebook(exercise):
    assert harness.solution_stands_in_notebook(exercise), (
        f"the solution of {exercise.id} is not what notebooks/solutions/{exercise.notebook}.ipynb holds"
    )


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_each_exercise_has_one_labelled_check_cell(exercise):
    labels = harness.check_cells(exercise.notebook)
    assert labels.count({"notebook": exercise.notebook, "id": exercise.name}) == 1


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_hint_and_solution_print(exercise, capsys):
    exercise.hint()
    exercise.solution()
    out = capsys.readouterr().out
    assert "Hint" in out and exercise.solution_source.splitlines()[0] in out


def replaying(exercise: FunctionExercise):
    """A cheat: hands back the reference's outputs on the visible cases, in the order the check asks."""
    outputs = [encode(exercise.call(exercise.reference, case, i)) for i, case in enumerate(exercise.trial_cases())]
    calls = iter(range(10**6))

    def answer(*args, **kwargs):
        return decode(outputs[next(calls) % len(outputs)])

    return answer


FUNCTIONS = [e for e in EXERCISES if isinstance(e, FunctionExercise)]


@pytest.mark.parametrize("exercise", FUNCTIONS, ids=[e.id for e in FUNCTIONS])
def test_hidden_cases_pass_the_solution_and_fail_an_answer_that_memorised_the_visible_ones(exercise):
    solution = harness.solution_answer(exercise)
    for seed in (11, 12345):
        verdict = exercise.judge(exercise.record(solution, seed=seed), seed=seed)
        assert verdict.passed, verdict.message
    assert exercise.judge(exercise.record(replaying(exercise))).passed  # it does fool the visible cases
    verdict = exercise.judge(exercise.record(replaying(exercise), seed=11), seed=11)
    assert verdict.status == "incorrect" and "hidden case" in verdict.message


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_the_reference_itself_is_not_an_answer(exercise):
    reference = exercise.reference if isinstance(exercise, FunctionExercise) else exercise.expected
    if not isinstance(exercise, FunctionExercise) and isinstance(reference, (int, float, str)):
        pytest.skip("a scalar answer equal to the reference is simply right")
    verdict = exercise.judge(exercise.record(reference))
    assert verdict.status == "uses the reference", verdict
