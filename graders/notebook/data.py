"""The one way notebooks and tests load the bundled data: corpus, tokenizer, model, task.

Everything lives under `graders.paths.datasets_dir()` (beside `graders/` in a clone, inside
the package in a wheel, or under `$LLMLABS_ROOT/datasets`):

    pystdlib_docs/    the corpus: train.jsonl, validation.jsonl (one {"text": ...} a line)
    tiny_llama/       byte-level BPE tokenizer + LlamaForCausalLM checkpoint (safetensors)
    docstring_task/   supervised task: train.jsonl, validation.jsonl ({"prompt", "answer"})
    training_logs/    logged loss curves of short pre-training runs, most of them broken: runs.json

Each folder has a `SHA256SUMS` manifest (the same digests are printed in its
DATASHEET.md). The first time a folder is used, every file it lists is hashed and compared,
and a missing or changed file raises `DataIntegrityError` that names the file, both
digests and how to restore it.

The switch: `LLMLABS_MODEL=<hub id or local dir>` makes `load_model` and `load_tokenizer`
(and so `validation_ids`) use that checkpoint instead of the bundled one, e.g.
`LLMLABS_MODEL=HuggingFaceTB/SmolLM2-135M` with internet access, or a local directory saved
with `save_pretrained`. A foreign checkpoint is not hash-checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from graders import settings
from graders.errors import DataIntegrityError as DataIntegrityError
from graders.paths import datasets_dir

CORPUS = "pystdlib_docs"
MODEL = "tiny_llama"
TASK = "docstring_task"
TRAINING_LOGS = "training_logs"
MANIFEST = "SHA256SUMS"
SPLITS = ("train", "validation")

_verified: set[tuple[str, tuple[Any, ...]]] = set()
_ids_cache: dict[tuple[Any, ...], Any] = {}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder: Path) -> dict[str, str]:
    """{file name: sha256} from `folder/SHA256SUMS` (the `sha256sum` format)."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise DataIntegrityError(
            f"{manifest} is missing: the bundled data folder {folder.name}/ is incomplete. "
            "Restore it from the repository (git checkout -- datasets/) or reinstall llm-labs."
        )
    digests = {}
    for line in manifest.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            digests[name.lstrip("*")] = digest
    return digests


def dataset_path(name: str, verify: bool = True) -> Path:
    """The folder of one bundled dataset, every file checked against its manifest once."""
    folder = datasets_dir() / name
    if not folder.is_dir():
        raise DataIntegrityError(f"bundled dataset {name}/ not found at {folder}")
    if verify:
        verify_folder(folder)
    return folder


def verify_folder(folder: Path) -> None:
    """Hash every file the manifest lists; raise `DataIntegrityError` on the first mismatch."""
    digests = read_manifest(folder)
    # Re-check when a file changes on disk (size or mtime), otherwise once per process.
    stamp = tuple(
        (n, (folder / n).stat().st_size, (folder / n).stat().st_mtime_ns) if (folder / n).is_file() else (n,)
        for n in sorted(digests)
    )
    key = (str(folder.resolve()), stamp)
    if key in _verified:
        return
    for name, expected in sorted(digests.items()):
        path = folder / name
        if not path.is_file():
            raise DataIntegrityError(
                f"{path} is missing (listed in {folder / MANIFEST} with sha256 {expected}). "
                "Restore it from the repository (git checkout -- datasets/) or rerun the build "
                "scripts described in datasets/README.md."
            )
        found = sha256_file(path)
        if found != expected:
            raise DataIntegrityError(
                f"{path} was modified or is corrupted: its sha256 is {found}, the manifest "
                f"{folder / MANIFEST} expects {expected}. Restore the file "
                "(git checkout -- datasets/, or reinstall llm-labs) instead of editing bundled data."
            )
    _verified.add(key)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def load_corpus(split: str = "train") -> list[str]:
    """The documents (docstrings and manual topics) of one split of `pystdlib_docs`."""
    _check_split(split)
    return [row["text"] for row in _read_jsonl(dataset_path(CORPUS) / f"{split}.jsonl")]


def load_task(split: str = "train") -> list[dict[str, str]]:
    """The supervised examples of `docstring_task`: dicts with `prompt` and `answer` strings."""
    _check_split(split)
    rows = _read_jsonl(dataset_path(TASK) / f"{split}.jsonl")
    return [{"prompt": row["prompt"], "answer": row["answer"]} for row in rows]


def load_training_logs() -> dict[str, Any]:
    """The logged curves of `training_logs/runs.json`: {"about": str, "config": {...}, "runs": {name:
    {"train_loss", "grad_norm", "lr": one value per step; "val_steps", "val_loss"}}}. A value of a run
    that diverged is None (JSON has no NaN)."""
    with open(dataset_path(TRAINING_LOGS) / "runs.json", encoding="utf-8") as f:
        return cast(dict[str, Any], json.load(f))


def model_source() -> str:
    """The bundled checkpoint's path, or the value of `LLMLABS_MODEL` when it is set."""
    return settings.MODEL.read() or str(datasets_dir() / MODEL)


def _source_checked() -> str:
    source = model_source()
    if not settings.MODEL.read():
        dataset_path(MODEL)
    return source


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Load without progress bars or advisory log lines (nbgrader scores stderr as failure)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_tokenizer() -> Any:
    """The tokenizer of `model_source()`; bos/eos/pad are set (pad falls back to eos)."""
    from transformers import AutoTokenizer

    source = _source_checked()
    with _quiet_transformers():
        tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(dtype: Any = None, device: Any = None) -> Any:
    """The causal LM of `model_source()` in eval mode (float32 on CPU unless told otherwise)."""
    import torch
    from transformers import AutoModelForCausalLM

    source = _source_checked()
    with _quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype or torch.float32)
    if device is not None:
        model = model.to(device)
    return model.eval()


def encode_documents(tokenizer: Any, texts: list[str], max_tokens: int | None = None) -> list[int]:
    """Token ids of documents the way pre-training saw them: each `tokenizer(text)` (which
    starts with <bos> for Llama-style tokenizers) followed by <eos>, all concatenated."""
    ids: list[int] = []
    for text in texts:
        ids += tokenizer(text, verbose=False)["input_ids"]
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
        if max_tokens is not None and len(ids) >= max_tokens:
            break
    return ids if max_tokens is None else ids[:max_tokens]


def validation_ids(max_tokens: int = 16384) -> Any:
    """A fixed slice of the tokenized validation split: 1-D LongTensor of `max_tokens` ids
    (the first documents of validation.jsonl, in file order)."""
    import torch

    key = (model_source(), str(datasets_dir()), max_tokens)
    if key not in _ids_cache:
        ids = encode_documents(load_tokenizer(), load_corpus("validation"), max_tokens)
        _ids_cache[key] = torch.tensor(ids, dtype=torch.long)
    return _ids_cache[key].clone()
