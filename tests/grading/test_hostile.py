"""Hostile and broken submissions, graded in one batch with a correct one.

For each: grading finishes, the submission gets the score it earned and a clear reason,
the correct submission's score is unaffected, and nothing outside the scratch directory
changes. Every bomb is bounded here, so a limit that fails cannot take the machine down.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from graders import cells
from graders.grading.grade import grade_submissions
from graders.grading.units import all_units, get_unit
from graders.sandbox.limits import sandbox_mode

UNIT = get_unit("linear_algebra")
ANSWER = UNIT.answer_ids()[0]
REFERENCE = cells.source(cells.find(UNIT.notebook(), ANSWER))
SLEEP_MARK = "31.4159"  # a sleep duration no one else uses, to count leftover sleepers
LIMITS = {
    "LLMLABS_LIMIT_MEMORY_MB": "1024",
    "LLMLABS_LIMIT_PROCESSES": "64",
    "LLMLABS_LIMIT_OUTPUT_MB": "1",
    "LLMLABS_LIMIT_NOTEBOOK_SECONDS": "300",
}
CELL_TIMEOUT = 10


def _with_answer(source: str) -> dict:
    nb = UNIT.notebook()
    cells.set_source(nb, ANSWER, source)
    return nb


def _wrong_answer() -> str:
    # Same names as the reference, every function returning zeros of the input's shape.
    import ast

    names = [n.name for n in ast.parse(REFERENCE).body if isinstance(n, ast.FunctionDef)]
    return "\n".join(
        f"def {n}(*args, **kwargs):\n    return np.zeros_like(np.asarray(args[0], dtype=float))"
        for n in names
    )


def _tests_of(answer: str) -> set[str]:
    """The test cells between `answer` and the next answer cell."""
    out: set[str] = set()
    inside = False
    for cell in UNIT.notebook()["cells"]:
        if cells.is_test(cell) and inside:
            out.add(cells.grade_id(cell))
        elif cells.grade_id(cell) in UNIT.answer_ids():
            inside = cells.grade_id(cell) == answer
    return out


def _d(code: str) -> str:
    return textwrap.dedent(code).strip() + "\n"


# name -> (answer-cell source, expectation)
#   full: keeps full marks; partial: loses some points, not all, no error;
#   error: zero with a reason; flagged: the audit names the cheat (and it may lose points)
CODE = {
    "infinite_loop": ("while True:\n    pass\n", "partial"),
    "sys_exit": ("import sys\nsys.exit(0)\n" + REFERENCE, "partial"),
    "os_exit": ("import os\nos._exit(1)\n", "error"),
    "kernel_kill": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "error"),
    "memory_bomb": (
        "hog = bytearray(5 * 2**30)  # five times the 1 GiB cap\n" + REFERENCE,
        "error_or_partial",
    ),
    "process_bomb": (
        _d(f"""
        import subprocess
        sleepers = []
        try:
            for _ in range(3000):  # bounded, in case the process cap fails
                sleepers.append(subprocess.Popen(["sleep", "{SLEEP_MARK}"]))
        except OSError:
            pass
        """)
        + REFERENCE,
        "full",
    ),
    "output_flood": ("for _ in range(20):\n    print('x' * 2**20)\n" + REFERENCE, "full"),
    "file_vandal": (
        _d("""
        import os
        for depth in range(8):
            path = "../" * depth + "canary.txt"
            if os.path.exists(path):
                with open(path, "w") as f:
                    f.write("pwned")
        for root in os.environ.get("LLMLABS_HIDE_PATHS", "").split(os.pathsep):
            for name in ("canary.txt", "gradebook.db"):
                try:
                    with open(os.path.join(root, name), "w") as f:
                        f.write("pwned")
                except OSError:
                    pass
        for name in os.listdir("."):
            if os.path.isfile(name):
                os.remove(name)
        """)
        + REFERENCE,
        "full",
    ),
    "gradebook_reader": (
        _d("""
        import os
        candidates = ["../" * d + "gradebook.db" for d in range(8)]
        candidates += ["../" * d + "source" for d in range(8)]
        hidden = os.environ.get("LLMLABS_HIDE_PATHS", "").split(os.pathsep)
        candidates += [os.path.join(p, "gradebook.db") for p in hidden if p]
        leaked = [c for c in candidates if os.path.exists(c)]
        if leaked:
            raise RuntimeError(f"the grader's files are visible: {leaked}")
        """)
        + REFERENCE,
        "full",
    ),
    "always_equal": (
        _d("""
        class Anything:
            shape = None
            def __eq__(self, other):
                return True
            def __array__(self, *a, **k):
                raise TypeError("not an array")
        """)
        + _wrong_answer().replace(
            "return np.zeros_like(np.asarray(args[0], dtype=float))", "return Anything()"
        ),
        "flagged_or_lost",
    ),
    "patch_helpers": (
        "import graders.notebook.asserts\ngraders.notebook.asserts.assert_close = lambda *a, **k: None\n"
        + _wrong_answer(),
        "flagged",
    ),
    "rebind_helpers": ("assert_close = lambda *a, **k: None\n" + _wrong_answer(), "flagged"),
    "patch_numpy_testing": (
        "np.testing.assert_allclose = lambda *a, **k: None\nnp.allclose = lambda *a, **k: True\n"
        + _wrong_answer(),
        "flagged",
    ),
    "patch_builtins": (
        "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.isinstance = lambda *a: True\n"
        + _wrong_answer(),
        "flagged",
    ),
    # Patching isinstance as well breaks IPython itself before the guard's next turn; abs
    # alone leaves the kernel working, and the guard must report putting it back.
    "patch_abs": ("import builtins\nbuiltins.abs = lambda x: 0\n" + _wrong_answer(), "flagged"),
    "fake_pass": ("print('All tests passed!')\n" + _wrong_answer(), "flagged"),
}

# Cheats that fetch the answer key at grading time instead of answering (issue 25). Each
# has no fallback: under bubblewrap the key is not there, so the cell loses its points;
# in every mode the audit names the attempt.
KEY_CHEATS = {
    # The project's own reader of the text form.
    "key_reference_reader": _d(f"""
        from graders.authoring.reference import reference_cells
        from graders.grading.units import get_unit
        exec(reference_cells(get_unit("{UNIT.name}").text_path)["{ANSWER}"])
        """),
    # The text form found from the package's location (a clone, or a wheel's _bundled/).
    "key_text_form_on_disk": _d(f"""
        import os, re
        import graders.notebook as api
        here = os.path.dirname(os.path.dirname(os.path.dirname(api.__file__)))
        text = None
        for base in (here, os.path.join(here, "graders", "_bundled")):
            for root, _, files in os.walk(os.path.join(base, "curriculum")):
                if "{UNIT.name}.py" in files:
                    text = open(os.path.join(root, "{UNIT.name}.py")).read()
        cell = re.search(r"# %% answer id={ANSWER}\\n(.*?)\\n# %%", text, re.S).group(1)
        exec(cell)
        """),
    # The same reader, its module name built from pieces to dodge a text search.
    "key_obfuscated_import": _d(f"""
        import importlib
        ref = importlib.import_module(".".join(["graders", "author" + "ing", "reference"]))
        units = importlib.import_module(".".join(["graders", "grad" + "ing", "units"]))
        exec(ref.reference_cells(units.get_unit("{UNIT.name}").text_path)["{ANSWER}"])
        """),
    # The clone's git history, read with git itself.
    "key_git_history": _d(f"""
        import os, re, subprocess
        import graders.notebook as api
        root = os.path.dirname(os.path.dirname(os.path.dirname(api.__file__)))
        path = "curricul" + "um/{UNIT.directory.name}/{UNIT.name}.py"
        text = subprocess.run(["git", "-C", root, "show", "HEAD:" + path],
                              capture_output=True, text=True, check=True).stdout
        exec(re.search(r"# %% answer id={ANSWER}\\n(.*?)\\n# %%", text, re.S).group(1))
        """),
    # Any source notebook or generated assignment the grader left where a kernel can look,
    # the Python environment included (an editable install copies the curriculum there).
    "key_search_disk": _d(f"""
        import json, os, sys
        found = None
        for top in ("/root", "/home", "/tmp", "/var/tmp", os.path.expanduser("~"), sys.prefix):
            for root, _, files in os.walk(top):
                if "{UNIT.notebook_path.name}" in files and found is None:
                    nb = json.load(open(os.path.join(root, "{UNIT.notebook_path.name}")))
                    for c in nb["cells"]:
                        if c["metadata"].get("nbgrader", {{}}).get("grade_id") == "{ANSWER}":
                            if "BEGIN SOLUTION" in "".join(c["source"]):
                                found = "".join(c["source"])
        exec(found)
        """),
}


def _structural(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Damaged notebooks: name -> (path, words the reason must contain)."""
    out = {}
    nb = UNIT.notebook()
    graded = [i for i, c in enumerate(nb["cells"]) if cells.is_test(c)]

    def write(name, content):
        path = tmp / f"{name}.ipynb"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return path

    out["corrupt_json"] = (write("corrupt_json", json.dumps(nb)[: len(json.dumps(nb)) // 2]), "invalid JSON")
    out["empty_file"] = (write("empty_file", ""), "empty")
    deleted = copy.deepcopy(nb)
    del deleted["cells"][graded[0]]
    out["deleted_cell"] = (write("deleted_cell", deleted), "missing")
    dup = copy.deepcopy(nb)
    dup["cells"].append(copy.deepcopy(dup["cells"][graded[0]]))
    out["duplicated_cell"] = (write("duplicated_cell", dup), "appears 2 times")
    renamed = copy.deepcopy(nb)
    cells.meta(renamed["cells"][graded[0]])["grade_id"] = "renamed_by_student"
    out["renamed_cell"] = (write("renamed_cell", renamed), "missing")
    stripped = copy.deepcopy(nb)
    for cell in stripped["cells"]:
        cell["metadata"] = {}
    out["stripped_metadata"] = (write("stripped_metadata", stripped), "missing")
    others = [u for u in all_units() if u.name != UNIT.name]
    if others:
        out["other_unit"] = (write("other_unit", others[0].notebook()), "not of unit")
    return out


def _digest(paths):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths}


def _sleepers() -> int:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return sum(1 for line in ps.splitlines() if line.strip() == f"sleep {SLEEP_MARK}")


@pytest.mark.xdist_group("hostile")
def test_hostile_batch(tmp_path, monkeypatch):
    for key, value in LIMITS.items():
        monkeypatch.setenv(key, value)
    # Kernels make their scratch directories under TMPDIR: a private one shows leftovers.
    kernel_tmp = tmp_path / "tmp"
    kernel_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(kernel_tmp))
    subs_dir = tmp_path / "subs"
    subs_dir.mkdir()
    submissions = {"correct": UNIT.notebook_path}
    for name, source in [(n, src) for n, (src, _) in CODE.items()] + list(KEY_CHEATS.items()):
        path = subs_dir / f"{name}.ipynb"
        path.write_text(json.dumps(_with_answer(source)))
        submissions[name] = path
    structural = _structural(subs_dir)
    submissions.update({name: path for name, (path, _) in structural.items()})
    submissions["correct_last"] = UNIT.notebook_path

    course = tmp_path / "course"
    (course / "submitted").mkdir(parents=True)
    canaries = [tmp_path / "canary.txt", course / "canary.txt", course / "submitted" / "canary.txt"]
    for c in canaries:
        c.write_text("canary")
    watched = canaries + [UNIT.notebook_path] + sorted(p for p in UNIT.directory.rglob("*") if p.is_file())
    before = _digest(watched)

    results = grade_submissions(UNIT, submissions, keep_dir=course, cell_timeout=CELL_TIMEOUT)

    for name in ("correct", "correct_last"):
        assert results[name].full_marks, f"{name}: {results[name]}"
    full = UNIT.points
    problems = []
    for name, (_, expect) in CODE.items():
        r = results[name]
        summary = f"{name}: {r.score}/{r.max_score} error={r.error!r} flags={r.flags}"
        ok = {
            "full": r.error is None and r.score == full,
            "partial": r.error is None and 0 < r.score < full,
            "error": r.error is not None and "kernel died" in r.error and r.score == 0,
            "error_or_partial": (r.error is not None and "kernel died" in r.error)
            or (r.error is None and r.score < full),
            "flagged": bool(r.flags),
            "flagged_or_lost": bool(r.flags) or r.score < full,
        }[expect]
        if not ok:
            problems.append(f"expected {expect}: {summary}")
    for name, (_, words) in structural.items():
        r = results[name]
        if not (r.error and words in r.error and r.score == 0 and r.cells):
            problems.append(
                f"{name}: expected zero with a reason containing {words!r}, got {r.error!r} {r.score}"
            )
    # Cheats that swap in a wrong answer lose the exercise's points (the kernel guard puts
    # the genuine helpers back before each cell) and are named in the report.
    for name in (
        "patch_helpers",
        "rebind_helpers",
        "patch_numpy_testing",
        "patch_builtins",
        "patch_abs",
        "fake_pass",
    ):
        if results[name].score == full or not results[name].flags:
            problems.append(
                f"{name} kept full marks or went unflagged: {results[name].score} {results[name].flags}"
            )
    # The kernel guard reports what it had to put back, as evidence for the instructor.
    for name, needle in (
        ("patch_helpers", "graders.notebook.asserts.assert_close"),
        ("patch_numpy_testing", "numpy.allclose"),
        ("patch_abs", "builtins.abs"),
    ):
        if not any(needle in f and "put back" in f for f in results[name].flags):
            problems.append(f"{name}: the guard's report does not name {needle}: {results[name].flags}")
    # Reaching for the answer key: flagged in every mode; under bubblewrap the key is not
    # there, so the cheated exercise loses its points.
    answer_tests = _tests_of(ANSWER)
    for name in KEY_CHEATS:
        r = results[name]
        if not r.flags:
            problems.append(f"{name}: not flagged ({r.score}/{r.max_score})")
        if sandbox_mode() == "bwrap" and r.score >= full:
            problems.append(f"{name}: kept full marks under bubblewrap: the answer key was readable")
        if sandbox_mode() == "bwrap":
            kept = [c.grade_id for c in r.cells if c.grade_id in answer_tests and c.passed]
            if kept:
                problems.append(f"{name}: kept the points of {kept} under bubblewrap")
    if results["correct"].flags:
        problems.append(f"the correct submission was flagged: {results['correct'].flags}")
    if results["correct"].sandbox.mode != sandbox_mode():
        problems.append(f"sandbox report: expected mode {sandbox_mode()}, got {results['correct'].sandbox}")
    assert not problems, "\n".join(problems)

    assert _digest(watched) == before, "a submission changed files outside its scratch directory"
    graded_nb = course / "autograded" / "output_flood" / UNIT.name / UNIT.notebook_path.name
    assert graded_nb.stat().st_size < 3 * 2**20, "the output cap did not hold"
    assert _sleepers() == 0, "processes a submission started outlived its grading"
    assert not list(kernel_tmp.glob("llmlabs-kernel-*")), "a kernel's scratch directory outlived its grading"
