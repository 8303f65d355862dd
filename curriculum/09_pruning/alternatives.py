"""Blind alternatives for unit 09 (pruning): correct answers written from the released notebook only."""

from graders.authoring.alternatives import Alternative, Defect

MAGNITUDE_ARGSORT = '''
def magnitude_mask(weight, sparsity):
    """Stable argsort of |w| (float32); the first k positions are pruned."""
    k = round(sparsity * weight.numel())
    flat = weight.detach().abs().reshape(-1).to(torch.float32)
    order = torch.argsort(flat, stable=True)
    mask = torch.ones(flat.shape, dtype=torch.bool, device=weight.device)
    mask[order[:k]] = False
    return mask.view(weight.shape)


def global_magnitude_masks(weights, sparsity):
    """Concatenate, stable argsort, split back."""
    names = list(weights)
    flats = [weights[n].detach().abs().reshape(-1).float() for n in names]
    allw = torch.cat(flats)
    k = round(sparsity * allw.numel())
    order = torch.argsort(allw, stable=True)
    keep = torch.ones_like(allw, dtype=torch.bool)
    keep[order[:k]] = False
    out = {}
    start = 0
    for n, f in zip(names, flats):
        out[n] = keep[start:start + f.numel()].view(weights[n].shape)
        start += f.numel()
    return out
'''

MAGNITUDE_TOPKEEP = '''
def magnitude_mask(weight, sparsity):
    """Select the n - k largest to keep with topk (largest=True), scatter True."""
    n = weight.numel()
    k = round(sparsity * n)
    scores = weight.detach().float().abs().flatten()
    keep_idx = torch.topk(scores, n - k, largest=True).indices
    mask = torch.zeros(n, dtype=torch.bool, device=weight.device)
    mask.scatter_(0, keep_idx, True)
    return mask.reshape(weight.shape)


def global_magnitude_masks(weights, sparsity):
    """topk(largest=False) over the concatenation, then torch.split."""
    shapes = [w.shape for w in weights.values()]
    sizes = [w.numel() for w in weights.values()]
    allw = torch.cat([w.detach().float().abs().flatten() for w in weights.values()])
    k = round(sparsity * allw.numel())
    mask = torch.ones(allw.numel(), dtype=torch.bool, device=allw.device)
    if k > 0:
        mask[torch.topk(allw, k, largest=False).indices] = False
    parts = torch.split(mask, sizes)
    return {name: part.reshape(shape) for name, part, shape in zip(weights.keys(), parts, shapes)}
'''

APPLY_HOLD = '''
def apply_masks(model, masks):
    """Zero and hold: zero the weights, mask their gradients with a tensor hook, and re-zero
    in a forward pre-hook (so the forward always uses weight * mask)."""
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        module = modules[name]
        m = mask.to(device=module.weight.device, dtype=torch.bool)
        with torch.no_grad():
            module.weight.masked_fill_(~m, 0.0)
        module.weight.register_hook(lambda g, m=m: g.masked_fill(~m, 0.0))

        def pre_hook(mod, args, m=m):
            with torch.no_grad():
                mod.weight.masked_fill_(~m, 0.0)

        module.register_forward_pre_hook(pre_hook)
    return model
'''

APPLY_PARAMETRIZE = '''
import torch.nn.utils.parametrize as parametrize


class _Mask(nn.Module):
    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w):
        return w * self.mask.to(w.dtype)


def apply_masks(model, masks):
    """torch.nn.utils.parametrize: weight = original * mask at every access."""
    for name, module in model.named_modules():
        if name in masks:
            mask = masks[name].to(module.weight.device).bool()
            with torch.no_grad():
                module.weight.mul_(mask)  # the stored original starts pruned too
            parametrize.register_parametrization(module, "weight", _Mask(mask))
    return model
'''

WANDA_LOOP = '''
def input_norms(model, ids, names):
    """Sum of squares accumulated in float64 per hook call, sqrt at the end; try/finally."""
    modules = dict(model.named_modules())
    sums = {}
    handles = []

    def make_hook(name):
        def hook(module, inputs, output):
            x = inputs[0].detach()
            sq = x.reshape(-1, x.shape[-1]).double().pow(2).sum(dim=0)
            sums[name] = sums[name] + sq if name in sums else sq
        return hook

    try:
        for name in names:
            handles.append(modules[name].register_forward_hook(make_hook(name)))
        with torch.no_grad():
            model(ids)
    finally:
        for h in handles:
            h.remove()
    return {name: sums[name].sqrt().to(torch.float32) for name in names}


def wanda_mask(weight, norms, sparsity):
    """Row by row: sort each row's float32 scores, prune the first k."""
    rows, cols = weight.shape
    k = round(sparsity * cols)
    scores = weight.detach().float().abs() * norms.detach().float().to(weight.device).unsqueeze(0)
    mask = torch.ones(rows, cols, dtype=torch.bool, device=weight.device)
    for i in range(rows):
        order = torch.sort(scores[i], stable=True).indices
        mask[i, order[:k]] = False
    return mask
'''

WANDA_VEC = '''
def input_norms(model, ids, names):
    """torch.linalg.vector_norm per call, combined as sqrt(a^2 + b^2); handles removed in finally."""
    wanted = set(names)
    acc = {}
    handles = []

    def hook_for(name):
        def hook(mod, inp, out):
            x = inp[0]
            nrm = torch.linalg.vector_norm(x.float().flatten(0, -2), ord=2, dim=0)
            acc[name] = torch.hypot(acc[name], nrm) if name in acc else nrm
        return hook

    try:
        for name, mod in model.named_modules():
            if name in wanted:
                handles.append(mod.register_forward_hook(hook_for(name)))
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        while handles:
            handles.pop().remove()
    return {n: acc[n].float() for n in names}


def wanda_mask(weight, norms, sparsity):
    """Vectorised: topk of the smallest scores per row, scattered as False."""
    k = round(sparsity * weight.shape[1])
    score = weight.abs().float() * norms.float().to(weight.device)
    mask = torch.ones(weight.shape, dtype=torch.bool, device=weight.device)
    if k:
        idx = score.topk(k, dim=1, largest=False).indices
        mask.scatter_(1, idx, False)
    return mask
'''

NM_TOPK = '''
def nm_mask(scores, n=2, m=4):
    """Groups as a third dimension; topk(n) per group scattered True."""
    rows, cols = scores.shape
    g = scores.detach().reshape(rows, cols // m, m)
    idx = torch.topk(g, n, dim=-1).indices
    mask = torch.zeros(g.shape, dtype=torch.bool, device=scores.device).scatter(-1, idx, True)
    return mask.reshape(rows, cols)
'''

NM_RANK = '''
def nm_mask(scores, n=2, m=4):
    """Rank of each entry inside its group from a double argsort; keep the top n ranks."""
    g = scores.detach().float().unflatten(-1, (-1, m))
    rank = torch.argsort(torch.argsort(g, dim=-1, stable=True), dim=-1)  # 0 = smallest
    return (rank >= m - n).flatten(-2)
'''

COMPRESS_BOOLIDX = '''
def compress_24(weight, mask):
    """Boolean indexing (row-major, so each row in column order); codes packed by shifts."""
    rows, cols = weight.shape
    m = mask.to(torch.bool)
    values = weight[m].reshape(rows, cols // 2)
    pos = (torch.arange(cols, device=weight.device) % 4).expand(rows, cols)
    codes = pos[m].reshape(rows, cols // 8, 4).to(torch.uint8)
    packed = codes[..., 0] | (codes[..., 1] << 2) | (codes[..., 2] << 4) | (codes[..., 3] << 6)
    return values, packed.to(torch.uint8)


def decompress_24(values, packed):
    rows, half = values.shape
    shifts = torch.tensor([0, 2, 4, 6], device=packed.device, dtype=torch.uint8)
    codes = ((packed.unsqueeze(-1) >> shifts) & 3).reshape(rows, half).long()
    group = torch.arange(half, device=values.device) // 2
    col = group * 4 + codes
    dense = torch.zeros(rows, 2 * half, dtype=values.dtype, device=values.device)
    return dense.scatter(1, col, values)


def bytes_24(rows, cols, value_bytes):
    return rows * (cols // 2) * value_bytes + rows * (cols // 8)
'''

COMPRESS_SORT = '''
def compress_24(weight, mask):
    """Kept columns found per group with a stable sort of ~mask; packing by multiply and sum."""
    rows, cols = weight.shape
    gm = mask.reshape(rows, cols // 4, 4)
    # the two kept positions of each group, in increasing order
    pos = torch.sort((~gm).to(torch.int8), dim=-1, stable=True).indices[..., :2]
    base = (torch.arange(cols // 4, device=weight.device) * 4).view(1, -1, 1)
    values = torch.gather(weight, 1, (base + pos).reshape(rows, cols // 2))
    codes = pos.reshape(rows, cols // 8, 4).to(torch.int32)
    weights4 = torch.tensor([1, 4, 16, 64], dtype=torch.int32, device=weight.device)
    packed = (codes * weights4).sum(-1).to(torch.uint8)
    return values, packed


def decompress_24(values, packed):
    rows, half = values.shape
    p = packed.to(torch.int32)
    codes = torch.stack([p % 4, (p // 4) % 4, (p // 16) % 4, (p // 64) % 4], dim=-1).reshape(rows, half)
    cols = codes.long() + 4 * (torch.arange(half, device=values.device) // 2)
    out = values.new_zeros(rows, 2 * half)
    out.scatter_(1, cols, values)
    return out


def bytes_24(rows, cols, value_bytes):
    n_values = rows * cols // 2
    return int(n_values * value_bytes + n_values * 2 // 8)
'''

PRUNE_MLP_LINALG = '''
def mlp_channel_scores(mlp):
    with torch.no_grad():
        g = torch.linalg.vector_norm(mlp.gate_proj.weight.float(), dim=1)
        u = torch.linalg.vector_norm(mlp.up_proj.weight.float(), dim=1)
        d = torch.linalg.vector_norm(mlp.down_proj.weight.float(), dim=0)
        return g * u * d


def _sliced_linear(old, idx, dim):
    w = old.weight.detach()
    w = w[idx] if dim == 0 else w[:, idx]
    has_bias = old.bias is not None
    new = nn.Linear(w.shape[1], w.shape[0], bias=has_bias, dtype=w.dtype, device=w.device)
    with torch.no_grad():
        new.weight.copy_(w)
        if has_bias:
            new.bias.copy_(old.bias[idx] if dim == 0 else old.bias)
    return new


def prune_mlp_channels(model, keep):
    """topk indices sorted back to the original order; new Linear modules with copied slices."""
    for layer in model.model.layers:
        mlp = layer.mlp
        idx = torch.topk(mlp_channel_scores(mlp), keep).indices.sort().values
        mlp.gate_proj = _sliced_linear(mlp.gate_proj, idx, 0)
        mlp.up_proj = _sliced_linear(mlp.up_proj, idx, 0)
        mlp.down_proj = _sliced_linear(mlp.down_proj, idx, 1)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = keep
    model.config.intermediate_size = keep
    return model
'''

PRUNE_MLP_ARGSORT = '''
def mlp_channel_scores(mlp):
    """Norms as sqrt of sums of squares, detached."""
    g = mlp.gate_proj.weight.detach().to(torch.float32)
    u = mlp.up_proj.weight.detach().to(torch.float32)
    d = mlp.down_proj.weight.detach().to(torch.float32)
    return g.pow(2).sum(1).sqrt() * u.pow(2).sum(1).sqrt() * d.pow(2).sum(0).sqrt()


def prune_mlp_channels(model, keep):
    """argsort descending, first `keep`, then boolean channel mask; Parameters assigned."""
    for layer in model.model.layers:
        mlp = layer.mlp
        s = mlp_channel_scores(mlp)
        chosen = torch.zeros_like(s, dtype=torch.bool)
        chosen[torch.argsort(s, descending=True)[:keep]] = True
        for attr in ("gate_proj", "up_proj"):
            old = getattr(mlp, attr)
            new = nn.Linear(old.in_features, keep, bias=old.bias is not None,
                            device=old.weight.device, dtype=old.weight.dtype)
            new.weight = nn.Parameter(old.weight.detach()[chosen].clone())
            if old.bias is not None:
                new.bias = nn.Parameter(old.bias.detach()[chosen].clone())
            setattr(mlp, attr, new)
        old = mlp.down_proj
        new = nn.Linear(keep, old.out_features, bias=old.bias is not None,
                        device=old.weight.device, dtype=old.weight.dtype)
        new.weight = nn.Parameter(old.weight.detach()[:, chosen].clone())
        if old.bias is not None:
            new.bias = nn.Parameter(old.bias.detach().clone())
        mlp.down_proj = new
    model.config.intermediate_size = keep
    return model
'''

SPARSE_CLOSED = '''
def coo_bytes(rows, cols, nnz, value_bytes=4, index_bytes=8):
    return int(nnz * value_bytes + 2 * nnz * index_bytes)


def csr_bytes(rows, cols, nnz, value_bytes=4, index_bytes=8):
    return int(nnz * value_bytes + nnz * index_bytes + (rows + 1) * index_bytes)


def break_even_sparsity(rows, cols, fmt="csr", value_bytes=4, index_bytes=8):
    """Closed form: the largest nnz with per * nnz + fixed <= dense."""
    total = rows * cols
    dense = total * value_bytes
    if fmt == "csr":
        per, fixed = value_bytes + index_bytes, (rows + 1) * index_bytes
    elif fmt == "coo":
        per, fixed = value_bytes + 2 * index_bytes, 0
    else:
        raise ValueError(fmt)
    if fixed > dense:
        return 1.0
    z = total if per == 0 else min(total, (dense - fixed) // per)
    return 1 - z / total
'''

SPARSE_BISECT = '''
def coo_bytes(rows, cols, nnz, value_bytes=4, index_bytes=8):
    return nnz * (value_bytes + index_bytes + index_bytes)


def csr_bytes(rows, cols, nnz, value_bytes=4, index_bytes=8):
    return (nnz + rows + 1) * index_bytes + nnz * value_bytes


def break_even_sparsity(rows, cols, fmt="csr", value_bytes=4, index_bytes=8):
    """Bisection on nnz over the monotone byte count, using the two functions above."""
    size = {"csr": csr_bytes, "coo": coo_bytes}[fmt]
    n = rows * cols
    dense = n * value_bytes
    if size(rows, cols, 0, value_bytes, index_bytes) > dense:
        return 1.0
    lo, hi = 0, n  # lo fits
    if size(rows, cols, hi, value_bytes, index_bytes) <= dense:
        lo = hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(rows, cols, mid, value_bytes, index_bytes) <= dense:
            lo = mid
        else:
            hi = mid - 1
    return 1 - lo / n
'''

CROSSOVER_BACKWARD = '''
def crossover(sparsities, speedups):
    """Walk back from the highest sparsity while sparse keeps winning."""
    i = len(speedups)
    while i > 0 and speedups[i - 1] >= 1:
        i -= 1
    if i == len(speedups):
        return None
    return float(sparsities[i])
'''

CROSSOVER_FORWARD = '''
def crossover(sparsities, speedups):
    """First index from which every later speedup is >= 1."""
    for i, s in enumerate(sparsities):
        if all(r >= 1 for r in speedups[i:]):
            return s
    return None
'''

APPLY_PREHOOK = '''
def apply_masks(model, masks):
    """Only a forward pre-hook that zeroes the pruned weights before every forward: the forward
    uses weight * mask, and weight read after a forward is zero (gradients are not masked; a
    revived entry is re-zeroed by the next forward)."""
    for name, module in model.named_modules():
        if name not in masks:
            continue
        keep = masks[name].to(module.weight.device).bool()
        with torch.no_grad():
            module.weight.mul_(keep)

        def zero_pruned(mod, args, keep=keep):
            with torch.no_grad():
                mod.weight.mul_(keep)

        module.register_forward_pre_hook(zero_pruned)
    return model
'''

MAGNITUDE_NATIVE = '''
def magnitude_mask(weight, sparsity):
    """topk(largest=False) on |w| in the weight's own dtype, mask built with index_fill."""
    k = round(sparsity * weight.numel())
    flat = weight.detach().abs().flatten()
    drop = torch.topk(flat, k, largest=False, sorted=False).indices
    mask = torch.ones(flat.numel(), dtype=torch.bool, device=weight.device).index_fill(0, drop, False)
    return mask.view_as(weight)


def global_magnitude_masks(weights, sparsity):
    """k-th smallest value as a threshold, then exactly k entries taken strictly below it plus
    just enough of the tied ones (in order)."""
    flats = {n: w.detach().abs().flatten() for n, w in weights.items()}
    allw = torch.cat(list(flats.values()))
    k = round(sparsity * allw.numel())
    if k == 0:
        return {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    thr = torch.kthvalue(allw.float(), k).values.item()
    below = allw.float() < thr
    tied = allw.float() == thr
    need = k - int(below.sum())
    tied_first = tied & (torch.cumsum(tied.int(), 0) <= need)
    keep = ~(below | tied_first)
    out, start = {}, 0
    for n, w in weights.items():
        out[n] = keep[start:start + w.numel()].view(w.shape)
        start += w.numel()
    return out
'''

ALTERNATIVES = [
    Alternative("magnitude_argsort", "magnitude", MAGNITUDE_ARGSORT, "stable argsort; cat/split for global"),
    Alternative("magnitude_topkeep", "magnitude", MAGNITUDE_TOPKEEP, "topk of the kept entries, scatter"),
    Alternative("apply_hold", "apply_masks", APPLY_HOLD, "zero and hold: grad hook plus forward pre-hook"),
    Alternative("apply_parametrize", "apply_masks", APPLY_PARAMETRIZE, "torch.nn.utils.parametrize"),
    Alternative("wanda_loop", "wanda", WANDA_LOOP, "float64 sum of squares; row loop with sort"),
    Alternative("wanda_vec", "wanda", WANDA_VEC, "vector_norm + hypot; vectorised topk per row"),
    Alternative("nm_topk", "nm_mask", NM_TOPK, "3-D view, topk, scatter"),
    Alternative("nm_rank", "nm_mask", NM_RANK, "double argsort ranks"),
    Alternative("compress_boolidx", "compress_24", COMPRESS_BOOLIDX, "boolean indexing, shifts"),
    Alternative("compress_sort", "compress_24", COMPRESS_SORT, "sort of ~mask, gather, multiply-sum packing"),
    Alternative("prune_mlp_linalg", "prune_mlp", PRUNE_MLP_LINALG, "vector_norm, topk sorted, copy_"),
    Alternative("prune_mlp_argsort", "prune_mlp", PRUNE_MLP_ARGSORT, "argsort, boolean channel mask, Parameter"),
    Alternative("sparse_closed", "sparse_bytes", SPARSE_CLOSED, "closed-form break-even"),
    Alternative("sparse_bisect", "sparse_bytes", SPARSE_BISECT, "bisection on nnz"),
    Alternative("crossover_backward", "crossover", CROSSOVER_BACKWARD, "backward walk"),
    Alternative("apply_prehook", "apply_masks", APPLY_PREHOOK, "forward pre-hook only, no gradient mask"),
    Alternative("magnitude_native", "magnitude", MAGNITUDE_NATIVE, "native dtype topk; kthvalue + tie fill"),
    Alternative("crossover_forward", "crossover", CROSSOVER_FORWARD, "forward loop with all()"),
]

DEFECTS: list[Defect] = []
