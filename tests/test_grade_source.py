"""The grader's source check (`helpers.grading.sourcecheck`): each way of wrapping the library or the
reference named in issue 18 is flagged, the course's own solutions are not, and no source makes it raise.

Cells in findings are numbered as the Nth code cell from 1: here cell 1 holds the imports of notebook
02 and cell 2 the student's answer.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
import time

import nbformat
import pytest

import helpers.exercises
from helpers.exercises.core import REGISTRY, FunctionExercise
from helpers.grading import sourcecheck
from helpers.grading.sourcecheck import Finding, accepted, scan, scan_all, tripwire_source
from tests.exercises import harness

NOTEBOOK_MODULES = sorted(m.name for m in pkgutil.iter_modules(helpers.exercises.__path__) if m.name.startswith("nb"))
NOTEBOOKS = {importlib.import_module(f"helpers.exercises.{name}").NOTEBOOK for name in NOTEBOOK_MODULES}
EXERCISES = sorted((e for e in REGISTRY.values() if e.notebook in NOTEBOOKS), key=lambda e: e.id)
BOX_IOU = REGISTRY[("02_iou_ap_map", "box_iou")]
AP_WORST = REGISTRY[("02_iou_ap_map", "problem1_ap_worst")]

IMPORTS = """\
import itertools
import torch, torchvision
from helpers import boxes, metrics
from helpers.exercises import nb02 as ex
"""

# name: (the student's cell, the kind of finding, a fragment its detail must hold)
ATTACKS = {
    "calls torchvision": ("def box_iou(a, b):\n    return torchvision.ops.box_iou(a, b)", "library", "`torchvision.ops.box_iou`, cell 2 line 2"),
    "calls the course's helpers.boxes": ("def box_iou(a, b):\n    return boxes.box_iou(a, b)", "library", "`helpers.boxes.box_iou`, cell 2 line 2"),
    "another path to the same function": ("def box_iou(a, b):\n    return torchvision.ops.boxes.box_iou(a, b)", "library", "torchvision.ops.boxes.box_iou"),
    "a module alias": ("import torchvision.ops as ops\ndef box_iou(a, b):\n    return ops.box_iou(a, b)", "library", "cell 2 line 3"),
    "a renamed import": ("from torchvision.ops import box_iou as iou\ndef box_iou(a, b):\n    return iou(a, b)", "library", "cell 2 line 3"),
    "the answer imported": ("from torchvision.ops import box_iou", "library", "cell 2 line 1"),
    "a star import": ("from torchvision.ops import *", "library", "torchvision.ops.box_iou"),
    "through a helper function": ("def _iou(a, b):\n    return torchvision.ops.box_iou(a, b)\n\ndef box_iou(a, b):\n    return _iou(a, b)", "library", "cell 2 line 2"),
    "through a global alias in another cell": ("f = torchvision.ops.box_iou", "library", None),
    "functools.partial": ("import functools\nbox_iou = functools.partial(torchvision.ops.box_iou)", "library", "cell 2 line 2"),
    "getattr with a literal": ("def box_iou(a, b):\n    return getattr(torchvision.ops, 'box_iou')(a, b)", "library", "cell 2 line 2"),
    "a local alias": ("def box_iou(a, b):\n    o = torchvision.ops\n    return o.box_iou(a, b)", "library", "cell 2 line 3"),
    "a default argument": ("def box_iou(a, b, f=torchvision.ops.box_iou):\n    return f(a, b)", "library", "cell 2 line 1"),
    "a global statement": ("def setup():\n    global box_iou\n    box_iou = torchvision.ops.box_iou\n\nsetup()", "library", "cell 2 line 3"),
    "a walrus": ("(box_iou := torchvision.ops.box_iou)", "library", "cell 2 line 1"),
    "a walrus in an if": ("if (box_iou := torchvision.ops.box_iou):\n    pass", "library", "cell 2 line 1"),
    "a conditional definition": ("if True:\n    def box_iou(a, b):\n        return boxes.box_iou(a, b)", "library", "cell 2 line 3"),
    "inside %%capture": ("%%capture\ndef box_iou(a, b):\n    return torchvision.ops.box_iou(a, b)", "library", "cell 2 line 3"),
    "the reference": ("def box_iou(a, b):\n    return ex.box_iou.reference(a, b)", "dynamic", "`.reference`"),
    "an exercise-module function": ("def box_iou(a, b):\n    return ex.boxes.box_iou(a, b)", "dynamic", "the exercises object `ex`"),
    "getattr on built strings": ("def box_iou(a, b):\n    return getattr(torchvision.ops, 'box' + '_iou')(a, b)", "dynamic", "`getattr` with a computed name"),
    "importlib": ("import importlib\ndef box_iou(a, b):\n    return importlib.import_module('torchvision.ops').box_iou(a, b)", "dynamic", "`importlib"),
    "__import__": ("def box_iou(a, b):\n    return __import__('torchvision').ops.box_iou(a, b)", "dynamic", "`__import__`"),
    "exec of the solution text": ("exec(ex.box_iou.solution_source)", "dynamic", "needs review: \"exec(ex.box_iou.solution_source)\" (cell 2 line 1"),
    "inspect.getsource and exec": ("import inspect\nexec(inspect.getsource(boxes.box_iou))", "dynamic", "cell 2 line 2: `exec`"),
    "inspect inside the answer": ("import inspect\ndef box_iou(a, b):\n    return inspect.unwrap(boxes.box_iou)(a, b)", "dynamic", "`inspect`"),
    "eval": ("box_iou = eval('torchvision.ops.' + 'box_iou')", "dynamic", "`eval`"),
    "compile and types.FunctionType": (
        "import types\ncode = compile(open('x.py').read(), 'x', 'exec')\n"
        "def box_iou(a, b):\n    return types.FunctionType(code, globals())(a, b)", "dynamic", "`types.FunctionType`"),
    "globals()": ("globals()['box' + '_iou'] = torchvision.ops.box_iou", "dynamic", "`globals`"),
    "vars() of a module": ("vars(sys.modules['__main__'])['box_iou'] = boxes.box_iou", "dynamic", "`vars`"),
    "sys.modules": ("import sys\ndef box_iou(a, b):\n    return sys.modules['torchvision.ops'].box_iou(a, b)", "dynamic", "`sys.modules`"),
    "an alias of sys.modules": ("import sys\nm = sys.modules\nm['__main__'].box_iou = boxes.box_iou", "dynamic", "`sys.modules`"),
    "__dict__": ("def box_iou(a, b):\n    return torchvision.ops.__dict__['box_iou'](a, b)", "dynamic", "`.__dict__`"),
    "an assignment to __main__": ("import __main__\n__main__.box_iou = boxes.box_iou", "dynamic", "an assignment to `__main__`"),
    "setattr on __main__": ("import __main__ as m\nsetattr(m, 'box_iou', boxes.box_iou)", "dynamic", "`setattr`"),
    "pickle": ("import pickle\nbox_iou = pickle.loads(blob)", "dynamic", "`pickle`"),
    "a module the notebook wrote": (
        "open('cheat.py', 'w').write('from torchvision.ops import box_iou')\nimport cheat\nbox_iou = cheat.box_iou",
        "dynamic", "`cheat`, a module the course's environment does not have"),
    "%run of another file": ("%run cheat.py", "dynamic", "the IPython magic `run`"),
    "%%writefile then import": ("%%writefile cheat.py\nfrom torchvision.ops import box_iou\n", "dynamic", "the IPython magic `writefile`"),
}


def kinds_and_details(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.kind, f.detail) for f in findings]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_wrapper_attack_is_flagged(attack):
    cell, kind, fragment = ATTACKS[attack]
    sources = [IMPORTS, cell]
    if attack == "through a global alias in another cell":
        sources.append("def box_iou(a, b):\n    return f(a, b)")
    findings = scan(sources, BOX_IOU)
    matching = [f for f in findings if f.kind == kind and (fragment is None or fragment in f.detail)]
    assert matching, f"{attack}: expected a {kind!r} finding holding {fragment!r}, got {kinds_and_details(findings)}"
    if kind == "library":
        assert matching[0].detail.startswith("uses a library implementation (`")
    else:
        assert matching[0].detail.startswith("needs review: ")


def test_a_named_answer_read_from_the_exercise_needs_review():
    findings = scan([IMPORTS, "problem1_ap_worst = float(ex.problem1_ap_worst.expected)"], AP_WORST)
    assert [f.kind for f in findings] == ["dynamic"]
    assert "`.expected`" in findings[0].detail and "the exercises object `ex`" in findings[0].detail
    assert '"problem1_ap_worst = float(ex.problem1_ap_worst.expected)" (cell 2 line 1' in findings[0].detail


def test_only_the_live_definition_counts():
    """A first try that called the library, replaced by the student's own function, is not held against them."""
    own = "def box_iou(a, b):\n    return (a[:, None, 0] * 0 + b[None, :, 0] * 0)"
    assert scan([IMPORTS, "def box_iou(a, b):\n    return torchvision.ops.box_iou(a, b)", own], BOX_IOU) == []
    # ... but the other order is flagged: the library version is the one that holds at the end
    assert scan([IMPORTS, own, "def box_iou(a, b):\n    return torchvision.ops.box_iou(a, b)"], BOX_IOU)


def test_library_use_outside_the_answer_is_fine():
    """Comparing with the library in a test cell, or in another exercise's answer, is not flagged."""
    sources = [
        IMPORTS,
        "def box_iou(a, b):\n    inter = torch.zeros(len(a), len(b))\n    return inter",
        "print(torch.allclose(box_iou(x, y), torchvision.ops.box_iou(x, y)))",
        "def match_detections(p, s, g, t):\n    iou = torchvision.ops.box_iou(p, g)\n    return iou > t",
    ]
    assert scan(sources, BOX_IOU) == []


def test_a_parameter_named_like_a_module_is_not_resolved_through_the_import():
    """Notebook 03 imports `helpers.boxes` as `boxes`, and nms takes a parameter `boxes`."""
    nms = REGISTRY[("03_faster_rcnn", "nms")]
    cell = "def nms(boxes, scores, iou_threshold):\n    keep = boxes.argsort()\n    return keep"
    assert scan(["from helpers import boxes", cell], nms) == []
    assert scan(["from helpers import boxes", "def nms(b, s, t):\n    return boxes.nms(b, s, t)"], nms)


def solution_notebook_code(notebook: str, folder: str = "notebooks/solutions") -> list[str]:
    nb = nbformat.read(harness.ROOT / folder / f"{notebook}.ipynb", as_version=4)
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("folder", ["notebooks/solutions", "notebooks"])
@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS))
def test_honest_solution_and_student_notebooks_give_no_finding(notebook, folder):
    """Every code cell of the solution notebook (and of the student notebook, with its stubs), every exercise."""
    if not (harness.ROOT / folder / f"{notebook}.ipynb").exists() and folder == "notebooks":
        pytest.skip(f"the student notebook {notebook} is not generated yet (python -m helpers.build)")
    sources = solution_notebook_code(notebook, folder)
    exercises = [e for e in EXERCISES if e.notebook == notebook]
    assert exercises
    found = {name: kinds_and_details(f) for name, f in scan_all(sources, exercises).items() if f}
    assert found == {}


@pytest.mark.parametrize("exercise", EXERCISES, ids=[e.id for e in EXERCISES])
def test_each_solution_text_gives_no_finding(exercise):
    """The solution the exercise shows, run after the notebook's own cells (as a student would paste it)."""
    assert scan(solution_notebook_code(exercise.notebook) + [exercise.solution_source], exercise) == []


FUNCTION_EXERCISES = [e for e in EXERCISES if isinstance(e, FunctionExercise)]


@pytest.mark.parametrize("exercise", FUNCTION_EXERCISES, ids=[e.id for e in FUNCTION_EXERCISES])
def test_every_function_exercise_lists_its_library_and_each_listed_name_is_caught(exercise):
    assert exercise.library, f"{exercise.id} has no library list"
    for dotted in exercise.library:
        root = dotted.split(".")[0]
        if root in ("torch", "torchvision", "helpers"):  # the course's own dependencies: the name must exist
            assert sourcecheck._lookup(dotted, allow_import=True) is not None, f"{exercise.id}: {dotted} does not exist"
        cell = f"import {root}\ndef {exercise.name}(*args, **kwargs):\n    return {dotted}(*args, **kwargs)"
        findings = scan([cell], exercise)
        assert ("library", f"uses a library implementation (`{dotted}`, cell 1 line 3)") in kinds_and_details(findings)


WEIRD_SOURCES = {
    "a syntax error": "def box_iou(a, b:\n",
    "a 20,000-term expression": "x = " + " + ".join(["1"] * 20_000),
    "300 nested parentheses": "x = " + "(" * 300 + "1" + ")" * 300,
    "5,000 nested lambdas": "f = " + "lambda: " * 5_000 + "1",
    "a 10,000-long attribute chain": "x = a" + ".b" * 10_000,
    "a NUL byte": "x = 1\x00",
    "not a string": 3,
    "None": None,
    "an IPython help line": "torch.zeros?",
    "an unknown cell magic": "%%bash\necho hi",
}


@pytest.mark.parametrize("weird", sorted(WEIRD_SOURCES))
def test_no_source_makes_the_scan_raise(weird):
    findings = scan([IMPORTS, WEIRD_SOURCES[weird], "def box_iou(a, b):\n    return a"], BOX_IOU)
    assert isinstance(findings, list) and all(isinstance(f, Finding) for f in findings)
    assert all(f.kind == "dynamic" and f.detail.startswith("needs review") for f in findings)


def test_a_cell_too_deep_to_read_needs_review():
    findings = scan([IMPORTS, WEIRD_SOURCES["a 20,000-term expression"]], BOX_IOU)
    assert [f.detail for f in findings] == ["needs review: cell 2 is too deeply nested or too large to read (RecursionError)"]


def test_a_huge_notebook_is_read_up_to_the_cap_only():
    """4,000 cells of 200 names each (20 MB of code): read up to MAX_SOURCE_CHARS, then a finding, in
    bounded time (the old grader's preparation took 70 s here and grew quadratically)."""
    cells = ["\n".join(f"v{i}_{j} = {j}" for j in range(200)) for i in range(4_000)]
    start = time.perf_counter()
    findings = scan(cells + ["def box_iou(a, b):\n    return a"], BOX_IOU)
    elapsed = time.perf_counter() - start
    assert [f.kind for f in findings] == ["dynamic"]
    assert f"more than {sourcecheck.MAX_SOURCE_CHARS} characters of code" in findings[0].detail
    assert elapsed < 30, f"the scan took {elapsed:.1f} s"


def test_a_name_with_control_characters_is_quoted_safely():
    findings = scan([IMPORTS, "exec('x')  # \x1b[2J\u202e"], BOX_IOU)
    assert findings and all("\x1b" not in f.detail and "\u202e" not in f.detail and "\n" not in f.detail for f in findings)


def test_accepting_a_needs_review_finding():
    dynamic = Finding("dynamic", 'needs review: "exec(s)" (cell 3 line 1: `exec`)')
    library = Finding("library", "uses a library implementation (`torchvision.ops.box_iou`, cell 12 line 3)")
    assert len(dynamic.key) == 10 and dynamic.key != library.key
    assert not accepted(dynamic, [])
    assert accepted(dynamic, [dynamic.key])
    assert accepted(dynamic, [f"alice:{dynamic.key}"], who="alice")
    assert not accepted(dynamic, [f"bob:{dynamic.key}"], who="alice")
    assert not accepted(library, [library.key]), "a library call is a verdict, not a question"


TRIPWIRE_PROGRAM = r"""
import json, sys, torch, torchvision, functools
from types import SimpleNamespace as NS
from helpers.grading.sourcecheck import tripwire_source
from torchvision.ops import box_iou as held_alias

def cheat(a, b):
    return held_alias(a, b)

def cheat_default(a, b, f=torchvision.ops.box_iou):
    return f(a, b)

cheat_partial = functools.partial(torchvision.ops.box_iou)

def honest(a, b):
    return torchvision.ops.box_area(a)[:, None] * 0 + torchvision.ops.box_area(b)[None, :] * 0

exercises = [NS(library=("torchvision.ops.box_iou", "helpers.boxes.box_iou")),
             NS(library=("torch.nn.functional.conv_transpose2d", "torch.nn.ConvTranspose2d"))]
x = torch.tensor([[0.0, 0, 2, 2], [1, 1, 3, 3]])
before = torchvision.ops.box_iou(x, x)
exec(compile(tripwire_source(exercises), "<tripwire>", "exec"), globals())
out = {"installed": _sn_tripped()}
for name in ("honest", "cheat", "cheat_default", "cheat_partial"):
    _sn_tripwire_reset()
    result = globals()[name](x, x)
    out[name] = _sn_tripped()
out["same result"] = bool(torch.equal(cheat(x, x), before))
_sn_tripwire_reset()
torch.nn.ConvTranspose2d(1, 1, 2)(torch.ones(1, 1, 2, 2))
out["ConvTranspose2d"] = _sn_tripped()
print(json.dumps(out))
"""


def test_tripwires_catch_a_call_of_a_listed_function():
    """Run in a fresh interpreter: the wrappers replace module attributes, which must not leak into this one."""
    done = subprocess.run([sys.executable, "-c", TRIPWIRE_PROGRAM], capture_output=True, text=True, timeout=300,
                          cwd=harness.ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["installed"] == [] and out["honest"] == []
    for name in ("cheat", "cheat_default", "cheat_partial"):
        assert out[name] == ["torchvision.ops.box_iou"], (name, out)
    assert out["same result"]
    # the module's own call of conv_transpose2d is the library's business, not the caller's
    assert out["ConvTranspose2d"] == ["torch.nn.ConvTranspose2d"]


HONEST_UNDER_TRIPWIRES = r"""
import importlib, json, pkgutil
import helpers.exercises
from helpers.exercises.core import REGISTRY, FunctionExercise
from helpers.grading.sourcecheck import tripwire_source
from tests.exercises import harness

for module in pkgutil.iter_modules(helpers.exercises.__path__):
    if module.name.startswith("nb"):
        importlib.import_module(f"helpers.exercises.{module.name}")
exercises = [e for e in REGISTRY.values() if isinstance(e, FunctionExercise)]
exec(compile(tripwire_source(exercises), "<tripwire>", "exec"), globals())
listed = {}
for exercise in exercises:
    answer = harness.solution_answer(exercise)
    _sn_tripwire_reset()
    for number, case in enumerate(exercise.trial_cases(1234)):  # the hidden cases are made in the kernel too
        exercise.call(answer, case, number)
    listed[exercise.id] = [name for name in _sn_tripped() if name in exercise.library]
print(json.dumps(listed))
"""


def test_honest_solutions_trip_no_wire_of_their_own_exercise():
    """Every solution, on its visible and hidden cases, with the tripwires of every exercise installed: the
    cases may call library functions (notebook 01's scenes build class maps with the course's own
    semantic_from_instances), the answer must not call one its exercise lists."""
    done = subprocess.run([sys.executable, "-c", HONEST_UNDER_TRIPWIRES], capture_output=True, text=True,
                          timeout=600, cwd=harness.ROOT, env={**os.environ, "PYTHONPATH": str(harness.ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    listed = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(listed) == len(FUNCTION_EXERCISES)
    assert {name: called for name, called in listed.items() if called} == {}


def test_tripwire_source_lists_each_name_once():
    source = tripwire_source(EXERCISES)
    names = sorted({n for e in EXERCISES for n in e.library if not n.endswith(".*")})
    assert f"_sn_install_tripwires({names!r})" in source
    compile(source, "<tripwire>", "exec")


def test_harmless_magics_are_fine():
    cells = ["%load_ext autoreload\n%autoreload 2\n%matplotlib inline", "%time x = 1", "!pip list", "%%timeit\ny = 2"]
    assert scan([IMPORTS, *cells, "def box_iou(a, b):\n    return a"], BOX_IOU) == []


def test_setattr_with_a_literal_name_outside_an_answer_is_fine():
    cell = "layer = torch.nn.Linear(2, 2)\nsetattr(layer, 'scale', 2.0)\ndelattr(layer, 'scale')"
    assert scan([IMPORTS, cell, "def box_iou(a, b):\n    return a"], BOX_IOU) == []


def test_reading_globals_outside_an_answer_is_fine():
    """Notebook 01's knob check reads globals(); writing to it anywhere is what needs review."""
    reads = ('if "K" in globals() and globals()["K"] != 1 and globals().get("L"):\n    print(vars(torch)["zeros"])\n'
             'print(sorted(globals()), vars(torch.nn.Linear(1, 1)))')
    assert scan([IMPORTS, reads, "def box_iou(a, b):\n    return a"], BOX_IOU) == []
    for write in ('globals()["box_iou"] = f', "globals().update(box_iou=f)", "g = globals()", "exec(s, globals())"):
        assert scan([IMPORTS, write], BOX_IOU), write
