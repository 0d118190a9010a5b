"""Stored users and groups with the filters and sorts to query them by: what the SQL backend
must answer exactly as the in-memory reference does (case folding, LIKE wildcards, time zones).
"""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from scimcore.filters import AttrRef, Compare, Filter, Present, ValuePath
from scimcore.storage import SortSpec
from scimcore.testing._records import ENT, T0
from tests.strategies.filters import logic

# --- users ---------------------------------------------------------------------------------------

# Letters whose case folding is interesting (ß -> ss, KELVIN SIGN -> k), LIKE wildcards and the
# escape character, and plain letters so that comparisons often hit.
ALPHABET = list("aAbBsS%_\\ß\u212ake.@É")
small_text = st.text(alphabet=st.sampled_from(ALPHABET), max_size=4)
maybe = st.booleans()

OFFSETS = [timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    moment = T0 + timedelta(minutes=draw(st.integers(0, 6)) * 30)
    zone = draw(st.sampled_from(OFFSETS))
    text = moment.astimezone(zone).isoformat()
    return text.replace("+00:00", "Z") if draw(maybe) else text


@st.composite
def emails(draw: st.DrawFn) -> dict[str, Any]:
    element: dict[str, Any] = {}
    if draw(maybe):
        element["value"] = draw(small_text)
    if draw(maybe):
        element["type"] = draw(st.sampled_from(["work", "Work", "home", "other"]))
    if draw(maybe):
        element["primary"] = draw(maybe)
    if draw(st.integers(0, 3)) == 0:
        element["display"] = draw(small_text)
    return element


@st.composite
def documents(draw: st.DrawFn) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    taken: set[str] = set()
    for n in range(draw(st.integers(0, 9))):
        name = draw(small_text.filter(bool))
        if name.casefold() in taken:
            continue
        taken.add(name.casefold())
        created = draw(timestamps())
        doc: dict[str, Any] = {
            "id": f"{n:04x}" + draw(st.sampled_from(["ab", "AB", "aB"])),
            "userName": name,
            "meta": {
                "resourceType": "User",
                "created": created,
                "lastModified": draw(timestamps()),
                "version": 'W/"1"',
            },
        }
        for key in ("externalId", "displayName", "title"):
            if draw(maybe):
                doc[key] = draw(small_text)
        if draw(maybe):
            doc["active"] = draw(maybe)
        if draw(maybe):
            doc["emails"] = draw(st.lists(emails(), min_size=1, max_size=3))
        if draw(maybe):
            doc[ENT] = {"department": draw(small_text)}
        docs.append(doc)
    return docs


STRING_ATTRS = [
    AttrRef(None, "userName", None),
    AttrRef(None, "USERNAME", None),
    AttrRef("urn:ietf:params:scim:schemas:core:2.0:User", "userName", None),
    AttrRef(None, "externalId", None),
    AttrRef(None, "displayName", None),
    AttrRef(None, "title", None),
    AttrRef(ENT, "department", None),
    AttrRef(None, "emails", "value"),
    AttrRef(None, "emails", "type"),
    AttrRef(None, "emails", None),
    AttrRef(None, "id", None),
]
STRING_OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
ORDER_OPS = ["eq", "gt", "ge", "lt", "le"]
ELEMENT_STRING_ATTRS = [AttrRef(None, "value", None), AttrRef(None, "type", None)]


def string_leaf(attrs: list[AttrRef]) -> st.SearchStrategy[Filter]:
    compare = st.builds(
        Compare,
        st.sampled_from(attrs),
        st.sampled_from(STRING_OPS),
        st.one_of(small_text, st.sampled_from(["work", "WORK", "0001", "a", "ss"])),
    )
    null = st.builds(Compare, st.sampled_from(attrs), st.sampled_from(["eq", "ne"]), st.none())
    return st.one_of(compare, compare, null, st.builds(Present, st.sampled_from(attrs)))


def bool_leaf(attr: AttrRef) -> st.SearchStrategy[Filter]:
    return st.one_of(
        st.builds(Compare, st.just(attr), st.sampled_from(["eq", "ne"]), st.booleans()),
        st.builds(Compare, st.just(attr), st.sampled_from(["eq", "ne"]), st.none()),
        st.builds(Present, st.just(attr)),
    )


date_leaf: st.SearchStrategy[Filter] = st.builds(
    Compare,
    st.sampled_from([AttrRef(None, "meta", "created"), AttrRef(None, "meta", "lastModified")]),
    st.sampled_from(ORDER_OPS),
    timestamps(),
)

element_filter: st.SearchStrategy[Filter] = st.recursive(
    st.one_of(
        string_leaf(ELEMENT_STRING_ATTRS),
        bool_leaf(AttrRef(None, "primary", None)),
        string_leaf([AttrRef(None, "display", None)]),
    ),
    logic,
    max_leaves=3,
)

filters: st.SearchStrategy[Filter] = st.recursive(
    st.one_of(
        string_leaf(STRING_ATTRS),
        bool_leaf(AttrRef(None, "active", None)),
        date_leaf,
        st.builds(ValuePath, st.just(AttrRef(None, "emails", None)), element_filter),
        st.builds(Present, st.sampled_from([AttrRef(None, "emails", None)])),
    ),
    logic,
    max_leaves=5,
)

SORTS = [
    (("userName",), False),
    (("displayName",), False),
    (("externalId",), True),
    (("id",), True),
    (("meta", "created"), False),
    (("meta", "lastModified"), False),
    (("title",), False),
    (("emails", "value"), False),
    ((ENT, "department"), False),
]
sorts: st.SearchStrategy[SortSpec | None] = st.one_of(
    st.none(),
    st.builds(
        lambda spec, desc: SortSpec(spec[0], desc, spec[1]), st.sampled_from(SORTS), st.booleans()
    ),
)


# --- groups --------------------------------------------------------------------------------------

NAMES = ["Sales", "sales", "Marketing", "ß", "ss", "Ops"]
USERS = [f"{n:032x}" for n in range(5)]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[list[str]]]:
    groups, members = [], []
    for n in range(draw(st.integers(0, 6))):
        doc: dict[str, Any] = {
            "id": f"g{n:03d}",
            "displayName": draw(st.sampled_from(NAMES)),
            "meta": {"resourceType": "Group", "version": 'W/"1"'},
        }
        if draw(st.booleans()):
            doc["externalId"] = draw(st.sampled_from(["e1", "E1", "e2"]))
        groups.append(doc)
        members.append(draw(st.lists(st.sampled_from(USERS), max_size=4)))
    return groups, members


member = st.sampled_from([*USERS, "nobody"])
name = st.sampled_from([*NAMES, "SALES", "x"])
group_leaves = st.one_of(
    st.builds(lambda v: f'displayName eq "{v}"', name),
    st.builds(lambda v: f'displayName sw "{v[:1]}"', name),
    st.builds(lambda v: f'externalId eq "{v}"', st.sampled_from(["e1", "E1", "e2"])),
    st.builds(lambda v: f'members[value eq "{v}"]', member),
    st.builds(lambda v: f'members.value eq "{v}"', member),
    st.builds(lambda v: f'members[type eq "{v}"]', st.sampled_from(["User", "user", "Group"])),
    st.just("members pr"),
    st.just("externalId pr"),
)
group_id = st.builds(
    lambda n, up: f"G{n:03d}" if up else f"g{n:03d}", st.integers(0, 6), st.booleans()
)
user_leaves = st.one_of(
    st.builds(lambda v: f'groups.value eq "{v}"', group_id),
    st.builds(lambda v: f'groups.value ne "{v}"', group_id),
    st.builds(lambda v: f'groups.value sw "{v[:2]}"', group_id),
    st.builds(lambda v: f'groups[display eq "{v}"]', name),
    st.builds(lambda v: f'groups.display eq "{v}"', name),
    st.builds(lambda v: f'groups.display co "{v[1:3]}"', name),
    st.builds(
        lambda v, n: f'groups[display eq "{v}" and value eq "g{n:03d}"]', name, st.integers(0, 6)
    ),
    st.builds(lambda v: f'groups[not (display sw "{v[:1]}")]', name),
    st.builds(lambda v: f'groups.type eq "{v}"', st.sampled_from(["direct", "Direct", "indirect"])),
    st.sampled_from(["groups pr", "groups.display pr", "groups.value eq null", "groups.$ref pr"]),
    st.builds(lambda n: f'userName eq "user{n}@x.test"', st.integers(0, 5)),
    st.builds(lambda n: f'userName sw "user{n}"', st.integers(0, 5)),
    st.just('title eq "Boss"'),
)


def combined(leaves: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.recursive(
        leaves,
        lambda c: (
            st.builds(lambda a, b: f"({a}) and ({b})", c, c)
            | st.builds(lambda a, b: f"({a}) or ({b})", c, c)
            | st.builds(lambda a: f"not ({a})", c)
        ),
        max_leaves=3,
    )
