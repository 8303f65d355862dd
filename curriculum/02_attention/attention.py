# %% [markdown]
# # Unit 02 — Attention: from the formula to FlashAttention and the KV cache
#
# Attention is the one layer of a transformer that mixes information *between* tokens,
# and it is where long contexts become expensive. In this unit you write it five times,
# each time closer to what runs in production:
#
# 1. scaled dot-product attention with causal and padding masks, batched over (batch, heads);
# 2. rotary position embeddings (RoPE), exactly as Llama applies them;
# 3. a multi-head attention module with grouped-query attention (GQA), checked weight for
#    weight against `transformers`' own `LlamaAttention`;
# 4. memory-efficient attention: the FlashAttention algorithm (tiles of keys, online
#    softmax) in plain PyTorch, graded on its peak memory and its speed;
# 5. a key/value cache for incremental decoding, graded on the work done per new token.
#
# ## Learning objectives
#
# After this unit you can
# - write masked attention for tensors of shape `(batch, heads, time, head_dim)` and say
#   what a fully masked row should return;
# - explain why RoPE encodes *relative* position, and spot the half-split vs interleaved
#   pairing mistake;
# - map the weights of a real checkpoint's attention layer (q/k/v/o projections, GQA) onto
#   your own module;
# - derive the online-softmax update and explain why FlashAttention needs memory linear in
#   the sequence length instead of quadratic;
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
# - **Time:** about 3 hours.
# - **Device:** everything runs on a laptop CPU; the whole notebook takes about a minute on
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

# %% answer id=sdpa
def attention(q, k, v, causal=False, key_padding_mask=None):
    """Scaled dot-product attention, batched over (batch, heads).

    q: (B, H, T_q, d); k, v: (B, H, T_k, d); any float dtype, possibly non-contiguous.
    causal: if True, query i (at position T_k - T_q + i) sees only keys j <= T_k - T_q + i.
    key_padding_mask: None, or a bool tensor (B, T_k), True = real token, False = padding.
    Returns (B, H, T_q, d), same dtype as q. A query with no visible key returns zeros.
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
# **Which dimensions form a pair?** The paper pairs neighbours $(x_0, x_1), (x_2, x_3), \dots$
# ("interleaved"). Llama's code (and hence every Llama checkpoint) pairs dimension $i$ with
# $i + d/2$ ("half-split"):
#
# $$ \operatorname{rope}(x) = x \odot \cos\phi + \operatorname{rotate\_half}(x) \odot \sin\phi,
#    \qquad \operatorname{rotate\_half}(x) = (-x_{d/2:},\ x_{:d/2}),$$
#
# where $\phi = (m\theta_0, \dots, m\theta_{d/2-1},\ m\theta_0, \dots, m\theta_{d/2-1})$ repeats
# the angles once for each half. Both conventions are valid rotations, but a checkpoint
# trained with one gives garbage with the other. We use the half-split convention.
#
# Positions start at 0: the first token is not rotated at all.

# %% answer id=rope
def rope_cos_sin(position_ids, head_dim, base=10000.0):
    """cos and sin of the RoPE angles, half-split layout.

    position_ids: integer tensor of shape (T,) or (B, T).
    Returns (cos, sin), each float32 of shape position_ids.shape + (head_dim,), where
    entry [..., t, j] uses the angle position * base ** (-2 * (j mod head_dim/2) / head_dim).
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
    (B, T, head_dim) (the same for every head). Returns a tensor shaped like x."""
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
# $H_{kv} = 1$ is multi-query attention. The payoff comes in section 5: the KV cache
# shrinks by $H / H_{kv}$.
#
# The projection names (`q_proj`, `k_proj`, `v_proj`, `o_proj`, no biases) are those of
# Llama's `LlamaAttention`, so its `state_dict` loads into yours and back. Read its source
# (`transformers/models/llama/modeling_llama.py`) once you are done: it should look familiar.

# %% answer id=mha
def repeat_kv(x, n_rep):
    """(B, H_kv, T, d) -> (B, H_kv * n_rep, T, d): each kv head repeated n_rep times in a row."""
    ### BEGIN SOLUTION
    return x.repeat_interleave(n_rep, dim=1)
    ### END SOLUTION


class Attention(torch.nn.Module):
    """Causal self-attention with RoPE and grouped-query attention, Llama-style."""

    def __init__(self, hidden_size, num_heads, num_kv_heads, head_dim=None, rope_base=10000.0):
        super().__init__()
        if num_heads % num_kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = head_dim or hidden_size // num_heads
        self.rope_base = rope_base
        self.q_proj = torch.nn.Linear(hidden_size, num_heads * self.head_dim, bias=False)
        self.k_proj = torch.nn.Linear(hidden_size, num_kv_heads * self.head_dim, bias=False)
        self.v_proj = torch.nn.Linear(hidden_size, num_kv_heads * self.head_dim, bias=False)
        self.o_proj = torch.nn.Linear(num_heads * self.head_dim, hidden_size, bias=False)

    def forward(self, x, position_ids=None, key_padding_mask=None):
        """x: (B, T, hidden_size). position_ids: None (meaning 0..T-1), (T,) or (B, T).
        key_padding_mask: None or bool (B, T), True = real token.
        Returns (B, T, hidden_size): causal attention with RoPE applied to q and k."""
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
#
# With a causal mask ($T_q \le T_k$, positions aligned at the end as in section 1), mask
# the scores of each tile exactly as in section 1, using the keys' true positions
# (`start + j`), before the tile's maximum is taken. A tile whose keys all lie before the
# first query's position needs no mask at all.
#
# Tiling the keys alone removes the $T^2$ memory, which is what we grade. FlashAttention
# also tiles the *queries* (an outer loop over tiles of rows, each with its own $m$, $\ell$,
# $a$), so that a tile of $Q$, $K$, $V$ fits in the GPU's on-chip SRAM, and a causal pass then
# skips the (query tile, key tile) pairs that lie entirely above the diagonal: half the
# work. Doing the same here is optional; the reference solution does, and on a CPU it then
# runs within about 2× of PyTorch's fused kernel.

# %% answer id=tiled
def tiled_attention(q, k, v, causal=False, block_size=128):
    """Attention computed over tiles of block_size keys with an online softmax.

    q: (B, H, T_q, d); k, v: (B, H, T_k, d); for causal=True, T_q <= T_k and query i sits
    at position T_k - T_q + i. Returns (B, H, T_q, d), same dtype as q, equal to
    attention(q, k, v, causal) up to round-off, without ever holding a T_q x T_k tensor.
    (Tiling the queries too, by block_size, is optional: it lets a causal pass skip tiles.)
    """
    ### BEGIN SOLUTION
    t_q, t_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    offset = t_k - t_q  # query i sits at position offset + i
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
    for q0 in range(0, t_q, block_size):  # outer loop: a tile of queries
        q1 = min(q0 + block_size, t_q)
        q_tile = q[..., q0:q1, :] * (1.0 / math.sqrt(d))
        row_max = torch.full((*q_tile.shape[:-1], 1), float("-inf"), dtype=q.dtype, device=q.device)
        row_sum = torch.zeros_like(row_max)
        acc = torch.zeros(*q_tile.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
        # Causal: keys after this tile's last query are hidden from all of its rows; skip them.
        stop = offset + q1 if causal else t_k
        for k0 in range(0, stop, block_size):  # inner loop: tiles of keys, online softmax
            k1 = min(k0 + block_size, stop)
            s = q_tile @ k[..., k0:k1, :].transpose(-2, -1)
            if causal and k1 - 1 > offset + q0:  # the tile crosses the diagonal: mask it
                key_pos = torch.arange(k0, k1, device=q.device)[None, :]
                query_pos = torch.arange(offset + q0, offset + q1, device=q.device)[:, None]
                s.masked_fill_(key_pos > query_pos, float("-inf"))
            new_max = torch.maximum(row_max, s.amax(dim=-1, keepdim=True))
            p = s.sub_(new_max).exp_()  # in place: s is not needed any more
            correction = torch.exp(row_max - new_max)
            row_sum = row_sum * correction + p.sum(dim=-1, keepdim=True)
            acc = acc * correction + p @ v[..., k0:k1, :]
            row_max = new_max
        out[..., q0:q1, :] = acc / row_sum
    return out
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

# %% test id=test_tiled_correct points=2
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
### END HIDDEN TESTS
assert True

# %% test id=test_tiled_speed points=2
### BEGIN HIDDEN TESTS
torch.manual_seed(9)
def _naive(q, k, v):
    t = q.shape[-2]
    bias = torch.full((t, t), float("-inf"), device=q.device).triu(1)
    return torch.softmax(q @ k.mT * q.shape[-1] ** -0.5 + bias, dim=-1) @ v
t_speed = 1024 if device.type == "cpu" else 4096
qs, ks, vs = (torch.randn(1, 4, t_speed, 64, device=device) for _ in range(3))
block = 128 if device.type == "cpu" else 1024
ratio = speedup(lambda: tiled_attention(qs, ks, vs, causal=True, block_size=block),
                lambda: _naive(qs, ks, vs), repeats=5, warmup=2)
# A ratio from one interleaved run, never an absolute time. Blocked tiles do the same
# matrix products as the naive version plus a few passes over each tile; a loop over
# single keys or single queries is many times slower. 4x slower leaves a wide
# margin for a noisy shared machine.
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
# ## 5. The key/value cache
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
    Returns (B, T_new, hidden_size), equal to attn(all tokens so far)[:, -T_new:]."""
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
# You wrote attention with masks, RoPE, a Llama-compatible GQA layer, the FlashAttention
# algorithm and a KV cache, and checked each against PyTorch's or `transformers`' own code.
# What production systems do differently:
#
# - **FlashAttention** (1, 2, 3) runs the same online softmax inside one fused GPU kernel:
#   tiles of $Q$, $K$ and $V$ sit in on-chip SRAM, so the $T^2$ scores never reach GPU
#   memory at all; it parallelises over query tiles, and the backward pass recomputes
#   the scores from the saved row statistics ($m$, $\ell$) instead of storing $P$. Our
#   Python loop launches many small operations per block; the fused kernel launches one.
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
