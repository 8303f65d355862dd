"""Benchmark of the pruning unit's reference solutions (not a unit test).

    python curriculum/09_pruning/benchmark.py [--ppl-tokens 4096] [--threads 1] [--json out.json]

Measures, in one run and on the default device (CUDA when present, else CPU), for the bundled
tiny Llama model (or the one `LLMLABS_MODEL` names):
- validation perplexity against sparsity for magnitude pruning per layer and global, Wanda
  (norms from 1,024 training tokens) and 2:4 magnitude, and against the number of MLP channels
  kept for structured pruning (with the model's parameter bytes);
- the speed ratio of each format against dense, timed interleaved
  (`graders.notebook.measure.speedup`): `torch.sparse.mm` on CSR and COO weights across
  sparsities, the structured-pruned model's forward pass, and, on an NVIDIA GPU of compute
  capability 8.0 or later, the 2:4 kernel (`torch.sparse.to_sparse_semi_structured`).

The reference code is not copied here: the setup cell and the answer cells of `pruning.py`
(the notebook's text form) are executed, solution markers dropped. On a shared CPU, `--threads 1`
gives more repeatable ratios.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

from graders.authoring.benchmarking import load_reference, quiet_environment

quiet_environment()  # before torch and transformers load: some read it at import

import torch  # noqa: E402

from graders.notebook import model_source, speedup  # noqa: E402

SPARSITIES = (0.3, 0.5, 0.6, 0.7, 0.8)


def bench_perplexity(ref: dict, model, ids, calib) -> list[dict]:
    ppl, masked = ref["perplexity"], ref["masked_copy"]
    weights = ref["linear_weights"](model)
    norms = ref["input_norms"](model, calib, list(weights))
    rows = [{"method": "dense", "sparsity": 0.0, "perplexity": ppl(model, ids, seq_len=256)}]
    for s in SPARSITIES:
        methods = {
            "magnitude per layer": {n: ref["magnitude_mask"](w, s) for n, w in weights.items()},
            "magnitude global": ref["global_magnitude_masks"](weights, s),
            "Wanda": {n: ref["wanda_mask"](w, norms[n], s) for n, w in weights.items()},
        }
        for label, masks in methods.items():
            rows.append(
                {"method": label, "sparsity": s, "perplexity": ppl(masked(model, masks), ids, seq_len=256)}
            )
    m24 = {n: ref["nm_mask"](w.detach().abs()) for n, w in weights.items()}
    rows.append(
        {"method": "2:4 magnitude", "sparsity": 0.5, "perplexity": ppl(masked(model, m24), ids, seq_len=256)}
    )
    return rows


def bench_structured(ref: dict, model, ids, device) -> list[dict]:
    rows = []
    x = ids[:512].view(2, 256).to(device)
    full = model.config.intermediate_size
    for keep in (full, full * 3 // 4, full // 2, full // 4):
        small = ref["prune_mlp_channels"](copy.deepcopy(model), keep)
        with torch.no_grad():
            r = speedup(
                lambda small=small: small(input_ids=x), lambda: model(input_ids=x), repeats=7, warmup=2
            )
        rows.append(
            {
                "mlp_channels": keep,
                "bytes": sum(p.numel() * p.element_size() for p in small.parameters()),
                "perplexity": ref["perplexity"](small, ids, seq_len=256),
                "forward_speedup": r.ratio,
            }
        )
    return rows


def bench_sparse_mm(ref: dict, device, cols: int) -> list[dict]:
    torch.manual_seed(0)
    w = torch.randn(1024, 1024, device=device)
    x = torch.randn(1024, cols, device=device)
    rows = []
    for s in (0.5, 0.7, 0.8, 0.9, 0.95, 0.99):
        wp = w * ref["magnitude_mask"](w, s)
        csr, coo = wp.to_sparse_csr(), wp.to_sparse_coo().coalesce()
        r_csr = speedup(lambda csr=csr: torch.sparse.mm(csr, x), lambda wp=wp: wp @ x, repeats=9, warmup=2)
        r_coo = speedup(lambda coo=coo: torch.sparse.mm(coo, x), lambda wp=wp: wp @ x, repeats=9, warmup=2)
        nnz = int((wp != 0).sum())
        rows.append(
            {
                "input_columns": cols,
                "sparsity": s,
                "csr_speedup": r_csr.ratio,
                "coo_speedup": r_coo.ratio,
                "csr_bytes_vs_dense": ref["csr_bytes"](1024, 1024, nnz) / (1024 * 1024 * 4),
            }
        )
    return rows


def bench_24_gpu(ref: dict, device) -> dict | None:
    if device.type != "cuda" or torch.cuda.get_device_capability()[0] < 8:
        return None
    from torch.sparse import to_sparse_semi_structured

    w = torch.randn(4096, 4096, device=device, dtype=torch.float16)
    w = w * ref["nm_mask"](w.abs())
    x = torch.randn(4096, 2048, device=device, dtype=torch.float16)
    ws = to_sparse_semi_structured(w)
    r = speedup(lambda: ws @ x, lambda: w @ x, repeats=15, warmup=3)
    return {"shape": "(4096x4096)@(4096x2048) fp16", "speedup": r.ratio}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ppl-tokens", type=int, default=4096, help="validation tokens for perplexity")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)

    ref = load_reference(__file__)
    device = ref["device"]
    if args.threads:
        torch.set_num_threads(args.threads)
    model = ref["load_model"]().to(device)
    ids = ref["validation_ids"](max_tokens=args.ppl_tokens)
    calib = torch.tensor(ref["encode_documents"](ref["load_tokenizer"](), ref["load_corpus"]("train"), 1024))
    calib = calib.view(4, 256).to(device)
    name = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"pruning benchmark: torch {torch.__version__} on {name}; model {model_source()}")
    start = time.perf_counter()

    ppl_rows = bench_perplexity(ref, model, ids, calib)
    print(f"\n{'method':<20} | {'sparsity':>8} | {'perplexity':>10}")
    for r in ppl_rows:
        print(f"{r['method']:<20} | {r['sparsity']:>8.0%} | {r['perplexity']:>10.3f}")

    structured = bench_structured(ref, model, ids, device)
    print(f"\n{'MLP channels':>12} | {'bytes':>12} | {'perplexity':>10} | {'forward speed-up':>16}")
    for r in structured:
        print(
            f"{r['mlp_channels']:>12} | {r['bytes']:>12,} | {r['perplexity']:>10.3f} | "
            f"{r['forward_speedup']:>15.2f}x"
        )

    spmm = bench_sparse_mm(ref, device, 64) + bench_sparse_mm(ref, device, 1)
    print(
        f"\n{'(1024x1024)@(1024xN)':<20} | {'sparsity':>8} | {'CSR vs dense':>12} | "
        f"{'COO vs dense':>12} | {'CSR bytes':>9}"
    )
    for r in spmm:
        print(
            f"{'N = ' + str(r['input_columns']):<20} | {r['sparsity']:>8.0%} | {r['csr_speedup']:>11.2f}x | "
            f"{r['coo_speedup']:>11.2f}x | {r['csr_bytes_vs_dense']:>8.2f}x"
        )

    gpu24 = bench_24_gpu(ref, device)
    print(
        "\n2:4 kernel: "
        + (
            f"{gpu24['speedup']:.2f}x dense on {gpu24['shape']}"
            if gpu24
            else "skipped (needs an NVIDIA GPU of compute capability 8.0 or later)"
        )
    )
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "device": name,
                    "perplexity": ppl_rows,
                    "structured": structured,
                    "sparse_mm": spmm,
                    "semi_structured_24": gpu24,
                },
                indent=1,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
