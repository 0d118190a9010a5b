"""Images (profile photos and logos) of the SQL storage: one row per image, its bytes in a
``BLOB``/``bytea`` column, read by workspace and id only (issue 17)."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select

from scimcore.storage import Image

from .tables import IMAGES

__all__ = ["get_image", "save_image"]

_INSERT = IMAGES.insert()
_GET = select(IMAGES).where(
    IMAGES.c.workspace_id == bindparam("b_ws"), IMAGES.c.id == bindparam("b_id")
)


def save_image(conn: Connection, workspace_id: str, image: Image) -> None:
    """Store a new image of the workspace."""
    values = {
        "workspace_id": workspace_id,
        "id": image.id,
        "content_type": image.content_type,
        "data": image.data,
        "created_at": image.created_at,
    }
    conn.execute(_INSERT, values)


def get_image(conn: Connection, workspace_id: str, image_id: str) -> Image | None:
    """The workspace's image with this id, or ``None``."""
    row = conn.execute(_GET, {"b_ws": workspace_id, "b_id": image_id}).first()
    if row is None:
        return None
    return Image(row.id, row.content_type, bytes(row.data), row.created_at)
