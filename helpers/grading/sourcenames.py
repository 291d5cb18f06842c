"""How the source check reads names in a notebook's syntax tree, and what may bind a name unseen.

- `resolve(node, aliases, local, local_aliases)`: the dotted name a chain (`a.b.c`, `getattr(a, "b")`)
  stands for, through the notebook's imports and aliases.
- `binder(node, aliases, receivers)`: why a node anywhere in a notebook may bind a global name the
  source does not show (`exec`, `globals()[...] = `, `setattr`, `sys.modules`, `__main__.x = `,
  IPython magics such as `%run`), or None.
"""

from __future__ import annotations

import ast

from helpers.grading.notebook_file import safe_text

#: Outside the answers: code that can bind a name the source does not show.
BINDER_BUILTINS = {"exec", "eval", "compile", "__import__", "globals", "vars", "setattr", "delattr"}
BINDER_MODULES = ("sys.modules", "builtins", "__builtins__", "importlib.import_module", "importlib.reload")
#: IPython magics that cannot define Python names (what `get_ipython().run_line_magic(...)` may call).
HARMLESS_MAGICS = {"matplotlib", "time", "timeit", "pip", "who", "whos", "pwd", "ls", "precision", "prun",
                    "capture", "system", "getoutput", "config", "autoreload", "env", "history", "lsmagic", "xmode"}


def chain_parts(node) -> tuple[ast.AST, list[str]] | None:
    """(root node, attribute names) of `a.b.c` or `getattr(a.b, "c")`; None for anything else."""
    parts = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif is_literal_getattr(node):
            parts.append(node.args[1].value)
            node = node.args[0]
        else:
            break
        if len(parts) > 64:
            return None
    return node, parts[::-1]


def is_literal_getattr(node) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
            and len(node.args) in (2, 3) and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str))


def resolve(node, aliases: dict, local: set, local_aliases: dict) -> str | None:
    """The dotted name a chain stands for, through the notebook's imports and aliases; None if it is
    not a chain of names (or starts from a local variable that is not an alias)."""
    found = chain_parts(node)
    if found is None or not isinstance(found[0], ast.Name):
        return None
    root, parts = found
    if root.id in local_aliases:
        base = local_aliases[root.id]
    elif root.id in local:
        return None
    else:
        base = aliases.get(root.id, root.id)
    return ".".join([base, *parts])


READ_METHODS = {"get", "items", "keys", "values", "copy", "__contains__", "__getitem__"}
#: Builtins that only read a namespace handed to them (`print(vars(model))`, `sorted(globals())`).
READING_CALLS = {"print", "len", "sorted", "list", "dict", "set", "tuple", "repr", "str", "any", "all", "pprint", "display"}


def only_reads_namespace(name: ast.Name, parents: dict) -> bool:
    """Is this `globals()` / `vars(x)` only read: `k in globals()`, `globals()[k]`, `globals().get(k)`,
    `print(vars(x))`? (Written, kept in a name, or handed to anything else, it may bind names.)"""
    call = parents.get(id(name))
    if not (isinstance(call, ast.Call) and call.func is name):
        return False
    use = parents.get(id(call))
    if isinstance(use, ast.Compare):
        return call in use.comparators and all(isinstance(op, (ast.In, ast.NotIn)) for op in use.ops)
    if isinstance(use, ast.Subscript):
        return use.value is call and isinstance(use.ctx, ast.Load)
    if isinstance(use, ast.Call) and call in use.args:
        return isinstance(use.func, ast.Name) and use.func.id in READING_CALLS
    return isinstance(use, ast.Attribute) and use.value is call and use.attr in READ_METHODS


def binder(node, aliases: dict, receivers: set) -> str | None:
    """Why `node` (anywhere in the notebook) may bind a name unseen, or None."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in BINDER_BUILTINS:
        return f"`{node.id}`"
    if isinstance(node, ast.Attribute) and node.attr in ("__dict__", "__builtins__", "__globals__"):
        return f"`{node.attr}`"
    if isinstance(node, ast.Compare) and all(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
        return None  # `"google.colab" in sys.modules` only reads
    if isinstance(node, ast.Call):
        if is_shell_call(node.func):  # get_ipython().METHOD(...): what IPython syntax turns into
            method = node.func.attr
            if method in ("run_line_magic", "run_cell_magic"):
                magic = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
                argument = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else None
                if magic in HARMLESS_MAGICS or (magic in ("load_ext", "reload_ext") and argument == "autoreload"):
                    return None
                return f"the IPython magic `{safe_text(magic, 40)}`"
            return None if method in ("system", "getoutput") else f"`get_ipython().{method}`"
        if isinstance(node.func, ast.Name) and node.func.id == "get_ipython" and id(node) not in receivers:
            return "`get_ipython()`"
        dotted = resolve(node.func, aliases, set(), {}) or ""
        for prefix in BINDER_MODULES:
            if dotted == prefix or dotted.startswith(prefix + "."):
                return f"`{prefix}`"
    if isinstance(node, (ast.Subscript, ast.Attribute)):
        dotted = resolve(node.value, aliases, set(), {}) or ""
        if dotted in ("sys.modules", "builtins", "__builtins__"):
            return f"`{dotted}`"
        if dotted == "__main__" and isinstance(node.ctx, (ast.Store, ast.Del)):
            return "an assignment to `__main__`"
    return None


def harmless_setattr(name: ast.Name, parents: dict, aliases: dict) -> bool:
    """Is this `setattr(obj, "literal", value)` (or delattr) on an object that is not `__main__` or `builtins`?"""
    call = parents.get(id(name))
    if not (isinstance(call, ast.Call) and call.func is name and len(call.args) >= 2):
        return False
    literal = isinstance(call.args[1], ast.Constant) and isinstance(call.args[1].value, str)
    target = resolve(call.args[0], aliases, set(), {}) or ""
    return literal and target.split(".")[0] not in ("__main__", "builtins", "__builtins__", "sys")


def is_shell_call(node) -> bool:
    """Is `node` an attribute of `get_ipython()` (`get_ipython().run_line_magic` ...)?"""
    if isinstance(node, ast.Attribute):
        node = node.value
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "get_ipython"
    return False
