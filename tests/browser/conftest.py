"""Fixtures of the browser tests: one headless Chromium per worker, a fresh page per
test, screenshots of each step and of a failure in a folder the test prints."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.browser.lab import CHROMIUM, CHROMIUM_ARGS, jupyter_lab

FAILED = pytest.StashKey[bool]()


def _skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def browser():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


class Shots:
    """Numbered screenshots of the steps of one test, in one folder, and when each was taken."""

    def __init__(self, page, folder: Path):
        self.page, self.folder, self.count = page, folder, 0
        self.started, self.times = time.perf_counter(), []

    def take(self, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        self.times.append(f"{name} {time.perf_counter() - self.started:.1f} s")
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def labs(tmp_path):
    """`labs(DIRECTORY, cwd=...)` starts `jupyter lab DIRECTORY`; each is stopped after the
    test, and after `page` has taken its failure screenshot (it depends on this fixture)."""
    with ExitStack() as stack:
        count = 0

        def start(directory: Path, *, cwd: Path):
            nonlocal count
            count += 1
            return stack.enter_context(jupyter_lab(directory, tmp_path / f"lab-{count}", cwd=cwd))

        yield start


@pytest.fixture
def page(browser, labs, request, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    folder = tmp_path / "screenshots"
    folder.mkdir()
    page.shots = Shots(page, folder)
    yield page
    if request.node.stash.get(FAILED, False):
        try:
            page.shots.take("failure")
        finally:
            print(f"screenshots of {request.node.name}: {folder}")
    print(f"{request.node.name} steps: {', '.join(page.shots.times)}")
    context.close()
