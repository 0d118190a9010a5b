"""Cards and their fields: the locked/linked rules of R3, R4, R6, R7 and R8 as pure functions.

Every provisioned person has a :class:`Card`. Each :class:`CardField` has a value and three
flags: ``locked`` (the card owner may not change it, R3.3, R8.3), ``linked`` (it follows its
source, R3.3, R4.1, R7.1) and ``source`` (where the value came from: the IdP, a template, an
admin or the owner). The functions here take a card and return a new one; they never do I/O.

The mapping from SCIM attributes to card fields (R6) is data, :class:`FieldMapping`; a workspace
can restrict or extend it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

import attrs
from attrs import frozen

from .errors import SCIMError
from .filters import element_matcher
from .path_parser import parse_path
from .paths import PatchPath
from .schema import ENTERPRISE_USER_URN, MAPPING, CacheSlot, SchemaRegistry

__all__ = [
    "DEFAULT_MAPPING",
    "TEMPLATE_ONLY_FIELDS",
    "Card",
    "CardError",
    "CardField",
    "FieldMapping",
    "FieldRule",
    "Source",
    "admin_edit",
    "admin_lock",
    "admin_unlock",
    "apply_template",
    "assign_template",
    "extract",
    "known_fields",
    "new_card",
    "owner_edit",
    "sync_card",
]


class CardError(ValueError):
    """A card edit that the rules forbid (e.g. an owner editing a locked field, R8.3)."""


class Source(str, Enum):
    """Who set a field's value (R8.4)."""

    IDP = "idp"
    TEMPLATE = "template"
    ADMIN = "admin"
    OWNER = "owner"


_SOURCES: dict[Any, Source] = {s.value: s for s in Source}
# The members as module constants, and ``_value_`` rather than ``.value``: on the create path,
# an Enum attribute and its ``value`` property cost more than building the field.
_IDP = Source.IDP
_TEMPLATE = Source.TEMPLATE


@frozen
class CardField:
    """One field of a card."""

    value: str
    locked: bool
    linked: bool
    source: Source

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "locked": self.locked,
            "linked": self.linked,
            "source": self.source._value_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CardField:
        source = data["source"]
        return cls(
            str(data["value"]),
            bool(data["locked"]),
            bool(data["linked"]),
            _SOURCES.get(source) or Source(source),  # a dict lookup: cards are read often
        )


@frozen
class Card:
    """A person's card: fields by key, the template applied at provisioning, and whether the
    card is active (R5.1)."""

    fields: Mapping[str, CardField] = attrs.field(factory=dict)
    template: str | None = None
    active: bool = True

    def values(self) -> dict[str, str]:
        return {k: f.value for k, f in self.fields.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "fields": {k: f.to_dict() for k, f in sorted(self.fields.items())},
            "template": self.template,
            "active": self.active,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Card:
        return cls(
            {k: CardField.from_dict(v) for k, v in data.get("fields", {}).items()},
            data.get("template"),
            bool(data.get("active", True)),
        )


@frozen
class FieldRule:
    """One row of the mapping: card field ``key`` <- SCIM attribute ``path`` (a PATCH-style
    path, RFC 7644 §3.10). ``fallback`` is tried when ``path`` yields nothing."""

    key: str
    label: str
    path: str
    fallback: str | None = None


@frozen(cache_hash=True)
class FieldMapping:
    """The R6 mapping as data. :meth:`restrict` and :meth:`extend` derive workspace variants."""

    rules: tuple[FieldRule, ...]

    def field_keys(self) -> tuple[str, ...]:
        return tuple(r.key for r in self.rules)

    def rule(self, key: str) -> FieldRule | None:
        return next((r for r in self.rules if r.key == key), None)

    def restrict(self, keys: Iterable[str]) -> FieldMapping:
        wanted = set(keys)
        return FieldMapping(tuple(r for r in self.rules if r.key in wanted))

    def extend(self, *rules: FieldRule) -> FieldMapping:
        replaced = {r.key for r in rules}
        return FieldMapping((*(r for r in self.rules if r.key not in replaced), *rules))

    def to_list(self) -> list[dict[str, Any]]:
        return [attrs.asdict(r) for r in self.rules]


DEFAULT_MAPPING = FieldMapping(
    (
        FieldRule("name", "Name", "displayName"),
        FieldRule("first_name", "First name", "name.givenName"),
        FieldRule("last_name", "Last name", "name.familyName"),
        FieldRule("job_title", "Job title", "title"),
        FieldRule("department", "Department", f"{ENTERPRISE_USER_URN}:department"),
        FieldRule("company", "Company name", f"{ENTERPRISE_USER_URN}:organization"),
        FieldRule("office_phone", "Office phone", 'phoneNumbers[type eq "work"].value'),
        FieldRule("mobile_phone", "Mobile phone", 'phoneNumbers[type eq "mobile"].value'),
        FieldRule(
            "email", "Email", 'emails[type eq "work"].value', "emails[primary eq true].value"
        ),
        FieldRule("photo", "Photo", 'photos[type eq "photo"].value'),
    )
)
"""The mapping of R6 (Entra's default sources)."""

TEMPLATE_ONLY_FIELDS: tuple[str, ...] = ("logo", "website", "address")
"""Card fields that no IdP feeds but templates and admins may set (R6: "templates may carry
further fields that no IdP feeds")."""


def known_fields(mapping: FieldMapping) -> tuple[str, ...]:
    """The card field keys a workspace knows: its mapping's (R6), then ``photo`` (R8.5) and
    :data:`TEMPLATE_ONLY_FIELDS`. Edits, locks and templates refuse any other key."""
    keys = mapping.field_keys()
    extra = ("photo", *TEMPLATE_ONLY_FIELDS)  # a photo can always be uploaded (R8.5)
    return (*keys, *(k for k in extra if k not in keys))


class _Reader:
    """One mapping path, parsed once: reads the first non-empty string at it in a document.
    The attribute's place is read here rather than by :func:`~scimcore.paths.value_at`: a
    write reads every field of its card, and the call was 2 % of a deactivation."""

    __slots__ = ("_attribute", "_matcher", "_name", "_section", "_sub")

    def __init__(self, p: PatchPath) -> None:
        self._section = p.section
        self._attribute = p.attribute
        self._name = p.attribute.name
        self._sub = p.sub_attribute.name if p.sub_attribute is not None else None
        self._matcher = (
            element_matcher(p.value_filter, p.attribute) if p.value_filter is not None else None
        )

    def __call__(self, doc: Mapping[str, Any]) -> str | None:
        holder = doc if self._section is None else doc.get(self._section)
        value = holder.get(self._name) if isinstance(holder, MAPPING) else None
        if value is None:
            return None
        if self._attribute.multi_valued:
            if not isinstance(value, list):
                return None
            key = self._sub or "value"
            matcher = self._matcher
            for item in value:
                if isinstance(item, MAPPING) and (matcher is None or matcher(item)):
                    found = item.get(key)
                    if isinstance(found, str) and found:
                        return found
            return None
        if self._sub is not None:
            value = value.get(self._sub) if isinstance(value, MAPPING) else None
        return value if isinstance(value, str) and value else None


_Readers = tuple[tuple[str, tuple[_Reader, ...]], ...]
#: Readers by mapping, on each registry.
_READERS: CacheSlot[FieldMapping, _Readers] = CacheSlot("cards.readers", 256)


def _readers(mapping: FieldMapping, registry: SchemaRegistry) -> _Readers:
    return registry.cache(_READERS).get_or_make(mapping, lambda m: _build_readers(m, registry))


def _build_readers(mapping: FieldMapping, registry: SchemaRegistry) -> _Readers:
    built = []
    for rule in mapping.rules:
        readers = []
        for path in (rule.path, rule.fallback):
            if path is None:
                continue
            try:
                readers.append(_Reader(parse_path(path, registry)))
            except SCIMError:
                continue  # a mapping that names an attribute the registry lacks feeds nothing
        built.append((rule.key, tuple(readers)))
    return tuple(built)


def extract(
    doc: Mapping[str, Any], mapping: FieldMapping, registry: SchemaRegistry
) -> dict[str, str]:
    """The card values the IdP provides for ``doc`` (keys with no value are absent)."""
    out: dict[str, str] = {}
    for key, readers in _readers(mapping, registry):
        for read in readers:
            value = read(doc)
            if value is not None:
                out[key] = value
                break
    return out


def new_card(
    idp_values: Mapping[str, str],
    template_name: str | None = None,
    template_fields: Mapping[str, str] | None = None,
    *,
    active: bool = True,
) -> Card:
    """A card at provisioning (R3.2 to R3.4): IdP fields locked and linked; the template's fields
    take precedence (R7.3) and stay linked to the template (R7.1). ``active``: whether the
    provisioned user is (R5.1)."""
    # CardField(value, locked, linked, source), positionally: keywords cost twice the call
    fields: dict[str, CardField] = {
        k: CardField(v, True, True, _IDP) for k, v in idp_values.items()
    }
    for k, v in (template_fields or {}).items():
        fields[k] = CardField(v, True, True, _TEMPLATE)
    return Card(fields, template_name if template_fields is not None else None, active)


def sync_card(card: Card, idp_values: Mapping[str, str], mapping: FieldMapping) -> Card:
    """Apply the IdP's current values to a card (R4.1, R4.3, R7.3).

    Linked IdP fields follow the IdP; an attribute gone from the IdP clears its linked field;
    a mapped attribute that appears later starts locked and linked; unlinked, template and
    hand-edited fields never change. Returns ``card`` itself when nothing changes (R4.4).
    """
    fields = dict(card.fields)
    changed = False
    for key in mapping.field_keys():
        current = fields.get(key)
        value = idp_values.get(key)
        if current is None:
            if value is not None:
                fields[key] = CardField(value, True, True, _IDP)
                changed = True
        elif current.linked and current.source is _IDP:
            if value is None:
                del fields[key]
                changed = True
            elif value != current.value:
                fields[key] = CardField(value, current.locked, True, _IDP)
                changed = True
    return Card(fields, card.template, card.active) if changed else card


def admin_edit(card: Card, key: str, value: str) -> Card:
    """An admin saves a new value: the field is unlinked (R8.1) and keeps its lock."""
    current = card.fields.get(key)
    locked = current.locked if current is not None else True
    field = CardField(value, locked=locked, linked=False, source=Source.ADMIN)
    return attrs.evolve(card, fields={**card.fields, key: field})


def admin_unlock(card: Card, key: str) -> Card:
    """An admin unlocks a field for its owner, which also unlinks it (R8.2)."""
    current = card.fields.get(key)
    if current is None:
        raise CardError(f"the card has no field {key!r}")
    field = attrs.evolve(current, locked=False, linked=False)
    return attrs.evolve(card, fields={**card.fields, key: field})


def admin_lock(card: Card, key: str) -> Card:
    """An admin locks a field again (R8.5): the owner can no longer change it. The link is not
    restored: a value an admin or owner set stays as it is."""
    current = card.fields.get(key)
    if current is None:
        raise CardError(f"the card has no field {key!r}")
    return attrs.evolve(card, fields={**card.fields, key: attrs.evolve(current, locked=True)})


def owner_edit(card: Card, key: str, value: str) -> Card:
    """The card's owner edits a field: only unlocked fields (R8.3), and their ``photo`` while
    the card has none (R8.5: Entra sends none; nobody locked it)."""
    current = card.fields.get(key)
    if current is None and key == "photo":
        photo = CardField(value, locked=False, linked=False, source=Source.OWNER)
        return attrs.evolve(card, fields={**card.fields, key: photo})
    if current is None or current.locked:
        raise CardError(f"the field {key!r} is locked: only an admin can change it")
    field = CardField(value, locked=False, linked=False, source=Source.OWNER)
    return attrs.evolve(card, fields={**card.fields, key: field})


def apply_template(
    card: Card,
    template_name: str,
    old_fields: Mapping[str, str],
    new_fields: Mapping[str, str],
    idp_values: Mapping[str, str],
) -> Card:
    """Propagate an edit of the card's template (R7.1).

    Fields still inheriting from the template take the new values; a field removed from the
    template falls back to the IdP's value when the IdP feeds it, else disappears; a field the
    template gains is added unless the card holds a hand-edited value for it. Returns ``card``
    itself when nothing changes.
    """
    if card.template != template_name:
        return card
    fields = dict(card.fields)
    for key in set(old_fields) | set(new_fields):
        current = fields.get(key)
        inherits = current is not None and current.source is Source.TEMPLATE and current.linked
        hand_edited = current is not None and current.source in (Source.ADMIN, Source.OWNER)
        if key in new_fields:
            if inherits or (current is None) or (not hand_edited and key not in old_fields):
                fields[key] = CardField(new_fields[key], True, True, Source.TEMPLATE)
        elif inherits:
            if key in idp_values:
                fields[key] = CardField(idp_values[key], True, True, Source.IDP)
            else:
                del fields[key]
    return card if fields == card.fields else attrs.evolve(card, fields=fields)


def assign_template(
    card: Card,
    old_fields: Mapping[str, str],
    template_name: str | None,
    new_fields: Mapping[str, str],
    idp_values: Mapping[str, str],
) -> Card:
    """An admin assigns a template to an existing card by hand, or none (R7.6).

    The fields inherited from the card's current template (``old_fields``) fall back to the
    IdP's values or disappear, as if that template had lost them (R7.1); then the new
    template's fields are inherited, taking precedence over IdP fields (R7.3) but never over a
    value an admin or the owner set. Returns ``card`` itself when nothing changes.
    """
    if card.template == template_name and old_fields == new_fields:
        return card
    fields = card
    if card.template is not None:
        fields = apply_template(card, card.template, old_fields, {}, idp_values)
    unassigned = Card(fields.fields, template_name, card.active)
    if template_name is None:
        return unassigned
    assigned = apply_template(unassigned, template_name, {}, new_fields, idp_values)
    return card if assigned == card else assigned
