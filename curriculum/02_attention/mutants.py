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
    # --- 5. KV cache -------------------------------------------------------------------------
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
