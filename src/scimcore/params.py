"""Reading a SCIM request: its JSON body, its search parameters and its sort (RFC 7644 §3.4).

A body is decoded under the size limit and the content types of ``docs/decisions.md``; a
search arrives as a ``SearchRequest`` body (``POST .search``) or as query parameters (``GET``)
and becomes one :class:`~scimcore.messages.SearchRequest` either way; ``sortBy`` and
``attributes``/``excludedAttributes`` are resolved against the schemas here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cattrs

from . import _json
from .converter import AttributeSelection
from .errors import InvalidSyntaxError, InvalidValueError, PayloadTooLargeError
from .messages import ScimRequest, SearchRequest, converter
from .schema import AttrType, SchemaRegistry
from .storage import SortSpec

__all__ = ["json_body", "query_params", "query_selection", "search_body", "selection", "sort_spec"]

_JSON_TYPES = ("application/scim+json", "application/json")


def json_body(request: ScimRequest, max_bytes: int) -> Any:
    """The decoded JSON body: 413 over ``max_bytes``, 400 ``invalidSyntax`` for another
    content type, an empty body or one that is not JSON."""
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if content_type and content_type not in _JSON_TYPES and not content_type.endswith("+json"):
        raise InvalidSyntaxError(
            f"unsupported Content-Type {content_type!r}: send application/scim+json"
        )
    if len(request.body) > max_bytes:
        raise PayloadTooLargeError.request_body(max_bytes)
    if not request.body.strip():
        raise InvalidSyntaxError("the request body is empty; a JSON object is required")
    try:
        return _json.loads(request.body)
    except (ValueError, RecursionError) as exc:
        raise InvalidSyntaxError(f"the request body is not valid JSON: {exc}") from None


def search_body(request: ScimRequest, max_bytes: int) -> SearchRequest:
    """A ``POST .search`` body (RFC 7644 §3.4.3)."""
    body = json_body(request, max_bytes)
    if not isinstance(body, dict):
        raise InvalidSyntaxError("a SearchRequest must be a JSON object")
    for key in ("startIndex", "count"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidValueError(f"{key} must be an integer")
    for key in ("attributes", "excludedAttributes"):
        value = body.get(key)
        if isinstance(value, str):
            body[key] = [v for v in value.split(",") if v.strip()]
        elif value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise InvalidValueError(f"{key} must be a list of attribute names")
    for key in ("filter", "sortBy", "sortOrder"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise InvalidValueError(f"{key} must be a string")
    try:
        return converter.structure(body, SearchRequest)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise InvalidSyntaxError(f"invalid SearchRequest: {exc}") from None


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw.strip())
    except ValueError:
        raise InvalidValueError(f"{name} must be an integer, got {raw[:40]!r}") from None


def query_params(query: Mapping[str, str]) -> SearchRequest:
    """The search parameters of a ``GET`` (RFC 7644 §3.4.2)."""

    def names(key: str) -> list[str] | None:
        raw = query.get(key)
        return [v for v in raw.split(",") if v.strip()] if raw else None

    return SearchRequest(
        attributes=names("attributes"),
        excluded_attributes=names("excludedAttributes"),
        filter=query.get("filter"),
        sort_by=query.get("sortBy") or None,
        sort_order=query.get("sortOrder") or None,
        start_index=_int_param(query, "startIndex"),
        count=_int_param(query, "count"),
    )


def selection(
    registry: SchemaRegistry, attributes: list[str] | None, excluded: list[str] | None
) -> AttributeSelection:
    """``attributes`` and ``excludedAttributes`` (RFC 7644 §3.4.2.5) resolved."""
    return AttributeSelection(registry, attributes or (), excluded or ())


def query_selection(registry: SchemaRegistry, request: ScimRequest) -> AttributeSelection | None:
    """The ``attributes`` and ``excludedAttributes`` query parameters (``None``: neither,
    the usual request: no selection to build)."""
    query = request.query
    if not query or ("attributes" not in query and "excludedAttributes" not in query):
        return None
    params = query_params(query)
    return selection(registry, params.attributes, params.excluded_attributes)


def sort_spec(
    registry: SchemaRegistry, sort_by: str | None, sort_order: str | None
) -> SortSpec | None:
    """``sortBy`` and ``sortOrder`` (RFC 7644 §3.4.2.3) as the storage's sort, or ``None``."""
    if sort_order is not None and sort_order.lower() not in ("ascending", "descending"):
        raise InvalidValueError("sortOrder must be 'ascending' or 'descending'")
    if not sort_by:
        return None
    schema, rest = registry.split_urn(sort_by.strip())
    top, _, sub = rest.partition(".")
    try:
        owner, attr = registry.top_level(top, schema)
    except KeyError:
        raise InvalidValueError(f"sortBy names an unknown attribute {sort_by!r}") from None
    path: tuple[str, ...] = (attr.name,)
    if owner is not None and owner is not registry.core:
        path = (owner.id, attr.name)
    if sub:
        sub_attr = attr.sub_attribute(sub)
        if sub_attr is None:
            raise InvalidValueError(f"sortBy names an unknown attribute {sort_by!r}")
        path, attr = (*path, sub_attr.name), sub_attr
    elif attr.is_complex:
        value = attr.sub_attribute("value")
        if value is None:
            raise InvalidValueError(f"cannot sort by the complex attribute {sort_by!r}")
        path, attr = (*path, "value"), value
    if attr.type is AttrType.BINARY:
        raise InvalidValueError(f"cannot sort by the binary attribute {sort_by!r}")
    descending = (sort_order or "ascending").lower() == "descending"
    return SortSpec(path, descending, attr.case_exact, attr.type is AttrType.DATETIME)
