"""Stop a release whose tag is not the package's version: `v0.2.0` must release version 0.2.0.

Usage: python .github/scripts/check-version.py "$GITHUB_REF_NAME"   (run from the repository root)
"""

import sys
from pathlib import Path

import tomllib

tag = sys.argv[1] if len(sys.argv) == 2 else ""
version = tomllib.loads(Path("pyproject.toml").read_text())["project"]["version"]
if tag != f"v{version}":
    sys.exit(
        f"check-version: the tag {tag!r} is not v{version}, the version in pyproject.toml: nothing "
        "is published"
    )
print(f"releasing {version}")
