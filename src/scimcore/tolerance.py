"""The IdP tolerance table: every deviation from RFC 7644 PATCH that scimcore accepts, in one place.

Each field of :class:`Tolerance` is one quirk of Entra ID or Okta, citing its item in
``/work/shared/spec/idp-quirks.md``; :data:`TOLERANT` (the default of
:func:`scimcore.patch.apply_patch`) accepts them all, :data:`STRICT` none. "Entra's PATCH quirk"
is a field here; what it changes is where :mod:`scimcore.patcher` and
:mod:`scimcore.path_parser` read that field.
"""

from __future__ import annotations

from typing import Final

from attrs import frozen

__all__ = ["STRICT", "TOLERANT", "Tolerance"]


@frozen
class Tolerance:
    """Which IdP deviations from RFC 7644 §3.5.2 :func:`apply_patch` accepts.

    Items refer to ``/work/shared/spec/idp-quirks.md``.
    """

    #: Entra 2: ``"Add"``, ``"Replace"``, ``"Remove"`` (RFC 7644 §3.5.2 spells them lowercase).
    any_case_ops: bool = True
    #: Entra 6 and 7: ``add``/``replace`` on ``attr[filter]`` or ``attr[filter].sub`` matching
    #: nothing appends an element built from the filter's ``eq`` comparisons (RFC: noTarget).
    create_on_filter_miss: bool = True
    #: Entra 10 without ``aadOptscim062020``: ``remove`` with ``path: "members"`` and a
    #: ``value`` list removes just the listed elements (RFC: remove has no value).
    remove_by_value: bool = True
    #: Okta 10 / Entra 10: ``remove`` of a filtered or listed element that is already gone is a
    #: no-op, so retried group pushes succeed (RFC 7644 Table 9 suggests noTarget).
    remove_miss_is_noop: bool = True
    #: Entra 8 (MS-VAL "Replace with empty") and 15: ``""`` clears a singular target, like
    #: ``null`` (RFC 7643 §2.5); strictly, ``""`` would be stored.
    empty_string_clears: bool = True
    #: Entra 8 (MS-TUT Example 5): ``"path": "manager", "value": [{"value": ..}]``, a one-item
    #: list for a singular attribute, is unwrapped.
    unwrap_singleton_list: bool = True
    #: Entra 8 (MS-TUT Example 5): ``"path": "manager"`` without the enterprise URN resolves to
    #: an extension attribute when exactly one extension schema declares that name.
    unqualified_extension_names: bool = True
    #: Entra 17: ``roles[primary eq "True"]``: the strings ``"True"``/``"False"`` compared with a
    #: boolean sub-attribute in a path's value filter mean ``true``/``false``.
    boolean_strings_in_filters: bool = True
    #: The body's member names matched in any case (``operations``, ``Op``, ``Path``...).
    any_case_members: bool = True


#: The default: everything Entra ID and Okta are documented to send is accepted.
TOLERANT: Final = Tolerance()
#: RFC 7644 as written (the converter's value coercions still apply).
STRICT: Final = Tolerance(
    any_case_ops=False,
    create_on_filter_miss=False,
    remove_by_value=False,
    remove_miss_is_noop=False,
    empty_string_clears=False,
    unwrap_singleton_list=False,
    unqualified_extension_names=False,
    boolean_strings_in_filters=False,
    any_case_members=False,
)
