"""``[review] required = true``: a brand's clips leave the review app only once approved. The
download links and the API's file URLs answer 403 until the job's latest verdict is an approval
(admins included); the clip page's player (``/jobs/<id>/preview/<i>``) still plays it, since the
reviewers must see a clip to approve it. A brand without it downloads as before."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("fastapi", reason='the review app needs its extra: pip install "brandstudio[app]"')
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient  # noqa: E402

from brandstudio.app import queue  # noqa: E402
from brandstudio.app.admin import create_api_token, create_user  # noqa: E402
from brandstudio.app.web import create_app  # noqa: E402
from brandstudio.app.worker import job_dir  # noqa: E402
from brandstudio.errors import BrandStudioError  # noqa: E402
from brandstudio.profile import load_profile  # noqa: E402

PASSWORD = "correct horse battery"
A, B = "qinglan-tea", "aurora-coffee"  # A requires approval, B does not
EMAILS = {"admin": "admin@agency.example", "reviewer": "mei@qinglan.example", "editor_b": "bob@aurora.example"}


@pytest.fixture
def site(tmp_path, make_profile, db_url):
    make_profile(A, edit=lambda t: t + '\n[review]\nrequired = true  # clients sign off before delivery\n')
    make_profile(B)
    data = tmp_path / "data"
    app = create_app(db_url, data, tmp_path / "profiles", secret_key="test-key", secure_cookies=False)
    Session = app.state.Session  # noqa: N806
    users = {
        "admin": create_user(Session, EMAILS["admin"], PASSWORD, is_admin=True),
        "reviewer": create_user(Session, EMAILS["reviewer"], PASSWORD, roles={A: "reviewer"}),
        "editor_b": create_user(Session, EMAILS["editor_b"], PASSWORD, roles={B: "editor"}),
    }
    yield {"app": app, "Session": Session, "users": users, "data": data}
    app.state.engine.dispose()


def finished_job(site, brand: str) -> int:
    Session = site["Session"]  # noqa: N806
    with Session() as session:
        job_id = queue.submit(session, brand=brand, template="product-hero", variables={"product": "春茶"}).id
        session.commit()
    assert queue.claim(Session, "w", lease_seconds=60).id == job_id
    folder = job_dir(site["data"], brand, job_id)
    folder.mkdir(parents=True)
    clip = folder / "clip.mp4"
    clip.write_bytes(b"\0\0\0\x18ftypmp42" + b"\0" * 64)
    queue.finish(Session, job_id, "w", outputs=[str(clip)], result={"files": [{"sha256": "0" * 64, "size": 80}]})
    return job_id


def page_client(site, who: str) -> TestClient:
    c = TestClient(site["app"], base_url="http://127.0.0.1", follow_redirects=False)
    csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    assert c.post("/login", data={"email": EMAILS[who], "password": PASSWORD, "csrf": csrf}).status_code == 303
    return c


def api_client(site, who: str) -> TestClient:
    c = TestClient(site["app"], base_url="http://127.0.0.1", follow_redirects=False)
    c.headers["Authorization"] = f"Bearer {create_api_token(site['Session'], site['users'][who], 't')}"
    return c


def test_the_profile_field(make_profile):
    assert load_profile(make_profile(B)).spec.review.required is False
    on = make_profile(A, edit=lambda t: t + "\n[review]\nrequired = true\n")
    assert load_profile(on).spec.review.required is True
    with pytest.raises(BrandStudioError, match="review"):
        load_profile(make_profile(A, name="typo", edit=lambda t: t + "\n[review]\nrequire = true\n"))


def test_only_approved_clips_are_downloaded_when_the_brand_requires_review(site):
    job = finished_job(site, A)
    page, rest = page_client(site, "reviewer"), api_client(site, "reviewer")
    admin_page, admin_api = page_client(site, "admin"), api_client(site, "admin")
    # not approved: the player plays it, nobody downloads it (admins neither), and it says why
    for c in (page, admin_page):
        preview = c.get(f"/jobs/{job}/preview/0")
        assert preview.status_code == 200 and preview.content[4:8] == b"ftyp"
        assert preview.headers["content-disposition"].startswith("inline")
        denied = c.get(f"/jobs/{job}/files/0")
        assert denied.status_code == 403 and "requires an approved clip" in denied.text
    for c in (rest, admin_api):
        denied = c.get(f"/api/jobs/{job}/files/0")
        assert denied.status_code == 403 and "[review] required = true" in denied.json()["detail"]
        info = c.get(f"/api/jobs/{job}").json()
        assert (info["review_required"], info["approved"], info["downloadable"]) == (True, False, False)
    html = page.get(f"/jobs/{job}").text
    assert f'src="/jobs/{job}/preview/0"' in html and f'href="/jobs/{job}/files/0"' not in html
    assert "requires an approved clip" in html
    assert rest.get(f"/api/jobs/{job}/preview/0").status_code == 404  # no preview in the API
    # approved: downloads on the page and in the API
    assert rest.post(f"/api/jobs/{job}/review", json={"verdict": "approved"}).status_code == 201
    download = page.get(f"/jobs/{job}/files/0")
    assert download.status_code == 200 and download.headers["content-disposition"].startswith("attachment")
    assert rest.get(f"/api/jobs/{job}/files/0").status_code == 200
    assert rest.get(f"/api/jobs/{job}").json()["downloadable"] is True
    assert f'href="/jobs/{job}/files/0"' in page.get(f"/jobs/{job}").text
    # a later "changes requested" takes the approval back
    res = rest.post(f"/api/jobs/{job}/review", json={"verdict": "changes_requested", "comment": "logo too small"})
    assert res.status_code == 201
    assert page.get(f"/jobs/{job}/files/0").status_code == 403
    assert admin_api.get(f"/api/jobs/{job}/files/0").status_code == 403


def test_a_brand_without_it_downloads_unapproved_clips(site):
    job = finished_job(site, B)
    assert page_client(site, "editor_b").get(f"/jobs/{job}/files/0").status_code == 200
    info = api_client(site, "editor_b").get(f"/api/jobs/{job}").json()
    assert (info["review_required"], info["approved"], info["downloadable"]) == (False, False, True)
    assert api_client(site, "editor_b").get(f"/api/jobs/{job}/files/0").status_code == 200
    assert page_client(site, "reviewer").get(f"/jobs/{job}/preview/0").status_code == 404  # the wall still holds
