"""The storage contract, shipped so a host's own :class:`~scimcore.Storage` runs the same tests
scimcore's memory, SQLite and PostgreSQL backends pass (as fsspec ships ``fsspec.tests.abstract``).

Install it with the ``testing`` extra (``pip install 'scimcore[testing]'``, which brings pytest),
then, in your own pytest suite, subclass :class:`StorageContract` in a class whose name starts
with ``Test`` and give it a ``storage`` fixture::

    import pytest
    from scimcore.testing import StorageContract

    from myapp.scim import MyStorage


    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self):
            store = MyStorage(...)   # a fresh, empty backend: no workspace, no user
            yield store
            store.close()            # whatever releases it

The fixture must be function-scoped and yield a new, empty storage for every test: the tests
create their own workspaces (slug ``acme`` and others), so they would collide on a shared one.
Nothing else is needed: no conftest, no other fixture. Every test is a method of the class, so
``pytest -k`` and ``pytest.mark.skip`` on an overriding method work as usual.

The contract covers users (insert, replace, delete, uniqueness, filters, sorting, paging),
groups and memberships, workspaces, admins, tokens and their tombstones, people and cards,
templates and rules, settings, the outbox, the provisioning log, images, activation links and
OAuth clients (their federated identities too, where PyJWT is installed), partly through
:class:`~scimcore.ScimService` over your storage. Its assertions are rewritten by pytest
(registered below), so a failure shows the values compared.
"""

from __future__ import annotations

try:
    import pytest
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "scimcore.testing needs pytest: pip install 'scimcore[testing]'", name=exc.name
    ) from exc

# Before the contract modules are imported, so that their plain asserts explain a failure.
pytest.register_assert_rewrite(
    "scimcore.testing._authorization_contract",
    "scimcore.testing._console_contract",
    "scimcore.testing._fast_path_contract",
    "scimcore.testing._federation_contract",
    "scimcore.testing._group_contract",
    "scimcore.testing._oauth_contract",
    "scimcore.testing._product_contract",
    "scimcore.testing._records",
    "scimcore.testing._storage_contract",
)

from scimcore.testing._storage_contract import StorageContract  # noqa: E402

__all__ = ["StorageContract"]
