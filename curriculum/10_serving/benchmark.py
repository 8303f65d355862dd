"""Benchmark of the serving unit's reference solutions (not a unit test).

    python curriculum/10_serving/benchmark.py [--threads 1] [--requests 40] [--json out.json]

Measures, in one run and on the default device (CUDA when present, else CPU), with the bundled
tiny Llama and the unit's own engine (`run_model` over a packed batch):
- static against continuous batching on the unit's scripted trace (`TRACE`, batches of 4) and on a
  longer random trace (batches of 8): output tokens per second of each, timed interleaved
  (`graders.notebook.speedup`), with the token positions fed and wasted by each policy;
- greedy speculative decoding (the layer-skipped draft, gamma = 2 and 4) against greedy decoding with
  the target alone on the same engine (gamma = 0): tokens per second and the acceptance rate;
- the load generator: capacity (every request at once), then Poisson arrivals at fractions of it,
  TTFT/TPOT percentiles, and the highest rate whose p90 TTFT stays within 4x a lone request's;
- the KV memory of chat-like request lengths, paged in blocks of 16 against preallocated to 2,048
  tokens, for Llama-2-7B in float16;
- prefix caching on the shared-system-prompt trace (`PREFIX_TRACE`, blocks of 4): prompt tokens
  computed with and without it, and the time of the whole trace, timed interleaved.

On a CPU shared with other busy processes, two or more torch threads can wait on each other and
turn timings erratic; `--threads 1` gives repeatable figures there.

The reference code is not copied here: the setup cells and the answer cells of `serving.py` (the
notebook's text form) are executed, solution markers dropped.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from graders.authoring.benchmarking import load_reference, quiet_environment

quiet_environment()  # before torch and transformers load: some read it at import

import numpy as np  # noqa: E402
import torch  # noqa: E402

from graders.notebook import speedup, synchronize  # noqa: E402


def random_trace(ref: dict, n: int, seed: int = 0) -> list[tuple]:
    """n requests arriving one per engine step, prompts of 4-32 tokens, answers mostly short with a
    few long ones (as in chat traffic)."""
    rng = random.Random(seed)
    return [
        (
            i,
            i,
            ref["prompt_at"](97 * i, rng.randint(4, 32)),
            rng.choice([2, 3, 4, 6, 8, 12]) if rng.random() < 0.8 else rng.randint(24, 48),
        )
        for i in range(n)
    ]


def bench_batching(ref: dict, trace: list[tuple], max_batch: int, repeats: int = 3) -> dict:
    model, run_trace, cache = ref["model"], ref["run_trace"], ref["contiguous_cache"]
    counts = {}
    for label, cls in (("static", ref["StaticBatcher"]), ("continuous", ref["ContinuousBatcher"])):
        batcher = cls(model, cache(), max_batch)
        _, timeline = run_trace(batcher, trace)
        counts[label] = {
            "steps": len(timeline),
            "positions_fed": batcher.tokens_processed,
            "positions_wasted": batcher.tokens_wasted,
        }
    r = speedup(
        lambda: run_trace(ref["ContinuousBatcher"](model, cache(), max_batch), trace),
        lambda: run_trace(ref["StaticBatcher"](model, cache(), max_batch), trace),
        repeats=repeats,
        warmup=1,
    )
    generated = sum(request[3] for request in trace)
    return {
        "requests": len(trace),
        "max_batch": max_batch,
        "output_tokens": generated,
        "static_tokens_per_s": generated / r.slow.median,
        "continuous_tokens_per_s": generated / r.fast.median,
        "ratio": r.ratio,
        **{f"{k}_{key}": v for k, c in counts.items() for key, v in c.items()},
    }


def bench_speculative(ref: dict, new_tokens: int = 32, repeats: int = 3) -> list[dict]:
    model, spec = ref["model"], ref["speculative_generate"]
    prompts = [ref["prompt_at"](start, 16) for start in (1000, 2000, 3000)]

    def run(gamma):
        stats = {}
        for p in prompts:
            for key, value in spec(model, p, new_tokens, gamma)[1].items():
                stats[key] = stats.get(key, 0) + value
        return stats

    rows = []
    for gamma in (2, 4):
        stats = run(gamma)
        r = speedup(lambda gamma=gamma: run(gamma), lambda: run(0), repeats=repeats, warmup=1)
        judged = stats["accepted"] + stats["rejected"]
        rows.append(
            {
                "gamma": gamma,
                "greedy_tokens_per_s": len(prompts) * new_tokens / r.slow.median,
                "speculative_tokens_per_s": len(prompts) * new_tokens / r.fast.median,
                "speedup": r.ratio,
                "acceptance_rate": stats["accepted"] / judged if judged else float("nan"),
                "tokens_per_target_call": len(prompts) * new_tokens / stats["target_calls"],
            }
        )
    return rows


def bench_load(ref: dict, n_requests: int) -> dict:
    model, run_load, summarize = ref["model"], ref["run_load"], ref["summarize"]
    requests = [(ref["prompt_at"](60 * i, 8 + (7 * i) % 25), 4 + (5 * i) % 21) for i in range(n_requests)]

    def engine():
        return ref["ContinuousBatcher"](model, ref["contiguous_cache"](), max_batch=8)

    alone = summarize(run_load(engine(), requests[:1], [0.0]))
    capacity = summarize(run_load(engine(), requests, [0.0] * n_requests))["request_rate"]
    results = {}
    for fraction in (0.2, 0.4, 0.6, 0.8, 1.0, 1.3):
        rate = fraction * capacity
        results[rate] = summarize(
            run_load(engine(), requests, ref["poisson_arrivals"](rate, n_requests, seed=1))
        )
    slo = {"ttft": {"p90": 4 * alone["ttft"]["p50"]}}
    return {
        "capacity_requests_per_s": capacity,
        "slo_p90_ttft_s": slo["ttft"]["p90"],
        "slo_rate": ref["max_rate_within_slo"](results, slo),
        "sweep": [
            {
                "rate": rate,
                "throughput": s["throughput"],
                "ttft_p50": s["ttft"]["p50"],
                "ttft_p90": s["ttft"]["p90"],
                "ttft_p99": s["ttft"]["p99"],
                "tpot_p50": s["tpot"]["p50"],
            }
            for rate, s in sorted(results.items())
        ],
    }


def bench_memory(ref: dict) -> dict:
    lengths = np.clip(np.random.default_rng(0).lognormal(mean=5.9, sigma=0.8, size=2000).round(), 1, 2048)
    llama_7b = ref["LlamaConfig"](
        hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32
    )
    mem = ref["kv_memory"]([int(n) for n in lengths], 2048, 16, ref["kv_bytes_per_token"](llama_7b, 2))
    return {
        "requests": len(lengths),
        "mean_length": float(lengths.mean()),
        "waste_paged_16": 1 - mem["used"] / mem["paged"],
        "waste_preallocated": 1 - mem["used"] / mem["preallocated"],
    }


def bench_prefix(ref: dict, repeats: int = 3) -> dict:
    serve, trace = ref["serve_trace"], ref["PREFIX_TRACE"]
    plain = serve(ref["paged_cache"](num_blocks=256, block_size=4), trace)
    cached = serve(ref["prefix_cache"](num_blocks=256, block_size=4), trace)
    r = speedup(
        lambda: serve(ref["prefix_cache"](num_blocks=256, block_size=4), trace),
        lambda: serve(ref["paged_cache"](num_blocks=256, block_size=4), trace),
        repeats=repeats,
        warmup=1,
    )
    return {
        "requests": len(trace),
        "prompt_tokens": sum(len(request[2]) for request in trace),
        "prefill_without": sum(plain["prefill"].values()),
        "prefill_with": sum(cached["prefill"].values()),
        "same_outputs": plain["outputs"] == cached["outputs"],
        "seconds_without": r.slow.median,
        "seconds_with": r.fast.median,
        "ratio": r.ratio,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="requests in the load sweep")
    parser.add_argument("--trace", type=int, default=48, help="requests in the random batching trace")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)

    ref = load_reference(__file__)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = ref["device"]
    name = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"serving benchmark: torch {torch.__version__} on {name}; model {ref['model_source']()}")
    start = time.perf_counter()

    batching = [bench_batching(ref, ref["TRACE"], 4), bench_batching(ref, random_trace(ref, args.trace), 8)]
    print(
        f"\n{'trace':<16} | {'batch':>5} | {'static tok/s':>12} | {'contin. tok/s':>13} | {'ratio':>6} | "
        f"{'steps s/c':>9} | {'wasted (static)':>15}"
    )
    for label, r in zip(("TRACE (16)", f"random ({args.trace})"), batching, strict=True):
        print(
            f"{label:<16} | {r['max_batch']:>5} | {r['static_tokens_per_s']:>12.0f} | "
            f"{r['continuous_tokens_per_s']:>13.0f} | {r['ratio']:>5.2f}x | "
            f"{r['static_steps']:>4}/{r['continuous_steps']:<4} | "
            f"{r['static_positions_wasted']:>5} of {r['static_positions_fed']:<6}"
        )

    spec = bench_speculative(ref)
    print(
        f"\n{'gamma':>5} | {'greedy tok/s':>12} | {'spec. tok/s':>11} | {'speed-up':>8} | {'accept':>6} | "
        f"{'tok/target call':>15}"
    )
    for r in spec:
        print(
            f"{r['gamma']:>5} | {r['greedy_tokens_per_s']:>12.0f} | {r['speculative_tokens_per_s']:>11.0f} | "
            f"{r['speedup']:>7.2f}x | {r['acceptance_rate']:>6.2f} | {r['tokens_per_target_call']:>15.2f}"
        )

    load = bench_load(ref, args.requests)
    print(
        f"\nload: capacity {load['capacity_requests_per_s']:.1f} requests/s; SLO p90 TTFT <= "
        f"{load['slo_p90_ttft_s'] * 1e3:.1f} ms"
    )
    print(f"{'rate /s':>8} | {'tokens/s':>8} | {'TTFT p50/p90/p99 ms':>22} | {'TPOT p50 ms':>11}")
    for r in load["sweep"]:
        print(
            f"{r['rate']:>8.1f} | {r['throughput']:>8.0f} | "
            f"{r['ttft_p50'] * 1e3:>6.1f} / {r['ttft_p90'] * 1e3:>6.1f} / "
            f"{r['ttft_p99'] * 1e3:>6.1f} | {r['tpot_p50'] * 1e3:>11.1f}"
        )
    slo_rate = load["slo_rate"]
    print(f"SLO-limited rate: {'none' if slo_rate is None else f'{slo_rate:.1f} requests/s'}")

    mem = bench_memory(ref)
    print(
        f"\nKV memory, {mem['requests']} chat-like requests (mean {mem['mean_length']:.0f} tokens), "
        f"Llama-2-7B fp16: preallocated to 2048 wastes {mem['waste_preallocated']:.0%}, "
        f"blocks of 16 waste {mem['waste_paged_16']:.1%}"
    )
    prefix = bench_prefix(ref)
    print(
        f"\nprefix caching, {prefix['requests']} requests sharing 3 system prompts: prompt tokens "
        f"computed {prefix['prefill_without']} -> {prefix['prefill_with']}; trace "
        f"{prefix['seconds_without'] * 1e3:.0f} -> {prefix['seconds_with'] * 1e3:.0f} ms "
        f"({prefix['ratio']:.2f}x); same outputs: {prefix['same_outputs']}"
    )
    synchronize()
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "device": name,
                    "batching": batching,
                    "speculative": spec,
                    "load": load,
                    "memory": mem,
                    "prefix": prefix,
                },
                indent=1,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
