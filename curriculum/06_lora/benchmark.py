"""Benchmark of the LoRA unit's reference solutions (not a unit test).

    python curriculum/06_lora/benchmark.py [--ranks 1 8 64] [--batch 16] [--repeats 7] [--json out.json]

Measures, in one run and on the default device (CUDA when present, else CPU), on the
bundled tiny Llama (or the model named by LLMLABS_MODEL):
- for full fine-tuning and for LoRA on all linear layers at each rank: the time of one
  AdamW training step (forward, answer-only loss, backward, step, zero_grad) on a fixed
  batch of the docstring task, as a ratio to full fine-tuning from interleaved runs
  (`graders.notebook.measure.speedup`), plus the median absolute time;
- the bytes of parameters, of gradients (after a backward pass) and of optimizer state
  (`optimizer_state_bytes` after a step): deterministic counts;
- the same byte counts for a 7B Llama (Llama-2-7B shapes), from the closed-form counts
  of the unit (no weights loaded).

The reference code is not copied here: it is read from the answer cells of `lora.py`
(the notebook's text form), solution markers dropped, and executed. Expectation (see the
unit's issue): trainable parameters and optimizer state shrink by the same factor, about
1 % or less on a 7B model (more on the tiny model, whose matrices are narrow); the step
time ratio is reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

from graders.authoring.benchmarking import load_reference, quiet_environment

quiet_environment()  # before torch and transformers load: some read it at import
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from graders.notebook import (  # noqa: E402
    count_parameters,
    load_model,
    load_task,
    load_tokenizer,
    model_source,
    speedup,
    synchronize,
)


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def bench(ref: dict, ranks: list[int], device: torch.device, batch_size: int, repeats: int) -> list[dict]:
    tok = load_tokenizer()
    examples = load_task("train")[:batch_size]
    batch = ref["sft_batch"](tok, examples, device=device)
    configs = [("full", None)] + [("lora", r) for r in ranks]
    models, optimizers = {}, {}
    for kind, r in configs:
        torch.manual_seed(0)
        model = load_model(device=device)
        if kind == "lora":
            ref["inject_lora"](model, "all-linear", r=r, alpha=2.0 * r)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        lr = 1e-3 if kind == "full" else 1e-2
        models[(kind, r)] = model
        optimizers[(kind, r)] = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)

    def step(key):
        def run():
            model, opt = models[key], optimizers[key]
            ref["answer_loss"](model, batch).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return run

    rows = []
    full_key = ("full", None)
    for key in [full_key] + [k for k in models if k != full_key]:
        model, opt = models[key], optimizers[key]
        # One backward pass to measure the gradients, then one step for the optimizer state.
        ref["answer_loss"](model, batch).backward()
        grad_bytes = _bytes(p.grad for p in model.parameters() if p.grad is not None)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ratio = speedup(step(key), step(full_key), repeats=repeats, warmup=1) if key != full_key else None
        timing = ratio.fast.median if ratio else None
        rows.append({
            "kind": key[0],
            "rank": key[1],
            "trainable": count_parameters(model, trainable_only=True),
            "parameters": count_parameters(model),
            "param_bytes": _bytes(model.parameters()),
            "grad_bytes": grad_bytes,
            "optimizer_bytes": ref["optimizer_state_bytes"](opt),
            "step_ms": None if timing is None else timing * 1e3,
            "full_step_ms": None if ratio is None else ratio.slow.median * 1e3,
            "speedup_vs_full": None if ratio is None else ratio.ratio,
        })
    return rows


def projection_7b(ref: dict) -> list[dict]:
    from transformers import LlamaConfig

    cfg = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False)
    total = ref["llama_param_count"](cfg)
    out = [{"setting": "full fine-tuning", "trainable": total}]
    for targets, r in [(["q_proj", "v_proj"], 8), ("all-linear", 8), ("all-linear", 64)]:
        out.append({"setting": f"LoRA r={r} on {'q, v' if targets != 'all-linear' else 'all linear'}",
                    "trainable": ref["lora_param_count"](cfg, targets, r)})
    for row in out:
        n = row["trainable"]
        row.update(total=total, fraction=n / total, weights_bytes=4 * total + (0 if n == total else 4 * n),
                   grad_bytes=4 * n, optimizer_bytes=8 * n)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 8, 64],
                        help="LoRA ranks (all linear layers)")
    parser.add_argument("--batch", type=int, default=16, help="examples per training batch")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved timed steps per configuration")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    name = (torch.cuda.get_device_name() if device.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads")
    ref = load_reference(__file__, {"math": math, "torch": torch, "nn": nn, "F": F}, kinds=("answer",))
    print(f"LoRA benchmark: torch {torch.__version__} on {name}; model {model_source()}; fp32, AdamW, "
          f"batch of {args.batch} docstring-task examples, LoRA on all linear layers (alpha = 2r)")
    start = time.perf_counter()
    rows = bench(ref, args.ranks, device, args.batch, args.repeats)
    full = rows[0]
    kib = 2**10
    print()
    print(f"{'setting':>16} | {'trainable':>10} | {'of all':>7} | {'params KiB':>10} | {'grads KiB':>9} | "
          f"{'optimizer KiB':>13} | {'p+g+opt KiB':>11} | {'step ms':>8} | {'time vs full':>12}")
    for r in rows:
        label = "full fine-tune" if r["kind"] == "full" else f"LoRA r={r['rank']}"
        total = r["param_bytes"] + r["grad_bytes"] + r["optimizer_bytes"]
        step = (f"{r['step_ms']:.1f}" if r["step_ms"] is not None
                else f"{rows[1]['full_step_ms']:.1f}" if len(rows) > 1 else "-")
        rel = f"{1 / r['speedup_vs_full']:.2f}x" if r["speedup_vs_full"] else "1.00x"
        print(f"{label:>16} | {r['trainable']:>10,} | {100 * r['trainable'] / r['parameters']:>6.2f}% | "
              f"{r['param_bytes'] / kib:>10,.0f} | {r['grad_bytes'] / kib:>9,.0f} | "
              f"{r['optimizer_bytes'] / kib:>13,.0f} | "
              f"{total / kib:>11,.0f} | {step:>8} | {rel:>12}")
    for r in rows[1:]:
        print(f"LoRA r={r['rank']}: trainable {r['trainable'] / full['trainable']:.2%} of full, "
              "optimizer state "
              f"{r['optimizer_bytes'] / full['optimizer_bytes']:.2%} of full")
    proj = projection_7b(ref)
    gib = 2**30
    print("\n7B Llama (Llama-2-7B shapes), fp32, AdamW; closed-form counts, nothing loaded:")
    print(f"{'setting':>26} | {'trainable':>13} | {'of all':>7} | {'weights GiB':>11} | {'grads GiB':>9} | "
          f"{'optimizer GiB':>13}")
    for p in proj:
        print(f"{p['setting']:>26} | {p['trainable']:>13,} | {100 * p['fraction']:>6.3f}% | "
              f"{p['weights_bytes'] / gib:>11.2f} | "
              f"{p['grad_bytes'] / gib:>9.3f} | {p['optimizer_bytes'] / gib:>13.3f}")
    print(f"\n({time.perf_counter() - start:.0f} s; step times are one run on a possibly shared machine: "
          "compare the ratios, not the absolute numbers)")
    synchronize()
    if args.json:
        args.json.write_text(json.dumps({"device": name, "model": model_source(), "rows": rows,
                                         "llama_7b": proj}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
