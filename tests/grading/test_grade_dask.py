"""`llmlabs grade --scheduler`: the same work sent to a running Dask cluster, here a real
`dask scheduler` and two `dask worker` processes on loopback, started and stopped by the
test. Only the coordinator writes the gradebook."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graders import cells
from graders.grading.units import get_unit
from tests.helpers import gradebook_rows, make_course, run_cli

UNIT = get_unit("linear_algebra")
DASK = Path(sys.executable).parent / "dask"


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(DASK), *args], stdout=log.open("w"), stderr=subprocess.STDOUT)


@pytest.mark.xdist_group("grade-batch")
def test_grading_on_a_dask_cluster_over_loopback(tmp_path):
    blank = UNIT.notebook()
    cells.set_source(blank, UNIT.answer_ids()[0], "# YOUR CODE HERE\nraise NotImplementedError()")
    course = make_course(tmp_path / "course", UNIT, {"ada": UNIT.notebook_path, "ben": blank})
    info = tmp_path / "scheduler.json"
    procs = [
        _start(
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(info),
            ],
            tmp_path / "scheduler.log",
        )
    ]
    try:
        deadline = time.time() + 60
        while not info.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert info.exists(), (tmp_path / "scheduler.log").read_text()
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in range(2):
            procs.append(
                _start(
                    ["worker", address, "--nthreads", "1", "--no-dashboard", "--memory-limit", "0"],
                    tmp_path / f"worker{i}.log",
                )
            )
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=120)
        proc = run_cli("grade", UNIT.name, "--course", course, "--scheduler", address, "--json")
        assert proc.returncode == 0, proc.stderr + (tmp_path / "worker0.log").read_text()[-2000:]
        report = json.loads(proc.stdout)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    assert report["workers"] == 2, report["workers"]
    scores = {r["student"]: r["score"] for r in report["rows"]}
    assert scores == {"ada": UNIT.points, "ben": scores["ben"]} and scores["ben"] < UNIT.points
    rows = gradebook_rows(course, UNIT.name)
    assert set(rows) == {"ada", "ben"}
    assert (course / "autograded" / "ben" / UNIT.name / UNIT.notebook_path.name).is_file()
