"""A learner in JupyterLab, step for step as the README's student quick-start says:
`llmlabs start UNIT`, `jupyter lab UNIT/`, run the notebook cell by cell (every visible test
fails with the stub's message), fill in the answers, restart and run all (no error, no
stderr, the plots render, each visible test says it passed), then press Validate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from graders import cells
from graders.grading.units import get_unit
from graders.notebook.kernel import _checks_something
from tests.browser import pages
from tests.helpers import run_cli

pytestmark = pytest.mark.xdist_group("browser")

STUB_MESSAGE = "not written yet: replace this line with your code"
SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*(\n|$)", re.M)
RUN_ALL_TIMEOUT = 240_000  # ms; attention runs for ~30 s on 2 busy cores
VALIDATE_TIMEOUT = 240_000  # ms; Validate runs the whole notebook again, server side


def visible_tests(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if cells.is_test(c) and _checks_something(cells.source(c))]


def outputs(cell: dict, kind: str) -> list[dict]:
    return [o for o in cell.get("outputs", []) if o["output_type"] == kind]


def stream(cell: dict, name: str) -> str:
    return "".join("".join(o["text"]) for o in outputs(cell, "stream") if o["name"] == name)


def fill_in_reference_answers(path: Path, unit) -> None:
    """What the learner types: each answer cell of the released notebook gets the reference
    solution (without nbgrader's markers); nothing else changes."""
    nb = pages.read_notebook(path)
    reference = {cells.grade_id(c): cells.source(c) for c in unit.notebook()["cells"] if cells.is_answer(c)}
    for cell in nb["cells"]:
        gid = cells.grade_id(cell)
        if cells.is_answer(cell):
            cell["source"] = SOLUTION_MARKERS.sub("", reference[gid])
    path.write_text(json.dumps(nb, indent=1))


def check_stubs_fail(nb: dict) -> None:
    setup = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert setup.get("execution_count"), "the setup cell did not run"
    assert not outputs(setup, "error") and not stream(setup, "stderr"), setup["outputs"]
    tests = visible_tests(nb)
    assert tests, "the released notebook has no visible test"
    for cell in tests:
        errors = outputs(cell, "error")
        assert errors, f"{cells.grade_id(cell)} passed on the released notebook: {cell.get('outputs')}"
        name, message = errors[0]["ename"], errors[0]["evalue"]
        assert name == "NotImplementedError" and STUB_MESSAGE in message, (
            f"{cells.grade_id(cell)} should fail with the stub's message, got {name}: {message}"
        )
        assert "passed" not in stream(cell, "stdout")


def check_clean_run(nb: dict) -> int:
    """No error and no stderr anywhere, a plot for each plt.show(), and one line on stdout
    for each visible test. Returns the number of plots."""
    plots = 0
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        where = cells.grade_id(cell) or f"code cell {i}"
        assert not outputs(cell, "error"), f"{where} raised: {outputs(cell, 'error')[0]['evalue']}"
        assert not stream(cell, "stderr"), f"{where} wrote to stderr: {stream(cell, 'stderr')[:300]}"
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        assert len(images) == cells.source(cell).count("plt.show()"), f"{where}: {len(images)} plots"
        plots += len(images)
    visible = visible_tests(nb)
    for cell in visible:
        line = f"✓ {cells.grade_id(cell)} passed"
        assert stream(cell, "stdout").strip().splitlines()[-1:] == [line], (
            f"expected {line!r} as the last line on stdout, got {stream(cell, 'stdout')!r}"
        )
    for cell in (c for c in nb["cells"] if cells.is_test(c) and c not in visible):
        assert not stream(cell, "stdout"), f"{cells.grade_id(cell)} has only hidden tests, yet printed"
    return plots


@pytest.mark.parametrize("unit_name", ["linear_algebra", "attention"])
def test_student_works_through_a_unit(unit_name, labs, page, tmp_path):
    unit = get_unit(unit_name)
    work = tmp_path / "work"
    work.mkdir()
    proc = run_cli("start", unit.name, cwd=work)
    assert proc.returncode == 0, proc.stderr
    path = work / unit.name / unit.notebook_path.name

    lab = labs(Path(unit.name), cwd=work)
    pages.open_lab(page, lab)
    pages.open_notebook(page, path.name)
    page.shots.take("opened")

    # Cell by cell: the setup cell runs, every visible test fails with the stub's message.
    pages.run_cells_one_by_one(page)
    pages.save(page)
    check_stubs_fail(pages.read_notebook(path))
    page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    ).first.scroll_into_view_if_needed()
    page.shots.take("stub-fails")

    # The answers filled in, then Restart and Run All.
    fill_in_reference_answers(path, unit)
    pages.menu(page, "File", "Reload Notebook from Disk")
    page.wait_for_function(
        f"stub => !{pages.PANEL}.content.widgets.some(c => c.model.sharedModel.getSource().includes(stub))",
        arg="raise NotImplementedError",
    )
    page.get_by_title("Restart the kernel and run all cells").click()
    pages.accept_dialog(page)
    pages.wait_all_ran(page, RUN_ALL_TIMEOUT)
    images = page.locator(".jp-OutputArea-output img")
    pages.save(page)
    plots = check_clean_run(pages.read_notebook(path))
    assert plots >= 1, f"{unit.name} shows no plot"
    assert images.count() == plots, f"{plots} plots in the notebook, {images.count()} images on the page"
    assert images.evaluate_all("imgs => imgs.every(img => img.complete && img.naturalWidth > 100)")
    page.locator(".jp-OutputArea-output", has_text="✓ test_").first.scroll_into_view_if_needed()
    page.shots.take("test-passes")
    images.first.scroll_into_view_if_needed()
    page.shots.take("plot")

    # Validate (nbgrader's button): runs the notebook again on the server.
    page.get_by_role("button", name="Validate").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=VALIDATE_TIMEOUT)
    page.shots.take("validated")
    assert "Success! Your notebook passes all the tests." in dialog.inner_text(), dialog.inner_text()
