"""Fixtures of the console tests: a clock, a service on a SQLite file, the app, an admin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scimcore import ScimService
from tests.console.helpers import (
    Clock,
    create_console_app,
    make_service,
    sign_in,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(tmp_path: Path, clock: Clock) -> ScimService:
    return make_service(tmp_path, clock)


@pytest.fixture
def app(service: ScimService) -> Flask:
    return create_console_app(service)


@pytest.fixture
def admin(app: Flask) -> Iterator[FlaskClient]:
    """A test client signed in as the admin of acme."""
    with app.test_client() as client:
        assert sign_in(client).status_code == 303
        yield client
