"""Answers in a safe, plain format: what a student's kernel hands the grader, and nothing that runs.

The grader never trusts a student's kernel with a verdict. The kernel only *produces answers*: the
value of each named answer, and what each function returned on the check's inputs. `encode` turns
them into JSON (numbers, strings, lists, tuples, sets, dicts, tensors and numpy arrays as raw bytes
with dtype and shape); `decode` reads them back in the grader's own process, where the comparison
with the reference happens. Anything else (a function, an object) is recorded by its type name only.
No pickle, no code: decoding a forged file can give wrong answers, never run anything.

    encode(value) -> JSON-able      decode(JSON-able) -> value      (raise ValueError on bad input)
    export_answers(notebook, names, seed, folder)   # run in the student's kernel by the grader
"""

from __future__ import annotations

import base64
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

MAX_DEPTH = 32
MAX_ELEMENTS = 50_000_000  # numbers in one answer file, all tensors together
MAX_FILE_BYTES = 256 * 1024 * 1024

_TORCH_DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (
        torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
        torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool,
    )
}  # fmt: skip
_NUMPY_DTYPES = {
    "float16", "float32", "float64", "complex64", "complex128", "uint8", "uint16", "uint32", "uint64",
    "int8", "int16", "int32", "int64", "bool",
}  # fmt: skip


class Opaque:
    """Stands in, in the grader, for an answer that is neither data nor a tensor (a function, an object)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} answer>"


class OpaqueCallable(Opaque):
    def __call__(self, *args, **kwargs):
        raise TypeError("a recorded function cannot be called")


def _opaque(type_name: str, is_callable: bool) -> Opaque:
    name = "".join(c for c in type_name if c.isalnum() or c == "_")[:60] or "object"
    if name[0].isdigit():
        name = "_" + name
    if is_callable and name in ("function", "builtin_function_or_method", "method", "partial"):
        name = "function"
    return type(name, (OpaqueCallable if is_callable else Opaque,), {})()


# --------------------------------------------------------------------------------------------
# encode (in the student's kernel)
# --------------------------------------------------------------------------------------------


def encode(value: Any) -> Any:
    """A JSON-able description of `value`. Never raises on odd values: they become "opaque"."""
    budget = [MAX_ELEMENTS]
    return _encode(value, 0, budget)


def _encode(value: Any, depth: int, budget: list) -> Any:
    if depth > MAX_DEPTH:
        return {"$": "opaque", "type": "deeply nested value", "callable": False}
    if value is None or isinstance(value, (bool, str)):
        return value
    if type(value) is int:
        return value if abs(value) < 2**63 else {"$": "bigint", "value": str(value)}
    if type(value) is float:
        return value if math.isfinite(value) else {"$": "float", "value": repr(value)}
    if value is Ellipsis:
        return {"$": "ellipsis"}
    if value is NotImplemented:
        return {"$": "notimplemented"}
    if type(value) in (list, tuple, set, frozenset):
        items = list(value)
        if type(value) in (set, frozenset):
            try:
                items = sorted(items, key=repr)
            except Exception:  # noqa: BLE001 - an element's repr failed: keep set order
                pass
        return {"$": type(value).__name__, "items": [_encode(v, depth + 1, budget) for v in items]}
    if type(value) is dict and all(type(k) is str for k in value):
        return {"$": "dict", "items": {k: _encode(v, depth + 1, budget) for k, v in value.items()}}
    if isinstance(value, torch.Tensor) and type(value) is torch.Tensor:
        return _encode_tensor(value, budget)
    if isinstance(value, np.ndarray) and type(value) is np.ndarray:
        return _encode_array(value, "ndarray", budget)
    if isinstance(value, np.generic) and value.dtype.name in _NUMPY_DTYPES:
        return _encode_array(np.asarray(value), "npscalar", budget)
    return {"$": "opaque", "type": type(value).__name__, "callable": callable(value)}


def _charge(budget: list, numel: int) -> None:
    budget[0] -= numel
    if budget[0] < 0:
        raise ValueError(f"the answer holds more than {MAX_ELEMENTS} numbers")


def _encode_tensor(t: torch.Tensor, budget: list) -> Any:
    dtype = str(t.dtype).removeprefix("torch.")
    if dtype not in _TORCH_DTYPES or t.layout != torch.strided or t.is_quantized:
        return {"$": "opaque", "type": f"tensor of dtype {dtype}", "callable": False}
    _charge(budget, t.numel())
    data = t.detach().to("cpu").contiguous()
    raw = (data.view(torch.int16) if dtype == "bfloat16" else data).numpy().tobytes()
    return {
        "$": "tensor", "dtype": dtype, "shape": list(t.shape), "requires_grad": bool(t.requires_grad),
        "device": t.device.type, "data": base64.b64encode(raw).decode("ascii"),
    }  # fmt: skip


def _encode_array(a: np.ndarray, tag: str, budget: list) -> Any:
    if a.dtype.name not in _NUMPY_DTYPES:
        return {"$": "opaque", "type": f"numpy array of dtype {a.dtype}", "callable": False}
    _charge(budget, a.size)
    raw = np.ascontiguousarray(a).tobytes()
    return {"$": tag, "dtype": a.dtype.name, "shape": list(a.shape), "data": base64.b64encode(raw).decode("ascii")}


# --------------------------------------------------------------------------------------------
# decode (in the grader)
# --------------------------------------------------------------------------------------------


def decode(obj: Any) -> Any:
    """The value `encode` described. Raises ValueError on anything `encode` does not write."""
    return _decode(obj, 0, [MAX_ELEMENTS])


def _decode(obj: Any, depth: int, budget: list) -> Any:
    if depth > MAX_DEPTH + 1:
        raise ValueError("answer nested too deeply")
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return obj
    if not isinstance(obj, dict) or not isinstance(obj.get("$"), str):
        raise ValueError(f"not an encoded answer: {type(obj).__name__}")
    tag = obj["$"]
    if tag in ("list", "tuple", "set", "frozenset"):
        items = obj.get("items")
        if not isinstance(items, list):
            raise ValueError(f"{tag} without a list of items")
        values = [_decode(v, depth + 1, budget) for v in items]
        if tag in ("set", "frozenset"):
            try:
                return (set if tag == "set" else frozenset)(values)
            except TypeError as error:
                raise ValueError(f"a {tag} of unhashable items") from error
        return values if tag == "list" else tuple(values)
    if tag == "dict":
        items = obj.get("items")
        if not isinstance(items, dict):
            raise ValueError("dict without items")
        return {str(k): _decode(v, depth + 1, budget) for k, v in items.items()}
    if tag == "float":
        value = float(obj.get("value", "nan"))
        if math.isfinite(value):
            raise ValueError("a finite float written as a special float")
        return value
    if tag == "bigint":
        return int(str(obj.get("value"))[:400])
    if tag == "ellipsis":
        return Ellipsis
    if tag == "notimplemented":
        return NotImplemented
    if tag == "opaque":
        return _opaque(str(obj.get("type", "object")), bool(obj.get("callable")))
    if tag == "tensor":
        return _decode_tensor(obj, budget)
    if tag in ("ndarray", "npscalar"):
        array = _decode_array(obj, budget)
        if tag == "npscalar" and array.size != 1:
            raise ValueError("a numpy scalar with more than one value")
        return array if tag == "ndarray" else array.reshape(())[()]
    raise ValueError(f"unknown answer tag {tag!r}")


def _shape_and_bytes(obj: dict, budget: list, itemsize: int) -> tuple[list[int], bytes]:
    shape = obj.get("shape")
    if not isinstance(shape, list) or len(shape) > 16 or not all(type(n) is int and 0 <= n for n in shape):
        raise ValueError("bad shape")
    numel = math.prod(shape)
    _charge(budget, numel)
    data = obj.get("data")
    if not isinstance(data, str):
        raise ValueError("tensor without data")
    raw = base64.b64decode(data.encode("ascii"), validate=True)
    if len(raw) != numel * itemsize:
        raise ValueError(f"data of {len(raw)} bytes for shape {shape}")
    return shape, raw


def _decode_tensor(obj: dict, budget: list) -> torch.Tensor:
    dtype = _TORCH_DTYPES.get(obj.get("dtype"))
    if dtype is None:
        raise ValueError(f"unknown tensor dtype {obj.get('dtype')!r}")
    stored = torch.int16 if dtype == torch.bfloat16 else dtype
    shape, raw = _shape_and_bytes(obj, budget, torch.empty((), dtype=stored).element_size())
    flat = torch.frombuffer(bytearray(raw), dtype=stored) if raw else torch.empty(0, dtype=stored)
    t = flat.reshape(shape)
    if dtype == torch.bfloat16:
        t = t.view(torch.bfloat16)
    if obj.get("requires_grad") is True and t.is_floating_point():
        t.requires_grad_(True)
    return t


def _decode_array(obj: dict, budget: list) -> np.ndarray:
    name = obj.get("dtype")
    if name not in _NUMPY_DTYPES:
        raise ValueError(f"unknown numpy dtype {name!r}")
    dtype = np.dtype(name)
    shape, raw = _shape_and_bytes(obj, budget, dtype.itemsize)
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


# --------------------------------------------------------------------------------------------
# Files: one per exercise, written in the kernel, read by the grader
# --------------------------------------------------------------------------------------------


def export_answers(
    notebook: str, names: list[str], seed: int, folder: str | os.PathLike = "answers", module: str | None = None
) -> None:
    """Record the student's answers to `names` of `notebook` into `folder/NAME.json` (run in the kernel).

    For a function, what it returned on each of the check's inputs, the visible ones and those drawn
    from `seed`; for a named answer, its value. `module` defines the exercises (default
    `helpers.exercises.nbNN`). Prints nothing: the student's notebook looks the same.
    """
    import importlib

    from helpers.exercises.core import MISSING, REGISTRY

    importlib.import_module(module or f"helpers.exercises.nb{notebook[:2]}")
    namespace = _student_namespace()
    out = Path(folder)
    out.mkdir(exist_ok=True)
    for name in names:
        exercise = REGISTRY[(notebook, name)]
        try:
            record = exercise.record(namespace.get(name, MISSING), seed=seed)
        except Exception as error:  # noqa: BLE001 - whatever happened, the grader hears of it
            record = {"state": "error", "detail": f"{type(error).__name__}: {error}"[:300]}
        record["exercise"] = name
        tmp = out / f".{name}.json.tmp"
        tmp.write_text(json.dumps(record))
        tmp.replace(out / f"{name}.json")


def _student_namespace() -> dict:
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            return shell.user_ns
    except ImportError:  # pragma: no cover
        pass
    import __main__

    return vars(__main__)


def read_answer_file(path: Path) -> dict:
    """Read one answer file safely (no symlinks, no FIFOs, bounded size). Raises ValueError."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ValueError(f"the answer file could not be opened ({error.strerror})") from error
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("the answer file is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise ValueError(f"the answer file is larger than {MAX_FILE_BYTES} bytes")
        raw = f.read(MAX_FILE_BYTES + 1)
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise ValueError("the answer file is not valid JSON") from error
    if not isinstance(record, dict):
        raise ValueError("the answer file does not hold a record")
    return record
