"""Wrong-but-plausible answers for the pruning unit; each must lose points.

Every mutant is the reference answer cell (read from `pruning.py`, solution markers removed)
with one mistake edited in, so a mutant cannot drift from the reference: if the reference text
changes and an edit no longer applies, loading this file fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from graders.authoring.mutants import EditedMutants

_m = EditedMutants(Path(__file__).resolve().parent / "pruning.py")

MAGNITUDE = ("test_magnitude_visible", "test_magnitude_hidden")
APPLY = ("test_apply_masks_visible", "test_apply_masks_hidden")
WANDA = ("test_wanda_visible", "test_wanda_hidden")
NM = ("test_nm_mask_visible", "test_nm_mask_hidden")
C24 = ("test_compress_24_visible", "test_compress_24_hidden")
MLP = ("test_prune_mlp_visible", "test_prune_mlp_hidden")
BYTES = ("test_sparse_bytes_visible", "test_sparse_bytes_hidden")
CROSS = ("test_crossover_visible", "test_crossover_hidden")

_REG = (
    "        nn.utils.parametrize.register_parametrization("
    'module, "weight", _Masked(mask.to(module.weight.device)))\n'
)
_MUL = "        with torch.no_grad():\n            module.weight.mul_(mask.to(module.weight.device))\n"
_TOPK = "        smallest = torch.topk(weight.detach().abs().flatten(), k, largest=False).indices\n"

MUTANTS = [
    # --- 1. magnitude masks ---------------------------------------------------------------------
    _m(
        "magnitude_threshold_prunes_ties",
        "magnitude",
        [
            (
                _TOPK + "        mask.view(-1)[smallest] = False\n",
                "        threshold = torch.kthvalue(weight.detach().abs().flatten(), k).values\n"
                "        mask = weight.detach().abs() > threshold\n",
            )
        ],
        ("test_magnitude_hidden",),
        "a threshold rule |w| > t prunes every weight tied at t: the count is no longer exact",
    ),
    _m(
        "magnitude_prunes_largest",
        "magnitude",
        [("k, largest=False)", "k, largest=True)")],
        MAGNITUDE + ("test_magnitude_perplexity",),
        "prunes the largest weights instead of the smallest",
    ),
    _m(
        "magnitude_signed",
        "magnitude",
        [("torch.topk(weight.detach().abs().flatten()", "torch.topk(weight.detach().flatten()")],
        MAGNITUDE,
        "ranks by signed value: large negative weights are pruned first",
    ),
    _m(
        "magnitude_truncates_count",
        "magnitude",
        [("k = round(sparsity * weight.numel())", "k = int(sparsity * weight.numel())")],
        ("test_magnitude_hidden",),
        "int() truncates where torch.nn.utils.prune rounds: one weight too few",
    ),
    _m(
        "global_is_per_tensor",
        "magnitude",
        [
            (
                "    flat = torch.cat([w.detach().abs().flatten() for w in weights.values()])\n",
                "    return {name: magnitude_mask(w, sparsity) for name, w in weights.items()}\n",
            )
        ],
        MAGNITUDE,
        "global pruning done per tensor: each tensor loses the same fraction",
    ),
    # --- 1b. masks that survive training --------------------------------------------------------
    _m(
        "apply_multiplies_once",
        "apply_masks",
        [
            (
                _REG,
                _MUL,
            )
        ],
        APPLY,
        "zeroes the weights once: the next optimizer step revives them",
    ),
    _m(
        "apply_masks_gradients_only",
        "apply_masks",
        [
            (
                _REG,
                "        module.weight.register_hook(lambda g, m=mask.to(module.weight.device): g * m)\n",
            )
        ],
        APPLY,
        "masks the gradients but never zeroes the weights themselves",
    ),
    _m(
        "apply_inverted_mask",
        "apply_masks",
        [("return w * self.mask", "return w * ~self.mask")],
        APPLY,
        "keeps the pruned weights and zeroes the kept ones",
    ),
    _m(
        "apply_freezes_weights",
        "apply_masks",
        [
            (
                _REG,
                _MUL + "        module.weight.requires_grad_(False)\n",
            )
        ],
        ("test_apply_masks_hidden",),
        "freezes the whole weight: pruned weights stay zero, but kept ones no longer train",
    ),
    # --- 2. Wanda -------------------------------------------------------------------------------
    _m(
        "norms_without_sqrt",
        "wanda",
        [
            (
                "return {name: sums[name].sqrt() for name in names}",
                "return {name: sums[name] for name in names}",
            )
        ],
        ("test_wanda_hidden",),
        "returns the sum of squares, not its square root",
    ),
    _m(
        "norms_mean_over_tokens",
        "wanda",
        [("x.pow(2).sum(dim=0)", "x.pow(2).mean(dim=0)")],
        ("test_wanda_hidden",),
        "averages over the tokens of each batch instead of summing over all tokens",
    ),
    _m(
        "norms_with_grad",
        "wanda",
        [
            (
                "with torch.no_grad():\n            model(input_ids=ids)",
                "if True:\n            model(input_ids=ids)",
            )
        ],
        ("test_wanda_hidden",),
        "runs the calibration forward with gradients enabled, building a graph it never uses "
        "(a blind wrong answer)",
    ),
    _m(
        "norms_hooks_left",
        "wanda",
        [("        for h in handles:\n            h.remove()\n", "        pass\n")],
        ("test_wanda_hidden",),
        "never removes its forward hooks",
    ),
    _m(
        "norms_no_finally",
        "wanda",
        [
            (
                "    try:\n        for name in names:\n"
                "            handles.append(modules[name].register_forward_hook(hook_for(name)))\n"
                "        with torch.no_grad():\n            model(input_ids=ids)\n    finally:\n",
                "    for name in names:\n"
                "        handles.append(modules[name].register_forward_hook(hook_for(name)))\n"
                "    with torch.no_grad():\n        model(input_ids=ids)\n    if True:\n",
            )
        ],
        ("test_wanda_hidden",),
        "removes the hooks only when the forward pass succeeds",
    ),
    _m(
        "wanda_whole_matrix",
        "wanda",
        [
            (
                "    k = round(sparsity * weight.shape[1])\n"
                "    mask = torch.ones_like(weight, dtype=torch.bool)\n"
                "    if k > 0:\n        lowest = torch.topk(scores, k, dim=1, largest=False).indices\n"
                "        mask.scatter_(1, lowest, False)\n",
                "    k = round(sparsity * weight.numel())\n"
                "    mask = torch.ones_like(weight, dtype=torch.bool)\n"
                "    if k > 0:\n        lowest = torch.topk(scores.flatten(), k, largest=False).indices\n"
                "        mask.view(-1)[lowest] = False\n",
            )
        ],
        ("test_wanda_hidden",),
        "compares scores over the whole matrix instead of within each output row",
    ),
    _m(
        "wanda_ignores_norms",
        "wanda",
        [("* norms.float().unsqueeze(0)", "")],
        WANDA + ("test_wanda_outliers",),
        "prunes by |W| alone: magnitude pruning per row",
    ),
    _m(
        "wanda_norms_on_rows",
        "wanda",
        [("norms.float().unsqueeze(0)", "norms.float().unsqueeze(1)")],
        ("test_wanda_hidden",),
        "scales output rows instead of input columns (fails for non-square weights)",
    ),
    # --- 3. 2:4 ---------------------------------------------------------------------------------
    _m(
        "nm_keeps_smallest",
        "nm_mask",
        [("torch.topk(groups, n, dim=-1)", "torch.topk(groups, n, dim=-1, largest=False)")],
        NM,
        "keeps the n smallest of each group",
    ),
    _m(
        "nm_strided_groups",
        "nm_mask",
        [
            (
                "groups = scores.detach().reshape(scores.shape[0], -1, m)",
                "groups = scores.detach().reshape(scores.shape[0], m, -1).transpose(1, 2)",
            ),
            (
                "mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, top, True)",
                "mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, top, True).transpose(1, 2)",
            ),
        ],
        NM,
        "groups every (cols/m)-th entry instead of m consecutive entries",
    ),
    _m(
        "nm_by_magnitude",
        "nm_mask",
        [("groups = scores.detach()", "groups = scores.detach().abs()")],
        ("test_nm_mask_hidden",),
        "takes |score|: a caller's scores are already what to keep",
    ),
    _m(
        "pack_high_first",
        "compress_24",
        [
            (
                "c[..., 0] | (c[..., 1] << 2) | (c[..., 2] << 4) | (c[..., 3] << 6)",
                "c[..., 3] | (c[..., 2] << 2) | (c[..., 1] << 4) | (c[..., 0] << 6)",
            ),
            ("shifts = torch.tensor([0, 2, 4, 6]", "shifts = torch.tensor([6, 4, 2, 0]"),
        ],
        C24,
        "first code in the highest bits: round trip exact, but not the documented layout",
    ),
    _m(
        "decompress_no_group_offset",
        "compress_24",
        [("dense.scatter_(1, (group * 4).unsqueeze(0) + codes, values)", "dense.scatter_(1, codes, values)")],
        C24,
        "scatters every value into the first group: the group offset 4 * g is lost",
    ),
    _m(
        "bytes_24_index_per_weight",
        "compress_24",
        [
            (
                "rows * (cols // 2) * value_bytes + rows * (cols // 8)",
                "rows * (cols // 2) * value_bytes + rows * (cols // 4)",
            )
        ],
        C24,
        "counts 2 bits for every weight instead of every kept weight",
    ),
    _m(
        "bytes_24_byte_per_index",
        "compress_24",
        [("rows * (cols // 2) * value_bytes + rows * (cols // 8)", "rows * (cols // 2) * (value_bytes + 1)")],
        C24,
        "a byte per index instead of 2 bits",
    ),
    # --- 4. structured ----------------------------------------------------------------------------
    _m(
        "mlp_keeps_weakest",
        "prune_mlp",
        [
            (
                "torch.topk(mlp_channel_scores(mlp), keep)",
                "torch.topk(mlp_channel_scores(mlp), keep, largest=False)",
            )
        ],
        ("test_prune_mlp_hidden",),
        "keeps the lowest-scoring channels",
    ),
    _m(
        "mlp_config_not_updated",
        "prune_mlp",
        [("    model.config.intermediate_size = keep\n", "")],
        MLP,
        "rebuilds the layers but leaves the config: from_pretrained cannot load the saved model",
    ),
    _m(
        "mlp_scores_without_down",
        "prune_mlp",
        [
            (
                "return gate.norm(dim=1) * up.norm(dim=1) * down.norm(dim=0)",
                "return gate.norm(dim=1) * up.norm(dim=1)",
            )
        ],
        ("test_prune_mlp_hidden",),
        "leaves down_proj's column out of the channel score",
    ),
    _m(
        "mlp_drops_bias",
        "prune_mlp",
        [("bias=old.bias is not None", "bias=False")],
        ("test_prune_mlp_hidden",),
        "new Linear layers without the biases of a config with mlp_bias",
    ),
    _m(
        "mlp_down_rows",
        "prune_mlp",
        [('("down_proj", 1)', '("down_proj", 0)')],
        MLP,
        "slices down_proj's rows (hidden outputs) instead of its columns (channels)",
    ),
    # --- 5. sparse formats ------------------------------------------------------------------------
    _m(
        "csr_rows_not_plus_one",
        "sparse_bytes",
        [("(rows + 1) * index_bytes", "rows * index_bytes")],
        BYTES,
        "rows row offsets instead of rows + 1",
    ),
    _m(
        "coo_one_index",
        "sparse_bytes",
        [("nnz * (value_bytes + 2 * index_bytes)", "nnz * (value_bytes + index_bytes)")],
        BYTES,
        "one index per nonzero in COO: it needs a row and a column",
    ),
    _m(
        "break_even_strict",
        "sparse_bytes",
        [("(dense - fixed) // per_nnz", "(dense - fixed - 1) // per_nnz")],
        BYTES,
        "requires strictly fewer bytes than dense: 'no more bytes' includes equal",
    ),
    _m(
        "break_even_density",
        "sparse_bytes",
        [("return 1 - nnz / (rows * cols)", "return nnz / (rows * cols)")],
        BYTES,
        "returns the density (fraction kept) instead of the sparsity",
    ),
    _m(
        "break_even_ignores_offsets",
        "sparse_bytes",
        [("    fixed = size(rows, cols, 0, value_bytes, index_bytes)\n", "    fixed = 0\n")],
        BYTES,
        "ignores CSR's row offsets in the break-even",
    ),
    _m(
        "crossover_first_win",
        "crossover",
        [
            (
                "    found = None\n    for s, r in reversed(list(zip(sparsities, speedups))):\n"
                "        if r < 1:\n            break\n        found = s\n    return found\n",
                "    for s, r in zip(sparsities, speedups):\n"
                "        if r >= 1:\n            return s\n    return None\n",
            )
        ],
        ("test_crossover_hidden",),
        "the first sparsity where sparse wins, even when a higher sparsity is slower again",
    ),
    _m(
        "crossover_strict",
        "crossover",
        [("if r < 1:", "if r <= 1:")],
        ("test_crossover_hidden",),
        "counts 'exactly as fast' as slower",
    ),
    _m(
        "crossover_index",
        "crossover",
        [("found = s\n", "found = sparsities.index(s)\n")],
        CROSS,
        "returns the position in the list instead of the sparsity",
    ),
]
