"""Keep a unit's translation catalogs in step with its English text.

    python -m graders.authoring.translate --lang zh --update [UNIT ...]   # add new passages
    python -m graders.authoring.translate --lang zh --check [UNIT ...]    # the build check
    python -m graders.authoring.translate --lang zh --stats               # passages per unit

`--update` writes `curriculum/NN_unit/locale/<lang>.po`: one entry per passage
(`graders.grading.translation.passages`, plus the unit's title and summary), English as
`msgid`, the cells it occurs in as `#:` references. A passage whose English changed gets
a new, empty entry; the closest old translation is offered in it, marked fuzzy (as
gettext's msgmerge does), and the old entry is kept as obsolete (`#~`). `--check` fails
on every passage without a current translation (missing, empty or fuzzy) and names the
unit, cell and passage. Without UNIT: every unit that has a catalog for the language
(`--check`) or every unit (`--update`, `--stats`).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from graders.grading.translation import LANGUAGES, Passage, catalog_path, passages
from graders.grading.units import Unit, all_units, get_unit

FUZZY_CUTOFF = 0.8  # an old translation this close (difflib ratio) is offered, marked fuzzy


def unit_passages(unit: Unit) -> list[Passage]:
    """What a learner reads of `unit`: its title and summary, then its notebook's passages."""
    head = [Passage("unit.toml", "title", unit.title), Passage("unit.toml", "summary", unit.summary)]
    return head + passages(unit.notebook())


@dataclass
class Problem:
    unit: str
    passage: Passage
    why: str  # missing, untranslated or fuzzy

    def __str__(self) -> str:
        text = self.passage.text.replace("\n", " ")
        text = text if len(text) <= 70 else text[:67] + "..."
        return f"{self.unit}, {self.passage.cell} ({self.passage.kind}): {self.why}: {text!r}"


def check_unit(unit: Unit, lang: str, path: Path | None = None) -> list[Problem]:
    """Every passage of `unit` without a current translation in its catalog (or `path`)."""
    import polib

    path = path or catalog_path(unit.directory, lang)
    if not path.is_file():
        return [Problem(unit.name, Passage("locale", "catalog", str(path)), "no catalog")]
    entries = {e.msgid: e for e in polib.pofile(str(path)) if not e.obsolete}
    problems = []
    for p in unit_passages(unit):
        entry = entries.get(p.text)
        if entry is None:
            problems.append(Problem(unit.name, p, "missing"))
        elif "fuzzy" in entry.flags:
            problems.append(Problem(unit.name, p, "fuzzy (the English changed)"))
        elif not entry.msgstr.strip():
            problems.append(Problem(unit.name, p, "untranslated"))
    return problems


def update_unit(unit: Unit, lang: str, path: Path | None = None) -> dict[str, int]:
    """Bring the unit's catalog (or `path`) in step; return counts (new, fuzzy, obsolete, total)."""
    import polib

    path = path or catalog_path(unit.directory, lang)
    if path.is_file():
        po = polib.pofile(str(path), wrapwidth=0)
    else:
        po = polib.POFile(wrapwidth=0)
        po.metadata = {
            "Project-Id-Version": f"llm-labs {unit.name}",
            "Language": lang,
            "MIME-Version": "1.0",
            "Content-Type": "text/plain; charset=UTF-8",
            "Content-Transfer-Encoding": "8bit",
        }
    current = {e.msgid: e for e in po if not e.obsolete}
    old = {e.msgid: e for e in po if e.obsolete}
    wanted: dict[str, list[Passage]] = {}
    for p in unit_passages(unit):
        wanted.setdefault(p.text, []).append(p)
    counts = {"new": 0, "fuzzy": 0, "obsolete": 0, "total": len(wanted)}
    for text, where in wanted.items():
        refs = [(w.cell.replace(" ", "_"), w.kind) for w in where]
        if text in current:
            current[text].occurrences = refs
            continue
        entry = polib.POEntry(msgid=text, msgstr="", occurrences=refs)
        if text in old:  # translated before, removed, now back
            entry.msgstr = old.pop(text).msgstr
        else:
            close = difflib.get_close_matches(
                text, [t for t, e in (current | old).items() if e.msgstr and t not in wanted], 1, FUZZY_CUTOFF
            )
            if close:
                entry.msgstr = (current.get(close[0]) or old[close[0]]).msgstr
                entry.flags.append("fuzzy")
                counts["fuzzy"] += 1
        po.append(entry)
        counts["new"] += 1
    for text, entry in current.items():
        if text not in wanted:
            entry.obsolete = True
            counts["obsolete"] += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    po.save(str(path))
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("units", nargs="*", help="unit names (default: see above)")
    parser.add_argument("--lang", required=True, choices=sorted(set(LANGUAGES) - {"en"}))
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--update", action="store_true", help="add new passages, mark stale ones")
    mode.add_argument("--check", action="store_true", help="fail on any passage without a translation")
    mode.add_argument("--stats", action="store_true", help="translated passages per unit")
    args = parser.parse_args(argv)
    chosen = [get_unit(n) for n in args.units] if args.units else list(all_units())
    if args.update:
        for unit in chosen:
            print(f"{unit.name}: {update_unit(unit, args.lang)}")
        return 0
    if args.stats:
        for unit in chosen:
            total = len({p.text for p in unit_passages(unit)})
            missing = len({p.passage.text for p in check_unit(unit, args.lang) if p.why != "no catalog"})
            has = catalog_path(unit.directory, args.lang).is_file()
            print(f"{unit.name}: {total - missing if has else 0}/{total} passages translated")
        return 0
    if not args.units:
        chosen = [u for u in chosen if catalog_path(u.directory, args.lang).is_file()]
    problems = [p for unit in chosen for p in check_unit(unit, args.lang)]
    for problem in problems:
        print(problem)
    print(f"{len(problems)} passage(s) without a current {LANGUAGES[args.lang]} translation")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
