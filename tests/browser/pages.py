"""What a learner or instructor does in JupyterLab, as Playwright steps.

Actions go through the page (menus, toolbar buttons, keys). Waiting reads the app's state
through `window.jupyterapp` (exposed by tests.browser.lab): a cell's execution state and
count, the kernel's status, the document's dirty flag. The page does not hold every cell
(JupyterLab renders the ones near the viewport), so results are read from the saved
.ipynb instead.
"""

from __future__ import annotations

import json
from pathlib import Path

PANEL = "window.jupyterapp.shell.currentWidget"
KERNEL_START_TIMEOUT = 120_000  # ms: torch units import for ~10 s on a busy machine


def open_lab(page, lab) -> None:
    page.goto(lab.page_url("lab"))
    page.locator(".jp-LabShell").wait_for(timeout=60_000)


def open_notebook(page, name: str) -> None:
    """Double-click the notebook in the file browser; wait for its kernel to be idle."""
    page.locator(".jp-DirListing-item", has_text=name).dblclick()
    page.locator(".jp-NotebookPanel").wait_for(timeout=60_000)
    wait_kernel_idle(page, KERNEL_START_TIMEOUT)


def wait_kernel_idle(page, timeout: float = 60_000) -> None:
    page.wait_for_function(
        f"""() => {{
            const w = {PANEL};
            const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return k && k.status === 'idle';
        }}""",
        timeout=timeout,
    )


def cells(page) -> list[dict]:
    """Type, execution count and source of every cell of the open notebook."""
    return page.evaluate(
        f"""() => {PANEL}.content.widgets.map(c => ({{
            type: c.model.type,
            count: c.model.type === 'code' ? c.model.executionCount : null,
            source: c.model.sharedModel.getSource(),
        }}))"""
    )


def wait_cell_ran(page, index: int, previous_count, timeout: float) -> None:
    page.wait_for_function(
        f"""([i, before]) => {{
            const m = {PANEL}.content.widgets[i].model;
            return m.executionState === 'idle' && m.executionCount !== null && m.executionCount !== before;
        }}""",
        arg=[index, previous_count],
        timeout=timeout,
    )


def run_cells_one_by_one(page, cell_timeout: float = 120_000) -> None:
    """Shift+Enter through the whole notebook, as a learner does, waiting for each code cell
    to finish before the next (an error would cancel cells queued behind it)."""
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.keyboard.press("Escape")  # command mode
    for i, cell in enumerate(cells(page)):
        active = page.evaluate(f"() => {PANEL}.content.activeCellIndex")
        assert active == i, f"expected cell {i} to be active, got {active}"
        page.keyboard.press("Shift+Enter")
        if cell["type"] == "code" and cell["source"].strip():
            wait_cell_ran(page, i, cell["count"], cell_timeout)


def wait_all_ran(page, timeout: float) -> None:
    """Every non-empty code cell has run (after Run All) and the kernel is idle."""
    page.wait_for_function(
        f"""() => {{
            const w = {PANEL};
            const k = w.sessionContext.session && w.sessionContext.session.kernel;
            return k && k.status === 'idle' && w.content.widgets.every(c =>
                c.model.type !== 'code' || !c.model.sharedModel.getSource().trim() ||
                (c.model.executionState === 'idle' && c.model.executionCount !== null));
        }}""",
        timeout=timeout,
        polling=250,
    )


def save(page) -> None:
    page.keyboard.press("Control+s")
    page.wait_for_function(f"() => !{PANEL}.context.model.dirty")


def menu(page, top: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=top).first.click()
    page.get_by_role("menuitem", name=item, exact=True).click()


def accept_dialog(page, timeout: float = 30_000) -> None:
    button = page.locator(".jp-Dialog .jp-mod-accept")
    button.wait_for(timeout=timeout)
    button.click()


def read_notebook(path: Path) -> dict:
    return json.loads(path.read_text())
