"""Images (profile photos and logos) of the SQL storage: one row per image, its bytes in a
``BLOB``/``bytea`` column, read by workspace and id only (issue 17)."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select

from scimcore.storage import Image

from .tables import IMAGES

__all__ = ["ImagesMixin"]

_INSERT = IMAGES.insert()
_GET = select(IMAGES).where(
    IMAGES.c.workspace_id == bindparam("b_ws"), IMAGES.c.id == bindparam("b_id")
)


class ImagesMixin:
    """``save_image`` and ``get_image`` over the store's connection and workspace."""

    _conn: Connection
    _ws: str

    def save_image(self, image: Image) -> None:
        values = {
            "workspace_id": self._ws,
            "id": image.id,
            "content_type": image.content_type,
            "data": image.data,
            "created_at": image.created_at,
        }
        self._conn.execute(_INSERT, values)

    def get_image(self, image_id: str) -> Image | None:
        row = self._conn.execute(_GET, {"b_ws": self._ws, "b_id": image_id}).first()
        if row is None:
            return None
        return Image(row.id, row.content_type, bytes(row.data), row.created_at)
