"""Assertions for test cells whose failure messages teach.

Every check converts its inputs to plain NumPy data *after* checking their type, so an
object that overrides `__eq__` (or a tensor subclass) cannot pass by pretending. Each
failure says what was expected, what was returned, and where they differ most.

Tolerances are always explicit arguments: the caller states why a value is enough
(float32 round-off grows with the reduction length; a library oracle may use another
summation order).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from graders.notebook.language import say

__all__ = ["assert_close", "assert_shape", "assert_dtype", "assert_scalar_close", "to_numpy"]

_SMALL = 16  # arrays with at most this many elements are printed in full

# Captured when this module is imported (a notebook's locked setup cell, before any
# learner code), so a notebook that later monkeypatches NumPy functions or builtins
# cannot change what these checks compute. The audit flags such patching too.
_abs, _isinstance, _float, _type, _len = abs, isinstance, float, type, len
_np_abs, _np_isnan, _np_isinf, _np_where, _np_any = np.abs, np.isnan, np.isinf, np.where, np.any
_np_sum, _np_argmax, _np_argwhere, _np_array = np.sum, np.argmax, np.argwhere, np.array


def _is_torch_tensor(x: Any) -> bool:
    mod = _type(x).__module__ or ""
    return mod.startswith("torch") and hasattr(x, "detach")


def to_numpy(x: Any, name: str = "result") -> np.ndarray:
    """A plain ndarray copy of a NumPy array, torch tensor or Python number/list."""
    if _is_torch_tensor(x):
        t = x.detach().cpu()
        if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        return _np_array(t.numpy(), copy=True)
    if _isinstance(x, np.ndarray):
        return _np_array(x, copy=True)
    if _isinstance(x, (numbers.Number, np.generic, list, tuple)):
        return _np_array(x)
    raise AssertionError(
        say(
            "{name}: expected an array (NumPy or torch), got an object of type {type}",
            name=name,
            type=_type(x).__name__,
        )
    )


def _shape_of(x: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in x.shape)


def assert_shape(got: Any, expected_shape: Sequence[int], name: str = "result") -> None:
    arr_shape = _shape_of(to_numpy(got, name))
    expected = tuple(expected_shape)
    if arr_shape != expected:
        raise AssertionError(
            say(
                "{name}: expected shape {expected}, got shape {got}",
                name=name,
                expected=expected,
                got=arr_shape,
            )
        )


def assert_dtype(got: Any, expected_dtype: Any, name: str = "result") -> None:
    if _is_torch_tensor(got):
        actual = str(got.dtype)
        wanted = str(expected_dtype)
    else:
        actual = str(to_numpy(got, name).dtype)
        wanted = str(np.dtype(expected_dtype))
    if actual != wanted:
        raise AssertionError(
            say("{name}: expected dtype {expected}, got dtype {got}", name=name, expected=wanted, got=actual)
        )


def _fmt(a: np.ndarray) -> str:
    return np.array2string(a, precision=6, separator=", ", threshold=_SMALL)


def assert_close(got: Any, expected: Any, *, rtol: float, atol: float, name: str = "result") -> None:
    """|got - expected| <= atol + rtol * |expected| elementwise, NaN only where expected is NaN."""
    g = to_numpy(got, name)
    e = to_numpy(expected, "expected")
    if g.shape != e.shape:
        raise AssertionError(
            say(
                "{name}: expected shape {expected}, got shape {got}", name=name, expected=e.shape, got=g.shape
            )
        )
    if g.dtype.kind not in "biufc":
        raise AssertionError(say("{name}: expected numbers, got dtype {got}", name=name, got=g.dtype))
    g64, e64 = (
        g.astype(np.complex128 if g.dtype.kind == "c" else np.float64),
        e.astype(np.float64 if e.dtype.kind != "c" else np.complex128),
    )
    nan_g, nan_e = _np_isnan(g64), _np_isnan(e64)
    if _np_any(nan_g != nan_e):
        idx = tuple(int(i) for i in _np_argwhere(nan_g != nan_e)[0])
        raise AssertionError(
            say(
                "{name}: NaN mismatch at index {idx}: expected {expected}, got {got} "
                "({unexpected} unexpected NaNs, {missing} missing)",
                name=name,
                idx=idx,
                expected=e64[idx].item(),
                got=g64[idx].item(),
                unexpected=int(np.sum(nan_g & ~nan_e)),
                missing=int(np.sum(nan_e & ~nan_g)),
            )
        )
    with np.errstate(invalid="ignore", over="ignore"):
        inf_mismatch = (_np_isinf(g64) | _np_isinf(e64)) & (g64 != e64)
        diff = _np_where(nan_e | (_np_isinf(e64) & (g64 == e64)), 0.0, _np_abs(g64 - e64))
        diff = _np_where(inf_mismatch, np.inf, diff)
        bad = diff > atol + rtol * _np_abs(_np_where(_np_isinf(e64), 0.0, e64))
    if not _np_any(bad):
        return
    flat = int(_np_argmax(_np_where(bad, diff, -1.0)))
    idx = tuple(int(i) for i in np.unravel_index(flat, g.shape)) if g.shape else ()
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = diff[idx] / _abs(e64[idx]) if e64[idx] != 0 else np.inf
    lines = [
        say(
            "{name}: {bad} of {size} values differ from the expected ones "
            "(tolerance: atol={atol}, rtol={rtol})",
            name=name,
            bad=int(_np_sum(bad)),
            size=bad.size,
            atol=f"{atol:g}",
            rtol=f"{rtol:g}",
        ),
        say(
            "  worst at index {idx}: expected {expected}, got {got} "
            "(abs error {abs_err}, rel error {rel_err})",
            idx=idx,
            expected=repr(e64[idx].item()),
            got=repr(g64[idx].item()),
            abs_err=f"{diff[idx]:.3g}",
            rel_err=f"{rel:.3g}",
        ),
    ]
    if g.size <= _SMALL:
        lines += [say("  expected: {value}", value=_fmt(e)), say("  got:      {value}", value=_fmt(g))]
    raise AssertionError("\n".join(lines))


def assert_scalar_close(got: Any, expected: float, *, rtol: float, atol: float, name: str = "result") -> None:
    if _is_torch_tensor(got) or _isinstance(got, np.ndarray):
        arr = to_numpy(got, name)
        if arr.size != 1:
            raise AssertionError(
                say(
                    "{name}: expected a single number, got an array of shape {shape}",
                    name=name,
                    shape=arr.shape,
                )
            )
        got = arr.reshape(()).item()
    if not _isinstance(got, (numbers.Real, np.generic)) or _isinstance(got, bool):
        raise AssertionError(
            say(
                "{name}: expected a number, got {type}: {value}",
                name=name,
                type=_type(got).__name__,
                value=repr(got),
            )
        )
    value = _float(got)
    if not _abs(value - expected) <= atol + rtol * _abs(expected):
        raise AssertionError(
            say(
                "{name}: expected {expected} (atol={atol}, rtol={rtol}), got {got}",
                name=name,
                expected=repr(expected),
                atol=f"{atol:g}",
                rtol=f"{rtol:g}",
                got=repr(value),
            )
        )
