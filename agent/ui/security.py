"""Who may use the UI: loopback by default; any other address needs the token.

Binding a non-loopback address exposes training, file uploads and the store to the network,
so `serve()` then requires a token (generated when none is given), printed in the URL as
Jupyter does. A request carries it as `?token=`, the `autoglm_token` cookie (set on the
first request that brought it) or the `Authorization: Bearer` header; without it the answer
is 403. Every state-changing request (POST) must also carry the page's CSRF secret in the
`X-AutoGLM-CSRF` header or the `csrf` form field: another web site open in the same
browser can send a form to 127.0.0.1, but cannot read the secret from our pages. The Host
header must name this server (DNS rebinding would otherwise let a remote page read it).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_COOKIE = "autoglm_token"
CSRF_HEADER = "x-autoglm-csrf"
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Guard:
    """The UI's access rules for one server.

    Attributes:
        host: the address it binds.
        port: its port (the Host header must name it).
        token: required on every request when set (always set off loopback).
        csrf: the secret every POST must carry; fresh per server.
    """

    host: str
    port: int
    token: str | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @classmethod
    def for_host(cls, host: str, port: int, token: str | None = None) -> Guard:
        """The guard of a server on `host`: off loopback a token is required (made here)."""
        if token is None and not is_loopback(host):
            token = secrets.token_urlsafe(24)
        return cls(host=host, port=port, token=token)

    def url(self, host: str | None = None) -> str:
        shown = host or ("127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host)
        base = f"http://{shown}:{self.port}/"
        return f"{base}?token={self.token}" if self.token else base

    def host_allowed(self, header: str) -> bool:
        """A Host header naming this server: loopback names always, any name when the server
        listens off loopback (a token then guards it)."""
        name = header.rsplit(":", 1)[0] if not header.endswith("]") else header
        if self.token is not None and not is_loopback(self.host):
            return True
        return is_loopback(name)

    def token_ok(self, given: str | None) -> bool:
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given, self.token)

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given, self.csrf)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie") or ""
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _query_token(scope: Scope) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


class GuardMiddleware:
    """Refuses requests without the token or with a foreign Host (403, one sentence)."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        guard = self.guard
        if not guard.host_allowed(_header(scope, b"host") or ""):
            await _refuse("This server answers only requests addressed to it (Host header).")(
                scope, receive, send
            )
            return
        bearer = (_header(scope, b"authorization") or "").removeprefix("Bearer ").strip()
        from_query = _query_token(scope)
        given = from_query or _cookie(scope, TOKEN_COOKIE) or bearer or None
        if not guard.token_ok(given):
            await _refuse(
                "This autoglm ui listens beyond this machine and needs its token: open the URL "
                "it printed at start (…/?token=…)."
            )(scope, receive, send)
            return
        if from_query and guard.token:  # remember it, so links without ?token= work
            await self.app(scope, receive, _with_cookie(send, guard.token))
            return
        await self.app(scope, receive, send)


def _refuse(message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=403)


def _with_cookie(send: Send, token: str) -> Send:
    cookie = f"{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/".encode("latin-1")

    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
        await send(message)

    return wrapped
