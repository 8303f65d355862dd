"""Build `docstring_task`, the supervised fine-tuning task of the LoRA unit.

Usage (the full build takes about 3 s):

    python datasets/build_task.py                              # writes datasets/docstring_task/
    python datasets/build_task.py --out /tmp/t --max-files 80  # a fast slice

Each example asks what a docstring's first sentence documents:

    prompt: "Docstring: Return the absolute value of the argument.\\nKind:"
    answer: " function"          (one of " class", " function", " module"; one token each)

The answer carries its leading space so that `prompt + answer` tokenizes as the prompt's
tokens followed by exactly one answer token. Metrics: exact match of the stripped greedy
continuation (or of the arg-max over the three answers), and the mean cross-entropy on the
answer token. The three kinds are balanced in both splits, so chance is 1/3.

Source: the same standard-library docstrings as `pystdlib_docs` (datasets/build_corpus.py:
`collect`, `normalise`, and its module split, so a module's docstrings are on the same
side as in the corpus and no module is on both sides). Short docstrings count too (the
corpus drops documents under 80 characters, the task needs only one sentence). Steps:
first sentence of the normalised docstring; keep 20-160 characters and sentences that do
not name their kind ("class", "function", "module", "method" would give the answer
away); drop sentences seen twice or more within a split, and validation sentences that
also occur in train; then a seeded sample of PER_KIND[split] examples of each kind.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import sysconfig
from collections import Counter
from pathlib import Path

sys.dont_write_bytecode = True  # keep datasets/ free of __pycache__ (it ships in the wheel)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_corpus import collect, in_validation, normalise  # noqa: E402

SEED = 0
KINDS = ("class", "function", "module")
PER_KIND = {"train": 160, "validation": 50}
MIN_CHARS, MAX_CHARS = 20, 160
GIVEAWAY = re.compile(r"\b(class|classes|function|functions|module|modules|method|methods)\b", re.I)
TEMPLATE = "Docstring: {sentence}\nKind:"


def first_sentence(text: str) -> str:
    paragraph = text.split("\n\n")[0]
    sentence = re.split(r"(?<=[.!?])\s", paragraph.replace("\n", " "))[0]
    return re.sub(r"\s+", " ", sentence).strip()


def candidates(root: Path, max_files: int | None) -> dict[str, list[tuple[str, str]]]:
    """{split: [(sentence, kind)]} before balancing, each sentence unique within its split."""
    docs, _ = collect(root, max_files)
    pools: dict[str, list[tuple[str, str]]] = {"train": [], "validation": []}
    for d in docs:
        if d["kind"] not in KINDS:
            continue
        sentence = first_sentence(normalise(d["text"]))
        if not (MIN_CHARS <= len(sentence) <= MAX_CHARS) or GIVEAWAY.search(sentence):
            continue
        pools["validation" if in_validation(d["module"]) else "train"].append((sentence, d["kind"]))
    for split, rows in pools.items():
        counts = Counter(s for s, _ in rows)
        pools[split] = [(s, k) for s, k in rows if counts[s] == 1]
    train_sentences = {s for s, _ in pools["train"]}
    pools["validation"] = [(s, k) for s, k in pools["validation"] if s not in train_sentences]
    return pools


def build(root: Path, out: Path, max_files: int | None = None) -> dict:
    pools = candidates(root, max_files)
    rng = random.Random(SEED)
    report = {"available": {}, "examples": {}}
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in pools.items():
        by_kind = {k: [s for s, kind in rows if kind == k] for k in KINDS}
        report["available"][split] = {k: len(v) for k, v in by_kind.items()}
        n = min([PER_KIND[split]] + [len(v) for v in by_kind.values()])
        examples = []
        for kind in KINDS:
            for sentence in rng.sample(by_kind[kind], n):
                examples.append({"prompt": TEMPLATE.format(sentence=sentence), "answer": " " + kind})
        rng.shuffle(examples)
        report["examples"][split] = len(examples)
        with open(out / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for ex in examples:
                f.write(json.dumps(ex, ensure_ascii=False, sort_keys=True) + "\n")
    report["parameters"] = {
        "SEED": SEED,
        "PER_KIND": PER_KIND,
        "MIN_CHARS": MIN_CHARS,
        "MAX_CHARS": MAX_CHARS,
        "TEMPLATE": TEMPLATE,
    }
    (out / "build_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def main(argv=None) -> None:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stdlib", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    p.add_argument("--out", type=Path, default=here / "docstring_task")
    p.add_argument("--max-files", type=int, default=None, help="fast mode: first N files only")
    args = p.parse_args(argv)
    print(json.dumps(build(args.stdlib, args.out, args.max_files)))


if __name__ == "__main__":
    main()
