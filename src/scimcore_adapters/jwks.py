"""The issuers' signing keys over HTTPS, for client assertions (issue 20 item 3).

:class:`JwksKeySource` is the :class:`scimcore.federation.KeySource` the adapters give the token
endpoint (:func:`use_jwks_keys`, called by :class:`~scimcore_adapters.wsgi.ScimWSGIApp`,
:class:`~scimcore_adapters.asgi.ScimASGIApp` and the Flask ``oauth_blueprint``, unless the host
set one). It fetches a JSON Web Key Set from the configured JWKS URL, or from the ``jwks_uri``
of the issuer's OpenID configuration (``{issuer}/.well-known/openid-configuration``, whose
``issuer`` must be the issuer itself), with the standard library's ``urllib``:

- only ``https`` URLs, and ``http`` on the loopback interface (a test's local issuer); a
  redirect elsewhere is refused (:func:`scimcore.federation.allowed_url`);
- a timeout, and a size cap on every answer;
- a cache per URL for ``ttl`` seconds; a set without the assertion's ``kid`` is fetched again
  (a key rotation) at most once per ``refresh_interval`` seconds per URL, so unknown ``kid``
  values sent on purpose cannot make the server fetch on every request; when a fetch fails,
  the cached set keeps serving (Microsoft's advice) and only a request that needs a key the
  cache lacks is refused.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from http.client import HTTPException
from typing import Any
from urllib.error import URLError
from urllib.request import HTTPRedirectHandler, OpenerDirector, Request, build_opener

from attrs import frozen

from scimcore import ScimService
from scimcore.federation import KeyUnavailableError, allowed_url

__all__ = ["JwksKeySource", "use_jwks_keys"]

_log = logging.getLogger(__name__)
_DISCOVERY = "/.well-known/openid-configuration"


class _SameRules(HTTPRedirectHandler):
    """Follow a redirect only to a URL keys may be fetched from."""

    def redirect_request(
        self, req: Any, fp: Any, code: Any, msg: Any, headers: Any, newurl: str
    ) -> Any:
        if not allowed_url(newurl):
            raise URLError("redirected to a URL keys are not fetched from")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@frozen
class _Cached:
    document: Mapping[str, Any]
    fetched_at: float


class JwksKeySource:
    """Keys fetched over HTTP(S) with a cache (see the module documentation). ``clock``: a
    monotonic clock in seconds (tests pass their own)."""

    def __init__(
        self,
        *,
        ttl: float = 3600.0,
        refresh_interval: float = 60.0,
        timeout: float = 5.0,
        max_bytes: int = 256 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.refresh_interval = refresh_interval
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.clock = clock
        self._opener: OpenerDirector = build_opener(_SameRules())
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def jwks(self, issuer: str, jwks_url: str | None, kid: str | None) -> Mapping[str, Any]:
        """The key set (see :class:`scimcore.federation.KeySource`)."""
        url = jwks_url or self._jwks_uri(issuer)
        return self._document(url, lambda doc: kid is None or kid in _kids(doc), _check_jwks)

    def _jwks_uri(self, issuer: str) -> str:
        """The ``jwks_uri`` of the issuer's OpenID configuration (OpenID Connect Discovery
        1.0 §4)."""
        url = issuer.rstrip("/") + _DISCOVERY

        def check(doc: Mapping[str, Any]) -> None:
            if doc.get("issuer") != issuer:
                raise KeyUnavailableError("the OpenID configuration names another issuer")
            if not isinstance(doc.get("jwks_uri"), str) or not allowed_url(doc["jwks_uri"]):
                raise KeyUnavailableError("the OpenID configuration has no usable jwks_uri")

        return str(self._document(url, lambda doc: True, check)["jwks_uri"])

    def _document(
        self,
        url: str,
        sufficient: Callable[[Mapping[str, Any]], bool],
        check: Callable[[Mapping[str, Any]], None],
    ) -> Mapping[str, Any]:
        """The JSON document at ``url``: cached while fresh and ``sufficient``; fetched again
        when stale, or when insufficient and not fetched in the last ``refresh_interval``."""
        with self._guard:
            lock = self._locks.setdefault(url, threading.Lock())
        with lock:  # one fetch per URL at a time; the others then read the cache
            cached = self._cache.get(url)
            now = self.clock()
            if cached is not None:
                age = now - cached.fetched_at
                fresh = age < self.ttl
                if fresh and (sufficient(cached.document) or age < self.refresh_interval):
                    return cached.document
            try:
                document = self._fetch(url)
                check(document)
            except KeyUnavailableError as exc:
                if cached is None:
                    raise
                _log.warning("keeping the cached %s: %s", url, exc.detail)
                # not retried before refresh_interval: a failing issuer is not hammered
                self._cache[url] = _Cached(cached.document, now - self.ttl + self.refresh_interval)
                return cached.document
            self._cache[url] = _Cached(document, now)
            return document

    def _fetch(self, url: str) -> Mapping[str, Any]:
        if not allowed_url(url):
            raise KeyUnavailableError("keys are fetched over https only")
        request = Request(url, headers={"Accept": "application/json", "User-Agent": "scimcore"})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read(self.max_bytes + 1)
        except (OSError, ValueError, HTTPException) as exc:  # URLError and timeouts: OSError
            raise KeyUnavailableError(f"could not fetch {url}: {exc}") from None
        if len(body) > self.max_bytes:
            raise KeyUnavailableError(f"{url} answered more than {self.max_bytes} bytes")
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise KeyUnavailableError(f"{url} did not answer JSON") from None
        if not isinstance(document, dict):
            raise KeyUnavailableError(f"{url} did not answer a JSON object")
        return document


def _kids(jwks: Mapping[str, Any]) -> set[Any]:
    keys = jwks.get("keys")
    return {k.get("kid") for k in keys if isinstance(k, dict)} if isinstance(keys, list) else set()


def _check_jwks(document: Mapping[str, Any]) -> None:
    if not isinstance(document.get("keys"), list):
        raise KeyUnavailableError("the JWKS has no keys")


def use_jwks_keys(service: ScimService) -> None:
    """Give ``service``'s token endpoint a :class:`JwksKeySource` unless it has a key source
    (a host that set ``service.oauth.assertions.key_source`` keeps its own)."""
    assertions = service.oauth.assertions
    if assertions.key_source is None:
        assertions.key_source = JwksKeySource()
