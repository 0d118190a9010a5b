"""scimcore._json: the same results with orjson and with the standard library alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from scimcore import ScimRequest, _json
from tests.conftest import counting_runtime

orjson = pytest.importorskip("orjson")


@pytest.fixture(params=["orjson", "stdlib"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(_json, "_orjson", orjson if request.param == "orjson" else None)
    yield request.param


DOC: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "2819c223",
    "userName": "jürgen@example.test",
    "name": {"givenName": "Jürgen", "familyName": "Ñandú 日本"},
    "active": False,
    "emails": [{"value": "j@example.test", "type": "work", "primary": True}],
    "count": 3,
    "nothing": None,
}


def test_backend_in_use(backend: str) -> None:
    assert _json.accelerated() is (backend == "orjson")


def test_round_trip_and_compact_utf8(backend: str) -> None:
    encoded = _json.dumps(DOC)
    assert encoded == json.dumps(DOC, ensure_ascii=False, separators=(",", ":")).encode()
    assert "Jürgen".encode() in encoded  # UTF-8, not \\u escapes
    assert _json.loads(encoded) == DOC
    assert _json.loads(_json.dumps_text(DOC)) == DOC
    assert _json.dumps_text(DOC) == encoded.decode()


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_non_json_constants_are_refused(backend: str, text: str) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        _json.loads(text)


def test_what_orjson_refuses_the_standard_library_decides(backend: str) -> None:
    big = 2**70
    assert _json.loads(f'{{"n": {big}}}') == {"n": big}
    assert _json.loads(_json.dumps({"n": big})) == {"n": big}
    above_u64 = 2**64  # 20 digits: the smallest integer orjson would turn into a float
    for text in (f"[1, {above_u64}]", f'{{"a": [{{"n": -{above_u64}}}]}}'):
        exact = json.loads(text)
        assert _json.loads(text) == exact and _json.loads(text.encode()) == exact
    assert _json.loads(b'{"s": "1234567890123456789012", "n": 7}') == {
        "s": "1234567890123456789012",
        "n": 7,
    }
    assert _json.loads(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}  # a UTF-8 byte order mark
    assert _json.loads('{"a": "x"}'.encode("utf-16")) == {"a": "x"}
    with pytest.raises((ValueError, RecursionError)):
        _json.loads("[" * 100_000)
    with pytest.raises(ValueError):
        _json.loads(b"{not json")


@pytest.mark.parametrize("text", ['"\\ud800"', '["a", "x\\udfffy"]', '{"k": "\\ud83d"}'])
def test_lone_surrogates_are_refused(backend: str, text: str) -> None:
    with pytest.raises(ValueError):
        _json.loads(text)
    assert _json.loads('"\\ud83d\\ude00"') == "\U0001f600"  # a pair is one character


def test_service_refuses_nan_bodies_with_invalid_syntax(backend: str) -> None:
    from scimcore import ScimService
    from scimcore_adapters.memory import MemoryStorage

    service = ScimService(MemoryStorage(), runtime=counting_runtime())
    service.workspaces.create("acme", "admin@acme.example")
    token = service.workspaces.generate_token("acme", "admin@acme.example").plaintext
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}

    def post(body: bytes) -> Any:
        return service.handle(ScimRequest("POST", "/Users", {}, headers, body, "http://t/v2"))

    for body in (b'{"userName": "a@x.test", "x-score": NaN}', b'{"userName": "x\\ud800@x.test"}'):
        refused = post(body)
        assert refused.status == 400, body
        assert refused.json()["scimType"] == "invalidSyntax"
    created = post('{"userName": "ü@x.test", "displayName": "Ü"}'.encode())
    assert created.status == 201
    assert created.json()["displayName"] == "Ü"
    assert "Ü".encode() in created.body


@pytest.mark.parametrize(
    "text",
    [
        b'{"startIndex": 99999999999999999999999}',
        b"[-18446744073709551617, 18446744073709551616]",
        '{"n": 123456789012345678901234567890}',
        b'{"s": "12345678901234567890123", "n": 1}',
    ],
)
def test_integers_beyond_64_bits_decode_exactly(backend: str, text: bytes | str) -> None:
    # orjson alone would give floats (1e+23): the results must not depend on the backend
    assert repr(_json.loads(text)) == repr(json.loads(text))  # ints stay ints


def test_clone_is_a_deep_copy(backend: str) -> None:
    doc = {**DOC, "big": 2**70, "zero": -0.0, "tiny": 1e-300, "nested": [[{"a": [1, None]}]]}
    copy = _json.clone(doc)
    assert copy == doc and type(copy["big"]) is int and str(copy["zero"]) == "-0.0"
    assert [*copy] == [*doc]  # member order kept
    copy["emails"][0]["type"] = "home"
    copy["nested"][0][0]["a"].append(2)
    copy["name"]["givenName"] = "X"
    assert doc["emails"][0]["type"] == "work" and doc["nested"] == [[{"a": [1, None]}]]
    assert doc["name"]["givenName"] == "Jürgen"
