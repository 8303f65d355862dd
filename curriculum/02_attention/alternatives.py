"""Alternative correct answers for attention, written blind (from the released notebook
only), in styles unlike a typical reference. Graded by
`python -m graders.authoring.alternatives attention`.
"""

# ruff: noqa: E501  (answer cells are notebook code, as long as a notebook line)

from graders.authoring.alternatives import Alternative

ALTERNATIVES = [
    Alternative(
        "sdpa_float32_einsum",
        "sdpa",
        """def attention(q, k, v, causal=False, key_padding_mask=None):
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    t_q, t_k = q.shape[-2], k.shape[-2]
    scores = torch.einsum("bhqd,bhkd->bhqk", q.to(work), k.to(work)) / math.sqrt(q.shape[-1])
    visible = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device)
    if causal:
        rows = torch.arange(t_q, device=q.device).unsqueeze(1) + (t_k - t_q)
        cols = torch.arange(t_k, device=q.device).unsqueeze(0)
        visible = cols <= rows
    visible = visible.expand(q.shape[0], 1, t_q, t_k)
    if key_padding_mask is not None:
        visible = visible & key_padding_mask.to(torch.bool).view(q.shape[0], 1, 1, t_k)
    scores = scores.masked_fill(~visible, float("-inf"))
    top = scores.amax(dim=-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    weights = torch.exp(scores - top)
    norm = weights.sum(dim=-1, keepdim=True)
    weights = weights / torch.where(norm > 0, norm, torch.ones_like(norm))
    return torch.einsum("bhqk,bhkd->bhqd", weights, v.to(work)).to(q.dtype)
""",
        "einsum in a float32 (float64) working dtype, boolean visibility mask, the softmax by hand",
    ),
    Alternative(
        "sdpa_hf_eager_additive",
        "sdpa",
        """def attention(q, k, v, causal=False, key_padding_mask=None):
    # Hugging Face "eager" style: scores in the inputs' dtype, an additive mask, the softmax in float32.
    B, H, T_q, d = q.shape
    T_k = k.shape[2]
    bias = torch.zeros(B, 1, T_q, T_k, dtype=torch.float32, device=q.device)
    if causal:
        future = torch.triu(torch.ones(T_q, T_k, dtype=torch.bool, device=q.device), diagonal=T_k - T_q + 1)
        bias = bias.masked_fill(future, float("-inf"))
    if key_padding_mask is not None:
        bias = bias.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
    s = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(d))
    p = torch.softmax(s.to(torch.promote_types(s.dtype, torch.float32)) + bias, dim=-1)
    nothing_visible = torch.isinf(bias).all(dim=-1, keepdim=True)
    p = p.masked_fill(nothing_visible, 0.0)
    return torch.matmul(p.to(q.dtype), v)
""",
        "Hugging Face eager style: scores in the input dtype, an additive float32 mask, torch.softmax, masked rows zeroed afterwards",
    ),
    Alternative(
        "rope_float64_per_entry",
        "rope",
        """def rope_cos_sin(position_ids, head_dim, base=10000.0):
    # Each entry from its own formula, in float64, rounded to float32 once at the end.
    half = head_dim // 2
    j = torch.arange(head_dim, device=position_ids.device) % half
    theta = torch.pow(torch.tensor(float(base), dtype=torch.float64, device=position_ids.device),
                      -2.0 * j.to(torch.float64) / head_dim)
    angle = position_ids.to(torch.float64).unsqueeze(-1) * theta
    return torch.cos(angle).to(torch.float32), torch.sin(angle).to(torch.float32)


def apply_rope(x, cos, sin):
    half = x.shape[-1] // 2
    c = cos.unsqueeze(-3).float()
    s = sin.unsqueeze(-3).float()
    xf = x.float()
    lo, hi = xf[..., :half], xf[..., half:]
    out_lo = lo * c[..., :half] - hi * s[..., :half]
    out_hi = hi * c[..., half:] + lo * s[..., half:]
    return torch.cat([out_lo, out_hi], dim=-1).to(x.dtype)
""",
        "each angle from its own formula (j mod d/2) in float64; rotation written on the two halves in float32",
    ),
    Alternative(
        "rope_einsum_addcmul",
        "rope",
        """def rope_cos_sin(position_ids, head_dim, base=10000.0):
    exponents = torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim
    inv_freq = 1.0 / (base**exponents)
    freqs = torch.einsum("...t,f->...tf", position_ids.float(), inv_freq)
    angles = torch.cat((freqs, freqs), dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    d = x.shape[-1]
    rotated = torch.cat((-x[..., d // 2 :], x[..., : d // 2]), dim=-1)
    return torch.addcmul(x * cos, rotated, sin)
""",
        "inverse frequencies and an einsum outer product; rotate_half with torch.addcmul in x's dtype",
    ),
    Alternative(
        "permute_index_select",
        "rope_permute",
        """def permute_for_half_split(w, num_heads):
    # An explicit row index: within each head, the even rows first, then the odd ones.
    head_dim = w.shape[0] // num_heads
    within = torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])
    order = (torch.arange(num_heads).unsqueeze(1) * head_dim + within).reshape(-1)
    return w.index_select(0, order.to(w.device))
""",
        "an explicit row index and index_select",
    ),
    Alternative(
        "permute_strided_slices",
        "rope_permute",
        """def permute_for_half_split(w, num_heads):
    # Head by head, with strided slices.
    head_dim = w.shape[0] // num_heads
    pieces = []
    for h in range(num_heads):
        head = w[h * head_dim : (h + 1) * head_dim]
        pieces.append(head[0::2])
        pieces.append(head[1::2])
    return torch.cat(pieces, dim=0)
""",
        "a Python loop over heads with strided slices [0::2], [1::2]",
    ),
    Alternative(
        "mha_expand_reuse",
        "mha",
        '''def repeat_kv(x, n_rep):
    B, H_kv, T, d = x.shape
    return x[:, :, None, :, :].expand(B, H_kv, n_rep, T, d).reshape(B, H_kv * n_rep, T, d)


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

    def _heads(self, t, n):
        return t.unflatten(-1, (n, self.head_dim)).transpose(1, 2)

    def forward(self, x, position_ids=None, key_padding_mask=None):
        T = x.shape[1]
        if position_ids is None:
            position_ids = torch.arange(T, device=x.device)
        cos, sin = rope_cos_sin(position_ids, self.head_dim, self.rope_base)
        q = apply_rope(self._heads(self.q_proj(x), self.num_heads), cos, sin)
        k = apply_rope(self._heads(self.k_proj(x), self.num_kv_heads), cos, sin)
        v = self._heads(self.v_proj(x), self.num_kv_heads)
        group = self.num_heads // self.num_kv_heads
        o = attention(q, repeat_kv(k, group), repeat_kv(v, group), causal=True, key_padding_mask=key_padding_mask)
        return self.o_proj(o.transpose(1, 2).flatten(2))
''',
        "repeat_kv by expand + reshape; unflatten for heads; reuses attention()",
    ),
    Alternative(
        "mha_grouped_einsum",
        "mha",
        '''def repeat_kv(x, n_rep):
    heads = torch.arange(x.shape[1] * n_rep, device=x.device) // n_rep
    return x.index_select(1, heads)


class Attention(torch.nn.Module):
    """Causal self-attention with RoPE and grouped-query attention, Llama-style.

    Grouped queries are attended without copying keys: the query heads are viewed as
    (kv head, group member) and broadcast against the kv heads."""

    def __init__(self, hidden_size, num_heads, num_kv_heads, head_dim=None, rope_base=10000.0, bias=False):
        super().__init__()
        if num_heads % num_kv_heads != 0:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim if head_dim else hidden_size // num_heads
        self.rope_base = rope_base
        inner_q, inner_kv = num_heads * self.head_dim, num_kv_heads * self.head_dim
        self.q_proj = torch.nn.Linear(hidden_size, inner_q, bias=bias)
        self.k_proj = torch.nn.Linear(hidden_size, inner_kv, bias=bias)
        self.v_proj = torch.nn.Linear(hidden_size, inner_kv, bias=bias)
        self.o_proj = torch.nn.Linear(inner_q, hidden_size, bias=bias)

    def forward(self, x, position_ids=None, key_padding_mask=None):
        B, T, _ = x.shape
        d, G, R = self.head_dim, self.num_kv_heads, self.num_heads // self.num_kv_heads
        pos = torch.arange(T, device=x.device) if position_ids is None else position_ids
        cos, sin = rope_cos_sin(pos, d, self.rope_base)
        q = F.linear(x, self.q_proj.weight, self.q_proj.bias).reshape(B, T, self.num_heads, d).permute(0, 2, 1, 3)
        k = F.linear(x, self.k_proj.weight, self.k_proj.bias).reshape(B, T, G, d).permute(0, 2, 1, 3)
        v = F.linear(x, self.v_proj.weight, self.v_proj.bias).reshape(B, T, G, d).permute(0, 2, 1, 3)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        work = torch.float64 if x.dtype == torch.float64 else torch.float32
        qg = q.reshape(B, G, R, T, d).to(work)
        s = torch.einsum("bgrqd,bgkd->bgrqk", qg, k.to(work)) / math.sqrt(d)
        allowed = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        allowed = allowed.expand(B, 1, 1, T, T)
        if key_padding_mask is not None:
            allowed = allowed & key_padding_mask.bool()[:, None, None, None, :]
        s = s.masked_fill(~allowed, float("-inf"))
        top = s.amax(-1, keepdim=True).nan_to_num(0.0, posinf=0.0, neginf=0.0)
        e = torch.exp(s - top)
        z = e.sum(-1, keepdim=True)
        p = e / torch.where(z == 0, torch.ones_like(z), z)
        o = torch.einsum("bgrqk,bgkd->bgrqd", p, v.to(work)).to(x.dtype)
        o = o.reshape(B, self.num_heads, T, d).transpose(1, 2).reshape(B, T, self.num_heads * d)
        return self.o_proj(o)
''',
        "repeat_kv by index_select; GQA by broadcasting grouped queries (no copy of keys), F.linear, masks by hand",
    ),
    Alternative(
        "tiled_keys_only",
        "tiled",
        """def tiled_attention(q, k, v, causal=False, block_size=128):
    # Only the keys are tiled: every query row keeps its running max, sum and output.
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    B, H, T_q, d = q.shape
    T_k = k.shape[-2]
    scale = 1.0 / math.sqrt(d)
    qs = q.to(acc) * scale
    m = torch.full((B, H, T_q, 1), float("-inf"), dtype=acc, device=q.device)
    l = torch.zeros((B, H, T_q, 1), dtype=acc, device=q.device)
    a = torch.zeros((B, H, T_q, v.shape[-1]), dtype=acc, device=q.device)
    query_pos = torch.arange(T_q, device=q.device).view(T_q, 1) + (T_k - T_q)
    for start in range(0, T_k, block_size):
        stop = min(start + block_size, T_k)
        if causal and start > T_k - 1:
            break
        s = qs @ k[:, :, start:stop].to(acc).transpose(-1, -2)
        if causal and stop - 1 > T_k - T_q:
            key_pos = torch.arange(start, stop, device=q.device).view(1, stop - start)
            s = s.masked_fill(key_pos > query_pos, float("-inf"))
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        shift = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
        c = torch.exp(m - shift)
        p = torch.exp(s - shift)
        l = c * l + p.sum(dim=-1, keepdim=True)
        a = c * a + p @ v[:, :, start:stop].to(acc)
        m = m_new
    out = a / torch.where(l > 0, l, torch.ones_like(l))
    return out.to(q.dtype)
""",
        "only the keys are tiled (no query tiles), running state for all rows",
    ),
    Alternative(
        "tiled_query_and_key_tiles",
        "tiled",
        """def tiled_attention(q, k, v, causal=False, block_size=128):
    # Query tiles (outer) and key tiles (inner); causal pairs above the diagonal are skipped.
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    T_q, T_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    offset = T_k - T_q
    rows = []
    for i0 in range(0, T_q, block_size):
        i1 = min(i0 + block_size, T_q)
        q_tile = q[..., i0:i1, :].to(acc) / math.sqrt(d)
        last_visible = offset + i1 - 1 if causal else T_k - 1
        run_max = run_sum = run_out = None
        for j0 in range(0, last_visible + 1, block_size):
            j1 = min(j0 + block_size, T_k)
            s = torch.matmul(q_tile, k[..., j0:j1, :].to(acc).mT)
            if causal and j1 - 1 > offset + i0:
                hidden = (torch.arange(j0, j1, device=q.device)[None, :]
                          > torch.arange(offset + i0, offset + i1, device=q.device)[:, None])
                s = s.masked_fill(hidden, -math.inf)
            tile_max = s.amax(-1, keepdim=True)
            new_max = tile_max if run_max is None else torch.maximum(run_max, tile_max)
            safe = torch.where(new_max == -math.inf, torch.zeros_like(new_max), new_max)
            p = torch.exp(s - safe)
            pv = torch.matmul(p, v[..., j0:j1, :].to(acc))
            if run_max is None:
                run_sum, run_out = p.sum(-1, keepdim=True), pv
            else:
                c = torch.exp(run_max - safe)
                run_sum = run_sum * c + p.sum(-1, keepdim=True)
                run_out = run_out * c + pv
            run_max = new_max
        rows.append(run_out / run_sum.clamp_min(torch.finfo(acc).tiny))
    return torch.cat(rows, dim=-2).to(q.dtype)
""",
        "query tiles outside, key tiles inside, causal tiles skipped, running state started from the first tile",
    ),
    Alternative(
        "flash_fa2_order",
        "flash",
        '''class FlashAttention(torch.autograd.Function):
    """Attention whose backward pass recomputes the tiles of P from the saved log-sum-exp.

    Backward in FlashAttention-2's order: key tiles outside, query tiles inside."""

    @staticmethod
    def _hidden(i0, i1, j0, j1, offset, device):
        rows = torch.arange(i0, i1, device=device).unsqueeze(-1) + offset
        cols = torch.arange(j0, j1, device=device).unsqueeze(0)
        return cols > rows

    @staticmethod
    def forward(ctx, q, k, v, causal, block_size):
        T_q, T_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
        offset = T_k - T_q
        scale = d ** -0.5
        out = torch.empty_like(q)
        lse = torch.empty(q.shape[:-1], dtype=q.dtype, device=q.device)
        for i0 in range(0, T_q, block_size):
            i1 = min(T_q, i0 + block_size)
            qi = q[:, :, i0:i1] * scale
            m = torch.full(qi.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
            l = torch.zeros_like(m)
            acc = torch.zeros(qi.shape[:-1] + (v.shape[-1],), dtype=q.dtype, device=q.device)
            j_end = min(T_k, offset + i1) if causal else T_k
            for j0 in range(0, j_end, block_size):
                j1 = min(T_k, j0 + block_size)
                s = qi @ k[:, :, j0:j1].transpose(-2, -1)
                if causal and j1 - 1 > offset + i0:
                    s.masked_fill_(FlashAttention._hidden(i0, i1, j0, j1, offset, q.device), -math.inf)
                m_new = torch.maximum(m, s.amax(-1, keepdim=True))
                ref = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
                p = torch.exp(s - ref)
                c = torch.exp(m - ref)
                l.mul_(c).add_(p.sum(-1, keepdim=True))
                acc.mul_(c).add_(p @ v[:, :, j0:j1])
                m = m_new
            out[:, :, i0:i1] = acc / l
            lse[:, :, i0:i1] = (m + torch.log(l)).squeeze(-1)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal = causal
        ctx.block_size = block_size
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        causal, bs = ctx.causal, ctx.block_size
        T_q, T_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
        offset = T_k - T_q
        scale = d ** -0.5
        D = (grad_out * out).sum(-1)
        dq = torch.zeros_like(q)
        dk = torch.zeros_like(k)
        dv = torch.zeros_like(v)
        for j0 in range(0, T_k, bs):
            j1 = min(T_k, j0 + bs)
            kj, vj = k[:, :, j0:j1], v[:, :, j0:j1]
            dk_j = torch.zeros_like(kj)
            dv_j = torch.zeros_like(vj)
            # With the causal mask, query i sees key j when j <= offset + i: skip the query
            # tiles that end before the first key of this tile.
            i_start = 0
            if causal:
                i_start = max(0, j0 - offset) // bs * bs
            for i0 in range(i_start, T_q, bs):
                i1 = min(T_q, i0 + bs)
                if causal and j0 > offset + i1 - 1:
                    continue
                qi, doi = q[:, :, i0:i1], grad_out[:, :, i0:i1]
                s = (qi @ kj.transpose(-2, -1)) * scale
                if causal and j1 - 1 > offset + i0:
                    s = s.masked_fill(FlashAttention._hidden(i0, i1, j0, j1, offset, q.device), -math.inf)
                p = torch.exp(s - lse[:, :, i0:i1, None])
                dv_j += p.transpose(-2, -1) @ doi
                dp = doi @ vj.transpose(-2, -1)
                ds = p * (dp - D[:, :, i0:i1, None])
                dq[:, :, i0:i1] += (ds @ kj) * scale
                dk_j += (ds.transpose(-2, -1) @ qi) * scale
            dk[:, :, j0:j1] = dk_j
            dv[:, :, j0:j1] = dv_j
        return dq, dk, dv, None, None


def flash_attention(q, k, v, causal=False, block_size=64):
    """Attention with FlashAttention's forward and backward passes (see FlashAttention)."""
    return FlashAttention.apply(q, k, v, causal, block_size)
''',
        "backward with key tiles outside and query tiles inside (FlashAttention-2 order), in-place accumulation in the forward",
    ),
    Alternative(
        "flash_running_lse",
        "flash",
        '''def _causal_hidden(i0, i1, j0, j1, offset, device):
    """True where query i0 + a (at position offset + i0 + a) may not see key j0 + b."""
    q_pos = torch.arange(offset + i0, offset + i1, device=device)
    k_pos = torch.arange(j0, j1, device=device)
    return k_pos[None, :] > q_pos[:, None]


class FlashAttention(torch.autograd.Function):
    """Attention whose backward pass recomputes the tiles of P from the saved log-sum-exp.

    The forward keeps a running log-sum-exp and an already normalised output per row
    (instead of a running max and sum): o <- o * exp(L - L') + exp(S_J - L') V_J."""

    @staticmethod
    def forward(ctx, q, k, v, causal, block_size):
        T_q, T_k = q.size(2), k.size(2)
        offset = T_k - T_q
        scale = 1.0 / math.sqrt(q.size(3))
        outs, lses = [], []
        for i0 in range(0, T_q, block_size):
            i1 = min(i0 + block_size, T_q)
            q_i = q[:, :, i0:i1]
            L = torch.full(q_i.shape[:3], float("-inf"), dtype=q.dtype, device=q.device)
            o = torch.zeros_like(q_i[..., :1]).expand(*q_i.shape[:3], v.size(3)).clone()
            stop = min(T_k, offset + i1) if causal else T_k
            for j0 in range(0, stop, block_size):
                j1 = min(j0 + block_size, T_k)
                s = torch.einsum("bhqd,bhkd->bhqk", q_i, k[:, :, j0:j1]) * scale
                if causal:
                    s = s.masked_fill(_causal_hidden(i0, i1, j0, j1, offset, q.device), float("-inf"))
                L_new = torch.logaddexp(L, torch.logsumexp(s, dim=-1))
                L_ref = torch.where(torch.isinf(L_new), torch.zeros_like(L_new), L_new)
                o = o * torch.exp(L - L_ref).unsqueeze(-1) + torch.exp(s - L_ref.unsqueeze(-1)) @ v[:, :, j0:j1]
                L = L_new
            outs.append(o)
            lses.append(L)
        out = torch.cat(outs, dim=2)
        lse = torch.cat(lses, dim=2)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.block_size = causal, block_size
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        causal, block = ctx.causal, ctx.block_size
        T_q, T_k = q.size(2), k.size(2)
        offset = T_k - T_q
        scale = 1.0 / math.sqrt(q.size(3))
        delta = torch.einsum("bhqd,bhqd->bhq", grad_out, out)
        dq = torch.zeros_like(q)
        dk = torch.zeros_like(k)
        dv = torch.zeros_like(v)
        for i0 in range(0, T_q, block):
            i1 = min(i0 + block, T_q)
            q_i, do_i = q[:, :, i0:i1], grad_out[:, :, i0:i1]
            lse_i, delta_i = lse[:, :, i0:i1, None], delta[:, :, i0:i1, None]
            stop = min(T_k, offset + i1) if causal else T_k
            for j0 in range(0, stop, block):
                j1 = min(j0 + block, T_k)
                k_j, v_j = k[:, :, j0:j1], v[:, :, j0:j1]
                s = torch.einsum("bhqd,bhkd->bhqk", q_i, k_j) * scale
                if causal:
                    s = s.masked_fill(_causal_hidden(i0, i1, j0, j1, offset, q.device), float("-inf"))
                p = torch.exp(s - lse_i)
                dv[:, :, j0:j1] += torch.einsum("bhqk,bhqd->bhkd", p, do_i)
                ds = p * (torch.einsum("bhqd,bhkd->bhqk", do_i, v_j) - delta_i)
                dq[:, :, i0:i1] += torch.einsum("bhqk,bhkd->bhqd", ds, k_j) * scale
                dk[:, :, j0:j1] += torch.einsum("bhqk,bhqd->bhkd", ds, q_i) * scale
        return dq, dk, dv, None, None


def flash_attention(q, k, v, causal=False, block_size=64):
    """Attention with FlashAttention's forward and backward passes (see FlashAttention)."""
    return FlashAttention.apply(q, k, v, causal, block_size)
''',
        "the forward keeps a running log-sum-exp and a normalised output (logaddexp) instead of m and l; einsum everywhere",
    ),
    Alternative(
        "kv_doubling_buffer",
        "kv_cache",
        '''class KVCache:
    """Keys (after RoPE) and values of the tokens seen so far, for one attention layer.
    self.k, self.v: None while empty, else tensors of shape (B, num_kv_heads, T_cached, head_dim).

    Stored in a preallocated buffer that doubles when full (amortised O(1) copying per
    token, as a list grows); self.k and self.v are views of its filled part."""

    def __init__(self):
        self.k = None
        self.v = None
        self._kbuf = None
        self._vbuf = None

    def __len__(self):
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k_new, v_new):
        used = len(self)
        need = used + k_new.shape[-2]
        if self._kbuf is None or need > self._kbuf.shape[-2]:
            capacity = max(need, 2 * used, 16)
            kbuf = k_new.new_empty(*k_new.shape[:-2], capacity, k_new.shape[-1])
            vbuf = v_new.new_empty(*v_new.shape[:-2], capacity, v_new.shape[-1])
            if used:
                kbuf[..., :used, :] = self.k
                vbuf[..., :used, :] = self.v
            self._kbuf, self._vbuf = kbuf, vbuf
        self._kbuf[..., used:need, :] = k_new
        self._vbuf[..., used:need, :] = v_new
        self.k = self._kbuf[..., :need, :]
        self.v = self._vbuf[..., :need, :]
        return self.k, self.v


def decode_step(attn, x_new, cache):
    B, T_new, _ = x_new.shape
    H, H_kv, d = attn.num_heads, attn.num_kv_heads, attn.head_dim
    start = len(cache)
    positions = torch.arange(start, start + T_new, device=x_new.device)
    cos, sin = rope_cos_sin(positions, d, attn.rope_base)
    q = attn.q_proj(x_new).view(B, T_new, H, d).transpose(1, 2)
    k = attn.k_proj(x_new).view(B, T_new, H_kv, d).transpose(1, 2)
    v = attn.v_proj(x_new).view(B, T_new, H_kv, d).transpose(1, 2)
    k_all, v_all = cache.append(apply_rope(k, cos, sin), v)
    rep = H // H_kv
    o = attention(apply_rope(q, cos, sin), repeat_kv(k_all, rep), repeat_kv(v_all, rep), causal=True)
    return attn.o_proj(o.transpose(1, 2).reshape(B, T_new, H * d))
''',
        "a preallocated buffer that doubles, k and v views of it; decode via repeat_kv + attention()",
    ),
    Alternative(
        "kv_concat_grouped",
        "kv_cache",
        '''class KVCache:
    """Keys (after RoPE) and values of the tokens seen so far, for one attention layer.
    self.k, self.v: None while empty, else tensors of shape (B, num_kv_heads, T_cached, head_dim)."""

    def __init__(self):
        self.k = None
        self.v = None

    def __len__(self):
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k_new, v_new):
        old_k = [] if self.k is None else [self.k]
        old_v = [] if self.v is None else [self.v]
        self.k = torch.concat(old_k + [k_new], dim=2)
        self.v = torch.concat(old_v + [v_new], dim=2)
        return self.k, self.v


def decode_step(attn, x_new, cache):
    # Grouped queries against the cached kv heads by broadcasting (no repeat_kv copy).
    B, T_new, _ = x_new.shape
    G, R, d = attn.num_kv_heads, attn.num_heads // attn.num_kv_heads, attn.head_dim
    past = len(cache)
    cos, sin = rope_cos_sin(torch.arange(past, past + T_new, device=x_new.device), d, attn.rope_base)
    q = apply_rope(attn.q_proj(x_new).unflatten(-1, (attn.num_heads, d)).transpose(1, 2), cos, sin)
    k = apply_rope(attn.k_proj(x_new).unflatten(-1, (G, d)).transpose(1, 2), cos, sin)
    v = attn.v_proj(x_new).unflatten(-1, (G, d)).transpose(1, 2)
    keys, values = cache.append(k, v)
    T = keys.shape[2]
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    s = torch.einsum("bgrqd,bgkd->bgrqk", q.unflatten(1, (G, R)).to(work), keys.to(work)) / math.sqrt(d)
    future = torch.arange(T, device=x_new.device)[None, :] > torch.arange(past, past + T_new, device=x_new.device)[:, None]
    p = torch.softmax(s.masked_fill(future, float("-inf")), dim=-1)
    o = torch.einsum("bgrqk,bgkd->bgrqd", p, values.to(work)).to(q.dtype)
    return attn.o_proj(o.flatten(1, 2).transpose(1, 2).flatten(2))
''',
        "torch.concat of lists; decode by grouped-query einsum without repeat_kv, causal mask by positions",
    ),
]

DEFECTS: list = []
