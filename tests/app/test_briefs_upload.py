"""Uploading a CSV of briefs in the review app: the plan is shown before anything runs (a bad
row has its problem and is not queued), a confirm (CSRF-checked) queues the good rows in one
transaction with an audit event, once; a malformed or oversized CSV is refused with nothing stored."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason='the review app needs its extra: pip install "brandstudio[app]"')
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

sys.path.insert(0, str(Path(__file__).parent))  # tests/app is not on pytest's pythonpath
import test_web  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from test_web import A, api, csrf_of, signed_in  # noqa: E402

from brandstudio.app.db import AuditEvent, BriefUpload, Job  # noqa: E402
from brandstudio.app.web import MAX_BRIEF_BYTES  # noqa: E402

site = test_web.site  # the fixture: two brands, their users, the app

URL = f"/brands/{A}/templates/product-hero/briefs"
GOOD = "product,aspect,seed\n夜烘 Night Roast,9:16,7\nDay Roast,1:1,\nCold Brew,2:7,\n"  # 2:7: a bad aspect


def jobs_of(site) -> int:
    with site["Session"]() as session:
        return session.scalar(select(func.count()).select_from(Job).where(Job.brand_id == A))


def test_preview_shows_the_plan_and_a_bad_row_then_confirm_queues_the_good_rows_once(site):
    c = signed_in(site, "editor")
    form = c.get(URL)
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.text
    page = c.post(URL, data={"csrf": csrf_of(form.text)}, files={"csv": ("spring.csv", GOOD.encode(), "text/csv")})
    assert page.status_code == 200, page.text
    assert "夜烘 Night Roast" in page.text and "2 job(s) to queue" in page.text and "1 row(s) with a problem" in page.text
    assert "spring.csv:4: aspect" in page.text  # the bad row, its line and column
    assert jobs_of(site) == 0  # nothing runs before the confirm
    plan = __import__("re").search(r'name="plan" value="([^"]+)"', page.text).group(1)
    assert c.post(f"{URL}/confirm", data={"plan": plan}).status_code == 403  # no CSRF token
    assert c.post(f"{URL}/confirm", data={"plan": plan, "csrf": "forged"}).status_code == 403
    assert jobs_of(site) == 0
    res = c.post(f"{URL}/confirm", data={"plan": plan, "csrf": csrf_of(page.text)})
    assert res.status_code == 303 and res.headers["location"] == f"/brands/{A}/jobs"
    with site["Session"]() as session:
        jobs = session.scalars(select(Job).where(Job.brand_id == A).order_by(Job.id)).all()
        assert [(j.variables["product"], j.aspect, j.seed) for j in jobs] == [("夜烘 Night Roast", "9:16", 7),
                                                                              ("Day Roast", "1:1", None)]
        assert {j.created_by for j in jobs} == {site["users"]["editor"]}
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "briefs.submit"))
        assert event.user_id == site["users"]["editor"] and event.details["jobs"] == [j.id for j in jobs]
        assert event.details["file"] == "spring.csv"
    again = c.post(f"{URL}/confirm", data={"plan": plan, "csrf": csrf_of(page.text)})
    assert again.status_code == 409 and jobs_of(site) == 2  # a plan is queued once


@pytest.mark.parametrize(("csv", "says"), [
    (b"product,\nA,B\n", "an empty column name"),
    (b"product\nA\x00\n", "null byte (\\x00) on line 2"),
    (b"product,product\nA,B\n", "duplicate columns"),
    (b"product,flavour\nA,B\n", "flavour"),                                # not a variable of the template
    (b"product\n\xff\xfe\n", "UTF-8"),
    (b"product\n" + b"x\n" * 501, "too many rows"),
])  # fmt: skip
def test_a_malformed_csv_is_422_naming_where_and_nothing_is_stored(site, csv, says):
    c = signed_in(site, "editor")
    res = c.post(URL, data={"csrf": csrf_of(c.get(URL).text)}, files={"csv": ("b.csv", csv, "text/csv")})
    assert res.status_code == 422 and says in res.text, res.text
    res = api(site, "editor").post(f"/api{URL}", files={"csv": ("b.csv", csv, "text/csv")})
    assert res.status_code == 422 and says in res.json()["detail"] and res.json()["field"].startswith("csv")
    assert jobs_of(site) == 0


def test_an_oversized_upload_is_413(site):
    big = b"product\n" + b"x" * (MAX_BRIEF_BYTES + 10) + b"\n"
    res = api(site, "editor").post(f"/api{URL}", files={"csv": ("big.csv", big, "text/csv")})
    assert res.status_code == 413
    assert jobs_of(site) == 0


def test_the_api_previews_then_confirms_and_a_reviewer_may_not(site):
    c = api(site, "editor")
    plan = c.post(f"/api{URL}", files={"csv": ("p.csv", GOOD.encode(), "text/csv")}).json()
    assert (plan["good"], plan["bad"]) == (2, 1) and plan["rows"][2]["problem"].startswith("p.csv:4: aspect")
    assert plan["rows"][0]["variables"] == {"product": "夜烘 Night Roast"} and plan["rows"][0]["aspect"] == "9:16"
    assert api(site, "reviewer").post(f"/api{URL}/confirm", json={"plan": plan["plan"]}).status_code == 403
    assert api(site, "other").post(f"/api{URL}/confirm", json={"plan": plan["plan"]}).status_code == 404
    assert c.post(f"/api{URL}/confirm", json={"plan": plan["plan"] + "x"}).status_code == 422
    assert jobs_of(site) == 0
    res = c.post(f"/api{URL}/confirm", json={"plan": plan["plan"]})
    assert res.status_code == 201 and len(res.json()["jobs"]) == 2 and jobs_of(site) == 2


def test_a_row_the_brands_safety_rules_block_is_a_problem_in_the_preview_and_never_queued(site):
    # qinglan-tea blocks its competitors' names (喜茶) and health claims (减肥) in any text of a brief
    csv = "product\n龙井 Longjing\n比喜茶更好的茶\n减肥茶\n".encode()
    plan = api(site, "editor").post(f"/api{URL}", files={"csv": ("s.csv", csv, "text/csv")}).json()
    assert (plan["good"], plan["bad"]) == (1, 2)
    problems = [r["problem"] for r in plan["rows"]]
    assert problems[0] is None
    # the first text that matches is named: the prompt the variable went into
    assert problems[1].startswith("s.csv:3: prompt: safety rule 'competitor:喜茶' blocked the render")
    assert problems[2].startswith("s.csv:4: prompt: safety rule") and "'减肥'" in problems[2]
    res = api(site, "editor").post(f"/api{URL}/confirm", json={"plan": plan["plan"]})
    assert res.status_code == 201 and len(res.json()["jobs"]) == 1
    with site["Session"]() as session:
        assert [j.variables["product"] for j in session.scalars(select(Job).where(Job.brand_id == A))] == ["龙井 Longjing"]


def test_the_form_and_the_api_refuse_a_blocked_brief_with_422_naming_the_field(site):
    c = signed_in(site, "editor")
    form_url = f"/brands/{A}/templates/product-hero"
    res = c.post(form_url, data={"csrf": csrf_of(c.get(form_url).text), "var.product": "喜茶 同款"})
    assert res.status_code == 422 and "competitor:喜茶" in res.text
    res = api(site, "editor").post(f"/api/brands/{A}/jobs", json={"template": "product-hero",
                                                                  "variables": {"product": "喜茶 同款"}})  # fmt: skip
    assert res.status_code == 422 and res.json()["field"] == "prompt" and "competitor:喜茶" in res.json()["detail"]
    assert jobs_of(site) == 0


def test_confirming_one_plan_from_many_clients_at_once_queues_its_jobs_once(site):
    plan = api(site, "editor").post(f"/api{URL}", files={"csv": ("p.csv", GOOD.encode(), "text/csv")}).json()["plan"]
    clients = [api(site, "editor") for _ in range(6)]
    start = threading.Barrier(len(clients))
    codes: list[int] = []

    def confirm(c) -> None:
        start.wait()
        codes.append(c.post(f"/api{URL}/confirm", json={"plan": plan}).status_code)

    threads = [threading.Thread(target=confirm, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(codes) == [201] + [409] * (len(clients) - 1)
    assert jobs_of(site) == 2
    with site["Session"]() as session:
        assert session.scalar(select(func.count()).select_from(BriefUpload)) == 1
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "briefs.submit")) == 1


def test_a_row_outside_a_variables_limits_is_that_rows_problem_and_is_not_queued(site):
    """The shared promo template's discount is an int from 5 to 70: a row with 150 (or a product
    name over its 40 characters) is shown with its problem, the rest are queued."""
    url = f"/brands/{A}/templates/promo/briefs"
    csv = "product,discount\nNight Roast,70\nDay Roast,150\nCold Brew,5\nLong,4\n" + "x" * 41 + ",20\n"
    c = signed_in(site, "editor")
    page = c.post(
        url, data={"csrf": csrf_of(c.get(url).text)}, files={"csv": ("promo.csv", csv.encode(), "text/csv")}
    )
    assert page.status_code == 200, page.text
    assert "2 job(s) to queue" in page.text and "3 row(s) with a problem" in page.text
    says = "promo.csv:3: variables.discount: variable 'discount' of template 'promo' "
    says += "must be at most 70, got 150"
    assert says.replace("'", "&#39;") in page.text  # the row, the variable, the value and the limit
    upload = {"csv": ("promo.csv", csv.encode(), "text/csv")}
    plan = api(site, "editor").post(f"/api{url}", files=upload).json()
    problems = {r["source"]: r["problem"] for r in plan["rows"] if r["problem"]}
    assert problems == {
        "promo.csv:3": says,
        "promo.csv:5": "promo.csv:5: variables.discount: variable 'discount' of template 'promo' "
        "must be at least 5, got 4",
        "promo.csv:6": "promo.csv:6: variables.product: variable 'product' of template 'promo' "
        "is 41 characters long; the limit is 40",
    }
    assert jobs_of(site) == 0
    res = c.post(f"{url}/confirm", data={"plan": plan["plan"], "csrf": csrf_of(page.text)})
    assert res.status_code == 303 and jobs_of(site) == 2
    with site["Session"]() as session:
        jobs = session.scalars(select(Job).where(Job.brand_id == A).order_by(Job.id)).all()
        queued = [(j.variables["product"], j.variables["discount"]) for j in jobs]
        assert queued == [("Night Roast", 70), ("Cold Brew", 5)]
