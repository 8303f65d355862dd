"""Copy detection for instructors: which answer cells of a class look copied, from the
reference solutions or from each other.

Each answer cell (nbgrader `solution`, by grade id) is reduced to a fingerprint set, as
MOSS does (Schleimer, Wilkerson and Aiken, "Winnowing", SIGMOD 2003):

1. Tokens from Python's `tokenize`, without comments, docstrings, blank lines and
   indentation (so reformatting and comment changes leave them alone); every name the
   cell binds (variables, parameters, its functions and classes, loop and comprehension
   targets) becomes one placeholder `V`, so renaming does too. Keywords, operators,
   builtins, attribute names, keyword-argument names and the names a cell only reads
   (`np`, `torch`, helpers of other cells) stay: they are the API the code calls.
   Strings become `S`; numbers keep their value.
2. Hashes of every K consecutive tokens; winnowing keeps the smallest hash of every W
   consecutive ones (any shared run of K + W - 1 tokens is sure to share a fingerprint).
   Statements that are reordered keep the fingerprints inside them.
3. Fingerprints of the released stub (the function line, the docstring, the code around
   the solution block that every learner gets) are dropped, and a cell left with fewer
   than `MIN_FINGERPRINTS` of its own is not compared: a stub, or a one-liner that any
   two learners would write alike.

The similarity of two cells is the share of the larger cell's fingerprints that the
other has too: 1 only when each holds all of the other's. (The smaller cell's share flags
more honest work: a short honest answer is often half of a longer one. On the calibration
corpus it gave 4% false alarms where this gives under 1%, for the same detection of
disguised copies; see README.) Nothing is scored down: `llmlabs grade` lists the pairs at
or above `THRESHOLD` in its table, its JSON and `reports/<unit>/similarity.html`; an
instructor reads them. The threshold and its error rates were measured on a corpus of
disguised copies and independently written answers (`tests/data/similarity/`, README
"Grading a class").
"""

from __future__ import annotations

import ast
import hashlib
import html
import io
import itertools
import keyword
import tokenize
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from graders import cells

K = 5  # tokens per k-gram
W = 3  # winnowing window (in k-grams)
MIN_FINGERPRINTS = 6  # a cell with fewer of its own (beyond the stub) is not compared
MAX_CELL_CHARS = 100_000  # the rest of a longer cell is not read (answers are a few kB)
THRESHOLD = 0.8  # pairs at or above it are listed; see README "Grading a class"
REFERENCE = "reference"

_DROP = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


@dataclass(frozen=True)
class Token:
    text: str  # normalised
    line: int  # 1-based line of the original source


@dataclass
class _Parsed:
    bound: set[str] | None  # names the cell binds; None when it does not parse
    bare_strings: set[tuple[int, int]]  # (line, col) of strings that are whole statements
    keywords: set[tuple[int, int]]  # (line, col) of keyword-argument names in calls


def _parse(source: str) -> _Parsed:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # untrusted: any text at all
        return _Parsed(None, set(), set())
    bound: set[str] = set()
    bare: set[tuple[int, int]] = set()
    kw: set[tuple[int, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            bare.add((node.value.lineno, node.value.col_offset))
        elif isinstance(node, ast.keyword) and node.arg is not None:
            kw.add((node.lineno, node.col_offset))
    return _Parsed(bound, bare, kw)


def bound_names(source: str) -> set[str] | None:
    """Names `source` binds (None when it does not parse)."""
    return _parse(source).bound


def tokens(source: str) -> list[Token]:
    """The normalised tokens of a cell (see the module doc); [] when it does not tokenize."""
    source = source[:MAX_CELL_CHARS]
    parsed = _parse(source)
    raw: list[tokenize.TokenInfo] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            raw.append(tok)
    except (tokenize.TokenError, SyntaxError):
        pass  # an unfinished cell: keep what was read
    out: list[Token] = []
    after_dot = False
    for tok in raw:
        kind, text, line = tok.type, tok.string, tok.start[0]
        dot, after_dot = after_dot, False
        if kind in _DROP:
            continue
        if kind == tokenize.NEWLINE:
            if out and out[-1].text != ";":
                out.append(Token(";", line))
        elif kind == tokenize.STRING or kind in _FSTRING:
            if tok.start in parsed.bare_strings or (kind != tokenize.STRING and out and out[-1].text == "S"):
                continue  # a docstring; or the rest of an f-string
            out.append(Token("S", line))
        elif kind == tokenize.NUMBER:
            out.append(Token(_number(text), line))
        elif kind == tokenize.NAME:
            if keyword.iskeyword(text) or dot:
                out.append(Token(text, line))  # a keyword, or an attribute: the API called
            elif tok.start in parsed.keywords:
                out.append(Token(text + "=", line))  # a keyword argument's name
            elif parsed.bound is None or text in parsed.bound:
                out.append(Token("V", line))
            else:
                out.append(Token(text, line))  # read only: a builtin, a module, another cell's name
        elif text in ("(", ")"):
            continue  # grouping: redundant parentheses come and go with a formatter
        elif text.strip():
            out.append(Token(text, line))
            after_dot = text == "."
    while out and out[-1].text == ";":
        out.pop()
    return out


_FSTRING = {
    getattr(tokenize, n) for n in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END") if hasattr(tokenize, n)
}


def _number(text: str) -> str:
    try:
        return repr(ast.literal_eval(text))
    except (ValueError, SyntaxError):
        return text


def _hash(texts: Iterable[str]) -> int:
    digest = hashlib.blake2b("\x1f".join(texts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def winnow(hashes: list[int], w: int = W) -> set[int]:
    """Indexes of the hashes winnowing keeps: the smallest in every window of `w` (the
    rightmost on ties), each position once."""
    if len(hashes) <= w:
        return {min(range(len(hashes)), key=lambda j: (hashes[j], -j))} if hashes else set()
    keep = set()
    for start in range(len(hashes) - w + 1):
        window = range(start, start + w)
        keep.add(min(window, key=lambda j: (hashes[j], -j)))
    return keep


@dataclass
class Fingerprint:
    """A cell's fingerprints (hash -> the source lines of the k-grams that gave it)."""

    hashes: dict[int, set[int]] = field(default_factory=dict)
    n_tokens: int = 0

    def __len__(self) -> int:
        return len(self.hashes)


def fingerprint(source: str, k: int = K, w: int = W, ignore: Iterable[int] = ()) -> Fingerprint:
    toks = tokens(source)
    grams = [toks[i : i + k] for i in range(len(toks) - k + 1)]
    hashes = [_hash(t.text for t in g) for g in grams]
    skip = set(ignore)
    out: dict[int, set[int]] = {}
    for i in sorted(winnow(hashes, w)):
        if hashes[i] not in skip:
            out.setdefault(hashes[i], set()).update(t.line for t in grams[i])
    return Fingerprint(out, len(toks))


def all_hashes(source: str, k: int = K) -> set[int]:
    """Every k-gram hash of `source` (not winnowed): what a stub contributes."""
    toks = tokens(source)
    return {_hash(t.text for t in toks[i : i + k]) for i in range(len(toks) - k + 1)}


def similarity(a: Fingerprint, b: Fingerprint, min_fingerprints: int = MIN_FINGERPRINTS) -> float:
    """Shared fingerprints over those of the larger cell; 0 when either has fewer than
    `min_fingerprints` of its own."""
    if min(len(a), len(b)) < max(1, min_fingerprints):
        return 0.0
    return len(a.hashes.keys() & b.hashes.keys()) / max(len(a), len(b))


def reference_source(source_cell: str) -> str:
    """The reference answer in a source notebook's answer cell: the solution markers dropped
    (as `graders.authoring.reference.reference_cells` reads them from a text form)."""
    lines = [
        ln for ln in source_cell.splitlines() if ln.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
    ]
    return "\n".join(lines).strip("\n") + "\n"


def stub_source(source_cell: str) -> str:
    """What a learner is given for an answer cell of the source notebook: each
    `### BEGIN SOLUTION` ... `### END SOLUTION` block replaced by the course's stub
    (`graders.grading.course.CODE_STUB`)."""
    from graders.grading.course import CODE_STUB

    out: list[str] = []
    inside = False
    for line in source_cell.splitlines():
        stripped = line.strip()
        if stripped == "### BEGIN SOLUTION":
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in CODE_STUB.splitlines())
            inside = True
        elif stripped == "### END SOLUTION":
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class Pair:
    grade_id: str
    student: str
    other: str  # another student, or "reference"
    similarity: float
    shared: int  # fingerprints in common
    lines: list[int] = field(default_factory=list)  # the student's lines with shared fingerprints
    other_lines: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class CellCorpus:
    """The answer cells of one unit, fingerprinted with the released stub taken out."""

    def __init__(
        self,
        stubs: Mapping[str, str],
        *,
        k: int = K,
        w: int = W,
        min_fingerprints: int = MIN_FINGERPRINTS,
    ):
        self.k, self.w, self.min_fingerprints = k, w, min_fingerprints
        self.stub_hashes = {gid: all_hashes(src, k) for gid, src in stubs.items()}

    def fingerprint(self, grade_id: str, source: str) -> Fingerprint:
        return fingerprint(source, self.k, self.w, self.stub_hashes.get(grade_id, ()))

    def score(self, grade_id: str, a: str, b: str) -> float:
        return similarity(self.fingerprint(grade_id, a), self.fingerprint(grade_id, b), self.min_fingerprints)


def answer_sources(nb: Mapping[str, Any]) -> dict[str, str]:
    """grade_id -> source of the notebook's answer cells (an untrusted notebook: anything
    malformed is skipped)."""
    out: dict[str, str] = {}
    raw = nb.get("cells") if isinstance(nb, Mapping) else None
    for cell in raw if isinstance(raw, list) else []:
        if isinstance(cell, dict) and cells.is_answer(cell) and cell.get("cell_type") == "code":
            gid = cells.grade_id(cell)
            if gid and gid not in out:
                out[gid] = cells.source(cell)
    return out


def find_pairs(
    submissions: Mapping[str, Mapping[str, str]],
    reference: Mapping[str, str],
    stubs: Mapping[str, str],
    *,
    threshold: float = THRESHOLD,
    k: int = K,
    w: int = W,
    min_fingerprints: int = MIN_FINGERPRINTS,
) -> list[Pair]:
    """Every (cell, student, other) at or above `threshold`: each submission against the
    reference, and each two submissions; most similar first. `submissions`: student ->
    grade_id -> source; `reference` and `stubs`: grade_id -> source."""
    corpus = CellCorpus(stubs, k=k, w=w, min_fingerprints=min_fingerprints)
    pairs: list[Pair] = []
    for gid in reference.keys() | {g for cells_ in submissions.values() for g in cells_}:
        if gid not in stubs:
            continue  # not an answer cell of this unit
        prints = {s: corpus.fingerprint(gid, c[gid]) for s, c in submissions.items() if gid in c}
        prints = {s: p for s, p in prints.items() if len(p) >= min_fingerprints}
        ref = corpus.fingerprint(gid, reference[gid]) if gid in reference else None
        candidates: list[tuple[str, Fingerprint, str, Fingerprint]] = []
        if ref is not None:
            candidates += [(s, p, REFERENCE, ref) for s, p in prints.items()]
        candidates += [(a, prints[a], b, prints[b]) for a, b in itertools.combinations(sorted(prints), 2)]
        for student, fp, other, ofp in candidates:
            sim = similarity(fp, ofp, min_fingerprints)
            if sim >= threshold:
                shared = fp.hashes.keys() & ofp.hashes.keys()
                pairs.append(
                    Pair(
                        gid,
                        student,
                        other,
                        round(sim, 3),
                        len(shared),
                        sorted(set().union(*(fp.hashes[h] for h in shared))),
                        sorted(set().union(*(ofp.hashes[h] for h in shared))),
                    )
                )
    pairs.sort(key=lambda p: (-p.similarity, p.grade_id, p.student, p.other))
    return pairs


def unit_reference_and_stubs(unit: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The unit's reference answer cells and their released stubs, both from its source
    notebook (grading reads no text form: `graders.authoring` sits above it)."""
    sources = answer_sources(unit.notebook())
    reference = {gid: reference_source(src) for gid, src in sources.items()}
    stubs = {gid: stub_source(src) for gid, src in sources.items()}
    return reference, stubs


# --- the report an instructor opens ---------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 80em; color: #222 }
table { border-collapse: collapse; margin: 1em 0 }
td, th { border: 1px solid #bbb; padding: .3em .6em; text-align: left }
th { background: #eee }
.pair { margin: 2em 0; border-top: 2px solid #888 }
.code { display: flex; gap: 1em }
.code > div { flex: 1; min-width: 0 }
pre { background: #f6f6f6; padding: .5em; overflow-x: auto; font-size: 90% }
mark { background: #ffe08a }
"""


def _code_html(source: str, lines: Iterable[int]) -> str:
    marked = set(lines)
    out = []
    for n, line in enumerate(source.splitlines(), 1):
        text = html.escape(line) or " "
        out.append(f"<mark>{text}</mark>" if n in marked else text)
    return "<pre>" + "\n".join(out) + "</pre>"


def write_report(
    path: Path,
    unit: str,
    pairs: list[Pair],
    submissions: Mapping[str, Mapping[str, str]],
    reference: Mapping[str, str],
    *,
    threshold: float = THRESHOLD,
) -> Path:
    """A self-contained HTML page: the pairs, then each pair's two cells side by side with
    the shared lines marked."""
    esc = html.escape
    rows = "".join(
        f"<tr><td><a href='#p{i}'>{esc(p.grade_id)}</a></td><td>{esc(p.student)}</td>"
        f"<td>{esc(p.other)}</td><td>{p.similarity:.0%}</td><td>{p.shared}</td></tr>"
        for i, p in enumerate(pairs)
    )
    blocks = []
    for i, p in enumerate(pairs):
        mine = submissions.get(p.student, {}).get(p.grade_id, "")
        theirs = (reference if p.other == REFERENCE else submissions.get(p.other, {})).get(p.grade_id, "")
        blocks.append(
            f"<div class='pair' id='p{i}'><h2>{esc(p.grade_id)}: {esc(p.student)} and {esc(p.other)}, "
            f"{p.similarity:.0%}</h2><div class='code'>"
            f"<div><h3>{esc(p.student)}</h3>{_code_html(mine, p.lines)}</div>"
            f"<div><h3>{esc(p.other)}</h3>{_code_html(theirs, p.other_lines)}</div></div></div>"
        )
    table = (
        "<table><tr><th>cell</th><th>student</th><th>similar to</th><th>similarity</th>"
        f"<th>shared fingerprints</th></tr>{rows}</table>"
        if pairs
        else "<p>No pair of answer cells reached the threshold.</p>"
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(unit)}: similar answer cells</title>
<style>{_CSS}</style></head><body>
<h1>{esc(unit)}: similar answer cells</h1>
<p>{len(submissions)} submission(s); each answer cell compared with the reference solution
and with every other submission's, after removing comments, docstrings, layout, the names
it binds and the released stub. Listed: similarity &ge; {threshold:.0%} (the share of the
larger cell's fingerprints found in the other). Nothing was scored down: a high similarity
is a reason to read the two cells, not proof of copying. Shared lines are
<mark>marked</mark>.</p>
{table}
{"".join(blocks)}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
