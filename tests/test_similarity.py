"""Copy detection's fingerprints (`graders.grading.similarity`): fast, no nbgrader.

What `llmlabs grade` does with them is tests/grading/test_grade_similarity.py; the
measured error rates come from tests/data/similarity/calibrate.py (README "Grading a class").
"""

from __future__ import annotations

import json
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from graders.authoring.reference import reference_cells
from graders.grading import similarity as sim
from graders.grading.units import all_units, get_unit

DATA = Path(__file__).parent / "data" / "similarity"
sys.path.insert(0, str(DATA))

from calibrate import measure, rates  # noqa: E402
from disguise import disguise  # noqa: E402

LA = get_unit("linear_algebra")
REF, STUBS = sim.unit_reference_and_stubs(LA)

SOFTMAX = '''def softmax(x, axis=-1):
    """Softmax of x along `axis`."""
    shift = np.max(x, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)  # all -inf: shift by 0
    e = np.exp(x - shift)
    total = np.sum(e, axis=axis, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)
'''

SOFTMAX_RENAMED = """def softmax(logits, axis=-1):
    # subtract the max for stability
    top = np.max(logits,
                 axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)


    ex = np.exp(logits - (top))
    s = np.sum(ex, axis=axis, keepdims=True)   # row sums
    return np.divide(ex, s, out=np.zeros_like(ex), where=s > 0)
"""


def _texts(source: str) -> list[str]:
    return [t.text for t in sim.tokens(source)]


def test_tokens_ignore_names_layout_comments_and_docstrings_but_keep_the_api():
    assert _texts(SOFTMAX) == _texts(SOFTMAX_RENAMED)
    texts = _texts(SOFTMAX)
    assert "maximum" not in texts and "max" in texts and "isfinite" in texts  # attributes kept
    assert "np" in texts  # a name the cell only reads
    assert "shift" not in texts and "V" in texts  # a name it binds
    assert "keepdims=" in texts and "out=" in texts  # keyword arguments are API
    assert not any("Softmax" in t for t in texts)  # the docstring is gone
    # Another API call is another token: np.max vs np.amax differ.
    assert _texts(SOFTMAX.replace("np.max(", "np.amax(")) != texts


def test_a_broken_or_unfinished_cell_still_gives_tokens_and_never_raises():
    assert sim.tokens("def f(x:\n    return (x") != []
    assert sim.tokens("") == []
    assert sim.tokens('"""unterminated') == []
    sim.fingerprint("\x00\x01 ???")  # no exception
    # A hostile cell: nesting that ast.parse cannot take, and a huge one (read in part).
    assert sim.tokens("x = " + "(" * 5000 + "1" + ")" * 5000)
    assert len(sim.tokens("x = 1\n" * 10**6)) <= sim.MAX_CELL_CHARS


def test_renamed_and_reformatted_copy_scores_one_and_a_disguised_one_above_the_threshold():
    corpus = sim.CellCorpus(STUBS)
    assert corpus.score("softmax", SOFTMAX, SOFTMAX_RENAMED) == 1.0
    for gid, src in REF.items():
        for seed in (0, 1):
            copy = disguise(src, seed)
            assert copy != src
            assert corpus.score(gid, copy, src) >= sim.THRESHOLD, (gid, seed, copy)


def test_winnowing_keeps_one_fingerprint_in_every_window():
    hashes = [5, 3, 8, 3, 9, 1, 7, 7, 2]
    kept = sim.winnow(hashes, 4)
    for start in range(len(hashes) - 3):
        assert kept & set(range(start, start + 4)), start
    assert kept == {3, 5}  # the rightmost minimum of each window: 3 (twice), then 1
    assert sim.winnow([], 4) == set() and sim.winnow([4, 2], 4) == {1}


def test_independent_code_scores_low():
    corpus = sim.CellCorpus(STUBS)
    loops = """def pairwise_sq_dists(X, Y):
    out = np.zeros((X.shape[0], Y.shape[0]), dtype=X.dtype)
    for i in range(X.shape[0]):
        for j in range(Y.shape[0]):
            diff = X[i] - Y[j]
            out[i, j] = diff @ diff
    return out
"""
    assert corpus.score("dists", loops, REF["dists"]) < 0.3
    outer = """def pairwise_sq_dists(X, Y):
    a = (X * X).sum(axis=1)
    b = (Y * Y).sum(axis=1)
    return np.maximum(np.add.outer(a, b) - 2 * np.matmul(X, Y.T), 0)
"""
    assert corpus.score("dists", outer, REF["dists"]) < sim.THRESHOLD


def test_stubs_and_tiny_cells_are_never_compared():
    corpus = sim.CellCorpus(STUBS)
    for gid, stub in STUBS.items():
        assert len(corpus.fingerprint(gid, stub)) == 0, gid
        assert corpus.score(gid, stub, REF[gid]) == 0.0
    subs = {
        "ann": {gid: STUBS[gid] for gid in STUBS},
        "bob": {gid: STUBS[gid] for gid in STUBS},
        # the same one-liner, beyond the stub: too little of their own to mean anything
        "cat": {"scores": STUBS["scores"].replace("raise NotImplementedError", "return Q @ K.T #")},
        "dan": {"scores": STUBS["scores"].replace("raise NotImplementedError", "return Q @ K.T #")},
    }
    assert sim.find_pairs(subs, REF, STUBS) == []
    # The floor works on what is left beyond the stub, not on the cell's length.
    assert len(corpus.fingerprint("scores", subs["cat"]["scores"])) < sim.MIN_FINGERPRINTS


def test_reference_from_the_source_notebook_is_the_text_forms():
    for unit in (LA, get_unit("attention")):
        given = sim.answer_sources(unit.notebook())
        assert {g: sim.reference_source(s) for g, s in given.items()} == reference_cells(unit.text_path)


def test_find_pairs_names_the_cell_the_students_and_the_reference(tmp_path):
    honest = """def softmax(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    z[np.isnan(z)] = -np.inf
    p = np.exp(z)
    n = p.sum(axis=axis, keepdims=True)
    n[n == 0] = 1
    return p / n
"""
    subs = {
        "copier": {"softmax": disguise(REF["softmax"], 3)},
        "a<b>": {"pca": disguise(REF["pca"], 1)},
        "friend": {"pca": disguise(REF["pca"], 2)},
        "honest": {"softmax": honest, "pca": STUBS["pca"]},
    }
    pairs = sim.find_pairs(subs, REF, STUBS)
    found = {(p.grade_id, p.student, p.other) for p in pairs}
    assert ("softmax", "copier", "reference") in found
    assert ("pca", "a<b>", "friend") in found and ("pca", "a<b>", "reference") in found
    assert not any("honest" in (p.student, p.other) for p in pairs), pairs
    assert all(p.similarity >= sim.THRESHOLD and p.lines and p.other_lines for p in pairs)
    assert json.loads(json.dumps([p.to_json() for p in pairs]))[0]["similarity"] == pairs[0].similarity

    page = sim.write_report(tmp_path / "r" / "similarity.html", "linear_algebra", pairs, subs, REF)
    text = page.read_text()
    assert "a&lt;b&gt;" in text and "a<b>" not in text  # names are escaped

    class Check(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack: list[str] = []
            self.rows = 0

        def handle_starttag(self, tag, attrs):
            if tag not in ("meta", "br"):
                self.stack.append(tag)
            self.rows += tag == "tr"

        def handle_endtag(self, tag):
            assert self.stack.pop() == tag, tag

    check = Check()
    check.feed(text)
    assert check.stack == [] and check.rows == len(pairs) + 1
    empty = sim.write_report(tmp_path / "e.html", "linear_algebra", [], {}, REF).read_text()
    assert "No pair" in empty


@pytest.mark.parametrize("unit", [u.name for u in all_units()])
def test_every_answer_cell_has_a_stub_and_a_reference(unit):
    reference, stubs = sim.unit_reference_and_stubs(get_unit(unit))
    assert set(reference) == set(stubs)


@pytest.mark.slow  # 10-20 s: every unit's cells, mutants and alternatives
def test_calibration_error_rates_hold():
    """The rates README states, as a guard: a change to the normalisation or the threshold
    that loses disguised copies or flags more honest work fails here."""
    groups = measure()
    at = rates(groups, sim.THRESHOLD)
    flagged = {k: tuple(map(int, v.split("/"))) for k, v in at.items()}
    assert flagged["auto"][0] == flagged["auto"][1] > 400, at
    assert flagged["hand"][0] >= flagged["hand"][1] - 2, at
    assert flagged["stub"][0] == 0, at
    honest_flagged, honest = flagged["independent"]
    assert honest >= 50 and honest_flagged <= max(2, honest // 25), at
