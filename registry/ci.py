"""What a GitHub Actions run should do, read from the variables GitHub sets (no shell string surgery)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from modelreg.errors import ModelregError
from modelreg.refs import parse_tag
from modelreg.registry import Registry


@dataclass(frozen=True)
class CiAction:
    action: str  # deploy, promote or rollback
    ref: str | None
    env: str
    automated: bool = False  # a tag push, not a person: holds apply


def plan(registry: Registry, environ: Mapping[str, str]) -> CiAction:
    """A tag push deploys that tag to the first environment; workflow_dispatch does what its inputs say."""
    event = environ.get("GITHUB_EVENT_NAME", "")
    first_env = next(iter(registry.config.environments))
    if event == "push":
        if environ.get("GITHUB_REF_TYPE") != "tag":
            raise ModelregError(f"modelreg ci: a push of {environ.get('GITHUB_REF', '?')} is not a tag push")
        tag = environ.get("GITHUB_REF_NAME", "")
        if parse_tag(tag, registry.config.default_model) is None:
            raise ModelregError(f"modelreg ci: tag {tag!r} is not a version tag (MODEL@vN"
                                + (", or vN" if registry.config.default_model else "") + ")")
        return CiAction("deploy", tag, first_env, automated=True)
    if event == "workflow_dispatch":
        action = environ.get("MODELREG_ACTION") or "deploy"
        if action not in ("deploy", "promote", "rollback"):
            raise ModelregError(f"modelreg ci: unknown action {action!r} (deploy, promote, rollback)")
        ref = environ.get("MODELREG_REF") or None
        if ref is None and action != "rollback":
            raise ModelregError(f"modelreg ci: {action} needs a ref (MODEL@VERSION)")
        return CiAction(action, ref, environ.get("MODELREG_ENV") or first_env)
    raise ModelregError(f"modelreg ci: run from GitHub Actions on a tag push or workflow_dispatch "
                        f"(GITHUB_EVENT_NAME is {event!r})")
