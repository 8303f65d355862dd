"""Flag the common cheats in a submission's own code, for the grading report.

Grading runs student code in the same Python process as the tests, so no in-process
defence is complete; the tests resist the simple cheats (type checks before comparing,
helpers that captured NumPy's functions at import), and this static audit names the
rest so an instructor can look: monkeypatching test helpers, NumPy/torch testing or
builtins, rebinding the names the locked cells define, reaching for the gradebook or
notebooks, killing the kernel, and printing fake "passed" messages.
"""

from __future__ import annotations

import ast
import re

from graders import cells

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
    "setattr": "calls setattr",
    "delattr": "calls delattr",
    "os._exit": "exits the kernel",
    "os.kill": "sends a signal",
    "sys.settrace": "installs a trace function",
    "sys.setprofile": "installs a profile function",
    "gc.get_referrers": "searches the interpreter's objects",
    "gc.get_objects": "searches the interpreter's objects",
    "get_ipython": "reaches into the kernel",
    "vars": "reads a namespace's dictionary",
}
SUSPICIOUS_IMPORTS = {"ctypes", "gc", "builtins", "inspect", "nbgrader", "sqlite3"}
SECRET_WORDS = re.compile(
    r"gradebook|\.ipynb|nbgrader|BEGIN HIDDEN|autograded|kernel_guard|get_ipython|__dict__", re.I
)
FAKE_PASS = re.compile(r"\b(all )?tests? passed\b|\bpassed\b.*✓|full marks", re.I)


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Subscript):
        parts.append(_dotted(node.value) + "[]")
    return ".".join(reversed(parts))


def audit_source(source: str, protected_names: set[str]) -> list[str]:
    """Findings (one line each) for one cell's code."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for t in targets:
            name = _dotted(t)
            root = name.split(".")[0].split("[")[0]
            if isinstance(t, (ast.Attribute, ast.Subscript)) and root in GUARDED_ROOTS:
                found.append(f"assigns to {name}")
            elif isinstance(t, ast.Name) and t.id in protected_names:
                found.append(f"rebinds {t.id}, which a locked cell defines")
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in protected_names:
            found.append(f"redefines {node.name}, which a locked cell defines")
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in SUSPICIOUS_CALLS:
                found.append(f"{SUSPICIOUS_CALLS[name]} ({name})")
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
            for mod in mods:
                if mod.split(".")[0] in SUSPICIOUS_IMPORTS:
                    found.append(f"imports {mod}")
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


def locked_names(source_notebook: dict) -> set[str]:
    """Names bound by the locked (setup and test) cells of the source notebook."""
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
            elif isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def audit_notebook(submission: dict, source_notebook: dict) -> list[str]:
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
