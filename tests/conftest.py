"""The fixtures every test module can ask for; they and the helpers live in the `helpers` package
(`from helpers import ...`)."""

from helpers import env, isolated_git, s3

__all__ = ["env", "isolated_git", "s3"]
