"""An automatic disguiser: what a student who copied an answer cell might do to hide it.

`disguise(source, seed)` renames the local names (AST-based: variables, loop and
comprehension targets, nested helpers; the graded function and class names, their
parameters and attributes stay, or the tests could not call them), swaps adjacent
independent statements, reformats (ast.unparse: new quotes, spacing and parentheses,
original comments gone; then 2- or 4-space indentation) and adds comments and blank lines.
The result still parses and computes the same thing (for the statements it swaps, only
assignments that neither read nor write what the other writes, nothing with a call whose
side effects it cannot see).
"""

from __future__ import annotations

import ast
import random

_WORDS = (
    "tmp", "val", "res", "acc", "buf", "item", "part", "data", "arr", "mat", "vec", "cur",
    "total", "piece", "thing", "stuff", "out2", "step", "node", "elem", "chunk", "block",
)  # fmt: skip
_COMMENTS = (
    "# compute the intermediate values",
    "# TODO: check shapes",
    "# this part follows the formula from the lecture",
    "# helper variable",
    "# make sure it is numerically stable",
    "# as explained above",
    "# step by step",
)


def _api_names(tree: ast.Module) -> set[str]:
    """Names the tests rely on: top-level functions and classes, their parameters
    (positional or keyword) and methods, `self`/`cls`, and what the cell imports."""
    keep = {"self", "cls", "ctx"}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            keep.add(node.name)
            defs = [node] if not isinstance(node, ast.ClassDef) else list(node.body)
            for d in defs:
                if isinstance(d, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    keep.add(d.name)
                    keep.update(a.arg for a in [*d.args.posonlyargs, *d.args.args, *d.args.kwonlyargs])
                    keep.update(a.arg for a in (d.args.vararg, d.args.kwarg) if a)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            keep.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign):  # module-level names other cells may read
            keep.update(t.id for t in node.targets if isinstance(t, ast.Name))
    for sub in ast.walk(tree):
        if isinstance(sub, (ast.Global, ast.Nonlocal)):
            keep.update(sub.names)
    return keep


def _local_names(tree: ast.Module) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.add(node.name)
    return out


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def visit_Name(self, node: ast.Name) -> ast.Name:
        node.id = self.mapping.get(node.id, node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.arg = self.mapping.get(node.arg, node.arg)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.name = self.mapping.get(node.name, node.name)
        self.generic_visit(node)
        return node


def rename(tree: ast.Module, rng: random.Random) -> ast.Module:
    keep = _api_names(tree)
    names = sorted(_local_names(tree) - keep)
    taken = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | keep
    mapping = {}
    for name in names:
        while True:
            new = f"{rng.choice(_WORDS)}{rng.randint(1, 99)}"
            if new not in taken:
                break
        taken.add(new)
        mapping[name] = new
    return _Rename(mapping).visit(tree)


def _names(node: ast.AST, ctx: type) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}


def _writes(stmt: ast.stmt) -> set[str]:
    out = _names(stmt, ast.Store)
    targets = getattr(stmt, "targets", None) or [getattr(stmt, "target", None)]
    for t in targets:  # x[i] = ..., x.a = ...: they write x
        while isinstance(t, (ast.Subscript, ast.Attribute)):
            t = t.value
        if isinstance(t, ast.Name):
            out.add(t.id)
    return out


def _swappable(a: ast.stmt, b: ast.stmt) -> bool:
    for s in (a, b):
        if not isinstance(s, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            return False
        if any(isinstance(n, (ast.Call, ast.NamedExpr, ast.Yield, ast.Await)) for n in ast.walk(s)) and any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr.endswith("_")
            for n in ast.walk(s)
        ):
            return False  # an in-place method (torch's x.add_()): leave its order alone
    wa, wb = _writes(a), _writes(b)
    ra, rb = _names(a, ast.Load), _names(b, ast.Load)
    return not (wa & (rb | wb) or wb & ra)


def reorder(tree: ast.Module, rng: random.Random) -> ast.Module:
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if not isinstance(body, list):
                continue
            i = 0
            while i < len(body) - 1:
                if _swappable(body[i], body[i + 1]) and rng.random() < 0.7:
                    body[i], body[i + 1] = body[i + 1], body[i]
                    i += 2
                else:
                    i += 1
    return tree


def reformat(source: str, rng: random.Random) -> str:
    """Indentation, blank lines and comments: what a formatter or a student's hand changes."""
    indent = rng.choice(("  ", "    ", "\t"))
    out = []
    in_string = False  # inside a docstring (ast.unparse writes them with triple quotes)
    for line in source.splitlines():
        stripped = line.lstrip(" ")
        depth = (len(line) - len(stripped)) // 4
        if in_string:  # a docstring's text: left as it is
            out.append(line)
            in_string = line.count('"""') % 2 == 0
            continue
        if stripped and rng.random() < 0.3 and not stripped.startswith(("else", "elif", "except", "finally")):
            out.append(indent * depth + rng.choice(_COMMENTS))
        out.append(indent * depth + stripped)
        in_string = line.count('"""') % 2 == 1
        if stripped and not in_string and rng.random() < 0.15:
            out.append("")
    return "\n".join(out) + "\n"


def disguise(source: str, seed: int = 0) -> str:
    """A renamed, reordered, reformatted and re-commented copy of `source` (see the module
    doc); the same seed gives the same copy."""
    rng = random.Random(seed)
    tree = ast.parse(source)
    tree = reorder(rename(tree, rng), rng)
    out = reformat(ast.unparse(ast.fix_missing_locations(tree)), rng)
    compile(out, "<disguised>", "exec")  # still Python
    return out
