"""Reading Python source with `ast`: the helpers the audit, the lint and the mutation
tools share."""

from __future__ import annotations

import ast


def dotted(node: ast.AST) -> str:
    """`a.b.c` for an attribute chain, `a[].b` through a subscript, "" for anything else
    at its root (a call, a literal)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Subscript):
        parts.append(dotted(node.value) + "[]")
    return ".".join(reversed(parts))


def defined_names(source: str) -> set[str]:
    """Names a cell's top-level statements define: functions, classes, assigned names.
    Empty for source that does not parse."""
    names: set[str] = set()
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return names
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names
