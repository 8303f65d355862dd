"""Wrong-but-plausible answers for the data unit; each must lose points.

Every mutant is the reference answer cell (read from `data.py`, solution markers removed)
with one mistake edited in, so a mutant cannot drift from the reference: if the reference
text changes and an edit no longer applies, loading this file fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from graders.authoring.mutants import EditedMutants

_m = EditedMutants(Path(__file__).resolve().parent / "data.py")

BPE = ("test_bpe_train_visible", "test_bpe_train_hidden")
CODEC = ("test_bpe_codec_visible", "test_bpe_codec_hidden")
FAST = ("test_fast_encoder_visible", "test_fast_encoder_hidden")
COMP = ("test_compression_visible", "test_compression_hidden")
NORM = ("test_normalise_visible", "test_normalise_hidden")
QUAL = ("test_quality_visible", "test_quality_hidden")
EXACT = ("test_exact_dedup_visible", "test_exact_dedup_hidden")
MINHASH = ("test_minhash_visible", "test_minhash_hidden")
LSHP = ("test_lsh_params_visible", "test_lsh_params_hidden")
LSHC = ("test_lsh_candidates_visible", "test_lsh_candidates_hidden")
UF = ("test_union_find_visible", "test_union_find_hidden")
NEAR = ("test_near_dedup_visible", "test_near_dedup_hidden")
DECON = ("test_decontam_visible", "test_decontam_hidden")
PACK = ("test_pack_visible", "test_pack_hidden")
MASK = ("test_packed_mask_visible", "test_packed_mask_hidden")
PAD = ("test_padding_visible", "test_padding_hidden")


def _hidden(test_id: str) -> tuple[str]:
    return (f"test_{test_id}_hidden",)


def _neg(p: str) -> str:
    """A tie-break key that sorts pairs from the largest down (for the mutant below)."""
    return f"tuple(-x for x in {p}[0]) + (0,) + tuple(-x for x in {p}[1])"


_CACHE_READ = (
    "        cached = self.cache.get(word)\n        if cached is not None:\n            return cached\n"
)
_SPECIAL_IDS = "ids.append(256 + len(merges) + list(special_tokens).index(piece))"
_VOCAB_ORDER = (
    "    vocab += [left + right for left, right in merges]\n"
    '    vocab += [s.encode("utf-8") for s in special_tokens]\n'
)
_ITERATIVE_FIND = (
    "        root = x\n        while self.parent[root] != root:\n            root = self.parent[root]\n"
    "        while self.parent[x] != root:\n            self.parent[x], x = root, self.parent[x]\n"
    "        return root\n"
)
_RECURSIVE_FIND = (
    "        if self.parent[x] != x:\n            self.parent[x] = self.find(self.parent[x])\n"
    "        return self.parent[x]\n"
)
_ALL_PAIRS = (
    "    pairs = set()\n    for i in range(len(signatures)):\n"
    "        for j in range(i + 1, len(signatures)):\n"
    "            for band in range(b):\n                lo, hi = band * r, (band + 1) * r\n"
    "                if (signatures[i, lo:hi] == signatures[j, lo:hi]).all():\n"
    "                    pairs.add((i, j))\n                    break\n"
    "    return pairs\n    for band in range(b):\n"
)
_SAME_SEGMENT = "allowed = (segment_ids[:, :, None] == segment_ids[:, None, :]) & causal"
_PIECES = "pieces += [seq_len] * (n // seq_len) + ([n % seq_len] if n % seq_len else [])"

MUTANTS = [
    # --- 1. BPE training ---------------------------------------------------------------------
    _m("bpe_split_on_whitespace", "bpe_train",
       [("return GPT2_REGEX.findall(text)", "return text.split()")], BPE,
       "pre-tokenizes with str.split(): whitespace is lost and leading spaces are not part of words"),
    _m("bpe_tie_first_seen", "bpe_train",
       [("        neg_count, pair = heapq.heappop(heap)\n",
         "        neg_count, pair = heapq.heappop(heap)\n"
         "        top = -neg_count\n"
         "        if top in pair_counts.values():\n"
         "            pair = next(p for p, c in pair_counts.items() if c == top)\n")],
       _hidden("bpe_train"), "breaks ties by the first pair counted (dict order), not the smallest pair"),
    _m("bpe_tie_largest", "bpe_train",
       [("heap = [(-count, pair) for pair, count in pair_counts.items()]",
         f"heap = [(-count, {_neg('pair')}, pair) for pair, count in pair_counts.items()]"),
        ("neg_count, pair = heapq.heappop(heap)", "neg_count, _, pair = heapq.heappop(heap)"),
        ("heapq.heappush(heap, (-pair_counts[p], p))",
         f"heapq.heappush(heap, (-pair_counts[p], {_neg('p')}, p))")],
       BPE, "breaks ties towards the largest pair"),
    _m("bpe_unweighted_words", "bpe_train",
       [("            pair_counts[pair] += freq\n", "            pair_counts[pair] += 1\n"),
        ("                pair_counts[p] -= freq\n", "                pair_counts[p] -= 1\n"),
        ("                pair_counts[p] += freq\n", "                pair_counts[p] += 1\n")],
       _hidden("bpe_train"), "counts each distinct word once instead of weighting by its frequency"),
    _m("bpe_strict_utf8", "bpe_train", [('w.encode("utf-8", "surrogatepass")', 'w.encode("utf-8")')],
       _hidden("bpe_train"), "encodes with strict UTF-8: a lone surrogate crashes training"),
    _m("merge_overlapping", "bpe_train",
       [("            out.append(new)\n            i += 2\n",
         "            out.append(new)\n            i += 1\n")],
       BPE, "advances one symbol after a merge, so overlapping pairs are merged twice"),
    # --- 1b. encode, decode, special tokens ------------------------------------------------------
    _m("codec_specials_before_merges", "bpe_codec",
       [(_VOCAB_ORDER, "".join(reversed(_VOCAB_ORDER.splitlines(keepends=True)))),
        (_SPECIAL_IDS, "ids.append(256 + list(special_tokens).index(piece))"),
        ("id_pairs = [(token_id[left], token_id[right]) for left, right in merges]",
         "id_pairs = [(token_id[left], token_id[right]) for left, right in merges]\n"
         "    shift = len(special_tokens)"),
        ("symbols = merge_symbols(symbols, pair, 256 + rank)",
         "symbols = merge_symbols(symbols, pair, 256 + shift + rank)")],
       CODEC, "numbers the special tokens right after the bytes (before the merges)"),
    _m("codec_strict_utf8", "bpe_codec",
       [('symbols = list(word.encode("utf-8", "surrogatepass"))',
         'symbols = list(word.encode("utf-8", "replace"))'),
        ('.decode("utf-8", errors="surrogatepass")', '.decode("utf-8", errors="replace")')],
       _hidden("bpe_codec"), "replaces lone surrogates by '?': the round trip breaks"),
    _m("codec_shortest_special_first", "bpe_codec", [("key=len, reverse=True", "key=len")],
       _hidden("bpe_codec"), "tries the shorter special token first: '<|im|>user' is cut after '<|im|>'"),
    _m("codec_specials_as_text", "bpe_codec",
       [(f"        if is_special:\n            {_SPECIAL_IDS}\n            continue\n", "")],
       CODEC, "encodes special tokens as ordinary text, so they are split into bytes"),
    _m("codec_merges_reversed", "bpe_codec",
       [("for rank, pair in enumerate(id_pairs):", "for rank, pair in reversed(list(enumerate(id_pairs))):")],
       CODEC, "applies the merges from the last learned to the first"),
    _m("codec_no_pretokenize", "bpe_codec",
       [("        for word in pretokenize(piece):\n", "        for word in [piece]:\n")],
       _hidden("bpe_codec"), "applies the merges to the whole text, across pre-token boundaries"),
    # --- 2. fast encoder --------------------------------------------------------------------------
    _m("fast_no_cache_lookup", "fast_encoder", [(_CACHE_READ, "")],
       _hidden("fast_encoder"), "fills the cache but never reads it"),
    _m("fast_no_cache_at_all", "fast_encoder",
       [(_CACHE_READ, ""), ("        self.cache[word] = result\n", "")],
       FAST, "no cache at all"),
    _m("fast_first_pair_not_lowest_rank", "fast_encoder",
       [("if new is not None and (best is None or new < best):", "if new is not None and best is None:")],
       _hidden("fast_encoder"), "merges the leftmost mergeable pair instead of the one with the lowest rank"),
    _m("fast_rightmost_of_ties", "fast_encoder",
       [("(best is None or new < best)", "(best is None or new <= best)")],
       FAST, "merges the rightmost occurrence of the best pair ('aaa' with (a, a) becomes a aa)"),
    _m("fast_naive_loop", "fast_encoder",
       [("        symbols = list(word)\n        while len(symbols) > 1:\n",
         "        symbols = list(word)\n        for pair, new in self.merged.items():\n"
         "            symbols = merge_symbols(symbols, pair, new)\n        while False:\n")],
       ("test_fast_encoder_speed",), "caches words but still tries every merge on each new word"),
    _m("fast_specials_ignored", "fast_encoder",
       [("            if is_special:\n                ids.append(self.special_id[piece])\n"
         "            else:\n",
         "            if True:\n")],
       FAST, "forgets the special tokens: they are encoded as text"),
    # --- 3. compression ------------------------------------------------------------------------------
    _m("compression_chars_as_bytes", "compression",
       [('n_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)',
         "n_bytes = sum(len(t) for t in texts)")],
       COMP, "counts characters where bytes are asked for"),
    _m("compression_words_by_space", "compression",
       [("n_words = sum(len(t.split()) for t in texts)", 'n_words = sum(len(t.split(" ")) for t in texts)')],
       _hidden("compression"), "splits words on single spaces, so runs of spaces count as words"),
    _m("compression_mean_of_ratios", "compression",
       [('return {"bytes_per_token": n_bytes / n_tokens,',
         'return {"bytes_per_token": sum(len(t.encode()) / len(encode(t)) for t in texts) / len(texts),')],
       _hidden("compression"), "averages the per-document ratios instead of dividing the totals"),
    _m("compression_inverted_fertility", "compression",
       [('"tokens_per_word": n_tokens / n_words}', '"tokens_per_word": n_words / n_tokens}')],
       COMP, "words per token instead of tokens per word"),
    # --- 4. cleaning ---------------------------------------------------------------------------------
    _m("normalise_nfkc", "normalise",
       [('unicodedata.normalize("NFC", text)', 'unicodedata.normalize("NFKC", text)')],
       _hidden("normalise"), "NFKC for training text: ligatures, full-width letters, superscripts rewritten"),
    _m("normalise_keeps_cr", "normalise", [('.replace("\\r\\n", "\\n").replace("\\r", "\\n")', "")],
       _hidden("normalise"), "leaves Windows line ends: the \\r is then deleted as a control character"),
    _m("normalise_tabs_removed", "normalise", [(".expandtabs(8)", "")], NORM,
       "removes tabs as control characters instead of expanding them"),
    _m("normalise_blank_lines_kept", "normalise", [('re.sub(r"\\n{3,}", "\\n\\n", text)', "text")], NORM,
       "keeps runs of blank lines"),
    _m("clean_length_before_boilerplate", "normalise",
       [("    return cleaned if min_chars <= len(cleaned) <= max_chars else None\n",
         "    n = len(normalise(text))\n    return cleaned if min_chars <= n <= max_chars else None\n")],
       _hidden("normalise"), "checks the length before removing boilerplate"),
    _m("clean_boilerplate_case_sensitive", "normalise",
       [("if not BOILERPLATE.search(line)", "if not re.search(BOILERPLATE.pattern, line)")],
       NORM, "matches the boilerplate pattern case-sensitively"),
    # --- 4b. quality rules ---------------------------------------------------------------------------
    _m("quality_dup_includes_first", "quality",
       [("    for i in range(len(words) - n + 1):\n        gram = tuple(words[i:i + n])\n"
         "        if gram in seen:\n",
         "    counts = collections.Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))\n"
         "    for i in range(len(words) - n + 1):\n        gram = tuple(words[i:i + n])\n"
         "        if counts[gram] > 1:\n")],
       QUAL, "counts the first occurrence of a repeated n-gram as duplicated too"),
    _m("quality_top_by_count", "quality",
       [("best = max((c * sum(len(w) for w in gram) for gram, c in counts.items() if c >= 2), default=0)",
         "top = max(counts.items(), key=lambda kv: kv[1], default=(None, 0))\n"
         "    best = top[1] * sum(len(w) for w in top[0]) if top[1] >= 2 else 0")],
       _hidden("quality"), "takes the most frequent 2-gram, not the one covering most characters"),
    _m("quality_chars_with_spaces", "quality",
       [('"mean_word_length": sum(len(w) for w in words) / n if n else 0.0,',
         '"mean_word_length": len(text) / n if n else 0.0,')],
       QUAL, "mean word length from the text length, spaces included"),
    _m("quality_stop_words_substring", "quality",
       [('len(STOP_WORDS & set(re.findall(r"[a-z]+", text.lower())))',
         "sum(w in text.lower() for w in STOP_WORDS)")],
       _hidden("quality"), "finds stop words as substrings ('the' in 'theme')"),
    _m("quality_exclusive_bounds", "quality", [("lo <= signals[signal] <= hi", "lo < signals[signal] < hi")],
       _hidden("quality"), "exclusive thresholds: a document exactly at a bound is dropped"),
    _m("quality_all_fraction_wrong", "quality",
       [('out["all"] = sum(all(f.values()) for f in flags) / len(flags)', 'out["all"] = min(out.values())')],
       _hidden("quality"), "reports the strictest single rule as the fraction passing all rules"),
    _m("quality_dup_lines_counts_blank", "quality",
       [('lines = [line.strip() for line in text.split("\\n") if line.strip()]',
         'lines = text.split("\\n")')],
       _hidden("quality"), "counts blank lines and unstripped lines as lines"),
    # --- 5. exact de-duplication ---------------------------------------------------------------------
    _m("exact_keeps_texts", "exact_dedup",
       [("        key = dedup_key(doc)\n",
         '        key = " ".join(unicodedata.normalize("NFKC", doc).casefold().split())\n')],
       ("test_exact_dedup_memory",), "keeps the normalised texts in the set instead of fixed-size digests"),
    _m("exact_not_streaming", "exact_dedup",
       [("    seen = set()\n    for doc in docs:\n", "    seen = set()\n    for doc in list(docs):\n")],
       ("test_exact_dedup_hidden", "test_exact_dedup_memory"), "reads the whole input into a list first"),
    _m("exact_no_casefold", "exact_dedup", [(".casefold()", "")], EXACT,
       "forgets case folding: 'Hello' and 'hello' stay two documents"),
    _m("exact_no_whitespace_collapse", "exact_dedup",
       [('key = " ".join(unicodedata.normalize("NFKC", text).casefold().split())',
         'key = unicodedata.normalize("NFKC", text).casefold().strip()')],
       EXACT, "does not collapse whitespace runs"),
    _m("exact_nfc_key", "exact_dedup",
       [('unicodedata.normalize("NFKC", text)', 'unicodedata.normalize("NFC", text)')],
       _hidden("exact_dedup"), "NFC in the key: full-width letters are not folded"),
    # --- 6. MinHash ----------------------------------------------------------------------------------
    _m("minhash_no_mod_p", "minhash", [(" % np.uint64(MERSENNE_PRIME)", "")], MINHASH,
       "forgets the reduction modulo the prime"),
    _m("minhash_max_not_min", "minhash",
       [("(values & np.uint64(MAX_HASH)).min(axis=1)", "(values & np.uint64(MAX_HASH)).max(axis=1)")],
       _hidden("minhash"), "keeps the largest hash value instead of the smallest"),
    _m("minhash_char_shingles", "minhash",
       [('return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}',
         'text = " ".join(words)\n    return {text[i:i + n] for i in range(len(text) - n + 1)}')],
       MINHASH, "character 5-grams instead of word 5-grams"),
    _m("minhash_case_sensitive", "minhash",
       [('re.findall(r"\\w+", text.lower())', 're.findall(r"\\w+", text)')],
       MINHASH, "does not lower-case the words"),
    _m("minhash_one_hash", "minhash",
       [("values = (perm_a[:, None] * x[None, :] + perm_b[:, None]) % np.uint64(MERSENNE_PRIME)",
         "values = (perm_a[:1, None] * x[None, :] + perm_b[:1, None]) % np.uint64(MERSENNE_PRIME)\n"
         "    values = np.repeat(values, len(perm_a), 0)")],
       _hidden("minhash"), "one hash function repeated: every entry of the signature is the same estimate"),
    # --- 6b. bands and rows --------------------------------------------------------------------------
    _m("lsh_curve_swapped", "lsh_params",
       [("1 - (1 - np.asarray(s, dtype=float) ** r) ** b", "1 - (1 - np.asarray(s, dtype=float) ** b) ** r")],
       LSHP, "swaps bands and rows in the S-curve"),
    _m("lsh_uses_all_rows", "lsh_params",
       [("for r in range(1, num_perm // b + 1):", "for r in [num_perm // b]:")],
       _hidden("lsh_params"), "insists on b * r == num_perm (largest r for each b)"),
    _m("lsh_fn_wrong_area", "lsh_params",
       [("np.trapezoid(1 - s_curve(above, b, r), above)", "np.trapezoid(s_curve(above, b, r), above)")],
       LSHP, "integrates the candidate probability above the threshold instead of the miss probability"),
    _m("lsh_threshold_heuristic", "lsh_params",
       [("            error = fp_weight * fp + fn_weight * fn\n",
         "            error = abs((1 / b) ** (1 / r) - threshold)\n")],
       _hidden("lsh_params"), "picks (1/b)^(1/r) closest to the threshold instead of minimising the errors"),
    _m("lsh_tie_last", "lsh_params", [("if error < best_error:", "if error <= best_error:")],
       _hidden("lsh_params"), "on a tie keeps the last (b, r) tried instead of the first"),
    # --- 6c. candidates ------------------------------------------------------------------------------
    _m("lsh_all_pairs", "lsh_candidates", [("    pairs = set()\n    for band in range(b):\n", _ALL_PAIRS)],
       _hidden("lsh_candidates"), "compares every pair of documents band by band"),
    _m("lsh_one_bucket_table", "lsh_candidates",
       [("    pairs = set()\n    for band in range(b):\n        buckets = collections.defaultdict(list)\n",
         "    pairs = set()\n    buckets = collections.defaultdict(list)\n    for band in range(b):\n")],
       _hidden("lsh_candidates"), "one bucket table for all bands: equal values in different bands collide"),
    _m("lsh_band_offset", "lsh_candidates",
       [("signatures[:, band * r:(band + 1) * r]", "signatures[:, band:band + r]")],
       LSHC, "overlapping bands: band i starts at row i instead of i * r"),
    _m("lsh_consecutive_only", "lsh_candidates",
       [("for y in range(x + 1, len(members)):", "for y in range(x + 1, min(x + 2, len(members))):")],
       _hidden("lsh_candidates"), "pairs each bucket member only with the next one"),
    # --- 6d. union-find ------------------------------------------------------------------------------
    _m("uf_recursive_no_size", "union_find",
       [(_ITERATIVE_FIND, _RECURSIVE_FIND),
        ("        if self.size[rx] < self.size[ry]:\n            rx, ry = ry, rx\n", "")],
       _hidden("union_find"), "recursive find, no union by size: a long chain exceeds the recursion limit"),
    _m("uf_union_without_find", "union_find", [("rx, ry = self.find(x), self.find(y)", "rx, ry = x, y")], UF,
       "links the two elements instead of their roots"),
    _m("uf_union_always_true", "union_find", [("            return False\n", "            return True\n")],
       UF, "union returns True even when the two were already together"),
    _m("uf_groups_by_parent", "union_find",
       [("by_root[self.find(x)].append(x)", "by_root[self.parent[x]].append(x)")],
       _hidden("union_find"), "groups by the parent pointer instead of the root"),
    _m("uf_size_not_added", "union_find",
       [("        self.size[rx] += self.size[ry]\n", "")],
       _hidden("union_find"), "never adds the sizes when two groups merge, so every group looks like size 1"),
    _m("uf_find_no_compression", "union_find",
       [("        while self.parent[x] != root:\n"
         "            self.parent[x], x = root, self.parent[x]\n", "")],
       _hidden("union_find"), "finds the root but leaves the path uncompressed"),
    # --- 6e. near-duplicate groups ------------------------------------------------------------------
    _m("near_strict_threshold", "near_dedup", [(">= threshold", "> threshold")], _hidden("near_dedup"),
       "a pair exactly at the threshold is not linked"),
    _m("near_all_pairs", "near_dedup",
       [("    for i, j in lsh_candidates(signatures, b, r):\n",
         "    n = len(signatures)\n    for i, j in ((i, j) for i in range(n) for j in range(i + 1, n)):\n")],
       _hidden("near_dedup"), "compares all pairs instead of the LSH candidates"),
    _m("near_links_candidates", "near_dedup",
       [("        if similarity(signatures[i], signatures[j]) >= threshold:\n            uf.union(i, j)\n",
         "        uf.union(i, j)\n")],
       NEAR, "links every candidate pair without checking its similarity"),
    _m("near_builtin_similarity", "near_dedup",
       [("similarity(signatures[i], signatures[j])", "jaccard_estimate(signatures[i], signatures[j])")],
       _hidden("near_dedup"), "ignores the similarity function it was given"),
    # --- 7. decontamination ----------------------------------------------------------------------------
    _m("decon_case_sensitive", "decontam",
       [('re.findall(r"\\w+", text.lower())', 're.findall(r"\\w+", text)')],
       DECON, "compares words case-sensitively"),
    _m("decon_split_whitespace", "decontam", [('re.findall(r"\\w+", text.lower())', "text.lower().split()")],
       DECON, "splits on whitespace, so punctuation sticks to words"),
    _m("decon_off_by_one", "decontam",
       [("for i in range(len(words) - n + 1)", "for i in range(len(words) - n)")], DECON,
       "misses the last n-gram of every text"),
    _m("decon_joined_training", "decontam",
       [("    for text in train_texts:\n        seen |= ngrams(text, n)\n",
         '    seen |= ngrams(" ".join(train_texts), n)\n')],
       _hidden("decontam"), "joins the training texts, so n-grams run across documents"),
    # --- 8. packing --------------------------------------------------------------------------------------
    _m("pack_no_eos", "pack",
       [("tokens += list(doc) + [eos_id]", "tokens += list(doc)"),
        ("segments += [k] * (len(doc) + 1)", "segments += [k] * len(doc)")],
       PACK, "joins the documents without <eos>"),
    _m("pack_positions_continue", "pack",
       [("position_ids[:, t] = torch.where(same, position_ids[:, t - 1] + 1, 0)",
         "position_ids[:, t] = position_ids[:, t - 1] + 1")],
       PACK, "position ids run on across documents"),
    _m("pack_labels_cross_documents", "pack",
       [("same_doc = (segment_ids[:, 1:] == segment_ids[:, :-1]) & (segment_ids[:, 1:] >= 0)",
         "same_doc = segment_ids[:, 1:] >= 0")],
       PACK, "lets a document's last token predict the next document's first"),
    _m("pack_drops_last_row", "pack",
       [("rows = -(-len(tokens) // seq_len)", "rows = len(tokens) // seq_len"),
        ("pad = rows * seq_len - len(tokens)",
         "pad = 0\n    tokens, segments = tokens[:rows * seq_len], segments[:rows * seq_len]")],
       PACK, "drops the last, partial row instead of padding it"),
    _m("mask_causal_only", "packed_mask",
       [(_SAME_SEGMENT, "allowed = causal.expand(segment_ids.shape[0], t, t)")],
       MASK, "an ordinary causal mask: tokens attend to earlier documents in the row"),
    _m("mask_document_only", "packed_mask",
       [(_SAME_SEGMENT, "allowed = segment_ids[:, :, None] == segment_ids[:, None, :]")],
       MASK, "a block-diagonal mask without causality: tokens see the future of their document"),
    _m("mask_bool_values", "packed_mask",
       [("return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]",
         "return allowed.to(dtype)[:, None]")],
       MASK, "returns 1 for allowed and 0 for blocked (a boolean mask cast to float), not an additive mask"),
    _m("mask_minus_inf_float32", "packed_mask",
       [("torch.finfo(dtype).min)[:, None]", "torch.finfo(torch.float32).min)[:, None]")],
       _hidden("packed_mask"), "uses the float32 minimum whatever the dtype (overflows to -inf in bfloat16)"),
    _m("pad_pack_no_ceil", "padding", [("slots = -(-total // seq_len) * seq_len", "slots = total")], PAD,
       "packing wastes nothing: forgets the padded last row"),
    _m("pad_longest_global", "padding",
       [("slots = sum(len(pieces[i:i + batch_size]) * max(pieces[i:i + batch_size])\n"
         "                        for i in range(0, len(pieces), batch_size))",
         "slots = len(pieces) * max(pieces)")],
       PAD, "pads every batch to the longest piece of all"),
    _m("pad_truncates_long_docs", "padding",
       [(_PIECES, "pieces.append(min(n, seq_len))"),
        ("    total = sum(lengths)\n",
         '    total = sum(min(n, seq_len) for n in lengths) if strategy != "pack" else sum(lengths)\n')],
       _hidden("padding"), "truncates long documents to one row instead of splitting them"),
    _m("pad_fraction_of_tokens", "padding",
       [("return (slots - total) / slots", "return (slots - total) / total")], PAD,
       "divides the padding by the real tokens instead of by all positions"),
]
