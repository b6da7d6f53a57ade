"""Users and roles in the review app: an agency admin adds users and gives or takes their role on
a brand (page and API); each change is in the brand's history with who and when, and applies
from the user's next request; nobody else may do it, and bad values are 422 naming the field."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason='the review app needs its extra: pip install "brandstudio[app]"')
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

sys.path.insert(0, str(Path(__file__).parent))  # tests/app is not on pytest's pythonpath
import test_web  # noqa: E402
from sqlalchemy import select  # noqa: E402
from test_web import PASSWORD, A, B, api, client, csrf_of, signed_in  # noqa: E402

from brandstudio.app.db import AuditEvent, Membership, User  # noqa: E402

site = test_web.site  # the fixture: two brands, their users, the app

NEW = "wang@qinglan.example"


def sign_in_as(site, email: str, password: str = PASSWORD):
    c = client(site)
    res = c.post("/login", data={"email": email, "password": password, "csrf": csrf_of(c.get("/login").text)})
    assert res.status_code == 303, res.text
    return c


def test_an_admin_adds_a_user_gives_and_takes_roles_and_the_history_says_who_and_when(site):
    admin = signed_in(site, "admin")
    page = admin.get("/admin/users")
    assert page.status_code == 200 and "li@agency.example" in page.text and 'href="/admin/users"' in page.text
    res = admin.post("/admin/users", data={"csrf": csrf_of(page.text), "email": NEW, "display_name": "王小明",
                                           "password": PASSWORD})  # fmt: skip
    assert res.status_code == 303
    with site["Session"]() as session:
        new = session.scalar(select(User).where(User.email == NEW))
        assert new.display_name == "王小明" and not new.is_admin and new.memberships == []
    newcomer = sign_in_as(site, NEW)
    assert newcomer.get(f"/brands/{A}").status_code == 404  # no role yet: the brand does not exist for them

    csrf = csrf_of(admin.get("/admin/users").text)
    assert admin.post(f"/admin/users/{new.id}/roles", data={"csrf": csrf, "brand": A, "role": "reviewer"}).status_code == 303
    assert newcomer.get(f"/brands/{A}").status_code == 200  # the next request already sees it
    assert newcomer.get(f"/brands/{A}/templates/product-hero").status_code == 403  # a reviewer does not render
    assert admin.post(f"/admin/users/{new.id}/roles", data={"csrf": csrf, "brand": A, "role": "editor"}).status_code == 303
    assert newcomer.get(f"/brands/{A}/templates/product-hero").status_code == 200
    assert admin.post(f"/admin/users/{new.id}/roles", data={"csrf": csrf, "brand": A, "role": "none"}).status_code == 303
    assert newcomer.get(f"/brands/{A}").status_code == 404

    with site["Session"]() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "role.change").order_by(AuditEvent.id)).all()
        assert [(e.details["from"], e.details["to"]) for e in events] == [(None, "reviewer"), ("reviewer", "editor"),
                                                                         ("editor", None)]  # fmt: skip
        assert {(e.user_id, e.brand_id, e.target) for e in events} == {(site["users"]["admin"], A, f"user:{new.id}")}
        assert all(e.time is not None for e in events)
        added = session.scalar(select(AuditEvent).where(AuditEvent.action == "user.add", AuditEvent.target == f"user:{new.id}"))
        assert added.user_id == site["users"]["admin"]
    history = admin.get(f"/brands/{A}/history").text
    assert history.count("role.change") == 3 and NEW in history


def test_only_an_admin_manages_users_on_the_page_and_the_api(site):
    target = site["users"]["reviewer"]
    for who in ("editor", "reviewer", "other"):
        c = signed_in(site, who)
        assert c.get("/admin/users").status_code == 403
        assert 'href="/admin/users"' not in c.get("/").text
        csrf = csrf_of(c.get("/").text)
        assert c.post(f"/admin/users/{target}/roles", data={"csrf": csrf, "brand": A, "role": "editor"}).status_code == 403
        assert c.post("/admin/users", data={"csrf": csrf, "email": NEW, "password": PASSWORD}).status_code == 403
        rest = api(site, who)
        assert rest.get("/api/users").status_code == 403
        assert rest.post(f"/api/users/{target}/roles", json={"brand": A, "role": "editor"}).status_code == 403
    with site["Session"]() as session:
        assert session.scalar(select(User).where(User.email == NEW)) is None
        assert session.scalar(select(Membership.role).where(Membership.user_id == target)) == "reviewer"
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "role.change")).all() == []


def test_the_api_lists_users_and_changes_roles_and_refuses_bad_values_naming_the_field(site):
    rest = api(site, "admin")
    users = {u["email"]: u for u in rest.get("/api/users").json()}
    assert users["mei@qinglan.example"]["roles"] == {A: "reviewer"} and users["admin@agency.example"]["admin"]
    target = users["mei@qinglan.example"]["id"]
    res = rest.post(f"/api/users/{target}/roles", json={"brand": B, "role": "reviewer"})
    assert res.status_code == 200 and res.json()["roles"] == {A: "reviewer", B: "reviewer"}
    assert res.json()["changed"] == {"brand": B, "from": None, "to": "reviewer"}
    bad = rest.post(f"/api/users/{target}/roles", json={"brand": A, "role": "owner"})
    assert bad.status_code == 422
    unknown = rest.post(f"/api/users/{target}/roles", json={"brand": "no-such-brand", "role": "editor"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "brand" and "no-such-brand" in unknown.json()["detail"]
    assert rest.post("/api/users/99999/roles", json={"brand": A, "role": "editor"}).status_code == 404
    with site["Session"]() as session:
        assert len(session.scalars(select(AuditEvent).where(AuditEvent.action == "role.change")).all()) == 1


def test_adding_a_user_with_bad_values_is_422_naming_the_field_and_stores_nothing(site):
    admin = signed_in(site, "admin")
    for data, field in (({"email": "not-an-address", "password": PASSWORD}, "email"),
                        ({"email": NEW, "password": "short"}, "password"),
                        ({"email": "li@agency.example", "password": PASSWORD}, "email")):  # fmt: skip
        res = admin.post("/admin/users", data={"csrf": csrf_of(admin.get("/admin/users").text), **data})
        assert res.status_code == 422 and re.search(rf"{field}: ", res.text), (data, res.text[:300])
        assert "short" not in res.text or field != "password"  # a refused password is not echoed back
    with site["Session"]() as session:
        assert session.scalar(select(User).where(User.email == NEW)) is None
