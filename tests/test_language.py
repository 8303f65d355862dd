"""The checks' failure messages in the learner's language (issue 28): LLMLABS_LANG, else the
open notebook's release language (JPY_SESSION_NAME), else English; every phrase a check
says has its translation, so a changed English phrase cannot silently stay untranslated."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from graders.notebook import asserts, language


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("LLMLABS_LANG", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    language.learner_language.cache_clear()
    yield
    language.learner_language.cache_clear()


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_english_by_default():
    msg = _message(asserts.assert_close, np.zeros(3), np.ones(3), rtol=0, atol=1e-6, name="f(x)")
    assert msg.startswith("f(x): 3 of 3 values differ from the expected ones"), msg


def test_chinese_when_the_setting_says_so(monkeypatch):
    monkeypatch.setenv("LLMLABS_LANG", "zh")
    msg = _message(asserts.assert_close, np.zeros(3), np.ones(3), rtol=0, atol=1e-6, name="f(x)")
    assert msg.startswith("f(x)：3 个值中有 3 个与期望值不符（容差：atol=1e-06，rtol=0）"), msg
    assert "相差最大处在索引 (0,)" in msg and "期望：[1., 1., 1.]" in msg
    assert (
        _message(asserts.assert_shape, np.zeros((2, 3)), (3, 2))
        == "result：应为形状 (3, 2)，实际形状为 (2, 3)"
    )


def test_chinese_for_a_notebook_released_in_chinese(monkeypatch, tmp_path):
    nb = tmp_path / "unit.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {"llmlabs_language": "zh"}, "nbformat": 4}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JPY_SESSION_NAME", "some/dir/unit.ipynb")  # relative to the server's root
    assert language.learner_language() == "zh"
    msg = _message(asserts.assert_scalar_close, 1.5, 1.0, rtol=0, atol=0.1, name="loss")
    assert msg == "loss：期望 1.0（atol=0.1，rtol=0），实际为 1.5", msg


def test_an_english_notebook_or_a_bad_setting_stays_english(monkeypatch, tmp_path):
    nb = tmp_path / "unit.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4}))
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb))
    assert language.learner_language() == "en"
    language.learner_language.cache_clear()
    monkeypatch.setenv("LLMLABS_LANG", "klingon")
    assert language.learner_language() == "en"


def test_every_phrase_the_checks_say_is_translated():
    tree = ast.parse(Path(asserts.__file__).read_text())
    said = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "say"
        and isinstance(node.args[0], ast.Constant)
    }
    assert len(said) >= 10, said
    for lang, phrases in language.PHRASES.items():
        missing = said - set(phrases)
        assert not missing, f"{lang}: no translation for {sorted(missing)}"
        stale = set(phrases) - said
        assert not stale, f"{lang}: translations of phrases no check says any more: {sorted(stale)}"
