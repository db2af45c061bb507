"""The web pages for IT: login, dashboard, scans, one scan, stations, threats, CSV exports."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import (
    HTMLResponse,
    RedirectResponse,
    Response,
)
from sqlalchemy import select

from kiosk.i18n import LANGUAGES
from kiosk.models import utcnow
from kiosk.server import security
from kiosk.server.deps import ServerState, State
from kiosk.server.tables import User
from kiosk.server.templating import Formats

router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "sb_session"
LOGIN_CSRF_COOKIE = "sb_login"
LANG_COOKIE = "sb_lang"


class LoginRequiredError(Exception):
    """Raised by pages when nobody is logged in: the handler redirects to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9/_.~%:@!$&'()*+,;=?-]*")


def safe_next(value: str | None) -> str:
    """Return *value* when it is a plain local path, else "/"."""
    # Only local paths, in plain URL characters: an open redirect would help phishing, and
    # browsers drop tabs and newlines, so "/\t/evil.example" would become "//evil.example".
    if not value or not _LOCAL_PATH.fullmatch(value) or "\\" in value:
        return "/"
    return value


def station_path(station_id: str) -> str:
    """The address of a station's page."""
    return "/stations/" + quote(station_id, safe="")


def language(request: Request, state: ServerState) -> str:
    """The reader's language: their cookie, else the server's default."""
    chosen = request.cookies.get(LANG_COOKIE)
    return chosen if chosen in LANGUAGES else state.config.language


@dataclass(frozen=True)
class Ctx:
    """What every page needs: the request, the state, who is logged in, and the formats."""

    request: Request
    state: ServerState
    login: security.Login | None
    fmt: Formats

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        """Render a template with the common values."""
        html = self.state.templates.get_template(template).render(
            _=self.fmt._,
            n_=self.fmt.n_,
            fmt=self.fmt,
            login=self.login,
            lang=self.fmt.language,
            path=self.request.url.path,
            here=str(self.request.url.path)
            + (f"?{self.request.url.query}" if self.request.url.query else ""),
            config=self.state.config,
            **{"nav": None, "flagged_count": None, **values},
        )
        return HTMLResponse(html, status_code=status)


def _ctx(request: Request, state: ServerState, login: security.Login | None) -> Ctx:
    return Ctx(request, state, login, Formats(language(request, state), state.tz, utcnow()))


def page_context(request: Request, state: State) -> Ctx:
    """A page that needs a login (else: to the login page)."""
    with state.db.read() as session:
        login = security.find_session(session, request.cookies.get(SESSION_COOKIE))
    if login is None:
        query = f"?{request.url.query}" if request.url.query else ""
        raise LoginRequiredError(request.url.path + query)
    return _ctx(request, state, login)


Page = Annotated[Ctx, Depends(page_context)]


def login_redirect(_request: Request, exc: LoginRequiredError) -> Response:
    """Send the browser to the login page, remembering where it wanted to go."""
    return RedirectResponse(f"/login?next={quote(exc.next_path, safe='')}", status_code=303)


def error_page(request: Request, status: int, headers: Mapping[str, str] | None = None) -> Response:
    """A plain error page that says nothing of the internals."""
    state: ServerState = request.app.state.server
    ctx = _ctx(request, state, None)
    response = ctx.render("error.html", status=status, status_code=status)
    for key, value in (headers or {}).items():
        if key.lower() != "www-authenticate":
            response.headers[key] = value
    return response


def _set_cookie(ctx: Ctx, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=ctx.state.config.secure_cookies,
        samesite="strict",
        path="/",
    )


# ---- login -------------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, state: State, next: str = "/") -> Response:
    """The login page; it sets the cookie half of its CSRF token."""
    ctx = _ctx(request, state, None)
    token = secrets.token_urlsafe(32)
    response = ctx.render("login.html", csrf=token, next=safe_next(next), error=None)
    _set_cookie(ctx, response, LOGIN_CSRF_COOKIE, token, 3600)
    return response


@router.post("/login")
async def login_submit(request: Request, state: State) -> Response:
    """Check a password, with throttling per user name and per address."""
    form = await request.form(max_files=0, max_fields=10, max_part_size=4096)
    username = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[:1024]
    given = str(form.get("csrf", ""))
    next_path = safe_next(str(form.get("next", "/")))
    ctx = _ctx(request, state, None)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not security.csrf_ok(expected, given):
        return ctx.render("error.html", status=403, status_code=403)
    address = request.client.host if request.client else "unknown"
    keys = [f"user:{username.lower()}", f"addr:{address}"]
    cfg = state.config
    outcome = await run_in_threadpool(_try_login, state, username, password, keys)
    if outcome == "throttled":
        response = ctx.render(
            "login.html", status=429, csrf=expected, next=next_path, error="throttled"
        )
        response.headers["Retry-After"] = str(int(cfg.login_window))
        return response
    if outcome is None:
        return ctx.render("login.html", status=401, csrf=expected, next=next_path, error="wrong")
    redirect = RedirectResponse(next_path, status_code=303)
    _set_cookie(ctx, redirect, SESSION_COOKIE, outcome, int(cfg.session_hours * 3600))
    redirect.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return redirect


def _try_login(state: ServerState, username: str, password: str, keys: list[str]) -> str | None:
    cfg = state.config
    with state.db.read() as session:
        if security.throttled(session, keys, cfg.login_max_failures, cfg.login_window):
            return "throttled"
        user = session.scalar(select(User).where(User.username == username))
    if not security.verify_password(user, password):
        with state.db.write() as session:
            security.record_failure(session, keys, cfg.login_window)
        return None
    assert user is not None
    with state.db.write() as session:
        security.clear_failures(session, keys[:1])
        return security.open_session(session, user, cfg.session_hours)


@router.post("/logout")
async def logout(request: Request, ctx: Page) -> Response:
    """End the session (a POST with the session's CSRF token)."""
    form = await request.form(max_files=0, max_fields=5, max_part_size=1024)
    assert ctx.login is not None
    if not security.csrf_ok(ctx.login.csrf, str(form.get("csrf", ""))):
        return ctx.render("error.html", status=403, status_code=403)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    with ctx.state.db.write() as session:
        security.close_session(session, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{code}")
def set_language(request: Request, state: State, code: str, next: str = "/") -> Response:
    """Switch the pages' language (a preference cookie, nothing else changes)."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if code in LANGUAGES:
        ctx = _ctx(request, state, None)
        _set_cookie(ctx, response, LANG_COOKIE, code, 365 * 86400)
    return response
