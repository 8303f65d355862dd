"""The bundled data (datasets/) and its loader (graders.notebook.data, graders.notebook.lm).

Checks: every file matches the sha256 in its manifest and datasheet; the loader rejects a
changed or missing file (on a copy, never the real files); the model loads offline and
reproduces its datasheet perplexity; the LLMLABS_MODEL switch; loading is silent; and each
build script still runs in its fast mode on a small slice.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from graders.notebook import data
from graders.paths import datasets_dir

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "datasets"
FOLDERS = ("pystdlib_docs", "tiny_llama", "docstring_task", "training_logs")
BUILT_WITH = "3.11.7"  # the corpus and task are byte-identical only from this stdlib


def script(name: str):
    """Import a build script from datasets/ as a module (they are not a package)."""
    spec = importlib.util.spec_from_file_location(f"_ds_{name}", DATASETS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(DATASETS))
    bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in datasets/
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(DATASETS))
        sys.dont_write_bytecode = bytecode
    return module


@pytest.fixture
def bundled(monkeypatch):
    """The bundled data, whatever LLMLABS_MODEL / LLMLABS_ROOT the caller has set."""
    monkeypatch.delenv("LLMLABS_MODEL", raising=False)
    monkeypatch.delenv("LLMLABS_ROOT", raising=False)


def report():
    return json.loads((DATASETS / "tiny_llama" / "train_report.json").read_text())


# --- integrity -------------------------------------------------------------------------


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_file_matches_manifest_and_datasheet(folder):
    path = DATASETS / folder
    manifest = data.read_manifest(path)
    present = {p.name for p in path.iterdir() if p.is_file()} - {"SHA256SUMS", "DATASHEET.md"}
    assert set(manifest) == present, (
        f"{folder}: files not in SHA256SUMS or listed but absent: {set(manifest) ^ present}"
    )
    sheet = (path / "DATASHEET.md").read_text()
    for name, digest in manifest.items():
        found = data.sha256_file(path / name)
        assert found == digest, f"{folder}/{name}: sha256 {found}, SHA256SUMS says {digest}"
        assert digest in sheet, f"{folder}/DATASHEET.md does not list the sha256 of {name}"


def test_datasets_dir_is_the_bundled_folder(bundled):
    assert datasets_dir().resolve() == DATASETS.resolve()
    assert data.model_source() == str(DATASETS / "tiny_llama")


def test_bundle_is_small():
    total = sum(p.stat().st_size for p in DATASETS.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert total < 25e6, f"datasets/ holds {total / 1e6:.1f} MB; keep it under 25 MB"
    assert (DATASETS / "tiny_llama" / "model.safetensors").stat().st_size < 30e6


def copy_datasets(tmp_path: Path, *folders: str) -> Path:
    for name in folders:
        shutil.copytree(DATASETS / name, tmp_path / "datasets" / name)
    return tmp_path


def test_loader_rejects_changed_file(tmp_path, monkeypatch, bundled):
    root = copy_datasets(tmp_path, "pystdlib_docs")
    monkeypatch.setenv("LLMLABS_ROOT", str(root))
    assert data.load_corpus("validation") == [
        json.loads(x)["text"] for x in (DATASETS / "pystdlib_docs/validation.jsonl").open()
    ]
    target = root / "datasets" / "pystdlib_docs" / "validation.jsonl"
    text = target.read_text()
    target.write_text(text.replace("the", "teh", 1))
    with pytest.raises(data.DataIntegrityError) as err:
        data.load_corpus("validation")
    message = str(err.value)
    assert "validation.jsonl" in message and "sha256" in message and "modified or is corrupted" in message, (
        message
    )


def test_loader_rejects_missing_file(tmp_path, monkeypatch, bundled):
    root = copy_datasets(tmp_path, "tiny_llama", "docstring_task")
    monkeypatch.setenv("LLMLABS_ROOT", str(root))
    (root / "datasets" / "tiny_llama" / "tokenizer.json").unlink()
    with pytest.raises(data.DataIntegrityError, match=r"tokenizer\.json is missing"):
        data.load_tokenizer()
    (root / "datasets" / "docstring_task" / "SHA256SUMS").unlink()
    with pytest.raises(data.DataIntegrityError, match="SHA256SUMS is missing"):
        data.load_task("train")


def test_split_names_are_checked():
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_corpus("test")


# --- corpus, tokenizer, task ------------------------------------------------------------


def test_corpus_splits_are_disjoint_by_module():
    rows = {
        s: [json.loads(x) for x in (DATASETS / f"pystdlib_docs/{s}.jsonl").open()]
        for s in ("train", "validation")
    }
    modules = {s: {r["module"] for r in v} for s, v in rows.items()}
    assert not modules["train"] & modules["validation"]
    texts = {s: {r["text"] for r in v} for s, v in rows.items()}
    assert not texts["train"] & texts["validation"]
    assert len(rows["train"]) > 3000 and len(rows["validation"]) > 300


def test_tokenizer_special_tokens(bundled):
    tok = data.load_tokenizer()
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|bos|>", "<|eos|>", "<|pad|>")
    assert len(tok) == 4096
    ids = tok("Return the value.")["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == "Return the value."


def test_task_answers_are_single_tokens_after_prompt(bundled):
    tok = data.load_tokenizer()
    train, val = data.load_task("train"), data.load_task("validation")
    assert 300 <= len(train) <= 600 and 90 <= len(val) <= 200
    assert not {e["prompt"] for e in train} & {e["prompt"] for e in val}
    for ex in train + val:
        p = tok(ex["prompt"])["input_ids"]
        full = tok(ex["prompt"] + ex["answer"])["input_ids"]
        assert full[: len(p)] == p and len(full) == len(p) + 1, ex
    assert {e["answer"] for e in val} == {" class", " function", " module"}


def test_task_baselines_show_room_for_fine_tuning():
    """The datasheet's figures: the base model is poor, a short LoRA run clearly better."""
    res = json.loads((DATASETS / "docstring_task" / "baselines.json").read_text())
    assert res["validation_examples"] == len(data.load_task("validation"))
    assert res["base"]["choice_accuracy"] < 0.45 and res["base"]["accuracy"] < 0.2
    assert res["lora"]["accuracy"] > res["base"]["choice_accuracy"] + 0.15
    assert res["lora"]["answer_loss"] < res["base"]["answer_loss"] - 2.0
    sheet = (DATASETS / "docstring_task" / "DATASHEET.md").read_text()
    assert f"{res['lora']['accuracy']:.3f}" in sheet


# --- model ------------------------------------------------------------------------------


def test_model_loads_offline_with_llama_architecture(bundled, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import LlamaForCausalLM

    model = data.load_model()
    cfg = model.config
    assert isinstance(model, LlamaForCausalLM) and not model.training
    assert cfg.num_key_value_heads < cfg.num_attention_heads  # grouped-query attention
    assert cfg.hidden_act == "silu" and cfg.tie_word_embeddings
    assert sum(p.numel() for p in model.parameters()) == report()["parameters"]
    assert next(model.parameters()).dtype.is_floating_point


def test_perplexity_matches_datasheet(bundled):
    rep = report()
    ids = data.validation_ids(rep["validation_tokens"])
    assert ids.shape == (rep["validation_tokens"],) and ids[0].item() == 0  # starts with <bos>
    from graders.notebook.lm import perplexity

    ppl = perplexity(data.load_model(), ids, seq_len=rep["seq_len"], batch_size=8)
    expected = rep["perplexity"]["trained"]
    # 1 %: float32 summation order may differ across CPUs and thread counts, nothing else.
    assert abs(ppl - expected) / expected < 0.01, f"validation perplexity {ppl:.3f}, datasheet {expected:.3f}"
    assert f"{expected:.2f}" in (DATASETS / "tiny_llama" / "DATASHEET.md").read_text()
    if not (DATASETS / "tiny_llama" / "INTERIM").exists():
        assert ppl < 0.5 * rep["perplexity"]["unigram_add_one"], (
            "the model must clearly beat the unigram baseline"
        )


def test_unigram_and_perplexity_helpers_agree_on_uniform_model():
    import math

    import torch

    from graders.notebook.lm import perplexity, unigram_perplexity

    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids):
            return type("Out", (), {"logits": torch.zeros(*input_ids.shape, 10)})()

    ids = torch.arange(100) % 10
    assert math.isclose(perplexity(Uniform(), ids, seq_len=16), 10.0, rel_tol=1e-6)
    # Add-one counts over a uniform train stream give the uniform distribution too.
    assert math.isclose(unigram_perplexity(torch.arange(1000) % 10, ids, 10, seq_len=16), 10.0, rel_tol=1e-6)


def test_switch_uses_another_local_checkpoint(tmp_path, monkeypatch, bundled):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = data.load_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    other = tmp_path / "other-llama"
    LlamaForCausalLM(cfg).save_pretrained(other)
    tok.save_pretrained(other)
    monkeypatch.setenv("LLMLABS_MODEL", str(other))
    assert data.model_source() == str(other)
    model = data.load_model()
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 1
    assert data.load_tokenizer().pad_token == "<|pad|>"
    from graders.notebook.lm import perplexity

    ppl = perplexity(model, data.validation_ids(512), seq_len=128)
    assert ppl > 1000  # an untrained model is near uniform over 4096 tokens
    monkeypatch.setenv("LLMLABS_MODEL", str(tmp_path / "nowhere"))
    with pytest.raises(OSError):
        data.load_model()


@pytest.mark.slow
def test_loading_writes_nothing_to_stderr():
    code = (
        "import graders.notebook.kernel as k; k.setup()\n"
        "import torch; k.setup()\n"
        "from graders.notebook.data import load_model, load_tokenizer, load_task, load_corpus\n"
        "from graders.notebook.data import validation_ids\n"
        "from graders.notebook.lm import perplexity\n"
        "tok = load_tokenizer(); m = load_model(); load_task('train'); load_corpus('validation')\n"
        "ids = validation_ids(16384); perplexity(m, ids[:1024])\n"
        "m.generate(**tok('Return the', return_tensors='pt'), max_new_tokens=5, do_sample=False)\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "LLMLABS_"))}
    env["HF_HUB_OFFLINE"] = "1"  # what the grading kernelspec sets; nothing else
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert out.stderr == "", f"loading wrote to stderr:\n{out.stderr}"


# --- build scripts, fast mode -----------------------------------------------------------


STDLIB_MATCHES = sys.version.split()[0] == BUILT_WITH


@pytest.mark.slow
@pytest.mark.skipif(not STDLIB_MATCHES, reason=f"the corpus was built from the CPython {BUILT_WITH} stdlib")
def test_corpus_and_task_rebuild_byte_identical(tmp_path):
    """Both builds take seconds in full, so CI checks them whole, not just a slice."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    script("build_corpus").build(stdlib, tmp_path / "corpus")
    script("build_task").build(stdlib, tmp_path / "task")
    # The tokenizer too: trained in full from the bundled training split, it is byte-identical.
    script("train_tokenizer").main(["--out", str(tmp_path / "tok")])
    assert (
        data.sha256_file(tmp_path / "tok" / "tokenizer.json")
        == data.read_manifest(DATASETS / "tiny_llama")["tokenizer.json"]
    ), "retraining the tokenizer gives a different tokenizer.json"
    for folder, out in (("pystdlib_docs", "corpus"), ("docstring_task", "task")):
        for name in ("train.jsonl", "validation.jsonl", "build_report.json"):
            assert data.sha256_file(tmp_path / out / name) == data.read_manifest(DATASETS / folder)[name], (
                f"rebuilding {folder}/{name} gives different bytes"
            )


@pytest.mark.slow
def test_build_scripts_fast_mode(tmp_path):
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    corpus, model, task = tmp_path / "corpus", tmp_path / "model", tmp_path / "task"
    rep = script("build_corpus").build(stdlib, corpus, max_files=60)
    assert rep["steps"]["kept"] > 0 and (corpus / "train.jsonl").stat().st_size > 0
    script("train_tokenizer").main(
        ["--corpus", str(corpus), "--out", str(model), "--max-docs", "200", "--vocab-size", "600"]
    )
    rep = script("train_model").main(
        ["--fast", "--corpus", str(corpus), "--tokenizer", str(model), "--out", str(model)]
    )
    assert rep["steps"] == 3 and (model / "model.safetensors").is_file()
    again = script("train_model").main(
        ["--fast", "--corpus", str(corpus), "--tokenizer", str(model), "--out", str(tmp_path / "again")]
    )
    # The log also records wall-clock seconds, which differ run to run: compare the losses.
    losses = [(r["step"], r["loss"]) for r in rep["loss_log"]]
    assert [(r["step"], r["loss"]) for r in again["loss_log"]] == losses, (
        "pre-training is not deterministic (seeded) any more"
    )
    assert data.sha256_file(tmp_path / "again" / "model.safetensors") == data.sha256_file(
        model / "model.safetensors"
    )
    rep = script("build_task").build(stdlib, task, max_files=150)
    assert rep["examples"]["train"] > 0 and rep["examples"]["validation"] > 0
    res = script("evaluate_task").main(["--fast", "--model", str(model), "--task", str(task)])
    assert 0.0 <= res["lora"]["accuracy"] <= 1.0
    copy_datasets(tmp_path / "copy", "docstring_task")
    script("manifest").main(["--root", str(tmp_path / "copy" / "datasets"), "--check"])  # exits 1 if stale


def test_training_logs_name_every_run_and_load_silently(bundled):
    logs = data.load_training_logs()
    truth = script("build_training_logs").TRUTH
    assert set(logs["runs"]) == set(truth), "runs.json and build_training_logs.TRUTH name different runs"
    steps = logs["config"]["steps"]
    for name, run in logs["runs"].items():
        assert len(run["train_loss"]) == len(run["grad_norm"]) == len(run["lr"]) == steps, name
        assert len(run["val_steps"]) == len(run["val_loss"]), name


@pytest.mark.slow
def test_training_logs_fast_mode_is_deterministic(tmp_path):
    build = script("build_training_logs")
    first = build.main(["--fast", "--out", str(tmp_path / "a")])
    again = build.main(["--fast", "--out", str(tmp_path / "b")])
    assert first["runs"] == again["runs"], "the training-log runs are not deterministic (seeded) any more"
    assert set(first["runs"]) == {"A", "B"} and len(first["runs"]["A"]["train_loss"]) == 4
