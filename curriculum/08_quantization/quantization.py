# %% [markdown]
# # Unit 08 — Quantization and honest inference timing
#
# A model's weights are numbers a GPU or CPU must *read* for every token it generates.
# Store them in 8 or 4 bits instead of 32 and the model gets 4–8× smaller, fits on smaller
# machines, and — because generating one token is limited by memory traffic, not arithmetic —
# often gets faster too. Whether it *does* get faster is a question of measurement, and
# measuring inference correctly is a skill of its own. In this unit you
#
# 1. write int8 quantization from scratch: symmetric (absmax) and asymmetric (zero-point),
#    per tensor and per channel, with rounding and clamping done right, and measure its error;
# 2. write group-wise 4-bit quantization with one scale per block of 32 weights (the idea of
#    llama.cpp's `Q4_0`/`Q8_0` formats), pack two 4-bit values per byte, and count bits per weight;
# 3. see how a few huge activation features ruin int8 matrix products, and fix it with the
#    LLM.int8() decomposition, on PyTorch's own integer kernel `torch._int_mm`;
# 4. quantize every linear layer of the course's tiny Llama model to int8 and 4 bits, count its
#    bytes exactly, and measure what it costs in validation perplexity;
# 5. write a benchmark helper that warms up, synchronises and reports median and p90, and use
#    it for latency against batch size and for generation with and without a KV cache;
# 6. put prefill and decode on a roofline and see why weight quantization speeds up decode.
#
# ## Learning objectives
#
# After this unit you can
# - derive the scale and zero point of an int8 quantizer, say which axis a Linear weight is
#   quantized along and why, and predict the error (about 6 dB of SQNR per bit);
# - explain a block format such as `Q4_0` byte for byte and compute its bits per weight;
# - explain why outlier features break per-tensor int8 activations and what LLM.int8() does;
# - quantize a real model's weights and judge the result by perplexity and bytes, not by hope;
# - time inference honestly (warm-up, synchronisation, median and tail percentiles, ratios
#   measured in one run) and spot the usual mistakes in someone else's benchmark;
# - compute the arithmetic intensity of prefill and decode and read a roofline plot.
#
# ## Prerequisites
#
# Unit 01 (matrix products, norms), unit 02 (what a KV cache is), PyTorch tensors and
# `nn.Module`, and loading a `transformers` model.
#
# ## Time, device, skills
#
# - **Time:** about 5 hours: twelve exercises, from one-liners to a quantized model and a
#   benchmark helper; plan two or three sittings (sections 1–3, then 4–6).
# - **Device:** CPU by default; the whole notebook takes under a minute on 2 idle cores (the tiny
#   model has a few million parameters). If a CUDA GPU is present, `device` becomes `"cuda"` and
#   the same code runs there; timings then need `torch.cuda.synchronize()`, which your
#   benchmark helper will do.
# - **Skills practised** (see the course skill map): *Deployment* (quantization to int8 and
#   4 bits, KV cache, latency vs throughput, honest measurement with warm-up, synchronisation
#   and percentiles, memory- vs compute-bound decode); *Linear algebra* (matrix products,
#   scales that factor out of a dot product, arithmetic intensity); *Information theory*
#   (perplexity as the quality metric); *Engineering habits* (benchmarking, checking your
#   code against a real library's kernels).
#
# Run the cell below first. It fixes seeds and threads and silences library warnings (the
# grader scores any test cell that writes to stderr as 0).

# %% setup id=setup
import contextlib
import copy
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from graders.notebook import setup

setup()

import matplotlib.pyplot as plt
import numpy as np
from graders.notebook import (
    CallCounter,
    assert_close,
    assert_dtype,
    assert_scalar_close,
    assert_shape,
    load_model,
    load_tokenizer,
    model_source,
    perplexity,
    speedup,
    synchronize,
    validation_ids,
)
from transformers import LlamaConfig

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(f"torch {torch.__version__}, running on {device}")


def int_mm(a, b):
    """torch._int_mm(a, b): int8 (M, K) @ int8 (K, N) -> exact int32 (M, N).

    On a CPU any shape works; CUDA needs M > 16 and K, N multiples of 8, so there the inputs
    are padded with zeros (which add nothing to the sums) and the result cut back.
    """
    if a.device.type != "cuda":
        return torch._int_mm(a, b)
    m, k = a.shape
    n = b.shape[1]
    mp, kp, np_ = max(m, 17), -(-k // 8) * 8, -(-n // 8) * 8
    a = F.pad(a, (0, kp - k, 0, mp - m))
    b = F.pad(b, (0, np_ - n, 0, kp - k))
    return torch._int_mm(a, b)[:m, :n]


# Two helpers the tests use (you may call them too).
@contextlib.contextmanager
def int_mm_spy():
    """Record every torch._int_mm call made inside the `with` block: a list of
    (a.dtype, b.dtype, a.shape, b.shape, result.dtype). torch._int_mm is restored afterwards."""
    calls, original = [], torch._int_mm

    def spy(a, b):
        out = original(a, b)
        calls.append((a.dtype, b.dtype, tuple(a.shape), tuple(b.shape), out.dtype))
        return out

    torch._int_mm = spy
    try:
        yield calls
    finally:
        torch._int_mm = original


def assert_runs_on_meta(label, fn, *args):
    """Call fn(*args) with tensors on the 'meta' device (shapes without data). A tensor your code
    creates without device= lands on the CPU and clashes with them, as it would with a GPU
    tensor; results must stay on the inputs' device. Code that reads values (bool(), .item())
    cannot run on 'meta': that proves nothing either way, and passes."""
    try:
        out = fn(*args)
    except (RuntimeError, NotImplementedError, TypeError) as e:
        first = (str(e).splitlines() or [""])[0]
        clash = ("expected device", "same device", "copy out of meta")
        assert not any(c in first for c in clash), (
            f"{label} with inputs on device 'meta': {first} (create tensors on the inputs' device: "
            f"device=x.device, torch.*_like(x) or x.new_*(...))"
        )
        return
    outs = out if isinstance(out, (tuple, list)) else (out,)
    devices = [t.device.type for t in outs if isinstance(t, torch.Tensor)]
    assert all(d == "meta" for d in devices), (
        f"{label} with inputs on device 'meta' returned tensors on {devices} (results must stay on the inputs' device)"
    )

# %% [markdown]
# ## 1. int8 quantization: scale, zero point, rounding, clamping
#
# An integer quantizer maps a real number $x$ to an integer $q$ in $[q_{\min}, q_{\max}]$ with a
# **scale** $s > 0$ and an integer **zero point** $z$:
#
# $$ q = \operatorname{clamp}\big(\operatorname{round}(x / s) + z,\ q_{\min},\ q_{\max}\big), \qquad \hat x = s\,(q - z). $$
#
# Two details decide whether this works:
#
# - **round, do not truncate.** `int(2.9) == 2`: truncation (what a cast does) is biased towards
#   zero and doubles the worst-case error from $s/2$ to $s$. We use `torch.round`, which rounds
#   halves to the nearest *even* integer (as the IEEE standard and PyTorch's own quantizers do).
# - **clamp before the cast.** Casting 200.0 to `torch.int8` does not saturate at 127; it wraps
#   around (or is undefined). A value beyond the range must become $q_{\max}$, the closest
#   representable value.
#
# `scale` and `zero_point` may be numbers or tensors that broadcast against `x`: one per row,
# shaped `(rows, 1)`, gives *per-channel* quantization.
#
# The oracle for this exercise is PyTorch's `torch.fake_quantize_per_tensor_affine` /
# `torch.fake_quantize_per_channel_affine`, which compute $\hat x$ in one go.

# %% answer id=quantize
def quantize(x, scale, zero_point=0, qmin=-127, qmax=127, dtype=torch.int8):
    """Affine quantization q = clamp(round(x / scale) + zero_point, qmin, qmax), as `dtype`.

    x: float tensor of any shape (float32, or bf16/fp16: x / scale is then computed in float32,
    since a 16-bit quotient keeps only 8 or 11 significant bits and moves codes by a step or more).
    scale: positive number or float tensor broadcastable to x.
    zero_point: integer number or integer tensor broadcastable to x.
    Rounds halves to even (torch.round). Returns an integer tensor of x's shape and `dtype`;
    x itself is not modified.
    """
    ### BEGIN SOLUTION
    q = torch.round(x.to(torch.float32) / scale) + zero_point
    return q.clamp(qmin, qmax).to(dtype)
    ### END SOLUTION


def dequantize(q, scale, zero_point=0):
    """x_hat = scale * (q - zero_point), as float32 (scale, zero_point as in `quantize`)."""
    ### BEGIN SOLUTION
    return (q.to(torch.float32) - zero_point) * scale
    ### END SOLUTION

# %% test id=test_quantize_visible points=1
x0 = torch.tensor([-1.0, -0.26, 0.0, 0.24, 0.25, 0.74, 5.0])
q0 = quantize(x0, 0.5, 0, -2, 2)
assert_dtype(q0, torch.int8, name="quantize(x, 0.5, 0, -2, 2)")
# x / 0.5 = [-2, -0.52, 0, 0.48, 0.5, 1.48, 10]: round (0.5 -> 0, the even neighbour), then clamp 10 -> 2.
assert_close(q0, torch.tensor([-2, -1, 0, 0, 0, 1, 2], dtype=torch.int8), rtol=0, atol=0,
             name="quantize([-1, -0.26, 0, 0.24, 0.25, 0.74, 5], scale=0.5, qmin=-2, qmax=2)")
# Integer arithmetic times a power of two: exact.
assert_close(dequantize(q0, 0.5), torch.tensor([-1.0, -0.5, 0, 0, 0, 0.5, 1.0]), rtol=0, atol=0,
             name="dequantize(q, 0.5)")
q1 = quantize(torch.tensor([0.0, 1.0, 300.0]), 0.1, 10, 0, 255, torch.uint8)
assert_close(q1, torch.tensor([10, 20, 255], dtype=torch.uint8), rtol=0, atol=0,
             name="quantize([0, 1, 300], scale=0.1, zero_point=10, 0, 255, uint8)")
assert_close(dequantize(q1, 0.1, 10), torch.tensor([0.0, 1.0, 24.5]), rtol=1e-6, atol=1e-6,
             name="dequantize([10, 20, 255], 0.1, 10)")

# %% test id=test_quantize_hidden points=1
### BEGIN HIDDEN TESTS
torch.manual_seed(100)
def _steps_off(got, expected, scale):
    """How many quantization steps apart two dequantized tensors are, per element."""
    return ((got - expected) / scale).abs().round()
# Per tensor, against PyTorch's fake quantizer. x / s and x * (1/s) may differ in the last bit,
# which moves a value sitting exactly on a rounding boundary by one step: allow that for at
# most 1 element in 10,000. Truncation moves about half of all values by one step.
for scale, zp, lo, hi, dtype in [(0.02, 0, -127, 127, torch.int8), (0.013, 37, 0, 255, torch.uint8),
                                 (0.5, -3, -8, 7, torch.int8), (0.004, 0, -128, 127, torch.int8)]:
    x = 3 * torch.randn(40_000)  # many values beyond the range: clamping matters
    q_h = quantize(x, scale, zp, lo, hi, dtype)
    assert_dtype(q_h, dtype, name=f"quantize(..., dtype={dtype})")
    assert int(q_h.to(torch.int32).min()) >= lo and int(q_h.to(torch.int32).max()) <= hi, (
        f"quantize(scale={scale}, zero_point={zp}, qmin={lo}, qmax={hi}): values must lie in [{lo}, {hi}], "
        f"got [{int(q_h.to(torch.int32).min())}, {int(q_h.to(torch.int32).max())}]"
    )
    expected = torch.fake_quantize_per_tensor_affine(x, scale, zp, lo, hi)
    off = _steps_off(dequantize(q_h, scale, zp), expected, scale)
    assert float(off.max()) <= 1 and float((off > 0).float().mean()) < 1e-4, (
        f"quantize/dequantize(scale={scale}, zero_point={zp}, [{lo}, {hi}]) vs torch.fake_quantize_per_tensor_affine: "
        f"{int((off > 0).sum())} of {x.numel()} values differ, by up to {int(off.max())} steps "
        f"(round half to even, then clamp, then cast)"
    )
# Halves round to even, like torch's own quantizers.
xh = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.5, -127.5])
assert_close(quantize(xh, 1.0), torch.tensor([0, 2, 2, 0, -2, -2, 126, 127, -127], dtype=torch.int8), rtol=0, atol=0,
             name="quantize of halves with scale 1 (round half to even, clamp to [-127, 127])")
# Round first, then add the zero point: with an odd zero point, round(x/s + z) picks the other even
# neighbour on every half.
assert_close(quantize(torch.tensor([0.5, 1.5, -0.5, 2.5, -1.5]), 1.0, 3, 0, 255, torch.uint8),
             torch.tensor([3, 5, 3, 5, 1], dtype=torch.uint8), rtol=0, atol=0,
             name="quantize([0.5, 1.5, -0.5, 2.5, -1.5], scale 1, zero_point 3) (round(x / s), then + z)")
# Saturation, not wrap-around.
assert_close(quantize(torch.tensor([1e6, -1e6, 200.0]), 1.0), torch.tensor([127, -127, 127], dtype=torch.int8),
             rtol=0, atol=0, name="quantize([1e6, -1e6, 200], scale 1) (must saturate)")
assert_close(quantize(torch.tensor([-5.0, 300.0]), 1.0, 0, 0, 255, torch.uint8),
             torch.tensor([0, 255], dtype=torch.uint8), rtol=0, atol=0, name="quantize([-5, 300]) to uint8 [0, 255]")
# Per channel: a (rows, 1) scale and zero point broadcast along each row.
w_h = torch.randn(16, 48)
scales = torch.rand(16, 1) * 0.05 + 0.005
zps = torch.randint(-20, 20, (16, 1))
q_h = quantize(w_h, scales, zps, -128, 127)
expected = torch.fake_quantize_per_channel_affine(w_h, scales[:, 0], zps[:, 0].to(torch.int32), 0, -128, 127)
off = _steps_off(dequantize(q_h, scales, zps), expected, scales)
assert float(off.max()) <= 1 and float((off > 0).float().mean()) < 1e-3, (
    f"per-channel quantize/dequantize vs torch.fake_quantize_per_channel_affine: {int((off > 0).sum())} of "
    f"{w_h.numel()} values differ, by up to {int(off.max())} steps"
)
assert_dtype(dequantize(q_h, scales, zps), torch.float32, name="dequantize(...)")
# bf16 / fp16 inputs: x / scale in float32. In the 16-bit type the quotient is rounded to 8 (bf16) or
# 11 (fp16) significant bits, which moves codes near 127 by up to a step: about half of them for bf16.
for half in (torch.bfloat16, torch.float16):
    x_half = (3 * torch.randn(4000)).to(half)
    x_before = x_half.clone()
    for scale in (0.02, torch.tensor(0.02)):
        q_h = quantize(x_half, scale)
        want = torch.round(x_half.float() / scale).clamp(-127, 127).to(torch.int8)
        n_off = int((q_h.to(torch.int32) != want.to(torch.int32)).sum())
        # x / s and x * (1/s) in float32 may differ on an exact rounding boundary: 4 of 4000 allowed.
        assert n_off <= 4, (
            f"quantize({half} x, scale={scale!r}): {n_off} of {x_half.numel()} codes differ from "
            f"round(x.float() / scale) (compute x / scale in float32, not in {half})"
        )
    assert torch.equal(x_half, x_before), f"quantize modified its input x ({half}) in place"
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### Choosing the scale: absmax (symmetric) and zero-point (asymmetric)
#
# **Symmetric (absmax).** $z = 0$, $s = \max|x| / 127$, range $[-127, 127]$: the largest
# magnitude maps to $\pm127$, and $-x$ maps to $-q$ (we give up the code $-128$ for that
# symmetry, as most int8 weight formats do). Weights are roughly symmetric around 0, so this is
# the usual choice for them.
#
# **Asymmetric (zero-point).** Map $[\min x, \max x]$ onto all 256 codes of `uint8`:
# $s = (\max x - \min x)/255$ and $z = \operatorname{round}(-\min x / s)$, clamped to $[0, 255]$.
# Good for one-sided data such as the outputs of a ReLU. One rule from every real quantizer:
# **widen the range to include 0** ($\min \leftarrow \min(\min x, 0)$, $\max \leftarrow \max(\max x, 0)$),
# so that 0 — padding, masked values, a ReLU's zeros — is represented exactly by $q = z$.
#
# **Degenerate inputs.** An all-zero tensor (or row) gives $s = 0$ and $x/s = 0/0$. Use $s = 1$
# there (any positive scale represents all zeros exactly).
#
# **Per tensor or per channel?** A Linear layer computes $y_j = \sum_k W_{jk} x_k$ with
# `weight` of shape `(out_features, in_features)`. With one scale $s_j$ per **output row** $j$,
# $y_j \approx s_j \sum_k q_{jk} x_k$: the scale factors out of the dot product, so the integer
# sum can be done first. One scale per *input column* would not factor out. So a Linear weight is
# quantized per channel **along its rows** (reduce over the last dimension, keep one scale per
# row), and so is an activation matrix `(tokens, features)` quantized per token. Per channel
# also confines the damage of one large weight to its own row.

# %% answer id=qparams
def quantize_absmax(x, per_channel=False):
    """Symmetric int8 quantization: zero point 0, scale = max|x| / 127, codes in [-127, 127].

    x: float tensor; with per_channel=True a 2-D tensor (rows, cols), e.g. a Linear weight
    (out_features, in_features), quantized with one scale per row.
    Returns (q, scale): q int8 shaped like x; scale float32 of shape () (per tensor) or
    (rows, 1) (per channel). An all-zero tensor or row gets scale 1. The scale comes from the
    largest magnitude, whatever its sign, computed in float32 for bf16/fp16 x as well; new tensors
    are made on x's device; x is not modified.
    """
    ### BEGIN SOLUTION
    if per_channel:
        amax = x.abs().amax(dim=-1, keepdim=True)
    else:
        amax = x.abs().amax()
    amax = amax.to(torch.float32)
    scale = torch.where(amax > 0, amax / 127, torch.ones_like(amax))
    return quantize(x, scale, 0, -127, 127, torch.int8), scale
    ### END SOLUTION


def quantize_zeropoint(x, per_channel=False):
    """Asymmetric uint8 quantization of [min(x, 0), max(x, 0)] onto [0, 255].

    Returns (q, scale, zero_point): q uint8 shaped like x; scale float32 and zero_point int64,
    both of shape () (per tensor) or (rows, 1) (per channel, one per row of a 2-D x).
    scale = (hi - lo) / 255 (1 where hi == lo), zero_point = clamp(round(-lo / scale), 0, 255),
    computed in float32 for bf16/fp16 x as well; new tensors on x's device; x is not modified.
    """
    ### BEGIN SOLUTION
    if per_channel:
        lo, hi = x.amin(dim=-1, keepdim=True), x.amax(dim=-1, keepdim=True)
    else:
        lo, hi = x.amin(), x.amax()
    lo, hi = lo.to(torch.float32).clamp(max=0), hi.to(torch.float32).clamp(min=0)
    scale = (hi - lo) / 255
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = torch.round(-lo / scale).clamp(0, 255).to(torch.int64)
    return quantize(x, scale, zero_point, 0, 255, torch.uint8), scale, zero_point
    ### END SOLUTION

# %% test id=test_qparams_visible points=1
xa = torch.tensor([[0.5, -1.27, 0.0], [2.54, 1.0, -0.02]])
qa, sa = quantize_absmax(xa)
assert_dtype(qa, torch.int8, name="q from quantize_absmax")
# Per tensor: max|x| = 2.54, so scale = 0.02 and 2.54 -> 127 (float32 round-off in the scale: 1e-7).
assert_scalar_close(float(sa), 0.02, rtol=1e-6, atol=0, name="scale from quantize_absmax(x)")
assert_close(qa, torch.tensor([[25, -64, 0], [127, 50, -1]], dtype=torch.int8), rtol=0, atol=0,
             name="q from quantize_absmax(x)")
qc, sc = quantize_absmax(xa, per_channel=True)
assert_shape(sc, (2, 1), name="scale from quantize_absmax(x, per_channel=True) for a (2, 3) x")
assert_close(qc, torch.tensor([[50, -127, 0], [127, 50, -1]], dtype=torch.int8), rtol=0, atol=0,
             name="q from quantize_absmax(x, per_channel=True)")
qz, sz, zz = quantize_zeropoint(torch.tensor([0.0, 1.0, 2.55]))
assert_dtype(qz, torch.uint8, name="q from quantize_zeropoint")
# Range [0, 2.55] (already contains 0): scale 0.01, zero point 0.
assert_scalar_close(float(sz), 0.01, rtol=1e-6, atol=0, name="scale from quantize_zeropoint([0, 1, 2.55])")
assert int(zz) == 0, f"zero_point of quantize_zeropoint([0, 1, 2.55]): expected 0, got {int(zz)}"
assert_close(qz, torch.tensor([0, 100, 255], dtype=torch.uint8), rtol=0, atol=0, name="q from quantize_zeropoint([0, 1, 2.55])")

# %% test id=test_qparams_hidden points=3
### BEGIN HIDDEN TESTS
torch.manual_seed(101)
w_h = torch.randn(24, 40) * torch.rand(24, 1) * 3  # rows with different spreads
w_before = w_h.clone()
# Per tensor and per channel (one scale per ROW of a Linear weight).
for per_channel in (False, True):
    q_h, s = quantize_absmax(w_h, per_channel)
    amax = w_h.abs().amax(dim=-1, keepdim=True) if per_channel else w_h.abs().amax()
    assert_shape(s, tuple(amax.shape), name=f"scale from quantize_absmax(w (24, 40), per_channel={per_channel})")
    assert_dtype(s, torch.float32, name=f"scale from quantize_absmax(per_channel={per_channel})")
    # The scale is max|x| / 127 in float32: one rounding.
    assert_close(s, amax / 127, rtol=1e-6, atol=0, name=f"scale from quantize_absmax(per_channel={per_channel})")
    # Rounding error is at most half a step (plus float32 round-off in x / s).
    err = (dequantize(q_h, s) - w_h).abs()
    assert bool((err <= s / 2 * (1 + 1e-5)).all()), (
        f"quantize_absmax(per_channel={per_channel}): |x - x_hat| must be <= scale / 2 everywhere, "
        f"got up to {float((err / s).max()):.3f} * scale"
    )
    assert int(q_h.abs().amax()) == 127, f"quantize_absmax: the largest |x| must map to 127, got {int(q_h.abs().amax())}"
q_h, s = quantize_absmax(w_h, True)
assert bool((q_h.abs().amax(dim=1) == 127).all()), (
    f"quantize_absmax(per_channel=True): every row's max |q| must be 127, got {q_h.abs().amax(dim=1).tolist()}"
)
for per_channel in (False, True):
    q_h, s, z = quantize_zeropoint(w_h, per_channel)
    lo = (w_h.amin(dim=-1, keepdim=True) if per_channel else w_h.amin()).clamp(max=0)
    hi = (w_h.amax(dim=-1, keepdim=True) if per_channel else w_h.amax()).clamp(min=0)
    assert_shape(s, tuple(lo.shape), name=f"scale from quantize_zeropoint(per_channel={per_channel})")
    assert_shape(z, tuple(lo.shape), name=f"zero_point from quantize_zeropoint(per_channel={per_channel})")
    assert not z.is_floating_point(), f"zero_point must be an integer tensor, got dtype {z.dtype}"
    assert_dtype(s, torch.float32, name=f"scale from quantize_zeropoint(per_channel={per_channel})")
    assert_close(s, (hi - lo) / 255, rtol=1e-6, atol=0, name=f"scale from quantize_zeropoint(per_channel={per_channel})")
    assert_close(z, torch.round(-lo / ((hi - lo) / 255)).clamp(0, 255), rtol=0, atol=1,
                 name=f"zero_point from quantize_zeropoint(per_channel={per_channel})")
    err = (dequantize(q_h, s, z) - w_h).abs()
    assert bool((err <= s / 2 * (1 + 1e-4) + 1e-7).all()), (
        f"quantize_zeropoint(per_channel={per_channel}): |x - x_hat| must be <= scale / 2, "
        f"got up to {float((err / s).max()):.3f} * scale"
    )
# Adversarial inputs. All zeros: no NaN, zeros come back exactly.
for per_channel in (False, True):
    zeros = torch.zeros(3, 8)
    q_h, s = quantize_absmax(zeros, per_channel)
    assert_close(s, torch.ones_like(s), rtol=0, atol=0, name=f"scale from quantize_absmax of all zeros (per_channel={per_channel}; expected 1)")
    assert_close(dequantize(q_h, s), zeros, rtol=0, atol=0, name=f"quantize_absmax of all zeros (per_channel={per_channel})")
    q_h, s, z = quantize_zeropoint(zeros, per_channel)
    assert_close(s, torch.ones_like(s), rtol=0, atol=0, name=f"scale from quantize_zeropoint of all zeros (per_channel={per_channel}; expected 1)")
    assert_close(dequantize(q_h, s, z), zeros, rtol=0, atol=0, name=f"quantize_zeropoint of all zeros (per_channel={per_channel})")
# Constant rows (and a zero row): the range includes 0, so every row comes back almost exactly.
const = torch.tensor([[3.0] * 8, [-0.7] * 8, [0.0] * 8, [1e-3] * 8])
q_h, s, z = quantize_zeropoint(const, per_channel=True)
# One float32 division and multiplication: relative round-off ~1e-7.
assert_close(dequantize(q_h, s, z), const, rtol=1e-6, atol=0, name="quantize_zeropoint(per_channel=True) of constant rows")
q_h, s = quantize_absmax(const, per_channel=True)
assert_close(dequantize(q_h, s), const, rtol=1e-6, atol=0, name="quantize_absmax(per_channel=True) of constant rows")
# Range [-1.5, 253.5]: scale 1, zero point 2, and 253.5 rounds (to even) to 254 -> 256: must clamp to 255.
q_h, s, z = quantize_zeropoint(torch.tensor([-1.5, 0.0, 253.5]))
assert_close(q_h, torch.tensor([0, 2, 255], dtype=torch.uint8), rtol=0, atol=0,
             name="quantize_zeropoint([-1.5, 0, 253.5]) (scale 1, zero point 2; 254 + 2 must clamp to 255)")
# A huge outlier: per tensor it wipes out everything else; per channel only its own row suffers.
w_out = torch.randn(8, 64)
w_out[3, 5] = 1e4
q_h, s = quantize_absmax(w_out, per_channel=True)
rows_ok = [r for r in range(8) if r != 3]
err_rows = (dequantize(q_h, s) - w_out)[rows_ok].abs().max()
# Other rows keep max|x|/254 error: with |x| <= ~4, that is < 0.02.
assert float(err_rows) < 0.02, (
    f"quantize_absmax(per_channel=True) with one outlier 1e4 in row 3: the other rows must keep a small error "
    f"(< 0.02), got {float(err_rows):.4f} (is there one scale per row?)"
)
q_h, s = quantize_absmax(w_out)
n_nonzero = int((q_h[rows_ok] != 0).sum())
assert n_nonzero == 0, (
    f"quantize_absmax per tensor with an outlier of 1e4: every small value should round to 0, got {n_nonzero} nonzero codes"
)
# Negative outliers: the scale comes from the largest |x|, not from the largest x.
x_neg = torch.tensor([[0.5, -3.0, 1.0, 2.0], [-0.1, 0.25, -0.4, 0.3]])
q_h, s = quantize_absmax(x_neg, per_channel=True)
assert_close(s, torch.tensor([[3.0], [0.4]]) / 127, rtol=1e-6, atol=0,
             name="per-row scales of [[0.5, -3, 1, 2], [-0.1, 0.25, -0.4, 0.3]] (largest |x| / 127)")
assert_close(q_h[:, [1, 2]], torch.tensor([[-127, 42], [79, -127]], dtype=torch.int8), rtol=0, atol=0,
             name="codes of -3 and 1 (row 0), 0.25 and -0.4 (row 1) from quantize_absmax(per_channel=True)")
q_h, s = quantize_absmax(x_neg)
assert_scalar_close(float(s), 3.0 / 127, rtol=1e-6, atol=0, name="per-tensor scale of a tensor whose largest |x| is -3")
q_h, s, z = quantize_zeropoint(torch.tensor([-3.0, 0.5, 1.0]))
# Range [-3, 1]: scale 4/255, zero point round(3 / (4/255)) = round(191.25) = 191.
assert int(z) == 191 and int(q_h[0]) == 0, (
    f"quantize_zeropoint([-3, 0.5, 1]): expected zero point 191 and -3 -> code 0, got {int(z)} and {int(q_h[0])}"
)
assert torch.equal(w_h, w_before), "quantize_absmax / quantize_zeropoint modified their input x in place"
# The defaults are per tensor, for 2-D inputs too.
s_default = quantize_zeropoint(w_h)[1]
assert tuple(s_default.shape) == (), f"quantize_zeropoint(x (24, 40)) defaults to per tensor: expected a scale of shape (), got {tuple(s_default.shape)}"
# bf16 / fp16 / float64 inputs: scales (float32) and zero points as for the float32 copy of x.
for half in (torch.bfloat16, torch.float16, torch.float64):
    w_half = w_h.to(half)
    for per_channel in (False, True):
        q16, s16 = quantize_absmax(w_half, per_channel)
        q32, s32 = quantize_absmax(w_half.float(), per_channel)
        assert_dtype(s16, torch.float32, name=f"scale from quantize_absmax({half} x, per_channel={per_channel})")
        # max|x| is one of x's values, exact in float32: the same division gives the same scale
        # (float64 may divide first and round after: one float32 rounding apart at most).
        assert_close(s16, s32, rtol=1e-7 if half == torch.float64 else 0, atol=0,
                     name=f"scale from quantize_absmax({half} x, per_channel={per_channel}) vs the float32 copy "
                     f"(divide in float32, not in {half})")
        n_off = int((q16.to(torch.int32) != q32.to(torch.int32)).sum())
        assert n_off <= 2, f"quantize_absmax({half} x, per_channel={per_channel}): {n_off} codes differ from the float32 copy's"
        qz16, sz16, zz16 = quantize_zeropoint(w_half, per_channel)
        qz32, sz32, zz32 = quantize_zeropoint(w_half.float(), per_channel)
        assert_dtype(sz16, torch.float32, name=f"scale from quantize_zeropoint({half} x, per_channel={per_channel})")
        assert_close(sz16, sz32, rtol=1e-7 if half == torch.float64 else 0, atol=0,
                     name=f"scale from quantize_zeropoint({half} x, per_channel={per_channel}) vs the float32 copy")
        # (A float64 computation may round a zero point on an exact .5 boundary the other way: 1 step.)
        assert_close(zz16, zz32, rtol=0, atol=1 if half == torch.float64 else 0,
                     name=f"zero point from quantize_zeropoint({half} x, per_channel={per_channel})")
# Device: nothing created on the CPU when x lives elsewhere.
w_meta = torch.empty(24, 40, device="meta")
for per_channel in (False, True):
    assert_runs_on_meta(f"quantize_absmax(x, per_channel={per_channel})", quantize_absmax, w_meta, per_channel)
    assert_runs_on_meta(f"quantize_zeropoint(x, per_channel={per_channel})", quantize_zeropoint, w_meta, per_channel)
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### Measuring the error
#
# Three numbers describe how much a quantizer loses, for $e = x - \hat x$:
#
# - the **max error** $\max_i |e_i|$ (worst case; for a rounding quantizer at most $s/2$);
# - the **relative error** $\lVert e\rVert_2 / \lVert x\rVert_2$;
# - the **signal-to-quantization-noise ratio** in decibels,
#   $\mathrm{SQNR} = 10 \log_{10} \big(\sum_i x_i^2 / \sum_i e_i^2\big)$. Rounding noise is about
#   uniform on $[-s/2, s/2]$, with power $s^2/12$; each extra bit halves $s$ and adds
#   $20\log_{10}2 \approx 6.02$ dB. (The relative error is $10^{-\mathrm{SQNR}/20}$.)
#
# Compute in float64. With no error at all, return a relative error of 0 and an SQNR of `inf`.

# %% answer id=metrics
def quant_errors(x, x_hat):
    """Errors of x_hat as an approximation of x (tensors of one shape and any float dtype:
    float32, bf16, fp16, float64), computed in float64 whatever the inputs' dtype.

    Returns a dict of Python floats: "max_abs" = max |x - x_hat|,
    "rel_l2" = ||x - x_hat||_2 / ||x||_2, "sqnr_db" = 10 log10(sum x^2 / sum (x - x_hat)^2)
    (0.0 and inf when x_hat == x).
    """
    ### BEGIN SOLUTION
    x64 = x.to(torch.float64)
    e = x64 - x_hat.to(torch.float64)
    noise, signal = float((e * e).sum()), float((x64 * x64).sum())
    if noise == 0:
        return {"max_abs": 0.0, "rel_l2": 0.0, "sqnr_db": math.inf}
    return {"max_abs": float(e.abs().max()), "rel_l2": math.sqrt(noise / signal),
            "sqnr_db": 10 * math.log10(signal / noise)}
    ### END SOLUTION

# %% test id=test_metrics_visible points=1
m0 = quant_errors(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 3.0]))
assert isinstance(m0, dict) and set(m0) >= {"max_abs", "rel_l2", "sqnr_db"}, (
    f"quant_errors must return a dict with max_abs, rel_l2 and sqnr_db, got {m0!r}"
)
# e = (0, 1): max 1, ||e|| / ||x|| = 1 / 5, SQNR = 10 log10(25 / 1). float64: exact to 1e-12.
assert_scalar_close(m0["max_abs"], 1.0, rtol=0, atol=1e-12, name="max_abs for x=(3, 4), x_hat=(3, 3)")
assert_scalar_close(m0["rel_l2"], 0.2, rtol=1e-12, atol=0, name="rel_l2 for x=(3, 4), x_hat=(3, 3)")
assert_scalar_close(m0["sqnr_db"], 10 * math.log10(25), rtol=1e-12, atol=0, name="sqnr_db for x=(3, 4), x_hat=(3, 3)")

# %% test id=test_metrics_hidden points=2
### BEGIN HIDDEN TESTS
torch.manual_seed(102)
xm = torch.randn(1000)
em = torch.randn(1000) * 0.01
em[7] = -0.5  # the largest error is negative
x_hat_m = xm - em
mm = quant_errors(xm, x_hat_m)
e64 = xm.double() - x_hat_m.double()
assert_scalar_close(mm["max_abs"], float(e64.abs().max()), rtol=1e-12, atol=0, name="max_abs when the largest error is negative")
# float32 inputs, float64 sums: a float64 computation differs from this one by round-off (~1e-15);
# sums in float32 are off by ~1e-7 relative.
assert_scalar_close(mm["rel_l2"], float(e64.norm() / xm.double().norm()), rtol=1e-9, atol=0,
                    name="rel_l2 of float32 inputs (computed in float64)")
assert_scalar_close(mm["sqnr_db"], float(10 * torch.log10(xm.double().pow(2).sum() / e64.pow(2).sum())),
                    rtol=1e-9, atol=0, name="sqnr_db of float32 inputs (computed in float64)")
# bf16 / fp16 inputs of shape (40, 25): in the 16-bit type the sums keep 3 significant digits at best.
for half in (torch.bfloat16, torch.float16):
    xs_half, xh_half = xm.reshape(40, 25).to(half), x_hat_m.reshape(40, 25).to(half)
    before = (xs_half.clone(), xh_half.clone())
    got = quant_errors(xs_half, xh_half)
    x64, e64h = xs_half.double(), xs_half.double() - xh_half.double()
    want = {"max_abs": float(e64h.abs().max()), "rel_l2": float(e64h.norm() / x64.norm()),
            "sqnr_db": float(10 * torch.log10(x64.pow(2).sum() / e64h.pow(2).sum()))}
    for key, value in want.items():
        assert_scalar_close(got[key], value, rtol=1e-9, atol=0, name=f"{key} of {half} inputs (computed in float64)")
    assert torch.equal(xs_half, before[0]) and torch.equal(xh_half, before[1]), "quant_errors modified its inputs"
assert all(type(mm[k]) is float for k in ("max_abs", "rel_l2", "sqnr_db")), (
    f"quant_errors must return Python floats, got types {[type(mm[k]).__name__ for k in ('max_abs', 'rel_l2', 'sqnr_db')]}"
)
same = quant_errors(xm, xm.clone())
assert same["max_abs"] == 0.0 and same["rel_l2"] == 0.0 and same["sqnr_db"] == math.inf, (
    f"quant_errors(x, x): expected max_abs 0.0, rel_l2 0.0 and sqnr_db inf, got {same}"
)
# 6 dB per bit: uniform noise of step 2^-b on a signal of power 1/3 (uniform on [-1, 1]).
xu = torch.rand(200_000, dtype=torch.float64) * 2 - 1
sq = [quant_errors(xu, torch.round(xu * 2**b) / 2**b)["sqnr_db"] for b in (4, 6)]
# 2 more bits = 12.04 dB; 200k samples make the estimate good to ~0.05 dB.
assert_scalar_close(sq[1] - sq[0], 12.04, rtol=0, atol=0.2, name="SQNR gain of 2 more bits (about 6.02 dB per bit)")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 2. Group-wise 4-bit quantization and packing (the `Q4_0` / `Q8_0` idea)
#
# At 4 bits there are only 16 codes; one scale for a whole row is too coarse, because a single
# large weight sets the step for thousands of others. llama.cpp's block formats give **every
# block of 32 consecutive weights (along a row) its own scale**, stored as float16:
#
# | format | codes per weight | per block of 32 | bits per weight |
# |---|---|---|---|
# | `Q8_0` | 8-bit signed | 32 bytes + 2-byte scale | $8 + 16/32 = 8.5$ |
# | `Q4_0` | 4-bit | 16 bytes + 2-byte scale | $4 + 16/32 = 4.5$ |
#
# We use symmetric blocks: for $b$ bits, $q_{\max} = 2^{b-1} - 1$ (7 for 4 bits, 127 for 8),
# $s = \max_{\text{block}} |w| / q_{\max}$ rounded to float16 (that is what is stored), and
# $q = \operatorname{clamp}(\operatorname{round}(w / s), -q_{\max}, q_{\max})$ computed **with the
# stored float16 scale**, so that dequantization reproduces exactly what the file holds. A block
# of zeros gets scale 0 and codes 0. (The real `Q4_0` squeezes out one more level: it takes the
# signed value of largest magnitude, sets $s = -\max/8$, and uses all 16 codes $-8..7$.)
#
# The blocks run along the **input** dimension (the last one): a row of a `(out, in)` weight
# with `in = 256` holds 8 blocks, and the scales tensor has shape `(out, in / 32)`.

# %% answer id=blocks
def quantize_blocks(w, bits=4, block=32):
    """Symmetric block quantization along the last dimension.

    w: float tensor (..., K) (float32, bf16 or fp16) with K divisible by `block`; it may be a
    non-contiguous view (a transposed weight, a slice), quantized like its contiguous copy.
    Returns (q, scale): q int8 of w's shape with values in [-(2**(bits-1) - 1), 2**(bits-1) - 1];
    scale float16 of shape (..., K // block), max|w| / (2**(bits-1) - 1) per block (largest
    magnitude, whatever its sign; divided in float32, then rounded to float16; 0 for a zero block).
    q is computed with the float16 scale. New tensors on w's device; w is not modified.
    """
    ### BEGIN SOLUTION
    qmax = 2 ** (bits - 1) - 1
    blocks = w.reshape(*w.shape[:-1], w.shape[-1] // block, block).to(torch.float32)
    scale16 = (blocks.abs().amax(dim=-1, keepdim=True) / qmax).to(torch.float16)
    scale = scale16.to(torch.float32)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = quantize(blocks, safe, 0, -qmax, qmax, torch.int8)
    return q.reshape(w.shape), scale16.squeeze(-1)
    ### END SOLUTION


def dequantize_blocks(q, scale, block=32):
    """Inverse of quantize_blocks: float32 of q's shape, q * scale of its block. q and scale may be
    non-contiguous views; the result is on q's device."""
    ### BEGIN SOLUTION
    blocks = q.reshape(*q.shape[:-1], q.shape[-1] // block, block).to(torch.float32)
    return (blocks * scale.to(torch.float32)[..., None]).reshape(q.shape)
    ### END SOLUTION


def bits_per_weight(bits, block=32, scale_bits=16):
    """Storage cost of a block format in bits per weight (codes plus the shared scale)."""
    ### BEGIN SOLUTION
    return bits + scale_bits / block
    ### END SOLUTION

# %% test id=test_blocks_visible points=1
wb = torch.cat([torch.full((32,), 0.5), torch.linspace(-7.0, 7.0, 32)])[None]  # one row, two blocks
qb, sb = quantize_blocks(wb, bits=4)
assert_shape(qb, (1, 64), name="q from quantize_blocks(w (1, 64), bits=4)")
assert_shape(sb, (1, 2), name="scale from quantize_blocks(w (1, 64), bits=4)")
assert_dtype(sb, torch.float16, name="scale from quantize_blocks")
# Block 0: all 0.5 -> scale 0.5/7, every code 7. Block 1: max 7 -> scale 1 (exact in float16).
assert_close(sb.float(), torch.tensor([[0.5 / 7, 1.0]]), rtol=1e-3, atol=0, name="block scales (float16: 1e-3 relative)")
assert bool((qb[0, :32] == 7).all()), f"codes of block 0 (all 0.5): expected all 7, got {qb[0, :32].tolist()}"
assert_close(dequantize_blocks(qb, sb), wb, rtol=0, atol=0.5 + 1e-6, name="dequantize_blocks(quantize_blocks(w)) (error <= step/2)")

# %% test id=test_blocks_hidden points=3
### BEGIN HIDDEN TESTS
torch.manual_seed(103)
wq = torch.randn(12, 256) * torch.rand(12, 1)
for bits in (2, 3, 4, 8):
    qmax = 2 ** (bits - 1) - 1
    q, s = quantize_blocks(wq, bits)
    assert_dtype(q, torch.int8, name=f"q from quantize_blocks(bits={bits})")
    assert_shape(s, (12, 8), name=f"scale from quantize_blocks(w (12, 256), bits={bits}) (blocks along the rows)")
    assert int(q.abs().amax()) <= qmax, (
        f"quantize_blocks(bits={bits}): codes must lie in [-{qmax}, {qmax}], got [{int(q.min())}, {int(q.max())}]"
    )
    expected_s = (wq.reshape(12, 8, 32).abs().amax(-1) / qmax).to(torch.float16)
    # Exact: the same float32 division, then the same rounding to float16.
    assert_close(s.float(), expected_s.float(), rtol=0, atol=0, name=f"block scales (bits={bits})")
    s32 = expected_s.float()[..., None]
    expected_q = torch.round(wq.reshape(12, 8, 32) / s32).clamp(-qmax, qmax).reshape(12, 256)
    # x / s against the same division: identical except on exact rounding boundaries.
    assert int((q.float() != expected_q).sum()) <= 2, (
        f"quantize_blocks(bits={bits}): {int((q.float() != expected_q).sum())} of {q.numel()} codes differ from "
        f"clamp(round(w / float16 scale))"
    )
    w_hat = dequantize_blocks(q, s)
    assert_close(w_hat, q.float().reshape(12, 8, 32).mul(s32).reshape(12, 256), rtol=1e-6, atol=0,
                 name=f"dequantize_blocks(bits={bits})")
# Other block sizes and a 3-D tensor.
w3 = torch.randn(2, 3, 128)
q, s = quantize_blocks(w3, 4, block=64)
assert_shape(s, (2, 3, 2), name="scale from quantize_blocks(w (2, 3, 128), block=64)")
assert_close(dequantize_blocks(q, s, block=64), w3, rtol=0, atol=float(s.float().max()) / 2 * 1.01,
             name="dequantize_blocks(block=64) round trip (error <= step/2)")
# Zero blocks: no NaN, zeros back.
wz = torch.zeros(2, 64)
wz[1, 40] = 3.0
q, s = quantize_blocks(wz)  # the default is 4 bits
assert_close(dequantize_blocks(q, s), wz, rtol=0, atol=1e-3, name="quantize_blocks with zero blocks")
assert int(q[1, 40]) == 7 and float(s[0, 0]) == 0.0 and int(q[0].abs().max()) == 0, (
    f"quantize_blocks(w) with zero blocks (default bits=4): expected scale 0 and codes 0 for them and code 7 for "
    f"the block's max, got scale {float(s[0, 0])}, codes up to {int(q[0].abs().max())}, and {int(q[1, 40])}"
)
# An outlier hurts only its own block.
wo = torch.randn(1, 256)
wo[0, 3] = 100.0
q, s = quantize_blocks(wo, 4)
err = (dequantize_blocks(q, s) - wo).abs()
assert float(err[0, 32:].max()) < 0.4, (
    f"quantize_blocks(bits=4) with an outlier in block 0: the other blocks must keep their own scale "
    f"(error < 0.4), got {float(err[0, 32:].max()):.3f}"
)
# Negative outliers: the block's scale comes from its largest |w|.
w_neg = torch.randn(1, 64) * 0.1
w_neg[0, 5], w_neg[0, 40] = -2.0, 1.0
q, s = quantize_blocks(w_neg, 4)
assert_close(s.float(), torch.tensor([[2.0 / 7, 1.0 / 7]]).half().float(), rtol=0, atol=0,
             name="block scales when the block's largest |w| is negative (-2 in block 0; 1 in block 1)")
assert int(q[0, 5]) == -7 and int(q[0, 40]) == 7, f"codes of -2 and 1 (each its block's max |w|): expected -7 and 7, got {int(q[0, 5])} and {int(q[0, 40])}"
# bf16 / fp16 weights: the same scales and codes as for their float32 copy (divide in float32).
for half in (torch.bfloat16, torch.float16):
    w_half = wq.to(half)
    w_before = w_half.clone()
    q16, s16 = quantize_blocks(w_half, 4)
    q32, s32 = quantize_blocks(w_half.float(), 4)
    assert_dtype(s16, torch.float16, name=f"scale from quantize_blocks({half} w)")
    assert_close(s16.float(), s32.float(), rtol=0, atol=0, name=f"block scales of {half} w vs its float32 copy")
    n_off = int((q16 != q32).sum())
    assert n_off <= 2, f"quantize_blocks({half} w): {n_off} codes differ from those of its float32 copy"
    assert torch.equal(w_half, w_before), f"quantize_blocks modified its input w ({half}) in place"
# Non-contiguous views (a transposed weight): the same codes and scales as the contiguous copy
# (.view() cannot split the last axis of a transposed tensor; reshape() copies when it must).
w_t = torch.randn(256, 12).t()  # (12, 256), not contiguous
q_t, s_t = quantize_blocks(w_t, 4)
q_c, s_c = quantize_blocks(w_t.contiguous(), 4)
assert torch.equal(q_t, q_c) and torch.equal(s_t, s_c), (
    f"quantize_blocks of a transposed (12, 256) view: {int((q_t != q_c).sum())} codes and {int((s_t != s_c).sum())} "
    f"scales differ from those of its contiguous copy"
)
q_view, s_view = q_c.t().contiguous().t(), s_c.t().contiguous().t()  # the same values, transposed storage
assert_close(dequantize_blocks(q_view, s_view), dequantize_blocks(q_c, s_c), rtol=0, atol=0,
             name="dequantize_blocks of non-contiguous (12, 256) codes and (12, 8) scales vs contiguous ones")
# Device: nothing created on the CPU when w lives elsewhere.
assert_runs_on_meta("quantize_blocks(w, 4)", quantize_blocks, torch.empty(12, 256, device="meta"), 4)
assert_runs_on_meta("dequantize_blocks(q, scale)", dequantize_blocks, torch.empty(12, 256, dtype=torch.int8, device="meta"),
                    torch.empty(12, 8, dtype=torch.float16, device="meta"))
### END HIDDEN TESTS
assert True

# %% test id=test_bits_per_weight points=1
assert bits_per_weight(4) == 4.5 and bits_per_weight(8) == 8.5, (
    f"bits_per_weight: expected 4.5 (Q4_0) and 8.5 (Q8_0), got {bits_per_weight(4)} and {bits_per_weight(8)}"
)
### BEGIN HIDDEN TESTS
for bits, block, scale_bits, expected in [(4, 32, 16, 4.5), (8, 32, 16, 8.5), (4, 64, 16, 4.25), (4, 32, 32, 5.0), (2, 16, 16, 3.0)]:
    assert_scalar_close(bits_per_weight(bits, block, scale_bits), expected, rtol=0, atol=1e-12,
                        name=f"bits_per_weight(bits={bits}, block={block}, scale_bits={scale_bits})")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### Packing two 4-bit codes into one byte
#
# PyTorch has no 4-bit dtype; a 4-bit code takes a whole `int8` unless we pack it. Store each code
# $q \in [-8, 7]$ as the unsigned nibble $u = q + 8 \in [0, 15]$, and put **element $2j$ in the low
# nibble and element $2j+1$ in the high nibble** of byte $j$:
#
# $$ \text{byte}_j = u_{2j} + 16\, u_{2j+1}, \qquad u_{2j} = \text{byte}_j \,\&\, 15, \quad u_{2j+1} = \text{byte}_j \gg 4 .$$
#
# (Real formats choose other layouts — `Q4_0` pairs element $i$ with element $i + 16$ of its
# block, so a GPU thread can unpack 32 values with two shifts — but every layout must be
# documented to the bit, because the file is read by someone else's kernel.) Use integer
# operations only: `torch.bitwise_and`, shifts `<<`/`>>` and `|` work on integer tensors; do the
# arithmetic in a wider type such as `torch.int16`/`torch.uint8` to avoid sign surprises.

# %% answer id=packing
def pack_int4(q):
    """Pack int8 codes in [-8, 7] of shape (..., K), K even, into uint8 of shape (..., K // 2):
    byte j = (q[2j] + 8) | ((q[2j+1] + 8) << 4).
    Any q (non-contiguous views too) on any device; q is not modified."""
    ### BEGIN SOLUTION
    u = (q.to(torch.int16) + 8).to(torch.uint8)
    return u[..., 0::2] | (u[..., 1::2] << 4)
    ### END SOLUTION


def unpack_int4(packed):
    """Inverse of pack_int4: uint8 (..., K // 2) -> int8 codes (..., K) in [-8, 7], on packed's device;
    packed is not modified."""
    ### BEGIN SOLUTION
    low = (packed & 15).to(torch.int8) - 8
    high = (packed >> 4).to(torch.int8) - 8
    return torch.stack([low, high], dim=-1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)
    ### END SOLUTION

# %% test id=test_packing_visible points=1
p0 = pack_int4(torch.tensor([[-8, 7, 0, 1]], dtype=torch.int8))
assert_dtype(p0, torch.uint8, name="pack_int4(...)")
# -8 -> 0 (low), 7 -> 15 (high): 0 + 16*15 = 240; 0 -> 8, 1 -> 9: 8 + 16*9 = 152.
assert_close(p0, torch.tensor([[240, 152]], dtype=torch.uint8), rtol=0, atol=0, name="pack_int4([[-8, 7, 0, 1]])")
assert_close(unpack_int4(p0), torch.tensor([[-8, 7, 0, 1]], dtype=torch.int8), rtol=0, atol=0, name="unpack_int4([[240, 152]])")

# %% test id=test_packing_hidden points=2
### BEGIN HIDDEN TESTS
torch.manual_seed(104)
qr = torch.randint(-8, 8, (6, 5, 64), dtype=torch.int8)
pr = pack_int4(qr)
assert_dtype(pr, torch.uint8, name="pack_int4 of a (6, 5, 64) tensor")
assert_shape(pr, (6, 5, 32), name="pack_int4 of a (6, 5, 64) tensor")
expected = ((qr[..., 0::2].to(torch.int32) + 8) + 16 * (qr[..., 1::2].to(torch.int32) + 8)).to(torch.uint8)
assert_close(pr, expected, rtol=0, atol=0, name="pack_int4 bytes (element 2j low nibble, 2j+1 high nibble)")
back = unpack_int4(pr)
assert_dtype(back, torch.int8, name="unpack_int4(...)")
assert_close(back, qr, rtol=0, atol=0, name="unpack_int4(pack_int4(q)) (must be exact)")
every = torch.arange(256, dtype=torch.int32).to(torch.uint8)
codes = unpack_int4(every)
assert_close(codes[0::2], (torch.arange(256) % 16 - 8).to(torch.int8), rtol=0, atol=0, name="unpack_int4 low nibbles of all 256 bytes")
assert_close(codes[1::2], (torch.arange(256) // 16 - 8).to(torch.int8), rtol=0, atol=0, name="unpack_int4 high nibbles of all 256 bytes")
assert_close(pack_int4(codes), every, rtol=0, atol=0, name="pack_int4(unpack_int4(every byte))")
# Non-contiguous views (a transposed tensor), 1-D tensors, and inputs left as they were.
q_t = torch.randint(-8, 8, (64, 6), dtype=torch.int8).t()  # (6, 64), not contiguous
q_before = q_t.clone()
assert_close(pack_int4(q_t), pack_int4(q_t.contiguous()), rtol=0, atol=0, name="pack_int4 of a transposed (6, 64) view")
assert torch.equal(q_t, q_before), "pack_int4 modified its input q in place"
p_t = pr.transpose(0, 1)  # (5, 6, 32), not contiguous
p_before = p_t.clone()
assert_close(unpack_int4(p_t), qr.transpose(0, 1), rtol=0, atol=0, name="unpack_int4 of a transposed (5, 6, 32) view")
assert torch.equal(p_t, p_before), "unpack_int4 modified its input in place"
assert_close(unpack_int4(pack_int4(qr[0, 0])), qr[0, 0], rtol=0, atol=0, name="unpack_int4(pack_int4(q)) of a 1-D q")
# Device: nothing created on the CPU when the codes live elsewhere.
assert_runs_on_meta("pack_int4(q)", pack_int4, torch.empty(6, 64, dtype=torch.int8, device="meta"))
assert_runs_on_meta("unpack_int4(packed)", unpack_int4, torch.empty(6, 32, dtype=torch.uint8, device="meta"))
### END HIDDEN TESTS
assert True

# %% [markdown]
# Error against bits, for one weight matrix with a realistic spread (heavy-tailed values and a
# few large ones): one scale for the whole tensor, one per row, and one per block of 32. The
# dashed line is the 6.02 dB-per-bit rule.

# %%
torch.manual_seed(7)
w_demo = torch.distributions.StudentT(4.0).sample((256, 512)) * 0.02
w_demo[torch.randint(0, 256, (20,)), torch.randint(0, 512, (20,))] *= 30  # a few outliers
bit_range = list(range(2, 9))
curves = {"per tensor": [], "per row": [], "blocks of 32": []}
for bits in bit_range:
    qmax = 2 ** (bits - 1) - 1
    s_t = w_demo.abs().amax() / qmax
    s_r = w_demo.abs().amax(dim=1, keepdim=True) / qmax
    curves["per tensor"].append(quant_errors(w_demo, dequantize(quantize(w_demo, s_t, 0, -qmax, qmax), s_t))["sqnr_db"])
    curves["per row"].append(quant_errors(w_demo, dequantize(quantize(w_demo, s_r, 0, -qmax, qmax), s_r))["sqnr_db"])
    curves["blocks of 32"].append(quant_errors(w_demo, dequantize_blocks(*quantize_blocks(w_demo, bits)))["sqnr_db"])
fig, ax = plt.subplots(figsize=(5.5, 4))
for label, values in curves.items():
    ax.plot(bit_range, values, "o-", label=label)
ax.plot(bit_range, [curves["blocks of 32"][-1] - 6.02 * (8 - b) for b in bit_range], "k--", label="6.02 dB per bit")
ax.set_xlabel("bits per code")
ax.set_ylabel("SQNR (dB, higher is better)")
ax.set_title("quantization error vs bits")
ax.legend()
plt.show()

# %% [markdown]
# ## 3. Outlier features and LLM.int8()
#
# To multiply in int8 (not just store in int8), quantize *both* operands. For activations
# $X$ (tokens × features) and a weight $W$ (out × in), **vector-wise** quantization takes one
# scale per token row of $X$ ($s^x_t$) and one per output row of $W$ ($s^w_j$). Both factor out:
#
# $$ Y_{tj} = \sum_k X_{tk} W_{jk} \approx s^x_t\, s^w_j \sum_k q^x_{tk}\, q^w_{jk} ,$$
#
# and the sum of int8 products is computed exactly in int32 by `torch._int_mm(a, b)` (2-D,
# `a` int8 of shape (M, K), `b` int8 of shape (K, N), result int32 (M, N)) — an integer GEMM from
# PyTorch itself, several times faster than float32 on CPUs with int8 dot-product instructions.
# Call it through the setup cell's `int_mm(a, b)`, which pads the shapes a GPU requires.
#
# **Outlier features.** Dettmers et al. (2022) found that from about 6.7B parameters on, a few
# *feature dimensions* of the activations take values up to 20× larger than the rest, in almost
# every token. A token's scale is then set by its outlier, and its other features collapse onto
# a handful of codes. Per-token scales cannot help: every token has the outlier.
#
# **LLM.int8()** splits the product by columns. Let $O$ be the feature columns $k$ where any
# $|X_{tk}|$ exceeds a threshold (6.0 in the paper); then
#
# $$ Y = X_{:,O}\, W_{:,O}^\top \;(\text{float}) \;+\; \text{int8\_matmul}\big(X_{:,\bar O},\ W_{:,\bar O}\big), $$
#
# with a fraction of a percent of columns in high precision and the rest in int8.

# %% answer id=int8_matmul
def int8_matmul(x, w):
    """x @ w.T with vector-wise int8 quantization and int32 accumulation.

    x: float32 (M, K) activations; w: float32 (N, K) Linear weight. Quantize x with one absmax
    scale per row (token) and w with one per row (output channel) using quantize_absmax,
    multiply the int8 codes with int_mm (torch._int_mm: all M*K*N multiply-adds in the integer
    kernel, exact int32 sums; the tests spy on it), and rescale. Returns float32 (M, N).
    Any M, N >= 1 (one token in decode, a Linear with one output); all-zero rows give zeros;
    x and w are not modified; new tensors on x's device.
    """
    ### BEGIN SOLUTION
    qx, sx = quantize_absmax(x, per_channel=True)  # (M, K), (M, 1)
    qw, sw = quantize_absmax(w, per_channel=True)  # (N, K), (N, 1)
    acc = int_mm(qx, qw.t().contiguous())  # (M, N) int32, exact
    return acc.to(torch.float32) * sx * sw.t()
    ### END SOLUTION

# %% test id=test_int8_matmul_visible points=1
torch.manual_seed(5)
xi, wi = torch.randn(32, 64, device=device), torch.randn(48, 64, device=device)
yi = int8_matmul(xi, wi)
assert_shape(yi, (32, 48), name="int8_matmul(x (32, 64), w (48, 64))")
assert_dtype(yi, torch.float32, name="int8_matmul(...)")
# Two int8 roundings of N(0,1) data: about 1% relative error on a dot product of 64 terms.
rel = float((yi - xi @ wi.T).norm() / (xi @ wi.T).norm())
assert rel < 0.02, f"int8_matmul on Gaussian data: expected a relative error < 2%, got {rel:.2%}"

# %% test id=test_int8_matmul_hidden points=3
### BEGIN HIDDEN TESTS
torch.manual_seed(105)
def _int8_oracle(x, w):
    sx = (x.abs().amax(1, keepdim=True) / 127).clamp(min=1e-30)
    sw = (w.abs().amax(1, keepdim=True) / 127).clamp(min=1e-30)
    qx = torch.round(x / sx).clamp(-127, 127).to(torch.int8)
    qw = torch.round(w / sw).clamp(-127, 127).to(torch.int8)
    return int_mm(qx, qw.t().contiguous()).float() * sx * sw.t()
# (1, 64, 24): one token, as in decode; (8, 32, 1): a Linear with one output. Scales of shape (1, 1)
# must keep both axes (a .squeeze() turns them into a 0-d tensor).
for m, k, n in [(32, 64, 24), (40, 256, 80), (64, 128, 128), (1, 64, 24), (8, 32, 1)]:
    x = torch.randn(m, k, device=device) * torch.rand(m, 1, device=device) * 4
    w = torch.randn(n, k, device=device) * torch.rand(n, 1, device=device)
    # Same codes, exact int32 sums: only the float32 rescaling may differ (~1e-7 relative),
    # plus rare one-step code differences on rounding boundaries (x / s vs x * (1/s)).
    got, want = int8_matmul(x, w), _int8_oracle(x, w)
    assert_shape(got, (m, n), name=f"int8_matmul(x ({m}, {k}), w ({n}, {k}))")
    bad = ((got - want).abs() > 1e-4 * want.abs().max()).float().mean()
    assert float(bad) < 0.01, (
        f"int8_matmul(x ({m}, {k}), w ({n}, {k})) vs vector-wise int8 on torch._int_mm: {float(bad):.1%} of entries differ "
        f"(max difference {float((got - want).abs().max()):.4g}); one absmax scale per row of x and per row of w?"
    )
# The method is the lesson: the integer kernel does all M*K*N multiply-adds on int8 codes, with int32
# results. (A float matmul of the codes gives the same numbers below 2**24, so only a spy can tell.)
x = torch.randn(24, 96, device=device)
w = torch.randn(40, 96, device=device)
x[3] = 0.0  # an all-zero token: scale 1, a zero row out, no NaN
x_before, w_before = x.clone(), w.clone()
with int_mm_spy() as calls:
    got = int8_matmul(x, w)
assert calls, "int8_matmul must multiply the int8 codes with int_mm (torch._int_mm); it was never called"
bad_calls = [c for c in calls if (c[0], c[1], c[4]) != (torch.int8, torch.int8, torch.int32)]
assert not bad_calls, f"int8_matmul: torch._int_mm must get int8 codes and return int32, got (dtypes, shapes) {bad_calls}"
macs = sum(a[0] * a[1] * b[1] for _, _, a, b, _ in calls)
assert macs >= 24 * 96 * 40, (
    f"int8_matmul(x (24, 96), w (40, 96)): torch._int_mm did {macs:,} multiply-adds, expected all 24 * 96 * 40 = "
    f"{24 * 96 * 40:,} (the whole product in the integer kernel)"
)
assert_close(got, _int8_oracle(x, w), rtol=1e-5, atol=1e-5 * float(got.abs().max()),
             name="int8_matmul(x, w) with an all-zero row in x (expected zeros in that row)")
assert bool(torch.isfinite(got).all()) and float(got[3].abs().max()) == 0.0, (
    f"int8_matmul: an all-zero row of x must give a zero row, got {got[3, :6].tolist()}..."
)
assert torch.equal(x, x_before) and torch.equal(w, w_before), "int8_matmul modified its inputs x or w in place"
# Device: nothing created on the CPU when x and w live elsewhere.
assert_runs_on_meta("int8_matmul(x, w)", int8_matmul, torch.empty(24, 96, device="meta"), torch.empty(40, 96, device="meta"))
### END HIDDEN TESTS
assert True

# %% answer id=llm_int8
def llm_int8_matmul(x, w, threshold=6.0):
    """LLM.int8(): x @ w.T with outlier feature columns in float32 and the rest in int8.

    x: float32 (M, K); w: float32 (N, K). A column k of x is an outlier if any |x[:, k]| > threshold
    (strictly: a value equal to the threshold is not an outlier; negative values count by magnitude).
    Outlier columns: x[:, O] @ w[:, O].T in float32; the other columns: int8_matmul (on
    torch._int_mm). Returns float32 (M, N); x and w are not modified.
    """
    ### BEGIN SOLUTION
    outlier = (x.abs() > threshold).any(dim=0)  # (K,) feature columns
    regular = ~outlier
    y = int8_matmul(x[:, regular], w[:, regular]) if bool(regular.any()) else 0.0
    if bool(outlier.any()):
        y = y + x[:, outlier] @ w[:, outlier].T
    return y
    ### END SOLUTION

# %% test id=test_llm_int8_visible points=1
torch.manual_seed(6)
xo, wo = torch.randn(64, 128, device=device), torch.randn(96, 128, device=device) * 0.05
xo[:, [3, 77]] *= 40  # two outlier features in every token
y_ref = xo @ wo.T
err_plain = float((int8_matmul(xo, wo) - y_ref).norm() / y_ref.norm())
err_llm = float((llm_int8_matmul(xo, wo) - y_ref).norm() / y_ref.norm())
print(f"relative error: int8 {err_plain:.2%}, LLM.int8() {err_llm:.2%}")
# The outliers cost int8 an order of magnitude; the decomposition brings back ~1%.
assert err_llm < err_plain / 4, (
    f"llm_int8_matmul with two outlier features: expected < 1/4 of int8_matmul's error {err_plain:.2%}, got {err_llm:.2%}"
)

# %% test id=test_llm_int8_hidden points=3
### BEGIN HIDDEN TESTS
torch.manual_seed(106)
x = torch.randn(48, 256, device=device)
w_h = torch.randn(64, 256, device=device) * 0.05
cols = [5, 100, 101, 250]
x[:, cols] *= 25
x[7, 9] = -7.0  # one token crosses the threshold (by magnitude) in column 9: the whole column is an outlier
x[:, 60] = x[:, 60].clamp(-5, 5)
x[11, 60] = 6.0  # exactly the threshold: not an outlier (|x| > threshold)
out_cols = [5, 9, 100, 101, 250]
mask = torch.zeros(256, dtype=torch.bool, device=device)
mask[out_cols] = True
want = int8_matmul(x[:, ~mask], w_h[:, ~mask]) + x[:, mask] @ w_h[:, mask].T
x_before, w_before = x.clone(), w_h.clone()
with int_mm_spy() as calls:
    got = llm_int8_matmul(x, w_h)
assert torch.equal(x, x_before) and torch.equal(w_h, w_before), "llm_int8_matmul modified its inputs x or w in place"
macs = sum(a[0] * a[1] * b[1] for _, _, a, b, _ in calls)
# The regular columns go through the integer kernel: 48 tokens x 251 columns x 64 outputs.
assert macs >= 48 * 251 * 64, (
    f"llm_int8_matmul: the {256 - len(out_cols)} regular columns must go through int8_matmul on torch._int_mm "
    f"({48 * 251 * 64:,} multiply-adds); torch._int_mm did {macs:,}"
)
# Same computation up to float32 summation order: 1e-4 of the output's scale.
assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()),
             name="llm_int8_matmul: outlier columns (any |x| > 6) in float32, the rest through int8_matmul")
# No value above the threshold: identical to int8_matmul.
xs = torch.randn(32, 64, device=device).clamp(-5, 5)
ws = torch.randn(40, 64, device=device)
assert_close(llm_int8_matmul(xs, ws), int8_matmul(xs, ws), rtol=1e-5, atol=1e-5, name="llm_int8_matmul with no outliers")
# A lower threshold puts more columns in float32: with threshold 0, everything is float.
assert_close(llm_int8_matmul(xs, ws, threshold=0.0), xs @ ws.T, rtol=1e-4, atol=1e-4,
             name="llm_int8_matmul(threshold=0) (every column is an outlier: plain float matmul)")
# An outlier token (a row), not a feature: LLM.int8() keeps the row-wise int8 path for it.
xr = torch.randn(32, 64, device=device)
xr[3] *= 30
assert_close(llm_int8_matmul(xr, ws, threshold=1000.0), int8_matmul(xr, ws), rtol=1e-5, atol=1e-5,
             name="llm_int8_matmul with a threshold nothing reaches")
# One token (decode) with one outlier feature.
x1 = torch.randn(1, 64, device=device)
x1[0, 17] = -9.0
m1 = torch.zeros(64, dtype=torch.bool, device=device)
m1[17] = True
want1 = int8_matmul(x1[:, ~m1], ws[:, ~m1]) + x1[:, m1] @ ws[:, m1].T
assert_close(llm_int8_matmul(x1, ws), want1, rtol=1e-4, atol=1e-4 * float(want1.abs().max()),
             name="llm_int8_matmul of one token (1, 64) with one outlier feature")
err = float((llm_int8_matmul(x, w_h) - x @ w_h.T).norm() / (x @ w_h.T).norm())
assert err < 0.02, f"llm_int8_matmul with outlier features: expected a relative error < 2%, got {err:.2%}"
### END HIDDEN TESTS
assert True

# %% [markdown]
# The error of int8 matrix products as one feature column grows: plain vector-wise int8 degrades
# as soon as the outlier dominates each token's scale; LLM.int8() does not care.

# %%
torch.manual_seed(8)
xg, wg = torch.randn(128, 512), torch.randn(256, 512) * 0.05
magnitudes = [1, 2, 5, 10, 20, 50, 100]
errs = {"vector-wise int8": [], "LLM.int8() (threshold 6)": []}
for mag in magnitudes:
    xm_ = xg.clone()
    xm_[:, 42] *= mag
    ref = xm_ @ wg.T
    errs["vector-wise int8"].append(float((int8_matmul(xm_, wg) - ref).norm() / ref.norm()))
    errs["LLM.int8() (threshold 6)"].append(float((llm_int8_matmul(xm_, wg) - ref).norm() / ref.norm()))
fig, ax = plt.subplots(figsize=(5.5, 4))
for label, values in errs.items():
    ax.loglog(magnitudes, values, "o-", label=label)
ax.set_xlabel("scale of one feature column")
ax.set_ylabel("relative error of X Wᵀ")
ax.set_title("outlier features vs int8 matmul")
ax.legend()
plt.show()

# %% [markdown]
# ## 4. Quantizing the tiny Llama model
#
# Now the real thing: the course's tiny Llama checkpoint (a `transformers` `LlamaForCausalLM`,
# loaded with `from_pretrained`; set `LLMLABS_MODEL` to a hub id such as `HuggingFaceTB/SmolLM2-135M`
# to try a bigger one if you have internet). We quantize **weights only**: each `nn.Linear` in
# the transformer blocks (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`,
# `down_proj`) is replaced by a `QuantLinear` that stores
#
# - for 8 bits: `qweight` int8 `(out, in)` and `scale` float32 `(out,)`, one absmax scale per
#   output row (your `quantize_absmax(..., per_channel=True)`): $4 \cdot \text{out}$ extra bytes;
# - for 4 bits: `qweight` uint8 `(out, in_padded / 2)` — blocks of 32, packed two codes per byte
#   (your `quantize_blocks` and `pack_int4`) — and `scale` float16 `(out, in_padded / 32)`: 4.5 bits
#   per weight. Not every width is a multiple of 32 (the tiny model's MLP is 688 wide): pad the
#   weight's columns with zeros up to `in_padded`, the next multiple of 32 (zeros quantize to code
#   0 exactly), and cut the padding off again when you dequantize, as kernels that need aligned
#   blocks do;
#
# both as **buffers** (`register_buffer`), not parameters: they are integers and are never trained.
# `forward` dequantizes and calls `F.linear` (a real kernel would dequantize tile by tile inside
# the matrix product). Embeddings, norms and `lm_head` stay in float32, as bitsandbytes and
# llama.cpp keep them by default; they are small here and sensitive everywhere.
#
# Perplexity ($\exp$ of the mean next-token negative log-likelihood, `graders.notebook.lm.perplexity`) on a fixed
# slice of the validation split judges the result. The cell below loads the model and measures
# the float baseline once.

# %%
tokenizer = load_tokenizer()
model = load_model().to(device)
ppl_ids = validation_ids(max_tokens=2048)  # a fixed slice of 8 windows: each perplexity pass takes a second or two
ppl_float = perplexity(model, ppl_ids, seq_len=256, batch_size=8)
n_linear = sum(isinstance(m, nn.Linear) for m in model.model.layers.modules())
print(f"model: {model_source()}, {sum(p.numel() for p in model.parameters()):,} parameters, "
      f"{n_linear} Linear layers in the blocks; float32 perplexity on {ppl_ids.numel()} tokens: {ppl_float:.3f}")

# %% answer id=quant_linear
class QuantLinear(nn.Module):
    """Weight-only quantized replacement for an nn.Linear (bits = 8 or 4).

    Buffers: qweight (int8 (out, in) for 8 bits; uint8 (out, in_padded // 2), packed blocks of
    32, for 4 bits) and scale (float32 (out,) for 8 bits; float16 (out, in_padded // 32) for
    4 bits), where in_padded is `in` rounded up to a multiple of 32 (zero columns appended);
    out = 1 included (scale of shape (1,), not a 0-d tensor).
    self.bias: the original bias (or None), unchanged. forward(x (..., in)) -> (..., out), in x's dtype.
    A bf16/fp16 linear gets the codes and scales of its weight's float32 copy (scale buffers as
    above). The layer keeps no float copy of the weight (no attribute, cache or hidden module:
    model_bytes must see everything it holds); its tensors live on the weight's device.
    """

    def __init__(self, linear, bits=8):
        super().__init__()
        self.bits, self.in_features, self.out_features = bits, linear.in_features, linear.out_features
        self.bias = linear.bias
        w = linear.weight.detach()
        ### BEGIN SOLUTION
        if bits == 8:
            q, s = quantize_absmax(w, per_channel=True)
            self.register_buffer("qweight", q)
            self.register_buffer("scale", s[:, 0].contiguous())
        elif bits == 4:
            pad = -w.shape[1] % 32
            q, s = quantize_blocks(F.pad(w, (0, pad)), bits=4, block=32)
            self.register_buffer("qweight", pack_int4(q))
            self.register_buffer("scale", s)
        else:
            raise ValueError(f"bits must be 8 or 4, got {bits}")
        ### END SOLUTION

    def dequantized_weight(self):
        """The float32 (out, in) weight this layer multiplies by."""
        ### BEGIN SOLUTION
        if self.bits == 8:
            return self.qweight.to(torch.float32) * self.scale[:, None]
        return dequantize_blocks(unpack_int4(self.qweight), self.scale)[:, : self.in_features]
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)
        ### END SOLUTION

# %% test id=test_quant_linear_visible points=1
torch.manual_seed(9)
lin = nn.Linear(64, 48, bias=False).to(device)
x_l = torch.randn(5, 64, device=device)
rel_errors = {}
for bits, q_shape, q_dtype, s_shape, s_dtype in [(8, (48, 64), torch.int8, (48,), torch.float32),
                                                 (4, (48, 32), torch.uint8, (48, 2), torch.float16)]:
    ql = QuantLinear(lin, bits)
    assert_shape(ql.qweight, q_shape, name=f"QuantLinear(bits={bits}).qweight")
    assert_dtype(ql.qweight, q_dtype, name=f"QuantLinear(bits={bits}).qweight")
    assert_shape(ql.scale, s_shape, name=f"QuantLinear(bits={bits}).scale")
    assert_dtype(ql.scale, s_dtype, name=f"QuantLinear(bits={bits}).scale")
    assert {n for n, _ in ql.named_buffers()} >= {"qweight", "scale"}, f"QuantLinear(bits={bits}): qweight and scale must be buffers"
    y_l = ql(x_l)
    assert_shape(y_l, (5, 48), name=f"QuantLinear(bits={bits})(x (5, 64))")
    rel_errors[bits] = float((y_l - lin(x_l)).norm() / lin(x_l).norm())
# Weight rounding of N(0, 1/64)-ish weights: ~0.5% relative output error at 8 bits, ~10% at 4 bits.
assert rel_errors[8] < 0.01 and rel_errors[4] < 0.2, (
    f"QuantLinear: expected relative output errors < 1% (8 bits) and < 20% (4 bits), got "
    f"{rel_errors[8]:.2%} and {rel_errors[4]:.2%}"
)

# %% test id=test_quant_linear_hidden points=4
### BEGIN HIDDEN TESTS
torch.manual_seed(107)
for bias, d_in, d_out in [(False, 256, 96), (True, 256, 96), (False, 88, 40)]:
    lin = nn.Linear(d_in, d_out, bias=bias)
    with torch.no_grad():
        lin.weight[4, 17] = 2.0  # an outlier weight in row 4 (and in block 0 of that row)
    x = torch.randn(3, 7, d_in)
    q8 = QuantLinear(lin, 8)
    # Oracle: PyTorch's weight-only int8 kernel on the same weights (per-row scales).
    w_codes = (lin.weight.detach() / (lin.weight.detach().abs().amax(1) / 127)[:, None]).round().clamp(-127, 127)
    assert_close(q8.qweight.float(), w_codes, rtol=0, atol=1, name="QuantLinear(bits=8).qweight (per-row absmax codes)")
    want = torch._weight_int8pack_mm(x.reshape(-1, d_in), q8.qweight.cpu(), q8.scale.cpu().float()).reshape(3, 7, d_out)
    if bias:
        want = want + lin.bias.detach()
    # The oracle computes in another order (float32, 256 terms): 1e-5 relative to the output scale.
    assert_close(q8(x), want, rtol=1e-4, atol=1e-5 * float(want.abs().max()) + 1e-6,
                 name=f"QuantLinear(bits=8)(x) vs torch._weight_int8pack_mm (in={d_in}, bias={bias})")
    q4 = QuantLinear(lin, 4)
    padded = F.pad(lin.weight.detach(), (0, -d_in % 32))
    codes, scales = quantize_blocks(padded, 4)
    assert_shape(q4.qweight, (d_out, padded.shape[1] // 2), name=f"QuantLinear(bits=4).qweight for in_features={d_in}")
    assert_close(q4.scale.float(), scales.float(), rtol=0, atol=0, name=f"QuantLinear(bits=4).scale (blocks of 32, in={d_in})")
    assert_close(unpack_int4(q4.qweight), codes, rtol=0, atol=0, name=f"QuantLinear(bits=4).qweight (packed codes, in={d_in})")
    want4 = F.linear(x, dequantize_blocks(quantize_blocks(padded, 4)[0], scales)[:, :d_in], lin.bias)
    assert_close(q4(x), want4, rtol=1e-4, atol=1e-5 * float(want4.abs().max()) + 1e-6, name=f"QuantLinear(bits=4)(x) (bias={bias})")
    assert_close(q4.dequantized_weight(), dequantize_blocks(*quantize_blocks(padded, 4))[:, :d_in], rtol=0, atol=1e-7,
                 name="QuantLinear(bits=4).dequantized_weight()")
# A Linear with one output (a value head, say): scale of shape (1,), output (..., 1).
lin1 = nn.Linear(40, 1)
x1 = torch.randn(3, 5, 40)
for bits, s_shape in [(8, (1,)), (4, (1, 2))]:
    q1 = QuantLinear(lin1, bits)
    assert_shape(q1.scale, s_shape, name=f"QuantLinear(nn.Linear(40, 1), bits={bits}).scale")
    # Rounding error at most half a step (max|w| / 127 or / 7; 2% more for the float16 block scales).
    step = float(lin1.weight.detach().abs().max()) / (127 if bits == 8 else 7)
    assert_close(q1.dequantized_weight(), lin1.weight.detach(), rtol=0, atol=0.51 * step,
                 name=f"QuantLinear(nn.Linear(40, 1), bits={bits}).dequantized_weight() (error <= step / 2)")
    y1 = q1(x1)
    assert_shape(y1, (3, 5, 1), name=f"QuantLinear(nn.Linear(40, 1), bits={bits})(x (3, 5, 40))")
    # The same product in another summation order: float32 round-off on outputs of order 1.
    assert_close(y1, F.linear(x1, q1.dequantized_weight(), lin1.bias), rtol=1e-5, atol=1e-5,
                 name=f"QuantLinear(nn.Linear(40, 1), bits={bits})(x) vs x @ dequantized_weight().T + bias")
# The default is 8 bits; the buffers are plain tensors, outside autograd (no graph back to the weight).
q_default = QuantLinear(nn.Linear(64, 16))
assert q_default.bits == 8 and q_default.qweight.dtype == torch.int8, (
    f"QuantLinear(linear) defaults to 8 bits: expected int8 qweight, got bits={q_default.bits}, {q_default.qweight.dtype}"
)
for layer in (q_default, q4):
    graphs = [n for n, b in layer.named_buffers() if b.requires_grad or b.grad_fn is not None]
    assert not graphs, f"QuantLinear(bits={layer.bits}): buffers {graphs} require grad (quantize linear.weight.detach())"
# bf16 / fp16 layers: the codes and scales of the weight's float32 copy; the output in x's dtype.
for half in (torch.bfloat16, torch.float16):
    lin_half = nn.Linear(88, 40).to(half)
    lin_f32 = copy.deepcopy(lin_half).float()
    x_half = torch.randn(3, 88).to(half)
    for bits in (8, 4):
        q_half, q_f32 = QuantLinear(lin_half, bits), QuantLinear(lin_f32, bits)
        assert_dtype(q_half.scale, q_f32.scale.dtype, name=f"QuantLinear({half} linear, bits={bits}).scale")
        assert_close(q_half.scale.float(), q_f32.scale.float(), rtol=0, atol=0,
                     name=f"QuantLinear({half} linear, bits={bits}).scale vs the float32 copy's (compute scales in float32)")
        n_off = int((q_half.qweight != q_f32.qweight).sum())
        assert n_off <= 2, f"QuantLinear({half} linear, bits={bits}): {n_off} qweight entries differ from the float32 copy's"
        y_half = q_half(x_half)
        assert_dtype(y_half, half, name=f"QuantLinear({half} linear, bits={bits})({half} x)")
        want_half = F.linear(x_half, q_f32.dequantized_weight().to(half), lin_half.bias).float()
        # One 16-bit rounding of each output: 1% of the output's scale.
        assert_close(y_half.float(), want_half, rtol=1e-2, atol=1e-2 * float(want_half.abs().max()),
                     name=f"QuantLinear({half} linear, bits={bits})(x)")
# No float copy of the weight anywhere: not in an attribute, a cache filled by forward, a kept
# nn.Linear, nor outside the module (a global or functools cache).
import gc
def _held_float_tensors(module, min_numel):
    found, stack, seen = [], [("layer", module)], set()
    while stack:
        path, obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            if obj.is_floating_point() and obj.numel() >= min_numel:
                found.append(f"{path} {tuple(obj.shape)}")
        elif isinstance(obj, nn.Module):
            stack += [(f"{path}.{k}", v) for k, v in vars(obj).items()]
        elif isinstance(obj, dict):
            stack += [(f"{path}[{k!r}]", v) for k, v in obj.items()]
        elif isinstance(obj, (list, tuple, set)):
            stack += [(f"{path}[{i}]", v) for i, v in enumerate(obj)]
    return found
def _live_float_tensors(numels):
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor) and o.is_floating_point() and o.numel() in numels)
sizes = {37 * 104, 37 * 128}  # (out, in) and (out, in padded to 32) of the layer below
live_before = _live_float_tensors(sizes)
lin_gc = nn.Linear(104, 37)
layers = {bits: QuantLinear(lin_gc, bits) for bits in (8, 4)}
del lin_gc
for bits, layer in layers.items():
    layer(torch.randn(2, 104))
    layer(torch.randn(2, 104))
    held = _held_float_tensors(layer, 37 * 104)
    assert not held, f"QuantLinear(bits={bits}) holds float tensors as large as the weight: {held} (only qweight and scale)"
live_after = _live_float_tensors(sizes)
assert live_after == live_before, (
    f"QuantLinear keeps {live_after - live_before} float copies of the weight alive after the nn.Linear is gone "
    f"(a cache outside the module?): model_bytes cannot see them"
)
# Device: the buffers and the output live on the weight's device.
def _quant_linear_on(lin, x, bits):
    layer = QuantLinear(lin, bits)
    return layer(x), layer.qweight, layer.scale
for bits in (8, 4):
    assert_runs_on_meta(f"QuantLinear(nn.Linear(88, 40, device='meta'), bits={bits})", _quant_linear_on,
                        nn.Linear(88, 40, device="meta"), torch.empty(3, 88, device="meta"), bits)
### END HIDDEN TESTS
assert True

# %% [markdown]
# Now replace the layers. `quantize_model(model, bits)` swaps every `nn.Linear` inside
# `model.model.layers` for a `QuantLinear` (in place; return the model), leaving `lm_head`
# and the embeddings alone. Find the layers with `named_modules()` and replace one with
# `module.set_submodule(name, new_layer)` (`name` relative to `module`, e.g. `"0.self_attn.q_proj"`).
#
# `model_bytes(model)` counts the memory the model's tensors hold: the bytes
# (`numel() * element_size()`) of every distinct parameter **and buffer** (`named_parameters()`
# and `named_buffers()` list a shared tensor once). Tied weights are counted once; the integer
# buffers of your `QuantLinear`s are counted.

# %% answer id=quantize_model
def quantize_model(model, bits=8):
    """Replace every nn.Linear inside model.model.layers by QuantLinear(linear, bits), in place
    (lm_head and the embeddings stay float); return the same model object."""
    ### BEGIN SOLUTION
    blocks = model.model.layers
    targets = [(name, mod) for name, mod in blocks.named_modules() if isinstance(mod, nn.Linear)]
    for name, linear in targets:  # collect first: replacing while iterating would skip modules
        blocks.set_submodule(name, QuantLinear(linear, bits))
    return model
    ### END SOLUTION


def model_bytes(model):
    """Bytes held by the distinct parameters and buffers of a model."""
    ### BEGIN SOLUTION
    tensors = [p for _, p in model.named_parameters()] + [b for _, b in model.named_buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)
    ### END SOLUTION

# %% test id=test_quantize_model_visible points=1
bytes_float = model_bytes(model)
model_q8 = quantize_model(copy.deepcopy(model), 8)
n_quant = sum(isinstance(m, QuantLinear) for m in model_q8.modules())
assert n_quant == n_linear, f"quantize_model: expected {n_linear} QuantLinear layers in the blocks, got {n_quant}"
assert isinstance(model_q8.lm_head, nn.Linear), (
    f"quantize_model must leave lm_head as a float nn.Linear, got {type(model_q8.lm_head).__name__}"
)
bytes_q8 = model_bytes(model_q8)
print(f"float32: {bytes_float:,} bytes, int8 weights: {bytes_q8:,} bytes ({bytes_float / bytes_q8:.2f}x smaller)")
assert bytes_q8 < bytes_float, f"model_bytes: the int8 model ({bytes_q8:,} B) must be smaller than the float one ({bytes_float:,} B)"

# %% test id=test_quantize_model_hidden points=3
### BEGIN HIDDEN TESTS
# Measured again rather than taken from the visible test, which may have stopped before them.
bytes_float = model_bytes(model)
bytes_q8 = model_bytes(quantize_model(copy.deepcopy(model), 8))
_seen, _expected_float = set(), 0
for _t in list(model.parameters()) + list(model.buffers()):
    if _t.data_ptr() not in _seen:
        _seen.add(_t.data_ptr())
        _expected_float += _t.numel() * _t.element_size()
assert bytes_float == _expected_float, f"model_bytes(float model): expected {_expected_float:,} bytes, got {bytes_float:,}"
_lins = [m for m in model.model.layers.modules() if isinstance(m, nn.Linear)]
_w = sum(m.weight.numel() for m in _lins)
_rows = sum(m.out_features for m in _lins)
# Deterministic byte counts: 4 -> 1 byte per weight plus a float32 scale per row (8 bits);
# 4 -> 0.5 byte per (padded) weight plus a float16 scale per 32 weights (4 bits).
_expected_q8 = _expected_float - 4 * _w + _w + 4 * _rows
assert bytes_q8 == _expected_q8, f"model_bytes(int8 model): expected {_expected_q8:,} bytes, got {bytes_q8:,}"
model_copy = copy.deepcopy(model)
model_q4 = quantize_model(model_copy, 4)
assert model_q4 is model_copy, "quantize_model must change the model in place and return that same model object"
bytes_q4 = model_bytes(model_q4)
_blocks = sum(m.out_features * -(-m.in_features // 32) for m in _lins)  # in_features padded to 32
_expected_q4 = _expected_float - 4 * _w + 16 * _blocks + 2 * _blocks
assert bytes_q4 == _expected_q4, f"model_bytes(4-bit model): expected {_expected_q4:,} bytes, got {bytes_q4:,}"
for _name, _mod in model_q4.model.layers.named_modules():
    assert not isinstance(_mod, nn.Linear), f"quantize_model(bits=4) left {_name} as an nn.Linear"
# The original model is untouched (we quantized deep copies).
n_float = sum(isinstance(m, nn.Linear) for m in model.model.layers.modules())
assert n_float == n_linear, f"quantizing a deep copy changed the original model: {n_float} of {n_linear} Linear layers left"
# A Llama with biases on every projection (attention_bias, mlp_bias) and an MLP width (80) that is not a
# multiple of 32, quantized with the default bits (8): every Linear replaced, its bias kept.
from transformers import LlamaForCausalLM
torch.manual_seed(109)
cfg_b = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, attention_bias=True, mlp_bias=True)
tiny = LlamaForCausalLM(cfg_b).to(device).eval()
biases = {}
with torch.no_grad():
    for _name, _mod in tiny.model.layers.named_modules():
        if isinstance(_mod, nn.Linear):
            _mod.bias.normal_(0, 0.1)
            biases[_name] = _mod.bias.detach().clone()
    tiny_ids = torch.randint(0, 128, (2, 10), device=device)
    y_float = tiny(tiny_ids).logits
    tiny_q = quantize_model(tiny)
    y_q = tiny_q(tiny_ids).logits
quant = {n: m for n, m in tiny_q.model.layers.named_modules() if isinstance(m, QuantLinear)}
assert set(quant) == set(biases) and all(m.bits == 8 for m in quant.values()), (
    f"quantize_model(model) (default bits 8) on a Llama with biases: expected 8-bit QuantLinear layers at {sorted(biases)}, "
    f"got {sorted((n, m.bits) for n, m in quant.items())}"
)
lost = [n for n, m in quant.items() if m.bias is None or not torch.equal(m.bias.detach(), biases[n])]
assert not lost, f"quantize_model on a Llama with biases: the biases of {lost} were lost or changed"
rel_b = float((y_q - y_float).norm() / y_float.norm())
# int8 weights with per-row scales: ~0.3% relative error on these logits; a lost bias or a wrong layer costs > 10%.
assert rel_b < 0.02, f"quantize_model on a Llama with biases: expected logits within 2% of float, got {rel_b:.2%}"
### END HIDDEN TESTS
assert True

# %% test id=test_perplexity points=2
### BEGIN HIDDEN TESTS
# Re-grades exercise 4 (QuantLinear and quantize_model) end to end, on the real model: a broken
# quantizer that slipped through the layer tests loses these points too.
ppl_q8 = perplexity(quantize_model(copy.deepcopy(model), 8), ppl_ids, seq_len=256, batch_size=8)
ppl_q4 = perplexity(quantize_model(copy.deepcopy(model), 4), ppl_ids, seq_len=256, batch_size=8)
print(f"perplexity: float {ppl_float:.3f}, int8 {ppl_q8:.3f} ({ppl_q8 / ppl_float - 1:+.2%}), "
      f"4-bit {ppl_q4:.3f} ({ppl_q4 / ppl_float - 1:+.2%})")
# Bounds calibrated on the reference with the bundled model (2048 validation tokens): int8 per row
# +0.001%, 4-bit blocks of 32 +0.12% (+0.05% on 16k tokens). A scale from the mean magnitude
# costs +37% and 2-bit blocks +9%; the bounds, +0.5% and +2%, sit well between.
assert ppl_q8 < ppl_float * 1.005, (
    f"int8 weight-only model: expected perplexity within +0.5% of float ({ppl_float:.3f}), got {ppl_q8:.3f}"
)
assert ppl_q4 < ppl_float * 1.02, (
    f"4-bit (blocks of 32) model: expected perplexity within +2% of float ({ppl_float:.3f}), got {ppl_q4:.3f}"
)
### END HIDDEN TESTS
assert True

# %% [markdown]
# Perplexity against bits per weight. The 3- and 2-bit points reuse your `quantize_blocks` with
# the dequantized weights put straight into a copy of the model (we have no packing for them);
# their size is computed with `bits_per_weight`.
#
# Expect a surprise: this small model hardly notices 8, 4 or even 3 bits (a fraction of a
# percent), and only 2 bits hurt. Its weights are smooth and it has no outlier features. Models
# with billions of parameters are far more sensitive at 4 bits and below, which is why GPTQ,
# AWQ and k-quants exist (see the wrap-up). The perplexity test therefore catches *broken*
# quantizers (saturating scales, lost scales, scrambled layouts); the byte counts and the library
# oracle check the format itself.

# %%
def _fake_quantized(model, bits):
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for mod in clone.model.layers.modules():
            if isinstance(mod, nn.Linear):
                padded = F.pad(mod.weight, (0, -mod.in_features % 32))
                mod.weight.copy_(dequantize_blocks(*quantize_blocks(padded, bits))[:, : mod.in_features])
    return clone


points = {32: ppl_float}
for bits in (8, 4):
    points[bits_per_weight(bits)] = perplexity(quantize_model(copy.deepcopy(model), bits), ppl_ids, seq_len=256, batch_size=8)
for bits in (3, 2):
    points[bits_per_weight(bits)] = perplexity(_fake_quantized(model, bits), ppl_ids, seq_len=256, batch_size=8)
fig, ax = plt.subplots(figsize=(5.5, 4))
xs_ = sorted(points)
ax.plot(xs_, [points[b] for b in xs_], "o-")
ax.set_xscale("log", base=2)
ax.set_xlabel("bits per weight (blocks layers)")
ax.set_ylabel("validation perplexity")
ax.set_title("perplexity vs bits")
plt.show()
for b in xs_:
    print(f"{b:5.2f} bits per weight: perplexity {points[b]:.3f}")

# %% [markdown]
# ## 5. Timing inference honestly
#
# Four rules, each of which someone breaks in every second benchmark you will read:
#
# 1. **Warm up.** The first calls pay one-off costs (memory allocation, kernel selection, lazy
#    initialisation, caches, CUDA context creation). Run the function a few times untimed.
# 2. **Synchronise.** CUDA kernels run asynchronously: `f(x)` returns as soon as the kernels
#    are *queued*. Call the device's synchronize **before** starting the clock (so earlier queued
#    work is not billed to you) and **after** the call, before stopping it.
# 3. **Repeat and report robust statistics.** One time is an anecdote. Report the **median**
#    (robust to the odd interruption) and a tail percentile such as **p90** — what a user waits
#    for one request in ten. We use the linear-interpolation percentile (`numpy.percentile`'s
#    default): sort the times $t_{(0)} \le \dots \le t_{(n-1)}$, put $p = 0.9\,(n-1)$, and
#    interpolate between $t_{(\lfloor p \rfloor)}$ and $t_{(\lceil p \rceil)}$.
# 4. **Compare within one run.** On a shared machine absolute times wander; the *ratio* of two
#    variants timed interleaved (A, B, A, B, …) in one run is what you can trust.
#
# Write `benchmark(fn, warmup, repeats, sync, timer)`. Taking the clock and the synchronisation
# as arguments (defaults: `time.perf_counter` and `graders.notebook.measure.synchronize`, which calls
# `torch.cuda.synchronize()` on a GPU and does nothing on a CPU) makes it testable: a test can
# hand it a fake clock and count the calls. Each timed repeat must be exactly
# `sync(); start = timer(); fn(); sync(); stop = timer()`.

# %% answer id=benchmark
def benchmark(fn, warmup=3, repeats=10, sync=synchronize, timer=time.perf_counter):
    """Time fn() honestly.

    Calls fn() `warmup` times untimed, then `repeats` times, each as
    sync(); start = timer(); fn(); sync(); stop = timer(), whatever the device: sync is called
    on a CPU too (the default, graders.notebook's synchronize, is a no-op there and waits for
    the GPU on a GPU; the tests check the default as well as a sync they pass).
    Returns a dict: "times" (list of the `repeats` durations stop - start, in call order),
    "median" and "p90" (linear interpolation, like numpy.percentile).
    """
    ### BEGIN SOLUTION
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = timer()
        fn()
        sync()
        times.append(timer() - start)
    ordered = sorted(times)
    pos = 0.9 * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    p90 = ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
    return {"times": times, "median": statistics.median(times), "p90": p90}
    ### END SOLUTION

# %% test id=test_benchmark_visible points=1
r0 = benchmark(lambda: sum(range(1000)), warmup=2, repeats=5)
assert isinstance(r0, dict) and len(r0["times"]) == 5, f"benchmark(repeats=5): expected 5 times, got {r0!r}"
assert all(t >= 0 for t in r0["times"]), f"benchmark: durations must be >= 0, got {r0['times']}"
# A fake clock that advances by 1, 2, 3, ... seconds per reading: durations are known exactly.
ticks = iter(range(100))
clock = lambda: float(sum(range(next(ticks) + 1)))  # noqa: E731  0, 1, 3, 6, 10, 15, ...
r1 = benchmark(lambda: None, warmup=1, repeats=3, sync=lambda: None, timer=clock)
# Readings 0, 1 | 3, 6 | 10, 15 -> durations 1, 3, 5.
assert r1["times"] == [1.0, 3.0, 5.0], f"benchmark with a fake clock: expected times [1, 3, 5], got {r1['times']}"
assert r1["median"] == 3.0, f"benchmark: median of [1, 3, 5] is 3, got {r1['median']}"

# %% test id=test_benchmark_hidden points=3
### BEGIN HIDDEN TESTS
# An event log shared by the callable, the sync callback and the clock.
for warmup, repeats in [(3, 10), (0, 4), (5, 1), (2, 7)]:
    log, now = [], [0.0]
    durations = [0.5, 0.1, 0.9, 0.3, 0.2, 0.8, 0.4, 1.0, 0.6, 0.7][:repeats]
    calls = [0]
    def fn(log=log, now=now, calls=calls, warmup=warmup, durations=durations):
        log.append("fn")
        k = calls[0] - warmup
        # Warm-up calls are slow (100 s each): timing them would show.
        now[0] += 100.0 if k < 0 else durations[k]
        calls[0] += 1
    def sync(log=log):
        log.append("sync")
    def timer(log=log, now=now):
        log.append("timer")
        return now[0]
    counted = CallCounter(fn)
    r = benchmark(counted, warmup=warmup, repeats=repeats, sync=sync, timer=timer)
    assert counted.calls == warmup + repeats, (
        f"benchmark(warmup={warmup}, repeats={repeats}): expected fn called {warmup + repeats} times, got {counted.calls}"
    )
    first_timer = log.index("timer") if "timer" in log else len(log)
    assert log[:first_timer].count("fn") == warmup, (
        f"benchmark(warmup={warmup}): the {warmup} warm-up calls must come before any clock reading; "
        f"got {log[:first_timer].count('fn')} calls before the first reading"
    )
    timed = log[first_timer - 1:] if first_timer > 0 and log[first_timer - 1] == "sync" else log[first_timer:]
    expected_pattern = ["sync", "timer", "fn", "sync", "timer"] * repeats
    assert timed == expected_pattern, (
        f"benchmark(warmup={warmup}, repeats={repeats}): after warm-up each repeat must be "
        f"sync, timer, fn, sync, timer; got the sequence {timed[:12]}..."
    )
    assert len(r["times"]) == repeats and all(abs(a - b) < 1e-9 for a, b in zip(r["times"], durations, strict=True)), (
        f"benchmark: expected times {durations} (the known durations, in call order), got {r['times']}"
    )
    assert_scalar_close(r["median"], float(np.median(durations)), rtol=0, atol=1e-9, name=f"median of {durations}")
    assert_scalar_close(r["p90"], float(np.percentile(durations, 90)), rtol=0, atol=1e-9, name=f"p90 of {durations}")
# The defaults: 3 warm-up calls, 10 timed ones, and a sync that synchronises a GPU around every
# timed call. Pretend a GPU is initialised (on a real one the calls go through) and count the
# torch.cuda.synchronize calls the default sync makes.
real_cuda = (torch.cuda.is_available, torch.cuda.is_initialized, torch.cuda.synchronize)
cuda_syncs = []
def _counting_sync(*args, **kwargs):
    cuda_syncs.append(args)
    if real_cuda[0]():
        real_cuda[2](*args, **kwargs)
torch.cuda.is_available, torch.cuda.is_initialized, torch.cuda.synchronize = (lambda: True), (lambda: True), _counting_sync
counted = CallCounter(lambda: None)
try:
    r = benchmark(counted)
finally:
    torch.cuda.is_available, torch.cuda.is_initialized, torch.cuda.synchronize = real_cuda
assert counted.calls == 13 and len(r["times"]) == 10, (
    f"benchmark(fn) with the defaults (warmup=3, repeats=10): expected 13 calls and 10 times, "
    f"got {counted.calls} calls and {len(r['times'])} times"
)
assert len(cuda_syncs) >= 2 * 10, (
    f"benchmark(fn) with the default sync on a GPU: expected torch.cuda.synchronize before and after each "
    f"of the 10 timed calls (>= 20), got {len(cuda_syncs)} (the default sync must be graders.notebook's synchronize, "
    f"called whatever the device)"
)
### END HIDDEN TESTS
assert True

# %% [markdown]
# Latency against batch size for one forward pass of the tiny model (32 tokens per sequence),
# timed with your helper. The time per *batch* grows slowly at first — small batches leave the
# hardware idle, and the weights are read once per batch whatever its size — so the time per
# *sequence* falls: batching buys throughput at the price of latency.

# %%
batch_sizes = [1, 2, 4, 8]
lat = {}
with torch.no_grad():
    for bsz in batch_sizes:
        xb = ppl_ids[: bsz * 32].reshape(bsz, 32).to(device)
        lat[bsz] = benchmark(lambda xb=xb: model(xb), warmup=1, repeats=5)
fig, ax = plt.subplots(figsize=(5.5, 4))
ax.plot(batch_sizes, [lat[b]["median"] * 1e3 for b in batch_sizes], "o-", label="median per batch")
ax.plot(batch_sizes, [lat[b]["p90"] * 1e3 for b in batch_sizes], "x--", label="p90 per batch")
ax.plot(batch_sizes, [lat[b]["median"] * 1e3 / b for b in batch_sizes], "s-", label="median per sequence")
ax.set_xscale("log", base=2)
ax.set_xlabel("batch size (sequences of 32 tokens)")
ax.set_ylabel("time (ms)")
ax.set_title(f"forward latency vs batch size on {device}")
ax.legend()
plt.show()

# %% [markdown]
# Float32 against int8 matrix products on this device: `torch._int_mm` on int8 codes vs `@` on
# float32, for a decode-like shape (a few rows) and a prefill-like one. Timed interleaved in one
# run by `graders.notebook.measure.speedup`, so the ratio is meaningful even on a busy machine. On 2 CPU
# cores int8 is several times faster. On a GPU these sizes are far too small: both products take
# a few microseconds of launch overhead, and int8 (padded by `int_mm`) can even lose; the GPU's
# int8 and fp8 tensor cores pay off at thousands of rows and columns.

# %%
for m_rows in (32, 512):
    a32, b32 = torch.randn(m_rows, 1024, device=device), torch.randn(1024, 1024, device=device)
    a8, b8 = torch.randint(-127, 128, (m_rows, 1024), dtype=torch.int8, device=device), torch.randint(-127, 128, (1024, 1024), dtype=torch.int8, device=device)
    r = speedup(lambda a8=a8, b8=b8: int_mm(a8, b8), lambda a32=a32, b32=b32: a32 @ b32, repeats=9, warmup=2)
    print(f"({m_rows} x 1024) @ (1024 x 1024): float32 {r.slow.median * 1e3:.3f} ms, int8 {r.fast.median * 1e3:.3f} ms "
          f"-> int8 is {r.ratio:.2f}x as fast")

# %% [markdown]
# ### Generation with and without the KV cache
#
# Greedy generation appends the most likely next token, one at a time. Without a cache every step
# runs the model on the *whole* sequence so far; with one (unit 02), the first step runs the
# prompt and returns `past_key_values`, and every later step feeds **only the newest token**
# together with that cache: `model(input_ids=..., past_key_values=past, use_cache=True)`, then
# `out.past_key_values` for the next step and `out.logits[:, -1]` for the next token.
#
# Write `greedy_generate(model, input_ids, max_new_tokens, use_cache)`. It returns the tokens
# and, for checking, the logits each new token was chosen from; both must match
# `model.generate(..., do_sample=False, output_logits=True)`, with and without the cache. Wrap
# the loop in `torch.no_grad()`.

# %% answer id=generate
def greedy_generate(model, input_ids, max_new_tokens, use_cache=True):
    """Greedy decoding. input_ids: LongTensor (B, T).

    Returns (ids, logits): ids (B, T + max_new_tokens), the prompt followed by the generated
    tokens (no early stop at end-of-sequence: generation goes on after an EOS token, T = 1
    included); logits float (B, max_new_tokens, vocab), the last-position logits each new token
    was chosen from (its argmax). With use_cache, ask the model for its cache explicitly
    (use_cache=True, whatever its config says) and feed only the newest token after the first
    step: the tests count the positions the model embeds (prompt once, then one per step) and
    time both modes on one thread (with the cache more than 1.3x as fast as without, for 6
    tokens after a 192-token prompt; the reference is 2-4x). Every forward pass runs without
    autograd (torch.no_grad), so no graph is kept;
    input_ids is not modified. The loop is the exercise: call the model once per step, never
    model.generate (the tests' oracle; they check it is not called).
    """
    ### BEGIN SOLUTION
    ids, past, steps = input_ids, None, []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            if use_cache:
                step_ids = ids if past is None else ids[:, -1:]
                out = model(input_ids=step_ids, past_key_values=past, use_cache=True)
                past = out.past_key_values
            else:
                out = model(input_ids=ids, use_cache=False)
            logits = out.logits[:, -1]
            steps.append(logits)
            ids = torch.cat([ids, logits.argmax(dim=-1, keepdim=True)], dim=1)
    return ids, torch.stack(steps, dim=1)
    ### END SOLUTION

# %% test id=test_generate_visible points=1
prompt = torch.tensor([tokenizer("def read_file(path):\n    ").input_ids], device=device)
gen_cached, logits_cached = greedy_generate(model, prompt, 12, use_cache=True)
gen_plain, logits_plain = greedy_generate(model, prompt, 12, use_cache=False)
assert_shape(gen_cached, (1, prompt.shape[1] + 12), name="ids from greedy_generate(prompt, 12)")
assert_shape(logits_cached, (1, 12, model.config.vocab_size), name="logits from greedy_generate(prompt, 12)")
print(repr(tokenizer.decode(gen_cached[0])))
assert torch.equal(gen_cached, gen_plain), (
    f"greedy_generate: the tokens with and without the cache must agree; got {gen_cached[0, -12:].tolist()} "
    f"with and {gen_plain[0, -12:].tolist()} without"
)
# Same model, same tokens: cached and recomputed logits differ by float32 round-off only.
assert_close(logits_cached, logits_plain, rtol=1e-3, atol=1e-3, name="greedy_generate logits with vs without the cache")

# %% test id=test_generate_hidden points=3
### BEGIN HIDDEN TESTS
torch.manual_seed(108)
batch_prompt = ppl_ids[:2 * 24].reshape(2, 24).to(device)
with torch.no_grad():
    ref = model.generate(batch_prompt, attention_mask=torch.ones_like(batch_prompt), max_new_tokens=12,
                         min_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                         output_logits=True, return_dict_in_generate=True)
want, want_logits = ref.sequences, torch.stack(ref.logits, dim=1)
# The loop is the exercise: a spy counts calls of model.generate (the oracle) made by greedy_generate.
from transformers import GenerationMixin
_real_generate, generate_calls = GenerationMixin.generate, []
def _spy_generate(*args, **kwargs):
    generate_calls.append(kwargs.get("use_cache"))
    return _real_generate(*args, **kwargs)
for use_cache in (True, False):
    GenerationMixin.generate = _spy_generate
    try:
        got, got_logits = greedy_generate(model, batch_prompt, 12, use_cache=use_cache)
    finally:
        GenerationMixin.generate = _real_generate
    assert not generate_calls, (
        f"greedy_generate(use_cache={use_cache}) called model.generate {len(generate_calls)} time(s): write the "
        f"decoding loop yourself, one model(...) call per new token"
    )
    # The raw logits, not just their argmax: float32 round-off from other shapes (~1e-5).
    assert_close(got_logits, want_logits, rtol=1e-3, atol=1e-3,
                 name=f"greedy_generate(use_cache={use_cache}) logits vs model.generate(output_logits=True)")
    assert torch.equal(got, want), (
        f"greedy_generate(use_cache={use_cache}) vs model.generate(do_sample=False) on a batch of 2: "
        f"first difference at position {int((got != want).any(0).float().argmax()) if got.shape == want.shape else 'shape'} "
        f"(expected {want[:, -12:].tolist()}, got {got[:, -12:].tolist()})"
    )
# End of sequence does not stop generation. These prompts end 3 tokens before an <|eos|> of the data,
# and the bundled model predicts it within the 12 new tokens (after 4 and 2); the oracle is told not
# to stop (eos_token_id=None). Then a prompt of a single token. Meanwhile a hook checks that every
# forward pass runs without autograd (no graph kept across steps) and the prompts stay as they were.
eos_at = [int(i) for i in (ppl_ids == tokenizer.eos_token_id).nonzero().flatten() if i >= 23][:2] or [23]
for prompt_h, n_new in [(torch.stack([ppl_ids[i - 23:i - 3] for i in eos_at]).to(device), 12),
                        (ppl_ids[5:6][None].to(device), 5)]:
    with torch.no_grad():
        ref = model.generate(prompt_h, attention_mask=torch.ones_like(prompt_h), max_new_tokens=n_new, do_sample=False,
                             eos_token_id=None, pad_token_id=tokenizer.pad_token_id, output_logits=True,
                             return_dict_in_generate=True)
    want, want_logits = ref.sequences, torch.stack(ref.logits, dim=1)
    n_eos = int((want[:, prompt_h.shape[1]:] == tokenizer.eos_token_id).sum())
    prompt_before = prompt_h.clone()
    for use_cache in (True, False):
        grad_on = []
        hook = model.model.embed_tokens.register_forward_pre_hook(lambda mod, args: grad_on.append(torch.is_grad_enabled()))
        try:
            got, got_logits = greedy_generate(model, prompt_h, n_new, use_cache=use_cache)
        finally:
            hook.remove()
        assert grad_on and not any(grad_on) and not got_logits.requires_grad, (
            f"greedy_generate(use_cache={use_cache}): {sum(grad_on)} of {len(grad_on)} forward passes ran with autograd on "
            f"(logits requires_grad={got_logits.requires_grad}); wrap the loop in torch.no_grad()"
        )
        assert torch.equal(prompt_h, prompt_before), "greedy_generate modified its input_ids in place"
        assert got.shape == want.shape and torch.equal(got, want), (
            f"greedy_generate(prompt {tuple(prompt_h.shape)}, {n_new}, use_cache={use_cache}), {n_eos} EOS token(s) among "
            f"the new ones: expected {want[:, -n_new:].tolist()} (no early stop), got {got[:, prompt_h.shape[1]:].tolist()}"
        )
        assert_close(got_logits, want_logits, rtol=1e-3, atol=1e-3,
                     name=f"greedy_generate(prompt {tuple(prompt_h.shape)}, use_cache={use_cache}) logits")
### END HIDDEN TESTS
assert True

# %% test id=test_generate_speed points=2
### BEGIN HIDDEN TESTS
# The cache must pay off: 8 new tokens after a 192-token prompt. First a deterministic count:
# how many token positions the model embeds. With the cache: the prompt once, then one token per
# step (192 + 7); recomputing: 192 + 193 + ... + 199.
# The call uses the default (use_cache=True), and the model's config says use_cache=False: the cache
# must be asked for explicitly (model(..., use_cache=True)), not left to the config.
long_prompt = ppl_ids[:192][None].to(device)
fed = []
hook = model.model.embed_tokens.register_forward_hook(lambda mod, args, result: fed.append(args[0].numel()))
config_cache = model.config.use_cache
model.config.use_cache = False
try:
    greedy_generate(model, long_prompt, 8)
finally:
    hook.remove()
    model.config.use_cache = config_cache
assert sum(fed) == 192 + 7, (
    f"greedy_generate (default use_cache=True), 8 tokens after a 192-token prompt: expected the model to embed "
    f"192 + 7 = 199 token positions (prompt once, then only the newest token), got {sum(fed)} in {len(fed)} calls"
)
# Then the time, as a ratio measured interleaved in one run. On a CPU the recomputed prefix
# costs real arithmetic. On a GPU a 4M-parameter model is launch-bound (each forward is a few
# milliseconds of kernel launches, whatever its length), so there a batch of 64 long prompts
# makes the recomputation show.
speed_prompt = ppl_ids[:448].repeat(64, 1).to(device) if device.type == "cuda" else long_prompt
min_ratio = 1.3
# On a CPU both run on one thread, whatever the kernel's thread count: the ratio then measures
# the work done, not how well threads that wait for each other fare on a busy machine.
threads = torch.get_num_threads()
torch.set_num_threads(1)
try:
    ratio = speedup(lambda: greedy_generate(model, speed_prompt, 6, use_cache=True),
                    lambda: greedy_generate(model, speed_prompt, 6, use_cache=False), repeats=5, warmup=1)
finally:
    torch.set_num_threads(threads)
print(f"6 tokens after {tuple(speed_prompt.shape)}: {6 / ratio.fast.median:.0f} steps/s with the cache, "
      f"{6 / ratio.slow.median:.0f} without ({ratio.ratio:.2f}x)")
# A ratio measured in one run, never an absolute time. The reference measures 2-4x on 2 busy
# CPU cores (2.3-3.7x on one thread at a load average of 16) and 2.4-2.8x on an H100 with 64 prompts of 448 tokens; 1.3x leaves room for noise,
# and a cache that is not used gives about 1x (the count above catches it for certain).
assert ratio.ratio > min_ratio, (
    f"greedy_generate with the cache must be faster than without (expected > {min_ratio}x for 6 new tokens "
    f"after prompts of shape {tuple(speed_prompt.shape)}), got {ratio.ratio:.2f}x "
    f"({ratio.fast.median * 1e3:.0f} ms vs {ratio.slow.median * 1e3:.0f} ms)"
)
### END HIDDEN TESTS
assert True

# %% [markdown]
# Tokens per second, measured with your `benchmark` helper (median of 3 runs after a warm-up),
# for 6 new tokens after a short and a long prompt. Without the cache, each step costs more
# as the sequence grows; with it, the cost per token hardly changes.

# %%
for prompt_len in (16, 128):
    p_ids = ppl_ids[:prompt_len][None].to(device)
    tps = {}
    for use_cache in (True, False):
        timing = benchmark(lambda p_ids=p_ids, use_cache=use_cache: greedy_generate(model, p_ids, 6, use_cache),
                           warmup=1, repeats=3)
        tps[use_cache] = 6 / timing["median"]
    print(f"prompt {prompt_len:3d} tokens: {tps[True]:6.0f} tokens/s with the KV cache, {tps[False]:6.0f} without "
          f"({tps[True] / tps[False]:.1f}x)")

# %% [markdown]
# ## 6. The roofline: why weight quantization speeds up decoding
#
# A kernel needs time for its arithmetic, $\text{FLOPs} / \pi$ (peak FLOP/s $\pi$), and for its
# memory traffic, $\text{bytes} / \beta$ (bandwidth $\beta$); it cannot beat the larger. Its
# **arithmetic intensity** $I = \text{FLOPs}/\text{bytes}$ says which one bounds it: the attainable
# throughput is
#
# $$ P(I) = \min(\pi,\ \beta \cdot I). $$
#
# For a Linear layer (in → out) applied to $n$ tokens: $2\,n\,\text{in}\cdot\text{out}$ FLOPs (a
# multiply and an add per weight per token), and it must read the weight
# ($\text{in}\cdot\text{out}\cdot b/8$ bytes at $b$ bits per weight) and read and write the
# activations ($n\,(\text{in} + \text{out})$ values of `act_bytes` each). **Prefill** processes
# the whole prompt at once ($n$ = hundreds): each weight byte is reused $n$ times, $I$ is large,
# compute-bound. **Decode** processes one token per step ($n = 1$): $I \approx 2 \cdot 8 / b$,
# about 0.5 FLOP/byte in float32 — deep in the memory-bound region, where time is *bytes read*.
# Halve the bytes per weight and decode gets up to twice as fast, whatever the FLOPs.
#
# Write the shapes of a Llama block's Linear layers from its config (`hidden_size`,
# `intermediate_size`, `num_attention_heads`, `num_key_value_heads`, `head_dim`, and
# `num_hidden_layers`; with grouped-query attention, `k_proj` and `v_proj` produce only
# `num_key_value_heads * head_dim` features), then the intensity of all of them together.

# %% answer id=roofline
def linear_shapes(config):
    """(in_features, out_features) of every Linear in the decoder blocks, in the order
    q, k, v, o, gate, up, down, repeated for each of config.num_hidden_layers layers.
    Attention widths come from num_*_heads * head_dim; head_dim need not be
    hidden_size / num_attention_heads (use config.head_dim when it is set)."""
    ### BEGIN SOLUTION
    h, f = config.hidden_size, config.intermediate_size
    head_dim = getattr(config, "head_dim", None) or h // config.num_attention_heads
    q_out, kv_out = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    one = [(h, q_out), (h, kv_out), (h, kv_out), (q_out, h), (h, f), (h, f), (f, h)]
    return one * config.num_hidden_layers
    ### END SOLUTION


def arithmetic_intensity(shapes, n_tokens, weight_bits=32, act_bytes=4):
    """FLOPs per byte of running every Linear in `shapes` on n_tokens tokens:
    sum of 2 * n * in * out over sum of (in * out * weight_bits / 8 + n * (in + out) * act_bytes)."""
    ### BEGIN SOLUTION
    flops = sum(2 * n_tokens * i * o for i, o in shapes)
    moved = sum(i * o * weight_bits / 8 + n_tokens * (i + o) * act_bytes for i, o in shapes)
    return flops / moved
    ### END SOLUTION


def attainable(intensity, peak_flops, bandwidth):
    """Roofline: attainable FLOP/s at a given intensity (FLOP/byte), peak (FLOP/s), bandwidth (byte/s)."""
    ### BEGIN SOLUTION
    return min(peak_flops, bandwidth * intensity)
    ### END SOLUTION

# %% test id=test_roofline_visible points=1
shapes = linear_shapes(model.config)
assert len(shapes) == 7 * model.config.num_hidden_layers, (
    f"linear_shapes: expected 7 Linear layers per block, {7 * model.config.num_hidden_layers} in all; got {len(shapes)}"
)
# One 4 x 4 float32 layer, one token: 32 FLOPs over 64 + 32 bytes.
assert_scalar_close(arithmetic_intensity([(4, 4)], 1), 32 / 96, rtol=1e-12, atol=0, name="arithmetic_intensity([(4, 4)], 1)")

# %% test id=test_roofline_hidden points=2
### BEGIN HIDDEN TESTS
cfg = LlamaConfig(hidden_size=512, intermediate_size=1376, num_attention_heads=8, num_key_value_heads=2,
                  head_dim=64, num_hidden_layers=3)
got_shapes = linear_shapes(cfg)
want_shapes = [(512, 512), (512, 128), (512, 128), (512, 512), (512, 1376), (512, 1376), (1376, 512)] * 3
assert [tuple(s) for s in got_shapes] == want_shapes, f"linear_shapes (GQA, 8 heads, 2 kv heads): expected {want_shapes[:7]} per layer, got {got_shapes[:7]}"
# head_dim is not hidden_size / num_attention_heads (as in Gemma-style configs): 8 heads of 96 = 768 wide.
cfg96 = LlamaConfig(hidden_size=512, intermediate_size=1024, num_attention_heads=8, num_key_value_heads=2,
                    head_dim=96, num_hidden_layers=1)
want96 = [(512, 768), (512, 192), (512, 192), (768, 512), (512, 1024), (512, 1024), (1024, 512)]
got96 = [tuple(s) for s in linear_shapes(cfg96)]
assert got96 == want96, f"linear_shapes (head_dim 96 with hidden_size 512 and 8 heads): expected {want96}, got {got96}"
# The tiny model's own Linear layers, read from the module.
mod_shapes = [(m.in_features, m.out_features) for m in model.model.layers.modules() if isinstance(m, nn.Linear)]
assert sorted(tuple(s) for s in shapes) == sorted(mod_shapes), (
    f"linear_shapes(model.config) must match the model's Linear layers: expected {mod_shapes[:7]} per layer, got {shapes[:7]}"
)
for n, bits, act in [(1, 32, 4), (1, 8, 4), (1, 4, 2), (256, 32, 4), (256, 4, 2), (17, 8, 1)]:
    flops = sum(2 * n * i * o for i, o in want_shapes)
    moved = sum(i * o * bits / 8 + n * (i + o) * act for i, o in want_shapes)
    assert_scalar_close(arithmetic_intensity(want_shapes, n, bits, act), flops / moved, rtol=1e-12, atol=0,
                        name=f"arithmetic_intensity(n_tokens={n}, weight_bits={bits}, act_bytes={act})")
### END HIDDEN TESTS
assert True

# %% test id=test_attainable points=1
assert attainable(0.5, 1e12, 1e11) == 5e10 and attainable(100, 1e12, 1e11) == 1e12, (
    f"attainable(I, peak, bw) = min(peak, bw * I): expected 5e10 at I=0.5 and 1e12 at I=100 for peak 1e12, bw 1e11; "
    f"got {attainable(0.5, 1e12, 1e11)} and {attainable(100, 1e12, 1e11)}"
)
### BEGIN HIDDEN TESTS
for i_, peak, bw in [(0.25, 1e12, 2e11), (3.0, 1e12, 5e11), (1e3, 1e14, 3e12)]:
    assert_scalar_close(attainable(i_, peak, bw), min(peak, bw * i_), rtol=1e-12, atol=0, name=f"attainable({i_}, {peak}, {bw})")
### END HIDDEN TESTS
assert True

# %% [markdown]
# The roofline of two machines (round numbers: a laptop CPU with 0.5 TFLOP/s and 50 GB/s, and an
# H100 GPU with about 990 TFLOP/s dense bf16 and 3.35 TB/s), with the tiny model's prefill
# (256 tokens) and decode (1 token) at 32, 16, 8 and 4 bits per weight (activations in bf16 for
# the narrower formats). Decode sits on the slanted, memory-bound part: fewer bits move it right
# and up. Prefill sits near or under the flat compute roof, where fewer weight bits change little.

# %%
machines = {"laptop CPU (0.5 TFLOP/s, 50 GB/s)": (0.5e12, 50e9), "H100 (990 TFLOP/s, 3.35 TB/s)": (990e12, 3.35e12)}
intensity_grid = np.logspace(-1, 4, 200)
fig, ax = plt.subplots(figsize=(6.5, 4.5))
for label, (peak, bw) in machines.items():
    ax.loglog(intensity_grid, [attainable(i_, peak, bw) for i_ in intensity_grid], label=label)
for n_tok, marker in [(256, "s"), (1, "o")]:
    for bits in (32, 16, 8, 4):
        inten = arithmetic_intensity(shapes, n_tok, bits, 4 if bits == 32 else 2)
        ax.axvline(inten, color="grey", lw=0.5)
        ax.plot(inten, attainable(inten, *machines["H100 (990 TFLOP/s, 3.35 TB/s)"]), marker, color="C3" if n_tok == 1 else "C2")
        ax.annotate(f"{'decode' if n_tok == 1 else 'prefill'} {bits}b", (inten, attainable(inten, 990e12, 3.35e12)),
                    fontsize=7, rotation=60)
ax.set_xlabel("arithmetic intensity (FLOP / byte)")
ax.set_ylabel("attainable FLOP/s")
ax.set_title("roofline: prefill is compute-bound, decode memory-bound")
ax.legend(fontsize=8, loc="lower right")
plt.show()
for bits in (32, 8, 4):
    print(f"{bits:2d}-bit weights: decode intensity {arithmetic_intensity(shapes, 1, bits):6.2f} FLOP/B, "
          f"prefill (256 tokens) {arithmetic_intensity(shapes, 256, bits):7.1f} FLOP/B")

# %% [markdown]
# ## Wrap-up
#
# You built int8 and 4-bit quantizers, a block format with packed nibbles, the LLM.int8()
# decomposition on PyTorch's integer GEMM, a weight-only quantized Llama judged by bytes and
# perplexity, an honest benchmark helper, and a roofline. What production systems do differently:
#
# - **Fused kernels.** Our `QuantLinear` dequantizes the whole weight in float32 before every
#   product, so it saves memory but not time. Real kernels (llama.cpp's `ggml` dot products,
#   Marlin, ExLlama, `torchao`'s int4 kernels, `torch._weight_int8pack_mm`) load packed codes and
#   scales into registers, dequantize there and multiply at once: the weight crosses the memory
#   bus in 4 or 8 bits, which is where decode's speed-up comes from.
# - **Smarter 4-bit formats.** k-quants (`Q4_K`) put blocks into super-blocks with quantized
#   scales and minimums (about 4.5 bits); NF4 (QLoRA) places its 16 levels at the quantiles of a
#   normal distribution; GPTQ and AWQ choose the rounding (or rescale channels) using calibration
#   activations so that the *layer output*, not the weight, stays close — that is how 3–4 bit
#   models keep their quality at 7B+ parameters.
# - **Activations too.** W8A8 (SmoothQuant moves activation outliers into the weights), FP8 on
#   H100s, and KV-cache quantization reduce traffic during prefill and for long contexts; LLM.int8()
#   itself is accurate but often *slower* than fp16 because of the extra decomposition.
# - **Benchmarks.** Serving systems report time-to-first-token (prefill) and inter-token latency
#   (decode) at p50/p90/p99 under a given request rate, not one average; GPU timings use CUDA
#   events or a synchronised clock after warm-up, as your helper does.
#
# Next: read llama.cpp's `ggml-quants.c` (`quantize_row_q4_0_ref`) or `bitsandbytes`' LLM.int8()
# layer and recognise the block scale, the nibble layout and the outlier threshold.
