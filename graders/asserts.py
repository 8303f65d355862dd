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

import numpy as np

__all__ = ["assert_close", "assert_shape", "assert_dtype", "assert_scalar_close", "to_numpy"]

_SMALL = 16  # arrays with at most this many elements are printed in full


def _is_torch_tensor(x) -> bool:
    mod = type(x).__module__ or ""
    return mod.startswith("torch") and hasattr(x, "detach")


def to_numpy(x, name: str = "result") -> np.ndarray:
    """A plain ndarray copy of a NumPy array, torch tensor or Python number/list."""
    if _is_torch_tensor(x):
        t = x.detach().cpu()
        if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        return np.array(t.numpy(), copy=True)
    if isinstance(x, np.ndarray):
        return np.array(x, copy=True)
    if isinstance(x, (numbers.Number, np.generic, list, tuple)):
        return np.array(x)
    raise AssertionError(
        f"{name}: expected an array (NumPy or torch), got an object of type {type(x).__name__}"
    )


def _shape_of(x) -> tuple:
    return tuple(int(s) for s in x.shape)


def assert_shape(got, expected_shape, name: str = "result") -> None:
    arr_shape = _shape_of(to_numpy(got, name))
    expected = tuple(expected_shape)
    if arr_shape != expected:
        raise AssertionError(f"{name}: expected shape {expected}, got shape {arr_shape}")


def assert_dtype(got, expected_dtype, name: str = "result") -> None:
    if _is_torch_tensor(got):
        actual = str(got.dtype)
        wanted = str(expected_dtype)
    else:
        actual = str(to_numpy(got, name).dtype)
        wanted = str(np.dtype(expected_dtype))
    if actual != wanted:
        raise AssertionError(f"{name}: expected dtype {wanted}, got dtype {actual}")


def _fmt(a: np.ndarray) -> str:
    return np.array2string(a, precision=6, separator=", ", threshold=_SMALL)


def assert_close(got, expected, *, rtol: float, atol: float, name: str = "result") -> None:
    """|got - expected| <= atol + rtol * |expected| elementwise, NaN only where expected is NaN."""
    g = to_numpy(got, name)
    e = to_numpy(expected, "expected")
    if g.shape != e.shape:
        raise AssertionError(f"{name}: expected shape {e.shape}, got shape {g.shape}")
    if g.dtype.kind not in "biufc":
        raise AssertionError(f"{name}: expected numbers, got dtype {g.dtype}")
    g64, e64 = g.astype(np.complex128 if g.dtype.kind == "c" else np.float64), e.astype(np.float64 if e.dtype.kind != "c" else np.complex128)
    nan_g, nan_e = np.isnan(g64), np.isnan(e64)
    if np.any(nan_g != nan_e):
        idx = tuple(int(i) for i in np.argwhere(nan_g != nan_e)[0])
        raise AssertionError(
            f"{name}: NaN mismatch at index {idx}: expected {e64[idx].item()}, got {g64[idx].item()}"
            f" ({int(np.sum(nan_g & ~nan_e))} unexpected NaNs, {int(np.sum(nan_e & ~nan_g))} missing)"
        )
    with np.errstate(invalid="ignore", over="ignore"):
        inf_mismatch = (np.isinf(g64) | np.isinf(e64)) & (g64 != e64)
        diff = np.where(nan_e | (np.isinf(e64) & (g64 == e64)), 0.0, np.abs(g64 - e64))
        diff = np.where(inf_mismatch, np.inf, diff)
        bad = diff > atol + rtol * np.abs(np.where(np.isinf(e64), 0.0, e64))
    if not np.any(bad):
        return
    flat = int(np.argmax(np.where(bad, diff, -1.0)))
    idx = np.unravel_index(flat, g.shape) if g.shape else ()
    idx = tuple(int(i) for i in idx)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = diff[idx] / abs(e64[idx]) if e64[idx] != 0 else np.inf
    lines = [
        f"{name}: {int(bad.sum())} of {bad.size} values differ from the expected ones "
        f"(tolerance: atol={atol:g}, rtol={rtol:g})",
        f"  worst at index {idx}: expected {e64[idx].item()!r}, got {g64[idx].item()!r} "
        f"(abs error {diff[idx]:.3g}, rel error {rel:.3g})",
    ]
    if g.size <= _SMALL:
        lines += [f"  expected: {_fmt(e)}", f"  got:      {_fmt(g)}"]
    raise AssertionError("\n".join(lines))


def assert_scalar_close(got, expected: float, *, rtol: float, atol: float, name: str = "result") -> None:
    if _is_torch_tensor(got) or isinstance(got, np.ndarray):
        arr = to_numpy(got, name)
        if arr.size != 1:
            raise AssertionError(f"{name}: expected a single number, got an array of shape {arr.shape}")
        got = arr.reshape(()).item()
    if not isinstance(got, (numbers.Real, np.generic)) or isinstance(got, bool):
        raise AssertionError(f"{name}: expected a number, got {type(got).__name__}: {got!r}")
    value = float(got)
    if not abs(value - expected) <= atol + rtol * abs(expected):
        raise AssertionError(
            f"{name}: expected {expected!r} (atol={atol:g}, rtol={rtol:g}), got {value!r}"
        )
