"""The assertion helpers: they pass what is right, fail what is wrong, and cannot be
fooled by objects that claim equality."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from graders.notebook.asserts import assert_close, assert_dtype, assert_scalar_close, assert_shape


def test_close_passes_within_tolerance_and_reports_the_worst_index():
    x = np.arange(12.0).reshape(3, 4)
    assert_close(x + 1e-9, x, rtol=0, atol=1e-8)
    y = x.copy()
    y[2, 1] += 0.5
    y[0, 0] += 0.1
    with pytest.raises(
        AssertionError, match=r"(?s)2 of 12 values differ.*index \(2, 1\): expected 9\.0, got 9\.5"
    ):
        assert_close(y, x, rtol=0, atol=1e-3, name="scores")


def test_close_shows_small_arrays_in_full():
    with pytest.raises(AssertionError, match=r"expected: \[1\., 2\.\]\n  got:      \[1\., 3\.\]"):
        assert_close(np.array([1.0, 3.0]), np.array([1.0, 2.0]), rtol=0, atol=0)


def test_close_checks_shape_nan_and_inf():
    with pytest.raises(AssertionError, match=r"expected shape \(3,\), got shape \(1, 3\)"):
        assert_close(np.zeros((1, 3)), np.zeros(3), rtol=0, atol=1)
    with pytest.raises(AssertionError, match="NaN mismatch"):
        assert_close(np.array([np.nan, 1.0]), np.array([0.0, 1.0]), rtol=0, atol=1)
    assert_close(np.array([np.nan, -np.inf]), np.array([np.nan, -np.inf]), rtol=0, atol=0)
    with pytest.raises(AssertionError):
        assert_close(np.array([np.inf]), np.array([-np.inf]), rtol=0, atol=1)
    with pytest.raises(AssertionError):
        assert_close(np.array([1e300]), np.array([np.inf]), rtol=1, atol=1)


def test_close_accepts_torch_and_rejects_impostors():
    t = torch.arange(6, dtype=torch.float32, requires_grad=True)
    assert_close(t * 1, np.arange(6.0), rtol=0, atol=0)
    assert_close(t.to(torch.bfloat16), np.arange(6.0), rtol=0, atol=0)

    class AlwaysEqual:
        shape = (6,)

        def __eq__(self, other):
            return True

        def __array__(self, dtype=None, copy=None):
            return np.arange(6.0)

    with pytest.raises(AssertionError, match="expected an array"):
        assert_close(AlwaysEqual(), np.arange(6.0), rtol=0, atol=0)


@pytest.mark.parametrize("seed", range(20))
def test_close_agrees_with_numpy_isclose(seed):
    rng = np.random.default_rng(seed)
    expected = rng.normal(size=7) * 10.0 ** rng.integers(-3, 3)
    got = expected + rng.normal(size=7) * 10.0 ** rng.integers(-6, 0)
    rtol, atol = 10.0 ** rng.integers(-6, -1), 10.0 ** rng.integers(-6, -1)
    ok = bool(np.all(np.isclose(got, expected, rtol=rtol, atol=atol)))
    if ok:
        assert_close(got, expected, rtol=rtol, atol=atol)
    else:
        with pytest.raises(AssertionError):
            assert_close(got, expected, rtol=rtol, atol=atol)


def test_shape_dtype_scalar():
    assert_shape(torch.zeros(2, 3), (2, 3))
    with pytest.raises(AssertionError, match=r"expected shape \(3, 2\), got shape \(2, 3\)"):
        assert_shape(np.zeros((2, 3)), (3, 2))
    assert_dtype(torch.zeros(2, dtype=torch.float64), torch.float64)
    with pytest.raises(AssertionError, match="expected dtype float32, got dtype float64"):
        assert_dtype(np.zeros(2), np.float32)
    assert_scalar_close(np.float32(1.0), 1.0, rtol=0, atol=1e-6)
    assert_scalar_close(torch.tensor(2.0), 2.0, rtol=0, atol=0)
    with pytest.raises(AssertionError, match="expected a number"):
        assert_scalar_close("1.0", 1.0, rtol=0, atol=1)
    with pytest.raises(AssertionError, match="expected a single number"):
        assert_scalar_close(np.zeros(3), 0.0, rtol=0, atol=1)
    with pytest.raises(AssertionError, match=r"expected 1\.0"):
        assert_scalar_close(1.5, 1.0, rtol=0, atol=0.1)


def test_the_notebook_api_lists_each_name_once_and_every_name_resolves():
    import graders.notebook as api

    assert len(api.__all__) == len(set(api.__all__)) >= 30, api.__all__
    for name in api.__all__:
        home = importlib.import_module(f"graders.notebook.{api._WHERE[name]}")
        assert getattr(api, name) is getattr(home, name), name
