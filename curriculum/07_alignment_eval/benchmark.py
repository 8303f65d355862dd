"""Benchmark of the evaluation unit's reference solutions (not a unit test).

    python curriculum/07_alignment_eval/benchmark.py [--items 102] [--reps 400] [--json out.json]

Measures, in one run and on the default device (CUDA when present, else CPU), on the
bundled tiny Llama (or the model named by LLMLABS_MODEL):
- log-likelihood scoring of the docstring task's validation split (every item against its
  three answers): one batched forward pass against one pass per (item, answer) pair, as a
  ratio from interleaved runs (`graders.notebook.speedup`), plus the median absolute time;
- the coverage of the percentile bootstrap's 95 % interval of an accuracy of 0.7 at several
  numbers of items, and the false-positive rate of McNemar's exact test at alpha = 0.05 for
  two equally good models: simulations with a known truth (deterministic for the seeds);
- pass@k's product form against the direct formula with float64 binomial coefficients
  (scipy.special.comb) and the exact rational value, up to n = 10,000: where the direct
  formula stops working (inf / inf) and how far the product form is from exact.

The reference code is not copied here: it is read from the answer cells of
`alignment_eval.py` (the notebook's text form), solution markers dropped, and executed.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path

from graders.authoring.benchmarking import load_reference, quiet_environment

quiet_environment()  # before torch and transformers load: some read it at import
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from graders.notebook import load_model, load_task, load_tokenizer, model_source, speedup  # noqa: E402

CHOICES = [" module", " class", " function"]


def bench_scoring(ref: dict, device: torch.device, n_items: int, repeats: int) -> dict:
    tok = load_tokenizer()
    model = load_model(device=device)
    pairs = [(ex["prompt"], c) for ex in load_task("validation")[:n_items] for c in CHOICES]

    def batched():
        with torch.no_grad():
            return ref["sequence_logprobs"](model, tok, pairs)

    def one_by_one():
        with torch.no_grad():
            return [ref["sequence_logprobs"](model, tok, [p]) for p in pairs]

    ratio = speedup(batched, one_by_one, repeats=repeats)
    return {"pairs": len(pairs), "speedup_batched": ratio.ratio, "batched_s": ratio.fast.median,
            "one_by_one_s": ratio.slow.median}


def coverage(ref: dict, n_items: int, reps: int, p: float = 0.7) -> float:
    rng = np.random.default_rng(2024)
    hits = 0
    for rep in range(reps):
        lo, hi = ref["bootstrap_ci"]((rng.random(n_items) < p).astype(float), n_boot=1000, seed=rep)
        hits += lo <= p <= hi
    return hits / reps


def false_positive_rate(ref: dict, n_items: int, reps: int) -> float:
    rng = np.random.default_rng(9)
    return sum(ref["mcnemar_exact"](rng.random(n_items) < 0.6, rng.random(n_items) < 0.6) < 0.05
               for _ in range(reps)) / reps


def pass_at_k_overflow(ref: dict) -> dict:
    from fractions import Fraction

    from scipy.special import comb

    out = {}
    for n in (100, 1000, 1030, 1100, 2000, 10000):
        c, k = 3, n // 2
        exact = float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))
        with np.errstate(all="ignore"):
            direct = float(1 - comb(n - c, k) / comb(n, k))
        out[n] = {"c": c, "k": k, "exact": exact, "direct_float64": direct,
                  "product_abs_error": abs(ref["pass_at_k"](n, c, k) - exact)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=102, help="validation items to score")
    parser.add_argument("--reps", type=int, default=400, help="simulated experiments per figure")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of the scoring")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ref = load_reference(__file__, {"math": math, "np": np, "torch": torch, "F": F}, kinds=("answer",))
    scoring = bench_scoring(ref, device, args.items, args.repeats)
    print(f"model {model_source()} on {device}")
    print(f"scoring {scoring['pairs']} (item, answer) pairs: batched {scoring['batched_s']:.3f} s, "
          f"one by one {scoring['one_by_one_s']:.3f} s, speedup {scoring['speedup_batched']:.1f}x")
    covers = {n: coverage(ref, n, args.reps) for n in (20, 50, 100, 200, 500)}
    for n, c in covers.items():
        print(f"bootstrap 95% interval, {n:>3} items at p = 0.7: coverage {c:.3f} ({args.reps} experiments)")
    fpr = {n: false_positive_rate(ref, n, args.reps) for n in (30, 150, 600)}
    for n, r in fpr.items():
        print(f"McNemar exact test, two equal models, {n:>3} items: false positives at 0.05: {r:.3f}")
    overflow = pass_at_k_overflow(ref)
    for n, row in overflow.items():
        print(f"pass@{row['k']} with n = {n:>5}, c = {row['c']}: exact {row['exact']:.6f}, "
              f"direct formula in float64 {row['direct_float64']:.6f}, "
              f"product form off by {row['product_abs_error']:.1e}")
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "model": model_source(), "scoring": scoring,
                                         "coverage": covers, "mcnemar_false_positives": fpr,
                                         "pass_at_k_overflow": overflow}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
