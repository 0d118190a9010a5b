"""The storage contract on the in-memory reference backend."""

from __future__ import annotations

import pytest

from scimcore.testing._storage_contract import StorageContract
from scimcore_adapters.memory import MemoryStorage


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> MemoryStorage:
        return MemoryStorage()
