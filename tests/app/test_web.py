"""The review app's web side through FastAPI's TestClient (no browser): sessions, CSRF, the
brand wall (every route, enumerated from the app), form validation, and a job submitted by the
API, rendered by the worker in a thread with a stand-in generator, streamed, downloaded, approved."""

from __future__ import annotations

import re
import threading
import time

import pytest

pytest.importorskip("fastapi", reason='the review app needs its extra: pip install "brandstudio[app]"')
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.routing import APIRoute  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import select  # noqa: E402

from brandstudio.app.admin import create_api_token, create_user  # noqa: E402
from brandstudio.app.db import AuditEvent, Brand, Job, Review, make_engine, sessions  # noqa: E402
from brandstudio.app.queue import submit  # noqa: E402
from brandstudio.app.web import COOKIE, create_app  # noqa: E402
from brandstudio.app.worker import Worker  # noqa: E402
from brandstudio.profile import load_profile  # noqa: E402
from brandstudio.studio import BrandStudio  # noqa: E402

PASSWORD = "correct horse battery"
A, B = "qinglan-tea", "aurora-coffee"  # the reviewer of A may not see B


@pytest.fixture
def site(tmp_path, make_profile, db_url):
    for name in (A, B):
        make_profile(name, edit=lambda t: t.replace('nsfw = "block"', 'nsfw = "off"'))
    data = tmp_path / "data"
    app = create_app(db_url, data, tmp_path / "profiles", secret_key="test-key", secure_cookies=False)
    Session = app.state.Session  # noqa: N806
    users = {
        "admin": create_user(Session, "admin@agency.example", PASSWORD, is_admin=True),
        "editor": create_user(Session, "li@agency.example", PASSWORD, display_name="李编辑", roles={A: "editor"}),
        "reviewer": create_user(Session, "mei@qinglan.example", PASSWORD, roles={A: "reviewer"}),
        "other": create_user(Session, "bob@aurora.example", PASSWORD, roles={B: "reviewer"}),
    }
    with Session() as session:
        job_b = submit(session, brand=B, template="product-hero", variables={"product": "Night Roast"}).id
        session.commit()
    yield {"app": app, "Session": Session, "users": users, "data": data, "job_b": job_b, "url": db_url}
    app.state.engine.dispose()


def app_routes(app) -> list[tuple[str, set[str]]]:
    """(path, methods) of every FastAPI route of the app, the included routers' too (FastAPI
    0.13x+ nests them: app.routes then holds the routers, not their routes)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: include_router copies the routes into app.routes
        return [(r.path, set(r.methods)) for r in app.routes if isinstance(r, APIRoute)]
    return [(c.path, set(c.methods)) for c in iter_route_contexts(app.routes) if isinstance(c.route, APIRoute)]


def client(site) -> TestClient:
    return TestClient(site["app"], base_url="http://127.0.0.1", follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def signed_in(site, who: str) -> TestClient:
    c = client(site)
    token = csrf_of(c.get("/login").text)
    email = {"admin": "admin@agency.example", "editor": "li@agency.example", "reviewer": "mei@qinglan.example",
             "other": "bob@aurora.example"}[who]  # fmt: skip
    res = c.post("/login", data={"email": email, "password": PASSWORD, "csrf": token, "next": "/"})
    assert res.status_code == 303, res.text
    return c


def api(site, who: str) -> TestClient:
    c = client(site)
    c.headers["Authorization"] = f"Bearer {create_api_token(site['Session'], site['users'][who], 'test')}"
    return c


def test_sign_in_out_and_the_cookie(site):
    c = client(site)
    assert c.get("/").headers["location"].startswith("/login")
    page = c.get("/login")
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Secure" not in cookie
    assert "http://" not in page.text.replace("http://127.0.0.1", "") and "https://" not in page.text  # no CDN
    wrong = c.post("/login", data={"email": "li@agency.example", "password": "nope nope nope", "csrf": csrf_of(page.text)})
    assert wrong.status_code == 401 and "wrong e-mail address or password" in wrong.text
    c = signed_in(site, "editor")
    home = c.get("/")
    assert home.status_code == 200 and "青岚茶 Qinglan Tea" in home.text and "Aurora Coffee" not in home.text
    assert "李编辑" in home.text and home.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in home.headers["content-security-policy"]
    # a tampered cookie is no session at all
    value = c.cookies[COOKIE]
    c.cookies.set(COOKIE, value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1], domain="127.0.0.1")
    assert c.get("/").status_code == 303
    # signing out ends every session of the user (the session version moves on)
    c1, c2 = signed_in(site, "editor"), signed_in(site, "editor")
    assert c1.post("/logout", data={"csrf": csrf_of(c1.get("/").text)}).status_code == 303
    assert c2.get("/").status_code == 303


def test_every_page_post_refuses_a_forged_or_missing_csrf_token(site):
    c = signed_in(site, "admin")
    posts = [path for path, methods in app_routes(site["app"]) if "POST" in methods and not path.startswith("/api/")]
    assert set(posts) >= {"/login", "/logout", "/jobs/{job_id}/review", "/brands/{brand_id}/templates/{name}",
                          "/admin/users", "/admin/users/{user_id}/roles"}
    for route in posts:
        path = route.format(brand_id=A, job_id=site["job_b"], name="product-hero", user_id=site["users"]["reviewer"])
        for form in ({"csrf": "forged-token"}, {}):
            res = c.post(path, data={**form, "verdict": "approved", "comment": "ok", "var.product": "x"})
            assert res.status_code == 403, (path, res.status_code)
    with site["Session"]() as session:
        assert session.scalars(select(Review)).all() == []


def _fill(path: str, job_id: int) -> str:
    return path.format(brand_id=B, job_id=job_id, name="product-hero", index=0)


def test_a_reviewer_of_one_brand_gets_404_on_every_route_of_another(site):
    """Every route with a brand or a job in its path, enumerated from the app (a new route cannot
    be forgotten), with the other brand's id or one of its jobs: 404, as if it did not exist."""
    page, rest = signed_in(site, "reviewer"), api(site, "reviewer")
    routes = [(p, m) for p, m in app_routes(site["app"]) if "{brand_id}" in p or "{job_id}" in p]
    assert len(routes) >= 12
    csrf = csrf_of(page.get("/").text)
    for path, methods in routes:
        c = rest if path.startswith("/api/") else page
        for method in methods - {"HEAD"}:
            kw = {}
            if method == "POST":
                kw = {"json": {"template": "product-hero", "verdict": "approved", "plan": "x"}} if c is rest else \
                    {"data": {"csrf": csrf, "verdict": "approved", "var.product": "x"}}  # fmt: skip
            res = c.request(method, _fill(path, site["job_b"]), **kw)
            assert res.status_code == 404, (method, path, res.status_code, res.text[:200])
            assert "Aurora" not in res.text
    assert [b["id"] for b in rest.get("/api/brands").json()] == [A]
    # on their own brand a reviewer sees, but may not render: 403
    assert page.get(f"/brands/{A}").status_code == 200
    assert page.get(f"/brands/{A}/templates/product-hero").status_code == 403
    assert rest.post(f"/api/brands/{A}/jobs", json={"template": "product-hero"}).status_code == 403
    assert client(site).get("/api/brands").status_code == 401


def test_the_form_comes_from_the_template_and_bad_values_are_422_naming_the_field(site):
    c = signed_in(site, "editor")
    form = c.get(f"/brands/{A}/templates/product-hero").text
    assert 'name="var.product"' in form and 'maxlength="300"' in form and "产品名称（第一条字幕）" in form
    assert re.search(r'name="var.product"[^>]*required', form) and 'value="精致的茶罐"' in form
    assert '<option value="9:16"' in form and 'value="broadcast-1080p25"' in form
    csrf = csrf_of(form)
    res = c.post(f"/brands/{A}/templates/product-hero", data={"csrf": csrf, "var.product": "茶" * 301})
    assert res.status_code == 422 and "variables.product" in res.text and "the limit is 300" in res.text
    res = c.post(f"/brands/{A}/templates/product-hero", data={"csrf": csrf, "var.product": "春茶", "resolution": "65"})
    assert res.status_code == 422 and "resolution" in res.text
    rest = api(site, "editor")
    res = rest.post(f"/api/brands/{A}/jobs", json={"template": "product-hero", "variables": {"product": "x", "nope": 1}})
    assert res.status_code == 422 and res.json()["field"] == "variables.nope"
    res = rest.post(f"/api/brands/{A}/jobs", json={"template": "product-hero", "variables": {"product": "x"},
                                                   "deliveries": ["cinema"]})  # fmt: skip
    assert res.status_code == 422 and res.json()["field"] == "deliveries" and "unknown delivery 'cinema'" in res.text
    with site["Session"]() as session:
        assert session.scalars(select(Job).where(Job.brand_id == A)).all() == []
    big = c.post(f"/brands/{A}/templates/product-hero", data={"csrf": csrf, "var.product": "x" * 200_000})
    assert big.status_code == 413
    ok = c.post(f"/brands/{A}/templates/product-hero", data={"csrf": csrf, "var.product": "春茶", "aspect": "9:16"})
    assert ok.status_code == 303 and ok.headers["location"].startswith("/jobs/")


def test_variable_limits_reach_the_form_and_the_server_still_checks_them(site):
    """The shared promo template's limits (discount an int from 5 to 70; product at most 40
    characters) are the form's min/max/maxlength attributes and its hint; a request that
    bypasses the browser is refused by the server, 422 naming the variable, nothing stored."""
    c = signed_in(site, "editor")
    url = f"/brands/{A}/templates/promo"
    form = c.get(url).text
    discount = re.search(r'<input type="number" name="var.discount"[^>]*>', form).group(0)
    assert all(attr in discount for attr in ('min="5"', 'max="70"', 'step="1"', "required"))
    assert re.search(r'<input type="text" name="var.product"[^>]*maxlength="40"', form)
    assert re.search(r'<input type="text" name="var.accent"[^>]*maxlength="300"', form)  # no limit declared
    assert 'minlength="' not in form  # none declared
    assert "(5 to 70)" in form and "(at most 40 characters)" in form  # the limits beside the label
    csrf = csrf_of(form)
    for value, says in (("150", "must be at most 70, got 150"), ("4", "must be at least 5, got 4")):
        res = c.post(url, data={"csrf": csrf, "var.product": "春茶", "var.discount": value})
        assert res.status_code == 422 and "variables.discount" in res.text and says in res.text, res.text
        assert re.search(r'<label class="invalid">[^<]*<code>discount</code>', res.text)
        kept = f'name="var.discount" step="1" min="5" max="70" value="{value}"'  # the value is kept
        assert kept in res.text
    res = c.post(url, data={"csrf": csrf, "var.product": "茶" * 41, "var.discount": "20"})
    assert res.status_code == 422 and "variables.product" in res.text and "the limit is 40" in res.text
    rest = api(site, "editor")
    for variables, field, says in (
        ({"product": "x", "discount": 71}, "variables.discount", "must be at most 70, got 71"),
        ({"product": "x", "discount": "-5"}, "variables.discount", "must be at least 5, got -5"),
        ({"product": "x", "discount": 20, "headline": "h" * 41}, "variables.headline", "the limit is 40"),
    ):
        res = rest.post(f"/api/brands/{A}/jobs", json={"template": "promo", "variables": variables})
        assert res.status_code == 422, res.text
        assert res.json()["field"] == field and says in res.json()["detail"]
    with site["Session"]() as session:
        assert session.scalars(select(Job).where(Job.brand_id == A)).all() == []  # nothing stored half-way
    listed = {t["name"]: t for t in rest.get(f"/api/brands/{A}/templates").json()}
    fields = {f["name"]: f for f in listed["promo"]["variables"]}
    limits = (fields["discount"]["min"], fields["discount"]["max"], fields["discount"]["hint"])
    assert limits == (5, 70, "5 to 70") and fields["product"]["maxlength"] == 40
    # the limits themselves are fine
    ok = c.post(url, data={"csrf": csrf, "var.product": "春茶", "var.discount": "70"})
    assert ok.status_code == 303 and ok.headers["location"].startswith("/jobs/")
    ok = rest.post(
        f"/api/brands/{A}/jobs", json={"template": "promo", "variables": {"product": "x", "discount": 5}}
    )
    assert ok.status_code == 201, ok.text
    with site["Session"]() as session:
        jobs = session.scalars(select(Job).where(Job.brand_id == A).order_by(Job.id)).all()
        assert [j.variables["discount"] for j in jobs] == [70, 5]


def test_openapi_document(site):
    doc = client(site).get("/api/openapi.json").json()
    assert {"/api/brands", "/api/brands/{brand_id}/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/review"} <= set(doc["paths"])
    assert not any(p.startswith("/brands") for p in doc["paths"])  # the pages are not the API
    assert client(site).get("/docs").status_code == 404  # Swagger UI would load from a CDN


def test_a_job_from_the_api_rendered_by_the_worker_streamed_downloaded_and_approved(site):
    from fixed_generators import FlatGenerator

    rest = api(site, "editor")
    res = rest.post(f"/api/brands/{A}/jobs", json={"template": "product-hero", "variables": {"product": "青岚 春茶"},
                                                   "aspect": "16:9", "duration": 1.0, "resolution": 64, "seed": 3})  # fmt: skip
    assert res.status_code == 201, res.text
    job_id = res.json()["id"]
    stop = threading.Event()
    engine = make_engine(site["url"])
    worker = Worker(sessions(engine), site["data"], stop_event=stop, lease_seconds=30,
                    studio_factory=lambda brand, out: BrandStudio(brand.profile_path, output_dir=out,
                                                                  generator=FlatGenerator(), cache=False))  # fmt: skip
    thread = threading.Thread(target=worker.run, kwargs={"poll_seconds": 0.1}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while (job := rest.get(f"/api/jobs/{job_id}").json())["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
        engine.dispose()
    assert job["status"] == "done", job["error"]
    assert job["qc"]["status"] and job["provenance"] is not None and len(job["files"]) == 1
    assert job["progress"]["stage"]  # the worker reported progress
    page = signed_in(site, "reviewer")
    events = page.get(f"/jobs/{job_id}/events")
    assert events.headers["content-type"].startswith("text/event-stream")
    assert '"status": "done"' in events.text and events.text.rstrip().endswith("event: end\ndata: {}")
    clip = page.get(f"/jobs/{job_id}/files/0")
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4" and clip.content[4:8] == b"ftyp"
    import hashlib

    assert hashlib.sha256(clip.content).hexdigest() == job["files"][0]["sha256"]
    partial = page.get(f"/jobs/{job_id}/files/0", headers={"Range": "bytes=0-99"})
    assert partial.status_code == 206 and len(partial.content) == 100  # the <video> player seeks
    html = page.get(f"/jobs/{job_id}").text
    assert f'preload="metadata" src="/jobs/{job_id}/preview/0">' in html and "青岚 春茶" in html
    with site["Session"]() as session:
        fingerprint = load_profile(session.get(Brand, A).profile_path).fingerprint
    assert f"<code data-fingerprint>{fingerprint[:16]}</code>" in html  # the brand version it was made with
    assert page.get(f"/jobs/{job_id}/files/1").status_code == 404
    assert signed_in(site, "other").get(f"/jobs/{job_id}/files/0").status_code == 404
    # the reviewer approves on the page; the verdict and its audit event are written together
    res = page.post(f"/jobs/{job_id}/review", data={"csrf": csrf_of(html), "verdict": "approved", "comment": "很好"})
    assert res.status_code == 303
    assert api(site, "reviewer").post(f"/api/jobs/{job_id}/review", json={"verdict": "changes_requested"}).status_code == 422
    with site["Session"]() as session:
        review = session.scalars(select(Review)).one()
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "review.approved")).one()
    assert (review.verdict, review.comment) == ("approved", "很好")
    assert (event.user_id, event.brand_id, event.target) == (site["users"]["reviewer"], A, f"job:{job_id}")
    assert "review.approved" in page.get(f"/brands/{A}/history").text
