"""The one cache helper: a keyed file is believed only under its key; writes replace the file
whole; a cache that cannot be written only costs speed."""

from __future__ import annotations

from pathlib import Path

from helpers import git
from modelreg import cache


def test_keyed_files_answer_only_under_their_key(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    file = cache.path(tmp_path, "deploy-logs/churn")
    assert file == (tmp_path / ".git" / "modelreg" / "deploy-logs" / "churn").resolve()
    assert cache.read(file) is None and cache.read_keyed(file, "abc") is None
    cache.write_keyed(file, "abc", "body\nlines\n")
    assert cache.read_keyed(file, "abc") == "body\nlines\n"
    assert cache.read_keyed(file, "abd") is None
    assert [p.name for p in file.parent.iterdir()] == ["churn"]  # no temporary file left


def test_a_linked_worktree_shares_the_caches(tmp_path: Path) -> None:
    main = tmp_path / "main"
    main.mkdir()
    git(main, "init", "-q")
    git(main, "commit", "-q", "--allow-empty", "-m", "one")
    git(main, "worktree", "add", "-q", str(tmp_path / "other"))
    assert cache.path(tmp_path / "other", "x") == cache.path(main, "x")


def test_an_unwritable_cache_is_only_slower(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"  # its "folder" is a file: no one, root included, writes there
    blocked.write_text("")
    cache.write(blocked / "x", "text")  # no exception
    assert cache.read(blocked / "x") is None
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]
