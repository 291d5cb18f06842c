"""A class of submissions (Canvas, Gradescope, folders), rosters, gradebooks, feedback and shards.

The code lives in `helpers.grading` (one job per module); this module gathers its public names.
"""

from __future__ import annotations

from helpers.grading.feedback import feedback_html, gradescope_results
from helpers.grading.gradebook import VERSION_ENV, course_meta, course_points, course_version, gradebook, write_gradebook
from helpers.grading.records import NOT_SUBMITTED, ROW_FIELDS
from helpers.grading.roster import Student, find_student, missing_students, read_roster, with_roster
from helpers.grading.shards import SHARD_ENV, SHARDS_ENV, Merged, merge, parse_shard, shard, shard_from_env, shard_key, shard_of
from helpers.grading.submissions import (
    GRADESCOPE_METADATA, SOURCES, Entry, choose_latest, discover, name_key, parse_canvas_name, parse_timestamp,
    read_gradescope_metadata,
)  # fmt: skip

__all__ = [
    "feedback_html", "gradescope_results", "VERSION_ENV", "course_meta", "course_points", "course_version", "gradebook",
    "write_gradebook", "NOT_SUBMITTED", "ROW_FIELDS", "Student", "find_student", "missing_students", "read_roster",
    "with_roster", "SHARD_ENV", "SHARDS_ENV", "Merged", "merge", "parse_shard", "shard", "shard_from_env", "shard_key",
    "shard_of", "GRADESCOPE_METADATA", "SOURCES", "Entry", "choose_latest", "discover", "name_key", "parse_canvas_name",
    "parse_timestamp", "read_gradescope_metadata",
]  # fmt: skip
