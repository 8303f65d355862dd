"""Train the byte-level BPE tokenizer of `tiny_llama` on the training split of `pystdlib_docs`.

Usage (the full build takes about 5 s):

    python datasets/train_tokenizer.py                                  # writes datasets/tiny_llama/
    python datasets/train_tokenizer.py --out /tmp/tok --max-docs 200    # a fast slice

Byte-level BPE (the GPT-2 / Llama-3 family of tokenizers): text is UTF-8 bytes, pre-split
by the GPT-2 regex (words with their leading space, numbers, punctuation runs), then
merged pairwise up to VOCAB_SIZE entries. Any byte sequence can be encoded, so there is
no unknown token. Trained only on `train.jsonl` so the validation perplexity is honest.

Special tokens: `<|bos|>` (id 0), `<|eos|>` (id 1), `<|pad|>` (id 2). Encoding a text
prepends `<|bos|>` (as Llama tokenizers do); `<|eos|>` ends each document in
pre-training. Saved with `PreTrainedTokenizerFast.save_pretrained`, so
`AutoTokenizer.from_pretrained(path)` loads it offline.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

VOCAB_SIZE = 4096
SPECIALS = ["<|bos|>", "<|eos|>", "<|pad|>"]


def read_texts(path: Path, max_docs: int | None = None) -> list[str]:
    with open(path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    return texts[:max_docs] if max_docs is not None else texts


def train(texts: list[str], vocab_size: int = VOCAB_SIZE):
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    bos = SPECIALS[0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIALS[0],
        eos_token=SPECIALS[1],
        pad_token=SPECIALS[2],
        model_max_length=512,
        clean_up_tokenization_spaces=False,
    )


def main(argv=None) -> None:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, default=here / "pystdlib_docs")
    p.add_argument("--out", type=Path, default=here / "tiny_llama")
    p.add_argument("--vocab-size", type=int, default=VOCAB_SIZE)
    p.add_argument("--max-docs", type=int, default=None, help="fast mode: first N training documents")
    args = p.parse_args(argv)
    texts = read_texts(args.corpus / "train.jsonl", args.max_docs)
    tok = train(texts, args.vocab_size)
    args.out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(args.out)
    n_tokens = sum(len(tok(t)["input_ids"]) for t in texts)
    n_chars = sum(len(t) for t in texts)
    print(
        json.dumps(
            {
                "vocab_size": len(tok),
                "train_tokens_with_bos": n_tokens,
                "chars_per_token": round(n_chars / n_tokens, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
