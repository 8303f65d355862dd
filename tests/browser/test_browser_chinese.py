"""A learner of the Chinese edition in a Chinese JupyterLab, as the README's "The Chinese
edition" says: `llmlabs start UNIT --lang zh`, `jupyter lab UNIT/` with the language pack
`jupyterlab-language-pack-zh-cn` installed (a dev dependency), Settings → Language →
中文 (简体) (the page reloads with JupyterLab's own menus in Chinese), open the notebook
(its text is Chinese), fill in the answers, restart and run all (no error), then Validate.

The English UI stays English by default (test_browser_student.py runs with the pack
installed): the choice is a user setting, written to this server's own settings directory.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from graders import cells
from graders.grading.translation import translated
from graders.grading.units import get_unit
from tests.browser import pages
from tests.browser.test_browser_student import (
    RUN_ALL_TIMEOUT,
    SOLUTION_MARKERS,
    VALIDATE_TIMEOUT,
    check_clean_run,
)
from tests.helpers import run_cli

pytestmark = pytest.mark.xdist_group("browser")

LANGUAGE_COMMAND = "jupyterlab-translation:zh_CN"  # Settings → Language → 中文 (简体, 中国)
TITLE = "面向 LLM 工程师的线性代数"


def fill_in_chinese_reference_answers(path: Path, unit) -> None:
    """Each answer cell of the Chinese release gets the Chinese reference solution (the
    English code with its docstrings and comments translated), without nbgrader's markers."""
    reference = translated(unit.notebook(), unit.directory, "zh")
    answers = {cells.grade_id(c): cells.source(c) for c in reference["cells"] if cells.is_answer(c)}
    nb = pages.read_notebook(path)
    for cell in nb["cells"]:
        if cells.is_answer(cell):
            cell["source"] = SOLUTION_MARKERS.sub("", answers[cells.grade_id(cell)])
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False))


def menu_bar(page) -> list[str]:
    return page.locator(".lm-MenuBar-itemLabel").all_inner_texts()


def choose_chinese(page) -> str:
    """Settings → Language → Chinese, then "Change and reload"; returns the item's label."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Language").first.hover()
    item = page.locator(f".lm-Menu-item[data-command='{LANGUAGE_COMMAND}']")
    label = item.inner_text().strip()
    item.click()
    pages.accept_dialog(page)  # "Change interface language?" → "Change and reload"
    page.locator(".lm-MenuBar-itemLabel", has_text="文件").wait_for(timeout=60_000)
    page.locator(".jp-LabShell").wait_for(timeout=60_000)
    return label


def test_chinese_release_in_a_chinese_jupyterlab(labs, page, tmp_path):
    unit = get_unit("linear_algebra")
    work = tmp_path / "work"
    work.mkdir()
    proc = run_cli("start", unit.name, "--lang", "zh", cwd=work)
    assert proc.returncode == 0, proc.stderr
    path = work / unit.name / unit.notebook_path.name
    assert pages.read_notebook(path)["metadata"]["llmlabs_language"] == "zh"

    lab = labs(Path(unit.name), cwd=work)
    pages.open_lab(page, lab)
    assert menu_bar(page)[:2] == ["File", "Edit"], "JupyterLab should start in English by default"

    # Settings → Language → 中文 (简体): the user setting the README describes.
    label = choose_chinese(page)
    assert "中文 (简体" in label, label
    bar = menu_bar(page)
    assert {"文件", "编辑", "运行", "内核", "设置", "帮助"} <= set(bar), bar
    written = (tmp_path / "lab-1" / "settings" / "@jupyterlab" / "translation-extension").glob("*")
    assert any(re.search(r'"locale":\s*"zh_CN"', p.read_text()) for p in written), "the choice was not saved"

    # The Chinese notebook, answered.
    fill_in_chinese_reference_answers(path, unit)
    pages.open_notebook(page, path.name)
    heading = page.locator(".jp-MarkdownOutput h1", has_text=TITLE)
    heading.wait_for()
    assert "单元 01" in heading.inner_text()
    page.shots.take("opened")

    # Restart and Run All (the toolbar's 重启内核并运行所有单元格): no error, every visible test passes.
    run_all = page.locator("jp-button[data-command='notebook:restart-run-all']")
    assert run_all.get_attribute("title") == "重启内核并运行所有单元格"
    run_all.click()
    pages.accept_dialog(page)
    pages.wait_all_ran(page, RUN_ALL_TIMEOUT)
    pages.save(page)
    assert check_clean_run(pages.read_notebook(path)) >= 1, "the unit shows no plot"
    page.locator(".jp-OutputArea-output", has_text="✓ test_").first.scroll_into_view_if_needed()
    page.shots.take("run-all")

    # Validate: nbgrader's toolbar button (its extension has no Chinese catalog: "Validate").
    page.locator("jp-button.validate-button").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=VALIDATE_TIMEOUT)
    page.shots.take("validated")
    assert "Success! Your notebook passes all the tests." in dialog.inner_text(), dialog.inner_text()
    assert "文件" in menu_bar(page), "the menus are still in Chinese"
