"""Independent answers to attention's shorter exercises, written from the released
notebook's stubs and docstrings only, without reading the reference answers: the
"honest student" side of the copy-detection calibration (`tests/data/similarity/calibrate.py`).
Not graded here; only their text matters.
"""

ANSWERS: dict[str, list[str]] = {
    "sdpa": [
        '''def attention(q, k, v, causal=False, key_padding_mask=None):
    """Scaled dot-product attention, batched over (batch, heads)."""
    Tq, Tk = q.shape[-2], k.shape[-2]
    logits = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    allowed = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device)
    if causal:
        allowed = torch.tril(allowed, diagonal=Tk - Tq)
    allowed = allowed[None, None]
    if key_padding_mask is not None:
        allowed = allowed & key_padding_mask[:, None, None, :]
    logits = logits.float().masked_fill(~allowed, float("-inf"))
    peak = logits.amax(dim=-1, keepdim=True).clamp_min(-1e30)
    w = torch.exp(logits - peak)
    denom = w.sum(dim=-1, keepdim=True)
    w = torch.where(denom > 0, w / denom.clamp_min(1e-30), torch.zeros_like(w))
    return (w.to(v.dtype) @ v).to(q.dtype)
''',
    ],
    "rope": [
        '''def rope_cos_sin(position_ids, head_dim, base=10000.0):
    """cos and sin of the RoPE angles, half-split layout."""
    half = head_dim // 2
    idx = torch.arange(half, device=position_ids.device, dtype=torch.float32)
    freqs = base ** (-2.0 * idx / head_dim)
    ang = position_ids.to(torch.float32).unsqueeze(-1) * freqs
    ang = torch.cat([ang, ang], dim=-1)
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x, cos, sin):
    """Rotate x (B, H, T, head_dim) by the angles in cos, sin."""
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    rotated = torch.cat((-x2, x1), dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)
''',
    ],
    "rope_permute": [
        '''def permute_for_half_split(w, num_heads):
    """Convert q_proj or k_proj parameters from interleaved to half-split RoPE layout."""
    hd = w.shape[0] // num_heads
    rest = w.shape[1:]
    out = w.reshape(num_heads, hd // 2, 2, *rest)
    out = out.transpose(1, 2)
    return out.reshape(w.shape).clone()
''',
        """def permute_for_half_split(w, num_heads):
    head_dim = w.shape[0] // num_heads
    order = []
    for h in range(num_heads):
        start = h * head_dim
        order += [start + i for i in range(0, head_dim, 2)]
        order += [start + i for i in range(1, head_dim, 2)]
    index = torch.tensor(order, device=w.device)
    return w.index_select(0, index)
""",
    ],
    "kv_cache": [
        '''class KVCache:
    """Keys (after RoPE) and values of the tokens seen so far, for one attention layer."""

    def __init__(self):
        self.k = None
        self.v = None

    def __len__(self):
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k_new, v_new):
        if self.k is None:
            self.k, self.v = k_new, v_new
        else:
            self.k = torch.cat([self.k, k_new], dim=2)
            self.v = torch.cat([self.v, v_new], dim=2)
        return self.k, self.v


def decode_step(attn, x_new, cache):
    """Run `attn` on new tokens that follow the cached ones; update the cache."""
    B, T, _ = x_new.shape
    past = len(cache)
    pos = torch.arange(past, past + T, device=x_new.device)
    q = attn.q_proj(x_new).view(B, T, attn.num_heads, attn.head_dim).transpose(1, 2)
    k = attn.k_proj(x_new).view(B, T, attn.num_kv_heads, attn.head_dim).transpose(1, 2)
    v = attn.v_proj(x_new).view(B, T, attn.num_kv_heads, attn.head_dim).transpose(1, 2)
    cos, sin = rope_cos_sin(pos, attn.head_dim, attn.rope_base)
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    keys, values = cache.append(k, v)
    group = attn.num_heads // attn.num_kv_heads
    keys = repeat_kv(keys, group)
    values = repeat_kv(values, group)
    y = attention(q, keys, values, causal=True)
    y = y.transpose(1, 2).reshape(B, T, attn.num_heads * attn.head_dim)
    return attn.o_proj(y)
''',
    ],
}
