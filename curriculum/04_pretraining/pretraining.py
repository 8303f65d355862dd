# %% [markdown]
# # Unit 04 — Pre-training: build the Llama decoder, its gradients, AdamW and the loop, then train it
#
# Pre-training a language model is one loop run for a very long time: take a batch of text,
# predict every next token, measure the cross-entropy, back-propagate, let the optimizer move
# the weights, repeat. Everything that makes the difference between a run that learns and
# one that silently wastes a week of GPUs lives in the details of that loop. In this unit
# you build every piece of it yourself, hold each piece against the library that real
# training uses, and then pre-train a small Llama from scratch on the course corpus:
#
# 1. **the decoder**: RMSNorm, the SwiGLU MLP, a pre-norm block and the full model, which
#    loads the bundled tiny Llama's weights and reproduces `transformers`' logits; its exact
#    parameter count and its FLOPs per token (the 6N rule plus the attention term);
# 2. **backprop by hand**: the forward and backward passes of cross-entropy (with ignored
#    positions) and of RMSNorm, without autograd, and a finite-difference gradient check;
# 3. **AdamW from scratch** as a `torch.optim.Optimizer`, step for step equal to
#    `torch.optim.AdamW`, with parameter groups and its exact state size in bytes;
# 4. **the learning-rate schedule** (warm-up, cosine, floor) and **global-norm clipping**;
# 5. **gradient accumulation** that equals the large batch even when the micro-batches hold
#    different numbers of tokens;
# 6. **the training loop** with checkpoints that resume *exactly*, and a real pre-training run;
# 7. **diagnosis**: reading the loss curves of broken runs.
#
# ## Learning objectives
#
# After this unit you can
# - write a Llama-style decoder whose `state_dict` is interchangeable with `transformers`',
#   and count its parameters and training FLOPs from its config alone;
# - derive and code the backward pass of softmax cross-entropy and of RMSNorm, and prove a
#   gradient right with central differences and a relative-error criterion;
# - implement AdamW (bias correction, decoupled weight decay, no decay on norms and biases)
#   and say how many bytes of state it keeps per parameter;
# - schedule the learning rate with warm-up and cosine decay, clip by the global norm, and
#   accumulate gradients without the loss-normalisation bug;
# - write a training loop whose checkpoints resume bit for bit, and estimate its model FLOPs
#   utilisation (MFU);
# - recognise a too-high learning rate, a missing `zero_grad`, unshifted labels and unshuffled
#   data from their loss curves, and write the one-line check that catches each.
#
# ## Prerequisites
#
# Unit 01 (matrix products, softmax and log-sum-exp, the stability bound of gradient
# descent), unit 02 (attention with RoPE and grouped-query attention: this notebook restates
# the layer for you), and unit 03 (tokenized, packed training text). PyTorch `nn.Module`,
# `autograd` and an optimizer loop; the chain rule.
#
# ## Time, device, skills
#
# - **Time:** about 5 hours (the estimate of the reviewers who worked through it): ten answer
#   cells, two of them backward passes and one a training loop with exact resume.
# - **Device:** CPU by default; the whole notebook runs in about a minute on 2 idle cores
#   (the pre-training run of section 6 takes some 15 s of it; a machine shared with other
#   jobs can make the whole several minutes). If a CUDA GPU is present, `device` below becomes `"cuda"`
#   and the same code runs there. Graded thresholds are calibrated on the bundled data.
# - **Skills practised** (see the course skill map): *Training and fine-tuning* (the
#   pre-training objective, training loops, gradient accumulation and clipping, checkpoints,
#   monitoring loss curves, diagnosing loss that does not fall); *Optimisation* (AdamW,
#   warm-up and cosine schedules, the stability bound); *Neural networks* (forward and
#   backward passes, gradient checks); *The transformer* (residuals and normalisation, the
#   decoder); *Information theory* (cross-entropy); *Engineering habits* (testing against a
#   reference library, counting FLOPs and bytes instead of guessing).
#
# Run the cell below first. It fixes seeds and threads and silences library warnings (the
# grader scores any test cell that writes to stderr as 0), and tokenizes the corpus.

# %% setup id=setup
import copy
import math
import os
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from graders.notebook import setup

setup()

import matplotlib.pyplot as plt
from graders.notebook import (
    assert_close,
    assert_shape,
    count_parameters,
    load_corpus,
    load_model,
    load_tokenizer,
    load_training_logs,
)
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.optimization import get_cosine_schedule_with_warmup, get_cosine_with_min_lr_schedule_with_warmup

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
tokenizer = load_tokenizer()
bundled_config = load_model().config


def encode(texts):
    """Pre-training's view of a corpus: every document as <bos> text <eos>, all concatenated."""
    ids = []
    for row in tokenizer(texts, verbose=False)["input_ids"]:
        ids += row + [tokenizer.eos_token_id]
    return torch.tensor(ids, dtype=torch.long)


train_tokens = encode(load_corpus("train")).to(device)
val_tokens = encode(load_corpus("validation")).to(device)
print(f"torch {torch.__version__}, running on {device}")
print(f"corpus: {len(train_tokens):,} training tokens, {len(val_tokens):,} validation tokens; "
      f"vocabulary {len(tokenizer):,}")
print(f"bundled tiny Llama: hidden {bundled_config.hidden_size}, {bundled_config.num_hidden_layers} layers, "
      f"{bundled_config.num_attention_heads} query heads / {bundled_config.num_key_value_heads} kv heads, "
      f"MLP {bundled_config.intermediate_size}")

# %% [markdown]
# ## 1. The decoder
#
# A Llama-family model turns token ids into next-token logits in three stages:
#
# $$ x^{(0)} = E[\text{ids}], \qquad
#    \begin{aligned} h &= x^{(\ell)} + \operatorname{Attn}\big(\operatorname{RMSNorm}_1(x^{(\ell)})\big),\\
#    x^{(\ell+1)} &= h + \operatorname{MLP}\big(\operatorname{RMSNorm}_2(h)\big), \end{aligned}
#    \qquad \text{logits} = \operatorname{RMSNorm}_f(x^{(L)})\, W_\text{out}^\top .$$
#
# **Pre-norm residual blocks.** Each block *adds* its output to the residual stream $x$ and
# normalises only the input of its branch. The original transformer normalised after the
# addition (post-norm); with pre-norm, the stream is an identity path from the embedding to
# the output, so gradients reach the first layers undiminished and deep models train
# without the careful warm-up post-norm needs. The price is one extra norm before the head.
#
# **RMSNorm** (Zhang & Sennrich, 2019) rescales each token's vector to unit root mean square
# and multiplies by a learned gain $w$ (initialised to ones):
#
# $$ \operatorname{RMSNorm}(x) = w \odot \frac{x}{\sqrt{\tfrac1D \sum_i x_i^2 + \varepsilon}} .$$
#
# Unlike LayerNorm it subtracts no mean and has no bias: cheaper, and as good in practice.
# Llama computes it in float32 whatever the input dtype, casts the normalised vector back,
# then multiplies by $w$: in float16 the squares of values above 256 overflow.
#
# **The SwiGLU MLP** (Shazeer, 2020) is a gated MLP with three matrices:
#
# $$ \operatorname{MLP}(x) = W_\text{down}\big(\operatorname{silu}(W_\text{gate}\,x) \odot W_\text{up}\,x\big),
#    \qquad \operatorname{silu}(z) = z\,\sigma(z), $$
#
# with an intermediate size $m$ of about $\tfrac83 h$ (so that three matrices cost what the
# classic $4h$-wide two-matrix MLP cost).
#
# **Tied embeddings.** When `config.tie_word_embeddings` is true (as for the bundled model),
# the output head *is* the embedding matrix: `lm_head.weight` and `embed_tokens.weight` are
# the same `Parameter`, stored and trained once.
#
# **Names.** To load a `transformers` checkpoint with `load_state_dict`, the module tree must
# carry the same names: `model.embed_tokens`, `model.layers.{i}.input_layernorm`,
# `model.layers.{i}.self_attn.{q,k,v,o}_proj`, `model.layers.{i}.post_attention_layernorm`,
# `model.layers.{i}.mlp.{gate,up,down}_proj`, `model.norm`, `lm_head`.
#
# **Initialisation** for training from scratch, as `transformers` does it: every `nn.Linear`
# and `nn.Embedding` weight from $\mathcal N(0, \sigma^2)$ with $\sigma$ =
# `config.initializer_range` (0.02), biases zero, norm gains one.
#
# The attention layer is the one you wrote in unit 02 (RoPE, grouped-query attention, the
# causal mask), restated in the locked cell below with its scores computed as explicit
# matrix products, so that `FlopCounterMode` sees them in section 1.2. Read it, then write
# the rest.

# %% setup id=attention_layer
def head_dim_of(config):
    """The size of one attention head: config.head_dim when set, else hidden_size / num_attention_heads."""
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def rope_theta_of(config):
    params = getattr(config, "rope_parameters", None) or {}
    return float(params.get("rope_theta", getattr(config, "rope_theta", None) or 10000.0))


def rope_cos_sin(t, head_dim, base, device=None):
    """cos and sin (T, head_dim) of the RoPE angles of positions 0..t-1, half-split layout (unit 02)."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    angles = torch.arange(t, dtype=torch.float32, device=device)[:, None] * inv_freq
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class Attention(nn.Module):
    """Llama's causal self-attention (unit 02): q/k/v/o projections, RoPE, grouped-query attention.
    forward(x): (B, T, hidden_size) -> (B, T, hidden_size), positions 0..T-1, no padding."""

    def __init__(self, config):
        super().__init__()
        h = config.hidden_size
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = head_dim_of(config)
        self.rope_base = rope_theta_of(config)
        bias = bool(getattr(config, "attention_bias", False))
        self.q_proj = nn.Linear(h, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(h, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(h, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, h, bias=bias)

    def forward(self, x):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rope_cos_sin(t, self.head_dim, self.rope_base, device=x.device)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        groups = self.num_heads // self.num_kv_heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, H, T, T)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        out = weights @ v  # (B, H, T, head_dim)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim))

# %% answer id=decoder
class RMSNorm(nn.Module):
    """RMSNorm over the last dimension: weight * x / sqrt(mean(x**2) + eps).
    self.weight: a Parameter of shape (dim,), initialised to ones; self.eps = eps.
    forward(x): any shape (..., dim), any float dtype; the normalisation is computed in
    float32, cast back to x's dtype, then multiplied by self.weight (as Llama does)."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        ### BEGIN SOLUTION
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)
        ### END SOLUTION


class SwiGLU(nn.Module):
    """The Llama MLP: down_proj(silu(gate_proj(x)) * up_proj(x)).
    gate_proj, up_proj: nn.Linear(hidden_size, intermediate_size); down_proj: nn.Linear(intermediate_size,
    hidden_size); all with bias=bias. forward: (..., hidden_size) -> (..., hidden_size)."""

    def __init__(self, hidden_size, intermediate_size, bias=False):
        super().__init__()
        ### BEGIN SOLUTION
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        ### END SOLUTION


class Block(nn.Module):
    """A pre-norm decoder layer: x + attn(norm1(x)), then h + mlp(norm2(h)).
    Submodules: input_layernorm and post_attention_layernorm (RMSNorm(hidden_size, config.rms_norm_eps)),
    self_attn (Attention(config)), mlp (SwiGLU(hidden_size, config.intermediate_size, bias=config.mlp_bias)).
    forward: (B, T, hidden_size) -> (B, T, hidden_size)."""

    def __init__(self, config):
        super().__init__()
        ### BEGIN SOLUTION
        h = config.hidden_size
        self.input_layernorm = RMSNorm(h, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(h, config.rms_norm_eps)
        self.mlp = SwiGLU(h, config.intermediate_size, bias=bool(getattr(config, "mlp_bias", False)))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))
        ### END SOLUTION


class Decoder(nn.Module):
    """embed_tokens (nn.Embedding(vocab_size, hidden_size)), layers (an nn.ModuleList of
    num_hidden_layers Blocks), norm (the final RMSNorm). forward: ids (B, T) int64 -> (B, T, hidden_size)."""

    def __init__(self, config):
        super().__init__()
        ### BEGIN SOLUTION
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        ### END SOLUTION

    def forward(self, input_ids):
        ### BEGIN SOLUTION
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)
        ### END SOLUTION


class CausalLM(nn.Module):
    """The whole model, with the module names of transformers' LlamaForCausalLM:
    self.config = config; self.model = Decoder(config); self.lm_head = nn.Linear(hidden_size,
    vocab_size, bias=False), whose weight IS self.model.embed_tokens.weight (the same Parameter)
    when config.tie_word_embeddings. Initialisation: every nn.Linear and nn.Embedding weight
    ~ N(0, config.initializer_range**2), every bias 0, every RMSNorm weight 1.
    forward(input_ids (B, T) int64) -> logits (B, T, vocab_size), in the parameters' dtype."""

    def __init__(self, config):
        super().__init__()
        ### BEGIN SOLUTION
        self.config = config
        self.model = Decoder(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=config.initializer_range)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        ### END SOLUTION

    def forward(self, input_ids):
        ### BEGIN SOLUTION
        return self.lm_head(self.model(input_ids))
        ### END SOLUTION

# %% test id=test_decoder_visible points=1
# RMSNorm on a worked example: mean of squares of [3, -4, 0, 0] is 25/4, so the rms is 2.5.
norm0 = RMSNorm(4, eps=0.0)
x_norm0 = torch.tensor([[3.0, -4.0, 0.0, 0.0]])
assert_close(norm0(x_norm0), x_norm0 / 2.5, rtol=1e-6, atol=1e-6, name="RMSNorm(4, eps=0) on [3, -4, 0, 0]")
assert_shape(norm0.weight, (4,), name="RMSNorm(4).weight")
# The bundled checkpoint loads into your model with strict=True (same names and shapes) ...
hf_model = load_model(device=device)
my_model = CausalLM(bundled_config).to(device).eval()
my_model.load_state_dict(hf_model.state_dict(), strict=True)
# The checkpoint holds the head under both names, so loading it cannot show a missing tie: check it.
assert my_model.lm_head.weight is my_model.model.embed_tokens.weight, (
    "the bundled config has tie_word_embeddings=True: lm_head.weight must be the same Parameter as "
    "model.embed_tokens.weight, got two different tensors")
ids0 = tokenizer("def add(a, b):\n    return a + b", return_tensors="pt")["input_ids"].to(device)
with torch.no_grad():
    logits0, want_logits0 = my_model(ids0), hf_model(input_ids=ids0).logits
assert_shape(logits0, tuple(want_logits0.shape), name="CausalLM(bundled config)(ids)")
# ... and gives transformers' logits: the same float32 operations in a slightly different
# order (our attention vs its sdpa kernel), ~1e-5 on logits of size ~10.
assert_close(logits0, want_logits0, rtol=1e-4, atol=1e-4, name="logits of CausalLM vs LlamaForCausalLM (bundled weights)")

# %% test id=test_decoder_hidden points=4
### BEGIN HIDDEN TESTS
from transformers.models.llama.modeling_llama import LlamaMLP, LlamaRMSNorm

torch.manual_seed(1)
# RMSNorm: against transformers' LlamaRMSNorm, default eps, float16 values whose squares overflow.
assert RMSNorm(8).eps == 1e-6, f"RMSNorm(dim) default eps: expected 1e-6 (Llama's), got {RMSNorm(8).eps}"
for shape, eps, dtype, scale in [((3, 5, 16), 1e-5, torch.float32, 1.0), ((7, 64), 1e-6, torch.float64, 3.0),
                                 ((2, 4, 32), 1e-5, torch.bfloat16, 1.0), ((4, 32), 1e-6, torch.float16, 400.0)]:
    mine, ref = RMSNorm(shape[-1], eps=eps), LlamaRMSNorm(shape[-1], eps=eps)
    with torch.no_grad():
        mine.weight.normal_()
        ref.weight.copy_(mine.weight)
    mine, ref = mine.to(device, dtype), ref.to(device, dtype)
    x = (scale * torch.randn(shape, device=device)).to(dtype)
    x_before = x.clone()
    got, want = mine(x), ref(x)
    assert got.dtype == want.dtype, f"RMSNorm on {dtype} input with {dtype} weights: expected dtype {want.dtype}, got {got.dtype}"
    assert torch.isfinite(got).all(), f"RMSNorm on {dtype} values of size ~{scale}: non-finite output (compute in float32)"
    # The same formula in float32, then one rounding to the input dtype: equal up to that rounding.
    # A float64 input is normalised in float32 too, so it carries float32 round-off like a float32
    # one: correct float32 orders (x * rsqrt or x / sqrt, mean or einsum or sum / dim) differ from
    # LlamaRMSNorm by up to ~2e-7 (a few float32 ulps), hence 1e-6 for both. (The float32 case
    # still sees eps added after the square root: 4e-6 there.)
    tol = {torch.float64: 1e-6, torch.float32: 1e-6, torch.bfloat16: 1e-2, torch.float16: 2e-3}[dtype]
    assert_close(got.float(), want.float(), rtol=tol, atol=tol, name=f"RMSNorm vs LlamaRMSNorm ({dtype}, eps={eps}, x ~ {scale})")
    assert torch.equal(x, x_before), "RMSNorm must not modify its input"
# Mixed dtypes, as under autocast: float32 weights, bfloat16 activations. LlamaRMSNorm casts the
# normalised x back to bfloat16 and then multiplies by the float32 weight: a float32 output.
mine_mix, ref_mix = RMSNorm(16), LlamaRMSNorm(16, eps=1e-6)
with torch.no_grad():
    mine_mix.weight.normal_()
    ref_mix.weight.copy_(mine_mix.weight)
mine_mix, ref_mix = mine_mix.to(device), ref_mix.to(device)
x_mix = torch.randn(3, 16, device=device).to(torch.bfloat16)
got_mix, want_mix = mine_mix(x_mix), ref_mix(x_mix)
assert got_mix.dtype == want_mix.dtype == torch.float32, (
    f"RMSNorm with float32 weights on bfloat16 input: expected float32 like LlamaRMSNorm (cast the normalised x "
    f"back to x's dtype, then multiply by the weight), got {got_mix.dtype}")
assert_close(got_mix, want_mix, rtol=1e-6, atol=1e-6, name="RMSNorm vs LlamaRMSNorm (float32 weight, bfloat16 input)")
# SwiGLU against LlamaMLP, with and without biases.
for h, m, bias in [(32, 88, False), (48, 64, True)]:
    cfg = LlamaConfig(hidden_size=h, intermediate_size=m, num_attention_heads=4, mlp_bias=bias)
    ref = LlamaMLP(cfg).to(device)
    mine = SwiGLU(h, m, bias=bias).to(device)
    mine.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 5, h, device=device)
    assert_close(mine(x), ref(x), rtol=1e-5, atol=1e-6, name=f"SwiGLU vs LlamaMLP (hidden {h}, intermediate {m}, bias={bias})")
# Whole models against LlamaForCausalLM with random weights, in both directions of load_state_dict.
_configs = [
    LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=8,
                num_key_value_heads=2, tie_word_embeddings=True, rms_norm_eps=1e-5, rope_theta=10000.0),
    LlamaConfig(vocab_size=200, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=1, head_dim=16, tie_word_embeddings=False, rms_norm_eps=1e-6, rope_theta=500.0,
                attention_bias=True, mlp_bias=True),
    LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=2, tie_word_embeddings=False, rms_norm_eps=1e-5, initializer_range=0.2),
]
for cfg in _configs:
    torch.manual_seed(2)
    ref = LlamaForCausalLM(cfg).to(device).eval()
    with torch.no_grad():  # non-trivial norm gains and biases, so that every parameter matters
        for name, p in ref.named_parameters():
            if p.ndim == 1:
                p.copy_(1.0 + 0.3 * torch.randn_like(p) if "norm" in name else 0.1 * torch.randn_like(p))
    mine = CausalLM(cfg).to(device).eval()
    assert mine.config is cfg, "CausalLM must keep its config as self.config"
    assert count_parameters(mine) == count_parameters(ref), (
        f"CausalLM(config) has {count_parameters(mine):,} parameters, LlamaForCausalLM(config) {count_parameters(ref):,} "
        f"(tie_word_embeddings={cfg.tie_word_embeddings}, attention_bias={cfg.attention_bias}, mlp_bias={cfg.mlp_bias})")
    mine.load_state_dict(ref.state_dict(), strict=True)
    if cfg.tie_word_embeddings:
        assert mine.lm_head.weight is mine.model.embed_tokens.weight, "with tied embeddings lm_head.weight must be embed_tokens.weight"
    else:
        assert mine.lm_head.weight is not mine.model.embed_tokens.weight, "with tie_word_embeddings=False the head has its own weight"
    again = LlamaForCausalLM(cfg).to(device).eval()
    again.load_state_dict(mine.state_dict(), strict=True)
    ids = torch.randint(0, cfg.vocab_size, (3, 11), device=device)
    with torch.no_grad():
        want = ref(input_ids=ids).logits
        for got, label in [(mine(ids), "CausalLM"), (again(input_ids=ids).logits, "LlamaForCausalLM loaded from CausalLM")]:
            # float32 round-off through a few layers: ~1e-6 on logits of size ~1.
            assert_close(got, want, rtol=1e-4, atol=1e-4,
                         name=f"{label} logits vs LlamaForCausalLM (heads {cfg.num_attention_heads}/{cfg.num_key_value_heads}, "
                              f"head_dim {head_dim_of(cfg)}, biases {cfg.attention_bias}/{cfg.mlp_bias}, "
                              f"eps {cfg.rms_norm_eps}, rope theta {rope_theta_of(cfg)})")
        assert_close(mine(ids[:, :1]), ref(input_ids=ids[:, :1]).logits, rtol=1e-4, atol=1e-4, name="logits of a single token")
# Initialisation statistics: N(0, initializer_range^2) weights, zero biases, unit norm gains.
cfg = LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, tie_word_embeddings=False, initializer_range=0.05, attention_bias=True)
torch.manual_seed(3)
fresh = CausalLM(cfg)
for name, p in fresh.named_parameters():
    if p.ndim >= 2:
        # >= 16k samples of N(0, 0.05^2): the sample std is within 2 % of 0.05, the mean within 0.002.
        assert abs(p.std().item() - 0.05) < 0.005 and abs(p.mean().item()) < 0.003, (
            f"{name} at initialisation: expected N(0, 0.05^2) (initializer_range=0.05), got mean {p.mean().item():.4f}, "
            f"std {p.std().item():.4f}")
    elif "norm" in name:
        assert torch.equal(p, torch.ones_like(p)), f"{name} at initialisation: expected ones"
    else:
        assert torch.equal(p, torch.zeros_like(p)), f"{name} (a bias) at initialisation: expected zeros"
# Gradients reach every parameter; other dtypes and the meta device work.
fresh(torch.randint(0, 512, (2, 6))).logsumexp(-1).sum().backward()
no_grad = [n for n, p in fresh.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
assert not no_grad, f"parameters that received no gradient: {no_grad[:4]}"
lm_bf16 = CausalLM(_configs[0]).to(device, torch.bfloat16)
out_bf16 = lm_bf16(torch.randint(0, 300, (1, 5), device=device))
assert out_bf16.dtype == torch.bfloat16, f"a bfloat16 model must return bfloat16 logits, got {out_bf16.dtype}"
with torch.device("meta"):
    on_meta = CausalLM(_configs[1])
    assert on_meta(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 4, 200)
# The stated default: SwiGLU(hidden, intermediate) has no biases (Llama's MLP).
assert not [n for n, _ in SwiGLU(8, 16).named_parameters() if n.endswith("bias")], "SwiGLU's bias must default to False"
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### 1.2 Counting parameters and FLOPs
#
# Both counts follow from the config alone. With hidden size $h$, $L$ layers, $H$ query
# heads and $H_{kv}$ key/value heads of size $d$ (`head_dim_of(config)`), MLP width $m$ and
# vocabulary $V$, a layer holds the matrices
#
# | module | shape ($d_\text{out} \times d_\text{in}$) |
# |---|---|
# | `q_proj`, `o_proj` | $Hd \times h$, $h \times Hd$ |
# | `k_proj`, `v_proj` | $H_{kv} d \times h$ each |
# | `gate_proj`, `up_proj`, `down_proj` | $m \times h$, $m \times h$, $h \times m$ |
#
# plus two RMSNorm gains of size $h$ (and, when `attention_bias` / `mlp_bias` are set, one
# bias of size $d_\text{out}$ per projection). The model adds the embedding ($V h$), the
# final norm ($h$) and the head ($V h$, unless it is tied to the embedding).
#
# **FLOPs.** A matrix product $(n \times k)(k \times m)$ costs $2nkm$ floating-point
# operations (a multiply and an add per term). So every weight that takes part in a matrix
# product costs **2 FLOPs per token** in the forward pass, and **4** in the backward pass
# (one product for the gradient of the layer's input, one for the gradient of the weight):
# **6 FLOPs per weight per token** for a training step. That is the "$6N$" rule (Kaplan et
# al., 2020) with $N$ the number of weights *in matrix products*: every projection and the
# output head, which multiplies even when it is tied; not the embedding (a table lookup),
# nor norms and biases (element-wise, negligible, and not counted by profilers).
#
# Attention adds products that involve no weight: $QK^\top$ and $PV$ cost $2\,T\,d$ each per
# token and head in the forward pass (each query meets $T$ keys). Counting the whole
# $T \times T$ score matrix, as `torch.utils.flop_counter.FlopCounterMode` does (a causal
# kernel could skip the masked half), a training step costs
#
# $$ \text{FLOPs per token} = 6N + 12\, L\, T\, H\, d , $$
#
# the formula the PaLM paper uses for its *model FLOPs utilisation* (MFU): the FLOPs a step
# needs, by this count, divided by its time and by the hardware's peak FLOP/s. The forward
# pass alone is a third of it, $2N + 4LTHd$. Write both counts; the tests hold them against
# `LlamaForCausalLM` itself and against `FlopCounterMode`.

# %% answer id=counts
def count_params(config):
    """All parameters of LlamaForCausalLM(config) (equal to CausalLM(config)): embeddings, every
    layer (projections, biases when config.attention_bias / config.mlp_bias, two norm gains),
    the final norm, and the head unless config.tie_word_embeddings. An int."""
    ### BEGIN SOLUTION
    h, V, L = config.hidden_size, config.vocab_size, config.num_hidden_layers
    shapes = _linear_shapes(config)
    per_layer = sum(d_in * d_out for d_in, d_out in shapes.values()) + 2 * h
    if getattr(config, "attention_bias", False):
        per_layer += sum(shapes[n][1] for n in ("q_proj", "k_proj", "v_proj", "o_proj"))
    if getattr(config, "mlp_bias", False):
        per_layer += sum(shapes[n][1] for n in ("gate_proj", "up_proj", "down_proj"))
    head = 0 if config.tie_word_embeddings else V * h
    return V * h + L * per_layer + h + head
    ### END SOLUTION


def flops_per_token(config, seq_len, training=True):
    """Matrix-product FLOPs per token of a sequence of seq_len tokens, as FlopCounterMode counts them:
    training=True: forward + backward, 6 * N + 12 * L * seq_len * H * head_dim;
    training=False: the forward pass only, 2 * N + 4 * L * seq_len * H * head_dim;
    N = the weights used in matrix products (every projection of every layer and the output head,
    tied or not; no embedding lookup, norms or biases). An int."""
    ### BEGIN SOLUTION
    shapes = _linear_shapes(config)
    n_matmul = config.num_hidden_layers * sum(d_in * d_out for d_in, d_out in shapes.values())
    n_matmul += config.vocab_size * config.hidden_size
    attention = 4 * config.num_hidden_layers * seq_len * config.num_attention_heads * head_dim_of(config)
    forward = 2 * n_matmul + attention
    return 3 * forward if training else forward


def _linear_shapes(config):
    """(d_in, d_out) of the seven projections of one layer."""
    h, m, d = config.hidden_size, config.intermediate_size, head_dim_of(config)
    q, kv = config.num_attention_heads * d, config.num_key_value_heads * d
    return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, m), "up_proj": (h, m), "down_proj": (m, h)}
    ### END SOLUTION

# %% test id=test_counts_visible points=1
n_bundled = count_parameters(load_model())
assert count_params(bundled_config) == n_bundled, (
    f"count_params(bundled config): the model has {n_bundled:,} parameters, got {count_params(bundled_config):,}")


def measured_step_flops(model, batch_size, seq_len):
    """FLOPs that FlopCounterMode counts in one forward + backward pass on random ids."""
    ids = torch.randint(0, model.config.vocab_size, (batch_size, seq_len), device=device)
    with FlopCounterMode(display=False) as counter:
        out = model(ids)
        logits = out.logits if hasattr(out, "logits") else out
        F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten()).backward()
    return counter.get_total_flops()


def eager_llama(config):
    """LlamaForCausalLM with eager attention: its scores are plain matrix products, as in ours."""
    model = LlamaForCausalLM(config)
    model.set_attn_implementation("eager")
    return model.to(device)


want_flops0 = measured_step_flops(eager_llama(bundled_config), 2, 32)
got_flops0 = 2 * 32 * flops_per_token(bundled_config, 32)
assert got_flops0 == want_flops0, (
    f"flops_per_token(bundled config, 32) x 64 tokens: FlopCounterMode counts {want_flops0:,} FLOPs for a "
    f"training step of LlamaForCausalLM on 2 x 32 tokens, got {got_flops0:,}")

# %% test id=test_counts_hidden points=3
### BEGIN HIDDEN TESTS
_count_configs = {
    "Llama-2-7B": LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                              num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False),
    "GQA, tied": LlamaConfig(vocab_size=1000, hidden_size=96, intermediate_size=200, num_hidden_layers=3,
                             num_attention_heads=6, num_key_value_heads=2, tie_word_embeddings=True),
    "head_dim set, biases": LlamaConfig(vocab_size=500, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=1, head_dim=32,
                                        tie_word_embeddings=False, attention_bias=True, mlp_bias=True),
    "MLP bias only": LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True, mlp_bias=True),
}
for label, cfg in _count_configs.items():
    with torch.device("meta"):
        want = count_parameters(LlamaForCausalLM(cfg))
    got = count_params(cfg)
    assert got == want, f"count_params({label}): LlamaForCausalLM has {want:,} parameters, got {got:,}"
    assert isinstance(got, int), f"count_params must return an int, got {type(got).__name__}"
# FLOPs against FlopCounterMode on eager LlamaForCausalLM: several shapes, lengths, training or not.
for label in ("GQA, tied", "head_dim set, biases", "MLP bias only"):
    cfg = _count_configs[label]
    model = eager_llama(cfg)
    for b, t in [(1, 7), (3, 40)]:
        want = measured_step_flops(model, b, t)
        got = b * t * flops_per_token(cfg, t)
        assert got == want, f"flops_per_token({label}, {t}) x {b * t} tokens: FlopCounterMode counts {want:,}, got {got:,}"
        ids = torch.randint(0, cfg.vocab_size, (b, t), device=device)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(input_ids=ids)
        got_fwd = b * t * flops_per_token(cfg, t, training=False)
        assert got_fwd == counter.get_total_flops(), (
            f"flops_per_token({label}, {t}, training=False) x {b * t} tokens: the forward pass counts "
            f"{counter.get_total_flops():,}, got {got_fwd:,}")
# The learner's own model does the same matrix products. Its norms are profiled as a plain RMSNorm
# (element-wise operations, which FlopCounterMode does not count): the formula leaves norms out, and a
# correct norm may compute its mean of squares with a product the counter does count (an einsum).
small = CausalLM(_count_configs["GQA, tied"]).to(device)


def _plain_rms_norm(norm):
    def forward(x):
        x32 = x.float()
        return norm.weight * (x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + norm.eps)).to(x.dtype)
    return forward


for _norm in [m for m in small.modules() if isinstance(m, RMSNorm)]:
    _norm.forward = _plain_rms_norm(_norm)
assert measured_step_flops(small, 2, 9) == 18 * flops_per_token(small.config, 9), (
    "CausalLM: FlopCounterMode's count of a training step differs from 6N + 12 L T H d per token")
# The 6N rule dominates for short contexts: a 7B model at T=4096 spends about 14 % of its FLOPs on attention scores
# (12 L T d = 6.44 GFLOPs of 39.64 + 6.44 = 46.08 GFLOPs per token).
big = _count_configs["Llama-2-7B"]
want_7b = 6 * (32 * (4 * 4096 * 4096 + 3 * 4096 * 11008) + 32000 * 4096) + 12 * 32 * 4096 * 32 * 128
assert flops_per_token(big, 4096) == want_7b, f"flops_per_token(Llama-2-7B, 4096): expected {want_7b:,}, got {flops_per_token(big, 4096):,}"
### END HIDDEN TESTS
assert True

# %% [markdown]
# Where the FLOPs of a training step go, per token, as the context grows (the bundled model
# and a 7B Llama): the $6N$ term is constant, the attention term grows linearly with $T$.
# For the tiny model the output head (a $4096 \times 256$ product) is a large share of $N$.

# %%
llama7b = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False)
lengths = [128, 512, 2048, 8192, 32768]
fig, ax = plt.subplots(figsize=(6, 3.8))
for label, cfg in [("bundled tiny Llama", bundled_config), ("Llama-2-7B shapes", llama7b)]:
    total = [flops_per_token(cfg, t) for t in lengths]
    six_n = flops_per_token(cfg, 0)
    ax.semilogx(lengths, [six_n / f for f in total], "o-", base=2, label=label)
    print(f"{label:>20}: {count_params(cfg):>14,} parameters; training FLOPs per token at T=2048: "
          f"{flops_per_token(cfg, 2048):.3e} (6N = {six_n:.3e})")
ax.set_xlabel("sequence length T")
ax.set_ylabel("share of 6N in the FLOPs per token")
ax.set_title("the 6N rule holds while T is small against the width")
ax.legend()
plt.show()

# %% [markdown]
# ## 2. Backprop by hand
#
# `loss.backward()` runs, for every operation of the forward pass in reverse order, that
# operation's *backward* function: given $\partial L/\partial(\text{output})$, return
# $\partial L/\partial(\text{input})$ (and the gradients of its parameters). Writing two of
# them by hand is the best way to trust the rest, and the skill you need when you fuse
# kernels (a fused kernel needs a hand-written backward) or debug a gradient.
#
# **Softmax cross-entropy with ignored positions.** Row $i$ of the logits $z_i \in \mathbb R^V$
# has target $y_i$; rows whose target is `ignore_index` (-100: padding, prompts) do not count.
# With $\mathcal C$ the counted rows and $n = |\mathcal C|$,
#
# $$ L = \frac1n \sum_{i \in \mathcal C} -\log p_{i, y_i}, \qquad p_i = \operatorname{softmax}(z_i), \qquad
#    \frac{\partial L}{\partial z_{i}} = \begin{cases} \dfrac{p_i - e_{y_i}}{n} & i \in \mathcal C\\[4pt] 0 & \text{otherwise,}\end{cases}$$
#
# the famous "probabilities minus one-hot". Compute $\log p$ stably with the log-sum-exp of
# unit 01 (subtract each row's maximum) and divide by the number of *counted* rows, not all
# rows. With no counted row, $L = 0/0$: return NaN and a zero gradient, as PyTorch does.
#
# **RMSNorm.** With $r = (\tfrac1D\sum_j x_j^2 + \varepsilon)^{-1/2}$, $\hat x = r x$ and
# $y = w \odot \hat x$, an upstream gradient $\delta = \partial L/\partial y$ gives, per token
# (derive it: $\partial r/\partial x_j = -r^3 x_j / D$),
#
# $$ \frac{\partial L}{\partial w} = \sum_{\text{tokens}} \delta \odot \hat x, \qquad
#    \frac{\partial L}{\partial x} = r\Big(g - \hat x \cdot \tfrac1D \textstyle\sum_j g_j \hat x_j\Big), \quad g = \delta \odot w .$$
#
# The forward pass returns a *cache* of what the backward pass needs (here $\hat x$, $r$, $w$),
# exactly what autograd saves for you. Use no autograd in this section: the tests call your
# functions under `torch.no_grad()`.

# %% answer id=backprop
def cross_entropy_forward_backward(logits, targets, ignore_index=-100):
    """Mean cross-entropy over the counted positions, and its gradient, without autograd.
    logits: (..., V) float; targets: (...) int64 class ids, or ignore_index for positions that do not count.
    Returns (loss, dlogits): loss a 0-dim tensor (NaN if no position counts), dlogits = dloss/dlogits,
    shaped and typed like logits (zeros on ignored positions). Stable for logits of any size."""
    ### BEGIN SOLUTION
    vocab = logits.shape[-1]
    z, y = logits.reshape(-1, vocab), targets.reshape(-1)
    keep = y != ignore_index
    count = keep.sum()
    shifted = z - z.amax(dim=-1, keepdim=True)
    log_probs = shifted - shifted.exp().sum(dim=-1, keepdim=True).log()
    safe = torch.where(keep, y, torch.zeros_like(y))
    nll = -log_probs.gather(-1, safe[:, None])[:, 0]
    loss = torch.where(keep, nll, torch.zeros_like(nll)).sum() / count
    grad = log_probs.exp()
    grad[torch.arange(len(y), device=y.device), safe] -= 1.0
    grad = grad * keep[:, None] / count.clamp(min=1)
    return loss, grad.reshape(logits.shape)
    ### END SOLUTION


def rmsnorm_forward(x, weight, eps=1e-6):
    """y = weight * x / sqrt(mean(x**2, last dim) + eps), in x's dtype (no float32 detour here).
    x: (..., D); weight: (D,). Returns (y, cache): cache holds what rmsnorm_backward needs."""
    ### BEGIN SOLUTION
    rstd = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    x_hat = x * rstd
    return x_hat * weight, (x_hat, rstd, weight)
    ### END SOLUTION


def rmsnorm_backward(dy, cache):
    """dy = dL/dy, shaped like y. Returns (dx, dweight): dx shaped like x, dweight of shape (D,)."""
    ### BEGIN SOLUTION
    x_hat, rstd, weight = cache
    g = dy * weight
    dx = rstd * (g - x_hat * (g * x_hat).mean(dim=-1, keepdim=True))
    dweight = (dy * x_hat).reshape(-1, x_hat.shape[-1]).sum(dim=0)
    return dx, dweight
    ### END SOLUTION

# %% test id=test_backprop_visible points=1
# Worked example: row 0 counts (target 0), row 1 is ignored, so n = 1.
z_ce0 = torch.tensor([[2.0, 0.0, 0.0], [5.0, 1.0, 0.0]])
y_ce0 = torch.tensor([0, -100])
with torch.no_grad():
    loss_ce0, dz_ce0 = cross_entropy_forward_backward(z_ce0, y_ce0)
p_ce0 = torch.softmax(torch.tensor([2.0, 0.0, 0.0]), 0)
# float32 log-sum-exp of three numbers: 1e-6.
assert_close(loss_ce0, -torch.log(p_ce0[0]), rtol=1e-6, atol=1e-6, name="loss of the worked example (-log p_0 of row 0)")
assert_close(dz_ce0, torch.stack([p_ce0 - torch.tensor([1.0, 0.0, 0.0]), torch.zeros(3)]), rtol=1e-6, atol=1e-6,
             name="dlogits of the worked example (p - onehot on row 0, zeros on the ignored row)")
# RMSNorm against autograd through torch's own F.rms_norm, in float64 (round-off ~1e-15).
torch.manual_seed(4)
x_rms0 = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
w_rms0 = torch.randn(8, dtype=torch.float64, requires_grad=True)
y_rms0 = F.rms_norm(x_rms0, (8,), w_rms0, 1e-5)
dy_rms0 = torch.randn_like(y_rms0)
y_rms0.backward(dy_rms0)
with torch.no_grad():
    got_y0, cache0 = rmsnorm_forward(x_rms0.detach(), w_rms0.detach(), 1e-5)
    got_dx0, got_dw0 = rmsnorm_backward(dy_rms0, cache0)
assert_close(got_y0, y_rms0.detach(), rtol=1e-10, atol=1e-12, name="rmsnorm_forward vs F.rms_norm")
assert_close(got_dx0, x_rms0.grad, rtol=1e-10, atol=1e-12, name="dx of rmsnorm_backward vs autograd")
assert_close(got_dw0, w_rms0.grad, rtol=1e-10, atol=1e-12, name="dweight of rmsnorm_backward vs autograd")

# %% test id=test_backprop_hidden points=3
### BEGIN HIDDEN TESTS
def _ce_oracle(z, y, ignore_index):
    z = z.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1), ignore_index=ignore_index)
    loss.backward()
    return loss.detach(), z.grad


torch.manual_seed(5)
for shape, vocab, scale, dtype, ignore_index in [((9,), 7, 1.0, torch.float64, -100), ((4, 6), 33, 20.0, torch.float64, -100),
                                                 ((2, 3, 5), 11, 1000.0, torch.float64, -100), ((16,), 50, 3.0, torch.float32, -100),
                                                 ((8,), 1, 1.0, torch.float64, -100), ((3, 4), 9, 2.0, torch.float64, 4)]:
    z = (scale * torch.randn(*shape, vocab, dtype=dtype, device=device))
    y = torch.randint(0, vocab, shape, device=device)
    y.view(-1)[::3] = ignore_index  # every third position does not count
    z_before, y_before = z.clone(), y.clone()
    with torch.no_grad():
        loss, dz = cross_entropy_forward_backward(z, y, ignore_index=ignore_index)
    want_loss, want_dz = _ce_oracle(z, y, ignore_index)
    # float64: 1e-12; float32 over 50 classes: 1e-6.
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    what = f"logits {tuple(z.shape)} of size ~{scale}, ignore_index={ignore_index}"
    assert loss.ndim == 0, f"the loss must be a 0-dim tensor, got shape {tuple(loss.shape)}"
    assert dz.shape == z.shape and dz.dtype == z.dtype, f"dlogits: expected {tuple(z.shape)} {z.dtype}, got {tuple(dz.shape)} {dz.dtype}"
    assert_close(loss, want_loss, rtol=tol, atol=tol, name=f"loss vs F.cross_entropy ({what})")
    assert_close(dz, want_dz, rtol=tol, atol=tol, name=f"dlogits vs autograd ({what})")
    assert torch.equal(z, z_before) and torch.equal(y, y_before), "cross_entropy_forward_backward must not modify its inputs"
with torch.no_grad():
    loss, dz = cross_entropy_forward_backward(torch.randn(3, 4, device=device), torch.full((3,), -100, device=device))
assert torch.isnan(loss), f"with every position ignored the loss must be NaN (0/0, as in torch), got {loss}"
assert torch.equal(dz, torch.zeros_like(dz)), "with every position ignored dlogits must be all zeros"
for shape, eps, scale in [((5, 16), 1e-6, 1.0), ((2, 3, 32), 1e-5, 10.0), ((4, 1), 1e-3, 0.1), ((1, 7, 64), 0.5, 1.0)]:
    x = (scale * torch.randn(shape, dtype=torch.float64, device=device)).requires_grad_(True)
    w = torch.randn(shape[-1], dtype=torch.float64, device=device).requires_grad_(True)
    y = F.rms_norm(x, (shape[-1],), w, eps)
    dy = torch.randn_like(y)
    y.backward(dy)
    x_before = x.detach().clone()
    with torch.no_grad():
        got_y, cache = rmsnorm_forward(x.detach(), w.detach(), eps)
        got_dx, got_dw = rmsnorm_backward(dy, cache)
    what = f"x of shape {shape} ~{scale}, eps={eps}"
    assert_shape(got_dw, (shape[-1],), name=f"dweight ({what})")
    assert_close(got_y, y.detach(), rtol=1e-10, atol=1e-12, name=f"rmsnorm_forward vs F.rms_norm ({what})")
    assert_close(got_dx, x.grad, rtol=1e-9, atol=1e-11, name=f"dx vs autograd ({what})")
    assert_close(got_dw, w.grad, rtol=1e-9, atol=1e-11, name=f"dweight vs autograd ({what})")
    assert torch.equal(x.detach(), x_before), "rmsnorm_forward must not modify x"
assert rmsnorm_forward(torch.ones(2, 4), torch.ones(4))[0].dtype == torch.float32, "rmsnorm_forward keeps x's dtype"
# The default eps: with entries of 1e-3 the mean square is 1e-6, so eps = 1e-6 halves it (y = 1/sqrt 2);
# 2e-6 would give 1/sqrt 3.
assert_close(rmsnorm_forward(torch.full((1, 4), 1e-3, dtype=torch.float64), torch.ones(4, dtype=torch.float64))[0],
             torch.full((1, 4), 1e-3 / math.sqrt(2e-6), dtype=torch.float64), rtol=1e-9, atol=0,
             name="rmsnorm_forward default eps (1e-6) on entries of 1e-3")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### 2.2 The gradient check
#
# How do you know a backward pass is right without an oracle? Compare it with the
# definition of the derivative. **Central differences**
#
# $$ \frac{\partial f}{\partial x_i} \approx \frac{f(x + \epsilon e_i) - f(x - \epsilon e_i)}{2\epsilon} $$
#
# have an error of order $\epsilon^2$ (the even terms of the Taylor series cancel), against
# $\epsilon$ for the one-sided $\big(f(x + \epsilon e_i) - f(x)\big)/\epsilon$. Subtracting two
# nearly equal numbers also loses digits: about $u\,|f| / \epsilon$, with $u$ the unit
# round-off ($10^{-16}$ in float64, $6 \cdot 10^{-8}$ in float32). In float64 with
# $\epsilon = 10^{-6}$ both errors are around $10^{-10}$; in float32 no $\epsilon$ works well,
# so a gradient check always runs in float64.
#
# **The criterion** must not depend on the scale of the gradient: an absolute error of
# $10^{-6}$ is excellent for a gradient of size 100 and damning for one of size $10^{-6}$. Use
# the relative error
#
# $$ \operatorname{err}(a, n) = \frac{\lVert a - n \rVert}{\lVert a \rVert + \lVert n \rVert} \in [0, 1] ,$$
#
# (Euclidean norms over all entries, with a tiny floor in the denominator so that two zero
# gradients give 0). With central differences in float64, a correct gradient gives
# $10^{-8}$ or less; a wrong one (a missing term, a wrong sign, a factor off by 1 %) gives
# $10^{-3}$ and more. Passing means $\operatorname{err} < 10^{-6}$.
#
# `torch.autograd.gradcheck` does the same for PyTorch functions; write your own, then check
# the backward passes above with it.

# %% answer id=gradcheck
def numerical_gradient(f, x, eps=1e-6):
    """Central differences (f(x + eps e_i) - f(x - eps e_i)) / (2 eps) for every entry i of x,
    in float64: f is called exactly 2 * x.numel() times, each time with a float64 tensor shaped
    like x, and returns a scalar (a float or a 0-dim tensor, possibly attached to an autograd
    graph). x itself is not modified. Returns a float64 tensor shaped like x, of plain numbers
    (no autograd graph)."""
    ### BEGIN SOLUTION
    x = x.detach().to(torch.float64).clone()
    grad = torch.zeros_like(x)
    flat, grad_flat = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + eps
        up = float(f(x))
        flat[i] = old - eps
        down = float(f(x))
        flat[i] = old
        grad_flat[i] = (up - down) / (2 * eps)
    return grad
    ### END SOLUTION


def relative_error(a, b):
    """||a - b|| / max(||a|| + ||b||, 1e-12), Euclidean norms over all entries, in float64. A float."""
    ### BEGIN SOLUTION
    a, b = a.detach().to(torch.float64), b.detach().to(torch.float64)
    return ((a - b).norm() / (a.norm() + b.norm()).clamp(min=1e-12)).item()
    ### END SOLUTION


def grad_check(f, x, analytic, eps=1e-6, tol=1e-6):
    """Compare an analytic gradient of f at x with numerical_gradient(f, x, eps).
    Returns (passed, error): error = relative_error(analytic, numerical), passed = error < tol (a bool)."""
    ### BEGIN SOLUTION
    error = relative_error(analytic, numerical_gradient(f, x, eps))
    return bool(error < tol), error
    ### END SOLUTION

# %% test id=test_gradcheck_visible points=1
x_gc0 = torch.tensor([1.0, 2.0, -3.0], dtype=torch.float64)
cube = lambda t: (t ** 3).sum()  # noqa: E731  gradient 3 x^2
num_gc0 = numerical_gradient(cube, x_gc0)
# Central differences on a cubic: the error is eps^2 = 1e-12, plus float64 round-off ~1e-9.
assert_close(num_gc0, 3 * x_gc0 ** 2, rtol=1e-7, atol=1e-7, name="numerical_gradient of sum(x^3) at [1, 2, -3]")
ok_gc0, err_gc0 = grad_check(cube, x_gc0, 3 * x_gc0 ** 2)
assert ok_gc0 and err_gc0 < 1e-8, f"grad_check with the right gradient 3x^2: expected passed with error < 1e-8, got {ok_gc0}, {err_gc0:.2e}"
# A gradient 1 % too large: relative error 0.01 / 2.01 = 5e-3, far above the criterion 1e-6.
bad_gc0, err_bad0 = grad_check(cube, x_gc0, 1.01 * 3 * x_gc0 ** 2)
assert not bad_gc0, f"grad_check with a gradient 1 % too large (3.03 x^2) must fail, got passed with error {err_bad0:.2e}"
# x0 x1 x2 is not a sum of one-variable terms: each partial derivative depends on the other entries,
# so each must be taken at x itself (and it is linear in each entry: central differences are exact).
assert_close(numerical_gradient(lambda t: t.prod(), x_gc0), torch.tensor([-6.0, -3.0, 2.0], dtype=torch.float64),
             rtol=1e-7, atol=1e-7, name="numerical_gradient of x0 x1 x2 at [1, 2, -3]")
assert abs(relative_error(torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.0])) - 1.0) < 1e-12, (
    "relative_error(a, 0) must be 1 (||a|| / ||a||)")

# %% test id=test_gradcheck_hidden points=2
### BEGIN HIDDEN TESTS
torch.manual_seed(6)
# Accuracy: central differences, in float64, even from a float32 input.
x = torch.randn(20)
calls = []
def _smooth(t):
    calls.append(t.dtype)
    assert t.shape == (20,), f"f must be called with a tensor shaped like x, got {tuple(t.shape)}"
    return (t.sin() * t.exp()).sum()
x_before = x.clone()
num = numerical_gradient(_smooth, x)
exact = (x.double().cos() + x.double().sin()) * x.double().exp()
assert num.dtype == torch.float64 and num.shape == x.shape, f"numerical_gradient must return float64 shaped like x, got {num.dtype} {tuple(num.shape)}"
assert torch.equal(x, x_before) and x.dtype == torch.float32, "numerical_gradient must not modify x"
assert len(calls) == 40, f"central differences call f exactly 2 * numel = 40 times, got {len(calls)}"
assert set(calls) == {torch.float64}, f"f must be called with float64 tensors (the check runs in float64), got {set(calls)}"
# Central differences in float64: ~1e-10 here; one-sided differences are ~1e-6 off, float32 ones ~1e-2.
assert relative_error(num, exact) < 1e-8, f"numerical_gradient of sum(sin(x) exp(x)): relative error {relative_error(num, exact):.2e} (expected < 1e-8)"
# A function that couples the entries, x^T A x: every entry's difference must be taken at x itself
# (an entry left at x_i - eps shifts all later ones by ~1e-6). Quadratic: central differences exact.
A5 = torch.randn(20, 20, dtype=torch.float64)
num5 = numerical_gradient(lambda t: t @ A5 @ t, x)
exact5 = (A5 + A5.T) @ x.double()
assert relative_error(num5, exact5) < 1e-8, (
    f"numerical_gradient of x^T A x: relative error {relative_error(num5, exact5):.2e} (expected < 1e-8)")
# A 2-D input and a step size that is not the default.
x2 = torch.randn(3, 4, dtype=torch.float64)
num2 = numerical_gradient(lambda t: (t @ t.T).trace(), x2, eps=1e-4)
assert_close(num2, 2 * x2, rtol=1e-8, atol=1e-8, name="numerical_gradient of trace(X X^T) (= 2 X) with eps=1e-4")
# relative_error: the formula, symmetry, zeros.
a, b = torch.randn(5, 3), torch.randn(5, 3)
want = ((a.double() - b.double()).norm() / (a.double().norm() + b.double().norm())).item()
assert abs(relative_error(a, b) - want) < 1e-12, f"relative_error: expected ||a-b|| / (||a|| + ||b||) = {want:.6f}, got {relative_error(a, b):.6f}"
assert abs(relative_error(b, a) - want) < 1e-12, "relative_error must be symmetric"
assert relative_error(torch.zeros(4), torch.zeros(4)) == 0.0, "relative_error of two zero gradients must be 0"
assert isinstance(relative_error(a, b), float), "relative_error must return a float"
# grad_check on the backward passes of section 2, and on gradients 0.1 % off.
x3, w3 = torch.randn(2, 5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
dy3 = torch.randn(2, 5, dtype=torch.float64)
_, cache3 = rmsnorm_forward(x3, w3, 1e-5)
dx3, dw3 = rmsnorm_backward(dy3, cache3)
f_x = lambda t: (rmsnorm_forward(t, w3, 1e-5)[0] * dy3).sum()  # noqa: E731
passed, err = grad_check(f_x, x3, dx3)
assert passed is True or passed == True, f"grad_check of the RMSNorm dx: expected passed, got {passed} with error {err:.2e}"  # noqa: E712
assert isinstance(passed, bool), f"grad_check must return (bool, float), got {type(passed).__name__}"
assert grad_check(lambda t: (rmsnorm_forward(x3, t, 1e-5)[0] * dy3).sum(), w3, dw3)[0], "grad_check of the RMSNorm dweight must pass"
failed, err_off = grad_check(f_x, x3, 1.001 * dx3)
assert not failed and 1e-4 < err_off < 1e-3, f"grad_check with dx 0.1 % too large: expected failed with error ~5e-4, got {failed}, {err_off:.2e}"
assert grad_check(f_x, x3, 1.001 * dx3, tol=1e-2)[0], "grad_check(..., tol=1e-2) must pass a gradient 0.1 % off"
z4, y4 = torch.randn(3, 6, dtype=torch.float64), torch.tensor([1, -100, 5])
_, dz4 = cross_entropy_forward_backward(z4, y4)
assert grad_check(lambda t: cross_entropy_forward_backward(t, y4)[0], z4, dz4)[0], "grad_check of the cross-entropy gradient must pass"
# The stated defaults: steps of eps = 1e-6, the criterion tol = 1e-6, the floor 1e-12.
seen = []
def _record(t):
    seen.append(t.clone())
    return t.sum()
x6 = torch.zeros(3, dtype=torch.float64)
numerical_gradient(_record, x6)
grad_check(_record, x6, torch.ones(3, dtype=torch.float64))
steps6 = sorted({round(abs(t - x6).max().item(), 15) for t in seen})
assert steps6 == [1e-6], f"numerical_gradient and grad_check must step by the default eps = 1e-6, stepped by {steps6}"
x7 = torch.tensor([1.0, 2.0, -3.0], dtype=torch.float64)
ok7, err7 = grad_check(lambda t: (t ** 3).sum(), x7, 3 * x7 ** 2 * (1 + 3e-6))
assert not ok7 and 1e-6 < err7 < 2e-6, f"a gradient 3e-6 off (error 1.5e-6) must fail the default tol 1e-6, got {ok7}, {err7:.2e}"
floor7 = relative_error(torch.tensor([1e-12], dtype=torch.float64), torch.tensor([0.5e-12], dtype=torch.float64))
assert abs(floor7 - 1 / 3) < 1e-9, f"relative_error floors the denominator at 1e-12, not above: expected 1/3, got {floor7:.4f}"
# f may build a graph (a model whose parameters require grad): only the numbers may be kept.
lin8 = torch.nn.Linear(5, 1).double()
num8 = numerical_gradient(lambda t: lin8(t).sum(), torch.randn(5, dtype=torch.float64))
assert not num8.requires_grad and num8.grad_fn is None, (
    "numerical_gradient of a linear layer's output (its parameters require grad): the result must be plain "
    f"numbers, got a tensor attached to a graph (requires_grad={num8.requires_grad}): take float() of f's value")
assert_close(num8, lin8.weight.detach()[0], rtol=1e-7, atol=1e-9, name="numerical_gradient of a linear layer (= its weights)")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 3. AdamW from scratch
#
# Adam (Kingma & Ba, 2015) keeps, for every weight, running averages of its gradient $g$ and
# of its square, and moves each weight by roughly the learning rate in the direction of the
# averaged gradient, whatever the gradient's scale:
#
# $$ m_t = \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2, \qquad
#    \hat m_t = \frac{m_t}{1-\beta_1^t}, \quad \hat v_t = \frac{v_t}{1-\beta_2^t}, $$
# $$ \theta_t = \theta_{t-1} - \eta\,\lambda\,\theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} .$$
#
# - **Bias correction.** $m$ and $v$ start at zero, so early averages are biased toward zero
#   ($m_1 = (1-\beta_1) g_1$, ten times too small for $\beta_1 = 0.9$); dividing by
#   $1 - \beta^t$ removes the bias exactly for a constant gradient. It matters most for
#   $v$ with $\beta_2 = 0.999$: without it the first steps would be far too large.
# - **Decoupled weight decay** (AdamW, Loshchilov & Hutter, 2019): the decay is applied to
#   the weights directly. Adding $\lambda\theta$ to the gradient instead (L2 regularisation,
#   what `torch.optim.Adam(weight_decay=...)` does) lets Adam divide it by $\sqrt{\hat v}$:
#   weights with large gradients would barely be decayed. PyTorch applies the decay first,
#   $\theta \leftarrow \theta(1 - \eta\lambda)$, then the Adam update; $\epsilon$ is added
#   *after* the square root.
# - **What $\lambda$ means.** In the paper the step is
#   $\theta_t = \theta_{t-1} - s_t\,(\alpha\, \hat m_t / (\sqrt{\hat v_t} + \epsilon) + \lambda\,\theta_{t-1})$:
#   the decay is scaled by the schedule multiplier $s_t$ only, not by the learning rate
#   $\alpha$, so $\lambda$ and $\alpha$ can be tuned separately. PyTorch (and this unit)
#   multiply the decay by the whole learning rate $\eta = s_t\,\alpha$, so PyTorch's
#   `weight_decay` is the paper's $\lambda$ divided by $\alpha$: the weights shrink by
#   $\eta\lambda$ per step ($3 \times 10^{-4}$ at this unit's peak rate $3 \times 10^{-3}$ with
#   $\lambda = 0.1$), and changing the learning rate changes the decay too. A $\lambda$
#   copied between the two conventions, or kept while the learning rate is retuned, is a
#   different regulariser.
# - **Parameter groups.** A `torch.optim.Optimizer` holds `param_groups`, a list of dicts,
#   each with its own `params` and hyper-parameters (`lr`, `betas`, `eps`, `weight_decay`):
#   that is how a scheduler changes `lr` (it writes `group["lr"]`) and how one model gets
#   two decay settings. Standard practice (GPT-2 onward) decays matrices and embeddings but
#   not norm gains and biases (the tensors with fewer than 2 dimensions): decaying a gain
#   toward zero fights the normalisation it scales, and biases are too few to overfit.
# - **State.** `self.state[p]` (a dict per parameter, created empty on first access) holds
#   what the optimizer remembers. PyTorch's AdamW keeps `"step"` (a 0-dim float32 tensor),
#   `"exp_avg"` ($m$) and `"exp_avg_sq"` ($v$), both shaped and typed like $p$: 8 bytes per
#   float32 weight, twice the weights themselves. For a 7B model that is 56 GB, which is why
#   optimizers get sharded (ZeRO) or quantized (8-bit Adam).
#
# Write `MyAdamW` as a subclass of `torch.optim.Optimizer`: pass the defaults to
# `super().__init__(params, defaults)`, and in `step` (decorated with `@torch.no_grad()`),
# read each group's hyper-parameters afresh, skip parameters whose `.grad` is None (they get
# no state), and update in place.

# %% answer id=adamw
class MyAdamW(torch.optim.Optimizer):
    """AdamW, update for update as torch.optim.AdamW (amsgrad=False, maximize=False):
    for each parameter p with a gradient, in each param group (lr, betas, eps, weight_decay):
        step += 1; p *= 1 - lr * weight_decay;
        exp_avg = beta1 * exp_avg + (1 - beta1) * g; exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g;
        p -= lr / (1 - beta1**step) * exp_avg / (sqrt(exp_avg_sq / (1 - beta2**step)) + eps).
    self.state[p]: "step" (a 0-dim float32 tensor), "exp_avg", "exp_avg_sq" (zeros like p at first).
    Parameters whose .grad is None are skipped. step(closure=None) returns closure() if given, else None."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        ### BEGIN SOLUTION
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        ### END SOLUTION

    @torch.no_grad()
    def step(self, closure=None):
        ### BEGIN SOLUTION
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"].item()
                p.mul_(1 - lr * decay)
                state["exp_avg"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (state["exp_avg_sq"].sqrt() / math.sqrt(1 - beta2 ** t)).add_(eps)
                p.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - beta1 ** t))
        return loss
        ### END SOLUTION


def decay_groups(model, weight_decay):
    """Two parameter groups over the parameters of `model` that require gradients, in
    model.parameters() order: [{"params": [tensors with >= 2 dims], "weight_decay": weight_decay},
    {"params": [tensors with < 2 dims: norm gains, biases], "weight_decay": 0.0}]."""
    ### BEGIN SOLUTION
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    ### END SOLUTION


def optimizer_state_bytes(optimizer):
    """Bytes (numel * element_size) of every tensor in optimizer.state. An int."""
    ### BEGIN SOLUTION
    return sum(t.numel() * t.element_size() for state in optimizer.state.values()
               for t in state.values() if torch.is_tensor(t))
    ### END SOLUTION


def adamw_state_bytes(params):
    """The bytes torch.optim.AdamW's state will hold once every parameter in `params` (an
    iterable) that requires gradients has had a step: two tensors shaped and typed like the
    parameter, plus a 4-byte float32 step counter per parameter tensor. An int."""
    ### BEGIN SOLUTION
    return sum(2 * p.numel() * p.element_size() + 4 for p in params if p.requires_grad)
    ### END SOLUTION

# %% test id=test_adamw_visible points=1
torch.manual_seed(7)
w_ad0 = torch.randn(3, 2, requires_grad=True)
w_ad1 = w_ad0.detach().clone().requires_grad_(True)
mine_ad0 = MyAdamW([w_ad0], lr=0.1, betas=(0.9, 0.99), weight_decay=0.1)
ref_ad0 = torch.optim.AdamW([w_ad1], lr=0.1, betas=(0.9, 0.99), weight_decay=0.1)
for _ in range(3):
    for w, opt in ((w_ad0, mine_ad0), (w_ad1, ref_ad0)):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
# Same float32 formula, possibly in another order: 1e-6.
assert_close(w_ad0, w_ad1, rtol=1e-5, atol=1e-6, name="weights after 3 steps of MyAdamW vs torch.optim.AdamW")
assert_close(mine_ad0.state[w_ad0]["exp_avg_sq"], ref_ad0.state[w_ad1]["exp_avg_sq"], rtol=1e-5, atol=1e-8,
             name="state['exp_avg_sq'] after 3 steps")
lin_ad0 = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
groups_ad0 = decay_groups(lin_ad0, 0.1)
shapes_ad0 = [[tuple(p.shape) for p in g["params"]] for g in groups_ad0]
assert shapes_ad0 == [[(3, 4)], [(3,), (3,), (3,)]] and [g["weight_decay"] for g in groups_ad0] == [0.1, 0.0], (
    f"decay_groups(Linear(4, 3) + LayerNorm(3), 0.1): expected the (3, 4) weight decayed at 0.1 and the bias, "
    f"gain and LayerNorm bias at 0.0, got shapes {shapes_ad0}, decays {[g['weight_decay'] for g in groups_ad0]}")
assert optimizer_state_bytes(ref_ad0) == 2 * 6 * 4 + 4, (
    f"optimizer_state_bytes after AdamW steps on one (3, 2) float32 tensor: expected 2 * 6 * 4 + 4 = 52, "
    f"got {optimizer_state_bytes(ref_ad0)}")
assert adamw_state_bytes([w_ad1]) == 52, f"adamw_state_bytes([one (3, 2) float32 tensor]): expected 52, got {adamw_state_bytes([w_ad1])}"

# %% test id=test_adamw_hidden points=4
### BEGIN HIDDEN TESTS
def _twin_nets(dtype, seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Embedding(10, 6), nn.Linear(6, 5), nn.LayerNorm(5), nn.Linear(5, 4, bias=False)).to(device, dtype)
    return net, copy.deepcopy(net)


def _run(net, opt, steps, seed, lr_at=None, skip=None):
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        if lr_at is not None:
            for i, g in enumerate(opt.param_groups):
                g["lr"] = lr_at(step) * (1.0 if i == 0 else 0.5)
        opt.zero_grad(set_to_none=True)
        ids = torch.randint(0, 10, (8,), generator=gen).to(device)
        out = net[3](net[2](net[1](net[0](ids))))
        out.pow(2).mean().backward()
        if skip is not None and step % 3 == 1:  # this parameter gets no gradient on some steps
            skip.grad = None
        opt.step()


# Step for step against torch.optim.AdamW, float64 (so that 1e-10 separates a right formula
# from a wrong one), over many steps, with groups, a changing lr, a large eps and skipped steps.
for betas, eps, decay, steps in [((0.9, 0.95), 1e-8, 0.1, 100), ((0.8, 0.99), 1e-3, 0.3, 60), ((0.9, 0.999), 1e-8, 0.0, 30)]:
    for lr_at in (None, lambda s: 1e-2 * (1 + math.cos(s / 7))):
        net_a, net_b = _twin_nets(torch.float64, seed=8)
        opt_a = MyAdamW(decay_groups(net_a, decay), lr=3e-2, betas=betas, eps=eps)
        opt_b = torch.optim.AdamW(decay_groups(net_b, decay), lr=3e-2, betas=betas, eps=eps)
        _run(net_a, opt_a, steps, 9, lr_at, skip=net_a[1].bias)
        _run(net_b, opt_b, steps, 9, lr_at, skip=net_b[1].bias)
        what = f"betas={betas}, eps={eps}, weight_decay={decay}, {steps} steps, lr {'scheduled' if lr_at else 'constant'}"
        for (name, p), q in zip(net_a.named_parameters(), net_b.parameters(), strict=True):
            assert_close(p, q, rtol=1e-10, atol=1e-12, name=f"{name} after MyAdamW vs torch.optim.AdamW ({what})")
            sa, sb = opt_a.state[p], opt_b.state[q]
            assert set(sa) >= {"step", "exp_avg", "exp_avg_sq"}, f"state of {name}: expected step, exp_avg, exp_avg_sq, got {sorted(sa)}"
            assert torch.is_tensor(sa["step"]) and sa["step"].dtype == torch.float32 and sa["step"].ndim == 0, (
                f"state['step'] must be a 0-dim float32 tensor (as torch keeps it), got {sa['step']!r}")
            assert sa["step"].item() == sb["step"].item(), (
                f"state['step'] of {name}: torch counts {sb['step'].item():.0f} steps with a gradient, got {sa['step'].item():.0f}")
            for key in ("exp_avg", "exp_avg_sq"):
                assert sa[key].dtype == p.dtype, f"state['{key}'] must have the parameter's dtype {p.dtype}, got {sa[key].dtype}"
                assert_close(sa[key], sb[key], rtol=1e-10, atol=1e-14, name=f"state['{key}'] of {name} ({what})")
        assert optimizer_state_bytes(opt_a) == optimizer_state_bytes(opt_b), (
            f"optimizer_state_bytes(MyAdamW) {optimizer_state_bytes(opt_a):,} != optimizer_state_bytes(torch AdamW) "
            f"{optimizer_state_bytes(opt_b):,}")
# float32, a transformers model, 20 steps: round-off only.
cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                  num_key_value_heads=2)
torch.manual_seed(10)
m_a = LlamaForCausalLM(cfg).to(device)
m_b = copy.deepcopy(m_a)
o_a = MyAdamW(decay_groups(m_a, 0.1), lr=1e-2, betas=(0.9, 0.95))
o_b = torch.optim.AdamW(decay_groups(m_b, 0.1), lr=1e-2, betas=(0.9, 0.95))
ids = torch.randint(0, 64, (4, 12), device=device)
for _ in range(20):
    for m, o in ((m_a, o_a), (m_b, o_b)):
        o.zero_grad()
        m(input_ids=ids, labels=ids).loss.backward()
        o.step()
for (name, p), q in zip(m_a.named_parameters(), m_b.parameters(), strict=True):
    assert_close(p, q, rtol=1e-4, atol=1e-5, name=f"{name} after 20 float32 steps of MyAdamW vs torch.optim.AdamW")
# Defaults, closure, a torch Optimizer's machinery (state_dict round trip).
w = torch.randn(3, requires_grad=True)
opt = MyAdamW([w])
assert isinstance(opt, torch.optim.Optimizer), "MyAdamW must subclass torch.optim.Optimizer"
d = opt.defaults
assert (d["lr"], tuple(d["betas"]), d["eps"], d["weight_decay"]) == (1e-3, (0.9, 0.999), 1e-8, 0.01), (
    f"MyAdamW defaults: expected lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01 (torch's), got {d}")
def _closure():
    opt.zero_grad()
    loss = (w ** 2).sum()
    loss.backward()
    return loss
got = opt.step(_closure)
assert torch.is_tensor(got) and opt.state[w]["step"].item() == 1, "step(closure) must call the closure, step, and return its loss"
assert opt.step() is None, "step() without a closure returns None"
clone = MyAdamW([torch.randn(3, requires_grad=True)])
clone.load_state_dict(opt.state_dict())
assert clone.state[clone.param_groups[0]["params"][0]]["step"].item() == 2, "MyAdamW state must survive state_dict / load_state_dict"
# decay_groups: order, frozen parameters, tied weights; adamw_state_bytes in other dtypes.
lm = CausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                          num_key_value_heads=1, tie_word_embeddings=True, attention_bias=True))
lm.model.layers[1].mlp.up_proj.weight.requires_grad_(False)
groups = decay_groups(lm, 0.05)
ids_of = lambda ps: [id(p) for p in ps]  # noqa: E731
want_decay = [p for p in lm.parameters() if p.requires_grad and p.ndim >= 2]
want_rest = [p for p in lm.parameters() if p.requires_grad and p.ndim < 2]
assert len(groups) == 2 and ids_of(groups[0]["params"]) == ids_of(want_decay) and ids_of(groups[1]["params"]) == ids_of(want_rest), (
    f"decay_groups: expected {len(want_decay)} matrices then {len(want_rest)} gains and biases, in model.parameters() "
    f"order, frozen ones left out; got groups of {[len(g['params']) for g in groups]}")
assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0, "decay_groups: wrong weight_decay values"
lm_bf16 = copy.deepcopy(lm).to(torch.bfloat16)
n_train = sum(p.numel() for p in lm_bf16.parameters() if p.requires_grad)
n_tensors = sum(1 for p in lm_bf16.parameters() if p.requires_grad)
assert adamw_state_bytes(lm_bf16.parameters()) == 4 * n_train + 4 * n_tensors, (
    f"adamw_state_bytes of a bfloat16 model: expected 2 * 2 bytes per trainable weight + 4 per tensor = "
    f"{4 * n_train + 4 * n_tensors:,}, got {adamw_state_bytes(lm_bf16.parameters()):,}")
ref_opt = torch.optim.AdamW([p for p in lm_bf16.parameters() if p.requires_grad])
lm_bf16(torch.randint(0, 50, (2, 5))).float().pow(2).mean().backward()
ref_opt.step()
assert optimizer_state_bytes(ref_opt) == adamw_state_bytes(lm_bf16.parameters()), (
    f"torch AdamW after one step on the bfloat16 model holds {optimizer_state_bytes(ref_opt):,} bytes, "
    f"adamw_state_bytes predicted {adamw_state_bytes(lm_bf16.parameters()):,}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 4. The learning-rate schedule and gradient clipping
#
# **Why warm up.** For gradient descent on a quadratic with curvature $\lambda_\text{max}$
# (the largest eigenvalue of the Hessian), a step size above $2/\lambda_\text{max}$ makes the
# iterates grow instead of shrink (unit 01). A freshly initialised transformer sits in a
# region of high curvature, and Adam's second-moment estimates are still noisy, so the
# stable learning rate is small at first and grows as training flattens the landscape.
# Starting small and ramping up linearly over the first few hundred to few thousand steps
# avoids the early loss spikes a large constant rate would cause.
#
# **Why decay.** Late in training a large rate keeps the weights bouncing around a minimum at
# a noise level set by the step size; lowering it lets them settle. The cosine schedule
# decays smoothly from the peak to a floor (often 10 % of the peak) at the last step:
#
# $$ f(s) = \begin{cases} s / W & s < W \quad\text{(warm-up)}\\[3pt]
#    r + (1 - r)\,\tfrac12\big(1 + \cos(\pi\, \tfrac{s - W}{S - W})\big) & W \le s \le S\\[3pt]
#    r & s > S \end{cases}$$
#
# for warm-up steps $W$, total steps $S$ and floor ratio $r$; the learning rate at step $s$ is
# $\eta_\text{peak} f(s)$. This is exactly `transformers`' `get_cosine_schedule_with_warmup`
# ($r = 0$) and `get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate=r)` up to step $S$,
# including two of their conventions: a denominator of $\max(1, W)$ and of $\max(1, S - W)$
# (so $W = 0$ and $W = S$ work), and $f(0) = 0$ when $W > 0$: the very first update has
# learning rate zero. (Past $S$ `transformers` would let the cosine climb again; we hold the
# floor.) PyTorch's `torch.optim.lr_scheduler.LambdaLR(optimizer, f)` sets every group's
# `lr` to its initial `lr` times $f(s)$: at construction for $s = 0$, then at each
# `scheduler.step()`, which comes *after* `optimizer.step()` in the loop.

# %% answer id=schedule
def lr_factor(step, warmup_steps, total_steps, min_lr_ratio=0.0):
    """f(step) of the formula above: linear warm-up from 0, cosine decay to min_lr_ratio at
    total_steps, min_lr_ratio after it. Equal to transformers' cosine schedules for 0 <= step <= total_steps."""
    ### BEGIN SOLUTION
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if step > total_steps:
        return min_lr_ratio
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    ### END SOLUTION


def warmup_cosine(optimizer, warmup_steps, total_steps, min_lr_ratio=0.0):
    """A torch.optim.lr_scheduler.LambdaLR that sets each group's lr to its initial lr * lr_factor(step, ...)."""
    ### BEGIN SOLUTION
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total_steps, min_lr_ratio))
    ### END SOLUTION

# %% test id=test_schedule_visible points=1
sched_probe = [lr_factor(s, 10, 110, 0.1) for s in (0, 5, 10, 60, 110, 200)]
want_probe = [0.0, 0.5, 1.0, 0.1 + 0.9 * 0.5, 0.1, 0.1]
assert all(abs(a - b) < 1e-12 for a, b in zip(sched_probe, want_probe)), (
    f"lr_factor at steps 0, 5, 10, 60, 110, 200 (warm-up 10, total 110, floor 0.1): expected {want_probe}, got {sched_probe}")
opt_s0 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5)
sch_s0 = warmup_cosine(opt_s0, 10, 110, 0.1)
for _ in range(5):
    opt_s0.step()
    sch_s0.step()
assert abs(opt_s0.param_groups[0]["lr"] - 0.25) < 1e-12, (
    f"after 5 scheduler steps (warm-up 10, peak 0.5) the lr should be 0.25, got {opt_s0.param_groups[0]['lr']}")

# %% test id=test_schedule_hidden points=2
### BEGIN HIDDEN TESTS
for warm, total, floor, peak in [(10, 100, 0.1, 3e-3), (0, 50, 0.0, 1.0), (50, 50, 0.1, 0.2), (1, 7, 0.5, 2.0),
                                 (100, 1000, 0.0, 6e-4), (3, 4, 0.25, 1.0), (20, 10, 0.1, 1.0)]:
    pa, pb = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    oa, ob = torch.optim.SGD([pa], lr=peak), torch.optim.SGD([pb], lr=peak)
    sa = warmup_cosine(oa, warm, total, floor)
    sb = (get_cosine_with_min_lr_schedule_with_warmup(ob, warm, total, min_lr_rate=floor) if floor
          else get_cosine_schedule_with_warmup(ob, warm, total))
    assert isinstance(sa, torch.optim.lr_scheduler.LRScheduler), "warmup_cosine must return a torch LR scheduler"
    for step in range(total + 1):
        got, want = oa.param_groups[0]["lr"], ob.param_groups[0]["lr"]
        assert abs(got - want) <= 1e-12 * peak, (
            f"lr at step {step} (warm-up {warm}, total {total}, floor {floor}, peak {peak}): transformers gives {want}, got {got}")
        assert abs(lr_factor(step, warm, total, floor) - want / peak) < 1e-12, f"lr_factor({step}, {warm}, {total}, {floor})"
        oa.step(), ob.step(), sa.step(), sb.step()
    for step in (total + 1, total + 7, 3 * total + 5):
        # The floor up to float64 round-off (a cos**2 form ends at cos(pi/2)**2 = 3.7e-33, not 0), as in the visible test.
        assert abs(lr_factor(step, warm, total, floor) - floor) < 1e-12 or warm > total, (
            f"lr_factor after the last step ({step} > {total}) must stay at the floor {floor}, got {lr_factor(step, warm, total, floor)}")
# Two groups with their own initial lr, and the state a checkpoint keeps.
ga, gb = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
opt = torch.optim.SGD([{"params": [ga], "lr": 1.0}, {"params": [gb], "lr": 0.1}], lr=1.0)
sch = warmup_cosine(opt, 4, 20, 0.1)
for _ in range(6):
    opt.step()
    sch.step()
f6 = lr_factor(6, 4, 20, 0.1)
assert abs(opt.param_groups[0]["lr"] - f6) < 1e-12 and abs(opt.param_groups[1]["lr"] - 0.1 * f6) < 1e-12, (
    f"each group's lr must be its own initial lr times lr_factor: expected {f6}, {0.1 * f6}, "
    f"got {[g['lr'] for g in opt.param_groups]}")
assert sch.state_dict()["last_epoch"] == 6, "the scheduler's state must count its steps (last_epoch)"
# The stated default min_lr_ratio is 0: plain cosine to zero at total_steps.
assert abs(lr_factor(10, 0, 10)) < 1e-12 and abs(lr_factor(12, 2, 10)) < 1e-12, (
    f"with the default min_lr_ratio=0.0 the factor ends at 0, got {lr_factor(10, 0, 10)} and {lr_factor(12, 2, 10)}")
opt_d = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
sch_d = warmup_cosine(opt_d, 0, 4)
for _ in range(4):
    opt_d.step()
    sch_d.step()
assert abs(opt_d.param_groups[0]["lr"]) < 1e-12, (
    f"warmup_cosine's default min_lr_ratio=0.0: lr 0 after total_steps, got {opt_d.param_groups[0]['lr']}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# **Global-norm clipping.** One bad batch can produce a gradient a hundred times larger than
# usual; with a learning rate tuned for ordinary gradients that step throws the model far
# off (the classic loss spike). Clipping rescales *all* gradients together when their
# global norm (the norm of the concatenation of every gradient) exceeds a threshold $c$:
#
# $$ \lVert g \rVert = \Big(\sum_{p} \lVert g_p \rVert^2\Big)^{1/2}, \qquad
#    g_p \leftarrow g_p \cdot \min\Big(1, \frac{c}{\lVert g \rVert + 10^{-6}}\Big) ,$$
#
# which keeps the update's direction and bounds its size (clipping each tensor on its own
# would change the direction). `torch.nn.utils.clip_grad_norm_` does this, in place, and
# returns the norm *before* clipping: log it, since a growing gradient norm is often the
# first sign of trouble. Parameters without a gradient are skipped; `parameters` may be a
# generator (`model.parameters()`), which can be iterated only once.

# %% answer id=clip
def clip_grad_norm(parameters, max_norm):
    """Scale the .grad of every parameter in `parameters` (an iterable, possibly a generator) in place
    by min(1, max_norm / (total_norm + 1e-6)), total_norm being the Euclidean norm of all gradients
    together (parameters whose .grad is None are skipped). Returns total_norm before clipping, a
    0-dim tensor (tensor(0.) if no parameter has a gradient)."""
    ### BEGIN SOLUTION
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.to(g.dtype))
    return total
    ### END SOLUTION

# %% test id=test_clip_visible points=1
p_cl0, q_cl0 = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))
p_cl0.grad, q_cl0.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
norm_cl0 = clip_grad_norm([p_cl0, q_cl0], 1.0)
assert abs(float(norm_cl0) - 5.0) < 1e-6, f"the global norm of gradients [3, 0] and [4] is 5, got {float(norm_cl0)}"
# Scaled by 1 / (5 + 1e-6): float32, 1e-6.
assert_close(torch.cat([p_cl0.grad, q_cl0.grad]), torch.tensor([0.6, 0.0, 0.8]), rtol=1e-5, atol=1e-6,
             name="gradients after clipping to norm 1")

# %% test id=test_clip_hidden points=2
### BEGIN HIDDEN TESTS
torch.manual_seed(11)
for n_params, scale, max_norm, dtype in [(4, 3.0, 1.0, torch.float32), (3, 0.01, 1.0, torch.float32),
                                         (5, 1.0, 0.5, torch.float64), (1, 100.0, 2.0, torch.float32)]:
    shapes = [(3, 4), (7,), (2, 2, 2), (5, 1), (1,)][:n_params]
    ps = [nn.Parameter(torch.randn(s, dtype=dtype, device=device)) for s in shapes]
    qs = [nn.Parameter(p.detach().clone()) for p in ps]
    for i, (p, q) in enumerate(zip(ps, qs, strict=True)):
        if i == 1:
            continue  # one parameter without a gradient
        p.grad = scale * torch.randn_like(p)
        q.grad = p.grad.clone()
    grad_objects = [p.grad for p in ps]
    got = clip_grad_norm((p for p in ps), max_norm)  # a generator, as model.parameters()
    want = torch.nn.utils.clip_grad_norm_(qs, max_norm)
    what = f"{n_params} tensors, gradients ~{scale}, max_norm {max_norm}, {dtype}"
    assert torch.is_tensor(got) and got.ndim == 0, f"clip_grad_norm must return a 0-dim tensor, got {got!r}"
    # float32 sums of squares: 1e-6 relative.
    assert_close(got, want, rtol=1e-5, atol=1e-7, name=f"returned norm vs clip_grad_norm_ ({what})")
    for p, q, g in zip(ps, qs, grad_objects, strict=True):
        if q.grad is None:
            assert p.grad is None, "a parameter without a gradient must keep .grad = None"
            continue
        assert p.grad is g, "clip_grad_norm must scale the gradients in place (the same .grad tensors)"
        assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, name=f"clipped gradients vs clip_grad_norm_ ({what})")
got = clip_grad_norm([nn.Parameter(torch.ones(2))], 1.0)
assert float(got) == 0.0, f"with no gradient at all the returned norm must be 0, got {got}"
# Below the threshold nothing changes (the factor is clamped at 1, never above).
p = nn.Parameter(torch.zeros(3))
p.grad = torch.tensor([0.1, -0.2, 0.05])
before = p.grad.clone()
clip_grad_norm([p], 10.0)
assert_close(p.grad, before, rtol=0, atol=1e-9, name="gradients with a norm far below max_norm (must be unchanged)")
# Tiny gradients (norm 5e-8, below the 1e-6 in the denominator) against torch: the factor is
# max_norm / (5e-8 + 1e-6) = 0.0095, not 0.2 (no epsilon) or negative (the epsilon subtracted).
p, q = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
p.grad, q.grad = torch.tensor([3e-8, 4e-8]), torch.tensor([3e-8, 4e-8])
clip_grad_norm([p], 1e-8)
torch.nn.utils.clip_grad_norm_([q], 1e-8)
# float32 arithmetic on the same numbers, maybe in another order: 1e-5 relative.
assert_close(p.grad, q.grad, rtol=1e-5, atol=0, name="gradients of norm 5e-8 clipped to max_norm=1e-8 (vs torch)")
### END HIDDEN TESTS
assert True

# %% [markdown]
# The schedule of the pre-training run of section 6 (250 steps, 20 of warm-up, floor 10 %):

# %%
STEPS, WARMUP, PEAK_LR, MIN_LR_RATIO = 250, 20, 3e-3, 0.1
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(range(STEPS + 1), [PEAK_LR * lr_factor(s, WARMUP, STEPS, MIN_LR_RATIO) for s in range(STEPS + 1)])
ax.axhline(PEAK_LR * MIN_LR_RATIO, color="gray", linestyle=":", label="floor (10 % of the peak)")
ax.set_xlabel("step")
ax.set_ylabel("learning rate")
ax.set_title("linear warm-up, cosine decay to a floor")
ax.legend()
plt.show()

# %% [markdown]
# ## 5. Gradient accumulation
#
# The batch size that trains well (often millions of tokens) rarely fits in memory at once.
# Gradient accumulation splits the batch into micro-batches, runs forward and backward on
# each in turn, lets `backward()` *add* into `.grad`, and steps once. The result must be the
# gradient of the large batch's loss: the mean over **every counted token of every
# micro-batch**,
#
# $$ L = \frac{\sum_k S_k}{\sum_k n_k}, \qquad S_k = \sum_{\text{counted tokens of micro-batch } k} -\log p(\text{token}), $$
#
# with $n_k$ the number of counted tokens (labels other than -100) in micro-batch $k$. The
# classic bug averages the micro-batches' *mean* losses, $\tfrac1K \sum_k S_k / n_k$, which is
# the same only when every $n_k$ is equal. With padding, or documents packed by length, they
# are not: a micro-batch of short sequences then weighs as much as one of long sequences,
# and each of its tokens counts more. (`transformers`' Trainer had exactly this bug until
# late 2024; its fix passes the total count, `num_items_in_batch`, to the loss.) So count the
# tokens of all micro-batches first, then backpropagate each micro-batch's *sum* divided by
# that total.
#
# A micro-batch here is a pair `(input_ids, labels)` of `(B_k, T_k)` tensors, `labels` being
# the input ids with -100 where nothing should be predicted (padding), as in `transformers`:
# the logits at position $t$ are scored against `labels[:, t + 1]`, so shift inside. The
# model is anything that maps ids to logits, as your `CausalLM` does; the locked cell below
# wraps a `transformers` model that way for the tests.

# %% setup id=logits_wrapper
class LogitsOf(nn.Module):
    """A transformers causal LM seen as ids (B, T) -> logits (B, T, V), like CausalLM."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids):
        return self.lm(input_ids=input_ids).logits


def tiny_llama(seed=0, dtype=torch.float32, vocab_size=None, hidden_size=32, layers=1):
    """A small randomly initialised LlamaForCausalLM wrapped by LogitsOf, for fast tests."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size or len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    return LogitsOf(LlamaForCausalLM(cfg)).to(device, dtype)


def padded(rows, pad_id):
    """(input_ids, labels) of right-padded rows (lists of ids): labels are -100 on the padding."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        labels[i, : len(r)] = torch.tensor(r)
    return ids.to(device), labels.to(device)

# %% answer id=accumulate
def accumulate_gradients(model, micro_batches):
    """Backpropagate the loss of the whole batch, one micro-batch at a time.
    micro_batches: a list of (input_ids, labels), each (B_k, T_k) int64; model(input_ids) -> logits (B_k, T_k, V).
    The loss is the mean cross-entropy of logits[:, t] against labels[:, t + 1] over every position
    whose label is not -100, in ALL micro-batches together. Calls model once per micro-batch (never on the
    whole batch) and backward once per micro-batch, adding into the existing .grad (the caller zeroes it).
    Returns the loss of the whole batch as a float."""
    ### BEGIN SOLUTION
    counted = sum(int((labels[:, 1:] != -100).sum()) for _, labels in micro_batches)
    total = 0.0
    for input_ids, labels in micro_batches:
        logits = model(input_ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=-100, reduction="sum") / counted
        loss.backward()
        total += loss.item()
    return total
    ### END SOLUTION

# %% test id=test_accumulate_visible points=1
texts_acc0 = ["def f(x):\n    return x", "Return the sum of a and b.", "A queue.", "Open the file and read it."]
rows_acc0 = [tokenizer(t)["input_ids"] for t in texts_acc0]
model_acc0 = tiny_llama(seed=12)
# The large batch: all four rows at once; transformers' own loss shifts and ignores -100.
ids_all0, labels_all0 = padded(rows_acc0, tokenizer.pad_token_id)
want_loss_acc0 = model_acc0.lm(input_ids=ids_all0, labels=labels_all0).loss
want_loss_acc0.backward()
want_grads_acc0 = [p.grad.clone() for p in model_acc0.parameters()]
model_acc0.zero_grad()
# Two micro-batches with very different numbers of tokens (1 short row, then 3 rows).
micro_acc0 = [padded(rows_acc0[2:3], tokenizer.pad_token_id), padded(rows_acc0[:2] + rows_acc0[3:], tokenizer.pad_token_id)]
got_loss_acc0 = accumulate_gradients(model_acc0, micro_acc0)
assert isinstance(got_loss_acc0, float), f"accumulate_gradients must return a float, got {type(got_loss_acc0).__name__}"
# float32 sums in another order: 1e-5.
assert abs(got_loss_acc0 - want_loss_acc0.item()) < 1e-5, (
    f"loss of the whole batch: transformers gives {want_loss_acc0.item():.6f} on the 4 rows at once, got {got_loss_acc0:.6f}")
for (name, p), want in zip(model_acc0.named_parameters(), want_grads_acc0, strict=True):
    assert_close(p.grad, want, rtol=1e-4, atol=1e-6, name=f"accumulated gradient of {name} vs the large batch's")
assert all(p.grad is not None for p in model_acc0.parameters()), "every parameter must have a gradient"

# %% test id=test_accumulate_hidden points=3
### BEGIN HIDDEN TESTS
torch.manual_seed(13)
docs = [tokenizer(t)["input_ids"] for t in load_corpus("validation")[:12]]
docs = [d[: 5 + 7 * i] for i, d in enumerate(docs)]  # lengths 5 .. 82: very different token counts
model64 = tiny_llama(seed=14, dtype=torch.float64, hidden_size=16)
for split in ([12], [1, 11], [6, 6], [2, 3, 4, 3], [11, 1], [1] * 12):
    micro, start = [], 0
    for n in split:
        micro.append(padded(docs[start:start + n], tokenizer.pad_token_id))
        start += n
    ids_all, labels_all = padded(docs, tokenizer.pad_token_id)
    model64.zero_grad()
    # The large batch in float64 (transformers' own loss would round to float32).
    logits_all = model64(ids_all)
    want = F.cross_entropy(logits_all[:, :-1].flatten(0, 1), labels_all[:, 1:].flatten(), ignore_index=-100)
    want.backward()
    want_grads = [p.grad.clone() for p in model64.parameters()]
    model64.zero_grad()
    shapes = []
    hook = model64.register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    try:
        got = accumulate_gradients(model64, micro)
    finally:
        hook.remove()
    assert shapes == [tuple(ids.shape) for ids, _ in micro], (
        f"accumulate_gradients must call the model once per micro-batch, on that micro-batch: expected inputs "
        f"{[tuple(ids.shape) for ids, _ in micro]}, got {shapes}")
    # float64: the same sums in another order, ~1e-15.
    assert abs(got - want.item()) < 1e-10, f"loss with micro-batches of {split} rows: the large batch gives {want.item():.12f}, got {got:.12f}"
    for (name, p), g in zip(model64.named_parameters(), want_grads, strict=True):
        assert_close(p.grad, g, rtol=1e-9, atol=1e-12, name=f"gradient of {name} with micro-batches of {split} rows vs the large batch")
# Gradients are added to what .grad already holds.
model64.zero_grad()
for p in model64.parameters():
    p.grad = torch.ones_like(p)
micro = [padded(docs[:3], tokenizer.pad_token_id), padded(docs[3:5], tokenizer.pad_token_id)]
accumulate_gradients(model64, micro)
summed = [p.grad.clone() for p in model64.parameters()]
model64.zero_grad()
accumulate_gradients(model64, micro)
for (name, p), s in zip(model64.named_parameters(), summed, strict=True):
    assert_close(s, p.grad + 1.0, rtol=1e-9, atol=1e-12, name=f"{name}: accumulate_gradients must add into the existing .grad")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 6. The training loop, checkpoints, and a real pre-training run
#
# One step of pre-training, in the order that matters:
#
# 1. draw a batch: here `get_batch` (below) takes `batch_size` windows of `seq_len + 1`
#    consecutive tokens at random offsets of the token stream, drawn from **torch's global
#    random generator**;
# 2. `logits = model(batch[:, :-1])` and the mean cross-entropy against `batch[:, 1:]`
#    (the next token of every position: the inputs and the targets are the same window
#    shifted by one);
# 3. zero the gradients, then `loss.backward()`;
# 4. clip the global gradient norm (your `clip_grad_norm`) and keep the norm for the log;
# 5. `optimizer.step()`, then `scheduler.step()`;
# 6. log the step: its loss, the gradient norm, and the learning rate this step used.
#
# **Checkpoints.** Long runs are interrupted (preemption, crashes, a node dying), and the
# restart must be *the same run*: otherwise an interrupted ablation no longer compares with an
# uninterrupted one, and a bug that only appears after a restart is a nightmare to find. An
# exact resume needs everything the next steps depend on:
#
# - the model's weights (`model.state_dict()`);
# - the optimizer's state: AdamW's moments and step counters (`optimizer.state_dict()`);
#   restarting them from zero re-does the bias-corrected first steps;
# - the scheduler's position (`scheduler.state_dict()`), or the warm-up starts again;
# - **the random state** that chooses the data (`torch.get_rng_state()`): the one people
#   forget, and the reason a resumed run silently sees different batches;
# - the log so far, so that the curves continue.
#
# Save them in one file with `torch.save` (write a temporary file and rename it in real
# life, so that a crash during the save does not destroy the last good checkpoint), and
# restore each with its `load_state_dict` (and `torch.set_rng_state`). The test interrupts a
# run at step $k$, rebuilds fresh objects in a scrambled random state, resumes from your
# checkpoint, and requires the **bit-identical** weights, optimizer state, random state and
# log of an uninterrupted run.

# %% setup id=loop_helpers
def get_batch(tokens, batch_size, seq_len):
    """batch_size windows of seq_len + 1 consecutive tokens at random offsets drawn from torch's
    global random generator: an int64 tensor (batch_size, seq_len + 1) on the tokens' device."""
    starts = torch.randint(0, len(tokens) - seq_len, (batch_size,))
    return torch.stack([tokens[s : s + seq_len + 1] for s in starts.tolist()])


@torch.no_grad()
def evaluate(model, tokens, seq_len=128, max_windows=64):
    """Mean next-token cross-entropy (nats) of model on the first max_windows non-overlapping windows of tokens."""
    n = min(max_windows, (len(tokens) - 1) // seq_len)
    inputs = tokens[: n * seq_len].view(n, seq_len)
    targets = tokens[1 : n * seq_len + 1].view(n, seq_len)
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, n, 16):
        logits = model(inputs[i : i + 16])
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets[i : i + 16].reshape(-1),
                                 reduction="sum").item()
    model.train(was_training)
    return total / (n * seq_len)

# %% answer id=loop
def train(model, optimizer, scheduler, tokens, steps, batch_size, seq_len, max_norm=1.0, log=None):
    """Run `steps` training steps and return the log (a list, one dict per step, appended to `log` if given).
    Each step: batch = get_batch(tokens, batch_size, seq_len) (the only use of randomness);
    loss = F.cross_entropy of model(batch[:, :-1]) against batch[:, 1:] (mean over all positions);
    zero the gradients (set_to_none=True); loss.backward(); grad_norm = clip_grad_norm(model.parameters(), max_norm);
    optimizer.step(); scheduler.step(); then append {"step": len(log), "loss": float, "grad_norm": float,
    "lr": float (optimizer.param_groups[0]["lr"] as used by this step's update)}."""
    ### BEGIN SOLUTION
    log = [] if log is None else log
    model.train()
    for _ in range(steps):
        batch = get_batch(tokens, batch_size, seq_len)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_grad_norm(model.parameters(), max_norm)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        log.append({"step": len(log), "loss": loss.item(), "grad_norm": float(grad_norm), "lr": lr})
    return log
    ### END SOLUTION


def save_checkpoint(path, model, optimizer, scheduler, log):
    """Save, in the one file `path` (torch.save), everything an exact resume needs: the state_dicts of
    model, optimizer and scheduler, the log, and torch's random state (torch.get_rng_state())."""
    ### BEGIN SOLUTION
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "log": log, "rng": torch.get_rng_state()}, path)
    ### END SOLUTION


def load_checkpoint(path, model, optimizer, scheduler):
    """Restore model, optimizer and scheduler (built fresh, like the originals) and torch's random
    state from the file written by save_checkpoint. Returns the log, to pass on to train."""
    ### BEGIN SOLUTION
    checkpoint = torch.load(path)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    torch.set_rng_state(checkpoint["rng"])
    return checkpoint["log"]
    ### END SOLUTION

# %% test id=test_loop_visible points=1
def fresh_run(seed, lr=1e-2, warmup=2, total=12):
    """A small model, torch's AdamW and transformers' schedule: the loop's tests do not depend on sections 1-4."""
    model = tiny_llama(seed=seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    return model, opt, get_cosine_with_min_lr_schedule_with_warmup(opt, warmup, total, min_lr_rate=0.1)


torch.manual_seed(15)
model_l0, opt_l0, sched_l0 = fresh_run(seed=16)
log_l0 = train(model_l0, opt_l0, sched_l0, train_tokens, steps=3, batch_size=4, seq_len=32)
assert len(log_l0) == 3 and [r["step"] for r in log_l0] == [0, 1, 2], f"3 steps: expected a log of steps [0, 1, 2], got {log_l0}"
assert set(log_l0[0]) >= {"step", "loss", "grad_norm", "lr"}, f"log entries need step, loss, grad_norm, lr; got {sorted(log_l0[0])}"
assert all(isinstance(r[k], float) for r in log_l0 for k in ("loss", "grad_norm", "lr")), "loss, grad_norm and lr must be floats"
assert [r["lr"] for r in log_l0] == [0.0, 5e-3, 1e-2], (
    f"with 2 warm-up steps to 1e-2 the steps use learning rates [0, 5e-3, 1e-2], got {[r['lr'] for r in log_l0]}")
# An untrained model is about uniform over the 4096 tokens: loss ~ ln 4096 = 8.3.
assert 7.5 < log_l0[0]["loss"] < 9.0, f"the first loss of an untrained model should be near ln(4096) = 8.3, got {log_l0[0]['loss']:.3f}"
with tempfile.TemporaryDirectory() as tmp:
    path_l0 = os.path.join(tmp, "ckpt.pt")
    save_checkpoint(path_l0, model_l0, opt_l0, sched_l0, log_l0)
    model_l1, opt_l1, sched_l1 = fresh_run(seed=17)
    back_l0 = load_checkpoint(path_l0, model_l1, opt_l1, sched_l1)
assert back_l0 == log_l0, "load_checkpoint must return the log that was saved"
for (name, p), q in zip(model_l0.named_parameters(), model_l1.parameters(), strict=True):
    assert torch.equal(p, q), f"{name} differs after save_checkpoint / load_checkpoint"
assert sched_l1.state_dict()["last_epoch"] == 3, "load_checkpoint must restore the scheduler (3 steps taken)"

# %% test id=test_loop_hidden points=4
### BEGIN HIDDEN TESTS
def _oracle_train(model, opt, sched, steps, batch_size, seq_len, max_norm=1.0):
    out = []
    for _ in range(steps):
        batch = get_batch(train_tokens, batch_size, seq_len)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        out.append({"step": len(out), "loss": loss.item(), "grad_norm": norm.item(), "lr": lr})
    return out


# Against a reference loop: same seeds, same batches; garbage left in .grad must not leak into step 1.
ma, oa, sa = fresh_run(seed=18, warmup=0, total=6)
mb, ob, sb = fresh_run(seed=18, warmup=0, total=6)
for p in ma.parameters():
    p.grad = 100 * torch.randn_like(p)
torch.manual_seed(19)
got = train(ma, oa, sa, train_tokens, steps=6, batch_size=3, seq_len=24)  # the default max_norm, 1.0
torch.manual_seed(19)
want = _oracle_train(mb, ob, sb, 6, 3, 24)
assert max(r["grad_norm"] for r in want) > 1.0, "test set-up: clipping at 1.0 should matter in these steps"
for k, rtol in (("loss", 1e-5), ("grad_norm", 1e-4), ("lr", 1e-5)):
    # Same float32 computation, up to float32 round-off. The gradient norm most of all: torch's own float32
    # norm is 1.2e-5 (relative) from the exact one here (2.6e-5 on lm_head's 4096 x 32 gradient), and a
    # clip_grad_norm that sums in another order (or in float64) may differ from it by as much: 1e-4.
    assert_close(torch.tensor([r[k] for r in got]), torch.tensor([r[k] for r in want]), rtol=rtol, atol=1e-7,
                 name=f"logged {k} of 6 steps vs a reference loop")
assert [r["step"] for r in got] == list(range(6)), f"steps must be numbered 0..5, got {[r['step'] for r in got]}"
# The weights too, up to that round-off as AdamW carries it: dividing by sqrt(v) amplifies a gradient's last
# float32 digits where it is small, so a norm summed in another order (or in float64) moves a few weights by
# ~3e-6 after 6 steps at lr 1e-2; clipping after the update, say, moves them by 2e-2. Hence atol 1e-5.
for (name, p), q in zip(ma.named_parameters(), mb.parameters(), strict=True):
    assert_close(p, q, rtol=1e-4, atol=1e-5, name=f"{name} after 6 steps vs a reference loop")
# Appending to an existing log numbers the steps on; max_norm is used.
torch.manual_seed(24)
more = train(ma, oa, sa, train_tokens, steps=2, batch_size=3, seq_len=24, max_norm=0.05, log=got)
assert more is got and [r["step"] for r in got] == list(range(8)), "train(..., log=log) must append to that log and number steps on"
torch.manual_seed(24)
more_want = _oracle_train(mb, ob, sb, 2, 3, 24, max_norm=0.05)
for (name, p), q in zip(ma.named_parameters(), mb.parameters(), strict=True):
    assert_close(p, q, rtol=1e-4, atol=1e-5, name=f"{name} after 2 more steps clipped at max_norm=0.05 vs a reference loop")
# Exact resume: interrupted at step 5 of 12 and resumed in a scrambled random state, bit for bit.
m1, o1, s1 = fresh_run(seed=20)
torch.manual_seed(21)
full_log = train(m1, o1, s1, train_tokens, steps=12, batch_size=4, seq_len=32)
rng_full = torch.get_rng_state()
m2, o2, s2 = fresh_run(seed=20)
torch.manual_seed(21)
part = train(m2, o2, s2, train_tokens, steps=5, batch_size=4, seq_len=32)
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "step5.pt")
    save_checkpoint(path, m2, o2, s2, part)
    del m2, o2, s2
    m3, o3, s3 = fresh_run(seed=22)  # different initial weights: everything must come from the checkpoint
    torch.manual_seed(23)
    get_batch(train_tokens, 7, 9)  # a restarted process's generator is anywhere
    resumed = load_checkpoint(path, m3, o3, s3)
    assert os.listdir(tmp) == ["step5.pt"], f"save_checkpoint must write the one file it is given, found {os.listdir(tmp)}"
resumed = train(m3, o3, s3, train_tokens, steps=7, batch_size=4, seq_len=32, log=resumed)
assert torch.equal(torch.get_rng_state(), rng_full), "after resuming, torch's random state differs from the uninterrupted run's"
assert [r["loss"] for r in resumed] == [r["loss"] for r in full_log], (
    f"resumed run: the losses must equal the uninterrupted run's exactly; first difference at step "
    f"{next((i for i, (a, b) in enumerate(zip(resumed, full_log)) if a['loss'] != b['loss']), len(resumed))}")
assert resumed == full_log, "the resumed log (losses, gradient norms, learning rates) must equal the uninterrupted run's"
for (name, p), q in zip(m1.named_parameters(), m3.parameters(), strict=True):
    assert torch.equal(p, q), f"{name} after resuming differs from the uninterrupted run (bit for bit)"
for p, q in zip(m1.parameters(), m3.parameters(), strict=True):
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(o1.state[p][key], o3.state[q][key]), f"optimizer state '{key}' differs after resuming"
assert s1.state_dict()["last_epoch"] == s3.state_dict()["last_epoch"] == 12, "the scheduler must have counted 12 steps"
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### 6.2 Pre-train a small Llama from scratch
#
# Now everything together: your `CausalLM`, `MyAdamW` with decay groups, `warmup_cosine`,
# `clip_grad_norm` and `train`, on the bundled corpus. The model is a smaller member of the
# same family than the bundled checkpoint (hidden size 128, 2 layers, 4 query / 2 key-value
# heads, the same tokenizer), trained on short windows, so that 250 steps of 8 × 64 tokens
# (128,000 tokens, about a third of the corpus) take some 15 seconds of CPU time. The recipe
# is the bundled model's: AdamW with betas (0.9, 0.95) and weight decay 0.1 on matrices, peak
# learning rate 3e-3 after 20 warm-up steps, cosine to 10 %, clipping at 1.0. Real runs see
# each token once and train for days; this one is short enough to run while you read, and
# long enough to leave the context-free baseline well behind.
#
# Two reference points for the validation loss (nats per token): a model that knows nothing
# is uniform over the 4,096 tokens, $\ln 4096 = 8.32$; the best *context-free* model, the
# unigram frequencies of the training tokens, reaches about 6.5. Anything below that uses
# the context. (The bundled model, 4 M parameters trained for 600 steps of 2,048 tokens,
# reaches 4.9.)

# %%
BATCH_SIZE, SEQ_LEN = 8, 64
small_config = LlamaConfig(
    vocab_size=len(tokenizer), hidden_size=128, intermediate_size=344, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=SEQ_LEN, rms_norm_eps=1e-5, tie_word_embeddings=True,
    bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
torch.manual_seed(0)
scratch_model = CausalLM(small_config).to(device)
scratch_opt = MyAdamW(decay_groups(scratch_model, 0.1), lr=PEAK_LR, betas=(0.9, 0.95))
scratch_sched = warmup_cosine(scratch_opt, WARMUP, STEPS, MIN_LR_RATIO)
val_before = evaluate(scratch_model, val_tokens, SEQ_LEN)
# One CPU thread for this run: its matrices are too small to gain from a second one, and on a
# machine shared with other jobs, threads that wait for each other at each of its thousands of
# small operations made it 10x slower (measured: 160 CPU s with 2 threads under load, 14 with 1).
threads = torch.get_num_threads()
torch.set_num_threads(1)
try:
    started = time.perf_counter()
    scratch_log = train(scratch_model, scratch_opt, scratch_sched, train_tokens, STEPS, BATCH_SIZE, SEQ_LEN,
                        max_norm=1.0)
    train_seconds = time.perf_counter() - started
finally:
    torch.set_num_threads(threads)
val_after = evaluate(scratch_model, val_tokens, SEQ_LEN)
# The unigram baseline on the same targets as `evaluate`: add-one smoothed token frequencies.
counts = torch.bincount(train_tokens.cpu(), minlength=small_config.vocab_size).double()
unigram_logp = torch.log((counts + 1) / (counts.sum() + small_config.vocab_size))
n_val_windows = min(64, (len(val_tokens) - 1) // SEQ_LEN)
unigram_loss = -unigram_logp[val_tokens[1 : n_val_windows * SEQ_LEN + 1].cpu()].mean().item()
tokens_seen = STEPS * BATCH_SIZE * SEQ_LEN
print(f"{count_params(small_config):,} parameters, {tokens_seen:,} tokens in {train_seconds:.1f} s "
      f"({tokens_seen / train_seconds:,.0f} tokens/s)")
print(f"validation loss: {val_before:.3f} before training, {val_after:.3f} after "
      f"(uniform {math.log(small_config.vocab_size):.3f}, unigram {unigram_loss:.3f})")

# %% test id=test_pretrain_outcome points=3
assert len(scratch_log) == STEPS and all(math.isfinite(r["loss"]) for r in scratch_log), (
    f"the pre-training run must log {STEPS} finite losses, got {len(scratch_log)}")
### BEGIN HIDDEN TESTS
# Calibrated on this run (250 steps of 8 x 64 tokens; validation on 64 windows of 64 tokens,
# where the unigram baseline is 6.54). Measured with the reference cells (torch 2.13, CPU):
#   reference loop            5.75 (model seeds 0, 1, 2: 5.75, 5.74, 5.78)
#   never zeroes gradients    6.24 (seeds 0, 1, 2: 6.24, 6.39, 6.44): training loss falls 1.7-1.9 nats
#   never steps the scheduler 8.31 (the learning rate stays 0)
#   labels not shifted        14.2 (it learns to copy its input: training loss 0.2)
# 6.0 sits at least 0.22 nats from the reference and 0.24 from the closest broken loop, about
# five times the spread between seeds. (Clipping after the step, 5.77, is not a loss problem:
# test_loop_hidden catches it.) The training loss falls 2.4 nats from the first 10 steps to the
# last 10 in the reference (all three seeds), 1.7-1.9 without zero_grad: 2.0 splits them.
PRETRAIN_THRESHOLD = 6.0
assert val_after < PRETRAIN_THRESHOLD, (
    f"validation loss after {STEPS} steps: expected below {PRETRAIN_THRESHOLD} (a correct loop reaches about 5.75; "
    f"the unigram baseline is {unigram_loss:.2f}), got {val_after:.3f}")
first, last = (sum(r["loss"] for r in part) / len(part) for part in (scratch_log[:10], scratch_log[-10:]))
assert last < first - 2.0, f"the training loss must fall by more than 2 nats: first 10 steps {first:.3f}, last 10 {last:.3f}"
### END HIDDEN TESTS
assert True

# %% [markdown]
# The loss curve (each point one batch of 512 tokens, so it is noisy), the learning rate
# and the gradient norm before clipping. Notice the fast initial drop (the model first
# learns the unigram statistics, then short-range patterns), the grad norm that is largest
# early on, and the slow, steady gains once the learning rate decays.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
steps_axis = [r["step"] for r in scratch_log]
axes[0].plot(steps_axis, [r["loss"] for r in scratch_log], label="training batches")
axes[0].axhline(math.log(small_config.vocab_size), color="gray", linestyle="--", label="uniform (ln 4096)")
axes[0].axhline(unigram_loss, color="gray", linestyle=":", label="unigram baseline (validation)")
axes[0].plot([STEPS - 1], [val_after], "o", color="C3", label=f"validation after training ({val_after:.2f})")
axes[0].set_xlabel("step")
axes[0].set_ylabel("cross-entropy (nats per token)")
axes[0].set_title("pre-training a small Llama from scratch")
axes[0].legend(fontsize=8)
axes[1].plot(steps_axis, [r["grad_norm"] for r in scratch_log], color="C1", label="gradient norm (before clipping)")
axes[1].axhline(1.0, color="C1", linestyle=":", label="clipping threshold")
axes[1].set_xlabel("step")
axes[1].set_ylabel("gradient norm")
twin = axes[1].twinx()
twin.plot(steps_axis, [r["lr"] for r in scratch_log], color="C2", label="learning rate")
twin.set_ylabel("learning rate")
axes[1].legend(loc="upper right", fontsize=8)
twin.legend(loc="center right", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# **How fast was that?** The FLOPs of a training step (section 1.2) divided by its time give
# the achieved FLOP/s; divided by what this machine's matrix multiplication can do at best
# (measured below with one large product), the *model FLOPs utilisation*. Large GPU runs
# reach 35-55 % MFU; a tiny model gets less, because its matrices are small and a good
# part of its time goes to element-wise operations (softmax, norms, the optimizer) that do
# no matrix FLOPs, and on a shared machine other jobs take their share of the cores.
# `benchmark.py` measures this carefully (figures in the wrap-up).

# %%
flops_per_step = BATCH_SIZE * SEQ_LEN * flops_per_token(small_config, SEQ_LEN)
achieved = STEPS * flops_per_step / train_seconds
a = torch.randn(1024, 1024, device=device)
b = torch.randn(1024, 1024, device=device)
a @ b  # warm-up
started = time.perf_counter()
for _ in range(5):
    a @ b
if device.type == "cuda":
    torch.cuda.synchronize()
peak = 5 * 2 * 1024**3 / (time.perf_counter() - started)
print(f"{flops_per_token(small_config, SEQ_LEN) / 1e6:.2f} MFLOPs per token ({flops_per_step / 1e9:.1f} GFLOPs per step); "
      f"achieved {achieved / 1e9:.1f} GFLOP/s, a 1024^3 matmul here {peak / 1e9:.1f} GFLOP/s: MFU about {achieved / peak:.0%} "
      "(one noisy measurement)")

# %% [markdown]
# ## 7. Diagnosis: reading the curves of broken runs
#
# Most failed training runs do not crash: they produce a loss curve that looks almost
# plausible. Reading curves is a core skill, and the cheapest bug is the one a one-line
# check catches in the first minutes of a run.
#
# The bundled file `datasets/training_logs/runs.json` (`load_training_logs()`) holds the logs
# of short pre-training runs of a small Llama (hidden size 64, 2 layers) on a fixed slice of
# the corpus, about 64,000 tokens cut into 496 windows of 129 tokens, visited in **epochs of
# 31 steps** of 16 windows (a fresh random order every epoch, unless a bug says otherwise),
# with AdamW, warm-up and cosine decay, and clipping at 1.0. Runs **A-E** differ in one
# thing each: one is healthy, and each of the others has exactly one of these bugs:
#
# | cause | what is wrong in the code |
# |---|---|
# | `"lr_too_high"` | the peak learning rate is far past what this model tolerates (past the stability bound) |
# | `"no_zero_grad"` | the loop never zeroes the gradients, so `.grad` holds the sum of every step's gradient |
# | `"labels_not_shifted"` | the training loss compares the logits at position $t$ with the token at $t$ (which the model sees) instead of $t+1$ |
# | `"not_shuffled"` | every epoch visits the windows in the same order, the corpus order |
#
# Each run logged, at every step, `train_loss`, `grad_norm` (the global norm before
# clipping) and `lr`; and every 10 steps (`val_steps`) the `val_loss`, measured correctly
# (next-token loss on held-out windows) whatever the bug. A value is NaN where the run
# diverged. Look at the plots below and think about what each bug *does*:
#
# - A learning rate past the stability bound makes every update overshoot: during the
#   warm-up the loss falls far faster than a sane rate allows, then the run stalls, noisy,
#   above the healthy one, while its gradient norm collapses.
# - Gradients that are never zeroed add up: `.grad` holds the (clipped) sum of the past
#   steps' gradients plus the new one, so its norm before clipping stays above the clipping
#   threshold for good, where a healthy run's falls below it, and the update direction is a
#   stale average.
# - A model asked to predict the token it can already see learns to copy it: the *training*
#   loss collapses toward zero while the true next-token loss stays bad.
# - Without shuffling, every epoch presents the same batches in the same order: the
#   batch-to-batch ups and downs of the loss *repeat with the period of an epoch*.

# %% setup id=training_logs
training_logs = load_training_logs()
STEPS_PER_EPOCH = training_logs["config"]["steps_per_epoch"]
# JSON has no NaN: diverged values were stored as null.
runs = {name: {k: [float("nan") if v is None else v for v in values] for k, values in run.items()}
        for name, run in training_logs["runs"].items()}
CAUSES = ("healthy", "lr_too_high", "no_zero_grad", "labels_not_shifted", "not_shuffled")
fig, axes = plt.subplots(2, 2, figsize=(11, 7))
for name in "ABCDE":
    run = runs[name]
    steps_axis = range(len(run["train_loss"]))
    axes[0, 0].plot(steps_axis, run["train_loss"], label=f"run {name}", lw=1)
    axes[0, 1].plot(run["val_steps"], run["val_loss"], "o-", label=f"run {name}", ms=3)
    axes[1, 0].semilogy(steps_axis, run["grad_norm"], label=f"run {name}", lw=1)
    axes[1, 1].plot(steps_axis, run["lr"], label=f"run {name}")
for ax, title in [(axes[0, 0], "training loss"), (axes[0, 1], "validation loss (correct next-token loss)"),
                  (axes[1, 0], "gradient norm before clipping"), (axes[1, 1], "learning rate")]:
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
for epoch in range(1, len(runs["A"]["train_loss"]) // STEPS_PER_EPOCH + 1):
    axes[0, 0].axvline(epoch * STEPS_PER_EPOCH, color="gray", lw=0.5, ls=":")
axes[1, 1].set_yscale("log")
plt.tight_layout()
plt.show()

# %% [markdown]
# Name the cause of each of the runs A-E in `diagnose()` (it returns a dict from the run's
# letter to one of `CAUSES`; each cause once). Then write, in `bug_checks()`, for each bug the
# **one-line check** that would have caught it: a function of a run's log (the dict
# `runs[name]`, with the lists `train_loss`, `grad_norm`, `lr`, `val_steps`, `val_loss`;
# `STEPS_PER_EPOCH` is defined) that returns True when the run shows that bug. The hidden tests apply every check to
# every bundled run, A-E and six more (other seeds and learning rates, runs you can
# inspect too): a check must fire on **each run of its own cause and on no other run**,
# healthy or with another bug. So find what is specific to each bug, not just "the loss is
# bad". A check that lives in the training loop is the same idea with an `assert`: there
# the epoch structure or the first steps are known exactly; here you only have the logs.
#
# Useful tools: `math.isfinite`, `max`/`min` over slices, `numpy` (`np.diff`, `np.corrcoef`).

# %% answer id=diagnosis
import numpy as np


def diagnose():
    """The cause of each of the runs A-E: a dict from the run's letter ("A" ... "E") to one of
    CAUSES, each cause once."""
    ### BEGIN SOLUTION
    return {
        "A": "labels_not_shifted",
        "B": "healthy",
        "C": "lr_too_high",
        "D": "not_shuffled",
        "E": "no_zero_grad",
    }
    ### END SOLUTION


def bug_checks():
    """One check per bug: a dict from each cause of CAUSES except "healthy" to a function
    check(run) of a run's log (runs[name]) that returns True (a bool) when the run shows
    that bug and False otherwise."""
    ### BEGIN SOLUTION
    return {
        # At step 6 of the warm-up the rate is 40 % of the peak: a sane peak has moved the loss by a
        # few tenths of a nat by then; a rate far past the bound drops it by more than a nat at once
        # (then the run stalls above the healthy ones, its gradient norm collapsed).
        "lr_too_high": lambda run: run["train_loss"][0] - run["train_loss"][6] > 0.8,
        # .grad is the clipped sum of every step's gradient plus the new one: its norm before
        # clipping stays above the threshold (1.0) for good, where a healthy run's falls below it.
        "no_zero_grad": lambda run: np.mean(np.array(run["grad_norm"][30:]) > 1.0) > 0.5,
        # The training loss falls far below the true (validation) loss.
        "labels_not_shifted": lambda run: run["train_loss"][-1] < 0.5 * run["val_loss"][-1],
        # The step-to-step changes of the loss repeat from one epoch to the next.
        "not_shuffled": lambda run: np.corrcoef(np.diff(run["train_loss"][STEPS_PER_EPOCH:2 * STEPS_PER_EPOCH]),
                                                np.diff(run["train_loss"][2 * STEPS_PER_EPOCH:3 * STEPS_PER_EPOCH]))[0, 1] > 0.7,
    }
    ### END SOLUTION

# %% test id=test_diagnosis_visible points=1
DIAGNOSIS, CHECKS = diagnose(), bug_checks()
assert set(DIAGNOSIS) == set("ABCDE"), f"diagnose() must name the runs A-E, got keys {sorted(DIAGNOSIS)}"
assert sorted(DIAGNOSIS.values()) == sorted(CAUSES), (
    f"each of the causes {CAUSES} must appear once in diagnose(), got {sorted(DIAGNOSIS.values())}")
assert set(CHECKS) == set(CAUSES) - {"healthy"}, f"bug_checks() must have one check per bug {sorted(set(CAUSES) - {'healthy'})}, got {sorted(CHECKS)}"
for cause, check in CHECKS.items():
    for name in "ABCDE":
        verdict = check(runs[name])
        assert verdict in (True, False), f"bug_checks()[{cause!r}](runs[{name!r}]) must return True or False, got {verdict!r}"
assert all(callable(check) for check in CHECKS.values()), "every check must be a function of a run's log"

# %% test id=test_diagnosis_hidden points=4
### BEGIN HIDDEN TESTS
# The causes of the bundled runs (datasets/build_training_logs.py, TRUTH).
_TRUTH = {"A": "labels_not_shifted", "B": "healthy", "C": "lr_too_high", "D": "not_shuffled", "E": "no_zero_grad",
          "V01": "healthy", "V02": "lr_too_high", "V03": "no_zero_grad", "V04": "healthy", "V05": "not_shuffled",
          "V06": "labels_not_shifted"}
assert set(runs) == set(_TRUTH), f"the bundled runs changed: {sorted(runs)}"
DIAGNOSIS, CHECKS = diagnose(), bug_checks()
wrong = {k: (DIAGNOSIS.get(k), v) for k, v in _TRUTH.items() if k in "ABCDE" and DIAGNOSIS.get(k) != v}
assert not wrong, f"{len(wrong)} of the runs A-E are misdiagnosed"
for cause, check in CHECKS.items():
    missed = [name for name, c in _TRUTH.items() if c == cause and not check(runs[name])]
    false_alarms = [name for name, c in _TRUTH.items() if c != cause and check(runs[name])]
    assert not missed, f"bug_checks()[{cause!r}] misses runs with that bug: {missed}"
    assert not false_alarms, f"bug_checks()[{cause!r}] fires on runs without that bug: {false_alarms} ({[_TRUTH[n] for n in false_alarms]})"
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## Wrap-up
#
# You built a Llama decoder that is interchangeable with `transformers`', counted its
# parameters and FLOPs exactly, wrote two backward passes and the check that proves them,
# AdamW step for step equal to PyTorch's, the schedule, clipping, gradient accumulation and a
# loop whose checkpoints resume bit for bit, pre-trained a model from scratch, and read the
# curves of broken runs. What large-scale pre-training does differently:
#
# - **Mixed precision.** Weights, activations and gradients in bfloat16, with float32 master
#   weights and optimizer state (or 8-bit optimizer state); the softmax, norms and loss in
#   float32, as our RMSNorm does. The $6N$ FLOPs then run on tensor cores at 10-20x the
#   float32 rate.
# - **Fused kernels.** FlashAttention for the attention term (which also skips the masked half
#   of the causal scores), fused AdamW (`torch.optim.AdamW(fused=True)`), fused cross-entropy
#   that never materialises the full $B \times T \times V$ logits, `torch.compile` for the rest.
#   They are why large runs reach 40-55 % MFU.
# - **Sharding.** The 16 bytes per parameter of weights, gradients and AdamW state do not fit
#   one GPU past a few billion parameters: ZeRO/FSDP shards them across data-parallel ranks,
#   tensor and pipeline parallelism split the matrices and the layers (the distributed
#   training unit).
# - **Schedules and stability.** Warm-up over thousands of steps, cosine or
#   warmup-stable-decay (WSD) schedules that allow continued training, loss-spike monitoring
#   with automatic rollback to a checkpoint, z-loss on the logits, QK-norm, and maximal update
#   parametrisation (μP) to transfer the learning rate from small proxy models to the big one.
# - **Data and checkpoints.** Deterministic, stateful data loaders (the position in a
#   multi-trillion-token stream and every sampler's random state are part of the checkpoint),
#   asynchronous sharded checkpoints written every few hundred steps, and curves watched by
#   automated checks like yours, not by people.
#
# `benchmark.py` in this unit's folder measures the training loop's tokens per second and its
# MFU against this machine's matrix-multiplication peak. On the course's reference machine
# (an AMD EPYC core, torch 2.13 CPU, float32, one thread, counted per second of CPU time so
# that other jobs do not distort it): a 2048³ product runs at 93 GFLOP/s; the reference loop
# trains the small model of section 6.2 (8 × 64 tokens a step) at about 10,000 tokens per
# CPU-second, 5.5 MFLOPs per token, an MFU of about 60 %, and the bundled tiny Llama's config
# (4 M parameters, 8 × 256 tokens) at about 2,400 tokens per CPU-second, 26.8 MFLOPs per
# token, about 68 %: single-threaded matrix products are efficient, and the larger the model,
# the smaller the share of the element-wise work (norms, softmax, AdamW) that does no matrix
# FLOPs. (Large GPU runs reach 35-55 % of a bfloat16 peak some ten thousand times higher.)
