"""Installed in every grading kernel at start-up, before any notebook code runs.

1. Caps the bytes a notebook may print: a notebook printing megabytes would bloat the
   graded notebook; past the budget output is dropped and one note says so.
2. Undoes monkeypatching before each cell: after the first cell (the locked setup cell)
   it snapshots the builtins, the attributes of the test-helper and testing modules
   (graders.notebook.asserts, graders.notebook.measure, numpy, numpy.testing, torch, torch.testing) and
   the notebook names bound to graders' helpers; before every later cell it puts back
   whatever a notebook changed. A test cell therefore runs with the genuine helpers even
   if an answer cell patched them. The static audit (graders.grading.audit) names the attempt,
   and each name put back is written, once, as a line to the launcher's report pipe
   (evidence of tampering for the grading report).
"""

from __future__ import annotations

import builtins
import os
import sys
from typing import Any

NOTE = "\n[output truncated by the grader: this notebook printed more than {mb} MB]\n"
GUARDED_MODULES = (
    "graders.notebook",
    "graders.notebook.asserts",
    "graders.notebook.measure",
    "numpy",
    "numpy.testing",
    "torch",
    "torch.testing",
)


# ipykernel binds these to the current request before every cell (stdin forwarding).
KERNEL_MANAGED_BUILTINS = frozenset({"input", "raw_input", "getpass"})


class _Budget:
    def __init__(self, nbytes: int):
        self.remaining = nbytes
        self.noted = False


class LimitedStream:
    def __init__(self, stream: Any, budget: _Budget, mb: int) -> None:
        self._stream, self._budget, self._mb = stream, budget, mb

    def write(self, text: str) -> int:
        n = len(text)
        budget = self._budget
        if budget.remaining > 0:
            chunk = text[: budget.remaining]
            budget.remaining -= len(chunk)
            self._stream.write(chunk)
            if len(chunk) == n:
                return n
        if not budget.noted:
            budget.noted = True
            self._stream.write(NOTE.format(mb=self._mb))
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class Restorer:
    def __init__(self, shell: Any, report_fd: int | None = None) -> None:
        self.shell = shell
        self.snapshot: dict[str, Any] | None = None
        self.restored: list[str] = []
        self.report_fd = report_fd

    def _take(self) -> dict[str, Any]:
        modules = {name: dict(vars(sys.modules[name])) for name in GUARDED_MODULES if name in sys.modules}
        builtin = {k: v for k, v in vars(builtins).items() if k not in KERNEL_MANAGED_BUILTINS}
        names = {
            k: v
            for k, v in self.shell.user_ns.items()
            if not k.startswith("_") and (getattr(v, "__module__", None) or "").startswith("graders")
        }
        return {"builtins": builtin, "modules": modules, "names": names}

    def post_run_cell(self, result: Any = None) -> None:
        # Start-up code (this module's own install line) runs without history; the first
        # cell a client sends is the notebook's locked setup cell.
        info = getattr(result, "info", None)
        if self.snapshot is None and getattr(info, "store_history", True):
            self.snapshot = self._take()

    def pre_run_cell(self, info: Any = None) -> None:
        snap = self.snapshot
        if snap is None:
            return
        self._restore(vars(builtins), snap["builtins"], "builtins")
        for name, attrs in snap["modules"].items():
            module = sys.modules.get(name)
            if module is not None:
                self._restore(vars(module), attrs, name)
        ns = self.shell.user_ns
        for key, value in snap["names"].items():
            if ns.get(key) is not value:
                ns[key] = value
                self._note(key)

    def _restore(self, current: dict[str, Any], saved: dict[str, Any], where: str) -> None:
        for key, value in saved.items():
            now = current.get(key)
            if now is value:
                continue
            if _torch_wrapped(now, value):
                saved[key] = now  # torch's own doing: keep it, and guard the wrapper from now on
                continue
            current[key] = value
            self._note(f"{where}.{key}")

    def _note(self, name: str) -> None:
        if name in self.restored:
            return
        self.restored.append(name)
        if self.report_fd is not None:
            try:
                os.write(self.report_fd, (name + "\n").encode())
            except OSError:  # the notebook closed it: the static audit still reports
                self.report_fd = None


def _torch_wrapped(new: Any, old: Any) -> bool:
    """Whether torch itself replaced `old` by a wrapper of it: importing torch._dynamo, which
    transformers, torch.distributed and the FLOP counter do lazily, rebinds
    `torch.manual_seed` to a wrapper made in torch/_compile.py. Putting the bare function
    back would break torch.compile and report tampering that never happened."""
    if getattr(new, "__wrapped__", None) is not old:
        return False
    torch = sys.modules.get("torch")
    filename = getattr(getattr(new, "__code__", None), "co_filename", "")
    return torch is not None and os.path.dirname(filename) == os.path.dirname(torch.__file__ or "")


def install(output_mb: int, report_fd: int | None = None) -> None:
    budget = _Budget(output_mb * 2**20)
    # pyzmq starts a garbage-collector thread the first time a message over 64 KB (a plot)
    # is sent; under the process cap a notebook that spawned processes could no longer
    # start it, and the kernel would fail to send any large output. Start it now.
    try:
        from zmq.utils.garbage import gc as zmq_gc

        zmq_gc.start()
    except Exception:  # pragma: no cover - a pyzmq without it just keeps its lazy start
        pass
    sys.stdout = LimitedStream(sys.stdout, budget, output_mb)
    sys.stderr = LimitedStream(sys.stderr, budget, output_mb)
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return
    shell = get_ipython()
    if shell is not None:
        restorer = Restorer(shell, report_fd)
        shell.events.register("post_run_cell", restorer.post_run_cell)
        shell.events.register("pre_run_cell", restorer.pre_run_cell)
