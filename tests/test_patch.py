"""PATCH (RFC 7644 §3.5.2) on canonical documents, with the IdP payloads of idp-quirks.md."""

from __future__ import annotations

import copy
from typing import Any

import attrs
import pytest

from scimcore.errors import (
    InvalidPathError,
    InvalidSyntaxError,
    InvalidValueError,
    MutabilityError,
    NoTargetError,
    SCIMError,
)
from scimcore.messages import PATCH_OP_URN
from scimcore.patch import (
    STRICT,
    TOLERANT,
    PatchPath,
    Tolerance,
    apply_patch,
    parse_path,
)
from scimcore.schema import (
    ENTERPRISE_USER_SCHEMA,
    Attribute,
    AttrType,
    Mutability,
    ResourceType,
    Schema,
    SchemaRegistry,
    default_registry,
)

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
REG = default_registry()


def user(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "2819c223",
        "meta": {
            "resourceType": "User",
            "created": "2024-01-01T00:00:00Z",
            "lastModified": "2024-01-01T00:00:00Z",
            "version": 'W/"1"',
        },
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "active": True,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": True},
            {"value": "babs@jensen.org", "type": "home"},
        ],
    }
    doc.update(extra)
    return doc


def body(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP_URN], "Operations": list(ops)}


def patch(doc: dict[str, Any], *ops: dict[str, Any], **kw: Any) -> dict[str, Any]:
    before = copy.deepcopy(doc)
    out = apply_patch(doc, body(*ops), kw.pop("registry", REG), **kw)
    assert doc == before, "apply_patch must not mutate its input"
    return out


def fails(exc: type[SCIMError], doc: dict[str, Any], *ops: dict[str, Any], **kw: Any) -> SCIMError:
    before = copy.deepcopy(doc)
    with pytest.raises(exc) as info:
        apply_patch(doc, body(*ops), kw.pop("registry", REG), **kw)
    assert doc == before
    return info.value


# --- group resource type for membership payloads -------------------------------------------------

GROUP_SCHEMA = Schema(
    id="urn:ietf:params:scim:schemas:core:2.0:Group",
    name="Group",
    description="Group",
    attributes=(
        Attribute("displayName", required=True),
        Attribute(
            "members",
            AttrType.COMPLEX,
            multi_valued=True,
            sub_attributes=(
                Attribute("value", mutability=Mutability.IMMUTABLE),
                Attribute("$ref", AttrType.REFERENCE, mutability=Mutability.IMMUTABLE),
                Attribute("display", mutability=Mutability.READ_ONLY),
                Attribute("type", mutability=Mutability.IMMUTABLE),
            ),
        ),
    ),
)
GROUPS = SchemaRegistry(ResourceType("Group", "Group", "/Groups", "Group", GROUP_SCHEMA))


def group(*member_ids: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": "g1", "displayName": "Admins", "meta": {"resourceType": "Group"}}
    if member_ids:
        doc["members"] = [{"value": m} for m in member_ids]
    return doc


# --- parse_path ----------------------------------------------------------------------------------


class TestParsePath:
    def test_attr(self) -> None:
        p = parse_path("userName", REG)
        assert p.attribute.name == "userName"
        assert p.schema is REG.core
        assert p.sub_attribute is None and p.value_filter is None and p.section is None
        assert str(p) == "userName"

    def test_attr_any_case(self) -> None:
        assert parse_path("USERNAME", REG).attribute.name == "userName"

    def test_common_attribute_has_no_schema(self) -> None:
        p = parse_path("externalId", REG)
        assert p.schema is None and p.attribute.name == "externalId"

    def test_attr_sub(self) -> None:
        p = parse_path("name.givenName", REG)
        assert p.attribute.name == "name"
        assert p.sub_attribute is not None and p.sub_attribute.name == "givenName"

    def test_urn_attr(self) -> None:
        p = parse_path(f"{ENT}:employeeNumber", REG)
        assert p.schema is ENTERPRISE_USER_SCHEMA
        assert p.attribute.name == "employeeNumber"
        assert p.section == ENT

    def test_urn_attr_sub(self) -> None:
        p = parse_path(f"{ENT}:manager.value", REG)
        assert p.section == ENT and p.attribute.name == "manager"
        assert p.sub_attribute is not None and p.sub_attribute.name == "value"

    def test_core_urn_attr(self) -> None:
        p = parse_path(f"{CORE}:name.familyName", REG)
        assert p.section is None and p.attribute.name == "name"

    def test_value_path(self) -> None:
        p = parse_path('emails[type eq "work"]', REG)
        assert p.attribute.name == "emails"
        assert p.value_filter is not None and p.sub_attribute is None

    def test_value_path_sub(self) -> None:
        p = parse_path('emails[type eq "work"].value', REG)
        assert p.value_filter is not None
        assert p.sub_attribute is not None and p.sub_attribute.name == "value"

    def test_value_path_with_bracket_inside_string(self) -> None:
        p = parse_path('emails[value eq "a]b@x.org"].type', REG)
        assert p.sub_attribute is not None and p.sub_attribute.name == "type"

    def test_urn_value_path(self) -> None:
        p = parse_path(f'{CORE}:emails[type eq "work"].value', REG)
        assert p.attribute.name == "emails" and p.value_filter is not None

    def test_capitalised_sub_attribute_entra_18(self) -> None:
        p = parse_path('addresses[type eq "other"].Formatted', REG)
        assert p.sub_attribute is not None and p.sub_attribute.name == "formatted"

    def test_unqualified_extension_attribute_is_tolerated(self) -> None:
        p = parse_path("manager", REG)
        assert p.section == ENT
        with pytest.raises(InvalidPathError, match="unknown attribute 'manager'"):
            parse_path("manager", REG, tolerance=STRICT)

    @pytest.mark.parametrize(
        ("path", "fragment"),
        [
            ("", "empty"),
            ("   ", "empty"),
            ("nope", "unknown attribute 'nope'"),
            ("name.nope", "no sub-attribute 'nope'"),
            ("name.givenName.x", "too many '.'"),
            ("userName.x", "not complex"),
            ('emails[type eq "work"', "without a matching ']'"),
            ('emails[type eq "work"]value', "expected '.subAttribute'"),
            ("emails[]", "empty"),
            ('emails[type eq "work"].nope', "no sub-attribute 'nope'"),
            ('name[givenName eq "x"]', "multi-valued complex"),
            ('userName[x eq "y"]', "multi-valued complex"),
            ("emails[type eq ]", "invalid value filter"),
            ('emails[nope eq "x"]', "invalid value filter"),
            ("urn:example:unknown:2.0:User:foo", "unknown schema URN"),
            (ENT, "names the schema"),
            (f"{ENT}:nope", f"unknown attribute 'nope' in schema {ENT}"),
            ("1abc", "not a valid attribute name"),
            ('emails[type eq "work"].', "not a valid sub-attribute name"),
        ],
    )
    def test_invalid(self, path: str, fragment: str) -> None:
        with pytest.raises(InvalidPathError) as info:
            parse_path(path, REG)
        assert fragment in info.value.detail
        assert info.value.scim_type == "invalidPath"

    def test_cache_follows_registry_changes(self) -> None:
        reg = SchemaRegistry()
        with pytest.raises(InvalidPathError):
            parse_path("badgeId", reg)
        assert parse_path("title", reg) is parse_path("title", reg)
        reg.add_extension(
            Schema("urn:example:badge:2.0:User", "Badge", "", (Attribute("badgeId"),))
        )
        assert parse_path("badgeId", reg).section == "urn:example:badge:2.0:User"
        assert parse_path("title", reg).attribute.name == "title"

    def test_patch_path_is_frozen(self) -> None:
        p = parse_path("userName", REG)
        assert isinstance(p, PatchPath)
        with pytest.raises(AttributeError):
            p.text = "x"  # type: ignore[misc]


# --- body validation -----------------------------------------------------------------------------


class TestBody:
    @pytest.mark.parametrize("bad", [None, [], "x", 3])
    def test_body_not_object(self, bad: Any) -> None:
        with pytest.raises(InvalidSyntaxError, match="JSON object"):
            apply_patch(user(), bad, REG)

    def test_operations_missing(self) -> None:
        with pytest.raises(InvalidSyntaxError, match="no 'Operations'"):
            apply_patch(user(), {"schemas": [PATCH_OP_URN]}, REG)

    def test_operations_not_list(self) -> None:
        with pytest.raises(InvalidSyntaxError, match="must be a list"):
            apply_patch(user(), {"Operations": {"op": "add"}}, REG)

    def test_operations_empty(self) -> None:
        with pytest.raises(InvalidSyntaxError, match="empty"):
            apply_patch(user(), {"Operations": []}, REG)

    def test_wrong_schemas(self) -> None:
        with pytest.raises(InvalidSyntaxError, match="PatchOp"):
            apply_patch(user(), {"schemas": ["urn:x"], "Operations": []}, REG)

    def test_schemas_missing_is_tolerated_and_operations_first(self) -> None:
        # MS-TUT "Disable User": Operations before schemas.
        out = apply_patch(
            user(),
            {"Operations": [{"op": "Replace", "path": "active", "value": False}]},
            REG,
        )
        assert out["active"] is False

    def test_operation_not_object(self) -> None:
        err = fails(InvalidSyntaxError, user(), {"op": "add", "path": "title", "value": "x"}, "x")  # type: ignore[arg-type]
        assert err.detail.startswith("Operations[1]")

    def test_op_missing(self) -> None:
        err = fails(InvalidSyntaxError, user(), {"path": "title", "value": "x"})
        assert "Operations[0]" in err.detail and "missing 'op'" in err.detail

    def test_op_unknown(self) -> None:
        err = fails(InvalidSyntaxError, user(), {"op": "move", "path": "title", "value": "x"})
        assert "Operations[0] (move title)" in err.detail
        assert "unknown op 'move'" in err.detail and "add, remove, replace" in err.detail

    def test_op_case_strict(self) -> None:
        fails(
            InvalidSyntaxError,
            user(),
            {"op": "Add", "path": "title", "value": "x"},
            tolerance=STRICT,
        )

    def test_add_without_value(self) -> None:
        err = fails(InvalidValueError, user(), {"op": "add", "path": "title"})
        assert "requires a 'value'" in err.detail

    def test_pathless_add_without_value(self) -> None:
        fails(InvalidValueError, user(), {"op": "add"})

    def test_pathless_value_not_object(self) -> None:
        err = fails(InvalidValueError, user(), {"op": "replace", "value": "x"})
        assert "must be an object" in err.detail

    def test_path_not_string(self) -> None:
        fails(InvalidPathError, user(), {"op": "add", "path": 3, "value": "x"})

    def test_remove_without_path_is_no_target(self) -> None:
        err = fails(NoTargetError, user(), {"op": "remove"})
        assert err.scim_type == "noTarget" and "requires a 'path'" in err.detail

    def test_detail_names_index_op_and_path(self) -> None:
        err = fails(
            InvalidValueError,
            user(),
            {"op": "replace", "path": "title", "value": "ok"},
            {"op": "replace", "path": "active", "value": "maybe"},
        )
        assert err.detail.startswith("Operations[1] (replace active): ")
        assert "boolean" in err.detail

    def test_member_names_any_case(self) -> None:
        out = apply_patch(
            user(), {"operations": [{"OP": "replace", "Path": "title", "Value": "Boss"}]}, REG
        )
        assert out["title"] == "Boss"

    def test_empty_path_string_means_no_path(self) -> None:
        out = patch(user(), {"op": "replace", "path": "", "value": {"title": "Boss"}})
        assert out["title"] == "Boss"


# --- add -----------------------------------------------------------------------------------------


class TestAdd:
    def test_simple(self) -> None:
        out = patch(user(), {"op": "add", "path": "title", "value": "Tour Guide"})
        assert out["title"] == "Tour Guide"

    def test_existing_simple_is_replaced(self) -> None:
        out = patch(user(title="A"), {"op": "add", "path": "title", "value": "B"})
        assert out["title"] == "B"

    def test_sub_attribute(self) -> None:
        out = patch(user(), {"op": "add", "path": "name.middleName", "value": "J"})
        assert out["name"] == {"givenName": "Barbara", "familyName": "Jensen", "middleName": "J"}

    def test_sub_attribute_creates_complex(self) -> None:
        doc = user()
        del doc["name"]
        out = patch(doc, {"op": "add", "path": "name.givenName", "value": "B"})
        assert out["name"] == {"givenName": "B"}

    def test_complex_merges(self) -> None:
        out = patch(user(), {"op": "add", "path": "name", "value": {"middleName": "J"}})
        assert out["name"] == {"givenName": "Barbara", "familyName": "Jensen", "middleName": "J"}

    def test_multi_valued_appends(self) -> None:
        out = patch(
            user(),
            {"op": "add", "path": "emails", "value": [{"value": "x@y.org", "type": "other"}]},
        )
        assert out["emails"][-1] == {"value": "x@y.org", "type": "other"}
        assert len(out["emails"]) == 3

    def test_multi_valued_single_object(self) -> None:
        out = patch(user(), {"op": "add", "path": "emails", "value": {"value": "x@y.org"}})
        assert {"value": "x@y.org"} in out["emails"]

    def test_multi_valued_dedupes_and_merges(self) -> None:
        out = patch(
            user(),
            {
                "op": "add",
                "path": "emails",
                "value": [{"value": "babs@jensen.org", "type": "home", "display": "Babs"}],
            },
        )
        assert len(out["emails"]) == 2
        assert out["emails"][1] == {"value": "babs@jensen.org", "type": "home", "display": "Babs"}

    def test_same_value_other_type_is_a_new_element(self) -> None:
        out = patch(
            user(), {"op": "add", "path": "emails", "value": [{"value": "babs@jensen.org"}]}
        )
        assert len(out["emails"]) == 2
        out = patch(
            user(),
            {
                "op": "add",
                "path": "emails",
                "value": [{"value": "babs@jensen.org", "type": "other"}],
            },
        )
        assert len(out["emails"]) == 3

    def test_new_primary_clears_old(self) -> None:
        out = patch(
            user(),
            {"op": "add", "path": "emails", "value": [{"value": "n@x.org", "primary": True}]},
        )
        primaries = [e for e in out["emails"] if e.get("primary") is True]
        assert primaries == [{"value": "n@x.org", "primary": True}]
        assert out["emails"][0]["primary"] is False

    def test_two_new_primaries_is_invalid_value(self) -> None:
        err = fails(
            InvalidValueError,
            user(),
            {
                "op": "add",
                "path": "emails",
                "value": [{"value": "a@x", "primary": True}, {"value": "b@x", "primary": True}],
            },
        )
        assert "primary" in err.detail and "RFC 7643 §2.4" in err.detail

    def test_extension_attribute(self) -> None:
        out = patch(user(), {"op": "add", "path": f"{ENT}:employeeNumber", "value": "701984"})
        assert out[ENT] == {"employeeNumber": "701984"}

    def test_extension_sub_attribute(self) -> None:
        out = patch(user(), {"op": "add", "path": f"{ENT}:manager.value", "value": "m1"})
        assert out[ENT] == {"manager": {"value": "m1"}}

    def test_value_path_merges_into_match(self) -> None:
        out = patch(
            user(),
            {"op": "add", "path": 'emails[type eq "home"]', "value": {"display": "Babs"}},
        )
        assert out["emails"][1] == {"value": "babs@jensen.org", "type": "home", "display": "Babs"}

    def test_value_path_sub(self) -> None:
        out = patch(
            user(), {"op": "add", "path": 'emails[type eq "home"].display', "value": "Babs"}
        )
        assert out["emails"][1]["display"] == "Babs"

    def test_wrong_type_is_invalid_value(self) -> None:
        err = fails(InvalidValueError, user(), {"op": "add", "path": "title", "value": 3})
        assert err.scim_type == "invalidValue" and "title" in err.detail

    def test_wrong_type_for_complex(self) -> None:
        fails(InvalidValueError, user(), {"op": "add", "path": "name", "value": 3})

    def test_pathless_add(self) -> None:
        out = patch(
            user(),
            {
                "op": "add",
                "value": {
                    "emails": [{"value": "new@x.org", "type": "other"}],
                    "nickName": "Babs",
                    "name": {"middleName": "J"},
                },
            },
        )
        assert out["nickName"] == "Babs"
        assert len(out["emails"]) == 3
        assert out["name"]["middleName"] == "J" and out["name"]["givenName"] == "Barbara"

    def test_add_empty_list_adds_nothing(self) -> None:
        out = patch(user(), {"op": "add", "path": "emails", "value": []})
        assert out == user()


# --- replace -------------------------------------------------------------------------------------


class TestReplace:
    def test_simple(self) -> None:
        out = patch(user(), {"op": "replace", "path": "userName", "value": "b@x.org"})
        assert out["userName"] == "b@x.org"

    def test_absent_acts_as_add(self) -> None:
        out = patch(user(), {"op": "replace", "path": "title", "value": "Boss"})
        assert out["title"] == "Boss"

    def test_multi_valued_replaces_list(self) -> None:
        out = patch(user(), {"op": "replace", "path": "emails", "value": [{"value": "only@x.org"}]})
        assert out["emails"] == [{"value": "only@x.org"}]

    def test_complex_merges_per_rfc(self) -> None:
        out = patch(user(), {"op": "replace", "path": "name", "value": {"givenName": "Babs"}})
        assert out["name"] == {"givenName": "Babs", "familyName": "Jensen"}

    def test_complex_null_sub_clears_it(self) -> None:
        out = patch(user(), {"op": "replace", "path": "name", "value": {"givenName": None, "x": 1}})
        assert out["name"] == {"familyName": "Jensen"}

    def test_sub_attribute(self) -> None:
        out = patch(user(), {"op": "replace", "path": "name.familyName", "value": "Smith"})
        assert out["name"]["familyName"] == "Smith"

    def test_value_path_replaces_element_keeping_filter_values(self) -> None:
        out = patch(
            user(),
            {"op": "replace", "path": 'emails[type eq "work"]', "value": {"value": "w@x.org"}},
        )
        assert out["emails"][0] == {"type": "work", "value": "w@x.org"}

    def test_value_path_sub(self) -> None:
        out = patch(
            user(), {"op": "replace", "path": 'emails[type eq "work"].value', "value": "w@x.org"}
        )
        assert out["emails"][0] == {"value": "w@x.org", "type": "work", "primary": True}

    def test_value_path_sub_primary_clears_others(self) -> None:
        out = patch(
            user(), {"op": "replace", "path": 'emails[type eq "home"].primary', "value": True}
        )
        assert out["emails"][0]["primary"] is False
        assert out["emails"][1]["primary"] is True

    def test_value_path_with_and_filter(self) -> None:
        out = patch(
            user(),
            {
                "op": "replace",
                "path": 'emails[type eq "work" and value ew "example.com"].display',
                "value": "Work",
            },
        )
        assert out["emails"][0]["display"] == "Work"
        assert "display" not in out["emails"][1]

    def test_multi_valued_sub_without_filter_sets_every_element(self) -> None:
        out = patch(user(), {"op": "replace", "path": "emails.display", "value": "E"})
        assert all(e["display"] == "E" for e in out["emails"])

    def test_pathless_replace(self) -> None:
        out = patch(
            user(),
            {
                "op": "replace",
                "value": {"emails": [{"value": "x@y.org"}], "displayName": "Babs"},
            },
        )
        assert out["emails"] == [{"value": "x@y.org"}]
        assert out["displayName"] == "Babs"

    def test_pathless_replace_ignores_unknown_keys(self) -> None:
        out = patch(user(), {"op": "replace", "value": {"unknownThing": 1, "title": "T"}})
        assert out == {**user(), "title": "T"}

    def test_no_match_strict_is_no_target(self) -> None:
        err = fails(
            NoTargetError,
            user(),
            {"op": "replace", "path": 'emails[type eq "other"].value', "value": "o@x"},
            tolerance=STRICT,
        )
        assert "matches no value of 'emails'" in err.detail

    def test_no_match_with_non_eq_filter_is_no_target(self) -> None:
        err = fails(
            NoTargetError,
            user(),
            {"op": "replace", "path": 'emails[type sw "oth"].value', "value": "o@x"},
        )
        assert "conjunction of 'eq'" in err.detail
        # ne "work" matches the home address, so this one works:
        out = patch(
            user(), {"op": "replace", "path": 'emails[type ne "work"].display', "value": "H"}
        )
        assert out["emails"][1]["display"] == "H"

    def test_same_value_changes_nothing(self) -> None:
        doc = user()
        out = patch(doc, {"op": "replace", "path": "userName", "value": doc["userName"]})
        assert out == doc


# --- remove --------------------------------------------------------------------------------------


class TestRemove:
    def test_simple(self) -> None:
        out = patch(user(title="T"), {"op": "remove", "path": "title"})
        assert "title" not in out

    def test_absent_is_noop(self) -> None:
        assert patch(user(), {"op": "remove", "path": "title"}) == user()

    def test_sub_attribute(self) -> None:
        out = patch(user(), {"op": "remove", "path": "name.givenName"})
        assert out["name"] == {"familyName": "Jensen"}

    def test_last_sub_attribute_drops_complex(self) -> None:
        out = patch(
            user(),
            {"op": "remove", "path": "name.givenName"},
            {"op": "remove", "path": "name.familyName"},
        )
        assert "name" not in out

    def test_multi_valued_all(self) -> None:
        out = patch(user(), {"op": "remove", "path": "emails"})
        assert "emails" not in out

    def test_value_path(self) -> None:
        out = patch(user(), {"op": "remove", "path": 'emails[type eq "work"]'})
        assert out["emails"] == [{"value": "babs@jensen.org", "type": "home"}]

    def test_value_path_last_element_drops_key(self) -> None:
        out = patch(user(), {"op": "remove", "path": "emails[value pr]"})
        assert "emails" not in out

    def test_value_path_sub(self) -> None:
        out = patch(user(), {"op": "remove", "path": 'emails[type eq "work"].primary'})
        assert out["emails"][0] == {"value": "bjensen@example.com", "type": "work"}

    def test_sub_of_every_element(self) -> None:
        out = patch(user(), {"op": "remove", "path": "emails.type"})
        assert all("type" not in e for e in out["emails"])

    def test_value_path_no_match_is_noop_by_default(self) -> None:
        assert patch(user(), {"op": "remove", "path": 'emails[type eq "other"]'}) == user()

    def test_value_path_no_match_strict_is_no_target(self) -> None:
        err = fails(
            NoTargetError,
            user(),
            {"op": "remove", "path": 'emails[type eq "other"]'},
            tolerance=STRICT,
        )
        assert err.scim_type == "noTarget"

    def test_extension_section_disappears(self) -> None:
        doc = user(**{ENT: {"employeeNumber": "1"}})
        out = patch(doc, {"op": "remove", "path": f"{ENT}:employeeNumber"})
        assert ENT not in out

    def test_extension_sub_attribute_section_disappears(self) -> None:
        doc = user(**{ENT: {"manager": {"value": "m"}}})
        out = patch(doc, {"op": "remove", "path": f"{ENT}:manager.value"})
        assert ENT not in out

    def test_required_user_name(self) -> None:
        err = fails(InvalidValueError, user(), {"op": "remove", "path": "userName"})
        assert err.detail.startswith("Operations[0] (remove userName): 'userName' is required")

    def test_required_cleared_by_empty_replace(self) -> None:
        err = fails(
            InvalidValueError,
            user(),
            {"op": "replace", "path": "title", "value": "T"},
            {"op": "replace", "value": {"userName": ""}},
        )
        assert err.detail.startswith("Operations[1] (replace): 'userName' is required")

    def test_required_removed_then_added_is_fine(self) -> None:
        out = patch(
            user(),
            {"op": "remove", "path": "userName"},
            {"op": "add", "path": "userName", "value": "n@x.org"},
        )
        assert out["userName"] == "n@x.org"


# --- read-only, immutable, password --------------------------------------------------------------


class TestMutability:
    @pytest.mark.parametrize(
        "path",
        [
            "id",
            "meta",
            "meta.created",
            "meta.lastModified",
            "groups",
            f"{ENT}:manager.displayName",
            'groups[value eq "x"].display',
        ],
    )
    @pytest.mark.parametrize("op", ["add", "replace", "remove"])
    def test_read_only_explicit_path(self, path: str, op: str) -> None:
        err = fails(MutabilityError, user(), {"op": op, "path": path, "value": "x"})
        assert err.scim_type == "mutability" and "read-only" in err.detail

    def test_read_only_keys_in_pathless_value_are_ignored(self) -> None:
        # Okta 10: {"op":"replace","value":{"id":..,"displayName":..}}
        out = patch(
            user(),
            {
                "op": "replace",
                "value": {
                    "id": "other",
                    "displayName": "Babs",
                    "meta": {"created": "x"},
                    "schemas": [CORE],
                    "groups": [{"value": "g"}],
                    "meta.version": "x",
                },
            },
        )
        assert out == {**user(), "displayName": "Babs"}

    def test_read_only_sub_in_value_is_dropped(self) -> None:
        out = patch(
            user(),
            {
                "op": "add",
                "path": f"{ENT}:manager",
                "value": {"value": "m1", "displayName": "Boss"},
            },
        )
        assert out[ENT] == {"manager": {"value": "m1"}}

    def test_schemas_path_is_noop(self) -> None:
        assert patch(user(), {"op": "replace", "path": "schemas", "value": [CORE]}) == user()

    def test_password_is_validated_and_dropped(self) -> None:
        assert patch(user(), {"op": "replace", "value": {"password": "s3cret"}}) == user()
        assert patch(user(), {"op": "replace", "path": "password", "value": "s3cret"}) == user()
        fails(InvalidValueError, user(), {"op": "replace", "path": "password", "value": 1})

    def immutable_registry(self) -> SchemaRegistry:
        reg = SchemaRegistry()
        reg.add_extension(
            Schema(
                id="urn:example:params:scim:schemas:extension:badge:2.0:User",
                name="Badge",
                description="",
                attributes=(
                    Attribute("badgeId", mutability=Mutability.IMMUTABLE),
                    Attribute(
                        "card",
                        AttrType.COMPLEX,
                        sub_attributes=(
                            Attribute("serial", mutability=Mutability.IMMUTABLE),
                            Attribute("label"),
                        ),
                    ),
                ),
            )
        )
        return reg

    def test_immutable_set_when_absent(self) -> None:
        reg = self.immutable_registry()
        out = patch(user(), {"op": "add", "path": "badgeId", "value": "B1"}, registry=reg)
        assert out["urn:example:params:scim:schemas:extension:badge:2.0:User"] == {"badgeId": "B1"}

    def test_immutable_same_value_is_fine(self) -> None:
        reg = self.immutable_registry()
        doc = user(**{"urn:example:params:scim:schemas:extension:badge:2.0:User": {"badgeId": "B"}})
        assert patch(doc, {"op": "replace", "path": "badgeId", "value": "B"}, registry=reg) == doc

    @pytest.mark.parametrize(
        "op",
        [
            {"op": "replace", "path": "badgeId", "value": "C"},
            {"op": "remove", "path": "badgeId"},
            {"op": "replace", "value": {"badgeId": "C"}},
            {"op": "replace", "path": "card.serial", "value": "2"},
            {"op": "replace", "path": "card", "value": {"serial": "2"}},
            {"op": "remove", "path": "card"},
        ],
    )
    def test_immutable_change_is_mutability(self, op: dict[str, Any]) -> None:
        reg = self.immutable_registry()
        doc = user(
            **{
                "urn:example:params:scim:schemas:extension:badge:2.0:User": {
                    "badgeId": "B",
                    "card": {"serial": "1"},
                }
            }
        )
        err = fails(MutabilityError, doc, op, registry=reg)
        assert "immutable" in err.detail

    @pytest.mark.parametrize(
        "op",
        [
            {"op": "replace", "path": 'members[value eq "a"].value', "value": "b"},
            {"op": "replace", "path": "members.value", "value": "b"},
            {"op": "remove", "path": 'members[value eq "a"].value'},
            {"op": "remove", "path": "members.value"},
        ],
    )
    def test_immutable_sub_attribute_of_elements(self, op: dict[str, Any]) -> None:
        err = fails(MutabilityError, group("a"), op, registry=GROUPS)
        assert "'members.value' is immutable" in err.detail

    def test_immutable_sub_attribute_set_when_absent(self) -> None:
        doc = group("a")
        out = patch(
            doc,
            {"op": "add", "path": 'members[value eq "a"].type', "value": "User"},
            registry=GROUPS,
        )
        assert out["members"] == [{"value": "a", "type": "User"}]

    def test_immutable_sibling_sub_attribute_can_change(self) -> None:
        reg = self.immutable_registry()
        urn = "urn:example:params:scim:schemas:extension:badge:2.0:User"
        doc = user(**{urn: {"card": {"serial": "1"}}})
        out = patch(doc, {"op": "add", "path": "card.label", "value": "L"}, registry=reg)
        assert out[urn]["card"] == {"serial": "1", "label": "L"}


# --- atomicity -----------------------------------------------------------------------------------


class TestAtomicity:
    def test_second_operation_fails_nothing_applied(self) -> None:
        doc = user()
        before = copy.deepcopy(doc)
        with pytest.raises(InvalidPathError) as info:
            apply_patch(
                doc,
                body(
                    {"op": "replace", "path": "displayName", "value": "X"},
                    {"op": "replace", "path": "nope", "value": "Y"},
                ),
                REG,
            )
        assert doc == before
        assert info.value.detail.startswith("Operations[1] (replace nope)")

    def test_returns_a_new_document(self) -> None:
        doc = user()
        out = apply_patch(doc, body({"op": "replace", "path": "title", "value": "T"}), REG)
        out["emails"][0]["value"] = "changed"
        out["name"]["givenName"] = "changed"
        assert doc == user()

    def test_operations_see_previous_results(self) -> None:
        out = patch(
            user(),
            {"op": "add", "path": "phoneNumbers", "value": [{"value": "1", "type": "work"}]},
            {"op": "replace", "path": 'phoneNumbers[type eq "work"].value', "value": "2"},
        )
        assert out["phoneNumbers"] == [{"value": "2", "type": "work"}]


# --- IdP quirks (idp-quirks.md) ------------------------------------------------------------------


class TestEntra:
    def test_2_capitalised_ops(self) -> None:
        out = patch(
            user(title="T"),
            {"op": "Add", "path": "nickName", "value": "B"},
            {"op": "Replace", "path": "displayName", "value": "D"},
            {"op": "Remove", "path": "title"},
        )
        assert out["nickName"] == "B" and out["displayName"] == "D" and "title" not in out

    @pytest.mark.parametrize(("sent", "stored"), [("False", False), ("True", True), (False, False)])
    def test_3_boolean_strings(self, sent: Any, stored: bool) -> None:
        out = patch(user(), {"op": "Replace", "path": "active", "value": sent})
        assert out["active"] is stored

    def test_4_several_operations(self) -> None:
        # MS-KNOWN: one operation per attribute, value filters and URN paths.
        doc = user()
        out = apply_patch(
            doc,
            {
                "schemas": [PATCH_OP_URN],
                "Operations": [
                    {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "n@x.org"},
                    {"op": "Replace", "path": "name.givenName", "value": "Babs"},
                    {"op": "Replace", "path": "externalId", "value": "ext-1"},
                    {"op": "Add", "path": f"{ENT}:employeeNumber", "value": "701984"},
                ],
            },
            REG,
        )
        assert out["emails"][0]["value"] == "n@x.org"
        assert out["name"]["givenName"] == "Babs"
        assert out["externalId"] == "ext-1"
        assert out[ENT] == {"employeeNumber": "701984"}

    def test_5_pathless_dotted_and_urn_keys(self) -> None:
        out = patch(
            user(),
            {
                "op": "replace",
                "value": {
                    "displayName": "Babs J",
                    "name.givenName": "Babs",
                    "NAME.FamilyName": "J",
                    f"{ENT}:employeeNumber": "1",
                    f"{ENT}:manager.value": "m1",
                },
            },
        )
        assert out["name"] == {"givenName": "Babs", "familyName": "J"}
        assert out["displayName"] == "Babs J"
        assert out[ENT] == {"employeeNumber": "1", "manager": {"value": "m1"}}
        assert "name.givenName" not in out

    def test_5_pathless_urn_object(self) -> None:
        out = patch(
            user(**{ENT: {"employeeNumber": "1"}}),
            {"op": "replace", "value": {ENT: {"department": "Tour", "Division": "D"}}},
        )
        assert out[ENT] == {"employeeNumber": "1", "department": "Tour", "division": "D"}

    def test_5_pathless_any_case_names(self) -> None:
        out = patch(user(), {"op": "replace", "value": {"DisplayName": "X", "ACTIVE": "False"}})
        assert out["displayName"] == "X" and out["active"] is False

    def test_6_add_on_filter_that_matches_nothing_creates(self) -> None:
        out = patch(
            user(),
            {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555 0100"},
        )
        assert out["phoneNumbers"] == [{"type": "mobile", "value": "+1 555 0100"}]

    def test_6_appends_to_existing_list(self) -> None:
        doc = user(phoneNumbers=[{"type": "work", "value": "1"}])
        out = patch(doc, {"op": "Add", "path": 'phoneNumbers[type eq "fax"].value', "value": "2"})
        assert out["phoneNumbers"] == [
            {"type": "work", "value": "1"},
            {"type": "fax", "value": "2"},
        ]

    def test_6_address_sub_attributes_build_one_element(self) -> None:
        out = patch(
            user(),
            {"op": "Add", "path": 'addresses[type eq "work"].streetAddress', "value": "1 Main"},
            {"op": "Add", "path": 'addresses[type eq "work"].postalCode', "value": "12345"},
            {"op": "Add", "path": 'addresses[type eq "other"].Formatted', "value": "Office 3"},
        )
        assert out["addresses"] == [
            {"type": "work", "streetAddress": "1 Main", "postalCode": "12345"},
            {"type": "other", "formatted": "Office 3"},
        ]

    def test_6_strict_is_no_target(self) -> None:
        fails(
            NoTargetError,
            user(),
            {"op": "add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1"},
            tolerance=STRICT,
        )

    def test_6_whole_element_on_filter_miss(self) -> None:
        out = patch(
            user(),
            {"op": "Add", "path": 'phoneNumbers[type eq "work"]', "value": {"value": "1"}},
        )
        assert out["phoneNumbers"] == [{"type": "work", "value": "1"}]

    def test_7_replace_on_filter_miss_acts_as_add(self) -> None:
        out = patch(
            user(),
            {"op": "Replace", "path": 'emails[type eq "other"].value', "value": "o@x.org"},
        )
        assert out["emails"][-1] == {"type": "other", "value": "o@x.org"}

    def test_8_manager_plain_string(self) -> None:
        out = patch(user(), {"op": "Add", "path": f"{ENT}:manager", "value": "26118915-6090"})
        assert out[ENT] == {"manager": {"value": "26118915-6090"}}

    def test_8_manager_old_example_list_without_urn(self) -> None:
        out = patch(
            user(),
            {
                "op": "Add",
                "path": "manager",
                "value": [{"$ref": "../Users/26118915", "value": "26118915"}],
            },
        )
        assert out[ENT] == {"manager": {"$ref": "../Users/26118915", "value": "26118915"}}

    def test_8_change_manager_drops_stale_ref(self) -> None:
        doc = user(**{ENT: {"manager": {"value": "old", "$ref": "../Users/old"}}})
        out = patch(doc, {"op": "Replace", "path": f"{ENT}:manager", "value": "new"})
        assert out[ENT] == {"manager": {"value": "new"}}

    @pytest.mark.parametrize("empty", ["", None, {}, []])
    def test_8_replace_with_empty_clears_manager(self, empty: Any) -> None:
        doc = user(**{ENT: {"manager": {"value": "m"}, "department": "D"}})
        out = patch(doc, {"op": "Replace", "path": f"{ENT}:manager", "value": empty})
        assert out[ENT] == {"department": "D"}

    def test_8_clearing_last_extension_attribute_drops_section(self) -> None:
        doc = user(**{ENT: {"manager": {"value": "m"}}})
        out = patch(doc, {"op": "Replace", "path": f"{ENT}:manager", "value": ""})
        assert ENT not in out

    def test_8_clear_absent_manager_is_noop(self) -> None:
        assert patch(user(), {"op": "Replace", "path": f"{ENT}:manager", "value": ""}) == user()

    @pytest.mark.parametrize("empty", ["", None, []])
    def test_replace_with_empty_removes(self, empty: Any) -> None:
        out = patch(user(title="T"), {"op": "replace", "path": "title", "value": empty})
        assert "title" not in out
        out = patch(user(), {"op": "replace", "path": "emails", "value": empty})
        assert "emails" not in out

    def test_empty_string_kept_when_strict(self) -> None:
        out = patch(user(), {"op": "replace", "path": "title", "value": ""}, tolerance=STRICT)
        assert out["title"] == ""

    def test_10_add_members(self) -> None:
        out = patch(
            group("a"),
            {"op": "Add", "path": "members", "value": [{"$ref": None, "value": "b"}]},
            registry=GROUPS,
        )
        assert out["members"] == [{"value": "a"}, {"value": "b"}]

    def test_10_add_existing_member_is_not_duplicated(self) -> None:
        out = patch(
            group("a"), {"op": "Add", "path": "members", "value": [{"value": "a"}]}, registry=GROUPS
        )
        assert out["members"] == [{"value": "a"}]

    def test_10_remove_members_with_value(self) -> None:
        out = patch(
            group("a", "b", "c"),
            {"op": "Remove", "path": "members", "value": [{"value": "b"}, {"value": "c"}]},
            registry=GROUPS,
        )
        assert out["members"] == [{"value": "a"}]

    def test_10_remove_last_member_drops_key(self) -> None:
        out = patch(
            group("a"),
            {"op": "Remove", "path": "members", "value": [{"value": "a"}]},
            registry=GROUPS,
        )
        assert "members" not in out

    def test_10_remove_absent_member_is_noop(self) -> None:
        doc = group("a")
        out = patch(
            doc, {"op": "Remove", "path": "members", "value": [{"value": "zz"}]}, registry=GROUPS
        )
        assert out == doc
        fails(
            NoTargetError,
            doc,
            {"op": "remove", "path": "members", "value": [{"value": "zz"}]},
            registry=GROUPS,
            tolerance=Tolerance(remove_miss_is_noop=False),
        )

    def test_10_remove_with_flag(self) -> None:
        out = patch(
            group("a", "b"),
            {"op": "remove", "path": 'members[value eq "a"]'},
            registry=GROUPS,
        )
        assert out["members"] == [{"value": "b"}]

    def test_10_remove_by_value_on_emails(self) -> None:
        out = patch(
            user(),
            {"op": "Remove", "path": "emails", "value": [{"value": "babs@jensen.org"}]},
        )
        assert out["emails"] == [{"value": "bjensen@example.com", "type": "work", "primary": True}]

    def test_10_remove_value_ignored_when_strict(self) -> None:
        out = patch(
            group("a", "b"),
            {"op": "remove", "path": "members", "value": [{"value": "a"}]},
            registry=GROUPS,
            tolerance=STRICT,
        )
        assert "members" not in out

    def test_17_roles_primary_true_string_creates(self) -> None:
        out = patch(
            user(), {"op": "Add", "path": 'roles[primary eq "True"].value', "value": "Admin"}
        )
        assert out["roles"] == [{"primary": True, "value": "Admin"}]

    def test_17_roles_primary_true_string_matches_boolean(self) -> None:
        doc = user(roles=[{"value": "User", "primary": True}, {"value": "Other"}])
        out = patch(
            doc, {"op": "Replace", "path": 'roles[primary eq "True"].value', "value": "Admin"}
        )
        assert out["roles"] == [{"value": "Admin", "primary": True}, {"value": "Other"}]

    def test_17_roles_primary_string_strict_is_invalid_path(self) -> None:
        fails(
            InvalidPathError,
            user(),
            {"op": "add", "path": 'roles[primary eq "True"].value', "value": "Admin"},
            tolerance=STRICT,
        )

    def test_17_json_encoded_role_items(self) -> None:
        out = patch(
            user(),
            {
                "op": "Add",
                "path": "roles",
                "value": [
                    '{"primary":false,"type":"WindowsAzureActiveDirectoryRole","value":"Admin"}'
                ],
            },
        )
        assert out["roles"] == [
            {"primary": False, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}
        ]

    def test_18_capitalised_sub_attribute(self) -> None:
        out = patch(
            user(), {"op": "Add", "path": 'emails[type eq "other"].Value', "value": "p@x.org"}
        )
        assert out["emails"][-1] == {"type": "other", "value": "p@x.org"}

    def test_1_rejected_operation_fails_whole_update(self) -> None:
        fails(
            InvalidValueError,
            user(),
            {"op": "Replace", "path": "displayName", "value": "ok"},
            {"op": "Replace", "path": "active", "value": "Perhaps"},
        )


class TestOkta:
    @pytest.mark.parametrize("active", [False, True])
    def test_6_deactivate_reactivate(self, active: bool) -> None:
        out = patch(user(active=not active), {"op": "replace", "value": {"active": active}})
        assert out["active"] is active

    def test_10_group_push(self) -> None:
        out = patch(
            group("a", "b"),
            {"op": "remove", "path": 'members[value eq "a"]'},
            {"op": "add", "path": "members", "value": [{"value": "c", "display": "Carol"}]},
            registry=GROUPS,
        )
        # display is read-only in this Group schema: dropped
        assert out["members"] == [{"value": "b"}, {"value": "c"}]

    def test_10_replace_with_read_only_id(self) -> None:
        doc = group("a")
        out = patch(
            doc,
            {"op": "replace", "value": {"id": "g1", "displayName": "Admins 2"}},
            registry=GROUPS,
        )
        assert out == {**doc, "displayName": "Admins 2"}

    def test_10_full_push_replaces_members(self) -> None:
        out = patch(
            group("a", "b"),
            {"op": "replace", "path": "members", "value": [{"value": "c"}]},
            registry=GROUPS,
        )
        assert out["members"] == [{"value": "c"}]

    def test_5_password_sync(self) -> None:
        assert patch(user(), {"op": "replace", "value": {"password": "n3w"}}) == user()


def test_tolerance_defaults() -> None:
    fields = attrs.fields(Tolerance)
    assert Tolerance() == TOLERANT
    assert all(getattr(TOLERANT, f.name) is True for f in fields)
    assert all(getattr(STRICT, f.name) is False for f in fields)


def test_post_and_pathless_patch_share_one_walk_that_ignores_a_read_only_dotted_key() -> None:
    """A POST body and a path-less PATCH value are walked alike (scimcore.paths.walk_members):
    ``manager.displayName`` is read-only (RFC 7643 §4.3), so a dotted key naming it is ignored
    (RFC 7644 §3.5.1) and the manager set by the member before it stays."""
    from scimcore.converter import normalize_resource

    members = {f"{ENT}:manager": {"value": "boss-1"}, f"{ENT}:manager.displayName": "Boss"}
    created = normalize_resource({"userName": "a@example.com", **members}, REG)
    assert created[ENT] == {"manager": {"value": "boss-1"}}
    patched = apply_patch(user(), {"Operations": [{"op": "add", "value": members}]}, REG)
    assert patched[ENT] == {"manager": {"value": "boss-1"}}
