"""Copies of reference answer cells disguised by hand, as a student might: new names,
reordered lines, other comments and layout, and sometimes a small rewrite that keeps the
meaning (a method for a function call, a temporary inlined or split out). (unit,
grade_id, name, source) for `calibrate.py`."""

HAND: list[tuple[str, str, str, str]] = [
    (
        "linear_algebra",
        "softmax",
        "renamed, methods for functions, comments",
        """def softmax(x, axis=-1):
    # find the biggest logit so exp does not overflow
    m = x.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    ex = np.exp(x - m)   # now everything <= 1
    denom = ex.sum(axis=axis, keepdims=True)
    # guard the all -inf rows
    return np.divide(ex, denom, out=np.zeros_like(ex), where=denom > 0)
""",
    ),
    (
        "linear_algebra",
        "power",
        "renamed, reordered, v /= n spelled out",
        """def power_iteration(H, num_iters=1000, tol=1e-10, seed=0):
    gen = np.random.default_rng(seed)
    vec = gen.standard_normal(H.shape[0])
    vec = vec / np.linalg.norm(vec)
    estimate = 0.0
    for it in range(num_iters):
        Hv = H @ vec
        nrm = np.linalg.norm(Hv)
        est_new = float(vec @ Hv)
        if nrm == 0.0:
            return 0.0, vec
        vec = Hv / nrm
        done = abs(est_new - estimate) <= tol * abs(est_new)
        estimate = est_new
        if done:
            break
    return float(vec @ H @ vec), vec
""",
    ),
    (
        "linear_algebra",
        "svd",
        "renamed, reordered, one temporary inlined",
        """def low_rank_compress(W, energy=0.95):
    rows, cols = W.shape
    u, sv, vt = np.linalg.svd(W, full_matrices=False)
    sq = sv ** 2
    frac = np.cumsum(sq) / sq.sum()
    rank = min(int(np.searchsorted(frac, energy)) + 1, len(sv))
    left = u[:, :rank] * sv[:rank]
    right = vt[:rank]
    return left, right, rows * cols / (rank * (rows + cols)), math.sqrt(sq[rank:].sum() / sq.sum())
""",
    ),
    (
        "linear_algebra",
        "pca",
        "renamed, one temporary split out",
        """def pca(X, k):
    Xc = X - X.mean(axis=0)  # centre the data
    _, sing, VT = np.linalg.svd(Xc, full_matrices=False)
    comps = VT[:k]
    total = np.sum(sing ** 2)
    explained = sing[:k] ** 2 / total
    projected = Xc @ comps.T
    return comps, explained, projected
""",
    ),
    (
        "attention",
        "sdpa",
        "renamed, reformatted, softmax as a method, comments",
        """def attention(q, k, v, causal=False, key_padding_mask=None):
    Lq = q.shape[-2]; Lk = k.shape[-2]; dim = q.shape[-1]
    att = (q @ k.transpose(-2, -1)) / math.sqrt(dim)
    keep = torch.ones(Lq, Lk, dtype=torch.bool, device=q.device)
    if causal:
        # lower triangle, shifted for the cached keys
        keep = torch.tril(keep, diagonal=Lk - Lq)
    if key_padding_mask is not None:
        keep = keep & key_padding_mask.bool()[:, None, None, :]
    att = att.masked_fill(~keep, float("-inf"))
    probs = att.softmax(dim=-1)
    probs = torch.nan_to_num(probs, nan=0.0)  # rows that see nothing
    return probs @ v
""",
    ),
    (
        "attention",
        "rope",
        "renamed, reformatted",
        """def rope_cos_sin(position_ids, head_dim, base=10000.0):
    e = torch.arange(0, head_dim, 2, dtype=torch.float32,
                     device=position_ids.device) / head_dim
    freqs = 1.0 / (base ** e)
    theta = position_ids.to(torch.float32)[..., None] * freqs
    theta = torch.cat([theta, theta], dim=-1)
    return theta.cos(), theta.sin()


def apply_rope(x, cos, sin):
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
    c = cos.unsqueeze(-3).to(x.dtype)
    s = sin.unsqueeze(-3).to(x.dtype)
    return x * c + rot * s
""",
    ),
    (
        "attention",
        "tiled",
        "renamed throughout, comments gone, two lines swapped",
        """def tiled_attention(q, k, v, causal=False, block_size=128):
    nq, nk, dd = q.shape[-2], k.shape[-2], q.shape[-1]
    acc_t = torch.promote_types(q.dtype, torch.float32)
    shift = nk - nq
    pieces = []
    for a in range(0, nq, block_size):
        b = min(a + block_size, nq)
        qt = q[..., a:b, :].to(acc_t) * (1.0 / math.sqrt(dd))
        mx = torch.full((*qt.shape[:-1], 1), float("-inf"), dtype=acc_t, device=q.device)
        den = torch.zeros_like(mx)
        o = torch.zeros(*qt.shape[:-1], v.shape[-1], dtype=acc_t, device=q.device)
        end = shift + b if causal else nk
        for c in range(0, end, block_size):
            e = min(c + block_size, end)
            sc = qt @ k[..., c:e, :].to(acc_t).transpose(-2, -1)
            if causal and e - 1 > shift + a:
                kp = torch.arange(c, e, device=q.device)[None, :]
                qp = torch.arange(shift + a, shift + b, device=q.device)[:, None]
                sc = sc.masked_fill(kp > qp, float("-inf"))
            m2 = torch.maximum(mx, sc.amax(dim=-1, keepdim=True))
            fix = torch.exp(mx - m2)
            pr = torch.exp(sc - m2)
            den = den * fix + pr.sum(dim=-1, keepdim=True)
            o = o * fix + pr @ v[..., c:e, :].to(acc_t)
            mx = m2
        pieces.append((o / den).to(q.dtype))
    return torch.cat(pieces, dim=-2)
""",
    ),
    (
        "attention",
        "kv_cache",
        "renamed, reordered",
        '''class KVCache:
    """Keys (after RoPE) and values of the tokens seen so far, for one attention layer.
    self.k, self.v: None while empty, else tensors of shape (B, num_kv_heads, T_cached, head_dim)."""

    def __init__(self):
        self.k = None
        self.v = None

    def __len__(self):
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k_new, v_new):
        if self.k is not None:
            self.k = torch.cat([self.k, k_new], dim=-2)
            self.v = torch.cat([self.v, v_new], dim=-2)
        else:
            self.k, self.v = k_new, v_new
        return self.k, self.v


def decode_step(attn, x_new, cache):
    bs, n, _ = x_new.shape
    s0 = len(cache)
    pos = torch.arange(s0, s0 + n, device=x_new.device)
    kk = attn.k_proj(x_new).view(bs, n, attn.num_kv_heads, attn.head_dim).transpose(1, 2)
    qq = attn.q_proj(x_new).view(bs, n, attn.num_heads, attn.head_dim).transpose(1, 2)
    vv = attn.v_proj(x_new).view(bs, n, attn.num_kv_heads, attn.head_dim).transpose(1, 2)
    c, s = rope_cos_sin(pos, attn.head_dim, attn.rope_base)
    rep = attn.num_heads // attn.num_kv_heads
    K_all, V_all = cache.append(apply_rope(kk, c, s), vv)
    y = attention(apply_rope(qq, c, s), repeat_kv(K_all, rep), repeat_kv(V_all, rep), causal=True)
    return attn.o_proj(y.transpose(1, 2).reshape(bs, n, attn.num_heads * attn.head_dim))
''',
    ),
]
