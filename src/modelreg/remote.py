"""The artifact as the DVC remote holds it: verify it and pull it, streaming and checking digests.

Reads go to the remote itself (never the local cache), in 4 MiB chunks, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelreg import artifact_signature, faults, git, store
from modelreg.artifact_signature import Trust
from modelreg.card import section
from modelreg.digest import (
    CHUNK,
    Hashes,
    Progress,
    feed,
    locked_progress,
    manifest_digest,
    md5_sha256_stream,
)
from modelreg.errors import ArtifactError, StoreError
from modelreg.handle import Registry
from modelreg.jsonable import JsonFields
from modelreg.versions import Resolved, VersionInfo


@dataclass(frozen=True)
class Verified(JsonFields):
    """What `verify` found for one version: state is ok, missing or corrupt."""

    tag: str
    state: str
    problems: list[str] = field(default_factory=list)
    files: int = 0
    size: int = 0
    signature: str = "unsigned"  # unsigned, verified: WHO, not checked: WHY, invalid


@dataclass(frozen=True)
class Placed(JsonFields):
    """An artifact written to PATH and checked: SIZE bytes in FILES files, with SHA256."""

    path: str
    size: int
    files: int
    sha256: str


@dataclass(frozen=True)
class Pulled(Placed):
    tag: str


class ObjectStore:
    """A DVC object store on some filesystem: paths by md5, existence, chunked reads."""

    def __init__(self, fs: Any, path: Callable[[str], str]) -> None:
        self.fs = fs
        self.path = path

    def exists(self, md5: str) -> bool:
        return bool(self.fs.exists(self.path(md5)))

    def present(self, md5: str) -> bool:
        """Like exists, but only a missing object is False: a remote that cannot be reached, times
        out or refuses access raises (fsspec's exists answers False for all of them on some
        filesystems)."""
        try:
            if isinstance(self.fs, LocalFiles):
                os.stat(self.path(md5))
            # a ranged read, not info(): fsspec's HTTP info turns every failure into "not found"
            else:
                self.fs.cat_file(self.path(md5), start=0, end=1)
        except FileNotFoundError:
            return False
        return True

    def chunks(self, md5: str, offset: int = 0) -> Iterator[bytes]:
        """The object's bytes from OFFSET on (a seek: a range read where the filesystem has
        them)."""
        with self.fs.open(self.path(md5), "rb") as handle:
            if offset:
                handle.seek(offset)
            while chunk := handle.read(CHUNK):
                yield chunk

    def read_small(self, md5: str) -> bytes:
        return b"".join(self.chunks(md5))

    def put(self, md5: str, source: Path) -> bool:
        """Send one cache object; False when the remote already has it. A directory remote on the
        cache's filesystem gets a hard link (the object is complete and read-only, so the link
        appears whole at its final name), another one a copy renamed into place; object stores an
        upload."""
        target = self.path(md5)
        if self.fs.exists(target):
            return False
        if "file" in _protocols(self.fs):
            final = Path(target)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, final)
                return True
            except FileExistsError:
                return False
            except OSError:
                pass  # another filesystem, or links not allowed: copy
            tmp = final.with_name(f".{final.name}.modelreg-{os.getpid()}-{uuid.uuid4().hex}")
            try:
                shutil.copyfile(source, tmp)
                os.chmod(tmp, 0o444)
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
            return True
        self.fs.put_file(str(source), target)
        return True


@contextlib.contextmanager
def open_remote(registry: Registry) -> Iterator[ObjectStore]:
    """The default DVC remote of the registry's working tree config (and config.local)."""
    from dvc.exceptions import DvcException

    with store.open_repo(registry.root) as repo:
        try:
            odb = repo.cloud.get_remote_odb()
        except DvcException as exc:
            raise StoreError(f"no DVC remote to read from: {store.one_line(exc)}") from None
        yield ObjectStore(odb.fs, odb.oid_to_path)


def _entries(remote: ObjectStore, md5: str) -> list[dict[str, str]]:
    """The (md5, relpath) entries of a directory object, its own md5 checked."""
    raw = remote.read_small(md5)
    if hashlib.md5(raw).hexdigest() != md5.removesuffix(".dir"):
        raise ArtifactError(f"directory listing {md5} is corrupt in the remote")
    try:
        entries = sorted(json.loads(raw), key=lambda e: e["relpath"])
    except (ValueError, TypeError, KeyError):
        raise ArtifactError(f"directory listing {md5} is not a DVC listing") from None
    for entry in entries:
        parts = str(entry["relpath"]).split("/")
        if entry["relpath"].startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ArtifactError(
                f"directory listing {md5} names a path outside its folder: "
                f"{entry['relpath'][:80]!r}"
            )
    return entries


def dir_listing(registry: Registry, found: Resolved) -> dict[str, str]:
    """relpath -> md5 of a folder version's files, from its `.dir` listing (the local DVC cache's
    copy when there, else the remote's); nothing of the files themselves is read."""
    md5 = found.pointer.md5
    objects = store.cache_objects_dir(registry.root)
    if (objects / md5[:2] / md5[2:]).is_file():
        local = ObjectStore(LocalFiles(), lambda oid: str(objects / oid[:2] / oid[2:]))
        return {e["relpath"]: e["md5"] for e in _entries(local, md5)}
    with version_store(registry, found) as remote:
        return {e["relpath"]: e["md5"] for e in _entries(remote, md5)}


def _stream_check(
    remote: ObjectStore, md5: str, out: Any | None, progress: Progress | None
) -> tuple[str, str, int]:
    """Read one object: (md5, sha256, size), writing it to `out` when given."""
    return md5_sha256_stream(remote.chunks(md5), out, progress)


def _check_version(
    remote: ObjectStore,
    found: Resolved,
    deep: bool,
    bundle: bytes | None,
    trusted: list[Trust],
    explicit: bool,
) -> Verified:
    pointer, tag = found.pointer, found.info.tag
    expected_sha = section(found.card, "artifact").get("sha256")
    objects = [(pointer.md5, pointer.path)]
    if not remote.exists(pointer.md5):
        return Verified(
            tag, "missing", [f"{pointer.path}: object {pointer.md5} is not in the remote"]
        )
    if pointer.is_dir:
        try:
            objects = [(e["md5"], e["relpath"]) for e in _entries(remote, pointer.md5)]
        except ArtifactError as exc:
            return Verified(tag, "corrupt", [str(exc)])
    problems, state, total, digests = [], "ok", 0, {}
    for md5, rel in objects:
        if not remote.exists(md5):
            problems.append(f"{rel}: object {md5} is not in the remote")
            state = "missing"
            continue
        got_md5, got_sha, size = _stream_check(remote, md5, None, None)
        total += size
        digests[rel] = got_sha
        if got_md5 != md5:
            problems.append(f"{rel}: md5 {got_md5} in the remote, {md5} registered")
            state = "corrupt" if state == "ok" else state
    if not pointer.is_dir and total != pointer.size and not problems:
        problems.append(f"{pointer.path}: {total} bytes in the remote, {pointer.size} registered")
        state = "corrupt"
    if deep and state == "ok" and expected_sha:
        got = manifest_digest(digests) if pointer.is_dir else digests[pointer.path]
        if got != expected_sha:
            problems.append(f"sha256 {got} in the remote, {expected_sha} in the card")
            state = "corrupt"
    signature = "unsigned"
    if bundle is not None and state == "ok":
        signature, problem = _check_signature(bundle, found, digests, trusted, explicit)
        if problem:
            problems.append(problem)
            state = "bad-signature"
    return Verified(tag, state, problems, files=len(objects), size=total, signature=signature)


def _check_signature(
    bundle: bytes, found: Resolved, digests: dict[str, str], trusted: list[Trust], explicit: bool
) -> tuple[str, str | None]:
    """(what the signature is, the problem if it fails) for the bytes just read from the remote."""
    from modelreg.errors import ModelregError

    try:
        signer = artifact_signature.signer_of(bundle)
        if explicit:
            candidates = trusted  # the key the user named: a signature by any other is invalid
        elif "key" in signer:
            candidates = [
                t
                for t in trusted
                if t.public_key and artifact_signature.key_id(t.public_key) == signer["key"]
            ]
        else:
            candidates = [t for t in trusted if t.identity]
        if not candidates:
            return (
                "not checked: signed by "
                f"{signer.get('identity') or 'key sha256:' + signer.get('key', '')[:16]}, "
                "whom no environment trusts (pass --public-key)"
            ), None
        names = artifact_signature.signed_names(digests, found.pointer.is_dir)
        return (
            "verified: "
            f"{artifact_signature.check(bundle, found.pointer.path, names, candidates[0])}",
            None,
        )
    except ModelregError as exc:
        return "invalid", str(exc)


def verify(
    registry: Registry,
    versions: list[Resolved],
    deep: bool = False,
    trusted: list[Trust] | None = None,
) -> list[Verified]:
    """Check each version's artifact in the remote: present, md5 and size (and SHA-256 with deep);
    its artifact signature, when it has one, against the bytes read and TRUSTED (default: whom the
    environments trust); and its tag: still the object its first deploy recorded, and the same as
    the git remote's."""
    explicit = trusted is not None
    if trusted is None:
        trusted = artifact_signature.trusted(registry)
    bundles = {
        found.info.tag: artifact_signature.signature_of(registry, found.info) for found in versions
    }
    by_remote: dict[tuple[str, tuple[tuple[str, str], ...]], list[Resolved]] = {}
    for found in versions:  # one connection per remote the versions were registered with
        name, settings = tag_remote(registry, found)
        by_remote.setdefault((name, tuple(sorted(settings.items()))), []).append(found)
    checked: dict[str, Verified] = {}
    for group in by_remote.values():
        with version_store(registry, group[0]) as remote:
            for found in group:
                checked[found.info.tag] = _check_version(
                    remote, found, deep, bundles[found.info.tag], trusted, explicit
                )
    results = [checked[found.info.tag] for found in versions]
    moved = tag_problems(registry, [found.info for found in versions])
    return [
        dataclasses.replace(r, state="moved", problems=r.problems + moved[r.tag])
        if moved.get(r.tag)
        else r
        for r in results
    ]


def tag_problems(registry: Registry, infos: list[VersionInfo]) -> dict[str, list[str]]:
    """Per tag, how it differs from its first deploy's record and from the git remote's tag."""
    from modelreg import target

    records = target.read_log(registry)
    remote_name = registry.config.deploy.remote
    patterns = [f"refs/tags/{i.tag}" for i in infos] if len(infos) <= 50 else ["refs/tags/*"]
    theirs = git.ls_remote_refs(registry.root, remote_name, patterns) if infos else {}
    problems: dict[str, list[str]] = {}
    pins = target.first_pins(records)
    for info in infos:
        pin = pins.get((info.model, str(info.version)))
        if pin is not None and pin.tag_object != info.object:
            problems.setdefault(info.tag, []).append(
                f"tag moved: it named {pin.tag_object[:12]} at its first deploy "
                f"({pin.commit[:8]}), now {info.object[:12]}"
            )
        other = (theirs or {}).get(f"refs/tags/{info.tag}")
        if other is not None and other != info.object:
            problems.setdefault(info.tag, []).append(
                f"tag differs on {remote_name}: {other[:12]} there, {info.object[:12]} here"
            )
    return problems


PUSH_WORKERS = 4


def push_objects(registry: Registry, objects: tuple[str, ...], cache: Path) -> int:
    """Send an artifact's objects (each file's md5, then its `.dir` listing last, so a listing never
    names a file the remote lacks) from the cache to the default remote, files in parallel
    (bounded); return how many were sent. Through fsspec when `light_store` answers, else through
    DVC."""
    light = light_store(registry)
    if light is None:
        return store.push_objects(registry.root, objects)
    files, listing = (
        [o for o in objects if not o.endswith(".dir")],
        [o for o in objects if o.endswith(".dir")],
    )
    try:
        with ThreadPoolExecutor(max_workers=PUSH_WORKERS) as pool:
            sent = sum(pool.map(lambda md5: light.put(md5, cache / md5[:2] / md5[2:]), files))
        sent += sum(light.put(md5, cache / md5[:2] / md5[2:]) for md5 in listing)
    except (
        Exception
    ) as exc:  # OSError, and whatever kinds s3fs and botocore raise: one line either way
        raise StoreError(f"push to the DVC remote failed: {type(exc).__name__}: {exc}") from None
    return sent


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def file_digests(
    registry: Registry, found: Resolved, progress: Progress | None = None
) -> dict[str, str]:
    """SHA-256 of each file of a version's artifact as the remote holds it (md5 checked on the way):
    the bytes a pod will get. Keys: relative paths in a folder, the file's name for one file."""
    with version_store(registry, found) as remote:
        return _file_digests(remote, found, progress)


def _file_digests(
    remote: ObjectStore, found: Resolved, progress: Progress | None
) -> dict[str, str]:
    pointer, tag = found.pointer, found.info.tag
    if not remote.exists(pointer.md5):
        raise ArtifactError(f"{tag}: object {pointer.md5} is not in the remote")
    objects = (
        [(e["md5"], e["relpath"]) for e in _entries(remote, pointer.md5)]
        if pointer.is_dir
        else [(pointer.md5, pointer.path)]
    )
    digests = {}
    for md5, rel in objects:
        if not remote.exists(md5):
            raise ArtifactError(f"{tag}: {rel} (object {md5}) is not in the remote")
        got_md5, digests[rel], _ = _stream_check(remote, md5, None, progress)
        if got_md5 != md5:
            raise ArtifactError(
                f"{tag}: {rel} is corrupt in the remote (md5 {got_md5}, registered {md5})"
            )
    return digests


def missing(registry: Registry, found: Resolved) -> list[str]:
    """What of a version's artifact its remote lacks (presence only: cheap enough for every
    deploy)."""
    with version_store(registry, found) as remote:
        return _lacking(remote, found)


def tag_remote(registry: Registry, found: Resolved) -> tuple[str, dict[str, str]]:
    """(name, settings) of the DVC remote a version's manifests fetch from: the default remote of
    the `.dvc/config` in its tag's tree, with what the working tree's `config.local` adds to the
    remote of that name (credentials; never its URL). ("", {}) when the tag names none."""
    sections = store.config_sections(git.read_file(registry.root, found.info.commit, ".dvc/config"))
    name = sections.get("core", {}).get("remote", "")
    settings = dict(sections.get(f"remote:{name}", {})) if name else {}
    local = registry.root / ".dvc" / "config.local"
    if settings and local.is_file():
        extra = store.config_sections(local.read_bytes()).get(f"remote:{name}", {})
        settings.update({k: v for k, v in extra.items() if k != "url"})
    return name, settings


@contextlib.contextmanager
def version_store(registry: Registry, found: Resolved) -> Iterator[ObjectStore]:
    """The object store of the remote FOUND's manifests fetch from (`tag_remote`): a remote added
    since (`modelreg remote add`) does not change where an old version's bytes are looked for. A
    directory or S3 remote with no settings but its URL, endpoint and region is asked through fsspec
    directly; anything else (credentials, other clouds) through DVC, told the tag's remote. A tag
    whose `.dvc/config` names no remote is looked for in the working tree's."""
    name, settings = tag_remote(registry, found)
    if not settings.get("url"):
        light = light_store(registry)
        with (
            contextlib.nullcontext(light) if light is not None else open_remote(registry) as remote
        ):
            yield remote
        return
    light = _light(settings, registry.root / ".dvc")
    if light is not None:
        yield light
        return
    from dvc.exceptions import DvcException

    with store.open_repo(registry.root, remote=name, remote_config=settings) as repo:
        try:
            odb = repo.cloud.get_remote_odb(name)
        except DvcException as exc:
            raise StoreError(f"no DVC remote to read from: {store.one_line(exc)}") from None
        yield ObjectStore(odb.fs, odb.oid_to_path)


def _lacking(remote: ObjectStore, found: Resolved) -> list[str]:
    if not remote.exists(found.pointer.md5):
        return [found.pointer.md5]
    if not found.pointer.is_dir:
        return []
    return [e["md5"] for e in _entries(remote, found.pointer.md5) if not remote.exists(e["md5"])]


LIGHT_SETTINGS = {"url", "endpointurl", "region"}


def light_store(registry: Registry) -> ObjectStore | None:
    """The default remote without DVC, when its settings are only those fsspec gets the same way DVC
    does (a directory, or S3 with an endpoint and region); else None."""
    texts = store.plain_configs(registry.root)
    if texts is None:
        return None
    return _light(store.remote_settings(*texts), registry.root / ".dvc")


def _light(settings: dict[str, str], config: Path) -> ObjectStore | None:
    url = settings.get("url")
    if (
        not url
        or set(settings) - LIGHT_SETTINGS
        or not (url.startswith("s3://") or "://" not in url)
    ):
        return None
    if "://" not in url and not Path(url).is_absolute():
        url = str(
            (config / url).resolve()
        )  # DVC reads a relative path from the config file's folder
    try:
        return object_store(url, settings.get("endpointurl"), settings.get("region"))
    except ArtifactError:
        return None


class LocalFiles:
    """The few filesystem calls an ObjectStore makes, for a directory remote: what fsspec's local
    filesystem does, without importing fsspec (a tenth of a second of every deploy)."""

    protocol = ("file", "local")

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def open(self, path: str, mode: str = "rb") -> Any:
        return open(path, mode)

    def put_file(self, source: str, target: str) -> None:
        shutil.copyfile(source, target)


def object_store(
    base_url: str,
    endpoint: str | None = None,
    region: str | None = None,
    timeout: float | None = None,
) -> ObjectStore:
    """The DVC object store under BASE_URL (a remote's URL): a local directory directly, anything
    else through fsspec; S3 takes ENDPOINT (else AWS_ENDPOINT_URL(_S3)) and REGION, credentials from
    the standard AWS variables. TIMEOUT: seconds to connect and between two reads (S3, HTTP)."""
    local = base_url.removeprefix("file://") if base_url.startswith("file://") else base_url
    if "://" not in local:
        root = os.path.abspath(local).rstrip("/") + "/files/md5"
        return ObjectStore(LocalFiles(), lambda oid: f"{root}/{oid[:2]}/{oid[2:]}")
    import fsspec

    options: dict[str, Any] = {}
    if base_url.startswith("s3://"):
        endpoint = (
            endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        )
        client = {
            **({"endpoint_url": endpoint} if endpoint else {}),
            **({"region_name": region} if region else {}),
        }
        if client:
            options["client_kwargs"] = client
        if timeout is not None:
            options["config_kwargs"] = {
                "connect_timeout": timeout,
                "read_timeout": timeout,
                "retries": {"max_attempts": 2, "mode": "standard"},
            }
    elif base_url.startswith(("http://", "https://")) and timeout is not None:
        import aiohttp

        options["client_kwargs"] = {
            "timeout": aiohttp.ClientTimeout(sock_connect=timeout, sock_read=timeout)
        }
    try:
        fs, path = fsspec.core.url_to_fs(base_url, **options)
    except (ImportError, ValueError) as exc:
        raise ArtifactError(
            f"cannot open {base_url}: {exc} (install the extra for that remote: modelreg[s3], ...)"
        ) from None
    if timeout is not None and hasattr(fs, "retries"):
        fs.retries = 1  # s3fs retries on its own five times: a timeout is TIMEOUT, not ten times it
    root = path.rstrip("/") + "/files/md5"
    return ObjectStore(fs, lambda oid: f"{root}/{oid[:2]}/{oid[2:]}")


def pull(
    registry: Registry, found: Resolved, dest: Path, progress: Progress | None = None
) -> Pulled:
    """Stream the artifact from the remote to `dest`, verified (md5 per object, SHA-256 overall),
    through a partial path beside it (see `download`): a failure leaves nothing at `dest`."""
    if dest.exists():
        raise ArtifactError(f"{dest} already exists: pull into a new path (-o PATH)")
    expected_sha = section(found.card, "artifact").get("sha256")
    with version_store(registry, found) as remote:
        sha, total, count = download(
            remote, found.pointer.md5, expected_sha, found.info.tag, dest, progress
        )
    return Pulled(tag=found.info.tag, path=str(dest), size=total, files=count, sha256=sha)


DOWNLOAD_WORKERS = 4
RETRIES = 3  # reads that fail mid-object are resumed from where they stopped, this many times


def download(
    remote: ObjectStore,
    md5: str,
    expected_sha: str | None,
    label: str,
    dest: Path,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    accept: Callable[[dict[str, str]], None] | None = None,
) -> tuple[str, int, int]:
    """Stream object MD5 (a file, or a `.dir` folder, its files in parallel) to DEST, md5 per object
    and SHA-256 overall checked while writing, and ACCEPT (given the SHA-256 per file, keyed "" for
    a single file) raising to refuse. Bytes go to a partial path beside DEST named by the object,
    renamed to DEST only once verified: a mismatch removes it; an interruption (a kill, a crash, a
    network failure past the retries) keeps it, and the next download of the same object to DEST
    resumes where it stopped, re-reading the local part to hash it and asking the remote for the
    rest (a range read; a remote without ranges starts the object again). Returns (sha256, bytes,
    files)."""
    if dest.exists():
        raise ArtifactError(f"{dest} already exists: pull into a new path")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.parent / f".{dest.name}.modelreg-partial-{md5.removesuffix('.dir')}"
    try:
        sha, total, count, digests = _pull_into(
            remote, md5, expected_sha, label, partial, progress, log
        )
        if accept is not None:
            accept(digests)
    except ArtifactError:
        store.remove(partial)  # wrong bytes are never resumed
        raise
    os.replace(partial, dest)
    return sha, total, count


def _pull_into(
    remote: ObjectStore,
    md5: str,
    expected_sha: str | None,
    label: str,
    artifact: Path,
    progress: Progress | None,
    log: Callable[[str], None] | None,
) -> tuple[str, int, int, dict[str, str]]:
    is_dir = md5.endswith(".dir")
    if not remote.present(md5):
        raise ArtifactError(f"{label}: object {md5} is not in the remote (was it pushed?)")
    entries = _entries(remote, md5) if is_dir else [{"md5": md5, "relpath": ""}]
    if is_dir and artifact.exists() and not artifact.is_dir() or not is_dir and artifact.is_dir():
        store.remove(artifact)
    shared = locked_progress(progress)

    def one(entry: dict[str, str]) -> tuple[str, int]:
        target = artifact / entry["relpath"] if entry["relpath"] else artifact
        target.parent.mkdir(parents=True, exist_ok=True)
        got_md5, got_sha, size, resumed = _fetch_object(remote, entry["md5"], target, shared)
        if got_md5 != entry["md5"]:
            raise ArtifactError(
                f"{label}: {entry['relpath'] or 'the artifact'} is corrupt in the remote "
                f"(md5 {got_md5}, registered {entry['md5']})"
            )
        if log is not None:
            again = f" (resumed at byte {resumed})" if resumed else ""
            log(
                f"{label}: {entry['relpath'] or 'artifact'} {size} bytes, md5 {got_md5} "
                f"verified{again}"
            )
        return got_sha, size

    with ThreadPoolExecutor(max_workers=min(DOWNLOAD_WORKERS, len(entries))) as pool:
        results = list(pool.map(one, entries))
    digests = {entry["relpath"]: sha for entry, (sha, _) in zip(entries, results)}
    total = sum(size for _, size in results)
    sha = manifest_digest(digests) if is_dir else digests[""]
    if expected_sha and sha != expected_sha:
        raise ArtifactError(f"{label}: sha256 {sha} does not match the registered {expected_sha}")
    return sha, total, len(entries), digests


def _fetch_object(
    remote: ObjectStore, md5: str, target: Path, progress: Progress | None
) -> tuple[str, str, int, int]:
    """Bring one object to TARGET, appending to what an interrupted run left there: (md5, sha256,
    size, byte it resumed at). The kept prefix is hashed from the local disk; the rest is read from
    the remote from that offset, and a read that fails midway is resumed RETRIES times."""
    hashes = Hashes()
    kept = target.stat().st_size if target.is_file() else 0
    if kept:
        with open(target, "rb") as local:
            while chunk := local.read(CHUNK):
                hashes.update(chunk)
    failures = 0
    with open(target, "ab" if kept else "wb") as out:
        while True:
            try:  # from the byte the file holds so far
                feed(hashes, _stepped(remote.chunks(md5, out.tell())), out, progress)
                break
            except (FileNotFoundError, PermissionError, ArtifactError):
                raise
            except OSError:
                failures += 1
                if failures > RETRIES:
                    raise
                out.flush()
                time.sleep(0.2 * failures)
        offset = out.tell()
    md5_hex, sha_hex = hashes.hexdigests()
    return md5_hex, sha_hex, offset, kept


def _stepped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """CHUNKS, with the kill tests' step after each one is written."""
    for chunk in chunks:
        yield chunk
        faults.step("download-chunk")
