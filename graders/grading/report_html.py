"""The class report as one self-contained HTML page: plots drawn as inline SVG here (no
script, no network, no plotting library), tables for the rest. The data comes from
`graders.grading.report.build_report`."""

from __future__ import annotations

from html import escape

from graders.grading.report import NOT_RECORDED, ClassReport, histogram

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 80em; color: #222 }
h1 { margin-bottom: .2em } .meta { color: #555 }
table { border-collapse: collapse; margin: 1em 0 }
td, th { border: 1px solid #bbb; padding: .3em .6em; text-align: left; vertical-align: top }
th { background: #eee } td.num { text-align: right; white-space: nowrap }
.cards { display: flex; gap: 1em; flex-wrap: wrap }
.card { border: 1px solid #ccc; border-radius: 6px; padding: .5em 1em }
.card b { display: block; font-size: 140% }
.plots { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start }
figure { margin: 0 } figcaption { color: #555; font-size: 90%; max-width: 30em }
code { background: #f4f4f4; padding: 0 .2em } .none { color: #888 }
.bad { color: #a40000 }
"""

_FULL = "#3b7d3b"
_BAR = "#4a78b5"
_LOW = "#c0504d"


def _num(x: float) -> str:
    return f"{x:g}"


def histogram_svg(percents: list[float], bins: int = 10) -> str:
    """Score distribution: one bar per range of the percentage, then one for full marks."""
    counts = histogram(percents, bins)
    w, h, left, bottom, top = 480, 240, 36, 40, 16
    plot_w, plot_h = w - left - 10, h - bottom - top
    most = max(counts) or 1
    bar_w = plot_w / len(counts)
    parts = [
        f'<svg class="plot" id="histogram" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="score distribution">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>',
    ]
    for i, n in enumerate(counts):
        bh = plot_h * n / most
        x, y = left + i * bar_w + 2, top + plot_h - bh
        full = i == bins
        lo, hi = i * 100 // bins, (i + 1) * 100 // bins
        label = "full marks" if full else f"{lo}% to under {hi}%"
        if n:
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w - 4:.1f}" height="{bh:.1f}" '
                f'fill="{_FULL if full else _BAR}"><title>{label}: {n} submission(s)</title></rect>'
            )
            parts.append(
                f'<text x="{x + (bar_w - 4) / 2:.1f}" y="{y - 3:.1f}" font-size="11" '
                f'text-anchor="middle">{n}</text>'
            )
        parts.append(
            f'<text x="{left + i * bar_w + bar_w / 2:.1f}" y="{top + plot_h + 14}" font-size="9" '
            f'text-anchor="middle">{"100" if full else f"{lo}-"}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{h - 6}" font-size="11" text-anchor="middle">'
        "score, % of the points (ranges of 10%, then full marks)</text>"
    )
    parts.append(
        f'<text x="12" y="{top + plot_h / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + plot_h / 2})">submissions</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def pass_rate_svg(report: ClassReport) -> str:
    """Per test cell: the share of submissions with its full points, hardest first."""
    tests = report.tests
    row_h, label_w, bar_max, right = 20, 210, 300, 90
    w = label_w + bar_max + right
    h = 20 + row_h * max(1, len(tests)) + 24
    parts = [
        f'<svg class="plot" id="pass-rates" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="pass rate per test">'
    ]
    for i, t in enumerate(tests):
        y = 10 + i * row_h
        bw = max(1.0, bar_max * t.pass_rate)
        colour = _LOW if t.pass_rate < 0.5 else _BAR if t.pass_rate < 1 else _FULL
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" font-size="12" text-anchor="end">'
            f"{escape(t.grade_id)}</text>"
        )
        parts.append(
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{bw:.1f}" height="{row_h - 6}" '
            f'fill="{colour}"><title>{escape(t.grade_id)}: {t.passed} of {t.total} passed</title></rect>'
        )
        parts.append(
            f'<text x="{label_w + bar_max + 6}" y="{y + 14}" font-size="12">'
            f"{t.pass_rate:.0%} ({t.passed}/{t.total})</text>"
        )
    axis_y = 10 + row_h * max(1, len(tests)) + 2
    parts.append(f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + bar_max}" y2="{axis_y}" stroke="#444"/>')
    for frac in (0, 0.5, 1):
        x = label_w + bar_max * frac
        parts.append(f'<text x="{x}" y="{axis_y + 14}" font-size="10" text-anchor="middle">{frac:.0%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _cards(report: ClassReport) -> str:
    s = report.summary()
    items = [
        ("submissions", s["submissions"]),
        ("mean score", f"{s['mean_percent']:g}%"),
        ("median score", f"{s['median_percent']:g}%"),
        ("full marks", s["full_marks"]),
        ("hit a limit", s["hit_a_limit"]),
        ("tampering flags", s["flagged"]),
        ("similar answers", s["similar"]),
        ("need a manual grade", s["need_manual_grade"]),
        ("not run", s["not_run"]),
    ]
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{escape(str(v))}</b>{escape(k)}</div>' for k, v in items)
        + "</div>"
    )


def _failures(report: ClassReport) -> str:
    out = []
    for t in report.tests:
        if not t.groups:
            continue
        out.append(
            f'<h3 id="fail-{escape(t.grade_id)}"><code>{escape(t.grade_id)}</code>: '
            f"{t.failed} of {t.total} lost points ({_num(t.max_score)} pt)</h3>"
        )
        rows = "".join(
            f'<tr><td class="num">{g.count}</td><td><code>{escape(g.line)}</code>'
            + (
                f' <span class="none">({g.variants} variants: numbers differ)</span>'
                if g.variants > 1
                else ""
            )
            + f"</td><td>{escape(', '.join(g.students))}</td></tr>"
            for g in t.groups
        )
        out.append(
            f"<table class='failures'><tr><th>count</th><th>first line of the failure</th>"
            f"<th>students</th></tr>{rows}</table>"
        )
    return "".join(out) or "<p>No test cell lost points.</p>"


def _students(report: ClassReport) -> str:
    head = (
        "<tr><th>student</th><th>score</th><th>grading time</th><th>status</th><th>limits hit</th>"
        "<th>tampering flags</th><th>similar answer cells</th><th>needs a manual grade</th></tr>"
    )
    rows = []
    for s in sorted(report.students, key=lambda r: (r.percent, r.student)):
        seconds = f"{s.seconds:.1f} s" if s.seconds is not None else NOT_RECORDED
        if s.time_source == "cells":
            seconds += " (cells)"
        status = escape(s.status) + (f": {escape(s.reason)}" if s.reason else "")
        if s.flags_source:
            flags = "<br>".join(map(escape, s.flags)) or "-"
            if s.flags_source == "audit":
                flags += '<br><span class="none">(kernel guard: not recorded)</span>'
        else:
            flags = f'<span class="none">{NOT_RECORDED}</span>'
        similar = "<br>".join(map(escape, s.similar[:3])) or "-"
        if len(s.similar) > 3:
            similar += f"<br>and {len(s.similar) - 3} other student(s)"
        manual = f"{len(s.manual)} cell(s)" if s.manual else "-"
        limits = '<span class="bad">' + "<br>".join(map(escape, s.limits)) + "</span>" if s.limits else "-"
        rows.append(
            f"<tr><td>{escape(s.student)}</td><td class='num'>{_num(s.score)}/{_num(s.max_score)}</td>"
            f"<td class='num'>{seconds}</td><td>{status}</td><td>{limits}</td><td>{flags}</td>"
            f"<td>{similar}</td><td>{manual}</td></tr>"
        )
    return f"<table class='students'>{head}{''.join(rows)}</table>"


def _manual(report: ClassReport) -> str:
    parts = []
    if report.manual_cells:
        parts.append(
            "<p>Cells graded by hand in this unit: "
            + ", ".join(f"<code>{escape(c)}</code>" for c in report.manual_cells)
            + ".</p>"
        )
    waiting = [s for s in report.students if s.manual]
    if not waiting:
        return "".join(parts) + "<p>No grade waits for a manual grade.</p>"
    rows = "".join(
        f"<tr><td>{escape(s.student)}</td><td class='num'>{len(s.manual)}</td>"
        f"<td>{escape(', '.join(s.manual))}</td></tr>"
        for s in waiting
    )
    parts.append(
        "<p>Grades nbgrader flagged for a manual grade (formgrader's Manual Grading page): "
        "a submission that could not be graded gets zero on every cell, flagged.</p>"
        f"<table><tr><th>student</th><th>cells</th><th>grade ids</th></tr>{rows}</table>"
    )
    return "".join(parts)


def render(report: ClassReport, similarity_href: str = "") -> str:
    """The page; `similarity_href`: the link to copy detection's page from where this one is."""
    s = report.summary()
    sources = (
        "the gradebook, the autograded notebooks and <code>llmlabs grade</code>'s records"
        if report.ledger
        else "the gradebook and the autograded notebooks (no <code>llmlabs grade</code> records: "
        "grading times are the cells' own, kernel-guard flags and the reasons for a zero are "
        f"{NOT_RECORDED})"
    )
    not_run = (
        f", of the {s['submissions'] - s['not_run']} submission(s) that ran; not run (no autograded "
        f"notebook): {escape(', '.join(report.not_run))}"
        if report.not_run
        else ""
    )
    copy_note = (
        f"Copy detection: answer cells at least {report.similarity_threshold:.0%} similar to the "
        "reference or another submission (nothing is scored down for it)."
    )
    if report.similarity_page and similarity_href:
        copy_note += (
            f' Side by side: <a href="{escape(similarity_href)}">{escape(report.similarity_page)}</a>.'
        )
    if report.similarity_error:
        copy_note += f' <span class="bad">{escape(report.similarity_error)}</span>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{escape(report.unit)}: class report</title><style>{_CSS}</style></head><body>
<h1>{escape(report.unit)}: class report</h1>
<p class="meta">Course {escape(report.course)}; gradebook <code>{escape(report.gradebook)}</code>;
made {escape(report.generated)} from {sources}.</p>
{_cards(report)}
<div class="plots">
<figure>{histogram_svg(report.scores)}<figcaption>Score distribution of {s["submissions"]}
submission(s) (green: full marks).</figcaption></figure>
<figure>{pass_rate_svg(report)}<figcaption>Pass rate per test cell (full points), hardest
first{not_run}.</figcaption></figure>
</div>
<h2>Why tests failed</h2>
<p>For each test cell that lost points, the first line of each failure (the line
<code>llmlabs check</code> prints), grouped when lines differ only in their numbers, most common
first.</p>
{_failures(report)}
<h2>Submissions</h2>
<p>Lowest score first. Grading time: nbgrader's autograde of the submission as
<code>llmlabs grade</code> timed it, else "(cells)": the first cell's start to the last
cell's end. {copy_note}</p>
{_students(report)}
<h2>Manual grading</h2>
{_manual(report)}
</body></html>
"""
