"""Benchmark of the pre-training unit's reference solutions (not a unit test).

    python curriculum/04_pretraining/benchmark.py [--steps 20] [--threads 2] [--json out.json]

Measures, in one run and on the default device (CUDA when present, else CPU):
- the machine's matrix-multiplication peak: the best FLOP/s of a large float32 product
  (2048^3 on a CPU, 8192^3 on a GPU), the denominator of MFU;
- the reference training loop (`train`: your `CausalLM`, `MyAdamW`, `warmup_cosine`,
  `clip_grad_norm`, as in the notebook's section 6) on the notebook's small config and on
  the bundled tiny Llama's config: tokens per second (wall and CPU time), the model FLOPs
  per token by `flops_per_token` (6N + 12 L T H d), the achieved FLOP/s and the model FLOPs
  utilisation, MFU = achieved / peak; also per second of CPU time (tokens and FLOPs per CPU-second
  against the product's FLOPs per CPU-second), which a busy shared machine does not distort.

The reference code is not copied here: it is read from the cells of `pretraining.py` (the
notebook's text form), solution markers dropped, and executed. Absolute figures for notes,
never graded: they depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from graders.authoring.benchmarking import load_reference, quiet_environment

quiet_environment()  # before torch and transformers load: some read it at import

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from graders.notebook import load_corpus, load_model, load_tokenizer, synchronize  # noqa: E402

# The cells the training loop needs (locked helpers and reference answers), in notebook order.
CELLS = ("attention_layer", "decoder", "counts", "adamw", "schedule", "clip", "loop_helpers", "loop")


def matmul_peak(device: torch.device, repeats: int = 5) -> tuple[float, float]:
    """Best FLOP/s of a large float32 matrix product on `device`: per second of wall time, and per
    second of CPU time (all threads together; what one idle core gives, whatever else runs)."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    synchronize()
    best, best_cpu = math.inf, math.inf
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        a @ b
        synchronize()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return 2 * n**3 / best, 2 * n**3 / max(best_cpu, 1e-9)


def encode(tokenizer, texts: list[str]) -> torch.Tensor:
    ids: list[int] = []
    for row in tokenizer(texts, verbose=False)["input_ids"]:
        ids += row + [tokenizer.eos_token_id]
    return torch.tensor(ids, dtype=torch.long)


def bench_training(ref: dict, config, tokens: torch.Tensor, steps: int, batch_size: int, seq_len: int,
                   device: torch.device) -> dict:
    torch.manual_seed(0)
    model = ref["CausalLM"](config).to(device)
    opt = ref["MyAdamW"](ref["decay_groups"](model, 0.1), lr=3e-3, betas=(0.9, 0.95))
    sched = ref["warmup_cosine"](opt, 2, steps + 3, 0.1)
    ref["train"](model, opt, sched, tokens, 3, batch_size, seq_len)  # warm-up steps, not timed
    synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    log = ref["train"](model, opt, sched, tokens, steps, batch_size, seq_len)
    synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n_tokens = steps * batch_size * seq_len
    per_token = ref["flops_per_token"](config, seq_len)
    return {
        "parameters": ref["count_params"](config),
        "hidden_size": config.hidden_size,
        "layers": config.num_hidden_layers,
        "batch": f"{batch_size} x {seq_len}",
        "steps": steps,
        "tokens_per_s": n_tokens / wall,
        "tokens_per_cpu_s": n_tokens / cpu,
        "flops_per_token": per_token,
        "achieved_flops": n_tokens * per_token / wall,
        "last_loss": log[-1]["loss"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per configuration")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {threads} threads"
    ref = load_reference(__file__, {"math": math, "torch": torch, "nn": nn, "F": F}, only=CELLS)
    from transformers import LlamaConfig

    tok = load_tokenizer()
    tokens = encode(tok, load_corpus("train")).to(device)
    small = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=344, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                        rms_norm_eps=1e-5, tie_word_embeddings=True)
    bundled = load_model().config
    started = time.perf_counter()
    peak, peak_cpu = matmul_peak(device)
    print(f"pre-training benchmark: torch {torch.__version__} on {name}; float32")
    print(f"matmul peak (best large float32 product): {peak / 1e9:,.1f} GFLOP/s, "
          f"{peak_cpu / 1e9:,.1f} GFLOP per CPU-s")
    rows = []
    configs = [("notebook's small config", small, 8, 64), ("bundled tiny Llama config", bundled, 8, 256)]
    for label, cfg, batch, seq in configs:
        row = bench_training(ref, cfg, tokens, args.steps, batch, seq, device)
        row["config"] = label
        row["mfu"] = row["achieved_flops"] / peak
        # On a CPU shared with other jobs, wall-clock MFU mixes in their load; per CPU-second it does not.
        row["mfu_cpu_time"] = row["tokens_per_cpu_s"] * row["flops_per_token"] / peak_cpu
        rows.append(row)
    print()
    print(f"{'config':>26} | {'params':>9} | {'batch':>8} | {'tokens/s':>9} | {'tokens/CPU-s':>12} | "
          f"{'MFLOP/token':>11} | {'GFLOP/s':>8} | {'MFU':>6} | {'MFU/CPU-s':>9}")
    for r in rows:
        print(f"{r['config']:>26} | {r['parameters']:>9,} | {r['batch']:>8} | {r['tokens_per_s']:>9,.0f} | "
              f"{r['tokens_per_cpu_s']:>12,.0f} | {r['flops_per_token'] / 1e6:>11.2f} | "
              f"{r['achieved_flops'] / 1e9:>8.2f} | {r['mfu']:>6.1%} | {r['mfu_cpu_time']:>9.1%}")
    print(f"\n({time.perf_counter() - started:.0f} s; one run on a possibly shared machine: the CPU-time "
          "column is what an idle machine would give per thread)")
    if args.json:
        out = {"device": name, "matmul_peak_flops": peak, "matmul_peak_flops_per_cpu_s": peak_cpu,
               "rows": rows}
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
