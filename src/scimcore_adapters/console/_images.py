"""Uploaded images (a card's photo, a template's logo): read from the form, served back."""

from __future__ import annotations

from flask import Response, abort, request

from scimcore.images import MAX_IMAGE_BYTES
from scimcore.product import Product
from scimcore.workspaces import WorkspaceError

__all__ = ["image_response", "stored_image"]

#: A form that carries an image carries a little more than the image.
_MAX_FORM_BYTES = MAX_IMAGE_BYTES + 64 * 1024


def stored_image(product: Product, workspace: str) -> str:
    """Store the form's ``image`` file in the workspace; its image id. Raises
    :class:`WorkspaceError` when there is none, or it is not an accepted image (type, size),
    before reading a body larger than an accepted image's form."""
    length = request.content_length
    if length is None or length > _MAX_FORM_BYTES:
        raise WorkspaceError(f"an image has at most {MAX_IMAGE_BYTES // (1024 * 1024)} MiB")
    upload = request.files.get("image")
    if upload is None or not upload.filename:
        raise WorkspaceError("choose an image file first")
    return product.store_image(workspace, upload.mimetype or None, upload.read())


def image_response(product: Product, workspace: str, image_id: str) -> Response:
    """The stored image, or 404 (also for another workspace's image)."""
    image = product.image(workspace, image_id)
    if image is None:
        abort(404)
    response = Response(image.data, content_type=image.content_type)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["Content-Security-Policy"] = "default-src 'none'"
    return response
