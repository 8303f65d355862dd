"""Flag the common cheats in a submission's own code, for the grading report.

Grading runs student code in the same Python process as the tests, so no in-process
defence is complete; the tests resist the simple cheats (type checks before comparing,
helpers that captured NumPy's functions at import), and this static audit names the
rest so an instructor can look: monkeypatching test helpers, NumPy/torch testing or
builtins, rebinding the names the locked cells define, reaching for the gradebook or
notebooks, killing the kernel, and printing fake "passed" messages.

It also flags reaching for the answer key: importing llmlabs' grading internals (anything
of `graders` but `graders.notebook`), locating installed files (`__file__`,
`importlib.resources`, ...), running code built at run time (`exec`, `eval`, `compile`,
`__import__`, `importlib.import_module`) and naming the key's folders. Under bubblewrap
the key is not there to read (`graders.sandbox.visibility`); without it these flags are
the only defence, so they are tuned to never fire on honest work:
`tests/test_audit_corpus.py` audits every reference, hand mutant and alternative answer.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from graders import cells
from graders.pysource import dotted

GUARDED_ROOTS = {
    "graders",
    "np",
    "numpy",
    "torch",
    "builtins",
    "__builtins__",
    "sys",
    "unittest",
    "math",
    "pytest",
}
SUSPICIOUS_CALLS = {
    "os._exit": "exits the kernel",
    "os.kill": "sends a signal",
    "sys.settrace": "installs a trace function",
    "sys.setprofile": "installs a profile function",
    "gc.get_referrers": "searches the interpreter's objects",
    "gc.get_objects": "searches the interpreter's objects",
    "get_ipython": "reaches into the kernel",
    "vars": "reads a namespace's dictionary",
}
SUSPICIOUS_IMPORTS = {
    "ctypes",
    "gc",
    "builtins",
    "inspect",
    "nbgrader",
    "sqlite3",
    "importlib",
    "pkgutil",
    "runpy",
    "zipimport",
}
# Running code that was not written in the cell: the way to execute an answer read from disk.
DYNAMIC_CODE = {
    "exec": "runs code built at run time (exec)",
    "eval": "runs code built at run time (eval)",
    "compile": "compiles code built at run time (compile)",
    "__import__": "imports a module by a computed name (__import__)",
    "importlib.import_module": "imports a module by a computed name (importlib.import_module)",
    "importlib.__import__": "imports a module by a computed name (importlib.__import__)",
    "runpy.run_path": "runs a file (runpy)",
    "runpy.run_module": "runs a module (runpy)",
}
# Where installed code and data live: the first step to reading the package's own files.
LOCATING = {"__file__", "__path__", "__spec__", "__loader__", "__cached__"}
LOCATING_CALLS = ("importlib.resources.", "importlib.util.", "importlib.metadata.", "pkgutil.")
PUBLIC_API = "graders.notebook"
SECRET_WORDS = re.compile(
    r"gradebook|\.ipynb|nbgrader|BEGIN HIDDEN|BEGIN SOLUTION|autograded|sandbox\.guard|get_ipython|__dict__"
    r"|curriculum|_bundled|site-packages|mutants\.py|llmlabs",
    re.I,
)
FAKE_PASS = re.compile(r"\b(all )?tests? passed\b|\bpassed\b.*✓|full marks", re.I)


def _internal(module: str) -> bool:
    """Whether `module` is part of llmlabs other than the notebook API."""
    return (module == "graders" or module.startswith("graders.")) and not (
        module == PUBLIC_API or module.startswith(PUBLIC_API + ".")
    )


def _module_level_targets(tree: ast.Module) -> set[int]:
    """ids of the nodes that bind a module-level name: names bound outside functions and
    classes, and names a function declares `global`. A local variable that happens to share
    a locked cell's name rebinds nothing."""
    out: set[int] = set()

    def visit(node: ast.AST, at_module: bool, declared: set[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if at_module or child.name in declared:
                    out.add(id(child))
                inner: set[str] = set()
                if not isinstance(child, ast.ClassDef):
                    inner = {n for g in ast.walk(child) if isinstance(g, ast.Global) for n in g.names}
                visit(child, False, inner)
            elif isinstance(child, ast.Lambda):
                visit(child, False, set())
            else:
                if isinstance(child, ast.Name) and (at_module or child.id in declared):
                    out.add(id(child))
                visit(child, at_module, declared)

    visit(tree, True, set())
    return out


def audit_source(source: str, protected_names: set[str]) -> list[str]:
    """Findings (one line each) for one cell's code."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    module_level = _module_level_targets(tree)
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for t in targets:
            name = dotted(t)
            root = name.split(".")[0].split("[")[0]
            if isinstance(t, (ast.Attribute, ast.Subscript)) and root in GUARDED_ROOTS:
                found.append(f"assigns to {name}")
            elif isinstance(t, ast.Name) and t.id in protected_names and id(t) in module_level:
                found.append(f"rebinds {t.id}, which a locked cell defines")
        if (
            isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and node.name in protected_names
            and id(node) in module_level
        ):
            found.append(f"redefines {node.name}, which a locked cell defines")
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            if name in SUSPICIOUS_CALLS:
                found.append(f"{SUSPICIOUS_CALLS[name]} ({name})")
            if name in ("setattr", "delattr") and node.args:
                # Replacing a submodule of one's own model is honest; patching NumPy, torch,
                # builtins or the test helpers is not.
                target = dotted(node.args[0])
                if target.split(".")[0].split("[")[0] in GUARDED_ROOTS:
                    found.append(f"calls {name} on {target}")
            if name in DYNAMIC_CODE:
                found.append(DYNAMIC_CODE[name])
            if name.startswith(LOCATING_CALLS):
                found.append(f"locates installed files ({name})")
            if name == "print":
                for arg in node.args:
                    if (
                        isinstance(arg, ast.Constant)
                        and isinstance(arg.value, str)
                        and FAKE_PASS.search(arg.value)
                    ):
                        found.append(f"prints a fake success message: {arg.value[:40]!r}")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.module == "graders":
                mods = [f"graders.{a.name}" for a in node.names]
            for mod in mods:
                if mod.split(".")[0] in SUSPICIOUS_IMPORTS:
                    found.append(f"imports {mod}")
                elif _internal(mod):
                    found.append(f"imports {mod}: llmlabs' grading internals, not {PUBLIC_API}")
        if isinstance(node, ast.Attribute):
            name = dotted(node)
            if isinstance(node.value, ast.Name) and node.value.id == "graders" and _internal(name):
                found.append(f"reaches into {name}: llmlabs' grading internals, not {PUBLIC_API}")
            if node.attr in LOCATING:
                found.append(f"locates installed files ({name or node.attr})")
        if isinstance(node, ast.Name) and node.id in LOCATING:
            found.append(f"locates installed files ({node.id})")
        if isinstance(node, ast.Subscript) and dotted(node.value) == "sys.modules":
            found.append("reaches into sys.modules")
        if isinstance(node, ast.Attribute) and node.attr in (
            "__dict__",
            "__class__",
            "__globals__",
            "__builtins__",
        ):
            found.append(f"reaches into {node.attr}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            secret = SECRET_WORDS.search(node.value)
            if secret:
                found.append(f"mentions {secret.group(0)!r}")
    return sorted(set(found))


def locked_names(source_notebook: dict[str, Any]) -> set[str]:
    """The helpers the locked (setup and test) cells define: imported names, functions,
    classes and lambdas. Data they assign (`z = ...`, `model = ...`) is left out: the
    unit's own demo cells, and learners trying things, reuse such names all the time."""
    names: set[str] = set()
    for cell in source_notebook["cells"]:
        if cell.get("cell_type") != "code" or not cells.is_locked(cell):
            continue
        try:
            tree = ast.parse(cells.source(cell))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def audit_notebook(submission: dict[str, Any], source_notebook: dict[str, Any]) -> list[str]:
    """Findings for every cell the learner could edit, prefixed by the cell's id."""
    protected = locked_names(source_notebook)
    # Locked in the *source*: a submission could mark its own cells locked to hide them.
    restored = {cells.grade_id(c) for c in source_notebook["cells"] if cells.is_locked(c)} - {None}
    findings = []
    for i, cell in enumerate(submission.get("cells", [])):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        if cells.grade_id(cell) in restored:
            continue  # nbgrader restores locked cells from the source before running
        where = cells.grade_id(cell) or f"cell {i}"
        findings += [f"{where}: {f}" for f in audit_source(cells.source(cell), protected)]
    return findings
