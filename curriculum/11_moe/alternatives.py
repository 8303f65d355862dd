"""Blind alternatives for unit 11 (moe): correct answers written from the released notebook only."""

from graders.authoring.alternatives import Alternative

ROUTERS_MANUAL = '''
def route_topk_softmax(logits, k):
    """topk on the float32 logits, then a hand-written stable softmax over the k chosen."""
    lf = logits.to(torch.float32)
    top, experts = torch.topk(lf, k, dim=-1)
    shifted = top - top.max(dim=-1, keepdim=True).values
    ex = shifted.exp()
    weights = ex / ex.sum(dim=-1, keepdim=True)
    return weights, experts.to(torch.int64)


def route_softmax_topk(logits, k, norm_topk_prob):
    """Hand-written float32 softmax via logsumexp, topk, optional renormalisation."""
    lf = logits.float()
    probs = torch.exp(lf - torch.logsumexp(lf, dim=-1, keepdim=True))
    weights, experts = probs.topk(k, dim=-1)
    if norm_topk_prob:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights.to(logits.dtype), experts.long()
'''

ROUTERS_RENORM = '''
def route_topk_softmax(logits, k):
    """Softmax over all E in float32, topk, renormalise (the text: equal to top-k-then-softmax)."""
    p = F.softmax(logits, dim=-1, dtype=torch.float32)
    w, e = torch.topk(p, k)
    return w / w.sum(-1, keepdim=True), e


def route_softmax_topk(logits, k, norm_topk_prob):
    p = F.softmax(logits, dim=-1, dtype=torch.float32)
    w, e = torch.topk(p, k)
    if norm_topk_prob:
        w = w / w.sum(-1, keepdim=True)
    return w.type_as(logits), e
'''

LAYER_LOOP = '''
def moe_experts(x, weights, experts, gate_up_proj, down_proj):
    """Loop over experts with a boolean mask per expert (no sort); float32 accumulation buffer."""
    T, k = experts.shape
    E = gate_up_proj.shape[0]
    inter = down_proj.shape[-1]
    acc_dtype = torch.promote_types(x.dtype, weights.dtype)
    y = torch.zeros(T, x.shape[-1], dtype=acc_dtype, device=x.device)
    for e in range(E):
        token_idx, slot_idx = torch.nonzero(experts == e, as_tuple=True)
        if token_idx.numel() == 0:
            continue
        xe = x[token_idx]
        h = xe @ gate_up_proj[e].t()
        h = F.silu(h[:, :inter]) * h[:, inter:]
        out = h @ down_proj[e].t()
        w = weights[token_idx, slot_idx].unsqueeze(-1)
        y = y.index_add(0, token_idx, out * w)
    return y.to(x.dtype)
'''

LAYER_UNPERMUTE = '''
def moe_experts(x, weights, experts, gate_up_proj, down_proj):
    """Stable sort, split into blocks, F.linear per block; combine by un-permuting into a
    (T*k, H) buffer and summing over k (no index_add)."""
    T, k = experts.shape
    E = gate_up_proj.shape[0]
    flat = experts.reshape(-1)
    sorted_e, order = torch.sort(flat, stable=True)
    counts = torch.bincount(flat, minlength=E).tolist()
    xs = x[order // k]
    outs = []
    for e, block in enumerate(torch.split(xs, counts)):
        if counts[e] == 0:
            continue
        gate, up = F.linear(block, gate_up_proj[e]).chunk(2, dim=-1)
        outs.append(F.linear(F.silu(gate) * up, down_proj[e]))
    ys = torch.cat(outs, dim=0) if outs else xs.new_zeros(0, x.shape[-1])
    ws = weights.reshape(-1)[order].unsqueeze(-1)
    prod = ys * ws
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    per_slot = prod[inverse].view(T, k, x.shape[-1])
    return per_slot.sum(dim=1).to(x.dtype)
'''

AUX_ONEHOT = '''
def switch_aux_loss(router_logits, k):
    """Per-layer loop; f from one_hot counts, P from a running sum."""
    E = router_logits[0].shape[-1]
    counts = torch.zeros(E, dtype=torch.float32, device=router_logits[0].device)
    prob_sum = torch.zeros(E, dtype=torch.float32, device=router_logits[0].device)
    n = 0
    for layer in router_logits:
        p = torch.softmax(layer.float(), dim=-1)
        _, chosen = torch.topk(p, k, dim=-1)
        counts = counts + F.one_hot(chosen.reshape(-1), E).sum(0).float()
        prob_sum = prob_sum + p.sum(0)
        n += layer.shape[0]
    f = counts / n
    P = prob_sum / n
    return E * torch.dot(f, P)


def router_z_loss(router_logits):
    """logsumexp by hand with the max subtracted."""
    l = router_logits.float().reshape(-1, router_logits.shape[-1])
    m = l.max(dim=-1, keepdim=True).values
    lse = m.squeeze(-1) + torch.log(torch.exp(l - m).sum(-1))
    return (lse * lse).mean()
'''

AUX_CAT_BINCOUNT = '''
def switch_aux_loss(router_logits, k):
    """All layers concatenated first; f from bincount."""
    logits = torch.cat([l.to(torch.float32) for l in router_logits], dim=0)
    E = logits.shape[-1]
    p = logits.softmax(-1)
    chosen = p.topk(k, dim=-1).indices
    f = torch.bincount(chosen.flatten(), minlength=E).to(torch.float32) / logits.shape[0]
    P = p.mean(0)
    return (f * P).sum() * E


def router_z_loss(router_logits):
    return torch.logsumexp(router_logits.to(torch.float32), dim=-1).pow(2).mean()
'''

AUX_CAT = '''
def switch_aux_loss(router_logits, k):
    """All layers concatenated first; f from scatter_add_."""
    logits = torch.cat([l.to(torch.float32) for l in router_logits], dim=0)
    E = logits.shape[-1]
    p = logits.softmax(-1)
    chosen = p.topk(k, dim=-1).indices
    counts = torch.zeros(E, dtype=torch.float32, device=logits.device)
    counts.scatter_add_(0, chosen.flatten(), torch.ones(chosen.numel(), device=logits.device))
    f = counts / logits.shape[0]
    P = p.mean(0)
    return (f * P).sum() * E


def router_z_loss(router_logits):
    return torch.logsumexp(router_logits.to(torch.float32), dim=-1).pow(2).mean()
'''

BIAS_GATHER = '''
def route_sigmoid_bias(logits, bias, k, norm_topk_prob=True, scaling=1.0):
    """topk on the biased scores for indices only, gather the unbiased scores."""
    s = torch.sigmoid(logits.float())
    experts = torch.topk(s + bias, k, dim=-1).indices
    w = torch.gather(s, 1, experts)
    if norm_topk_prob:
        w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
    w = w * scaling
    return w, experts


def update_bias(bias, tokens_per_expert, gamma):
    """sign written with two comparisons."""
    c = tokens_per_expert.to(torch.float32)
    mean = c.mean()
    step = (mean > c).to(torch.float32) - (mean < c).to(torch.float32)
    return bias + gamma * step
'''

BIAS_CLONE = '''
def route_sigmoid_bias(logits, bias, k, norm_topk_prob=True, scaling=1.0):
    scores = logits.to(torch.float32).sigmoid()
    _, idx = (scores + bias.unsqueeze(0)).topk(k)
    weights = scores.gather(-1, idx)
    if norm_topk_prob:
        denom = weights.sum(-1, keepdim=True) + 1e-20
        weights = weights / denom
    return weights * scaling, idx


def update_bias(bias, tokens_per_expert, gamma):
    """A clone updated in place."""
    c = tokens_per_expert.double()
    new = bias.clone().to(torch.float32)
    new.add_(gamma * torch.sign(c.mean() - c).to(torch.float32))
    return new
'''

CAPACITY_LOOP = '''
def expert_capacity(num_tokens, k, num_experts, capacity_factor):
    """ceil written as minus floor of minus."""
    return int(-math.floor(-(capacity_factor * num_tokens * k / num_experts)))


def keep_within_capacity(experts, num_experts, capacity):
    """Plain Python loops over columns, then tokens, with a counter per expert."""
    T, k = experts.shape
    used = [0] * num_experts
    keep = [[False] * k for _ in range(T)]
    rows = experts.tolist()
    for j in range(k):
        for t in range(T):
            e = rows[t][j]
            if used[e] < capacity:
                keep[t][j] = True
                used[e] += 1
    return torch.tensor(keep, dtype=torch.bool, device=experts.device)
'''

CAPACITY_CUMSUM = '''
def expert_capacity(num_tokens, k, num_experts, capacity_factor):
    return math.ceil(capacity_factor * num_tokens * k / num_experts)


def keep_within_capacity(experts, num_experts, capacity):
    """Column-major flatten, one_hot, cumsum: each slot's position in its expert's queue."""
    T, k = experts.shape
    flat = experts.t().reshape(-1)  # column 0 in token order, then column 1, ...
    onehot = F.one_hot(flat, num_experts)
    position = (onehot.cumsum(dim=0) * onehot).sum(dim=-1) - 1
    keep = (position < capacity).reshape(k, T).t()
    return keep.contiguous()
'''

COUNTS_IDS = '''
def moe_counts(model, ep_size=1, bytes_per_param=2):
    """Deduplicate by id() over named_parameters(remove_duplicate=False); integer arithmetic."""
    k = model.config.num_experts_per_tok
    seen = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in seen:
            seen[id(p)] = (name, p)
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is emb
    total = routed = active = active_mat = 0
    for name, p in seen.values():
        n = p.numel()
        total += n
        if ".experts." in name:
            E = p.shape[0]
            routed += n
            a = n // E * k
        else:
            a = n
        active += a
        if p.dim() >= 2:
            active_mat += a
    flops = 2 * (active_mat - emb.numel() + (head.weight.numel() if tied else 0))
    bytes_per_gpu = bytes_per_param * (total - routed + routed // ep_size)
    return {"total": total, "active": active, "flops_per_token": flops, "bytes_per_gpu": bytes_per_gpu}
'''

COUNTS_MODULES = '''
def moe_counts(model, ep_size=1, bytes_per_param=2):
    """Walk modules named `experts`; everything else from model.parameters()."""
    k = model.config.num_experts_per_tok
    params = list(model.parameters())  # shared tensors once
    total = sum(p.numel() for p in params)
    matrix = sum(p.numel() for p in params if p.ndim > 1)
    routed = 0
    routed_active = 0
    counted = set()
    for mname, module in model.named_modules():
        if mname.split(".")[-1] != "experts":
            continue
        for p in module.parameters():
            if id(p) in counted:
                continue
            counted.add(id(p))
            routed += p.numel()
            routed_active += p.numel() * k // p.shape[0]
    active = total - routed + routed_active
    # every routed expert tensor is a matrix (E, ...), so the same saving applies to matrices
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    tied_extra = out.weight.numel() if (out is not None and out.weight is emb) else 0
    flops = 2 * (matrix - routed + routed_active - emb.numel() + tied_extra)
    return {
        "total": int(total),
        "active": int(active),
        "flops_per_token": int(flops),
        "bytes_per_gpu": int(bytes_per_param * (total - routed + routed // ep_size)),
    }
'''

EP_PEREXPERT = '''
def expert_parallel_experts(x, weights, experts, gate_up_local, down_local):
    """Counts exchanged per (rank, local expert); the receiver rebuilds the expert id of every
    row; the expert runs with weight 1 and the routing weight is applied back home."""
    N = dist.get_world_size()
    rank = dist.get_rank()
    P = gate_up_local.shape[0]
    T, k = experts.shape
    H = x.shape[-1]
    flat = experts.reshape(-1)
    order = torch.argsort(flat, stable=True)
    tok = order // k
    per_expert = torch.bincount(flat, minlength=N * P).view(N, P)
    recv_per_expert = torch.empty_like(per_expert)
    dist.all_to_all_single(recv_per_expert, per_expert)
    in_splits = per_expert.sum(1).tolist()
    out_splits = recv_per_expert.sum(1).tolist()
    send = x[tok]
    recv = dnf.all_to_all_single(x.new_empty(sum(out_splits), H), send, out_splits, in_splits)
    local_ids = torch.repeat_interleave(torch.arange(P, device=x.device).repeat(N),
                                        recv_per_expert.reshape(-1))
    ones = torch.ones(recv.shape[0], 1, dtype=torch.float32, device=x.device)
    if recv.shape[0]:
        done = moe_experts(recv, ones, local_ids.unsqueeze(-1), gate_up_local, down_local)
    else:  # nothing to compute, but the combine's backward must still be reached on every rank
        done = recv.clone()
    back = dnf.all_to_all_single(x.new_empty(sum(in_splits), H), done, in_splits, out_splits)
    w = weights.reshape(-1)[order].unsqueeze(-1)
    acc = torch.promote_types(x.dtype, weights.dtype)
    y = torch.zeros(T, H, dtype=acc, device=x.device).index_add(0, tok, back * w)
    rows = (sum(in_splits) - in_splits[rank]) + (sum(out_splits) - out_splits[rank])
    return y.to(x.dtype), int(rows * H * x.element_size())
'''

EP_IDS = '''
def expert_parallel_experts(x, weights, experts, gate_up_local, down_local):
    """Rows grouped by destination rank with a Python loop; per-rank counts exchanged, then the
    global expert id of every row sent along (dist.all_to_all_single on an int64 tensor); the
    receiver runs its experts with moe_experts (k = 1, weight 1) and weights are applied at home."""
    world = dist.get_world_size()
    me = dist.get_rank()
    P = gate_up_local.shape[0]
    T, k = experts.shape
    H = x.shape[1]
    dest = experts // P  # (T, k) rank of each slot
    tok_parts, slot_parts = [], []
    for r in range(world):
        t_idx, s_idx = torch.where(dest == r)
        tok_parts.append(t_idx)
        slot_parts.append(s_idx)
    tok = torch.cat(tok_parts)
    slot = torch.cat(slot_parts)
    send_counts = torch.tensor([len(t) for t in tok_parts], dtype=torch.int64)
    recv_counts = torch.empty_like(send_counts)
    dist.all_to_all_single(recv_counts, send_counts)
    in_splits, out_splits = send_counts.tolist(), recv_counts.tolist()
    ids_send = experts[tok, slot].contiguous()
    ids_recv = torch.empty(sum(out_splits), dtype=torch.int64, device=x.device)
    dist.all_to_all_single(ids_recv, ids_send, out_splits, in_splits)
    recv = dnf.all_to_all_single(x.new_empty(sum(out_splits), H), x[tok], out_splits, in_splits)
    local = (ids_recv - me * P).unsqueeze(1)
    one = torch.ones(local.shape[0], 1, device=x.device)
    out = moe_experts(recv, one, local, gate_up_local, down_local) if recv.shape[0] else recv.clone()
    back = dnf.all_to_all_single(x.new_empty(sum(in_splits), H), out, in_splits, out_splits)
    contrib = back * weights[tok, slot].unsqueeze(1)
    y = torch.zeros(T, H, dtype=contrib.dtype, device=x.device)
    y = y.index_add(0, tok, contrib)
    others_out = sum(in_splits) - in_splits[me]
    others_in = sum(out_splits) - out_splits[me]
    return y.to(x.dtype), (others_out + others_in) * H * x.element_size()
'''

COUNTS_CONFIG = '''
def moe_counts(model, ep_size=1, bytes_per_param=2):
    """Tying read from the config; sums over named_parameters() (deduplicated by default)."""
    k = model.config.num_experts_per_tok
    total = routed = routed_active = mats = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if p.ndim >= 2:
            mats += p.numel()
        if ".experts." in name:
            routed += p.numel()
            routed_active += p.numel() * k // p.shape[0]
    emb = model.get_input_embeddings().weight.numel()
    head = emb if getattr(model.config, "tie_word_embeddings", False) else 0
    return {
        "total": total,
        "active": total - routed + routed_active,
        "flops_per_token": 2 * (mats - routed + routed_active - emb + head),
        "bytes_per_gpu": bytes_per_param * (total - routed + routed // ep_size),
    }
'''

ALTERNATIVES = [
    Alternative("routers_manual", "routers", ROUTERS_MANUAL,
                "hand-written stable softmax / logsumexp instead of torch.softmax"),
    Alternative("routers_renorm", "routers", ROUTERS_RENORM,
                "Mixtral router as softmax-then-topk renormalised, the equality the text proves"),
    Alternative("layer_loop", "layer", LAYER_LOOP,
                "per-expert mask loop (transformers' eager style), out-of-place index_add"),
    Alternative("layer_unpermute", "layer", LAYER_UNPERMUTE,
                "stable sort + F.linear blocks; combine by inverse permutation and sum over k"),
    Alternative("aux_onehot", "aux_loss", AUX_ONEHOT, "per-layer loop, one_hot counts, manual logsumexp"),
    Alternative("aux_cat", "aux_loss", AUX_CAT, "concatenate layers, bincount, torch.logsumexp"),
    Alternative("aux_bincount", "aux_loss", AUX_CAT_BINCOUNT,
                "torch.bincount counts (no meta kernel: the meta check now accepts NotImplementedError)"),
    Alternative("bias_gather", "bias", BIAS_GATHER, "gather; sign from two comparisons"),
    Alternative("bias_clone", "bias", BIAS_CLONE, "Tensor.topk; clone + in-place add in float64 counts"),
    Alternative("capacity_loop", "capacity", CAPACITY_LOOP, "Python loops, -floor(-x)"),
    Alternative("capacity_cumsum", "capacity", CAPACITY_CUMSUM, "column-major one_hot cumsum"),
    Alternative("counts_ids", "counts", COUNTS_IDS, "dedup by id, integer arithmetic"),
    Alternative("counts_modules", "counts", COUNTS_MODULES, "walk modules named experts"),
    Alternative("counts_config", "counts", COUNTS_CONFIG, "tying from config.tie_word_embeddings"),
    Alternative("ep_perexpert", "expert_parallel", EP_PEREXPERT,
                "per-(rank, expert) count exchange; weights applied after the combine"),
    Alternative("ep_ids", "expert_parallel", EP_IDS, "per-rank counts, expert ids sent by all_to_all_single"),
]

# aux_bincount (torch.bincount has no meta kernel) is accepted since the fix
