"""The public API is listed in literal ``__all__`` lists that match what the modules define."""

from __future__ import annotations

import importlib
import inspect

import pytest

import scimcore

MODULES = [
    "scimcore",
    "scimcore.errors",
    "scimcore.schema",
    "scimcore.converter",
    "scimcore.filters",
    "scimcore.patch",
    "scimcore.service",
    "scimcore.storage",
    "scimcore.workspaces",
    "scimcore.messages",
    "scimcore.runtime",
    "scimcore.activation",
    "scimcore.card_admin",
    "scimcore.cards",
    "scimcore.images",
    "scimcore.product",
    "scimcore_adapters.passwords",
    "scimcore_adapters.memory",
    "scimcore_adapters.flask",
    "scimcore_adapters.wsgi",
    "scimcore_adapters.asgi",
    "scimcore_adapters.bootstrap",
    "scimcore_adapters.cli",
    "scimcore.outbox",
    "scimcore_adapters.mail",
    "scimcore_adapters.serving",
    "scimcore_adapters.smtp",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist_and_are_documented(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    for attr in exported:
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
