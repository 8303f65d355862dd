"""Automatic mutation testing of a unit: grade every automatic mutant, score, report.

    python -m graders.authoring.mutation_score UNIT [--cells ID ...] [--sample N] [--fresh]

Each mutant (`graders.authoring.automutate`) runs in the shared mutant kernel
(`graders.authoring.mutant_kernel`): its answer cell with the mutation, then the cells
after it through the last test cell of its exercise, or, further, the last test cell
that uses a name the answer defines. A mutant is *killed* when a test cell scores less
than the reference did (the first such test stops its run), *survives* otherwise.
Each cell may take 5x the reference's time (15 s at least) so that a mutant stuck in a
loop costs little; a mutant killed that way is graded again with the unit's own
`cell_timeout`, the grader's limit, since on a loaded machine an equivalent mutant can
run past the tight one.

Survivors are triaged in the unit's `mutation_triage.toml`: `[equivalent]` maps a
mutant id to the reason no test can tell it from the reference (those leave the
denominator); every other survivor is a gap to close with a test. The score is
killed / (mutants - equivalent). Results go to `mutation_report.json` (every verdict)
and `mutation_report.md` (the summary and the survivors) in the unit's folder; a cache
under `.mutation/` at the repository root lets a re-run regrade only what changed:
survivors when the unit's tests changed, and mutants of answers that changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from graders import cells
from graders.authoring.automutate import AutoMutant, mutate_unit
from graders.authoring.reference import reference_cells
from graders.grading.units import Unit, get_unit
from graders.pysource import defined_names

TRIAGE = "mutation_triage.toml"
REPORT_JSON = "mutation_report.json"
REPORT_MD = "mutation_report.md"
TIMEOUT_FACTOR, TIMEOUT_FLOOR = 5.0, 15.0  # a mutant may be 5x slower than the reference's cell


@dataclass
class Verdict:
    id: str
    cell: str
    operator: str
    line: int
    before: str
    after: str
    killed: bool
    by: str  # the test cell that lost points, or "" for a survivor
    seconds: float


def tests_hash(unit: Unit) -> str:
    nb = unit.notebook()
    text = "\0".join(cells.source(c) for c in nb["cells"] if cells.is_test(c) or cells.is_locked(c))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def exercise_ranges(unit: Unit) -> dict[str, str]:
    """answer cell -> the last test cell a mutant of it runs through: the last test of
    its exercise (before the next answer cell), or a later test that uses a name the
    answer defines, whichever comes last."""
    order = [(str(cells.grade_id(c)), c) for c in cells.graded_cells(unit.notebook())]
    answers = [i for i, (_, c) in enumerate(order) if cells.is_answer(c)]
    out = {}
    for k, i in enumerate(answers):
        gid, cell = order[i]
        nxt = answers[k + 1] if k + 1 < len(answers) else len(order)
        uses = re.compile(
            r"\b(" + "|".join(map(re.escape, sorted(defined_names(cells.source(cell))))) + r")\b"
        )
        tests = [
            j
            for j in range(i + 1, len(order))
            if cells.is_test(order[j][1]) and (j < nxt or uses.search(cells.source(order[j][1])))
        ]
        if not tests:
            raise LookupError(f"{unit.name}: no test cell after answer cell {gid!r}")
        out[gid] = order[max(tests)][0]
    return out


def load_triage(unit: Unit) -> dict[str, str]:
    path = unit.directory / TRIAGE
    if not path.is_file():
        return {}
    data = tomllib.loads(path.read_text())
    unknown = set(data) - {"equivalent"}
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)} (only [equivalent])")
    return {str(k): str(v) for k, v in data.get("equivalent", {}).items()}


def _cache_path(unit: Unit) -> Path:
    return unit.directory.parent.parent / ".mutation" / f"{unit.name}.json"


def _source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def grade_automutants(
    unit: Unit,
    mutants: list[AutoMutant],
    *,
    fresh: bool = False,
    use_cache: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[Verdict]:
    """Grade `mutants` in one shared kernel; reuse cached verdicts where still valid
    (`fresh`: regrade all, and refresh the cache; `use_cache=False`: leave it alone)."""
    from graders.authoring.mutant_kernel import shared_kernel

    ranges = exercise_ranges(unit)
    thash = tests_hash(unit)
    cache_file = _cache_path(unit)
    cached = use_cache and not fresh and cache_file.is_file()
    cache: dict[str, Any] = json.loads(cache_file.read_text()) if cached else {}
    verdicts: dict[str, Verdict] = {}
    todo = []
    for m in mutants:
        hit = cache.get(m.id)
        if hit and hit["source"] == _source_hash(m.source) and (hit["killed"] or hit["tests"] == thash):
            verdicts[m.id] = Verdict(**hit["verdict"])
        else:
            todo.append(m)
    say = progress or (lambda line: None)
    say(
        f"{unit.name}: {len(mutants)} automatic mutants, {len(mutants) - len(todo)} cached, "
        f"{len(todo)} to grade"
    )
    if todo:
        seconds: dict[int, float] = {}
        graders_limit = False  # True while regrading a kill by timeout

        def limit(i: int) -> float:
            if graders_limit:
                return unit.cell_timeout
            return min(
                unit.cell_timeout, max(TIMEOUT_FLOOR, TIMEOUT_FACTOR * seconds.get(i, unit.cell_timeout))
            )

        with shared_kernel(unit, cell_timeouts=limit) as kernel:
            seconds.update(kernel.cell_seconds)
            reference = kernel.reference_scores
            started_all = time.perf_counter()
            for n, m in enumerate(todo, 1):
                started = time.perf_counter()
                scores = kernel.grade(m.cell, m.source, ranges[m.cell], stop_on_loss=reference)
                if kernel.timed_out:
                    say(f"  {m.id} ran into the tight time limit: graded again with cell_timeout")
                    graders_limit = True
                    try:
                        scores = kernel.grade(m.cell, m.source, ranges[m.cell], stop_on_loss=reference)
                    finally:
                        graders_limit = False
                lost = [t for t, s in scores.items() if s < reference.get(t, 0.0)]
                v = Verdict(
                    m.id,
                    m.cell,
                    m.operator,
                    m.line,
                    m.before,
                    m.after,
                    bool(lost),
                    lost[0] if lost else "",
                    round(time.perf_counter() - started, 2),
                )
                verdicts[m.id] = v
                cache[m.id] = {
                    "source": _source_hash(m.source),
                    "tests": thash,
                    "killed": v.killed,
                    "verdict": asdict(v),
                }
                if use_cache and (n % 10 == 0 or n == len(todo)):
                    cache_file.parent.mkdir(parents=True, exist_ok=True)
                    cache_file.write_text(json.dumps(cache, indent=0, sort_keys=True))
                elapsed = time.perf_counter() - started_all
                eta = elapsed / n * (len(todo) - n)
                say(
                    f"  [{n}/{len(todo)}] {'killed ' if v.killed else 'SURVIVED'} {m.id} "
                    f"({v.seconds:.1f} s, ETA {eta / 60:.0f} min)"
                )
            if kernel.restarts:
                say(f"  the kernel died and was restarted {kernel.restarts} time(s)")
    return [verdicts[m.id] for m in mutants]


@dataclass
class Summary:
    unit: str
    mutants: int
    killed: int
    equivalent: int
    survived: int  # not killed and not triaged as equivalent
    score: float  # killed / (mutants - equivalent)
    per_cell: dict[str, dict[str, int]]
    stale_triage: list[str]  # triage ids that no longer name a mutant


def summarise(unit: Unit, verdicts: list[Verdict], triage: dict[str, str], all_ids: set[str]) -> Summary:
    equivalent = {v.id for v in verdicts if not v.killed and v.id in triage}
    killed = sum(v.killed for v in verdicts)
    survived = len(verdicts) - killed - len(equivalent)
    per_cell: dict[str, dict[str, int]] = {}
    for v in verdicts:
        row = per_cell.setdefault(v.cell, {"mutants": 0, "killed": 0, "equivalent": 0, "survived": 0})
        row["mutants"] += 1
        key = "killed" if v.killed else ("equivalent" if v.id in equivalent else "survived")
        row[key] += 1
    denominator = len(verdicts) - len(equivalent)
    return Summary(
        unit.name,
        len(verdicts),
        killed,
        len(equivalent),
        survived,
        round(killed / denominator, 4) if denominator else 1.0,
        per_cell,
        sorted(set(triage) - all_ids),
    )


def write_report(
    unit: Unit, verdicts: list[Verdict], summary: Summary, triage: dict[str, str], header: str
) -> None:
    data = {"summary": asdict(summary), "verdicts": [asdict(v) for v in verdicts]}
    (unit.directory / REPORT_JSON).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    lines = [
        f"# Automatic mutation testing: `{unit.name}`",
        "",
        header,
        "",
        f"**Score: {summary.score:.1%}** = killed {summary.killed} / (mutants {summary.mutants} - "
        f"equivalent {summary.equivalent}); {summary.survived} survivor(s) not triaged as equivalent.",
        "",
        "| answer cell | mutants | killed | equivalent | survived | score |",
        "|---|---|---|---|---|---|",
    ]
    for cell, row in summary.per_cell.items():
        den = row["mutants"] - row["equivalent"]
        lines.append(
            f"| `{cell}` | {row['mutants']} | {row['killed']} | {row['equivalent']} | "
            f"{row['survived']} | {row['killed'] / den if den else 1:.0%} |"
        )
    ops = Counter((v.operator, v.killed) for v in verdicts)
    lines += [
        "",
        "By operator: "
        + ", ".join(
            f"{op} {ops[(op, True)]}/{ops[(op, True)] + ops[(op, False)]}"
            for op in sorted({v.operator for v in verdicts})
        ),
    ]
    survivors = [v for v in verdicts if not v.killed]
    if survivors:
        lines += ["", "## Survivors", "", "| id | line | before | after | triage |", "|---|---|---|---|---|"]
        for v in survivors:
            why = triage.get(v.id, "**not triaged: a gap in the tests**")
            lines.append(
                f"| `{v.id}` | {v.line} | `{_cell_text(v.before)}` | `{_cell_text(v.after)}` | "
                f"{why.replace('|', '/')} |"
            )
    if summary.stale_triage:
        lines += [
            "",
            "Triage entries that name no current mutant (delete them): "
            + ", ".join(f"`{i}`" for i in summary.stale_triage),
        ]
    (unit.directory / REPORT_MD).write_text("\n".join(lines) + "\n")


def _cell_text(code: str) -> str:
    one = " ".join(code.split())
    return (one[:70] + "…" if len(one) > 71 else one).replace("|", "\\|").replace("`", "'")


def sample(mutants: list[AutoMutant], n: int, seed: int = 0) -> list[AutoMutant]:
    """A fixed sample: the same `n` mutants for the same unit source, whatever the machine."""
    if n >= len(mutants):
        return mutants
    picked = set(random.Random(seed).sample(range(len(mutants)), n))
    return [m for i, m in enumerate(mutants) if i in picked]


def _grade_extra(unit: Unit, path: Path) -> int:
    """Grade mutants written elsewhere (say, wrong answers by someone who has not read the
    tests) the way automatic ones are: killed when any test of the exercise loses points."""
    from graders.authoring.mutants import load_mutants_file

    extra = load_mutants_file(path)
    as_auto = [AutoMutant(m.name, m.cell, "extra", 0, m.why, "", m.source) for m in extra]
    verdicts = grade_automutants(unit, as_auto, use_cache=False, progress=lambda s: print(s, flush=True))
    caught = sum(v.killed for v in verdicts)
    print(f"{unit.name}: the tests catch {caught} of {len(verdicts)} mutants from {path}")
    for v in verdicts:
        print(f"  {'caught by ' + v.by if v.killed else 'MISSED'}: {v.id} ({v.before})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Automatic mutation testing of a unit's answer cells.")
    parser.add_argument("unit")
    parser.add_argument("--cells", nargs="*", help="only the mutants of these answer cells (no report)")
    parser.add_argument("--sample", type=int, help="only a fixed sample of N mutants (no report)")
    parser.add_argument("--fresh", action="store_true", help="ignore cached verdicts")
    parser.add_argument("--list", action="store_true", help="print the mutants, grade nothing")
    parser.add_argument(
        "--extra", type=Path, help="grade the mutants of this file (a MUTANTS list, as in mutants.py) instead"
    )
    args = parser.parse_args(argv)
    unit = get_unit(args.unit)
    if args.extra:
        return _grade_extra(unit, args.extra)
    mutants = mutate_unit(reference_cells(unit.text_path))
    all_ids = {m.id for m in mutants}
    partial = bool(args.cells) or args.sample is not None
    if args.cells:
        mutants = [m for m in mutants if m.cell in set(args.cells)]
    if args.sample is not None:
        mutants = sample(mutants, args.sample)
    if args.list:
        for m in mutants:
            print(f"{m.id}  line {m.line}: {_cell_text(m.before)}  ->  {_cell_text(m.after)}")
        return 0
    started = time.perf_counter()
    verdicts = grade_automutants(unit, mutants, fresh=args.fresh, progress=lambda s: print(s, flush=True))
    triage = load_triage(unit)
    summary = summarise(unit, verdicts, triage, all_ids)
    minutes = (time.perf_counter() - started) / 60
    print(
        f"{unit.name}: score {summary.score:.1%} (killed {summary.killed}, equivalent {summary.equivalent}, "
        f"survived {summary.survived} of {summary.mutants}) in {minutes:.1f} min"
    )
    for v in verdicts:
        if not v.killed and v.id not in triage:
            print(f"  survivor {v.id} line {v.line}: {_cell_text(v.before)}  ->  {_cell_text(v.after)}")
    if not partial:
        header = (
            f"Generated by `python -m graders.authoring.mutation_score {unit.name}`: "
            f"{summary.mutants} automatic mutants of the reference answers "
            "(`graders/authoring/automutate.py` lists the operators), each graded in the shared "
            f"mutant kernel; triage in `{TRIAGE}`."
        )
        write_report(unit, verdicts, summary, triage, header)
        print(f"wrote {unit.directory / REPORT_MD} and {REPORT_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
