# %% [markdown]
# # Unit 05 — Efficient training: number formats, loss scaling, autocast, memory and checkpointing
#
# A 7B-parameter model does not fit, for training, on one 80 GB accelerator in plain float32,
# and it trains several times slower than it could. Four ideas make large models trainable
# at all, and an LLM engineer is expected to reason about each of them in numbers:
#
# 1. **Number formats.** fp32, fp16, bf16 and the fp8 formats differ in how many bits go to
#    the exponent (range) and to the mantissa (precision); you derive every constant of
#    `torch.finfo` from the bit counts, and predict exactly when a running sum stops growing.
# 2. **Loss scaling.** fp16 gradients underflow to zero; a dynamic loss scaler multiplies
#    the loss before backward and divides the gradients after, skipping steps that overflow.
#    You build one and hold it, step for step, against `torch.amp.GradScaler`.
# 3. **Autocast.** bf16 mixed precision keeps fp32 master weights and runs the matrix
#    products in bf16; you trace which operators really ran in which format.
# 4. **Where the memory goes.** Weights, gradients, optimizer states (the famous 16 bytes
#    per parameter) and activations, with an activation formula checked byte for byte
#    against measured peaks.
# 5. **Activation checkpointing.** Recompute each layer in backward instead of storing it:
#    measured memory saved, FLOPs paid, gradients unchanged.
# 6. **Putting it together.** The largest Llama and batch that fit a memory budget under
#    each combination of these techniques.
#
# ## Learning objectives
#
# After this unit you can
# - derive the machine epsilon, largest finite value and smallest normal and subnormal
#   numbers of any binary floating-point format from its exponent and mantissa bits, and
#   say why bf16 trades precision for fp32's range;
# - predict where a low-precision accumulator stalls, and why matrix units accumulate in fp32;
# - implement dynamic loss scaling exactly as `torch.amp.GradScaler` documents it (growth
#   interval, back-off, skipped steps, unscaling before gradient clipping) and count the
#   gradients fp16 would lose without it;
# - train with `torch.autocast` and fp32 master weights, and list which operators ran in
#   bf16 and which stayed in fp32;
# - account for the memory of training: parameters, gradients, optimizer states and
#   activations, from a config alone, and check the activation formula against a measurement;
# - trade compute for memory with activation checkpointing and count what it costs.
#
# ## Prerequisites
#
# Unit 02 (the Llama decoder layer: projections, RoPE, grouped-query attention, the MLP) and
# unit 04 (a training loop with AdamW on the bundled tiny Llama). PyTorch autograd
# (`backward`, `.grad`), `torch.optim`, context managers. Binary numbers (what $2^{-10}$ is).
#
# ## Time, device, skills
#
# - **Time:** about 4 to 5 hours (the estimate of the reviewers who worked through it): eleven
#   answer cells.
# - **Device:** CPU by default: the whole notebook runs in about a minute on 2 idle cores
#   (two or three minutes on a busy shared machine). If a CUDA GPU is present, `device` below
#   becomes `"cuda"` and the training runs of section 3 use it; the byte and FLOP counts of
#   sections 4 and 5 are measured on the CPU on purpose, because they describe torch's CPU
#   kernels exactly (a GPU's attention kernels save slightly different tensors).
# - **Skills practised** (see the course skill map): *Training and fine-tuning* (mixed
#   precision fp16/bf16, loss scaling, gradient clipping, memory planning, activation
#   checkpointing); *Foundations* (floating-point arithmetic, *Optimisation*: AdamW's
#   state); *The transformer* (what a decoder layer stores for backward);
#   *Engineering habits* (profiling memory and FLOPs, reading library source, testing
#   against a reference library).
#
# Run the cell below first. It fixes seeds and threads and silences library warnings (the
# grader scores any test cell that writes to stderr as 0).

# %% setup id=setup
import functools
import math

import torch
import torch.nn as nn
from graders.notebook import setup

setup()

import matplotlib.pyplot as plt
from graders.notebook import assert_close, load_model, model_source, peak_memory_torch, validation_ids
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
base_config = load_model().config
token_ids = validation_ids(2048)
print(f"torch {torch.__version__}, running on {device}; model: {model_source()}")
print(f"hidden {base_config.hidden_size}, {base_config.num_hidden_layers} layers, "
      f"{base_config.num_attention_heads} query heads / {base_config.num_key_value_heads} kv heads of "
      f"{base_config.head_dim}, MLP {base_config.intermediate_size}, vocabulary {base_config.vocab_size}")

# %% [markdown]
# ## 1. Number formats
#
# A binary floating-point number is stored as a sign bit $s$, an exponent field $E$ of $e$
# bits and a fraction (mantissa) field $F$ of $m$ bits. With the **bias** $b = 2^{e-1}-1$:
#
# | exponent field | value | name |
# |---|---|---|
# | $1 \le E \le 2^e - 2$ | $(-1)^s\, 2^{E-b}\,(1 + F/2^m)$ | normal |
# | $E = 0$ | $(-1)^s\, 2^{1-b}\,(F/2^m)$ | subnormal (and zero) |
# | $E = 2^e - 1$ | $\pm\infty$ if $F = 0$, else NaN | IEEE 754 |
#
# From this table follow the constants `torch.finfo` reports:
# - **machine epsilon**, the gap between 1 and the next larger number: $2^{-m}$ (rounding to
#   nearest makes a relative error of at most half of it);
# - **largest finite**: the largest normal exponent with an all-ones fraction,
#   $(2 - 2^{-m})\, 2^{2^e-2-b}$;
# - **smallest normal** $2^{1-b}$ (`finfo.smallest_normal`, also called `tiny`) and
#   **smallest subnormal** $2^{1-b-m}$: below the smallest normal, numbers lose precision
#   gradually, and below half the smallest subnormal they round to zero (*underflow*).
#
# The formats of training:
#
# | format | $e$ | $m$ | what it is for |
# |---|---|---|---|
# | fp32 | 8 | 23 | master weights, optimizer states, accumulation |
# | fp16 | 5 | 10 | precise, but a narrow range: needs loss scaling |
# | bf16 | 8 | 7 | fp32's range with 2-3 significant digits: no loss scaling |
# | fp8 e4m3 | 4 | 3 | forward activations and weights in fp8 training |
# | fp8 e5m2 | 5 | 2 | gradients in fp8 training (more range, less precision) |
#
# The fp8 format e4m3 is not IEEE: to buy range it gives up infinities, and the all-ones
# exponent holds ordinary numbers, except the single all-ones fraction that means NaN. torch
# calls it `float8_e4m3fn` ("fn": finite, NaN only). e5m2 follows the IEEE rules.
#
# Write `format_bits` (the exponent and mantissa bits of each torch dtype) and `float_format`,
# which derives the constants from the bit counts. `finite_only=True` describes the "fn" layout.

# %% answer id=formats
def format_bits():
    """The bits of the five formats of the table: a dict from each of torch.float32,
    torch.float16, torch.bfloat16, torch.float8_e4m3fn and torch.float8_e5m2 to its
    (exponent bits e, mantissa bits m), a pair of ints."""
    ### BEGIN SOLUTION
    return {
        torch.float32: (8, 23),
        torch.float16: (5, 10),
        torch.bfloat16: (8, 7),
        torch.float8_e4m3fn: (4, 3),
        torch.float8_e5m2: (5, 2),
    }
    ### END SOLUTION

def float_format(exp_bits, man_bits, finite_only=False):
    """The constants of a binary floating-point format with exp_bits exponent bits, man_bits
    mantissa (fraction) bits and a sign bit, as Python numbers:
    {"bias": int, "eps": float, "max": float, "smallest_normal": float, "smallest_subnormal": float}.
    finite_only=False: IEEE 754 (the all-ones exponent holds inf and NaN).
    finite_only=True: the "fn" layout of float8_e4m3fn (no inf; the all-ones exponent holds
    numbers, except an all-ones fraction there, which is NaN)."""
    ### BEGIN SOLUTION
    bias = 2 ** (exp_bits - 1) - 1
    top = 2 ** exp_bits - 2 - bias  # exponent of the largest finite numbers
    largest_fraction = 2.0 - 2.0 ** -man_bits
    if finite_only:
        top += 1  # the all-ones exponent holds numbers too...
        largest_fraction = 2.0 - 2.0 ** (1 - man_bits)  # ...but its all-ones fraction is NaN
    return {
        "bias": bias,
        "eps": 2.0 ** -man_bits,
        "max": largest_fraction * 2.0 ** top,
        "smallest_normal": 2.0 ** (1 - bias),
        "smallest_subnormal": 2.0 ** (1 - bias - man_bits),
    }
    ### END SOLUTION

# %% test id=test_formats_visible points=1
FORMAT_BITS = format_bits()
assert set(FORMAT_BITS) == {torch.float32, torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2}, (
    f"format_bits(): expected the five dtypes of the table as keys, got {sorted(map(str, FORMAT_BITS))}")
fp16 = float_format(*FORMAT_BITS[torch.float16])
fi16 = torch.finfo(torch.float16)
for key, want in [("eps", fi16.eps), ("max", fi16.max), ("smallest_normal", fi16.smallest_normal)]:
    assert fp16[key] == want, f"float_format(5, 10)[{key!r}] (fp16): torch.finfo says {want}, got {fp16[key]}"
assert fp16["bias"] == 15, f"float_format(5, 10)['bias']: expected 2**4 - 1 = 15, got {fp16['bias']}"
assert fp16["smallest_subnormal"] == 2.0**-24, f"fp16 smallest subnormal: expected 2**-24, got {fp16['smallest_subnormal']}"

# %% test id=test_formats_hidden points=2
### BEGIN HIDDEN TESTS
def _decode_all(e, m, finite_only):
    """Every non-negative value of the format, decoded bit pattern by bit pattern."""
    b = 2 ** (e - 1) - 1
    values = []
    for E in range(2**e):
        for F in range(2**m):
            if E == 2**e - 1 and (not finite_only or F == 2**m - 1):
                continue  # inf / NaN
            values.append(F * 2.0 ** (1 - b - m) if E == 0 else (2**m + F) * 2.0 ** (E - b - m))
    return sorted(values), b


for dtype, bits in format_bits().items():
    fi = torch.finfo(dtype)
    assert 1 + sum(bits) == fi.bits, f"format_bits()[{dtype}] = {bits}: 1 + e + m must be the {fi.bits} bits of the dtype"
    got = float_format(*bits, finite_only=dtype is torch.float8_e4m3fn)
    for key, want in [("eps", fi.eps), ("max", fi.max), ("smallest_normal", fi.smallest_normal)]:
        assert got[key] == want, f"float_format{bits} ({dtype})[{key!r}]: torch.finfo says {want}, got {got[key]}"
    sub = got["smallest_subnormal"]
    # The smallest subnormal survives a round trip through the dtype; half of it rounds
    # (ties to even) to zero, three quarters of it back up to it.
    back = torch.tensor([sub, 0.5 * sub, 0.75 * sub], dtype=torch.float64).to(dtype).double().tolist()
    assert back == [sub, 0.0, sub], (
        f"float_format{bits} ({dtype}) smallest_subnormal = {sub!r}: converting [s, s/2, 3s/4] to {dtype} "
        f"should give [s, 0, s], got {back}")
# Formats that torch does not have: every bit pattern decoded.
for e, m, fn in [(2, 1, False), (3, 2, False), (3, 2, True), (4, 3, False), (5, 3, True), (6, 4, False)]:
    values, b = _decode_all(e, m, fn)
    got = float_format(e, m, finite_only=fn)
    above_one = values[values.index(1.0) + 1]
    want = {"bias": b, "eps": above_one - 1.0, "max": values[-1],
            "smallest_normal": 2.0 ** (1 - b), "smallest_subnormal": values[1]}
    assert got == want, f"float_format({e}, {m}, finite_only={fn}): decoding every bit pattern gives {want}, got {got}"
### END HIDDEN TESTS
assert True

# %% [markdown]
# bf16 keeps fp32's exponent (the same range, the same smallest normal) and drops 16 bits of
# mantissa; fp16 keeps 3 more mantissa bits than bf16 but tops out at 65,504. With the implicit
# leading bit a format holds $m + 1$ significant bits, $(m + 1)\log_{10} 2$ decimal digits: bf16
# about 2.4 (8 bits: the gap after 1 is $2^{-7} \approx 0.0078$, and `torch.tensor(1.01,
# dtype=torch.bfloat16)` is 1.0078125), fp16 about 3.3 (11 bits), fp32 about 7.2 (24 bits).

# %%
print(f"{'format':>14} | {'e':>2} | {'m':>2} | {'eps':>10} | {'max':>10} | {'smallest normal':>15} | {'smallest subnormal':>18}")
for dtype, (e, m) in format_bits().items():
    f = float_format(e, m, finite_only=dtype is torch.float8_e4m3fn)
    print(f"{str(dtype).replace('torch.', ''):>14} | {e:>2} | {m:>2} | {f['eps']:>10.3g} | {f['max']:>10.4g} | "
          f"{f['smallest_normal']:>15.4g} | {f['smallest_subnormal']:>18.4g}")

# %% [markdown]
# ### Accumulation: when does a running sum stop growing?
#
# Adding a small number $x$ to a large accumulator $s$ rounds the exact sum to the nearest
# number of the format. In the binade $[2^p, 2^{p+1})$ the numbers are $u = 2^{p-m}$ apart
# (one *ulp*); if $x < u/2$, then $s + x$ rounds back to $s$ and the sum never moves again.
# A tie ($x = u/2$) rounds to the neighbour with an even last bit, and $2^p$ itself is even.
# Starting from zero, the running sum of a positive $x$ therefore climbs until it reaches
# the first power of two $2^p$ with $x \le 2^{p-m-1}$, and stays there:
#
# $$ s_\text{stall} = 2^{\lceil \log_2 x \rceil + m + 1}. $$
#
# (Just below it the sum moves in whole ulps, so it lands exactly on $2^p$.) For $x = 10^{-3}$:
# fp16 stalls at $2^{-9+11} = 4$, bf16 at $2^{-9+8} = 0.5$, fp32 at 32,768. Summing 10,000
# of them should give 10. This is why every matrix unit (tensor cores, AMX) takes fp16, bf16
# or fp8 inputs but **accumulates in fp32**, and why optimizers keep fp32 master weights: a
# learning-rate-sized update of a bf16 weight is often below half an ulp and simply lost.
#
# Write `running_sum`, which adds the rows of a matrix one at a time into an accumulator of a
# given dtype, rounding after every addition (vectorised over the columns, so one call runs
# many experiments), and `stall_value`, the formula above. Use `math.frexp` to take an exact
# $\lceil\log_2 x\rceil$: floating-point `math.log2` can land a hair off an integer.

# %% answer id=accumulate
def running_sum(values, acc_dtype):
    """values: tensor of shape (n, k) (any floating dtype). Adds its n rows one at a time into an
    accumulator of dtype acc_dtype and shape (k,) that starts at zero: acc = acc + row.to(acc_dtype),
    each addition rounded to acc_dtype. Returns a float64 tensor of shape (n + 1, k) on values'
    device: the accumulator after 0, 1, ..., n rows. `values` is not modified."""
    ### BEGIN SOLUTION
    acc = torch.zeros(values.shape[1], dtype=acc_dtype, device=values.device)
    history = [acc.double()]
    for row in values:
        acc = acc + row.to(acc_dtype)
        history.append(acc.double())
    return torch.stack(history)
    ### END SOLUTION


def stall_value(x, man_bits):
    """The value at which a running sum of the positive number x (x itself representable in the
    format) stops growing in a format with man_bits mantissa bits and round-to-nearest-even:
    2 ** (ceil(log2(x)) + man_bits + 1), as a float. Assume the format's range is wide enough."""
    ### BEGIN SOLUTION
    frac, exp = math.frexp(x)  # x = frac * 2**exp with 0.5 <= frac < 1
    ceil_log2 = exp - 1 if frac == 0.5 else exp
    return 2.0 ** (ceil_log2 + man_bits + 1)
    ### END SOLUTION

# %% test id=test_accumulate_visible points=1
demo = running_sum(torch.full((3, 2), 0.5), torch.float16)
assert demo.shape == (4, 2) and demo.dtype == torch.float64, (
    f"running_sum of a (3, 2) tensor: expected a float64 tensor of shape (4, 2), got {demo.dtype} {tuple(demo.shape)}")
assert demo[:, 0].tolist() == [0.0, 0.5, 1.0, 1.5], f"running_sum of three 0.5s: expected [0, 0.5, 1, 1.5], got {demo[:, 0].tolist()}"
# 2**-10 in fp16 (m = 10): exact until the sum reaches 2**(-10 + 11) = 2, then stuck.
stuck = running_sum(torch.full((2100, 1), 2.0**-10), torch.float16)[:, 0]
assert stuck[1024].item() == 1.0 and stuck[-1].item() == 2.0, (
    f"fp16 running sum of 2**-10: expected 1.0 after 1024 steps and 2.0 (stalled) after 2100, "
    f"got {stuck[1024].item()} and {stuck[-1].item()}")
assert stall_value(2.0**-10, 10) == 2.0, f"stall_value(2**-10, 10): expected 2.0, got {stall_value(2.0**-10, 10)}"
assert stall_value(1e-3, 10) == 4.0, f"stall_value(1e-3, 10): expected 2**(-9 + 11) = 4.0, got {stall_value(1e-3, 10)}"

# %% test id=test_accumulate_hidden points=2
### BEGIN HIDDEN TESTS
def _oracle_running_sum(values, acc_dtype):
    # Two numbers of these formats add exactly in float64; one rounding to acc_dtype then
    # gives the correctly rounded sum, which is what torch's elementwise add computes.
    acc = torch.zeros(values.shape[1], dtype=torch.float64)
    out = [acc.clone()]
    for row in values.double().to(acc_dtype).double():
        acc = (acc + row).to(acc_dtype).double()
        out.append(acc)
    return torch.stack(out)


torch.manual_seed(20)
for acc_dtype, in_dtype in [(torch.float16, torch.float16), (torch.bfloat16, torch.float32), (torch.float32, torch.bfloat16),
                            (torch.float16, torch.float64), (torch.float64, torch.float32)]:
    # float64 too: there acc.double() is acc itself, so an accumulator updated in place (acc +=)
    # would make every history row the same tensor.
    vals = (torch.rand(300, 5, dtype=torch.float64) * torch.logspace(-4, 1, 5, dtype=torch.float64)).to(in_dtype)
    vals[::7, 2] *= -1
    before = vals.clone()
    got = running_sum(vals, acc_dtype)
    assert got.dtype == torch.float64 and got.shape == (301, 5), (
        f"running_sum((300, 5) {in_dtype}, {acc_dtype}): expected float64 (301, 5), got {got.dtype} {tuple(got.shape)}")
    assert torch.equal(vals, before), "running_sum must not modify its input"
    want = _oracle_running_sum(vals, acc_dtype)
    assert torch.equal(got, want), (
        f"running_sum with a {acc_dtype} accumulator and {in_dtype} values: expected every partial sum rounded to "
        f"{acc_dtype}; first difference at row {int((got != want).any(1).nonzero()[0])}: got "
        f"{got[(got != want).any(1)][0].tolist()}, expected {want[(got != want).any(1)][0].tolist()}")
# The accumulator lives on the values' device (the meta device checks it without memory).
on_meta = running_sum(torch.zeros(5, 3, dtype=torch.float16, device="meta"), torch.bfloat16)
assert on_meta.device.type == "meta" and on_meta.shape == (6, 3) and on_meta.dtype == torch.float64, (
    f"running_sum of a (5, 3) tensor on the meta device: expected a float64 (6, 3) tensor on 'meta', got "
    f"{on_meta.dtype} {tuple(on_meta.shape)} on {on_meta.device}")
# The stall, predicted and measured, for powers of two and other values, in fp16 and bf16.
xs = [2.0**-10, 2.0**-7, 3e-4, 1e-3, 0.0123, 2.0**-4, 0.3]
for dtype, m in [(torch.float16, 10), (torch.bfloat16, 7)]:
    xs_q = torch.tensor(xs).to(dtype)  # the values as the format holds them
    n = 2 ** (m + 3)
    measured = running_sum(xs_q.expand(n, -1), dtype)[-1]
    for x, got_sum in zip(xs_q.double().tolist(), measured.tolist(), strict=True):
        predicted = stall_value(x, m)
        assert predicted == got_sum, (
            f"stall_value({x!r}, {m}): the {dtype} running sum of {n} copies stops at {got_sum}, predicted {predicted}")
for x, m, want in [(1.0, 23, 2.0**24), (0.75, 0, 2.0), (2.0**-30, 7, 2.0**-22), (5.0, 2, 64.0), (2.0**20 + 1, 10, 2.0**32)]:
    assert stall_value(x, m) == want, f"stall_value({x!r}, {m}): expected {want}, got {stall_value(x, m)}"
# The error of a long sum, predicted from the stall: 10,000 copies of 2**-10 (true sum 9.765625).
for dtype, m in [(torch.float16, 10), (torch.bfloat16, 7)]:
    final = running_sum(torch.full((10000, 1), 2.0**-10), dtype)[-1, 0].item()
    assert final == min(10000 * 2.0**-10, stall_value(2.0**-10, m)), (
        f"sum of 10,000 x 2**-10 in {dtype}: predicted {min(10000 * 2.0**-10, stall_value(2.0**-10, m))}, measured {final}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# The experiment: add $x = 10^{-3}$ ten thousand times (the true sum is 10) with fp16, bf16 and
# fp32 accumulators, and with bf16 *inputs* in an fp32 accumulator (what a matrix unit does).
# The dotted lines are the stall values you predicted.

# %%
n_add = 10_000
fig, ax = plt.subplots(figsize=(6.5, 4))
final_sums = {}
for label, in_dtype, acc_dtype, m in [("fp16 accumulator", torch.float16, torch.float16, 10),
                                      ("bf16 accumulator", torch.bfloat16, torch.bfloat16, 7),
                                      ("fp32 accumulator", torch.float32, torch.float32, 23),
                                      ("bf16 inputs, fp32 accumulator", torch.bfloat16, torch.float32, None)]:
    sums = running_sum(torch.full((n_add, 1), 1e-3).to(in_dtype), acc_dtype)[:, 0]
    final_sums[label] = sums[-1].item()
    line, = ax.plot(sums.numpy(), label=f"{label}: {sums[-1].item():.4f}")
    if m is not None and m < 20:
        ax.axhline(stall_value(torch.tensor(1e-3).to(in_dtype).item(), m), color=line.get_color(), linestyle=":")
ax.plot([0, n_add], [0, n_add * 1e-3], "k--", linewidth=0.8, label="exact")
ax.set_xlabel("number of additions of 0.001")
ax.set_ylabel("running sum")
ax.set_title("a running sum stalls where x < ulp(sum) / 2")
ax.legend(fontsize=8)
plt.show()
for label, value in final_sums.items():
    print(f"{label:>31}: {value:.6f} (relative error {abs(value - 10) / 10:.2e})")
print(f"torch.sum of the bf16 values (fp32 accumulation inside the kernel): "
      f"{torch.full((n_add,), 1e-3).to(torch.bfloat16).sum().item()}")

# %% [markdown]
# Notice that bf16, the format that "needs no loss scaling", is the *worst* accumulator: it
# keeps only 8 significant bits. The fp32 accumulator with bf16 inputs is off only because
# $10^{-3}$ itself rounds to 0.000999451 in bf16. `torch.sum` of a bf16 tensor accumulates in
# fp32 internally and rounds once at the end.
#
# ## 2. Loss scaling for fp16
#
# fp16's smallest subnormal is $2^{-24} \approx 6\times10^{-8}$ and its smallest normal
# $2^{-14} \approx 6\times10^{-5}$. Gradients of a language model are often far smaller: a loss
# that is a *mean* over thousands of tokens has tiny per-weight gradients. In fp16 they
# underflow to zero, or keep only a few bits as subnormals. **Loss scaling** (Micikevicius et
# al., 2018) multiplies the loss by a factor $S$ before backward, so that every gradient is
# $S$ times larger (backward is linear), and divides the gradients by $S$ before the optimizer
# step, in fp32. Too large an $S$ overflows to inf; the right $S$ changes during training.
#
# **Dynamic** loss scaling, as `torch.amp.GradScaler` documents it:
# - `scale(loss)` returns `loss * S`;
# - `unscale_(optimizer)` divides the gradients of the optimizer's parameters by $S$ in place
#   and records whether any of them is inf or NaN; it may be called once per step, before
#   gradient clipping, so that clipping sees the true gradients;
# - `step(optimizer)` unscales first if `unscale_` was not called, then calls
#   `optimizer.step()` only if no inf/NaN was found (the step is *skipped* otherwise);
# - `update()`: after an overflow, $S \leftarrow S \times$ `backoff_factor` (0.5) and the count
#   of good steps restarts; otherwise the count grows, and after `growth_interval` (2000)
#   consecutive good steps $S \leftarrow S \times$ `growth_factor` (2) and the count restarts.
#   GradScaler keeps $S$ as a float32 number and skips a growth that would overflow float32.
#
# Write `DynamicLossScaler` with GradScaler's defaults (initial scale $2^{16}$). Divide the
# gradients by multiplying them with the reciprocal $1/S$ (what GradScaler does).

# %% answer id=scaler
class DynamicLossScaler:
    """Dynamic loss scaling with torch.amp.GradScaler's behaviour and defaults.

    scale(loss) -> loss * current scale (a tensor that backpropagates).
    unscale_(optimizer): multiply, in place, every non-None .grad of the optimizer's parameters by
        1 / scale; remember whether any gradient is inf or NaN. Calling it twice before update()
        raises RuntimeError.
    step(optimizer) -> bool: unscale_ first if it was not called in this step; then call
        optimizer.step() and return True, or, if an inf/NaN was found, skip the step and return False.
    update(): back off (scale *= backoff_factor, count of good steps reset) after an inf/NaN;
        otherwise count the good step, and when the count reaches growth_interval, scale *=
        growth_factor (unless the result overflows float32) and reset the count. Ends the step.
    get_scale() -> the current scale as a Python float.
    """

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        ### BEGIN SOLUTION
        self._scale = float(init_scale)
        self.growth_factor, self.backoff_factor = growth_factor, backoff_factor
        self.growth_interval = growth_interval
        self._good_steps = 0
        self._found_inf = None  # None until unscale_ ran in the current step
        ### END SOLUTION

    def get_scale(self):
        ### BEGIN SOLUTION
        return self._scale
        ### END SOLUTION

    def scale(self, loss):
        ### BEGIN SOLUTION
        return loss * self._scale
        ### END SOLUTION

    def unscale_(self, optimizer):
        ### BEGIN SOLUTION
        if self._found_inf is not None:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update()")
        inv_scale = 1.0 / self._scale
        found_inf = False
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.mul_(inv_scale)
                        found_inf = found_inf or not bool(torch.isfinite(p.grad).all())
        self._found_inf = found_inf
        ### END SOLUTION

    def step(self, optimizer):
        ### BEGIN SOLUTION
        if self._found_inf is None:
            self.unscale_(optimizer)
        if self._found_inf:
            return False
        optimizer.step()
        return True
        ### END SOLUTION

    def update(self):
        ### BEGIN SOLUTION
        if self._found_inf:
            self._scale *= self.backoff_factor
            self._good_steps = 0
        else:
            self._good_steps += 1
            if self._good_steps == self.growth_interval:
                grown = self._scale * self.growth_factor
                if grown <= torch.finfo(torch.float32).max:  # GradScaler's scale is a float32 tensor
                    self._scale = grown
                self._good_steps = 0
        self._found_inf = None
        ### END SOLUTION

# %% test id=test_scaler_visible points=1
def _scripted_run(scaler, overflow_at, steps=8, seed=21):
    """SGD on a small linear model; the loss is multiplied by inf at the steps in overflow_at.
    Returns (scale after each update, whether each step changed the weights, final weights)."""
    torch.manual_seed(seed)
    lin = nn.Linear(4, 3)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    x = torch.randn(5, 4)
    scales, stepped = [], []
    for i in range(steps):
        loss = lin(x).pow(2).mean() * (math.inf if i in overflow_at else 1.0)
        scaler.scale(loss).backward()
        before = lin.weight.detach().clone()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        stepped.append(not torch.equal(before, lin.weight))
        opt.zero_grad()
    return scales, stepped, [p.detach().clone() for p in lin.parameters()]


mine = _scripted_run(DynamicLossScaler(init_scale=8.0, growth_interval=2), overflow_at={2, 5})
assert mine[0] == [8.0, 16.0, 8.0, 8.0, 16.0, 8.0, 8.0, 16.0], (
    f"scale after each step (start 8, growth every 2 good steps, overflows at steps 2 and 5): expected "
    f"[8, 16, 8, 8, 16, 8, 8, 16], got {mine[0]}")
assert mine[1] == [True, True, False, True, True, False, True, True], (
    f"which steps updated the weights (the overflowing steps 2 and 5 must be skipped): got {mine[1]}")
theirs = _scripted_run(torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=2), overflow_at={2, 5})
# The same SGD steps on the same unscaled gradients: bit for bit the same weights.
diff = max(float((p - q).abs().max()) for p, q in zip(mine[2], theirs[2], strict=True))
assert diff == 0.0, f"weights after 8 steps with your scaler vs torch.amp.GradScaler: expected identical, max difference {diff}"

# %% test id=test_scaler_hidden points=3
### BEGIN HIDDEN TESTS
for init, interval, growth, backoff, overflows, steps in [(2.0**16, 3, 2.0, 0.5, {0, 1, 5, 6, 7, 12}, 16),
                                                          (1024.0, 1, 4.0, 0.25, {3}, 7),
                                                          (2.0**10, 4, 2.0, 0.5, set(), 13)]:
    kw = dict(init_scale=init, growth_factor=growth, backoff_factor=backoff, growth_interval=interval)
    got = _scripted_run(DynamicLossScaler(**kw), overflows, steps=steps)
    want = _scripted_run(torch.amp.GradScaler("cpu", **kw), overflows, steps=steps)
    assert got[0] == want[0], f"scale history with {kw}, overflows at {sorted(overflows)}: GradScaler gives {want[0]}, got {got[0]}"
    assert got[1] == want[1], f"steps taken with {kw}, overflows at {sorted(overflows)}: GradScaler {want[1]}, got {got[1]}"
    for p, q in zip(got[2], want[2], strict=True):
        assert_close(p, q, rtol=1e-6, atol=0, name=f"final weights with {kw} vs GradScaler")
# Defaults are GradScaler's.
d = DynamicLossScaler()
assert d.get_scale() == 65536.0 and isinstance(d.get_scale(), float), f"default scale: expected 65536.0 (float), got {d.get_scale()!r}"
# ...and so is the growth interval: after an overflow, the scale grows back on the 2000th good step.
default_runs = {}
for make in (DynamicLossScaler, lambda: torch.amp.GradScaler("cpu")):
    sc_default = make()
    p_default = nn.Parameter(torch.zeros(2))
    opt_default = torch.optim.SGD([p_default], lr=0.1)
    history = []
    for i in range(2002):
        sc_default.scale(torch.tensor(1.0))
        p_default.grad = torch.full((2,), math.inf if i == 0 else 0.0)
        sc_default.step(opt_default)
        sc_default.update()
        history.append(sc_default.get_scale())
    default_runs[type(sc_default).__name__] = [history[0], history[1999], history[2000], history[2001]]
assert default_runs["DynamicLossScaler"] == default_runs["GradScaler"], (
    f"default settings, an overflow then 2001 good steps: scale after steps 0, 1999, 2000, 2001 from GradScaler "
    f"{default_runs['GradScaler']}, from yours {default_runs['DynamicLossScaler']}")
got_int = DynamicLossScaler(init_scale=1024).get_scale()
assert got_int == 1024.0 and isinstance(got_int, float), (
    f"DynamicLossScaler(init_scale=1024).get_scale(): expected the Python float 1024.0 (as GradScaler), got {got_int!r}")
# A growth that would overflow float32 is skipped, as GradScaler does; one that lands exactly on
# float32's largest value is taken.
f32_max = torch.finfo(torch.float32).max
for make in (DynamicLossScaler, lambda **kw: torch.amp.GradScaler("cpu", **kw)):
    edge = make(init_scale=f32_max / 2, growth_interval=1)
    edge.scale(torch.tensor(1.0))
    edge_param = nn.Parameter(torch.zeros(3))
    edge_param.grad = torch.zeros(3)
    edge.step(torch.optim.SGD([edge_param], lr=0.1))
    edge.update()
    assert edge.get_scale() == f32_max, (
        f"{type(edge).__name__} from float32 max / 2, growing by 2: expected float32's largest value {f32_max!r} "
        f"(finite, so the growth is taken), got {edge.get_scale()!r}")
    huge = make(init_scale=2.0**126, growth_interval=1)
    zero_param = nn.Parameter(torch.zeros(3))
    zero_opt = torch.optim.SGD([zero_param], lr=0.1)
    history = []
    for _ in range(3):
        huge.scale(torch.tensor(1.0))  # GradScaler creates its scale tensor on the first scale() call
        zero_param.grad = torch.zeros(3)
        huge.step(zero_opt)
        huge.update()
        history.append(huge.get_scale())
    assert history == [2.0**127, 2.0**127, 2.0**127], (
        f"{type(huge).__name__} from 2**126, growing after every good step: expected [2**127] * 3 (2**128 overflows "
        f"float32, so the growth is skipped), got {history}")
# NaN counts as an overflow; a parameter without a gradient is fine; step() unscales by itself.
torch.manual_seed(22)
lin = nn.Linear(3, 2)
extra = nn.Parameter(torch.ones(2))  # never receives a gradient
opt = torch.optim.SGD([*lin.parameters(), extra], lr=0.1)
sc = DynamicLossScaler(init_scale=4.0)
scaled = sc.scale(lin(torch.randn(4, 3)).sum())
assert scaled.requires_grad, "scale(loss) must return a tensor that backpropagates"
scaled.backward()
g_scaled = lin.weight.grad.clone()
w0 = lin.weight.detach().clone()
assert sc.step(opt) is True, "step() on finite gradients must return True"
assert_close(lin.weight.grad, g_scaled / 4.0, rtol=0, atol=0, name="gradients after step() without unscale_() (step must unscale)")
assert_close(lin.weight, w0 - 0.1 * g_scaled / 4.0, rtol=1e-6, atol=1e-7, name="weights after one unscaled SGD step")
sc.update()
opt.zero_grad()
(sc.scale(lin(torch.randn(4, 3)).sum()) * math.nan).backward()
w1 = lin.weight.detach().clone()
assert sc.step(opt) is False and torch.equal(w1, lin.weight), "a NaN gradient must skip the step (step returns False)"
sc.update()
assert sc.get_scale() == 2.0, f"after a NaN step the scale must back off from 4 to 2, got {sc.get_scale()}"
opt.zero_grad()
sc.scale(lin(torch.randn(4, 3)).sum()).backward()
sc.unscale_(opt)
try:
    sc.unscale_(opt)
except RuntimeError:
    pass
else:
    raise AssertionError("calling unscale_() twice before update() must raise RuntimeError (it would unscale twice)")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### One fp16 training step, in the right order
#
# Put the pieces in the order that makes clipping and the optimizer see true gradients:
# `scale(loss).backward()`, `unscale_`, clip the gradient norm
# (`torch.nn.utils.clip_grad_norm_`), `step`, `update`, and zero the gradients for the next
# step. Clipping before unscaling would clip $S$ times the gradient, i.e. almost always, by
# the wrong amount. The same function must work with `torch.amp.GradScaler` (it has the same
# methods).

# %% answer id=scaled_step
def scaled_step(loss, model, optimizer, scaler, max_norm):
    """One optimizer step with loss scaling and gradient clipping: backward of the scaled loss,
    unscale, clip the total norm of model's gradients to max_norm, step (skipped by the scaler on
    inf/NaN), update the scale, zero the gradients (set_to_none=True).
    Returns the total gradient norm before clipping, of the *unscaled* gradients, as a float
    (inf or NaN when the step overflowed)."""
    ### BEGIN SOLUTION
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)
    ### END SOLUTION

# %% test id=test_scaled_step_visible points=1
def _mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 8))


def _fp16_loss(model, x, y):
    with torch.autocast("cpu", dtype=torch.float16):
        out = model(x)
    return (out.float() - y).pow(2).mean()


torch.manual_seed(23)
x_mlp, y_mlp = torch.randn(16, 32) * 4, torch.randn(16, 8)
mlp = _mlp(24)
opt_mlp = torch.optim.SGD(mlp.parameters(), lr=0.05)
sc_mlp = torch.amp.GradScaler("cpu", init_scale=2.0**10)
norm0 = scaled_step(_fp16_loss(mlp, x_mlp, y_mlp), mlp, opt_mlp, sc_mlp, max_norm=1.0)
assert isinstance(norm0, float), f"scaled_step must return the norm as a Python float, got {type(norm0).__name__}"
ref = _mlp(24)
ref_loss = _fp16_loss(ref, x_mlp, y_mlp)
ref_loss.backward()
want_norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0).item()
# The fp16 backward scaled by 2**10 and unscaled equals the fp32-accumulated gradient up to fp16 rounding.
assert abs(norm0 - want_norm) < 1e-2 * want_norm, (
    f"scaled_step must return the norm of the unscaled gradients (about {want_norm:.4f}), got {norm0:.4f}")
assert all(p.grad is None for p in mlp.parameters()), "scaled_step must zero the gradients (set_to_none=True)"

# %% test id=test_scaled_step_hidden points=2
### BEGIN HIDDEN TESTS
def _oracle_run(steps, init_scale, interval, max_norm, seed):
    model = _mlp(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=interval)
    norms, scales = [], []
    for _ in range(steps):
        scaler.scale(_fp16_loss(model, x_mlp, y_mlp)).backward()
        scaler.unscale_(opt)
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm).item())
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        scales.append(scaler.get_scale())
    return model, norms, scales


for make_scaler in [lambda s, i: torch.amp.GradScaler("cpu", init_scale=s, growth_interval=i),
                    lambda s, i: DynamicLossScaler(init_scale=s, growth_interval=i)]:
    # From 2**24 the fp16 backward overflows for several steps: real skipped steps, then growth.
    model = _mlp(25)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scaler = make_scaler(2.0**24, 3)
    norms, scales = [], []
    for _ in range(14):
        norms.append(scaled_step(_fp16_loss(model, x_mlp, y_mlp), model, opt, scaler, max_norm=0.5))
        scales.append(scaler.get_scale())
    want_model, want_norms, want_scales = _oracle_run(14, 2.0**24, 3, 0.5, 25)
    kind = type(scaler).__name__
    assert scales == want_scales, f"scaled_step with {kind} from 2**24: scale history {scales}, expected {want_scales}"
    assert sum(not math.isfinite(n) for n in norms) >= 3, f"expected at least 3 overflowing steps from 2**24, got norms {norms}"
    finite = [(a, b) for a, b in zip(norms, want_norms, strict=True) if math.isfinite(b)]
    assert all(abs(a - b) <= 1e-5 * b for a, b in finite), f"unscaled gradient norms with {kind}: expected {want_norms}, got {norms}"
    for p, q in zip(model.parameters(), want_model.parameters(), strict=True):
        assert_close(p, q, rtol=1e-5, atol=1e-7, name=f"weights after 14 scaled_step calls with {kind} (clip 0.5) vs the reference order")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### How many gradients would fp16 lose?
#
# Now the real thing: the gradients of the bundled tiny Llama on one batch, computed in fp32.
# Count how many non-zero values become exactly zero when rounded to fp16, with and without
# a scale, and find the largest power-of-two scale that overflows nothing (what GradScaler's
# search converges towards, from above).

# %% answer id=underflow
def fp16_underflow_count(grads, scale=1.0):
    """grads: list of float32 tensors. The number of entries that are non-zero but become exactly
    zero when (g * scale) is rounded to float16. Returns an int."""
    ### BEGIN SOLUTION
    return sum(int(((g != 0) & ((g * scale).half() == 0)).sum()) for g in grads)
    ### END SOLUTION


def largest_safe_scale(grads):
    """The largest power of two 2.0**k (k an integer, possibly negative) such that no entry of
    (g * 2.0**k).half() is infinite, for the float32 tensors in grads (at least one non-zero,
    all finite). Returns a float."""
    ### BEGIN SOLUTION
    amax = max(float(g.abs().max()) for g in grads)
    k = math.floor(math.log2(torch.finfo(torch.float16).max / amax))
    # Rounding to fp16 can carry a value just above 65504 either way: settle k exactly.
    while torch.isinf(torch.tensor(amax * 2.0**k).half()):
        k -= 1
    while not torch.isinf(torch.tensor(amax * 2.0 ** (k + 1)).half()):
        k += 1
    return 2.0**k
    ### END SOLUTION

# %% test id=test_underflow_visible points=1
small = [torch.tensor([1e-9, 1e-6, 0.0, 1e-3]), torch.tensor([[3e-8, -2e-8]])]
assert fp16_underflow_count(small) == 2, (
    f"fp16_underflow_count: 1e-9 and -2e-8 round to zero in fp16 (3e-8 rounds up to 2**-24, 0 was already zero): "
    f"expected 2, got {fp16_underflow_count(small)}")
assert fp16_underflow_count(small, scale=2.0**10) == 0, (
    f"fp16_underflow_count(..., scale=2**10): expected 0, got {fp16_underflow_count(small, scale=2.0**10)}")
assert largest_safe_scale([torch.tensor([1.0, -3.0])]) == 2.0**14, (
    f"largest_safe_scale([1, -3]): 3 * 2**14 = 49152 fits, 3 * 2**15 overflows: expected 16384.0, got "
    f"{largest_safe_scale([torch.tensor([1.0, -3.0])])}")

# %% [markdown]
# The gradients of the tiny Llama (fp32, one batch of 8 sequences of 128 tokens):

# %%
llama = load_model(device=device).train()
grad_batch = token_ids[:8 * 128].view(8, 128).to(device)
llama(input_ids=grad_batch, labels=grad_batch, use_cache=False).loss.backward()
llama_grads = [p.grad.detach().float().cpu() for p in llama.parameters()]
n_grad = sum(g.numel() for g in llama_grads)
safe = largest_safe_scale(llama_grads)
for label, s in [("no scaling", 1.0), ("GradScaler's initial scale 2**16", 2.0**16), (f"largest safe 2**{int(math.log2(safe))}", safe)]:
    print(f"{label:>34}: {fp16_underflow_count(llama_grads, s):>8,} of {n_grad:,} gradient values underflow to 0 in fp16")
log_mag = torch.cat([g.flatten() for g in llama_grads]).abs().clamp_min(1e-30).log2()
fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.hist(log_mag.numpy(), bins=120, range=(-45, 0), color="C0")
for value, label, style in [(-24, "fp16 smallest subnormal", ":"), (-14, "fp16 smallest normal", "--"), (math.log2(65504), "fp16 max", "-")]:
    ax.axvline(value, color="k", linestyle=style, label=label)
    ax.axvline(value - 16, color="C3", linestyle=style, alpha=0.6)
ax.set_xlabel("log2 |gradient|  (red: the fp16 limits seen by gradients scaled by 2**16)")
ax.set_ylabel("count")
ax.set_title("tiny Llama gradients against the range of fp16")
ax.legend(fontsize=8)
plt.show()

# %% test id=test_underflow_hidden points=2
### BEGIN HIDDEN TESTS
def _oracle_underflow(grads, s):
    # g * s rounded to float32 first, as the docstring says, then to float16.
    return sum(int(torch.count_nonzero((g != 0) & ((g * s).to(torch.float16) == 0))) for g in grads)


with_zeros = llama_grads + [torch.zeros(7), torch.tensor([0.0, 1e-9, -0.0, 2e-5])]  # zeros were never lost
for s in [1.0, 2.0**-3, 2.0**8, 2.0**16, 3.0]:
    want = _oracle_underflow(with_zeros, s)
    got = fp16_underflow_count(with_zeros, s)
    assert got == want and isinstance(got, int), (
        f"fp16_underflow_count(tiny Llama gradients and a few zeros, scale={s}): expected {want}, got {got!r}")
assert _oracle_underflow(llama_grads, 1.0) > 1000, "sanity: the tiny Llama's fp32 gradients should lose thousands of values in fp16"
# Exact safe scale, including values whose fp16 rounding lands right at the limit.
for grads in [llama_grads, [torch.tensor([65504.0])], [torch.tensor([65519.0])], [torch.tensor([65520.0])],
              [torch.tensor([1e-7, -3e-9])], [torch.tensor([0.0, 3.0]), torch.tensor([-5.0])], [torch.tensor([1e5])],
              # fp16 rounding lets these reach 65504 from a power of two higher than log2 suggests
              [torch.tensor([65519.0 / 1024])], [torch.tensor([-65519.0 * 2.0**-30, 1e-9])]]:
    got = largest_safe_scale(grads)
    k = int(math.log2(got))
    assert got == 2.0**k, f"largest_safe_scale must return a power of two, got {got}"
    ok = not any(torch.isinf((g.double() * got).to(torch.float16)).any() for g in grads)
    over = any(torch.isinf((g.double() * 2 * got).to(torch.float16)).any() for g in grads)
    assert ok and over, (
        f"largest_safe_scale({[g.tolist() if g.numel() < 4 else 'llama grads' for g in grads]}): 2**{k} "
        f"{'overflows' if not ok else 'is not the largest (2**' + str(k + 1) + ' also fits)'}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# Two things to take from the histogram. Without scaling, tens of thousands of gradients
# (almost 1 %) sit below half of fp16's smallest subnormal and are lost, and more than half
# of them sit below its smallest normal, kept with fewer bits. And the magnitudes span far more than fp16's 40 binades, so
# no single scale keeps every value: the loss scale slides the window towards the top, since
# losing the smallest gradients costs little and an overflow costs a whole step. bf16 has
# fp32's exponent range, which is why bf16 training needs no loss scaler.
#
# Watch the dynamic scaler find its level on the small fp16 MLP from above, starting at $2^{24}$:

# %%
demo_model = _mlp(26)
demo_opt = torch.optim.AdamW(demo_model.parameters(), lr=1e-2)
demo_scaler = DynamicLossScaler(init_scale=2.0**24, growth_interval=10)
demo_log = []
for step in range(60):
    norm = scaled_step(_fp16_loss(demo_model, x_mlp, y_mlp), demo_model, demo_opt, demo_scaler, max_norm=1.0)
    demo_log.append((math.log2(demo_scaler.get_scale()), math.isfinite(norm)))
fig, ax = plt.subplots(figsize=(6.5, 3))
ax.step(range(60), [s for s, _ in demo_log], where="post", label="log2(scale) after the step")
skips = [i for i, (_, ok) in enumerate(demo_log) if not ok]
ax.plot(skips, [demo_log[i][0] for i in skips], "rx", label="skipped step (inf in the fp16 backward)")
ax.set_xlabel("step")
ax.set_ylabel("log2(scale)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 3. Autocast: mixed precision with fp32 master weights
#
# `torch.autocast(device_type, dtype=torch.bfloat16)` does not convert the model. The weights
# stay fp32 (the **master weights**); inside the context, each operator is looked up in
# autocast's lists: matrix products (`linear`, `matmul`, `bmm`, `conv`,
# `scaled_dot_product_attention`) cast their inputs to bf16 and run in bf16; operators that
# need range or precision (losses such as `nll_loss`, and on GPUs `softmax`, `exp`, norms)
# run in fp32; everything else runs in the dtype of its inputs. The backward pass then runs
# each operator in the dtype its forward used, and the gradients of the fp32 weights arrive
# in fp32 (the cast's backward casts them back), so the optimizer updates fp32 weights with
# fp32 states. Run only the forward pass and the loss under autocast, not the backward.
#
# How do we know what really ran in bf16? Every tensor operation ends in an **aten**
# operator (`aten.mm`, `aten._log_softmax`, ...) after autocast has inserted its casts.
# A `TorchDispatchMode` (the mechanism behind `FlopCounterMode`) sees each of them: its
# `__torch_dispatch__(self, func, types, args, kwargs)` is called with the operator and its
# arguments, must run `func(*args, **kwargs)` and return the result, and may record what it
# likes on the way. `func.overloadpacket.__name__` is the operator's short name.
#
# Write `DtypeRecorder` (record the dtypes of the floating-point tensors each operator
# *returns*; an operator may return a tuple or list of tensors), then `train_mixed`.

# %% answer id=dtype_recorder
class DtypeRecorder(TorchDispatchMode):
    """Used as `with DtypeRecorder() as rec: ...`. Runs every aten operator unchanged and records
    rec.ops: dict {operator short name (func.overloadpacket.__name__, e.g. "mm"): set of the dtypes
    of the floating-point tensors it returned}. Outputs may be a tensor or a tuple/list of
    tensors; operators that return no floating-point tensor are not recorded."""

    def __init__(self):
        super().__init__()
        self.ops = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        ### BEGIN SOLUTION
        out = func(*args, **(kwargs or {}))
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        dtypes = {t.dtype for t in outputs if isinstance(t, torch.Tensor) and t.is_floating_point()}
        if dtypes:
            self.ops.setdefault(func.overloadpacket.__name__, set()).update(dtypes)
        return out
        ### END SOLUTION

# %% test id=test_dtype_recorder_visible points=1
w_demo = torch.randn(8, 4)
with DtypeRecorder() as rec_demo:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_demo = torch.randn(3, 8) @ w_demo
        y_demo.float().sum()
assert rec_demo.ops.get("mm") == {torch.bfloat16}, f"rec.ops['mm'] under bf16 autocast: expected {{torch.bfloat16}}, got {rec_demo.ops.get('mm')}"
assert rec_demo.ops.get("randn") == {torch.float32}, f"rec.ops['randn']: expected {{torch.float32}}, got {rec_demo.ops.get('randn')}"
assert y_demo.dtype == torch.bfloat16, "the recorder must return the operators' results unchanged"

# %% test id=test_dtype_recorder_hidden points=2
### BEGIN HIDDEN TESTS
class _OracleRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.ops.setdefault(func.overloadpacket.__name__, set()).add(t.dtype)
        return out


def _probe_fn():
    a = torch.randn(4, 6, dtype=torch.float64)
    values, idx = a.max(dim=1)  # a tuple: float64 values, int64 indices
    parts = torch.randn(6, 3).split(2)  # a list of tensors
    torch.argmax(a)  # no floating-point output at all
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = torch.nn.functional.linear(torch.randn(2, 3), torch.randn(5, 3))
        torch.nn.functional.mse_loss(h, torch.zeros(2, 5))  # on autocast's fp32 list
        torch.cat([h, torch.randn(1, 5)])  # mixed bf16 and fp32 inputs: promoted to fp32
    return values, idx, parts


with DtypeRecorder() as rec:
    _probe_fn()
with _OracleRecorder() as oracle:
    _probe_fn()
assert rec.ops == oracle.ops, f"DtypeRecorder on a small probe: expected {oracle.ops}, got {rec.ops}"
assert "argmax" not in rec.ops, "operators without floating-point outputs must not be recorded"
ids_probe = token_ids[:64].view(2, 32)
probe_model = load_model().train()  # fresh .grad each run: accumulating into existing gradients adds add_ calls
with DtypeRecorder() as rec:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = probe_model(input_ids=ids_probe, labels=ids_probe, use_cache=False)
    out.loss.backward()
probe_model.zero_grad(set_to_none=True)
with _OracleRecorder() as oracle:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = probe_model(input_ids=ids_probe, labels=ids_probe, use_cache=False)
    out.loss.backward()
assert rec.ops == oracle.ops, (
    f"DtypeRecorder on a bf16 autocast training step of the tiny Llama: differs from the expected record on "
    f"{sorted(k for k in set(rec.ops) | set(oracle.ops) if rec.ops.get(k) != oracle.ops.get(k))}")
# The profiler, a separate witness: every aten::mm received bf16 inputs, the log-softmax fp32.
from torch.profiler import ProfilerActivity, profile  # noqa: E402

with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        probe_model(input_ids=ids_probe, labels=ids_probe, use_cache=False)
seen = {(e.name(), e.dtypes()[0]) for e in prof.profiler.kineto_results.events() if e.name() in ("aten::mm", "aten::_log_softmax")}
assert seen == {("aten::mm", "c10::BFloat16"), ("aten::_log_softmax", "float")}, f"profiler sanity check: {seen}"
assert rec.ops["mm"] == {torch.bfloat16} and rec.ops["_log_softmax"] == {torch.float32}
### END HIDDEN TESTS
assert True

# %% [markdown]
# The training loop. `train_mixed` runs AdamW on a list of batches of token ids, with the
# forward pass and the loss under autocast when a dtype is given, and plain fp32 otherwise.

# %% answer id=train_mixed
def train_mixed(model, batches, lr, autocast_dtype=None):
    """Train `model` (a transformers causal LM whose parameters are float32) in place with
    torch.optim.AdamW(model.parameters(), lr=lr), one step per batch (LongTensor (B, T) of token
    ids; loss = model(input_ids=batch, labels=batch, use_cache=False).loss), in training mode.
    With autocast_dtype (e.g. torch.bfloat16), the forward pass and the loss run under
    torch.autocast(batch.device.type, dtype=autocast_dtype); the backward pass and the optimizer
    step run outside it. The parameters stay float32. After every step the gradients are zeroed
    with set_to_none=True (their memory is freed until the next backward).
    Returns the list of the losses (Python floats), one per step."""
    ### BEGIN SOLUTION
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for batch in batches:
        with torch.autocast(batch.device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses
    ### END SOLUTION

# %% test id=test_train_mixed_visible points=1
train_batches = token_ids[:6 * 2 * 64].view(6, 2, 64).to(device)
torch.manual_seed(30)
fp32_model = load_model(device=device)
fp32_losses = train_mixed(fp32_model, train_batches, lr=1e-3)
torch.manual_seed(30)
bf16_model = load_model(device=device)
bf16_losses = train_mixed(bf16_model, train_batches, lr=1e-3, autocast_dtype=torch.bfloat16)
assert len(bf16_losses) == 6 and all(isinstance(v, float) for v in bf16_losses), f"expected 6 float losses, got {bf16_losses}"
assert all(p.dtype == torch.float32 for p in bf16_model.parameters()), "the master weights must stay float32"
# Measured on the tiny Llama: bf16 autocast losses stay within 2.1e-3 of fp32 over 6 steps
# (bf16 keeps 8 significant bits; the fp32 master weights and fp32 loss keep errors from
# growing). 2e-2 leaves a 10x margin. (A model converted to bf16 stays within 4e-3 too over
# so few steps: the float32 check above is what catches it.)
assert max(abs(a - b) for a, b in zip(bf16_losses, fp32_losses, strict=True)) < 2e-2, (
    f"bf16 autocast losses {[round(v, 4) for v in bf16_losses]} should track fp32's {[round(v, 4) for v in fp32_losses]} within 2e-2")

# %% test id=test_train_mixed_hidden points=3
### BEGIN HIDDEN TESTS
def _oracle_train(model, batches, lr, dtype):
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    out = []
    for b in batches:
        if dtype is None:
            loss = model(input_ids=b, labels=b, use_cache=False).loss
        else:
            with torch.autocast(b.device.type, dtype=dtype):
                loss = model(input_ids=b, labels=b, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        out.append(loss.item())
    return out


# Fresh models on a two-step run, with another learning rate: every step must match a plain
# AdamW loop with autocast around the forward pass and the loss only.
few = train_batches[:2, :, :32]
for dtype in (None, torch.bfloat16):
    torch.manual_seed(30)
    trained = load_model(device=device).eval()  # train_mixed must switch it to training mode itself
    modes = []
    hook = trained.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    got_losses = train_mixed(trained, few, lr=3e-3, autocast_dtype=dtype)
    hook.remove()
    assert modes == [True] * len(few), f"train_mixed must run every forward pass in training mode: model.training was {modes}"
    torch.manual_seed(30)
    ref_model = load_model(device=device)
    want = _oracle_train(ref_model, few, 3e-3, dtype)
    # The same operators in the same order: equal up to run-to-run round-off.
    assert_close(torch.tensor(got_losses), torch.tensor(want), rtol=1e-4, atol=1e-5,
                 name=f"train_mixed losses (autocast_dtype={dtype}, lr=3e-3) vs a reference AdamW loop")
    for (n, p), (_, q) in zip(trained.named_parameters(), ref_model.named_parameters(), strict=True):
        assert p.dtype == torch.float32, f"{n}: the parameters must stay float32, got {p.dtype}"
        assert p.grad is None, f"{n}: gradients must be set to None after the last step (zero_grad(set_to_none=True)), got a {type(p.grad).__name__}"
        assert_close(p, q, rtol=1e-3, atol=1e-5, name=f"{n} after train_mixed (autocast_dtype={dtype}) vs the reference loop")
# The matrix products of a step really ran in bf16 (and in fp32 without autocast); float16 is honoured too.
for dtype, want_mm in [(torch.bfloat16, {torch.bfloat16}), (None, {torch.float32}), (torch.float16, {torch.float16})]:
    spy_model = load_model(device=device)
    with _OracleRecorder() as spy:
        train_mixed(spy_model, few[:1, :, :16], lr=1e-3, autocast_dtype=dtype)
    assert spy.ops.get("mm") == want_mm, f"train_mixed(autocast_dtype={dtype}): the matrix products ran in {spy.ops.get('mm')}, expected {want_mm}"
    assert all(p.dtype == torch.float32 for p in spy_model.parameters()), f"train_mixed(autocast_dtype={dtype}): parameters must stay float32"
### END HIDDEN TESTS
assert True

# %% [markdown]
# What ran in which format during one bf16 autocast training step (forward, loss, backward)
# of the tiny Llama:

# %%
step_model = load_model(device=device)
with DtypeRecorder() as step_rec:
    train_mixed(step_model, train_batches[:1], lr=1e-3, autocast_dtype=torch.bfloat16)
only_bf16 = sorted(k for k, v in step_rec.ops.items() if v == {torch.bfloat16})
only_fp32 = sorted(k for k, v in step_rec.ops.items() if v == {torch.float32})
both = sorted(k for k, v in step_rec.ops.items() if len(v) > 1)
print("bf16 only:", ", ".join(only_bf16))
print("fp32 only:", ", ".join(only_fp32))
print("both (casts, and shape operators that follow their input):", ", ".join(both))
fig, ax = plt.subplots(figsize=(6.5, 3.2))
ax.plot(range(1, len(fp32_losses) + 1), fp32_losses, "o-", label="fp32")
ax.plot(range(1, len(bf16_losses) + 1), bf16_losses, "x--", label="bf16 autocast, fp32 master weights")
ax.set_xlabel("step")
ax.set_ylabel("training loss")
ax.legend()
plt.show()

# %% [markdown]
# Read the lists: the matrix products (`mm`) and attention ran in bf16, and so did their
# gradients. The RMSNorm statistics (`pow`, `mean`, `rsqrt`), the embedding, the
# log-softmax and the loss stayed in fp32 (transformers' RMSNorm upcasts on purpose, and the
# loss function casts the logits to fp32). The optimizer (AdamW's `lerp`, `addcdiv`, ...)
# ran in fp32 on fp32 weights: the update of a bf16 weight would often fall below half an
# ulp and vanish, exactly the stall of section 1.
#
# ## 4. Where the memory goes
#
# Training memory has two parts. **States** scale with the number of parameters $\Psi$ and
# live for the whole run: weights, gradients, and the optimizer's states (AdamW: two moments
# per parameter). **Activations** scale with the tokens in flight: every tensor that forward
# keeps for backward.
#
# The classic accounting of mixed-precision AdamW (ZeRO, Rajbhandari et al., 2020):
# bf16/fp16 weights (2 bytes) and gradients (2) for the forward and backward pass, plus an fp32
# master copy of the weights (4) and fp32 AdamW moments $m$ and $v$ (4 + 4): **16 bytes per
# parameter**. Plain fp32 training also needs 16 (4 + 4 + 8): mixed precision does not shrink
# the states, it shrinks activations and speeds up the matrix products. 8-bit optimizers
# (Dettmers et al., 2022) store $m$ and $v$ in one byte each, quantised block-wise with one
# fp32 scale per block of 2048 values: 10 bytes per parameter plus the scales.
#
# | recipe | weights | grads | master | AdamW $m$, $v$ |
# |---|---|---|---|---|
# | `"fp32"` | 4 | 4 | – | 4 + 4 |
# | `"mixed"` | 2 | 2 | 4 | 4 + 4 |
# | `"mixed_8bit"` | 2 | 2 | 4 | 1 + 1, plus 4 bytes per block of `block_size` values of each state of each tensor |
#
# `param_numels(config)` (below) lists the sizes of the parameter tensors of a
# `LlamaForCausalLM` built on the meta device (shapes without memory): even 70B takes a
# fraction of a second. Write `training_state_bytes`; the block count is per tensor (a
# tensor of 3000 values needs 2 blocks per state).

# %%
_numel_cache = {}


def param_numels(config):
    """Sizes of the parameter tensors of LlamaForCausalLM(config) (tied weights counted once)."""
    key = config.to_json_string()
    if key not in _numel_cache:
        with torch.device("meta"):
            _numel_cache[key] = [p.numel() for p in LlamaForCausalLM(config).parameters()]
    return _numel_cache[key]


LLAMA_7B = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32)
LLAMA_70B = LlamaConfig(vocab_size=32000, hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                        num_attention_heads=64, num_key_value_heads=8)
print(f"Llama-2-7B shapes: {sum(param_numels(LLAMA_7B)):,} parameters; 70B: {sum(param_numels(LLAMA_70B)):,}")

# %% answer id=state_bytes
def training_state_bytes(numels, recipe, block_size=2048):
    """Bytes of the training state of a model whose parameter tensors have the sizes in `numels`
    (list of ints), under recipe "fp32", "mixed" or "mixed_8bit" (see the table above).
    Returns a dict of ints with keys "weights", "grads", "master" (0 for "fp32"), "optimizer"
    (AdamW's m and v, with the block scales for "mixed_8bit") and "total" (their sum).
    Any other recipe raises ValueError."""
    ### BEGIN SOLUTION
    n = sum(numels)
    if recipe == "fp32":
        out = {"weights": 4 * n, "grads": 4 * n, "master": 0, "optimizer": 8 * n}
    elif recipe == "mixed":
        out = {"weights": 2 * n, "grads": 2 * n, "master": 4 * n, "optimizer": 8 * n}
    elif recipe == "mixed_8bit":
        blocks = sum(-(-k // block_size) for k in numels)  # ceil per tensor
        out = {"weights": 2 * n, "grads": 2 * n, "master": 4 * n, "optimizer": 2 * n + 2 * 4 * blocks}
    else:
        raise ValueError(f"unknown recipe {recipe!r}")
    out["total"] = sum(out.values())
    return out
    ### END SOLUTION

# %% test id=test_state_bytes_visible points=1
tiny_numels = param_numels(base_config)
n_tiny = sum(tiny_numels)
for recipe in ("fp32", "mixed"):
    got = training_state_bytes(tiny_numels, recipe)
    assert got["total"] == 16 * n_tiny, f"training_state_bytes(tiny Llama, {recipe!r})['total']: expected 16 x {n_tiny:,}, got {got['total']:,}"
got = training_state_bytes([3000, 10], "mixed_8bit")
assert got["optimizer"] == 2 * 3010 + 8 * 3, (
    f"mixed_8bit for tensors of 3000 and 10 values: m and v take 1 byte each per value (6,020) plus a 4-byte "
    f"scale per block per state (3 blocks x 2 states x 4 = 24): expected 6,044, got {got['optimizer']:,}")
assert set(got) == {"weights", "grads", "master", "optimizer", "total"}, f"keys: got {sorted(got)}"

# %% test id=test_state_bytes_hidden points=2
### BEGIN HIDDEN TESTS
def _oracle_states(numels, recipe, block):
    n = sum(numels)
    per = {"fp32": (4, 4, 0, 8), "mixed": (2, 2, 4, 8), "mixed_8bit": (2, 2, 4, 2)}[recipe]
    out = dict(zip(("weights", "grads", "master", "optimizer"), (c * n for c in per)))
    if recipe == "mixed_8bit":
        out["optimizer"] += 8 * sum(math.ceil(k / block) for k in numels)
    out["total"] = sum(out.values())
    return out


# Llama-2-7B: 6,738,415,616 parameters; 70B (GQA): 68,976,648,192.
assert sum(param_numels(LLAMA_7B)) == 6_738_415_616 and sum(param_numels(LLAMA_70B)) == 68_976_648_192
cases = [("Llama-2-7B", param_numels(LLAMA_7B)), ("Llama-2-70B", param_numels(LLAMA_70B)), ("tiny", tiny_numels),
         ("odd sizes", [1, 2047, 2048, 2049, 5000, 4096 * 3 + 1])]
for label, numels in cases:
    for recipe in ("fp32", "mixed", "mixed_8bit"):
        for block in (2048, 256):
            got = training_state_bytes(numels, recipe, block_size=block)
            want = _oracle_states(numels, recipe, block)
            assert got == want and all(isinstance(v, int) for v in got.values()), (
                f"training_state_bytes({label}, {recipe!r}, block_size={block}): expected {want}, got {got}")
assert training_state_bytes(param_numels(LLAMA_7B), "mixed")["total"] == 107_814_649_856
odd = [1, 2047, 2048, 2049, 4097]
assert training_state_bytes(odd, "mixed_8bit") == _oracle_states(odd, "mixed_8bit", 2048), (
    f"training_state_bytes({odd}, 'mixed_8bit') with the default block size: expected blocks of 2048 values, "
    f"{_oracle_states(odd, 'mixed_8bit', 2048)}, got {training_state_bytes(odd, 'mixed_8bit')}")
for bad in ("bf16", "8bit", "FP32"):
    try:
        training_state_bytes([10], bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"training_state_bytes([10], {bad!r}): expected ValueError for an unknown recipe")
assert training_state_bytes(param_numels(LLAMA_70B), "mixed")["total"] == 1_103_626_371_072
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### Activations, by reading the code
#
# What forward keeps for backward follows from the derivative of each operator: `y = x @ W.T`
# keeps `x` (for $\partial L/\partial W$) and `W` (a parameter, not an activation);
# `a * b` keeps `b` if `a` needs a gradient and `a` if `b` does; `silu(x)` keeps `x`;
# `rsqrt(x)` keeps its output; additions, views and transposes keep nothing; several
# operators that keep the same tensor store it once; a view of a kept tensor costs nothing
# new. Read transformers' `LlamaDecoderLayer`, `LlamaRMSNorm`, `LlamaMLP` and
# `LlamaAttention` (`transformers/models/llama/modeling_llama.py`) with these rules. On the
# CPU, `scaled_dot_product_attention` runs a flash-attention kernel, which keeps $q$, $k$, $v$
# (after RoPE, with $n_{kv}$ heads each for $k$ and $v$: no copies for grouped-query
# attention), its output, and one float32 log-sum-exp per query head and token, never the
# $T\times T$ matrix. The output of the layer's last projection is not kept by that layer.
#
# The same counting for every layer gives a number of bytes per token per layer. Measure it
# too: build two random models of the same config with 1 and 2 decoder layers (on the CPU,
# `use_cache=False`, training mode), measure the peak memory of a forward pass that returns
# the loss with `peak_memory_torch` (the autograd graph, and everything it keeps, stays alive
# until the returned loss is freed), and take the difference: the embedding, the output head,
# the loss and the RoPE tables are the same in both and cancel.
#
# Write the formula, with `bytes_per_value` bytes per saved number (4 for fp32) except the
# log-sum-exp, always float32, and the measurement.

# %% answer id=activations
def activation_bytes_per_token_per_layer(config, bytes_per_value=4):
    """Bytes that one decoder layer of transformers' LlamaForCausalLM (sdpa attention on the CPU,
    training mode) keeps for backward per token, from the config alone (head size:
    config.head_dim if set, else hidden_size // num_attention_heads). Every kept number takes
    bytes_per_value bytes, except the attention's log-sum-exp (float32, one per query head)."""
    ### BEGIN SOLUTION
    h, m = config.hidden_size, config.intermediate_size
    d = getattr(config, "head_dim", None) or h // config.num_attention_heads
    q, kv = config.num_attention_heads * d, config.num_key_value_heads * d
    norms = 2 * (3 * h + 1)  # each RMSNorm: its input, input * rsqrt, its output, and rsqrt (one number)
    attention = 2 * q + 2 * kv  # q and k after RoPE, v, the attention output
    mlp = 4 * m  # gate, up, silu(gate), silu(gate) * up
    return bytes_per_value * (norms + attention + mlp) + 4 * config.num_attention_heads
    ### END SOLUTION


def measure_activation_bytes_per_token_per_layer(config, batch=2, seq=32):
    """Measured on the CPU: peak bytes of a training-mode forward pass returning the loss (random
    token ids of shape (batch, seq), labels = the ids, use_cache=False) of a randomly initialised
    LlamaForCausalLM with config's shapes and 2 decoder layers, minus the same with 1 layer,
    divided by batch * seq. Returns a float."""
    ### BEGIN SOLUTION
    peaks = []
    for layers in (1, 2):
        cfg = LlamaConfig(**{**config.to_dict(), "num_hidden_layers": layers})
        model = LlamaForCausalLM(cfg).train()
        ids = torch.randint(0, cfg.vocab_size, (batch, seq))
        peaks.append(peak_memory_torch(lambda m=model, x=ids: m(input_ids=x, labels=x, use_cache=False).loss)[1])
    return (peaks[1] - peaks[0]) / (batch * seq)
    ### END SOLUTION

# %% test id=test_activations_visible points=1
measured_tiny = measure_activation_bytes_per_token_per_layer(base_config)
assert measured_tiny == 20264, (
    f"measure_activation_bytes_per_token_per_layer(tiny Llama config): expected 20,264 bytes per token per layer "
    f"(measured with the recipe above), got {measured_tiny}")
got_formula = activation_bytes_per_token_per_layer(base_config)
assert got_formula == 20264, (
    f"activation_bytes_per_token_per_layer(tiny Llama config) in fp32: the measurement says 20,264 bytes, "
    f"your formula {got_formula:,}")

# %% test id=test_activations_hidden points=3
### BEGIN HIDDEN TESTS
def _saved_tensor_bytes(cfg, layers, batch, seq):
    """Independent witness: bytes of distinct non-parameter storages autograd saves."""
    model = LlamaForCausalLM(LlamaConfig(**{**cfg.to_dict(), "num_hidden_layers": layers})).train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            seen[s.data_ptr()] = s.nbytes()
        return t

    ids = torch.randint(0, cfg.vocab_size, (batch, seq))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    del loss
    return sum(seen.values())


variants = [
    LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=176, num_attention_heads=4, num_key_value_heads=4),
    LlamaConfig(vocab_size=300, hidden_size=96, intermediate_size=200, num_attention_heads=6, num_key_value_heads=2),
    LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=1, head_dim=32),
    LlamaConfig(vocab_size=500, hidden_size=48, intermediate_size=160, num_attention_heads=3, num_key_value_heads=3,
                attention_bias=True, mlp_bias=True),
]
for cfg in variants:
    label = (f"h={cfg.hidden_size}, m={cfg.intermediate_size}, heads {cfg.num_attention_heads}/{cfg.num_key_value_heads}, "
             f"head_dim {cfg.head_dim}")
    witness = (_saved_tensor_bytes(cfg, 3, 2, 24) - _saved_tensor_bytes(cfg, 1, 2, 24)) / (2 * 2 * 24)
    for batch, seq in [(2, 24), (1, 40)]:
        got = measure_activation_bytes_per_token_per_layer(cfg, batch=batch, seq=seq)
        assert got == witness, f"measured activation bytes per token per layer ({label}, batch {batch}, seq {seq}): expected {witness}, got {got}"
    want = witness
    got = activation_bytes_per_token_per_layer(cfg)
    assert got == want, f"activation_bytes_per_token_per_layer({label}) in fp32: measured {want}, your formula {got}"
    lse = 4 * cfg.num_attention_heads
    got2 = activation_bytes_per_token_per_layer(cfg, bytes_per_value=2)
    assert got2 == (want - lse) / 2 + lse, (
        f"activation_bytes_per_token_per_layer({label}, bytes_per_value=2): expected {(want - lse) / 2 + lse}, got {got2}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# The states of a 7B and a 70B Llama under each recipe, with the activations of one sequence of
# 4096 tokens (fp32 for the fp32 recipe, 2 bytes for the others) beside them. An 80 GB
# accelerator is the dashed line.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
labels, bottoms = [], []
parts = ["weights", "grads", "master", "optimizer"]
for i, (name, cfg) in enumerate([("7B", LLAMA_7B), ("70B", LLAMA_70B)]):
    for j, recipe in enumerate(("fp32", "mixed", "mixed_8bit")):
        states = training_state_bytes(param_numels(cfg), recipe)
        act = 4096 * cfg.num_hidden_layers * activation_bytes_per_token_per_layer(cfg, 4 if recipe == "fp32" else 2)
        x, bottom = len(labels), 0.0
        for k, part in enumerate(parts + ["activations"]):
            value = (states[part] if part != "activations" else act) / 1e9
            ax.bar(x, value, bottom=bottom, color=f"C{k}", label=part if x == 0 else None)
            bottom += value
        labels.append(f"{name}\n{recipe}")
ax.axhline(80, color="k", linestyle="--", linewidth=0.8)
ax.set_yscale("log")
ax.set_xticks(range(len(labels)), labels, fontsize=8)
ax.set_ylabel("GB (log scale)")
ax.set_title("training memory: states and the activations of 4096 tokens")
ax.legend(fontsize=8)
plt.show()
for name, cfg in [("7B", LLAMA_7B), ("70B", LLAMA_70B)]:
    per_token = cfg.num_hidden_layers * activation_bytes_per_token_per_layer(cfg, 2)
    print(f"{name}: states (mixed) {training_state_bytes(param_numels(cfg), 'mixed')['total'] / 1e9:,.1f} GB; "
          f"2-byte activations {per_token / 2**20:.2f} MiB per token, {4096 * per_token / 1e9:.1f} GB per 4096-token sequence")

# %% [markdown]
# Under `torch.autocast` the picture is less tidy: the residual stream and the RMSNorm
# statistics stay fp32, the bf16 copies that the matrix products keep are *extra* copies, and
# autocast caches a bf16 copy of each weight for the duration of the forward pass (the "2 bytes
# of weights" of the mixed recipe). Measure it on the tiny model's shapes:

# %%
def _forward_peak(cfg, layers, batch, seq, dtype=None):
    model = LlamaForCausalLM(LlamaConfig(**{**cfg.to_dict(), "num_hidden_layers": layers})).train()
    ids = torch.randint(0, cfg.vocab_size, (batch, seq))

    def fwd():
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return model(input_ids=ids, labels=ids, use_cache=False).loss
    return peak_memory_torch(fwd)[1]


layer_params = sum(param_numels(base_config)[1:8])  # one decoder layer's seven projection matrices
print(f"{'tokens':>6} | {'fp32 bytes/token/layer':>22} | {'bf16 autocast':>13} | {'minus the bf16 weight cache':>27}")
for batch, seq in [(1, 64), (2, 128), (4, 256)]:
    per = [(_forward_peak(base_config, 2, batch, seq, dt) - _forward_peak(base_config, 1, batch, seq, dt)) / (batch * seq)
           for dt in (None, torch.bfloat16)]
    print(f"{batch * seq:>6} | {per[0]:>22,.0f} | {per[1]:>13,.0f} | {per[1] - 2 * layer_params / (batch * seq):>27,.0f}")
print(f"formula with 2 bytes per value: {activation_bytes_per_token_per_layer(base_config, 2):,} bytes per token per layer")

# %% [markdown]
# With autocast the activations per token shrink by about a third, not a half: a fully bf16
# model (Megatron-style, where the weights themselves are bf16 and the fp32 master copy lives
# in the optimizer) gets closer to the 2-byte formula. The planning model of section 6 uses
# the 2-byte formula.
#
# ## 5. Activation checkpointing
#
# Per token and layer the tiny model keeps about 20 KB, a 7B model about 170 KB in bf16: 22 GB
# for one sequence of 4096 tokens through 32 layers, so that a batch of five sequences
# outweighs the model's 108 GB of states. **Activation
# checkpointing** (gradient checkpointing, Chen et al., 2016) keeps only each layer's *input*
# in forward and runs the layer's forward again during backward, just before its gradients
# are needed. Memory per token drops from $L \cdot A$ to about $L \cdot h + A$ values (the
# inputs of all layers, plus one layer's activations at a time), for the price of a second
# forward pass through the layers.
#
# `torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False, **kwargs)` runs `fn`
# without keeping its intermediate tensors and replays it in backward (use the non-reentrant
# version: it supports keyword arguments, which transformers' layers receive, and inputs that
# do not require gradients). The replay stops as soon as it has rebuilt the last tensor that
# backward needs: the output of a layer's last projection (`down_proj`) is not needed inside
# the layer, so that matrix product is not run again.
#
# Write `checkpoint_layers`, which makes each decoder layer of a transformers Llama run under
# `checkpoint`, without changing the module tree (the state dict keys stay the same, so
# checkpoint files load with or without it). An instance attribute `layer.forward` replaces
# the method for that instance; beware of a closure in a loop, which sees the loop variable's
# *last* value. Then count what the replay costs, in matrix-product FLOPs
# (a product of $(t\times a)$ and $(a\times b)$ matrices is $2tab$ FLOPs).

# %% answer id=checkpointing
def checkpoint_layers(model):
    """In place: make every decoder layer in model.model.layers run its forward under
    torch.utils.checkpoint.checkpoint(..., use_reentrant=False), with the same arguments and the
    same result. Module names, parameters and state_dict keys are unchanged. Returns the number of
    layers wrapped."""
    ### BEGIN SOLUTION
    for layer in model.model.layers:
        layer.forward = functools.partial(checkpoint, layer.forward, use_reentrant=False)
    return len(model.model.layers)
    ### END SOLUTION


def recompute_matmul_flops(config, tokens):
    """The matrix-product FLOPs that checkpoint_layers adds to one training step (forward and
    backward) of LlamaForCausalLM(config) without biases on `tokens` tokens: the replay of every
    layer's projections that backward needs (all but down_proj). Attention's own products are
    not counted (FlopCounterMode does not count the CPU attention kernel). Returns an int."""
    ### BEGIN SOLUTION
    h, m = config.hidden_size, config.intermediate_size
    d = getattr(config, "head_dim", None) or h // config.num_attention_heads
    q, kv = config.num_attention_heads * d, config.num_key_value_heads * d
    replayed = h * q + 2 * h * kv + q * h + 2 * h * m  # q, k, v, o, gate, up
    return 2 * tokens * config.num_hidden_layers * replayed
    ### END SOLUTION

# %% test id=test_checkpointing_visible points=1
ck_ids = token_ids[:2 * 48].view(2, 48)
plain = load_model().train()
ck = load_model().train()
keys_before = list(ck.state_dict())
assert checkpoint_layers(ck) == base_config.num_hidden_layers, "checkpoint_layers must return the number of layers wrapped"
assert list(ck.state_dict()) == keys_before, "checkpoint_layers must not change the state_dict keys"
loss_plain = plain(input_ids=ck_ids, labels=ck_ids, use_cache=False).loss
loss_ck = ck(input_ids=ck_ids, labels=ck_ids, use_cache=False).loss
# The replay runs the same kernels on the same inputs: equal up to float32 round-off.
assert_close(loss_ck, loss_plain, rtol=1e-6, atol=1e-6, name="loss with checkpointed layers vs without")
loss_plain.backward()
loss_ck.backward()
for (n, p), (_, q) in zip(ck.named_parameters(), plain.named_parameters(), strict=True):
    assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, name=f"gradient of {n} with checkpointing vs without")
tiny_flops = recompute_matmul_flops(base_config, 96)
assert tiny_flops == 2 * 96 * 4 * (256 * 256 * 2 + 2 * 256 * 128 + 2 * 256 * 688), (
    f"recompute_matmul_flops(tiny Llama, 96 tokens): expected {2 * 96 * 4 * (256 * 256 * 2 + 2 * 256 * 128 + 2 * 256 * 688):,}, got {tiny_flops:,}")

# %% test id=test_checkpointing_hidden points=4
### BEGIN HIDDEN TESTS
def _prepared(cfg, how, seed=31):
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).train()
    if how == "mine":
        checkpoint_layers(model)
    elif how == "hf":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def _step(model, ids):
    def run():
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        return loss.detach()
    return run


# Memory: 8 layers of the tiny Llama's shapes, 2 x 128 tokens. The gradients are allocated
# before the measurement (kept, zeroed), so the peak is activations and temporaries.
cfg8 = LlamaConfig(**{**base_config.to_dict(), "num_hidden_layers": 8})
ids8 = torch.randint(0, cfg8.vocab_size, (2, 128))
peaks, grads, losses = {}, {}, {}
for how in ("plain", "mine", "hf"):
    model = _prepared(cfg8, how)
    _step(model, ids8)()
    model.zero_grad(set_to_none=False)
    losses[how], peaks[how] = peak_memory_torch(_step(model, ids8))
    grads[how] = [p.grad.clone() for p in model.parameters()]
# Measured: plain 52.2 MB, checkpointed 15.1 MB (3.5x lower); checkpointing only the MLPs or
# the whole model in one piece gives under 1.8x. 2.5x leaves margin on both sides.
ratio = peaks["plain"] / peaks["mine"]
assert ratio >= 2.5, (
    f"peak memory of a training step (8 layers, 256 tokens): without checkpointing {peaks['plain']:,} B, with "
    f"yours {peaks['mine']:,} B: expected at least 2.5x lower, got {ratio:.2f}x")
# Against transformers' own checkpointing: 25% of margin. Its own peak moves between runs
# (14.6 MB and 13.8 MB measured in two whole-suite runs) while a correct per-layer checkpoint
# written as a closure factory measured 15.5 MB both times (1.12x at worst); leaving one layer
# out adds one layer's activations, about 4.6 MB here (1.35x or more).
assert peaks["mine"] <= 1.25 * peaks["hf"], (
    f"your checkpointing peaks at {peaks['mine']:,} B, transformers' gradient_checkpointing_enable at {peaks['hf']:,} B")
assert_close(losses["mine"], losses["plain"], rtol=1e-6, atol=1e-6, name="loss (8 layers) with checkpointing vs without")
for i, (g, want) in enumerate(zip(grads["mine"], grads["plain"], strict=True)):
    assert_close(g, want, rtol=1e-5, atol=1e-7, name=f"gradient of parameter {i} (8 layers) with checkpointing vs without")
# FLOPs: the replay costs what recompute_matmul_flops predicts, on two configs.
gqa = LlamaConfig(vocab_size=300, hidden_size=96, intermediate_size=200, num_hidden_layers=3, num_attention_heads=6,
                  num_key_value_heads=2)
hd = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=1, head_dim=32)
for cfg, batch, seq in [(base_config, 2, 32), (gqa, 3, 20), (hd, 1, 16)]:
    ids = torch.randint(0, cfg.vocab_size, (batch, seq))
    mm = {}
    for how in ("plain", "mine"):
        model = _prepared(cfg, how)
        with FlopCounterMode(display=False) as counter:
            _step(model, ids)()
        mm[how] = counter.get_flop_counts()["Global"][torch.ops.aten.mm]
    label = f"{cfg.num_hidden_layers} layers, h={cfg.hidden_size}, heads {cfg.num_attention_heads}/{cfg.num_key_value_heads}"
    assert mm["mine"] - mm["plain"] == recompute_matmul_flops(cfg, batch * seq), (
        f"extra matmul FLOPs of checkpointing ({label}, {batch * seq} tokens): counted {mm['mine'] - mm['plain']:,} "
        f"with your checkpoint_layers, your formula says {recompute_matmul_flops(cfg, batch * seq):,}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# Peak memory of one training step against the number of layers, with and without
# checkpointing (tiny Llama shapes, random weights, 2 x 128 tokens, gradients allocated
# beforehand), and the FLOPs the replay costs:

# %%
layer_counts = [2, 4, 8]
ck_peaks = {"stored activations": [], "checkpointed layers": []}
for n_layers in layer_counts:
    cfg_n = LlamaConfig(**{**base_config.to_dict(), "num_hidden_layers": n_layers})
    ids_n = torch.randint(0, cfg_n.vocab_size, (2, 128))
    for label in ck_peaks:
        torch.manual_seed(0)
        model_n = LlamaForCausalLM(cfg_n).train()
        if label == "checkpointed layers":
            checkpoint_layers(model_n)
        model_n(input_ids=ids_n, labels=ids_n, use_cache=False).loss.backward()
        model_n.zero_grad(set_to_none=False)
        ck_peaks[label].append(peak_memory_torch(
            lambda m=model_n: m(input_ids=ids_n, labels=ids_n, use_cache=False).loss.backward())[1])
fig, ax = plt.subplots(figsize=(5.5, 3.5))
for label, values in ck_peaks.items():
    ax.plot(layer_counts, [v / 2**20 for v in values], "o-", label=label)
ax.set_xlabel("decoder layers")
ax.set_ylabel("peak memory of a step (MiB)")
ax.set_title("activation checkpointing: memory vs depth")
ax.legend()
plt.show()
for n_layers, a, b in zip(layer_counts, *ck_peaks.values(), strict=True):
    cfg_n = LlamaConfig(**{**base_config.to_dict(), "num_hidden_layers": n_layers})
    # Matmul FLOPs of one forward pass: every layer's seven projections and the output head.
    fwd = 2 * 256 * (n_layers * sum(param_numels(base_config)[1:8]) + cfg_n.vocab_size * cfg_n.hidden_size)
    print(f"{n_layers} layers: {a / 2**20:5.1f} MiB -> {b / 2**20:5.1f} MiB ({a / b:.1f}x less); the replay adds "
          f"{recompute_matmul_flops(cfg_n, 256) / (3 * fwd):.0%} to the step's matmul FLOPs")

# %% [markdown]
# The saving grows with depth, since the stored part shrinks from $A$ to $h$ values per
# token and layer while the fixed part (the output head, the loss and one layer being
# replayed) stays. The price: the layers' forward runs twice, minus `down_proj`. A step costs
# about three forward passes' worth of matrix products (forward once, backward twice), so for
# a 7B Llama the replay adds about 26 % to them; less on the tiny model, where the output head
# over a 4096-token vocabulary is a large share of the work.
#
# ## 6. Putting it together: what fits?
#
# A planning model of one training step at batch size $B$ and sequence length $T$ (tokens
# $BT$), with the pieces you built:
#
# $$ \text{bytes} = \text{states} + BT\,\Big(\text{per-token activations} + 8V\Big), $$
#
# where the states are `training_state_bytes(param_numels(config), ...)["total"]`, $8V$ is the
# float32 logits and their log-softmax over the vocabulary, and with $A$ =
# `activation_bytes_per_token_per_layer(config, b)` the per-token activations are $L\,A$, or
# with checkpointing $L\,h\,b + A$ (every layer's input, plus one layer replayed at a time).
# The three recipes:
#
# | recipe | states | bytes $b$ per activation | checkpointing |
# |---|---|---|---|
# | `"fp32"` | `"fp32"` | 4 | no |
# | `"bf16+ckpt"` | `"mixed"` | 2 | yes |
# | `"bf16+ckpt+8bit"` | `"mixed_8bit"` (blocks of 2048) | 2 | yes |
#
# Write `training_memory` and `largest_fit`: among a family of configs, the one with the
# most parameters whose training step fits the budget at batch size 1, and the largest batch
# size at which it fits. Use integer arithmetic; the memory grows linearly with $B$.

# %% answer id=plan
RECIPES = {
    "fp32": {"states": "fp32", "bytes_per_value": 4, "checkpointing": False},
    "bf16+ckpt": {"states": "mixed", "bytes_per_value": 2, "checkpointing": True},
    "bf16+ckpt+8bit": {"states": "mixed_8bit", "bytes_per_value": 2, "checkpointing": True},
}


def training_memory(config, batch, seq, recipe):
    """Bytes (int) of one training step of LlamaForCausalLM(config) at batch size `batch` and
    sequence length `seq` under the planning model above, recipe a key of RECIPES."""
    ### BEGIN SOLUTION
    r = RECIPES[recipe]
    states = training_state_bytes(param_numels(config), r["states"])["total"]
    b = r["bytes_per_value"]
    per_layer = activation_bytes_per_token_per_layer(config, b)
    if r["checkpointing"]:
        per_token = config.num_hidden_layers * config.hidden_size * b + per_layer
    else:
        per_token = config.num_hidden_layers * per_layer
    return states + batch * seq * (per_token + 8 * config.vocab_size)
    ### END SOLUTION


def largest_fit(configs, budget, seq, recipe, memory=training_memory):
    """configs: list of LlamaConfig; budget: bytes. Among the configs whose training step at batch
    size 1 fits (memory(config, 1, seq, recipe) <= budget), take the one with the most parameters
    (sum(param_numels(config))) and return (its index in configs, the largest batch size B with
    memory(config, B, seq, recipe) <= budget). Return None if no config fits at batch size 1.
    `memory` has training_memory's signature and grows linearly with the batch size."""
    ### BEGIN SOLUTION
    fitting = [i for i, c in enumerate(configs) if memory(c, 1, seq, recipe) <= budget]
    if not fitting:
        return None
    best = max(fitting, key=lambda i: sum(param_numels(configs[i])))
    cfg = configs[best]
    fixed = 2 * memory(cfg, 1, seq, recipe) - memory(cfg, 2, seq, recipe)  # memory(B) = fixed + B * per_batch
    per_batch = memory(cfg, 1, seq, recipe) - fixed
    return best, (budget - fixed) // per_batch
    ### END SOLUTION

# %% test id=test_plan_visible points=1
want_tiny = 16 * n_tiny + 2 * 64 * (4 * 20264 + 8 * 4096)
assert training_memory(base_config, 2, 64, "fp32") == want_tiny, (
    f"training_memory(tiny Llama, batch 2, seq 64, 'fp32'): expected 16 x {n_tiny:,} + 128 x (4 x 20,264 + 8 x 4096) = "
    f"{want_tiny:,}, got {training_memory(base_config, 2, 64, 'fp32'):,}")
family_demo = [LLAMA_7B, LLAMA_70B]
fit_demo = largest_fit(family_demo, 2 * 10**12, 4096, "bf16+ckpt")
assert fit_demo is not None and fit_demo[0] == 1, f"with 2 TB, 'bf16+ckpt': the 70B model (index 1) fits, got {fit_demo}"
assert largest_fit(family_demo, 10**9, 4096, "fp32") is None, "with 1 GB nothing fits: expected None"

# %% test id=test_plan_hidden points=3
### BEGIN HIDDEN TESTS
def _oracle_memory(cfg, batch, seq, recipe):
    states, b, ck = {"fp32": ("fp32", 4, False), "bf16+ckpt": ("mixed", 2, True), "bf16+ckpt+8bit": ("mixed_8bit", 2, True)}[recipe]
    h, m, L, V = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    d = getattr(cfg, "head_dim", None) or h // cfg.num_attention_heads
    A = b * (6 * h + 2 + 2 * cfg.num_attention_heads * d + 2 * cfg.num_key_value_heads * d + 4 * m) + 4 * cfg.num_attention_heads
    per_token = (L * h * b + A if ck else L * A) + 8 * V
    return _oracle_states(param_numels(cfg), states, 2048)["total"] + batch * seq * per_token


def _oracle_fit(configs, budget, seq, recipe, memory):
    best = None
    for i, c in enumerate(configs):
        if memory(c, 1, seq, recipe) <= budget and (best is None or sum(param_numels(c)) > sum(param_numels(configs[best]))):
            best = i
    if best is None:
        return None
    lo, hi = 1, 1
    while memory(configs[best], hi * 2, seq, recipe) <= budget:
        hi *= 2
    hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if memory(configs[best], mid, seq, recipe) <= budget else (lo, mid)
    return best, lo


for cfg, batch, seq in [(LLAMA_7B, 1, 4096), (LLAMA_70B, 3, 2048), (base_config, 5, 100), (variants[2], 2, 33)]:
    for recipe in RECIPES:
        got, want = training_memory(cfg, batch, seq, recipe), _oracle_memory(cfg, batch, seq, recipe)
        assert got == want and isinstance(got, int), (
            f"training_memory(h={cfg.hidden_size}, L={cfg.num_hidden_layers}, batch {batch}, seq {seq}, {recipe!r}): expected {want:,}, got {got!r}")
family = [
    LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4),
    LLAMA_7B,
    LlamaConfig(vocab_size=32000, hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40, num_key_value_heads=40),
    LlamaConfig(vocab_size=32000, hidden_size=8192, intermediate_size=22016, num_hidden_layers=48, num_attention_heads=64, num_key_value_heads=8),
    LLAMA_70B,
]
shuffled = [family[i] for i in (3, 0, 4, 2, 1)]  # the answer must not depend on the order
for configs in (family, shuffled):
    for budget in (24 * 2**30, 80 * 10**9, 80 * 2**30, 640 * 10**9, 1500 * 10**9, 10 * 2**30):
        for seq in (2048, 4096):
            for recipe in RECIPES:
                want = _oracle_fit(configs, budget, seq, recipe, _oracle_memory)
                got = largest_fit(configs, budget, seq, recipe)
                assert got == want, f"largest_fit(budget {budget:,} B, seq {seq}, {recipe!r}): expected {want}, got {got}"
# largest_fit must use the memory function it is given.
toy = lambda cfg, batch, seq, recipe: 1000 * cfg.num_hidden_layers + 7 * batch * seq  # noqa: E731
for budget in (2999, 32_070, 22_000 + 7 * 10 * 13 + 6, 10**6):
    want = _oracle_fit(family, budget, 10, "fp32", toy)
    got = largest_fit(family, budget, 10, "fp32", memory=toy)
    assert got == want, f"largest_fit with a given memory function (budget {budget}): expected {want}, got {got}"
### END HIDDEN TESTS
assert True

# %% [markdown]
# The family (TinyLlama-1.1B, Llama-2-7B and 13B, CodeLlama-34B and Llama-2-70B shapes) on one
# 80 GB accelerator and on eight of them (with ZeRO-3/FSDP the states and the batch are
# spread over the eight, which this budget approximates), at 4096 tokens per sequence:

# %%
FAMILY = {
    "1.1B": LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                        num_attention_heads=32, num_key_value_heads=4),
    "7B": LLAMA_7B,
    "13B": LlamaConfig(vocab_size=32000, hidden_size=5120, intermediate_size=13824, num_hidden_layers=40,
                       num_attention_heads=40, num_key_value_heads=40),
    "34B": LlamaConfig(vocab_size=32000, hidden_size=8192, intermediate_size=22016, num_hidden_layers=48,
                       num_attention_heads=64, num_key_value_heads=8),
    "70B": LLAMA_70B,
}
names = list(FAMILY)
for budget_label, budget in [("one 80 GB accelerator", 80 * 10**9), ("eight of them", 640 * 10**9)]:
    print(budget_label)
    for recipe in RECIPES:
        fit = largest_fit(list(FAMILY.values()), budget, 4096, recipe)
        if fit is None:
            print(f"  {recipe:>15}: nothing fits")
            continue
        cfg = FAMILY[names[fit[0]]]
        print(f"  {recipe:>15}: {names[fit[0]]:>4} at batch {fit[1]:>3} "
              f"({training_memory(cfg, fit[1], 4096, recipe) / 1e9:.1f} GB; states "
              f"{training_state_bytes(param_numels(cfg), RECIPES[recipe]['states'])['total'] / 1e9:.1f} GB)")

# %% [markdown]
# ## Wrap-up
#
# You derived the formats from their bits, predicted where low-precision accumulation
# stalls, built a dynamic loss scaler that matches `GradScaler` step for step, traced
# autocast down to the aten operators, accounted for every byte of the training state,
# checked an activation formula against measured peaks, traded FLOPs for memory with
# checkpointing, and planned what fits. What real systems do differently:
#
# - **bf16 everywhere it can**: on GPUs since the A100, bf16 autocast (no loss scaler) is the
#   default for LLM training; fp16 with loss scaling survives on older hardware. Megatron and
#   DeepSpeed keep the model itself in bf16 and the fp32 master weights inside the optimizer,
#   which is the accounting of section 4.
# - **FP8 training** (H100 and later; Transformer Engine, torchao's float8) runs the matrix
#   products in e4m3 (forward) and e5m2 (gradients) with a *scale per tensor* (or per block,
#   as in the MX formats and DeepSeek-V3), chosen from the running maximum of recent values:
#   loss scaling generalised to every tensor. Accumulation stays in fp32.
# - **Sharding** (ZeRO stages 1-3, FSDP) splits the 16 bytes per parameter across the data-
#   parallel workers (unit 12); with 8-bit or paged optimizers, and CPU/NVMe offload, the
#   states shrink further.
# - **Selective checkpointing**: recomputing only the cheap, memory-hungry parts (attention's
#   softmax, the MLP's activation) instead of whole layers saves most of the memory for a few
#   percent of compute (Korthikanti et al., 2022); torch offers policies for it
#   (`torch.utils.checkpoint.create_selective_checkpoint_contexts`), and FlashAttention
#   already recomputes the attention matrix in backward.
# - **Measure on the real device**: on a GPU, `torch.cuda.max_memory_allocated` replaces the
#   profiler, attention kernels keep slightly different tensors, and fragmentation of the
#   caching allocator adds its own overhead; plan with formulas, then measure.
#
# What the reference measured here (CPU, 2 threads, the tiny Llama's shapes; memory figures
# are exact counts, times are ratios from one run on a shared machine):
#
# | | fp32 | bf16 autocast | with checkpointing |
# |---|---|---|---|
# | activations per token and layer | 20,264 B | about 13,700 B (less the bf16 weight cache) | $h\,b$ = 1,024 B stored, one layer replayed |
# | peak of a step, 8 layers, 2 x 128 tokens | 52.4 MiB | | 14.8 MiB (3.5x lower) |
# | matmul FLOPs of a step | 1x | 1x | +21 % (the replay, less `down_proj`) |
# | step time (`benchmark.py`, 2 layers, 64 tokens) | 1x | 1.7x slower | about 2x slower |
#
# On this CPU bf16 autocast *slows* a step down: it has no bf16 matrix units, so the casts
# cost and the bf16 kernels are no faster; it buys only memory. On GPUs with tensor cores
# (A100, H100) bf16 and fp16 matrix products run many times faster than fp32, which is why
# mixed precision is the default there. `benchmark.py` in this unit's folder measures step
# time, peak memory, matmul FLOPs and the loss for fp32 and bf16 autocast (and fp16 with
# GradScaler on CUDA), with and without checkpointing, on the machine you run it on.
