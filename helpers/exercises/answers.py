"""Answers in a safe, plain format: what a student's kernel hands the grader, and nothing that runs.

The grader never trusts a student's kernel with a verdict. The kernel only *produces answers*: the
value of each named answer, and what each function returned on the check's inputs. `encode` turns
them into JSON (numbers, strings, lists, tuples, sets, dicts, tensors and numpy arrays as raw bytes
with dtype and shape); `decode` reads them back in the grader's own process, where the comparison
with the reference happens. Anything else (a function, an object) is recorded by its type name only.
No pickle, no code: decoding a forged reply can give wrong answers, never run anything.

    encode(value) -> JSON-able      decode(JSON-able) -> value      (raise ValueError on bad input)
    question(exercise, seed) -> str                 # in the grader: what it asks the kernel
    start_responder(module, notebook)               # in the graded kernel, at start-up
    read_reply(text, nonce) -> record               # in the grader: the kernel's reply, checked
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np
import torch

MAX_DEPTH = 32
MAX_ELEMENTS = 50_000_000  # numbers in one reply, all tensors together

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
# The responder: in the graded kernel, answers the grader's questions after the last cell
# --------------------------------------------------------------------------------------------

RESPONDER = "__seeing_networks_answer__"  # the builtin the grader's question calls
MAX_REPLY_CHARS = 64 * 1024 * 1024


def start_responder(module: str, notebook: str) -> None:
    """Run once at kernel start-up, before any cell (the grader's start-up file): import the notebook's
    exercises (with `SEEING_NETWORKS_GRADING=1` they carry no reference) and install the responder.

    What the responder needs (the exercises, JSON, the kernel's stdout stream, the student namespace)
    is bound now, so a student cell that later replaces `print`, `sys.stdout`, `json` or a
    `sys.modules` entry does not change how the reply is written.
    """
    import builtins
    import importlib
    import sys

    from helpers.exercises.core import MISSING, Case, FunctionExercise, Withheld, exercises_of

    importlib.import_module(module)
    exercises = {ex.name: ex for ex in exercises_of(notebook)}
    namespace, stream, dumps, loads = _student_namespace(), sys.stdout, json.dumps, json.loads
    write, flush, run_cases, encode_, decode_ = stream.write, stream.flush, FunctionExercise.run_cases, encode, decode
    kernel = getattr(getattr(_shell(), "kernel", None), "get_parent", None)
    set_parent = getattr(stream, "set_parent", None)

    def answer(nonce: str, question: str, tripped=None) -> None:
        """Reply to one question (JSON: {"name", "cases"?}) with `nonce + JSON record + nonce` on stdout;
        with `tripped` (the tripwires' reader), the record also lists the library functions called."""
        try:
            asked = loads(question)
            exercise = exercises[asked["name"]]
            value = namespace.get(exercise.name, MISSING)
            withheld = exercise.reference if isinstance(exercise, FunctionExercise) else exercise.expected
            before = withheld.uses if isinstance(withheld, Withheld) else 0
            if isinstance(value, Withheld):
                record = {"state": "reference"}
            elif value is MISSING:
                record = {"state": "missing"}
            elif isinstance(exercise, FunctionExercise):
                cases = exercise.trial_cases(int(asked["seed"])) if "seed" in asked else [_case(decode_(c), Case) for c in asked["cases"]]
                record = run_cases(exercise, value, cases)
                if isinstance(withheld, Withheld) and withheld.uses > before:  # the answer called it
                    record = {"state": "reference"}
            else:
                record = {"state": "set", "value": encode_(value)}
            if before and _unattempted(record):  # a cell tried the reference and left the answer a stub
                record = {"state": "reference"}
        except BaseException as error:  # noqa: BLE001 - whatever happened, the grader hears of it
            record = {"state": "error", "detail": f"{type(error).__name__}: {error}"[:300]}
        if kernel is not None and set_parent is not None:  # the stream may no longer be sys.stdout: tell it whose reply it is
            set_parent(kernel("shell"))
        if tripped is not None:
            try:
                record["tripped"] = [str(name) for name in tripped()][:50]
            except Exception:  # noqa: BLE001 - tripwires undone by the student: the source check still holds
                record["tripped"] = []
        write(nonce + dumps(record) + nonce + "\n")
        flush()

    setattr(builtins, RESPONDER, answer)


def _unattempted(record: dict) -> bool:
    """Is this record a stub's (missing, still raising NotImplementedError, or `...`)?"""
    results = record.get("results") or [{}]
    return (record.get("state") == "missing" or results[0].get("not_attempted") is True
            or record.get("value") == {"$": "ellipsis"})  # fmt: skip


def _case(encoded: Any, Case: type):
    if not isinstance(encoded, dict) or not isinstance(encoded.get("args"), tuple) or not isinstance(encoded.get("kwargs"), dict):
        raise ValueError("a question's case must be {'args': tuple, 'kwargs': dict}")
    return Case("", encoded["args"], encoded["kwargs"])


def exercise_seed(seed: int, exercise) -> int:
    """The seed of one exercise's hidden cases, derived from the grader's `seed` and the exercise's id (so
    that what one question reveals says nothing of another's)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{seed}:{exercise.id}".encode()).digest()[:7], "big")


def question(exercise, seed: int) -> str:
    """The grader's question for one exercise (JSON): its name, and for a function the inputs to run it
    on, the visible cases and the hidden ones drawn now from `exercise_seed(seed, exercise)`.

    Inputs that are not plain data (a module, say) cannot travel: the question then carries that one
    exercise's seed instead, and the kernel builds the same cases (`FunctionExercise.trial_cases`).
    """
    asked: dict = {"name": exercise.name}
    if hasattr(exercise, "trial_cases"):
        own = exercise_seed(seed, exercise)
        cases = [encode({"args": tuple(c.args), "kwargs": dict(c.kwargs)}) for c in exercise.trial_cases(own)]
        asked["cases"] = cases
        if any(_has_opaque(decode(c)) for c in cases):
            asked = {"name": exercise.name, "seed": own}
    return json.dumps(asked)


def _has_opaque(value: Any) -> bool:
    if isinstance(value, Opaque):
        return True
    if isinstance(value, (tuple, list)):
        return any(_has_opaque(v) for v in value)
    if isinstance(value, dict):
        return any(_has_opaque(v) for v in value.values())
    return False


def read_reply(text: str, nonce: str) -> dict:
    """The record in a reply: the one JSON object framed by `nonce` in `text`. Raises ValueError."""
    parts = text.split(nonce)
    if len(parts) != 3:
        raise ValueError("no framed reply" if len(parts) < 3 else "more than one reply")
    if len(parts[1]) > MAX_REPLY_CHARS:
        raise ValueError(f"a reply of more than {MAX_REPLY_CHARS} characters")
    try:
        record = json.loads(parts[1])
    except (ValueError, RecursionError) as error:
        raise ValueError("the reply is not valid JSON") from error
    if not isinstance(record, dict):
        raise ValueError("the reply does not hold a record")
    return record


def _shell():
    try:
        from IPython import get_ipython

        return get_ipython()
    except ImportError:  # pragma: no cover
        return None


def _student_namespace() -> dict:
    shell = _shell()
    if shell is not None:
        return shell.user_ns
    import __main__

    return vars(__main__)
