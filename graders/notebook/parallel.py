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
  next collective) and `WorkerError` shows the traceback of the rank that failed first;
- at the deadline, on an interrupt (the grader's per-cell timeout) or any other exit,
  every worker still alive is killed and reaped; on Linux a worker also dies with the
  kernel (parent-death signal), so not even a killed kernel leaves one behind.

Workers are ordinary child processes of the kernel: inside the grading sandbox they
count towards its process and memory caps and die with it. What a worker prints comes
back as the kernel's own output, each line prefixed with its rank (stdout only: a
worker's stderr, where torch and gloo log, appears only in a `WorkerError`, since a
test cell that writes to stderr scores 0).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

__all__ = ["run_distributed", "WorkerError", "WorkerTimeout"]

MAX_WORLD_SIZE = 16
# A collective that never completes raises in the worker after this share of the
# deadline, so the learner sees where it waited; the kill at the deadline is the backstop.
COLLECTIVE_SHARE = 0.5


class WorkerError(RuntimeError):
    """A worker raised or died; the message holds the first failing rank's traceback."""

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
        _wait_all(procs, run_dir, time.monotonic() + timeout, timeout)
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
            raise WorkerTimeout(
                f"rank(s) {ranks} did not finish within {timeout:g} s and were killed: a collective "
                "that some rank never joined, or a recv without a matching send (a deadlock)?",
                ranks[0],
            )
        for sentinel in wait(list(pending), timeout=left):
            rank = pending.pop(sentinel)  # type: ignore[call-overload]
            procs[rank].join()
            if procs[rank].exitcode != 0:
                # The others would wait for this rank in their next collective: give the ones
                # already failing a moment to say why, then report whoever failed first.
                _grace(procs, run_dir, rank)
                raise _first_failure(procs, run_dir, rank)


# Errors a rank raises because a peer went away first: never the cause, whatever their time.
_CONSEQUENCES = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")


def _grace(procs: list[Any], run_dir: Path, failed: int) -> None:
    """Wait 0.2 s for other ranks to report; up to 3 s while the only reports are a peer's
    "connection closed" (the rank that caused it, on a loaded machine, may still be
    formatting its traceback) and some rank is still alive."""
    start = time.monotonic()
    time.sleep(0.2)
    if not (run_dir / f"{failed}.error").is_file():
        return  # died without a traceback (killed, os._exit): it is the cause
    while time.monotonic() - start < 3 and any(p.exitcode is None for p in procs):
        texts = [_error_text(run_dir, rank) for rank in range(len(procs))]
        if any(text and not _secondary(text) for text in texts):
            return
        time.sleep(0.05)


def _error_text(run_dir: Path, rank: int) -> str:
    path = run_dir / f"{rank}.error"
    return path.read_text(errors="replace") if path.is_file() else ""


def _secondary(text: str) -> bool:
    lines = text.strip().splitlines()
    return bool(lines) and any(sign in lines[-1] for sign in _CONSEQUENCES)


def _first_failure(procs: list[Any], run_dir: Path, seen_first: int) -> WorkerError:
    """The rank that failed first: by the time its traceback was written, or, for a rank
    that died without one (killed, os._exit), first if its death was the first one seen:
    the others' errors ("connection closed by peer") are then its consequence.

    A peer's "connection closed" error can be written before the traceback of the rank
    whose failure caused it (gloo closes the connection before Python formats the
    exception), so such errors rank after every other kind whatever their time."""
    failures: list[tuple[bool, float, int, str]] = []
    for rank, proc in enumerate(procs):
        path = run_dir / f"{rank}.error"
        if path.is_file():
            stamp, _, text = path.read_text(errors="replace").partition("\n")
            failures.append((_secondary(text), float(stamp), rank, text))
        elif proc.exitcode not in (None, 0):
            when = float("-inf") if rank == seen_first else float("inf")
            failures.append((False, when, rank, _died(proc.exitcode, run_dir / f"{rank}.stderr")))
    _, _, rank, text = min(failures)
    others = [r for _, _, r, _ in failures if r != rank]
    also = f" (rank(s) {others} failed after it)" if others else ""
    return WorkerError(f"rank {rank} of {len(procs)} failed{also}:\n{text}", rank)


def _died(exitcode: int, stderr: Path) -> str:
    how = f"killed by signal {-exitcode}" if exitcode < 0 else f"exited with code {exitcode}"
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
        result = fn(rank, world_size, *args)
        tmp = run_dir / f"{rank}.result.tmp"
        with tmp.open("wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.rename(run_dir / f"{rank}.result")
        dist.destroy_process_group()
        code = 0
    except BaseException:
        stamp = time.monotonic()
        tmp = run_dir / f"{rank}.error.tmp"
        tmp.write_text(f"{stamp!r}\n{traceback.format_exc()}")
        tmp.rename(run_dir / f"{rank}.error")  # whole or absent: the kernel reads it while we run
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
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
