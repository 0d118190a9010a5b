"""Templates and Card Settings rules (R7): which template a newly provisioned card gets.

A rule is ``(filter, template)``. The filter is SCIM filter syntax (RFC 7644 §3.4.2.2) over
the user's attributes, where the card-field keys of the workspace's mapping (R6) may stand for
their attributes: ``department eq "Marketing" or department eq "Sales"``, and ``groups`` compared
with a string tests membership by group display name (R7.5): ``groups eq "Marketing"`` means
``groups[display eq "Marketing"]`` (case-insensitive, as ``displayName``). Rules are evaluated by
the same engine as SCIM queries: the keys become attributes of a synthetic extension schema
(:data:`CARD_FIELDS_URN`) whose values are the card values the IdP provides.

Rules are validated when saved (:func:`compile_rule` raises
:class:`~scimcore.errors.InvalidFilterError` with a detail that points at the error, R7.4)
and evaluated at provisioning (:func:`choose_template`, R3.4, R4.2), and again, while a card
has no template, when its person joins a group (R7.5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from attrs import frozen

from .cards import FieldMapping, extract
from .errors import InvalidFilterError
from .filters import And, AttrRef, Compare, Filter, Not, Or, Present, ValuePath, matches, validate
from .filters import parse_filter as _parse
from .schema import Attribute, CacheSlot, Schema, SchemaRegistry

__all__ = ["CARD_FIELDS_URN", "Rule", "Template", "choose_template", "compile_rule"]

CARD_FIELDS_URN = "urn:scimcore:params:scim:schemas:extension:cardfields:1.0:User"


@frozen
class Template:
    """A named set of card field values (R7.1)."""

    name: str
    fields: Mapping[str, str] = attrs.field(factory=dict)


@frozen
class Rule:
    """One Card Settings rule: cards of users matching ``filter`` get ``template`` (R7.2)."""

    id: str
    filter: str
    template: str
    position: int = 0


#: The registry a rule's filter is compiled against, by mapping, on each registry.
_CARD_REGISTRIES: CacheSlot[FieldMapping, SchemaRegistry] = CacheSlot("templates.registries", 64)


def _card_registry(registry: SchemaRegistry, mapping: FieldMapping) -> SchemaRegistry:
    """``registry`` with a synthetic extension holding the card fields of ``mapping``."""
    return registry.cache(_CARD_REGISTRIES).get_or_make(
        mapping, lambda m: _with_card_fields(registry, m)
    )


def _with_card_fields(registry: SchemaRegistry, mapping: FieldMapping) -> SchemaRegistry:
    extended = SchemaRegistry(registry.resource_type)
    extended.add_extension(
        Schema(
            id=CARD_FIELDS_URN,
            name="CardFields",
            description="The card values a user's attributes provide (R6), for template rules.",
            attributes=tuple(Attribute(r.key, description=r.label) for r in mapping.rules),
        )
    )
    return extended


_GROUPS = "groups"


def _alias(f: Filter, keys: Mapping[str, str]) -> Filter:
    """Rewrite bare card-field keys (``department``) to their synthetic attribute."""

    def ref(r: AttrRef) -> AttrRef:
        if r.urn is None and r.sub is None and r.name.lower() == _GROUPS:
            return AttrRef(None, r.name, "display")  # membership by display name (R7.5)
        if r.urn is None and r.sub is None and r.name.lower() in keys:
            return AttrRef(CARD_FIELDS_URN, keys[r.name.lower()], None)
        return r

    if isinstance(f, Compare):
        return Compare(ref(f.attr), f.op, f.value)
    if isinstance(f, Present):
        return Present(ref(f.attr))
    if isinstance(f, And):
        return And(_alias(f.left, keys), _alias(f.right, keys))
    if isinstance(f, Or):
        return Or(_alias(f.left, keys), _alias(f.right, keys))
    if isinstance(f, Not):
        return Not(_alias(f.inner, keys))
    assert isinstance(f, ValuePath)
    return f


def compile_rule(text: str, mapping: FieldMapping, registry: SchemaRegistry) -> Filter:
    """Parse and validate a rule's filter now, not at provisioning (R7.4).

    Raises :class:`InvalidFilterError` whose detail names the problem and its position.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidFilterError('a rule needs a filter, e.g. department eq "Sales"')
    keys = {k.lower(): k for k in mapping.field_keys()}
    f = _alias(_parse(text), keys)
    try:
        validate(f, _card_registry(registry, mapping))
    except InvalidFilterError as exc:
        known = ", ".join(mapping.field_keys())
        raise InvalidFilterError(
            f"{exc.detail} (card fields usable in rules: {known}; "
            'group membership: groups eq "<group name>")'
        ) from None
    return f


def choose_template(
    rules: Sequence[Rule],
    doc: Mapping[str, Any],
    mapping: FieldMapping,
    registry: SchemaRegistry,
) -> str | None:
    """The template of the first rule (in ``position`` order) that matches ``doc`` (R7.2).

    ``doc`` is the user as stored, with ``groups`` (``{"value": id, "display": name}`` per
    group) when rules are to see the person's memberships (R7.5)."""
    if not rules:
        return None
    card_registry = _card_registry(registry, mapping)
    view = {**doc, CARD_FIELDS_URN: extract(doc, mapping, registry)}
    for rule in sorted(rules, key=lambda r: r.position):
        if matches(compile_rule(rule.filter, mapping, registry), view, card_registry):
            return rule.template
    return None
