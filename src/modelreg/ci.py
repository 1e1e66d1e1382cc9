"""What a GitHub Actions run should do, read from the variables GitHub sets (no shell string
surgery).

A tag push deploys a registry version to the first environment; a tag that is not a registry version
(an application's own `v1.2` caught by the `v*` filter) is a notice, not a failure. A dispatch runs
only from the repository's default branch: whoever can push a branch cannot dispatch from it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from modelreg.errors import ModelregError
from modelreg.handle import Registry
from modelreg.refs import parse_tag


@dataclass(frozen=True)
class CiAction:
    action: str  # deploy, promote, rollback, or "skip" (nothing to do: `notice` says why)
    ref: str | None
    env: str
    automated: bool = False  # a tag push, not a person: holds apply
    notice: str = ""


def plan(registry: Registry, environ: Mapping[str, str]) -> CiAction:
    """A tag push deploys that tag to the first environment; workflow_dispatch does what its inputs
    say."""
    event = environ.get("GITHUB_EVENT_NAME", "")
    first_env = next(iter(registry.config.environments))
    name, kind = environ.get("GITHUB_REF_NAME", ""), environ.get("GITHUB_REF_TYPE", "")
    if event == "push":
        if kind != "tag":
            return CiAction(
                "skip",
                None,
                first_env,
                notice=f"a push of {kind or 'ref'} {name or '?'} deploys "
                "nothing (only version tags do)",
            )
        ref = parse_tag(name, registry.config.default_model)
        if ref is None or ref.version is None:
            grammar = "MODEL@vN" + (" or vN" if registry.config.default_model else "")
            return CiAction(
                "skip",
                None,
                first_env,
                notice=f"tag {name!r} is not a version of this registry ({grammar}): nothing "
                "deployed",
            )
        return CiAction("deploy", name, first_env, automated=True)
    if event == "workflow_dispatch":
        _check_default_branch(registry, environ)
        action = environ.get("MODELREG_ACTION") or "deploy"
        if action not in ("deploy", "promote", "rollback"):
            raise ModelregError(
                f"modelreg ci: unknown action {action!r} (deploy, promote, rollback)"
            )
        ref = environ.get("MODELREG_REF") or None
        if ref is None and action != "rollback":
            raise ModelregError(f"modelreg ci: {action} needs a ref (MODEL@VERSION)")
        return CiAction(action, ref, environ.get("MODELREG_ENV") or first_env)
    if event == "schedule":
        return CiAction("skip", None, first_env, notice="a scheduled run deploys nothing")
    raise ModelregError(
        f"modelreg ci: run from GitHub Actions on a tag push or workflow_dispatch "
        f"(GITHUB_EVENT_NAME is {event!r})"
    )


def _check_default_branch(registry: Registry, environ: Mapping[str, str]) -> None:
    """A dispatch must run from the default branch (the event's repository.default_branch; else the
    branch policy is read from)."""
    default = _event_default_branch(environ) or registry.policy.ref.split("/", 1)[-1]
    ran_from = environ.get("GITHUB_REF", "")
    if ran_from != f"refs/heads/{default}":
        raise ModelregError(
            f"modelreg ci: a dispatch runs only from the default branch ({default}); this one ran "
            f"from {ran_from or '?'}: run the workflow from {default}"
        )


def _event_default_branch(environ: Mapping[str, str]) -> str | None:
    path = environ.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            event = json.load(handle)
        branch = event["repository"]["default_branch"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return branch if isinstance(branch, str) and branch else None
