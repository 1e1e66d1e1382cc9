"""Write the server image's digest into the package (src/modelreg/release.json) before the dists are
built, so that an installed release renders `ghcr.io/modelreg/modelreg:X.Y.Z@sha256:...`.

Usage: python .github/scripts/pin-image.py sha256:<64 hex>   (run from the repository root)
"""

import json
import re
import sys
from pathlib import Path

digest = sys.argv[1] if len(sys.argv) == 2 else ""
if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
    sys.exit(f"pin-image: expected sha256:<64 hex digits>, got {digest!r}")
path = Path("src/modelreg/release.json")
data = json.loads(path.read_text())
data["digest"] = digest
path.write_text(json.dumps(data, indent=2) + "\n")
print(f"{data['image']} pinned to {digest}")
