# %% [markdown]
# # Unit 02 — Attention: from the formula to FlashAttention and the KV cache
#
# Attention is the one layer of a transformer that mixes information *between* tokens,
# and it is where long contexts become expensive. In this unit you write it six times,
# each time closer to what runs in production:
#
# 1. scaled dot-product attention with causal and padding masks, batched over (batch, heads);
# 2. rotary position embeddings (RoPE), exactly as Llama applies them, and the weight
#    permutation that converts a checkpoint from one RoPE convention to the other;
# 3. a multi-head attention module with grouped-query attention (GQA), checked weight for
#    weight against `transformers`' own `LlamaAttention`;
# 4. memory-efficient attention: the FlashAttention algorithm (tiles of keys, online
#    softmax) in plain PyTorch, graded on its peak memory and its speed;
# 5. FlashAttention's backward pass: a `torch.autograd.Function` that saves only the
#    per-row log-sum-exp and recomputes the tiles, graded on gradients, memory and work;
# 6. a key/value cache for incremental decoding, graded on the work done per new token.
#
# ## Learning objectives
#
# After this unit you can
# - write masked attention for tensors of shape `(batch, heads, time, head_dim)` and say
#   what a fully masked row should return;
# - explain why RoPE encodes *relative* position, tell the half-split and interleaved
#   pairings apart, and convert a checkpoint between them by permuting weights;
# - map the weights of a real checkpoint's attention layer (q/k/v/o projections, GQA) onto
#   your own module;
# - derive the online-softmax update and explain why FlashAttention needs memory linear in
#   the sequence length instead of quadratic;
# - derive attention's backward pass ($D = \operatorname{rowsum}(dO \circ O)$,
#   $dS = P \circ (dP - D)$) and trade memory for recomputation in a custom autograd function;
# - explain what a KV cache stores, why it turns quadratic decoding into linear, and why
#   GQA shrinks it.
#
# ## Prerequisites
#
# Unit 01 (broadcasting, the stable softmax and log-sum-exp), PyTorch tensors and
# `nn.Module`, and matrix products over batched dimensions (`@` on 4-D tensors).
#
# ## Time, device, skills
#
# - **Time:** about 4 hours.
# - **Device:** everything runs on a laptop CPU; the whole notebook takes about two minutes on
#   2 cores. If a CUDA GPU is present, `device` below becomes `"cuda"` and the same code runs
#   there (peak memory is then read from the CUDA allocator instead of the profiler).
# - **Skills practised** (see the course skill map): *The transformer* (self-attention, masks,
#   multi-head and grouped-query attention, rotary positions, the T×T cost, tiled attention);
#   *Deployment* (the KV cache, honest measurement); *Linear algebra* (batched matrix
#   products, tensor shapes); *Engineering habits* (reading library source, profiling).
#
# Run the cell below first. It fixes seeds and threads and silences library warnings (the
# grader scores any test cell that writes to stderr as 0).

# %% setup id=setup
import math
import time

import torch
import torch.nn.functional as F
from graders.notebook import setup

setup()

import matplotlib.pyplot as plt
from graders.notebook import (
    assert_close,
    assert_dtype,
    assert_shape,
    peak_memory_torch,
    speedup,
    synchronize,
)
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding, apply_rotary_pos_emb

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(f"torch {torch.__version__}, running on {device}")

# %% [markdown]
# ## 1. Scaled dot-product attention with masks
#
# For one head, the queries $Q \in \mathbb{R}^{T_q\times d}$, keys $K \in \mathbb{R}^{T_k\times d}$
# and values $V \in \mathbb{R}^{T_k\times d_v}$ give
#
# $$ S = \frac{Q K^\top}{\sqrt{d}}, \qquad P = \operatorname{softmax}_{\text{row}}(S + M), \qquad O = P V ,$$
#
# three steps: similarity of every query with every key, a softmax that turns each row of
# scores into weights summing to 1, and a weighted sum of the values. The $\sqrt d$ keeps the
# scores' variance near 1 when the entries of $q$ and $k$ have unit variance (a dot product
# of $d$ such terms has variance $d$); without it the softmax saturates and its gradients vanish.
#
# The mask $M$ holds $0$ where a query may look and $-\infty$ where it may not, so that
# $e^{-\infty} = 0$ removes the key *before* the normalisation. Two masks matter:
#
# - **causal**: a token may not look at later tokens. We number positions so that the last
#   query lines up with the last key: query $i$ sits at position $T_k - T_q + i$ and may see
#   keys $j \le T_k - T_q + i$. When $T_q = T_k$ this is the usual lower triangle; when a
#   single new token is decoded against a cache ($T_q = 1$) it sees every key. (Careful:
#   `scaled_dot_product_attention(..., is_causal=True)` aligns the *top-left* corner instead,
#   which is only the same thing when $T_q = T_k$.)
# - **key padding**: a batch of sequences of different lengths is padded to one length; the
#   mask `key_padding_mask[b, j] = True` marks real tokens, `False` marks padding that no
#   query may attend to (the convention of Hugging Face's `attention_mask`).
#
# **A fully masked row** (a query that may see no key at all) has scores all $-\infty$, and
# the softmax becomes $0/0 = \text{NaN}$. NaNs then spread through every later layer. We
# follow PyTorch's fused kernels and FlashAttention: such a row's output is **all zeros**.
#
# Everything is batched: `q` has shape `(B, H, T_q, d)`, `k` and `v` have shape `(B, H, T_k, d)`;
# `@` multiplies the last two dimensions and broadcasts over the others, so no Python loop
# over batch or heads is needed.
#
# **Scale and precision.** Trained models produce scores spread by hundreds, and rows whose
# scores are all very negative: $e^{300}$ overflows and $e^{-300}$ underflows to 0 even in
# float32, so a softmax written by hand must shift each row by its own maximum (unit 01);
# `torch.softmax` already does. The tests use such scores, and bfloat16 and float16 inputs
# as well as float32 and float64. Build masks on `q.device` (`device=q.device`): code that
# creates tensors on the default device works on a CPU and fails on a GPU, and the tests
# check it cheaply on PyTorch's `meta` device (tensors with shapes but no data). And never
# modify the caller's tensors in place.

# %% answer id=sdpa
def attention(q, k, v, causal=False, key_padding_mask=None):
    """Scaled dot-product attention, batched over (batch, heads).

    q: (B, H, T_q, d); k, v: (B, H, T_k, d); float32, float64, bfloat16 or float16, possibly
    non-contiguous, on any device (including "meta": create every tensor on q.device).
    causal: if True, query i (at position T_k - T_q + i) sees only keys j <= T_k - T_q + i.
    key_padding_mask: None, or a bool tensor (B, T_k), True = real token, False = padding.
    Returns (B, H, T_q, d), same dtype as q. A query with no visible key returns zeros.
    Stable for scores spread by hundreds and for rows whose scores are all very negative.
    The inputs are not modified.
    """
    ### BEGIN SOLUTION
    t_q, t_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)
    visible = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device)
    if causal:
        visible = torch.tril(visible, diagonal=t_k - t_q)
    if key_padding_mask is not None:
        visible = visible & key_padding_mask.bool()[:, None, None, :]
    scores = scores.masked_fill(~visible, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    # A row with no visible key is all -inf: softmax gives 0/0 = NaN there; make it 0.
    weights = torch.nan_to_num(weights, nan=0.0)
    return weights @ v
    ### END SOLUTION

# %% test id=test_sdpa_visible points=1
# A tiny worked example: 1 batch, 1 head, 3 tokens, d = 1.
q0 = torch.tensor([[[[1.0], [0.0], [2.0]]]])
k0 = torch.tensor([[[[1.0], [1.0], [0.0]]]])
v0 = torch.tensor([[[[10.0], [20.0], [30.0]]]])
out0 = attention(q0, k0, v0, causal=True)
assert_shape(out0, (1, 1, 3, 1), name="attention(q, k, v, causal=True)")
# Query 0 sees only key 0 -> 10; query 1 has equal scores on keys 0 and 1 -> 15;
# query 2 weights keys 0, 1, 2 by softmax([2, 2, 0]). Exact up to float32 round-off (1e-5).
w = torch.softmax(torch.tensor([2.0, 2.0, 0.0]), 0)
expected0 = torch.tensor([10.0, 15.0, float(w @ torch.tensor([10.0, 20.0, 30.0]))]).reshape(1, 1, 3, 1)
assert_close(out0, expected0, rtol=1e-5, atol=1e-5, name="attention on the 3-token example")
# More keys than queries (T_q = 2, T_k = 4), as when new tokens attend to a cache: query 0
# sits at position 2 and sees keys 0..2, query 1 sits at position 3 and sees all four.
q2 = torch.tensor([[[[0.0], [0.0]]]])
out2 = attention(q2, k0.new_ones(1, 1, 4, 1), torch.tensor([[[[1.0], [2.0], [3.0], [4.0]]]]), causal=True)
# Zero scores give equal weights: the mean of the visible values (exact up to round-off).
assert_close(out2, torch.tensor([[[[2.0], [2.5]]]]), rtol=1e-6, atol=1e-6,
             name="attention(causal=True) with T_q=2, T_k=4 (expected the means of values 1..3 and 1..4)")
# One random batched case against PyTorch's fused kernel.
torch.manual_seed(1)
q1, k1, v1 = (torch.randn(2, 3, 6, 8, device=device) for _ in range(3))
# float32 round-off: both sum 8 products and 6 weighted values, in different orders.
assert_close(attention(q1, k1, v1, causal=True), F.scaled_dot_product_attention(q1, k1, v1, is_causal=True),
             rtol=1e-4, atol=1e-5, name="attention(causal=True) vs scaled_dot_product_attention")

# %% test id=test_sdpa_hidden points=3
### BEGIN HIDDEN TESTS
def _oracle(q, k, v, causal=False, key_padding_mask=None):
    t_q, t_k = q.shape[-2], k.shape[-2]
    allowed = torch.ones(q.shape[0], 1, t_q, t_k, dtype=torch.bool, device=q.device)
    if causal:
        rows = torch.arange(t_q, device=q.device)[:, None] + (t_k - t_q)
        allowed = allowed & (torch.arange(t_k, device=q.device)[None, :] <= rows)
    if key_padding_mask is not None:
        allowed = allowed & key_padding_mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


torch.manual_seed(2)
# float32: the fused kernel sums in another order (and in blocks); errors are ~1e-6 for these
# sizes, so 1e-5 absolute leaves a margin while a wrong scale or mask errs by > 1e-2.
for (b, h, t_q, t_k, d) in [(2, 4, 16, 16, 32), (3, 2, 7, 7, 64), (1, 3, 5, 12, 16), (2, 2, 1, 9, 8)]:
    q, k, v = torch.randn(b, h, t_q, d, device=device), torch.randn(b, h, t_k, d, device=device), torch.randn(b, h, t_k, d, device=device)
    pad = torch.rand(b, t_k, device=device) > 0.3
    pad[:, -1] = True  # every query keeps at least the last key
    for causal in (False, True):
        for kpm in (None, pad):
            assert_close(attention(q, k, v, causal=causal, key_padding_mask=kpm), _oracle(q, k, v, causal, kpm),
                         rtol=1e-4, atol=1e-5,
                         name=f"attention(causal={causal}, padding={kpm is not None}) for T_q={t_q}, T_k={t_k}, d={d}")
# Scores grow with d: a wrong scale (d instead of sqrt(d)) must show up.
q, k, v = (3 * torch.randn(1, 2, 8, 64, device=device) for _ in range(3))
assert_close(attention(q, k, v), F.scaled_dot_product_attention(q, k, v), rtol=1e-4, atol=1e-5,
             name="attention with large scores (is the scale 1/sqrt(d)?)")
# Length 1.
q, k, v = (torch.randn(2, 2, 1, 4, device=device) for _ in range(3))
assert_close(attention(q, k, v, causal=True), v, rtol=1e-6, atol=1e-6, name="attention with T = 1 (must return v)")
# Non-contiguous inputs: heads made by a transpose, as in a real model.
x = torch.randn(2, 10, 4, 16, device=device)  # (B, T, H, d)
qn, kn, vn = x.transpose(1, 2), x.flip(1).transpose(1, 2), (2 * x).transpose(1, 2)
assert not qn.is_contiguous()
assert_close(attention(qn, kn, vn, causal=True), _oracle(qn.contiguous(), kn.contiguous(), vn.contiguous(), True),
             rtol=1e-4, atol=1e-5, name="attention on non-contiguous (transposed) inputs")
# float64: the result keeps the dtype and matches to float64 round-off (1e-12 relative).
q, k, v = (torch.randn(2, 3, 9, 16, dtype=torch.float64, device=device) for _ in range(3))
out64 = attention(q, k, v, causal=True)
assert_dtype(out64, torch.float64, name="attention on float64 inputs")
assert_close(out64, _oracle(q, k, v, True), rtol=1e-10, atol=1e-12, name="attention in float64")
# A fully masked row returns zeros (not NaN), like PyTorch's fused kernel.
q, k, v = (torch.randn(2, 2, 4, 8, device=device) for _ in range(3))
kpm = torch.tensor([[True, True, False, True], [False, False, False, False]], device=device)
got = attention(q, k, v, key_padding_mask=kpm)
assert_close(got[1], torch.zeros_like(got[1]), rtol=0, atol=0,
             name="attention for a sequence whose keys are all padding (expected zeros)")
assert_close(got, _oracle(q, k, v, False, kpm), rtol=1e-4, atol=1e-5, name="attention with a fully masked sequence")
assert_close(attention(q, k, v, causal=True, key_padding_mask=kpm), _oracle(q, k, v, True, kpm), rtol=1e-4, atol=1e-5,
             name="attention(causal=True) with a fully masked sequence")
# Scores spread by hundreds: rows around +200 and rows around -200 (every score very
# negative). Without a per-row max shift, exp overflows (inf/inf) or underflows (0/0).
u = torch.randn(16, device=device)
u = u / u.norm()
sign = torch.tensor([1.0, -1.0], device=device).repeat(6)[:, None]  # alternate rows +, -
q = sign * 30 * u + torch.randn(2, 2, 12, 16, device=device)
k, v = 30 * u + 3 * torch.randn(2, 2, 12, 16, device=device), torch.randn(2, 2, 12, 16, device=device)
pad = torch.rand(2, 12, device=device) > 0.3
pad[:, 0] = True  # a causal row sees key 0 at least
for causal in (False, True):
    # float32 scores of size ~250 carry ~2e-5 absolute round-off: weights move by ~2e-5 relative.
    assert_close(attention(q, k, v, causal=causal, key_padding_mask=pad if causal else None),
                 _oracle(q, k, v, causal, pad if causal else None), rtol=1e-4, atol=1e-4,
                 name=f"attention(causal={causal}) with scores spread by hundreds (rows of +-250)")
# bfloat16 and float16: scores -(200 + j) and +(200 + j), exact in both formats, so only the
# softmax and the weighted sum round; an unshifted exp gives 0/0 or inf/inf.
t = 8
q = torch.zeros(2, 1, t, 4, device=device)
q[..., 0] = torch.tensor([-2.0, 2.0], device=device).repeat(t // 2)
k = torch.zeros(2, 1, t, 4, device=device)
k[..., 0] = 200 + torch.arange(t, device=device)
v = torch.randn(2, 1, t, 4, device=device)
for dtype in (torch.bfloat16, torch.float16):
    for causal in (False, True):
        ql, kl, vl = q.to(dtype), k.to(dtype), v.to(dtype)
        got = attention(ql, kl, vl, causal=causal)
        assert_dtype(got, dtype, name=f"attention on {dtype} inputs")
        expected = _oracle(ql.double(), kl.double(), vl.double(), causal)
        # bf16 keeps 8 significant bits (relative 4e-3), fp16 11: a few roundings of values ~1.
        assert_close(got.double(), expected, rtol=2e-2, atol=2e-2,
                     name=f"attention(causal={causal}) in {dtype} with scores of -(200 + j) and +(200 + j)")
    ql, kl, vl = (torch.randn(2, 3, 7, 16, device=device).to(dtype) for _ in range(3))
    assert_close(attention(ql, kl, vl, causal=True, key_padding_mask=pad[:2, :7]).double(),
                 _oracle(ql.double(), kl.double(), vl.double(), True, pad[:2, :7]), rtol=2e-2, atol=2e-2,
                 name=f"attention(causal=True, padding) on random {dtype} inputs")
# Any device: on "meta" (shapes, no data) a tensor made without device=q.device fails.
qm, km = torch.empty(2, 3, 4, 8, device="meta"), torch.empty(2, 3, 6, 8, device="meta")
try:
    out_m = attention(qm, km, km, causal=True, key_padding_mask=torch.ones(2, 6, dtype=torch.bool, device="meta"))
except (RuntimeError, NotImplementedError) as e:
    raise AssertionError(f"attention on the meta device: expected a (2, 3, 4, 8) meta tensor, got "
                         f"{type(e).__name__}: {e} (create every tensor on q.device)") from None
assert out_m.device.type == "meta" and tuple(out_m.shape) == (2, 3, 4, 8), (
    f"attention on the meta device: expected a (2, 3, 4, 8) meta tensor, got {tuple(out_m.shape)} on {out_m.device}")
# The inputs are not modified.
q, k, v = (torch.randn(2, 2, 5, 8, device=device) for _ in range(3))
kpm = torch.tensor([[True, True, False, True, True], [True, False, True, True, True]], device=device)
before = [t.clone() for t in (q, k, v, kpm)]
attention(q, k, v, causal=True, key_padding_mask=kpm)
for arg, b_, a_ in zip(("q", "k", "v", "key_padding_mask"), before, (q, k, v, kpm), strict=True):
    assert torch.equal(a_, b_), f"attention modified its argument {arg} in place: expected it unchanged"
### END HIDDEN TESTS
assert True

# %% [markdown]
# Below, a picture of what the causal weights look like. Trick worth remembering: with
# $V = I$ (the identity), $O = P V = P$, so attention returns its own weight matrix.

# %%
torch.manual_seed(0)
T_demo = 12
qd, kd = torch.randn(1, 1, T_demo, 16), torch.randn(1, 1, T_demo, 16)
weights_demo = attention(qd, kd, torch.eye(T_demo)[None, None], causal=True)[0, 0]
fig, ax = plt.subplots(figsize=(4.5, 4))
im = ax.imshow(weights_demo.cpu(), cmap="viridis")
ax.set_xlabel("key position j")
ax.set_ylabel("query position i")
ax.set_title("causal attention weights (rows sum to 1)")
fig.colorbar(im, ax=ax)
plt.show()

# %% [markdown]
# ## 2. Rotary position embeddings (RoPE)
#
# Attention by itself is blind to order: permute the keys and values together and the
# output does not change. RoPE (Su et al., 2021; used by Llama, Mistral, Qwen, ...) makes
# the score depend on *how far apart* two tokens are by rotating $q$ and $k$. Split the
# head dimension $d$ into $d/2$ pairs; pair $i$ at position $m$ is rotated by the angle
# $m\,\theta_i$ with
#
# $$ \theta_i = \text{base}^{-2i/d}, \qquad i = 0, \dots, d/2 - 1, \quad \text{base} = 10\,000 .$$
#
# Since rotations compose, $\langle R_m q, R_n k \rangle = \langle q, R_{n-m} k\rangle$: the
# score depends only on the offset $n - m$. Low $i$ rotate fast (fine position), high $i$
# slowly (coarse position).
#
# **Which dimensions form a pair?** The paper, and Meta's original Llama code, pair
# neighbours $(x_0, x_1), (x_2, x_3), \dots$ ("interleaved": Meta's code views each pair as
# one complex number and multiplies it by $e^{i m\theta_i}$). Hugging Face's `transformers`
# pairs dimension $i$ with $i + d/2$ ("half-split"):
#
# $$ \operatorname{rope}(x) = x \odot \cos\phi + \operatorname{rotate\_half}(x) \odot \sin\phi,
#    \qquad \operatorname{rotate\_half}(x) = (-x_{d/2:},\ x_{:d/2}),$$
#
# where $\phi = (m\theta_0, \dots, m\theta_{d/2-1},\ m\theta_0, \dots, m\theta_{d/2-1})$ repeats
# the angles once for each half. Both are rotations by the same angles; they differ in which
# coordinates of $q$ and $k$ turn together. So the same Llama model exists in two layouts:
# Hugging Face's conversion script *permutes the rows* of each head in `q_proj` and `k_proj`
# so that half-split RoPE on the converted weights gives exactly the scores interleaved RoPE
# gave on Meta's (section 2b below). Switching conventions means permuting weights, not only
# changing code: load weights of one layout into code of the other and the model still
# runs, silently producing garbage. We use the half-split convention, as `transformers` does.
#
# Positions start at 0: the first token is not rotated at all.

# %% answer id=rope
def rope_cos_sin(position_ids, head_dim, base=10000.0):
    """cos and sin of the RoPE angles, half-split layout.

    position_ids: integer tensor of shape (T,) or (B, T), on any device (including "meta").
    Returns (cos, sin), each float32 of shape position_ids.shape + (head_dim,), on
    position_ids' device, where entry [..., t, j] uses the angle
    position * base ** (-2 * (j mod head_dim/2) / head_dim).
    """
    ### BEGIN SOLUTION
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device=position_ids.device) / head_dim
    inv_freq = 1.0 / (base ** exponents)  # (head_dim/2,)
    angles = position_ids.to(torch.float32)[..., None] * inv_freq
    angles = torch.cat([angles, angles], dim=-1)  # the same angle for dims i and i + head_dim/2
    return angles.cos(), angles.sin()
    ### END SOLUTION


def apply_rope(x, cos, sin):
    """Rotate x (B, H, T, head_dim) by the angles in cos, sin of shape (T, head_dim) or
    (B, T, head_dim) (the same for every head). Returns a new tensor shaped like x, of x's
    dtype (bfloat16 x with float32 cos, sin gives bfloat16); x is not modified."""
    ### BEGIN SOLUTION
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    cos, sin = cos.unsqueeze(-3).to(x.dtype), sin.unsqueeze(-3).to(x.dtype)  # broadcast over heads
    return x * cos + rotated * sin
    ### END SOLUTION

# %% test id=test_rope_visible points=1
cos0, sin0 = rope_cos_sin(torch.arange(5), 8)
assert_shape(cos0, (5, 8), name="cos from rope_cos_sin(arange(5), 8)")
assert_shape(sin0, (5, 8), name="sin from rope_cos_sin(arange(5), 8)")
# Position 0 is not rotated: cos = 1, sin = 0 (exact).
assert_close(cos0[0], torch.ones(8), rtol=0, atol=0, name="cos at position 0")
assert_close(sin0[0], torch.zeros(8), rtol=0, atol=0, name="sin at position 0")
# Pair 0 turns by exactly 1 radian per position (theta_0 = 1); float32 cos/sin are accurate to ~1e-7.
assert_close(cos0[:, 0], torch.cos(torch.arange(5.0)), rtol=0, atol=1e-6, name="cos[:, 0] (theta_0 = 1)")
xr = torch.randn(1, 2, 5, 8)
yr = apply_rope(xr, cos0, sin0)
assert_shape(yr, (1, 2, 5, 8), name="apply_rope(x, cos, sin)")
# A rotation keeps lengths (float32 round-off ~1e-6).
assert_close(yr.norm(dim=-1), xr.norm(dim=-1), rtol=1e-5, atol=1e-5, name="|apply_rope(x)| (rotations keep lengths)")

# %% test id=test_rope_hidden points=2
### BEGIN HIDDEN TESTS
torch.manual_seed(3)
for head_dim, base, t in [(8, 10000.0, 40), (64, 10000.0, 300), (16, 500.0, 17)]:
    cfg = LlamaConfig(hidden_size=4 * head_dim, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=head_dim, rope_theta=base)
    rotary = LlamaRotaryEmbedding(cfg).to(device)
    pos = torch.stack([torch.arange(t), torch.arange(t) + 7]).to(device)  # (B=2, T)
    x_like = torch.zeros(2, t, head_dim, device=device)
    cos_ref, sin_ref = rotary(x_like, pos)
    cos_got, sin_got = rope_cos_sin(pos, head_dim, base)
    # Same float32 products; cos/sin of angles up to ~300 rad are reproducible to ~1e-5.
    assert_close(cos_got, cos_ref, rtol=0, atol=2e-5, name=f"rope_cos_sin cos vs Llama's (head_dim={head_dim}, base={base})")
    assert_close(sin_got, sin_ref, rtol=0, atol=2e-5, name=f"rope_cos_sin sin vs Llama's (head_dim={head_dim}, base={base})")
    q = torch.randn(2, 4, t, head_dim, device=device)
    k = torch.randn(2, 2, t, head_dim, device=device)
    q_ref, k_ref = apply_rotary_pos_emb(q, k, cos_ref, sin_ref)
    # Two products and a sum per entry in float32: ~1e-6, with angles' error on top.
    assert_close(apply_rope(q, cos_ref, sin_ref), q_ref, rtol=1e-5, atol=1e-4,
                 name=f"apply_rope vs Llama's apply_rotary_pos_emb (head_dim={head_dim})")
    assert_close(apply_rope(k, cos_ref[0], sin_ref[0]), apply_rotary_pos_emb(k, k, cos_ref[:1], sin_ref[:1])[0],
                 rtol=1e-5, atol=1e-4, name="apply_rope with cos, sin of shape (T, head_dim)")
# The score depends only on the offset: <rope(q, m), rope(k, n)> == <rope(q, m+s), rope(k, n+s)>.
q, k = torch.randn(1, 1, 1, 32, dtype=torch.float64), torch.randn(1, 1, 1, 32, dtype=torch.float64)
def _score(m, n):
    cq, sq = rope_cos_sin(torch.tensor([m]), 32)
    ck, sk = rope_cos_sin(torch.tensor([n]), 32)
    return (apply_rope(q, cq.double(), sq.double()) * apply_rope(k, ck.double(), sk.double())).sum()
# float32 angles of positions up to ~60: ~1e-5 absolute on a score of size ~5.
assert_close(_score(3, 10), _score(53, 60), rtol=1e-4, atol=1e-4, name="RoPE score at offset 7 from positions (3,10) vs (53,60)")
# The default base is 10000 (Llama's rope_theta).
cfg = LlamaConfig(hidden_size=32, num_attention_heads=2, head_dim=16, rope_theta=10000.0)
cos_ref, _ = LlamaRotaryEmbedding(cfg).to(device)(torch.zeros(1, 50, 16, device=device), torch.arange(50, device=device)[None])
assert_close(rope_cos_sin(torch.arange(50, device=device), 16)[0], cos_ref[0], rtol=0, atol=2e-5,
             name="rope_cos_sin(positions, 16) with the default base vs Llama's with rope_theta=10000")
# bfloat16 x: rotated in bfloat16 (or in float32 and cast back), not promoted to float32.
cos_b, sin_b = rope_cos_sin(torch.arange(9, device=device), 16)
xb = torch.randn(2, 3, 9, 16, device=device).to(torch.bfloat16)
xb_before = xb.clone()
yb = apply_rope(xb, cos_b, sin_b)
assert_dtype(yb, torch.bfloat16, name="apply_rope on a bfloat16 x with float32 cos, sin")
assert torch.equal(xb, xb_before), "apply_rope modified x in place: expected x unchanged"
q_ref = apply_rotary_pos_emb(xb.double(), xb.double(), cos_b.double()[None], sin_b.double()[None])[0]
# bf16: 8 significant bits, values of size ~3: a few roundings.
assert_close(yb.double(), q_ref, rtol=2e-2, atol=3e-2, name="apply_rope in bfloat16 vs Llama's in float64")
# Any device: positions on "meta" give cos, sin on "meta" (no tensor made on the default device).
try:
    cos_m, sin_m = rope_cos_sin(torch.arange(5, device="meta"), 8)
    y_m = apply_rope(torch.empty(1, 2, 5, 8, device="meta"), cos_m, sin_m)
except (RuntimeError, NotImplementedError) as e:
    raise AssertionError(f"rope_cos_sin / apply_rope on the meta device: expected meta tensors, got "
                         f"{type(e).__name__}: {e} (create tensors on position_ids.device)") from None
assert cos_m.device.type == "meta" and tuple(cos_m.shape) == (5, 8) and cos_m.dtype == torch.float32, (
    f"rope_cos_sin(positions on meta, 8): expected float32 (5, 8) on meta, got {cos_m.dtype} "
    f"{tuple(cos_m.shape)} on {cos_m.device}")
assert y_m.device.type == "meta" and tuple(y_m.shape) == (1, 2, 5, 8), (
    f"apply_rope on meta: expected (1, 2, 5, 8) on meta, got {tuple(y_m.shape)} on {y_m.device}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 2b. One model, two layouts: converting a checkpoint between RoPE conventions
#
# Meta's Llama checkpoints were trained with interleaved RoPE: within each head, coordinates
# $(2i, 2i+1)$ of $q$ and $k$ turn together by the angle $m\theta_i$. Half-split code turns
# coordinates $(i, i + d/2)$ by that angle. Reorder each head's coordinates so that the two
# members of interleaved pair $i$ land at positions $i$ and $i + d/2$, in that order, and
# the half-split rotation of the reordered vector is exactly the reordered interleaved
# rotation (same pair, same angle, same direction). An attention score is a dot product,
# and a dot product does not change when both vectors' coordinates are reordered the same
# way. Reordering the coordinates of $q = W_q x + b_q$ is reordering the *rows* of $W_q$ and
# $b_q$; so converting a checkpoint permutes the rows of `q_proj` and `k_proj` (weights and
# biases, if any), head by head, and leaves `v_proj` and `o_proj` alone.
#
# The locked cell below applies RoPE as Meta's code does (complex multiplication of
# neighbouring pairs), and the cell after it shows what goes wrong without the permutation.

# %% setup id=rope_layouts
def apply_rope_interleaved(x, position_ids, base=10000.0):
    """RoPE in Meta's original layout. x: (..., T, head_dim); position_ids: (T,).
    Dimensions (2i, 2i+1) form the complex number x_2i + 1j * x_2i+1, multiplied by
    exp(1j * position * theta_i), theta_i = base ** (-2i / head_dim). Computed in float64."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)
    angles = position_ids.to(torch.float64)[..., None] * theta  # (T, d/2)
    pairs = torch.view_as_complex(x.to(torch.float64).unflatten(-1, (d // 2, 2)).contiguous())
    turned = pairs * torch.polar(torch.ones_like(angles), angles)
    return torch.view_as_real(turned).flatten(-2).to(x.dtype)


def rope_half_split_llama(x, position_ids, base=10000.0):
    """Hugging Face's half-split RoPE (transformers' own functions). x: (H, T, head_dim)."""
    head_dim = x.shape[-1]
    config = LlamaConfig(hidden_size=head_dim, num_attention_heads=1, head_dim=head_dim, rope_theta=base)
    cos, sin = LlamaRotaryEmbedding(config).to(x.device)(x, position_ids[None])
    return apply_rotary_pos_emb(x[None], x[None], cos, sin)[0][0]

# %%
torch.manual_seed(0)
w_q_meta, w_k_meta = torch.randn(8, 12), torch.randn(8, 12)  # one head of head_dim 8, hidden 12
x_demo, pos_demo = torch.randn(6, 12), torch.arange(6)
scores_meta = apply_rope_interleaved(x_demo @ w_q_meta.T, pos_demo) @ apply_rope_interleaved(x_demo @ w_k_meta.T, pos_demo).T
scores_unconverted = (rope_half_split_llama((x_demo @ w_q_meta.T)[None], pos_demo)
                      @ rope_half_split_llama((x_demo @ w_k_meta.T)[None], pos_demo).mT)[0]
print("largest score difference, Meta's weights in half-split code without conversion:",
      f"{(scores_unconverted - scores_meta).abs().max().item():.2f} (scores of size ~{scores_meta.abs().mean().item():.0f})")

# %% answer id=rope_permute
def permute_for_half_split(w, num_heads):
    """Convert q_proj or k_proj parameters from Meta's interleaved RoPE layout to the
    half-split layout: half-split RoPE on the result's projections gives the same attention
    scores as interleaved RoPE on w's.

    w: a weight (num_heads * head_dim, in_features) or a bias (num_heads * head_dim,); any
    dtype, any device (including "meta"). num_heads: this projection's heads (num_kv_heads
    for k_proj); head_dim = w.shape[0] // num_heads, whatever in_features is.
    Returns a new tensor with w's shape, dtype and device (a pure reordering of rows, so
    exact in every dtype); w is not modified.
    """
    ### BEGIN SOLUTION
    head_dim = w.shape[0] // num_heads
    # rows of a head: (pair i, member 0/1) -> (member 0/1, pair i): first members, then second members
    pairs = w.reshape(num_heads, head_dim // 2, 2, *w.shape[1:])
    return pairs.transpose(1, 2).reshape(w.shape)
    ### END SOLUTION

# %% test id=test_rope_permute_visible points=1
torch.manual_seed(15)
w_q15, w_k15 = torch.randn(8, 12, device=device), torch.randn(8, 12, device=device)  # 1 head, head_dim 8
x15, pos15 = torch.randn(6, 12, device=device), torch.arange(6, device=device)
wq15_hf = permute_for_half_split(w_q15, 1)
assert_shape(wq15_hf, (8, 12), name="permute_for_half_split(w of shape (8, 12), 1)")
meta15 = apply_rope_interleaved(x15 @ w_q15.T, pos15) @ apply_rope_interleaved(x15 @ w_k15.T, pos15).T
hf15 = (rope_half_split_llama((x15 @ wq15_hf.T)[None], pos15)
        @ rope_half_split_llama((x15 @ permute_for_half_split(w_k15, 1).T)[None], pos15).mT)[0]
# float32 products in another order: ~1e-6 on scores of size ~10.
assert_close(hf15, meta15, rtol=1e-4, atol=1e-4,
             name="half-split scores with the permuted weights vs interleaved scores with the original ones")

# %% test id=test_rope_permute_hidden points=1
### BEGIN HIDDEN TESTS
torch.manual_seed(16)
# GQA (4 query heads, 2 kv heads), head_dim 16 with in_features 48 (not heads * head_dim), biases,
# positions with gaps.
heads, kv_heads, hd, hidden, t = 4, 2, 16, 48, 10
wq, bq = torch.randn(heads * hd, hidden, device=device), torch.randn(heads * hd, device=device)
wk, bk = torch.randn(kv_heads * hd, hidden, device=device), torch.randn(kv_heads * hd, device=device)
x, pos = torch.randn(t, hidden, device=device), 3 * torch.arange(t, device=device)
before = [w_.clone() for w_ in (wq, bq, wk, bk)]
def _per_head(y, n):
    return y.view(t, n, hd).transpose(0, 1)  # (n, T, hd)
q_meta = apply_rope_interleaved(_per_head(x @ wq.T + bq, heads), pos)
k_meta = apply_rope_interleaved(_per_head(x @ wk.T + bk, kv_heads), pos).repeat_interleave(heads // kv_heads, 0)
wq_hf, bq_hf = permute_for_half_split(wq, heads), permute_for_half_split(bq, heads)
wk_hf, bk_hf = permute_for_half_split(wk, kv_heads), permute_for_half_split(bk, kv_heads)
assert_shape(bq_hf, (heads * hd,), name="permute_for_half_split(bias of shape (64,), 4)")
q_hf = rope_half_split_llama(_per_head(x @ wq_hf.T + bq_hf, heads), pos)
k_hf = rope_half_split_llama(_per_head(x @ wk_hf.T + bk_hf, kv_heads), pos).repeat_interleave(heads // kv_heads, 0)
# float32: the same products in another order, ~1e-5 on scores of size ~50.
assert_close(q_hf @ k_hf.mT, q_meta @ k_meta.mT, rtol=1e-4, atol=1e-3,
             name="scores of converted q_proj/k_proj with biases (4 heads, 2 kv heads, head_dim 16, in_features 48)")
for arg, b_, a_ in zip(("wq", "bq", "wk", "bk"), before, (wq, bq, wk, bk), strict=True):
    assert torch.equal(a_, b_), f"permute_for_half_split modified its argument ({arg}) in place: expected it unchanged"
# A reordering is exact in any dtype.
wb = wq.to(torch.bfloat16)
got_b = permute_for_half_split(wb, heads)
assert_dtype(got_b, torch.bfloat16, name="permute_for_half_split on a bfloat16 weight")
assert torch.equal(got_b.float(), permute_for_half_split(wb.float(), heads)), (
    "permute_for_half_split in bfloat16: expected exactly the float32 reordering of the same values")
try:
    got_m = permute_for_half_split(torch.empty(64, 48, device="meta"), 4)
except (RuntimeError, NotImplementedError) as e:
    raise AssertionError(f"permute_for_half_split on the meta device: expected a (64, 48) meta tensor, got "
                         f"{type(e).__name__}: {e}") from None
assert got_m.device.type == "meta" and tuple(got_m.shape) == (64, 48), (
    f"permute_for_half_split on meta: expected (64, 48) on meta, got {tuple(got_m.shape)} on {got_m.device}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 3. Multi-head and grouped-query attention
#
# A layer projects each token's hidden vector $x \in \mathbb{R}^{D}$ to $H$ query heads, and
# to $H_{kv}$ key and value heads, each of size $d$ (`head_dim`):
#
# $$ Q = X W_q^\top \in \mathbb{R}^{T \times H d},\quad K = X W_k^\top,\ V = X W_v^\top \in \mathbb{R}^{T\times H_{kv} d},
#    \qquad \text{out} = \operatorname{concat}_h(O_h)\, W_o^\top .$$
#
# Reshape `(B, T, H*d)` to `(B, T, H, d)` and *then* transpose to `(B, H, T, d)`: the
# features of one head are contiguous within a token, so `view(B, H, T, d)` directly would
# mix tokens and heads. Apply RoPE to $Q$ and $K$ (never to $V$), then causal attention.
#
# **Grouped-query attention** (GQA; Llama 2 70B, Llama 3, Mistral) uses $H_{kv} < H$: each
# key/value head serves a *group* of $H/H_{kv}$ consecutive query heads. Query head $h$ uses
# key/value head $\lfloor h / (H/H_{kv}) \rfloor$. To reuse plain attention, copy each kv
# head $H/H_{kv}$ times *next to itself*: `[k0, k0, k0, k0, k1, k1, ...]`, which is
# `repeat_interleave` on the head dimension (`repeat` would give `[k0, k1, k0, k1, ...]`,
# pairing query heads with the wrong keys). $H_{kv} = H$ is ordinary multi-head attention,
# $H_{kv} = 1$ is multi-query attention. The payoff comes in section 6: the KV cache
# shrinks by $H / H_{kv}$.
#
# The projection names (`q_proj`, `k_proj`, `v_proj`, `o_proj`) are those of Llama's
# `LlamaAttention`, so its `state_dict` loads into yours and back. Llama has no biases, but
# some checkpoints of the same family do (`attention_bias=True` in the config, as in Qwen 2):
# `bias=True` gives all four projections one, so call the projections as modules. The
# per-head size `head_dim` need not be `hidden_size / num_heads` (Gemma, Qwen 3, and the
# configs of the tests): use `self.head_dim` everywhere. Read `LlamaAttention`'s source
# (`transformers/models/llama/modeling_llama.py`) once you are done: it should look familiar.

# %% answer id=mha
def repeat_kv(x, n_rep):
    """(B, H_kv, T, d) -> (B, H_kv * n_rep, T, d): each kv head repeated n_rep times in a row."""
    ### BEGIN SOLUTION
    return x.repeat_interleave(n_rep, dim=1)
    ### END SOLUTION


class Attention(torch.nn.Module):
    """Causal self-attention with RoPE and grouped-query attention, Llama-style."""

    def __init__(self, hidden_size, num_heads, num_kv_heads, head_dim=None, rope_base=10000.0, bias=False):
        super().__init__()
        if num_heads % num_kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = head_dim or hidden_size // num_heads
        self.rope_base = rope_base
        self.q_proj = torch.nn.Linear(hidden_size, num_heads * self.head_dim, bias=bias)
        self.k_proj = torch.nn.Linear(hidden_size, num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = torch.nn.Linear(hidden_size, num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = torch.nn.Linear(num_heads * self.head_dim, hidden_size, bias=bias)

    def forward(self, x, position_ids=None, key_padding_mask=None):
        """x: (B, T, hidden_size). position_ids: None (meaning 0..T-1), (T,) or (B, T).
        key_padding_mask: None or bool (B, T), True = real token.
        Returns (B, T, hidden_size): causal attention with RoPE applied to q and k, in the
        module's dtype (float32, bfloat16, ...), on its device (including "meta"), with the
        projections' biases when bias=True."""
        ### BEGIN SOLUTION
        b, t, _ = x.shape
        if position_ids is None:
            position_ids = torch.arange(t, device=x.device)
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rope_cos_sin(position_ids, self.head_dim, self.rope_base)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        groups = self.num_heads // self.num_kv_heads
        out = attention(q, repeat_kv(k, groups), repeat_kv(v, groups), causal=True, key_padding_mask=key_padding_mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim))
        ### END SOLUTION

# %% test id=test_mha_visible points=1
torch.manual_seed(4)
kv_demo = torch.arange(2.0).reshape(1, 2, 1, 1)
assert_close(repeat_kv(kv_demo, 3).flatten(), torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]), rtol=0, atol=0,
             name="repeat_kv([k0, k1], 3) (expected [k0, k0, k0, k1, k1, k1])")
layer = Attention(hidden_size=32, num_heads=4, num_kv_heads=2).to(device)
xa = torch.randn(2, 5, 32, device=device)
ya = layer(xa)
assert_shape(ya, (2, 5, 32), name="Attention(32, 4, 2)(x of shape (2, 5, 32))")
# Causality: changing the last token must not change the outputs of earlier tokens (exact:
# the same arithmetic runs on the same numbers).
xb = xa.clone()
xb[:, -1] = 0.0
assert_close(layer(xb)[:, :-1], ya[:, :-1], rtol=0, atol=1e-6, name="outputs of tokens 0..3 after changing token 4")

# %% test id=test_mha_hidden points=3
### BEGIN HIDDEN TESTS
def _llama_layer(mine, hidden, heads, kv_heads, head_dim, base):
    cfg = LlamaConfig(hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      head_dim=head_dim, rope_theta=base, attn_implementation="eager")
    ref = LlamaAttention(cfg, layer_idx=0).to(device).eval()
    ref.load_state_dict(mine.state_dict())
    return ref, LlamaRotaryEmbedding(cfg).to(device)


def _additive_mask(allowed, dtype):
    # eager Llama wants (B, 1, T, T) floats: 0 where allowed, the most negative float elsewhere.
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


torch.manual_seed(5)
for hidden, heads, kv_heads, head_dim, base, t in [(64, 8, 2, 8, 10000.0, 11), (48, 4, 4, 12, 10000.0, 9),
                                                   (64, 8, 1, 16, 500.0, 7), (96, 6, 3, 16, 10000.0, 20)]:
    mine = Attention(hidden, heads, kv_heads, head_dim=head_dim, rope_base=base).to(device)
    ref, rotary = _llama_layer(mine, hidden, heads, kv_heads, head_dim, base)
    x = torch.randn(2, t, hidden, device=device)
    pos = torch.arange(t, device=device)[None].expand(2, t)
    causal = torch.ones(t, t, dtype=torch.bool, device=device).tril()[None, None]
    with torch.no_grad():
        expected, _ = ref(x, position_embeddings=rotary(x, pos), attention_mask=_additive_mask(causal, x.dtype))
        got = mine(x)
    # float32, the same operations in a slightly different order: ~1e-7 observed.
    assert_close(got, expected, rtol=1e-4, atol=1e-5,
                 name=f"Attention vs LlamaAttention (H={heads}, H_kv={kv_heads}, head_dim={head_dim})")
# Left padding with per-sequence positions, as in batched generation.
mine = Attention(64, 8, 2, head_dim=8).to(device)
ref, rotary = _llama_layer(mine, 64, 8, 2, 8, 10000.0)
t = 10
keep = torch.ones(3, t, dtype=torch.bool, device=device)
keep[1, :3] = False
keep[2, :6] = False
pos = (keep.long().cumsum(-1) - 1).clamp(min=0)
x = torch.randn(3, t, 64, device=device)
allowed = torch.ones(t, t, dtype=torch.bool, device=device).tril()[None, None] & keep[:, None, None, :]
with torch.no_grad():
    expected, _ = ref(x, position_embeddings=rotary(x, pos), attention_mask=_additive_mask(allowed, x.dtype))
    got = mine(x, position_ids=pos, key_padding_mask=keep)
# Only real tokens are compared: a padding query sees no key (ours: zeros, eager Llama: uniform).
assert_close(got[keep], expected[keep], rtol=1e-4, atol=1e-5,
             name="Attention vs LlamaAttention with left padding and position_ids of shape (B, T)")
# Positions with gaps (RoPE only sees differences of positions, so a constant shift would
# change nothing; gaps do).
pos = torch.sort(torch.randperm(40, device=device)[:2 * t].reshape(2, t), dim=-1).values
x = torch.randn(2, t, 64, device=device)
causal = torch.ones(t, t, dtype=torch.bool, device=device).tril()[None, None]
with torch.no_grad():
    expected, _ = ref(x, position_embeddings=rotary(x, pos), attention_mask=_additive_mask(causal, x.dtype))
    got = mine(x, position_ids=pos)
assert_close(got, expected, rtol=1e-4, atol=1e-5, name="Attention vs LlamaAttention with position_ids with gaps")
# attention_bias=True (biases on q, k, v and o) and head_dim smaller than hidden / heads.
for hidden, heads, kv_heads, head_dim in [(64, 4, 2, 8), (48, 6, 2, 16)]:
    mine = Attention(hidden, heads, kv_heads, head_dim=head_dim, bias=True).to(device)
    with torch.no_grad():
        for name_, param in mine.named_parameters():
            if name_.endswith("bias"):
                param.normal_()  # nn.Linear's biases start small: make them matter
    cfg = LlamaConfig(hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      head_dim=head_dim, attention_bias=True, attn_implementation="eager")
    ref = LlamaAttention(cfg, layer_idx=0).to(device).eval()
    ref.load_state_dict(mine.state_dict())
    rotary = LlamaRotaryEmbedding(cfg).to(device)
    t = 9
    x = torch.randn(2, t, hidden, device=device)
    pos = torch.arange(t, device=device)[None].expand(2, t)
    causal = torch.ones(t, t, dtype=torch.bool, device=device).tril()[None, None]
    with torch.no_grad():
        expected, _ = ref(x, position_embeddings=rotary(x, pos), attention_mask=_additive_mask(causal, x.dtype))
        got = mine(x)
    assert_close(got, expected, rtol=1e-4, atol=1e-4,
                 name=f"Attention(bias=True) vs LlamaAttention(attention_bias=True) (H={heads}, head_dim={head_dim}, "
                      f"hidden={hidden})")
    # bfloat16 weights and inputs: the layer runs and returns bfloat16, close to Llama's (which
    # takes its softmax in float32): bf16 keeps 8 significant bits; outputs are of size ~3.
    mine_b, ref_b, xb = mine.to(torch.bfloat16), ref.to(torch.bfloat16), x.to(torch.bfloat16)
    with torch.no_grad():
        expected_b, _ = ref_b(xb, position_embeddings=rotary(xb, pos), attention_mask=_additive_mask(causal, xb.dtype))
        got_b = mine_b(xb)
    assert_dtype(got_b, torch.bfloat16, name="Attention in bfloat16")
    assert_close(got_b.float(), expected_b.float(), rtol=5e-2, atol=1e-1,
                 name=f"Attention in bfloat16 vs LlamaAttention in bfloat16 (H={heads}, head_dim={head_dim})")
# The constructor (given) refuses query heads that do not split into equal groups.
try:
    Attention(48, 6, 4)
except ValueError:
    pass
else:
    raise AssertionError("Attention(48, num_heads=6, num_kv_heads=4): expected ValueError (6 heads do not form groups "
                         "of equal size over 4 kv heads), got a module")
# Any device: on "meta" every tensor the forward makes must follow x's device.
layer_m = Attention(64, 8, 2, head_dim=16, bias=True).to("meta")
try:
    with torch.no_grad():
        out_m = layer_m(torch.empty(2, 5, 64, device="meta"))
except (RuntimeError, NotImplementedError) as e:
    raise AssertionError(f"Attention on the meta device: expected a (2, 5, 64) meta tensor, got {type(e).__name__}: "
                         f"{e} (create positions and masks on x.device)") from None
assert out_m.device.type == "meta" and tuple(out_m.shape) == (2, 5, 64), (
    f"Attention on the meta device: expected (2, 5, 64) on meta, got {tuple(out_m.shape)} on {out_m.device}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 4. Memory-efficient attention: tiles and the online softmax
#
# Naive attention stores the score matrix: $B \cdot H \cdot T^2$ numbers. For one layer of a
# 32-head model at $T = 32\,768$ that is 32 × 32768² × 2 bytes = 64 GiB — per layer, per
# sequence. FlashAttention (Dao et al., 2022) never stores it: it walks over the keys in
# blocks of $b$ and keeps, for every query row, three running quantities:
#
# - $m$: the largest score seen so far (for a stable softmax, as in unit 01);
# - $\ell$: the sum of $e^{s_j - m}$ over the keys seen so far;
# - $a$: the unnormalised output $\sum_j e^{s_j - m} v_j$.
#
# For the next block with scores $s_{J}$ (a $T_q \times b$ tile) and values $V_J$:
#
# $$ m' = \max\big(m, \max_J s_J\big),\qquad c = e^{m - m'},\qquad
#    \ell' = c\,\ell + \sum_J e^{s_J - m'},\qquad a' = c\,a + e^{s_J - m'} V_J .$$
#
# The factor $c \le 1$ *rescales* what was accumulated against the old maximum; forgetting
# it on either $\ell$ or $a$ is the classic bug. After the last block, $O = a / \ell$. Memory
# is $O(T_q \cdot b + T_q \cdot d)$ instead of $O(T_q T_k)$, and the arithmetic is the same.
# Start $m$ at $-\infty$, not at 0: when every score of a row is very negative (say $-300$),
# a start of 0 makes every $e^{s - m}$ underflow to 0 and the row becomes $0/0$.
#
# The cell below runs the update by hand on one row of 6 scores in two blocks of 3: watch
# $c$ shrink what the first block accumulated when the second block brings a larger score.

# %%
s_row = torch.tensor([1.0, 3.0, 0.5, 4.0, -1.0, 2.0])  # one query's scores for 6 keys
v_row = torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0], [6.0]])  # one value per key (d = 1)
m, l, a = torch.tensor(float("-inf")), torch.tensor(0.0), torch.zeros(1)
for block in (slice(0, 3), slice(3, 6)):
    s_j, v_j = s_row[block], v_row[block]
    m_new = torch.maximum(m, s_j.max())
    c = torch.exp(m - m_new)  # e^(old max - new max): 0 for the first block, then <= 1
    p_j = torch.exp(s_j - m_new)
    l = c * l + p_j.sum()
    a = c * a + p_j @ v_j
    print(f"keys {block.start}..{block.stop - 1}: m = {m_new.item():.1f}, c = {c.item():.4f}, "
          f"l = {l.item():.4f}, a = {a.item():.4f}")
    m = m_new
print(f"online softmax: a / l = {(a / l).item():.6f};  full softmax: {(torch.softmax(s_row, 0) @ v_row).item():.6f}")

# %% [markdown]
# With a causal mask ($T_q \le T_k$, positions aligned at the end as in section 1), mask
# the scores of each tile exactly as in section 1, using the keys' true positions
# (`start + j`), *before* the tile's maximum is taken: a hidden future key whose score is
# hundreds above the visible ones would otherwise set $m$, and every visible $e^{s - m}$
# would underflow to 0. A tile whose keys all lie before the first query's position needs
# no mask at all.
#
# Tiling the keys is what removes the $T^2$ memory, and it is what we grade: a loop over
# tiles of *queries* that takes a full softmax over all $T_k$ keys for each tile still
# holds a (tile × $T_k$) matrix, and fails the test that fixes $T_q$ at one block and lets
# $T_k$ grow to 16 384. FlashAttention also tiles the queries (an outer loop over tiles of
# rows, each with its own $m$, $\ell$, $a$), so that a tile of $Q$, $K$, $V$ fits in the
# GPU's on-chip SRAM, and a causal pass then skips the (query tile, key tile) pairs that lie
# entirely above the diagonal: half the work. Doing the same here is optional; the
# reference solution does, and on a CPU it then runs within about 2× of PyTorch's fused
# kernel.
#
# Two more things real kernels do, and the tests check:
# - **low precision**: for bfloat16 or float16 inputs, keep $m$, $\ell$ and $a$ in float32
#   and cast the output back at the end. Summed over many tiles in bfloat16 (8 significant
#   bits), $\ell$ and $a$ drift by several percent at realistic score scales.
# - **autograd**: `tiled_attention` must be differentiable by plain autograd, so that a model
#   can train through it. An in-place operation on a tensor autograd saved for the backward
#   pass (for instance `s.sub_(m).exp_()` after `s.amax(...)`) makes `backward()` raise
#   "one of the variables needed for gradient computation has been modified by an inplace
#   operation". Write `p = torch.exp(s - m_new)`. (Section 5 then writes the backward pass
#   by hand, with far less memory than autograd keeps.)

# %% answer id=tiled
def tiled_attention(q, k, v, causal=False, block_size=128):
    """Attention computed over tiles of block_size keys with an online softmax.

    q: (B, H, T_q, d); k, v: (B, H, T_k, d); for causal=True, T_q <= T_k and query i sits
    at position T_k - T_q + i. Returns (B, H, T_q, d), same dtype as q, equal to
    attention(q, k, v, causal) up to round-off, stable for scores spread by hundreds and for
    rows of very negative scores. float32, float64, bfloat16, float16 inputs: the running
    max, sum and output accumulate in float32 (float64 for float64 inputs). Any device
    (including "meta"). The inputs are not modified.
    Memory: never holds a T_q x T_k tensor, nor a (query tile x T_k) one: extra memory is
    O(T_q * (block_size + d)) whatever T_k. Differentiable by plain autograd (no in-place op
    on a tensor autograd needs). (Tiling the queries too, by block_size, is optional: it
    lets a causal pass skip tiles.)
    """
    ### BEGIN SOLUTION
    t_q, t_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    offset = t_k - t_q  # query i sits at position offset + i
    acc_dtype = torch.promote_types(q.dtype, torch.float32)  # bf16/fp16 -> float32, float64 stays
    out_tiles = []
    for q0 in range(0, t_q, block_size):  # outer loop: a tile of queries
        q1 = min(q0 + block_size, t_q)
        q_tile = q[..., q0:q1, :].to(acc_dtype) * (1.0 / math.sqrt(d))
        row_max = torch.full((*q_tile.shape[:-1], 1), float("-inf"), dtype=acc_dtype, device=q.device)
        row_sum = torch.zeros_like(row_max)
        acc = torch.zeros(*q_tile.shape[:-1], v.shape[-1], dtype=acc_dtype, device=q.device)
        # Causal: keys after this tile's last query are hidden from all of its rows; skip them.
        stop = offset + q1 if causal else t_k
        for k0 in range(0, stop, block_size):  # inner loop: tiles of keys, online softmax
            k1 = min(k0 + block_size, stop)
            s = q_tile @ k[..., k0:k1, :].to(acc_dtype).transpose(-2, -1)
            if causal and k1 - 1 > offset + q0:  # the tile crosses the diagonal: mask it
                key_pos = torch.arange(k0, k1, device=q.device)[None, :]
                query_pos = torch.arange(offset + q0, offset + q1, device=q.device)[:, None]
                s = s.masked_fill(key_pos > query_pos, float("-inf"))
            new_max = torch.maximum(row_max, s.amax(dim=-1, keepdim=True))
            p = torch.exp(s - new_max)  # not in place: autograd needs s (through amax)
            correction = torch.exp(row_max - new_max)
            row_sum = row_sum * correction + p.sum(dim=-1, keepdim=True)
            acc = acc * correction + p @ v[..., k0:k1, :].to(acc_dtype)
            row_max = new_max
        out_tiles.append((acc / row_sum).to(q.dtype))
    return torch.cat(out_tiles, dim=-2)
    ### END SOLUTION

# %% test id=test_tiled_visible points=1
torch.manual_seed(6)
qt, kt, vt = (torch.randn(1, 2, 10, 8, device=device) for _ in range(3))
# float32: blocks change the summation order; ~1e-7 here, 1e-5 leaves room.
assert_close(tiled_attention(qt, kt, vt, block_size=4), F.scaled_dot_product_attention(qt, kt, vt),
             rtol=1e-4, atol=1e-5, name="tiled_attention(block_size=4) on 10 keys")
assert_close(tiled_attention(qt, kt, vt, causal=True, block_size=4),
             F.scaled_dot_product_attention(qt, kt, vt, is_causal=True),
             rtol=1e-4, atol=1e-5, name="tiled_attention(causal=True, block_size=4) on 10 keys")

# %% test id=test_tiled_correct points=3
### BEGIN HIDDEN TESTS
torch.manual_seed(7)
def _ref(q, k, v, causal):
    t_q, t_k = q.shape[-2], k.shape[-2]
    allowed = torch.arange(t_k, device=q.device)[None, :] <= torch.arange(t_q, device=q.device)[:, None] + (t_k - t_q)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed if causal else None)
for (b, h, t_q, t_k, d, block) in [(2, 3, 50, 50, 16, 16), (1, 2, 37, 37, 32, 7), (2, 2, 20, 20, 8, 128),
                                   (1, 4, 9, 30, 16, 8), (1, 1, 1, 25, 8, 4), (2, 2, 64, 64, 16, 1)]:
    # Scores of size ~5 make the running maximum change from block to block.
    q = 2 * torch.randn(b, h, t_q, d, device=device)
    k, v = 2 * torch.randn(b, h, t_k, d, device=device), torch.randn(b, h, t_k, d, device=device)
    for causal in (False, True):
        # float32 sums over the blocks in another order than the fused kernel: ~1e-6.
        assert_close(tiled_attention(q, k, v, causal=causal, block_size=block), _ref(q, k, v, causal),
                     rtol=1e-4, atol=2e-5,
                     name=f"tiled_attention(causal={causal}, block_size={block}) with T_q={t_q}, T_k={t_k}")
q, k, v = (torch.randn(1, 2, 33, 16, dtype=torch.float64, device=device) for _ in range(3))
out64 = tiled_attention(q, k, v, causal=True, block_size=8)
assert_dtype(out64, torch.float64, name="tiled_attention on float64 inputs")
assert_close(out64, _ref(q, k, v, True), rtol=1e-10, atol=1e-12, name="tiled_attention in float64")
# Scores spread by hundreds: rows around +250 and rows whose scores are all around -250. An
# unshifted exp overflows or underflows; a running max that starts at 0 instead of -inf
# underflows to 0/0 on the negative rows.
u = torch.randn(16, device=device)
u = u / u.norm()
sign = torch.tensor([1.0, -1.0], device=device).repeat(20)[:, None]
q = sign * 30 * u + torch.randn(2, 2, 40, 16, device=device)
k, v = 30 * u + 3 * torch.randn(2, 2, 40, 16, device=device), torch.randn(2, 2, 40, 16, device=device)
for causal in (False, True):
    # float32 scores of size ~250 carry ~2e-5 absolute round-off: weights move by ~2e-5 relative.
    assert_close(tiled_attention(q, k, v, causal=causal, block_size=8), _ref(q, k, v, causal), rtol=1e-4, atol=1e-4,
                 name=f"tiled_attention(causal={causal}, block_size=8) with rows of scores around +250 and -250")
# Causal, with every hidden (future) key scoring hundreds above the visible ones: score(i, j)
# is about 15 j. A tile maximum taken before masking makes every visible exp underflow.
q = 20 * u + 0.1 * torch.randn(1, 2, 40, 16, device=device)
k = 3 * torch.arange(40, device=device)[:, None] * u + 0.1 * torch.randn(1, 2, 40, 16, device=device)
v = torch.randn(1, 2, 40, 16, device=device)
assert_close(tiled_attention(q, k, v, causal=True, block_size=8), _ref(q, k, v, True), rtol=1e-4, atol=1e-4,
             name="tiled_attention(causal=True) when future keys score hundreds above visible ones (mask before max)")
assert_close(tiled_attention(q[..., 25:, :], k, v, causal=True, block_size=8), _ref(q[..., 25:, :], k, v, True),
             rtol=1e-4, atol=1e-4, name="tiled_attention(causal=True) with T_q=15, T_k=40 and rising scores")
# bfloat16 / float16 at a realistic scale (scores ~ +-30, 32 tiles per row): the running
# quantities must accumulate in float32. Measured: float32 accumulation errs by ~0.03 on
# outputs of size ~10, bfloat16 accumulation by ~0.5.
q, k, v = (3 * torch.randn(1, 2, 512, 64, device=device) for _ in range(3))
for dtype in (torch.bfloat16, torch.float16):
    ql, kl, vl = q.to(dtype), k.to(dtype), v.to(dtype)
    got = tiled_attention(ql, kl, vl, causal=True, block_size=16)
    assert_dtype(got, dtype, name=f"tiled_attention on {dtype} inputs")
    assert_close(got.double(), _ref(ql.double(), kl.double(), vl.double(), True), rtol=1e-2, atol=0.1,
                 name=f"tiled_attention in {dtype} (T=512, block_size=16; accumulate m, l, acc in float32)")
# Any device: on "meta" a tensor made without device=q.device fails.
qm, km = torch.empty(1, 2, 6, 8, device="meta"), torch.empty(1, 2, 10, 8, device="meta")
try:
    out_m = tiled_attention(qm, km, km, causal=True, block_size=4)
except (RuntimeError, NotImplementedError) as e:
    raise AssertionError(f"tiled_attention on the meta device: expected a (1, 2, 6, 8) meta tensor, got "
                         f"{type(e).__name__}: {e} (create every tensor on q.device)") from None
assert out_m.device.type == "meta" and tuple(out_m.shape) == (1, 2, 6, 8), (
    f"tiled_attention on meta: expected (1, 2, 6, 8) on meta, got {tuple(out_m.shape)} on {out_m.device}")
# The inputs are not modified.
q, k, v = (torch.randn(1, 2, 12, 8, device=device) for _ in range(3))
before = [t.clone() for t in (q, k, v)]
tiled_attention(q, k, v, causal=True, block_size=5)
for arg, b_, a_ in zip("qkv", before, (q, k, v), strict=True):
    assert torch.equal(a_, b_), f"tiled_attention modified its argument {arg} in place: expected it unchanged"
### END HIDDEN TESTS
assert True

# %% test id=test_tiled_grad points=1
### BEGIN HIDDEN TESTS
torch.manual_seed(17)
# Plain autograd through tiled_attention gives the gradients of PyTorch's fused kernel.
for (t_q, t_k, block) in [(37, 37, 8), (9, 30, 8), (20, 20, 128)]:
    q, k, v = (torch.randn(2, 2, n, 16, dtype=torch.float64, device=device, requires_grad=True)
               for n in (t_q, t_k, t_k))
    grad_out = torch.randn(2, 2, t_q, 16, dtype=torch.float64, device=device)
    for causal in (False, True):
        try:
            got = torch.autograd.grad(tiled_attention(q, k, v, causal=causal, block_size=block), (q, k, v), grad_out)
        except RuntimeError as e:
            raise AssertionError(f"backward through tiled_attention(causal={causal}) raised: {e} "
                                 f"(an in-place operation on a tensor autograd needs?)") from None
        expected = torch.autograd.grad(_ref(q, k, v, causal), (q, k, v), grad_out)
        for name_, g, e in zip(("dq", "dk", "dv"), got, expected, strict=True):
            # float64: the same sums in another order, ~1e-15.
            assert_close(g, e, rtol=1e-9, atol=1e-10,
                         name=f"{name_} of tiled_attention(causal={causal}, block_size={block}), T_q={t_q}, T_k={t_k}")
### END HIDDEN TESTS
assert True

# %% test id=test_tiled_memory points=2
### BEGIN HIDDEN TESTS
torch.manual_seed(8)
def _peak(t):
    q, k, v = (torch.randn(1, 2, t, 32, device=device) for _ in range(3))
    synchronize()
    _, peak = peak_memory_torch(lambda: tiled_attention(q, k, v, causal=True, block_size=128), device=device)
    return peak
score_bytes = 2 * 2048 * 2048 * 4  # one float32 score matrix for 2 heads at T = 2048
peak_1k, peak_2k = _peak(1024), _peak(2048)
# Deterministic byte counts. Tiled attention holds a few tiles of at most (T x 128) numbers
# and a few (T x d) rows: <= 1/5 of the score matrix here; naive attention holds more than
# one whole score matrix.
assert peak_2k < 0.5 * score_bytes, (
    f"tiled_attention at T=2048 (2 heads): expected a peak below half of one T x T score matrix "
    f"({0.5 * score_bytes:,.0f} bytes), got {peak_2k:,} bytes"
)
# Linear in T: doubling T about doubles the peak (quadratic would quadruple it).
assert peak_2k < 3.0 * peak_1k, (
    f"tiled_attention: expected peak memory linear in T (ratio < 3 from T=1024 to 2048), "
    f"got {peak_1k:,} -> {peak_2k:,} bytes (ratio {peak_2k / max(peak_1k, 1):.2f})"
)
# The axis that matters: T_q fixed at one block (128 queries), T_k = 16384 keys. Key tiles
# hold (128 x block) scores whatever T_k; a full softmax per tile of queries holds a whole
# (128 x T_k) matrix, 16 MiB here for 2 heads.
q_long = torch.randn(1, 2, 128, 16, device=device)
k_long, v_long = (torch.randn(1, 2, 16384, 16, device=device) for _ in range(2))
synchronize()
_, peak_long = peak_memory_torch(lambda: tiled_attention(q_long, k_long, v_long, causal=True, block_size=128),
                                 device=device)
row_bytes = 2 * 128 * 16384 * 4
assert peak_long < row_bytes / 4, (
    f"tiled_attention with T_q=128 (one block) and T_k=16384: expected a peak below a quarter of one "
    f"(T_q x T_k) float32 score matrix ({row_bytes // 4:,} bytes), got {peak_long:,} bytes: tile the keys, "
    f"not only the queries"
)
### END HIDDEN TESTS
assert True

# %% test id=test_tiled_speed points=1
### BEGIN HIDDEN TESTS
torch.manual_seed(9)
def _naive(q, k, v):
    t = q.shape[-2]
    bias = torch.full((t, t), float("-inf"), device=q.device).triu(1)
    return torch.softmax(q @ k.mT * q.shape[-1] ** -0.5 + bias, dim=-1) @ v
t_speed = 1024 if device.type == "cpu" else 4096
qs, ks, vs = (torch.randn(1, 4, t_speed, 64, device=device) for _ in range(3))
block = 128 if device.type == "cpu" else 1024
# On a CPU both run on one thread: the ratio then measures the work done, not how well many
# small operations parallelise on a busy machine (with 2 threads under load, tiles of 128
# were measured 5-7x slower than one big product for no algorithmic reason).
threads = torch.get_num_threads()
torch.set_num_threads(1)
try:
    ratio = speedup(lambda: tiled_attention(qs, ks, vs, causal=True, block_size=block),
                    lambda: _naive(qs, ks, vs), repeats=5, warmup=2)
finally:
    torch.set_num_threads(threads)
# A ratio from one interleaved run, never an absolute time. Measured on one thread, on 2
# cores under a load average of 16 (six other jobs): the reference (query and key tiles of
# 128, causal tiles skipped) takes 0.6x the naive time; the same code with tiles of 16 keys
# 3.4x, of 4 keys 40x, so an online softmax over single keys is far beyond 4x. 4x leaves
# the reference a margin of more than 6x.
assert ratio.ratio > 0.25, (
    f"tiled_attention (causal, T={t_speed}): expected at most 4x the time of naive attention, "
    f"got {1 / ratio.ratio:.1f}x ({ratio.fast.median * 1e3:.1f} ms vs {ratio.slow.median * 1e3:.1f} ms naive)"
)
### END HIDDEN TESTS
assert True

# %% [markdown]
# Peak memory against the sequence length (2 heads, $d = 32$), for your naive `attention`
# and your `tiled_attention`. On a CPU the bytes come from the profiler's allocation events,
# on a GPU from the CUDA allocator; both are exact and repeat from run to run.

# %%
lengths = [256, 512, 1024, 2048]
peaks = {"naive attention": [], "tiled attention (128-key blocks)": []}
for t in lengths:
    qm, km, vm = (torch.randn(1, 2, t, 32, device=device) for _ in range(3))
    naive_call = lambda q=qm, k=km, v=vm: attention(q, k, v, causal=True)  # noqa: E731
    tiled_call = lambda q=qm, k=km, v=vm: tiled_attention(q, k, v, causal=True)  # noqa: E731
    peaks["naive attention"].append(peak_memory_torch(naive_call, device=device)[1])
    peaks["tiled attention (128-key blocks)"].append(peak_memory_torch(tiled_call, device=device)[1])
fig, ax = plt.subplots(figsize=(5.5, 4))
for label, values in peaks.items():
    ax.loglog(lengths, [p / 2**20 for p in values], "o-", label=label)
ax.loglog(lengths, [2 * t * t * 4 / 2**20 for t in lengths], "k:", label="one T×T float32 score matrix")
ax.set_xlabel("sequence length T")
ax.set_ylabel("peak memory (MiB)")
ax.set_title("attention memory: quadratic vs linear")
ax.legend()
plt.show()
for t, a, b in zip(lengths, *peaks.values(), strict=True):
    print(f"T={t:5d}: naive {a / 2**20:7.1f} MiB, tiled {b / 2**20:6.1f} MiB")

# %% [markdown]
# ## 5. FlashAttention's backward pass: recompute instead of store
#
# Training needs gradients, and autograd keeps whatever each operation needs for its
# backward pass. Through naive attention that is the $T \times T$ scores and probabilities;
# through your `tiled_attention` it is every tile of $P$ — together, again
# $T_q \times T_k$ numbers. The forward pass saved memory; autograd gives it back.
# FlashAttention saves only $Q$, $K$, $V$, $O$ and one number per query row, the
# log-sum-exp of its scores
#
# $$ L_i = m_i + \log \ell_i = \log \sum_j e^{S_{ij}} ,$$
#
# which the forward's running $m$ and $\ell$ give for free. In the backward pass it
# *recomputes* each tile: $P_{ij} = e^{S_{ij} - L_i}$ is already normalised, no softmax and
# no running maximum needed. One extra $QK^\top$ product per tile buys memory linear in $T$.
#
# For one head, with $S = QK^\top/\sqrt d$, $P = \operatorname{softmax}_{\text{row}}(S)$,
# $O = PV$ and the incoming gradient $dO$:
#
# $$ dV = P^\top dO,\qquad dP = dO\, V^\top,\qquad dS = P \circ (dP - D),\qquad
#    dQ = \frac{dS\, K}{\sqrt d},\qquad dK = \frac{dS^\top Q}{\sqrt d}. $$
#
# $dS$ is the softmax's Jacobian at work: $\partial P_{ij}/\partial S_{il} = P_{ij}(\delta_{jl} - P_{il})$
# gives $dS_{il} = P_{il}\,(dP_{il} - D_i)$ with $D_i = \sum_j P_{ij}\, dP_{ij}$. $D_i$ looks like
# it needs a whole row of $P$ — which a tile does not have — but
# $D_i = \sum_j P_{ij}\,(dO_i \cdot v_j) = dO_i \cdot O_i$: one dot product per row, computed
# once before the loop: $D = \operatorname{rowsum}(dO \circ O)$. Then the backward walks the
# same tiles as the forward: recompute $S_{IJ}$ (masked as in the forward) and
# $P_{IJ} = e^{S_{IJ} - L_I}$, then accumulate $dV_J \mathrel{+}= P_{IJ}^\top dO_I$,
# $dP_{IJ} = dO_I V_J^\top$, $dS_{IJ} = P_{IJ} \circ (dP_{IJ} - D_I)$,
# $dQ_I \mathrel{+}= dS_{IJ} K_J / \sqrt d$, $dK_J \mathrel{+}= dS_{IJ}^\top Q_I / \sqrt d$.
#
# Classic mistakes: forgetting $D$; recomputing $P$ as $e^{S - m}$ (un-normalised) instead
# of $e^{S - L}$; multiplying by a 0/1 mask *after* the exponential (a hidden score hundreds
# above $L$ overflows to $\infty$, and $\infty \cdot 0 = $ NaN); saving $P$ instead of $L$;
# losing the $1/\sqrt d$ in $dQ$ and $dK$. With a causal mask, skip the (query tile, key
# tile) pairs that lie entirely above the diagonal in *both* passes: the tests count the
# FLOPs (a causal forward + backward must cost at most 0.65 of a non-causal one).
#
# A `torch.autograd.Function` pairs a forward with a hand-written backward. Its `forward`
# runs without autograd recording (in-place operations are fine there); tensors the
# backward needs go through `ctx.save_for_backward(...)`, other values are plain attributes
# of `ctx`; `backward` receives the gradient of the output and returns one gradient per
# input of `forward` (`None` for the non-tensor ones):
#
# ```python
# class Square(torch.autograd.Function):
#     @staticmethod
#     def forward(ctx, x, scale):
#         ctx.save_for_backward(x)
#         ctx.scale = scale
#         return scale * x * x
#
#     @staticmethod
#     def backward(ctx, grad_out):
#         (x,) = ctx.saved_tensors
#         return grad_out * 2 * ctx.scale * x, None
# ```
#
# The cell below checks the formulas on whole (untiled) matrices against autograd.

# %%
torch.manual_seed(0)
q_ex, k_ex, v_ex = (torch.randn(5, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
dout_ex = torch.randn(5, 4, dtype=torch.float64)
with torch.no_grad():
    S_ex = q_ex @ k_ex.T / math.sqrt(4)
    L_ex = torch.logsumexp(S_ex, dim=-1, keepdim=True)  # what the forward saves: one number per row
    P_ex = torch.exp(S_ex - L_ex)  # recomputed, already normalised
    O_ex = P_ex @ v_ex
    dV_ex = P_ex.T @ dout_ex
    dP_ex = dout_ex @ v_ex.T
    D_ex = (dout_ex * O_ex).sum(dim=-1, keepdim=True)  # equals (P_ex * dP_ex).sum(-1): no row of P needed
    dS_ex = P_ex * (dP_ex - D_ex)
    dQ_ex, dK_ex = dS_ex @ k_ex / math.sqrt(4), dS_ex.T @ q_ex / math.sqrt(4)
auto_ex = torch.autograd.grad(torch.softmax(q_ex @ k_ex.T / math.sqrt(4), dim=-1) @ v_ex, (q_ex, k_ex, v_ex), dout_ex)
for name_ex, mine_ex, auto in zip(("dQ", "dK", "dV"), (dQ_ex, dK_ex, dV_ex), auto_ex, strict=True):
    print(f"{name_ex}: largest difference from autograd {(mine_ex - auto).abs().max().item():.1e}")
print(f"D = rowsum(dO * O) vs rowsum(P * dP): {(D_ex - (P_ex * dP_ex).sum(-1, keepdim=True)).abs().max().item():.1e}")

# %% answer id=flash
class FlashAttention(torch.autograd.Function):
    """Attention whose backward pass recomputes the tiles of P from the saved log-sum-exp."""

    @staticmethod
    def forward(ctx, q, k, v, causal, block_size):
        """q: (B, H, T_q, d); k, v: (B, H, T_k, d); float32 or float64, on any device (including
        "meta": make every tensor on q.device); for causal=True,
        T_q <= T_k and query i sits at position T_k - T_q + i (as in section 1).
        Returns out (B, H, T_q, d), equal to attention(q, k, v, causal), computed over tiles of
        block_size queries and keys with an online softmax (skip causal tiles entirely above
        the diagonal). Saves exactly ctx.save_for_backward(q, k, v, out, lse), lse of shape
        (B, H, T_q): the log-sum-exp of each query's scaled, masked scores (m + log l);
        keeps nothing else that grows with T (no tile of P), and stores causal and
        block_size as ctx attributes. q, k, v are not modified."""
        ### BEGIN SOLUTION
        t_q, t_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
        scale, offset = 1.0 / math.sqrt(d), t_k - t_q
        out = torch.empty_like(q)
        lse = torch.empty(q.shape[:-1], dtype=q.dtype, device=q.device)
        for q0 in range(0, t_q, block_size):
            q1 = min(q0 + block_size, t_q)
            q_tile = q[..., q0:q1, :] * scale
            row_max = torch.full((*q_tile.shape[:-1], 1), float("-inf"), dtype=q.dtype, device=q.device)
            row_sum = torch.zeros_like(row_max)
            acc = torch.zeros_like(q_tile)
            stop = offset + q1 if causal else t_k  # later key tiles are hidden from every row of this one
            for k0 in range(0, stop, block_size):
                k1 = min(k0 + block_size, stop)
                s = q_tile @ k[..., k0:k1, :].transpose(-2, -1)
                if causal and k1 - 1 > offset + q0:  # the tile crosses the diagonal
                    hidden = (torch.arange(k0, k1, device=q.device)[None, :]
                              > torch.arange(offset + q0, offset + q1, device=q.device)[:, None])
                    s.masked_fill_(hidden, float("-inf"))  # no autograd here: in place is fine
                new_max = torch.maximum(row_max, s.amax(dim=-1, keepdim=True))
                p = torch.exp(s - new_max)
                correction = torch.exp(row_max - new_max)
                row_sum = row_sum * correction + p.sum(dim=-1, keepdim=True)
                acc = acc * correction + p @ v[..., k0:k1, :]
                row_max = new_max
            out[..., q0:q1, :] = acc / row_sum
            lse[..., q0:q1] = (row_max + torch.log(row_sum)).squeeze(-1)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.block_size = causal, block_size
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_out):
        """grad_out: (B, H, T_q, d). Returns (dq, dk, dv, None, None), recomputing each tile of
        P from q, k and lse (memory O(T * d) plus a few tiles), with the causal mask of the
        forward and its tiles above the diagonal skipped. grad_out is not modified."""
        ### BEGIN SOLUTION
        q, k, v, out, lse = ctx.saved_tensors
        causal, block_size = ctx.causal, ctx.block_size
        t_q, t_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
        scale, offset = 1.0 / math.sqrt(d), t_k - t_q
        delta = (grad_out * out).sum(dim=-1, keepdim=True)  # D_i = rowsum(P * dP) = dO_i . O_i
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        for q0 in range(0, t_q, block_size):
            q1 = min(q0 + block_size, t_q)
            q_tile, do_tile = q[..., q0:q1, :], grad_out[..., q0:q1, :]
            lse_tile, delta_tile = lse[..., q0:q1, None], delta[..., q0:q1, :]
            stop = offset + q1 if causal else t_k
            for k0 in range(0, stop, block_size):
                k1 = min(k0 + block_size, stop)
                k_tile, v_tile = k[..., k0:k1, :], v[..., k0:k1, :]
                s = (q_tile @ k_tile.transpose(-2, -1)) * scale
                if causal and k1 - 1 > offset + q0:
                    hidden = (torch.arange(k0, k1, device=q.device)[None, :]
                              > torch.arange(offset + q0, offset + q1, device=q.device)[:, None])
                    s.masked_fill_(hidden, float("-inf"))  # before exp: e^(-inf) = 0, never inf * 0
                p = torch.exp(s - lse_tile)  # the forward's probabilities, recomputed
                dv[..., k0:k1, :] += p.transpose(-2, -1) @ do_tile
                ds = p * (do_tile @ v_tile.transpose(-2, -1) - delta_tile)
                dq[..., q0:q1, :] += (ds @ k_tile) * scale
                dk[..., k0:k1, :] += (ds.transpose(-2, -1) @ q_tile) * scale
        return dq, dk, dv, None, None
        ### END SOLUTION


def flash_attention(q, k, v, causal=False, block_size=64):
    """Attention with FlashAttention's forward and backward passes (see FlashAttention)."""
    return FlashAttention.apply(q, k, v, causal, block_size)

# %% test id=test_flash_visible points=1
torch.manual_seed(14)
qf, kf, vf = (torch.randn(1, 2, 10, 8, dtype=torch.float64, device=device, requires_grad=True) for _ in range(3))
dout_f = torch.randn(1, 2, 10, 8, dtype=torch.float64, device=device)
for causal in (False, True):
    out_f = flash_attention(qf, kf, vf, causal=causal, block_size=4)
    out_r = F.scaled_dot_product_attention(qf, kf, vf, is_causal=causal)
    # float64: the same sums in another order, ~1e-15.
    assert_close(out_f, out_r, rtol=1e-9, atol=1e-10, name=f"flash_attention(causal={causal}, block_size=4) output")
    grads_f = torch.autograd.grad(out_f, (qf, kf, vf), dout_f)
    grads_r = torch.autograd.grad(out_r, (qf, kf, vf), dout_f)
    for name_f, got_f, exp_f in zip(("dq", "dk", "dv"), grads_f, grads_r, strict=True):
        assert_close(got_f, exp_f, rtol=1e-9, atol=1e-10,
                     name=f"{name_f} of flash_attention(causal={causal}) vs scaled_dot_product_attention's")
assert_shape(grads_f[1], (1, 2, 10, 8), name="dk from flash_attention (shaped like k)")

# %% test id=test_flash_hidden points=4
### BEGIN HIDDEN TESTS
torch.manual_seed(18)
def _sdpa_aligned(q, k, v, causal):
    t_q, t_k = q.shape[-2], k.shape[-2]
    allowed = torch.arange(t_k, device=q.device)[None, :] <= torch.arange(t_q, device=q.device)[:, None] + (t_k - t_q)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed if causal else None)


def _check_grads(q, k, v, causal, block, rtol, atol, label):
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    grad_out = torch.randn_like(q)
    try:
        out = flash_attention(q, k, v, causal=causal, block_size=block)
        got = torch.autograd.grad(out, (q, k, v), grad_out)
    except RuntimeError as e:
        raise AssertionError(f"flash_attention {label}: forward or backward raised {type(e).__name__}: {e}") from None
    expected_out = _sdpa_aligned(q, k, v, causal)
    expected = torch.autograd.grad(expected_out, (q, k, v), grad_out)
    assert_close(out.detach(), expected_out.detach(), rtol=rtol, atol=atol, name=f"flash_attention output, {label}")
    for name_, g, e in zip(("dq", "dk", "dv"), got, expected, strict=True):
        assert_close(g, e, rtol=rtol, atol=atol, name=f"{name_} of flash_attention, {label}")


# Sequence lengths not divisible by the block, T_q < T_k, one query, block of 1 key.
cases = [(2, 2, 37, 37, 16, 8), (1, 3, 9, 30, 16, 8), (2, 2, 50, 50, 32, 16), (1, 2, 20, 20, 8, 128),
         (1, 1, 1, 25, 8, 4), (1, 2, 12, 12, 8, 1)]
for dtype, rtol, atol in [(torch.float64, 1e-9, 1e-10), (torch.float32, 1e-3, 2e-4)]:
    # float64: round-off ~1e-14. float32: ~5e-5 measured on gradients of size ~1 (scores ~5).
    for (b, h, t_q, t_k, d, block) in cases:
        q = 2 * torch.randn(b, h, t_q, d, dtype=dtype, device=device)
        k, v = 2 * torch.randn(b, h, t_k, d, dtype=dtype, device=device), torch.randn(b, h, t_k, d, dtype=dtype, device=device)
        for causal in (False, True):
            _check_grads(q, k, v, causal, block, rtol, atol,
                         f"{dtype}, causal={causal}, block_size={block}, T_q={t_q}, T_k={t_k}, d={d}")
# float32 at scale: rows of scores around +250 and around -250.
u = torch.randn(16, device=device)
u = u / u.norm()
sign = torch.tensor([1.0, -1.0], device=device).repeat(20)[:, None]
q = sign * 30 * u + torch.randn(1, 2, 40, 16, device=device)
k, v = 30 * u + 3 * torch.randn(1, 2, 40, 16, device=device), torch.randn(1, 2, 40, 16, device=device)
for causal in (False, True):
    # float32 scores of size ~250 carry ~2e-5 absolute round-off; gradients are of size ~10.
    _check_grads(q, k, v, causal, 8, 1e-3, 2e-3, f"float32, causal={causal}, rows of scores around +250 and -250")
# Causal, with hidden (future) keys scoring up to ~100 above the row's log-sum-exp: a mask
# applied after exp overflows to inf (and inf * 0 = NaN); a max taken before masking underflows.
q = 20 * u + 0.1 * torch.randn(1, 2, 40, 16, device=device)
k = 3 * torch.arange(40, device=device)[:, None] * u + 0.1 * torch.randn(1, 2, 40, 16, device=device)
v = torch.randn(1, 2, 40, 16, device=device)
_check_grads(q, k, v, True, 8, 1e-3, 2e-3, "float32, causal=True, scores rising by ~15 per key")
# The defaults (given): not causal.
q, k, v = (torch.randn(1, 2, 9, 8, dtype=torch.float64, device=device) for _ in range(3))
assert_close(flash_attention(q, k, v), F.scaled_dot_product_attention(q, k, v), rtol=1e-9, atol=1e-10,
             name="flash_attention(q, k, v) with the default arguments (not causal)")
# What the forward saves: q, k, v, out and lse = logsumexp of the scaled, masked scores.
q, k, v = (torch.randn(2, 2, n, 16, dtype=torch.float64, device=device, requires_grad=True) for n in (13, 21, 21))
for causal in (False, True):
    out = flash_attention(q, k, v, causal=causal, block_size=4)
    saved = out.grad_fn.saved_tensors
    assert len(saved) == 5, (
        f"FlashAttention.forward: expected ctx.save_for_backward(q, k, v, out, lse), 5 tensors, got {len(saved)} "
        f"of shapes {[tuple(t.shape) for t in saved]}")
    for name_, t, ref in zip(("q", "k", "v", "out"), saved[:4], (q, k, v, out), strict=True):
        assert t.shape == ref.shape and torch.equal(t, ref), (
            f"FlashAttention.forward: expected saved tensor {name_} of shape {tuple(ref.shape)} (the tensor itself), "
            f"got shape {tuple(t.shape)}")
    scores = (q @ k.mT / 4.0).detach()
    if causal:
        scores = scores.masked_fill(torch.arange(21, device=device)[None, :] > torch.arange(13, device=device)[:, None] + 8,
                                    float("-inf"))
    expected_lse = torch.logsumexp(scores, dim=-1)
    assert saved[4].numel() == expected_lse.numel(), (
        f"FlashAttention.forward: expected lse of shape {tuple(expected_lse.shape)} (B, H, T_q), "
        f"got {tuple(saved[4].shape)}")
    # float64: one log of a sum, ~1e-15.
    assert_close(saved[4].reshape(expected_lse.shape).double(), expected_lse, rtol=1e-9, atol=1e-10,
                 name=f"saved lse vs torch.logsumexp of the scaled, masked scores (causal={causal})")
    on_ctx = [n for n, val in vars(out.grad_fn).items()
              if isinstance(val, torch.Tensor) and val.numel() > 2 * 2 * 13
              or isinstance(val, (list, tuple, dict)) and len(val) > 0
              and any(isinstance(x, torch.Tensor) for x in (val.values() if isinstance(val, dict) else val))]
    assert not on_ctx, (
        f"FlashAttention.forward: expected no tensors kept on ctx besides save_for_backward(q, k, v, out, lse), "
        f"got ctx attributes {on_ctx}")
# Any device: on "meta" (shapes, no data) a tensor made without device=q.device fails.
qm, km, vm = (torch.empty(1, 2, n, 8, device="meta", requires_grad=True) for n in (10, 14, 14))
try:
    out_m = flash_attention(qm, km, vm, causal=True, block_size=4)
    grads_m = torch.autograd.grad(out_m, (qm, km, vm), torch.empty(1, 2, 10, 8, device="meta"))
except (RuntimeError, NotImplementedError) as e:
    raise AssertionError(f"flash_attention forward + backward on the meta device: expected meta tensors, got "
                         f"{type(e).__name__}: {e} (create every tensor on q.device)") from None
assert out_m.device.type == "meta" and all(g.device.type == "meta" for g in grads_m), (
    f"flash_attention on meta: expected meta output and gradients, got {out_m.device} and "
    f"{[str(g.device) for g in grads_m]}")
# The inputs of forward and backward are not modified (scale a copy of q, never q itself).
q, k, v = (torch.randn(1, 2, n, 8, device=device, requires_grad=True) for n in (9, 13, 13))
grad_out = torch.randn(1, 2, 9, 8, device=device)
before = [t.detach().clone() for t in (q, k, v, grad_out)]
torch.autograd.grad(flash_attention(q, k, v, causal=True, block_size=4), (q, k, v), grad_out)
for arg, b_, a_ in zip(("q", "k", "v", "grad_out"), before, (q, k, v, grad_out), strict=True):
    assert torch.equal(a_.detach(), b_), f"flash_attention modified its argument {arg} in place: expected it unchanged"
### END HIDDEN TESTS
assert True

# %% test id=test_flash_memory points=2
### BEGIN HIDDEN TESTS
torch.manual_seed(19)
def _fwd_bwd_peak(fn, t):
    q, k, v = (torch.randn(1, 2, t, 32, device=device, requires_grad=True) for _ in range(3))
    grad_out = torch.randn(1, 2, t, 32, device=device)
    synchronize()
    return peak_memory_torch(lambda: fn(q, k, v).backward(grad_out), device=device)[1]


def _naive_causal(q, k, v):  # autograd keeps the T x T scores and probabilities
    t = q.shape[-2]
    hidden = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    return torch.softmax((q @ k.mT / math.sqrt(q.shape[-1])).masked_fill(hidden, float("-inf")), dim=-1) @ v


flash_1k = _fwd_bwd_peak(lambda q, k, v: flash_attention(q, k, v, causal=True, block_size=128), 1024)
flash_2k = _fwd_bwd_peak(lambda q, k, v: flash_attention(q, k, v, causal=True, block_size=128), 2048)
naive_2k = _fwd_bwd_peak(_naive_causal, 2048)
score_bytes = 2 * 2048 * 2048 * 4  # one float32 T x T matrix for 2 heads
# Deterministic byte counts. Measured: flash ~2.9 MB at T=2048 (gradients, a few tiles),
# naive ~106 MB (scores and probabilities kept for the backward, 3 T x T matrices).
assert flash_2k < 0.25 * score_bytes, (
    f"flash_attention forward + backward at T=2048 (2 heads): expected a peak below a quarter of one T x T "
    f"float32 matrix ({score_bytes // 4:,} bytes), got {flash_2k:,} bytes (is a T x T tensor kept or built?)"
)
assert flash_2k < naive_2k / 8, (
    f"flash_attention forward + backward at T=2048: expected under 1/8 of the peak of the naive softmax with "
    f"autograd ({naive_2k:,} bytes), got {flash_2k:,} bytes"
)
# Linear in T: doubling T about doubles the peak (quadratic would quadruple it).
assert flash_2k < 3.0 * flash_1k, (
    f"flash_attention forward + backward: expected peak memory linear in T (ratio < 3 from T=1024 to 2048), "
    f"got {flash_1k:,} -> {flash_2k:,} bytes (ratio {flash_2k / max(flash_1k, 1):.2f})"
)
### END HIDDEN TESTS
assert True

# %% test id=test_flash_work points=1
### BEGIN HIDDEN TESTS
torch.manual_seed(20)
qw, kw, vw = (torch.randn(1, 2, 512, 32, device=device, requires_grad=True) for _ in range(3))
grad_w = torch.randn(1, 2, 512, 32, device=device)
def _flops(causal):
    with FlopCounterMode(display=False) as counter:
        flash_attention(qw, kw, vw, causal=causal, block_size=64).backward(grad_w)
    return counter.get_total_flops()
full_flops, causal_flops = _flops(False), _flops(True)
# Deterministic FLOP counts of the matrix products. With 8 x 8 tiles, skipping those above
# the diagonal leaves 36 of 64 in both passes: 0.56. Skipping them in one pass only gives
# 0.69 or 0.88; masking without skipping, 1.0.
assert causal_flops < 0.65 * full_flops, (
    f"flash_attention forward + backward at T=512, block_size=64: expected causal FLOPs below 0.65 of non-causal "
    f"({full_flops:,}), got {causal_flops:,} ({causal_flops / full_flops:.2f}): skip the tiles above the diagonal "
    f"in both passes"
)
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 6. The key/value cache
#
# A decoder generates one token at a time. Recomputing attention over the whole prefix for
# every new token costs $O(T)$ projections and $O(T^2)$ scores *per token*, $O(T^3)$ for a
# whole generation. But with a causal mask the keys and values of old tokens never change:
# keep them. Each step then projects only the new token(s), rotates them at their true
# positions, **appends** their keys and values to the cache, and attends from the new
# queries to every cached key: $O(T)$ work per token.
#
# Details that matter:
# - the new tokens' positions start at the number of tokens already cached (`len(cache)`),
#   not at 0 and not at `len(cache) + 1`;
# - cache the keys *after* RoPE (their rotation depends only on their own position) and
#   *before* `repeat_kv`: the cache holds $H_{kv}$ heads, which is exactly why GQA exists —
#   the cache of a 32-query-head, 8-kv-head model is 4× smaller;
# - append in time order (old first): with more than one new token, the causal mask of
#   section 1 relies on it, and so does every later step.
#
# `decode_step(attn, x_new, cache)` takes the module of section 3 (use its `q_proj`,
# `k_proj`, `v_proj`, `o_proj`, `num_heads`, `num_kv_heads`, `head_dim`, `rope_base`), a
# chunk of new tokens, and the cache; an empty cache with the whole prompt as `x_new` is
# the "prefill", one token at a time is "decode".

# %% answer id=kv_cache
class KVCache:
    """Keys (after RoPE) and values of the tokens seen so far, for one attention layer.
    self.k, self.v: None while empty, else tensors of shape (B, num_kv_heads, T_cached, head_dim)."""

    def __init__(self):
        self.k = None
        self.v = None

    def __len__(self):
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k_new, v_new):
        """Add the keys and values (B, num_kv_heads, T_new, head_dim) of new tokens after the
        cached ones; return the whole (k, v)."""
        ### BEGIN SOLUTION
        if self.k is None:
            self.k, self.v = k_new, v_new
        else:
            self.k = torch.cat([self.k, k_new], dim=-2)
            self.v = torch.cat([self.v, v_new], dim=-2)
        return self.k, self.v
        ### END SOLUTION


def decode_step(attn, x_new, cache):
    """Run the Attention module `attn` on new tokens x_new (B, T_new, hidden_size) that
    follow the len(cache) tokens already in `cache`; update the cache.
    Returns (B, T_new, hidden_size), equal to attn(all tokens so far)[:, -T_new:], in the
    module's dtype, on x_new's device (including "meta"); biases are used when attn has them."""
    ### BEGIN SOLUTION
    b, t, _ = x_new.shape
    start = len(cache)
    positions = torch.arange(start, start + t, device=x_new.device)
    q = attn.q_proj(x_new).view(b, t, attn.num_heads, attn.head_dim).transpose(1, 2)
    k = attn.k_proj(x_new).view(b, t, attn.num_kv_heads, attn.head_dim).transpose(1, 2)
    v = attn.v_proj(x_new).view(b, t, attn.num_kv_heads, attn.head_dim).transpose(1, 2)
    cos, sin = rope_cos_sin(positions, attn.head_dim, attn.rope_base)
    k_all, v_all = cache.append(apply_rope(k, cos, sin), v)
    groups = attn.num_heads // attn.num_kv_heads
    out = attention(apply_rope(q, cos, sin), repeat_kv(k_all, groups), repeat_kv(v_all, groups), causal=True)
    return attn.o_proj(out.transpose(1, 2).reshape(b, t, attn.num_heads * attn.head_dim))
    ### END SOLUTION

# %% test id=test_cache_visible points=1
torch.manual_seed(10)
layer_c = Attention(hidden_size=32, num_heads=4, num_kv_heads=2).to(device)
xc = torch.randn(1, 6, 32, device=device)
cache_c = KVCache()
with torch.no_grad():
    full_c = layer_c(xc)
    prefill_c = decode_step(layer_c, xc[:, :5], cache_c)
    step_c = decode_step(layer_c, xc[:, 5:], cache_c)
assert len(cache_c) == 6, f"after a 5-token prefill and one step: expected len(cache) == 6, got {len(cache_c)}"
assert_shape(cache_c.k, (1, 2, 6, 8), name="cache.k (B, num_kv_heads, T, head_dim)")
# Same arithmetic on fewer rows: float32 round-off only.
assert_close(prefill_c, full_c[:, :5], rtol=1e-4, atol=1e-5, name="decode_step prefill of 5 tokens vs attn(x)[:, :5]")
assert_close(step_c, full_c[:, 5:], rtol=1e-4, atol=1e-5, name="decode_step for token 5 vs attn(x)[:, 5:]")

# %% test id=test_cache_hidden points=3
### BEGIN HIDDEN TESTS
torch.manual_seed(11)
def _rotated_kv(attn, x):
    b, t, _ = x.shape
    k = attn.k_proj(x).view(b, t, attn.num_kv_heads, attn.head_dim).transpose(1, 2)
    v = attn.v_proj(x).view(b, t, attn.num_kv_heads, attn.head_dim).transpose(1, 2)
    cfg = LlamaConfig(hidden_size=attn.num_heads * attn.head_dim, num_attention_heads=attn.num_heads,
                      num_key_value_heads=attn.num_kv_heads, head_dim=attn.head_dim, rope_theta=attn.rope_base)
    cos, sin = LlamaRotaryEmbedding(cfg).to(device)(x, torch.arange(t, device=device)[None])
    return apply_rotary_pos_emb(k, k, cos, sin)[0], v
fresh = KVCache()
assert fresh.k is None and fresh.v is None and len(fresh) == 0, (
    f"a new KVCache: expected k = v = None and len 0, got k={fresh.k!r}, v={getattr(fresh, 'v', 'missing')!r}, "
    f"len {len(fresh)}")
for hidden, heads, kv_heads, chunks in [(64, 8, 2, [1] * 12), (48, 4, 4, [4, 1, 3, 2, 1]), (64, 8, 1, [7, 1, 1, 5])]:
    layer_h = Attention(hidden, heads, kv_heads).to(device)
    x = torch.randn(2, sum(chunks), hidden, device=device)
    cache = KVCache()
    outs, start = [], 0
    with torch.no_grad():
        expected = layer_h(x)
        for n in chunks:
            outs.append(decode_step(layer_h, x[:, start:start + n], cache))
            start += n
        k_ref, v_ref = _rotated_kv(layer_h, x)
    got = torch.cat(outs, dim=1)
    # float32, the same operations on fewer rows: round-off only.
    assert_close(got, expected, rtol=1e-4, atol=1e-5,
                 name=f"decode_step in chunks {chunks} vs the full forward (H={heads}, H_kv={kv_heads})")
    # The cache holds, in time order, the keys rotated at their true positions and the values,
    # with num_kv_heads heads (not repeated): ~1e-6 float32 differences from Llama's RoPE.
    assert_close(cache.k, k_ref, rtol=1e-4, atol=1e-4, name=f"cache.k after chunks {chunks} (rotated keys, in order)")
    assert_close(cache.v, v_ref, rtol=1e-4, atol=1e-5, name=f"cache.v after chunks {chunks}")
# Biases on the projections (attention_bias=True) and head_dim != hidden / heads.
layer_b = Attention(48, 4, 2, head_dim=16, bias=True).to(device)
with torch.no_grad():
    for name_, param in layer_b.named_parameters():
        if name_.endswith("bias"):
            param.normal_()
x = torch.randn(2, 7, 48, device=device)
cache = KVCache()
with torch.no_grad():
    expected = layer_b(x)
    got = torch.cat([decode_step(layer_b, x[:, :4], cache), decode_step(layer_b, x[:, 4:5], cache),
                     decode_step(layer_b, x[:, 5:], cache)], dim=1)
assert_close(got, expected, rtol=1e-4, atol=1e-4,
             name="decode_step with bias=True and head_dim=16 (hidden 48, 4 heads) vs the full forward")
# bfloat16: same dtype out, and the same numbers as the full forward up to bf16 rounding.
layer_bf = Attention(64, 8, 2).to(device).to(torch.bfloat16)
x = torch.randn(1, 9, 64, device=device).to(torch.bfloat16)
cache = KVCache()
with torch.no_grad():
    expected = layer_bf(x)
    got = torch.cat([decode_step(layer_bf, x[:, :6], cache)] + [decode_step(layer_bf, x[:, i:i + 1], cache)
                                                               for i in range(6, 9)], dim=1)
assert_dtype(got, torch.bfloat16, name="decode_step in bfloat16")
assert cache.k.dtype == torch.bfloat16, f"KVCache in bfloat16: expected bfloat16 keys, got {cache.k.dtype}"
# bf16 keeps 8 significant bits: products over fewer rows may round differently (outputs ~0.3).
assert_close(got.float(), expected.float(), rtol=5e-2, atol=3e-2, name="decode_step in bfloat16 vs the full forward")
# Any device: on "meta", positions made without device=x_new.device fail.
layer_m = Attention(64, 8, 2).to("meta")
cache = KVCache()
try:
    with torch.no_grad():
        decode_step(layer_m, torch.empty(2, 5, 64, device="meta"), cache)
        out_m = decode_step(layer_m, torch.empty(2, 1, 64, device="meta"), cache)
except (RuntimeError, NotImplementedError) as e:
    raise AssertionError(f"decode_step on the meta device: expected a (2, 1, 64) meta tensor, got {type(e).__name__}: "
                         f"{e} (create positions on x_new.device)") from None
assert out_m.device.type == "meta" and tuple(out_m.shape) == (2, 1, 64) and len(cache) == 6, (
    f"decode_step on meta after 5 + 1 tokens: expected a (2, 1, 64) meta output and len(cache) == 6, got "
    f"{tuple(out_m.shape)} on {out_m.device}, len(cache) == {len(cache)}")
### END HIDDEN TESTS
assert True

# %% test id=test_cache_work points=2
### BEGIN HIDDEN TESTS
torch.manual_seed(12)
layer_w = Attention(64, 8, 2).to(device)
xw = torch.randn(1, 401, 64, device=device)
def _step_flops(n):
    cache = KVCache()
    with torch.no_grad():
        decode_step(layer_w, xw[:, :n], cache)
        with FlopCounterMode(display=False) as counter:
            decode_step(layer_w, xw[:, n:n + 1], cache)
    return counter.get_total_flops()
with torch.no_grad(), FlopCounterMode(display=False) as counter:
    layer_w(xw[:, :201])
full_flops = counter.get_total_flops()
step_200, step_400 = _step_flops(200), _step_flops(400)
# Deterministic FLOP counts (matrix products). With a cache, token 201 costs its own
# projections plus 2 products with 201 keys: ~80 kFLOP, against ~14 MFLOP to recompute.
assert step_200 * 20 < full_flops, (
    f"decode_step for token 201 with a cache: expected < 1/20 of the {full_flops:,} FLOPs of recomputing "
    f"201 tokens, got {step_200:,} FLOPs"
)
# Linear, not quadratic, in the cache length.
assert step_400 < 2.5 * step_200, (
    f"decode_step FLOPs should grow at most linearly with the cache length: "
    f"got {step_200:,} at 200 cached tokens and {step_400:,} at 400"
)
### END HIDDEN TESTS
assert True

# %% [markdown]
# Time per generated token with and without the cache. The "model" is one attention layer
# fed random inputs (no vocabulary), which is enough to see the costs: without a cache each
# step recomputes the whole prefix, so its time grows with the position; with a cache it
# stays almost flat.

# %%
torch.manual_seed(13)
layer_t = Attention(256, 8, 2).to(device)
n_tokens = 256
xt = torch.randn(1, n_tokens, 256, device=device)
per_token = {"with KV cache": [], "recompute the prefix": []}
with torch.no_grad():
    warm_cache = KVCache()  # warm-up: the first calls of each operation pay one-off costs
    for i in range(8):
        decode_step(layer_t, xt[:, i:i + 1], warm_cache)
        layer_t(xt[:, :i + 1])
    cache_t = KVCache()
    for i in range(n_tokens):
        synchronize()
        t0 = time.perf_counter()
        decode_step(layer_t, xt[:, i:i + 1], cache_t)
        synchronize()
        per_token["with KV cache"].append(time.perf_counter() - t0)
    for i in range(n_tokens):
        synchronize()
        t0 = time.perf_counter()
        layer_t(xt[:, :i + 1])[:, -1:]
        synchronize()
        per_token["recompute the prefix"].append(time.perf_counter() - t0)
fig, ax = plt.subplots(figsize=(5.5, 4))
for label, times in per_token.items():
    ax.plot(range(1, n_tokens + 1), [s * 1e3 for s in times], label=label)
ax.set_xlabel("token position")
ax.set_ylabel("time per token (ms)")
ax.set_title(f"decoding {n_tokens} tokens on {device}")
ax.legend()
plt.show()
total_cached, total_recompute = sum(per_token["with KV cache"]), sum(per_token["recompute the prefix"])
print(f"{n_tokens} tokens: {total_cached * 1e3:.0f} ms with the cache, {total_recompute * 1e3:.0f} ms without "
      f"-> {total_recompute / total_cached:.1f}x faster (one noisy run; see benchmark.py for a careful one)")

# %% [markdown]
# ## Wrap-up
#
# You wrote attention with masks, RoPE (and the weight permutation between its two
# layouts), a Llama-compatible GQA layer, the FlashAttention algorithm forward and
# backward, and a KV cache, and checked each against PyTorch's or `transformers`' own code.
# What production systems do differently:
#
# - **FlashAttention** (1, 2, 3) runs the same online softmax inside one fused GPU kernel:
#   tiles of $Q$, $K$ and $V$ sit in on-chip SRAM, so the $T^2$ scores never reach GPU
#   memory at all; it parallelises over query tiles, and its backward pass recomputes $P$
#   from the saved log-sum-exp exactly as yours does (FlashAttention-2 parallelises the
#   backward over key tiles, so that $dK$ and $dV$ need no atomic adds). Our Python loop
#   launches many small operations per block; the fused kernel launches one. The same
#   trade — recompute rather than store — is *activation checkpointing* at the scale of
#   whole layers.
# - **The KV cache in vLLM (PagedAttention)** is not one growing tensor per sequence: our
#   `torch.cat` copies the whole cache at every step. vLLM preallocates fixed-size *pages*
#   (blocks of e.g. 16 tokens) and keeps a page table per sequence, like virtual memory, so
#   memory is not fragmented, sequences can share prefix pages, and many requests of
#   different lengths batch together. Its attention kernel reads keys through that table.
# - **Decoding is memory-bound**: each new token reads the whole cache once and does little
#   arithmetic with it. Hence GQA/MQA (fewer kv heads), cache quantization (fp8/int8 keys
#   and values), and sliding-window or sparse attention to bound what is read.
# - **Masks in practice**: libraries pass boolean or additive masks, or build them lazily
#   (`transformers.masking_utils`); fused kernels take `is_causal` and sequence lengths
#   ("varlen") instead of a dense mask, so padding costs no memory at all.
# - **Long-context RoPE**: Llama 3 and others rescale the frequencies $\theta_i$ (NTK,
#   YaRN, `rope_type="llama3"`) to extend the context beyond the training length.
#
# Next: reading `flash_attn`'s Python interface or vLLM's `PagedAttention` should now be a
# matter of recognising $m$, $\ell$, the rescaling factor, and a cache indexed by pages.
