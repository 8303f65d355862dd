"""Benchmark of the distributed unit's reference solutions (not a unit test).

    python curriculum/12_distributed/benchmark.py [--ranks 2] [--steps 20] [--width 1024] [--json out.json]

Measures, with `--ranks` gloo processes on this machine (graders.notebook.run_distributed):
- the reference `ring_all_reduce` against gloo's own `dist.all_reduce` for 1 M float32
  elements: median time, and the bytes each rank sent;
- one data-parallel training step of an MLP (`--width`, 4 hidden layers): the reference
  hand DDP (`broadcast_parameters` once, `average_gradients` after backward: one
  all-reduce per parameter, after the whole backward) against torch's
  DistributedDataParallel with 1 MB buckets (the model is smaller than the default 25 MB),
  and with one bucket larger than the model (no overlap: the only all-reduce starts when
  backward has finished);
- the reference ShardedAdamW step (reduce-scatter of the gradients, AdamW on the shard,
  all-gather of the parameters) against torch.optim.AdamW (no communication), with the
  optimizer-state bytes of each and the bytes a rank sends per step against DDP's all-reduce
  of the same gradients (counted by the setup cell's `count_sent_bytes`).

On 2 CPU cores the "communication" is memory copies and loopback TCP done by the same cores
that compute the backward pass, so overlapping the two gains little or nothing: the figures
show what the mechanism costs, not what it buys on GPUs with NVLink. Every worker uses one
torch thread.

The reference code is not copied here: the setup cell and the answer cells of
`distributed.py` (the notebook's text form) are executed, solution markers dropped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from graders.authoring.benchmarking import load_reference, quiet_environment

quiet_environment()  # before torch and transformers load: some read it at import

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn as nn  # noqa: E402

from graders.notebook import run_distributed  # noqa: E402


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        dist.barrier()  # every rank starts together: the slowest one sets the pace anyway
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _bench_ring(rank, world_size, ref, numel, repeats):
    x = torch.randn(numel)
    ring = _median_seconds(lambda: ref["ring_all_reduce"](x.clone()), repeats)
    library = _median_seconds(lambda: dist.all_reduce(x.clone()), repeats)
    return {"ring_ms": ring * 1e3, "gloo_ms": library * 1e3, "bytes_sent": ref["ring_all_reduce"](x.clone())}


def _mlp(width: int) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(64, width), nn.ReLU()]
    for _ in range(3):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def _bench_ddp(rank, world_size, ref, width, steps, batch):
    torch.manual_seed(rank)
    x, y = torch.randn(batch, 64), torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    out = {}
    hand = _mlp(width)
    ref["broadcast_parameters"](hand)
    opt = torch.optim.SGD(hand.parameters(), lr=0.01)

    def hand_step():
        opt.zero_grad()
        loss_fn(hand(x), y).backward()
        ref["average_gradients"](hand)
        opt.step()

    out["hand_ms"] = _median_seconds(hand_step, steps) * 1e3
    model_mb = sum(p.numel() * 4 for p in hand.parameters()) / 2**20
    for label, cap in (("torch_ddp_ms", 1.0), ("torch_ddp_one_bucket_ms", 4 * model_mb + 1)):
        model = nn.parallel.DistributedDataParallel(_mlp(width), bucket_cap_mb=cap)
        opt_ddp = torch.optim.SGD(model.parameters(), lr=0.01)

        def ddp_step(model=model, opt_ddp=opt_ddp):
            opt_ddp.zero_grad()
            loss_fn(model(x), y).backward()
            opt_ddp.step()

        ddp_step()  # the first step builds DDP's buckets
        out[label] = _median_seconds(ddp_step, steps) * 1e3

    def no_comm_step():
        opt.zero_grad()
        loss_fn(hand(x), y).backward()
        opt.step()

    out["compute_only_ms"] = _median_seconds(no_comm_step, steps) * 1e3
    out["model_mb"] = model_mb
    return out


def _bench_zero(rank, world_size, ref, width, steps):
    params = list(_mlp(width).parameters())
    for p in params:
        p.grad = torch.full_like(p, 0.01)
    sharded = ref["ShardedAdamW"](params, lr=1e-3)
    zero_ms = _median_seconds(sharded.step, steps) * 1e3
    full = torch.optim.AdamW(params, lr=1e-3)
    adamw_ms = _median_seconds(full.step, steps) * 1e3
    full_bytes = sum(
        t.numel() * t.element_size() for s in full.state.values() for t in s.values() if t.dim() > 0
    )
    zero_bytes = sum(t.numel() * t.element_size() for t in sharded.state.values() if torch.is_tensor(t))
    with ref["count_sent_bytes"]() as zero_sent:
        sharded.step()
    with ref["count_sent_bytes"]() as ddp_sent:
        dist.all_reduce(torch.cat([p.grad.reshape(-1) for p in params]))
    return {
        "zero1_sent_bytes": zero_sent["bytes"],
        "ddp_sent_bytes": ddp_sent["bytes"],
        "zero1_ms": zero_ms,
        "adamw_ms": adamw_ms,
        "zero1_state_bytes": zero_bytes,
        "adamw_state_bytes": full_bytes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--numel", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ref = load_reference(__file__)
    n = args.ranks
    results = {
        "ranks": n,
        "ring": run_distributed(_bench_ring, n, ref, args.numel, args.steps, timeout=600),
        "ddp": run_distributed(_bench_ddp, n, ref, args.width, args.steps, args.batch, timeout=600),
        "zero": run_distributed(_bench_zero, n, ref, args.width, args.steps, timeout=600),
    }
    ring, ddp, zero = results["ring"][0], results["ddp"][0], results["zero"][0]
    print(f"{n} gloo processes, 1 torch thread each (rank 0's medians of {args.steps})")
    ring_bytes = [r["bytes_sent"] for r in results["ring"]]
    print(
        f"all-reduce, {args.numel:,} float32: ring {ring['ring_ms']:.1f} ms, gloo {ring['gloo_ms']:.1f} ms "
        f"ring bytes sent per rank {ring_bytes} "
        f"(2 (N-1)/N x {4 * args.numel:,} = {2 * (n - 1) * 4 * args.numel // n:,})"
    )
    print(
        f"training step, MLP of {ddp['model_mb']:.1f} MB: compute only {ddp['compute_only_ms']:.1f} ms, "
        f"hand DDP {ddp['hand_ms']:.1f} ms, torch DDP (1 MB buckets) {ddp['torch_ddp_ms']:.1f} ms, "
        f"torch DDP one bucket (no overlap) {ddp['torch_ddp_one_bucket_ms']:.1f} ms"
    )
    print(
        f"optimizer step: ShardedAdamW {zero['zero1_ms']:.2f} ms, {zero['zero1_state_bytes']:,} state bytes "
        f"per rank; AdamW {zero['adamw_ms']:.2f} ms with {zero['adamw_state_bytes']:,}; bytes sent per step "
        f"{zero['zero1_sent_bytes']:,} (DDP's all-reduce: {zero['ddp_sent_bytes']:,})"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
