"""The end-to-end tests of ``tests/test_product.py``, ``tests/test_service.py`` (and the other
modules imported below) on SqlStorage.

The test functions are imported, not copied: pytest collects them here as well, and here the
``service`` fixture below overrides the in-memory one of ``tests/conftest.py``, for the fixtures
built on it too (``workspaces``, ``token``, ``client``, ``make_client``). Each test runs on a
fresh SQLite file and, when ``SCIMCORE_TEST_POSTGRES_URL`` is set, on a fresh PostgreSQL schema.
Tests that do not use the service (they build their own storage) are not imported.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import tests.test_group_templates
import tests.test_product
import tests.test_product_console
import tests.test_service
from scimcore import ScimService
from scimcore_adapters.sql import SqlStorage
from tests.conftest import counting_runtime, postgres_schema_url

_SERVICE_FIXTURES = {"service", "workspaces", "token", "client", "make_client"}


def _service_tests(module: ModuleType) -> dict[str, Any]:
    """The module's test functions that run against the ``service`` fixture."""
    return {
        name: obj
        for name, obj in vars(module).items()
        if name.startswith("test_")
        and inspect.isfunction(obj)
        and _SERVICE_FIXTURES & set(inspect.signature(obj).parameters)
    }


def _collect(*modules: ModuleType) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for module in modules:
        tests = _service_tests(module)
        clash = found.keys() & tests.keys()
        assert not clash, f"test names used twice: {sorted(clash)}"
        found.update(tests)
    return found


globals().update(
    _collect(
        tests.test_product,
        tests.test_product_console,
        tests.test_service,
        tests.test_group_templates,
    )
)


@pytest.fixture(params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScimService]:
    """A service on SqlStorage (overrides the in-memory one of conftest.py)."""
    if request.param == "sqlite":
        storage = SqlStorage(f"sqlite:///{tmp_path / 'scim.db'}")
        try:
            yield ScimService(storage, runtime=counting_runtime())
        finally:
            storage.close()
    else:
        with postgres_schema_url() as url:
            storage = SqlStorage(url)
            try:
                yield ScimService(storage, runtime=counting_runtime())
            finally:
                storage.close()
