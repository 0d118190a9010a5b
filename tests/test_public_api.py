"""The public API is listed in literal ``__all__`` lists that match what the modules define.

As httpx's own test does for its package: every public module of ``scimcore`` and
``scimcore_adapters`` (found on disk, so a new module is checked without being listed here)
has an ``__all__`` that equals its public names. A module's public names are those it binds at
top level without a leading underscore (``def``, ``class``, assignments), plus the names it
imports from this project and lists in ``__all__`` (re-exports, e.g. :mod:`scimcore.filters`
re-exporting the filter tree); a package's are every name it holds but its submodules. A module
that needs an optional extra which is not installed is skipped, with the missing module named.
"""

from __future__ import annotations
import __future__

import ast
import importlib
import inspect
import types
from pathlib import Path

import pytest

import scimcore
import scimcore_adapters

PROJECT = ("scimcore", "scimcore_adapters")


def _public_modules() -> list[str]:
    names = []
    for package in (scimcore, scimcore_adapters):
        root = Path(package.__file__).parent  # type: ignore[arg-type]
        for path in sorted(root.rglob("*.py")):
            parts = [package.__name__, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            if not any(p.startswith("_") for p in parts):
                names.append(".".join(parts))
    return names


MODULES = _public_modules()

#: Modules known to break the rule, each with why it is not fixed here; strict, so a module
#: that comes to follow the rule fails until its entry goes. The SQL backend is being split
#: into new modules on its own branch (issue #18); its new modules are checked as they land.
KNOWN_GAPS: dict[str, str] = {}


def _import(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing.split(".")[0] in PROJECT:
            raise
        pytest.skip(f"{name} needs {missing!r}, an optional extra that is not installed")


def _bound(statements: list[ast.stmt]) -> tuple[set[str], set[str]]:
    """The names bound at top level: (defined here, imported from this project)."""
    defined: set[str] = set()
    imported: set[str] = set()
    for node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        defined.add(leaf.id)
        elif isinstance(node, ast.ImportFrom):
            if node.level > 0 or (node.module or "").split(".")[0] in PROJECT:
                imported.update(a.asname or a.name for a in node.names)
        elif isinstance(node, (ast.If, ast.Try)):
            for block in (node.body, node.orelse, *(h.body for h in getattr(node, "handlers", []))):
                more_defined, more_imported = _bound(block)
                defined |= more_defined
                imported |= more_imported
    return defined, imported


def test_every_public_module_is_found() -> None:
    assert {"scimcore", "scimcore.patch", "scimcore_adapters.sql"} <= set(MODULES)
    assert not any(name.startswith("scimcore._") for name in MODULES)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_GAPS[n], strict=True))
        if n in KNOWN_GAPS
        else n
        for n in MODULES
    ],
)
def test_all_equals_the_public_names(name: str) -> None:
    module = _import(name)
    exported = module.__all__
    assert isinstance(exported, list), f"{name}.__all__ must be a literal list"
    assert len(exported) == len(set(exported)), f"duplicates in {name}.__all__"
    if hasattr(module, "__path__"):  # a package: everything it holds but its submodules
        public = {
            n
            for n, obj in vars(module).items()
            if not n.startswith("_")
            and not isinstance(obj, (types.ModuleType, __future__._Feature))
        }
        public |= {"__version__"} & set(vars(module))
        assert set(exported) == public
        return
    source = inspect.getsource(module)
    defined, imported = _bound(ast.parse(source).body)
    defined = {n for n in defined if not n.startswith("_")}
    missing = defined - set(exported)
    assert not missing, f"{name} defines public names missing from __all__: {sorted(missing)}"
    stray = set(exported) - defined - imported
    assert not stray, f"{name}.__all__ lists names it neither defines nor re-exports: {stray}"


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist_and_are_documented(name: str) -> None:
    module = _import(name)
    assert module.__doc__, f"{name} has no module docstring"
    for attr in module.__all__:
        obj = getattr(module, attr)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name}.{attr} has no docstring"


def test_package_exports_every_public_error() -> None:
    from scimcore import errors

    public_errors = {
        n
        for n, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, errors.SCIMError) and not n.startswith("_")
    }
    assert public_errors <= set(scimcore.__all__)
    assert public_errors == set(errors.__all__)
