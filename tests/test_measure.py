"""The measurement helpers, on workloads whose answer is known."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from graders.notebook.measure import (
    CallCounter,
    count_parameters,
    peak_memory_numpy,
    peak_memory_torch,
    speedup,
    tensor_bytes,
    time_call,
)


def test_time_call_warms_up_then_repeats():
    calls = []
    timing = time_call(lambda: calls.append(1), repeats=5, warmup=3)
    assert len(calls) == 8 and len(timing.times) == 5
    assert timing.median <= timing.p90
    with pytest.raises(ValueError):
        time_call(lambda: None, repeats=0)


def test_speedup_sees_a_tenfold_difference():
    # sleep does not compete for the CPU, but on a loaded machine a sleeper wakes late by a
    # few ms (seen: 2 ms sleeps measured as 5 ms at load 16), so the sleeps are long
    # enough for that lateness to stay small against them.
    r = speedup(lambda: time.sleep(0.02), lambda: time.sleep(0.2), repeats=3)
    assert 5 < r.ratio < 15, r
    assert len(r.fast.times) == len(r.slow.times) == 3


def test_speedup_interleaves():
    order = []
    speedup(lambda: order.append("f"), lambda: order.append("s"), repeats=4, warmup=0)
    assert order == ["f", "s", "s", "f", "f", "s", "s", "f"]


def test_peak_memory_numpy_counts_a_temporary():
    def make():
        a = np.ones(1_000_000)  # 8 MB, freed before returning
        return float(a.sum())

    _, peak = peak_memory_numpy(make)
    assert 8_000_000 <= peak < 8_200_000


def test_peak_memory_torch_cpu_is_exact_and_repeatable():
    def scores():
        q = torch.ones(256, 64)
        return (q @ q.T).sum()  # the 256x256 float32 product is the peak

    peaks = [peak_memory_torch(scores)[1] for _ in range(3)]
    assert len(set(peaks)) == 1
    assert 256 * 256 * 4 <= peaks[0] <= 256 * 256 * 4 + 2 * 256 * 64 * 4 + 4096


def test_counters():
    f = CallCounter(lambda x: x + 1)
    assert f(1) == 2 and f(2) == 3 and f.calls == 2
    layer = torch.nn.Linear(10, 5)
    assert count_parameters(layer) == 55
    layer.bias.requires_grad_(False)
    assert count_parameters(layer, trainable_only=True) == 50
    assert tensor_bytes(torch.zeros(3, dtype=torch.float16), np.zeros(2)) == 6 + 16
