"""Run a notebook-defined function on N processes joined by a `torch.distributed` group.

    import torch.distributed as dist
    from graders.notebook import run_distributed

    def work(rank, world_size, x):
        y = x * (rank + 1)
        dist.all_reduce(y)
        return y

    run_distributed(work, 2, torch.ones(3))   # [tensor([3., 3., 3.]), tensor([3., 3., 3.])]

How: the kernel forks N workers (start method "fork": a function defined in a notebook
cell cannot be re-imported by a spawned child, but a forked one inherits it, with its
arguments, so nothing needs pickling on the way in). Each worker takes one torch thread,
joins a `gloo` process group through a file in a fresh temporary directory, calls
`fn(rank, world_size, *args)` and pickles its return value into that directory; the
kernel reads the values back, in rank order.

Never hangs, never leaves a process behind:
- the run has a deadline (`timeout`); collectives time out earlier, at half of it, so
  a collective that some rank never joins raises in the worker, with the line it waited
  on, instead of waiting for the kill;
- when a worker raises, the others are killed at once (they would wait for it in their
  next collective) and `WorkerError` names the rank that failed first;
- at the deadline, on an interrupt (the grader's per-cell timeout) or any other exit,
  every worker still alive is killed and reaped; on Linux a worker also dies with the
  kernel (parent-death signal), so not even a killed kernel leaves one behind.

Every error's first line names the cause, for the one-line summary of `llmlabs check`:
`rank 1: NotImplementedError: not written yet: ...`, `rank 0: AssertionError: ...`; for a
hang, which ranks waited in which collective (`rank 0 timed out after 15 s in dist.recv
(line 5 of ring_all_reduce); rank 1 ...`), read from the timed-out ranks' tracebacks and
from a stack dump (`faulthandler`, on SIGUSR1) of the ranks still running when the run
stops. The lines after it hold every rank's traceback (or stack), the cause's first.

Workers are ordinary child processes of the kernel: inside the grading sandbox they
count towards its process and memory caps and die with it. What a worker prints comes
back as the kernel's own output, each line prefixed with its rank (stdout only: a
worker's stderr, where torch and gloo log, appears only in a `WorkerError`, since a
test cell that writes to stderr scores 0).
"""

from __future__ import annotations

import faulthandler
import json
import multiprocessing
import os
import pickle
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from graders import processes

__all__ = ["run_distributed", "WorkerError", "WorkerTimeout"]

MAX_WORLD_SIZE = 16
# A collective that never completes raises in the worker after this share of the
# deadline, so the learner sees where it waited; the kill at the deadline is the backstop.
COLLECTIVE_SHARE = 0.5


class WorkerError(RuntimeError):
    """A worker raised or died. The message's first line names the cause (the first failing
    rank and its exception's own first line); the lines after it hold every rank's traceback."""

    def __init__(self, message: str, rank: int):
        super().__init__(message)
        self.rank = rank


class WorkerTimeout(WorkerError, TimeoutError):
    """The run passed its deadline; every worker was killed."""


def run_distributed(fn: Callable[..., Any], world_size: int, *args: Any, timeout: float = 60.0) -> list[Any]:
    """Call `fn(rank, world_size, *args)` in `world_size` processes, one per rank, inside a
    gloo process group (`torch.distributed` is initialised before `fn` runs and destroyed
    after). Returns the `world_size` return values, index = rank; each must be picklable
    (tensors are; detach tensors that require grad and are not leaves).

    Raises `WorkerError` (with the worker's traceback) if a worker raises or dies, and
    `WorkerTimeout` if the run takes longer than `timeout` seconds; in every case no
    worker is left running when this returns.
    """
    if not 1 <= world_size <= MAX_WORLD_SIZE:
        raise ValueError(f"world_size must be between 1 and {MAX_WORLD_SIZE}, got {world_size}")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if "fork" not in multiprocessing.get_all_start_methods():
        raise RuntimeError("run_distributed needs the 'fork' start method (Linux or macOS)")
    ctx = multiprocessing.get_context("fork")
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a multi-threaded process (a Jupyter kernel is one)
        # may deadlock the child; the worker only runs torch, whose fork handlers reset its
        # thread pools, and a warning on stderr would score a test cell 0.
        warnings.simplefilter("ignore", DeprecationWarning)
        return _run(ctx, fn, world_size, args, timeout)


def _run(
    ctx: Any, fn: Callable[..., Any], world_size: int, args: tuple[Any, ...], timeout: float
) -> list[Any]:
    run_dir = Path(tempfile.mkdtemp(prefix="llmlabs-ranks-"))
    procs: list[Any] = []
    try:
        for rank in range(world_size):
            proc = ctx.Process(
                target=_worker,
                args=(fn, rank, world_size, args, run_dir, timeout * COLLECTIVE_SHARE),
                name=f"llmlabs-rank{rank}",
                daemon=True,
            )
            try:
                proc.start()
            except OSError as e:
                raise WorkerError(
                    f"could not start rank {rank} of {world_size}: {e} (a process cap reached? in the "
                    "grading sandbox, LLMLABS_LIMIT_PROCESSES caps the kernel's processes and threads)",
                    rank,
                ) from e
            procs.append(proc)
        try:
            _wait_all(procs, run_dir, time.monotonic() + timeout, timeout)
        except KeyboardInterrupt:
            # The grader's per-cell timeout interrupts the kernel: say where the ranks were.
            running = [rank for rank, proc in enumerate(procs) if proc.exitcode is None]
            _dump_stacks(procs, running, run_dir)
            where = _whereabouts(procs, run_dir, running)
            raise KeyboardInterrupt(
                f"interrupted while rank(s) {running} were still running: {where}"
                if running
                else "interrupted"
            ) from None
        return [_load(run_dir / f"{rank}.result") for rank in range(world_size)]
    finally:
        _kill(procs)
        _show_output(run_dir, world_size)
        shutil.rmtree(run_dir, ignore_errors=True)


def _wait_all(procs: list[Any], run_dir: Path, deadline: float, timeout: float) -> None:
    pending = {proc.sentinel: rank for rank, proc in enumerate(procs)}
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            ranks = sorted(pending.values())
            _dump_stacks(procs, ranks, run_dir)
            raise WorkerTimeout(
                f"rank(s) {ranks} did not finish within {timeout:g} s and were killed: "
                f"{_whereabouts(procs, run_dir, ranks)} (a collective that some rank never joined, "
                "a recv without a matching send, or a loop that never ends?)\n"
                + _details(procs, run_dir, ranks),
                ranks[0],
            )
        for sentinel in wait(list(pending), timeout=left):
            rank = pending.pop(sentinel)  # type: ignore[call-overload]
            procs[rank].join()
            if procs[rank].exitcode != 0:
                # The others would wait for this rank in their next collective: give the ones
                # already failing a moment to say why, then report whoever failed first.
                _grace(procs, run_dir, rank)
                _dump_stacks(procs, [r for r, p in enumerate(procs) if p.exitcode is None], run_dir)
                raise _first_failure(procs, run_dir, rank)


# Errors a rank raises because a peer went away first: never the cause, whatever their time.
_CONSEQUENCES = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")


@dataclass
class _Failure:
    """What one failed rank reported (`<rank>.error`, JSON written by `_worker`)."""

    stamp: float
    summary: str  # "NotImplementedError: not written yet: ...": the exception's own first line
    traceback: str
    where: str = ""  # "dist.recv (line 5 of ring)" when it failed inside torch.distributed
    seconds: float = 0.0  # the collective timeout, when it timed out there

    @property
    def secondary(self) -> bool:
        return any(sign in self.summary for sign in _CONSEQUENCES)

    @property
    def timed_out(self) -> bool:
        return "timed out" in self.summary.lower()


def _grace(procs: list[Any], run_dir: Path, failed: int) -> None:
    """Wait 0.2 s for other ranks to report; up to 3 s while the only reports are a peer's
    "connection closed" (the rank that caused it, on a loaded machine, may still be
    formatting its traceback) and some rank is still alive."""
    start = time.monotonic()
    time.sleep(0.2)
    if not (run_dir / f"{failed}.error").is_file():
        return  # died without a traceback (killed, os._exit): it is the cause
    while time.monotonic() - start < 3 and any(p.exitcode is None for p in procs):
        reports = [_read_failure(run_dir, rank) for rank in range(len(procs))]
        if any(r is not None and not r.secondary for r in reports):
            return
        time.sleep(0.05)


def _read_failure(run_dir: Path, rank: int) -> _Failure | None:
    path = run_dir / f"{rank}.error"
    if not path.is_file():
        return None
    text = path.read_text(errors="replace")
    try:
        data = json.loads(text)
        return _Failure(
            float(data["stamp"]),
            str(data["summary"]),
            str(data["traceback"]),
            str(data.get("where") or ""),
            float(data.get("seconds") or 0.0),
        )
    except (ValueError, KeyError, TypeError):
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return _Failure(0.0, lines[-1].strip() if lines else "failed without a message", text)


def _first_failure(procs: list[Any], run_dir: Path, seen_first: int) -> WorkerError:
    """The rank that failed first: by the time its traceback was written, or, for a rank
    that died without one (killed, os._exit), first if its death was the first one seen:
    the others' errors ("connection closed by peer") are then its consequence.

    A peer's "connection closed" error can be written before the traceback of the rank
    whose failure caused it (gloo closes the connection before Python formats the
    exception), so such errors rank after every other kind whatever their time."""
    failures: dict[int, _Failure] = {}
    order: list[tuple[bool, float, int]] = []
    for rank, proc in enumerate(procs):
        report = _read_failure(run_dir, rank)
        if report is None and proc.exitcode not in (None, 0):
            how = _died(proc.exitcode, run_dir / f"{rank}.stderr")
            when = float("-inf") if rank == seen_first else float("inf")
            report = _Failure(when, how.splitlines()[0], how)
        if report is not None:
            failures[rank] = report
            order.append((report.secondary, report.stamp, rank))
    rank = min(order)[2]
    first = failures[rank]
    others = [r for _, _, r in sorted(order) if r != rank]
    returned = [r for r, p in enumerate(procs) if p.exitcode == 0 and r not in failures]
    if first.timed_out:
        head = "; ".join(
            f"rank {r} timed out after {failures[r].seconds:g} s in {failures[r].where or 'a collective'}"
            if r in failures and failures[r].timed_out
            else _whereabouts(procs, run_dir, [r], failures)
            for r in range(len(procs))
        )
        head += " (a collective that some rank never joined, or a recv without a matching send?)"
    elif first.secondary and returned and len(failures) == 1:
        head = (
            f"rank {rank}: {first.where or 'a collective'} lost its peer: rank(s) {returned} returned "
            "without joining it (every rank must make the same collective calls, in the same order)"
        )
    else:
        head = f"rank {rank}: {first.summary}"
    also = f"; rank(s) {others} failed after it" if others else ""
    return WorkerError(
        f"{head}\n(rank {rank} of {len(procs)} failed first{also})\n"
        + _details(procs, run_dir, [rank] + [r for r in range(len(procs)) if r != rank], failures),
        rank,
    )


def _details(
    procs: list[Any], run_dir: Path, ranks: list[int], failures: dict[int, _Failure] | None = None
) -> str:
    """Every listed rank's traceback, or its stack when it was killed while running."""
    parts = []
    for rank in ranks:
        report = (failures or {}).get(rank) or _read_failure(run_dir, rank)
        if report is not None:
            parts.append(f"--- rank {rank} ---\n{report.traceback.rstrip()}")
            continue
        stack = _read_stack(run_dir, rank)
        if stack:
            parts.append(f"--- rank {rank} (still running, stopped here) ---\n{stack.rstrip()}")
    return "\n".join(parts)


def _whereabouts(
    procs: list[Any], run_dir: Path, ranks: list[int], failures: dict[int, _Failure] | None = None
) -> str:
    """One clause per rank: where it was when the run stopped."""
    said = []
    for rank in ranks:
        report = (failures or {}).get(rank)
        if report is not None and report.secondary and report.where:
            said.append(f"rank {rank} was waiting in {report.where}")  # until its peer went away
        elif report is not None:
            said.append(f"rank {rank}: {report.summary}")
        elif procs[rank].exitcode == 0:
            said.append(f"rank {rank} had returned")
        else:
            said.append(f"rank {rank} was {_stack_place(_read_stack(run_dir, rank))}")
    return "; ".join(said)


def _is_dist(filename: str) -> bool:
    return f"torch{os.sep}distributed{os.sep}" in filename


def _is_library(filename: str) -> bool:
    return (
        filename == __file__
        or "site-packages" in filename
        or filename.startswith((sys.prefix, sys.base_prefix))
    )


def _place(frames: list[tuple[str, int, str]]) -> str:
    """Where a stack (outermost frame first) stood: the torch.distributed call it was in,
    with the line of the notebook's function that made it, else that function's line."""
    for i, (filename, _, _) in enumerate(frames):
        if _is_dist(filename):
            call = next(
                (name for f, _, name in frames[i:] if _is_dist(f) and name not in ("wrapper", "<lambda>")),
                "a collective",
            )
            caller = next((fr for fr in reversed(frames[:i]) if not _is_library(fr[0])), None)
            where = f"dist.{call}" if call != "a collective" else call
            return f"{where} (line {caller[1]} of {caller[2]})" if caller else where
    return ""


def _stack_place(stack: str) -> str:
    """From a faulthandler dump: 'in dist.recv (line 5 of ring)' or 'running ring (line 7)'."""
    frames = [
        (m.group(1), int(m.group(2)), m.group(3))
        for m in re.finditer(r'File "(.*)", line (\d+) in (\S+)', stack)
    ][::-1]  # faulthandler prints the innermost frame first
    place = _place(frames)
    if place:
        return f"in {place}"
    own = [fr for fr in frames if not _is_library(fr[0])]
    if own:
        return f"running {own[-1][2]} (line {own[-1][1]})"
    return "still running (killed)"


def _dump_stacks(procs: list[Any], ranks: list[int], run_dir: Path) -> None:
    """Ask each running rank for its Python stack (faulthandler, registered on SIGUSR1 by
    `_worker`) and wait up to half a second for the dumps."""
    asked = []
    for rank in ranks:
        proc = procs[rank]
        if proc.exitcode is None and (run_dir / f"{rank}.stack").is_file():
            try:
                os.kill(proc.pid, signal.SIGUSR1)
                asked.append(rank)
            except OSError:
                pass
    deadline = time.monotonic() + 0.5
    while asked and time.monotonic() < deadline:
        if all(_read_stack(run_dir, rank) for rank in asked):
            time.sleep(0.02)  # let the last lines of a dump land
            return
        time.sleep(0.01)


def _read_stack(run_dir: Path, rank: int) -> str:
    path = run_dir / f"{rank}.stack"
    return path.read_text(errors="replace") if path.is_file() else ""


def _summary(error: BaseException) -> str:
    """`Name: first line of the message`, with gloo's source-file prefix and advice cut."""
    name = type(error).__name__
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    if not lines:
        return name
    text = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", lines[0])
    text = text.split(". This is typically caused by", 1)[0]
    if text.endswith(":") and len(lines) > 1:
        text += " " + lines[1]
    return f"{name}: {text}"[:400]


def _died(exitcode: int, stderr: Path) -> str:
    how = f"was killed by signal {-exitcode}" if exitcode < 0 else f"exited with code {exitcode}"
    if exitcode == -signal.SIGKILL:
        how += " (the memory limit?)"
    tail = stderr.read_text(errors="replace")[-2000:] if stderr.is_file() else ""
    return f"the process {how} without a Python exception\n{tail}"


def _kill(procs: list[Any]) -> None:
    for proc in procs:
        if proc.exitcode is None:
            proc.kill()
    for proc in procs:
        proc.join(timeout=5)


def _show_output(run_dir: Path, world_size: int) -> None:
    for rank in range(world_size):
        path = run_dir / f"{rank}.stdout"
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                print(f"[rank {rank}] {line}")


def _load(path: Path) -> Any:
    with path.open("rb") as f:
        return pickle.load(f)


def _worker(
    fn: Callable[..., Any], rank: int, world_size: int, args: tuple[Any, ...], run_dir: Path, seconds: float
) -> None:
    """The body of a forked worker. Always ends in os._exit: the kernel's atexit handlers
    and its sockets belong to the kernel, not to this copy of it."""
    code = 1
    try:
        _die_with_parent()
        _redirect_output(run_dir, rank)
        # The kernel asks for this rank's stack (SIGUSR1) before it kills a run that hangs;
        # it signals only once `<rank>.stack` exists, so only after the handler is in place.
        stack_file = open(run_dir / f"{rank}.stack-new", "w")  # noqa: SIM115 - lives until os._exit
        faulthandler.register(signal.SIGUSR1, file=stack_file, all_threads=True)
        os.rename(run_dir / f"{rank}.stack-new", run_dir / f"{rank}.stack")
        import torch
        import torch.distributed as dist

        torch.set_num_threads(1)
        if sys.platform.startswith("linux"):
            # Bind gloo to loopback: resolving the host name fails in a sandbox without DNS.
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        dist.init_process_group(
            "gloo",
            init_method=f"file://{run_dir / 'rendezvous'}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=seconds),
        )
        # Every rank joins the group before any runs `fn`: a rank whose `fn` returns at once
        # would otherwise leave while a slower peer is still connecting to it.
        dist.barrier()
        result = fn(rank, world_size, *args)
        tmp = run_dir / f"{rank}.result.tmp"
        with tmp.open("wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.rename(run_dir / f"{rank}.result")
        dist.destroy_process_group()
        code = 0
    except BaseException as error:
        report = {"stamp": time.monotonic(), "summary": type(error).__name__, "traceback": ""}
        try:
            report["traceback"] = traceback.format_exc()
            report["summary"] = _summary(error)
            tb = traceback.extract_tb(error.__traceback__)
            report["where"] = _place([(fr.filename, fr.lineno or 0, fr.name) for fr in tb])
            report["seconds"] = seconds
        except BaseException:
            pass
        tmp = run_dir / f"{rank}.error.tmp"
        tmp.write_text(json.dumps(report))
        tmp.rename(run_dir / f"{rank}.error")  # whole or absent: the kernel reads it while we run
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _die_with_parent() -> None:
    processes.die_with_parent()
    # An interrupt (Ctrl-C, the grader's cell timeout) is the kernel's to handle: it kills us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _redirect_output(run_dir: Path, rank: int) -> None:
    # Both Python's streams and file descriptors 1 and 2 (where C++ logs): the kernel's are
    # sockets to the notebook that this copy must not write to.
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(run_dir / f"{rank}.{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives until os._exit
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
