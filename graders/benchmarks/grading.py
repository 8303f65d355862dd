"""Throughput of `llmlabs grade` against stock `nbgrader autograde`: a benchmark, not a test.

    python -m graders.benchmarks.grading UNIT [--copies 16] [--json FILE]
    python -m graders.benchmarks.grading UNIT --check      # llmlabs check against nbconvert

Builds a course (`llmlabs course init` + stock `nbgrader generate_assignment`) with
COPIES submissions, the unit's reference and its hand mutants in turn, and grades the
same class three times in copies of that course: serially with stock `nbgrader
autograde UNIT`, then with `llmlabs grade --workers 1` and `--workers 2`. Every kernel
gets one torch thread (`LLMLABS_THREADS=1`), so the modes differ only in how
submissions are scheduled. It reports submissions per minute, the speed-up of two
workers over one, the overhead per submission beyond running its cells (the cells'
time is measured once per distinct notebook in a plain, already started kernel), and
whether the three gradebooks hold identical scores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from graders import settings
from graders.authoring.mutants import apply_mutant, load_mutants
from graders.grading.course import init_course
from graders.grading.units import Unit, get_unit
from graders.notebook.kernel import KERNEL_ENV

BIN = Path(sys.executable).parent


def _cpu_group() -> Path | None:
    """A cgroup-v1 cpuacct group for one command: it counts the CPU time of every process
    the command starts, kernels inside bubblewrap's PID namespace included (which the
    parent's rusage misses). None where not root or no cpuacct hierarchy."""
    base = Path("/sys/fs/cgroup/cpuacct")
    if os.geteuid() != 0 or not (base / "cpuacct.usage").is_file():
        return None
    group = base / f"llmlabs-bench-{os.getpid()}-{time.monotonic_ns()}"
    try:
        group.mkdir()
    except OSError:
        return None
    return group


def _run(cmd: list[str], cwd: Path) -> tuple[float, float | None, str]:
    """Wall seconds, CPU seconds of the command and everything it started (None when that
    cannot be counted), and its output."""
    group = _cpu_group()

    def join() -> None:
        if group is not None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, preexec_fn=join)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    if group is None:
        return wall, None, proc.stdout
    cpu = int((group / "cpuacct.usage").read_text()) / 1e9
    try:
        group.rmdir()
    except OSError:  # a process still in it; left for the system to clean
        pass
    return wall, cpu, proc.stdout


def cell_seconds(nb: dict[str, Any], directory: Path, timeout: int) -> tuple[float, float]:
    """Wall and CPU seconds the notebook's cells take in a plain kernel already running."""
    import nbformat
    import psutil
    from nbclient import NotebookClient

    node = nbformat.from_dict(nb)
    client = NotebookClient(
        node,
        timeout=timeout,
        allow_errors=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(directory)}},
    )
    with client.setup_kernel():
        provisioner: Any = client.km.provisioner if client.km is not None else None
        kernel = psutil.Process(provisioner.pid)

        def cpu() -> float:
            times = kernel.cpu_times()
            return times.user + times.system + times.children_user + times.children_system

        start, cpu0 = time.perf_counter(), cpu()
        for index, cell in enumerate(node.cells):
            client.execute_cell(cell, index)
        return time.perf_counter() - start, cpu() - cpu0


def _scores(course: Path, unit: str) -> dict[str, dict[str, Any]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {
            sub.student.id: {
                f"{nb.notebook.name}/{g.name}": g.auto_score for nb in sub.notebooks for g in nb.grades
            }
            for sub in gb.find_assignment(unit).submissions
        }


def build_class(
    unit: Unit, root: Path, copies: int
) -> tuple[Path, dict[str, str], dict[str, dict[str, Any]]]:
    """The course, student -> kind of notebook, kind -> notebook."""
    course = init_course(root / "base", [unit], course_id="bench")
    _run([str(BIN / "nbgrader"), "generate_assignment", unit.name], course)
    kinds = {"reference": unit.notebook()}
    kinds.update({m.name: apply_mutant(unit.notebook(), m) for m in load_mutants(unit)})
    names = list(kinds)
    students = {}
    for i in range(copies):
        student, kind = f"s{i:03d}", names[i % len(names)]
        folder = course / "submitted" / student / unit.name
        folder.mkdir(parents=True)
        (folder / unit.notebook_path.name).write_text(json.dumps(kinds[kind]))
        (folder / "timestamp.txt").write_text("2026-11-02 09:30:00.000000 UTC")
        students[student] = kind
    return course, students, {k: kinds[k] for k in set(students.values())}


def bench(unit: Unit, copies: int) -> dict[str, Any]:
    os.environ[settings.THREADS.env] = "1"
    for key, value in KERNEL_ENV.items():
        os.environ.setdefault(key, value)
    with tempfile.TemporaryDirectory(prefix="llmlabs-bench-") as tmp:
        root = Path(tmp)
        base, students, kinds = build_class(unit, root, copies)
        plain = root / "plain"
        plain.mkdir()
        timed = {kind: cell_seconds(nb, plain, unit.cell_timeout) for kind, nb in kinds.items()}
        cells = {kind: wall for kind, (wall, _) in timed.items()}
        cell_mean = sum(cells[k] for k in students.values()) / copies
        cell_cpu = sum(timed[k][1] for k in students.values()) / copies
        courses = {mode: root / mode for mode in ("nbgrader", "workers1", "workers2")}
        for course in courses.values():
            shutil.copytree(base, course)
        # The same run with the first submission alone: its cost is the start-up, so the
        # difference is what the other N-1 submissions cost (marginal CPU per submission).
        alone = {mode: root / f"{mode}-one" for mode in ("nbgrader", "workers1")}
        for course in alone.values():
            shutil.copytree(base, course)
            for folder in sorted((course / "submitted").iterdir())[1:]:
                shutil.rmtree(folder)
        commands = {
            "nbgrader": [str(BIN / "nbgrader"), "autograde", unit.name],
            "workers1": [sys.executable, "-m", "graders", "grade", unit.name, "--workers", "1", "--json"],
            "workers2": [sys.executable, "-m", "graders", "grade", unit.name, "--workers", "2", "--json"],
        }
        # Untimed: fills the generated-assignment cache, which every timed run then finds.
        warm = root / "warm-up"
        shutil.copytree(alone["workers1"], warm)
        _run(commands["workers1"], warm)
        walls, cpus, steady = {}, {}, {}
        for mode, course in courses.items():
            walls[mode], cpus[mode], stdout = _run(commands[mode], course)
            if mode != "nbgrader":
                rows = json.loads(stdout)["rows"]
                steady[mode] = sum(r["seconds"] for r in rows) / len(rows)
        marginal = {}
        rest = [kind for student, kind in sorted(students.items())[1:]]
        rest_cpu = sum(timed[k][1] for k in rest) / len(rest)
        for mode, course in alone.items():
            _, cpu_one, _ = _run(commands[mode], course)
            cpu_all = cpus[mode]
            if cpu_all is not None and cpu_one is not None:
                marginal[mode] = round((cpu_all - cpu_one) / (copies - 1) - rest_cpu, 2)
        scores = {mode: _scores(course, unit.name) for mode, course in courses.items()}
    identical = scores["nbgrader"] == scores["workers1"] == scores["workers2"]
    per_minute = {mode: round(copies / wall * 60, 2) for mode, wall in walls.items()}
    return {
        "unit": unit.name,
        "copies": copies,
        "kinds": sorted(kinds),
        "cell_seconds": {k: round(v, 2) for k, v in cells.items()},
        "wall_seconds": {k: round(v, 1) for k, v in walls.items()},
        "submissions_per_minute": per_minute,
        "speedup_2_over_1": round(walls["workers1"] / walls["workers2"], 2),
        "overhead_per_submission_s": {
            # whole run / N - cells: start-up (imports, cluster) included, spread over the class
            "nbgrader": round(walls["nbgrader"] / copies - cell_mean, 2),
            "workers1": round(walls["workers1"] / copies - cell_mean, 2),
            # one warm worker's autograde call per submission - cells: kernel start, sandbox, nbgrader steps
            "workers1_warm": round(steady["workers1"] - cell_mean, 2),
        },
        # CPU seconds per submission beyond the cells' own: what other work sharing the
        # machine cannot inflate the way it inflates wall time.
        "overhead_cpu_per_submission_s": {
            mode: round(cpu / copies - cell_cpu, 2) if cpu is not None else None for mode, cpu in cpus.items()
        },
        # The same, without the start-up: (CPU of N) - (CPU of the first alone), per other one.
        "marginal_overhead_cpu_per_submission_s": marginal,
        "cell_cpu_seconds_mean": round(cell_cpu, 2),
        "load_average": os.getloadavg()[0],
        "identical_gradebooks": identical,
        "full_marks": sum(
            1 for s in scores["workers2"].values() if sum(v or 0 for v in s.values()) >= unit.points
        ),
    }


def bench_check(unit: Unit, repeats: int = 3) -> dict[str, Any]:
    """`llmlabs check` of the reference against plain `jupyter nbconvert --execute` of the
    same notebook, interleaved, median of `repeats` each (after one untimed check, which
    fills the generated-assignment cache as a learner's first check does)."""
    with tempfile.TemporaryDirectory(prefix="llmlabs-bench-check-") as tmp:
        nb = Path(tmp) / unit.notebook_path.name
        shutil.copyfile(unit.notebook_path, nb)
        check = [sys.executable, "-m", "graders", "check", str(nb), "--json"]
        plain = [
            str(BIN / "jupyter"),
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            str(nb),
            "--output",
            "out",
        ]
        _run(check, Path(tmp))
        times: dict[str, list[float]] = {"check": [], "nbconvert": []}
        for _ in range(repeats):
            times["check"].append(_run(check, Path(tmp))[0])
            times["nbconvert"].append(_run(plain, Path(tmp))[0])
    median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {
        "unit": unit.name,
        "seconds": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "ratio_check_over_nbconvert": round(median["check"] / median["nbconvert"], 2),
        "load_average": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("unit")
    parser.add_argument("--copies", type=int, default=16)
    parser.add_argument("--check", action="store_true", help="time `llmlabs check` against nbconvert instead")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.check:
        print(json.dumps(bench_check(get_unit(args.unit)), indent=1))
        return 0
    report = bench(get_unit(args.unit), args.copies)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if report["identical_gradebooks"] else 1


if __name__ == "__main__":
    sys.exit(main())
