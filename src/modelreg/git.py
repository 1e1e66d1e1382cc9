"""Git plumbing: every call goes through `run_git`, one process per question.

Tags are listed with one `for-each-ref` (see tag_cache), blobs and trees read with one `cat-file
--batch`;
there is no object per tag.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path

from modelreg.errors import GitError, ModelregError, RefConflict


def run_git(
    *args: str,
    cwd: Path | str = ".",
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> str:
    """Run git and return its stdout; raise GitError with the command and stderr on failure."""
    return run_git_bytes(*args, cwd=cwd, input=input, env=env, check=check).decode(
        "utf-8", "surrogateescape"
    )


def run_git_bytes(
    *args: str,
    cwd: Path | str = ".",
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> bytes:
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.run(
            ("git",) + args,
            cwd=cwd,
            input=input,
            env=full_env,
            capture_output=True,
        )
    except FileNotFoundError:
        raise ModelregError("git is not installed (or not on PATH)") from None
    if check and proc.returncode != 0:
        raise GitError(args, proc.returncode, proc.stderr.decode("utf-8", "replace"))
    return proc.stdout


def run_git_result(
    *args: str, cwd: Path | str = ".", timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run git and return the whole outcome (exit status, stdout, stderr) for the caller to read:
    for commands whose failure is an answer (`verify-tag` of an unsigned tag)."""
    try:
        return subprocess.run(
            ("git",) + args, cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError:
        raise ModelregError("git is not installed (or not on PATH)") from None


def git_ok(*args: str, cwd: Path | str = ".") -> bool:
    """True when the git command exits 0 (for yes/no questions)."""
    return (
        subprocess.run(
            ("git",) + args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ).returncode
        == 0
    )


def toplevel(cwd: Path | str = ".") -> Path:
    try:
        return Path(run_git("rev-parse", "--show-toplevel", cwd=cwd).strip())
    except GitError:
        raise ModelregError(
            f"{Path(cwd).resolve()} is not inside a git repository (run `modelreg init`)"
        ) from None


def rev_parse(rev: str, cwd: Path | str = ".") -> str | None:
    """The object id `rev` names, or None when it names nothing."""
    out = subprocess.run(
        ("git", "rev-parse", "--verify", "--quiet", "--end-of-options", rev),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    return out.stdout.decode().strip() or None if out.returncode == 0 else None


def head_commit(cwd: Path | str) -> str:
    commit = rev_parse("HEAD^{commit}", cwd)
    if commit is None:
        raise ModelregError(
            "the repository has no commits yet: make a first commit (or run `modelreg init`)"
        )
    return commit


def identity(cwd: Path | str) -> str:
    """`Name <email>` of the committer; raise a clear error when git has none."""
    try:
        ident = run_git("var", "GIT_COMMITTER_IDENT", cwd=cwd).strip()
    except GitError:
        raise ModelregError(
            'git has no identity: run `git config user.name "Your Name"` and `git config '
            "user.email you@example.com`"
        ) from None
    return ident.rsplit(" ", 2)[0]


def read_objects(cwd: Path | str, specs: list[str]) -> list[tuple[str, bytes] | None]:
    """(type, content) of each `rev:path` in one `cat-file --batch`; None where it does not
    exist."""
    if not specs:
        return []
    out = run_git_bytes("cat-file", "--batch", cwd=cwd, input=("\n".join(specs) + "\n").encode())
    results: list[tuple[str, bytes] | None] = []
    pos = 0
    for _ in specs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split(b" ")
        pos = end + 1
        if header[-1] == b"missing" or header[-1] == b"ambiguous":
            results.append(None)
            continue
        size = int(header[2])
        results.append((header[1].decode(), out[pos : pos + size]))
        pos += size + 1
    return results


def read_file(cwd: Path | str, rev: str, path: str) -> bytes | None:
    found = read_objects(cwd, [f"{rev}:{path}"])[0]
    return None if found is None or found[0] != "blob" else found[1]


def tree_names(tree: bytes) -> list[str]:
    """Entry names of a raw tree object (`mode name\\0<20-byte id>`)."""
    return list(tree_entries(tree))


def tree_entries(tree: bytes) -> dict[str, str]:
    """{name: object id} of a raw tree object."""
    entries = {}
    pos = 0
    while pos < len(tree):
        nul = tree.index(b"\0", pos)
        name = tree[tree.index(b" ", pos) + 1 : nul].decode("utf-8", "surrogateescape")
        entries[name] = tree[nul + 1 : nul + 21].hex()
        pos = nul + 21
    return entries


def ls_tree(cwd: Path | str, rev: str, path: str) -> dict[str, str]:
    """Blob ids of the files under `path` at `rev`, keyed by their path below `path`."""
    out = run_git("ls-tree", "-r", "-z", "--full-tree", rev, "--", path, cwd=cwd)
    files = {}
    prefix = path.rstrip("/") + "/"
    for entry in out.split("\0"):
        if entry:
            meta, _, name = entry.partition("\t")
            files[name[len(prefix) :] if name.startswith(prefix) else name] = meta.split()[2]
    return files


def commit_paths(
    root: Path, parent: str | None, paths: list[Path], removed: list[Path], message: str
) -> str:
    """Commit exactly `paths` (and the removal of `removed`) on top of `parent` through a private
    index, move HEAD's branch to it, and return it. The user's index and other changes are
    untouched."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        run_git("read-tree", *([parent] if parent else ["--empty"]), cwd=root, env=env)
        gone = [p.relative_to(root).as_posix() for p in removed]
        if gone:
            run_git("rm", "-q", "--cached", "--ignore-unmatch", "--", *gone, cwd=root, env=env)
        run_git(
            "add", "-f", "--", *[p.relative_to(root).as_posix() for p in paths], cwd=root, env=env
        )
        tree = run_git("write-tree", cwd=root, env=env).strip()
    commit = run_git(
        "commit-tree", tree, *(["-p", parent] if parent else []), "-m", message, cwd=root
    ).strip()
    run_git(
        "update-ref",
        "-m",
        f"modelreg: {message.splitlines()[0]}",
        "HEAD",
        commit,
        parent or "",
        cwd=root,
    )
    return commit


def object_ids(cwd: Path | str, specs: list[str]) -> list[str | None]:
    """The object id each `rev:path` names (None where nothing), in one `cat-file --batch-check`."""
    if not specs:
        return []
    out = run_git(
        "cat-file", "--batch-check=%(objectname)", cwd=cwd, input=("\n".join(specs) + "\n").encode()
    )
    return [
        None if line.endswith(" missing") or line.endswith(" ambiguous") else line
        for line in out.splitlines()
    ]


def write_blob_id(path: Path) -> str:
    """The blob id git would give the file at PATH (nothing is written)."""
    return run_git("hash-object", "--", path.name, cwd=path.parent).strip()


def index_blob(cwd: Path | str, path: str) -> str | None:
    """The blob id the index holds for PATH, or None."""
    out = run_git("ls-files", "-s", "--", path, cwd=cwd).split()
    return out[1] if len(out) >= 2 else None


def write_blob(cwd: Path | str, data: bytes) -> str:
    return run_git("hash-object", "-w", "--stdin", cwd=cwd, input=data).strip()


def build_commit(
    cwd: Path | str,
    parent: str | None,
    files: dict[str, bytes],
    message: str,
    replace: tuple[str, ...] = (),
    remove: tuple[str, ...] = (),
    sign: bool = False,
) -> str:
    """Write a commit object: PARENT's tree with the folders in `replace` emptied, the paths in
    `remove` dropped and `files` (path -> bytes) written. No ref moves; nothing outside .git
    changes."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        run_git("read-tree", *([parent] if parent else ["--empty"]), cwd=cwd, env=env)
        if replace or remove:
            run_git(
                "rm",
                "-r",
                "-q",
                "--cached",
                "--ignore-unmatch",
                "--",
                *replace,
                *remove,
                cwd=cwd,
                env=env,
            )
        entries = [
            f"100644 {write_blob(cwd, data)}\t{path}" for path, data in sorted(files.items())
        ]
        if entries:
            run_git(
                "update-index",
                "--add",
                "--index-info",
                cwd=cwd,
                env=env,
                input=("\n".join(entries) + "\n").encode(),
            )
        tree = run_git("write-tree", cwd=cwd, env=env).strip()
    return run_git(
        "commit-tree",
        *(["-S"] if sign else []),
        tree,
        *(["-p", parent] if parent else []),
        "-F",
        "-",
        cwd=cwd,
        input=message.encode(),
    ).strip()


def write_tag_object(cwd: Path | str, name: str, commit: str, message: str) -> str:
    """An annotated tag object for COMMIT, not yet named by any ref."""
    tagger = run_git("var", "GIT_COMMITTER_IDENT", cwd=cwd).strip()
    text = f"object {commit}\ntype commit\ntag {name}\ntagger {tagger}\n\n{message.rstrip()}\n"
    return run_git("mktag", cwd=cwd, input=text.encode()).strip()


ZERO = "0" * 40


def update_refs(cwd: Path | str, updates: list[tuple[str, str, str | None]], message: str) -> None:
    """Move every (ref, new, old) at once or none: one `update-ref --stdin` transaction. OLD None
    means the ref must not exist yet. A ref that is not at OLD (someone moved it) is a
    RefConflict."""
    lines = (
        ["start"]
        + [f"update {ref} {new} {old or ZERO}" for ref, new, old in updates]
        + ["prepare", "commit"]
    )
    try:
        run_git(
            "update-ref",
            "-m",
            message[:200],
            "--stdin",
            cwd=cwd,
            input=("\n".join(lines) + "\n").encode(),
        )
    except GitError as exc:
        raise RefConflict(
            f"{', '.join(ref for ref, _, _ in updates)} moved meanwhile: "
            f"{exc.stderr.splitlines()[-1] if exc.stderr else exc}"
        ) from None


def ls_remote_refs(cwd: Path | str, remote: str, patterns: list[str]) -> dict[str, str] | None:
    """{ref: object id} on REMOTE for the patterns (tags peeled to what the ref itself names);
    None when the remote does not exist or cannot be reached."""
    if not git_ok("remote", "get-url", remote, cwd=cwd):
        return None
    try:
        proc = subprocess.run(
            ("git", "ls-remote", "--refs", remote, *patterns),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode not in (0, 2):
        return None
    refs = {}
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        oid, _, ref = line.partition("\t")
        refs[ref] = oid
    return refs


def remote_head(cwd: Path | str, remote: str) -> str | None:
    """The branch REMOTE's HEAD names (`refs/heads/main`), asked over the network; None when it
    cannot be reached or has no branch."""
    try:
        proc = subprocess.run(
            ("git", "ls-remote", "--symref", remote, "HEAD"),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return None
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("ref: ") and line.endswith("\tHEAD"):
            return line[5:-5]
    return None


def checked_out_at(cwd: Path | str, ref: str) -> str | None:
    """The working tree (this one or a linked one) that has REF checked out, or None."""
    out = run_git("worktree", "list", "--porcelain", cwd=cwd)
    path = None
    for line in out.splitlines():
        if line.startswith("worktree "):
            path = line.removeprefix("worktree ")
        elif line == f"branch {ref}":
            return path
    return None


def common_dir(cwd: Path | str) -> Path:
    """The repository's git directory shared by its worktrees (`.git` in a plain clone), asked
    once."""
    return _common_dir(Path(cwd).resolve())


@functools.lru_cache(maxsize=16)
def _common_dir(root: Path) -> Path:
    return (root / run_git("rev-parse", "--git-common-dir", cwd=root).strip()).resolve()
