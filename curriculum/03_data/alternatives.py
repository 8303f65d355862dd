"""Alternative correct answers for data, written blind (from the released notebook only), in
styles unlike a typical reference. Graded by
`python -m graders.authoring.alternatives data`.
"""

# ruff: noqa: E501  (answer cells are notebook code, as long as a notebook line)

from graders.authoring.alternatives import Alternative

ALTERNATIVES = [
    Alternative(
        "bpe_incremental_scan",
        "bpe_train",
        """def pretokenize(text):
    return [match.group(0) for match in GPT2_REGEX.finditer(text)]


def merge_symbols(symbols, pair, new):
    left, right = pair
    out = []
    i = 0
    n = len(symbols)
    while i < n:
        if i + 1 < n and symbols[i] == left and symbols[i + 1] == right:
            out.append(new)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def train_bpe(texts, num_merges):
    # Distinct pre-tokens with their counts; pair counts kept up to date incrementally,
    # touching only the words that contain the merged pair (an index pair -> word ids).
    # The best pair is found by a scan of the counts (no heap).
    freq = collections.Counter()
    for text in texts:
        freq.update(pretokenize(text))
    words = [[bytes([b]) for b in tok.encode("utf-8", errors="surrogatepass")] for tok in freq]
    weights = list(freq.values())
    counts = collections.defaultdict(int)
    where = collections.defaultdict(set)
    for w, (syms, wt) in enumerate(zip(words, weights)):
        for p in zip(syms, syms[1:]):
            counts[p] += wt
            where[p].add(w)
    merges = []
    while len(merges) < num_merges and counts:
        top = max(counts.values())
        best = min(p for p, c in counts.items() if c == top)
        merges.append(best)
        joined = best[0] + best[1]
        for w in list(where.pop(best, ())):
            old = words[w]
            if len(old) < 2:
                continue
            wt = weights[w]
            for p in zip(old, old[1:]):
                counts[p] -= wt
                if counts[p] == 0:
                    del counts[p]
            new = merge_symbols(old, best, joined)
            words[w] = new
            for p in zip(new, new[1:]):
                counts[p] += wt
                where[p].add(w)
        counts.pop(best, None)
    return merges
""",
        "finditer; an index pair -> words updated incrementally, the best pair by max over the counts then min over the ties (no heap)",
    ),
    Alternative(
        "bpe_recount_min_key",
        "bpe_train",
        """def pretokenize(text):
    return GPT2_REGEX.findall(text)


def merge_symbols(symbols, pair, new):
    # Recursive-free scan from the right end is wrong for "a a a"; scan left to right,
    # skipping the second half of each match.
    result = []
    skip = False
    for i, sym in enumerate(symbols):
        if skip:
            skip = False
            continue
        if i + 1 < len(symbols) and (sym, symbols[i + 1]) == tuple(pair):
            result.append(new)
            skip = True
        else:
            result.append(sym)
    return result


def train_bpe(texts, num_merges):
    # Recount the pairs of the distinct pre-tokens at every merge (simple, no incremental index),
    # picking the best pair with one key: highest count, then smallest (left, right).
    vocab = collections.Counter()
    for text in texts:
        for tok in pretokenize(text):
            vocab[tuple(bytes([b]) for b in tok.encode("utf-8", "surrogatepass"))] += 1
    merges = []
    for _ in range(num_merges):
        pairs = collections.Counter()
        for syms, count in vocab.items():
            for i in range(len(syms) - 1):
                pairs[syms[i], syms[i + 1]] += count
        if not pairs:
            break
        best = min(pairs.items(), key=lambda item: (-item[1], item[0]))[0]
        merges.append(best)
        merged = collections.Counter()
        for syms, count in vocab.items():
            if len(syms) > 1:
                syms = tuple(merge_symbols(list(syms), best, best[0] + best[1]))
            merged[syms] += count
        vocab = merged
    return merges
""",
        "findall; recount all pairs of the distinct pre-tokens at every merge, one min() with key (-count, pair)",
    ),
    Alternative(
        "codec_scan_and_id_symbols",
        "bpe_codec",
        """def build_vocab(merges, special_tokens=()):
    vocab = [bytes([b]) for b in range(256)]
    vocab.extend(left + right for left, right in merges)
    vocab.extend(tok.encode("utf-8") for tok in special_tokens)
    return vocab


def split_special(text, special_tokens=()):
    # A character scan: at each position, the longest special token starting there.
    specials = sorted((s for s in special_tokens if s), key=len, reverse=True)
    pieces = []
    plain_start = 0
    i = 0
    while i < len(text):
        hit = next((s for s in specials if text.startswith(s, i)), None)
        if hit is None:
            i += 1
            continue
        if i > plain_start:
            pieces.append((text[plain_start:i], False))
        pieces.append((hit, True))
        i += len(hit)
        plain_start = i
    if plain_start < len(text):
        pieces.append((text[plain_start:], False))
    return pieces


def encode_naive(text, merges, special_tokens=()):
    # Symbols are (bytes, id) pairs, so a merge's id is the one it was given (256 + i).
    special_ids = {tok: 256 + len(merges) + k for k, tok in enumerate(special_tokens)}
    done = {}
    ids = []
    for piece, is_special in split_special(text, special_tokens):
        if is_special:
            ids.append(special_ids[piece])
            continue
        for word in pretokenize(piece):
            if word not in done:
                syms = [(bytes([b]), b) for b in word.encode("utf-8", errors="surrogatepass")]
                for i, (left, right) in enumerate(merges):
                    if len(syms) < 2:
                        break
                    out, k = [], 0
                    while k < len(syms):
                        if k + 1 < len(syms) and syms[k][0] == left and syms[k + 1][0] == right:
                            out.append((left + right, 256 + i))
                            k += 2
                        else:
                            out.append(syms[k])
                            k += 1
                    syms = out
                done[word] = [token_id for _, token_id in syms]
            ids.extend(done[word])
    return ids


def decode(ids, vocab):
    buf = bytearray()
    for token_id in ids:
        buf += vocab[token_id]
    return bytes(buf).decode("utf-8", errors="surrogatepass")
""",
        "special tokens by a character scan; merges on (bytes, id) symbols; decode through a bytearray",
    ),
    Alternative(
        "codec_regex_split",
        "bpe_codec",
        """def build_vocab(merges, special_tokens=()):
    vocab = list(map(lambda b: bytes((b,)), range(256)))
    for pair in merges:
        vocab.append(b"".join(pair))
    for token in special_tokens:
        vocab.append(bytes(token, "utf-8"))
    return vocab


def split_special(text, special_tokens=()):
    # One regex alternation, longest alternatives first, and re.split with a capture group.
    if not text:
        return []
    if not special_tokens:
        return [(text, False)]
    alternation = "|".join(re.escape(t) for t in sorted(special_tokens, key=len, reverse=True))
    parts = re.split(f"({alternation})", text)
    out = []
    for k, part in enumerate(parts):
        if part:
            out.append((part, k % 2 == 1))
    return out


def encode_naive(text, merges, special_tokens=()):
    vocab = build_vocab(merges, special_tokens)
    token_id = {}
    for i in range(len(vocab) - 1, -1, -1):
        token_id[vocab[i]] = i
    for i, (left, right) in enumerate(merges):
        token_id[left + right] = 256 + i  # a merge's own id, even if an earlier merge made the same bytes
    ids = []
    for piece, special in split_special(text, special_tokens):
        if special:
            ids.append(256 + len(merges) + list(special_tokens).index(piece))
            continue
        for word in pretokenize(piece):
            parts = [bytes([b]) for b in word.encode("utf-8", errors="surrogatepass")]
            for left, right in merges:
                if len(parts) == 1:
                    break
                if left in parts:
                    parts = merge_symbols(parts, (left, right), left + right)
            ids.extend(token_id[p] for p in parts)
    return ids


def decode(ids, vocab):
    return b"".join([vocab[i] for i in ids]).decode("utf-8", "surrogatepass")
""",
        "special tokens by one regex alternation and re.split; merges in bytes space, ids from a dict at the end",
    ),
    Alternative(
        "fast_gpt2_bpe_round",
        "fast_encoder",
        '''class FastEncoder:
    """GPT-2's bpe() loop: each round finds the lowest-ranked adjacent pair with min() over
    the word's pairs and merges all its occurrences (left to right) at once."""

    def __init__(self, merges, special_tokens=()):
        self.merges = list(merges)
        self.special_tokens = list(special_tokens)
        self.ranks = {tuple(pair): i for i, pair in reversed(list(enumerate(self.merges)))}
        self.special_ids = {t: 256 + len(self.merges) + k for k, t in enumerate(self.special_tokens)}
        self.cache = {}

    def encode_word(self, word):
        cached = self.cache.get(word)
        if cached is not None:
            return cached
        syms = [bytes([b]) for b in word]
        ids = list(word)
        inf = float("inf")
        while len(syms) > 1:
            pairs = set(zip(syms, syms[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, inf))
            rank = self.ranks.get(best)
            if rank is None:
                break
            new_syms, new_ids, i = [], [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == best[0] and syms[i + 1] == best[1]:
                    new_syms.append(best[0] + best[1])
                    new_ids.append(256 + rank)
                    i += 2
                else:
                    new_syms.append(syms[i])
                    new_ids.append(ids[i])
                    i += 1
            syms, ids = new_syms, new_ids
        result = tuple(ids)
        self.cache[word] = result
        return result

    def encode(self, text):
        out = []
        for piece, special in split_special(text, self.special_tokens):
            if special:
                out.append(self.special_ids[piece])
            else:
                for tok in GPT2_REGEX.findall(piece):
                    out.extend(self.encode_word(tok.encode("utf-8", errors="surrogatepass")))
        return out
''',
        "GPT-2's bpe(): min() over the word's pairs each round, all occurrences merged at once",
    ),
    Alternative(
        "fast_heap_linked_list",
        "fast_encoder",
        '''class FastEncoder:
    """Merges with a heap of (rank, position) over a doubly linked list of symbols, as the
    Rust libraries do; stale heap entries are skipped when popped."""

    def __init__(self, merges, special_tokens=()):
        self.ranks = {}
        for i, (left, right) in enumerate(merges):
            self.ranks.setdefault((left, right), i)
        self.n_merges = len(merges)
        self.special_tokens = tuple(special_tokens)
        self.cache = {}

    def encode_word(self, word):
        if word in self.cache:
            return self.cache[word]
        n = len(word)
        sym = [word[i : i + 1] for i in range(n)]
        tid = list(word)
        nxt = list(range(1, n + 1))
        prv = list(range(-1, n - 1))
        alive = [True] * n
        heap = []

        def push(i):
            j = nxt[i]
            if j < n:
                rank = self.ranks.get((sym[i], sym[j]))
                if rank is not None:
                    heapq.heappush(heap, (rank, i, sym[i], sym[j]))

        for i in range(n - 1):
            push(i)
        while heap:
            rank, i, left, right = heapq.heappop(heap)
            if not alive[i] or sym[i] != left:
                continue
            j = nxt[i]
            if j >= n or sym[j] != right:
                continue
            sym[i] = left + right
            tid[i] = 256 + rank
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] < n:
                prv[nxt[j]] = i
            if prv[i] >= 0:
                push(prv[i])
            push(i)
        out = []
        i = 0
        while i < n:
            out.append(tid[i])
            i = nxt[i]
        result = tuple(out)
        self.cache[word] = result
        return result

    def encode(self, text):
        ids = []
        for piece, special in split_special(text, self.special_tokens):
            if special:
                ids.append(256 + self.n_merges + self.special_tokens.index(piece))
                continue
            for tok in pretokenize(piece):
                ids += self.encode_word(tok.encode("utf-8", "surrogatepass"))
        return ids
''',
        "a heap of (rank, position) over a doubly linked list, stale entries skipped",
    ),
    Alternative(
        "compression_running_totals",
        "compression",
        """def compression_stats(texts, encode):
    n_bytes = n_chars = n_tokens = n_words = 0
    for text in texts:
        n_bytes += len(text.encode("utf-8", errors="surrogatepass"))
        n_chars += len(text)
        n_tokens += len(encode(text))
        n_words += len(text.split())
    return {
        "bytes_per_token": n_bytes / n_tokens,
        "chars_per_token": n_chars / n_tokens,
        "tokens_per_word": n_tokens / n_words,
    }
""",
        "running integer totals in a loop",
    ),
    Alternative(
        "compression_numpy_sum",
        "compression",
        """def compression_stats(texts, encode):
    totals = np.array(
        [[len(t.encode("utf-8", "surrogatepass")), len(t), len(encode(t)), len(t.split())] for t in texts],
        dtype=np.int64,
    ).sum(axis=0)
    n_bytes, n_chars, n_tokens, n_words = (int(x) for x in totals)
    return dict(
        bytes_per_token=float(n_bytes / n_tokens),
        chars_per_token=float(n_chars / n_tokens),
        tokens_per_word=float(n_tokens / n_words),
    )
""",
        "a NumPy (n, 4) count table summed at once",
    ),
    Alternative(
        "normalise_str_methods",
        "normalise",
        """def normalise(text):
    # Plain string methods and a character filter.
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\\r\\n", "\\n").replace("\\r", "\\n")
    text = text.expandtabs(8)
    text = "".join(ch for ch in text if ch == "\\n" or unicodedata.category(ch) != "Cc")
    lines = [line.rstrip() for line in text.split("\\n")]
    out = []
    blank_run = 0
    for line in lines:
        if line == "":
            blank_run += 1
            if blank_run > 1:
                continue
        else:
            blank_run = 0
        out.append(line)
    return "\\n".join(out).strip()


def clean_document(text, min_chars=80, max_chars=6000):
    kept = [line for line in normalise(text).split("\\n") if not BOILERPLATE.search(line)]
    cleaned = normalise("\\n".join(kept))
    return cleaned if min_chars <= len(cleaned) <= max_chars else None
""",
        "str methods, a character filter on unicodedata.category, blank-line runs collapsed in a loop",
    ),
    Alternative(
        "normalise_regex_translate",
        "normalise",
        """_CC = "".join(chr(c) for c in range(0x110000) if c != 10 and unicodedata.category(chr(c)) == "Cc")
_DROP_CC = str.maketrans("", "", _CC)


def normalise(text):
    # Regular expressions and str.translate.
    text = re.sub(r"\\r\\n?", "\\n", unicodedata.normalize("NFC", text))
    text = text.expandtabs(8).translate(_DROP_CC)
    text = "\\n".join(line.rstrip() for line in text.split("\\n"))
    text = re.sub(r"\\n{3,}", "\\n\\n", text)
    return text.strip()


def clean_document(text, min_chars=80, max_chars=6000):
    body = normalise(text)
    body = "\\n".join(filter(lambda line: BOILERPLATE.search(line) is None, body.split("\\n")))
    body = normalise(body)
    if len(body) < min_chars or len(body) > max_chars:
        return None
    return body
""",
        "regex substitutions and str.translate with a table of every Cc code point",
    ),
    Alternative(
        "quality_counter_loops",
        "quality",
        """def top_ngram_fraction(words, n):
    total = sum(len(w) for w in words)
    grams = collections.Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    best = 0
    for gram, count in grams.items():
        if count >= 2:
            best = max(best, count * sum(len(w) for w in gram))
    if best == 0 or total == 0:
        return 0.0
    return min(1.0, best / total)


def duplicate_ngram_fraction(words, n):
    total = sum(map(len, words))
    if total == 0:
        return 0.0
    seen = set()
    covered = [False] * len(words)
    for start in range(len(words) - n + 1):
        gram = tuple(words[start : start + n])
        if gram in seen:
            covered[start : start + n] = [True] * n
        else:
            seen.add(gram)
    return sum(len(w) for w, c in zip(words, covered) if c) / total


def quality_signals(text):
    words = text.split()
    n = len(words)
    lines = [line.strip() for line in text.split("\\n")]
    lines = [line for line in lines if line]
    return {
        "n_words": n,
        "mean_word_length": sum(len(w) for w in words) / n if n else 0.0,
        "symbol_ratio": (text.count("#") + text.count("...") + text.count("…")) / max(1, n),
        "alpha_word_fraction": sum(any(c.isalpha() for c in w) for w in words) / n if n else 0.0,
        "stop_words": len(STOP_WORDS & set(re.findall(r"[a-z]+", text.lower()))),
        "dup_line_fraction": (len(lines) - len(set(lines))) / len(lines) if lines else 0.0,
        "top_2gram_fraction": top_ngram_fraction(words, 2),
        "dup_5gram_fraction": duplicate_ngram_fraction(words, 5),
    }


def quality_flags(text):
    signals = quality_signals(text)
    return {rule: low <= signals[name] <= high for rule, (name, low, high) in GOPHER_RULES.items()}


def kept_fractions(texts):
    passed = collections.Counter()
    for text in texts:
        flags = quality_flags(text)
        passed.update(rule for rule, ok in flags.items() if ok)
        passed["all"] += all(flags.values())
    return {rule: passed[rule] / len(texts) for rule in [*GOPHER_RULES, "all"]}
""",
        "Counter of n-gram tuples, a covered-word list; kept_fractions with one Counter",
    ),
    Alternative(
        "quality_numpy_regex",
        "quality",
        """def top_ngram_fraction(words, n):
    lengths = [len(w) for w in words]
    first_seen = {}
    counts = {}
    for i in range(len(words) - n + 1):
        key = tuple(words[i : i + n])
        counts[key] = counts.get(key, 0) + 1
        first_seen.setdefault(key, i)
    scores = [c * sum(lengths[first_seen[k] : first_seen[k] + n]) for k, c in counts.items() if c > 1]
    if not scores:
        return 0.0
    return float(min(1.0, max(scores) / sum(lengths)))


def duplicate_ngram_fraction(words, n):
    if not words:
        return 0.0
    lengths = np.array([len(w) for w in words], dtype=np.int64)
    mask = np.zeros(len(words), dtype=bool)
    earlier = set()
    for i in range(len(words) - n + 1):
        key = tuple(words[i : i + n])
        if key in earlier:
            mask[i : i + n] = True
        earlier.add(key)
    return float(lengths[mask].sum() / lengths.sum())


def quality_signals(text):
    words = text.split()
    n_words = len(words)
    word_lengths = [len(w) for w in words]
    symbols = len(re.findall(r"#", text)) + len(re.findall(r"\\.\\.\\.", text)) + len(re.findall("…", text))
    nonblank = [ln.strip() for ln in text.splitlines() if ln.strip()]
    signals = {}
    signals["n_words"] = n_words
    signals["mean_word_length"] = float(np.mean(word_lengths)) if words else 0.0
    signals["symbol_ratio"] = symbols / max(1, n_words)
    signals["alpha_word_fraction"] = (
        len([w for w in words if any(map(str.isalpha, w))]) / n_words if n_words else 0.0
    )
    signals["stop_words"] = sum(1 for sw in STOP_WORDS if sw in set(re.findall(r"[a-z]+", text.lower())))
    signals["dup_line_fraction"] = 1.0 - len(set(nonblank)) / len(nonblank) if nonblank else 0.0
    signals["top_2gram_fraction"] = top_ngram_fraction(words, 2)
    signals["dup_5gram_fraction"] = duplicate_ngram_fraction(words, 5)
    return signals


def quality_flags(text):
    s = quality_signals(text)
    flags = {}
    for rule in GOPHER_RULES:
        signal, lowest, highest = GOPHER_RULES[rule]
        flags[rule] = bool(s[signal] >= lowest and s[signal] <= highest)
    return flags


def kept_fractions(texts):
    table = [quality_flags(t) for t in texts]
    out = {rule: sum(row[rule] for row in table) / len(table) for rule in GOPHER_RULES}
    out["all"] = sum(all(row.values()) for row in table) / len(table)
    return out
""",
        "dicts of first occurrences, a NumPy mask for covered words, regex counts of the symbols, splitlines",
    ),
    Alternative(
        "dedup_int_digests",
        "exact_dedup",
        """def dedup_key(text):
    folded = unicodedata.normalize("NFKC", text).casefold()
    canonical = " ".join(folded.split())
    h = hashlib.new("sha256")
    h.update(canonical.encode("utf-8", errors="surrogatepass"))
    return h.digest()


def exact_dedup(docs):
    # The digests are kept as Python ints (smaller than 32-byte bytes objects).
    seen = set()
    for doc in docs:
        key = int.from_bytes(dedup_key(doc), "big")
        if key not in seen:
            seen.add(key)
            yield doc
""",
        "hashlib.new, the digests stored as ints",
    ),
    Alternative(
        "dedup_regex_set_growth",
        "exact_dedup",
        """def dedup_key(text):
    text = unicodedata.normalize("NFKC", text)
    text = str.casefold(text)
    text = re.sub(r"\\s+", " ", text).strip()
    return hashlib.sha256(bytes(text, "utf-8", "surrogatepass")).digest()


def exact_dedup(docs):
    seen = set()
    iterator = iter(docs)
    while True:
        try:
            doc = next(iterator)
        except StopIteration:
            return
        size = len(seen)
        seen.add(dedup_key(doc))
        if len(seen) > size:
            yield doc
""",
        "whitespace by regex, a manual iterator, a new key detected by the set's growth",
    ),
    Alternative(
        "minhash_per_shingle_minimum",
        "minhash",
        """def shingles(text, n=5):
    words = re.findall(r"\\w+", text.lower())
    if not words:
        return set()
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(gram) for gram in zip(*(words[k:] for k in range(n)))}


def minhash_signature(shingle_set, perm_a=PERM_A, perm_b=PERM_B):
    # One shingle at a time, np.minimum over all permutations at once.
    sig = np.full(len(perm_a), MAX_HASH, dtype=np.uint64)
    prime = np.uint64(MERSENNE_PRIME)
    mask = np.uint64(MAX_HASH)
    for s in shingle_set:
        x = np.uint64(hash32(s))
        np.minimum(sig, ((perm_a * x + perm_b) % prime) & mask, out=sig)
    return sig


def jaccard_estimate(sig1, sig2):
    return sum(1 for a, b in zip(sig1.tolist(), sig2.tolist()) if a == b) / len(sig1)
""",
        "zip shingles; np.minimum over the permutations one shingle at a time; a Python-loop estimate",
    ),
    Alternative(
        "minhash_outer_table",
        "minhash",
        """def shingles(text, n=5):
    words = re.findall(r"\\w+", text.lower())
    out = set()
    for start in range(max(1, len(words) - n + 1)):
        piece = words[start : start + n]
        if piece:
            out.add(" ".join(piece))
    return out


def minhash_signature(shingle_set, perm_a=PERM_A, perm_b=PERM_B):
    # All shingles by all permutations as one (k, n_shingles) array, then the minimum per row.
    if not shingle_set:
        return np.full(perm_a.shape, MAX_HASH, dtype=np.uint64)
    hv = np.fromiter((hash32(s) for s in shingle_set), dtype=np.uint64, count=len(shingle_set))
    table = np.bitwise_and((np.outer(perm_a, hv) + perm_b[:, None]) % np.uint64(MERSENNE_PRIME), np.uint64(MAX_HASH))
    return table.min(axis=1).astype(np.uint64)


def jaccard_estimate(sig1, sig2):
    return float(np.mean(np.asarray(sig1) == np.asarray(sig2)))
""",
        "one (k, n) table from np.outer, min per row; np.mean of the equality",
    ),
    Alternative(
        "bands_vectorised_over_r",
        "lsh_params",
        """def s_curve(s, b, r):
    return 1.0 - np.power(1.0 - np.power(s, r), b)


def choose_bands(threshold, num_perm, fp_weight=0.5, fn_weight=0.5):
    # 1,001 points per interval; the error of every r for one b computed as one 2-D array.
    lo = np.linspace(0.0, threshold, 1001)
    hi = np.linspace(threshold, 1.0, 1001)
    best, best_err = None, math.inf
    for b in range(1, num_perm + 1):
        rs = np.arange(1, num_perm // b + 1)[:, None]
        fp = np.trapezoid(s_curve(lo[None, :], b, rs), lo, axis=1)
        fn = np.trapezoid(1.0 - s_curve(hi[None, :], b, rs), hi, axis=1)
        err = fp_weight * fp + fn_weight * fn
        k = int(np.argmin(err))
        if err[k] < best_err:
            best, best_err = (b, k + 1), float(err[k])
    return best
""",
        "np.power; every r of one b as one 2-D trapezoid, argmin",
    ),
    Alternative(
        "bands_scipy_quad",
        "lsh_params",
        """def s_curve(s, b, r):
    miss_one_band = 1 - s**r
    return 1 - miss_one_band**b


def choose_bands(threshold, num_perm, fp_weight=0.5, fn_weight=0.5):
    # Adaptive quadrature (scipy.integrate.quad) instead of the trapezoid rule.
    from scipy.integrate import quad

    best = None
    best_error = float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = quad(lambda s: s_curve(s, b, r), 0.0, threshold)[0]
            fn = quad(lambda s: 1 - s_curve(s, b, r), threshold, 1.0)[0]
            error = fp * fp_weight + fn * fn_weight
            if error < best_error:
                best, best_error = (b, r), error
    return best
""",
        "adaptive quadrature (scipy.integrate.quad) instead of the trapezoid rule",
    ),
    Alternative(
        "lsh_one_dict_bytes_keys",
        "lsh_candidates",
        """def lsh_candidates(signatures, b, r):
    # One dict for all bands, keyed by (band, the band's raw bytes).
    buckets = collections.defaultdict(list)
    for doc in range(signatures.shape[0]):
        row = signatures[doc]
        for band in range(b):
            buckets[band, row[band * r : (band + 1) * r].tobytes()].append(doc)
    pairs = set()
    for members in buckets.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                pairs.add((int(members[x]), int(members[y])))
    return pairs
""",
        "one dict keyed by (band, the band's bytes), pairs by index loops",
    ),
    Alternative(
        "lsh_per_band_combinations",
        "lsh_candidates",
        """def lsh_candidates(signatures, b, r):
    import itertools

    out = set()
    n_docs = len(signatures)
    for band in range(b):
        table = {}
        block = signatures[:, band * r : (band + 1) * r].tolist()
        for doc in range(n_docs):
            table.setdefault(tuple(block[doc]), []).append(doc)
        for docs in table.values():
            out.update(itertools.combinations(docs, 2))
    return out
""",
        "a dict per band of tolist() tuples, itertools.combinations",
    ),
    Alternative(
        "uf_ties_to_y",
        "union_find",
        '''class UnionFind:
    """Ties of union by size go to y's root (the rule only fixes the larger group's root)."""

    def __init__(self, n):
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x):
        path = []
        while self.parent[x] != x:
            path.append(x)
            x = self.parent[x]
        for node in path:
            self.parent[node] = x
        return x

    def union(self, x, y):
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            return False
        if self.size[rx] > self.size[ry]:
            rx, ry = ry, rx
        self.parent[rx] = ry
        self.size[ry] += self.size[rx]
        return True

    def groups(self):
        by_root = {}
        for node in range(len(self.parent)):
            by_root.setdefault(self.find(node), []).append(node)
        return sorted(by_root.values(), key=lambda members: members[0])
''',
        "a path list for compression; ties of union by size go to y's root",
    ),
    Alternative(
        "uf_two_pointer_compression",
        "union_find",
        """class UnionFind:
    def __init__(self, n):
        self.parent = [i for i in range(n)]
        self.count = [1 for _ in range(n)]

    def find(self, x):
        root = x
        while root != self.parent[root]:
            root = self.parent[root]
        while x != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, x, y):
        a = self.find(x)
        b = self.find(y)
        if a == b:
            return False
        big, small = (a, b) if self.count[a] >= self.count[b] else (b, a)
        self.parent[small] = big
        self.count[big] += self.count[small]
        return True

    def groups(self):
        roots = [self.find(i) for i in range(len(self.parent))]
        members = collections.defaultdict(list)
        for i, root in enumerate(roots):
            members[root].append(i)
        return sorted((sorted(g) for g in members.values()), key=min)
""",
        "compression by a second walk with tuple assignment; ties to x's root",
    ),
    Alternative(
        "near_set_order",
        "near_dedup",
        """def near_duplicate_groups(signatures, b, r, threshold, similarity=jaccard_estimate):
    uf = UnionFind(len(signatures))
    for i, j in lsh_candidates(signatures, b, r):
        if similarity(signatures[i], signatures[j]) >= threshold:
            uf.union(i, j)
    return uf.groups()
""",
        "candidate pairs in set order, union as found",
    ),
    Alternative(
        "near_sorted_links_first",
        "near_dedup",
        """def near_duplicate_groups(signatures, b, r, threshold, similarity=jaccard_estimate):
    n_docs = signatures.shape[0]
    links = [(i, j) for i, j in sorted(lsh_candidates(signatures, b, r)) if similarity(signatures[i], signatures[j]) >= threshold]
    forest = UnionFind(n_docs)
    for i, j in links:
        forest.union(j, i)
    return forest.groups()
""",
        "sorted candidates, the verified links collected first, union(j, i)",
    ),
    Alternative(
        "decontam_index_eval_side",
        "decontam",
        """def ngrams(text, n=13):
    words = re.findall(r"\\w+", text.lower())
    return set(zip(*(words[k:] for k in range(n)))) if len(words) >= n else set()


def contaminated(eval_texts, train_texts, n=13):
    # Index the evaluation n-grams, then stream the training texts against it
    # (memory grows with the evaluation set, not the training set).
    owners = collections.defaultdict(set)
    for idx, text in enumerate(eval_texts):
        for gram in ngrams(text, n):
            owners[gram].add(idx)
    flagged = set()
    for text in train_texts:
        for gram in ngrams(text, n):
            hit = owners.get(gram)
            if hit:
                flagged |= hit
    return sorted(flagged)
""",
        "index the evaluation n-grams and stream the training texts against it",
    ),
    Alternative(
        "decontam_isdisjoint",
        "decontam",
        """def ngrams(text, n=13):
    words = re.findall(r"\\w+", text.lower())
    grams = set()
    for i in range(len(words) - n + 1):
        grams.add(tuple(words[i : i + n]))
    return grams


def contaminated(eval_texts, train_texts, n=13):
    train_grams = set()
    for text in train_texts:
        train_grams.update(ngrams(text, n))
    return [i for i, text in enumerate(eval_texts) if not ngrams(text, n).isdisjoint(train_grams)]
""",
        "range loop for n-grams; set.isdisjoint",
    ),
    Alternative(
        "pack_python_lists",
        "pack",
        """def pack_documents(docs, seq_len, eos_id, pad_id):
    # Python lists, one token at a time, then one reshape.
    tokens, segments, positions = [], [], []
    for k, doc in enumerate(docs):
        for p, tok in enumerate(list(doc) + [eos_id]):
            tokens.append(int(tok))
            segments.append(k)
            positions.append(p)
    rows = -(-len(tokens) // seq_len)
    fill = rows * seq_len - len(tokens)
    tokens += [pad_id] * fill
    segments += [-1] * fill
    positions += [0] * fill
    labels = []
    for i in range(len(tokens)):
        last_in_row = i % seq_len == seq_len - 1
        if segments[i] >= 0 and not last_in_row and segments[i + 1] == segments[i]:
            labels.append(tokens[i + 1])
        else:
            labels.append(-100)
    # Positions restart at each row: a document continued from the previous row starts at 0.
    for i in range(len(tokens)):
        col = i % seq_len
        if segments[i] < 0:
            positions[i] = 0
        elif col == 0:
            positions[i] = 0
        elif segments[i - 1] == segments[i]:
            positions[i] = positions[i - 1] + 1
        else:
            positions[i] = 0

    def grid(values):
        return torch.tensor(values, dtype=torch.long).reshape(rows, seq_len)

    return {
        "input_ids": grid(tokens),
        "segment_ids": grid(segments),
        "position_ids": grid(positions),
        "labels": grid(labels),
    }
""",
        "Python lists token by token, positions and labels by scans, one reshape",
    ),
    Alternative(
        "pack_vectorised_torch",
        "pack",
        """def pack_documents(docs, seq_len, eos_id, pad_id):
    # Vectorised with torch: each token's document, its document's start, and its row's start.
    lengths = torch.tensor([len(d) + 1 for d in docs], dtype=torch.long)
    total = int(lengths.sum())
    rows = (total + seq_len - 1) // seq_len
    size = rows * seq_len
    stream = torch.full((size,), pad_id, dtype=torch.long)
    if total:
        stream[:total] = torch.cat([torch.tensor(list(d) + [eos_id], dtype=torch.long) for d in docs])
    seg = torch.full((size,), -1, dtype=torch.long)
    seg[:total] = torch.repeat_interleave(torch.arange(len(docs)), lengths)
    idx = torch.arange(size)
    doc_start = torch.zeros(size, dtype=torch.long)
    doc_start[:total] = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    row_start = idx // seq_len * seq_len
    pos = idx - torch.maximum(doc_start, row_start)
    pos[total:] = 0
    nxt_tok = torch.roll(stream, -1)
    nxt_seg = torch.roll(seg, -1)
    ok = (seg >= 0) & (nxt_seg == seg) & (idx % seq_len != seq_len - 1)
    labels = torch.where(ok, nxt_tok, torch.full_like(stream, -100))
    shape = (rows, seq_len)
    return {
        "input_ids": stream.view(shape),
        "segment_ids": seg.view(shape),
        "position_ids": pos.view(shape),
        "labels": labels.view(shape),
    }
""",
        "torch repeat_interleave, document and row starts, roll for labels",
    ),
    Alternative(
        "mask_where_scalars",
        "packed_mask",
        """def packed_attention_mask(segment_ids, dtype=torch.float32):
    T = segment_ids.shape[-1]
    same = segment_ids.unsqueeze(-1) == segment_ids.unsqueeze(-2)
    causal = torch.ones(T, T, dtype=torch.bool, device=segment_ids.device).tril()
    allowed = (same & causal).unsqueeze(1)
    zero = torch.zeros((), dtype=dtype, device=segment_ids.device)
    low = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=segment_ids.device)
    return torch.where(allowed, zero, low)
""",
        "torch.where between 0-d tensors of the dtype",
    ),
    Alternative(
        "mask_masked_fill",
        "packed_mask",
        """def packed_attention_mask(segment_ids, dtype=torch.float32):
    rows, T = segment_ids.shape
    pos = torch.arange(T, device=segment_ids.device)
    future = pos[None, :] > pos[:, None]
    other_doc = segment_ids[:, :, None] != segment_ids[:, None, :]
    mask = torch.zeros(rows, 1, T, T, dtype=dtype, device=segment_ids.device)
    return mask.masked_fill((future | other_doc)[:, None], torch.finfo(dtype).min)
""",
        "masked_fill of a zeros tensor with the future-or-other-document mask",
    ),
    Alternative(
        "padding_python_pieces",
        "padding",
        """def padding_fraction(lengths, seq_len, strategy, batch_size=8):
    if strategy not in ("pad_to_max", "pad_to_longest", "pack"):
        raise ValueError(f"unknown strategy {strategy!r}")
    pieces = []
    for length in lengths:
        full, rest = divmod(length, seq_len)
        pieces += [seq_len] * full + ([rest] if rest else [])
    tokens = sum(pieces)
    if tokens == 0:
        return 0.0
    if strategy == "pad_to_max":
        slots = len(pieces) * seq_len
    elif strategy == "pad_to_longest":
        slots = 0
        for start in range(0, len(pieces), batch_size):
            batch = pieces[start : start + batch_size]
            slots += len(batch) * max(batch)
    else:
        slots = math.ceil(tokens / seq_len) * seq_len
    return (slots - tokens) / slots
""",
        "a Python list of pieces, divmod",
    ),
    Alternative(
        "padding_numpy_pieces",
        "padding",
        """def padding_fraction(lengths, seq_len, strategy, batch_size=8):
    lengths = np.asarray(lengths, dtype=np.int64)
    handlers = {"pad_to_max", "pad_to_longest", "pack"}
    if strategy not in handlers:
        raise ValueError("strategy must be pad_to_max, pad_to_longest or pack")
    if lengths.size == 0:
        return 0.0
    n_pieces = -(-lengths // seq_len)
    piece_lengths = np.full(int(n_pieces.sum()), seq_len, dtype=np.int64)
    last = np.cumsum(n_pieces) - 1
    piece_lengths[last] = lengths - (n_pieces - 1) * seq_len
    tokens = int(lengths.sum())
    if strategy == "pack":
        capacity = -(-tokens // seq_len) * seq_len
    elif strategy == "pad_to_max":
        capacity = piece_lengths.size * seq_len
    else:
        capacity = sum(int(chunk.max()) * chunk.size for chunk in np.array_split(
            piece_lengths, range(batch_size, piece_lengths.size, batch_size)))
    return float(1.0 - tokens / capacity)
""",
        "NumPy piece lengths, np.array_split for the batches",
    ),
]

DEFECTS: list = []
