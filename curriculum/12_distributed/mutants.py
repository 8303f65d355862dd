"""Wrong-but-plausible answers for the distributed unit; each must lose points.

Every mutant is the reference answer cell (read from `distributed.py`, solution markers
removed) with one mistake edited in, so a mutant cannot drift from the reference: if the
reference text changes and an edit no longer applies, loading this file fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from graders.authoring.mutants import EditedMutants, Mutant

_m = EditedMutants(Path(__file__).resolve().parent / "distributed.py")

RING = ("test_ring_visible", "test_ring_hidden")
DDP = ("test_ddp_visible", "test_ddp_hidden")
BUCKETS = ("test_buckets_visible", "test_buckets_hidden")
ZERO = ("test_zero_visible", "test_zero_hidden")
FSDP = ("test_fsdp_visible", "test_fsdp_hidden")
TP = ("test_tp_visible", "test_tp_hidden")
GPIPE = ("test_gpipe_visible", "test_gpipe_hidden")
ONEFONEB = ("test_onefoneb_visible", "test_onefoneb_hidden")
MODEL = ("test_model_visible", "test_model_hidden")

_RING_VIA_ROOT = '''def ring_all_reduce(x):
    """Reduce to rank 0 and send the sum back: correct values, but rank 0 sends N-1 whole tensors."""
    rank, n = dist.get_rank(), dist.get_world_size()
    sent = 0
    if rank == 0:
        for src in range(1, n):
            other = torch.empty_like(x)
            dist.recv(other, src=src)
            x.add_(other)
        for dst in range(1, n):
            dist.send(x, dst=dst)
            sent += x.numel() * x.element_size()
    else:
        dist.send(x, dst=0)
        sent += x.numel() * x.element_size()
        dist.recv(x, src=0)
    return sent
'''

_RING_LIBRARY = '''def ring_all_reduce(x):
    """Calls the library's all-reduce and returns the textbook byte count."""
    n = dist.get_world_size()
    dist.all_reduce(x)
    return 2 * (n - 1) * x.numel() * x.element_size() // n
'''

_TP_FORWARD = (
    "        partial = self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))\n"
    "        return ReduceFromTensorParallel.apply(partial)"
)

_ZERO_FULL_STATE = (
    '        self.state = {"exp_avg": torch.zeros(self.end - self.start), '
    '"exp_avg_sq": torch.zeros(self.end - self.start)}\n'
)

MUTANTS = [
    # --- 1. ring all-reduce ---------------------------------------------------------------
    Mutant(
        name="ring_reduce_to_root",
        cell="ring",
        source=_RING_VIA_ROOT,
        must_fail=("test_ring_hidden",),
        why="reduces to rank 0 and sends the sum back: right values, but rank 0's link carries N-1 tensors",
    ),
    Mutant(
        name="ring_calls_all_reduce",
        cell="ring",
        source=_RING_LIBRARY,
        must_fail=("test_ring_hidden",),
        why="calls dist.all_reduce and returns the formula instead of counting its own sends",
    ),
    _m(
        "ring_all_gather_wrong_chunk",
        "ring",
        [
            (
                "out, into = (rank + 1 - step) % n, (rank - step) % n",
                "out, into = (rank - step) % n, (rank - step - 1) % n",
            )
        ],
        RING,
        "all-gather starts from the chunk the rank sent first, not the one it completed",
    ),
    _m(
        "ring_counts_elements",
        "ring",
        [("sent += chunks[out].numel() * x.element_size()", "sent += chunks[out].numel()")],
        RING,
        "counts elements sent, not bytes",
    ),
    _m(
        "ring_counts_float32_bytes",
        "ring",
        [("sent += chunks[out].numel() * x.element_size()", "sent += chunks[out].numel() * 4")],
        ("test_ring_hidden",),
        "assumes 4 bytes per element: wrong for float64 tensors",
    ),
    _m(
        "ring_one_phase",
        "ring",
        [('for phase in ("reduce-scatter", "all-gather"):', 'for phase in ("reduce-scatter",):')],
        RING,
        "stops after the reduce-scatter: each rank has only its own chunk summed",
    ),
    # --- 2. DDP by hand ----------------------------------------------------------------------
    _m(
        "ddp_sum_not_mean",
        "ddp",
        [("            p.grad.div_(world_size)\n", "")],
        DDP,
        "sums the gradients without dividing by the world size: an N times larger learning rate",
    ),
    _m(
        "ddp_divide_out_of_place",
        "ddp",
        [("            p.grad.div_(world_size)\n", "            p.grad = p.grad / world_size\n")],
        ("test_ddp_hidden",),
        "divides into a new tensor (p.grad = p.grad / N): a reference kept to the old .grad still holds "
        "the sum (a blind wrong answer)",
    ),
    _m(
        "ddp_no_broadcast",
        "ddp",
        [("            dist.broadcast(tensor, src=0)\n", "            pass\n")],
        DDP,
        "never broadcasts: every rank keeps its own random initialisation",
    ),
    _m(
        "ddp_broadcast_parameters_only",
        "ddp",
        [("list(model.parameters()) + list(model.buffers())", "list(model.parameters())")],
        DDP,
        "broadcasts the parameters but not the buffers",
    ),
    _m(
        "ddp_reduce_to_root",
        "ddp",
        [("            dist.all_reduce(p.grad)\n", "            dist.reduce(p.grad, dst=0)\n")],
        DDP,
        "reduces the gradients to rank 0 only: the other ranks step with their own local gradient",
    ),
    _m(
        "ddp_average_weights",
        "ddp",
        [
            (
                "            dist.all_reduce(p.grad)\n            p.grad.div_(world_size)\n",
                "            dist.all_reduce(p.data)\n            p.data.div_(world_size)\n",
            )
        ],
        DDP,
        "averages the weights instead of the gradients (a step with each rank's own gradient)",
    ),
    _m(
        "ddp_zero_unused_grads",
        "ddp",
        [
            (
                "        if p.grad is not None:\n"
                "            dist.all_reduce(p.grad)\n            p.grad.div_(world_size)\n",
                "        if p.grad is None:\n            p.grad = torch.zeros_like(p)\n"
                "        dist.all_reduce(p.grad)\n        p.grad.div_(world_size)\n",
            )
        ],
        ("test_ddp_hidden",),
        "gives unused parameters a zero gradient: AdamW's weight decay then moves them",
    ),
    # --- 2b. buckets ---------------------------------------------------------------------
    _m(
        "buckets_after_backward",
        "buckets",
        [
            (
                "self.pending.append((i, flat, dist.all_reduce(flat, async_op=True)))",
                "self.pending.append((i, flat, None))",
            ),
            ("            work.wait()\n", "            dist.all_reduce(flat)\n"),
        ],
        ("test_buckets_hidden",),
        "fills the buckets in the hooks but all-reduces them only in finish(): no overlap with backward",
    ),
    _m(
        "buckets_forward_order",
        "buckets",
        [("        for p in reversed(params):\n", "        for p in params:\n")],
        BUCKETS,
        "fills buckets in forward order: the first bucket is complete only at the end of backward",
    ),
    _m(
        "buckets_no_mean",
        "buckets",
        [("            flat.div_(self.world_size)\n", "")],
        BUCKETS,
        "sums the bucket over ranks without dividing by the world size",
    ),
    _m(
        "buckets_close_when_full",
        "buckets",
        [("if current and size + nbytes > bucket_bytes:", "if current and size >= bucket_bytes:")],
        BUCKETS,
        "closes a bucket only once it is already full, so buckets overshoot bucket_bytes",
    ),
    _m(
        "buckets_not_reset",
        "buckets",
        [
            (
                "        self.pending = []\n        self.arrived = [0] * len(self.buckets)\n",
                "        self.pending = []\n",
            )
        ],
        BUCKETS,
        "does not reset the arrival counts: from the second step on no bucket is ever complete",
    ),
    # --- 3. ZeRO-1 -----------------------------------------------------------------------------
    _m(
        "zero_full_state",
        "zero",
        [
            (
                _ZERO_FULL_STATE,
                '        self.state = {"exp_avg": torch.zeros(total), "exp_avg_sq": torch.zeros(total)}\n',
            )
        ],
        ("test_zero_hidden",),
        "keeps moments for every parameter (and then slices them): no memory saved",
    ),
    _m(
        "zero_no_bias_correction",
        "zero",
        [
            ("m_hat = m / (1 - beta1 ** self.t)", "m_hat = m"),
            ("v_hat = v / (1 - beta2 ** self.t)", "v_hat = v"),
        ],
        ZERO,
        "forgets Adam's bias correction",
    ),
    _m(
        "zero_l2_not_decoupled",
        "zero",
        [
            (
                "            p.mul_(1 - self.lr * self.weight_decay)\n",
                "            g = g + self.weight_decay * p\n",
            )
        ],
        ("test_zero_hidden",),
        "adds weight decay to the gradient (Adam + L2) instead of decoupling it (AdamW)",
    ),
    _m(
        "zero_no_all_gather",
        "zero",
        [
            ("            dist.all_gather_into_tensor(gathered.view(-1), mine)\n", ""),
            (
                "            new = torch.cat([gathered[r, :size] for r, size in enumerate(self.sizes)])\n",
                "            new = flat_p\n",
            ),
        ],
        ZERO,
        "never all-gathers: each rank writes back only its own updated shard, stale values elsewhere",
    ),
    _m(
        "zero_all_reduce_then_all_gather",
        "zero",
        [
            (
                "            summed = torch.empty(k)\n"
                "            dist.reduce_scatter_tensor(summed, pieces.view(-1))\n"
                "            g = summed[: self.end - self.start] / n\n",
                "            dist.all_reduce(flat_g)\n            g = flat_g[self.start:self.end] / n\n",
            )
        ],
        ZERO,
        "all-reduces the whole gradient as DDP does, then all-gathers: right values, 1.5x DDP's bytes",
    ),
    _m(
        "zero_sum_not_mean",
        "zero",
        [
            (
                "            g = summed[: self.end - self.start] / n\n",
                "            g = summed[: self.end - self.start]\n",
            )
        ],
        ("test_zero_hidden",),
        "steps on the sum of the ranks' gradients, not their mean: AdamW's m / sqrt(v) hides the factor N "
        "except where eps matters (tiny gradients)",
    ),
    _m(
        "zero_pad_at_the_end",
        "zero",
        [
            (
                "            pieces = torch.zeros(n, k)\n",
                "            pieces = torch.zeros(n * k)\n",
            ),
            (
                "            for r, piece in enumerate(torch.tensor_split(flat_g, n)):\n"
                "                pieces[r, : piece.numel()] = piece\n",
                "            pieces[: flat_g.numel()] = flat_g\n",
            ),
        ],
        ("test_zero_hidden",),
        "pads the flat gradient at its end (FSDP's layout) while the shards are tensor_split's: when N does "
        "not divide P, rank r reduces elements that are not its shard's",
    ),
    _m(
        "zero_local_gradient",
        "zero",
        [
            (
                "            g = summed[: self.end - self.start] / n\n",
                "            g = flat_g[self.start:self.end]\n",
            )
        ],
        ZERO,
        "updates its shard with its own rank's gradient, ignoring what the reduce-scatter returned",
    ),
    # --- 3b. FSDP / ZeRO-3 ----------------------------------------------------------------------
    _m(
        "fsdp_keeps_gathered_for_backward",
        "fsdp",
        [
            (
                "            y = torch.func.functional_call(fsdp.layers[i], fsdp.gather(i), (x,))\n",
                "            ctx.params = fsdp.gather(i)\n"
                "            y = torch.func.functional_call(fsdp.layers[i], ctx.params, (x,))\n",
            ),
            (
                "        full = torch.empty(n * shard.numel())\n"
                "        dist.all_gather_into_tensor(full, shard.detach())\n"
                "        full.requires_grad_(True)\n",
                "        full = torch.cat([t.reshape(-1) for t in ctx.params.values()])\n"
                "        full = torch.cat([full, full.new_zeros(n * shard.numel() - full.numel())])\n"
                "        full.requires_grad_(True)\n",
            ),
        ],
        FSDP,
        "keeps each layer's gathered parameters from forward to backward instead of freeing and "
        "re-gathering: fewer bytes sent, but every layer's full parameters held at once",
    ),
    _m(
        "fsdp_shard_is_a_view",
        "fsdp",
        [
            (
                "            self.shards.append(nn.Parameter(padded[rank * k:(rank + 1) * k].clone()))\n",
                "            self.shards.append(nn.Parameter(padded[rank * k:(rank + 1) * k]))\n",
            )
        ],
        ("test_fsdp_hidden",),
        "keeps each shard as a view into the padded flat layer: the whole layer's storage stays allocated "
        "on every rank",
    ),
    _m(
        "fsdp_sum_not_mean",
        "fsdp",
        [("        shard_grad.div_(n)\n", "")],
        FSDP,
        "keeps the reduce-scatter's sum over ranks as the gradient, N times the mean",
    ),
    _m(
        "fsdp_all_reduce_gradients",
        "fsdp",
        [
            (
                "        shard_grad = torch.empty_like(shard)\n"
                "        dist.reduce_scatter_tensor(shard_grad, grads[-1])\n",
                "        flat_grad = grads[-1].clone()\n"
                "        dist.all_reduce(flat_grad)\n"
                "        r = dist.get_rank()\n"
                "        shard_grad = flat_grad[r * shard.numel():(r + 1) * shard.numel()].clone()\n",
            )
        ],
        ("test_fsdp_hidden",),
        "all-reduces each layer's whole gradient and keeps its own piece: right values, but DDP's "
        "all-reduce where a reduce-scatter suffices (more bytes)",
    ),
    _m(
        "fsdp_model_parameters_not_freed",
        "fsdp",
        [('            child.to("meta")\n', "")],
        ("test_fsdp_hidden",),
        "shards the parameters but leaves the wrapped model's own full copies allocated: no memory saved",
    ),
    _m(
        "fsdp_no_input_gradient",
        "fsdp",
        [
            (
                "        return (grads[0] if ctx.needs_input_grad[0] else None), shard_grad, None, None\n",
                "        return None, shard_grad, None, None\n",
            )
        ],
        FSDP,
        "returns no gradient for the layer's input: backward stops at the last layer, earlier layers "
        "never learn",
    ),
    # --- 4. tensor parallelism ---------------------------------------------------------------
    _m(
        "tp_all_reduce_each_projection",
        "tp",
        [
            (
                _TP_FORWARD,
                "        gate = ReduceFromTensorParallel.apply(self.gate_proj(x))\n"
                "        up = ReduceFromTensorParallel.apply(self.up_proj(x))\n"
                "        return ReduceFromTensorParallel.apply(self.down_proj(self.act_fn(gate) * up))",
            )
        ],
        TP,
        "all-reduces after every projection, as if each were row-parallel: sums different features",
    ),
    _m(
        "tp_down_split_like_gate",
        "tp",
        [("mlp.down_proj.weight[:, start:end]", "mlp.down_proj.weight[start:end]")],
        TP,
        "splits down_proj's weight by rows like gate and up, instead of by its input columns",
    ),
    _m(
        "tp_silu_after_all_reduce",
        "tp",
        [
            (
                _TP_FORWARD,
                "        partial = self.down_proj(self.gate_proj(x) * self.up_proj(x))\n"
                "        return self.act_fn(ReduceFromTensorParallel.apply(partial))",
            )
        ],
        TP,
        "applies SiLU once at the end, after the all-reduce, instead of to each rank's gate shard",
    ),
    _m(
        "tp_no_backward_all_reduce",
        "tp",
        [("        dist.all_reduce(grad)\n        return grad", "        return grad")],
        TP,
        "f is the identity in backward too: each rank's x.grad holds only its own blocks' share",
    ),
    _m(
        "tp_g_all_reduces_in_backward",
        "tp",
        [
            (
                "    def backward(ctx, grad):\n        return grad",
                "    def backward(ctx, grad):\n        dist.all_reduce(grad)\n        return grad",
            )
        ],
        TP,
        "g also all-reduces in backward (as an all-reduce's own gradient would): gradients N times too large",
    ),
    _m(
        "tp_equal_blocks_start",
        "tp",
        [("        start = sum(sizes[:rank])\n", "        start = rank * (f // n)\n")],
        ("test_tp_hidden",),
        "puts block r at r f / N: right only when N divides f, overlapping blocks otherwise",
    ),
    _m(
        "tp_chunk_not_tensor_split",
        "tp",
        [("torch.tensor_split(torch.arange(f), n)", "torch.arange(f).chunk(n)")],
        ("test_tp_hidden",),
        "cuts with torch.chunk: blocks of 230, 230, 228 of 688 features on 3 ranks, not 230, 229, 229",
    ),
    _m(
        "tp_keeps_full_mlp",
        "tp",
        [
            (
                "        self.act_fn = mlp.act_fn\n",
                "        self.mlp = mlp\n        self.act_fn = mlp.act_fn\n",
            )
        ],
        ("test_tp_hidden",),
        "keeps the whole MLP as a submodule: every rank stores (and trains) all the weights again",
    ),
    _m(
        "tp_shares_storage",
        "tp",
        [
            (
                "            self.gate_proj.weight.copy_(mlp.gate_proj.weight[start:end])\n",
                "            self.gate_proj.weight = nn.Parameter(mlp.gate_proj.weight[start:end])\n",
            )
        ],
        ("test_tp_hidden",),
        "wraps a slice of the full weight: the shard shares its storage, so training it edits mlp",
    ),
    # --- 5. GPipe ------------------------------------------------------------------------------
    _m(
        "gpipe_whole_batch",
        "gpipe",
        [("for chunk in torch.tensor_split(x, micro_batches):", "for chunk in [x]:")],
        ("test_gpipe_hidden",),
        "sends the whole batch in one message: right output, but no pipelining at all",
    ),
    _m(
        "gpipe_last_micro_batch_only",
        "gpipe",
        [
            (
                "return torch.cat(outputs) if rank == n - 1 else None",
                "return outputs[-1] if rank == n - 1 else None",
            )
        ],
        GPIPE,
        "the last rank returns the output of the last micro-batch only",
    ),
    _m(
        "gpipe_split_by_size",
        "gpipe",
        [("torch.tensor_split(x, micro_batches)", "x.split(micro_batches)")],
        ("test_gpipe_hidden",),
        "x.split(m) cuts micro-batches OF m rows, not m micro-batches",
    ),
    _m(
        "gpipe_torch_chunk",
        "gpipe",
        [("torch.tensor_split(x, micro_batches)", "torch.chunk(x, micro_batches)")],
        ("test_gpipe_hidden",),
        "torch.chunk cuts pieces of ceil(batch / m) rows: batch 5, m = 4 gives 3 micro-batches, not 4 "
        "(a blind wrong answer)",
    ),
    _m(
        "gpipe_with_autograd",
        "gpipe",
        [("    with torch.no_grad():\n", "    if True:\n")],
        GPIPE,
        "runs the stages with autograd on: the output carries a graph it cannot send back",
    ),
    # --- 5b. 1F1B -------------------------------------------------------------------------------
    _m(
        "onefoneb_gpipe_order",
        "onefoneb",
        [
            (
                "    for j in range(micro_batches - warmup):\n"
                "        forward(warmup + j)\n"
                "        backward(j)\n"
                "    for j in range(micro_batches - warmup, micro_batches):\n"
                "        backward(j)\n",
                "    for j in range(micro_batches - warmup):\n"
                "        forward(warmup + j)\n"
                "    for j in range(micro_batches):\n"
                "        backward(j)\n",
            )
        ],
        ONEFONEB,
        "runs every forward, then every backward (GPipe): right gradients, but m micro-batches' "
        "activations held",
    ),
    _m(
        "onefoneb_loss_not_scaled",
        "onefoneb",
        [
            (
                "            out = F.mse_loss(out, ys[j]) * (len(xs[j]) / len(x))\n",
                "            out = F.mse_loss(out, ys[j])\n",
            )
        ],
        ONEFONEB,
        "sums the micro-batches' mean losses without weighting them by b_j / batch: gradients m times "
        "too large",
    ),
    _m(
        "onefoneb_warmup_too_long",
        "onefoneb",
        [("    warmup = min(p - rank - 1, micro_batches)\n", "    warmup = min(p - rank, micro_batches)\n")],
        ONEFONEB,
        "warms up with p - r forwards instead of p - r - 1: one more micro-batch held on every rank",
    ),
    _m(
        "onefoneb_input_no_grad",
        "onefoneb",
        [("            h.requires_grad_(True)\n", "")],
        ONEFONEB,
        "forgets that a received activation must require grad: no gradient to send back to rank r - 1",
    ),
    _m(
        "bubble_ignores_dependencies",
        "onefoneb",
        [
            (
                "            if ready is None:\n                continue\n",
                "            if ready is None:\n                ready = 0\n",
            )
        ],
        ("test_onefoneb_visible", "test_onefoneb_hidden"),
        "starts an operation whose input has not been computed yet (as if it were ready at slot 0): "
        "no bubble",
    ),
    # --- 6. the memory model ---------------------------------------------------------------------
    _m(
        "params_no_gqa",
        "model",
        [("2 * h * config.num_key_value_heads * d", "2 * h * config.num_attention_heads * d")],
        MODEL,
        "gives k and v as many heads as q: misses grouped-query attention",
    ),
    _m(
        "params_head_dim_from_hidden",
        "model",
        [
            (
                'd = getattr(config, "head_dim", None) or h // config.num_attention_heads',
                "d = h // config.num_attention_heads",
            )
        ],
        ("test_model_hidden",),
        "assumes head_dim = hidden / heads",
    ),
    _m(
        "params_ignore_tying",
        "model",
        [("(1 if config.tie_word_embeddings else 2)", "2")],
        ("test_model_hidden",),
        "counts the output head even when it is tied to the embedding",
    ),
    _m(
        "params_no_norms",
        "model",
        [("per_layer = attention + 3 * h * f + 2 * h", "per_layer = attention + 3 * h * f")],
        MODEL,
        "forgets the RMSNorm weights",
    ),
    _m(
        "memory_zero1_shards_gradients",
        "model",
        [('"zero1": 4 * psi + 12 * psi / n', '"zero1": 2 * psi + 14 * psi / n')],
        ("test_model_hidden",),
        "ZeRO-1 also shards the gradients (that is ZeRO-2)",
    ),
    _m(
        "memory_fp32_everything",
        "model",
        [('"ddp": 16 * psi', '"ddp": 12 * psi')],
        MODEL,
        "counts 4 bytes each for parameters, gradients, m, v only",
    ),
    _m(
        "memory_unknown_strategy_ddp",
        "model",
        [
            (
                '    if strategy not in table:\n        raise ValueError(f"unknown strategy {strategy!r}; '
                'expected one of {sorted(table)}")\n    return float(table[strategy])',
                '    return float(table.get(strategy, table["ddp"]))',
            )
        ],
        ("test_model_hidden",),
        "silently treats an unknown strategy as DDP",
    ),
    _m(
        "allreduce_no_factor_two",
        "model",
        [
            (
                "return 2 * (n_gpus - 1) / n_gpus * n_bytes / bandwidth",
                "return (n_gpus - 1) / n_gpus * n_bytes / bandwidth",
            )
        ],
        MODEL,
        "counts only the reduce-scatter half of the ring",
    ),
    _m(
        "allreduce_whole_tensor",
        "model",
        [("return 2 * (n_gpus - 1) / n_gpus * n_bytes / bandwidth", "return 2 * n_bytes / bandwidth")],
        ("test_model_hidden",),
        "2 S / B: forgets the (N-1)/N, wrong for small N and for one GPU",
    ),
    _m(
        "bubble_over_m",
        "model",
        [("return (stages - 1) / (micro_batches + stages - 1)", "return (stages - 1) / micro_batches")],
        MODEL,
        "divides by the micro-batches instead of the schedule's length",
    ),
]
