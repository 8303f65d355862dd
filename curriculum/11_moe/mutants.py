"""Wrong-but-plausible answers for the mixture-of-experts unit; each must lose points.

Every mutant but one is the reference answer cell (read from `moe.py`, solution markers
removed) with one mistake edited in, so a mutant cannot drift from the reference: if the
reference text changes and an edit no longer applies, loading this file fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from graders.authoring.mutants import EditedMutants, Mutant

_m = EditedMutants(Path(__file__).resolve().parent / "moe.py")

ROUTERS = ("test_routers_visible", "test_routers_hidden")
LAYER = ("test_layer_visible", "test_layer_hidden")
AUX = ("test_aux_visible", "test_aux_hidden")
BIAS = ("test_bias_visible", "test_bias_hidden")
CAPACITY = ("test_capacity_visible", "test_capacity_hidden")
COUNTS = ("test_counts_hidden",)
EP = ("test_ep_visible", "test_ep_hidden")

_LAYER_ALL_EXPERTS = '''def moe_experts(x, weights, experts, gate_up_proj, down_proj):
    """Right values, by running every expert on every token (the setup cell's helper)."""
    return all_experts(x, weights, experts, gate_up_proj, down_proj)
'''

_EP_ALL_GATHER = '''def expert_parallel_experts(x, weights, experts, gate_up_local, down_local):
    """Gathers every expert on every rank instead of moving tokens: right values, no all-to-all."""
    n = dist.get_world_size()
    gate_up = [torch.empty_like(gate_up_local) for _ in range(n)]
    down = [torch.empty_like(down_local) for _ in range(n)]
    dist.all_gather(gate_up, gate_up_local.contiguous())
    dist.all_gather(down, down_local.contiguous())
    return moe_experts(x, weights, experts, torch.cat(gate_up), torch.cat(down)), 0
'''

MUTANTS = [
    # --- 1. routers -------------------------------------------------------------------------
    _m(
        "mixtral_softmax_then_topk_unnormalised",
        "routers",
        [
            (
                "top, experts = torch.topk(logits.float(), k, dim=-1)\n"
                "    return torch.softmax(top, dim=-1), experts",
                "top, experts = torch.topk(torch.softmax(logits.float(), dim=-1), k, dim=-1)\n"
                "    return top, experts",
            )
        ],
        ROUTERS,
        "Mixtral's router written as Qwen's without renormalising: the k weights do not sum to 1",
    ),
    _m(
        "mixtral_weights_in_logits_dtype",
        "routers",
        [
            (
                "return torch.softmax(top, dim=-1), experts",
                "return torch.softmax(top, dim=-1).to(logits.dtype), experts",
            )
        ],
        ("test_routers_hidden",),
        "casts Mixtral's weights back to bf16: transformers keeps them in float32",
    ),
    _m(
        "qwen_always_renormalises",
        "routers",
        [
            (
                "    if norm_topk_prob:\n        weights = weights / weights.sum(dim=-1, keepdim=True)\n",
                "    weights = weights / weights.sum(dim=-1, keepdim=True)\n",
            )
        ],
        ROUTERS,
        "renormalises the top-k probabilities even when norm_topk_prob is False",
    ),
    _m(
        "qwen_float32_weights",
        "routers",
        [("return weights.to(logits.dtype), experts", "return weights, experts")],
        ("test_routers_hidden",),
        "returns Qwen's weights in float32 for bf16 logits",
    ),
    _m(
        "qwen_topk_of_logits_then_softmax",
        "routers",
        [
            (
                "probs = torch.softmax(logits.float(), dim=-1)\n"
                "    weights, experts = torch.topk(probs, k, dim=-1)",
                "top, experts = torch.topk(logits.float(), k, dim=-1)\n"
                "    weights = torch.softmax(top, dim=-1)",
            )
        ],
        ROUTERS,
        "uses Mixtral's convention for Qwen: the weights are renormalised whatever norm_topk_prob says",
    ),
    # --- 2. the layer -----------------------------------------------------------------------
    Mutant(
        name="layer_all_experts",
        cell="layer",
        source=_LAYER_ALL_EXPERTS,
        must_fail=("test_layer_hidden",),
        why="every expert on every token: right values, E/k times the FLOPs and slower",
    ),
    _m(
        "layer_no_routing_weights",
        "layer",
        [("out = torch.cat(outputs) * weights.reshape(-1)[order, None]", "out = torch.cat(outputs)")],
        LAYER,
        "adds the chosen experts' outputs without weighting them",
    ),
    _m(
        "layer_weights_not_permuted",
        "layer",
        [("weights.reshape(-1)[order, None]", "weights.reshape(-1)[:, None]")],
        LAYER,
        "sorts the tokens by expert but multiplies by the weights in the unsorted order",
    ),
    _m(
        "layer_tokens_not_permuted",
        "layer",
        [("token = order // k", "token = torch.arange(num_tokens * k, device=x.device) // k")],
        LAYER,
        "adds each sorted row back to the token of its unsorted position",
    ),
    _m(
        "layer_gate_up_swapped",
        "layer",
        [("h = F.silu(h[:, :inter]) * h[:, inter:]", "h = F.silu(h[:, inter:]) * h[:, :inter]")],
        LAYER,
        "takes the up projection as the gate: transformers' gate_up_proj has the gate rows first",
    ),
    _m(
        "layer_weights_detached",
        "layer",
        [("weights.reshape(-1)[order, None]", "weights.detach().reshape(-1)[order, None]")],
        ("test_layer_hidden",),
        "detaches the routing weights: the router gets no gradient",
    ),
    # --- 3a. auxiliary losses ---------------------------------------------------------------
    _m(
        "aux_f_over_slots",
        "aux_loss",
        [("f = counts / logits.shape[0]", "f = counts / chosen.numel()")],
        AUX,
        "divides the counts by T k (Switch's k = 1 normalisation): transformers divides by T",
    ),
    _m(
        "aux_no_num_experts",
        "aux_loss",
        [("return num_experts * (f * probs.mean(dim=0)).sum()", "return (f * probs.mean(dim=0)).sum()")],
        AUX,
        "forgets the factor E",
    ),
    _m(
        "aux_f_from_probs",
        "aux_loss",
        [("f = counts / logits.shape[0]", "f = probs.mean(dim=0) * k")],
        ("test_aux_hidden",),
        "uses the mean probability for f as well: a different value and gradient than the counts",
    ),
    _m(
        "z_loss_square_of_mean",
        "aux_loss",
        [
            (
                "torch.logsumexp(router_logits.float(), dim=-1).pow(2).mean()",
                "torch.logsumexp(router_logits.float(), dim=-1).mean().pow(2)",
            )
        ],
        ("test_aux_hidden",),
        "squares the mean log-partition instead of averaging the squares",
    ),
    _m(
        "z_loss_naive_logsumexp",
        "aux_loss",
        [
            (
                "torch.logsumexp(router_logits.float(), dim=-1)",
                "torch.log(torch.exp(router_logits.float()).sum(dim=-1))",
            )
        ],
        ("test_aux_hidden",),
        "log(sum(exp)) without the max shift: overflows at logits of hundreds",
    ),
    _m(
        "z_loss_max_logit",
        "aux_loss",
        [
            (
                "torch.logsumexp(router_logits.float(), dim=-1).pow(2).mean()",
                "router_logits.float().amax(dim=-1).pow(2).mean()",
            )
        ],
        AUX,
        "penalises the largest logit instead of the log-partition function",
    ),
    # --- 3b. DeepSeek-V3 bias ---------------------------------------------------------------
    _m(
        "bias_in_weights",
        "bias",
        [("weights = scores.gather(-1, experts)", "weights = (scores + bias).gather(-1, experts)")],
        ("test_bias_hidden",),
        "weights the experts by the biased scores: the bias should change only the choice",
    ),
    _m(
        "bias_not_used_for_choice",
        "bias",
        [
            (
                "experts = torch.topk(scores + bias, k, dim=-1).indices",
                "experts = torch.topk(scores, k, dim=-1).indices",
            )
        ],
        BIAS,
        "chooses by the unbiased scores: the bias never changes anything",
    ),
    _m(
        "bias_sign_reversed",
        "bias",
        [("torch.sign(load.mean() - load)", "torch.sign(load - load.mean())")],
        BIAS,
        "raises the bias of overloaded experts: the imbalance grows",
    ),
    _m(
        "bias_proportional_update",
        "bias",
        [("gamma * torch.sign(load.mean() - load)", "gamma * (load.mean() - load)")],
        BIAS,
        "updates by the load difference instead of its sign",
    ),
    _m(
        "bias_scaling_only_when_normalised",
        "bias",
        [
            (
                "+ 1e-20)\n    return weights * scaling, experts",
                "+ 1e-20) * scaling\n    return weights, experts",
            )
        ],
        ("test_bias_hidden",),
        "multiplies by the scaling factor only inside the normalisation (a blind wrong answer)",
    ),
    _m(
        "bias_softmax_scores",
        "bias",
        [("scores = torch.sigmoid(logits.float())", "scores = torch.softmax(logits.float(), dim=-1)")],
        ("test_bias_hidden",),
        "softmax scores (DeepSeek-V2) where DeepSeek-V3 uses sigmoid",
    ),
    _m(
        "bias_scaling_before_normalising",
        "bias",
        [
            ("weights = scores.gather(-1, experts)\n", "weights = scores.gather(-1, experts) * scaling\n"),
            ("return weights * scaling, experts", "return weights, experts"),
        ],
        ("test_bias_hidden",),
        "scales before normalising: the normalisation cancels the routed scaling factor",
    ),
    # --- 4. capacity --------------------------------------------------------------------------
    _m(
        "capacity_floor",
        "capacity",
        [
            (
                "return math.ceil(capacity_factor * num_tokens * k / num_experts)",
                "return int(capacity_factor * num_tokens * k / num_experts)",
            )
        ],
        ("test_capacity_hidden",),
        "rounds the capacity down",
    ),
    _m(
        "capacity_without_k",
        "capacity",
        [
            (
                "return math.ceil(capacity_factor * num_tokens * k / num_experts)",
                "return math.ceil(capacity_factor * num_tokens / num_experts)",
            )
        ],
        CAPACITY,
        "sizes the buffers for top-1 routing: T / E instead of T k / E",
    ),
    _m(
        "capacity_token_major",
        "capacity",
        [
            ("by_priority = experts.T.reshape(-1)", "by_priority = experts.reshape(-1)"),
            (
                "return (position < capacity).reshape(k, num_tokens).T",
                "return (position < capacity).reshape(num_tokens, k)",
            ),
        ],
        CAPACITY,
        "gives priority by token only: an early token's second choice beats a later token's first",
    ),
    _m(
        "capacity_off_by_one",
        "capacity",
        [("return (position < capacity)", "return (position <= capacity)")],
        CAPACITY,
        "keeps capacity + 1 slots per expert",
    ),
    # --- 5. counting --------------------------------------------------------------------------
    _m(
        "counts_all_experts_active",
        "counts",
        [("routed_active += p.numel() // p.shape[0] * k", "routed_active += p.numel()")],
        COUNTS,
        "counts every expert as active: the dense model's count",
    ),
    _m(
        "counts_flops_with_embedding",
        "counts",
        [("2 * (active - vectors - embedding.numel() + ", "2 * (active - vectors + ")],
        COUNTS,
        "charges FLOPs for the embedding lookup",
    ),
    _m(
        "counts_tied_head_free",
        "counts",
        [("(head.numel() if head is embedding else 0)", "0")],
        COUNTS,
        "a tied output head is still a matmul: its FLOPs are forgotten",
    ),
    _m(
        "counts_bytes_experts_replicated",
        "counts",
        [("bytes_per_param * (total - routed + routed // ep_size)", "bytes_per_param * total")],
        COUNTS,
        "every GPU holds every expert: expert parallelism shards nothing",
    ),
    _m(
        "counts_flops_with_vectors",
        "counts",
        [("2 * (active - vectors - embedding.numel()", "2 * (active - embedding.numel()")],
        COUNTS,
        "counts biases and norm scales as matmul weights",
    ),
    # --- 6. expert parallelism ----------------------------------------------------------------
    Mutant(
        name="ep_all_gather_experts",
        cell="expert_parallel",
        source=_EP_ALL_GATHER,
        must_fail=EP,
        why="gathers all experts' weights on every rank instead of sending tokens to them",
    ),
    _m(
        "ep_interleaved_placement",
        "expert_parallel",
        [
            (
                "torch.bincount(flat[order] // per_rank, minlength=n)",
                "torch.bincount(flat[order] % n, minlength=n)",
            ),
            ("local_ids -= rank * per_rank", "local_ids //= n"),
        ],
        EP,
        "places expert e on rank e % N, but sends the rows sorted by expert: they reach the wrong ranks",
    ),
    _m(
        "ep_counts_own_rows",
        "expert_parallel",
        [("sent = (sum(send) - send[rank] + sum(recv) - recv[rank])", "sent = (sum(send) + sum(recv))")],
        EP,
        "counts the rows a rank keeps for its own experts as sent",
    ),
    _m(
        "ep_counts_dispatch_only",
        "expert_parallel",
        [("sent = (sum(send) - send[rank] + sum(recv) - recv[rank])", "sent = (sum(send) - send[rank])")],
        EP,
        "forgets the combine all-to-all when counting bytes",
    ),
    _m(
        "ep_dispatch_without_gradient",
        "expert_parallel",
        [
            (
                "rows = dnf.all_to_all_single(x.new_empty(sum(recv), hidden), "
                "x[token].contiguous(), recv, send)",
                "rows = x.new_empty(sum(recv), hidden)\n"
                "    dist.all_to_all_single(rows, x[token].contiguous(), recv, send)",
            )
        ],
        ("test_ep_hidden",),
        "dispatches with dist.all_to_all_single, which has no backward: x gets no gradient",
    ),
    _m(
        "ep_weights_not_permuted",
        "expert_parallel",
        [("weights.reshape(-1)[order, None]", "weights.reshape(-1)[:, None]")],
        EP,
        "multiplies the returned rows, which are in expert order, by the weights in token order",
    ),
]
