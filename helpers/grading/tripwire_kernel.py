"""Tripwires, the source check's second line: this file's text runs in the graded kernel.

`helpers.grading.sourcecheck.tripwire_source` sends this module's source, followed by one call of
`_sn_install_tripwires(names)`, to the kernel after the notebook's last cell and before the grader's
questions. It imports nothing from the course, so that it also works where the kernel's copy of the
course differs, and it keeps its record in a closure, not in a file or module the student can reach
by name. Student code that runs after it (a background thread) could still undo it: the source check
is the first line, this is the second.
"""


def _sn_install_tripwires(names):
    """Swap each listed function (given by dotted names) for a wrapper that notes its calls, wherever it
    is held: module attributes under the names' top-level packages, the user's globals, and the
    defaults and closures of the user's functions; `functools.partial` objects of it are rebuilt. A
    listed class gets its `forward` wrapped. A call counts when it comes from outside the libraries
    (the student's code, the exercises' own module), not when one library function calls another
    (the course's data set building its class maps while the grader makes a case is not the student's
    doing). Returns (tripped, reset): tripped() gives the dotted names called since the last reset(),
    each once, sorted."""
    import functools, importlib, sys, types
    calls, found = [], {}
    roots = {n.split(".")[0] for n in names} | {"helpers", "torch", "torchvision"}

    def from_outside(depth):
        frame = sys._getframe(depth + 1)
        while frame is not None and frame.f_globals.get("__name__", "").startswith("torch.nn.modules.module"):
            frame = frame.f_back  # Module.__call__ on the way to forward
        caller = frame.f_globals.get("__name__", "") if frame is not None else ""
        return caller.split(".")[0] not in roots or caller.startswith("helpers.exercises")

    for dotted in names:
        parts = dotted.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
                for part in parts[cut:]:
                    obj = getattr(obj, part)
            except Exception:
                continue
            found.setdefault(id(obj), (obj, []))[1].append(dotted)
            break
    wrappers = {}
    for key, (obj, dotted_names) in found.items():
        if isinstance(obj, type):  # a module class: note calls of its forward
            forward = obj.__dict__.get("forward")
            if forward is not None:
                def note_forward(self, *args, __f=forward, __n=tuple(dotted_names), **kwargs):
                    if from_outside(1):
                        calls.extend(__n)
                    return __f(self, *args, **kwargs)
                obj.forward = note_forward
            continue
        def note(*args, __f=obj, __n=tuple(dotted_names), **kwargs):
            if from_outside(1):
                calls.extend(__n)
            return __f(*args, **kwargs)
        try:
            wrappers[key] = functools.wraps(obj)(note)
        except Exception:
            wrappers[key] = note
    def swap(value):
        wrapper = wrappers.get(id(value))
        return wrapper if wrapper is not None and found[id(value)][0] is value else None
    module_spaces = [vars(m) for name, m in list(sys.modules.items()) if name.split(".")[0] in roots]
    user_spaces = [globals(), vars(sys.modules["__main__"])]  # globals(): where this source was run
    try:
        user_spaces.append(get_ipython().user_ns)
    except Exception:
        pass
    for space in module_spaces:
        for attr, value in list(space.items()):
            if swap(value) is not None:
                space[attr] = swap(value)
    for space in {id(s): s for s in user_spaces}.values():
        for attr, value in list(space.items()):
            try:
                if swap(value) is not None:
                    space[attr] = swap(value)
                elif type(value) is functools.partial and swap(value.func) is not None:
                    space[attr] = functools.partial(swap(value.func), *value.args, **value.keywords)
                elif type(value) is types.FunctionType:
                    if value.__defaults__:
                        value.__defaults__ = tuple(swap(d) or d for d in value.__defaults__)
                    if value.__kwdefaults__:
                        value.__kwdefaults__ = {k: swap(d) or d for k, d in value.__kwdefaults__.items()}
                    for cell in value.__closure__ or ():
                        if swap(cell.cell_contents) is not None:
                            cell.cell_contents = swap(cell.cell_contents)
            except Exception:
                pass
    def tripped():
        """The dotted names of the listed functions called since the last reset, each once, sorted."""
        return sorted(set(calls))
    def reset():
        calls.clear()
    return tripped, reset
