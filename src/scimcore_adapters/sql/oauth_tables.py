"""The OAuth 2.0 tables of the SQL backend (issue 20), beside :mod:`.tables` and on the same
``METADATA``: clients, their secrets and access tokens (schema version 9), the federated
identities they trust and the assertion ids already used (10), and the authorization-code
grant's redirect URIs, approvals, codes and refresh tokens (11). Secrets, tokens and codes are
stored as hashes only.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Table, Text

from .tables import METADATA, UtcDateTime, text_type, workspace_fk

__all__ = [
    "OAUTH_ACCESS_TOKENS",
    "OAUTH_ASSERTION_IDS",
    "OAUTH_CLIENTS",
    "OAUTH_CLIENT_FEDERATIONS",
    "OAUTH_CLIENT_SECRETS",
    "OAUTH_CODES",
    "OAUTH_GRANTS",
    "OAUTH_REDIRECT_URIS",
    "OAUTH_REFRESH_TOKENS",
]


# --- OAuth 2.0 clients (issue 20, schema version 9) -------------------------------------------


def _client_fk() -> Column[str]:
    """A new ``client_id`` column: the row belongs to that OAuth client and goes with it."""
    return Column(
        "client_id",
        text_type(64),
        ForeignKey("oauth_clients.id", ondelete="CASCADE"),
        nullable=False,
    )


OAUTH_CLIENTS = Table(
    "oauth_clients",
    METADATA,
    # A client of the token endpoint; ``state`` "dead" once its admin was deactivated (R2.5).
    Column("id", text_type(64), primary_key=True),
    workspace_fk(),
    Column("label", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("state", text_type(16), nullable=False),
    Column("dead_reason", Text, nullable=True),
    # When a refused token request of this dead client was last logged (coalescing).
    Column("refused_at", UtcDateTime, nullable=True),
    Index(None, "workspace_id", "created_at", "id"),
)

OAUTH_CLIENT_SECRETS = Table(
    "oauth_client_secrets",
    METADATA,
    # A client's secrets: the SHA-256 of each, never the secret.
    Column("id", text_type(64), primary_key=True),
    _client_fk(),
    Column("secret_hash", text_type(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Index(None, "client_id", "created_at"),
)

OAUTH_ACCESS_TOKENS = Table(
    "oauth_access_tokens",
    METADATA,
    # Access tokens issued by the token endpoint: the SHA-256 of each token's secret part.
    Column("id", text_type(64), primary_key=True),
    _client_fk(),
    workspace_fk(),
    Column("token_hash", text_type(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index(None, "client_id", "expires_at"),
)

# --- OAuth federated identities (issue 20 item 3, schema version 10) --------------------------

OAUTH_CLIENT_FEDERATIONS = Table(
    "oauth_client_federations",
    METADATA,
    # A federated identity a client trusts (RFC 7523 §2.2): the assertion's iss, sub and aud,
    # and where the issuer's keys are (NULL: OpenID discovery from the issuer).
    Column("id", text_type(64), primary_key=True),
    _client_fk(),
    Column("issuer", text_type(600), nullable=False),
    Column("subject", text_type(600), nullable=False),
    Column("audience", text_type(600), nullable=False),
    Column("jwks_url", text_type(600), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Index(None, "client_id", "created_at"),
    # The clients of an assertion sent without client_id.
    Index(None, "issuer", "subject"),
)

OAUTH_ASSERTION_IDS = Table(
    "oauth_assertion_ids",
    METADATA,
    # The jti of each accepted client assertion, as the SHA-256 of issuer and jti, until the
    # assertion expires: a second use is a replay (RFC 7523 §3).
    Column("id_hash", text_type(64), primary_key=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Index(None, "expires_at"),
)

# --- OAuth 2.0 authorization-code grant (issue 20, schema version 11) ---------------------------


def _grant_fk() -> Column[str]:
    return Column(
        "grant_id",
        text_type(64),
        ForeignKey("oauth_grants.id", ondelete="CASCADE"),
        nullable=False,
    )


OAUTH_REDIRECT_URIS = Table(
    "oauth_redirect_uris",
    METADATA,
    # The redirect URIs an admin registered for a client, matched exactly.
    Column("id", text_type(64), primary_key=True),
    _client_fk(),
    Column("uri", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "client_id", "created_at"),
)

OAUTH_GRANTS = Table(
    "oauth_grants",
    METADATA,
    # An admin's approval of a client: the family of its code, refresh and access tokens.
    Column("id", text_type(64), primary_key=True),
    _client_fk(),
    workspace_fk(),
    Column("approved_by", Text, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "client_id"),
    Index(None, "workspace_id"),
)

OAUTH_CODES = Table(
    "oauth_codes",
    METADATA,
    # One-time authorization codes: the SHA-256 of each, never the code.
    Column("code_hash", text_type(64), primary_key=True),
    _grant_fk(),
    Column("client_id", text_type(64), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("redirect_uri_sent", Boolean, nullable=False),
    Column("code_challenge", text_type(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Index(None, "client_id", "expires_at"),
    Index(None, "grant_id"),
)

OAUTH_REFRESH_TOKENS = Table(
    "oauth_refresh_tokens",
    METADATA,
    # Refresh tokens (rotated): the SHA-256 of each; the access token issued with it.
    Column("token_hash", text_type(64), primary_key=True),
    _grant_fk(),
    Column("client_id", text_type(64), nullable=False),
    Column("access_token_id", text_type(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Index(None, "grant_id", "expires_at"),
)
