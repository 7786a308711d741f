"""The admin API and the status page, on the bridge's listen address.

Both exist only when the config has an ``admin`` section (otherwise they answer 404), and both
show the same `bridge.status.Status`:

- ``GET /_passerelle/admin/status`` with ``Authorization: Bearer <admin token>`` answers it as
  JSON (what ``passerelle status`` reads); 401 without the right token.
- ``POST /_passerelle/admin/reload`` with the same token reads the config file again and
  applies it (what ``passerelle reload`` asks for, like SIGHUP): the located errors when it is
  not valid, else a summary of what changed.
- ``/_passerelle/status`` shows it as a page (`bridge.status_page`) to a browser that logged in
  with the admin token through the page's form. The browser keeps a session cookie that is not
  the token but a MAC of an expiry time under it (HttpOnly, SameSite=Strict), so it expires,
  and changing the token ends every session. The forms carry a CSRF token that must match a
  cookie of the same browser (double submit).

Tokens are compared in constant time and never logged (the listener keeps no access log).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from bridge.config.model import Admin
from bridge.reload import Reloaded
from bridge.status import Status
from bridge.status_page import language, login_page, status_page

log = logging.getLogger(__name__)

API_PATH = "/_passerelle/admin/status"
RELOAD_PATH = "/_passerelle/admin/reload"
PAGE_PATH = "/_passerelle/status"
SESSION_COOKIE = "passerelle_session"
CSRF_COOKIE = "passerelle_csrf"
SESSION_SECONDS = 12 * 3600
EXPIRES = re.compile(r"[0-9]{1,12}")
MAX_FORM_BYTES = 4096
"""Largest login or logout form read: a token and a CSRF token."""


def same_secret(given: str, expected: str) -> bool:
    """Whether ``given`` is ``expected``, in time that does not depend on where they differ."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def session_value(token: str, expires: int) -> str:
    """The session cookie valid until ``expires`` (epoch seconds) for the admin ``token``."""
    mac = hmac.new(token.encode(), f"passerelle-status-session\0{expires}".encode(),
                   hashlib.sha256).hexdigest()  # fmt: skip
    return f"{expires}.{mac}"


def valid_session(cookie: str | None, token: str, now: float) -> bool:
    if not cookie:
        return False
    expires, _, _ = cookie.partition(".")
    if not EXPIRES.fullmatch(expires) or int(expires) < now:
        return False
    return same_secret(cookie, session_value(token, int(expires)))


class AdminSite:
    """The admin routes of one gateway. ``admin`` gives the current admin settings (the config
    may change while the bridge runs); ``status`` takes a status."""

    def __init__(
        self,
        admin: Callable[[], Admin | None],
        status: Callable[[], Awaitable[Status]],
        reload: Callable[[], Awaitable[Reloaded]],
    ) -> None:
        self._admin = admin
        self._status = status
        self._reload = reload

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(API_PATH, self._api)
        app.router.add_post(RELOAD_PATH, self._reload_config)
        app.router.add_get(PAGE_PATH, self._page)
        app.router.add_post(PAGE_PATH, self._login)
        app.router.add_post(PAGE_PATH + "/logout", self._logout)

    def _settings(self) -> Admin:
        admin = self._admin()
        if admin is None:
            raise web.HTTPNotFound()
        return admin

    def _refused(self, request: web.Request) -> web.Response | None:
        """The 401 answer to an API request without the admin token (None: it has it)."""
        admin = self._settings()
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and same_secret(given.strip(), admin.token):
            return None
        log.warning("Admin API: refused a request without the admin token from %s",
                    request.remote)  # fmt: skip
        return web.json_response({"error": "the admin token is required"}, status=401,
                                 headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    async def _api(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return web.json_response((await self._status()).to_json(), headers=_NO_STORE)

    async def _reload_config(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        done = await self._reload()
        return web.json_response(
            {"reloaded": not done.errors, "errors": list(done.errors), "summary": done.summary},
            headers=_NO_STORE,
        )

    async def _page(self, request: web.Request) -> web.Response:
        admin = self._settings()
        lang = language(request.headers.get("Accept-Language"))
        csrf = _csrf(request)
        if not valid_session(request.cookies.get(SESSION_COOKIE), admin.token, time.time()):
            return _html(request, login_page(lang, csrf), csrf)
        return _html(request, status_page(await self._status(), lang, csrf), csrf)

    async def _login(self, request: web.Request) -> web.Response:
        admin = self._settings()
        lang = language(request.headers.get("Accept-Language"))
        form = await _form(request)
        if form is None:
            csrf = secrets.token_urlsafe(24)
            return _html(request, login_page(lang, csrf, "status.login.expired"), csrf, 403)
        if not same_secret(form.get("token", ""), admin.token):
            log.warning("Status page: a wrong admin token was typed in from %s", request.remote)
            csrf = _csrf(request)
            return _html(request, login_page(lang, csrf, "status.login.wrong"), csrf, 401)
        response = _see_other("status")
        expires = int(time.time()) + SESSION_SECONDS
        _set_cookie(request, response, SESSION_COOKIE, session_value(admin.token, expires),
                    SESSION_SECONDS)  # fmt: skip
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        self._settings()
        if await _form(request) is None:
            raise web.HTTPForbidden()
        response = _see_other("../status")
        response.del_cookie(SESSION_COOKIE, path=PAGE_PATH)
        return response


_NO_STORE = {"Cache-Control": "no-store"}
_PAGE_HEADERS = {
    **_NO_STORE,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _see_other(location: str) -> web.Response:
    """Back to the page after a form (relative to the form's address)."""
    return web.Response(status=303, headers={**_NO_STORE, "Location": location})


def _csrf(request: web.Request) -> str:
    """The browser's CSRF token (a new one when it has none or a malformed one)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    return token if 20 <= len(token) <= 64 and token.isascii() else secrets.token_urlsafe(24)


async def _form(request: web.Request) -> dict[str, str] | None:
    """A form posted from the page in this browser, or None (no CSRF cookie, or a CSRF field
    that does not match it). Larger forms than the page's are refused unread."""
    if request.content_length is None or request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_FORM_BYTES, request.content_length or 0)
    posted = await request.post()
    form = {key: value for key, value in posted.items() if isinstance(value, str)}
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not same_secret(form.get("csrf", ""), cookie):
        return None
    return form


def _html(request: web.Request, body: str, csrf: str, status: int = 200) -> web.Response:
    response = web.Response(text=body, status=status, content_type="text/html",
                            headers=_PAGE_HEADERS)  # fmt: skip
    _set_cookie(request, response, CSRF_COOKIE, csrf, None)
    return response


def _set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int | None
) -> None:
    """A cookie for the page only, never sent by another site's request or read by scripts;
    Secure when the browser came over HTTPS (directly or through a proxy that says so)."""
    secure = request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
    response.set_cookie(name, value, max_age=max_age, path=PAGE_PATH, httponly=True,
                        samesite="Strict", secure=secure)  # fmt: skip
