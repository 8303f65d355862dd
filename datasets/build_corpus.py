"""Build the `pystdlib_docs` corpus from the docstrings of the Python standard library.

Usage (the full build, about 3 s):

    python datasets/build_corpus.py                       # writes datasets/pystdlib_docs/
    python datasets/build_corpus.py --out /tmp/c --max-files 40   # a fast slice

Source: every `*.py` file of the standard library of the running interpreter (the
bundled corpus was made with CPython 3.11.7), walked in sorted order, minus test suites,
demos, vendored packages and `site-packages`; plus the reference-manual topics shipped in
`pydoc_data/topics.py`. All of it is under the PSF licence (see DATASHEET.md).

A document is one docstring (of a module, class, function or method) or one manual topic.
The pipeline, each step counted in `build_report.json`:

1. extract   parse each file with `ast` (no import, no execution) and collect docstrings;
2. normalise Unicode NFC, `inspect.cleandoc` (common indentation), tabs to spaces,
             trailing spaces stripped, runs of blank lines collapsed to one, control
             characters other than newline removed;
3. boilerplate  drop licence / copyright / authorship lines and generated-code notices,
             and documents that are only such lines;
4. length    drop documents shorter than MIN_CHARS or longer than MAX_CHARS;
5. quality   drop documents whose letters are under 60 % of their non-space characters
             (tables, hex dumps, ASCII art);
6. exact dedup  drop a document whose text (after normalisation) was already kept;
7. near dedup   drop a document equal to a kept one after lower-casing and masking digits
             (template docstrings such as the generated codec modules);
8. split     by module (all documents of one source file go to the same side, so no
             function, class or module text is on both sides): sha256(module name)
             decides, about VAL_PERCENT % of the modules go to validation.

Output: `train.jsonl` and `validation.jsonl` (one JSON object per line: id, module,
kind, text), `build_report.json` (counts), and the interpreter's `LICENSE.txt` (the PSF
licence and notices), all deterministic for one Python version.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import inspect
import json
import re
import shutil
import sys
import sysconfig
import unicodedata
from pathlib import Path

MIN_CHARS = 80
MAX_CHARS = 6000
VAL_PERCENT = 8
MIN_LETTER_FRACTION = 0.6

# Folders of the standard library that are not library documentation.
EXCLUDE_DIRS = {
    "site-packages",
    "test",
    "tests",
    "idle_test",
    "__pycache__",
    "turtledemo",
    "lib2to3/tests",
    "ensurepip",
    "__phello__",
    "lib-dynload",
    "pydoc_data",
}

BOILERPLATE_LINE = re.compile(
    r"(copyright\s*(\(c\)|©|\d{4})|all rights reserved|licensed to the psf|"
    r"contributor agreement|^\s*(author|authors|maintainer|written by)\s*:|"
    r"generated (from|by) |do not edit|^\s*\$id:|^\s*(__version__|revision)\b)",
    re.IGNORECASE,
)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def excluded(rel: Path) -> bool:
    text = rel.as_posix()
    # config-3.11-<platform>: the interpreter's build files, named after the platform.
    if any(part in EXCLUDE_DIRS or part.startswith("config-3") for part in rel.parts):
        return True
    return any("/" in d and (text.startswith(d + "/") or f"/{d}/" in text) for d in EXCLUDE_DIRS)


def stdlib_files(root: Path) -> list[Path]:
    files = [p for p in root.rglob("*.py") if not excluded(p.relative_to(root))]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def docstrings(tree: ast.Module, module: str):
    """Yield (qualified name, kind, raw docstring) in source order."""
    doc = ast.get_docstring(tree, clean=False)
    if doc:
        yield module, "module", doc

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}"
                doc = ast.get_docstring(child, clean=False)
                if doc:
                    kind = "class" if isinstance(child, ast.ClassDef) else "function"
                    yield name, kind, doc
                if isinstance(child, ast.ClassDef):
                    yield from walk(child, name)

    yield from walk(tree, module)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = inspect.cleandoc(text.expandtabs(8))
    text = CONTROL.sub("", text)
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def strip_boilerplate(text: str) -> tuple[str, int]:
    kept, dropped = [], 0
    for line in text.split("\n"):
        if BOILERPLATE_LINE.search(line):
            dropped += 1
        else:
            kept.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip(), dropped


def letter_fraction(text: str) -> float:
    chars = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in chars) / max(1, len(chars))


def near_key(text: str) -> str:
    return re.sub(r"\d+", "0", re.sub(r"\s+", " ", text.lower()))


def in_validation(module: str) -> bool:
    """All documents of one module (source file) go to one side; each manual topic is its own module."""
    digest = hashlib.sha256(module.encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < VAL_PERCENT


def collect(root: Path, max_files: int | None):
    """Raw documents: (id, module, kind, text) from the stdlib and the manual topics."""
    files = stdlib_files(root)
    if max_files is not None:
        files = files[:max_files]
    docs, report = [], {"files": len(files), "unparsable_files": 0}
    for path in files:
        module = module_name(root, path)
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError):
            report["unparsable_files"] += 1
            continue
        for qualname, kind, doc in docstrings(tree, module):
            docs.append({"id": qualname, "module": module, "kind": kind, "text": doc})
    topics_file = root / "pydoc_data" / "topics.py"
    tree = ast.parse(topics_file.read_bytes())
    topics = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            topics = ast.literal_eval(node.value)
    names = sorted(topics)
    if max_files is not None:
        names = names[: max(1, max_files // 10)]
    report["manual_topics"] = len(names)
    for name in names:
        docs.append(
            {"id": f"topics.{name}", "module": f"topics.{name}", "kind": "topic", "text": topics[name]}
        )
    return docs, report


def build(root: Path, out: Path, max_files: int | None = None) -> dict:
    docs, report = collect(root, max_files)
    steps = {"extracted": len(docs)}
    cleaned, boiler_lines, boiler_docs = [], 0, 0
    for d in docs:
        text, dropped = strip_boilerplate(normalise(d["text"]))
        boiler_lines += dropped
        if not text:
            boiler_docs += 1
            continue
        cleaned.append({**d, "text": text})
    steps["boilerplate_lines_removed"] = boiler_lines
    steps["boilerplate_documents_removed"] = boiler_docs

    too_short = [d for d in cleaned if len(d["text"]) < MIN_CHARS]
    too_long = [d for d in cleaned if len(d["text"]) > MAX_CHARS]
    cleaned = [d for d in cleaned if MIN_CHARS <= len(d["text"]) <= MAX_CHARS]
    steps["too_short_removed"] = len(too_short)
    steps["too_long_removed"] = len(too_long)

    low_quality = [d for d in cleaned if letter_fraction(d["text"]) < MIN_LETTER_FRACTION]
    cleaned = [d for d in cleaned if letter_fraction(d["text"]) >= MIN_LETTER_FRACTION]
    steps["low_letter_fraction_removed"] = len(low_quality)

    seen_exact, seen_near, kept = set(), set(), []
    exact_dups = near_dups = 0
    for d in cleaned:
        h = hashlib.sha256(d["text"].encode()).hexdigest()
        if h in seen_exact:
            exact_dups += 1
            continue
        seen_exact.add(h)
        k = hashlib.sha256(near_key(d["text"]).encode()).hexdigest()
        if k in seen_near:
            near_dups += 1
            continue
        seen_near.add(k)
        kept.append(d)
    steps["exact_duplicates_removed"] = exact_dups
    steps["near_duplicates_removed"] = near_dups
    steps["kept"] = len(kept)

    splits = {"train": [], "validation": []}
    for d in kept:
        splits["validation" if in_validation(d["module"]) else "train"].append(d)

    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, rows in splits.items():
        with open(out / f"{name}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for d in rows:
                f.write(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n")
        counts[name] = {
            "documents": len(rows),
            "characters": sum(len(d["text"]) for d in rows),
            "modules": len({d["module"] for d in rows}),
        }
    overlap = {d["module"] for d in splits["train"]} & {d["module"] for d in splits["validation"]}
    assert not overlap, f"module on both sides of the split: {sorted(overlap)[:5]}"
    report.update(
        {
            "python": sys.version.split()[0],
            "steps": steps,
            "splits": counts,
            "parameters": {
                "MIN_CHARS": MIN_CHARS,
                "MAX_CHARS": MAX_CHARS,
                "VAL_PERCENT": VAL_PERCENT,
                "MIN_LETTER_FRACTION": MIN_LETTER_FRACTION,
            },
        }
    )
    # The PSF licence asks that its notice travel with derived works.
    if (root / "LICENSE.txt").is_file():
        shutil.copyfile(root / "LICENSE.txt", out / "LICENSE.txt")
    (out / "build_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def main(argv=None) -> None:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stdlib", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    p.add_argument("--out", type=Path, default=here / "pystdlib_docs")
    p.add_argument("--max-files", type=int, default=None, help="fast mode: first N files only")
    args = p.parse_args(argv)
    report = build(args.stdlib, args.out, args.max_files)
    print(json.dumps(report["steps"]), json.dumps(report["splits"]))


if __name__ == "__main__":
    main()
