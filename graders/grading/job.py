"""Run `graders.grading.nbgrader_child` and read its events: the one way llmlabs starts
nbgrader (grading, releasing, benchmarks).

The child prints one JSON object per line (`generated`, `generate_failed`, `graded`);
each is handed to `on_event` as it arrives, so callers can show progress. A time limit
covers the whole job: past it the child is killed and the job says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graders.errors import GradingError

Event = dict[str, Any]


@dataclass
class JobOutcome:
    events: list[Event] = field(default_factory=list)
    returncode: int = 0
    stderr_tail: str = ""  # the last line the child wrote to stderr, or why it was stopped

    def graded(self) -> dict[str, Event]:
        return {e["student"]: e for e in self.events if e.get("event") == "graded"}


def run_job(
    course_dir: Path,
    unit_name: str,
    students: Sequence[str] = (),
    *,
    timeout: float,
    on_event: Callable[[Event], None] | None = None,
    env: dict[str, str] | None = None,
) -> JobOutcome:
    """generate_assignment, then autograde each student; raise GradingError if the
    assignment cannot be generated."""
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("PYTHONWARNINGS", "ignore")
    cmd = [sys.executable, "-m", "graders.grading.nbgrader_child", str(course_dir), unit_name, *students]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env, cwd=course_dir
    )
    outcome = JobOutcome()
    stderr_chunks: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    err_stream = proc.stderr
    reader = threading.Thread(target=lambda: stderr_chunks.append(err_stream.read()), daemon=True)
    reader.start()
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, stop)
    timer.start()
    try:
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            outcome.events.append(event)
            if event.get("event") == "generate_failed":
                raise GradingError(
                    f"nbgrader generate_assignment failed for {unit_name}: {event.get('error')}"
                )
            if on_event:
                on_event(event)
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
    outcome.returncode = proc.returncode
    if timed_out.is_set():
        outcome.stderr_tail = f"killed after {timeout:.0f} s (time limit for the whole grading run)"
    elif proc.returncode != 0:
        lines = "".join(stderr_chunks).strip().splitlines()
        outcome.stderr_tail = lines[-1] if lines else "(no output)"
    return outcome
