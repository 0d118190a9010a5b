"""The storage contract on the in-memory reference backend."""

from __future__ import annotations

import pytest

from scimcore_adapters.memory import MemoryStorage
from tests.storage_contract import StorageContract


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> MemoryStorage:
        return MemoryStorage()
