"""Every LLMLABS_* setting: read in one place, validated with a one-line error, and
listed in the README's table with its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from graders import settings
from graders.errors import LLMLabsError, SettingError
from graders.sandbox.limits import Limits
from tests.helpers import one_error_line, run_cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_table_lists_every_public_setting_with_its_default():
    rows = dict(re.findall(r"^\| `(LLMLABS_[A-Z_]+)` \| (.+?) \|", README, re.M))
    public = {s.env: s for s in settings.ALL if s.public}
    assert set(rows) == set(public), f"README table vs graders/settings.py: {set(rows) ^ set(public)}"
    for env, setting in public.items():
        expected = f"`{setting.default}`" if setting.default else "(unset)"
        assert rows[env] == expected, f"{env}: README says {rows[env]}, the code's default is {expected}"


def test_defaults_parse_and_limits_match_their_settings():
    settings.check_all({})
    assert Limits.from_env({}) == Limits()
    assert (
        settings.THREADS.read({}) == 2
        and settings.MODEL.read({}) is None
        and settings.SANDBOX.read({}) == "auto"
    )


@pytest.mark.parametrize(
    "env,value,message",
    [
        ("LLMLABS_THREADS", "two", "LLMLABS_THREADS must be an integer, got 'two'"),
        ("LLMLABS_THREADS", "0", "LLMLABS_THREADS must be positive, got 0"),
        (
            "LLMLABS_SANDBOX",
            "docker",
            "LLMLABS_SANDBOX must be one of auto, bwrap, rlimits, none, got 'docker'",
        ),
        ("LLMLABS_LIMIT_MEMORY_MB", "-5", "LLMLABS_LIMIT_MEMORY_MB must be positive, got -5"),
    ],
)
def test_a_bad_value_names_the_variable(env, value, message):
    with pytest.raises(SettingError) as info:
        settings.check_all({env: value})
    assert str(info.value) == message
    assert isinstance(info.value, LLMLabsError) and isinstance(info.value, ValueError)


def test_the_cli_refuses_a_bad_setting_in_one_line():
    line = one_error_line(run_cli("selfcheck", "linear_algebra", env={"LLMLABS_SANDBOX": "docker"}))
    assert line == "error: LLMLABS_SANDBOX must be one of auto, bwrap, rlimits, none, got 'docker'"


def test_no_module_reads_llmlabs_variables_by_itself():
    # One place: a module that reads os.environ["LLMLABS_..."] directly bypasses validation.
    root = Path(__file__).resolve().parents[1] / "graders"
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "settings.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"environ(\.get)?[\[(]\s*[\"']LLMLABS_", line):
                offenders.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
