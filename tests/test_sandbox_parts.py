"""Fast checks of the sandbox's parts: limits from the environment, the static audit,
the output cap and the data copy."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from graders.grading.audit import audit_notebook, audit_source, locked_names
from graders.sandbox.bwrap import bwrap_command
from graders.sandbox.guard import LimitedStream, Restorer, _Budget
from graders.sandbox.launcher import copy_data_files
from graders.sandbox.limits import Limits, sandbox_mode


def test_limits_from_env():
    assert Limits.from_env({}) == Limits()
    lim = Limits.from_env({"LLMLABS_LIMIT_MEMORY_MB": "512", "LLMLABS_LIMIT_PROCESSES": "8"})
    assert lim.memory_mb == 512 and lim.processes == 8
    with pytest.raises(ValueError, match="LLMLABS_LIMIT_MEMORY_MB must be an integer"):
        Limits.from_env({"LLMLABS_LIMIT_MEMORY_MB": "lots"})
    with pytest.raises(ValueError, match="must be positive"):
        Limits.from_env({"LLMLABS_LIMIT_PROCESSES": "0"})
    assert Limits.from_env(Limits(output_mb=3).env()) == Limits(output_mb=3)


def test_sandbox_mode_choice():
    assert sandbox_mode({"LLMLABS_SANDBOX": "none"}) == "none"
    assert sandbox_mode({"LLMLABS_SANDBOX": "rlimits"}) == "rlimits"
    assert sandbox_mode({}) in ("bwrap", "rlimits")
    with pytest.raises(ValueError):
        sandbox_mode({"LLMLABS_SANDBOX": "docker"})


@pytest.mark.parametrize(
    "code,expected",
    [
        (
            "import graders.notebook.asserts\ngraders.notebook.asserts.assert_close = print",
            "assigns to graders.notebook.asserts.assert_close",
        ),
        ("np.testing.assert_allclose = lambda *a: None", "assigns to np.testing.assert_allclose"),
        ("import builtins\nbuiltins.abs = len", "assigns to builtins.abs"),
        ("assert_close = print", "rebinds assert_close"),
        ("def assert_close(*a):\n    pass", "redefines assert_close"),
        ("print('All tests passed!')", "fake success"),
        ("open('../../gradebook.db')", "mentions 'gradebook'"),
        ("import os\nos._exit(0)", "exits the kernel"),
        ("setattr(np, 'allclose', print)", "setattr"),
        ("g = globals().__dict__", "__dict__"),
        # Reaching for the answer key (issue 25).
        ("from graders.authoring.reference import reference_cells", "imports graders.authoring.reference"),
        ("from graders import grading", "imports graders.grading"),
        ("import graders\nx = graders.authoring", "reaches into graders.authoring"),
        ("import graders.notebook as g\np = g.__file__", "locates installed files (g.__file__)"),
        ("import importlib.resources\nimportlib.resources.files('graders')", "locates installed files"),
        ("exec(open(p).read())", "runs code built at run time (exec)"),
        ("f = eval('lambda x: x')", "(eval)"),
        ("code = compile(text, 'x', 'exec')", "(compile)"),
        ("m = __import__('gra' + 'ders')", "(__import__)"),
        ("import importlib\nm = importlib.import_module('x')", "importlib.import_module"),
        ("import sys\nm = sys.modules['graders.grading']", "reaches into sys.modules"),
        ("path = 'curriculum/01_linear_algebra'", "mentions 'curriculum'"),
        ("def f():\n    global assert_close\n    assert_close = print", "rebinds assert_close"),
        ("setattr(np.testing, 'assert_allclose', print)", "calls setattr on np.testing"),
    ],
)
def test_audit_names_the_cheat(code, expected):
    findings = audit_source(code, {"assert_close", "np"})
    assert any(expected in f for f in findings), findings


def test_audit_is_quiet_on_honest_code():
    honest = (
        "def softmax(x, axis=-1):\n    z = x - x.max(axis=axis, keepdims=True)\n"
        "    return np.exp(z) / np.exp(z).sum(axis, keepdims=True)\n"
    )
    assert audit_source(honest, {"assert_close", "np"}) == []
    assert audit_source("this is not python (", set()) == []
    # Honest code that looks like the rules: a local that shares a locked cell's name, a
    # submodule replaced with setattr, model.eval(), re.compile, the notebook API.
    lookalikes = (
        "from graders.notebook import assert_close as ac\nimport graders.notebook.data\n"
        "import re\npat = re.compile('a+')\n"
        "def inject(model, lora):\n    assert_close = 1\n    setattr(model.layers[0], 'q', lora)\n"
        "    model.eval()\n    return assert_close\n"
    )
    assert audit_source(lookalikes, {"assert_close", "np"}) == []


def test_audit_skips_locked_cells_and_names_the_cell():
    source = {
        "cells": [
            {
                "cell_type": "code",
                "source": "from graders.notebook.asserts import assert_close",
                "metadata": {"nbgrader": {"locked": True, "grade_id": "setup"}},
            }
        ]
    }
    assert locked_names(source) == {"assert_close"}
    sub = {
        "cells": [
            # nbgrader puts the source's locked cells back, so their content does not matter ...
            {
                "cell_type": "code",
                "source": "assert_close = print",
                "metadata": {"nbgrader": {"locked": True, "grade_id": "setup"}},
            },
            {
                "cell_type": "code",
                "source": ["assert_close", " = print"],
                "metadata": {"nbgrader": {"grade_id": "ans"}},
            },
            # ... but a cell that only claims to be locked is the learner's, and is audited.
            {
                "cell_type": "code",
                "source": "assert_close = len",
                "metadata": {"nbgrader": {"locked": True, "grade_id": "mine"}},
            },
            {"cell_type": "code", "source": "x = 1", "metadata": None},
        ]
    }
    assert audit_notebook(sub, source) == [
        "ans: rebinds assert_close, which a locked cell defines",
        "mine: rebinds assert_close, which a locked cell defines",
    ]


def test_output_cap_truncates_once():
    sink = io.StringIO()
    stream = LimitedStream(sink, _Budget(10), mb=1)
    stream.write("0123456789abc")
    stream.write("more")
    text = sink.getvalue()
    assert text.startswith("0123456789") and "abc" not in text and text.count("truncated") == 1


def test_data_copy_skips_notebooks_links_and_oversize(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "data").mkdir(parents=True)
    (src / "unit.ipynb").write_text("{hidden tests}")
    (src / "data" / "a.txt").write_text("a" * 10)
    (src / "big.bin").write_bytes(b"x" * 100)
    (src / "link").symlink_to("/etc/passwd")
    copy_data_files(src, dst, max_bytes=50)
    assert sorted(p.name for p in dst.rglob("*") if p.is_file()) == ["a.txt"]


def test_bwrap_command_hides_the_course_and_tmp_and_binds_the_scratch(tmp_path, monkeypatch):
    # A course outside /tmp (the home directory here) is hidden behind its own tmpfs; one
    # under /tmp is hidden with /tmp itself.
    home = Path.home().resolve()
    monkeypatch.setenv("LLMLABS_HIDE_PATHS", os.pathsep.join([str(home), str(tmp_path)]))
    cmd = bwrap_command(["python", "-m", "ipykernel_launcher", "-f", "/x/conn.json"], tmp_path / "w", None)
    joined = " ".join(cmd)
    assert "--ro-bind / /" in joined and "--tmpfs /tmp" in joined and "--unshare-pid" in joined
    assert "--cap-drop ALL" in joined and "--ro-bind /x/conn.json /x/conn.json" in joined
    assert f"--bind {tmp_path / 'w'} /tmp/llmlabs-work" in joined
    if not str(home).startswith("/tmp"):
        assert f"--tmpfs {home} " in joined
    assert f"--tmpfs {tmp_path.resolve()} " not in joined
    assert cmd[-5:] == ["python", "-m", "ipykernel_launcher", "-f", "/x/conn.json"]


class _Shell:
    def __init__(self):
        self.user_ns: dict = {}


def _guarded_restorer() -> Restorer:
    import torch  # noqa: F401 - the guard snapshots torch's attributes only once it is loaded

    restorer = Restorer(_Shell())
    restorer.post_run_cell()  # the setup cell ran: snapshot
    return restorer


def test_guard_puts_back_a_patched_torch_function_and_says_so():
    import torch

    restorer, genuine = _guarded_restorer(), torch.allclose
    try:
        torch.allclose = lambda *a, **k: True
        restorer.pre_run_cell()
        assert torch.allclose is genuine
        assert restorer.restored == ["torch.allclose"]
    finally:
        torch.allclose = genuine


def test_guard_keeps_torchs_own_wrapper_of_manual_seed():
    # Importing torch._dynamo (transformers and torch.distributed do, lazily) rebinds
    # torch.manual_seed to a wrapper of itself: not tampering, and not to be undone.
    import torch

    restorer, genuine = _guarded_restorer(), torch.manual_seed
    wrapper = torch._disable_dynamo(genuine)
    try:
        torch.manual_seed = wrapper
        restorer.pre_run_cell()
        assert torch.manual_seed is wrapper and restorer.restored == []
        # ... and from then on the wrapper is what the guard protects.
        torch.manual_seed = lambda seed: None
        restorer.pre_run_cell()
        assert torch.manual_seed is wrapper and restorer.restored == ["torch.manual_seed"]
    finally:
        torch.manual_seed = genuine


def test_guard_does_not_trust_a_learners_wrapper():
    import functools

    import torch

    restorer, genuine = _guarded_restorer(), torch.manual_seed

    @functools.wraps(genuine)
    def fake(seed):
        return genuine(0)

    try:
        torch.manual_seed = fake
        restorer.pre_run_cell()
        assert torch.manual_seed is genuine and restorer.restored == ["torch.manual_seed"]
    finally:
        torch.manual_seed = genuine
