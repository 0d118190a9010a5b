"""Card images (profile photos, R8.5, and template logos): what may be stored.

An image is checked by its first bytes, not by the name or type a browser declares: PNG, JPEG,
GIF and WebP only (no SVG: it can carry scripts), at most :data:`MAX_IMAGE_BYTES`. A card's
``photo`` field and a template's ``logo`` field refer to a stored image as ``image:<id>``
(:func:`image_ref`). Pure functions: the storage keeps the bytes.
"""

from __future__ import annotations

from .storage import Image
from .workspaces import WorkspaceError

__all__ = [
    "IMAGE_TYPES",
    "MAX_IMAGE_BYTES",
    "Image",
    "ImageError",
    "check_image",
    "image_id_of",
    "image_ref",
]

MAX_IMAGE_BYTES = 2 * 1024 * 1024
"""The largest image accepted: 2 MiB."""

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
"""The content types accepted, each recognised by its magic bytes."""

_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
_PREFIX = "image:"


class ImageError(WorkspaceError):
    """An image that cannot be stored (not an accepted type, too large, empty)."""


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_image(content_type: str | None, data: bytes) -> str:
    """The content type to store ``data`` with (from its magic bytes); :class:`ImageError`
    when it is empty, over :data:`MAX_IMAGE_BYTES`, not PNG, JPEG, GIF or WebP, or when the
    declared ``content_type`` (``None``: not declared) names another type."""
    if not data:
        raise ImageError("the image is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"the image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB")
    sniffed = _sniff(data)
    if sniffed is None:
        raise ImageError("the image must be a PNG, JPEG, GIF or WebP file")
    if content_type:
        declared = content_type.split(";")[0].strip().lower()
        declared = _ALIASES.get(declared, declared)
        if declared not in ("application/octet-stream", sniffed):
            raise ImageError(f"the file is {sniffed}, not {declared}")
    return sniffed


def image_ref(image_id: str) -> str:
    """The field value that refers to a stored image: ``image:<id>``."""
    return f"{_PREFIX}{image_id}"


def image_id_of(value: str | None) -> str | None:
    """The image id of a field value ``image:<id>``; ``None`` for any other value."""
    if value and value.startswith(_PREFIX) and len(value) > len(_PREFIX):
        return value[len(_PREFIX) :]
    return None
