"""Benchmark of the mixture-of-experts unit's reference layer (not a unit test).

    python curriculum/11_moe/benchmark.py [--tokens 4096] [--hidden 256] [--intermediate 512]
        [--experts 8,16,64] [--k 2] [--device cpu] [--threads 1] [--json out.json]

Tokens per second of one MoE layer's routed experts (forward only, no autograd), routed
by the reference Mixtral router, computed three ways on the same weights:
- the reference `moe_experts` (sort by expert, one matmul pair per expert, index_add back);
- transformers' `MixtralExperts` (the eager loop: one `torch.where` over the routing per
  expert that received tokens);
- `all_experts` (every expert on every token, weighted by a dense routing matrix: E/k
  times the FLOPs).
Also the FLOPs of each, counted by FlopCounterMode. Medians of `--repeats` runs after a
warm-up; on CUDA every run is synchronised. The reference code is not copied here: the
setup and answer cells of `moe.py` (the notebook's text form) are executed.
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
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402


def _median_seconds(fn, repeats: int, device: str) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def bench(
    ref: dict, tokens: int, hidden: int, intermediate: int, experts: int, k: int, device: str, repeats: int
):
    block = ref["mixtral_block"](
        hidden=hidden, intermediate=intermediate, experts=experts, k=k, seed=0, device=device
    )
    x = torch.randn(tokens, hidden, device=device)
    weights, chosen = ref["route_topk_softmax"](x @ block.gate.weight.T, k)
    params = (block.experts.gate_up_proj.detach(), block.experts.down_proj.detach())
    ways = {
        "reference (sort + index_add)": lambda: ref["moe_experts"](x, weights, chosen, *params),
        "transformers MixtralExperts": lambda: block.experts(x, chosen, weights),
        "all experts": lambda: ref["all_experts"](x, weights, chosen, *params),
    }
    out = {}
    with torch.no_grad():
        for name, fn in ways.items():
            seconds = _median_seconds(fn, repeats, device)
            out[name] = {"tokens_per_s": tokens / seconds, "ms": seconds * 1e3, "gflops": _flops(fn) / 1e9}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--intermediate", type=int, default=512)
    parser.add_argument("--experts", default="8,16,64", help="comma-separated numbers of experts")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ref = load_reference(__file__)
    results = {}
    print(
        f"{args.tokens} tokens, hidden {args.hidden}, intermediate {args.intermediate}, top-{args.k}, "
        f"{args.device}, {args.threads} thread(s); medians of {args.repeats}"
    )
    for e in (int(v) for v in args.experts.split(",")):
        results[e] = bench(
            ref, args.tokens, args.hidden, args.intermediate, e, args.k, args.device, args.repeats
        )
        for name, r in results[e].items():
            print(
                f"E={e:3d}  {name:30s} {r['tokens_per_s']:12,.0f} tokens/s  {r['ms']:9.2f} ms  "
                f"{r['gflops']:8.3f} GFLOP"
            )
    if args.json:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
