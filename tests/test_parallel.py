"""run_distributed: a function defined here runs on N real gloo processes, and whatever
the workers do (return, print, raise, deadlock, spin), the call returns promptly and no
worker outlives it; the error's first line names the cause (the failing rank and its own
exception, or where each rank waited), the one line `llmlabs check` shows."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from types import SimpleNamespace

import psutil
import pytest
import torch
import torch.distributed as dist

from graders.notebook import WorkerError, WorkerTimeout, run_distributed
from graders.notebook.parallel import _first_failure, _summary


def _children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.is_running()]


@pytest.fixture(autouse=True)
def no_worker_left_behind():
    before = {p.pid for p in _children()}
    yield
    left = [p for p in _children() if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"worker processes left running after run_distributed: {left}"


def _scaled_sum(rank, world_size, x):
    y = x * (rank + 1)
    dist.all_reduce(y)
    print(f"pid {os.getpid()} threads {torch.get_num_threads()}")
    return rank, world_size, y, dist.get_rank()


def test_results_come_back_in_rank_order(capsys):
    out = run_distributed(_scaled_sum, 4, torch.ones(3), timeout=60)
    assert [r[:2] for r in out] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert [r[3] for r in out] == [0, 1, 2, 3], "fn must run inside an initialised process group"
    for _, _, y, _ in out:
        assert torch.equal(y, torch.full((3,), 10.0)), y  # 1 + 2 + 3 + 4
    printed = capsys.readouterr().out.splitlines()
    # Each worker's stdout comes back, prefixed with its rank; each took one torch thread.
    assert sorted(line.split("]")[0] for line in printed) == [f"[rank {r}" for r in range(4)], printed
    assert all(line.endswith("threads 1") for line in printed), printed
    assert len({line.split()[3] for line in printed}) == 4, "one process per rank"


def _point_to_point(rank, world_size):
    buf = torch.full((2,), float(rank))
    if rank == 0:
        dist.send(buf, dst=1)
    else:
        dist.recv(buf, src=0)
    return buf


def test_send_recv_and_world_size_one():
    a, b = run_distributed(_point_to_point, 2, timeout=60)
    assert torch.equal(a, torch.zeros(2)) and torch.equal(b, torch.zeros(2))
    assert run_distributed(lambda rank, n: (rank, n), 1) == [(0, 1)]


def _raises_on_rank_one(rank, world_size):
    if rank == 1:
        raise ValueError("rank one cannot go on")
    dist.barrier()  # would wait for rank 1 forever: the run must stop it
    return rank


def test_a_raising_worker_shows_its_traceback():
    start = time.monotonic()
    with pytest.raises(WorkerError) as info:
        run_distributed(_raises_on_rank_one, 2, timeout=30)
    assert time.monotonic() - start < 15, "a failing rank must stop the run at once, not at the deadline"
    assert info.value.rank == 1
    message = str(info.value)
    first = message.splitlines()[0]
    assert first == "rank 1: ValueError: rank one cannot go on", message
    assert "rank 1 of 2 failed first; rank(s) [0] failed after it" in message, message
    assert "ValueError: rank one cannot go on" in message and "_raises_on_rank_one" in message, message
    # Every rank's traceback stays in the message, the cause's first.
    assert message.index("--- rank 1 ---") < message.index("--- rank 0 ---"), message
    assert "in barrier" in message.split("--- rank 0 ---")[1], message


def _wrong_count(rank, world_size):
    sent = 36
    assert sent <= 18, f"all_reduce sent {sent} elements, at most 18 allowed\nsecond line"
    return rank


def test_an_assertion_in_a_worker_is_the_first_line():
    with pytest.raises(WorkerError) as info:
        run_distributed(_wrong_count, 2, timeout=30)
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"rank {info.value.rank}: AssertionError: all_reduce sent 36 elements"), first
    assert "second line" not in first, first


def _deadlock(rank, world_size):
    buf = torch.zeros(1)
    dist.recv(buf, src=1 - rank)  # both ranks wait to receive first: neither ever sends
    return rank


def test_a_hanging_collective_times_out_in_the_worker():
    start = time.monotonic()
    with pytest.raises(WorkerError) as info:
        run_distributed(_deadlock, 2, timeout=4)
    took = time.monotonic() - start
    # Collectives time out at half the deadline, so the worker reports where it waited.
    assert not isinstance(info.value, WorkerTimeout), str(info.value)
    assert "Timed out" in str(info.value) and "_deadlock" in str(info.value), str(info.value)
    assert took < 4 + 2, f"took {took:.1f} s with a 4 s timeout"
    # The first line says which ranks waited in which call, in rank order: the one that
    # timed out first, and its peer in the same recv (timed out too, or lost its connection).
    first = str(info.value).splitlines()[0]
    r = info.value.rank
    assert first.startswith("rank 0 ") and "; rank 1 " in first, first
    assert f"rank {r} timed out after 2 s in dist.recv (line " in first, first
    assert first.count("dist.recv (line ") == 2 and first.count(" of _deadlock)") == 2, first


def _skips_the_collective(rank, world_size):
    if rank == 0:
        dist.all_reduce(torch.ones(2))
    return rank  # rank 1 never joins rank 0's all_reduce


def test_a_collective_a_peer_never_joined_names_the_peer():
    with pytest.raises(WorkerError) as info:
        run_distributed(_skips_the_collective, 2, timeout=4)
    first = str(info.value).splitlines()[0]
    assert first.startswith("rank 0: dist.all_reduce (line "), first
    assert "rank(s) [1] returned without joining it" in first, first


def _spins(rank, world_size):
    while True:  # no collective to time out: only the deadline stops this
        pass


def test_a_worker_past_the_deadline_is_killed():
    start = time.monotonic()
    with pytest.raises(WorkerTimeout, match="did not finish within 1.5 s") as info:
        run_distributed(_spins, 2, timeout=1.5)
    assert time.monotonic() - start < 1.5 + 5
    # Each rank's stack, dumped before the kill, says where it was.
    first = str(info.value).splitlines()[0]
    assert "rank 0 was running _spins (line " in first and "rank 1 was running _spins" in first, first
    assert "--- rank 0 (still running, stopped here) ---" in str(info.value), str(info.value)


def _late_barrier(rank, world_size):
    if rank == 0:
        dist.barrier()
    else:
        time.sleep(60)


def test_an_interrupt_says_where_the_ranks_were():
    # The grader's per-cell timeout interrupts the kernel (SIGINT): the KeyboardInterrupt
    # says what each rank was doing, and no worker is left (the autouse fixture checks).
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            run_distributed(_late_barrier, 2, timeout=60)
    finally:
        timer.cancel()
    said = str(info.value)
    assert said.startswith("interrupted while rank(s) [0, 1] were still running: "), said
    assert "rank 0 was in dist.barrier (line " in said and "of _late_barrier)" in said, said
    assert "rank 1 was running _late_barrier (line " in said, said


def _dies(rank, world_size):
    if rank == 0:
        os._exit(3)
    dist.barrier()


def test_a_worker_that_dies_without_an_exception_is_reported():
    with pytest.raises(WorkerError, match="(?s)rank 0 of 2 failed.*exited with code 3") as info:
        run_distributed(_dies, 2, timeout=30)
    first = str(info.value).splitlines()[0]
    assert first == "rank 0: the process exited with code 3 without a Python exception", first


def test_bad_arguments():
    with pytest.raises(ValueError, match="world_size"):
        run_distributed(_spins, 0)
    with pytest.raises(ValueError, match="timeout"):
        run_distributed(_spins, 2, timeout=0)


def _report(path, stamp, summary, where=""):
    # What _worker writes for a rank that raised.
    report = {"stamp": stamp, "summary": summary, "traceback": f"Traceback ...\n{summary}\n"}
    path.write_text(json.dumps(dict(report, where=where, seconds=2.0)))


def test_a_peers_connection_closed_error_never_hides_the_cause(tmp_path):
    # On a loaded machine the rank that timed out can write its traceback after the peer
    # it disconnected wrote "Connection closed by peer" (CI saw this): the cause still wins.
    _report(
        tmp_path / "0.error",
        2.0,
        "RuntimeError: Timed out waiting 2000ms for recv",
        "dist.recv (line 3 of f)",
    )
    _report(
        tmp_path / "1.error",
        1.0,
        "RuntimeError: Connection closed by peer [127.0.0.1]:11475",
        "dist.send (line 5 of f)",
    )
    procs = [SimpleNamespace(exitcode=1), SimpleNamespace(exitcode=1)]
    error = _first_failure(procs, tmp_path, seen_first=1)
    assert error.rank == 0 and "Timed out" in str(error), str(error)
    assert "rank(s) [1] failed after it" in str(error), str(error)
    first = str(error).splitlines()[0]
    assert first.startswith(
        "rank 0 timed out after 2 s in dist.recv (line 3 of f); rank 1 was waiting in dist.send (line 5 of f)"
    ), first


def test_of_two_causes_the_earlier_traceback_wins(tmp_path):
    _report(tmp_path / "0.error", 2.0, "ValueError: second")
    _report(tmp_path / "1.error", 1.0, "ValueError: first")
    procs = [SimpleNamespace(exitcode=1), SimpleNamespace(exitcode=1)]
    error = _first_failure(procs, tmp_path, seen_first=0)
    assert error.rank == 1 and str(error).splitlines()[0] == "rank 1: ValueError: first", str(error)


def test_summary_of_a_gloo_error_drops_its_source_path_and_advice():
    error = RuntimeError(
        "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by "
        "peer [127.0.0.1]:23452. This is typically caused by a remote worker crashing. GLHF!"
    )
    assert _summary(error) == "RuntimeError: Connection closed by peer [127.0.0.1]:23452"
    assert _summary(ValueError("values differ:\n  expected 1, got 2")) == (
        "ValueError: values differ: expected 1, got 2"
    )
    assert _summary(NotImplementedError()) == "NotImplementedError"
