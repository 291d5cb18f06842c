"""Reading a submitted notebook file safely, and printing what a student chose safely.

`read_submission_notebook` turns the bytes of a submission into an nbformat-4 notebook, or raises
`InvalidNotebook` with one line saying what is wrong (never a bare `KeyError`, `RecursionError` or
`MemoryError`), so that one bad file costs only its own row. It reads in time linear in the file's
size: one `json.loads`, one pass over the cells.

`safe_text` escapes control characters (newline, carriage return, ESC, bidirectional overrides ...)
in text a student chose, such as a file name, before it goes into a printed table or a CSV row.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import nbformat

#: Default caps: a course notebook has under 100 cells and, with its figures, a few MB.
MAX_BYTES = 64 * 1024 * 1024
MAX_CELLS = 10_000

_CELL_TYPES = ("code", "markdown", "raw")
_CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class InvalidNotebook(ValueError):
    """A submission that is not a readable notebook. `str(error)` is one line, without control characters."""

    def __init__(self, message: str):
        super().__init__(safe_text(message, 300))


def safe_text(text: Any, limit: int = 200) -> str:
    """`text` (made a string with `str` if it is not one) on one printable line, at most `limit` characters.

    Control and format characters (category C*: newline, carriage return, tab, ESC, NUL, the
    bidirectional overrides U+202A-U+202E ...) and line/paragraph separators become escapes as
    Python writes them (`\\n`, `\\x1b`, `\\u202e`), so a name cannot start a new row, move the cursor
    or reorder the letters of a table. A longer text is cut and ends with "...".
    """
    if not isinstance(text, str):
        try:
            text = str(text)
        except Exception:  # noqa: BLE001 - an object that cannot print itself
            text = f"<{type(text).__name__}>"
    limit = max(int(limit), 4)
    out, length = [], 0
    for char in text:
        if unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp"):
            piece = repr(char)[1:-1]
            if piece == char:  # repr kept it (e.g. a private-use character): escape it ourselves
                piece = f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"
        else:
            piece = char
        if length + len(piece) > limit:
            return "".join(out)[: limit - 3] + "..."
        out.append(piece)
        length += len(piece)
    return "".join(out)


def read_submission_notebook(
    source: "Path | str | bytes", max_bytes: int = MAX_BYTES, max_cells: int = MAX_CELLS
) -> nbformat.NotebookNode:
    """The notebook in `source` (a path, or the file's bytes) as nbformat 4, outputs dropped.

    Raises `InvalidNotebook` when the file is larger than `max_bytes`, is not UTF-8 JSON, is nested
    too deeply, is not nbformat 4 (nbformat 3 is converted; others are refused), has more than
    `max_cells` cells, or has a cell whose fields have the wrong types (a `source` or `tags` that is
    a number, `metadata` that is a list ...). What is recoverable is normalised: a source given as
    a list of lines becomes one string; outputs, execution counts and attachments are dropped; a
    missing or repeated cell id gets a fresh one. Cells are numbered from 1 in the messages,
    counting every cell (markdown too), as they stand in the file.
    """
    try:
        raw = _read_bytes(source, max_bytes)
        data = _parse_json(raw)
        data = _as_version_4(data)
        return _normalised(data, max_cells)
    except InvalidNotebook:
        raise
    except RecursionError:
        raise InvalidNotebook("the notebook is nested too deeply to read") from None
    except MemoryError:
        raise InvalidNotebook("the notebook is too large to read in memory") from None
    except Exception as error:  # noqa: BLE001 - nbformat's own trouble: still one clear line
        raise InvalidNotebook(f"not a readable notebook ({type(error).__name__}: {error})") from None


def _read_bytes(source, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
    elif isinstance(source, (str, Path)):
        try:
            with open(source, "rb") as handle:
                raw = handle.read(max_bytes + 1)
        except OSError as error:
            raise InvalidNotebook(f"the file cannot be read ({error.strerror or type(error).__name__})") from None
    else:
        raise TypeError(f"source must be a path or bytes, got {type(source).__name__}")
    if len(raw) > max_bytes:
        raise InvalidNotebook(f"the file is larger than {max_bytes} bytes")
    return raw


def _parse_json(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidNotebook(f"the file is not UTF-8 text (byte {error.start})") from None
    try:
        data = json.loads(text)
    except ValueError as error:  # json.JSONDecodeError
        raise InvalidNotebook(f"the file is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise InvalidNotebook(f"the file holds a JSON {type(data).__name__}, not a notebook (a JSON object)")
    return data


def _as_version_4(data: dict) -> dict:
    version = data.get("nbformat")
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidNotebook(f"no nbformat version number in the file (found {type(version).__name__})")
    if version == 4:
        return data
    if version == 3:
        worksheets = data.get("worksheets")
        if not isinstance(worksheets, list) or not all(isinstance(w, dict) for w in worksheets):
            raise InvalidNotebook("an nbformat 3 notebook without a list of worksheets")
        for sheet in worksheets:
            cells = sheet.get("cells", [])
            if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
                raise InvalidNotebook("an nbformat 3 worksheet whose cells are not a list of objects")
            for number, cell in enumerate(cells, 1):
                for key in ("input", "source"):
                    if key in cell and not _is_text(cell[key]):
                        raise InvalidNotebook(f"cell {number}: `{key}` must be a string or a list of strings")
        try:
            converted = nbformat.convert(nbformat.from_dict(data), 4)
        except Exception as error:  # noqa: BLE001
            raise InvalidNotebook(f"an nbformat 3 notebook that cannot be converted to nbformat 4 ({error})") from None
        return converted
    raise InvalidNotebook(f"nbformat {version} is not supported (expected 4, or 3 to convert)")


def _is_text(value) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(line, str) for line in value))


def _normalised(data: dict, max_cells: int) -> nbformat.NotebookNode:
    cells = data.get("cells")
    if not isinstance(cells, list):
        raise InvalidNotebook(f"`cells` must be a list, got {type(cells).__name__}")
    if len(cells) > max_cells:
        raise InvalidNotebook(f"the notebook has {len(cells)} cells, more than the {max_cells} allowed")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise InvalidNotebook(f"the notebook's `metadata` must be an object, got {type(metadata).__name__}")
    seen_ids: set[str] = set()
    clean = [_clean_cell(cell, number, seen_ids) for number, cell in enumerate(cells, 1)]
    return nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "metadata": metadata, "cells": clean})


def _clean_cell(cell, number: int, seen_ids: set[str]) -> dict:
    """One cell checked field by field and reduced to what grading needs (see `read_submission_notebook`)."""
    if not isinstance(cell, dict):
        raise InvalidNotebook(f"cell {number} must be an object, got {type(cell).__name__}")
    kind = cell.get("cell_type")
    if kind not in _CELL_TYPES:
        raise InvalidNotebook(f"cell {number}: `cell_type` must be one of {', '.join(_CELL_TYPES)}, got {safe_text(repr(kind), 40)}")
    source = cell.get("source", "")
    if not _is_text(source):
        raise InvalidNotebook(f"cell {number}: `source` must be a string or a list of strings, got {_what(source)}")
    metadata = cell.get("metadata", {})
    if not isinstance(metadata, dict):
        raise InvalidNotebook(f"cell {number}: `metadata` must be an object, got {_what(metadata)}")
    tags = metadata.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise InvalidNotebook(f"cell {number}: `metadata.tags` must be a list of strings, got {_what(tags)}")
    exercise = metadata.get("exercise")
    if exercise is not None and not (isinstance(exercise, dict) and all(isinstance(v, str) for v in exercise.values())):
        raise InvalidNotebook(f"cell {number}: `metadata.exercise` must be an object of strings, got {_what(exercise)}")
    if kind == "code":
        outputs = cell.get("outputs", [])
        if not isinstance(outputs, list):
            raise InvalidNotebook(f"cell {number}: `outputs` must be a list, got {_what(outputs)}")
        count = cell.get("execution_count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise InvalidNotebook(f"cell {number}: `execution_count` must be a number or null, got {_what(count)}")
    cell_id = cell.get("id")
    if not (isinstance(cell_id, str) and _CELL_ID.match(cell_id)) or cell_id in seen_ids:
        cell_id = f"cell-{number}"
        while cell_id in seen_ids:
            cell_id += "-x"
    seen_ids.add(cell_id)
    clean = {"id": cell_id, "cell_type": kind, "metadata": metadata,
             "source": source if isinstance(source, str) else "".join(source)}
    if kind == "code":
        clean.update(outputs=[], execution_count=None)
    return clean


def _what(value) -> str:
    """A short description of a JSON value's type, for messages: 'a number', 'a list', 'null' ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list" if not value or all(isinstance(v, str) for v in value) else "a list holding other than strings"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
