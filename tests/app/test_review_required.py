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


# -- brandstudio export: the same rule on the command line ------------------------------------


def delivered_job(site, brand: str, content: bytes) -> int:
    """A done job with one file whose recorded SHA-256 is the file's own."""
    import hashlib

    Session = site["Session"]  # noqa: N806
    with Session() as session:
        job_id = queue.submit(session, brand=brand, template="product-hero", variables={"product": "春茶"}).id
        session.commit()
    assert queue.claim(Session, "w", lease_seconds=60).id == job_id
    clip = job_dir(site["data"], brand, job_id) / "product-hero.mp4"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(content)
    queue.finish(Session, job_id, "w", outputs=[str(clip)],
                 result={"files": [{"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}]})  # fmt: skip
    return job_id


def export(site, brand: str, to, *jobs: int):
    from typer.testing import CliRunner

    from brandstudio.cli import app as cli

    args = ["export", brand, "--to", str(to), "--data-dir", str(site["data"]),
            "--database", str(site["app"].state.engine.url.render_as_string(hide_password=False))]  # fmt: skip
    for job in jobs:
        args += ["--job", str(job)]
    return CliRunner().invoke(cli, args)


def test_export_hands_out_only_approved_clips_where_the_brand_requires_it(site, tmp_path):
    first, second = delivered_job(site, A, b"clip one " * 50), delivered_job(site, A, b"clip two " * 50)
    other = delivered_job(site, B, b"clip of B " * 50)
    out = tmp_path / "handoff"
    res = export(site, A, out)
    assert res.exit_code == 0, res.output
    assert "0 job(s) exported" in res.output and "not approved ([review] required" in res.output
    assert not out.exists() or not any(out.rglob("*.mp4"))
    assert api_client(site, "reviewer").post(f"/api/jobs/{first}/review", json={"verdict": "approved"}).status_code == 201
    res = export(site, A, out)
    assert res.exit_code == 0 and "1 job(s) exported" in res.output, res.output
    assert (out / str(first) / "product-hero.mp4").read_bytes() == b"clip one " * 50
    assert not (out / str(second)).exists() and not [p for p in out.rglob(".*")]  # no temporary file left
    # asking for an unapproved job by number: skipped, exit status 1
    res = export(site, A, out, second)
    assert res.exit_code == 1 and f"job {second}" in res.output and "not approved" in res.output
    # a later "changes requested" withdraws the approval
    c = api_client(site, "reviewer")
    assert c.post(f"/api/jobs/{first}/review", json={"verdict": "changes_requested", "comment": "redo"}).status_code == 201
    assert export(site, A, tmp_path / "again", first).exit_code == 1
    # a brand that does not require review hands out every done clip
    res = export(site, B, tmp_path / "b")
    assert res.exit_code == 0 and (tmp_path / "b" / str(other) / "product-hero.mp4").is_file()


def test_export_refuses_a_changed_file_and_names_an_unknown_brand_or_job(site, tmp_path):
    job = delivered_job(site, B, b"original " * 50)
    (job_dir(site["data"], B, job) / "product-hero.mp4").write_bytes(b"tampered " * 50)
    res = export(site, B, tmp_path / "out", job)
    assert res.exit_code == 1 and "does not match the SHA-256" in res.output
    assert not (tmp_path / "out" / str(job) / "product-hero.mp4").exists()
    res = export(site, "no-such-brand", tmp_path / "out")
    assert res.exit_code == 2 and "no brand 'no-such-brand'" in res.output and "Traceback" not in res.output
    res = export(site, B, tmp_path / "out", 99999)
    assert res.exit_code == 2 and "has no job 99999" in res.output
    from typer.testing import CliRunner

    from brandstudio.cli import app as cli

    res = CliRunner().invoke(cli, ["export", B, "--to", str(tmp_path / "out"), "--data-dir", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "no review app database at" in res.output and not (tmp_path / "nowhere").exists()
