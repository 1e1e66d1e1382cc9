"""serve, fetch: the pod side, also runnable on a laptop."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelreg.cli.output import byte_progress, emit_json, handle_errors, json_option, note
from modelreg.serving.limits import DEFAULT

if TYPE_CHECKING:
    from modelreg.serving.server import Deprecated


@click.command()
@click.argument("ref", required=False)
@click.option("--env", help="Serve what the deploy branch says is live in ENV.")
@click.option("--model", help="With --env: the model (default: the default or only one).")
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="In a pod, no git repo: the folder the artifact was fetched into.",
)
@click.option(
    "--card",
    "card_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --model-dir: the model card file (default: the MODELREG_CARD variable's text).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind (0.0.0.0: every interface).",
)
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="HTTP port."
)
@click.option(
    "--grpc-port", type=click.IntRange(1, 65535), help="Also serve the gRPC protocol on this port."
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option(
    "--max-body",
    default=DEFAULT.max_body,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body in bytes (over it: 413).",
)
@click.option(
    "--max-inflight",
    default=DEFAULT.max_inflight,
    show_default=True,
    type=click.IntRange(1),
    help="Inference requests handled at once; past it: 503 with Retry-After, at once.",
)
@click.option(
    "--max-connections",
    default=DEFAULT.max_connections,
    show_default=True,
    type=click.IntRange(1),
    help="Open connections; past it: 503 and close.",
)
@click.option(
    "--header-timeout",
    default=DEFAULT.header_timeout,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a client has to send a request's headers (slow clients: 408).",
)
@click.option(
    "--body-timeout",
    default=DEFAULT.body_timeout,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a request body may stall (then 408).",
)
@click.option(
    "--keep-alive",
    default=DEFAULT.keep_alive,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds an idle kept-alive connection stays open (above load balancers' usual 60).",
)
@click.option(
    "--drain-seconds",
    default=DEFAULT.drain_seconds,
    show_default=True,
    type=click.FloatRange(0),
    help="On SIGTERM: fail readiness and keep serving this long before stopping "
    "(what endpoints take to forget the pod; the manifests set it).",
)
@click.option(
    "--deprecated-since",
    metavar="ISO8601",
    help="In a pod (the manifests set it): the version is deprecated since then; answers carry "
    "the Deprecation and Sunset headers. REF and --env read it from the deploy branch.",
)
@click.option("--sunset", metavar="YYYY-MM-DD", help="With --deprecated-since: the sunset date.")
@click.option(
    "--replacement", metavar="TAG", help="With --deprecated-since: the version to use instead."
)
@click.pass_obj
@handle_errors
def serve(
    repo: str,
    ref: str | None,
    env: str | None,
    model: str | None,
    card_path: Path | None,
    model_dir: Path | None,
    host: str,
    port: int,
    grpc_port: int | None,
    device: str,
    max_body: int,
    max_inflight: int,
    max_connections: int,
    header_timeout: float,
    body_timeout: float,
    keep_alive: float,
    drain_seconds: float,
    deprecated_since: str | None,
    sunset: str | None,
    replacement: str | None,
) -> None:
    """Serve a version over the Open Inference Protocol v2 (REST), with /metrics and health probes.

    REF (NAME@VERSION) or --env ENV: the artifact is pulled from the DVC remote, verified. In a
    pod: --card FILE --model-dir DIR serve what `modelreg fetch` put there. The SHA-256 is checked
    again before loading. Needs the serve extra (KServe SDK) and torch.

    On SIGTERM the server answers 503 on /v2/health/ready at once, serves --drain-seconds more,
    then stops accepting and finishes the requests it accepted. Ctrl-C stops without the drain.

    Examples: modelreg serve churn@v3 --port 8080; modelreg serve --env prod
    """
    in_pod = model_dir is not None
    if sum(x is not None for x in (ref, env, model_dir)) != 1:
        raise click.UsageError(
            "give exactly one of REF, --env ENV or --model-dir DIR (with --card or MODELREG_CARD)"
        )
    if card_path is not None and not in_pod:
        raise click.UsageError("--card goes with --model-dir")
    if (deprecated_since is None) != (sunset is None) or (replacement and not sunset):
        raise click.UsageError(
            "--deprecated-since and --sunset go together (and --replacement with them)"
        )
    deprecation = _deprecation(deprecated_since, sunset, replacement)
    if importlib_missing("kserve") or importlib_missing("torch"):
        raise click.ClickException(
            "serve needs the serve extra and torch: pip install 'modelreg[serve]' torch"
        )
    import threading

    # torch and KServe take seconds to import: do it while the artifact streams in
    warm = threading.Thread(target=_import_server, daemon=True)
    warm.start()
    with tempfile.TemporaryDirectory(prefix="modelreg-serve-") as tmp:
        card, path, marked = _what_to_serve(repo, ref, env, model, card_path, model_dir, Path(tmp))
        deprecation = deprecation or marked
        warm.join()
        from modelreg.serving.runtime import TorchModel
        from modelreg.serving.server import serve as run_server

        _log_to_stderr()
        served = TorchModel(
            card, path, device, verified=model_dir is None
        )  # a pull checks SHA-256 as it writes
        limits = replace(
            DEFAULT,
            max_body=max_body,
            max_inflight=max_inflight,
            max_connections=max_connections,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            keep_alive=keep_alive,
            drain_seconds=drain_seconds,
        )
        if deprecation is not None:
            note(
                f"NOTE: {served.name}@{served.version} is deprecated (sunset "
                f"{deprecation.sunset}): "
                "answers carry the Deprecation and Sunset headers"
            )
        run_server(
            served,
            host,
            port,
            grpc_port,
            limits,
            deprecated=deprecation,
            on_ready=lambda where: note(
                f"Serving {served.name}@{served.version} on {where} "
                f"(sha256 {served.sha256[:12]} verified). Ctrl-C stops."
            ),
        )


def _log_to_stderr() -> None:
    """The server's own log (a model's failure with its request id and traceback) on stderr, as a
    pod's log wants it."""
    import logging

    log = logging.getLogger("modelreg")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _import_server() -> None:
    import torch  # noqa: F401

    from modelreg.serving import runtime, server  # noqa: F401


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


def _deprecation(
    since: str | None, sunset: str | None, replacement: str | None
) -> Deprecated | None:
    import datetime

    if since is None or sunset is None:
        return None
    try:
        datetime.datetime.fromisoformat(since.replace("Z", "+00:00"))
        datetime.date.fromisoformat(sunset)
    except ValueError:
        raise click.UsageError(
            f"--deprecated-since {since[:40]!r} / --sunset {sunset[:20]!r}: "
            "expected an ISO 8601 time and a YYYY-MM-DD date"
        ) from None
    from modelreg.serving.server import Deprecated

    return Deprecated(since, sunset, replacement or "")


def _what_to_serve(
    repo: str,
    ref: str | None,
    env: str | None,
    model: str | None,
    card_path: Path | None,
    model_dir: Path | None,
    tmp: Path,
) -> tuple[dict, Path, Deprecated | None]:
    if model_dir is not None:
        from modelreg.serving.source import pod_artifact, pod_card

        card = pod_card(card_path)
        return card, pod_artifact(model_dir, card), None
    from modelreg.handle import open_registry
    from modelreg.remote import pull
    from modelreg.serving.source import live_version
    from modelreg.versions import resolve

    registry = open_registry(repo)
    found = resolve(registry, ref) if ref else live_version(registry, env or "", model)
    note(f"Pulling {found.info.tag} from the DVC remote (verified)...")
    with byte_progress(found.pointer.size, f"Pulling {found.info.tag}") as progress:
        pulled = pull(registry, found, tmp / found.pointer.path, progress)
    from modelreg.policy import deprecations

    mark = deprecations(registry, found.info.model).get((found.info.model, str(found.info.version)))
    return (
        found.card,
        Path(pulled.path),
        None if mark is None else _deprecation(mark.since_iso(), mark.sunset, mark.replacement),
    )


@click.command()
@click.option(
    "--url", required=True, help="The object's URL in the DVC remote (as the manifests carry it)."
)
@click.option(
    "--md5",
    required=True,
    callback=lambda ctx, param, value: _hex(value, 32, param, ".dir"),
    help="The DVC object id (md5, or md5.dir for a folder).",
)
@click.option(
    "--sha256",
    required=True,
    callback=lambda ctx, param, value: _hex(value, 64, param),
    help="The artifact's SHA-256 from its card.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to put the artifact. Already holding the registered bytes: kept, nothing "
    "downloaded "
    "(an init container run again); holding anything else: replaced.",
)
@click.option(
    "--signature",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The artifact's model signature (model.sig): checked against the downloaded bytes.",
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --signature: the trusted public key (PEM).",
)
@click.option(
    "--identity", help="With --signature, keyless: the trusted Sigstore identity (with --issuer)."
)
@click.option("--issuer", help="The OIDC issuer of --identity.")
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds to connect to the storage and to wait between two reads (S3, HTTP).",
)
@json_option()
@handle_errors
def fetch(
    url: str,
    md5: str,
    sha256: str,
    out: Path,
    signature: Path | None,
    public_key: Path | None,
    identity: str | None,
    issuer: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Download a registered artifact from its DVC remote by URL, verified; no git repo needed.

    What the init container runs. Local paths, s3:// (AWS_ENDPOINT_URL for MinIO and other
    S3-compatible stores; credentials from the usual AWS variables), gs://, azure:// and
    http(s)://. md5 per object and SHA-256 overall are checked; on any mismatch or interruption
    nothing is left at --out. With --signature and --public-key (or --identity and --issuer) the
    artifact's OpenSSF model signature is checked too (extra `sign`).

    Example: modelreg fetch --url s3://models/files/md5/ab/cdef... --md5 abcdef... --sha256 ...
    --out /models/model.pt
    """
    from modelreg.artifact_signature import Trust
    from modelreg.serving.fetch import fetch as run_fetch

    trust = None
    if public_key is not None or identity is not None or issuer is not None:
        if public_key is not None and (identity or issuer):
            raise click.UsageError("pass --public-key or --identity/--issuer, not both")
        if public_key is None and not (identity and issuer):
            raise click.UsageError("--identity and --issuer go together")
        trust = (
            Trust(public_key=public_key.read_bytes())
            if public_key
            else Trust(identity=identity, issuer=issuer)
        )
    if (signature is None) != (trust is None):
        raise click.UsageError(
            "--signature needs --public-key (or --identity and --issuer), and they need it"
        )
    log = None if sys.stderr.isatty() else note
    with byte_progress(0 if log else 1 << 62, "Fetching") as progress:
        result = run_fetch(
            url,
            md5,
            sha256,
            out,
            progress if sys.stderr.isatty() else None,
            log,
            signature.read_bytes() if signature else None,
            trust,
            timeout,
        )
    if as_json:
        return emit_json(result.to_json())
    signed = f", signature by {result.signed_by} verified" if result.signed_by else ""
    if result.reused:
        return click.echo(
            f"Kept {result.path}: it already holds the registered bytes "
            f"({result.size} bytes, sha256 {result.sha256} verified{signed})."
        )
    click.echo(
        f"Fetched {result.path}: {result.size} bytes, {result.files} file(s), sha256 "
        f"{result.sha256} verified{signed}."
    )


def _hex(value: str, length: int, param: click.Parameter, suffix: str = "") -> str:
    """A usage error (exit 2) unless VALUE is LENGTH lowercase hex digits (and maybe SUFFIX)."""
    digits = value.removesuffix(suffix) if suffix else value
    if len(digits) != length or any(c not in "0123456789abcdef" for c in digits):
        raise click.BadParameter(
            f"{value[:80]!r} is not {length} lowercase hex digits"
            + (f" (optionally followed by {suffix})" if suffix else ""),
            param=param,
        )
    return value
