"""``scimcore_adapters.jwks.JwksKeySource`` against a real local HTTP server: OpenID discovery
and its checks, https only (loopback http for tests) also across redirects, the size cap, the
cache and what happens when the issuer fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scimcore.federation import KeyUnavailableError, allowed_url
from scimcore_adapters.jwks import JwksKeySource
from tests.test_federation_http import DISCOVERY, KeyServer

KEYS = {"keys": [{"kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB"}]}


@pytest.fixture
def keys() -> Iterator[KeyServer]:
    server = KeyServer()
    server.keys = KEYS
    try:
        yield server
    finally:
        server.close()


def test_only_https_or_loopback_http() -> None:
    assert allowed_url("https://login.microsoftonline.com/t/discovery/v2.0/keys")
    for url in ("http://127.0.0.1:8080/keys", "http://localhost/keys", "http://[::1]/k"):
        assert allowed_url(url), url
    for url in (
        "http://login.example/keys",
        "ftp://login.example/keys",
        "https://user:pw@login.example/keys",
        "https:///keys",
        "file:///etc/passwd",
        "https://login.example/keys#x",
        "http://[::1",
    ):
        assert not allowed_url(url), url
    with pytest.raises(KeyUnavailableError, match="https only"):
        JwksKeySource().jwks("https://i.example", "http://login.example/keys", "k1")


def test_discovery_then_cache(keys: KeyServer) -> None:
    ticks = [0.0]
    source = JwksKeySource(ttl=100, refresh_interval=10, clock=lambda: ticks[0])
    assert source.jwks(keys.url, None, "k1") == KEYS
    assert source.jwks(keys.url, None, "k1") == KEYS
    assert (keys.hits[DISCOVERY], keys.hits["/keys"]) == (1, 1)
    ticks[0] = 100.0  # stale: both fetched again
    assert source.jwks(keys.url, None, None) == KEYS
    assert (keys.hits[DISCOVERY], keys.hits["/keys"]) == (2, 2)


def test_discovery_must_name_the_issuer_and_stay_on_allowed_urls(keys: KeyServer) -> None:
    with pytest.raises(KeyUnavailableError, match="another issuer"):
        other = keys.url.replace("127.0.0.1", "localhost")  # the document names 127.0.0.1
        JwksKeySource().jwks(other, None, "k1")
    keys.redirects[DISCOVERY] = "http://login.example" + DISCOVERY
    with pytest.raises(KeyUnavailableError, match="redirected to a URL keys are not fetched"):
        JwksKeySource().jwks(keys.url, None, "k1")


def test_size_cap_and_bad_documents(keys: KeyServer) -> None:
    with pytest.raises(KeyUnavailableError, match="more than 64 bytes"):
        JwksKeySource(max_bytes=64).jwks(keys.url, keys.url + "/keys", "k1")
    with pytest.raises(KeyUnavailableError, match="could not fetch"):
        JwksKeySource().jwks(keys.url, keys.url + "/missing", "k1")  # 404
    keys.keys = {"no": "keys"}
    with pytest.raises(KeyUnavailableError, match="no keys"):
        JwksKeySource().jwks(keys.url, keys.url + "/keys", "k1")


def test_a_failing_issuer_keeps_the_cached_keys(keys: KeyServer) -> None:
    ticks = [0.0]
    source = JwksKeySource(ttl=100, refresh_interval=10, clock=lambda: ticks[0])
    url = keys.url + "/keys"
    assert source.jwks(keys.url, url, "k1") == KEYS
    keys.redirects["/keys"] = "http://login.example/keys"  # the issuer now fails
    ticks[0] = 150.0
    assert source.jwks(keys.url, url, "k1") == KEYS  # stale, but kept
    assert keys.hits["/keys"] == 2
    ticks[0] = 155.0
    assert source.jwks(keys.url, url, "k1") == KEYS  # not retried within refresh_interval
    assert keys.hits["/keys"] == 2
    del keys.redirects["/keys"]
    ticks[0] = 161.0
    assert source.jwks(keys.url, url, "k1") == KEYS
    assert keys.hits["/keys"] == 3
