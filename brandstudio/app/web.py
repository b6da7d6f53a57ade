"""The review app's web side: server-rendered pages for people, a JSON API for scripts.

:func:`create_app` builds the FastAPI application on a database URL and a data directory:

- **Pages** (Jinja2 templates shipped in ``app/pages/``, one vendored style sheet and one script
  in ``app/static/``: no CDN, no web fonts, no external URL): the brands a user may see, a
  brand's templates, a render form generated from a template's declared variables, the job list
  with live progress (server-sent events read from the database), the clip page (player, QC,
  safety verdicts, provenance, reviews) and the brand's history.
- **Sessions**: a signed cookie (itsdangerous; HttpOnly, SameSite=Lax, Secure unless turned off
  for plain-http tests) holding the user id, the user's session version (bumped at sign-out:
  every cookie of the user stops working) and a CSRF token that every form carries and every
  POST is checked against.
- **API** under ``/api``: bearer tokens (:func:`~brandstudio.app.admin.create_api_token`; cookies
  are not read there, so it needs no CSRF token); its OpenAPI document at ``/api/openapi.json``.

Every route that touches a brand checks the user's role on it with
:func:`~brandstudio.app.access.require`; a brand (or a job of a brand) the user has no role on is
answered 404, as if it did not exist. A file is served only as one of a job's outputs, by index:
its path comes from the database, never from the request. Downloads (``/jobs/<id>/files/<i>``,
``/api/jobs/<id>/files/<i>``) of a brand whose profile sets ``[review] required = true`` are
refused (403) until the job's latest review is an approval; the clip page's player reads
``/jobs/<id>/preview/<i>``, which is not.

Example:
    >>> app = create_app("sqlite:////srv/studio/brandstudio.db", Path("/srv/studio"))   # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)                                   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import mimetypes
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..batch.briefs import parse_briefs
from ..deliveries import DELIVERY_PRESETS, find_delivery
from ..errors import AccessDenied, AppError, BrandStudioError, CampaignError
from ..profile import ASPECT_RATIOS, BrandProfile, load_profile
from ..prompts.brief import make_brief
from ..prompts.templates import PromptTemplate, TemplateLibrary
from ..request import RenderRequest
from ..safety import rules_of, screen
from .access import Action, Principal, allowed, can, require
from .admin import create_api_token, create_user, seed_brands, set_role, user_for_token
from .db import ROLES, ApiToken, AuditEvent, Brand, BriefUpload, Job, Review, User, make_engine, sessions
from .handout import approved
from .migrate import check_schema
from .passwords import MIN_LENGTH as MIN_PASSWORD
from .passwords import verify_password
from .queue import submit
from .worker import DB_DOWN, RENDERS, first_line

__all__ = ["COOKIE", "MAX_BODY_BYTES", "InputError", "WebSettings", "create_app", "form_fields"]

log = logging.getLogger("brandstudio.app.web")

HERE = Path(__file__).resolve().parent
#: the session cookie's name
COOKIE = "brandstudio_session"
#: the largest request body accepted (a render form, a review comment)
MAX_BODY_BYTES = 64 * 1024
#: a session lasts this long without signing in again
SESSION_SECONDS = 12 * 3600
#: the largest CSV of briefs an editor may upload, and its most rows (the header not counted)
MAX_BRIEF_BYTES, MAX_BRIEF_ROWS = 1 << 20, 500
#: the body limit of the briefs routes: the CSV and the form around it
MAX_BRIEF_BODY = MAX_BRIEF_BYTES + 64 * 1024
#: how long a previewed plan may be confirmed
PLAN_SECONDS = 3600
#: the columns of a brief that are not template variables (``output`` is read and ignored: the app names files)
BRIEF_SETTINGS = ("aspect", "seed", "template", "duration", "resolution", "output")
#: the longest review comment
MAX_COMMENT = 5000
#: how often the progress stream reads the job
SSE_POLL_S = 0.5
#: while the database does not answer: the ``Retry-After`` of a 503, and the progress stream's pause
DB_RETRY_AFTER_S = 5
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@dataclasses.dataclass(frozen=True)
class WebSettings:
    """What the app runs on: the database, the data directory, the cookie's key and flags."""

    url: str
    data_dir: Path
    secret_key: str
    secure_cookies: bool = True
    max_body_bytes: int = MAX_BODY_BYTES


class InputError(Exception):
    """A value of a submitted form or API call is refused (422): ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


class _LoginRequired(Exception):
    pass


class _BodyTooLarge(Exception):
    pass


# -- the application ---------------------------------------------------------------------------


def create_app(
    url: str,
    data_dir: Path,
    profiles_dir: Path | None = None,
    *,
    secret_key: str | None = None,
    secure_cookies: bool = True,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The app on the database at ``url`` (at the newest schema: :func:`~.migrate.upgrade` first)
    with its files under ``data_dir``. ``profiles_dir``: brands are added from its profile
    folders. ``secret_key`` signs the cookies: ``$BRANDSTUDIO_SECRET_KEY``, else a key made once
    and kept in ``<data_dir>/secret_key``. ``secure_cookies=False`` only for plain http on the
    loopback (tests, a laptop)."""
    data_dir = Path(data_dir).resolve()
    check_schema(url)
    settings = WebSettings(str(url), data_dir, secret_key or _secret_key(data_dir), secure_cookies, max_body_bytes)
    engine = make_engine(url)
    Session = sessions(engine)  # noqa: N806
    if profiles_dir is not None:
        seed_brands(Session, Path(profiles_dir))

    app = FastAPI(title="brandstudio review app", openapi_url="/api/openapi.json", docs_url=None, redoc_url=None)
    app.state.settings, app.state.engine, app.state.Session = settings, engine, Session
    app.state.signer = URLSafeTimedSerializer(settings.secret_key, salt="brandstudio-session")
    app.state.profiles = {}
    app.add_middleware(_LimitBody, max_bytes=max_body_bytes)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(_LoginRequired)
    async def _login(request: Request, exc: _LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(AccessDenied)
    async def _denied(request: Request, exc: AccessDenied) -> Response:
        return _error(request, 403, exc.message)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> Response:
        return _error(request, 422, exc.message, field=exc.field)

    for down in DB_DOWN:  # a restart or an outage of the database: say so, not 500 with a traceback
        app.add_exception_handler(down, _database_down)

    app.include_router(_pages())
    app.include_router(_api(), prefix="/api")
    return app


async def _database_down(request: Request, exc: Exception) -> Response:
    """503 with ``Retry-After`` while the database does not answer; nothing was stored (the
    request's transaction never committed), so the same request may simply be sent again."""
    log.warning("%s %s: the database does not answer: %s", request.method, request.url.path, first_line(exc))
    return _error(request, 503, "the database does not answer (restarting, or unreachable): nothing was "
                  "stored; try again in a few seconds", headers={"Retry-After": str(DB_RETRY_AFTER_S)})  # fmt: skip


def _secret_key(data_dir: Path) -> str:
    key = os.environ.get("BRANDSTUDIO_SECRET_KEY")
    if key:
        return key
    path = data_dir / "secret_key"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class _LimitBody:
    """Refuses a request body over ``max_bytes`` with 413: by its Content-Length before reading,
    or as it streams in when it has none."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        limit = max(self.max_bytes, MAX_BRIEF_BODY) if scope["path"].split("/")[-2:-1] == ["briefs"] or \
            scope["path"].endswith("/briefs") else self.max_bytes  # fmt: skip
        too_large = JSONResponse({"detail": f"the request body is over {limit} bytes"}, status_code=413)
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await too_large(scope, receive, send)
        seen = 0
        started = False

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge()
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except _BodyTooLarge:
            if not started:
                await too_large(scope, receive, send)


PAGES = Jinja2Templates(directory=HERE / "pages")


def _error(request: Request, status: int, message: str, headers: Any = None, field: str | None = None) -> Response:
    if request.url.path.startswith("/api/"):
        body: dict[str, Any] = {"detail": message}
        if field:
            body["field"] = field
        return JSONResponse(body, status_code=status, headers=headers)
    return PAGES.TemplateResponse(request, "error.html", {"status": status, "message": message, "field": field,
                                                          "user": None}, status_code=status, headers=headers)  # fmt: skip


# -- who is asking -----------------------------------------------------------------------------


@dataclasses.dataclass
class Visitor:
    """The session of a page request: the CSRF token, and the principal once signed in."""

    csrf: str
    principal: Principal | None = None
    user_id: int | None = None
    name: str = ""
    fresh: bool = False  # the cookie must be (re)written


def _db(request: Request) -> Iterator[Session]:
    with request.app.state.Session() as session:
        yield session


def _visitor(request: Request, session: Session = Depends(_db)) -> Visitor:
    signer: URLSafeTimedSerializer = request.app.state.signer
    raw = request.cookies.get(COOKIE)
    data: dict[str, Any] = {}
    if raw:
        try:
            data = signer.loads(raw, max_age=SESSION_SECONDS)
        except BadSignature:
            data = {}
    csrf = data.get("c") if isinstance(data.get("c"), str) else None
    visitor = Visitor(csrf=csrf or secrets.token_urlsafe(24), fresh=csrf is None)
    uid = data.get("u")
    if isinstance(uid, int):
        user = session.get(User, uid)
        if user is not None and user.session_version == data.get("v"):
            visitor.principal, visitor.user_id, visitor.name = Principal.of(user), user.id, user.display_name
    session.rollback()  # end the read (SQLite: its write lock) now, not when the request ends
    request.state.visitor = visitor
    return visitor


def _signed_in(visitor: Visitor = Depends(_visitor)) -> Principal:
    if visitor.principal is None:
        raise _LoginRequired()
    return visitor.principal


async def _check_csrf(request: Request) -> None:
    """Every page POST carries the session's CSRF token as the form field ``csrf``."""
    if request.method != "POST":
        return
    form = await request.form()
    sent = form.get("csrf")
    raw = request.cookies.get(COOKIE)
    try:
        data = request.app.state.signer.loads(raw, max_age=SESSION_SECONDS) if raw else {}
    except BadSignature:
        data = {}
    want = data.get("c") if isinstance(data, dict) else None
    if not (isinstance(sent, str) and isinstance(want, str) and hmac.compare_digest(sent, want)):
        raise HTTPException(403, "the form's security token is missing or wrong: reload the page and try again")


def _set_session(request: Request, response: Response, visitor: Visitor, user: User | None) -> None:
    data = {"c": visitor.csrf, "u": user.id if user else None, "v": user.session_version if user else None}
    settings: WebSettings = request.app.state.settings
    response.set_cookie(COOKIE, request.app.state.signer.dumps(data), max_age=SESSION_SECONDS, httponly=True,
                        samesite="lax", secure=settings.secure_cookies, path="/")  # fmt: skip


def _api_user(request: Request, session: Session = Depends(_db)) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    user = user_for_token(session, token.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise HTTPException(401, "an API token is needed: Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    principal = Principal.of(user)
    session.commit()  # last_used_at
    return principal


# -- what they ask about -----------------------------------------------------------------------


def _brand(session: Session, principal: Principal, brand_id: str, action: Action = "view") -> Brand:
    """The brand, if the principal may ``action`` on it: 404 if they may not even see it, 403 if
    they see it but may not do this."""
    brand = session.get(Brand, brand_id) if len(brand_id) <= 64 else None
    if brand is None or not can(principal, "view", brand):
        raise HTTPException(404, f"no brand {brand_id!r}")
    require(principal, action, brand)
    return brand


def _job(session: Session, principal: Principal, job_id: int, action: Action = "view") -> Job:
    job = session.get(Job, job_id) if 0 < job_id < 2**62 else None
    if job is None or not can(principal, "view", job.brand_id):
        raise HTTPException(404, f"no job {job_id}")
    require(principal, action, job.brand_id)
    return job


def _profile(request: Request, brand: Brand) -> BrandProfile:
    cache: dict = request.app.state.profiles
    try:
        stamp = (Path(brand.profile_path) / "brand.toml").stat().st_mtime_ns
    except OSError:
        stamp = None
    key = (brand.id, brand.profile_path, stamp)  # an edited brand.toml (e.g. [review]) is read again
    if key not in cache:
        try:
            cache[key] = load_profile(brand.profile_path)
        except BrandStudioError as exc:
            raise HTTPException(500, f"the profile of brand {brand.id} does not load: {exc.message}") from None
    return cache[key]


def _templates(brand: Brand) -> TemplateLibrary:
    return TemplateLibrary.for_profile(Path(brand.profile_path))


def _template(brand: Brand, name: str) -> PromptTemplate:
    try:
        return _templates(brand).get(name)
    except BrandStudioError:
        raise HTTPException(404, f"no template {name!r} for brand {brand.id}") from None


def form_fields(template: PromptTemplate) -> list[dict[str, Any]]:
    """The form inputs of a template's declared variables: type → input kind, choices → a
    select, limits → ``min`` / ``max`` / ``step`` on a number, ``minlength`` / ``maxlength`` on a
    text (and the declared limits in words, ``hint``), no default → required. The browser's check
    is a convenience: the server checks every value again (:meth:`PromptTemplate.coerce`)."""
    fields = []
    for name, var in template.spec.variables.items():
        # the declared limits in words, beside the label: "5 to 70", "at most 40 characters"
        hint = var.limits_text().removeprefix("of ").removeprefix("from ")
        field: dict[str, Any] = {
            "name": name, "label": var.description or name, "type": var.type, "hint": hint,
            "required": var.required, "default": var.default, "choices": list(var.choices),
        }  # fmt: skip
        if var.choices:
            field["kind"] = "select"
        elif var.type == "bool":
            field["kind"] = "checkbox"
        elif var.type in ("int", "float"):
            field["kind"], field["step"] = "number", "1" if var.type == "int" else "any"
            field["min"], field["max"] = var.min, var.max
        else:
            field["kind"], field["minlength"], field["maxlength"] = "text", var.min_length, var.max_chars
        fields.append(field)
    return fields


def _delivery_names(profile: BrandProfile) -> list[str]:
    return [d.name for d in profile.spec.deliveries] + [n for n in DELIVERY_PRESETS if n not in
                                                        {d.name for d in profile.spec.deliveries}]  # fmt: skip


def _queue_job(
    session: Session, request: Request, principal: Principal, brand: Brand, template: PromptTemplate,
    raw: dict[str, Any], *, aspect: str | None, deliveries: list[str], seed: Any, duration: Any, resolution: Any,
) -> Job:  # fmt: skip
    """Check a render request as the render will (the template's variables, the aspect, the
    deliveries, the numbers) and queue it with its audit event; :class:`InputError` naming the
    field otherwise, with nothing stored."""
    require(principal, "render", brand)
    checked = _checked_job(request, brand, template, raw, aspect=aspect, deliveries=deliveries, seed=seed,
                           duration=duration, resolution=resolution)  # fmt: skip
    job = _submit_checked(session, principal, brand, checked)
    session.commit()
    return job


def _submit_checked(session: Session, principal: Principal, brand: Brand, checked: dict[str, Any],
                    **audit: Any) -> Job:  # fmt: skip
    """Queue a job checked by :func:`_checked_job`, with its ``job.submit`` audit event (not committed)."""
    job = submit(session, brand=brand.id, created_by=principal.user_id, **checked)
    session.add(AuditEvent(user_id=principal.user_id, brand_id=brand.id, action="job.submit", target=f"job:{job.id}",
                           details={"template": checked["template"], "variables": checked["variables"], **audit}))  # fmt: skip
    return job


def _checked_job(
    request: Request, brand: Brand, template: PromptTemplate, raw: dict[str, Any], *, aspect: str | None,
    deliveries: list[str], seed: Any, duration: Any, resolution: Any,
) -> dict[str, Any]:  # fmt: skip
    """The arguments of :func:`~.queue.submit` for a render request, checked as the render will
    check them (the variables, the aspect, the deliveries, the brief, the brand's safety rules on
    its every text); :class:`InputError` naming the field otherwise."""
    try:
        variables = template.coerce(raw)
    except BrandStudioError as exc:
        raise InputError(exc.field or "variables", exc.message) from None
    if aspect is not None and aspect not in ASPECT_RATIOS:
        raise InputError("aspect", f"aspect must be one of {', '.join(ASPECT_RATIOS)}, got {aspect!r}")
    profile = _profile(request, brand)
    for name in deliveries:
        try:
            find_delivery(name, profile.spec.deliveries)
        except BrandStudioError as exc:
            raise InputError("deliveries", exc.message) from None
    numbers: dict[str, Any] = {}
    for key, value, kind in (("seed", seed, int), ("duration", duration, float), ("resolution", resolution, int)):
        if value in (None, ""):
            continue
        try:
            numbers[key] = kind(value)
        except (TypeError, ValueError):
            raise InputError(key, f"{key} must be a number, got {value!r}") from None
    try:
        render_request = RenderRequest.from_arguments(template=template.name, variables=variables, aspect=aspect,
                                                      **numbers)  # fmt: skip
        # the render's first and third steps, here so that a brief the brand's rules block is never queued
        brief = make_brief(render_request, profile, _templates(brand))
        screen(brief, rules_of(profile), profile=profile.id)
    except BrandStudioError as exc:
        raise InputError(exc.field or "request", exc.message) from None
    return {"template": template.name, "variables": variables, "aspect": aspect, "deliveries": list(deliveries),
            **numbers}  # fmt: skip


def _brief_plan(request: Request, brand: Brand, template: PromptTemplate, data: bytes, filename: str) -> dict[str, Any]:
    """The plan of an uploaded CSV of briefs: one row per job (its source line, variables,
    aspect, the other settings, and its problem if it cannot be a job), nothing stored. A file
    that cannot be read as briefs (too big, not UTF-8, malformed, an unknown column) is
    :class:`InputError` (422) naming the line or column."""
    name = Path(filename or "briefs.csv").name[:200] or "briefs.csv"
    if len(data) > MAX_BRIEF_BYTES:
        raise HTTPException(413, f"{name} is {len(data)} bytes; the limit is {MAX_BRIEF_BYTES} bytes "
                                 f"({MAX_BRIEF_ROWS} rows): split it into several files")  # fmt: skip
    try:
        rows = parse_briefs(data, Path(name), name, max_rows=MAX_BRIEF_ROWS)
    except CampaignError as exc:
        raise InputError("csv", exc.message) from None
    known = set(template.spec.variables) | set(BRIEF_SETTINGS)
    columns = sorted({c for r in rows for c in r.values})
    if unknown := [c for c in columns if c not in known]:
        raise InputError(f"csv.{unknown[0]}", f"{name}: column {unknown[0]!r} is neither a variable of template "
                         f"{template.name!r} ({', '.join(template.spec.variables) or 'none'}) nor one of "
                         f"{', '.join(BRIEF_SETTINGS)}")  # fmt: skip
    plan = []
    for row in rows:
        values = dict(row.values)
        settings = {k: values.pop(k) for k in BRIEF_SETTINGS if k in values}
        settings.pop("output", None)
        entry: dict[str, Any] = {"source": row.source, "variables": values, "aspect": settings.get("aspect"),
                                 "settings": settings, "problem": row.problem, "job": None}  # fmt: skip
        if entry["problem"] is None and settings.get("template", template.name) != template.name:
            entry["problem"] = (f"{row.source}: template: this upload is for template {template.name!r}, "
                                f"the row names {settings['template']!r}")  # fmt: skip
        if entry["problem"] is None:
            try:
                entry["job"] = _checked_job(request, brand, template, values, aspect=settings.get("aspect"),
                                            deliveries=[], seed=settings.get("seed"),
                                            duration=settings.get("duration"), resolution=settings.get("resolution"))  # fmt: skip
            except InputError as exc:
                entry["problem"] = f"{row.source}: {exc.field}: {exc.message}"
        plan.append(entry)
    good = [e["job"] for e in plan if e["job"] is not None]
    token = request.app.state.signer.dumps(
        {"brand": brand.id, "template": template.name, "file": name, "plan": secrets.token_hex(8),
         "sha256": hashlib.sha256(data).hexdigest(), "jobs": good}, salt="brandstudio-briefs")  # fmt: skip
    return {"file": name, "rows": plan, "good": len(good), "bad": len(plan) - len(good), "plan": token,
            "template": template.name, "brand": brand.id}  # fmt: skip


def _submit_plan(session: Session, request: Request, principal: Principal, brand: Brand, template: PromptTemplate,
                 token: str) -> list[Job]:  # fmt: skip
    """Queue the good rows of a previewed plan in one transaction, with one ``briefs.submit`` audit
    event (and each job's ``job.submit``); a plan is confirmed once."""
    require(principal, "render", brand)
    try:
        plan = request.app.state.signer.loads(token, salt="brandstudio-briefs", max_age=PLAN_SECONDS)
    except BadSignature:
        raise InputError("plan", "the plan is unknown or older than an hour: upload the CSV again") from None
    if (plan.get("brand"), plan.get("template")) != (brand.id, template.name):
        raise InputError("plan", f"the plan is for {plan.get('brand')}/{plan.get('template')}, not {brand.id}/{template.name}")
    if not plan["jobs"]:
        raise InputError("plan", "no row of the CSV can be a job: nothing to submit")
    already = HTTPException(409, "this plan was already submitted: its jobs are in the brand's job list")
    if session.get(BriefUpload, plan["plan"]) is not None:
        raise already
    jobs = [_submit_checked(session, principal, brand, checked, briefs=plan["file"]) for checked in plan["jobs"]]
    job_ids = [j.id for j in jobs]
    session.add(BriefUpload(plan_id=plan["plan"], brand_id=brand.id, user_id=principal.user_id, template=template.name,
                            file=plan["file"], sha256=plan["sha256"], jobs=job_ids))  # fmt: skip
    session.add(AuditEvent(user_id=principal.user_id, brand_id=brand.id, action="briefs.submit",
                           target=f"briefs:{plan['plan']}", details={"file": plan["file"], "sha256": plan["sha256"],
                                                                     "template": template.name, "jobs": job_ids}))  # fmt: skip
    try:
        session.commit()
    except IntegrityError:  # a confirmation of the same plan committed first: its jobs stand, these go
        session.rollback()
        raise already from None
    return jobs


def _review(session: Session, principal: Principal, job: Job, verdict: str, comment: str) -> Review:
    """A verdict on a finished job's clip, with its audit event, in one transaction."""
    require(principal, "approve", job.brand_id)
    if verdict not in ("approved", "changes_requested"):
        raise InputError("verdict", f"verdict must be approved or changes_requested, got {verdict!r}")
    if len(comment) > MAX_COMMENT:
        raise InputError("comment", f"the comment is {len(comment)} characters long; the limit is {MAX_COMMENT}")
    if verdict == "changes_requested" and not comment.strip():
        raise InputError("comment", "say what should change: a comment is needed to request changes")
    if job.status != "done":
        raise HTTPException(409, f"job {job.id} is {job.status}: only a finished clip can be reviewed")
    review = Review(job_id=job.id, user_id=principal.user_id, verdict=verdict, comment=comment)
    session.add(review)
    session.add(AuditEvent(user_id=principal.user_id, brand_id=job.brand_id, action=f"review.{verdict}",
                           target=f"job:{job.id}", details={"comment": comment}))  # fmt: skip
    session.commit()
    return review


def _review_required(request: Request, job: Job) -> bool:
    return _profile(request, job.brand).spec.review.required


def _job_json(job: Job, review_required: bool = False) -> dict[str, Any]:
    render = (job.result or {}).get("render") or {}
    return {
        "id": job.id, "brand": job.brand_id, "template": job.template, "variables": job.variables,
        "aspect": job.aspect, "deliveries": job.deliveries, "seed": job.seed, "duration": job.duration,
        "resolution": job.resolution, "status": job.status, "attempts": job.attempts, "progress": job.progress,
        "error": job.error, "created_at": job.created_at.isoformat(), "approved": approved(job),
        "review_required": review_required,
        "downloadable": job.status == "done" and (approved(job) or not review_required),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "files": [{"index": i, "url": f"/api/jobs/{job.id}/files/{i}", "page_url": f"/jobs/{job.id}/files/{i}",
                   "sha256": f.get("sha256"), "size": f.get("size")}
                  for i, f in enumerate((job.result or {}).get("files", []))],
        "qc": render.get("qc"), "safety": render.get("safety"), "provenance": render.get("provenance"),
        "reviews": [{"verdict": r.verdict, "comment": r.comment, "user_id": r.user_id,
                     "created_at": r.created_at.isoformat()} for r in job.reviews],
    }  # fmt: skip


def _state(session_factory: Callable[[], Session], job_id: int) -> dict[str, Any] | None:
    with session_factory() as session:
        row = session.execute(select(Job.status, Job.progress, Job.error).where(Job.id == job_id)).first()
    return None if row is None else {"status": row.status, "progress": row.progress, "error": row.error}


# -- pages -------------------------------------------------------------------------------------


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    visitor: Visitor = request.state.visitor
    response = PAGES.TemplateResponse(request, name, {"user": visitor.principal, "user_name": visitor.name,
                                                      "csrf": visitor.csrf, **context}, status_code=status)  # fmt: skip
    if visitor.fresh:
        _set_session(request, response, visitor, None)
    return response


def _pages() -> APIRouter:
    router = APIRouter(dependencies=[Depends(_check_csrf)], include_in_schema=False)

    @router.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/", visitor: Visitor = Depends(_visitor)) -> Response:  # noqa: A002
        return _page(request, "login.html", {"next": _safe_next(next), "error": None})

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request, visitor: Visitor = Depends(_visitor), session: Session = Depends(_db)) -> Response:
        form = await request.form()
        email, password = str(form.get("email", "")).strip().lower(), str(form.get("password", ""))
        user = session.scalar(select(User).where(User.email == email)) if len(email) <= 320 else None
        check = await run_in_threadpool(verify_password, user.password_hash if user else None, password[:2048])
        if user is None or not check.ok:
            return _page(request, "login.html", {"next": _safe_next(str(form.get("next", "/"))),
                                                 "error": "wrong e-mail address or password"}, status=401)  # fmt: skip
        if check.new_hash:
            user.password_hash = check.new_hash
        session.add(AuditEvent(user_id=user.id, action="user.login", target=f"user:{user.id}"))
        session.commit()
        signed_in = Visitor(csrf=secrets.token_urlsafe(24))  # a new token with the new session
        response = RedirectResponse(_safe_next(str(form.get("next", "/"))), status_code=303)
        _set_session(request, response, signed_in, user)
        return response

    @router.post("/logout")
    def logout(request: Request, visitor: Visitor = Depends(_visitor), session: Session = Depends(_db)) -> Response:
        if visitor.user_id is not None:
            user = session.get(User, visitor.user_id)
            user.session_version += 1  # every cookie of this user stops working
            session.commit()
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/", response_class=HTMLResponse)
    def home(request: Request, principal: Principal = Depends(_signed_in), session: Session = Depends(_db)) -> Response:
        brands = [b for b in session.scalars(select(Brand).order_by(Brand.name)) if can(principal, "view", b)]
        return _page(request, "brands.html", {"brands": brands, "roles": {b.id: sorted(allowed(principal, b))
                                                                          for b in brands}})  # fmt: skip

    @router.get("/brands/{brand_id}", response_class=HTMLResponse)
    def brand_page(request: Request, brand_id: str, principal: Principal = Depends(_signed_in),
                   session: Session = Depends(_db)) -> Response:  # fmt: skip
        brand = _brand(session, principal, brand_id)
        templates = []
        for name in _templates(brand).names():
            try:
                templates.append(_templates(brand).get(name))
            except BrandStudioError:
                continue
        return _page(request, "brand.html", {"brand": brand, "templates": templates,
                                             "can_render": can(principal, "render", brand)})  # fmt: skip

    @router.get("/brands/{brand_id}/templates/{name}", response_class=HTMLResponse)
    def template_form(request: Request, brand_id: str, name: str, principal: Principal = Depends(_signed_in),
                      session: Session = Depends(_db)) -> Response:  # fmt: skip
        brand = _brand(session, principal, brand_id, "render")
        return _form_page(request, brand, _template(brand, name), {}, None)

    @router.post("/brands/{brand_id}/templates/{name}", response_class=HTMLResponse)
    async def template_submit(request: Request, brand_id: str, name: str,
                              principal: Principal = Depends(_signed_in), session: Session = Depends(_db)) -> Response:  # fmt: skip
        brand = _brand(session, principal, brand_id, "render")
        template = _template(brand, name)
        form = await request.form()
        raw: dict[str, Any] = {}
        for field in form_fields(template):
            if field["kind"] == "checkbox":
                raw[field["name"]] = "true" if form.get(f"var.{field['name']}") else "false"
            elif (value := form.get(f"var.{field['name']}")) not in (None, ""):
                raw[field["name"]] = str(value)
        try:
            job = await run_in_threadpool(
                _queue_job, session, request, principal, brand, template, raw,
                aspect=str(form.get("aspect") or "") or None, deliveries=[str(d) for d in form.getlist("deliveries")],
                seed=form.get("seed"), duration=form.get("duration"), resolution=form.get("resolution"),
            )  # fmt: skip
        except InputError as exc:
            session.rollback()
            return _form_page(request, brand, template, dict(form), exc, status=422)
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    def _form_page(request: Request, brand: Brand, template: PromptTemplate, values: dict, error: InputError | None,
                   status: int = 200) -> Response:  # fmt: skip
        return _page(request, "form.html", {"brand": brand, "template": template, "fields": form_fields(template),
                                            "aspects": ASPECT_RATIOS, "deliveries": _delivery_names(_profile(request, brand)),
                                            "values": values, "error": error}, status=status)  # fmt: skip

    @router.get("/brands/{brand_id}/templates/{name}/briefs", response_class=HTMLResponse)
    def briefs_form(request: Request, brand_id: str, name: str, principal: Principal = Depends(_signed_in),
                    session: Session = Depends(_db)) -> Response:  # fmt: skip
        brand = _brand(session, principal, brand_id, "render")
        return _briefs_page(request, brand, _template(brand, name), None, None)

    @router.post("/brands/{brand_id}/templates/{name}/briefs", response_class=HTMLResponse)
    async def briefs_preview(request: Request, brand_id: str, name: str, principal: Principal = Depends(_signed_in),
                             session: Session = Depends(_db)) -> Response:  # fmt: skip
        brand = _brand(session, principal, brand_id, "render")
        template = _template(brand, name)
        session.rollback()
        form = await request.form()
        upload = form.get("csv")
        if upload is None or isinstance(upload, str):
            return _briefs_page(request, brand, template, None, InputError("csv", "choose a CSV file"), status=422)
        data = await upload.read(MAX_BRIEF_BYTES + 1)
        try:
            plan = await run_in_threadpool(_brief_plan, request, brand, template, data, upload.filename or "")
        except InputError as exc:
            return _briefs_page(request, brand, template, None, exc, status=422)
        return _briefs_page(request, brand, template, plan, None)

    @router.post("/brands/{brand_id}/templates/{name}/briefs/confirm")
    async def briefs_confirm(request: Request, brand_id: str, name: str, principal: Principal = Depends(_signed_in),
                             session: Session = Depends(_db)) -> Response:  # fmt: skip
        brand = _brand(session, principal, brand_id, "render")
        template = _template(brand, name)
        form = await request.form()
        try:
            await run_in_threadpool(_submit_plan, session, request, principal, brand, template, str(form.get("plan", "")))
        except InputError as exc:
            session.rollback()
            return _briefs_page(request, brand, template, None, exc, status=422)
        return RedirectResponse(f"/brands/{brand.id}/jobs", status_code=303)

    def _briefs_page(request: Request, brand: Brand, template: PromptTemplate, plan: dict | None,
                     error: InputError | None, status: int = 200) -> Response:  # fmt: skip
        return _page(request, "briefs.html", {"brand": brand, "template": template, "plan": plan, "error": error,
                                              "max_bytes": MAX_BRIEF_BYTES, "max_rows": MAX_BRIEF_ROWS,
                                              "settings": BRIEF_SETTINGS}, status=status)  # fmt: skip

    @router.get("/brands/{brand_id}/jobs", response_class=HTMLResponse)
    def jobs_page(request: Request, brand_id: str, principal: Principal = Depends(_signed_in),
                  session: Session = Depends(_db)) -> Response:  # fmt: skip
        brand = _brand(session, principal, brand_id)
        jobs = session.scalars(select(Job).where(Job.brand_id == brand.id).order_by(Job.id.desc()).limit(200)).all()
        return _page(request, "jobs.html", {"brand": brand, "jobs": jobs})

    @router.get("/brands/{brand_id}/history", response_class=HTMLResponse)
    def history_page(request: Request, brand_id: str, principal: Principal = Depends(_signed_in),
                     session: Session = Depends(_db)) -> Response:  # fmt: skip
        brand = _brand(session, principal, brand_id)
        events = session.scalars(select(AuditEvent).where(AuditEvent.brand_id == brand.id)
                                 .order_by(AuditEvent.id.desc()).limit(500)).all()  # fmt: skip
        return _page(request, "history.html", {"brand": brand, "events": events})

    @router.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, job_id: int, principal: Principal = Depends(_signed_in),
                 session: Session = Depends(_db)) -> Response:  # fmt: skip
        job = _job(session, principal, job_id)
        info = _job_json(job, _review_required(request, job))
        return _page(request, "job.html", {"job": job, "info": info, "brand": job.brand,
                                           "can_approve": can(principal, "approve", job.brand_id),
                                           "render": (job.result or {}).get("render") or {}})  # fmt: skip

    @router.post("/jobs/{job_id}/review")
    async def review(request: Request, job_id: int, principal: Principal = Depends(_signed_in),
                     session: Session = Depends(_db)) -> Response:  # fmt: skip
        job = _job(session, principal, job_id, "approve")
        form = await request.form()
        _review(session, principal, job, str(form.get("verdict", "")), str(form.get("comment", "")))
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    @router.get("/jobs/{job_id}/events")
    async def job_events(request: Request, job_id: int, principal: Principal = Depends(_signed_in),
                         session: Session = Depends(_db)) -> Response:  # fmt: skip
        _job(session, principal, job_id)
        session.close()  # a stream lasts as long as the render: it must hold no transaction
        return _progress_stream(request, job_id)

    @router.get("/jobs/{job_id}/files/{index}")
    def job_file(request: Request, job_id: int, index: int, principal: Principal = Depends(_signed_in),
                 session: Session = Depends(_db)) -> Response:  # fmt: skip
        response = _file(request, _job(session, principal, job_id), index, download=True)
        session.close()  # no transaction held while the file streams
        return response

    @router.get("/jobs/{job_id}/preview/{index}")
    def job_preview(request: Request, job_id: int, index: int, principal: Principal = Depends(_signed_in),
                    session: Session = Depends(_db)) -> Response:  # fmt: skip
        """The clip page's player: for everyone who may see the brand, approved or not (the
        reviewers must see a clip to approve it); not an API route, not a download link."""
        response = _file(request, _job(session, principal, job_id), index, download=False)
        session.close()
        return response

    @router.get("/admin/users", response_class=HTMLResponse)
    def users_page(request: Request, principal: Principal = Depends(_signed_in),
                   session: Session = Depends(_db)) -> Response:  # fmt: skip
        _require_admin(principal, "manage users")
        return _users_page(request, session)

    @router.post("/admin/users", response_class=HTMLResponse)
    async def users_add(request: Request, principal: Principal = Depends(_signed_in),
                        session: Session = Depends(_db)) -> Response:  # fmt: skip
        _require_admin(principal, "add users")
        form = await request.form()
        values = {k: str(form.get(k, "")) for k in ("email", "display_name", "password")}
        try:
            await run_in_threadpool(create_user, request.app.state.Session, values["email"], values["password"],
                                    display_name=values["display_name"].strip()[:200] or None,
                                    is_admin=form.get("admin") == "on", actor=principal.user_id)  # fmt: skip
        except AppError as exc:
            values.pop("password")
            return _users_page(request, session, InputError(exc.field or "user", exc.message), values, status=422)
        return RedirectResponse("/admin/users", status_code=303)

    @router.post("/admin/users/{user_id}/roles")
    async def users_role(request: Request, user_id: int, principal: Principal = Depends(_signed_in)) -> Response:
        _require_admin(principal, "change roles")
        form = await request.form()
        _change_role(request, principal, user_id, str(form.get("brand", "")), str(form.get("role", "")))
        return RedirectResponse("/admin/users", status_code=303)

    @router.get("/tokens", response_class=HTMLResponse)
    def tokens_page(request: Request, principal: Principal = Depends(_signed_in),
                    session: Session = Depends(_db)) -> Response:  # fmt: skip
        tokens = session.scalars(select(ApiToken).where(ApiToken.user_id == principal.user_id)).all()
        return _page(request, "tokens.html", {"tokens": tokens, "new_token": None})

    @router.post("/tokens", response_class=HTMLResponse)
    async def tokens_create(request: Request, principal: Principal = Depends(_signed_in),
                            session: Session = Depends(_db)) -> Response:  # fmt: skip
        form = await request.form()
        token = create_api_token(request.app.state.Session, principal.user_id, str(form.get("name", "token")))
        tokens = session.scalars(select(ApiToken).where(ApiToken.user_id == principal.user_id)).all()
        return _page(request, "tokens.html", {"tokens": tokens, "new_token": token})

    return router


def _require_admin(principal: Principal, what: str) -> None:
    if not principal.is_admin:
        raise AccessDenied(f"{principal.email} may not {what}", field="action", value="admin",
                           fix="only an agency admin may do this")  # fmt: skip


def _users_page(request: Request, session: Session, error: InputError | None = None,
                values: dict[str, str] | None = None, status: int = 200) -> Response:  # fmt: skip
    users = session.scalars(select(User).order_by(User.email)).all()
    brands = session.scalars(select(Brand).order_by(Brand.id)).all()
    return _page(request, "users.html", {"users": users, "brands": brands, "roles": ROLES, "error": error,
                                         "values": values or {}, "min_password": MIN_PASSWORD}, status)  # fmt: skip


def _change_role(request: Request, principal: Principal, user_id: int, brand_id: str, role: str) -> str | None:
    """Set a user's role on a brand ("" or "none": no role) as an admin, audited; 404 for an
    unknown user, 422 naming the field for an unknown brand or role."""
    try:
        return set_role(request.app.state.Session, principal.user_id, user_id, brand_id,
                        None if role in ("", "none") else role)  # fmt: skip
    except AppError as exc:
        if exc.field == "user":
            raise HTTPException(404, exc.message) from None
        raise InputError(exc.field or "role", exc.message) from None


def _safe_next(target: str) -> str:
    """Only a path on this site: no ``//evil.example`` or ``https://`` redirect after sign-in."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


def _file(request: Request, job: Job, index: int, *, download: bool) -> Response:
    """One of a job's delivered files, by index: the path is the database's, and must lie in the
    app's renders folder. ``download``: refused (403) while the brand's ``[review] required``
    and the job is not approved; the preview (the clip page's player) is not."""
    outputs = job.outputs or []
    if job.status != "done" or not 0 <= index < len(outputs):
        raise HTTPException(404, f"job {job.id} has no file {index}")
    if download and not approved(job) and _review_required(request, job):
        raise HTTPException(403, f"brand {job.brand_id} requires an approved clip ([review] required = true): "
                                 f"job {job.id} is not approved yet; a reviewer approves it on its page, /jobs/{job.id}")  # fmt: skip
    headers = {"Cache-Control": "private, no-store"} if not download else None
    renders = (request.app.state.settings.data_dir / RENDERS).resolve()
    path = Path(outputs[index]).resolve()
    if not path.is_relative_to(renders) or not path.is_file():
        raise HTTPException(404, f"the file of job {job.id} is gone")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, filename=path.name, headers=headers,
                        content_disposition_type="attachment" if download else "inline")  # fmt: skip


def _progress_stream(request: Request, job_id: int) -> StreamingResponse:
    """Server-sent events: the job's status and progress each time they change; the stream ends
    once the job is done or failed."""
    session_factory = request.app.state.Session

    async def events() -> Any:
        last = None
        idle = 0.0
        while True:
            try:
                state = await run_in_threadpool(_state, session_factory, job_id)
            except DB_DOWN:  # the stream stays open and the page keeps its last progress until it answers
                state = last
                yield ": the database does not answer\n\n"
                await asyncio.sleep(DB_RETRY_AFTER_S)
                continue
            if state is None:
                return
            if state != last:
                yield f"event: progress\ndata: {json.dumps(state, ensure_ascii=False)}\n\n"
                last, idle = state, 0.0
            if state["status"] in ("done", "failed"):
                yield "event: end\ndata: {}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(SSE_POLL_S)
            idle += SSE_POLL_S
            if idle >= 15:
                yield ": keep-alive\n\n"
                idle = 0.0

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})  # fmt: skip


# -- the API -----------------------------------------------------------------------------------


class JobIn(BaseModel):
    """A render to queue: a template of the brand and its variables, as in ``brandstudio render``."""

    template: str = Field(min_length=1, max_length=200)
    variables: dict[str, str | int | float | bool | None] = Field(default_factory=dict, max_length=100)
    aspect: str | None = None
    deliveries: list[str] = Field(default_factory=list, max_length=10)
    seed: int | None = None
    duration: float | None = None
    resolution: int | None = None


class PlanIn(BaseModel):
    """A previewed plan of briefs to queue: the ``plan`` token its preview gave."""

    plan: str = Field(min_length=1, max_length=MAX_BRIEF_BODY)


class RoleIn(BaseModel):
    """A user's role on a brand: ``editor``, ``reviewer``, or ``null`` for none."""

    brand: str = Field(min_length=1, max_length=64)
    role: Literal["editor", "reviewer"] | None


def _user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "name": user.display_name, "admin": user.is_admin,
            "roles": {m.brand_id: m.role for m in user.memberships}}  # fmt: skip


class ReviewIn(BaseModel):
    verdict: Literal["approved", "changes_requested"]
    comment: str = Field("", max_length=MAX_COMMENT)


def _api() -> APIRouter:
    router = APIRouter(tags=["api"])

    @router.get("/brands")
    def api_brands(principal: Principal = Depends(_api_user), session: Session = Depends(_db)) -> list[dict]:
        return [{"id": b.id, "name": b.name, "actions": sorted(allowed(principal, b))}
                for b in session.scalars(select(Brand).order_by(Brand.id)) if can(principal, "view", b)]  # fmt: skip

    @router.get("/brands/{brand_id}/templates")
    def api_templates(brand_id: str, principal: Principal = Depends(_api_user),
                      session: Session = Depends(_db)) -> list[dict]:  # fmt: skip
        brand = _brand(session, principal, brand_id)
        out = []
        for name in _templates(brand).names():
            try:
                template = _templates(brand).get(name)
            except BrandStudioError:
                continue
            out.append({"name": name, "description": template.spec.description, "variables": form_fields(template)})
        return out

    @router.post("/brands/{brand_id}/jobs", status_code=201)
    def api_submit(request: Request, brand_id: str, body: JobIn, principal: Principal = Depends(_api_user),
                   session: Session = Depends(_db)) -> dict:  # fmt: skip
        brand = _brand(session, principal, brand_id, "render")
        template = _template(brand, body.template)
        job = _queue_job(session, request, principal, brand, template, body.variables, aspect=body.aspect,
                         deliveries=body.deliveries, seed=body.seed, duration=body.duration,
                         resolution=body.resolution)  # fmt: skip
        return _job_json(job, _review_required(request, job))

    @router.post("/brands/{brand_id}/templates/{name}/briefs")
    async def api_briefs_preview(request: Request, brand_id: str, name: str, principal: Principal = Depends(_api_user),
                                 session: Session = Depends(_db)) -> dict:  # fmt: skip
        """The plan of a CSV of briefs (multipart field ``csv``), nothing stored; ``plan`` is the
        token to confirm it with."""
        brand = _brand(session, principal, brand_id, "render")
        template = _template(brand, name)
        session.rollback()
        upload = (await request.form()).get("csv")
        if upload is None or isinstance(upload, str):
            raise InputError("csv", "send the CSV as the multipart file field 'csv'")
        data = await upload.read(MAX_BRIEF_BYTES + 1)
        return await run_in_threadpool(_brief_plan, request, brand, template, data, upload.filename or "")

    @router.post("/brands/{brand_id}/templates/{name}/briefs/confirm", status_code=201)
    def api_briefs_confirm(request: Request, brand_id: str, name: str, body: PlanIn,
                           principal: Principal = Depends(_api_user), session: Session = Depends(_db)) -> dict:  # fmt: skip
        brand = _brand(session, principal, brand_id, "render")
        jobs = _submit_plan(session, request, principal, brand, _template(brand, name), body.plan)
        return {"jobs": [j.id for j in jobs]}

    @router.get("/brands/{brand_id}/jobs")
    def api_jobs(request: Request, brand_id: str, principal: Principal = Depends(_api_user),
                 session: Session = Depends(_db)) -> list[dict]:  # fmt: skip
        brand = _brand(session, principal, brand_id)
        required = _profile(request, brand).spec.review.required
        jobs = session.scalars(select(Job).where(Job.brand_id == brand.id).order_by(Job.id.desc()).limit(200))
        return [_job_json(j, required) for j in jobs]

    @router.get("/jobs/{job_id}")
    def api_job(request: Request, job_id: int, principal: Principal = Depends(_api_user),
                session: Session = Depends(_db)) -> dict:  # fmt: skip
        job = _job(session, principal, job_id)
        return _job_json(job, _review_required(request, job))

    @router.get("/users")
    def api_users(principal: Principal = Depends(_api_user), session: Session = Depends(_db)) -> list[dict]:
        """Every user with their roles (agency admins only)."""
        _require_admin(principal, "list users")
        return [_user_json(u) for u in session.scalars(select(User).order_by(User.id))]

    @router.post("/users/{user_id}/roles")
    def api_set_role(request: Request, user_id: int, body: RoleIn, principal: Principal = Depends(_api_user)) -> dict:
        """Give a user a role on a brand, or none (``"role": null``), audited (agency admins only)."""
        _require_admin(principal, "change roles")
        before = _change_role(request, principal, user_id, body.brand, body.role or "")
        with request.app.state.Session() as session:
            return {**_user_json(session.get(User, user_id)), "changed": {"brand": body.brand, "from": before,
                                                                           "to": body.role}}  # fmt: skip

    @router.post("/jobs/{job_id}/review", status_code=201)
    def api_review(job_id: int, body: ReviewIn, principal: Principal = Depends(_api_user),
                   session: Session = Depends(_db)) -> dict:  # fmt: skip
        job = _job(session, principal, job_id, "approve")
        review = _review(session, principal, job, body.verdict, body.comment)
        return {"id": review.id, "job": job.id, "verdict": review.verdict, "comment": review.comment}

    @router.get("/jobs/{job_id}/files/{index}")
    def api_file(request: Request, job_id: int, index: int, principal: Principal = Depends(_api_user),
                 session: Session = Depends(_db)) -> Response:  # fmt: skip
        response = _file(request, _job(session, principal, job_id), index, download=True)
        session.close()
        return response

    return router

