"""Pre-train `tiny_llama`, a small LlamaForCausalLM, on the training split of `pystdlib_docs`.

Usage:

    python datasets/train_model.py                     # the full build (see DATASHEET.md for its time)
    python datasets/train_model.py --steps 400 --interim  # the interim checkpoint
    python datasets/train_model.py --fast --out /tmp/m # CI: a small slice, 3 steps, a few seconds

Needs the tokenizer first (datasets/train_tokenizer.py writes it into the same folder).
Everything is seeded (SEED) and runs with THREADS threads in float32, so a rerun on the same
machine and library versions gives the same weights; a fixed number of steps (not a time
budget) decides where training stops.

Data: each training document is tokenized as `<bos> text <eos>`, all documents are
concatenated and cut into SEQ_LEN-token sequences (a document may span two sequences);
every epoch visits them in a new seeded order. AdamW, linear warm-up then cosine decay
to 10 % of the peak learning rate, gradient clipping at 1.0.

At the end the script measures, on the fixed validation slice (`graders.notebook.data.validation_ids`:
the first 16384 tokens of the validation split, 256-token windows), the perplexity of the
trained model, of the same model before training and of an add-one unigram model
fitted on the training tokens, writes greedy samples, and saves everything to
`train_report.json` beside the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # graders/ from a clone

import torch  # noqa: E402
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from graders.notebook.data import encode_documents  # noqa: E402
from graders.notebook.lm import perplexity, unigram_perplexity  # noqa: E402

SEED = 0
SEQ_LEN = 256
BATCH_SIZE = 8
STEPS = 600
PEAK_LR = 2e-3
WARMUP = 20
VAL_TOKENS = 16384
# One thread: on the shared 2-core build machine (load 6-8) two OpenMP threads spent most of
# their time waiting for each other (7.5 s/step against 3.5 s/step with one). On an idle
# machine `--threads 2` is about twice as fast; the thread count changes float32 summation
# order, so it is recorded in train_report.json.
THREADS = 1
SAMPLE_PROMPTS = ["Return the", "This module provides", "Create a new", "If the file", "The socket"]

ARCH = dict(
    hidden_size=256,
    intermediate_size=688,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=4,  # grouped-query attention: 2 query heads share a key/value head
    max_position_embeddings=512,
    rope_theta=10000.0,
    rms_norm_eps=1e-5,
    hidden_act="silu",  # SwiGLU MLP
    tie_word_embeddings=True,
    attention_bias=False,
    mlp_bias=False,
)


def read_texts(path: Path, max_docs: int | None = None) -> list[str]:
    with open(path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    return texts[:max_docs] if max_docs is not None else texts


def make_config(tok, **overrides) -> LlamaConfig:
    arch = {**ARCH, **overrides}
    return LlamaConfig(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **arch,
    )


def learning_rate(step: int, steps: int, peak: float = PEAK_LR, warmup: int = WARMUP) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def batches(sequences: torch.Tensor, batch_size: int, seed: int):
    """Endless seeded epochs over the rows of `sequences`."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(sequences), generator=gen)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield sequences[order[i : i + batch_size]]


def greedy_samples(model, tok, prompts, new_tokens: int = 40) -> dict[str, str]:
    out = {}
    for prompt in prompts:
        x = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            y = model.generate(**x, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        out[prompt] = tok.decode(y[0], skip_special_tokens=True)
    return out


DATASHEET = """# Datasheet: `tiny_llama`

A {params_m:.2f} M-parameter Llama-architecture causal language model and its byte-level
BPE tokenizer, pre-trained from scratch on the training split of `pystdlib_docs`
(Python standard-library docstrings, PSF licence, see ../pystdlib_docs/DATASHEET.md).
It is small enough to fine-tune, quantize and inspect on a 2-core CPU in seconds.
{interim}
## Load

```python
from graders.notebook.data import load_model, load_tokenizer
model, tok = load_model(), load_tokenizer()   # sha256-checked, offline
# or: AutoModelForCausalLM.from_pretrained("datasets/tiny_llama"), AutoTokenizer.from_pretrained(...)
```

## Tokenizer

Byte-level BPE trained with Hugging Face `tokenizers` on `train.jsonl` only
(`datasets/train_tokenizer.py`): GPT-2 pre-tokenizer regex, {vocab} entries including the
specials `<|bos|>` (0), `<|eos|>` (1), `<|pad|>` (2). Encoding prepends `<|bos|>`;
pre-training puts `<|eos|>` after every document. About 3.6 characters per token on the
training split.

## Architecture (`LlamaForCausalLM`, `config.json`)

| setting | value |
|---|---|
| vocabulary | {vocab} |
| hidden size | {hidden_size} |
| layers | {num_hidden_layers} |
| attention heads / key-value heads | {num_attention_heads} / {num_key_value_heads} \
(grouped-query attention) |
| head dimension | {head_dim} |
| MLP | SwiGLU, intermediate size {intermediate_size} |
| normalisation | RMSNorm, eps {rms_norm_eps} |
| positions | RoPE, theta {rope_theta:.0f}, max {max_position_embeddings} |
| embeddings | input and output tied |
| parameters | {params:,} |
| checkpoint | float32 safetensors, {size_mb:.1f} MB |

## Pre-training

`python datasets/train_model.py` (seed {seed}, torch {torch}, {threads} thread(s), float32 on CPU).
Each document is `<bos> text <eos>`; documents are concatenated and cut into {seq_len}-token
sequences; seeded shuffle every epoch. AdamW (betas 0.9/0.95, weight decay 0.1 on
matrices), peak learning rate {peak_lr}, {warmup_steps} warm-up steps, cosine decay to 10 %,
gradient clipping 1.0, batches of {batch_size} sequences.

| | |
|---|---|
| steps | {steps} |
| tokens seen | {tokens_seen:,} ({epochs} epochs of {train_corpus_tokens:,} training tokens) |
| wall time of the training loop | {train_seconds:.0f} s ({train_minutes:.1f} min) on the 2-core build \
machine, shared with other jobs |
| CPU time of the training loop | {train_cpu_seconds:.0f} s (what an idle machine would need, roughly, \
with {threads} thread(s)) |
| throughput | {tokens_per_second:.0f} tokens/s of wall time |

Loss every 20 steps is in `train_report.json`.

## Validation perplexity

On the fixed slice `graders.notebook.data.validation_ids({validation_tokens})`: the first
{validation_tokens:,} tokens of the validation split (held-out modules), scored by
`graders.notebook.lm.perplexity(model, ids, seq_len={seq_len})` (non-overlapping {seq_len}-token windows).

| model | perplexity |
|---|---:|
| **tiny_llama (trained)** | **{ppl_trained:.2f}** |
| unigram, add-one smoothing on the training tokens | {ppl_unigram:.2f} |
| the same architecture, untrained (seed {seed} initialisation) | {ppl_untrained:.2f} |

`tests/test_datasets.py` recomputes the trained figure and requires it within 1 %.

## Greedy samples

40 new tokens, greedy (`do_sample=False`), after the prompts {prompts}:

{samples}

## Limitations

Trained on about 1.5 M characters of docstrings: it writes plausible docstring-style
English and identifiers but knows little else, and repeats itself under greedy decoding.
Not for any use beyond teaching.

## Files

Regenerate the table and `SHA256SUMS` with `python datasets/manifest.py`.

<!-- sha256:begin -->
<!-- sha256:end -->
"""

INTERIM_NOTE = """
**INTERIM checkpoint** (the marker file `INTERIM` is present): briefly trained while the
final model trains; architecture and tokenizer are final, the weights and figures are not.
"""


def write_datasheet(report: dict, out: Path, interim: bool) -> None:
    arch = report["architecture"]
    samples = "\n\n".join(f"```text\n{text}\n```" for text in report["greedy_samples"].values())
    ppl = report["perplexity"]
    text = DATASHEET.format(
        interim=INTERIM_NOTE if interim else "",
        params_m=report["parameters"] / 1e6,
        params=report["parameters"],
        vocab=arch["vocab_size"],
        head_dim=arch["hidden_size"] // arch["num_attention_heads"],
        size_mb=(out / "model.safetensors").stat().st_size / 1e6,
        train_minutes=report["train_seconds"] / 60,
        ppl_trained=ppl["trained"],
        ppl_unigram=ppl["unigram_add_one"],
        ppl_untrained=ppl["untrained"],
        samples=samples,
        prompts=", ".join(f"`{p}`" for p in report["greedy_samples"]),
        **{k: v for k, v in arch.items() if k != "vocab_size"},
        **{k: v for k, v in report.items() if k not in ("architecture", "parameters", "perplexity")},
    )
    (out / "DATASHEET.md").write_text(text)


def main(argv=None) -> dict:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, default=here / "pystdlib_docs")
    p.add_argument("--tokenizer", type=Path, default=here / "tiny_llama")
    p.add_argument("--out", type=Path, default=here / "tiny_llama")
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--max-docs", type=int, default=None, help="use only the first N training documents")
    p.add_argument("--val-tokens", type=int, default=VAL_TOKENS)
    p.add_argument("--threads", type=int, default=THREADS)
    p.add_argument("--interim", action="store_true", help="mark the checkpoint as interim (INTERIM file)")
    p.add_argument("--fast", action="store_true", help="CI smoke run: 40 documents, 3 steps, 1024 val tokens")
    args = p.parse_args(argv)
    if args.fast:
        args.steps, args.batch_size, args.max_docs, args.val_tokens = 3, 2, 40, 1024

    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    train_ids = encode_documents(tok, read_texts(args.corpus / "train.jsonl", args.max_docs))
    val_ids = torch.tensor(
        encode_documents(tok, read_texts(args.corpus / "validation.jsonl"), args.val_tokens), dtype=torch.long
    )
    n_seq = len(train_ids) // SEQ_LEN
    sequences = torch.tensor(train_ids[: n_seq * SEQ_LEN], dtype=torch.long).view(n_seq, SEQ_LEN)

    config = make_config(tok)
    model = LlamaForCausalLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    ppl_untrained = perplexity(model, val_ids, seq_len=SEQ_LEN)
    ppl_unigram = unigram_perplexity(torch.tensor(train_ids), val_ids, len(tok), seq_len=SEQ_LEN)
    print(
        f"params {n_params:,}  train tokens {len(train_ids):,}  sequences {n_seq}  "
        f"untrained ppl {ppl_untrained:.1f}  unigram ppl {ppl_unigram:.1f}",
        flush=True,
    )

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=PEAK_LR,
        betas=(0.9, 0.95),
    )
    model.train()
    log, start, cpu_start = [], time.perf_counter(), time.process_time()
    stream = batches(sequences, args.batch_size, SEED)
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, args.steps)
        x = next(stream)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 20 == 0 or step == args.steps - 1:
            elapsed = time.perf_counter() - start
            log.append({"step": step, "loss": round(loss.item(), 4), "seconds": round(elapsed, 1)})
            print(f"step {step:4d}  loss {loss.item():.3f}  {elapsed:6.0f} s", flush=True)
    train_seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    model.eval()
    tokens_seen = args.steps * args.batch_size * SEQ_LEN
    ppl_trained = perplexity(model, val_ids, seq_len=SEQ_LEN)
    samples = greedy_samples(model, tok, SAMPLE_PROMPTS, new_tokens=8 if args.fast else 40)

    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    if args.out.resolve() != args.tokenizer.resolve():
        tok.save_pretrained(args.out)
    report = {
        "seed": SEED,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "architecture": {**ARCH, "vocab_size": len(tok)},
        "parameters": n_params,
        "seq_len": SEQ_LEN,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "peak_lr": PEAK_LR,
        "warmup_steps": WARMUP,
        "train_corpus_tokens": len(train_ids),
        "tokens_seen": tokens_seen,
        "epochs": round(tokens_seen / (n_seq * SEQ_LEN), 2),
        "train_seconds": round(train_seconds, 1),
        "tokens_per_second": round(tokens_seen / train_seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),
        "validation_tokens": len(val_ids),
        "perplexity": {"trained": ppl_trained, "untrained": ppl_untrained, "unigram_add_one": ppl_unigram},
        "loss_log": log,
        "greedy_samples": samples,
    }
    (args.out / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    write_datasheet(report, args.out, interim=args.interim)
    marker = args.out / "INTERIM"
    if args.interim:
        marker.write_text("Interim checkpoint: the final model is still training.\n")
    elif marker.exists():
        marker.unlink()
    print(json.dumps(report["perplexity"]), json.dumps(samples, indent=1), flush=True)
    return report


if __name__ == "__main__":
    main()
