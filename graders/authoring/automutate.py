"""Automatic mutants of a unit's reference answers: small mechanical changes, one each.

Hand mutants (`mutants.py`) prove the tests catch the mistakes their author thought of;
these measure how much of the reference the tests really pin down. Each mutant changes
one place of one answer cell (comments and layout kept, so the report can show the line):

| operator | change |
|---|---|
| `binop` | `+` <-> `-`, `*` <-> `/`, `//` -> `/`, `**` -> `*`, `@` -> `*` (also in `+=` and friends) |
| `compare` | `<` <-> `<=`, `>` <-> `>=`, `==` <-> `!=`, `is` <-> `is not`, `in` <-> `not in` |
| `boolop` | `and` <-> `or`; `not x` -> `x`; `-x` -> `x` |
| `const` | an integer n -> n + 1 (0 <-> 1), a float x -> 2x (0.0 -> 1.0), `True` <-> `False` |
| `keyword` | a keyword argument dropped (`keepdim=True`, `dim=-1`, `dtype=...`) |
| `unwrap` | `abs(x)`, `max(x, y)`, `np.maximum(x, y)`, `x.clamp(...)`, `x.float()`, ... -> `x` |
| `swap` | the first two positional arguments of a call swapped |
| `drop` | a statement of a function body replaced by `pass` |

Mutants whose source does not parse, or repeats another's, are left out. Ids are made
from the cell, the operator and the text of the changed line, so they survive edits
elsewhere in the cell and the triage file (`mutation_triage.toml`) keeps applying.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from graders.pysource import dotted

BINOP_SWAPS: dict[type[ast.operator], tuple[str, str]] = {
    ast.Add: ("+", "-"),
    ast.Sub: ("-", "+"),
    ast.Mult: ("*", "/"),
    ast.Div: ("/", "*"),
    ast.FloorDiv: ("//", "/"),
    ast.Pow: ("**", "*"),
    ast.MatMult: ("@", "*"),
    ast.Mod: ("%", "//"),
}
COMPARE_SWAPS: dict[type[ast.cmpop], tuple[str, str]] = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"),
    ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"),
}
# Calls whose removal leaves their (first) argument: the guards and conversions a lesson
# is usually about (clamping, absolute values, dtype casts, stabilising maxima).
UNWRAP_FUNCTIONS = {
    "abs",
    "max",
    "min",
    "float",
    "int",
    "round",
    "math.sqrt",
    "math.fabs",
    "np.abs",
    "np.maximum",
    "np.minimum",
    "np.clip",
    "np.sqrt",
    "np.asarray",
    "np.ascontiguousarray",
    "torch.abs",
    "torch.maximum",
    "torch.minimum",
    "torch.clamp",
    "torch.sqrt",
    "torch.as_tensor",
    "torch.nan_to_num",
    "np.nan_to_num",
}
UNWRAP_METHODS = {
    "abs",
    "clamp",
    "clamp_min",
    "clamp_max",
    "clip",
    "float",
    "double",
    "half",
    "bfloat16",
    "to",
    "contiguous",
    "clone",
    "copy",
    "detach",
    "round",
    "floor",
    "ceil",
    "sqrt",
    "astype",
    "type",
    "nan_to_num",
    "masked_fill",
    "squeeze",
    "unsqueeze",
}


@dataclass(frozen=True)
class AutoMutant:
    id: str  # cell/operator/hash of the changed line: stable across unrelated edits
    cell: str  # grade_id of the answer cell
    operator: str
    line: int  # 1-based, in the cell's reference source
    before: str  # the line as it was, stripped
    after: str  # the line as the mutant has it, stripped (or "pass" for a dropped statement)
    source: str  # the whole mutated cell


class _Source:
    """A cell's text, with AST positions (1-based lines, UTF-8 byte columns) turned into
    string offsets for splicing."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8", errors="ignore"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def line_of(self, offset: int) -> int:
        for i in range(len(self.lines)):
            if self.starts[i + 1] > offset:
                return i + 1
        return len(self.lines)


def _find_token(text: str, start: int, end: int, token: str) -> int | None:
    """Offset of `token` between start and end, outside comments (for operators)."""
    segment = text[start:end]
    i = segment.find(token)
    while i != -1:
        before, after = segment[i - 1 : i], segment[i + len(token) : i + len(token) + 1]
        word = token.isalpha() or " " in token
        clash = (word and (before.isalnum() or after.isalnum() or after == "_")) or (
            not word and (after in "=*/" or before in "*/<>=!")
        )
        if not clash:
            return start + i
        i = segment.find(token, i + 1)
    return None


def _edits(src: _Source, tree: ast.AST) -> Iterator[tuple[str, int, int, str]]:
    """(operator, start, end, replacement) for every mutation of one place."""
    text = src.text
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAPS:
            old, new = BINOP_SWAPS[type(node.op)]
            at = _find_token(text, src.span(node.left)[1], src.span(node.right)[0], old)
            if at is not None:
                yield "binop", at, at + len(old), new
        elif isinstance(node, ast.AugAssign) and type(node.op) in BINOP_SWAPS:
            old, new = BINOP_SWAPS[type(node.op)]
            at = _find_token(text, src.span(node.target)[1], src.span(node.value)[0], old + "=")
            if at is not None:
                yield "binop", at, at + len(old) + 1, new + "="
        elif isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators, strict=True):
                if type(op) in COMPARE_SWAPS:
                    old, new = COMPARE_SWAPS[type(op)]
                    lo, hi = src.span(left)[1], src.span(right)[0]
                    at = _find_token(text, lo, hi, old)
                    if at is not None:
                        yield "compare", at, at + len(old), new
                left = right
        elif isinstance(node, ast.BoolOp):
            old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            at = _find_token(text, src.span(node.values[0])[1], src.span(node.values[1])[0], old)
            if at is not None:
                yield "boolop", at, at + len(old), new
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            start, end = src.span(node)
            yield "boolop", start, end, _operand(src, node.operand)
        elif isinstance(node, ast.Constant) and id(node) not in docstrings:
            value = node.value
            if isinstance(value, bool):
                yield "const", *src.span(node), str(not value)
            elif isinstance(value, int):
                yield "const", *src.span(node), str(1 if value == 0 else value + 1)
                if value == 1:
                    yield "const", *src.span(node), "0"
            elif isinstance(value, float):
                yield "const", *src.span(node), repr(value * 2 if value else 1.0)
        elif isinstance(node, ast.Call):
            yield from _call_edits(src, node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = [s for s in node.body if not (isinstance(s, ast.Expr) and id(s.value) in docstrings)]
            for stmt in body:
                if len(body) > 1 and isinstance(
                    stmt,
                    (
                        ast.Assign,
                        ast.AugAssign,
                        ast.AnnAssign,
                        ast.Expr,
                        ast.If,
                        ast.For,
                        ast.While,
                        ast.With,
                    ),
                ):
                    yield from _drop(src, stmt)
        elif isinstance(node, (ast.For, ast.While, ast.If, ast.With)):
            for stmt in node.body if len(node.body) > 1 else ():
                if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr)):
                    yield from _drop(src, stmt)


def _operand(src: _Source, node: ast.AST) -> str:
    """The text of `node`, bracketed unless atomic, so that putting it where a call or a
    unary operator was keeps its meaning (`abs(x - y) * 2` -> `(x - y) * 2`)."""
    text = src.text[slice(*src.span(node))]
    atomic = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant, ast.List, ast.Tuple, ast.Dict)
    return text if isinstance(node, atomic) else f"({text})"


def _drop(src: _Source, stmt: ast.stmt) -> Iterator[tuple[str, int, int, str]]:
    start, end = src.span(stmt)
    yield "drop", start, end, "pass"


def _call_edits(src: _Source, node: ast.Call) -> Iterator[tuple[str, int, int, str]]:
    text = src.text
    name = dotted(node.func)
    start, end = src.span(node)
    if name in UNWRAP_FUNCTIONS and node.args and not isinstance(node.args[0], ast.Starred):
        yield "unwrap", start, end, _operand(src, node.args[0])
    elif isinstance(node.func, ast.Attribute) and node.func.attr in UNWRAP_METHODS:
        yield "unwrap", start, end, _operand(src, node.func.value)
    for kw in node.keywords:
        if kw.arg is None:
            continue
        kw_start = src.offset(kw.lineno, kw.col_offset)
        kw_end = src.span(kw.value)[1]
        # Take the comma before the keyword (or after it, when it comes first) with it.
        before = text.rfind(",", src.span(node.func)[1], kw_start)
        if before != -1 and not text[before + 1 : kw_start].strip():
            yield "keyword", before, kw_end, ""
        else:
            after = text.find(",", kw_end, end)
            if after != -1:
                nxt = after + 1
                while nxt < end and text[nxt] in " \t\n":
                    nxt += 1
                yield "keyword", kw_start, nxt, ""
            elif not node.args and len(node.keywords) == 1:
                yield "keyword", kw_start, kw_end, ""
    positional = [a for a in node.args if not isinstance(a, ast.Starred)]
    if len(positional) >= 2 and positional[:2] == node.args[:2]:
        (a0, a1), (b0, b1) = src.span(positional[0]), src.span(positional[1])
        first, second = text[a0:a1], text[b0:b1]
        if first != second:
            yield "swap", a0, b1, second + text[a1:b0] + first


def _stable_id(cell: str, operator: str, before: str, after: str, occurrence: int) -> str:
    digest = hashlib.sha1(f"{before}\0{after}\0{occurrence}".encode()).hexdigest()[:8]
    return f"{cell}/{operator}/{digest}"


def mutate_cell(cell: str, source: str) -> list[AutoMutant]:
    """Every automatic mutant of one answer cell's reference source."""
    tree = ast.parse(source)
    src = _Source(source)
    out: list[AutoMutant] = []
    seen = {source}
    counts: dict[tuple[str, str, str], int] = {}
    for operator, start, end, replacement in sorted(
        _edits(src, tree), key=lambda e: (e[1], e[2], e[0], e[3])
    ):
        mutated = source[:start] + replacement + source[end:]
        if mutated in seen:
            continue
        try:
            ast.parse(mutated)
        except SyntaxError:
            continue
        seen.add(mutated)
        first, last = src.line_of(start), src.line_of(max(start, end - 1))
        before = "".join(src.lines[first - 1 : last]).strip()
        grown = replacement.count("\n") - source[start:end].count("\n")
        after = "\n".join(mutated.splitlines()[first - 1 : last + grown]).strip()
        key = (operator, before, after)
        counts[key] = counts.get(key, 0) + 1
        out.append(
            AutoMutant(
                _stable_id(cell, operator, before, after, counts[key]),
                cell,
                operator,
                first,
                before,
                after,
                mutated,
            )
        )
    return out


def mutate_unit(answers: dict[str, str]) -> list[AutoMutant]:
    """Every automatic mutant of a unit, from grade_id -> reference answer source."""
    return [m for cell, source in answers.items() for m in mutate_cell(cell, source)]
