"""Issue #22, item 2: every request limit of ``ServiceConfig`` (``docs/limits.md``), at the
limit (accepted) and one past it (413 or 400 with its ``scimType``, the detail naming the
limit, nothing stored)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scimcore import ScimService, ServiceConfig, limits
from scimcore.messages import PATCH_OP_URN

from .conftest import Client

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
LIMITS = ServiceConfig()


def _emails(n: int) -> list[dict[str, str]]:
    return [{"value": f"u{i}@x.test"} for i in range(n)]


def _patch(ops: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP_URN], "Operations": ops}


def _refused(response: Any, status: int, scim_type: str | None, field: str) -> None:
    body = response.json()
    assert response.status == status, body
    assert body.get("scimType") == scim_type
    assert field in body["detail"]


def _stored(client: Client, uid: str) -> dict[str, Any]:
    response = client("GET", f"/Users/{uid}")
    assert response.status == 200
    doc: dict[str, Any] = response.json()
    return doc


def test_limit_defaults_are_documented() -> None:
    """The defaults docs/limits.md gives."""
    assert (
        LIMITS.max_body_bytes,
        LIMITS.max_operations,
        LIMITS.max_values,
        LIMITS.max_string_bytes,
        LIMITS.max_filter_chars,
        LIMITS.max_filter_terms,
        LIMITS.max_count,
    ) == (1_048_576, 1000, 100, 8192, 4096, 100, 1000)
    with pytest.raises(ValueError):
        ServiceConfig(max_values=0)


def test_patch_operations_at_the_limit_and_past_it(client: Client) -> None:
    uid = client.create("ops@x.test")["id"]
    at = [
        {"op": "replace", "path": "title", "value": f"t{i}"} for i in range(LIMITS.max_operations)
    ]
    response = client("PATCH", f"/Users/{uid}", _patch(at))
    assert response.status == 200 and response.json()["title"] == f"t{LIMITS.max_operations - 1}"
    past = [*at, {"op": "replace", "path": "title", "value": "over"}]
    _refused(client("PATCH", f"/Users/{uid}", _patch(past)), 413, None, "max_operations")
    assert _stored(client, uid)["title"] == f"t{LIMITS.max_operations - 1}"


def test_values_per_attribute_on_create_at_the_limit_and_past_it(client: Client) -> None:
    at = client("POST", "/Users", {"userName": "at@x.test", "emails": _emails(LIMITS.max_values)})
    assert at.status == 201 and len(at.json()["emails"]) == LIMITS.max_values
    past = {"userName": "past@x.test", "emails": _emails(LIMITS.max_values + 1)}
    _refused(client("POST", "/Users", past), 400, "invalidValue", "max_values")
    names = [u["userName"] for u in client("GET", "/Users").json()["Resources"]]
    assert names == ["at@x.test"]


def test_values_per_attribute_on_patch_and_put(client: Client) -> None:
    uid = client.create("grow@x.test", emails=_emails(LIMITS.max_values - 1))["id"]
    one = [{"op": "add", "path": "emails", "value": [{"value": "last@x.test"}]}]
    assert client("PATCH", f"/Users/{uid}", _patch(one)).status == 200
    more = [{"op": "add", "path": "emails", "value": [{"value": "over@x.test"}]}]
    _refused(client("PATCH", f"/Users/{uid}", _patch(more)), 400, "invalidValue", "max_values")
    put = {"userName": "grow@x.test", "emails": _emails(LIMITS.max_values + 1)}
    _refused(client("PUT", f"/Users/{uid}", put), 400, "invalidValue", "max_values")
    emails = [e["value"] for e in _stored(client, uid)["emails"]]
    assert len(emails) == LIMITS.max_values and "over@x.test" not in emails


def test_a_string_at_the_limit_and_past_it(client: Client) -> None:
    limit = LIMITS.max_string_bytes
    uid = client.create("s@x.test", title="x" * limit)["id"]
    assert _stored(client, uid)["title"] == "x" * limit
    past = {"userName": "past@x.test", "displayName": "é" * (limit // 2 + 1)}  # 2 bytes each
    _refused(client("POST", "/Users", past), 400, "invalidValue", "max_string_bytes")
    op = [{"op": "replace", "path": "name.givenName", "value": "y" * (limit + 1)}]
    _refused(client("PATCH", f"/Users/{uid}", _patch(op)), 400, "invalidValue", "max_string_bytes")
    assert "name" not in _stored(client, uid)
    assert len(client("GET", "/Users").json()["Resources"]) == 1


def _sharing(client: Client, **limits: Any) -> Client:
    """A client of a second service on the same storage and token, with other limits."""
    old = client.service
    service = ScimService(old.storage, runtime=old.runtime, config=ServiceConfig(**limits))
    return Client(service, client.token)


def test_a_user_stored_over_a_limit_can_still_be_patched(client: Client) -> None:
    """A limit lowered later: only what a write changes is checked."""
    uid = client.create("old@x.test", emails=_emails(50))["id"]
    lowered = _sharing(client, max_values=10)
    op = [{"op": "replace", "path": "active", "value": False}]
    assert lowered("PATCH", f"/Users/{uid}", _patch(op)).status == 200
    add = [{"op": "add", "path": "emails", "value": [{"value": "new@x.test"}]}]
    _refused(lowered("PATCH", f"/Users/{uid}", _patch(add)), 400, "invalidValue", "max_values")
    assert len(_stored(client, uid)["emails"]) == 50


def _or_filter(terms: int, length: int | None = None) -> str:
    text = " or ".join(f'userName eq "u{i}"' for i in range(terms))
    if length is not None:
        pad = length - len(text) - len(' or userName eq ""')
        text += f' or userName eq "{"z" * pad}"'
    return text


@pytest.mark.parametrize("how", ["GET", "POST"])
def test_filter_terms_at_the_limit_and_past_it(client: Client, how: str) -> None:
    client.create("u7")

    def search(text: str) -> Any:
        if how == "GET":
            return client("GET", "/Users", query={"filter": text})
        return client("POST", "/Users/.search", {"schemas": [], "filter": text})

    at = search(_or_filter(LIMITS.max_filter_terms))
    assert at.status == 200 and at.json()["totalResults"] == 1
    past = search(_or_filter(LIMITS.max_filter_terms + 1))
    _refused(past, 400, "invalidFilter", "max_filter_terms")


def test_filter_length_at_the_limit_and_past_it(client: Client) -> None:
    client.create("u1")
    at = _or_filter(3, LIMITS.max_filter_chars)
    assert len(at) == LIMITS.max_filter_chars
    response = client("GET", "/Users", query={"filter": at})
    assert response.status == 200 and response.json()["totalResults"] == 1
    past = _or_filter(3, LIMITS.max_filter_chars + 1)
    _refused(
        client("GET", "/Users", query={"filter": past}), 400, "invalidFilter", "max_filter_chars"
    )


def test_count_above_the_maximum_is_lowered_not_refused(client: Client) -> None:
    """RFC 7644 §3.4.2.4: a ``count`` above the maximum page size gets a page of that size."""
    for i in range(102):
        client.create(f"c{i}")
    capped = _sharing(client, max_count=100, default_count=7)
    listed = capped("GET", "/Users", query={"count": "100000"}).json()
    assert (listed["itemsPerPage"], listed["totalResults"]) == (100, 102)
    search = capped("POST", "/Users/.search", {"count": 101}).json()
    assert search["itemsPerPage"] == 100
    assert capped("GET", "/Users").json()["itemsPerPage"] == 7


def test_service_provider_config_advertises_the_limits(client: Client) -> None:
    spc = client("GET", "/ServiceProviderConfig").json()
    assert spc["filter"] == {"supported": True, "maxResults": LIMITS.max_count}
    assert spc["bulk"]["supported"] is False
    assert spc["bulk"]["maxPayloadSize"] == LIMITS.max_body_bytes


_SMALL = ServiceConfig(max_string_bytes=8, max_values=3)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=4)
    | st.text(min_size=2, max_size=12),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(doc=st.dictionaries(st.text(min_size=1, max_size=3), _JSON, max_size=5))
def test_the_quick_walk_agrees_with_the_one_that_names_the_path(doc: dict[str, Any]) -> None:
    """The check every write makes first walks without spelling paths
    (``limits._within``); only when it finds a value over a limit does the second walk name
    it. The two must agree on every document: the first never passes what the second
    refuses, nor refuses what it passes (strings of multi-byte characters included)."""
    from scimcore import limits
    from scimcore.errors import InvalidValueError

    try:
        limits._explain(doc, "", _SMALL)
        refused = False
    except InvalidValueError:
        refused = True
    assert limits._within(doc, _SMALL) is not refused
    with pytest.raises(InvalidValueError) if refused else nullcontext():
        limits.check_document(doc, _SMALL)


_ROOMY = ServiceConfig(max_string_bytes=64, max_values=6)


@given(
    doc=st.dictionaries(st.text(min_size=1, max_size=3), _JSON, max_size=5),
    encoding=st.sampled_from(["utf-8", "utf-16-le", "utf-16", "utf-32", "ascii-escaped"]),
)
def test_a_body_too_small_to_exceed_a_limit_gives_the_walks_answer(
    doc: dict[str, Any], encoding: str
) -> None:
    """A create's document is not walked when its body cannot hold a value over a limit
    (``check_document(source=...)``); for every body the answer is the walk's, whatever the
    JSON's encoding (UTF-16 and UTF-32, which hold more UTF-8 than their length, included)."""
    import json

    from scimcore.errors import InvalidValueError

    text = json.dumps(doc, ensure_ascii=encoding == "ascii-escaped")
    source = text.encode("utf-8" if encoding == "ascii-escaped" else encoding, "surrogatepass")
    for config in (_SMALL, _ROOMY):
        try:
            limits.check_document(doc, config)
            refused = False
        except InvalidValueError:
            refused = True
        with pytest.raises(InvalidValueError) if refused else nullcontext():
            limits.check_document(doc, config, source=source)


def test_a_utf16_body_of_wide_characters_is_still_walked() -> None:
    import json

    """The case the NUL guard is for: 22 CJK characters are 44 bytes of UTF-16 (a 60-byte
    body, within 64) but 66 bytes of UTF-8, over ``max_string_bytes`` = 64."""
    from scimcore.errors import InvalidValueError

    doc = {"t": "\u4e4e" * 22}
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-16-le")
    assert len(body) <= _ROOMY.max_string_bytes < len(doc["t"].encode())
    with pytest.raises(InvalidValueError, match="max_string_bytes"):
        limits.check_document(doc, _ROOMY, source=body)
