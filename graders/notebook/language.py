"""The language a learner reads, for the fixed phrases of the checks' failure messages.

`LLMLABS_LANG` when it is set (a Chinese course's grading kernel has it); else, in
JupyterLab, the language the open notebook was released in (its `llmlabs_language`
metadata; Jupyter names the notebook in `JPY_SESSION_NAME`); else English. Code, grade
ids, numbers and names stay as they are in every language.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from graders import settings
from graders.errors import SettingError

# English template -> its translation. Placeholders are filled after the lookup.
PHRASES: dict[str, dict[str, str]] = {
    "zh": {
        "{name}: expected an array (NumPy or torch), got an object of type {type}": (
            "{name}：应为数组（NumPy 或 torch），实际是 {type} 类型的对象"
        ),
        "{name}: expected shape {expected}, got shape {got}": "{name}：应为形状 {expected}，实际形状为 {got}",
        "{name}: expected dtype {expected}, got dtype {got}": (
            "{name}：应为 dtype {expected}，实际 dtype 为 {got}"
        ),
        "{name}: expected numbers, got dtype {got}": "{name}：应为数值，实际 dtype 为 {got}",
        "{name}: NaN mismatch at index {idx}: expected {expected}, got {got} "
        "({unexpected} unexpected NaNs, {missing} missing)": (
            "{name}：NaN 的位置不一致，索引 {idx}：期望 {expected}，实际 {got}"
            "（多出 {unexpected} 个 NaN，缺少 {missing} 个）"
        ),
        "{name}: {bad} of {size} values differ from the expected ones "
        "(tolerance: atol={atol}, rtol={rtol})": (
            "{name}：{size} 个值中有 {bad} 个与期望值不符（容差：atol={atol}，rtol={rtol}）"
        ),
        "  worst at index {idx}: expected {expected}, got {got} (abs error {abs_err}, rel error {rel_err})": (
            "  相差最大处在索引 {idx}：期望 {expected}，实际 {got}（绝对误差 {abs_err}，相对误差 {rel_err}）"
        ),
        "  expected: {value}": "  期望：{value}",
        "  got:      {value}": "  实际：{value}",
        "{name}: expected a single number, got an array of shape {shape}": (
            "{name}：应为单个数，实际是形状为 {shape} 的数组"
        ),
        "{name}: expected a number, got {type}: {value}": "{name}：应为一个数，实际是 {type}：{value}",
        "{name}: expected {expected} (atol={atol}, rtol={rtol}), got {got}": (
            "{name}：期望 {expected}（atol={atol}，rtol={rtol}），实际为 {got}"
        ),
    }
}


@functools.lru_cache(maxsize=1)
def learner_language() -> str:
    """`en` or `zh` (see the module's docstring); decided once per kernel."""
    if settings.LANG.env in os.environ:
        try:
            return settings.LANG.read()
        except SettingError:
            return "en"
    session = os.environ.get("JPY_SESSION_NAME", "")
    if session.endswith(".ipynb"):
        for candidate in (Path(session), Path.cwd() / Path(session).name):
            try:
                found = json.loads(candidate.read_text(encoding="utf-8"))["metadata"].get("llmlabs_language")
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
            return found if found in PHRASES else "en"
    return "en"


def say(template: str, **values: object) -> str:
    """`template` in the learner's language, with `values` filled in."""
    return PHRASES.get(learner_language(), {}).get(template, template).format(**values)
