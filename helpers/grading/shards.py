"""Beyond one machine: `shard` splits the submissions, `shard_from_env` reads the slice from a Slurm array
or a Kubernetes Indexed Job, `parse_shard` reads "K/N", and `merge` joins the shards' results files."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from helpers.grading.records import ROW_FIELDS
from helpers.grading.submissions import Entry, _base_name

SHARDS_ENV = "SEEING_NETWORKS_SHARDS"  # how many shards, where the scheduler does not say (Kubernetes)
SHARD_ENV = "SEEING_NETWORKS_SHARD"  # "K/N", for any other scheduler


def parse_shard(text: str) -> tuple[int, int]:
    """ "K/N" -> (K, N): this machine grades slice K of N, K counting from 0 ("0/4" ... "3/4")."""
    if not isinstance(text, str):
        raise TypeError(f"shard must be a str 'K/N', got {type(text).__name__}")
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"shard must be 'K/N' with whole numbers, e.g. '0/4', got {text!r}")
    k, n = int(match.group(1)), int(match.group(2))
    _check_shard(k, n)
    return k, n


def _check_shard(k, n) -> None:
    for name, value in (("k", k), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if n < 1:
        raise ValueError(f"n must be at least 1 (the number of shards), got {n}")
    if not 0 <= k < n:
        raise ValueError(f"k must be in 0..{n - 1} (shards count from 0), got {k} of {n}")


def shard_key(item, root: str | Path | None = None) -> str:
    """What decides an item's shard: an Entry's student and notebook (the same on every machine), or a
    path (a str, a Path, or an object with `.path`) relative to `root` when given."""
    if isinstance(item, Entry):
        return f"{item.student}\x00{item.notebook or _base_name(item.original_name or item.path.name)}"
    path = getattr(item, "path", item)
    if not isinstance(path, (str, Path)):
        raise TypeError(f"items must be Entry objects, paths, or objects with a .path, got {type(item).__name__}")
    path = Path(path)
    if root is not None:
        try:
            path = path.resolve().relative_to(Path(root).resolve())
        except ValueError:
            raise ValueError(f"every path must lie under root {str(root)!r}, got {str(path)!r}") from None
    return path.as_posix()


def shard_of(key: str, n: int) -> int:
    """The shard (0..n-1) of a key: a SHA-256 of it, modulo n (the same in every process and Python)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % n


def shard(items, k: int, n: int, root: str | Path | None = None) -> list:
    """Slice `k` of `n` of `items`, in their order: the items whose `shard_key` hashes to k.

    Each item's shard depends on the item alone, so the slices are disjoint, cover everything, and stay
    the same however the list is ordered or whatever else it holds (a late submission moves nobody).
    Slices are balanced only on average.
    """
    _check_shard(k, n)
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(f"items must be a list, got {type(items).__name__}")
    return [item for item in items if shard_of(shard_key(item, root), n) == k]


def shard_from_env(environ: Mapping[str, str] | None = None, n: int | None = None) -> tuple[int, int] | None:
    """(k, n) from the scheduler's environment (default `os.environ`), or None outside a job array.

    - Slurm array: ``SLURM_ARRAY_TASK_ID``, counted from ``SLURM_ARRAY_TASK_MIN`` in steps of
      ``SLURM_ARRAY_TASK_STEP`` (so ``--array=1-8`` and ``--array=0-7`` both give 0..7), with
      ``SLURM_ARRAY_TASK_COUNT`` shards. The array must be one range (not a list like 1,4,9).
    - Kubernetes Indexed Job: ``JOB_COMPLETION_INDEX`` (from 0). Kubernetes gives pods no count, so n is
      `n`, else ``SEEING_NETWORKS_SHARDS`` (set it to the Job's ``completions``).
    - Anything else: ``SEEING_NETWORKS_SHARD`` = "K/N".

    Raises ValueError when the variables disagree or are incomplete.
    """
    env = os.environ if environ is None else environ
    if not isinstance(env, Mapping):
        raise TypeError(f"environ must be a mapping of environment variables, got {type(env).__name__}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive int, got {n!r}")

    def number(name: str, default: int | None = None) -> int | None:
        value = env.get(name, "")
        if str(value).strip() == "":
            return default
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {value!r}") from None

    if number("SLURM_ARRAY_TASK_ID") is not None:
        task, low = number("SLURM_ARRAY_TASK_ID"), number("SLURM_ARRAY_TASK_MIN", 0)
        step, count, high = number("SLURM_ARRAY_TASK_STEP", 1) or 1, number("SLURM_ARRAY_TASK_COUNT"), number("SLURM_ARRAY_TASK_MAX")
        if count is None:
            count = n if n is not None else (None if high is None else (high - low) // step + 1)
        if count is None:
            raise ValueError("SLURM_ARRAY_TASK_COUNT must be set with SLURM_ARRAY_TASK_ID (or pass n)")
        if n is not None and n != count:
            raise ValueError(f"n ({n}) must equal SLURM_ARRAY_TASK_COUNT ({count})")
        if high is not None and (high - low) // step + 1 != count:
            raise ValueError(
                f"the Slurm array must be one range like --array=0-{count - 1} (got ids {low}..{high} in steps of {step} "
                f"but {count} tasks); give --shard K/N instead"
            )
        k, rest = divmod(task - low, step)
        if rest or not 0 <= k < count:
            raise ValueError(f"SLURM_ARRAY_TASK_ID {task} is not in the range {low}..{low + step * (count - 1)} step {step}")
        return k, count
    if number("JOB_COMPLETION_INDEX") is not None:
        k = number("JOB_COMPLETION_INDEX")
        shards = n if n is not None else number(SHARDS_ENV)
        if shards is None:
            raise ValueError(
                f"a Kubernetes Indexed Job gives JOB_COMPLETION_INDEX but not the number of completions: "
                f"set {SHARDS_ENV} to the Job's spec.completions (or pass n)"
            )
        _check_shard(k, shards)
        return k, shards
    if str(env.get(SHARD_ENV, "")).strip():
        k, shards = parse_shard(str(env[SHARD_ENV]))
        if n is not None and n != shards:
            raise ValueError(f"n ({n}) must equal the N of {SHARD_ENV}={env[SHARD_ENV]!r}")
        return k, shards
    return None


class Merged(list):
    """The rows `merge` returns (a list of dicts), with `skipped` (unreadable lines), `notebooks` (graded
    notebooks) and `meta` (the course version, timeout and date the first graded line recorded, or None),
    and `entries` ({(student, notebook): submissions.Entry} recorded by the lines: late, time, file)."""

    skipped: int = 0
    notebooks: int = 0
    meta: dict | None = None
    entries: dict | None = None


def merge(results_files: Iterable[str | Path]) -> Merged:
    """The long rows of several ``--results`` files (one JSON line per graded notebook), as one list.

    Files are read in the order given, lines in order; a later line for the same (path, sha256) replaces
    an earlier one (a notebook graded again). Lines that are not JSON objects with "path", "sha256" and a
    list of "rows" are skipped and counted in ``.skipped``. Rows come out by path, each notebook's rows
    in their order. Raises FileNotFoundError for a missing file.
    """
    if isinstance(results_files, (str, bytes, Path)):
        raise TypeError("results_files must be a list of files, got a single path: wrap it in a list")
    done: dict[tuple[str, str], list[dict]] = {}
    lms: dict[tuple[str, str], object] = {}
    skipped, meta = 0, None
    for given in results_files:
        path = Path(given)
        if not path.is_file():
            raise FileNotFoundError(f"results_files must exist, got {str(given)!r}")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                key = (str(entry["path"]), str(entry["sha256"]))
                rows = entry["rows"]
                if not isinstance(rows, list) or not all(isinstance(r, dict) and all(f in r for f in ROW_FIELDS) for r in rows):
                    raise ValueError("rows")
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            done.pop(key, None)
            done[key] = rows
            if meta is None and isinstance(entry.get("meta"), dict):
                meta = entry["meta"]
            lms[key] = _entry(entry.get("entry"), rows)
    out = Merged(row for key in sorted(done) for row in done[key])
    out.skipped, out.notebooks, out.meta = skipped, len(done), meta
    out.entries = {(row["student"], row["notebook"]): lms[key] for key in sorted(done) if lms.get(key) for row in done[key]}
    return out


def _entry(record, rows: list[dict]):
    """The submissions.Entry a results line recorded for its notebook (LMS, late, time), or None."""
    from helpers.grading.submissions import entry_from_record

    try:
        return entry_from_record(record) if isinstance(record, dict) and rows else None
    except (KeyError, TypeError, ValueError):
        return None
