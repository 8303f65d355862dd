"""Benchmark of the data unit's reference solutions (not a unit test).

    python curriculum/03_data/benchmark.py [--docs 3918] [--json out.json]

Measures, in one run on the CPU, with the reference answers of `data.py` (the notebook's
text form: its setup and answer cells are executed, solution markers dropped):
- BPE training: seconds for 1,000 merges on 1,000 training documents;
- encoding: tokens/s of the reference `FastEncoder` (cold cache and warm) and of `encode_naive`
  (500 merges), against the Rust `tokenizers` library loaded with the same vocabulary
  (`encode` on one long string and `encode_batch` over documents, one thread as the notebook
  runs it), and the ratios;
- the pipeline steps, in documents/s over the training split: cleaning (`clean_document`),
  the Gopher-style signals (`quality_flags`), exact de-duplication, MinHash signatures, LSH
  candidates + union-find, 13-gram decontamination (validation against training);
- padding fractions of the three batching strategies on the validation split.
Absolute figures depend on the machine and its load; the notebook grades only ratios measured
in one run, counts and library oracles.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from graders.authoring.benchmarking import load_reference, quiet_environment

quiet_environment()  # before torch and transformers load: some read it at import



def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_tokenizer(ref: dict, texts: list[str]) -> dict:
    merges, t_train = timed(lambda: ref["train_bpe"](ref["train_texts"][:1000], 1000))
    bundled = ref["BUNDLED_MERGES"]
    hf = ref["to_hf_tokenizer"](bundled)
    big = "\n".join(texts)
    encoder = ref["FastEncoder"](bundled)
    ids_cold, t_cold = timed(lambda: encoder.encode(big))
    _, t_warm = timed(lambda: encoder.encode(big))
    hf_ids, t_hf_one = timed(lambda: hf.encode(big).ids)
    batch, t_hf_batch = timed(lambda: hf.encode_batch(texts))
    assert ids_cold == hf_ids, "reference FastEncoder and tokenizers disagree"
    n = len(ids_cold)
    n_batch = sum(len(e.ids) for e in batch)
    small = bundled[:500]
    sample = "\n".join(texts[:12])
    naive_ids, t_naive = timed(lambda: ref["encode_naive"](sample, small))
    fast_ids, t_fast_small = timed(lambda: ref["FastEncoder"](small).encode(sample))
    assert naive_ids == fast_ids
    return {
        "train_1000_merges_s": t_train,
        "merges_trained": len(merges),
        "tokens": n,
        "fast_cold_tokens_per_s": n / t_cold,
        "fast_warm_tokens_per_s": n / t_warm,
        "tokenizers_one_string_tokens_per_s": n / t_hf_one,
        "tokenizers_batch_tokens_per_s": n_batch / t_hf_batch,
        "naive_500_merges_tokens_per_s": len(naive_ids) / t_naive,
        "fast_500_merges_tokens_per_s": len(fast_ids) / t_fast_small,
    }


def bench_pipeline(ref: dict, texts: list[str]) -> dict:
    rows = {}
    _, t = timed(lambda: [ref["clean_document"](x) for x in texts])
    rows["clean_document"] = len(texts) / t
    _, t = timed(lambda: [ref["quality_flags"](x) for x in texts])
    rows["quality_flags"] = len(texts) / t
    _, t = timed(lambda: list(ref["exact_dedup"](texts)))
    rows["exact_dedup"] = len(texts) / t
    np = ref["np"]
    sigs, t = timed(lambda: np.stack([ref["minhash_signature"](ref["shingles"](x)) for x in texts]))
    rows["minhash_signature"] = len(texts) / t
    b, r = ref["choose_bands"](0.7, 128)
    _, t = timed(lambda: ref["near_duplicate_groups"](sigs, b, r, 0.7))
    rows[f"lsh_and_union_find (b={b}, r={r})"] = len(texts) / t
    val = ref["val_texts"]
    _, t = timed(lambda: ref["contaminated"](val, texts))
    rows["decontamination_13gram"] = (len(texts) + len(val)) / t
    return rows


def bench_padding(ref: dict) -> dict:
    tok = ref["bundled_tokenizer"]
    lengths = [len(ids) + 1 for ids in tok(ref["val_texts"], add_special_tokens=False)["input_ids"]]
    return {f"seq_len {s}": {st: ref["padding_fraction"](lengths, s, st, 16)
                             for st in ("pad_to_max", "pad_to_longest", "pack")} for s in (256, 1024)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=None, help="training documents for the pipeline steps")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    ref = load_reference(__file__)
    texts = ref["train_texts"][: args.docs] if args.docs else ref["train_texts"]
    print(f"data benchmark: {len(texts)} training documents")
    tok = bench_tokenizer(ref, ref["val_texts"])
    print(f"\nBPE training: {tok['merges_trained']} merges on 1,000 documents "
          f"in {tok['train_1000_merges_s']:.1f} s")
    print(f"encoding the validation split ({tok['tokens']:,} tokens, 3,837 merges), tokens/s:")
    for key in ("fast_cold_tokens_per_s", "fast_warm_tokens_per_s", "tokenizers_one_string_tokens_per_s",
                "tokenizers_batch_tokens_per_s"):
        print(f"  {key:<40} {tok[key]:>12,.0f}")
    ratio = tok["tokenizers_batch_tokens_per_s"] / tok["fast_cold_tokens_per_s"]
    print(f"  tokenizers (batch) / FastEncoder (cold cache): {ratio:.2f}x")
    print(f"  500 merges: naive {tok['naive_500_merges_tokens_per_s']:,.0f} tokens/s, "
          f"FastEncoder {tok['fast_500_merges_tokens_per_s']:,.0f} tokens/s "
          f"({tok['fast_500_merges_tokens_per_s'] / tok['naive_500_merges_tokens_per_s']:.0f}x)")
    pipe = bench_pipeline(ref, texts)
    print("\npipeline steps, documents/s:")
    for key, value in pipe.items():
        print(f"  {key:<40} {value:>12,.0f}")
    pad = bench_padding(ref)
    print("\npadding fraction (validation lengths, batches of 16 for pad_to_longest):")
    for key, value in pad.items():
        print(f"  {key}: " + ", ".join(f"{k} {v:.1%}" for k, v in value.items()))
    if args.json:
        results = {"tokenizer": tok, "pipeline": pipe, "padding": pad}
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
