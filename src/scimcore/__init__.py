"""scimcore: SCIM 2.0 provisioning (RFC 7643, RFC 7644) as a framework-agnostic, sans-IO core.

The core takes :class:`ScimRequest` values and returns :class:`ScimResponse` values; adapters in
``scimcore_adapters`` connect it to Flask, ASGI servers and real storage backends.
"""

from .activation import ActivationError
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
from .storage import (
    Admin,
    AuthenticatedWrites,
    Page,
    ReadTurns,
    SortSpec,
    Storage,
    TokenRecord,
    UserReadAhead,
    UserStore,
    Workspace,
)
from .workspaces import AuthContext, GeneratedToken, WorkspaceError, Workspaces

__version__ = "0.1.0"

__all__ = [
    "CORE_USER_SCHEMA",
    "ENTERPRISE_USER_SCHEMA",
    "ActivationError",
    "Admin",
    "AttrType",
    "Attribute",
    "AuthContext",
    "AuthenticatedWrites",
    "GeneratedToken",
    "ImageError",
    "InvalidFilterError",
    "InvalidPathError",
    "InvalidSyntaxError",
    "InvalidTokenError",
    "InvalidValueError",
    "InvalidVersionError",
    "MethodNotAllowedError",
    "Mutability",
    "MutabilityError",
    "NoTargetError",
    "NotFoundError",
    "NotImplementedSCIMError",
    "Page",
    "PayloadTooLargeError",
    "PreconditionFailedError",
    "RateLimit",
    "ReadTurns",
    "Returned",
    "Runtime",
    "SCIMError",
    "Schema",
    "SchemaRegistry",
    "ScimRequest",
    "ScimResponse",
    "ScimService",
    "ServiceConfig",
    "SortSpec",
    "Storage",
    "TokenRecord",
    "TooManyError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "Uniqueness",
    "UniquenessError",
    "UserReadAhead",
    "UserStore",
    "Workspace",
    "WorkspaceError",
    "Workspaces",
    "__version__",
    "parse_rate_limit",
    "rate_limit_from_env",
    "system_runtime",
]
