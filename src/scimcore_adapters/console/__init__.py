"""The admin console and the card owner's activation pages, as Flask blueprints (issue #17).

A host app mounts the console with its own sign-in: it hands :func:`console_blueprint` a
function that answers "which admin of which workspace is this request" (a
:class:`ConsoleAdmin`, or ``None``)::

    from scimcore_adapters.console import ConsoleAdmin, activation_blueprint, console_blueprint

    def identify(request):
        user = my_current_user(request)          # the host's own session
        return ConsoleAdmin(user.workspace, user.email) if user else None

    app.register_blueprint(console_blueprint(service, identify, sign_in_url="/login"))
    app.register_blueprint(activation_blueprint(service))
    # Okta's authorization-code grant: the authorize page, beside the token endpoint
    app.register_blueprint(authorize_blueprint(service, identify, sign_in_url="/login"))

The console runs over the same Python API as the CLI (``service.workspaces`` and
``service.product``), never over storage. On every request it checks that the admin is still
an active admin of the workspace (R2.3), and it shows nothing of another workspace: a page or
a card of workspace B, asked for by an admin of workspace A, is a 404. Every form carries a
CSRF token (Flask-WTF), so the host app needs a ``SECRET_KEY``.
:class:`~scimcore_adapters.console.signin.PasswordSignIn` is a ready sign-in (e-mail and
password) for apps without one, such as the example server.
"""

from __future__ import annotations

from ._activation import activation_blueprint
from ._authorize import authorize_blueprint
from ._blueprint import console_blueprint
from ._common import ConsoleAdmin, Identify

__all__ = [
    "ConsoleAdmin",
    "Identify",
    "activation_blueprint",
    "authorize_blueprint",
    "console_blueprint",
]
