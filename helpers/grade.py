"""`python -m helpers.grade`: grade submitted notebooks (the command line of `helpers.grading`).

    python -m helpers.grade [grade] PATH... [--csv FILE] [--results FILE [--resume]] [--timeout S]
                                          [--notebook-timeout S] [--workers N] [--seed N] ...
    python -m helpers.grade merge RESULTS... [--csv FILE] [--gradebook FILE] ...

How it works, module by module: helpers/grading/__init__.py.
"""

from __future__ import annotations

import sys

from helpers.grading.cli import main
from helpers.grading.grader import grade, grade_class

__all__ = ["main", "grade", "grade_class"]

if __name__ == "__main__":
    sys.exit(main())
