"""The fast paths' part of the storage contract: a backend may offer optional capabilities
beyond :class:`~scimcore.Storage` (reading a user with the authentication, read turns, ...),
which the service uses when it finds them. Whatever they are, the service must answer through
them exactly what it answers without them.

:class:`FastPathContract` sends the same SCIM reads, with good, dead, deleted and unknown
tokens, to a service over the backend and to a service over :class:`PlainPaths` (the backend
with only the methods of the protocols), and compares status, headers and body.
"""

from __future__ import annotations

import json
from typing import Any, cast

from scimcore import ScimRequest, ScimResponse, ScimService, Storage
from scimcore.oauth_clients import OAuthStorage
from scimcore.testing._console_contract import ADMIN, BASE, call, console_service

#: What a service may find on a plain storage: the methods of the two protocols.
PLAIN_NAMES = frozenset(
    name for protocol in (Storage, OAuthStorage) for name in dir(protocol) if name[0] != "_"
)


class PlainPaths:
    """``storage`` reduced to :data:`PLAIN_NAMES`: a service over it finds none of the
    optional capabilities the backend may have, and takes its plain paths."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def __getattr__(self, name: str) -> Any:
        if name not in PLAIN_NAMES:
            raise AttributeError(name)
        return getattr(self._storage, name)


def _send(
    service: ScimService, token: str | None, path: str, query: dict[str, str], **headers: str
) -> ScimResponse:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return service.handle(ScimRequest("GET", path, query, headers, b"", base_url=BASE))


class FastPathContract:
    """Tests every backend inherits (see the module documentation)."""

    def test_reads_answer_alike_through_the_fast_and_the_plain_paths(
        self, storage: Storage
    ) -> None:
        fast, _ = console_service(storage)
        plain = ScimService(cast(Storage, PlainPaths(storage)), runtime=fast.runtime)
        api = fast.workspaces
        token = api.generate_token("acme", ADMIN).plaintext
        api.add_admin("acme", "gone@acme.example")
        dead = api.generate_token("acme", "gone@acme.example").plaintext
        api.deactivate_admin("acme", "gone@acme.example")
        deleted = api.generate_token("acme", ADMIN, "deleted")
        api.delete_token("acme", deleted.record.id)
        ids, versions = [], []
        for n, name in enumerate(["ann@acme.example", "Bob@acme.example", "carl@acme.example"]):
            body = {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": name,
                "active": n != 1,
                "emails": [{"value": name.lower(), "type": "work", "primary": True}],
            }
            created = call(plain if n % 2 else fast, token, "POST", body)  # either path writes
            assert created.status == 201, created.body
            ids.append(json.loads(created.body)["id"])
            versions.append(created.headers["ETag"])
        reads: list[tuple[str, dict[str, str], dict[str, str]]] = [
            (f"/Users/{ids[0]}", {}, {}),
            (f"/Users/{ids[0]}", {}, {"If-None-Match": versions[0]}),
            (f"/Users/{ids[1]}", {"excludedAttributes": "emails"}, {}),
            (f"/Users/{ids[2]}", {"attributes": "userName,active"}, {}),
            ("/Users/" + "0" * 32, {}, {}),
            ("/Users", {}, {}),
            ("/Users", {"filter": 'userName eq "BOB@acme.example"'}, {}),
            ("/Users", {"filter": 'userName eq "nobody@acme.example"'}, {}),
            ("/Users", {"filter": f'id eq "{ids[2]}"'}, {}),
            ("/Users", {"filter": "active eq false", "attributes": "userName"}, {}),
            ("/Users", {"filter": 'emails.value co "acme"', "sortBy": "userName"}, {}),
            ("/Users", {"startIndex": "2", "count": "1"}, {}),
            ("/Users", {"count": "0"}, {}),
            ("/Users", {"filter": 'userName eq "ann@acme.example" and'}, {}),
        ]
        for bearer in (token, dead, deleted.plaintext, "scim_unknown", None):
            for path, query, headers in reads:
                through_fast = _send(fast, bearer, path, query, **headers)
                through_plain = _send(plain, bearer, path, query, **headers)
                assert through_fast == through_plain, (bearer == token, path, query, headers)
        # Once the workspace has a group, every user read carries User.groups: a fast path
        # that still said "no group" (Authenticated.has_groups) would leave them out.
        group = {"displayName": "Sales", "members": [{"value": ids[0]}, {"value": ids[1]}]}
        assert call(fast, token, "POST", group, path="/Groups").status == 201
        for path, query, headers in reads:
            through_fast = _send(fast, token, path, query, **headers)
            assert through_fast == _send(plain, token, path, query, **headers), (path, query)
        user = json.loads(_send(fast, token, f"/Users/{ids[0]}", {}).body)
        assert [g["display"] for g in user["groups"]] == ["Sales"]
        page = json.loads(_send(fast, token, "/Users", {}).body)["Resources"]
        assert [len(u.get("groups", [])) for u in page] == [1, 1, 0]
        answered = [
            _send(fast, token, path, query, **headers).status for path, query, headers in reads
        ]
        assert answered == [200, 304, 200, 200, 404, 200, 200, 200, 200, 200, 200, 200, 200, 400]
        assert {_send(fast, dead, path, query).status for path, query, _ in reads} == {401}
