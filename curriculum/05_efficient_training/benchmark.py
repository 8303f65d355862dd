"""Benchmark of the efficient-training unit's reference solutions (not a unit test).

    python curriculum/05_efficient_training/benchmark.py [--layers 8] [--batch 2] [--seq 128]
                                                         [--repeats 5] [--threads N] [--json out.json]

Measures, in one run and on the default device (CUDA when present, else CPU), one training
step (forward, loss, backward, AdamW step, zero_grad) of a randomly initialised Llama with the
bundled tiny Llama's shapes and `--layers` decoder layers, under each recipe:
- fp32;
- bf16 autocast (fp32 master weights, the forward pass and the loss under autocast);
- each of them with activation checkpointing (the reference `checkpoint_layers`);
- on CUDA only, fp16 autocast with `torch.amp.GradScaler` through the reference
  `scaled_step` (fp16 on the CPU is emulated and says nothing about real hardware).

For each: the median step time over `--repeats` runs taken round-robin across the recipes in
one run (so that a busy machine slows all of them alike), the ratio to fp32, the peak tensor
memory of a step with the gradients already allocated (`graders.notebook.peak_memory_torch`:
the profiler's memory events on the CPU, the caching allocator on CUDA), the final loss of a
few steps against fp32's, and the matrix-product FLOPs of a step (`FlopCounterMode`).

The reference code is not copied here: it is read from the answer cells of
`efficient_training.py` (the notebook's text form), solution markers dropped, and executed.
Expectation: on a CPU without bf16 matrix units, bf16 autocast is *slower* than fp32 (the
casts cost and the bf16 kernels are not faster) while its activation memory is about a third
lower; on a GPU with tensor cores bf16 and fp16 steps are several times faster. Checkpointing
lowers the peak by a factor that grows with depth and costs the replay's FLOPs and time.
Times are reported, never asserted.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

from graders.authoring.benchmarking import load_reference, quiet_environment

quiet_environment()  # before torch and transformers load: some read it at import
warnings.filterwarnings("ignore")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.checkpoint import checkpoint  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from graders.notebook import load_model, model_source, peak_memory_torch, synchronize  # noqa: E402


def reference() -> dict:
    """The reference answer cells of `efficient_training.py`, executed; their names."""
    names = {"functools": functools, "math": math, "torch": torch, "nn": nn, "checkpoint": checkpoint,
             "TorchDispatchMode": TorchDispatchMode, "LlamaConfig": LlamaConfig,
             "LlamaForCausalLM": LlamaForCausalLM, "peak_memory_torch": peak_memory_torch}
    return load_reference(__file__, names, kinds=("answer",))


def recipes(device: torch.device) -> list[tuple[str, torch.dtype | None, bool]]:
    """(label, autocast dtype or None, checkpointing)."""
    out = [("fp32", None, False), ("fp32 + ckpt", None, True),
           ("bf16 autocast", torch.bfloat16, False), ("bf16 autocast + ckpt", torch.bfloat16, True)]
    if device.type == "cuda":
        out += [("fp16 autocast + GradScaler", torch.float16, False),
                ("fp16 autocast + GradScaler + ckpt", torch.float16, True)]
    return out


class Trainer:
    """One model, its AdamW, and a step function for one recipe."""

    def __init__(self, ref: dict, config: LlamaConfig, dtype: torch.dtype | None, ckpt: bool,
                 ids: torch.Tensor):
        torch.manual_seed(0)
        self.model = LlamaForCausalLM(config).to(ids.device).train()
        if ckpt:
            ref["checkpoint_layers"](self.model)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.dtype, self.ids, self.ref = dtype, ids, ref
        self.scaler = torch.amp.GradScaler(ids.device.type) if dtype == torch.float16 else None

    def loss(self) -> torch.Tensor:
        dtype = self.dtype or torch.bfloat16
        with torch.autocast(self.ids.device.type, dtype=dtype, enabled=self.dtype is not None):
            return self.model(input_ids=self.ids, labels=self.ids, use_cache=False).loss

    def step(self) -> float:
        if self.scaler is not None:
            loss = self.loss()
            self.ref["scaled_step"](loss, self.model, self.opt, self.scaler, max_norm=1.0)
        else:
            loss = self.loss()
            loss.backward()
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        synchronize(self.ids.device)
        return loss.item()

    def backward_peak(self) -> int:
        """Peak bytes of forward + backward with the gradients already allocated."""
        self.loss().backward()
        self.model.zero_grad(set_to_none=False)
        synchronize(self.ids.device)
        peak = peak_memory_torch(lambda: self.loss().backward(), device=self.ids.device)[1]
        self.model.zero_grad(set_to_none=True)
        return peak

    def matmul_flops(self) -> int:
        with FlopCounterMode(display=False) as counter:
            self.loss().backward()
        self.model.zero_grad(set_to_none=True)
        counts = counter.get_flop_counts()["Global"]
        matmuls = (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.bmm)
        return sum(v for k, v in counts.items() if k in matmuls)


def bench(ref: dict, layers: int, batch: int, seq: int, repeats: int, steps: int,
          device: torch.device) -> list[dict]:
    base = load_model().config
    config = LlamaConfig(**{**base.to_dict(), "num_hidden_layers": layers})
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, config.vocab_size, (batch, seq), generator=gen).to(device)
    rows = []
    trainers = {}
    for label, dtype, ckpt in recipes(device):
        tr = Trainer(ref, config, dtype, ckpt, ids)
        # Memory and FLOPs on a fresh model, before any optimizer state exists.
        peak = tr.backward_peak()
        flops = tr.matmul_flops()
        trainers[label] = tr
        rows.append({"recipe": label, "autocast": str(dtype).replace("torch.", "") if dtype else None,
                     "checkpointing": ckpt, "peak_bytes": peak, "matmul_flops": flops})
    # Losses of the first `steps` steps (the same data each step), then timed steps taken
    # round-robin so that a shared machine's load falls on every recipe alike.
    for row in rows:
        tr = trainers[row["recipe"]]
        row["losses"] = [tr.step() for _ in range(steps)]
    times: dict[str, list[float]] = {row["recipe"]: [] for row in rows}
    for _ in range(repeats):
        for row in rows:
            started = time.perf_counter()
            trainers[row["recipe"]].step()
            times[row["recipe"]].append(time.perf_counter() - started)
    fp32 = rows[0]
    for row in rows:
        row["step_s"] = statistics.median(times[row["recipe"]])
        row["time_vs_fp32"] = row["step_s"] / statistics.median(times[fp32["recipe"]])
        row["peak_vs_fp32"] = row["peak_bytes"] / fp32["peak_bytes"]
        row["flops_vs_fp32"] = row["matmul_flops"] / fp32["matmul_flops"]
        row["final_loss_minus_fp32"] = row["losses"][-1] - fp32["losses"][-1]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=8, help="decoder layers (tiny Llama shapes otherwise)")
    parser.add_argument("--batch", type=int, default=2, help="sequences per batch")
    parser.add_argument("--seq", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per recipe")
    parser.add_argument("--steps", type=int, default=4, help="training steps before timing (losses reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    name = (torch.cuda.get_device_name() if device.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads")
    ref = reference()
    print(f"efficient-training benchmark: torch {torch.__version__} on {name}; "
          f"shapes of {model_source()} with {args.layers} layers, random weights; "
          f"batch {args.batch} x {args.seq} tokens; AdamW")
    start = time.perf_counter()
    rows = bench(ref, args.layers, args.batch, args.seq, args.repeats, args.steps, device)
    print()
    print(f"{'recipe':>34} | {'step ms':>8} | {'vs fp32':>7} | {'peak MiB':>8} | {'vs fp32':>7} | "
          f"{'matmul GFLOP':>12} | {'loss after ' + str(args.steps):>14} | {'- fp32':>8}")
    for r in rows:
        print(f"{r['recipe']:>34} | {1e3 * r['step_s']:>8.1f} | {r['time_vs_fp32']:>6.2f}x | "
              f"{r['peak_bytes'] / 2**20:>8.1f} | {r['peak_vs_fp32']:>6.2f}x | "
              f"{r['matmul_flops'] / 1e9:>12.2f} | "
              f"{r['losses'][-1]:>14.4f} | {r['final_loss_minus_fp32']:>+8.4f}")
    print(f"\n({time.perf_counter() - start:.0f} s; step times are one run on a possibly shared machine: "
          "compare the ratios, not the absolute numbers)")
    if args.json:
        result = {"device": name, "model": model_source(), "layers": args.layers, "batch": args.batch,
                  "seq": args.seq, "rows": rows}
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
