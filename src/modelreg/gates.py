"""What a version must show before it lands in an environment, per `modelreg.yaml`, all read from
git: `requires` (it ran in another environment), `soak` (long enough there, never rolled back
there), `validate` (a recorded pass), `approvals` (N distinct allowed signers, not the tag's author)
and `require_signed` (an allowed signer signed its tag) and `require_artifact_signature` (the
trusted key or identity signed the artifact, and the bytes in the remote match the signature). Every
gate is evaluated, and a refusal lists each failed one with why; a rollback is held to the gates
about the version itself (servable, validate, signed, artifact signed). `servable` (modelreg's
server can run it: one program file, a card signature) applies wherever the serving kind runs
modelreg's server."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from modelreg.card import section
from modelreg.errors import DeployError, ModelregError
from modelreg.handle import Registry
from modelreg.servable import problems, runs_modelreg_server
from modelreg.target import DeployRecord
from modelreg.versions import Resolved

VERSION_GATES = ("servable", "validate", "signed", "artifact", "lineage")


@dataclass(frozen=True)
class Gate:
    name: str  # e.g. "requires staging", "soak 2h", "approvals 2"
    passed: bool
    detail: str
    signer: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.name, "passed": self.passed, "detail": self.detail}


def evaluate(
    registry: Registry,
    records: list[DeployRecord],
    resolved: Resolved,
    env: str,
    only: tuple[str, ...] | None = None,
    memo: dict[tuple[str, ...], Gate] | None = None,
) -> list[Gate]:
    """Every gate ENV sets (or those named in ONLY), passed or not. MEMO, kept by one deploy across
    its compare-and-swap attempts, holds the results that do not depend on the deploy log."""
    settings = registry.config.env(env)
    found = []
    if runs_modelreg_server(registry.config.serving) and (only is None or "servable" in only):
        found.append(_servable(resolved))
    if settings.requires and (only is None or "requires" in only):
        found.append(_requires(records, resolved, env, settings.requires))
        if settings.soak:
            found.append(_soak(records, resolved, env, settings.requires, settings.soak))
    if settings.validate and (only is None or "validate" in only):
        found.append(_validate(registry, resolved))
    if settings.approvals and (only is None or "approvals" in only):
        found.append(_approvals(registry, records, resolved, env, settings.approvals))
    if settings.require_signed and (only is None or "signed" in only):
        found.append(_signed(registry, resolved))
    if settings.require_artifact_signature and (only is None or "artifact" in only):
        found.append(_artifact_signed(registry, resolved, env, {} if memo is None else memo))
    if settings.require_image_digest:
        found.append(_image_digest(registry))
    if settings.require_lineage and (only is None or "lineage" in only):
        found.append(_lineage(resolved))
    if settings.schema == "compatible" and (only is None or "schema" in only):
        found.append(_schema(registry, records, resolved, env))
    return found


def _lineage(resolved: Resolved) -> Gate:
    from modelreg.lineage import problems as lineage_problems

    why = lineage_problems(resolved.card)
    lineage = section(resolved.card, "lineage")
    return Gate(
        "lineage",
        why is None,
        why or f"stage {lineage.get('stage')} of {len(lineage.get('deps', []))} input(s)",
    )


def _schema(registry: Registry, records: list[DeployRecord], resolved: Resolved, env: str) -> Gate:
    """The version's signature does not break the callers of the one live in ENV (`modelreg
    diff`)."""
    from modelreg.compare import compatibility
    from modelreg.target import live
    from modelreg.versions import resolve

    current = live(records, env, resolved.info.model)
    if current is None or current.tag == resolved.info.tag:
        return Gate(
            "schema compatible",
            True,
            "nothing live to compare with" if current is None else "already live",
        )
    try:
        verdict = compatibility(resolve(registry, current.tag).card, resolved.card)
    except ModelregError as exc:  # the live tag is gone: nothing to hold the signature to
        return Gate("schema compatible", True, f"live {current.tag} not readable ({exc})")
    breaking = [f"{r.where}: {r.text}" for r in verdict.reasons if r.kind == "breaking"]
    return Gate(
        "schema compatible",
        not breaking,
        f"against live {current.tag}"
        if not breaking
        else f"breaks the callers of live {current.tag}: "
        + "; ".join(breaking)
        + f" (see `modelreg diff {current.tag} {resolved.info.tag}`; --force overrides, recorded)",
    )


def _image_digest(registry: Registry) -> Gate:
    from modelreg.image import server_image

    image = server_image(registry.config)
    return Gate(
        "image digest",
        image.pinned,
        f"{image.name}"
        if image.pinned
        else f"the manifests would name {image.name}, not an image@sha256:... digest: install a "
        "released "
        "modelreg (it ships its image's digest) or set serving.image to an image by digest",
    )


OVERRIDABLE = (
    "schema compatible",
)  # gates --force may override (the deploy records Modelreg-Forced)


def override(gates: list[Gate], force: bool) -> tuple[list[Gate], bool]:
    """With FORCE, the failed gates in OVERRIDABLE pass, saying so; True when one was overridden."""
    if not force or not any(not g.passed and g.name in OVERRIDABLE for g in gates):
        return gates, False
    return [
        Gate(g.name, True, f"overridden with --force: {g.detail}", g.signer)
        if not g.passed and g.name in OVERRIDABLE
        else g
        for g in gates
    ], True


def enforce(gates: list[Gate], resolved: Resolved, env: str) -> str | None:
    """Raise one DeployError listing every failed gate; else return the signer (for the
    trailer), if any."""
    failed = [g for g in gates if not g.passed]
    if failed:
        raise DeployError(
            f"{resolved.info.tag} may not go to {env}: "
            + "; ".join(f"[{g.name}] {g.detail}" for g in failed)
        )
    return next((g.signer for g in gates if g.signer), None)


def _servable(resolved: Resolved) -> Gate:
    why = problems(resolved.card, resolved.pointer)
    if why:
        return Gate(
            "servable",
            False,
            f"modelreg's server would refuse {resolved.info.tag}: {'; '.join(why)}",
        )
    inspected = isinstance(resolved.card.get("inspection"), dict)
    return Gate(
        "servable",
        True,
        "one program file with a signature"
        if inspected
        else "one file with a signature (format not inspected at register: the server checks it on "
        "load)",
    )


def _requires(records: list[DeployRecord], resolved: Resolved, env: str, required: str) -> Gate:
    info = resolved.info
    ran = any(
        r.env == required and r.model == info.model and r.version == str(info.version)
        for r in records
    )
    return Gate(
        f"requires {required}",
        ran,
        f"live in {required}"
        if ran
        else f"{info.tag} was never live in {required}, which {env} requires: deploy it to "
        f"{required} first "
        f"(modelreg deploy {info.tag} --env {required})",
    )


def _soak(
    records: list[DeployRecord], resolved: Resolved, env: str, required: str, soak: str
) -> Gate:
    """It ran in REQUIRED for at least SOAK in all (deploy-branch commit times; until now when it
    still runs there) and was never rolled back there."""
    from modelreg.config import duration_seconds

    info, version = resolved.info, str(resolved.info.version)
    mine = [
        r
        for r in reversed(records)
        if r.env == required and r.model == info.model and r.changes_manifests
    ]
    if any(r.action == "rollback" and r.rolled_back == version for r in mine):
        return Gate(
            f"soak {soak}",
            False,
            f"{info.tag} was rolled back in {required}: it cannot soak its way to {env}",
        )
    ran = 0
    for i, record in enumerate(mine):
        if record.version == version:
            end = mine[i + 1].timestamp if i + 1 < len(mine) else int(time.time())
            ran += max(0, end - record.timestamp)
    wanted = duration_seconds(soak, f"environments.{env}.soak")
    if ran < wanted:
        return Gate(
            f"soak {soak}",
            False,
            f"{info.tag} has run in {required} for {_span(ran)}; {env} requires "
            f"{soak} (soak), {_span(wanted - ran)} to go",
        )
    return Gate(f"soak {soak}", True, f"ran {_span(ran)} in {required}")


def _validate(registry: Registry, resolved: Resolved) -> Gate:
    from modelreg.validate import passed

    ok = passed(registry, resolved)
    tag = resolved.info.tag
    return Gate(
        "validate",
        ok,
        "a recorded pass"
        if ok
        else f"{tag} has no passed validation: run `modelreg validate {tag} --record` first",
    )


def _approvals(
    registry: Registry, records: list[DeployRecord], resolved: Resolved, env: str, needed: int
) -> Gate:
    from modelreg.signing import approvals

    info = resolved.info
    counted, ignored = approvals(registry, records, info, env)
    why = f" (not counted: {'; '.join(ignored)})" if ignored else ""
    detail = (
        f"{env} requires {needed} approvals of {info.tag} and it has {len(counted)}"
        f"{': ' + ', '.join(counted) if counted else ''}{why}"
    )
    if len(counted) < needed:
        detail += f": allowed signers run `modelreg approve {info.tag} --env {env}`"
    return Gate(f"approvals {needed}", len(counted) >= needed, detail)


def _signed(registry: Registry, resolved: Resolved) -> Gate:
    from modelreg.signing import verify

    found = verify(registry, resolved.info)
    if found.signer is None:
        return Gate(
            "signed",
            False,
            f"a signed version is required and {resolved.info.tag} is not: {found.detail}",
        )
    return Gate("signed", True, f"signed by {found.signer}", signer=found.signer)


def _artifact_signed(
    registry: Registry, resolved: Resolved, env: str, memo: dict[tuple[str, ...], Gate]
) -> Gate:
    """The artifact signature at the tag is the trusted signer's and signs the bytes in the remote
    (streamed and hashed: the cost of one read of the artifact from the remote). It does not depend
    on the deploy log, so a deploy that retries its compare-and-swap reads the bytes once."""
    key = ("artifact", resolved.info.object, env)
    if key not in memo:
        memo[key] = _check_artifact_signature(registry, resolved, env)
    return memo[key]


def _check_artifact_signature(registry: Registry, resolved: Resolved, env: str) -> Gate:
    from modelreg import artifact_signature
    from modelreg.remote import file_digests

    info = resolved.info
    bundle = artifact_signature.signature_of(registry, info)
    if bundle is None:
        return Gate(
            "artifact signed",
            False,
            f"{env} requires a signed artifact and {info.tag} has none: register "
            "it with --sign-artifact --key KEY",
        )
    try:
        trust = artifact_signature.trust_of(registry, registry.config.env(env))
        digests = file_digests(registry, resolved)
        who = artifact_signature.check(
            bundle,
            resolved.pointer.path,
            artifact_signature.signed_names(digests, resolved.pointer.is_dir),
            trust,
        )
    except ModelregError as exc:
        return Gate("artifact signed", False, str(exc))
    return Gate(
        "artifact signed",
        True,
        f"signed by {who}; the {len(digests)} file(s) in the remote match it",
    )


def _span(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
