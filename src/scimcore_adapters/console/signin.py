"""The example server's own console sign-in: workspace, e-mail and password.

One sign-in among others: a host app with its own users hands the console its own
``identify`` function instead (see :mod:`scimcore_adapters.console`). This one keeps the
signed-in admin in Flask's signed session cookie (``HttpOnly``, ``SameSite=Lax``, ``Secure``
when the request came over HTTPS), verifies passwords with argon2id
(:mod:`scimcore_adapters.passwords`), and slows down repeated failures
(:class:`SignInThrottle`)::

    sign_in = PasswordSignIn(service)
    sign_in.init_app(app)            # the sign-in pages, and the session cookie's settings
    app.register_blueprint(console_blueprint(service, sign_in.identify,
                                             sign_in_url=sign_in.sign_in_url,
                                             sign_out_url=sign_in.sign_out_url))
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Request,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask.typing import ResponseReturnValue

from scimcore import ScimService

from ..passwords import hash_password, needs_rehash, verify_password
from ._activation import activation_blueprint
from ._authorize import authorize_blueprint
from ._blueprint import console_blueprint
from ._common import ConsoleAdmin, csrf_protect, is_active_admin, pages_blueprint, safe_next

__all__ = ["PasswordSignIn", "SignInThrottle", "mount_console"]

_KEY = "scimcore_console"


class SignInThrottle:
    """Slows down guessing: after ``free`` failed sign-ins for one (workspace, e-mail), each
    further attempt must wait ``base * 2 ** (failures - free)`` seconds (at most ``cap``)
    after the last failure. A success forgets the failures. In-process: each server process
    keeps its own counts (at most ``size`` keys, the oldest forgotten first)."""

    def __init__(
        self,
        *,
        free: int = 3,
        base: float = 1.0,
        cap: float = 900.0,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.base, self.cap, self.size, self.clock = free, base, cap, size, clock
        self._failures: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, key: tuple[str, str]) -> float:
        """Seconds before ``key`` may try again (0: now)."""
        with self._lock:
            count, last = self._failures.get(key, (0, 0.0))
        if count < self.free:
            return 0.0
        delay = min(self.cap, self.base * 2.0 ** (count - self.free))
        return max(0.0, last + delay - self.clock())

    def failed(self, key: tuple[str, str]) -> None:
        with self._lock:
            count, _ = self._failures.pop(key, (0, 0.0))
            self._failures[key] = (count + 1, self.clock())
            while len(self._failures) > self.size:
                self._failures.popitem(last=False)

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, ``Secure`` whenever the request came over HTTPS (behind a
    trusted proxy: with ``ProxyFix``), and always when ``SESSION_COOKIE_SECURE`` says so."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (
            has_request_context() and request.is_secure
        )


class PasswordSignIn:
    """E-mail and password sign-in for the console (the example server's).

    ``max_age``: seconds a sign-in lasts (then the admin signs in again). An admin who is
    deactivated, or whose workspace is gone, is signed out at their next request.
    """

    def __init__(
        self,
        service: ScimService,
        *,
        url_prefix: str = "/console",
        max_age: float = 12 * 3600,
        throttle: SignInThrottle | None = None,
    ) -> None:
        self.service = service
        self.url_prefix = url_prefix.rstrip("/")
        self.max_age = max_age
        self.throttle = throttle or SignInThrottle()

    @property
    def sign_in_url(self) -> str:
        return f"{self.url_prefix}/sign-in"

    @property
    def sign_out_url(self) -> str:
        return f"{self.url_prefix}/sign-out"

    def init_app(self, app: Flask) -> None:
        """Register the sign-in pages and set the session cookie up (``SameSite=Lax``,
        ``HttpOnly``, ``Secure`` over HTTPS). The app needs a ``SECRET_KEY``."""
        app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
        if app.config.get("SESSION_COOKIE_SAMESITE") is None:
            app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
        app.config["SESSION_COOKIE_HTTPONLY"] = True
        app.session_interface = _SessionInterface()
        app.register_blueprint(self.blueprint())

    def identify(self, req: Request) -> ConsoleAdmin | None:
        """The signed-in admin of this request, or ``None`` (signing out a session that has
        expired or whose admin is no longer active)."""
        data: Any = session.get(_KEY)
        if not isinstance(data, dict):
            return None
        try:
            admin = ConsoleAdmin(str(data["workspace"]), str(data["email"]))
            fresh = time.time() - float(data["at"]) < self.max_age
        except (KeyError, TypeError, ValueError):
            fresh = False
        if not fresh or not is_active_admin(self.service, admin):
            session.clear()
            return None
        return admin

    def _check(self, workspace: str, email: str, password: str) -> bool:
        """Whether ``email`` is an active admin of ``workspace`` with this password. An
        unknown workspace or admin costs the same argon2 work as a wrong password, so the
        time taken does not tell which admins exist. A hash made with older parameters is
        replaced at a successful sign-in."""
        try:
            admin = self.service.workspaces.get_admin(workspace, email)
        except ValueError:  # WorkspaceError: no such workspace
            admin = None
        stored = admin.password_hash if admin is not None else None
        if not verify_password(stored, password) or admin is None or not admin.active:
            return False
        if stored is not None and needs_rehash(stored):
            self.service.workspaces.set_password_hash(
                workspace, email, hash_password(password), actor=email
            )
        return True

    def blueprint(self) -> Blueprint:
        """The sign-in (GET, POST) and sign-out (POST) pages."""
        bp = pages_blueprint("scimcore_signin", self.url_prefix, "/signin-static")
        bp.before_request(csrf_protect)

        @bp.route("/sign-in", methods=["GET", "POST"])
        def sign_in() -> ResponseReturnValue:
            slugs = [w.slug for w in self.service.workspaces.list()]
            form = {
                "workspace": request.form.get("workspace", slugs[0] if len(slugs) == 1 else ""),
                "email": request.form.get("email", ""),
            }
            target = safe_next(request.values.get("next"), self.url_prefix + "/")
            if request.method == "GET":
                return render_template("console/signin.html", form=form, next=target)
            workspace, email = form["workspace"].strip(), form["email"].strip().lower()
            key = (workspace, email)
            wait = self.throttle.wait(key)
            if wait > 0:
                error = f"Too many failed sign-ins: wait {int(wait) + 1} s, then try again."
                page = render_template("console/signin.html", form=form, next=target, error=error)
                return page, 429, {"Retry-After": str(int(wait) + 1)}
            if not self._check(workspace, email, request.form.get("password", "")):
                self.throttle.failed(key)
                error = "Wrong workspace, e-mail or password (or the account is not active)."
                page = render_template("console/signin.html", form=form, next=target, error=error)
                return page, 401
            self.throttle.succeeded(key)
            session.clear()  # a new session: nothing from before the sign-in survives
            session[_KEY] = {"workspace": workspace, "email": email, "at": time.time()}
            return redirect(target, 303)

        @bp.post("/sign-out")
        def sign_out() -> ResponseReturnValue:
            session.clear()
            return redirect(url_for(".sign_in"), 303)

        return bp


def mount_console(
    app: Flask,
    service: ScimService,
    *,
    url_prefix: str = "/console",
    activation_prefix: str = "/activate",
    scim_path: str = "/scim/v2",
) -> PasswordSignIn:
    """Mount the console with :class:`PasswordSignIn` (at ``url_prefix``) and the activation
    pages (at ``activation_prefix``) on ``app``, as the example server does. The app needs a
    ``SECRET_KEY``. Returns the sign-in, whose throttle a host may tune."""
    sign_in = PasswordSignIn(service, url_prefix=url_prefix)
    sign_in.init_app(app)
    app.register_blueprint(
        console_blueprint(
            service,
            sign_in.identify,
            url_prefix=url_prefix,
            sign_in_url=sign_in.sign_in_url,
            sign_out_url=sign_in.sign_out_url,
            scim_path=scim_path,
        )
    )
    app.register_blueprint(activation_blueprint(service, url_prefix=activation_prefix))
    app.register_blueprint(
        authorize_blueprint(service, sign_in.identify, sign_in_url=sign_in.sign_in_url)
    )
    return sign_in
