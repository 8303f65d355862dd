"""Wrong-but-plausible answers for the attention unit; each must lose points.

Every mutant is the reference answer cell (read from `attention.py`, solution markers
removed) with one mistake edited in, so a mutant cannot drift from the reference: if the
reference text changes and an edit no longer applies, loading this file fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from graders.authoring.mutants import EditedMutants, Mutant

_m = EditedMutants(Path(__file__).resolve().parent / "attention.py")
_answer = _m.answer


SDPA = ("test_sdpa_visible", "test_sdpa_hidden")
ROPE = ("test_rope_visible", "test_rope_hidden")
FLASH = ("test_flash_visible", "test_flash_hidden")

MUTANTS = [
    # --- 1. scaled dot-product attention -----------------------------------------------
    _m("sdpa_scale_by_d", "sdpa", [("/ math.sqrt(d)", "/ d")], SDPA,
       "divides the scores by d instead of sqrt(d)"),
    _m("sdpa_mask_after_softmax", "sdpa",
       [("    scores = scores.masked_fill(~visible, float(\"-inf\"))\n"
         "    weights = torch.softmax(scores, dim=-1)\n",
         "    weights = torch.softmax(scores, dim=-1).masked_fill(~visible, 0.0)\n")],
       SDPA, "masks the weights after the softmax, so the visible weights no longer sum to 1"),
    _m("sdpa_causal_masks_diagonal", "sdpa", [("diagonal=t_k - t_q)", "diagonal=t_k - t_q - 1)")], SDPA,
       "causal mask off by one: a token may not attend to itself"),
    _m("sdpa_causal_top_left", "sdpa", [("torch.tril(visible, diagonal=t_k - t_q)", "torch.tril(visible)")],
       ("test_sdpa_hidden",), "aligns the causal mask top-left, wrong when there are more keys than queries"),
    _m("sdpa_fully_masked_nan", "sdpa", [("    weights = torch.nan_to_num(weights, nan=0.0)\n", "")],
       ("test_sdpa_hidden",), "a query with no visible key returns NaN instead of zeros"),
    _m("sdpa_padding_on_queries", "sdpa",
       [("key_padding_mask.bool()[:, None, None, :]", "key_padding_mask.bool()[:, None, :, None]")],
       ("test_sdpa_hidden",), "applies the padding mask to query rows instead of key columns"),
    _m("sdpa_exp_no_shift", "sdpa",
       [("    weights = torch.softmax(scores, dim=-1)\n",
         "    weights = torch.exp(scores)\n    weights = weights / weights.sum(dim=-1, keepdim=True)\n")],
       ("test_sdpa_hidden",),
        "a hand-written softmax without the max shift: exp overflows for scores of +250"),
    _m("sdpa_global_max_shift", "sdpa",
       [("    weights = torch.softmax(scores, dim=-1)\n",
         "    weights = torch.exp(scores - scores.max())\n"
         "    weights = weights / weights.sum(dim=-1, keepdim=True)\n")],
       ("test_sdpa_hidden",),
       "shifts by the largest score of the whole tensor, not of each row: rows of very negative scores "
       "underflow"),
    _m("sdpa_mask_on_default_device", "sdpa",
       [("torch.ones(t_q, t_k, dtype=torch.bool, device=q.device)",
        "torch.ones(t_q, t_k, dtype=torch.bool)")],
       ("test_sdpa_hidden",), "builds the mask on the default device: fine on a CPU, fails on a GPU"),
    _m("sdpa_returns_float32", "sdpa",
       [("scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)",
         "scores = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(d)  # float32 for stability"),
        ("    return weights @ v\n", "    return weights @ v.float()\n")],
       ("test_sdpa_hidden",), "computes in float32 for stability and returns float32 for bfloat16 inputs"),
    _m("sdpa_scales_q_in_place", "sdpa",
       [("    scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)\n",
         "    q /= math.sqrt(d)  # scale the queries once\n    scores = q @ k.transpose(-2, -1)\n")],
       ("test_sdpa_hidden",), "divides the caller's q in place: the input is modified"),
    # The next six repeat, as edits of the reference, mistakes a reviewer wrote without reading the tests.
    _m("sdpa_fill_minus_1e9", "sdpa",
       [('scores.masked_fill(~visible, float("-inf"))', "scores.masked_fill(~visible, -1e9)")],
       ("test_sdpa_hidden",),
       "masks with -1e9 instead of -inf: a query with no visible key averages every value instead of "
       "returning 0"),
    # --- 2. RoPE -------------------------------------------------------------------------
    _m("rope_interleaved", "rope",
       [("torch.cat([angles, angles], dim=-1)", "angles.repeat_interleave(2, dim=-1)"),
        ("    half = x.shape[-1] // 2\n    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)\n",
         "    rotated = torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).flatten(-2)\n")],
       ("test_rope_hidden",), "pairs neighbouring dimensions (2i, 2i+1) instead of Llama's (i, i + d/2)"),
    _m("rope_positions_from_one", "rope",
       [("position_ids.to(torch.float32)", "(position_ids + 1).to(torch.float32)")], ROPE,
       "positions off by one: the first token is already rotated"),
    _m("rope_frequency_exponent", "rope",
       [("torch.arange(0, head_dim, 2, dtype=torch.float32",
         "torch.arange(0, head_dim // 2, dtype=torch.float32")],
       ("test_rope_hidden",), "uses base ** (-i/d) instead of base ** (-2i/d)"),
    _m("rope_rotates_backwards", "rope",
       [("torch.cat([-x[..., half:], x[..., :half]], dim=-1)",
         "torch.cat([x[..., half:], -x[..., :half]], dim=-1)")],
       ("test_rope_hidden",), "rotate_half with the sign on the wrong half: rotates by -angle"),
    _m("rope_freqs_on_default_device", "rope",
       [("dtype=torch.float32, device=position_ids.device) / head_dim", "dtype=torch.float32) / head_dim")],
       ("test_rope_hidden",), "makes the frequencies on the default device: fails for positions on a GPU"),
    _m("rope_promotes_to_float32", "rope",
       [("cos, sin = cos.unsqueeze(-3).to(x.dtype), sin.unsqueeze(-3).to(x.dtype)",
         "cos, sin = cos.unsqueeze(-3), sin.unsqueeze(-3)")],
       ("test_rope_hidden",), "multiplies bfloat16 x by float32 cos, sin: the result is promoted to float32"),
    _m("rope_cos_heads_first", "rope",
       [("cos, sin = cos.unsqueeze(-3).to(x.dtype), sin.unsqueeze(-3).to(x.dtype)",
         "cos, sin = cos[None].to(x.dtype), sin[None].to(x.dtype)")],
       ("test_rope_hidden",),
       "adds the head axis in front: cos of shape (B, T, d) then lines batches up with heads"),
    # --- 2b. converting between RoPE layouts ----------------------------------------------
    _m("rope_permute_inverse", "rope_permute",
       [("w.reshape(num_heads, head_dim // 2, 2, *w.shape[1:])",
        "w.reshape(num_heads, 2, head_dim // 2, *w.shape[1:])")],
       ("test_rope_permute_visible", "test_rope_permute_hidden"),
       "applies the inverse permutation (half-split to interleaved), the direction of the other conversion"),
    _m("rope_permute_ignores_heads", "rope_permute",
       [("w.reshape(num_heads, head_dim // 2, 2, *w.shape[1:])",
        "w.reshape(1, w.shape[0] // 2, 2, *w.shape[1:])")],
       ("test_rope_permute_hidden",), "permutes all rows as one block instead of head by head"),
    _m("rope_permute_head_dim_from_columns", "rope_permute",
       [("head_dim = w.shape[0] // num_heads", "head_dim = w.shape[-1] // num_heads")],
       ("test_rope_permute_visible", "test_rope_permute_hidden"),
       "takes head_dim from the input features (hidden / heads) instead of the rows"),
    _m("rope_permute_swaps_members", "rope_permute",
       [("pairs.transpose(1, 2).reshape(w.shape)", "pairs.flip(2).transpose(1, 2).reshape(w.shape)")],
       ("test_rope_permute_visible", "test_rope_permute_hidden"),
       "puts each pair's second member first: the rotation turns the other way"),
    # --- 3. multi-head / grouped-query attention -----------------------------------------
    _m("mha_gqa_repeat", "mha", [("x.repeat_interleave(n_rep, dim=1)", "x.repeat(1, n_rep, 1, 1)")],
       ("test_mha_visible", "test_mha_hidden"),
       "GQA with repeat instead of repeat_interleave: wrong head groups"),
    _m("mha_view_heads_first", "mha",
       [(".view(b, t, self.num_heads, self.head_dim).transpose(1, 2)",
         ".view(b, self.num_heads, t, self.head_dim)"),
        (".view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)",
         ".view(b, self.num_kv_heads, t, self.head_dim)"),
        ("out.transpose(1, 2).reshape(b, t,", "out.reshape(b, t,")],
       ("test_mha_hidden",), "reshapes (B, T, H*d) straight to (B, H, T, d), mixing tokens and heads"),
    _m("mha_not_causal", "mha", [("causal=True, key_padding_mask", "causal=False, key_padding_mask")],
       ("test_mha_visible", "test_mha_hidden"), "forgets the causal mask"),
    _m("mha_rope_on_values", "mha",
       [("        groups = self.num_heads // self.num_kv_heads\n",
         "        v = apply_rope(v, cos, sin)\n        groups = self.num_heads // self.num_kv_heads\n")],
       ("test_mha_hidden",), "rotates the values too"),
    _m("mha_ignores_position_ids", "mha",
       [("        if position_ids is None:\n            position_ids = torch.arange(t, device=x.device)\n",
         "        position_ids = torch.arange(t, device=x.device)\n")],
       ("test_mha_hidden",), "ignores position_ids: left-padded sequences get the wrong positions"),
    _m("mha_drops_biases", "mha",
       [("self.q_proj(x)", "F.linear(x, self.q_proj.weight)"),
        ("self.k_proj(x)", "F.linear(x, self.k_proj.weight)"),
        ("self.v_proj(x)", "F.linear(x, self.v_proj.weight)"),
        ("return self.o_proj(out.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim))",
         "return F.linear(out.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim), "
         "self.o_proj.weight)")],
       ("test_mha_hidden",), "multiplies by the projections' weights and forgets their biases"),
    _m("mha_positions_on_default_device", "mha",
       [("position_ids = torch.arange(t, device=x.device)", "position_ids = torch.arange(t)")],
       ("test_mha_hidden",), "makes the default positions on the default device: fails on a GPU"),
    _m("mha_drops_padding_mask", "mha", [("causal=True, key_padding_mask=key_padding_mask)", "causal=True)")],
       ("test_mha_hidden",),
       "accepts key_padding_mask but never passes it on: padding tokens are attended to"),
    _m("mha_head_dim_from_hidden", "mha",
       [("        b, t, _ = x.shape\n",
         "        b, t, hidden = x.shape\n        head_dim = hidden // self.num_heads\n"),
        ("self.head_dim).transpose", "head_dim).transpose"),
        ("rope_cos_sin(position_ids, self.head_dim,", "rope_cos_sin(position_ids, head_dim,"),
        ("self.num_heads * self.head_dim))", "self.num_heads * head_dim))")],
       ("test_mha_hidden",),
       "recomputes the head size as hidden_size // num_heads in the forward instead of using self.head_dim: "
       "configs whose head_dim is not hidden / heads break"),
    # --- 4. tiled attention ----------------------------------------------------------------
    _m("tiled_sum_not_rescaled", "tiled",
       [("row_sum = row_sum * correction + p.sum", "row_sum = row_sum + p.sum")],
       ("test_tiled_visible", "test_tiled_correct"),
       "forgets to rescale the running sum when the maximum grows"),
    _m("tiled_acc_not_rescaled", "tiled", [("acc = acc * correction + p @", "acc = acc + p @")],
       ("test_tiled_visible", "test_tiled_correct"),
       "forgets to rescale the accumulated output when the maximum grows"),
    _m("tiled_tile_local_positions", "tiled",
       [("torch.arange(k0, k1, device=q.device)[None, :]",
         "torch.arange(0, k1 - k0, device=q.device)[None, :]")],
       ("test_tiled_visible", "test_tiled_correct"),
       "causal mask uses key positions within the tile, not in the sequence"),
    _m("tiled_one_big_tile", "tiled",
       [("    offset = t_k - t_q  # query i sits at position offset + i\n",
         "    offset = t_k - t_q  # query i sits at position offset + i\n"
         "    block_size = max(t_q, t_k)  # one tile: simpler and just as exact\n")],
       ("test_tiled_memory",),
       "a single tile of all queries and keys: exact, but holds the whole T x T score matrix"),
    _m("tiled_key_by_key", "tiled",
       [("        for k0 in range(0, stop, block_size):  # inner loop: tiles of keys, online softmax\n"
         "            k1 = min(k0 + block_size, stop)\n",
         "        for k0 in range(0, stop):  # the textbook online softmax, one key at a time\n"
         "            k1 = k0 + 1\n")],
       ("test_tiled_speed",), "an online softmax over single keys: tiny memory but a Python loop per key"),
    _m("tiled_max_starts_at_zero", "tiled",
       [('row_max = torch.full((*q_tile.shape[:-1], 1), float("-inf"), dtype=acc_dtype',
         "row_max = torch.full((*q_tile.shape[:-1], 1), 0.0, dtype=acc_dtype")],
       ("test_tiled_correct",),
        "starts the running max at 0: rows whose scores are all very negative give 0/0"),
    _m("tiled_max_before_mask", "tiled",
       [("            s = q_tile @ k[..., k0:k1, :].to(acc_dtype).transpose(-2, -1)\n",
         "            s = q_tile @ k[..., k0:k1, :].to(acc_dtype).transpose(-2, -1)\n"
         "            tile_max = s.amax(dim=-1, keepdim=True)\n"),
        ("torch.maximum(row_max, s.amax(dim=-1, keepdim=True))", "torch.maximum(row_max, tile_max)")],
       ("test_tiled_correct",),
       "takes the tile's maximum before masking: a hidden key scoring far above the visible ones "
       "underflows them"),
    _m("tiled_accumulates_in_input_dtype", "tiled",
       [("acc_dtype = torch.promote_types(q.dtype, torch.float32)", "acc_dtype = q.dtype")],
       ("test_tiled_correct",),
        "keeps the running max, sum and output in bfloat16: they drift over many tiles"),
    _m("tiled_exp_in_place", "tiled",
       [("p = torch.exp(s - new_max)", "p = s.sub_(new_max).exp_()")],
       ("test_tiled_grad",), "exponentiates s in place: autograd needed s, backward() raises"),
    _m("tiled_mask_on_default_device", "tiled",
       [("torch.arange(k0, k1, device=q.device)", "torch.arange(k0, k1)"),
        ("torch.arange(offset + q0, offset + q1, device=q.device)",
         "torch.arange(offset + q0, offset + q1)")],
       ("test_tiled_correct",), "builds the causal mask on the default device: fails on a GPU"),
    _m("tiled_scales_q_in_place", "tiled",
       [("q_tile = q[..., q0:q1, :].to(acc_dtype) * (1.0 / math.sqrt(d))",
         "q_tile = q[..., q0:q1, :].to(acc_dtype).mul_(1.0 / math.sqrt(d))")],
       ("test_tiled_visible", "test_tiled_correct"),
       "scales a slice of q in place: for float32 inputs that is the caller's tensor"),
    _m("tiled_causal_top_left", "tiled",
       [("    offset = t_k - t_q  # query i sits at position offset + i\n",
         "    offset = 0  # query i sits at position i\n")],
       ("test_tiled_correct", "test_tiled_grad"),
       "aligns the causal mask top-left (query i at position i): wrong when there are more keys than "
       "queries"),
    Mutant(
        name="tiled_query_tiles_full_softmax",
        cell="tiled",
        source="""def tiled_attention(q, k, v, causal=False, block_size=128):
    \"\"\"Tiles the queries only: each tile takes a full softmax over all the keys.\"\"\"
    t_q, t_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    offset = t_k - t_q
    out_tiles = []
    for q0 in range(0, t_q, block_size):
        q1 = min(q0 + block_size, t_q)
        s = (q[..., q0:q1, :] @ k.transpose(-2, -1)) / math.sqrt(d)
        if causal:
            hidden = (torch.arange(t_k, device=q.device)[None, :]
                      > torch.arange(offset + q0, offset + q1, device=q.device)[:, None])
            s = s.masked_fill(hidden, float("-inf"))
        out_tiles.append((torch.softmax(s.float(), dim=-1) @ v.float()).to(q.dtype))
    return torch.cat(out_tiles, dim=-2)
""",
        must_fail=("test_tiled_memory",),
        why="tiles the queries and takes a full softmax over all keys per tile: memory grows like T_k",
    ),
    # --- 5. FlashAttention backward -----------------------------------------------------------
    _m("flash_forgets_delta", "flash",
       [("ds = p * (do_tile @ v_tile.transpose(-2, -1) - delta_tile)",
        "ds = p * (do_tile @ v_tile.transpose(-2, -1))")],
       FLASH, "forgets D = rowsum(dO * O) in dS = P * (dP - D)"),
    _m("flash_saves_row_max", "flash",
       [("lse[..., q0:q1] = (row_max + torch.log(row_sum)).squeeze(-1)",
        "lse[..., q0:q1] = row_max.squeeze(-1)")],
       FLASH, "saves the running max m instead of m + log l: the recomputed P = exp(S - m) is not "
       "normalised"),
    _m("flash_mask_after_exp", "flash",
       [('                    s.masked_fill_(hidden, float("-inf"))'
         '  # before exp: e^(-inf) = 0, never inf * 0\n', ""),
        ("                p = torch.exp(s - lse_tile)  # the forward's probabilities, recomputed\n",
         "                p = torch.exp(s - lse_tile)\n"
         "                if causal and k1 - 1 > offset + q0:\n"
         "                    p = p * ~hidden  # zero the hidden keys after exp\n")],
       ("test_flash_hidden",),
        "masks by multiplying after exp: a hidden score far above L overflows, inf * 0 = NaN"),
    _m("flash_saves_probabilities", "flash",
       [("        ctx.save_for_backward(q, k, v, out, lse)\n",
         "        scores = (q @ k.transpose(-2, -1)) * scale\n"
         "        if causal:\n"
         "            visible = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).tril(offset)\n"
         "            scores = scores.masked_fill(~visible, float(\"-inf\"))\n"
         "        ctx.save_for_backward(q, k, v, out, torch.softmax(scores, dim=-1))"
         "  # keep P, skip the recompute\n"),
        ("        q, k, v, out, lse = ctx.saved_tensors\n",
         "        q, k, v, out, probs = ctx.saved_tensors\n"),
        ("            lse_tile, delta_tile = lse[..., q0:q1, None], delta[..., q0:q1, :]\n",
         "            delta_tile = delta[..., q0:q1, :]\n"),
        ("                p = torch.exp(s - lse_tile)  # the forward's probabilities, recomputed\n",
         "                p = probs[..., q0:q1, k0:k1]\n")],
       ("test_flash_hidden", "test_flash_memory"),
        "saves the T x T probabilities P instead of the log-sum-exp L"),
    _m("flash_ds_unscaled", "flash",
       [("dq[..., q0:q1, :] += (ds @ k_tile) * scale", "dq[..., q0:q1, :] += ds @ k_tile"),
        ("dk[..., k0:k1, :] += (ds.transpose(-2, -1) @ q_tile) * scale",
         "dk[..., k0:k1, :] += ds.transpose(-2, -1) @ q_tile")],
       FLASH, "forgets the 1/sqrt(d) of the scores in dQ and dK"),
    _m("flash_ds_scale_by_d", "flash",
       [("        scale, offset = 1.0 / math.sqrt(d), t_k - t_q\n        delta",
         "        scale, offset = 1.0 / math.sqrt(d), t_k - t_q\n"
         "        grad_scale = 1.0 / d\n        delta"),
        ("dq[..., q0:q1, :] += (ds @ k_tile) * scale", "dq[..., q0:q1, :] += (ds @ k_tile) * grad_scale"),
        ("dk[..., k0:k1, :] += (ds.transpose(-2, -1) @ q_tile) * scale",
         "dk[..., k0:k1, :] += (ds.transpose(-2, -1) @ q_tile) * grad_scale")],
       FLASH, "scales dQ and dK by 1/d instead of 1/sqrt(d)"),
    _m("flash_scales_q_in_place", "flash",
       [("            q_tile = q[..., q0:q1, :] * scale\n",
         "            q_tile = q[..., q0:q1, :].mul_(scale)\n")],
       FLASH, "scales q's tiles in place in the forward: the caller's q changes, and the backward reads a "
       "q that was already scaled"),
    _m("flash_backward_no_skip", "flash",
       [("            stop = offset + q1 if causal else t_k\n            for k0",
         "            stop = t_k  # every key tile: the mask zeroes the hidden ones\n            for k0")],
       ("test_flash_work",),
        "the backward masks the tiles above the diagonal instead of skipping them: twice the work"),
    # --- 6. KV cache -------------------------------------------------------------------------
    _m("cache_prepends", "kv_cache",
       [("torch.cat([self.k, k_new], dim=-2)", "torch.cat([k_new, self.k], dim=-2)"),
        ("torch.cat([self.v, v_new], dim=-2)", "torch.cat([v_new, self.v], dim=-2)")],
       ("test_cache_hidden",), "puts the new keys and values before the cached ones"),
    _m("cache_positions_restart", "kv_cache",
       [("torch.arange(start, start + t, device=x_new.device)", "torch.arange(t, device=x_new.device)")],
       ("test_cache_visible", "test_cache_hidden"), "new tokens get positions from 0 instead of len(cache)"),
    _m("cache_positions_off_by_one", "kv_cache",
       [("torch.arange(start, start + t, device=x_new.device)",
         "torch.arange(start + 1, start + t + 1, device=x_new.device)")],
       ("test_cache_hidden",),
       "positions start at len(cache) + 1: the cached keys disagree with the model's"),
    _m("cache_repeated_heads", "kv_cache",
       [("    k_all, v_all = cache.append(apply_rope(k, cos, sin), v)\n"
         "    groups = attn.num_heads // attn.num_kv_heads\n"
         "    out = attention(apply_rope(q, cos, sin), repeat_kv(k_all, groups), "
         "repeat_kv(v_all, groups), causal=True)\n",
         "    groups = attn.num_heads // attn.num_kv_heads\n"
         "    k_all, v_all = cache.append(repeat_kv(apply_rope(k, cos, sin), groups), repeat_kv(v, groups))\n"
         "    out = attention(apply_rope(q, cos, sin), k_all, v_all, causal=True)\n")],
       ("test_cache_visible", "test_cache_hidden"),
       "caches the repeated kv heads: GQA's memory saving is lost"),
    _m("cache_positions_on_default_device", "kv_cache",
       [("torch.arange(start, start + t, device=x_new.device)", "torch.arange(start, start + t)")],
       ("test_cache_hidden",), "makes the new positions on the default device: fails on a GPU"),
    _m("cache_drops_biases", "kv_cache",
       [("attn.q_proj(x_new)", "F.linear(x_new, attn.q_proj.weight)"),
        ("attn.k_proj(x_new)", "F.linear(x_new, attn.k_proj.weight)"),
        ("attn.v_proj(x_new)", "F.linear(x_new, attn.v_proj.weight)")],
       ("test_cache_hidden",), "multiplies by the projections' weights and forgets their biases"),
    _m("cache_causal_only_prefill", "kv_cache",
       [("repeat_kv(v_all, groups), causal=True)", "repeat_kv(v_all, groups), causal=start == 0)")],
       ("test_cache_hidden",),
       "masks causally only in the prefill: a chunk of new tokens after the prefill sees its own future"),
    _m("cache_keys_before_rope", "kv_cache",
       [("    k_all, v_all = cache.append(apply_rope(k, cos, sin), v)\n",
         "    k_all, v_all = cache.append(k, v)  # rotate the whole cache at every step instead\n"
         "    cos_all, sin_all = rope_cos_sin(torch.arange(start + t, device=x_new.device), attn.head_dim,\n"
         "                                    attn.rope_base)\n"
         "    k_all = apply_rope(k_all, cos_all, sin_all)\n")],
       ("test_cache_hidden",), "caches the keys before RoPE and rotates the whole cache again at every step"),
    Mutant(
        name="cache_recomputes_prefix",
        cell="kv_cache",
        source=_answer("kv_cache").split("def decode_step")[0]
        + '''def decode_step(attn, x_new, cache):
    """Keeps the inputs and recomputes everything: right outputs, no saving."""
    t_new = x_new.shape[1]
    x_all = x_new if getattr(cache, "x", None) is None else torch.cat([cache.x, x_new], dim=1)
    cache.x = x_all
    b, t, _ = x_all.shape
    k = attn.k_proj(x_all).view(b, t, attn.num_kv_heads, attn.head_dim).transpose(1, 2)
    v = attn.v_proj(x_all).view(b, t, attn.num_kv_heads, attn.head_dim).transpose(1, 2)
    cos, sin = rope_cos_sin(torch.arange(t, device=x_all.device), attn.head_dim, attn.rope_base)
    cache.k, cache.v = apply_rope(k, cos, sin), v
    return attn(x_all)[:, -t_new:]
''',
        must_fail=("test_cache_work",),
        why="stores the inputs and recomputes the whole prefix at every step",
    ),
]
