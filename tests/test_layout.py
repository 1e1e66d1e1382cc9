"""The package as tools see it (issue #21): every module under src/modelreg is importable by its
folder's name, none shadows the standard library, and the package says it is typed."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import modelreg

PACKAGE = Path(modelreg.__file__).parent


def test_the_installed_package_is_this_tree_and_typed() -> None:
    here = Path(__file__).resolve().parents[1] / "src" / "modelreg"
    assert here == PACKAGE
    assert (PACKAGE / "py.typed").is_file()


def test_no_module_shadows_the_standard_library_and_each_imports() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    shadows = {m.stem for m in modules} & set(sys.stdlib_module_names)
    assert not shadows, f"rename these: {sorted(shadows)}"
    for path in modules:
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        importlib.import_module(name)
