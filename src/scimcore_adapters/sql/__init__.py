"""The SQL storage backend: SQLite (embedded default) and PostgreSQL on SQLAlchemy Core.

Install the ``sql`` extra (SQLite) or the ``postgres`` extra (PostgreSQL via psycopg 3)::

    from scimcore_adapters.sql import create_storage
    storage = create_storage("sqlite:///scim.db")
    # or "postgresql+psycopg://user:password@host/dbname"

The schema is created and migrated on open (:mod:`.migrations`); SCIM filters are pushed down
to SQL where they map onto indexed columns (:mod:`.compiler`), with the rest evaluated in
Python over a superset of candidates, so results are always those of the reference backend.

The :class:`SqlStorage` facade is in :mod:`.facade`; each job has a module of its own
(``docs/architecture.md`` has the table).
"""

from .facade import SqlStorage, create_storage
from .migrations import MIGRATIONS, Migration, SchemaTooNewError, current_version, migrate
from .transactions import GroupCommitError
from .users import SqlUserStore

__all__ = [
    "MIGRATIONS",
    "GroupCommitError",
    "Migration",
    "SchemaTooNewError",
    "SqlStorage",
    "SqlUserStore",
    "create_storage",
    "current_version",
    "migrate",
]
