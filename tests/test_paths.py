"""The one folder walker (`graders.paths.regular_files`) that the kernel's scratch copy, the
batch worker, the assignment cache key and the students' wheel all use."""

from __future__ import annotations

import os

from graders.paths import regular_files


def test_regular_files_are_sorted_and_leave_out_links_and_skipped_folders(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.txt").write_text("x")
    (tmp_path / "a.ipynb").write_text("{}")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "m.pyc").write_bytes(b"")
    (tmp_path / "b" / "__pycache__").mkdir()
    (tmp_path / "b" / "__pycache__" / "n.pyc").write_bytes(b"")
    secret = tmp_path.parent / f"{tmp_path.name}-secret"
    secret.mkdir()
    (secret / "key.py").write_text("ANSWER = 42")
    os.symlink(secret / "key.py", tmp_path / "link.py")  # a link to a file
    os.symlink(secret, tmp_path / "linked_dir")  # and to a folder: neither is followed

    found = [p.relative_to(tmp_path).as_posix() for p in regular_files(tmp_path, skip=("__pycache__",))]

    assert found == ["a.ipynb", "b/x.txt"], found


def test_regular_files_skips_a_name_at_any_depth_and_keeps_everything_without_skip(tmp_path):
    (tmp_path / "d" / ".ipynb_checkpoints").mkdir(parents=True)
    (tmp_path / "d" / ".ipynb_checkpoints" / "nb-checkpoint.ipynb").write_text("{}")
    (tmp_path / "d" / "nb.ipynb").write_text("{}")

    assert [p.name for p in regular_files(tmp_path, skip=(".ipynb_checkpoints",))] == ["nb.ipynb"]
    assert len(regular_files(tmp_path)) == 2
