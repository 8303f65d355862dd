"""A Chinese notebook grades exactly as the English one, whichever language the course was
built in (issue 28), through real nbgrader: the Chinese reference earns full marks in an
English course, the English reference in a Chinese course, and the Chinese release earns
0 on every graded cell, as the English release does."""

from __future__ import annotations

import json

import pytest

from graders.grading.grade import grade_submissions
from graders.grading.release import release_unit
from graders.grading.translation import catalog_path, translated
from graders.grading.units import get_unit

UNIT = get_unit("linear_algebra")

pytestmark = pytest.mark.skipif(
    not catalog_path(UNIT.directory, "zh").is_file(), reason="linear_algebra has no Chinese catalog"
)


def _scores(result) -> dict[str, float]:
    return {c.grade_id: c.score for c in result.cells}


@pytest.mark.xdist_group("translation")
def test_chinese_and_english_notebooks_grade_identically_in_either_course(tmp_path):
    zh_reference = tmp_path / "zh" / UNIT.notebook_path.name
    zh_reference.parent.mkdir()
    zh_reference.write_text(json.dumps(translated(UNIT.notebook(), UNIT.directory, "zh"), ensure_ascii=False))
    zh_release = release_unit(UNIT, tmp_path / "zh_release", "zh")
    text = zh_release.read_text()
    assert "还没写" in text and "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text

    in_english_course = grade_submissions(UNIT, {"zh_reference": zh_reference, "zh_release": zh_release})
    in_chinese_course = grade_submissions(UNIT, {"en_reference": UNIT.notebook_path}, lang="zh")

    full = {gid: float(pts) for gid, pts in UNIT.test_points().items()}
    for name, result in (
        ("the Chinese reference in the English course", in_english_course["zh_reference"]),
        ("the English reference in the Chinese course", in_chinese_course["en_reference"]),
    ):
        assert result.error is None and _scores(result) == full, f"{name}: {result}"
        assert not result.flags, f"{name} was flagged: {result.flags}"
    release = in_english_course["zh_release"]
    assert release.error is None and set(_scores(release)) == set(full)
    assert all(score == 0 for score in _scores(release).values()), _scores(release)
    assert any("还没写" in c.message for c in release.cells), [c.message for c in release.cells]
