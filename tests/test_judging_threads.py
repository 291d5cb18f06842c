"""The grader judges several notebooks at once, one thread each, in one process. Building a case's
network and running the reference both seed torch's global generator, so judging must not let two
threads draw from it in turns: a solved 05 was once judged "incorrect" on its visible U-Net case
(every value off, by up to 1.0) because a second thread seeded the generator mid-build."""

from __future__ import annotations

import threading

from helpers.exercises.core import FunctionExercise
from helpers.grading.course import course_exercises, known_notebooks

SEEDS = (11, 12, 13)


def function_exercises() -> list[FunctionExercise]:
    return [e for nb in known_notebooks() for e in course_exercises(nb) if isinstance(e, FunctionExercise)]


def test_the_references_record_passes_when_judged_by_three_threads_at_once():
    exercises = function_exercises()
    assert any(e.name == "unet_forward" for e in exercises)  # the case that draws a network's weights
    records = {(e.id, s): e._record(e.reference, s) for e in exercises for s in SEEDS}
    failures: list[str] = []

    def judge_all(seed: int) -> None:
        for _ in range(3):
            for e in exercises:
                verdict = e.judge(records[(e.id, seed)], seed)
                if not verdict.passed:
                    failures.append(f"{e.id} (seed {seed}): {verdict.message[:120]}")

    threads = [threading.Thread(target=judge_all, args=(s,)) for s in SEEDS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
