"""Wrong-but-plausible answers for the serving unit; each must lose points.

Every mutant is the reference answer cell (read from `serving.py`, solution markers removed)
with one mistake edited in, so a mutant cannot drift from the reference: if the reference
text changes and an edit no longer applies, loading this file fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from graders.authoring.mutants import EditedMutants

_m = EditedMutants(Path(__file__).resolve().parent / "serving.py")


PROC = ("test_processors_visible", "test_processors_hidden")
SAMPLER = ("test_sampler_visible", "test_sampler_hidden")
MINP = ("test_min_p_visible", "test_min_p_hidden")
STOPPING = ("test_stopping_visible", "test_stopping_hidden")
BATCHED = ("test_batched_visible", "test_batched_hidden")
PAGED = ("test_paged_visible", "test_paged_logits", "test_paged_memory")
KVMEM = ("test_kv_memory_visible", "test_kv_memory_hidden")
PREFIX = ("test_prefix_visible", "test_prefix_logits", "test_prefix_trace", "test_prefix_eviction")
CONT = ("test_continuous_visible", "test_batching_hidden")
STATIC = ("test_static_visible", "test_batching_hidden")
SPEC = ("test_speculative_visible", "test_speculative_hidden")
SPECMATH = ("test_spec_math_visible", "test_spec_math_hidden")
SPECSAMP = ("test_spec_sampling_visible", "test_spec_sampling_hidden")
LOAD = ("test_load_visible", "test_load_hidden")
SUMMARY = ("test_summary_visible", "test_summary_hidden")
INTENSITY = ("test_intensity_visible", "test_intensity_hidden")

_TOP_P_BODY = """    ascending, order = torch.sort(logits, dim=-1)
    cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= 1 - p
    remove[..., -1] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
"""
_TOP_P_DESCENDING = """    descending, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = descending.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative > p
    remove[..., 0] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
"""
_TOP_K_BODY = """    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))
"""
_TOP_K_BY_INDEX = """    top = torch.topk(logits, k, dim=-1).indices
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, top, True)
    return logits.masked_fill(~keep, float("-inf"))
"""
_SAMPLER_ORDER = """    logits = apply_temperature(logits, temperature)
    if top_k > 0:
        logits = top_k_filter(logits, top_k)
    if top_p < 1.0:
        logits = top_p_filter(logits, top_p)
"""
_SAMPLER_FILTERS_FIRST = """    if top_k > 0:
        logits = top_k_filter(logits, top_k)
    if top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    logits = apply_temperature(logits, temperature)
"""
_GREEDY_FIRST = """    if repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, input_ids, repetition_penalty)
    if temperature == 0:
        return logits.argmax(dim=-1)
"""
_GREEDY_BEFORE_PENALTY = """    if temperature == 0:
        return logits.argmax(dim=-1)
    if repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, input_ids, repetition_penalty)
"""
_NO_CACHE = [
    ("past_key_values=cache,\n                    use_cache=True", "use_cache=False"),
    ("input_ids = token[:, None]", "input_ids = torch.cat([input_ids, token[:, None]], dim=1)"),
    ("positions = positions[:, -1:] + 1", "positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)"),
]
_STATIC_FREE = """        if all(len(self.outputs[r]) >= self.requests[r][1] for r in self.running):
            for rid in self.running:
                self.cache.free(rid)
            self.running = []
"""
_LOAD_T0 = (
    "    t0, skipped, added, finished = clock(), 0.0, 0, 0\n",
    "    skipped, added, finished = 0.0, 0, 0\n",
)

MUTANTS = [
    # --- 1. logits processors ----------------------------------------------------------------
    _m(
        "penalty_divides_negatives",
        "processors",
        [("seen = torch.where(seen < 0, seen * penalty, seen / penalty)", "seen = seen / penalty")],
        PROC,
        "divides every seen logit by the penalty: a negative logit moves towards 0 and becomes MORE likely",
    ),
    _m(
        "penalty_in_place",
        "processors",
        [("return logits.scatter(-1, input_ids, seen)", "return logits.scatter_(-1, input_ids, seen)")],
        PROC,
        "scatters in place: the caller's raw logits are overwritten",
    ),
    _m(
        "temperature_multiplies",
        "processors",
        [("return logits / temperature", "return logits * temperature")],
        PROC,
        "multiplies by the temperature: T < 1 flattens instead of sharpening",
    ),
    _m(
        "top_k_drops_ties",
        "processors",
        [(_TOP_K_BODY, _TOP_K_BY_INDEX)],
        PROC,
        "keeps exactly the k indices topk returns: a logit tied with the k-th largest is dropped",
    ),
    _m(
        "top_p_drops_top_token",
        "processors",
        [("    remove[..., -1] = False\n", "")],
        ("test_processors_hidden",),
        "forgets to keep the most likely token: p = 0 leaves nothing to sample",
    ),
    _m(
        "top_p_descending_cut",
        "processors",
        [(_TOP_P_BODY, _TOP_P_DESCENDING)],
        PROC,
        "sorts descending and removes the tokens past mass p: the token that crosses p is removed too",
    ),
    # --- 1b. the sampler ----------------------------------------------------------------------
    _m(
        "sampler_filters_before_temperature",
        "sampler",
        [(_SAMPLER_ORDER, _SAMPLER_FILTERS_FIRST)],
        ("test_sampler_hidden",),
        "applies top-k and top-p before the temperature: top-p keeps a different set",
    ),
    _m(
        "sampler_global_rng",
        "sampler",
        [(", generator=generator)[:, 0]", ")[:, 0]")],
        SAMPLER,
        "draws from the global random state: seeding a request's generator does not reproduce it",
    ),
    _m(
        "sampler_greedy_skips_penalty",
        "sampler",
        [(_GREEDY_FIRST, _GREEDY_BEFORE_PENALTY)],
        ("test_sampler_hidden",),
        "returns the argmax before applying the repetition penalty",
    ),
    _m(
        "sampler_no_temperature",
        "sampler",
        [("    logits = apply_temperature(logits, temperature)\n", "")],
        ("test_sampler_hidden",),
        "never applies the temperature",
    ),
    _m(
        "sampler_argmax_flat",
        "sampler",
        [("return logits.argmax(dim=-1)", "return logits.argmax()")],
        SAMPLER,
        "argmax without dim: one index into the flattened batch instead of one token per row",
    ),
    # --- 1c. min-p and EOS suppression ---------------------------------------------------------
    _m(
        "min_p_absolute_threshold",
        "min_p",
        [("probs < min_p * probs.amax(dim=-1, keepdim=True)", "probs < min_p")],
        MINP,
        "cuts at the absolute probability min_p (a fixed floor) instead of min_p times the top probability",
    ),
    _m(
        "min_p_on_logits",
        "min_p",
        [
            (
                "probs < min_p * probs.amax(dim=-1, keepdim=True)",
                "logits < min_p * logits.amax(dim=-1, keepdim=True)",
            )
        ],
        MINP,
        "scales the largest logit instead of the largest probability",
    ),
    _m(
        "min_p_removes_ties_at_cut",
        "min_p",
        [("probs < min_p * probs.amax", "probs <= min_p * probs.amax")],
        ("test_min_p_hidden",),
        "removes tokens exactly at the cut: min_p = 1 removes even the most likely token",
    ),
    _m(
        "suppress_eos_one_step_too_long",
        "min_p",
        [("if num_generated < min_new_tokens:", "if num_generated <= min_new_tokens:")],
        MINP,
        "masks EOS for one step more than min_new_tokens asks",
    ),
    _m(
        "suppress_eos_in_place",
        "min_p",
        [("out = logits.clone()", "out = logits")],
        MINP,
        "writes -inf into the caller's logits",
    ),
    # --- 1d. stopping ---------------------------------------------------------------------------
    _m(
        "stop_after_min_new_tokens",
        "stopping",
        [("if len(self.tokens) >= self.min_new_tokens:", "if len(self.tokens) > self.min_new_tokens:")],
        ("test_stopping_hidden",),
        "ignores an EOS or stop string on the min_new_tokens-th token itself (a blind wrong answer)",
    ),
    _m(
        "stop_anywhere_in_text",
        "stopping",
        [("text.find(s, max(0, before - len(s) + 1))", "text.find(s)")],
        ("test_stopping_hidden",),
        "looks for a stop string anywhere in the text: one completed before min_new_tokens stops the "
        "request at the next token",
    ),
    _m(
        "stop_must_start_in_new_token",
        "stopping",
        [("text.find(s, max(0, before - len(s) + 1))", "text.find(s, before)")],
        STOPPING,
        "only finds stop strings that start inside the newest token: misses one spanning a token boundary",
    ),
    _m(
        "stop_text_keeps_stop_string",
        "stopping",
        [
            (
                "return self.tokenizer.decode(self.tokens)[:self._stop_start()]",
                "return self.tokenizer.decode(self.tokens)",
            )
        ],
        STOPPING,
        "returns the text with the stop string still in it",
    ),
    _m(
        "stop_text_keeps_eos",
        "stopping",
        [
            (
                "                return self.tokenizer.decode(self.tokens[:-1])",
                "                return self.tokenizer.decode(self.tokens)",
            )
        ],
        STOPPING,
        "shows the EOS token to the user",
    ),
    _m(
        "stop_ignores_min_new_tokens",
        "stopping",
        [("if len(self.tokens) >= self.min_new_tokens:", "if True:")],
        ("test_stopping_hidden",),
        "lets EOS and stop strings end the request before min_new_tokens",
    ),
    _m(
        "stop_ignore_eos_ignored",
        "stopping",
        [
            (
                "(not self.ignore_eos and self.tokens[-1] in self.eos_token_ids)",
                "(self.tokens[-1] in self.eos_token_ids)",
            )
        ],
        ("test_stopping_hidden",),
        "ends on EOS even with ignore_eos=True",
    ),
    # --- 2. batched generation ----------------------------------------------------------------
    _m(
        "right_padding",
        "batched",
        [
            ("input_ids[row, width - len(p):] =", "input_ids[row, :len(p)] ="),
            ("mask[row, width - len(p):] = 1", "mask[row, :len(p)] = 1"),
        ],
        BATCHED,
        "pads on the right: short rows predict their next token after the padding",
    ),
    _m(
        "positions_count_padding",
        "batched",
        [
            (
                "positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)",
                "positions = torch.arange(width).repeat(len(prompts), 1)",
            )
        ],
        BATCHED,
        "numbers positions over the padded row: each prompt's positions start at its padding length",
    ),
    _m(
        "batched_recomputes_without_cache",
        "batched",
        _NO_CACHE,
        ("test_batched_hidden",),
        "feeds the whole sequence every step instead of using the KV cache",
    ),
    _m(
        "batched_mask_not_grown",
        "batched",
        [("mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)", "mask = mask[:, -1:]")],
        BATCHED,
        "passes only the new column's mask during decoding: the padded keys in the cache are no longer "
        "masked",
    ),
    # --- 3. paged KV cache --------------------------------------------------------------------
    _m(
        "paged_no_copy_on_write",
        "paged_cache",
        [("copy_last = start % size != 0 and self.ref_counts[table[-1]] > 1", "copy_last = False")],
        ("test_paged_memory",),
        "writes into a shared, partly filled block: a fork overwrites its siblings' keys",
    ),
    _m(
        "paged_fork_no_refcount",
        "paged_cache",
        [
            (
                "        for block in self.block_tables[child_id]:\n"
                "            self.ref_counts[block] += 1\n",
                "",
            )
        ],
        ("test_paged_memory",),
        "fork shares the table but not the reference counts: freeing the parent frees "
        "blocks the children still read",
    ),
    _m(
        "paged_new_blocks_per_append",
        "paged_cache",
        [("new_blocks = -(-(start + n) // size) - len(table)", "new_blocks = -(-n // size)")],
        ("test_paged_memory",),
        "takes ceil(n / block_size) new blocks for every append, ignoring room in the last one",
    ),
    _m(
        "paged_gather_untrimmed",
        "paged_cache",
        [
            (
                "self.k[layer, table].reshape(-1, heads, dim)[:n]",
                "self.k[layer, table].reshape(-1, heads, dim)",
            ),
            (
                "self.v[layer, table].reshape(-1, heads, dim)[:n]",
                "self.v[layer, table].reshape(-1, heads, dim)",
            ),
        ],
        PAGED,
        "gathers whole blocks: the empty tail of the last block is attended to",
    ),
    _m(
        "paged_free_shared",
        "paged_cache",
        [
            (
                "            if self.ref_counts[block] == 0:\n"
                "                self.free_blocks.append(block)\n",
                "            self.free_blocks.append(block)\n",
            )
        ],
        ("test_paged_memory",),
        "returns every block of a freed sequence to the free list, even those still shared",
    ),
    _m(
        "paged_slots_contiguous",
        "paged_cache",
        [("return blocks * size + positions % size", "return positions")],
        PAGED,
        "uses the token index as the slot, as if the sequence's blocks were adjacent and started at block 0",
    ),
    # --- 3c. prefix caching -------------------------------------------------------------------
    _m(
        "prefix_hash_own_block_only",
        "prefix_cache",
        [
            (
                "            key = hash((key, tuple(tokens[i * size:(i + 1) * size])))\n"
                "            block = self.cached.get(key)",
                "            key = hash(tuple(tokens[i * size:(i + 1) * size]))\n"
                "            block = self.cached.get(key)",
            ),
            (
                "            key = hash((key, tuple(tokens[i * size:(i + 1) * size])))\n"
                "            if key not in self.cached",
                "            key = hash(tuple(tokens[i * size:(i + 1) * size]))\n"
                "            if key not in self.cached",
            ),
        ],
        ("test_prefix_logits",),
        "names a block by its own tokens only: the same tokens after another beginning (or at another "
        "position) reuse keys and values computed in a different context",
    ),
    _m(
        "prefix_reuse_whole_prompt",
        "prefix_cache",
        [("for i in range((len(tokens) - 1) // size):", "for i in range(len(tokens) // size):")],
        ("test_prefix_visible", "test_prefix_logits"),
        "reuses every cached block of the prompt, even all of it: no token is left to compute the "
        "logits that choose the first new token",
    ),
    _m(
        "prefix_forget_on_free",
        "prefix_cache",
        [
            (
                "            if self.ref_counts[block] == 0 and block in self.block_hash:\n"
                "                self.free_blocks.remove(block)\n"
                "                self.evictable[block] = None\n",
                "            if self.ref_counts[block] == 0 and block in self.block_hash:\n"
                "                del self.cached[self.block_hash.pop(block)]\n",
            )
        ],
        ("test_prefix_visible", "test_prefix_trace", "test_prefix_eviction"),
        "forgets a block's hash when its last sequence ends: a system prompt is reused only while "
        "some request using it is still running",
    ),
    _m(
        "prefix_evict_most_recent",
        "prefix_cache",
        [("block, _ = self.evictable.popitem(last=False)", "block, _ = self.evictable.popitem(last=True)")],
        ("test_prefix_eviction",),
        "evicts the most recently used evictable block instead of the least recently used",
    ),
    _m(
        "prefix_free_in_table_order",
        "prefix_cache",
        [("for block in reversed(table):", "for block in table:")],
        ("test_prefix_eviction",),
        "queues a finished sequence's blocks first block first, so its shared system-prompt blocks "
        "are evicted before its private tail",
    ),
    _m(
        "prefix_no_refcount_on_hit",
        "prefix_cache",
        [
            (
                "            self.ref_counts[block] += 1\n            table.append(block)",
                "            table.append(block)",
            )
        ],
        ("test_prefix_visible", "test_prefix_logits"),
        "reuses a block without raising its reference count: freeing its first owner frees (or "
        "evicts) a block another sequence still reads",
    ),
    _m(
        "prefix_register_partial_block",
        "prefix_cache",
        [
            (
                "for i in range(len(tokens) // size):\n            key",
                "for i in range(-(-len(tokens) // size)):\n            key",
            )
        ],
        ("test_prefix_logits", "test_prefix_trace"),
        "registers the last, partly filled block too: a later prompt reuses a block whose tail holds "
        "another sequence's tokens (or none)",
    ),
    _m(
        "prefix_evict_all_or_fail",
        "prefix_cache",
        [
            (
                "if len(self.free_blocks) < need <= len(self.free_blocks) + len(self.evictable):",
                "if len(self.free_blocks) < need:",
            ),
            (
                "                block, _ = self.evictable.popitem(last=False)",
                "                if not self.evictable:\n"
                "                    break\n"
                "                block, _ = self.evictable.popitem(last=False)",
            ),
        ],
        ("test_prefix_eviction",),
        "evicts cached blocks even when the allocation fails anyway: a failed append_slots destroys "
        "cached prefixes",
    ),
    # --- 3b. KV memory ------------------------------------------------------------------------
    _m(
        "kv_head_dim_from_hidden",
        "kv_memory",
        [
            (
                'head_dim = getattr(config, "head_dim", None) or '
                "config.hidden_size // config.num_attention_heads",
                "head_dim = config.hidden_size // config.num_attention_heads",
            )
        ],
        ("test_kv_memory_hidden",),
        "always takes head_dim = hidden / heads, wrong for configs that set head_dim",
    ),
    _m(
        "kv_blocks_off_by_one",
        "kv_memory",
        [("-(-n // block_size)", "n // block_size + 1")],
        KVMEM,
        "counts n // block_size + 1 blocks: a sequence filling its blocks exactly gets an extra one",
    ),
    _m(
        "kv_keys_only",
        "kv_memory",
        [("return 2 * config.num_hidden_layers", "return config.num_hidden_layers")],
        KVMEM,
        "counts the keys and forgets the values",
    ),
    _m(
        "kv_prealloc_to_longest",
        "kv_memory",
        [
            (
                '"preallocated": len(lengths) * max_len * bytes_per_token',
                '"preallocated": len(lengths) * max(lengths, default=0) * bytes_per_token',
            )
        ],
        KVMEM,
        "preallocates to the longest sequence seen instead of max_len",
    ),
    # --- 4. continuous batching ---------------------------------------------------------------
    _m(
        "continuous_never_frees",
        "continuous",
        [("            self.cache.free(rid)\n", "")],
        ("test_batching_hidden",),
        "evicts finished requests from the batch but never frees their cache",
    ),
    _m(
        "continuous_batch_overfull",
        "continuous",
        [
            (
                "while self.queue and len(self.running) < self.max_batch:",
                "while self.queue and len(self.running) <= self.max_batch:",
            )
        ],
        CONT,
        "admits while len(running) <= max_batch: one request too many",
    ),
    _m(
        "continuous_one_token_too_many",
        "continuous",
        [("if len(self.outputs[r]) >= self.requests[r][1]", "if len(self.outputs[r]) > self.requests[r][1]")],
        CONT,
        "finishes a request only after it has more than max_new_tokens tokens",
    ),
    _m(
        "continuous_prefill_last_token",
        "continuous",
        [("batch.append((rid, self.requests[rid][0]))", "batch.append((rid, self.requests[rid][0][-1:]))")],
        CONT,
        "feeds only the last prompt token of a new request, as if it were a decode step",
    ),
    _m(
        "continuous_counts_requests",
        "continuous",
        [
            (
                "self.tokens_processed += sum(len(tokens) for _, tokens in batch)",
                "self.tokens_processed += len(batch)",
            )
        ],
        ("test_batching_hidden",),
        "counts sequences per step instead of the token positions fed",
    ),
    _m(
        "continuous_pass_per_request",
        "continuous",
        [
            (
                "logits = run_model(self.model, self.cache, batch)",
                "logits = [run_model(self.model, self.cache, [entry])[0] for entry in batch]",
            )
        ],
        ("test_batching_throughput",),
        "one run_model call per request: the right tokens, schedule and positions, but every step reads the "
        "weights once per request (no batching at all)",
    ),
    _m(
        "continuous_prefill_own_pass",
        "continuous",
        [
            (
                "batch = [(rid, [self.outputs[rid][-1]]) for rid in self.running]",
                "batch = [(rid, [self.outputs[rid][-1]]) for rid in self.running]\n"
                "        decoding = len(batch)",
            ),
            (
                "logits = run_model(self.model, self.cache, batch)",
                "logits = [out for part in (batch[:decoding], batch[decoding:]) if part\n"
                "                  for out in run_model(self.model, self.cache, part)]",
            ),
        ],
        ("test_batching_throughput",),
        "runs the newcomers' prefill and the others' decode in two forward passes: two weight reads in "
        "every step where a request joins",
    ),
    # --- 4b. static batching ------------------------------------------------------------------
    _m(
        "static_drops_finished_rows",
        "static",
        [
            (
                "batch = [(rid, [self.outputs[rid][-1]]) for rid in self.running]",
                "batch = [(rid, [self.outputs[rid][-1]]) for rid in self.running\n"
                "                     if len(self.outputs[rid]) < self.requests[rid][1]]",
            )
        ],
        STATIC,
        "leaves finished members out of the forward pass: not static batching (a batch is a fixed tensor)",
    ),
    _m(
        "static_no_waste_count",
        "static",
        [("        self.tokens_wasted += sum(len(tokens) for rid, tokens in batch if rid in done)\n", "")],
        STATIC,
        "never counts the positions fed for finished members",
    ),
    _m(
        "static_ends_at_first_finish",
        "static",
        [
            (
                "if all(len(self.outputs[r]) >= self.requests[r][1] for r in self.running):",
                "if any(len(self.outputs[r]) >= self.requests[r][1] for r in self.running):",
            )
        ],
        STATIC,
        "ends the batch when its first member finishes: the others stop short",
    ),
    _m(
        "static_never_frees",
        "static",
        [
            (
                _STATIC_FREE,
                _STATIC_FREE.replace(
                    "            for rid in self.running:\n                self.cache.free(rid)\n", ""
                ),
            )
        ],
        ("test_batching_hidden",),
        "ends the batch without freeing its members' caches",
    ),
    # --- 5. speculative decoding --------------------------------------------------------------
    _m(
        "spec_no_truncate",
        "speculative",
        [
            (
                "        for cache in (target_cache, draft_cache):\n"
                "            cache.truncate(0, len(tokens) - 1)\n",
                "",
            )
        ],
        SPEC,
        "never rolls the caches back: rejected proposals stay in the keys and values",
    ),
    _m(
        "spec_uncapped_gamma",
        "speculative",
        [
            ("g = min(gamma, max_new_tokens - (len(tokens) - start) - 1)", "g = gamma"),
            ("return tokens[start:], stats", "return tokens[start:start + max_new_tokens], stats"),
        ],
        ("test_speculative_hidden",),
        "always proposes gamma tokens and cuts the overshoot afterwards: wasted proposals and wrong counts",
    ),
    _m(
        "spec_rejected_counts_tokens",
        "speculative",
        [('stats["rejected"] += accepted < g', 'stats["rejected"] += g - accepted')],
        ("test_speculative_hidden",),
        "counts the rejected or unjudged proposals instead of the rounds that ended in a rejection",
    ),
    _m(
        "spec_draft_calls_per_round",
        "speculative",
        [('stats["draft_calls"] += g', 'stats["draft_calls"] += 1')],
        ("test_speculative_hidden",),
        "counts one draft call per round, though the draft runs once per proposal",
    ),
    _m(
        "spec_target_skips_uncached",
        "speculative",
        [
            (
                "verify = run_model(model, target_cache, "
                "[(0, tokens[target_cache.length(0):] + proposal)])[0]",
                "verify = run_model(model, target_cache, [(0, tokens[-1:] + proposal)])[0]",
            )
        ],
        SPEC,
        "feeds the target only the newest token and the proposals: the prompt never reaches its cache",
    ),
    # --- 5b. speed-up formula -----------------------------------------------------------------
    _m(
        "spec_math_exponent_gamma",
        "spec_math",
        [("return (1 - alpha ** (gamma + 1)) / (1 - alpha)", "return (1 - alpha ** gamma) / (1 - alpha)")],
        SPECMATH,
        "forgets the target's own token: alpha ** gamma instead of alpha ** (gamma + 1)",
    ),
    _m(
        "spec_math_no_target_cost",
        "spec_math",
        [("/ (gamma * cost_ratio + 1)", "/ (gamma * cost_ratio)")],
        SPECMATH,
        "leaves the target's own call out of the cost of a round",
    ),
    _m(
        "spec_math_alpha_one",
        "spec_math",
        [("return float(gamma + 1)", "return float(gamma)")],
        ("test_spec_math_hidden",),
        "returns gamma when every proposal is accepted, forgetting the bonus token",
    ),
    # --- 5c. speculative sampling -------------------------------------------------------------
    _m(
        "spec_sampling_residual_is_p",
        "spec_sampling",
        [("residual = (p[i] - q[i]).clamp(min=0)", "residual = p[i]")],
        ("test_spec_sampling_hidden",),
        "resamples from the target p after a rejection instead of the residual max(p - q, 0)",
    ),
    _m(
        "spec_sampling_ratio_inverted",
        "spec_sampling",
        [("if u < p[i, x] / q[i, x]:", "if u < q[i, x] / p[i, x]:")],
        SPECSAMP,
        "accepts with probability q/p instead of p/q",
    ),
    _m(
        "spec_sampling_no_bonus",
        "spec_sampling",
        [("    emitted.append(int(torch.multinomial(p[len(emitted)], 1, generator=generator)))\n", "")],
        SPECSAMP,
        "returns only the accepted draft tokens when none was rejected: no bonus token",
    ),
    _m(
        "spec_sampling_greedy_accept",
        "spec_sampling",
        [("if u < p[i, x] / q[i, x]:", "if p[i, x] >= q[i, x]:")],
        ("test_spec_sampling_hidden",),
        "accepts deterministically when p(x) >= q(x), rejects otherwise",
    ),
    _m(
        "spec_sampling_global_rng",
        "spec_sampling",
        [("u = torch.rand((), generator=generator)", "u = torch.rand(())")],
        ("test_spec_sampling_hidden",),
        "draws the acceptance test from the global random state",
    ),
    # --- 6. load generator --------------------------------------------------------------------
    _m(
        "load_clock_before_warmup",
        "load",
        [("    for i in range(warmup):\n", "    t0 = clock()\n    for i in range(warmup):\n"), _LOAD_T0],
        LOAD,
        "starts the clock before the warm-up: the one-off costs land in the first requests' latency",
    ),
    _m(
        "load_stamp_before_step",
        "load",
        [
            (
                "            events = engine.step()\n            now = clock() - t0 + skipped\n",
                "            events = engine.step()\n",
            )
        ],
        LOAD,
        "stamps a step's tokens with the time read before the step",
    ),
    _m(
        "load_skip_absolute",
        "load",
        [("skipped += arrivals[added] - now", "skipped += arrivals[added]")],
        LOAD,
        "adds the next arrival time itself to the skipped time, not the gap from now",
    ),
    _m(
        "load_rate_as_scale",
        "load",
        [("exponential(1 / rate, size=n)", "exponential(rate, size=n)")],
        LOAD,
        "passes the rate where numpy wants the mean gap (scale = 1 / rate)",
    ),
    _m(
        "load_gaps_not_summed",
        "load",
        [
            (
                "return np.cumsum(np.random.default_rng(seed).exponential(1 / rate, size=n)).tolist()",
                "return np.random.default_rng(seed).exponential(1 / rate, size=n).tolist()",
            )
        ],
        LOAD,
        "returns the gaps between arrivals instead of the arrival times",
    ),
    # --- 6b. summary and SLO ------------------------------------------------------------------
    _m(
        "summary_nearest_percentile",
        "summary",
        [("float(np.percentile(values, q))", 'float(np.percentile(values, q, method="nearest"))')],
        SUMMARY,
        "takes the nearest order statistic instead of interpolating",
    ),
    _m(
        "summary_tpot_over_tokens",
        "summary",
        [('/ (r["tokens"] - 1) for r in records', '/ r["tokens"] for r in records')],
        SUMMARY,
        "divides the streaming time by all tokens, though the first token is not part of it",
    ),
    _m(
        "summary_span_from_first_token",
        "summary",
        [('min(r["arrival"] for r in records)', 'min(r["first_token"] for r in records)')],
        SUMMARY,
        "measures the run from the first token instead of the first arrival",
    ),
    _m(
        "slo_lucky_rate",
        "summary",
        [("            break\n", "            continue\n")],
        ("test_summary_hidden",),
        "takes the highest passing rate even above a failing one",
    ),
    _m(
        "slo_strict_limit",
        "summary",
        [("<= limit for metric", "< limit for metric")],
        ("test_summary_hidden",),
        "a value equal to its limit fails the SLO",
    ),
    # --- 7. intensity -------------------------------------------------------------------------
    _m(
        "cost_no_lm_head",
        "intensity",
        [(" + config.vocab_size * h\n", "\n")],
        INTENSITY,
        "leaves the LM head out of the weights",
    ),
    _m(
        "cost_attention_excludes_self",
        "intensity",
        [("new_tokens * (new_tokens + 1) // 2", "new_tokens * (new_tokens - 1) // 2")],
        INTENSITY,
        "a new token attends to the earlier tokens only, not to itself",
    ),
    _m(
        "cost_kv_bytes_context_only",
        "intensity",
        [("batch * (context + new_tokens) * 2 * layers", "batch * context * 2 * layers")],
        INTENSITY,
        "counts the cached K and V but not those of the new tokens",
    ),
    _m(
        "cost_kv_heads_as_query_heads",
        "intensity",
        [("2 * h * kv_heads * d + heads", "2 * h * heads * d + heads")],
        ("test_intensity_hidden",),
        "sizes k_proj and v_proj with the query heads, ignoring grouped-query attention",
    ),
    _m(
        "throughput_sums_times",
        "intensity",
        [
            (
                "return batch / max(flops / peak_flops, moved / bandwidth)",
                "return batch / (flops / peak_flops + moved / bandwidth)",
            )
        ],
        ("test_intensity_hidden",),
        "adds compute and memory time instead of taking the larger (no overlap)",
    ),
    _m(
        "ridge_never_none",
        "intensity",
        [("    if not compute_bound(max_batch):\n        return None\n", "")],
        ("test_intensity_hidden",),
        "returns max_batch when no batch is compute-bound instead of None",
    ),
]
