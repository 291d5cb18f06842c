"""The grader's source check: does an answer call the library function it was meant to replace?

The grader reads a notebook's code cells as source (with `ast`), never running them.
`scan(sources, exercise)` finds the statements that define the answer (`def box_iou(...)`,
`box_iou = ...`, an import of the name, a `global box_iou` in a function) and, transitively, those
of the notebook's global names they read. In them, a reference to one of `exercise.library`
(dotted names, resolved through the notebook's imports and aliases, `getattr` with a literal and
`functools.partial`; the same object under another path counts) is `Finding("library", ...)`, and
dynamic code (`exec`, `eval`, `compile`, `getattr` with a computed name, `importlib`,
`__import__`, `types.FunctionType`, `inspect`, `globals()`, `__dict__`, `sys.modules`, the
exercises object `ex`, `.reference` / `.expected`) is `Finding("dynamic", "needs review: ...")`.
Anywhere in the notebook, code that can bind names unseen (`exec`, `globals()[...] = `,
`setattr`, `sys.modules[...]`, most IPython magics), and a cell too deep or large to read, is a
"dynamic" finding for every exercise. Cell N is the notebook's Nth code cell, from 1 (markdown
cells not counted); lines count from 1 within the cell.

`tripwire_source(exercises)` is Python source to run in the graded kernel after the notebook and
before the grader's questions: it swaps the listed functions for wrappers that note each call.
`accepted(finding, accept_list)`: has the instructor accepted a "needs review" finding? `scan`
never raises on any source: unreadable input becomes a finding. Each cell is parsed once per
`sources` list (cached), and each statement is analysed at most once: time is linear in the size.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field

from helpers.grading.notebook_file import safe_text
from helpers.grading.sourcenames import (BINDER_BUILTINS, binder, harmless_setattr, is_literal_getattr, is_shell_call,
                                         only_reads_namespace, resolve)

#: Most code read for one notebook (characters; the largest course notebook has 28,000): the rest of a
#: larger one is not read, and that is a "needs review" finding for every exercise.
MAX_SOURCE_CHARS = 400_000

#: Builtins that run or reach code by a name the source does not show.
_DYNAMIC_BUILTINS = {"exec", "eval", "compile", "__import__", "globals", "vars", "breakpoint", "get_ipython"}
#: Dotted prefixes whose use inside an answer needs review.
_DYNAMIC_MODULES = ("importlib", "inspect", "sys.modules", "sys._getframe", "builtins", "__builtins__",
                    "types.FunctionType", "types.CodeType", "types.LambdaType", "gc", "ctypes", "marshal",
                    "IPython", "helpers.exercises", "pickle", "dill", "cloudpickle", "runpy", "joblib", "shelve",
                    "copyreg", "torch.load", "torch.jit.load", "torch.package")
#: Attribute names that reach code, namespaces or the course's answers.
_DYNAMIC_ATTRIBUTES = {"__dict__", "__globals__", "__code__", "__closure__", "__builtins__", "__wrapped__",
                       "__subclasses__", "__getattribute__", "__import__", "f_globals", "f_locals", "f_back",
                       "reference", "expected", "solution_source", "_solution", "_record"}
#: A cell without any of these words (or of the notebook's aliases of sys, builtins, importlib) binds nothing unseen.
_BINDER_WORDS = (*BINDER_BUILTINS, "__dict__", "__builtins__", "__globals__", "modules", "builtins", "importlib",
                 "get_ipython", "__main__")
_BINDER_ALIASED = ("sys", "builtins", "importlib", "__main__")
_CELL_MAGICS_WITH_PYTHON = {"time", "timeit", "capture", "prun"}
#: Roots whose objects the grader may look up (already imported, never imported for a student's name).
_LOOKUP_ROOTS = {"torch", "torchvision", "helpers", "numpy"}
#: Statements whose bodies run at the top level too (conditionally).
_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try, ast.With, ast.AsyncWith, getattr(ast, "Match", ast.If))


@dataclass(frozen=True)
class Finding:
    """What the source check found in one answer: `kind` "library" or "dynamic", and one line saying where."""

    kind: str
    detail: str

    @property
    def key(self) -> str:
        """A short fingerprint an instructor can pass to accept this finding (see `accepted`)."""
        return hashlib.sha256(f"{self.kind}\n{self.detail}".encode()).hexdigest()[:10]


def accepted(finding: Finding, accept_list, who: str = "") -> bool:
    """True when the instructor accepted this "dynamic" finding: `accept_list` holds its `key`, or
    `"<who>:<key>"` for one submission only. "library" findings are verdicts and are never accepted."""
    if finding.kind != "dynamic":
        return False
    wanted = {finding.key, f"{who}:{finding.key}"} if who else {finding.key}
    return any(str(item).strip() in wanted for item in accept_list or ())


# --------------------------------------------------------------------------------------------
# Reading the notebook once
# --------------------------------------------------------------------------------------------


@dataclass
class _Statement:
    cell: int  # 1-based code-cell number
    node: ast.stmt
    lines: list[str]  # the cell's source lines (to quote)
    line_offset: int = 0  # lines before the parsed text (a cell magic's first line)
    order: int = 0  # place among all the notebook's top-level statements
    analysed: "_Analysis | None" = None


@dataclass
class _Binding:
    statement: _Statement
    conditional: bool
    imported: str | None = None  # the dotted name an import binds, e.g. "torchvision.ops.box_iou"


@dataclass
class _Analysis:
    global_reads: set[str] = field(default_factory=set)
    chains: list[tuple[str, int]] = field(default_factory=list)  # (dotted name, line)
    dynamic: list[tuple[str, int]] = field(default_factory=list)  # (reason, line)


@dataclass
class _Notebook:
    count: int = 0  # top-level statements read so far
    bindings: dict[str, list[_Binding]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    star_imports: list[tuple[str, _Statement]] = field(default_factory=list)
    everywhere: list[Finding] = field(default_factory=list)  # binders, unreadable cells: for every exercise
    binder_aliases: set[str] = field(default_factory=set)  # names standing for sys, builtins, importlib ...
    imported_roots: set[str] = field(default_factory=set)  # top-level modules the notebook imports


_CACHE: dict = {}


def _notebook(sources: list[str]) -> _Notebook:
    """The notebook read once: the last one read is kept, for the next exercise of the same notebook."""
    key = tuple(s if isinstance(s, str) else "" for s in sources)
    book = _CACHE.get(key)
    if book is None:  # (safe with threads: the worst case reads a notebook twice)
        book = _read_notebook(list(key))
        _CACHE.clear()
        _CACHE[key] = book
    return book


def _read_notebook(sources: list[str]) -> _Notebook:
    book, size = _Notebook(), 0
    for number, source in enumerate(sources, 1):
        size += len(source) if isinstance(source, str) else 0
        if size > MAX_SOURCE_CHARS:
            book.everywhere.append(Finding("dynamic", f"needs review: the notebook has more than {MAX_SOURCE_CHARS} "
                                                      f"characters of code; it was read up to cell {number - 1}"))
            break
        try:
            _read_cell(book, number, source)
        except (RecursionError, MemoryError) as error:
            book.everywhere.append(Finding("dynamic", f"needs review: cell {number} is too deeply nested or too large to read ({type(error).__name__})"))
    return book


def _parse(source: str) -> tuple[ast.Module | None, int, bool]:
    """(the cell as a Python module, how many lines precede the parsed text, whether it is plain
    Python); (None, 0, False) when it is not Python (it then raises in the kernel too, and defines nothing)."""
    try:
        return ast.parse(source), 0, True
    except SyntaxError:
        pass
    except ValueError:  # NUL bytes
        return None, 0, False
    first, _, rest = source.partition("\n")
    if first.startswith("%%") and first[2:].split(" ")[0].strip() in _CELL_MAGICS_WITH_PYTHON:
        tree, offset, _ = _parse(rest)
        return tree, offset + 1 if tree is not None else 0, False
    try:  # IPython syntax (%magic, !shell, ?help): parse what the kernel would run
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source)), 0, False
    except (SyntaxError, ValueError, ImportError, IndexError, TypeError):
        return None, 0, False


def _read_cell(book: _Notebook, number: int, source: str) -> None:
    tree, offset, plain = _parse(source)
    if tree is None:
        return
    lines, walrus = source.splitlines(), ":=" in source
    for node, conditional in _global_statements(tree):
        statement, book.count = _Statement(number, node, lines, offset, book.count), book.count + 1
        _record_bindings(book, statement, conditional, walrus)
    if plain and not any(word in source for word in (*_BINDER_WORDS, *book.binder_aliases)):
        return  # no word that could bind a name unseen: skip the walk
    receivers = set()  # the `get_ipython()` of `get_ipython().run_line_magic(...)`: judged with its method
    parents: dict[int, ast.AST] = {}
    for sub in ast.walk(tree):
        for child in ast.iter_child_nodes(sub):
            parents[id(child)] = sub
        if isinstance(sub, ast.Call) and is_shell_call(sub.func):
            receivers.add(id(sub.func.value))
        if isinstance(sub, ast.Name) and (sub.id in ("globals", "vars") and only_reads_namespace(sub, parents)
                                          or sub.id in ("setattr", "delattr") and harmless_setattr(sub, parents, book.aliases)):
            continue
        reason = binder(sub, book.aliases, receivers)
        if reason:
            book.everywhere.append(Finding("dynamic", _review(reason, number, getattr(sub, "lineno", 1) + offset, lines)))


def _global_statements(tree: ast.Module):
    """Every statement that runs at the top level of the cell, with whether it runs only conditionally."""
    todo = [(node, False) for node in reversed(tree.body)]
    while todo:
        node, conditional = todo.pop()
        yield node, conditional
        if isinstance(node, _COMPOUND):
            bodies = [getattr(node, name, []) for name in ("body", "orelse", "finalbody")]
            bodies += [h.body for h in getattr(node, "handlers", [])] + [c.body for c in getattr(node, "cases", [])]
            for body in reversed(bodies):
                todo.extend((child, True) for child in reversed(body))


def _record_bindings(book: _Notebook, statement: _Statement, conditional: bool, walrus: bool) -> None:
    node = statement.node
    add = lambda name, imported=None: book.bindings.setdefault(name, []).append(_Binding(statement, conditional, imported))
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        add(node.name)
        for sub in ast.walk(node):  # `global NAME` inside: the function binds a global
            if isinstance(sub, ast.Global):
                for name in sub.names:
                    add(name)
        return
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                _alias(book, alias.asname, alias.name, imported=True)
                add(alias.asname, alias.name)
            else:
                root = alias.name.split(".")[0]
                _alias(book, root, root, imported=True)
                add(root, root)
        return
    if isinstance(node, ast.ImportFrom):
        module = "." * node.level + (node.module or "")
        for alias in node.names:
            if alias.name == "*":
                book.star_imports.append((module, statement))
                continue
            dotted = f"{module}.{alias.name}"
            _alias(book, alias.asname or alias.name, dotted, imported=True)
            add(alias.asname or alias.name, dotted)
        return
    if walrus:
        for sub in _walk_same_scope(node):  # (name := ...) at the top level binds a global
            if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                add(sub.target.id)
    if isinstance(node, _COMPOUND):  # the bodies are statements of their own
        targets = [getattr(node, "target", None)] + [item.optional_vars for item in getattr(node, "items", [])]
        for name in _stored_names(targets):
            add(name)
        return
    for name in _stored_names(_targets(node)):
        add(name)
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        dotted = resolve(node.value, book.aliases, set(), {})
        if dotted:
            _alias(book, node.targets[0].id, dotted)
        else:
            book.aliases.pop(node.targets[0].id, None)


def _alias(book: _Notebook, name: str, dotted: str, imported: bool = False) -> None:
    book.aliases[name] = dotted
    if imported:
        book.imported_roots.add(dotted.split(".")[0])
    if dotted.split(".")[0] in _BINDER_ALIASED and name not in _BINDER_ALIASED:
        book.binder_aliases.add(name)


def _targets(node: ast.stmt) -> list:
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return [node.target]
    return []


def _stored_names(targets) -> list[str]:
    names, todo = [], [t for t in targets if t is not None]
    while todo:
        target = todo.pop()
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            todo.extend(target.elts)
        elif isinstance(target, ast.Starred):
            todo.append(target.value)
    return names


def _walk_same_scope(node):
    """`ast.walk` without entering functions, lambdas and classes."""
    todo = [node]
    while todo:
        current = todo.pop()
        yield current
        for child in ast.iter_child_nodes(current):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                todo.append(child)


# --------------------------------------------------------------------------------------------
# Names, chains and what is dynamic
# --------------------------------------------------------------------------------------------


def _analyse(statement: _Statement, aliases: dict) -> _Analysis:
    """Global names read, dotted chains used and dynamic code, in one top-level statement."""
    if statement.analysed is not None:
        return statement.analysed
    node, result = statement.node, _Analysis()
    local = _local_names(node)
    local_aliases: dict[str, str] = {}  # `o = torchvision.ops` inside a function
    inner = set()  # chain nodes inside a longer chain: their prefixes are checked with it
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) or is_literal_getattr(sub):
            inner.add(id(sub.value if isinstance(sub, ast.Attribute) else sub.args[0]))
        elif isinstance(sub, ast.Assign) and len(sub.targets) == 1 and getattr(sub.targets[0], "id", None) in local:
            dotted = resolve(sub.value, aliases, local, local_aliases)
            if dotted:
                local_aliases[sub.targets[0].id] = dotted
    for sub in ast.walk(node):
        line = getattr(sub, "lineno", node.lineno)
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id not in local:
            result.global_reads.add(sub.id)
            if sub.id in _DYNAMIC_BUILTINS:
                result.dynamic.append((f"`{sub.id}`", line))
        if isinstance(sub, ast.Attribute) and sub.attr in _DYNAMIC_ATTRIBUTES:
            result.dynamic.append((f"`.{sub.attr}`", line))
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in ("getattr", "setattr", "delattr") \
                and sub.func.id not in local and not is_literal_getattr(sub):
            result.dynamic.append((f"`{sub.func.id}` with a computed name", line))
        if (isinstance(sub, (ast.Name, ast.Attribute)) or is_literal_getattr(sub)) and id(sub) not in inner:
            dotted = resolve(sub, aliases, local, local_aliases)
            if dotted:
                result.chains.append((dotted, line))
                reason = _dynamic_chain(dotted)
                if reason:
                    result.dynamic.append((reason, line))
    statement.analysed = result
    return result


def _dynamic_chain(dotted: str) -> str | None:
    if dotted == "ex" or dotted.startswith("ex."):
        return "the exercises object `ex`"
    for prefix in _DYNAMIC_MODULES:
        if dotted == prefix or dotted.startswith(prefix + "."):
            return "the exercises object `ex`" if prefix == "helpers.exercises" else f"`{prefix}`"
    return None


def _local_names(node) -> set[str]:
    """Names bound inside a function, class or lambda of `node` (its parameters, its variables, its
    comprehension targets), less those declared `global`. Over-approximates: nested scopes count."""
    local, declared_global = set(), set()
    scoped = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    for sub in ast.walk(node):
        if isinstance(sub, ast.arg):
            local.add(sub.arg)
        elif isinstance(sub, ast.Global):
            declared_global.update(sub.names)
        elif isinstance(sub, ast.comprehension):
            local.update(_stored_names([sub.target]))
        elif scoped and isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            local.add(sub.id)
        elif scoped and sub is not node and isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            local.add(sub.name)
        elif scoped and isinstance(sub, (ast.Import, ast.ImportFrom)):
            local.update((a.asname or a.name).split(".")[0] for a in sub.names)
    return local - declared_global


def _review(reason: str, cell: int, line: int, lines: list[str]) -> str:
    text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return f"needs review: \"{safe_text(text, 120)}\" (cell {cell} line {line}: {reason})"


# --------------------------------------------------------------------------------------------
# Scanning one exercise
# --------------------------------------------------------------------------------------------


def _live_bindings(bindings: list[_Binding]) -> list[_Binding]:
    """The bindings that may hold at the end: from the last unconditional one on."""
    last = max((i for i, b in enumerate(bindings) if not b.conditional), default=0)
    return bindings[last:]


def scan(sources: list[str], exercise) -> list[Finding]:
    """Findings on `exercise`'s answer in a notebook whose code cells are `sources` (in order).

    An empty list means nothing to report. Never raises: a notebook it cannot read gives a
    "dynamic" finding.
    """
    try:
        return _scan(_notebook(sources), exercise.name, tuple(getattr(exercise, "library", ()) or ()))
    except Exception as error:  # noqa: BLE001 - RecursionError, MemoryError, or a bug here: never the grader's crash
        return [Finding("dynamic", f"needs review: the source check could not read the notebook ({type(error).__name__})")]


def scan_all(sources: list[str], exercises) -> dict[str, list[Finding]]:
    """`scan` for several exercises of one notebook, by exercise name (the notebook is read once)."""
    return {exercise.name: scan(sources, exercise) for exercise in exercises}


def _scan(book: _Notebook, name: str, library: tuple[str, ...]) -> list[Finding]:
    findings = list(book.everywhere)
    matcher = _Matcher(library)
    live = _live_bindings(book.bindings.get(name, []))
    first_live = live[0].statement.order if live else -1
    for module, statement in book.star_imports:
        if statement.order > first_live and matcher.match(f"{module}.{name}"):
            findings.append(Finding("library", _library(f"{module}.{name}", statement.cell, statement.node.lineno + statement.line_offset)))
    todo = [(b, True) for b in live]
    seen = set()
    while todo:
        binding, is_answer = todo.pop()
        statement = binding.statement
        if id(statement) in seen:
            continue
        seen.add(id(statement))
        offset = statement.line_offset
        if binding.imported is not None and is_answer:
            findings.append(_imported(binding.imported, statement, offset, matcher))
        analysis = _analyse(statement, book.aliases)
        for dotted, line in analysis.chains:
            if matcher.match(dotted):
                findings.append(Finding("library", _library(dotted, statement.cell, line + offset)))
            elif dotted.split(".")[0] in book.imported_roots and not _installed(dotted.split(".")[0]):
                why = f"`{safe_text(dotted.split('.')[0], 40)}`, a module the course's environment does not have"
                findings.append(Finding("dynamic", _review(why, statement.cell, line + offset, statement.lines)))
        reasons: dict[int, list[str]] = {}
        for reason, line in analysis.dynamic:
            reasons.setdefault(line, []).append(reason)
        for line, why in reasons.items():
            findings.append(Finding("dynamic", _review(", ".join(dict.fromkeys(why)), statement.cell, line + offset, statement.lines)))
        for read in analysis.global_reads:
            todo.extend((b, False) for b in _live_bindings(book.bindings.get(read, [])) if b.imported is None)
    return list(dict.fromkeys(findings))


_INSTALLED: dict[str, bool] = {}


def _installed(module: str) -> bool:
    """Can this process find the top-level module (without importing it)? A module the notebook wrote
    itself (`%%writefile cheat.py`, `open("cheat.py", "w")`) cannot be read here."""
    if module not in _INSTALLED:
        try:
            _INSTALLED[module] = module in sys.modules or importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            _INSTALLED[module] = False
    return _INSTALLED[module]


def _library(dotted: str, cell: int, line: int) -> str:
    return f"uses a library implementation (`{safe_text(dotted, 120)}`, cell {cell} line {line})"


def _imported(dotted: str, statement: _Statement, offset: int, matcher: "_Matcher") -> Finding:
    line = statement.node.lineno + offset
    if matcher.match(dotted):
        return Finding("library", _library(dotted, statement.cell, line))
    return Finding("dynamic", _review(f"the answer is imported (`{safe_text(dotted, 80)}`), not written here",
                                      statement.cell, line, statement.lines))


class _Matcher:
    """Does a dotted name stand for one of an exercise's listed functions (by name, `prefix.*`, or object)?"""

    def __init__(self, library: tuple[str, ...]):
        self.names = {n for n in library if not n.endswith(".*")}
        self.prefixes = tuple(n[:-1] for n in library if n.endswith(".*"))
        listed = (_lookup(n, allow_import=True) for n in self.names if n.split(".")[0] in _LOOKUP_ROOTS)
        self.objects = {id(obj): obj for obj in listed if obj is not None}
        self.lookups = 0

    def match(self, dotted: str) -> bool:
        if dotted in self.names or (self.prefixes and dotted.startswith(self.prefixes)):
            return True
        if not self.objects or dotted.split(".")[0] not in _LOOKUP_ROOTS or self.lookups > 10_000:
            return False
        self.lookups += 1
        obj = _lookup(dotted, allow_import=False)
        return obj is not None and id(obj) in self.objects and self.objects[id(obj)] is obj


def _lookup(dotted: str, allow_import: bool):
    """The object a dotted name stands for in this process, or None. Without `allow_import`, only
    modules already imported are read (a student's name never makes the grader import anything)."""
    parts = dotted.split(".")
    try:
        for cut in range(len(parts), 0, -1):
            module_name = ".".join(parts[:cut])
            module = sys.modules.get(module_name)
            if module is None and allow_import:
                try:
                    module = importlib.import_module(module_name)
                except ImportError:
                    continue
            if module is None:
                continue
            obj = module
            for part in parts[cut:]:
                obj = getattr(obj, part)
            return obj if callable(obj) else None
    except Exception:  # noqa: BLE001 - any trouble: not found
        return None
    return None


# --------------------------------------------------------------------------------------------
# Tripwires: the second line, in the graded kernel
# --------------------------------------------------------------------------------------------

def tripwire_source(exercises) -> str:
    """Python source that, run in the graded kernel's namespace, installs call-noting wrappers over
    every function listed by `exercises` and defines `_sn_tripped()` (the dotted names called since
    the last reset, sorted) and `_sn_tripwire_reset()`. Run it after the notebook's last cell; reset
    before each question, and read `_sn_tripped()` after it: a name in that exercise's `library` was
    called while answering. Names that cannot be found are skipped; wildcards (`x.*`) are not wired.
    The kernel-side code is `helpers/grading/tripwire_kernel.py`.
    """
    from pathlib import Path

    names = sorted({n for ex in exercises for n in (getattr(ex, "library", ()) or ()) if not n.endswith(".*")})
    kernel_code = (Path(__file__).parent / "tripwire_kernel.py").read_text(encoding="utf-8")
    return (kernel_code + f"\n_sn_tripped, _sn_tripwire_reset = _sn_install_tripwires({names!r})\n"
            "del _sn_install_tripwires\n")
