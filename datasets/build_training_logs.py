"""Build `training_logs`: the logged curves of short pre-training runs, most of them broken,
for the diagnosis exercise of the pre-training unit.

Usage:

    python datasets/build_training_logs.py                 # writes datasets/training_logs/ (see DATASHEET.md)
    python datasets/build_training_logs.py --jobs 3        # the same file, three runs at a time
    python datasets/build_training_logs.py --fast --out /tmp/t   # CI: 2 runs of 4 steps, a few seconds

Every run trains the same small Llama (`LlamaForCausalLM` from `transformers`, a much
smaller configuration than `tiny_llama`, same tokenizer) from scratch on a fixed slice of
the training split of `pystdlib_docs`, with AdamW, linear warm-up then cosine decay to
10 %, and gradient clipping at 1.0. The slice is cut into fixed windows and visited in
epochs (a fresh seeded order each epoch), so that a run sees it several times. A run is
healthy or has exactly one of four bugs:

- `lr_too_high`: the peak learning rate is far past what this model tolerates;
- `no_zero_grad`: the loop never zeroes the gradients, so `.grad` sums every step's;
- `labels_not_shifted`: the training loss scores the logits at t against the token at t
  (itself, visible to the model) instead of the token at t + 1;
- `not_shuffled`: every epoch visits the windows in the same order (corpus order).

Each run logs, at every step, the training loss, the gradient norm before clipping and
the learning rate; every VAL_EVERY steps, the validation loss measured correctly (the
next-token loss on fixed held-out windows, with the shift) whatever the bug. The runs are
stored under anonymous names: A-E (one per cause, for the learner to diagnose) and V01...
(more runs of each cause with other seeds and settings, for the hidden tests). Which run
has which cause is in TRUTH below and in the unit's hidden tests, not in the data folder.

Everything is seeded and runs on one CPU thread in float32.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.dont_write_bytecode = True  # keep datasets/ free of __pycache__ (it ships in the wheel)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # graders/ from a clone

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402
from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup  # noqa: E402

from graders.notebook.data import encode_documents  # noqa: E402

SEQ_LEN = 128
BATCH_SIZE = 16
STEPS = 150
WARMUP = 15
PEAK_LR = 3e-3
TRAIN_TOKENS = 64 * 1024  # 496 windows: 31 steps per epoch, about 5 epochs in STEPS steps
VAL_TOKENS = 8192
VAL_EVERY = 10
ARCH = dict(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=SEQ_LEN, rms_norm_eps=1e-5,
            tie_word_embeddings=True, attn_implementation="eager")

# (name, cause, overrides of run()'s keyword arguments). A-E are shown to the learner.
RUNS = [
    ("A", "labels_not_shifted", {}),
    ("B", "healthy", {}),
    ("C", "lr_too_high", {"lr": 0.1}),
    ("D", "not_shuffled", {}),
    ("E", "no_zero_grad", {}),
    ("V01", "healthy", {"seed": 1}),
    ("V02", "lr_too_high", {"lr": 0.05, "seed": 1}),
    ("V03", "no_zero_grad", {"lr": 1e-3, "seed": 1}),
    ("V04", "healthy", {"lr": 6e-3, "seed": 2}),
    ("V05", "not_shuffled", {"lr": 1e-3, "seed": 1}),
    ("V06", "labels_not_shifted", {"lr": 1e-3, "seed": 1}),
]
TRUTH = {name: cause for name, cause, _ in RUNS}


def windows(ids: list[int], n_tokens: int) -> torch.Tensor:
    """Non-overlapping (SEQ_LEN + 1)-token windows of the first n_tokens ids."""
    t = torch.tensor(ids[:n_tokens], dtype=torch.long)
    n = len(t) // (SEQ_LEN + 1)
    return t[: n * (SEQ_LEN + 1)].view(n, SEQ_LEN + 1)


def epoch_batches(data: torch.Tensor, shuffle: bool, seed: int):
    """Endless epochs of BATCH_SIZE windows: a fresh seeded order per epoch, or corpus order."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(data), generator=gen) if shuffle else torch.arange(len(data))
        for i in range(0, len(order) - BATCH_SIZE + 1, BATCH_SIZE):
            yield data[order[i : i + BATCH_SIZE]]


@torch.no_grad()
def val_loss(model, val: torch.Tensor) -> float:
    model.eval()
    logits = model(input_ids=val[:, :-1]).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), val[:, 1:].reshape(-1)).item()
    model.train()
    return loss


def run(train, val, vocab, cause, steps=STEPS, lr=PEAK_LR, seed=0) -> dict:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, **ARCH)).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))
    sched = get_cosine_with_min_lr_schedule_with_warmup(opt, WARMUP, steps, min_lr_rate=0.1)
    batches = epoch_batches(train, shuffle=cause != "not_shuffled", seed=seed)
    log = {"train_loss": [], "grad_norm": [], "lr": [], "val_steps": [], "val_loss": []}
    for step in range(steps):
        if step % VAL_EVERY == 0:
            log["val_steps"].append(step)
            log["val_loss"].append(val_loss(model, val))
        batch = next(batches)
        logits = model(input_ids=batch[:, :-1]).logits
        if cause == "labels_not_shifted":  # scores position t against the input token at t
            target = batch[:, :-1]
        else:
            target = batch[:, 1:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        if cause != "no_zero_grad":
            opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        log["lr"].append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        log["train_loss"].append(loss.item())
        log["grad_norm"].append(norm.item())
    log["val_steps"].append(steps)
    log["val_loss"].append(val_loss(model, val))
    # JSON has no NaN/inf: a diverged value is stored as null (None in Python once loaded).
    return {k: [round(v, 5) if math.isfinite(v) else None for v in vals] for k, vals in log.items()}


def _timed_run(train, val, vocab, cause, steps, overrides) -> tuple[dict, float]:
    torch.set_num_threads(1)  # in a worker process too: the numbers depend on the thread count
    start = time.process_time()
    return run(train, val, vocab, cause, steps=steps, **overrides), time.process_time() - start


def main(argv=None) -> dict:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, default=here / "pystdlib_docs")
    p.add_argument("--tokenizer", type=Path, default=here / "tiny_llama")
    p.add_argument("--out", type=Path, default=here / "training_logs")
    p.add_argument("--only", nargs="*", help="build only these runs and print them as JSON (writes no file)")
    p.add_argument("--fast", action="store_true", help="CI smoke run: runs A and B, 4 steps each")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at once, one process each (each run is seeded: same numbers)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    read = lambda split: [json.loads(line)["text"] for line in open(args.corpus / f"{split}.jsonl")]  # noqa: E731
    train = windows(encode_documents(tok, read("train"), TRAIN_TOKENS), TRAIN_TOKENS)
    val = windows(encode_documents(tok, read("validation"), VAL_TOKENS), VAL_TOKENS)
    runs = [r for r in RUNS if not args.only or r[0] in args.only]
    steps = STEPS
    if args.fast:
        runs, steps = RUNS[:2], 4
    out = {}
    jobs = [(name, cause, (train, val, len(tok), cause, steps, overrides)) for name, cause, overrides in runs]
    if args.jobs > 1:  # run as a script: worker processes import it by path
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_timed_run, *zip(*(job for _, _, job in jobs), strict=True)))
    else:
        results = [_timed_run(*job) for _, _, job in jobs]
    for (name, cause, job), (log, seconds) in zip(jobs, results, strict=True):
        out[name] = log
        tl, vl = log["train_loss"], log["val_loss"]
        print(f"{name} {cause:>18} {job[-1]}: train {tl[0]} -> {tl[-1]}, val {vl[-1]} ({seconds:.0f} s CPU)",
              flush=True)
    if args.only:
        print(json.dumps(out, separators=(",", ":")))
        return out
    data = {
        "about": "Loss curves of short pre-training runs of a small Llama on pystdlib_docs; "
                 "see DATASHEET.md. Runs A-E and V01... are anonymous; values null where the run diverged.",
        "config": {**ARCH, "vocab_size": len(tok), "seq_len": SEQ_LEN, "batch_size": BATCH_SIZE,
                   "steps": steps, "warmup_steps": WARMUP, "train_tokens": TRAIN_TOKENS,
                   "steps_per_epoch": len(train) // BATCH_SIZE, "val_every": VAL_EVERY,
                   "val_tokens": VAL_TOKENS, "torch": torch.__version__},
        "runs": out,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "runs.json").write_text(json.dumps(data, separators=(",", ":")) + "\n")
    return data


if __name__ == "__main__":
    main()
