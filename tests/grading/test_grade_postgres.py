"""`llmlabs grade` with the gradebook on PostgreSQL (`c.CourseDirectory.db_url`), against a
real server this test starts from Debian's `postgresql` package (initdb and pg_ctl in a
temporary folder, as an unprivileged user) and stops. Skipped, with the reason, where
that cannot run."""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from graders import cells
from graders.grading.units import get_unit
from tests.helpers import gradebook_rows, make_course, nbgrader, run_cli

UNIT = get_unit("linear_algebra")


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql)")
    # initdb refuses to run as root: as root, run the server as `nobody`.
    prefix: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if not runuser:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
        prefix = [runuser, "-u", "nobody", "--"]
    base = Path(tempfile.mkdtemp(prefix="llmlabs-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if prefix:
        for path in (base, sock):
            os.chown(path, 65534, 65534)
    env = dict(os.environ, LC_ALL="C")

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *cmd], capture_output=True, text=True, env=env, timeout=120, cwd=base)

    try:
        init = run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        if init.returncode != 0:
            pytest.skip(f"initdb failed: {(init.stderr or init.stdout).strip().splitlines()[-1]}")
        # A free port can be taken between asking for it and the server binding it: on a
        # failed start, try another.
        for _ in range(3):
            port = _free_port()
            opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
            start = run(pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "server.log"), "-w", "start")
            if start.returncode == 0:
                break
        if start.returncode != 0:
            pytest.skip(f"pg_ctl start failed: {(start.stderr or start.stdout).strip().splitlines()[-1]}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.xdist_group("grade-batch")
def test_grading_into_a_postgresql_gradebook(tmp_path, postgres):
    blank = UNIT.notebook()
    cells.set_source(blank, UNIT.answer_ids()[0], "# YOUR CODE HERE\nraise NotImplementedError()")
    course = make_course(
        tmp_path / "course",
        UNIT,
        {"ada": UNIT.notebook_path, "ben": blank},
        extra_config=f"c.CourseDirectory.db_url = {postgres!r}",
    )
    proc = run_cli("grade", UNIT.name, "--course", course, "--workers", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    scores = {r["student"]: r["score"] for r in report["rows"]}
    assert scores["ada"] == UNIT.points and scores["ben"] < UNIT.points
    assert not (course / "gradebook.db").exists(), "an sqlite gradebook appeared beside the PostgreSQL one"
    assert set(gradebook_rows(course, UNIT.name, db_url=postgres)) == {"ada", "ben"}
    nbgrader("export", "--to", str(tmp_path / "grades.csv"), cwd=course)
    exported = {r["student_id"]: float(r["score"]) for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert exported == scores
