"""Measure `docstring_task` on `tiny_llama`: the base model, a quick full fine-tune, a quick LoRA.

Usage:

    python datasets/evaluate_task.py                  # writes datasets/docstring_task/baselines.json
    python datasets/evaluate_task.py --fast           # CI: 2 steps each, a few examples, prints only

Metrics on the validation split (the ones the LoRA unit grades):

- `accuracy`: exact match of the greedy answer, i.e. the arg-max next token after the
  prompt equals the answer token (every answer is one token);
- `choice_accuracy`: the arg-max among the three answer tokens only (chance 1/3);
- `answer_loss`: mean cross-entropy (nats) of the answer token given the prompt.

Training, for both fine-tunes: loss on the answer token only, AdamW, batches of 16
examples from a seeded shuffle, STEPS steps, 2 threads, float32. LoRA: rank 8, alpha 16,
on every attention and MLP projection (peft). The numbers show what the LoRA unit's
exercise can reach in about a minute of CPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # graders/ from a clone

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

SEED = 0
STEPS = 200
BATCH_SIZE = 16
LR = {"full": 3e-4, "lora": 2e-3}  # LoRA at 5e-3 or 1e-2 collapsed to one answer (measured)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return rows[:limit] if limit else rows


def encode(tok, examples: list[dict]):
    """Right-padded input ids, attention mask, labels (-100 except on answer tokens)."""
    seqs, labels = [], []
    for ex in examples:
        p = tok(ex["prompt"])["input_ids"]
        full = tok(ex["prompt"] + ex["answer"])["input_ids"]
        assert full[: len(p)] == p, f"prompt tokens are not a prefix: {ex}"
        seqs.append(full)
        labels.append([-100] * len(p) + full[len(p) :])
    n = max(map(len, seqs))
    pad = tok.pad_token_id
    ids = torch.tensor([s + [pad] * (n - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (n - len(s)) for s in seqs])
    lab = torch.tensor([row + [-100] * (n - len(row)) for row in labels])
    return ids, mask, lab


def answer_loss(model, ids, mask, lab):
    logits = model(input_ids=ids, attention_mask=mask).logits
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)), lab[:, 1:].reshape(-1), ignore_index=-100
    )


@torch.no_grad()
def evaluate(model, tok, examples: list[dict]) -> dict:
    model.eval()
    choices = sorted({tok(ex["answer"], add_special_tokens=False)["input_ids"][0] for ex in examples})
    correct = chosen = 0
    losses = []
    for i in range(0, len(examples), 32):
        ids, mask, lab = encode(tok, examples[i : i + 32])
        logits = model(input_ids=ids, attention_mask=mask).logits
        pos = (lab != -100).float().argmax(dim=1) - 1  # position whose logits predict the answer
        rows = torch.arange(len(ids))
        step_logits = logits[rows, pos]
        target = lab[rows, pos + 1]
        correct += (step_logits.argmax(-1) == target).sum().item()
        sub = step_logits[:, choices]
        chosen += (torch.tensor(choices)[sub.argmax(-1)] == target).sum().item()
        losses += F.cross_entropy(step_logits, target, reduction="none").tolist()
    n = len(examples)
    return {"accuracy": correct / n, "choice_accuracy": chosen / n, "answer_loss": sum(losses) / n}


def finetune(model, tok, train: list[dict], steps: int, lr: float) -> float:
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    start = time.perf_counter()
    order = torch.randperm(len(train), generator=gen).tolist()
    for _ in range(steps):
        if len(order) < BATCH_SIZE:
            order += torch.randperm(len(train), generator=gen).tolist()
        batch = [train[j] for j in order[:BATCH_SIZE]]
        order = order[BATCH_SIZE:]
        loss = answer_loss(model, *encode(tok, batch))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def baselines_table(result: dict) -> str:
    rows = [
        "<!-- baselines:begin -->",
        f"On the {result['validation_examples']} validation examples; fine-tunes: {result['steps']} steps "
        f"of {result['batch_size']} examples from the {result['train_examples']} training examples, "
        f"{result['threads']} thread(s).",
        "",
        "| model | accuracy (greedy exact match) | choice accuracy (of 3) | answer loss (nats) "
        "| training time |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {
        "base": "tiny_llama, not fine-tuned",
        "full_finetune": f"full fine-tune (lr {result['lr']['full']})",
        "lora": f"LoRA r=8, alpha 16, all projections (lr {result['lr']['lora']})",
    }
    for key, name in names.items():
        r = result[key]
        secs = f"{r['train_seconds']:.0f} s" if "train_seconds" in r else "-"
        rows.append(
            f"| {name} | {r['accuracy']:.3f} | {r['choice_accuracy']:.3f} | {r['answer_loss']:.3f} | {secs} |"
        )
    b = result["base_train"]
    rows += [
        "",
        f"The base model on the training examples: accuracy {b['accuracy']:.3f}, "
        f"choice accuracy {b['choice_accuracy']:.3f}, answer loss {b['answer_loss']:.3f}.",
        "<!-- baselines:end -->",
    ]
    return "\n".join(rows)


def main(argv=None) -> dict:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=here / "tiny_llama")
    p.add_argument("--task", type=Path, default=here / "docstring_task")
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--fast", action="store_true", help="CI smoke run: 2 steps, 32 examples, nothing written")
    args = p.parse_args(argv)
    limit = 32 if args.fast else None
    steps = 2 if args.fast else args.steps

    from peft import LoraConfig, get_peft_model

    hf_logging.disable_progress_bar()
    torch.set_num_threads(1)  # see THREADS in train_model.py: faster on the shared build machine
    tok = AutoTokenizer.from_pretrained(args.model)
    base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    train = read_jsonl(args.task / "train.jsonl", limit)
    val = read_jsonl(args.task / "validation.jsonl", limit)
    result = {
        "threads": torch.get_num_threads(),
        "steps": steps,
        "batch_size": BATCH_SIZE,
        "lr": LR,
        "seed": SEED,
        "validation_examples": len(val),
        "train_examples": len(train),
    }
    result["base"] = evaluate(base, tok, val)
    result["base_train"] = evaluate(base, tok, train)

    full = copy.deepcopy(base)
    seconds = finetune(full, tok, train, steps, LR["full"])
    result["full_finetune"] = {**evaluate(full, tok, val), "train_seconds": round(seconds, 1)}

    torch.manual_seed(SEED)
    lora_cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=LORA_TARGETS)
    lora = get_peft_model(copy.deepcopy(base), lora_cfg)
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    seconds = finetune(lora, tok, train, steps, LR["lora"])
    result["lora"] = {
        **evaluate(lora, tok, val),
        "train_seconds": round(seconds, 1),
        "trainable_parameters": trainable,
        "rank": 8,
        "alpha": 16,
        "targets": LORA_TARGETS,
    }
    print(json.dumps(result, indent=2))
    if not args.fast:
        (args.task / "baselines.json").write_text(json.dumps(result, indent=2) + "\n")
        sheet = args.task / "DATASHEET.md"
        if sheet.is_file():
            block = re.compile(r"<!-- baselines:begin -->.*?<!-- baselines:end -->", re.S)
            sheet.write_text(block.sub(lambda _: baselines_table(result), sheet.read_text()))
    return result


if __name__ == "__main__":
    main()
