"""Benchmark of the quantization unit's reference solutions (not a unit test).

    python curriculum/08_quantization/benchmark.py [--ppl-tokens 16384] [--new-tokens 64] [--json out.json]

Measures, in one run and on the default device (CUDA when present, else CPU), for the
bundled tiny Llama model (or the one `LLMLABS_MODEL` names):
- bytes (`model_bytes`) and validation perplexity (`graders.notebook.lm.perplexity`) of the float32
  model, the weight-only int8 model and the 4-bit (blocks of 32, packed) model;
- int8 (`torch._int_mm`) against float32 matrix products, timed interleaved
  (`graders.notebook.measure.speedup`) for a decode-like (32 rows) and a prefill-like (512 rows) shape;
- greedy generation with and without the KV cache: tokens per second, timed interleaved;
- forward latency against batch size, with the reference `benchmark` helper (median, p90).

On a CPU shared with other busy processes, two or more torch threads can wait on each other
and turn timings erratic (a batch of 1 slower than a batch of 8); `--threads 1` gives
repeatable figures there.

The reference code is not copied here: the setup cell and the answer cells of
`quantization.py` (the notebook's text form) are executed, solution markers dropped.
Targets (see the unit's issue): int8 model bytes about 1/4 of float for the quantized layers
(8.5 -> 8 bits + a float32 scale per row), 4-bit 4.5 bits per weight; int8 perplexity within
1% and 4-bit within 10% of float; KV-cache generation several times faster than recomputing.
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

from graders.notebook import speedup, synchronize  # noqa: E402


def bench_models(ref: dict, ppl_tokens: int) -> list[dict]:
    model = ref["model_for_bench"]
    ids = ref["validation_ids"](max_tokens=ppl_tokens)
    rows = []
    for label, bits in [("float32", None), ("int8 (per row)", 8), ("4-bit (blocks of 32)", 4)]:
        m = model if bits is None else ref["quantize_model"](copy.deepcopy(model), bits)
        start = time.perf_counter()
        ppl = ref["perplexity"](m, ids, seq_len=256, batch_size=8)
        rows.append({"model": label, "bytes": ref["model_bytes"](m), "perplexity": ppl,
                     "perplexity_seconds": time.perf_counter() - start})
    return rows


def bench_matmul(ref: dict, device: torch.device, repeats: int = 9) -> list[dict]:
    int_mm = ref["int_mm"]
    rows = []
    for m_rows in (32, 512):
        torch.manual_seed(0)
        a32, b32 = torch.randn(m_rows, 1024, device=device), torch.randn(1024, 1024, device=device)
        a8 = torch.randint(-127, 128, (m_rows, 1024), dtype=torch.int8, device=device)
        b8 = torch.randint(-127, 128, (1024, 1024), dtype=torch.int8, device=device)
        r = speedup(lambda a8=a8, b8=b8: int_mm(a8, b8), lambda a32=a32, b32=b32: a32 @ b32,
                    repeats=repeats, warmup=2)
        rows.append({"shape": f"({m_rows}x1024)@(1024x1024)", "float32_ms": r.slow.median * 1e3,
                     "int8_ms": r.fast.median * 1e3, "int8_speedup": r.ratio})
    return rows


def bench_generation(ref: dict, device: torch.device, prompt_len: int, new_tokens: int,
                     repeats: int = 3) -> dict:
    model, generate = ref["model_for_bench"], ref["greedy_generate"]
    prompt = ref["validation_ids"](max_tokens=prompt_len)[None].to(device)
    r = speedup(lambda: generate(model, prompt, new_tokens, use_cache=True),
                lambda: generate(model, prompt, new_tokens, use_cache=False), repeats=repeats, warmup=1)
    return {"prompt": prompt_len, "new_tokens": new_tokens, "tokens_per_s_cache": new_tokens / r.fast.median,
            "tokens_per_s_recompute": new_tokens / r.slow.median, "speedup": r.ratio}


def bench_batches(ref: dict, device: torch.device, batch_sizes=(1, 2, 4, 8, 16), seq: int = 64) -> list[dict]:
    model, benchmark = ref["model_for_bench"], ref["benchmark"]
    ids = ref["validation_ids"](max_tokens=max(batch_sizes) * seq)
    rows = []
    with torch.no_grad():
        for b in batch_sizes:
            x = ids[: b * seq].reshape(b, seq).to(device)
            t = benchmark(lambda x=x: model(x), warmup=2, repeats=7)
            rows.append({"batch": b, "median_ms": t["median"] * 1e3, "p90_ms": t["p90"] * 1e3,
                         "tokens_per_s": b * seq / t["median"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ppl-tokens", type=int, default=16384, help="validation tokens for perplexity")
    parser.add_argument("--prompt", type=int, default=192, help="prompt length for the generation benchmark")
    parser.add_argument("--new-tokens", type=int, default=32, help="new tokens in the generation benchmark")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)

    ref = load_reference(__file__)
    device = ref["device"]
    if args.threads:
        torch.set_num_threads(args.threads)
    ref["model_for_bench"] = ref["load_model"]().to(device)
    name = (torch.cuda.get_device_name() if device.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads")
    print(f"quantization benchmark: torch {torch.__version__} on {name}; model {ref['model_source']()}")
    start = time.perf_counter()

    models = bench_models(ref, args.ppl_tokens)
    base = models[0]
    print(f"\n{'model':<22} | {'bytes':>12} | {'vs float':>8} | {'perplexity':>10} | {'vs float':>8}")
    for r in models:
        print(f"{r['model']:<22} | {r['bytes']:>12,} | {r['bytes'] / base['bytes']:>7.3f}x | "
              f"{r['perplexity']:>10.3f} | "
              f"{r['perplexity'] / base['perplexity'] - 1:>+8.2%}")

    mm = bench_matmul(ref, device)
    print(f"\n{'matmul':<24} | {'float32 ms':>10} | {'int8 ms':>8} | {'int8 speed-up':>13}")
    for r in mm:
        print(f"{r['shape']:<24} | {r['float32_ms']:>10.3f} | {r['int8_ms']:>8.3f} | "
              f"{r['int8_speedup']:>12.2f}x")

    gen = bench_generation(ref, device, args.prompt, args.new_tokens)
    print(f"\ngeneration, {gen['new_tokens']} new tokens after {gen['prompt']}: "
          f"{gen['tokens_per_s_cache']:.1f} tokens/s "
          f"with the KV cache, {gen['tokens_per_s_recompute']:.1f} without -> {gen['speedup']:.2f}x")

    batches = bench_batches(ref, device)
    print(f"\n{'batch':>5} | {'median ms':>9} | {'p90 ms':>8} | {'tokens/s':>9}  "
          "(forward of 64-token sequences)")
    for r in batches:
        print(f"{r['batch']:>5} | {r['median_ms']:>9.2f} | {r['p90_ms']:>8.2f} | {r['tokens_per_s']:>9.0f}")
    synchronize()
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"device": name, "models": models, "matmul": mm, "generation": gen,
                                         "batches": batches}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
