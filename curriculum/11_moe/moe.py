# %% [markdown]
# # Unit 11 — Mixture of experts: routing, dispatch, load balancing, capacity and counting
#
# A mixture-of-experts (MoE) layer replaces a transformer's one MLP by $E$ MLPs ("experts")
# and a **router** that sends each token to only $k$ of them. The model then holds $E$ times
# the MLP parameters but spends on each token only the FLOPs of $k$ experts: Mixtral-8x7B
# holds 46.7 B parameters and runs about 13 B per token; DeepSeek-V3 holds 671 B and runs
# about 37 B. In this unit you build the pieces exactly as transformers runs them:
#
# 1. the **router** in the two conventions real models use (Mixtral's; Qwen-MoE's), equal to
#    transformers' `MixtralSparseMoeBlock` and `Qwen2MoeSparseMoeBlock` with the same weights;
# 2. the **MoE layer without waste**: tokens sorted by expert, each expert run once on its
#    tokens, results added back with `index_add`; graded on FLOPs and on speed against
#    running every expert on every token;
# 3. **load balancing**: the Switch auxiliary loss against transformers'
#    `load_balancing_loss_func`, the router z-loss, and DeepSeek-V3's auxiliary-loss-free bias
#    update, which you watch balance a skewed router step by step;
# 4. **capacity and dropping**: a fixed number of slots per expert and which tokens lose
#    them under a stated priority rule;
# 5. **counting what MoE buys**: total and active parameters, FLOPs per token and weight bytes
#    per GPU under expert parallelism, for Mixtral-8x7B and DeepSeek-V3 built on the `meta`
#    device;
# 6. **expert parallelism** on real `torch.distributed` (gloo) processes: each rank holds E/N
#    experts, and tokens travel there and back by all-to-all; graded on outputs, gradients and
#    the exact bytes each rank sends.
#
# ## Learning objectives
#
# After this unit you can
# - write top-k routing in both conventions and say when they give the same weights;
# - dispatch tokens to experts by sorting and combine them with `index_add`, and prove by
#   counting FLOPs that the layer does k/E of the dense work;
# - compute the Switch/GShard balancing loss and the router z-loss, and balance a router
#   without any loss term by DeepSeek-V3's bias update;
# - compute an expert's capacity and say exactly which tokens are dropped;
# - count total and active parameters of a real MoE configuration and the weight memory per
#   GPU when experts are spread over GPUs;
# - dispatch and combine tokens between expert-parallel ranks with all-to-all, with gradients.
#
# ## Prerequisites
#
# PyTorch tensors and autograd, `torch.topk`, `softmax`; the SwiGLU MLP of a Llama block (unit
# 04). Section 6 starts gloo processes with `run_distributed`, explained there (unit 12,
# distributed training, uses it throughout).
#
# ## Time, device, skills
#
# - **Time:** about 3 hours.
# - **Device:** CPU. Every layer here is tiny (hidden size 32 to 128); the whole notebook runs
#   in about a minute on 2 cores. Nothing is downloaded: every model is built from a config.
#   The same code runs on a CUDA GPU (pass `device=`; nothing assumes the CPU). Section 6
#   starts 2 to 4 worker processes from the notebook (`gloo`; `nccl` on several GPUs).
# - **Skills practised:** *Architectures* (mixture-of-experts layers: routing, load
#   balancing, expert parallelism); *Neural networks* (the expert MLPs, gradients through the
#   router); *Engineering habits* (reading library source, counting FLOPs instead of timing).
#
# Run the cell below first. It fixes seeds and threads and silences library warnings (the
# grader scores any test cell that writes to stderr as 0), and gives you tiny transformers MoE
# blocks to compare against.

# %% setup id=setup
import math

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dnf
import torch.nn.functional as F
from graders.notebook import setup

setup()

import matplotlib.pyplot as plt
from graders.notebook import assert_close, assert_scalar_close, run_distributed, speedup
from torch.utils.flop_counter import FlopCounterMode
from transformers import MixtralConfig, Qwen2MoeConfig
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock, load_balancing_loss_func
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock


def mixtral_block(hidden=32, intermediate=48, experts=8, k=2, seed=0, dtype=torch.float32, device="cpu"):
    """A transformers MixtralSparseMoeBlock with random weights (a fixed seed)."""
    config = MixtralConfig(hidden_size=hidden, intermediate_size=intermediate, num_local_experts=experts,
                           num_experts_per_tok=k)
    config._experts_implementation = "eager"  # the reference loop, not a fused kernel
    torch.manual_seed(seed)
    block = MixtralSparseMoeBlock(config)
    with torch.no_grad():
        block.gate.weight.normal_(0, 0.5)
        block.experts.gate_up_proj.normal_(0, hidden ** -0.5)
        block.experts.down_proj.normal_(0, intermediate ** -0.5)
    return block.to(device=device, dtype=dtype)


def qwen_block(hidden=32, intermediate=24, shared=40, experts=8, k=2, norm_topk_prob=False, seed=0,
               dtype=torch.float32, device="cpu"):
    """A transformers Qwen2MoeSparseMoeBlock (routed experts plus a gated shared expert)."""
    config = Qwen2MoeConfig(hidden_size=hidden, moe_intermediate_size=intermediate, num_experts=experts,
                            num_experts_per_tok=k, norm_topk_prob=norm_topk_prob,
                            shared_expert_intermediate_size=shared)
    config._experts_implementation = "eager"
    torch.manual_seed(seed)
    block = Qwen2MoeSparseMoeBlock(config)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.2)
        block.gate.weight.normal_(0, 0.5)
    return block.to(device=device, dtype=dtype)


def all_experts(x, weights, experts, gate_up_proj, down_proj):
    """The wasteful MoE layer: every expert on every token, then a weighted sum in which only
    the k chosen experts have non-zero weight. The same result as the sparse layer."""
    inter = down_proj.shape[-1]
    h = torch.einsum("th,eih->eti", x, gate_up_proj)
    h = F.silu(h[..., :inter]) * h[..., inter:]
    y = torch.einsum("eti,ehi->eth", h, down_proj)
    dense = torch.zeros(x.shape[0], gate_up_proj.shape[0], dtype=weights.dtype, device=x.device)
    dense.scatter_(1, experts, weights)
    return torch.einsum("te,eth->th", dense.to(y.dtype), y).to(x.dtype)


block = mixtral_block()
print(block)

# %% [markdown]
# ## 1. The router, in two conventions
#
# The router is one linear map, $\ell = W_r x \in \mathbb{R}^E$ (the *logits*), for each token.
# Two conventions turn it into $k$ experts and their weights:
#
# - **top-k, then softmax** (Mixtral): take the $k$ largest logits $S$ and
#   $w_i = e^{\ell_i} / \sum_{j \in S} e^{\ell_j}$ for $i \in S$. The weights sum to 1.
# - **softmax, then top-k** (Qwen-MoE, and DeepSeek-V2 before its sigmoid router):
#   $p = \mathrm{softmax}(\ell)$ over all $E$ experts, keep the $k$ largest $p_i$ as they are
#   (`norm_topk_prob=False`: they sum to less than 1) or divided by their sum
#   (`norm_topk_prob=True`).
#
# Softmax is monotonic, so both choose the same experts, and softmax-then-top-k *renormalised*
# equals top-k-then-softmax: $p_i / \sum_{j\in S} p_j = e^{\ell_i}/\sum_{j\in S} e^{\ell_j}$.
# That is why transformers' Mixtral router computes it the second way. The difference that is
# left is the unrenormalised weights of Qwen-MoE, and dtypes: transformers computes the
# softmax in float32 even for a bf16 model; Mixtral keeps float32 weights, Qwen-MoE casts them
# back to the logits' dtype.
#
# **Exercise.** Write both routers. Use `torch.topk` to choose (its choice among exactly equal
# scores is the one transformers makes).

# %% answer id=routers
def route_topk_softmax(logits, k):
    """Mixtral's router: top-k over the logits, then softmax over those k.

    logits: (T, E) tensor of any floating dtype (the router's output for T tokens).
    Returns (weights, experts): weights (T, k) float32, each row summing to 1, computed in
    float32 whatever the logits' dtype; experts (T, k) int64, the chosen experts, in
    descending order of weight (ties as torch.topk chooses). `logits` is not modified.
    """
    ### BEGIN SOLUTION
    top, experts = torch.topk(logits.float(), k, dim=-1)
    return torch.softmax(top, dim=-1), experts
    ### END SOLUTION


def route_softmax_topk(logits, k, norm_topk_prob):
    """Qwen-MoE's router: softmax over all E experts (in float32), then the top k.

    logits: (T, E) tensor of any floating dtype.
    norm_topk_prob: if True the k probabilities are divided by their sum; if False they are
    returned as they are (a row sums to at most 1).
    Returns (weights, experts): weights (T, k) in the logits' dtype (the float32 result cast
    back); experts (T, k) int64, in descending order of weight (ties as torch.topk chooses).
    """
    ### BEGIN SOLUTION
    probs = torch.softmax(logits.float(), dim=-1)
    weights, experts = torch.topk(probs, k, dim=-1)
    if norm_topk_prob:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights.to(logits.dtype), experts
    ### END SOLUTION

# %% test id=test_routers_visible points=1
_logits = torch.tensor([[2.0, 0.0, 1.0, -1.0]])
_w, _e = route_topk_softmax(_logits, 2)
# experts 0 and 2; weights e^2 / (e^2 + e^1) and e^1 / (e^2 + e^1)
assert _e.tolist() == [[0, 2]], f"route_topk_softmax chose experts {_e.tolist()}, expected [[0, 2]]"
assert_close(_w, torch.tensor([[1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))]]), rtol=1e-6, atol=1e-7,
             name="route_topk_softmax weights")
_w, _e = route_softmax_topk(_logits, 2, norm_topk_prob=False)
_p = torch.softmax(_logits, -1)
assert _e.tolist() == [[0, 2]], f"route_softmax_topk chose experts {_e.tolist()}, expected [[0, 2]]"
assert_close(_w, _p[:, [0, 2]], rtol=1e-6, atol=1e-7, name="route_softmax_topk weights (not renormalised)")
assert _w.dtype == torch.float32 and _e.dtype == torch.int64, f"dtypes: got {_w.dtype}, {_e.dtype}"

# %% test id=test_routers_hidden points=3
### BEGIN HIDDEN TESTS
def _dense(weights, experts, num_experts):
    # Order-free comparison: the weight each token gives each expert (0 when not chosen).
    out = torch.zeros(experts.shape[0], num_experts, dtype=torch.float64)
    return out.scatter_(1, experts, weights.double())


for _dtype in (torch.float32, torch.bfloat16):
    for _E, _k, _seed in [(8, 2, 1), (6, 1, 2), (5, 5, 3), (16, 4, 4)]:
        _mix = mixtral_block(experts=_E, k=_k, seed=_seed, dtype=_dtype)
        _x = torch.randn(3, 7, 32, generator=torch.Generator().manual_seed(_seed)).to(_dtype)
        _logits, _ref_w, _ref_e = _mix.gate(_x)
        _before = _logits.clone()
        _w, _e = route_topk_softmax(_logits, _k)
        assert torch.equal(_logits, _before), "route_topk_softmax modified its input"
        assert _w.shape == (21, _k) and _e.shape == (21, _k), f"shapes: got {tuple(_w.shape)}, {tuple(_e.shape)}"
        assert _w.dtype == torch.float32, f"Mixtral's weights are float32 for {_dtype} logits, got {_w.dtype}"
        assert _e.dtype == torch.int64, f"experts must be int64, got {_e.dtype}"
        # Both sides compute in float32 from the same logits: only float32 round-off differs.
        assert_close(_dense(_w, _e, _E), _dense(_ref_w, _ref_e, _E), rtol=1e-5, atol=1e-6,
                     name=f"route_topk_softmax vs MixtralSparseMoeBlock.gate, E={_E} k={_k} {_dtype}")
        assert bool((_w[:, :-1] >= _w[:, 1:]).all()), "weights must be in descending order"
        for _norm in (False, True):
            _qwen = qwen_block(experts=_E, k=_k, norm_topk_prob=_norm, seed=_seed, dtype=_dtype)
            _logits, _ref_w, _ref_e = _qwen.gate(_x)
            _w, _e = route_softmax_topk(_logits, _k, _norm)
            assert _w.dtype == _dtype, f"Qwen's weights come back in the logits' dtype {_dtype}, got {_w.dtype}"
            # Float32 round-off, then one rounding to the logits' dtype (bf16: 2^-8 relative).
            _tol = 1e-5 if _dtype == torch.float32 else 8e-3
            assert_close(_dense(_w, _e, _E), _dense(_ref_w, _ref_e, _E), rtol=_tol, atol=1e-6,
                         name=f"route_softmax_topk vs Qwen2MoeSparseMoeBlock.gate, E={_E} k={_k} "
                              f"norm_topk_prob={_norm} {_dtype}")

# Logits of hundreds: a softmax that is not computed stably overflows.
_big = torch.tensor([[300.0, 100.0, 299.0, -50.0], [-400.0, -399.0, -398.0, -401.0]])
_w, _e = route_topk_softmax(_big, 2)
# experts 0, 2 (weights 1/(1+e^-1), 1/(1+e)) and experts 2, 1 (1/(1+e^-1), 1/(1+e))
_expected = torch.zeros(2, 4, dtype=torch.float64)
_expected[0, 0] = _expected[1, 2] = 1 / (1 + math.exp(-1))
_expected[0, 2] = _expected[1, 1] = 1 / (1 + math.exp(1))
assert_close(_dense(_w, _e, 4), _expected, rtol=1e-6, atol=1e-7, name="route_topk_softmax at logits of hundreds")
_w, _e = route_softmax_topk(_big, 2, True)
assert bool(torch.isfinite(_w).all()), f"route_softmax_topk returned non-finite weights {_w.tolist()}"

# Exact ties (Qwen initialises its router to zeros): every choice is k distinct experts with
# weight 1/E (or 1/k renormalised).
_zeros = torch.zeros(4, 6)
for _norm, _value in ((False, 1 / 6), (True, 1 / 3)):
    _w, _e = route_softmax_topk(_zeros, 3, _norm)
    assert_close(_w, torch.full((4, 3), _value), rtol=1e-6, atol=0,
                 name=f"route_softmax_topk on tied logits, norm_topk_prob={_norm}")
    assert all(len(set(r)) == 3 for r in _e.tolist()), f"tied logits: experts must be distinct, got {_e.tolist()}"
_w, _e = route_topk_softmax(_zeros, 3)
assert_close(_w, torch.full((4, 3), 1 / 3), rtol=1e-6, atol=0, name="route_topk_softmax on tied logits")
# float64 logits: Qwen's weights come back as float64
_w, _ = route_softmax_topk(torch.randn(3, 4, dtype=torch.float64), 2, False)
assert _w.dtype == torch.float64, f"float64 logits: weights must be float64, got {_w.dtype}"
# meta device: nothing assumes the CPU
_w, _e = route_topk_softmax(torch.empty(5, 8, device="meta"), 2)
assert _w.device.type == "meta" and _w.shape == (5, 2), f"meta logits: got {_w.device}, {tuple(_w.shape)}"
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 2. The MoE layer without waste
#
# Each expert is a SwiGLU MLP. transformers stores all $E$ of them as two stacked tensors:
# `gate_up_proj` of shape $(E, 2I, H)$ (rows $0..I-1$ are the gate projection, rows $I..2I-1$
# the up projection) and `down_proj` of shape $(E, H, I)$:
#
# $$\mathrm{expert}_e(x) = W^{down}_e\,\big(\mathrm{silu}(W^{gate}_e x) \odot W^{up}_e x\big),
# \qquad y_t = \sum_{j=1}^{k} w_{tj}\, \mathrm{expert}_{e_{tj}}(x_t).$$
#
# Running every expert on every token and multiplying the unchosen ones by 0 (`all_experts`
# in the setup cell) gives the right answer with $E/k$ times the work. The efficient layer:
#
# 1. flatten the $T \times k$ (token, expert) pairs and **sort them by expert**
#    (`argsort`); the pair at sorted position $s$ belongs to token `order[s] // k`;
# 2. gather the tokens in that order, so each expert's tokens are one contiguous block
#    (`bincount` gives the block sizes), and run each expert **once**, on its block;
# 3. multiply each row by its routing weight and **add it back** to its token with
#    `index_add` (a token appears $k$ times).
#
# This is what real MoE kernels do (Megablocks, vLLM's fused MoE, and the "grouped GEMM"
# experts implementations of transformers): one permutation, a grouped matmul, one
# un-permutation. transformers' eager loop instead searches the routing for each expert
# (`torch.where` per expert): the same FLOPs, more passes over the routing.
#
# **Exercise.** Write `moe_experts`. You are graded on equality with transformers' blocks
# (values and gradients), on FLOPs counted by `torch.utils.flop_counter.FlopCounterMode`
# (within 10% of $2 \cdot T k \cdot 3HI$, the matmuls of the chosen experts), and on speed
# against `all_experts` measured in the same run.

# %% answer id=layer
def moe_experts(x, weights, experts, gate_up_proj, down_proj):
    """The routed experts of an MoE layer, by sort/permute dispatch and index_add combine.

    x: (T, H) tokens, any floating dtype. weights: (T, k) routing weights (float32 or
    x's dtype); experts: (T, k) int64 expert of each slot (the routers' outputs).
    gate_up_proj: (E, 2I, H), gate rows first then up rows; down_proj: (E, H, I).
    Returns y: (T, H) in x's dtype, y_t = sum_j weights[t, j] * expert_{experts[t, j]}(x_t)
    with expert_e(v) = down_e (silu(gate_e v) * up_e v). Products of an expert's output by
    its weight are formed in the promoted dtype of the two (float32 for float32 weights) and
    the sum is cast to x's dtype at the end. Each expert runs at most once, on exactly the
    tokens routed to it (an expert with no tokens does no work); the result is differentiable
    with respect to x, weights and both weight tensors; no input is modified.
    """
    ### BEGIN SOLUTION
    num_tokens, k = experts.shape
    inter = down_proj.shape[-1]
    flat = experts.reshape(-1)
    order = torch.argsort(flat, stable=True)
    token = order // k
    counts = torch.bincount(flat, minlength=gate_up_proj.shape[0]).tolist()
    gathered = x[token]
    outputs = []
    start = 0
    for e, n in enumerate(counts):
        if n == 0:
            continue
        h = gathered[start:start + n] @ gate_up_proj[e].T
        h = F.silu(h[:, :inter]) * h[:, inter:]
        outputs.append(h @ down_proj[e].T)
        start += n
    out = torch.cat(outputs) * weights.reshape(-1)[order, None]
    y = torch.zeros(num_tokens, x.shape[1], dtype=out.dtype, device=x.device)
    return y.index_add(0, token, out).to(x.dtype)
    ### END SOLUTION

# %% test id=test_layer_visible points=1
_block = mixtral_block(hidden=8, intermediate=12, experts=4, k=2, seed=0)
_x = torch.randn(5, 8)
_logits = _x @ _block.gate.weight.T
_w, _e = route_topk_softmax(_logits, 2)
_p = _block.experts
_y = moe_experts(_x, _w, _e, _p.gate_up_proj, _p.down_proj)
assert _y.shape == (5, 8), f"moe_experts returned shape {tuple(_y.shape)}, expected (5, 8)"
# The wasteful version computes the same thing (float32 round-off only).
assert_close(_y, all_experts(_x, _w, _e, _p.gate_up_proj, _p.down_proj), rtol=1e-5, atol=1e-6,
             name="moe_experts vs all_experts")

# %% test id=test_layer_hidden points=4
### BEGIN HIDDEN TESTS
def _mixtral_layer(block, x):
    shape = x.shape
    x = x.reshape(-1, shape[-1])
    w, e = route_topk_softmax(x @ block.gate.weight.T, block.gate.top_k)
    return moe_experts(x, w, e, block.experts.gate_up_proj, block.experts.down_proj).reshape(shape)


def _qwen_layer(block, x):
    shape = x.shape
    x = x.reshape(-1, shape[-1])
    w, e = route_softmax_topk(x @ block.gate.weight.T, block.gate.top_k, block.gate.norm_topk_prob)
    y = moe_experts(x, w, e, block.experts.gate_up_proj, block.experts.down_proj)
    shared = torch.sigmoid(block.shared_expert_gate(x)) * block.shared_expert(x)
    return (y + shared).reshape(shape)


for _E, _k, _seed, _T in [(8, 2, 5, 6), (4, 1, 6, 9), (6, 6, 7, 4), (16, 3, 8, 11), (8, 2, 9, 1)]:
    _block = mixtral_block(experts=_E, k=_k, seed=_seed)
    _x = torch.randn(2, _T, 32, generator=torch.Generator().manual_seed(_seed), requires_grad=True)
    _x_before = _x.detach().clone()
    _got = _mixtral_layer(_block, _x)
    _ref = _block(_x)
    # Same products, summed in another order (index_add per slot vs per expert): float32 round-off.
    assert_close(_got, _ref, rtol=1e-5, atol=1e-6, name=f"moe_experts in a Mixtral block, E={_E} k={_k} T={2 * _T}")
    assert torch.equal(_x.detach(), _x_before), "moe_experts modified x"
    _go = torch.randn_like(_ref)
    _grads = torch.autograd.grad(_got, [_x, _block.gate.weight, _block.experts.gate_up_proj, _block.experts.down_proj], _go)
    _refs = torch.autograd.grad(_ref, [_x, _block.gate.weight, _block.experts.gate_up_proj, _block.experts.down_proj], _go)
    for _name, _g, _r in zip(("x", "router weight", "gate_up_proj", "down_proj"), _grads, _refs):
        assert_close(_g, _r, rtol=1e-4, atol=1e-6, name=f"gradient of {_name}, E={_E} k={_k}")
    for _norm in (False, True):
        _qb = qwen_block(experts=_E, k=_k, norm_topk_prob=_norm, seed=_seed)
        assert_close(_qwen_layer(_qb, _x), _qb(_x), rtol=1e-5, atol=1e-6,
                     name=f"moe_experts in a Qwen2-MoE block, E={_E} k={_k} norm_topk_prob={_norm}")

# bf16 model: Mixtral's float32 weights times bf16 expert outputs; the result in bf16.
_block = mixtral_block(experts=8, k=2, seed=11, dtype=torch.bfloat16)
_x = torch.randn(40, 32, generator=torch.Generator().manual_seed(11)).to(torch.bfloat16)
_got = _mixtral_layer(_block, _x)
assert _got.dtype == torch.bfloat16, f"bf16 x: moe_experts must return bf16, got {_got.dtype}"
# transformers rounds each expert's weighted output to bf16 before adding; a few bf16 steps.
assert_close(_got.float(), _block(_x[None])[0].float(), rtol=3e-2, atol=2e-2, name="moe_experts in bf16")

# Experts that receive no token, and non-contiguous routing input.
_block = mixtral_block(experts=8, k=2, seed=12)
_x = torch.randn(3, 32, generator=torch.Generator().manual_seed(12))
_e = torch.tensor([[7, 2], [2, 7], [7, 3]]).T.contiguous().T
_w = torch.rand(3, 2, generator=torch.Generator().manual_seed(13))
assert_close(moe_experts(_x, _w, _e, _block.experts.gate_up_proj, _block.experts.down_proj),
             _block.experts(_x, _e, _w), rtol=1e-5, atol=1e-6,
             name="moe_experts with 5 of 8 experts idle (vs transformers' MixtralExperts)")
_w_before, _e_before = _w.clone(), _e.clone()
moe_experts(_x, _w, _e, _block.experts.gate_up_proj, _block.experts.down_proj)
assert torch.equal(_w, _w_before) and torch.equal(_e, _e_before), "moe_experts modified weights or experts"
# float64 throughout: nothing may assume float32
_p64 = [t.detach().double() for t in (_block.experts.gate_up_proj, _block.experts.down_proj)]
_y64 = moe_experts(_x.double(), _w.double(), _e, *_p64)
assert _y64.dtype == torch.float64, f"float64 inputs: moe_experts must return float64, got {_y64.dtype}"
assert_close(_y64, all_experts(_x.double(), _w.double(), _e, *_p64), rtol=1e-10, atol=1e-12,
             name="moe_experts in float64")

# Work: FLOPs of the chosen experts' matmuls only (2 T k 3 H I), not E/k times more.
_T, _H, _I, _E, _k = 256, 32, 48, 16, 2
_block = mixtral_block(hidden=_H, intermediate=_I, experts=_E, k=_k, seed=14)
_x = torch.randn(_T, _H, generator=torch.Generator().manual_seed(14))
_w, _e = route_topk_softmax(_x @ _block.gate.weight.T, _k)
_params = (_block.experts.gate_up_proj.detach(), _block.experts.down_proj.detach())
with FlopCounterMode(display=False) as _counter:
    moe_experts(_x, _w, _e, *_params)
_active = 2 * _T * _k * 3 * _H * _I
_flops = _counter.get_total_flops()
assert _active <= _flops <= 1.1 * _active, (
    f"moe_experts should do the matmuls of the chosen experts only, 2 T k 3 H I = {_active} FLOPs "
    f"(all experts: {_active * _E // _k}); FlopCounterMode counted {_flops}"
)

# Speed against every expert on every token, in the same run (1 thread, interleaved medians).
_T, _H, _I = 2048, 64, 128
_block = mixtral_block(hidden=_H, intermediate=_I, experts=_E, k=_k, seed=15)
_x = torch.randn(_T, _H, generator=torch.Generator().manual_seed(15))
_w, _e = route_topk_softmax(_x @ _block.gate.weight.T, _k)
_params = (_block.experts.gate_up_proj.detach(), _block.experts.down_proj.detach())
_threads = torch.get_num_threads()
torch.set_num_threads(1)  # one thread: a ratio that does not depend on how busy the other cores are
try:
    with torch.no_grad():
        _ratio = speedup(lambda: moe_experts(_x, _w, _e, *_params), lambda: all_experts(_x, _w, _e, *_params),
                         repeats=5)
finally:
    torch.set_num_threads(_threads)
# k/E = 1/8 of the FLOPs: the reference runs 3-5x faster on one CPU thread; 1.8x leaves room for
# a loaded machine and per-expert overheads, and still fails a layer that computes every expert.
assert _ratio.ratio >= 1.8, f"moe_experts should be at least 1.8x faster than all_experts at E=16, k=2; it was {_ratio.ratio:.2f}x"
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 3. Load balancing
#
# A router trained only on the language-model loss tends to **collapse**: the experts that
# win early get the gradient, get better, and win more, while the others starve. Then an
# expert-parallel step waits for the busiest GPU and the idle experts' parameters are wasted.
# Three remedies:
#
# **The Switch/GShard auxiliary loss.** Over $T$ tokens, let $f_i$ be the fraction of tokens
# that chose expert $i$ among their top $k$ (so $\sum_i f_i = k$) and $P_i$ the mean router
# probability of expert $i$ ($\sum_i P_i = 1$):
#
# $$\mathcal{L}_{aux} = E \sum_{i=1}^{E} f_i\, P_i .$$
#
# $f$ is a count (no gradient); the gradient flows through $P$ and pushes probability away
# from the overloaded experts. With perfectly uniform routing $\mathcal{L}_{aux} = k$ (in this
# normalisation, transformers'; Switch's $k=1$ gives 1). Models add $\alpha \mathcal{L}_{aux}$ to
# the loss with $\alpha \approx 0.01$ (Mixtral's `router_aux_loss_coef` is 0.02). transformers
# pools all layers' router logits (a tuple, one $(T, E)$ tensor per layer) into one $f$ and
# one $P$.
#
# **The router z-loss** (ST-MoE) keeps the logits small, which keeps the router stable in low
# precision: $\mathcal{L}_z = \frac{1}{T}\sum_t \big(\log \sum_i e^{\ell_{ti}}\big)^2$.
#
# **No loss at all: DeepSeek-V3's bias.** Each expert gets a bias $b_i$ that is added to its
# score *only to choose* the top $k$; the weights still use the unbiased scores (DeepSeek-V3
# uses sigmoid scores $s = \sigma(\ell)$, normalised over the chosen $k$, times a scaling factor).
# After each step, with $c_i$ the number of tokens expert $i$ received and $\bar c$ the mean,
# $b_i \leftarrow b_i + \gamma\, \mathrm{sign}(\bar c - c_i)$: overloaded experts become less
# attractive, idle ones more. The language-model gradient is left untouched.
#
# **Exercise 3a.** Write `switch_aux_loss` and `router_z_loss`.

# %% answer id=aux_loss
def switch_aux_loss(router_logits, k):
    """The Switch/GShard load-balancing loss E * sum_i f_i * P_i, as transformers'
    load_balancing_loss_func computes it.

    router_logits: a tuple or list of (T_l, E) tensors (one per layer, any floating dtype),
    pooled: f_i = (number of top-k slots, over all layers' tokens, that chose expert i) /
    (total tokens), P_i = mean over all tokens of softmax(logits)_i (in float32); top-k
    chosen by the softmax probabilities with torch.topk.
    Returns a 0-dim float32 tensor, differentiable with respect to the logits through P.
    """
    ### BEGIN SOLUTION
    logits = torch.cat([layer.float() for layer in router_logits])
    num_experts = logits.shape[-1]
    probs = torch.softmax(logits, dim=-1)
    chosen = torch.topk(probs, k, dim=-1).indices
    counts = torch.zeros(num_experts, device=logits.device).index_add_(
        0, chosen.reshape(-1), torch.ones(chosen.numel(), device=logits.device))
    f = counts / logits.shape[0]
    return num_experts * (f * probs.mean(dim=0)).sum()
    ### END SOLUTION


def router_z_loss(router_logits):
    """ST-MoE's router z-loss: the mean over tokens of logsumexp(logits)^2.

    router_logits: (..., E) tensor, any floating dtype; every leading index is a token.
    Returns a 0-dim float32 tensor (computed in float32, stably for logits of hundreds),
    differentiable with respect to the logits.
    """
    ### BEGIN SOLUTION
    return torch.logsumexp(router_logits.float(), dim=-1).pow(2).mean()
    ### END SOLUTION

# %% test id=test_aux_visible points=1
# Uniform router probabilities give L_aux = k (each f_i = k/E, each P_i = 1/E).
_uniform = torch.zeros(8, 4)
assert_scalar_close(switch_aux_loss((_uniform,), 2), 2.0, rtol=1e-6, atol=0, name="switch_aux_loss, uniform")
# logsumexp of 4 zeros is log 4.
assert_scalar_close(router_z_loss(_uniform), math.log(4) ** 2, rtol=1e-6, atol=0, name="router_z_loss of zeros")

# %% test id=test_aux_hidden points=3
### BEGIN HIDDEN TESTS
from transformers.models.switch_transformers.modeling_switch_transformers import router_z_loss_func

_g = torch.Generator().manual_seed(21)
for _layers, _T, _E, _k, _scale in [(1, 50, 8, 2, 1.0), (3, 40, 6, 1, 3.0), (2, 33, 16, 4, 0.3), (1, 7, 4, 4, 2.0)]:
    _logits = tuple((_scale * torch.randn(_T, _E, generator=_g)).requires_grad_() for _ in range(_layers))
    _got = switch_aux_loss(_logits, _k)
    _ref = load_balancing_loss_func(_logits, num_experts=_E, top_k=_k)
    assert _got.dtype == torch.float32 and _got.dim() == 0, f"switch_aux_loss: got dtype {_got.dtype}, shape {tuple(_got.shape)}"
    # The same counts and float32 means in another summation order.
    assert_scalar_close(_got, _ref, rtol=1e-5, atol=1e-6, name=f"switch_aux_loss, {_layers} layers, E={_E}, k={_k}")
    _gg = torch.autograd.grad(_got, _logits)
    _gr = torch.autograd.grad(_ref, _logits)
    for _a, _b in zip(_gg, _gr):
        assert_close(_a, _b, rtol=1e-4, atol=1e-7, name=f"gradient of switch_aux_loss, E={_E}, k={_k}")
# a list works too, and bf16 logits
_logits = [torch.randn(30, 8, generator=_g).to(torch.bfloat16)]
# (transformers' softmax runs in bf16 for bf16 logits; the contract here is float32)
assert_scalar_close(switch_aux_loss(_logits, 2),
                    load_balancing_loss_func(tuple(t.float() for t in _logits), num_experts=8, top_k=2),
                    rtol=1e-5, atol=1e-6, name="switch_aux_loss of bf16 logits (softmax in float32)")
# collapsed routing: every token sends all its probability mass to expert 0 -> E * k * 1
_collapsed = torch.full((10, 4), -1e4)
_collapsed[:, 0] = 0
# meta device: nothing assumes the CPU. An operator with no meta kernel (torch.bincount) cannot
# run there at all: that proves nothing either way, and passes.
try:
    _meta = switch_aux_loss((torch.empty(6, 4, device="meta"),), 2)
except NotImplementedError:
    _meta = torch.empty((), device="meta")
assert _meta.device.type == "meta", f"switch_aux_loss of meta logits must stay on meta, got {_meta.device}"
assert_scalar_close(switch_aux_loss((_collapsed,), 1), 4.0, rtol=1e-5, atol=0, name="switch_aux_loss of a collapsed router")

for _shape, _scale in [((4, 9, 8), 1.0), ((20, 6), 100.0), ((2, 3, 5, 4), 0.1)]:
    _logits = (_scale * torch.randn(*_shape, generator=_g)).requires_grad_()
    _got = router_z_loss(_logits)
    _ref = router_z_loss_func(_logits.reshape(-1, 1, _shape[-1]))
    assert _got.dim() == 0 and _got.dtype == torch.float32, f"router_z_loss: {_got.dtype}, {tuple(_got.shape)}"
    assert_scalar_close(_got, _ref, rtol=1e-5, atol=1e-6, name=f"router_z_loss, shape {_shape}, scale {_scale}")
    assert_close(torch.autograd.grad(_got, _logits)[0], torch.autograd.grad(_ref, _logits)[0], rtol=1e-4, atol=1e-8,
                 name=f"gradient of router_z_loss, shape {_shape}")
_huge = torch.tensor([[500.0, 496.0], [-300.0, -300.0]])
assert_scalar_close(router_z_loss(_huge), router_z_loss_func(_huge[:, None]), rtol=1e-6, atol=0,
                    name="router_z_loss at logits of hundreds")
assert_scalar_close(router_z_loss(_huge.to(torch.bfloat16)), router_z_loss_func(_huge[:, None]), rtol=1e-6, atol=0,
                    name="router_z_loss of bf16 logits (exact in bf16)")
### END HIDDEN TESTS
assert True

# %% [markdown]
# **Exercise 3b.** Write DeepSeek-V3's routing with a bias, and the bias update. transformers'
# `DeepseekV3TopkRouter` is the oracle (with `n_group = topk_group = 1`: DeepSeek-V3 also
# first restricts each token to 4 of 8 groups of experts, which we leave out).

# %% answer id=bias
def route_sigmoid_bias(logits, bias, k, norm_topk_prob=True, scaling=1.0):
    """DeepSeek-V3's router without groups.

    logits: (T, E) tensor; bias: (E,) float32 tensor, the balancing bias.
    Scores s = sigmoid(logits) in float32. The experts are the top k of s + bias
    (torch.topk); the weights are the *unbiased* scores s of those experts, divided by their
    sum (plus 1e-20) when norm_topk_prob is True, then multiplied by `scaling`.
    Returns (weights (T, k) float32, experts (T, k) int64), in torch.topk's order.
    """
    ### BEGIN SOLUTION
    scores = torch.sigmoid(logits.float())
    experts = torch.topk(scores + bias, k, dim=-1).indices
    weights = scores.gather(-1, experts)
    if norm_topk_prob:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    return weights * scaling, experts
    ### END SOLUTION


def update_bias(bias, tokens_per_expert, gamma):
    """One auxiliary-loss-free balancing step: b_i + gamma * sign(mean(c) - c_i).

    bias: (E,) float32; tokens_per_expert: (E,) counts c (int or float) for the last batch;
    gamma: the update speed. An expert with exactly the mean load keeps its bias.
    Returns the new bias, a new (E,) float32 tensor; `bias` is not modified.
    """
    ### BEGIN SOLUTION
    load = tokens_per_expert.float()
    return bias + gamma * torch.sign(load.mean() - load)
    ### END SOLUTION

# %% test id=test_bias_visible points=1
_b = update_bias(torch.zeros(4), torch.tensor([5, 1, 3, 3]), 0.1)
# mean load 3: expert 0 is overloaded (bias down), expert 1 idle (up), 2 and 3 unchanged
assert_close(_b, torch.tensor([-0.1, 0.1, 0.0, 0.0]), rtol=0, atol=1e-7, name="update_bias")
_w, _e = route_sigmoid_bias(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([10.0, 0.0, 0.0]), 1)
# the bias makes expert 0 win, but its weight is its own normalised score: 1
assert _e.tolist() == [[0]], f"the bias should select expert 0, got {_e.tolist()}"
assert_close(_w, torch.tensor([[1.0]]), rtol=1e-6, atol=0, name="route_sigmoid_bias weight")

# %% test id=test_bias_hidden points=3
### BEGIN HIDDEN TESTS
from transformers import DeepseekV3Config
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3TopkRouter

for _E, _k, _norm, _scaling, _seed in [(8, 2, True, 2.5, 31), (16, 4, False, 1.0, 32), (6, 1, True, 1.0, 33),
                                      (8, 2, False, 2.5, 34)]:  # scaling applies without normalisation too
    _cfg = DeepseekV3Config(hidden_size=32, n_routed_experts=_E, num_experts_per_tok=_k, n_group=1, topk_group=1,
                            norm_topk_prob=_norm, routed_scaling_factor=_scaling)
    _router = DeepseekV3TopkRouter(_cfg)
    _g = torch.Generator().manual_seed(_seed)
    with torch.no_grad():
        _router.weight.normal_(0, 0.5, generator=_g)
        _router.e_score_correction_bias.copy_(torch.randn(_E, generator=_g))
    _x = torch.randn(25, 32, generator=_g)
    _logits, _ref_w, _ref_e = _router(_x)
    _bias = _router.e_score_correction_bias.clone()
    _w, _e = route_sigmoid_bias(_logits, _bias, _k, _norm, _scaling)
    assert torch.equal(_bias, _router.e_score_correction_bias), "route_sigmoid_bias modified the bias"
    assert _w.dtype == torch.float32 and _e.dtype == torch.int64, f"dtypes: {_w.dtype}, {_e.dtype}"
    assert_close(_dense(_w, _e, _E), _dense(_ref_w, _ref_e, _E), rtol=1e-6, atol=1e-7,
                 name=f"route_sigmoid_bias vs DeepseekV3TopkRouter, E={_E} k={_k} norm={_norm} scaling={_scaling}")
    # bf16 logits: scores in float32
    _w16, _e16 = route_sigmoid_bias(_logits.to(torch.bfloat16), _bias, _k, _norm, _scaling)
    assert _w16.dtype == torch.float32, f"bf16 logits: weights must be float32, got {_w16.dtype}"

# Logits near -60: the scores (~1e-26) are below the 1e-20 that keeps the normalisation finite.
_router = DeepseekV3TopkRouter(DeepseekV3Config(hidden_size=32, n_routed_experts=4, num_experts_per_tok=2, n_group=1,
                                                topk_group=1, norm_topk_prob=True, routed_scaling_factor=1.0))
with torch.no_grad():
    _router.weight.copy_(-60 / 32 + 0.01 * torch.randn(4, 32, generator=torch.Generator().manual_seed(34)))
_logits, _ref_w, _ref_e = _router(torch.ones(3, 32))
_w, _e = route_sigmoid_bias(_logits, torch.zeros(4), 2, True, 1.0)
assert_close(_dense(_w, _e, 4), _dense(_ref_w, _ref_e, 4), rtol=1e-5, atol=1e-9,
             name="route_sigmoid_bias for logits near -60 (the 1e-20 in the normalisation matters)")

_bias = torch.tensor([0.5, -0.25, 0.0, 1.0, 0.0])
_before = _bias.clone()
for _counts in (torch.tensor([10, 0, 5, 5, 5]), torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]), torch.tensor([4, 4, 4, 4, 4])):
    _got = update_bias(_bias, _counts, 0.01)
    _ref = _bias + 0.01 * torch.sign(_counts.float().mean() - _counts.float())
    assert torch.equal(_bias, _before), "update_bias modified its input"
    assert _got.dtype == torch.float32, f"update_bias must return float32, got {_got.dtype}"
    assert_close(_got, _ref, rtol=0, atol=1e-7, name=f"update_bias for loads {_counts.tolist()}")


# Balancing a skewed router: the bias alone brings the busiest expert near the mean load.
def _simulate(gamma, steps=120, E=8, k=2, T=512):
    g = torch.Generator().manual_seed(40)
    router = torch.randn(E, 16, generator=g)
    skew = torch.linspace(4.0, -4.0, E)  # expert 0 strongly preferred
    bias = torch.zeros(E)
    history = []
    for _ in range(steps):
        x = torch.randn(T, 16, generator=g)
        _, chosen = route_sigmoid_bias(x @ router.T + skew, bias, k)
        load = torch.bincount(chosen.reshape(-1), minlength=E)
        history.append(load)
        bias = update_bias(bias, load, gamma)
    return torch.stack(history).float()


_free, _balanced = _simulate(0.0), _simulate(0.01)
_imbalance = lambda h: (h[-20:].max(dim=1).values / h[-20:].mean(dim=1)).mean().item()  # noqa: E731
assert _imbalance(_free) > 2.0, f"without updates the router should stay skewed, max/mean = {_imbalance(_free):.2f}"
# A correct update reaches about 1.15 on this router (2.4 without); 1.3 allows other tie and rounding choices.
assert _imbalance(_balanced) < 1.3, (
    f"after 120 bias updates (gamma 0.01) the busiest expert should hold < 1.3x the mean load, "
    f"got {_imbalance(_balanced):.2f}x"
)
### END HIDDEN TESTS
assert True

# %% [markdown]
# The same simulation as a picture: a router that prefers expert 0 (its scores shifted by a
# fixed amount), fed fresh random tokens every step, with and without the bias update.

# %%
def expert_loads(gamma, steps=120, num_experts=8, k=2, tokens=512):
    g = torch.Generator().manual_seed(40)
    router = torch.randn(num_experts, 16, generator=g)
    skew = torch.linspace(4.0, -4.0, num_experts)
    bias = torch.zeros(num_experts)
    history = []
    for _ in range(steps):
        x = torch.randn(tokens, 16, generator=g)
        _, chosen = route_sigmoid_bias(x @ router.T + skew, bias, k)
        load = torch.bincount(chosen.reshape(-1), minlength=num_experts)
        history.append(load)
        bias = update_bias(bias, load, gamma)
    return torch.stack(history).float() / (tokens * k)


fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
for ax, gamma in zip(axes, (0.0, 0.01)):
    loads = expert_loads(gamma)
    for e in range(loads.shape[1]):
        ax.plot(loads[:, e], label=f"expert {e}")
    ax.axhline(1 / loads.shape[1], color="k", linestyle="--", linewidth=0.8)
    ax.set_title(f"share of routed slots per expert, gamma = {gamma}")
    ax.set_xlabel("step")
axes[0].set_ylabel("share of slots")
axes[1].legend(fontsize=7, ncol=2)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Capacity and dropping
#
# A fixed-shape implementation (TPUs, GShard, Switch, and expert parallelism with fixed
# buffers) gives every expert room for at most
#
# $$C = \left\lceil \mathrm{cf} \cdot \frac{T k}{E} \right\rceil$$
#
# (token, expert) slots, where $\mathrm{cf}$ is the **capacity factor** ($T k / E$ is the
# load of a perfectly balanced expert). Slots beyond $C$ are **dropped**: they contribute
# nothing, and a token whose every slot is dropped leaves the layer as it came, through the
# residual connection. Which slots win matters; we use GShard's rule:
#
# - every token's **first** choice (column 0 of `experts`, the highest weight) before any
#   token's second choice, and so on;
# - among slots of the same choice rank, **earlier tokens first**.
#
# "Dropless" MoE (Megablocks; every modern MoE layer in transformers, and your
# `moe_experts`) lets the block sizes vary instead and drops nothing; capacity still matters
# for the fixed-size buffers of expert-parallel all-to-all.
#
# **Exercise.** Write `expert_capacity` and `keep_within_capacity`.

# %% answer id=capacity
def expert_capacity(num_tokens, k, num_experts, capacity_factor):
    """C = ceil(capacity_factor * num_tokens * k / num_experts), an int (computed as written,
    in that order, with Python floats)."""
    ### BEGIN SOLUTION
    return math.ceil(capacity_factor * num_tokens * k / num_experts)
    ### END SOLUTION


def keep_within_capacity(experts, num_experts, capacity):
    """Which (token, slot) pairs an expert with `capacity` slots keeps.

    experts: (T, k) int64, column j is every token's j-th choice. Priority: all slots of
    column 0 in token order, then all of column 1 in token order, and so on; each expert
    keeps its first `capacity` slots in that order and drops the rest.
    Returns keep: (T, k) bool tensor on experts' device. `experts` is not modified.
    """
    ### BEGIN SOLUTION
    num_tokens, k = experts.shape
    by_priority = experts.T.reshape(-1)
    one_hot = F.one_hot(by_priority, num_experts)
    position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=-1) - 1
    return (position < capacity).reshape(k, num_tokens).T
    ### END SOLUTION

# %% test id=test_capacity_visible points=1
assert expert_capacity(8, 2, 4, 1.0) == 4, f"capacity of 8 tokens, k=2, 4 experts, cf 1: expected 4, got {expert_capacity(8, 2, 4, 1.0)}"
_e = torch.tensor([[0, 1], [0, 2], [0, 1], [1, 0]])
_keep = keep_within_capacity(_e, 3, 2)
# first choices: expert 0 takes tokens 0 and 1 (token 2 dropped), expert 1 token 3;
# second choices: expert 1 takes token 0 (full: token 2 dropped), expert 2 token 1, expert 0 is full (token 3 dropped)
assert _keep.tolist() == [[True, True], [True, True], [False, False], [True, False]], (
    f"keep_within_capacity: expected [[T, T], [T, T], [F, F], [T, F]], got {_keep.tolist()}"
)

# %% test id=test_capacity_hidden points=3
### BEGIN HIDDEN TESTS
for _args, _expected in [((8, 2, 4, 1.0), 4), ((10, 1, 4, 1.0), 3), ((10, 2, 8, 1.25), 4), ((100, 2, 8, 1.5), 38),
                         ((7, 1, 7, 0.5), 1), ((3, 2, 64, 2.0), 1), ((16, 2, 8, 0.25), 1)]:
    _got = expert_capacity(*_args)
    assert _got == _expected and isinstance(_got, int), f"expert_capacity{_args}: expected {_expected}, got {_got!r}"


def _keep_oracle(experts, num_experts, capacity):
    used = [0] * num_experts
    keep = torch.zeros(experts.shape, dtype=torch.bool)
    for j in range(experts.shape[1]):
        for t in range(experts.shape[0]):
            e = int(experts[t, j])
            if used[e] < capacity:
                keep[t, j] = True
                used[e] += 1
    return keep


_g = torch.Generator().manual_seed(50)
for _T, _E, _k, _cap in [(30, 4, 2, 10), (50, 8, 2, 3), (20, 5, 1, 2), (12, 6, 3, 0), (9, 4, 4, 100), (1, 3, 2, 1)]:
    _logits = torch.randn(_T, _E, generator=_g) + torch.linspace(1, -1, _E)  # skewed: some experts overflow
    _, _e = route_topk_softmax(_logits, _k)
    _before = _e.clone()
    _keep = keep_within_capacity(_e, _E, _cap)
    assert torch.equal(_e, _before), "keep_within_capacity modified experts"
    assert _keep.dtype == torch.bool and _keep.shape == (_T, _k), f"keep: got {_keep.dtype}, {tuple(_keep.shape)}"
    _ref = _keep_oracle(_e, _E, _cap)
    assert torch.equal(_keep, _ref), (
        f"T={_T} E={_E} k={_k} capacity {_cap}: expected keep {_ref.int().tolist()}, got {_keep.int().tolist()}"
    )

# Dropped slots through the layer: a token with every slot dropped comes out as 0 (its residual
# passes it on), the others as with their kept slots only.
_block = mixtral_block(experts=4, k=2, seed=51)
_x = torch.randn(12, 32, generator=_g)
_w, _e = route_topk_softmax(_x @ _block.gate.weight.T, 2)
_keep = keep_within_capacity(_e, 4, 2)
_y = moe_experts(_x, _w * _keep, _e, _block.experts.gate_up_proj, _block.experts.down_proj)
_ref = _block.experts(_x, _e, _w * _keep_oracle(_e, 4, 2))
assert_close(_y, _ref, rtol=1e-5, atol=1e-6, name="MoE output with capacity 2 per expert")
### END HIDDEN TESTS
assert True

# %% [markdown]
# How much is dropped as a function of the capacity factor, for the skewed router of section 3
# with and without balancing (its last routing step):

# %%
def dropped_fraction(experts, num_experts, capacity_factor):
    capacity = expert_capacity(experts.shape[0], experts.shape[1], num_experts, capacity_factor)
    return 1.0 - keep_within_capacity(experts, num_experts, capacity).float().mean().item()


factors = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0]
g = torch.Generator().manual_seed(60)
router, skew = torch.randn(8, 16, generator=g), torch.linspace(4.0, -4.0, 8)
x = torch.randn(512, 16, generator=g)
_, skewed = route_sigmoid_bias(x @ router.T + skew, torch.zeros(8), 2)
bias = torch.zeros(8)
for _ in range(100):
    _, chosen = route_sigmoid_bias(torch.randn(512, 16, generator=g) @ router.T + skew, bias, 2)
    bias = update_bias(bias, torch.bincount(chosen.reshape(-1), minlength=8), 0.01)
_, balanced = route_sigmoid_bias(x @ router.T + skew, bias, 2)
plt.figure(figsize=(5.5, 3.5))
plt.plot(factors, [dropped_fraction(skewed, 8, f) for f in factors], "o-", label="skewed router")
plt.plot(factors, [dropped_fraction(balanced, 8, f) for f in factors], "s-", label="after bias balancing")
plt.xlabel("capacity factor")
plt.ylabel("fraction of slots dropped")
plt.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Counting what MoE buys
#
# A model is built on the **meta device** in a fraction of a second, whatever its size: the
# tensors have shapes and dtypes but no storage. That is enough to count.
#
# - **Total parameters** $N$: every parameter (a tied embedding counted once).
# - **Active parameters** per token: all of them except the routed experts a token does not
#   use: in each MoE layer, $k/E$ of the routed experts' parameters count (shared experts and
#   the router always count).
# - **FLOPs per token** of the forward pass (matmuls, without attention's score and value
#   products): 2 per active parameter of a weight *matrix* (a multiply and an add), so
#   biases and norm scales (1-D tensors) do not count; the input embedding is a lookup (0
#   FLOPs), while the output head is a matmul and counts even when its weight is tied to the
#   embedding.
# - **Weight bytes per GPU under expert parallelism** over $n$ GPUs: each GPU holds $1/n$ of
#   every layer's routed experts and a full copy of everything else.
#
# transformers stores each MoE layer's routed experts in a module named `experts`, as
# parameters whose first dimension is $E$ (the `gate_up_proj` and `down_proj` you used in
# section 2).
#
# **Exercise.** Write `moe_counts(model, ep_size, bytes_per_param)`.

# %% answer id=counts
def moe_counts(model, ep_size=1, bytes_per_param=2):
    """Counts of a transformers MoE causal LM (any device, meta included).

    Routed experts: parameters of a module named `experts` (names containing ".experts."),
    each of shape (E, ...); k = model.config.num_experts_per_tok.
    Returns a dict of ints:
      "total": all parameters (shared tensors once);
      "active": parameters one token uses: total - routed + routed * k / E;
      "flops_per_token": 2 * (active parameters of tensors with 2 or more dimensions - input
        embedding parameters + output head parameters when the head is tied to the input
        embedding); 1-D parameters (biases, norm scales) are not matmul weights;
      "bytes_per_gpu": bytes_per_param * (total - routed + routed / ep_size), with E divisible
        by ep_size.
    """
    ### BEGIN SOLUTION
    k = model.config.num_experts_per_tok
    total = routed = routed_active = vectors = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if p.dim() < 2:
            vectors += p.numel()
        if ".experts." in name:
            routed += p.numel()
            routed_active += p.numel() // p.shape[0] * k
    active = total - routed + routed_active
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    flops = 2 * (active - vectors - embedding.numel() + (head.numel() if head is embedding else 0))
    return {
        "total": total,
        "active": active,
        "flops_per_token": flops,
        "bytes_per_gpu": bytes_per_param * (total - routed + routed // ep_size),
    }
    ### END SOLUTION

# %% test id=test_counts_visible points=1
from transformers import MixtralForCausalLM

with torch.device("meta"):
    _mixtral = MixtralForCausalLM(MixtralConfig())  # the defaults are Mixtral-8x7B's
_c = moe_counts(_mixtral)
print({name: f"{value / 1e9:.2f} B" for name, value in _c.items()})
assert _c["total"] == 46_702_792_704, f"Mixtral-8x7B has 46,702,792,704 parameters; got {_c['total']:,}"

# %% test id=test_counts_hidden points=3
### BEGIN HIDDEN TESTS
from transformers import DeepseekV3ForCausalLM, Qwen2MoeForCausalLM

_cfg = _mixtral.config
_expert = 3 * _cfg.hidden_size * _cfg.intermediate_size
_routed = _cfg.num_hidden_layers * _cfg.num_local_experts * _expert
_active = 46_702_792_704 - _routed + _cfg.num_hidden_layers * 2 * _expert
_embed = _cfg.vocab_size * _cfg.hidden_size + (2 * _cfg.num_hidden_layers + 1) * _cfg.hidden_size  # + norm scales
_c = moe_counts(_mixtral, ep_size=8, bytes_per_param=2)
assert _c["active"] == _active, f"Mixtral-8x7B active parameters: expected {_active:,}, got {_c['active']:,}"
assert _c["flops_per_token"] == 2 * (_active - _embed), (
    f"Mixtral-8x7B forward FLOPs per token: expected 2 (active - embedding - norm scales) = {2 * (_active - _embed):,}, "
    f"got {_c['flops_per_token']:,}"
)
_bytes = 2 * (46_702_792_704 - _routed + _routed // 8)
assert _c["bytes_per_gpu"] == _bytes, f"Mixtral-8x7B bf16 weights per GPU over 8 GPUs: expected {_bytes:,}, got {_c['bytes_per_gpu']:,}"
for _key, _value in moe_counts(_mixtral, ep_size=4, bytes_per_param=4).items():
    assert isinstance(_value, int), f"moe_counts()[{_key!r}] must be an int, got {type(_value).__name__}"
_b1 = moe_counts(_mixtral)["bytes_per_gpu"]
assert _b1 == 2 * 46_702_792_704, f"the defaults are one GPU and 2 bytes per parameter: expected {2 * 46_702_792_704:,}, got {_b1:,}"
_b4 = moe_counts(_mixtral, ep_size=4, bytes_per_param=4)["bytes_per_gpu"]
assert _b4 == 4 * (46_702_792_704 - _routed + _routed // 4), f"fp32 over 4 GPUs: got {_b4:,}"

with torch.device("meta"):
    _ds = DeepseekV3ForCausalLM(DeepseekV3Config())
_dc = _ds.config
_moe_layers = _dc.num_hidden_layers - _dc.first_k_dense_replace
_routed = _moe_layers * _dc.n_routed_experts * 3 * _dc.hidden_size * _dc.moe_intermediate_size
_total = sum(p.numel() for p in _ds.parameters())
_c = moe_counts(_ds, ep_size=64)
_active = _total - _routed + _routed * _dc.num_experts_per_tok // _dc.n_routed_experts
assert _c["total"] == _total, f"DeepSeek-V3 parameters (without its MTP module): expected {_total:,}, got {_c['total']:,}"
assert _c["active"] == _active, f"DeepSeek-V3 active parameters: expected {_active:,} (about 37 B), got {_c['active']:,}"
assert _c["bytes_per_gpu"] == 2 * (_total - _routed + _routed // 64), f"DeepSeek-V3 over 64 GPUs: got {_c['bytes_per_gpu']:,}"

# A small real model, tied head: its FLOPs per token measured for one token, minus attention.
_qcfg = Qwen2MoeConfig(vocab_size=64, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
                       shared_expert_intermediate_size=24, num_experts=8, num_experts_per_tok=2, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, decoder_sparse_step=1)
_qcfg._experts_implementation = "eager"
_qcfg._attn_implementation = "eager"  # attention as matmuls that FlopCounterMode sees (removed below)
torch.manual_seed(70)
_qwen = Qwen2MoeForCausalLM(_qcfg).eval()
_c = moe_counts(_qwen)
_expert_params = _qcfg.num_hidden_layers * 2 * 8 * 32 * 16 * 3 // 2  # two 3-D tensors per layer
with torch.no_grad(), FlopCounterMode(display=False) as _counter:
    _qwen(torch.tensor([[5]]))
_attention = _qcfg.num_hidden_layers * 2 * 2 * _qcfg.num_attention_heads * (32 // 4)  # q.k and p.v of 1 token
assert _c["flops_per_token"] == _counter.get_total_flops() - _attention, (
    f"tiny Qwen2-MoE (tied head, biases in attention): FlopCounterMode counts {_counter.get_total_flops() - _attention} matmul FLOPs "
    f"for one token (attention products removed), moe_counts says {_c['flops_per_token']}"
)
assert _c["total"] == sum(p.numel() for p in _qwen.parameters()), f"tiny Qwen2-MoE total: got {_c['total']}"
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 6. Expert parallelism
#
# With $N$ processes (GPUs), **expert parallelism** gives rank $r$ the experts
# $rE/N, \dots, (r+1)E/N - 1$ and keeps the tokens where they are. A layer then costs two
# **all-to-all** exchanges: *dispatch* sends every (token, expert) slot's hidden state to the
# rank that holds the expert, and *combine* sends the expert's output back. In an all-to-all
# every rank sends a different slice of one tensor to every rank (possibly empty) and
# receives one slice from each: `dist.all_to_all_single(output, input, output_split_sizes,
# input_split_sizes)` with, on each rank, `input_split_sizes[j]` rows for rank j and
# `output_split_sizes[j]` rows from rank j. The ranks first exchange how many rows each will
# send (an all-to-all of one count per rank), since every receiver must size its buffer.
#
# `dist.all_to_all_single` has no gradient; `torch.distributed.nn.functional.all_to_all_single`
# (same arguments, returns the output) does: its backward is the reverse all-to-all. gloo
# supports both on CPU (checked with torch 2.13); NCCL runs the same calls on GPUs.
#
# Rows a rank keeps for its own experts are part of the same call but cross no link: only
# rows for *other* ranks cost bandwidth. With balanced routing a rank sends a fraction
# $(N-1)/N$ of its $Tk$ slots each way.
#
# `run_distributed(fn, N, *args)` forks N processes from this kernel, joined in a `gloo`
# process group; each calls `fn(rank, N, *args)`, and you get their return values as a list
# (index = rank). A worker that raises shows its traceback here, and a collective that some
# rank never joins times out instead of hanging the notebook.
#
# **Exercise.** Write `expert_parallel_experts`, which every rank calls on its own tokens.
# It may call your `moe_experts` on the rows it receives.

# %% answer id=expert_parallel
def expert_parallel_experts(x, weights, experts, gate_up_local, down_local):
    """The routed experts of an MoE layer with experts spread over the ranks of the default
    process group (N = dist.get_world_size() ranks, all calling it together).

    Rank r holds experts r*P ... r*P + P - 1, P = E / N: gate_up_local (P, 2I, H) and
    down_local (P, H, I), the slices of the full (E, 2I, H) and (E, H, I) tensors.
    x: (T_r, H) this rank's tokens (T_r may differ between ranks, and some ranks' experts
    may receive no slot at all); weights, experts: (T_r, k) their routing over all E experts.
    Dispatch and combine with all-to-all exchanges only (dist.all_to_all_single for counts,
    torch.distributed.nn.functional.all_to_all_single for hidden states, so that gradients
    flow); no other collective or point-to-point call (all_gather, all_reduce, broadcast,
    send, ...).
    Returns (y, sent): y (T_r, H) equal to moe_experts with the full expert tensors on this
    rank's tokens, differentiable with respect to x, weights and the local expert tensors;
    sent: int, the bytes of hidden-state rows this rank sent to *other* ranks, dispatch plus
    combine (rows times H times x.element_size(); rows kept on the rank do not count).
    """
    ### BEGIN SOLUTION
    rank, n = dist.get_rank(), dist.get_world_size()
    per_rank = gate_up_local.shape[0]
    num_tokens, k = experts.shape
    flat = experts.reshape(-1)
    order = torch.argsort(flat, stable=True)
    token = order // k
    send_counts = torch.bincount(flat[order] // per_rank, minlength=n)
    recv_counts = torch.empty_like(send_counts)
    dist.all_to_all_single(recv_counts, send_counts)
    send, recv = send_counts.tolist(), recv_counts.tolist()
    local_ids = torch.empty(sum(recv), dtype=flat.dtype, device=x.device)
    dist.all_to_all_single(local_ids, flat[order].contiguous(), recv, send)
    local_ids -= rank * per_rank
    hidden = x.shape[1]
    rows = dnf.all_to_all_single(x.new_empty(sum(recv), hidden), x[token].contiguous(), recv, send)
    if rows.shape[0]:
        ones = torch.ones(rows.shape[0], 1, dtype=rows.dtype, device=x.device)
        processed = moe_experts(rows, ones, local_ids[:, None], gate_up_local, down_local)
    else:
        processed = rows * 0
    back = dnf.all_to_all_single(x.new_empty(sum(send), hidden), processed.contiguous(), send, recv)
    out = back * weights.reshape(-1)[order, None]
    y = torch.zeros(num_tokens, hidden, dtype=out.dtype, device=x.device).index_add(0, token, out)
    sent = (sum(send) - send[rank] + sum(recv) - recv[rank]) * hidden * x.element_size()
    return y.to(x.dtype), sent
    ### END SOLUTION

# %% test id=test_ep_visible points=1
def _ep_small(rank, world_size):
    block = mixtral_block(hidden=8, intermediate=12, experts=4, k=2, seed=3)
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(rank))
    # rank 0's tokens use experts 0-3, rank 1's only experts 0 and 1 (both on rank 0)
    experts = torch.tensor([[0, 2], [3, 1], [1, 0]]) if rank == 0 else torch.tensor([[1, 0], [0, 1], [1, 0]])
    weights = torch.tensor([[0.75, 0.25], [0.6, 0.4], [0.9, 0.1]])
    p = block.experts
    y, sent = expert_parallel_experts(x, weights, experts, p.gate_up_proj[2 * rank:2 * rank + 2],
                                      p.down_proj[2 * rank:2 * rank + 2])
    return y, sent, p(x, experts, weights)


_out = run_distributed(_ep_small, 2, timeout=60)
for _r, (_y, _sent, _ref) in enumerate(_out):
    assert_close(_y, _ref, rtol=1e-5, atol=1e-6, name=f"rank {_r}'s output of expert_parallel_experts")
# rank 0 sends its 2 slots for experts 2, 3 and returns rank 1's 6 rows; rank 1 sends 6 and returns 2:
# 8 rows of 8 float32 each way, 256 bytes per rank.
assert [s for _, s, _ in _out] == [256, 256], f"bytes sent per rank: expected [256, 256], got {[s for _, s, _ in _out]}"

# %% test id=test_ep_hidden points=3
### BEGIN HIDDEN TESTS
_EP_FORBIDDEN = ("all_gather", "all_gather_into_tensor", "all_reduce", "broadcast", "gather", "scatter",
                 "reduce_scatter", "reduce_scatter_tensor", "send", "isend")


def _ep_case(rank, world_size, num_experts, k, tokens, skew, seed, dtype):
    block = mixtral_block(hidden=16, intermediate=20, experts=num_experts, k=k, seed=seed, dtype=dtype)
    per = num_experts // world_size
    g = torch.Generator().manual_seed(seed + 100 * rank)
    x = torch.randn(tokens[rank], 16, generator=g).to(dtype).requires_grad_()
    logits = x.detach() @ block.gate.weight.detach().T + skew.to(dtype)
    weights, experts = route_topk_softmax(logits, k)
    weights = weights.to(torch.promote_types(torch.float32, dtype)).requires_grad_()
    gate_up = block.experts.gate_up_proj.detach()[rank * per:(rank + 1) * per].clone().requires_grad_()
    down = block.experts.down_proj.detach()[rank * per:(rank + 1) * per].clone().requires_grad_()
    counted = {"float_bytes": 0}
    real = {name: getattr(dist, name) for name in ("all_to_all_single",) + _EP_FORBIDDEN}

    def counting(output, input, output_split_sizes=None, input_split_sizes=None, *args, **kwargs):
        if input.is_floating_point():
            rows = input.shape[0]
            own = input_split_sizes[rank] if input_split_sizes is not None else rows // world_size
            counted["float_bytes"] += (rows - own) * input[0].numel() * input.element_size() if rows else 0
        return real["all_to_all_single"](output, input, output_split_sizes, input_split_sizes, *args, **kwargs)

    def forbidden(name):
        def call(*args, **kwargs):
            raise AssertionError(f"expert_parallel_experts must not call dist.{name}: exchange with all-to-all")
        return call

    dist.all_to_all_single = counting
    for name in _EP_FORBIDDEN:
        setattr(dist, name, forbidden(name))
    try:
        y, sent = expert_parallel_experts(x, weights, experts, gate_up, down)
        forward_bytes = counted["float_bytes"]
        grad_out = torch.randn(y.shape, generator=g).to(y.dtype)
        (y * grad_out).sum().backward()
    finally:
        for name, fn in real.items():
            setattr(dist, name, fn)
    zeros = torch.zeros_like
    return {"x": x.detach(), "weights": weights.detach(), "experts": experts, "y": y.detach(), "sent": sent,
            "forward_bytes": forward_bytes, "grad_out": grad_out,
            "grad_x": x.grad if x.grad is not None else zeros(x),
            "grad_weights": weights.grad if weights.grad is not None else zeros(weights),
            "grad_gate_up": gate_up.grad if gate_up.grad is not None else zeros(gate_up),
            "grad_down": down.grad if down.grad is not None else zeros(down)}


_f32, _bf16, _f64 = torch.float32, torch.bfloat16, torch.float64
for _N, _E, _k, _tokens, _skew, _seed, _dtype in [
    (2, 4, 2, (5, 7), 0.0, 1, _f32), (4, 8, 2, (6, 3, 9, 4), 0.0, 2, _f32), (3, 6, 3, (4, 4, 4), 0.0, 3, _f32),
    (4, 8, 1, (5, 5, 5, 5), 3.0, 4, _f32), (2, 8, 2, (1, 6), 0.0, 5, _f32), (3, 6, 2, (4, 5, 3), 50.0, 6, _f32),
    (2, 4, 2, (6, 5), 0.0, 7, _bf16), (2, 4, 2, (3, 4), 0.0, 8, _f64),
]:
    _skewv = torch.zeros(_E)
    # Skewed cases favour rank 0's experts; with +50 every slot goes there and the other ranks
    # receive no row at all.
    _skewv[: _E // _N] = _skew
    _out = run_distributed(_ep_case, _N, _E, _k, _tokens, _skewv, _seed, _dtype, timeout=120)
    _block = mixtral_block(hidden=16, intermediate=20, experts=_E, k=_k, seed=_seed, dtype=_dtype)
    # float32: round-off of sums in another order; bf16: transformers rounds each weighted
    # expert output to bf16 before adding (a few bf16 steps); float64: round-off only.
    _rtol, _atol = {_f32: (1e-5, 1e-6), _bf16: (3e-2, 2e-2), _f64: (1e-10, 1e-12)}[_dtype]
    _gu = _block.experts.gate_up_proj.detach().clone().requires_grad_()
    _dn = _block.experts.down_proj.detach().clone().requires_grad_()
    _per = _E // _N
    for _r, _o in enumerate(_out):
        _x = _o["x"].clone().requires_grad_()
        _w = _o["weights"].clone().requires_grad_()
        _ref = _block.experts(_x, _o["experts"], _w)  # transformers' MixtralExperts with all E experts
        assert _o["y"].dtype == _dtype, f"{_dtype} tokens: expert_parallel_experts returned {_o['y'].dtype}"
        assert_close(_o["y"].double(), _ref.detach().double(), rtol=_rtol, atol=_atol,
                     name=f"expert_parallel_experts output, rank {_r} of {_N}, E={_E}, k={_k}, {_dtype}")
        if _dtype == _f32:
            _gx, _gw = torch.autograd.grad((_ref * _o["grad_out"]).sum(), [_x, _w])
            assert_close(_o["grad_x"], _gx, rtol=1e-4, atol=1e-6, name=f"gradient of x, rank {_r} of {_N}, E={_E}")
            assert_close(_o["grad_weights"], _gw, rtol=1e-4, atol=1e-6,
                         name=f"gradient of the routing weights, rank {_r} of {_N}, E={_E}")
        _flat = _o["experts"].reshape(-1)
        _dispatch = int((_flat // _per != _r).sum())
        _combine = sum(int((o["experts"].reshape(-1) // _per == _r).sum()) for j, o in enumerate(_out) if j != _r)
        _expected = (_dispatch + _combine) * 16 * _o["x"].element_size()
        assert _o["sent"] == _expected, (
            f"rank {_r} of {_N} (E={_E}, k={_k}): {_dispatch} slots go to other ranks' experts and {_combine} "
            f"rows come back from others' tokens: expected {_expected} bytes sent, got {_o['sent']}"
        )
        assert _o["forward_bytes"] == _expected, (
            f"rank {_r} of {_N}: {_o['forward_bytes']} bytes of hidden states went to other ranks through "
            f"all_to_all_single in the forward pass; the routing needs exactly {_expected}"
        )
    if _dtype != _f32:
        continue
    # Expert gradients: the full layer on every rank's tokens (each slot's expert gathered
    # from the full tensors), summed over ranks, then sliced per rank.
    _total = 0
    for _o in _out:
        _xx = _o["x"]
        _h = torch.zeros(_xx.shape[0], 16)
        for _j in range(_k):
            _e = _o["experts"][:, _j]
            _gate_up = torch.einsum("th,tih->ti", _xx, _gu[_e])
            _act = F.silu(_gate_up[:, :20]) * _gate_up[:, 20:]
            _h = _h + _o["weights"][:, _j, None] * torch.einsum("ti,thi->th", _act, _dn[_e])
        _total = _total + (_h * _o["grad_out"]).sum()
    _ggu, _gdn = torch.autograd.grad(_total, [_gu, _dn])
    for _r, _o in enumerate(_out):
        assert_close(_o["grad_gate_up"], _ggu[_r * _per:(_r + 1) * _per], rtol=1e-4, atol=1e-6,
                     name=f"gradient of rank {_r}'s gate_up_proj slice, {_N} ranks, E={_E}")
        assert_close(_o["grad_down"], _gdn[_r * _per:(_r + 1) * _per], rtol=1e-4, atol=1e-6,
                     name=f"gradient of rank {_r}'s down_proj slice, {_N} ranks, E={_E}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## Wrap-up
#
# - Two router conventions, one choice of experts: top-k-then-softmax equals
#   softmax-then-top-k renormalised; Qwen-MoE's unrenormalised weights and the float32
#   softmax are what differ.
# - Sort, run each expert once on a contiguous block, `index_add` back: $k/E$ of the dense
#   FLOPs, counted, not guessed.
# - Balance by a loss ($E \sum_i f_i P_i$, plus the z-loss for stable logits) or by a bias
#   that only changes which experts are chosen (DeepSeek-V3).
# - Capacity turns imbalance into dropped tokens; dropless layers trade that for blocks of
#   varying size.
# - Mixtral-8x7B runs about 28% of its parameters per token, DeepSeek-V3 about 5.6%: memory
#   scales with the total, compute with the active.
#
# **What real systems do differently.** Fused kernels do the permutation, the grouped matmul
# and the combine in a few launches (Megablocks, vLLM's fused MoE, DeepEP). Expert
# parallelism places $E/n$ experts on each of $n$ GPUs and exchanges tokens with two
# `all_to_all` collectives per layer (dispatch and combine), as in section 6, usually
# overlapped with the shared expert's compute, often with capacity-bounded buffers so that
# no count exchange is needed (DeepEP's kernels write straight into remote GPU memory). DeepSeek-V3
# also limits each token to a few GPU nodes (group-limited routing) to bound that traffic,
# and keeps a tiny sequence-wise balance loss next to the bias.
