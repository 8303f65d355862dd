# %% [markdown]
# # Unit 03 — Data: a tokenizer and a pre-training data pipeline
#
# A language model learns whatever its data says, repeated as often as the data repeats it.
# Practitioners say most of the real work in building a model is the data: collecting it,
# cleaning it, filtering it, removing duplicates, keeping the test set out of it, and turning
# it into token ids that fill a GPU without waste. This unit builds that pipeline on the
# course's own corpus (the docstrings of Python's standard library, `datasets/pystdlib_docs`):
#
# 1. a **byte-level BPE tokenizer** trained from scratch: GPT-2's pre-tokenisation regex, the
#    merge loop with a stated tie-break, encoding and decoding that round-trip any Unicode
#    string, and special tokens that are never split;
# 2. **fast encoding**: the naive encoder against a rank-ordered one with a cache, checked id for
#    id against the `tokenizers` library loaded with *your* vocabulary;
# 3. **compression and fertility** against the course's bundled tokenizer, and the effect of
#    the vocabulary size;
# 4. **cleaning and quality filters**: Unicode normalisation, boilerplate removal, and a
#    Gopher-style rule set, with the fraction of the corpus each rule keeps;
# 5. **exact de-duplication** that streams, holding only a hash per distinct document;
# 6. **near de-duplication** with MinHash and locality-sensitive hashing (LSH), checked against
#    `datasketch`, without ever comparing all pairs;
# 7. **decontamination**: 13-gram overlap between training and evaluation text;
# 8. **packing** documents into fixed-length training rows, with per-document attention masks
#    checked against the bundled tiny Llama, and the padding it saves.
#
# The corpus you load was already cleaned by `datasets/build_corpus.py` (its datasheet lists
# what each step removed); here you write those steps yourself, and a few that real pipelines
# add.
#
# ## Learning objectives
#
# After this unit you can
# - explain byte-level BPE (why bytes, why a pre-tokenisation regex, what a merge is) and train
#   one whose merges are reproducible to the last tie;
# - encode text fast (merge ranks, a cache) and prove your encoder right against a library;
# - measure a tokenizer by bytes per token and tokens per word, and reason about vocabulary size;
# - write document-quality rules precisely enough that two people get the same numbers;
# - de-duplicate exactly in a stream and approximately with MinHash + LSH, choosing bands and
#   rows from a similarity threshold and its S-curve;
# - check an evaluation set for contamination by n-gram overlap;
# - pack documents for pre-training without letting them attend to each other, and quantify the
#   padding that packing saves.
#
# ## Prerequisites
#
# Python (dicts, sets, generators, `collections.Counter`), NumPy arrays, and for the last
# exercise PyTorch tensors and calling a `transformers` model (unit 02 explains attention masks
# and RoPE). Knowing what UTF-8 is helps; the notebook recaps it.
#
# ## Time, device, skills
#
# - **Time:** about 6 hours (5 to 7 for the reviewers who worked through it): sixteen answer
#   cells.
# - **Device:** CPU. The whole notebook runs in under a minute on 2 idle cores (about two minutes
#   on a busy machine); only the packing exercise runs the tiny Llama, on a CUDA GPU when one is
#   present.
# - **Skills practised** (see the course skill map): *Data* (tokenisation, normalisation,
#   quality filtering, exact and near de-duplication, decontamination, packing); *Probability
#   and statistics* (MinHash as an unbiased estimator, its standard error, the LSH S-curve);
#   *The transformer* (attention masks and positions for packed sequences);
#   *Engineering habits* (checking your code against real libraries, measuring speed and memory).
#
# Run the cell below first. It fixes seeds and threads and silences library warnings (the
# grader scores any test cell that writes to stderr as 0).

# %% setup id=setup
import collections
import hashlib
import heapq
import json
import math
import re
import struct
import time
import unicodedata

import torch
from graders.notebook import setup

setup()

import matplotlib.pyplot as plt
import numpy as np
import regex
from graders.notebook import (
    CallCounter,
    assert_close,
    assert_scalar_close,
    assert_shape,
    load_corpus,
    load_model,
    load_tokenizer,
    peak_memory_numpy,
    speedup,
)

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
train_texts = load_corpus("train")
val_texts = load_corpus("validation")
print(f"{len(train_texts)} training and {len(val_texts)} validation documents; "
      f"{sum(map(len, train_texts)):,} training characters; torch on {device}")

# %% [markdown]
# ## 1. Byte-level BPE, trained from scratch
#
# **Bytes, not characters.** A tokenizer maps text to integers from a fixed vocabulary. Unicode
# has about 150,000 characters, too many to give each an id, and new ones keep coming. But every
# string is a sequence of **UTF-8 bytes**, and there are only 256 byte values: `"a"` is one byte
# (`0x61`), `"é"` two (`0xc3 0xa9`), `"日"` three, and `"😀"` four. A *byte-level* tokenizer starts
# from those 256 single-byte tokens, so it can encode any input at all (no "unknown" token),
# and then learns longer tokens for frequent byte sequences.
#
# **Byte-pair encoding (BPE)** learns those tokens greedily (Sennrich et al. 2016, after Gage
# 1994). Write every word as a list of single-byte symbols. Then repeat:
#
# 1. count every pair of adjacent symbols, over all words, each word weighted by how often it
#    occurs;
# 2. take the most frequent pair $(x, y)$, record the **merge** $(x, y)$, add $xy$ to the
#    vocabulary, and replace every occurrence of $x\,y$ by $xy$ (left to right, so `a a a` with
#    the merge `(a, a)` becomes `aa a`).
#
# After $m$ merges the vocabulary has $256 + m$ tokens. The ordered list of merges *is* the
# tokenizer: encoding replays it.
#
# **Ties.** Counts tie all the time (two pairs that each occur 7 times), and the pair you pick
# changes every later merge. So the rule must be stated, or two correct implementations disagree.
# Ours: **highest count first; among equal counts, the smallest pair, comparing `(left, right)` as
# Python compares tuples of `bytes`** — `min` over the tied pairs. For instance
# `(b"a", b"b") < (b"a", b"c") < (b"aa", b"a")`, because `b"a" < b"aa"` (a prefix sorts first).
# Real trainers differ, so do not expect their merges to match ours tie for tie: GPT-2's BPE
# trainer was never published; `tokenizers` breaks ties by its internal token ids; and
# subword-nmt (Sennrich's reference code, `max` over `(count, pair)`) and Stanford CS336's
# assignment break them toward the lexicographically *greater* pair, the opposite of our rule.
#
# **Pre-tokenisation.** Merging across word boundaries would create tokens like `"e t"` or
# `"s, and"`, wasting the vocabulary on accidents of context. GPT-2 first splits text with a
# regular expression and never merges across the pieces (*pre-tokens*):
#
# ```
# 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# ```
#
# read left to right: common English contractions; an optional space and a run of letters
# (`\p{L}` is any Unicode letter, so `" naïve"` and `" 日本語"` are one piece each); an optional
# space and a run of digits; an optional space and a run of other symbols (`" =="`, `"()."`);
# whitespace not followed by a non-space (so in `"a   b"` the last space stays with `" b"`); any
# other whitespace. The leading space belongs to the word after it, which is why GPT-2's
# vocabulary has `" the"` and `"the"` as different tokens. `\p{L}` needs the `regex` package
# (Python's `re` does not know Unicode categories). Every character of the input lands in
# exactly one pre-token, so joining the pre-tokens gives the text back.
#
# **Counting fast.** A trainer that recounts every pair after every merge does
# $O(\text{merges} \times \text{corpus})$ work: minutes for the 1,000 merges trained below. Two
# ideas make it fast: count each distinct pre-token once, weighted by its frequency (a corpus
# of 100,000 words has a few thousand distinct ones); and after a merge, update the pair counts
# of **only the words that contain the merged pair** (keep an index from pair to words), instead
# of recounting everything. A heap of `(-count, pair)` entries finds the best pair quickly; an
# entry whose count has changed since it was pushed is stale and is skipped when popped.
#
# **Lone surrogates.** A Python `str` can hold code points U+D800–U+DFFF on their own (they come
# from broken JSON escapes such as `"\ud83d"`), and `text.encode("utf-8")` raises on them. A
# tokenizer must never crash on input, so we encode with `errors="surrogatepass"` (a lone
# surrogate becomes 3 bytes) and decode the same way; the round trip then holds for *every* string.

# %% setup id=bpe_setup
# GPT-2's pre-tokenisation pattern (Radford et al. 2019), the one the `tokenizers` library's
# ByteLevel pre-tokenizer applies.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT2_REGEX = regex.compile(GPT2_PATTERN)
print(GPT2_REGEX.findall("It's 2024: naïve café, 日本語   text!!"))

# %% [markdown]
# Write `pretokenize` and `train_bpe`. A helper that applies one merge to a list of symbols
# will be useful again when you encode.

# %% answer id=bpe_train
def pretokenize(text):
    """The pre-tokens of `text`: the matches of GPT2_REGEX, in order (a list of str that
    joins back to `text`)."""
    ### BEGIN SOLUTION
    return GPT2_REGEX.findall(text)
    ### END SOLUTION


def merge_symbols(symbols, pair, new):
    """Replace every occurrence of the adjacent pair (left to right, not overlapping) in the
    list `symbols` by `new`; return a new list."""
    ### BEGIN SOLUTION
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out
    ### END SOLUTION


def train_bpe(texts, num_merges):
    """Learn up to `num_merges` byte-level BPE merges from a list of strings.

    Every text is pre-tokenized with `pretokenize`; a pre-token starts as the list of its UTF-8
    bytes (encoded with errors="surrogatepass"), each a one-byte `bytes` object. Merges never
    cross pre-tokens. At each step, count adjacent pairs over all pre-tokens (weighted by how
    often each pre-token occurs), take the pair with the highest count, and among equal counts
    the smallest (left, right) tuple of bytes; merge it everywhere (left to right). Stop early
    when no pair is left.
    Returns the merges in order: a list of (left, right) tuples of `bytes`.
    """
    ### BEGIN SOLUTION
    counts = collections.Counter()
    for text in texts:
        counts.update(pretokenize(text))
    words = [[bytes([b]) for b in w.encode("utf-8", "surrogatepass")] for w in counts]
    freqs = list(counts.values())
    pair_counts = collections.Counter()
    where = collections.defaultdict(set)  # pair -> indices of the words that contain it
    for i, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq
            where[pair].add(i)
    # Python's heap is a min-heap: (-count, pair) pops the highest count, then the smallest pair.
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < num_merges and heap:
        neg_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg_count:
            continue  # stale: the count changed after this entry was pushed
        merges.append(pair)
        touched = set()
        for i in where.pop(pair):
            word, freq = words[i], freqs[i]
            for p in zip(word, word[1:]):
                pair_counts[p] -= freq
                touched.add(p)
            words[i] = word = merge_symbols(word, pair, pair[0] + pair[1])
            for p in zip(word, word[1:]):
                pair_counts[p] += freq
                where[p].add(i)
                touched.add(p)
        for p in touched:
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
            else:
                del pair_counts[p]
    return merges
    ### END SOLUTION

# %% test id=test_bpe_train_visible points=1
assert pretokenize("Hello world's  end") == ["Hello", " world", "'s", " ", " end"], (
    f"pretokenize('Hello world\\'s  end'): expected ['Hello', ' world', \"'s\", ' ', ' end'], "
    f"got {pretokenize('Hello world' + chr(39) + 's  end')}"
)
# One pre-token, "aaabdaaabac": pairs aa:4, ab:2, others 1 -> merge (a, a).
# Then (a, b) and (aa, a) tie at 2: (b"a", b"b") < (b"aa", b"a") because b"a" < b"aa".
got = train_bpe(["aaabdaaabac"], 3)
expected = [(b"a", b"a"), (b"a", b"b"), (b"aa", b"ab")]
assert got == expected, f"train_bpe(['aaabdaaabac'], 3): expected {expected}, got {got}"
assert merge_symbols(list("aaab"), ("a", "a"), "X") == ["X", "a", "b"], (
    f"merge_symbols(['a','a','a','b'], ('a','a'), 'X'): expected ['X', 'a', 'b'] (left to right, "
    f"no overlap), got {merge_symbols(list('aaab'), ('a', 'a'), 'X')}"
)

# %% test id=test_bpe_train_hidden points=3
### BEGIN HIDDEN TESTS
def _reference_bpe(texts, num_merges):
    """Recount every pair after every merge: slow, obviously right."""
    counts = collections.Counter(w for t in texts for w in GPT2_REGEX.findall(t))
    words = {tuple(bytes([b]) for b in w.encode("utf-8", "surrogatepass")): f for w, f in counts.items()}
    merges = []
    for _ in range(num_merges):
        pairs = collections.Counter()
        for w, f in words.items():
            for p in zip(w, w[1:]):
                pairs[p] += f
        if not pairs:
            break
        top = max(pairs.values())
        best = min(p for p, c in pairs.items() if c == top)
        merges.append(best)
        new_words = collections.Counter()
        for w, f in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] += f
        words = new_words
    return merges


def _first_difference(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"merge {i}: expected {w}, got {g}"
    return f"expected {len(want)} merges, got {len(got)}"


# Pre-tokenisation: the same pieces as the tokenizers library's ByteLevel pre-tokenizer.
from tokenizers import pre_tokenizers as _pre

_byte_level = _pre.ByteLevel(add_prefix_space=False, use_regex=True)
for text in val_texts[:40] + ["a   b\n\n  c\t", "naïve 日本語 x2 '''", " 'LL 's's"]:
    pieces = pretokenize(text)
    assert "".join(pieces) == text, f"pretokenize must return pieces that join back to the text; {text[:40]!r} failed"
    want = [p for p, _ in _byte_level.pre_tokenize_str(text)]
    # The library shows bytes as printable characters (section 2); compare the piece lengths in bytes.
    got_lengths = [len(p.encode("utf-8")) for p in pieces]
    want_lengths = [len(p) for p in want]
    assert got_lengths == want_lengths, (
        f"pretokenize({text[:50]!r}) must split where GPT-2's regex splits (as tokenizers' ByteLevel does): "
        f"expected pieces of {want_lengths[:12]} bytes, got {got_lengths[:12]}"
    )
# The merges, against the slow reference, on a slice of the corpus (ties occur from merge ~30 on).
slice_texts = train_texts[:50]
want = _reference_bpe(slice_texts, 90)
got = train_bpe(slice_texts, 90)
assert [tuple(m) for m in got] == want, f"train_bpe(train_texts[:50], 90) vs a reference trainer: {_first_difference(got, want)}"
# A corpus where every pair ties: the smallest pair must win every time.
tie_texts = ["ab cd ef", "ba dc fe", "xy"]
want = _reference_bpe(tie_texts, 12)
got = train_bpe(tie_texts, 12)
assert [tuple(m) for m in got] == want, f"train_bpe({tie_texts}, 12) (all pairs tie): {_first_difference(got, want)}"
# Unicode: bytes, not characters; merges never cross pre-tokens; stop when no pair is left.
got = train_bpe(["é é é 😀"], 20)
assert (b"\xc3", b"\xa9") in got and all(isinstance(x, bytes) for m in got for x in m), (
    f"train_bpe(['é é é 😀'], 20): merges are pairs of UTF-8 bytes, e.g. (b'\\xc3', b'\\xa9') for é; got {got}"
)
assert not any(b" " in m[1] for m in train_bpe(["a a a a b b b"], 10)), (
    "train_bpe: no merge may cross a pre-token boundary (a space starts a new pre-token)"
)
got = train_bpe(["ab"], 5)
assert got == [(b"a", b"b")], f"train_bpe(['ab'], 5): expected [(b'a', b'b')] and an early stop, got {got}"
assert train_bpe([], 5) == [] and train_bpe(["a"], 3) == [], "train_bpe with no pairs to merge must return []"
got = train_bpe(["aaa aaa"], 4)
want = _reference_bpe(["aaa aaa"], 4)
assert got == want, f"train_bpe(['aaa aaa'], 4) (overlapping pairs): expected {want}, got {got}"
# A lone surrogate is three bytes, not an error.
got = train_bpe(["\ud800\ud800"], 1)
assert got == [(b"\xa0", b"\x80")], (
    f"train_bpe(['\\ud800\\ud800'], 1): encode with errors='surrogatepass' (bytes ed a0 80 ed a0 80, so "
    f"(b'\\xa0', b'\\x80') ties with (b'\\xed', b'\\xa0') and is smaller); got {got}"
)
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### Encoding, decoding and special tokens
#
# **Ids.** Token ids 0–255 are the single bytes (id = byte value), id $256 + i$ is the token made
# by merge $i$ (left + right), and special tokens come last, in the order given: with $m$ merges
# the $k$-th special token has id $256 + m + k$. (GPT-2's vocabulary has the same layout, the
# 256 single bytes, then the merges in order, then `<|endoftext|>` as its last id, 50256, but
# not the same byte ids: it orders its 256 byte tokens as its `bytes_to_unicode` table lists
# them, the printable bytes `!` to `~` first, so its id 0 is `!` (byte 33), not byte 0.)
#
# **Encoding** replays the merges: pre-tokenize the text, turn each pre-token into its list of
# byte ids, then apply merge 0 everywhere, merge 1 everywhere, and so on through the last merge.
# This is exactly what the trainer did to each word, so a training word comes out as it ended up
# in training. (It is also slow: every merge scans every word. Section 2 fixes that.)
#
# **Special tokens** such as `<|endoftext|>` (document boundaries) or chat markers like
# `<|im_start|>` are control signals, not text: the encoder must emit their single id, and
# nothing else may produce it. So the text is first cut at every occurrence of a special token,
# scanning left to right (where two specials start at the same position, the longer wins); the
# pieces between specials are encoded as ordinary text, and never merged across a special. A
# special token's text inside an ordinary piece cannot happen, because the cut found them all.
# (Whether user-supplied text may produce special tokens at all is a security question for chat
# models; `tiktoken` refuses by default.)
#
# **Decoding** concatenates the bytes of the ids and decodes them as UTF-8 with
# `errors="surrogatepass"`. A single id may hold half a character (one byte of `"é"`): only the
# full byte string is guaranteed to be valid.

# %% answer id=bpe_codec
def build_vocab(merges, special_tokens=()):
    """The vocabulary as a list: vocab[id] is the bytes of token `id`. Ids 0-255 are the single
    bytes, 256 + i is merge i (left + right), then each special token (a str) as UTF-8 bytes."""
    ### BEGIN SOLUTION
    vocab = [bytes([b]) for b in range(256)]
    vocab += [left + right for left, right in merges]
    vocab += [s.encode("utf-8") for s in special_tokens]
    return vocab
    ### END SOLUTION


def split_special(text, special_tokens=()):
    """Cut `text` at the special tokens: a list of (piece, is_special) pairs whose pieces join
    back to `text`. Scans left to right; where two specials start at one position the longer
    wins. No empty pieces (an empty text gives [])."""
    ### BEGIN SOLUTION
    if not special_tokens:
        return [(text, False)] if text else []
    pattern = re.compile("|".join(re.escape(s) for s in sorted(special_tokens, key=len, reverse=True)))
    pieces, start = [], 0
    for match in pattern.finditer(text):
        if match.start() > start:
            pieces.append((text[start:match.start()], False))
        pieces.append((match.group(), True))
        start = match.end()
    if start < len(text):
        pieces.append((text[start:], False))
    return pieces
    ### END SOLUTION


def encode_naive(text, merges, special_tokens=()):
    """Token ids of `text` (list of int): special tokens get their own ids; every other piece
    is pre-tokenized, each pre-token's UTF-8 bytes (errors="surrogatepass") are its initial
    ids, and merges 0, 1, 2, ... are applied in order, each everywhere (left to right)."""
    ### BEGIN SOLUTION
    token_id = {}
    for i, token in enumerate(build_vocab(merges)):
        token_id.setdefault(token, i)
    id_pairs = [(token_id[left], token_id[right]) for left, right in merges]
    ids = []
    for piece, is_special in split_special(text, special_tokens):
        if is_special:
            ids.append(256 + len(merges) + list(special_tokens).index(piece))
            continue
        for word in pretokenize(piece):
            symbols = list(word.encode("utf-8", "surrogatepass"))
            for rank, pair in enumerate(id_pairs):
                if len(symbols) < 2:
                    break
                symbols = merge_symbols(symbols, pair, 256 + rank)
            ids += symbols
    return ids
    ### END SOLUTION


def decode(ids, vocab):
    """The text of a list of ids: their bytes joined, decoded as UTF-8 with errors="surrogatepass"."""
    ### BEGIN SOLUTION
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="surrogatepass")
    ### END SOLUTION

# %% test id=test_bpe_codec_visible points=1
toy_merges = [(b"a", b"a"), (b"a", b"b"), (b"aa", b"ab")]
toy_vocab = build_vocab(toy_merges, ["<|eot|>"])
assert len(toy_vocab) == 260 and toy_vocab[258] == b"aaab" and toy_vocab[259] == b"<|eot|>", (
    f"build_vocab: expected 256 bytes, 3 merges and 1 special (260 entries, vocab[258] == b'aaab', "
    f"vocab[259] == b'<|eot|>'); got {len(toy_vocab)} entries ending {toy_vocab[-4:]}"
)
assert split_special("x<|eot|>y", ["<|eot|>"]) == [("x", False), ("<|eot|>", True), ("y", False)], (
    f"split_special('x<|eot|>y', ['<|eot|>']): got {split_special('x<|eot|>y', ['<|eot|>'])}"
)
# "aaabdaaabac" -> aaab d aaab a c; ids 258 = aaab, 100 = d, 97 = a, 99 = c.
got = encode_naive("aaabdaaabac<|eot|>", toy_merges, ["<|eot|>"])
assert got == [258, 100, 258, 97, 99, 259], f"encode_naive('aaabdaaabac<|eot|>'): expected [258, 100, 258, 97, 99, 259], got {got}"
for text in ["aaabdaaabac<|eot|>", "héllo 😀 日本語", ""]:
    back = decode(encode_naive(text, toy_merges, ["<|eot|>"]), toy_vocab)
    assert back == text, f"decode(encode_naive(x)) must give x back: x={text!r}, got {back!r}"
assert decode([104, 105], toy_vocab) == "hi", f"decode([104, 105]): expected 'hi', got {decode([104, 105], toy_vocab)!r}"

# %% [markdown]
# ### The oracle: the `tokenizers` library, loaded with *your* merges
#
# Hugging Face's `tokenizers` (Rust) implements the same byte-level BPE. To load our merges into
# it we need one trick from GPT-2: its files store tokens as *printable strings*, so each of the
# 256 bytes is shown as a character — printable ASCII and Latin-1 bytes as themselves, the
# others (control bytes, space, ...) as characters from U+0100 on. That is why a space appears
# as `Ġ` in GPT-2's vocabulary and `Ġthe` is `" the"`. The cell below builds that map and a
# `tokenizers.Tokenizer` with exactly our ids; the hidden tests compare your encoders with it.
# It also reads the merges of the course's bundled tokenizer (`datasets/tiny_llama`, 3,837 merges
# learned by `tokenizers` on the whole training split) into our `(bytes, bytes)` form.

# %% setup id=oracle_setup
def _byte_to_char():
    """GPT-2's printable stand-in for every byte value: printable bytes map to themselves,
    the other 68 to chr(256), chr(257), ... in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_CHAR = _byte_to_char()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def as_chars(token):
    return "".join(BYTE_TO_CHAR[b] for b in token)


def to_hf_tokenizer(merges, special_tokens=()):
    """A `tokenizers.Tokenizer` with our ids: 0-255 the bytes, 256 + i merge i, then the specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokens = [bytes([b]) for b in range(256)] + [left + right for left, right in merges]
    vocab = {as_chars(t): i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise ValueError("two merges make the same token: the library cannot hold both ids")
    tok = Tokenizer(models.BPE(vocab, [(as_chars(left), as_chars(right)) for left, right in merges]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(special_tokens))
    return tok


bundled_tokenizer = load_tokenizer()  # a transformers PreTrainedTokenizerFast, backed by tokenizers


def bundled_merges():
    """The merges of the bundled tokenizer, as a list of (bytes, bytes)."""
    state = json.loads(bundled_tokenizer.backend_tokenizer.to_str())
    pairs = [p.split(" ") if isinstance(p, str) else p for p in state["model"]["merges"]]
    return [tuple(bytes(CHAR_TO_BYTE[c] for c in part) for part in pair) for pair in pairs]


BUNDLED_MERGES = bundled_merges()
# Section 2's speed bar: FastEncoder must beat the reference encode_naive by more than this factor.
FAST_ENCODER_MIN_RATIO = 6
hf_demo = to_hf_tokenizer([(b"a", b"a"), (b"a", b"b"), (b"aa", b"ab")], ["<|eot|>"])
print(len(BUNDLED_MERGES), "bundled merges, the first:", BUNDLED_MERGES[:4])
print("the library on our toy merges:", hf_demo.encode("aaabdaaabac<|eot|>").ids)

# %% test id=test_bpe_codec_hidden points=3
### BEGIN HIDDEN TESTS
SPECIALS = ["<|endoftext|>", "<|im|>", "<|im|>user"]  # one special is a prefix of another
small = BUNDLED_MERGES[:300]
small_vocab = build_vocab(small, SPECIALS)
assert len(small_vocab) == 256 + 300 + 3 and small_vocab[256] == small[0][0] + small[0][1], (
    f"build_vocab(300 merges, 3 specials): expected 559 entries with vocab[256] == merge 0 joined, got {len(small_vocab)}"
)
# Round trip on arbitrary Unicode: emoji (with joiners and skin tones), CJK, combining marks,
# right-to-left text, control characters, lone surrogates, and random code points.
rng = np.random.default_rng(3)
weird = [
    "", " ", "\n\n\t  x", "👩‍👩‍👧‍👦 👍🏽 🇫🇷", "日本語のテキストと中文", "e\u0301 n\u0303 ﬁ ①", "مرحبا بالعالم", "\x00\x01\x7f\x80",
    "\ud800", "a\udfffb", "\ud83d\ude00 vs 😀", "<|endoftext|>", "<|endoftext|><|im|>userx<|im|>",
    "a<|im|>usr<|im|>c<|endoftext|", "   <|endoftext|>   ", "'s 'll 'S", "x" * 300, "<|im|>user<|im|>user",
]
weird += ["".join(chr(int(c)) for c in rng.integers(0, 0x110000, size=40)) for _ in range(20)]
for text in weird:
    ids = encode_naive(text, small, SPECIALS)
    assert all(isinstance(i, int) and 0 <= i < len(small_vocab) for i in ids), f"encode_naive({text[:30]!r}): ids must be ints in [0, {len(small_vocab)})"
    back = decode(ids, small_vocab)
    assert back == text, f"decode(encode_naive(x)) != x for x = {text[:40]!r}: got {back[:40]!r}"
# Special tokens are never split, and only they produce their ids.
eot, im, im_user = 256 + 300, 256 + 300 + 1, 256 + 300 + 2
ids = encode_naive("Hi<|endoftext|><|im|>user: x<|im|>y", small, SPECIALS)
assert ids.count(eot) == 1 and ids.count(im_user) == 1 and ids.count(im) == 1, (
    f"encode_naive: each special token must become exactly its own id ({eot}, {im}, {im_user}); got {ids}"
)
assert ids.index(eot) < ids.index(im_user) < ids.index(im), f"encode_naive: special ids out of order in {ids}"
# '<|im|>' is a prefix of '<|im|>user': at one position the longer special wins.
assert encode_naive("<|im|>user", small, SPECIALS) == [im_user], (
    f"encode_naive('<|im|>user'): expected [{im_user}] (the longer special), got {encode_naive('<|im|>user', small, SPECIALS)}"
)
assert encode_naive("<|im|>use", small, SPECIALS)[0] == im, "encode_naive('<|im|>use'): '<|im|>' then text"
ids = encode_naive("<|endoftext|>", small)
assert eot not in ids and len(ids) > 1, "without special tokens, '<|endoftext|>' is ordinary text (several ids)"
assert split_special("", SPECIALS) == [] and split_special("abc", []) == [("abc", False)], "split_special: no empty pieces"
got = split_special("<|im|><|im|>userx", SPECIALS)
assert got == [("<|im|>", True), ("<|im|>user", True), ("x", False)], f"split_special('<|im|><|im|>userx'): got {got}"
# Against the tokenizers library loaded with the same merges and specials.
hf_small = to_hf_tokenizer(small, SPECIALS)
for text in val_texts[:6] + [t for t in weird if "\ud800" not in t and not any(0xD800 <= ord(c) < 0xE000 for c in t)]:
    got, want = encode_naive(text, small, SPECIALS), hf_small.encode(text).ids
    assert got == want, (
        f"encode_naive vs tokenizers (same merges and specials) on {text[:40]!r}: first difference at position "
        f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}: "
        f"expected {want[:12]}..., got {got[:12]}..."
    )
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 2. Fast encoding: merge ranks and a cache
#
# `encode_naive` tries every merge on every pre-token: with $m$ merges that is $m$ scans per word,
# nearly all of them finding nothing. Two observations make encoding fast:
#
# - **Ranks.** Give merge $i$ the rank $i$. Within one word, the merge that `encode_naive` would
#   apply next is always the one with the **lowest rank among the word's current adjacent
#   pairs** (a pair that is not adjacent now can only appear through a later merge, which has a
#   higher rank). So: look up each adjacent pair in a dict `pair -> rank`, merge the lowest-ranked
#   one (its leftmost occurrence), and repeat until no adjacent pair has a rank. A word of $n$
#   bytes needs at most $n - 1$ rounds of $O(n)$ dict look-ups, whatever the number of merges.
#   This is GPT-2's `bpe()` function, and what `tokenizers` and `tiktoken` do (with cleverer data
#   structures).
# - **A cache.** Word frequencies follow Zipf's law: `" the"`, `" of"`, `" to"` recur constantly,
#   and a few thousand distinct pre-tokens make up most of any text. Remember the ids of every
#   pre-token you have encoded (`self.cache`, a dict from its bytes to its tuple of ids), and most
#   pre-tokens cost one dict look-up.
#
# Write `FastEncoder`. It must give exactly the ids of `encode_naive` (and of `tokenizers`).
#
# **Graded on speed**, in one thread: with the first 500 bundled merges and a fresh encoder (empty
# cache) per call, encoding 12 validation documents must be more than
# `FAST_ENCODER_MIN_RATIO` = 6 times faster than the reference `encode_naive` (a hidden copy of
# it, so your own naive encoder's speed does not matter). The reference answer is about 40–65×
# faster, GPT-2's `bpe()` with a cache about 16–25×; a cache alone, still trying every merge on
# each new word, is only about 2× faster.

# %% answer id=fast_encoder
class FastEncoder:
    """Byte-level BPE encoder with merge ranks and a cache; same ids as `encode_naive`.

    FastEncoder(merges, special_tokens=()): merges as returned by `train_bpe`.
    encode_word(word): `word` is the bytes of one pre-token; returns a tuple of ids. It returns
    self.cache[word] when present; otherwise it merges, repeatedly, the leftmost adjacent pair
    with the lowest merge rank, until no adjacent pair is a merge, and stores the result in
    self.cache[word].
    encode(text): list of ids, as `encode_naive(text, merges, special_tokens)`.
    self.cache: a dict {pre-token bytes: tuple of ids}, empty at first, filled by encode_word.
    """

    def __init__(self, merges, special_tokens=()):
        ### BEGIN SOLUTION
        token_id = {}
        for i, token in enumerate(build_vocab(merges)):
            token_id.setdefault(token, i)
        # pair of ids -> id of the merged token; merge i makes id 256 + i, so lower id = lower rank.
        self.merged = {}
        for rank, (left, right) in enumerate(merges):
            self.merged.setdefault((token_id[left], token_id[right]), 256 + rank)
        self.special_tokens = tuple(special_tokens)
        self.special_id = {s: 256 + len(merges) + k for k, s in enumerate(self.special_tokens)}
        self.cache = {}
        ### END SOLUTION

    def encode_word(self, word):
        ### BEGIN SOLUTION
        cached = self.cache.get(word)
        if cached is not None:
            return cached
        symbols = list(word)
        while len(symbols) > 1:
            best, where = None, -1
            for i in range(len(symbols) - 1):
                new = self.merged.get((symbols[i], symbols[i + 1]))
                if new is not None and (best is None or new < best):
                    best, where = new, i
            if best is None:
                break
            symbols[where:where + 2] = [best]
        result = tuple(symbols)
        self.cache[word] = result
        return result
        ### END SOLUTION

    def encode(self, text):
        ### BEGIN SOLUTION
        ids = []
        for piece, is_special in split_special(text, self.special_tokens):
            if is_special:
                ids.append(self.special_id[piece])
            else:
                for word in pretokenize(piece):
                    ids.extend(self.encode_word(word.encode("utf-8", "surrogatepass")))
        return ids
        ### END SOLUTION

# %% test id=test_fast_encoder_visible points=1
fast_toy = FastEncoder(toy_merges, ["<|eot|>"])
got = fast_toy.encode("aaabdaaabac<|eot|> aaab")
want = encode_naive("aaabdaaabac<|eot|> aaab", toy_merges, ["<|eot|>"])
assert got == want, f"FastEncoder.encode must match encode_naive: expected {want}, got {got}"
assert fast_toy.cache.get(b"aaabdaaabac") == (258, 100, 258, 97, 99), (
    f"FastEncoder.cache[b'aaabdaaabac']: expected (258, 100, 258, 97, 99), got {fast_toy.cache.get(b'aaabdaaabac')}"
)
assert set(fast_toy.cache) == {b"aaabdaaabac", b" aaab"}, f"FastEncoder.cache: expected the two pre-tokens as keys, got {set(fast_toy.cache)}"

# %% test id=test_fast_encoder_hidden points=2
### BEGIN HIDDEN TESTS
SPECIALS = ["<|endoftext|>", "<|im|>", "<|im|>user"]
hf_full = to_hf_tokenizer(BUNDLED_MERGES, SPECIALS)
enc = FastEncoder(BUNDLED_MERGES, SPECIALS)
# Every validation document, id for id against the Rust library with the same vocabulary.
for doc_index, text in enumerate(val_texts):
    got, want = enc.encode(text), hf_full.encode(text).ids
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        raise AssertionError(
            f"FastEncoder (all {len(BUNDLED_MERGES)} bundled merges) vs tokenizers on validation document {doc_index}: "
            f"first difference at token {first}: expected {want[first:first + 8]}, got {got[first:first + 8]}"
        )
mixed = "x<|endoftext|><|im|>user<|im|>👩‍👩‍👧 日本語 e\u0301 " * 3
assert enc.encode(mixed) == hf_full.encode(mixed).ids, "FastEncoder vs tokenizers on text with special tokens and emoji"
assert enc.encode("a\ud800b") == encode_naive("a\ud800b", BUNDLED_MERGES, SPECIALS), "FastEncoder on a lone surrogate"
assert enc.encode("") == [], "FastEncoder.encode('') must be []"
# The cache: one entry per distinct pre-token (specials are not pre-tokens), and it is used.
enc2 = FastEncoder(BUNDLED_MERGES[:500], ["<|endoftext|>"])
text = " ".join(val_texts[:5]) + "<|endoftext|>"
enc2.encode(text)
want_keys = {w.encode("utf-8") for w in pretokenize(text.replace("<|endoftext|>", ""))}
assert set(enc2.cache) == want_keys, (
    f"FastEncoder.cache after encode: expected one key per distinct pre-token ({len(want_keys)}), got {len(enc2.cache)} keys"
)
assert all(isinstance(v, tuple) for v in enc2.cache.values()), "FastEncoder.cache values must be tuples of ids"
enc2.cache[b" the"] = (7, 7, 7)  # a planted entry: a cache that is read returns it
assert enc2.encode("a the") == [97, 7, 7, 7], (
    f"FastEncoder.encode must look pre-tokens up in self.cache before merging (a planted cache entry was ignored: "
    f"got {enc2.encode('a the')})"
)
### END HIDDEN TESTS
assert True

# %% test id=test_fast_encoder_speed points=2
### BEGIN HIDDEN TESTS
# The baseline is a private copy of the reference `encode_naive` (merges applied in order, each
# everywhere), not the learner's own: a learner whose naive encoder is already quick (one that
# skips merges whose pair is absent) must not be penalised for it. Pure Python on one thread
# (setup() pins torch's threads; nothing here is parallel), timed interleaved in one run.
def _baseline_naive_encode(text, merges):
    token_id = {}
    for i, token in enumerate([bytes([b]) for b in range(256)] + [left + right for left, right in merges]):
        token_id.setdefault(token, i)
    id_pairs = [(token_id[left], token_id[right]) for left, right in merges]

    def merge_pair(symbols, pair, new):
        out, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
                out.append(new)
                i += 2
            else:
                out.append(symbols[i])
                i += 1
        return out

    ids = []
    for word in GPT2_REGEX.findall(text):
        symbols = list(word.encode("utf-8", "surrogatepass"))
        for rank, pair in enumerate(id_pairs):
            if len(symbols) < 2:
                break
            symbols = merge_pair(symbols, pair, 256 + rank)
        ids += symbols
    return ids


# A fresh encoder (empty cache) per call, so the cache only helps with the words the text
# repeats, as on first use. 500 merges, 12 validation documents.
speed_merges = BUNDLED_MERGES[:500]
speed_text = "\n".join(val_texts[:12])
baseline_ids = _baseline_naive_encode(speed_text, speed_merges)
assert FastEncoder(speed_merges).encode(speed_text) == baseline_ids, "FastEncoder vs the reference encode_naive"
ratio = speedup(lambda: FastEncoder(speed_merges).encode(speed_text),
                lambda: _baseline_naive_encode(speed_text, speed_merges), repeats=3, warmup=1)
print(f"FastEncoder is {ratio.ratio:.0f}x faster than the reference encode_naive with 500 merges ({ratio})")
# Measured against this baseline (2 cores, idle to load 9): the reference 40-65x; GPT-2's own
# bpe() (the set of pairs, min by rank, merge every occurrence) with a cache about 16-25x; ranks
# without a cache about 9-12x; a cache over the naive merge loop 1.4-2x. 6x sits well between
# the slowest answer that uses ranks and the cache-only encoder.
min_ratio = FAST_ENCODER_MIN_RATIO
assert ratio.ratio > min_ratio, (
    f"FastEncoder must be more than {min_ratio}x faster than the reference encode_naive (500 merges, a fresh "
    f"cache per call, 12 validation documents); got {ratio.ratio:.1f}x: merge by rank, do not try every merge"
)
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### Your tokenizer, trained
#
# The cell below trains 1,000 merges on the first 1,000 training documents (about 370,000
# characters) and shows what BPE learns first: spaces and common letter pairs, then whole
# frequent words of this corpus (` the`, ` of`, `Return`, ` object`), then pieces of Python
# identifiers. It also times your encoder against the Rust library on the same vocabulary, one
# thread each. Measure, do not assume: with the cache most pre-tokens cost one dict look-up, while
# the library also computes character offsets and builds an `Encoding` object per call. The Rust
# code pulls ahead on many cores (`encode_batch` with `TOKENIZERS_PARALLELISM=true`) and on text
# whose words are new to the cache.

# %%
start = time.perf_counter()
my_merges = train_bpe(train_texts[:1000], 1000)
print(f"trained {len(my_merges)} merges in {time.perf_counter() - start:.1f} s")
my_vocab = build_vocab(my_merges, ["<|endoftext|>"])
print("first merges:", [(a.decode(errors="replace"), b.decode(errors="replace")) for a, b in my_merges[:8]])
print("longest tokens:", sorted({t.decode(errors="replace") for t in my_vocab[256:]}, key=len)[-8:])
my_encoder = FastEncoder(my_merges, ["<|endoftext|>"])
my_hf = to_hf_tokenizer(my_merges, ["<|endoftext|>"])
start = time.perf_counter()
fresh = FastEncoder(my_merges)  # an empty cache: it fills as the split is encoded
n_ours = sum(len(fresh.encode(t)) for t in val_texts)
t_ours = time.perf_counter() - start
start = time.perf_counter()
n_hf = sum(len(e.ids) for e in my_hf.encode_batch(val_texts))
t_hf = time.perf_counter() - start
print(f"validation split: {n_ours:,} tokens; FastEncoder {n_ours / t_ours:,.0f} tokens/s, "
      f"tokenizers (Rust, encode_batch, one thread) {n_hf / t_hf:,.0f} tokens/s: ratio {t_ours / t_hf:.2f}")

# %% [markdown]
# ## 3. Compression and fertility
#
# Two numbers describe how well a tokenizer fits a kind of text:
#
# - **bytes per token** (compression): total UTF-8 bytes divided by the number of tokens. More
#   bytes per token means shorter sequences, so more text fits in the context window and each
#   training step sees more text for the same compute.
# - **fertility** (tokens per word): the number of tokens divided by the number of
#   whitespace-separated words (`str.split()`). English with GPT-2 is about 1.3; languages and
#   domains the tokenizer was not trained on get much higher fertility, and pay for it in
#   context length and API price.
#
# We compare your tokenizer with the course's bundled one on the held-out validation split.
# (GPT-2's own encoding would be a natural third row, but `tiktoken` downloads its vocabulary file
# on first use and this course runs offline; the bundled tokenizer is loaded with
# `tokenizers`, from disk.)

# %% answer id=compression
def compression_stats(texts, encode):
    """Compression of a tokenizer on a non-empty list of texts.

    encode: a function from a str to a list of token ids.
    Returns {"bytes_per_token": total UTF-8 bytes / total tokens,
             "chars_per_token": total characters / total tokens,
             "tokens_per_word": total tokens / total words (words: str.split())}, all floats.
    """
    ### BEGIN SOLUTION
    n_tokens = sum(len(encode(t)) for t in texts)
    n_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    n_chars = sum(len(t) for t in texts)
    n_words = sum(len(t.split()) for t in texts)
    return {"bytes_per_token": n_bytes / n_tokens, "chars_per_token": n_chars / n_tokens,
            "tokens_per_word": n_tokens / n_words}
    ### END SOLUTION

# %% test id=test_compression_visible points=1
# Bytes as tokens: one token per byte. "naïve café" has 10 characters, 12 bytes and 2 words.
got = compression_stats(["naïve café"], lambda t: list(t.encode("utf-8")))
want = {"bytes_per_token": 1.0, "chars_per_token": 10 / 12, "tokens_per_word": 6.0}
assert set(got) == set(want), f"compression_stats: expected keys {sorted(want)}, got {sorted(got)}"
for key in want:
    assert_scalar_close(got[key], want[key], rtol=1e-12, atol=0, name=f"compression_stats(['naïve café'], bytes)['{key}']")
assert all(isinstance(v, float) for v in got.values()), f"compression_stats must return floats, got {got}"

# %% test id=test_compression_hidden points=1
### BEGIN HIDDEN TESTS
enc_bundled = lambda t: bundled_tokenizer(t, add_special_tokens=False)["input_ids"]
texts_h = val_texts[:80] + ["日本語 テキスト", "  spaced   out  ", "x"]
got = compression_stats(texts_h, enc_bundled)
n_tok = sum(len(enc_bundled(t)) for t in texts_h)
want = {"bytes_per_token": sum(len(t.encode()) for t in texts_h) / n_tok,
        "chars_per_token": sum(map(len, texts_h)) / n_tok,
        "tokens_per_word": n_tok / sum(len(t.split()) for t in texts_h)}
for key in want:
    # Integer counts divided once: exact up to float rounding.
    assert_scalar_close(got[key], want[key], rtol=1e-12, atol=0, name=f"compression_stats(validation, bundled)['{key}']")
### END HIDDEN TESTS
assert True

# %% [markdown]
# Compression on the validation split, and its dependence on the vocabulary size. BPE merges are
# learned in order, so the first $k$ merges of a tokenizer *are* the tokenizer you would get by
# training $k$ merges: one training run gives the whole curve. We do the same with the bundled
# tokenizer's merges (trained on all 3,918 training documents, 4× more text than yours).

# %%
rows = {"yours (1,000 merges, 1,000 docs)": compression_stats(val_texts, my_encoder.encode),
        "bundled (3,837 merges, all docs)": compression_stats(
            val_texts, lambda t: bundled_tokenizer(t, add_special_tokens=False)["input_ids"]),
        "bytes (no merges)": compression_stats(val_texts, lambda t: list(t.encode()))}
print(f"{'tokenizer':<34} {'bytes/token':>11} {'chars/token':>11} {'tokens/word':>11}")
for name, st in rows.items():
    print(f"{name:<34} {st['bytes_per_token']:>11.2f} {st['chars_per_token']:>11.2f} {st['tokens_per_word']:>11.2f}")
sizes = [0, 50, 100, 200, 400, 700, 1000, 1500, 2500, 3837]
sample = val_texts[:200]
curve_ours = [(k, compression_stats(sample, FastEncoder(my_merges[:k]).encode)["bytes_per_token"])
              for k in sizes if k <= len(my_merges)]
curve_bundled = [(k, compression_stats(sample, FastEncoder(BUNDLED_MERGES[:k]).encode)["bytes_per_token"]) for k in sizes]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot([256 + k for k, _ in curve_bundled], [v for _, v in curve_bundled], "o-", label="bundled merges (all training docs)")
ax.plot([256 + k for k, _ in curve_ours], [v for _, v in curve_ours], "s-", label="your merges (1,000 docs)")
ax.set_xscale("log")
ax.set_xlabel("vocabulary size (256 bytes + merges)")
ax.set_ylabel("bytes per token (validation)")
ax.set_title("compression grows with the vocabulary, with diminishing returns")
ax.legend()
plt.show()

# %% [markdown]
# ## 4. Cleaning and quality filters
#
# Raw text arrives with different encodings of the same characters, Windows line ends, tabs,
# invisible control characters, licence headers and "generated by" notices. Cleaning makes equal
# things equal and removes text no one wants the model to learn; filtering then drops whole
# documents that are not worth training on.
#
# **Unicode normalisation.** `"é"` can be one code point (U+00E9) or two (`"e"` + the combining
# accent U+0301); they look identical and compare unequal. **NFC** composes such pairs into one
# code point and changes nothing you can see, so it is safe for training text. **NFKC** also
# folds *compatibility* variants: the ligature `ﬁ` → `fi`, full-width `Ａ` → `A`, `①` → `1`, and
# `x²` → `x2`, which changes meaning in mathematics and code. Use NFC for the text you keep; NFKC
# (plus case folding) is fine for *keys* used only to compare documents (section 5).
#
# **Boilerplate** is text repeated across documents that carries no content: licence and
# copyright lines, author lines, "do not edit" notices. `datasets/build_corpus.py` removes lines
# that match a pattern like the one below, and drops documents that end up too short or too
# long (80 and 6,000 characters).

# %% setup id=cleaning_setup
BOILERPLATE = re.compile(
    r"(copyright\s*(\(c\)|©|\d{4})|all rights reserved|licensed under|"
    r"^\s*(author|authors|maintainer|written by)\s*:|generated (from|by) |do not edit)",
    re.IGNORECASE,
)
for s in ["e\u0301", "ﬁle", "Ａ1", "x²", "①"]:
    print(f"{s!r}: NFC {unicodedata.normalize('NFC', s)!r} ({len(unicodedata.normalize('NFC', s))} code points), "
          f"NFKC {unicodedata.normalize('NFKC', s)!r}")

# %% answer id=normalise
def normalise(text):
    """Canonical form of a document, in this order: Unicode NFC; "\\r\\n" and "\\r" become "\\n";
    tabs expanded to spaces (str.expandtabs(8)); control characters (Unicode category "Cc")
    other than "\\n" removed; trailing whitespace of every line removed; runs of three or more
    "\\n" become two (at most one blank line); leading and trailing whitespace removed."""
    ### BEGIN SOLUTION
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").expandtabs(8)
    text = "".join(c for c in text if c == "\n" or unicodedata.category(c) != "Cc")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()
    ### END SOLUTION


def clean_document(text, min_chars=80, max_chars=6000):
    """`normalise`, then drop every line that matches BOILERPLATE (BOILERPLATE.search), then
    normalise again (to close the gaps). Returns the cleaned text, or None when its length is
    below min_chars or above max_chars (characters)."""
    ### BEGIN SOLUTION
    kept = [line for line in normalise(text).split("\n") if not BOILERPLATE.search(line)]
    cleaned = normalise("\n".join(kept))
    return cleaned if min_chars <= len(cleaned) <= max_chars else None
    ### END SOLUTION

# %% test id=test_normalise_visible points=1
raw = "Cafe\u0301\r\nline\ttab  \r\n\n\n\n\x07bell\u200b \n"
want = "Café\nline    tab\n\nbell\u200b"
assert normalise(raw) == want, f"normalise({raw!r}): expected {want!r}, got {normalise(raw)!r}"
doc = "Copyright (c) 2001 Someone\nReturn the sum of the arguments, which must all be numbers.\n" * 1 + "x" * 30
assert clean_document(doc) == "Return the sum of the arguments, which must all be numbers.\n" + "x" * 30, (
    f"clean_document: the copyright line must go; got {clean_document(doc)!r}"
)
assert clean_document("too short") is None, "clean_document('too short'): expected None (under 80 characters)"

# %% test id=test_normalise_hidden points=2
### BEGIN HIDDEN TESTS
cases = {
    "": "",
    "  \n\n  ": "",
    "a\rb\r\nc": "a\nb\nc",
    "a\r\n\r\n\r\nb": "a\n\nb",
    "x\ty": "x       y",
    "ab\tc": "ab      c",
    "\tx": "x",
    "a\x00b\x1bc\x7fd\x85e": "abcde",
    "a\n\n\nb\n\n\n\n\nc": "a\n\nb\n\nc",
    "a  \nb\u3000\nc ": "a\nb\nc",
    "A\u030a \ufb01 \uff21": "\u00c5 \ufb01 \uff21",          # NFC composes, leaves compatibility forms alone
    "👩‍👩‍👧 e\u0301": "👩‍👩‍👧 \u00e9",                     # the zero-width joiner (Cf) stays
    "  lead\n  indented": "lead\n  indented",
}
for raw_h, want_h in cases.items():
    assert normalise(raw_h) == want_h, f"normalise({raw_h!r}): expected {want_h!r}, got {normalise(raw_h)!r}"
for text in val_texts[:50]:
    assert normalise(text) == text.strip() or normalise(normalise(text)) == normalise(text), "normalise must be idempotent"
    assert normalise(normalise(text + "\r\n\t\x01")) == normalise(text + "\r\n\t\x01"), "normalise must be idempotent"
body = "Return a new list of the items, sorted by key and then by value.\nSecond line of the docstring."
doc_h = f"Author: Guido\n{body}\n\nGenerated by a tool; do not edit.\n\nAll Rights Reserved."
assert clean_document(doc_h) == body, f"clean_document: boilerplate lines and the gaps they leave must go; got {clean_document(doc_h)!r}"
assert clean_document("licensed under the PSF\r\n" + body + "\n\n\n\ncopyright 2020 me") == body, (
    "clean_document must match BOILERPLATE case-insensitively and normalise after removing lines"
)
assert clean_document("x" * 80) == "x" * 80 and clean_document("x" * 79) is None, "clean_document: 80 characters is kept, 79 is not"
assert clean_document("x" * 6000) == "x" * 6000 and clean_document("x" * 6001) is None, "clean_document: at most 6,000 characters"
assert clean_document("y" * 50, min_chars=10, max_chars=40) is None and clean_document("y" * 30, 10, 40) == "y" * 30, (
    "clean_document must use its min_chars and max_chars arguments"
)
# The length limits apply after cleaning: 60 characters of text + a boilerplate line is dropped.
assert clean_document("z" * 60 + "\nCopyright 1999 " + "w" * 40) is None, "clean_document: measure the length after removing boilerplate"
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### A Gopher-style rule set
#
# DeepMind's Gopher paper (Rae et al. 2021, appendix A) filtered web text with simple rules that
# later pipelines (RefinedWeb, FineWeb, Dolma) reuse. We take eight of them, as **Gopher-style
# variants**, not Gopher's exact rules: Gopher tests the `#`-to-word and the ellipsis-to-word
# ratios as two separate thresholds (each ≤ 0.1), where we add them into one `symbol_ratio`; its
# top-n-gram rule takes the *most frequent* n-gram (for n = 2, 3, 4, with thresholds 0.20, 0.18,
# 0.16), where ours takes the repeated 2-gram covering the most characters; and it checks
# duplicate n-grams for every n from 5 to 10 and duplicate paragraphs and lines by characters as
# well. With `words = text.split()`:
#
# | rule | signal | keep when |
# |---|---|---|
# | `word_count` | `n_words` = number of words | 50 ≤ n ≤ 100,000 |
# | `mean_word_length` | mean of `len(w)` over words (0 with no words) | 3 ≤ mean ≤ 10 |
# | `symbol_ratio` | (count of `"#"` + count of `"..."` + count of `"…"` in the text) / max(1, n_words) | ≤ 0.1 |
# | `alphabetic_words` | fraction of words with at least one letter (`str.isalpha` of some character; 0 with no words) | ≥ 0.8 |
# | `stop_words` | how many of the 8 words in `STOP_WORDS` occur in `re.findall(r"[a-z]+", text.lower())` | ≥ 2 |
# | `duplicate_lines` | over the non-blank lines (stripped), (number of lines − number of distinct lines) / number of lines (0 with no lines) | ≤ 0.3 |
# | `top_2gram` | the repeated word 2-gram covering most characters: max over 2-grams occurring at least twice of count × (characters of its 2 words), divided by the characters of all words, capped at 1 (0 if no 2-gram repeats) | ≤ 0.2 |
# | `duplicate_5grams` | characters of the words covered by a *repeated* 5-gram occurrence (one whose 5-gram already occurred at an earlier start position), divided by the characters of all words (0 with no words) | ≤ 0.15 |
#
# "Characters of words" means `sum(len(w) for w in words)`: whitespace does not count. Example
# for the last rule: in `a b c d e x a b c d e` the 5-gram `a b c d e` occurs at positions 0 and 6,
# so words 6–10 are covered: 5 of 11 one-letter words, a fraction of 5/11. Real implementations
# differ in such details (whether the first occurrence counts, whether overlapping occurrences
# do), which is why a rule set must be written down this precisely.
#
# Written for web pages, these rules were never meant for Python docstrings: you will see which of
# them would throw away good technical text.

# %% setup id=gopher_setup
STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
GOPHER_RULES = {
    # rule: (signal, lowest value kept, highest value kept)
    "word_count": ("n_words", 50, 100_000),
    "mean_word_length": ("mean_word_length", 3, 10),
    "symbol_ratio": ("symbol_ratio", 0, 0.1),
    "alphabetic_words": ("alpha_word_fraction", 0.8, 1),
    "stop_words": ("stop_words", 2, math.inf),
    "duplicate_lines": ("dup_line_fraction", 0, 0.3),
    "top_2gram": ("top_2gram_fraction", 0, 0.2),
    "duplicate_5grams": ("dup_5gram_fraction", 0, 0.15),
}

# %% answer id=quality
def top_ngram_fraction(words, n):
    """max over word n-grams occurring at least twice of count * characters of the n-gram's
    words, over the characters of all words; capped at 1; 0 when no n-gram repeats."""
    ### BEGIN SOLUTION
    total = sum(len(w) for w in words)
    counts = collections.Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    best = max((c * sum(len(w) for w in gram) for gram, c in counts.items() if c >= 2), default=0)
    return min(1.0, best / total) if total else 0.0
    ### END SOLUTION


def duplicate_ngram_fraction(words, n):
    """Characters of the words covered by an occurrence of an n-gram that already occurred at
    an earlier start position, over the characters of all words (0 when there are none)."""
    ### BEGIN SOLUTION
    seen, covered = set(), [False] * len(words)
    for i in range(len(words) - n + 1):
        gram = tuple(words[i:i + n])
        if gram in seen:
            covered[i:i + n] = [True] * n
        seen.add(gram)
    total = sum(len(w) for w in words)
    return sum(len(w) for w, c in zip(words, covered) if c) / total if total else 0.0
    ### END SOLUTION


def quality_signals(text):
    """The eight signals of the table above, as a dict with the names in GOPHER_RULES
    ("n_words", "mean_word_length", ...): n_words and stop_words ints, the others floats."""
    ### BEGIN SOLUTION
    words = text.split()
    n = len(words)
    lines = [line.strip() for line in text.split("\n") if line.strip()]
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
    ### END SOLUTION


def quality_flags(text):
    """{rule: True if the document passes it} for every rule of GOPHER_RULES
    (lowest <= signal <= highest)."""
    ### BEGIN SOLUTION
    signals = quality_signals(text)
    return {rule: lo <= signals[signal] <= hi for rule, (signal, lo, hi) in GOPHER_RULES.items()}
    ### END SOLUTION


def kept_fractions(texts):
    """{rule: fraction of texts passing that rule} for every rule, plus "all": the fraction
    passing every rule."""
    ### BEGIN SOLUTION
    flags = [quality_flags(t) for t in texts]
    out = {rule: sum(f[rule] for f in flags) / len(flags) for rule in GOPHER_RULES}
    out["all"] = sum(all(f.values()) for f in flags) / len(flags)
    return out
    ### END SOLUTION

# %% test id=test_quality_visible points=1
words_v = "a b c d e x a b c d e".split()
assert_scalar_close(duplicate_ngram_fraction(words_v, 5), 5 / 11, rtol=1e-12, atol=0, name="duplicate_ngram_fraction('a b c d e x a b c d e', 5)")
# 2-grams of "to be or not to be": (to, be) occurs twice, 4 characters each time, of 13.
assert_scalar_close(top_ngram_fraction("to be or not to be".split(), 2), 8 / 13, rtol=1e-12, atol=0,
                    name="top_ngram_fraction('to be or not to be', 2)")
sig = quality_signals("The cat... sat #here\nThe cat... sat #here\n42")
want_sig = {"n_words": 9, "mean_word_length": 36 / 9, "symbol_ratio": 4 / 9, "alpha_word_fraction": 8 / 9,
            "stop_words": 1, "dup_line_fraction": 1 / 3}
for key, value in want_sig.items():
    assert_scalar_close(sig[key], value, rtol=1e-12, atol=0, name=f"quality_signals(...)['{key}']")
flags_v = quality_flags("The cat... sat #here\nThe cat... sat #here\n42")
assert set(flags_v) == set(GOPHER_RULES) and flags_v["mean_word_length"] and not flags_v["word_count"], (
    f"quality_flags: expected one bool per rule, word_count False and mean_word_length True; got {flags_v}"
)

# %% test id=test_quality_hidden points=3
### BEGIN HIDDEN TESTS
# Crafted documents: a clean one passes every rule; each of the others breaks exactly one.
clean = (
    "The standard library offers many modules that help with everyday programming tasks. "
    "You can read files, parse dates, compress archives and talk to network servers without "
    "installing anything else. Each module documents its functions in docstrings, which explain "
    "arguments, return values and the errors raised when something goes wrong. Good documentation "
    "saves time for every reader, so authors describe edge cases carefully and give short examples."
)
assert all(quality_flags(clean).values()), f"a clean paragraph of {len(clean.split())} words must pass every rule: {quality_flags(clean)}"
rng_q = np.random.default_rng(7)
fake = ["".join(rng_q.choice(list("bcdfghklmnprstvz"), 14)) for _ in range(70)]
crafted = {
    "word_count": "The cat sat on the mat with a hat and looked at the door.",
    "mean_word_length": "The " + " ".join(fake) + " and the end.",
    "symbol_ratio": clean + " #one #two #three #four #five #six #seven #eight #nine #ten ...",
    "alphabetic_words": clean + " " + " ".join(str(1000 + 7 * i) for i in range(25)),
    "stop_words": clean.replace("The ", "A ").replace(" the ", " a ").replace(" that ", " which ")
                       .replace(" with ", " via ").replace(" and ", " or ").replace(" to ", " for ")
                       .replace(" of ", " in ").replace(" be ", " get "),
    "duplicate_lines": "\n".join(s + "\nNote:" for s in clean.split(". ")[:7]),
    "top_2gram": " ".join(f"{w} data pipeline" for w in clean.split()[:30]),
    "duplicate_5grams": clean + " " + " ".join(clean.split()[:20]),
}
for rule, doc in crafted.items():
    flags_h = quality_flags(doc)
    failed = sorted(r for r, ok in flags_h.items() if not ok)
    assert failed == [rule], (
        f"a document crafted to break only '{rule}' should fail exactly that rule; it failed {failed} "
        f"(signals: {quality_signals(doc)})"
    )
# Exact values on small cases, including the edge cases of each definition.
checks = [
    (top_ngram_fraction([], 2), 0.0, "top_ngram_fraction([], 2)"),
    (top_ngram_fraction("a b c".split(), 2), 0.0, "top_ngram_fraction('a b c', 2) (nothing repeats)"),
    (top_ngram_fraction("a a a".split(), 2), 1.0, "top_ngram_fraction('a a a', 2) (overlaps: 2 x 2 of 3, capped at 1)"),
    (top_ngram_fraction("a b a b a b longword longer longword longer".split(), 2), 28 / 34,
     "top_ngram_fraction('a b a b a b longword longer longword longer', 2): (longword, longer) covers 2 x 14 "
     "characters, more than the more frequent (a, b) with 3 x 2"),
    (top_ngram_fraction("xx y xx y z zz zz zz zz".split(), 2), 12 / 15,
     "top_ngram_fraction('xx y xx y z zz zz zz zz', 2): (zz, zz) covers 3 x 4 characters, more than (xx, y) with 2 x 3"),
    (duplicate_ngram_fraction("a a a a a a".split(), 5), 5 / 6, "duplicate_ngram_fraction('a a a a a a', 5)"),
    (duplicate_ngram_fraction("a b c d".split(), 5), 0.0, "duplicate_ngram_fraction of 4 words, n=5"),
    (duplicate_ngram_fraction([], 5), 0.0, "duplicate_ngram_fraction([], 5)"),
    (duplicate_ngram_fraction("aa b c d e aa b c d e aa b c d e".split(), 5), 12 / 18, "duplicate_ngram_fraction of a 3x repeat"),
    (duplicate_ngram_fraction("long b c d e f long b c d e".split(), 5), 8 / 17, "duplicate_ngram_fraction counts characters, not words"),
    (duplicate_ngram_fraction("a b c d e f a b c d e f g h i j k l m".split(), 5), 6 / 19,
     "duplicate_ngram_fraction('a b c d e f a b c d e f g h i j k l m', 5): two overlapping repeats cover words 6-11"),
]
for got_h, want_h, name in checks:
    assert_scalar_close(got_h, want_h, rtol=1e-12, atol=0, name=name)
empty = quality_signals("")
assert empty["n_words"] == 0 and empty["mean_word_length"] == 0 and empty["alpha_word_fraction"] == 0 and empty["dup_line_fraction"] == 0, (
    f"quality_signals(''): expected zeros, got {empty}"
)
sig_h = quality_signals("Theme thereof: to be... or… not; THE end\n\n  x  \nx\n# x")
assert sig_h["stop_words"] == 3, f"stop words of 'Theme thereof: to be... or… not; THE end' are to, be, the: expected 3, got {sig_h['stop_words']}"
assert_scalar_close(sig_h["symbol_ratio"], 3 / 12, rtol=1e-12, atol=0, name="symbol_ratio with '...', '…' and '#'")
assert_scalar_close(sig_h["mean_word_length"], 37 / 12, rtol=1e-12, atol=0, name="mean_word_length (characters of words, no spaces)")
assert sig_h["n_words"] == 12, f"n_words of the test text: expected 12, got {sig_h['n_words']}"
assert_scalar_close(quality_signals("#")["symbol_ratio"], 1.0, rtol=1e-12, atol=0, name="symbol_ratio('#'): 1 symbol / 1 word")
assert_scalar_close(quality_signals("... …")["symbol_ratio"], 1.0, rtol=1e-12, atol=0, name="symbol_ratio('... …'): 2 symbols / 2 words")
assert_scalar_close(quality_signals("a b c d e x a b c d e")["dup_5gram_fraction"], 5 / 11, rtol=1e-12, atol=0,
                    name="quality_signals('a b c d e x a b c d e')['dup_5gram_fraction'] (5-grams)")
assert_scalar_close(quality_signals("ab cd ab cd ab")["top_2gram_fraction"], 8 / 10, rtol=1e-12, atol=0,
                    name="quality_signals('ab cd ab cd ab')['top_2gram_fraction'] (2-grams)")
assert_scalar_close(sig_h["dup_line_fraction"], 1 / 4, rtol=1e-12, atol=0, name="dup_line_fraction (stripped, blank lines ignored)")
# The thresholds are inclusive.
on_edge = " ".join(["abc"] * 2 + ["the", "and"] + [f"w{i:02d}" for i in range(46)])
assert quality_flags(on_edge)["word_count"] and not quality_flags(" ".join(on_edge.split()[1:]))["word_count"], "word_count: 50 words pass, 49 fail"
# kept_fractions on a mix: the crafted documents fail one rule each, the clean one none.
docs_h = [clean] + list(crafted.values())
kf = kept_fractions(docs_h)
assert set(kf) == set(GOPHER_RULES) | {"all"}, f"kept_fractions: expected the rules and 'all' as keys, got {sorted(kf)}"
for rule in GOPHER_RULES:
    assert_scalar_close(kf[rule], 8 / 9, rtol=1e-12, atol=0, name=f"kept_fractions(crafted)['{rule}']")
assert_scalar_close(kf["all"], 1 / 9, rtol=1e-12, atol=0, name="kept_fractions(crafted)['all']")
### END HIDDEN TESTS
assert True

# %% [markdown]
# What each rule would keep of the (already cleaned) training corpus:

# %%
kept = kept_fractions(train_texts)
for rule, frac in kept.items():
    print(f"{rule:>18}: keeps {frac:6.1%}")
fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(list(kept)[::-1], [kept[r] for r in list(kept)[::-1]])
ax.set_xlim(0, 1)
ax.set_xlabel("fraction of training documents kept")
ax.set_title("Gopher-style rules on Python docstrings")
plt.show()

# %% [markdown]
# `word_count` alone would remove most docstrings (most are shorter than 50 words), and code
# identifiers push `mean_word_length` and `alphabetic_words` around. Filters are tuned per
# source: the corpus build kept documents of at least 80 characters and used a letter-fraction
# rule instead. Always look at what a filter removes before you trust it.

# %% [markdown]
# ## 5. Exact de-duplication, streaming
#
# Web crawls repeat themselves: mirrored pages, templates, quoted licences, the same docstring
# copied into three modules. A model trained on duplicates memorises them (and regurgitates them
# verbatim) and wastes compute; de-duplicated data trains better models for the same number of
# tokens (Lee et al. 2022).
#
# **Exact** de-duplication keeps the first document with a given content and drops later ones.
# "Given content" means after a normalisation that ignores differences nobody cares about: here
# NFKC, case folding (`str.casefold`, which also maps `ß` to `ss`), and collapsing every run of
# whitespace to one space. Then compare **hashes** of that key, not the keys themselves: a
# SHA-256 digest is 32 bytes whatever the document's length, and with $2^{256}$ values two
# different documents never collide in practice.
#
# A real corpus does not fit in memory, so the de-duplicator must **stream**: read one document,
# decide, yield it or not, forget it. The only state that grows is the set of digests: about
# 110–120 bytes per distinct document in CPython, measured with `tracemalloc` (a 65-byte `bytes`
# object holding the 32-byte digest, plus its share of the set's hash table, which is kept
# under 60% full), which for a billion documents is the job of a distributed key-value store or a
# Bloom filter.

# %% answer id=exact_dedup
def dedup_key(text):
    """SHA-256 digest (32 bytes) of the normalised text: NFKC, then str.casefold, then every run
    of whitespace (str.split()) replaced by one space, no leading or trailing space; encoded as
    UTF-8 with errors="surrogatepass"."""
    ### BEGIN SOLUTION
    key = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    ### END SOLUTION


def exact_dedup(docs):
    """A generator: yields each document of the iterable `docs` whose dedup_key has not been
    seen before, in order. Streams: it reads one document at a time and keeps only the set of
    digests (never the documents or their normalised text)."""
    ### BEGIN SOLUTION
    seen = set()
    for doc in docs:
        key = dedup_key(doc)
        if key not in seen:
            seen.add(key)
            yield doc
    ### END SOLUTION

# %% test id=test_exact_dedup_visible points=1
docs_v = ["Hello  World", "hello world", "HELLO\tWORLD\n", "Hello, World", "Straße", "STRASSE"]
got = list(exact_dedup(docs_v))
assert got == ["Hello  World", "Hello, World", "Straße"], (
    f"exact_dedup({docs_v}): expected ['Hello  World', 'Hello, World', 'Straße'], got {got}"
)
assert dedup_key("a  b") == hashlib.sha256(b"a b").digest(), "dedup_key('a  b') must be sha256(b'a b').digest()"

# %% test id=test_exact_dedup_hidden points=2
### BEGIN HIDDEN TESTS
# Planted duplicates: 100 variants of 400 corpus documents (case, whitespace, line ends,
# decomposed accents, full-width letters), inserted at random places.
rng_d = np.random.default_rng(11)
originals = train_texts[1000:1400]
def _variant(text, kind):
    if kind == 0:
        return text.upper()
    if kind == 1:
        return "  " + text.replace(" ", "   ").replace("\n", "\r\n\t") + "\n\n"
    if kind == 2:
        return unicodedata.normalize("NFD", text.swapcase())
    return text.replace("a", "\uff41")  # full-width 'a': NFKC folds it back
stream = list(originals)
for k in range(100):
    j = int(rng_d.integers(0, 400))
    after = stream.index(originals[j]) + 1
    stream.insert(int(rng_d.integers(after, len(stream) + 1)), _variant(originals[j], k % 4))
def _key(text):
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())
want, seen_keys = [], set()
for doc in stream:
    if _key(doc) not in seen_keys:
        seen_keys.add(_key(doc))
        want.append(doc)
got = list(exact_dedup(stream))
assert len(got) == len(want) and got == want, (
    f"exact_dedup on {len(stream)} documents with 100 planted duplicates: expected {len(want)} kept (first "
    f"occurrences, in order), got {len(got)}"
)
# Near-misses are not duplicates.
assert len(list(exact_dedup(["one two", "one  two three", "one-two", "one two."]))) == 4, "different words are not duplicates"
assert dedup_key("\ud800 x") == hashlib.sha256("\ud800 x".encode("utf-8", "surrogatepass")).digest(), "dedup_key of a lone surrogate"
assert dedup_key(" Ｔhe\u00a0Fox ") == hashlib.sha256(b"the fox").digest(), "dedup_key: NFKC, casefold, whitespace (incl. no-break space)"
# Streaming: a lazy generator reads a document only when it needs the next one. The stream is
# long but finite (an endless one would leave a learner's list(docs) running until the time limit
# with its memory growing); we count what has been read when the 5th document comes out.
read_s = []
def _long_stream(n=200_000):
    for i in range(n):
        read_s.append(i)
        yield f"document {i % 5}"
lazy_s = exact_dedup(_long_stream())
first = [next(lazy_s) for _ in range(5)]
assert first == [f"document {i}" for i in range(5)], f"exact_dedup must be a lazy generator; got {first}"
assert len(read_s) <= 10, (
    f"exact_dedup must stream: to yield the first 5 (distinct) documents it should read about 5, "
    f"but it had read {len(read_s):,} of the 200,000 (reading the whole input first?)"
)
import types
assert isinstance(exact_dedup([]), types.GeneratorType), "exact_dedup must be a generator function (use yield)"
### END HIDDEN TESTS
assert True

# %% test id=test_exact_dedup_memory points=2
### BEGIN HIDDEN TESTS
# 3,000 distinct documents of 8 kB (24 MB of text) made one at a time: a streaming de-duplicator
# holds 3,000 digests (about 0.36 MB with the set), while keeping texts or normalised keys
# holds 24 MB or more. Peak bytes traced by tracemalloc during the whole pass.
def _big_stream(n=3000, size=8000):
    # Few spaces, so that str.split() in the key does not dominate the traced allocations.
    for i in range(n):
        yield f"{i:06d} " + "lorem-ipsum-dolor-sit-amet-" * (size // 27)
        if i % 3 == 0:
            yield f"{i:06d} " + "LOREM-IPSUM-DOLOR-SIT-AMET-" * (size // 27)
count, peak = peak_memory_numpy(lambda: sum(1 for _ in exact_dedup(_big_stream())))
assert count == 3000, f"exact_dedup on 3,000 documents and 1,000 case variants: expected 3,000 kept, got {count}"
per_doc = peak / 3000
print(f"peak {peak / 1e6:.2f} MB, {per_doc:.0f} bytes per distinct document")
# The reference measures about 120 bytes per document at the peak (a 65-byte `bytes` object for
# the 32-byte digest plus its share of the set); 1,000 bytes leaves room for another fixed-size
# key (a hex string: about 160) and fails any design that keeps the 8 kB documents.
assert per_doc < 1000, (
    f"exact_dedup must keep only fixed-size digests: expected under 1,000 bytes per distinct document at the peak, "
    f"got {per_doc:,.0f} ({peak / 1e6:.1f} MB for 3,000 documents of 8 kB)"
)
### END HIDDEN TESTS
assert True

# %% [markdown]
# On the training corpus, the exact duplicates left after `build_corpus.py` (which compared the
# raw text, so case-only variants survive its first pass):

# %%
start = time.perf_counter()
unique = list(exact_dedup(train_texts))
print(f"{len(train_texts) - len(unique)} exact duplicates by normalised hash among {len(train_texts)} documents "
      f"({len(train_texts) / (time.perf_counter() - start):,.0f} documents/s)")

# %% [markdown]
# ## 6. Near de-duplication: MinHash and LSH
#
# Exact hashing misses documents that differ by a few words: a template filled in twice, a page
# with a different date, a docstring copied and slightly edited. Near de-duplication compares
# documents as **sets of shingles** (here word 5-grams) by their **Jaccard similarity**
# $J(A, B) = |A \cap B| / |A \cup B|$, and removes documents with $J$ above a threshold (0.7–0.8 in
# practice). Comparing all $n(n-1)/2$ pairs is impossible for billions of documents, so we need
# two tricks.
#
# **MinHash** (Broder 1997). Shuffle the universe of shingles with a random permutation $\pi$ and
# keep the smallest permuted value of each set. The smallest element of $A \cup B$ is equally
# likely to be any of its elements, and the two minima agree exactly when it lies in $A \cap B$:
#
# $$ P\big[\min \pi(A) = \min \pi(B)\big] = J(A, B). $$
#
# With $k$ independent permutations, the fraction of agreeing minima is an unbiased estimate of
# $J$ with standard error $\sqrt{J(1-J)/k}$ (about 0.04 for $J = 0.5$, $k = 128$). The $k$ minima are
# the document's **signature**: a fixed-size sketch, computed once per document. Real
# permutations of all possible shingles are too big to store, so we use **universal hashing**:
# hash each shingle to a 32-bit number $x$, and take $h_i(x) = ((a_i x + b_i) \bmod p) \bmod 2^{32}$
# with random $a_i, b_i$ and the prime $p = 2^{61} - 1$. (With $a_i, b_i, x < 2^{32}$, $a_i x + b_i$
# fits in 64 bits: use `np.uint64`.) This is exactly the "legacy" scheme of the `datasketch`
# library, which the hidden tests use as the oracle.
#
# **Locality-sensitive hashing** (LSH; Indyk & Motwani 1998). Cut each signature into $b$ **bands**
# of $r$ rows. Two documents become a *candidate pair* if their signatures agree on all $r$ rows of
# at least one band. Per band that happens with probability $s^r$ (for similarity $s$), so
#
# $$ P(\text{candidate}) = 1 - (1 - s^r)^b , $$
#
# an **S-curve**: near 0 for dissimilar pairs, near 1 for similar ones, with the steep part near
# $(1/b)^{1/r}$. Finding candidates costs one dict insertion per document and band: put each
# band's $r$ values (as a tuple) into a dict of buckets, and only documents sharing a bucket are
# ever compared. Choosing $b$ and $r$ (with $b \cdot r \le k$) trades false positives (area under
# the curve left of the threshold $t$) against false negatives (area above it, right of $t$):
#
# $$ \text{FP}(b, r) = \int_0^t 1 - (1 - s^r)^b \, ds, \qquad \text{FN}(b, r) = \int_t^1 (1 - s^r)^b \, ds ,$$
#
# and `datasketch` picks the $(b, r)$ minimising $w_{FP}\,\text{FP} + w_{FN}\,\text{FN}$ (weights 0.5
# and 0.5 by default). Finally the verified pairs (estimated $J \ge t$) are joined into clusters
# with **union-find**, and one document per cluster is kept.

# %% setup id=minhash_setup
MERSENNE_PRIME = (1 << 61) - 1
MAX_HASH = (1 << 32) - 1


def hash32(shingle):
    """32-bit hash of a str: the first 4 bytes of SHA-1 of its UTF-8 bytes, little-endian
    (datasketch's sha1_hash32)."""
    return struct.unpack("<I", hashlib.sha1(shingle.encode("utf-8")).digest()[:4])[0]


def make_permutations(num_perm, seed=1):
    """The parameters of num_perm universal hash functions: uint64 arrays a in [1, 2^32), b in [0, 2^32)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(1, 1 << 32, num_perm, dtype=np.uint64),
            rng.integers(0, 1 << 32, num_perm, dtype=np.uint64))


def perturb(text, fraction, rng):
    """A near-duplicate of text: a fraction of its words replaced by random other words."""
    words = text.split()
    for i in np.flatnonzero(rng.random(len(words)) < fraction):
        words[i] = f"w{rng.integers(10**6)}"
    return " ".join(words)


PERM_A, PERM_B = make_permutations(128)

# %% answer id=minhash
def shingles(text, n=5):
    """The set of word n-grams of `text`: words = re.findall(r"\\w+", text.lower()); a shingle is n
    consecutive words joined by single spaces. A text with fewer than n words (but at least one)
    has one shingle, all its words joined; a text without words has none (empty set)."""
    ### BEGIN SOLUTION
    words = re.findall(r"\w+", text.lower())
    if not words:
        return set()
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}
    ### END SOLUTION


def minhash_signature(shingle_set, perm_a=PERM_A, perm_b=PERM_B):
    """MinHash signature: np.uint64 array of len(perm_a). Entry i is the minimum over the
    shingles s of ((perm_a[i] * hash32(s) + perm_b[i]) mod MERSENNE_PRIME) mod 2**32;
    MAX_HASH everywhere for an empty set."""
    ### BEGIN SOLUTION
    if not shingle_set:
        return np.full(len(perm_a), MAX_HASH, dtype=np.uint64)
    x = np.array([hash32(s) for s in shingle_set], dtype=np.uint64)
    values = (perm_a[:, None] * x[None, :] + perm_b[:, None]) % np.uint64(MERSENNE_PRIME)
    return (values & np.uint64(MAX_HASH)).min(axis=1)
    ### END SOLUTION


def jaccard_estimate(sig1, sig2):
    """The MinHash estimate of the Jaccard similarity: the fraction of equal entries (a float)."""
    ### BEGIN SOLUTION
    return float(np.mean(sig1 == sig2))
    ### END SOLUTION

# %% test id=test_minhash_visible points=1
assert shingles("The quick brown fox jumps over", 5) == {"the quick brown fox jumps", "quick brown fox jumps over"}, (
    f"shingles('The quick brown fox jumps over', 5): got {shingles('The quick brown fox jumps over', 5)}"
)
assert shingles("Hi there!", 5) == {"hi there"} and shingles("...", 5) == set(), "shingles of short and word-less texts"
sig_v = minhash_signature({"a b c d e"})
assert sig_v.dtype == np.uint64 and sig_v.shape == (128,), f"minhash_signature: expected uint64 of shape (128,), got {sig_v.dtype} {sig_v.shape}"
x_v = hash32("a b c d e")
assert int(sig_v[0]) == (int(PERM_A[0]) * x_v + int(PERM_B[0])) % MERSENNE_PRIME % 2**32, "minhash_signature entry 0 for one shingle"
assert jaccard_estimate(np.array([1, 2, 3, 4], dtype=np.uint64), np.array([1, 0, 3, 0], dtype=np.uint64)) == 0.5, "jaccard_estimate"

# %% test id=test_minhash_hidden points=2
### BEGIN HIDDEN TESTS
from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32

# Exactly datasketch's legacy MinHash with the same permutations and hash function.
rng_m = np.random.default_rng(5)
for doc in train_texts[2000:2040] + ["", "word", "ünïcödé wörds ñ 日本 語 テ キ スト"]:
    sh = shingles(doc)
    mh = MinHash(num_perm=128, scheme="legacy", permutations=(PERM_A, PERM_B), hashfunc=sha1_hash32)
    mh.update_batch([s.encode("utf-8") for s in sh])
    mine = minhash_signature(sh)
    assert mine.dtype == np.uint64 and np.array_equal(mine, mh.hashvalues), (
        f"minhash_signature differs from datasketch's MinHash(scheme='legacy') with the same permutations on "
        f"{doc[:40]!r}: {int((mine != mh.hashvalues).sum())} of 128 entries differ"
    )
# Shingles: lower-cased \w+ words (Unicode letters, digits and _), punctuation dropped.
for text, want_sh in [("A-B c_d, E!  f g", {"a b c_d e f", "b c_d e f g"}), ("Ünï 日本 x1 ... y", {"ünï 日本 x1 y"}),
                      ("one two three four five", {"one two three four five"}), ("", set()),
                      ("The THE the tHe thE the", {"the the the the the"})]:
    assert shingles(text) == want_sh, f"shingles({text!r}): expected {want_sh}, got {shingles(text)}"
assert shingles("a b c d", n=2) == {"a b", "b c", "c d"}, f"shingles('a b c d', n=2): got {shingles('a b c d', n=2)}"
# Other permutation counts, passed as arguments.
pa, pb = make_permutations(16, seed=9)
mh = MinHash(num_perm=16, scheme="legacy", permutations=(pa, pb), hashfunc=sha1_hash32)
mh.update_batch([s.encode() for s in shingles(train_texts[0])])
assert np.array_equal(minhash_signature(shingles(train_texts[0]), pa, pb), mh.hashvalues), "minhash_signature with 16 permutations"
# The estimator: within 4 standard errors of the true Jaccard similarity, on planted near-duplicates
# at several similarity levels, like datasketch's own (affine) MinHash.
errors_mine, errors_ds = [], []
for i, doc in enumerate(train_texts[2100:2160]):
    other = perturb(doc, [0.02, 0.05, 0.1, 0.2, 0.4][i % 5], rng_m)
    a_set, b_set = shingles(doc), shingles(other)
    true_j = len(a_set & b_set) / len(a_set | b_set)
    est = jaccard_estimate(minhash_signature(a_set), minhash_signature(b_set))
    m1, m2 = MinHash(num_perm=128, seed=i), MinHash(num_perm=128, seed=i)
    m1.update_batch([s.encode() for s in a_set])
    m2.update_batch([s.encode() for s in b_set])
    se = math.sqrt(max(true_j * (1 - true_j), 1e-9) / 128)
    assert abs(est - true_j) <= 4 * se + 1e-12, (
        f"jaccard_estimate: {est:.3f} for a true Jaccard similarity of {true_j:.3f}, more than 4 standard errors "
        f"({4 * se:.3f}) away"
    )
    errors_mine.append(est - true_j)
    errors_ds.append(m1.jaccard(m2) - true_j)
rms_mine, rms_ds = float(np.sqrt(np.mean(np.square(errors_mine)))), float(np.sqrt(np.mean(np.square(errors_ds))))
print(f"RMS error of the estimate: yours {rms_mine:.4f}, datasketch (affine32) {rms_ds:.4f}")
assert rms_mine < 2 * rms_ds + 0.01, f"jaccard_estimate: RMS error {rms_mine:.4f}, datasketch's {rms_ds:.4f}"
assert jaccard_estimate(minhash_signature(set()), minhash_signature(set())) == 1.0, "two empty sets: all entries equal"
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### Bands and rows from a threshold
#
# Write the S-curve and the choice of $(b, r)$: try every $b \ge 1$ and $r \ge 1$ with
# $b \cdot r \le k$, integrate numerically (the trapezoid rule, `np.trapezoid`, on at least 1,001
# evenly spaced points of each interval is plenty), and keep the pair with the smallest weighted
# error; on an exact tie, the first found in the order $b = 1, 2, \dots$, then $r = 1, 2, \dots$.

# %% answer id=lsh_params
def s_curve(s, b, r):
    """Probability that two documents of Jaccard similarity s (a float or an array) become an LSH
    candidate pair with b bands of r rows: 1 - (1 - s**r)**b."""
    ### BEGIN SOLUTION
    return 1 - (1 - np.asarray(s, dtype=float) ** r) ** b
    ### END SOLUTION


def choose_bands(threshold, num_perm, fp_weight=0.5, fn_weight=0.5):
    """(b, r) with b * r <= num_perm minimising fp_weight * FP + fn_weight * FN, where
    FP = integral of s_curve over [0, threshold] and FN = integral of 1 - s_curve over
    [threshold, 1]. On an exact tie, the first (b, r) found in the order b = 1, 2, ..., then
    r = 1, 2, ... Returns a tuple of two ints."""
    ### BEGIN SOLUTION
    below = np.linspace(0.0, threshold, 2001)
    above = np.linspace(threshold, 1.0, 2001)
    best, best_error = None, math.inf
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = np.trapezoid(s_curve(below, b, r), below)
            fn = np.trapezoid(1 - s_curve(above, b, r), above)
            error = fp_weight * fp + fn_weight * fn
            if error < best_error:
                best, best_error = (b, r), error
    return best
    ### END SOLUTION

# %% test id=test_lsh_params_visible points=1
assert_scalar_close(float(s_curve(0.5, 2, 2)), 1 - 0.75**2, rtol=1e-12, atol=0, name="s_curve(0.5, b=2, r=2)")
assert_close(s_curve(np.array([0.0, 1.0]), 20, 5), np.array([0.0, 1.0]), rtol=0, atol=1e-12, name="s_curve([0, 1], 20, 5)")
# b * r may be less than num_perm: with 8 permutations and t = 0.5, 3 bands of 2 rows beat 4 of 2.
got = choose_bands(0.5, 8)
assert tuple(got) == (3, 2), f"choose_bands(0.5, num_perm=8): expected (3, 2), got {got}"

# %% test id=test_lsh_params_hidden points=2
### BEGIN HIDDEN TESTS
from datasketch import MinHashLSH
from datasketch.lsh import _false_negative_probability, _false_positive_probability

s_grid = np.linspace(0, 1, 11)
assert_close(s_curve(s_grid, 7, 3), 1 - (1 - s_grid**3) ** 7, rtol=1e-12, atol=1e-15, name="s_curve(grid, b=7, r=3)")
for threshold, num_perm, weights in [(0.8, 128, (0.5, 0.5)), (0.7, 64, (0.5, 0.5)), (0.3, 32, (0.5, 0.5)),
                                     (0.9, 128, (0.5, 0.5)), (0.6, 96, (0.2, 0.8)), (0.5, 40, (0.9, 0.1))]:
    got = tuple(int(v) for v in choose_bands(threshold, num_perm, *weights))
    ref = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    want = (ref.b, ref.r)
    if got != want:
        # A different choice is only acceptable if its weighted error ties datasketch's (quadrature error).
        def _err(br):
            return (weights[0] * _false_positive_probability(threshold, *br)
                    + weights[1] * _false_negative_probability(threshold, *br))
        assert got[0] * got[1] <= num_perm and _err(got) <= _err(want) + 1e-7, (
            f"choose_bands({threshold}, num_perm={num_perm}, weights={weights}): datasketch's MinHashLSH chooses "
            f"{want} (error {_err(want):.6f}), got {got} (error {_err(got) if got[0] * got[1] <= num_perm else 'b*r too large'})"
        )
# The corners: one band of all rows for a high threshold, one row per band for a low one
# (datasketch's own search, which MinHashLSH refuses to use with fewer than 2 bands).
from datasketch.lsh import _optimal_param

for threshold, num_perm in [(0.95, 16), (0.05, 16), (0.1, 16), (0.01, 16), (0.2, 4)]:
    got = tuple(int(v) for v in choose_bands(threshold, num_perm))
    want = _optimal_param(threshold, num_perm, 0.5, 0.5)
    assert got == want, f"choose_bands({threshold}, num_perm={num_perm}): datasketch's search gives {want}, got {got}"
# An exact tie: with both weights 0 every (b, r) has error 0, and the stated order picks the first.
got = tuple(int(v) for v in choose_bands(0.5, 8, 0.0, 0.0))
assert got == (1, 1), (
    f"choose_bands(0.5, 8, fp_weight=0, fn_weight=0): every (b, r) ties at error 0, and on a tie the first found "
    f"(b = 1, then r = 1) wins: expected (1, 1), got {got}"
)
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### Candidate pairs, without comparing all pairs
#
# Write `lsh_candidates`: for each band, a dict from the band's values (`tuple(sig[band * r:(band + 1) * r])`)
# to the documents seen with them; every two documents in one bucket form a candidate pair. Its
# cost must grow with the number of documents, not with its square.

# %% answer id=lsh_candidates
def lsh_candidates(signatures, b, r):
    """Candidate pairs of LSH with b bands of r rows (rows b*r onwards are not used).

    signatures: np.uint64 array (n_docs, k) with k >= b * r. Returns a set of (i, j) tuples of
    ints, i < j, for every two documents whose signatures are equal on all r rows of at least one
    band. Work proportional to n_docs * b plus the number of pairs found (no loop over all pairs).
    """
    ### BEGIN SOLUTION
    pairs = set()
    for band in range(b):
        buckets = collections.defaultdict(list)
        for i, row in enumerate(signatures[:, band * r:(band + 1) * r]):
            buckets[row.tobytes()].append(i)
        for members in buckets.values():
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    pairs.add((members[x], members[y]))
    return pairs
    ### END SOLUTION

# %% test id=test_lsh_candidates_visible points=1
sigs_v = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 3, 4], [5, 6, 7, 8]], dtype=np.uint64)
got = lsh_candidates(sigs_v, 2, 2)
assert got == {(0, 1), (0, 2)}, f"lsh_candidates (2 bands of 2 rows): expected {{(0, 1), (0, 2)}}, got {got}"
assert lsh_candidates(sigs_v, 1, 1) == {(0, 1)}, f"lsh_candidates(b=1, r=1): expected {{(0, 1)}}, got {lsh_candidates(sigs_v, 1, 1)}"

# %% test id=test_lsh_candidates_hidden points=2
### BEGIN HIDDEN TESTS
# A band is compared only with the same band of the other document: doc 0's band 1 equals
# doc 1's band 0, which is no evidence of similarity.
sigs_x = np.array([[1, 2, 3, 4], [3, 4, 5, 6], [9, 9, 5, 6]], dtype=np.uint64)
got_x = lsh_candidates(sigs_x, 2, 2)
assert got_x == {(1, 2)}, (
    f"lsh_candidates({sigs_x.tolist()}, b=2, r=2): expected {{(1, 2)}} (documents 1 and 2 share band 1; "
    f"equal values in different bands, as doc 0's band 1 and doc 1's band 0, do not count), got {got_x}"
)
from datasketch import MinHash, MinHashLSH
from datasketch.hashfunc import sha1_hash32

# Planted near-duplicates at several similarity levels among 300 corpus documents; signatures
# made by datasketch (so this test depends only on lsh_candidates).
rng_l = np.random.default_rng(21)
base_docs = [t for t in train_texts[2400:3400] if len(t.split()) >= 40][:150]
docs_l, planted = list(base_docs), []
for i, doc in enumerate(base_docs):
    frac = [0.01, 0.05, 0.1, 0.2, 0.35][i % 5]
    docs_l.append(perturb(doc, frac, rng_l))
    planted.append((i, len(docs_l) - 1))
sets_l = [shingles(d) for d in docs_l]
def _ds_minhash(sh):
    m = MinHash(num_perm=128, scheme="legacy", permutations=(PERM_A, PERM_B), hashfunc=sha1_hash32)
    m.update_batch([s.encode() for s in sh])
    return m
mhs = [_ds_minhash(sh) for sh in sets_l]
sigs_l = np.stack([m.hashvalues for m in mhs]).astype(np.uint64)
for b_l, r_l in [(16, 8), (9, 13), (32, 4)]:
    lsh = MinHashLSH(num_perm=128, params=(b_l, r_l))
    for i, m in enumerate(mhs):
        lsh.insert(i, m)
    want = {(min(i, j), max(i, j)) for i, m in enumerate(mhs) for j in lsh.query(m) if i != j}
    got = lsh_candidates(sigs_l, b_l, r_l)
    assert all(isinstance(p, tuple) and len(p) == 2 and p[0] < p[1] for p in got), "lsh_candidates: pairs (i, j) with i < j"
    got = {(int(i), int(j)) for i, j in got}
    assert got == want, (
        f"lsh_candidates(b={b_l}, r={r_l}) vs datasketch's MinHashLSH with the same bands: "
        f"{len(want - got)} pairs missing, {len(got - want)} extra (of {len(want)})"
    )
    # Recall of the planted pairs, per similarity level, next to the S-curve's prediction.
    recall = {}
    for (i, j) in planted:
        true_j = len(sets_l[i] & sets_l[j]) / len(sets_l[i] | sets_l[j])
        level = round(true_j, 1)
        recall.setdefault(level, []).append((i, j) in got)
    print(f"b={b_l:2d} r={r_l:2d}: " + ", ".join(f"J~{lv:.1f}: {np.mean(v):.2f} (S-curve {float(s_curve(lv, b_l, r_l)):.2f})"
                                              for lv, v in sorted(recall.items())))
# Not quadratic: 8x the documents must cost far less than 64x the time (random signatures:
# no collisions, so the bucket work is all there is). Compared at equal work for a linear
# method: one call on 1,600 documents against a block of 8 calls on 200 (about 10 ms each), timed
# interleaved; scaling = 8 x the fastest big call over the fastest block, after up to 3 rounds
# (a round already under the limit ends the check). Timing one 1 ms call against one 10 ms call
# swung past 25x under a load of 15 on 2 cores (the short call fits in a time slice, the long one
# does not), and CPU-time clocks tick too coarsely inside the grading sandbox. Measured under a
# load of 17 on 2 cores: a single round 6-98x (median 10x), after up to 3 rounds at most 21x;
# all pairs about 65x.
rng_t = np.random.default_rng(0)
small_sigs = rng_t.integers(0, 2**32, (200, 32), dtype=np.uint64)
big_sigs = rng_t.integers(0, 2**32, (1600, 32), dtype=np.uint64)
lsh_candidates(small_sigs, 8, 4)  # warm-up
t_block, t_big = [], []
for _ in range(3):
    start = time.perf_counter()
    for _ in range(8):
        lsh_candidates(small_sigs, 8, 4)
    t_block.append(time.perf_counter() - start)
    start = time.perf_counter()
    lsh_candidates(big_sigs, 8, 4)
    t_big.append(time.perf_counter() - start)
    scaling = 8 * min(t_big) / min(t_block)
    if scaling < 25:
        break
assert scaling < 25, (
    f"lsh_candidates must scale linearly with the number of documents: 8x more documents took {scaling:.1f}x "
    f"longer (linear ~8x, all pairs ~64x); use buckets, not a loop over all pairs"
)
assert lsh_candidates(np.zeros((0, 8), dtype=np.uint64), 2, 4) == set(), "lsh_candidates of no documents"
same = np.ones((4, 8), dtype=np.uint64)
assert lsh_candidates(same, 2, 4) == {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)}, "lsh_candidates: identical signatures"
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### Clusters with union-find
#
# Candidate pairs (verified: estimated $J \ge t$) link documents; near-duplicates form connected
# groups (A ~ B and B ~ C puts A, B and C together even if A and C differ more). **Union-find**
# (a disjoint-set forest) keeps, for each document, a parent pointer; a root is its own parent and
# names its group. `find(x)` follows parents to the root; `union(x, y)` makes one root the parent of
# the other. Two refinements make any sequence of operations nearly linear: **path compression**
# (after `find`, point every node on the path straight at the root) and **union by size** (hang the
# smaller tree under the larger). Write `find` without recursion: Python stops at a depth of 1,000.

# %% answer id=union_find
class UnionFind:
    """Disjoint sets over 0 .. n-1.

    self.parent: a list; parent[x] is x's parent (a root is its own parent).
    find(x): the root (representative) of x's group; iterative, with path compression (afterwards
    every node on the path from x has the root as its parent).
    union(x, y): merge the groups of x and y by size (the root of the group with more members
    becomes the root of both); returns True if they were different groups, False if already together.
    groups(): the groups as a list of sorted lists of ints, ordered by their smallest member.
    """

    def __init__(self, n):
        ### BEGIN SOLUTION
        self.parent = list(range(n))
        self.size = [1] * n
        ### END SOLUTION

    def find(self, x):
        ### BEGIN SOLUTION
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root
        ### END SOLUTION

    def union(self, x, y):
        ### BEGIN SOLUTION
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            return False
        if self.size[rx] < self.size[ry]:
            rx, ry = ry, rx
        self.parent[ry] = rx
        self.size[rx] += self.size[ry]
        return True
        ### END SOLUTION

    def groups(self):
        ### BEGIN SOLUTION
        by_root = collections.defaultdict(list)
        for x in range(len(self.parent)):
            by_root[self.find(x)].append(x)
        return sorted(by_root.values(), key=lambda g: g[0])
        ### END SOLUTION

# %% test id=test_union_find_visible points=1
uf = UnionFind(6)
assert uf.union(0, 1) and uf.union(4, 1) and not uf.union(0, 4), "union: True for new links, False when already together"
uf.union(2, 5)
assert uf.groups() == [[0, 1, 4], [2, 5], [3]], f"UnionFind(6) after union(0,1), union(4,1), union(2,5): got {uf.groups()}"
assert uf.find(4) == uf.find(0) != uf.find(3), "find: same root within a group, different roots across groups"

# %% test id=test_union_find_hidden points=1
### BEGIN HIDDEN TESTS
# Random graphs against a breadth-first search for connected components.
rng_u = np.random.default_rng(4)
for n_u, m_u in [(50, 30), (300, 200), (1000, 1500), (1, 0)]:
    edges = [tuple(int(v) for v in rng_u.integers(0, n_u, 2)) for _ in range(m_u)]
    adj = collections.defaultdict(list)
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    seen_u, want = set(), []
    for start in range(n_u):
        if start in seen_u:
            continue
        comp, todo = [], [start]
        seen_u.add(start)
        while todo:
            v = todo.pop()
            comp.append(v)
            for w in adj[v]:
                if w not in seen_u:
                    seen_u.add(w)
                    todo.append(w)
        want.append(sorted(comp))
    uf_h = UnionFind(n_u)
    merged = sum(bool(uf_h.union(a, b)) for a, b in edges)
    assert merged == n_u - len(want), (
        f"UnionFind.union must return True exactly when it joins two groups: {m_u} unions leaving {len(want)} groups "
        f"of {n_u} must return True {n_u - len(want)} times, got {merged}"
    )
    assert uf_h.groups() == want, f"UnionFind({n_u}) with {m_u} random unions: groups differ from connected components"
# Union by size: the bigger group's root stays the root, whichever argument it is.
for order in ((0, 4), (4, 0)):
    uf_s = UnionFind(7)
    uf_s.union(4, 5)
    uf_s.union(6, 4)
    uf_s.union(0, 1)
    big_root = uf_s.find(5)
    uf_s.union(*order)
    assert uf_s.find(0) == big_root, (
        f"UnionFind.union{order}: the root of the group of 3 ({big_root}) must become the root of the merged group "
        f"of 5 (union by size), got {uf_s.find(0)}"
    )
# Sizes add up when groups merge: a group of 4 built from two pairs still outranks a singleton.
for order in ((0, 4), (4, 0)):
    uf_s = UnionFind(5)
    uf_s.union(0, 1)
    uf_s.union(2, 3)
    uf_s.union(1, 3)
    big_root = uf_s.find(0)
    uf_s.union(*order)
    assert uf_s.find(4) == big_root, (
        f"UnionFind.union{order}: after union(0, 1), union(2, 3), union(1, 3) the group of 4 has root {big_root}; "
        f"merged with the singleton 4 it must stay the root (sizes add up: 2 + 2 = 4 > 1), got {uf_s.find(4)}"
    )
# Path compression: after find, every node points at its root.
uf_p = UnionFind(8)
for a, b in [(0, 1), (2, 3), (0, 2), (4, 5), (6, 7), (4, 6), (0, 4)]:
    uf_p.union(a, b)
for x in range(8):
    uf_p.find(x)
assert all(uf_p.parent[x] == uf_p.parent[uf_p.parent[x]] for x in range(8)), (
    f"UnionFind.find must compress paths: after find(x) for every x, each parent must be a root; parent = {uf_p.parent}"
)
# Long chains, both ways round: no recursion limit, and no quadratic walk along the chain.
for order in ("forward", "backward"):
    n_c = 20_000
    uf_c = UnionFind(n_c)
    for i in range(n_c - 1):
        if order == "forward":
            uf_c.union(i, i + 1)
        else:
            uf_c.union(i + 1, i)
    groups_c = uf_c.groups()
    assert len(groups_c) == 1 and len(groups_c[0]) == n_c, f"UnionFind: a chain of {n_c} unions ({order}) is one group"
    assert uf_c.find(0) == uf_c.find(n_c - 1), "find at both ends of a chain"
### END HIDDEN TESTS
assert True

# %% [markdown]
# Now the whole near-duplicate step. Call `similarity` once per candidate pair (that is the
# expensive comparison LSH saves: counting the calls shows it), and link the pair when the
# estimate reaches the threshold.

# %% answer id=near_dedup
def near_duplicate_groups(signatures, b, r, threshold, similarity=jaccard_estimate):
    """Groups of near-duplicate documents.

    Finds the LSH candidate pairs (i, j), i < j (lsh_candidates), calls
    similarity(signatures[i], signatures[j]) exactly once per candidate pair, in that argument
    order, links i and j when the result is >= threshold, and returns
    the union-find groups (UnionFind(n_docs).groups(): every document appears in exactly one
    group, singletons included).
    """
    ### BEGIN SOLUTION
    uf = UnionFind(len(signatures))
    for i, j in lsh_candidates(signatures, b, r):
        if similarity(signatures[i], signatures[j]) >= threshold:
            uf.union(i, j)
    return uf.groups()
    ### END SOLUTION

# %% test id=test_near_dedup_visible points=1
sigs_nv = np.array([[1, 2, 3, 4], [1, 2, 3, 9], [1, 2, 8, 9], [5, 6, 7, 8]], dtype=np.uint64)
# Candidates with 2 bands of 2 rows: (0,1), (0,2), (1,2); estimates 0.75, 0.5, 0.75.
got = near_duplicate_groups(sigs_nv, 2, 2, 0.7)
assert got == [[0, 1, 2], [3]], f"near_duplicate_groups(threshold 0.7): expected [[0, 1, 2], [3]], got {got}"
assert near_duplicate_groups(sigs_nv, 2, 2, 0.8) == [[0], [1], [2], [3]], "near_duplicate_groups(threshold 0.8): no pair reaches it"

# %% test id=test_near_dedup_hidden points=2
### BEGIN HIDDEN TESTS
rng_n = np.random.default_rng(8)
base_n = [t for t in train_texts[:3000] if len(t.split()) >= 30][:400]
docs_n = list(base_n) + [perturb(base_n[i], 0.02, rng_n) for i in range(0, 400, 4)]
from datasketch import MinHash as _MH
from datasketch.hashfunc import sha1_hash32 as _h32
def _sig(text):
    m = _MH(num_perm=128, scheme="legacy", permutations=(PERM_A, PERM_B), hashfunc=_h32)
    m.update_batch([s.encode() for s in shingles(text)])
    return m.hashvalues.astype(np.uint64)
sigs_n = np.stack([_sig(d) for d in docs_n])
b_n, r_n = 16, 8
cands = lsh_candidates(sigs_n, b_n, r_n)
counted = CallCounter(jaccard_estimate)
got = near_duplicate_groups(sigs_n, b_n, r_n, 0.7, similarity=counted)
n_docs = len(docs_n)
print(f"{n_docs} documents: {counted.calls} comparisons instead of {n_docs * (n_docs - 1) // 2:,}")
assert counted.calls == len(cands), (
    f"near_duplicate_groups must call similarity exactly once per candidate pair: {len(cands)} candidates, "
    f"got {counted.calls} calls (all pairs would be {n_docs * (n_docs - 1) // 2:,})"
)
uf_ref = UnionFind(n_docs)
for i, j in cands:
    if jaccard_estimate(sigs_n[i], sigs_n[j]) >= 0.7:
        uf_ref.union(i, j)
want = uf_ref.groups()
assert [list(map(int, g)) for g in got] == want, (
    f"near_duplicate_groups: expected {len(want)} groups ({sum(len(g) > 1 for g in want)} with duplicates), got {len(got)}"
)
# Planted pairs (2% of words replaced) whose shingle sets have a Jaccard similarity of 0.9 or more:
# the S-curve of 16 bands of 8 rows makes them candidates with probability 0.9995.
group_of = {x: gi for gi, g in enumerate(got) for x in g}
strong = [(4 * k, 400 + k) for k in range(100)
          if len(shingles(docs_n[4 * k]) & shingles(docs_n[400 + k])) >= 0.9 * len(shingles(docs_n[4 * k]) | shingles(docs_n[400 + k]))]
found = sum(group_of.get(i) == group_of.get(j) for i, j in strong)
assert len(strong) >= 30 and found >= 0.95 * len(strong), (
    f"near_duplicate_groups: of {len(strong)} planted near-duplicates with Jaccard >= 0.9, {found} were grouped"
)
# The threshold is inclusive, and the similarity function's values decide.
assert near_duplicate_groups(sigs_nv, 2, 2, 0.75) == [[0, 1, 2], [3]], "near_duplicate_groups: estimate == threshold links"
assert near_duplicate_groups(sigs_nv, 2, 2, 0.5, similarity=lambda a, b: 0.0) == [[0], [1], [2], [3]], (
    "near_duplicate_groups must use the similarity function it is given"
)
calls_nv = []
def _recording(a, b):
    rows = [next(k for k in range(len(sigs_nv)) if np.array_equal(sigs_nv[k], v)) for v in (a, b)]
    calls_nv.append(tuple(rows))
    return 1.0
near_duplicate_groups(sigs_nv, 2, 2, 0.5, similarity=_recording)
assert sorted(calls_nv) == [(0, 1), (0, 2), (1, 2)], (
    f"near_duplicate_groups must call similarity(signatures[i], signatures[j]) with i < j, once per candidate pair; "
    f"got calls for rows {calls_nv}"
)
### END HIDDEN TESTS
assert True

# %% [markdown]
# The S-curves for 128 permutations and a few thresholds, with the rate at which planted
# near-duplicates (random words replaced) actually became candidates. Then the whole step on the
# training corpus: how many near-duplicate groups remain after `build_corpus.py`'s own (much
# cruder) near-duplicate pass, and how few comparisons it took.

# %%
rng_plot = np.random.default_rng(0)
base_plot = [t for t in train_texts if len(t.split()) >= 40][:300]
pairs_plot = []
for i, doc in enumerate(base_plot):
    other = perturb(doc, rng_plot.uniform(0.0, 0.5), rng_plot)
    a_set, b_set = shingles(doc), shingles(other)
    pairs_plot.append((len(a_set & b_set) / len(a_set | b_set), minhash_signature(a_set), minhash_signature(b_set)))
s_axis = np.linspace(0, 1, 201)
fig, ax = plt.subplots(figsize=(6.5, 4))
for threshold, color in [(0.5, "C0"), (0.7, "C1"), (0.9, "C2")]:
    b_t, r_t = choose_bands(threshold, 128)
    ax.plot(s_axis, s_curve(s_axis, b_t, r_t), color=color, label=f"t={threshold}: b={b_t}, r={r_t}")
    sims = np.array([p[0] for p in pairs_plot])
    hit = np.array([bool(lsh_candidates(np.stack([p[1], p[2]]), b_t, r_t)) for p in pairs_plot])
    bins = np.linspace(0, 1, 11)
    idx = np.digitize(sims, bins) - 1
    centers = [(bins[k] + bins[k + 1]) / 2 for k in range(10) if (idx == k).sum() >= 5]
    rates = [hit[idx == k].mean() for k in range(10) if (idx == k).sum() >= 5]
    ax.plot(centers, rates, "o", color=color)
    ax.axvline(threshold, color=color, ls=":", lw=0.8)
ax.set_xlabel("Jaccard similarity of the shingle sets")
ax.set_ylabel("P(candidate pair)")
ax.set_title("LSH S-curves (lines) and planted near-duplicates (dots)")
ax.legend(fontsize=8)
plt.show()

start = time.perf_counter()
corpus_sigs = np.stack([minhash_signature(shingles(t)) for t in train_texts])
t_sig = time.perf_counter() - start
b_c, r_c = choose_bands(0.7, 128)
counter = CallCounter(jaccard_estimate)
start = time.perf_counter()
corpus_groups = near_duplicate_groups(corpus_sigs, b_c, r_c, 0.7, similarity=counter)
t_lsh = time.perf_counter() - start
dups = [g for g in corpus_groups if len(g) > 1]
n_c = len(train_texts)
print(f"signatures: {n_c / t_sig:,.0f} documents/s; LSH (b={b_c}, r={r_c}) and union-find: {n_c / t_lsh:,.0f} documents/s")
print(f"{counter.calls:,} comparisons instead of {n_c * (n_c - 1) // 2:,}; {len(dups)} groups of near-duplicates "
      f"({sum(len(g) - 1 for g in dups)} documents would be removed)")
for g in dups[:2]:
    for i in g[:2]:
        print("   ", repr(train_texts[i][:90]))
    print()

# %% [markdown]
# ## 7. Decontamination
#
# A benchmark score means nothing if the test questions were in the training data: the model may
# have memorised the answers. GPT-3's authors (Brown et al. 2020) searched their training set for
# **13-word overlaps** with each benchmark and reported results on the "clean" subset; many
# evaluations since report the same. The check is a set-membership test: put every 13-gram of the
# training text (lower-cased words, punctuation ignored) into a set, then flag each evaluation
# document that shares at least one 13-gram with it. Thirteen words is long enough that common
# phrases ("the value of the", "return a new list") do not match by chance, and short enough to
# catch a copied sentence. Storing tuples of 13 strings for a web-scale training set is too much
# memory: real implementations hash each n-gram (a 64-bit hash, or a Bloom filter).

# %% answer id=decontam
def ngrams(text, n=13):
    """The set of word n-grams of text, as tuples of n words; words are
    re.findall(r"\\w+", text.lower()). Fewer than n words: the empty set."""
    ### BEGIN SOLUTION
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}
    ### END SOLUTION


def contaminated(eval_texts, train_texts, n=13):
    """Indices (sorted list of ints) of the evaluation texts that share at least one word
    n-gram with any training text."""
    ### BEGIN SOLUTION
    seen = set()
    for text in train_texts:
        seen |= ngrams(text, n)
    return [i for i, text in enumerate(eval_texts) if not ngrams(text, n).isdisjoint(seen)]
    ### END SOLUTION

# %% test id=test_decontam_visible points=1
words13 = "one two three four five six seven eight nine ten eleven twelve thirteen"
assert ngrams(words13 + " fourteen") == {tuple(words13.split()), tuple(words13.split()[1:] + ["fourteen"])}, "ngrams(14 words, 13)"
assert ngrams("too short") == set(), "ngrams of fewer than 13 words must be empty"
got = contaminated(["A: " + words13.upper() + "!", "twelve words only: " + " ".join(words13.split()[:9])],
                   ["prefix " + words13 + " suffix"])
assert got == [0], f"contaminated: the first evaluation text shares a 13-gram (case and punctuation ignored), got {got}"

# %% test id=test_decontam_hidden points=2
### BEGIN HIDDEN TESTS
# Planted leaks: 13-word spans of 20 validation documents copied (re-cased, re-punctuated) into
# training documents; 12-word spans of 20 others, which must not count.
rng_c = np.random.default_rng(13)
eval_c = [t for t in val_texts if len(re.findall(r"\w+", t)) >= 40][:120]
train_c = list(train_texts[:600])
leaked, near_miss = [], []
for k, i in enumerate(rng_c.choice(len(eval_c), 40, replace=False)):
    words = re.findall(r"\w+", eval_c[i])
    start_w = int(rng_c.integers(0, len(words) - 13))
    span = 13 if k < 20 else 12
    piece = ", ".join(w.upper() if rng_c.random() < 0.5 else w for w in words[start_w:start_w + span])
    j = int(rng_c.integers(0, len(train_c)))
    train_c[j] = train_c[j] + "\n(" + piece + ")."
    (leaked if span == 13 else near_miss).append(int(i))
def _reference_flags(evals, trains, n=13):
    grams = set()
    for t in trains:
        ws = re.findall(r"\w+", t.lower())
        grams |= {tuple(ws[p:p + n]) for p in range(len(ws) - n + 1)}
    flagged = []
    for i, t in enumerate(evals):
        ws = re.findall(r"\w+", t.lower())
        if any(tuple(ws[p:p + n]) in grams for p in range(len(ws) - n + 1)):
            flagged.append(i)
    return flagged
want = _reference_flags(eval_c, train_c)
got = contaminated(eval_c, train_c)
assert got == sorted(got) and all(isinstance(i, int) for i in got), "contaminated must return a sorted list of ints"
missing = sorted(set(leaked) - set(got))
assert not missing, f"contaminated: {len(missing)} of 20 planted 13-word leaks were not flagged (eval indices {missing[:5]})"
# A 12-word overlap is not contamination at n=13 (eval documents can also share text with each other,
# so the expected set comes from a reference scan of the same training set).
false_hits = sorted(set(got) - set(want))
assert not false_hits, f"contaminated flagged documents that share no 13-gram with the training set (12-word plants?): {false_hits[:5]}"
assert got == want, f"contaminated: expected {len(want)} flagged documents, got {len(got)}"
# n is a parameter; n-grams never run across documents.
assert contaminated(["a b c"], ["x a b", "c y"], n=3) == [], "n-grams must not run across training documents"
assert contaminated(["a b c"], ["x a b c"], n=3) == [0] and contaminated(["A-B"], ["a b"], n=2) == [0], "contaminated with n=3 and n=2"
assert contaminated([], train_c) == [] and contaminated(["a " * 20], []) == [], "contaminated with an empty side"
### END HIDDEN TESTS
assert True

# %% [markdown]
# The real corpus: the split is by module, so no docstring is on both sides, but docstrings share
# boilerplate sentences. How much of the validation split is "contaminated" at 13 words, and at
# 8 (too short: common phrases start to match)?

# %%
for n in (13, 8):
    start = time.perf_counter()
    flagged = contaminated(val_texts, train_texts, n)
    print(f"n={n:2d}: {len(flagged)} of {len(val_texts)} validation documents share a {n}-gram with training "
          f"({len(val_texts) + len(train_texts):,} documents in {time.perf_counter() - start:.1f} s)")
    if flagged:
        shared = ngrams(val_texts[flagged[0]], n) & set().union(*(ngrams(t, n) for t in train_texts))
        print("    e.g.", " ".join(sorted(shared)[0]))

# %% [markdown]
# ## 8. Packing documents for pre-training
#
# A training batch is a tensor `(rows, seq_len)`, but documents have all lengths: in this corpus
# from 16 to 1,714 tokens, with a median of about 60. Giving each document its own row and **padding** it to `seq_len`
# wastes every padded position (the model computes on it and the loss ignores it). **Packing**
# instead concatenates the documents, each followed by `<eos>`, and cuts the stream into rows of
# exactly `seq_len` tokens: almost no padding, and a document may continue into the next row.
#
# Packed naively, a token can attend to the end of the *previous* document in its row. Many
# pre-training runs accept that (the `<eos>` tells the model a new document starts); others
# prevent it with a **per-document (block-diagonal) causal mask**: token $i$ may attend to token
# $j$ only if $j \le i$ and both belong to the same document piece. With **position ids** that
# restart at 0 at each document, a packed row then computes exactly what separate forward passes
# of its documents would: the same logits, the same per-token losses. Labels must not ask a
# document's last token to predict the next document's first one: those positions get the label
# −100, which PyTorch's cross-entropy ignores.
#
# (For a RoPE model such as Llama the position reset changes nothing mathematically, because
# attention scores depend only on position *differences*; it matters for learned absolute
# positions, and `transformers`' FlashAttention path reads the resets in `position_ids` to find the
# document boundaries without any mask: see `DataCollatorWithFlattening`.)
#
# In `transformers`, a 4-D float mask `(rows, 1, T, T)` passed as `attention_mask` is used as it
# is: 0 where attention is allowed, a very negative number (`torch.finfo(dtype).min`) where not.
# The cell below loads the bundled tiny Llama and its tokenizer for this section.

# %% setup id=packing_setup
model = load_model().to(device)
tokenizer = bundled_tokenizer
print(f"{model.config.num_hidden_layers} layers, vocabulary {model.config.vocab_size}, eos id {tokenizer.eos_token_id}, "
      f"pad id {tokenizer.pad_token_id}, attention: {model.config._attn_implementation}")

# %% answer id=pack
def pack_documents(docs, seq_len, eos_id, pad_id):
    """Pack tokenized documents into rows of seq_len tokens.

    docs: list of lists of token ids. Each document gets eos_id appended; all are concatenated
    in order and cut into rows of seq_len; the last row is filled up with pad_id.
    Returns a dict of int64 tensors of shape (rows, seq_len), rows = ceil(total / seq_len):
      "input_ids": the tokens;
      "segment_ids": k for the tokens of docs[k], -1 on padding;
      "position_ids": 0, 1, 2, ... from the start of each document, restarting at 0 at the start
                      of every row (a document continued from the previous row starts again
                      at 0); 0 on padding;
      "labels": the next token in the same row when it belongs to the same document, else -100
                (a document's last token, the last position of a row, padding).
    """
    ### BEGIN SOLUTION
    tokens, segments = [], []
    for k, doc in enumerate(docs):
        tokens += list(doc) + [eos_id]
        segments += [k] * (len(doc) + 1)
    rows = -(-len(tokens) // seq_len)
    pad = rows * seq_len - len(tokens)
    input_ids = torch.tensor(tokens + [pad_id] * pad, dtype=torch.long).reshape(rows, seq_len)
    segment_ids = torch.tensor(segments + [-1] * pad, dtype=torch.long).reshape(rows, seq_len)
    position_ids = torch.zeros_like(segment_ids)
    for t in range(1, seq_len):
        same = segment_ids[:, t] == segment_ids[:, t - 1]
        position_ids[:, t] = torch.where(same, position_ids[:, t - 1] + 1, 0)
    position_ids[segment_ids < 0] = 0
    labels = torch.full_like(input_ids, -100)
    same_doc = (segment_ids[:, 1:] == segment_ids[:, :-1]) & (segment_ids[:, 1:] >= 0)
    labels[:, :-1] = torch.where(same_doc, input_ids[:, 1:], -100)
    return {"input_ids": input_ids, "segment_ids": segment_ids, "position_ids": position_ids, "labels": labels}
    ### END SOLUTION

# %% test id=test_pack_visible points=1
packed_v = pack_documents([[5, 6, 7], [8], [9, 10]], seq_len=4, eos_id=1, pad_id=2)
want_v = {
    "input_ids":    [[5, 6, 7, 1], [8, 1, 9, 10], [1, 2, 2, 2]],
    "segment_ids":  [[0, 0, 0, 0], [1, 1, 2, 2], [2, -1, -1, -1]],
    "position_ids": [[0, 1, 2, 3], [0, 1, 0, 1], [0, 0, 0, 0]],
    "labels":       [[6, 7, 1, -100], [1, -100, 10, -100], [-100, -100, -100, -100]],
}
for key, value in want_v.items():
    assert key in packed_v, f"pack_documents must return the key {key!r}"
    assert packed_v[key].dtype == torch.long and packed_v[key].tolist() == value, (
        f"pack_documents([[5, 6, 7], [8], [9, 10]], seq_len=4)['{key}']: expected {value}, got {packed_v[key].tolist()} "
        f"({packed_v[key].dtype})"
    )
assert packed_v["input_ids"].shape == (3, 4), f"pack_documents: expected 3 rows of 4, got {tuple(packed_v['input_ids'].shape)}"

# %% test id=test_pack_hidden points=2
### BEGIN HIDDEN TESTS
rng_p = np.random.default_rng(17)
for trial in range(30):
    n_docs_p = int(rng_p.integers(0, 8))
    docs_p = [list(rng_p.integers(10, 100, int(rng_p.integers(0, 12)))) for _ in range(n_docs_p)]
    seq = int(rng_p.integers(1, 9))
    out = pack_documents(docs_p, seq, eos_id=1, pad_id=2)
    stream = [t for d in docs_p for t in list(d) + [1]]
    seg_stream = [k for k, d in enumerate(docs_p) for _ in range(len(d) + 1)]
    rows = -(-len(stream) // seq)
    for key in ("input_ids", "segment_ids", "position_ids", "labels"):
        assert tuple(out[key].shape) == (rows, seq), (
            f"pack_documents({len(docs_p)} documents, {len(stream)} tokens with eos, seq_len={seq})['{key}']: "
            f"expected shape {(rows, seq)}, got {tuple(out[key].shape)}"
        )
    flat_ids, flat_seg = out["input_ids"].flatten().tolist(), out["segment_ids"].flatten().tolist()
    assert flat_ids == stream + [2] * (rows * seq - len(stream)), f"pack_documents: input_ids of trial {trial} (docs {docs_p}, seq_len {seq})"
    assert flat_seg == seg_stream + [-1] * (rows * seq - len(stream)), f"pack_documents: segment_ids of trial {trial}"
    for r in range(rows):
        pos, lab = out["position_ids"][r].tolist(), out["labels"][r].tolist()
        seg_r, ids_r = out["segment_ids"][r].tolist(), out["input_ids"][r].tolist()
        for t in range(seq):
            want_pos = 0 if seg_r[t] < 0 or t == 0 or seg_r[t - 1] != seg_r[t] else pos[t - 1] + 1
            assert pos[t] == want_pos, f"pack_documents: position_ids row {r} = {pos} for segments {seg_r} (docs {docs_p}, seq_len {seq})"
            want_lab = ids_r[t + 1] if t + 1 < seq and seg_r[t] >= 0 and seg_r[t + 1] == seg_r[t] else -100
            assert lab[t] == want_lab, f"pack_documents: labels row {r} = {lab} for ids {ids_r}, segments {seg_r}"
empty_p = pack_documents([], 4, 1, 2)
assert all(v.shape == (0, 4) and v.dtype == torch.long for v in empty_p.values()), (
    f"pack_documents([]) must give 0 rows of int64 tensors, got {[(tuple(v.shape), v.dtype) for v in empty_p.values()]}"
)
### END HIDDEN TESTS
assert True

# %% [markdown]
# Now the mask. Build it from the segment ids, in the dtype of the model's activations.

# %% answer id=packed_mask
def packed_attention_mask(segment_ids, dtype=torch.float32):
    """Additive attention mask for packed rows: a float tensor (rows, 1, T, T) of `dtype` on the
    device of segment_ids; entry [r, 0, i, j] is 0 when j <= i and segment_ids[r, i] ==
    segment_ids[r, j] (padding, -1, counts as one more segment), torch.finfo(dtype).min otherwise.
    Any device means the `meta` device too (tensors with a shape and dtype but no data, on which
    frameworks plan models before allocating them; the hidden test calls it there): build every
    tensor with torch operations on segment_ids.device, never by reading values into Python
    (.tolist(), .item(), loops over entries) or creating them on the CPU."""
    ### BEGIN SOLUTION
    t = segment_ids.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool, device=segment_ids.device).tril()
    allowed = (segment_ids[:, :, None] == segment_ids[:, None, :]) & causal
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segment_ids.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
    ### END SOLUTION

# %% test id=test_packed_mask_visible points=1
mask_v = packed_attention_mask(torch.tensor([[0, 0, 1, -1]]))
NEG = torch.finfo(torch.float32).min
want_mask = torch.tensor([[0, NEG, NEG, NEG], [0, 0, NEG, NEG], [NEG, NEG, 0, NEG], [NEG, NEG, NEG, 0]])
assert_shape(mask_v, (1, 1, 4, 4), name="packed_attention_mask(segments (1, 4))")
assert_close(mask_v[0, 0], want_mask, rtol=0, atol=0, name="packed_attention_mask([[0, 0, 1, -1]])")

# %% test id=test_packed_mask_hidden points=2
### BEGIN HIDDEN TESTS
# The bundled tiny Llama on a packed batch: every document's per-token losses equal those of
# the document run on its own (same weights, same tokens; float32 round-off only).
docs_m = [tokenizer(t)["input_ids"][:int(n)] for t, n in zip(val_texts[:9], [40, 90, 25, 60, 130, 12, 70, 33, 50])]
batch = pack_documents(docs_m, 128, tokenizer.eos_token_id, tokenizer.pad_token_id)
batch = {k: v.to(device) for k, v in batch.items()}
for dtype in (torch.float32, torch.bfloat16):
    mask_h = packed_attention_mask(batch["segment_ids"], dtype)
    assert mask_h.dtype == dtype and mask_h.device.type == device.type, f"packed_attention_mask(dtype={dtype}): got {mask_h.dtype} on {mask_h.device}"
    assert float(mask_h.min()) == float(torch.finfo(dtype).min) and float(mask_h.max()) == 0, (
        f"packed_attention_mask(dtype={dtype}): blocked entries must be torch.finfo({dtype}).min, allowed ones 0"
    )
mask_h = packed_attention_mask(batch["segment_ids"])
with torch.no_grad():
    logits = model(input_ids=batch["input_ids"], attention_mask=mask_h, position_ids=batch["position_ids"]).logits
    packed_losses = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(),
                                                      reduction="none", ignore_index=-100).reshape(batch["labels"].shape)
    worst, checked = 0.0, 0
    for r in range(batch["input_ids"].shape[0]):
        seg_r = batch["segment_ids"][r]
        for k in seg_r.unique().tolist():
            if k < 0:
                continue
            cols = (seg_r == k).nonzero().flatten()
            piece = batch["input_ids"][r, cols][None]
            alone = model(input_ids=piece).logits[0]
            labels_k = batch["labels"][r, cols]
            keep = labels_k != -100
            if not keep.any():
                continue
            loss_alone = torch.nn.functional.cross_entropy(alone[keep].float(), labels_k[keep], reduction="none")
            worst = max(worst, float((packed_losses[r, cols][keep] - loss_alone).abs().max()))
            checked += int(keep.sum())
print(f"{checked} tokens checked, largest per-token loss difference {worst:.2e}")
# float32 with different shapes: the reference differs by about 1e-5; leaking attention across
# documents changes losses by 0.1 or more.
assert worst < 1e-3, (
    f"packed forward with packed_attention_mask vs each document on its own: per-token losses differ by up to "
    f"{worst:.3g} (expected < 1e-3): tokens must not attend to other documents or to later tokens"
)
# The mask is made on the device of the segment ids (the meta device has shapes but no data).
meta_mask = packed_attention_mask(torch.zeros(2, 5, dtype=torch.long, device="meta"), torch.float16)
assert meta_mask.device.type == "meta" and tuple(meta_mask.shape) == (2, 1, 5, 5) and meta_mask.dtype == torch.float16, (
    f"packed_attention_mask must build its tensors on segment_ids.device: got {meta_mask.device}, {tuple(meta_mask.shape)}"
)
# Padding must not break a row: no NaN anywhere.
assert not torch.isnan(logits).any(), "packed forward produced NaN (a row of the mask with nothing allowed?)"
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### How much padding does packing save?
#
# Write `padding_fraction` for three ways to batch the same documents (lengths in tokens,
# `<eos>` included), each cut into pieces of at most `seq_len` tokens (a document of length $L$
# makes $\lceil L / \text{seq\_len} \rceil$ pieces, all full but the last):
#
# - `"pad_to_max"`: every piece in its own row of `seq_len` (static shapes, as on TPUs);
# - `"pad_to_longest"`: the pieces in order, in batches of `batch_size`, each batch padded to its
#   longest piece (dynamic padding, Hugging Face's default collator);
# - `"pack"`: all tokens concatenated into $\lceil \text{total} / \text{seq\_len} \rceil$ rows.

# %% answer id=padding
def padding_fraction(lengths, seq_len, strategy, batch_size=8):
    """Padded positions / all positions (a float in [0, 1)) for documents of the given lengths
    (positive ints) under strategy "pad_to_max", "pad_to_longest" or "pack" (see above);
    0.0 for no documents. Raises ValueError for another strategy."""
    ### BEGIN SOLUTION
    if strategy not in ("pad_to_max", "pad_to_longest", "pack"):
        raise ValueError(f"unknown strategy {strategy!r}")
    total = sum(lengths)
    if total == 0:
        return 0.0
    if strategy == "pack":
        slots = -(-total // seq_len) * seq_len
    else:
        pieces = []
        for n in lengths:
            pieces += [seq_len] * (n // seq_len) + ([n % seq_len] if n % seq_len else [])
        if strategy == "pad_to_max":
            slots = len(pieces) * seq_len
        else:
            slots = sum(len(pieces[i:i + batch_size]) * max(pieces[i:i + batch_size])
                        for i in range(0, len(pieces), batch_size))
    return (slots - total) / slots
    ### END SOLUTION

# %% test id=test_padding_visible points=1
lengths_v = [3, 10, 4, 1]  # with seq_len 4: pieces 3 | 4 4 2 | 4 | 1 (18 tokens)
for strategy, want in [("pad_to_max", 1 - 18 / 24), ("pad_to_longest", 1 - 18 / 24), ("pack", 1 - 18 / 20)]:
    assert_scalar_close(padding_fraction(lengths_v, 4, strategy, batch_size=2), want, rtol=1e-12, atol=0,
                        name=f"padding_fraction([3, 10, 4, 1], seq_len=4, '{strategy}', batch_size=2)")
assert_scalar_close(padding_fraction([1, 1, 3, 3], 4, "pad_to_longest", batch_size=2), 0.0, rtol=0, atol=1e-15,
                    name="padding_fraction([1, 1, 3, 3], 4, 'pad_to_longest', batch_size=2)")

# %% test id=test_padding_hidden points=2
### BEGIN HIDDEN TESTS
# The corpus's real length distribution (tokens + eos with the bundled tokenizer): deterministic counts.
corpus_lengths = [len(ids) + 1 for ids in tokenizer(val_texts, add_special_tokens=False)["input_ids"]]
for seq_len_p in (128, 512):
    pieces = [p for n in corpus_lengths for p in [seq_len_p] * (n // seq_len_p) + ([n % seq_len_p] if n % seq_len_p else [])]
    total = sum(corpus_lengths)
    want = {
        "pad_to_max": 1 - total / (len(pieces) * seq_len_p),
        "pad_to_longest": 1 - total / sum(len(pieces[i:i + 16]) * max(pieces[i:i + 16]) for i in range(0, len(pieces), 16)),
        "pack": 1 - total / (-(-total // seq_len_p) * seq_len_p),
    }
    for strategy, value in want.items():
        assert_scalar_close(padding_fraction(corpus_lengths, seq_len_p, strategy, batch_size=16), value, rtol=1e-12, atol=0,
                            name=f"padding_fraction(validation lengths, {seq_len_p}, '{strategy}', batch_size=16)")
    assert want["pack"] < 0.01 < want["pad_to_longest"], "sanity: packing wastes under 1%"
assert padding_fraction([], 8, "pack") == 0.0 and padding_fraction([], 8, "pad_to_max") == 0.0, "padding_fraction([]) must be 0.0"
# The default batch size is 8: nine pieces make a batch of 8 (padded to 9) and a batch of 1.
assert_scalar_close(padding_fraction([1] * 8 + [9], 16, "pad_to_longest"), 1 - 17 / 17, rtol=0, atol=1e-15,
                    name="padding_fraction([1] * 8 + [9], 16, 'pad_to_longest') with the default batch_size=8")
assert_scalar_close(padding_fraction([9] + [1] * 8, 16, "pad_to_longest"), 1 - 17 / (8 * 9 + 1), rtol=1e-12, atol=0,
                    name="padding_fraction([9] + [1] * 8, 16, 'pad_to_longest') with the default batch_size=8")
assert padding_fraction([8, 16], 8, "pad_to_max") == 0.0 and padding_fraction([9], 8, "pad_to_max") == 7 / 16, (
    "padding_fraction: exact multiples of seq_len need no padding; 9 tokens with seq_len 8 use 2 rows"
)
assert_scalar_close(padding_fraction([5, 5, 5], 8, "pad_to_longest", batch_size=5), 0.0, rtol=0, atol=1e-15,
                    name="padding_fraction([5, 5, 5], 8, 'pad_to_longest') (one short batch, no padding)")
assert_scalar_close(padding_fraction([2, 6, 2, 2, 2], 8, "pad_to_longest", batch_size=2), 1 - 14 / 18, rtol=1e-12, atol=0,
                    name="padding_fraction([2, 6, 2, 2, 2], 8, 'pad_to_longest', batch_size=2): batches (2, 6), (2, 2), (2)")
try:
    padding_fraction([3], 4, "bucket")
except ValueError:
    pass
else:
    raise AssertionError("padding_fraction(..., 'bucket') must raise ValueError")
### END HIDDEN TESTS
assert True

# %% [markdown]
# The validation split's document lengths, and the padding of each strategy as the row length grows:

# %%
lengths_all = [len(ids) + 1 for ids in tokenizer(val_texts, add_special_tokens=False)["input_ids"]]
seq_lens = [64, 128, 256, 512, 1024, 2048]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
ax1.hist(lengths_all, bins=50)
ax1.set_xlabel("document length (tokens, with <eos>)")
ax1.set_ylabel("documents")
ax1.set_title(f"validation: median {int(np.median(lengths_all))} tokens")
for strategy in ("pad_to_max", "pad_to_longest", "pack"):
    ax2.plot(seq_lens, [padding_fraction(lengths_all, s, strategy, batch_size=16) for s in seq_lens], "o-", label=strategy)
ax2.set_xscale("log", base=2)
ax2.set_xlabel("seq_len")
ax2.set_ylabel("padding fraction")
ax2.set_title("padding wasted (batches of 16 for pad_to_longest)")
ax2.legend()
plt.show()
for s in (256, 1024):
    print(f"seq_len {s}: " + ", ".join(f"{st} {padding_fraction(lengths_all, s, st, 16):.1%}"
                                        for st in ("pad_to_max", "pad_to_longest", "pack")))

# %% [markdown]
# ## Wrap-up
#
# You built, and checked against libraries, the data path of a pre-training run: a byte-level BPE
# tokenizer (identical to `tokenizers` on your vocabulary), cleaning and quality rules, exact and
# near de-duplication, decontamination, and packing with per-document masks. What production
# pipelines do differently:
#
# - **Scale.** The same steps run over trillions of tokens with `datatrove`, Spark or Dask:
#   MinHash signatures per shard, LSH buckets grouped by a shuffle, union-find in a distributed
#   connected-components job; exact de-duplication with suffix arrays finds repeated *substrings*,
#   not just whole documents (Lee et al. 2022). FineWeb de-duplicates each crawl snapshot
#   separately, having found that global de-duplication kept the lower-quality leftovers.
# - **Quality with models.** Beyond rules: language identification (fastText), perplexity under a
#   reference model (CCNet), and classifiers trained to recognise educational text (FineWeb-Edu,
#   DCLM) now decide much of what is kept.
# - **Tokenizers.** Trained in Rust on billions of words (`tokenizers`, SentencePiece); GPT-4's
#   pattern splits digits into groups of three and contractions case-insensitively; vocabularies
#   are 32k–256k tokens; Llama 3 and GPT-4o merge whole words directly when they are in the
#   vocabulary (`ignore_merges`). Streaming decoders hold back incomplete UTF-8 sequences.
# - **Packing.** FlashAttention's variable-length kernels take the document boundaries directly
#   (`cu_seqlens`) instead of a $T \times T$ mask; best-fit packing avoids splitting documents
#   across rows, at a little padding.
# - **Decontamination** checks every benchmark against the training set before release, and
#   reports scores on the clean subset.
#
# Next in the learning order: pre-training, where packed, tokenized data like yours becomes a model.
