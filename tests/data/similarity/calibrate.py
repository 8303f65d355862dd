"""Measure copy detection (`graders.grading.similarity`) on a calibration corpus and print
its error rates: the numbers in README "Grading a class".

    HF_HUB_OFFLINE=1 .venv/bin/python tests/data/similarity/calibrate.py [--json FILE]

Copies (must be flagged), compared with the reference answer cell of the same grade id:
- `auto`: every answer cell of every unit through `disguise.disguise` with seeds 0-4
  (local names renamed, independent statements swapped, reformatted, comments changed);
- `hand`: copies disguised by hand (`hand_disguised.py`), some with small rewrites too;
- `mutant`: every hand mutant (`curriculum/*/mutants.py`): a copy with one edit.
Honest work (must not be flagged):
- `independent`: answers written without reading the reference, from the released
  notebook only (`independent_<unit>.py` here, and `curriculum/*/alternatives.py` where
  a unit has them), each against the reference and against the other independent answers
  to the same cell;
- `stub`: the released stub itself (must be ignored: never a pair).
A cell too small to compare (fewer than MIN_FINGERPRINTS of its own beyond the stub)
counts as not flagged, in both groups.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import itertools
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path[:0] = [str(ROOT), str(HERE)]

from disguise import disguise  # noqa: E402

from graders.grading import similarity  # noqa: E402
from graders.grading.units import all_units  # noqa: E402

SEEDS = range(5)


def _module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"_calib_{path.parent.name}_{path.stem}", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def alternatives(unit: Any) -> dict[str, list[str]]:
    """grade_id -> independent correct answers of `unit` (this folder's and the unit's
    `alternatives.py`, whichever exist)."""
    out: dict[str, list[str]] = {}
    paths = [HERE / f"independent_{unit.name}.py", unit.directory / "alternatives.py"]
    for path in paths:
        if not path.is_file():
            continue
        mod = _module(path)
        for name in ("ANSWERS", "ALTERNATIVES"):
            found = getattr(mod, name, None)
            if isinstance(found, dict):
                for gid, sources in found.items():
                    out.setdefault(gid, []).extend([sources] if isinstance(sources, str) else list(sources))
            elif isinstance(found, list):  # objects or tuples with a cell and a source
                for item in found:
                    gid = getattr(item, "cell", None) or item[0]
                    src = getattr(item, "source", None) or item[1]
                    out.setdefault(gid, []).append(src)
    return out


def _plain(source: str) -> str:
    """The code without docstrings or layout, names kept (to spot an answer that is the
    reference's text itself)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.unparse(tree)


def measure() -> dict[str, list[dict[str, Any]]]:
    """Every score of the corpus, by group."""
    groups: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("auto", "hand", "mutant", "independent", "stub")
    }
    for unit in all_units():
        _measure_unit(unit, groups)
    return groups


def _measure_unit(unit: Any, groups: dict[str, list[dict[str, Any]]]) -> None:
    from graders.authoring.mutants import load_mutants

    reference, stubs = similarity.unit_reference_and_stubs(unit)
    corpus = similarity.CellCorpus(stubs)
    refs = {gid: corpus.fingerprint(gid, src) for gid, src in reference.items()}

    def score(gid: str, source: str, other: similarity.Fingerprint | None = None) -> float:
        return similarity.similarity(corpus.fingerprint(gid, source), other or refs[gid])

    def add(group: str, gid: str, name: str, value: float) -> None:
        small = len(refs[gid]) < similarity.MIN_FINGERPRINTS  # never compared, so never flagged
        item = {
            "unit": unit.name,
            "cell": gid,
            "name": name,
            "similarity": round(value, 3),
            "too_small": small,
        }
        groups[group].append(item)

    for gid, src in reference.items():
        for seed in SEEDS:
            add("auto", gid, f"seed{seed}", score(gid, disguise(src, seed)))
        add("stub", gid, "stub", score(gid, stubs[gid]))
    for u, gid, name, src in _module(HERE / "hand_disguised.py").HAND:
        if u == unit.name:
            add("hand", gid, name, score(gid, src))
    for m in load_mutants(unit):
        add("mutant", m.cell, m.name, score(m.cell, m.source))
    for gid, sources in alternatives(unit).items():
        if gid not in reference:
            continue
        for i, src in enumerate(sources):
            same = (
                " (the reference's own text, names included)" if _plain(src) == _plain(reference[gid]) else ""
            )
            add("independent", gid, f"alt{i} ~ reference{same}", score(gid, src))
        for (i, a), (j, b) in itertools.combinations(enumerate(sources), 2):
            add("independent", gid, f"alt{i} ~ alt{j}", score(gid, a, corpus.fingerprint(gid, b)))


def rates(groups: dict[str, list[dict[str, Any]]], threshold: float) -> dict[str, str]:
    """flagged / compared per group (cells too small to compare left out)."""
    out = {}
    for name, items in groups.items():
        compared = [x for x in items if not x["too_small"]]
        flagged = sum(1 for x in compared if x["similarity"] >= threshold)
        out[name] = f"{flagged}/{len(compared)}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write every score here")
    parser.add_argument(
        "--show", type=float, default=None, help="list honest pairs above this and copies below"
    )
    args = parser.parse_args()
    groups = measure()
    print(f"K={similarity.K} W={similarity.W} MIN_FINGERPRINTS={similarity.MIN_FINGERPRINTS}")
    print("flagged per group (copies: auto, hand, mutant; honest: independent, stub)")
    small = {(x["unit"], x["cell"]) for x in groups["stub"] if x["too_small"]}
    print(f"cells too small to compare (never flagged, left out below): {sorted(small)}")
    for t in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9):
        mark = "  <- THRESHOLD" if t == similarity.THRESHOLD else ""
        print(f"  threshold {t:.2f}: {rates(groups, t)}{mark}")
    for name, items in groups.items():
        values = sorted(x["similarity"] for x in items if not x["too_small"])
        if values:
            median = values[len(values) // 2]
            print(f"  {name}: n={len(values)} min={values[0]:.2f} median={median:.2f} max={values[-1]:.2f}")
    show = similarity.THRESHOLD if args.show is None else args.show
    for name in ("auto", "hand", "mutant"):
        for x in groups[name]:
            if x["similarity"] < show and not x["too_small"]:
                print(f"  missed copy ({name}): {x}")
    for x in groups["independent"] + groups["stub"]:
        if x["similarity"] >= show:
            print(f"  false alarm: {x}")
    if args.json:
        args.json.write_text(json.dumps(groups, indent=1) + "\n")


if __name__ == "__main__":
    main()
