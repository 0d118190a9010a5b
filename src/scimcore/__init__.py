"""scimcore: SCIM 2.0 provisioning (RFC 7643, RFC 7644) as a framework-agnostic, sans-IO core.

The core takes :class:`ScimRequest` values and returns :class:`ScimResponse` values; adapters in
``scimcore_adapters`` connect it to Flask, ASGI servers and real storage backends.

This package lists what a host app uses (``docs/embedding.md``): the service and its
configuration, the schemas of an extension, the errors, the Python APIs the CLI and the console
use (``service.workspaces``, ``service.product``, ``service.oauth_clients``) with the values
they return, the events a host subscribes to, and mail delivery. Writing a storage of one's
own takes :mod:`scimcore.storage` (the protocol and its records).
"""

from .activation import ActivationError
from .cards import DEFAULT_MAPPING, CardError, FieldMapping, FieldRule
from .errors import (
    InvalidFilterError,
    InvalidPathError,
    InvalidSyntaxError,
    InvalidTokenError,
    InvalidValueError,
    InvalidVersionError,
    MethodNotAllowedError,
    MutabilityError,
    NoTargetError,
    NotFoundError,
    NotImplementedSCIMError,
    PayloadTooLargeError,
    PreconditionFailedError,
    SCIMError,
    TooManyError,
    TooManyRequestsError,
    UnauthorizedError,
    UniquenessError,
)
from .images import ImageError
from .messages import ScimRequest, ScimResponse
from .oauth_clients import ClientSecret, IssuedSecret, OAuthClient, OAuthClients
from .outbox import DeliveryReport, Mailer, deliver_pending
from .product import ActivationView, CardView, PeoplePage, Product, TemplateUpdate
from .provisioning import Event, MailComposer
from .ratelimit import RateLimit, parse_rate_limit, rate_limit_from_env
from .runtime import Runtime, system_runtime
from .schema import (
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
    Attribute,
    AttrType,
    Mutability,
    Returned,
    Schema,
    SchemaRegistry,
    Uniqueness,
)
from .service import ScimService, ServiceConfig
from .storage import Admin, LogEntry, OutboxMail, Settings, Storage, TokenRecord, Workspace
from .templates import Rule, Template
from .workspaces import GeneratedToken, WorkspaceError, Workspaces

__version__ = "0.1.0"

__all__ = [
    "CORE_USER_SCHEMA",
    "DEFAULT_MAPPING",
    "ENTERPRISE_USER_SCHEMA",
    "ActivationError",
    "ActivationView",
    "Admin",
    "AttrType",
    "Attribute",
    "CardError",
    "CardView",
    "ClientSecret",
    "DeliveryReport",
    "Event",
    "FieldMapping",
    "FieldRule",
    "GeneratedToken",
    "ImageError",
    "InvalidFilterError",
    "InvalidPathError",
    "InvalidSyntaxError",
    "InvalidTokenError",
    "InvalidValueError",
    "InvalidVersionError",
    "IssuedSecret",
    "LogEntry",
    "MailComposer",
    "Mailer",
    "MethodNotAllowedError",
    "Mutability",
    "MutabilityError",
    "NoTargetError",
    "NotFoundError",
    "NotImplementedSCIMError",
    "OAuthClient",
    "OAuthClients",
    "OutboxMail",
    "PayloadTooLargeError",
    "PeoplePage",
    "PreconditionFailedError",
    "Product",
    "RateLimit",
    "Returned",
    "Rule",
    "Runtime",
    "SCIMError",
    "Schema",
    "SchemaRegistry",
    "ScimRequest",
    "ScimResponse",
    "ScimService",
    "ServiceConfig",
    "Settings",
    "Storage",
    "Template",
    "TemplateUpdate",
    "TokenRecord",
    "TooManyError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "Uniqueness",
    "UniquenessError",
    "Workspace",
    "WorkspaceError",
    "Workspaces",
    "__version__",
    "deliver_pending",
    "parse_rate_limit",
    "rate_limit_from_env",
    "system_runtime",
]
